"""Steady mixed load for the SIGTERM case, every request with its own id.

HTTP/1.1 keep-alive workers (GET, reconnecting after `Connection: close`),
h2c REST connections with several streams each, gRPC unary GetStatus calls
(grpc.aio) and one WatchStatus stream. New requests stop at `--stop-at`
(epoch seconds); the stream is read until the server ends it. Writes every
request's id to `--ids` (each got an answer or was abandoned, so each must
have exactly one access line) and prints a JSON summary: requests and
failures by kind, the HTTP/1.1 answers after `--drain-from` with and
without `Connection: close`, how the stream ended and when.

Usage: steady_load.py HOST PORT --service NAME --stop-at EPOCH --drain-from EPOCH --ids FILE
"""

import argparse
import asyncio
import collections
import json
import time

import grpc
from google.protobuf import duration_pb2
from scdemo.status.v1 import status_pb2, status_pb2_grpc

from h1wire import H1Connection
from h2wire import H2Client, rest_request_headers

REQUEST_TIMEOUT = 5.0


class Tally:
    def __init__(self, drain_from):
        self.drain_from = drain_from
        self.records = collections.defaultdict(collections.Counter)
        self.failures = []
        self.ids = []
        self.h1_drain = collections.Counter()

    def add(self, kind, request_id, outcome, answered=True):
        self.records[kind][outcome] += 1
        if answered:
            self.ids.append(request_id)
        if outcome != "ok":
            self.failures.append(f"{kind} {request_id}: {outcome}")


async def h1_worker(host, port, path, stop_at, tally, name):
    connection = None
    n = 0
    while time.time() < stop_at:
        request_id = f"scf-term-{name}-{n}"
        n += 1
        try:
            if connection is None:
                connection = await H1Connection.open(host, port, REQUEST_TIMEOUT)
            response = await asyncio.wait_for(
                connection.request(path, [("x-request-id", request_id)], host=f"{host}:{port}"), REQUEST_TIMEOUT)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as error:
            # Written to a connection that then failed: the server may or may
            # not have read it, so it is not counted among the answered ids.
            tally.add("http1", request_id, f"error {type(error).__name__}", answered=False)
            if connection:
                connection.close()
            connection = None
            continue
        tally.add("http1", request_id, "ok" if response.status == 200 else f"http {response.status}")
        if time.time() >= tally.drain_from:
            tally.h1_drain["close" if response.wants_close else "keep-alive"] += 1
        if response.wants_close:
            connection.close()
            connection = None
    if connection:
        connection.close()


async def h2_connection(host, port, path, stop_at, tally, name, streams):
    client = await H2Client.connect(host, port)
    counter = iter(range(10**9))

    async def loop():
        while time.time() < stop_at and client.alive:
            request_id = f"scf-term-{name}-{next(counter)}"
            stream = client.request(rest_request_headers(f"{host}:{port}", path, [("x-request-id", request_id)]))
            await client.drain()
            if not await stream.wait(REQUEST_TIMEOUT):
                client.reset(stream.id)
                tally.add("h2c", request_id, "abandoned after timeout")
            elif stream.status == 200 and stream.ended:
                tally.add("h2c", request_id, "ok")
            elif stream.status is not None:
                tally.add("h2c", request_id, f"http {stream.status}")
            else:
                tally.add("h2c", request_id, "no answer (reset or GOAWAY)", answered=False)

    await asyncio.gather(*(loop() for _ in range(streams)))
    client.close()


async def grpc_worker(stub, stop_at, tally, name):
    n = 0
    while time.time() < stop_at:
        request_id = f"scf-term-{name}-{n}"
        n += 1
        try:
            await stub.GetStatus(status_pb2.GetStatusRequest(), timeout=REQUEST_TIMEOUT,
                                 metadata=[("x-request-id", request_id)])
            tally.add("grpc", request_id, "ok")
        except grpc.aio.AioRpcError as error:
            tally.add("grpc", request_id, error.code().name)


async def watch(stub, limit):
    request_id = "scf-term-watch"
    messages = 0
    code = "OK"
    call = stub.WatchStatus(status_pb2.WatchStatusRequest(interval=duration_pb2.Duration(nanos=500_000_000)),
                            timeout=limit, metadata=[("x-request-id", request_id)])
    try:
        async for _ in call:
            messages += 1
    except grpc.aio.AioRpcError as error:
        code = error.code().name
    return {"id": request_id, "code": code, "messages": messages, "ended_at": time.time()}


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--service", default="service-a")
    parser.add_argument("--stop-at", type=float, required=True)
    parser.add_argument("--drain-from", type=float, required=True)
    parser.add_argument("--watch-limit", type=float, default=30.0)
    parser.add_argument("--h1", type=int, default=8)
    parser.add_argument("--h2", type=int, default=2)
    parser.add_argument("--h2-streams", type=int, default=4)
    parser.add_argument("--grpc", type=int, default=8)
    parser.add_argument("--ids", required=True)
    args = parser.parse_args()

    tally = Tally(args.drain_from)
    path = f"/{args.service}/status"
    async with grpc.aio.insecure_channel(f"{args.host}:{args.port}") as channel:
        stub = status_pb2_grpc.StatusServiceStub(channel)
        watcher = asyncio.create_task(watch(stub, args.watch_limit))
        await asyncio.gather(
            *(h1_worker(args.host, args.port, path, args.stop_at, tally, f"h1-{i}") for i in range(args.h1)),
            *(h2_connection(args.host, args.port, path, args.stop_at, tally, f"h2-{i}", args.h2_streams)
              for i in range(args.h2)),
            *(grpc_worker(stub, args.stop_at, tally, f"grpc-{i}") for i in range(args.grpc)),
        )
        stream = await watcher
    tally.ids.append(stream["id"])
    with open(args.ids, "w") as out:
        out.write("\n".join(tally.ids) + "\n")
    records = {kind: dict(outcomes) for kind, outcomes in tally.records.items()}
    print(json.dumps({
        "requests": sum(sum(v.values()) for v in records.values()),
        "failed": len(tally.failures),
        "by_kind": records,
        "failure_sample": tally.failures[:5],
        "h1_during_drain": dict(tally.h1_drain),
        "watch": stream,
    }))


if __name__ == "__main__":
    asyncio.run(main())
