//! `keymint`: mint, check, hash, verify and scan for keymint API keys from the shell.
//!
//! Exit status, for every subcommand: 0 success (all keys valid, `match`, nothing found);
//! 1 a negative answer (some key invalid, `mismatch`, keys found); 2 the question could not
//! be answered (bad flags, unreadable input, malformed hash, missing pepper, I/O error).
//!
//! Key material read from stdin or arguments is kept in zeroized buffers, and nothing but
//! the hint (prefix, id, last four characters) of a key is ever printed, except by
//! `generate`, whose output is the keys.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod audit;
mod hashing;
mod input;
mod keys;
mod output;
mod redact;
mod scan;

use output::Failure;

/// Mint, check, hash, verify and find keymint API keys.
#[derive(Parser)]
#[command(name = "keymint", version)]
#[command(
    after_help = "Exit status: 0 success, 1 a negative answer (invalid key, \
                        mismatch, keys found), 2 error (bad usage, unreadable input, \
                        malformed hash, missing pepper)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mint new keys, one per line on stdout.
    Generate(keys::GenerateArgs),
    /// Check keys offline (characters, structure, checksum); print `ok <hint>` or
    /// `invalid <reason>` per key.
    Check(keys::CheckArgs),
    /// Hash the secret of the key on stdin and print the PHC string to store.
    Hash(hashing::HashArgs),
    /// Check the key on stdin against a stored PHC string: `match` or `mismatch`.
    Verify(hashing::VerifyArgs),
    /// Find checksum-valid keys in files, directories or stdin; print `path:line:column:
    /// <hint>` for each.
    Scan(scan::ScanArgs),
    /// Print one regular expression for keys of the given prefixes (for secret scanners).
    Regex(scan::RegexArgs),
    /// Verify a hash-chained audit trail (`keymint::audit::ChainedLog`): `ok` or where it
    /// was tampered with.
    AuditVerify(audit::AuditVerifyArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    // Raised by the commands as they go, so that a reader closing stdout early (`| head`)
    // still gets the status of what was printed.
    let mut status = 0u8;
    let result = match cli.command {
        Command::Generate(args) => keys::generate(&args),
        Command::Check(args) => keys::check(args, &mut status),
        Command::Hash(args) => hashing::hash(&args),
        Command::Verify(args) => hashing::verify(&args, &mut status),
        Command::Scan(args) => scan::scan(&args, &mut status),
        Command::Regex(args) => scan::regex(&args),
        Command::AuditVerify(args) => audit::verify(&args, &mut status),
    };
    match result {
        Ok(()) | Err(Failure::Closed) => ExitCode::from(status),
        Err(Failure::Fatal(message)) => {
            eprintln!("keymint: {}", redact::redact(&message));
            ExitCode::from(2)
        }
    }
}

/// Prints a usage error (clap quotes the offending argument, which may be a key given in
/// the wrong place) with key-shaped text redacted; `--help` and `--version` go to stdout
/// untouched.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        print!("{}", error.render());
        return ExitCode::SUCCESS;
    }
    let rendered = error.render().to_string();
    eprint!("{}", redact::redact(&rendered));
    let key_argument = std::env::args_os().any(|a| a.to_str().is_some_and(redact::holds_key));
    if key_argument || redact::holds_key(&rendered) {
        eprintln!(
            "keymint: that argument looks like an API key: pass keys on stdin instead (arguments show up in `ps` and shell history)"
        );
    }
    ExitCode::from(2)
}
