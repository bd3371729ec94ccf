"""nsfast.spawn's plans (nsfast/plan.py): a repeated call reuses the plan
validated the first time, and does what a freshly validated one does,
witnessed from /proc.  A call with an unhashable argument (pass_fds=[]) is
validated afresh with everything else equal."""
from __future__ import annotations

import os
import signal
import sys
import tempfile
import time

import pytest

import nsfast
from conftest import need, ns_inode

_spawn_module = sys.modules["nsfast.spawn"]


def reused() -> int:
    return _spawn_module.plans_reused()

KINDS = ("user", "mnt", "uts", "ipc", "pid", "net", "cgroup", "time")
SLEEP = "/bin/sleep"
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
def test_a_reused_plan_does_what_a_fresh_one_does(kw, sleeper):
    if "time" in kw.get("namespaces", ""):
        need(nsfast.features.time_namespaces, "time namespaces")
    argv = [SLEEP, "60"]
    sleeper(argv, **kw)                      # validated, and its plan kept
    before = reused()
    fast = sleeper(argv, **kw)
    assert reused() == before + 1, "a repeated call was validated again"
    slow = sleeper(argv, pass_fds=[], **kw)  # a list: validated afresh
    assert reused() == before + 1
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
            for extra in ({}, {}, {"pass_fds": []}):
                out = os.path.join(d, "out")
                p = nsfast.spawn(["/bin/sh", "-c",
                                  f'printf %s "$NSFAST_FAST_A:$NSFAST_FAST_B" > {out}'],
                                 **extra)
                assert p.wait() == 0
                assert open(out).read() == "from-environ:from-putenv"
        finally:
            del os.environ["NSFAST_FAST_A"]
            os.unsetenv("NSFAST_FAST_B")


def test_a_reused_plan_fails_as_a_fresh_one():
    for kw in (dict(), dict(namespaces="user", map_root=True)):
        for second in (False, True):
            before = reused()
            with pytest.raises(FileNotFoundError) as e:
                nsfast.spawn(["/nonexistent/nsfast-prog"], **kw)
            assert e.value.filename == "/nonexistent/nsfast-prog"
        assert reused() == before + 1   # the second call reused the first one's plan
    with pytest.raises(ValueError, match="null byte"):
        nsfast.spawn([SLEEP, "1\0"])
    with pytest.raises(ValueError, match="user namespace"):
        nsfast.spawn([SLEEP, "0"], map_root=True)
    with pytest.raises(TypeError):
        nsfast.spawn([SLEEP, "0"], namespace="user")   # a misspelt option


def test_unhashable_arguments_are_validated_each_time_and_work():
    for argv, kw in ((["true"], {"env": {"PATH": "/usr/bin:/bin"}}),
                     ([SLEEP, "0"], {"mounts": []}),
                     ([SLEEP, "0"], {"namespaces": ["net", "uts"]})):
        before = reused()
        for _ in range(2):
            assert nsfast.spawn(argv, **kw).wait() == 0
        assert reused() == before, (argv, kw)


def test_a_reused_plan_searches_path_at_each_call(monkeypatch):
    """The program is looked up in this process's PATH when the call is made,
    not when its plan was: a plan made before PATH changed finds no `true`."""
    assert nsfast.spawn(["true"]).wait() == 0
    before = reused()
    with tempfile.TemporaryDirectory() as empty:
        monkeypatch.setenv("PATH", empty)
        with pytest.raises(FileNotFoundError):
            nsfast.spawn(["true"])
    assert reused() == before + 1


def test_a_plan_cannot_be_changed():
    plan = nsfast.SpawnPlan([SLEEP, "0"], namespaces="uts")
    with pytest.raises(AttributeError):
        plan.new = 0
    with pytest.raises(TypeError):
        nsfast.SpawnPlan([SLEEP, "0"], namespace="uts")   # a misspelt option


def test_pdeathsig_with_a_reused_plan():
    """The default (SIGKILL; in a new pid namespace too, where the child
    waits for the parent's go), a signal given, and None, each from a thread
    that ends, twice (fresh plans, then reused ones): the first three children
    get their signal, the last lives on."""
    import threading
    for _ in range(2):
        box = []
        for kw in ({}, {"namespaces": "pid"}, {"pdeathsig": signal.SIGTERM},
                   {"pdeathsig": None}):
            t = threading.Thread(target=lambda: box.append(nsfast.spawn([SLEEP, "30"], **kw)))
            t.start()
            t.join()
        with box[0] as killed, box[1] as pid1, box[2] as termed, box[3] as lives:
            assert killed.wait(timeout=5) == -signal.SIGKILL
            assert pid1.wait(timeout=5) == -signal.SIGKILL
            assert termed.wait(timeout=5) == -signal.SIGTERM
            time.sleep(0.1)
            assert lives.poll() is None


def test_netns_from_a_pool_with_a_reused_plan(sleeper):
    """spawn(netns=pool): the child joins a namespace the pool made ahead,
    one per spawn, whether the plan is reused or not; the pool's handle is
    closed after."""
    with nsfast.NetnsPool(size=4) as pool:
        for kw in ({}, {"namespaces": "uts"}, {"namespaces": "pid,mnt"}):
            sleeper([SLEEP, "60"], netns=pool, **kw)   # the plan is made
            before = reused()
            fast = sleeper([SLEEP, "60"], netns=pool, **kw)
            assert reused() == before + 1, kw
            slow = sleeper([SLEEP, "60"], netns=pool, pass_fds=[], **kw)
            seen = _view(fast.pid)
            assert seen == _view(slow.pid)
            assert seen["new"] == {"net"} | {k.proc_name for k in
                                             nsfast.NsType.parse(kw.get("namespaces")).kinds()}
            assert ns_inode(fast.pid, "net") != ns_inode(slow.pid, "net")
        assert pool.stats()["hits"] + pool.stats()["misses"] == 9
    with pytest.raises(ValueError):   # a closed pool: the pool's own error
        nsfast.spawn([SLEEP, "0"], netns=pool)


def test_a_long_running_caller_still_reuses_plans():
    """The store of plans is bounded but stays open to new calls: after
    hundreds of distinct calls a repeated one is reused again."""
    for i in range(300):
        nsfast.SpawnPlan([SLEEP, str(i)])
        nsfast.spawn([SLEEP, "0"], namespaces="uts" + " " * (i % 5), pdeathsig=9 + i % 2).wait()
    for i in range(300):
        nsfast.spawn(["/bin/true", str(i)]).wait()
    nsfast.spawn([SLEEP, "0"], namespaces="ipc ,uts").wait()
    before = reused()
    assert nsfast.spawn([SLEEP, "0"], namespaces="ipc ,uts").wait() == 0
    assert reused() == before + 1


def test_umask_is_a_step_of_its_own():
    """umask= is the umask the program starts with, witnessed by sh; a bad one
    is refused before anything starts."""
    for mask in (0o027, 0o777, 0):
        out = nsfast.spawn(["sh", "-c", "umask"], umask=mask, stdout=nsfast.PIPE).communicate()
        assert int(out[0], 8) == mask
    with pytest.raises(ValueError):
        nsfast.spawn(["true"], umask=0o1000)
    with pytest.raises(TypeError):
        nsfast.spawn(["true"], umask="022")


def test_a_plan_made_beforehand_starts_again_and_again():
    plan = nsfast.SpawnPlan([SLEEP, "60"], env={"PATH": "/bin"}, namespaces="uts,ipc")
    with nsfast.spawn(plan) as first, nsfast.spawn(plan) as second:
        assert first.pid != second.pid
        assert ns_inode(first.pid, "uts") != ns_inode(second.pid, "uts")
        assert _view(first.pid)["new"] == _view(second.pid)["new"] == {"uts", "ipc"}
    with pytest.raises(TypeError):
        nsfast.spawn(plan, namespaces="net")
