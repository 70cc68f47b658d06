//! Table-driven tests of the grant rules (every example of issue 4 and of the module docs)
//! and of requirement evaluation.

// Helpers outside #[test] functions build fixtures from literals known to be valid.
#![allow(clippy::unwrap_used)]

use keymint::{MissingScopes, Requirement, Scope, ScopeSet};

fn scope(s: &str) -> Scope {
    Scope::new(s).unwrap()
}

/// (granted, required, covered)
const GRANTS: &[(&str, &str, bool)] = &[
    // From the issue.
    ("users:*", "users:read", true),
    ("users:*", "users:read:self", true),
    ("users:*:self", "users:read:self", true),
    ("users:*:self", "users:read", false),
    ("users", "users", true),
    ("users", "users:read", false),
    ("*", "users", true),
    ("*", "users:read:self", true),
    // From the module docs.
    ("users:read", "users", false),
    ("users:*", "users", false),
    ("users:*:self", "users:a:b:self", false),
    ("*:read", "billing:read", true),
    ("*:read", "billing:read:x", false),
    ("*", "anything:at:all", true),
    // More edges.
    ("users:read", "users:read", true),
    ("users:read", "users:write", false),
    ("users:read", "users:read:self", false),
    ("*:*", "users", false),
    ("*:*", "users:read", true),
    ("*:*", "users:read:self", true),
    ("*:read:*", "users:read:self", true),
    ("*:read:*", "users:read", false),
    ("a:*:c:*", "a:b:c:d:e", true),
    ("a:*:c:*", "a:b:x:d", false),
    // Wildcards in requirements: covered only by a grant at least as broad.
    ("admin:*", "admin:*", true),
    ("*", "admin:*", true),
    ("*:*", "admin:*", true),
    ("admin:users", "admin:*", false),
    ("admin:*:read", "admin:*", false),
    ("admin:*", "admin:*:read", true),
    ("admin:*:read", "admin:*:read", true),
    ("*:*:read", "admin:*:read", true),
    ("admin:users:read", "admin:*:read", false),
    ("*:*", "*", false),
    ("*", "*", true),
    ("admin", "admin:*", false),
];

#[test]
fn grant_table_holds_for_a_single_scope_and_for_sets() {
    // Grants that share prefixes with the table's without covering more, so the trie has
    // branches to try and reject.
    let distractors = [
        "users:write",
        "users:read:other",
        "admin:logs:read",
        "billing:*:x",
    ];
    for &(granted, required, expected) in GRANTS {
        let (g, r) = (scope(granted), scope(required));
        assert_eq!(g.covers(&r), expected, "Scope: {granted} covers {required}");
        let single = ScopeSet::new([g.clone()]);
        assert_eq!(
            single.covers(&r),
            expected,
            "ScopeSet: {granted} covers {required}"
        );

        let mut crowded: ScopeSet = distractors.iter().map(|d| scope(d)).collect();
        let by_distractors = crowded.covers(&r);
        crowded.insert(g);
        assert_eq!(
            crowded.covers(&r),
            expected || by_distractors,
            "crowded: {granted} covers {required}"
        );
    }
}

#[test]
fn requirements_evaluate_like_boolean_expressions() {
    let granted: ScopeSet = ["users:read", "billing:*"]
        .iter()
        .map(|s| scope(s))
        .collect();
    // (requirement, satisfied)
    let table = [
        ("users:read", true),
        ("users:write", false),
        ("users:read and billing:read", true),
        ("users:read and users:write", false),
        ("users:write or billing:refund", true),
        ("not users:write", true),
        ("not users:read", false),
        ("users:read and (billing:read or admin:*)", true),
        ("users:write or users:read and billing:x", true), // and binds tighter
        ("(users:write or users:read) and admin:x", false),
        ("not users:read or billing:x", true), // not binds tightest
        ("not (users:read or users:write)", false),
        ("billing:*", true),
        ("billing:*:self", true),
        ("admin:*", false),
    ];
    for (text, expected) in table {
        let needs = Requirement::parse(text).unwrap();
        assert_eq!(needs.is_satisfied_by(&granted), expected, "{text}");
        assert_eq!(needs.check(&granted).is_ok(), expected, "{text}");
    }
}

fn missing(text: &str, granted: &[&str]) -> MissingScopes {
    let granted: ScopeSet = granted.iter().map(|s| scope(s)).collect();
    Requirement::parse(text)
        .unwrap()
        .check(&granted)
        .unwrap_err()
}

fn names(scopes: &[Scope]) -> Vec<&str> {
    scopes.iter().map(Scope::as_str).collect()
}

#[test]
fn missing_scopes_name_what_would_satisfy_the_requirement() {
    let m = missing("a and (b or c)", &[]);
    assert_eq!(names(m.missing()), ["a", "b", "c"]);
    assert!(m.forbidden().is_empty());
    assert_eq!(m.to_string(), "insufficient scope: missing a, b, c");

    // Only the failing side of an `and` is reported.
    let m = missing("a and (b or c)", &["a"]);
    assert_eq!(names(m.missing()), ["b", "c"]);
    let m = missing("a and (b or c)", &["c"]);
    assert_eq!(names(m.missing()), ["a"]);

    // Repeats are reported once, sorted.
    let m = missing("z and (a or z) and a", &[]);
    assert_eq!(names(m.missing()), ["a", "z"]);

    // A wildcard requirement is reported as written.
    let m = missing("admin:*", &["admin:users"]);
    assert_eq!(names(m.missing()), ["admin:*"]);
}

#[test]
fn forbidden_scopes_are_reported_under_not() {
    let m = missing("not admin:*", &["*"]);
    assert!(m.missing().is_empty());
    assert_eq!(names(m.forbidden()), ["admin:*"]);
    assert_eq!(m.to_string(), "insufficient scope: must not hold admin:*");

    // not (a or b) with b held: b is to blame, a is not.
    let m = missing("not (a or b)", &["b"]);
    assert_eq!(names(m.forbidden()), ["b"]);

    // not (a and b) with both held: both are to blame.
    let m = missing("not (a and b)", &["a", "b"]);
    assert_eq!(names(m.forbidden()), ["a", "b"]);

    // A double negation is a requirement again.
    let m = missing("not not a and not b", &["b"]);
    assert_eq!(names(m.missing()), ["a"]);
    assert_eq!(names(m.forbidden()), ["b"]);
    assert_eq!(
        m.to_string(),
        "insufficient scope: missing a; must not hold b"
    );
}

#[test]
fn builders_match_the_text_form() {
    let r = |s: &str| Requirement::scope(s).unwrap();
    let table = [
        (r("a").and(r("b")).and(r("c")), "a and b and c"),
        (r("a").or(r("b")).and(r("c")), "(a or b) and c"),
        (r("a").and(r("b")).or(r("c")), "a and b or c"),
        (r("a").and(r("b").and(r("c"))), "a and (b and c)"),
        (r("a").or(r("b").or(r("c"))), "a or (b or c)"),
        (r("a").not().not(), "not not a"),
        (!(r("a").or(r("b"))), "not (a or b)"),
        (
            Requirement::any([r("a"), r("b").and(r("c")), !r("d")]).unwrap(),
            "a or b and c or not d",
        ),
        (Requirement::all([r("x")]).unwrap(), "x"),
    ];
    for (built, text) in table {
        assert_eq!(built.to_string(), text);
        assert_eq!(Requirement::parse(text).unwrap(), built, "{text}");
    }
    assert!(Requirement::any([]).is_none());
}

#[test]
fn requirement_serde_is_its_canonical_text() {
    let needs: Requirement = serde_json::from_str(r#""a and(b or c)""#).unwrap();
    assert_eq!(
        serde_json::to_string(&needs).unwrap(),
        r#""a and (b or c)""#
    );
    let err = serde_json::from_str::<Requirement>(r#""a and""#).unwrap_err();
    assert!(err.to_string().contains("at byte 5"), "{err}");
}

#[test]
fn a_wildcard_under_not_means_none_of_it() {
    let needs = Requirement::parse("users:read and not admin:*").unwrap();
    let set = |grants: &[&str]| grants.iter().map(|g| scope(g)).collect::<ScopeSet>();
    // Holding one admin scope is enough to be refused.
    let admin_users = set(&["users:read", "admin:users"]);
    let refused = needs.check(&admin_users).unwrap_err();
    assert_eq!(refused.forbidden(), [scope("admin:*")]);
    assert!(needs.check(&set(&["users:read", "*:users"])).is_err());
    assert!(needs.check(&set(&["users:read", "*"])).is_err());
    assert!(
        needs
            .check(&set(&["users:read", "billing:read", "admin"]))
            .is_ok()
    );
    // Neither reading lets a narrower grant through.
    let only_admin_users = set(&["admin:users"]);
    assert!(
        !Requirement::parse("admin:*")
            .unwrap()
            .is_satisfied_by(&only_admin_users)
    );
    assert!(
        !Requirement::parse("not admin:*")
            .unwrap()
            .is_satisfied_by(&only_admin_users)
    );
    // Double negation reads the wildcard as a positive again: all of it.
    assert!(
        !Requirement::parse("not not admin:*")
            .unwrap()
            .is_satisfied_by(&only_admin_users)
    );
    assert!(
        Requirement::parse("not not admin:*")
            .unwrap()
            .is_satisfied_by(&set(&["admin:*"]))
    );
}
