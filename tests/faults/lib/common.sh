# Shared by run.sh and every case script of the fault suite: where files go,
# starting the release binary as one service (in its emulated Fargate task:
# cgroup, network namespace, open-file limit), measuring it, recording what
# was created so that cleanup removes it even after a failure, and writing
# the result rows. Sourced, never run.
# shellcheck shell=bash

# shellcheck disable=SC2034 # variables used by the scripts that source this

faults_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
repo_root=$(cd "$faults_dir/../.." && pwd)
clients="$faults_dir/clients"
: "${SCF_BINARY:=$repo_root/target/release/status-service}"
: "${SCF_WORK:=$repo_root/target/faults}"
: "${SCF_RESULTS:=$SCF_WORK/results.tsv}"
# Addresses and names reserved for this suite on shared machines.
scf_host=127.0.0.4

# This case's files; its resources list is what cleanup undoes.
case_name=${SCF_CASE:-adhoc}
case_dir="$SCF_WORK/$case_name"
resources="$case_dir/resources"
mkdir -p "$case_dir"
touch "$resources"

# shellcheck source=tests/faults/lib/limits.sh
source "$faults_dir/lib/limits.sh"
# shellcheck source=tests/faults/lib/netns.sh
source "$faults_dir/lib/netns.sh"

log() { printf '[%s %s] %s\n' "$(date +%T.%3N)" "$case_name" "$*" >&2; }

now() { date +%s.%N; }
# elapsed START: seconds since START (from now), 3 decimals.
elapsed() { python3 -c 'import sys,time; print(f"{time.time()-float(sys.argv[1]):.3f}")' "$1"; }

# remember KIND VALUE: something cleanup must undo (pid, netns, link, cgroup).
remember() { printf '%s %s\n' "$1" "$2" >>"$resources"; }

# cleanup_resources FILE: undoes everything FILE lists, newest first. Safe to
# run twice (the case's trap and then run.sh's sweep).
cleanup_resources() {
  local file=$1 kind value
  [ -s "$file" ] || return 0
  # Processes first (they hold cgroups and namespaces), then the rest.
  while read -r kind value; do
    [ "$kind" = pid ] || continue
    if kill -0 "$value" 2>/dev/null; then
      kill -CONT "$value" 2>/dev/null || true
      kill -KILL "$value" 2>/dev/null || true
      wait "$value" 2>/dev/null || true
    fi
  done < <(tac "$file")
  while read -r kind value; do
    [ "$kind" = pid ] || continue
    for _ in $(seq 50); do kill -0 "$value" 2>/dev/null || break; sleep 0.1; done
  done < <(tac "$file")
  while read -r kind value; do
    case $kind in
      netns) ip netns del "$value" 2>/dev/null || true ;;
      link) ip link del "$value" 2>/dev/null || true ;;
      cgroup)
        for _ in $(seq 30); do
          [ -d "$value" ] || break
          rmdir "$value" 2>/dev/null && break
          sleep 0.1
        done
        ;;
    esac
  done < <(tac "$file")
  : >"$file"
}

case_cleanup() {
  local status=$?
  jobs -p | xargs -r kill 2>/dev/null || true
  cleanup_resources "$resources"
  return "$status"
}

# --- result rows ----------------------------------------------------------

# row SUB EXPECTED OBSERVED VERDICT: one line of the table (tab-separated).
row() {
  local name=$case_name${1:+/$1}
  printf '%s\t%s\t%s\t%s\n' "$name" "$2" "$3" "$4" >>"$SCF_RESULTS"
  printf '%-4s %s: %s | observed: %s\n' "$4" "$name" "$2" "$3" >&2
}

# judge SUB EXPECTED OBSERVED FACTS CHECK...: a row that PASSes when every
# CHECK (a jq boolean over the FACTS JSON file) holds; failed checks are
# appended to OBSERVED so the table says what broke.
judge() {
  local sub=$1 expected=$2 observed=$3 facts=$4 check failed=()
  shift 4
  for check in "$@"; do
    jq -e "$check" "$facts" >/dev/null 2>&1 || failed+=("$check")
  done
  if [ ${#failed[@]} -eq 0 ]; then
    row "$sub" "$expected" "$observed" PASS
  else
    local IFS=';'
    row "$sub" "$expected" "$observed; failed: ${failed[*]}" FAIL
  fi
}

# facts_merge OUT FILE_OR_JSON...: one JSON object from several (later keys win).
facts_merge() {
  local out=$1 item
  shift
  for item in "$@"; do
    if [ -f "$item" ]; then cat "$item"; else printf '%s\n' "$item"; fi
  done | jq -s 'add' >"$out.tmp"
  mv "$out.tmp" "$out"
}

# --- the service under test ------------------------------------------------

declare -A service_pid=() service_log=()

# start_service LABEL [--netns NS] [--cpu QUOTA_US|none] [--mem BYTES|none]
#               [--nofile N] -- NAME=VALUE...
# Starts `status-service serve` with these environment variables, in its own
# emulated task: cgroups (default 0.25 vCPU / 512 MiB), an optional network
# namespace and an optional hard+soft open-file limit. Logs go to
# $case_dir/LABEL.log; the pid is ${service_pid[LABEL]}.
start_service() {
  local label=$1 netns="" cpu=$task_cpu_quota_us mem=$task_memory_bytes nofile=""
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --netns) netns=$2; shift 2 ;;
      --cpu) cpu=$2; shift 2 ;;
      --mem) mem=$2; shift 2 ;;
      --nofile) nofile=$2; shift 2 ;;
      --) shift; break ;;
      *) echo "start_service: unknown option $1" >&2; return 2 ;;
    esac
  done
  local procs_files=()
  mapfile -t procs_files < <(task_cgroup "$label" "$cpu" "$mem")
  local log_file="$case_dir/$label.log"
  local launch=()
  [ -n "$netns" ] && launch+=(ip netns exec "$netns")
  [ -n "$nofile" ] && launch+=(prlimit "--nofile=$nofile:$nofile" --)
  (
    for procs in "${procs_files[@]}"; do echo "$BASHPID" >"$procs"; done
    exec "${launch[@]}" env LOG_FORMAT=json RUST_LOG="${SCF_RUST_LOG:-info}" "$@" "$SCF_BINARY" serve
  ) >"$log_file" 2>&1 &
  local pid=$!
  remember pid "$pid"
  service_pid[$label]=$pid
  service_log[$label]=$log_file
  log "started $label (pid $pid${netns:+, netns $netns}${nofile:+, nofile $nofile}, cpu quota $cpu, memory $mem)"
}

# wait_healthy URL [SECONDS]: until URL answers 200 (default 10 s).
wait_healthy() {
  local url=$1 limit=${2:-10} deadline
  deadline=$(($(date +%s) + limit))
  while [ "$(date +%s)" -le "$deadline" ]; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url")" = 200 ] && return 0
    sleep 0.1
  done
  log "not healthy after ${limit}s: $url"
  return 1
}

# must_be_healthy LABEL URL: as wait_healthy, else a FAIL row and the end of the case.
must_be_healthy() {
  wait_healthy "$2" 10 && return 0
  row "" "$1 starts and answers $2" "not healthy after 10 s; log: $(tail -n 3 "${service_log[$1]}" | tr '\n' ' ' | cut -c1-300)" FAIL
  exit 1
}

# stop_service LABEL: SIGTERM, then SIGKILL after 3 s.
stop_service() {
  local pid=${service_pid[$1]}
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

alive() { kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# cpu_seconds PID: user + system CPU time of the process (all threads).
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($14 + $15) / hz }' "/proc/$1/stat"
}
# rss_mib PID [FIELD]: VmRSS (or VmHWM, the peak) in MiB.
rss_mib() {
  awk -v f="${2:-VmRSS}:" '$1 == f { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"
}

# health_probe URL: "<epoch> <code> <seconds> <connect seconds>" of one GET
# (2 s at most; a connect near 1 s is a dropped SYN, retried), one line even
# when the GET fails: curl writes its -w line then too (code 000).
health_probe() {
  local started result
  started=$(date +%s.%N)
  result=$(curl -s -o /dev/null -w '%{http_code} %{time_total} %{time_connect}' --max-time 2 "$1") || true
  printf '%s %s\n' "$started" "${result:-000 2 0}"
}
# health_poller URL OUT: a probe every 250 ms appended to OUT, until killed.
# Prints its pid.
health_poller() {
  local url=$1 out=$2
  (
    while :; do
      health_probe "$url" >>"$out"
      sleep 0.25
    done
  ) >/dev/null 2>&1 &
  remember pid $!
  echo $!
}
# health_probes URL COUNT OUT: COUNT probes 250 ms apart appended to OUT (a
# fixed number, where a window's count would vary).
health_probes() {
  local url=$1 count=$2 out=$3 i
  for ((i = 0; i < count; i++)); do
    health_probe "$url" >>"$out"
    sleep 0.25
  done
}
# health_summary OUT [FROM_EPOCH [TO_EPOCH]]: JSON {"probes","ok","max_s"} of
# a poller's probes started in that window.
health_summary() {
  awk -v from="${2:-0}" -v to="${3:-1e12}" '
    BEGIN { n = 0; ok = 0; max = 0 }
    $1 >= from && $1 <= to { n++; if ($2 == "200") ok++; if ($3 + 0 > max) max = $3 + 0 }
    END { printf "{\"probes\":%d,\"ok\":%d,\"max_s\":%.3f}\n", n, ok, max }' "$1"
}

# conn_sampler PID PORT OUT: every 200 ms, the local ports of PID's
# established TCP connections to PORT, one sample per line, until killed.
# Prints its pid. A connection torn down and reopened shows a new port.
conn_sampler() {
  local pid=$1 port=$2 out=$3
  (
    while :; do
      ss -Htnp state established "( dport = :$port )" 2>/dev/null |
        awk -v p="pid=$pid," 'index($0, p) { n = split($3, a, ":"); printf "%s ", a[n] } END { print "" }' >>"$out"
      sleep 0.2
    done
  ) >/dev/null 2>&1 &
  remember pid $!
  echo $!
}
# conn_summary OUT: JSON {"samples","max_open","distinct_ports"} of a sampler's file.
conn_summary() {
  awk '{ if (NF > max) max = NF; for (i = 1; i <= NF; i++) seen[$i] = 1; n++ }
       END { d = 0; for (k in seen) d++; printf "{\"samples\":%d,\"max_open\":%d,\"distinct_ports\":%d}\n", n, max, d }' "$1"
}

# h2load_run ARGS...: runs h2load (bounded), prints its report as JSON.
h2load_run() {
  timeout 120 h2load "$@" 2>&1 | tee -a "$case_dir/h2load.txt" | python3 "$clients/h2load_report.py"
}

# log_scan LOG...: JSON summary of service logs: lines by level and the
# access lines, counted by request id (clients/logscan.py).
log_scan() { python3 "$clients/logscan.py" "$@"; }

# grpc_stubs: generated Python modules for the Status API (run.sh makes them).
export SCF_GEN="$SCF_WORK/gen"
export PYTHONPATH="$clients:$SCF_GEN${PYTHONPATH:+:$PYTHONPATH}"
