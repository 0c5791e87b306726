#!/usr/bin/env bash
# Builds the OpenTelemetry Collector of tests/traces/collector (OTLP
# receiver, batch processor, debug and file exporters) from the Go module
# proxy into target/traces-collector, unless the sources are unchanged since
# the last build. About 1.5 min cold on an idle machine. Prints its path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
collector=$root/target/traces-collector
command -v go >/dev/null || { echo "build-collector: go is missing (https://go.dev/dl, or apt-get install golang-go if >= 1.25)" >&2; exit 1; }
stamp=$(cat "$here"/collector/go.mod "$here"/collector/go.sum "$here"/collector/*.go | sha256sum | cut -c1-16)
if [ ! -x "$collector" ] || [ "$(cat "$collector.stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "build-collector: building $collector (about 1.5 min cold)" >&2
  mkdir -p "$root/target"
  (cd "$here/collector" && GOFLAGS=-mod=readonly GOTOOLCHAIN=local \
    go build -trimpath -ldflags='-s -w' -o "$collector" .)
  echo "$stamp" >"$collector.stamp"
fi
echo "$collector"
