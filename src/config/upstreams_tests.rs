//! Unit tests of `[[upstreams]]` compilation (config/upstreams.rs).

use std::sync::Arc;
use std::time::Duration;

use crate::snapshot::Snapshot;

const ROUTE: &str =
    "[[routes]]\nname = \"r\"\npath_prefix = \"/x\"\nupstream = \"u\"\npublic = true\n";

fn load(text: &str, previous: Option<&Snapshot>) -> Result<Snapshot, String> {
    super::super::tests::load_at("test.toml", text, previous)
}

fn upstream(keys: &str) -> String {
    format!("[[upstreams]]\nname = \"u\"\n{keys}\n{ROUTE}")
}

#[test]
fn every_upstream_key_compiles_and_route_timeouts_win() {
    let text = "[[upstreams]]\nname = \"u\"\nservers = [\"http://127.0.0.1:9\", \"http://localhost:10/base/\"]\n\
         protocol = \"h2c\"\ntimeout = \"3s\"\nidle_timeout = \"9s\"\nmax_failures = 2\n\
         ejection_time = \"1s\"\nmax_ejection_time = \"4s\"\nretries = 2\n\
         retry_on = [\"reset\", \"503\"]\nretry_budget_percent = 50\nretry_min_concurrency = 1\n\
         health_check = { path = \"/healthz\", interval = \"1s\" }\n\
         [[routes]]\nname = \"r\"\npath_prefix = \"/x\"\nupstream = \"u\"\npublic = true\n\
         timeout = \"1s\"\ngrpc = true\n";
    let snapshot = load(text, None).expect("valid");
    let upstream = &snapshot.upstreams[0];
    assert_eq!(upstream.servers.len(), 2);
    assert_eq!(upstream.servers[1].path_prefix, "/base");
    assert_eq!(upstream.ejection.max_failures, 2);
    assert_eq!(upstream.ejection.period(5), Duration::from_secs(4));
    assert_eq!(upstream.retry.retries, 2);
    assert_eq!(upstream.retry.budget_percent, 50);
    let checks = upstream.active_checks.as_ref().expect("health checks");
    assert_eq!(checks.settings.unhealthy, 3, "default");
    let route = &snapshot.routes[0];
    assert!(route.grpc);
    assert_eq!(
        route.timeouts.timeout,
        Some(Duration::from_secs(1)),
        "route wins"
    );
    assert_eq!(
        route.timeouts.idle_timeout,
        Some(Duration::from_secs(9)),
        "upstream's"
    );
}

#[test]
fn server_state_survives_a_reload_that_keeps_the_url() {
    let text = upstream("servers = [\"http://127.0.0.1:9\", \"http://127.0.0.1:10\"]");
    let first = load(&text, None).expect("valid");
    let moved = upstream("servers = [\"http://127.0.0.1:10\", \"http://127.0.0.1:11\"]");
    let second = load(&moved, Some(&first)).expect("valid");
    let (old, new) = (&first.upstreams[0].servers, &second.upstreams[0].servers);
    assert!(
        Arc::ptr_eq(&old[1].state, &new[0].state),
        "kept URL, kept state"
    );
    assert!(!Arc::ptr_eq(&old[0].state, &new[1].state));
    assert!(Arc::ptr_eq(
        &first.upstreams[0].client,
        &second.upstreams[0].client
    ));
}

#[test]
fn invalid_upstream_keys_are_named() {
    let cases = [
        (upstream(""), "exactly one of url and servers"),
        (
            upstream("url = \"http://a:1\"\nservers = [\"http://b:1\"]"),
            "exactly one of url and servers",
        ),
        (
            upstream("servers = []"),
            "upstreams[0].servers: must not be empty",
        ),
        (
            upstream("servers = [\"http://a:1\", \"http://a:1\"]"),
            "upstreams[0].servers[1]: duplicate server",
        ),
        (
            upstream("servers = [\"http://a:1\", \"ftp://b:1\"]"),
            "upstreams[0].servers[1]: URL scheme",
        ),
        (
            upstream("url = \"http://a:1\"\nprotocol = \"h2\""),
            "protocol \"h2\" needs an https URL",
        ),
        (
            upstream("url = \"https://a:1\"\nprotocol = \"h2c\""),
            "protocol \"h2c\" needs an http URL",
        ),
        (
            upstream("url = \"http://a:1\"\nretry_on = [\"404\"]"),
            "upstreams[0].retry_on",
        ),
        (
            upstream("url = \"http://a:1\"\nretry_budget_percent = 101"),
            "at most 100",
        ),
        (
            upstream("url = \"http://a:1\"\nmax_failures = 0"),
            "upstreams[0].max_failures: must be greater than 0",
        ),
        (
            upstream("url = \"http://a:1\"\nidle_timeout = \"0s\""),
            "upstreams[0].idle_timeout: must be greater than 0",
        ),
        (
            upstream("url = \"http://a:1\"\nhealth_check = { path = \"healthz\" }"),
            "upstreams[0].health_check.path: must start with /",
        ),
        (
            upstream("url = \"http://a:1\"\nhealth_check = { path = \"/h\", unhealthy = 0 }"),
            "health_check.unhealthy",
        ),
        (
            upstream("url = \"http://a:1\"\nhealth_check = { path = \"/h\", typo = 1 }"),
            "unknown field",
        ),
        (
            format!("{}timeout = \"0s\"\n", upstream("url = \"http://a:1\"")),
            "routes[0].timeout: must be greater than 0",
        ),
    ];
    for (text, expected) in cases {
        let error = load(&text, None).map(|_| ()).expect_err(&text);
        assert!(error.contains(expected), "{text}\n=> {error}");
    }
}
