"""The targets table of summary.md: issue #10's targets, each with what this
run measured and met / not met. A target whose figures are missing from
the run (a quick run, a case left out) is not listed."""
import statistics

REST_CONNS = 64


def _rate(rps):
    return f"{rps:,.0f}"


def _mb(kb):
    return kb * 1024 / 1e6


class Table:
    def __init__(self):
        self.rows = []

    def add(self, name, measured, goal, met):
        self.rows.append(f"| {name} | {measured} | {goal} | {'met' if met else '**not met**'} |")

    def ratio(self, name, mine, theirs, goal, minimum=None, maximum=None, unit="req/s"):
        if mine is None or not theirs:
            return
        r = mine / theirs
        figures = f"{_rate(mine)} vs {_rate(theirs)} {unit}" if unit == "req/s" else f"{mine:.1f} vs {theirs:.1f} {unit}"
        met = (minimum is None or r >= minimum) and (maximum is None or r <= maximum)
        self.add(name, f"{r:.2f}× ({figures})", goal, met)


def targets_table(res, many_conns):
    t = Table()
    med = res.median

    def rest(target, name, key, group="rest-h1"):
        return med(group, target, name, REST_CONNS, key)

    for name, path in (("status", "/service-a/status"), ("healthcheck", "/service-a/healthcheck")):
        t.ratio(f"REST {path}, HTTP/1.1, 64 conns: req/s vs bare axum", rest("service", name, "rps"),
                rest("ceiling", name, "rps"), "≥ 0.8×", minimum=0.8)
        t.ratio(f"REST {path}: CPU per request vs bare axum", rest("service", name, "cpu_us"),
                rest("ceiling", name, "cpu_us"), "≤ 1.3×", maximum=1.3, unit="µs")
    t.ratio("gRPC GetStatus, 64 conns: req/s vs bare tonic", rest("service", "GetStatus", "rps", "grpc"),
            rest("ceiling", "GetStatus", "rps", "grpc"), "≥ 0.9×", minimum=0.9)
    for group, name, label in (("rest-h1", "other-status", "/service-a/other-status, HTTP/1.1"),
                               ("grpc", "GetPeerStatus", "GetPeerStatus")):
        t.ratio(f"Two hops, {label}, 64 conns: req/s vs the bare two-hop (tonic Channel)",
                rest("service", name, "rps", group), rest("two-hop-tonic", name, "rps", group), "≥ 1.0×", minimum=1.0)
    for group, name, label, goal in (("rest-h1", "healthcheck", "REST /service-a/healthcheck", 2.0),
                                     ("rest-h1", "status", "REST /service-a/status", 2.0),
                                     ("rest-h1", "other-status", "two hops /service-a/other-status", 2.0),
                                     ("grpc", "GetPeerStatus", "two hops GetPeerStatus", 2.0),
                                     ("grpc", "GetStatus", "gRPC GetStatus", 1.5)):
        t.ratio(f"{label}, 64 conns: req/s vs the Go peer", rest("service", name, "rps", group),
                rest("go", name, "rps", group), f"≥ {goal}×", minimum=goal)
    rss = {(r.get("server", "service"), r["phase"]): r["rss_kb"] for r in res.of("rss")}
    for phase, label in (("idle", "idle"), ("after_load", "after the load")):
        mine, go = rss.get(("service", phase)), rss.get(("go", phase))
        if mine and go:
            t.add(f"RSS {label}: service vs the Go peer", f"{_mb(mine):.1f} vs {_mb(go):.1f} MB", "lower", mine < go)

    info, warn = (med("logging", x, "status", 64, "rps") for x in ("info", "warn"))
    if info and warn:
        cost = 1 - info / warn
        t.add("Request logs: REST throughput lost (info vs warn)", f"{cost:.1%} ({_rate(info)} vs {_rate(warn)} req/s)", "≤ 10%", cost <= 0.10)

    at64, many = (med("many", "service", "status", c, "rps") for c in (64, many_conns))
    if at64 and many:
        t.add(f"{many_conns} connections: req/s vs 64 (REST /service-a/status)", f"{many / at64:.2f}× ({_rate(many)} vs {_rate(at64)})",
              "≥ 0.9×", many / at64 >= 0.9)
    probe = med("many-probe", "service", "healthcheck", 1, "p99_us")
    if probe is not None:
        t.add(f"/healthcheck p99 during the {many_conns}-connection load", f"{probe / 1000:.1f} ms", "< 100 ms", probe < 100_000)

    runs = [r for r in res.of("startup") if r.get("server", "service") == "service"]
    if runs:
        first = statistics.median(r["first_answer_ms"] for r in runs)
        serving = statistics.median(r["first_200_ms"] for r in runs)
        t.add("Start → first answer", f"{first:.1f} ms", "≤ 50 ms", first <= 50)
        t.add("Start → SERVING (first 200 on /healthcheck)", f"{serving:.1f} ms", "≤ 250 ms", serving <= 250)

    for phase, label, limit in (("idle", "Idle RSS, one service", 10), ("after_load", "RSS after the load", 25)):
        r = next((x for x in res.of("rss") if x.get("server", "service") == "service" and x["phase"] == phase), None)
        if r:
            t.add(label, f"{_mb(r['rss_kb']):.1f} MB (anonymous {_mb(r['anon_kb']):.1f} + file-backed {_mb(r['file_kb']):.1f})",
                  f"≤ {limit} MB", _mb(r["rss_kb"]) <= limit)
    soak = [r["rss_kb"] for r in sorted(res.of("soak"), key=lambda r: r["t"])]
    if len(soak) >= 2:
        third = max(1, len(soak) // 3)
        growth = statistics.mean(soak[-third:]) / statistics.mean(soak[:third]) - 1
        t.add("RSS over the soak", f"{'growing' if growth > 0.10 else 'flat'} ({growth:+.1%})", "flat", growth <= 0.10)
    after = next((x for x in res.of("rss") if x.get("server", "service") == "service" and x["phase"] == "after_load"), None)
    if after:
        n = after["peer_connections_opened"]
        t.add("Peer calls share one HTTP/2 connection (connections opened during the load)", str(n), "1", n == 1)
    size = next((x for x in res.of("size") if x.get("server", "service") == "service"), None)
    if size:
        t.add("Stripped release binary", f"{size['bytes'] / 1e6:.1f} MB", "≤ 15 MB", size["bytes"] / 1e6 <= 15)

    return ["## Targets (issue #10), medians", "", "| target | measured | goal | |", "|---|---|---|---|", *t.rows, ""]
