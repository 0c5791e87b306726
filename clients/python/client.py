"""A Python client of service-a and service-b, generated from proto/ with grpcio-tools.

Calls GetStatus, GetPeerStatus, a WatchStatus stream of three messages then
cancel, Health/Check, and a bad WatchStatus interval that must fail with
INVALID_ARGUMENT; every call gzip-compressed. Exits non-zero on any failure.

    .venv/bin/python client.py 127.0.0.1:8201 127.0.0.1:8202

The stubs in gen/ come from the repository's recipe (clients/generate.sh);
grpcio-health-checking ships the health stubs, googleapis-common-protos the
google.api annotations that status.proto imports.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from google.protobuf import duration_pb2  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from scdemo.status.v1 import status_pb2, status_pb2_grpc  # noqa: E402

# Bounds every call, so a hung server fails the run instead of stalling it.
CALL_TIMEOUT_S = 5


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAIL: {message}")


def run(name, address, peer):
    # gzip on the channel: every request is compressed, and grpcio asks for
    # compressed answers.
    with grpc.insecure_channel(address, compression=grpc.Compression.Gzip) as channel:
        stub = status_pb2_grpc.StatusServiceStub(channel)

        status, call = stub.GetStatus.with_call(
            status_pb2.GetStatusRequest(), timeout=CALL_TIMEOUT_S, metadata=[("x-request-id", "python-1")]
        )
        own = status.status
        check(own.service == name, f"{name}: GetStatus names {own.service!r}")
        check(own.state == status_pb2.ServiceStatus.STATE_RUNNING, f"{name}: not running")
        check(own.memory_total_bytes > 0 and own.process_memory_bytes > 0, f"{name}: no memory figures")
        check(own.HasField("start_time") and own.HasField("uptime"), f"{name}: no start time or uptime")
        check(not own.HasField("ecs_task"), f"{name}: ecs_task outside ECS")
        headers = dict(call.initial_metadata())
        check(headers.get("x-request-id") == "python-1", f"{name}: request id echoed as {headers.get('x-request-id')!r}")
        # (grpcio handles grpc-encoding itself and does not show it here.)
        print(f"{name} GetStatus: service={own.service} state={status_pb2.ServiceStatus.State.Name(own.state)} "
              f"rss={own.process_memory_bytes} (gzip requests)")

        via_peer = stub.GetPeerStatus(status_pb2.GetPeerStatusRequest(), timeout=CALL_TIMEOUT_S)
        check(via_peer.status.service == peer, f"{name}: peer answered as {via_peer.status.service!r}")
        check(via_peer.peer_address.startswith("http://"), f"{name}: peer address {via_peer.peer_address!r}")
        latency_ms = via_peer.latency.ToTimedelta().total_seconds() * 1000
        print(f"{name} GetPeerStatus: peer={via_peer.status.service} at {via_peer.peer_address} in {latency_ms:.2f} ms")

        interval = duration_pb2.Duration()
        interval.FromMilliseconds(100)
        stream = stub.WatchStatus(status_pb2.WatchStatusRequest(interval=interval), timeout=CALL_TIMEOUT_S)
        received = []
        for message in stream:
            received.append(message.status.service)
            if len(received) == 3:
                stream.cancel()
                break
        check(received == [name] * 3, f"{name}: WatchStatus gave {received}")
        check(stream.code() == grpc.StatusCode.CANCELLED, f"{name}: stream ended with {stream.code()}")
        print(f"{name} WatchStatus: {len(received)} messages, then cancelled")

        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S)
        check(health.status == health_pb2.HealthCheckResponse.SERVING, f"{name}: health {health.status}")
        print(f"{name} Health/Check: SERVING")

        try:
            bad = status_pb2.WatchStatusRequest(interval=duration_pb2.Duration(nanos=1000))
            next(stub.WatchStatus(bad, timeout=CALL_TIMEOUT_S))
            raise SystemExit(f"FAIL: {name}: a 1us interval was accepted")
        except grpc.RpcError as error:
            check(error.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{name}: bad interval gave {error.code()}")
            print(f"{name} WatchStatus(1us): INVALID_ARGUMENT: {error.details()}")


def main():
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: {sys.argv[0]} SERVICE_A_ADDRESS SERVICE_B_ADDRESS")
    run("service-a", sys.argv[1], "service-b")
    run("service-b", sys.argv[2], "service-a")
    print("python client: all rpcs OK")


if __name__ == "__main__":
    main()
