//! An API protected by keymint: `cargo run --example axum_server --features axum`.
//!
//! Listens on `KEYMINT_ADDR` (default 127.0.0.1:3000), prints one line `admin key: <key>`
//! on stdout once the listener is bound, and logs to stderr only. See README, "Protecting
//! an axum service", for a curl session, and "Self-service keys" for the portal at
//! `/portal` (log in at `/login`: a demo stand-in for your own login). With
//! `--features axum,tokens`, `POST /v1/tokens` exchanges a key for a short-lived token.

use std::net::SocketAddr;

mod app;
mod login;
#[cfg(feature = "tokens")]
mod tokens;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let addr = std::env::var("KEYMINT_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let keyring = app::keyring()?;
    let admin = app::admin_key(&keyring).await?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    println!("admin key: {admin}");
    drop(admin);
    let app = app::router(keyring).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
