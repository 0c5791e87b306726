#!/usr/bin/env bash
# Fails unless every `uses:` in the given workflow files pins its action to a
# full 40-hex commit SHA with the version it was read from as a comment:
#
#   - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1
#
# A tag or branch (`@v7`, `@main`) can be moved to other code after review; a
# commit SHA cannot. Local actions (`./...`) and `docker://` images pinned by
# digest are accepted.
#
# Usage: .github/check-action-pins.sh FILE...   (CI: .github/workflows/*.yml)
set -euo pipefail

[[ $# -gt 0 ]] || {
  echo "usage: $0 WORKFLOW_FILE..." >&2
  exit 2
}

readonly PINNED='^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40} # v[0-9]+\.[0-9]+\.[0-9]+$'
readonly DOCKER_DIGEST='^docker://[^ ]+@sha256:[0-9a-f]{64}$'

bad=0 count=0
for file in "$@"; do
  n=0
  while IFS= read -r line; do
    n=$((n + 1))
    [[ "${line}" =~ ^[[:space:]]*(-[[:space:]]+)?uses:[[:space:]]*(.*)$ ]] || continue
    ref="${BASH_REMATCH[2]}"
    ref="${ref%"${ref##*[![:space:]]}"}" # trailing blanks
    ref="${ref//\"/}"
    count=$((count + 1))
    if [[ "${ref}" == ./* || "${ref}" =~ ${PINNED} || "${ref}" =~ ${DOCKER_DIGEST} ]]; then
      continue
    fi
    echo "${file}:${n}: not pinned to a commit SHA with a '# vX.Y.Z' comment: ${ref}" >&2
    bad=$((bad + 1))
  done <"${file}"
done

if ((bad > 0)); then
  echo "${bad} of ${count} actions are not pinned" >&2
  exit 1
fi
echo "all ${count} actions pinned to a commit SHA"
