//! Hashing: which hasher checks a stored hash, and how much hashing (and store work)
//! unauthenticated requests can cause, also when their callers give up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use keymint::hash::Phc;
use keymint::testing::{Fault, FaultyStore, StoreOp};
use keymint::{
    HashError, HashPolicy, HmacSha256Hasher, KeyFormat, Keyring, MemoryStore, Pepper, PhcHash,
    SecretHasher, Verdict, VerifyError,
};

use crate::support::ctx;

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
        .hashes(crate::support::fast_hashes())
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
