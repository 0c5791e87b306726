"""Oversize and malicious request ids and header lists, over HTTP/1.1 and h2c.

Sends each variant `--rounds` times per protocol, each on a new connection
(a server may rightly close the connection of a bad request): ids of 64 KB,
with control characters, DEL, an escape sequence, non-ASCII, 129 characters,
a space; a header list far over any sane limit; 300 headers. Every bad id
starts with `scfbad` so that logs can be searched for it; good ids are
`scf-...`. Prints a JSON summary: statuses by variant and protocol, how many
responses echoed a bad id raw or an id that is not 1-128 visible ASCII, and
the echoed ids of the 200 answers (written to `--forwarded FILE`), which the
peer's log must show.

Usage: bad_headers.py HOST PORT --path PATH --rounds N --forwarded FILE
"""

import argparse
import asyncio
import collections
import json

from h1wire import get_once
from h2wire import H2Client, rest_request_headers

BAD_IDS = {
    "id-64KB": lambda r: f"scfbad-big-{r}-".encode() + b"x" * 65536,
    "id-control-chars": lambda r: f"scfbad-ctl-{r}-".encode() + b"\x01\x02-id",
    "id-DEL": lambda r: f"scfbad-del-{r}-".encode() + b"\x7f-id",
    "id-escape-seq": lambda r: f"scfbad-esc-{r}-".encode() + b"\x1b[31m-id",
    "id-non-ascii": lambda r: f"scfbad-nonascii-{r}-ünï".encode(),
    "id-129-chars": lambda r: (f"scfbad-long-{r}-".encode() + b"y" * 200)[:129],
    "id-with-space": lambda r: f"scfbad sp {r}".encode(),
}
HEADER_LISTS = {
    # 100 headers of 1 KB: 100 KB, over any sane header list limit.
    "header-list-100KB": lambda r: [(f"x-scf-big-{i}", "z" * 1000) for i in range(100)],
    "headers-300": lambda r: [(f"x-scf-many-{i}", "1") for i in range(300)],
}


def valid_id(value: str | None) -> bool:
    return value is not None and 1 <= len(value) <= 128 and all(0x21 <= ord(c) <= 0x7E for c in value)


async def send(protocol, host, port, path, headers):
    """(status or error text, echoed x-request-id or None)."""
    try:
        if protocol == "h1":
            response = await get_once(host, port, path, headers, timeout=8)
            return response.status, response.headers.get("x-request-id")
        client = await H2Client.connect(host, port, validate=False)
        try:
            stream = client.request(rest_request_headers(f"{host}:{port}", path, headers))
            await client.drain()
            await stream.wait(8)
            if stream.status is not None:
                return stream.status, stream.headers.get("x-request-id")
            if stream.reset is not None:
                return f"reset-{stream.reset}", None
            if client.goaway:
                return f"goaway-{client.goaway['code']}", None
            return "no-response", None
        finally:
            client.close()
    except Exception as error:  # noqa: BLE001 - any failure is an outcome to count
        return f"error-{type(error).__name__}", None


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--path", default="/service-a/other-status")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--forwarded", required=True)
    args = parser.parse_args()

    statuses = collections.defaultdict(collections.Counter)
    echoed_raw = echoed_invalid = 0
    forwarded = []
    samples = {}
    for r in range(args.rounds):
        for protocol in ("h1", "h2"):
            plans = [(name, [("x-request-id", make(r))]) for name, make in BAD_IDS.items()]
            plans += [(name, [("x-request-id", f"scf-{name}-{protocol}-{r}"), *make(r)])
                      for name, make in HEADER_LISTS.items()]
            plans.append(("good-id", [("x-request-id", f"scf-good-{protocol}-{r}")]))
            for name, headers in plans:
                status, echoed = await send(protocol, args.host, args.port, args.path, headers)
                statuses[f"{name} {protocol}"][str(status)] += 1
                if echoed is not None and echoed.startswith("scfbad"):
                    echoed_raw += 1
                    samples.setdefault("echoed_raw", f"{name} {protocol}: {echoed[:60]!r}")
                if echoed is not None and not valid_id(echoed):
                    echoed_invalid += 1
                    samples.setdefault("echoed_invalid", f"{name} {protocol}: {echoed[:60]!r}")
                if status == 200 and valid_id(echoed):
                    forwarded.append(echoed)
                if name == "good-id" and (status != 200 or echoed != headers[0][1]):
                    samples.setdefault("good_id_broken", f"{protocol}: {status} {echoed!r}")
    with open(args.forwarded, "w") as out:
        out.write("\n".join(forwarded) + "\n")
    statuses = {k: dict(v) for k, v in statuses.items()}
    print(json.dumps({
        "requests": sum(sum(v.values()) for v in statuses.values()),
        "statuses": statuses,
        "server_errors": sum(n for v in statuses.values() for s, n in v.items() if s.startswith("5")),
        "good_ok": sum(statuses.get(f"good-id {p}", {}).get("200", 0) for p in ("h1", "h2")),
        "good_sent": 2 * args.rounds,
        "echoed_raw": echoed_raw,
        "echoed_invalid": echoed_invalid,
        "forwarded": len(forwarded),
        "samples": samples,
    }))


if __name__ == "__main__":
    asyncio.run(main())
