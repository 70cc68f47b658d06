//! `Phc::parse` and `HashPolicy::verify` (cheap Argon2id plus HMAC-SHA-256) on arbitrary
//! stored strings. Input: the secret, a newline, the stored PHC string.
#![no_main]

use std::sync::OnceLock;

use keymint::hash::Phc;
use keymint::{Argon2idHasher, HashPolicy, HmacSha256Hasher, Pepper, PhcHash, Verdict};
use libfuzzer_sys::fuzz_target;

/// The costs a stored Argon2 string may ask for here. The library caps memory at 1 GiB per
/// verify, which is right for a server and far too much per fuzz execution.
const MAX_M_KIB: u32 = 256;
const MAX_T: u32 = 4;
const MAX_P: u32 = 4;

fn policy() -> &'static HashPolicy {
    static POLICY: OnceLock<HashPolicy> = OnceLock::new();
    POLICY.get_or_init(|| {
        let argon = Argon2idHasher::builder()
            .m_cost(16)
            .t_cost(1)
            .build()
            .expect("valid parameters");
        let hmac = HmacSha256Hasher::new("k1", Pepper::new([7u8; 32]).expect("32 bytes"))
            .expect("valid kid");
        HashPolicy::new(argon).accept(hmac)
    })
}

fn cheap(phc: &Phc<'_>) -> bool {
    if !phc.algorithm().starts_with("argon2") {
        return true;
    }
    let cost = |name, max| phc.decimal_param(name).map_or(true, |v| v <= max);
    cost("m", MAX_M_KIB) && cost("t", MAX_T) && cost("p", MAX_P)
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let secret = &data[..split];
    let Ok(stored) = std::str::from_utf8(data.get(split + 1..).unwrap_or_default()) else {
        return;
    };
    let parsed = Phc::parse(stored);
    assert_eq!(parsed.is_ok(), PhcHash::new(stored).is_ok());
    let Ok(phc) = parsed else {
        // Unreadable strings are refused the same way by the policy.
        assert!(policy().verify(secret, stored).is_err());
        return;
    };
    if !cheap(&phc) {
        return;
    }
    // Reading every field of an accepted string never panics either.
    let _ = (phc.version(), phc.param("m"), phc.salt(), phc.hash());
    if let Ok(Verdict::Match { .. }) = policy().verify(secret, stored) {
        assert!(matches!(phc.algorithm(), "argon2id" | "hmac-sha256"));
    }
});
