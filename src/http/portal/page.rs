//! The HTML page: one static file, its inline script and style pinned by hash.

use std::sync::LazyLock;

use axum::response::{Html, IntoResponse, Response};
use sha2::{Digest as _, Sha256};

const PAGE_HTML: &str = include_str!("page.html");

/// The page's Content-Security-Policy: only its own inline script and style (by hash) run,
/// and it talks to nothing but its own origin, so that even text a key's owner typed into
/// a name can never become markup or code.
static PAGE_CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
         img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        inline_hash(PAGE_HTML, "<script>", "</script>"),
        inline_hash(PAGE_HTML, "<style>", "</style>"),
    )
});

/// `sha256-<base64>` of the text between the first `open` and the next `close` in `html`.
fn inline_hash(html: &str, open: &str, close: &str) -> String {
    use base64ct::Encoding as _;
    let start = html
        .find(open)
        .map(|at| at + open.len())
        .expect("page.html has the tag");
    let end = start + html[start..].find(close).expect("page.html closes the tag");
    let digest = Sha256::digest(&html.as_bytes()[start..end]);
    format!("sha256-{}", base64ct::Base64::encode_string(&digest))
}

pub(super) async fn page() -> Response {
    (
        [
            (http::header::CACHE_CONTROL, "no-store"),
            (http::header::CONTENT_SECURITY_POLICY, PAGE_CSP.as_str()),
            (http::header::X_FRAME_OPTIONS, "DENY"),
            (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (http::header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(PAGE_HTML),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_pins_the_script_and_the_style_that_the_page_has() {
        // One script and one style block: a second would run unpinned, and be refused.
        assert_eq!(PAGE_HTML.matches("<script").count(), 1);
        assert_eq!(PAGE_HTML.matches("<style").count(), 1);
        // Inline event handlers would need 'unsafe-hashes'; the script attaches listeners.
        for handler in ["onclick=", "onsubmit=", "onload=", "onchange="] {
            assert!(!PAGE_HTML.contains(handler), "{handler}");
        }
        assert!(PAGE_CSP.contains("script-src 'sha256-"));
        assert!(!PAGE_CSP.contains("unsafe"));
    }
}
