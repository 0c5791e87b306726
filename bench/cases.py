"""The cases the benchmark's reports share (summary.py, targets.py,
chart.py, instruction_table.py): the paths by the records' names, the bare
ceiling each case is compared with, and issue 17's goals, so the tables and
the chart judge a figure the same way."""

PATHS = {
    "healthcheck": "/service-a/healthcheck",
    "status": "/service-a/status",
    "other-status": "/service-a/other-status",
    "GetStatus": "GetStatus",
    "GetPeerStatus": "GetPeerStatus",
}
TWO_HOPS = ("other-status", "GetPeerStatus")

# Throughput (req/s) at least this ratio to the bare ceiling (issue 17).
THROUGHPUT_GOALS = {"status": 0.8, "healthcheck": 0.8, "GetStatus": 0.9, "other-status": 0.9, "GetPeerStatus": 0.9}
# ... and at least this ratio to the Go peer, on every case.
GO_GOAL = 2.0

# Instructions per request (callgrind) at most this ratio to the bare
# ceiling's, by the (target, name) of the service's record (issue 17):
# (goal, the case, its bare ceiling).
IR_GOALS = {
    ("service", "status"): (1.5, "/service-a/status, HTTP/1.1, logs on", "bare axum"),
    ("warn", "status"): (1.25, "/service-a/status, HTTP/1.1, logs off (RUST_LOG=warn)", "bare axum"),
    ("service", "healthcheck"): (1.5, "/service-a/healthcheck, HTTP/1.1, logs on", "bare axum's health route"),
    ("service", "GetStatus"): (1.2, "GetStatus, h2c, logs on", "bare tonic"),
    ("service", "other-status"): (1.3, "two hops /service-a/other-status, HTTP/1.1", "the bare two-hop, both processes"),
    ("service", "GetPeerStatus"): (1.3, "two hops GetPeerStatus, h2c", "the bare two-hop, both processes"),
}


def bare_target(name):
    """The records' target of a case's bare ceiling: the bare two-hop over a
    tonic Channel for two-hop calls, the one-hop ceiling otherwise."""
    return "two-hop-tonic" if name in TWO_HOPS else "ceiling"


def instructions(res, target, name):
    """Instructions per request of TARGET on NAME in this run, or None."""
    return next((r["per_request"] for r in res.of("instructions") if r["target"] == target and r["name"] == name), None)


def bare_instructions(res, name):
    return instructions(res, bare_target(name), name)
