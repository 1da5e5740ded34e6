# A split-memory VM on test hosts: memory servers in hosts 1..N, the patched
# QEMU in host 0. Sourcing it sources common.sh, guest.sh and hosts.sh; needs
# DCRES_QEMU and DCRES_MEMSERVER. QMP is the test QMP client (qmp.py).
#   split_hosts_up N               skip unless root with network namespaces;
#                                  create test hosts 0..N (room for N servers)
#   split_servers_up N CAPACITY    start N memory servers (hosts 1..N must
#                                  exist); sets SPLIT_SERVERS and SPLIT_KEY;
#                                  their --dir is SPLIT_CKPT_ROOT, which the
#                                  guests' dcres-split names as ckpt-root
#                                  (the shared checkpoint directory); with
#                                  SPLIT_STORAGE=local each host has a
#                                  private disk instead (host_disks): a
#                                  server's --dir is its own, and
#                                  SPLIT_CKPT_ROOT host 0's
#   split_server_start K CAPACITY  (re)start the memory server of host K
#   split_server_wait K            wait for that server to listen
#   split_server_pid K             pid of the memory server in host K
#   split_server_fault K ACTION MSG
#                                  the server of host K stops (ACTION stop)
#                                  or is killed (kill) just before it next
#                                  handles request MSG, e.g. MSG_CKPT_FINAL
#   split_server_wait_fault K      wait (up to 60 s) until that fault fired:
#                                  the server is stopped, or gone
#   split_guest_start NAME MEM LOCAL QEMU_ARGS...
#                                  start a guest of MEM RAM with LOCAL of it
#                                  resident in host 0, the rest paged to the
#                                  servers
#   split_guest_passes NAME N TIMEOUT
#                                  wait for the verifier's pass N and note
#                                  its line; fail at once if a pass finds
#                                  errors or the verifier exits, and if no
#                                  page was rewritten by pass N
#   split_check_rss NAME QEMU_MAX SERVER_MIN
#                                  fail unless guest NAME's QEMU holds less
#                                  than QEMU_MAX MiB and every server more
#                                  than SERVER_MIN MiB (the split is real)
#   split_rss_mib PID              resident memory of a process, in MiB
#   split_dcres NAME               guest NAME's query-dcres answer (JSON,
#                                  keys sorted)
#   split_paging INFO              "PAGE_INS PAGE_OUTS" of a split_dcres answer

. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$(dirname "${BASH_SOURCE[0]}")/guest.sh"
. "$(dirname "${BASH_SOURCE[0]}")/hosts.sh"
QMP=$(dirname "${BASH_SOURCE[0]}")/qmp.py

split_hosts_up() {
  [ "$(id -u)" -eq 0 ] || skip "userfaultfd and network namespaces need root"
  hosts_up $(($1 + 1))
  [ "$HOSTS_MODE" = netns ] || skip "network namespaces unavailable (need root and iproute2)"
}

split_servers_up() {
  local n=$1 cap=$2 k
  [ -x "${DCRES_MEMSERVER:-}" ] || fail "dcres-memserver not found (DCRES_MEMSERVER=${DCRES_MEMSERVER:-unset})"
  SPLIT_KEY=$TEST_TMP/psk
  head -c 24 /dev/urandom | base64 > "$SPLIT_KEY"
  chmod 600 "$SPLIT_KEY"
  SPLIT_SERVERS=
  SPLIT_NSERVERS=$n
  SPLIT_CKPT_ROOT=$TEST_TMP/ckpt
  if [ "${SPLIT_STORAGE:-shared}" = local ]; then
    host_disks "$TEST_TMP/disks"
    SPLIT_CKPT_ROOT=$(host_disk 0)
  fi
  mkdir -p "$SPLIT_CKPT_ROOT"
  for ((k = 1; k <= n; k++)); do
    split_server_start $k "$cap"
    SPLIT_SERVERS+="${SPLIT_SERVERS:+;}$(host_addr $k):7700"
  done
  for ((k = 1; k <= n; k++)); do split_server_wait $k; done
}

# Waits for the server of host K, just started, to listen.
split_server_wait() {
  for _ in $(seq 100); do grep -q listening "$TEST_TMP/memserver$1.log" && break; sleep 0.1; done
  grep -q listening "$TEST_TMP/memserver$1.log" \
    || fail "memory server $1 did not start: $(cat "$TEST_TMP/memserver$1.log")"
}

# Starts the memory server of host K (its --dir as split_servers_up says)
# in the background.
split_server_start() {
  local k=$1 cap=$2 dir=$SPLIT_CKPT_ROOT
  [ "${SPLIT_STORAGE:-shared}" = local ] && dir=$(host_disk "$k")
  : > "$TEST_TMP/memserver$k.log"
  host_exec "$k" "$DCRES_MEMSERVER" --listen "$(host_addr "$k"):7700" --capacity "$cap" \
    --dir "$dir" --psk-file "$SPLIT_KEY" --no-populate --fault-file "$TEST_TMP/fault$k" \
    2> "$TEST_TMP/memserver$k.log" &
}

# The server is the only process of its host (ip netns exec execs it).
split_server_pid() { ip netns pids "$(_hosts_ns "$1")" | head -n 1; }

split_server_fault() { echo "$2 $3" > "$TEST_TMP/fault$1"; }

split_server_wait_fault() {
  local k=$1 pid
  for _ in $(seq 600); do
    if [ ! -e "$TEST_TMP/fault$k" ]; then
      pid=$(split_server_pid "$k")
      [ -z "$pid" ] && return 0
      [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = T ] && return 0
    fi
    sleep 0.1
  done
  fail "the fault set for memory server $k did not fire: $(tail -n 3 "$TEST_TMP/memserver$k.log")"
}

split_guest_start() {
  local name=$1 mem=$2 local_size=$3; shift 3
  "$DCRES_QEMU" -object help | grep -q dcres-split || fail "this QEMU has no dcres-split object"
  GUEST_HOST=0 guest_start "$name" "$@" -uuid "$(cat /proc/sys/kernel/random/uuid)" \
    -object "memory-backend-ram,id=ram0,size=$mem" -machine memory-backend=ram0 \
    -object "dcres-split,id=s0,memdev=ram0,local-size=$local_size,servers=$SPLIT_SERVERS,psk-file=$SPLIT_KEY,ckpt-root=$SPLIT_CKPT_ROOT"
}

split_guest_passes() {
  local name=$1 n=$2 timeout=$3 bad line
  # The Linux guest's /init says so when the verifier exits.
  bad='MEMTEST (error|pass=[0-9]+ pages=[0-9]+ errors=[1-9])|memtest exited'
  line=$(guest_wait "$name" "^MEMTEST pass=$n |$bad" "$timeout")
  line=${line%$'\r'}
  if grep -a -E "$bad" "$(guest_serial "$name")" >&2; then
    fail "guest $name: the verifier found errors in its memory or stopped"
  fi
  [[ $line =~ errors=0\ writes=[1-9] ]] || fail "guest $name rewrote no pages: $line"
  note "$line"
}

split_check_rss() {
  local name=$1 qemu_max=$2 server_min=$3 rss k
  rss=$(split_rss_mib "$(guest_pid "$name")")
  note "QEMU resident: $rss MiB"
  [ "$rss" -lt "$qemu_max" ] || fail "QEMU holds $rss MiB (limit $qemu_max): guest RAM is not being paged out"
  for ((k = 1; k <= SPLIT_NSERVERS; k++)); do
    rss=$(split_rss_mib "$(split_server_pid $k)")
    note "memory server $k resident: $rss MiB"
    [ "$rss" -gt "$server_min" ] || fail "memory server $k holds only $rss MiB: too few pages were paged out to it"
  done
}

split_rss_mib() { awk '/^VmRSS/ { print int($2 / 1024) }' "/proc/$1/status"; }

split_dcres() { "$QMP" "$TEST_TMP/$1.qmp" query-dcres; }

split_paging() { sed -E 's/.*"page-ins": ([0-9]+), "page-outs": ([0-9]+).*/\1 \2/' <<< "$1"; }
