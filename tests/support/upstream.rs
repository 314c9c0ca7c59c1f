//! Hand-made upstreams, for tests that need a peer the echo cannot be (one that fails on
//! purpose, resets, speaks h2c or TLS): [`Upstream::start`] runs an accept loop on
//! 127.0.0.1:0 and hands each connection to the test's closure in its own task; it counts
//! connections and stops, with every connection, when dropped. [`refused_addr`] is a loopback
//! port where nothing listens. The closure owns the protocol; this module never speaks HTTP.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A running hand-made upstream; stops on drop.
pub struct Upstream {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// Binds 127.0.0.1:0 and calls `serve` with each accepted connection, in its own task.
    pub async fn start<F, Fut>(serve: F) -> Upstream
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            // Aborting this task drops the set, which aborts every connection task.
            let mut tasks = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tasks.spawn(serve(stream));
                while tasks.try_join_next().is_some() {}
            }
        });
        Upstream {
            addr,
            connections,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A loopback port with nothing listening (connections are refused).
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}
