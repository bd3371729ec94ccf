"""The mount table: /proc/PID/mountinfo parsed into MountEntry rows.

Its own small module (no dataclasses, nothing that mounts anything) so that
a reader such as `nsfast ls` imports only this; nsfast.mounts re-exports it.
"""
from __future__ import annotations

import errno
import re
import sys
from typing import NamedTuple, Optional

from .errors import os_error
from .handles import _check_pid

_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


_OCTAL = re.compile(rb"\\([0-7]{3})")


def _unescape(field: bytes) -> str:
    """Undo the kernel's octal escapes (\\040 space, \\011 tab, \\012 newline,
    \\134 backslash) and decode as the os module decodes paths."""
    if b"\\" in field:
        field = _OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), field)
    return field.decode(_FS_ENCODING, _FS_ERRORS)


class MountEntry(NamedTuple):
    """One line of /proc/PID/mountinfo, decoded.

    propagation is "shared", "slave", "shared,slave" (a slave that is also
    shared), "private" or "unbindable"; peer_group is the N of shared:N,
    master the N of master:N, propagate_from the N of propagate_from:N.

    >>> [e.mount_point for e in mountinfo() if e.mount_point == "/"]
    ['/']
    """
    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str
    mount_point: str
    options: tuple[str, ...]
    optional_fields: tuple[str, ...]
    fs_type: str
    source: str
    super_options: tuple[str, ...]
    propagation: str
    peer_group: Optional[int]
    master: Optional[int]
    propagate_from: Optional[int]

    @property
    def readonly(self) -> bool:
        return "ro" in self.options


_new_entry = tuple.__new__  # positional, past NamedTuple's keyword-taking __new__


def _parse_line(line: bytes) -> MountEntry:
    fields = line.split(b" ")
    sep = fields.index(b"-", 6)
    major, _, minor = fields[2].partition(b":")
    optional = tuple(f.decode() for f in fields[6:sep]) if sep > 6 else ()
    shared = master = source = None
    mode = "private"
    for tag in optional:
        name, _, value = tag.partition(":")
        if name == "shared":
            shared = int(value)
        elif name == "master":
            master = int(value)
        elif name == "propagate_from":
            source = int(value)
        elif name == "unbindable":
            mode = "unbindable"
    if mode != "unbindable":
        if shared is not None:
            mode = "shared,slave" if master is not None else "shared"
        elif master is not None:
            mode = "slave"
    super_options = tuple(_unescape(fields[sep + 3]).split(",")) if len(fields) > sep + 3 \
        else ()
    return _new_entry(MountEntry, (
        int(fields[0]), int(fields[1]), int(major), int(minor),
        _unescape(fields[3]), _unescape(fields[4]), tuple(fields[5].decode().split(",")),
        optional, _unescape(fields[sep + 1]), _unescape(fields[sep + 2]), super_options,
        mode, shared, master, source))


def parse_mountinfo(text: bytes) -> list[MountEntry]:
    """Parse the bytes of a mountinfo file.

    >>> parse_mountinfo(b"27 1 254:0 / / rw - ext4 /dev/vda rw\\n")[0].source
    '/dev/vda'
    """
    if not isinstance(text, bytes):
        raise TypeError(f"mountinfo text is bytes, not {type(text).__name__}")
    return [_parse_line(line) for line in text.split(b"\n") if line]


def mountinfo(pid: Optional[int] = None) -> list[MountEntry]:
    """The mount table of pid's mount namespace (default: the caller's), as
    that process sees it (paths relative to its root), in kernel order.

    >>> any(e.fs_type == "proc" for e in mountinfo())
    True
    """
    if pid is None:
        path = "/proc/self/mountinfo"
    else:
        path = f"/proc/{_check_pid(pid)}/mountinfo"
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        if pid is None:
            raise os_error(errno.ENOENT, path, "/proc is not mounted here") from None
        raise os_error(errno.ESRCH, path, what=f"no process {pid}") from None
    except OSError as e:
        raise os_error(e.errno, path) from None
    return parse_mountinfo(text)
