//! The chain's entries, their hashing, and the verifier.

use std::io::{BufRead, BufReader, Read};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

use crate::hex::lower_hex;

/// Longest line a verifier reads: a longer one is malformed, so a hostile file cannot make
/// it buffer without bound.
pub(super) const MAX_LINE: usize = 64 * 1024;

/// Longest a text value of an entry is written when the entry would not fit in a line.
/// Even if every byte needed JSON's six-byte escape, the four text fields fit in 24 KiB.
const MAX_TEXT: usize = 1024;

/// The `prev` of the first entry.
pub(super) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One event of the trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChainEntry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened: `issued`, `verification_failed`, `revoked`, ..., `checkpoint`,
    /// `recovered`.
    pub action: String,
    /// Who did it, when known (a self-service user); `None` for the keyring itself.
    pub actor: Option<String>,
    /// The key concerned, when there is one.
    pub key_id: Option<String>,
    /// `ok`, or the failure's reason (`wrong_secret`, `revoked`, ...).
    pub outcome: String,
    /// Everything else about the event (never a secret).
    pub detail: serde_json::Value,
    /// The hash of the entry before (64 zeros for the first).
    pub prev: String,
}

/// A point of the chain to sign or keep elsewhere: the chain up to `seq` is exactly the one
/// whose last entry hashes to `hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The sequence number of the entry.
    pub seq: u64,
    /// Its hash (lowercase hex SHA-256).
    pub hash: String,
}

/// A line as written: the hash, and the entry's exact bytes.
#[derive(Deserialize)]
struct Line<'a> {
    hash: &'a str,
    #[serde(borrow)]
    entry: &'a RawValue,
}

#[derive(Serialize)]
struct LineOut<'a> {
    hash: &'a str,
    entry: &'a RawValue,
}

/// The line for `entry` (without its newline) and the entry's hash.
pub(super) fn encode(entry: &ChainEntry) -> Result<(String, String), serde_json::Error> {
    let body = serde_json::to_string(entry)?;
    let hash = lower_hex(&Sha256::digest(body.as_bytes()));
    let raw = RawValue::from_string(body)?;
    let line = serde_json::to_string(&LineOut {
        hash: &hash,
        entry: &raw,
    })?;
    Ok((line, hash))
}

/// `entry` made to fit in a line of at most [`MAX_LINE`] bytes (its newline included), which
/// is all the verifier reads: every text longer than [`MAX_TEXT`] is cut, keeping its
/// length and SHA-256 so that two long values are still told apart, and a `detail` still too
/// large after that is replaced by its own length and SHA-256. Only for entries that would
/// not fit otherwise (an actor name of 70 000 bytes, a host's huge detail): a log the
/// keyring wrote must always open again.
pub(super) fn fitted(entry: &ChainEntry) -> ChainEntry {
    let mut fitted = ChainEntry {
        seq: entry.seq,
        at: entry.at,
        action: cut(&entry.action),
        actor: entry.actor.as_deref().map(cut),
        key_id: entry.key_id.as_deref().map(cut),
        outcome: cut(&entry.outcome),
        detail: cut_strings(&entry.detail),
        prev: entry.prev.clone(),
    };
    let fits = |e: &ChainEntry| encode(e).is_ok_and(|(line, _)| line.len() < MAX_LINE);
    if !fits(&fitted) {
        let original = entry.detail.to_string();
        fitted.detail = serde_json::json!({ "cut": summary(&original) });
    }
    fitted
}

/// `text` itself when short, else its first [`MAX_TEXT`] bytes (at a character boundary)
/// and what was cut.
fn cut(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{}]", &text[..end], summary(text))
}

/// A long text's length and SHA-256, in place of the text.
fn summary(text: &str) -> String {
    format!(
        "cut: {} bytes, sha256 {}",
        text.len(),
        lower_hex(&Sha256::digest(text.as_bytes()))
    )
}

/// `value` with every string (keys of objects too) [`cut`].
fn cut_strings(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) => Value::String(cut(text)),
        Value::Array(items) => Value::Array(items.iter().map(cut_strings).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| (cut(key), cut_strings(item)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Where and why a chain does not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The file could not be read.
    #[error("reading the audit trail failed")]
    Io(#[from] std::io::Error),
    /// A line is not a chain line (not JSON of the right shape, or too long).
    #[error("line {line}: not an audit chain line")]
    Malformed {
        /// 1-based line number.
        line: u64,
    },
    /// A line's entry does not hash to its `hash`: the entry (or the hash) was edited.
    #[error("line {line}: the entry does not match its hash (edited)")]
    Edited {
        /// 1-based line number.
        line: u64,
    },
    /// An entry's `prev` is not the hash of the entry before it, or its sequence number is
    /// not the next one: entries were removed, inserted or reordered here.
    #[error(
        "line {line}: expected entry {expected_seq} after the previous one, found {found_seq} (removed, inserted or reordered)"
    )]
    BrokenLink {
        /// 1-based line number.
        line: u64,
        /// The sequence number that should be here.
        expected_seq: u64,
        /// The one that is.
        found_seq: u64,
    },
    /// The last line is incomplete: a write was cut short (a crash). Nothing after the last
    /// complete line can be trusted; see [`ChainedLog::open_recovering`](super::ChainedLog::open_recovering).
    #[error("line {line}: incomplete last line (a torn write)")]
    TornTail {
        /// 1-based line number.
        line: u64,
        /// Byte offset where the torn line starts.
        offset: u64,
    },
    /// The chain verifies but does not reach the expected checkpoint: lines were cut from
    /// the end, or the checkpoint belongs to another chain.
    #[error(
        "the chain ends at entry {last_seq}, which does not match the checkpoint at entry {checkpoint_seq}"
    )]
    CheckpointMismatch {
        /// The chain's last sequence number.
        last_seq: u64,
        /// The checkpoint's.
        checkpoint_seq: u64,
    },
}

/// What a verified chain holds.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Entries, checkpoints included.
    pub entries: u64,
    /// The last entry, as a checkpoint (`None` for an empty file).
    pub head: Option<Checkpoint>,
    /// Bytes of complete lines (where the next line starts).
    pub end_offset: u64,
}

/// Verifies a whole chain read from `reader`: every hash, every link, every sequence
/// number, and a complete last line. With `expected` (a checkpoint you kept elsewhere), also
/// that the chain reaches that entry with that hash, so the file was not cut before it.
///
/// # Errors
/// The first problem found, with its line.
pub fn verify_chain(
    reader: impl Read,
    expected: Option<&Checkpoint>,
) -> Result<VerifyReport, ChainError> {
    let mut reader = BufReader::new(reader);
    let mut prev = GENESIS.to_owned();
    let mut seq = 0u64;
    let mut offset = 0u64;
    let mut line_no = 0u64;
    let mut head: Option<Checkpoint> = None;
    let mut matched_expected = expected.is_none();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if read == 0 {
            break;
        }
        line_no += 1;
        if buf.last() != Some(&b'\n') {
            if read > MAX_LINE {
                return Err(ChainError::Malformed { line: line_no });
            }
            return Err(ChainError::TornTail {
                line: line_no,
                offset,
            });
        }
        let text = std::str::from_utf8(&buf[..buf.len() - 1])
            .map_err(|_| ChainError::Malformed { line: line_no })?;
        let line: Line<'_> =
            serde_json::from_str(text).map_err(|_| ChainError::Malformed { line: line_no })?;
        let hash = lower_hex(&Sha256::digest(line.entry.get().as_bytes()));
        if hash != line.hash {
            return Err(ChainError::Edited { line: line_no });
        }
        let entry: ChainEntry = serde_json::from_str(line.entry.get())
            .map_err(|_| ChainError::Malformed { line: line_no })?;
        if entry.seq != seq + 1 || entry.prev != prev {
            return Err(ChainError::BrokenLink {
                line: line_no,
                expected_seq: seq + 1,
                found_seq: entry.seq,
            });
        }
        seq = entry.seq;
        prev = hash;
        offset += read as u64;
        if let Some(cp) = expected.filter(|cp| cp.seq == seq) {
            if cp.hash != prev {
                return Err(ChainError::CheckpointMismatch {
                    last_seq: seq,
                    checkpoint_seq: cp.seq,
                });
            }
            matched_expected = true;
        }
        head = Some(Checkpoint {
            seq,
            hash: prev.clone(),
        });
    }
    if !matched_expected {
        return Err(ChainError::CheckpointMismatch {
            last_seq: seq,
            checkpoint_seq: expected.map_or(0, |c| c.seq),
        });
    }
    Ok(VerifyReport {
        entries: seq,
        head,
        end_offset: offset,
    })
}
