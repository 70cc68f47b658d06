//! Web origins (`scheme://host[:port]`) for publishable keys: what a key allows, and what a
//! browser sent.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest origin accepted, in bytes.
pub const MAX_ORIGIN_LEN: usize = 256;

/// Why a string is not an allowed origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginError {
    /// Not `http://` or `https://` followed by a host.
    #[error("origin must be http:// or https:// followed by a host, like https://app.example.com")]
    Scheme,
    /// A path, query, fragment, user info or trailing `/` after the host.
    #[error("origin must be only scheme://host[:port], without path, query or user info")]
    NotAnOrigin,
    /// The host is empty or has characters outside `a-z 0-9 - .` (lowercase).
    #[error(
        "origin host must be lowercase letters, digits, '-' and '.' (punycode for other names)"
    )]
    Host,
    /// The port is not a number from 1 to 65535.
    #[error("origin port must be a number from 1 to 65535")]
    Port,
    /// A wildcard anywhere but a leading `*.` before at least two labels.
    #[error("a wildcard origin must be scheme://*.domain.tld: '*.' once, at the start of the host")]
    Wildcard,
    /// Longer than [`MAX_ORIGIN_LEN`].
    #[error("origin is longer than 256 bytes")]
    TooLong,
}

/// An origin a publishable key may be used from: exact (`https://app.example.com`,
/// `http://localhost:8080`) or with a subdomain wildcard (`https://*.example.com`, which
/// matches `https://a.example.com` and `https://a.b.example.com` but not
/// `https://example.com`). Scheme and port must match exactly; the default port is the one
/// written (`https://x` does not match `https://x:443`: browsers omit default ports).
///
/// ```
/// use keymint::AllowedOrigin;
///
/// let exact: AllowedOrigin = "https://app.example.com".parse()?;
/// let any_sub: AllowedOrigin = "https://*.example.com".parse()?;
/// assert!(exact.matches("https://app.example.com"));
/// assert!(any_sub.matches("https://a.b.example.com"));
/// assert!(!any_sub.matches("https://example.com"));
/// assert!(!any_sub.matches("http://a.example.com"));
/// assert!(!exact.matches("null"));
/// # Ok::<(), keymint::OriginError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AllowedOrigin {
    text: Box<str>,
    /// Byte offset in `text` where the part after `*.` starts, for wildcards.
    wildcard_suffix: Option<usize>,
}

impl AllowedOrigin {
    /// Validates `text`.
    ///
    /// # Errors
    /// An [`OriginError`] saying what is wrong.
    pub fn new(text: &str) -> Result<Self, OriginError> {
        if text.len() > MAX_ORIGIN_LEN {
            return Err(OriginError::TooLong);
        }
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or(OriginError::Scheme)?;
        if rest.is_empty() {
            return Err(OriginError::Host);
        }
        if rest
            .bytes()
            .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\'))
        {
            return Err(OriginError::NotAnOrigin);
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        };
        if let Some(port) = port {
            let valid = !port.is_empty()
                && port.len() <= 5
                && port.bytes().all(|b| b.is_ascii_digit())
                && !port.starts_with('0')
                && port.parse::<u32>().is_ok_and(|p| (1..=65_535).contains(&p));
            if !valid {
                return Err(OriginError::Port);
            }
        }
        let (wildcard, name) = match host.strip_prefix("*.") {
            Some(name) => (true, name),
            None => (false, host),
        };
        if name.contains('*') || (wildcard && !name.contains('.')) {
            return Err(OriginError::Wildcard);
        }
        let labels_ok = name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
        if !labels_ok {
            return Err(OriginError::Host);
        }
        let scheme_len = text.len() - rest.len();
        Ok(Self {
            text: text.into(),
            wildcard_suffix: wildcard.then_some(scheme_len + 1),
        })
    }

    /// The origin as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the request's `Origin` header value `origin` is allowed. A `null` origin (a
    /// sandboxed frame, a file, a redirect across origins) never matches.
    pub fn matches(&self, origin: &str) -> bool {
        match self.wildcard_suffix {
            None => origin == &*self.text,
            Some(suffix_at) => {
                // `scheme://*.example.com[:port]` matches `scheme://<labels>.example.com[:port]`.
                let scheme = &self.text[..suffix_at - 1]; // up to and including "//"
                let suffix = &self.text[suffix_at..]; // ".example.com[:port]"
                origin
                    .strip_prefix(scheme)
                    .and_then(|host| host.strip_suffix(suffix))
                    .is_some_and(|sub| {
                        !sub.is_empty()
                            && sub.split('.').all(|label| {
                                !label.is_empty()
                                    && label.bytes().all(|b| {
                                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
                                    })
                            })
                    })
            }
        }
    }
}

impl FromStr for AllowedOrigin {
    type Err = OriginError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::new(text)
    }
}

impl fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for AllowedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AllowedOrigin({:?})", &*self.text)
    }
}

impl Serialize for AllowedOrigin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for AllowedOrigin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::new(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_origins() {
        for ok in [
            "https://app.example.com",
            "http://localhost",
            "http://localhost:3000",
            "https://*.example.com",
            "https://*.example.com:8443",
            "https://xn--bcher-kva.example",
            "http://127.0.0.1:8080",
        ] {
            assert!(AllowedOrigin::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn invalid_origins_name_the_problem() {
        for (bad, why) in [
            ("app.example.com", OriginError::Scheme),
            ("ftp://example.com", OriginError::Scheme),
            ("https://", OriginError::Host),
            ("https://example.com/", OriginError::NotAnOrigin),
            ("https://example.com/path", OriginError::NotAnOrigin),
            ("https://user@example.com", OriginError::NotAnOrigin),
            ("https://Example.com", OriginError::Host),
            ("https://exa mple.com", OriginError::Host),
            ("https://example.com:0", OriginError::Port),
            ("https://example.com:65536", OriginError::Port),
            ("https://example.com:", OriginError::Port),
            ("https://*", OriginError::Wildcard),
            ("https://*.com", OriginError::Wildcard),
            ("https://a.*.example.com", OriginError::Wildcard),
            ("https://*.*.example.com", OriginError::Wildcard),
            ("null", OriginError::Scheme),
        ] {
            assert_eq!(AllowedOrigin::new(bad), Err(why), "{bad}");
        }
        assert_eq!(
            AllowedOrigin::new(&format!("https://{}.com", "a".repeat(300))),
            Err(OriginError::TooLong)
        );
    }

    #[test]
    fn matching_is_exact_or_by_subdomain_at_any_depth() {
        let exact = AllowedOrigin::new("https://app.example.com").unwrap();
        assert!(exact.matches("https://app.example.com"));
        for no in [
            "http://app.example.com",
            "https://app.example.com:443",
            "https://app.example.com.evil.com",
            "https://xapp.example.com",
            "null",
            "",
        ] {
            assert!(!exact.matches(no), "{no}");
        }
        let wild = AllowedOrigin::new("https://*.example.com").unwrap();
        for yes in ["https://a.example.com", "https://a.b.example.com"] {
            assert!(wild.matches(yes), "{yes}");
        }
        for no in [
            "https://example.com",
            "https://.example.com",
            "https://a..example.com",
            "https://a.example.com:8443",
            "https://evilexample.com",
            "https://a.example.com.evil.com",
            "http://a.example.com",
            "https://a/b.example.com",
            "null",
        ] {
            assert!(!wild.matches(no), "{no}");
        }
        let wild_port = AllowedOrigin::new("https://*.example.com:8443").unwrap();
        assert!(wild_port.matches("https://a.example.com:8443"));
        assert!(!wild_port.matches("https://a.example.com"));
    }
}
