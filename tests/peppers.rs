//! Peppers from outside the code, without any server: from a file (mode checked), from an
//! environment variable (in a child process, since tests cannot set variables safely), and a
//! keyring whose pepper provider is unavailable, which must fail closed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use keymint::hash::PepperProvider;
use keymint::{
    HashError, HashPolicy, HmacSha256Hasher, IssueRequest, KeyFormat, Keyring, KeyringError,
    MemoryStore, Pepper, SecretHasher, TimeDelta, VerifyContext, VerifyError,
};

/// A pepper as `openssl rand -base64 32` prints it.
const TEXT: &str = "q0xWm3bS1mB6l0i1o8Yc2J2Ck3H8l3h4m6W3YVtq8Sg=";

/// A directory of its own under the system's temporary directory, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "keymint-peppers-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self(dir)
    }

    /// Writes `contents` to `name` with permission bits `mode` (on Unix).
    fn file(&self, name: &str, contents: &[u8], mode: u32) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("written");
        set_mode(&path, mode);
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) {}

fn same_pepper(a: &Pepper, b: &Pepper) -> bool {
    a.hmac_sha256(b"probe").expect("mac") == b.hmac_sha256(b"probe").expect("mac")
}

fn refusal(result: Result<Pepper, HashError>) -> String {
    match result {
        Err(error @ HashError::PepperSource { .. }) => error.to_string(),
        Err(other) => panic!("expected a PepperSource error, got {other:?}"),
        Ok(_) => panic!("the pepper was accepted"),
    }
}

#[test]
fn a_file_pepper_is_its_text_less_one_trailing_newline() {
    let scratch = Scratch::new("ok");
    let expected = Pepper::new(TEXT.as_bytes()).unwrap();
    for (name, contents) in [
        ("plain", TEXT.to_owned()),
        ("newline", format!("{TEXT}\n")),
        ("crlf", format!("{TEXT}\r\n")),
    ] {
        let path = scratch.file(name, contents.as_bytes(), 0o600);
        let pepper = Pepper::from_file(&path).expect("accepted");
        assert!(same_pepper(&pepper, &expected), "{name}");
    }
    // Owner read-only is fine too, and raw binary bytes are used as they are.
    let binary: Vec<u8> = (0u8..48).map(|b| b.wrapping_mul(37)).collect();
    let path = scratch.file("binary", &binary, 0o400);
    assert!(same_pepper(
        &Pepper::from_file(&path).unwrap(),
        &Pepper::new(binary).unwrap()
    ));
}

#[cfg(unix)]
#[test]
fn a_file_open_to_group_or_others_is_refused_naming_the_file_and_mode() {
    let scratch = Scratch::new("mode");
    for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o660] {
        let path = scratch.file(&format!("m{mode:o}"), TEXT.as_bytes(), mode);
        let text = refusal(Pepper::from_file(&path));
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(&format!("mode 0{mode:o}")), "{text}");
        assert!(!text.contains(TEXT), "the pepper leaked: {text}");
    }
}

#[cfg(unix)]
#[test]
fn a_symlink_to_a_private_file_is_followed_and_its_target_checked() {
    // Kubernetes mounts secrets as symbolic links into a timestamped directory.
    let scratch = Scratch::new("link");
    let target = scratch.file("target", TEXT.as_bytes(), 0o400);
    let link = scratch.0.join("link");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    assert!(same_pepper(
        &Pepper::from_file(&link).unwrap(),
        &Pepper::new(TEXT.as_bytes()).unwrap()
    ));
    set_mode(&target, 0o444);
    assert!(refusal(Pepper::from_file(&link)).contains("mode 0444"));
}

#[test]
fn short_long_missing_and_odd_files_are_refused_with_the_reason() {
    let scratch = Scratch::new("bad");
    let short = scratch.file("short", b"only-31-bytes-of-pepper-text-ab", 0o600);
    let text = refusal(Pepper::from_file(&short));
    assert!(
        text.contains("31 bytes") && !text.contains("only-31"),
        "{text}"
    );
    // A trailing newline does not count towards the length.
    let short_nl = scratch.file("short-nl", b"only-31-bytes-of-pepper-text-ab\n", 0o600);
    assert!(refusal(Pepper::from_file(&short_nl)).contains("31 bytes"));

    let empty = scratch.file("empty", b"", 0o600);
    assert!(refusal(Pepper::from_file(&empty)).ends_with(": empty"));

    let long = scratch.file("long", &vec![b'x'; Pepper::MAX_FILE_LEN + 1], 0o600);
    assert!(refusal(Pepper::from_file(&long)).contains("longer than 4096 bytes"));

    let missing = scratch.0.join("missing");
    let text = refusal(Pepper::from_file(&missing));
    assert!(
        text.contains("cannot open") && text.contains(&missing.display().to_string()),
        "{text}"
    );

    let text = refusal(Pepper::from_file(&scratch.0));
    assert!(text.contains("not a regular file"), "{text}");
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_without_waiting_for_a_writer() {
    let scratch = Scratch::new("fifo");
    let fifo = scratch.0.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    // Opening it for reading would block forever; the check comes first.
    let text = refusal(Pepper::from_file(&fifo));
    assert!(text.contains("not a regular file"), "{text}");
}

/// Both roles of the environment test: with the variables set (in the child process this
/// test starts), it checks them; otherwise it starts that child.
#[test]
fn an_environment_pepper_is_read_and_checked_in_a_child_process() {
    const SET: &str = "KEYMINT_TEST_CHILD_PEPPER";
    const SHORT: &str = "KEYMINT_TEST_CHILD_SHORT_PEPPER";
    const UNSET: &str = "KEYMINT_TEST_CHILD_UNSET_PEPPER";
    if std::env::var_os(SET).is_some() {
        let pepper = Pepper::from_env(SET).expect("accepted");
        assert!(same_pepper(&pepper, &Pepper::new(TEXT.as_bytes()).unwrap()));
        let text = refusal(Pepper::from_env(SHORT));
        assert!(
            text.contains(SHORT) && text.contains("10 bytes") && !text.contains("short-pepp"),
            "{text}"
        );
        assert_eq!(
            refusal(Pepper::from_env(UNSET)),
            format!("pepper from environment variable {UNSET}: not set")
        );
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "an_environment_pepper_is_read_and_checked_in_a_child_process",
            "--nocapture",
        ])
        .env(SET, TEXT)
        .env(SHORT, "short-pepp")
        .env_remove(UNSET)
        .output()
        .expect("the child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// An in-memory pepper that can be switched off, like a hardware module going away.
#[derive(Debug)]
struct Switchable {
    pepper: Pepper,
    down: AtomicBool,
    macs: AtomicUsize,
}

impl PepperProvider for Switchable {
    fn hmac_sha256(&self, message: &[u8]) -> Result<[u8; 32], HashError> {
        self.macs.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(HashError::PepperUnavailable(
                "test module switched off".into(),
            ));
        }
        self.pepper.hmac_sha256(message)
    }
}

fn switchable() -> Arc<Switchable> {
    Arc::new(Switchable {
        pepper: Pepper::new([3u8; 32]).expect("32 bytes"),
        down: AtomicBool::new(false),
        macs: AtomicUsize::new(0),
    })
}

fn assert_pepper_unavailable(result: Result<keymint::VerifiedKey, VerifyError>) {
    match result {
        Err(error @ VerifyError::PepperUnavailable(_)) => {
            assert_eq!(error.status_code(), 503);
            assert_eq!(error.code(), "pepper_unavailable");
        }
        Err(other) => panic!("expected pepper_unavailable, got {other:?}"),
        Ok(_) => panic!("verified without the pepper"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_pepper_fails_closed_for_known_and_unknown_keys() {
    let provider = switchable();
    let policy = HashPolicy::new(HmacSha256Hasher::new("s1", provider.clone()).unwrap());
    let format = KeyFormat::new("sk_test").unwrap();
    let store = MemoryStore::new();
    let keyring = Keyring::builder(format.clone(), store.clone())
        .hashes(policy.clone())
        .without_cache()
        .build()
        .unwrap();
    let issued = keyring
        .issue(IssueRequest::new("acct_s", "switch"))
        .await
        .unwrap();
    let unknown = Keyring::builder(format, MemoryStore::new())
        .hashes(policy)
        .build()
        .unwrap()
        .issue(IssueRequest::new("acct_s", "elsewhere"))
        .await
        .unwrap();
    let ctx = VerifyContext::new();
    keyring
        .verify(issued.key.expose_secret(), &ctx)
        .await
        .unwrap();

    provider.down.store(true, Ordering::SeqCst);
    let before = provider.macs.load(Ordering::SeqCst);
    assert_pepper_unavailable(keyring.verify(issued.key.expose_secret(), &ctx).await);
    // An unknown id asks the provider too, and answers the same: no oracle for which ids
    // exist during an outage.
    assert_pepper_unavailable(keyring.verify(unknown.key.expose_secret(), &ctx).await);
    assert_eq!(provider.macs.load(Ordering::SeqCst), before + 2);
    let refused = keyring
        .issue(IssueRequest::new("acct_s", "during the outage"))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, KeyringError::Hash(e) if e.is_unavailable()),
        "{refused:?}"
    );

    provider.down.store(false, Ordering::SeqCst);
    keyring
        .verify(issued.key.expose_secret(), &ctx)
        .await
        .expect("verifies once the pepper is back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verified_key_cache_answers_without_the_pepper() {
    // What keeps a hardware module or KMS off the hot path: a cached key costs no MAC.
    let provider = switchable();
    let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), MemoryStore::new())
        .hashes(HashPolicy::new(
            HmacSha256Hasher::new("s1", provider.clone()).unwrap(),
        ))
        .cache(TimeDelta::minutes(5), 1000)
        .build()
        .unwrap();
    let issued = keyring
        .issue(IssueRequest::new("acct_c", "cached"))
        .await
        .unwrap();
    let ctx = VerifyContext::new();
    keyring
        .verify(issued.key.expose_secret(), &ctx)
        .await
        .unwrap();
    let macs = provider.macs.load(Ordering::SeqCst);
    provider.down.store(true, Ordering::SeqCst);
    for _ in 0..10 {
        keyring
            .verify(issued.key.expose_secret(), &ctx)
            .await
            .expect("answered from the cache");
    }
    assert_eq!(
        provider.macs.load(Ordering::SeqCst),
        macs,
        "no MAC computed"
    );
}

#[test]
fn rotation_across_providers_keeps_old_hashes_verifying() {
    // Moving from an in-memory pepper to another provider: old hashes verify through the
    // previous one and report needs_rehash.
    let old = Pepper::new([1u8; 32]).unwrap();
    let stored = HmacSha256Hasher::new("m1", old.clone())
        .unwrap()
        .hash(b"secret")
        .unwrap();
    let provider = switchable();
    let rotated = HmacSha256Hasher::new("s2", provider)
        .unwrap()
        .with_previous("m1", old)
        .unwrap();
    assert_eq!(rotated.current_kid(), "s2");
    let phc = stored.phc().unwrap();
    assert!(rotated.verify(b"secret", &phc).unwrap());
    assert!(!rotated.verify(b"other", &phc).unwrap());
    assert!(rotated.needs_rehash(&phc));
    let fresh = rotated.hash(b"secret").unwrap();
    assert!(fresh.as_str().starts_with("$hmac-sha256$kid=s2$"));
    assert!(!rotated.needs_rehash(&fresh.phc().unwrap()));
}
