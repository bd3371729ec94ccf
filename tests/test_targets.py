"""One target resolver: every entry point that takes a namespace target
accepts the same kinds of target and refuses the same mistakes with the same
error (type and message).

Each entry point is asked for a net namespace.  setns changes its caller, so
it runs in a forked child; the witness that a target worked is the inode of
/proc/<pid>/ns/net of the process (or thread) that joined, or of the
namespace that a socket or a name under /run/netns was made on.
"""
from __future__ import annotations

import fcntl
import os
import pickle

import pytest

import nsfast
from nsfast import Fd, Namespace, PidFd, kernel, netns

from conftest import need_tool

SLEEP = ["sleep", "600"]


def _stopped(p: nsfast.Process) -> None:
    p.kill()
    p.wait()


def _in_child(call) -> object:
    """call() in a forked child (for setns, which moves its caller); its
    result, or ("raised", type name, message) for what it raised."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # pragma: no cover - the child
        try:
            os.close(r)
            try:
                out = call()
            except BaseException as e:   # noqa: BLE001 - reported to the parent
                out = ("raised", type(e).__name__, str(e))
            os.write(w, pickle.dumps(out))
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    assert data, "the child died"
    return pickle.loads(data)


def _setns_here(target) -> int:
    nsfast.setns(target, "net")
    return os.stat("/proc/self/ns/net").st_ino


def _entered(target) -> int:
    with nsfast.enter(target, "net"):
        return os.stat("/proc/thread-self/ns/net").st_ino


def _spawned(make) -> int:
    p = make()
    try:
        return os.stat(f"/proc/{p.pid}/ns/net").st_ino
    finally:
        _stopped(p)


def _attached(target) -> int:
    name = f"nsft-targets-{os.getpid()}"
    netns.attach(name, target)
    try:
        return os.stat(f"{netns.RUN_DIR}/{name}").st_ino
    finally:
        netns.remove(name)


def _socket_in(target) -> int:
    with netns.iproute(target) as ipr:
        fd = fcntl.ioctl(ipr.fileno(), kernel.SIOCGSKNS)   # the socket's own netns
    try:
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)


# entry point -> call(target) -> the inode of the net namespace it reached
ENTRY_POINTS = {
    "enter": _entered,
    "setns": lambda t: _in_child(lambda: _setns_here(t)),
    "run_in": lambda t: nsfast.run_in(t, lambda: os.stat("/proc/self/ns/net").st_ino,
                                      kinds="net"),
    "enter_and_exec": lambda t: _spawned(lambda: nsfast.enter_and_exec(t, SLEEP, "net")),
    "spawn(join=)": lambda t: _spawned(lambda: nsfast.spawn(SLEEP, join={"net": t})),
    "spawn(netns=)": lambda t: _spawned(lambda: nsfast.spawn(SLEEP, netns=t)),
    "netns.attach": _attached,
    "netns.iproute": _socket_in,
}


def _outcome(entry: str, target) -> tuple:
    """("raised", type name, message), or ("ok", result)."""
    call = ENTRY_POINTS[entry]
    if entry == "setns":
        out = call(target)
        return out if isinstance(out, tuple) else ("ok", out)
    try:
        return ("ok", call(target))
    except Exception as e:   # noqa: BLE001 - what this test compares
        return ("raised", type(e).__name__, str(e))


# ---------------------------------------------------------------- bad targets

class FilenoOfStr:
    def fileno(self):
        return "3"


class HugePid:
    pid = 2**64


@pytest.fixture
def reaped_process():
    p = nsfast.spawn(["true"])
    p.wait()
    return p


@pytest.fixture
def plain_fd(tmp_path):
    path = tmp_path / "plain"
    path.write_bytes(b"x")
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    yield fd
    os.close(fd)


@pytest.fixture
def uts_fd():
    fd = os.open("/proc/self/ns/uts", os.O_RDONLY | os.O_CLOEXEC)
    yield fd
    os.close(fd)


def _free_fd() -> int:
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    return fd


def _gone_pid() -> int:
    pid = os.fork()
    if pid == 0:   # pragma: no cover - the child
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


# name -> (make the target from the fixtures, the type raised, a part of the message)
BAD = {
    "bool": (lambda f: True, "TypeError", "cannot be a bool"),
    "float": (lambda f: 1.5, "TypeError", "cannot use float as a namespace target"),
    "object": (lambda f: object(), "TypeError", "cannot use object as a namespace target"),
    "fileno() of a str": (lambda f: FilenoOfStr(), "TypeError", "fileno() must be an int"),
    "pid 0": (lambda f: 0, "ValueError", "pid must be between 1 and"),
    "pid 2**64": (lambda f: 2**64, "ValueError", "pid must be between 1 and"),
    "Process-like with a huge pid": (lambda f: HugePid(), "ValueError", "pid must be between"),
    "gone pid": (lambda f: _gone_pid(), "ProcessLookupError", "no process"),
    "reaped Process": (lambda f: f["reaped_process"], "ProcessLookupError", "has exited"),
    "empty name": (lambda f: "", "ValueError", "not a usable netns name"),
    "name with NUL": (lambda f: "a\0b", "ValueError", "cannot contain '/' or NUL"),
    "missing name": (lambda f: "nsft-targets-no-such-name", "FileNotFoundError",
                     "no network namespace of that name"),
    "missing path": (lambda f: "/proc/self/ns/nsft-none", "FileNotFoundError", "No such file"),
    "not a namespace file": (lambda f: "/proc/version", "OSError", "not a namespace file"),
    "path of another kind": (lambda f: "/proc/self/ns/uts", "KindMismatch",
                             "uts namespace, not net"),
    "handle of another kind": (lambda f: Namespace.of(os.getpid(), "uts"), "KindMismatch",
                               "uts namespace, not net"),
    "Fd of another kind": (lambda f: Fd(f["uts_fd"]), "KindMismatch", "uts namespace, not net"),
    "Fd of a plain file": (lambda f: Fd(f["plain_fd"]), "OSError", "not a namespace file"),
    "Fd not open": (lambda f: Fd(_free_fd()), "OSError", "is not open"),
    "PidFd of a plain file": (lambda f: PidFd(f["plain_fd"]), "OSError", "is not a pidfd"),
    "PidFd not open": (lambda f: PidFd(_free_fd()), "OSError", "is not open"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_target_is_the_same_error_everywhere(case, reaped_process, plain_fd, uts_fd):
    make, kind, words = BAD[case]
    target = make({"reaped_process": reaped_process, "plain_fd": plain_fd, "uts_fd": uts_fd})
    try:
        outcomes = {entry: _outcome(entry, target) for entry in ENTRY_POINTS}
    finally:
        if isinstance(target, Namespace):
            target.close()
    first = outcomes["enter"]
    assert first[0] == "raised" and first[1] == kind and words in first[2], outcomes
    differ = {entry: out for entry, out in outcomes.items() if out != first}
    assert not differ, f"enter raised {first}, but: {differ}"


# ---------------------------------------------------------------- each kind works

@pytest.fixture
def holder(sleeper):
    """A process alone in a new net namespace, also named under /run/netns."""
    p = sleeper(namespaces="net")
    name = f"nsft-hold-{os.getpid()}"
    netns.attach(name, p.pid)
    try:
        yield p, name
    finally:
        netns.remove(name)


# kind of target -> make(holder process, its netns name) -> (target, what to close)
def _fd_of(path: str, cls):
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    return cls(fd), lambda: os.close(fd)


def _pidfd_of(pid: int):
    fd = nsfast.pidfd_open(pid)
    return fd, lambda: os.close(fd)


def _handle_of(pid: int):
    ns = Namespace.of(pid, "net")
    return ns, ns.close


TARGETS = {
    "pid": lambda p, name: (p.pid, None),
    "Process": lambda p, name: (p, None),
    "path": lambda p, name: (f"/proc/{p.pid}/ns/net", None),
    "bytes path": lambda p, name: (os.fsencode(f"/proc/{p.pid}/ns/net"), None),
    "netns name": lambda p, name: (name, None),
    "Namespace": lambda p, name: _handle_of(p.pid),
    "Fd": lambda p, name: _fd_of(f"/proc/{p.pid}/ns/net", Fd),
    "PidFd": lambda p, name: _pidfd_of(p.pid),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("kind", list(TARGETS))
def test_each_kind_of_target_works_through_each_entry_point(kind, entry, holder):
    need_tool("sleep")
    p, name = holder
    want = os.stat(f"/proc/{p.pid}/ns/net").st_ino
    assert want != os.stat("/proc/self/ns/net").st_ino
    target, close = TARGETS[kind](p, name)
    try:
        outcome = _outcome(entry, target)
    finally:
        if close is not None:
            close()
    assert outcome == ("ok", want)
    assert os.stat("/proc/thread-self/ns/net").st_ino != want   # the caller stayed home
