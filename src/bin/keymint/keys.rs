//! `generate` and `check`.

use std::io;

use clap::Args;
use keymint::format::{
    DEFAULT_ID_LEN, DEFAULT_SECRET_LEN, MAX_ID_LEN, MAX_SECRET_LEN, MIN_ID_LEN, MIN_SECRET_LEN,
};
use keymint::{FormatError, KeyFormat, KeyHint, ParseError, ParsedKey, Prefix, parse_key};
use zeroize::Zeroizing;

use crate::input::{ZeroizingReader, parse_line, read_line};
use crate::output::{Failure, Output};

/// Most keys one `generate` run mints.
const MAX_COUNT: u32 = 100_000;

/// Arguments of `keymint generate`.
#[derive(Args)]
pub(crate) struct GenerateArgs {
    /// Key prefix: a-z/0-9 segments joined by single '_', 1 to 32 characters (e.g. sk_live)
    #[arg(long, value_name = "PREFIX")]
    prefix: Prefix,
    /// Number of id characters (8..=32)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_ID_LEN, value_parser = parse_id_len)]
    id_len: usize,
    /// Number of secret characters (22..=64)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SECRET_LEN, value_parser = parse_secret_len)]
    secret_len: usize,
    /// Number of keys to mint (1..=100000)
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_COUNT)))]
    count: u32,
}

/// Parses an id length, refusing what no key format allows.
pub(crate) fn parse_id_len(text: &str) -> Result<usize, String> {
    let len: usize = text.parse().map_err(|e| format!("{e}"))?;
    if (MIN_ID_LEN..=MAX_ID_LEN).contains(&len) {
        Ok(len)
    } else {
        Err(FormatError::IdLength(len).to_string())
    }
}

fn parse_secret_len(text: &str) -> Result<usize, String> {
    let len: usize = text.parse().map_err(|e| format!("{e}"))?;
    if (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&len) {
        Ok(len)
    } else {
        Err(FormatError::SecretLength(len).to_string())
    }
}

/// `keymint generate`: mints `--count` keys of one format, one per line on stdout.
pub(crate) fn generate(args: &GenerateArgs) -> Result<(), Failure> {
    let format = KeyFormat::builder(args.prefix.as_str())
        .id_len(args.id_len)
        .secret_len(args.secret_len)
        .build()
        .map_err(Failure::fatal)?;
    let mut out = Output::new(io::stdout().lock());
    for _ in 0..args.count {
        let key = format.generate().map_err(Failure::fatal)?;
        out.line(format_args!("{}", key.expose_secret()))?;
    }
    out.flush()
}

/// Arguments of `keymint check`.
#[derive(Args)]
pub(crate) struct CheckArgs {
    /// Accept only keys with this prefix
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<Prefix>,
    /// Accept only keys whose id has N characters
    #[arg(long, value_name = "N", value_parser = parse_id_len)]
    id_len: Option<usize>,
    /// Keys to check; without any, one key per line is read from stdin. Arguments are
    /// visible to other users of the machine (process list): prefer stdin.
    #[arg(value_name = "KEY")]
    keys: Vec<String>,
}

/// `keymint check`: prints `ok <hint>` or `invalid <reason>` per key; status 1 when any key
/// is invalid.
pub(crate) fn check(mut args: CheckArgs, status: &mut u8) -> Result<(), Failure> {
    let keys = Zeroizing::new(std::mem::take(&mut args.keys));
    let mut out = Output::new(io::stdout().lock());
    if keys.is_empty() {
        let mut input = ZeroizingReader::new(io::stdin().lock());
        let mut line = Zeroizing::new(Vec::new());
        let mut lines = 0usize;
        while let Some(kind) = read_line(&mut input, &mut line)
            .map_err(|e| Failure::fatal(format!("cannot read stdin: {e}")))?
        {
            lines += 1;
            report(&mut out, args.check(parse_line(&line, kind)), status)?;
            // Answer each line before waiting for the next (interactive use, pipelines).
            if !input.has_buffered() {
                out.flush()?;
            }
        }
        if lines == 0 {
            return Err(Failure::fatal(
                "no keys to check: give keys as arguments or one per line on stdin",
            ));
        }
    } else {
        for key in keys.iter() {
            report(&mut out, args.check(parse_key(key)), status)?;
        }
    }
    out.flush()
}

impl CheckArgs {
    /// The key's hint, or why it is not a key of the expected shape. The prefix and id
    /// length are compared after the checksum, with the reasons `KeyFormat::parse` gives.
    fn check(&self, parsed: Result<ParsedKey<'_>, ParseError>) -> Result<KeyHint, ParseError> {
        let key = parsed?;
        if self
            .prefix
            .as_ref()
            .is_some_and(|p| p.as_str() != key.prefix())
        {
            return Err(ParseError::PrefixMismatch);
        }
        if let Some(expected) = self.id_len {
            let found = key.id().len();
            if found != expected {
                return Err(ParseError::IdLength {
                    found,
                    min: expected,
                    max: expected,
                });
            }
        }
        Ok(key.hint())
    }
}

fn report(
    out: &mut Output<impl io::Write>,
    result: Result<KeyHint, ParseError>,
    status: &mut u8,
) -> Result<(), Failure> {
    match result {
        Ok(hint) => out.line(format_args!("ok {hint}")),
        Err(reason) => {
            *status = (*status).max(1);
            out.line(format_args!("invalid {reason}"))
        }
    }
}
