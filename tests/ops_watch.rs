//! `authgate run --watch` and systemd notification (issue 16), on a real gateway:
//! - a rotated `${file:}` secret and an edited config are reloaded without SIGHUP, with the
//!   SIGHUP rules (an invalid edit is refused and the old config keeps serving);
//! - the sd_notify datagrams arrive in order on a real Unix datagram socket: READY=1 once
//!   ready, RELOADING=1 then READY=1 around a reload, STOPPING=1 at the drain.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use authgate::metrics::Metrics;
use authgate::server::{self, file_watch, notify::Notifier, ConfigOrigin, Control};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use support::config::Config;
use support::echo::Echo;
use support::gateway::{eventually, Gateway};
use support::idp::now;

const ISS: &str = "https://auth.internal.example";
const POLL: Duration = Duration::from_millis(100);
const WITHIN: Duration = Duration::from_secs(4);

fn token(secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({ "iss": ISS, "aud": "api", "sub": "watcher", "exp": now() + 600 }),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// A private directory for a config and its secret file, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let path = std::env::temp_dir().join(format!("authgate-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    /// Write then rename, as a Secret or ConfigMap update replaces a file.
    fn write(&self, name: &str, text: &str) {
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.0.join(name)).unwrap();
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(echo: &Echo, extra_route: &str) -> String {
    Config::new()
        .issuer(
            "internal",
            &format!(
                "issuer = \"{ISS}\"\n\
                 # Relative: resolved against the config file's directory, and watched there.\n\
                 hmac_secret = \"${{file:hmac-secret}}\"\naudiences = [\"api\"]"
            ),
        )
        .echo(echo)
        .route("api", "/api", extra_route)
        .toml()
}

const OLD: &str = "watch-test-secret-old-0123456789abcdefgh";
const NEW: &str = "watch-test-secret-new-0123456789abcdefgh";

#[tokio::test]
async fn watch_reloads_a_rotated_file_secret_and_an_edited_config() {
    let dir = Dir::new("watch-it");
    let echo = Echo::start().await;
    dir.write("hmac-secret", &format!("{OLD}\n"));
    dir.write("authgate.toml", &config(&echo, ""));
    let path = dir.0.join("authgate.toml");
    let gateway = Gateway::from_file(&path).start().await;
    let watcher = file_watch::spawn(path.clone(), gateway.handle().control(), POLL);

    assert_eq!(
        gateway.get_with_token("/api/x", &token(OLD)).await.status,
        200
    );

    // Secret rotation (a Kubernetes Secret update): no SIGHUP, the new secret takes over.
    dir.write("hmac-secret", &format!("{NEW}\n"));
    let rotated = eventually(WITHIN, || async {
        gateway.get_with_token("/api/x", &token(NEW)).await.status == 200
    })
    .await;
    assert!(rotated, "the rotated secret was not picked up");
    gateway
        .get_with_token("/api/x", &token(OLD))
        .await
        .assert_error(401, "invalid_token");

    // A config edit: a new public route appears.
    let public = "[[routes]]\nname = \"status\"\npath_prefix = \"/status\"\nupstream = \"echo\"\npublic = true\n";
    dir.write("authgate.toml", &config(&echo, public));
    let edited = eventually(WITHIN, || async {
        gateway.get("/status").await.status == 200
    })
    .await;
    assert!(edited, "the edited config was not reloaded");

    // An invalid edit is refused like a bad SIGHUP: the old config keeps serving.
    dir.write("authgate.toml", "[server\nlisten = ");
    let refused = eventually(WITHIN, || async {
        gateway
            .metrics()
            .await
            .contains("authgate_config_last_reload_successful 0")
    })
    .await;
    assert!(refused, "the invalid edit was not refused");
    assert_eq!(gateway.get("/status").await.status, 200);
    assert_eq!(
        gateway.get_with_token("/api/x", &token(NEW)).await.status,
        200
    );

    // Fixed again: reloaded, and the gauge is back to 1.
    dir.write("authgate.toml", &config(&echo, ""));
    let fixed = eventually(WITHIN, || async {
        gateway.get("/status").await.status == 404
    })
    .await;
    assert!(fixed, "the fixed config was not reloaded");
    assert!(gateway
        .metrics()
        .await
        .contains("authgate_config_last_reload_successful 1"));

    gateway.shutdown().await;
    // The watcher ends with the gateway (its control channel closed).
    let ended = eventually(WITHIN, || async { watcher.is_finished() }).await;
    assert!(ended, "the watcher outlived the gateway");
}

fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket
        .recv(&mut buf)
        .expect("a notification within the timeout");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[tokio::test]
async fn systemd_hears_ready_reloading_and_stopping_in_order() {
    let dir = Dir::new("notify-it");
    let echo = Echo::start().await;
    dir.write("hmac-secret", OLD);
    dir.write("authgate.toml", &config(&echo, ""));
    let socket_path = dir.0.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(WITHIN)).unwrap();

    let origin = ConfigOrigin::File(dir.0.join("authgate.toml"));
    let metrics = Metrics::new();
    let snapshot = origin.load(&metrics, None).unwrap();
    let bound = server::bind(origin, snapshot, metrics)
        .await
        .unwrap()
        .with_notifier(Notifier::new(socket_path.to_str().unwrap()).unwrap());
    let admin = bound.addrs().admin;
    let (control, receiver) = tokio::sync::mpsc::channel(8);
    let serving = tokio::spawn(bound.serve(receiver));

    let ready = tokio::task::spawn_blocking({
        let socket = socket.try_clone().unwrap();
        move || receive(&socket)
    })
    .await
    .unwrap();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    // READY=1 means what /readyz means.
    let readyz = support::gateway::send(admin, support::gateway::get("/readyz")).await;
    assert_eq!(readyz.status, 200);

    control.send(Control::Reload).await.unwrap();
    let socket2 = socket.try_clone().unwrap();
    let (reloading, ready_again) =
        tokio::task::spawn_blocking(move || (receive(&socket2), receive(&socket2)))
            .await
            .unwrap();
    assert!(reloading.lines().any(|l| l == "RELOADING=1"), "{reloading}");
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading}"
    );
    assert!(ready_again.lines().any(|l| l == "READY=1"), "{ready_again}");

    control.send(Control::Shutdown).await.unwrap();
    let stopping = tokio::task::spawn_blocking(move || receive(&socket))
        .await
        .unwrap();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    tokio::time::timeout(WITHIN, serving)
        .await
        .expect("drained")
        .unwrap();
}

/// Kills the gateway process if a test fails before it exits.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary as systemd runs it: `$NOTIFY_SOCKET` set, `run --watch`. Ports 0, so nothing
/// here needs to connect: the datagrams tell the story.
#[tokio::test]
async fn the_binary_notifies_systemd_and_watches_with_run_watch() {
    let dir = Dir::new("binary-it");
    dir.write("hmac-secret", OLD);
    let echo = Echo::start().await;
    dir.write("authgate.toml", &config(&echo, ""));
    let socket_path = dir.0.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(WITHIN)).unwrap();

    let mut child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
            .args(["--log-format", "json", "run", "--watch", "-c"])
            .arg(dir.0.join("authgate.toml"))
            .env("NOTIFY_SOCKET", &socket_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start authgate"),
    );
    let socket = std::sync::Arc::new(socket);
    let next = |socket: &std::sync::Arc<UnixDatagram>| {
        let socket = std::sync::Arc::clone(socket);
        tokio::task::spawn_blocking(move || receive(&socket))
    };
    let ready = next(&socket).await.unwrap();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");

    // A rotated secret file: --watch reloads (polled each second, debounced), and systemd
    // hears about it.
    dir.write("hmac-secret", NEW);
    let reloading = next(&socket).await.unwrap();
    assert!(reloading.lines().any(|l| l == "RELOADING=1"), "{reloading}");
    let ready_again = next(&socket).await.unwrap();
    assert!(ready_again.lines().any(|l| l == "READY=1"), "{ready_again}");

    assert!(std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap()
        .success());
    let stopping = next(&socket).await.unwrap();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    let exited = eventually(WITHIN, || {
        let status = child.0.try_wait().unwrap();
        async move { status.is_some_and(|s| s.success()) }
    })
    .await;
    assert!(exited, "the gateway did not exit 0 after SIGTERM");
}
