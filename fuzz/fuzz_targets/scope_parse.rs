//! `Scope::new` on arbitrary input: no panics, accepted text is kept as is and prints back
//! to an equal scope; and, with input lines read as grants then one required scope, the
//! compiled `ScopeSet` agrees with checking the grants one by one.
#![no_main]

use keymint::{Scope, ScopeSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(scope) = Scope::new(text) {
        assert_eq!(scope.as_str(), text);
        assert_eq!(scope.to_string().parse::<Scope>(), Ok(scope.clone()));
        assert_eq!(scope.is_concrete(), !text.contains('*'));
        assert!(scope.covers(&scope));
        assert!(ScopeSet::new([scope.clone()]).covers(&scope));
    }

    let mut lines: Vec<&str> = text.lines().collect();
    let Some(required) = lines.pop().and_then(|line| Scope::new(line).ok()) else {
        return;
    };
    let grants: Vec<Scope> = lines
        .iter()
        .filter_map(|line| Scope::new(line).ok())
        .collect();
    let set = ScopeSet::new(grants.iter().cloned());
    let one_by_one = grants.iter().any(|grant| grant.covers(&required));
    assert_eq!(
        set.covers(&required),
        one_by_one,
        "{grants:?} covers {required}"
    );
    assert!(set.len() <= grants.len());
});
