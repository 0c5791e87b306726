# A peer behind a network link that the suite can break: a network namespace
# joined to the host by a veth pair on 10.232.0.0/24 (names prefixed scf),
# packet drops by iptables inside that namespace only (the host's rules are
# never touched), and latency by tc netem where the kernel has it, else by a
# delaying TCP proxy in the namespace. Sourced by common.sh.
# shellcheck shell=bash

# shellcheck disable=SC2034 # addresses read by the case scripts
peer_host_ip=10.232.0.1 # host end of the veth
peer_ns_ip=10.232.0.2   # namespace end: the peer service listens here

# peer_netns_up: creates the namespace ($peer_ns) and the veth pair
# ($peer_host_link on the host, $peer_ns_link inside).
peer_netns_up() {
  local id=${SCF_RUN_ID:-$$}
  peer_ns="scf-$id-peer"
  peer_host_link="scf${id}h"
  peer_ns_link="scf${id}n"
  ip netns add "$peer_ns" && remember netns "$peer_ns"
  ip link add "$peer_host_link" type veth peer name "$peer_ns_link" && remember link "$peer_host_link"
  ip link set "$peer_ns_link" netns "$peer_ns"
  ip addr add "$peer_host_ip/24" dev "$peer_host_link"
  ip link set "$peer_host_link" up
  ip -n "$peer_ns" addr add "$peer_ns_ip/24" dev "$peer_ns_link"
  ip -n "$peer_ns" link set "$peer_ns_link" up
  ip -n "$peer_ns" link set lo up
}

# peer_drop NS PORT on|off: drop (or stop dropping) every packet to PORT in NS.
peer_drop() {
  local ns=$1 port=$2 action=-I
  [ "$3" = off ] && action=-D
  ip netns exec "$ns" iptables "$action" INPUT -p tcp --dport "$port" -j DROP
}

# netem_available NS LINK: whether this kernel has the netem qdisc.
netem_available() {
  if ip netns exec "$1" tc qdisc add dev "$2" root netem delay 1ms 2>/dev/null; then
    ip netns exec "$1" tc qdisc del dev "$2" root 2>/dev/null
    return 0
  fi
  return 1
}
