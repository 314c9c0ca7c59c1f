//! Unit tests of the API key store: hash formats, lookup, argon2id entries, refusals.

use super::*;
use argon2::password_hash::{PasswordHasher, SaltString};

fn spec<'a>(id: &'a str, hash: &'a str) -> KeySpec<'a> {
    KeySpec {
        id,
        hash,
        client_id: "partner-a",
        scopes: vec!["read:assets".into()],
        claims: Map::new(),
        expires_at: None,
        disabled: false,
    }
}

fn source(keys: Vec<ApiKey>) -> Arc<ApiKeySource> {
    Arc::new(ApiKeySource::new("partners", KeyHeader::Authorization, keys).unwrap())
}

fn argon2id(key: &str) -> String {
    // Small parameters keep the test fast; the format is what matters here.
    let params = argon2::Params::new(1024, 1, 1, None).unwrap();
    let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
    argon
        .hash_password(key.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

#[test]
fn sha256_hash_is_of_the_exact_key_string() {
    assert_eq!(
        sha256_hash("abc"),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn generated_keys_name_their_id_and_differ() {
    let one = generate("k1").unwrap();
    let two = generate("k1").unwrap();
    assert_ne!(one, two);
    assert_eq!(named_id(&one), Some("k1"));
    assert!(!one.contains('.') && one.len() == 4 + 2 + 1 + 43, "{one}");
}

#[test]
fn hash_formats() {
    let good = sha256_hash("x");
    assert!(StoredHash::parse(&good).is_ok());
    for bad in [
        "",
        "plaintext-key",
        "sha256:",
        &good.to_uppercase(),
        &format!("sha256:{}", "A".repeat(64)),
        &format!("sha256:{}", "a".repeat(63)),
        &format!("sha256:{}", "g".repeat(64)),
        "$argon2id$v=19$m=notanumber",
        // Above the cost limits.
        "$argon2id$v=19$m=1048576,t=1,p=1$c2FsdHNhbHRzYWx0$2sbGgqlNxKSGJ3pA3Pr1Ex2YQiNMi5Vp/tvJ+n9PqEU",
        "$argon2id$v=19$m=1024,t=50,p=1$c2FsdHNhbHRzYWx0$2sbGgqlNxKSGJ3pA3Pr1Ex2YQiNMi5Vp/tvJ+n9PqEU",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
    ] {
        assert!(StoredHash::parse(bad).is_err(), "{bad:?} must be refused");
    }
    assert!(StoredHash::parse(&argon2id("agk_k1_secret")).is_ok());
}

#[tokio::test]
async fn sha256_lookup_finds_only_the_exact_key() {
    let key = "agk_k1_0123456789";
    let hash = sha256_hash(key);
    let sources = [source(vec![ApiKey::new(
        "partners",
        &[],
        spec("k1", &hash),
    )
    .unwrap()])];
    let (verified, source) = authenticate(&sources, key, 0).await.unwrap();
    assert_eq!(source, "partners");
    assert_eq!(verified.principal.key_id.as_deref(), Some("k1"));
    assert_eq!(verified.principal.client_id.as_deref(), Some("partner-a"));
    for wrong in [
        "agk_k1_012345678",
        "agk_k1_0123456789 ",
        "AGK_k1_0123456789",
        "",
    ] {
        assert_eq!(
            authenticate(&sources, wrong, 0).await.err(),
            Some(ApiKeyError::Unknown),
            "{wrong:?}"
        );
    }
}

#[tokio::test]
async fn argon2id_entries_are_found_by_the_id_the_key_names() {
    let key = "agk_low-1_hunter2";
    let hash = argon2id(key);
    let sources = [source(vec![ApiKey::new(
        "partners",
        &[],
        spec("low-1", &hash),
    )
    .unwrap()])];
    for _ in 0..2 {
        // The second time comes from the remembered digest.
        let (verified, _) = authenticate(&sources, key, 0).await.unwrap();
        assert_eq!(verified.principal.key_id.as_deref(), Some("low-1"));
    }
    for wrong in ["agk_low-1_hunter3", "hunter2", "agk_other_hunter2"] {
        assert_eq!(
            authenticate(&sources, wrong, 0).await.err(),
            Some(ApiKeyError::Unknown),
            "{wrong:?}"
        );
    }
}

#[tokio::test]
async fn expired_and_disabled_keys_are_refused_with_their_reason() {
    let expired = sha256_hash("old");
    let disabled = sha256_hash("off");
    let sources = [source(vec![
        ApiKey::new(
            "partners",
            &[],
            KeySpec {
                expires_at: Some(100),
                ..spec("old", &expired)
            },
        )
        .unwrap(),
        ApiKey::new(
            "partners",
            &[],
            KeySpec {
                disabled: true,
                ..spec("off", &disabled)
            },
        )
        .unwrap(),
    ])];
    assert!(authenticate(&sources, "old", 99).await.is_ok());
    assert_eq!(
        authenticate(&sources, "old", 100).await.err(),
        Some(ApiKeyError::Expired {
            key_id: "old".into()
        })
    );
    assert_eq!(
        authenticate(&sources, "off", 0).await.err(),
        Some(ApiKeyError::Disabled {
            key_id: "off".into()
        })
    );
    assert_eq!(sources[0].active(99), 1);
    assert_eq!(sources[0].active(100), 0);
}

#[test]
fn duplicates_are_refused() {
    let hash = sha256_hash("k");
    let twice = |a: &str, b: &str, ha: &str, hb: &str| {
        ApiKeySource::new(
            "s",
            KeyHeader::Authorization,
            vec![
                ApiKey::new("s", &[], spec(a, ha)).unwrap(),
                ApiKey::new("s", &[], spec(b, hb)).unwrap(),
            ],
        )
        .err()
    };
    assert_eq!(
        twice("a", "a", &hash, &sha256_hash("other")),
        Some(Duplicate::Id(1))
    );
    assert_eq!(twice("a", "b", &hash, &hash), Some(Duplicate::Hash(1)));
}

#[test]
fn identity_headers_and_claims() {
    let mut claims = Map::new();
    claims.insert("org".into(), Value::String("org-456".into()));
    claims.insert("tier".into(), Value::from(3));
    let key = ApiKey::new(
        "partners",
        &[
            (HeaderName::from_static("x-auth-org"), "org".into()),
            (HeaderName::from_static("x-auth-tier"), "tier".into()),
            (HeaderName::from_static("x-auth-missing"), "nope".into()),
        ],
        KeySpec {
            claims,
            ..spec("k1", &sha256_hash("x"))
        },
    )
    .unwrap();
    let headers: Vec<(String, String)> = key
        .verified
        .principal
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let expected = [
        ("x-auth-subject", "partner-a"),
        ("x-auth-issuer", "apikey:partners"),
        ("x-auth-client-id", "partner-a"),
        ("x-auth-scopes", "read:assets"),
        ("x-auth-key-id", "k1"),
        ("x-auth-org", "org-456"),
        ("x-auth-tier", "3"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(headers, expected);
}

#[test]
fn ids_and_key_names() {
    for good in ["k1", "partner-a-2027", &"a".repeat(64)] {
        assert!(valid_id(good), "{good}");
    }
    for bad in ["", "a_b", "a.b", "a b", "ü", &"a".repeat(65)] {
        assert!(!valid_id(bad), "{bad}");
    }
    assert_eq!(named_id("agk_k1_s3cr_et"), Some("k1"));
    assert_eq!(named_id("agk_k1_"), None);
    assert_eq!(named_id("agk__x"), None);
    assert_eq!(named_id("sk_k1_x"), None);
    assert!(ApiKey::new("s", &[], spec("a_b", &sha256_hash("x"))).is_err());
}
