"""Summarises probe records (probe.py's JSON) over a time window, as JSON.

For the calls that started in [--since, --until): how many per outcome, the
slowest per outcome, and, relative to --since, when the first call of each
outcome ended and when the last one started. Times are seconds.

Usage: windows.py PROBE_JSON --since EPOCH [--until EPOCH]
"""

import argparse
import collections
import json


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("probe")
    parser.add_argument("--since", type=float, required=True)
    parser.add_argument("--until", type=float, default=float("inf"))
    args = parser.parse_args()
    with open(args.probe) as probe:
        records = json.load(probe)["records"]
    counts = collections.Counter()
    slowest, first_end, last_start = {}, {}, {}
    for started, seconds, outcome, _ in records:
        if not args.since <= started < args.until:
            continue
        counts[outcome] += 1
        slowest[outcome] = max(slowest.get(outcome, 0.0), seconds)
        first_end[outcome] = min(first_end.get(outcome, float("inf")), started + seconds - args.since)
        last_start[outcome] = max(last_start.get(outcome, float("-inf")), started - args.since)
    rounded = lambda d: {k: round(v, 3) for k, v in d.items()}  # noqa: E731
    print(json.dumps({"calls": sum(counts.values()), "outcomes": dict(counts), "max_s": rounded(slowest),
                      "first_end": rounded(first_end), "last_start": rounded(last_start)}))


if __name__ == "__main__":
    main()
