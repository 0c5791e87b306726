"""A Python client generated from proto/ with grpcio-tools, calling every rpc.

Usage: python3 client.py GEN_DIR ADDRESS_A ADDRESS_B
(run.sh generates GEN_DIR with `python -m grpc_tools.protoc`).
"""

import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
from google.protobuf import duration_pb2  # noqa: E402
from scdemo.status.v1 import status_pb2, status_pb2_grpc  # noqa: E402

SERVICES = {"service-a": sys.argv[2], "service-b": sys.argv[3]}
PEERS = {"service-a": "service-b", "service-b": "service-a"}


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAIL: {message}")


for name, address in SERVICES.items():
    with grpc.insecure_channel(address) as channel:
        stub = status_pb2_grpc.StatusServiceStub(channel)

        status, call = stub.GetStatus.with_call(
            status_pb2.GetStatusRequest(), timeout=5, metadata=[("x-request-id", "python-1")]
        )
        own = status.status
        check(own.service == name, f"{name}: GetStatus names {own.service!r}")
        check(own.state == status_pb2.ServiceStatus.STATE_RUNNING, f"{name}: not running")
        check(own.memory_total_bytes > 0 and own.process_memory_bytes > 0, f"{name}: no memory figures")
        check(own.HasField("start_time") and own.HasField("uptime"), f"{name}: no start time or uptime")
        check(not own.HasField("ecs_task"), f"{name}: ecs_task outside ECS")
        echoed = dict(call.initial_metadata()).get("x-request-id")
        check(echoed == "python-1", f"{name}: request id echoed as {echoed!r}")
        print(f"{name} GetStatus: service={own.service} cpu={own.cpu_percent:.1f}% rss={own.process_memory_bytes}")

        peer = stub.GetPeerStatus(status_pb2.GetPeerStatusRequest(), timeout=5)
        check(peer.status.service == PEERS[name], f"{name}: peer answered as {peer.status.service!r}")
        check(peer.peer_address.startswith("http://"), f"{name}: peer address {peer.peer_address!r}")
        latency_ms = peer.latency.ToTimedelta().total_seconds() * 1000
        print(f"{name} GetPeerStatus: peer={peer.status.service} at {peer.peer_address} in {latency_ms:.2f} ms")

        interval = duration_pb2.Duration()
        interval.FromMilliseconds(100)
        stream = stub.WatchStatus(status_pb2.WatchStatusRequest(interval=interval), timeout=10)
        received = []
        for message in stream:
            received.append(message.status.service)
            if len(received) == 3:
                stream.cancel()
                break
        check(received == [name] * 3, f"{name}: WatchStatus gave {received}")
        print(f"{name} WatchStatus: {len(received)} messages, then cancelled")

        try:
            stub.WatchStatus(status_pb2.WatchStatusRequest(interval=duration_pb2.Duration(nanos=1000)), timeout=5).next()
            raise SystemExit(f"FAIL: {name}: a 1us interval was accepted")
        except grpc.RpcError as error:
            check(error.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{name}: bad interval gave {error.code()}")
        print(f"{name} WatchStatus(1us): INVALID_ARGUMENT")

print("python client: all rpcs OK")
