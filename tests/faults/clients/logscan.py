"""Reads the services' JSON log lines and prints one JSON summary.

Lenient on purpose, because the access-log schema is changing: an access
line is any line with a request id and a method or path; its gRPC code is
`grpc_code` (a canonical name) or `grpc_status` (a number), and its path
`path` or `rpc`, whichever is there. Non-JSON lines are counted, never fatal.

Usage: logscan.py LOG... [--ids FILE] [--marker TEXT] [--warn REGEX]
                  [--path PATH] [--since EPOCH] [--until EPOCH]
  --ids FILE     one request id per line: how many have 0, 1, >1 access lines
  --marker TEXT  lines containing TEXT anywhere (bytes, case-insensitive)
  --warn REGEX   WARN/ERROR lines whose text matches REGEX
  --path PATH    codes and latencies of the access lines for PATH
  --since/--until  only JSON lines stamped in that window (epoch seconds)
"""

import argparse
import collections
import datetime
import json
import re
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from h2wire import GRPC_CODES  # noqa: E402

# A GOAWAY sent or received, or h2's reason for sending one (its reset-flood
# limits, logged at WARN: "remotely-reset pending-accept streams reached limit").
GOAWAY = re.compile(rb"goaway|go_away|go away|too_many_resets|too_many_internal_resets|enhance_your_calm"
                    rb"|reset[a-z -]* streams reached limit", re.I)


def grpc_code(line: dict):
    if "grpc_code" in line and line["grpc_code"] is not None:
        return str(line["grpc_code"]).upper()
    value = line.get("grpc_status")
    if value is None:
        return None
    try:
        return GRPC_CODES.get(int(value), str(value))
    except ValueError:
        return str(value).upper()


def is_access(line: dict) -> bool:
    return "access" in str(line.get("target", "")) or (
        "request_id" in line and ("method" in line or "path" in line))


def request_path(line: dict):
    """The path, or "/" + the rpc for gRPC lines that name the method instead."""
    if line.get("path"):
        return line["path"]
    rpc = line.get("rpc")
    return "/" + rpc.lstrip("/") if rpc else None


def epoch(stamp: str):
    try:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return None


def percentile(values, fraction):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("logs", nargs="+")
    parser.add_argument("--ids")
    parser.add_argument("--marker", action="append", default=[])
    parser.add_argument("--warn")
    parser.add_argument("--path")
    parser.add_argument("--since", type=float)
    parser.add_argument("--until", type=float)
    args = parser.parse_args()

    levels = collections.Counter()
    access_by_id = collections.Counter()
    markers = collections.Counter()
    marker_samples = {}
    warn = re.compile(args.warn, re.I) if args.warn else None
    warn_lines, warn_samples = 0, []
    goaway_lines, goaway_samples = 0, []
    not_json = 0
    path_codes = collections.defaultdict(list)
    access_lines = 0
    for name in args.logs:
        with open(name, "rb") as log:
            for raw in log:
                for marker in args.marker:
                    if marker.encode().lower() in raw.lower():
                        markers[marker] += 1
                        marker_samples.setdefault(marker, raw[:300].decode("latin-1"))
                if GOAWAY.search(raw):
                    goaway_lines += 1
                    if len(goaway_samples) < 3:
                        goaway_samples.append(raw[:300].decode("latin-1"))
                try:
                    line = json.loads(raw)
                except ValueError:
                    not_json += 1
                    continue
                if not isinstance(line, dict):
                    not_json += 1
                    continue
                if args.since or args.until:
                    stamp = epoch(line.get("timestamp", "")) or 0
                    if (args.since and stamp < args.since) or (args.until and stamp > args.until):
                        continue
                level = str(line.get("level", "?")).upper()
                levels[level] += 1
                if warn and level in ("WARN", "ERROR") and warn.search(raw.decode("latin-1")):
                    warn_lines += 1
                    if len(warn_samples) < 3:
                        warn_samples.append(raw[:300].decode("latin-1"))
                if is_access(line):
                    access_lines += 1
                    access_by_id[str(line.get("request_id"))] += 1
                    if args.path and request_path(line) == args.path:
                        latency = line.get("latency_ms")
                        path_codes[grpc_code(line) or str(line.get("status"))].append(
                            float(latency) if latency is not None else 0.0)

    summary = {
        "lines_by_level": dict(levels),
        "not_json": not_json,
        "access_lines": access_lines,
        "goaway_lines": goaway_lines,
        "goaway_samples": goaway_samples,
        "markers": {m: markers.get(m, 0) for m in args.marker},
        "marker_samples": marker_samples,
    }
    if warn:
        summary["warn_lines"] = warn_lines
        summary["warn_samples"] = warn_samples
    if args.ids:
        with open(args.ids) as ids_file:
            ids = [i.strip() for i in ids_file if i.strip()]
        counts = collections.Counter(access_by_id.get(i, 0) for i in ids)
        summary["ids"] = len(ids)
        summary["ids_with_0_lines"] = counts.get(0, 0)
        summary["ids_with_1_line"] = counts.get(1, 0)
        summary["ids_with_2_or_more"] = sum(n for c, n in counts.items() if c >= 2)
        summary["ids_missing_sample"] = [i for i in ids if access_by_id.get(i, 0) == 0][:5]
        summary["ids_repeated_sample"] = [i for i in ids if access_by_id.get(i, 0) > 1][:5]
    if args.path:
        summary["path"] = {
            code: {"count": len(v), "p50_ms": percentile(v, 0.5), "p90_ms": percentile(v, 0.9),
                   "max_ms": max(v)}
            for code, v in path_codes.items()
        }
        failures = [ms for code, v in path_codes.items() if code not in ("OK", "200") for ms in v]
        summary["path_failures"] = {"count": len(failures), "p50_ms": percentile(failures, 0.5),
                                    "p90_ms": percentile(failures, 0.9)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
