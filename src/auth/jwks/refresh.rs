//! When a store loads: installing a load's outcome (good set, or stale marking), the
//! background task with its backoff and schedule, and the unknown-kid refresh budget.
//!
//! Owns the timing rules (SPEC §2: backoff from 1 s to `min_refresh`, max-age clamped to
//! `min_refresh` ..= 24 h, `max_stale`). It must never drop a good set because a refresh failed,
//! never keep the store alive (the task holds only a `Weak`), and never refresh for unknown
//! kids faster than the budget allows.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

use super::{
    FetchError, KeyStore, Loaded, RefreshPolicy, DELAY_FLOOR, INITIAL_BACKOFF, MAX_AGE_CEILING,
    UNKNOWN_KID_BURST,
};
use crate::auth::keys::KeySet;
use crate::logging::error_chain;

/// The delay until the next background refresh after a good fetch: the response's max-age
/// clamped into [min_refresh, 24 h] when present, else `refresh_interval` (SPEC §2).
pub fn refresh_delay(max_age: Option<Duration>, policy: &RefreshPolicy) -> Duration {
    let delay = match max_age {
        // Not `Duration::clamp`: it panics when min_refresh > 24 h.
        Some(age) => age.min(MAX_AGE_CEILING).max(policy.min_refresh),
        None => policy.refresh_interval,
    };
    delay.max(DELAY_FLOOR)
}

impl KeyStore {
    /// Applies the outcome of a load and returns the delay until the next scheduled refresh.
    pub(super) fn record(
        &self,
        result: Result<(KeySet, Option<Duration>), FetchError>,
    ) -> Duration {
        self.counters.attempts.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok((keys, max_age)) => {
                let delay = refresh_delay(max_age, &self.policy);
                let count = keys.len();
                self.install(keys, self.source.is_remote().then_some(delay));
                tracing::info!(source = %self.source, keys = count, "key set loaded");
                delay
            }
            Err(error) => {
                self.counters.refresh_error.fetch_add(1, Ordering::Relaxed);
                let serving = self.current.load().is_some();
                self.stale.store(serving, Ordering::Release);
                tracing::warn!(
                    source = %self.source,
                    error = %error_chain(&error),
                    serving_previous_set = serving,
                    "key set refresh failed"
                );
                // SPEC §2: "min_refresh: the fastest refresh allowed"; retrying a failed
                // refresh sooner than a good one, but never faster than that.
                self.policy
                    .min_refresh
                    .min(self.policy.refresh_interval)
                    .max(DELAY_FLOOR)
            }
        }
    }

    /// Swaps in a new set; `next_refresh` is `None` for sources that never go stale.
    pub(super) fn install(&self, keys: KeySet, next_refresh: Option<Duration>) {
        let usable_until = next_refresh.map(|delay| {
            let now = Instant::now();
            // Saturate instead of overflowing (a panic) on absurd configured durations.
            delay
                .checked_add(self.policy.max_stale)
                .and_then(|window| now.checked_add(window))
                .unwrap_or(now + MAX_AGE_CEILING * 365)
        });
        self.current.store(Some(Arc::new(Loaded {
            keys: Arc::new(keys),
            at: SystemTime::now(),
            usable_until,
        })));
        self.stale.store(false, Ordering::Release);
        self.counters
            .refresh_success
            .fetch_add(1, Ordering::Relaxed);
        self.loaded.notify_waiters();
    }
}

/// The unknown-kid refresh budget: a token bucket of [`UNKNOWN_KID_BURST`] refreshes that
/// refills by one per `min_refresh`.
#[derive(Debug)]
pub(super) struct RefreshBudget {
    tokens: u32,
    /// When the next token is added (while below the burst).
    next_refill: Instant,
    every: Duration,
}

impl RefreshBudget {
    pub(super) fn full(every: Duration) -> RefreshBudget {
        RefreshBudget {
            tokens: UNKNOWN_KID_BURST,
            next_refill: Instant::now(),
            every: every.max(DELAY_FLOOR),
        }
    }

    /// Takes one refresh at `now`, if the budget has one.
    pub(super) fn take(&mut self, now: Instant) -> bool {
        while self.tokens < UNKNOWN_KID_BURST && now >= self.next_refill {
            self.tokens += 1;
            self.next_refill += self.every;
        }
        if self.tokens == 0 {
            return false;
        }
        if self.tokens == UNKNOWN_KID_BURST {
            // A full bucket starts refilling from the first refresh taken out of it.
            self.next_refill = now + self.every;
        }
        self.tokens -= 1;
        true
    }
}

/// Fetches at start, backs off until the first good fetch, then refreshes on schedule. Holds
/// only a `Weak` between fetches and ends when the store is dropped (a reload that no longer
/// names this source).
pub(super) async fn refresh_task(store: Weak<KeyStore>, mut shutdown: watch::Receiver<()>) {
    // SPEC §2: from 1 s up to min_refresh. A min_refresh under 1 s (tests, sidecars) also
    // lowers the first step, so the cap is never below the start.
    let (first_backoff, max_backoff) = match store.upgrade() {
        Some(strong) => {
            let cap = strong.policy.min_refresh.max(DELAY_FLOOR);
            (INITIAL_BACKOFF.min(cap), cap)
        }
        None => return,
    };
    let mut backoff = first_backoff;
    loop {
        let Some(strong) = store.upgrade() else {
            return;
        };
        let result = strong.load().await;
        let scheduled = strong.record(result);
        // Backoff only until the first good fetch (SPEC §2); after that, the schedule.
        let delay = if strong.current.load().is_some() {
            backoff = first_backoff;
            scheduled
        } else {
            let delay = backoff;
            backoff = backoff.saturating_mul(2).min(max_backoff);
            delay
        };
        drop(strong);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            // Err: the sender (the store) is gone.
            _ = shutdown.changed() => return,
        }
    }
}
