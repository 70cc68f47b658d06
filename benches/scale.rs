//! Scale figures (not criterion: each is one bounded measurement, reported as a median of a
//! few runs where that makes sense). `cargo bench --bench scale` runs them all; name one
//! (`memory`, `listing`, `threads`, `issue`, `scan`) to run only it:
//! `cargo bench --bench scale -- scan`.
//!
//! * memory: resident bytes per `MemoryStore` record and per cached key at 1 000 000 keys;
//! * listing: `list_by_owner` pages at 1 000 000 records of one owner;
//! * threads: cached verifications per second on 1 and 2 threads;
//! * issue: keys issued per second at the default Argon2id cost;
//! * scan: the secret scanner over 1 GiB of mixed text, against ripgrep running the
//!   crate's exported regex over the same file (ripgrep finds candidates; keymint also
//!   confirms each checksum).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_precision_loss)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use keymint::{
    HashPolicy, HmacSha256Hasher, IssueRequest, KeyFormat, KeyRecord, KeyStore, Keyring,
    MemoryStore, PageRequest, Pepper, Scanner, TimeDelta, VerifyContext,
};

const KEYS: usize = 1_000_000;

/// Polls a future that never waits (the memory store, the memory limiter).
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future)
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("in-memory work never waits"),
    }
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A keyring whose hashing costs a microsecond (HMAC-SHA-256), so that a million keys can
/// be issued and verified in seconds; the memory and lookups measured are the same.
fn fast_keyring(store: MemoryStore) -> Keyring<MemoryStore> {
    let hasher = HmacSha256Hasher::new("b1", Pepper::new([7u8; 32]).unwrap()).unwrap();
    Keyring::builder(KeyFormat::new("sk_live").unwrap(), store)
        .hashes(HashPolicy::new(hasher))
        .cache(TimeDelta::minutes(10), 2 * KEYS)
        .build()
        .unwrap()
}

fn memory() {
    let keyring = fast_keyring(MemoryStore::new());
    // The plaintexts live in one buffer made (and touched) before the first reading.
    let mut keys = vec![0u8; KEYS * 64];
    let before = rss_bytes();
    let mut len = 0;
    for i in 0..KEYS {
        let issued =
            now(keyring.issue(IssueRequest::new(format!("acct_{}", i % 1000), "k"))).unwrap();
        let key = issued.key.expose_secret().as_bytes();
        keys[i * 64..i * 64 + key.len()].copy_from_slice(key);
        len = key.len();
    }
    let stored = rss_bytes();
    let ctx = VerifyContext::new();
    for i in 0..KEYS {
        let key = std::str::from_utf8(&keys[i * 64..i * 64 + len]).unwrap();
        now(keyring.verify(key, &ctx)).unwrap();
    }
    let cached = rss_bytes();
    println!(
        "memory: {} bytes per MemoryStore record, {} bytes per cached key (with its last-used debounce entry), at {KEYS} keys",
        (stored - before) / KEYS,
        (cached - stored) / KEYS
    );
}

fn listing() {
    let store = MemoryStore::new();
    let hash =
        HashPolicy::new(HmacSha256Hasher::new("b1", Pepper::new([7u8; 32]).unwrap()).unwrap())
            .hash(b"synthetic")
            .unwrap();
    let format = KeyFormat::new("sk_live").unwrap();
    let mut ids = Vec::with_capacity(KEYS);
    for _ in 0..KEYS {
        let key = format.generate().unwrap();
        let record = KeyRecord::new(
            key.id().clone(),
            hash.clone(),
            format.prefix().clone(),
            key.hint(),
            "big".to_owned(),
            Default::default(),
            keymint::Utc::now(),
        );
        ids.push(record.id.clone());
        now(store.insert(&record)).unwrap();
    }
    ids.sort();
    let time = |request: &PageRequest| {
        let mut runs: Vec<Duration> = (0..21)
            .map(|_| {
                let started = Instant::now();
                black_box(now(store.list_by_owner("big", request)).unwrap());
                started.elapsed()
            })
            .collect();
        runs.sort();
        runs[runs.len() / 2]
    };
    let first = time(&PageRequest::new(100));
    let deep = time(&PageRequest::new(100).after(ids[900_000].clone()));
    let started = Instant::now();
    let mut page = PageRequest::new(1000);
    let mut seen = 0;
    loop {
        let got = now(store.list_by_owner("big", &page)).unwrap();
        seen += got.items.len();
        match got.next_after {
            Some(after) => page = PageRequest::new(1000).after(after),
            None => break,
        }
    }
    let walk = started.elapsed();
    assert_eq!(seen, KEYS);
    println!(
        "listing: {KEYS} records of one owner: first page of 100 {first:?}, a page of 100 after the 900 000th {deep:?}, every page of 1000 {walk:?} (medians of 21 for single pages)"
    );
}

fn threads() {
    let keyring = fast_keyring(MemoryStore::new());
    let keys: Vec<String> = (0..2)
        .map(|i| {
            let issued = now(keyring.issue(IssueRequest::new(format!("acct_{i}"), "k"))).unwrap();
            let key = issued.key.expose_secret().to_owned();
            now(keyring.verify(&key, &VerifyContext::new())).unwrap();
            key
        })
        .collect();
    let run = |threads: usize| -> f64 {
        let window = Duration::from_secs(2);
        let counts: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (keyring, key) = (&keyring, &keys[t]);
                    s.spawn(move || {
                        let ctx = VerifyContext::new();
                        let started = Instant::now();
                        let mut n = 0u64;
                        while started.elapsed() < window {
                            for _ in 0..256 {
                                now(keyring.verify(black_box(key), &ctx)).unwrap();
                            }
                            n += 256;
                        }
                        n
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        counts.iter().sum::<u64>() as f64 / window.as_secs_f64()
    };
    let mut one: Vec<f64> = (0..3).map(|_| run(1)).collect();
    let mut two: Vec<f64> = (0..3).map(|_| run(2)).collect();
    one.sort_by(f64::total_cmp);
    two.sort_by(f64::total_cmp);
    println!(
        "threads: cached verifications per second, 1 thread {:.0}, 2 threads {:.0} (x{:.2}; medians of 3 runs of 2 s)",
        one[1],
        two[1],
        two[1] / one[1]
    );
}

fn issue() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let keyring = Keyring::builder(KeyFormat::new("sk_live").unwrap(), MemoryStore::new())
        .build()
        .unwrap();
    for concurrency in [1usize, 2] {
        let window = Duration::from_secs(4);
        let issued = runtime.block_on(async {
            let started = Instant::now();
            let tasks: Vec<_> = (0..concurrency)
                .map(|_| {
                    let keyring = keyring.clone();
                    tokio::spawn(async move {
                        let mut n = 0u64;
                        while started.elapsed() < window {
                            keyring.issue(IssueRequest::new("acct", "k")).await.unwrap();
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let mut total = 0;
            for task in tasks {
                total += task.await.unwrap();
            }
            total as f64 / started.elapsed().as_secs_f64()
        });
        println!(
            "issue: {issued:.1} keys per second with {concurrency} at once (Argon2id at m=19456 KiB, t=2; bound by hashing)"
        );
    }
}

fn scan() {
    const SIZE: usize = 1 << 30;
    let format = KeyFormat::new("sk_live").unwrap();
    let path = std::env::temp_dir().join(format!("keymint-scan-{}.txt", std::process::id()));
    // Source-like text with a real key every ~64 KiB and near misses in between.
    let mut text = Vec::with_capacity(SIZE + 4096);
    let mut planted = 0usize;
    let filler = b"let value = config.get(\"sk_live_section\").unwrap_or(default); // see docs\n";
    while text.len() < SIZE {
        for _ in 0..800 {
            text.extend_from_slice(filler);
        }
        let key = format.generate().unwrap();
        text.extend_from_slice(b"API_KEY=");
        text.extend_from_slice(key.expose_secret().as_bytes());
        text.push(b'\n');
        planted += 1;
    }
    std::fs::write(&path, &text).unwrap();
    let scanner = Scanner::for_formats([format.clone()]);
    let mut runs: Vec<(Duration, usize)> = (0..3)
        .map(|_| {
            let started = Instant::now();
            let found = scanner.scan(black_box(&text)).count();
            (started.elapsed(), found)
        })
        .collect();
    runs.sort();
    let (ours, found) = runs[1];
    assert_eq!(found, planted);
    let gib_per_s = |d: Duration| text.len() as f64 / d.as_secs_f64() / f64::from(1u32 << 30);
    let regex = format.regex();
    let rg = (0..3)
        .map(|_| {
            let started = Instant::now();
            let out = std::process::Command::new("rg")
                .args(["--count", "--no-filename", "-e", &regex])
                .arg(&path)
                .output()
                .ok()?;
            let took = started.elapsed();
            let count: usize = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
            Some((took, count))
        })
        .collect::<Option<Vec<_>>>();
    let _ = std::fs::remove_file(&path);
    match rg {
        Some(mut rg) => {
            rg.sort();
            let (theirs, lines) = rg[1];
            println!(
                "scan: 1 GiB, {planted} keys: keymint {:.2} GiB/s (all found, checksums confirmed), ripgrep with the exported regex {:.2} GiB/s ({lines} lines; candidates only, from the file), ratio {:.2} (medians of 3)",
                gib_per_s(ours),
                gib_per_s(theirs),
                theirs.as_secs_f64() / ours.as_secs_f64()
            );
        }
        None => println!(
            "scan: 1 GiB, {planted} keys: keymint {:.2} GiB/s (ripgrep `rg` not found: no comparison)",
            gib_per_s(ours)
        ),
    }
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    if run("threads") {
        threads();
    }
    if run("memory") {
        memory();
    }
    if run("listing") {
        listing();
    }
    if run("issue") {
        issue();
    }
    if run("scan") {
        scan();
    }
}
