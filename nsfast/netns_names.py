"""Names of network namespaces under /run/netns, as `ip netns` keeps them, and
opening one by name.

Lower than nsfast.netns (which adds, removes and runs in them): the target
resolver (nsfast.targets) opens a name through open_named without importing
the spawn layer that nsfast.netns needs.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import Any, Optional

from .errors import os_error
from .flags import NsType
from .handles import Namespace

RUN_DIR = "/run/netns"
NAME_MAX = 255


def check_name(name: Any) -> str:
    """name as a str, if it is a valid netns name; ValueError/TypeError before
    anything is touched.

    bytes are decoded as os.listdir decodes names (surrogateescape), so a name
    that is not UTF-8 round-trips: b"ns-\\xff" and "ns-\\udcff" are one name.

    >>> check_name("blue")
    'blue'
    >>> check_name(b"ns-\\xff")
    'ns-\\udcff'
    """
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    elif not isinstance(name, str):
        raise TypeError(f"a netns name is a str or bytes, not {type(name).__name__}")
    if name in ("", ".", ".."):
        raise ValueError(f"{name!r} is not a usable netns name")
    if "/" in name or "\0" in name:
        raise ValueError(f"a netns name cannot contain '/' or NUL: {name!r}")
    try:
        size = len(os.fsencode(name))
    except UnicodeEncodeError:
        raise ValueError(f"a netns name must be encodable to the filesystem: {name!r}") from None
    if size > NAME_MAX:
        raise ValueError(f"a netns name is at most {NAME_MAX} bytes, this one is {size}")
    return name


def path_of(name: str | bytes) -> str:
    """/run/netns/NAME after checking NAME.

    >>> path_of("blue")
    '/run/netns/blue'
    """
    return f"{RUN_DIR}/{check_name(name)}"


PRIVILEGED_HINT = ("named network namespaces live in /run/netns and need root "
                   "(CAP_SYS_ADMIN); unprivileged, use spawn(namespaces='user,net') "
                   "or a NetnsPool inside a user namespace")


def privilege_hint(err: int) -> Optional[str]:
    """The hint for an EPERM/EACCES under /run/netns."""
    return PRIVILEGED_HINT if err in (errno.EPERM, errno.EACCES) else None


def open_plain(path: str) -> int:
    """fd on path itself (never a symlink's target; a FIFO does not block, a
    terminal does not become ours)."""
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK |
                   os.O_NOCTTY)


def missing(path: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, f"{os.strerror(errno.ENOENT)} (hint: no network "
                             f"namespace of that name; see nsfast netns list)", path)


def open_named(name: str | bytes) -> Namespace:
    """A Namespace handle on the named network namespace.

    A symlink at the name is followed, as `ip netns exec` follows it (docker's
    `ln -s /proc/PID/ns/net /run/netns/NAME`), but only to a network namespace
    file: a link to anything else (a regular file, a directory, another kind
    of namespace, nothing) is an OSError naming /run/netns/NAME and the target.

    >>> with open_named(netns_name) as ns:
    ...     ns.kind
    <NsType.NET: 1073741824>
    """
    path = path_of(name)
    try:
        fd = open_plain(path)
    except FileNotFoundError:
        raise missing(path) from None
    except OSError as e:
        if e.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
            return _open_symlink(path)
        raise os_error(e.errno, path, privilege_hint(e.errno)) from None
    return _as_netns(fd, path, None)


def _open_symlink(path: str) -> Namespace:
    """open() of a name that is a symlink: its target, if that is an nsfs file
    of a network namespace (opened O_PATH first, so that no FIFO or device is
    ever opened for reading)."""
    try:
        where = f"the name is a symlink to {os.readlink(path)}"
    except OSError as e:
        raise os_error(e.errno, path) from None
    try:
        pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as e:
        raise os_error(e.errno, path, f"{where}, which does not exist"
                       if e.errno == errno.ENOENT else where) from None
    try:
        if not stat.S_ISREG(os.fstat(pfd).st_mode):
            raise os_error(errno.EINVAL, path, f"{where}, which is not a namespace file",
                           what="opening the network namespace")
        fd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(pfd)
    return _as_netns(fd, path, where)


def _as_netns(fd: int, path: str, link: Optional[str]) -> Namespace:
    """A Namespace on fd (taken over) if it is a network namespace; else fd
    closed and OSError(EINVAL) naming path.  link: the hint's account of the
    symlink that led to fd, None when the name is not one."""
    try:
        ns = Namespace(fd, path)
    except OSError:  # fd closed by Namespace
        raise os_error(errno.EINVAL, path, f"{link}, which is not a namespace file" if link else
                       "not a namespace file: an add that was killed leaves an empty one; "
                       "nsfast netns del removes it", what="opening the network namespace") \
            from None
    if ns.kind != NsType.NET:
        kind = ns.kind.proc_name
        ns.close()
        raise os_error(errno.EINVAL, path, f"{link}, a {kind} namespace, not net" if link else
                       f"a {kind} namespace, not net", what="opening the network namespace")
    return ns
