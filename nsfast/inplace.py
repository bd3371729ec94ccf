"""unshare and setns acting on the caller in place, like os.unshare/os.setns."""
from __future__ import annotations

import errno
import os
from typing import Optional

from . import _core
from .errors import namespace_hint, os_error
from .features import features
from .flags import KindsLike, NsType
from .handles import Namespace
from .targets import Fd, PidFd, Target, differing_kinds, open_target
from .enter import thread_moved


def thread_count() -> int:
    """Threads in this process, as the kernel counts them."""
    return len(os.listdir("/proc/self/task"))


def _refuse_if_threaded(kinds: NsType, verb: str) -> None:
    bad = kinds & (NsType.USER | NsType.PID)
    if bad and thread_count() > 1:
        names = ",".join(k.proc_name for k in bad.kinds())
        raise RuntimeError(
            f"cannot {verb} {names} in place: this process has {thread_count()} threads "
            "and the kernel allows it only in a single-threaded process; "
            "use nsfast.spawn(...) or nsfast.run_in(...), which do it in a child")


def unshare(kinds: KindsLike) -> None:
    """Move the calling process (or thread, for per-thread kinds) into new namespaces.

    >>> nsfast.unshare("uts")  # doctest: +SKIP
    """
    k = NsType.parse(kinds)
    if not k:
        raise ValueError("unshare needs at least one namespace kind")
    _refuse_if_threaded(k, "unshare")
    try:
        _core.unshare(int(k))
    except OSError as e:
        names = [x.proc_name for x in k.kinds()]
        raise os_error(e.errno, None, namespace_hint(e.errno, names),
                       what=f"unshare({','.join(names)})") from None
    thread_moved(k)  # enter() must come back here, not to the old namespaces


def _setns_fd(ns: Namespace) -> None:
    try:
        _core.setns(ns.fileno(), int(ns.kind))
    except OSError as e:
        hint = None
        if e.errno == errno.EINVAL and ns.kind in (NsType.USER, NsType.MNT):
            hint = ("joining a user or mount namespace needs a single-threaded caller "
                    "with an unshared fs struct; a user namespace cannot be rejoined")
        elif e.errno == errno.EPERM:
            hint = "needs CAP_SYS_ADMIN in the target's owning user namespace"
        raise os_error(e.errno, ns.path, hint,
                       what=f"setns({ns.kind.proc_name})") from None


def setns(target: Target, kinds: KindsLike = None) -> None:
    """Join namespaces of a target in place (the calling thread for net, uts,
    ipc, cgroup; the whole process for the rest).

    target: a pid (int), a path, a Namespace, Fd(n), PidFd(n) or a Process.
    kinds: which kinds; default all that differ (pid) or the file's own kind.

    >>> nsfast.setns("/run/netns/blue", "net")  # doctest: +SKIP
    """
    k = NsType.parse(kinds) if kinds is not None else None
    if isinstance(target, Namespace) or (
            isinstance(target, (str, bytes, os.PathLike, Fd)) and not isinstance(target, PidFd)):
        ns = open_target(target, k) if k is not None else (
            Namespace(os.dup(target.fileno()), target.path) if isinstance(target, Namespace)
            else Namespace.open(f"/proc/self/fd/{int(target)}" if isinstance(target, Fd)
                                else target))
        with ns:
            if k is not None and len(k.kinds()) != 1:
                raise ValueError("a namespace file has exactly one kind")
            _refuse_if_threaded(ns.kind, "setns into")
            _setns_fd(ns)
            thread_moved(ns.kind)
        return
    if isinstance(target, PidFd):
        mask = k if k is not None else NsType.all()
        _refuse_if_threaded(mask, "setns into")
        try:
            _core.setns(int(target), int(mask))
        except OSError as e:
            raise os_error(e.errno, None, "setns with a pidfd needs kernel 5.8",
                           what="setns(pidfd)") from None
        thread_moved(mask)
        return
    pid = target.pid if hasattr(target, "pid") and not isinstance(target, int) else target
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise TypeError(f"cannot use {type(target).__name__} as a setns target")
    if pid <= 0:
        raise ValueError(f"pid must be positive, not {pid}")
    want = k if k is not None else NsType.all()
    want = differing_kinds(pid, want) if k is None else want
    if not want:
        return
    _refuse_if_threaded(want, "setns into")
    if features.pidfd_setns:
        try:
            pidfd = _core.pidfd_open(pid)
        except OSError as e:
            raise os_error(e.errno, f"/proc/{pid}") from None
        try:
            _core.join([pidfd], [int(want)], True, False)
        except _core.JoinError as e:
            raise os_error(e.errno, f"/proc/{pid}/ns",
                           what=f"setns(pidfd, {','.join(x.proc_name for x in want.kinds())})") \
                from None
        finally:
            os.close(pidfd)
        thread_moved(want)
        return
    handles = [Namespace.of(pid, x) for x in want.kinds()]
    try:
        _core.join([h.fileno() for h in handles], [int(h.kind) for h in handles])
    except _core.JoinError as e:
        raise os_error(e.errno, f"/proc/{pid}/ns/{NsType(e.kind).proc_name}",
                       what=f"setns({NsType(e.kind).proc_name})") from None
    finally:
        for h in handles:
            h.close()
    thread_moved(want)


def pidfd_open(pid: int) -> PidFd:
    """A pidfd for pid, marked as such for setns().

    >>> fd = nsfast.pidfd_open(os.getpid()); os.close(fd)
    """
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise TypeError("pid must be an int")
    if pid <= 0:
        raise ValueError(f"pid must be positive, not {pid}")
    try:
        return PidFd(_core.pidfd_open(pid))
    except OSError as e:
        raise os_error(e.errno, f"/proc/{pid}") from None
