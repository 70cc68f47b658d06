//! Hashing at rest: Argon2id at the default (OWASP) parameters, HMAC-SHA-256, and the raw
//! `argon2` crate verifying the same PHC string, as the peer baseline for uncached verify.

use std::hint::black_box;

use argon2::{Argon2, PasswordVerifier};
use criterion::{Criterion, criterion_group, criterion_main};
use keymint::{Argon2idHasher, HashPolicy, HmacSha256Hasher, Pepper, SecretHasher};

const SECRET: &[u8] = b"xK3vQ9mZ2pL7wR4tY8nB1cF6hJ0dS5gA";

fn argon2id(c: &mut Criterion) {
    let policy = HashPolicy::new(Argon2idHasher::new());
    let stored = policy.hash(SECRET).expect("hash");
    let peer = Argon2::default();
    // Both verifiers agree on the stored string before anything is timed.
    assert!(
        policy
            .verify(SECRET, stored.as_str())
            .expect("verify")
            .is_match()
    );
    assert!(peer.verify_password(SECRET, stored.as_str()).is_ok());

    let mut group = c.benchmark_group("argon2id_default");
    group.sample_size(10);
    group.bench_function("keymint/hash", |b| {
        b.iter(|| policy.hash(black_box(SECRET)))
    });
    group.bench_function("keymint/verify", |b| {
        b.iter(|| policy.verify(black_box(SECRET), stored.as_str()))
    });
    group.bench_function("argon2_crate/verify_password", |b| {
        b.iter(|| peer.verify_password(black_box(SECRET), stored.as_str()))
    });
    group.finish();
}

fn hmac(c: &mut Criterion) {
    let hasher =
        HmacSha256Hasher::new("k1", Pepper::new([7u8; 32]).expect("pepper")).expect("hasher");
    let policy = HashPolicy::new(hasher.clone());
    let stored = policy.hash(SECRET).expect("hash");
    let phc = stored.phc().expect("phc");
    assert!(
        policy
            .verify(SECRET, stored.as_str())
            .expect("verify")
            .is_match()
    );

    let mut group = c.benchmark_group("hmac_sha256");
    group.bench_function("keymint/hash", |b| {
        b.iter(|| policy.hash(black_box(SECRET)))
    });
    group.bench_function("keymint/verify", |b| {
        b.iter(|| policy.verify(black_box(SECRET), stored.as_str()))
    });
    group.bench_function("keymint/verify_parsed", |b| {
        b.iter(|| hasher.verify(black_box(SECRET), &phc))
    });
    group.finish();
}

criterion_group!(benches, argon2id, hmac);
criterion_main!(benches);
