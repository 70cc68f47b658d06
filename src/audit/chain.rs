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

/// Longest a text of an entry is written (longer ones are cut, see [`ChainEntry::cut`]).
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
    /// The fields the writer cut (empty for almost every entry, and then not written): a
    /// text field over 1 KiB (`action`, `actor`, `key_id`, `outcome`) always, `detail` only
    /// when the entry would not fit in a line. A cut text keeps its first KiB, its length
    /// and its SHA-256; a cut detail holds its strings cut the same way, or only
    /// `{"bytes", "sha256"}` of the whole. Only the writer sets this, so text that merely
    /// looks cut is told apart from text that was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cut: Vec<String>,
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

/// Cuts each text field of `entry` longer than [`MAX_TEXT`], naming it in `entry.cut`.
/// Always, not only when the line would be too long, so that one long actor reads the same
/// in every entry it appears in.
pub(super) fn cut_long_texts(entry: &mut ChainEntry) {
    let mut cuts = std::mem::take(&mut entry.cut);
    cut_field("action", &mut entry.action, &mut cuts);
    if let Some(actor) = &mut entry.actor {
        cut_field("actor", actor, &mut cuts);
    }
    if let Some(key_id) = &mut entry.key_id {
        cut_field("key_id", key_id, &mut cuts);
    }
    cut_field("outcome", &mut entry.outcome, &mut cuts);
    entry.cut = cuts;
}

fn cut_field(name: &str, text: &mut String, cuts: &mut Vec<String>) {
    if text.len() > MAX_TEXT {
        *text = cut(text);
        cuts.push(name.to_owned());
    }
}

/// Makes `entry` (its texts already cut) fit in a line of at most [`MAX_LINE`] bytes, its
/// newline included, which is all the verifier reads: the strings of its detail are cut,
/// and if that is not enough the detail is replaced by its length and SHA-256. For entries
/// that would not fit otherwise (a host's huge detail): a log the keyring wrote must always
/// open again. The four text fields fit in 24 KiB even if every byte needs JSON's six-byte
/// escape, so the result always fits.
pub(super) fn cut_detail(entry: &mut ChainEntry) {
    entry.cut.push("detail".to_owned());
    let original = std::mem::take(&mut entry.detail);
    entry.detail = cut_strings(&original);
    if encode(entry).is_ok_and(|(line, _)| line.len() < MAX_LINE) {
        return;
    }
    let whole = original.to_string();
    entry.detail = serde_json::json!({
        "bytes": whole.len(),
        "sha256": lower_hex(&Sha256::digest(whole.as_bytes())),
    });
}

/// `text` itself when short, else its first [`MAX_TEXT`] bytes (at a character boundary)
/// followed by the whole text's length and SHA-256.
fn cut(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}…[cut: {} bytes, sha256 {}]",
        &text[..end],
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
