//! The real `authgate` binary as a child process: [`Running`] starts `authgate run -c FILE`,
//! collects stderr line by line (split on `\n` only, as `tail` or a log shipper would), reads
//! the bound addresses back from the "authgate listening" line (so configs use port 0 and no
//! test picks a port by bind-and-release), sends signals and waits (bounded) for exit or a log
//! line. The child is killed on drop. [`explain`] runs `authgate explain` to completion.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bound on the binary starting to listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `authgate run`.
pub struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

/// The listeners the binary reported.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub http: SocketAddr,
    pub admin: SocketAddr,
}

impl Running {
    /// Starts `authgate --log-format FORMAT run -c CONFIG` with `RUST_LOG=info`.
    pub fn start(config: &Path, format: &str) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_authgate"))
            .args(["--log-format", format, "run", "-c"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start authgate");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let mut pipe = BufReader::new(child.stderr.take().expect("stderr"));
        std::thread::spawn(move || {
            let mut line = Vec::new();
            while matches!(pipe.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let text = String::from_utf8_lossy(&line);
                sink.lock()
                    .unwrap()
                    .push(text.trim_end_matches('\n').to_owned());
                line.clear();
            }
        });
        Running { child, lines }
    }

    /// Every stderr line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The plaintext and admin addresses from the "authgate listening" line, waiting for it
    /// (bounded by [`START_TIMEOUT`]; panics with the log when it does not come).
    pub async fn bound(&self) -> Bound {
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            let found = self.lines().iter().find_map(|line| {
                if !line.contains("authgate listening") {
                    return None;
                }
                Some(Bound {
                    http: address_after(line, "http")?,
                    admin: address_after(line, "admin")?,
                })
            });
            if let Some(bound) = found {
                return bound;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("gateway did not start: {:?}", self.lines());
    }

    /// Sends `kill -NAME` to the child.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{name} {pid}");
    }

    /// Waits (bounded by `within`) for the child to exit.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for authgate") {
                return status;
            }
            assert!(started.elapsed() < within, "gateway did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether a line containing `needle` appears within `within`.
    pub async fn wait_log(&self, needle: &str, within: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < within {
            if self.lines().iter().any(|line| line.contains(needle)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address logged as field `name`, in the text format (`http=Some(127.0.0.1:1)`,
/// `admin=127.0.0.1:2`) or the JSON one (`"http":"Some(127.0.0.1:1)"`).
fn address_after(line: &str, name: &str) -> Option<SocketAddr> {
    [format!(" {name}="), format!("\"{name}\":\"")]
        .iter()
        .find_map(|key| {
            let rest = line.split(key.as_str()).nth(1)?;
            let rest = rest.strip_prefix("Some(").unwrap_or(rest);
            let end = rest
                .find(|c: char| !(c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')))
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
}

/// What `authgate explain` printed and its exit code.
pub struct Explained {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `authgate explain -c CONFIG ARGS` with `RUST_LOG=off` and waits for it.
pub fn explain(config: &Path, args: &[&str]) -> Explained {
    let output = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("explain")
        .arg("-c")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run authgate explain");
    Explained {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
