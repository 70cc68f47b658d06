//! The [`SecretHasher`] conformance checks.

use crate::hash::{HashError, Phc, SecretHasher};

const SECRET: &[u8] = b"kit secret 5vN1qQm3hZ8tA7wK2pR9";

#[allow(clippy::expect_used)]
fn hash<H: SecretHasher>(hasher: &H, secret: &[u8]) -> crate::hash::PhcHash {
    hasher.hash(secret).expect("hashing must succeed")
}

/// A hash verifies against the secret it was made from.
pub async fn hash_then_verify_matches<H: SecretHasher>(hasher: &H) {
    let stored = hash(hasher, SECRET);
    #[allow(clippy::expect_used)]
    let phc = stored.phc().expect("a well-formed PHC string");
    assert_eq!(
        hasher.verify(SECRET, &phc),
        Ok(true),
        "the hashed secret must verify"
    );
}

/// Any other secret does not match (and is not an error).
pub async fn a_wrong_secret_does_not_match<H: SecretHasher>(hasher: &H) {
    let stored = hash(hasher, SECRET);
    #[allow(clippy::expect_used)]
    let phc = stored.phc().expect("a well-formed PHC string");
    for wrong in [&b""[..], b"kit secret 5vN1qQm3hZ8tA7wK2pR8", &SECRET[1..]] {
        assert_eq!(
            hasher.verify(wrong, &phc),
            Ok(false),
            "a wrong secret must not match"
        );
    }
}

/// Two hashes of one secret differ (a fresh salt each time).
pub async fn every_hash_has_its_own_salt<H: SecretHasher>(hasher: &H) {
    assert_ne!(
        hash(hasher, SECRET),
        hash(hasher, SECRET),
        "hashes of one secret must differ"
    );
}

/// Hashes are PHC strings of the hasher's algorithm, which it accepts, and hold nothing of
/// the secret in clear.
pub async fn hashes_are_phc_strings_of_its_algorithm<H: SecretHasher>(hasher: &H) {
    let stored = hash(hasher, SECRET);
    #[allow(clippy::expect_used)]
    let phc = Phc::parse(stored.as_str()).expect("a well-formed PHC string");
    assert_eq!(phc.algorithm(), hasher.algorithm());
    assert!(hasher.accepts(&phc), "a hasher must accept its own hashes");
    let text = String::from_utf8_lossy(SECRET);
    assert!(
        !stored.as_str().contains(&*text),
        "the secret must not appear in the hash"
    );
}

/// A hash just made with the current parameters needs no rehash.
pub async fn a_fresh_hash_needs_no_rehash<H: SecretHasher>(hasher: &H) {
    let stored = hash(hasher, SECRET);
    #[allow(clippy::expect_used)]
    let phc = stored.phc().expect("a well-formed PHC string");
    assert!(!hasher.needs_rehash(&phc));
}

/// Changing any character of the stored output never makes it match.
pub async fn a_tampered_hash_never_matches<H: SecretHasher>(hasher: &H) {
    let stored = hash(hasher, SECRET);
    let text = stored.as_str();
    let output_start = text.rfind('$').map_or(0, |i| i + 1);
    for at in output_start..text.len() {
        let mut tampered = text.as_bytes().to_vec();
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        let Ok(tampered) = String::from_utf8(tampered) else {
            continue;
        };
        if let Ok(phc) = Phc::parse(&tampered) {
            assert_ne!(
                hasher.verify(SECRET, &phc),
                Ok(true),
                "a hash changed at byte {at} must not match"
            );
        }
    }
}

/// Stored strings it cannot read (other algorithms, missing or short parts) are errors,
/// never a match and never a panic.
pub async fn unreadable_and_foreign_hashes_are_errors<H: SecretHasher>(hasher: &H) {
    let stored = hash(hasher, SECRET);
    let text = stored.as_str();
    let foreign = format!("$kit-foreign${}", text.rsplit('$').next().unwrap_or("AAAA"));
    let truncated = &text[..text.rfind('$').unwrap_or(text.len())];
    for bad in [foreign.as_str(), truncated] {
        if let Ok(phc) = Phc::parse(bad) {
            let result = hasher.verify(SECRET, &phc);
            assert!(
                matches!(
                    result,
                    Err(HashError::UnsupportedAlgorithm(_)
                        | HashError::Malformed(_)
                        | HashError::UnsupportedParams(_))
                ) || result == Ok(false),
                "an unreadable hash must be an error (or at least no match), got {result:?} for {bad:?}"
            );
            assert_ne!(result, Ok(true));
        }
    }
}
