"""Turns h2load's text report into one JSON object (requests, statuses, rate).

Usage: h2load ... | python3 h2load_report.py
"""

import json
import re
import sys

text = sys.stdin.read()
out = {"parsed": False}
match = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", text)
if match:
    keys = ("total", "started", "done", "succeeded", "failed", "errored", "timeout")
    out.update(dict(zip(keys, map(int, match.groups()))), parsed=True)
match = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
if match:
    out.update(dict(zip(("s2xx", "s3xx", "s4xx", "s5xx"), map(int, match.groups()))))
match = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", text)
if match:
    seconds = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
    out.update(seconds=seconds, req_per_s=float(match.group(3)))
print(json.dumps(out))
