//! Routing: request path canonicalization (SPEC §3 step 1), the request host and the route
//! table (step 2).

pub mod host;
pub mod path;
pub mod table;

pub use host::{request_host, HostError, RequestHost};
pub use path::{canonicalize, PathError};
pub use table::{HostPattern, Lookup, RouteSpec, RouteTable};
