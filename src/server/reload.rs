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
    // New certificate, key and client CA apply to new connections; a broken file refuses the
    // whole reload, so the old material (and config) keeps serving.
    let tls_config = match (&state.tls, &snapshot.tls) {
        (Some(_), Some(settings)) => match super::tls::listener_config(settings) {
            Ok(config) => Some(config),
            Err(error) => {
                state.metrics.config_loaded(false);
                tracing::error!(
                    error = %crate::logging::error_chain(&error),
                    "config reload refused: tls material; the previous config stays in use"
                );
                return;
            }
        },
        _ => None,
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
    if let (Some(listener), Some(config)) = (&state.tls, tls_config) {
        listener.swap(Arc::new(config));
    }
    state.shared.store(Arc::new(snapshot));
    state.metrics.config_loaded(true);
    tracing::info!("config reloaded");
}
