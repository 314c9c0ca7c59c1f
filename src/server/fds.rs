//! The file-descriptor budget, checked once at start (`authgate run`).
//!
//! Every client connection is a descriptor, and so is every upstream connection: one per
//! request in flight (at most `max_upstream_requests`) plus the idle ones each upstream
//! client keeps (`max_idle_connections`). A gateway whose limits do not fit its descriptor
//! limit fails at the worst moment, under load, on whichever accept or connect comes last.
//! So at start the soft RLIMIT_NOFILE is raised to the hard limit, and a config that still
//! does not fit is refused before anything is bound.

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
    #[error("cannot read the file descriptor limit")]
    Read(#[source] std::io::Error),
}

/// Raises the soft RLIMIT_NOFILE to the hard limit, then checks that `snapshot` fits.
/// Returns the limit in force.
pub fn raise_and_check(snapshot: &Snapshot) -> Result<u64, FdError> {
    let (soft, hard) = limits().map_err(FdError::Read)?;
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

fn limits() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid, exclusively borrowed struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // rlim_t is u64 on Linux, not on every platform.
    #[allow(clippy::unnecessary_cast)]
    Ok((limit.rlim_cur as u64, limit.rlim_max as u64))
}

fn set_soft(soft: u64) -> std::io::Result<()> {
    let (_, hard) = limits()?;
    let limit = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit reads one rlimit from the valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
