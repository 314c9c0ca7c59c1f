//! Config loading: every SPEC §2 rule about invalid configs, and errors naming key and line.

use std::sync::Arc;

use super::{compile, parse, CompileContext, Source};
use crate::metrics::Metrics;

const UPSTREAM: &str = "[[upstreams]]\nname = \"u\"\nurl = \"http://127.0.0.1:9\"\n";
const ISSUER: &str = "[[issuers]]\nname = \"i\"\nissuer = \"https://idp.example/\"\n\
    hmac_secret = \"0123456789abcdef0123456789abcdef\"\naudiences = [\"api\"]\n";

fn load(text: &str) -> Result<crate::snapshot::Snapshot, String> {
    load_at("test.toml", text, None)
}

/// Parses and compiles `text` as the file `path` (after `previous`, as a reload would);
/// the error as its message. Shared by every config test module.
pub(super) fn load_at(
    path: &str,
    text: &str,
    previous: Option<&crate::snapshot::Snapshot>,
) -> Result<crate::snapshot::Snapshot, String> {
    let source = Source {
        path: path.into(),
        text: text.into(),
    };
    let raw = parse(&source).map_err(|e| e.to_string())?;
    compile(
        &raw,
        CompileContext {
            source: &source,
            metrics: Metrics::new(),
            previous,
        },
    )
    .map_err(|e| e.to_string())
}

fn route(extra: &str) -> String {
    format!("[[routes]]\nname = \"r\"\npath_prefix = \"/x\"\nupstream = \"u\"\n{extra}\n")
}

#[test]
fn valid_configs_load() {
    let snapshot = load(&format!("{UPSTREAM}{ISSUER}{}", route(""))).unwrap();
    assert_eq!(snapshot.routes.len(), 1);
    assert_eq!(
        snapshot.routes[0].issuers,
        vec![0],
        "issuers default to every issuer"
    );
    // A config whose routes are all public needs no issuer.
    load(&format!("{UPSTREAM}{}", route("public = true"))).unwrap();
}

#[test]
fn invalid_configs_name_key_and_line() {
    let cases: Vec<(String, &str)> = vec![
        (UPSTREAM.to_owned(), "at least one [[routes]]"),
        (
            format!("{UPSTREAM}{}", route("")),
            "needs a token but no issuer",
        ),
        (
            format!("{ISSUER}{}", route("")),
            "test.toml:9: routes[0].upstream: unknown upstream \"u\"",
        ),
        (
            format!("{UPSTREAM}{ISSUER}{}", route("issuers = [\"nope\"]")),
            "routes[0].issuers: unknown issuer",
        ),
        (
            format!("{UPSTREAM}{ISSUER}{}", route("client_cert = \"required\"")),
            "routes[0].client_cert",
        ),
        (
            format!("{UPSTREAM}{ISSUER}{}", route("typo = 1")),
            "test.toml:13: routes[0].typo: unknown field `typo`",
        ),
        (
            format!("{UPSTREAM}{ISSUER}{}", route("methods = [\"get\"]")),
            "invalid method",
        ),
        (
            format!("{UPSTREAM}{ISSUER}{}", route("allow = [\"10.0.0.0/33\"]")),
            "routes[0].allow[0]: invalid cidr",
        ),
        (
            format!(
                "{UPSTREAM}{}{}",
                ISSUER.replace(
                    "hmac_secret",
                    "jwks_uri = \"https://idp.example/j\"\nhmac_secret"
                ),
                route("")
            ),
            "exactly one key source",
        ),
        (
            format!(
                "{UPSTREAM}{}{}",
                ISSUER.replace(
                    "hmac_secret = \"0123456789abcdef0123456789abcdef\"",
                    "jwks_uri = \"http://idp.example/j\""
                ),
                route("")
            ),
            "must be https",
        ),
        (
            format!(
                "{UPSTREAM}{}{}",
                ISSUER.replace("audiences = [\"api\"]", "audiences = []"),
                route("")
            ),
            "issuers[0].audiences: audiences = [] requires a non-empty allowed_clients",
        ),
        (
            format!("{UPSTREAM}{ISSUER}{ISSUER}{}", route("")),
            "duplicate issuer name",
        ),
        (
            format!("{UPSTREAM}{ISSUER}{}", route("").replace("/x", "/x/../y")),
            "not canonical",
        ),
        (
            format!(
                "[server]\nlisten = \"nowhere\"\n{UPSTREAM}{}",
                route("public = true")
            ),
            "test.toml:2: server.listen",
        ),
        (
            format!(
                "[server]\nidle_timeout = \"5 parsecs\"\n{UPSTREAM}{}",
                route("public = true")
            ),
            "server.idle_timeout: invalid duration",
        ),
        (
            format!("{UPSTREAM}{}", route("public = true\nhost = \"a:80\"")),
            "routes[0].host",
        ),
        (
            format!(
                "{UPSTREAM}{}{}",
                ISSUER.replace(
                    "0123456789abcdef0123456789abcdef",
                    "${AUTHGATE_TEST_UNSET_VAR}"
                ),
                route("")
            ),
            "environment variable AUTHGATE_TEST_UNSET_VAR is not set",
        ),
    ];
    for (text, want) in cases {
        let error = load(&text)
            .err()
            .unwrap_or_else(|| panic!("config should be refused:\n{text}"));
        assert!(
            error.contains(want),
            "error {error:?} should contain {want:?}"
        );
    }
}

#[test]
fn secrets_never_appear_in_errors() {
    let text = format!(
        "{UPSTREAM}{}{}",
        ISSUER.replace("0123456789abcdef0123456789abcdef", "tooshort-secret"),
        route("")
    );
    let error = load(&text).err().expect("short secret refused");
    assert!(error.contains("hmac_secret"), "{error}");
    assert!(
        !error.contains("tooshort-secret"),
        "the secret leaked: {error}"
    );
}

#[test]
fn reload_reuses_key_stores_and_clients_of_unchanged_entries() {
    let text = format!("{UPSTREAM}{ISSUER}{}", route(""));
    let source = Source {
        path: "t.toml".into(),
        text: text.clone(),
    };
    let metrics = Metrics::new();
    let raw = parse(&source).unwrap();
    let first = compile(
        &raw,
        CompileContext {
            source: &source,
            metrics: Arc::clone(&metrics),
            previous: None,
        },
    )
    .unwrap();
    let second = compile(
        &raw,
        CompileContext {
            source: &source,
            metrics: Arc::clone(&metrics),
            previous: Some(&first),
        },
    )
    .unwrap();
    assert!(Arc::ptr_eq(
        &first.issuers[0].store,
        &second.issuers[0].store
    ));
    assert!(Arc::ptr_eq(
        &first.upstreams[0].client,
        &second.upstreams[0].client
    ));
    assert!(Arc::ptr_eq(&first.token_cache, &second.token_cache));
    assert_eq!(first.issuers[0].generation, second.issuers[0].generation);

    // Changed rules: a new generation, so cached verifications of the old rules are not reused.
    let changed = text.replace("audiences = [\"api\"]", "audiences = [\"other\"]");
    let source = Source {
        path: "t.toml".into(),
        text: changed,
    };
    let raw = parse(&source).unwrap();
    let third = compile(
        &raw,
        CompileContext {
            source: &source,
            metrics,
            previous: Some(&second),
        },
    )
    .unwrap();
    assert_ne!(second.issuers[0].generation, third.issuers[0].generation);
}

#[test]
fn a_replaced_key_source_gets_a_generation_never_used_before() {
    // Secrets A, B, A again: three generations, so nothing cached under the first A can come
    // back (a generation is a counter; an address could be reused).
    let metrics = Metrics::new();
    let mut previous: Option<crate::snapshot::Snapshot> = None;
    let mut seen = Vec::new();
    for secret in [
        "0123456789abcdef0123456789abcdef",
        "fedcba9876543210fedcba9876543210",
        "0123456789abcdef0123456789abcdef",
    ] {
        let text = format!(
            "{UPSTREAM}{}{}",
            ISSUER.replace("0123456789abcdef0123456789abcdef", secret),
            route("")
        );
        let source = Source {
            path: "t.toml".into(),
            text,
        };
        let raw = parse(&source).unwrap();
        let next = compile(
            &raw,
            CompileContext {
                source: &source,
                metrics: Arc::clone(&metrics),
                previous: previous.as_ref(),
            },
        )
        .unwrap();
        let generation = next.issuers[0].generation;
        assert!(!seen.contains(&generation), "{generation} reused: {seen:?}");
        seen.push(generation);
        previous = Some(next);
    }
}

#[test]
fn clients_and_token_class_settings_are_checked_with_key_and_line() {
    let base = format!("{UPSTREAM}{ISSUER}{}", route(""));
    let good = format!(
        "{base}\n[[clients]]\nclient_id = \"a\"\nallow = [\"203.0.113.0/24\"]\n\
         client_cert_sha256 = [\"{}\"]\nclient_cert_subject = [\"CN=a,O=Acme\"]\nscopes = [\"x\"]\n",
        "AB".repeat(32)
    );
    let snapshot = load(&good).unwrap();
    let policy = &snapshot.clients["a"];
    assert_eq!(policy.cert_sha256, vec![[0xAB; 32]]);
    assert_eq!(policy.cert_subjects, vec!["CN=a,O=Acme".to_owned()]);

    let cases = [
        (
            format!("{base}\n[[clients]]\nclient_id = \"a\"\nclient_cert_sha256 = [\"abc\"]\n"),
            "clients[0].client_cert_sha256[0]",
        ),
        (
            format!("{base}\n[[clients]]\nclient_id = \"a\"\n[[clients]]\nclient_id = \"a\"\n"),
            "duplicate client",
        ),
        (
            format!("{base}\n[[clients]]\nclient_id = \"a\"\nscopes = [\"x\"]\nextra = 1\n"),
            "extra",
        ),
        (
            format!(
                "{UPSTREAM}{ISSUER}implied_scopes = {{ \"*\" = [\"a\"] }}\n{}",
                route("")
            ),
            "issuers[0].implied_scopes",
        ),
        (
            format!(
                "{UPSTREAM}{ISSUER}implied_scopes = {{ \"a\" = [\"b c\"] }}\n{}",
                route("")
            ),
            "not a scope name",
        ),
        (
            format!(
                "{UPSTREAM}{ISSUER}max_token_lifetime = \"soon\"\n{}",
                route("")
            ),
            "max_token_lifetime",
        ),
    ];
    for (text, expected) in cases {
        let error = load(&text).err().expect("refused");
        assert!(error.contains(expected), "{expected}: {error}");
        assert!(error.starts_with("test.toml:"), "names the line: {error}");
    }
}

/// Issue 12 item 3: every CIDR list goes through the one strict parser, so a CIDR with host
/// bits is refused (never widened to its network), with the key, the element and the line.
#[test]
fn cidrs_with_host_bits_are_refused_in_every_list() {
    let network = |body: &str| format!("[network]\n{body}\n{UPSTREAM}{}", route("public = true"));
    let cases: Vec<(String, &str)> = vec![
        (
            network("trusted_proxies = [\"127.0.0.9/8\"]"),
            "test.toml:2: network.trusted_proxies[0]: invalid cidr \"127.0.0.9/8\": host bits are set, did you mean \"127.0.0.0/8\"?",
        ),
        (
            network("allow = [\"10.0.0.0/8\", \"10.20.30.40/8\"]"),
            "test.toml:2: network.allow[1]: invalid cidr \"10.20.30.40/8\"",
        ),
        (
            network("allow = [\"2001:db8::1/32\"]"),
            "network.allow[0]: invalid cidr \"2001:db8::1/32\": host bits are set",
        ),
        (
            format!(
                "{UPSTREAM}{}",
                route("public = true\nallow = [\"192.168.1.77/16\"]")
            ),
            "test.toml:9: routes[0].allow[0]: invalid cidr \"192.168.1.77/16\": host bits are set",
        ),
        (
            network("allow = [\" 10.0.0.1\"]"),
            "network.allow[0]: invalid address",
        ),
    ];
    for (text, want) in cases {
        let error = load(&text)
            .err()
            .unwrap_or_else(|| panic!("config should be refused:\n{text}"));
        assert!(
            error.contains(want),
            "error {error:?} should contain {want:?}"
        );
    }
    // The same values without host bits, and bare addresses, are accepted.
    let snapshot = load(&network(
        "trusted_proxies = [\"127.0.0.0/8\", \"::1\"]\nallow = [\"10.0.0.0/8\", \"10.20.30.40\"]",
    ))
    .unwrap();
    assert!(snapshot
        .trusted_proxies
        .contains("127.0.0.9".parse().unwrap()));
    assert!(snapshot.allow.contains("10.1.2.3".parse().unwrap()));
    assert!(!snapshot.allow.contains("11.20.30.40".parse().unwrap()));
}

#[test]
fn rate_limits_compile_and_bad_ones_name_key_and_line() {
    let limit = "[[rate_limits]]\nname = \"per-client\"\nkey = \"client_id\"\nrate = \"10/s\"\n";
    let ok = load(&format!(
        "{UPSTREAM}{ISSUER}{limit}{}",
        route("rate_limits = [\"per-client\"]")
    ))
    .unwrap();
    assert_eq!(ok.routes[0].rate_limits, vec![0]);
    assert_eq!(
        ok.rate_limits[0].spec.burst.get(),
        10,
        "burst defaults to N"
    );
    let combo = "[[rate_limits]]\nname = \"c\"\nkey = [\"client_id\", \"route\"]\nrate = \"5/m\"\nburst = 1\n";
    assert!(load(&format!(
        "{UPSTREAM}{ISSUER}{combo}{}",
        route("rate_limits = [\"c\"]")
    ))
    .is_ok());
    let cases = [
        (limit.replace("10/s", "10/d"), "", "rate_limits[0].rate"),
        (limit.replace("10/s", "0/s"), "", "rate_limits[0].rate"),
        (limit.replace("10/s", "+1/s"), "", "rate_limits[0].rate"),
        (limit.replace("client_id", "tenant"), "", "rate_limits[0].key"),
        (format!("{limit}burst = 0\n"), "", "rate_limits[0].burst"),
        (limit.replace("per-client", "a\\\"b"), "", "rate_limits[0].name"),
        (format!("{limit}{limit}"), "", "rate_limits[1].name"),
        (limit.to_owned(), "rate_limits = [\"nope\"]", "routes[0].rate_limits"),
        (
            limit.to_owned(),
            "public = true\nrate_limits = [\"per-client\"]",
            "routes[0].rate_limits",
        ),
        (
            format!("{limit}[rate_limit_store]\nredis = \"http://x\"\n"),
            "",
            "rate_limit_store.redis",
        ),
        (
            format!("{limit}[rate_limit_store]\nredis = \"redis://127.0.0.1:1\"\nmode = \"fast\"\n"),
            "",
            "rate_limit_store.mode",
        ),
        (
            format!("{limit}[rate_limit_store]\nredis = \"redis://127.0.0.1:1\"\non_store_error = \"ignore\"\n"),
            "",
            "rate_limit_store.on_store_error",
        ),
        (
            format!("{limit}[rate_limit_store]\nredis = \"redis://127.0.0.1:1\"\nca_file = \"ca.pem\"\n"),
            "",
            "rate_limit_store.ca_file",
        ),
    ];
    for (limits, extra, key) in cases {
        let text = format!("{UPSTREAM}{ISSUER}{limits}{}", route(extra));
        let error = load(&text).map(|_| ()).unwrap_err();
        assert!(
            error.contains(key) && error.contains("test.toml:"),
            "{key}: {error}"
        );
    }
}

#[test]
fn the_redis_url_is_never_echoed() {
    let text = format!(
        "{UPSTREAM}{ISSUER}{}[rate_limit_store]\nredis = \"http://user:hunter2@x\"\n",
        route("")
    );
    let error = load(&text).map(|_| ()).unwrap_err();
    assert!(!error.contains("hunter2"), "{error}");
}

#[test]
fn client_rate_limits_resolve_and_address_only_ones_are_refused() {
    let limits = "[[rate_limits]]\nname = \"c\"\nkey = \"client_id\"\nrate = \"1/s\"\n\
        [[rate_limits]]\nname = \"addr\"\nkey = \"client_address\"\nrate = \"1/s\"\n";
    let client = |list: &str| format!("[[clients]]\nclient_id = \"a\"\nrate_limits = {list}\n");
    let ok = load(&format!(
        "{UPSTREAM}{ISSUER}{limits}{}{}",
        client("[\"c\"]"),
        route("")
    ))
    .unwrap();
    assert_eq!(ok.client_rate_limits["a"], vec![0]);
    for (list, message) in [
        ("[\"addr\"]", "client address"),
        ("[\"x\"]", "unknown rate limit"),
    ] {
        let text = format!("{UPSTREAM}{ISSUER}{limits}{}{}", client(list), route(""));
        let error = load(&text).map(|_| ()).unwrap_err();
        assert!(
            error.contains("clients[0].rate_limits") && error.contains(message),
            "{error}"
        );
    }
}
