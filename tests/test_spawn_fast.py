"""nsfast.spawn's compiled common case (_core.spawn_entry): which calls take
it, and that they do what the general Python path does, witnessed from
/proc.  A call that gives `executable` (the program again) takes the Python
path with everything else equal."""
from __future__ import annotations

import itertools
import os
import signal
import sys
import tempfile
import time

import pytest

import nsfast
from nsfast import _core
from conftest import need, ns_inode

KINDS = ("user", "mnt", "uts", "ipc", "pid", "net", "cgroup", "time")
SLEEP = "/bin/sleep"
_spelling = itertools.count(1)


def unseen(kinds: str) -> str:
    """kinds spelt as no call in this process has spelt it before.  The kinds
    strings the compiled path knows are process-wide state (NsType.parse's
    cache, cleared when it holds 256), filled by every earlier test: a plain
    "net,uts" is in it or not depending on which random lists of names
    tests/test_props.py parsed last (it is with --hypothesis-seed=7)."""
    return kinds.replace(",", "," + " " * (20 + next(_spelling)))


def _view(pid: int) -> dict:
    """What a spawn did to its child, as /proc shows it once the child runs
    the program (its time namespace is the one it execs into)."""
    deadline = time.monotonic() + 10
    while os.readlink(f"/proc/{pid}/exe") != os.path.realpath(SLEEP):
        assert time.monotonic() < deadline, "the child never reached its program"
        time.sleep(0.005)
    me = os.getpid()
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    with open(f"/proc/{pid}/mountinfo", errors="surrogateescape") as f:
        root = next(line for line in f if line.split()[4] == "/")
    return {
        "new": {k for k in KINDS if ns_inode(pid, k) != ns_inode(me, k)},
        "uid_map": open(f"/proc/{pid}/uid_map").read().split(),
        "gid_map": open(f"/proc/{pid}/gid_map").read().split(),
        "setgroups": open(f"/proc/{pid}/setgroups").read().strip(),
        "nspid_depth": len(status["NSpid"].split()),
        "root_shared": "shared:" in root.split(" - ")[0],
        "uid": status["Uid"].split(), "groups": status["Groups"].split(),
    }


CASES = [dict(), dict(namespaces="mnt"), dict(namespaces="uts"), dict(namespaces="ipc"),
         dict(namespaces="pid"), dict(namespaces="net"), dict(namespaces="cgroup"),
         dict(namespaces="time"), dict(namespaces="user", map_root=True),
         dict(namespaces="user", map_current_user=True),
         dict(namespaces="user,mnt,uts,ipc,pid,cgroup,time", map_root=True, pdeathsig=None),
         dict(namespaces="pid", pdeathsig=signal.SIGTERM)]


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items())
                         or "plain")
def test_the_common_case_is_compiled_and_does_what_the_python_path_does(kw, sleeper):
    if "time" in kw.get("namespaces", ""):
        need(nsfast.features.time_namespaces, "time namespaces")
    argv = [SLEEP, "60"]
    sleeper(argv, executable=SLEEP, **kw)   # the Python path, which fills the caches
    before = _core.spawn_fast_hits()
    fast = sleeper(argv, **kw)
    assert _core.spawn_fast_hits() == before + 1, "the common case left the compiled path"
    slow = sleeper(argv, executable=SLEEP, **kw)
    assert _core.spawn_fast_hits() == before + 1
    seen = _view(fast.pid)
    assert seen == _view(slow.pid)
    asked = nsfast.NsType.parse(kw.get("namespaces"))
    assert seen["new"] == {k.proc_name for k in asked.kinds()}
    assert fast.args == argv


def test_the_environment_is_the_processs_own_on_both_paths():
    """env=None passes this process's environment, as subprocess does: what
    os.environ set, and what only os.putenv set, both reach the child."""
    with tempfile.TemporaryDirectory() as d:
        os.environ["NSFAST_FAST_A"] = "from-environ"
        os.putenv("NSFAST_FAST_B", "from-putenv")
        try:
            for extra in ({}, {"executable": "/bin/sh"}):
                out = os.path.join(d, f"out{len(extra)}")
                p = nsfast.spawn(["/bin/sh", "-c",
                                  f'printf %s "$NSFAST_FAST_A:$NSFAST_FAST_B" > {out}'],
                                 **extra)
                assert p.wait() == 0
                assert open(out).read() == "from-environ:from-putenv"
        finally:
            del os.environ["NSFAST_FAST_A"]
            os.unsetenv("NSFAST_FAST_B")


def test_errors_of_the_compiled_path_are_the_python_paths_errors():
    nsfast.spawn([SLEEP, "0"], namespaces="user", map_root=True).wait()   # caches filled
    for kw in (dict(), dict(namespaces="user", map_root=True)):
        before = _core.spawn_fast_hits()
        with pytest.raises(FileNotFoundError) as e:
            nsfast.spawn(["/nonexistent/nsfast-prog"], **kw)
        assert e.value.filename == "/nonexistent/nsfast-prog"
        assert _core.spawn_fast_hits() == before
    with pytest.raises(ValueError, match="null byte"):
        nsfast.spawn([SLEEP, "1\0"])
    with pytest.raises(ValueError, match="user namespace"):
        nsfast.spawn([SLEEP, "0"], map_root=True)
    with pytest.raises(TypeError):
        nsfast.spawn([SLEEP, "0"], namespace="user")   # a misspelt option


def test_what_the_compiled_path_leaves_to_python_still_works():
    """A program found through PATH, a tuple argv, a kinds string not seen
    before, a non-default option: all go the Python way and work."""
    for argv, kw in ((["true"], {}), ((SLEEP, "0"), {}),
                     ([SLEEP, "0"], {"namespaces": unseen("net,uts")}),
                     ([SLEEP, "0"], {"new_session": True})):
        before = _core.spawn_fast_hits()
        assert nsfast.spawn(argv, **kw).wait() == 0
        assert _core.spawn_fast_hits() == before, (argv, kw)
    assert nsfast.spawn([sys.executable, "-c", "pass"]).wait() == 0


def test_pdeathsig_on_the_compiled_path():
    """The default (SIGKILL; in a new pid namespace too, where the child
    waits for the parent's go), a signal given, and None, each from a thread
    that ends: the first three children get their signal, the last lives on."""
    import threading
    nsfast.spawn([SLEEP, "0"], namespaces="pid").wait()   # the kinds string is cached
    box = []
    before = _core.spawn_fast_hits()
    for kw in ({}, {"namespaces": "pid"}, {"pdeathsig": signal.SIGTERM}, {"pdeathsig": None}):
        t = threading.Thread(target=lambda: box.append(nsfast.spawn([SLEEP, "30"], **kw)))
        t.start()
        t.join()
    assert _core.spawn_fast_hits() == before + 4
    with box[0] as killed, box[1] as pid1, box[2] as termed, box[3] as lives:
        assert killed.wait(timeout=5) == -signal.SIGKILL
        assert pid1.wait(timeout=5) == -signal.SIGKILL
        assert termed.wait(timeout=5) == -signal.SIGTERM
        time.sleep(0.1)
        assert lives.poll() is None


def test_netns_from_a_pool_on_the_compiled_path(sleeper):
    """spawn(netns=pool): the child joins a namespace the pool made ahead,
    one per spawn, on both paths; the pool's handle is closed after."""
    with nsfast.NetnsPool(size=4) as pool:
        for kw in ({}, {"namespaces": "uts"}, {"namespaces": "pid,mnt"}):
            sleeper([SLEEP, "60"], executable=SLEEP, netns=pool, **kw)   # fills the caches
            before = _core.spawn_fast_hits()
            fast = sleeper([SLEEP, "60"], netns=pool, **kw)
            assert _core.spawn_fast_hits() == before + 1, kw
            slow = sleeper([SLEEP, "60"], netns=pool, executable=SLEEP, **kw)
            seen = _view(fast.pid)
            assert seen == _view(slow.pid)
            assert seen["new"] == {"net"} | {k.proc_name for k in
                                             nsfast.NsType.parse(kw.get("namespaces")).kinds()}
            assert ns_inode(fast.pid, "net") != ns_inode(slow.pid, "net")
        assert pool.stats()["hits"] + pool.stats()["misses"] == 9
    with pytest.raises(ValueError):   # a closed pool: the pool's own error
        nsfast.spawn([SLEEP, "0"], netns=pool)


def test_a_long_running_caller_still_reaches_the_compiled_path():
    """NsType.parse's cache is bounded but stays open to new strings: after
    hundreds of distinct kinds strings a new one is compiled on second use."""
    for i in range(300):
        nsfast.NsType.parse("uts" + " " * i)
    kinds = "ipc ,uts"
    nsfast.spawn([SLEEP, "0"], namespaces=kinds).wait()
    before = _core.spawn_fast_hits()
    assert nsfast.spawn([SLEEP, "0"], namespaces=kinds).wait() == 0
    assert _core.spawn_fast_hits() == before + 1
