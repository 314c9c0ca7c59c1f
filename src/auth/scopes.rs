//! Scope checks (SPEC §3 step 7). STUB: owned by the network helper.

/// Every `all` entry and, when `any` is non-empty, one `any` entry must be in `granted`.
pub fn satisfied(granted: &[String], all: &[String], any: &[String]) -> bool {
    let _ = (granted, all, any);
    false
}
