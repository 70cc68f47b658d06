//! `hash` and `verify`.

use std::io;

use clap::{Args, ValueEnum};
use keymint::hash::Phc;
use keymint::{Argon2idHasher, HashError, HmacSha256Hasher, Pepper, SecretHasher};
use zeroize::Zeroizing;

use crate::input::{ZeroizingReader, parse_line, read_one_key};
use crate::output::{Failure, Output};

/// The environment variable holding the HMAC pepper (its UTF-8 bytes).
const PEPPER_ENV: &str = "KEYMINT_PEPPER";
/// Pepper id written by `hash --algorithm hmac-sha256` without `--pepper-id`.
const DEFAULT_PEPPER_ID: &str = "default";
/// Hashed in place of the secret when `verify` is given something that is not a key, so
/// that the answer (mismatch) costs as much as a wrong key and a hash that cannot be
/// verified is reported the same way whatever the key.
const PLACEHOLDER_SECRET: &[u8] = b"keymint placeholder for an invalid key";

/// Hash algorithms `keymint hash` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Algorithm {
    /// Argon2id with OWASP parameters (m=19456 KiB, t=2, p=1)
    Argon2id,
    /// HMAC-SHA-256 keyed by the pepper in $KEYMINT_PEPPER (at least 32 bytes)
    #[value(name = "hmac-sha256")]
    HmacSha256,
}

/// Arguments of `keymint hash`.
#[derive(Args)]
#[command(
    after_help = "Reads one key (one line) on stdin. For hmac-sha256 the pepper is \
                        the UTF-8 value of $KEYMINT_PEPPER, at least 32 bytes."
)]
pub(crate) struct HashArgs {
    /// Hash algorithm
    #[arg(long, value_enum, default_value_t = Algorithm::Argon2id)]
    algorithm: Algorithm,
    /// Pepper id recorded in hmac-sha256 hashes, 1..=16 of a-z0-9- [default: default]
    #[arg(long, value_name = "ID")]
    pepper_id: Option<String>,
}

/// Arguments of `keymint verify`.
#[derive(Args)]
#[command(
    after_help = "Reads one key (one line) on stdin. Exit status: 0 match, 1 mismatch \
                        (also for input that is not a key), 2 malformed or unsupported \
                        hash, or missing pepper. For hmac-sha256 hashes the pepper is the \
                        UTF-8 value of $KEYMINT_PEPPER."
)]
pub(crate) struct VerifyArgs {
    /// The stored hash: a PHC string such as '$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>'
    #[arg(value_name = "PHC")]
    phc: String,
}

fn pepper_from_env() -> Result<Pepper, Failure> {
    let value = std::env::var_os(PEPPER_ENV).ok_or_else(|| {
        Failure::fatal(format!(
            "{PEPPER_ENV} is not set: hmac-sha256 needs a pepper of at least {} bytes",
            Pepper::MIN_LEN
        ))
    })?;
    let value = Zeroizing::new(
        value
            .into_string()
            .map_err(|_| Failure::fatal(format!("{PEPPER_ENV} is not valid UTF-8")))?,
    );
    Pepper::new(value.as_bytes()).map_err(|_| {
        Failure::fatal(format!(
            "{PEPPER_ENV} is too short: the pepper must be at least {} bytes",
            Pepper::MIN_LEN
        ))
    })
}

fn hmac_hasher(kid: &str) -> Result<HmacSha256Hasher, Failure> {
    let pepper = pepper_from_env()?;
    HmacSha256Hasher::new(kid, pepper).map_err(Failure::fatal)
}

/// `keymint hash`: prints the PHC string of the secret segment of the key on stdin.
pub(crate) fn hash(args: &HashArgs) -> Result<(), Failure> {
    let hasher: Box<dyn SecretHasher> = match args.algorithm {
        Algorithm::Argon2id => {
            if args.pepper_id.is_some() {
                return Err(Failure::fatal(
                    "--pepper-id applies only to --algorithm hmac-sha256",
                ));
            }
            Box::new(Argon2idHasher::new())
        }
        Algorithm::HmacSha256 => Box::new(hmac_hasher(
            args.pepper_id.as_deref().unwrap_or(DEFAULT_PEPPER_ID),
        )?),
    };
    let mut input = ZeroizingReader::new(io::stdin().lock());
    let mut line = Zeroizing::new(Vec::new());
    let kind = read_one_key(&mut input, &mut line)?;
    let key = parse_line(&line, kind).map_err(|e| Failure::fatal(format!("invalid key: {e}")))?;
    let stored = hasher
        .hash(key.expose_secret().as_bytes())
        .map_err(Failure::fatal)?;
    let mut out = Output::new(io::stdout().lock());
    out.line(format_args!("{stored}"))?;
    out.flush()
}

/// `keymint verify`: checks the key on stdin against a PHC string; status 0 on `match`,
/// 1 on `mismatch`.
pub(crate) fn verify(args: &VerifyArgs, status: &mut u8) -> Result<(), Failure> {
    let phc = Phc::parse(&args.phc).map_err(Failure::fatal)?;
    let hasher: Box<dyn SecretHasher> = match phc.algorithm() {
        Argon2idHasher::ALGORITHM => Box::new(Argon2idHasher::new()),
        HmacSha256Hasher::ALGORITHM => {
            let kid = phc
                .param("kid")
                .ok_or_else(|| Failure::fatal(HashError::Malformed("missing kid parameter")))?;
            Box::new(hmac_hasher(kid)?)
        }
        other => {
            return Err(Failure::fatal(format_args!(
                "{} (supported: argon2id, hmac-sha256)",
                HashError::UnsupportedAlgorithm(other.to_owned())
            )));
        }
    };
    let mut input = ZeroizingReader::new(io::stdin().lock());
    let mut line = Zeroizing::new(Vec::new());
    let kind = read_one_key(&mut input, &mut line)?;
    let parsed = parse_line(&line, kind);
    let secret = match &parsed {
        Ok(key) => key.expose_secret().as_bytes(),
        Err(reason) => {
            eprintln!("keymint: not a valid key: {reason}");
            PLACEHOLDER_SECRET
        }
    };
    let matched = hasher.verify(secret, &phc).map_err(Failure::fatal)? && parsed.is_ok();
    let mut out = Output::new(io::stdout().lock());
    if matched {
        out.line(format_args!("match"))?;
    } else {
        *status = 1;
        out.line(format_args!("mismatch"))?;
    }
    out.flush()
}
