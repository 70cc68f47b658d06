//! Finding leaked keys in arbitrary text, confirmed offline by their checksum.

use std::fmt;

use memchr::memchr;

use super::KeyFormat;
use super::base62::{is_base62, is_prefix_char};
use super::checksum::{self, CHECKSUM_LEN};
use super::key_id::{DEFAULT_ID_LEN, MAX_ID_LEN, MIN_ID_LEN};
use super::parse::{MAX_SECRET_LEN, MIN_SECRET_LEN};
use super::prefix::{self, MAX_PREFIX_LEN};
use crate::format::FormatError;
use crate::format::KeyHint;

/// A regular expression for keys of any prefix with the default id length, for secret
/// scanners (gitleaks, GitHub custom patterns). Confirm its matches with
/// [`parse_key`](super::parse_key): the checksum removes false positives.
pub const GENERIC_REGEX: &str = r"\b[a-z0-9]+(?:_[a-z0-9]+)*_[0-9A-Za-z]{12}_[0-9A-Za-z]{28,70}\b";

/// Scans text for checksum-valid keys.
///
/// The scan is linear in the input: it visits each `_` once and does bounded work around
/// it (at most a prefix, an id and a secret's length). Keys must stand on word boundaries
/// (as `\b` in [`GENERIC_REGEX`]): `sk_live_…` inside `Xsk_live_…` is not reported.
///
/// ```
/// let format = keymint::KeyFormat::new("sk_live")?;
/// let key = format.generate()?;
/// let text = format!("config:\n  api_key = \"{}\"\n", key.expose_secret());
///
/// let findings: Vec<_> = keymint::Scanner::new().scan(text.as_bytes()).collect();
/// assert_eq!(findings.len(), 1);
/// assert_eq!(findings[0].hint(), &key.hint());
/// assert_eq!(&text[findings[0].range()], key.expose_secret());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Scanner {
    mode: Mode,
}

#[derive(Clone, Debug)]
enum Mode {
    AnyPrefix { id_len: usize },
    Formats(Vec<KeyFormat>),
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    /// A scanner for keys of any prefix with the default id length ([`DEFAULT_ID_LEN`]).
    pub fn new() -> Self {
        Self {
            mode: Mode::AnyPrefix {
                id_len: DEFAULT_ID_LEN,
            },
        }
    }

    /// A scanner for keys of any prefix whose ids have `id_len` characters.
    ///
    /// # Errors
    /// [`FormatError::IdLength`] when `id_len` is outside `MIN_ID_LEN..=MAX_ID_LEN`.
    pub fn with_id_len(id_len: usize) -> Result<Self, FormatError> {
        if (MIN_ID_LEN..=MAX_ID_LEN).contains(&id_len) {
            Ok(Self {
                mode: Mode::AnyPrefix { id_len },
            })
        } else {
            Err(FormatError::IdLength(id_len))
        }
    }

    /// A scanner that reports only keys of the given formats.
    pub fn for_formats(formats: impl IntoIterator<Item = KeyFormat>) -> Self {
        Self {
            mode: Mode::Formats(formats.into_iter().collect()),
        }
    }

    /// The checksum-valid keys in `text`, in order of position.
    pub fn scan<'s, 't>(&'s self, text: &'t [u8]) -> Findings<'s, 't> {
        Findings {
            scanner: self,
            text,
            next: 0,
        }
    }

    /// Tries the `_` at `sep` as the separator between an id and a secret.
    fn candidate_at(&self, text: &[u8], sep: usize) -> Option<Finding> {
        let tail_start = sep + 1;
        let max_tail = MAX_SECRET_LEN + CHECKSUM_LEN;
        let tail_len = text[tail_start..]
            .iter()
            .take(max_tail + 1)
            .take_while(|&&b| is_base62(b))
            .count();
        let end = tail_start + tail_len;
        if tail_len > max_tail || text.get(end).is_some_and(|&b| is_word(b)) {
            return None;
        }
        match &self.mode {
            Mode::AnyPrefix { id_len } => {
                let secret_len = tail_len.checked_sub(CHECKSUM_LEN)?;
                if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret_len) {
                    return None;
                }
                let prefix_end = id_start(text, sep, *id_len)?.checked_sub(1)?;
                // The prefix runs back from its `_` to the word boundary before it.
                let run = text[..prefix_end]
                    .iter()
                    .rev()
                    .take(MAX_PREFIX_LEN + 1)
                    .take_while(|&&b| is_prefix_char(b) || b == b'_')
                    .count();
                let start = prefix_end - run;
                if run > MAX_PREFIX_LEN || !at_word_start(text, start) {
                    return None;
                }
                confirm(text, start, prefix_end, sep, end, false)
            }
            Mode::Formats(formats) => formats.iter().find_map(|format| {
                if tail_len != format.secret_len() + CHECKSUM_LEN {
                    return None;
                }
                let prefix_end = id_start(text, sep, format.id_len())?.checked_sub(1)?;
                let prefix = format.prefix().as_str().as_bytes();
                let start = prefix_end.checked_sub(prefix.len())?;
                if &text[start..prefix_end] != prefix || !at_word_start(text, start) {
                    return None;
                }
                confirm(text, start, prefix_end, sep, end, true)
            }),
        }
    }
}

/// Start of an `id_len`-character id ending at `sep`, when those bytes are base62 and the
/// byte before them is the `_` after a prefix.
fn id_start(text: &[u8], sep: usize, id_len: usize) -> Option<usize> {
    let start = sep.checked_sub(id_len)?;
    let before = start.checked_sub(1)?;
    (text[before] == b'_' && text[start..sep].iter().all(|&b| is_base62(b))).then_some(start)
}

fn is_word(b: u8) -> bool {
    is_base62(b) || b == b'_'
}

fn at_word_start(text: &[u8], start: usize) -> bool {
    start == 0 || !is_word(text[start - 1])
}

fn confirm(
    text: &[u8],
    start: usize,
    prefix_end: usize,
    sep: usize,
    end: usize,
    prefix_checked: bool,
) -> Option<Finding> {
    if !prefix_checked && !prefix::is_valid(&text[start..prefix_end]) {
        return None;
    }
    let checksum_start = end - CHECKSUM_LEN;
    if !checksum::matches(&text[start..checksum_start], &text[checksum_start..end]) {
        return None;
    }
    // Every byte in start..end is ASCII (checked above), so these conversions succeed.
    let prefix = std::str::from_utf8(&text[start..prefix_end]).ok()?;
    let id = std::str::from_utf8(&text[prefix_end + 1..sep]).ok()?;
    let key = std::str::from_utf8(&text[start..end]).ok()?;
    Some(Finding {
        start,
        end,
        hint: KeyHint::new(prefix, id, key),
    })
}

/// Iterator over the keys found by [`Scanner::scan`].
#[derive(Debug)]
pub struct Findings<'s, 't> {
    scanner: &'s Scanner,
    text: &'t [u8],
    next: usize,
}

impl Iterator for Findings<'_, '_> {
    type Item = Finding;

    fn next(&mut self) -> Option<Finding> {
        while self.next < self.text.len() {
            let sep = self.next + memchr(b'_', &self.text[self.next..])?;
            self.next = sep + 1;
            if let Some(finding) = self.scanner.candidate_at(self.text, sep) {
                self.next = finding.end;
                return Some(finding);
            }
        }
        None
    }
}

/// One key found by a [`Scanner`]: where it is and its hint. It holds no secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Finding {
    start: usize,
    end: usize,
    hint: KeyHint,
}

impl Finding {
    /// Byte range of the key in the scanned text.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start..self.end
    }

    /// The key's hint (prefix, id, last four characters).
    pub fn hint(&self) -> &KeyHint {
        &self.hint
    }
}

impl fmt::Debug for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finding")
            .field("range", &self.range())
            .field("hint", &self.hint)
            .finish()
    }
}
