#!/usr/bin/env bash
# Loopback load comparison: authgate against nginx (plain proxy) and HAProxy (native RS256 JWT
# validation), all in front of one shared nginx upstream. See benches/load/README.md.
#
#   sudo benches/load/run.sh                     # 3 rounds of 10 s per peer and mode
#   sudo ROUNDS=1 DURATION=3 benches/load/run.sh # a quick smoke run
#
# Peers: direct, nginx (plain proxy), haproxy (JWT), authgate, authgate-rl (authgate plus one
# local [[rate_limits]] policy that never refuses), nginx-authz (nginx auth_request asking a
# second authgate's [decision] listener; CPU reported for the pair and for each process), and,
# when redis-server is installed, authgate-rl-exact and authgate-rl-approx (the same policy with
# [rate_limit_store] on a local redis-server in each mode; Redis's CPU counted with the peer),
# authgate-log (authgate with its JSON access log on, to a file), and the throughput curve:
# nginx-2w and authgate-2w (two workers on two cores, beside nginx and authgate on one).
#
# A row with any non-2xx response or socket error is marked INVALID in the report (its numbers
# describe failures, not the proxy), and the run exits 3 after writing the report.
#
# Needs root only to install missing Debian packages (haproxy, nginx, wrk, ...) with apt-get and
# to raise the open-files limit for the 10,000-connection test. Everything listens on 127.0.0.1;
# every process started here is stopped and every temporary file removed on exit.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)

ROUNDS=${ROUNDS:-3}                   # interleaved rounds per mode
DURATION=${DURATION:-10}              # seconds per wrk run
WARMUP=${WARMUP:-2}                   # seconds per peer before each mode's rounds (not recorded)
CONNECTIONS=${CONNECTIONS:-64}        # wrk connections (one wrk thread)
TOKENS=${TOKENS:-10000}               # distinct tokens for the "many" mode
# authgate's token cache in the "many" mode holds fewer entries than there are tokens, so
# (nearly) every request verifies a signature, as the comparison with HAProxy intends.
TOKEN_CACHE_ENTRIES=${TOKEN_CACHE_ENTRIES:-1000}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}   # idle keep-alive connections for the RSS test
IDLE_PEERS=${IDLE_PEERS-"nginx haproxy authgate"}   # peers whose RSS is measured; "" skips the test
SPIKE_SETTLE=${SPIKE_SETTLE:-5}       # seconds after a spike of connections closes before RSS is read
DEFAULT_PEERS="direct nginx haproxy authgate authgate-h2c authgate-log authgate-rl nginx-authz nginx-2w authgate-2w"
command -v redis-server >/dev/null 2>&1 && DEFAULT_PEERS+=" authgate-rl-exact authgate-rl-approx"
PEERS=${PEERS:-$DEFAULT_PEERS}
MODES=${MODES:-"one many"}
CLIENT_CPU=${CLIENT_CPU:-0}           # wrk and the connection holder
SERVER_CPU=${SERVER_CPU:-1}           # the upstream and every proxy
# The two-core rows (nginx-2w, authgate-2w): the proxy may run on both CPUs (so it shares
# CLIENT_CPU with wrk on a two-CPU machine: read those rows as a curve, not a clean scale-out).
SERVER_CPUS_2=${SERVER_CPUS_2:-"$CLIENT_CPU,$SERVER_CPU"}
PORT_BASE=${PORT_BASE:-24180}         # 24 ports from here; below the ephemeral range
AUTHGATE_THREADS=${AUTHGATE_THREADS:-1}   # AUTHGATE_WORKER_THREADS for the gateway
AUTHGATE_ACCESS_LOG=${AUTHGATE_ACCESS_LOG:-0}   # 1: keep authgate's access log (to a file)
AUTHGATE_BIN=${AUTHGATE_BIN:-}        # a prebuilt binary; default: cargo build --release
RESULTS_DIR=${RESULTS_DIR:-$SCRIPT_DIR}
KEEP_WORK=${KEEP_WORK:-0}             # 1: keep the temporary directory (configs, logs, tokens)

ISSUER="https://idp.example.com/"
AUDIENCE="api://orders"
REQUEST_PATH="/orders/42"
UPSTREAM_PORT=$PORT_BASE
NGINX_PORT=$((PORT_BASE + 1))
HAPROXY_PORT=$((PORT_BASE + 2))
AUTHGATE_PORT=$((PORT_BASE + 3))
AUTHGATE_ADMIN_PORT=$((PORT_BASE + 4))
NGINX_AUTHZ_PORT=$((PORT_BASE + 5))       # (e) nginx with auth_request
DECISION_PORT=$((PORT_BASE + 6))          # (e) its authgate's [decision] listen
AUTHZ_GATE_PORT=$((PORT_BASE + 7))        # (e) that authgate's proxy listener (unused)
AUTHZ_GATE_ADMIN_PORT=$((PORT_BASE + 8))
AUTHGATE_RL_PORT=$((PORT_BASE + 9))       # (f) authgate with a local rate-limit policy
AUTHGATE_RL_ADMIN_PORT=$((PORT_BASE + 10))
REDIS_PORT=$((PORT_BASE + 11))            # (g) the redis-server both Redis peers share
AUTHGATE_RLX_PORT=$((PORT_BASE + 12))     # (g) authgate-rl-exact
AUTHGATE_RLX_ADMIN_PORT=$((PORT_BASE + 13))
AUTHGATE_RLA_PORT=$((PORT_BASE + 14))     # (h) authgate-rl-approx
AUTHGATE_RLA_ADMIN_PORT=$((PORT_BASE + 15))
AUTHGATE_LOG_PORT=$((PORT_BASE + 16))     # authgate-log: (d) with the access log on
AUTHGATE_LOG_ADMIN_PORT=$((PORT_BASE + 17))
NGINX_2W_PORT=$((PORT_BASE + 18))         # nginx-2w: (b) with two workers on two CPUs
AUTHGATE_2W_PORT=$((PORT_BASE + 19))      # authgate-2w: (d) with two workers on two CPUs
AUTHGATE_2W_ADMIN_PORT=$((PORT_BASE + 20))
AUTHGATE_H2C_PORT=$((PORT_BASE + 21))     # (i) authgate-h2c: (d) with an h2c upstream
AUTHGATE_H2C_ADMIN_PORT=$((PORT_BASE + 22))
UPSTREAM_H2C_PORT=$((PORT_BASE + 23))     # (i) the shared upstream's h2c (prior knowledge) listener

log() { printf '[load] %s\n' "$*" >&2; }
die() { printf '[load] error: %s\n' "$*" >&2; exit 1; }

WORK=""
STARTED=()        # every background process started here, by pid
declare -A PID    # peer name -> main pid
POLICY_RC=""      # set when we created /usr/sbin/policy-rc.d

descendants() {   # pid and all its descendants
    local pid=$1 child
    echo "$pid"
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        descendants "$child"
    done
}

stop_pid() {      # TERM a process we started (and its children), KILL after 5 s
    local pid=$1 all i
    all=$(descendants "$pid")
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    for p in $all; do kill -KILL "$p" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    for pid in "${STARTED[@]}"; do
        kill -0 "$pid" 2>/dev/null && stop_pid "$pid"
    done
    [[ -n $POLICY_RC ]] && rm -f "$POLICY_RC"
    if [[ -n $WORK && -d $WORK ]]; then
        if [[ $KEEP_WORK == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. Tools -------------------------------------------------------------------------------

install_missing() {
    local missing=() tool package
    for tool in nginx:nginx haproxy:haproxy wrk:wrk curl:curl openssl:openssl \
        python3:python3 taskset:util-linux ps:procps getconf:libc-bin; do
        command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
    done
    [[ ${#missing[@]} -eq 0 ]] && return
    [[ $EUID -eq 0 ]] || die "missing ${missing[*]}: run as root to apt-get install them, or install them yourself"
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get (Debian/Ubuntu expected)"
    # Keep the packages' own services (nginx on :80) from starting: the standard Debian switch.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        POLICY_RC=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC"
        chmod 755 "$POLICY_RC"
    fi
    log "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -qq >&2
    timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    if [[ -n $POLICY_RC ]]; then rm -f "$POLICY_RC"; POLICY_RC=""; fi
}
install_missing
PATH=$PATH:/usr/sbin:/sbin

haproxy_version=$(haproxy -v 2>&1 | awk '/version/ {print $3; exit}')
IFS=. read -r hp_major hp_minor _ <<<"$haproxy_version"
if (( hp_major < 2 || (hp_major == 2 && hp_minor < 6) )); then
    die "HAProxy $haproxy_version found, 2.6 or later needed for jwt_verify"
fi
(( $(nproc) >= 2 )) || log "warning: one CPU only; wrk and the servers share it"

# wrk, the servers and the 10k-connection test need many descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if (( NOFILE < IDLE_CONNECTIONS + 1000 )); then
    IDLE_CONNECTIONS=$((NOFILE - 1000))
    log "warning: open-files limit $NOFILE; holding only $IDLE_CONNECTIONS idle connections"
fi
# HAProxy refuses to start unless ulimit-n covers 2 x maxconn; nginx's worker_connections count
# the upstream side too.
HAPROXY_MAXCONN=$(( NOFILE / 2 - 100 < 30000 ? NOFILE / 2 - 100 : 30000 ))
NGINX_CONNECTIONS=$(( NOFILE - 100 < 30000 ? NOFILE - 100 : 30000 ))
# authgate refuses to start unless the limit covers max_connections + max_upstream_requests
# (1024) + idle upstream connections (64) + 64 reserved.
AUTHGATE_MAXCONN=$(( NOFILE - 1300 < 30000 ? NOFILE - 1300 : 30000 ))

# --- 2. authgate ----------------------------------------------------------------------------

if [[ -z $AUTHGATE_BIN ]]; then
    log "building authgate (cargo build --release)"
    (cd "$REPO" && timeout 3600 cargo build --release --quiet --bin authgate) >&2
    AUTHGATE_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/authgate
fi
[[ -x $AUTHGATE_BIN ]] || die "no authgate binary at $AUTHGATE_BIN"

# --- 3. Keys, tokens, configs ---------------------------------------------------------------

for port in $UPSTREAM_PORT $NGINX_PORT $HAPROXY_PORT $AUTHGATE_PORT $AUTHGATE_ADMIN_PORT \
    $NGINX_AUTHZ_PORT $DECISION_PORT $AUTHZ_GATE_PORT $AUTHZ_GATE_ADMIN_PORT $AUTHGATE_RL_PORT \
    $AUTHGATE_RL_ADMIN_PORT $REDIS_PORT $AUTHGATE_RLX_PORT $AUTHGATE_RLX_ADMIN_PORT \
    $AUTHGATE_RLA_PORT $AUTHGATE_RLA_ADMIN_PORT $AUTHGATE_LOG_PORT $AUTHGATE_LOG_ADMIN_PORT \
    $NGINX_2W_PORT $AUTHGATE_2W_PORT $AUTHGATE_2W_ADMIN_PORT; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "127.0.0.1:$port is in use; set PORT_BASE"
    fi
done

WORK=$(mktemp -d /tmp/authgate-load.XXXXXX)
chmod 755 "$WORK"   # nginx workers may run as another user; the private key stays 0600
log "work directory $WORK"

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/privkey.pem" 2>/dev/null
chmod 600 "$WORK/privkey.pem"
openssl pkey -in "$WORK/privkey.pem" -pubout -out "$WORK/pubkey.pem"
log "signing $TOKENS tokens"
timeout 600 python3 "$SCRIPT_DIR/tokens.py" "$WORK" "$ISSUER" "$AUDIENCE" "$TOKENS"
# The main token is signed by openssl itself; the Python signer must agree byte for byte.
openssl dgst -sha256 -sign "$WORK/privkey.pem" -out "$WORK/main.sig" "$WORK/signing-input.txt"
cmp -s "$WORK/main.sig" "$WORK/python-signature.bin" \
    || die "tokens.py's RS256 signature differs from openssl's"
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
TOKEN="$(cat "$WORK/signing-input.txt").$(b64url <"$WORK/main.sig")"
printf '%s\n' "$TOKEN" >"$WORK/token.txt"
# Spot-check tokens.txt with openssl: first and last.
for line in 1 "$TOKENS"; do
    t=$(sed -n "${line}p" "$WORK/tokens.txt")
    printf '%s' "${t%.*}" >"$WORK/check-input"
    sig=${t##*.}
    case $((${#sig} % 4)) in 2) sig+="==" ;; 3) sig+="=" ;; esac
    printf '%s' "$sig" | tr -- '-_' '+/' | base64 -d >"$WORK/check.sig"
    openssl dgst -sha256 -verify "$WORK/pubkey.pem" -signature "$WORK/check.sig" \
        "$WORK/check-input" >/dev/null || die "token $line of tokens.txt does not verify"
done

render() {   # template -> file, substituting @NAME@ placeholders; extra sed args first
    local in=$1 out=$2
    shift 2
    sed "$@" -e "s|@WORK@|$WORK|g" \
        -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" -e "s|@NGINX_PORT@|$NGINX_PORT|g" \
        -e "s|@HAPROXY_PORT@|$HAPROXY_PORT|g" -e "s|@AUTHGATE_PORT@|$AUTHGATE_PORT|g" \
        -e "s|@AUTHGATE_ADMIN_PORT@|$AUTHGATE_ADMIN_PORT|g" \
        -e "s|@NGINX_AUTHZ_PORT@|$NGINX_AUTHZ_PORT|g" -e "s|@DECISION_PORT@|$DECISION_PORT|g" \
        -e "s|@ISSUER@|$ISSUER|g" -e "s|@AUDIENCE@|$AUDIENCE|g" \
        -e "s|@TOKEN_CACHE_ENTRIES@|$TOKEN_CACHE_ENTRIES|g" \
        -e "s|@AUTHGATE_MAXCONN@|$AUTHGATE_MAXCONN|g" \
        -e "s|@HAPROXY_MAXCONN@|$HAPROXY_MAXCONN|g" -e "s|@NGINX_CONNECTIONS@|$NGINX_CONNECTIONS|g" \
        -e "s|@TOKENS_FILE@|$WORK/tokens.txt|g" -e "s|@PATH@|$REQUEST_PATH|g" \
        "$SCRIPT_DIR/$in" >"$WORK/$out"
}
render nginx-upstream.conf.in nginx-upstream.conf -e "s|@UPSTREAM_H2C_PORT@|$UPSTREAM_H2C_PORT|g"
# (i) authgate-h2c: (d) on its own ports, to the upstream's h2c listener (CPU per request
# with HTTP/2 to the upstream against (d)'s HTTP/1.1).
render authgate.toml.in authgate-h2c.toml -e "s|@AUTHGATE_PORT@|$AUTHGATE_H2C_PORT|g" \
    -e "s|@AUTHGATE_ADMIN_PORT@|$AUTHGATE_H2C_ADMIN_PORT|g" \
    -e "s|^url = \"http://127.0.0.1:@UPSTREAM_PORT@\"|url = \"http://127.0.0.1:$UPSTREAM_H2C_PORT\"\nprotocol = \"h2c\"|"
render nginx-plain.conf.in nginx-plain.conf
render haproxy-jwt.cfg.in haproxy.cfg
render authgate.toml.in authgate.toml
render tokens.lua.in tokens.lua
# (f) authgate-rl: the same config on its own ports, plus one local rate-limit policy on the
# route (authgate.toml.in ends inside the [[routes]] entry; the addendum continues it).
render authgate.toml.in authgate-rl.toml -e "s|@AUTHGATE_PORT@|$AUTHGATE_RL_PORT|g" \
    -e "s|@AUTHGATE_ADMIN_PORT@|$AUTHGATE_RL_ADMIN_PORT|g"
render authgate-ratelimit.toml.in authgate-ratelimit.toml
render authgate.toml.in authgate-log.toml -e "s|@AUTHGATE_PORT@|$AUTHGATE_LOG_PORT|g" \
    -e "s|@AUTHGATE_ADMIN_PORT@|$AUTHGATE_LOG_ADMIN_PORT|g"
render authgate.toml.in authgate-2w.toml -e "s|@AUTHGATE_PORT@|$AUTHGATE_2W_PORT|g" \
    -e "s|@AUTHGATE_ADMIN_PORT@|$AUTHGATE_2W_ADMIN_PORT|g"
render nginx-plain.conf.in nginx-2w.conf -e "s|@NGINX_PORT@|$NGINX_2W_PORT|g" \
    -e "s|^worker_processes 1;|worker_processes 2;|" -e "s|nginx-plain.pid|nginx-2w.pid|" \
    -e "s|nginx-plain.err|nginx-2w.err|"
cat "$WORK/authgate-ratelimit.toml" >>"$WORK/authgate-rl.toml"
# (g), (h): the same policy kept in Redis, exact and approximate mode.
for rl_mode in exact approx; do
    if [[ $rl_mode == exact ]]; then
        rl_port=$AUTHGATE_RLX_PORT rl_admin=$AUTHGATE_RLX_ADMIN_PORT store_mode=exact
    else
        rl_port=$AUTHGATE_RLA_PORT rl_admin=$AUTHGATE_RLA_ADMIN_PORT store_mode=approximate
    fi
    render authgate.toml.in "authgate-rl-$rl_mode.toml" -e "s|@AUTHGATE_PORT@|$rl_port|g" \
        -e "s|@AUTHGATE_ADMIN_PORT@|$rl_admin|g"
    {
        cat "$WORK/authgate-ratelimit.toml"
        printf '\n[rate_limit_store]\nredis = "redis://127.0.0.1:%s/0"\nmode = "%s"\n' \
            "$REDIS_PORT" "$store_mode"
    } >>"$WORK/authgate-rl-$rl_mode.toml"
done
# (e) nginx-authz: the same config on its own ports, nginx (127.0.0.1) trusted, plus the
# decision listener; nginx uses the snippets shipped in deploy/nginx unchanged.
render authgate.toml.in authgate-authz.toml -e "s|@AUTHGATE_PORT@|$AUTHZ_GATE_PORT|g" \
    -e "s|@AUTHGATE_ADMIN_PORT@|$AUTHZ_GATE_ADMIN_PORT|g"
sed -i 's|^\[network\]$|[network]\ntrusted_proxies = ["127.0.0.1/32"]   # nginx-authz asks from here|' \
    "$WORK/authgate-authz.toml"
grep -q '^trusted_proxies' "$WORK/authgate-authz.toml" || die "no [network] in authgate.toml.in"
render authgate-decision.toml.in authgate-decision.toml
cat "$WORK/authgate-decision.toml" >>"$WORK/authgate-authz.toml"
render nginx-authz.conf.in nginx-authz.conf
cp "$REPO/deploy/nginx/authgate-decision.conf" "$REPO/deploy/nginx/authgate-protect.conf" "$WORK/"
mkdir -p "$WORK"/nginx-upstream-tmp "$WORK"/nginx-plain-tmp "$WORK"/nginx-authz-tmp

nginx -q -t -p "$WORK/" -e "$WORK/nginx-test.err" -c "$WORK/nginx-upstream.conf" >&2
nginx -q -t -p "$WORK/" -e "$WORK/nginx-test.err" -c "$WORK/nginx-plain.conf" >&2
nginx -q -t -p "$WORK/" -e "$WORK/nginx-test.err" -c "$WORK/nginx-authz.conf" >&2
haproxy -q -c -f "$WORK/haproxy.cfg" >&2 || die "haproxy rejects $WORK/haproxy.cfg"
"$AUTHGATE_BIN" check -c "$WORK/authgate.toml" >&2
for peer in authgate-h2c authgate-rl authgate-rl-exact authgate-rl-approx; do
    [[ " $PEERS " == *" $peer "* ]] && "$AUTHGATE_BIN" check -c "$WORK/$peer.toml" >&2
done
[[ " $PEERS " == *" nginx-authz "* ]] && "$AUTHGATE_BIN" check -c "$WORK/authgate-authz.toml" >&2

# --- 4. Processes ---------------------------------------------------------------------------

port_of() {
    case $1 in
        upstream | direct) echo "$UPSTREAM_PORT" ;;
        nginx) echo "$NGINX_PORT" ;;
        haproxy) echo "$HAPROXY_PORT" ;;
        authgate) echo "$AUTHGATE_PORT" ;;
        authgate-rl) echo "$AUTHGATE_RL_PORT" ;;
        authgate-h2c) echo "$AUTHGATE_H2C_PORT" ;;
        nginx-authz) echo "$NGINX_AUTHZ_PORT" ;;
        authz-gate) echo "$DECISION_PORT" ;;
        redis) echo "$REDIS_PORT" ;;
        authgate-rl-exact) echo "$AUTHGATE_RLX_PORT" ;;
        authgate-rl-approx) echo "$AUTHGATE_RLA_PORT" ;;
        authgate-log) echo "$AUTHGATE_LOG_PORT" ;;
        nginx-2w) echo "$NGINX_2W_PORT" ;;
        authgate-2w) echo "$AUTHGATE_2W_PORT" ;;
    esac
}

wait_port() {
    local port=$1 i
    for i in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

start_peer() {
    local name=$1 log_file="$WORK/$1.log"
    local on_cpu=(taskset -c "$SERVER_CPU")
    case $name in
        upstream)
            "${on_cpu[@]}" nginx -p "$WORK/" -e "$WORK/nginx-upstream.err" \
                -c "$WORK/nginx-upstream.conf" >"$log_file" 2>&1 &
            ;;
        nginx)
            "${on_cpu[@]}" nginx -p "$WORK/" -e "$WORK/nginx-plain.err" \
                -c "$WORK/nginx-plain.conf" >"$log_file" 2>&1 &
            ;;
        nginx-2w)
            taskset -c "$SERVER_CPUS_2" nginx -p "$WORK/" -e "$WORK/nginx-2w.err" \
                -c "$WORK/nginx-2w.conf" >"$log_file" 2>&1 &
            ;;
        haproxy)
            "${on_cpu[@]}" haproxy -db -f "$WORK/haproxy.cfg" >"$log_file" 2>&1 &
            ;;
        redis)
            "${on_cpu[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
                --appendonly no --daemonize no --dir "$WORK" >"$log_file" 2>&1 &
            ;;
        authgate | authgate-h2c | authgate-rl* | authz-gate | authgate-log | authgate-2w)
            local filter="info,authgate::access=off" threads=$AUTHGATE_THREADS
            [[ $AUTHGATE_ACCESS_LOG == 1 || $name == authgate-log ]] && filter="info"
            local config=$WORK/authgate.toml
            [[ $name == authgate-rl* || $name == authgate-log || $name == authgate-2w || $name == authgate-h2c ]] \
                && config=$WORK/$name.toml
            [[ $name == authz-gate ]] && config=$WORK/authgate-authz.toml
            if [[ $name == authgate-2w ]]; then
                threads=2
                on_cpu=(taskset -c "$SERVER_CPUS_2")
            fi
            # The access log (authgate-log) goes to the peer's log file, as a file sink would.
            AUTHGATE_WORKER_THREADS=$threads RUST_LOG=$filter "${on_cpu[@]}" \
                "$AUTHGATE_BIN" --log-format json run -c "$config" \
                >"$log_file" 2>&1 &
            ;;
        nginx-authz)
            # The pair: authgate (decision listener) first, then nginx in front of it.
            start_peer authz-gate
            "${on_cpu[@]}" nginx -p "$WORK/" -e "$WORK/nginx-authz.err" \
                -c "$WORK/nginx-authz.conf" >"$log_file" 2>&1 &
            ;;
        *) die "unknown peer $name" ;;
    esac
    PID[$name]=$!
    STARTED+=("$!")
    if ! wait_port "$(port_of "$name")"; then
        tail -n 20 "$log_file" >&2 || true
        die "$name did not listen on $(port_of "$name")"
    fi
    local admin=""
    case $name in
        authgate) admin=$AUTHGATE_ADMIN_PORT ;;
        authgate-rl) admin=$AUTHGATE_RL_ADMIN_PORT ;;
        authgate-h2c) admin=$AUTHGATE_H2C_ADMIN_PORT ;;
        authgate-rl-exact) admin=$AUTHGATE_RLX_ADMIN_PORT ;;
        authgate-rl-approx) admin=$AUTHGATE_RLA_ADMIN_PORT ;;
        authgate-log) admin=$AUTHGATE_LOG_ADMIN_PORT ;;
        authgate-2w) admin=$AUTHGATE_2W_ADMIN_PORT ;;
        authz-gate) admin=$AUTHZ_GATE_ADMIN_PORT ;;
    esac
    if [[ -n $admin ]]; then
        # Ready only once the key set is loaded.
        for _ in $(seq 100); do
            curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$admin/readyz" && break
            sleep 0.1
        done
    fi
}

stop_peer() {
    local name=$1
    [[ -n ${PID[$name]:-} ]] || return 0
    stop_pid "${PID[$name]}"
    unset "PID[$name]"
    [[ $name == nginx-authz ]] && stop_peer authz-gate
    return 0
}

peer_pids() {   # the processes whose CPU and memory count for a peer
    [[ $1 == direct || -z ${PID[$1]:-} ]] && return 0
    descendants "${PID[$1]}"
    # nginx-authz is the pair: nginx and the authgate it asks.
    [[ $1 == nginx-authz && -n ${PID[authz-gate]:-} ]] && descendants "${PID[authz-gate]}"
    # The Redis peers: authgate and the redis-server it talks to.
    [[ $1 == authgate-rl-* && -n ${PID[redis]:-} ]] && descendants "${PID[redis]}"
    return 0
}

cpu_ticks() {   # utime + stime, in clock ticks, summed over pids (threads included)
    local total=0 pid fields
    for pid in "$@"; do
        fields=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        read -r -a f <<<"$fields"
        total=$((total + f[11] + f[12]))   # fields 14 and 15 of proc(5)
    done
    echo "$total"
}

status_kib() {  # sum of a /proc/<pid>/status field (VmHWM, VmRSS), in KiB
    local field=$1 total=0 pid value
    shift
    for pid in "$@"; do
        value=$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$pid/status" 2>/dev/null)
        total=$((total + ${value:-0}))
    done
    echo "$total"
}

# --- 5. Functional checks -------------------------------------------------------------------

http_code() {   # port token-or-empty [path] [extra header]
    local args=(-s -o /dev/null -w '%{http_code}' --max-time 5)
    [[ -n $2 ]] && args+=(-H "Authorization: Bearer $2")
    [[ -n ${4:-} ]] && args+=(-H "$4")
    curl "${args[@]}" "http://127.0.0.1:$1${3:-$REQUEST_PATH}" || true
}

expect() {      # peer description expected actual
    if [[ $3 != "$4" ]]; then
        tail -n 20 "$WORK/$1.log" >&2 2>/dev/null || true
        die "$1: $2: expected $3, got $4"
    fi
    log "  $1: $2 -> $4"
}

check_peer() {
    local peer=$1 port
    port=$(port_of "$peer")
    expect "$peer" "valid token" 200 "$(http_code "$port" "$TOKEN")"
    expect "$peer" "one of the $TOKENS tokens" 200 \
        "$(http_code "$port" "$(sed -n "$(( TOKENS < 777 ? TOKENS : 777 ))p" "$WORK/tokens.txt")")"
    [[ $peer == direct || $peer == nginx* ]] && return 0
    expect "$peer" "no token" 401 "$(http_code "$port" "")"
    expect "$peer" "bad signature" 401 "$(http_code "$port" "$(cat "$WORK/token-badsig.txt")")"
    expect "$peer" "missing scope" 403 "$(http_code "$port" "$(cat "$WORK/token-noscope.txt")")"
    local seen
    seen=$(curl -s --max-time 5 -H "Authorization: Bearer $TOKEN" -H "X-Auth-Subject: admin" \
        "http://127.0.0.1:$port/orders/whoami")
    expect "$peer" "identity headers (spoofed one replaced)" \
        "sub=svc-load scopes=orders:read orders:write" "$seen"
    if [[ $peer == authgate-rl* ]]; then
        # The policy is on: a passing request carries its RateLimit header.
        seen=$(curl -s -o /dev/null -D - --max-time 5 -H "Authorization: Bearer $TOKEN" \
            "http://127.0.0.1:$port$REQUEST_PATH" | tr -d '\r' | awk -F': ' 'tolower($1) == "ratelimit" {print $2}')
        expect "$peer" "RateLimit header names the policy" yes \
            "$([[ $seen == *'"load-client"'* ]] && echo yes || echo "no ($seen)")"
    fi
    if [[ $peer == authgate-rl-exact ]] && command -v redis-cli >/dev/null; then
        # Exact mode asks Redis on every request (the bucket itself expires within
        # microseconds at this rate, so count commands rather than keys).
        local c0 c1
        redis_commands() {
            timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info stats 2>/dev/null \
                | tr -d '\r' | awk -F: '$1 == "total_commands_processed" {print $2}'
        }
        c0=$(redis_commands)
        http_code "$port" "$TOKEN" >/dev/null
        c1=$(redis_commands)
        expect "$peer" "a request runs a Redis command" yes \
            "$( (( ${c1:-0} - ${c0:-0} >= 2 )) && echo yes || echo "no ($c0 -> $c1)")"
    fi
}

# --- 6. Load --------------------------------------------------------------------------------

to_us() {       # wrk duration (850.00us, 1.20ms, 2.00s, 1.00m) -> microseconds
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else if (v ~ /m$/) m = 60000000;
        else m = 1000000
        printf "%.1f", n * m }'
}

RUNS_TSV=""
INVALID_ROWS=()   # runs with non-2xx responses or socket errors (reported, then exit 3)
run_wrk() {     # mode peer round ("-" = warm-up, not recorded)
    local mode=$1 peer=$2 round=$3 seconds=$DURATION
    [[ $round == - ]] && seconds=$WARMUP
    local out="$WORK/wrk-$mode-$peer-$round.txt"
    local url="http://127.0.0.1:$(port_of "$peer")$REQUEST_PATH"
    local load=(-H "Authorization: Bearer $TOKEN")
    [[ $mode == many ]] && load=(-s "$WORK/tokens.lua")
    local proxy_pids upstream_pids gate_pids="" p0 u0 g0 p1 u1 g1
    proxy_pids=$(peer_pids "$peer")
    upstream_pids=$(peer_pids upstream)
    # nginx-authz: authgate's share of the pair, counted separately as well.
    [[ $peer == nginx-authz ]] && gate_pids=$(peer_pids authz-gate)
    # The Redis peers: authgate's share (the rest is redis-server's).
    [[ $peer == authgate-rl-* ]] && gate_pids=$(descendants "${PID[$peer]}")
    # shellcheck disable=SC2086
    p0=$(cpu_ticks $proxy_pids); u0=$(cpu_ticks $upstream_pids); g0=$(cpu_ticks $gate_pids)
    timeout $((seconds + 30)) taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" \
        -d"${seconds}s" --timeout 5s --latency "${load[@]}" "$url" >"$out" 2>&1 \
        || die "wrk failed against $peer: $(tail -n 3 "$out")"
    # shellcheck disable=SC2086
    p1=$(cpu_ticks $proxy_pids); u1=$(cpu_ticks $upstream_pids); g1=$(cpu_ticks $gate_pids)
    [[ $round == - ]] && return 0

    local requests elapsed rps p50 p99 non2xx errors
    requests=$(awk '/requests in/ {print $1}' "$out")
    elapsed=$(awk '/requests in/ {sub(",", "", $4); print $4}' "$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(to_us "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$out")")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$out")
    errors=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$out")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$peer" \
        "$round" "$requests" "$elapsed" "$rps" "$p50" "$p99" "${non2xx:-0}" "${errors:-0}" \
        "$((p1 - p0))" "$((u1 - u0))" "$((g1 - g0))" >>"$RUNS_TSV"
    if (( ${non2xx:-0} + ${errors:-0} > 0 )); then
        INVALID_ROWS+=("$mode $peer round $round")
        log "  INVALID: $mode round $round $peer: ${non2xx:-0} non-2xx, ${errors:-0} socket errors"
    fi
    log "  $mode round $round $peer: $rps req/s, p50 $(awk '$1 == "50%" {print $2}' "$out"), p99 $(awk '$1 == "99%" {print $2}' "$out"), non-2xx ${non2xx:-0}, socket errors ${errors:-0}"
}

RUNS_TSV="$WORK/runs.tsv"
RSS_TSV="$WORK/rss.tsv"
: >"$RUNS_TSV"
: >"$RSS_TSV"
read -r -a peers <<<"$PEERS"

start_peer upstream
[[ " $PEERS " == *" authgate-rl-"* ]] && start_peer redis
for peer in "${peers[@]}"; do
    [[ $peer == direct ]] || start_peer "$peer"
done
log "functional checks"
for peer in "${peers[@]}"; do check_peer "$peer"; done

reset_peak() {   # VmHWM back to the current RSS (proc(5) clear_refs "5"), per process
    local pid
    for pid in "$@"; do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; done
}

for mode in $MODES; do
    log "mode $mode: warm-up ${WARMUP}s per peer, then $ROUNDS rounds of ${DURATION}s"
    for peer in "${peers[@]}"; do
        # shellcheck disable=SC2046
        [[ $peer == direct ]] || reset_peak $(peer_pids "$peer")
    done
    for peer in "${peers[@]}"; do run_wrk "$mode" "$peer" -; done
    for ((round = 0; round < ROUNDS; round++)); do
        for ((k = 0; k < ${#peers[@]}; k++)); do
            run_wrk "$mode" "${peers[(round + k) % ${#peers[@]}]}" $((round + 1))
        done
    done
    # Peak RSS of this mode (the counters were reset before its warm-up).
    for peer in "${peers[@]}"; do
        [[ $peer == direct ]] && continue
        # shellcheck disable=SC2046
        printf '%s\tpeak-%s\t%s\t-\n' "$peer" "$mode" \
            "$(status_kib VmHWM $(peer_pids "$peer"))" >>"$RSS_TSV"
    done
done

# --- 7. Memory with idle keep-alive connections (fresh processes) ---------------------------

for peer in $IDLE_PEERS; do
    [[ " ${peers[*]} " == *" $peer "* ]] || continue
    stop_peer "$peer"
    start_peer "$peer"
    port=$(port_of "$peer")
    count=$IDLE_CONNECTIONS
    case $peer in
        haproxy) limit=$((HAPROXY_MAXCONN - 100)) ;;
        nginx | nginx-authz) limit=$((NGINX_CONNECTIONS - 200)) ;;
        *) limit=$count ;;
    esac
    if (( limit < count )); then
        log "  $peer: open-files limit $NOFILE allows $limit connections, not $count"
        count=$limit
    fi
    expect "$peer" "valid token (fresh process)" 200 "$(http_code "$port" "$TOKEN")"
    sleep 1
    # shellcheck disable=SC2046
    idle=$(status_kib VmRSS $(peer_pids "$peer"))
    log "  $peer: RSS idle $((idle / 1024)) MiB; opening $count keep-alive connections"
    ready="$WORK/held-$peer"
    timeout 300 taskset -c "$CLIENT_CPU" python3 "$SCRIPT_DIR/hold_conns.py" "$port" \
        "$count" 240 "$ready" "$WORK/token.txt" >"$WORK/hold-$peer.log" 2>&1 &
    holder=$!
    STARTED+=("$holder")
    for _ in $(seq 1200); do
        [[ -s $ready ]] && break
        kill -0 "$holder" 2>/dev/null || break
        sleep 0.1
    done
    [[ -s $ready ]] || die "$peer: connection holder failed: $(tail -n 5 "$WORK/hold-$peer.log")"
    sleep 2
    # shellcheck disable=SC2046
    held=$(status_kib VmRSS $(peer_pids "$peer"))
    read -r opened answered <"$ready"
    log "  $peer: RSS holding $opened connections ($answered answered 2xx): $((held / 1024)) MiB"
    if (( answered < count )); then
        log "  warning: $peer answered only $answered of $count connections; see $WORK/$peer.log"
    fi
    printf '%s\tidle\t%s\t-\n%s\theld\t%s\t%s/%s\n' "$peer" "$idle" "$peer" "$held" \
        "$opened" "$answered" >>"$RSS_TSV"
    stop_pid "$holder"
    # After the spike: the connections are closed; how much of their memory comes back.
    # Then a second spike of the same size, to see whether RSS keeps growing spike by spike.
    for spike in 1 2; do
        if (( spike == 2 )); then
            rm -f "$ready"
            timeout 300 taskset -c "$CLIENT_CPU" python3 "$SCRIPT_DIR/hold_conns.py" "$port" \
                "$count" 5 "$ready" "$WORK/token.txt" >>"$WORK/hold-$peer.log" 2>&1 \
                || log "  warning: $peer: second spike: $(tail -n 2 "$WORK/hold-$peer.log")"
        fi
        sleep "$SPIKE_SETTLE"
        # shellcheck disable=SC2046
        after=$(status_kib VmRSS $(peer_pids "$peer"))
        log "  $peer: RSS ${SPIKE_SETTLE}s after spike $spike closed: $((after / 1024)) MiB"
        printf '%s\tafter-%s\t%s\t-\n' "$peer" "$spike" "$after" >>"$RSS_TSV"
    done
done

# --- 8. Report ------------------------------------------------------------------------------

META="$WORK/meta.md"
{
    echo "## authgate load comparison, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $(lscpu 2>/dev/null | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}'), $(nproc) CPUs, Linux $(uname -r)"
    echo "- authgate $("$AUTHGATE_BIN" --version 2>&1 | head -n 1) ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "no git")$(git -C "$REPO" diff --quiet 2>/dev/null || echo ", dirty")), AUTHGATE_WORKER_THREADS=$AUTHGATE_THREADS, access log $([[ $AUTHGATE_ACCESS_LOG == 1 ]] && echo on || echo off)"
    echo "- $(nginx -v 2>&1), HAProxy $haproxy_version (nbthread 1), $(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}')"
    echo "- (e) nginx-authz: deploy/nginx snippets, keepalive 64 to authgate's /authz/nginx; (f) authgate-rl: one local policy, key client_id, 1000000/s, never refuses$([[ " $PEERS " == *" authgate-rl-"* ]] && echo "; (g)/(h): the same policy in $(redis-server --version | awk '{print $3}' | tr -d 'v=' | sed 's/^/Redis /')")"
    echo "- wrk: 1 thread, $CONNECTIONS connections, ${DURATION}s per run, $ROUNDS interleaved rounds, ${WARMUP}s warm-up, on CPU $CLIENT_CPU; upstream and proxies on CPU $SERVER_CPU; GET $REQUEST_PATH with an RS256 bearer token (2048-bit key)"
}  >"$META"
report=$(python3 "$SCRIPT_DIR/report.py" "$RUNS_TSV" "$RSS_TSV" "$META")
mkdir -p "$RESULTS_DIR"
results="$RESULTS_DIR/results-$(date +%Y-%m-%d-%H%M%S).md"
printf '%s\n' "$report" >"$results"
printf '%s\n' "$report"
log "written to $results"
if (( ${#INVALID_ROWS[@]} > 0 )); then
    log "INVALID runs (non-2xx responses or socket errors): ${INVALID_ROWS[*]}"
    exit 3
fi
