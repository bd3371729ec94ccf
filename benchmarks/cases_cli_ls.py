"""Listing namespaces from the command line: `nsfast ls` and `nsfast ls -J`
(the installed C launcher, which lists in C without starting Python) against
util-linux `lsns` and `lsns -J`, side by side on the same system, with a few
namespaces held.

    python -m nsfast._bench --only 'cli_ls'
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import nsfast

from .harness import Case, Floor, Peer


def _launcher() -> str:
    """The nsfast command as pip installs it: the C launcher beside sys.executable."""
    return os.path.join(os.path.dirname(sys.executable), "nsfast")


class _Held:
    """Sleepers in new namespaces, so that the listing has rows to nest and count."""

    def __init__(self) -> None:
        self.procs: list = []

    def start(self) -> None:
        self.procs = [nsfast.spawn(["sleep", "600"], namespaces=kinds)
                      for kinds in ("net,uts", "ipc", "user", "pid")]

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        self.procs = []


def _case(flags: list, held: _Held) -> Case:
    nsfast_cmd = _launcher()
    lsns = shutil.which("lsns")

    def run(argv: list) -> None:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)

    def check() -> None:
        if not os.access(nsfast_cmd, os.X_OK):
            raise AssertionError(f"no nsfast command at {nsfast_cmd}: pip install the package")
        out = subprocess.run([nsfast_cmd, "ls", "-n", "-o", "NS", *flags], check=True,
                             capture_output=True, text=True).stdout
        inode = os.stat(f"/proc/{held.procs[1].pid}/ns/ipc").st_ino
        if str(inode) not in out.split():
            raise AssertionError(f"nsfast ls {' '.join(flags)} did not list a held namespace")

    name = "ls-cli" + "".join(flags).lower()   # ls-cli, ls-cli-j
    return Case(
        name=name, op=lambda: run([nsfast_cmd, "ls", *flags]),
        # a fork and exec of a C program that reads every ns link and prints a
        # line a namespace: what any lister does, started as a command
        floor=Floor("floor_cli_ls.c", ["list"], served=True),
        peers=[Peer(" ".join(["lsns", *flags]), (lambda: run([lsns, *flags])) if lsns else None,
                    "apt-get install util-linux")],
        check=check, setup=held.start, teardown=held.stop,
        target=(" ".join(["lsns", *flags]), 1.0), samples=40, warmup=3,
        note=f"nsfast ls {' '.join(flags)} (bin/nsfast, C) vs lsns {' '.join(flags)}, "
             "stdout to /dev/null")


def cases(cfg) -> list:
    held = _Held()
    return [_case([], held), _case(["-J"], held)]
