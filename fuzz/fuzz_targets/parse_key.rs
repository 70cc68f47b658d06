//! `parse_key` and `KeyFormat::parse` on arbitrary input: no panics, the two parsers agree,
//! accepted keys reassemble into the input, and no single-byte substitution of a valid key
//! is accepted.
#![no_main]

use keymint::{KeyFormat, ParsedKey, parse_key};
use libfuzzer_sys::fuzz_target;

/// A valid `sk_live` key (the example of the format contract).
const KNOWN: &str = "sk_live_AbC123xyZ789_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx1j4R67";

fn formats() -> [KeyFormat; 2] {
    [
        KeyFormat::new("sk_live").expect("valid format"),
        KeyFormat::builder("acme_prod_v2")
            .id_len(8)
            .secret_len(64)
            .build()
            .expect("valid format"),
    ]
}

fn check_accepted(text: &str, parsed: &ParsedKey<'_>) {
    let (prefix, id, secret) = (parsed.prefix(), parsed.id(), parsed.expose_secret());
    // The parts and a 6-character checksum are the whole input.
    assert_eq!(format!("{prefix}_{id}_{secret}"), text[..text.len() - 6]);
    // Whatever parses is a key some valid format could have minted, and that format
    // accepts it with the same parts.
    let format = KeyFormat::builder(prefix)
        .id_len(id.len())
        .secret_len(secret.len())
        .build()
        .expect("accepted parts form a valid format");
    assert_eq!(format.key_len(), text.len());
    let again = format.parse(text).expect("its own format accepts it");
    assert_eq!(
        (again.prefix(), again.id(), again.expose_secret()),
        (prefix, id, secret)
    );
    assert_eq!(parsed.key_id().as_str(), id);
    let hint = parsed.hint();
    assert!(hint.as_str().starts_with(&format!("{prefix}_{id}_")));
    assert!(!hint.as_str().contains(secret));
    assert!(!format!("{parsed:?}").contains(secret));
}

fuzz_target!(|data: &[u8]| {
    // Single-byte substitution of a known key: the checksum must catch every one.
    if let [at, byte, ..] = *data {
        let mut mutated = KNOWN.as_bytes().to_vec();
        let at = usize::from(at) % mutated.len();
        if mutated[at] != byte {
            mutated[at] = byte;
            if let Ok(text) = std::str::from_utf8(&mutated) {
                assert!(parse_key(text).is_err(), "substitution accepted: {text:?}");
            }
        }
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let any = parse_key(text);
    if let Ok(parsed) = &any {
        check_accepted(text, parsed);
    }
    for format in formats() {
        match format.parse(text) {
            Ok(parsed) => {
                // A format is stricter than parse_key, never looser.
                let general = any
                    .as_ref()
                    .expect("parse_key accepts what a format accepts");
                assert_eq!(parsed.prefix(), format.prefix().as_str());
                assert_eq!(parsed.id().len(), format.id_len());
                assert_eq!(parsed.expose_secret(), general.expose_secret());
                assert_eq!(text.len(), format.key_len());
            }
            Err(_) => {
                if let Ok(general) = &any {
                    let same_shape = general.prefix() == format.prefix().as_str()
                        && general.id().len() == format.id_len()
                        && general.expose_secret().len() == format.secret_len();
                    assert!(!same_shape, "format rejected a key of its own shape");
                }
            }
        }
    }
});
