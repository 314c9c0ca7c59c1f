//! Reload (SIGHUP): compile the new config off the hot path, then swap it in with one atomic
//! store. Requests in flight finish on the snapshot they loaded. An invalid config is refused,
//! logged and counted, and the old one keeps serving.
//!
//! A reload never loses keys the running config holds: key stores of unchanged sources are
//! reused (or carry their keys over when only their timing changed, see `config::issuers`),
//! and a store for a new or changed source is fetched before the swap, while the old snapshot
//! keeps serving, for at most that store's `fetch_timeout` (plus a second). Past that the
//! swap happens anyway (the new config was asked for), with a warning naming the issuers
//! that have no keys yet.

use std::sync::Arc;
use std::time::Duration;

use super::{Addrs, ConfigOrigin, ServerState};
use crate::snapshot::Snapshot;

/// Added to a new store's `fetch_timeout` for the wait before the swap.
const KEY_WAIT_SLACK: Duration = Duration::from_secs(1);

pub async fn reload(origin: &ConfigOrigin, state: &Arc<ServerState>, bound: &Addrs) {
    let previous = state.shared.load_full();
    let snapshot = match origin.load(&state.metrics, Some(&previous)) {
        Ok(snapshot) => snapshot,
        Err(error) => {
            state.metrics.config_loaded(false);
            tracing::error!(error = %error, "config reload refused; the previous config stays in use");
            return;
        }
    };
    // Listeners are never rebound on reload: address changes need a restart.
    if snapshot.server.listen != previous.server.listen
        || snapshot.admin_listen != previous.admin_listen
        || snapshot.decision_listen != previous.decision_listen
        || snapshot.tls.as_ref().map(|t| t.listen) != previous.tls.as_ref().map(|t| t.listen)
    {
        tracing::warn!(
            http = bound.http.map(tracing::field::display),
            https = bound.https.map(tracing::field::display),
            admin = %bound.admin,
            "listener addresses changed in the config; they apply after a restart"
        );
    }
    for issuer in &snapshot.issuers {
        issuer.store.start();
    }
    wait_for_new_keys(&snapshot).await;
    // New certificate, key and client CA (read by the compile above; a broken file refused
    // the whole reload there) apply to new connections.
    if let (Some(listener), Some(settings)) = (&state.tls, &snapshot.tls) {
        listener.swap(Arc::clone(&settings.server_config));
    }
    super::record_expiries(&state.metrics, &snapshot);
    crate::proxy::health::start(&snapshot.upstreams);
    state.shared.store(Arc::new(snapshot));
    state.metrics.config_loaded(true);
    tracing::info!("config reloaded");
}

/// Waits (bounded) until every issuer of `snapshot` that has no keys yet has loaded some.
async fn wait_for_new_keys(snapshot: &Snapshot) {
    let waits = snapshot
        .issuers
        .iter()
        .filter(|issuer| !issuer.store.has_keys())
        .map(|issuer| async move {
            let limit = issuer.refresh.fetch_timeout + KEY_WAIT_SLACK;
            (issuer.name.as_str(), issuer.store.wait_loaded(limit).await)
        });
    let outcomes = futures_util::future::join_all(waits).await;
    let missing: Vec<&str> = outcomes
        .into_iter()
        .filter_map(|(name, loaded)| (!loaded).then_some(name))
        .collect();
    if !missing.is_empty() {
        snapshot.metrics.reload_without_keys(missing.len());
        tracing::warn!(
            issuers = %missing.join(", "),
            "config reloaded before these issuers' new key sources loaded any key; their routes answer 503 until they do"
        );
    }
}
