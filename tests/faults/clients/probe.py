"""Probes for the peer-fault cases: calls through service-a to its peer, timed.

`rest`: GET /service-a/other-status over HTTP/1.1 keep-alive (reconnecting
after any failure). `grpc`: GetPeerStatus with grpc.aio and no deadline of
its own worth the name (the server's answer decides). `deadline`: raw h2c
GetPeerStatus carrying `grpc-timeout` without the client enforcing it, so
the code is the server's, never a client-side timeout. Each worker calls in
a loop for `--seconds` (or `--count` calls), `--interval` apart.

Prints JSON: {"records": [[start_epoch, seconds, outcome, request_id], ...],
"outcomes": {...}}. Outcomes are HTTP statuses ("200", "503"), gRPC code
names ("OK", "UNAVAILABLE"), or "error ..." when no answer came.

Usage: probe.py HOST PORT --mode rest|grpc|deadline [--workers W]
                [--seconds S | --count N] [--interval I] [--grpc-timeout 300m]
"""

import argparse
import asyncio
import collections
import json
import time

import grpc
from scdemo.status.v1 import status_pb2, status_pb2_grpc

from h1wire import H1Connection
from h2wire import GRPC_CODES, H2Client, grpc_message, grpc_request_headers

CLIENT_LIMIT = 5.0  # seconds: far above every server-side deadline in the cases


class RestCaller:
    def __init__(self, host, port, path):
        self.host, self.port, self.path = host, port, path
        self.connection = None

    async def call(self, request_id):
        try:
            if self.connection is None:
                self.connection = await H1Connection.open(self.host, self.port, CLIENT_LIMIT)
            response = await asyncio.wait_for(self.connection.request(
                self.path, [("x-request-id", request_id)], host=f"{self.host}:{self.port}"), CLIENT_LIMIT)
            if response.wants_close:
                self.close()
            return str(response.status)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as error:
            self.close()
            return f"error {type(error).__name__}"

    def close(self):
        if self.connection:
            self.connection.close()
        self.connection = None


class GrpcCaller:
    def __init__(self, stub):
        self.stub = stub

    async def call(self, request_id):
        try:
            await self.stub.GetPeerStatus(status_pb2.GetPeerStatusRequest(), timeout=CLIENT_LIMIT,
                                          metadata=[("x-request-id", request_id)])
            return "OK"
        except grpc.aio.AioRpcError as error:
            return error.code().name

    def close(self):
        pass


class DeadlineCaller:
    """GetPeerStatus with a grpc-timeout header the client does not enforce."""

    def __init__(self, host, port, timeout):
        self.host, self.port, self.timeout = host, port, timeout

    async def call(self, request_id):
        client = await H2Client.connect(self.host, self.port)
        try:
            headers = grpc_request_headers(f"{self.host}:{self.port}", "/scdemo.status.v1.StatusService/GetPeerStatus",
                                           timeout=self.timeout, extra=[("x-request-id", request_id)])
            stream = client.request(headers, grpc_message(b""))
            await client.drain()
            if not await stream.wait(CLIENT_LIMIT):
                return "error no answer"
            if stream.grpc_status is not None:
                return GRPC_CODES.get(stream.grpc_status, str(stream.grpc_status))
            return f"error reset {stream.reset}" if stream.reset is not None else "error no grpc-status"
        finally:
            client.close()

    def close(self):
        pass


async def worker(caller, index, prefix, until, count, interval, records):
    n = 0
    while time.time() < until and (count is None or n < count):
        request_id = f"{prefix}-{index}-{n}"
        n += 1
        started = time.time()
        outcome = await caller.call(request_id)
        records.append([round(started, 4), round(time.time() - started, 4), outcome, request_id])
        if interval:
            await asyncio.sleep(interval)
    caller.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--mode", choices=("rest", "grpc", "deadline"), default="rest")
    parser.add_argument("--path", default="/service-a/other-status")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--count", type=int, help="calls per worker")
    parser.add_argument("--interval", type=float, default=0.0)
    parser.add_argument("--grpc-timeout", default="300m")
    parser.add_argument("--id-prefix", default="scf-probe")
    args = parser.parse_args()

    records = []
    until = time.time() + args.seconds
    async with grpc.aio.insecure_channel(f"{args.host}:{args.port}") as channel:
        stub = status_pb2_grpc.StatusServiceStub(channel)
        callers = []
        for _ in range(args.workers):
            if args.mode == "rest":
                callers.append(RestCaller(args.host, args.port, args.path))
            elif args.mode == "grpc":
                callers.append(GrpcCaller(stub))
            else:
                callers.append(DeadlineCaller(args.host, args.port, args.grpc_timeout))
        await asyncio.gather(*(worker(c, i, args.id_prefix, until, args.count, args.interval, records)
                               for i, c in enumerate(callers)))
    records.sort()
    print(json.dumps({"records": records, "outcomes": dict(collections.Counter(r[2] for r in records))}))


if __name__ == "__main__":
    asyncio.run(main())
