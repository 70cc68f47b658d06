//! Hostile input, generated: over 10 000 bad inputs from a seeded generator — strings up to
//! 1 MiB, NUL bytes, non-ASCII text and invalid UTF-8, near-miss keys, keys with a valid
//! checksum but an unknown id, huge and deeply nested scope expressions, malformed stored
//! PHC strings and malformed stored records — through the key parsers, the keyring, the
//! scope requirement parser, the hash policy and the HTTP layer.
//!
//! Each input must be refused with the error its kind calls for (never accepted, never a
//! panic), and each refusal must be quick: every input is timed, none may take longer than
//! [`CEILING`], and each test's inputs together stay under [`BUDGET`]. The generator is
//! seeded (every run makes the same kinds of damage in the same places); keys and records
//! are minted afresh each run, so a failure prints the input it failed on.

#![cfg(all(feature = "axum", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The generator takes bytes and small numbers from 64 random bits: truncation is the point.
#![allow(clippy::cast_possible_truncation)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use chrono::{DateTime, Utc};
use http::{Request, StatusCode};
use keymint::format::MAX_KEY_LEN;
use keymint::hash::{MAX_PHC_LEN, Phc};
use keymint::http::{KeyAuth, PeerAddr, Tls};
use keymint::scope::{MAX_REQUIREMENT_DEPTH, MAX_REQUIREMENT_LEN, MAX_SCOPE_LEN};
use keymint::testing::{FaultyStore, StoreOp};
use keymint::{
    Argon2idHasher, Decrement, HashError, HashPolicy, HmacSha256Hasher, IssueRequest, KeyFormat,
    KeyId, KeyRecord, KeyStore, Keyring, MemoryStore, Page, PageRequest, ParseError, Pepper,
    PhcHash, Requirement, RequirementError, Scope, ScopeError, StoreError, Verdict, VerifyContext,
    VerifyError, parse_key,
};
use tower::ServiceExt;

#[path = "support/format_reference.rs"]
#[allow(dead_code)]
mod format_reference;
use format_reference::{BASE62, seal};

/// Longest any one refusal may take, however hostile its input (generous: a debug build on
/// a busy machine; the slowest seen are a few milliseconds, and refusals that read a
/// 1 MiB input in full or hash with hostile parameters would take far longer).
const CEILING: Duration = Duration::from_millis(500);
/// Longest one test's inputs may take together.
const BUDGET: Duration = Duration::from_secs(60);

/// 1 MiB: the longest input generated.
const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------
// Generation and timing.

/// xorshift64*: reproducible from its seed, no dependency.
struct Gen(u64);

impl Gen {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
    /// A length spread over every scale up to `max`: mostly short, some huge.
    fn length(&mut self, min: usize, max: usize) -> usize {
        let bits = usize::BITS - (max - min).leading_zeros();
        let cap = 1usize << self.below(bits as usize + 1);
        (min + self.below(cap.min(max - min) + 1)).min(max)
    }
    fn base62(&mut self) -> u8 {
        *self.pick(BASE62)
    }
}

/// Times every input of one test: none over [`CEILING`], all under [`BUDGET`].
struct Clock {
    name: &'static str,
    inputs: usize,
    total: Duration,
    slowest: (Duration, String),
}

impl Clock {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            inputs: 0,
            total: Duration::ZERO,
            slowest: (Duration::ZERO, String::new()),
        }
    }

    /// Records one input that took `took`; `what` describes it (for the slowest, and the
    /// failure message).
    fn record(&mut self, took: Duration, what: impl FnOnce() -> String) {
        self.inputs += 1;
        self.total += took;
        if took > self.slowest.0 {
            self.slowest = (took, what());
            assert!(
                took <= CEILING,
                "{}: one refusal took {took:?}: {}",
                self.name,
                self.slowest.1
            );
        }
    }

    fn time<T>(&mut self, what: impl FnOnce() -> String, work: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = work();
        self.record(start.elapsed(), what);
        out
    }

    fn finish(self, at_least: usize) {
        println!(
            "hostile {}: {} inputs in {:?}; slowest {:?} ({})",
            self.name, self.inputs, self.total, self.slowest.0, self.slowest.1
        );
        assert!(self.inputs >= at_least, "{}: too few inputs", self.name);
        assert!(
            self.total <= BUDGET,
            "{}: {:?} in total",
            self.name,
            self.total
        );
    }
}

/// A short description of a (possibly huge, possibly binary) input.
fn describe(input: &[u8]) -> String {
    let head = String::from_utf8_lossy(&input[..input.len().min(60)]).into_owned();
    format!("{} bytes: {head:?}", input.len())
}

/// Whether `b` may appear in a key (base62 or `_`).
fn key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

// ---------------------------------------------------------------------------------------
// Hostile keys.

/// What a generated key-like input is, and so how it must be refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Empty,
    /// Longer than any key (by [`MAX_KEY_LEN`]); up to 1 MiB.
    TooLong,
    /// A key with a NUL, a non-ASCII character or another byte no key has.
    BadCharacter,
    /// A valid key with one base62 character of its id, secret or checksum replaced, or
    /// two adjacent ones swapped: the checksum catches every such change.
    NearMiss,
    /// A well-formed key with a valid checksum and an id the store does not hold.
    UnknownId,
    /// Anything else: random text, random bytes (lossily decoded), keys cut or padded,
    /// separators moved.
    Garbage,
}

struct KeyGen<'k> {
    rng: Gen,
    /// Valid keys of the `sk_live` format.
    valid: &'k [String],
}

impl KeyGen<'_> {
    fn key(&mut self) -> &str {
        let i = self.rng.below(self.valid.len());
        &self.valid[i]
    }

    fn next(&mut self) -> (Kind, String) {
        let kind = match self.rng.below(20) {
            0 => Kind::Empty,
            1..=3 => Kind::TooLong,
            4..=7 => Kind::BadCharacter,
            8..=11 => Kind::NearMiss,
            12..=13 => Kind::UnknownId,
            _ => Kind::Garbage,
        };
        let text = match kind {
            Kind::Empty => String::new(),
            Kind::TooLong => {
                let len = self.rng.length(MAX_KEY_LEN + 1, MIB);
                let key = self.key().to_owned();
                key.bytes().cycle().take(len).map(char::from).collect()
            }
            Kind::BadCharacter => {
                let key = self.key().to_owned();
                let at = self.rng.below(key.len());
                let bad = *self.rng.pick(&[
                    "\0", "é", "\u{FFFD}", "\u{200D}", "😀", " ", "-", ".", "%00", "\t", "\u{7f}",
                    "Ａ",
                ]);
                let mut text = key;
                if self.rng.chance(2) {
                    text.replace_range(at..=at, bad);
                } else {
                    text.insert_str(at, bad);
                }
                text
            }
            Kind::NearMiss => {
                let key = self.key().to_owned();
                let mut bytes = key.into_bytes();
                // Past the prefix and its separator: id, secret or checksum.
                let first = "sk_live_".len();
                let at = first + self.rng.below(bytes.len() - first);
                if bytes[at] == b'_' || self.rng.chance(2) {
                    let at = if bytes[at] == b'_' { at + 1 } else { at };
                    let mut with = self.rng.base62();
                    while with == bytes[at] {
                        with = self.rng.base62();
                    }
                    bytes[at] = with;
                } else {
                    // Swap with a neighbour that differs (and is not a separator).
                    let next = if at + 1 < bytes.len() { at + 1 } else { at - 1 };
                    if bytes[next] == b'_' || bytes[next] == bytes[at] {
                        let mut with = self.rng.base62();
                        while with == bytes[at] {
                            with = self.rng.base62();
                        }
                        bytes[at] = with;
                    } else {
                        bytes.swap(at, next);
                    }
                }
                String::from_utf8(bytes).unwrap()
            }
            Kind::UnknownId => {
                let id: String = (0..12).map(|_| char::from(self.rng.base62())).collect();
                let secret: String = (0..32).map(|_| char::from(self.rng.base62())).collect();
                seal(&format!("sk_live_{id}_{secret}"))
            }
            Kind::Garbage => match self.rng.below(6) {
                0 => {
                    let len = self.rng.length(1, 200);
                    (0..len)
                        .map(|_| char::from(0x21 + self.rng.below(94) as u8))
                        .collect()
                }
                1 => {
                    let len = self.rng.length(1, 200);
                    String::from_utf8_lossy(&self.rng.bytes(len)).into_owned()
                }
                2 => {
                    let key = self.key().to_owned();
                    let cut = self.rng.below(key.len());
                    key[..cut].to_owned() + &key[cut + 1..]
                }
                3 => {
                    let key = self.key().to_owned();
                    let at = self.rng.below(key.len());
                    let mut text = key;
                    text.insert(at, char::from(self.rng.base62()));
                    text
                }
                4 => {
                    let key = self.key().to_owned();
                    let mut bytes = key.into_bytes();
                    let at = self.rng.below(bytes.len());
                    if bytes[at] == b'_' {
                        bytes.remove(at);
                    } else {
                        bytes[at] = b'_';
                    }
                    String::from_utf8(bytes).unwrap()
                }
                _ => {
                    let key = self.key().to_owned();
                    key.replace('_', "")
                }
            },
        };
        (kind, text)
    }
}

/// The error the documented order of checks gives for inputs of a kind whose refusal is
/// known exactly, for a parser capped at `max` bytes.
fn expected_parse_error(kind: Kind, text: &str, max: usize) -> Option<ParseError> {
    match kind {
        Kind::Empty => Some(ParseError::Empty),
        _ if text.len() > max => Some(ParseError::TooLong {
            len: text.len(),
            max,
        }),
        Kind::TooLong => unreachable!("longer than any key"),
        Kind::BadCharacter => Some(ParseError::InvalidCharacter {
            position: text.bytes().position(|b| !key_byte(b)).unwrap(),
        }),
        Kind::NearMiss => Some(ParseError::ChecksumMismatch),
        Kind::UnknownId | Kind::Garbage => None,
    }
}

/// Valid keys of the `sk_live` format (no store needed).
fn valid_keys(n: usize) -> Vec<String> {
    let format = KeyFormat::new("sk_live").unwrap();
    (0..n)
        .map(|_| format.generate().unwrap().expose_secret().to_owned())
        .collect()
}

#[test]
fn key_parsers_refuse_hostile_strings_with_the_documented_error() {
    let format = KeyFormat::new("sk_live").unwrap();
    let keys = valid_keys(16);
    let mut rng = KeyGen {
        rng: Gen::new(0x4B45_5931),
        valid: &keys,
    };
    let mut clock = Clock::new("key parsers");
    let mut by_kind: HashMap<String, usize> = HashMap::new();
    for _ in 0..3_000 {
        let (kind, text) = rng.next();
        *by_kind.entry(format!("{kind:?}")).or_default() += 1;
        let (general, strict) = clock.time(
            || format!("{kind:?} {}", describe(text.as_bytes())),
            || {
                (
                    parse_key(&text).map(|_| ()),
                    format.parse(&text).map(|_| ()),
                )
            },
        );
        match kind {
            Kind::UnknownId => {
                // Well-formed: the parsers cannot know the id is unknown.
                assert_eq!(general, Ok(()), "{text}");
                assert_eq!(strict, Ok(()), "{text}");
            }
            _ => {
                let general = general.expect_err(&text);
                let strict = strict.expect_err(&text);
                if let Some(want) = expected_parse_error(kind, &text, MAX_KEY_LEN) {
                    assert_eq!(
                        general,
                        want,
                        "parse_key, {kind:?}: {}",
                        describe(text.as_bytes())
                    );
                }
                if let Some(want) = expected_parse_error(kind, &text, format.key_len()) {
                    assert_eq!(
                        strict,
                        want,
                        "KeyFormat::parse, {kind:?}: {}",
                        describe(text.as_bytes())
                    );
                }
                // Errors carry positions and lengths, never the input.
                for error in [general, strict] {
                    let shown = error.to_string();
                    assert!(
                        text.get(..8).is_none_or(|head| !shown.contains(head)),
                        "{shown} echoes the input"
                    );
                }
            }
        }
    }
    println!("hostile key parsers: {by_kind:?}");
    clock.finish(3_000);
}

fn fast_hashes() -> HashPolicy {
    HashPolicy::new(
        Argon2idHasher::builder()
            .m_cost(64)
            .t_cost(1)
            .build()
            .unwrap(),
    )
}

#[test]
fn the_keyring_refuses_hostile_keys_and_only_well_formed_ones_reach_the_store() {
    let store = FaultyStore::new(MemoryStore::new());
    let keyring = Keyring::builder(KeyFormat::new("sk_live").unwrap(), store.clone())
        .hashes(fast_hashes())
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys: Vec<String> = rt.block_on(async {
        let mut keys = Vec::new();
        for i in 0..8 {
            let issued = keyring
                .issue(IssueRequest::new("acct", format!("k{i}")))
                .await
                .unwrap();
            keys.push(issued.key.expose_secret().to_owned());
        }
        keys
    });
    let mut rng = KeyGen {
        rng: Gen::new(0x4B52_0002),
        valid: &keys,
    };
    let format = KeyFormat::new("sk_live").unwrap();
    let mut clock = Clock::new("keyring");
    let ctx = VerifyContext::new();
    rt.block_on(async {
        for _ in 0..2_000 {
            let (kind, text) = rng.next();
            let reads = store.calls(StoreOp::Get);
            let start = Instant::now();
            let refused = keyring.verify(&text, &ctx).await.expect_err(&text);
            clock.record(start.elapsed(), || {
                format!("{kind:?} {}", describe(text.as_bytes()))
            });
            let reads = store.calls(StoreOp::Get) - reads;
            match format.parse(&text) {
                // Well-formed (an unknown id): one lookup, one hash, and the same answer as
                // a wrong secret.
                Ok(_) => {
                    assert!(matches!(refused, VerifyError::Invalid), "{refused:?}");
                    assert_eq!(reads, 1);
                }
                // Refused before any I/O, with the parser's own error.
                Err(ParseError::PrefixMismatch) => {
                    assert!(matches!(refused, VerifyError::UnknownPrefix), "{refused:?}");
                    assert_eq!(reads, 0);
                }
                Err(error) => {
                    assert!(
                        matches!(refused, VerifyError::Malformed(e) if e == error),
                        "{refused:?} for {error:?}"
                    );
                    assert_eq!(reads, 0, "a malformed key reached the store");
                }
            }
            assert_eq!(refused.status_code(), 401);
        }
    });
    clock.finish(2_000);
}

// ---------------------------------------------------------------------------------------
// Hostile scope requirements.

/// What a refusal of a requirement must look like.
type Expect = fn(&RequirementError) -> bool;

#[test]
fn requirement_parser_refuses_huge_and_deeply_nested_expressions() {
    let mut rng = Gen::new(0x0005_C09E);
    let mut clock = Clock::new("requirements");
    let tokens = [
        "a:read",
        "b:*",
        "*",
        "and",
        "or",
        "not",
        "(",
        ")",
        " ",
        "  ",
        "\t",
        ":",
        "a::b",
        "AND",
        "é",
        "\0",
        "users:read",
        "x",
        "not(",
        ")and(",
        "*:*",
        "a.b-c_d",
    ];
    for i in 0..2_500 {
        let (text, want): (String, Option<Expect>) = match i % 8 {
            // Parentheses nested past the limit (and within the length cap).
            0 => {
                let depth = MAX_REQUIREMENT_DEPTH + 1 + rng.below(2_000);
                let text = format!("{}a:read{}", "(".repeat(depth), ")".repeat(depth));
                let want: Expect = if text.len() > MAX_REQUIREMENT_LEN {
                    |e| matches!(e, RequirementError::TooLong { .. })
                } else {
                    |e| {
                        matches!(e, RequirementError::TooDeep { position, max }
                            if *position == MAX_REQUIREMENT_DEPTH && *max == MAX_REQUIREMENT_DEPTH)
                    }
                };
                (text, Some(want))
            }
            // `not not not … a`, past the limit.
            1 => {
                let depth = MAX_REQUIREMENT_DEPTH + 1 + rng.below(1_000);
                let text = format!("{}a:read", "not ".repeat(depth));
                let want: Expect = if text.len() > MAX_REQUIREMENT_LEN {
                    |e| matches!(e, RequirementError::TooLong { .. })
                } else {
                    |e| matches!(e, RequirementError::TooDeep { .. })
                };
                (text, Some(want))
            }
            // Longer than the cap, up to 1 MiB.
            2 => {
                let len = rng.length(MAX_REQUIREMENT_LEN + 1, MIB);
                let text: String = "a:read and ".chars().cycle().take(len).collect();
                (
                    text,
                    Some(|e: &RequirementError| matches!(e, RequirementError::TooLong { .. })),
                )
            }
            // A scope with a NUL or a non-ASCII character.
            3 => {
                let bad = *rng.pick(&["\0", "é", "😀", "Ａ", "\u{200D}"]);
                let text = format!("a:read and us{bad}ers:read");
                (
                    text,
                    Some(|e: &RequirementError| {
                        matches!(e, RequirementError::InvalidScope { position: 13, .. })
                    }),
                )
            }
            // A scope longer than scopes may be.
            4 => {
                let len = rng.length(MAX_SCOPE_LEN + 1, 4_000);
                let text = format!("a:read or {}", "x".repeat(len));
                (
                    text,
                    Some(|e: &RequirementError| {
                        matches!(
                            e,
                            RequirementError::InvalidScope {
                                source: ScopeError::TooLong { .. },
                                ..
                            }
                        )
                    }),
                )
            }
            // Unbalanced parentheses.
            5 => {
                let depth = 1 + rng.below(MAX_REQUIREMENT_DEPTH);
                let text = if rng.chance(2) {
                    format!("{}a:read", "(".repeat(depth))
                } else {
                    format!("a:read{}", ")".repeat(depth))
                };
                (
                    text,
                    Some(|e: &RequirementError| {
                        matches!(
                            e,
                            RequirementError::UnclosedParen { .. }
                                | RequirementError::UnmatchedParen { .. }
                        )
                    }),
                )
            }
            // Token soup (may parse: then it must print and parse back).
            _ => {
                let n = rng.length(1, 400);
                let text: String = (0..n)
                    .map(|_| *rng.pick(&tokens))
                    .collect::<Vec<_>>()
                    .join(" ");
                (text, None)
            }
        };
        let parsed = clock.time(|| describe(text.as_bytes()), || Requirement::parse(&text));
        match (parsed, want) {
            (Err(e), Some(want)) => {
                assert!(want(&e), "{e:?} for {}", describe(text.as_bytes()));
                let shown = e.to_string();
                assert!(
                    text.get(..16).is_none_or(|head| !shown.contains(head)),
                    "{shown}"
                );
            }
            (Ok(_), Some(_)) => panic!("accepted: {}", describe(text.as_bytes())),
            (Ok(requirement), None) => {
                let canonical = requirement.to_string();
                assert_eq!(Requirement::parse(&canonical).unwrap(), requirement);
            }
            (Err(_), None) => {}
        }
    }
    // Scopes themselves: too long, too many segments, segments too long, bad characters.
    for i in 0..500 {
        let text = match i % 4 {
            0 => "a".repeat(rng.length(MAX_SCOPE_LEN + 1, MIB)),
            1 => vec!["a"; 17 + rng.below(100)].join(":"),
            2 => format!("a:{}", "b".repeat(65 + rng.below(150))),
            _ => format!("a:{}:c", *rng.pick(&["\0", "é", "B", " ", "**", "b*"])),
        };
        let parsed = clock.time(|| describe(text.as_bytes()), || Scope::new(&text));
        let e = parsed.expect_err(&text);
        let right = match i % 4 {
            0 => matches!(e, ScopeError::TooLong { .. }),
            1 => matches!(
                e,
                ScopeError::TooManySegments { .. } | ScopeError::TooLong { .. }
            ),
            2 => matches!(e, ScopeError::SegmentTooLong { position: 2, .. }),
            _ => matches!(
                e,
                ScopeError::InvalidCharacter { position: 2 }
                    | ScopeError::PartialWildcard { position: 2 }
            ),
        };
        assert!(right, "{e:?} for {}", describe(text.as_bytes()));
    }
    clock.finish(3_000);
}

// ---------------------------------------------------------------------------------------
// Hostile stored hashes.

fn hmac_hasher() -> HmacSha256Hasher {
    HmacSha256Hasher::new("k1", Pepper::new([5u8; 32]).unwrap()).unwrap()
}

/// Argon2id (fast parameters) writing, HMAC also accepted.
fn mixed_policy() -> HashPolicy {
    fast_hashes().accept(hmac_hasher())
}

/// A stored hash mangled one way or another, and whether it must be refused as unreadable
/// or unsupported (`true`), or may be read and simply not match (`false`).
fn hostile_phc(rng: &mut Gen, valid: &[String]) -> (String, bool) {
    let base = rng.pick(valid).clone();
    match rng.below(9) {
        // Longer than any stored hash is read: refused unread.
        0 => {
            let len = rng.length(MAX_PHC_LEN + 1, MIB);
            (base.chars().cycle().take(len).collect(), true)
        }
        // Cut short anywhere.
        1 => {
            let cut = rng.below(base.len());
            (base[..cut].to_owned(), false)
        }
        // One byte replaced by anything (lossily decoded).
        2 => {
            let mut bytes = base.into_bytes();
            let at = rng.below(bytes.len());
            bytes[at] = rng.next() as u8;
            (String::from_utf8_lossy(&bytes).into_owned(), false)
        }
        // Argon2 costs no verifier may run: refused before any memory is taken.
        3 => {
            let m = *rng.pick(&["0", "1", "7", "262145", "4294967295", "99999999999", "-1"]);
            (
                format!(
                    "$argon2id$v=19$m={m},t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
                ),
                true,
            )
        }
        4 => {
            let (t, p) = *rng.pick(&[
                ("0", "1"),
                ("17", "1"),
                ("4294967295", "1"),
                ("1", "0"),
                ("1", "9"),
                ("1", "255"),
            ]);
            (
                format!(
                    "$argon2id$v=19$m=64,t={t},p={p}$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
                ),
                true,
            )
        }
        // Salt or output of lengths no hash has, or not base64.
        5 => {
            let salt = *rng.pick(&["", "c2FsdA", "!!!!", "c2FsdHNhbHRzYWx0c2FsdA=="]);
            let out = *rng.pick(&[
                "",
                "aGFzaA",
                "@@@@",
                "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
            ]);
            (format!("$argon2id$v=19$m=64,t=1,p=1${salt}${out}"), false)
        }
        // An algorithm nothing here verifies, or an unknown pepper.
        6 => {
            let text = *rng.pick(&[
                "$bcrypt$c2FsdA$aGFzaA",
                "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
                "$plain$secret",
                "$hmac-sha256$kid=k9$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
            ]);
            (text.to_owned(), true)
        }
        // NUL bytes and non-ASCII text inside.
        7 => {
            let mut text = base;
            let at = rng.below(text.len());
            let at = (0..=at).rev().find(|&i| text.is_char_boundary(i)).unwrap();
            let bad: &&str = rng.pick(&["\0", "é", "😀", "\u{FFFD}"]);
            text.insert_str(at, bad);
            (text, false)
        }
        // Random bytes.
        _ => {
            let len = rng.length(1, 600);
            (String::from_utf8_lossy(&rng.bytes(len)).into_owned(), false)
        }
    }
}

#[test]
fn malformed_stored_hashes_never_match_and_are_refused_quickly() {
    let policy = mixed_policy();
    let valid: Vec<String> = (0..4)
        .flat_map(|i| {
            let secret = format!("the secret number {i} of the hostile tests");
            [
                policy.hash(secret.as_bytes()).unwrap().as_str().to_owned(),
                HashPolicy::new(hmac_hasher())
                    .hash(secret.as_bytes())
                    .unwrap()
                    .as_str()
                    .to_owned(),
            ]
        })
        .collect();
    let mut rng = Gen::new(0x0009_4C4C);
    let mut clock = Clock::new("stored hashes");
    for _ in 0..1_500 {
        let (stored, refused) = hostile_phc(&mut rng, &valid);
        let secret = rng.bytes(32);
        let verdict = clock.time(
            || describe(stored.as_bytes()),
            || policy.verify(&secret, &stored),
        );
        assert!(
            !matches!(verdict, Ok(Verdict::Match { .. })),
            "a mangled hash matched: {stored:?}"
        );
        if refused {
            let e = verdict.expect_err(&stored);
            assert!(
                matches!(
                    e,
                    HashError::Malformed(_)
                        | HashError::UnsupportedAlgorithm(_)
                        | HashError::UnsupportedParams(_)
                ) || e.to_string().contains("pepper"),
                "{e:?} for {stored:?}"
            );
        }
        // The two readers agree on what is readable.
        assert_eq!(Phc::parse(&stored).is_ok(), PhcHash::new(&stored).is_ok());
    }
    clock.finish(1_500);
}

// ---------------------------------------------------------------------------------------
// Hostile records in the store.

/// A store whose rows are JSON text, as a database holds them: a row that does not read
/// as a [`KeyRecord`] is a backend failure ([`StoreError::Unavailable`]), as in the SQL
/// stores. Rows can be replaced with any text; everything else is a [`MemoryStore`].
#[derive(Clone, Debug, Default)]
struct RowStore {
    inner: MemoryStore,
    rows: Arc<Mutex<HashMap<KeyId, String>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("unreadable row: {0}")]
struct Unreadable(serde_json::Error);

impl KeyStore for RowStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        self.inner.insert(record).await
    }
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let row = self.rows.lock().unwrap().get(id).cloned();
        match row {
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| StoreError::unavailable(Unreadable(e))),
            None => self.inner.get(id).await,
        }
    }
    async fn update(&self, record: &KeyRecord) -> Result<u64, StoreError> {
        self.inner.update(record).await
    }
    async fn decrement_remaining(&self, id: &KeyId, uses: u64) -> Result<Decrement, StoreError> {
        self.inner.decrement_remaining(id, uses).await
    }
    async fn record_last_used(&self, batch: &[(KeyId, DateTime<Utc>)]) -> Result<(), StoreError> {
        self.inner.record_last_used(batch).await
    }
    async fn list_by_owner(&self, owner: &str, page: &PageRequest) -> Result<Page, StoreError> {
        self.inner.list_by_owner(owner, page).await
    }
    async fn list_expiring(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page, StoreError> {
        self.inner.list_expiring(from, to, page).await
    }
}

/// The stored row of `record` with one field set to a hostile value, or the text mangled.
fn hostile_row(rng: &mut Gen, record: &KeyRecord, other_hash: &str) -> String {
    let mut value = serde_json::to_value(record).unwrap();
    let text = value.to_string();
    let fields = [
        "id",
        "hash",
        "prefix",
        "hint",
        "owner",
        "status",
        "kind",
        "environment",
        "name",
        "scopes",
        "expires_at",
        "not_before",
        "remaining_uses",
        "metadata",
        "created_at",
        "version",
        "successor",
        "lineage",
        "allowed_networks",
        "rate_limit_policy",
    ];
    match rng.below(5) {
        // The text cut short, or one byte replaced.
        0 => {
            let cut = rng.below(text.len());
            let cut = (0..=cut).rev().find(|&i| text.is_char_boundary(i)).unwrap();
            text[..cut].to_owned()
        }
        1 => {
            let mut bytes = text.into_bytes();
            let at = rng.below(bytes.len());
            bytes[at] = rng.next() as u8;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        // Nesting deeper than any reader follows.
        2 => {
            let depth = 100 + rng.below(100_000);
            value.as_object_mut().unwrap().remove("metadata");
            let text = value.to_string();
            format!(
                "{},\"metadata\":{}{}}}",
                &text[..text.len() - 1],
                "[".repeat(depth),
                "]".repeat(depth)
            )
        }
        // A field set to a value of the wrong kind, huge, or hostile.
        3 => {
            let field = *rng.pick(&fields);
            let hostile = match rng.below(10) {
                0 => serde_json::Value::Null,
                1 => serde_json::json!(-1),
                2 => serde_json::json!(1e300),
                3 => serde_json::json!(""),
                4 => serde_json::json!("x".repeat(rng.length(1, MIB))),
                5 => serde_json::json!("a\u{0}b"),
                6 => serde_json::json!("é😀"),
                7 => serde_json::json!([1, 2, 3]),
                8 => serde_json::json!({"$argon2id": true}),
                _ => serde_json::json!(u64::MAX),
            };
            value[field] = hostile;
            value.to_string()
        }
        // Well-formed but different where it matters.
        _ => {
            match rng.below(6) {
                0 => value["hash"] = serde_json::json!(other_hash),
                1 => value["status"] = serde_json::json!(*rng.pick(&["revoked", "disabled"])),
                2 => value["expires_at"] = serde_json::json!("2000-01-01T00:00:00Z"),
                3 => value["prefix"] = serde_json::json!("sk_test"),
                4 => value["kind"] = serde_json::json!("publishable"),
                _ => {
                    value["hash"] = serde_json::json!(
                        "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
                    )
                }
            }
            value.to_string()
        }
    }
}

#[test]
fn malformed_records_in_the_store_fail_closed() {
    let store = RowStore::default();
    let keyring = Keyring::builder(KeyFormat::new("sk_live").unwrap(), store.clone())
        .hashes(fast_hashes())
        .without_cache()
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (key, record) = rt.block_on(async {
        let issued = keyring
            .issue(IssueRequest::new("acct", "row").scopes(["a:read"]))
            .await
            .unwrap();
        (issued.key.expose_secret().to_owned(), issued.record)
    });
    let other_hash = fast_hashes().hash(b"some other secret").unwrap();
    let mut rng = Gen::new(0x0002_0E50);
    let mut clock = Clock::new("stored records");
    let mut codes: HashMap<&'static str, usize> = HashMap::new();
    rt.block_on(async {
        for _ in 0..1_000 {
            let row = hostile_row(&mut rng, &record, other_hash.as_str());
            store
                .rows
                .lock()
                .unwrap()
                .insert(record.id.clone(), row.clone());
            let start = Instant::now();
            let got = keyring.verify(&key, &VerifyContext::new()).await;
            clock.record(start.elapsed(), || describe(row.as_bytes()));
            let code = got.as_ref().map_or_else(VerifyError::code, |_| "ok");
            *codes.entry(code).or_default() += 1;
            match serde_json::from_str::<KeyRecord>(&row) {
                // Unreadable: the store failed, and authentication fails closed.
                Err(_) => assert_eq!(code, "store_unavailable", "{}", describe(row.as_bytes())),
                Ok(read) => {
                    // What must hold for a record to verify: its hash, prefix and status
                    // as written, its kind the same (or absent: records from before key
                    // types read as their type's), and not expired.
                    let intact = read.hash == record.hash
                        && read.prefix == record.prefix
                        && read.status == record.status
                        && read.kind.is_none_or(|kind| Some(kind) == record.kind)
                        && read.attributes.expires_at.is_none_or(|at| at > Utc::now());
                    if !intact {
                        assert_ne!(
                            code,
                            "ok",
                            "an altered record verified: {}",
                            describe(row.as_bytes())
                        );
                    }
                    if read.hash != record.hash {
                        // Another secret's hash, or one no verifier may run.
                        assert!(matches!(code, "invalid" | "internal"), "{code}");
                    }
                }
            }
        }
    });
    println!("hostile stored records: outcomes {codes:?}");
    assert!(codes.contains_key("store_unavailable") && codes.contains_key("invalid"));
    clock.finish(1_000);
}

// ---------------------------------------------------------------------------------------
// Hostile HTTP requests.

/// What the layer must answer, with its problem `code`.
#[derive(Debug)]
struct Want {
    status: StatusCode,
    code: &'static str,
}

const fn want(status: StatusCode, code: &'static str) -> Want {
    Want { status, code }
}

fn hostile_request(rng: &mut Gen, keys: &[String]) -> (Request<Body>, Want, Vec<u8>) {
    let key = rng.pick(keys).clone();
    let builder = Request::builder().uri("/v1/thing").extension(Tls);
    let api_key = |b: http::request::Builder, v: &[u8]| b.header("x-api-key", v);
    let bearer = |b: http::request::Builder, v: &[u8]| {
        b.header("authorization", [b"Bearer ".as_slice(), v].concat())
    };
    let header: &dyn Fn(http::request::Builder, &[u8]) -> http::request::Builder =
        if rng.chance(2) { &api_key } else { &bearer };
    let bad_request = want(StatusCode::BAD_REQUEST, "invalid_request");
    match rng.below(9) {
        // Longer than any key, up to 1 MiB: refused unread.
        0 => {
            let len = rng.length(MAX_KEY_LEN + 1, MIB);
            let value: Vec<u8> = key.bytes().cycle().take(len).collect();
            (
                header(builder, &value).body(Body::empty()).unwrap(),
                bad_request,
                value,
            )
        }
        // Bytes that are not visible ASCII: obs-text, invalid UTF-8, spaces inside.
        1 => {
            let mut value = key.clone().into_bytes();
            // Inside the value (its ends are trimmed of whitespace).
            let at = 1 + rng.below(value.len() - 2);
            let choices: [&[u8]; 6] = [
                &[0xC3, 0xA9],
                &[0xFF],
                &[0x80, 0x80],
                &[0xF0, 0x9F, 0x98],
                b" x",
                b"\t1",
            ];
            let bad = *rng.pick(&choices);
            value.splice(at..at, bad.iter().copied());
            (
                header(builder, &value).body(Body::empty()).unwrap(),
                bad_request,
                value,
            )
        }
        // The header repeated past the limit.
        2 => {
            let mut builder = builder;
            for _ in 0..9 + rng.below(100) {
                builder = builder.header("x-api-key", key.as_str());
            }
            (
                builder.body(Body::empty()).unwrap(),
                bad_request,
                key.into_bytes(),
            )
        }
        // Two different credentials.
        3 => {
            let other = rng.pick(keys).clone();
            let other = if other == key {
                format!("{key}x")
            } else {
                other
            };
            let request = builder
                .header("x-api-key", key.as_str())
                .header("authorization", format!("Bearer {other}"))
                .body(Body::empty())
                .unwrap();
            (request, bad_request, key.into_bytes())
        }
        // Visible ASCII that is not a key: refused by the parser.
        4 => {
            let len = rng.length(1, MAX_KEY_LEN);
            let value: Vec<u8> = (0..len).map(|_| 0x21 + rng.below(94) as u8).collect();
            let want = want(StatusCode::UNAUTHORIZED, "malformed");
            (
                header(builder, &value).body(Body::empty()).unwrap(),
                want,
                value,
            )
        }
        // A near miss: one character of the id or secret changed.
        5 => {
            let mut value = key.clone().into_bytes();
            let at = "sk_live_".len() + rng.below(value.len() - "sk_live_".len() - 6);
            if value[at] != b'_' {
                value[at] = if value[at] == b'A' { b'B' } else { b'A' };
            }
            let want = if value == key.as_bytes() {
                want(StatusCode::OK, "")
            } else {
                want(StatusCode::UNAUTHORIZED, "malformed")
            };
            (
                header(builder, &value).body(Body::empty()).unwrap(),
                want,
                value,
            )
        }
        // A valid checksum, an unknown id.
        6 => {
            let id: String = (0..12).map(|_| char::from(rng.base62())).collect();
            let secret: String = (0..32).map(|_| char::from(rng.base62())).collect();
            let value = seal(&format!("sk_live_{id}_{secret}")).into_bytes();
            let want = want(StatusCode::UNAUTHORIZED, "invalid");
            (
                header(builder, &value).body(Body::empty()).unwrap(),
                want,
                value,
            )
        }
        // Another scheme only: no credential at all.
        7 => {
            let request = builder
                .header("authorization", format!("Basic {key}"))
                .body(Body::empty())
                .unwrap();
            (
                request,
                want(StatusCode::UNAUTHORIZED, "missing_credential"),
                key.into_bytes(),
            )
        }
        // Forwarding headers from the trusted proxy that cannot be read.
        _ => {
            let garbage = rng.pick(&["for", "for=;proto", "by=1.2.3.4;;;", "for=192.0.2.1;x"]);
            let hops = vec!["for=192.0.2.1"; 40].join(",");
            let forwarded = if rng.chance(3) {
                hops
            } else {
                (*garbage).to_owned()
            };
            let request = Request::builder()
                .uri("/v1/thing")
                .extension(PeerAddr("127.0.0.1:9000".parse().unwrap()))
                .header("forwarded", forwarded)
                .header("x-api-key", key.as_str())
                .body(Body::empty())
                .unwrap();
            (request, bad_request, key.into_bytes())
        }
    }
}

#[test]
fn the_http_layer_refuses_hostile_requests_with_the_right_status() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keyring = Keyring::builder(KeyFormat::new("sk_live").unwrap(), MemoryStore::new())
        .hashes(fast_hashes())
        .build()
        .unwrap();
    let keys: Vec<String> = rt.block_on(async {
        let mut keys = Vec::new();
        for i in 0..4 {
            let issued = keyring
                .issue(IssueRequest::new("acct", format!("k{i}")))
                .await
                .unwrap();
            keys.push(issued.key.expose_secret().to_owned());
        }
        keys
    });
    // The trusted proxy writes `Forwarded` (RFC 7239): that is the header read from it.
    let auth = KeyAuth::builder(keyring)
        .trusted_proxies(["127.0.0.0/8".parse().unwrap()])
        .proxy_headers(keymint::http::ProxyHeaders::Forwarded)
        .build();
    let app: Router = Router::new().route(
        "/v1/thing",
        get(|| async { "ok" }).route_layer(auth.layer()),
    );
    let mut rng = Gen::new(0x0004_7779);
    let mut clock = Clock::new("http layer");
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    rt.block_on(async {
        for _ in 0..1_500 {
            let (request, want, sent) = hostile_request(&mut rng, &keys);
            let start = Instant::now();
            let response = app.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 2 * MIB)
                .await
                .unwrap();
            clock.record(start.elapsed(), || format!("{want:?}: {}", describe(&sent)));
            *statuses.entry(status.as_u16()).or_default() += 1;
            assert_eq!(status, want.status, "{}", describe(&sent));
            if status != StatusCode::OK {
                let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(problem["code"], want.code, "{}", describe(&sent));
            }
            // Nothing of what was sent comes back.
            if sent.len() >= 12 {
                let head = &sent[..12];
                assert!(
                    !body.windows(12).any(|w| w == head),
                    "the response echoes the credential"
                );
            }
        }
    });
    println!("hostile http: statuses {statuses:?}");
    clock.finish(1_500);
}
