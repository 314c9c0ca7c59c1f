//! `authgate token` (issue 16): a test token for an `hmac_secret` issuer, or a `jwks_file`
//! issuer given its private key, that `explain` accepts; remote issuers are refused.

#[path = "support/pki.rs"]
mod pki;
mod support;

use std::process::{Command, Output};

use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::json;

use pki::Scratch;
use support::config::Config;

const SECRET: &str = "token-test-secret-0123456789abcdefgh";

fn authgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(args)
        .env("RUST_LOG", "off")
        .env("TOKEN_TEST_SECRET", SECRET)
        .output()
        .expect("run authgate")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The command failed with exit code 1 and said `needle` on stderr.
fn assert_refused(output: &Output, needle: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
    assert!(stderr(output).contains(needle), "{}", stderr(output));
}

/// A P-256 private key as PEM and its public JWK.
fn ec_key() -> (String, serde_json::Value) {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let pkcs8 = pair.to_pkcs8v1().unwrap();
    let body = STANDARD.encode(pkcs8.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    let point = pair.public_key().as_ref();
    let jwk = json!({
        "kty": "EC", "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    (pem, jwk)
}

/// The config, with `jwks.json` holding `jwks` (default: one key nobody here holds).
fn config(scratch: &Scratch, jwks: Option<&serde_json::Value>) -> String {
    let fallback = json!({ "keys": [ec_key().1] });
    scratch.write("jwks.json", &jwks.unwrap_or(&fallback).to_string());
    let text = Config::new()
        .issuer(
            "internal",
            "issuer = \"https://auth.internal.example\"\nhmac_secret = \"${TOKEN_TEST_SECRET}\"\n\
             audiences = [\"orders\"]\nmax_token_lifetime = \"1h\"",
        )
        .issuer(
            "files",
            "issuer = \"https://files.example\"\njwks_file = \"jwks.json\"\n\
             audiences = [\"api://files\"]\ntoken_types = [\"at+jwt\"]\n\
             required_claims = { token_use = \"access\" }\nallowed_clients = [\"batch\"]",
        )
        .jwks_issuer(
            "remote",
            "https://idp.example.com/",
            "https://idp.example.com/jwks.json",
            "audiences = [\"orders\"]",
        )
        .upstream("orders", "http://127.0.0.1:9")
        .route_to(
            "orders",
            "/orders",
            "orders",
            "issuers = [\"internal\"]\nscopes = [\"orders:read\"]",
        )
        .route_to(
            "files",
            "/files",
            "orders",
            "issuers = [\"files\"]\nscopes = [\"files:read\"]",
        )
        .tables();
    let path = scratch.write("token.toml", &text);
    path.to_str().unwrap().to_owned()
}

#[test]
fn an_hmac_token_is_accepted_by_explain() {
    let scratch = Scratch::new("token-hmac");
    let config = config(&scratch, None);
    let minted = authgate(&[
        "token",
        "-c",
        &config,
        "--issuer",
        "internal",
        "--sub",
        "svc-7",
        "--scope",
        "orders:read profile",
        "--ttl",
        "10m",
    ]);
    assert!(minted.status.success(), "{}", stderr(&minted));
    let token = stdout(&minted);
    assert_eq!(token.split('.').count(), 3, "one JWT on stdout: {token}");
    assert!(!stdout(&minted).contains(SECRET) && !stderr(&minted).contains(SECRET));
    let explained = authgate(&[
        "explain",
        "-c",
        &config,
        "--path",
        "/orders/1",
        "--token",
        &token,
    ]);
    let out = stdout(&explained);
    assert_eq!(explained.status.code(), Some(0), "{out}");
    assert!(out.contains("x-auth-subject: svc-7"), "{out}");
    assert!(out.contains("x-auth-scopes: orders:read profile"), "{out}");
    assert!(out.contains("exp - iat = 600s"), "{out}");

    // A token the entry would refuse is still printed, with a note saying why.
    let minted = authgate(&[
        "token", "-c", &config, "--issuer", "internal", "--ttl", "2h",
    ]);
    assert!(minted.status.success(), "{}", stderr(&minted));
    assert!(
        stderr(&minted).contains("would refuse this token: the token lifetime is longer"),
        "{}",
        stderr(&minted)
    );
}

#[test]
fn a_jwks_file_token_needs_a_key_of_the_set() {
    let scratch = Scratch::new("token-jwks");
    let (pem, jwk) = ec_key();
    let (stranger_pem, _) = ec_key();
    let mut jwk = jwk;
    jwk["kid"] = json!("batch-1");
    let (_, other) = ec_key();
    let jwks = json!({ "keys": [other, jwk] });
    let config = config(&scratch, Some(&jwks));
    let key = scratch.write("key.pem", &pem);
    let stranger = scratch.write("stranger.pem", &stranger_pem);

    let needs_key = authgate(&["token", "-c", &config, "--issuer", "files"]);
    assert_refused(&needs_key, "pass --key");

    // `authgate token` for the entry `files`, signed with the key in `pem_file`.
    let mint_with = |pem_file: &std::path::Path, more: &[&str]| {
        let key = pem_file.to_str().unwrap();
        let args = ["token", "-c", &config, "--issuer", "files", "--key", key];
        authgate(&[&args[..], more].concat())
    };
    let minted = mint_with(&key, &["--scope", "files:read"]);
    assert!(minted.status.success(), "{}", stderr(&minted));
    let token = stdout(&minted);
    let explained = authgate(&[
        "explain", "-c", &config, "--path", "/files/a", "--token", &token,
    ]);
    let out = stdout(&explained);
    assert_eq!(explained.status.code(), Some(0), "{out}");
    // The kid of the matching key, the entry's typ, required claim and allowed client.
    assert!(out.contains(r#"kid "batch-1", typ "at+jwt""#), "{out}");
    assert!(
        out.contains(r#"token_use "access" == required "access""#),
        "{out}"
    );
    assert!(
        out.contains(r#""batch" (claim client_id) ∈ allowed_clients"#),
        "{out}"
    );

    let wrong = mint_with(&stranger, &[]);
    assert_refused(&wrong, "is not the private key of any key");
    assert!(stdout(&wrong).is_empty());
}

#[test]
fn remote_and_unknown_issuers_are_refused() {
    let scratch = Scratch::new("token-remote");
    let config = config(&scratch, None);
    let remote = authgate(&["token", "-c", &config, "--issuer", "remote"]);
    assert_refused(&remote, "issuer remote fetches its keys (jwks_uri https://idp.example.com/jwks.json): only that identity provider can mint its tokens");
    assert!(stdout(&remote).is_empty());
    let unknown = authgate(&["token", "-c", &config, "--issuer", "nope"]);
    assert_refused(&unknown, r#"no issuer entry named "nope""#);
    let key_for_hmac = authgate(&[
        "token", "-c", &config, "--issuer", "internal", "--key", "x.pem",
    ]);
    assert_refused(&key_for_hmac, "--key is only for jwks_file issuers");
}
