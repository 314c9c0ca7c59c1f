//! The server: loads the config, binds the listeners, serves client connections and the admin
//! endpoints, reloads on request and drains on shutdown.
//!
//! Binding is separate from loading (so `check` never binds) and from serving (so tests learn
//! the bound addresses of port-0 listeners before traffic starts).

mod admin;
mod conn;
mod decision;
pub mod fds;
pub mod file_watch;
mod io;
pub mod notify;
mod reload;
mod sniff;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::config::{self, CompileContext, ConfigError, Source};
use crate::metrics::Metrics;
use crate::snapshot::{Shared, Snapshot};

/// Where the config comes from: a file (reloadable) or text (the demo, tests).
#[derive(Debug, Clone)]
pub enum ConfigOrigin {
    File(PathBuf),
    Text { name: String, text: String },
}

impl ConfigOrigin {
    pub fn read(&self) -> Result<(config::raw::Config, Source), ConfigError> {
        match self {
            ConfigOrigin::File(path) => config::read(path),
            ConfigOrigin::Text { name, text } => {
                let source = Source {
                    path: name.clone(),
                    text: text.clone(),
                };
                config::parse(&source).map(|raw| (raw, source))
            }
        }
    }

    /// Reads and compiles, reusing surviving state of `previous`.
    pub fn load(
        &self,
        metrics: &Arc<Metrics>,
        previous: Option<&Snapshot>,
    ) -> Result<Snapshot, ConfigError> {
        let (raw, source) = self.read()?;
        config::compile(
            &raw,
            CompileContext {
                source: &source,
                metrics: Arc::clone(metrics),
                previous,
            },
        )
    }
}

/// Runtime failures (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr} ({listener})")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What the control channel can ask of a running gateway.
#[derive(Debug)]
pub enum Control {
    Reload,
    Shutdown,
    /// Shutdown asked for by this signal (named in the final `stopped` line).
    Signal(&'static str),
}

/// The addresses actually bound.
#[derive(Debug, Clone, Copy)]
pub struct Addrs {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
    /// The decision listener (`[decision] listen`), when configured.
    pub decision: Option<SocketAddr>,
}

/// Counts open client connections so shutdown can wait for them.
#[derive(Default)]
pub(crate) struct Tracker {
    open: AtomicUsize,
    idle: Notify,
    /// Connections closed with requests still in flight when the drain ran out.
    pub(crate) cut: AtomicUsize,
}

impl Tracker {
    fn enter(self: &Arc<Self>) -> TrackGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        TrackGuard(Arc::clone(self))
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.open.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

pub(crate) struct TrackGuard(Arc<Tracker>);

impl Drop for TrackGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// State every listener task shares.
pub(crate) struct ServerState {
    pub shared: Shared,
    pub metrics: Arc<Metrics>,
    pub ready: AtomicBool,
    pub stop: watch::Receiver<bool>,
    pub tracker: Arc<Tracker>,
    pub connections: Arc<Semaphore>,
    /// Open connections per client address (the TCP peer), for `max_connections_per_client`.
    pub per_client: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    /// The TLS listener's swappable config (certificate reload).
    pub tls: Option<Arc<tls::TlsListener>>,
}

/// A gateway with its listeners bound, not yet serving.
pub struct Bound {
    origin: ConfigOrigin,
    state: Arc<ServerState>,
    stop_tx: watch::Sender<bool>,
    http: Option<TcpListener>,
    https: Option<(TcpListener, Arc<tls::TlsListener>)>,
    admin: TcpListener,
    decision: Option<TcpListener>,
    addrs: Addrs,
    /// systemd notification (`Type=notify`), when asked for with [`Bound::with_notifier`].
    notifier: Option<Arc<notify::Notifier>>,
}

async fn bind_one(listener: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            listener,
            addr,
            source,
        })
}

/// Binds every listener of `snapshot` and starts its key stores.
pub async fn bind(
    origin: ConfigOrigin,
    snapshot: Snapshot,
    metrics: Arc<Metrics>,
) -> Result<Bound, ServerError> {
    let http = match snapshot.server.listen {
        Some(addr) => Some(bind_one("http", addr).await?),
        None => None,
    };
    let https = match &snapshot.tls {
        Some(tls) => {
            let acceptor = tls::TlsListener::new(tls);
            Some((bind_one("https", tls.listen).await?, Arc::new(acceptor)))
        }
        None => None,
    };
    let admin = bind_one("admin", snapshot.admin_listen).await?;
    let decision = match snapshot.decision_listen {
        Some(addr) => Some(bind_one("decision", addr).await?),
        None => None,
    };
    let addrs = Addrs {
        http: http.as_ref().and_then(|l| l.local_addr().ok()),
        https: https.as_ref().and_then(|(l, _)| l.local_addr().ok()),
        admin: admin.local_addr().unwrap_or(snapshot.admin_listen),
        decision: decision.as_ref().and_then(|l| l.local_addr().ok()),
    };
    for issuer in &snapshot.issuers {
        issuer.store.start();
    }
    let (stop_tx, stop) = watch::channel(false);
    let connections = Arc::new(Semaphore::new(snapshot.server.max_connections));
    record_expiries(&metrics, &snapshot);
    crate::proxy::health::start(&snapshot.upstreams);
    let state = Arc::new(ServerState {
        shared: Arc::new(ArcSwap::from_pointee(snapshot)),
        metrics,
        ready: AtomicBool::new(false),
        stop,
        tracker: Arc::new(Tracker::default()),
        connections,
        per_client: std::sync::Mutex::default(),
        tls: https.as_ref().map(|(_, tls)| Arc::clone(tls)),
    });
    Ok(Bound {
        origin,
        state,
        stop_tx,
        http,
        https,
        admin,
        decision,
        addrs,
        notifier: None,
    })
}

impl Bound {
    /// Tells systemd about readiness, reloads and the drain (see [`notify`]).
    pub fn with_notifier(mut self, notifier: notify::Notifier) -> Bound {
        self.notifier = Some(Arc::new(notifier));
        self
    }

    pub fn addrs(&self) -> Addrs {
        self.addrs
    }

    pub fn shared(&self) -> Shared {
        Arc::clone(&self.state.shared)
    }

    /// Serves until `Control::Shutdown` (or the channel closes), then drains.
    pub async fn serve(self, mut control: mpsc::Receiver<Control>) {
        let Bound {
            origin,
            state,
            stop_tx,
            http,
            https,
            admin,
            decision,
            addrs,
            notifier,
        } = self;
        let mut tasks: Vec<JoinHandle<()>> = Vec::new();
        if let Some(listener) = http {
            tasks.push(tokio::spawn(conn::accept_loop(
                listener,
                None,
                Arc::clone(&state),
            )));
        }
        if let Some((listener, tls)) = https {
            tasks.push(tokio::spawn(conn::accept_loop(
                listener,
                Some(tls),
                Arc::clone(&state),
            )));
        }
        tasks.push(tokio::spawn(admin::serve(admin, Arc::clone(&state))));
        if let Some(listener) = decision {
            tasks.push(tokio::spawn(decision::serve(listener, Arc::clone(&state))));
        }
        state.ready.store(true, Ordering::SeqCst);
        tracing::info!(http = addrs.http.map(tracing::field::display), https = addrs.https.map(tracing::field::display), admin = %addrs.admin, "authgate listening");
        tasks.extend(notify::spawn_ready(notifier.clone(), Arc::clone(&state)));

        let reason = loop {
            match control.recv().await {
                Some(Control::Reload) => {
                    notify::tell(notifier.as_deref(), notify::Status::Reloading);
                    reload::reload(&origin, &state, &addrs).await;
                    notify::tell(notifier.as_deref(), notify::Status::Ready);
                }
                Some(Control::Shutdown) => break "shutdown requested",
                Some(Control::Signal(signal)) => break signal,
                None => break "control channel closed",
            }
        };
        notify::tell(notifier.as_deref(), notify::Status::Stopping);

        // Drain: stop accepting, let in-flight requests finish (bounded), then stop. Each
        // connection cuts its own requests at `shutdown_timeout` (their access lines say
        // so); the margin lets them close before the count is read.
        tracing::info!(reason = %reason, "shutting down: draining connections");
        crate::access_log::shutdown_started();
        state.ready.store(false, Ordering::SeqCst);
        let _ = stop_tx.send(true);
        let timeout = state.shared.load().server.shutdown_timeout;
        let idle = tokio::time::timeout(timeout + DRAIN_MARGIN, state.tracker.wait_idle()).await;
        let cut = state.tracker.cut.load(Ordering::SeqCst);
        if idle.is_err() || cut > 0 {
            tracing::warn!(timeout = %humantime(timeout), connections_cut = cut, "drain timed out; closing remaining connections");
        }
        for task in tasks {
            task.abort();
        }
        tracing::info!(reason = %reason, drained = idle.is_ok() && cut == 0, "stopped");
    }
}

/// `authgate_certificate_expiry_timestamp_seconds` for `snapshot`'s TLS material.
pub(crate) fn record_expiries(metrics: &Metrics, snapshot: &Snapshot) {
    let expiries = snapshot.tls.iter().flat_map(|tls| tls.expiries.iter());
    let upstreams = snapshot.upstreams.iter();
    let expiries = expiries.chain(upstreams.filter_map(|u| u.client_cert_expiry.as_ref()));
    metrics.certificate_expiries(
        expiries.map(|expiry| (expiry.kind, expiry.name.as_str(), expiry.timestamp)),
    );
}

/// A gateway serving in the background: what tests and the demo hold.
pub struct Handle {
    pub addrs: Addrs,
    pub shared: Shared,
    control: mpsc::Sender<Control>,
    task: JoinHandle<()>,
}

impl Handle {
    /// Loads, binds and serves in a background task.
    pub async fn start(origin: ConfigOrigin) -> Result<Handle, StartError> {
        let metrics = Metrics::new();
        let snapshot = origin.load(&metrics, None)?;
        metrics.config_loaded(true);
        let bound = bind(origin, snapshot, metrics).await?;
        let addrs = bound.addrs();
        let shared = bound.shared();
        let (control, receiver) = mpsc::channel(8);
        let task = tokio::spawn(bound.serve(receiver));
        Ok(Handle {
            addrs,
            shared,
            control,
            task,
        })
    }

    pub async fn reload(&self) {
        let _ = self.control.send(Control::Reload).await;
    }

    /// Asks for a drain and waits for it (bounded by `shutdown_timeout`).
    pub async fn shutdown(self) {
        let _ = self.control.send(Control::Shutdown).await;
        let _ = self.task.await;
    }

    pub fn control(&self) -> mpsc::Sender<Control> {
        self.control.clone()
    }
}

/// Why [`Handle::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// How long past `shutdown_timeout` the drain waits for connections to close themselves.
const DRAIN_MARGIN: Duration = Duration::from_millis(500);

/// A duration as a log value: `300ms`, `30s`.
fn humantime(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// How long the accept loop backs off after an accept error (e.g. out of file descriptors).
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Unix signals: SIGHUP reloads, SIGTERM and SIGINT drain and stop.
pub mod signals {
    use tokio::signal::unix::{signal, SignalKind};
    use tokio::sync::mpsc;

    use super::Control;

    /// Spawns a task that turns signals into [`Control`] messages.
    pub fn forward(control: mpsc::Sender<Control>) -> std::io::Result<()> {
        let mut hangup = signal(SignalKind::hangup())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    _ = hangup.recv() => Control::Reload,
                    _ = terminate.recv() => Control::Signal("SIGTERM"),
                    _ = interrupt.recv() => Control::Signal("SIGINT"),
                };
                if control.send(message).await.is_err() {
                    return;
                }
            }
        });
        Ok(())
    }
}
