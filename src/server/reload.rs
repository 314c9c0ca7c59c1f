//! Reload (SIGHUP): compile the new config off the hot path, then swap it in with one atomic
//! store. Requests in flight finish on the snapshot they loaded. An invalid config is refused,
//! logged and counted, and the old one keeps serving.

use std::sync::Arc;

use super::{Addrs, ConfigOrigin, ServerState};

pub fn reload(origin: &ConfigOrigin, state: &Arc<ServerState>, bound: &Addrs) {
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
        || snapshot.tls.as_ref().map(|t| t.listen) != previous.tls.as_ref().map(|t| t.listen)
    {
        tracing::warn!(
            http = ?bound.http,
            https = ?bound.https,
            admin = %bound.admin,
            "listener addresses changed in the config; they apply after a restart"
        );
    }
    for issuer in &snapshot.issuers {
        issuer.store.start();
    }
    // New certificate, key and client CA (read by the compile above; a broken file refused
    // the whole reload there) apply to new connections.
    if let (Some(listener), Some(settings)) = (&state.tls, &snapshot.tls) {
        listener.swap(Arc::clone(&settings.server_config));
    }
    state.shared.store(Arc::new(snapshot));
    state.metrics.config_loaded(true);
    tracing::info!("config reloaded");
}
