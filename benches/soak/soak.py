#!/usr/bin/env python3
"""Bounded soak of an authgate release binary: reloads, key rotation, IdP outage, upstream
restart and drain under steady valid traffic (issue 20). Run by hand; see README.md here.

Usage: benches/soak/soak.py [--bin target/release/authgate] [--rate 200] [--threads 8]
                            [--out results.md] [--keep]

Everything listens on 127.0.0.1 ports picked at start. The script starts, as subprocesses,
a JWKS server and an upstream it controls (this same file, `--serve ...`) and the gateway
(`authgate run -c <generated config>`). It drives valid traffic (keep-alive connections,
several threads, tokens signed by the current key) and a side client of bad tokens through
seven phases, prints a Markdown report and exits 0 when every check passed, 1 when one
failed, 2 when the soak itself could not run (a refused reload, a server that did not start).

Standard library only. Tokens are RS256, signed through the system libcrypto via ctypes by
../load/tokens.py (pure Python when libcrypto cannot be loaded); keys come from `openssl
genpkey`. Every loop is bounded in count and time, and a watchdog ends the run after
--watchdog seconds (default 600) whatever happens.
"""

import argparse
import base64
import collections
import ctypes
import http.client
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True     # no __pycache__ left in benches/load
sys.path.insert(0, os.path.join(REPO, "benches", "load"))
import tokens as tokenlib  # noqa: E402  (benches/load/tokens.py: RS256 signers, base64url)

HOST = "127.0.0.1"
AUDIENCE = "api://soak"
CLIENT_ID = "soak-client"
SCOPE = "orders:read"
TOKENS_PER_KEY = 256          # more than token_cache_entries: most requests verify a signature
TOKEN_CACHE_ENTRIES = 64

# Gateway timings: short, so every phase is short.
HEADER_READ_TIMEOUT = 5.0     # idle connections are held longer than this
IDLE_TIMEOUT = 60.0
SHUTDOWN_TIMEOUT = 10.0
REFRESH_INTERVAL = 4.0
MIN_REFRESH = 2.0
MAX_STALE = 60.0
FETCH_TIMEOUT = 1.0

SLOW_MS = 1500                # in-flight requests at SIGTERM take this long upstream
NEW_KEY_DEADLINE = 1.0        # after a rotation the new key must pass within this
LOG_FLOOD_LIMIT = 50          # at most this many lines of one warning per phase
DRAIN_SLACK = 2.0             # exit this long after the in-flight work ended is still prompt
DRAIN_MARGIN = 0.25           # requests sent this close before SIGTERM may race the close


def log(message):
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class SoakError(Exception):
    """The soak itself could not run as designed (exit 2): not a finding about the gateway."""


# --------------------------------------------------------------------------------------------
# Child servers: `soak.py --serve upstream PORT` and `soak.py --serve jwks PORT JWKS LOG`.
# --------------------------------------------------------------------------------------------

class QuietHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"     # keep-alive, as a real upstream / IdP

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class UpstreamHandler(QuietHandler):
    def do_GET(self):
        match = re.search(r"[?&]sleep_ms=(\d+)", self.path)
        if match:
            with open(self.server.request_log, "a") as f:     # the soak waits for these
                f.write(f"{time.monotonic():.6f} {self.path}\n")
            time.sleep(min(int(match.group(1)), 10_000) / 1000)
        self.reply(200, b"ok")

    do_HEAD = do_GET


class JwksHandler(QuietHandler):
    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path != "/jwks.json":
            self.reply(404, b"not found")
            return
        with open(self.server.request_log, "a") as f:
            f.write(f"{time.monotonic():.6f} {self.path}\n")
        # A remote identity provider is tens to hundreds of milliseconds away: a gateway
        # that has no keys while a fetch runs shows it for that long, not for a loopback
        # round trip of a millisecond.
        time.sleep(self.server.latency)
        with open(self.server.jwks_path, "rb") as f:
            body = f.read()
        self.reply(200, body, "application/json")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512


def serve(role, port, jwks_path=None, request_log=None, latency="0"):
    handler = UpstreamHandler if role == "upstream" else JwksHandler
    server = Server((HOST, port), handler)
    server.jwks_path, server.request_log, server.latency = jwks_path, request_log, float(latency)
    parent = os.getppid()

    def orphan_watch():
        # Bounded life: ends with the soak (parent gone) or after an hour at most.
        for _ in range(7200):
            if os.getppid() != parent:
                break
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=orphan_watch, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve_forever(poll_interval=0.2)


class ChildServer:
    """One child server process that can be stopped and started again on the same port."""

    def __init__(self, role, port, *extra):
        self.role, self.port, self.extra, self.proc = role, port, extra, None

    def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", self.role, str(self.port),
             *self.extra],
            stdin=subprocess.DEVNULL)
        wait_port(self.port, 5.0, f"{self.role} server")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None
        # The port refuses connections from here on (no listener).


def read_times(path):
    """The monotonic times logged by a child server, one per line."""
    try:
        with open(path) as f:
            return [float(line.split()[0]) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def wait_port(port, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SoakError(f"{what} did not listen on {HOST}:{port} within {timeout:.0f} s")


def free_ports(count):
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind((HOST, 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# --------------------------------------------------------------------------------------------
# Keys and tokens
# --------------------------------------------------------------------------------------------

def b64json(value):
    return tokenlib.b64url(json.dumps(value, separators=(",", ":")).encode())


class Key:
    """An RSA-2048 key made by openssl, its JWK and a signer."""

    def __init__(self, work, kid):
        self.kid = kid
        pem_path = os.path.join(work, f"{kid}.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", pem_path],
                       check=True, capture_output=True, timeout=60)
        numbers = tokenlib.rsa_numbers(pem_path)
        try:
            with open(pem_path, "rb") as f:
                self.signer = tokenlib.LibcryptoSigner(f.read())
        except (OSError, AttributeError) as error:
            log(f"libcrypto unusable ({error}); signing in pure Python (slower start)")
            self.signer = tokenlib.PythonSigner(numbers)
        self.jwk = {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
                    "n": tokenlib.int_to_b64url(numbers["modulus"]),
                    "e": tokenlib.int_to_b64url(numbers["e"])}

    def token(self, claims, header=None, kid=None):
        head = header or {"alg": "RS256", "typ": "JWT", "kid": kid or self.kid}
        data = b64json(head) + "." + b64json(claims)
        return data + "." + tokenlib.b64url(self.signer.sign(data.encode()))


def base_claims(issuer, now, **extra):
    claims = {"iss": issuer, "aud": AUDIENCE, "client_id": CLIENT_ID, "scope": SCOPE,
              "tid": "tenant-soak", "org": "org-soak", "iat": now - 60, "exp": now + 3600}
    claims.update(extra)
    return claims


def valid_tokens(key, issuer, count):
    now = int(time.time())
    return [key.token(base_claims(issuer, now, sub=f"svc-{i:04d}", jti=f"{key.kid}-{i:05d}"))
            for i in range(count)]


def bad_tokens(key, issuer):
    """Tokens a gateway must refuse (401, or 403 for the missing scope). Each uses a `kid` the
    gateway knows, so none of them spends an unknown-kid refresh."""
    now = int(time.time())
    good = key.token(base_claims(issuer, now, sub="bad-base"))
    head, payload, signature = good.split(".")
    changed = b64json(base_claims(issuer, now, sub="admin"))
    alg_none = b64json({"alg": "none", "typ": "JWT"}) + "." + payload + "."
    return [
        ("no token", None),
        ("malformed", "not.a.jwt"),
        ("bad signature", f"{head}.{changed}.{signature}"),
        ("alg none", alg_none),
        ("expired", key.token(base_claims(issuer, now, sub="old", iat=now - 7200,
                                          exp=now - 3600))),
        ("wrong audience", key.token(base_claims(issuer, now, aud="api://elsewhere"))),
        ("wrong issuer", key.token(base_claims("http://127.0.0.1:1/other/", now))),
        ("no scope", key.token(base_claims(issuer, now, scope="profile"))),
    ]


class Credentials:
    """The tokens valid traffic uses: those of the IdP's current signing key."""

    def __init__(self):
        self.pools = {}
        self.current = None

    def pick(self, index):
        name = self.current
        pool = self.pools[name]
        return name, pool[index % len(pool)]


# --------------------------------------------------------------------------------------------
# The gateway's config (every issuer setting listed, so reloads can change each in turn)
# --------------------------------------------------------------------------------------------

BASE_ISSUER = {
    "jwks_uri": None,                          # filled in with the JWKS server's address
    "audiences": [AUDIENCE, "api://soak-other"],
    "allowed_clients": None,
    "algorithms": ["RS256"],
    "scope_claims": ["scope", "scp"],
    "client_id_claims": ["client_id", "azp"],
    "leeway": "30s",
    "refresh_interval": f"{REFRESH_INTERVAL:g}s",
    "min_refresh": f"{MIN_REFRESH:g}s",
    "max_stale": f"{MAX_STALE:g}s",
    "fetch_timeout": f"{FETCH_TIMEOUT:g}s",
    "token_types": [],
    "required_claims": {},
    "claim_headers": {"X-Auth-Tenant": "tid"},
}

# One reload per entry, in order, each changing one more setting of the base issuer (see
# `cumulative`); a last reload goes back to the base config. Valid tokens stay valid under
# each. `source` marks the change of key source (jwks_uri), which cannot keep the
# old keys and is therefore only made while the IdP is up.
RELOADS = [
    ("nothing (same file)", {}, False),
    ("refresh_interval", {"refresh_interval": f"{REFRESH_INTERVAL + 1:g}s"}, False),
    ("min_refresh", {"min_refresh": f"{MIN_REFRESH * 1000 + 500:g}ms"}, False),
    ("max_stale", {"max_stale": f"{MAX_STALE * 2:g}s"}, False),
    ("fetch_timeout", {"fetch_timeout": f"{FETCH_TIMEOUT * 2:g}s"}, False),
    ("leeway", {"leeway": "45s"}, False),
    ("audiences order", {"audiences": ["api://soak-other", AUDIENCE]}, False),
    ("allowed_clients", {"allowed_clients": [CLIENT_ID, "another-client"]}, False),
    ("algorithms", {"algorithms": ["RS256", "PS256", "ES256"]}, False),
    ("scope_claims order", {"scope_claims": ["scp", "scope"]}, False),
    ("client_id_claims order", {"client_id_claims": ["azp", "client_id"]}, False),
    ("token_types", {"token_types": ["JWT", "at+jwt"]}, False),
    ("required_claims", {"required_claims": {"tid": "tenant-soak"}}, False),
    ("claim_headers", {"claim_headers": {"X-Auth-Tenant": "tid", "X-Auth-Org": "org"}}, False),
    ("jwks_uri (key source)", {"jwks_uri": "+?source=2"}, True),
]


def cumulative(reloads, idp_down):
    """The config change of each reload: every setting changed so far stays changed, so each
    reload differs from the one before in exactly one setting."""
    applied, changes = {}, []
    for _, change, source in reloads:
        if idp_down and source:
            continue
        applied.update(change)
        changes.append(dict(applied))
    return changes


def toml_value(value):
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}"
                                for k, v in value.items()) + " }"
    raise TypeError(value)


def render_config(ports, issuer, change=None):
    fields = dict(BASE_ISSUER, jwks_uri=f"http://{HOST}:{ports['jwks']}/jwks.json")
    for name, value in (change or {}).items():
        fields[name] = fields[name] + value[1:] if str(value).startswith("+") else value
    issuer_lines = "\n".join(f"{name} = {toml_value(value)}"
                             for name, value in fields.items() if value is not None)
    return f"""# Generated by benches/soak/soak.py
[server]
listen = "{HOST}:{ports['gateway']}"
header_read_timeout = "{HEADER_READ_TIMEOUT:g}s"
request_timeout = "15s"
idle_timeout = "{IDLE_TIMEOUT:g}s"
shutdown_timeout = "{SHUTDOWN_TIMEOUT:g}s"
max_connections_per_client = 4096
token_cache_entries = {TOKEN_CACHE_ENTRIES}
token_cache_ttl = "5m"

[admin]
listen = "{HOST}:{ports['admin']}"

[[issuers]]
name = "soak-idp"
issuer = "{issuer}"
{issuer_lines}

[[upstreams]]
name = "soak-upstream"
url = "http://{HOST}:{ports['upstream']}"
connect_timeout = "1s"
timeout = "15s"

[[routes]]
name = "orders"
path_prefix = "/orders"
methods = ["GET"]
upstream = "soak-upstream"
scopes = ["{SCOPE}"]
"""


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------

class Clock:
    """The current phase, read by every client thread when it sends a request."""

    def __init__(self):
        self.phase = "start"


class Status(int):
    """An HTTP status that remembers whether the response carried `Retry-After`."""

    retry_after = False


class Record:
    __slots__ = ("phase", "sent", "done", "status", "key")

    def __init__(self, phase, sent, done, status, key):
        self.phase, self.sent, self.done, self.status, self.key = phase, sent, done, status, key


def get(conn, path, token=None, extra=None):
    headers = dict(extra or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    status = Status(response.status)
    status.retry_after = response.getheader("Retry-After") is not None
    return status


def one_request(port, path, token=None, timeout=10.0):
    """One request on a fresh connection: the status, or the exception's class name."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        return get(conn, path, token)
    except (OSError, http.client.HTTPException) as error:
        return type(error).__name__
    finally:
        conn.close()


class Traffic:
    """Steady valid traffic: `threads` keep-alive connections, `rate` requests/s in total."""

    def __init__(self, port, clock, credentials, threads, rate, deadline):
        self.port, self.clock, self.credentials = port, clock, credentials
        self.threads, self.interval, self.deadline = threads, threads / rate, deadline
        self.records = []
        self.stop = threading.Event()
        self.workers = [threading.Thread(target=self.run, args=(n,), daemon=True)
                        for n in range(threads)]

    def start(self):
        for worker in self.workers:
            worker.start()

    def join(self):
        self.stop.set()
        for worker in self.workers:
            worker.join(timeout=20)

    def run(self, n):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        index = n * 7919
        next_at = time.monotonic() + random.random() * self.interval
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()      # behind: do not burst to catch up
            index += 1
            key, token = self.credentials.pick(index)
            phase, sent = self.clock.phase, time.monotonic()
            try:
                status = get(conn, f"/orders/{index % 1000}", token)
            except (OSError, http.client.HTTPException) as error:
                status = type(error).__name__
                conn.close()
            self.records.append(Record(phase, sent, time.monotonic(), status, key))
        conn.close()


class BadTraffic(Traffic):
    """The side client: tokens that must be refused, a few per second, reported apart."""

    def __init__(self, port, clock, tokens, rate, deadline):
        super().__init__(port, clock, None, 1, rate, deadline)
        self.tokens = tokens

    def run(self, n):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        index = 0
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            time.sleep(self.interval)
            label, token = self.tokens[index % len(self.tokens)]
            index += 1
            phase, sent = self.clock.phase, time.monotonic()
            try:
                status = get(conn, "/orders/bad", token)
            except (OSError, http.client.HTTPException) as error:
                status = type(error).__name__
                conn.close()
            self.records.append(Record(phase, sent, time.monotonic(), status, label))
        conn.close()


class ReadyzPoller(Traffic):
    """GET /readyz four times a second; the statuses per phase."""

    def __init__(self, admin_port, clock, deadline):
        super().__init__(admin_port, clock, None, 1, 4, deadline)

    def run(self, n):
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            time.sleep(self.interval)
            phase, sent = self.clock.phase, time.monotonic()
            status = one_request(self.port, "/readyz", timeout=2)
            self.records.append(Record(phase, sent, time.monotonic(), status, None))


def raw_request(token, path="/orders/idle"):
    return (f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\n\r\n"
            ).encode()


def read_response(sock, deadline):
    """Reads one response (Content-Length bodies); its status, or None if the peer closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(body) < length:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status


def idle_keepalive_check(port, token, hold, results):
    """Issue 20 item 3: a keep-alive connection idle for `hold` s (longer than
    header_read_timeout, shorter than idle_timeout) must still take a request. Raw socket: the
    time the gateway closed it, if it did, is measured."""
    try:
        sock = socket.create_connection((HOST, port), timeout=5)
    except OSError as error:
        results.append(("connect failed", type(error).__name__, None))
        return
    with sock:
        idle_from = time.monotonic()
        try:
            sock.sendall(raw_request(token))
            first = read_response(sock, time.monotonic() + 10)
            idle_from = time.monotonic()
            sock.settimeout(hold)
            try:
                closed = sock.recv(1) == b""          # the gateway closed the connection
            except socket.timeout:
                closed = False
            if closed:
                results.append((f"closed by the gateway (first request {first})", None,
                                time.monotonic() - idle_from))
                return
            sock.sendall(raw_request(token))
            status = read_response(sock, time.monotonic() + 10)
            results.append(("reused", status, time.monotonic() - idle_from))  # status: 2nd
        except (OSError, ValueError, IndexError) as error:
            results.append(("error", type(error).__name__, time.monotonic() - idle_from))


def slow_head_check(port, results):
    """The slow-loris guard stays: a head whose first bytes arrived but which never completes
    is dropped after about header_read_timeout (not idle_timeout)."""
    try:
        sock = socket.create_connection((HOST, port), timeout=5)
    except OSError as error:
        results.append(("connect failed", type(error).__name__))
        return
    with sock:
        start = time.monotonic()
        try:
            sock.sendall(f"GET /orders/slow HTTP/1.1\r\nHost: {HOST}\r\n".encode())
            sock.settimeout(HEADER_READ_TIMEOUT + 10)
            while sock.recv(65536):             # a 408 response, then the close
                pass
            results.append(("closed", time.monotonic() - start))
        except socket.timeout:
            results.append(("still open", time.monotonic() - start))
        except OSError:
            results.append(("closed", time.monotonic() - start))


def metrics(admin_port):
    conn = http.client.HTTPConnection(HOST, admin_port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                pass
    return values


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

class Phase:
    def __init__(self, key, title, checks):
        self.key, self.title, self.checks = key, title, checks
        self.start = self.end = None
        # (from, to, overlap): failures expected for requests sent in [from, to], or with
        # overlap for requests whose send..done interval meets it (in flight at `from`).
        self.expected = []
        self.notes = []
        self.steps = []             # (time, name) of each reload
        self.log_from = self.log_to = 0


class Soak:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="authgate-soak-")
        self.clock = Clock()
        self.checks = []            # (name, ok, detail)
        self.phases = []
        self.gateway = None
        self.gateway_log = None
        self.children = []

    # ---- plumbing ---------------------------------------------------------------------

    def check(self, name, ok, detail):
        self.checks.append((name, ok, detail))
        log(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")

    def begin(self, key, title, checks):
        phase = Phase(key, title, checks)
        phase.start = time.monotonic()
        phase.log_from = os.path.getsize(self.log_path)
        self.phases.append(phase)
        self.clock.phase = key
        log(f"phase {key}: {title}")
        return phase

    def finish(self, phase):
        phase.end = time.monotonic()
        phase.log_to = os.path.getsize(self.log_path)

    def write_config(self, change=None):
        text = render_config(self.ports, self.issuer, change)
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    def reload(self, change=None):
        """Writes the config and sends SIGHUP; waits until the gateway counted the reload."""
        before = metrics(self.ports["admin"])
        ok_key = 'authgate_config_reloads_total{result="success"}'
        err_key = 'authgate_config_reloads_total{result="error"}'
        self.write_config(change)
        self.gateway.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            now = metrics(self.ports["admin"])
            if now.get(err_key, 0) > before.get(err_key, 0):
                raise SoakError(f"the gateway refused a generated config ({change}); see "
                                f"{self.log_path}")
            if now.get(ok_key, 0) > before.get(ok_key, 0):
                return
            time.sleep(0.05)
        raise SoakError("a reload was not counted within 5 s")

    def publish(self, keys):
        tmp = self.jwks_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"keys": [key.jwk for key in keys]}, f)
        os.replace(tmp, self.jwks_path)

    def fetches(self):
        return read_times(self.fetch_log)

    def wait_fetch_after(self, after, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            later = [t for t in self.fetches() if t > after]
            if later:
                return later[0]
            time.sleep(0.02)
        return None

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if one_request(self.ports["admin"], "/readyz", timeout=2) == 200:
                return True
            time.sleep(0.1)
        return False

    def sleep_until(self, moment):
        delay = moment - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    # ---- setup --------------------------------------------------------------------------

    def setup(self):
        names = ["gateway", "admin", "upstream", "jwks"]
        self.ports = dict(zip(names, free_ports(len(names))))
        self.issuer = f"http://{HOST}:{self.ports['jwks']}/"
        self.config_path = os.path.join(self.work, "authgate.toml")
        self.jwks_path = os.path.join(self.work, "jwks.json")
        self.fetch_log = os.path.join(self.work, "jwks-fetches.log")
        self.log_path = os.path.join(self.work, "authgate.log")

        log(f"work dir {self.work}; ports {self.ports}")
        self.key1 = Key(self.work, "soak-key-1")
        self.key2 = Key(self.work, "soak-key-2")
        self.credentials = Credentials()
        self.credentials.pools = {
            "key-1": valid_tokens(self.key1, self.issuer, TOKENS_PER_KEY),
            "key-2": valid_tokens(self.key2, self.issuer, TOKENS_PER_KEY),
        }
        self.credentials.current = "key-1"
        self.bad = bad_tokens(self.key1, self.issuer)
        self.publish([self.key1])

        self.slow_log = os.path.join(self.work, "upstream-slow.log")
        self.upstream = ChildServer("upstream", self.ports["upstream"], "-", self.slow_log)
        self.idp = ChildServer("jwks", self.ports["jwks"], self.jwks_path, self.fetch_log,
                               str(self.args.idp_latency))
        self.children = [self.upstream, self.idp]
        self.upstream.start()
        self.idp.start()

        self.write_config()
        check = subprocess.run([self.args.bin, "check", "-c", self.config_path],
                               capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise SoakError(f"authgate check refused the generated config: {check.stderr}")
        for change in cumulative(RELOADS, idp_down=False):
            self.write_config(change)
            check = subprocess.run([self.args.bin, "check", "-c", self.config_path],
                                   capture_output=True, text=True, timeout=30)
            if check.returncode != 0:
                raise SoakError(f"authgate check refused a reload config: {check.stderr}")
        self.write_config()

        env = dict(os.environ, RUST_LOG="info")
        if self.args.worker_threads:
            env["AUTHGATE_WORKER_THREADS"] = str(self.args.worker_threads)
        self.gateway_log = open(self.log_path, "wb")
        self.gateway = subprocess.Popen(
            [self.args.bin, "--log-format", "json", "run", "-c", self.config_path],
            stdin=subprocess.DEVNULL, stdout=self.gateway_log, stderr=self.gateway_log,
            env=env, preexec_fn=die_with_parent)
        wait_port(self.ports["gateway"], 10, "authgate")
        if not self.wait_ready(10):
            raise SoakError("authgate /readyz did not answer 200 within 10 s")
        log(f"authgate pid {self.gateway.pid} ready")

    # ---- phases -------------------------------------------------------------------------

    def run(self):
        args = self.args
        hold = HEADER_READ_TIMEOUT + 3
        deadline = time.monotonic() + args.watchdog
        self.traffic = Traffic(self.ports["gateway"], self.clock, self.credentials,
                               args.threads, args.rate, deadline)
        self.badtraffic = BadTraffic(self.ports["gateway"], self.clock, self.bad,
                                     args.bad_rate, deadline)
        self.readyz = ReadyzPoller(self.ports["admin"], self.clock, deadline)
        for client in (self.traffic, self.badtraffic, self.readyz):
            client.start()

        # 1. Baseline, with the keep-alive checks beside it.
        phase = self.begin("1 baseline", "steady traffic; idle keep-alive and slow head checks",
                           "zero non-2xx")
        idle, slow = [], []
        side = [threading.Thread(target=idle_keepalive_check,
                                 args=(self.ports["gateway"],
                                       self.credentials.pools["key-1"][i], hold, idle))
                for i in range(4)]
        side.append(threading.Thread(target=slow_head_check,
                                     args=(self.ports["gateway"], slow)))
        for thread in side:
            thread.start()
        self.sleep_until(phase.start + max(args.baseline, hold + 2))
        for thread in side:
            thread.join(timeout=HEADER_READ_TIMEOUT + 25)
        self.finish(phase)
        reused = [r for r in idle if r[0] == "reused" and r[1] == 200]
        detail = "; ".join(
            what + (f" ({status})" if status is not None else "")
            + (f" after {secs:.1f} s idle" if secs is not None else "")
            for what, status, secs in idle)
        self.check("idle keep-alive connections outlive header_read_timeout (issue 20 item 3)",
                   len(reused) == 4 and len(idle) == 4,
                   f"held {hold:g} s idle (header_read_timeout {HEADER_READ_TIMEOUT:g}s, "
                   f"idle_timeout {IDLE_TIMEOUT:g}s): {detail or 'no result'}")
        self.check("a half-sent head is still dropped after header_read_timeout",
                   len(slow) == 1 and slow[0][0] == "closed"
                   and slow[0][1] <= HEADER_READ_TIMEOUT + 2,
                   f"{slow[0][0]} after {slow[0][1]:.1f} s" if slow else "no result")

        # 2. and 3. Reloads changing every issuer setting, with the IdP up, then down.
        for key, title, idp_down in (
                ("2 reloads, IdP up", "SIGHUP every ~2 s, each changing one more issuer setting",
                 False),
                ("3 reloads, IdP down", "the same reloads (not the key source) with the "
                 "IdP down; keys must be kept (stale-if-error)", True)):
            phase = self.begin(key, title, "zero non-2xx")
            if idp_down:
                self.idp.stop()
                time.sleep(1)
            names = [name for name, _, source in RELOADS if not (idp_down and source)]
            changes = cumulative(RELOADS, idp_down)
            for name, change in zip(names + ["back to the base config"], changes + [None]):
                started = time.monotonic()
                self.reload(change)
                phase.steps.append((started, name))
                self.sleep_until(started + args.reload_every)
            if idp_down:
                self.idp.start()
                back = time.monotonic()
                fetched = self.wait_fetch_after(back, MIN_REFRESH + REFRESH_INTERVAL + 5)
                ready = self.wait_ready(10)
                phase.notes.append(f"IdP back; first fetch after "
                                   f"{(fetched - back) if fetched else float('nan'):.1f} s, "
                                   f"ready {ready}")
                time.sleep(1)
            self.finish(phase)

        # 4. Forged kid just before a key rotation.
        phase = self.begin("4 rotation after forged kid",
                           "a token with a random kid, then the IdP rotates to a new key "
                           "and traffic switches to it",
                           f"zero non-2xx; new key accepted within {NEW_KEY_DEADLINE:g} s")
        # Right after a background refresh, so the next one is a whole interval away.
        last = max(self.fetches() or [0])
        self.wait_fetch_after(last, REFRESH_INTERVAL + 3)
        time.sleep(args.idp_latency + 0.1)          # that fetch has been answered
        forged_at = time.monotonic()
        forged = one_request(self.ports["gateway"], "/orders/forged",
                             self.key1.token(base_claims(self.issuer, int(time.time()),
                                                         sub="forger"),
                                             kid=f"forged-{random.getrandbits(64):016x}"))
        spent = self.wait_fetch_after(forged_at, 1.0)
        self.check("forged-kid token refused", forged not in range(200, 300) and
                   isinstance(forged, int), f"status {forged}; it made the gateway fetch the "
                   f"JWKS: {'yes' if spent else 'no'}")
        time.sleep(0.2)
        self.publish([self.key2, self.key1])
        rotated = time.monotonic()
        self.credentials.current = "key-2"
        self.sleep_until(rotated + args.rotation_run)
        self.finish(phase)
        new_ok = sorted(r.done for r in self.traffic.records
                        if r.key == "key-2" and isinstance(r.status, int)
                        and 200 <= r.status < 300)
        first = (new_ok[0] - rotated) if new_ok else None
        refused = sum(1 for r in self.traffic.records if r.key == "key-2"
                      and not (isinstance(r.status, int) and 200 <= r.status < 300))
        self.check(f"new key accepted within {NEW_KEY_DEADLINE:g} s of the rotation "
                   "(issue 20 item 2)",
                   first is not None and first <= NEW_KEY_DEADLINE,
                   (f"first 2xx {first:.2f} s after the rotation" if first is not None
                    else "never accepted") + f"; {refused} new-key requests refused")

        # 5. IdP outage longer than refresh_interval, shorter than max_stale.
        phase = self.begin("5 IdP outage", f"JWKS server down {args.outage:g} s "
                           f"(refresh_interval {REFRESH_INTERVAL:g}s, max_stale "
                           f"{MAX_STALE:g}s)", "zero non-2xx")
        self.idp.stop()
        time.sleep(args.outage)
        self.idp.start()
        back = time.monotonic()
        fetched = self.wait_fetch_after(back, MIN_REFRESH + REFRESH_INTERVAL + 5)
        phase.notes.append(f"IdP back; first fetch after "
                           f"{(fetched - back) if fetched else float('nan'):.1f} s")
        time.sleep(1)
        self.finish(phase)

        # 6. Upstream restart.
        phase = self.begin("6 upstream restart", "upstream stopped, restarted on the same port",
                           "non-2xx only while the upstream is down (+1 s)")
        time.sleep(2)
        stopped = time.monotonic()
        self.upstream.stop()
        time.sleep(args.upstream_gap)
        self.upstream.start()
        up = time.monotonic()
        phase.expected.append((stopped, up + 1.0, True))
        phase.notes.append(f"upstream down {up - stopped:.1f} s")
        time.sleep(3)
        self.finish(phase)

        self.final_metrics = metrics(self.ports["admin"])
        self.readyz.join()

        # 7. Drain: SIGTERM under load.
        phase = self.begin("7 drain", "SIGTERM under load, with slow requests in flight and "
                           "a half-sent head", "in-flight requests 2xx; exit 0 within "
                           "shutdown_timeout; not held by the half-sent head")
        time.sleep(1)
        inflight = []

        def slow_request(i):
            token = self.credentials.pick(i)[1]
            inflight.append(one_request(self.ports["gateway"],
                                        f"/orders/slow?sleep_ms={SLOW_MS}", token, timeout=30))

        slow_threads = [threading.Thread(target=slow_request, args=(i,)) for i in range(4)]
        started = time.monotonic()
        for thread in slow_threads:
            thread.start()
        half = socket.create_connection((HOST, self.ports["gateway"]), timeout=5)
        half.sendall(f"GET /orders/half HTTP/1.1\r\nHost: {HOST}\r\n".encode())
        # SIGTERM once every slow request is at the upstream (so surely in flight), and at
        # least 0.3 s after they were sent.
        arrived = []
        wait_until = time.monotonic() + 5
        while time.monotonic() < wait_until:
            arrived = read_times(self.slow_log)
            if len(arrived) >= len(slow_threads):
                break
            time.sleep(0.02)
        time.sleep(max(0.0, 0.3 - (time.monotonic() - started)))
        term = time.monotonic()
        self.gateway.send_signal(signal.SIGTERM)
        phase.expected.append((term - DRAIN_MARGIN, float("inf"), False))
        try:
            code = self.gateway.wait(timeout=SHUTDOWN_TIMEOUT + 10)
        except subprocess.TimeoutExpired:
            code = None
        exited = time.monotonic() - term
        for thread in slow_threads:
            thread.join(timeout=30)
        half.close()
        time.sleep(0.5)
        self.traffic.join()
        self.badtraffic.join()
        self.finish(phase)
        # When the last slow request is answered by the upstream, counted from SIGTERM.
        remaining = (max(arrived) if arrived else started) + SLOW_MS / 1000 - term
        phase.notes.append(f"{len(arrived)} slow requests at the upstream before SIGTERM; "
                           f"exit code {code} after {exited:.1f} s")
        self.check("in-flight requests finish during drain",
                   len(inflight) == 4 and all(s == 200 for s in inflight),
                   f"{len(inflight)} slow requests ({SLOW_MS} ms upstream): {inflight}")
        self.check("exit 0 within shutdown_timeout after SIGTERM",
                   code == 0 and exited <= SHUTDOWN_TIMEOUT + 0.5,
                   f"exit code {code} after {exited:.1f} s (shutdown_timeout "
                   f"{SHUTDOWN_TIMEOUT:g}s)")
        self.check("drain not held by a half-sent head (issue 20 item 4)",
                   code is not None and exited <= remaining + DRAIN_SLACK,
                   f"exit {exited:.1f} s after SIGTERM; in-flight work ended after "
                   f"~{remaining:.1f} s, header_read_timeout {HEADER_READ_TIMEOUT:g}s")

    # ---- report -------------------------------------------------------------------------

    def warnings(self, phase):
        """(lines, top message, its count) of warn/error log lines written during a phase."""
        with open(self.log_path, "rb") as f:
            f.seek(phase.log_from)
            data = f.read(max(0, phase.log_to - phase.log_from))
        counts = collections.Counter()
        for line in data.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if str(event.get("level", "")).upper() in ("WARN", "ERROR"):
                counts[event.get("message", "?")] += 1
        top = counts.most_common(1)
        return sum(counts.values()), (top[0] if top else ("", 0))

    def report(self):
        out = []
        binary = os.path.realpath(self.args.bin)
        version = subprocess.run([self.args.bin, "--version"], capture_output=True,
                                 text=True, timeout=10).stdout.strip()
        out.append(f"# authgate soak, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
        out.append("")
        out.append(f"Binary `{binary}` ({version}); {self.args.threads} client threads at "
                   f"{self.args.rate:g} req/s of valid traffic, side client "
                   f"{self.args.bad_rate:g} req/s of bad tokens; the JWKS server answers after "
                   f"{self.args.idp_latency * 1000:g} ms. Gateway: header_read_timeout "
                   f"{HEADER_READ_TIMEOUT:g}s, idle_timeout {IDLE_TIMEOUT:g}s, shutdown_timeout "
                   f"{SHUTDOWN_TIMEOUT:g}s, token_cache_entries {TOKEN_CACHE_ENTRIES} "
                   f"({TOKENS_PER_KEY} tokens per key); issuer refresh_interval "
                   f"{REFRESH_INTERVAL:g}s, min_refresh {MIN_REFRESH:g}s, max_stale "
                   f"{MAX_STALE:g}s, fetch_timeout {FETCH_TIMEOUT:g}s.")
        out.append("")
        out.append("## Valid traffic per phase")
        out.append("")
        out.append("| phase | s | requests | 2xx | non-2xx by status | connection errors "
                   "| expected | unexpected | /readyz non-200 | warn lines (top) |")
        out.append("| --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | --- |")
        failed_phases = []
        for phase in self.phases:
            records = [r for r in self.traffic.records if r.phase == phase.key]
            ok = sum(1 for r in records if isinstance(r.status, int) and 200 <= r.status < 300)
            bad = [r for r in records if not (isinstance(r.status, int)
                                             and 200 <= r.status < 300)]
            statuses = collections.Counter(
                f"{r.status} (Retry-After)" if getattr(r.status, "retry_after", False)
                else int(r.status) for r in bad if isinstance(r.status, int))
            errors = collections.Counter(r.status for r in bad if isinstance(r.status, str))
            expected = [r for r in bad if any(
                lo <= r.sent <= hi or (overlap and r.sent <= hi and r.done >= lo)
                for lo, hi, overlap in phase.expected)]
            unexpected = len(bad) - len(expected)
            readyz = [r for r in self.readyz.records if r.phase == phase.key]
            not_ready = sum(1 for r in readyz if r.status != 200)
            lines, (message, count) = self.warnings(phase)
            flood = f"{lines}" + (f" ({count}× \"{message}\")" if count else "")
            out.append(
                f"| {phase.key} | {phase.end - phase.start:.0f} | {len(records)} | {ok} | "
                f"{fmt_counter(statuses)} | {fmt_counter(errors)} | {len(expected)} | "
                f"**{unexpected}** | {not_ready}/{len(readyz)} | {flood} |")
            if unexpected:
                failed_phases.append(f"{phase.key}: {unexpected}")
            if phase.steps:
                phase.notes.append("reloads (non-2xx sent after each, before the next): " +
                                   ", ".join(by_step(phase.steps, bad)))
            if count > LOG_FLOOD_LIMIT:
                self.check(f"no log flood in phase {phase.key} (issue 20 item 5)", False,
                           f"{count} × \"{message}\" (limit {LOG_FLOOD_LIMIT} per phase)")
        self.check("valid traffic: no unexpected non-2xx or connection error in any phase",
                   not failed_phases, "; ".join(failed_phases) or "none")
        if not any(name.startswith("no log flood") for name, _, _ in self.checks):
            self.check("no log flood (issue 20 item 5)", True,
                       f"no warning repeated more than {LOG_FLOOD_LIMIT} times in a phase")

        out.append("")
        out.append("Expected: phase 6, requests sent while the upstream was down or in "
                   "flight when it stopped, until 1 s after it was back; phase 7, requests "
                   f"sent from {DRAIN_MARGIN:g} s before SIGTERM on (connections closing). "
                   "/readyz is polled until phase 7.")
        out.append("")
        for phase in self.phases:
            out.append(f"- **{phase.key}**: {phase.title}. Pass: {phase.checks}."
                       + (f" Steps: {'; '.join(phase.notes)}." if phase.notes else ""))
        out.append("")
        out.append("## Bad tokens (side client; refusals expected, not failures)")
        out.append("")
        out.append("| phase | requests | 401 | 403 | other | 2xx |")
        out.append("| --- | ---: | ---: | ---: | --- | ---: |")
        accepted = 0
        for phase in self.phases:
            records = [r for r in self.badtraffic.records if r.phase == phase.key]
            statuses = collections.Counter(r.status for r in records)
            ok = sum(n for s, n in statuses.items() if isinstance(s, int) and 200 <= s < 300)
            accepted += ok
            other = {s: n for s, n in statuses.items()
                     if s not in (401, 403) and not (isinstance(s, int) and 200 <= s < 300)}
            out.append(f"| {phase.key} | {len(records)} | {statuses.get(401, 0)} | "
                       f"{statuses.get(403, 0)} | {fmt_counter(other)} | **{ok}** |")
        self.check("no bad token accepted", accepted == 0, f"{accepted} accepted")
        out.append("")
        out.append("Bad tokens: " + ", ".join(label for label, _ in self.bad) + ".")

        out.append("")
        out.append("## Gateway counters before the drain")
        out.append("")
        for name in sorted(self.final_metrics):
            if re.match(r"authgate_(jwks_refresh_total|jwks_unknown_kid_refresh_total|"
                        r"config_reloads_total|jwks_keys)", name):
                out.append(f"- `{name}` {self.final_metrics[name]:g}")
        out.append("")
        out.append("## Checks")
        out.append("")
        for name, ok, detail in self.checks:
            out.append(f"- {'PASS' if ok else '**FAIL**'} {name}: {detail}")
        failed = [name for name, ok, _ in self.checks if not ok]
        out.append("")
        out.append(f"Result: **{'FAIL' if failed else 'PASS'}** "
                   f"({len(self.checks) - len(failed)}/{len(self.checks)} checks passed)")
        return "\n".join(out) + "\n", not failed

    def dump(self):
        """Every request as a line (phase, sent and done relative to the start, status, key):
        for digging into a failure (--keep)."""
        if not self.phases:
            return
        origin = self.phases[0].start
        with open(os.path.join(self.work, "requests.tsv"), "w") as f:
            f.write("client\tphase\tsent_s\tdone_s\tstatus\tkey\n")
            for client, records in (("valid", self.traffic.records),
                                    ("bad", self.badtraffic.records)):
                for r in records:
                    f.write(f"{client}\t{r.phase}\t{r.sent - origin:.3f}\t"
                            f"{r.done - origin:.3f}\t{r.status}\t{r.key}\n")
            for phase in self.phases:
                for lo, hi, _ in phase.expected:
                    f.write(f"expected\t{phase.key}\t{lo - origin:.3f}\t{hi - origin:.3f}"
                            "\t-\t-\n")

    def cleanup(self):
        if self.gateway and self.gateway.poll() is None:
            self.gateway.kill()
            self.gateway.wait(timeout=10)
        for child in self.children:
            child.stop()
        if self.gateway_log:
            self.gateway_log.close()
        if self.args.keep:
            log(f"kept {self.work} (config, gateway log, JWKS fetch log)")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def by_step(steps, failures):
    """`name` or `name (N × status)` for each reload step, by the step before each failure."""
    out = []
    for i, (at, name) in enumerate(steps):
        until = steps[i + 1][0] if i + 1 < len(steps) else float("inf")
        hits = collections.Counter(r.status for r in failures if at <= r.sent < until)
        out.append(name + (f" ({fmt_counter(hits)})" if hits else ""))
    return out


def fmt_counter(counter):
    return ", ".join(f"{k}: {n}" for k, n in sorted(counter.items(), key=str)) or "-"


def die_with_parent():
    """In the gateway child: SIGKILL when the soak dies (PR_SET_PDEATHSIG), so a killed soak
    leaves no gateway behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        role, port = sys.argv[2], int(sys.argv[3])
        serve(role, port, *sys.argv[4:7])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default=os.environ.get(
        "AUTHGATE_BIN", os.path.join(REPO, "target", "release", "authgate")),
        help="authgate binary (default $AUTHGATE_BIN, else target/release/authgate)")
    parser.add_argument("--rate", type=float, default=200, help="valid requests/s in total")
    parser.add_argument("--threads", type=int, default=8, help="valid-traffic connections")
    parser.add_argument("--bad-rate", type=float, default=10, help="bad-token requests/s")
    parser.add_argument("--baseline", type=float, default=10, help="phase 1 seconds")
    parser.add_argument("--reload-every", type=float, default=2, help="seconds per reload")
    parser.add_argument("--rotation-run", type=float, default=6, help="phase 4 seconds")
    parser.add_argument("--outage", type=float, default=3 * REFRESH_INTERVAL,
                        help="phase 5: seconds the IdP is down")
    parser.add_argument("--upstream-gap", type=float, default=2,
                        help="phase 6: seconds the upstream is down")
    parser.add_argument("--idp-latency", type=float, default=0.2,
                        help="seconds the JWKS server takes to answer")
    parser.add_argument("--worker-threads", type=int, default=0,
                        help="AUTHGATE_WORKER_THREADS for the gateway (default: its own)")
    parser.add_argument("--watchdog", type=float, default=600,
                        help="hard limit for the whole run, seconds")
    parser.add_argument("--out", help="also write the report to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if not os.access(args.bin, os.X_OK):
        print(f"soak: no executable authgate at {args.bin} (cargo build --release, or --bin)",
              file=sys.stderr)
        return 2
    if shutil.which("openssl") is None:
        print("soak: the openssl command is needed to make keys", file=sys.stderr)
        return 2

    soak = Soak(args)

    def watchdog():
        log(f"watchdog: {args.watchdog:g} s passed; stopping everything")
        try:
            soak.cleanup()
        finally:
            os._exit(3)

    timer = threading.Timer(args.watchdog + 30, watchdog)
    timer.daemon = True
    timer.start()
    started = time.monotonic()
    try:
        soak.setup()
        soak.run()
        report, ok = soak.report()
        if args.keep:
            soak.dump()
    except SoakError as error:
        log(f"soak could not run: {error}")
        if soak.gateway_log:
            soak.gateway_log.flush()
            with open(soak.log_path, "rb") as f:
                tail = f.read()[-3000:].decode(errors="replace")
            log(f"gateway log tail:\n{tail}")
        soak.args.keep = True
        soak.cleanup()
        return 2
    except BaseException:
        soak.cleanup()
        raise
    soak.cleanup()
    timer.cancel()
    report += f"\nTotal run time {time.monotonic() - started:.0f} s.\n"
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
