//! [`ChainedLog`]: the JSON-lines writer and audit sink.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::chain::{
    ChainEntry, ChainError, Checkpoint, GENESIS, MAX_LINE, cut_detail, cut_long_texts, encode,
    verify_chain,
};
use crate::clock::{Clock, SystemClock};

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

/// One entry to append to a [`ChainedLog`]: what happened (`action`), how it ended
/// (`outcome`), and optionally who did it, to which key, details and when (default: now).
/// Never put a secret in it: the trail is meant to be read and kept.
///
/// ```
/// use keymint::audit::Record;
///
/// let record = Record::new("exported", "ok")
///     .actor("ops:alice")
///     .detail(serde_json::json!({ "keys": 12 }));
/// # let _ = record;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Record {
    action: String,
    outcome: String,
    actor: Option<String>,
    key_id: Option<String>,
    detail: serde_json::Value,
    at: Option<DateTime<Utc>>,
}

impl Record {
    /// An entry for `action` that ended in `outcome` (`"ok"`, or a reason code).
    pub fn new(action: impl Into<String>, outcome: impl Into<String>) -> Self {
        Self {
            action: action.into(),
            outcome: outcome.into(),
            actor: None,
            key_id: None,
            detail: serde_json::Value::Object(serde_json::Map::new()),
            at: None,
        }
    }

    /// Who did it.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Who did it, if known.
    pub fn actor_opt(mut self, actor: Option<String>) -> Self {
        self.actor = actor;
        self
    }

    /// The key it concerns (its public id).
    pub fn key_id(mut self, id: impl Into<String>) -> Self {
        self.key_id = Some(id.into());
        self
    }

    /// The key it concerns, if any.
    pub fn key_id_opt(mut self, id: Option<String>) -> Self {
        self.key_id = id;
        self
    }

    /// Details, as a JSON value.
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    /// When it happened (default: the log's clock at append).
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = Some(at);
        self
    }
}

struct State {
    file: File,
    seq: u64,
    prev: String,
    since_checkpoint: u64,
}

/// An [`AuditSink`](crate::AuditSink) writing a hash-chained JSON-lines file (see the [module](super)).
///
/// Clones share the file. Appends are serialised by a lock; each entry is one `write` of a
/// whole line, so a crash leaves at most a torn last line, which [`verify_chain`] reports
/// and [`open`](Self::open) refuses. A failed write is cut off again, logged (`tracing`
/// error) and counted ([`write_failures`](Self::write_failures)): the chain stays
/// consistent (the entry is not counted as written).
///
/// A line is at most 64 KiB, all the verifier reads: a text field over 1 KiB (an actor name
/// of megabytes) is written cut, and so is a detail that would not fit (see
/// [`ChainEntry::cut`]). Every entry is written; none makes the file unopenable.
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
            log.append(Record::new("recovered", "ok").detail(json!({ "dropped_bytes": bytes })))?;
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

    /// Appends one entry (and a checkpoint when one is due). The keyring's events arrive
    /// here through [`AuditSink`](crate::AuditSink); hosts may append their own.
    ///
    /// # Errors
    /// The write's (or the checkpoint's `fsync`'s) failure. A failed write leaves the file
    /// as it was before it: a partly written line is cut off again.
    pub fn append(&self, record: Record) -> std::io::Result<()> {
        let action = record.action.clone();
        let result = self.append_entry(record);
        if let Err(error) = &result {
            self.inner.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, action, "audit event not written to the chained log");
        }
        result
    }

    fn append_entry(&self, record: Record) -> std::io::Result<()> {
        let mut state = self.lock();
        let entry = ChainEntry {
            seq: state.seq + 1,
            at: record.at.unwrap_or_else(|| self.inner.clock.now()),
            action: record.action,
            actor: record.actor,
            key_id: record.key_id,
            outcome: record.outcome,
            detail: record.detail,
            cut: Vec::new(),
            prev: state.prev.clone(),
        };
        self.write_entry(&mut state, entry)?;
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
                cut: Vec::new(),
                prev: state.prev.clone(),
            };
            self.write_entry(&mut state, checkpoint)?;
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

    fn write_entry(&self, state: &mut State, mut entry: ChainEntry) -> std::io::Result<()> {
        cut_long_texts(&mut entry);
        let (mut line, mut hash) = encode(&entry).map_err(std::io::Error::other)?;
        if line.len() >= MAX_LINE {
            // The verifier (and so the next `open`) refuses a longer line: cut it to fit.
            cut_detail(&mut entry);
            (line, hash) = encode(&entry).map_err(std::io::Error::other)?;
        }
        line.push('\n');
        let before = state.file.metadata()?.len();
        // One write of the whole line: O_APPEND keeps it whole against other writers of
        // this process, and a crash tears at most this line.
        if let Err(e) = state.file.write_all(line.as_bytes()) {
            // A short write (a full disk) would leave a fragment that later lines bury in
            // the middle of the file, where no recovery can cut it: take it back now.
            if let Err(undo) = state.file.set_len(before) {
                tracing::error!(error = %undo, "a partly written audit line could not be cut off");
            }
            return Err(e);
        }
        state.seq = entry.seq;
        state.prev = hash;
        Ok(())
    }
}
