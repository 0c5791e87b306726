# shellcheck shell=bash disable=SC2034
# Names, paths and the podman wrapper of scripts/image.sh (docs/image.md).
# Sourced, never run on its own. (SC2034 is off: the other parts use these.)
#
# Everything image.sh makes lives in its own podman store under
# target/image/ (images, containers, the network's configuration) and in
# /run/status-image-<hash>/ (runtime state), so it never touches another
# podman user's images and `down` can remove all of it.

IMG_STATE=${IMG_STATE:-$IMG_ROOT/target/image}
# Runtime state must be short (socket paths) and on tmpfs: keyed by the
# repository's path so two clones do not share it.
IMG_RUN=/run/status-image-$(printf '%s' "$IMG_ROOT" | md5sum | cut -c1-8)

# The two base images, tagged as the Dockerfile names them (the short name
# rust:1.95-bookworm is docker.io/library/rust:1.95-bookworm).
IMG_BUILDER_BASE=docker.io/library/rust:1.95-bookworm
IMG_RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot
# The image the Dockerfile builds.
IMG_APP=${IMG_APP:-localhost/status-service:image-test}
IMG_SUITE=bookworm
# The Rust toolchain the builder stand-in carries: the one on this machine
# whose rustc reports this version (the workspace's rust-version).
IMG_RUST_VERSION=1.95.0

# nproc for the containers: the task definition sets none (Fargate's
# default applies), but podman's default fails here with EPERM, and so does
# a value near this host's hard limit; 4096 is far above the app's threads.
IMG_NPROC=4096

# Free space `build` needs (vfs keeps full copies): the builder stand-in,
# its working copy, the cargo cache, the stand-ins' temporary root.
IMG_NEEDS_GB=5

# The test's network and addresses (a /24 no other script here uses).
IMG_NETWORK=status-image
IMG_SUBNET=10.233.0.0/24
IMG_CONTAINER_PREFIX=status-image-

say() { printf '%s\n' "$*" >&2; }
die() {
  say "image: $*"
  exit 1
}

# podman as it works on these hosts (docs/image.md): runc (crun refuses the
# hybrid cgroup hierarchy), vfs storage, cgroupfs, file events, and a store
# of our own.
pm() {
  TMPDIR=$IMG_STATE/tmp podman \
    --root "$IMG_STATE/storage" \
    --runroot "$IMG_RUN/runroot" \
    --tmpdir "$IMG_RUN/libpod" \
    --network-config-dir "$IMG_STATE/networks" \
    --storage-driver vfs \
    --runtime runc \
    --cgroup-manager cgroupfs \
    --events-backend file \
    "$@"
}

img_dirs() {
  mkdir -p "$IMG_STATE/tmp" "$IMG_STATE/networks" "$IMG_STATE/bases" "$IMG_RUN"
}

# The host's hard limit for a ulimit name (podman cannot raise it).
host_hard_limit() {
  case "$1" in
    nofile) ulimit -Hn ;;
    nproc) ulimit -Hu ;;
    *) die "no host limit known for ulimit '$1'" ;;
  esac
}

# min(value, host hard limit); "unlimited" counts as no cap.
capped_limit() {
  local value=$1 hard
  hard=$(host_hard_limit "$2")
  if [ "$hard" != unlimited ] && [ "$value" -gt "$hard" ]; then
    printf '%s\n' "$hard"
  else
    printf '%s\n' "$value"
  fi
}
