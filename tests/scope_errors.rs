//! Every parse error, with its position, and the input caps.

use keymint::scope::{MAX_REQUIREMENT_DEPTH, MAX_REQUIREMENT_LEN, MAX_SCOPE_LEN};
use keymint::{Requirement, RequirementError, RoleError, Roles, Scope, ScopeError};

#[test]
fn scope_errors_point_at_the_problem() {
    let long_segment = format!("users:{}", "a".repeat(65));
    let seventeen = vec!["a"; 17].join(":");
    let too_long = "a".repeat(MAX_SCOPE_LEN + 1);
    let table: Vec<(&str, ScopeError)> = vec![
        ("", ScopeError::Empty),
        (&too_long, ScopeError::TooLong { len: 257, max: 256 }),
        (":a", ScopeError::EmptySegment { position: 0 }),
        ("a::b", ScopeError::EmptySegment { position: 2 }),
        ("a:", ScopeError::EmptySegment { position: 2 }),
        (
            &long_segment,
            ScopeError::SegmentTooLong {
                position: 6,
                max: 64,
            },
        ),
        (
            &seventeen,
            ScopeError::TooManySegments {
                position: 32,
                max: 16,
            },
        ),
        ("Users", ScopeError::InvalidCharacter { position: 0 }),
        ("users:réad", ScopeError::InvalidCharacter { position: 7 }),
        ("users read", ScopeError::InvalidCharacter { position: 5 }),
        ("a/b", ScopeError::InvalidCharacter { position: 1 }),
        ("us*rs", ScopeError::PartialWildcard { position: 0 }),
        ("a:**", ScopeError::PartialWildcard { position: 2 }),
        ("a:*b:c", ScopeError::PartialWildcard { position: 2 }),
    ];
    for (input, expected) in table {
        assert_eq!(Scope::new(input), Err(expected), "{input:?}");
    }
}

#[test]
fn scope_error_messages_are_lowercase_and_carry_the_position() {
    let err = Scope::new("a::b").unwrap_err();
    assert_eq!(err.to_string(), "empty segment at byte 2");
    assert_eq!(err.position(), 2);
    let err = Scope::new("us*rs").unwrap_err();
    assert_eq!(
        err.to_string(),
        "wildcard '*' must be a whole segment (segment at byte 0)"
    );
}

#[test]
fn requirement_errors_point_at_the_problem() {
    use RequirementError as E;
    let table = [
        ("", E::Empty),
        (" \t\n", E::Empty),
        (
            "and a",
            E::ExpectedOperand {
                position: 0,
                found: "'and'",
            },
        ),
        (
            "a and",
            E::ExpectedOperand {
                position: 5,
                found: "end of input",
            },
        ),
        (
            "a or or b",
            E::ExpectedOperand {
                position: 5,
                found: "'or'",
            },
        ),
        (
            "()",
            E::ExpectedOperand {
                position: 1,
                found: "')'",
            },
        ),
        (
            "not",
            E::ExpectedOperand {
                position: 3,
                found: "end of input",
            },
        ),
        (
            "a b",
            E::ExpectedOperator {
                position: 2,
                found: "a scope",
            },
        ),
        (
            "a not b",
            E::ExpectedOperator {
                position: 2,
                found: "'not'",
            },
        ),
        (
            "a (b)",
            E::ExpectedOperator {
                position: 2,
                found: "'('",
            },
        ),
        (
            "(a b)",
            E::ExpectedOperator {
                position: 3,
                found: "a scope",
            },
        ),
        ("(a", E::UnclosedParen { position: 0 }),
        ("a and ((b)", E::UnclosedParen { position: 6 }),
        ("a)", E::UnmatchedParen { position: 1 }),
        ("(a))", E::UnmatchedParen { position: 3 }),
        (
            "users:read and Users",
            E::InvalidScope {
                position: 15,
                source: ScopeError::InvalidCharacter { position: 0 },
            },
        ),
        (
            "a and b::c",
            E::InvalidScope {
                position: 8,
                source: ScopeError::EmptySegment { position: 2 },
            },
        ),
        (
            "a or (b & c)",
            E::ExpectedOperator {
                position: 8,
                found: "a word",
            },
        ),
        (
            "a or (& c)",
            E::InvalidScope {
                position: 6,
                source: ScopeError::InvalidCharacter { position: 0 },
            },
        ),
        (
            "AND",
            E::InvalidScope {
                position: 0,
                source: ScopeError::InvalidCharacter { position: 0 },
            },
        ),
    ];
    for (input, expected) in table {
        let err = Requirement::parse(input).unwrap_err();
        assert_eq!(err, expected, "{input:?}");
        assert_eq!(err.position(), expected.position());
    }
}

#[test]
fn requirement_error_messages_are_lowercase_and_carry_the_position() {
    let err = Requirement::parse("a and b::c").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid scope at byte 8: empty segment at byte 2"
    );
    let err = Requirement::parse("a b").unwrap_err();
    assert_eq!(
        err.to_string(),
        "expected 'and', 'or', ')' or the end at byte 2, found a scope"
    );
}

#[test]
fn reserved_words_cannot_be_required_scopes() {
    for word in ["and", "or", "not"] {
        assert_eq!(
            Requirement::scope(word),
            Err(RequirementError::ReservedWord { position: 0 })
        );
        let scope = Scope::new(word).unwrap(); // valid as a scope, just not expressible
        assert_eq!(
            Requirement::try_from(scope),
            Err(RequirementError::ReservedWord { position: 0 })
        );
    }
    assert!(Requirement::scope("and:x").is_ok());
    assert_eq!(
        Requirement::scope("a::b"),
        Err(RequirementError::InvalidScope {
            position: 2,
            source: ScopeError::EmptySegment { position: 2 }
        })
    );
}

#[test]
fn length_cap_is_checked_before_reading() {
    let huge = "(".repeat(1 << 20);
    assert_eq!(
        Requirement::parse(&huge),
        Err(RequirementError::TooLong {
            len: 1 << 20,
            max: MAX_REQUIREMENT_LEN
        })
    );
    // Exactly at the cap is fine.
    let at_cap = format!("{}a", " ".repeat(MAX_REQUIREMENT_LEN - 1));
    assert!(Requirement::parse(&at_cap).is_ok());
}

#[test]
fn canonical_text_is_held_to_the_length_cap_too() {
    // `(a or b)and(a or b)…` gains two spaces per `and` when printed canonically.
    let units = 372;
    let input = vec!["(a or b)"; units].join("and");
    assert!(input.len() <= MAX_REQUIREMENT_LEN);
    let canonical = units * 8 + (units - 1) * 5;
    assert!(canonical > MAX_REQUIREMENT_LEN);
    assert_eq!(
        Requirement::parse(&input),
        Err(RequirementError::TooLong {
            len: canonical,
            max: MAX_REQUIREMENT_LEN
        })
    );
}

#[test]
fn depth_cap_bounds_parentheses_and_not() {
    let nest = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
    assert!(Requirement::parse(&nest(MAX_REQUIREMENT_DEPTH)).is_ok());
    assert_eq!(
        Requirement::parse(&nest(MAX_REQUIREMENT_DEPTH + 1)),
        Err(RequirementError::TooDeep {
            position: MAX_REQUIREMENT_DEPTH,
            max: MAX_REQUIREMENT_DEPTH
        })
    );

    let nots = |n: usize| format!("{}a", "not ".repeat(n));
    let deepest = Requirement::parse(&nots(MAX_REQUIREMENT_DEPTH)).unwrap();
    assert_eq!(deepest.to_string(), nots(MAX_REQUIREMENT_DEPTH));
    assert_eq!(
        Requirement::parse(&nots(MAX_REQUIREMENT_DEPTH + 1)),
        Err(RequirementError::TooDeep {
            position: 4 * MAX_REQUIREMENT_DEPTH,
            max: MAX_REQUIREMENT_DEPTH
        })
    );

    // Parentheses and `not` count together; siblings do not add up.
    let mixed = format!("{}a{}", "not (".repeat(16), ")".repeat(16));
    assert!(Requirement::parse(&mixed).is_ok());
    let mixed = format!("not {mixed}");
    assert!(matches!(
        Requirement::parse(&mixed),
        Err(RequirementError::TooDeep { .. })
    ));
    let wide = vec![nest(MAX_REQUIREMENT_DEPTH); 40].join(" or ");
    assert!(Requirement::parse(&wide).is_ok());

    // Hostile input within the length cap ends in an error, not a stack overflow.
    for hostile in [
        "(".repeat(MAX_REQUIREMENT_LEN),
        "not ".repeat(MAX_REQUIREMENT_LEN / 4),
    ] {
        assert!(matches!(
            Requirement::parse(&hostile),
            Err(RequirementError::TooDeep { .. })
        ));
    }
}

#[test]
fn role_errors() {
    let mut roles = Roles::new();
    assert_eq!(roles.insert("", []), Err(RoleError::Empty));
    assert_eq!(
        roles.insert("Admin", []).unwrap_err().to_string(),
        "invalid character in role name at byte 0: expected a-z, 0-9, '_', '-' or '.'"
    );
    assert!(roles.is_empty());
}
