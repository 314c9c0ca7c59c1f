//! The file-descriptor budget, checked once at start (`authgate run`).
//!
//! Every client connection is a descriptor, and so is every upstream connection: one per
//! request in flight (at most `max_upstream_requests`) plus the idle ones each upstream
//! client keeps (`max_idle_connections`). A gateway whose limits do not fit its descriptor
//! limit fails at the worst moment, under load, on whichever accept or connect comes last.
//! So at start the soft RLIMIT_NOFILE is raised to the hard limit, and a config that still
//! does not fit is refused before anything is bound.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

use crate::snapshot::Snapshot;

/// Descriptors kept for everything else: listeners, key-set fetches, files read at reload,
/// the runtime's own.
pub const RESERVED: u64 = 64;

/// The descriptors `snapshot` may use at most.
pub fn needed(snapshot: &Snapshot) -> u64 {
    let mut pools: Vec<(&std::sync::Arc<_>, &str)> = Vec::new();
    let mut idle = 0u64;
    for upstream in &snapshot.upstreams {
        // Upstreams sharing a client share its idle pool; count each pool once per host.
        for server in &upstream.servers {
            let pool = (&upstream.client, server.authority.as_str());
            let seen = pools
                .iter()
                .any(|(client, host)| std::sync::Arc::ptr_eq(client, pool.0) && *host == pool.1);
            if !seen {
                pools.push(pool);
                idle += upstream.client.identity.max_idle as u64;
            }
        }
    }
    snapshot.server.max_connections as u64
        + snapshot.server.max_upstream_requests as u64
        + idle
        + RESERVED
}

/// The descriptor limit could not be raised far enough.
#[derive(Debug, thiserror::Error)]
pub enum FdError {
    #[error(
        "file descriptors: server.max_connections ({connections}) + server.max_upstream_requests \
         ({upstream}) + idle upstream connections ({idle}) + {RESERVED} reserved need {needed}, \
         but the limit is {limit} (hard limit {hard}); lower those settings or raise the \
         hard limit (ulimit -Hn, LimitNOFILE=)"
    )]
    TooLow {
        connections: usize,
        upstream: usize,
        idle: u64,
        needed: u64,
        limit: u64,
        hard: u64,
    },
}

/// Raises the soft RLIMIT_NOFILE to the hard limit, then checks that `snapshot` fits.
/// Returns the limit in force.
pub fn raise_and_check(snapshot: &Snapshot) -> Result<u64, FdError> {
    let (soft, hard) = limits();
    let limit = if soft < hard && set_soft(hard).is_ok() {
        hard
    } else {
        soft
    };
    let needed = needed(snapshot);
    if needed > limit {
        let connections = snapshot.server.max_connections;
        let upstream = snapshot.server.max_upstream_requests;
        return Err(FdError::TooLow {
            connections,
            upstream,
            idle: needed - connections as u64 - upstream as u64 - RESERVED,
            needed,
            limit,
            hard,
        });
    }
    Ok(limit)
}

/// `RLIM_INFINITY` as the number it is on Linux, where the limits were raw `rlim_t` values.
const INFINITY: u64 = u64::MAX;

/// The soft and hard RLIMIT_NOFILE (`u64::MAX` for no limit). Reading them cannot fail.
fn limits() -> (u64, u64) {
    let limit = getrlimit(Resource::Nofile);
    (
        limit.current.unwrap_or(INFINITY),
        limit.maximum.unwrap_or(INFINITY),
    )
}

fn set_soft(soft: u64) -> std::io::Result<()> {
    let (_, hard) = limits();
    let finite = |limit: u64| (limit != INFINITY).then_some(limit);
    let limit = Rlimit {
        current: finite(soft),
        maximum: finite(hard),
    };
    setrlimit(Resource::Nofile, limit)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_read_back_what_was_set() {
        let (soft, hard) = limits();
        assert!(soft <= hard, "soft {soft} above hard {hard}");
        // Setting the soft limit it already has changes nothing and must succeed.
        set_soft(soft).expect("setrlimit to the current soft limit");
        assert_eq!(limits(), (soft, hard));
    }
}
