#!/usr/bin/env python3
"""The parsing half of bench/run.sh: turns tool outputs into records (one
JSON object a line in raw/results.jsonl) and the records into summary.md
(summary.py writes it).

    report.py record RESULTS key=value...             append one record
    report.py wrk OUTPUT RESULTS key=value...         a wrk run (with wrk-report.lua)
    report.py h2load OUTPUT RESULTS LOG key=value...  an h2load run; LOG is its --log-file, or ""
    report.py summary DIR                             DIR/summary.md and DIR/chart.svg from DIR/raw/results.jsonl
    report.py check DIR                               exit 1 unless the instrument worked
    report.py callgrind FILE                          "<instructions> <allocations> <reallocations>" of a callgrind output
    report.py budget DIR BUDGET                       exit 1 when a case is over its instruction budget
    report.py budget-update DIR BUDGET                the run's instruction counts as the new budget
"""
import json
import math
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import budget  # noqa: E402
from chart import chart  # noqa: E402
from summary import Results, summary  # noqa: E402


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


ALLOCATORS = ("malloc", "calloc", "posix_memalign", "aligned_alloc", "memalign")


def callgrind_totals(path):
    """(instructions, allocations, reallocations) of one callgrind output:
    its total Ir, and the calls into glibc's allocation functions (the
    System allocator's), summed over every caller. Function names are
    compressed: `cfn=(12) malloc` the first time, `cfn=(12)` after."""
    names, callee, total = {}, None, 0
    calls = dict.fromkeys(ALLOCATORS + ("realloc",), 0)
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.startswith(("fn=", "cfn=")):
                ref = line.split("=", 1)[1].strip()
                if ref.startswith("("):
                    number, _, name = ref.partition(")")
                    name = name.strip()
                    if name:
                        names[number] = name
                    name = names.get(number, "")
                else:
                    name = ref
                if line.startswith("cfn="):
                    callee = name
            elif line.startswith("calls=") and callee in calls:
                calls[callee] += int(line[6:].split()[0])
            elif line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    return total, sum(calls[name] for name in ALLOCATORS), calls["realloc"]


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
                 + (f" ({c['grpc_message']})" if c.get("grpc_message") else "")
                 for c in res.of("grpc_check") if c["grpc_status"] != 0]
    problems += [f"WatchStatus: {s['open']} opened, {s['held']} held of {s['streams']}"
                 for s in res.of("streams") if not s["open"] == s["held"] == s["streams"]]
    for r in res.of("run"):
        if r["group"] not in ("many-probe", "soak") and "cpu_ticks" not in r:
            problems.append(f"no CPU time: {r['group']} {r['target']} {r['name']} at {r['conns']} conns")
    for kind in ("run", "rss", "startup", "size"):
        if not any(r.get("server", r.get("target")) == "go" for r in res.of(kind)):
            problems.append(f"no {kind} measurement of the Go peer")
    for kind in ("rss", "soak", "startup", "size", "grpc_check", "instructions"):
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
        res = load(args[0])
        picture = chart(res)
        if picture:
            (Path(args[0]) / "chart.svg").write_text(picture, encoding="utf-8")
        (Path(args[0]) / "summary.md").write_text(summary(res, image="chart.svg" if picture else None), encoding="utf-8")
    elif command == "check":
        problems = check(load(args[0]))
        for problem in problems:
            print(f"check: {problem}", file=sys.stderr)
        sys.exit(1 if problems else 0)
    elif command == "callgrind":
        print(*callgrind_totals(args[0]))
    elif command == "budget":
        lines, failed = budget.check(load(args[0]), args[1])
        print("\n".join(lines), file=sys.stderr if failed else sys.stdout)
        sys.exit(1 if failed else 0)
    elif command == "budget-update":
        res = load(args[0])
        print("\n".join(budget.update(res, args[1], res.meta.get("code", "not recorded"))))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(*sys.argv[1:])
