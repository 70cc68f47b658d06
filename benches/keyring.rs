//! Keyring hot paths: cached verify, uncached verify against a bare Argon2 computation of
//! the same cost, unknown id versus wrong secret, and garbage rejection.
//!
//! Futures are polled directly (the memory store never waits), so the numbers are the
//! keyring's own cost without executor overhead.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use argon2::{Algorithm, Argon2, Params, Version};
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use keymint::{IssueRequest, KeyFormat, Keyring, MemoryStore, VerifyContext};
use sha2::Sha256;

fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the memory store completes without waiting"),
    }
}

fn keyring(cached: bool) -> Keyring<MemoryStore> {
    let builder = Keyring::builder(
        KeyFormat::new("sk_live").expect("format"),
        MemoryStore::new(),
    );
    let builder = if cached {
        builder
    } else {
        builder.without_cache()
    };
    builder.build().expect("keyring")
}

fn bench(c: &mut Criterion) {
    let ctx = VerifyContext::new();

    let cached = keyring(true);
    let issued = now(cached.issue(IssueRequest::new("acct", "bench"))).expect("issue");
    let key = issued.key.expose_secret().to_owned();
    now(cached.verify(&key, &ctx)).expect("warm the cache");
    let mut group = c.benchmark_group("verify_cached");
    group.bench_function("keymint", |b| {
        b.iter(|| now(cached.verify(black_box(&key), &ctx)).expect("valid"))
    });
    // The floor of a cached verification: one HMAC-SHA-256 of the key's bytes, with the
    // keyed inner and outer states precomputed (as the cache keeps them).
    let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(&[7u8; 32]).expect("any key length");
    group.bench_function("bare_hmac_sha256_same_bytes", |b| {
        b.iter(|| {
            let mut mac = keyed.clone();
            mac.update(black_box(key.as_bytes()));
            mac.finalize().into_bytes()
        })
    });
    group.finish();

    // Another last character: the checksum no longer matches (never the same key).
    let last = if key.ends_with('X') { 'Y' } else { 'X' };
    let garbage = format!("{}{last}", &key[..key.len() - 1]);
    let mut group = c.benchmark_group("verify_garbage");
    group.bench_function("keymint", |b| {
        b.iter(|| now(cached.verify(black_box(&garbage), &ctx)).expect_err("bad checksum"))
    });
    let format = cached.format().clone();
    group.bench_function("bare_parse", |b| {
        b.iter(|| format.parse(black_box(&garbage)).is_err())
    });
    group.finish();

    let mut slow = c.benchmark_group("argon2id_defaults");
    slow.sample_size(10);
    let uncached = keyring(false);
    let issued = now(uncached.issue(IssueRequest::new("acct", "bench"))).expect("issue");
    let key = issued.key.expose_secret().to_owned();
    slow.bench_function("keymint_verify_uncached", |b| {
        b.iter(|| now(uncached.verify(black_box(&key), &ctx)).expect("valid"))
    });
    let secret = issued.key.parsed().expose_secret().as_bytes().to_vec();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default());
    let salt = [7u8; 16];
    slow.bench_function("bare_argon2_same_params", |b| {
        b.iter(|| {
            let mut out = [0u8; 32];
            argon
                .hash_password_into(black_box(&secret), &salt, &mut out)
                .expect("argon2");
            out
        })
    });
    let unknown = uncached.format().generate().expect("rng");
    slow.bench_function("keymint_verify_unknown_id", |b| {
        b.iter(|| {
            now(uncached.verify(black_box(unknown.expose_secret()), &ctx)).expect_err("unknown")
        })
    });
    let wrong = keymint_wrong_secret(&key);
    slow.bench_function("keymint_verify_wrong_secret", |b| {
        b.iter(|| now(uncached.verify(black_box(&wrong), &ctx)).expect_err("wrong secret"))
    });
    slow.finish();
    fresh_threads(c);
}

/// The first uncached verification on a fresh tokio runtime (new blocking threads, as after
/// tokio retires idle ones) against one on a runtime whose threads already hashed.
fn fresh_threads(c: &mut Criterion) {
    let keyring = keyring(false);
    let issued = now(keyring.issue(IssueRequest::new("acct", "bench"))).expect("issue");
    let key = issued.key.expose_secret().to_owned();
    let ctx = VerifyContext::new();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("runtime")
    };
    let mut group = c.benchmark_group("uncached_on_blocking_threads");
    group.sample_size(10);
    group.bench_function("fresh_runtime_first_verify", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                let rt = runtime();
                let started = std::time::Instant::now();
                rt.block_on(keyring.verify(&key, &ctx)).expect("valid");
                total += started.elapsed();
                drop(rt);
            }
            total
        })
    });
    let warm = runtime();
    warm.block_on(keyring.verify(&key, &ctx)).expect("valid");
    group.bench_function("steady_state", |b| {
        b.iter(|| {
            warm.block_on(keyring.verify(black_box(&key), &ctx))
                .expect("valid")
        })
    });
    group.finish();
}

/// Another secret under the same id, with a correct checksum: the CRC-32/ISO-HDLC of the
/// body in 6 base62 digits, as the format specifies.
fn keymint_wrong_secret(key: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut body = key[..key.len() - 6].to_owned();
    let last = body.pop().expect("non-empty");
    body.push(if last == 'a' { 'b' } else { 'a' });
    let mut crc = crc32(body.as_bytes());
    let mut digits = [b'0'; 6];
    for d in digits.iter_mut().rev() {
        *d = ALPHABET[(crc % 62) as usize];
        crc /= 62;
    }
    body.push_str(std::str::from_utf8(&digits).expect("ascii"));
    body
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

criterion_group!(benches, bench);
criterion_main!(benches);
