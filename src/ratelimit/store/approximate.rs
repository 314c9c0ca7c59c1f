//! Approximate mode of the shared store (see the rules in [`store`](super)): local GCRA
//! buckets per key judge each request; a sync task adds every key's passes to the shared state
//! in Redis every `sync_interval` and moves the buckets up to what the other replicas spent.
//! Both the buckets and the unsynced-key map are bounded by `MAX_KEYS`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::{from_micros, micros, Store, StoreError};
use crate::ratelimit::{PolicySpec, Verdict, MAX_KEYS};

/// Approximate mode's local bucket of one key: a GCRA timestamp that the syncs move forward
/// by what the other replicas spent, and the requests passed here since the last sync.
#[derive(Debug)]
pub(super) struct Bucket {
    pub(super) tat: Instant,
    pub(super) unsynced: u64,
}

/// Approximate mode: keys with unsynced requests, by Redis key, with their interval.
pub(super) type Dirty = HashMap<String, (Arc<Mutex<Bucket>>, Duration)>;

impl Store {
    /// Approximate mode: GCRA on this replica's bucket of the key; a pass is remembered for
    /// the next sync.
    pub(super) fn approximate(&self, spec: &PolicySpec, key: &str) -> Verdict {
        let redis_key = Store::redis_key(spec, key);
        let now = Instant::now();
        let bucket = self.buckets.get_with_by_ref(&redis_key, || {
            Arc::new(Mutex::new(Bucket {
                tat: now,
                unsynced: 0,
            }))
        });
        let interval = spec.interval();
        let verdict = match bucket.lock() {
            Ok(mut state) => {
                let ahead = state.tat.max(now).duration_since(now) + interval;
                let tolerance = interval * spec.burst.get();
                if ahead > tolerance {
                    Verdict::Limited {
                        retry_after: ahead - tolerance,
                    }
                } else {
                    state.tat = now + ahead;
                    state.unsynced += 1;
                    let left = (tolerance - ahead).as_nanos() / interval.as_nanos().max(1);
                    Verdict::Allowed {
                        remaining: u32::try_from(left).unwrap_or(u32::MAX),
                        reset: ahead,
                    }
                }
            }
            // A poisoned bucket is judged as spent, never as open.
            Err(_) => Verdict::Limited {
                retry_after: interval,
            },
        };
        if matches!(verdict, Verdict::Allowed { .. }) {
            if let Ok(mut dirty) = self.dirty.lock() {
                // Bounded like the buckets: beyond it a key's passes stay local until the
                // next round (a flood of distinct keys while Redis is down cannot grow it).
                if dirty.len() < MAX_KEYS as usize || dirty.contains_key(&redis_key) {
                    dirty.entry(redis_key).or_insert((bucket, interval));
                }
            }
        }
        verdict
    }

    /// Starts approximate mode's sync task once, on first use (loading a config never
    /// spawns). It ends when the store is dropped (a reload with other settings).
    pub(super) fn start_sync(self: &Arc<Self>) {
        self.sync_task.call_once(|| {
            let store: Weak<Store> = Arc::downgrade(self);
            let every = self.settings.sync_interval;
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    let Some(store) = store.upgrade() else {
                        return;
                    };
                    store.sync_once().await;
                }
            });
        });
    }

    /// Approximate mode: one sync round. Every key's unsynced passes are added to the shared
    /// state, and each bucket moves to the shared state (what every replica spent).
    pub async fn sync_once(&self) {
        let batch: Dirty = match self.dirty.lock() {
            Ok(mut dirty) => std::mem::take(&mut *dirty),
            Err(_) => return,
        };
        if batch.is_empty() && !self.failing.load(Ordering::Relaxed) {
            return;
        }
        let mut connection = match self.connection().await {
            Ok(connection) => connection,
            Err(error) => return self.sync_failed(error, batch),
        };
        let mut batch = batch.into_iter();
        while let Some((redis_key, (bucket, interval))) = batch.next() {
            let spent = bucket
                .lock()
                .map_or(0, |mut state| std::mem::take(&mut state.unsynced));
            let mut invocation = self.sync.prepare_invoke();
            invocation.key(&redis_key).arg(micros(interval)).arg(spent);
            let sent = Instant::now();
            let reply = tokio::time::timeout(
                self.settings.timeout,
                invocation.invoke_async::<i64>(&mut connection),
            )
            .await;
            self.duration.observe(sent.elapsed().as_secs_f64());
            let error = match reply {
                Ok(Ok(ahead)) => {
                    if let Ok(mut state) = bucket.lock() {
                        state.tat = state.tat.max(sent + from_micros(ahead));
                    }
                    continue;
                }
                Ok(Err(error)) => StoreError::Redis(error),
                Err(_) => StoreError::Timeout,
            };
            // Unsent passes go back, to be sent by a later round.
            if let Ok(mut state) = bucket.lock() {
                state.unsynced += spent;
            }
            self.broken();
            let mut rest: Dirty = batch.collect();
            rest.insert(redis_key, (bucket, interval));
            return self.sync_failed(error, rest);
        }
        self.failing.store(false, Ordering::Relaxed);
    }

    fn sync_failed(&self, error: StoreError, unsent: Dirty) {
        self.errors.inc();
        self.log(&error);
        self.failing.store(true, Ordering::Relaxed);
        if let Ok(mut dirty) = self.dirty.lock() {
            for (key, value) in unsent {
                if dirty.len() >= MAX_KEYS as usize {
                    break;
                }
                dirty.entry(key).or_insert(value);
            }
        }
    }
}
