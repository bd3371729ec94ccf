"""Spawn-and-wait of /bin/true in new namespaces: nsfast.spawn against the C
floor (floor_spawn.c), `unshare`, Python's fork + unshare + exec, and bwrap.

One case per kind alone (the user kind with map_root) and one for every kind
but net with map_root, against all peers (target: 0.5x unshare); -solo cases
against the floor alone (target: 1.10x); and spawn-flat-5000: 5,000
consecutive spawns whose last fifth is compared with the first (the note
holds the ratio, target 1.2).

    python -m nsfast._bench --only 'spawn-*'
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Optional

import nsfast
from nsfast.flags import NsType

from .harness import Case, Floor, Peer

TRUE = "/bin/true"

# nsfast kind -> unshare(1) flag, bwrap flag (None: bwrap cannot)
UNSHARE_FLAG = {"user": "-U", "mnt": "-m", "uts": "-u", "ipc": "-i", "pid": "-p",
                "net": "-n", "cgroup": "-C", "time": "-T"}
BWRAP_FLAG = {"user": "--unshare-user", "mnt": None, "uts": "--unshare-uts",
              "ipc": "--unshare-ipc", "pid": "--unshare-pid", "net": "--unshare-net",
              "cgroup": "--unshare-cgroup", "time": None}


def _kinds(names: str) -> NsType:
    return NsType.parse(names)


def nsfast_op(names: str, map_root: bool):
    kw = {"namespaces": names, "map_root": map_root, "pdeathsig": None}

    def op():
        nsfast.spawn([TRUE], **kw).wait()
    return op


def floor_for(names: str, map_root: bool) -> Floor:
    """The same flags as nsfast.spawn: clone makes all but time, which the
    child unshares (its offsets must go in before anyone enters it).  In
    process (see Floor): its clone, like nsfast's, runs in this process."""
    kinds = _kinds(names)
    clone = int(kinds & ~NsType.TIME)
    unshare = int(kinds & NsType.TIME)
    return Floor("floor_spawn.c", [hex(clone), hex(unshare), int(map_root)], in_process=True)


def unshare_peer(names: str, map_root: bool) -> Peer:
    exe = shutil.which("unshare")
    if exe is None:
        return Peer("unshare", None, "apt-get install util-linux")
    argv = [exe] + [UNSHARE_FLAG[k.proc_name] for k in _kinds(names).kinds()]
    if _kinds(names) & NsType.PID:
        argv.append("-f")   # as nsfast: the program is pid 1 of the new namespace
    if map_root:
        argv.append("-r")
    argv.append(TRUE)
    return Peer("unshare", lambda: subprocess.run(argv, check=True))


FORK_HELPER = r"""
import os, sys
flags, map_root, true = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
if hasattr(os, "unshare"):
    unshare = os.unshare
else:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    def unshare(f):
        if libc.unshare(f) != 0:
            raise OSError(ctypes.get_errno(), "unshare")
maps = [("uid_map", b"0 %d 1" % os.geteuid()), ("setgroups", b"deny"),
        ("gid_map", b"0 %d 1" % os.getegid())]
while os.read(0, 1):
    if map_root:
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            unshare(flags)
            if map_root:
                os.write(ready_w, b"x")
                os.read(go_r, 1)
            os.execv(true, [true])
        finally:
            os._exit(127)
    if map_root:
        os.close(ready_w)
        os.close(go_r)
        if os.read(ready_r, 1) == b"x":
            for name, text in maps:
                fd = os.open("/proc/%d/%s" % (pid, name), os.O_WRONLY)
                os.write(fd, text)
                os.close(fd)
            os.write(go_w, b"x")
        os.close(ready_r)
        os.close(go_w)
    _, status = os.waitpid(pid, 0)
    os.write(1, b"0" if status == 0 else b"1")
"""


class ForkPeer:
    """Python's os.fork + unshare + exec (the parent writes the maps while the
    child waits: a process cannot map its parent's uid 0 itself).

    The forks happen in a helper Python process driven over a pipe: a fork
    leaves every page of the forking process copy-on-write, and those faults
    would otherwise be paid by whichever contender the harness runs next.
    The pipe round trip (tens of microseconds) is counted against this peer."""

    def __init__(self, names: str, map_root: bool):
        self.argv = [sys.executable, "-c", FORK_HELPER, str(int(_kinds(names))),
                     "1" if map_root else "0", TRUE]
        self.proc: Optional[subprocess.Popen] = None

    def __call__(self) -> None:
        if self.proc is None:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, bufsize=0)
        os.write(self.proc.stdin.fileno(), b"x")
        if os.read(self.proc.stdout.fileno(), 1) != b"0":
            raise RuntimeError("fork+unshare child failed")

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait()
            self.proc.stdout.close()
            self.proc = None


def bwrap_peer(names: str, map_root: bool) -> Peer:
    exe = shutil.which("bwrap")
    if exe is None:
        return Peer("bwrap", None, "apt-get install bubblewrap")
    kinds = [k.proc_name for k in _kinds(names).kinds()]
    if "time" in kinds:
        return Peer("bwrap", None, "bwrap has no time namespace option")
    # bwrap always makes a mount namespace; / is bound so that /bin/true exists
    argv = [exe, "--bind", "/", "/"] + [BWRAP_FLAG[k] for k in kinds if BWRAP_FLAG[k]]
    if map_root:
        argv += ["--uid", "0", "--gid", "0"]
    argv.append(TRUE)
    return Peer("bwrap", lambda: subprocess.run(argv, check=True))


def check_for(names: str, map_root: bool):
    """Raise unless nsfast.spawn with these options really makes each kind."""
    def check():
        script = "; ".join([f"readlink /proc/self/ns/{k.proc_name}"
                            for k in _kinds(names).kinds()] + ["id -u"])
        p = nsfast.spawn(["sh", "-c", script], namespaces=names,
                         map_root=map_root, stdout=nsfast.PIPE)
        out = p.communicate()[0].decode().split()
        for kind, link in zip(_kinds(names).kinds(), out):
            if link == os.readlink(f"/proc/self/ns/{kind.proc_name}"):
                raise AssertionError(f"{names}: the child shares our {kind.proc_name} ns")
        if map_root and out[-1] != "0":
            raise AssertionError(f"{names}: map_root did not make uid 0")
    return check


def spawn_case(label: str, names: str, map_root: bool, cfg) -> Case:
    """nsfast against the floor and the peers, every contender sampled in turn
    (the floor too, in process): a sample taken right after a peer pays the
    kernel's deferred teardown of that peer's namespaces and cold caches,
    whoever takes it."""
    fork = ForkPeer(names, map_root)
    return Case(
        name=f"spawn-{label}",
        op=nsfast_op(names, map_root),
        floor=floor_for(names, map_root),
        peers=[unshare_peer(names, map_root), Peer("fork+unshare", fork),
               bwrap_peer(names, map_root)],
        check=check_for(names, map_root),
        teardown=fork.close,
        target=("unshare", 0.5),
        samples=200,
        note="spawn and wait /bin/true" + (", map_root" if map_root else ""),
    )


def solo_case(label: str, names: str, map_root: bool) -> Case:
    """nsfast alone against the floor, sampled in turn."""
    return Case(
        name=f"spawn-{label}-solo",
        op=nsfast_op(names, map_root),
        floor=floor_for(names, map_root),
        check=check_for(names, map_root),
        target=("floor", 1.10),
        samples=400,
        note="spawn and wait /bin/true, no peers" + (", map_root" if map_root else ""),
    )


class FlatCase:
    """spawn-flat-5000: per-spawn cost over consecutive spawns.  The op times
    itself; teardown writes last-fifth/first-fifth median ratio into the note."""

    def __init__(self, names: str, map_root: bool, warmup: int):
        self.names, self.map_root, self.warmup = names, map_root, warmup
        self.times: list = []
        self.case: Optional[Case] = None

    def op(self):
        t0 = time.perf_counter_ns()
        nsfast.spawn([TRUE], namespaces=self.names, map_root=self.map_root,
                     pdeathsig=None).wait()
        self.times.append(time.perf_counter_ns() - t0)

    def setup(self):
        self.times = []   # each run of the case (--repeat) is judged on its own

    def teardown(self):
        runs = self.times[self.warmup:]
        fifth = max(1, len(runs) // 5)
        first = statistics.median(runs[:fifth])
        last = statistics.median(runs[-fifth:])
        ratio = last / first
        self.case.note = (f"{len(runs)} consecutive spawns: median of the last {fifth} / "
                          f"first {fifth} = {ratio:.2f} (target <= 1.20: "
                          f"{'PASS' if ratio <= 1.2 else 'MISS'})")


def flat_case(names: str = "user,mnt,uts,ipc,pid,cgroup,time", map_root: bool = True
              ) -> Case:
    flat = FlatCase(names, map_root, warmup=10)
    flat.case = Case(name="spawn-flat-5000", op=flat.op, setup=flat.setup,
                     teardown=flat.teardown,
                     floor=floor_for(names, map_root),
                     samples=5000, warmup=flat.warmup, check=check_for(names, map_root))
    return flat.case


KINDS = ["user", "mnt", "uts", "ipc", "pid", "net", "cgroup", "time"]
ALL_BUT_NET = "user,mnt,uts,ipc,pid,cgroup,time"


def cases(cfg) -> list:
    out = [spawn_case("none", "", False, cfg)]
    for kind in KINDS:
        if kind == "time" and not nsfast.features.time_namespaces:
            continue
        out.append(spawn_case(kind, kind, kind == "user", cfg))
    out.append(spawn_case("all-but-net", ALL_BUT_NET, True, cfg))
    out += [solo_case("none", "", False), solo_case("user", "user", True),
            solo_case("all-but-net", ALL_BUT_NET, True)]
    out.append(flat_case(ALL_BUT_NET, True))
    return out
