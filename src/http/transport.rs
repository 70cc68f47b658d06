//! How a request reached the service: over TLS or plain HTTP, and from which client
//! address. Forwarding headers are believed only from a configured trusted proxy.

use std::net::{IpAddr, SocketAddr};

use http::header::HeaderName;
use http::{HeaderMap, Request};

use crate::certificate::ClientCertificate;
use crate::cidr::Cidr;

const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Most forwarding header values, and hops in them, read; past that the request is refused.
const MAX_VALUES: usize = 8;
const MAX_HOPS: usize = 32;

/// The connection's peer address, for servers that do not provide axum's `ConnectInfo`
/// (with axum, serve with `into_make_service_with_connect_info::<SocketAddr>()`). Insert
/// it into the request's extensions before the layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Marks a request whose connection was TLS, terminated in this process: insert it from
/// your TLS acceptor, or with `axum::Extension(Tls)` on a router served only over TLS. A
/// [`ClientCertificate`] extension marks the connection as TLS too.
/// Without it (or a trusted proxy's forwarded scheme), a request is plain HTTP: a URI's
/// `https` scheme is the client's word (an absolute-form request target, an h2c
/// `:scheme`), not the connection's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tls;

/// What the layer concluded about a request's transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reached {
    pub(crate) client: Option<IpAddr>,
    pub(crate) secure: bool,
    /// The peer is a trusted proxy: what the connection itself carries (a client
    /// certificate) is the proxy's, not the client's.
    pub(crate) via_proxy: bool,
    /// Plain HTTP that the configuration refuses for keys.
    pub(crate) plain_refused: bool,
    /// A loopback peer that is no trusted proxy sent forwarding headers: most likely a proxy
    /// on the same host that nobody configured (then plain HTTP passes as local
    /// development, and every client shares the loopback address).
    pub(crate) untrusted_local_proxy: bool,
}

/// Which forwarding headers the trusted proxies write. Only that kind is read: a header of
/// the other kind passes through a proxy untouched, so it is whatever the client wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyHeaders {
    /// `X-Forwarded-For` and `X-Forwarded-Proto` (nginx, HAProxy, most cloud load
    /// balancers). The proxy must append to `X-Forwarded-For` and set (overwrite)
    /// `X-Forwarded-Proto`.
    #[default]
    XForwarded,
    /// `Forwarded` (RFC 7239), appended to by every proxy.
    Forwarded,
}

/// The transport rules: which proxies are trusted, and what plain HTTP may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Trust {
    pub(crate) proxies: Vec<Cidr>,
    pub(crate) headers: ProxyHeaders,
    pub(crate) allow_plain_http: bool,
    pub(crate) loopback_exempt: bool,
}

impl Default for Trust {
    fn default() -> Self {
        Self {
            proxies: Vec::new(),
            headers: ProxyHeaders::default(),
            allow_plain_http: false,
            loopback_exempt: true,
        }
    }
}

/// A forwarding header from a trusted proxy that could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BadForwarding;

fn peer<B>(req: &Request<B>) -> Option<SocketAddr> {
    if let Some(PeerAddr(addr)) = req.extensions().get::<PeerAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    if let Some(info) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(info.0);
    }
    None
}

impl Trust {
    fn trusted(&self, ip: IpAddr) -> bool {
        self.proxies.iter().any(|net| net.contains(ip))
    }

    pub(crate) fn judge<B>(&self, req: &Request<B>) -> Result<Reached, BadForwarding> {
        let peer = peer(req);
        let connection_secure = req.extensions().get::<Tls>().is_some()
            || req.extensions().get::<ClientCertificate>().is_some();
        let (client, secure, via_proxy) = match peer {
            Some(peer) if self.trusted(peer.ip()) => {
                let (client, proto) = match self.headers {
                    ProxyHeaders::XForwarded => self.x_forwarded(req.headers())?,
                    ProxyHeaders::Forwarded => self.forwarded(req.headers())?,
                };
                let secure = proto.map_or(connection_secure, |p| p.eq_ignore_ascii_case("https"));
                // No forwarded client (a request the proxy made itself, or `for=unknown`):
                // the client is unknown, rather than the proxy, whose address every client
                // would otherwise share (one throttle bucket, and whatever allowlist covers
                // the proxy).
                (client, secure, true)
            }
            Some(peer) => (Some(peer.ip()), connection_secure, false),
            None => (None, connection_secure, false),
        };
        let loopback = !via_proxy && peer.is_some_and(|p| p.ip().to_canonical().is_loopback());
        let exempt = self.allow_plain_http || (self.loopback_exempt && loopback);
        let plain_refused = !secure && !exempt;
        let untrusted_local_proxy = loopback
            && [&FORWARDED, &X_FORWARDED_FOR, &X_FORWARDED_PROTO]
                .iter()
                .any(|name| req.headers().contains_key(*name));
        Ok(Reached {
            client: client.map(|ip| ip.to_canonical()),
            secure,
            via_proxy,
            plain_refused,
            untrusted_local_proxy,
        })
    }

    /// The client and the scheme it used, from `Forwarded` (RFC 7239): the rightmost hop
    /// that is not a trusted proxy is the client (hops further left were written by
    /// whoever it is, and prove nothing); when every hop is a trusted proxy, the request
    /// began at the leftmost.
    fn forwarded<'h>(
        &self,
        headers: &'h HeaderMap,
    ) -> Result<(Option<IpAddr>, Option<&'h str>), BadForwarding> {
        let mut elements = Vec::new();
        for value in values(headers, &FORWARDED)? {
            for element in value.split(',') {
                elements.push(element);
                if elements.len() > MAX_HOPS {
                    return Err(BadForwarding);
                }
            }
        }
        let mut proto = None;
        let mut first_trusted = None;
        for element in elements.iter().rev() {
            let (mut node, mut element_proto) = (None, None);
            for pair in element.split(';') {
                let (name, value) = pair.split_once('=').ok_or(BadForwarding)?;
                let value = value.trim().trim_matches('"');
                match name.trim().to_ascii_lowercase().as_str() {
                    "for" => node = Some(value),
                    "proto" => element_proto = Some(value),
                    _ => {}
                }
            }
            proto = element_proto.or(proto);
            match node.and_then(node_ip) {
                Some(ip) if self.trusted(ip) => first_trusted = Some(ip),
                Some(ip) => return Ok((Some(ip), element_proto.or(proto))),
                // `unknown` or an obfuscated node: the client is not known.
                None => return Ok((None, element_proto.or(proto))),
            }
        }
        Ok((first_trusted, proto))
    }

    /// The client and the scheme it used, from `X-Forwarded-For` and `X-Forwarded-Proto`,
    /// read as [`forwarded`](Self::forwarded) reads `Forwarded`.
    fn x_forwarded<'h>(
        &self,
        headers: &'h HeaderMap,
    ) -> Result<(Option<IpAddr>, Option<&'h str>), BadForwarding> {
        let proto = values(headers, &X_FORWARDED_PROTO)?
            .last()
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim);
        let mut hops = Vec::new();
        for value in values(headers, &X_FORWARDED_FOR)? {
            for hop in value.split(',') {
                hops.push(hop.trim());
                if hops.len() > MAX_HOPS {
                    return Err(BadForwarding);
                }
            }
        }
        let mut first_trusted = None;
        for hop in hops.iter().rev() {
            let ip: IpAddr = hop.parse().map_err(|_| BadForwarding)?;
            if !self.trusted(ip) {
                return Ok((Some(ip), proto));
            }
            first_trusted = Some(ip);
        }
        Ok((first_trusted, proto))
    }
}

fn values<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Vec<&'h str>, BadForwarding> {
    let mut out = Vec::new();
    for value in headers.get_all(name) {
        if out.len() == MAX_VALUES {
            return Err(BadForwarding);
        }
        out.push(value.to_str().map_err(|_| BadForwarding)?);
    }
    Ok(out)
}

/// The address of a `Forwarded` node: `192.0.2.60`, `192.0.2.60:4711`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711`; `None` for `unknown` and obfuscated identifiers.
fn node_ip(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    let host = node.split_once(':').map_or(node, |(host, _)| host);
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().uri("/x");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut req = builder.body(()).unwrap();
        req.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));
        req
    }

    fn behind_proxy() -> Trust {
        Trust {
            proxies: vec!["10.0.0.0/8".parse().unwrap()],
            ..Trust::default()
        }
    }

    #[test]
    fn plain_http_is_refused_except_from_loopback() {
        let trust = Trust::default();
        let remote = trust.judge(&request("203.0.113.9:5000", &[])).unwrap();
        assert!(remote.plain_refused && !remote.secure);
        let local = trust.judge(&request("127.0.0.1:5000", &[])).unwrap();
        assert!(!local.plain_refused);
        let mut tls = request("203.0.113.9:5000", &[]);
        tls.extensions_mut().insert(Tls);
        assert!(!trust.judge(&tls).unwrap().plain_refused);
        // Forwarding headers from an untrusted peer are ignored.
        let spoofed = request(
            "203.0.113.9:5000",
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-for", "1.2.3.4"),
            ],
        );
        let reached = trust.judge(&spoofed).unwrap();
        assert!(reached.plain_refused);
        assert_eq!(reached.client, Some("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn a_trusted_proxy_is_judged_by_what_it_forwards() {
        let trust = behind_proxy();
        let https = request(
            "10.1.2.3:443",
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-for", "198.51.100.7"),
            ],
        );
        let reached = trust.judge(&https).unwrap();
        assert!(reached.secure && !reached.plain_refused);
        assert_eq!(reached.client, Some("198.51.100.7".parse().unwrap()));
        let plain = request(
            "10.1.2.3:80",
            &[
                ("x-forwarded-proto", "http"),
                ("x-forwarded-for", "198.51.100.7"),
            ],
        );
        assert!(trust.judge(&plain).unwrap().plain_refused);
        // A loopback proxy is judged by its forwarded scheme too.
        let loopback_proxy = Trust {
            proxies: vec!["127.0.0.0/8".parse().unwrap()],
            headers: ProxyHeaders::Forwarded,
            ..Trust::default()
        };
        let forwarded_plain = request(
            "127.0.0.1:80",
            &[("forwarded", "for=198.51.100.7;proto=http")],
        );
        assert!(
            loopback_proxy
                .judge(&forwarded_plain)
                .unwrap()
                .plain_refused
        );
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let trust = behind_proxy();
        // The client wrote the first entry itself: it proves nothing.
        let req = request(
            "10.0.0.1:443",
            &[
                ("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2"),
                ("x-forwarded-proto", "https"),
            ],
        );
        assert_eq!(
            trust.judge(&req).unwrap().client,
            Some("198.51.100.7".parse().unwrap())
        );
        let req = request(
            "10.0.0.1:443",
            &[(
                "forwarded",
                r#"for=6.6.6.6;proto=http, for="[2001:db8::7]:4711";proto=https, for=10.0.0.2;proto=https"#,
            )],
        );
        let forwarded = Trust {
            headers: ProxyHeaders::Forwarded,
            ..behind_proxy()
        };
        let reached = forwarded.judge(&req).unwrap();
        assert_eq!(reached.client, Some("2001:db8::7".parse().unwrap()));
        assert!(
            reached.secure,
            "the proto of the hop that saw the client counts"
        );
    }

    #[test]
    fn unreadable_forwarding_from_a_trusted_proxy_is_an_error() {
        let trust = behind_proxy();
        let forwarded = Trust {
            headers: ProxyHeaders::Forwarded,
            ..behind_proxy()
        };
        for (trust, headers) in [
            (&trust, vec![("x-forwarded-for", "not-an-ip")]),
            (&forwarded, vec![("forwarded", "for")]),
            (
                &trust,
                vec![("x-forwarded-for", &*vec!["1.1.1.1"; MAX_HOPS + 1].join(","))],
            ),
        ] {
            assert_eq!(
                trust.judge(&request("10.0.0.1:1", &headers)),
                Err(BadForwarding),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn only_the_header_kind_the_proxy_writes_is_believed() {
        // The proxy appends to X-Forwarded-For; the client also sent a Forwarded header,
        // which passes through untouched.
        let spoof = [
            ("forwarded", "for=192.0.2.1;proto=https"),
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-proto", "http"),
        ];
        let reached = behind_proxy()
            .judge(&request("10.0.0.1:80", &spoof))
            .unwrap();
        assert_eq!(reached.client, Some("198.51.100.7".parse().unwrap()));
        assert!(
            reached.plain_refused,
            "the client's own proto=https is not believed"
        );
        // And the other way round, for a proxy that writes Forwarded.
        let forwarded = Trust {
            headers: ProxyHeaders::Forwarded,
            ..behind_proxy()
        };
        let spoof = [
            ("forwarded", "for=198.51.100.7;proto=http"),
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-proto", "https"),
        ];
        let reached = forwarded.judge(&request("10.0.0.1:80", &spoof)).unwrap();
        assert_eq!(reached.client, Some("198.51.100.7".parse().unwrap()));
        assert!(reached.plain_refused);
    }

    #[test]
    fn a_uri_scheme_is_the_clients_word_not_the_connections() {
        let mut absolute = Request::builder()
            .uri("https://api.example.com/x")
            .body(())
            .unwrap();
        absolute
            .extensions_mut()
            .insert(PeerAddr("203.0.113.9:5000".parse().unwrap()));
        let reached = Trust::default().judge(&absolute).unwrap();
        assert!(!reached.secure && reached.plain_refused);
    }

    #[test]
    fn a_trusted_proxy_that_names_no_client_leaves_the_client_unknown() {
        let trust = behind_proxy();
        // The proxy's own request (a health check): no forwarded client at all.
        let own = trust.judge(&request("10.0.0.1:443", &[])).unwrap();
        assert_eq!(
            own.client, None,
            "not the proxy's address, which every client shares"
        );
        let forwarded = Trust {
            headers: ProxyHeaders::Forwarded,
            ..behind_proxy()
        };
        let unknown = forwarded
            .judge(&request(
                "10.0.0.1:443",
                &[("forwarded", "for=unknown;proto=https")],
            ))
            .unwrap();
        assert_eq!(unknown.client, None);
        // Every hop a trusted proxy: the request began at the leftmost.
        let internal = trust
            .judge(&request(
                "10.0.0.1:443",
                &[
                    ("x-forwarded-for", "10.9.9.9, 10.0.0.2"),
                    ("x-forwarded-proto", "https"),
                ],
            ))
            .unwrap();
        assert_eq!(internal.client, Some("10.9.9.9".parse().unwrap()));
    }

    #[test]
    fn a_same_host_proxy_nobody_trusts_is_noticed() {
        let forwarded = [("x-forwarded-for", "198.51.100.7")];
        let untrusted = Trust::default()
            .judge(&request("127.0.0.1:5000", &forwarded))
            .unwrap();
        assert!(untrusted.untrusted_local_proxy);
        assert_eq!(untrusted.client, Some("127.0.0.1".parse().unwrap()));
        let plain_local = Trust::default()
            .judge(&request("127.0.0.1:5000", &[]))
            .unwrap();
        assert!(
            !plain_local.untrusted_local_proxy,
            "local development sends no such header"
        );
        let remote = Trust::default()
            .judge(&request("203.0.113.9:5000", &forwarded))
            .unwrap();
        assert!(
            !remote.untrusted_local_proxy,
            "a remote client's own headers say nothing"
        );
        let trusted = Trust {
            proxies: vec!["127.0.0.0/8".parse().unwrap()],
            ..Trust::default()
        };
        assert!(
            !trusted
                .judge(&request("127.0.0.1:5000", &forwarded))
                .unwrap()
                .untrusted_local_proxy
        );
    }
}
