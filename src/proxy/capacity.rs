//! Caps on concurrent upstream requests: `[server] max_upstream_requests` over all upstreams
//! and an upstream's `max_concurrent_requests`.
//!
//! Without them, HTTP/2 multiplies what one client can hold: each stream is an upstream
//! request and an upstream connection (a file descriptor). A request takes one permit of each
//! cap before it is sent and keeps them until its response body is done (a WebSocket tunnel:
//! until it closes). When a cap is reached the request is answered at once with 503
//! `unavailable` and Retry-After, never queued: a queue would hold the client connection and
//! its memory for the same resource, and a client retrying later is cheaper than one
//! waiting. A reload that keeps a cap's size keeps its permits (the requests in flight still
//! count); one that changes it starts a new cap for new requests.

use std::sync::Arc;

use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One cap: a fixed number of permits.
pub struct Capacity {
    limit: usize,
    semaphore: Arc<Semaphore>,
}

impl Capacity {
    /// `previous` when it has the same size (its requests in flight keep counting), else new.
    pub fn carried(previous: Option<&Arc<Capacity>>, limit: usize) -> Arc<Capacity> {
        match previous {
            Some(previous) if previous.limit == limit => Arc::clone(previous),
            Some(_) | None => Arc::new(Capacity {
                limit,
                semaphore: Arc::new(Semaphore::new(limit.min(Semaphore::MAX_PERMITS))),
            }),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    fn try_take(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.semaphore).try_acquire_owned().ok()
    }
}

/// The caps one upstream's requests take.
pub struct UpstreamCapacity {
    pub global: Arc<Capacity>,
    pub own: Option<Arc<Capacity>>,
}

impl UpstreamCapacity {
    /// Permits for one request, or `None` when a cap is reached. `in_flight` counts them.
    pub fn try_take(&self, in_flight: &IntGauge) -> Option<Permits> {
        let own = match &self.own {
            Some(own) => Some(own.try_take()?),
            None => None,
        };
        let global = self.global.try_take()?;
        in_flight.inc();
        Some(Permits {
            _global: global,
            _own: own,
            in_flight: in_flight.clone(),
        })
    }
}

/// One request's place under the caps; released when dropped.
pub struct Permits {
    _global: OwnedSemaphorePermit,
    _own: Option<OwnedSemaphorePermit>,
    in_flight: IntGauge,
}

impl Drop for Permits {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_caps_apply_and_permits_return_on_drop() {
        let gauge = IntGauge::new("t", "t").expect("gauge");
        let global = Capacity::carried(None, 3);
        let a = UpstreamCapacity {
            global: Arc::clone(&global),
            own: Some(Capacity::carried(None, 2)),
        };
        let b = UpstreamCapacity {
            global: Arc::clone(&global),
            own: None,
        };
        let first = a.try_take(&gauge).expect("a 1");
        let _second = a.try_take(&gauge).expect("a 2");
        assert!(a.try_take(&gauge).is_none(), "a's own cap");
        let _third = b.try_take(&gauge).expect("b 1");
        assert!(b.try_take(&gauge).is_none(), "the global cap");
        assert_eq!(gauge.get(), 3);
        drop(first);
        assert_eq!(gauge.get(), 2);
        assert!(b.try_take(&gauge).is_some());

        // Same size: carried over; another size: a new cap.
        assert!(Arc::ptr_eq(&Capacity::carried(Some(&global), 3), &global));
        assert!(!Arc::ptr_eq(&Capacity::carried(Some(&global), 4), &global));
    }
}
