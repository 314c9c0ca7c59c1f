#!/usr/bin/env bash
# Instructions per request through the whole gateway, counted by callgrind (deterministic,
# unlike wall time on a shared machine). See benches/callgrind/pipeline.rs for the setup.
#
#   benches/callgrind/run.sh                 # every case, 100 measured requests each
#   REQUESTS=20 CASES="hit-log" benches/callgrind/run.sh
#   KEEP=/tmp/cg benches/callgrind/run.sh    # keep the callgrind.out files for callgrind_annotate
#   PIPELINE_BIN=path benches/callgrind/run.sh   # measure a bench binary built earlier
#
# Each case runs twice, with 1 and with 1+REQUESTS measured requests (after the same warm-up);
# the difference divided by REQUESTS is the cost of one request: gateway, raw client and raw
# upstream together, every thread of the process (the access-log writer included), user space
# only (the kernel's share is not counted). Exits non-zero only when a run fails; the numbers
# are reported, never judged.
set -euo pipefail
cd "$(dirname "$0")/../.."

REQUESTS=${REQUESTS:-100}
CASES=${CASES:-"hit-log hit-nolog miss-log miss-nolog"}
command -v valgrind >/dev/null || { echo "callgrind: valgrind is not installed" >&2; exit 1; }

bin=${PIPELINE_BIN:-}
[ -n "$bin" ] || bin=$(cargo bench --bench pipeline --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "pipeline":
        print(m["executable"])')
[ -x "$bin" ] || { echo "callgrind: cannot build the pipeline bench" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=${KEEP:-$work}
mkdir -p "$out"
"$bin" prepare "$work"

# instructions CASE LOG N: total instructions of one run.
instructions() {
    local case=$1 log=$2 n=$3 file="$out/callgrind.out.$1-$2.$3"
    if ! RUST_LOG=$log valgrind --tool=callgrind --callgrind-out-file="$file" \
        "$bin" run "$work" "$case" "$n" >"$work/run.log" 2>&1; then
        echo "callgrind: run $case ($log) with $n requests failed:" >&2
        tail -n 20 "$work/run.log" >&2
        exit 1
    fi
    awk '/^summary:/ { print $2 }' "$file"
}

echo "instructions per request (callgrind, $REQUESTS requests, $(uname -m))"
printf '%-12s %14s\n' case "instr/request"
for name in $CASES; do
    case $name in
        hit-log) args=(hit info) ;;
        hit-nolog) args=(hit warn) ;;
        miss-log) args=(miss info) ;;
        miss-nolog) args=(miss warn) ;;
        *) echo "callgrind: unknown case $name" >&2; exit 1 ;;
    esac
    one=$(instructions "${args[@]}" 1)
    many=$(instructions "${args[@]}" $((1 + REQUESTS)))
    printf '%-12s %14d\n' "$name" $(((many - one) / REQUESTS))
done
