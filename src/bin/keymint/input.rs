//! Reading keys without leaving copies behind: a zeroized stdin buffer and bounded lines.

use std::io::{self, BufRead, Read};

use keymint::format::MAX_KEY_LEN;
use keymint::{ParseError, ParsedKey, parse_key};
use memchr::memchr;
use zeroize::Zeroizing;

use crate::output::Failure;

/// Our read size. It is larger than std's stdin buffer (8 KiB), so std hands our reads
/// straight to the operating system and its own (never wiped) buffer stays empty.
const BUF_LEN: usize = 16 * 1024;

/// A buffered reader whose buffer is zeroized on drop.
pub(crate) struct ZeroizingReader<R> {
    inner: R,
    buf: Zeroizing<Vec<u8>>,
    pos: usize,
    end: usize,
}

impl<R: Read> ZeroizingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            buf: Zeroizing::new(vec![0; BUF_LEN]),
            pos: 0,
            end: 0,
        }
    }

    /// Whether input is buffered, that is whether the next read returns without waiting.
    pub(crate) fn has_buffered(&self) -> bool {
        self.pos < self.end
    }
}

impl<R: Read> Read for ZeroizingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for ZeroizingReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.end {
            self.pos = 0;
            self.end = 0;
            self.end = loop {
                match self.inner.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
        }
        Ok(&self.buf[self.pos..self.end])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
    }
}

/// What [`read_line`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// The line is in the buffer.
    Read,
    /// The line has more than [`MAX_KEY_LEN`] bytes, so it cannot be a key; it was consumed
    /// but not kept.
    TooLong {
        /// Its length in bytes, without the line terminator.
        len: usize,
    },
}

/// Reads the next line, without its `\n` or `\r\n`, into `line` (cleared first). At most
/// [`MAX_KEY_LEN`] bytes are kept, so memory stays bounded whatever the input; a longer
/// line is consumed to its end and reported as [`Line::TooLong`]. `Ok(None)` at the end of
/// the input.
///
/// `line` is reserved once and never grows past that, so no reallocation leaves a copy.
pub(crate) fn read_line(
    input: &mut impl BufRead,
    line: &mut Zeroizing<Vec<u8>>,
) -> io::Result<Option<Line>> {
    let keep = MAX_KEY_LEN + 1; // room for a '\r'
    line.clear();
    line.reserve(keep);
    let mut len = 0usize;
    let mut started = false;
    let mut last = None;
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            if !started {
                return Ok(None);
            }
            break;
        }
        started = true;
        let newline = memchr(b'\n', available);
        let part = &available[..newline.unwrap_or(available.len())];
        if let Some(&b) = part.last() {
            last = Some(b);
        }
        let room = keep.saturating_sub(line.len());
        line.extend_from_slice(&part[..part.len().min(room)]);
        len += part.len();
        let used = newline.map_or(part.len(), |i| i + 1);
        input.consume(used);
        if newline.is_some() {
            break;
        }
    }
    if last == Some(b'\r') {
        len -= 1;
    }
    if len > MAX_KEY_LEN {
        line.clear();
        return Ok(Some(Line::TooLong { len }));
    }
    line.truncate(len);
    Ok(Some(Line::Read))
}

/// Parses a line from [`read_line`] with exactly the reasons [`parse_key`] gives.
pub(crate) fn parse_line(line: &[u8], kind: Line) -> Result<ParsedKey<'_>, ParseError> {
    match kind {
        Line::TooLong { len } => Err(ParseError::TooLong {
            len,
            max: MAX_KEY_LEN,
        }),
        Line::Read => parse_bytes(line),
    }
}

/// [`parse_key`] for bytes that may not be UTF-8.
pub(crate) fn parse_bytes(bytes: &[u8]) -> Result<ParsedKey<'_>, ParseError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_key(text),
        // Not UTF-8, so not all ASCII: the parser would stop at the first byte that is
        // neither base62 nor '_' (after its emptiness and length checks).
        Err(_) if bytes.len() > MAX_KEY_LEN => Err(ParseError::TooLong {
            len: bytes.len(),
            max: MAX_KEY_LEN,
        }),
        Err(_) => Err(ParseError::InvalidCharacter {
            position: bytes
                .iter()
                .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))
                .unwrap_or(0),
        }),
    }
}

/// Reads the single key that `hash` and `verify` take on stdin: one line, with or without
/// its newline. No input or more than one line is an error.
pub(crate) fn read_one_key(
    input: &mut impl BufRead,
    line: &mut Zeroizing<Vec<u8>>,
) -> Result<Line, Failure> {
    let stdin_error = |e: io::Error| Failure::fatal(format!("cannot read stdin: {e}"));
    let first = read_line(input, line)
        .map_err(stdin_error)?
        .ok_or_else(|| Failure::fatal("expected one key on stdin, found none"))?;
    let mut rest = Zeroizing::new(Vec::new());
    if read_line(input, &mut rest).map_err(stdin_error)?.is_some() {
        return Err(Failure::fatal(
            "expected one key on stdin, found more than one line",
        ));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(Line, Vec<u8>)> {
        let mut reader = ZeroizingReader::new(input);
        let mut line = Zeroizing::new(Vec::new());
        let mut out = Vec::new();
        while let Some(kind) = read_line(&mut reader, &mut line).unwrap() {
            out.push((kind, line.to_vec()));
        }
        out
    }

    #[test]
    fn splits_lines_and_strips_terminators() {
        let got = lines(b"a\r\nb\n\nc\rd\ne");
        let want: Vec<(Line, Vec<u8>)> = [&b"a"[..], b"b", b"", b"c\rd", b"e"]
            .iter()
            .map(|l| (Line::Read, l.to_vec()))
            .collect();
        assert_eq!(got, want);
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn long_lines_are_measured_not_kept() {
        let mut input = vec![b'x'; MAX_KEY_LEN];
        input.extend_from_slice(b"\r\n");
        input.extend(std::iter::repeat_n(b'y', 100_000));
        input.extend_from_slice(b"\r\nz\n");
        let got = lines(&input);
        assert_eq!(got[0], (Line::Read, vec![b'x'; MAX_KEY_LEN]));
        assert_eq!(got[1], (Line::TooLong { len: 100_000 }, Vec::new()));
        assert_eq!(got[2], (Line::Read, b"z".to_vec()));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn non_utf8_reports_the_first_bad_byte() {
        assert_eq!(
            parse_bytes(b"sk_\xff\xfe").unwrap_err(),
            ParseError::InvalidCharacter { position: 3 }
        );
        assert_eq!(
            parse_bytes(b"sk-\xff").unwrap_err(),
            ParseError::InvalidCharacter { position: 2 }
        );
    }

    #[test]
    fn one_key_means_one_line() {
        let mut line = Zeroizing::new(Vec::new());
        for ok in [&b"k"[..], b"k\n", b"k\r\n"] {
            let mut reader = ZeroizingReader::new(ok);
            assert!(read_one_key(&mut reader, &mut line).is_ok());
            assert_eq!(&line[..], b"k");
        }
        for bad in [&b""[..], b"k\n\n", b"k\nj"] {
            let mut reader = ZeroizingReader::new(bad);
            assert!(read_one_key(&mut reader, &mut line).is_err(), "{bad:?}");
        }
    }
}
