"""crun as a benchmark peer: a program run the way a container runtime runs it,
with the same nsfast.Limits as nsfast's side.

setup() writes an OCI bundle into a temporary directory: config.json (the
namespaces, the cgroup limits memory, pids and cpu, and the rlimits) and a
rootfs holding the host's program and the shared libraries it loads (the
same binary as nsfast's side runs).  Each sample is then
`crun run --bundle DIR ID-n`, with a fresh id.

Where crun's cgroups go: crun's cgroupfs manager takes cgroupsPath from the
root of each hierarchy, so the path is this process's own cgroup (the
deepest of its hierarchies, when each other one is an ancestor of it, as on
a host where only memory has a cgroup of its own) plus nsfast-crun-<pid>/c.
crun makes and removes the leaf per run; teardown removes the directories
it made on the way (only those that did not exist at setup).  Only cgroup
v1 and hybrid hosts: on cgroup v2 crun enables controllers in the
cgroup.subtree_control of the ancestors, which are not ours to change.

crun refuses a hybrid host whose v2 tree has controllers ("cgroups in hybrid
mode not supported, drop all controllers from cgroupv2"), though the limits
it applies are all v1.  So crun runs from a helper in a mount namespace of
its own where that v2 mount is detached: crun sees a v1 host and writes the
same v1 hierarchies as nsfast.  The helper is driven over a pipe; its round
trip (tens of microseconds) is counted against crun.

setup() proves the limits: a container made with `crun create` (stopped
before its exec) is looked at from the host, its cgroup limit files and
/proc/PID/limits.  A crun that cannot run or limit here is reported as a
missing peer with crun's own error; never run without its limits.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Optional

import nsfast
from nsfast import cgroups
from nsfast.limits import RLIMIT_FIELDS, Limits

from .harness import Peer

INSTALL = "not on PATH: apt-get install crun"
CGROUP_ROOT = "/sys/fs/cgroup"
# nsfast kind -> OCI namespace type
OCI_NAMESPACE = {"pid": "pid", "mnt": "mount", "uts": "uts", "ipc": "ipc", "net": "network",
                 "cgroup": "cgroup", "user": "user", "time": "time"}
# rlimit resource number -> OCI name (RLIMIT_NOFILE, not its alias RLIMIT_OFILE)
RLIMIT_NAMES = {res: "RLIMIT_" + name.upper() for res, name in RLIMIT_FIELDS.values()}

# Runs in a mount namespace of its own: detaches the mounts named in argv (a
# v2 tree that makes crun refuse the host), then runs one command per line
# of JSON argv on stdin and answers [exit status, stderr] as a JSON line.
HELPER = r"""
import ctypes, json, os, subprocess, sys, tempfile
libc = ctypes.CDLL(None, use_errno=True)
for path in sys.argv[1:]:
    if libc.umount2(path.encode(), 2) != 0:   # MNT_DETACH
        sys.exit("umount %s: %s" % (path, os.strerror(ctypes.get_errno())))
# stderr goes to a file, not a pipe: a created container keeps it open
err = tempfile.TemporaryFile()
for line in sys.stdin:
    err.seek(0)
    err.truncate()
    rc = subprocess.call(json.loads(line), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=err)
    err.seek(0)
    sys.stdout.write(json.dumps([rc, err.read().decode(errors="replace")]) + "\n")
    sys.stdout.flush()
"""


def _own_cgroups() -> list:
    """(hierarchy directory as crun names it, own path) for each v1
    hierarchy of this process; [] on a cgroup v2 host."""
    out = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if hid != "0":
                out.append((os.path.join(CGROUP_ROOT, ctrls.replace("name=", "")), path))
    return out


def _v2_with_controllers() -> Optional[str]:
    """The hybrid host's v2 mount when it offers controllers (crun refuses it)."""
    path = os.path.join(CGROUP_ROOT, "unified")
    try:
        with open(os.path.join(path, "cgroup.controllers")) as f:
            return path if f.read().strip() else None
    except OSError:
        return None


def _cgroup_parent(owns: list) -> str:
    """The cgroup path under which crun's leaf goes, inside every own cgroup;
    ValueError when the own cgroups are not on one line of descent."""
    deepest = max((p for _, p in owns), key=len)
    for _, p in owns:
        if not (p == "/" or deepest == p or deepest.startswith(p.rstrip("/") + "/")):
            raise ValueError(f"this process's cgroups {deepest} and {p} are in different "
                             f"places of their hierarchies: no one cgroupsPath is inside both")
    return deepest.rstrip("/")


def _libraries(program: str) -> list:
    """The shared objects program loads, as ldd finds them."""
    r = subprocess.run(["ldd", program], capture_output=True, text=True)
    libs = []
    for line in r.stdout.splitlines():
        words = line.replace("=>", " ").split()
        libs += [w for w in words if w.startswith("/")]
    return libs


def oci_config(argv: list, namespaces: str, limits: Limits, cgroups_path: str) -> dict:
    """config.json of a bundle that runs argv (as root, from a read-only
    rootfs) in namespaces with limits.

    >>> c = oci_config(["/bin/true"], "pid,mnt", Limits(pids=8), "/x/c")
    >>> c["linux"]["resources"]["pids"], [n["type"] for n in c["linux"]["namespaces"]]
    ({'limit': 8}, ['pid', 'mount'])
    """
    if limits.memory_swap is not None or limits.wall_time is not None:
        raise ValueError("the crun peer translates memory, pids, cpu and the rlimits only")
    resources: dict = {}
    if limits.memory is not None:
        resources["memory"] = {"limit": limits.memory}
    if limits.pids is not None:
        resources["pids"] = {"limit": limits.pids}
    if limits.cpu is not None:
        # nsfast's own quota for this share (nsfast/cgroups.py)
        resources["cpu"] = {"quota": max(1000, round(limits.cpu * cgroups._PERIOD_US)),
                            "period": cgroups._PERIOD_US}
    rlimits = [{"type": RLIMIT_NAMES[res], "soft": soft if soft >= 0 else 2**64 - 1,
                "hard": hard if hard >= 0 else 2**64 - 1}
               for res, soft, hard in limits.rlimits()]
    kinds = [k.strip() for k in namespaces.split(",") if k.strip()]
    return {
        "ociVersion": "1.0.0",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": list(argv),
                    "env": ["PATH=/bin"], "cwd": "/", "rlimits": rlimits},
        "root": {"path": "rootfs", "readonly": True},
        "mounts": [],
        "linux": {"namespaces": [{"type": OCI_NAMESPACE[k]} for k in kinds],
                  "cgroupsPath": cgroups_path, "resources": resources},
    }


class CrunPeer:
    """The crun peer of a case: .peer is its Peer; setup()/teardown() go in the
    case's setup and teardown.  After setup, .peer.op is None (with the
    reason in .peer.install) when crun cannot run here with the limits."""

    def __init__(self, program: str, namespaces: str, limits: Limits):
        self.program, self.namespaces, self.limits = program, namespaces, limits
        self.exe = shutil.which("crun")
        self.peer = Peer("crun", self if self.exe else None, "" if self.exe else INSTALL)
        self.dir: Optional[str] = None
        self.helper: Optional[nsfast.Process] = None
        self.made: list = []        # cgroup directories crun made on the way, deepest last
        self.ids = itertools.count()
        self.prefix = f"nsfast-bench-{os.getpid()}"

    def _crun(self, *args: str) -> tuple:
        """(exit status, stderr) of crun with args, run by the helper."""
        argv = [self.exe, "--root", os.path.join(self.dir, "state"),
                "--cgroup-manager=cgroupfs", *args]
        self.helper.stdin.write(json.dumps(argv).encode() + b"\n")
        self.helper.stdin.flush()
        line = self.helper.stdout.readline()
        if not line:
            raise RuntimeError(f"the crun helper ended (exit {self.helper.wait()})")
        rc, err = json.loads(line)
        return rc, err.strip()

    def __call__(self) -> None:
        rc, err = self._crun("run", "--bundle", self.dir, f"{self.prefix}-{next(self.ids)}")
        if rc != 0:
            raise RuntimeError(f"crun run failed (exit {rc}): {err}")

    def setup(self) -> None:
        if self.exe is None:
            return
        try:
            self._setup()
        except (OSError, ValueError, RuntimeError) as e:
            self.teardown()
            self.peer.op = None
            self.peer.install = f"{self.exe} found, but cannot run here with the limits: {e}"

    def _setup(self) -> None:
        owns = _own_cgroups()
        if not owns:
            raise ValueError("a cgroup v2 host: crun would enable controllers in "
                             "ancestors of this process's cgroup, which are not ours")
        leaf = f"{_cgroup_parent(owns)}/nsfast-crun-{os.getpid()}/c"
        for base, own in owns:
            # the directories between our own cgroup and the leaf (itself
            # included) that crun makes: ours to remove
            path, made = own.rstrip("/"), []
            for part in leaf[len(own.rstrip("/")):].strip("/").split("/"):
                path += "/" + part
                if not os.path.isdir(base + path):
                    made.append(base + path)
            self.made += made
        self.dir = tempfile.mkdtemp(prefix="nsfast-crun-")
        rootfs = os.path.join(self.dir, "rootfs")
        for f in [self.program, *_libraries(self.program)]:
            dest = rootfs + f   # where the program and its loader look for it
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy2(f, dest)
        os.mkdir(os.path.join(rootfs, "dev"))   # crun makes the default devices there
        os.mkdir(os.path.join(self.dir, "state"))
        with open(os.path.join(self.dir, "config.json"), "w") as f:
            json.dump(oci_config([self.program], self.namespaces, self.limits, leaf), f)
        hide = _v2_with_controllers()
        self.helper = nsfast.spawn([sys.executable, "-c", HELPER] + ([hide] if hide else []),
                                   namespaces="mnt", stdin=nsfast.PIPE, stdout=nsfast.PIPE)
        self._prove_limits(leaf)

    def _prove_limits(self, leaf: str) -> None:
        """crun create (the process waits before its exec), then look at its
        cgroups and rlimits from here; RuntimeError with crun's error or
        the limit that is not there."""
        cid = f"{self.prefix}-check"
        pid_file = os.path.join(self.dir, "check.pid")
        rc, err = self._crun("create", "--bundle", self.dir, "--pid-file", pid_file, cid)
        if rc != 0:
            raise RuntimeError(f"crun create: {err}")
        try:
            with open(pid_file) as f:
                pid = int(f.read())
            with open(f"/proc/{pid}/cgroup") as f:
                where = {c: p for _, cs, p in (x.rstrip("\n").split(":", 2) for x in f)
                         for c in cs.split(",")}
            want = {"pids": ("pids.max", self.limits.pids),
                    "memory": ("memory.limit_in_bytes", self.limits.memory),
                    "cpu": ("cpu.cfs_quota_us", self.limits.cpu and
                            max(1000, round(self.limits.cpu * cgroups._PERIOD_US)))}
            for ctrl, (name, value) in want.items():
                if value is None:
                    continue
                if where.get(ctrl) != leaf:
                    raise RuntimeError(f"crun's container is in {ctrl} cgroup "
                                       f"{where.get(ctrl)}, not {leaf}")
                with open(os.path.join(CGROUP_ROOT, ctrl, leaf.lstrip("/"), name)) as f:
                    got = f.read().strip()
                if got != str(value):
                    raise RuntimeError(f"crun wrote {ctrl} {name} {got}, not {value}")
            with open(f"/proc/{pid}/limits") as f:
                nofile = next(x for x in f if x.startswith("Max open files")).split()[3]
            if self.limits.nofile is not None and nofile != str(self.limits.nofile):
                raise RuntimeError(f"crun set nofile {nofile}, not {self.limits.nofile}")
        finally:
            self._crun("delete", "-f", cid)

    def teardown(self) -> None:
        """Delete any container left, stop the helper, remove the cgroups
        crun made on the way and the bundle."""
        if self.helper is not None:
            state = os.path.join(self.dir, "state")
            for cid in os.listdir(state) if os.path.isdir(state) else ():
                self._crun("delete", "-f", cid)
            self.helper.stdin.close()
            self.helper.wait()
            self.helper.stdout.close()
            self.helper = None
        for path in reversed(self.made):
            cgroups._rmdir_killing(path)
        self.made = []
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
