//! README commands as tests (issue 16): the `sh` blocks of a Markdown section, run with bash
//! from the repository root with the built `authgate` first on the PATH, bounded in time.
//! Included with `#[path = "support/shell.rs"] mod shell;`. Callers replace only loopback
//! ports and scratch paths, so that tests running in parallel do not collide.
#![allow(dead_code)]

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
