//! The example server's portal driven in headless Chromium over WebDriver: log in, create a
//! key, read it from the page once, call `/v1/hello` with it, roll it, use the new key,
//! revoke both, and see `/v1/hello` answer 401.
//!
//! `#[ignore]`d so a plain `cargo test` passes without a browser; CI runs it with
//! `--include-ignored` and `KEYMINT_TEST_WEBDRIVER_URL` pointing at a chromedriver that
//! `.ci/services.sh` starts (a missing URL fails it). With `KEYMINT_PORTAL_SCREENSHOT` set
//! to a path it also writes a screenshot of the page there (see `.ci/screenshot.sh`).

#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use keymint::store::PageRequest;
use reqwest::StatusCode;
use serde_json::json;

#[path = "../examples/axum_server/app.rs"]
#[allow(dead_code)]
mod app;
#[path = "../examples/axum_server/login.rs"]
mod login;
#[cfg(feature = "tokens")]
#[path = "../examples/axum_server/tokens.rs"]
mod tokens;

const WEBDRIVER_VAR: &str = "KEYMINT_TEST_WEBDRIVER_URL";
const SCREENSHOT_VAR: &str = "KEYMINT_PORTAL_SCREENSHOT";
/// Long enough for a cold Chromium on a busy 2-core machine; a broken page fails here
/// instead of hanging.
const PATIENCE: Duration = Duration::from_secs(20);

async fn browser() -> Client {
    let url = std::env::var(WEBDRIVER_VAR).unwrap_or_else(|_| {
        panic!("{WEBDRIVER_VAR} is not set: start chromedriver and export its URL (http://127.0.0.1:PORT)")
    });
    let profile = std::env::temp_dir().join(format!("keymint-chromium-{}", std::process::id()));
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": std::env::var("KEYMINT_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-quic", "--no-first-run",
                "--window-size=1280,900", "--hide-scrollbars",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&url)
        .await
        .expect("a WebDriver session")
}

/// Polls `probe` until it answers `Some`, failing after [`PATIENCE`].
async fn until<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn text_of(browser: &Client, css: &str) -> Option<String> {
    browser
        .find(Locator::Css(css))
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// The key shown in the one-time panel, once it is there.
async fn shown_key(browser: &Client) -> String {
    until("the one-time key", || async {
        let panel = browser.find(Locator::Id("new-key")).await.ok()?;
        if !panel.is_displayed().await.ok()? {
            return None;
        }
        text_of(browser, "#new-key-value")
            .await
            .filter(|k| k.starts_with("sk_live_"))
    })
    .await
}

/// Clicks `id`'s button and then its in-page confirmation.
async fn click_confirmed(browser: &Client, id: &str) {
    browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Id(&format!("{id}-confirm")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn status_in_page(browser: &Client, id: &str) -> Option<String> {
    text_of(browser, &format!("tr[data-id='{id}'] .status")).await
}

#[tokio::test]
#[ignore = "needs chromedriver and Chromium: set KEYMINT_TEST_WEBDRIVER_URL (CI does)"]
async fn an_owner_creates_rolls_and_revokes_a_key_in_the_browser() {
    let keyring = app::keyring().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app::router(keyring.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let base = format!("http://{addr}");
    let browser = browser().await;
    // Run the session in a task so that a failed assertion still closes the browser.
    let outcome = tokio::spawn(drive(browser.clone(), keyring, base)).await;
    browser.close().await.unwrap();
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

async fn drive(browser: Client, keyring: keymint::MemoryKeyring, base: String) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let hello = |key: String| {
        let http = http.clone();
        let url = format!("{base}/v1/hello");
        async move {
            http.get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
        }
    };

    {
        // Log in (the example's demo stand-in for the host's login).
        browser.goto(&format!("{base}/login")).await.unwrap();
        let user = browser.find(Locator::Id("user")).await.unwrap();
        user.send_keys("ada").await.unwrap();
        browser
            .find(Locator::Id("login"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        until("the portal after login", || async {
            let url = browser.current_url().await.ok()?;
            (url.path() == "/portal").then_some(())
        })
        .await;
        until("the empty key list", || async {
            text_of(&browser, "#keys")
                .await
                .filter(|t| t.contains("No keys yet"))
        })
        .await;

        // Create a key with the keyboard alone: type into labelled fields, Enter submits.
        let name = browser
            .find(Locator::Css("label[for='create-name']"))
            .await
            .unwrap();
        assert_eq!(name.text().await.unwrap(), "Name");
        browser
            .find(Locator::Id("create-scopes"))
            .await
            .unwrap()
            .send_keys("users:read")
            .await
            .unwrap();
        let name = browser.find(Locator::Id("create-name")).await.unwrap();
        name.send_keys("CI deploy").await.unwrap();
        name.send_keys(&char::from(Key::Enter).to_string())
            .await
            .unwrap();
        let first = shown_key(&browser).await;
        assert_eq!(hello(first.clone()).await, StatusCode::OK);
        // Focus went to the copy button, so a keyboard user can copy at once.
        let focused = browser.active_element().await.unwrap();
        assert_eq!(
            focused.attr("id").await.unwrap().as_deref(),
            Some("copy-key")
        );
        let warning = text_of(&browser, "#new-key").await.unwrap();
        assert!(warning.contains("will not be shown again"), "{warning}");

        // Once: dismissed, the key is gone from the page, and a reload does not bring it back.
        browser
            .find(Locator::Id("dismiss-key"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert!(!browser.source().await.unwrap().contains(&first));
        browser.refresh().await.unwrap();
        until("the list after reload", || async {
            text_of(&browser, "#keys")
                .await
                .filter(|t| t.contains("CI deploy"))
        })
        .await;
        assert!(!browser.source().await.unwrap().contains(&first));

        let owned = keyring
            .list_by_owner("user:ada", &PageRequest::new(10))
            .await
            .unwrap()
            .items;
        assert_eq!(owned.len(), 1);
        let first_id = owned[0].id.to_string();
        assert_eq!(
            status_in_page(&browser, &first_id).await.as_deref(),
            Some("active")
        );

        // Roll: the page shows the new key once; both work during the grace period.
        click_confirmed(&browser, &format!("roll-{first_id}")).await;
        let second = shown_key(&browser).await;
        assert_ne!(second, first);
        assert_eq!(hello(second.clone()).await, StatusCode::OK);
        assert_eq!(hello(first.clone()).await, StatusCode::OK);
        let second_id = keyring
            .get(&owned[0].id)
            .await
            .unwrap()
            .successor
            .unwrap()
            .to_string();
        until("the rolled status", || async {
            status_in_page(&browser, &first_id)
                .await
                .filter(|s| s == "rolled")
        })
        .await;
        if let Ok(path) = std::env::var(SCREENSHOT_VAR) {
            browser.set_window_size(1280, 1000).await.unwrap();
            std::fs::write(&path, browser.screenshot().await.unwrap()).unwrap();
        }
        browser
            .find(Locator::Id("dismiss-key"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();

        // Revoke the new key and the old one (still in its grace period): both answer 401.
        click_confirmed(&browser, &format!("revoke-{second_id}")).await;
        until("the revoked status", || async {
            status_in_page(&browser, &second_id)
                .await
                .filter(|s| s == "revoked")
        })
        .await;
        assert_eq!(hello(second).await, StatusCode::UNAUTHORIZED);
        click_confirmed(&browser, &format!("revoke-{first_id}")).await;
        until("the old key's revoked status", || async {
            status_in_page(&browser, &first_id)
                .await
                .filter(|s| s == "revoked")
        })
        .await;
        assert_eq!(hello(first).await, StatusCode::UNAUTHORIZED);
        let message = text_of(&browser, "#message").await.unwrap_or_default();
        assert!(message.is_empty(), "the page reported an error: {message}");
    }
}
