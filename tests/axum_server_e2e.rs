//! The example server's router on an ephemeral loopback port, driven by a real HTTP
//! client (reqwest) and, for hostile bytes no client would send, by a raw socket.

#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../examples/axum_server/app.rs"]
#[allow(dead_code)]
mod app;
#[path = "../examples/axum_server/login.rs"]
mod login;
#[cfg(feature = "tokens")]
#[path = "../examples/axum_server/tokens.rs"]
mod tokens;

struct Server {
    keyring: keymint::MemoryKeyring,
    base: String,
    addr: SocketAddr,
    admin: String,
    http: reqwest::Client,
}

async fn start_with(
    configure: impl FnOnce(keymint::http::KeyAuthBuilder) -> keymint::http::KeyAuthBuilder,
) -> Server {
    let keyring = app::keyring().unwrap();
    let admin = app::admin_key(&keyring).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app::router_with(keyring.clone(), configure)
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Server {
        keyring,
        base: format!("http://{addr}"),
        addr,
        admin,
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    }
}

async fn start() -> Server {
    start_with(|b| b).await
}

impl Server {
    async fn create(&self, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/admin/keys", self.base))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        if status == StatusCode::CREATED {
            // The answer holds the plaintext key.
            assert_eq!(
                response
                    .headers()
                    .get("cache-control")
                    .map(|v| v.as_bytes()),
                Some(&b"no-store"[..]),
                "a new key's answer must not be cached"
            );
        }
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn key(&self, body: Value) -> String {
        let (status, created) = self.create(body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["key"].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }
}

async fn code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let problem: Value = response.json().await.unwrap();
    (
        status,
        problem["code"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_use_forbid_limit_revoke() {
    let s = start().await;
    let (status, created) = s
        .create(json!({"name": "reader", "scopes": ["users:read"], "rate_limit": {"limit": 2, "period_secs": 60}}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for field in ["key", "id", "hint", "type", "expires_at"] {
        assert!(created.get(field).is_some(), "{field} in {created}");
    }
    assert_eq!(created["type"], "sk_live");
    let key = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();

    let hello = s.get("/v1/hello", key).await;
    assert_eq!(hello.status(), StatusCode::OK);
    assert_eq!(hello.headers()["ratelimit"], r#""key";r=1;t=30"#);
    let body: Value = hello.json().await.unwrap();
    assert_eq!(body["hello"], "demo");

    // No users:write: 403, charged nothing.
    let write = s
        .http
        .post(format!("{}/v1/users", s.base))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        write.headers()["www-authenticate"],
        r#"Bearer realm="keymint example", error="insufficient_scope", scope="users:write""#
    );
    assert_eq!(
        code(write).await,
        (StatusCode::FORBIDDEN, "insufficient_scope".into())
    );

    assert_eq!(s.get("/v1/users", key).await.status(), StatusCode::OK);
    let limited = s.get("/v1/users", key).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "30");
    assert_eq!(code(limited).await.1, "rate_limited");

    let revoke = |id: String| {
        let s = &s;
        async move {
            s.http
                .delete(format!("{}/admin/keys/{id}", s.base))
                .bearer_auth(&s.admin)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(revoke(id.to_owned()).await, StatusCode::NO_CONTENT);
    assert_eq!(
        revoke(id.to_owned()).await,
        StatusCode::NO_CONTENT,
        "revoking twice is fine"
    );
    assert_eq!(
        revoke("AAAAAAAAAAAA".to_owned()).await,
        StatusCode::NOT_FOUND
    );
    let gone = s.get("/v1/hello", key).await;
    assert_eq!(
        gone.headers()["www-authenticate"],
        r#"Bearer realm="keymint example", error="invalid_token""#
    );
    assert_eq!(
        code(gone).await,
        (StatusCode::UNAUTHORIZED, "revoked".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_keys_publishable_keys_and_credentials() {
    let s = start().await;
    let test_key = s.key(json!({"name": "ci", "type": "sk_test"})).await;
    assert_eq!(
        code(s.get("/v1/hello", &test_key).await).await,
        (StatusCode::UNAUTHORIZED, "wrong_environment".into())
    );

    let pk = s
        .key(json!({"name": "web", "type": "pk_live", "scopes": ["users:read"], "allowed_origins": ["https://shop.example.com"]}))
        .await;
    let from = |origin: Option<&str>| {
        let mut request = s.http.get(format!("{}/v1/users", s.base)).bearer_auth(&pk);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    assert_eq!(
        from(Some("https://shop.example.com"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        code(from(Some("https://evil.example")).await.unwrap()).await,
        (StatusCode::FORBIDDEN, "origin_not_allowed".into())
    );
    assert_eq!(
        code(from(None).await.unwrap()).await.1,
        "origin_not_allowed"
    );
    // An unlisted publishable key is accepted from anywhere, as the example's type allows.
    let open = s.key(json!({"name": "any", "type": "pk_live"})).await;
    assert_eq!(s.get("/v1/hello", &open).await.status(), StatusCode::OK);

    // A secret key from a browser page.
    let secret = s.key(json!({"name": "srv"})).await;
    let browser = s
        .http
        .get(format!("{}/v1/hello", s.base))
        .bearer_auth(&secret)
        .header("origin", "https://shop.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(browser).await,
        (StatusCode::FORBIDDEN, "secret_key_in_browser".into())
    );

    // Both headers with the same key are fine; with different keys, 400.
    let same = s
        .http
        .get(format!("{}/v1/hello", s.base))
        .bearer_auth(&secret)
        .header("x-api-key", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::OK);
    let two = s
        .http
        .get(format!("{}/v1/hello", s.base))
        .bearer_auth(&secret)
        .header("x-api-key", &open)
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(two).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let none = s
        .http
        .get(format!("{}/v1/hello", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        none.headers()["www-authenticate"],
        r#"Bearer realm="keymint example""#
    );
    assert_eq!(
        code(none).await,
        (StatusCode::UNAUTHORIZED, "missing_credential".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_bad_bodies() {
    let s = start().await;
    let post = |body: &'static str, content_type: &'static str| {
        s.http
            .post(format!("{}/admin/keys", s.base))
            .bearer_auth(&s.admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_eq!(
        post("not json", "application/json").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post(r#"{"name":"x"}"#, "text/plain")
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
    for body in [
        json!({"name": "x", "colour": "red"}),
        json!({"name": "x", "type": "zk_live"}),
        json!({"name": "x", "type": "pk_live", "scopes": ["users:write"]}),
        json!({"name": "x", "type": "pk_live", "allowed_origins": ["shop.example.com"]}),
        json!({"name": "x", "allowed_origins": ["https://shop.example.com"]}),
        json!({"name": "x", "rate_limit": {"limit": 0, "period_secs": 60}}),
        json!({"name": "x", "rate_limit": {"limit": 5, "period_secs": -1}}),
        json!({"name": "x", "expires_in_secs": 0}),
        json!({"scopes": []}),
    ] {
        let (status, problem) = s.create(body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert!(problem["detail"].is_string());
    }
    // Only the administrator may manage keys.
    let user = s.key(json!({"name": "u"})).await;
    let attempt = s
        .http
        .post(format!("{}/admin/keys", s.base))
        .bearer_auth(&user)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(attempt).await,
        (StatusCode::FORBIDDEN, "insufficient_scope".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_forwarding_plain_http_is_refused() {
    let s = start_with(|b| b.trusted_proxies(["127.0.0.1/32".parse().unwrap()])).await;
    let issued = s
        .keyring
        .issue(keymint::IssueRequest::new("demo", "p"))
        .await
        .unwrap();
    let key = issued.key.expose_secret().to_owned();
    // Without a forwarded scheme the proxy's own connection (plain) decides.
    assert_eq!(code(s.get("/v1/hello", &key).await).await.1, "plain_http");
    let via_proxy = |proto: &'static str| {
        s.http
            .get(format!("{}/v1/hello", s.base))
            .bearer_auth(&key)
            .header("x-forwarded-proto", proto)
            .header("x-forwarded-for", "198.51.100.7")
            .send()
    };
    assert_eq!(
        code(via_proxy("http").await.unwrap()).await,
        (StatusCode::FORBIDDEN, "plain_http".into())
    );
    assert_eq!(via_proxy("https").await.unwrap().status(), StatusCode::OK);
}

/// Sends `request` as raw bytes and returns the status the server answers (0 if it closed
/// the connection without one), within a generous ceiling.
async fn raw(addr: SocketAddr, request: &[u8]) -> u16 {
    let exchange = async {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer).await;
        let text = String::from_utf8_lossy(&answer);
        text.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .expect("a hostile request must be answered (or dropped) within 5 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_headers_are_refused_without_crash_or_hang() {
    let s = start().await;
    let head = |extra: &[u8]| {
        let mut r = b"GET /v1/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
        r.extend_from_slice(extra);
        r.extend_from_slice(b"\r\n");
        r
    };
    let huge = format!("X-API-Key: {}\r\n", "A".repeat(64 * 1024));
    let many: String = (0..300).map(|i| format!("X-API-Key: k{i}\r\n")).collect();
    for (name, request) in [
        ("64 KiB value", head(huge.as_bytes())),
        (
            "invalid UTF-8",
            head(b"X-API-Key: sk_live_\xff\xfe\xfd\r\n"),
        ),
        ("NUL byte", head(b"X-API-Key: sk_live_\x00abc\r\n")),
        ("many repeated headers", head(many.as_bytes())),
        (
            "bearer of control characters",
            head(b"Authorization: Bearer \x01\x02\r\n"),
        ),
        (
            "a bare garbage key",
            head(b"Authorization: Bearer sk_live_x_y\r\n"),
        ),
    ] {
        let status = raw(s.addr, &request).await;
        assert!(
            [400, 401, 431].contains(&status),
            "{name}: answered {status}"
        );
    }
    // And the server still works.
    let key = s.key(json!({"name": "after"})).await;
    assert_eq!(s.get("/v1/hello", &key).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_login_signs_its_cookie_and_the_portal_trusts_only_that() {
    let s = start().await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let login = |body: &'static str| {
        http.post(format!("{}/login", s.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let response = login("user=ada").await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/portal");
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("demo_user=ada."), "{cookie}");

    let keys = |cookie: Option<String>| {
        let mut request = http.get(format!("{}/portal/api/keys", s.base));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    assert_eq!(
        keys(Some(cookie.clone())).await.unwrap().status(),
        StatusCode::OK
    );
    // Another name under ada's tag, a cut tag, no cookie: not logged in.
    let forged = cookie.replacen("=ada.", "=bob.", 1);
    let cut = cookie[..cookie.len() - 2].to_owned();
    for cookie in [Some(forged), Some(cut), Some("demo_user=ada".into()), None] {
        assert_eq!(
            keys(cookie.clone()).await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{cookie:?}"
        );
    }
    for bad in ["user=", "user=a%20b", "user=%3Cscript%3E"] {
        assert_eq!(
            login(bad).await.unwrap().status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
    }
    // Logging in as "admin" (anybody may: it is a demo) reaches none of the admin API's keys.
    let admin_login = login("user=admin").await.unwrap();
    let admin_cookie = admin_login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let listed: Value = keys(Some(admin_cookie))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["keys"],
        json!([]),
        "the admin key is not the portal user's"
    );

    let page = http.get(format!("{}/portal", s.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("<title>API keys</title>")
    );

    // A key made in the portal is the portal user's, and works on the API.
    let created = http
        .post(format!("{}/portal/api/keys", s.base))
        .header("cookie", cookie)
        .header("x-keymint-portal", "1")
        .json(&json!({"name": "from the portal", "scopes": ["users:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let key = created["key"].as_str().unwrap();
    let hello: Value = s.get("/v1/hello", key).await.json().await.unwrap();
    assert_eq!(
        hello["hello"], "user:ada",
        "portal users own keys under a name of their own"
    );
    assert_eq!(s.get("/v1/users", key).await.status(), StatusCode::OK);
}

#[cfg(feature = "tokens")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_exchanged_for_a_narrower_token_that_works_until_its_parent_is_revoked() {
    let s = start().await;
    let (status, created) = s
        .create(json!({"name": "backend", "scopes": ["users:read", "users:write"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let key = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();

    let exchange = |body: Option<Value>, credential: String| {
        let mut request = s
            .http
            .post(format!("{}/v1/tokens", s.base))
            .bearer_auth(credential);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let answer = exchange(
        Some(json!({"scopes": ["users:read"], "ttl_secs": 300})),
        key.to_owned(),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), StatusCode::CREATED);
    let derived: Value = answer.json().await.unwrap();
    let token = derived["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("v4.public."));
    assert!(derived["expires_at"].is_string());

    // The token works where a key does, and only as far as its scopes reach.
    assert_eq!(s.get("/v1/hello", &token).await.status(), StatusCode::OK);
    assert_eq!(s.get("/v1/users", &token).await.status(), StatusCode::OK);
    let write = s
        .http
        .post(format!("{}/v1/users", s.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(write).await,
        (StatusCode::FORBIDDEN, "insufficient_scope".to_owned())
    );
    // No body: all of the key's scopes, the default lifetime.
    let all = exchange(None, key.to_owned()).await.unwrap();
    assert_eq!(all.status(), StatusCode::CREATED);
    // Wider than the key, or a token deriving another: 422.
    for (body, credential) in [
        (json!({"scopes": ["admin:keys"]}), key.to_owned()),
        (json!({"ttl_secs": 999_999}), key.to_owned()),
        (json!({}), token.clone()),
    ] {
        let refused = exchange(Some(body.clone()), credential).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let unknown = exchange(Some(json!({"scope": ["x"]})), key.to_owned())
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Revoking the key stops its tokens.
    let revoked = s
        .http
        .delete(format!("{}/admin/keys/{id}", s.base))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let after = s.get("/v1/hello", &token).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code(after).await.1, "revoked");
}
