"""Self cost per call, by function, of two callgrind dumps (the service's
front and the bare two-hop's), largest gap first: the table front-diff.sh
prints. Generic parameters are stripped from names so that one function's
instances add up.

    python3 bench/callgrind_diff.py SERVICE_DUMP BARE_DUMP CALLS [ROWS]
"""

import collections
import re
import sys


def self_costs(path):
    """Instructions by function name, self cost only (a call line's cost,
    the callee's inclusive cost, is skipped)."""
    costs = collections.Counter()
    function = None
    after_call = False
    with open(path, errors="replace") as dump:
        for line in dump:
            if line.startswith("fn="):
                function = short(line[3:].strip())
            elif line.startswith("calls="):
                after_call = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                fields = line.split()
                if after_call:
                    after_call = False
                elif len(fields) >= 2:
                    costs[function] += int(fields[1])
    return costs


def short(name):
    while True:
        stripped = re.sub(r"<[^<>]*>", "", name)
        if stripped == name:
            return stripped[:110]
        name = stripped


def main():
    service, bare = self_costs(sys.argv[1]), self_costs(sys.argv[2])
    calls = int(sys.argv[3])
    rows = int(sys.argv[4]) if len(sys.argv) > 4 else 40
    print(f"instructions per call: service {sum(service.values()) / calls:,.0f}, "
          f"bare {sum(bare.values()) / calls:,.0f}")
    print(f"{'service':>9} {'bare':>9} {'gap':>9}  function (self cost)")
    names = sorted(set(service) | set(bare), key=lambda n: bare[n] - service[n])
    for name in names[:rows]:
        print(f"{service[name] / calls:9,.0f} {bare[name] / calls:9,.0f} "
              f"{(service[name] - bare[name]) / calls:9,.0f}  {name}")


if __name__ == "__main__":
    main()
