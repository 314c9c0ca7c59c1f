use std::path::PathBuf;

const HASH_A: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
const HASH_B: &str = "sha256:486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7";

/// A directory of its own per test, holding `config.toml` and the key files.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("authgate-apikeys-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Loads `config` as the file `config.toml` of this directory.
    fn load(&self, config: &str) -> Result<crate::snapshot::Snapshot, String> {
        let path = self.write("config.toml", config);
        super::super::tests::load_at(&path.display().to_string(), config, None)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// No issuer at all: a keys-only route needs none (SPEC §7.1).
fn config(source_extra: &str, route_extra: &str) -> String {
    format!(
        "[[upstreams]]\nname = \"u\"\nurl = \"http://127.0.0.1:9\"\n\n\
         [[api_keys]]\nname = \"partners\"\nfile = \"keys.toml\"\n{source_extra}\n\n\
         [[routes]]\nname = \"r\"\npath_prefix = \"/x\"\nupstream = \"u\"\n\
         api_keys = [\"partners\"]\n{route_extra}\n"
    )
}

fn key(id: &str, hash: &str, extra: &str) -> String {
    format!("[[keys]]\nid = \"{id}\"\nhash = \"{hash}\"\nclient_id = \"c\"\n{extra}\n")
}

#[test]
fn a_keys_only_config_needs_no_issuer_and_resolves_the_file_next_to_it() {
    let dir = Dir::new("valid");
    dir.write(
        "keys.toml",
        &format!(
            "{}{}",
            key(
                "a",
                HASH_A,
                "scopes = [\"s\"]\nexpires = \"2030-01-01T00:00:00+01:00\""
            ),
            key("b", HASH_B, "disabled = true\norg = \"o\"")
        ),
    );
    let snapshot = dir.load(&config("", "")).unwrap();
    assert!(snapshot.issuers.is_empty());
    assert_eq!(snapshot.routes[0].api_keys, vec![0]);
    assert!(snapshot.routes[0].issuers.is_empty(), "keys only");
    let source = &snapshot.api_keys[0];
    assert_eq!(source.keys().len(), 2);
    assert_eq!(source.keys()[0].expires_at, Some(1_893_452_400));
    assert!(source.keys()[1].disabled);
}

#[test]
fn key_file_errors_name_the_key_file_and_line() {
    let dir = Dir::new("errors");
    let keys = dir.0.join("keys.toml").display().to_string();
    let cases: Vec<(String, String)> = vec![
        (
            format!("{}bogus = 1\n", key("a", HASH_A, "")),
            format!("{keys}:6: keys[0].bogus: unknown field `bogus`"),
        ),
        (
            key("a", "plain-text-key", ""),
            format!("{keys}:3: keys[0].hash: hash must be"),
        ),
        (
            key("a", &HASH_A.to_uppercase().replace("SHA256", "sha256"), ""),
            format!("{keys}:3: keys[0].hash: a sha256 hash must be"),
        ),
        (
            format!("{}{}", key("a", HASH_A, ""), key("a", HASH_B, "")),
            format!("{keys}:7: keys[1].id: duplicate key id \"a\""),
        ),
        (
            format!("{}{}", key("a", HASH_A, ""), key("b", HASH_A, "")),
            format!("{keys}:8: keys[1].hash: duplicate key hash"),
        ),
        (
            key("a", HASH_A, "expires = \"next year\""),
            format!("{keys}:5: keys[0].expires: not an RFC 3339 time"),
        ),
        (
            key("a_b", HASH_A, ""),
            format!("{keys}:2: keys[0].id: id \"a_b\" must be"),
        ),
        (
            key("a", HASH_A, "claims = { org = \"x\" }\norg = \"y\""),
            format!("{keys}:6: keys[0].org: org is also set in claims"),
        ),
        (
            "[[keys]]\nid = \"a\"\nclient_id = \"c\"\n".into(),
            format!("{keys}:1: missing field `hash`"),
        ),
        ("keys = 3\n".into(), format!("{keys}:1: keys: invalid type")),
    ];
    for (file, expected) in cases {
        dir.write("keys.toml", &file);
        let error = dir.load(&config("", "")).err().unwrap_or_default();
        assert!(
            error.starts_with(&expected),
            "key file\n{file}\nexpected {expected:?}\ngot      {error:?}"
        );
        assert!(!error.contains("plain-text-key") || expected.contains("plain-text-key"));
    }
}

#[test]
fn config_errors_about_api_keys() {
    let dir = Dir::new("config");
    dir.write("keys.toml", &key("a", HASH_A, ""));
    let cases = [
        (
            config("", "public = true"),
            "routes[0].api_keys: a public route takes no API keys",
        ),
        (
            config("", "").replace("api_keys = [\"partners\"]", "api_keys = [\"nope\"]"),
            "routes[0].api_keys: unknown api_keys source \"nope\"",
        ),
        (
            config("", "").replace("api_keys = [\"partners\"]", "api_keys = []"),
            "routes[0].api_keys: must not be empty",
        ),
        (
            config("", "").replace("keys.toml", "missing.toml"),
            "api_keys[0].file: cannot read",
        ),
        (
            config("header = \"X-Request-Id\"", ""),
            "api_keys[0].header: header \"X-Request-Id\" is reserved",
        ),
        (
            config("claim_headers = { \"X-Auth-Key-Id\" = \"org\" }", ""),
            "api_keys[0].claim_headers: header \"X-Auth-Key-Id\" is reserved",
        ),
        (
            format!(
                "{}{}",
                config("", ""),
                "[[api_keys]]\nname = \"partners\"\nfile = \"keys.toml\"\n"
            ),
            "api_keys[1].name: duplicate api_keys name",
        ),
    ];
    for (text, expected) in cases {
        let error = dir.load(&text).err().unwrap_or_default();
        assert!(
            error.contains(expected),
            "expected {expected:?}\ngot {error:?}"
        );
    }
    // Without `api_keys` and without issuers a protected route is still invalid.
    let error = dir
        .load(&config("", "").replace("api_keys = [\"partners\"]", ""))
        .err()
        .unwrap_or_default();
    assert!(error.contains("needs a token but no issuer"), "{error}");
}

#[test]
fn a_named_header_and_claim_headers_compile() {
    let dir = Dir::new("header");
    dir.write(
        "keys.toml",
        &key("a", HASH_A, "claims = { org = \"o\", n = 3 }"),
    );
    let snapshot = dir
        .load(&config(
            "header = \"X-API-Key\"\nclaim_headers = { \"X-Org\" = \"org\", \"X_N\" = \"n\" }",
            "",
        ))
        .unwrap();
    assert_eq!(
        snapshot.api_keys[0].header,
        crate::auth::api_keys::KeyHeader::Named(http::HeaderName::from_static("x-api-key"))
    );
    assert!(snapshot.claim_header_names.contains(&"x-org".to_owned()));
    assert!(snapshot.claim_header_names.contains(&"x-n".to_owned()));
    let headers = &snapshot.api_keys[0].keys()[0].verified.principal.headers;
    assert!(headers.iter().any(|(n, v)| n == "x-org" && v == "o"));
    assert!(headers.iter().any(|(n, v)| n == "x_n" && v == "3"));
}
