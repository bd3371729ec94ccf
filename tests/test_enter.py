"""nsfast.enter, run_in, enter_and_exec and the setns loop, against the real kernel.

The witness is /proc/thread-self/ns/* (and /proc/PID/ns/* of the targets):
every check compares inodes the kernel reports, never nsfast's own idea.
"""
from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

import nsfast
from nsfast.enter import RemoteTraceback
from nsfast.flags import NsType
from nsfast.handles import Namespace

from conftest import need_tool, ns_inode, open_fds
from enter_helpers import start_unshare_sleep, stop_all, unshare_cli_exists


def here(kind: str) -> int:
    return os.stat(f"/proc/thread-self/ns/{kind}").st_ino


@pytest.fixture
def netns_target(sleeper):
    """Factory of `sleep` processes in a new net namespace, made by the API or,
    where `nsfast unshare` exists, by `nsfast unshare -fn sleep 60`."""
    procs: list = []

    def make(form: str = "api") -> int:
        if form == "api":
            return sleeper(["sleep", "60"], namespaces="net").pid
        return start_unshare_sleep(["-fn"], "net", procs)

    yield make
    stop_all(procs)


TARGET_FORMS = ["api"] + (["cli"] if unshare_cli_exists() else [])


@pytest.mark.parametrize("form", TARGET_FORMS)
def test_enter_by_pid_switches_thread_and_restores(netns_target, form):
    pid = netns_target(form)
    home = here("net")
    assert ns_inode(pid, "net") != home
    with nsfast.enter(pid, "net"):
        assert here("net") == ns_inode(pid, "net")
        # only lo, and it is down: the target's view
        assert socket.if_nameindex() == [(1, "lo")]
    assert here("net") == home


def test_enter_namespace_handle_and_path(sleeper):
    p = sleeper(namespaces="net,uts", hostname="box")
    home_net, home_uts = here("net"), here("uts")
    with Namespace.of(p.pid, "uts") as ns:
        with nsfast.enter(ns):
            assert socket.gethostname() == "box"
            assert here("uts") == ns.inode
            assert here("net") == home_net  # only the asked kind moved
    with nsfast.enter(f"/proc/{p.pid}/ns/net"):
        assert here("net") == ns_inode(p.pid, "net")
    with nsfast.enter(p, "net,uts"):  # a Process: its pidfd, one setns
        assert (here("net"), here("uts")) == (ns_inode(p.pid, "net"), ns_inode(p.pid, "uts"))
    assert (here("net"), here("uts")) == (home_net, home_uts)


def test_enter_handle_with_its_kind_named(sleeper):
    """enter(ns, kind): the kind may be given (as the docs' examples do); it must
    match the handle's, and a mismatch changes nothing."""
    p = sleeper(namespaces="net,uts", hostname="box2")
    home_net, home_uts = here("net"), here("uts")
    with Namespace.of(p.pid, "net") as net:
        for kinds in ("net", NsType.NET, ["net"]):
            with nsfast.enter(net, kinds):
                assert here("net") == net.inode and here("uts") == home_uts
            assert here("net") == home_net
        with pytest.raises(OSError) as e:
            nsfast.enter(net, "uts").__enter__()
        assert "net namespace, not uts" in str(e.value)
        assert (here("net"), here("uts")) == (home_net, home_uts)
        with nsfast.enter(net, "net"), nsfast.enter(net, "net"):  # nested
            assert here("net") == net.inode
        assert here("net") == home_net


def test_enter_named_netns():
    ip = need_tool("ip")
    name = f"nsfast-enter-{os.getpid()}"
    subprocess.run([ip, "netns", "add", name], check=True)
    try:
        home = here("net")
        with nsfast.enter(name):
            assert here("net") == os.stat(f"/run/netns/{name}").st_ino
        assert here("net") == home
    finally:
        subprocess.run([ip, "netns", "del", name], check=True)


def test_nested_enter_restores_each_level(sleeper):
    a = sleeper(namespaces="net,uts", hostname="a")
    b = sleeper(namespaces="net")
    home = here("net")
    with nsfast.enter(a.pid, "net"):
        assert here("net") == ns_inode(a.pid, "net")
        with nsfast.enter(b.pid, "net"):
            assert here("net") == ns_inode(b.pid, "net")
            with nsfast.enter(a.pid, "uts"):
                assert socket.gethostname() == "a"
                assert here("net") == ns_inode(b.pid, "net")
            assert socket.gethostname() != "a"
        assert here("net") == ns_inode(a.pid, "net")
    assert here("net") == home


def test_exception_inside_still_restores(sleeper):
    p = sleeper(namespaces="net")
    home = here("net")
    with pytest.raises(KeyError):
        with nsfast.enter(p.pid, "net"):
            assert here("net") == ns_inode(p.pid, "net")
            raise KeyError("boom")
    assert here("net") == home


@pytest.mark.parametrize("kind", ["net", "uts", "ipc", "cgroup"])
def test_per_thread_kinds_leave_other_threads_alone(sleeper, kind):
    p = sleeper(namespaces=kind)
    main_tid = threading.get_native_id()
    main_before = os.stat(f"/proc/self/task/{main_tid}/ns/{kind}").st_ino
    seen = {}

    def body():
        seen["home"] = here(kind)
        with nsfast.enter(p.pid, kind):
            seen["inside"] = here(kind)
            seen["main"] = os.stat(f"/proc/self/task/{main_tid}/ns/{kind}").st_ino
        seen["after"] = here(kind)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen["inside"] == ns_inode(p.pid, kind) != seen["home"]
    assert seen["main"] == main_before
    assert seen["after"] == seen["home"]


def test_eight_threads_enter_and_leave_a_thousand_times(sleeper):
    targets = [sleeper(namespaces="net") for _ in range(8)]
    inodes = [ns_inode(t.pid, "net") for t in targets]
    handles = [Namespace.of(t.pid, "net") for t in targets]
    home = here("net")
    errors: list = []
    stop = threading.Event()
    start = threading.Barrier(9)

    def worker(i: int) -> None:
        try:
            start.wait()
            mine = here("net")
            for n in range(1000):
                # both forms of the compiled fast path: kind implied, kind named
                with nsfast.enter(handles[i], "net" if n % 2 else None):
                    if here("net") != inodes[i]:
                        errors.append(f"thread {i}: wrong namespace inside")
                if here("net") != mine:
                    errors.append(f"thread {i}: not back home")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    def watcher() -> None:
        start.wait()
        while not stop.is_set():
            if here("net") != home:
                errors.append("the watcher thread saw its namespace change")
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    w = threading.Thread(target=watcher)
    for t in threads + [w]:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    w.join()
    for h in handles:
        h.close()
    assert errors == []
    assert here("net") == home


def test_closed_handle_is_value_error_and_changes_nothing(sleeper):
    p = sleeper(namespaces="net")
    ns = Namespace.of(p.pid, "net")
    ns.close()
    home = here("net")
    for kinds in (None, "net"):
        e = nsfast.enter(ns, kinds)
        with pytest.raises(ValueError, match="closed"):
            e.__enter__()
        assert here("net") == home
    with Namespace.of(p.pid, "net") as again, nsfast.enter(again):  # state intact
        assert here("net") == ns_inode(p.pid, "net")
    assert here("net") == home


def test_exited_pid_is_process_lookup_error():
    p = nsfast.spawn(["true"])
    pid = p.pid
    p.wait()
    with pytest.raises(ProcessLookupError):
        with nsfast.enter(pid, "net"):
            pass  # pragma: no cover
    with pytest.raises(ProcessLookupError):
        nsfast.run_in(pid, os.getpid, kinds="net")
    with pytest.raises(ProcessLookupError):
        nsfast.enter_and_exec(pid, ["true"], "net")


def test_zombie_pid_setns_refusal_names_its_ns_dir_and_changes_nothing():
    """A zombie still has its pid (pidfd_open works) but no namespaces any
    more: the kernel refuses the setns, and the error names /proc/PID/ns."""
    p = nsfast.spawn(["true"], namespaces="net")
    try:
        for _ in range(500):   # wait until it is a zombie, without reaping it
            with open(f"/proc/{p.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            threading.Event().wait(0.01)
        home = here("net")
        with pytest.raises(OSError) as err:
            with nsfast.enter(p.pid, "net"):
                pass  # pragma: no cover
        assert err.value.filename == f"/proc/{p.pid}/ns"
        assert here("net") == home
    finally:
        p.wait()


def test_process_wide_kinds_refused_in_a_threaded_process(sleeper):
    p = sleeper(namespaces="user,mnt", map_root=True)
    hold = threading.Event()
    t = threading.Thread(target=hold.wait)
    t.start()
    try:
        for kind in ("mnt", "user", "pid", "time"):
            with pytest.raises(ValueError, match="run_in"):
                nsfast.enter(p.pid, kind).__enter__()
        with pytest.raises(RuntimeError, match=r"threads.*run_in"):
            nsfast.enter(p.pid, "mnt", allow_process_wide=True).__enter__()
        with pytest.raises(ValueError, match="cannot be left"):
            nsfast.enter(p.pid, "user", allow_process_wide=True).__enter__()
    finally:
        hold.set()
        t.join()
    assert here("mnt") == ns_inode(os.getpid(), "mnt")


def test_mnt_process_wide_in_a_single_threaded_child(sleeper, tmp_path):
    """allow_process_wide=True switches the whole process; done in a child."""
    p = sleeper(namespaces="mnt,pid", mount_proc=True)
    script = f"""
import os, nsfast
os.chdir({str(tmp_path)!r})
home = os.readlink("/proc/self/ns/mnt")
with nsfast.enter({p.pid}, "mnt", allow_process_wide=True):
    inside = sorted(os.listdir("/proc"))
print(os.readlink("/proc/self/ns/mnt") == home, os.getcwd(), "1" in inside)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", str(tmp_path), "True"]


def test_not_a_namespace_file_names_the_path():
    with pytest.raises(OSError) as e:
        nsfast.enter("/etc/hostname").__enter__()
    assert e.value.filename == "/etc/hostname"


def test_wrong_kind_names_both_kinds():
    with pytest.raises(OSError) as e:
        nsfast.enter("/proc/self/ns/uts", "net").__enter__()
    assert e.value.errno == errno.EINVAL
    assert "uts" in str(e.value) and "net" in str(e.value)
    assert e.value.filename == "/proc/self/ns/uts"


def test_bad_arguments_before_any_syscall():
    with pytest.raises(ValueError, match="kinds"):
        nsfast.enter(os.getpid()).__enter__()
    with pytest.raises(TypeError):
        nsfast.enter(True, "net").__enter__()
    with pytest.raises(ValueError):
        nsfast.enter(-3, "net").__enter__()
    with pytest.raises(ValueError):
        nsfast.enter(os.getpid(), "bogus").__enter__()
    with pytest.raises(ValueError):
        nsfast.enter("..").__enter__()
    with pytest.raises(TypeError):
        nsfast.run_in(os.getpid(), 42)


def test_an_active_enter_cannot_be_reused(sleeper):
    p = sleeper(namespaces="net")
    e = nsfast.enter(p.pid, "net")
    with e:
        with pytest.raises(RuntimeError):
            e.__enter__()
    with e:  # fine again once left
        assert here("net") == ns_inode(p.pid, "net")


def test_thread_moved_by_nsfast_unshare_comes_back_to_the_new_namespace(sleeper):
    p = sleeper(namespaces="uts")
    seen = {}

    def body():
        with nsfast.enter(p.pid, "uts"):  # caches this thread's home
            pass
        nsfast.unshare("uts")             # the thread moves for good
        seen["new"] = here("uts")
        with nsfast.enter(p.pid, "uts"):
            pass
        seen["after"] = here("uts")

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen["after"] == seen["new"] != ns_inode(os.getpid(), "uts")


def test_no_fd_leak(sleeper):
    p = sleeper(namespaces="net,uts")
    ns = Namespace.of(p.pid, "net")
    with nsfast.enter(ns):
        pass  # opens the thread's home fd once
    with nsfast.enter(p.pid, "uts"):
        pass
    before = open_fds()
    for _ in range(300):
        with nsfast.enter(ns):
            with nsfast.enter(p.pid, "net,uts"):
                pass
        with pytest.raises(OSError):
            nsfast.enter("/proc/self/ns/uts", "net").__enter__()
    ns.close()
    assert open_fds() - before == set()


def _ns_fds() -> set:
    """(fd, link) of this process's open fds on net and uts namespace files."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if link.startswith(("net:[", "uts:[")):
            found.add((int(name), link))
    return found


def test_a_thread_closes_its_way_back_when_it_ends(sleeper):
    """The fds enter() keeps in each thread to come back to (opened on its
    first enter() of a kind, common case or general one) end with the thread."""
    p = sleeper(namespaces="net,uts")
    home = {f"net:[{ns_inode(os.getpid(), 'net')}]", f"uts:[{ns_inode(os.getpid(), 'uts')}]"}
    with Namespace.of(p.pid, "net") as ns:
        before = _ns_fds()
        held: list = []

        def body():
            with nsfast.enter(ns):
                pass
            with nsfast.enter(p.pid, "uts"):
                pass
            held.append(_ns_fds() - before)

        for _ in range(4):
            t = threading.Thread(target=body)
            t.start()
            t.join()
            # closed as the thread exits, which ends just after join() returns:
            # wait for it, so that the next thread's listing holds only its own
            deadline = time.monotonic() + 5
            while _ns_fds() - before and time.monotonic() < deadline:
                time.sleep(0.01)
            assert _ns_fds() - before == set()
        # each thread held its own two homes while it ran
        assert [sorted(link for _, link in h) for h in held] == [sorted(home)] * 4


class Boom(Exception):
    """Raised inside run_in; module level so that it pickles."""


def test_run_in_returns_values_and_reraises(sleeper):
    p = sleeper(namespaces="net,uts", hostname="box")
    assert nsfast.run_in(p.pid, socket.gethostname) == "box"
    assert nsfast.run_in(p.pid, lambda: here("net"), kinds="net") == ns_inode(p.pid, "net")
    assert nsfast.run_in(p.pid, lambda a, b=0: (a, b), 1, b=2, kinds="uts") == (1, 2)

    def fail():
        raise Boom(socket.gethostname())

    with pytest.raises(Boom, match="box") as e:
        nsfast.run_in(p.pid, fail, kinds="uts")
    assert isinstance(e.value.__cause__, RemoteTraceback)
    assert "fail" in str(e.value.__cause__)
    # an exception that does not pickle still comes back, as RuntimeError
    class Local(Exception):
        pass

    def local():
        raise Local()

    with pytest.raises(RuntimeError, match="cannot send back"):
        nsfast.run_in(p.pid, local, kinds="uts")
    # the caller is untouched
    assert here("net") == ns_inode(os.getpid(), "net")


def test_run_in_from_a_threaded_caller(sleeper):
    p = sleeper(namespaces="uts,pid,mnt", hostname="box", mount_proc=True)
    results, errors = [], []

    def body():
        try:
            results.append(nsfast.run_in(p.pid, lambda: (socket.gethostname(), os.getpid(),
                                                         len(os.listdir("/proc/self/task")))))
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=body) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for hostname, pid, tasks in results:
        assert hostname == "box"
        assert 1 < pid < 100     # forked again: a pid inside the target's pid namespace
        assert tasks == 1        # only the forking thread exists in the child


def test_seed_scenario_enter_by_pid_fork_exec(sleeper):
    """Enter ipc, uts, net, pid, mnt of a process by pid, fork+exec a shell command."""
    need_tool("ip")
    need_tool("ps")
    p = sleeper(namespaces="ipc,uts,net,pid,mnt", hostname="box", mount_proc=True)
    cmd = ["sh", "-c", "hostname; ip -o link show; ps -e -o comm="]
    out = nsfast.enter_and_exec(p.pid, cmd, "ipc,uts,net,pid,mnt", stdout=nsfast.PIPE)
    text = out.communicate()[0].decode().splitlines()
    assert out.returncode == 0
    assert text[0] == "box"
    assert len([x for x in text if ": lo:" in x]) == 1 and not any(": eth" in x for x in text)
    assert sorted(text[2:]) == ["ps", "sh", "sleep"]
    # the same from Python: run_in forks and execs inside
    same = nsfast.run_in(p.pid, subprocess.check_output, cmd, kinds="ipc,uts,net,pid,mnt")
    assert same.decode().splitlines()[:2] == text[:2]
    procs = sorted(same.decode().splitlines()[2:])
    # the target's sleep, and the run_in child (python) with its sh and ps
    assert [x for x in procs if not x.startswith("python")] == ["ps", "sh", "sleep"]
    assert len(procs) == 4


def test_setns_loop_skips_own_user_ns_after_joining_a_mount_ns(sleeper):
    """A mount namespace with its own /proc hides /proc/thread-self: the loop
    must know the caller's user namespace from before it joined anything."""
    p = sleeper(namespaces="mnt,pid", mount_proc=True)
    child = nsfast.spawn(["cat", "/proc/1/comm"], join={"mnt": p.pid, "user": p.pid},
                         stdout=nsfast.PIPE)
    assert child.communicate()[0] == b"sleep\n"


def test_setns_loop_joins_user_ns_first_when_it_grants_privilege():
    """An unprivileged caller can join its own container's mnt and uts
    namespaces only from inside its user namespace: the first pass's EPERM
    is retried after the user namespace was joined."""
    script = """
import os, nsfast
import ctypes
import nsfast.spawn  # nsfast imports it on first use; nobody may not read this interpreter's files
os.setgroups([]); os.setgid(65534); os.setuid(65534)
from nsfast.kernel import PR_SET_DUMPABLE
ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # setuid cleared it
t = nsfast.spawn(["sleep", "30"], namespaces="user,mnt,uts", map_root=True, hostname="box")
try:
    p = nsfast.spawn(["hostname"], join={"mnt": t.pid, "uts": t.pid, "user": t.pid},
                     stdout=nsfast.PIPE)
    print(p.communicate()[0].decode().strip())
finally:
    t.kill(); t.wait()
"""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(nsfast.__file__)))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "box"


def test_spawn_joins_a_time_namespace(sleeper):
    p = sleeper(namespaces="time,pid", time_offsets={"boottime": 86400})
    for join in (p.pid, {"time": p.pid}):
        c = nsfast.spawn(["readlink", "/proc/self/ns/time"], join=join, stdout=nsfast.PIPE)
        assert c.communicate()[0].strip() == f"time:[{ns_inode(p.pid, 'time')}]".encode()
        assert c.returncode == 0
    assert nsfast.run_in(p.pid, lambda: here("time"), kinds="time") == ns_inode(p.pid, "time")


def test_pidfd_target(sleeper):
    p = sleeper(namespaces="net,uts", hostname="box")
    pidfd = nsfast.pidfd_open(p.pid)
    try:
        with nsfast.enter(pidfd, "net,uts"):
            assert (here("net"), socket.gethostname()) == (ns_inode(p.pid, "net"), "box")
        assert nsfast.run_in(pidfd, socket.gethostname, kinds="uts") == "box"
        with pytest.raises(ValueError):
            nsfast.enter(pidfd).__enter__()
    finally:
        os.close(pidfd)
    assert here("net") == ns_inode(os.getpid(), "net")
