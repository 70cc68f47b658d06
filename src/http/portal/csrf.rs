//! The CSRF defence of state-changing requests (see the module docs of
//! [`portal`](super)).

use http::request::Parts;

use super::problem::Problem;

/// The header a state-changing request must carry, with value `1`.
pub const CSRF_HEADER: &str = "x-keymint-portal";

/// Refuses a state-changing request that a page of another site could have made.
pub(super) fn check(parts: &Parts) -> Result<(), Problem> {
    // A cross-site form cannot set a header; a cross-origin script can only after a CORS
    // preflight, which nothing here approves.
    if parts.headers.get(CSRF_HEADER).map(|v| v.as_bytes()) != Some(b"1") {
        return Err(Problem::csrf(
            "state-changing requests need the X-Keymint-Portal: 1 header",
        ));
    }
    // Belt and braces for browsers that say where a request came from.
    if parts
        .headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return Err(Problem::csrf("cross-site request"));
    }
    if let Some(origin) = parts.headers.get(http::header::ORIGIN) {
        // HTTP/2 carries the authority in the request line, not in a Host header.
        let authority = parts.uri.authority().map(|a| a.as_str().as_bytes());
        let host = parts
            .headers
            .get(http::header::HOST)
            .map(|h| h.as_bytes())
            .or(authority);
        // `null` and anything unparsable have no host: refused.
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, host)| host.as_bytes());
        if host.is_none() || origin_host != host {
            return Err(Problem::csrf("the request's origin is not this site"));
        }
    }
    Ok(())
}
