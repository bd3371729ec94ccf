"""unshare and setns acting on the caller in place, like os.unshare/os.setns."""
from __future__ import annotations

import errno
import os
import time
from typing import Optional

from . import _core
from .errors import namespace_hint, os_error
from .flags import KindsLike, NsType
from .handles import Namespace, _check_pid, kind_mismatch, not_a_namespace
from .targets import (Fd, PidFd, Target, fd_error, fd_not_open, one_kind, open_joins,
                      open_namespace)
from .enter import thread_moved_here


def thread_count() -> int:
    """Threads in this process, as the kernel counts them.

    One stat: the kernel sets the link count of /proc/PID/task to 2 plus the
    number of threads, which is cheaper than listing the directory."""
    n = os.stat("/proc/self/task").st_nlink - 2
    return n if n >= 1 else len(os.listdir("/proc/self/task"))


# joining or creating these applies to the whole process (or its children), which
# the kernel allows only in a single-threaded process; plain ints so that the hot
# path tests them without IntFlag arithmetic
_WHOLE_PROCESS_MASK = int(NsType.USER | NsType.PID)
# a mount namespace too needs the fs struct unshared, which threads share
_SINGLE_THREAD_MASK = _WHOLE_PROCESS_MASK | int(NsType.MNT)


def _refuse_if_threaded(kinds: int, verb: str) -> None:
    if not kinds & _SINGLE_THREAD_MASK:
        return
    threads = thread_count()
    if threads > 1:
        from .watch import quiesce   # an idle wall-time watcher is ours to stop
        if quiesce():
            # the kernel lets a joined thread go a moment after its join
            deadline = time.monotonic() + 1.0
            while (threads := thread_count()) > 1 and time.monotonic() < deadline:
                time.sleep(0.001)
    if threads > 1 and kinds & _WHOLE_PROCESS_MASK:
        names = ",".join(k.proc_name for k in NsType(kinds & _WHOLE_PROCESS_MASK).kinds())
        raise RuntimeError(
            f"cannot {verb} {names} in place: this process has {threads} threads "
            "and the kernel allows it only in a single-threaded process; "
            "use nsfast.spawn(...), which does it in a child")


def unshare(kinds: KindsLike) -> None:
    """Move the calling process (or thread, for per-thread kinds) into new namespaces.

    uts belongs to the thread: here a worker thread moves, the caller stays.

    >>> from concurrent.futures import ThreadPoolExecutor
    >>> def own_hostname():
    ...     nsfast.unshare("uts")
    ...     socket.sethostname("box2")
    ...     return socket.gethostname()
    >>> with ThreadPoolExecutor(1) as worker:
    ...     worker.submit(own_hostname).result()
    'box2'
    >>> socket.gethostname() == os.uname().nodename
    True
    """
    k = NsType.parse(kinds)
    if not k:
        raise ValueError("unshare needs at least one namespace kind")
    _refuse_if_threaded(k._value_, "unshare")
    try:
        _core.unshare(k._value_)
    except OSError as e:
        names = [x.proc_name for x in k.kinds()]
        raise os_error(e.errno, None, namespace_hint(e.errno, names),
                       what=f"unshare({','.join(names)})") from None
    thread_moved_here()  # enter() must come back here, not to the old namespaces


def _setns_error(e: OSError, fd: int, kind: NsType, path: Optional[str]) -> OSError:
    """The OSError for a failed setns(fd, kind), with the cause where it is known."""
    error = fd_error(e.errno, fd, kind, path)   # the fd's fault: as the resolver words it
    if error is not None:
        return error
    hint = None
    if e.errno == errno.EINVAL:
        if kind in (NsType.USER, NsType.MNT):
            hint = ("joining a user or mount namespace needs a single-threaded caller "
                    "with an unshared fs struct; a user namespace cannot be rejoined")
    elif e.errno == errno.EPERM:
        hint = "needs CAP_SYS_ADMIN in the target's owning user namespace"
    return os_error(e.errno, path if path is not None else f"/proc/self/fd/{fd}", hint,
                    what=f"setns({kind.proc_name})")


# a single kind by its name or flag: one dict lookup on the hot paths
_ONE_KIND: dict = {k: k for k in NsType.all().kinds()}
_ONE_KIND.update({k.proc_name: k for k in NsType.all().kinds()})


def _single_kind(kinds: KindsLike) -> NsType:
    if type(kinds) is str or type(kinds) is NsType:
        k = _ONE_KIND.get(kinds)
        if k is not None:
            return k
    return one_kind(kinds)


def setns(target: Target, kinds: KindsLike = None) -> None:
    """Join namespaces of a target in place (the calling thread for net, uts,
    ipc, cgroup; the whole process for the rest).

    target: a pid (int), a path, a Namespace, Fd(n), PidFd(n) or a Process.
    kinds: which kinds; default all that differ (pid) or the file's own kind.

    net belongs to the thread: here a worker thread moves, the caller stays.

    >>> from concurrent.futures import ThreadPoolExecutor
    >>> def joined():
    ...     nsfast.setns(nsfast.netns.path_of(netns_name), "net")
    ...     return nsfast.namespaces()["net"]
    >>> with ThreadPoolExecutor(1) as worker:
    ...     worker.submit(joined).result() == os.stat(nsfast.netns.path_of(netns_name)).st_ino
    True
    """
    # The common case in few steps: a per-thread kind joined through a handle,
    # or through an Fd with its kind named (the kernel checks that the fd is of
    # that kind: EINVAL otherwise).  _setns does every other case.
    cls = type(target)
    if cls is Namespace and kinds is None:
        kind = target.kind
        fd = target.fd
    elif cls is Fd and type(kinds) is str:
        kind = _ONE_KIND.get(kinds)
        fd = target
        if kind is None:
            return _setns(target, kinds)
    elif cls is PidFd and kinds is not None:
        return _setns_pidfd(target, kinds)
    else:
        return _setns(target, kinds)
    try:
        if _core.thread_setns(fd, kind):   # a per-thread kind: done
            return
    except OSError as e:
        if cls is Namespace:
            target.fileno()  # ValueError for a closed handle
            raise _setns_error(e, fd, kind, target.path) from None
        raise _setns_error(e, fd, kind, None) from None
    _setns(target, kinds)


def _setns(target: Target, kinds: KindsLike = None) -> None:
    """setns for every case but its common one."""
    # The hot paths come first, by exact type, with the syscall inline: a handle
    # knows its kind, so nothing is opened or asked; for an Fd with its kind
    # given, the kernel checks that the fd is of that kind (EINVAL otherwise).
    cls = type(target)
    if cls is Namespace:
        kind = target.kind
        if kinds is not None and _single_kind(kinds) is not kind:
            raise kind_mismatch(target.path, kind, _single_kind(kinds))
        fd = target.fileno()
        value = kind._value_  # plain ints: IntFlag's hashing and & are slow
        try:
            if value & _WHOLE_PROCESS_MASK:
                _refuse_if_threaded(value, "setns into")
                _core.setns(fd, value)
            else:
                # a per-thread setns is short and never blocks: keep the GIL
                _core.setns_held(fd, value)
        except OSError as e:
            raise _setns_error(e, fd, kind, target.path) from None
    elif cls is Fd:
        kind = _single_kind(kinds) if kinds is not None else _kind_of_fd(target)
        if kind._value_ & _WHOLE_PROCESS_MASK:
            _refuse_if_threaded(kind._value_, "setns into")
        try:
            _core.setns(target, kind._value_)
        except OSError as e:
            raise _setns_error(e, int(target), kind, None) from None
    elif isinstance(target, Namespace):  # a subclass: through a plain handle on it
        with Namespace(os.dup(target.fileno()), target.path) as ns:
            _setns(ns, kinds)
    elif isinstance(target, Fd):  # a subclass: as its base
        _setns(Fd(target), kinds)
    elif isinstance(target, (str, bytes, os.PathLike)):
        with open_namespace(target, kinds) as ns:
            _setns(ns)
    else:  # a process, or an open file: what the resolver makes of it
        _setns_joins(target, kinds)
    thread_moved_here()  # enter() must come back here, not to the old namespaces


def _setns_pidfd(target: PidFd, kinds: KindsLike) -> None:
    """setns(pidfd, kinds) with the kinds named and none of them user: one
    syscall, with nothing to read first (which kinds differ, or the pid, matter
    only otherwise; a user namespace we are already in must be left out,
    which the resolver does)."""
    mask = NsType.parse(kinds)._value_
    if not mask or mask & _USER_MASK:
        return _setns(target, kinds)
    if mask & _WHOLE_PROCESS_MASK:
        _refuse_if_threaded(mask, "setns into")
    try:
        _core.setns(int(target), mask)
    except OSError:
        return _setns_joins(target, kinds)   # again, to word the error
    thread_moved_here()


_USER_MASK = NsType.USER._value_


def _kind_of_fd(fd: int) -> NsType:
    try:
        return NsType(_core.ns_get_nstype(fd))
    except OSError as e:
        raise (fd_not_open(fd) if e.errno == errno.EBADF else
               not_a_namespace(f"/proc/self/fd/{fd}")) from None


def _setns_joins(target: Target, kinds: KindsLike) -> None:
    """setns into what the resolver opens for target: a process's namespaces
    (by default every kind that differs, as nsenter -a), or one file's."""
    if kinds is not None:   # refused as asked, before the resolver drops a kind we share
        _refuse_if_threaded(NsType.parse(kinds)._value_, "setns into")
    with open_joins(target, kinds) as joins:
        if not joins.fds:
            return
        _refuse_if_threaded(int(joins.joined), "setns into")
        try:
            _core.join(joins.fds, joins.kinds, joins.pidfd, False)
        except _core.JoinError as e:
            kind = NsType(e.kind or int(joins.joined))
            names = ",".join(x.proc_name for x in kind.kinds())
            where = f"/proc/{joins.pid}/ns" if joins.pid else None
            hint = ("setns with a pidfd needs kernel 5.8" if joins.pidfd and
                    e.errno == errno.EINVAL else None)
            raise os_error(e.errno, where, hint, what=f"setns({names})") from None


def pidfd_open(pid: int) -> PidFd:
    """A pidfd for pid, marked as such for setns().

    >>> fd = nsfast.pidfd_open(os.getpid()); os.close(fd)
    """
    try:
        return PidFd(_core.pidfd_open(_check_pid(pid)))
    except OSError as e:
        raise os_error(e.errno, f"/proc/{pid}") from None
