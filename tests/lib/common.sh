# Common helpers for dcres's shell tests and scripts. Source it.
#   skip MSG        exit 77 (ctest SKIP_RETURN_CODE) with a reason
#   fail MSG        exit 1 with a message
#   at_exit CMD     run CMD (a string) at exit, last registered first, also
#                   after a failure, SIGINT or SIGTERM
#   use_build DIR   take the patched QEMU, the test guests, the memory
#                   server and the tools from build directory DIR (scripts
#                   outside ctest)
#   TEST_TMP        a private temporary directory, removed at exit

_at_exit_cmds=()
_run_at_exit() {
  local i
  for ((i = ${#_at_exit_cmds[@]} - 1; i >= 0; i--)); do
    eval "${_at_exit_cmds[i]}" || true
  done
  _at_exit_cmds=()
}
at_exit() { _at_exit_cmds+=("$1"); }
trap _run_at_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

skip() { echo "SKIP: $*" >&2; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }

use_build() {
  DCRES_QEMU=$1/qemu/build/qemu-system-x86_64
  DCRES_MEMTEST_ELF=$1/tests/guests/memtest.elf
  DCRES_LINUX_KERNEL=$1/tests/guests/linux-vmlinuz
  DCRES_LINUX_INITRD=$1/tests/guests/linux-initramfs.cpio.gz
  DCRES_MEMSERVER=$1/memory-server/dcres-memserver
  DCRES_CHECKPOINT=$1/tools/checkpoint/dcres-checkpoint
  DCRES_MERGE=$1/tools/merge/dcres-merge
  DCRES_RESTORE=$1/tools/restore/dcres-restore
  DCRES_INSPECT=$1/tools/inspect/dcres-inspect
  DCRES_STATUS=$1/tools/status/dcres-status
}

TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/dcres-test.XXXXXX")
at_exit 'rm -rf "$TEST_TMP"'
