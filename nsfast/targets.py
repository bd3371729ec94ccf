"""What a namespace target can be, and turning one into fds to setns with.

An int is a pid (as for nsenter -t).  A file descriptor is wrapped in Fd, a
pidfd in PidFd; a Namespace, a path, a Process or anything with fileno() works
as it is.  Where a network namespace is wanted, a str or bytes without '/' is
the name of one under /run/netns (open_net_target).
"""
from __future__ import annotations

import os
from typing import Optional, Union

from .flags import NsType
from .handles import Namespace, _check_pid, check_fd


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


Target = Union[int, str, "os.PathLike[str]", Namespace, Fd, PidFd, object]


def current_inode(kind: NsType) -> tuple[int, int]:
    """(device, inode) of the calling thread's namespace of one kind."""
    st = os.stat(f"/proc/thread-self/ns/{kind.proc_name}")
    return (st.st_dev, st.st_ino)


def differing_kinds(pid: int, kinds: NsType) -> NsType:
    """The kinds among `kinds` in which pid's namespace is not the caller's."""
    result = NsType(0)
    for k in kinds.kinds():
        try:
            st = os.stat(f"/proc/{pid}/ns/{k.proc_name}")
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}"):
                raise ProcessLookupError(3, f"no process {pid}", f"/proc/{pid}") from None
            continue  # the kernel lacks this kind
        if (st.st_dev, st.st_ino) != current_inode(k):
            result |= k
    return result


def open_target(target: Target, kind: Optional[NsType]) -> Namespace:
    """A Namespace of one kind for a target that names a single namespace or a pid.

    kind None takes a namespace file of any kind (a pid then needs a kind).
    A file or handle of another kind is OSError(EINVAL) naming both kinds.
    The caller closes the result.

    >>> open_target(os.getpid(), NsType.NET).kind.proc_name
    'net'
    """
    if isinstance(target, Namespace):
        ns = Namespace(os.dup(target.fileno()), target.path)
        return ns.require(kind) if kind is not None else ns
    if isinstance(target, PidFd):
        raise TypeError("a pidfd joins through setns(pidfd, mask), not per kind")
    if isinstance(target, Fd):
        return Namespace.open(f"/proc/self/fd/{int(target)}", kind)
    if isinstance(target, bool):
        raise TypeError("a namespace target cannot be a bool")
    if isinstance(target, (str, bytes, os.PathLike)):
        return Namespace.open(target, kind)
    if hasattr(target, "fileno") and not hasattr(target, "pid"):
        fd = check_fd(target.fileno(), f"{type(target).__name__}.fileno()")
        return Namespace.open(f"/proc/self/fd/{fd}", kind)
    pid = target if isinstance(target, int) else getattr(target, "pid", None)
    if isinstance(pid, int):
        if kind is None:
            raise ValueError("a pid names several namespaces: say which kind")
        return Namespace.of(_check_pid(pid), kind)
    raise TypeError(f"cannot use {type(target).__name__} as a namespace target "
                    "(give a pid, a path, a Namespace, Fd(n) or PidFd(n))")


def is_netns_name(target: object) -> bool:
    """Whether target is a name under /run/netns: a str or bytes without '/'.

    >>> is_netns_name("blue"), is_netns_name(b"ns-\\xff"), is_netns_name("/run/netns/blue")
    (True, True, False)
    """
    if isinstance(target, str):
        return "/" not in target
    return isinstance(target, bytes) and b"/" not in target


def open_net_target(target: Target, kind: Optional[NsType]) -> Namespace:
    """open_target, except that a netns name (is_netns_name) opens /run/netns/NAME
    through nsfast.netns.open, symlink rules and all.  The caller closes it.

    >>> with open_net_target(netns_name, NsType.NET) as ns:
    ...     ns.kind.proc_name
    'net'
    """
    if is_netns_name(target):
        from . import netns  # imported late: nsfast.netns imports the spawn layer
        ns = netns.open(target)  # type: ignore[arg-type]
        return ns.require(kind) if kind else ns
    return open_target(target, kind)
