//! API keys end to end (issue 13 item 1, SPEC §7.1): the shipped example config with its key
//! files, keys by bearer shape and in a named header, refusals that name the reason and never
//! the key, scopes, JWTs beside keys, reload, `check` on broken key files, and the
//! `authgate apikey new` helper. Everything through the real gateway, with a real upstream and
//! identity provider on loopback.
//!
//! This binary installs its own capturing log subscriber (like tests/access_log.rs), so it can
//! show that the access log names a key only by its id.

mod support;

use std::path::PathBuf;
use std::process::Command;

use http::{HeaderValue, Method};
use serde_json::json;

use support::config::Config;
use support::echo::{Echo, Echoed};
use support::gateway::{request, ConfigFile, Gateway, Reply};
use support::idp::Idp;
use support::logs::capture_text;

/// Keys whose hashes are in config/keys/*.toml (made with `authgate apikey new`); only this
/// test knows them.
const PARTNER_A: &str = "agk_partner-a-1_AO9mtafcXTynY9LGv_w5imu29Gqo5qTwkaR7ong76Fk";
const PARTNER_B: &str = "agk_partner-b-1_30-uBCf23OTEDn_Egag7zXOWw7LzNvv97EdD9YYm9Hw";
/// Disabled in config/keys/partners.toml.
const PARTNER_A_OLD: &str = "agk_partner-a-0__YXwsvWGXPo6d7fWqkch5UZNG-I8K71zv-fDTss2z_Y";
const BATCH: &str = "agk_batch-1_efavdLb9BXUHn4Al8wxZhHTURFf2dz7uvDxZnbZ543E";

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// config/api-keys.toml with its listeners on free ports, its upstream on `echo` and its key
/// files named by absolute path (the text is not loaded from config/).
fn shipped(echo: &Echo) -> String {
    let text = std::fs::read_to_string(config_dir().join("api-keys.toml")).expect("example");
    assert!(text.contains("http://127.0.0.1:9000") && text.contains("file = \"keys/"));
    text.replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9090", "127.0.0.1:0")
        .replace("http://127.0.0.1:9000", &echo.url(""))
        .replace(
            "file = \"keys/",
            &format!("file = \"{}/keys/", config_dir().display()),
        )
}

async fn call(gateway: &Gateway, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = request(method, path);
    for (name, value) in headers {
        let name: http::HeaderName = name.parse().expect("header name");
        request
            .headers_mut()
            .append(name, HeaderValue::from_str(value).expect("header value"));
    }
    gateway.send(request).await
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// Every value of `name` the upstream received.
fn all<'e>(seen: &'e Echoed, name: &str) -> Vec<&'e str> {
    seen.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A 401 invalid_token whose description is `description`, with no trace of `key`.
#[track_caller]
fn assert_refused(reply: &Reply, description: &str, key: &str) {
    reply.assert_error(401, "invalid_token");
    assert_eq!(reply.json()["error_description"], description);
    let challenge = reply.header("www-authenticate").expect("challenge");
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"authgate\", error=\"invalid_token\", error_description=\"{description}\""
        )
    );
    assert!(!reply.text().contains(secret(key)), "{}", reply.text());
}

/// The secret part of `agk_<id>_<secret>`, else the whole value.
fn secret(key: &str) -> &str {
    match key
        .strip_prefix("agk_")
        .and_then(|rest| rest.split_once('_'))
    {
        Some((_, secret)) => secret,
        None => key,
    }
}

#[tokio::test]
async fn shipped_config_takes_keys_and_tokens_on_one_route() {
    let log = capture_text();
    let idp = Idp::start().await;
    let echo = Echo::start().await;
    std::env::set_var("PARTNER_ISSUER", idp.issuer());
    std::env::set_var("PARTNER_JWKS_URI", idp.jwks_uri());
    let gateway = Gateway::from_toml(shipped(&echo)).start().await;

    // A valid key: the exact identity headers upstream, the client's spoofed ones gone.
    let reply = call(
        &gateway,
        Method::GET,
        "/assets/7",
        &[
            ("authorization", &bearer(PARTNER_A)),
            ("x-request-id", "apikey-allowed-1"),
            ("x-auth-subject", "admin"),
            ("x-auth-key-id", "spoofed"),
            ("x-auth-issuer", "spoofed"),
            ("x_auth_scopes", "write:assets"),
            ("x-auth-org", "org-evil"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = reply.echoed();
    for (name, value) in [
        ("x-auth-subject", "partner-a"),
        ("x-auth-client-id", "partner-a"),
        ("x-auth-scopes", "read:assets"),
        ("x-auth-issuer", "apikey:partners"),
        ("x-auth-key-id", "partner-a-1"),
        ("x-auth-org", "org-456"),
    ] {
        assert_eq!(all(&seen, name), vec![value], "{name}");
    }
    assert!(all(&seen, "x_auth_scopes").is_empty());
    // Authorization is forwarded unchanged, as for tokens (SPEC §4).
    assert_eq!(
        seen.header("authorization"),
        Some(bearer(PARTNER_A).as_str())
    );

    // `org` as the shorthand field, several scopes.
    let seen = call(
        &gateway,
        Method::GET,
        "/assets/8",
        &[("authorization", &bearer(PARTNER_B))],
    )
    .await
    .echoed();
    assert_eq!(
        seen.header("x-auth-scopes"),
        Some("read:assets write:assets")
    );
    assert_eq!(seen.header("x-auth-org"), Some("org-789"));

    // A JWT on the same route: judged as a token (two dots), with the token's identity.
    let token = idp
        .token()
        .aud("https://api.example.com/assets")
        .sub("svc-partner")
        .scope("read:assets")
        .claim("org", json!("org-jwt"))
        .sign();
    let seen = call(
        &gateway,
        Method::GET,
        "/assets/9",
        &[("authorization", &bearer(&token))],
    )
    .await
    .echoed();
    assert_eq!(seen.header("x-auth-issuer"), Some(idp.issuer().as_str()));
    assert_eq!(seen.header("x-auth-subject"), Some("svc-partner"));
    assert_eq!(seen.header("x-auth-org"), Some("org-jwt"));
    assert_eq!(seen.header("x-auth-key-id"), None);

    // Disabled and unknown keys: 401 invalid_token naming the reason, never the key.
    let reply = call(
        &gateway,
        Method::GET,
        "/assets/1",
        &[
            ("authorization", &bearer(PARTNER_A_OLD)),
            ("x-request-id", "apikey-disabled-1"),
        ],
    )
    .await;
    assert_refused(&reply, "the API key is disabled", PARTNER_A_OLD);
    let unknown = "agk_partner-a-1_AO9mtafcXTynY9LGv_w5imu29Gqo5qTwkaR7ong76Fl";
    let reply = call(
        &gateway,
        Method::GET,
        "/assets/1",
        &[("authorization", &bearer(unknown))],
    )
    .await;
    assert_refused(&reply, "the API key is not known", unknown);

    // The X-API-Key source on the keys-only route: read from that header only.
    let seen = call(
        &gateway,
        Method::POST,
        "/export/run",
        &[("x-api-key", BATCH)],
    )
    .await
    .echoed();
    assert_eq!(seen.header("x-auth-subject"), Some("nightly-export"));
    assert_eq!(seen.header("x-auth-issuer"), Some("apikey:batch"));
    assert_eq!(seen.header("x-auth-key-id"), Some("batch-1"));
    assert_eq!(seen.header("x-auth-scopes"), Some("export:run"));
    call(
        &gateway,
        Method::POST,
        "/export/run",
        &[("authorization", &bearer(BATCH))],
    )
    .await
    .assert_error(401, "missing_token");
    // A key of another source, in the right header, is unknown there.
    let reply = call(
        &gateway,
        Method::POST,
        "/export/run",
        &[("x-api-key", PARTNER_A)],
    )
    .await;
    assert_refused(&reply, "the API key is not known", PARTNER_A);
    call(
        &gateway,
        Method::POST,
        "/export/run",
        &[("x-api-key", BATCH), ("x-api-key", BATCH)],
    )
    .await
    .assert_error(400, "invalid_request");
    // The `partners` key in X-API-Key on /assets: that route reads Authorization only.
    call(
        &gateway,
        Method::GET,
        "/assets/1",
        &[("x-api-key", PARTNER_A)],
    )
    .await
    .assert_error(401, "missing_token");

    // Metrics: the gauge per source (the disabled key does not count), reasons by kind.
    let metrics = gateway.metrics().await;
    for line in [
        "authgate_api_keys{source=\"partners\"} 2",
        "authgate_api_keys{source=\"batch\"} 1",
        "authgate_auth_decisions_total{decision=\"deny\",reason=\"api_key_disabled\",route=\"assets\"} 1",
        "authgate_auth_decisions_total{decision=\"deny\",reason=\"api_key_unknown\",route=\"assets\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    for key in [PARTNER_A, PARTNER_A_OLD, BATCH] {
        assert!(!metrics.contains(secret(key)));
    }

    // The access log names keys by id only, also refused ones.
    let text = log.text();
    let line = |id: &str| {
        text.lines()
            .find(|line| line.contains(id))
            .unwrap_or_else(|| panic!("no access log line for {id} in\n{text}"))
            .to_owned()
    };
    assert!(line("apikey-allowed-1").contains("key_id=partner-a-1"));
    assert!(line("apikey-disabled-1").contains("key_id=partner-a-0"));
    for key in [PARTNER_A, PARTNER_B, PARTNER_A_OLD, BATCH, unknown] {
        assert!(!text.contains(secret(key)), "a key in the log");
    }
}

/// A config file and its key file in one temporary directory, the key file named relatively.
struct Files {
    config: ConfigFile,
    keys: PathBuf,
}

impl Files {
    fn new(config: impl Fn(&str) -> String, keys: &str) -> Files {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "authgate-test-keys-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let files = Files {
            config: ConfigFile::new(&config(&name)),
            keys: std::env::temp_dir().join(&name),
        };
        assert_eq!(files.config.0.parent(), files.keys.parent());
        files.write_keys(keys);
        files
    }

    fn write_keys(&self, text: &str) {
        let tmp = self.keys.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write keys");
        std::fs::rename(&tmp, &self.keys).expect("replace keys");
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.keys);
    }
}

fn key_entry(id: &str, key: &str, extra: &str) -> String {
    let hash = hex_sha256(key);
    format!(
        "[[keys]]\nid = \"{id}\"\nhash = \"sha256:{hash}\"\nclient_id = \"client-{id}\"\n{extra}\n"
    )
}

/// SHA-256 computed here, independently of the gateway's code.
fn hex_sha256(text: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    hex::encode(digest.as_ref())
}

/// Keys-only `/keys` (Authorization), `/both` with tokens too, `/write` needing a scope.
fn keys_config(echo: &Echo, idp: &Idp, key_file: &str) -> String {
    Config::new()
        .idp("idp", idp, "")
        .raw(&format!(
            "\n[[api_keys]]\nname = \"main\"\nfile = \"{key_file}\""
        ))
        .echo(echo)
        .route(
            "keys",
            "/keys",
            "api_keys = [\"main\"]\nscopes = [\"read\"]",
        )
        .route(
            "write",
            "/write",
            "api_keys = [\"main\"]\nscopes = [\"write\"]\nany_scopes = [\"admin\", \"owner\"]",
        )
        .route(
            "both",
            "/both",
            "issuers = [\"idp\"]\napi_keys = [\"main\"]",
        )
        .toml()
}

#[tokio::test]
async fn expiry_scopes_shape_and_reload() {
    let idp = Idp::start().await;
    let echo = Echo::start().await;
    let kept = "agk_kept_bW9zdGx5LXJhbmRvbS1ieXRlcy1mb3ItdGhlLXRlc3Q";
    let removed = "agk_removed_c2Vjb25kLXJhbmRvbS1ieXRlcy1mb3ItdGhlLXRlc3Q";
    let expired = "agk_expired_dGhpcmQtcmFuZG9tLWJ5dGVzLWZvci10aGUtdGVzdA";
    let imported = "legacy-system-key-0f6b5a9e2c"; // a key from another system: any shape without `.`
    let keys = [
        key_entry("kept", kept, "scopes = [\"read\"]"),
        key_entry("removed", removed, "scopes = [\"read\"]"),
        key_entry(
            "expired",
            expired,
            "scopes = [\"read\"]\nexpires = \"2020-01-01T00:00:00Z\"",
        ),
        key_entry("imported", imported, "scopes = [\"read\", \"write\"]"),
    ];
    let files = Files::new(|name| keys_config(&echo, &idp, name), &keys.concat());
    let gateway = Gateway::from_file(&files.config.0).start().await;
    let get = |path: &'static str, key: &str| {
        let value = bearer(key);
        let gateway = &gateway;
        async move { call(gateway, Method::GET, path, &[("authorization", &value)]).await }
    };

    assert_eq!(get("/keys/1", kept).await.status, 200);
    assert_eq!(
        get("/keys/1", imported)
            .await
            .echoed()
            .header("x-auth-key-id"),
        Some("imported")
    );
    assert_refused(
        &get("/keys/1", expired).await,
        "the API key has expired",
        expired,
    );

    // Scopes: the route's rules apply to the key's scopes, with the 403 challenge.
    let reply = get("/write/1", imported).await;
    reply.assert_error(403, "insufficient_scope");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(
            "Bearer realm=\"authgate\", error=\"insufficient_scope\", scope=\"write admin owner\""
        )
    );
    get("/write/1", kept)
        .await
        .assert_error(403, "insufficient_scope");

    // Shape: a JWT on a keys-only route is refused without being verified; on /both it works.
    let token = idp.token().sign();
    assert_refused(
        &get("/keys/1", &token).await,
        "this route accepts only API keys",
        &token,
    );
    let seen = get("/both/1", &token).await.echoed();
    assert_eq!(seen.header("x-auth-issuer"), Some(idp.issuer().as_str()));
    assert_eq!(
        get("/both/1", kept).await.echoed().header("x-auth-key-id"),
        Some("kept")
    );
    // A dotless value on /both is a key, never tried as a JWT (and a bad key is a key error).
    assert_refused(
        &get("/both/1", "not-a-key").await,
        "the API key is not known",
        "not-a-key",
    );
    call(&gateway, Method::GET, "/keys/1", &[])
        .await
        .assert_error(401, "missing_token");

    // Reload: the key file is re-read; a removed key is refused from then on.
    assert_eq!(get("/keys/2", removed).await.status, 200);
    files.write_keys(&[keys[0].clone(), keys[2].clone(), keys[3].clone()].concat());
    gateway.reload_applied().await;
    assert_refused(
        &get("/keys/2", removed).await,
        "the API key is not known",
        removed,
    );
    assert_eq!(get("/keys/2", kept).await.status, 200);
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("authgate_api_keys{source=\"main\"} 2"),
        "{metrics}"
    );

    // A broken key file refuses the reload; the keys loaded before keep working.
    files.write_keys(&format!("{}typo = true\n", keys[0]));
    gateway.reload().await;
    let refused = support::gateway::eventually(support::gateway::TIMEOUT, || async {
        gateway
            .metrics()
            .await
            .contains("authgate_config_reloads_total{result=\"error\"} 1")
    })
    .await;
    assert!(refused, "the reload with a broken key file is refused");
    assert_eq!(get("/keys/3", kept).await.status, 200);
}

#[tokio::test]
async fn argon2id_keys_name_their_entry() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let echo = Echo::start().await;
    let key = "agk_pin-1_1234";
    let params = argon2::Params::new(8 * 1024, 1, 1, None).expect("params");
    let phc = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(
            key.as_bytes(),
            &SaltString::encode_b64(b"salt-of-the-test").expect("salt"),
        )
        .expect("hash")
        .to_string();
    let entry = format!(
        "[[keys]]\nid = \"pin-1\"\nhash = \"{phc}\"\nclient_id = \"kiosk\"\nscopes = [\"read\"]\n"
    );
    let idp = Idp::start().await;
    let files = Files::new(|name| keys_config(&echo, &idp, name), &entry);
    let gateway = Gateway::from_file(&files.config.0).start().await;
    for _ in 0..2 {
        let reply = gateway.get_with_token("/keys/1", key).await;
        assert_eq!(reply.echoed().header("x-auth-client-id"), Some("kiosk"));
    }
    let wrong = "agk_pin-1_1235";
    assert_refused(
        &gateway.get_with_token("/keys/1", wrong).await,
        "the API key is not known",
        wrong,
    );
}

fn authgate(args: &[&str], envs: &[(&str, String)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_authgate"));
    command.args(args).env_remove("RUST_LOG");
    for (name, value) in envs {
        command.env(name, value);
    }
    command.output().expect("run authgate")
}

#[tokio::test]
async fn apikey_new_prints_a_key_and_an_entry_holding_its_hash() {
    let output = authgate(
        &[
            "apikey",
            "new",
            "--id",
            "cli-1",
            "--client-id",
            "partner-c",
            "--scopes",
            "read",
            "write",
        ],
        &[],
    );
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let (first, entry) = stdout.split_once('\n').expect("two parts");
    let key = first.strip_prefix("key: ").expect("key line");
    assert!(key.starts_with("agk_cli-1_") && !key.contains('.'), "{key}");
    assert_eq!(stdout.matches(key).count(), 1, "the key is printed once");
    let parsed: toml::Value = toml::from_str(entry).expect("the entry is TOML");
    let printed = &parsed["keys"][0];
    assert_eq!(
        printed["hash"].as_str(),
        Some(format!("sha256:{}", hex_sha256(key)).as_str())
    );
    assert_eq!(printed["id"].as_str(), Some("cli-1"));
    assert_eq!(printed["client_id"].as_str(), Some("partner-c"));
    assert_eq!(
        printed["scopes"],
        toml::Value::Array(vec!["read".into(), "write".into()])
    );
    // A second key differs.
    let again = authgate(&["apikey", "new", "--id", "cli-1"], &[]);
    assert!(!String::from_utf8_lossy(&again.stdout).contains(key));

    // The entry works as printed: appended to a key file, the key passes the gateway.
    let echo = Echo::start().await;
    let idp = Idp::start().await;
    let files = Files::new(|name| keys_config(&echo, &idp, name), entry);
    let path = files.config.0.display().to_string();
    let check = authgate(&["check", "-c", &path], &[]);
    assert!(check.status.success(), "{check:?}");
    let gateway = Gateway::from_file(&files.config.0).start().await;
    let seen = gateway.get_with_token("/keys/1", key).await.echoed();
    assert_eq!(seen.header("x-auth-key-id"), Some("cli-1"));

    // A bad id is bad input.
    let bad = authgate(&["apikey", "new", "--id", "a_b"], &[]);
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn check_names_the_key_file_and_line_of_an_error() {
    let echo_url = "http://127.0.0.1:9";
    let files = Files::new(
        |name| {
            format!(
                "[[api_keys]]\nname = \"main\"\nfile = \"{name}\"\n\n\
                 [[upstreams]]\nname = \"u\"\nurl = \"{echo_url}\"\n\n\
                 [[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"u\"\napi_keys = [\"main\"]\n"
            )
        },
        &format!(
            "{}\n[[keys]]\nid = \"k2\"\nhash = \"md5:abc\"\nclient_id = \"c\"\n",
            key_entry("k1", "x", "")
        ),
    );
    let path = files.config.0.display().to_string();
    let output = authgate(&["check", "-c", &path], &[]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!("{}:9: keys[1].hash: hash must be", files.keys.display());
    assert!(stderr.contains(&expected), "{stderr}");

    // Fixed, it passes; the summary goes to stdout.
    files.write_keys(&key_entry("k1", "x", ""));
    let output = authgate(&["check", "-c", &path], &[]);
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn every_example_config_with_api_keys_passes_check() {
    let path = config_dir().join("api-keys.toml").display().to_string();
    let envs = [
        ("PARTNER_ISSUER", "https://idp.example.com/".to_owned()),
        (
            "PARTNER_JWKS_URI",
            "https://idp.example.com/jwks".to_owned(),
        ),
    ];
    let output = authgate(&["check", "-c", &path], &envs);
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn explain_shows_the_credential_was_an_api_key_and_its_id() {
    let path = config_dir().join("api-keys.toml").display().to_string();
    // The issuer's keys are not needed for a key: an unreachable loopback JWKS fails at once.
    let envs = [
        ("PARTNER_ISSUER", "https://127.0.0.1:1/".to_owned()),
        ("PARTNER_JWKS_URI", "https://127.0.0.1:1/jwks".to_owned()),
    ];
    let explain = |key: &str| {
        authgate(
            &[
                "explain",
                "-c",
                &path,
                "--path",
                "/assets/1",
                "--token",
                key,
            ],
            &envs,
        )
    };
    let allowed = explain(PARTNER_A);
    assert_eq!(allowed.status.code(), Some(0), "{allowed:?}");
    let text = String::from_utf8_lossy(&allowed.stdout);
    assert!(
        text.contains("api key") && text.contains("valid API key, id partner-a-1, source partners"),
        "{text}"
    );
    assert!(text.contains("x-auth-key-id: partner-a-1"), "{text}");
    let denied = explain(PARTNER_A_OLD);
    assert_eq!(denied.status.code(), Some(3), "{denied:?}");
    let text = String::from_utf8_lossy(&denied.stdout);
    assert!(text.contains("the API key is disabled"), "{text}");
    assert!(!text.contains(secret(PARTNER_A_OLD)), "{text}");
}

/// A route taking tokens and keys from `X-API-Key`: the key header alone, a token alone, never
/// both at once.
#[tokio::test]
async fn named_key_header_beside_tokens() {
    let idp = Idp::start().await;
    let echo = Echo::start().await;
    let key = "agk_hdr-1_Zm91cnRoLXJhbmRvbS1ieXRlcy1mb3ItdGhlLXRlc3Q";
    let files = Files::new(
        |name| {
            keys_config(&echo, &idp, name).replace("file = \"", "header = \"X-API-Key\"\nfile = \"")
        },
        &key_entry("hdr-1", key, ""),
    );
    let gateway = Gateway::from_file(&files.config.0).start().await;
    let token = idp.token().sign();

    let seen = call(&gateway, Method::GET, "/both/1", &[("x-api-key", key)])
        .await
        .echoed();
    assert_eq!(seen.header("x-auth-key-id"), Some("hdr-1"));
    // The key header is forwarded like Authorization is.
    assert_eq!(seen.header("x-api-key"), Some(key));
    let seen = call(
        &gateway,
        Method::GET,
        "/both/1",
        &[("authorization", &bearer(&token))],
    )
    .await
    .echoed();
    assert_eq!(seen.header("x-auth-issuer"), Some(idp.issuer().as_str()));

    let both = call(
        &gateway,
        Method::GET,
        "/both/1",
        &[("x-api-key", key), ("authorization", &bearer(&token))],
    )
    .await;
    both.assert_error(400, "invalid_request");
    assert_eq!(
        both.json()["error_description"],
        "send either an API key or a bearer token, not both"
    );
    // Authorization is not a key source here: a dotless bearer value is judged as a JWT.
    let reply = call(
        &gateway,
        Method::GET,
        "/both/1",
        &[("authorization", &bearer(key))],
    )
    .await;
    reply.assert_error(401, "invalid_token");
    assert_eq!(
        reply.json()["error_description"],
        "the token is not a well-formed JWT"
    );
    for bad in ["", "two words", "  "] {
        call(&gateway, Method::GET, "/both/1", &[("x-api-key", bad)])
            .await
            .assert_error(400, "invalid_request");
    }
    // Whitespace around the value is optional whitespace (RFC 9110), not part of the key.
    let padded = format!("  {key}\t");
    assert_eq!(
        call(&gateway, Method::GET, "/keys/1", &[("x-api-key", &padded)])
            .await
            .status,
        403,
        "the key (no scopes) is found, then lacks the route's scope"
    );
}

/// SPEC §7.4 `key = "api_key"`: each API key has its own budget; tokens skip the policy.
#[tokio::test]
async fn an_api_key_rate_limit_gives_each_key_its_own_budget() {
    let idp = Idp::start().await;
    let echo = Echo::start().await;
    let first = "agk_first_cmF0ZS1saW1pdC1maXJzdC1rZXktYnl0ZXMtMDEyMw";
    let second = "agk_second_cmF0ZS1saW1pdC1zZWNvbmQta2V5LWJ5dGVzLTQ1Ng";
    let keys = [
        key_entry("first", first, "scopes = [\"read\"]"),
        key_entry("second", second, "scopes = [\"read\"]"),
    ];
    let config = |name: &str| {
        keys_config(&echo, &idp, name).replace(
            "name = \"both\"\npath_prefix = \"/both\"\nupstream = \"echo\"\n",
            "name = \"both\"\npath_prefix = \"/both\"\nupstream = \"echo\"\nrate_limits = [\"per-key\"]\n",
        ) + "\n[[rate_limits]]\nname = \"per-key\"\nkey = \"api_key\"\nrate = \"2/h\"\n"
    };
    let files = Files::new(config, &keys.concat());
    let gateway = Gateway::from_file(&files.config.0).start().await;
    let get = |key: String| {
        let gateway = &gateway;
        async move { call(gateway, Method::GET, "/both/1", &[("authorization", &key)]).await }
    };
    for _ in 0..2 {
        assert_eq!(get(bearer(first)).await.status, 200);
    }
    let refused = get(bearer(first)).await;
    refused.assert_error(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    // Another key has its own budget; a token is not keyed by any API key.
    assert_eq!(get(bearer(second)).await.status, 200);
    let token = format!("Bearer {}", idp.token().sign());
    for _ in 0..3 {
        assert_eq!(get(token.clone()).await.status, 200);
    }
}
