"""summary.md from the records of one run (report.py's `summary`): the
targets table first, then every case. Medians over the repetitions; CPU per
request is the server processes' user + system time over a run divided by
the requests it completed."""
import statistics
from collections import defaultdict
from pathlib import Path

from cases import PATHS, TWO_HOPS, bare_target, instructions
from formatting import mb, median, micros, ms, rate, ratio, times
from instruction_table import instructions_section
from targets import targets_table

GROUPS = {
    "rest-h1": ("REST over HTTP/1.1 (wrk)", "bare axum"),
    "rest-h2c": ("REST over h2c (h2load)", "bare axum"),
    "grpc": ("gRPC unary over h2c (h2load)", "bare tonic"),
}
# The one-hop call of the bare one-hop ceiling on the same tool, beside a two-hop call.
ONE_HOP = {"other-status": "status", "GetPeerStatus": "GetStatus"}


# --- the records ---------------------------------------------------------------------
class Results:
    def __init__(self, records):
        self.records = records
        self.meta = next(r for r in records if r["kind"] == "meta")
        clk_tck = self.meta.get("clk_tck", 100)
        self.cells = defaultdict(list)
        for r in self.of("run"):
            if "cpu_ticks" in r and r["requests"]:
                r["cpu_us"] = r["cpu_ticks"] / clk_tck * 1e6 / r["requests"]
            self.cells[(r["group"], r["target"], r["name"], r["conns"])].append(r)

    def of(self, kind):
        return [r for r in self.records if r["kind"] == kind]

    def has(self, group, target=None):
        return any(k[0] == group and target in (None, k[1]) for k in self.cells)

    def median(self, group, target, name, conns, key):
        return median(r.get(key) for r in self.cells.get((group, target, name, conns), []))

    def errors(self, group, target, name, conns):
        runs = self.cells.get((group, target, name, conns))
        return None if runs is None else sum(r["errors"] for r in runs)

    def bare(self, group, name, conns, key):
        """The bare ceiling's median for a case: the one-hop ceiling, or
        for two-hop calls the bare two-hop over a tonic Channel."""
        return self.median(group, bare_target(name), name, conns, key)

    def names(self, group):
        return sorted({k[2] for k in self.cells if k[0] == group and k[1] == "service"}, key=list(PATHS).index)

    def conns(self, group):
        return sorted({k[3] for k in self.cells if k[0] == group})


def errors_text(*counts):
    return " / ".join("–" if c is None else str(c) for c in counts)


# --- the cases -------------------------------------------------------------------------
def case_table(res, group):
    title, bare_name = GROUPS[group]
    go = res.has(group, "go")
    head = ["path", "conns", "req/s", "bare req/s", "**× bare**"]
    head += ["Go req/s", "**× Go**"] if go else []
    head += ["CPU µs/req", "bare CPU µs/req", "**CPU × bare**"] + (["Go CPU µs/req"] if go else [])
    head += ["p50 ms", "p99 ms", "p99.9 ms", "bare p99 ms"] + (["Go p99 ms"] if go else [])
    head += ["errors (service / bare" + (" / Go)" if go else ")")]
    lines = [f"### {title}: service vs {bare_name}" + (" and the Go peer" if go else ""), "",
             "| " + " | ".join(head) + " |", "|---|" + "--:|" * (len(head) - 1)]
    for name in res.names(group):
        for conns in res.conns(group):
            m = lambda target, key: res.median(group, target, name, conns, key)  # noqa: E731
            rps, bare_rps, go_rps = m("service", "rps"), res.bare(group, name, conns, "rps"), m("go", "rps")
            cpu, bare_cpu = m("service", "cpu_us"), res.bare(group, name, conns, "cpu_us")
            cells = [PATHS[name], str(conns), rate(rps), rate(bare_rps), f"**{times(ratio(rps, bare_rps))}**"]
            cells += [rate(go_rps), f"**{times(ratio(rps, go_rps))}**"] if go else []
            cells += [micros(cpu), micros(bare_cpu), f"**{times(ratio(cpu, bare_cpu))}**"]
            cells += [micros(m("go", "cpu_us"))] if go else []
            cells += [ms(m("service", "p50_us")), ms(m("service", "p99_us")), ms(m("service", "p999_us")),
                      ms(res.bare(group, name, conns, "p99_us"))] + ([ms(m("go", "p99_us"))] if go else [])
            counts = [res.errors(group, "service", name, conns), res.errors(group, bare_target(name), name, conns)]
            cells.append(errors_text(*counts, *([res.errors(group, "go", name, conns)] if go else [])))
            lines.append("| " + " | ".join(cells) + " |")
    if set(res.names(group)) & set(TWO_HOPS):
        lines += ["", "Two-hop calls are compared with the bare two-hop ceiling over a tonic `Channel` "
                  "(see the two-hop table for the hyper variant)."]
    return lines + [""]


def two_hop_table(res):
    rows = [(g, n) for g in GROUPS for n in TWO_HOPS if n in res.names(g)]
    if not rows:
        return []
    lines = [
        "### Two hops: the service vs the bare two-hop ceilings",
        "",
        "Bare two-hop: axum (REST) or tonic (gRPC) front → one tonic client → bare tonic `GetStatus` (the ceiling's),",
        "no logs, ids, deadlines or limits; over a lazy tonic `Channel` (its buffer task in front of one HTTP/2",
        "connection) or over hyper's HTTP/2 `SendRequest` directly. CPU is both processes' (front and back), the",
        "service's too: service-a and service-b, one `serve` process each, as on ECS.",
        "",
        "| call | conns | service req/s | bare, Channel | **× it** | bare, hyper h2 | **× it** | bare one hop | Channel two-hop ÷ one hop "
        "| CPU µs/req service | Channel | hyper | errors (service / Channel / hyper) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for group, name in rows:
        for conns in res.conns(group):
            m = lambda target, key, n=name: res.median(group, target, n, conns, key)  # noqa: E731
            rps, tonic, hyper = m("service", "rps"), m("two-hop-tonic", "rps"), m("two-hop-hyper", "rps")
            one_hop = m("ceiling", "rps", ONE_HOP[name])
            lines.append(
                f"| {GROUPS[group][0].split(' (')[0]} {PATHS[name]} | {conns} | {rate(rps)} | {rate(tonic)} | **{times(ratio(rps, tonic))}** "
                f"| {rate(hyper)} | **{times(ratio(rps, hyper))}** | {rate(one_hop)} | {times(ratio(tonic, one_hop))} "
                f"| {micros(m('service', 'cpu_us'))} | {micros(m('two-hop-tonic', 'cpu_us'))} | {micros(m('two-hop-hyper', 'cpu_us'))} "
                f"| {errors_text(*(res.errors(group, t, name, conns) for t in ('service', 'two-hop-tonic', 'two-hop-hyper')))} |")
    return lines + [""]


def many_table(res, many_conns):
    if not res.has("many"):
        return []
    lines = [
        f"### Many connections: /service-a/status at 64 and {many_conns} connections (wrk), /healthcheck probed meanwhile",
        "",
        f"Each server at 64 connections, then at {many_conns} while a probe on a connection of its own asks",
        "/service-a/healthcheck 100 times a second (h2load, HTTP/1.1).",
        "",
        f"| server | req/s at 64 | req/s at {many_conns} | **{many_conns} ÷ 64** | CPU µs/req at {many_conns} | p99 ms at {many_conns} "
        "| probe p50 ms | **probe p99 ms** | probe requests | errors (load / probe) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for target, label in (("service", "service"), ("ceiling", "bare axum"), ("go", "Go peer")):
        if not res.has("many", target):
            continue
        at64, many = (res.median("many", target, "status", c, "rps") for c in (64, many_conns))
        probe = lambda key: res.median("many-probe", target, "healthcheck", 1, key)  # noqa: E731
        lines.append(
            f"| {label} | {rate(at64)} | {rate(many)} | **{times(ratio(many, at64))}** "
            f"| {micros(res.median('many', target, 'status', many_conns, 'cpu_us'))} "
            f"| {ms(res.median('many', target, 'status', many_conns, 'p99_us'))} | {ms(probe('p50_us'))} | **{ms(probe('p99_us'))}** "
            f"| {rate(probe('requests'))} "
            f"| {errors_text(res.errors('many', target, 'status', many_conns), res.errors('many-probe', target, 'healthcheck', 1))} |")
    return lines + [""]


AB_VARIANTS = (
    ("info", "`status-service serve`, logs on (RUST_LOG=info)"),
    ("warn", "`status-service serve`, logs off (RUST_LOG=warn)"),
    ("ab-ours", "service-ab: our JsonLines + our line queue (control: what the service does)"),
    ("ab-fmt-json", "service-ab: tracing-subscriber's JSON formatter + the same writer"),
    ("ab-appender", "service-ab: our JsonLines + tracing-appender's lossy writer, buffered (the same function)"),
    ("emf-1s", "`status-service serve`, EMF lines written every second (EMF_INTERVAL=1s)"),
    ("emf-off", "`status-service serve`, EMF writing off (EMF_INTERVAL=0s)"),
    ("ceiling", "bare axum"),
)
# (variant, its control, what the comparison decides)
AB_PAIRS = (
    ("info", "warn", "request logs (one JSON line per request)"),
    ("ab-fmt-json", "ab-ours", "tracing-subscriber's JSON formatter instead of our JsonLines"),
    ("ab-appender", "ab-ours", "tracing-appender's non-blocking writer instead of our line queue"),
    ("emf-1s", "emf-off", "EMF writing every second (recording is on in both)"),
)


def ab_verdicts(res):
    """(text, library_wins) per A/B pair, from the medians."""
    out = []
    for variant, control, what in AB_PAIRS:
        m = lambda t, key: res.median("logging", t, "status", 64, key)  # noqa: E731
        rps, base_rps, cpu, base_cpu = m(variant, "rps"), m(control, "rps"), m(variant, "cpu_us"), m(control, "cpu_us")
        if None in (rps, base_rps, cpu, base_cpu):
            continue
        out.append((variant, what, rps / base_rps - 1, cpu - base_cpu, cpu, base_cpu))
    return out


def logging_table(res):
    if not res.has("logging"):
        return []
    lines = [
        "### A/B: request logs, log pipelines and EMF: /service-a/status, HTTP/1.1 (wrk), 64 connections",
        "",
        "Each variant is a `serve` of service-a of its own, run interleaved with the others and the axum ceiling.",
        "`service-ab` (bench/src/bin/service-ab.rs) is the service's own library and app with another log",
        "pipeline installed; production code has no switch for it.",
        "",
        "| variant | req/s | vs ceiling | CPU µs/req | p50 ms | p99 ms | p99.9 ms | errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    ceiling = res.median("logging", "ceiling", "status", 64, "rps")
    for t, label in AB_VARIANTS:
        if not res.has("logging", t):
            continue
        m = lambda key: res.median("logging", t, "status", 64, key)  # noqa: E731
        lines.append(f"| {label} | {rate(m('rps'))} | {times(ratio(m('rps'), ceiling))} | {micros(m('cpu_us'))} "
                     f"| {ms(m('p50_us'))} | {ms(m('p99_us'))} | {ms(m('p999_us'))} | {res.errors('logging', t, 'status', 64)} |")
    lines += ["", "| change | req/s | CPU per request | instructions per request | |", "|---|--:|--:|--:|---|"]
    controls = {variant: control for variant, control, _ in AB_PAIRS}
    for variant, what, rps_change, cpu_change, cpu, base_cpu in ab_verdicts(res):
        ir, base_ir = instructions(res, variant, "status"), instructions(res, controls[variant], "status")
        ir_text = "–" if ir is None or base_ir is None else f"{ir - base_ir:+,} ({ir:,} vs {base_ir:,})"
        if variant in ("ab-fmt-json", "ab-appender"):
            # The library (the variant) against ours (the control): ours
            # stays only when clearly cheaper: 5% less CPU per request,
            # or 5% fewer instructions (user-space work).
            cheaper = base_cpu <= 0.95 * cpu or (ir and base_ir and base_ir <= 0.95 * ir)
            verdict = "ours is clearly cheaper: kept" if cheaper else "no clear saving from ours: the library should replace it"
        else:
            verdict = "its cost"
        lines.append(f"| {what} | {rps_change:+.1%} | {cpu_change:+.1f} µs ({cpu:.1f} vs {base_cpu:.1f}) | {ir_text} | {verdict} |")
    return lines + [""]


def soak_verdict(samples):
    """(growth, 'flat' or 'growing'): mean RSS of the last third vs the first third."""
    if len(samples) < 2:
        return None, None
    third = max(1, len(samples) // 3)
    growth = statistics.mean(samples[-third:]) / statistics.mean(samples[:third]) - 1
    return growth, ("growing" if growth > 0.10 else "flat")


def memory_section(res):
    rss = {(r.get("server", "service"), r["phase"]): r for r in res.of("rss")}
    if not rss:
        return []
    lines = [
        "### Memory: one service alone (service-a, its peer in another process)",
        "",
        "| server | | RSS MB | of which anonymous (heap, stacks) | of which file-backed (binary, libc) | peak so far (VmHWM) |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for server, label in (("service", "`status-service serve`"), ("go", "Go peer")):
        for phase, what in (("idle", "idle (1 s after the first 200)"),
                            ("after_load", "after the load (every path at 256 connections, 1 s later)")):
            r = rss.get((server, phase))
            if r:
                lines.append(f"| {label} | {what} | {mb(r['rss_kb']):.1f} | {mb(r['anon_kb']):.1f} | {mb(r['file_kb']):.1f} | {mb(r['hwm_kb']):.1f} |")
    lines.append("")
    soak = [r["rss_kb"] for r in sorted(res.of("soak"), key=lambda r: r["t"])]
    growth, verdict = soak_verdict(soak)
    if soak:
        seconds = max(r["t"] for r in res.of("soak"))
        lines += [f"Soak of the service, {seconds} s of moderate load (REST 1000/s, REST two hops 250/s, gRPC 500/s), RSS MB every 5 s: "
                  + ", ".join(f"{mb(kb):.1f}" for kb in soak)
                  + (f" → **{verdict}** ({growth:+.1%}, last third vs first third; > 10% is growing)." if verdict else "."), ""]
    after = rss.get(("service", "after_load"))
    if after:
        lines += [f"TCP connections from service-a to its peer: {after['peer_connections_opened']} opened during the load "
                  f"(sampled every 0.5 s, TIME-WAIT included), {after['peer_connections_open']} open after it.", ""]
    return lines


def streams_section(res):
    streams = res.of("streams")
    if not streams:
        return []
    lines = ["### WatchStatus: concurrent streams held by one service (1 s interval, 100 streams per connection)", "",
             "| streams | opened | held to the end | service RSS MB while held |", "|--:|--:|--:|--:|"]
    lines += [f"| {r['streams']} | {r['open']} | {r['held']} | {mb(r['rss_kb']):.1f} |" for r in streams]
    return lines + [""]


def startup_section(res):
    lines = []
    for server, label in (("service", "`status-service serve`"), ("go", "the Go peer")):
        runs = [r for r in res.of("startup") if r.get("server", "service") == server]
        if not runs:
            continue
        first = median(r["first_answer_ms"] for r in runs)
        serving = median(r["first_200_ms"] for r in runs)
        lines += [f"Start-up of {label} (process start → answer on /service-a/healthcheck, polled every 0.5 ms), median of "
                  f"{len(runs)} runs: first answer (any status) **{first:.1f} ms**, SERVING (first 200) **{serving:.1f} ms** "
                  "(runs: " + ", ".join(f"{r['first_200_ms']:.0f}" for r in runs) + " ms).", ""]
    for r in res.of("size"):
        label = "Go peer binary (`-ldflags=-s -w`)" if r.get("server") == "go" else "Stripped release binary `target/release/status-service`"
        lines += [f"{label}: **{r['bytes'] / 1e6:.1f} MB** ({r['bytes']:,} bytes).", ""]
    return (["### Start-up and size", ""] + lines) if lines else []


def summary(res, extra_sections=(), image=None):
    m = res.meta
    many_conns = max((k[3] for k in res.cells if k[0] == "many"), default=1024)
    end_load = next((r["load"] for r in res.of("load") if r.get("phase") == "end"), None)
    intro = [
        "# Benchmarks",
        "",
        f"`{m['command']}` ({m['mode']} mode: {m['reps']} × {m['seconds']} s per case, medians of the repetitions), {m['date']}.",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gb']} GiB, Linux {m['kernel']}; {m['rustc']}; {m['wrk']}, {m['h2load']}"
        + (f"; {m['go']}" if m.get("go") else "") + f". Code: {m.get('code', 'not recorded')}.",
        f"Load average (1, 5, 15 min) when the measurements started: {m.get('load_at_start', 'not recorded')}"
        + (f"; at the end: {end_load}" if end_load else "") + ".",
        "",
        "Every server ran in the same run, on the same load tool, interleaved (service, ceilings, Go peer, service...),",
        "on the same machine, which is shared with the load tool itself (nothing pinned). Absolute numbers say little",
        "here: **the ratios are the results.** The services run with JSON request logs on (`LOG_FORMAT=json",
        "RUST_LOG=info`, stdout to /dev/null), as deployed: one-hop cases against the local pair (`status-service",
        "local`), two-hop cases against service-a and service-b as one `serve` process each (as on ECS, and as the",
        "bare two-hop and the Go peer run). CPU µs/req is the user + system CPU time of the server processes over a",
        "run (from /proc/PID/stat; for two hops both processes) divided by the requests completed: on a shared",
        "2-core host it is steadier than req/s. Latencies are per request, in ms; errors are totals over the",
        "repetitions (socket errors, timeouts, HTTP statuses ≥ 400); MB are 10^6 bytes.",
        "",
    ]
    cases = []
    for group in GROUPS:
        if res.has(group):
            cases += case_table(res, group)
    cases += two_hop_table(res) + many_table(res, many_conns) + logging_table(res)
    for section in extra_sections:
        cases += section(res)
    cases += instructions_section(res) + memory_section(res) + streams_section(res) + startup_section(res)
    checks = res.of("grpc_check")
    bad = [c for c in checks if c["grpc_status"] != 0]
    if checks:
        cases += [f"grpc-status checked with curl after each gRPC case: {len(checks) - len(bad)} of {len(checks)} answered 0 (OK)"
                  + (": " + ", ".join(f"{c['target']} {c['name']} at {c['conns']} conns → {c['grpc_status']}"
                                 + (f" ({c['grpc_message']})" if c.get("grpc_message") else "") for c in bad) if bad else ".")]
    # What the profiles say about the targets not met, written by hand
    # beside this script (bench/findings.md), quoted as it was at the run.
    findings = Path(__file__).resolve().parent / "findings.md"
    notes = findings.read_text(encoding="utf-8").splitlines() + [""] if findings.exists() else []
    picture = [f"![Every case's ratio to its bare ceiling and to the Go peer, and instructions per request against the ceilings]({image})",
               "", f"The chart ({image}) is drawn by bench/chart.py from this run's records.", ""] if image else []
    return "\n".join(intro + targets_table(res, many_conns) + picture + notes + ["## Cases", ""] + cases) + "\n"
