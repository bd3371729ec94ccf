"""The one target resolver: what names a namespace, and opening it.

Every entry point that takes a namespace target (enter, setns, run_in,
enter_and_exec, spawn's join= and netns=, nsfast.netns.attach and the link
functions of nsfast.netns) resolves it here, so the same target means the same
thing, and the same mistake raises the same error, everywhere.  The rules:

- an int is a pid, always (as for nsenter -t); a bool is refused (TypeError);
- Fd(n) is a file descriptor of a namespace file, PidFd(n) a pidfd;
- a Process, or anything else with an int .pid, is that process; its own
  pidfd is used where it has one, and one that has been reaped is refused
  (its pid may name another process by now);
- a str or bytes without '/' is the name of a network namespace under
  /run/netns, always, also where another kind is wanted (then it is a
  ValueError); a file in the current directory is written './name';
- a str or bytes with a '/', or any os.PathLike, is the path of a namespace
  file (/proc/PID/ns/KIND or a bind mount of one);
- a Namespace, or anything else with fileno(), is an open namespace file.

A file, a name or a handle names one namespace, of its own kind: a kind asked
for must be that kind (else OSError(EINVAL) naming both), and a pid names one
of each kind, so a single namespace of a process needs its kind.
"""
from __future__ import annotations

import errno
import os
from typing import Any, Mapping, Optional, Union

from . import _core
from .errors import os_error
from .features import features
from .flags import NsType
from .handles import (Closeable, Namespace, _check_pid, check_fd, kind_mismatch,
                      not_a_namespace, process_gone, wanted_kinds)
from .netns_names import open_named


class Fd(int):
    """Marks an int as a file descriptor of an nsfs file.

    >>> fd = os.open(f"/proc/{pid}/ns/uts", os.O_RDONLY)
    >>> nsfast.run_in(nsfast.Fd(fd), socket.gethostname)
    'box'
    >>> os.close(fd)
    """

    __slots__ = ()

    def __new__(cls, fd: int):
        # checked here: the compiled setns takes an Fd as a C int
        return int.__new__(cls, check_fd(fd, cls.__name__))


class PidFd(int):
    """Marks an int as a pidfd (from os.pidfd_open or nsfast.pidfd_open)."""

    __slots__ = ()
    __new__ = Fd.__new__


Target = Union[int, str, bytes, "os.PathLike[str]", Namespace, Fd, PidFd, object]

_USER = int(NsType.USER)


# ---------------------------------------------------------------- errors

def cannot_use(target: Any) -> TypeError:
    """The error for a target of a type that names no namespace."""
    if isinstance(target, bool):
        return TypeError("a namespace target cannot be a bool")
    return TypeError(f"cannot use {type(target).__name__} as a namespace target (give a pid, "
                     "a Process, a path, a netns name, a Namespace, Fd(n) or PidFd(n))")


def fd_not_open(fd: int) -> OSError:
    """The error for an Fd or PidFd that is not an open file descriptor."""
    return os_error(errno.EBADF, f"/proc/self/fd/{fd}", f"fd {fd} is not open")


def fd_error(err: int, fd: int, kind: NsType, path: Optional[str]) -> Optional[OSError]:
    """The resolver's error for a setns(fd, kind) that the kernel refused
    because of the fd itself (not open, not a namespace file, another kind),
    worded as when the fd is resolved first; None for any other cause."""
    if err == errno.EBADF:
        return fd_not_open(fd)
    if err != errno.EINVAL:
        return None
    path = path if path is not None else f"/proc/self/fd/{fd}"
    try:
        actual = NsType(_core.ns_get_nstype(fd))
    except OSError:
        return not_a_namespace(path)
    return kind_mismatch(path, actual, kind) if actual != kind else None


def one_kind(kinds: Any) -> Optional[NsType]:
    """kinds as one NsType (None stays None); ValueError when it names several."""
    if kinds is None:
        return None
    kind = wanted_kinds(kinds)
    if len(kind.kinds()) != 1:
        names = ",".join(k.proc_name for k in kind.kinds())
        raise ValueError(f"a namespace file is of one kind: {names} names "
                         f"{len(kind.kinds())}")
    return kind


# ---------------------------------------------------------------- processes

def is_netns_name(target: object) -> bool:
    """Whether target is a name under /run/netns: a str or bytes without '/'.

    >>> is_netns_name("blue"), is_netns_name(b"ns-\\xff"), is_netns_name("/run/netns/blue")
    (True, True, False)
    """
    if isinstance(target, str):
        return "/" not in target
    return isinstance(target, bytes) and b"/" not in target


def _pid_of_pidfd(fd: int) -> int:
    """The pid (in our pid namespace) of the process a pidfd refers to."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
            info = f.read()
    except FileNotFoundError:
        raise fd_not_open(fd) from None
    for line in info.splitlines():
        if line.startswith(b"Pid:"):
            pid = int(line.split()[1])
            if pid > 0:
                return pid
            raise ProcessLookupError(errno.ESRCH, f"the process of pidfd {fd} has exited"
                                     if pid < 0 else f"the process of pidfd {fd} is outside "
                                     "this pid namespace", f"/proc/self/fd/{fd}")
    raise os_error(errno.EINVAL, f"/proc/self/fd/{fd}", f"fd {fd} is not a pidfd")


def pid_of(target: Any) -> Optional[int]:
    """The pid a process target (a pid, a Process, a PidFd) names, checked;
    None for a target that names a namespace file.  TypeError/ValueError for
    what is no target at all.

    >>> pid_of(1), pid_of("/proc/1/ns/net"), pid_of(Fd(0))
    (1, None, None)
    """
    if type(target) is int:   # the common case first, by exact type
        return _check_pid(target)
    if isinstance(target, bool):
        raise cannot_use(target)
    if isinstance(target, PidFd):
        return _pid_of_pidfd(int(target))
    if isinstance(target, Fd):
        return None
    if isinstance(target, int):
        return _check_pid(target)
    if isinstance(target, (Namespace, str, bytes, os.PathLike)):
        return None
    pid = getattr(target, "pid", None)
    if pid is not None:
        if isinstance(pid, bool) or not isinstance(pid, int):
            raise cannot_use(target)
        _check_pid(pid)
        if getattr(target, "returncode", None) is not None:
            # reaped: the pid may be another process's by now
            raise ProcessLookupError(errno.ESRCH, f"process {pid} has exited",
                                     f"/proc/{pid}")
        return pid
    if hasattr(target, "fileno"):
        return None
    raise cannot_use(target)


def pidfd_for(target: Any, pid: int) -> tuple[int, bool]:
    """(pidfd, whether the caller must close it) for a process target whose
    pid_of is pid: a PidFd or a Process's own pidfd as they are, else a new one."""
    if type(target) is not int:
        if isinstance(target, PidFd):
            return int(target), False
        own = getattr(target, "pidfd", -1)
        if isinstance(own, int) and own >= 0 and not isinstance(target, int):
            return own, False
    try:
        return _core.pidfd_open(pid), True
    except OSError as e:
        if e.errno == errno.ESRCH:
            raise process_gone(pid) from None
        raise os_error(e.errno, f"/proc/{pid}") from None


def current_inode(kind: NsType) -> tuple[int, int]:
    """(device, inode) of the calling thread's namespace of one kind."""
    st = os.stat(f"/proc/thread-self/ns/{kind.proc_name}")
    return (st.st_dev, st.st_ino)


def differing_kinds(pid: int, kinds: NsType) -> NsType:
    """The kinds among `kinds` in which pid's namespace is not the caller's."""
    result = NsType(0)
    for k in kinds.kinds():
        path = f"/proc/{pid}/ns/{k.proc_name}"
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if not os.path.exists(f"/proc/self/ns/{k.proc_name}"):
                continue  # the kernel lacks this kind
            raise process_gone(pid) from None
        if (st.st_dev, st.st_ino) != current_inode(k):
            result |= k
    return result


def own_user_ns_is(pid: int) -> bool:
    """Whether pid is in the caller's user namespace (joining it again is EINVAL)."""
    return not differing_kinds(pid, NsType.USER)


# ---------------------------------------------------------------- one namespace

def open_namespace(target: Target, kind: Any = None) -> Namespace:
    """A new Namespace handle on the one namespace target names; the caller
    closes it.  kind None takes a file of any kind (a process then needs one).

    >>> with open_namespace(os.getpid(), "net") as ns:
    ...     ns.kind.proc_name
    'net'
    """
    want = one_kind(kind)
    if isinstance(target, Namespace):
        if want is not None and target.kind != want:
            raise kind_mismatch(target.path, target.kind, want)
        ns = Namespace(os.dup(target.fileno()), target.path)
    elif is_netns_name(target):
        if want is not None and want != NsType.NET:
            raise ValueError(f"{target!r} names a network namespace under /run/netns, not a "
                             f"{want.proc_name} namespace (a file here is "
                             f"'./{os.fsdecode(target)}')")
        ns = open_named(target)   # type: ignore[arg-type]
    elif isinstance(target, (str, bytes, os.PathLike)):
        ns = Namespace.open(target)
    else:
        pid = pid_of(target)
        if pid is not None:
            if want is None:
                raise ValueError("a process has a namespace of each kind: say which kind")
            return _of_process(target, pid, want)
        fd = Fd(target) if isinstance(target, Fd) else \
            check_fd(target.fileno(), f"{type(target).__name__}.fileno()")
        try:
            dup = os.dup(fd)
        except OSError as e:
            raise (fd_not_open(fd) if e.errno == errno.EBADF else os_error(e.errno)) from None
        ns = Namespace(dup, f"/proc/self/fd/{fd}")
    return ns.require(want) if want is not None else ns


def _of_process(target: Any, pid: int, kind: NsType) -> Namespace:
    """The namespace of one kind of a process, opened while its pidfd shows
    that pid still names that process (no pid reuse in between)."""
    if not features.pidfd_open:
        return Namespace.of(pid, kind)
    pidfd, owned = pidfd_for(target, pid)
    try:
        ns = Namespace.of(pid, kind)
        try:
            _core.pidfd_send_signal(pidfd, 0)
        except OSError:
            ns.close()
            raise process_gone(pid) from None
        return ns
    finally:
        if owned:
            os.close(pidfd)


# ---------------------------------------------------------------- namespaces to join

class Joins(Closeable):
    """What a join needs: fds and the kinds each joins (for _core.join), whether
    fds is one pidfd that joins every kind at once, and all the kinds joined.
    Closing it closes the fds."""

    __slots__ = ("fds", "kinds", "pidfd", "joined", "pid", "_owned")

    def __init__(self) -> None:
        self.fds: list = []
        self.kinds: list = []
        self.pidfd = False
        self.joined = NsType(0)
        self.pid: Optional[int] = None   # the process, when the target is one
        self._owned: list = []

    def add(self, fd: int, kind: NsType, owned: Any) -> None:
        if kind & self.joined:
            raise ValueError(f"the {kind.proc_name} namespace is named twice")
        self.fds.append(fd)
        self.kinds.append(int(kind))
        self.joined |= kind
        if owned is not None:
            self._owned.append(owned)

    def close(self) -> None:
        owned, self._owned = self._owned, []
        for thing in owned:
            if isinstance(thing, int):
                os.close(thing)
            else:
                thing.close()


def open_joins(target: Any, kinds: Any = None, *, use_pidfd: bool = True) -> Joins:
    """The fds to join for target: one target (its kinds: for a process,
    kinds, or by default every kind in which it differs from the caller, as
    nsenter -a; a user namespace that is already ours is left out), a
    mapping kind -> target, or a list of targets that each name one
    namespace.  A process is joined through one pidfd where the kernel allows
    it (5.8+) and use_pidfd.  The caller closes the result.

    >>> with open_joins(os.getpid(), "uts") as j:
    ...     j.joined == NsType.UTS
    True
    """
    joins = Joins()
    try:
        if isinstance(target, (Mapping, list, tuple, set, frozenset)) and not target:
            raise ValueError(f"{target!r} names no namespace to join")
        if isinstance(target, Mapping):
            if kinds is not None:
                raise ValueError("give kinds either as the mapping's keys or as kinds=, "
                                 "not both")
            for key, value in target.items():
                _add_one(joins, value, one_kind(key))
        elif isinstance(target, (list, tuple, set, frozenset)):
            if kinds is not None:
                raise ValueError("a list of namespaces joins each one's own kind: "
                                 "kinds= does not apply")
            for value in target:
                _add_one(joins, value, None)
        else:
            pid = pid_of(target)
            if pid is None:
                _add_one(joins, target, one_kind(kinds))
            else:
                _add_process(joins, target, pid, kinds, use_pidfd)
    except BaseException:
        joins.close()
        raise
    return joins


def _add_one(joins: Joins, target: Any, kind: Optional[NsType]) -> None:
    ns = open_namespace(target, kind)
    joins.add(ns.fileno(), ns.kind, ns)


def _add_process(joins: Joins, target: Any, pid: int, kinds: Any, use_pidfd: bool) -> None:
    want = differing_kinds(pid, NsType.all()) if kinds is None else wanted_kinds(kinds)
    if want & NsType.USER and own_user_ns_is(pid):
        want &= ~NsType.USER   # already in it; joining it again is EINVAL
    joins.pid = pid
    if not want:
        return
    if use_pidfd and features.pidfd_setns:
        pidfd, owned = pidfd_for(target, pid)
        joins.add(pidfd, want, pidfd if owned else None)
        joins.pidfd = True
        return
    for k in want.kinds():
        _add_one(joins, target, k)
