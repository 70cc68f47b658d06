//! The HTTP layer's credential extraction and transport checks, through the public tower
//! layer (`tower::ServiceExt::oneshot`), on arbitrary header sets, queries, methods,
//! transports and configurations: no panic; a status among those the layer can give, 204
//! exactly for CORS preflights (never reaching the handler); success only for a request
//! that carried the valid key, with the credential removed before the handler; never the
//! key's secret in a response.
#![no_main]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use http::{Method, Request, Response};
use keymint::http::{KeyAuth, PeerAddr, Tls, X_API_KEY};
use keymint::{
    HashPolicy, HmacSha256Hasher, IssueRequest, KeyFormat, Keyring, MemoryStore, Pepper,
    VerifiedKey,
};
use libfuzzer_sys::fuzz_target;
use tower::{Layer, ServiceExt};

const CUSTOM: HeaderName = HeaderName::from_static("x-fuzz-key");

/// Header names the layer reads, and some it must ignore.
const NAMES: [&str; 12] = [
    "authorization",
    "x-api-key",
    "x-fuzz-key",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "origin",
    "sec-fetch-site",
    "access-control-request-method",
    "host",
    "cookie",
    "content-length",
];

#[derive(Arbitrary, Debug)]
struct Input {
    config: Config,
    method: u8,
    transport: Transport,
    query: Option<Query>,
    headers: Vec<(Name, Value)>,
}

#[derive(Arbitrary, Debug)]
struct Config {
    bearer: bool,
    api_key_header: bool,
    custom_header: bool,
    query_parameter: bool,
    trusted_loopback_proxy: bool,
    allow_plain_http: bool,
    optional: bool,
    require_scope: bool,
}

#[derive(Arbitrary, Debug)]
enum Transport {
    None,
    Tls,
    Loopback,
    Remote([u8; 4]),
    RemoteV6([u16; 8]),
}

#[derive(Arbitrary, Debug)]
enum Query {
    Raw(String),
    Key(Key),
}

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Raw(Vec<u8>),
    Bearer(Key),
    Scheme(String, Key),
    Key(Key),
}

#[derive(Arbitrary, Debug)]
enum Key {
    Valid,
    /// The valid key with one byte replaced.
    Typo(u8, u8),
    /// The valid key cut short.
    Cut(u8),
    /// The valid key with bytes added.
    Padded(Vec<u8>),
    Raw(Vec<u8>),
}

impl Key {
    fn bytes(&self, valid: &str) -> Vec<u8> {
        let valid = valid.as_bytes();
        match self {
            Key::Valid => valid.to_vec(),
            Key::Typo(at, byte) => {
                let mut out = valid.to_vec();
                out[usize::from(*at) % valid.len()] = *byte;
                out
            }
            Key::Cut(n) => valid[..usize::from(*n) % valid.len()].to_vec(),
            Key::Padded(extra) => [valid, extra].concat(),
            Key::Raw(bytes) => bytes.clone(),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

/// A keyring holding one key with scope `a:read` (HMAC hashing: the layer is under test,
/// not Argon2), and that key.
async fn keyring() -> (Keyring<MemoryStore>, String) {
    let hasher = HmacSha256Hasher::new("k1", Pepper::new([9u8; 32]).expect("pepper")).expect("kid");
    let keyring = Keyring::builder(
        KeyFormat::new("sk_fuzz").expect("prefix"),
        MemoryStore::new(),
    )
    .hashes(HashPolicy::new(hasher))
    .build()
    .expect("keyring");
    let issued = keyring
        .issue(IssueRequest::new("owner", "fuzz").scopes(["a:read"]))
        .await
        .expect("issue");
    let key = issued.key.expose_secret().to_owned();
    (keyring, key)
}

async fn run(input: Input) {
    let (keyring, key) = keyring().await;
    let c = &input.config;
    let mut builder = KeyAuth::builder(keyring)
        .bearer(c.bearer)
        .api_key_header(c.api_key_header)
        .allow_plain_http(c.allow_plain_http);
    if c.custom_header {
        builder = builder.header(CUSTOM);
    }
    if c.query_parameter {
        builder = builder.query_parameter("api_key").expect("valid name");
    }
    if c.trusted_loopback_proxy {
        builder = builder.trusted_proxies(["127.0.0.0/8".parse().expect("cidr")]);
    }
    let auth = builder.build();
    let layer = if c.require_scope {
        auth.require("a:read").expect("requirement")
    } else {
        auth.layer()
    };
    let layer = if c.optional { layer.optional() } else { layer };

    let method = match input.method % 5 {
        0 => Method::GET,
        1 => Method::POST,
        2 => Method::OPTIONS,
        3 => Method::DELETE,
        _ => Method::HEAD,
    };
    let mut uri = String::from("http://service.test/v1/thing");
    let mut carries_key = false;
    if let Some(query) = &input.query {
        let text = match query {
            Query::Raw(raw) => raw.clone(),
            Query::Key(k) => {
                let bytes = k.bytes(&key);
                carries_key |= contains(&bytes, key.as_bytes());
                format!("api_key={}", String::from_utf8_lossy(&bytes))
            }
        };
        uri.push('?');
        uri.push_str(&text);
    }
    let Ok(mut request) = Request::builder()
        .method(method)
        .uri(&uri)
        .body(String::new())
    else {
        return; // not a URI
    };
    for (name, value) in input.headers.iter().take(32) {
        let name = match name {
            Name::Known(i) => HeaderName::from_static(NAMES[usize::from(*i) % NAMES.len()]),
            Name::Raw(bytes) => match HeaderName::from_bytes(bytes) {
                Ok(name) => name,
                Err(_) => continue,
            },
        };
        let bytes = match value {
            Value::Raw(bytes) => bytes.clone(),
            Value::Bearer(k) => [b"Bearer ".as_slice(), &k.bytes(&key)].concat(),
            Value::Scheme(scheme, k) => [scheme.as_bytes(), b" ", &k.bytes(&key)].concat(),
            Value::Key(k) => k.bytes(&key),
        };
        let Ok(value) = HeaderValue::from_bytes(&bytes) else {
            continue;
        };
        carries_key |= contains(&bytes, key.as_bytes());
        request.headers_mut().append(name, value);
    }
    // The layer's definition of a CORS preflight, which it answers 204 on its own.
    let preflight = request.method() == Method::OPTIONS
        && request.headers().contains_key(http::header::ORIGIN)
        && request
            .headers()
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD);
    match input.transport {
        Transport::None => {}
        Transport::Tls => {
            request.extensions_mut().insert(Tls);
        }
        Transport::Loopback => {
            request
                .extensions_mut()
                .insert(PeerAddr(SocketAddr::from(([127, 0, 0, 1], 40000))));
        }
        Transport::Remote(ip) => {
            request
                .extensions_mut()
                .insert(PeerAddr(SocketAddr::from((ip, 40000))));
        }
        Transport::RemoteV6(ip) => {
            request
                .extensions_mut()
                .insert(PeerAddr(SocketAddr::from((ip, 40000))));
        }
    }

    // The handler: answers 200 if the layer did its part (removed the credential headers it
    // reads), 500 (caught below) if not.
    let names: Vec<HeaderName> = [
        (c.bearer, AUTHORIZATION),
        (c.api_key_header, X_API_KEY),
        (c.custom_header, CUSTOM),
    ]
    .into_iter()
    .filter_map(|(read, name)| read.then_some(name))
    .collect();
    let reads_query = c.query_parameter;
    let handler = tower::service_fn(move |req: Request<String>| {
        let verified = req.extensions().get::<VerifiedKey>().is_some();
        // A credential header left for a verified request, or the credential's query
        // parameter (under any spelling a decoding reader accepts) on any request.
        let leaked = (names.iter().any(|n| req.headers().contains_key(n)) && verified)
            || (reads_query && req.uri().query().is_some_and(names_api_key));
        async move {
            let status = if leaked { 500 } else { 200 };
            let mut response = Response::new(String::from("handled"));
            *response.status_mut() = http::StatusCode::from_u16(status).expect("status");
            Ok::<_, Infallible>(response)
        }
    });
    let response = layer
        .layer(handler)
        .oneshot(request)
        .await
        .expect("infallible");

    let status = response.status().as_u16();
    if preflight {
        // Answered by the layer itself: never the handler, never a key check.
        assert_eq!(status, 204, "a CORS preflight was not answered 204");
        assert!(
            response.body().is_empty(),
            "a preflight reached the handler"
        );
    } else {
        assert!(
            matches!(status, 200 | 400 | 401 | 403),
            "unexpected status {status}"
        );
    }
    if status == 200 && !c.optional {
        assert!(
            carries_key,
            "a request without the valid key was let through"
        );
    }
    if status == 401 {
        assert!(
            response
                .headers()
                .contains_key(http::header::WWW_AUTHENTICATE)
        );
    }
    let secret = key[key.len() - 38..key.len() - 6].as_bytes();
    assert!(
        !contains(response.body().as_bytes(), secret),
        "the response echoes the key"
    );
    for value in response.headers().values() {
        assert!(
            !contains(value.as_bytes(), secret),
            "a response header echoes the key"
        );
    }
}

/// Whether some pair of `query` is named `api_key`, percent-decoded as axum's `Query` would.
fn names_api_key(query: &str) -> bool {
    query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or_default().as_bytes();
        let mut decoded = Vec::with_capacity(name.len());
        let mut i = 0;
        while i < name.len() {
            let hex = |b: u8| char::from(b).to_digit(16);
            match (
                name[i],
                name.get(i + 1).copied().and_then(hex),
                name.get(i + 2).copied().and_then(hex),
            ) {
                (b'%', Some(high), Some(low)) => {
                    decoded.push((high * 16 + low) as u8);
                    i += 3;
                }
                (b'+', _, _) => {
                    decoded.push(b' ');
                    i += 1;
                }
                (byte, _, _) => {
                    decoded.push(byte);
                    i += 1;
                }
            }
        }
        decoded == b"api_key"
    })
}

fuzz_target!(|input: Input| {
    runtime().block_on(run(input));
});
