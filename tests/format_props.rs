//! Property tests for the key format, the scanner and PHC handling.
//!
//! Keys are built here from proptest-chosen parts with an independent reference checksum
//! (a bitwise CRC-32 and base62 written from the format contract), so the properties check
//! the library against the specification rather than against itself, and every failure
//! shrinks and replays deterministically.
//!
//! The last tests install a counting global allocator (the `allocation-counter` dev
//! dependency, which counts per thread) to pin that rejections never touch the heap.

// Helpers and strategies outside `#[test]` functions unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::ops::Range;

use keymint::{
    Argon2idHasher, HashPolicy, HmacSha256Hasher, KeyFormat, ParseError, Pepper, Scanner, Verdict,
    hash::Phc, parse_key,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

#[path = "support/format_reference.rs"]
#[allow(dead_code)] // the key-moving helpers serve other test binaries
mod format_reference;
use format_reference::{BASE62, reference_checksum};

/// `cases` cases per property; failures are saved beside this file in
/// `format_props.proptest-regressions` (commit it: the saved cases run first next time).
/// Integration tests have no `lib.rs` above them, so proptest's default location does not
/// apply here.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// A key's parts and its full text.
#[derive(Clone, Debug)]
struct Key {
    prefix: String,
    id: String,
    secret: String,
    text: String,
}

impl Key {
    fn new(prefix: String, id: String, secret: String) -> Self {
        let body = format!("{prefix}_{id}_{secret}");
        let text = format!("{body}{}", reference_checksum(&body));
        Self {
            prefix,
            id,
            secret,
            text,
        }
    }

    fn format(&self) -> KeyFormat {
        KeyFormat::builder(&self.prefix)
            .id_len(self.id.len())
            .secret_len(self.secret.len())
            .build()
            .unwrap()
    }
}

/// Prefixes of 1..=4 segments of `a-z0-9`, at most 32 characters.
fn prefix() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z0-9]{1,8}", 1..=4)
        .prop_map(|segments| segments.join("_"))
        .prop_filter("prefix longer than 32", |p| p.len() <= 32)
}

fn base62(len: Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(BASE62.to_vec()), len)
        .prop_map(|chars| String::from_utf8(chars).unwrap())
}

/// Keys of any valid shape: prefix, id of 8..=32 and secret of 22..=64 characters.
fn key() -> impl Strategy<Value = Key> {
    (prefix(), base62(8..33), base62(22..65)).prop_map(|(p, i, s)| Key::new(p, i, s))
}

/// Keys whose id has exactly `id_len` characters.
fn key_with_id_len(id_len: usize) -> impl Strategy<Value = Key> {
    (prefix(), base62(id_len..id_len + 1), base62(22..65)).prop_map(|(p, i, s)| Key::new(p, i, s))
}

fn assert_parts(parsed: &keymint::ParsedKey<'_>, key: &Key) {
    assert_eq!(parsed.prefix(), key.prefix);
    assert_eq!(parsed.id(), key.id);
    assert_eq!(parsed.expose_secret(), key.secret);
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn built_keys_parse_back_into_their_parts(key in key()) {
        assert_parts(&parse_key(&key.text).unwrap(), &key);
        let format = key.format();
        assert_parts(&format.parse(&key.text).unwrap(), &key);
        prop_assert_eq!(format.key_len(), key.text.len());
        // The format's published regex matches its keys too.
        let re = regex::Regex::new(&format!("^{}$", format.regex())).unwrap();
        prop_assert!(re.is_match(&key.text));
    }

    #[test]
    fn generated_keys_parse_back_into_their_parts(
        prefix in prefix(),
        id_len in 8usize..=32,
        secret_len in 22usize..=64,
    ) {
        let format = KeyFormat::builder(&prefix)
            .id_len(id_len)
            .secret_len(secret_len)
            .build()
            .unwrap();
        let generated = format.generate().unwrap();
        let text = generated.expose_secret();
        let expected = generated.parsed();
        // The generator agrees with the reference checksum.
        let (body, checksum) = text.split_at(text.len() - 6);
        prop_assert_eq!(reference_checksum(body), checksum);
        for parsed in [parse_key(text).unwrap(), format.parse(text).unwrap()] {
            prop_assert_eq!(parsed.prefix(), prefix.as_str());
            prop_assert_eq!(parsed.id(), generated.id().as_str());
            prop_assert_eq!(parsed.id().len(), id_len);
            prop_assert_eq!(parsed.expose_secret(), expected.expose_secret());
            prop_assert_eq!(parsed.expose_secret().len(), secret_len);
        }
    }

    #[test]
    fn hints_never_contain_the_secret(key in key()) {
        let parsed = parse_key(&key.text).unwrap();
        let hint = parsed.hint();
        let tail = &key.text[key.text.len() - 4..];
        prop_assert_eq!(hint.as_str(), format!("{}_{}_…{tail}", key.prefix, key.id));
        let finding = Scanner::with_id_len(key.id.len())
            .unwrap()
            .scan(key.text.as_bytes())
            .next()
            .unwrap();
        let generated = key.format().generate().unwrap();
        let generated_secret = generated.parsed().expose_secret().to_owned();
        for (shown, secret) in [
            (hint.to_string(), &key.secret),
            (format!("{hint:?}"), &key.secret),
            (format!("{parsed:?}"), &key.secret),
            (format!("{finding:?}"), &key.secret),
            (finding.hint().to_string(), &key.secret),
            (generated.hint().to_string(), &generated_secret),
            (format!("{generated:?}"), &generated_secret),
        ] {
            prop_assert!(!shown.contains(secret.as_str()), "{} shows the secret", shown);
        }
    }
}

proptest! {
    // Each case parses ~95 substitutions at each of up to 140 positions, twice.
    #![proptest_config(config(48))]

    /// The checksum guarantee: no single-character substitution at any position yields a
    /// key that parses, and every base62-for-base62 substitution in the id, secret or
    /// checksum is caught by the checksum itself.
    #[test]
    fn every_single_character_substitution_is_rejected(key in key()) {
        let format = key.format();
        let original = key.text.as_bytes();
        let id_start = key.prefix.len() + 1;
        let mut mutated = original.to_vec();
        for position in 0..original.len() {
            for replacement in 0x20u8..=0x7E {
                if replacement == original[position] {
                    continue;
                }
                mutated[position] = replacement;
                let text = std::str::from_utf8(&mutated).unwrap();
                let any = parse_key(text);
                let exact = format.parse(text);
                prop_assert!(any.is_err(), "{:?} accepted by parse_key", text);
                prop_assert!(exact.is_err(), "{:?} accepted by KeyFormat::parse", text);
                let structural = original[position] == b'_';
                if position >= id_start && !structural && BASE62.contains(&replacement) {
                    prop_assert_eq!(any.unwrap_err(), ParseError::ChecksumMismatch);
                    prop_assert_eq!(exact.unwrap_err(), ParseError::ChecksumMismatch);
                }
            }
            mutated[position] = original[position];
        }
    }
}

/// Keys of any shape, or of the `sk_live` default format that the tests below parse with.
fn any_key() -> impl Strategy<Value = Key> {
    prop_oneof![
        key(),
        (base62(12..13), base62(32..33)).prop_map(|(i, s)| Key::new("sk_live".into(), i, s)),
    ]
}

/// Text that looks like keys: the key alphabet, separators and a few other characters.
fn key_like_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9_]{0,40}_[0-9A-Za-z_]{0,40}_[0-9A-Za-z_]{0,80}",
        "[0-9A-Za-z_ .\u{e9}-]{0,200}",
        key().prop_map(|k| k.text),
        (any_key(), any::<prop::sample::Index>(), "[ -~]{0,3}").prop_map(|(k, at, insert)| {
            let mut text = k.text;
            text.insert_str(at.index(text.len() + 1), &insert);
            text
        }),
        (any_key(), any::<prop::sample::Index>()).prop_map(|(k, at)| {
            let cut = at.index(k.text.len() + 1);
            k.text[..cut].to_owned()
        }),
    ]
}

/// The parser of the format contract, written plainly: the checks and their order as
/// documented on `parse_key`. `format` narrows prefix and lengths as `KeyFormat::parse` does.
/// Returns where the prefix and id end.
fn reference_parse(text: &str, format: Option<&KeyFormat>) -> Result<(usize, usize), ParseError> {
    use keymint::format::{MAX_ID_LEN, MAX_KEY_LEN, MAX_SECRET_LEN, MIN_ID_LEN, MIN_SECRET_LEN};
    let bytes = text.as_bytes();
    let max = format.map_or(MAX_KEY_LEN, KeyFormat::key_len);
    if bytes.is_empty() {
        return Err(ParseError::Empty);
    }
    if bytes.len() > max {
        return Err(ParseError::TooLong {
            len: bytes.len(),
            max,
        });
    }
    if let Some(position) = bytes
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(ParseError::InvalidCharacter { position });
    }
    let id_end = text.rfind('_').ok_or(ParseError::MissingSeparator)?;
    let prefix_end = text[..id_end]
        .rfind('_')
        .ok_or(ParseError::MissingSeparator)?;
    let prefix = &text[..prefix_end];
    let segments_ok = prefix.split('_').all(|seg| {
        !seg.is_empty()
            && seg
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if !segments_ok || prefix.len() > 32 {
        return Err(ParseError::InvalidPrefix);
    }
    let (id_range, secret_range) = match format {
        Some(f) if prefix != f.prefix().as_str() => return Err(ParseError::PrefixMismatch),
        Some(f) => ((f.id_len(), f.id_len()), (f.secret_len(), f.secret_len())),
        None => ((MIN_ID_LEN, MAX_ID_LEN), (MIN_SECRET_LEN, MAX_SECRET_LEN)),
    };
    let id_len = id_end - prefix_end - 1;
    if !(id_range.0..=id_range.1).contains(&id_len) {
        return Err(ParseError::IdLength {
            found: id_len,
            min: id_range.0,
            max: id_range.1,
        });
    }
    let tail_len = bytes.len() - id_end - 1;
    let secret_len = tail_len.saturating_sub(6);
    if tail_len <= 6 || !(secret_range.0..=secret_range.1).contains(&secret_len) {
        return Err(ParseError::SecretLength {
            found: secret_len,
            min: secret_range.0,
            max: secret_range.1,
        });
    }
    let (body, checksum) = text.split_at(text.len() - 6);
    if reference_checksum(body) != checksum {
        return Err(ParseError::ChecksumMismatch);
    }
    Ok((prefix_end, id_end))
}

proptest! {
    #![proptest_config(config(256))]

    /// The optimised parser gives exactly the reference parser's answer, error included.
    #[test]
    fn parsers_agree_with_the_reference_parser(text in key_like_text()) {
        let format = KeyFormat::new("sk_live").unwrap();
        let widest = KeyFormat::builder("acme_prod_v2").id_len(8).secret_len(64).build().unwrap();
        let parts = |parsed: keymint::ParsedKey<'_>| {
            (parsed.prefix().len(), parsed.prefix().len() + 1 + parsed.id().len())
        };
        prop_assert_eq!(parse_key(&text).map(parts), reference_parse(&text, None));
        for f in [&format, &widest] {
            prop_assert_eq!(f.parse(&text).map(parts), reference_parse(&text, Some(f)));
        }
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_strings(text in key_like_text()) {
        let format = KeyFormat::new("sk_live").unwrap();
        if let Ok(parsed) = parse_key(&text) {
            // Whatever parses is a well-formed key that reassembles into the input.
            let rebuilt = format!("{}_{}_{}", parsed.prefix(), parsed.id(), parsed.expose_secret());
            prop_assert_eq!(format!("{rebuilt}{}", reference_checksum(&rebuilt)), text.clone());
        }
        if let Ok(parsed) = format.parse(&text) {
            prop_assert_eq!(parsed.prefix(), "sk_live");
            prop_assert!(parse_key(&text).is_ok());
        }
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_key(&text);
        let _ = KeyFormat::new("k").unwrap().parse(&text);
        let _ = Phc::parse(&text);
    }

    #[test]
    fn scanner_never_panics_and_reports_only_valid_keys(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..600),
            key_like_text().prop_map(String::into_bytes),
        ],
        id_len in 8usize..=32,
    ) {
        let scanners = [
            Scanner::new(),
            Scanner::with_id_len(id_len).unwrap(),
            Scanner::for_formats([KeyFormat::new("sk_live").unwrap()]),
        ];
        for scanner in &scanners {
            let mut last_end = 0;
            for finding in scanner.scan(&bytes) {
                let range = finding.range();
                prop_assert!(range.start >= last_end);
                last_end = range.end;
                let text = std::str::from_utf8(&bytes[range]).unwrap();
                prop_assert!(parse_key(text).is_ok());
            }
        }
    }
}

/// Filler text: printable ASCII plus a few non-ASCII characters, no keys in it (a random
/// word passes the checksum with probability 2^-32).
fn filler() -> impl Strategy<Value = String> {
    "[ -~\n\t\u{e9}\u{20ac}]{0,60}"
}

/// Characters that end a word: neither base62 nor `_`.
fn separator() -> impl Strategy<Value = String> {
    "[ \n\t\"'=:;,(){}<>.\\-/\u{e9}]{1,3}"
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn scanner_finds_exactly_the_embedded_keys(
        (id_len, keys) in (8usize..=32).prop_flat_map(|n| {
            (Just(n), prop::collection::vec((filler(), separator(), key_with_id_len(n), separator()), 0..6))
        }),
        tail in filler(),
    ) {
        let mut text = String::new();
        let mut expected = Vec::new();
        for (filler, left, key, right) in &keys {
            text.push_str(filler);
            text.push_str(left);
            let start = text.len();
            text.push_str(&key.text);
            expected.push((start..text.len(), key.clone()));
            text.push_str(right);
        }
        text.push_str(&tail);

        let any_prefix = Scanner::with_id_len(id_len).unwrap();
        let formats = Scanner::for_formats(keys.iter().map(|(_, _, k, _)| k.format()));
        for scanner in [any_prefix, formats] {
            let found: Vec<_> = scanner.scan(text.as_bytes()).collect();
            prop_assert_eq!(found.len(), expected.len(), "{:?} in {:?}", found, text);
            for (finding, (range, key)) in found.iter().zip(&expected) {
                prop_assert_eq!(finding.range(), range.clone());
                prop_assert_eq!(&text[finding.range()], key.text.as_str());
                prop_assert_eq!(finding.hint(), &parse_key(&key.text).unwrap().hint());
            }
        }
    }
}

/// PHC strings that look like keymint's: Argon2id with small costs, HMAC with a kid, and
/// near misses of both.
fn phc_like() -> impl Strategy<Value = String> {
    let b64 = "[A-Za-z0-9+/]{0,48}";
    prop_oneof![
        any::<String>(),
        (
            0u32..=80,
            0u32..=3,
            0u32..=3,
            b64,
            b64,
            prop::option::of(0u32..=20)
        )
            .prop_map(|(m, t, p, salt, hash, v)| {
                let v = v.map_or_else(String::new, |v| format!("$v={v}"));
                format!("$argon2id{v}$m={m},t={t},p={p}${salt}${hash}")
            }),
        (0u32..=80, b64, b64)
            .prop_map(|(m, salt, hash)| format!("$argon2id$v=19$m={m},t=1,p=1${salt}${hash}")),
        ("[a-z0-9-]{0,20}", b64, b64)
            .prop_map(|(kid, salt, hash)| format!("$hmac-sha256$kid={kid}${salt}${hash}")),
        "\\$[a-z0-9-]{0,12}(\\$v=[0-9]{1,4})?(\\$[a-z]{1,3}=[0-9A-Za-z+/.-]{0,6}(,[a-z]{1,3}=[0-9]{0,4}){0,9})?(\\$[A-Za-z0-9+/$]{0,40}){0,3}",
    ]
}

/// Costs low enough to compute in a property test; the guard keeps any future strategy
/// change from making a case allocate megabytes or run for seconds.
fn cheap_to_verify(stored: &str) -> bool {
    match Phc::parse(stored) {
        Ok(phc) if phc.algorithm() == Argon2idHasher::ALGORITHM => {
            let cost = |name| phc.decimal_param(name).unwrap_or(0);
            cost("m") <= 128 && cost("t") <= 3 && cost("p") <= 4
        }
        _ => true,
    }
}

fn cheap_policy(m_cost: u32) -> HashPolicy {
    let argon = Argon2idHasher::builder()
        .m_cost(m_cost)
        .t_cost(1)
        .build()
        .unwrap();
    let hmac = HmacSha256Hasher::new("k1", Pepper::new([7u8; 32]).unwrap()).unwrap();
    HashPolicy::new(argon).accept(hmac)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn phc_parse_and_verify_never_panic(
        stored in phc_like(),
        secret in prop::collection::vec(any::<u8>(), 0..80),
        m_cost in 8u32..=64,
    ) {
        let _ = Phc::parse(&stored);
        prop_assume!(cheap_to_verify(&stored));
        let _ = cheap_policy(m_cost).verify(&secret, &stored);
    }

    #[test]
    fn verify_matches_only_the_hashed_secret_and_survives_tampering(
        secret in prop::collection::vec(any::<u8>(), 1..80),
        other in prop::collection::vec(any::<u8>(), 1..80),
        m_cost in 8u32..=64,
        use_hmac in any::<bool>(),
        at in any::<prop::sample::Index>(),
        replacement in 0x20u8..=0x7E,
    ) {
        let policy = cheap_policy(m_cost);
        let stored = if use_hmac {
            let hmac = HmacSha256Hasher::new("k1", Pepper::new([7u8; 32]).unwrap()).unwrap();
            HashPolicy::new(hmac).hash(&secret).unwrap()
        } else {
            policy.hash(&secret).unwrap()
        };
        let expected = Verdict::Match { needs_rehash: use_hmac };
        prop_assert_eq!(policy.verify(&secret, stored.as_str()).unwrap(), expected);
        if other != secret {
            prop_assert_eq!(policy.verify(&other, stored.as_str()).unwrap(), Verdict::Mismatch);
        }
        let mut tampered = stored.as_str().as_bytes().to_vec();
        let at = at.index(tampered.len());
        tampered[at] = replacement;
        let tampered = String::from_utf8(tampered).unwrap();
        prop_assume!(cheap_to_verify(&tampered));
        let verdict = policy.verify(&secret, &tampered);
        if tampered != stored.as_str() {
            // A changed hash, salt, parameter or kid never matches (an equivalent spelling
            // of a parameter could, but PHC numbers have one canonical spelling).
            prop_assert!(!matches!(verdict, Ok(Verdict::Match { .. })), "{:?}", tampered);
        }
    }
}

/// A valid key and inputs each rejected for one reason.
fn rejections() -> (KeyFormat, String, Vec<String>) {
    let format = KeyFormat::new("sk_live").unwrap();
    let key = format.generate().unwrap().expose_secret().to_owned();
    let mut wrong_checksum = key.clone().into_bytes();
    let last = wrong_checksum.len() - 1;
    wrong_checksum[last] = if wrong_checksum[last] == b'a' {
        b'b'
    } else {
        b'a'
    };
    let too_long = "a".repeat(4096);
    let mut bad_char = key.clone();
    bad_char.replace_range(10..11, "-");
    let inputs = vec![
        String::from_utf8(wrong_checksum).unwrap(),
        too_long,
        bad_char,
    ];
    (format, key, inputs)
}

#[test]
fn the_allocation_counter_is_active() {
    // Guards the tests below against passing vacuously.
    let info = allocation_counter::measure(|| {
        std::hint::black_box(String::from("allocates"));
    });
    assert_eq!(info.count_total, 1);
}

#[test]
fn rejection_does_not_allocate() {
    let (format, _, inputs) = rejections();
    for input in &inputs {
        let info = allocation_counter::measure(|| {
            assert!(std::hint::black_box(parse_key(input)).is_err());
            assert!(std::hint::black_box(format.parse(input)).is_err());
        });
        assert_eq!(info.count_total, 0, "{} allocations", info.count_total);
    }
    assert_eq!(
        parse_key(&inputs[0]).unwrap_err(),
        ParseError::ChecksumMismatch
    );
    assert!(matches!(
        format.parse(&inputs[1]).unwrap_err(),
        ParseError::TooLong { .. }
    ));
    assert_eq!(
        parse_key(&inputs[2]).unwrap_err(),
        ParseError::InvalidCharacter { position: 10 }
    );
}

#[test]
fn successful_parse_and_keyless_scan_do_not_allocate() {
    let (format, key, inputs) = rejections();
    let text = format!("let x = \"{}\"; // {}\n", inputs[0], inputs[2]).repeat(50);
    let scanner = Scanner::new();
    let info = allocation_counter::measure(|| {
        assert!(std::hint::black_box(format.parse(&key)).is_ok());
        assert!(std::hint::black_box(parse_key(&key)).is_ok());
        assert_eq!(scanner.scan(text.as_bytes()).count(), 0);
    });
    assert_eq!(info.count_total, 0, "{} allocations", info.count_total);
}
