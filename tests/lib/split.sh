# A split-memory VM on test hosts: memory servers in hosts 1..N, the patched
# QEMU in host 0. Source after common.sh, guest.sh and hosts.sh; needs
# DCRES_QEMU and DCRES_MEMSERVER.
#   split_servers_up N CAPACITY    start N memory servers (hosts 1..N must
#                                  exist); sets SPLIT_SERVERS and SPLIT_KEY
#   split_guest_start NAME MEM LOCAL QEMU_ARGS...
#                                  start a guest of MEM RAM with LOCAL of it
#                                  resident in host 0, the rest paged to the
#                                  servers
#   split_rss_mib PID              resident memory of a process, in MiB

split_servers_up() {
  local n=$1 cap=$2 k
  [ -x "${DCRES_MEMSERVER:-}" ] || fail "dcres-memserver not found (DCRES_MEMSERVER=${DCRES_MEMSERVER:-unset})"
  SPLIT_KEY=$TEST_TMP/psk
  head -c 24 /dev/urandom | base64 > "$SPLIT_KEY"
  chmod 600 "$SPLIT_KEY"
  SPLIT_SERVERS=
  for ((k = 1; k <= n; k++)); do
    host_exec $k "$DCRES_MEMSERVER" --listen "$(host_addr $k):7700" --capacity "$cap" \
      --dir "$TEST_TMP/store$k" --psk-file "$SPLIT_KEY" --no-populate \
      2> "$TEST_TMP/memserver$k.log" &
    SPLIT_SERVERS+="${SPLIT_SERVERS:+;}$(host_addr $k):7700"
  done
  for ((k = 1; k <= n; k++)); do
    for _ in $(seq 100); do grep -q listening "$TEST_TMP/memserver$k.log" && break; sleep 0.1; done
    grep -q listening "$TEST_TMP/memserver$k.log" \
      || fail "memory server $k did not start: $(cat "$TEST_TMP/memserver$k.log")"
  done
}

split_guest_start() {
  local name=$1 mem=$2 local_size=$3; shift 3
  "$DCRES_QEMU" -object help | grep -q dcres-split || fail "this QEMU has no dcres-split object"
  GUEST_HOST=0 guest_start "$name" "$@" -uuid "$(cat /proc/sys/kernel/random/uuid)" \
    -object "memory-backend-ram,id=ram0,size=$mem" -machine memory-backend=ram0 \
    -object "dcres-split,id=s0,memdev=ram0,local-size=$local_size,servers=$SPLIT_SERVERS,psk-file=$SPLIT_KEY"
}

split_rss_mib() { awk '/^VmRSS/ { print int($2 / 1024) }' "/proc/$1/status"; }
