//! `authgate run --watch`: reload when the config file or a file it names changes.
//!
//! Watched: the config file itself, every string value under a key named `file` or ending
//! in `_file` (key files, TLS certificates, keys, CA bundles and CRLs, JWKS files, API key
//! files), and every `${file:PATH}` secret, each resolved like the config resolves it
//! (`${VAR}` expanded, relative to the config file's directory). The list is read again from
//! the config at every poll, so files a reload adds are watched from then on.
//!
//! Polling, not inotify (the `notify` crate): every [`INTERVAL`] each file's size, mtime and
//! content hash are compared with the last poll's. Polling follows symlinks the way the
//! gateway's own reads do, so a Kubernetes ConfigMap or Secret update (an atomic swap of the
//! `..data` symlink, which an inotify watch on the file itself never sees) is noticed; it
//! needs no extra crate and costs a few small reads a second. The content hash catches a
//! rewrite within the mtime's granularity; it only detects change and is no security check.
//!
//! Debounced: a change is reloaded once the files have stayed the same for one whole
//! interval, so an editor's save, a certificate and key written one after the other, or a
//! kubelet swap make one reload. The reload is the SIGHUP one ([`Control::Reload`]): an
//! invalid config is refused and logged, and the old one keeps serving. The watcher never
//! reads what it watches for any other purpose and never decides anything itself.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Control;
use crate::config::Source;

/// How often the files are looked at by `authgate run --watch`.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// What one file looked like at one poll; `None` when it could not be read.
type Seen = Option<(u64, Option<SystemTime>, u64)>;

/// Watches `config` and the files it names, sending [`Control::Reload`] after each settled
/// change. Ends when the control channel closes (the gateway stopped).
pub fn spawn(
    config: PathBuf,
    control: mpsc::Sender<Control>,
    interval: Duration,
) -> JoinHandle<()> {
    // The baseline is taken now, not when the task first runs: the caller goes on to serve
    // and say it is ready, and a change made after that must not be taken for the baseline.
    let mut last = fingerprint(&config);
    tokio::spawn(async move {
        tracing::info!(
            files = last.len(),
            interval = ?interval,
            "watching the config and the files it names"
        );
        let mut pending = false;
        loop {
            tokio::time::sleep(interval).await;
            let now = fingerprint(&config);
            if now != last {
                last = now;
                pending = true;
                continue;
            }
            if pending {
                pending = false;
                tracing::info!("config or a file it names changed: reloading");
                if control.send(Control::Reload).await.is_err() {
                    return;
                }
            } else if control.is_closed() {
                return;
            }
        }
    })
}

/// Every watched path with what it looks like now, in a stable order.
fn fingerprint(config: &Path) -> Vec<(PathBuf, Seen)> {
    watched_files(config)
        .into_iter()
        .map(|path| {
            let seen = look(&path);
            (path, seen)
        })
        .collect()
}

fn look(path: &Path) -> Seen {
    let metadata = std::fs::metadata(path).ok()?;
    let content = std::fs::read(path).ok()?;
    let mut hasher = DefaultHasher::new();
    content.hash(&mut hasher);
    Some((metadata.len(), metadata.modified().ok(), hasher.finish()))
}

/// The config file and the files it names (see the module doc), sorted, without duplicates.
/// An unreadable or unparsable config yields just itself: its next good version names the
/// rest.
pub fn watched_files(config: &Path) -> Vec<PathBuf> {
    let mut files = vec![config.to_path_buf()];
    if let Ok(text) = std::fs::read_to_string(config) {
        let source = Source {
            path: config.display().to_string(),
            text,
        };
        if let Ok(table) = source.text.parse::<toml::Table>() {
            for (key, value) in &table {
                named_files(&source, key, value, &mut files);
            }
        }
    }
    files.sort();
    files.dedup();
    files
}

fn named_files(source: &Source, key: &str, value: &toml::Value, out: &mut Vec<PathBuf>) {
    match value {
        toml::Value::String(text) => {
            secret_files(source, text, out);
            if key == "file" || key.ends_with("_file") {
                let expanded = crate::config::env::interpolate(text, &source.base_dir(), |name| {
                    std::env::var(name).ok()
                });
                if let Ok(path) = expanded {
                    out.push(source.resolve(&path));
                }
            }
        }
        toml::Value::Array(items) => {
            for item in items {
                named_files(source, key, item, out);
            }
        }
        toml::Value::Table(table) => {
            for (key, value) in table {
                named_files(source, key, value, out);
            }
        }
        toml::Value::Integer(_)
        | toml::Value::Float(_)
        | toml::Value::Boolean(_)
        | toml::Value::Datetime(_) => {}
    }
}

/// Each `${file:PATH}` in `text`.
fn secret_files(source: &Source, text: &str, out: &mut Vec<PathBuf>) {
    let mut rest = text;
    while let Some(start) = rest.find("${file:") {
        let after = &rest[start + "${file:".len()..];
        let Some(end) = after.find('}') else {
            return;
        };
        if end > 0 {
            out.push(source.resolve(&after[..end]));
        }
        rest = &after[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_key_files_tls_files_and_file_secrets_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("authgate.toml");
        std::fs::write(
            &config,
            r#"
[server.tls]
cert_file = "certs/server.pem"
key_file = "/etc/authgate/server-key.pem"
client_ca_file = "${AUTHGATE_WATCH_TEST_DIR:-ca}/clients.pem"

[[issuers]]
name = "a"
hmac_secret = "${file:secrets/hmac}"
[[issuers]]
name = "b"
jwks_file = "keys/b.json"

[[api_keys]]
name = "partners"
file = "keys/partners.toml"

[[upstreams]]
name = "u"
url = "http://127.0.0.1:1"
headers = { "X-Token" = "prefix-${file:/run/secrets/token}-${HOME}" }
"#,
        )
        .unwrap();
        let files = watched_files(&config);
        let mut expected: Vec<PathBuf> = vec![
            config.clone(),
            dir.path().join("certs/server.pem"),
            PathBuf::from("/etc/authgate/server-key.pem"),
            dir.path().join("ca/clients.pem"),
            dir.path().join("secrets/hmac"),
            dir.path().join("keys/b.json"),
            dir.path().join("keys/partners.toml"),
            PathBuf::from("/run/secrets/token"),
        ];
        expected.sort();
        assert_eq!(files, expected);
    }

    #[test]
    fn a_broken_config_is_still_watched_itself() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("authgate.toml");
        std::fs::write(&config, "[server\nlisten = ").unwrap();
        assert_eq!(watched_files(&config), vec![config.clone()]);
        let missing = dir.path().join("missing.toml");
        assert_eq!(watched_files(&missing), vec![missing.clone()]);
    }

    #[test]
    fn the_fingerprint_changes_with_content_even_at_the_same_size_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "aaaa").unwrap();
        let before = look(&file);
        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
        std::fs::write(&file, "bbbb").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let after = look(&file);
        assert_ne!(before, after);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(look(&file), None);
    }

    /// The files as they were when `spawn` returned are the baseline: a change made right
    /// after (the gateway may already have said it is ready) is seen, however late the
    /// watcher's task first runs.
    #[tokio::test(start_paused = true)]
    async fn a_change_right_after_spawn_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("authgate.toml");
        std::fs::write(&config, "# v1\n").unwrap();
        let (control, mut received) = mpsc::channel(8);
        let task = spawn(config.clone(), control, Duration::from_secs(1));
        // No await between spawning and the write: the task has not run yet.
        std::fs::write(&config, "# v2, longer\n").unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(
            matches!(received.try_recv(), Ok(Control::Reload)),
            "the change was taken for the baseline"
        );
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_changes_makes_one_reload_after_it_settles() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("authgate.toml");
        std::fs::write(&config, "# v1\n").unwrap();
        let (control, mut received) = mpsc::channel(8);
        let task = spawn(config.clone(), control, Duration::from_secs(1));
        // Let the watcher take its first fingerprint.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(received.try_recv().is_err());

        // Three writes within the same interval and one in the next: still one reload.
        for version in ["# v2\n", "# v3\n", "# v4\n"] {
            std::fs::write(&config, version).unwrap();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        std::fs::write(&config, "# v5\n").unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(received.try_recv().is_err(), "reloaded before settling");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(matches!(received.try_recv(), Ok(Control::Reload)));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(received.try_recv().is_err(), "one change, one reload");

        // The watcher ends with the gateway.
        drop(received);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(task.is_finished());
    }
}
