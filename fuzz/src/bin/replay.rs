//! Runs every committed input once through its target: `corpus/<target>/*` and
//! `artifacts-found/<target>/*` (reproducers of bugs found by fuzzing, which must stay fixed).
//! This is the CI check (`replay.sh`): stable toolchain, no sanitizer, no fuzzing.
//!
//! Usage: `replay [DIR]... ` — with no arguments, every target's directories under the crate
//! root; a DIR argument is replayed with the target named by its last path component.
//!
//! Without arguments, nothing passes by being absent: a missing or empty `corpus/<target>/`
//! is an error (a target with no seeds replays nothing), and so is a directory under `corpus/`
//! or `artifacts-found/` that names no target (its inputs would never run). A missing
//! `artifacts-found/<target>/` is fine: no bug found yet. Each directory's count is printed as
//! `replay: <target>: <n> inputs from <dir>`, which `replay.sh` compares with `git ls-files`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use authgate_fuzz::TARGETS;

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let whole_tree = args.is_empty();
    if whole_tree {
        let unknown = unknown_dirs(root);
        if !unknown.is_empty() {
            for dir in &unknown {
                eprintln!("replay: {}: no target of that name", dir.display());
            }
            return ExitCode::from(2);
        }
    }
    let dirs: Vec<PathBuf> = if whole_tree {
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
        let is_corpus = dir.parent().and_then(Path::file_name) == Some("corpus".as_ref());
        let files = match inputs(dir, whole_tree && is_corpus) {
            Ok(files) if files.is_empty() && (is_corpus || !whole_tree) => {
                eprintln!("replay: {}: no inputs to replay", dir.display());
                return ExitCode::from(2);
            }
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

/// The regular files of `dir`, sorted. A missing directory is an error when `required`, else
/// empty (an `artifacts-found/<target>/` before any reproducer).
fn inputs(dir: &Path, required: bool) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(Vec::new())
        }
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

/// Directories under `corpus/` and `artifacts-found/` that name no target (a missing `corpus/`
/// is caught by the per-target check, which names each missing directory).
fn unknown_dirs(root: &Path) -> Vec<PathBuf> {
    let mut unknown = Vec::new();
    for parent in ["corpus", "artifacts-found"] {
        let Ok(entries) = std::fs::read_dir(root.join(parent)) else {
            continue;
        };
        for entry in entries.flatten() {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let name = entry.file_name();
            let known = TARGETS.iter().any(|(target, _)| name == *target);
            if is_dir && !known {
                unknown.push(entry.path());
            }
        }
    }
    unknown.sort();
    unknown
}
