//! `authgate demo`.

/// Runs the demo until Ctrl-C.
pub async fn run() -> Result<(), std::io::Error> {
    Err(std::io::Error::other("demo is not built yet"))
}
