"""A template mount namespace: a sandbox's root tree, made once.

A new mount namespace is a copy of its creator's whole mount table, so a
confined root made from the host's costs in proportion to the host's mounts,
three times over (the copy, the recursive bind of /, the detach of the old
root after pivot_root), and its end costs as much again.  A template holds
only the sandbox's tree: the root bound read-only without the mounts a
sandbox has no use for, a read-only /dev with the device nodes, and the
masks outside /proc.  A spawn with template= joins it (as the caller, before
any user namespace: the template is the caller's) and unshares from there,
so the kernel copies the small table; the mounts that are each sandbox's own
(proc, devpts, /dev/shm, /tmp, the caller's) follow in the child, and the
user namespace comes last (plan.SpawnPlan's user_last).

The template is made in a throwaway thread of the caller, which alone
enters the new mount namespace and takes it along when it ends; an open
nsfs fd keeps the namespace.
"""
from __future__ import annotations

import errno
import os
import threading
from typing import Optional

from . import _core
from .confine import DEVICES, DEV_LINKS, MASKED_PATHS, _paths, staging_dir
from .errors import os_error
from .kernel import (AT_RECURSIVE, CLONE_NEWNS, MNT_DETACH, MOUNT_ATTR_RDONLY, MS_BIND,
                     MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT)
from .mounts import parse_mountinfo

# mounts a sandbox replaces with its own (under these) stay out of the
# template; of the rest only the operating system's tree stays: filesystems
# on a block device (/usr, /boot, /home ...) and /sys itself.  The host's
# runtime state (tmpfs), its kernel interfaces, other runtimes' container
# roots (overlay) and network filesystems are left out: a sandbox binds
# what it needs by name (the usual path).
REPLACED = (b"/proc", b"/dev", b"/tmp")
KEPT_PSEUDO = {b"/sys": "sysfs"}
# mount points each sandbox mounts on: they must exist in the read-only tree
SANDBOX_POINTS = (b"/proc", b"/tmp", b"/dev/pts", b"/dev/shm")


class MountTemplate:
    """A mount namespace whose root is a sandbox's root tree, without proc,
    /tmp, devpts and /dev/shm (each sandbox mounts its own).  Root only.

    root: a directory to use as the root, or None for the host's /.
    readonly: the tree read-only (it always is below /dev).
    minimal_dev: a read-only tmpfs /dev with the device nodes of
    confine.DEVICES bound in, its links, and the pts and shm mount points.
    masked: paths outside /proc to hide (an empty read-only tmpfs over a
    directory, /dev/null over a file).

    >>> t = MountTemplate()
    >>> p = nsfast.spawn(["cat", "/proc/self/mounts"], namespaces="mnt,pid",
    ...                  template=t, mount_proc=True, stdout=nsfast.PIPE)
    >>> points = [line.split()[1] for line in p.communicate()[0].decode().splitlines()]
    >>> points[0], "/dev" in points, "/sys/fs/cgroup" in points
    ('/', True, False)
    >>> t.close()
    """

    def __init__(self, root: Optional[bytes] = None, readonly: bool = True,
                 minimal_dev: bool = True, masked: tuple = ()) -> None:
        if os.geteuid() != 0:
            raise PermissionError(errno.EPERM, "a mount template needs root (it is a mount "
                                  "namespace of the caller's, joined before any other)")
        if root is not None and not os.path.isdir(root):
            raise os_error(errno.ENOTDIR, os.fsdecode(root), what="a template's root")
        self.root = root
        self.fd = -1
        made: dict = {}
        worker = threading.Thread(target=self._make, args=(readonly, minimal_dev,
                                                           tuple(masked), made),
                                  name="nsfast-template")
        worker.start()
        worker.join()
        if "error" in made:
            if "fd" in made:
                os.close(made["fd"])
            raise made["error"]
        self.fd = made["fd"]
        self.mounts = made["mounts"]
        # an empty directory on a read-only superblock: the first masked one
        self.empty_dir: Optional[bytes] = made.get("empty")

    def _make(self, readonly: bool, minimal_dev: bool, masked: tuple, out: dict) -> None:
        try:
            _core.unshare(CLONE_NEWNS)   # this thread only: its fs struct goes along
            _core.mount(None, b"/", None, MS_REC | MS_PRIVATE, None)
            stage = staging_dir()
            _core.mount(self.root or b"/", stage, None, MS_BIND | MS_REC, None)
            self._leave_out(stage, keep_dev=not minimal_dev)
            if readonly:
                _core.mount_setattr(stage, AT_RECURSIVE, MOUNT_ATTR_RDONLY, 0, 0)
            if minimal_dev:
                _make_dev(stage + b"/dev")
            for path in masked:
                if _mask(stage, path) and "empty" not in out:
                    out["empty"] = path
            missing = [p for p in SANDBOX_POINTS if (minimal_dev or not p.startswith(b"/dev/"))
                       and not os.path.isdir(stage + p)]
            if missing:
                raise os_error(errno.ENOENT, os.fsdecode(stage + missing[0]),
                               "the root needs this directory as a mount point",
                               what="a template's root")
            # opened while /proc is in view; the new root has none
            out["fd"] = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            with open("/proc/thread-self/mountinfo", "rb") as f:
                out["mounts"] = sum(1 for m in parse_mountinfo(f.read())
                                    if (os.fsencode(m.mount_point) + b"/").startswith(
                                        stage + b"/"))
            os.chdir(stage)
            _core.pivot_root(b".", b".")
            _core.umount2(b".", MNT_DETACH)
            os.chdir("/")
        except BaseException as e:   # raised in the caller's thread
            out["error"] = e

    @staticmethod
    def _leave_out(stage: bytes, keep_dev: bool) -> None:
        """Detach the mounts below stage that a sandbox has no use for (the
        topmost of each subtree: a detach takes what is below it along);
        keep_dev: the host's /dev as it is (minimal_dev off)."""
        replaced = tuple(r for r in REPLACED if not (keep_dev and r == b"/dev"))
        with open("/proc/thread-self/mountinfo", "rb") as f:
            table = parse_mountinfo(f.read())
        gone: list = []
        for m in sorted(table, key=lambda m: len(os.fsencode(m.mount_point))):
            point = os.fsencode(m.mount_point)
            if not point.startswith(stage + b"/"):
                continue
            inside = point[len(stage):]
            if any(inside == g or inside.startswith(g + b"/") for g in gone):
                continue
            if keep_dev and (inside == b"/dev" or inside.startswith(b"/dev/")):
                continue
            os_tree = m.source.startswith("/dev/") or KEPT_PSEUDO.get(inside) == m.fs_type
            if not os_tree or any(inside == r or inside.startswith(r + b"/") for r in replaced):
                _core.umount2(point, MNT_DETACH)
                gone.append(inside)

    def close(self) -> None:
        """Let the namespace go (sandboxes started from it keep their copies)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.close()


def _make_dev(dev: bytes) -> None:
    """A tmpfs /dev with the host's device nodes bound in and the links,
    then read-only: the sandboxes that copy it share it."""
    _core.mount(b"tmpfs", dev, b"tmpfs", MS_NOSUID | MS_NOEXEC, b"mode=0755,size=64k")
    for name in DEVICES:
        node = dev + b"/" + name.encode()
        os.close(os.open(node, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        _core.mount(b"/dev/" + name.encode(), node, None, MS_BIND, None)
    for d in (b"/pts", b"/shm"):
        os.mkdir(dev + d, 0o755)
    for target, name in DEV_LINKS:
        os.symlink(target.encode(), dev + b"/" + name.encode())
    _core.mount(None, dev, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, None)


def _mask(stage: bytes, path: bytes) -> bool:
    """Hide path: an empty read-only tmpfs over a directory (True), /dev/null
    over a file; nothing when the tree has no such path."""
    target = stage + path
    if not os.path.lexists(target):
        return False
    if os.path.isdir(target):
        _core.mount(b"tmpfs", target, b"tmpfs", MS_NOSUID | MS_NOEXEC | MS_RDONLY, b"mode=0555")
        return True
    _core.mount(b"/dev/null", target, None, MS_BIND, None)
    return False


def static_masks(mask_paths) -> tuple:
    """The masked paths a template holds: those outside /proc (each sandbox
    has a fresh proc and masks its own)."""
    return tuple(p for p in _paths(mask_paths, MASKED_PATHS, "mask_paths")
                 if not (p == b"/proc" or p.startswith(b"/proc/")))


_shared: dict = {}
_shared_lock = threading.Lock()


def shared(root: Optional[bytes], readonly: bool, minimal_dev: bool,
           masked: tuple) -> MountTemplate:
    """The process's template for these settings, made at the first call.

    >>> t = shared(None, True, True, ())
    >>> t is shared(None, True, True, ())
    True
    >>> t.close()   # shared() makes a new one after this
    """
    # a template is a copy of the caller's view: a new one in another mount ns
    view = os.stat("/proc/thread-self/ns/mnt").st_ino
    key = (view, root, bool(readonly), bool(minimal_dev), tuple(masked))
    with _shared_lock:
        t = _shared.get(key)
        if t is None or t.fd < 0:
            t = _shared[key] = MountTemplate(root, readonly, minimal_dev, masked)
        return t
