use super::*;
use crate::format::ParseError;

const KNOWN: &str = "sk_live_AbC123xyZ789_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx1j4R67";

fn live() -> KeyFormat {
    KeyFormat::new("sk_live").unwrap()
}

#[test]
fn known_key_parses_into_its_parts() {
    let key = live().parse(KNOWN).unwrap();
    assert_eq!(key.prefix(), "sk_live");
    assert_eq!(key.id(), "AbC123xyZ789");
    assert_eq!(key.expose_secret(), "x".repeat(32));
    assert_eq!(key.hint().as_str(), "sk_live_AbC123xyZ789_…4R67");
}

#[test]
fn generated_keys_have_the_exact_shape() {
    let format = live();
    let key = format.generate().unwrap();
    let text = key.expose_secret();
    assert_eq!(text.len(), 8 + 12 + 1 + 32 + 6);
    assert!(text.starts_with("sk_live_"));
    assert_eq!(&text[20..21], "_");
    assert_eq!(key.id().as_str(), &text[8..20]);
    let parsed = format.parse(text).unwrap();
    assert_eq!(parsed.id(), key.id().as_str());
    assert_eq!(parsed.expose_secret(), key.parsed().expose_secret());
    assert_eq!(parsed.hint(), key.hint());
    assert!(key.hint().as_str().ends_with(&text[text.len() - 4..]));
}

#[test]
fn generated_keys_differ() {
    let format = live();
    let a = format.generate().unwrap();
    let b = format.generate().unwrap();
    assert_ne!(a.id(), b.id());
    assert_ne!(a.expose_secret(), b.expose_secret());
}

#[test]
fn each_rejection_cause_has_its_own_error() {
    let f = live();
    let long = "a".repeat(f.key_len() + 1);
    let cases: Vec<(String, ParseError)> = vec![
        (String::new(), ParseError::Empty),
        (
            long.clone(),
            ParseError::TooLong {
                len: long.len(),
                max: f.key_len(),
            },
        ),
        (
            KNOWN.replace('A', "-"),
            ParseError::InvalidCharacter { position: 8 },
        ),
        (
            "skliveAbC123xyZ789xxxx".into(),
            ParseError::MissingSeparator,
        ),
        (
            KNOWN.replacen("sk_live", "sk_Live", 1),
            ParseError::InvalidPrefix,
        ),
        (
            KNOWN.replacen("sk_live", "pk_live", 1),
            ParseError::PrefixMismatch,
        ),
        (
            KNOWN.replacen("AbC123xyZ789", "AbC123xyZ78", 1),
            ParseError::IdLength {
                found: 11,
                min: 12,
                max: 12,
            },
        ),
        (
            KNOWN.replacen("xx1j4R67", "x1j4R67", 1),
            ParseError::SecretLength {
                found: 31,
                min: 32,
                max: 32,
            },
        ),
        (
            KNOWN.replacen("1j4R67", "1j4R68", 1),
            ParseError::ChecksumMismatch,
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(f.parse(&input).unwrap_err(), expected, "{input:?}");
    }
}

#[test]
fn errors_and_debug_never_contain_the_secret() {
    let key = live().generate().unwrap();
    let secret = key.parsed().expose_secret().to_owned();
    let mut corrupted = key.expose_secret().to_owned();
    corrupted.pop();
    corrupted.push('!');
    let err = live().parse(&corrupted).unwrap_err();
    for shown in [
        format!("{err}"),
        format!("{err:?}"),
        format!("{key:?}"),
        format!("{:?}", key.parsed()),
        format!("{}", key.hint()),
    ] {
        assert!(!shown.contains(&secret), "{shown}");
        assert!(!shown.contains(&secret[..8]), "{shown}");
    }
}

#[test]
fn checksum_covers_the_prefix() {
    // The same id and secret under another prefix must not carry over the checksum.
    let moved = KNOWN.replacen("sk_live", "sk_test", 1);
    assert_eq!(parse_key(&moved).unwrap_err(), ParseError::ChecksumMismatch);
}

#[test]
fn parse_key_accepts_any_format() {
    let f = KeyFormat::builder("acme_prod_v2")
        .id_len(8)
        .secret_len(64)
        .build()
        .unwrap();
    let key = f.generate().unwrap();
    let parsed = parse_key(key.expose_secret()).unwrap();
    assert_eq!(parsed.prefix(), "acme_prod_v2");
    assert_eq!(parsed.id().len(), 8);
    assert_eq!(parsed.expose_secret().len(), 64);
}

#[test]
fn builder_rejects_out_of_range_lengths() {
    assert_eq!(
        KeyFormat::builder("a").id_len(7).build(),
        Err(FormatError::IdLength(7))
    );
    assert_eq!(
        KeyFormat::builder("a").id_len(33).build(),
        Err(FormatError::IdLength(33))
    );
    assert_eq!(
        KeyFormat::builder("a").secret_len(21).build(),
        Err(FormatError::SecretLength(21))
    );
    assert_eq!(
        KeyFormat::builder("a").secret_len(65).build(),
        Err(FormatError::SecretLength(65))
    );
    assert_eq!(
        KeyFormat::builder("A").build(),
        Err(FormatError::InvalidPrefix)
    );
    let widest = KeyFormat::builder(&"p".repeat(32))
        .id_len(32)
        .secret_len(64)
        .build()
        .unwrap();
    assert_eq!(widest.key_len(), MAX_KEY_LEN);
}

#[test]
fn regex_matches_generated_keys_and_not_corrupted_shapes() {
    let f = live();
    let re = regex::Regex::new(&f.regex()).unwrap();
    let generic = regex::Regex::new(GENERIC_REGEX).unwrap();
    let key = f.generate().unwrap();
    let text = format!("token={} ", key.expose_secret());
    assert_eq!(
        re.find(&text).map(|m| m.as_str()),
        Some(key.expose_secret())
    );
    assert_eq!(
        generic.find(&text).map(|m| m.as_str()),
        Some(key.expose_secret())
    );
    assert!(!re.is_match(&format!("X{}", key.expose_secret())));
}

#[test]
fn scanner_finds_keys_by_position_and_skips_bad_checksums() {
    let f = live();
    let a = f.generate().unwrap();
    let b = KeyFormat::builder("ghp")
        .secret_len(40)
        .build()
        .unwrap()
        .generate()
        .unwrap();
    let mut bad = a.expose_secret().to_owned();
    bad.replace_range(30..31, if &bad[30..31] == "a" { "b" } else { "a" });
    let text = format!(
        "x {}\n\"{}\" {} ({})",
        a.expose_secret(),
        bad,
        b.expose_secret(),
        a.expose_secret()
    );
    let found: Vec<Finding> = Scanner::new().scan(text.as_bytes()).collect();
    assert_eq!(found.len(), 3);
    assert_eq!(&text[found[0].range()], a.expose_secret());
    assert_eq!(&text[found[1].range()], b.expose_secret());
    assert_eq!(&text[found[2].range()], a.expose_secret());
    assert_eq!(found[1].hint(), &b.hint());

    let only_live: Vec<Finding> = Scanner::for_formats([f]).scan(text.as_bytes()).collect();
    assert_eq!(only_live.len(), 2);
}

#[test]
fn scanner_respects_word_boundaries() {
    let key = live().generate().unwrap();
    for glued in [
        format!("X{}", key.expose_secret()),
        format!("{}Z", key.expose_secret()),
        format!("{}_", key.expose_secret()),
    ] {
        assert_eq!(Scanner::new().scan(glued.as_bytes()).count(), 0, "{glued}");
    }
    let ok = format!("key:{};", key.expose_secret());
    assert_eq!(Scanner::new().scan(ok.as_bytes()).count(), 1);
}

#[test]
fn scanner_id_len_must_match() {
    let key = KeyFormat::builder("k")
        .id_len(16)
        .build()
        .unwrap()
        .generate()
        .unwrap();
    assert_eq!(
        Scanner::new().scan(key.expose_secret().as_bytes()).count(),
        0
    );
    assert_eq!(
        Scanner::with_id_len(16)
            .unwrap()
            .scan(key.expose_secret().as_bytes())
            .count(),
        1
    );
    assert!(Scanner::with_id_len(7).is_err());
}
