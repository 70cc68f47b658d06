//! The load-test server of `benches/http/run.sh`: the example's `GET /v1/hello` three ways,
//! each on its own loopback port, so one load generator measures them side by side.
//!
//! * `protected`: the route behind keymint's layer (the key is verified from the cache);
//! * `bare`: the same handler without the layer;
//! * `refuse`: a bare handler answering 401, the baseline for keymint refusing garbage.
//!
//! Prints `ports <protected> <bare> <refuse>` and `key <key>` on stdout, then serves until
//! killed. Build with `--release`.

use std::net::SocketAddr;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use keymint::http::KeyAuth;
use keymint::{IssueRequest, KeyFormat, Keyring, MemoryStore, VerifiedKey};

async fn hello_key(key: VerifiedKey) -> String {
    format!("{{\"hello\":\"{}\"}}", key.owner())
}

/// The protected handler's work without the key: the same formatting of an owner that the
/// compiler cannot fold into a constant.
async fn hello_bare() -> String {
    let owner = std::hint::black_box("acct_42");
    format!("{{\"hello\":\"{owner}\"}}")
}

async fn refuse() -> (StatusCode, &'static str) {
    (StatusCode::UNAUTHORIZED, "{\"code\":\"invalid\"}")
}

async fn serve(router: Router) -> Result<u16, std::io::Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Ok(port)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keyring = Keyring::builder(KeyFormat::new("sk_live")?, MemoryStore::new()).build()?;
    let key = keyring
        .issue(IssueRequest::new("acct_42", "load"))
        .await?
        .key;
    let auth = KeyAuth::builder(keyring).build();
    let protected =
        serve(Router::new().route("/v1/hello", get(hello_key).route_layer(auth.layer()))).await?;
    let bare = serve(Router::new().route("/v1/hello", get(hello_bare))).await?;
    let refusing = serve(Router::new().route("/v1/hello", get(refuse))).await?;
    println!("ports {protected} {bare} {refusing}");
    println!("key {}", key.expose_secret());
    std::future::pending::<()>().await;
    Ok(())
}
