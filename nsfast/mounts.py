"""Mounts: in-place operations on the caller's mount namespace (propagation,
bind, tmpfs, proc, pivot_root), the /proc/PID/mountinfo parser (from
nsfast.mounttable), and the same
operations as spawn steps (Bind, Tmpfs, Proc, ...) run by the C child.

The in-place functions change the mount namespace of the calling process:
call them in a process that has its own (a spawned child, or after
``unshare -m``), not in one that shares the host's.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import Optional, Union

from . import _core
from .errors import os_error
from .kernel import (AT_RECURSIVE, MNT_DETACH, MOUNT_ATTR_RDONLY, MS_BIND, MS_NODEV,  # noqa: F401
                     MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT,
                     MS_SHARED, MS_SLAVE, MS_UNBINDABLE)

# struct nsf_mount_step kinds (csrc/spawn.h)
_BIND, _TMPFS, _PROC, _MKDIR, _PIVOT, _SYSFS = 1, 2, 3, 4, 5, 6
_FILE, _SYMLINK, _FS, _NODE, _HOLD = 7, 8, 9, 10, 11
PROPAGATION_FLAGS = {
    "private": MS_PRIVATE,
    "slave": MS_SLAVE,
    "shared": MS_SHARED,
    "unbindable": MS_UNBINDABLE,
}


PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
_METHODS = {"auto": 0, "mount_setattr": 1, "mount": 2}


# the parser lives in its own module, which a mere reader (nsfast ls) imports alone
from .mounttable import (_FS_ENCODING, _FS_ERRORS, MountEntry, mountinfo,  # noqa: E402,F401
                         parse_mountinfo)


def absolute(path, what: str) -> bytes:
    """The path as bytes, ValueError unless absolute and free of NUL."""
    # str and bytes first: this is on the propagation hot path, where
    # os.fsencode alone costs more than the Cython call
    cls = type(path)
    if cls is str:
        p = path.encode(_FS_ENCODING, _FS_ERRORS)
    elif cls is bytes:
        p = path
    else:
        p = os.fsencode(path)
    if p[:1] != b"/":
        raise ValueError(f"{what} must be an absolute path, not {os.fsdecode(p)!r}")
    if b"\0" in p:
        raise ValueError(f"{what} contains a NUL byte")
    return p


@dataclass(frozen=True)
class Bind:
    """Bind-mount src on dst in the child (read-only with readonly=True).

    >>> p = nsfast.spawn(["touch", "/mnt/x"], namespaces="mnt",
    ...                  mounts=[Bind("/etc", "/mnt", readonly=True)], stderr=nsfast.DEVNULL)
    >>> p.wait()
    1
    """
    src: str
    dst: str
    readonly: bool = False
    recursive: bool = True

    def as_steps(self) -> list[tuple]:
        return [(_BIND, self.readonly, MS_REC if self.recursive else 0,
                 absolute(self.src, "bind source"), absolute(self.dst, "bind target"), None)]


@dataclass(frozen=True)
class Tmpfs:
    """A fresh tmpfs on dst in the child."""
    dst: str
    size: Optional[int] = None
    mode: Optional[int] = None
    readonly: bool = False

    def as_steps(self) -> list[tuple]:
        return [(_TMPFS, self.readonly, MS_NOSUID | MS_NODEV, b"tmpfs",
                 absolute(self.dst, "tmpfs target"), _tmpfs_options(self.size, self.mode))]


def _tmpfs_options(size: Optional[int], mode: Optional[int]) -> Optional[bytes]:
    """The tmpfs data string for size (bytes) and mode, ValueError when bad."""
    opts = []
    if size is not None:
        # the kernel reads it as an unsigned long long, silently wrapping past it
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size < 2**64:
            raise ValueError("tmpfs size must be a positive int of bytes, below 2**64")
        opts.append(f"size={size}")
    if mode is not None:
        if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777:
            raise ValueError("tmpfs mode must be an int between 0 and 0o7777")
        opts.append(f"mode={mode:o}")
    return ",".join(opts).encode() if opts else None


@dataclass(frozen=True)
class Proc:
    """A fresh proc for the child's pid namespace on dst."""
    dst: str = "/proc"

    def as_steps(self) -> list[tuple]:
        return [(_PROC, False, 0, b"proc", absolute(self.dst, "proc target"), None)]


@dataclass(frozen=True)
class Sysfs:
    """A fresh sysfs on dst (shows the child's network namespace's devices)."""
    dst: str = "/sys"

    def as_steps(self) -> list[tuple]:
        return [(_SYSFS, False, MS_NOSUID | MS_NODEV, b"sysfs",
                 absolute(self.dst, "sysfs target"), None)]


@dataclass(frozen=True)
class Mkdir:
    """Make a directory in the child (no error if it exists)."""
    dst: str

    def as_steps(self) -> list[tuple]:
        return [(_MKDIR, False, 0, None, absolute(self.dst, "mkdir path"), None)]


def step_path(step: tuple, err: int) -> bytes:
    """The path a failed spawn mount step names: a bind's source when that is
    what is missing (as seen from the parent), else its target."""
    kind, _, _, src, dst, _ = step
    if kind == _BIND and err == errno.ENOENT and not os.path.lexists(src):
        return src
    return dst or src


def pivot_step(new_root) -> tuple:
    """The spawn step that makes new_root the child's / and detaches the old root."""
    return (_PIVOT, False, 0, absolute(new_root, "root"), None, None)


# ---------------------------------------------------------------- in place

def _mode_flag(mode: str) -> int:
    try:
        return PROPAGATION_FLAGS[mode]
    except (KeyError, TypeError):
        raise ValueError(f"propagation mode must be one of {', '.join(PROPAGATION_FLAGS)}, "
                         f"not {mode!r}") from None


def _is_mount_point(path: bytes) -> bool:
    real = os.path.realpath(os.fsdecode(path))
    return any(e.mount_point == real for e in mountinfo())


def _missing(*paths: bytes) -> Optional[bytes]:
    """The first of paths that does not exist, if any."""
    for p in paths:
        if not os.path.lexists(p):
            return p
    return None


def _error(e: OSError, path: bytes, what: str, hint: Optional[str] = None) -> OSError:
    return os_error(e.errno, os.fsdecode(path), hint, what=what)


def set_propagation(path: PathArg, mode: str, recursive: bool = True, *,
                    method: str = "auto") -> None:
    """Make the mount at path (and, recursively, every mount under it) private,
    shared, slave or unbindable, in the caller's mount namespace.

    Uses mount_setattr(AT_RECURSIVE) (Linux 5.12+), one call for the whole
    tree, and mount(2) with MS_REC where it is missing.  method="mount_setattr"
    or "mount" forces one of the two (for tests and benchmarks).

    In the caller's mount namespace: here a sleeper's (pid), joined by run_in.

    >>> nsfast.run_in(pid, set_propagation, "/", "shared", kinds="mnt")
    >>> {e.propagation for e in mountinfo(pid)}
    {'shared'}
    """
    # by mode, then the path alone for the usual call (recursive, method "auto")
    key = path if recursive is True and method == "auto" else (path, recursive, method)
    try:
        change = _prepared_propagation[mode].get(key)
    except (KeyError, TypeError):   # a bad argument: validation says which
        change = None
    if change is None:
        change = _prepare_propagation(key, path, mode, recursive, method)
    try:
        change.run()
    except OSError as e:
        raise _propagation_error(e.errno, change.path, mode) from None


def _prepare_propagation(key, path, mode, recursive, method) -> _core.PropagationChange:
    """Validate a set_propagation call into the change it makes; remember it
    under (mode, key) when the same arguments must mean the same change next
    time."""
    flag = _mode_flag(mode)
    p = absolute(path, "path")
    change = _core.PropagationChange(p, flag, bool(recursive), _method_number(method))
    # only str and bytes: a PathLike's __fspath__ may answer differently next time
    if type(path) in (str, bytes) and type(mode) is str and type(method) is str \
            and type(recursive) is bool:
        known = _prepared_propagation[mode]
        if len(known) >= 256:
            known.clear()
        known[key] = change
    return change


def _propagation_error(err: int, p: bytes, mode: str) -> OSError:
    if err == errno.EINVAL and os.path.lexists(p) and not _is_mount_point(p):
        return os_error(errno.EINVAL, os.fsdecode(p),
                        "only a mount point has a propagation mode; bind-mount the "
                        "directory onto itself first: bind(path, path)",
                        what="not a mount point")
    return os_error(err, os.fsdecode(p), what=f"making {mode}")


# Prepared changes by call arguments: a sandbox server changes the same few
# paths over and over, and validation would take a good part of a small
# tree's mount_setattr.
_prepared_propagation: dict = {mode: {} for mode in PROPAGATION_FLAGS}


def _method_number(method: str) -> int:
    try:
        return _METHODS[method]
    except (KeyError, TypeError):
        raise ValueError(f"method must be one of {', '.join(_METHODS)}, not {method!r}") \
            from None


def bind(src: PathArg, dst: PathArg, readonly: bool = False, recursive: bool = True) -> None:
    """Bind-mount src on dst in the caller's mount namespace; with readonly
    every mount of the bound tree refuses writes (EROFS).

    In the caller's mount namespace: here a sleeper's (pid), joined by run_in.

    >>> nsfast.run_in(pid, bind, "/etc", "/mnt", readonly=True, kinds="mnt")
    >>> [e.readonly for e in mountinfo(pid) if e.mount_point == "/mnt"]
    [True]
    """
    s, d = absolute(src, "bind source"), absolute(dst, "bind target")
    try:
        _core.mount(s, d, None, MS_BIND | (MS_REC if recursive else 0), None)
    except OSError as e:
        missing = _missing(s, d) if e.errno == errno.ENOENT else None
        if missing is not None:
            raise os_error(errno.ENOENT, os.fsdecode(missing), what="bind") from None
        hint = None
        if e.errno == errno.EINVAL and _on_unbindable_mount(s):
            hint = "the source is on an unbindable mount, which cannot be bind-mounted"
        raise _error(e, s, f"bind to {os.fsdecode(d)}", hint) from None
    if readonly:
        try:
            _make_readonly(d, recursive)
        except OSError as e:
            _core.umount2(d, MNT_DETACH)  # do not leave a writable bind behind
            raise _error(e, d, "making the bind read-only") from None


def _on_unbindable_mount(path: bytes) -> bool:
    holder = _containing_mount(os.path.realpath(os.fsdecode(path)), mountinfo())
    return holder is not None and holder.propagation == "unbindable"


def _containing_mount(real: str, table: list[MountEntry]) -> Optional[MountEntry]:
    """The mount that holds the resolved path real: the last (topmost) entry
    with the longest mount point that is a prefix of it."""
    best = None
    for e in table:
        mp = e.mount_point
        if real == mp or real.startswith(mp.rstrip("/") + "/"):
            if best is None or len(mp) >= len(best.mount_point):
                best = e
    return best


def _make_readonly(dst: bytes, recursive: bool) -> None:
    try:
        _core.mount_setattr(dst, AT_RECURSIVE if recursive else 0, MOUNT_ATTR_RDONLY, 0, 0)
        return
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
    # Before 5.12: a bind ignores MS_RDONLY, so remount each mount of the tree,
    # keeping the flags that an unprivileged remount may not drop.
    top = os.path.realpath(os.fsdecode(dst))
    points = [top]
    if recursive:
        points += [e.mount_point for e in mountinfo()
                   if e.mount_point.startswith(top.rstrip("/") + "/")]
    for mp in points:
        kept = 0
        fl = os.statvfs(mp).f_flag
        for st, ms in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV),
                       (os.ST_NOEXEC, MS_NOEXEC)):
            if fl & st:
                kept |= ms
        _core.mount(None, os.fsencode(mp), None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept, None)


def tmpfs(dst: PathArg, size: Optional[int] = None, mode: Optional[int] = None) -> None:
    """Mount a fresh tmpfs (nosuid, nodev) on dst; size in bytes, mode as 0o755.

    In the caller's mount namespace: here a sleeper's (pid), joined by run_in.

    >>> nsfast.run_in(pid, tmpfs, "/mnt", size=64 << 20, mode=0o700, kinds="mnt")
    >>> [e.fs_type for e in mountinfo(pid) if e.mount_point == "/mnt"]
    ['tmpfs']
    """
    d = absolute(dst, "tmpfs target")
    data = _tmpfs_options(size, mode)
    try:
        _core.mount(b"tmpfs", d, b"tmpfs", MS_NOSUID | MS_NODEV, data)
    except OSError as e:
        raise _error(e, d, "mounting tmpfs") from None


def mount_proc(target: PathArg = "/proc") -> None:
    """Mount a proc for the caller's pid namespace on target.  For a /proc that
    shows only a new pid namespace's processes, call it from a process inside
    that pid namespace and in its own mount namespace.

    In the caller's mount namespace: here a sleeper's (pid), joined by run_in.

    >>> nsfast.run_in(pid, mount_proc, "/mnt", kinds="mnt")
    >>> [e.fs_type for e in mountinfo(pid) if e.mount_point == "/mnt"]
    ['proc']
    """
    t = absolute(target, "proc target")
    try:
        _core.mount(b"proc", t, b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    except OSError as e:
        hint = None
        if e.errno == errno.EPERM:
            hint = ("proc is refused in a user namespace when the host's /proc has "
                    "over-mounted paths, and needs CAP_SYS_ADMIN")
        raise _error(e, t, "mounting proc", hint) from None


def _same_mount_ns_as_init() -> bool:
    try:
        return os.stat("/proc/self/ns/mnt").st_ino == os.stat("/proc/1/ns/mnt").st_ino
    except OSError:
        return False


def pivot_root(new_root: PathArg) -> None:
    """Make new_root the root of the caller's mount namespace; the old root is
    detached, so nothing outside new_root stays reachable.  The mounts
    involved are made private first (pivot_root refuses a shared parent).
    Refused in the initial mount namespace, where it would move every process.

    In a sleeper's mount namespace (pid), joined by run_in: an empty tmpfs becomes /.

    >>> def into_tmpfs():
    ...     tmpfs("/mnt")
    ...     pivot_root("/mnt")
    ...     return os.listdir("/")
    >>> nsfast.run_in(pid, into_tmpfs, kinds="mnt")
    []
    """
    root = absolute(new_root, "new_root")
    if not os.path.isdir(root):
        if not os.path.lexists(root):
            raise os_error(errno.ENOENT, os.fsdecode(root), what="pivot_root")
        raise os_error(errno.ENOTDIR, os.fsdecode(root), what="pivot_root")
    if _same_mount_ns_as_init():
        raise RuntimeError("pivot_root refused: the caller shares the mount namespace of "
                           "pid 1; run it in a new mount namespace")
    real = os.path.realpath(os.fsdecode(root))
    # the self-bind below would propagate to the parent's peers if it were shared
    _make_private_if_shared(_containing_mount(real, mountinfo()))
    if not _is_mount_point(os.fsencode(real)):
        bind(real, real)  # pivot_root wants a mount point
    table = mountinfo()
    _make_private_if_shared(_containing_mount(real, table))
    _make_private_if_shared(_containing_mount("/", table))
    os.chdir(real)
    try:
        # (".", ".") stacks the old root on top of the new one; the lazy
        # unmount then removes it without needing a put_old directory
        _core.pivot_root(b".", b".")
        _core.umount2(b".", MNT_DETACH)
    except OSError as e:
        raise _error(e, os.fsencode(real), "pivot_root") from None
    finally:
        os.chdir("/")


def _make_private_if_shared(entry: Optional[MountEntry]) -> None:
    if entry is not None and entry.peer_group is not None:
        _core.PropagationChange(os.fsencode(entry.mount_point), PROPAGATION_FLAGS["private"],
                                False, 0).run()
