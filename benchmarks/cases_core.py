"""Core cases: unshare in place per kind, setns there-and-back per kind, setns with a
pidfd and several kinds at once, and the namespace listing against lsns."""
from __future__ import annotations

import os
import struct
import subprocess
import time
import traceback

import nsfast
from nsfast import Namespace, NsType, _core

from nsfast.inplace import _refuse_if_threaded

from .harness import (Case, Floor, Measured, Peer, stdlib_setns, stdlib_unshare,
                      which_or_none)

UNSHARE_KINDS = ["mnt", "uts", "ipc", "user", "pid", "net", "cgroup", "time"]
PER_THREAD_KINDS = ["net", "uts", "ipc", "cgroup"]
# where a fresh namespace of the kind shows in the unsharing process
_SHOWS_AT = {"pid": "pid_for_children", "time": "time_for_children"}


def _in_child(body) -> int:
    """Run body() in a child made by os.fork; it returns ns, sent back through a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(r)
            os.write(w, struct.pack("q", body()))
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    os.close(w)
    try:
        data = os.read(r, 8)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    if len(data) != 8 or status != 0:
        raise RuntimeError("the benchmark child failed")
    return struct.unpack("q", data)[0]


def _unshare_case(kind: str) -> Case:
    flag = NsType.parse(kind)
    entry = _SHOWS_AT.get(kind, kind)
    # the public name, imported on first use, is looked up here, before the
    # fork: each sample is then the call, not the first use of the name
    unshare = nsfast.unshare

    def timed() -> int:
        # A fresh fork pays a copy-on-write fault on the first write to each page
        # of the interpreter's objects (refcounts); run the Python work of
        # nsfast.unshare once, with unshare(0), as the harness warms up the
        # other cases, so that the sample is the call and not the fork's pages.
        _refuse_if_threaded(NsType.parse(flag)._value_, "unshare")
        _core.unshare(0)  # a valid syscall that changes nothing
        t0 = time.perf_counter_ns()
        unshare(flag)
        return time.perf_counter_ns() - t0

    peer_name, stdlib = stdlib_unshare()

    def stdlib_timed() -> int:
        stdlib(0)  # the same warm-up as ours: the call's own pages, a no-op syscall
        t0 = time.perf_counter_ns()
        stdlib(flag.value)
        return time.perf_counter_ns() - t0

    def op():
        return Measured(_in_child(timed))

    def check():
        def moved() -> int:
            before = os.stat(f"/proc/self/ns/{entry}").st_ino
            nsfast.unshare(flag)
            try:
                return int(os.stat(f"/proc/self/ns/{entry}").st_ino != before)
            except FileNotFoundError:
                return int(kind == "pid")  # a new pid namespace shows once its pid 1 exists
        if _in_child(moved) != 1:
            raise AssertionError(f"unshare({kind}) made no new namespace")

    return Case(name=f"unshare-{kind}", op=op, check=check, samples=100, warmup=3,
                peers=[Peer(peer_name, lambda: Measured(_in_child(stdlib_timed)))],
                floor=Floor("floor_core.c", ["unshare", hex(flag.value)]),
                note="timed inside a forked child, both sides; Python's pages warmed there")


class _Targets:
    """A sleeper in new net, uts, ipc and cgroup namespaces, and one in ours."""

    def __init__(self):
        self.there = self.home_proc = None

    def start(self):
        if self.there is None:
            self.there = nsfast.spawn(["sleep", "3600"], namespaces=",".join(PER_THREAD_KINDS))
            self.home_proc = nsfast.spawn(["sleep", "3600"])

    def stop(self):
        for p in (self.there, self.home_proc):
            if p is not None and p.returncode is None:
                p.kill()
                p.wait()
        self.there = self.home_proc = None


def _thread_inode(kind: str) -> int:
    return os.stat(f"/proc/thread-self/ns/{kind}").st_ino


def _setns_case(kind: str, targets: _Targets, via_fd: bool = False) -> Case:
    floor = Floor("floor_core.c", [], in_process=True)
    state: dict = {}

    def setup():
        targets.start()
        state["there"] = Namespace.of(targets.there.pid, kind)
        state["home"] = Namespace.open(f"/proc/thread-self/ns/{kind}")
        state["fds"] = (nsfast.Fd(state["there"].fileno()), nsfast.Fd(state["home"].fileno()))
        floor.args[:] = ["setns", f"/proc/{targets.there.pid}/ns/{kind}", kind]

    def teardown():
        try:
            nsfast.setns(state["home"])
        finally:
            for h in (state["there"], state["home"]):
                h.close()
            targets.stop()

    if via_fd:
        def op():
            there, home = state["fds"]
            nsfast.setns(there, kind)
            nsfast.setns(home, kind)
    else:
        def op():
            nsfast.setns(state["there"])
            nsfast.setns(state["home"])

    def check():
        home = _thread_inode(kind)
        nsfast.setns(state["there"])
        inside = _thread_inode(kind)
        nsfast.setns(state["home"])
        if inside != state["there"].inode or _thread_inode(kind) != home:
            raise AssertionError(f"setns {kind} there and back did not move the thread")

    peers = []
    if not via_fd:
        flag = NsType.parse(kind).value
        peer_name, setns = stdlib_setns()
        peers.append(Peer(peer_name, lambda: (setns(state["there"].fileno(), flag),
                                              setns(state["home"].fileno(), flag))))
    name = f"setns-{kind}-fd" if via_fd else f"setns-{kind}"
    return Case(name=name, op=op, floor=floor, peers=peers, check=check, setup=setup,
                teardown=teardown, target=("floor", 1.5), samples=2000, warmup=50,
                note="there and back on the calling thread" +
                     (", target Fd(n) with the kind given" if via_fd else ", Namespace handles"))


def _pidfd_case(targets: _Targets) -> Case:
    floor = Floor("floor_core.c", [], in_process=True)
    mask = NsType.parse(",".join(PER_THREAD_KINDS))
    state: dict = {}

    def setup():
        targets.start()
        state["there"] = nsfast.pidfd_open(targets.there.pid)
        state["home"] = nsfast.pidfd_open(targets.home_proc.pid)
        floor.args[:] = ["pidfd", targets.there.pid, targets.home_proc.pid, hex(mask.value)]

    def teardown():
        try:
            nsfast.setns(state["home"], mask)
        finally:
            os.close(state["there"])
            os.close(state["home"])
            targets.stop()

    def op():
        nsfast.setns(state["there"], mask)
        nsfast.setns(state["home"], mask)

    def check():
        home = {k: _thread_inode(k) for k in PER_THREAD_KINDS}
        nsfast.setns(state["there"], mask)
        inside = {k: _thread_inode(k) for k in PER_THREAD_KINDS}
        nsfast.setns(state["home"], mask)
        want = {k: os.stat(f"/proc/{targets.there.pid}/ns/{k}").st_ino for k in PER_THREAD_KINDS}
        if inside != want or {k: _thread_inode(k) for k in PER_THREAD_KINDS} != home:
            raise AssertionError("setns(pidfd, mask) there and back did not move the thread")

    return Case(name="setns-pidfd-4kinds", op=op, floor=floor, check=check, setup=setup,
                teardown=teardown, target=("floor", 1.5), samples=1000, warmup=20,
                note="setns(pidfd, net|uts|ipc|cgroup) there, then back with a pidfd of a "
                     "process in ours")


def _listing_case() -> Case:
    lsns = which_or_none("lsns")

    def run_lsns():
        subprocess.run([lsns, "-J"], stdout=subprocess.DEVNULL, check=True)

    def check():
        if not any(i.kind == NsType.NET and i.nprocs for i in nsfast.list_namespaces()):
            raise AssertionError("the listing has no network namespace with processes")

    return Case(name="list-namespaces", op=nsfast.list_namespaces, check=check,
                floor=Floor("floor_core.c", ["scan"], in_process=True),
                peers=[Peer("lsns -J", run_lsns if lsns else None, "apt-get install util-linux")],
                samples=40, warmup=2,
                note="floor: reading every process's ns links only; lsns timed as a command")


def cases(cfg) -> list:
    targets = _Targets()  # started by each case's setup, stopped by its teardown
    result = [_unshare_case(k) for k in UNSHARE_KINDS]
    result += [_setns_case(k, targets) for k in PER_THREAD_KINDS]
    result.append(_setns_case("net", targets, via_fd=True))
    result.append(_pidfd_case(targets))
    result.append(_listing_case())
    for case in result:
        case.name = f"core/{case.name}"
    return result
