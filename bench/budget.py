"""The instruction budget: instructions per request of the service on the
budget cases (callgrind, bench/instructions.sh) against the committed counts
in bench/budget.json. Instruction counts are deterministic, so a case over
its budget by more than the file's tolerance is a regression, not noise.

report.py `budget DIR BUDGET` checks a run; `budget-update DIR BUDGET`
writes the run's figures as the new budget (a deliberate step: commit it
with the change that moved them)."""
import json
from pathlib import Path

# The cases, by their name in bench/budget.json: (target, name) of their
# records, and what each measures.
CASES = {
    "status": (("service", "status"), "/service-a/status, HTTP/1.1, JSON request logs on"),
    "status-logs-off": (("warn", "status"), "/service-a/status, HTTP/1.1, request logs off (RUST_LOG=warn)"),
    "healthcheck": (("service", "healthcheck"), "/service-a/healthcheck, HTTP/1.1, JSON request logs on"),
    "GetStatus": (("service", "GetStatus"), "gRPC GetStatus, h2c, JSON request logs on"),
    "other-status": (("service", "other-status"),
                     "/service-a/other-status, HTTP/1.1, two hops: service-a and service-b, both processes, logs on"),
    "GetPeerStatus": (("service", "GetPeerStatus"),
                      "gRPC GetPeerStatus, h2c, two hops: service-a and service-b, both processes, logs on"),
}
TOLERANCE = 0.10


def measured(res):
    """{case: instructions per request} of the service in this run."""
    figures = {(r["target"], r["name"]): r["per_request"] for r in res.of("instructions")}
    return {case: figures[key] for case, (key, _) in CASES.items() if key in figures}


def budgets():
    """{(target, name): budgeted instructions} of the committed budget (for the summary's table)."""
    budget_file = Path(__file__).resolve().parent / "budget.json"
    if not budget_file.exists():
        return {}
    cases = json.loads(budget_file.read_text(encoding="utf-8"))["cases"]
    return {CASES[case][0]: entry["instructions"] for case, entry in cases.items() if case in CASES}


def check(res, budget_file):
    """(lines to print, failed): each budget case against its budget."""
    budget = json.loads(Path(budget_file).read_text(encoding="utf-8"))
    tolerance = budget.get("tolerance", TOLERANCE)
    figures = measured(res)
    lines, failed = [], False
    for name, (_, label) in CASES.items():
        allowed = budget["cases"].get(name, {}).get("instructions")
        got = figures.get(name)
        if got is None or allowed is None:
            lines.append(f"budget: {label}: {'not measured' if got is None else 'no budget in ' + str(budget_file)}")
            failed = True
            continue
        change = got / allowed - 1
        verdict = "ok"
        if change > tolerance:
            verdict = f"OVER BUDGET by {change:+.1%} (more than the {tolerance:.0%} allowed)"
            failed = True
        elif change < -tolerance:
            verdict = "well under budget: refresh it (bash bench/instructions.sh --update-budget) so the gate stays tight"
        lines.append(f"budget: {label}: {got:,} instructions per request vs budget {allowed:,} ({change:+.1%}): {verdict}")
    return lines, failed


def update(res, budget_file, code):
    figures = measured(res)
    missing = [name for name in CASES if name not in figures]
    if missing:
        raise SystemExit(f"budget: not measured in this run: {', '.join(missing)}")
    document = {
        "about": "Instructions per request of the service under callgrind (bench/instructions.sh). "
                 "The quick benchmark fails when a case exceeds its count by more than the tolerance. "
                 "Refresh deliberately: bash bench/instructions.sh --update-budget",
        "tolerance": TOLERANCE,
        "measured_on": code,
        "cases": {name: {"what": label, "instructions": figures[name]} for name, (_, label) in CASES.items()},
    }
    Path(budget_file).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return [f"budget: {CASES[name][1]}: {figures[name]:,}" for name in CASES] + [f"budget: wrote {budget_file}"]
