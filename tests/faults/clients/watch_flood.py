"""WatchStatus flood: many server streams on one or many HTTP/2 connections.

Each connection opens its share of WatchStatus streams as fast as the
server's SETTINGS_MAX_CONCURRENT_STREAMS allows (a well-behaved client that
is merely greedy: excess streams are the server's to refuse), then holds
them. Prints one JSON summary: outcomes by kind (ok-open = a live stream
that got messages, grpc-RESOURCE_EXHAUSTED, reset-REFUSED_STREAM, goaway...),
the GOAWAYs received, and the fewest messages any live stream got.

Usage: watch_flood.py HOST PORT --connections N --streams S --hold SECONDS
"""

import argparse
import asyncio
import collections
import json
import time

from google.protobuf import duration_pb2
from scdemo.status.v1 import status_pb2

from h2wire import H2Client, grpc_message, grpc_request_headers, outcome

PATH = "/scdemo.status.v1.StatusService/WatchStatus"


async def flood_one(host, port, streams, open_deadline, interval_ms, index):
    client = await H2Client.connect(host, port)
    try:
        await asyncio.wait_for(client.settings_received.wait(), 5)
    except asyncio.TimeoutError:
        pass
    request = status_pb2.WatchStatusRequest(interval=duration_pb2.Duration(
        seconds=interval_ms // 1000, nanos=(interval_ms % 1000) * 1_000_000)).SerializeToString()
    body = grpc_message(request)
    authority = f"{host}:{port}"
    opened = 0
    while opened < streams and client.alive:
        remaining = open_deadline - time.monotonic()
        if remaining <= 0 or not await client.wait_for_slot(remaining):
            break
        headers = grpc_request_headers(authority, PATH, extra=[("x-request-id", f"scf-flood-{index}-{opened}")])
        client.request(headers, body)
        opened += 1
        if opened % 50 == 0:
            await client.drain()
    await client.drain()
    return client, opened


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--streams", type=int, required=True, help="streams in all, spread over the connections")
    parser.add_argument("--hold", type=float, default=6.0, help="seconds from the start to the tally")
    parser.add_argument("--open-within", type=float, default=8.0, help="give up opening after this many seconds")
    parser.add_argument("--interval-ms", type=int, default=5000)
    args = parser.parse_args()

    started = time.monotonic()
    per_connection = [args.streams // args.connections + (i < args.streams % args.connections)
                      for i in range(args.connections)]
    results = await asyncio.gather(*(
        flood_one(args.host, args.port, n, started + args.open_within, args.interval_ms, i)
        for i, n in enumerate(per_connection)))
    opened_all = time.monotonic() - started
    await asyncio.sleep(max(0.0, args.hold - opened_all))

    outcomes = collections.Counter()
    goaways = []
    live_messages = []
    for client, _ in results:
        for stream in client.streams.values():
            kind = outcome(stream, client)
            outcomes[kind] += 1
            if kind == "ok-open":
                live_messages.append(stream.messages)
        if client.goaway:
            goaways.append(client.goaway)
        if client.protocol_error:
            outcomes["protocol-error-connections"] += 1
    attempted = sum(opened for _, opened in results)
    summary = {
        "connections": args.connections,
        "streams_wanted": args.streams,
        "streams_sent": attempted,
        "not_sent": args.streams - attempted,
        "server_max_concurrent_streams": min(c.max_concurrent_streams() for c, _ in results),
        "open_seconds": round(opened_all, 3),
        "outcomes": dict(outcomes),
        "ok_open": outcomes.get("ok-open", 0),
        "resource_exhausted": outcomes.get("grpc-RESOURCE_EXHAUSTED", 0),
        "refused": outcomes.get("reset-REFUSED_STREAM", 0),
        "goaways": goaways,
        "goaway_count": len(goaways),
        "connections_closed": sum(1 for c, _ in results if c.closed.is_set()),
        "min_messages_live": min(live_messages) if live_messages else 0,
    }
    for client, _ in results:
        client.close()
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
