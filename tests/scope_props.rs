//! Laws of scopes, grant sets and requirements.

// Helpers outside #[test] functions build fixtures from literals known to be valid.
#![allow(clippy::unwrap_used)]

use keymint::{Requirement, Scope, ScopeSet};
use proptest::prelude::*;

/// Segments from a small alphabet so that grants and requirements often overlap.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "users", "read", "members_a", "members_b"])
            .prop_map(String::from),
        2 => "[a-z0-9_.-]{1,6}",
        2 => Just("*".to_owned()),
    ]
}

fn concrete_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["a", "b", "users", "read", "members_a", "members_b"])
            .prop_map(String::from),
        1 => "[a-z0-9_.-]{1,6}",
    ]
}

fn scope() -> impl Strategy<Value = Scope> {
    prop::collection::vec(segment(), 1..=4).prop_map(|s| Scope::new(&s.join(":")).unwrap())
}

fn concrete_scope() -> impl Strategy<Value = Scope> {
    prop::collection::vec(concrete_segment(), 1..=5).prop_map(|s| Scope::new(&s.join(":")).unwrap())
}

fn grants() -> impl Strategy<Value = Vec<Scope>> {
    prop::collection::vec(scope(), 0..12)
}

/// Requirements built in code, a few levels deep.
fn requirement() -> impl Strategy<Value = Requirement> {
    let leaf = scope()
        .prop_filter("reserved words are not expressible", |s| {
            !matches!(s.as_str(), "and" | "or" | "not")
        })
        .prop_map(|s| Requirement::try_from(s).unwrap());
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(Requirement::not),
            prop::collection::vec(inner.clone(), 2..4)
                .prop_map(|items| Requirement::all(items).unwrap()),
            prop::collection::vec(inner.clone(), 2..4)
                .prop_map(|items| Requirement::any(items).unwrap()),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a.and(b)),
            (inner.clone(), inner).prop_map(|(a, b)| a.or(b)),
        ]
    })
}

/// A concrete scope the pattern stands for: each `*` replaced by one segment, a trailing
/// `*` by one to three.
fn instance_of(pattern: &Scope, fill: &[String]) -> Scope {
    let segments: Vec<&str> = pattern.segments().collect();
    let mut out = Vec::new();
    let mut fill = fill.iter().cycle();
    for (i, segment) in segments.iter().enumerate() {
        if *segment != "*" {
            out.push(segment.to_string());
        } else if i + 1 < segments.len() {
            out.push(fill.next().unwrap().clone());
        } else {
            let extra = fill.next().unwrap().len() % 3 + 1;
            for _ in 0..extra {
                out.push(fill.next().unwrap().clone());
            }
        }
    }
    Scope::new(&out.join(":")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scope_display_parses_back(s in scope()) {
        prop_assert_eq!(s.to_string().parse::<Scope>().unwrap(), s);
    }

    #[test]
    fn scope_parsing_never_panics_and_keeps_the_text(text in "[a-z*:.é A]{0,40}") {
        if let Ok(s) = Scope::new(&text) {
            prop_assert_eq!(s.as_str(), text.as_str());
        }
    }

    #[test]
    fn a_grant_covers_itself(s in scope(), others in grants()) {
        prop_assert!(s.covers(&s));
        let mut set = ScopeSet::new(others);
        set.insert(s.clone());
        prop_assert!(set.covers(&s));
    }

    #[test]
    fn star_covers_everything(required in scope(), others in grants()) {
        let mut set = ScopeSet::new(others);
        set.insert(Scope::new("*").unwrap());
        prop_assert!(set.covers(&required));
    }

    #[test]
    fn adding_grants_never_removes_coverage(
        first in grants(), more in grants(), required in scope()
    ) {
        let mut set = ScopeSet::new(first);
        let before = set.covers(&required);
        set.extend(more);
        prop_assert!(!before || set.covers(&required));
    }

    #[test]
    fn the_trie_agrees_with_grant_by_grant_checks(grants in grants(), required in scope()) {
        let set = ScopeSet::new(grants.iter().cloned());
        let expected = grants.iter().any(|g| g.covers(&required));
        prop_assert_eq!(set.covers(&required), expected);
    }

    #[test]
    fn covering_a_pattern_covers_all_its_instances(
        grant in scope(),
        pattern in scope(),
        fill in prop::collection::vec(concrete_segment(), 1..4),
    ) {
        if grant.covers(&pattern) {
            let instance = instance_of(&pattern, &fill);
            prop_assert!(grant.covers(&instance), "{grant} covers {pattern} but not {instance}");
        }
    }

    #[test]
    fn concrete_checks_follow_the_segment_rules(grant in scope(), required in concrete_scope()) {
        // An independent statement of the rule: a regex per grant.
        let mut pattern = String::from("^");
        let segments: Vec<&str> = grant.segments().collect();
        for (i, segment) in segments.iter().enumerate() {
            if i > 0 {
                pattern.push(':');
            }
            match *segment {
                "*" if i + 1 == segments.len() => pattern.push_str("[^:]+(:[^:]+)*"),
                "*" => pattern.push_str("[^:]+"),
                literal => pattern.push_str(&regex::escape(literal)),
            }
        }
        pattern.push('$');
        let expected = regex::Regex::new(&pattern).unwrap().is_match(required.as_str());
        prop_assert_eq!(grant.covers(&required), expected, "{} vs {}", grant, required);
    }

    #[test]
    fn requirement_display_parses_back(r in requirement()) {
        let text = r.to_string();
        prop_assert_eq!(Requirement::parse(&text).unwrap(), r, "{}", text);
    }

    #[test]
    fn accepted_text_round_trips(
        tokens in prop::collection::vec(
            prop::sample::select(vec![
                "a", "b:*", "*", "users:read", "and", "or", "not", "(", ")", "A", "a::b",
            ]),
            0..24,
        ),
        spaces in prop::collection::vec(prop::sample::select(vec!["", " ", "  ", "\t"]), 24),
    ) {
        let mut text = String::new();
        for (token, space) in tokens.iter().zip(&spaces) {
            text.push_str(token);
            text.push_str(space);
        }
        if let Ok(r) = Requirement::parse(&text) {
            let canonical = r.to_string();
            prop_assert_eq!(Requirement::parse(&canonical).unwrap(), r);
            prop_assert_eq!(Requirement::parse(&canonical).unwrap().to_string(), canonical);
        }
    }

    #[test]
    fn check_agrees_with_evaluation_and_not_negates(r in requirement(), grants in grants()) {
        let set = ScopeSet::new(grants);
        let satisfied = r.is_satisfied_by(&set);
        prop_assert_eq!(r.check(&set).is_ok(), satisfied);
        let negated = r.clone().not().is_satisfied_by(&set);
        // Wildcards fail closed in both directions, so `r` and `not r` may both be refused;
        // they are never both satisfied, and for concrete scopes `not` is plain negation.
        prop_assert!(!(satisfied && negated), "{r} and its negation both hold");
        if r.scopes().all(Scope::is_concrete) {
            prop_assert_eq!(negated, !satisfied);
        }
        if let Err(report) = r.check(&set) {
            prop_assert!(!report.missing().is_empty() || !report.forbidden().is_empty());
        }
    }

    #[test]
    fn not_over_a_pattern_refuses_every_key_covering_an_instance_of_it(
        pattern in scope(), grants in grants(), fill in prop::collection::vec(concrete_segment(), 4)
    ) {
        let set = ScopeSet::new(grants);
        let not_pattern = Requirement::try_from(pattern.clone()).unwrap().not();
        if not_pattern.is_satisfied_by(&set) {
            let instance = instance_of(&pattern, &fill);
            prop_assert!(!set.covers(&instance), "not {pattern} held although {instance} is granted");
        }
    }

    #[test]
    fn overlap_is_symmetric_and_found_for_shared_instances(
        a in scope(), b in scope(), fill in prop::collection::vec(concrete_segment(), 4)
    ) {
        prop_assert_eq!(a.overlaps(&b), b.overlaps(&a));
        let instance = instance_of(&a, &fill);
        if b.covers(&instance) {
            prop_assert!(a.overlaps(&b), "{a} and {b} share {instance}");
        }
    }

    #[test]
    fn granting_the_missing_scopes_satisfies_a_requirement_without_not(
        r in requirement(), grants in grants()
    ) {
        prop_assume!(!r.to_string().contains("not"));
        let mut set = ScopeSet::new(grants);
        if let Err(report) = r.check(&set) {
            prop_assert!(report.forbidden().is_empty());
            set.extend(report.missing().iter().cloned());
            prop_assert!(r.is_satisfied_by(&set), "{} with {:?}", r, set);
        }
    }
}
