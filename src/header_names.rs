//! Every header name the gateway reads, sets or removes by name, defined once.
//!
//! This module owns the spelling of those names and nothing else: the rules that use them live
//! with their step (`network::client_addr` reads X-Forwarded-For, `proxy::headers` rewrites the
//! request per SPEC §4, `auth::jwt` builds the identity headers). It sits below every other
//! module and depends on `http` only, so any layer may name a header without importing a
//! higher one. Names are lowercase, as on the wire in HTTP/2 and as `http` stores them.

use http::HeaderName;

/// The request id, kept from the client when acceptable, returned on every response.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

// The de-facto forwarding headers the gateway sets (SPEC §4).
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

// Other proxy headers, which the gateway never sets: believed only from a trusted proxy.
pub use http::header::FORWARDED;
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub const X_CLIENT_IP: HeaderName = HeaderName::from_static("x-client-ip");
pub const TRUE_CLIENT_IP: HeaderName = HeaderName::from_static("true-client-ip");
pub const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
pub const X_FORWARDED_SERVER: HeaderName = HeaderName::from_static("x-forwarded-server");

// URL overrides some frameworks route by (IIS, Symfony, Laminas): never forwarded.
pub const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
pub const X_REWRITE_URL: HeaderName = HeaderName::from_static("x-rewrite-url");

// The identity headers the gateway sets for an authenticated request (SPEC §4).
pub const X_AUTH_SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");
pub const X_AUTH_ISSUER: HeaderName = HeaderName::from_static("x-auth-issuer");
pub const X_AUTH_CLIENT_ID: HeaderName = HeaderName::from_static("x-auth-client-id");
pub const X_AUTH_SCOPES: HeaderName = HeaderName::from_static("x-auth-scopes");
pub const X_AUTH_KEY_ID: HeaderName = HeaderName::from_static("x-auth-key-id");
pub const X_CLIENT_CERT_SUBJECT: HeaderName = HeaderName::from_static("x-client-cert-subject");
pub const X_CLIENT_CERT_SHA256: HeaderName = HeaderName::from_static("x-client-cert-sha256");

/// Every header starting with this (in any `-`/`_` spelling) is the gateway's to set.
pub const X_AUTH_PREFIX: &str = "x-auth-";
/// Every header starting with this (in any `-`/`_` spelling) is the gateway's to set.
pub const X_CLIENT_CERT_PREFIX: &str = "x-client-cert-";
