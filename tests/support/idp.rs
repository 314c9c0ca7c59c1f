//! Identity provider for tests: signing keys (generated once per test binary), a JWKS and
//! OpenID discovery server on 127.0.0.1:0 whose key set can be swapped at run time, and a
//! token builder.
//!
//! ```ignore
//! let idp = Idp::start().await;                 // serves key "k1" (RSA)
//! let token = idp.token().scope("orders:read").aud("api").sign();
//! idp.add_key("k2", keys::rsa2());              // rotation
//! idp.set_failing(true);                        // every request answers 500
//! assert_eq!(idp.jwks_requests(), 1);
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Signing keys, generated once per test binary (RSA generation is slow in debug builds).
pub mod keys {
    use std::sync::OnceLock;

    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
    use aws_lc_rs::signature::{
        EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING,
    };
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use jsonwebtoken::{Algorithm, EncodingKey};
    use serde_json::{json, Value};

    /// A private signing key and its public JWK.
    pub struct TestKey {
        pub encoding: EncodingKey,
        /// The public JWK without `kid`, `alg` and `use`.
        pub jwk: Value,
        /// The algorithm tokens signed with this key use by default.
        pub alg: Algorithm,
        /// The public key as PEM (SubjectPublicKeyInfo): what an algorithm-confusion attacker
        /// would use as an HMAC secret.
        pub public_pem: String,
    }

    impl TestKey {
        /// The public JWK with `kid`, `alg` and `use: sig`.
        pub fn jwk_with_kid(&self, kid: &str) -> Value {
            let mut jwk = self.jwk.clone();
            jwk["kid"] = json!(kid);
            jwk["alg"] = json!(alg_name(self.alg));
            jwk["use"] = json!("sig");
            jwk
        }
    }

    /// The JOSE name of an algorithm.
    pub fn alg_name(alg: Algorithm) -> String {
        serde_json::to_value(alg)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .expect("algorithm name")
    }

    /// The IdP's first RSA-2048 key.
    pub fn rsa() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(rsa_key)
    }

    /// A second RSA-2048 key (rotation).
    pub fn rsa2() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(rsa_key)
    }

    /// A third RSA-2048 key (never served unless a test adds it).
    pub fn rsa3() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(rsa_key)
    }

    /// The attacker's RSA-2048 key: never served by the IdP.
    pub fn attacker() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(rsa_key)
    }

    pub fn ec_p256() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(|| {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec keygen");
            let pkcs8 = pair.to_pkcs8v1().expect("pkcs8");
            let encoding = EncodingKey::from_ec_der(pkcs8.as_ref());
            let point = pair.public_key().as_ref();
            let (x, y) = point[1..].split_at(32);
            let public_der = pair.public_key().as_der().expect("spki");
            TestKey {
                encoding,
                jwk: json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(x),
                    "y": URL_SAFE_NO_PAD.encode(y),
                }),
                alg: Algorithm::ES256,
                public_pem: pem("PUBLIC KEY", public_der.as_ref()),
            }
        })
    }

    pub fn ed25519() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(|| {
            let pair = Ed25519KeyPair::generate().expect("ed25519 keygen");
            let pkcs8 = pair.to_pkcs8().expect("pkcs8");
            let encoding = EncodingKey::from_ed_der(pkcs8.as_ref());
            let public_der = pair.public_key().as_der().expect("spki");
            TestKey {
                encoding,
                jwk: json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
                }),
                alg: Algorithm::EdDSA,
                public_pem: pem("PUBLIC KEY", public_der.as_ref()),
            }
        })
    }

    fn rsa_key() -> TestKey {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa keygen");
        let pkcs8 = pair.as_der().expect("pkcs8");
        // jsonwebtoken's PEM reader unwraps PKCS#8 into the PKCS#1 key it signs with.
        let encoding = EncodingKey::from_rsa_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes())
            .expect("rsa pem");
        let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let public_der = pair.public_key().as_der().expect("spki");
        TestKey {
            encoding,
            jwk: json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(&public.n),
                "e": URL_SAFE_NO_PAD.encode(&public.e),
            }),
            alg: Algorithm::RS256,
            public_pem: pem("PUBLIC KEY", public_der.as_ref()),
        }
    }

    /// `der` as PEM text under `label` (LF line endings, 64-column lines).
    pub fn pem(label: &str, der: &[u8]) -> String {
        let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
        pem::encode_config(&pem::Pem::new(label, der.to_vec()), config)
    }
}

pub use keys::TestKey;

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS with exactly this header JSON and these claims, signed with `key` under
/// `alg` (which need not be the header's `alg`: forged tokens).
pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(header).expect("json")),
        b64(&serde_json::to_vec(claims).expect("json"))
    );
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("sign");
    format!("{input}.{signature}")
}

/// The same token with a different (well-formed, wrong) signature.
pub fn tamper_signature(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').expect("compact jws");
    use base64::Engine as _;
    let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .expect("signature base64");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    bytes[0] ^= 0x80;
    format!("{input}.{}", b64(&bytes))
}

/// What the server answers right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    /// Every request answers 500.
    Fail,
}

struct State {
    /// Served keys, in order: (kid, key).
    served: Mutex<Vec<(String, &'static TestKey)>>,
    /// Every key the IdP ever knew, by kid: the default signer for a token's kid.
    signers: Mutex<HashMap<String, &'static TestKey>>,
    /// The `issuer` of the discovery document (default: this server's base URL).
    discovery_issuer: Mutex<Option<String>>,
    /// Optional `Cache-Control` on JWKS responses.
    cache_control: Mutex<Option<String>>,
    mode: Mutex<Mode>,
    jwks_requests: AtomicUsize,
    discovery_requests: AtomicUsize,
    base: String,
}

impl State {
    fn jwks(&self) -> Value {
        let served = self.served.lock().expect("lock");
        let keys: Vec<Value> = served
            .iter()
            .map(|(kid, key)| key.jwk_with_kid(kid))
            .collect();
        json!({ "keys": keys })
    }

    fn respond(&self, path: &str) -> Response<Full<Bytes>> {
        let counter = match path {
            "/jwks.json" => &self.jwks_requests,
            "/.well-known/openid-configuration" => &self.discovery_requests,
            _ => return reply(StatusCode::NOT_FOUND, "not found".into(), None),
        };
        counter.fetch_add(1, Ordering::SeqCst);
        if *self.mode.lock().expect("lock") == Mode::Fail {
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "{\"error\":\"down\"}".into(),
                None,
            );
        }
        if path == "/jwks.json" {
            let cache_control = self.cache_control.lock().expect("lock").clone();
            reply(StatusCode::OK, self.jwks().to_string(), cache_control)
        } else {
            let issuer = self
                .discovery_issuer
                .lock()
                .expect("lock")
                .clone()
                .unwrap_or_else(|| self.base.clone());
            let document = json!({
                "issuer": issuer,
                "jwks_uri": format!("{}/jwks.json", self.base),
                "token_endpoint": format!("{}/token", self.base),
            });
            reply(StatusCode::OK, document.to_string(), None)
        }
    }
}

fn reply(status: StatusCode, body: String, cache_control: Option<String>) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(value) = cache_control {
        builder = builder.header("cache-control", value);
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

/// A running identity provider. Stops serving on drop.
pub struct Idp {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Idp {
    /// Serves one RSA key, kid `k1`.
    pub async fn start() -> Idp {
        Idp::start_with(&[("k1", keys::rsa())]).await
    }

    /// Serves exactly these keys.
    pub async fn start_with(keys: &[(&str, &'static TestKey)]) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind idp");
        let addr = listener.local_addr().expect("idp addr");
        let state = Arc::new(State {
            served: Mutex::new(Vec::new()),
            signers: Mutex::new(HashMap::new()),
            discovery_issuer: Mutex::new(None),
            cache_control: Mutex::new(None),
            mode: Mutex::new(Mode::Serve),
            jwks_requests: AtomicUsize::new(0),
            discovery_requests: AtomicUsize::new(0),
            base: format!("http://{addr}"),
        });
        let served = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&served);
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let response = state.respond(request.uri().path());
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let idp = Idp { addr, state, task };
        idp.set_keys(keys);
        idp
    }

    /// A `jwks_uri` on a port nothing listens on (bound, then released).
    pub fn absent_jwks_uri() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        format!("http://{addr}/jwks.json")
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the default `iss` of minted tokens and the issuer named by the
    /// discovery document.
    pub fn issuer(&self) -> String {
        self.state.base.clone()
    }

    /// `http://127.0.0.1:PORT/jwks.json`.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks.json", self.state.base)
    }

    /// The JWKS document currently served.
    pub fn jwks(&self) -> Value {
        self.state.jwks()
    }

    /// Replaces the served key set.
    pub fn set_keys(&self, keys: &[(&str, &'static TestKey)]) {
        let mut signers = self.state.signers.lock().expect("lock");
        for (kid, key) in keys {
            signers.insert((*kid).to_owned(), *key);
        }
        *self.state.served.lock().expect("lock") = keys
            .iter()
            .map(|(kid, key)| ((*kid).to_owned(), *key))
            .collect();
    }

    /// Adds a key to the served set (rotation).
    pub fn add_key(&self, kid: &str, key: &'static TestKey) {
        self.state
            .signers
            .lock()
            .expect("lock")
            .insert(kid.to_owned(), key);
        self.state
            .served
            .lock()
            .expect("lock")
            .push((kid.to_owned(), key));
    }

    /// Lets tokens with `kid` be signed by `key` by default, without serving it.
    pub fn register_signer(&self, kid: &str, key: &'static TestKey) {
        self.state
            .signers
            .lock()
            .expect("lock")
            .insert(kid.to_owned(), key);
    }

    /// Number of keys served now.
    pub fn key_count(&self) -> usize {
        self.state.served.lock().expect("lock").len()
    }

    /// `true`: every request answers 500 (the key set is kept for when it recovers).
    pub fn set_failing(&self, failing: bool) {
        *self.state.mode.lock().expect("lock") = if failing { Mode::Fail } else { Mode::Serve };
    }

    /// The `issuer` the discovery document names (default: [`Idp::issuer`]).
    pub fn set_discovery_issuer(&self, issuer: &str) {
        *self.state.discovery_issuer.lock().expect("lock") = Some(issuer.to_owned());
    }

    /// `Cache-Control` sent with the JWKS (none by default).
    pub fn set_cache_control(&self, value: Option<&str>) {
        *self.state.cache_control.lock().expect("lock") = value.map(str::to_owned);
    }

    /// JWKS requests received so far (answered or failed).
    pub fn jwks_requests(&self) -> usize {
        self.state.jwks_requests.load(Ordering::SeqCst)
    }

    pub fn discovery_requests(&self) -> usize {
        self.state.discovery_requests.load(Ordering::SeqCst)
    }

    /// Waits (bounded by `within`) until at least `n` JWKS requests arrived.
    pub async fn wait_jwks_requests(&self, n: usize, within: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.jwks_requests() >= n {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.jwks_requests() >= n
    }

    /// A token builder with defaults: `iss` = [`Idp::issuer`], `sub` `svc-1`, `aud` `api`,
    /// `iat` now, `exp` in 300 s, header `kid` `k1` and the alg of its key.
    pub fn token(&self) -> TokenBuilder {
        TokenBuilder {
            signers: self.state.signers.lock().expect("lock").clone(),
            claims: {
                let now = now();
                let mut claims = Map::new();
                claims.insert("iss".into(), json!(self.issuer()));
                claims.insert("sub".into(), json!("svc-1"));
                claims.insert("aud".into(), json!("api"));
                claims.insert("iat".into(), json!(now));
                claims.insert("exp".into(), json!(now + 300));
                claims
            },
            kid: Some("k1".into()),
            alg: None,
            typ: None,
            key: None,
        }
    }
}

/// Builds and signs one token. Claims are plain JSON; setters replace.
#[derive(Clone)]
pub struct TokenBuilder {
    signers: HashMap<String, &'static TestKey>,
    claims: Map<String, Value>,
    kid: Option<String>,
    alg: Option<Algorithm>,
    typ: Option<String>,
    key: Option<&'static TestKey>,
}

impl TokenBuilder {
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.claims.insert(name.to_owned(), value);
        self
    }

    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    pub fn iss(self, iss: &str) -> Self {
        self.claim("iss", json!(iss))
    }

    pub fn sub(self, sub: &str) -> Self {
        self.claim("sub", json!(sub))
    }

    /// `aud` as a string.
    pub fn aud(self, aud: &str) -> Self {
        self.claim("aud", json!(aud))
    }

    /// `scope` as a space-separated string.
    pub fn scope(self, scope: &str) -> Self {
        self.claim("scope", json!(scope))
    }

    /// `scp` as an array.
    pub fn scp(self, scopes: &[&str]) -> Self {
        self.claim("scp", json!(scopes))
    }

    pub fn client_id(self, id: &str) -> Self {
        self.claim("client_id", json!(id))
    }

    /// `exp` = now + `seconds` (negative: already expired).
    pub fn exp_in(self, seconds: i64) -> Self {
        self.claim("exp", json!(now() + seconds))
    }

    pub fn kid(mut self, kid: &str) -> Self {
        self.kid = Some(kid.to_owned());
        self
    }

    pub fn no_kid(mut self) -> Self {
        self.kid = None;
        self
    }

    pub fn alg(mut self, alg: Algorithm) -> Self {
        self.alg = Some(alg);
        self
    }

    pub fn typ(mut self, typ: &str) -> Self {
        self.typ = Some(typ.to_owned());
        self
    }

    /// Signs with this key instead of the IdP's key for the kid.
    pub fn key(mut self, key: &'static TestKey) -> Self {
        self.key = Some(key);
        self
    }

    pub fn claims(&self) -> Value {
        Value::Object(self.claims.clone())
    }

    fn signing_key(&self) -> &'static TestKey {
        self.key
            .or_else(|| {
                self.kid
                    .as_ref()
                    .and_then(|kid| self.signers.get(kid).copied())
            })
            .or_else(|| self.signers.get("k1").copied())
            .unwrap_or_else(keys::rsa)
    }

    fn header(&self, alg: Algorithm) -> Header {
        let mut header = Header::new(alg);
        header.kid = self.kid.clone();
        header.typ = self.typ.clone().or(Some("JWT".into()));
        header
    }

    /// The header JSON `sign` would use, for crafting variants.
    pub fn header_json(&self) -> Value {
        let alg = self.alg.unwrap_or(self.signing_key().alg);
        serde_json::to_value(self.header(alg)).expect("header json")
    }

    /// Signs with `jsonwebtoken::encode`.
    pub fn sign(&self) -> String {
        let key = self.signing_key();
        let alg = self.alg.unwrap_or(key.alg);
        jsonwebtoken::encode(&self.header(alg), &self.claims(), &key.encoding).expect("encode")
    }

    /// HS256 (or the set HMAC alg) with a shared secret; no `kid` unless one was set
    /// explicitly after `no_kid`.
    pub fn sign_with_hmac(&self, secret: &[u8]) -> String {
        let alg = match self.alg {
            Some(alg @ (Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)) => alg,
            _ => Algorithm::HS256,
        };
        jsonwebtoken::encode(
            &self.header(alg),
            &self.claims(),
            &EncodingKey::from_secret(secret),
        )
        .expect("encode")
    }

    /// Exactly `header` (arbitrary JSON), signed with the builder's key under `alg`.
    pub fn sign_with_header(&self, header: &Value, alg: Algorithm) -> String {
        sign_raw(header, &self.claims(), &self.signing_key().encoding, alg)
    }

    /// A well-formed token whose signature does not verify.
    pub fn sign_bad_signature(&self) -> String {
        tamper_signature(&self.sign())
    }
}
