"""Mount steps for spawn (bind, tmpfs, proc) and the propagation modes."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

# struct nsf_mount_step kinds (csrc/spawn.h)
_BIND, _TMPFS, _PROC, _MKDIR, _PIVOT, _SYSFS = 1, 2, 3, 4, 5, 6
MS_REC = 0x4000
MS_NOSUID, MS_NODEV = 0x2, 0x4

PROPAGATION_FLAGS = {
    "private": 1 << 18,     # MS_PRIVATE
    "slave": 1 << 19,       # MS_SLAVE
    "shared": 1 << 20,      # MS_SHARED
    "unbindable": 1 << 17,  # MS_UNBINDABLE
}


def absolute(path, what: str) -> bytes:
    """The path as bytes, ValueError unless absolute and free of NUL."""
    p = os.fsencode(path)
    if b"\0" in p:
        raise ValueError(f"{what} contains a NUL byte")
    if not p.startswith(b"/"):
        raise ValueError(f"{what} must be an absolute path, not {os.fsdecode(p)!r}")
    return p


@dataclass(frozen=True)
class Bind:
    """Bind-mount src on dst in the child (read-only with readonly=True).

    >>> nsfast.spawn(["ls", "/mnt"], namespaces="mnt", mounts=[Bind("/etc", "/mnt", readonly=True)])  # doctest: +SKIP
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
        opts = []
        if self.size is not None:
            if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size <= 0:
                raise ValueError("tmpfs size must be a positive int of bytes")
            opts.append(f"size={self.size}")
        if self.mode is not None:
            if isinstance(self.mode, bool) or not isinstance(self.mode, int) or \
                    not 0 <= self.mode <= 0o7777:
                raise ValueError("tmpfs mode must be an int between 0 and 0o7777")
            opts.append(f"mode={self.mode:o}")
        data = ",".join(opts).encode() if opts else None
        return [(_TMPFS, self.readonly, MS_NOSUID | MS_NODEV, b"tmpfs",
                 absolute(self.dst, "tmpfs target"), data)]


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


def pivot_step(new_root) -> tuple:
    """The spawn step that makes new_root the child's / and detaches the old root."""
    return (_PIVOT, False, 0, absolute(new_root, "root"), None, None)
