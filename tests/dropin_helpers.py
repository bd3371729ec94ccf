"""What the drop-in tests ask of `nsfast unshare`, `nsfast enter` and
`nsfast netns exec` and of the tools they replace alike (util-linux unshare
and nsenter, iproute2's ip): each check runs a command line given as a list,
so that a test runs it for nsfast and for the original and compares."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from conftest import children_of, kill_tree

# `nsfast` as a user runs it from this interpreter (the launcher, through
# nsfast.cli)
NSFAST = [sys.executable, "-m", "nsfast.cli"]


def start_ready(cmd: list) -> subprocess.Popen:
    """cmd + `sh -c 'echo ready; exec sleep 60'`, running: as `cmd & PID=$!`,
    Popen.pid is what the shell's $! would be."""
    p = subprocess.Popen(cmd + ["sh", "-c", "echo ready; exec sleep 60"],
                         stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ready\n"
    except BaseException:
        end(p)
        raise
    return p


def end(p: subprocess.Popen) -> None:
    """Kill p and what it started (its children: a tool that forked)."""
    kill_tree(p)
    p.stdout.close()


def exec_in_place(cmd: list, kind: str) -> tuple:
    """Start cmd's program and look at $!: (its KIND namespace inode, whether it
    is the program itself (it has no child), how it ends on SIGTERM)."""
    p = start_ready(cmd)
    try:
        inode = os.stat(f"/proc/{p.pid}/ns/{kind}").st_ino
        alone = children_of(p.pid) == []
        os.kill(p.pid, signal.SIGTERM)
        return inode, alone, p.wait(timeout=10)
    finally:
        end(p)


def fds_passed(cmd: list, tmp) -> bytes:
    """What cmd's program writes through fds 3 and 9, opened (without
    close-on-exec) by the shell that runs cmd, as `exec 3>f` would."""
    three, nine = tmp / "fd3", tmp / "fd9"
    wrapper = ["sh", "-c", 'exec 3>"$0" 9>"$1"; shift; exec "$@"', str(three), str(nine)]
    r = subprocess.run(wrapper + cmd + ["sh", "-c", "echo three >&3; echo nine >&9"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return three.read_bytes() + nine.read_bytes()


def exit_codes(cmd: list) -> tuple:
    """(a missing program, a file that cannot be executed, a program that
    dies of SIGTERM, one that stops with SIGABRT): how cmd ends for each."""
    return tuple(subprocess.run(cmd + argv, capture_output=True, timeout=30).returncode
                 for argv in (["no-such-program-nsfast"], ["/etc/passwd"],
                              ["sh", "-c", "kill -TERM $$"], ["sh", "-c", "kill -ABRT $$"]))


def login_shell(cmd: list, script: bytes = b'echo "$0"\n') -> bytes:
    """What the default program, run with SHELL=/bin/sh, prints for script."""
    env = dict(os.environ, SHELL="/bin/sh", ENV="", HOME="/nonexistent")
    return subprocess.run(cmd, input=script, capture_output=True, timeout=30,
                          env=env).stdout.splitlines()[-1]
