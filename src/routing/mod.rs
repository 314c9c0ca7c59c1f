//! Routing: request path canonicalization (SPEC §3 step 1) and the route table (step 2).

pub mod path;
pub mod table;

pub use path::{canonicalize, PathError};
pub use table::{HostPattern, Lookup, RouteSpec, RouteTable};
