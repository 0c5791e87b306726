"""Connection flood: connections that send nothing (`--idle`), the HTTP/2
preface and an empty SETTINGS frame (`--preface`), or the preface alone
(`--bare`: an unfinished handshake).

Opens the connections (a few hundred at a time), then waits for the server
to close each one, until a deadline; whatever is still open then is closed
by us and counted as `still_open`. Prints one JSON summary per kind: opened,
connect failures, closed by the server, seconds from connect to close.

Usage: conn_flood.py HOST PORT --idle N --preface N [--bare N] --deadline SECONDS
"""

import argparse
import asyncio
import json
import resource
import time

from h2wire import PREFACE, FRAME_SETTINGS, frame


KINDS = ("idle", "preface", "bare")


async def one(host, port, kind, deadline, results):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except OSError as error:  # TimeoutError included
        results[kind]["connect_failed"] += 1
        results[kind].setdefault("connect_error", repr(error)[:120])
        return
    results[kind]["opened"] += 1
    connected = time.monotonic()
    if kind == "preface":
        writer.write(PREFACE + frame(FRAME_SETTINGS, 0, 0))
    elif kind == "bare":
        writer.write(PREFACE)
    try:
        # Whatever the server sends (its SETTINGS, a GOAWAY), read to the end.
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise asyncio.TimeoutError
            if not await asyncio.wait_for(reader.read(65536), remaining):
                break
        results[kind]["closed"].append(round(time.monotonic() - connected, 3))
    except asyncio.TimeoutError:  # before OSError: TimeoutError is an OSError
        results[kind]["still_open"] += 1
    except (ConnectionError, OSError):
        results[kind]["closed"].append(round(time.monotonic() - connected, 3))
    finally:
        writer.close()


def summary(result):
    closed = sorted(result.pop("closed"))
    result["closed_by_server"] = len(closed)
    result["close_s_min"] = closed[0] if closed else None
    result["close_s_median"] = closed[len(closed) // 2] if closed else None
    result["close_s_max"] = closed[-1] if closed else None
    return result


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--idle", type=int, default=600)
    parser.add_argument("--preface", type=int, default=600)
    parser.add_argument("--bare", type=int, default=0)
    parser.add_argument("--deadline", type=float, default=12.0, help="seconds from the start")
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    started = time.monotonic()
    deadline = started + args.deadline
    results = {kind: {"opened": 0, "connect_failed": 0, "still_open": 0, "closed": []}
               for kind in KINDS}
    kinds = ["idle"] * args.idle + ["preface"] * args.preface
    # Interleave the kinds so both meet the same server state.
    kinds = [k for pair in zip(kinds[: args.idle], kinds[args.idle:]) for k in pair] + kinds[2 * min(args.idle, args.preface):]
    kinds += ["bare"] * args.bare
    tasks = []
    for start in range(0, len(kinds), args.batch):
        tasks += [asyncio.create_task(one(args.host, args.port, kind, deadline, results))
                  for kind in kinds[start:start + args.batch]]
        await asyncio.sleep(0.05)
    opened_in = time.monotonic() - started
    await asyncio.gather(*tasks)
    out = {kind: summary(result) for kind, result in results.items()}
    out["open_seconds"] = round(opened_in, 3)
    out["total"] = len(kinds)
    out["closed_by_server"] = sum(out[k]["closed_by_server"] for k in KINDS)
    out["still_open"] = sum(out[k]["still_open"] for k in KINDS)
    out["connect_failed"] = sum(out[k]["connect_failed"] for k in KINDS)
    out["close_s_max"] = max((out[k]["close_s_max"] or 0) for k in KINDS)
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
