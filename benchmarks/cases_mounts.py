"""Mount cases: recursive propagation change, new mount namespace cost and
mountinfo parsing, each on trees of 10, 100 and 1,000 mounts.

Every case runs in a throwaway private mount namespace: setup() moves the
(single-threaded) benchmark process into a new one and builds the tree of
tmpfs mounts there, teardown() returns to the original namespace, where
nothing of it was ever visible, and the copy dies with its last user.  The
peers and the C floor are children and so run in the same throwaway copy.
"""
from __future__ import annotations

import os
import tempfile

import nsfast

from nsfast import _core, mounts
from nsfast.flags import NsType
from nsfast.inplace import thread_count, unshare

from .harness import Case, Config, Floor, Peer, which_or_none

SIZES = (10, 100, 1000)


class MountSandbox:
    """A private mount namespace holding a tree of n tmpfs mounts under top."""

    def __init__(self, n: int):
        self.n = n
        self.top = os.path.join(tempfile.gettempdir(), f"nsfast-bench-mnt-{os.getpid()}-{n}")
        self._home = self._cwd = -1

    def enter(self) -> None:
        from nsfast.watch import quiesce
        quiesce()   # an idle wall-time watcher lingers after sandbox cases
        if thread_count() > 1:
            raise RuntimeError("the mounts benchmarks need a single-threaded process "
                               "(they step into a throwaway mount namespace)")
        self._home = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        self._cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        os.mkdir(self.top, 0o700)
        unshare("mnt")
        # as unshare(1): nothing made here may reach the host through a shared /
        mounts.set_propagation("/", "private")
        mounts.tmpfs(self.top)
        for i in range(self.n - 1):
            d = f"{self.top}/{i}"
            os.mkdir(d)
            mounts.tmpfs(d)

    def leave(self) -> None:
        _core.setns(self._home, int(NsType.MNT))
        os.fchdir(self._cwd)  # setns moved us to the namespace's root
        os.close(self._home)
        os.close(self._cwd)
        os.rmdir(self.top)


def _run(argv: list) -> None:
    """Run a peer command.  nsfast.spawn (a CLONE_VM child) rather than
    subprocess: a fork leaves this process's pages copy-on-write, and the
    nsfast op timed right after it would pay those faults (3 us -> 20 us)."""
    p = nsfast.spawn(argv, stdout=nsfast.DEVNULL)
    if p.wait() != 0:
        raise RuntimeError(f"{argv} exited {p.returncode}")


def _propagation_cases(n: int) -> list[Case]:
    """Two cases: against the C floor and the mount(2) fallback (all warm), and
    against mount(8).  Apart because the op timed right after a command pays
    for the cache and TLB the command's process evicted (3 us -> 20 us here),
    which is the harness's interleaving, not the cost of the call.

    One sample is a round trip, the tree made shared and then private again,
    by every contender: the two changes cost differently (shared allocates a
    peer group per mount), so contenders taking single changes in turn would
    each be timed on whichever transition the order dealt them."""
    box = MountSandbox(n)

    def round_trip(method: str):
        # the loop a caller would write: one call per change, nothing else
        change, top = mounts.set_propagation, box.top
        if method == "auto":
            def op():
                change(top, "shared")
                change(top, "private")
        else:
            def op():
                change(top, "shared", method=method)
                change(top, "private", method=method)
        return op

    def mount_cmd():
        _run([mount, "--make-rshared", box.top])
        _run([mount, "--make-rprivate", box.top])

    def tree_modes() -> set:
        return {e.propagation for e in mounts.mountinfo() if e.mount_point.startswith(box.top)}

    def check():
        mounts.set_propagation(box.top, "shared")
        assert tree_modes() == {"shared"}, f"tree of {n} is {tree_modes()}, expected shared"
        op()
        assert tree_modes() == {"private"}, f"tree of {n} is {tree_modes()}, expected private"

    mount = which_or_none("mount")
    op = round_trip("auto")
    common = dict(op=op, check=check, setup=box.enter, teardown=box.leave,
                  samples=200 if n < 1000 else 100)
    note = "makes the whole tree shared, then private"
    return [
        Case(name=f"set_propagation recursive, {n} mounts",
             floor=Floor("floor_mounts.c", ["setattr", box.top], in_process=True),
             peers=[Peer("mount(2) MS_REC", round_trip("mount"))], target=("floor", 1.2),
             note=note + "; mount_setattr(AT_RECURSIVE), floor the same syscall in C",
             **common),
        Case(name=f"set_propagation vs mount(8), {n} mounts",
             floor=Floor("floor_mounts.c", ["setattr", box.top], in_process=True),
             peers=[Peer("mount --make-r*", mount_cmd if mount else None,
                         "apt-get install mount")],
             target=("mount --make-r*", 1.0),
             note=note + "; nsfast timed right after the command (cold caches)", **common),
    ]


def _new_namespace_cases(n: int) -> list[Case]:
    box = MountSandbox(n)
    before = [0]

    def check():
        before[0] = os.stat("/proc/self/ns/mnt").st_ino
        unshare("mnt")
        assert os.stat("/proc/self/ns/mnt").st_ino != before[0]

    tool = which_or_none("unshare")
    common = dict(op=lambda: unshare("mnt"), check=check, setup=box.enter,
                  teardown=box.leave, samples=200 if n < 1000 else 100)
    note = (f"unshare(CLONE_NEWNS) copies the table ({n} mounts + the host's) and frees "
            "the previous copy: the cost grows with the table")
    return [
        Case(name=f"new mount namespace, {n}-mount tree", note=note,
             floor=Floor("floor_mounts.c", ["unshare"], in_process=True), **common),
        Case(name=f"new mount namespace vs unshare(1), {n}-mount tree",
             floor=Floor("floor_mounts.c", ["unshare"], in_process=True),
             peers=[Peer("unshare -m true", (lambda: _run([tool, "-m", "true"])) if tool
                         else None, "apt-get install util-linux")],
             note=note + "; the peer also forks and execs", **common),
    ]


def _mountinfo_case(n: int) -> Case:
    box = MountSandbox(n)
    findmnt = which_or_none("findmnt")

    def check():
        assert len(mounts.mountinfo()) >= n

    return Case(
        name=f"mountinfo parse, {n}-mount tree", op=mounts.mountinfo,
        floor=Floor("floor_mounts.c", ["read"], in_process=True),
        peers=[Peer("findmnt -J", (lambda: _run([findmnt, "-J"])) if findmnt else None,
                    "apt-get install util-linux")],
        check=check, setup=box.enter, teardown=box.leave, target=("findmnt -J", 1.0),
        samples=100, note="floor: read the file only, no parsing")


def cases(cfg: Config) -> list[Case]:
    out = []
    for n in SIZES:
        out += _propagation_cases(n) + _new_namespace_cases(n) + [_mountinfo_case(n)]
    return out
