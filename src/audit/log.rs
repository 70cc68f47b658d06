//! [`ChainedLog`]: the JSON-lines writer and audit sink.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::chain::{ChainEntry, ChainError, Checkpoint, GENESIS, encode, verify_chain};
use crate::clock::{Clock, SystemClock};
use crate::keyring::{AuditEvent, AuditSink, FailureReason, SelfServiceAction};

/// What [`ChainOptions::on_checkpoint`] calls.
type CheckpointHook = Arc<dyn Fn(&Checkpoint) + Send + Sync>;

/// How a [`ChainedLog`] writes.
#[derive(Clone)]
#[must_use]
pub struct ChainOptions {
    checkpoint_every: u64,
    on_checkpoint: Option<CheckpointHook>,
    sync_every_entry: bool,
}

impl fmt::Debug for ChainOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainOptions")
            .field("checkpoint_every", &self.checkpoint_every)
            .field("on_checkpoint", &self.on_checkpoint.is_some())
            .field("sync_every_entry", &self.sync_every_entry)
            .finish()
    }
}

impl Default for ChainOptions {
    fn default() -> Self {
        Self {
            checkpoint_every: Self::DEFAULT_CHECKPOINT_EVERY,
            on_checkpoint: None,
            sync_every_entry: false,
        }
    }
}

impl ChainOptions {
    /// Entries between checkpoints by default.
    pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1000;

    /// The defaults: a checkpoint every 1000 entries, the file forced to disk at each
    /// checkpoint and on [`ChainedLog::sync`], each entry written to the OS at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// A checkpoint entry after every `entries` entries (at least 1).
    pub fn checkpoint_every(mut self, entries: u64) -> Self {
        self.checkpoint_every = entries.max(1);
        self
    }

    /// Called with each checkpoint once it is on disk: sign it, or store it where whoever
    /// can edit the file cannot.
    pub fn on_checkpoint(mut self, hook: impl Fn(&Checkpoint) + Send + Sync + 'static) -> Self {
        self.on_checkpoint = Some(Arc::new(hook));
        self
    }

    /// Forces every entry to disk (`fsync`) before the event returns, at the cost of a disk
    /// flush per event (a flood of failed verifications becomes a flood of flushes).
    pub fn sync_every_entry(mut self, sync: bool) -> Self {
        self.sync_every_entry = sync;
        self
    }
}

/// Why a [`ChainedLog`] could not open its file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file could not be opened, read or created.
    #[error("opening the audit trail failed")]
    Io(#[from] std::io::Error),
    /// The existing file does not verify: nothing is appended to a broken chain. For a
    /// [`ChainError::TornTail`] (a crash mid-write), see
    /// [`ChainedLog::open_recovering`].
    #[error("the existing audit trail does not verify")]
    Broken(#[source] ChainError),
}

struct State {
    file: File,
    seq: u64,
    prev: String,
    since_checkpoint: u64,
}

/// An [`AuditSink`] writing a hash-chained JSON-lines file (see the [module](super)).
///
/// Clones share the file. Appends are serialised by a lock; each entry is one `write` of a
/// whole line, so a crash leaves at most a torn last line, which [`verify_chain`] reports
/// and [`open`](Self::open) refuses. A failed write is logged (`tracing` error) and
/// counted ([`write_failures`](Self::write_failures)); the chain stays consistent (the
/// entry is not counted as written).
#[derive(Clone)]
pub struct ChainedLog {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    state: Mutex<State>,
    options: ChainOptions,
    clock: Box<dyn Clock>,
    failures: AtomicU64,
}

impl fmt::Debug for ChainedLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainedLog")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl ChainedLog {
    /// Opens `path` for appending (creating it), after verifying the chain already in it.
    ///
    /// # Errors
    /// [`OpenError::Io`], or [`OpenError::Broken`] when the file does not verify.
    pub fn open(path: impl AsRef<Path>, options: ChainOptions) -> Result<Self, OpenError> {
        Self::open_inner(path.as_ref(), options, false)
    }

    /// Like [`open`](Self::open), but a torn last line (a crash mid-write) is cut off and a
    /// `recovered` entry recording how many bytes were dropped is appended. Any other damage
    /// is still refused.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_recovering(
        path: impl AsRef<Path>,
        options: ChainOptions,
    ) -> Result<Self, OpenError> {
        Self::open_inner(path.as_ref(), options, true)
    }

    fn open_inner(path: &Path, options: ChainOptions, recover: bool) -> Result<Self, OpenError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut dropped = None;
        let report = match verify_chain(&mut file, None) {
            Ok(report) => report,
            Err(ChainError::TornTail { offset, .. }) if recover => {
                let len = file.metadata()?.len();
                file.set_len(offset)?;
                file.sync_all()?;
                dropped = Some(len - offset);
                let mut reread = File::open(path)?;
                verify_chain(&mut reread, None).map_err(OpenError::Broken)?
            }
            Err(e) => return Err(OpenError::Broken(e)),
        };
        file.seek(SeekFrom::End(0))?;
        let (seq, prev) = report
            .head
            .map_or((0, GENESIS.to_owned()), |head| (head.seq, head.hash));
        let log = Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                state: Mutex::new(State {
                    file,
                    seq,
                    prev,
                    since_checkpoint: 0,
                }),
                options,
                clock: Box::new(SystemClock),
                failures: AtomicU64::new(0),
            }),
        };
        if let Some(bytes) = dropped {
            log.append(
                "recovered",
                None,
                None,
                "ok",
                json!({ "dropped_bytes": bytes }),
                None,
            )?;
        }
        Ok(log)
    }

    /// Forces everything written so far to disk.
    ///
    /// # Errors
    /// The `fsync` failure.
    pub fn sync(&self) -> std::io::Result<()> {
        self.lock().file.sync_data()
    }

    /// The last entry written, to sign or keep elsewhere (`None` while the file is empty).
    pub fn head(&self) -> Option<Checkpoint> {
        let state = self.lock();
        (state.seq > 0).then(|| Checkpoint {
            seq: state.seq,
            hash: state.prev.clone(),
        })
    }

    /// Events that could not be written (each also logged).
    pub fn write_failures(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state as of the last complete write.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends one entry (and a checkpoint when one is due).
    fn append(
        &self,
        action: &str,
        actor: Option<String>,
        key_id: Option<String>,
        outcome: &str,
        detail: serde_json::Value,
        at: Option<DateTime<Utc>>,
    ) -> std::io::Result<()> {
        let mut state = self.lock();
        let entry = ChainEntry {
            seq: state.seq + 1,
            at: at.unwrap_or_else(|| self.inner.clock.now()),
            action: action.to_owned(),
            actor,
            key_id,
            outcome: outcome.to_owned(),
            detail,
            prev: state.prev.clone(),
        };
        self.write_entry(&mut state, &entry)?;
        if self.inner.options.sync_every_entry {
            state.file.sync_data()?;
        }
        state.since_checkpoint += 1;
        if state.since_checkpoint >= self.inner.options.checkpoint_every {
            let checkpoint = ChainEntry {
                seq: state.seq + 1,
                at: self.inner.clock.now(),
                action: "checkpoint".to_owned(),
                actor: None,
                key_id: None,
                outcome: "ok".to_owned(),
                detail: json!({ "entries": state.seq }),
                prev: state.prev.clone(),
            };
            self.write_entry(&mut state, &checkpoint)?;
            state.file.sync_data()?;
            state.since_checkpoint = 0;
            let mark = Checkpoint {
                seq: state.seq,
                hash: state.prev.clone(),
            };
            drop(state);
            if let Some(hook) = &self.inner.options.on_checkpoint {
                hook(&mark);
            }
        }
        Ok(())
    }

    fn write_entry(&self, state: &mut State, entry: &ChainEntry) -> std::io::Result<()> {
        let (mut line, hash) = encode(entry).map_err(std::io::Error::other)?;
        line.push('\n');
        // One write of the whole line: O_APPEND keeps it whole against other writers of
        // this process, and a crash tears at most this line.
        state.file.write_all(line.as_bytes())?;
        state.seq = entry.seq;
        state.prev = hash;
        Ok(())
    }
}

/// `WrongSecret` -> `wrong_secret`.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn reason_code(reason: FailureReason) -> String {
    snake(&format!("{reason:?}"))
}

fn self_service(action: SelfServiceAction) -> String {
    snake(&format!("{action:?}"))
}

fn ip(ip: Option<IpAddr>) -> serde_json::Value {
    ip.map_or(serde_json::Value::Null, |ip| ip.to_string().into())
}

impl AuditSink for ChainedLog {
    fn record(&self, event: &AuditEvent) {
        let outcome = match event {
            AuditEvent::VerificationFailed { reason, .. } => reason_code(*reason),
            _ => "ok".to_owned(),
        };
        let (action, actor, key_id, detail, at) = match event {
            AuditEvent::Issued {
                id,
                hint,
                owner,
                at,
            } => (
                "issued",
                None,
                Some(id.to_string()),
                json!({ "hint": hint, "owner": owner }),
                Some(*at),
            ),
            AuditEvent::VerificationFailed {
                id, client_ip, at, ..
            } => (
                "verification_failed",
                None,
                id.as_ref().map(ToString::to_string),
                json!({ "client_ip": ip(*client_ip) }),
                Some(*at),
            ),
            AuditEvent::Revoked { id, reason, at } => (
                "revoked",
                None,
                Some(id.to_string()),
                json!({ "reason": reason }),
                Some(*at),
            ),
            AuditEvent::Disabled { id, at } => {
                ("disabled", None, Some(id.to_string()), json!({}), Some(*at))
            }
            AuditEvent::Enabled { id, at } => {
                ("enabled", None, Some(id.to_string()), json!({}), Some(*at))
            }
            AuditEvent::Rotated {
                old,
                new,
                old_expires_at,
            } => (
                "rotated",
                None,
                Some(old.to_string()),
                json!({ "successor": new, "old_expires_at": old_expires_at }),
                None,
            ),
            AuditEvent::Updated { id, at } => {
                ("updated", None, Some(id.to_string()), json!({}), Some(*at))
            }
            AuditEvent::SentInClear { id, client_ip, at } => (
                "sent_in_clear",
                None,
                id.as_ref().map(ToString::to_string),
                json!({ "client_ip": ip(*client_ip) }),
                Some(*at),
            ),
            AuditEvent::SelfService {
                actor,
                owner,
                action,
                id,
                successor,
                at,
            } => (
                "self_service",
                Some(actor.clone()),
                Some(id.to_string()),
                json!({ "owner": owner, "action": self_service(*action), "successor": successor }),
                Some(*at),
            ),
            AuditEvent::Anomaly {
                id,
                anomaly,
                client_ip,
                at,
            } => (
                "anomaly",
                None,
                Some(id.to_string()),
                match anomaly {
                    crate::keyring::Anomaly::RateSpike {
                        per_minute,
                        usual_per_minute,
                    } => json!({ "kind": "rate_spike", "per_minute": per_minute,
                                 "usual_per_minute": usual_per_minute, "client_ip": ip(*client_ip) }),
                    crate::keyring::Anomaly::NewNetwork { network } => json!({
                        "kind": "new_network", "network": network, "client_ip": ip(*client_ip) }),
                },
                Some(*at),
            ),
            AuditEvent::LeakReported {
                id,
                owner,
                url,
                source,
                revoked,
                at,
            } => (
                "leak_reported",
                None,
                Some(id.to_string()),
                json!({ "owner": owner, "url": url, "source": source, "revoked": revoked }),
                Some(*at),
            ),
            AuditEvent::Rehashed { id } => {
                ("rehashed", None, Some(id.to_string()), json!({}), None)
            }
        };
        if let Err(error) = self.append(action, actor, key_id, &outcome, detail, at) {
            self.inner.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, action, "audit event not written to the chained log");
        }
    }
}
