//! `authgate token`: mints a test token for one issuer entry of a config, so that a config of
//! one's own can be tried end to end (`explain`, `run` + curl) before an identity provider
//! is wired up.
//!
//! It signs only with key material the config (or the caller) already holds: the issuer's
//! `hmac_secret`, or for a `jwks_file` issuer the private key given with `--key`. It refuses
//! remote issuers (`jwks_uri`, `discovery`): their keys live with the identity provider, and a
//! token for them must come from it. The claims are built to meet the entry's rules (`iss`,
//! `aud`, client id, `typ`, `required_claims`), and the token is verified against the entry's
//! own key set before it is printed, so a key that is not in the set is an error, not a
//! token that fails later. It never prints the secret or the key, only the token (stdout).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};

use crate::auth::jwks::KeySource;
use crate::auth::jwt::{self, TokenError, TokenPolicy, Unverified};
use crate::auth::keys::{KeyFamily, KeySet};
use crate::metrics::Metrics;
use crate::server::ConfigOrigin;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Config file.
    #[arg(short, long)]
    pub config: PathBuf,
    /// The `[[issuers]]` entry's `name`.
    #[arg(long)]
    pub issuer: String,
    /// The `sub` claim.
    #[arg(long, default_value = "test-client")]
    pub sub: String,
    /// Granted scopes, space-separated (in the entry's first `scope_claims` claim).
    #[arg(long)]
    pub scope: Option<String>,
    /// The `aud` claim; default: the entry's first audience.
    #[arg(long)]
    pub aud: Option<String>,
    /// The client id (in the first `client_id_claims` claim); default: the first of
    /// `allowed_clients`, else the subject.
    #[arg(long)]
    pub client_id: Option<String>,
    /// Lifetime, e.g. `5m`, `1h`.
    #[arg(long, default_value = "5m")]
    pub ttl: String,
    /// PEM private key of one of a `jwks_file` issuer's keys.
    #[arg(long, value_name = "PRIVATE_KEY_PEM")]
    pub key: Option<PathBuf>,
    /// Bind the token to this PEM client certificate (RFC 8705 `cnf.x5t#S256`).
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
}

/// Why no token was minted: all bad input (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("no issuer entry named {0:?} in the config")]
    UnknownIssuer(String),
    #[error(
        "issuer {0} fetches its keys ({1}): only that identity provider can mint its tokens; \
         authgate token signs for hmac_secret and jwks_file issuers"
    )]
    Remote(String, String),
    #[error("issuer {0} uses jwks_file: pass --key with the private key (PEM) of one of its keys")]
    KeyNeeded(String),
    #[error("issuer {0} uses hmac_secret: --key is only for jwks_file issuers")]
    KeyNotUsed(String),
    #[error("issuer {0}: cannot load its keys: {1}")]
    Keys(String, String),
    #[error("issuer {0} allows no {1} algorithm in `algorithms`")]
    NoAlgorithm(String, &'static str),
    #[error("invalid --ttl: {0}")]
    Ttl(String),
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, String),
    #[error("--key {0} is not the private key of any key in issuer {1}'s jwks_file (for algorithms {2})")]
    KeyNotInSet(PathBuf, String, String),
    #[error("cannot sign the token: {0}")]
    Sign(String),
}

/// A minted token, and why the entry would refuse it anyway (a `--aud` it does not accept,
/// a `--ttl` above `max_token_lifetime`), if it would.
pub struct Minted {
    pub token: String,
    pub refused: Option<TokenError>,
}

/// `authgate token`.
pub async fn run(args: &Args) -> Result<Minted, MintError> {
    let snapshot = ConfigOrigin::File(args.config.clone()).load(&Metrics::new(), None)?;
    let issuer = snapshot
        .issuer_named(&args.issuer)
        .ok_or_else(|| MintError::UnknownIssuer(args.issuer.clone()))?;
    let name = issuer.name.clone();
    let source = issuer.store.source();
    match (source, &args.key) {
        (KeySource::JwksUri { .. } | KeySource::Discovery { .. }, _) => {
            return Err(MintError::Remote(name, source.to_string()));
        }
        (KeySource::File(_), None) => return Err(MintError::KeyNeeded(name)),
        (KeySource::Hmac(_), Some(_)) => return Err(MintError::KeyNotUsed(name)),
        (KeySource::File(_), Some(_)) | (KeySource::Hmac(_), None) => {}
    }
    issuer
        .store
        .load_once()
        .await
        .map_err(|error| MintError::Keys(name.clone(), error))?;
    let keys = issuer
        .store
        .keys()
        .ok_or_else(|| MintError::Keys(name.clone(), "no usable key".into()))?;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let ttl = crate::config::parse_duration(&args.ttl).map_err(MintError::Ttl)?;
    let cert = match &args.cert {
        None => None,
        Some(path) => Some(certificate_sha256(path)?),
    };
    let claims = claims(args, &issuer.policy, now, ttl.as_secs(), cert.as_ref());
    let typ = issuer
        .policy
        .token_types
        .first()
        .cloned()
        .unwrap_or_else(|| "JWT".to_owned());
    let signer = Signer {
        policy: &issuer.policy,
        keys: &keys,
        claims: &claims,
        typ: &typ,
        now,
        cert: cert.as_ref(),
    };
    match (source, &args.key) {
        (KeySource::Hmac(secret), _) => {
            let alg = issuer
                .policy
                .algorithms
                .iter()
                .copied()
                .find(|&alg| KeyFamily::Hmac.fits(alg))
                .ok_or(MintError::NoAlgorithm(name, "HS"))?;
            let key = EncodingKey::from_secret(secret.expose());
            signer
                .try_sign(alg, None, &key)?
                .ok_or_else(|| MintError::Sign("the secret does not verify".into()))
        }
        (_, Some(path)) => {
            let pem =
                std::fs::read(path).map_err(|e| MintError::Read(path.clone(), e.to_string()))?;
            signer.with_private_key(&pem)?.ok_or_else(|| {
                let algs: Vec<String> = issuer
                    .policy
                    .algorithms
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect();
                MintError::KeyNotInSet(path.clone(), name, algs.join(", "))
            })
        }
        (_, None) => Err(MintError::KeyNeeded(name)),
    }
}

/// Claims that meet `policy`, from the arguments.
fn claims(
    args: &Args,
    policy: &TokenPolicy,
    now: u64,
    ttl: u64,
    cert: Option<&[u8; 32]>,
) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(policy.issuer));
    claims.insert("sub".into(), json!(args.sub));
    if let Some(aud) = args.aud.as_ref().or(policy.audiences.first()) {
        claims.insert("aud".into(), json!(aud));
    }
    let client_id = args
        .client_id
        .as_ref()
        .or_else(|| {
            policy
                .allowed_clients
                .as_ref()
                .and_then(|list| list.first())
        })
        .unwrap_or(&args.sub);
    if let Some(claim) = policy.client_id_claims.first() {
        claims.insert(claim.clone(), json!(client_id));
    }
    if let (Some(scope), Some(claim)) = (&args.scope, policy.scope_claims.first()) {
        claims.insert(claim.clone(), json!(scope));
    }
    for (claim, values) in &policy.required_claims {
        if let Some(value) = values.first() {
            claims.entry(claim.clone()).or_insert_with(|| value.clone());
        }
    }
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now.saturating_add(ttl)));
    if let Some(digest) = cert {
        claims.insert(
            "cnf".into(),
            json!({ "x5t#S256": URL_SAFE_NO_PAD.encode(digest) }),
        );
    }
    claims
}

/// Signs and checks the result against the issuer's own key set.
struct Signer<'a> {
    policy: &'a TokenPolicy,
    keys: &'a KeySet,
    claims: &'a Map<String, Value>,
    typ: &'a str,
    now: u64,
    cert: Option<&'a [u8; 32]>,
}

impl Signer<'_> {
    /// `Some` once the token verifies under the key set (whatever the claims checks say).
    fn try_sign(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        key: &EncodingKey,
    ) -> Result<Option<Minted>, MintError> {
        let mut header = Header::new(alg);
        header.typ = Some(self.typ.to_owned());
        header.kid = kid.map(str::to_owned);
        let Ok(token) = jsonwebtoken::encode(&header, self.claims, key) else {
            return Ok(None); // the key does not fit this algorithm
        };
        let unverified =
            Unverified::decode(&token).map_err(|e| MintError::Sign(e.description().into()))?;
        match jwt::verify(&unverified, self.policy, self.keys, self.now, self.cert) {
            Ok(_) => Ok(Some(Minted {
                token,
                refused: None,
            })),
            Err(
                TokenError::BadSignature
                | TokenError::UnknownKey
                | TokenError::NoMatchingKey
                | TokenError::AlgorithmNotAllowed,
            ) => Ok(None),
            // The signature held (it is checked before the claims): the key is right.
            Err(error) => Ok(Some(Minted {
                token,
                refused: Some(error),
            })),
        }
    }

    /// Tries the PEM key with each of the issuer's asymmetric algorithms and each fitting
    /// `kid` of the set.
    fn with_private_key(&self, pem: &[u8]) -> Result<Option<Minted>, MintError> {
        for &alg in &self.policy.algorithms {
            let key = match alg {
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512 => EncodingKey::from_rsa_pem(pem),
                Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
                Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => continue,
            };
            let Ok(key) = key else { continue };
            for candidate in self.keys.iter().filter(|candidate| candidate.fits(alg)) {
                if let Some(minted) = self.try_sign(alg, candidate.kid(), &key)? {
                    return Ok(Some(minted));
                }
            }
        }
        Ok(None)
    }
}

/// SHA-256 of the first certificate of a PEM file.
fn certificate_sha256(path: &std::path::Path) -> Result<[u8; 32], MintError> {
    let chain = crate::tls::pem::certificates(path)
        .map_err(|e| MintError::Read(path.to_path_buf(), crate::logging::error_chain(&e)))?;
    let leaf = chain
        .first()
        .ok_or_else(|| MintError::Read(path.to_path_buf(), "no certificate in the file".into()))?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf.as_ref());
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(digest.as_ref());
    Ok(sha256)
}
