//! Responses the gateway makes itself (SPEC §5): one closed enum, rendered in one place.
//!
//! `code()` is both the wire error code and the bounded metrics reason (token failures use the
//! finer [`TokenError::as_str`]).

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

use crate::auth::api_keys::ApiKeyError;
use crate::auth::jwt::TokenError;
use crate::ratelimit::{RATELIMIT, RATELIMIT_POLICY};
use crate::routing::{HostError, PathError};

/// Why a request was not forwarded, or why forwarding failed. Each variant is one SPEC code.
#[derive(Debug, Clone, PartialEq)]
pub enum Deny {
    /// 400: a malformed request (path, target, Authorization header).
    InvalidRequest(InvalidRequest),
    /// 401: no bearer token.
    MissingToken,
    /// 401: a presented token failed a check.
    InvalidToken(TokenError),
    /// 401 invalid_token: a presented API key is unknown, expired or disabled (SPEC §7.1).
    InvalidApiKey(ApiKeyError),
    /// 403: the route's scopes; carries the `scope` challenge value (space-separated).
    InsufficientScope(HeaderValue),
    /// 403: an allowlist refused the client address.
    IpNotAllowed,
    /// 403: the route needs a verified client certificate.
    ClientCertificateRequired,
    /// 403: `require_client_entry` is set and the verified client has no `[[clients]]` entry.
    ClientNotAllowed,
    /// 404: no route for the path.
    NoRoute,
    /// 405: carries the `Allow` value.
    MethodNotAllowed(HeaderValue),
    /// 413: the body exceeds the route's `max_body_bytes`.
    PayloadTooLarge,
    /// 429: a rate limit (SPEC §7.4) refused the request.
    RateLimited(RateLimited),
    /// 502: the upstream could not be reached or broke the exchange.
    BadGateway,
    /// 503: an issuer has no usable key set yet.
    Unavailable,
    /// 503: the upstream requests in flight are at their cap (`max_upstream_requests`, an
    /// upstream's `max_concurrent_requests`).
    UpstreamBusy,
    /// 504: the upstream or the request deadline ran out.
    GatewayTimeout,
}

/// The malformed-request kinds (400 invalid_request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidRequest {
    Path(PathError),
    /// Authority-form, asterisk-form, or an absolute URI without authority.
    Target,
    /// Several Authorization headers, `Bearer` without a token, or more than one word.
    Authorization,
    /// The API key header is repeated, empty, has inner whitespace or non-ASCII bytes.
    ApiKeyHeader,
    /// Both an API key header and an Authorization bearer token: which one is the caller?
    TwoCredentials,
    /// A request target longer than `max_request_line_bytes`.
    TargetTooLong,
    /// Ambiguous message framing: Transfer-Encoding with Content-Length, a transfer coding
    /// other than `chunked`, bare-LF line endings.
    Framing,
    /// The request body could not be read (e.g. an invalid chunk).
    Body,
    /// Several Host headers, or a malformed host (SPEC §3 step 2).
    Host(HostError),
    /// A decision request whose description of the request is missing or malformed (§7.3).
    Description(DescriptionError),
}

/// A 429's headers (draft-ietf-httpapi-ratelimit-headers-10, structured fields).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimited {
    /// `RateLimit-Policy`, e.g. `"per-client";q=10;w=1`.
    pub policy: HeaderValue,
    /// `RateLimit`, e.g. `"per-client";r=0;t=1`.
    pub limit: HeaderValue,
    /// `Retry-After`, whole seconds, at least 1.
    pub retry_after: u64,
}

/// Seconds a client should wait after a 503 before retrying.
const RETRY_AFTER_SECONDS: &str = "5";

impl Deny {
    pub fn status(&self) -> StatusCode {
        match self {
            Deny::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Deny::MissingToken | Deny::InvalidToken(_) | Deny::InvalidApiKey(_) => {
                StatusCode::UNAUTHORIZED
            }
            Deny::InsufficientScope(_)
            | Deny::IpNotAllowed
            | Deny::ClientCertificateRequired
            | Deny::ClientNotAllowed => StatusCode::FORBIDDEN,
            Deny::NoRoute => StatusCode::NOT_FOUND,
            Deny::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Deny::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Deny::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Deny::BadGateway => StatusCode::BAD_GATEWAY,
            Deny::Unavailable | Deny::UpstreamBusy => StatusCode::SERVICE_UNAVAILABLE,
            Deny::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The SPEC error code.
    pub fn code(&self) -> &'static str {
        match self {
            Deny::InvalidRequest(_) => "invalid_request",
            Deny::MissingToken => "missing_token",
            Deny::InvalidToken(_) | Deny::InvalidApiKey(_) => "invalid_token",
            Deny::InsufficientScope(_) => "insufficient_scope",
            Deny::IpNotAllowed => "ip_not_allowed",
            Deny::ClientCertificateRequired => "client_certificate_required",
            Deny::ClientNotAllowed => "client_not_allowed",
            Deny::NoRoute => "no_route",
            Deny::MethodNotAllowed(_) => "method_not_allowed",
            Deny::PayloadTooLarge => "payload_too_large",
            Deny::RateLimited(_) => "rate_limited",
            Deny::BadGateway => "bad_gateway",
            Deny::Unavailable | Deny::UpstreamBusy => "unavailable",
            Deny::GatewayTimeout => "gateway_timeout",
        }
    }

    /// The metrics `reason`: the token failure kind for invalid tokens, else the code.
    pub fn reason(&self) -> &'static str {
        match self {
            Deny::InvalidToken(error) => error.as_str(),
            Deny::InvalidApiKey(error) => error.as_str(),
            other => other.code(),
        }
    }

    /// Helpful text that never echoes the token or internal detail.
    pub fn description(&self) -> &'static str {
        match self {
            Deny::InvalidRequest(InvalidRequest::Path(error)) => error.description(),
            Deny::InvalidRequest(InvalidRequest::Target) => "unsupported request target form",
            Deny::InvalidRequest(InvalidRequest::TargetTooLong) => "the request target is too long",
            Deny::InvalidRequest(InvalidRequest::Framing) => "ambiguous message framing",
            Deny::InvalidRequest(InvalidRequest::Body) => "the request body is malformed",
            Deny::InvalidRequest(InvalidRequest::Host(error)) => error.description(),
            Deny::InvalidRequest(InvalidRequest::Description(error)) => error.description(),
            Deny::InvalidRequest(InvalidRequest::Authorization) => {
                "the Authorization header must be exactly one \"Bearer <token>\""
            }
            Deny::InvalidRequest(InvalidRequest::ApiKeyHeader) => {
                "the API key header must be exactly one value without spaces"
            }
            Deny::InvalidRequest(InvalidRequest::TwoCredentials) => {
                "send either an API key or a bearer token, not both"
            }
            Deny::MissingToken => "a bearer token is required",
            Deny::InvalidToken(error) => error.description(),
            Deny::InvalidApiKey(error) => error.description(),
            Deny::InsufficientScope(_) => "the token lacks a scope this route requires",
            Deny::IpNotAllowed => "the client address is not allowed",
            Deny::ClientCertificateRequired => "a verified client certificate is required",
            Deny::ClientNotAllowed => "the client is not registered at this gateway",
            Deny::NoRoute => "no route matches the request",
            Deny::MethodNotAllowed(_) => "the method is not allowed on this route",
            Deny::PayloadTooLarge => "the request body is too large",
            Deny::RateLimited(_) => "too many requests; retry after the time in Retry-After",
            Deny::BadGateway => "the upstream could not be reached",
            Deny::Unavailable => "the token issuer's keys are not available yet",
            Deny::UpstreamBusy => "the upstream has too many requests in flight",
            Deny::GatewayTimeout => "the upstream did not answer in time",
        }
    }

    /// Renders the JSON error response. `request_id` is added by the caller with every other
    /// response header the gateway sets on all responses.
    pub fn into_response(self) -> Response<Bytes> {
        let body = serde_json::json!({
            "error": self.code(),
            "error_description": self.description(),
        });
        let mut response = Response::new(Bytes::from(body.to_string()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        match &self {
            Deny::MissingToken => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"authgate\""),
                );
            }
            Deny::InvalidToken(_) | Deny::InvalidApiKey(_) => {
                let challenge = format!(
                    "Bearer realm=\"authgate\", error=\"invalid_token\", error_description=\"{}\"",
                    self.description()
                );
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.insert(WWW_AUTHENTICATE, value);
                }
            }
            Deny::InsufficientScope(scopes) => {
                let challenge = format!(
                    "Bearer realm=\"authgate\", error=\"insufficient_scope\", scope=\"{}\"",
                    scopes.to_str().unwrap_or_default()
                );
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.insert(WWW_AUTHENTICATE, value);
                }
            }
            Deny::MethodNotAllowed(allow) => {
                headers.insert(ALLOW, allow.clone());
            }
            Deny::Unavailable | Deny::UpstreamBusy => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
            }
            Deny::RateLimited(limited) => {
                headers.insert(RETRY_AFTER, HeaderValue::from(limited.retry_after.max(1)));
                headers.insert(RATELIMIT_POLICY, limited.policy.clone());
                headers.insert(RATELIMIT, limited.limit.clone());
            }
            Deny::InvalidRequest(_)
            | Deny::IpNotAllowed
            | Deny::ClientCertificateRequired
            | Deny::ClientNotAllowed
            | Deny::NoRoute
            | Deny::PayloadTooLarge
            | Deny::BadGateway
            | Deny::GatewayTimeout => {}
        }
        response
    }
}

/// Characters of `grpc-message` that must be percent-encoded (gRPC over HTTP/2: everything
/// outside 0x20-0x7E, and `%`).
const GRPC_MESSAGE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

impl Deny {
    /// The gRPC status code of a denial (grpc/doc/statuscodes.md), for clients that expect
    /// a gRPC answer instead of an HTTP error.
    pub fn grpc_status(&self) -> u8 {
        match self {
            Deny::InvalidRequest(_) => 3, // INVALID_ARGUMENT
            Deny::MissingToken | Deny::InvalidToken(_) | Deny::InvalidApiKey(_) => 16, // UNAUTHENTICATED
            Deny::InsufficientScope(_)
            | Deny::IpNotAllowed
            | Deny::ClientCertificateRequired
            | Deny::ClientNotAllowed => 7, // PERMISSION_DENIED
            Deny::NoRoute | Deny::MethodNotAllowed(_) => 12, // UNIMPLEMENTED
            Deny::PayloadTooLarge | Deny::RateLimited(_) => 8, // RESOURCE_EXHAUSTED
            Deny::BadGateway | Deny::Unavailable | Deny::UpstreamBusy | Deny::GatewayTimeout => 14, // UNAVAILABLE
        }
    }

    /// The denial the gRPC way: HTTP 200, `content-type: application/grpc`, no body,
    /// `grpc-status` and `grpc-message` (a trailers-only response), plus the headers of the
    /// HTTP rendering (WWW-Authenticate, Retry-After, RateLimit) as metadata.
    pub fn into_grpc_response(self) -> Response<Bytes> {
        let status = self.grpc_status();
        let message =
            percent_encoding::utf8_percent_encode(self.description(), GRPC_MESSAGE).to_string();
        let mut response = self.into_response();
        *response.status_mut() = StatusCode::OK;
        *response.body_mut() = Bytes::new();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from(u16::from(status)));
        if let Ok(value) = HeaderValue::from_str(&message) {
            headers.insert("grpc-message", value);
        }
        response
    }
}

/// Whether a request is gRPC by its content type (`application/grpc`, `application/grpc+proto`,
/// ...).
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let value = value.trim().to_ascii_lowercase();
            value == "application/grpc"
                || value.starts_with("application/grpc+")
                || value.starts_with("application/grpc;")
        })
}

/// Which part of a description is missing or malformed (400 `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescriptionError {
    /// No method header, two of them, or a value that is not an HTTP method token.
    Method,
    /// No target header, two of them, or a value that is not an origin-form target.
    Target,
    /// More than one `X-Real-IP`.
    RealIp,
}

impl DescriptionError {
    /// Text for the caller's error description.
    pub fn description(self) -> &'static str {
        match self {
            DescriptionError::Method => "the described request's method is missing or malformed",
            DescriptionError::Target => "the described request's target is missing or malformed",
            DescriptionError::RealIp => "more than one X-Real-IP header",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_renders_its_status_code_and_json() {
        let cases = [
            (
                Deny::InvalidRequest(InvalidRequest::Target),
                400,
                "invalid_request",
            ),
            (Deny::MissingToken, 401, "missing_token"),
            (
                Deny::InvalidApiKey(ApiKeyError::Unknown),
                401,
                "invalid_token",
            ),
            (
                Deny::InvalidToken(TokenError::Expired),
                401,
                "invalid_token",
            ),
            (
                Deny::InsufficientScope(HeaderValue::from_static("a b")),
                403,
                "insufficient_scope",
            ),
            (Deny::IpNotAllowed, 403, "ip_not_allowed"),
            (
                Deny::ClientCertificateRequired,
                403,
                "client_certificate_required",
            ),
            (Deny::ClientNotAllowed, 403, "client_not_allowed"),
            (Deny::NoRoute, 404, "no_route"),
            (
                Deny::MethodNotAllowed(HeaderValue::from_static("GET")),
                405,
                "method_not_allowed",
            ),
            (Deny::PayloadTooLarge, 413, "payload_too_large"),
            (
                Deny::RateLimited(RateLimited {
                    policy: HeaderValue::from_static("\"p\";q=10;w=1"),
                    limit: HeaderValue::from_static("\"p\";r=0;t=1"),
                    retry_after: 1,
                }),
                429,
                "rate_limited",
            ),
            (Deny::BadGateway, 502, "bad_gateway"),
            (Deny::Unavailable, 503, "unavailable"),
            (Deny::UpstreamBusy, 503, "unavailable"),
            (Deny::GatewayTimeout, 504, "gateway_timeout"),
        ];
        for (deny, status, code) in cases {
            let response = deny.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
            let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
            assert_eq!(body["error"], code);
            assert!(body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()));
        }
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        let missing = Deny::MissingToken.into_response();
        assert_eq!(
            missing.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"authgate\""
        );
        let invalid = Deny::InvalidToken(TokenError::Expired).into_response();
        let value = invalid.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(value.starts_with(
            "Bearer realm=\"authgate\", error=\"invalid_token\", error_description=\""
        ));
        let scope = Deny::InsufficientScope(HeaderValue::from_static("orders:read orders:write"));
        assert_eq!(
            scope.into_response().headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"authgate\", error=\"insufficient_scope\", scope=\"orders:read orders:write\""
        );
        assert_eq!(
            Deny::Unavailable.into_response().headers()[RETRY_AFTER],
            "5"
        );
        let limited = Deny::RateLimited(RateLimited {
            policy: HeaderValue::from_static("\"per-client\";q=10;w=1"),
            limit: HeaderValue::from_static("\"per-client\";r=0;t=1"),
            retry_after: 0,
        })
        .into_response();
        assert_eq!(limited.headers()[RETRY_AFTER], "1");
        assert_eq!(
            limited.headers()["ratelimit-policy"],
            "\"per-client\";q=10;w=1"
        );
        assert_eq!(limited.headers()["ratelimit"], "\"per-client\";r=0;t=1");
        assert_eq!(
            Deny::MethodNotAllowed(HeaderValue::from_static("GET, HEAD"))
                .into_response()
                .headers()[ALLOW],
            "GET, HEAD"
        );
    }
}
