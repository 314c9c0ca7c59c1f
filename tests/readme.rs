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

/// The `sh` code blocks of the section that starts with `heading`, in order (the section
/// ends at the next heading of its level or above, outside code blocks).
pub fn sh_blocks(markdown: &str, heading: &str) -> Vec<String> {
    let level = heading.chars().take_while(|&c| c == '#').count();
    let mut lines = markdown
        .lines()
        .skip_while(|line| !line.starts_with(heading));
    assert!(lines.next().is_some(), "no section {heading:?}");
    let mut blocks = Vec::new();
    // Some(Some(body)): inside an sh block; Some(None): inside another code block.
    let mut code: Option<Option<Vec<&str>>> = None;
    for line in lines {
        let fence = line.trim_start().starts_with("```");
        match &mut code {
            Some(body) if fence => {
                if let Some(body) = body.take() {
                    blocks.push(body.join("\n"));
                }
                code = None;
            }
            Some(Some(body)) => body.push(line),
            Some(None) => {}
            None if fence => {
                code = Some((line.trim() == "```sh").then(Vec::new));
            }
            None => {
                let hashes = line.chars().take_while(|&c| c == '#').count();
                if hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
                    break;
                }
            }
        }
    }
    blocks
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `script` with bash (`set -euo pipefail`; background jobs killed at exit) from the
/// repository root, the built `authgate` first on the PATH; at most `within`.
pub fn run_script(script: &str, within: std::time::Duration) -> (bool, String) {
    use std::io::Read as _;
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_authgate"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let wrapped = format!(
        "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT\n{script}\n"
    );
    let mut child = std::process::Command::new("bash")
        .arg("-c")
        .arg(wrapped)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", path)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bash");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut out = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut out);
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let ok = status.is_some_and(|s| s.success());
    (ok, format!("{out}\n--- stderr ---\n{err}"))
}

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
