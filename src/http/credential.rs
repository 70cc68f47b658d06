//! Where a request's key comes from: `Authorization: Bearer`, `X-API-Key`, a header of the
//! host's choosing, or (discouraged) a query parameter.

use http::HeaderMap;
use http::header::{AUTHORIZATION, HeaderName};

use crate::format::MAX_KEY_LEN;

/// `X-API-Key`.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Most values of one credential header looked at: a request repeating it more often is
/// refused rather than read in full.
const MAX_VALUES: usize = 8;

/// Where the layer looks for a key. Default: `Authorization: Bearer <key>` and `X-API-Key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sources {
    pub(crate) bearer: bool,
    pub(crate) headers: Vec<HeaderName>,
    pub(crate) query: Option<String>,
    /// The longest credential read: the longest key, or the longest token when the
    /// keyring accepts derived tokens.
    pub(crate) max_len: usize,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            bearer: true,
            headers: vec![X_API_KEY],
            query: None,
            max_len: MAX_KEY_LEN,
        }
    }
}

/// Why the credentials of a request could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// Two different credentials (two methods, or one header repeated with other values).
    Conflicting,
    /// A value that is not visible ASCII, is longer than any key, or is repeated past the
    /// limit.
    Malformed,
}

impl Unreadable {
    pub(crate) fn detail(self) -> &'static str {
        match self {
            Self::Conflicting => {
                "more than one credential was sent (or one header with different values)"
            }
            Self::Malformed => {
                "the credential is unreadable: not visible ASCII, longer than any key, or repeated too often"
            }
        }
    }
}

/// The value, checked to be visible ASCII and no longer than any credential, before any
/// parsing.
fn checked(value: &[u8], max_len: usize) -> Result<&str, Unreadable> {
    if value.is_empty() || value.len() > max_len || !value.iter().all(|b| b.is_ascii_graphic()) {
        return Err(Unreadable::Malformed);
    }
    std::str::from_utf8(value).map_err(|_| Unreadable::Malformed)
}

/// Adds `value` to the one credential found so far, refusing a different second one.
fn take<'a>(found: &mut Option<&'a str>, value: &'a str) -> Result<(), Unreadable> {
    match found {
        Some(seen) if *seen != value => Err(Unreadable::Conflicting),
        _ => {
            *found = Some(value);
            Ok(())
        }
    }
}

/// Whether the query component `name`, percent-decoded (and `+` read as a space, as form
/// decoding does), is `param`.
fn decodes_to(name: &str, param: &str) -> bool {
    let (mut raw, mut want) = (name.as_bytes(), param.as_bytes());
    while let Some((&first, rest)) = raw.split_first() {
        let (byte, rest) = match (first, rest) {
            (b'%', [high, low, rest @ ..]) => {
                match (
                    char::from(*high).to_digit(16),
                    char::from(*low).to_digit(16),
                ) {
                    (Some(high), Some(low)) => (u8::try_from(high * 16 + low).unwrap_or(0), rest),
                    _ => (first, &raw[1..]),
                }
            }
            (b'+', _) => (b' ', rest),
            _ => (first, rest),
        };
        match want.split_first() {
            Some((&expected, more)) if expected == byte => want = more,
            _ => return false,
        }
        raw = rest;
    }
    want.is_empty()
}

impl Sources {
    /// The key the request presents, `None` when it presents none. Borrowed from the
    /// request, not copied: a copy would be one more place in memory holding the secret,
    /// and the caller removes the header only once it has finished with the key.
    pub(crate) fn extract<'a>(
        &self,
        headers: &'a HeaderMap,
        query: Option<&'a str>,
    ) -> Result<Option<&'a str>, Unreadable> {
        let mut found: Option<&'a str> = None;
        if self.bearer {
            let mut values = headers.get_all(AUTHORIZATION).iter();
            for value in values.by_ref().take(MAX_VALUES) {
                let bytes = value.as_bytes().trim_ascii();
                // `Bearer` is case-insensitive (RFC 7235); other schemes are not ours. A
                // `Bearer` with no token (servers trim the space after it) is a malformed
                // credential, not a missing one.
                let (scheme, token) = match bytes.iter().position(|b| *b == b' ') {
                    Some(space) => (&bytes[..space], &bytes[space + 1..]),
                    None => (bytes, &[][..]),
                };
                if !scheme.eq_ignore_ascii_case(b"bearer") {
                    continue;
                }
                take(&mut found, checked(token.trim_ascii(), self.max_len)?)?;
            }
            if values.next().is_some() {
                return Err(Unreadable::Malformed);
            }
        }
        for name in &self.headers {
            let mut values = headers.get_all(name).iter();
            for value in values.by_ref().take(MAX_VALUES) {
                take(
                    &mut found,
                    checked(value.as_bytes().trim_ascii(), self.max_len)?,
                )?;
            }
            if values.next().is_some() {
                return Err(Unreadable::Malformed);
            }
        }
        if let (Some(param), Some(query)) = (&self.query, query) {
            // Every pair, however many (the request line's length bounds the work): a key
            // in a pair left unread would pass an optional route unverified and unstripped.
            for pair in query.split('&') {
                let name = pair.split('=').next().unwrap_or_default();
                // A name spelled with escapes (`api%5Fkey`) is the parameter to a decoding
                // reader such as axum's `Query`, but not to the layer: refused, not ignored.
                if name != param && name.contains('%') && decodes_to(name, param) {
                    return Err(Unreadable::Malformed);
                }
                if let Some(value) = pair
                    .strip_prefix(param.as_str())
                    .and_then(|r| r.strip_prefix('='))
                {
                    // Keys need no percent-encoding; anything encoded is not a key.
                    if value.contains(['%', '+']) {
                        return Err(Unreadable::Malformed);
                    }
                    take(&mut found, checked(value.as_bytes(), self.max_len)?)?;
                }
            }
        }
        Ok(found)
    }

    /// Every header that may carry the credential (to mark sensitive or remove).
    pub(crate) fn header_names(&self) -> impl Iterator<Item = &HeaderName> + '_ {
        self.bearer
            .then_some(&AUTHORIZATION)
            .into_iter()
            .chain(&self.headers)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&HeaderName, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append((*name).clone(), HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    #[test]
    fn bearer_and_api_key_headers_are_read() {
        let s = Sources::default();
        let key = "sk_live_abc";
        for map in [
            headers(&[(&AUTHORIZATION, b"Bearer sk_live_abc")]),
            headers(&[(&AUTHORIZATION, b"bearer   sk_live_abc ")]),
            headers(&[(&X_API_KEY, b"sk_live_abc")]),
            headers(&[
                (&AUTHORIZATION, b"Bearer sk_live_abc"),
                (&X_API_KEY, b"sk_live_abc"),
            ]),
        ] {
            assert_eq!(s.extract(&map, None).unwrap(), Some(key));
        }
        assert_eq!(
            s.extract(&headers(&[(&AUTHORIZATION, b"Basic dXNlcjpwYXNz")]), None)
                .unwrap(),
            None
        );
        assert_eq!(s.extract(&HeaderMap::new(), None).unwrap(), None);
    }

    #[test]
    fn conflicting_or_unreadable_credentials_are_refused() {
        let s = Sources::default();
        for (map, why) in [
            (
                headers(&[(&AUTHORIZATION, b"Bearer a_key"), (&X_API_KEY, b"b_key")]),
                Unreadable::Conflicting,
            ),
            (
                headers(&[(&X_API_KEY, b"a_key"), (&X_API_KEY, b"b_key")]),
                Unreadable::Conflicting,
            ),
            (
                headers(&[(&X_API_KEY, b"sk_live_\tabc")]),
                Unreadable::Malformed,
            ),
            (
                headers(&[(&X_API_KEY, "sk_live_é".as_bytes())]),
                Unreadable::Malformed,
            ),
            (
                headers(&[(&X_API_KEY, &[b'a'; MAX_KEY_LEN + 1])]),
                Unreadable::Malformed,
            ),
            (
                headers(&[(&AUTHORIZATION, b"Bearer ")]),
                Unreadable::Malformed,
            ),
            // What a server hands over for `Bearer ` after trimming the value.
            (
                headers(&[(&AUTHORIZATION, b"Bearer")]),
                Unreadable::Malformed,
            ),
            (
                headers(&[(&AUTHORIZATION, b"BEARER\t")]),
                Unreadable::Malformed,
            ),
            (
                headers(&[(&AUTHORIZATION, b"Bearer a b")]),
                Unreadable::Malformed,
            ),
        ] {
            assert_eq!(s.extract(&map, None), Err(why), "{map:?}");
        }
        let name = X_API_KEY;
        let repeated: Vec<(&HeaderName, &[u8])> =
            (0..=MAX_VALUES).map(|_| (&name, &b"k"[..])).collect();
        assert_eq!(
            s.extract(&headers(&repeated), None),
            Err(Unreadable::Malformed)
        );
    }

    #[test]
    fn query_parameters_only_when_configured() {
        let mut s = Sources::default();
        assert_eq!(
            s.extract(&HeaderMap::new(), Some("api_key=sk_live_abc"))
                .unwrap(),
            None
        );
        s.query = Some("api_key".into());
        assert_eq!(
            s.extract(&HeaderMap::new(), Some("x=1&api_key=sk_live_abc"))
                .unwrap(),
            Some("sk_live_abc")
        );
        assert_eq!(
            s.extract(&HeaderMap::new(), Some("api_key=sk%5Flive")),
            Err(Unreadable::Malformed)
        );
        for encoded in ["api%5Fkey=sk_live_abc", "x=1&%61pi_key=k", "api%5fkey"] {
            assert_eq!(
                s.extract(&HeaderMap::new(), Some(encoded)),
                Err(Unreadable::Malformed),
                "{encoded}"
            );
        }
        for unrelated in ["api%5Fkeys=1", "%=1&a%zz=2&api_ke%79x=3", "%", "api_key%"] {
            assert_eq!(
                s.extract(&HeaderMap::new(), Some(unrelated)),
                Ok(None),
                "{unrelated}"
            );
        }
        let many = format!("{}&api_key=sk_live_abc", vec!["p=1"; 1000].join("&"));
        assert_eq!(
            s.extract(&HeaderMap::new(), Some(&many)),
            Ok(Some("sk_live_abc"))
        );
    }
}
