//! The load-test server of `benches/http/run.sh`: the example's `GET /v1/hello` four ways,
//! each on its own loopback port, so one load generator measures them side by side.
//!
//! * `protected`: the route behind keymint's layer (the key is verified from the cache);
//! * `bare`: the same handler without the layer;
//! * `refuse`: a bare handler answering 401, the baseline for keymint refusing garbage;
//! * `passthrough`: the bare handler behind a route layer that does nothing but what every
//!   layer of this shape does (clone the inner service, box the future), the floor any
//!   authenticating route layer starts from.
//!
//! Prints `ports <protected> <bare> <refuse> <passthrough>` and `key <key>` on stdout, then
//! serves until killed. Build with `--release`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

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
    let passthrough = serve(Router::new().route(
        "/v1/hello",
        get(hello_bare).route_layer(tower::layer::layer_fn(|inner| PassThrough { inner })),
    ))
    .await?;
    println!("ports {protected} {bare} {refusing} {passthrough}");
    println!("key {}", key.expose_secret());
    std::future::pending::<()>().await;
    Ok(())
}

/// A route layer's service that only forwards: the clone of the inner service and the boxed
/// future that keymint's `KeyAuthService` (like most tower layers that await before calling
/// inner) also pays.
#[derive(Clone)]
struct PassThrough<S> {
    inner: S,
}

impl<S, B> tower::Service<axum::http::Request<B>> for PassThrough<S>
where
    S: tower::Service<axum::http::Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { inner.call(req).await })
    }
}
