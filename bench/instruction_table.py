"""The instructions-per-request table of summary.md: every callgrind case
of the run (bench/instructions.sh) beside its bare ceiling, the ratio,
issue 17's goal for it and the committed budget (bench/budget.json)."""
from budget import budgets
from cases import IR_GOALS, PATHS, TWO_HOPS, bare_instructions
from formatting import ratio, times

LABELS = {
    "service": "`status-service serve`, logs on",
    "warn": "`status-service serve`, logs off (RUST_LOG=warn)",
    "ceiling": "bare ceiling (axum; tonic for GetStatus)",
    "two-hop-tonic": "bare two-hop (ceiling-two-hop over a tonic Channel → ceiling-tonic)",
    "ab-ours": "service-ab: our JsonLines + our line queue (what the service does)",
    "ab-fmt-json": "service-ab: tracing-subscriber's JSON formatter + our line queue",
    "ab-appender": "service-ab: our JsonLines + tracing-appender's lossy writer (same function as the line queue)",
}


def instructions_section(res):
    rows = res.of("instructions")
    if not rows:
        return []
    lines = [
        "### Instructions per request (callgrind: user space, deterministic)",
        "",
        "Each server under `valgrind --tool=callgrind` (bench/instructions.sh), answering N1 then N2 requests on one",
        "connection (h2load -c1 -m1; HTTP/1.1 for REST, h2c for gRPC); (instructions of the second run − the first) ÷",
        "(N2 − N1). It does not move with other work on the machine, but leaves out the kernel (socket I/O, thread",
        "wake-ups), which CPU time includes. A two-hop call counts both processes, each under callgrind: service-a",
        "and service-b (`serve`, one process each), or the bare two-hop front and ceiling-tonic behind it (the back's",
        "share in brackets). Goal: issue 17's, the most the ratio to the bare ceiling may be. Budget:",
        "bench/budget.json, the committed count the quick benchmark checks (it fails above budget + 10%).",
        "Allocations: calls into glibc's malloc, calloc and posix_memalign (where Rust's System allocator goes) in",
        "the same runs, per request (both processes for two hops).",
        "",
        "| server | path | instructions / request | vs its bare ceiling | goal | budget | allocations / request "
        "| reallocations / request |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    allowed = budgets()
    for r in rows:
        key = (r["target"], r["name"])
        label = LABELS.get(r["target"], r["target"])
        if r["name"] in TWO_HOPS and r["target"] in ("service", "warn"):
            label += ", service-a + service-b"
        back = f" ({r['back_per_request']:,})" if "back_per_request" in r else ""
        goal = IR_GOALS.get(key)
        budget = allowed.get(key)
        lines.append(f"| {label} | {PATHS.get(r['name'], r['name'])} | {r['per_request']:,}{back} "
                     f"| {times(ratio(r['per_request'], bare_instructions(res, r['name'])))} "
                     f"| {f'≤ {goal[0]}×' if goal else ''} | {f'{budget:,}' if budget else ''} "
                     f"| {r.get('allocations', '–')} | {r.get('reallocations', '–')} |")
    return lines + [""]
