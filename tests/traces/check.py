#!/usr/bin/env python3
# Checks what the collector received in tests/traces/run.sh (its file
# exporter's OTLP JSON lines) and what the services logged and answered.
# Prints one row per check and exits 1 if any fails.
import json
import pathlib
import sys

work = pathlib.Path(sys.argv[1])
ids = dict(line.split("=", 1) for line in (work / "traces.env").read_text().split())
answers = dict(line.split(" ", 1) for line in (work / "answers").read_text().splitlines())
SERVER, CLIENT, ERROR = 2, 3, 2

spans = []
spans_file = work / "spans.jsonl"
for line in spans_file.read_text().splitlines() if spans_file.exists() else []:
    for resource_spans in json.loads(line).get("resourceSpans", []):
        resource = {
            a["key"]: next(iter(a["value"].values()))
            for a in resource_spans.get("resource", {}).get("attributes", [])
        }
        for scope in resource_spans.get("scopeSpans", []):
            for span in scope.get("spans", []):
                span["attrs"] = {
                    a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])
                }
                span["resource"] = resource
                spans.append(span)

failures = 0


def check(name, expected, observed, ok):
    global failures
    failures += not ok
    print(f"{'PASS' if ok else 'FAIL'}  {name}: expected {expected}; observed {observed}")


def trace(name):
    return [s for s in spans if s["traceId"] == ids[name]]


def one(spans_of, service, kind):
    found = [s for s in spans_of if s["resource"].get("service.name") == service and s["kind"] == kind]
    return found[0] if len(found) == 1 else None


def log_lines(name):
    lines = []
    for line in (work / name).read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass
    return lines


# 1. One trace across the hop: A SERVER -> A CLIENT -> B SERVER.
rest = trace("T_REST")
check("REST request through the peer", "200", answers["rest_sampled"], answers["rest_sampled"] == "200")
check("spans in the REST trace", 3, len(rest), len(rest) == 3)
a_server, a_client, b_server = one(rest, "service-a", SERVER), one(rest, "service-a", CLIENT), one(rest, "service-b", SERVER)
check("A SERVER, A CLIENT, B SERVER present", "all three", [bool(a_server), bool(a_client), bool(b_server)],
      bool(a_server and a_client and b_server))
if a_server and a_client and b_server:
    check("A SERVER's parent is the caller's span", "00f067aa0ba902b7", a_server.get("parentSpanId"),
          a_server.get("parentSpanId") == "00f067aa0ba902b7")
    check("A CLIENT's parent is A SERVER", a_server["spanId"], a_client.get("parentSpanId"),
          a_client.get("parentSpanId") == a_server["spanId"])
    check("B SERVER's parent is A CLIENT", a_client["spanId"], b_server.get("parentSpanId"),
          b_server.get("parentSpanId") == a_client["spanId"])
    expected = {"http.request.method": "GET", "url.path": "/service-a/other-status",
                "http.route": "/service-a/other-status", "http.response.status_code": "200"}
    observed = {k: a_server["attrs"].get(k) for k in expected}
    check("A SERVER http attributes", expected, observed, observed == expected)
    check("A SERVER name", "GET /service-a/other-status", a_server["name"], a_server["name"] == "GET /service-a/other-status")
    expected = {"rpc.system": "grpc", "rpc.service": "scdemo.status.v1.StatusService", "rpc.method": "GetStatus",
                "rpc.grpc.status_code": "0", "server.address": "127.0.0.1", "server.port": "28202",
                "peer.service": "service-b"}
    observed = {k: a_client["attrs"].get(k) for k in expected}
    check("A CLIENT rpc, server and peer.service attributes", expected, observed, observed == expected)
    expected = {"rpc.system": "grpc", "rpc.service": "scdemo.status.v1.StatusService", "rpc.method": "GetStatus",
                "rpc.grpc.status_code": "0"}
    observed = {k: b_server["attrs"].get(k) for k in expected}
    check("B SERVER rpc attributes (over OTLP/gRPC)", expected, observed, observed == expected)
    expected = {"service.name": "service-a", "cloud.provider": "aws", "cloud.platform": "aws_ecs",
                "aws.ecs.task.arn": "arn:aws:ecs:us-east-2:111122223333:task/demo/0123456789abcdef",
                "aws.ecs.cluster.arn": "arn:aws:ecs:us-east-2:111122223333:cluster/demo",
                "aws.ecs.launchtype": "fargate", "cloud.availability_zone": "us-east-2b",
                "cloud.region": "us-east-2"}
    observed = {k: a_server["resource"].get(k) for k in expected}
    check("resource: service and ECS task", expected, observed, observed == expected)
    check("resource: service.version", "set", a_server["resource"].get("service.version"),
          bool(a_server["resource"].get("service.version")))
    line = [l for l in log_lines("a.log") if l.get("message") == "request" and l.get("trace_id") == ids["T_REST"]]
    joined = bool(line) and line[0].get("span_id") == a_server["spanId"]
    check("A's access line has the SERVER span's ids", a_server["spanId"], line[0].get("span_id") if line else None, joined)

# 2. gRPC and WatchStatus SERVER spans.
grpc_server = one(trace("T_GRPC"), "service-a", SERVER)
observed = grpc_server and {k: grpc_server["attrs"].get(k) for k in ("rpc.system", "rpc.method", "rpc.grpc.status_code")}
expected = {"rpc.system": "grpc", "rpc.method": "GetPeerStatus", "rpc.grpc.status_code": "0"}
check("gRPC GetPeerStatus SERVER span", expected, observed, observed == expected)
check("gRPC trace spans (A SERVER, A CLIENT, B SERVER)", 3, len(trace("T_GRPC")), len(trace("T_GRPC")) == 3)
watch = trace("T_WATCH")
check("WatchStatus: one span for the stream", 1, len(watch), len(watch) == 1)
if len(watch) == 1:
    seconds = (int(watch[0]["endTimeUnixNano"]) - int(watch[0]["startTimeUnixNano"])) / 1e9
    check("WatchStatus span lasts the stream's life (client cancels at 1.5 s)", ">= 1.2 s", f"{seconds:.2f} s", seconds >= 1.2)
    check("WatchStatus span method", "WatchStatus", watch[0]["attrs"].get("rpc.method"),
          watch[0]["attrs"].get("rpc.method") == "WatchStatus")

# 3. Nothing for the unsampled, and nothing from a service with export off.
check("unsampled request: answered", "200", answers["rest_unsampled"], answers["rest_unsampled"] == "200")
check("unsampled request: spans exported", 0, len(trace("T_UNSAMPLED")), not trace("T_UNSAMPLED"))
for key, log, by in (("T_B_NONE", "b-none.log", "OTEL_TRACES_EXPORTER=none"),
                     ("T_B_DISABLED", "b-disabled.log", "OTEL_SDK_DISABLED=true")):
    services = sorted(s["resource"].get("service.name") + "/" + str(s["kind"]) for s in trace(key))
    check(f"{by}: only A's spans", ["service-a/2", "service-a/3"], services, services == ["service-a/2", "service-a/3"])
    off = [l for l in log_lines(log) if l.get("message") == "trace export off" and l.get("by") == by]
    check(f"{by}: logged", "trace export off", bool(off), bool(off))

# 4. The peer down: an error trace.
down = trace("T_PEER_DOWN")
check("peer down: REST answer", "503", answers["rest_peer_down"], answers["rest_peer_down"] == "503")
client = one(down, "service-a", CLIENT)
server = one(down, "service-a", SERVER)
check("peer down: CLIENT span UNAVAILABLE (14), error", "14 / error",
      client and f"{client['attrs'].get('rpc.grpc.status_code')} / {client.get('status', {}).get('code')}",
      bool(client) and client["attrs"].get("rpc.grpc.status_code") == "14" and client.get("status", {}).get("code") == ERROR)
check("peer down: SERVER span 503, error", "503 / error",
      server and f"{server['attrs'].get('http.response.status_code')} / {server.get('status', {}).get('code')}",
      bool(server) and server["attrs"].get("http.response.status_code") == "503" and server.get("status", {}).get("code") == ERROR)

# 5. The collector down: requests unaffected, drops counted, bounded stop.
rows = [line.split() for line in (work / "collector-down.out").read_text().splitlines()]
codes = sorted({code for code, _ in rows})
slowest = max(float(t) for _, t in rows)
check("collector down: 200 requests answered", "200 x 200", f"{codes} x {len(rows)}", codes == ["200"] and len(rows) == 200)
check("collector down: slowest request", "< 1 s", f"{slowest:.3f} s", slowest < 1.0)
for log, key in (("a-down.log", "a_down_stop_seconds"), ("b-down.log", "b_down_stop_seconds")):
    lines = log_lines(log)
    dropped = [l for l in lines if l.get("message") == "trace spans dropped"]
    stopped = [l for l in lines if l.get("message") == "trace export stopped"]
    total = stopped[0].get("dropped_total") if stopped else None
    check(f"{log}: drops logged (at most one line a second) and counted", "> 0",
          f"{len(dropped)} lines, dropped_total {total}", bool(dropped) and bool(total) and total > 0)
    seconds = float(answers[key])
    check(f"{log}: stop with the collector down (SHUTDOWN_TIMEOUT=3s)", "< 4.5 s", f"{seconds} s", seconds < 4.5)
check("collector up: stop", "< 2 s", f"{answers['a_stop_seconds']} s", float(answers["a_stop_seconds"]) < 2)

print(f"traces: {failures} failed" if failures else "traces: all checks passed")
sys.exit(1 if failures else 0)
