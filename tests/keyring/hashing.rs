//! Hashing: which hasher checks a stored hash, how legacy hashes are upgraded, and how much
//! hashing (and store work) unauthenticated requests can cause, also when their callers
//! give up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use keymint::hash::Phc;
use keymint::testing::{Fault, FaultyStore, StoreOp};
use keymint::{
    Argon2idHasher, AuditEvent, HashError, HashPolicy, HmacSha256Hasher, IssueRequest, KeyFormat,
    KeyStore, Keyring, MemoryStore, Pepper, PhcHash, SecretHasher, Verdict, VerifyContext,
    VerifyError,
};

use crate::support::{Channel, ctx, fast_hashes};

/// HMAC hashing whose verifications wait until the test opens the gate, counting how many
/// run at once (and the most that ever did).
#[derive(Debug, Clone)]
struct Held {
    inner: HmacSha256Hasher,
    state: Arc<HeldState>,
}

#[derive(Debug, Default)]
struct HeldState {
    running: AtomicUsize,
    most: AtomicUsize,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Held {
    fn new() -> Self {
        Self {
            inner: HmacSha256Hasher::new("k1", Pepper::new([5u8; 32]).unwrap()).unwrap(),
            state: Arc::default(),
        }
    }
    fn open(&self) {
        *self.state.open.lock().unwrap() = true;
        self.state.opened.notify_all();
    }
    fn running(&self) -> usize {
        self.state.running.load(Ordering::SeqCst)
    }
    fn most(&self) -> usize {
        self.state.most.load(Ordering::SeqCst)
    }
}

impl SecretHasher for Held {
    fn algorithm(&self) -> &'static str {
        self.inner.algorithm()
    }
    fn hash(&self, secret: &[u8]) -> Result<PhcHash, HashError> {
        self.inner.hash(secret)
    }
    fn verify(&self, secret: &[u8], stored: &Phc<'_>) -> Result<bool, HashError> {
        let now = self.state.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.state.most.fetch_max(now, Ordering::SeqCst);
        let mut open = self.state.open.lock().unwrap();
        while !*open {
            open = self.state.opened.wait(open).unwrap();
        }
        drop(open);
        self.state.running.fetch_sub(1, Ordering::SeqCst);
        self.inner.verify(secret, stored)
    }
    fn needs_rehash(&self, stored: &Phc<'_>) -> bool {
        self.inner.needs_rehash(stored)
    }
}

/// Opens the held hasher when dropped, so a failing assertion ends the test instead of
/// leaving blocking threads that the runtime would wait for forever.
struct OpenOnDrop(Held);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_verifications_keep_their_slot_until_their_hash_finishes() {
    let held = Held::new();
    let _open = OpenOnDrop(held.clone());
    let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), MemoryStore::new())
        .hashes(HashPolicy::new(held.clone()))
        .uncached_concurrency(2, 1000)
        .build()
        .unwrap();
    // A flood of forged keys (valid checksums, unknown ids), each caller giving up after a
    // few milliseconds as an HTTP timeout or a client disconnect would; one after another,
    // so that a slot freed early would be taken by a caller still waiting.
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..40 {
        let keyring = keyring.clone();
        let forged = keyring.format().generate().unwrap();
        callers.spawn(async move {
            let ctx = ctx();
            let verify = keyring.verify(forged.expose_secret(), &ctx);
            tokio::time::timeout(Duration::from_millis(5 * (i + 1)), verify).await
        });
    }
    while let Some(done) = callers.join_next().await {
        assert!(done.unwrap().is_err(), "every caller gave up waiting");
    }
    assert_eq!(held.running(), 2, "the two admitted hashes still run");
    assert_eq!(
        held.most(),
        2,
        "callers that gave up must not free their slot while their hash runs on"
    );
    held.open();
    // Once the hashes end, the slots are free again.
    let forged = keyring.format().generate().unwrap();
    assert!(matches!(
        keyring.verify(forged.expose_secret(), &ctx()).await,
        Err(VerifyError::Invalid)
    ));
    assert!(held.most() <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_keys_cannot_hold_more_store_lookups_than_the_gate_allows() {
    let store = FaultyStore::new(MemoryStore::new());
    let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), store.clone())
        .hashes(fast_hashes())
        .uncached_concurrency(1, 0)
        .build()
        .unwrap();
    store.inject(StoreOp::Get, Fault::Pause);
    let first = {
        let keyring = keyring.clone();
        let forged = keyring.format().generate().unwrap();
        tokio::spawn(async move {
            keyring
                .verify(forged.expose_secret(), &ctx())
                .await
                .map(|_| ())
        })
    };
    store.wait_paused().await; // the first lookup holds (a slow database)
    for _ in 0..5 {
        let forged = keyring.format().generate().unwrap();
        let err = keyring
            .verify(forged.expose_secret(), &ctx())
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::Overloaded), "{err:?}");
        assert_eq!(err.status_code(), 503);
    }
    assert_eq!(
        store.calls(StoreOp::Get),
        1,
        "refused requests must not reach the store"
    );
    store.release();
    assert!(matches!(first.await.unwrap(), Err(VerifyError::Invalid)));
}

#[test]
fn hashers_of_one_algorithm_are_chosen_by_pepper_id() {
    // The natural pepper migration: new hashes with k2, old k1 hashes still accepted.
    let k1 = HmacSha256Hasher::new("k1", Pepper::new([1u8; 32]).unwrap()).unwrap();
    let k2 = HmacSha256Hasher::new("k2", Pepper::new([2u8; 32]).unwrap()).unwrap();
    let old = k1.hash(b"secret").unwrap();
    let policy = HashPolicy::new(k2).accept(k1);
    assert_eq!(
        policy.verify(b"secret", old.as_str()).unwrap(),
        Verdict::Match { needs_rehash: true }
    );
    assert_eq!(
        policy.verify(b"wrong", old.as_str()).unwrap(),
        Verdict::Mismatch
    );
    let new = policy.hash(b"secret").unwrap();
    assert_eq!(
        policy.verify(b"secret", new.as_str()).unwrap(),
        Verdict::Match {
            needs_rehash: false
        }
    );
    // A pepper nobody configured is still an error that names it.
    let k3 = HmacSha256Hasher::new("k3", Pepper::new([3u8; 32]).unwrap()).unwrap();
    let unknown = k3.hash(b"secret").unwrap();
    assert!(matches!(
        policy.verify(b"secret", unknown.as_str()),
        Err(HashError::UnknownPepper(kid)) if kid == "k3"
    ));
}

/// Waits until `n` verifications are held in the hasher.
async fn until_running(held: &Held, n: usize) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while held.running() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the verification reached the hasher");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hash_queue_refuses_instead_of_waiting() {
    let held = Held::new();
    let _open = OpenOnDrop(held.clone());
    let store = MemoryStore::new();
    let format = KeyFormat::new("sk_test").unwrap();
    let issuer = Keyring::builder(format.clone(), store.clone())
        .hashes(HashPolicy::new(held.inner.clone()))
        .build()
        .unwrap();
    let issued = issuer.issue(IssueRequest::new("a", "n")).await.unwrap();
    // prepare_dummy() hashes, which does not block; verifications do.
    let keyring = Keyring::builder(format, store)
        .hashes(HashPolicy::new(held.clone()))
        .uncached_concurrency(1, 0)
        .without_cache()
        .build()
        .unwrap();

    let first = {
        let keyring = keyring.clone();
        let key = issued.key.expose_secret().to_owned();
        tokio::spawn(async move {
            keyring
                .verify(&key, &VerifyContext::new())
                .await
                .map(|_| ())
        })
    };
    until_running(&held, 1).await;
    // The only slot is busy and no one may wait: refused at once, with 503.
    let err = keyring
        .verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::Overloaded), "{err:?}");
    assert_eq!(err.status_code(), 503);
    held.open();
    first.await.unwrap().unwrap();
    // The slot is free again.
    keyring
        .verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();
}

#[tokio::test]
async fn legacy_hashes_are_upgraded_on_verify() {
    let store = MemoryStore::new();
    let hmac = HmacSha256Hasher::new("k1", Pepper::new([3u8; 32]).unwrap()).unwrap();
    let format = KeyFormat::new("sk_test").unwrap();
    let old = Keyring::builder(format.clone(), store.clone())
        .hashes(HashPolicy::new(hmac.clone()))
        .build()
        .unwrap();
    let issued = old.issue(IssueRequest::new("a", "n")).await.unwrap();
    assert!(issued.record.hash.as_str().starts_with("$hmac-sha256$"));

    let argon = Argon2idHasher::builder()
        .m_cost(64)
        .t_cost(1)
        .build()
        .unwrap();
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let new = Keyring::builder(format, store.clone())
        .hashes(HashPolicy::new(argon).accept(hmac))
        .audit(Channel(tx))
        .build()
        .unwrap();
    new.verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();
    // The rehash runs as a background task: wait for its event.
    let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .expect("rehash finished");
    assert_eq!(
        event,
        Some(AuditEvent::Rehashed {
            id: issued.record.id.clone()
        })
    );
    let stored = store.get(&issued.record.id).await.unwrap().unwrap();
    assert!(
        stored.hash.as_str().starts_with("$argon2id$"),
        "hash must be upgraded: {:?}",
        stored.hash
    );
    let secret = issued.key.parsed().expose_secret().as_bytes().to_vec();
    assert_eq!(
        fast_hashes().verify(&secret, stored.hash.as_str()).unwrap(),
        Verdict::Match {
            needs_rehash: false
        }
    );
    new.invalidate_cached(&issued.record.id);
    new.verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_lookup_keeps_its_slot_while_the_store_still_works() {
    let store = FaultyStore::new(MemoryStore::new());
    let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), store.clone())
        .hashes(fast_hashes())
        .uncached_concurrency(1, 0)
        .build()
        .unwrap();
    // The store holds the first lookup (a table lock, a slow query), and its caller gives
    // up after a few milliseconds.
    store.inject(StoreOp::Get, Fault::Pause);
    let forged = keyring.format().generate().unwrap();
    let ctx = ctx();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(20),
        keyring.verify(forged.expose_secret(), &ctx),
    )
    .await;
    assert!(gave_up.is_err(), "the caller gave up");
    store.wait_paused().await;
    // The query still runs, so its slot is still taken: the next forged key is refused
    // without reaching the store.
    let next = keyring.format().generate().unwrap();
    let err = keyring
        .verify(next.expose_secret(), &ctx)
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::Overloaded), "{err:?}");
    assert_eq!(store.calls(StoreOp::Get), 1);
    store.release();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forged_keys_cannot_hold_off_confirming_a_leak() {
    let store = FaultyStore::new(MemoryStore::new());
    let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), store.clone())
        .hashes(fast_hashes())
        .uncached_concurrency(1, 0)
        .build()
        .unwrap();
    let leaked = keyring
        .issue(keymint::IssueRequest::new("acct", "leaked"))
        .await
        .unwrap();
    // The only place is held by a forged key whose lookup is slow; the waiting room (none)
    // is full, so verifications are refused...
    store.inject(StoreOp::Get, Fault::Pause);
    let forged = keyring.format().generate().unwrap();
    let holder = {
        let keyring = keyring.clone();
        tokio::spawn(async move {
            keyring
                .verify(forged.expose_secret(), &ctx())
                .await
                .map(|_| ())
        })
    };
    store.wait_paused().await;
    let another = keyring.format().generate().unwrap();
    assert!(matches!(
        keyring.verify(another.expose_secret(), &ctx()).await,
        Err(VerifyError::Overloaded)
    ));
    // ...but confirming a leak waits for the place instead of failing.
    let confirm = {
        let keyring = keyring.clone();
        let key = leaked.key.expose_secret().to_owned();
        tokio::spawn(async move { keyring.confirm_secret(&key).await })
    };
    tokio::task::yield_now().await;
    store.release();
    let confirmed = tokio::time::timeout(Duration::from_secs(5), confirm)
        .await
        .expect("confirmed in time")
        .unwrap()
        .expect("no overload error");
    assert_eq!(confirmed.map(|r| r.id), Some(leaked.record.id));
    assert!(matches!(holder.await.unwrap(), Err(VerifyError::Invalid)));
}
