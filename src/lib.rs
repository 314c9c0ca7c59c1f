//! authgate: a reverse-proxy authentication gateway.

pub mod auth;
pub mod network;
pub mod routing;
