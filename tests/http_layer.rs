//! The HTTP layer through `tower::ServiceExt::oneshot`: every status, challenge and header
//! of the refusal matrix, the order of checks, and what reaches the handler.

#![cfg(all(feature = "axum", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, Response, StatusCode};
use keymint::http::{KeyAuth, KeyAuthBuilder, PeerAddr, Rejection, Tls};
use keymint::ratelimit::{KeyLimit, Policy, Quota};
use keymint::testing::FaultyStore;
use keymint::{
    Argon2idHasher, AuditEvent, AuditSink, Environment, HashPolicy, IssueRequest, KeyType,
    KeyTypes, Keyring, ManualClock, MemoryStore, Scope, TimeDelta, VerifiedKey,
};
use serde_json::Value;
use tower::ServiceExt;

#[path = "support/format_reference.rs"]
#[allow(dead_code)]
mod format_reference;

type Store = FaultyStore<MemoryStore>;

#[derive(Debug, Default, Clone)]
struct Audit(Arc<Mutex<Vec<AuditEvent>>>);

impl AuditSink for Audit {
    fn record(&self, event: &AuditEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

struct Fixture {
    keyring: Keyring<Store>,
    store: Store,
    clock: ManualClock,
    audit: Audit,
}

fn fixture() -> Fixture {
    let store = FaultyStore::new(MemoryStore::new());
    let clock = ManualClock::default();
    let audit = Audit::default();
    let read = Scope::new("*:read").unwrap();
    let types = KeyTypes::new(KeyType::secret("sk_live", Environment::live()).unwrap())
        .with(KeyType::secret("sk_test", Environment::test()).unwrap())
        .with(
            KeyType::publishable("pk_live", Environment::live())
                .unwrap()
                .allowed_scopes([read]),
        );
    let keyring = Keyring::builder(types, store.clone())
        .hashes(HashPolicy::new(
            Argon2idHasher::builder()
                .m_cost(64)
                .t_cost(1)
                .build()
                .unwrap(),
        ))
        .clock(clock.clone())
        .audit(audit.clone())
        .policy(Policy::single("two", Quota::per_hour(NonZeroU32::new(2).unwrap())).unwrap())
        .failed_attempt_throttle(
            Policy::single("fails", Quota::per_hour(NonZeroU32::new(3).unwrap())).unwrap(),
        )
        .build()
        .unwrap();
    Fixture {
        keyring,
        store,
        clock,
        audit,
    }
}

/// Says what reached it: whether a credential header was still there, and the key's owner.
async fn echo(key: Option<VerifiedKey>, req: Request<Body>) -> String {
    let header =
        req.headers().contains_key("authorization") || req.headers().contains_key("x-api-key");
    format!(
        "{}|{}",
        key.map_or("none".into(), |k| k.owner().to_owned()),
        header
    )
}

fn app(f: &Fixture, configure: impl Fn(KeyAuthBuilder) -> KeyAuthBuilder) -> Router {
    let auth = configure(KeyAuth::builder(f.keyring.clone()).realm("test").unwrap()).build();
    Router::new()
        .route("/any", get(echo).route_layer(auth.layer()))
        .route(
            "/read",
            get(echo).route_layer(auth.require("users:read").unwrap()),
        )
        .route("/heavy", get(echo).route_layer(auth.layer().cost(3)))
        .route("/optional", get(echo).route_layer(auth.layer().optional()))
        .route(
            "/twice",
            get(echo)
                .route_layer(auth.layer())
                .route_layer(auth.layer()),
        )
}

fn get_from(path: &str, peer: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder().uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut req = builder.body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(PeerAddr(peer.parse::<SocketAddr>().unwrap()));
    req
}

/// A request from a loopback peer (plain HTTP allowed).
fn get_local(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    get_from(path, "127.0.0.1:50000", headers)
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    fn problem(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let problem: Value = serde_json::from_str(&self.body).unwrap();
        assert_eq!(
            problem["status"],
            self.status.as_u16(),
            "status member equals the response's"
        );
        assert!(problem["title"].is_string() && problem["type"].is_string());
        problem
    }
    fn code(&self) -> String {
        self.problem()["code"].as_str().unwrap().to_owned()
    }
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let response: Response<Body> = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// The same id with another secret and a recomputed checksum: passes every offline check.
fn seal_wrong_secret(key: &str) -> String {
    let body = &key[..key.len() - 6];
    let mut altered = body.to_owned();
    let last = altered.pop().unwrap();
    altered.push(if last == 'a' { 'b' } else { 'a' });
    format_reference::seal(&altered)
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

#[tokio::test]
async fn no_credential_gets_a_plain_bearer_challenge() {
    let f = fixture();
    let a = send(&app(&f, |b| b), get_local("/any", &[])).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.header("www-authenticate"), Some(r#"Bearer realm="test""#));
    assert_eq!(a.code(), "missing_credential");
    // Another scheme is no bearer credential either.
    let a = send(
        &app(&f, |b| b),
        get_local("/any", &[("authorization", "Basic dXNlcg==")]),
    )
    .await;
    assert_eq!(a.header("www-authenticate"), Some(r#"Bearer realm="test""#));
}

#[tokio::test]
async fn refused_keys_get_invalid_token_with_their_code() {
    let f = fixture();
    let app = app(&f, |b| b);
    let issue = |r: IssueRequest| f.keyring.issue(r);
    let revoked = issue(IssueRequest::new("a", "r")).await.unwrap();
    f.keyring.revoke(&revoked.record.id, "x").await.unwrap();
    let disabled = issue(IssueRequest::new("a", "d")).await.unwrap();
    f.keyring.disable(&disabled.record.id).await.unwrap();
    let expiring = issue(IssueRequest::new("a", "e").expires_in(TimeDelta::hours(1)))
        .await
        .unwrap();
    let later = issue(IssueRequest::new("a", "l").not_before(f.clock_now() + TimeDelta::days(1)))
        .await
        .unwrap();
    let test_key = issue(IssueRequest::new("a", "t").key_type("sk_test"))
        .await
        .unwrap();
    let unknown = f.keyring.format().generate().unwrap();
    f.clock.advance(TimeDelta::hours(2));
    for (i, (key, code)) in [
        ("sk_live_garbage".to_owned(), "malformed"),
        (
            keymint::KeyFormat::new("xk_live")
                .unwrap()
                .generate()
                .unwrap()
                .expose_secret()
                .to_owned(),
            "unknown_prefix",
        ),
        (unknown.expose_secret().to_owned(), "invalid"),
        (revoked.key.expose_secret().to_owned(), "revoked"),
        (disabled.key.expose_secret().to_owned(), "disabled"),
        (expiring.key.expose_secret().to_owned(), "expired"),
        (later.key.expose_secret().to_owned(), "not_yet_valid"),
        (test_key.key.expose_secret().to_owned(), "wrong_environment"),
    ]
    .into_iter()
    .enumerate()
    {
        // One client address each: three failures from one address trip the throttle.
        let peer = format!("127.0.1.{i}:1000");
        let a = send(
            &app,
            get_from("/any", &peer, &[("authorization", &bearer(&key))]),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{code}");
        assert_eq!(
            a.header("www-authenticate"),
            Some(r#"Bearer realm="test", error="invalid_token""#),
            "{code}"
        );
        assert_eq!(a.code(), code);
        let tail = &key[key.len().saturating_sub(20)..];
        assert!(!a.body.contains(tail), "the body never echoes the key");
    }
    // Hosts may answer all of them like an unknown key.
    let hidden = self::app(&f, |b| b.hide_reasons(true));
    for (i, key) in [&revoked.key, &expiring.key, &test_key.key]
        .into_iter()
        .enumerate()
    {
        let peer = format!("127.0.2.{i}:1000");
        let a = send(
            &hidden,
            get_from("/any", &peer, &[("x-api-key", key.expose_secret())]),
        )
        .await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::UNAUTHORIZED, "invalid".to_owned())
        );
        assert_eq!(a.problem()["detail"], "invalid api key");
    }
}

impl Fixture {
    fn clock_now(&self) -> keymint::DateTime<keymint::Utc> {
        keymint::Clock::now(&self.clock)
    }
}

#[tokio::test]
async fn unreadable_or_conflicting_credentials_are_invalid_requests() {
    let f = fixture();
    let app = app(&f, |b| b);
    let key = f
        .keyring
        .issue(IssueRequest::new("a", "n"))
        .await
        .unwrap()
        .key;
    let other = f
        .keyring
        .issue(IssueRequest::new("a", "m"))
        .await
        .unwrap()
        .key;
    let long = "k".repeat(200);
    for headers in [
        vec![
            ("authorization", bearer(key.expose_secret())),
            ("x-api-key", other.expose_secret().to_owned()),
        ],
        vec![("x-api-key", long.clone())],
        vec![("x-api-key", "sk live".to_owned())],
        // `Bearer` and nothing after it: a malformed credential, not a missing one.
        vec![("authorization", "Bearer".to_owned())],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let a = send(&app, get_local("/any", &headers)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{headers:?}");
        assert_eq!(
            a.header("www-authenticate"),
            Some(r#"Bearer realm="test", error="invalid_request""#)
        );
        assert_eq!(a.code(), "invalid_request");
    }
    // The same key twice is one credential.
    let same = [
        ("authorization", bearer(key.expose_secret())),
        ("x-api-key", key.expose_secret().to_owned()),
    ];
    let same: Vec<(&str, &str)> = same.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(
        send(&app, get_local("/any", &same)).await.status,
        StatusCode::OK
    );
    // Bytes that are not visible ASCII.
    let mut req = get_local("/any", &[]);
    req.headers_mut().insert(
        "x-api-key",
        http::HeaderValue::from_bytes(b"sk_live_\xff\xfe").unwrap(),
    );
    assert_eq!(send(&app, req).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn missing_scopes_get_insufficient_scope_and_are_charged_nothing() {
    let f = fixture();
    let app = app(&f, |b| b);
    let key = f
        .keyring
        .issue(
            IssueRequest::new("a", "n")
                .scopes(["billing:read"])
                .remaining_uses(1)
                .rate_limit_policy("two"),
        )
        .await
        .unwrap()
        .key;
    let auth = bearer(key.expose_secret());
    for _ in 0..3 {
        let a = send(&app, get_local("/read", &[("authorization", &auth)])).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert_eq!(
            a.header("www-authenticate"),
            Some(r#"Bearer realm="test", error="insufficient_scope", scope="users:read""#)
        );
        assert_eq!(a.code(), "insufficient_scope");
    }
    // Its one use and its two requests an hour are untouched.
    let a = send(&app, get_local("/any", &[("authorization", &auth)])).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("ratelimit"), Some(r#""two";r=1;t=1800"#));
    assert_eq!(a.header("ratelimit-policy"), Some(r#""two";q=2;w=3600"#));
}

#[tokio::test]
async fn refusals_of_valid_keys_from_the_wrong_place_are_403_without_a_challenge() {
    let f = fixture();
    let app = app(&f, |b| b);
    let fenced = f
        .keyring
        .issue(IssueRequest::new("a", "n").allowed_networks(["10.0.0.0/8".parse().unwrap()]))
        .await
        .unwrap()
        .key;
    let secret = f
        .keyring
        .issue(IssueRequest::new("a", "s"))
        .await
        .unwrap()
        .key;
    let pk = f
        .keyring
        .issue(
            IssueRequest::new("a", "p")
                .key_type("pk_live")
                .allowed_origins(["https://shop.example.com".parse().unwrap()]),
        )
        .await
        .unwrap()
        .key;
    for (key, origin, code) in [
        (&fenced, None, "client_not_allowed"),
        (
            &secret,
            Some("https://shop.example.com"),
            "secret_key_in_browser",
        ),
        (&pk, Some("https://evil.example"), "origin_not_allowed"),
        (&pk, None, "origin_not_allowed"),
    ] {
        let auth = bearer(key.expose_secret());
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(origin) = origin {
            headers.push(("origin", origin));
        }
        let a = send(&app, get_local("/any", &headers)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{code}");
        assert_eq!(a.header("www-authenticate"), None);
        assert_eq!(a.code(), code);
    }
    let ok = send(
        &app,
        get_local(
            "/any",
            &[
                ("authorization", &bearer(pk.expose_secret())),
                ("origin", "https://shop.example.com"),
            ],
        ),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    // Sec-Fetch-Site without Origin still marks a browser.
    let a = send(
        &app,
        get_local(
            "/any",
            &[
                ("authorization", &bearer(secret.expose_secret())),
                ("sec-fetch-site", "same-origin"),
            ],
        ),
    )
    .await;
    assert_eq!(a.code(), "secret_key_in_browser");

    // A same-origin GET carries no Origin: its origin is the server's own, from Host.
    let same_origin = |site: &'static str| {
        let mut req = get_from(
            "/any",
            "203.0.113.9:4000",
            &[
                ("authorization", &bearer(pk.expose_secret())),
                ("host", "shop.example.com"),
                ("sec-fetch-site", site),
            ],
        );
        req.extensions_mut().insert(Tls);
        req
    };
    assert_eq!(
        send(&app, same_origin("same-origin")).await.status,
        StatusCode::OK,
        "the page's own origin is allowed"
    );
    assert_eq!(
        send(&app, same_origin("cross-site")).await.code(),
        "origin_not_allowed",
        "a cross-site request without Origin is no allowed origin"
    );
}

#[tokio::test]
async fn keys_over_plain_http_are_refused_and_reported() {
    let f = fixture();
    let app = app(&f, |b| b);
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let auth = bearer(issued.key.expose_secret());
    let a = send(
        &app,
        get_from("/any", "203.0.113.9:4000", &[("authorization", &auth)]),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.code(), "plain_http");
    assert_eq!(a.header("www-authenticate"), None);
    let reports = || {
        f.audit
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                AuditEvent::SentInClear { id, client_ip, .. } => Some((id.clone(), *client_ip)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    // The report is confirmed in the background: wait for it.
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while reports().is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the exposed key is reported");
    assert_eq!(
        reports(),
        vec![(
            issued.record.id.clone(),
            Some("203.0.113.9".parse().unwrap())
        )],
        "an audit event names the exposed key"
    );
    // A forged key (public id, recomputed checksum, wrong secret) over plain HTTP is refused
    // the same, but reported for nobody: anyone could otherwise have any key rolled.
    let forged = seal_wrong_secret(issued.key.expose_secret());
    let a = send(
        &app,
        get_from(
            "/any",
            "203.0.113.9:4000",
            &[("authorization", &bearer(&forged))],
        ),
    )
    .await;
    assert_eq!(a.code(), "plain_http");
    // Its secret check (a fast hash) is long done within half a second.
    let another = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        while reports().len() == 1 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        another.is_err(),
        "no report for a forged key: {:?}",
        reports()
    );
    // The same key over TLS, or with plain HTTP allowed, works.
    let mut tls = get_from("/any", "203.0.113.9:4000", &[("authorization", &auth)]);
    tls.extensions_mut().insert(Tls);
    assert_eq!(send(&app, tls).await.status, StatusCode::OK);
    let lenient = self::app(&f, |b| b.allow_plain_http(true));
    assert_eq!(
        send(
            &lenient,
            get_from("/any", "203.0.113.9:4000", &[("authorization", &auth)])
        )
        .await
        .status,
        StatusCode::OK
    );
    // Behind a trusted proxy, what it forwards decides.
    let proxied = self::app(&f, |b| b.trusted_proxies(["10.0.0.0/8".parse().unwrap()]));
    let forwarded = |proto: &str| {
        get_from(
            "/any",
            "10.0.0.5:443",
            &[
                ("authorization", &auth),
                ("x-forwarded-proto", proto),
                ("x-forwarded-for", "198.51.100.7"),
            ],
        )
    };
    assert_eq!(send(&proxied, forwarded("http")).await.code(), "plain_http");
    assert_eq!(
        send(&proxied, forwarded("https")).await.status,
        StatusCode::OK
    );
    // A proxy that writes X-Forwarded-* passes the client's own `Forwarded` through: it is
    // not believed.
    let spoofed = get_from(
        "/any",
        "10.0.0.5:80",
        &[
            ("authorization", &auth),
            ("forwarded", "for=198.51.100.7;proto=https"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-for", "198.51.100.7"),
        ],
    );
    assert_eq!(send(&proxied, spoofed).await.code(), "plain_http");
    // Nor is a URI that claims https over a plain connection (an absolute-form target).
    let absolute = get_from(
        "https://api.example.com/any",
        "203.0.113.9:4000",
        &[("authorization", &auth)],
    );
    assert_eq!(send(&app, absolute).await.code(), "plain_http");
}

#[tokio::test]
async fn limits_answer_429_with_retry_after_and_the_ratelimit_fields() {
    let f = fixture();
    let app = app(&f, |b| b);
    let limited = f
        .keyring
        .issue(IssueRequest::new("a", "n").rate_limit(
            KeyLimit::new(NonZeroU32::MIN, std::time::Duration::from_secs(60)).unwrap(),
        ))
        .await
        .unwrap()
        .key;
    let auth = bearer(limited.expose_secret());
    let ok = send(&app, get_local("/any", &[("authorization", &auth)])).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.header("ratelimit"), Some(r#""key";r=0;t=60"#));
    let a = send(&app, get_local("/any", &[("authorization", &auth)])).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.header("retry-after"), Some("60"));
    assert_eq!(a.header("ratelimit-policy"), Some(r#""key";q=1;w=60"#));
    assert_eq!(a.header("ratelimit"), Some(r#""key";r=0;t=60"#));
    let problem = a.problem();
    assert_eq!(problem["type"], keymint::http::QUOTA_EXCEEDED_TYPE);
    assert_eq!(problem["violated-policies"], serde_json::json!(["key"]));
    assert_eq!(problem["code"], "rate_limited");

    let metered = f
        .keyring
        .issue(IssueRequest::new("a", "m").remaining_uses(4))
        .await
        .unwrap()
        .key;
    let auth = bearer(metered.expose_secret());
    assert_eq!(
        send(&app, get_local("/heavy", &[("authorization", &auth)]))
            .await
            .status,
        StatusCode::OK
    );
    let a = send(&app, get_local("/heavy", &[("authorization", &auth)])).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::TOO_MANY_REQUESTS, "usage_exhausted".to_owned()),
        "a route of cost 3 spends 3"
    );
    assert_eq!(
        a.header("retry-after"),
        None,
        "uses that never refill: waiting does not help"
    );
    let refilling = f
        .keyring
        .issue(
            IssueRequest::new("a", "r")
                .remaining_uses(1)
                .refill(keymint::ratelimit::Refill::new(1, TimeDelta::hours(1), 5).unwrap()),
        )
        .await
        .unwrap()
        .key;
    let auth_refilling = bearer(refilling.expose_secret());
    f.clock.advance(TimeDelta::minutes(30));
    let a = send(
        &app,
        get_local("/heavy", &[("authorization", &auth_refilling)]),
    )
    .await;
    assert_eq!(a.code(), "usage_exhausted");
    assert_eq!(
        a.header("retry-after"),
        Some("5400"),
        "cost 3 with 1 left: two more refills, the first in 30 minutes"
    );
    assert_eq!(
        send(&app, get_local("/any", &[("authorization", &auth)]))
            .await
            .status,
        StatusCode::OK
    );

    // The failed-attempt throttle: three wrong keys from one address, then refused.
    for _ in 0..3 {
        let forged = f.keyring.format().generate().unwrap();
        send(
            &app,
            get_from(
                "/any",
                "127.0.0.9:1",
                &[("x-api-key", forged.expose_secret())],
            ),
        )
        .await;
    }
    let forged = f.keyring.format().generate().unwrap();
    let a = send(
        &app,
        get_from(
            "/any",
            "127.0.0.9:1",
            &[("x-api-key", forged.expose_secret())],
        ),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::TOO_MANY_REQUESTS, "throttled".to_owned())
    );
    assert!(a.header("retry-after").is_some());
}

#[tokio::test]
async fn backend_failures_answer_503_with_retry_after() {
    let f = fixture();
    let app = app(&f, |b| {
        b.retry_after_unavailable(std::time::Duration::from_secs(7))
    });
    let key = f
        .keyring
        .issue(IssueRequest::new("a", "n"))
        .await
        .unwrap()
        .key;
    f.store.set_down(true);
    let a = send(
        &app,
        get_local("/any", &[("authorization", &bearer(key.expose_secret()))]),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable".to_owned()
        )
    );
    assert_eq!(a.header("retry-after"), Some("7"));
    assert_eq!(a.header("www-authenticate"), None);
}

#[tokio::test]
async fn the_handler_gets_the_key_but_not_the_credential_header() {
    let f = fixture();
    let key = f
        .keyring
        .issue(IssueRequest::new("acct_42", "n"))
        .await
        .unwrap()
        .key;
    let auth = bearer(key.expose_secret());
    let a = send(
        &app(&f, |b| b),
        get_local("/any", &[("authorization", &auth)]),
    )
    .await;
    assert_eq!(a.body, "acct_42|false");
    let kept = send(
        &app(&f, |b| b.keep_credential_header(true)),
        get_local("/any", &[("authorization", &auth)]),
    )
    .await;
    assert_eq!(kept.body, "acct_42|true");
}

#[tokio::test]
async fn optional_routes_pass_without_credentials_but_not_with_bad_ones() {
    let f = fixture();
    let app = app(&f, |b| b);
    assert_eq!(
        send(&app, get_local("/optional", &[])).await.body,
        "none|false"
    );
    let a = send(
        &app,
        get_local("/optional", &[("x-api-key", "sk_live_garbage")]),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let key = f
        .keyring
        .issue(IssueRequest::new("acct_42", "n"))
        .await
        .unwrap()
        .key;
    let a = send(
        &app,
        get_local("/optional", &[("x-api-key", key.expose_secret())]),
    )
    .await;
    assert_eq!(a.body, "acct_42|false");
}

#[tokio::test]
async fn preflights_pass_queries_need_opt_in_and_two_layers_are_refused() {
    let f = fixture();
    let app = app(&f, |b| b);
    let mut preflight = get_local(
        "/any",
        &[
            ("access-control-request-method", "GET"),
            ("origin", "https://x.example"),
        ],
    );
    *preflight.method_mut() = http::Method::OPTIONS;
    // A GET-only route: axum answers 405 itself (route layers run for routed methods only).
    assert_eq!(
        send(&app, preflight).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    // A handler that takes any method: the layer answers the preflight itself, 204 and no
    // body, without a key and without running the handler.
    let ran = Arc::new(Mutex::new(0));
    let counter = ran.clone();
    let auth = KeyAuth::builder(f.keyring.clone()).build();
    let any_method = Router::new().route(
        "/purge",
        axum::routing::any(move || {
            let counter = counter.clone();
            async move {
                *counter.lock().unwrap() += 1;
                "purged"
            }
        })
        .layer(auth.layer()),
    );
    for origin in [Some("https://x.example"), None] {
        let mut request = get_local("/purge", &[("access-control-request-method", "POST")]);
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        *request.method_mut() = http::Method::OPTIONS;
        let status = send(&any_method, request).await.status;
        let expected = if origin.is_some() {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::UNAUTHORIZED // not a browser's preflight: authenticated like any
        };
        assert_eq!(status, expected, "origin {origin:?}");
    }
    assert_eq!(
        *ran.lock().unwrap(),
        0,
        "the handler never ran without a key"
    );

    let key = f
        .keyring
        .issue(IssueRequest::new("acct_42", "n"))
        .await
        .unwrap()
        .key;
    let uri = format!("/any?api_key={}", key.expose_secret());
    assert_eq!(
        send(&app, get_local(&uri, &[])).await.status,
        StatusCode::UNAUTHORIZED
    );
    let by_query = self::app(&f, |b| b.query_parameter("api_key").unwrap());
    assert_eq!(
        send(&by_query, get_local(&uri, &[])).await.status,
        StatusCode::OK
    );
    // The key is taken out of the URI the handler (and anything after the layer) sees.
    let seen = Arc::new(Mutex::new(String::new()));
    let record = seen.clone();
    let auth = KeyAuth::builder(f.keyring.clone())
        .query_parameter("api_key")
        .unwrap()
        .build();
    let uri_echo = Router::new().route(
        "/q",
        get(
            move |uri: http::Uri,
                  axum::extract::OriginalUri(original): axum::extract::OriginalUri| {
                let record = record.clone();
                async move {
                    *record.lock().unwrap() = format!("{uri} {original}");
                    "ok"
                }
            },
        )
        .route_layer(auth.layer()),
    );
    let with_more = format!("/q?a=1&api_key={}&b=2", key.expose_secret());
    assert_eq!(
        send(&uri_echo, get_local(&with_more, &[])).await.status,
        StatusCode::OK
    );
    assert_eq!(
        &*seen.lock().unwrap(),
        "/q?a=1&b=2 /q?a=1&b=2",
        "neither the URI nor axum's OriginalUri keeps the key"
    );

    let a = send(
        &app,
        get_local("/twice", &[("x-api-key", key.expose_secret())]),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "misconfigured".to_owned()
        )
    );
}

#[tokio::test]
async fn hosts_can_replace_the_rejection_response() {
    let f = fixture();
    let app = app(&f, |b| {
        b.rejection(|r: &Rejection| {
            (r.code() == "missing_credential").then(|| {
                Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .body("log in first".to_owned())
                    .unwrap()
            })
        })
    });
    assert_eq!(
        send(&app, get_local("/any", &[])).await.body,
        "log in first"
    );
    let a = send(&app, get_local("/any", &[("x-api-key", "sk_live_garbage")])).await;
    assert_eq!(
        a.code(),
        "malformed",
        "None falls back to the standard response"
    );
}

/// A rate limiter whose backend is down.
#[derive(Debug)]
struct DownLimiter;

impl keymint::RateLimiter for DownLimiter {
    async fn check(
        &self,
        _key: &str,
        _policy: &Policy,
        _cost: u32,
    ) -> Result<keymint::Decision, keymint::RateLimitError> {
        Err(keymint::RateLimitError::Unavailable(Arc::new(
            std::io::Error::other("limiter down"),
        )))
    }
}

#[tokio::test]
async fn an_unavailable_limiter_and_an_overloaded_keyring_answer_503_with_retry_after() {
    let store = FaultyStore::new(MemoryStore::new());
    let keyring = Keyring::builder(keymint::KeyFormat::new("sk_live").unwrap(), store.clone())
        .hashes(HashPolicy::new(
            Argon2idHasher::builder()
                .m_cost(64)
                .t_cost(1)
                .build()
                .unwrap(),
        ))
        .rate_limiter(DownLimiter)
        .policy(Policy::single("p", Quota::per_hour(NonZeroU32::MIN)).unwrap())
        .default_policy("p")
        .uncached_concurrency(1, 0)
        .without_cache()
        .build()
        .unwrap();
    let auth = KeyAuth::builder(keyring.clone())
        .retry_after_unavailable(std::time::Duration::from_secs(3))
        .build();
    let app = Router::new().route("/any", get(echo).route_layer(auth.layer()));
    let key = keyring
        .issue(IssueRequest::new("a", "n"))
        .await
        .unwrap()
        .key;
    let header = bearer(key.expose_secret());

    let a = send(&app, get_local("/any", &[("authorization", &header)])).await;
    assert_eq!(
        (a.status, a.code()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "rate_limiter_unavailable".to_owned()
        )
    );
    assert_eq!(a.header("retry-after"), Some("3"));
    assert_eq!(a.header("www-authenticate"), None);

    // One verification holds the only uncached slot (its store read paused); with no
    // waiting room, the next is refused at once.
    store.inject(
        keymint::testing::StoreOp::Get,
        keymint::testing::Fault::Pause,
    );
    let held = tokio::spawn({
        let app = app.clone();
        let header = header.clone();
        async move { send(&app, get_local("/any", &[("authorization", &header)])).await }
    });
    store.wait_paused().await;
    let a = send(&app, get_local("/any", &[("authorization", &header)])).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded".to_owned())
    );
    assert_eq!(a.header("retry-after"), Some("3"));
    store.release();
    held.await.unwrap();
}

#[tokio::test]
async fn a_handler_asking_for_a_key_on_an_optional_route_answers_in_its_layers_words() {
    let f = fixture();
    async fn needs(_key: VerifiedKey) -> &'static str {
        "ran"
    }
    let auth = KeyAuth::builder(f.keyring.clone())
        .realm("example")
        .unwrap()
        .build();
    let app = Router::new().route("/x", get(needs).route_layer(auth.layer().optional()));
    let a = send(&app, get_local("/x", &[])).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.header("www-authenticate"),
        Some(r#"Bearer realm="example""#)
    );
}

#[tokio::test]
async fn the_verified_key_extractor_refuses_when_no_layer_ran() {
    let f = fixture();
    async fn needs(_key: VerifiedKey) -> &'static str {
        "ran"
    }
    let unguarded: Router = Router::new().route("/x", get(needs));
    let a = send(&unguarded, get_local("/x", &[])).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::UNAUTHORIZED, "missing_credential".to_owned())
    );
    drop(f);
}

/// On an optional route a query key is either verified and stripped or refused, wherever it
/// is in the query and however its name is spelled: a key the layer did not read would
/// reach the handler (and any logging after the layer) in the URI. It read only the first
/// 64 pairs, and took `api%5Fkey` for another parameter.
#[tokio::test]
async fn an_optional_route_never_hands_a_query_key_to_the_handler() {
    let f = fixture();
    let key = f
        .keyring
        .issue(IssueRequest::new("acct_42", "n"))
        .await
        .unwrap()
        .key;
    let auth = KeyAuth::builder(f.keyring.clone())
        .query_parameter("api_key")
        .unwrap()
        .build();
    let seen = Arc::new(Mutex::new(String::new()));
    let record = seen.clone();
    let app = Router::new().route(
        "/q",
        get(move |uri: http::Uri| {
            let record = record.clone();
            async move {
                *record.lock().unwrap() = uri.to_string();
                "ok"
            }
        })
        .route_layer(auth.layer().optional()),
    );
    let filler: Vec<String> = (0..64).map(|i| format!("p{i}=1")).collect();
    let uri = format!("/q?{}&api_key={}", filler.join("&"), key.expose_secret());
    let status = send(&app, get_local(&uri, &[])).await.status;
    assert!(
        !seen.lock().unwrap().contains(key.expose_secret()),
        "answered {status}; the handler saw the key in {}",
        seen.lock().unwrap()
    );
    assert_eq!(status, StatusCode::OK, "verified, and stripped");

    seen.lock().unwrap().clear();
    let uri = format!("/q?api%5Fkey={}", key.expose_secret());
    let status = send(&app, get_local(&uri, &[])).await.status;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(seen.lock().unwrap().is_empty(), "the handler never ran");
}
