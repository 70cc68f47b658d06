//! The self-service router through `tower::ServiceExt::oneshot`: owner isolation on every
//! endpoint, the plaintext shown once, allowances, CSRF, audit, rolls and pagination.

#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use keymint::http::portal::{self, Allowance, OwnerResolver, PortalUser};
use keymint::{
    Argon2idHasher, AuditEvent, AuditSink, Environment, HashPolicy, IssueRequest, KeyId, KeyStatus,
    KeyType, KeyTypes, Keyring, ManualClock, MemoryStore, Scope, SelfServiceAction, TimeDelta,
    VerifyContext, VerifyError,
};
use serde_json::{Value, json};
use tower::ServiceExt;

#[derive(Debug, Default, Clone)]
struct Audit(Arc<Mutex<Vec<AuditEvent>>>);

impl AuditSink for Audit {
    fn record(&self, event: &AuditEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

/// The user is the `x-user` header (owner `<user>`, actor `<user>@person`); everyone gets
/// the same allowance.
struct HeaderUser(Allowance);

impl OwnerResolver for HeaderUser {
    async fn resolve(&self, parts: &http::request::Parts) -> Option<PortalUser> {
        let user = parts.headers.get("x-user")?.to_str().ok()?;
        Some(PortalUser::new(
            user,
            format!("{user}@person"),
            self.0.clone(),
        ))
    }
}

struct Fixture {
    keyring: Keyring<MemoryStore>,
    clock: ManualClock,
    audit: Audit,
    app: Router,
}

fn scope(s: &str) -> Scope {
    Scope::new(s).unwrap()
}

fn standard_allowance() -> Allowance {
    Allowance::new()
        .key_types(["sk_live", "sk_test"])
        .scopes([scope("users:*"), scope("billing:read")])
        .max_lifetime(TimeDelta::days(90))
        .max_keys(5)
}

fn fixture_with(allowance: Allowance) -> Fixture {
    let clock = ManualClock::default();
    let audit = Audit::default();
    let types = KeyTypes::new(KeyType::secret("sk_live", Environment::live()).unwrap())
        .with(KeyType::secret("sk_test", Environment::test()).unwrap())
        .with(KeyType::publishable("pk_live", Environment::live()).unwrap());
    let keyring = Keyring::builder(types, MemoryStore::new())
        .hashes(HashPolicy::new(
            Argon2idHasher::builder()
                .m_cost(64)
                .t_cost(1)
                .build()
                .unwrap(),
        ))
        .clock(clock.clone())
        .audit(audit.clone())
        .build()
        .unwrap();
    let app = portal::router(keyring.clone(), HeaderUser(allowance));
    Fixture {
        keyring,
        clock,
        audit,
        app,
    }
}

fn fixture() -> Fixture {
    fixture_with(standard_allowance())
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// A request as the portal page sends it: same-origin, with the CSRF header.
fn request(method: &str, path: &str, user: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "portal.example")
        .header(portal::CSRF_HEADER, "1")
        .header("origin", "https://portal.example")
        .header("sec-fetch-site", "same-origin");
    if let Some(user) = user {
        builder = builder.header("x-user", user);
    }
    match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

impl Fixture {
    async fn send(&self, req: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn call(&self, method: &str, path: &str, user: &str, body: Option<Value>) -> Answer {
        self.send(request(method, path, Some(user), body)).await
    }

    /// Creates a key for `user`; answers (id, plaintext).
    async fn create(&self, user: &str, body: Value) -> (String, String) {
        let answer = self.call("POST", "/api/keys", user, Some(body)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        let created = answer.json();
        (
            created["id"].as_str().unwrap().to_owned(),
            created["key"].as_str().unwrap().to_owned(),
        )
    }

    async fn list(&self, user: &str) -> Vec<Value> {
        let answer = self.call("GET", "/api/keys", user, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        answer.json()["keys"].as_array().unwrap().clone()
    }

    async fn verifies(&self, key: &str) -> Result<(), VerifyError> {
        self.keyring
            .verify(key, &VerifyContext::default())
            .await
            .map(drop)
    }

    fn self_service_events(&self) -> Vec<(String, String, SelfServiceAction)> {
        self.audit
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                AuditEvent::SelfService {
                    actor,
                    owner,
                    action,
                    ..
                } => Some((actor.clone(), owner.clone(), *action)),
                _ => None,
            })
            .collect()
    }
}

#[tokio::test]
async fn another_owners_key_answers_exactly_like_a_missing_one() {
    let f = fixture();
    let (id, key) = f.create("alice", json!({"name": "alice's"})).await;
    let missing = KeyId::new("0000000000000000000000")
        .map_or_else(|_| "0000000000000000000000".to_owned(), |id| id.to_string());

    // Bob's listing does not show it.
    assert!(f.list("bob").await.is_empty());
    assert_eq!(f.list("alice").await.len(), 1);

    let attempts: [(&str, String, Option<Value>); 4] = [
        ("POST", "/roll".into(), Some(json!({"grace_secs": 60}))),
        (
            "POST",
            "/revoke".into(),
            Some(json!({"reason": "mine now"})),
        ),
        ("PATCH", String::new(), Some(json!({"name": "bob's"}))),
        ("POST", "/roll".into(), None),
    ];
    for (method, suffix, body) in attempts {
        let theirs = f
            .call(
                method,
                &format!("/api/keys/{id}{suffix}"),
                "bob",
                body.clone(),
            )
            .await;
        let nothing = f
            .call(
                method,
                &format!("/api/keys/{missing}{suffix}"),
                "bob",
                body.clone(),
            )
            .await;
        let garbage = f
            .call(method, &format!("/api/keys/not-an-id{suffix}"), "bob", body)
            .await;
        assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{method} {suffix}");
        assert_eq!(
            theirs.text, nothing.text,
            "{method} {suffix}: bodies differ"
        );
        assert_eq!(
            theirs.text, garbage.text,
            "{method} {suffix}: bodies differ"
        );
        assert_eq!(nothing.status, StatusCode::NOT_FOUND);
        assert_eq!(
            theirs.headers.get("content-type"),
            nothing.headers.get("content-type")
        );
    }

    // Alice's key is untouched: same name, not revoked, not rolled, still works.
    let record = f.keyring.get(&KeyId::new(&id).unwrap()).await.unwrap();
    assert_eq!(record.attributes.name, "alice's");
    assert_eq!(record.status, KeyStatus::Active);
    assert!(record.successor.is_none());
    f.verifies(&key).await.unwrap();
    // Nothing was done in bob's name.
    assert!(
        f.self_service_events()
            .iter()
            .all(|(actor, _, _)| actor == "alice@person")
    );
}

#[tokio::test]
async fn the_plaintext_is_answered_once_and_never_listed() {
    let f = fixture();
    let answer = f
        .call(
            "POST",
            "/api/keys",
            "alice",
            Some(json!({"name": "ci", "scopes": ["users:read"]})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(
        answer.headers.get("cache-control").unwrap(),
        "no-store",
        "a response with a secret must not be cached"
    );
    let created = answer.json();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk_live_"), "{key}");
    f.verifies(&key).await.unwrap();
    let id = KeyId::new(created["id"].as_str().unwrap()).unwrap();
    let record = f.keyring.get(&id).await.unwrap();
    let hash = serde_json::to_value(&record).unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_owned();

    // Listing, editing and the page never carry the key or its hash again.
    let listed = f.call("GET", "/api/keys", "alice", None).await;
    let edited = f
        .call(
            "PATCH",
            &format!("/api/keys/{id}"),
            "alice",
            Some(json!({"description": "deploys"})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text);
    let page = f.call("GET", "/", "alice", None).await;
    for answer in [&listed, &edited, &page] {
        assert!(!answer.text.contains(&key), "{}", answer.text);
        assert!(!answer.text.contains(&hash), "{}", answer.text);
        assert!(answer.json().get("key").is_none());
    }
    let listed = listed.json();
    let entry = &listed["keys"][0];
    assert_eq!(entry["name"], "ci");
    assert_eq!(entry["type"], "sk_live");
    assert_eq!(entry["scopes"], json!(["users:read"]));
    assert_eq!(entry["status"], "active");
    assert_eq!(entry["hint"], serde_json::to_value(&record.hint).unwrap());
    assert_eq!(edited.json()["description"], "deploys");
}

#[tokio::test]
async fn a_roll_answers_the_new_key_once_and_caps_the_grace_at_the_old_expiry() {
    let f = fixture();
    let (id, old) = f
        .create("alice", json!({"name": "short", "expires_in_secs": 3600}))
        .await;
    let rolled = f
        .call(
            "POST",
            &format!("/api/keys/{id}/roll"),
            "alice",
            Some(json!({"grace_secs": 7200})),
        )
        .await;
    assert_eq!(rolled.status, StatusCode::CREATED, "{}", rolled.text);
    let rolled = rolled.json();
    let new = rolled["key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(rolled["old_key_expires"], true);
    f.verifies(&new).await.unwrap();
    f.verifies(&old).await.unwrap();

    let keys = f.list("alice").await;
    let status_of = |id: &str| {
        keys.iter()
            .find(|k| k["id"] == id)
            .map(|k| k["status"].clone())
    };
    assert_eq!(status_of(&id), Some(json!("rolled")));
    assert_eq!(
        status_of(rolled["id"].as_str().unwrap()),
        Some(json!("active"))
    );
    assert!(!serde_json::to_string(&keys).unwrap().contains(&new));

    // The grace asked for (2 h) outlives the old key's own expiry (1 h): it ends at 1 h.
    f.clock.advance(TimeDelta::minutes(61));
    assert!(f.verifies(&old).await.is_err());
    // The successor keeps the old key's expiry too.
    f.clock.advance(TimeDelta::minutes(-2));
    f.verifies(&new).await.unwrap();

    // Rolling a rolled key is refused; the key is alice's, so she may know why.
    let again = f
        .call("POST", &format!("/api/keys/{id}/roll"), "alice", None)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
}

#[tokio::test]
async fn a_roll_without_a_body_gets_a_grace_within_the_allowance() {
    let f = fixture_with(standard_allowance().max_grace(TimeDelta::minutes(10)));
    let (id, old) = f.create("alice", json!({"name": "k"})).await;
    let too_long = f
        .call(
            "POST",
            &format!("/api/keys/{id}/roll"),
            "alice",
            Some(json!({"grace_secs": 601})),
        )
        .await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(too_long.code(), "not_allowed");
    let negative = f
        .call(
            "POST",
            &format!("/api/keys/{id}/roll"),
            "alice",
            Some(json!({"grace_secs": -1})),
        )
        .await;
    assert_eq!(negative.status, StatusCode::UNPROCESSABLE_ENTITY);
    f.verifies(&old).await.unwrap();

    // No body: the keyring's default grace (24 h) capped by the allowance (10 min).
    let rolled = f
        .call("POST", &format!("/api/keys/{id}/roll"), "alice", None)
        .await;
    assert_eq!(rolled.status, StatusCode::CREATED, "{}", rolled.text);
    f.clock.advance(TimeDelta::minutes(9));
    f.verifies(&old).await.unwrap();
    f.clock.advance(TimeDelta::minutes(2));
    assert!(f.verifies(&old).await.is_err());
}

#[tokio::test]
async fn revoking_takes_effect_at_once_and_keeps_the_reason() {
    let f = fixture();
    let (id, key) = f.create("alice", json!({"name": "k"})).await;
    let revoked = f
        .call(
            "POST",
            &format!("/api/keys/{id}/revoke"),
            "alice",
            Some(json!({"reason": "leaked in a log"})),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
    assert!(matches!(f.verifies(&key).await, Err(VerifyError::Revoked)));
    let record = f.keyring.get(&KeyId::new(&id).unwrap()).await.unwrap();
    assert_eq!(record.revocation.unwrap().reason, "leaked in a log");
    assert_eq!(f.list("alice").await[0]["status"], "revoked");

    // Without a body, the reason names the actor.
    let (id, _) = f.create("alice", json!({"name": "k2"})).await;
    let revoked = f
        .call("POST", &format!("/api/keys/{id}/revoke"), "alice", None)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let record = f.keyring.get(&KeyId::new(&id).unwrap()).await.unwrap();
    assert!(record.revocation.unwrap().reason.contains("alice@person"));
}

#[tokio::test]
async fn scopes_outside_the_allowance_are_refused() {
    let f = fixture();
    for scopes in [
        json!(["admin:keys"]),
        json!(["users:read", "billing:write"]),
        json!(["*:*"]),
        json!(["billing:*"]),
    ] {
        let answer = f
            .call(
                "POST",
                "/api/keys",
                "alice",
                Some(json!({"name": "k", "scopes": scopes})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{scopes}");
        assert_eq!(answer.code(), "not_allowed");
    }
    let invalid = f
        .call(
            "POST",
            "/api/keys",
            "alice",
            Some(json!({"name": "k", "scopes": ["not a scope"]})),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(f.list("alice").await.is_empty());
    // Within it: a wildcard the allowance covers, and a concrete scope.
    f.create(
        "alice",
        json!({"name": "k", "scopes": ["users:*", "billing:read"]}),
    )
    .await;
}

#[tokio::test]
async fn key_types_outside_the_allowance_are_refused() {
    let f = fixture();
    for key_type in ["pk_live", "sk_nope"] {
        let answer = f
            .call(
                "POST",
                "/api/keys",
                "alice",
                Some(json!({"name": "k", "type": key_type})),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{key_type}"
        );
        assert_eq!(answer.code(), "not_allowed");
    }
    let (_, test_key) = f
        .create("alice", json!({"name": "k", "type": "sk_test"}))
        .await;
    assert!(test_key.starts_with("sk_test_"));
    let types = f.call("GET", "/api/types", "alice", None).await.json();
    assert_eq!(types["types"], json!(["sk_live", "sk_test"]));

    // With no key types named, only the keyring's default type.
    let f = fixture_with(Allowance::new());
    let (_, key) = f.create("alice", json!({"name": "k"})).await;
    assert!(key.starts_with("sk_live_"));
    let answer = f
        .call(
            "POST",
            "/api/keys",
            "alice",
            Some(json!({"name": "k", "type": "sk_test"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn lifetimes_beyond_the_allowance_are_refused_and_the_default_is_the_longest() {
    let f = fixture();
    let too_long = 90 * 86_400 + 1;
    for secs in [json!(too_long), json!(0), json!(-5), json!(i64::MAX)] {
        let answer = f
            .call(
                "POST",
                "/api/keys",
                "alice",
                Some(json!({"name": "k", "expires_in_secs": secs})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{secs}");
    }
    let now = keymint::Clock::now(&f.clock);
    let (id, _) = f.create("alice", json!({"name": "k"})).await;
    let record = f.keyring.get(&KeyId::new(&id).unwrap()).await.unwrap();
    assert_eq!(
        record.attributes.expires_at,
        Some(now + TimeDelta::days(90))
    );
    let (id, _) = f
        .create("alice", json!({"name": "k", "expires_in_secs": 86_400}))
        .await;
    let record = f.keyring.get(&KeyId::new(&id).unwrap()).await.unwrap();
    assert_eq!(record.attributes.expires_at, Some(now + TimeDelta::days(1)));
}

#[tokio::test]
async fn the_key_count_is_capped_and_revoking_frees_a_place() {
    let f = fixture_with(standard_allowance().max_keys(2));
    let (first, _) = f.create("alice", json!({"name": "1"})).await;
    f.create("alice", json!({"name": "2"})).await;
    let third = f
        .call("POST", "/api/keys", "alice", Some(json!({"name": "3"})))
        .await;
    assert_eq!(third.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(third.code(), "not_allowed");
    // Another owner has their own count.
    f.create("bob", json!({"name": "1"})).await;
    // Rolling does not count twice.
    let rolled = f
        .call("POST", &format!("/api/keys/{first}/roll"), "alice", None)
        .await;
    assert_eq!(rolled.status, StatusCode::CREATED);
    let third = f
        .call("POST", "/api/keys", "alice", Some(json!({"name": "3"})))
        .await;
    assert_eq!(third.status, StatusCode::UNPROCESSABLE_ENTITY);

    let successor = rolled.json()["id"].as_str().unwrap().to_owned();
    let revoked = f
        .call(
            "POST",
            &format!("/api/keys/{successor}/revoke"),
            "alice",
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    // The rolled key still works in its grace period, so it still counts.
    let third = f
        .call("POST", "/api/keys", "alice", Some(json!({"name": "3"})))
        .await;
    assert_eq!(third.status, StatusCode::UNPROCESSABLE_ENTITY);
    let revoked = f
        .call("POST", &format!("/api/keys/{first}/revoke"), "alice", None)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    f.create("alice", json!({"name": "3"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_do_not_exceed_the_count() {
    let f = Arc::new(fixture_with(standard_allowance().max_keys(3)));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let f = f.clone();
            tokio::spawn(async move {
                f.call(
                    "POST",
                    "/api/keys",
                    "alice",
                    Some(json!({"name": format!("k{i}")})),
                )
                .await
                .status
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        if task.await.unwrap() == StatusCode::CREATED {
            created += 1;
        }
    }
    assert_eq!(created, 3);
    assert_eq!(f.list("alice").await.len(), 3);
}

#[tokio::test]
async fn state_changes_need_the_csrf_header_and_a_same_origin_request() {
    let f = fixture();
    let create = || {
        request(
            "POST",
            "/api/keys",
            Some("alice"),
            Some(json!({"name": "k"})),
        )
    };

    let mut without_header = create();
    without_header.headers_mut().remove(portal::CSRF_HEADER);
    let mut wrong_value = create();
    wrong_value
        .headers_mut()
        .insert(portal::CSRF_HEADER, "true".parse().unwrap());
    let mut cross_origin = create();
    cross_origin
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let mut cross_site = create();
    cross_site
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    let mut null_origin = create();
    null_origin
        .headers_mut()
        .insert("origin", "null".parse().unwrap());
    for (what, req) in [
        ("no header", without_header),
        ("wrong value", wrong_value),
        ("cross origin", cross_origin),
        ("cross site", cross_site),
        ("null origin", null_origin),
    ] {
        let answer = f.send(req).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what}");
        assert_eq!(answer.code(), "csrf", "{what}");
    }
    assert!(f.list("alice").await.is_empty(), "nothing was created");

    // The same check guards roll, revoke and edit.
    let (id, key) = f.create("alice", json!({"name": "k"})).await;
    for (method, path) in [
        ("POST", format!("/api/keys/{id}/roll")),
        ("POST", format!("/api/keys/{id}/revoke")),
        ("PATCH", format!("/api/keys/{id}")),
    ] {
        let mut req = request(method, &path, Some("alice"), Some(json!({})));
        req.headers_mut().remove(portal::CSRF_HEADER);
        assert_eq!(f.send(req).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    f.verifies(&key).await.unwrap();

    // A same-origin request without Origin (some clients) but with the header is fine.
    let mut no_origin = create();
    no_origin.headers_mut().remove("origin");
    assert_eq!(f.send(no_origin).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn nobody_logged_in_gets_401_and_the_page_is_locked_down() {
    let f = fixture();
    let answer = f.send(request("GET", "/api/keys", None, None)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.code(), "login_required");
    let answer = f
        .send(request(
            "POST",
            "/api/keys",
            None,
            Some(json!({"name": "k"})),
        ))
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    let page = f.send(request("GET", "/", None, None)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("<title>API keys</title>"));
    let csp = page
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(page.headers.get("x-frame-options").unwrap(), "DENY");
}

#[tokio::test]
async fn bad_bodies_are_refused_with_their_own_codes() {
    let f = fixture();
    let bad_json = Request::builder()
        .method("POST")
        .uri("/api/keys")
        .header(portal::CSRF_HEADER, "1")
        .header("x-user", "alice")
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let answer = f.send(bad_json).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "invalid_json");

    let unknown_field = f
        .call(
            "POST",
            "/api/keys",
            "alice",
            Some(json!({"name": "k", "owner": "bob"})),
        )
        .await;
    assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown_field.code(), "invalid_body");

    let huge = f
        .call(
            "POST",
            "/api/keys",
            "alice",
            Some(json!({"name": "x".repeat(64 * 1024)})),
        )
        .await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);

    let long_name = f
        .call(
            "POST",
            "/api/keys",
            "alice",
            Some(json!({"name": "x".repeat(2000)})),
        )
        .await;
    assert_eq!(long_name.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(f.list("alice").await.is_empty());

    let bad_after = f.call("GET", "/api/keys?after=%00", "alice", None).await;
    assert_eq!(bad_after.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn every_action_is_an_audit_event_naming_the_actor() {
    let f = fixture();
    let (id, _) = f.create("alice", json!({"name": "k"})).await;
    f.call(
        "PATCH",
        &format!("/api/keys/{id}"),
        "alice",
        Some(json!({"name": "renamed"})),
    )
    .await;
    let rolled = f
        .call("POST", &format!("/api/keys/{id}/roll"), "alice", None)
        .await
        .json();
    let successor = rolled["id"].as_str().unwrap();
    f.call(
        "POST",
        &format!("/api/keys/{successor}/revoke"),
        "alice",
        None,
    )
    .await;
    let events = f.self_service_events();
    let actions: Vec<_> = events.iter().map(|(_, _, a)| *a).collect();
    assert_eq!(
        actions,
        [
            SelfServiceAction::Created,
            SelfServiceAction::Edited,
            SelfServiceAction::Rolled,
            SelfServiceAction::Revoked,
        ]
    );
    assert!(
        events
            .iter()
            .all(|(actor, owner, _)| actor == "alice@person" && owner == "alice")
    );
    let rolled_event = f.audit.0.lock().unwrap().iter().find_map(|e| match e {
        AuditEvent::SelfService {
            action: SelfServiceAction::Rolled,
            id,
            successor,
            ..
        } => Some((id.to_string(), successor.as_ref().map(ToString::to_string))),
        _ => None,
    });
    assert_eq!(rolled_event, Some((id.clone(), Some(successor.to_owned()))));
}

#[tokio::test]
async fn listings_are_paginated() {
    let f = fixture_with(standard_allowance().max_keys(100));
    let mut ids = Vec::new();
    for i in 0..57 {
        ids.push(f.create("alice", json!({"name": format!("k{i}")})).await.0);
    }
    f.create("bob", json!({"name": "bob's"})).await;
    let first = f.call("GET", "/api/keys", "alice", None).await.json();
    let page1 = first["keys"].as_array().unwrap();
    assert_eq!(page1.len(), 50);
    let after = first["next_after"].as_str().unwrap();
    let second = f
        .call("GET", &format!("/api/keys?after={after}"), "alice", None)
        .await
        .json();
    let page2 = second["keys"].as_array().unwrap();
    assert_eq!(page2.len(), 7);
    assert!(second["next_after"].is_null());
    let mut seen: Vec<String> = page1
        .iter()
        .chain(page2)
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn a_roll_never_mints_more_than_the_allowance() {
    let f = fixture();
    // Keys an operator issued to alice outside the portal: beyond her allowance.
    let wide = f
        .keyring
        .issue(IssueRequest::new("alice", "ops").scopes(["admin:keys"]))
        .await
        .unwrap();
    let other_type = f
        .keyring
        .issue(IssueRequest::new("alice", "pk").key_type("pk_live"))
        .await
        .unwrap();
    // Her allowance caps lifetimes at 90 days: the successor would keep these expiries.
    let forever = f
        .keyring
        .issue(IssueRequest::new("alice", "forever"))
        .await
        .unwrap();
    let long = f
        .keyring
        .issue(IssueRequest::new("alice", "long").expires_in(TimeDelta::days(365)))
        .await
        .unwrap();
    for record in [
        &wide.record,
        &other_type.record,
        &forever.record,
        &long.record,
    ] {
        let answer = f
            .call(
                "POST",
                &format!("/api/keys/{}/roll", record.id),
                "alice",
                None,
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            answer.text
        );
        assert_eq!(answer.code(), "not_allowed");
        assert!(answer.json().get("key").is_none());
        let stored = f.keyring.get(&record.id).await.unwrap();
        assert!(stored.successor.is_none(), "nothing was rotated");
    }
}

#[tokio::test]
async fn chained_rolls_cannot_multiply_working_keys() {
    let f = fixture_with(standard_allowance().max_keys(1));
    let (first, first_key) = f.create("alice", json!({"name": "k"})).await;
    let rolled = f
        .call("POST", &format!("/api/keys/{first}/roll"), "alice", None)
        .await;
    assert_eq!(rolled.status, StatusCode::CREATED);
    let second = rolled.json()["id"].as_str().unwrap().to_owned();
    // The first key is in its grace period: the second cannot be rolled yet.
    let again = f
        .call("POST", &format!("/api/keys/{second}/roll"), "alice", None)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_eq!(again.code(), "invalid_state");
    // Nor can a key be created: two keys work.
    let create = f
        .call("POST", "/api/keys", "alice", Some(json!({"name": "more"})))
        .await;
    assert_eq!(create.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Once the first is revoked, rolling the second is fine again.
    f.call("POST", &format!("/api/keys/{first}/revoke"), "alice", None)
        .await;
    assert!(f.verifies(&first_key).await.is_err());
    let again = f
        .call("POST", &format!("/api/keys/{second}/roll"), "alice", None)
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
}

#[tokio::test]
async fn expired_keys_are_not_rolled_and_revoked_keys_not_edited() {
    let f = fixture();
    let (expiring, _) = f
        .create("alice", json!({"name": "short", "expires_in_secs": 60}))
        .await;
    f.clock.advance(TimeDelta::minutes(2));
    let rolled = f
        .call("POST", &format!("/api/keys/{expiring}/roll"), "alice", None)
        .await;
    assert_eq!(rolled.status, StatusCode::CONFLICT, "{}", rolled.text);
    assert!(rolled.json().get("key").is_none());

    let (id, _) = f.create("alice", json!({"name": "k"})).await;
    let events_before = f.self_service_events().len();
    let noop = f
        .call(
            "PATCH",
            &format!("/api/keys/{id}"),
            "alice",
            Some(json!({})),
        )
        .await;
    assert_eq!(noop.status, StatusCode::OK);
    assert_eq!(
        f.self_service_events().len(),
        events_before,
        "no change, no event"
    );
    f.call("POST", &format!("/api/keys/{id}/revoke"), "alice", None)
        .await;
    let edit = f
        .call(
            "PATCH",
            &format!("/api/keys/{id}"),
            "alice",
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(edit.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn http2_requests_without_a_host_header_pass_the_origin_check() {
    let f = fixture();
    let post = |origin: &str| {
        // HTTP/2: the authority is in the request line, and there is no Host header.
        Request::builder()
            .method("POST")
            .uri("https://portal.example/api/keys")
            .header(portal::CSRF_HEADER, "1")
            .header("origin", origin)
            .header("x-user", "alice")
            .header("content-type", "application/json")
            .body(Body::from(json!({"name": "h2"}).to_string()))
            .unwrap()
    };
    assert_eq!(
        f.send(post("https://portal.example")).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        f.send(post("https://evil.example")).await.status,
        StatusCode::FORBIDDEN
    );
}
