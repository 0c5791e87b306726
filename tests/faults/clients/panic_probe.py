"""One HTTP/2 connection carrying other callers' streams, then a request that panics.

Opens WatchStatus streams (other callers), waits for their first messages,
sends the panicking request on the same connection, then checks that the
streams still get messages and that the connection saw no GOAWAY. Prints
a JSON summary.

Usage: panic_probe.py HOST PORT --path PATH --request-id ID [--grpc]
"""

import argparse
import asyncio
import json

from google.protobuf import duration_pb2
from scdemo.status.v1 import status_pb2

from h2wire import GRPC_CODES, H2Client, grpc_message, grpc_request_headers, rest_request_headers

WATCH = "/scdemo.status.v1.StatusService/WatchStatus"


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--path", required=True)
    parser.add_argument("--request-id", required=True)
    parser.add_argument("--grpc", action="store_true", help="the panicking path is a gRPC method")
    parser.add_argument("--streams", type=int, default=3)
    args = parser.parse_args()

    authority = f"{args.host}:{args.port}"
    client = await H2Client.connect(args.host, args.port)
    body = grpc_message(status_pb2.WatchStatusRequest(
        interval=duration_pb2.Duration(nanos=200_000_000)).SerializeToString())
    watches = [client.request(grpc_request_headers(authority, WATCH, extra=[("x-request-id", f"scf-panic-watch-{i}")]), body)
               for i in range(args.streams)]
    await client.drain()
    await asyncio.sleep(1)
    before = [w.messages for w in watches]
    extra = [("x-request-id", args.request_id)]
    if args.grpc:
        victim = client.request(grpc_request_headers(authority, args.path, extra=extra), grpc_message(b""))
    else:
        victim = client.request(rest_request_headers(authority, args.path, extra))
    await client.drain()
    await victim.wait(5)
    await asyncio.sleep(1.5)
    after = [w.messages for w in watches]
    print(json.dumps({
        "status": victim.status,
        "grpc_code": GRPC_CODES.get(victim.grpc_status) if victim.grpc_status is not None else None,
        "reset": victim.reset,
        "echoed_id": victim.headers.get("x-request-id"),
        "streams_alive": sum(1 for w in watches if not w.finished),
        "streams_progressed": sum(1 for b, a in zip(before, after) if a > b),
        "streams": args.streams,
        "goaway": client.goaway,
        "connection_closed": client.closed.is_set(),
    }))
    client.close()


if __name__ == "__main__":
    asyncio.run(main())
