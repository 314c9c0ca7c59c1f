//! Micro benchmarks of the per-request hot path: path canonicalization, route lookup, allowlist
//! membership, token validation (uncached, per algorithm, and the cached path), the request
//! header rewrite and the local rate-limit step.
//!
//! Run with `cargo bench --bench micro`; a quick pass:
//! `cargo bench --bench micro -- --warm-up-time 1 --measurement-time 2`.
//!
//! Every input (keys, tokens, tables, header maps) is built before `b.iter`; only the operation
//! named by the benchmark is timed. The loopback load test lives in `benches/load/`.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authgate::auth::cache::{TokenCache, Verified};
use authgate::auth::jwt::{verify, Principal, TokenPolicy, Unverified};
use authgate::auth::keys::{KeySet, Secret};
use authgate::auth::scopes;
use authgate::network::allowlist::parse_cidr;
use authgate::network::CidrSet;
use authgate::proxy::headers::{
    remove_hop_by_hop, remove_identity_headers, set_forwarded, Forwarded,
};
use authgate::routing::{canonicalize, HostPattern, Lookup, RouteSpec, RouteTable};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ParsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Method;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.example.com/";
const AUDIENCE: &str = "api://orders";
const HMAC_SECRET: &[u8] = b"a-benchmark-secret-of-at-least-32-bytes!";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A tiny deterministic generator (SplitMix64) so every run benchmarks the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Path canonicalization
// ---------------------------------------------------------------------------------------------

fn bench_canonicalize(c: &mut Criterion) {
    let cases: [(&str, &str); 3] = [
        ("canonical", "/api/v1/orders/12345/items/67890/details"),
        (
            "needs_work",
            "/api//v1/./orders/%7Euser/../12345/%61items/%3a/./67890/details",
        ),
        (
            "rejected",
            "/api/v1/orders/12345/items%2F..%2F..%2Fadmin/details",
        ),
    ];
    // The inputs must behave as their names say, or the numbers mean something else.
    assert!(matches!(
        canonicalize(cases[0].1),
        Ok(std::borrow::Cow::Borrowed(_))
    ));
    assert!(matches!(
        canonicalize(cases[1].1),
        Ok(std::borrow::Cow::Owned(_))
    ));
    assert!(canonicalize(cases[2].1).is_err());

    let mut group = c.benchmark_group("canonicalize");
    for (name, path) in cases {
        group.throughput(Throughput::Bytes(path.len() as u64));
        group.bench_function(name, |b| b.iter(|| canonicalize(black_box(path)).is_ok()));
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// 2. Route lookup in a 10,000-route table
// ---------------------------------------------------------------------------------------------

/// 10,000 routes: 6,000 host-less under `/api/team{t}/svc{s}/v{v}`, 3,000 on 30 exact hosts and
/// 1,000 on 10 wildcard hosts. Read-only routes (GET, HEAD) and write routes share prefixes.
fn route_table() -> RouteTable {
    let read = Some(vec![Method::GET, Method::HEAD]);
    let write = Some(vec![Method::POST, Method::PUT, Method::PATCH]);
    let mut routes = Vec::with_capacity(10_000);
    for i in 0..3_000 {
        let prefix = format!("/api/team{}/svc{}/v{}", i % 50, i, 1 + i % 3);
        routes.push(RouteSpec {
            host: HostPattern::Any,
            path_prefix: prefix.clone(),
            methods: read.clone(),
        });
        routes.push(RouteSpec {
            host: HostPattern::Any,
            path_prefix: prefix,
            methods: write.clone(),
        });
    }
    for i in 0..3_000 {
        routes.push(RouteSpec {
            host: HostPattern::parse(&format!("tenant{}.example.com", i % 30)).expect("host"),
            path_prefix: format!("/orders/{i}"),
            methods: None,
        });
    }
    for i in 0..1_000 {
        routes.push(RouteSpec {
            host: HostPattern::parse(&format!("*.region{}.example.net", i % 10)).expect("host"),
            path_prefix: format!("/items/{i}"),
            methods: read.clone(),
        });
    }
    assert_eq!(routes.len(), 10_000);
    RouteTable::new(routes)
}

fn bench_routes(c: &mut Criterion) {
    let table = route_table();
    let host = Some("gateway.internal:8080");
    let deep = "/api/team42/svc2992/v2/orders/12345/items/67890";
    let miss = "/api/team42/svc99999/v1/orders";
    let cases: [(&str, &str, Method); 3] = [
        ("hit_deep", deep, Method::GET),
        ("miss", miss, Method::GET),
        ("method_not_allowed", deep, Method::DELETE),
    ];
    assert!(matches!(
        table.lookup(host, deep, &Method::GET),
        Lookup::Matched(_)
    ));
    assert_eq!(table.lookup(host, miss, &Method::GET), Lookup::NoRoute);
    assert!(matches!(
        table.lookup(host, deep, &Method::DELETE),
        Lookup::MethodNotAllowed(_)
    ));

    let mut group = c.benchmark_group("route_lookup_10k");
    group.throughput(Throughput::Elements(1));
    for (name, path, method) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| {
                matches!(
                    table.lookup(black_box(host), black_box(path), method),
                    Lookup::Matched(_)
                )
            })
        });
    }
    // Host tiers: exact host with a port, and a wildcard with mixed case (lowercased on the stack).
    let exact = Some("tenant7.example.com:443");
    let wildcard = Some("Eu-1.Region3.example.net");
    assert!(matches!(
        table.lookup(exact, "/orders/1957/x", &Method::GET),
        Lookup::Matched(_)
    ));
    assert!(matches!(
        table.lookup(wildcard, "/items/13/x", &Method::GET),
        Lookup::Matched(_)
    ));
    group.bench_function("hit_exact_host", |b| {
        b.iter(|| table.lookup(black_box(exact), black_box("/orders/1957/x"), &Method::GET))
    });
    group.bench_function("hit_wildcard_host", |b| {
        b.iter(|| table.lookup(black_box(wildcard), black_box("/items/13/x"), &Method::GET))
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// 3. Allowlist: 1,000 CIDRs
// ---------------------------------------------------------------------------------------------

fn bench_allowlist(c: &mut Criterion) {
    // 700 IPv4 /24s in 10.0.0.0/8 and 300 IPv6 /48s in 2001:db8::/32, parsed like the config.
    let mut rng = Rng(7);
    let mut values = Vec::with_capacity(1_000);
    for _ in 0..700 {
        let n = rng.next();
        values.push(format!("10.{}.{}.0/24", (n >> 8) & 0xff, n & 0xff));
    }
    for _ in 0..300 {
        let n = rng.next();
        values.push(format!("2001:db8:{:x}::/48", n & 0xffff));
    }
    let nets: Vec<_> = values
        .iter()
        .map(|v| parse_cidr(v).expect("cidr"))
        .collect();
    let set = CidrSet::new(&nets);

    // A hit in the middle of the v4 list, a miss inside 10/8 and one outside, a v6 hit.
    let v4_hit: IpAddr = values[350].replace(".0/24", ".77").parse().expect("ip");
    let v4_miss: IpAddr = (0..)
        .map(|i| {
            format!("10.{}.{}.1", (i >> 8) & 0xff, i & 0xff)
                .parse::<IpAddr>()
                .expect("ip")
        })
        .find(|addr| !set.contains(*addr))
        .expect("some /24 is not listed");
    let v6_hit: IpAddr = values[850]
        .replace("::/48", ":1::beef")
        .parse()
        .expect("ip");
    let v6_miss: IpAddr = "2001:db9::1".parse().expect("ip");
    let mapped_hit: IpAddr = format!("::ffff:{v4_hit}").parse().expect("ip");
    let cases = [
        ("v4_hit", v4_hit, true),
        ("v4_miss", v4_miss, false),
        ("v6_hit", v6_hit, true),
        ("v6_miss", v6_miss, false),
        ("v4_mapped_hit", mapped_hit, true),
    ];

    let mut group = c.benchmark_group("allowlist_1000");
    group.throughput(Throughput::Elements(1));
    for (name, addr, expected) in cases {
        assert_eq!(set.contains(addr), expected, "{name} {addr}");
        group.bench_function(name, |b| b.iter(|| set.contains(black_box(addr))));
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// 4. Token validation
// ---------------------------------------------------------------------------------------------

/// One benchmark algorithm: its key set, policy and a valid token.
struct TokenCase {
    name: &'static str,
    keys: KeySet,
    policy: TokenPolicy,
    token: String,
    /// The signing key's public half, parsed once by aws-lc-rs (asymmetric cases only): the
    /// baseline for the signature check alone.
    parsed: Option<ParsedPublicKey>,
}

/// `der` as PEM text under `label` (LF line endings, 64-column lines).
fn pem(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der.to_vec()), config)
}

/// A signing key plus its public JWK (without `kid`) and raw public key.
struct SigningKey {
    encoding: EncodingKey,
    jwk: Value,
    public: PublicKey,
}

enum PublicKey {
    Rsa(PublicKeyComponents<Vec<u8>>),
    /// An uncompressed EC point or an Ed25519 key.
    Raw(Vec<u8>),
}

/// The public key parsed once, as a verifier that caches keys would hold it.
fn parsed_key(key: &SigningKey, alg: Algorithm) -> ParsedPublicKey {
    match (&key.public, alg) {
        (PublicKey::Rsa(rsa), Algorithm::RS256) => {
            rsa.to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        }
        (PublicKey::Rsa(rsa), Algorithm::PS256) => {
            rsa.to_parsed_public_key(&RSA_PSS_2048_8192_SHA256)
        }
        (PublicKey::Raw(raw), Algorithm::ES256) => {
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, raw)
        }
        (PublicKey::Raw(raw), Algorithm::EdDSA) => ParsedPublicKey::new(&ED25519, raw),
        _ => unreachable!("no baseline for {alg:?}"),
    }
    .expect("parse public key")
}

fn rsa_key() -> SigningKey {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa keygen");
    let pkcs8 = pair.as_der().expect("pkcs8");
    let encoding =
        EncodingKey::from_rsa_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes()).expect("rsa pem");
    let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
    let jwk = json!({
        "kty": "RSA",
        "n": URL_SAFE_NO_PAD.encode(&public.n),
        "e": URL_SAFE_NO_PAD.encode(&public.e),
    });
    SigningKey {
        encoding,
        jwk,
        public: PublicKey::Rsa(public),
    }
}

fn ec_p256_key() -> SigningKey {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec keygen");
    let pkcs8 = pair.to_pkcs8v1().expect("pkcs8");
    let point = pair.public_key().as_ref();
    let (x, y) = point[1..].split_at(32);
    SigningKey {
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
        }),
        public: PublicKey::Raw(point.to_vec()),
    }
}

fn ed25519_key() -> SigningKey {
    let pair = Ed25519KeyPair::generate().expect("ed25519 keygen");
    let pkcs8 = pair.to_pkcs8().expect("pkcs8");
    SigningKey {
        encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        }),
        public: PublicKey::Raw(pair.public_key().as_ref().to_vec()),
    }
}

/// A realistic client-credentials access token: ~10 claims, three scopes, a tenant claim.
fn claims(n: u64) -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "sub": format!("svc-billing-{n}"),
        "aud": [AUDIENCE, "api://other"],
        "client_id": "7a2f3c1e-0b6d-4c5e-9f1a-2b3c4d5e6f70",
        "scope": "orders:read orders:write invoices:read",
        "tid": "tenant-42",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": format!("{n:032x}"),
    })
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = json!({ "alg": format!("{alg:?}"), "typ": "JWT" });
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("json")),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("json"))
    );
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("sign");
    format!("{input}.{signature}")
}

fn policy(alg: Algorithm) -> TokenPolicy {
    TokenPolicy {
        issuer: ISSUER.to_owned(),
        audiences: vec![AUDIENCE.to_owned()],
        allowed_clients: None,
        algorithms: vec![alg],
        scope_claims: vec!["scope".to_owned(), "scp".to_owned()],
        client_id_claims: ["client_id", "azp", "appid", "cid"]
            .map(str::to_owned)
            .to_vec(),
        leeway: 30,
        token_types: Vec::new(),
        required_claims: Vec::new(),
        claim_headers: vec![(HeaderName::from_static("x-auth-tenant"), "tid".to_owned())],
        require_bound_token: false,
        max_token_lifetime: None,
        implied_scopes: Default::default(),
    }
}

/// Builds every algorithm's case. Asymmetric key sets hold the signing key plus two decoys, as
/// an identity provider mid-rotation publishes, and are parsed from a JWKS document.
fn token_cases() -> Vec<TokenCase> {
    let rsa = rsa_key();
    let rsa_decoy = rsa_key();
    let ec = ec_p256_key();
    let ed = ed25519_key();
    let with_kid = |jwk: &Value, kid: &str| {
        let mut jwk = jwk.clone();
        jwk["kid"] = json!(kid);
        jwk
    };
    let jwks = |keys: Vec<Value>| {
        let document = serde_json::to_vec(&json!({ "keys": keys })).expect("json");
        let parsed = KeySet::from_jwks(&document).expect("jwks");
        assert!(parsed.skipped.is_empty(), "skipped: {:?}", parsed.skipped);
        parsed.keys
    };
    let claims = claims(1);
    let asymmetric = |name, alg, kid: &str, key: &SigningKey| TokenCase {
        name,
        keys: jwks(vec![
            with_kid(&rsa_decoy.jwk, "old-rsa"),
            with_kid(&key.jwk, kid),
            with_kid(&ec.jwk, "decoy-ec"),
        ]),
        policy: policy(alg),
        token: sign(alg, Some(kid), &claims, &key.encoding),
        parsed: Some(parsed_key(key, alg)),
    };
    vec![
        asymmetric("RS256", Algorithm::RS256, "rsa-1", &rsa),
        asymmetric("PS256", Algorithm::PS256, "rsa-1", &rsa),
        asymmetric("ES256", Algorithm::ES256, "ec-1", &ec),
        asymmetric("EdDSA", Algorithm::EdDSA, "ed-1", &ed),
        TokenCase {
            name: "HS256",
            keys: KeySet::from_hmac(&Secret::new(HMAC_SECRET.to_vec())),
            policy: policy(Algorithm::HS256),
            token: sign(
                Algorithm::HS256,
                None,
                &claims,
                &EncodingKey::from_secret(HMAC_SECRET),
            ),
            parsed: None,
        },
    ]
}

fn verify_token(case: &TokenCase, now: u64) -> Principal {
    let unverified = Unverified::decode(&case.token).expect("decode");
    verify(&unverified, &case.policy, &case.keys, now, None).expect("verify")
}

fn bench_tokens(c: &mut Criterion) {
    let cases = token_cases();
    let now = now();
    for case in &cases {
        let principal = verify_token(case, now);
        assert_eq!(principal.scopes.len(), 3, "{}", case.name);
    }

    let mut group = c.benchmark_group("token_uncached");
    group.throughput(Throughput::Elements(1));
    for case in &cases {
        group.bench_function(case.name, |b| {
            b.iter(|| {
                let unverified = Unverified::decode(black_box(&case.token)).expect("decode");
                verify(&unverified, &case.policy, &case.keys, now, None).expect("verify")
            })
        });
    }
    // The share of the above that is not the signature check: splitting, base64, JSON.
    let rs256 = &cases[0];
    group.bench_function("decode_only", |b| {
        b.iter(|| Unverified::decode(black_box(&rs256.token)).is_ok())
    });
    group.finish();

    // The signature check alone: through `jsonwebtoken::crypto::verify` as `jwt::verify` does it
    // (which rebuilds the aws-lc public key from the JWK bytes on every call), against aws-lc-rs
    // with the key parsed once. Both include decoding the base64url signature.
    let mut group = c.benchmark_group("signature_only");
    group.throughput(Throughput::Elements(1));
    for case in cases.iter().filter(|case| case.parsed.is_some()) {
        let unverified = Unverified::decode(&case.token).expect("decode");
        let key = case
            .keys
            .find(unverified.kid(), unverified.algorithm())
            .expect("key")
            .decoding_key();
        let (input, signature) = case.token.rsplit_once('.').expect("three parts");
        let alg = unverified.algorithm();
        let parsed = case.parsed.as_ref().expect("parsed");
        let raw = |signature: &str| {
            let bytes = URL_SAFE_NO_PAD.decode(signature).expect("base64");
            parsed.verify_sig(input.as_bytes(), &bytes).is_ok()
        };
        assert!(matches!(
            jsonwebtoken::crypto::verify(signature, input.as_bytes(), key, alg),
            Ok(true)
        ));
        assert!(raw(signature));
        group.bench_function(format!("jsonwebtoken/{}", case.name), |b| {
            b.iter(|| {
                jsonwebtoken::crypto::verify(black_box(signature), input.as_bytes(), key, alg)
            })
        });
        group.bench_function(format!("aws_lc_parsed_key/{}", case.name), |b| {
            b.iter(|| raw(black_box(signature)))
        });
    }
    group.finish();

    // The cached path, as the pipeline does it: hash the token, look it up, check the route's
    // scopes. The cache holds 10,000 distinct verified tokens.
    let cache = TokenCache::new(10_000, Duration::from_secs(300));
    let principal = verify_token(rs256, now);
    let mut tokens = Vec::with_capacity(10_000);
    for n in 0..10_000u64 {
        // Distinct token texts; signing 10,000 tokens would only slow the setup down.
        let token = format!("{}.{n:08}", rs256.token);
        cache.insert(
            TokenCache::key(&token),
            Verified {
                issuer_generation: 1,
                principal: principal.clone(),
            },
        );
        tokens.push(token);
    }
    let required = vec!["orders:read".to_owned()];
    let any: Vec<String> = Vec::new();
    let hit = tokens[4_321].as_str();
    let miss = rs256.token.as_str();
    let cached = |token: &str| {
        let key = TokenCache::key(token);
        cache
            .get(&key, now)
            .is_some_and(|hit| scopes::satisfied(&hit.principal.granted, &required, &any))
    };
    assert!(cached(hit));
    assert!(!cached(miss));

    let mut group = c.benchmark_group("token_cached");
    group.throughput(Throughput::Elements(1));
    group.bench_function("hit_and_scopes", |b| b.iter(|| cached(black_box(hit))));
    // The share of the above that is hashing the ~650-byte token.
    group.bench_function("key_sha256_only", |b| {
        b.iter(|| TokenCache::key(black_box(hit)))
    });
    group.bench_function("miss", |b| b.iter(|| cached(black_box(miss))));
    let mut i = 0usize;
    group.bench_function("hit_rotating_10k", |b| {
        b.iter(|| {
            i = (i + 1) % tokens.len();
            cached(black_box(&tokens[i]))
        })
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// 5. Request header rewrite
// ---------------------------------------------------------------------------------------------

/// A realistic 12-header client request, including a spoofed identity header, a spoofed
/// X-Forwarded-For and a Connection-named header.
fn request_headers(token: &str) -> HeaderMap {
    let pairs: [(&str, &str); 12] = [
        ("host", "api.example.com"),
        ("user-agent", "billing-service/4.2.1 (okhttp/4.12.0)"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate, br"),
        ("content-type", "application/json"),
        ("authorization", &format!("Bearer {token}")),
        ("connection", "keep-alive, x-debug"),
        ("keep-alive", "timeout=5"),
        ("x-debug", "1"),
        ("x-forwarded-for", "6.6.6.6"),
        ("x-auth-subject", "admin"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ];
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    headers
}

fn bench_headers(c: &mut Criterion) {
    let cases = token_cases();
    let principal = verify_token(&cases[4], now());
    assert_eq!(principal.headers.len(), 5, "{:?}", principal.headers);
    let template = request_headers(&cases[4].token);
    let claim_names = vec!["x-auth-tenant".to_owned()];
    let request_id = HeaderValue::from_static("5f0c2a1b000000000000002a");
    let x_request_id = HeaderName::from_static("x-request-id");
    let peer: IpAddr = "10.1.2.3".parse().expect("ip");

    let rewrite = |headers: &mut HeaderMap| {
        remove_hop_by_hop(headers, false);
        remove_identity_headers(headers, &claim_names);
        let host = headers.get(http::header::HOST).cloned();
        set_forwarded(
            headers,
            &Forwarded {
                peer,
                peer_trusted: false,
                proto: "http",
                host: host.as_ref(),
            },
        );
        headers.insert(x_request_id.clone(), request_id.clone());
        for (name, value) in &principal.headers {
            headers.insert(name.clone(), value.clone());
        }
    };
    let mut check = template.clone();
    rewrite(&mut check);
    assert!(check.get("x-debug").is_none() && check.get("keep-alive").is_none());
    assert_eq!(check["x-forwarded-for"], "10.1.2.3");
    assert_eq!(check["x-auth-subject"], "svc-billing-1");

    let mut group = c.benchmark_group("header_rewrite");
    group.throughput(Throughput::Elements(1));
    // The clone of the 12-header map is setup and not timed.
    group.bench_function("request_12_headers", |b| {
        b.iter_batched_ref(
            || template.clone(),
            |headers| rewrite(headers),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// The local rate-limit step of one policy: building the key and one GCRA check, on one hot
/// key and over 10000 distinct keys (the moka map's hashing and admission).
fn bench_rate_limits(c: &mut Criterion) {
    use authgate::ratelimit::{key_for, Facts, KeyPart, LocalLimiter, PolicySpec, Window};
    use std::num::NonZeroU32;
    let spec = PolicySpec {
        name: "per-client".into(),
        key: vec![KeyPart::ClientId],
        count: NonZeroU32::new(1_000_000).expect("non-zero"),
        window: Window::Second,
        burst: NonZeroU32::new(1_000_000).expect("non-zero"),
    };
    let limiter = LocalLimiter::new(&spec);
    let mut group = c.benchmark_group("rate_limit_local");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_key", |b| {
        let facts = Facts {
            route: "orders",
            client_id: Some("partner-a"),
            ..Facts::default()
        };
        b.iter(|| {
            let key = key_for(&spec, black_box(&facts)).expect("key");
            black_box(limiter.check(&key.store))
        })
    });
    let ids: Vec<String> = (0..10_000).map(|n| format!("client-{n}")).collect();
    let mut n = 0;
    group.bench_function("10k_keys", |b| {
        b.iter(|| {
            n = (n + 1) % ids.len();
            let facts = Facts {
                route: "orders",
                client_id: Some(&ids[n]),
                ..Facts::default()
            };
            let key = key_for(&spec, black_box(&facts)).expect("key");
            black_box(limiter.check(&key.store))
        })
    });
    group.finish();
}

/// A `redis-server` child on a free loopback port, killed on drop.
struct RedisChild(std::process::Child);

impl Drop for RedisChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Option<(RedisChild, u16)> {
    use std::io::{Read, Write};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .ok()?
        .port();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let child = RedisChild(child);
    for _ in 0..500 {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let mut reply = [0u8; 7];
            if stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() {
                return Some((child, port));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// One policy check through `[rate_limit_store]` against a local `redis-server` on
/// loopback: exact mode (one Lua script call per check) and approximate mode (local, synced
/// in the background). Skipped, with a message, when `redis-server` cannot be started.
fn bench_rate_limits_redis(c: &mut Criterion) {
    use authgate::metrics::Metrics;
    use authgate::ratelimit::store::{Mode, OnStoreError, Store, StoreSettings};
    use authgate::ratelimit::{key_for, Facts, KeyPart, LocalLimiter, Policy, PolicySpec, Window};
    use std::num::NonZeroU32;
    use std::sync::Arc;
    let Some((_redis, port)) = start_redis() else {
        eprintln!("rate_limit_redis skipped: cannot start redis-server");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let spec = PolicySpec {
        name: "per-client".into(),
        key: vec![KeyPart::ClientId],
        count: NonZeroU32::new(1_000_000).expect("non-zero"),
        window: Window::Second,
        burst: NonZeroU32::new(1_000_000).expect("non-zero"),
    };
    let facts = Facts {
        route: "orders",
        client_id: Some("partner-a"),
        ..Facts::default()
    };
    let key = key_for(&spec, &facts).expect("key");
    let mut group = c.benchmark_group("rate_limit_redis");
    group.throughput(Throughput::Elements(1));
    for (name, mode) in [("exact", Mode::Exact), ("approximate", Mode::Approximate)] {
        let metrics = Metrics::new();
        let settings = StoreSettings {
            url: format!("redis://127.0.0.1:{port}/0"),
            mode,
            sync_interval: Duration::from_millis(100),
            on_store_error: OnStoreError::Local,
            timeout: Duration::from_secs(1),
            ca_pem: None,
        };
        let store = Arc::new(Store::new(settings, &metrics).expect("store"));
        let policy = Policy {
            spec: spec.clone(),
            local: Arc::new(LocalLimiter::new(&spec)),
            store: Some(store),
            policy_header: HeaderValue::from_static("\"per-client\";q=1000000;w=1"),
            metrics: metrics.rate_limit_policy("per-client"),
        };
        group.bench_function(name, |b| {
            b.iter(|| black_box(runtime.block_on(policy.check(&key))))
        });
        let errors = metrics.rate_limit_store_errors.get();
        assert_eq!(errors, 0, "the store failed during the {name} benchmark");
    }
    group.finish();
}

criterion_group!(
    micro,
    bench_canonicalize,
    bench_routes,
    bench_allowlist,
    bench_tokens,
    bench_headers,
    bench_rate_limits,
    bench_rate_limits_redis
);
criterion_main!(micro);
