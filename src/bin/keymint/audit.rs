//! `keymint audit-verify`: checks a hash-chained audit trail.

use std::io;
use std::path::PathBuf;

use keymint::audit::{Checkpoint, verify_chain};

use crate::output::{Failure, Output};

#[derive(clap::Args)]
#[command(
    after_help = "Prints 'ok <entries> entries, head <seq>:<hash>' for a chain that verifies, or \
                  'tampered: <where and what>' (status 1). Pass a checkpoint you kept elsewhere \
                  (from the log's on_checkpoint hook) to also detect lines cut from the end."
)]
pub(crate) struct AuditVerifyArgs {
    /// The JSON-lines file a `ChainedLog` wrote
    file: PathBuf,
    /// A checkpoint the chain must reach, as SEQ:HASH
    #[arg(long, value_name = "SEQ:HASH", value_parser = parse_checkpoint)]
    checkpoint: Option<Checkpoint>,
}

fn parse_checkpoint(text: &str) -> Result<Checkpoint, String> {
    let (seq, hash) = text
        .split_once(':')
        .ok_or("expected SEQ:HASH, such as 1000:9f86d0…")?;
    let seq = seq.parse().map_err(|_| "SEQ is not a number")?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("HASH is 64 hexadecimal digits".into());
    }
    Ok(Checkpoint {
        seq,
        hash: hash.to_ascii_lowercase(),
    })
}

/// `keymint audit-verify`.
pub(crate) fn verify(args: &AuditVerifyArgs, status: &mut u8) -> Result<(), Failure> {
    let file = std::fs::File::open(&args.file)
        .map_err(|e| Failure::fatal(format!("cannot open {}: {e}", args.file.display())))?;
    let mut out = Output::new(io::stdout().lock());
    match verify_chain(file, args.checkpoint.as_ref()) {
        Ok(report) => {
            let head = report
                .head
                .map_or_else(|| "none".to_owned(), |h| format!("{}:{}", h.seq, h.hash));
            out.line(format_args!("ok {} entries, head {head}", report.entries))?;
        }
        Err(keymint::audit::ChainError::Io(e)) => {
            return Err(Failure::fatal(format!(
                "cannot read {}: {e}",
                args.file.display()
            )));
        }
        Err(tampered) => {
            *status = 1;
            out.line(format_args!("tampered: {tampered}"))?;
        }
    }
    out.flush()
}
