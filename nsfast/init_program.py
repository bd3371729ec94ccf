"""The init program (csrc/init.c) as a sealed memfd, for spawn(init=True).

pid 1 of a sandbox is visible to the payload, so it is a program of its own
rather than a clone of the caller.  It is exec'd from a memfd that holds a
copy of the installed binary and is sealed against writes: a payload that is
root inside could otherwise open /proc/1/exe for writing and change the
file every later sandbox runs (runc's CVE-2019-5736).  The binary is static,
so that it runs in whatever root the sandbox has.
"""
from __future__ import annotations

import errno
import fcntl
import os
from typing import Optional

from .errors import os_error
from .kernel import MFD_EXEC

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_nsfast_init")
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE

_cached: Optional[tuple[int, int]] = None   # (pid that made it, fd)


def _sealed_copy() -> int:
    try:
        with open(PATH, "rb") as f:
            image = f.read()
    except OSError as e:
        raise os_error(e.errno, PATH, "the init program is built with the extension: "
                       "reinstall nsfast") from None
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    try:
        fd = os.memfd_create("nsfast-init", flags | MFD_EXEC)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise os_error(e.errno, None, what="memfd_create for the init program") from None
        fd = os.memfd_create("nsfast-init", flags)   # a kernel before 6.3
    try:
        view = memoryview(image)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def init_fd() -> int:
    """An O_CLOEXEC fd of the sealed init program, made once per process.

    >>> init_fd() == init_fd()
    True
    """
    global _cached
    pid = os.getpid()
    if _cached is None or _cached[0] != pid:   # a fork's copy belongs to its parent
        _cached = (pid, _sealed_copy())
    return _cached[1]
