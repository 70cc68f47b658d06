//! Writing results to stdout through a buffer that is wiped when dropped.

use std::fmt;
use std::io::{self, Write};

use zeroize::Zeroizing;

/// Why a command stopped early.
pub(crate) enum Failure {
    /// Whoever reads stdout closed it (`keymint generate --count 9 | head -1`): stop quietly
    /// with the status reached so far.
    Closed,
    /// Print `keymint: <message>` on stderr and exit with status 2.
    Fatal(String),
}

impl Failure {
    /// A fatal error with `message` (which must never contain key material).
    pub(crate) fn fatal(message: impl fmt::Display) -> Self {
        Self::Fatal(message.to_string())
    }

    fn from_stdout(error: &io::Error) -> Self {
        if error.kind() == io::ErrorKind::BrokenPipe {
            Self::Closed
        } else {
            Self::Fatal(format!("cannot write to stdout: {error}"))
        }
    }
}

/// Buffered line output. The buffer may hold keys (`generate`), so it is ours, sized once
/// (never reallocated, which would leave an unwiped copy) and zeroized on drop. Whole lines
/// are handed to stdout, whose line buffering then passes them through without keeping them.
pub(crate) struct Output<W: Write> {
    inner: W,
    buf: Zeroizing<Vec<u8>>,
}

/// Write out once this much is buffered.
const FLUSH_AT: usize = 32 * 1024;
/// Room for the line that crosses [`FLUSH_AT`].
const SLACK: usize = 8 * 1024;

impl<W: Write> Output<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            buf: Zeroizing::new(Vec::with_capacity(FLUSH_AT + SLACK)),
        }
    }

    /// Appends `line` and a newline, writing out when the buffer is full.
    pub(crate) fn line(&mut self, line: fmt::Arguments<'_>) -> Result<(), Failure> {
        // Writing into a Vec cannot fail.
        let _ = self.buf.write_fmt(line);
        self.buf.push(b'\n');
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes out everything buffered.
    pub(crate) fn flush(&mut self) -> Result<(), Failure> {
        let result = self
            .inner
            .write_all(&self.buf)
            .and_then(|()| self.inner.flush());
        self.buf.clear();
        result.map_err(|e| Failure::from_stdout(&e))
    }
}
