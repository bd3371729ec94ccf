"""Namespace: an O_CLOEXEC fd on an nsfs file, with its kind, inode and device."""
from __future__ import annotations

import errno
import os
from typing import Optional, TypeVar, Union

from . import _core
from .errors import PTRACE_HINT, os_error
from .flags import NsType

PathLike = Union[str, bytes, "os.PathLike[str]"]


# pids and fds are C ints (pid_t, int): a bigger Python int names none
INT_MAX = 2**31 - 1


def _check_pid(pid: object) -> int:
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise TypeError(f"pid must be an int, not {type(pid).__name__}")
    if not 0 < pid <= INT_MAX:
        raise ValueError(f"pid must be between 1 and {INT_MAX}, not {pid}")
    return pid


def check_fd(fd: object, what: str = "file descriptor") -> int:
    """fd, if it can be a file descriptor; TypeError/ValueError before any syscall."""
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise TypeError(f"{what} must be an int, not {type(fd).__name__}")
    if not 0 <= fd <= INT_MAX:
        raise ValueError(f"{what} must be between 0 and {INT_MAX}, not {fd}")
    return fd


def process_gone(pid: int) -> ProcessLookupError:
    """The error for a pid that names no process, or one that has exited (a
    zombie keeps its /proc directory but no longer has namespaces)."""
    if os.path.exists(f"/proc/{pid}"):
        return ProcessLookupError(errno.ESRCH, f"process {pid} has exited", f"/proc/{pid}")
    return ProcessLookupError(errno.ESRCH, f"no process {pid}", f"/proc/{pid}")


def not_a_namespace(path: Optional[str]) -> OSError:
    """The error for a file that is not a namespace file: EINVAL, as setns
    answers for one (NS_GET_NSTYPE, which tells, says ENOTTY)."""
    return os_error(errno.EINVAL, path, "not a namespace file")


class KindMismatch(OSError, ValueError):
    """A namespace (a file, an fd or a handle) of another kind than the one
    wanted.  An OSError(EINVAL), as setns answers for it, and a ValueError,
    since for a handle, which knows its kind, it is a bad argument."""


def kind_mismatch(path: Optional[str], actual: NsType, want: NsType) -> KindMismatch:
    """The error for a namespace of another kind than the one wanted.

    >>> str(kind_mismatch("/proc/1/ns/uts", NsType.UTS, NsType.NET))
    "[Errno 22] Invalid argument (hint: it is a uts namespace, not net): '/proc/1/ns/uts'"
    """
    names = ",".join(k.proc_name for k in want.kinds())
    hint = f"it is a {actual.proc_name} namespace, not {names}"
    msg = f"{os.strerror(errno.EINVAL)} (hint: {hint})"
    return KindMismatch(errno.EINVAL, msg) if path is None else \
        KindMismatch(errno.EINVAL, msg, path)


def wanted_kinds(kind: object) -> NsType:
    """NsType.parse(kind), ValueError when it names no kind at all (given
    explicitly, no kind is a mistake: None is how to say "default")."""
    want = NsType.parse(kind)
    if not want:
        raise ValueError(f"kind {kind!r} names no namespace kind")
    return want


_C = TypeVar("_C", bound="Closeable")


class Closeable:
    """close() on leaving a with block and on garbage collection; subclasses
    define an idempotent close()."""

    __slots__ = ()

    def close(self) -> None:  # pragma: no cover - always overridden
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Namespace(Closeable):
    """A handle on one namespace, equal to another when both name the same one.

    >>> with Namespace.of(os.getpid(), "net") as ns:
    ...     ns.kind
    <NsType.NET: 1073741824>
    """

    # fd: the descriptor, -1 once closed (fileno() raises instead); read it,
    # never set it.  A plain attribute, which the hot paths of enter() and
    # setns read without a call.
    __slots__ = ("fd", "kind", "inode", "device", "path")

    def __init__(self, fd: int, path: Optional[str] = None):
        """Wrap fd (taking ownership); the kind is asked of the kernel."""
        st = os.fstat(fd)
        try:
            kind = NsType(_core.ns_get_nstype(fd))
        except OSError:
            os.close(fd)
            raise not_a_namespace(path) from None
        self.fd = fd
        self.kind = kind
        self.inode = st.st_ino
        self.device = st.st_dev
        self.path = path

    @classmethod
    def open(cls, path: PathLike, kind=None) -> "Namespace":
        """Open a namespace file (/proc/PID/ns/X or a bind mount of one).

        >>> Namespace.open("/proc/self/ns/uts").kind
        <NsType.UTS: 67108864>
        """
        if kind is not None:
            kind = wanted_kinds(kind)   # a bad kind is refused before the file is opened
        p = os.fsdecode(os.fspath(path))
        if not p:
            raise ValueError("a namespace file path must not be empty")
        try:
            fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise os_error(e.errno, p) from None
        ns = cls(fd, p)
        return ns.require(kind) if kind is not None else ns

    @classmethod
    def of(cls, pid: int, kind) -> "Namespace":
        """The namespace of the given kind that process pid is in.

        >>> Namespace.of(os.getpid(), "pid").kind.proc_name
        'pid'
        """
        _check_pid(pid)
        k = NsType.parse(kind)
        if len(k.kinds()) != 1:
            raise ValueError("Namespace.of takes exactly one kind")
        path = f"/proc/{pid}/ns/{k.proc_name}"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if os.path.exists(f"/proc/self/ns/{k.proc_name}") or \
                    not os.path.exists(f"/proc/{pid}"):
                raise process_gone(pid) from None
            raise os_error(errno.ENOENT, path, f"this kernel has no {k.proc_name} namespaces") \
                from None
        except PermissionError as e:
            raise os_error(e.errno, path, PTRACE_HINT) from None
        except OSError as e:
            raise os_error(e.errno, path) from None
        return cls(fd, path)

    def require(self, kind) -> "Namespace":
        """self, if it is of the given kind(s); else closed, and KindMismatch
        (an OSError(EINVAL) and a ValueError) naming the path and both kinds.

        >>> Namespace.open("/proc/self/ns/uts").require("net")
        Traceback (most recent call last):
        nsfast.handles.KindMismatch: [Errno 22] Invalid argument (hint: it is a uts namespace, not net): ...
        """
        try:
            want = wanted_kinds(kind)
        except (TypeError, ValueError):
            self.close()
            raise
        if self.kind != want:
            self.close()
            raise kind_mismatch(self.path, self.kind, want)
        return self

    def fileno(self) -> int:
        """The fd; ValueError once closed."""
        if self.fd < 0:
            raise ValueError("namespace handle is closed")
        return self.fd

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def close(self) -> None:
        """Close the fd; a second call does nothing."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def _related(self, ioctl, what: str) -> "Namespace":
        try:
            fd = ioctl(self.fileno())
        except OSError as e:
            hint = {
                errno.EPERM: f"the {what} is outside the caller's user namespace",
                errno.EINVAL: f"a {self.kind.proc_name} namespace has no {what}",
            }.get(e.errno)
            raise os_error(e.errno, self.path, hint, what=f"NS_GET_{what.upper()}") from None
        return Namespace(fd)

    def parent(self) -> "Namespace":
        """The parent of a user or pid namespace."""
        return self._related(_core.ns_get_parent, "parent")

    def owner(self) -> "Namespace":
        """The user namespace that owns this namespace."""
        return self._related(_core.ns_get_userns, "owner")

    def owner_uid(self) -> int:
        """The uid that created this user namespace (only for user namespaces)."""
        try:
            return _core.ns_owner_uid(self.fileno())
        except OSError as e:
            raise os_error(e.errno, self.path, "only user namespaces have an owner uid"
                           if e.errno == errno.EINVAL else None) from None

    @property
    def id(self) -> tuple[int, int]:
        return (self.device, self.inode)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Namespace):
            return NotImplemented
        return self.id == other.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        state = "closed" if self.fd < 0 else f"fd={self.fd}"
        return f"<Namespace {self.kind.proc_name}:[{self.inode}] {state}>"
