"""The state directory: the only memory between the runtime's commands.

Each command of the runc command line is a new process.  A container is a
directory ROOT/ID holding:

- state: the facts the C commands (csrc/cli_oci*.c: state, start, kill,
  delete) act on, in a fixed form C reads without a JSON parser, one
  "KEY VALUE" a line: `pid PID` and `start_time TICKS` (field 22 of
  /proc/PID/stat: the same pid later is another process unless it matches),
  both absent while the container is being created; `cgroup NAME PATH` for
  each hierarchy (NAME as cgroup.mounted() names it); `hooks KIND ...`, the
  hook kinds a C command hands to Python (startContainer, poststart,
  poststop).  Written whole and renamed into place;
- state.json: the fields of `state` that do not change (bundle, rootfs,
  created, owner, annotations), a JSON object the C `state` prints with
  the ones that do (id, status, pid);
- hooks.json: the container's hooks, when it has any (nsfast/oci/hooks.py);
- exec.fifo: exists from create until start; the held child has it open
  for reading and execs once `start` writes one byte into it;
- lock: flock'ed by every command that changes the container, so that two
  commands on one container run one after the other.

The status (creating, created, running, paused, stopped) is the C
`state`'s alone; Python commands ask it (runtime.status_of).
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import time
from typing import Optional

from .errors import OciError

DEFAULT_ROOT = "/run/nsfast-runtime"
OCI_VERSION = "1.0.2"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,1023}$")


def timestamp() -> str:
    """Now, as runc writes times: RFC 3339 in UTC with microseconds.

    >>> len(timestamp()), timestamp()[10], timestamp()[-1]
    (27, 'T', 'Z')
    """
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + \
        f".{ns // 1000 % 10**6:06d}Z"


def check_id(container_id: str) -> str:
    """The id if it is a usable directory name (runc's rule), else an error.
    For the commands Python runs (create, run, exec); the launcher checks
    the same rule for its own (csrc/cli_oci_state.c, oci_check_id).

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
        return os.path.exists(os.path.join(self.dir, "state"))

    def lock(self) -> "Container":
        """Take the container's lock (blocking): commands run one at a time."""
        fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._lock_fd = fd
        return self

    def unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> "Container":
        return self.lock()

    def __exit__(self, *exc) -> None:
        self.unlock()

    def _replace(self, name: str, data: bytes) -> None:
        tmp = os.path.join(self.dir, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.dir, name))

    def save(self, public: dict) -> None:
        """state.json: the fields of the spec's state that do not change."""
        self._replace("state.json", json.dumps(public, indent=2).encode())

    def save_facts(self, pid: int = 0, start: Optional[int] = None, cgroups: dict = {},
                   hooks: dict = {}) -> None:
        """The state file (the module's docstring): the process once it is
        created, the cgroups, and the hooks, whose kinds it names and whose
        JSON goes to hooks.json."""
        lines = [f"pid {pid}\nstart_time {start or 0}\n" if pid else ""]
        for name, path in cgroups.items():
            if "\n" in path or " " in name:
                raise OciError(f"cgroup path {path!r}: a newline is not usable here")
            lines.append(f"cgroup {name} {path}\n")
        kinds = [k for k in ("startContainer", "poststart", "poststop") if hooks.get(k)]
        if kinds:
            self._replace("hooks.json", json.dumps(hooks).encode())
            lines.append(f"hooks {' '.join(kinds)}\n")
        self._replace("state", os.fsencode("".join(lines)))

    def facts(self) -> dict:
        """The state file as {"pid", "start_time", "cgroups": {name: path}}."""
        try:
            with open(os.path.join(self.dir, "state"), "rb") as f:
                data = os.fsdecode(f.read())
        except FileNotFoundError:
            raise OciError(f"container {self.id!r} does not exist") from None
        out: dict = {"pid": 0, "start_time": None, "cgroups": {}}
        for line in data.splitlines():
            key, _, value = line.partition(" ")
            if key in ("pid", "start_time"):
                out[key] = int(value)
            elif key == "cgroup":
                name, _, path = value.partition(" ")
                out["cgroups"][name] = path
        return out

    def load(self) -> dict:
        """state.json (bundle, rootfs, created, owner, annotations)."""
        try:
            with open(os.path.join(self.dir, "state.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            raise OciError(f"container {self.id!r} does not exist") from None

    def hooks(self) -> dict:
        try:
            with open(os.path.join(self.dir, "hooks.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}


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
