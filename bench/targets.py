"""The targets tables of summary.md: issue 17's "Done when" (instructions
per request against the bare ceilings, throughput against the ceilings and
the Go peer, the cost of request logs, memory and start-up), then the
standing targets of issue 10, each with what this run measured and PASS or
MISS. A target whose figures are missing from the run (a case left out) is
not listed."""
import statistics

from cases import GO_GOAL, IR_GOALS, PATHS, THROUGHPUT_GOALS, bare_instructions, bare_target, instructions
from formatting import mb, rate

CONNS = 64


class Table:
    def __init__(self):
        self.rows = []

    def add(self, name, measured, goal, met):
        self.rows.append(f"| {name} | {measured} | {goal} | {'PASS' if met else '**MISS**'} |")

    def ratio(self, name, mine, theirs, goal, minimum=None, maximum=None, unit="req/s"):
        if mine is None or not theirs:
            return
        r = mine / theirs
        if unit == "req/s":
            figures = f"{rate(mine)} vs {rate(theirs)} req/s"
        elif unit == "instructions":
            figures = f"{mine:,} vs {theirs:,} instructions"
        else:
            figures = f"{mine:.1f} vs {theirs:.1f} {unit}"
        met = (minimum is None or r >= minimum) and (maximum is None or r <= maximum)
        self.add(name, f"{r:.2f}× ({figures})", goal, met)

    def lines(self, title):
        return [title, "", "| target | measured | goal | |", "|---|---|---|---|", *self.rows, ""] if self.rows else []


def instruction_targets(t, res):
    for (target, name), (goal, what, ceiling) in IR_GOALS.items():
        t.ratio(f"Instructions per request, {what}: vs {ceiling}", instructions(res, target, name),
                bare_instructions(res, name), f"≤ {goal}×", maximum=goal, unit="instructions")


def throughput_targets(t, res):
    def med(group, target, name, key):
        return res.median(group, target, name, CONNS, key)

    for group, name, label in (("rest-h1", "status", "REST /service-a/status, HTTP/1.1"),
                               ("rest-h1", "healthcheck", "REST /service-a/healthcheck, HTTP/1.1"),
                               ("grpc", "GetStatus", "gRPC GetStatus"),
                               ("rest-h1", "other-status", "Two hops /service-a/other-status, HTTP/1.1"),
                               ("grpc", "GetPeerStatus", "Two hops GetPeerStatus")):
        goal = THROUGHPUT_GOALS[name]
        ceiling = {"rest-h1": "bare axum", "grpc": "bare tonic"}[group] if bare_target(name) == "ceiling" \
            else "the bare two-hop (tonic Channel)"
        t.ratio(f"{label}, {CONNS} conns: req/s vs {ceiling}", med(group, "service", name, "rps"),
                med(group, bare_target(name), name, "rps"), f"≥ {goal}×", minimum=goal)
        if group == "rest-h1" and name in ("status", "healthcheck"):
            t.ratio(f"REST {PATHS[name]}: CPU per request vs bare axum", med(group, "service", name, "cpu_us"),
                    med(group, "ceiling", name, "cpu_us"), "≤ 1.3×", maximum=1.3, unit="µs")
    for group, name, label in (("rest-h1", "status", "REST /service-a/status"),
                               ("rest-h1", "healthcheck", "REST /service-a/healthcheck"),
                               ("grpc", "GetStatus", "gRPC GetStatus"),
                               ("rest-h1", "other-status", "two hops /service-a/other-status"),
                               ("grpc", "GetPeerStatus", "two hops GetPeerStatus")):
        t.ratio(f"{label}, {CONNS} conns: req/s vs the Go peer", med(group, "service", name, "rps"),
                med(group, "go", name, "rps"), f"≥ {GO_GOAL}×", minimum=GO_GOAL)
    info, warn = (res.median("logging", x, "status", CONNS, "rps") for x in ("info", "warn"))
    if info and warn:
        cost = 1 - info / warn
        t.add("Request logs: REST throughput lost (info vs warn)", f"{cost:.1%} ({rate(info)} vs {rate(warn)} req/s)", "≤ 10%",
              cost <= 0.10)


def service_rss(res, phase):
    return next((x for x in res.of("rss") if x.get("server", "service") == "service" and x["phase"] == phase), None)


def startup_runs(res):
    return [r for r in res.of("startup") if r.get("server", "service") == "service"]


def footprint_targets(t, res):
    for phase, label, limit in (("idle", "Idle RSS, one service", 10), ("after_load", "RSS after the load", 25)):
        r = service_rss(res, phase)
        if r:
            t.add(label, f"{mb(r['rss_kb']):.1f} MB (anonymous {mb(r['anon_kb']):.1f} + file-backed {mb(r['file_kb']):.1f})",
                  f"≤ {limit} MB", mb(r["rss_kb"]) <= limit)
    size = next((x for x in res.of("size") if x.get("server", "service") == "service"), None)
    if size:
        t.add("Stripped release binary", f"{size['bytes'] / 1e6:.1f} MB", "≤ 15 MB", size["bytes"] / 1e6 <= 15)
    runs = startup_runs(res)
    if runs:
        serving = statistics.median(r["first_200_ms"] for r in runs)
        t.add("Start → SERVING (first 200 on /healthcheck)", f"{serving:.1f} ms", "≤ 250 ms", serving <= 250)


def standing_targets(t, res, many_conns):
    rss = {(r.get("server", "service"), r["phase"]): r["rss_kb"] for r in res.of("rss")}
    for phase, label in (("idle", "idle"), ("after_load", "after the load")):
        mine, go = rss.get(("service", phase)), rss.get(("go", phase))
        if mine and go:
            t.add(f"RSS {label}: service vs the Go peer", f"{mb(mine):.1f} vs {mb(go):.1f} MB", "lower", mine < go)
    at64, many = (res.median("many", "service", "status", c, "rps") for c in (64, many_conns))
    if at64 and many:
        t.add(f"{many_conns} connections: req/s vs 64 (REST /service-a/status)", f"{many / at64:.2f}× ({rate(many)} vs {rate(at64)})",
              "≥ 0.9×", many / at64 >= 0.9)
    probe = res.median("many-probe", "service", "healthcheck", 1, "p99_us")
    if probe is not None:
        t.add(f"/healthcheck p99 during the {many_conns}-connection load", f"{probe / 1000:.1f} ms", "< 100 ms", probe < 100_000)
    runs = startup_runs(res)
    if runs:
        first = statistics.median(r["first_answer_ms"] for r in runs)
        t.add("Start → first answer", f"{first:.1f} ms", "≤ 50 ms", first <= 50)
    soak = [r["rss_kb"] for r in sorted(res.of("soak"), key=lambda r: r["t"])]
    if len(soak) >= 2:
        third = max(1, len(soak) // 3)
        growth = statistics.mean(soak[-third:]) / statistics.mean(soak[:third]) - 1
        t.add("RSS over the soak", f"{'growing' if growth > 0.10 else 'flat'} ({growth:+.1%})", "flat", growth <= 0.10)
    after = service_rss(res, "after_load")
    if after:
        n = after["peer_connections_opened"]
        t.add("Peer calls share one HTTP/2 connection (connections opened during the load)", str(n), "1", n == 1)


def targets_table(res, many_conns):
    issue17, standing = Table(), Table()
    instruction_targets(issue17, res)
    throughput_targets(issue17, res)
    footprint_targets(issue17, res)
    standing_targets(standing, res, many_conns)
    quick = res.meta.get("mode") == "quick"
    note = ["A quick run's throughput figures come from 2 s runs on a shared machine: they show that the cases run,",
            "not how fast; the instruction counts are exact in every mode.", ""] if quick else []
    return (issue17.lines("## Targets (issue #17, \"Done when\"): this run's medians") + note
            + standing.lines("### Standing targets (issue #10)"))
