//! A stand-in for the host's own login, so that the self-service portal has somebody to
//! serve. **Not authentication**: anybody may log in as anybody by typing a name. A real
//! host resolves the portal user from its own session instead (see
//! [`keymint::http::portal::OwnerResolver`]).
//!
//! `GET /login` shows a form, `POST /login` sets a cookie `demo_user=<name>.<tag>` whose
//! HMAC tag (a key drawn at start-up) keeps a browser from editing the name afterwards,
//! and redirects to `/portal`; `POST /logout` clears it.

use axum::extract::Form;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use hmac::{Hmac, KeyInit, Mac};
use keymint::http::portal::{Allowance, OwnerResolver, PortalUser};
use keymint::{Scope, TimeDelta};
use serde::Deserialize;
use sha2::Sha256;
use std::sync::Arc;

const COOKIE: &str = "demo_user";

/// Signs and checks the demo session cookie.
#[derive(Clone)]
pub(crate) struct DemoLogin {
    key: Arc<[u8; 32]>,
}

impl DemoLogin {
    pub(crate) fn new() -> Self {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source works");
        Self { key: Arc::new(key) }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(self.key.as_slice()).expect("any key length works")
    }

    fn cookie_value(&self, user: &str) -> String {
        let mut mac = self.mac();
        mac.update(user.as_bytes());
        let tag: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{user}.{tag}")
    }

    /// The user named by a well-signed cookie in `headers`.
    fn user(&self, headers: &HeaderMap) -> Option<String> {
        let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
        let value = cookies
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)?
            .1;
        let (user, tag) = value.rsplit_once('.')?;
        let tag = decode_hex(tag)?;
        let mut mac = self.mac();
        mac.update(user.as_bytes());
        // verify_slice compares in constant time.
        mac.verify_slice(&tag).ok()?;
        Some(user.to_owned())
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    // Strict: `from_str_radix` alone would also take a leading `+`.
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What every demo user may do: secret keys, live or test, with the example's user scopes,
/// living at most 90 days, at most 10 at a time.
fn allowance() -> Allowance {
    let scope = |s| Scope::new(s).expect("a valid scope");
    Allowance::new()
        .key_types(["sk_live", "sk_test"])
        .scopes([scope("users:read"), scope("users:write")])
        .max_lifetime(TimeDelta::days(90))
        .max_keys(10)
}

impl OwnerResolver for DemoLogin {
    async fn resolve(&self, parts: &axum::http::request::Parts) -> Option<PortalUser> {
        let user = self.user(&parts.headers)?;
        // Each demo user owns their own keys, under an owner name of their own (`user:ada`),
        // so that logging in as "admin" or "demo" reaches none of the keys the admin API
        // issues. A real host might use a team or account id as the owner and the person
        // as the actor.
        Some(PortalUser::new(format!("user:{user}"), user, allowance()))
    }
}

pub(crate) async fn form() -> Html<&'static str> {
    Html(LOGIN_HTML)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    user: String,
}

/// A user name: 1 to 64 letters, digits, `-` or `_` (so it needs no escaping anywhere).
fn valid_user(user: &str) -> bool {
    (1..=64).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) async fn log_in(login: DemoLogin, Form(form): Form<LoginForm>) -> Response {
    if !valid_user(&form.user) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "a user name is 1 to 64 letters, digits, - or _",
        )
            .into_response();
    }
    // HttpOnly: no script reads it; SameSite=Lax: other sites' requests do not carry it
    // (the portal's CSRF header is the defence that does not depend on this). A real host
    // serving over TLS also sets Secure.
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=28800",
        login.cookie_value(&form.user)
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/portal")).into_response()
}

pub(crate) async fn log_out() -> Response {
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

const LOGIN_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo login</title>
</head>
<body style="font: 15px/1.5 system-ui, sans-serif; max-width: 28rem; margin: 3rem auto; padding: 0 1rem">
<h1 style="font-size: 1.4rem">Demo login</h1>
<p><strong>This is not authentication.</strong> It stands in for your own login: any name
logs in as that user. Each user sees only their own keys.</p>
<form method="post" action="/login">
  <label for="user">User name</label><br>
  <input id="user" name="user" required maxlength="64" pattern="[A-Za-z0-9_\-]+" autofocus>
  <button type="submit" id="login">Log in</button>
</form>
</body>
</html>
"#;
