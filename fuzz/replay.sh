#!/usr/bin/env bash
# CI step for the fuzz targets: builds every target and replays every committed input once.
# No fuzzing happens here; campaigns are run by hand (fuzz/README.md).
#
#   fuzz/replay.sh            from anywhere in the repository
#
# What it runs, in order:
#  1. `cargo build --bins` of the fuzz crate on the stable toolchain: the six libFuzzer targets
#     (fuzz_targets/*.rs, linked against libFuzzer but without coverage instrumentation or
#     sanitizer, so this proves they compile and link) and the `replay` runner;
#  2. `replay`: every file of corpus/<target>/ and artifacts-found/<target>/ through the same
#     `fuzz_one` function the fuzzer calls, with debug assertions and overflow checks on. A broken
#     invariant panics and names the input file. A missing or empty corpus/<target>/ and a
#     directory under corpus/ or artifacts-found/ that names no target are errors;
#  3. in a git checkout: each directory replayed at least as many inputs as git tracks in it
#     (a committed seed that was not replayed, e.g. a hidden file, fails the step).
# cargo-fuzz and a nightly toolchain are not needed.
#
# Environment:
#   CARGO_TARGET_DIR  where to build (default fuzz/target). Pointing it at the main crate's
#                     target/ after `cargo test` reuses the dependencies built there.
set -euo pipefail
cd "$(dirname "$0")"

started=$SECONDS
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

echo "== fuzz: cargo build --bins (target dir $CARGO_TARGET_DIR)"
# Not --locked: fuzz/Cargo.lock also pins the main crate's dependencies, and a dependency added
# to the main crate must not break this step. A stale lock file is reported below instead.
cargo build --bins

if command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1 \
    && git ls-files --error-unmatch Cargo.lock >/dev/null 2>&1 \
    && ! git diff --quiet -- Cargo.lock; then
  echo "warning: fuzz/Cargo.lock changed during the build; commit the updated file" >&2
fi

echo "== fuzz: replay every corpus and reproducer file"
report=$(mktemp)
trap 'rm -f "$report"' EXIT
"$CARGO_TARGET_DIR/debug/replay" | tee "$report"

if git rev-parse --git-dir >/dev/null 2>&1; then
  echo "== fuzz: every committed input was replayed"
  short=0
  for dir in corpus/* artifacts-found/*; do
    [ -d "$dir" ] || continue
    committed=$(git ls-files -- "$dir" | wc -l)
    replayed=$(sed -n "s|^replay: [a-z_]*: \([0-9]*\) inputs from $dir in .*|\1|p" "$report")
    if [ -z "$replayed" ] || [ "$replayed" -lt "$committed" ]; then
      echo "error: $dir: ${replayed:-no} inputs replayed, $committed committed" >&2
      short=1
    fi
  done
  [ "$short" = 0 ] || exit 1
else
  echo "warning: not a git checkout; committed-seed counts not compared" >&2
fi

echo "== fuzz: replay passed in $((SECONDS - started)) s"
