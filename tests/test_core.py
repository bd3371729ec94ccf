"""The core: namespace kinds, handles and their relations, setns/unshare in place.

Witnesses: /proc/<pid>/ns links (os.stat/readlink), the kernel's <linux/sched.h>,
setpriv/unshare from util-linux, and the interfaces a thread sees after setns.
"""
from __future__ import annotations

import errno
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import nsfast
from nsfast import Fd, Namespace, NsType, kernel

from conftest import need, need_tool, ns_inode

KINDS = ["mnt", "uts", "ipc", "user", "pid", "net", "cgroup", "time"]


def _missing_pid() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())  # pids are below pid_max, so this one never exists


def _wait_for(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("timed out waiting")


# ---------------------------------------------------------------- kinds

@pytest.mark.unit
def test_nstype_values_are_the_kernels():
    header = "/usr/include/linux/sched.h"
    need(os.path.exists(header), "the kernel headers (linux-libc-dev)")
    text = open(header).read()
    for kind in NsType.all().kinds():
        name = {"MNT": "NEWNS"}.get(kind.name, "NEW" + kind.name)
        m = re.search(rf"#define\s+CLONE_{name}\s+(0x[0-9a-fA-F]+)", text)
        assert m, name
        assert kind.value == int(m.group(1), 16), kind


@pytest.mark.unit
def test_nstype_parsing():
    assert NsType.parse("net,uts") == NsType.NET | NsType.UTS
    assert NsType.parse(" net , uts ") == NsType.NET | NsType.UTS
    assert NsType.parse(["net", "uts"]) == NsType.NET | NsType.UTS
    assert NsType.parse([NsType.PID, "mount"]) == NsType.PID | NsType.MNT
    assert NsType.parse(NsType.IPC) is NsType.IPC
    assert NsType.parse(kernel.CLONE_NEWNET) == NsType.NET
    assert NsType.parse("all") == NsType.all()
    assert len(NsType.all().kinds()) == 8
    assert NsType.parse(None) == NsType(0)
    assert [k.proc_name for k in NsType.parse("all").kinds()] == \
        ["time", "cgroup", "user", "mnt", "uts", "ipc", "pid", "net"]
    with pytest.raises(ValueError, match="unknown namespace kind 'bogus'"):
        NsType.parse("net,bogus")
    with pytest.raises(ValueError, match="unknown namespace flag bits"):
        NsType.parse(0x1)
    with pytest.raises(TypeError):
        NsType.parse(True)
    with pytest.raises(TypeError):
        NsType.parse(b"net")
    with pytest.raises(ValueError):
        (NsType.NET | NsType.UTS).proc_name


# ---------------------------------------------------------------- each kind, created in a child

@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_made_in_a_child_has_a_new_inode(kind, sleeper):
    if kind == "time":
        need(nsfast.features.time_namespaces, "time namespaces (5.6+)")
    if kind == "cgroup":
        need(nsfast.features.cgroup_namespaces, "cgroup namespaces (4.6+)")
    p = sleeper(namespaces=kind)
    path = f"/proc/{p.pid}/ns/{kind}"
    assert ns_inode(p.pid, kind) != ns_inode(os.getpid(), kind)
    for other in KINDS:
        if other != kind:
            assert ns_inode(p.pid, other) == ns_inode(os.getpid(), other), other
    st = os.stat(path)
    with Namespace.of(p.pid, kind) as ns:
        assert (ns.inode, ns.device) == (st.st_ino, st.st_dev)
        assert ns.kind == NsType.parse(kind)
        assert os.fstat(ns.fileno()).st_ino == st.st_ino
        assert os.get_inheritable(ns.fileno()) is False  # O_CLOEXEC
        assert Namespace.open(path) == ns
        assert hash(Namespace.open(path)) == hash(ns)
        assert f"{kind}:[{st.st_ino}]" in repr(ns)
    assert ns.closed
    ns.close()  # a second close does nothing
    with pytest.raises(ValueError):
        ns.fileno()


# ---------------------------------------------------------------- relations

def test_user_namespace_of_a_child_has_ours_as_parent(sleeper):
    p = sleeper(namespaces="user")
    with Namespace.of(p.pid, "user") as child, Namespace.of(os.getpid(), "user") as ours:
        assert child != ours
        with child.parent() as parent:
            assert parent == ours
            assert parent.kind == NsType.USER


def test_net_namespace_made_inside_a_user_namespace_is_owned_by_it(sleeper):
    need_tool("unshare")
    # unshare(1) runs as root of the new user namespace and makes the net one from there
    p = sleeper(["unshare", "--net", "sleep", "600"], namespaces="user", map_root=True)
    ours = ns_inode(os.getpid(), "net")
    _wait_for(lambda: ns_inode(p.pid, "net") != ours)
    with Namespace.of(p.pid, "net") as net, Namespace.of(p.pid, "user") as user:
        with net.owner() as owner:
            assert owner == user
            assert owner.inode == ns_inode(p.pid, "user")
        with user.owner() as owner_of_user, Namespace.of(os.getpid(), "user") as our_user:
            assert owner_of_user == our_user  # a user namespace's owner is its parent
        with pytest.raises(OSError) as e:
            net.parent()  # only user and pid namespaces have parents
        assert e.value.errno == errno.EINVAL


def test_owner_uid_is_the_creators_uid():
    need_tool("setpriv")
    uid = 40000 + os.getpid() % 1000
    proc = subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                             "unshare", "--user", "sleep", "600"])
    try:
        ours = ns_inode(os.getpid(), "user")
        _wait_for(lambda: ns_inode(proc.pid, "user") != ours)
        with Namespace.of(proc.pid, "user") as ns:
            assert ns.owner_uid() == uid
        with Namespace.of(os.getpid(), "user") as init_user:
            assert init_user.owner_uid() == 0
        with Namespace.of(proc.pid, "net") as net:
            with pytest.raises(OSError, match="only user namespaces"):
                net.owner_uid()
    finally:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- setns per thread

def test_setns_net_on_a_thread_and_back_leaves_other_threads_alone(sleeper):
    target_proc = sleeper(namespaces="net")
    target_ino = ns_inode(target_proc.pid, "net")
    home_ino = ns_inode("thread-self", "net")
    assert target_ino != home_ino
    inside, release = threading.Event(), threading.Event()
    bystander_stop = threading.Event()
    seen: dict = {}

    def bystander():
        seen["bystander_tid"] = threading.get_native_id()
        bystander_stop.wait(30)

    def worker():
        try:
            with Namespace.open("/proc/thread-self/ns/net") as saved, \
                    Namespace.of(target_proc.pid, "net") as target:
                nsfast.setns(target)
                seen["inside"] = ns_inode("thread-self", "net")
                seen["links"] = [name for _, name in socket.if_nameindex()]
                inside.set()
                release.wait(30)
                nsfast.setns(saved)
                seen["after"] = ns_inode("thread-self", "net")
        except BaseException as e:  # reported to the test below
            seen["error"] = e
            inside.set()

    b = threading.Thread(target=bystander)
    b.start()
    t = threading.Thread(target=worker)
    t.start()
    try:
        assert inside.wait(30)
        assert "error" not in seen, seen.get("error")
        assert seen["inside"] == target_ino
        assert seen["links"] == ["lo"]  # a fresh net namespace has only lo
        # while the worker is inside, every other thread is still at home
        assert ns_inode("thread-self", "net") == home_ino
        assert ns_inode(f"self/task/{seen['bystander_tid']}", "net") == home_ino
        assert ns_inode(os.getpid(), "net") == home_ino
    finally:
        release.set()
        t.join(30)
        bystander_stop.set()
        b.join(30)
    assert "error" not in seen, seen.get("error")
    assert seen["after"] == home_ino
    assert ns_inode("thread-self", "net") == home_ino


def test_setns_fd_and_path_targets_on_a_thread(sleeper):
    p = sleeper(namespaces="uts", hostname=f"core-{os.getpid()}")
    out: dict = {}

    def worker():
        with Namespace.open("/proc/thread-self/ns/uts") as saved:
            fd = os.open(f"/proc/{p.pid}/ns/uts", os.O_RDONLY | os.O_CLOEXEC)
            try:
                nsfast.setns(Fd(fd))
                out["by_fd"] = socket.gethostname()
                nsfast.setns(saved)
                nsfast.setns(f"/proc/{p.pid}/ns/uts", "uts")
                out["by_path"] = socket.gethostname()
                nsfast.setns(saved, "uts")
                out["home"] = socket.gethostname()
            finally:
                os.close(fd)

    t = threading.Thread(target=worker)
    t.start()
    t.join(30)
    assert out == {"by_fd": f"core-{os.getpid()}", "by_path": f"core-{os.getpid()}",
                   "home": socket.gethostname()}


# ---------------------------------------------------------------- refusals before the syscall

def test_unshare_user_or_pid_is_refused_in_a_threaded_process():
    # in a separate interpreter: if the refusal failed, the pytest process must not move
    code = textwrap.dedent("""
        import os, threading, nsfast
        before = os.stat("/proc/self/ns/user").st_ino
        stop = threading.Event()
        t = threading.Thread(target=stop.wait); t.start()
        for kinds in ("user", "pid", "net,user"):
            try:
                nsfast.unshare(kinds)
                print("no-error", kinds)
            except RuntimeError as e:
                print("refused", kinds, "threads" in str(e))
        try:
            nsfast.setns(1, "user")
        except RuntimeError:
            print("refused setns")
        print("same", os.stat("/proc/self/ns/user").st_ino == before)
        stop.set(); t.join()
        while len(os.listdir("/proc/self/task")) > 1:  # the joined thread's exit lags
            pass
        nsfast.unshare("user")  # single-threaded again: the kernel allows it
        print("moved", os.stat("/proc/self/ns/user").st_ino != before)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:-1] == [
        "refused user True", "refused pid True", "refused net,user True", "refused setns",
        "same True", "moved True"]


def test_kernel_refusals_in_place_carry_hints():
    # in a separate interpreter, so that nothing can move the pytest process
    code = textwrap.dedent("""
        import os, threading, nsfast
        stop = threading.Event()
        t = threading.Thread(target=stop.wait); t.start()
        mnt = nsfast.Namespace.of(os.getpid(), "mnt")
        try:
            nsfast.setns(mnt)  # threads share the fs struct: the kernel says EINVAL
        except OSError as e:
            print("mnt", e.errno, "single-threaded" in str(e))
        stop.set(); t.join()
        while len(os.listdir("/proc/self/task")) > 1:
            pass
        try:
            nsfast.setns(nsfast.Namespace.of(os.getpid(), "user"))  # our own: EINVAL
        except OSError as e:
            print("user", e.errno, "cannot be rejoined" in str(e))
        nsfast.setns(mnt)  # single-threaded, our own mount namespace: allowed
        print("mnt ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:-1] == [f"mnt {errno.EINVAL} True", f"user {errno.EINVAL} True",
                                         "mnt ok"]


# ---------------------------------------------------------------- bad inputs

def test_missing_pid_is_process_lookup_error():
    pid = _missing_pid()
    with pytest.raises(ProcessLookupError):
        Namespace.of(pid, "net")
    with pytest.raises(ProcessLookupError):
        nsfast.namespaces(pid)
    with pytest.raises(ProcessLookupError):
        nsfast.setns(pid, "net")
    with pytest.raises(ProcessLookupError):
        nsfast.setns(pid)
    with pytest.raises(ProcessLookupError):
        nsfast.pidfd_open(pid)


def test_a_zombie_is_process_lookup_error():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        _wait_for(lambda: open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z")
        with pytest.raises(ProcessLookupError, match="has exited"):
            Namespace.of(pid, "net")
        with pytest.raises(ProcessLookupError, match="has exited"):
            nsfast.namespaces(pid)
    finally:
        os.waitpid(pid, 0)


def test_a_file_that_is_not_a_namespace_is_a_clear_oserror(tmp_path):
    path = tmp_path / "plain"
    path.write_text("x")
    with pytest.raises(OSError) as e:
        Namespace.open(path)
    assert e.value.filename == str(path)
    assert "not a namespace file" in str(e.value)
    with pytest.raises(OSError) as e:
        nsfast.setns(str(path))
    assert "not a namespace file" in str(e.value)
    with pytest.raises(FileNotFoundError) as e:
        Namespace.open(tmp_path / "missing")
    assert e.value.filename == str(tmp_path / "missing")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError, match="not a namespace file"):
            nsfast.setns(Fd(fd))
        with pytest.raises(OSError, match="not a namespace file") as e:
            nsfast.setns(Fd(fd), "net")
        assert e.value.errno == errno.EINVAL
    finally:
        os.close(fd)


def test_compiled_setns_keeps_enter_and_closed_handles_right(sleeper):
    """nsfast.setns's compiled common case (a handle, or an Fd with its kind):
    an enter() afterwards comes back to where setns put the thread, not to
    where the thread was before; a closed handle is a ValueError that changes
    nothing."""
    a, b = sleeper(namespaces="uts"), sleeper(namespaces="uts")
    out: dict = {}

    def worker():
        try:
            with Namespace.open("/proc/thread-self/ns/uts") as saved, \
                    Namespace.of(a.pid, "uts") as there, Namespace.of(b.pid, "uts") as other:
                with nsfast.enter(other):   # enter() now holds this thread's home fd
                    pass
                nsfast.setns(there)
                with nsfast.enter(other):
                    out["inside"] = ns_inode("thread-self", "uts")
                out["back"] = ns_inode("thread-self", "uts")
                nsfast.setns(Fd(saved.fileno()), "uts")
                out["home"] = ns_inode("thread-self", "uts")
                there.close()
                try:
                    nsfast.setns(there)
                except ValueError as e:
                    out["closed"] = str(e)
                out["still"] = ns_inode("thread-self", "uts")
        except BaseException as e:  # reported below
            out["error"] = e

    t = threading.Thread(target=worker)
    t.start()
    t.join(30)
    assert "error" not in out, out["error"]
    home = ns_inode(os.getpid(), "uts")
    assert out["inside"] == ns_inode(b.pid, "uts")
    assert out["back"] == ns_inode(a.pid, "uts")
    assert out["home"] == out["still"] == home
    assert "closed" in out["closed"]


def test_setns_with_the_wrong_kind_for_the_fd_is_oserror():
    # our own uts namespace: even a wrongly accepted call would change nothing
    with Namespace.of(os.getpid(), "uts") as uts:
        with pytest.raises(OSError) as e:
            nsfast.setns(Fd(uts.fileno()), "net")
        assert e.value.errno == errno.EINVAL
        assert "uts namespace, not net" in str(e.value)
        with pytest.raises(OSError) as e:
            nsfast.setns(f"/proc/{os.getpid()}/ns/uts", "net")
        assert "not net" in str(e.value)
        with pytest.raises(ValueError):
            nsfast.setns(uts, "net")  # a handle knows its kind: a bad argument
    assert ns_inode("thread-self", "uts") == ns_inode(os.getpid(), "uts")


@pytest.mark.unit
def test_unknown_kind_names_are_value_errors():
    for call in (lambda: Namespace.of(os.getpid(), "bogus"),
                 lambda: nsfast.unshare("bogus"),
                 lambda: nsfast.setns(os.getpid(), "bogus"),
                 lambda: nsfast.list_namespaces("net,bogus"),
                 lambda: nsfast.setns(Fd(0), "bogus")):
        with pytest.raises(ValueError, match="bogus"):
            call()
    with pytest.raises(ValueError):
        nsfast.unshare("")
    with pytest.raises(ValueError):
        Namespace.of(os.getpid(), "net,uts")
    with pytest.raises(TypeError):
        nsfast.setns(1.5)
    with pytest.raises(ValueError):
        nsfast.setns(0, "net")
