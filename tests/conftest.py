"""Shared test helpers: the test tiers, skips that honour NSFAST_MUST_WORK,
sleepers, the CLI.

Every test belongs to one tier, a pytest marker registered in pyproject.toml:

unit
    Pure Python: parsers, validation, argument parsing, errors raised before
    any syscall.  Needs no root and makes no kernel object.  A module says so
    with ``pytestmark = pytest.mark.unit``.
kernel
    The default for a test that names no tier.  Runs as root against the
    real kernel and checks with an independent witness (/proc, lsns, ip,
    findmnt, nsenter, util-linux unshare); it compares only what it created,
    so other processes changing the host meanwhile cannot fail it.
system
    Soak, fault injection, and every test that compares host-wide state (the
    whole mount table, /run/netns, all processes, the number of namespaces).
    Each runs as root in a child pytest inside a mount and pid namespace of
    its own (tests/isolation.py): a private copy of the mount table, a fresh
    /proc and an empty /run/netns, so another process changing the host's
    cannot fail it.  Mark it with ``pytest.mark.system``.

``pytest -m unit`` runs as any user; ``pytest -m "not system"`` is the quick
run; plain ``pytest tests`` (as root, what CI runs) runs every tier.

Kernel and system tests never change the pytest process's namespaces except
through nsfast.enter() on a thread, and clean up everything they make in
fixtures.  Files under /proc are read as bytes, or decoded with
surrogateescape: a mount point or command line need not be UTF-8.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

import nsfast
import isolation
from isolation import (pytest_collection_modifyitems, pytest_runtest_logreport,  # noqa: F401
                       pytest_runtest_protocol)

MUST_WORK = os.environ.get("NSFAST_MUST_WORK") == "1"


def need(condition: bool, reason: str) -> None:
    """Skip unless condition; under NSFAST_MUST_WORK=1 a missing feature fails."""
    if condition:
        return
    if MUST_WORK:
        pytest.fail(f"NSFAST_MUST_WORK=1 but this machine lacks: {reason}")
    pytest.skip(f"this machine lacks: {reason}")


def need_tool(name: str) -> str:
    """Path of a witness tool, or skip (fail under NSFAST_MUST_WORK)."""
    path = shutil.which(name)
    need(path is not None, f"the {name} command")
    return path


def need_root() -> None:
    need(os.geteuid() == 0, "root (the namespace tests create system-wide objects)")


@pytest.fixture(autouse=True)
def _what_the_tier_needs(request):
    """Kernel and system tests need root, system tests util-linux unshare too
    (to run in namespaces of their own); unit tests run as anyone."""
    if request.node.get_closest_marker("unit") is None:
        need_root()
    if request.node.get_closest_marker("system") is not None and not isolation.INSIDE:
        need_tool("unshare")


def read_proc(path: str) -> str:
    """A /proc file's text; bytes that are not UTF-8 kept as surrogates."""
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")


def ns_inode(pid, kind: str) -> int:
    """The inode of /proc/PID/ns/KIND (the independent witness)."""
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


@pytest.fixture
def sleeper():
    """Factory: a `sleep` held in the given namespaces, killed and reaped after the test.

    >>> p = sleeper(namespaces="net,uts")
    """
    procs = []

    def make(argv=("sleep", "600"), **kw):
        p = nsfast.spawn(list(argv), **kw)
        procs.append(p)
        return p

    yield make
    for p in procs:
        if p.returncode is None:
            p.kill()
            p.wait()


def run_cli(*args: str, check: bool = False, input: bytes | None = None, timeout: float = 60,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `nsfast ARGS` as a user would, from this interpreter."""
    cmd = [sys.executable, "-m", "nsfast.cli", *args]
    r = subprocess.run(cmd, capture_output=True, input=input, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} exited {r.returncode}: {r.stderr.decode()}")
    return r


@pytest.fixture
def cli():
    return run_cli


def proc_files(name: str):
    """(pid, bytes of /proc/PID/name) for each process now; one that ends
    during the walk is left out.  Bytes: a command need not be UTF-8."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/{name}", "rb") as f:
                yield int(entry), f.read()
        except OSError:
            continue


def children_of(pid: int) -> list[int]:
    """Pids whose parent is pid (zombies included), from /proc."""
    return [child for child, stat in proc_files("stat")
            if int(stat.rsplit(b")", 1)[1].split()[1]) == pid]


def kill_tree(p: subprocess.Popen) -> None:
    """SIGKILL p's children (a tool that forked) and p, and reap p."""
    for child in children_of(p.pid):
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.kill()
    p.wait()


def sigset_bits(signals) -> int:
    """A set of signals as /proc/PID/status shows it in SigBlk and SigIgn."""
    return sum(1 << (s - 1) for s in set(signals))


def inherited_ignores() -> set:
    """The signals this process was started ignoring: a shell's background job
    ignores SIGINT and SIGQUIT, nohup SIGHUP.  Not SIGPIPE and SIGXFSZ, which
    Python ignores itself and a child gets back at their defaults."""
    return {s for s in signal.valid_signals() if signal.getsignal(s) is signal.SIG_IGN
            and s not in (signal.SIGPIPE, signal.SIGXFSZ)}


def in_forked_child(body) -> bytes:
    """Run body() in a forked child of this process and return the bytes it
    returned (b"" if it raised); the child leaves by os._exit, never through
    pytest."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.write(w, body())
        finally:
            os._exit(0)
    os.close(w)
    try:
        chunks = []
        while chunk := os.read(r, 4096):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(r)
        os.waitpid(pid, 0)


def open_fds() -> set[int]:
    return {int(x) for x in os.listdir("/proc/self/fd")}


def pytest_addoption(parser):
    parser.addoption("--soak-long", action="store_true",
                     help="run the soak tests at full length (20,000 spawns)")


@pytest.fixture
def soak_scale(request) -> int:
    """1 in CI, 10 with --soak-long."""
    return 10 if request.config.getoption("--soak-long") else 1


def system_state() -> dict:
    """What a leak would change: our fds, children, zombies, mounts, /run/netns,
    the net namespaces of every process, and our RSS (kB).  Host-wide: only a
    `system` test, in namespaces of its own, may compare it."""
    net = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                net.add(os.stat(f"/proc/{entry}/ns/net").st_ino)
            except OSError:
                pass
    rss = 0
    for line in read_proc("/proc/self/status").splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return {
        "fds": open_fds(),
        "children": sorted(children_of(os.getpid())),
        "mountinfo": read_proc("/proc/self/mountinfo"),
        "run_netns": sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else [],
        "net_namespaces": len(net),
        "rss_kb": rss,
    }


@pytest.fixture(scope="session")
def python_for_nobody():
    """nsfast as installed, copied where uid 65534 can run it, whatever the mode
    of the checkout and its environment (tests/other_users.py); removed after."""
    import other_users
    need_tool("setpriv")
    top = other_users.staged_dir()
    try:
        staged = other_users.stage(top)
        why = other_users.runs_as(65534, staged)
        need(why == "", f"an interpreter that uid 65534 may run ({why})")
        yield staged
    finally:
        shutil.rmtree(top)
