//! Runs every committed input once through its target: `corpus/<target>/*` and
//! `artifacts-found/<target>/*` (reproducers of bugs found by fuzzing, which must stay fixed).
//! This is the CI check (`replay.sh`): stable toolchain, no sanitizer, no fuzzing.
//!
//! Usage: `replay [DIR]... ` — with no arguments, every target's directories under the crate
//! root; a DIR argument is replayed with the target named by its last path component.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use authgate_fuzz::TARGETS;

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let dirs: Vec<PathBuf> = if args.is_empty() {
        TARGETS
            .iter()
            .flat_map(|(name, _)| {
                [
                    root.join("corpus").join(name),
                    root.join("artifacts-found").join(name),
                ]
            })
            .collect()
    } else {
        args
    };
    let mut total = 0;
    let mut failed = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let Some((_, fuzz_one)) = TARGETS.iter().find(|(target, _)| *target == name) else {
            eprintln!("replay: {}: no target named {name:?}", dir.display());
            return ExitCode::from(2);
        };
        let files = match inputs(dir) {
            Ok(files) => files,
            Err(error) => {
                eprintln!("replay: cannot read {}: {error}", dir.display());
                return ExitCode::from(2);
            }
        };
        let started = Instant::now();
        for file in &files {
            let data = match std::fs::read(file) {
                Ok(data) => data,
                Err(error) => {
                    eprintln!("replay: cannot read {}: {error}", file.display());
                    return ExitCode::from(2);
                }
            };
            // A broken invariant panics; the panic hook prints which, and the file is listed at
            // the end. The other inputs still run, so one report shows every failure.
            if catch_unwind(AssertUnwindSafe(|| fuzz_one(&data))).is_err() {
                eprintln!("replay: {name}: FAILED on {}", file.display());
                failed.push(file.clone());
            }
        }
        println!(
            "replay: {name}: {} inputs from {} in {:.2?}",
            files.len(),
            dir.strip_prefix(root).unwrap_or(dir).display(),
            started.elapsed()
        );
        total += files.len();
    }
    if !failed.is_empty() {
        eprintln!("replay: {} of {total} inputs failed:", failed.len());
        for file in &failed {
            eprintln!("  {}", file.display());
        }
        return ExitCode::FAILURE;
    }
    println!("replay: ok, {total} inputs");
    ExitCode::SUCCESS
}

/// The regular files of `dir`, sorted; a missing directory is empty (no reproducers yet).
fn inputs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if entry.file_type()?.is_file() && !hidden {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}
