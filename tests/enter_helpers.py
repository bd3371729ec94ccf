"""Targets for the enter tests made by `nsfast unshare`, once that command exists."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import nsfast

from conftest import children_of, kill_tree, ns_inode


def unshare_cli_exists() -> bool:
    return os.path.exists(os.path.join(os.path.dirname(nsfast.__file__), "cli", "unshare.py"))


def start_unshare_sleep(flags: list, kinds: str, procs: list) -> int:
    """Run `nsfast unshare FLAGS sleep 60`; return the pid of the sleep once it
    is in new namespaces of every kind given.  The Popen goes into procs."""
    p = subprocess.Popen([sys.executable, "-m", "nsfast.cli", "unshare", *flags, "sleep", "60"])
    procs.append(p)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for c in children_of(p.pid) + [p.pid]:
            try:
                with open(f"/proc/{c}/comm") as f:
                    if f.read().strip() != "sleep":
                        continue
                if all(ns_inode(c, k) != ns_inode(os.getpid(), k) for k in kinds.split(",")):
                    return c
            except FileNotFoundError:
                pass
        time.sleep(0.01)
    raise AssertionError(f"nsfast unshare {' '.join(flags)} started no sleep")


def stop_all(procs: list) -> None:
    for p in procs:
        kill_tree(p)
