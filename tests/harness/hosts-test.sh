#!/usr/bin/env bash
# The multi-host harness: two hosts reach each other by address (ping and
# TCP); after cutting one link they no longer do; after restoring it they do
# again; teardown, also of a harness user killed by SIGTERM or SIGINT, leaves
# no namespace behind.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/hosts.sh"

hosts_up 3
[ "$HOSTS_MODE" = netns ] || skip "network namespaces unavailable (need root and iproute2)"
a1=$(host_addr 1)

reachable() { host_exec 0 ping -c 1 -W 1 "$a1" >/dev/null 2>&1; }

reachable || fail "host 0 cannot ping host 1 at $a1"
host_exec 2 ping -c 1 -W 1 "$(host_addr 0)" >/dev/null || fail "host 2 cannot ping host 0"

# TCP: a listener in host 1, a client in host 0.
host_exec 1 busybox nc -l -p 7700 > "$TEST_TMP/received" &
listener=$!
for _ in $(seq 50); do
  echo "hello from host 0" | host_exec 0 busybox nc -w 1 "$a1" 7700 2>/dev/null && break
  sleep 0.1
done
wait "$listener" || true
grep -q "hello from host 0" "$TEST_TMP/received" || fail "TCP from host 0 to host 1 failed"

host_cut 1
! reachable || fail "host 1 still reachable after its link was cut"
host_exec 2 ping -c 1 -W 1 "$(host_addr 0)" >/dev/null || fail "cutting host 1 disturbed host 2"
host_restore 1
ok=
for _ in $(seq 10); do reachable && { ok=1; break; }; done
[ -n "$ok" ] || fail "host 1 unreachable after its link was restored"

prefix=$HOSTS_PREFIX
hosts_down
! ip netns list | grep -q "^$prefix-" || fail "teardown left namespaces: $(ip netns list | grep "^$prefix-")"

# A harness user that is interrupted still tears its hosts down.
for sig in TERM INT; do
  lib=$(cd "$(dirname "$0")/../lib" && pwd)
  # env --default-signal: a background job would otherwise start with SIGINT
  # ignored, and bash cannot trap a signal ignored on entry.
  env --default-signal=INT bash -c ". '$lib/common.sh'; . '$lib/hosts.sh'; hosts_up 2
    echo \$HOSTS_PREFIX; host_exec 1 sleep 60 & wait" > "$TEST_TMP/child.out" 2> "$TEST_TMP/child.err" &
  child=$!
  for _ in $(seq 50); do [ -s "$TEST_TMP/child.out" ] && break; sleep 0.1; done
  cprefix=$(cat "$TEST_TMP/child.out")
  [ -n "$cprefix" ] || fail "child harness did not start"
  ip netns list | grep -q "^$cprefix-h1" || fail "child harness created no hosts"
  kill -s "$sig" "$child"
  wait "$child" 2>/dev/null || true
  ! ip netns list | grep -q "^$cprefix-" || fail "SIG$sig left namespaces: $(ip netns list | grep "^$cprefix-")"
done
echo "PASS: harness-hosts"
