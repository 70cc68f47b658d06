//! A tamper-evident audit trail: [`ChainedLog`] is an [`AuditSink`](crate::AuditSink) that
//! appends each event to a JSON-lines file as a link of a SHA-256 hash chain, and
//! [`verify_chain`] finds the line where a file was edited, cut, extended or reordered.
//!
//! Each line is `{"hash":"<hex>","entry":{..}}`: the entry carries its sequence number,
//! time, action, actor, key id, outcome, details and the hash of the entry before it
//! (`prev`); `hash` is SHA-256 over the entry's bytes exactly as they stand in the line, so
//! verification never depends on re-encoding JSON. Every
//! [`checkpoint_every`](ChainOptions::checkpoint_every) entries the log writes a checkpoint
//! entry, forces the file to disk, and hands a [`Checkpoint`] (sequence number and hash) to
//! your hook: sign it or store it elsewhere. A chain proves its own integrity from its
//! first line to its last; only a checkpoint kept outside the file also proves that no
//! lines were cut from the end (pass it to [`verify_chain`] as `expected`).
//!
//! ```
//! use keymint::audit::{ChainOptions, ChainedLog, verify_chain};
//! use keymint::{KeyFormat, Keyring, MemoryStore, IssueRequest};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("keymint-audit-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let path = dir.join("audit.jsonl");
//! let log = ChainedLog::open(&path, ChainOptions::new())?;
//! let keyring = Keyring::builder(KeyFormat::new("sk_live")?, MemoryStore::new())
//!     .audit(log.clone())
//!     .build()?;
//! keyring.issue(IssueRequest::new("acct_42", "CI")).await?;
//! log.sync()?;
//! let report = verify_chain(std::fs::File::open(&path)?, None)?;
//! assert_eq!(report.entries, 1);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```

mod chain;
mod log;

pub use chain::{ChainEntry, ChainError, Checkpoint, VerifyReport, verify_chain};
pub use log::{ChainOptions, ChainedLog, OpenError, Record};
