#!/usr/bin/env python3
"""The parsing half of bench/run.sh: turns tool outputs into records (one
JSON object a line in raw/results.jsonl) and the records into summary.md.

    report.py record RESULTS key=value...             append one record
    report.py wrk OUTPUT RESULTS key=value...         a wrk run (with wrk-report.lua)
    report.py h2load OUTPUT RESULTS LOG key=value...  an h2load run; LOG is its --log-file, or ""
    report.py summary DIR                             DIR/summary.md from DIR/raw/results.jsonl
    report.py check DIR                               exit 1 unless the instrument worked
"""
import json
import math
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

# What each service case is compared with: the same path on the ceiling, or,
# for the two-hop calls, the one-hop call of the ceiling on the same tool.
CEILING_OF = {"other-status": "status", "GetPeerStatus": "GetStatus"}
GROUPS = {
    "rest-h1": "REST over HTTP/1.1 (wrk): service vs bare axum",
    "rest-h2c": "REST over h2c (h2load): service vs bare axum",
    "grpc": "gRPC unary over h2c (h2load): service vs bare tonic",
}
# Throughput targets of issue #4 at 64 connections: (group, path, minimum
# ratio, the ceiling it is measured against).
RATIO_TARGETS = (
    ("rest-h1", "healthcheck", 0.9, "bare axum /service-a/healthcheck"),
    ("rest-h1", "status", 0.9, "bare axum /service-a/status"),
    ("grpc", "GetStatus", 0.8, "bare tonic GetStatus"),
    ("rest-h1", "other-status", 0.45, "bare axum /service-a/status"),
    ("grpc", "GetPeerStatus", 0.45, "bare tonic GetStatus"),
)
PATHS = {
    "healthcheck": "/service-a/healthcheck",
    "status": "/service-a/status",
    "other-status": "/service-a/other-status",
    "GetStatus": "GetStatus",
    "GetPeerStatus": "GetPeerStatus",
}


# --- records -------------------------------------------------------------------
def number(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def fields(pairs):
    return {key: number(value) for key, value in (pair.split("=", 1) for pair in pairs)}


def append(results, record):
    with open(results, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def parse_wrk(text):
    line = re.search(r"^BENCH (.*)$", text, re.M)
    if not line:
        sys.exit(f"report.py: no BENCH line in the wrk output:\n{text}")
    n = fields(line[1].split())
    return {
        "rps": n["requests"] / (n["duration_us"] / 1e6),
        "requests": n["requests"],
        "p50_us": n["p50_us"],
        "p99_us": n["p99_us"],
        "p999_us": n["p999_us"],
        # socket errors, HTTP statuses >= 400, timeouts
        "errors": sum(n[key] for key in ("connect", "read", "write", "status", "timeout")),
    }


def nearest_rank(ordered, percent):
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def parse_h2load(text, log):
    finished = re.search(r"^finished in [\d.]+s, ([\d.]+) req/s", text, re.M)
    requests = re.search(r"^requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, (\d+) failed", text, re.M)
    if not finished or not requests:
        sys.exit(f"report.py: unexpected h2load output:\n{text}")
    # h2load's "failed" counts non-2xx statuses, resets, socket errors, timeouts.
    record = {"rps": float(finished[1]), "requests": int(requests[1]), "errors": int(requests[2])}
    if log:  # tab-separated: start time, HTTP status, microseconds to the end of the response
        with open(log, encoding="utf-8") as lines:
            latencies = sorted(int(line.split("\t")[2]) for line in lines if line.strip())
        if latencies:
            for key, percent in (("p50_us", 50), ("p99_us", 99), ("p999_us", 99.9)):
                record[key] = nearest_rank(latencies, percent)
    return record


# --- summary ---------------------------------------------------------------------
def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ms(us):
    return "–" if us is None else f"{us / 1000:.3f}"


def rate(rps):
    return "–" if rps is None else f"{rps:,.0f}"


def ratio(a, b):
    return None if a is None or not b else a / b


def times(x):
    return "–" if x is None else f"{x:.2f}×"


def mb(kb):
    return None if kb is None else kb * 1024 / 1e6


class Results:
    def __init__(self, records):
        self.records = records
        self.meta = next(r for r in records if r["kind"] == "meta")
        self.cells = defaultdict(list)
        for r in self.of("run"):
            self.cells[(r["group"], r["target"], r["name"], r["conns"])].append(r)

    def of(self, kind):
        return [r for r in self.records if r["kind"] == kind]

    def median(self, group, target, name, conns, key):
        return median(r.get(key) for r in self.cells.get((group, target, name, conns), []))

    def errors(self, group, target, name, conns):
        runs = self.cells.get((group, target, name, conns))
        return None if runs is None else sum(r["errors"] for r in runs)

    def versus(self, group, name, conns, key, target="service", ceiling="ceiling"):
        """(service median, ceiling median, ratio) of `key` for one case."""
        mine = self.median(group, target, name, conns, key)
        theirs = self.median(group, ceiling, CEILING_OF.get(name, name), conns, key)
        return mine, theirs, ratio(mine, theirs)


def case_table(res, group):
    names = sorted({k[2] for k in res.cells if k[0] == group and k[1] == "service"}, key=list(PATHS).index)
    conns_list = sorted({k[3] for k in res.cells if k[0] == group})
    lines = [
        f"### {GROUPS[group]}",
        "",
        "| path | conns | req/s | ceiling req/s | **ratio** | p50 ms | p99 ms | p99.9 ms | ceiling p99 ms | p99 ratio | errors (service / ceiling) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name in names:
        for conns in conns_list:
            rps, ceiling_rps, rps_ratio = res.versus(group, name, conns, "rps")
            p99, ceiling_p99, p99_ratio = res.versus(group, name, conns, "p99_us")
            ceiling_errors = res.errors(group, "ceiling", CEILING_OF.get(name, name), conns)
            lines.append(
                f"| {PATHS[name]} | {conns} | {rate(rps)} | {rate(ceiling_rps)} | **{times(rps_ratio)}** "
                f"| {ms(res.median(group, 'service', name, conns, 'p50_us'))} | {ms(p99)} "
                f"| {ms(res.median(group, 'service', name, conns, 'p999_us'))} | {ms(ceiling_p99)} | {times(p99_ratio)} "
                f"| {res.errors(group, 'service', name, conns)} / {'–' if ceiling_errors is None else ceiling_errors} |"
            )
    if names and CEILING_OF.keys() & set(names):
        lines += ["", "Two-hop calls (" + ", ".join(PATHS[n] for n in names if n in CEILING_OF)
                  + ") are compared with the ceiling's one-hop call on the same tool."]
    return lines


def soak_verdict(samples):
    """'flat' or 'growing': mean RSS of the last third vs the first third."""
    if len(samples) < 2:
        return None, None
    third = max(1, len(samples) // 3)
    growth = statistics.mean(samples[-third:]) / statistics.mean(samples[:third]) - 1
    return growth, ("growing" if growth > 0.10 else "flat")


def summary(res):
    m = res.meta
    intro = [
        "# Benchmarks",
        "",
        f"`{m['command']}` ({m['mode']} mode: {m['reps']} × {m['seconds']} s per case, medians of the repetitions), {m['date']}.",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gb']} GiB, Linux {m['kernel']}; {m['rustc']}; {m['wrk']}, {m['h2load']}. "
        f"Code: {m.get('code', 'not recorded')}.",
        "",
        "The service and the bare ceilings (axum for REST, tonic for gRPC) ran in the same run, on the same load tool,",
        "interleaved (service, ceiling, service, ceiling...), on the same machine, which is shared with other work and",
        "with the load tool itself (nothing pinned). Absolute numbers say little here: **the ratios are the results.**",
        "The services are the local pair (`status-service local`, both in one process) with JSON request logs on",
        "(`LOG_FORMAT=json RUST_LOG=info`, stdout to /dev/null), as deployed. Latencies are per request, in ms;",
        "errors are totals over the repetitions (socket errors, timeouts, HTTP statuses ≥ 400); MB are 10^6 bytes.",
        "",
    ]
    out = []  # the cases
    targets = []

    def target(name, measured, goal, met):
        targets.append(f"| {name} | {measured} | {goal} | {'met' if met else '**not met**'} |")

    for group, what, minimum, against in RATIO_TARGETS:
        rps, ceiling_rps, r = res.versus(group, what, 64, "rps")
        if r is not None:
            target(f"{PATHS[what]}, {'gRPC' if group == 'grpc' else 'HTTP/1.1'}, 64 conns: req/s vs {against}",
                   f"{times(r)} ({rate(rps)} vs {rate(ceiling_rps)})", f"≥ {minimum}×", r >= minimum)
    for what in ("healthcheck", "status"):
        p99, ceiling_p99, r = res.versus("rest-h1", what, 64, "p99_us")
        if r is not None:
            target(f"{PATHS[what]}, HTTP/1.1, 64 conns: p99 vs the ceiling's",
                   f"{times(r)} ({ms(p99)} vs {ms(ceiling_p99)} ms)", "≤ 1.5×", r <= 1.5)

    for group in GROUPS:
        if any(k[0] == group for k in res.cells):
            out += case_table(res, group) + [""]

    logging = [r for r in res.of("run") if r["group"] == "logging"]
    if logging:
        info, warn, ceiling = (res.median("logging", t, "status", 64, "rps") for t in ("info", "warn", "ceiling"))
        out += [
            "### Request logging: /service-a/status, HTTP/1.1 (wrk), 64 connections",
            "",
            "Two `status-service serve` (service-a) side by side, one with `RUST_LOG=info` (one JSON line per request),",
            "one with `RUST_LOG=warn` (no request lines), and the axum ceiling, interleaved.",
            "",
            "| | req/s | vs ceiling | p50 ms | p99 ms | p99.9 ms | errors |",
            "|---|--:|--:|--:|--:|--:|--:|",
        ]
        for label, t, rps in (("logs on (info)", "info", info), ("logs off (warn)", "warn", warn), ("bare axum", "ceiling", ceiling)):
            out.append(
                f"| {label} | {rate(rps)} | {times(ratio(rps, ceiling))} | {ms(res.median('logging', t, 'status', 64, 'p50_us'))} "
                f"| {ms(res.median('logging', t, 'status', 64, 'p99_us'))} | {ms(res.median('logging', t, 'status', 64, 'p999_us'))} "
                f"| {res.errors('logging', t, 'status', 64)} |"
            )
        cost = None if ratio(info, warn) is None else 1 - ratio(info, warn)
        out += ["", f"Cost of the request logs: **{'–' if cost is None else f'{cost:.1%}'}** of the throughput (1 − info/warn).", ""]
        if cost is not None:
            target("JSON request logging: throughput lost (info vs warn)", f"{cost:.1%} ({rate(info)} vs {rate(warn)} req/s)", "≤ 10%", cost <= 0.10)

    rss = {r["phase"]: r for r in res.of("rss")}
    soak = [r["rss_kb"] for r in sorted(res.of("soak"), key=lambda r: r["t"])]
    growth, verdict = soak_verdict(soak)
    if rss:
        out += [
            "### Memory: one service (`status-service serve`, service-a, peer service-b in its own process)",
            "",
            "| | RSS MB | of which anonymous (heap, stacks) | of which file-backed (binary, libc) | peak so far (VmHWM) |",
            "|---|--:|--:|--:|--:|",
        ]
        for phase, label in (("idle", "idle (1 s after the first 200)"),
                             ("after_load", "after the load (every path at 256 connections, 1 s later)")):
            if phase in rss:
                r = rss[phase]
                out.append(f"| {label} | {mb(r['rss_kb']):.1f} | {mb(r['anon_kb']):.1f} | {mb(r['file_kb']):.1f} | {mb(r['hwm_kb']):.1f} |")
        out.append("")
        if soak:
            seconds = max(r["t"] for r in res.of("soak"))
            out += [f"Soak, {seconds} s of moderate load (REST 1000/s, REST two hops 250/s, gRPC 500/s), RSS MB every 5 s: "
                    + ", ".join(f"{mb(kb):.1f}" for kb in soak)
                    + (f" → **{verdict}** ({growth:+.1%}, last third vs first third; > 10% is growing)." if verdict else "."), ""]
        if "after_load" in rss:
            after = rss["after_load"]
            out += [f"TCP connections from service-a to its peer: {after['peer_connections_opened']} opened during the load "
                    f"(sampled every 0.5 s, TIME-WAIT included), {after['peer_connections_open']} open after it.", ""]
        def measured(r):
            return f"{mb(r['rss_kb']):.1f} MB (anonymous {mb(r['anon_kb']):.1f} + file-backed {mb(r['file_kb']):.1f})"
        if "idle" in rss:
            target("Idle RSS, one service", measured(rss["idle"]), "≤ 10 MB", mb(rss["idle"]["rss_kb"]) <= 10)
        if "after_load" in rss:
            target("RSS after the load", measured(rss["after_load"]), "≤ 25 MB", mb(rss["after_load"]["rss_kb"]) <= 25)
        if verdict:
            target(f"RSS over the {seconds} s soak", f"{verdict} ({growth:+.1%})", "flat", verdict == "flat")
        if "after_load" in rss:
            n = rss["after_load"]["peer_connections_opened"]
            target("Peer calls share one HTTP/2 connection (connections opened during the load)", str(n), "1", n == 1)

    streams = res.of("streams")
    if streams:
        out += ["### WatchStatus: concurrent streams held by one service (1 s interval, 100 streams per connection)", "",
                "| streams | opened | held to the end | service RSS MB while held |", "|--:|--:|--:|--:|"]
        for r in streams:
            out.append(f"| {r['streams']} | {r['open']} | {r['held']} | {mb(r['rss_kb']):.1f} |")
        out.append("")

    startup = res.of("startup")
    if startup:
        first = median(r["first_answer_ms"] for r in startup)
        healthy = median(r["first_200_ms"] for r in startup)
        out += ["### Start-up of `status-service serve` (process start → answer, polled every 0.5 ms)", "",
                f"Median of {len(startup)} runs: first answer (any status) **{first:.1f} ms**, first 200 on "
                f"/service-a/healthcheck **{healthy:.1f} ms** (runs: " + ", ".join(f"{r['first_200_ms']:.0f}" for r in startup) + " ms).", ""]
        target("Start → first healthy answer (200)", f"{healthy:.1f} ms (first answer {first:.1f} ms)", "≤ 50 ms", healthy <= 50)

    size = res.of("size")
    if size:
        size_mb = size[0]["bytes"] / 1e6
        out += [f"Stripped release binary `target/release/status-service`: **{size_mb:.1f} MB** ({size[0]['bytes']:,} bytes).", ""]
        target("Stripped release binary", f"{size_mb:.1f} MB", "≤ 15 MB", size_mb <= 15)

    checks = res.of("grpc_check")
    bad = [c for c in checks if c["grpc_status"] != 0]
    if checks:
        out += [f"grpc-status checked with curl after each gRPC case: {len(checks) - len(bad)} of {len(checks)} answered 0 (OK)"
                + (": " + ", ".join(f"{c['target']} {c['name']} at {c['conns']} conns → {c['grpc_status']}" for c in bad) if bad else ".")]

    head = ["## Targets (issue #4), medians", "", "| target | measured | goal | |", "|---|---|---|---|", *targets, ""]
    if logging:
        head += [f"With request logs off (`RUST_LOG=warn`), /service-a/status over HTTP/1.1 at 64 connections makes "
                 f"{times(ratio(warn, ceiling))} the ceiling's req/s (logs on: {times(ratio(info, ceiling))}; see the logging case).", ""]
    return "\n".join(intro + head + ["## Cases", ""] + out) + "\n"


def check(res):
    """Problems that mean the instrument did not work (not that it was slow)."""
    problems = []
    for r in res.of("run"):
        where = f"{r['group']} {r['target']} {r['name']} at {r['conns']} conns, rep {r['rep']}"
        if r["requests"] == 0:
            problems.append(f"no requests: {where}")
        if r["errors"]:
            problems.append(f"{r['errors']} errors: {where}")
    problems += [f"grpc-status {c['grpc_status']}: {c['target']} {c['name']} at {c['conns']} conns"
                 for c in res.of("grpc_check") if c["grpc_status"] != 0]
    problems += [f"WatchStatus: {s['open']} opened, {s['held']} held of {s['streams']}"
                 for s in res.of("streams") if not s["open"] == s["held"] == s["streams"]]
    for kind in ("rss", "soak", "startup", "size", "grpc_check"):
        if not res.of(kind):
            problems.append(f"no {kind} measurement")
    return problems


def load(directory):
    with open(Path(directory) / "raw" / "results.jsonl", encoding="utf-8") as lines:
        return Results([json.loads(line) for line in lines])


def main(command, *args):
    if command == "record":
        append(args[0], fields(args[1:]))
    elif command == "wrk":
        append(args[1], {"kind": "run", **fields(args[2:]), **parse_wrk(Path(args[0]).read_text())})
    elif command == "h2load":
        append(args[1], {"kind": "run", **fields(args[3:]), **parse_h2load(Path(args[0]).read_text(), args[2])})
    elif command == "summary":
        (Path(args[0]) / "summary.md").write_text(summary(load(args[0])), encoding="utf-8")
    elif command == "check":
        problems = check(load(args[0]))
        for problem in problems:
            print(f"check: {problem}", file=sys.stderr)
        sys.exit(1 if problems else 0)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(*sys.argv[1:])
