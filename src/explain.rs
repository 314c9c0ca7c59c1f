//! `authgate explain`.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(short, long)]
    pub config: PathBuf,
}

pub async fn run(args: &Args) -> anyhow::Result<bool> {
    anyhow::bail!("explain is not built yet for {}", args.config.display())
}
