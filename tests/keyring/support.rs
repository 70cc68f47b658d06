//! What the keyring tests share: a keyring on a fault-injecting memory store with a manual
//! clock, fast hashing, an audit recorder and a cache-invalidation recorder.

use std::sync::{Arc, Mutex};

use keymint::testing::FaultyStore;
use keymint::{
    Argon2idHasher, AuditEvent, AuditSink, CacheInvalidation, FailureReason, HashPolicy, KeyFormat,
    KeyId, Keyring, KeyringBuilder, ManualClock, MemoryStore, VerifyContext,
};

#[path = "../support/format_reference.rs"]
#[allow(dead_code)]
mod format_reference;
#[allow(unused_imports)]
pub(crate) use format_reference::{seal, with_prefix};

pub(crate) type Store = FaultyStore<MemoryStore>;

/// Argon2id at the smallest cost that still runs the real algorithm.
pub(crate) fn fast_hashes() -> HashPolicy {
    HashPolicy::new(
        Argon2idHasher::builder()
            .m_cost(64)
            .t_cost(1)
            .build()
            .expect("valid parameters"),
    )
}

/// Audit events, kept for assertions.
#[derive(Debug, Default, Clone)]
pub(crate) struct Recorder(Arc<Mutex<Vec<AuditEvent>>>);

impl AuditSink for Recorder {
    fn record(&self, event: &AuditEvent) {
        self.0.lock().expect("not poisoned").push(event.clone());
    }
}

impl Recorder {
    /// The reasons of every failed verification, in order.
    pub(crate) fn failures(&self) -> Vec<FailureReason> {
        self.0
            .lock()
            .expect("not poisoned")
            .iter()
            .filter_map(|e| match e {
                AuditEvent::VerificationFailed { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    /// Every event so far, in order.
    pub(crate) fn events(&self) -> Vec<AuditEvent> {
        self.0.lock().expect("not poisoned").clone()
    }
}

/// Audit events, sent to a channel for tests that wait for one (a background task's).
#[derive(Debug)]
pub(crate) struct Channel(pub(crate) tokio::sync::mpsc::UnboundedSender<AuditEvent>);

impl AuditSink for Channel {
    fn record(&self, event: &AuditEvent) {
        let _ = self.0.send(event.clone());
    }
}

/// The ids announced on the fleet's cache-invalidation channel, in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Bus(Arc<Mutex<Vec<KeyId>>>);

impl CacheInvalidation for Bus {
    fn publish(&self, id: &KeyId) {
        self.0.lock().expect("not poisoned").push(id.clone());
    }
}

impl Bus {
    /// Every id published so far, in order.
    pub(crate) fn published(&self) -> Vec<KeyId> {
        self.0.lock().expect("not poisoned").clone()
    }
}

pub(crate) struct Fixture {
    pub(crate) keyring: Keyring<Store>,
    pub(crate) store: Store,
    pub(crate) clock: ManualClock,
    pub(crate) audit: Recorder,
    pub(crate) bus: Bus,
}

/// A `sk_test` keyring with defaults but fast hashes, a manual clock, an audit recorder and
/// an invalidation recorder.
pub(crate) fn fixture() -> Fixture {
    fixture_with(|b| b)
}

pub(crate) fn fixture_with(
    configure: impl FnOnce(KeyringBuilder<Store>) -> KeyringBuilder<Store>,
) -> Fixture {
    let store = FaultyStore::new(MemoryStore::new());
    let clock = ManualClock::default();
    let audit = Recorder::default();
    let bus = Bus::default();
    let builder = Keyring::builder(
        KeyFormat::new("sk_test").expect("valid prefix"),
        store.clone(),
    )
    .hashes(fast_hashes())
    .clock(clock.clone())
    .audit(audit.clone())
    .invalidation(bus.clone());
    let keyring = configure(builder).build().expect("valid configuration");
    Fixture {
        keyring,
        store,
        clock,
        audit,
        bus,
    }
}

pub(crate) fn ctx() -> VerifyContext<'static> {
    VerifyContext::new()
}

/// The same id with another secret and a valid checksum: passes every offline check.
#[allow(dead_code)]
pub(crate) fn wrong_secret(key: &str) -> String {
    let body = &key[..key.len() - 6];
    let mut altered = body.to_owned();
    let last = altered.pop().expect("non-empty");
    altered.push(if last == 'a' { 'b' } else { 'a' });
    seal(&altered)
}
