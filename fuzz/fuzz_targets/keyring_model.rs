//! A keyring driven by an arbitrary sequence of operations (issue, verify, revoke, disable,
//! enable, rotate with grace, update scopes, expiry and uses, advance the clock) and checked
//! against a simple model after every step: each verification has exactly the outcome the
//! model predicts (so a revoked, disabled, expired or not-yet-valid key never verifies, a
//! valid one always does, and no key verifies more often than it has uses), management
//! operations succeed or fail as the model says, and the stored records agree with it.
//!
//! In-memory store, manual clock, Argon2id at its smallest cost; with or without the
//! verified-key cache (the input decides), on a current-thread tokio runtime.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use keymint::{
    Argon2idHasher, Clock, DateTime, HashPolicy, IssueRequest, KeyFormat, KeyId, KeyStatus,
    KeyUpdate, Keyring, ManualClock, MemoryStore, Requirement, TimeDelta, Utc, VerifyContext,
};
use libfuzzer_sys::fuzz_target;

/// Operations per input: enough for long lifecycles, few enough for thousands of runs a
/// second.
const MAX_OPS: usize = 48;
/// Rotations per input: below the keyring's 32-hop limit on following a lineage's uses.
const MAX_ROTATIONS: usize = 16;

/// The scopes a key may hold, as bits of a mask.
const SCOPES: [&str; 3] = ["a:read", "a:write", "b:read"];

/// Requirements a verification may carry, with what each needs of the mask.
const REQUIREMENTS: [(&str, fn(u8) -> bool); 4] = [
    ("a:read", |m| m & 1 != 0),
    ("a:read and a:write", |m| m & 3 == 3),
    ("a:write or b:read", |m| m & 6 != 0),
    ("not b:read", |m| m & 4 == 0),
];

#[derive(Arbitrary, Debug)]
struct Input {
    cache: bool,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Presented {
    /// The key as issued.
    Valid,
    /// The key's id with another secret (and a valid checksum).
    WrongSecret,
    /// An id the store does not hold.
    UnknownId,
    /// The key with one byte changed (the checksum catches it).
    Typo { at: u8, byte: u8 },
}

#[derive(Arbitrary, Debug)]
enum Op {
    Issue {
        ttl_secs: Option<u8>,
        not_before_secs: Option<u8>,
        uses: Option<u8>,
        scopes: u8,
    },
    Verify {
        key: u8,
        presented: Presented,
        cost: u8,
        requirement: Option<u8>,
    },
    Revoke {
        key: u8,
    },
    Disable {
        key: u8,
    },
    Enable {
        key: u8,
    },
    Rotate {
        key: u8,
        grace_secs: u8,
    },
    UpdateScopes {
        key: u8,
        scopes: u8,
    },
    UpdateExpiry {
        key: u8,
        /// Seconds from now, negative for the past; `None` removes the expiry.
        at: Option<i16>,
    },
    UpdateUses {
        key: u8,
        uses: Option<u8>,
    },
    Advance {
        secs: u16,
    },
}

/// What the model knows of one record.
#[derive(Debug)]
struct Model {
    id: KeyId,
    key: String,
    status: KeyStatus,
    scopes: u8,
    not_before: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    /// The record's own uses left (`None`: unlimited).
    uses: Option<u64>,
    /// Index of its rotation successor.
    successor: Option<usize>,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fn requirements() -> &'static [Requirement] {
    static PARSED: OnceLock<Vec<Requirement>> = OnceLock::new();
    PARSED.get_or_init(|| {
        REQUIREMENTS
            .iter()
            .map(|(text, _)| Requirement::parse(text).expect("valid requirement"))
            .collect()
    })
}

fn scopes_of(mask: u8) -> Vec<&'static str> {
    (0..SCOPES.len())
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| SCOPES[i])
        .collect()
}

/// `key` with another secret and its checksum recomputed through a format that accepts it.
fn with_other_secret(key: &str) -> String {
    let body = &key[..key.len() - 6];
    let (rest, secret) = body.rsplit_once('_').expect("separators");
    let flipped: String = secret
        .chars()
        .rev()
        .map(|c| if c == 'a' { 'b' } else { 'a' })
        .collect();
    reseal(&format!("{rest}_{flipped}"))
}

/// `key` with another id of the same length.
fn with_other_id(key: &str) -> String {
    let body = &key[..key.len() - 6];
    let (rest, secret) = body.rsplit_once('_').expect("separators");
    let (prefix, id) = rest.rsplit_once('_').expect("separators");
    let other: String = id
        .chars()
        .map(|c| if c == 'Z' { 'Y' } else { 'Z' })
        .collect();
    reseal(&format!("{prefix}_{other}_{secret}"))
}

/// Appends the format's checksum (CRC-32/ISO-HDLC in base62) to `body`.
fn reseal(body: &str) -> String {
    const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut crc = !0u32;
    for &byte in body.as_bytes() {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    let mut value = !crc;
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    format!("{body}{}", std::str::from_utf8(&out).expect("ascii"))
}

/// What spending `cost` uses of key `k` does, following the successors that hold its
/// lineage's uses (as the keyring does, at most 32 hops). Returns whether it succeeded and
/// applies it to `keys`.
fn spend(keys: &mut [Model], k: usize, cost: u64) -> bool {
    if keys[k].uses.is_none() {
        return true;
    }
    let mut current = k;
    for _ in 0..32 {
        if cost == 0 {
            // A peek: moves on from an empty record that handed its uses on.
            match (keys[current].uses, keys[current].successor) {
                (Some(0), Some(next)) => current = next,
                (None, _) => return true,
                (Some(n), _) => return n > 0,
            }
            continue;
        }
        match keys[current].uses {
            None => return true,
            Some(n) if n >= cost => {
                keys[current].uses = Some(n - cost);
                return true;
            }
            Some(_) => match keys[current].successor {
                Some(next) => current = next,
                None => return false,
            },
        }
    }
    false
}

/// The outcome the model expects of verifying key `k` as issued.
fn expected(
    keys: &mut [Model],
    k: usize,
    now: DateTime<Utc>,
    cost: u64,
    requirement: Option<usize>,
) -> &'static str {
    let m = &keys[k];
    match m.status {
        KeyStatus::Revoked => return "revoked",
        KeyStatus::Disabled => return "disabled",
        _ => {}
    }
    if m.not_before.is_some_and(|nb| now < nb) {
        return "not_yet_valid";
    }
    if m.expires_at.is_some_and(|at| now >= at) {
        return "expired";
    }
    if let Some(r) = requirement
        && !(REQUIREMENTS[r].1)(m.scopes)
    {
        return "insufficient_scope";
    }
    if spend(keys, k, cost) {
        "ok"
    } else {
        "usage_exhausted"
    }
}

async fn run(input: Input) {
    let clock = ManualClock::default();
    let hashes = HashPolicy::new(
        Argon2idHasher::builder()
            .m_cost(8)
            .t_cost(1)
            .build()
            .expect("valid parameters"),
    );
    let builder = Keyring::builder(
        KeyFormat::new("sk_fuzz").expect("prefix"),
        MemoryStore::new(),
    )
    .hashes(hashes)
    .clock(clock.clone());
    let builder = if input.cache {
        builder.cache(TimeDelta::seconds(30), 16)
    } else {
        builder.without_cache()
    };
    let keyring = builder.build().expect("keyring");
    let mut keys: Vec<Model> = Vec::new();
    let mut rotations = 0;

    for op in input.ops.into_iter().take(MAX_OPS) {
        let now = clock.now();
        let pick =
            |key: u8, keys: &[Model]| (!keys.is_empty()).then(|| usize::from(key) % keys.len());
        match op {
            Op::Issue {
                ttl_secs,
                not_before_secs,
                uses,
                scopes,
            } => {
                let scopes = scopes & 7;
                let mut request = IssueRequest::new("owner", "fuzz").scopes(scopes_of(scopes));
                let expires_at = ttl_secs.map(|s| now + TimeDelta::seconds(i64::from(s)));
                let not_before = not_before_secs.map(|s| now + TimeDelta::seconds(i64::from(s)));
                if let Some(s) = ttl_secs {
                    request = request.expires_in(TimeDelta::seconds(i64::from(s)));
                }
                if let Some(nb) = not_before {
                    request = request.not_before(nb);
                }
                let uses = uses.map(|u| u64::from(u % 6));
                if let Some(u) = uses {
                    request = request.remaining_uses(u);
                }
                let result = keyring.issue(request).await;
                let refused = expires_at.is_some_and(|at| at <= now)
                    || matches!((not_before, expires_at), (Some(nb), Some(at)) if nb >= at);
                match result {
                    Ok(issued) => {
                        assert!(!refused, "issued against the rules");
                        keys.push(Model {
                            id: issued.record.id.clone(),
                            key: issued.key.expose_secret().to_owned(),
                            status: KeyStatus::Active,
                            scopes,
                            not_before,
                            expires_at,
                            uses,
                            successor: None,
                        });
                    }
                    Err(e) => assert!(refused, "issue failed: {e}"),
                }
            }
            Op::Verify {
                key,
                presented,
                cost,
                requirement,
            } => {
                let Some(k) = pick(key, &keys) else { continue };
                let cost = cost % 3;
                let requirement = requirement.map(|r| usize::from(r) % REQUIREMENTS.len());
                let mut ctx = VerifyContext::new().cost(u32::from(cost));
                if let Some(r) = requirement {
                    ctx = ctx.require(&requirements()[r]);
                }
                let issued = keys[k].key.clone();
                let (text, want) = match presented {
                    Presented::Valid => {
                        let want = expected(&mut keys, k, now, u64::from(cost), requirement);
                        (issued, want)
                    }
                    Presented::WrongSecret => (with_other_secret(&issued), "invalid"),
                    Presented::UnknownId => (with_other_id(&issued), "invalid"),
                    Presented::Typo { at, byte } => {
                        let mut bytes = issued.clone().into_bytes();
                        let at = usize::from(at) % bytes.len();
                        if bytes[at] == byte {
                            continue;
                        }
                        bytes[at] = byte;
                        match String::from_utf8(bytes) {
                            Ok(text) => (text, "malformed"),
                            Err(_) => continue,
                        }
                    }
                };
                let got = keyring.verify(&text, &ctx).await;
                let code = got.as_ref().map_or_else(|e| e.code(), |_| "ok");
                if want == "malformed" {
                    // Any refusal before I/O: malformed, or another prefix.
                    assert!(
                        matches!(code, "malformed" | "unknown_prefix"),
                        "a typo got {code}"
                    );
                } else {
                    assert_eq!(code, want, "verify of key {k} ({:?})", keys[k]);
                }
                if let Ok(verified) = got {
                    assert_eq!(verified.id(), &keys[k].id);
                }
            }
            Op::Revoke { key } => {
                let Some(k) = pick(key, &keys) else { continue };
                keyring.revoke(&keys[k].id, "fuzz").await.expect("revoke");
                keys[k].status = KeyStatus::Revoked;
            }
            Op::Disable { key } | Op::Enable { key } => {
                let Some(k) = pick(key, &keys) else { continue };
                let enable = matches!(op, Op::Enable { .. });
                let result = if enable {
                    keyring.enable(&keys[k].id).await
                } else {
                    keyring.disable(&keys[k].id).await
                };
                if keys[k].status == KeyStatus::Revoked {
                    assert!(result.is_err(), "a revoked key changed status");
                } else {
                    result.expect("status change");
                    keys[k].status = if enable {
                        KeyStatus::Active
                    } else {
                        KeyStatus::Disabled
                    };
                }
            }
            Op::Rotate { key, grace_secs } => {
                let Some(k) = pick(key, &keys) else { continue };
                if rotations == MAX_ROTATIONS {
                    continue;
                }
                rotations += 1;
                let grace = TimeDelta::seconds(i64::from(grace_secs));
                let result = keyring.rotate(&keys[k].id, Some(grace)).await;
                let rotatable = keys[k].status == KeyStatus::Active && keys[k].successor.is_none();
                let Ok(issued) = result else {
                    assert!(!rotatable, "rotation of an active key failed");
                    continue;
                };
                assert!(rotatable, "rotated a {:?} or rotated key", keys[k].status);
                let next = keys.len();
                let old = &mut keys[k];
                let successor = Model {
                    id: issued.record.id.clone(),
                    key: issued.key.expose_secret().to_owned(),
                    status: KeyStatus::Active,
                    scopes: old.scopes,
                    not_before: old.not_before,
                    expires_at: old.expires_at,
                    uses: old.uses,
                    successor: None,
                };
                let cutoff = now + grace;
                old.expires_at = Some(old.expires_at.map_or(cutoff, |at| at.min(cutoff)));
                if old.uses.is_some() {
                    old.uses = Some(0);
                }
                old.successor = Some(next);
                keys.push(successor);
            }
            Op::UpdateScopes { key, scopes } => {
                let Some(k) = pick(key, &keys) else { continue };
                let scopes = scopes & 7;
                let result = keyring
                    .update(&keys[k].id, KeyUpdate::new().scopes(scopes_of(scopes)))
                    .await;
                // Also for a key whose rotation ended it before it began: an update that
                // leaves the validity window alone is not refused for it.
                result.expect("scopes update");
                keys[k].scopes = scopes;
            }
            Op::UpdateExpiry { key, at } => {
                let Some(k) = pick(key, &keys) else { continue };
                let at = at.map(|s| now + TimeDelta::seconds(i64::from(s)));
                let result = keyring
                    .update(&keys[k].id, KeyUpdate::new().expires_at(at))
                    .await;
                let m = &mut keys[k];
                // A rotated key's grace period cannot be extended; validity must not be empty.
                let extends_grace = m.successor.is_some()
                    && match (at, m.expires_at) {
                        (None, _) => true,
                        (Some(new), Some(cutoff)) => new > cutoff,
                        (Some(_), None) => unreachable!("a rotated key has a cutoff"),
                    };
                let empty = matches!((m.not_before, at), (Some(nb), Some(at)) if nb >= at);
                match result {
                    Ok(_) => {
                        assert!(!extends_grace && !empty, "expiry update accepted");
                        m.expires_at = at;
                    }
                    Err(e) => assert!(extends_grace || empty, "expiry update failed: {e}"),
                }
            }
            Op::UpdateUses { key, uses } => {
                let Some(k) = pick(key, &keys) else { continue };
                let uses = uses.map(|u| u64::from(u % 6));
                let result = keyring
                    .update(&keys[k].id, KeyUpdate::new().remaining_uses(uses))
                    .await;
                result.expect("uses update");
                keys[k].uses = uses;
            }
            Op::Advance { secs } => clock.advance(TimeDelta::seconds(i64::from(secs % 601))),
        }
        // The stored records agree with the model.
        for m in &keys {
            let record = keyring.get(&m.id).await.expect("record");
            assert_eq!(record.status, m.status, "{m:?}");
            assert_eq!(record.remaining_uses, m.uses, "{m:?}");
            assert_eq!(record.attributes.expires_at, m.expires_at, "{m:?}");
            assert_eq!(
                record.successor.as_ref(),
                m.successor.map(|s| &keys[s].id),
                "{m:?}"
            );
        }
    }
}

fuzz_target!(|input: Input| {
    runtime().block_on(run(input));
});
