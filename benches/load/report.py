#!/usr/bin/env python3
"""Renders the load test's raw records (TSV written by run.sh) as a Markdown report.

Usage: report.py RUNS_TSV RSS_TSV META_FILE

RUNS_TSV columns: mode peer round requests seconds rps p50_us p99_us non2xx socket_errors
                  proxy_ticks upstream_ticks [gate_ticks]
                  (gate_ticks: for nginx-authz, the part of proxy_ticks spent by authgate)
RSS_TSV columns:  peer what kib connections_ok
                  (what: peak-<mode>, idle, held, after-1 or after-2; connections_ok: opened/answered)
A row with any non-2xx response or socket error is INVALID: its numbers are shown but marked,
and it is never the reference of a ratio.
Per peer and mode, req/s and latencies are the median over rounds; CPU per request is the
proxy's total CPU time over all rounds divided by all requests those rounds completed.
"""

import os
import statistics
import sys
from collections import defaultdict

PEERS = [
    ("direct", "(a) direct to upstream"),
    ("nginx", "(b) nginx proxy_pass, no auth"),
    ("haproxy", "(c) HAProxy, RS256 JWT"),
    ("authgate", "(d) authgate, JWT+scope+allowlist"),
    ("authgate-log", "(d') authgate, access log on (JSON, to a file)"),
    ("authgate-h2c", "(i) authgate, h2c upstream"),
    ("authgate-rl", "(f) authgate + local rate limit"),
    ("nginx-authz", "(e) nginx auth_request → authgate decision"),
    ("authgate-rl-exact", "(g) authgate + rate limit in Redis, exact (+ redis-server)"),
    ("authgate-rl-approx", "(h) authgate + rate limit in Redis, approximate (+ redis-server)"),
    ("nginx-2w", "(b2) nginx proxy_pass, 2 workers on 2 CPUs"),
    ("authgate-2w", "(d2) authgate, 2 workers on 2 CPUs"),
]
MODES = [
    ("one", "one token for every request"),
    ("many", "10,000 distinct tokens, rotating"),
]


def fmt_us(us: float) -> str:
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def ratio(a, b) -> str:
    return f"{a / b:.2f}×" if a and b else "—"


def main() -> None:
    runs_tsv, rss_tsv, meta = sys.argv[1:4]
    clk_tck = int(os.sysconf("SC_CLK_TCK"))
    runs = defaultdict(list)
    with open(runs_tsv) as f:
        for line in f:
            c = line.rstrip("\n").split("\t")
            runs[(c[0], c[1])].append({
                "requests": int(c[3]), "rps": float(c[5]), "p50": float(c[6]),
                "p99": float(c[7]), "non2xx": int(c[8]), "errors": int(c[9]),
                "proxy_ticks": int(c[10]), "upstream_ticks": int(c[11]),
                "gate_ticks": int(c[12]) if len(c) > 12 else 0,
            })
    peak = {}
    rss = defaultdict(dict)
    if os.path.exists(rss_tsv):
        with open(rss_tsv) as f:
            for line in f:
                peer, what, kib, conns = line.rstrip("\n").split("\t")
                if what.startswith("peak-"):
                    peak[(peer, what[len("peak-"):])] = int(kib)
                else:
                    rss[peer][what] = (int(kib), conns)

    out = []
    with open(meta) as f:
        out.append(f.read().rstrip())
    out.append("")
    for mode, title in MODES:
        summary = {}
        for peer, _ in PEERS:
            rows = runs.get((mode, peer))
            if not rows:
                continue
            requests = sum(r["requests"] for r in rows)
            summary[peer] = {
                "rps": statistics.median(r["rps"] for r in rows),
                "p50": statistics.median(r["p50"] for r in rows),
                "p99": statistics.median(r["p99"] for r in rows),
                "cpu": (sum(r["proxy_ticks"] for r in rows) * 1e6 / clk_tck / requests
                        if requests and peer != "direct" else None),
                "up_cpu": (sum(r["upstream_ticks"] for r in rows) * 1e6 / clk_tck / requests
                           if requests else None),
                "bad": sum(r["non2xx"] + r["errors"] for r in rows),
                "rounds": len(rows),
                "gate_cpu": (sum(r["gate_ticks"] for r in rows) * 1e6 / clk_tck / requests
                             if requests else None),
                "proxy_ticks": sum(r["proxy_ticks"] for r in rows),
                "requests": requests,
            }
        if not summary:
            continue
        out.append(f"### Mode: {title}")
        out.append("")
        out.append("| peer | req/s | p50 | p99 | proxy CPU µs/req | upstream CPU µs/req "
                   "| peak RSS | req/s vs nginx | req/s vs HAProxy | CPU/req vs nginx "
                   "| CPU/req vs HAProxy | non-2xx+errors |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        valid = {peer: s for peer, s in summary.items() if s["bad"] == 0}
        ng, hp = valid.get("nginx", {}), valid.get("haproxy", {})
        for peer, label in PEERS:
            s = summary.get(peer)
            if not s:
                continue
            cpu = f"{s['cpu']:.1f}" if s["cpu"] is not None else "—"
            up = f"{s['up_cpu']:.1f}" if s["up_cpu"] is not None else "—"
            mib = f"{peak[(peer, mode)] / 1024:.1f} MiB" if (peer, mode) in peak else "—"
            if s["bad"]:
                # Failures are cheap and fast: such a row says nothing about the proxy.
                out.append(
                    f"| **INVALID** {label} | {s['rps']:,.0f} | {fmt_us(s['p50'])} "
                    f"| {fmt_us(s['p99'])} | {cpu} | {up} | {mib} | INVALID | INVALID "
                    f"| INVALID | INVALID | **{s['bad']}** |")
                continue
            out.append(
                f"| {label} | {s['rps']:,.0f} | {fmt_us(s['p50'])} | {fmt_us(s['p99'])} "
                f"| {cpu} | {up} | {mib} "
                f"| {ratio(s['rps'], ng.get('rps'))} | {ratio(s['rps'], hp.get('rps'))} "
                f"| {ratio(s['cpu'], ng.get('cpu'))} | {ratio(s['cpu'], hp.get('cpu'))} "
                f"| {s['bad']} |")
        out.append("")
        lg, ag0 = valid.get("authgate-log"), valid.get("authgate")
        if lg and ag0 and lg["cpu"] and ag0["cpu"]:
            out.append(f"Access log on, (d') minus (d): {lg['cpu'] - ag0['cpu']:+.2f} µs/req "
                       f"({lg['cpu'] / ag0['cpu']:.2f}×).")
            out.append("")
        curve = [(p, valid.get(p)) for p in ("nginx", "nginx-2w", "authgate", "authgate-2w")]
        if all(s for _, s in curve):
            out.append("Throughput curve, 1 → 2 worker CPUs (req/s, CPU µs/req): " + "; ".join(
                f"{p} {s['rps']:,.0f}, {s['cpu']:.1f}" for p, s in curve) + ".")
            out.append("")
        az = summary.get("nginx-authz")
        if az and az["cpu"]:
            gate, total = az["gate_cpu"], az["cpu"]
            out.append("CPU split of (e), nginx plus authgate's decision listener: "
                       f"{total:.1f} µs/req in all, authgate {gate:.1f} µs/req "
                       f"({gate / total:.0%}), nginx {total - gate:.1f} µs/req "
                       f"({(total - gate) / total:.0%}).")
            out.append("")
        rl, ag = summary.get("authgate-rl"), summary.get("authgate")
        if rl and ag and rl["cpu"] and ag["cpu"]:
            tick_us = 1e6 / clk_tck
            res = tick_us / rl["requests"] + tick_us / ag["requests"]
            out.append(f"Local rate-limit policy, (f) minus (d): {rl['cpu'] - ag['cpu']:+.2f} "
                       f"µs/req (tick resolution alone ±{res:.2f} µs/req; run-to-run noise "
                       "is larger).")
            out.append("")
        for peer, mode_name in (("authgate-rl-exact", "exact"), ("authgate-rl-approx", "approximate")):
            rd = summary.get(peer)
            if rd and rd["cpu"] and ag and ag["cpu"]:
                gate = rd["gate_cpu"]
                out.append(f"Rate limit in Redis, {mode_name} mode: {rd['cpu']:.1f} µs/req with "
                           f"redis-server (authgate {gate:.1f}, redis-server "
                           f"{rd['cpu'] - gate:.1f}); authgate alone minus (d): "
                           f"{gate - ag['cpu']:+.2f} µs/req.")
                out.append("")
    if rss:
        out.append("### Memory: idle and holding idle keep-alive connections")
        out.append("")
        out.append("| peer | RSS idle | RSS holding connections | connections open / answered 2xx "
                   "| per connection | RSS after the spike closed | after a second spike |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for peer, label in PEERS:
            if peer not in rss or "idle" not in rss[peer] or "held" not in rss[peer]:
                continue
            idle, _ = rss[peer]["idle"]
            held, conns = rss[peer]["held"]
            # Per answered connection: one that never got its response may hold nothing
            # (refused, reset), and dividing by it would flatter the figure.
            parts = conns.split("/")
            answered = int(parts[-1]) if parts[-1].isdigit() else 0
            per = f"{(held - idle) * 1024 / answered / 1024:.1f} KiB" if answered else "—"
            # (peer nginx-authz: nginx and its authgate together)
            afters = []
            for key in ("after-1", "after-2"):
                if key in rss[peer]:
                    after, _ = rss[peer][key]
                    afters.append(f"{after / 1024:.1f} MiB ({after / idle:.2f}× idle)")
                else:
                    afters.append("—")
            out.append(f"| {label} | {idle / 1024:.1f} MiB | {held / 1024:.1f} MiB "
                       f"| {conns} | {per} | {afters[0]} | {afters[1]} |")
        out.append("")
    out.append("p50/p99: median over rounds of wrk's latency percentiles. CPU µs/req: "
               "utime+stime of all the peer's processes over all rounds, divided by the "
               "requests completed. Peak RSS: VmHWM summed over the peer's processes, reset "
               "before each mode, so it is that mode's peak. Memory per connection: held "
               "minus idle RSS, divided by the connections that were answered 2xx. After a "
               "spike: RSS some seconds after the held connections closed (SPIKE_SETTLE), "
               "then again after a second spike of as many connections. Rows "
               "marked INVALID had non-2xx responses or socket errors. Ratios: req/s ratio (higher is better), CPU ratio (lower is "
               "better).")
    print("\n".join(out))


if __name__ == "__main__":
    main()
