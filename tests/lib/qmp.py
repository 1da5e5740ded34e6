#!/usr/bin/env python3
"""Minimal QMP client for the test scripts (standard library only).

  qmp.py SOCKET COMMAND [JSON-ARGUMENTS]  run a command, print its return
                                          value as JSON; exit 1 with QEMU's
                                          error message on stderr
  qmp.py SOCKET --events FILE             append every event to FILE, one
                                          JSON object per line, until QEMU
                                          closes the socket

The socket must be free: QEMU serves one client per -qmp socket, so a test
that logs events gives QEMU a second -qmp socket for that.
"""
import json
import socket
import sys
import time


def connect(path, timeout=10.0):
    """Connects to QEMU's QMP socket (retrying while QEMU starts) and
    leaves capabilities negotiation done."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            break
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    stream = sock.makefile("rw", encoding="utf-8")
    json.loads(stream.readline())  # greeting
    execute(stream, "qmp_capabilities")
    return sock, stream


def execute(stream, command, arguments=None):
    """Runs command; returns its return value or raises RuntimeError with
    QEMU's error description. Events arriving meanwhile are skipped."""
    msg = {"execute": command}
    if arguments:
        msg["arguments"] = arguments
    stream.write(json.dumps(msg) + "\n")
    stream.flush()
    while True:
        reply = json.loads(stream.readline())
        if "return" in reply:
            return reply["return"]
        if "error" in reply:
            raise RuntimeError(reply["error"]["desc"])


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    sock, stream = connect(argv[1])
    try:
        if argv[2] == "--events":
            with open(argv[3], "a", encoding="utf-8") as out:
                for line in stream:
                    msg = json.loads(line)
                    if "event" in msg:
                        out.write(json.dumps(msg, sort_keys=True) + "\n")
                        out.flush()
            return 0
        args = json.loads(argv[3]) if len(argv) > 3 else None
        print(json.dumps(execute(stream, argv[2], args), sort_keys=True))
        return 0
    except RuntimeError as err:
        sys.stderr.write(f"qmp {argv[2]}: {err}\n")
        return 1
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
