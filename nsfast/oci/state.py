"""The state directory: the only memory between the runtime's commands.

Each command of the runc command line is a new process.  A container is a
directory ROOT/ID holding:

- state.json: what `state` prints, plus what the runtime needs (the pid's
  start time, the cgroup path, the hooks), written whole and renamed into
  place, so a reader never sees half of it;
- exec.fifo: exists from create until start; the held child has it open
  for reading and execs once `start` writes one byte into it;
- lock: flock'ed by every command that changes the container, so that two
  commands on one container run one after the other.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
from typing import Optional

from .errors import OciError

DEFAULT_ROOT = "/run/nsfast-runtime"
OCI_VERSION = "1.0.2"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,1023}$")


def check_id(container_id: str) -> str:
    """The id if it is a usable directory name (runc's rule), else an error.

    >>> check_id("web-1")
    'web-1'
    """
    if not _ID.match(container_id or ""):
        raise OciError(f"invalid container id {container_id!r}: use letters, digits "
                            f"and _.+- (not starting with one of those)")
    return container_id


class Container:
    """One container's directory under the state root."""

    def __init__(self, root: str, container_id: str) -> None:
        self.id = check_id(container_id)
        self.dir = os.path.join(root, self.id)
        self.fifo = os.path.join(self.dir, "exec.fifo")
        self._lock_fd = -1

    def exists(self) -> bool:
        return os.path.exists(os.path.join(self.dir, "state.json"))

    def lock(self) -> "Container":
        """Take the container's lock (blocking): commands run one at a time."""
        fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._lock_fd = fd
        return self

    def locked_by_another(self) -> bool:
        """Whether another command holds the container's lock now."""
        try:
            fd = os.open(os.path.join(self.dir, "lock"), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> "Container":
        return self.lock()

    def __exit__(self, *exc) -> None:
        self.unlock()

    def load(self) -> dict:
        try:
            with open(os.path.join(self.dir, "state.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            raise OciError(f"container {self.id!r} does not exist") from None

    def save(self, state: dict) -> None:
        tmp = os.path.join(self.dir, "state.json.tmp")
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.rename(tmp, os.path.join(self.dir, "state.json"))


def start_time(pid: int) -> Optional[int]:
    """The start time of pid (field 22 of /proc/PID/stat), None if it is gone
    or a zombie: a zombie has finished, and its pid may come back for another."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def alive(state: dict) -> bool:
    """Whether the container's process still runs (the same process, not a
    new one with its pid)."""
    pid, started = state.get("pid") or 0, state.get("start_time")
    return pid > 0 and started is not None and start_time(pid) == started


def status(c: Container, state: dict) -> str:
    """creating, created, running, paused or stopped, as the runtime spec names them."""
    if state.get("status") == "creating":
        # create holds the lock until it is done: a free lock means it died
        return "creating" if c.locked_by_another() else "stopped"
    if not alive(state):
        return "stopped"
    if os.path.exists(c.fifo):
        return "created"
    from . import cgroup
    if cgroup.frozen(state.get("cgroups", {})):
        return "paused"
    return "running"


def public_state(c: Container, state: dict) -> dict:
    """The runtime-spec state (plus runc's created, owner and rootfs)."""
    st = status(c, state)
    return {"ociVersion": OCI_VERSION, "id": c.id, "status": st,
            "pid": state.get("pid", 0) if st not in ("stopped",) else 0,
            "bundle": state.get("bundle", ""), "rootfs": state.get("rootfs", ""),
            "created": state.get("created", ""), "owner": "",
            "annotations": state.get("annotations", {})}


def remove_dir(c: Container) -> None:
    """Remove the container's directory (its files are ours alone)."""
    for name in ("exec.fifo", "state.json", "state.json.tmp", "lock"):
        try:
            os.unlink(os.path.join(c.dir, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(c.dir)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
