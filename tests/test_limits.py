"""spawn(limits=...): rlimits, a cgroup per sandbox, wall time, the usage report.

Every payload is bounded on the test's side too (a count, a wait timeout
with a kill, prlimit(1), a pid namespace whose pid 1 takes all with it),
so that a broken limit fails the test without hurting the machine.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import nsfast
from nsfast import cgroups
from nsfast.limits import Limits, parse_size
from conftest import need, need_tool, run_cli

PY = sys.executable


def _own_boxes() -> list[str]:
    """The box directories of this process's subtrees, in every hierarchy."""
    found = []
    for h in cgroups.hierarchies():
        sub = os.path.join(h.own, cgroups._owner_name())
        if os.path.isdir(sub):
            found += [os.path.join(sub, d) for d in os.listdir(sub) if d.startswith("box-")]
    return found


@pytest.fixture(autouse=True)
def no_box_left():
    """Each test leaves no cgroup of its own behind (and removes them if it did)."""
    before = set(_own_boxes())
    yield
    cgroups.clear()   # clean boxes kept for reuse are removed here
    left = [b for b in _own_boxes() if b not in before]
    for b in left:
        cgroups._rmdir_killing(b)
    assert not left, f"cgroups left behind: {left}"


@pytest.fixture
def run(sleeper):
    """Factory: spawn (with limits); killed and reaped after the test."""
    return sleeper


def _ended(p, timeout: float = 30.0) -> int:
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        pytest.fail(f"the payload ran past {timeout}s: its limit did not stop it")


def _state(pid: int):
    """The process state letter from /proc (the witness), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except FileNotFoundError:
        return None


def _cgroup_v1(controller: str) -> None:
    need(any(h.version == 1 and controller in h.controllers for h in cgroups.hierarchies()),
         f"a cgroup v1 {controller} hierarchy")


# ---------------------------------------------------------------- validation

@pytest.mark.unit
@pytest.mark.parametrize("kw, error", [
    (dict(memory="lots"), ValueError), (dict(memory=-1), ValueError),
    (dict(memory=True), TypeError), (dict(memory=1.5), TypeError),
    (dict(pids=0), ValueError), (dict(pids="8"), TypeError),
    (dict(cpu=0), ValueError), (dict(cpu="half"), TypeError),
    (dict(cpu_time=float("inf")), ValueError), (dict(wall_time=-1), ValueError),
    (dict(memory_swap="1G"), ValueError), (dict(memory="1G", memory_swap="512M"), ValueError),
])
def test_bad_limits_raise_before_anything(kw, error):
    with pytest.raises(error):
        Limits(**kw)


@pytest.mark.unit
def test_sizes_and_rlimit_names():
    assert parse_size("256M") == 256 << 20 and parse_size("1G") == 1 << 30
    assert Limits(memory="64k").memory == 65536
    assert Limits().with_rlimit("fsize=1M").fsize == 1 << 20
    assert Limits().with_rlimit("as=1G").address_space == 1 << 30
    with pytest.raises(ValueError):
        Limits().with_rlimit("bogus=1")


@pytest.mark.unit
def test_limits_are_checked_against_the_plan():
    with pytest.raises(TypeError):
        nsfast.SpawnPlan(["true"], limits={"memory": "1M"})
    with pytest.raises(ValueError):
        nsfast.SpawnPlan(["true"], limits=Limits(pids=4), cgroup="/sys/fs/cgroup/unified")


# ---------------------------------------------------------------- rlimits

def test_rlimits_as_the_program_sees_them(run):
    p = run(["sleep", "60"], limits=Limits(nofile=33, fsize="1M", cpu_time=2, stack="4M",
                                           address_space="512M"))
    with open(f"/proc/{p.pid}/limits") as f:   # the witness: the kernel's table
        rows = {line[:26].strip(): line[26:].split()[:2] for line in f}
    assert rows["Max open files"] == ["33", "33"]
    assert rows["Max file size"] == [str(1 << 20)] * 2
    assert rows["Max cpu time"] == ["2", "3"]     # SIGXCPU at 2 s, SIGKILL at 3 s
    assert rows["Max stack size"] == [str(4 << 20)] * 2
    assert rows["Max core file size"] == ["0", "0"]
    # set while the child still shared the caller's (larger) memory: exec starts afresh
    assert rows["Max address space"] == [str(512 << 20)] * 2


def test_an_rlimit_the_kernel_refuses_is_an_error_naming_it(run):
    # beyond the kernel's nr_open: refused even for root
    with open("/proc/sys/fs/nr_open") as f:
        nr_open = int(f.read())
    with pytest.raises(OSError) as e:
        run(["true"], limits=Limits(nofile=nr_open + 1))
    assert "RLIMIT_NOFILE" in str(e.value)


def test_cpu_time_kills_a_loop_after_about_a_second(run):
    p = run([PY, "-c", "while True: pass"], limits=Limits(cpu_time=1))
    assert _ended(p) == -signal.SIGXCPU
    u = p.usage
    assert u.limit_hit == "cpu_time" and u.signal == signal.SIGXCPU
    assert 0.8 <= u.cpu_time_user + u.cpu_time_system <= 2.5


def test_fsize_stops_a_write_past_it(run, tmp_path):
    out = tmp_path / "big"
    with open(out, "wb") as f:
        p = run(["head", "-c", "3000000", "/dev/zero"], stdout=f, limits=Limits(fsize="1M"))
        _ended(p)
    assert p.usage.signal == signal.SIGXFSZ and p.usage.limit_hit == "fsize"
    assert out.stat().st_size == 1 << 20


# ---------------------------------------------------------------- wall time

def test_wall_time_kills_sleep_through_wait(run):
    t = time.monotonic()
    p = run(["sleep", "100"], limits=Limits(wall_time=1))
    assert _ended(p) == -signal.SIGKILL
    assert 0.9 <= time.monotonic() - t <= 5
    assert p.usage.limit_hit == "wall_time" and 0.9 <= p.usage.wall_time <= 5


def test_wall_time_kills_without_a_wait(run):
    """The watcher kills it while nobody waits: the kernel shows a zombie."""
    p = run(["sleep", "100"], limits=Limits(wall_time=0.5))
    deadline = time.monotonic() + 10
    while _state(p.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(p.pid) == "Z"
    assert p.poll() == -signal.SIGKILL and p.usage.limit_hit == "wall_time"


def test_a_dropped_sandbox_is_still_killed_at_its_wall_time():
    """No one keeps the Process: the limit holds, and the reaping of dropped
    children finishes its cgroup."""
    _cgroup_v1("pids")
    p = nsfast.spawn(["sleep", "100"], limits=Limits(wall_time=0.5, pids=8))
    pid = p.pid
    del p
    deadline = time.monotonic() + 10
    while _state(pid) not in ("Z", None) and time.monotonic() < deadline:
        time.sleep(0.05)
    state = _state(pid)
    assert state in ("Z", None), "the dropped sandbox outlived its wall time"
    # the watcher lets the Process go once it has killed: if the child had
    # already ended then, dropping it reaped it at once (None); else it waits
    # in the dropped list for the next reaping
    if state == "Z":
        assert nsfast.reap_dropped() == 1
    assert _state(pid) is None


def test_wall_time_kills_the_whole_sandbox(run):
    """A grandchild in the sandbox's cgroup dies with it."""
    _cgroup_v1("pids")
    p = run(["sh", "-c", "sleep 100 & echo $!; wait"], stdout=nsfast.PIPE,
            limits=Limits(wall_time=1, pids=16))
    grandchild = int(p.stdout.readline())
    _ended(p)
    p.stdout.close()
    assert p.usage.limit_hit == "wall_time"
    deadline = time.monotonic() + 5
    while _state(grandchild) not in (None, "Z", "X") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _state(grandchild) in (None, "Z", "X"), "the grandchild lives on"
    # the next sandbox with these limits runs (a box that needed a kill is
    # not reused: after cgroup.kill, v2 kills every later clone into it)
    q = run(["echo", "ok"], stdout=nsfast.PIPE, limits=Limits(wall_time=1, pids=16))
    assert q.communicate(timeout=10)[0] == b"ok\n"


# ---------------------------------------------------------------- cgroups

def test_a_sandbox_is_in_its_own_cgroups_with_limits_written(run):
    _cgroup_v1("pids")
    _cgroup_v1("memory")
    p = run(["sleep", "60"], limits=Limits(memory="64M", pids=8))
    with open(f"/proc/{p.pid}/cgroup") as f:   # the witness
        lines = dict(line.rstrip("\n").split(":", 2)[1:] for line in f)
    assert "/box-" in lines["pids"] and "/box-" in lines["memory"]
    if any(h.version == 2 for h in cgroups.hierarchies()) and nsfast.features.clone3:
        assert "/box-" in lines[""]   # cloned into the box's v2 directory
    pids_dir = next(h.own for h in cgroups.hierarchies() if "pids" in h.controllers)
    box = os.path.join(pids_dir, lines["pids"][len(_rel(pids_dir)):].lstrip("/"))
    with open(os.path.join(box, "pids.max")) as f:
        assert f.read().strip() == "8"
    p.kill()
    p.wait()
    with open(os.path.join(box, "cgroup.procs")) as f:
        assert f.read() == ""        # kept clean for the next sandbox with these limits
    q = run(["sleep", "60"], limits=Limits(memory="64M", pids=8))
    with open(os.path.join(box, "cgroup.procs")) as f:
        assert f.read().split() == [str(q.pid)]   # reused
    q.kill()
    q.wait()
    cgroups.clear()
    assert not os.path.exists(box)


def _rel(own: str) -> str:
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if "pids" in ctrls.split(","):
                return path.rstrip("/")
    return ""


@pytest.mark.system
def test_fork_bomb_stops_at_the_pids_limit(run):
    _cgroup_v1("pids")
    bomb = textwrap.dedent("""
        import os, time
        n = 0
        for i in range(5000):          # the test's own bound
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            n += 1
        print(n, flush=True)
    """)
    # pid 1 of its own pid namespace: when it ends, every fork ends with it
    p = run([PY, "-c", bomb], namespaces="pid", stdout=nsfast.PIPE,
            limits=Limits(pids=64, wall_time=60))
    out, _ = p.communicate(timeout=60)
    assert 1 <= int(out) <= 63
    assert p.usage.limit_hit == "pids"


@pytest.mark.system
def test_memory_hog_is_oom_killed_at_the_limit(run):
    _cgroup_v1("memory")
    with open("/proc/meminfo") as f:
        avail = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable"))
    need(avail > 600 << 10, "600 MB of free memory")
    hog = "a = []\nfor i in range(64): a.append(b'x' * (64 << 20))"   # up to 4 GiB
    # the test's own net: prlimit(1) caps the hog at 300 MB of address space
    p = run([need_tool("prlimit"), "--as=314572800", "--", PY, "-c", hog],
            limits=Limits(memory="256M"))
    _ended(p)
    u = p.usage
    assert u.signal == signal.SIGKILL and u.oom_killed and u.limit_hit == "memory"
    assert 0 < u.max_rss <= 256 << 20


def test_cpu_share_caps_a_busy_loop(run):
    _cgroup_v1("cpu")
    loop = "import time\nt = time.monotonic() + 2\nwhile time.monotonic() < t: pass"
    p = run([PY, "-c", loop], limits=Limits(cpu=0.25, wall_time=20))
    assert _ended(p) == 0
    used = p.usage.cpu_time_user + p.usage.cpu_time_system
    assert used <= 0.3 * p.usage.wall_time + 0.05, p.usage


def test_a_missing_controller_is_an_error_naming_it():
    with pytest.raises(OSError) as e:
        cgroups.layout(["rdma"])      # not on this machine's list of hierarchies
    assert "rdma" in str(e.value) and "/sys/fs/cgroup" in str(e.value)


def test_v2_box_clone_into_cgroup_kill_and_events(run):
    """The v2 path with what this host's v2 offers: a box, CLONE_INTO_CGROUP,
    cgroup.kill, cgroup.events."""
    v2 = next((h.own for h in cgroups.hierarchies() if h.version == 2), None)
    need(v2 is not None, "a cgroup v2 mount")
    need(nsfast.features.clone3, "clone3 (CLONE_INTO_CGROUP)")
    box = cgroups.Box(Limits(), cgroups.Layout((), v2, frozenset()))
    try:
        (path, version, _), = box.dirs
        assert version == 2 and path.startswith(v2 + "/nsfast-")
        p = run(["sleep", "60"], cgroup=path)
        with open(f"/proc/{p.pid}/cgroup") as f:
            assert f"0::{path[len(v2):]}\n" in f.read()
        events = os.path.join(path, "cgroup.events")
        assert "populated 1" in open(events).read()
        box.kill()
        assert _ended(p) == -signal.SIGKILL
        deadline = time.monotonic() + 5
        while "populated 1" in open(events).read() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "populated 0" in open(events).read()
    finally:
        box.finish()
    assert not os.path.exists(path)


CALLER = textwrap.dedent("""
    import sys, nsfast
    p = nsfast.spawn(["sleep", "300"], pdeathsig=None, limits=nsfast.Limits(pids=8))
    print(p.pid, flush=True)
    sys.stdin.read()
""")


@pytest.mark.system
def test_cgroups_of_a_killed_caller_are_removed_by_the_next_spawn():
    _cgroup_v1("pids")
    caller = subprocess.Popen([PY, "-c", CALLER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    try:
        sandbox = int(caller.stdout.readline())
        with open(f"/proc/{sandbox}/cgroup") as f:
            rel = next(line.split(":", 2)[2].strip() for line in f
                       if "pids" in line.split(":")[1].split(","))
        box = "/sys/fs/cgroup/pids" + rel
        assert os.path.isdir(box)
    finally:
        caller.kill()
        caller.wait()
        caller.stdin.close()
        caller.stdout.close()
    assert os.path.isdir(box)          # left behind by the SIGKILL, sleep still inside
    p = nsfast.spawn(["true"], limits=Limits(pids=4))   # gc runs first (new process)
    p.wait()
    cgroups.gc()
    assert not os.path.exists(box) and not os.path.exists(os.path.dirname(box))
    deadline = time.monotonic() + 5
    while _state(sandbox) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.02)   # killed; its new parent reaps it
    assert _state(sandbox) in (None, "Z")


# ---------------------------------------------------------------- the command line

def _meta(path) -> dict:
    return dict(line.split(":", 1) for line in path.read_text().splitlines())


def test_cli_wall_time_writes_isolates_meta(tmp_path):
    meta = tmp_path / "meta"
    r = run_cli("unshare", "--wall-time=1", f"--meta={meta}", "sleep", "100", timeout=30)
    assert r.returncode == -signal.SIGKILL, r.stderr   # dies of it, as unshare(1)
    m = _meta(meta)
    assert m["status"] == "TO" and m["killed"] == "1" and m["exitsig"] == "9"
    assert 0.9 <= float(m["time-wall"]) <= 5 and "exitcode" not in m


def test_cli_cgroup_limits_and_a_failed_exit(tmp_path):
    _cgroup_v1("pids")
    _cgroup_v1("memory")
    meta = tmp_path / "meta"
    r = run_cli("unshare", "--memory", "64M", "--pids", "4", "--rlimit", "nofile=20",
                f"--meta={meta}", "sh", "-c", "ulimit -n; cat /proc/self/cgroup; exit 3")
    assert r.returncode == 3, r.stderr
    out = r.stdout.decode()
    assert out.startswith("20\n") and "/box-" in out
    m = _meta(meta)
    assert m["status"] == "RE" and m["exitcode"] == "3" and "cg-mem" in m
    assert "cg-oom-killed" not in m and "killed" not in m


def test_cli_bad_limits_are_one_line_errors():
    for args in (["--rlimit", "bogus=1"], ["--memory", "lots"], ["--pids", "x"],
                 ["--cpu-time=-1"]):
        r = run_cli("unshare", *args, "true")
        err = r.stderr.decode()
        assert r.returncode == 1 and err.count("\n") == 1 and "Traceback" not in err, err


def test_cli_gc_runs():
    r = run_cli("gc")
    assert r.returncode == 0 and r.stdout.startswith(b"removed ")


def test_gc_judges_owners_of_other_pid_namespaces(sleeper):
    """From the initial pid namespace, a subtree whose owner's pid namespace
    has no process left is stale; one of a live namespace is not ours to judge."""
    _cgroup_v1("pids")
    need(os.stat("/proc/self/ns/pid").st_ino == cgroups._INIT_PIDNS,
         "the initial pid namespace (the test judges others from it)")
    own = next(h.own for h in cgroups.hierarchies() if "pids" in h.controllers)
    live = sleeper(namespaces="pid")
    live_ns = os.stat(f"/proc/{live.pid}/ns/pid").st_ino
    gone_ns = 4026500000 + os.getpid() % 10000   # no namespace has this inode
    assert gone_ns not in cgroups._live_pid_namespaces()
    kept = os.path.join(own, f"nsfast-{live_ns}-1-1")
    stale = os.path.join(own, f"nsfast-{gone_ns}-1-1")
    try:
        for d in (kept, stale):
            os.mkdir(d)
            os.mkdir(os.path.join(d, "box-0"))
        cgroups.gc()
        assert os.path.isdir(os.path.join(kept, "box-0")) and not os.path.exists(stale)
    finally:
        for d in (kept, stale):
            for sub in (os.path.join(d, "box-0"), d):
                if os.path.exists(sub):
                    os.rmdir(sub)


def test_v1_kill_through_the_freezer(run):
    """The v1 path without cgroup.kill: freeze, kill each task, thaw."""
    _cgroup_v1("pids")
    _cgroup_v1("freezer")
    hs = cgroups.hierarchies()
    v1 = tuple((h.own, h.controllers) for h in hs if h.version == 1
               and h.controllers & {"pids", "freezer"})
    box = cgroups.Box(Limits(pids=32), cgroups.Layout(v1, None, frozenset()))

    def move_in(pid):   # the test's own move, while the child waits
        for d, _, _ in box.dirs:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(pid))
    p = None
    try:
        p = run(["sh", "-c", "for i in 1 2 3 4; do sleep 100 & done; echo; wait"],
                stdout=nsfast.PIPE, on_created=move_in)
        p.stdout.readline()             # the sleeps are started
        inside = box.pids()
        assert len(inside) == 5 and p.pid in inside
        box.kill()
        assert _ended(p) == -signal.SIGKILL
        deadline = time.monotonic() + 5
        while box.pids() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert box.pids() == []
        freezer = next(d for d, _, c in box.dirs if "freezer" in c)
        with open(os.path.join(freezer, "freezer.state")) as f:
            assert f.read().strip() == "THAWED"
    finally:
        if p is not None:
            p.stdout.close()
        box._remove()


def test_repeated_identical_spawns_are_each_limited(run):
    """A repeated call reuses its plan (spawn's fast path, for an absolute
    program and no std streams): each child still gets its box, its rlimits
    and its deadline."""
    _cgroup_v1("pids")
    sleep = shutil.which("sleep")
    for _ in range(3):
        p = run([os.path.realpath(sleep), "60"], limits=Limits(pids=8, nofile=40, wall_time=30))
        with open(f"/proc/{p.pid}/cgroup") as f:
            assert "/box-" in f.read()
        with open(f"/proc/{p.pid}/limits") as f:
            assert any(line.startswith("Max open files") and line.split()[3] == "40"
                       for line in f)
        p.kill()
        p.wait()
        assert p.usage is not None and p.usage.signal == signal.SIGKILL


def test_boxes_are_reused_across_many_sandboxes():
    """Back-to-back sandboxes with a memory limit keep reusing the boxes made
    ahead: the kernel frees an ended sandbox's objects a little later, and
    that residue must not make every dozenth sandbox pay for a new box
    (witness: the box directories in the memory hierarchy, listed after
    each sandbox)."""
    _cgroup_v1("memory")
    limits = Limits(memory="256M", pids=64)
    assert cgroups.prepare(limits, 4) == 4
    try:
        subtrees = {os.path.dirname(d) for d in _own_boxes() if "/memory/" in d}
        assert len(subtrees) == 1, subtrees
        subtree = subtrees.pop()
        seen = set()
        for _ in range(150):
            p = nsfast.spawn(["/bin/true"], namespaces="pid,mnt", limits=limits)
            assert p.wait() == 0
            seen |= {n for n in os.listdir(subtree) if n.startswith("box-")}
        assert len(seen) <= 4, sorted(seen)
    finally:
        cgroups.clear()


def test_one_watcher_thread_serves_a_run_of_sandboxes():
    """The wall-time watcher stays for the next sandbox instead of a new
    thread per spawn (witness: the kernel thread id of the watcher)."""
    tids = set()
    for _ in range(10):
        p = nsfast.spawn(["/bin/true"], limits=Limits(wall_time=30))
        tids |= {t.native_id for t in threading.enumerate() if t.name == "nsfast-wall-time"}
        assert p.wait() == 0
    assert len(tids) == 1, tids


def test_an_idle_watcher_does_not_block_unshare_in_place():
    """unshare(user) in place needs a single-threaded process: the idle
    watcher of an ended sandbox is stopped for it (in a separate interpreter,
    so that the pytest process keeps its namespaces)."""
    code = textwrap.dedent("""
        import os, threading, nsfast
        p = nsfast.spawn(["/bin/true"], limits=nsfast.Limits(wall_time=30))
        p.wait()
        print(sum(t.name == "nsfast-wall-time" for t in threading.enumerate()))
        before = os.stat("/proc/self/ns/user").st_ino
        nsfast.unshare("user")
        print(os.stat("/proc/self/ns/user").st_ino != before)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "True"]


def test_nproc_is_the_process_rlimit_of_the_payload(run):
    """nproc: RLIMIT_NPROC, counted for the payload's uid in its own user
    namespace (witness: /proc/<pid>/limits, and a fork refused past it)."""
    p = run(["sleep", "60"], namespaces="user,pid,mnt", map_root=True,
            limits=Limits(nproc=8))
    with open(f"/proc/{p.pid}/limits") as f:
        row = next(line for line in f if line.startswith("Max processes"))
    assert row.split()[2:4] == ["8", "8"]
    # the host's root is exempt: here the payload's uid 0 is an unprivileged host uid
    ids = "0 300000 65536"
    code = "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo done"
    q = nsfast.spawn(["sh", "-c", code], namespaces="user,pid,mnt", uid_map=ids, gid_map=ids,
                     limits=Limits(nproc=4), stdout=nsfast.PIPE, stderr=nsfast.STDOUT)
    out = q.communicate(timeout=60)[0].decode()
    assert "fork" in out.lower() or "resource" in out.lower(), out
    assert Limits().with_rlimit("nproc=16").nproc == 16


def test_boxes_reused_by_threads_at_once():
    """Sandboxes with the same limits started and reaped by 4 threads at
    once: a box put back by one thread and taken by another at once is
    never seen as finished by the second."""
    _cgroup_v1("pids")
    limits = Limits(pids=32)
    errors: list = []

    def churn():
        try:
            for _ in range(40):
                assert nsfast.spawn(["/bin/true"], limits=limits).wait() == 0
        except BaseException as e:
            errors.append(e)
    threads = [threading.Thread(target=churn) for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)   # the threads switch often: the window is small
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
        cgroups.clear()
    assert errors == []


def test_a_run_of_sandboxes_leaves_no_deadlines_behind():
    """Deadlines of reaped sandboxes leave the watcher's heap as they are
    forgotten, not 600 s later when the first of them would have come."""
    from nsfast import watch
    for _ in range(50):
        assert nsfast.spawn(["/bin/true"], limits=Limits(wall_time=600)).wait() == 0
    assert watch.watched() == 0 and len(watch._heap) <= 1


def test_limits_copy_pickle_and_hash_as_values():
    import copy
    import pickle
    a = nsfast.Limits(memory="1G", pids=3, cpu=0.5, wall_time=2, core=None, nproc=9)
    for b in (copy.copy(a), copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
        assert b == a and hash(b) == hash(a) and repr(b) == repr(a)
    assert nsfast.Limits(pids=3) != nsfast.Limits(pids=4)


def test_wall_time_holds_in_a_forked_child_that_never_waits():
    """The watcher thread does not come along into a forked child: the child's
    own sandbox is still killed at its deadline, without a wait (witness: it
    is a zombie in /proc a while after)."""
    import time
    from conftest import in_forked_child
    first = nsfast.spawn(["true"], limits=nsfast.Limits(wall_time=5))   # the watcher runs
    first.wait()

    def in_child() -> bytes:
        p = nsfast.spawn(["sleep", "30"], limits=nsfast.Limits(wall_time=0.2), pdeathsig=None)
        state = b"?"
        for _ in range(100):
            time.sleep(0.05)
            with open(f"/proc/{p.pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
            if state == b"Z":
                break
        p.kill()
        p.wait()
        return state
    state = in_forked_child(in_child)
    assert state == b"Z", state
