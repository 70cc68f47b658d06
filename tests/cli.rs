//! End-to-end tests of the `keymint` binary: output, exit codes, and that no secret leaks.

// Helpers outside #[test] functions are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use keymint::{HmacSha256Hasher, KeyFormat, Pepper, SecretHasher, parse_key};

const PEPPER: &str = "0123456789abcdef0123456789abcdef-test";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn keymint(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keymint"));
    command
        .args(args)
        .env_remove("KEYMINT_PEPPER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // Write from another thread: the child may exit (or fill its stdout) before reading.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn key(prefix: &str) -> keymint::GeneratedKey {
    KeyFormat::new(prefix).unwrap().generate().unwrap()
}

/// The secret segment of a key, which no output may contain.
fn secret_of(key: &str) -> String {
    parse_key(key).unwrap().expose_secret().to_owned()
}

/// A fresh directory under cargo's scratch space for integration tests.
fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "cli-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------- generate

#[test]
fn generate_prints_count_distinct_keys_of_the_format() {
    let run = keymint(
        &[
            "generate",
            "--prefix",
            "sk_test",
            "--id-len",
            "16",
            "--secret-len",
            "40",
            "--count",
            "5",
        ],
        b"",
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let format = KeyFormat::builder("sk_test")
        .id_len(16)
        .secret_len(40)
        .build()
        .unwrap();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 5);
    for line in &lines {
        assert!(format.parse(line).is_ok(), "{line}");
    }
    let mut distinct = lines.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 5);

    let one = keymint(&["generate", "--prefix", "acme"], b"", &[]);
    assert_eq!(one.code, 0);
    assert_eq!(one.stdout.lines().count(), 1);
    assert!(
        KeyFormat::new("acme")
            .unwrap()
            .parse(one.stdout.trim_end())
            .is_ok()
    );
}

#[test]
fn generate_rejects_bad_flags_with_status_2() {
    for (args, mentions) in [
        (&["--prefix", "sk", "--count", "0"][..], "--count"),
        (&["--prefix", "sk", "--count", "100001"], "--count"),
        (&["--prefix", "Bad"], "--prefix"),
        (&["--prefix", "sk__x"], "--prefix"),
        (&["--prefix", "sk", "--id-len", "7"], "--id-len"),
        (&["--prefix", "sk", "--secret-len", "65"], "--secret-len"),
        (&["--count", "1"], "--prefix"),
        (&["--prefix", "sk", "--colour"], "--colour"),
    ] {
        let run = keymint(&[&["generate"][..], args].concat(), b"", &[]);
        assert_eq!(run.code, 2, "{args:?}");
        assert!(run.stdout.is_empty(), "{args:?}");
        assert!(run.stderr.contains(mentions), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn generate_stops_quietly_when_its_reader_goes_away() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keymint"))
        .args(["generate", "--prefix", "sk", "--count", "100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(stderr.is_empty(), "{stderr}");
}

// ---------------------------------------------------------------- check

#[test]
fn check_arguments_prints_hints_and_reasons_in_order() {
    let good = key("sk_live");
    let other = key("pk_test");
    let mut typo = good.expose_secret().to_owned().into_bytes();
    typo[25] = if typo[25] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();

    let ok = keymint(
        &["check", good.expose_secret(), other.expose_secret()],
        b"",
        &[],
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(
        ok.stdout,
        format!("ok {}\nok {}\n", good.hint(), other.hint())
    );

    let mixed = keymint(
        &["check", good.expose_secret(), &typo, "sk_live_x"],
        b"",
        &[],
    );
    assert_eq!(mixed.code, 1);
    let reason = |k: &str| parse_key(k).unwrap_err().to_string();
    assert_eq!(
        mixed.stdout,
        format!(
            "ok {}\ninvalid {}\ninvalid {}\n",
            good.hint(),
            reason(&typo),
            reason("sk_live_x")
        )
    );
    assert!(mixed.stdout.contains("invalid checksum mismatch"));
    for secret in [secret_of(good.expose_secret()), typo[21..53].to_owned()] {
        assert!(!mixed.stdout.contains(&secret));
        assert!(!mixed.stderr.contains(&secret));
    }
}

#[test]
fn check_reads_stdin_lines_with_bounded_length() {
    let a = key("sk_live");
    let b = key("sk_live");
    let mut input = Vec::new();
    input.extend_from_slice(format!("{}\n", a.expose_secret()).as_bytes());
    input.extend_from_slice(format!("{}\r\n", b.expose_secret()).as_bytes());
    input.extend_from_slice(&[b'k'; 10_000]);
    input.extend_from_slice(b"\n\nsk_\xff\xfe_x\n");
    input.extend_from_slice(a.expose_secret().as_bytes()); // last line without newline
    let run = keymint(&["check"], &input, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!("ok {}", a.hint()),
            format!("ok {}", b.hint()),
            "invalid key is too long: 10000 bytes, at most 136 expected".to_owned(),
            "invalid key is empty".to_owned(),
            "invalid invalid character at byte 3".to_owned(),
            format!("ok {}", a.hint()),
        ]
    );
    for k in [&a, &b] {
        assert!(!run.stdout.contains(&secret_of(k.expose_secret())));
    }

    let all_ok = keymint(
        &["check"],
        format!("{}\n", a.expose_secret()).as_bytes(),
        &[],
    );
    assert_eq!(all_ok.code, 0);
    assert_eq!(all_ok.stdout, format!("ok {}\n", a.hint()));
}

#[test]
fn check_prefix_and_id_len_give_the_library_reasons() {
    let live = key("sk_live");
    let long_id = KeyFormat::builder("sk_live")
        .id_len(16)
        .build()
        .unwrap()
        .generate()
        .unwrap();
    let expected = KeyFormat::new("sk_test").unwrap();
    let prefix_reason = expected
        .parse(live.expose_secret())
        .unwrap_err()
        .to_string();
    // (KeyFormat::parse itself would stop earlier, at the total length.)
    let id_reason = keymint::ParseError::IdLength {
        found: 16,
        min: 12,
        max: 12,
    }
    .to_string();

    let run = keymint(
        &["check", "--prefix", "sk_test", live.expose_secret()],
        b"",
        &[],
    );
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, format!("invalid {prefix_reason}\n"));
    assert_eq!(prefix_reason, "unknown prefix");

    let stdin = format!("{}\n{}\n", live.expose_secret(), long_id.expose_secret());
    let run = keymint(&["check", "--id-len", "12"], stdin.as_bytes(), &[]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        format!("ok {}\ninvalid {id_reason}\n", live.hint())
    );

    let run = keymint(
        &[
            "check",
            "--prefix",
            "sk_live",
            "--id-len",
            "16",
            long_id.expose_secret(),
        ],
        b"",
        &[],
    );
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout, format!("ok {}\n", long_id.hint()));

    let bad = keymint(&["check", "--prefix", "Nope", "x"], b"", &[]);
    assert_eq!(bad.code, 2);
    assert!(bad.stdout.is_empty());
}

// ---------------------------------------------------------------- hash and verify

#[test]
fn argon2id_hash_then_verify_match_mismatch_and_errors() {
    let k = key("sk_live");
    let stdin = format!("{}\n", k.expose_secret());
    let run = keymint(&["hash"], stdin.as_bytes(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let phc = run.stdout.trim_end().to_owned();
    assert_eq!(run.stdout.lines().count(), 1);
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert!(!run.stdout.contains(&secret_of(k.expose_secret())));
    // What is hashed is exactly the secret segment, as the library stores it.
    let policy = keymint::HashPolicy::default();
    let verdict = policy
        .verify(k.parsed().expose_secret().as_bytes(), &phc)
        .unwrap();
    assert!(verdict.is_match());

    let matched = keymint(&["verify", &phc], stdin.as_bytes(), &[]);
    assert_eq!((matched.code, matched.stdout.as_str()), (0, "match\n"));

    let other = key("sk_live");
    let mismatch = keymint(&["verify", &phc], other.expose_secret().as_bytes(), &[]);
    assert_eq!((mismatch.code, mismatch.stdout.as_str()), (1, "mismatch\n"));

    // Not a key at all: still a mismatch, with the reason on stderr.
    let garbage = keymint(&["verify", &phc], b"not-a-key\n", &[]);
    assert_eq!((garbage.code, garbage.stdout.as_str()), (1, "mismatch\n"));
    assert!(
        garbage.stderr.contains("invalid character"),
        "{}",
        garbage.stderr
    );

    for bad in [
        "argon2id",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$",
        "$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "$bcrypt$v=19$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
    ] {
        let run = keymint(&["verify", bad], stdin.as_bytes(), &[]);
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{bad}");
        assert!(!run.stderr.is_empty(), "{bad}");
    }
}

#[test]
fn hmac_sha256_hash_uses_the_pepper_and_verifies() {
    let k = key("sk_live");
    let stdin = format!("{}\n", k.expose_secret());
    let env = [("KEYMINT_PEPPER", PEPPER)];
    let run = keymint(
        &["hash", "--algorithm", "hmac-sha256"],
        stdin.as_bytes(),
        &env,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let phc = run.stdout.trim_end().to_owned();
    assert!(phc.starts_with("$hmac-sha256$kid=default$"), "{phc}");
    let hasher = HmacSha256Hasher::new("default", Pepper::new(PEPPER.as_bytes()).unwrap()).unwrap();
    let stored = keymint::PhcHash::new(&phc).unwrap();
    assert!(
        hasher
            .verify(
                k.parsed().expose_secret().as_bytes(),
                &stored.phc().unwrap()
            )
            .unwrap()
    );

    let run = keymint(
        &["hash", "--algorithm", "hmac-sha256", "--pepper-id", "k2"],
        stdin.as_bytes(),
        &env,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let phc_k2 = run.stdout.trim_end().to_owned();
    assert!(phc_k2.starts_with("$hmac-sha256$kid=k2$"), "{phc_k2}");

    for phc in [&phc, &phc_k2] {
        let run = keymint(&["verify", phc], stdin.as_bytes(), &env);
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (0, "match\n"),
            "{}",
            run.stderr
        );
    }
    let other = format!("{}\n", key("sk_live").expose_secret());
    let run = keymint(&["verify", &phc], other.as_bytes(), &env);
    assert_eq!((run.code, run.stdout.as_str()), (1, "mismatch\n"));
    let wrong_pepper = [("KEYMINT_PEPPER", "another pepper of at least 32 bytes!!")];
    let run = keymint(&["verify", &phc], stdin.as_bytes(), &wrong_pepper);
    assert_eq!((run.code, run.stdout.as_str()), (1, "mismatch\n"));

    // Missing or short pepper, missing kid: status 2.
    for (phc, env) in [
        (phc.as_str(), &[][..]),
        (phc.as_str(), &[("KEYMINT_PEPPER", "too short")][..]),
        ("$hmac-sha256$c2FsdHNhbHQ$aGFzaA", &env[..]),
    ] {
        let run = keymint(&["verify", phc], stdin.as_bytes(), env);
        assert_eq!(run.code, 2, "{phc} {env:?}");
        assert!(run.stdout.is_empty());
    }
}

#[test]
fn hash_errors_exit_2_without_output() {
    let k = key("sk_live");
    let stdin = format!("{}\n", k.expose_secret());
    let missing = keymint(
        &["hash", "--algorithm", "hmac-sha256"],
        stdin.as_bytes(),
        &[],
    );
    assert_eq!(missing.code, 2);
    assert!(missing.stdout.is_empty());
    assert!(
        missing.stderr.contains("KEYMINT_PEPPER is not set"),
        "{}",
        missing.stderr
    );

    let short = keymint(
        &["hash", "--algorithm", "hmac-sha256"],
        stdin.as_bytes(),
        &[("KEYMINT_PEPPER", "31 bytes..................31")],
    );
    assert_eq!(short.code, 2);
    assert!(
        short.stderr.contains("at least 32 bytes"),
        "{}",
        short.stderr
    );

    let env = [("KEYMINT_PEPPER", PEPPER)];
    let two_lines = format!("{0}\n{0}\n", k.expose_secret());
    let mut typo = k.expose_secret().to_owned();
    typo.push('x');
    for (args, input, mentions) in [
        (
            &["hash", "--algorithm", "hmac-sha256"][..],
            typo.as_bytes(),
            "invalid key",
        ),
        (&["hash", "--algorithm", "hmac-sha256"], b"", "found none"),
        (
            &["hash", "--algorithm", "hmac-sha256"],
            two_lines.as_bytes(),
            "more than one",
        ),
        (
            &["hash", "--algorithm", "hmac-sha256", "--pepper-id", "Bad!"],
            stdin.as_bytes(),
            "pepper id",
        ),
        (
            &["hash", "--pepper-id", "k1"],
            stdin.as_bytes(),
            "--pepper-id",
        ),
        (&["hash", "--algorithm", "md5"], stdin.as_bytes(), "md5"),
    ] {
        let run = keymint(args, input, &env);
        assert_eq!(run.code, 2, "{args:?}");
        assert!(run.stdout.is_empty(), "{args:?}");
        assert!(run.stderr.contains(mentions), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains(&secret_of(k.expose_secret())));
    }
}

// ---------------------------------------------------------------- scan

#[test]
fn scan_walks_nested_directories_and_reports_line_and_column() {
    let root = scratch("tree");
    let deep = root.join("a").join("b").join("c");
    std::fs::create_dir_all(&deep).unwrap();
    let k1 = key("sk_live");
    let k2 = key("pk_test_eu");
    let k3 = key("acme");
    std::fs::write(
        deep.join("deep.txt"),
        format!("first\nsecond\n  key=\"{}\"\n", k1.expose_secret()),
    )
    .unwrap();
    std::fs::write(
        root.join("a").join("two.env"),
        format!("A={} B={}\n", k2.expose_secret(), k3.expose_secret()),
    )
    .unwrap();
    // Not UTF-8, key after a CRLF; a key glued to a word character is not a key.
    let mut bytes = b"\xff\xfe\x00\r\n\x80".to_vec();
    bytes.extend_from_slice(k3.expose_secret().as_bytes());
    bytes.extend_from_slice(format!(" X{}\n", k1.expose_secret()).as_bytes());
    std::fs::write(root.join("blob.bin"), bytes).unwrap();
    std::fs::write(root.join("clean.txt"), "nothing to see_here_at_all\n").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&root, root.join("a").join("b").join("loop")).unwrap();

    let run = keymint(&["scan", root.to_str().unwrap()], b"", &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let r = root.display();
    assert_eq!(
        run.stdout,
        format!(
            "{r}/a/b/c/deep.txt:3:8: {}\n\
             {r}/a/two.env:1:3: {}\n\
             {r}/a/two.env:1:{}: {}\n\
             {r}/blob.bin:2:2: {}\n",
            k1.hint(),
            k2.hint(),
            k2.expose_secret().len() + 6,
            k3.hint(),
            k3.hint(),
        )
    );
    for k in [&k1, &k2, &k3] {
        assert!(!run.stdout.contains(&secret_of(k.expose_secret())));
        assert!(!run.stderr.contains(&secret_of(k.expose_secret())));
    }

    // A file named directly, and nothing found.
    let one = keymint(
        &["scan", root.join("a/two.env").to_str().unwrap()],
        b"",
        &[],
    );
    assert_eq!((one.code, one.stdout.lines().count()), (1, 2));
    let clean = keymint(
        &["scan", root.join("clean.txt").to_str().unwrap()],
        b"",
        &[],
    );
    assert_eq!((clean.code, clean.stdout.as_str()), (0, ""));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn scan_io_errors_exit_2_and_other_paths_are_still_scanned() {
    let root = scratch("ioerr");
    let k = key("sk_live");
    std::fs::write(root.join("leak.txt"), k.expose_secret()).unwrap();
    let missing = root.join("missing.txt");
    let run = keymint(
        &[
            "scan",
            missing.to_str().unwrap(),
            root.join("leak.txt").to_str().unwrap(),
        ],
        b"",
        &[],
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("missing.txt"), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!("{}:1:1: {}\n", root.join("leak.txt").display(), k.hint())
    );
    let only_missing = keymint(&["scan", missing.to_str().unwrap()], b"", &[]);
    assert_eq!((only_missing.code, only_missing.stdout.as_str()), (2, ""));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn scan_reads_stdin_as_dash() {
    let k = key("sk_live");
    let text = format!("line one\n\tapi_key: {}\n", k.expose_secret());
    for args in [&["scan"][..], &["scan", "-"]] {
        let run = keymint(args, text.as_bytes(), &[]);
        assert_eq!(run.code, 1);
        assert_eq!(run.stdout, format!("-:2:11: {}\n", k.hint()));
    }
    let clean = keymint(&["scan"], b"sk_live_notakey_atall\n", &[]);
    assert_eq!((clean.code, clean.stdout.as_str()), (0, ""));
}

#[test]
fn scan_finds_keys_across_the_read_window_in_large_files() {
    let root = scratch("large");
    let a = key("sk_live");
    let b = key("sk_live");
    let line = "x".repeat(99) + "\n"; // 100 bytes per line
    let mut text = line.repeat((1 << 20) / 100); // 1_048_500 bytes, 10485 lines
    text.push_str(&"y".repeat(40)); // the key now straddles the 1 MiB mark
    text.push(' ');
    text.push_str(a.expose_secret());
    text.push('\n');
    text.push_str(&line.repeat(20_000));
    text.push_str(b.expose_secret());
    let path = root.join("big.log");
    std::fs::write(&path, &text).unwrap();
    let run = keymint(&["scan", path.to_str().unwrap()], b"", &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let p = path.display();
    assert_eq!(
        run.stdout,
        format!("{p}:10486:42: {}\n{p}:30487:1: {}\n", a.hint(), b.hint())
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn scan_id_len_selects_the_id_length() {
    let long_id = KeyFormat::builder("sk_live")
        .id_len(16)
        .build()
        .unwrap()
        .generate()
        .unwrap();
    let text = format!("{}\n", long_id.expose_secret());
    let default = keymint(&["scan"], text.as_bytes(), &[]);
    assert_eq!((default.code, default.stdout.as_str()), (0, ""));
    let sixteen = keymint(&["scan", "--id-len", "16"], text.as_bytes(), &[]);
    assert_eq!(sixteen.code, 1);
    assert_eq!(sixteen.stdout, format!("-:1:1: {}\n", long_id.hint()));
    let bad = keymint(&["scan", "--id-len", "40"], b"", &[]);
    assert_eq!(bad.code, 2);
}

// ---------------------------------------------------------------- help

#[test]
fn every_subcommand_has_help() {
    for sub in ["generate", "check", "hash", "verify", "scan"] {
        let run = keymint(&[sub, "--help"], b"", &[]);
        assert_eq!(run.code, 0, "{sub}");
        assert!(
            run.stdout.contains(&format!("Usage: keymint {sub}")),
            "{sub}"
        );
    }
    let top = keymint(&["--help"], b"", &[]);
    assert_eq!(top.code, 0);
    assert!(top.stdout.contains("Exit status"));
    let none = keymint(&[], b"", &[]);
    assert_eq!(none.code, 2);
    let unknown = keymint(&["frobnicate"], b"", &[]);
    assert_eq!(unknown.code, 2);
}

#[test]
fn a_key_given_in_the_wrong_place_is_never_echoed() {
    let k = key("sk_live");
    let text = k.expose_secret();
    let secret = secret_of(text);
    let mut typo = text.to_owned();
    typo.pop(); // a checksum that no longer matches: still mostly secret
    for args in [
        vec!["hash", text],
        vec!["hash", typo.as_str()],
        vec![
            "verify",
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            text,
        ],
        vec!["scan", text],
        vec!["generate", "--prefx", text],
    ] {
        let run = keymint(&args, b"", &[]);
        assert_eq!(run.code, 2, "{:?}: {}", args[0], run.stderr);
        for output in [&run.stdout, &run.stderr] {
            assert!(
                !output.contains(&secret[..20]),
                "{:?} echoed the key: {output}",
                args[0]
            );
        }
        assert!(
            run.stderr.contains("looks like an API key"),
            "{:?} should say why: {}",
            args[0],
            run.stderr
        );
    }
    // A key the tool can parse is shown as its hint, so the user sees which one it was.
    let run = keymint(&["hash", text], b"", &[]);
    assert!(run.stderr.contains(k.hint().as_str()), "{}", run.stderr);
}

#[test]
fn check_with_nothing_to_check_says_so_and_fails() {
    let run = keymint(&["check"], b"", &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no keys to check"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[test]
fn scan_and_regex_know_every_prefix_given() {
    let sk = key("sk_live");
    let pk = key("pk_live");
    let other = key("xk_live");
    let text = format!(
        "a = {}\nb = {}\nc = {}\n",
        sk.expose_secret(),
        pk.expose_secret(),
        other.expose_secret()
    );
    let run = keymint(
        &["scan", "--prefix", "sk_live", "--prefix", "pk_live"],
        text.as_bytes(),
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!("-:1:5: {}\n-:2:5: {}\n", sk.hint(), pk.hint())
    );
    let run = keymint(
        &["regex", "--prefix", "sk_live", "--prefix", "pk_live"],
        b"",
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let pattern = regex::Regex::new(run.stdout.trim()).unwrap();
    assert_eq!(pattern.find_iter(&text).count(), 2);
    assert_eq!(
        keymint(&["regex"], b"", &[]).code,
        2,
        "a prefix is required"
    );
}

// ---------------------------------------------------------------- audit-verify

#[test]
fn audit_verify_says_ok_or_where_the_trail_was_tampered_with() {
    use keymint::audit::{ChainOptions, ChainedLog};
    let dir = scratch("audit");
    let path = dir.join("audit.jsonl");
    let log = ChainedLog::open(&path, ChainOptions::new()).unwrap();
    for n in 0..3 {
        keymint::AuditSink::record(
            &log,
            &keymint::AuditEvent::Rehashed {
                id: keymint::KeyId::new(&format!("audit{n:07}")).unwrap(),
            },
        );
    }
    let head = log.head().unwrap();
    log.sync().unwrap();
    let file = path.to_str().unwrap();

    let ok = keymint(&["audit-verify", file], b"", &[]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(
        ok.stdout,
        format!("ok 3 entries, head {}:{}\n", head.seq, head.hash)
    );
    let anchored = format!("{}:{}", head.seq, head.hash);
    assert_eq!(
        keymint(&["audit-verify", file, "--checkpoint", &anchored], b"", &[]).code,
        0
    );

    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("audit0000001", "audit0000009", 1)).unwrap();
    let tampered = keymint(&["audit-verify", file], b"", &[]);
    assert_eq!(tampered.code, 1);
    assert!(
        tampered.stdout.starts_with("tampered: line 2:"),
        "{}",
        tampered.stdout
    );

    let bad = keymint(&["audit-verify", file, "--checkpoint", "3:xyz"], b"", &[]);
    assert_eq!(bad.code, 2);
    let missing = keymint(&["audit-verify", "/nonexistent/audit.jsonl"], b"", &[]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("cannot open"), "{}", missing.stderr);
}
