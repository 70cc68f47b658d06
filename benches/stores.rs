//! Verification on each store, cold (cache off: a store read and a hash per call) and warm
//! (the verified-key cache answers), on a multi-thread tokio runtime as a service runs it.
//!
//! `cargo bench --bench stores --features sqlite,postgres` (set KEYMINT_TEST_DATABASE_URL
//! for the PostgreSQL rows; without it they are skipped). Cold rows use HMAC-SHA256 (the
//! fast hasher), so they show the store's share instead of drowning it in Argon2's ~20 ms;
//! `benches/keyring.rs` has Argon2.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keymint::store::SqliteStore;
use keymint::{
    HashPolicy, HmacSha256Hasher, IssueRequest, KeyFormat, KeyStore, Keyring, MemoryStore, Pepper,
    VerifyContext,
};
use tokio::runtime::Runtime;

fn keyring<S: KeyStore>(store: S, cached: bool) -> Keyring<S> {
    let hasher =
        HmacSha256Hasher::new("bench", Pepper::new([9u8; 32]).expect("pepper")).expect("hasher");
    let builder = Keyring::builder(KeyFormat::new("sk_live").expect("format"), store)
        .hashes(HashPolicy::new(hasher))
        // Uses are recorded in the background; keep them out of the measured loop.
        .last_used_debounce(chrono::TimeDelta::hours(1));
    let builder = if cached {
        builder
    } else {
        builder.without_cache()
    };
    builder.build().expect("keyring")
}

fn bench_store<S: KeyStore + Clone>(c: &mut Criterion, rt: &Runtime, name: &str, store: S) {
    let ctx = VerifyContext::new();
    for (mode, cached) in [("cold", false), ("warm", true)] {
        let keyring = keyring(store.clone(), cached);
        let key = rt.block_on(async {
            let issued = keyring
                .issue(IssueRequest::new("bench", "bench"))
                .await
                .expect("issue");
            let key = issued.key.expose_secret().to_owned();
            keyring.verify(&key, &ctx).await.expect("verify");
            key
        });
        c.bench_function(&format!("verify_{mode}/{name}"), |b| {
            b.to_async(rt)
                .iter(|| async { keyring.verify(black_box(&key), &ctx).await.expect("valid") })
        });
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    bench_store(c, &rt, "memory", MemoryStore::new());

    let dir = std::env::temp_dir().join(format!("keymint-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sqlite = rt.block_on(async {
        let store = SqliteStore::open(dir.join("keys.db")).await.expect("open");
        store.migrate().await.expect("migrate");
        store
    });
    bench_store(c, &rt, "sqlite_file", sqlite);

    #[cfg(feature = "postgres")]
    if let Ok(url) = std::env::var("KEYMINT_TEST_DATABASE_URL") {
        let pg = rt.block_on(async {
            let table = format!("keymint_bench_{}", std::process::id());
            let store = keymint::store::PgStore::connect(&url)
                .await
                .expect("connect")
                .table(&table)
                .expect("table");
            store.migrate().await.expect("migrate");
            store
        });
        bench_store(c, &rt, "postgres", pg);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
