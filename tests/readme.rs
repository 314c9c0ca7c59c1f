//! The README documents every config key the code accepts (issue 6).

#[test]
fn every_config_key_is_in_the_readme() {
    let raw = include_str!("../src/config/raw.rs");
    let readme = include_str!("../README.md");
    let mut missing = Vec::new();
    let mut count = 0;
    for line in raw.lines() {
        let Some(field) = line.trim().strip_prefix("pub ") else {
            continue;
        };
        let Some((name, _)) = field.split_once(':') else {
            continue;
        };
        if name.contains(' ') || name.contains('(') {
            continue; // not a field
        }
        count += 1;
        let documented = [
            format!("`{name}`"),
            format!("[{name}]"),
            format!("[[{name}]]"),
            format!(".{name}]"),
        ]
        .iter()
        .any(|form| readme.contains(form.as_str()));
        if !documented {
            missing.push(name.to_owned());
        }
    }
    assert!(
        count > 40,
        "found only {count} config fields; did raw.rs change shape?"
    );
    assert!(
        missing.is_empty(),
        "config keys missing from README.md: {missing:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The README's commands, run as written (issue 16). Only the loopback ports (and the scratch
// directory for /tmp paths) are replaced, so that tests running in parallel do not collide.

#[path = "support/shell.rs"]
mod shell;

use shell::{free_port, run_script, sh_blocks};

#[test]
fn the_end_to_end_commands_reach_an_allowed_request() {
    let readme = include_str!("../README.md");
    let blocks = sh_blocks(readme, "## End to end");
    let script = blocks.first().expect("an sh block in End to end");
    // The path with dots goes out as written (issue 16).
    assert!(
        script.contains("curl -i --path-as-is") && script.contains("/orders/../orders/42"),
        "{script}"
    );
    let scratch = std::env::temp_dir().join(format!("authgate-readme-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let (gateway, admin, upstream) = (free_port(), free_port(), free_port());
    let ports = |text: &str| {
        text.replace("127.0.0.1:8080", &format!("127.0.0.1:{gateway}"))
            .replace("127.0.0.1:9090", &format!("127.0.0.1:{admin}"))
            .replace("127.0.0.1:9000", &format!("127.0.0.1:{upstream}"))
            .replace("http.server 9000", &format!("http.server {upstream}"))
    };
    let config = scratch.join("hmac.toml");
    std::fs::write(&config, ports(include_str!("../config/hmac.toml"))).unwrap();
    let script = ports(script)
        .replace("config/hmac.toml", config.to_str().unwrap())
        .replace("/tmp/upstream", scratch.join("upstream").to_str().unwrap());
    let (ok, out) = run_script(&script, std::time::Duration::from_secs(30));
    std::fs::remove_dir_all(&scratch).ok();
    assert!(ok, "the commands failed:\n{out}");
    assert!(out.contains("decision: allow"), "{out}");
    assert!(out.contains("x-auth-client-id: billing"), "{out}");
    assert!(
        out.lines()
            .any(|line| line.starts_with("HTTP/") && line.contains(" 200 ")),
        "{out}"
    );
    assert!(out.contains(r#"{"order": 42}"#), "{out}");
}
