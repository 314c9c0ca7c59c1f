//! systemd service notification (`Type=notify`): the sd_notify protocol, written by hand.
//!
//! The protocol is one datagram per state change, newline-separated `KEY=VALUE` lines, sent to
//! the `AF_UNIX` socket named by `$NOTIFY_SOCKET` (a path, or `@name` for the abstract
//! namespace). It is a few lines over `UnixDatagram`, so no crate. The gateway sends:
//! - `READY=1` once the listeners are bound and `/readyz` would answer 200 under the
//!   configured `[admin] readiness` (so `systemctl start` returns when the instance serves);
//! - `RELOADING=1` (with `MONOTONIC_USEC`, as systemd asks) when a reload starts and
//!   `READY=1` when it is over, whether the new config was swapped in or refused;
//! - `STOPPING=1` when the drain starts.
//!
//! Notification is best effort and never decides anything: a send that fails is logged once
//! per state and the gateway goes on. It is only enabled by `authgate run` when
//! `$NOTIFY_SOCKET` is set; tests and the demo never notify unless they ask to.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::ServerState;

/// How often readiness is looked at until `READY=1` is sent.
const READY_POLL: Duration = Duration::from_millis(50);

/// A state change systemd is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ready,
    Reloading,
    Stopping,
}

/// Why `$NOTIFY_SOCKET` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET {0:?} is neither an absolute path nor an @abstract name")]
    Address(String),
    #[error("NOTIFY_SOCKET {address:?}: cannot open a datagram socket")]
    Socket {
        address: String,
        #[source]
        source: io::Error,
    },
}

/// A connection-less sender to systemd's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    target: SocketAddr,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` asks for, `None` when it is unset or empty.
    pub fn from_env() -> Result<Option<Notifier>, NotifyError> {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(address) if !address.is_empty() => Notifier::new(&address).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier for `address`: an absolute path, or `@name` (Linux abstract namespace).
    pub fn new(address: &str) -> Result<Notifier, NotifyError> {
        let target = parse_address(address)?;
        let socket = UnixDatagram::unbound().map_err(|source| NotifyError::Socket {
            address: address.to_owned(),
            source,
        })?;
        Ok(Notifier { socket, target })
    }

    /// Sends one state change.
    pub fn send(&self, status: Status) -> io::Result<()> {
        let message = match status {
            Status::Ready => "READY=1\nSTATUS=serving\n".to_owned(),
            Status::Reloading => format!(
                "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading the config\n",
                monotonic_usec()
            ),
            Status::Stopping => "STOPPING=1\nSTATUS=draining connections\n".to_owned(),
        };
        self.socket
            .send_to_addr(message.as_bytes(), &self.target)
            .map(|_| ())
    }
}

fn parse_address(address: &str) -> Result<SocketAddr, NotifyError> {
    let invalid = || NotifyError::Address(address.to_owned());
    if let Some(name) = address.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            return SocketAddr::from_abstract_name(name.as_bytes()).map_err(|_| invalid());
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(invalid());
        }
    }
    if !address.starts_with('/') {
        return Err(invalid());
    }
    SocketAddr::from_pathname(address).map_err(|_| invalid())
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
fn monotonic_usec() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let seconds = u64::try_from(now.tv_sec).unwrap_or(0);
    let micros = u64::try_from(now.tv_nsec).unwrap_or(0) / 1_000;
    seconds.saturating_mul(1_000_000).saturating_add(micros)
}

/// Sends `status` if notifying at all; a failure is logged, never fatal.
pub(crate) fn tell(notifier: Option<&Notifier>, status: Status) {
    if let Some(notifier) = notifier {
        if let Err(error) = notifier.send(status) {
            tracing::warn!(error = %error, status = ?status, "cannot notify systemd");
        }
    }
}

/// Sends `READY=1` once `/readyz` would answer 200 (listeners bound, readiness mode met).
/// The task ends after sending; the caller aborts it when the gateway stops first.
pub(crate) fn spawn_ready(
    notifier: Option<Arc<Notifier>>,
    state: Arc<ServerState>,
) -> Option<JoinHandle<()>> {
    let notifier = notifier?;
    Some(tokio::spawn(async move {
        let mut logged = false;
        while !super::admin::readiness(&state).0 {
            if !logged {
                tracing::info!("waiting for readiness before notifying systemd");
                logged = true;
            }
            tokio::time::sleep(READY_POLL).await;
        }
        tell(Some(&notifier), Status::Ready);
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> (tempfile::TempDir, UnixDatagram) {
        let dir = tempfile::tempdir().unwrap();
        let socket = UnixDatagram::bind(dir.path().join("notify.sock")).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        (dir, socket)
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn each_state_is_one_datagram_in_the_sd_notify_format() {
        let (dir, socket) = listener();
        let path = dir.path().join("notify.sock");
        let notifier = Notifier::new(path.to_str().unwrap()).unwrap();

        notifier.send(Status::Ready).unwrap();
        let ready = receive(&socket);
        assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");

        notifier.send(Status::Reloading).unwrap();
        let reloading = receive(&socket);
        let lines: Vec<&str> = reloading.lines().collect();
        assert!(lines.contains(&"RELOADING=1"), "{reloading}");
        let usec: u64 = lines
            .iter()
            .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
            .expect("MONOTONIC_USEC")
            .parse()
            .unwrap();
        assert!(usec > 0);

        notifier.send(Status::Stopping).unwrap();
        let stopping = receive(&socket);
        assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
        // Every line is KEY=VALUE.
        for message in [&ready, &reloading, &stopping] {
            assert!(message.lines().all(|l| l.split_once('=').is_some()));
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn abstract_socket_names_are_supported() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("authgate-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let notifier = Notifier::new(&format!("@{name}")).unwrap();
        notifier.send(Status::Ready).unwrap();
        assert!(receive(&socket).starts_with("READY=1\n"));
    }

    #[test]
    fn relative_and_unsupported_addresses_are_refused() {
        for address in ["notify.sock", "vsock:2:1234", "./x"] {
            let error = Notifier::new(address).unwrap_err();
            assert!(error.to_string().contains("NOTIFY_SOCKET"), "{error}");
        }
    }

    #[test]
    fn a_missing_listener_is_a_send_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nobody.sock");
        let notifier = Notifier::new(path.to_str().unwrap()).unwrap();
        assert!(notifier.send(Status::Ready).is_err());
        // tell() only logs.
        tell(Some(&notifier), Status::Stopping);
    }
}
