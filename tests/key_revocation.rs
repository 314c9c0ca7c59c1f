//! A cached verification never outlives the key that made it, and a reload never loses keys
//! the running config holds (SPEC §6; issue "security round 2" items 1-2, "reliability round
//! 2" items 1-2). Real gateway, real JWKS server and echo upstream on 127.0.0.1:0.

mod support;

use std::time::Duration;

use http::StatusCode;
use support::config::Config;
use support::echo::Echo;
use support::gateway::{eventually, ConfigFile, Gateway, TIMEOUT};
use support::idp::{keys, Idp};

/// `[server]`/`[admin]` on free ports, the echo upstream and one token route `/r`, around the
/// given `[[issuers]]` text.
fn config(echo: &Echo, issuers: &str) -> String {
    Config::new()
        .raw(issuers)
        .echo(echo)
        .route("r", "/r", "")
        .toml()
}

fn hmac_issuer(secret: &str) -> String {
    format!(
        r#"
[[issuers]]
name = "shared"
issuer = "https://hmac.test/"
hmac_secret = "{secret}"
audiences = ["api"]
"#
    )
}

fn jwks_issuer(idp: &Idp, settings: &str) -> String {
    format!(
        r#"
[[issuers]]
name = "idp"
issuer = "{}"
jwks_uri = "{}"
audiences = ["api"]
{settings}
"#,
        idp.issuer(),
        idp.jwks_uri()
    )
}

const SECRET_A: &str = "secret-a-0123456789abcdef0123456789";
const SECRETS: [&str; 2] = [
    "secret-b-0123456789abcdef0123456789",
    "secret-c-0123456789abcdef0123456789",
];

/// High 1: key stores were told apart by address; a retired store's address came back two
/// reloads later and with it every verification cached under the retired secret.
#[tokio::test]
async fn a_retired_hmac_secret_never_comes_back_from_the_cache() {
    let echo = Echo::start().await;
    let idp = Idp::start().await; // only mints
    let file = ConfigFile::new(&config(&echo, &hmac_issuer(SECRET_A)));
    let gateway = Gateway::from_file(&file.0).start().await;
    let token = |secret: &str, sub: &str| {
        idp.token()
            .iss("https://hmac.test/")
            .sub(sub)
            .sign_with_hmac(secret.as_bytes())
    };
    let forged = token(SECRET_A, "forged-admin");
    assert_eq!(
        gateway.get_with_token("/r", &forged).await.status,
        StatusCode::OK,
        "accepted (and cached) while secret A is configured"
    );

    for rotation in 0..12 {
        let secret = SECRETS[rotation % 2];
        file.write(&config(&echo, &hmac_issuer(secret)));
        gateway.reload_applied().await;
        let reply = gateway.get_with_token("/r", &forged).await;
        reply.assert_error(401, "invalid_token");
        // Traffic under the current secret, so stores and cache entries come and go as they
        // would in production.
        let current = token(secret, &format!("svc-{rotation}"));
        let reply = gateway.get_with_token("/r", &current).await;
        assert_eq!(reply.status, StatusCode::OK, "rotation {rotation}");
        assert_eq!(
            reply.echoed().header("x-auth-subject"),
            Some(format!("svc-{rotation}").as_str())
        );
    }
}

/// High 2, refresh path: a key the provider stops publishing no longer verifies, also for
/// tokens whose verification is cached.
#[tokio::test]
async fn a_key_dropped_by_a_refresh_ends_its_cached_verifications() {
    let echo = Echo::start().await;
    let idp = Idp::start_with(&[("k1", keys::rsa())]).await;
    let settings = "refresh_interval = \"200ms\"\nmin_refresh = \"100ms\"";
    let gateway = Gateway::from_toml(config(&echo, &jwks_issuer(&idp, settings)))
        .start()
        .await;
    let k1 = idp.token().sign();
    assert_eq!(
        gateway.get_with_token("/r", &k1).await.status,
        StatusCode::OK
    );
    assert_eq!(
        gateway.get_with_token("/r", &k1).await.status,
        StatusCode::OK,
        "second request (cache hit)"
    );

    idp.set_keys(&[("k2", keys::rsa2())]);
    let fetched = idp.jwks_requests();
    assert!(idp.wait_jwks_requests(fetched + 2, TIMEOUT).await);
    gateway
        .get_with_token("/r", &k1)
        .await
        .assert_error(401, "invalid_token");
    let k2 = idp.token().kid("k2").sign();
    assert_eq!(
        gateway.get_with_token("/r", &k2).await.status,
        StatusCode::OK
    );
}

/// High 2, reload path: removing a key from a `jwks_file` and reloading revokes it at once.
#[tokio::test]
async fn a_key_removed_from_a_jwks_file_by_a_reload_ends_its_cached_verifications() {
    let echo = Echo::start().await;
    let idp = Idp::start_with(&[("k1", keys::rsa()), ("k2", keys::rsa2())]).await;
    let jwks = std::env::temp_dir().join(format!("authgate-revoke-{}.json", std::process::id()));
    std::fs::write(&jwks, idp.jwks().to_string()).expect("write jwks");
    let issuer = format!(
        "[[issuers]]\nname = \"file\"\nissuer = \"{}\"\njwks_file = \"{}\"\naudiences = [\"api\"]\n",
        idp.issuer(),
        jwks.display()
    );
    let file = ConfigFile::new(&config(&echo, &issuer));
    let gateway = Gateway::from_file(&file.0).start().await;
    let k1 = idp.token().sign();
    let k2 = idp.token().kid("k2").sign();
    for token in [&k1, &k1, &k2] {
        assert_eq!(
            gateway.get_with_token("/r", token).await.status,
            StatusCode::OK
        );
    }

    idp.set_keys(&[("k2", keys::rsa2())]);
    std::fs::write(&jwks, idp.jwks().to_string()).expect("rewrite jwks");
    gateway.reload_applied().await;
    gateway
        .get_with_token("/r", &k1)
        .await
        .assert_error(401, "invalid_token");
    assert_eq!(
        gateway.get_with_token("/r", &k2).await.status,
        StatusCode::OK,
        "the key that stayed keeps its cached verifications"
    );
    let _ = std::fs::remove_file(&jwks);
}

/// Reliability 1: reloads that change only an issuer's timing keep its keys, with the
/// provider up and down: no 503 for a token that needs a verification right after the swap.
#[tokio::test]
async fn reloads_that_change_refresh_settings_keep_the_keys() {
    let echo = Echo::start().await;
    let idp = Idp::start().await;
    let settings = [
        "refresh_interval = \"5m\"",
        "refresh_interval = \"6m\"",
        "min_refresh = \"10s\"",
        "max_stale = \"2h\"",
        "fetch_timeout = \"3s\"",
        "leeway = \"10s\"",
    ];
    let file = ConfigFile::new(&config(&echo, &jwks_issuer(&idp, settings[0])));
    let gateway = Gateway::from_file(&file.0).start().await;

    for (round, idp_up) in [(0, true), (1, false)] {
        idp.set_failing(!idp_up);
        for (step, setting) in settings.iter().enumerate().skip(1) {
            file.write(&config(&echo, &jwks_issuer(&idp, setting)));
            gateway.reload_applied().await;
            // A token never seen before: it must be verified with the carried-over keys.
            let token = idp.token().sub(&format!("svc-{round}-{step}")).sign();
            let reply = gateway.get_with_token("/r", &token).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "after reload to {setting} with the IdP {}: {}",
                if idp_up { "up" } else { "down" },
                reply.text()
            );
        }
    }
    let ready = gateway.admin_get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
}

/// Reliability 1: a reload that moves an issuer to another key source fetches the new keys
/// before the swap, so its tokens pass from the first request on.
#[tokio::test]
async fn a_reload_to_a_new_key_source_waits_for_its_keys() {
    let echo = Echo::start().await;
    let old = Idp::start().await;
    let new = Idp::start_with(&[("n1", keys::rsa2())]).await;
    let file = ConfigFile::new(&config(&echo, &jwks_issuer(&old, "")));
    let gateway = Gateway::from_file(&file.0).start().await;
    assert_eq!(
        gateway
            .get_with_token("/r", &old.token().sign())
            .await
            .status,
        StatusCode::OK
    );

    // The new provider answers only after a moment: the swap waits for it (the old config
    // serves meanwhile) instead of swapping in an issuer without keys.
    new.set_failing(true);
    file.write(&config(
        &echo,
        &jwks_issuer(&new, "min_refresh = \"200ms\""),
    ));
    tokio::join!(gateway.reload_applied(), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        new.set_failing(false);
    });
    let token = new.token().kid("n1").sign();
    let reply = gateway.get_with_token("/r", &token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // The old source is retired: its tokens (cached or not) no longer pass.
    gateway
        .get_with_token("/r", &old.token().sign())
        .await
        .assert_error(401, "invalid_token");
}

/// Reliability 2: a forged `kid` spends one unknown-kid refresh, not the whole budget: a key
/// the provider publishes right after is accepted within a second.
#[tokio::test]
async fn a_forged_kid_does_not_hold_back_a_key_rotation() {
    let echo = Echo::start().await;
    let idp = Idp::start().await;
    let gateway = Gateway::from_toml(config(&echo, &jwks_issuer(&idp, "min_refresh = \"30s\"")))
        .start()
        .await;
    idp.register_signer("forged-7f3a", keys::attacker());
    let forged = idp.token().kid("forged-7f3a").sign();
    gateway
        .get_with_token("/r", &forged)
        .await
        .assert_error(401, "invalid_token");

    idp.add_key("k2", keys::rsa2());
    let rotated = idp.token().kid("k2").sign();
    let accepted = eventually(Duration::from_secs(1), || async {
        gateway.get_with_token("/r", &rotated).await.status == StatusCode::OK
    })
    .await;
    assert!(accepted, "the rotated key is accepted within one second");

    // The burst is bounded: with the budget spent, forged kids cost the provider nothing.
    let before = idp.jwks_requests();
    for attempt in 0..5 {
        let forged = idp
            .token()
            .kid("forged-7f3a")
            .sub(&format!("x{attempt}"))
            .sign();
        gateway
            .get_with_token("/r", &forged)
            .await
            .assert_error(401, "invalid_token");
    }
    assert!(
        idp.jwks_requests() <= before + 1,
        "at most the burst's last refresh: {} -> {}",
        before,
        idp.jwks_requests()
    );
}

/// SPEC §6: `[admin] readiness`. `all_issuers` follows the keys (unready once they are past
/// max_stale), `listeners` ignores them; the default (`loaded_once`) is covered by
/// tests/auth_keys.rs `keys_past_max_stale_are_not_used`.
#[tokio::test]
async fn readiness_all_issuers_follows_the_keys_and_listeners_ignores_them() {
    let echo = Echo::start().await;
    let idp = Idp::start().await;
    let settings = "refresh_interval = \"200ms\"\nmin_refresh = \"100ms\"\nmax_stale = \"300ms\"";
    let text = |mode: &str| {
        config(&echo, &jwks_issuer(&idp, settings)).replace(
            "[admin]\nlisten = \"127.0.0.1:0\"",
            &format!("[admin]\nlisten = \"127.0.0.1:0\"\nreadiness = \"{mode}\""),
        )
    };
    let strict = Gateway::from_toml(text("all_issuers")).start().await;
    let lenient = Gateway::from_toml(text("listeners")).start().await;
    idp.set_failing(true);
    let unready = eventually(TIMEOUT, || async {
        strict.admin_get("/readyz").await.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(
        unready,
        "all_issuers: unready once the keys are past max_stale"
    );
    assert_eq!(
        strict.admin_get("/readyz").await.json()["issuers"]["idp"],
        "no key set"
    );
    let shown = eventually(TIMEOUT, || async {
        lenient.admin_get("/readyz").await.json()["issuers"]["idp"] == "no key set"
    })
    .await;
    assert!(shown, "listeners: the body shows the outage");
    let body = lenient.admin_get("/readyz").await;
    assert_eq!(body.status, StatusCode::OK, "{}", body.text());
}

/// SPEC §2: `${file:PATH}` (a Kubernetes Secret mount) is read again at every reload, and
/// relative paths resolve against the config file's directory, not the working directory.
/// SPEC §6: `authgate_config_last_reload_successful` is 0 while the last reload failed.
#[tokio::test]
async fn secrets_from_files_rotate_on_reload_and_paths_are_relative_to_the_config() {
    let echo = Echo::start().await;
    let idp = Idp::start().await; // only mints
    let dir = std::env::temp_dir().join(format!("authgate-file-secret-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("secrets")).expect("scratch dir");
    std::fs::write(dir.join("secrets/hmac"), format!("{SECRET_A}\n")).expect("secret");
    let issuer = "[[issuers]]\nname = \"shared\"\nissuer = \"https://hmac.test/\"\n\
                  hmac_secret = \"${file:secrets/hmac}\"\naudiences = [\"api\"]\n";
    let text = config(&echo, issuer);
    let path = dir.join("authgate.toml");
    std::fs::write(&path, &text).expect("config");
    let gateway = Gateway::from_file(&path).start().await;
    let token = |secret: &str| {
        idp.token()
            .iss("https://hmac.test/")
            .sign_with_hmac(secret.as_bytes())
    };
    let a = token(SECRET_A);
    assert_eq!(
        gateway.get_with_token("/r", &a).await.status,
        StatusCode::OK
    );

    std::fs::write(dir.join("secrets/hmac"), format!("{}\n", SECRETS[0])).expect("rotate");
    gateway.reload_applied().await;
    gateway
        .get_with_token("/r", &a)
        .await
        .assert_error(401, "invalid_token");
    let b = token(SECRETS[0]);
    assert_eq!(
        gateway.get_with_token("/r", &b).await.status,
        StatusCode::OK
    );
    assert!(gateway
        .metrics()
        .await
        .contains("authgate_config_last_reload_successful 1"));

    // A missing secret file refuses the reload; the gauge says so, the old config serves.
    std::fs::remove_file(dir.join("secrets/hmac")).expect("remove");
    gateway.reload().await;
    let failed = eventually(TIMEOUT, || async {
        gateway
            .metrics()
            .await
            .contains("authgate_config_last_reload_successful 0")
    })
    .await;
    assert!(failed, "{}", gateway.metrics().await);
    assert_eq!(
        gateway.get_with_token("/r", &b).await.status,
        StatusCode::OK
    );
    let _ = std::fs::remove_dir_all(&dir);
}
