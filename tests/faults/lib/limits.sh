# Emulates a Fargate task's size (0.25 vCPU / 512 MiB by default) with
# cgroups, so the services run as starved as they do on ECS. cgroup v1 (this
# project's machines: one hierarchy per controller) and v2 (GitHub runners:
# one unified tree) are both handled; children are made under the test
# process's own cgroup (v2 falls back to the root when its own cgroup cannot
# delegate the controllers) and removed by cleanup. Sourced by common.sh.
# shellcheck shell=bash

# shellcheck disable=SC2034,SC2154 # defaults read by common.sh; case_name is set by common.sh
task_cpu_quota_us=25000     # of cfs_period_us 100000: 0.25 vCPU
task_cpu_period_us=100000
task_memory_bytes=536870912 # 512 MiB

cgroup_version() {
  if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; then echo 2; else echo 1; fi
}

# v1_own_dir CONTROLLER: this process's cgroup directory in that hierarchy.
v1_own_dir() {
  local controller=$1 mount path
  mount=$(awk -v c="$controller" '$9 == "cgroup" { n = split($NF, o, ","); for (i = 1; i <= n; i++) if (o[i] == c) print $5 }' /proc/self/mountinfo | head -1)
  path=$(awk -F: -v c="$controller" '{ n = split($2, o, ","); for (i = 1; i <= n; i++) if (o[i] == c) print $3 }' /proc/self/cgroup | head -1)
  [ -n "$mount" ] && [ -n "$path" ] || return 1
  echo "${mount}${path%/}"
}

# v2_parent: a cgroup v2 directory whose children can use cpu and memory.
v2_parent() {
  local own candidate
  own=/sys/fs/cgroup$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)
  for candidate in "${own%/}" /sys/fs/cgroup; do
    if grep -qw cpu "$candidate/cgroup.subtree_control" 2>/dev/null &&
      grep -qw memory "$candidate/cgroup.subtree_control" 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
    # Enabling fails in a non-root cgroup that holds processes (v2's
    # no-internal-process rule): then try the next candidate.
    if echo "+cpu +memory" >"$candidate/cgroup.subtree_control" 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# task_cgroup LABEL CPU_QUOTA_US|none MEMORY_BYTES|none: makes the cgroup(s)
# of one emulated task and prints the cgroup.procs file(s) to join.
task_cgroup() {
  local label=$1 cpu=$2 mem=$3 name dir
  name="scf-${SCF_RUN_ID:-$$}-${case_name}-$label"
  if [ "$(cgroup_version)" = 2 ]; then
    [ "$cpu" = none ] && [ "$mem" = none ] && return 0
    local parent
    parent=$(v2_parent) || { echo "cgroup v2: no parent can delegate cpu and memory" >&2; return 1; }
    dir="$parent/$name"
    mkdir "$dir" && remember cgroup "$dir"
    [ "$cpu" = none ] || echo "$cpu $task_cpu_period_us" >"$dir/cpu.max"
    if [ "$mem" != none ]; then
      echo "$mem" >"$dir/memory.max"
      [ -f "$dir/memory.swap.max" ] && echo 0 >"$dir/memory.swap.max"
    fi
    echo "$dir/cgroup.procs"
    return 0
  fi
  if [ "$cpu" != none ]; then
    dir="$(v1_own_dir cpu)/$name" || { echo "cgroup v1: no cpu hierarchy" >&2; return 1; }
    mkdir "$dir" && remember cgroup "$dir"
    echo "$task_cpu_period_us" >"$dir/cpu.cfs_period_us"
    echo "$cpu" >"$dir/cpu.cfs_quota_us"
    echo "$dir/cgroup.procs"
  fi
  if [ "$mem" != none ]; then
    dir="$(v1_own_dir memory)/$name" || { echo "cgroup v1: no memory hierarchy" >&2; return 1; }
    mkdir "$dir" && remember cgroup "$dir"
    echo "$mem" >"$dir/memory.limit_in_bytes"
    [ -f "$dir/memory.memsw.limit_in_bytes" ] && echo "$mem" >"$dir/memory.memsw.limit_in_bytes" 2>/dev/null
    echo "$dir/cgroup.procs"
  fi
}

# oom_kills LABEL: OOM kills recorded in that task's memory cgroup (0 if none).
oom_kills() {
  local name="scf-${SCF_RUN_ID:-$$}-${case_name}-$1" file
  if [ "$(cgroup_version)" = 2 ]; then
    file="$(v2_parent 2>/dev/null)/$name/memory.events"
    awk '$1 == "oom_kill" { print $2; found = 1 } END { if (!found) print 0 }' "$file" 2>/dev/null || echo 0
  else
    file="$(v1_own_dir memory)/$name/memory.oom_control"
    awk '$1 == "oom_kill" { print $2; found = 1 } END { if (!found) print 0 }' "$file" 2>/dev/null || echo 0
  fi
}
