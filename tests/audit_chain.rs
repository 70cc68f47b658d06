//! The hash-chained audit trail: what the keyring writes verifies, and every kind of
//! tampering (edit, edit with a recomputed hash, drop, insert, reorder, cut, torn write) is
//! found at its line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use keymint::audit::{ChainError, ChainOptions, ChainedLog, Checkpoint, verify_chain};
use keymint::{
    Argon2idHasher, HashPolicy, IssueRequest, KeyFormat, Keyring, MemoryStore, VerifyContext,
};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "keymint-audit-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn file(&self) -> PathBuf {
        self.0.join("audit.jsonl")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A keyring (cheap hashing) whose events go to `log`.
fn audited_keyring(log: &ChainedLog) -> Keyring<MemoryStore> {
    Keyring::builder(KeyFormat::new("sk_live").unwrap(), MemoryStore::new())
        .hashes(HashPolicy::new(
            Argon2idHasher::builder()
                .m_cost(64)
                .t_cost(1)
                .build()
                .unwrap(),
        ))
        .audit(log.clone())
        .build()
        .unwrap()
}

/// Writes a trail through a real keyring: issues, a failed verification, a revocation.
/// Answers the keys' plaintexts.
async fn write_trail(path: &Path, options: ChainOptions) -> (ChainedLog, Vec<String>) {
    let log = ChainedLog::open(path, options).unwrap();
    let keyring = audited_keyring(&log);
    let mut keys = Vec::new();
    let mut ids = Vec::new();
    for i in 0..4 {
        let issued = keyring
            .issue(IssueRequest::new(format!("acct_{i}"), "k"))
            .await
            .unwrap();
        keys.push(issued.key.expose_secret().to_owned());
        ids.push(issued.record.id.clone());
    }
    keyring.revoke(&ids[0], "leaked").await.unwrap();
    assert!(
        keyring
            .verify(&keys[0], &VerifyContext::new())
            .await
            .is_err()
    );
    log.sync().unwrap();
    (log, keys)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

fn verify(path: &Path) -> Result<keymint::audit::VerifyReport, ChainError> {
    verify_chain(std::fs::File::open(path).unwrap(), None)
}

#[tokio::test]
async fn the_keyrings_trail_verifies_and_holds_no_secret() {
    let dir = TempDir::new("ok");
    let (log, keys) = write_trail(&dir.file(), ChainOptions::new()).await;
    let report = verify(&dir.file()).unwrap();
    // 4 issued, 1 revoked, 1 failed verification.
    assert_eq!(report.entries, 6);
    assert_eq!(report.head, log.head());
    let text = std::fs::read_to_string(dir.file()).unwrap();
    for key in &keys {
        let secret = key.rsplit('_').next().unwrap();
        assert!(!text.contains(secret), "a secret reached the audit trail");
    }
    let actions: Vec<String> = lines(&dir.file())
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["entry"]["action"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        actions,
        [
            "issued",
            "issued",
            "issued",
            "issued",
            "revoked",
            "verification_failed"
        ]
    );
    assert!(text.contains(r#""outcome":"revoked""#), "{text}");
}

#[tokio::test]
async fn an_edited_entry_is_found_at_its_line() {
    let dir = TempDir::new("edit");
    write_trail(&dir.file(), ChainOptions::new()).await;
    let mut all = lines(&dir.file());
    all[2] = all[2].replace("acct_2", "acct_9");
    write_lines(&dir.file(), &all);
    assert!(matches!(
        verify(&dir.file()),
        Err(ChainError::Edited { line: 3 })
    ));
}

#[tokio::test]
async fn an_edit_with_a_recomputed_hash_breaks_the_next_link() {
    use sha2::{Digest, Sha256};
    let dir = TempDir::new("rehash");
    write_trail(&dir.file(), ChainOptions::new()).await;
    let mut all = lines(&dir.file());
    let mut line: serde_json::Value = serde_json::from_str(&all[1]).unwrap();
    let entry = line["entry"].to_string().replace("acct_1", "acct_9");
    let hash: String = Sha256::digest(entry.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    line["hash"] = hash.clone().into();
    all[1] = format!(r#"{{"hash":"{hash}","entry":{entry}}}"#);
    write_lines(&dir.file(), &all);
    assert!(matches!(
        verify(&dir.file()),
        Err(ChainError::BrokenLink { line: 3, .. })
    ));
}

#[tokio::test]
async fn dropped_inserted_and_reordered_entries_break_the_chain_where_they_are() {
    let dir = TempDir::new("order");
    write_trail(&dir.file(), ChainOptions::new()).await;
    let all = lines(&dir.file());

    let mut dropped = all.clone();
    dropped.remove(3);
    write_lines(&dir.file(), &dropped);
    assert!(matches!(
        verify(&dir.file()),
        Err(ChainError::BrokenLink {
            line: 4,
            expected_seq: 4,
            found_seq: 5
        })
    ));

    let mut inserted = all.clone();
    inserted.insert(2, all[1].clone());
    write_lines(&dir.file(), &inserted);
    assert!(matches!(
        verify(&dir.file()),
        Err(ChainError::BrokenLink { line: 3, .. })
    ));

    let mut reordered = all.clone();
    reordered.swap(1, 2);
    write_lines(&dir.file(), &reordered);
    assert!(matches!(
        verify(&dir.file()),
        Err(ChainError::BrokenLink { line: 2, .. })
    ));
}

#[tokio::test]
async fn a_cut_end_is_found_against_a_checkpoint_kept_elsewhere() {
    let dir = TempDir::new("cut");
    let seen: Arc<Mutex<Vec<Checkpoint>>> = Arc::default();
    let hook = seen.clone();
    let options = ChainOptions::new()
        .checkpoint_every(2)
        .on_checkpoint(move |cp| hook.lock().unwrap().push(cp.clone()));
    let (log, _) = write_trail(&dir.file(), options).await;
    let checkpoints = seen.lock().unwrap().clone();
    // 6 events, a checkpoint after every 2: 9 entries, checkpoints at 3, 6 and 9.
    assert_eq!(
        checkpoints.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [3, 6, 9]
    );
    assert_eq!(log.head().as_ref(), checkpoints.last());
    let last = checkpoints.last().unwrap();
    verify_chain(std::fs::File::open(dir.file()).unwrap(), Some(last)).unwrap();

    // Cutting whole lines off the end leaves a valid chain: only the checkpoint tells.
    let mut all = lines(&dir.file());
    all.truncate(7);
    write_lines(&dir.file(), &all);
    verify(&dir.file()).unwrap();
    assert!(matches!(
        verify_chain(std::fs::File::open(dir.file()).unwrap(), Some(last)),
        Err(ChainError::CheckpointMismatch {
            last_seq: 7,
            checkpoint_seq: 9
        })
    ));
    // A checkpoint of another chain (same seq, other hash) is refused too.
    let forged = Checkpoint {
        seq: 3,
        hash: "ab".repeat(32),
    };
    assert!(matches!(
        verify_chain(std::fs::File::open(dir.file()).unwrap(), Some(&forged)),
        Err(ChainError::CheckpointMismatch { .. })
    ));
}

#[tokio::test]
async fn a_torn_last_line_is_refused_then_recovered_explicitly() {
    let dir = TempDir::new("torn");
    write_trail(&dir.file(), ChainOptions::new()).await;
    let full = std::fs::read(dir.file()).unwrap();
    // A crash in the middle of the last write.
    let cut = full.len() - 40;
    std::fs::write(dir.file(), &full[..cut]).unwrap();
    assert!(matches!(
        verify(&dir.file()),
        Err(ChainError::TornTail { line: 6, .. })
    ));
    assert!(matches!(
        ChainedLog::open(dir.file(), ChainOptions::new()),
        Err(keymint::audit::OpenError::Broken(
            ChainError::TornTail { .. }
        ))
    ));
    let log = ChainedLog::open_recovering(dir.file(), ChainOptions::new()).unwrap();
    log.sync().unwrap();
    let report = verify(&dir.file()).unwrap();
    assert_eq!(
        report.entries, 6,
        "5 complete entries and the recovery note"
    );
    let last = lines(&dir.file()).pop().unwrap();
    assert!(last.contains(r#""action":"recovered""#), "{last}");
}

#[tokio::test]
async fn reopening_continues_the_chain() {
    let dir = TempDir::new("reopen");
    write_trail(&dir.file(), ChainOptions::new()).await;
    write_trail(&dir.file(), ChainOptions::new()).await;
    assert_eq!(verify(&dir.file()).unwrap().entries, 12);
}

#[test]
fn malformed_and_oversized_lines_are_refused_without_buffering_them_all() {
    let dir = TempDir::new("malformed");
    std::fs::write(dir.file(), "not json\n").unwrap();
    assert!(matches!(
        verify(&dir.file()),
        Err(ChainError::Malformed { line: 1 })
    ));
    std::fs::write(dir.file(), format!("{}\n", "x".repeat(10 << 20))).unwrap();
    assert!(matches!(
        verify(&dir.file()),
        Err(ChainError::Malformed { line: 1 })
    ));
    std::fs::write(dir.file(), "").unwrap();
    assert_eq!(verify(&dir.file()).unwrap().entries, 0);
}

/// The verifier reads lines of at most 64 KiB, so the writer must never write a longer one:
/// a 70 000-byte actor (a host's SSO display name) once made the trail unopenable for good.
#[tokio::test]
async fn a_trail_with_an_overlong_actor_opens_again_and_tells_long_actors_apart() {
    let dir = TempDir::new("long-actor");
    let log = ChainedLog::open(dir.file(), ChainOptions::new()).unwrap();
    let keyring = audited_keyring(&log);
    // Two actors that share their first 69 999 bytes.
    let (first, second) = ("a".repeat(70_000), format!("{}b", "a".repeat(69_999)));
    for actor in [&first, &second] {
        let issued = keyring
            .issue(IssueRequest::new("acct_1", "k"))
            .await
            .unwrap();
        keyring
            .acting_as(actor.as_str())
            .revoke(&issued.record.id, "no longer needed")
            .await
            .unwrap();
    }
    assert_eq!(log.write_failures(), 0);
    drop((keyring, log));
    ChainedLog::open(dir.file(), ChainOptions::new()).expect("the trail opens again");
    assert_eq!(verify(&dir.file()).unwrap().entries, 4);
    let revocations: Vec<serde_json::Value> = lines(&dir.file())
        .iter()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["entry"].clone())
        .filter(|entry| entry["actor"].is_string())
        .collect();
    assert_eq!(revocations.len(), 2);
    for entry in &revocations {
        assert_eq!(
            entry["cut"],
            serde_json::json!(["actor"]),
            "marked cut: {entry}"
        );
    }
    let actors: Vec<&str> = revocations
        .iter()
        .map(|entry| entry["actor"].as_str().unwrap())
        .collect();
    for actor in &actors {
        assert!(actor.starts_with(&"a".repeat(1000)), "the start is kept");
        assert!(actor.contains("cut: 70000 bytes, sha256 "), "{actor}");
        assert!(actor.len() < 1200);
    }
    assert_ne!(
        actors[0], actors[1],
        "the hash of the whole name tells them apart"
    );
}

/// A host's own entry whose every field is too long, made of characters JSON escapes six
/// bytes wide, and whose detail is too large even after its strings are cut: the line still
/// fits, and nothing before or after it is lost.
#[test]
fn a_hosts_oversized_entry_is_cut_to_fit_a_line() {
    let dir = TempDir::new("huge-record");
    let log = ChainedLog::open(dir.file(), ChainOptions::new()).unwrap();
    let control = "\u{1}".repeat(100_000);
    let many: serde_json::Map<String, serde_json::Value> = (0..20_000)
        .map(|i| (format!("k{i}"), serde_json::Value::from("v")))
        .collect();
    log.append(keymint::audit::Record::new("before", "ok"))
        .unwrap();
    log.append(
        keymint::audit::Record::new(control.clone(), control.clone())
            .actor(control.clone())
            .key_id(control.clone())
            .detail(serde_json::Value::Object(many)),
    )
    .unwrap();
    log.append(keymint::audit::Record::new("after", "ok"))
        .unwrap();
    drop(log);
    assert_eq!(verify(&dir.file()).unwrap().entries, 3);
    let written = lines(&dir.file());
    assert!(written.iter().all(|line| line.len() < 64 * 1024));
    let cut: serde_json::Value = serde_json::from_str(&written[1]).unwrap();
    let entry = &cut["entry"];
    assert_eq!(
        entry["cut"],
        serde_json::json!(["action", "actor", "key_id", "outcome", "detail"])
    );
    assert!(
        entry["detail"]["bytes"].as_u64().unwrap() > 64 * 1024,
        "{entry}"
    );
    assert_eq!(entry["detail"]["sha256"].as_str().unwrap().len(), 64);
    assert!(written[2].contains("\"after\""));
}

#[test]
fn concurrent_writers_keep_one_chain() {
    let dir = TempDir::new("threads");
    let log = ChainedLog::open(dir.file(), ChainOptions::new().checkpoint_every(7)).unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let log = log.clone();
            scope.spawn(move || {
                for _ in 0..50 {
                    keymint::AuditSink::record(
                        &log,
                        &keymint::AuditEvent::Rehashed {
                            id: keymint::KeyId::new(&format!("threadkey{t:03}")).unwrap(),
                        },
                    );
                }
            });
        }
    });
    log.sync().unwrap();
    // 200 events and a checkpoint after every 7.
    assert_eq!(verify(&dir.file()).unwrap().entries, 200 + 200 / 7);
    assert_eq!(log.write_failures(), 0);
}

#[tokio::test]
async fn management_through_an_acting_handle_names_its_actor() {
    let dir = TempDir::new("actor");
    let log = ChainedLog::open(dir.file(), ChainOptions::new()).unwrap();
    let keyring = audited_keyring(&log);
    let alice = keyring.acting_as("staff:alice");
    assert_eq!(alice.actor(), Some("staff:alice"));
    let issued = alice.issue(IssueRequest::new("acct", "k")).await.unwrap();
    let id = issued.record.id.clone();
    alice.disable(&id).await.unwrap();
    keyring.enable(&id).await.unwrap(); // the plain handle names nobody
    let rotated = alice.rotate(&id, None).await.unwrap();
    alice.revoke(&rotated.record.id, "done").await.unwrap();
    log.sync().unwrap();

    let actors: Vec<(String, Option<String>)> = lines(&dir.file())
        .iter()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let entry = &value["entry"];
            (
                entry["action"].as_str().unwrap().to_owned(),
                entry["actor"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let alice = Some("staff:alice".to_owned());
    assert_eq!(
        actors,
        vec![
            ("issued".to_owned(), alice.clone()),
            ("disabled".to_owned(), alice.clone()),
            ("enabled".to_owned(), None),
            ("issued".to_owned(), alice.clone()), // the successor
            ("rotated".to_owned(), alice.clone()),
            ("revoked".to_owned(), alice),
        ]
    );
    verify(&dir.file()).unwrap();
}

/// Child half of the next test: appends to the log at `KEYMINT_AUDIT_FILL` under a file-size
/// limit until writes fail, and writes how many appends succeeded next to it.
#[test]
#[ignore = "run by a_failed_write_leaves_no_fragment_in_the_trail in a size-limited child"]
fn fill_until_the_disk_is_full() {
    let Ok(path) = std::env::var("KEYMINT_AUDIT_FILL") else {
        return;
    };
    let log = ChainedLog::open(&path, ChainOptions::new().checkpoint_every(1_000_000)).unwrap();
    let mut written = 0u64;
    let mut failures = 0u64;
    // Entries of about 1.5 KiB against a 32 KiB limit: one of them is cut short.
    for i in 0..200 {
        let record = keymint::audit::Record::new("filler", "ok")
            .detail(serde_json::json!({ "i": i, "pad": "x".repeat(1500) }));
        match log.append(record) {
            Ok(()) => written += 1,
            Err(_) => failures += 1,
        }
    }
    // After the failures, a small entry still fits below the limit and must chain on.
    if log
        .append(keymint::audit::Record::new("after_full_disk", "ok"))
        .is_ok()
    {
        written += 1;
    }
    assert!(failures > 0, "the size limit was never reached");
    assert_eq!(log.write_failures(), failures);
    std::fs::write(format!("{path}.written"), written.to_string()).unwrap();
}

#[cfg(unix)]
#[test]
fn a_failed_write_leaves_no_fragment_in_the_trail() {
    let dir = TempDir::new("full");
    let path = dir.file();
    // The child ignores SIGXFSZ, so writes past the limit fail with EFBIG after writing
    // what fits: a short write, as on a full disk.
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"trap "" XFSZ; ulimit -f 64; exec "$0" "$@""#)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "fill_until_the_disk_is_full",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env("KEYMINT_AUDIT_FILL", &path)
        // Pipes, not the inherited descriptors: the limit applies to every file the child
        // writes, and its output may be going to a log file already past it.
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "the child failed: {}\n{}{}",
        child.status,
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    let written: u64 = std::fs::read_to_string(format!("{}.written", path.display()))
        .unwrap()
        .parse()
        .unwrap();
    let report = verify(&path).expect("no fragment may stay behind a failed write");
    assert_eq!(report.entries, written);
    assert!(std::fs::metadata(&path).unwrap().len() <= 64 * 512);
}

/// A cut text is marked out of band (`ChainEntry::cut`, set only by the writer), so an
/// actor chosen to read like the cut form of another, long actor cannot pass for it.
#[test]
fn a_short_actor_cannot_pass_for_the_cut_form_of_a_long_one() {
    use sha2::{Digest as _, Sha256};
    let dir = TempDir::new("forged-cut");
    let log = ChainedLog::open(dir.file(), ChainOptions::new()).unwrap();
    let long = "a".repeat(70_000);
    let hex: String = Sha256::digest(long.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let forged = format!("{}…[cut: 70000 bytes, sha256 {hex}]", "a".repeat(1024));
    log.append(keymint::audit::Record::new("revoked", "ok").actor(long.clone()))
        .unwrap();
    log.append(keymint::audit::Record::new("revoked", "ok").actor(forged.clone()))
        .unwrap();
    drop(log);
    let actors: Vec<String> = lines(&dir.file())
        .iter()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            line["entry"]["actor"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_ne!(
        actors[0], actors[1],
        "a 1.1 KB actor written whole reads exactly as the cut 70 000-byte one"
    );
}
