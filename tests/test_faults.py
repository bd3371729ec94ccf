"""Fault injection: every failure gives a clean error and leaves no orphan
process, fd or mount behind."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import nsfast
from conftest import children_of, open_fds, sigset_bits, system_state

# the no-leak checks compare the whole mount table: in namespaces of its own
pytestmark = pytest.mark.system


@pytest.fixture
def no_leak():
    """The test's failures must leave our fds, children and mounts as they were."""
    before = system_state()
    yield
    after = system_state()
    for key in ("fds", "children", "mountinfo"):
        assert after[key] == before[key], key


@pytest.mark.parametrize("make", ["missing", "not_executable", "directory"])
def test_exec_failures_are_clean(tmp_path, no_leak, make):
    prog = tmp_path / "prog"
    if make == "not_executable":
        prog.write_text("#!/bin/sh\ntrue\n")
        prog.chmod(0o644)
    elif make == "directory":
        prog.mkdir()
    expected = {"missing": FileNotFoundError, "not_executable": PermissionError,
                "directory": PermissionError}[make]
    with pytest.raises(expected) as info:
        nsfast.spawn([str(prog)], namespaces="user,mnt,pid", map_root=True)
    assert info.value.filename == str(prog)


@pytest.mark.parametrize("case", [
    dict(kw=dict(cwd="/nonexistent-cwd"), exc=FileNotFoundError, path="/nonexistent-cwd"),
    dict(kw=dict(namespaces="mnt", mounts=[nsfast.Tmpfs("/nonexistent-target/x")]),
         exc=FileNotFoundError, path="/nonexistent-target/x"),
    dict(kw=dict(namespaces="mnt", mounts=[nsfast.Bind("/nonexistent-src", "/tmp")]),
         exc=FileNotFoundError, path="/nonexistent-src"),
    dict(kw=dict(root="/nonexistent-root"), exc=FileNotFoundError, path="/nonexistent-root"),
    dict(kw=dict(join={"net": "/proc/self/ns/uts"}), exc=OSError, path="/proc/self/ns/uts"),
])
def test_child_step_failures_are_clean(no_leak, case):
    with pytest.raises(case["exc"]) as info:
        nsfast.spawn(["true"], **case["kw"])
    text = str(info.value)
    assert case["path"] in text or info.value.filename == case["path"]


def test_overlong_hostname_never_reaches_the_kernel(no_leak):
    with pytest.raises(ValueError, match="64"):
        nsfast.spawn(["true"], namespaces="uts", hostname="x" * 65)


def test_map_the_kernel_refuses(no_leak):
    """Inside a user namespace that maps only uid 0, a map naming outside uid 5
    is refused by the kernel: PermissionError with a hint, and no child left."""
    code = textwrap.dedent("""
        import nsfast, os
        try:
            nsfast.spawn(["true"], namespaces="user", uid_map=[(0, 5, 1)], gid_map=[(0, 0, 1)])
            print("no error")
        except OSError as e:
            print(type(e).__name__, "|", e, "|", os.listdir("/proc/self/task").__len__())
    """)
    repo = os.path.dirname(os.path.dirname(nsfast.__file__))
    p = nsfast.spawn([sys.executable, "-c", code], namespaces="user", map_root=True,
                     stdout=nsfast.PIPE, stderr=nsfast.STDOUT,
                     env=dict(os.environ, PYTHONPATH=repo))
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0, out
    name, message, _ = out.decode().split("|")
    assert name.strip() == "PermissionError"
    assert "uid_map" in message and "hint" in message


def test_parent_sigkilled_takes_the_whole_sandbox_with_it():
    """An intermediate process spawns a sandbox whose pid 1 has its own child, then
    is SIGKILLed: every process of the sandbox must die (pdeathsig, then the pid
    namespace's teardown)."""
    repo = os.path.dirname(os.path.dirname(nsfast.__file__))
    code = textwrap.dedent("""
        import nsfast, sys, time
        p = nsfast.spawn(["sh", "-c", "sleep 600 & echo $!; wait"],
                         namespaces="pid,mnt", mount_proc=True, stdout=nsfast.PIPE)
        inner = p.stdout.readline()
        print(p.pid, flush=True)
        time.sleep(600)
    """)
    inter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             env=dict(os.environ, PYTHONPATH=repo))
    try:
        sandbox_pid = int(inter.stdout.readline())
        # the sandbox's processes, as the host sees them
        members = [sandbox_pid] + children_of(sandbox_pid)
        assert len(members) == 2
        os.kill(inter.pid, signal.SIGKILL)
        inter.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            alive = [pid for pid in members if _alive(pid)]
            if not alive:
                break
            time.sleep(0.02)
        assert not alive, f"sandbox processes outlived their parent: {alive}"
    finally:
        if inter.poll() is None:
            inter.kill()
            inter.wait()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before open / before read
        return False


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_exception_inside_with_spawn_kills_and_reaps(exc, no_leak):
    pid = None
    with pytest.raises(exc):
        with nsfast.spawn(["sleep", "600"], namespaces="pid,user", map_root=True) as p:
            pid = p.pid
            raise exc()
    assert p.returncode == -signal.SIGKILL
    assert not os.path.exists(f"/proc/{pid}")


def test_caller_with_blocked_and_ignored_signals(no_leak):
    """The child starts with the caller thread's mask and keeps what it
    ignores, as a child of subprocess does (so that nohup works)."""
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGUSR1})
    old_int = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        # not through sh: dash empties its mask when it starts
        p = nsfast.spawn(["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"],
                         stdout=nsfast.PIPE)
        out, _ = p.communicate(timeout=30)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        signal.signal(signal.SIGUSR2, old_int)
    fields = dict(line.split(":\t") for line in out.decode().splitlines())
    # what the mask held before counts too (a caller may start with some blocked)
    assert int(fields["SigBlk"], 16) == sigset_bits(old_mask | {signal.SIGTERM, signal.SIGUSR1})
    assert int(fields["SigIgn"], 16) & sigset_bits({signal.SIGUSR2})


def test_caller_ignoring_sigchld_still_gets_the_status(no_leak):
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        p = nsfast.spawn(["sh", "-c", "exit 7"], namespaces="uts")
        assert p.wait(timeout=30) == 7
    finally:
        signal.signal(signal.SIGCHLD, old)


def _run_in_own_userns(code: str) -> list:
    """Run Python code as root of a fresh user namespace and return its printed lines.

    The max_*_namespaces sysctls are per user namespace and need CAP_SYS_RESOURCE
    there: inside our own one we may lower them without touching the host's."""
    repo = os.path.dirname(os.path.dirname(nsfast.__file__))
    p = nsfast.spawn([sys.executable, "-c", textwrap.dedent(code)], namespaces="user",
                     map_root=True, stdout=nsfast.PIPE, stderr=nsfast.STDOUT,
                     env=dict(os.environ, PYTHONPATH=repo))
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out.decode()
    return out.decode().splitlines()


def test_user_namespaces_disabled_gives_the_sysctl_hint():
    lines = _run_in_own_userns("""
        import errno, nsfast
        with open("/proc/sys/user/max_user_namespaces", "w") as f:
            f.write("0")
        try:
            nsfast.spawn(["true"], namespaces="user", map_root=True)
            print("no error")
        except OSError as e:
            print(e.errno, "|", e)
    """)
    err, message = lines[-1].split("|", 1)
    assert int(err) in (errno.ENOSPC, errno.EPERM)
    assert "max_user_namespaces" in message


def test_pool_refill_hitting_enospc_surfaces_on_take_and_recovers():
    lines = _run_in_own_userns("""
        import errno, time, nsfast
        LIMIT = "/proc/sys/user/max_net_namespaces"
        def wait_ready(pool, n):
            deadline = time.monotonic() + 10
            while pool.stats()["ready"] < n and time.monotonic() < deadline:
                time.sleep(0.01)
            return pool.stats()["ready"]
        with nsfast.NetnsPool(size=2) as pool:
            print("ready", wait_ready(pool, 2))
            old = open(LIMIT).read()
            with open(LIMIT, "w") as f:
                f.write("0")
            pool.take().close()
            pool.take().close()
            try:
                pool.take()
                print("take", "no error")
            except OSError as e:
                print("take", e.errno, "max_net_namespaces" in str(e))
            time.sleep(0.2)
            print("last_error", type(pool.stats()["last_error"]).__name__)
            with open(LIMIT, "w") as f:
                f.write(old)
            print("recovered", wait_ready(pool, 2))
            ns = pool.take()
            print("kind", ns.kind.proc_name)
    """)
    assert lines == ["ready 2", f"take {errno.ENOSPC} True", "last_error OSError",
                     "recovered 2", "kind net"]


def test_failing_grandchild_of_a_pid_join_is_reaped(sleeper):
    """With a joined pid namespace the child forks; when the grandchild fails
    fast, its record can overtake the intermediate's pid message: both must
    still be reaped, every time."""
    target = sleeper(namespaces="pid")
    before = system_state()
    for _ in range(200):
        with pytest.raises(FileNotFoundError) as info:
            nsfast.spawn(["true"], join={"pid": target.pid}, cwd="/nonexistent-cwd")
        assert info.value.filename == "/nonexistent-cwd"
    assert children_of(os.getpid()) == [target.pid]
    after = system_state()
    for key in ("fds", "children", "mountinfo"):
        assert after[key] == before[key], key
