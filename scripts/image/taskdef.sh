# shellcheck shell=bash
# The task definitions' container settings as `podman run` arguments.
# Sourced by scripts/image.sh. The settings are not copied here: they are
# evaluated from IaC/*.tf by IaC/checks/src/bin/container-definitions.rs
# (the contract test's evaluator) and translated field by field:
#
#   environment             --env NAME=VALUE each
#   user                    --user
#   readonlyRootFilesystem  --read-only --read-only-tmpfs=false (no tmpfs
#                           that ECS would not add either)
#   ulimits                 --ulimit name=soft:hard, capped at this host's
#                           hard limit (podman cannot raise it; said in the
#                           test's output); nproc, which the task definition
#                           leaves to Fargate, is set to $IMG_NPROC because
#                           podman's default fails here with EPERM
#   portMappings            --publish 127.0.0.1::containerPort (awsvpc: the
#                           task's own address; here a free host port so
#                           nothing else on this machine is in the way)
#   stopTimeout             --stop-timeout
#   healthCheck             --health-cmd (the same exec-form argv) and its
#                           interval, timeout, retries, start period
#   linuxParameters.initProcessEnabled   --init (catatonit as PID 1)
# PEER_URL's host (the peer's Service Connect name) resolves to the peer
# container's address on the test network (--add-host), which stands in for
# Service Connect without its proxy.

# Evaluates the container definitions into $IMG_STATE/test/definitions.json.
load_definitions() {
  mkdir -p "$IMG_STATE/test"
  (cd "$IMG_ROOT" && cargo run --quiet --locked -p iac-checks --bin container-definitions) \
    >"$IMG_STATE/test/definitions.json" || die "could not evaluate the container definitions from IaC/*.tf"
  jq -e 'length > 0' "$IMG_STATE/test/definitions.json" >/dev/null || die "no container definitions in IaC/*.tf"
}

definition() { jq -c --arg s "$1" '.[$s]' "$IMG_STATE/test/definitions.json"; }
services() { jq -r 'keys[]' "$IMG_STATE/test/definitions.json"; }
container_name() { printf '%s%s\n' "$IMG_CONTAINER_PREFIX" "$1"; }
# The service's address on the test network: .11, .12, ... in key order.
service_ip() {
  local index
  index=$(jq -r --arg s "$1" 'keys | index($s)' "$IMG_STATE/test/definitions.json")
  printf '10.233.0.%s\n' "$((11 + index))"
}
env_value() { definition "$1" | jq -r --arg n "$2" '.environment[] | select(.name == $n) | .value'; }
container_port() { definition "$1" | jq -r '.portMappings[0].containerPort'; }
# The service listening on the port of SERVICE's PEER_URL.
peer_of() {
  local url port
  url=$(env_value "$1" PEER_URL)
  port=${url##*:}
  port=${port%%/*}
  jq -r --argjson p "$port" 'to_entries[] | select(.value.portMappings[0].containerPort == $p) | .key' \
    "$IMG_STATE/test/definitions.json"
}
peer_host() {
  local url
  url=$(env_value "$1" PEER_URL)
  url=${url#*://}
  printf '%s\n' "${url%%:*}"
}

# `podman run` arguments for SERVICE, one per line.
run_args() {
  local service=$1 def name limit soft hard cap_soft cap_hard peer
  def=$(definition "$service")
  printf '%s\n' --name "$(container_name "$service")" --detach
  printf '%s\n' --network "$IMG_NETWORK" --ip "$(service_ip "$service")"
  peer=$(peer_of "$service")
  [ -z "$peer" ] || printf '%s\n' --add-host "$(peer_host "$service"):$(service_ip "$peer")"
  jq -r '.environment[] | "--env\n\(.name)=\(.value)"' <<<"$def"
  printf '%s\n' --user "$(jq -r '.user' <<<"$def")"
  if [ "$(jq -r '.readonlyRootFilesystem' <<<"$def")" = true ]; then
    printf '%s\n' --read-only --read-only-tmpfs=false
  fi
  while read -r name soft hard; do
    cap_soft=$(capped_limit "$soft" "$name")
    cap_hard=$(capped_limit "$hard" "$name")
    printf '%s\n' --ulimit "$name=$cap_soft:$cap_hard"
  done < <(jq -r '.ulimits[]? | "\(.name) \(.softLimit) \(.hardLimit)"' <<<"$def")
  if ! jq -e '.ulimits[]? | select(.name == "nproc")' <<<"$def" >/dev/null; then
    limit=$(capped_limit "$IMG_NPROC" nproc)
    printf '%s\n' --ulimit "nproc=$limit:$limit"
  fi
  jq -r '.portMappings[] | "--publish\n127.0.0.1::\(.containerPort)/\(.protocol // "tcp")"' <<<"$def"
  printf '%s\n' --stop-timeout "$(jq -r '.stopTimeout' <<<"$def")"
  if jq -e '.healthCheck' <<<"$def" >/dev/null; then
    # ECS's ["CMD", argv...] is podman's JSON argv; ["CMD-SHELL", "..."] is
    # podman's plain string (run with /bin/sh -c, which this image lacks).
    printf '%s\n' --health-cmd "$(jq -r '.healthCheck.command |
      if .[0] == "CMD" then .[1:] | tojson elif .[0] == "CMD-SHELL" then .[1] else tojson end' <<<"$def")"
    jq -r '.healthCheck | "--health-interval\n\(.interval)s\n--health-timeout\n\(.timeout)s\n--health-retries\n\(.retries)\n--health-start-period\n\(.startPeriod)s"' <<<"$def"
  fi
  if [ "$(jq -r '.linuxParameters.initProcessEnabled // false' <<<"$def")" = true ]; then
    printf '%s\n' --init
  fi
}

# What the task definition sets that the container cannot have here.
ulimit_notes() {
  local service=$1 name soft hard cap
  while read -r name soft hard; do
    cap=$(capped_limit "$hard" "$name")
    [ "$cap" = "$hard" ] || printf '%s: ulimit %s %s:%s capped at this host'"'"'s hard limit %s\n' "$service" "$name" "$soft" "$hard" "$cap"
  done < <(definition "$service" | jq -r '.ulimits[]? | "\(.name) \(.softLimit) \(.hardLimit)"')
}

# The host port podman published for SERVICE's container port.
host_port() {
  pm port "$(container_name "$1")" "$(container_port "$1")/tcp" | sed -n '1s/.*://p'
}
