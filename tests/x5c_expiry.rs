//! `authgate_certificate_expiry_timestamp_seconds{kind="jwks_x5c", name="<issuer>/<kid>"}`
//! (issue 16): the `notAfter` of the certificate a key set publishes with a key (`x5c`), set
//! from the key set in use, so a rotated key set moves it and drops the old key's series.

mod support;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rcgen::{CertificateParams, DnType, KeyPair};
use serde_json::{json, Value};

use support::config::Config;
use support::gateway::{eventually, ConfigFile, Gateway, TIMEOUT};

/// An ES256 JWK whose `x5c` holds a self-signed certificate for the key, valid until
/// `not_after` (UTC midnight).
fn jwk_with_x5c(kid: &str, (year, month, day): (i32, u8, u8)) -> Value {
    let key = KeyPair::generate().expect("p-256 key");
    let point = key.public_key_raw();
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "idp token signing");
    params.not_after = rcgen::date_time_ymd(year, month, day);
    let cert = params.self_signed(&key).expect("certificate");
    json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        "x5c": [STANDARD.encode(cert.der())],
    })
}

fn expiry_lines(metrics: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("authgate_certificate_expiry_timestamp_seconds{")
                && line.contains(r#"kind="jwks_x5c""#)
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn x5c_certificates_of_a_key_set_have_an_expiry_metric() {
    let dir = std::env::temp_dir().join(format!("authgate-x5c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = dir.join("jwks.json");
    // 2031-05-06 and 2032-01-02, 00:00:00 UTC.
    let (first, second) = (1_935_792_000_i64, 1_956_614_400_i64);
    let mut plain = jwk_with_x5c("no-x5c", (2030, 1, 1));
    plain.as_object_mut().unwrap().remove("x5c");
    let write_jwks = |keys: Vec<Value>| {
        std::fs::write(&jwks, json!({ "keys": keys }).to_string()).unwrap();
    };
    write_jwks(vec![jwk_with_x5c("k1", (2031, 5, 6))]);
    let config = ConfigFile::new(
        &Config::new()
            .issuer(
                "files",
                &format!(
                    "issuer = \"https://files.example\"\njwks_file = {jwks:?}\naudiences = [\"api\"]"
                ),
            )
            .upstream("echo", "http://127.0.0.1:9")
            .route("all", "/", "")
            .toml(),
    );
    let gateway = Gateway::from_file(&config.0).start().await;
    let lines = expiry_lines(&gateway.metrics().await);
    assert_eq!(
        lines,
        [format!(
            r#"authgate_certificate_expiry_timestamp_seconds{{kind="jwks_x5c",name="files/k1"}} {first}"#
        )],
        "{lines:?}"
    );

    // A rotated key set: the new key's certificate, the old series gone; a key without x5c
    // adds none.
    write_jwks(vec![jwk_with_x5c("k2", (2032, 1, 2)), plain]);
    gateway.reload_applied().await;
    let expected = format!(
        r#"authgate_certificate_expiry_timestamp_seconds{{kind="jwks_x5c",name="files/k2"}} {second}"#
    );
    let rotated = eventually(TIMEOUT, || async {
        expiry_lines(&gateway.metrics().await) == [expected.clone()]
    })
    .await;
    assert!(rotated, "{:?}", expiry_lines(&gateway.metrics().await));
    gateway.shutdown().await;
    std::fs::remove_dir_all(&dir).ok();
}
