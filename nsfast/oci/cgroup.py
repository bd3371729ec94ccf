"""A container's cgroup at its config's cgroupsPath, in every hierarchy.

nsfast.Limits makes cgroups that belong to the process that spawned (they
are removed when it is gone); an OCI container's cgroup outlives the
runtime's commands and has the path its manager chose (Podman's
/libpod_parent/libpod-ID, containerd's /NAMESPACE/ID).  So the runtime makes
the directory in each mounted hierarchy (v1, v2 or hybrid, as runc does),
writes the limits of linux.resources before the held child runs, and moves
the child in while it waits.  The state keeps {hierarchy name: directory}.
What acts on a container's cgroups later (kill --all, delete, ps, pause,
resume: signalling, the freezer, removing) is C (csrc/cli_oci_cgroup.c).
"""
from __future__ import annotations

import os
import threading
import time

from ..cgroups import _read, _unescape, _write
from .errors import OciError

# linux.resources keys and the fields of each that this runtime writes
SUPPORTED = {"memory": {"limit", "swap", "reservation", "disableOOMKiller"},
             "pids": {"limit"},
             "cpu": {"shares", "quota", "period", "cpus", "mems"},
             "devices": None}
_DEFAULT_DEVICES = ("c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                    "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm")


def mounted() -> dict:
    """{name: mount point} of the hierarchies mounted at their root: a v1
    hierarchy by its controllers ("memory", "cpu", "name=systemd"), v2 as
    "unified"."""
    found: dict = {}
    with open("/proc/self/mountinfo", errors="surrogateescape") as f:
        for line in f:
            left, _, right = line.rstrip("\n").partition(" - ")
            fields = left.split()
            fstype, _source, options = right.split(" ", 2)
            if fstype not in ("cgroup", "cgroup2") or _unescape(fields[3]) != "/":
                continue
            if fstype == "cgroup2":
                name = "unified"
            else:
                opts = [o for o in options.split(",") if o not in ("rw", "ro", "relatime")
                        and not o.startswith("no") and ("=" not in o or o.startswith("name="))]
                name = ",".join(sorted(opts))
            found.setdefault(name, _unescape(fields[4]))
    return found


def check_resources(resources: dict) -> None:
    """OciError for a linux.resources field this runtime does not apply."""
    for key, value in resources.items():
        if key not in SUPPORTED:
            raise OciError(f"linux.resources.{key} is not supported by nsfast-runtime")
        fields = SUPPORTED[key]
        if fields is not None:
            extra = set(value) - fields
            if extra:
                raise OciError(f"linux.resources.{key}.{sorted(extra)[0]} is not supported "
                               f"by nsfast-runtime")
    if resources.get("memory", {}).get("disableOOMKiller"):
        raise OciError("linux.resources.memory.disableOOMKiller is not supported")


def _has_swap() -> bool:
    with open("/proc/swaps") as f:
        return len(f.read().splitlines()) > 1


def make(cgroups_path: str, resources: dict, made: list) -> dict:
    """Make the container's cgroup in each hierarchy and write its limits;
    {hierarchy: directory}.  A directory that exists is used as it is (a
    pod's cgroup made by its manager); the parents this call makes are
    added to made (for Parents, which removes them when unused)."""
    rel = "/" + cgroups_path.strip("/")
    if ".." in rel.split("/"):
        raise OciError(f"cgroupsPath {cgroups_path!r} goes up with '..'")
    if not [part for part in rel.split("/") if part not in ("", ".")]:
        # the hierarchies' roots: limits for the whole host, and a delete
        # that would kill every process in them
        raise OciError(f"cgroupsPath {cgroups_path!r} names the root cgroup")
    dirs: dict = {}
    try:
        for name, mount in mounted().items():
            path = mount + rel
            parent = os.path.dirname(path)
            missing = []
            while len(parent) > len(mount) and not os.path.isdir(parent):
                missing.append(parent)
                parent = os.path.dirname(parent)
            os.makedirs(path, exist_ok=True)
            made.extend(missing)
            dirs[name] = path
            if "cpuset" in name.split(","):
                # a v1 cpuset child starts empty: copy the parent's so it can hold tasks
                for f in ("cpuset.cpus", "cpuset.mems"):
                    _inherit(mount, rel, f)
        _limit(dirs, resources)
    except BaseException:
        # no process is in them yet: rmdir is enough
        remove_parents([*dirs.values()][::-1] + made)
        raise
    return dirs


def remove_parents(made: list) -> None:
    """Remove directories make() made, deepest first, when no other
    container uses them (a busy or non-empty one stays)."""
    for path in made:
        try:
            os.rmdir(path)
        except OSError:
            pass


class Parents:
    """The parent cgroups the runtime made, shared by the containers under
    one state root (a file of paths, under its flock): the last container
    out removes them, whichever made them (delete, csrc/cli_oci_cgroup.c's
    oci_sweep_parents, under the same flock).  Parents someone else made (a
    pod's, by the kubelet) are never listed, so never removed."""

    def __init__(self, root: str) -> None:
        self.path = os.path.join(root, "cgroup-parents")
        self.fd = -1

    def __enter__(self) -> "Parents":
        import fcntl
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    self.fd = fd
                    return self
            except FileNotFoundError:
                pass
            os.close(fd)   # unlinked by the last holder while we waited: anew

    def __exit__(self, *exc) -> None:
        # an empty list leaves no file: the state directory is empty again
        if os.fstat(self.fd).st_size == 0:
            os.unlink(self.path)
        os.close(self.fd)

    def _read(self) -> list:
        os.lseek(self.fd, 0, os.SEEK_SET)
        data = b""
        while True:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                break
            data += chunk
        return [p for p in os.fsdecode(data).split("\n") if p]

    def _write(self, paths: list) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, os.fsencode("".join(p + "\n" for p in paths)), 0)

    def add(self, made: list) -> None:
        """Remember directories make() made."""
        known = self._read()
        self._write(known + [p for p in made if p not in known])


def _inherit(mount: str, rel: str, name: str) -> None:
    parts = [p for p in rel.split("/") if p]
    for i in range(1, len(parts) + 1):
        path = os.path.join(mount, *parts[:i], name)
        if not _read(path).strip():
            _write(path, _read(os.path.join(os.path.dirname(os.path.dirname(path)),
                                            name)).strip(), "cpuset")


def _dir(dirs: dict, controller: str):
    for name, path in dirs.items():
        if controller in name.split(","):
            return path
    return None


def _limit(dirs: dict, resources: dict) -> None:
    def put(controller: str, name: str, value) -> None:
        path = _dir(dirs, controller)
        if path is None:
            raise OciError(f"linux.resources needs the {controller} cgroup controller, "
                           f"which this host has not mounted as cgroup v1")
        _write(os.path.join(path, name), str(value), controller)

    mem = resources.get("memory") or {}
    if mem.get("limit") is not None:
        put("memory", "memory.limit_in_bytes", mem["limit"])
    if mem.get("reservation") is not None:
        put("memory", "memory.soft_limit_in_bytes", mem["reservation"])
    if mem.get("swap") is not None:
        path = _dir(dirs, "memory")
        if path is not None and os.path.exists(os.path.join(path, "memory.memsw.limit_in_bytes")):
            put("memory", "memory.memsw.limit_in_bytes", mem["swap"])
        elif _has_swap():
            raise OciError("linux.resources.memory.swap: this kernel does not account swap "
                           "(no memory.memsw.limit_in_bytes), and the host has swap")
        # no swap on the host: memory plus swap is memory, which is limited
    pids = resources.get("pids") or {}
    if pids.get("limit") is not None:
        put("pids", "pids.max", "max" if pids["limit"] <= 0 else pids["limit"])
    cpu = resources.get("cpu") or {}
    if cpu.get("shares"):
        put("cpu", "cpu.shares", cpu["shares"])
    if cpu.get("period"):
        put("cpu", "cpu.cfs_period_us", cpu["period"])
    if cpu.get("quota"):
        put("cpu", "cpu.cfs_quota_us", cpu["quota"])
    for key in ("cpus", "mems"):
        if cpu.get(key):
            put("cpuset", f"cpuset.{key}", cpu[key])
    devices = resources.get("devices")
    if devices is not None and _dir(dirs, "devices") is not None:
        _device_rules(_dir(dirs, "devices"), devices)


def _device_rules(path: str, rules: list) -> None:
    """The v1 devices cgroup: the rules in order, then the devices every
    container gets (runc's defaults: null, zero, full, random, urandom, tty,
    console, ptmx, the ptys)."""
    lines = []
    for r in rules:
        kind = r.get("type", "a")
        major, minor = r.get("major", "*"), r.get("minor", "*")
        major = "*" if major in (None, -1) else major
        minor = "*" if minor in (None, -1) else minor
        rule = "a" if kind == "a" and major == "*" and minor == "*" else \
            f"{kind} {major}:{minor} {r.get('access', 'rwm')}"
        lines.append(("devices.allow" if r.get("allow") else "devices.deny", rule))
    lines.extend(("devices.allow", d) for d in _DEFAULT_DEVICES)
    for name, rule in lines:
        _write(os.path.join(path, name), rule, "devices")


def attach(dirs: dict, pid: int) -> None:
    """Move pid (the held child) into the container's cgroup everywhere."""
    try:
        for name, path in dirs.items():
            _write(os.path.join(path, "cgroup.procs"), str(pid), name)
    finally:
        _warming.set()


# Moving a process between cgroups takes the kernel's global
# cgroup_threadgroup_rwsem for writing, and the first writer after a quiet
# spell waits for an RCU grace period (5-18 ms here, the largest cost of
# create); writers that follow within about one grace period do not.  So
# create starts warm_migrations() first thing: a thread that moves this
# process into the cgroup it is already in (nothing moves), every few ms,
# while Python imports and reads the bundle, until attach() has moved the
# container's process.  The grace period passes off the critical path.
_warming = threading.Event()
_WARM_FOR = 2.0   # seconds at most, whatever happens to create


def warm_migrations() -> None:
    """Start the thread that keeps cgroup migrations fast until attach()."""
    threading.Thread(target=_keep_warm, daemon=True).start()


def _keep_warm() -> None:
    try:
        fd = os.open(_own_procs_file(), os.O_WRONLY | os.O_CLOEXEC)
    except (OSError, TypeError):
        return   # no cgroup file of our own to write: create just waits
    me = str(os.getpid()).encode()
    deadline = time.monotonic() + _WARM_FOR
    try:
        while not _warming.is_set() and time.monotonic() < deadline:
            os.write(fd, me)
            _warming.wait(0.004)
    except OSError:
        pass
    finally:
        os.close(fd)


def _own_procs_file():
    """cgroup.procs of the cgroup this process is in (pids' v1 hierarchy,
    else the v2 one), or None."""
    with open("/proc/self/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    for _, controllers, path in lines:
        if controllers == "pids":
            return f"/sys/fs/cgroup/pids{path}/cgroup.procs"
    for _, controllers, path in lines:
        if controllers == "":
            for mount in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
                if os.path.exists(f"{mount}{path}/cgroup.procs"):
                    return f"{mount}{path}/cgroup.procs"
    return None
