"""nsfast.spawn as a process launcher: errors, fds, leaks, threads, signals, the
C init, pdeathsig, and the Process object (wait, communicate, async, with)."""
from __future__ import annotations

import asyncio
import fcntl
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import nsfast
from nsfast import kernel
from conftest import children_of, inherited_ignores, need_tool, open_fds, sigset_bits

from test_spawn import output, wait_gone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- errors

def test_missing_program_names_it():
    kids = set(children_of(os.getpid()))
    with pytest.raises(FileNotFoundError) as e:
        nsfast.spawn(["no-such-program-nsfast"], namespaces="user,pid", map_root=True)
    assert e.value.filename == "no-such-program-nsfast"
    with pytest.raises(FileNotFoundError) as e:
        nsfast.spawn(["/nonexistent/prog"])
    assert e.value.filename == "/nonexistent/prog"
    assert set(children_of(os.getpid())) == kids


def test_not_executable_is_permission_error(tmp_path):
    f = tmp_path / "script"
    f.write_text("#!/bin/sh\n")
    with pytest.raises(PermissionError) as e:
        nsfast.spawn([str(f)])
    assert e.value.filename == str(f)


def test_bad_cwd_names_the_cwd():
    with pytest.raises(FileNotFoundError) as e:
        nsfast.spawn(["true"], cwd="/nonexistent-cwd-nsfast", namespaces="mnt")
    assert e.value.filename == "/nonexistent-cwd-nsfast"


def test_hostname_too_long():
    with pytest.raises(ValueError, match="64"):
        nsfast.spawn(["true"], namespaces="uts", hostname="x" * 65)
    assert output(["hostname"], namespaces="uts", hostname="y" * 64).strip() == "y" * 64


@pytest.mark.parametrize("kw", [
    {"argv": ["echo", "a\0b"]},
    {"argv": ["echo"], "env": {"A": "b\0c"}},
    {"argv": ["echo"], "env": {"A\0": "b"}},
    {"argv": ["echo"], "cwd": "/tmp\0x"},
    {"argv": ["ec\0ho"]},
])
def test_nul_bytes_are_value_errors(kw):
    kids = set(children_of(os.getpid()))
    with pytest.raises(ValueError, match="null|NUL"):
        nsfast.spawn(kw.pop("argv"), **kw)
    assert set(children_of(os.getpid())) == kids


@pytest.mark.unit
@pytest.mark.parametrize("kw,exc", [
    ({"namespaces": "bogus"}, ValueError),
    ({"hostname": "a"}, ValueError),                      # no uts
    ({"map_root": True}, ValueError),                     # no user
    ({"mount_proc": True, "namespaces": "pid"}, ValueError),
    ({"propagation": "sideways", "namespaces": "mnt"}, ValueError),
    ({"time_offsets": {"realtime": 1}, "namespaces": "time"}, ValueError),
    ({"pass_fds": [-1]}, ValueError),
    ({"pdeathsig": 0}, ValueError),
    ({"init": True}, ValueError),
    ({"stdin": nsfast.STDOUT}, ValueError),
    ({"env": {"A=B": "c"}}, ValueError),
    ({"uid_map": "0 0 1\n0 5 1", "namespaces": "user"}, ValueError),
    ({"setgroups": "maybe", "namespaces": "user", "map_root": True}, ValueError),
    ({"on_created": 5}, TypeError),
    ({"join": True}, TypeError),
])
def test_bad_arguments_raise_before_any_child(kw, exc):
    kids = set(children_of(os.getpid()))
    fds = open_fds()
    with pytest.raises(exc):
        nsfast.spawn(["true"], **kw)
    assert set(children_of(os.getpid())) == kids
    assert open_fds() == fds


@pytest.mark.unit
def test_empty_argv():
    with pytest.raises(ValueError):
        nsfast.spawn([])


# ---------------------------------------------------------------- fds

def _fds_once_asleep(pid: int) -> set:
    """The fds of a just-started `sleep`, read once it sleeps: right after exec
    the dynamic loader and locale set-up hold fds of their own for a moment."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "S":
                break
        time.sleep(0.005)
    return {int(x) for x in os.listdir(f"/proc/{pid}/fd")}


def test_child_sees_only_std_fds_and_pass_fds(sleeper):
    leaked = os.open("/dev/null", os.O_RDONLY)     # not CLOEXEC: the trap
    os.set_inheritable(leaked, True)
    passed = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    # a high fd no one holds: dup2 onto a taken one would close another's fd
    high = fcntl.fcntl(passed, fcntl.F_DUPFD_CLOEXEC, 200)
    try:
        p = sleeper(pass_fds=[passed, high])
        assert _fds_once_asleep(p.pid) == {0, 1, 2, passed, high}
        p2 = sleeper(namespaces="user,pid,mnt", map_root=True, mount_proc=True)
        assert _fds_once_asleep(p2.pid) == {0, 1, 2}
    finally:
        for fd in (leaked, passed, high):
            os.close(fd)


def test_std_streams_like_subprocess(tmp_path):
    p = nsfast.spawn(["sh", "-c", "cat; echo err >&2"], stdin=nsfast.PIPE,
                     stdout=nsfast.PIPE, stderr=nsfast.STDOUT)
    assert p.communicate(b"in\n") == (b"in\nerr\n", None)
    with open(tmp_path / "out", "wb") as f:
        assert nsfast.spawn(["echo", "x"], stdout=f, stderr=nsfast.DEVNULL).wait() == 0
    assert (tmp_path / "out").read_bytes() == b"x\n"
    r, w = os.pipe()
    try:
        nsfast.spawn(["echo", "fd"], stdout=w).wait()
        assert os.read(r, 10) == b"fd\n"
    finally:
        os.close(r)
        os.close(w)


# ---------------------------------------------------------------- leaks, threads

def test_no_zombie_or_fd_leak_after_1000_spawns():
    for _ in range(5):
        nsfast.spawn(["/bin/true"]).wait()
    fds, kids = open_fds(), set(children_of(os.getpid()))
    for i in range(1000):
        kw = {"namespaces": "user,uts", "map_root": True} if i % 4 == 0 else {}
        with nsfast.spawn(["/bin/true"], **kw) as p:
            assert p.wait() == 0
    for i in range(50):  # failures too
        with pytest.raises(FileNotFoundError):
            nsfast.spawn(["/no/such/binary"], namespaces="pid")
    assert open_fds() == fds
    assert set(children_of(os.getpid())) == kids


def test_eight_threads_spawning_at_once():
    errors, codes = [], []
    barrier = threading.Barrier(8)

    def work(n):
        try:
            barrier.wait()
            for i in range(200):
                kw = ({"namespaces": "user,uts", "map_root": True} if (n + i) % 3 == 0 else
                      {"namespaces": "uts"} if (n + i) % 3 == 1 else {})
                codes.append(nsfast.spawn(["/bin/sh", "-c", f"exit {n}"], **kw).wait() - n)
        except BaseException as e:  # noqa: B902 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(codes) == 1600 and set(codes) == {0}


# ---------------------------------------------------------------- signals

def test_sigchld_ignored_still_gives_returncode():
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        assert nsfast.spawn(["sh", "-c", "exit 3"]).wait() == 3
        assert nsfast.spawn(["sh", "-c", "exit 4"], namespaces="pid").wait() == 4
        p = nsfast.spawn(["sleep", "5"])
        p.kill()
        assert p.wait() == -signal.SIGKILL
        p = nsfast.spawn(["sh", "-c", "exit 6"])
        deadline = time.monotonic() + 5
        while p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert p.returncode == 6
        assert nsfast.spawn(["sh", "-c", "exit 8"], namespaces="pid", init=True).wait() == 8
    finally:
        signal.signal(signal.SIGCHLD, old)


def test_signal_handlers_reset_ignored_and_mask_kept_in_child():
    """subprocess's rules: a handler becomes the default, an ignored signal
    stays ignored (but SIGPIPE, which Python ignores), the mask is kept."""
    old_handler = signal.signal(signal.SIGUSR1, lambda *a: None)
    old_ign = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    ignored = inherited_ignores()   # as this pytest was started
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        text = output(["cat", "/proc/self/status"])
        fields = dict(line.split(":") for line in text.splitlines()
                      if line.startswith(("SigBlk", "SigIgn", "SigCgt")))
        assert len(fields) == 3
        values = {k: int(v, 16) for k, v in fields.items()}
        assert values["SigCgt"] == 0
        assert values["SigIgn"] == sigset_bits(ignored | {signal.SIGUSR2})
        assert values["SigBlk"] == sigset_bits(old_mask | {signal.SIGTERM})
    finally:
        signal.signal(signal.SIGUSR1, old_handler)
        signal.signal(signal.SIGUSR2, old_ign)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def test_init_forwards_sigterm_and_exits_with_payload_status():
    script = "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done"
    p = nsfast.spawn(["sh", "-c", script], namespaces="pid", init=True,
                     stdout=nsfast.PIPE)
    assert p.stdout.readline() == b"ready\n"
    p.terminate()
    assert p.wait(timeout=10) == 7
    p.stdout.close()
    assert nsfast.spawn(["sh", "-c", "exit 5"], namespaces="pid", init=True).wait() == 5
    assert nsfast.spawn(["sh", "-c", "kill -9 $$"], namespaces="pid", init=True).wait() == 137


def test_init_reaps_orphans():
    # orphans are reparented to pid 1; without reaping they stay zombies
    script = ("for i in 1 2 3; do (sh -c 'exit 0' &) ; done; sleep 0.5; "
              "ps -eo stat=,pid=,comm=")
    text = output(["sh", "-c", script], namespaces="pid,mnt", mount_proc=True, init=True)
    states = [line.split()[0] for line in text.splitlines()]
    assert not any(s.startswith("Z") for s in states), text
    # pid 1 is the init; the payload is 2
    rows = [line.split() for line in text.splitlines()]
    assert [r[1] for r in rows][:2] == ["1", "2"]
    assert rows[0][2] == "nsfast-init"


def test_process_dropped_while_init_runs_does_not_crash_it():
    p = nsfast.spawn(["sleep", "2"], namespaces="pid", init=True, pdeathsig=None)
    pid = p.pid
    del p
    import gc
    gc.collect()
    time.sleep(0.05)
    with open(f"/proc/{pid}/stat") as f:
        assert f.read().split(") ")[1][0] in "SR"   # alive, not killed by SIGSEGV
    _, status = os.waitpid(pid, kernel.WALL)
    assert os.waitstatus_to_exitcode(status) == 0


PDEATH = textwrap.dedent("""
    import sys, time, nsfast
    ns = sys.argv[1] or None
    p = nsfast.spawn(["sleep", "600"], namespaces=ns, **({} if sys.argv[2] == "default"
                                                         else {"pdeathsig": None}))
    print(p.pid, flush=True)
    time.sleep(600)
""")


@pytest.mark.parametrize("namespaces", ["", "pid", "user,pid"])
def test_pdeathsig_kills_child_when_parent_dies(namespaces):
    mid = subprocess.Popen([sys.executable, "-c", PDEATH, namespaces, "default"],
                           stdout=subprocess.PIPE, cwd=ROOT)
    try:
        pid = int(mid.stdout.readline())
        assert os.path.exists(f"/proc/{pid}")
    finally:
        mid.kill()
        mid.wait()
        mid.stdout.close()
    assert wait_gone(pid)


def test_without_pdeathsig_the_child_outlives_its_parent():
    mid = subprocess.Popen([sys.executable, "-c", PDEATH, "", "none"],
                           stdout=subprocess.PIPE, cwd=ROOT)
    try:
        pid = int(mid.stdout.readline())
    finally:
        mid.kill()
        mid.wait()
        mid.stdout.close()
    try:
        time.sleep(0.1)
        assert os.path.exists(f"/proc/{pid}")
    finally:
        fd = nsfast.pidfd_open(pid)
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        finally:
            os.close(fd)
    assert wait_gone(pid)


# ---------------------------------------------------------------- Process

def test_wait_timeout_raises_timeout_expired():
    with nsfast.spawn(["sleep", "5"]) as p:
        t0 = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):
            p.wait(timeout=0.2)
        assert 0.15 < time.monotonic() - t0 < 2
        assert p.poll() is None
    assert p.returncode == -signal.SIGKILL
    assert not os.path.exists(f"/proc/{p.pid}")


def test_communicate_with_timeout():
    p = nsfast.spawn(["sh", "-c", "echo out; echo err >&2; exec sleep 5"], stdout=nsfast.PIPE,
                     stderr=nsfast.PIPE)
    with p:
        with pytest.raises(subprocess.TimeoutExpired):
            p.communicate(timeout=0.3)
    p = nsfast.spawn(["sh", "-c", "echo out; echo err >&2"], stdout=nsfast.PIPE,
                     stderr=nsfast.PIPE)
    assert p.communicate() == (b"out\n", b"err\n")
    assert p.returncode == 0


def test_wait_async():
    async def main():
        p = nsfast.spawn(["sh", "-c", "sleep 0.2; exit 9"])
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        t = asyncio.ensure_future(ticker())
        code = await asyncio.wait_for(p.wait_async(), 10)
        t.cancel()
        return code, ticks

    code, ticks = asyncio.run(main())
    assert code == 9
    assert ticks > 5   # the loop ran while we waited


def test_context_manager_kills_and_reaps():
    with nsfast.spawn(["sleep", "600"], namespaces="pid") as p:
        pid = p.pid
        assert os.path.exists(f"/proc/{pid}")
    assert p.returncode == -signal.SIGKILL
    assert not os.path.exists(f"/proc/{pid}")
    assert p.pidfd == -1


def test_send_signal_after_exit_is_harmless():
    p = nsfast.spawn(["true"])
    p.wait()
    p.send_signal(signal.SIGTERM)
    p.kill()
    assert p.returncode == 0
    assert re.match(r"<nsfast.Process pid=\d+ returncode=0>", repr(p))


# ---------------------------------------------------------------- clone fallback, maps

def test_clone_fallback_without_clone3(monkeypatch):
    """The legacy clone(2) path, as on a kernel without clone3 (the C path is
    real; only the feature probe is overridden)."""
    import dataclasses
    plan = sys.modules["nsfast.plan"]
    monkeypatch.setattr(plan, "features", dataclasses.replace(plan.features, clone3=False))
    monkeypatch.setattr(sys.modules["nsfast.spawn"], "_plans", {})   # no plan made before
    text = output(["sh", "-c", "echo $$; id -u; readlink /proc/self/ns/time"],
                  namespaces="user,pid,mnt,time", map_root=True,
                  time_offsets={"monotonic": 10})
    pid, uid, time_ns = text.split()
    assert (pid, uid) == ("1", "0")
    assert time_ns != os.readlink("/proc/self/ns/time")
    with pytest.raises(OSError, match="clone3"):
        nsfast.spawn(["true"], cgroup="/sys/fs/cgroup/unified")


REFUSED_MAP = """
import nsfast
try:
    nsfast.spawn(["true"], namespaces="user", uid_map="0 5 1")
except PermissionError as e:
    print("PermissionError", e.filename, "hint" in str(e))
"""


def test_refused_map_write_is_permission_error_with_hint():
    # inside a user namespace that maps only uid 0, uid 5 of the parent does
    # not exist: the kernel refuses the map
    text = output([sys.executable, "-c", REFUSED_MAP], namespaces="user", map_root=True,
                  cwd=ROOT)
    assert text.split() == ["PermissionError", "/proc/<child>/uid_map", "True"]


UNPRIVILEGED = """
import os, nsfast
p = nsfast.spawn(["cat", "/proc/self/uid_map"], namespaces="user", map_root=True,
                 stdout=nsfast.PIPE)
print(p.communicate()[0].decode().split())
try:
    nsfast.spawn(["true"], namespaces="user", uid_map="0 100000 10")
except OSError as e:
    print(type(e).__name__, "sub" in str(e))
"""


def test_unprivileged_caller_maps_itself_and_ranges_need_helpers():
    """As uid 1000 (inside a user namespace that maps it to our uid): mapping
    one's own id is written directly; a range goes through newuidmap, which
    refuses without an /etc/subuid entry, and the error says where to look."""
    need_tool("newuidmap")
    text = output([sys.executable, "-c", UNPRIVILEGED], namespaces="user",
                  uid_map="1000 0 1", gid_map="1000 0 1", cwd=ROOT)
    lines = text.splitlines()
    assert lines[0] == str(["0", "1000", "1"])
    assert lines[1] == "PermissionError True"


def test_pdeathsig_follows_the_spawning_thread():
    """The kernel's rule, documented in spawn(): the parent-death signal fires
    when the thread that spawned ends; pdeathsig=None lets the child live on."""
    box = []
    for kw in ({}, {"pdeathsig": None}):
        t = threading.Thread(target=lambda: box.append(nsfast.spawn(["sleep", "30"], **kw)))
        t.start()
        t.join()
    with box[0] as died, box[1] as lives:
        assert died.wait(timeout=5) == -signal.SIGKILL
        time.sleep(0.1)
        assert lives.poll() is None
