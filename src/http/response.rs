//! Refusals as HTTP responses: status, `WWW-Authenticate` (RFC 6750), an
//! `application/problem+json` body (RFC 9457), `Retry-After` and the `RateLimit` fields.
//! Nothing in a response echoes the presented key.

use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;

use http::header::{
    CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{Response, StatusCode};

use crate::keyring::VerifyError;
use crate::ratelimit::RateLimitHeaders;

pub(crate) const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub(crate) const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The problem type of an exceeded rate limit, from draft-ietf-httpapi-ratelimit-headers.
pub const QUOTA_EXCEEDED_TYPE: &str =
    "https://iana.org/assignments/http-problem-types#quota-exceeded";

/// Why the layer refused a request: what a custom response builder
/// ([`KeyAuthBuilder::rejection`](super::KeyAuthBuilder::rejection)) is given.
#[derive(Debug)]
#[non_exhaustive]
pub enum Rejection {
    /// No credential was sent (401, a `Bearer` challenge without error).
    MissingCredential,
    /// The credential could not be read: two different ones, one that is not visible
    /// ASCII or longer than any key, or an unreadable forwarding header (400).
    InvalidRequest(&'static str),
    /// A key sent over plain HTTP (403): refused, and reported so it can be rolled.
    PlainHttp,
    /// The keyring refused the key.
    Verify(VerifyError),
    /// Two keymint layers on one route, which would verify (and charge) twice (500).
    Misconfigured,
}

impl Rejection {
    /// The response status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingCredential => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::PlainHttp => StatusCode::FORBIDDEN,
            Self::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Verify(e) => {
                StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// A stable label: [`VerifyError::code`] for refused keys, else `missing_credential`,
    /// `invalid_request`, `plain_http` or `misconfigured`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingCredential => "missing_credential",
            Self::InvalidRequest(_) => "invalid_request",
            Self::PlainHttp => "plain_http",
            Self::Misconfigured => "misconfigured",
            Self::Verify(e) => e.code(),
        }
    }
}

/// How refusals are answered.
#[derive(Clone)]
pub(crate) struct Responses {
    pub(crate) realm: String,
    pub(crate) problem_base: String,
    /// The challenges that do not vary per request, built once (see [`Responses::prepare`]).
    challenges: Option<Arc<Prepared>>,
    pub(crate) hide_reasons: bool,
    pub(crate) retry_unavailable_secs: u64,
    pub(crate) custom: Option<Arc<CustomRejection>>,
}

/// A host's own response builder; `None` falls back to the standard response.
pub(crate) type CustomRejection = dyn Fn(&Rejection) -> Option<Response<String>> + Send + Sync;

/// What every refusal of one configuration shares, computed once.
struct Prepared {
    plain: HeaderValue,
    invalid_request: HeaderValue,
    invalid_token: HeaderValue,
    /// The problem base as a JSON string's contents (escaped).
    base_json: String,
}

impl Default for Responses {
    fn default() -> Self {
        Self {
            realm: "api".into(),
            problem_base: "urn:keymint:problem:".into(),
            challenges: None,
            hide_reasons: false,
            retry_unavailable_secs: 1,
            custom: None,
        }
    }
}

impl fmt::Debug for Responses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responses")
            .field("realm", &self.realm)
            .field("problem_base", &self.problem_base)
            .field("hide_reasons", &self.hide_reasons)
            .field("custom", &self.custom.is_some())
            .finish()
    }
}

/// The RFC 6750 error of a refusal, if it gets a `Bearer` challenge at all.
enum Challenge {
    /// No credential: the challenge carries no error.
    Plain,
    InvalidRequest,
    InvalidToken,
    InsufficientScope(String),
}

fn title(code: &str) -> &'static str {
    match code {
        "missing_credential" => "API key required",
        "invalid_request" => "Invalid request",
        "plain_http" => "HTTPS required",
        "malformed" | "unknown_prefix" | "invalid" => "Invalid API key",
        "revoked" => "API key revoked",
        "disabled" => "API key disabled",
        "expired" => "API key expired",
        "not_yet_valid" => "API key not yet valid",
        "wrong_environment" => "Wrong environment",
        "client_not_allowed" => "Client address not allowed",
        "certificate_required" => "Client certificate required",
        "certificate_mismatch" => "Client certificate does not match",
        "origin_not_allowed" => "Origin not allowed",
        "secret_key_in_browser" => "Secret key used in a browser",
        "insufficient_scope" => "Insufficient scope",
        "rate_limited" => "Quota Exceeded",
        "throttled" => "Too many failed attempts",
        "usage_exhausted" => "Usage exhausted",
        "store_unavailable" | "pepper_unavailable" | "rate_limiter_unavailable" => {
            "Service unavailable"
        }
        "overloaded" => "Overloaded",
        _ => "Internal error",
    }
}

fn header(value: &str) -> HeaderValue {
    // Every value built here is ASCII without controls (realm and scopes are validated).
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Sets the `RateLimit-Policy` and `RateLimit` fields (and `Retry-After` when given).
pub(crate) fn set_rate_limit_headers<B>(response: &mut Response<B>, values: &RateLimitHeaders) {
    let headers = response.headers_mut();
    headers.insert(RATELIMIT_POLICY, header(&values.policy));
    headers.insert(RATELIMIT, header(&values.ratelimit));
    if let Some(retry) = &values.retry_after {
        headers.insert(RETRY_AFTER, header(retry));
    }
}

/// `text` as the contents of a JSON string (quotes and backslashes escaped).
fn json_str(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into());
    quoted[1..quoted.len() - 1].to_owned()
}

impl Responses {
    /// Builds what every refusal shares; called once by the layer's builder.
    pub(crate) fn prepare(&mut self) {
        let realm = &self.realm;
        self.challenges = Some(Arc::new(Prepared {
            plain: header(&format!("Bearer realm=\"{realm}\"")),
            invalid_request: header(&format!(
                "Bearer realm=\"{realm}\", error=\"invalid_request\""
            )),
            invalid_token: header(&format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\""
            )),
            base_json: json_str(&self.problem_base),
        }));
    }

    pub(crate) fn respond(&self, rejection: &Rejection) -> Response<String> {
        if let Some(custom) = &self.custom
            && let Some(response) = custom(rejection)
        {
            return response;
        }
        self.standard(rejection)
    }

    /// Whether a 401 for this key tells more than "invalid" (hidden when configured).
    fn hidden(&self, error: &VerifyError) -> bool {
        self.hide_reasons
            && matches!(
                error,
                VerifyError::Malformed(_)
                    | VerifyError::UnknownPrefix
                    | VerifyError::Revoked
                    | VerifyError::Disabled
                    | VerifyError::Expired
                    | VerifyError::NotYetValid
                    | VerifyError::WrongEnvironment { .. }
                    | VerifyError::CertificateRequired
                    | VerifyError::CertificateMismatch
            )
    }

    fn standard(&self, rejection: &Rejection) -> Response<String> {
        let status = rejection.status();
        let (code, detail) = match rejection {
            Rejection::Verify(e) if self.hidden(e) => ("invalid", VerifyError::Invalid.to_string()),
            Rejection::Verify(e) => (e.code(), e.to_string()),
            Rejection::MissingCredential => (
                "missing_credential",
                "send an API key as `Authorization: Bearer <key>`".to_owned(),
            ),
            Rejection::InvalidRequest(detail) => ("invalid_request", (*detail).to_owned()),
            Rejection::PlainHttp => (
                "plain_http",
                "API keys must be sent over HTTPS; this key crossed the network in clear and should be rolled"
                    .to_owned(),
            ),
            Rejection::Misconfigured => ("misconfigured", "authentication is misconfigured".to_owned()),
        };
        let challenge = match rejection {
            Rejection::MissingCredential => Some(Challenge::Plain),
            Rejection::InvalidRequest(_) => Some(Challenge::InvalidRequest),
            Rejection::Verify(VerifyError::InsufficientScope(missing)) => {
                let scopes: Vec<&str> = missing.missing().iter().map(|s| s.as_str()).collect();
                Some(Challenge::InsufficientScope(scopes.join(" ")))
            }
            Rejection::Verify(_) if status == StatusCode::UNAUTHORIZED => {
                Some(Challenge::InvalidToken)
            }
            _ => None,
        };
        let rate_limit = match rejection {
            Rejection::Verify(VerifyError::RateLimited(denial)) => Some(denial.headers()),
            Rejection::Verify(VerifyError::Throttled(denial)) => Some(denial.headers()),
            _ => None,
        };
        let prepared = self.challenges.clone().unwrap_or_else(|| {
            let mut fresh = self.clone();
            fresh.prepare();
            fresh
                .challenges
                .unwrap_or_else(|| unreachable!("prepared above"))
        });
        // The body, written directly: codes and titles are constants that need no escaping,
        // the base and the detail are escaped.
        let mut body = String::with_capacity(192 + detail.len());
        let _ = write!(body, "{{\"type\":\"");
        match rejection {
            Rejection::Verify(VerifyError::RateLimited(_)) => body.push_str(QUOTA_EXCEEDED_TYPE),
            _ => {
                body.push_str(&prepared.base_json);
                body.push_str(code);
            }
        }
        let _ = write!(
            body,
            "\",\"title\":\"{}\",\"status\":{},\"detail\":\"{}\",\"code\":\"{code}\"",
            title(code),
            status.as_u16(),
            json_str(&detail)
        );
        if let Rejection::Verify(VerifyError::RateLimited(denial)) = rejection {
            let item = denial.policy().item_name(denial.decision().limit_index);
            let _ = write!(body, ",\"violated-policies\":[\"{}\"]", json_str(&item));
        }
        body.push('}');
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = challenge {
            let value = match challenge {
                Challenge::Plain => prepared.plain.clone(),
                Challenge::InvalidRequest => prepared.invalid_request.clone(),
                Challenge::InvalidToken => prepared.invalid_token.clone(),
                Challenge::InsufficientScope(scope) => header(&format!(
                    "Bearer realm=\"{}\", error=\"insufficient_scope\", scope=\"{scope}\"",
                    self.realm
                )),
            };
            headers.insert(WWW_AUTHENTICATE, value);
        }
        if let Some(values) = &rate_limit {
            set_rate_limit_headers(&mut response, values);
        }
        let retry = match rejection {
            // Waiting helps only a key whose uses refill; the wait is until they cover it.
            Rejection::Verify(VerifyError::UsageExhausted { retry_after }) => {
                retry_after.map(|wait| crate::ratelimit::ceil_secs(wait).max(1).to_string())
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                Some(self.retry_unavailable_secs.to_string())
            }
            _ => None,
        };
        if let Some(retry) = retry {
            response.headers_mut().insert(RETRY_AFTER, header(&retry));
        }
        response
    }
}
