//! Keys bound to a client certificate, over real mutual TLS: an axum server on a loopback
//! port behind tokio-rustls (the `ring` provider), set up as the guide shows, with a CA,
//! two client certificates and a server certificate made at run time (rcgen). Also the
//! layer's rules for where a certificate is believed from, through `oneshot`.

#![cfg(all(feature = "axum", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::header::{AUTHORIZATION, HOST, WWW_AUTHENTICATE};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use keymint::http::{ClientCertificate, KeyAuth, PeerAddr, Tls};
use keymint::{
    Argon2idHasher, CertificateBinding, HashPolicy, IssueRequest, KeyFormat, Keyring,
    MemoryKeyring, MemoryStore, VerifiedKey,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tower::ServiceExt as _;

/// rustls with `ring`: it builds wherever a C compiler does (aws-lc-rs needs more of a
/// toolchain). rustls 0.23.48 deprecates it for lacking post-quantum key exchange, which a
/// loopback test with throwaway keys does not need.
fn provider() -> Arc<CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate and its private key.
struct Identity {
    der: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

/// The test PKI: a CA that signs the server's certificate and two clients'.
struct Pki {
    ca: CertificateDer<'static>,
    server: Identity,
    alice: Identity,
    bob: Identity,
    /// Signed by nobody the server trusts.
    stranger: Identity,
}

fn leaf(
    name: &str,
    usage: ExtendedKeyUsagePurpose,
    issuer: Option<&CertifiedIssuer<'_, KeyPair>>,
) -> Identity {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new([name.to_owned()]).unwrap();
    params.extended_key_usages = vec![usage];
    let cert = match issuer {
        Some(ca) => params.signed_by(&key, ca).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    Identity {
        der: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    }
}

fn pki() -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let client = ExtendedKeyUsagePurpose::ClientAuth;
    Pki {
        ca: ca.der().clone(),
        server: leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth, Some(&ca)),
        alice: leaf("alice.clients.example", client.clone(), Some(&ca)),
        bob: leaf("bob.clients.example", client.clone(), Some(&ca)),
        stranger: leaf("stranger.example", client, None),
    }
}

fn roots(ca: &CertificateDer<'static>) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    Arc::new(roots)
}

/// The server's TLS configuration: client certificates are asked for and checked against
/// the CA, but a client without one may connect too (its unbound keys still work).
fn server_config(pki: &Pki) -> rustls::ServerConfig {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(&pki.ca), provider())
        .allow_unauthenticated()
        .build()
        .unwrap();
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![pki.server.der.clone()],
            PrivateKeyDer::Pkcs8(pki.server.key.clone_key()),
        )
        .unwrap()
}

/// Accepts TLS connections and serves `app` on each, every request carrying the peer's
/// address, the TLS marker and the client certificate the connection presented.
async fn serve(listener: TcpListener, acceptor: TlsAcceptor, app: Router) {
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            continue;
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|der| ClientCertificate::from_der(der).ok());
            let app = app.map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                req.extensions_mut().insert(Tls);
                if let Some(certificate) = &certificate {
                    req.extensions_mut().insert(certificate.clone());
                }
                req
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                .await;
        });
    }
}

fn keyring() -> MemoryKeyring {
    Keyring::builder(KeyFormat::new("sk_live").unwrap(), MemoryStore::new())
        .hashes(HashPolicy::new(
            Argon2idHasher::builder()
                .m_cost(64)
                .t_cost(1)
                .build()
                .unwrap(),
        ))
        .build()
        .unwrap()
}

fn app(keyring: MemoryKeyring) -> Router {
    let auth = KeyAuth::builder(keyring).build();
    Router::new().route(
        "/v1/hello",
        get(|key: VerifiedKey| async move { format!("hello {}", key.owner()) })
            .route_layer(auth.layer()),
    )
}

/// A running mutual-TLS server.
struct Server {
    addr: SocketAddr,
    ca: CertificateDer<'static>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(pki: &Pki, keyring: MemoryKeyring) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server_config(pki)));
    let task = tokio::spawn(serve(listener, acceptor, app(keyring)));
    Server {
        addr,
        ca: pki.ca.clone(),
        task,
    }
}

/// What the server answered.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: String,
}

impl Answer {
    fn code(&self) -> String {
        serde_json::from_str::<Value>(&self.body).unwrap()["code"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

impl Server {
    /// `GET /v1/hello` with `key`, over a new TLS connection presenting `identity`'s
    /// certificate (or none).
    async fn get(&self, key: &str, identity: Option<&Identity>) -> Result<Answer, String> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(&self.ca));
        let config = match identity {
            Some(id) => config
                .with_client_auth_cert(
                    vec![id.der.clone()],
                    PrivateKeyDer::Pkcs8(id.key.clone_key()),
                )
                .unwrap(),
            None => config.with_no_client_auth(),
        };
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("http: {e}"))?;
        tokio::spawn(connection);
        let request = Request::get("/v1/hello")
            .header(HOST, "localhost")
            .header(AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status();
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(Body::new(response.into_body()), 64 * 1024)
            .await
            .unwrap();
        Ok(Answer {
            status,
            challenge,
            body: String::from_utf8(body.to_vec()).unwrap(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mutual_tls_a_bound_key_needs_its_own_certificate_and_an_unbound_key_does_not() {
    let pki = pki();
    let keyring = keyring();
    let bound = keyring
        .issue(
            IssueRequest::new("acct_alice", "alice's job")
                .certificate_bindings([CertificateBinding::certificate(&pki.alice.der).unwrap()]),
        )
        .await
        .unwrap();
    let unbound = keyring
        .issue(IssueRequest::new("acct_plain", "plain"))
        .await
        .unwrap();
    let server = start(&pki, keyring).await;
    let bound = bound.key.expose_secret();

    let ok = server.get(bound, Some(&pki.alice)).await.unwrap();
    assert_eq!(
        (ok.status, ok.body.as_str()),
        (StatusCode::OK, "hello acct_alice")
    );

    let missing = server.get(bound, None).await.unwrap();
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.code(), "certificate_required");
    assert_eq!(
        missing.challenge.as_deref(),
        Some(r#"Bearer realm="api", error="invalid_token""#),
        "RFC 8705 §3: answered as an invalid token"
    );

    // Bob's certificate is valid (the same CA): the TLS handshake succeeds, the key does not.
    let other = server.get(bound, Some(&pki.bob)).await.unwrap();
    assert_eq!(other.status, StatusCode::UNAUTHORIZED);
    assert_eq!(other.code(), "certificate_mismatch");
    assert_eq!(
        other.challenge.as_deref(),
        Some(r#"Bearer realm="api", error="invalid_token""#)
    );

    let plain = unbound.key.expose_secret();
    for identity in [Some(&pki.bob), None] {
        let ok = server.get(plain, identity).await.unwrap();
        assert_eq!(
            (ok.status, ok.body.as_str()),
            (StatusCode::OK, "hello acct_plain")
        );
    }

    // A certificate from outside the server's CA never reaches the layer.
    assert!(server.get(plain, Some(&pki.stranger)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mutual_tls_a_public_key_binding_matches_any_certificate_for_that_key() {
    let pki = pki();
    let keyring = keyring();
    let issued = keyring
        .issue(
            IssueRequest::new("acct_alice", "by key")
                .certificate_bindings([CertificateBinding::public_key_of(&pki.alice.der).unwrap()]),
        )
        .await
        .unwrap();
    let server = start(&pki, keyring).await;
    let key = issued.key.expose_secret();
    assert_eq!(
        server.get(key, Some(&pki.alice)).await.unwrap().status,
        StatusCode::OK
    );
    assert_eq!(
        server.get(key, Some(&pki.bob)).await.unwrap().code(),
        "certificate_mismatch"
    );
}

/// The layer on its own, with the extensions an acceptor would insert.
async fn oneshot(app: &Router, key: &str, peer: &str, cert: Option<&ClientCertificate>) -> Answer {
    let mut request = Request::get("/v1/hello")
        .header(AUTHORIZATION, format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(PeerAddr(peer.parse().unwrap()));
    if let Some(cert) = cert {
        request.extensions_mut().insert(cert.clone());
    }
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap();
    Answer {
        status,
        challenge: None,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

#[tokio::test]
async fn a_client_certificate_marks_the_connection_as_tls() {
    let pki = pki();
    let keyring = keyring();
    let issued = keyring
        .issue(
            IssueRequest::new("acct_alice", "bound")
                .certificate_bindings([CertificateBinding::certificate(&pki.alice.der).unwrap()]),
        )
        .await
        .unwrap();
    let app = app(keyring);
    let alice = ClientCertificate::from_der(&pki.alice.der).unwrap();
    let key = issued.key.expose_secret();
    // A remote peer without `Tls` is plain HTTP; with a client certificate it cannot be.
    let plain = oneshot(&app, key, "203.0.113.9:4000", None).await;
    assert_eq!(plain.status, StatusCode::FORBIDDEN, "{}", plain.body);
    let tls = oneshot(&app, key, "203.0.113.9:4000", Some(&alice)).await;
    assert_eq!(tls.status, StatusCode::OK, "{}", tls.body);
}

#[tokio::test]
async fn a_certificate_on_a_trusted_proxys_connection_is_not_the_clients() {
    let pki = pki();
    let keyring = keyring();
    let issued = keyring
        .issue(
            IssueRequest::new("acct_alice", "bound")
                .certificate_bindings([CertificateBinding::certificate(&pki.alice.der).unwrap()]),
        )
        .await
        .unwrap();
    let auth = KeyAuth::builder(keyring)
        .trusted_proxies(["10.0.0.0/8".parse().unwrap()])
        .build();
    let app: Router = Router::new().route(
        "/v1/hello",
        get(|| async { "hello" }).route_layer(auth.layer()),
    );
    // The proxy presented Alice's certificate on its own connection (a misconfiguration, or
    // a proxy that holds it): it proves nothing about the client behind the proxy.
    let alice = ClientCertificate::from_der(&pki.alice.der).unwrap();
    let mut request = Request::get("/v1/hello")
        .header(
            AUTHORIZATION,
            format!("Bearer {}", issued.key.expose_secret()),
        )
        .header("x-forwarded-for", "198.51.100.7")
        .header("x-forwarded-proto", "https")
        .body(Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(PeerAddr("10.0.0.1:443".parse().unwrap()));
    request.extensions_mut().insert(alice);
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "certificate_required");
}

#[tokio::test]
async fn hidden_reasons_hide_a_missing_or_wrong_certificate_too() {
    let pki = pki();
    let keyring = keyring();
    let issued = keyring
        .issue(
            IssueRequest::new("acct_alice", "bound")
                .certificate_bindings([CertificateBinding::certificate(&pki.alice.der).unwrap()]),
        )
        .await
        .unwrap();
    let auth = KeyAuth::builder(keyring).hide_reasons(true).build();
    let app: Router = Router::new().route(
        "/v1/hello",
        get(|| async { "hello" }).route_layer(auth.layer()),
    );
    let bob = ClientCertificate::from_der(&pki.bob.der).unwrap();
    let key = issued.key.expose_secret();
    for cert in [None, Some(&bob)] {
        let answer = oneshot(&app, key, "127.0.0.1:4000", cert).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.code(), "invalid", "{cert:?}");
    }
}
