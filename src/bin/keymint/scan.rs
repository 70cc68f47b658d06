//! `scan`: finding leaked keys in files, directory trees and stdin.
//!
//! Input is read in fixed windows (1 MiB) that overlap by a little more than the longest
//! key, so memory stays bounded whatever the file size and keys that straddle two windows
//! are still found exactly once, with the same results as scanning the whole input at once.

use std::fs::{self, File, FileType};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use clap::Args;
use keymint::format::MAX_KEY_LEN;
use keymint::{Environment, KeyFormat, KeyHint, KeyKind, KeyType, KeyTypes, Prefix, Scanner};
use memchr::{memchr_iter, memrchr};
use zeroize::Zeroizing;

use crate::input::ZeroizingReader;
use crate::keys::parse_id_len;
use crate::output::{Failure, Output};
use crate::redact::{holds_key, redact};

/// Bytes scanned at once.
const WINDOW: usize = 1 << 20;
/// Bytes carried from one window into the next: any key not confirmed in a window (it
/// reaches the window's last byte, whose successor decides its word boundary) starts
/// after the first byte of the carried part.
const CARRY: usize = MAX_KEY_LEN + 2;

/// Arguments of `keymint scan`.
#[derive(Args)]
#[command(
    after_help = "Prints 'path:line:column: <hint>' (1-based; column in bytes) for \
                        every checksum-valid key; never the key itself. Directories are \
                        scanned recursively, skipping symbolic links and special files \
                        inside them; '-' is stdin. Exit status: 0 no key found, 1 keys \
                        found, 2 an I/O error (reported on stderr; the other paths are \
                        still scanned, and 2 wins over 1)."
)]
pub(crate) struct ScanArgs {
    /// Find keys whose id has N characters (8..=32) [default: 12]
    #[arg(long, value_name = "N", value_parser = parse_id_len)]
    id_len: Option<usize>,
    /// Find only keys with this prefix (repeat for each of a keyring's key types) [default: any]
    #[arg(long = "prefix", value_name = "PREFIX")]
    prefixes: Vec<Prefix>,
    /// Files or directories to scan; stdin when none
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
}

/// The formats of `prefixes` with the default secret length and `id_len` (default 12).
pub(crate) fn formats(
    prefixes: &[Prefix],
    id_len: Option<usize>,
) -> Result<Vec<KeyFormat>, Failure> {
    prefixes
        .iter()
        .map(|p| {
            KeyFormat::builder(p.as_str())
                .id_len(id_len.unwrap_or(keymint::format::DEFAULT_ID_LEN))
                .build()
                .map_err(Failure::fatal)
        })
        .collect()
}

/// Arguments of `keymint regex`.
#[derive(Args)]
#[command(
    after_help = "Prints one regular expression that matches keys of every prefix given, \
                        for gitleaks rules or GitHub custom patterns. Confirm what it finds \
                        with 'keymint check' (the checksum)."
)]
pub(crate) struct RegexArgs {
    /// A key prefix (repeat for each of a keyring's key types)
    #[arg(long = "prefix", value_name = "PREFIX", required = true)]
    prefixes: Vec<Prefix>,
    /// Id length N (8..=32) [default: 12]
    #[arg(long, value_name = "N", value_parser = parse_id_len)]
    id_len: Option<usize>,
}

/// `keymint regex`: the combined pattern for a set of prefixes.
pub(crate) fn regex(args: &RegexArgs) -> Result<(), Failure> {
    let mut formats = formats(&args.prefixes, args.id_len)?.into_iter();
    let Some(first) = formats.next() else {
        return Err(Failure::fatal("give at least one --prefix"));
    };
    let secret = |format| KeyType::new(format, KeyKind::Secret, Environment::live());
    let types = formats.fold(KeyTypes::new(secret(first)), |types, f| {
        types.with(secret(f))
    });
    let mut out = Output::new(io::stdout().lock());
    out.line(format_args!("{}", types.regex()))?;
    out.flush()
}

/// `keymint scan`.
pub(crate) fn scan(args: &ScanArgs, status: &mut u8) -> Result<(), Failure> {
    let scanner = if args.prefixes.is_empty() {
        match args.id_len {
            Some(len) => Scanner::with_id_len(len).map_err(Failure::fatal)?,
            None => Scanner::new(),
        }
    } else {
        Scanner::for_formats(formats(&args.prefixes, args.id_len)?)
    };
    let mut run = Run {
        scanner,
        out: Output::new(io::stdout().lock()),
        buf: Zeroizing::new(vec![0; WINDOW]),
        status,
    };
    if args.paths.is_empty() {
        run.stdin()?;
    }
    for path in &args.paths {
        if path.as_os_str() == "-" {
            run.stdin()?;
        } else {
            run.path(path)?;
        }
    }
    run.out.flush()
}

struct Run<'s, W: io::Write> {
    scanner: Scanner,
    out: Output<W>,
    /// The window, reused for every file; it holds file contents, so it is wiped on drop.
    buf: Zeroizing<Vec<u8>>,
    status: &'s mut u8,
}

impl<W: io::Write> Run<'_, W> {
    fn stdin(&mut self) -> Result<(), Failure> {
        let mut input = ZeroizingReader::new(io::stdin().lock());
        self.stream(Path::new("-"), &mut input)
    }

    /// A path named on the command line: symbolic links to it are followed.
    fn path(&mut self, root: &Path) -> Result<(), Failure> {
        match fs::metadata(root) {
            Ok(meta) if meta.is_dir() => self.tree(root),
            Ok(_) => self.file(root),
            Err(e) => {
                self.io_error(root, &e);
                Ok(())
            }
        }
    }

    /// Walks a directory depth first in name order, with an explicit stack (no recursion
    /// limit). Symbolic links inside it are skipped, so a link cannot make a loop, and so
    /// are FIFOs, sockets and devices, whose reads may never end.
    fn tree(&mut self, root: &Path) -> Result<(), Failure> {
        let mut stack = Vec::new();
        if let Some(entries) = self.list(root) {
            stack.push(entries.into_iter());
        }
        while let Some(entries) = stack.last_mut() {
            let Some((path, kind)) = entries.next() else {
                stack.pop();
                continue;
            };
            if kind.is_dir() {
                if let Some(entries) = self.list(&path) {
                    stack.push(entries.into_iter());
                }
            } else if kind.is_file() {
                self.file(&path)?;
            }
        }
        Ok(())
    }

    fn list(&mut self, dir: &Path) -> Option<Vec<(PathBuf, FileType)>> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.io_error(dir, &e);
                return None;
            }
        };
        let mut list = Vec::new();
        for entry in entries {
            match entry.and_then(|e| Ok((e.path(), e.file_type()?))) {
                Ok(item) => list.push(item),
                Err(e) => self.io_error(dir, &e),
            }
        }
        list.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Some(list)
    }

    fn file(&mut self, path: &Path) -> Result<(), Failure> {
        match File::open(path) {
            Ok(mut file) => self.stream(path, &mut file),
            Err(e) => {
                self.io_error(path, &e);
                Ok(())
            }
        }
    }

    fn stream(&mut self, path: &Path, input: &mut impl Read) -> Result<(), Failure> {
        let Self {
            scanner,
            out,
            buf,
            status,
        } = self;
        let result = scan_stream(scanner, input, buf, |line, column, hint| {
            **status = (**status).max(1);
            out.line(format_args!("{}:{line}:{column}: {hint}", path.display()))
        });
        match result {
            Ok(()) => self.out.flush(),
            Err(StreamError::Output(failure)) => Err(failure),
            Err(StreamError::Read(e)) => {
                self.out.flush()?;
                self.io_error(path, &e);
                Ok(())
            }
        }
    }

    fn io_error(&mut self, path: &Path, error: &io::Error) {
        let shown = path.display().to_string();
        eprintln!("keymint: {}: {error}", redact(&shown));
        if holds_key(&shown) && error.kind() == io::ErrorKind::NotFound {
            eprintln!(
                "keymint: that path looks like an API key: scan reads files, directories or stdin (pipe the text in)"
            );
        }
        *self.status = 2;
    }
}

/// Why [`scan_stream`] stopped.
enum StreamError {
    /// Reading the input failed (findings before the failure were reported).
    Read(io::Error),
    /// Reporting a finding failed.
    Output(Failure),
}

/// Scans `input` window by window through `buf` (its length is the window size) and calls
/// `found(line, column, hint)` for each checksum-valid key, in order, with 1-based line and
/// byte column.
fn scan_stream(
    scanner: &Scanner,
    input: &mut impl Read,
    buf: &mut [u8],
    mut found: impl FnMut(u64, u64, &KeyHint) -> Result<(), Failure>,
) -> Result<(), StreamError> {
    debug_assert!(buf.len() > 2 * CARRY);
    let mut base = 0u64; // offset in the input of buf[0]
    let mut filled = 0usize;
    let mut eof = false;
    let mut reported_end = 0u64; // end of the last key reported
    let mut lines = Lines::default();
    loop {
        while !eof && filled < buf.len() {
            match input.read(&mut buf[filled..]) {
                Ok(0) => eof = true,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(StreamError::Read(e)),
            }
        }
        let text = &buf[..filled];
        // A match at the window's first byte may be the tail of a longer word that began in
        // the previous window, which confirmed everything before this point anyway.
        let first = usize::from(base > 0);
        for finding in scanner.scan(text) {
            let range = finding.range();
            if range.start < first {
                continue;
            }
            if !eof && range.end >= filled {
                // The byte after it (a word boundary or not) is in the next window.
                break;
            }
            let start = base + range.start as u64;
            if start < reported_end {
                continue; // reported from the previous window
            }
            lines.advance(text, base, start);
            found(lines.line, start - lines.line_start + 1, finding.hint())
                .map_err(StreamError::Output)?;
            reported_end = base + range.end as u64;
        }
        if eof {
            return Ok(());
        }
        let keep_from = filled - CARRY;
        lines.advance(text, base, base + keep_from as u64);
        buf.copy_within(keep_from..filled, 0);
        base += keep_from as u64;
        filled = CARRY;
    }
}

/// Line numbering across windows.
struct Lines {
    /// Input offset up to which newlines have been counted.
    counted_to: u64,
    /// Line number (1-based) at `counted_to`.
    line: u64,
    /// Input offset of the start of that line.
    line_start: u64,
}

impl Default for Lines {
    fn default() -> Self {
        Self {
            counted_to: 0,
            line: 1,
            line_start: 0,
        }
    }
}

impl Lines {
    /// Counts newlines up to input offset `to`; `text` starts at input offset `base`, and
    /// `base <= counted_to` holds.
    fn advance(&mut self, text: &[u8], base: u64, to: u64) {
        if to <= self.counted_to {
            return;
        }
        let local = |offset: u64| usize::try_from(offset - base).unwrap_or(usize::MAX);
        let segment = &text[local(self.counted_to)..local(to)];
        self.line += memchr_iter(b'\n', segment).count() as u64;
        if let Some(last) = memrchr(b'\n', segment) {
            self.line_start = self.counted_to + last as u64 + 1;
        }
        self.counted_to = to;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keymint::KeyFormat;

    /// Line, column and hint of every key, from one scan of the whole text.
    fn reference(text: &[u8]) -> Vec<(u64, u64, String)> {
        Scanner::new()
            .scan(text)
            .map(|f| {
                let before = &text[..f.range().start];
                let line = 1 + before.iter().filter(|&&b| b == b'\n').count() as u64;
                let line_start = memrchr(b'\n', before).map_or(0, |i| i + 1);
                let column = (f.range().start - line_start + 1) as u64;
                (line, column, f.hint().to_string())
            })
            .collect()
    }

    fn windowed(text: &[u8], window: usize) -> Vec<(u64, u64, String)> {
        let mut found = Vec::new();
        let mut buf = vec![0; window];
        // One byte per read at times, to exercise short reads.
        let mut input = Trickle(text, 0);
        let result = scan_stream(&Scanner::new(), &mut input, &mut buf, |l, c, h| {
            found.push((l, c, h.to_string()));
            Ok(())
        });
        assert!(result.is_ok());
        found
    }

    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.1 += 1;
            let n = if self.1.is_multiple_of(3) {
                1
            } else {
                out.len()
            }
            .min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn windows_find_what_a_whole_scan_finds() {
        let format = KeyFormat::new("sk_live").unwrap();
        let long = KeyFormat::builder("a_b_c_d")
            .secret_len(64)
            .build()
            .unwrap();
        let mut text = Vec::new();
        // Keys at many alignments, separated by text that sometimes glues a word character
        // to a key (which must then not be reported) and with newlines in between.
        for i in 0..120 {
            let key = if i % 4 == 0 { &long } else { &format }.generate().unwrap();
            text.extend(std::iter::repeat_n(b"ab_ \n"[i % 5], i % 7));
            match i % 6 {
                0 => text.push(b'X'),
                1 => text.push(b'"'),
                _ => {}
            }
            text.extend_from_slice(key.expose_secret().as_bytes());
            if i % 9 == 0 {
                text.push(b'Z');
            }
            text.extend_from_slice(if i % 2 == 0 { b"\n" } else { b" x_y " });
        }
        let want = reference(&text);
        assert!(
            want.len() > 30,
            "the fixture should hold many valid keys: {}",
            want.len()
        );
        for window in [2 * CARRY + 1, 300, 301, 333, 512, 1000, 4096, WINDOW] {
            assert_eq!(windowed(&text, window), want, "window {window}");
        }
    }

    #[test]
    fn a_key_straddling_every_window_boundary_is_found_once() {
        let key = KeyFormat::new("pk_test").unwrap().generate().unwrap();
        let window = 2 * CARRY + 10;
        for pad in 0..window {
            let mut text = vec![b'.'; pad];
            text.extend_from_slice(key.expose_secret().as_bytes());
            text.extend_from_slice(b"\n");
            let want = vec![(1, pad as u64 + 1, key.hint().to_string())];
            assert_eq!(windowed(&text, window), want, "pad {pad}");
        }
    }
}
