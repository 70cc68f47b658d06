//! The GitHub secret-scanning alert handler end to end: alerts signed with a P-256 key
//! generated per test, GitHub's key list served by a local axum server on an ephemeral
//! loopback port, a keyring with fast Argon2 and a manual clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use base64ct::{Base64, Encoding as _};
use chrono::{TimeDelta, TimeZone as _, Utc};
use keymint::http::leak_alerts::{
    HttpKeySource, KEY_IDENTIFIER_HEADER, LeakAlerts, LeakAlertsBuilder, REVOCATION_REASON,
    SIGNATURE_HEADER,
};
use keymint::keyring::KeyringMemoryLimiter;
use keymint::testing::FaultyStore;
use keymint::{
    Argon2idHasher, AuditEvent, AuditSink, Environment, HashPolicy, IssueRequest, KeyFormat,
    KeyStatus, KeyType, KeyTypes, Keyring, ManualClock, MemoryStore, VerifyContext,
};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tower::ServiceExt as _;

#[path = "support/format_reference.rs"]
#[allow(dead_code)]
mod format_reference;
use format_reference::{seal, with_prefix};
#[path = "support/listening.rs"]
mod listening;

const PATH: &str = "/github/secret-scanning";
const TOKEN_TYPE: &str = "keymint_api_key";

/// Argon2id at the smallest cost that still runs the real algorithm.
fn fast_hashes() -> HashPolicy {
    HashPolicy::new(
        Argon2idHasher::builder()
            .m_cost(64)
            .t_cost(1)
            .build()
            .expect("valid parameters"),
    )
}

/// Audit events, kept for assertions.
#[derive(Debug, Default, Clone)]
struct Recorder(Arc<Mutex<Vec<AuditEvent>>>);

impl AuditSink for Recorder {
    fn record(&self, event: &AuditEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    fn events(&self) -> Vec<AuditEvent> {
        self.0.lock().unwrap().clone()
    }

    /// `(key id, url, source, revoked)` of every leak event.
    fn leaks(&self) -> Vec<(String, String, String, bool)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                AuditEvent::LeakReported {
                    id,
                    url,
                    source,
                    revoked,
                    ..
                } => Some((id.to_string(), url, source, revoked)),
                _ => None,
            })
            .collect()
    }

    fn revocations(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, AuditEvent::Revoked { .. }))
            .count()
    }
}

/// One of "GitHub's" signing keys.
struct GitHubKey {
    identifier: String,
    signing: SigningKey,
}

impl GitHubKey {
    fn generate(identifier: &str) -> Self {
        let signing = loop {
            let mut scalar = [0u8; 32];
            getrandom::fill(&mut scalar).unwrap();
            // Zero or above the group order (about 2^-32 likely): draw again.
            if let Ok(key) = SigningKey::from_slice(&scalar) {
                break key;
            }
        };
        Self {
            identifier: identifier.to_owned(),
            signing,
        }
    }

    fn pem(&self) -> String {
        self.signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }

    /// Base64 of the DER signature of `body`, as in `Github-Public-Key-Signature`.
    fn sign(&self, body: &[u8]) -> String {
        let signature: Signature = self.signing.sign(body);
        Base64::encode_string(signature.to_der().as_bytes())
    }
}

/// GitHub's meta endpoint, on loopback: serves the listed keys and counts requests.
#[derive(Clone, Default)]
struct KeyServer {
    listed: Arc<Mutex<Vec<(String, String)>>>,
    hits: Arc<AtomicUsize>,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl KeyServer {
    async fn start(keys: &[&GitHubKey]) -> (Self, String) {
        let server = Self::default();
        for key in keys {
            server.list(key);
        }
        async fn serve(State(server): State<KeyServer>) -> axum::response::Response {
            server.hits.fetch_add(1, Ordering::SeqCst);
            if server.failing.load(Ordering::SeqCst) {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            let keys: Vec<Value> = server
                .listed
                .lock()
                .unwrap()
                .iter()
                .enumerate()
                .map(|(i, (id, pem))| {
                    json!({ "key_identifier": id, "key": pem, "is_current": i == 0 })
                })
                .collect();
            axum::Json(json!({ "public_keys": keys })).into_response()
        }
        let app = Router::new()
            .route("/meta/public_keys/secret_scanning", get(serve))
            .with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/meta/public_keys/secret_scanning",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (server, url)
    }

    fn list(&self, key: &GitHubKey) {
        self.listed
            .lock()
            .unwrap()
            .push((key.identifier.clone(), key.pem()));
    }

    fn unlist(&self, key: &GitHubKey) {
        self.listed
            .lock()
            .unwrap()
            .retain(|(id, _)| *id != key.identifier);
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

type TestKeyring = Keyring<FaultyStore<MemoryStore>>;
type Builder = LeakAlertsBuilder<FaultyStore<MemoryStore>, KeyringMemoryLimiter, HttpKeySource>;

struct World {
    keyring: TestKeyring,
    clock: ManualClock,
    audit: Recorder,
    github: GitHubKey,
    server: KeyServer,
    url: String,
}

impl World {
    async fn new() -> Self {
        let types = KeyTypes::new(KeyType::secret("sk_live", Environment::live()).unwrap())
            .with(KeyType::secret("sk_test", Environment::test()).unwrap());
        Self::with_types(types).await
    }

    async fn with_types(types: KeyTypes) -> Self {
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap());
        let audit = Recorder::default();
        let keyring = Keyring::builder(types, FaultyStore::new(MemoryStore::new()))
            .hashes(fast_hashes())
            .clock(clock.clone())
            .audit(audit.clone())
            .build()
            .unwrap();
        let github = GitHubKey::generate(&"a1".repeat(32));
        let (server, url) = KeyServer::start(&[&github]).await;
        Self {
            keyring,
            clock,
            audit,
            github,
            server,
            url,
        }
    }

    fn app(&self) -> Router {
        self.app_with(|b| b)
    }

    fn builder(&self) -> Builder {
        LeakAlerts::builder(self.keyring.clone(), HttpKeySource::new(&self.url).unwrap())
    }

    fn app_with(&self, configure: impl FnOnce(Builder) -> Builder) -> Router {
        let alerts = configure(self.builder()).build().unwrap();
        Router::new().nest(PATH, alerts.router())
    }

    async fn issue(&self) -> String {
        self.keyring
            .issue(IssueRequest::new("acct_42", "CI deploy"))
            .await
            .unwrap()
            .key
            .expose_secret()
            .to_owned()
    }

    async fn verify_code(&self, key: &str) -> &'static str {
        match self.keyring.verify(key, &VerifyContext::new()).await {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }
}

fn alert_body(tokens: &[&str]) -> Vec<u8> {
    let reports: Vec<Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, token)| {
            json!({
                "token": token,
                "type": TOKEN_TYPE,
                "url": format!("https://github.com/octocat/hello/blob/abc/config{i}.env"),
                "source": "content",
            })
        })
        .collect();
    serde_json::to_vec(&reports).unwrap()
}

/// POSTs `body` with the given headers; the status and the body.
async fn post(
    app: &Router,
    body: impl Into<Body>,
    identifier: Option<&str>,
    signature: Option<&str>,
) -> (StatusCode, Bytes) {
    let mut request = Request::post(PATH).header("content-type", "application/json");
    if let Some(identifier) = identifier {
        request = request.header(KEY_IDENTIFIER_HEADER, identifier);
    }
    if let Some(signature) = signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    let response = app
        .clone()
        .oneshot(request.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, body)
}

/// POSTs `body` signed by `key`.
async fn post_signed(app: &Router, key: &GitHubKey, body: &[u8]) -> (StatusCode, Bytes) {
    let signature = key.sign(body);
    post(app, body.to_vec(), Some(&key.identifier), Some(&signature)).await
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn code_of(body: &[u8]) -> String {
    let problem: Value = serde_json::from_slice(body).unwrap();
    problem["code"].as_str().unwrap().to_owned()
}

/// The same id with another secret and a recomputed checksum: passes every public check.
fn with_other_secret(key: &str) -> String {
    let body = &key[..key.len() - 6];
    let (rest, secret) = body.rsplit_once('_').unwrap();
    let other: String = secret.chars().rev().collect();
    assert_ne!(other, secret);
    seal(&format!("{rest}_{other}"))
}

/// A log writer into a shared buffer, to check what the handler logs.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_signed_alert_revokes_a_real_key_and_answers_true_positive() {
    let world = World::new().await;
    let key = world.issue().await;
    let app = world.app();
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _logging = listening::listen(subscriber);

    let body = alert_body(&[&key]);
    let (status, feedback) = post_signed(&app, &world.github, &body).await;

    assert_eq!(status, StatusCode::OK);
    let feedback: Value = serde_json::from_slice(&feedback).unwrap();
    assert_eq!(
        feedback,
        json!([{ "token_hash": sha256_hex(&key), "token_type": TOKEN_TYPE, "label": "true_positive" }])
    );
    assert_eq!(world.verify_code(&key).await, "revoked");
    let id = keymint::parse_key(&key).unwrap().key_id();
    let record = world.keyring.get(&id).await.unwrap();
    assert_eq!(record.status, KeyStatus::Revoked);
    assert_eq!(record.revocation.unwrap().reason, REVOCATION_REASON);
    assert_eq!(
        world.audit.leaks(),
        vec![(
            id.to_string(),
            "https://github.com/octocat/hello/blob/abc/config0.env".to_owned(),
            "content".to_owned(),
            true
        )]
    );
    assert_eq!(world.audit.revocations(), 1);
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("api key leak reported"), "{logged}");
    let secret_part = &key[key.len() - 20..];
    assert!(
        !logged.contains(secret_part),
        "the token was logged: {logged}"
    );
}

#[tokio::test]
async fn flag_only_mode_audits_the_leak_but_revokes_nothing() {
    let world = World::new().await;
    let key = world.issue().await;
    let app = world.app_with(|b| b.flag_only());

    let (status, feedback) = post_signed(&app, &world.github, &alert_body(&[&key])).await;

    assert_eq!(status, StatusCode::OK);
    let feedback: Value = serde_json::from_slice(&feedback).unwrap();
    assert_eq!(feedback[0]["label"], "true_positive");
    assert_eq!(world.verify_code(&key).await, "ok");
    let leaks = world.audit.leaks();
    assert_eq!(leaks.len(), 1);
    assert!(!leaks[0].3, "flag-only must report revoked: false");
    assert_eq!(world.audit.revocations(), 0);
}

#[tokio::test]
async fn a_valid_checksum_with_the_wrong_secret_is_a_false_positive_and_revokes_nothing() {
    let world = World::new().await;
    let key = world.issue().await;
    let forged = with_other_secret(&key);
    assert!(
        keymint::parse_key(&forged).is_ok(),
        "the forgery passes the public checks"
    );
    let app = world.app();

    let (status, feedback) = post_signed(&app, &world.github, &alert_body(&[&forged])).await;

    assert_eq!(status, StatusCode::OK);
    let feedback: Value = serde_json::from_slice(&feedback).unwrap();
    assert_eq!(
        feedback,
        json!([{ "token_hash": sha256_hex(&forged), "token_type": TOKEN_TYPE, "label": "false_positive" }])
    );
    assert_eq!(world.verify_code(&key).await, "ok");
    assert!(world.audit.leaks().is_empty());
    assert_eq!(world.audit.revocations(), 0);
}

#[tokio::test]
async fn unknown_ids_and_malformed_tokens_are_false_positives() {
    let world = World::new().await;
    let key = world.issue().await;
    let unknown = KeyFormat::new("sk_live")
        .unwrap()
        .generate()
        .unwrap()
        .expose_secret()
        .to_owned();
    let broken_checksum = format!("{}AAAAAA", &key[..key.len() - 6]);
    let app = world.app();

    let body = alert_body(&[&unknown, &broken_checksum, "not a key at all"]);
    let (status, feedback) = post_signed(&app, &world.github, &body).await;

    assert_eq!(status, StatusCode::OK);
    let feedback: Value = serde_json::from_slice(&feedback).unwrap();
    let labels: Vec<&str> = feedback
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["false_positive"; 3]);
    assert_eq!(feedback[2]["token_hash"], sha256_hex("not a key at all"));
    assert_eq!(world.verify_code(&key).await, "ok");
    assert!(world.audit.leaks().is_empty());
}

#[tokio::test]
async fn the_feedback_has_one_entry_per_report_in_order_and_never_the_raw_token() {
    let world = World::new().await;
    let key = world.issue().await;
    let other = world.issue().await;
    let forged = with_other_secret(&other);
    let app = world.app();

    // The same leak found in two places, a forgery, and another real key.
    let body = alert_body(&[&key, &forged, &key, &other]);
    let (status, feedback) = post_signed(&app, &world.github, &body).await;

    assert_eq!(status, StatusCode::OK);
    let text = std::str::from_utf8(&feedback).unwrap();
    for token in [&key, &forged, &other] {
        assert!(
            !text.contains(token.as_str()),
            "a raw token was echoed: {text}"
        );
    }
    let feedback: Value = serde_json::from_slice(&feedback).unwrap();
    let entries = feedback.as_array().unwrap();
    assert_eq!(entries.len(), 4);
    for (entry, (token, label)) in entries.iter().zip([
        (&key, "true_positive"),
        (&forged, "false_positive"),
        (&key, "true_positive"),
        (&other, "true_positive"),
    ]) {
        let mut fields: Vec<&String> = entry.as_object().unwrap().keys().collect();
        fields.sort();
        assert_eq!(fields, ["label", "token_hash", "token_type"]);
        assert_eq!(entry["token_hash"], sha256_hex(token));
        assert_eq!(entry["token_type"], TOKEN_TYPE);
        assert_eq!(entry["label"], label);
    }
    // One revocation per key, one leak event per place it was found.
    assert_eq!(world.audit.revocations(), 2);
    let revoked: Vec<bool> = world.audit.leaks().iter().map(|l| l.3).collect();
    assert_eq!(revoked, [true, false, true]);
    assert_eq!(world.verify_code(&other).await, "revoked");
}

#[tokio::test]
async fn a_secret_found_under_another_of_the_keyrings_prefixes_is_still_a_leak() {
    let world = World::new().await;
    let key = world.issue().await;
    let moved = with_prefix(&key, "sk_test");
    assert_eq!(world.verify_code(&moved).await, "invalid");
    let app = world.app();

    let (status, feedback) = post_signed(&app, &world.github, &alert_body(&[&moved])).await;

    assert_eq!(status, StatusCode::OK);
    let feedback: Value = serde_json::from_slice(&feedback).unwrap();
    assert_eq!(feedback[0]["label"], "true_positive");
    assert_eq!(world.verify_code(&key).await, "revoked");
}

#[tokio::test]
async fn unsigned_or_badly_signed_alerts_are_refused_and_revoke_nothing() {
    let world = World::new().await;
    let key = world.issue().await;
    let app = world.app();
    let body = alert_body(&[&key]);
    let good = world.github.sign(&body);
    let id = world.github.identifier.as_str();
    let impostor = GitHubKey::generate(id);
    let other_body = alert_body(&[&world.issue().await]);

    let cases: Vec<(&str, Option<&str>, Option<String>, &str)> = vec![
        ("no headers", None, None, "missing_signature"),
        ("no signature", Some(id), None, "missing_signature"),
        (
            "no identifier",
            None,
            Some(good.clone()),
            "missing_signature",
        ),
        (
            "another body's signature",
            Some(id),
            Some(world.github.sign(&other_body)),
            "bad_signature",
        ),
        (
            "signed by another key",
            Some(id),
            Some(impostor.sign(&body)),
            "bad_signature",
        ),
        (
            "not base64",
            Some(id),
            Some("%%%".to_owned()),
            "bad_signature",
        ),
        (
            "base64 but not DER",
            Some(id),
            Some(Base64::encode_string(b"not der")),
            "bad_signature",
        ),
        (
            "unknown identifier",
            Some("b2".repeat(32).leak()),
            Some(good.clone()),
            "unknown_key",
        ),
    ];
    for (case, identifier, signature, code) in cases {
        let (status, answer) = post(&app, body.clone(), identifier, signature.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(code_of(&answer), code, "{case}");
    }
    // A body changed after signing (one byte) no longer verifies.
    let mut tampered = body.clone();
    let at = tampered.len() - 3;
    tampered[at] ^= 1;
    let (status, answer) = post(&app, tampered, Some(id), Some(&good)).await;
    assert_eq!(
        (status, code_of(&answer).as_str()),
        (StatusCode::UNAUTHORIZED, "bad_signature")
    );

    assert_eq!(world.verify_code(&key).await, "ok");
    assert!(world.audit.leaks().is_empty());
    assert_eq!(world.audit.revocations(), 0);
    // The genuine request still works afterwards.
    let (status, _) = post(&app, body, Some(id), Some(&good)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(world.verify_code(&key).await, "revoked");
}

#[tokio::test]
async fn a_body_over_the_cap_is_refused_before_anything_else() {
    let world = World::new().await;
    let key = world.issue().await;
    let app = world.app_with(|b| b.max_body(1024));
    let mut reports = vec![key.as_str(); 1];
    let padding = "x".repeat(2000);
    reports.push(&padding);
    let body = alert_body(&reports);
    assert!(body.len() > 1024);

    // Declared by Content-Length: refused without reading.
    let signature = world.github.sign(&body);
    let request = Request::post(PATH)
        .header("content-length", body.len())
        .header(KEY_IDENTIFIER_HEADER, &world.github.identifier)
        .header(SIGNATURE_HEADER, &signature)
        .body(Body::from(body.clone()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Undeclared: refused once the reading passes the cap.
    let (status, answer) = post(
        &app,
        body.clone(),
        Some(&world.github.identifier),
        Some(&signature),
    )
    .await;
    assert_eq!(
        (status, code_of(&answer).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );

    assert_eq!(
        world.server.hits(),
        0,
        "GitHub's keys are not even fetched for it"
    );
    assert_eq!(world.verify_code(&key).await, "ok");
}

#[tokio::test]
async fn more_reports_than_allowed_are_refused_and_none_handled() {
    let world = World::new().await;
    let key = world.issue().await;
    let app = world.app_with(|b| b.max_tokens(2));

    let body = alert_body(&[&key, "a", "b"]);
    let (status, answer) = post_signed(&app, &world.github, &body).await;

    assert_eq!(
        (status, code_of(&answer).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_many_tokens")
    );
    assert_eq!(world.verify_code(&key).await, "ok");
}

#[tokio::test]
async fn a_signed_body_that_is_not_a_report_array_is_a_bad_request() {
    let world = World::new().await;
    let app = world.app();
    for body in [
        &b"{\"token\":\"x\"}"[..],
        b"[{\"type\":\"t\"}]",
        b"not json",
    ] {
        let (status, answer) = post_signed(&app, &world.github, body).await;
        assert_eq!(
            (status, code_of(&answer).as_str()),
            (StatusCode::BAD_REQUEST, "invalid_payload")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_rotated_at_github_is_fetched_on_demand_at_most_once_per_interval() {
    let world = World::new().await;
    let key = world.issue().await;
    let app = world.app_with(|b| b.key_refetch_interval(TimeDelta::minutes(5)));
    let first = alert_body(&["sk_live_nothing"]);

    // First use fetches the list.
    let (status, _) = post_signed(&app, &world.github, &first).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(world.server.hits(), 1);

    // GitHub rotates: a new key is listed and signs the next alert.
    let rotated = GitHubKey::generate(&"c3".repeat(32));
    world.server.list(&rotated);
    let body = alert_body(&[&key]);

    // Within the interval the new identifier is unknown, and no fetch happens.
    let (status, answer) = post_signed(&app, &rotated, &body).await;
    assert_eq!(
        (status, code_of(&answer).as_str()),
        (StatusCode::UNAUTHORIZED, "unknown_key")
    );
    assert_eq!(world.server.hits(), 1);

    // Once the interval has passed, it is fetched on demand and the alert is handled.
    world.clock.advance(TimeDelta::minutes(5));
    let (status, _) = post_signed(&app, &rotated, &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(world.server.hits(), 2);
    assert_eq!(world.verify_code(&key).await, "revoked");

    // A flood of made-up identifiers, concurrent and sequential: still one fetch per
    // interval.
    let bogus = |i: usize| GitHubKey::generate(&format!("{i:064x}"));
    for i in 0..20 {
        let (status, _) = post_signed(&app, &bogus(i), &first).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(world.server.hits(), 2);
    world.clock.advance(TimeDelta::minutes(5));
    let floods: Vec<_> = (100..130)
        .map(|i| {
            let app = app.clone();
            let body = first.clone();
            let key = bogus(i);
            tokio::spawn(async move { post_signed(&app, &key, &body).await.0 })
        })
        .collect();
    for flood in floods {
        assert_eq!(flood.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        world.server.hits(),
        3,
        "one fetch for the whole concurrent flood"
    );
}

#[tokio::test]
async fn old_keys_are_refetched_after_the_maximum_age_and_dropped_keys_are_no_longer_trusted() {
    let world = World::new().await;
    let key = world.issue().await;
    let app = world.app_with(|b| {
        b.key_refetch_interval(TimeDelta::minutes(5))
            .key_max_age(TimeDelta::hours(1))
    });
    let probe = alert_body(&["sk_live_nothing"]);
    assert_eq!(
        post_signed(&app, &world.github, &probe).await.0,
        StatusCode::OK
    );
    assert_eq!(world.server.hits(), 1);

    // Known keys are used without asking again while fresh.
    world.clock.advance(TimeDelta::minutes(30));
    assert_eq!(
        post_signed(&app, &world.github, &probe).await.0,
        StatusCode::OK
    );
    assert_eq!(world.server.hits(), 1);

    // GitHub withdraws the key; after the maximum age the list is fetched again.
    world.server.unlist(&world.github);
    world.clock.advance(TimeDelta::minutes(31));
    let (status, answer) = post_signed(&app, &world.github, &alert_body(&[&key])).await;
    assert_eq!(
        (status, code_of(&answer).as_str()),
        (StatusCode::UNAUTHORIZED, "unknown_key")
    );
    assert_eq!(world.server.hits(), 2);
    assert_eq!(world.verify_code(&key).await, "ok");
}

#[tokio::test]
async fn when_githubs_keys_cannot_be_fetched_the_alert_is_deferred_with_503() {
    let world = World::new().await;
    let key = world.issue().await;
    world.server.failing.store(true, Ordering::SeqCst);
    let app = world.app();

    let (status, answer) = post_signed(&app, &world.github, &alert_body(&[&key])).await;

    assert_eq!(
        (status, code_of(&answer).as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable")
    );
    assert_eq!(world.verify_code(&key).await, "ok");

    // GitHub's answer is bounded too: within the interval the server is not asked again.
    world.server.failing.store(false, Ordering::SeqCst);
    let (status, _) = post_signed(&app, &world.github, &alert_body(&[&key])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(world.server.hits(), 1);
    world
        .clock
        .advance(keymint::http::leak_alerts::DEFAULT_KEY_REFETCH_INTERVAL);
    let (status, _) = post_signed(&app, &world.github, &alert_body(&[&key])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(world.verify_code(&key).await, "revoked");
}

#[tokio::test]
async fn when_the_store_is_down_the_alert_is_deferred_and_nothing_is_called_false() {
    let world = World::new().await;
    let key = world.issue().await;
    let app = world.app();
    // Fetch GitHub's keys first, so only the store fails.
    assert_eq!(
        post_signed(&app, &world.github, &alert_body(&["x"]))
            .await
            .0,
        StatusCode::OK
    );
    world.keyring.store().set_down(true);

    let (status, answer) = post_signed(&app, &world.github, &alert_body(&[&key])).await;

    assert_eq!(
        (status, code_of(&answer).as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    world.keyring.store().set_down(false);
    assert_eq!(world.verify_code(&key).await, "ok");
    assert!(world.audit.leaks().is_empty());
}

#[tokio::test]
async fn invalid_configuration_is_a_build_error() {
    let world = World::new().await;
    let refused =
        |configure: &dyn Fn(Builder) -> Builder| configure(world.builder()).build().is_err();
    assert!(refused(&|b| b.max_body(10)));
    assert!(refused(&|b| b.max_tokens(0)));
    assert!(refused(&|b| b.key_refetch_interval(TimeDelta::zero())));
    assert!(refused(&|b| {
        b.key_refetch_interval(TimeDelta::hours(2))
            .key_max_age(TimeDelta::hours(1))
    }));
    assert!(!refused(&|b| b));
}

#[tokio::test]
async fn confirming_a_secret_checks_it_fully_and_charges_counts_and_audits_nothing() {
    let world = World::new().await;
    let issued = world
        .keyring
        .issue(IssueRequest::new("acct_42", "one use").remaining_uses(1))
        .await
        .unwrap();
    let key = issued.key.expose_secret().to_owned();
    let events_before = world.audit.events().len();
    let reads_before = world.keyring.store().calls(keymint::testing::StoreOp::Get);

    let found = world.keyring.confirm_secret(&key).await.unwrap();
    assert_eq!(found.map(|r| r.id), Some(issued.record.id.clone()));
    assert_eq!(
        world.keyring.store().calls(keymint::testing::StoreOp::Get),
        reads_before + 1,
        "one store read, never the cache"
    );
    assert!(
        world
            .keyring
            .confirm_secret(&with_other_secret(&key))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        world
            .keyring
            .confirm_secret("garbage")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(world.audit.events().len(), events_before, "nothing audited");

    // The single use is still there, and a revoked key's secret is still recognised.
    assert_eq!(world.verify_code(&key).await, "ok");
    world
        .keyring
        .revoke(&issued.record.id, "test")
        .await
        .unwrap();
    assert!(world.keyring.confirm_secret(&key).await.unwrap().is_some());

    world.keyring.store().set_down(true);
    let error = world.keyring.confirm_secret(&key).await.unwrap_err();
    assert_eq!(error.code(), "store_unavailable");
}
