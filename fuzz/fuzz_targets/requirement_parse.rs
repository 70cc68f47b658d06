//! `Requirement::parse` on arbitrary input: no panics or stack overflows (length and depth
//! caps), accepted text prints canonically and parses back to an equal requirement, and
//! checking agrees with evaluation, and negation never grants more than the complement.
#![no_main]

use keymint::{Requirement, Scope, ScopeSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(requirement) = Requirement::parse(text) else {
        return;
    };
    let canonical = requirement.to_string();
    let again = Requirement::parse(&canonical).expect("canonical text parses");
    assert_eq!(again, requirement, "{text:?} -> {canonical:?}");
    assert_eq!(again.to_string(), canonical);

    let granted: ScopeSet = ["a", "b:*", "users:read", "*:x"]
        .into_iter()
        .map(|s| Scope::new(s).expect("valid scope"))
        .collect();
    let satisfied = requirement.is_satisfied_by(&granted);
    match requirement.check(&granted) {
        Ok(()) => assert!(satisfied),
        Err(report) => {
            assert!(!satisfied);
            assert!(!report.missing().is_empty() || !report.forbidden().is_empty());
        }
    }
    // `not` never grants more than the complement; over concrete scopes it is the
    // complement exactly (a wildcard under `not` means "none of it", so `not admin:*`
    // and `admin:*` can both fail).
    let negated = requirement.clone().not().is_satisfied_by(&granted);
    assert!(
        !(negated && satisfied),
        "{canonical:?}: both it and its negation hold"
    );
    if requirement.scopes().all(|scope| scope.is_concrete()) {
        assert_eq!(negated, !satisfied, "{canonical:?}");
    }
});
