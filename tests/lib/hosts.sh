# Multi-host test harness: N test hosts as network namespaces joined through
# veth pairs to a bridge that lives in a namespace of its own (the machine's
# own network is never touched). Source after common.sh.
#
#   hosts_up N          create hosts 0..N-1 (0 is the main host by convention)
#   host_addr K         print host K's address
#   host_exec K CMD...  run CMD inside host K
#   host_disks DIR      give each host K a private disk DIR/disk-K (made
#                       here): inside host K every other host's disk is
#                       hidden (an empty tmpfs over it), as on separate
#                       machines; host_disk K prints its path
#   host_cut K          cut host K's link (its packets are dropped)
#   host_restore K      restore host K's link
#   hosts_down          kill every process in the hosts, delete them; runs by
#                       itself at exit, after a failure or Ctrl-C
#
# HOSTS_MODE is "netns", or "loopback" where namespaces are unavailable (not
# root, no CAP_SYS_ADMIN, no iproute2): then every host is this machine with
# address 127.0.0.(K+1), processes are not separated and links cannot be cut.
# DCRES_NET_PREFIX (default 10.99.0) sets the test hosts' /24; it is only
# routed inside the namespaces.

HOSTS_PREFIX="dcres$$"
HOSTS_N=0
HOSTS_MODE=
HOSTS_DISKS=

_hosts_ns() { echo "$HOSTS_PREFIX-h$1"; }
_hosts_sw() { echo "$HOSTS_PREFIX-sw"; }

# Deletes namespaces left behind by harness users that died without cleaning
# up (SIGKILL): their names carry the pid of a process that no longer exists.
_hosts_reap_stale() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^dcres[0-9]+-' || true); do
    pid=${ns#dcres}; pid=${pid%%-*}
    kill -0 "$pid" 2>/dev/null && continue
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}

_hosts_netns_usable() {
  [ "$(id -u)" -eq 0 ] || return 1
  command -v ip >/dev/null || return 1
  ip netns add "$HOSTS_PREFIX-probe" 2>/dev/null || return 1
  ip netns del "$HOSTS_PREFIX-probe"
}

hosts_up() {
  local n=$1 k sw ns net=${DCRES_NET_PREFIX:-10.99.0}
  HOSTS_N=$n
  at_exit hosts_down
  if ! _hosts_netns_usable; then
    HOSTS_MODE=loopback
    note "network namespaces unavailable: test hosts fall back to 127.0.0.x on this machine (links cannot be cut)"
    return 0
  fi
  HOSTS_MODE=netns
  _hosts_reap_stale
  sw=$(_hosts_sw)
  ip netns add "$sw"
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" link set br0 up
  for ((k = 0; k < n; k++)); do
    ns=$(_hosts_ns "$k")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" link add eth0 type veth peer name "p$k" netns "$sw"
    ip -n "$ns" addr add "$net.$((k + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$sw" link set "p$k" master br0
    ip -n "$sw" link set "p$k" up
  done
}

host_addr() {
  if [ "$HOSTS_MODE" = netns ]; then
    echo "${DCRES_NET_PREFIX:-10.99.0}.$(($1 + 1))"
  else
    echo "127.0.0.$(($1 + 1))"
  fi
}

host_disks() {
  local k
  [ "$HOSTS_MODE" = netns ] || fail "private disks need network namespaces (HOSTS_MODE=$HOSTS_MODE)"
  HOSTS_DISKS=$1
  for ((k = 0; k < HOSTS_N; k++)); do mkdir -p "$HOSTS_DISKS/disk-$k"; done
}

host_disk() { echo "$HOSTS_DISKS/disk-$1"; }

# The command prefix that runs a command inside host K: its namespace
# (ip netns exec gives it a mount namespace of its own) with the other
# hosts' disks hidden.
_hosts_cmd() {
  local k=$1 j hide=
  HOSTS_CMD=(ip netns exec "$(_hosts_ns "$k")")
  [ -n "$HOSTS_DISKS" ] || return 0
  for ((j = 0; j < HOSTS_N; j++)); do
    [ "$j" -eq "$k" ] || hide+=" $HOSTS_DISKS/disk-$j"
  done
  HOSTS_CMD+=(sh -c 'for d in '"$hide"'; do mount -t tmpfs -o size=1m hidden "$d" || exit 125; done; exec "$@"' sh)
}

host_exec() {
  local k=$1; shift
  if [ "$HOSTS_MODE" = netns ]; then
    _hosts_cmd "$k"
    "${HOSTS_CMD[@]}" "$@"
  else
    "$@"
  fi
}

host_cut() {
  [ "$HOSTS_MODE" = netns ] || fail "host_cut needs network namespaces (HOSTS_MODE=$HOSTS_MODE)"
  ip -n "$(_hosts_sw)" link set "p$1" down
}

host_restore() {
  [ "$HOSTS_MODE" = netns ] || fail "host_restore needs network namespaces (HOSTS_MODE=$HOSTS_MODE)"
  ip -n "$(_hosts_sw)" link set "p$1" up
}

hosts_down() {
  local k ns
  [ "$HOSTS_MODE" = netns ] || { HOSTS_MODE=; return 0; }
  for ((k = 0; k < HOSTS_N; k++)); do
    ns=$(_hosts_ns "$k")
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
  done
  sleep 0.2
  for ((k = 0; k < HOSTS_N; k++)); do
    ns=$(_hosts_ns "$k")
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  ip netns del "$(_hosts_sw)" 2>/dev/null || true
  HOSTS_MODE=
}
