"""Entering namespaces: `with nsfast.enter(ns)` per kind against the C floor of
two setns calls (floor_enter.c), one pidfd setns against per-kind fds, and
`nsfast enter -t PID -a true` against util-linux `nsenter -t PID -a true`.

    python -m nsfast._bench --only 'enter-*'
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import nsfast
from nsfast.targets import differing_kinds
from nsfast import _core
from nsfast.flags import NsType
from nsfast.handles import Namespace

from .harness import Case, Floor, Peer, stdlib_setns

PER_THREAD = ("net", "uts", "ipc", "cgroup")
THREE = "net,uts,ipc"


class _Target:
    """A sleeping process in new namespaces, made in setup and killed in teardown."""

    def __init__(self, **spawn_options) -> None:
        self.options = spawn_options
        self.proc = None
        self.handles: dict = {}

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self) -> None:
        self.proc = nsfast.spawn(["sleep", "3600"], **self.options)
        for kind in NsType.parse(self.options["namespaces"]).kinds():
            self.handles[kind.proc_name] = Namespace.of(self.pid, kind)

    def stop(self) -> None:
        for h in self.handles.values():
            h.close()
        self.handles.clear()
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _inside(kind: str) -> int:
    return os.stat(f"/proc/thread-self/ns/{kind}").st_ino


def _check_enter(target: _Target, kinds: str, make):
    def check() -> None:
        home = {k: _inside(k) for k in kinds.split(",")}
        with make():
            for k in kinds.split(","):
                if _inside(k) != os.stat(f"/proc/{target.pid}/ns/{k}").st_ino:
                    raise AssertionError(f"enter did not reach the target's {k} namespace")
        if {k: _inside(k) for k in kinds.split(",")} != home:
            raise AssertionError("enter did not come back")
    return check


def _kind_case(kind: str, cfg) -> Case:
    target = _Target(namespaces=kind)

    def op() -> None:   # the call the target names: with enter(ns, "net")
        with nsfast.enter(target.handles[kind], kind):
            pass

    peers = []
    flag = int(NsType.parse(kind))
    home_fd = []

    def raw_setns() -> None:
        _core.setns(target.handles[kind].fileno(), flag)
        _core.setns(home_fd[0], flag)

    def setup() -> None:
        target.start()
        home_fd.append(os.open(f"/proc/thread-self/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC))
        floor.args[2] = f"/proc/{target.pid}/ns/{kind}"

    def teardown() -> None:
        target.stop()
        while home_fd:
            os.close(home_fd.pop())

    class Bare:
        """The least a Python context manager can do: two setns, no bookkeeping."""
        __slots__ = ()

        def __enter__(self):
            _core.setns_held(target.handles[kind].fileno(), flag)

        def __exit__(self, *exc):
            _core.setns_held(home_fd[0], flag)

    def bare() -> None:
        with Bare():
            pass

    peers.append(Peer("_core.setns x2", raw_setns))
    peers.append(Peer("bare Python with-block", bare))
    peer_name, setns = stdlib_setns()
    peers.append(Peer(f"{peer_name} x2", lambda: (setns(target.handles[kind].fileno(), flag),
                                                  setns(home_fd[0], flag))))
    floor = Floor("floor_enter.c", ["pair", kind, "(set in setup)"], in_process=True)
    return Case(
        name=f"enter-{kind}", op=op, floor=floor, peers=peers,
        check=_check_enter(target, kind, lambda: nsfast.enter(target.handles[kind])),
        setup=setup, teardown=teardown,
        target=("floor", 1.5) if kind == "net" else None,
        samples=2000, warmup=50,
        note="with nsfast.enter(Namespace, kind): pass -- enter and restore in the calling "
             "thread")


def _pidfd_case(cfg) -> Case:
    target = _Target(namespaces=THREE)
    mask = int(NsType.parse(THREE))

    def op() -> None:
        with nsfast.enter(target.pid, THREE):
            pass

    def per_kind() -> None:
        with nsfast.enter(target.handles["net"]), nsfast.enter(target.handles["uts"]), \
                nsfast.enter(target.handles["ipc"]):
            pass

    def setup() -> None:
        target.start()
        floor.args[1] = str(target.pid)

    floor = Floor("floor_enter.c", ["pidfd", "(pid)", hex(mask), *THREE.split(",")],
                  in_process=True)
    return Case(
        name="enter-pidfd-net+uts+ipc", op=op, floor=floor,
        peers=[Peer("per-kind fds (3 nested enter)", per_kind)],
        check=_check_enter(target, THREE, lambda: nsfast.enter(target.pid, THREE)),
        setup=setup, teardown=target.stop, samples=1000, warmup=20,
        note="enter(pid, kinds): pidfd_open + one setns(pidfd, mask), back per kind; "
             "floor: the same syscalls, pidfd_open + setns(pidfd, mask) + close + 3 setns back")


def _fds_case(cfg) -> Case:
    target = _Target(namespaces=THREE)
    kinds = [int(k) for k in NsType.parse(THREE).kinds()]
    homes: list = []

    there: list = []
    back: list = []

    def op() -> None:
        _core.join(there, kinds)
        for fd, k in back:
            _core.setns(fd, k)

    def setup() -> None:
        target.start()
        homes.extend(os.open(f"/proc/thread-self/ns/{k.proc_name}", os.O_RDONLY | os.O_CLOEXEC)
                     for k in NsType.parse(THREE).kinds())
        there[:] = [target.handles[k.proc_name].fileno() for k in NsType.parse(THREE).kinds()]
        back[:] = list(zip(reversed(homes), reversed(kinds)))
        floor.args[1] = str(target.pid)

    def teardown() -> None:
        target.stop()
        while homes:
            os.close(homes.pop())

    def check() -> None:
        before = _inside("net")
        _core.join([target.handles["net"].fileno()], [int(NsType.NET)])
        inside = _inside("net")
        _core.setns(homes[list(NsType.parse(THREE).kinds()).index(NsType.NET)], int(NsType.NET))
        if inside != os.stat(f"/proc/{target.pid}/ns/net").st_ino or _inside("net") != before:
            raise AssertionError("the setns loop did not enter and come back")

    floor = Floor("floor_enter.c", ["fds", "(pid)", *THREE.split(",")], in_process=True)
    return Case(
        name="enter-fds-net+uts+ipc", op=op, floor=floor, check=check, setup=setup,
        teardown=teardown, samples=1000, warmup=20,
        note="the C setns loop over 3 per-kind fds (_core.join), then 3 setns back; "
             "compare with enter-pidfd-net+uts+ipc")


def _launcher() -> str:
    """The nsfast command as pip installs it: the C launcher beside sys.executable."""
    return os.path.join(os.path.dirname(sys.executable), "nsfast")


def _cli_case(cfg) -> Case:
    target = _Target(namespaces="user,mnt,pid,ipc,uts,net", map_root=True, mount_proc=True,
                     hostname="bench")
    nsenter = shutil.which("nsenter")
    nsfast_cmd = _launcher()

    def ours() -> None:
        subprocess.run([nsfast_cmd, "enter", "-t", str(target.pid), "-a", "true"], check=True)

    def theirs() -> None:
        subprocess.run([nsenter, "-t", str(target.pid), "-a", "true"], check=True)

    def check() -> None:
        if not os.access(nsfast_cmd, os.X_OK):
            raise AssertionError(f"no nsfast command at {nsfast_cmd}: pip install the package")
        out = subprocess.run([nsfast_cmd, "enter", "-t", str(target.pid), "-a", "hostname"],
                             check=True, capture_output=True).stdout
        if out != b"bench\n":
            raise AssertionError(f"nsfast enter -a did not reach the target: {out!r}")

    floor = Floor("floor_enter.c", ["exec", "(pid)", "(mask)"], served=True)   # forks

    def setup() -> None:
        target.start()
        mask = differing_kinds(target.pid, nsfast.NsType.all())
        floor.args = ["exec", str(target.pid), hex(int(mask))]

    return Case(
        name="enter-cli-all-true", op=ours, floor=floor,
        peers=[Peer("nsenter", theirs if nsenter else None, "apt-get install util-linux"),
               # what the command cost when it was a Python console script, at least
               Peer("python -c pass", lambda: subprocess.run([sys.executable, "-c", "pass"],
                                                             check=True))],
        check=check, setup=setup, teardown=target.stop,
        target=("nsenter", 1.0), samples=60, warmup=3,
        note="nsfast enter -t PID -a true (the installed C launcher, bin/nsfast) vs "
             "nsenter -t PID -a true")


def cases(cfg) -> list:
    return ([_kind_case(k, cfg) for k in PER_THREAD]
            + [_pidfd_case(cfg), _fds_case(cfg), _cli_case(cfg)])
