#!/usr/bin/env bash
# The image, built from the unmodified Dockerfile and run as ECS runs it
# (docs/image.md): with podman/buildah on local stand-ins for the two base
# images, because no Docker engine and no image registry are reachable here.
#
#   scripts/image.sh build       make the base stand-ins (once), then build the
#                                Dockerfile with --pull=never (cache mounts)
#   scripts/image.sh test        run the image with the task definitions'
#                                settings (read from IaC/*.tf) and check it
#   scripts/image.sh down        remove every container, image and network
#                                this script made (the cargo cache stays)
#   scripts/image.sh leftovers   list what is left; exit 1 if anything is
#
# Root only. Needs podman, buildah, runc, mmdebstrap, catatonit, jq, curl,
# grpcurl, h2load and a Rust 1.95.0 toolchain (rustup); .ci/run's image part
# installs them. Uses its own podman store (target/image/), network
# (status-image, 10.233.0.0/24) and container names (status-image-*).
set -euo pipefail

IMG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
lib=$IMG_ROOT/scripts/image
# shellcheck source=scripts/image/common.sh disable=SC1091
. "$lib/common.sh"
# shellcheck source=scripts/image/bases.sh disable=SC1091
. "$lib/bases.sh"
# shellcheck source=scripts/image/taskdef.sh disable=SC1091
. "$lib/taskdef.sh"
# shellcheck source=scripts/image/checks.sh disable=SC1091
. "$lib/checks.sh"

usage() {
  sed -n '6,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

require_tools() {
  local tool missing=()
  for tool in "$@"; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing tools: ${missing[*]} (bash .ci/run image installs them)"
  [ "$(id -u)" -eq 0 ] || die "run as root (podman with runc and its own store)"
}

cmd_build() {
  require_tools podman runc mmdebstrap rustup tar
  img_dirs
  local free_kb
  free_kb=$(df -Pk "$IMG_STATE" | awk 'NR == 2 {print $4}')
  say "build: $((free_kb / 1024 / 1024)) GB free under $IMG_STATE (the build needs about $IMG_NEEDS_GB GB)"
  [ "$free_kb" -ge $((IMG_NEEDS_GB * 1024 * 1024)) ] || die "less than $IMG_NEEDS_GB GB free under $IMG_STATE"
  make_runtime_base
  make_builder_base
  local started=$SECONDS
  say "build: podman build --pull=never -f Dockerfile (cache mounts under $IMG_STATE/tmp)"
  # --format docker: OCI image configs have no HEALTHCHECK; Docker's keeps it.
  # --network host: the RUN steps reach crates.io the way the host does.
  # --layers=false: vfs stores every layer as a full copy of the root
  # filesystem (1.2 GB for the builder), so no intermediate layers; the
  # cargo cache mounts keep a rebuild incremental anyway.
  pm build --pull=never --format docker --network host --layers=false \
    --build-arg "VCS_REF=$(git -C "$IMG_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    -f "$IMG_ROOT/Dockerfile" -t "$IMG_APP" "$IMG_ROOT" >&2
  say "build: $IMG_APP in $((SECONDS - started)) s"
  # The builder stage's layers are not needed to run the image.
  pm image prune --force >/dev/null
}

cmd_down() {
  remove_test_containers
  pm rmi --all --force >/dev/null 2>&1 || true
  rm -rf "$IMG_STATE/storage" "$IMG_STATE/networks" "$IMG_STATE/bases" "$IMG_STATE/test"
  rm -rf "$IMG_RUN"
  say "down: containers, images, network and store removed (cargo cache kept: $IMG_STATE/tmp)"
}

cmd_leftovers() {
  local left=()
  [ ! -d "$IMG_STATE/storage" ] || left+=("store $IMG_STATE/storage")
  [ ! -d "$IMG_RUN" ] || left+=("runtime state $IMG_RUN")
  local bridge
  bridge=$(ip -o addr show 2>/dev/null | awk -v net="${IMG_SUBNET%.*/*}." 'index($4, net) == 1 {print $2}')
  [ -z "$bridge" ] || left+=("bridge $bridge ($IMG_SUBNET)")
  if [ ${#left[@]} -gt 0 ]; then
    printf '%s\n' "${left[@]}"
    return 1
  fi
}

case "${1:-}" in
  build) cmd_build ;;
  test) cmd_test ;;
  down) cmd_down ;;
  leftovers) cmd_leftovers ;;
  *) usage ;;
esac
