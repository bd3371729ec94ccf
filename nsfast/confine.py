"""The confined root: the mount steps of spawn's confinement options.

readonly_root, mask_paths, readonly_paths, minimal_dev and tmp_size build a
new root and enter it with pivot_root, in this order (kernel rules in
/work/shared/pitfalls.md):

1. the root (the host's / or root=) bound on the staging directory,
   read-only with readonly_root (mount_setattr, recursive);
2. a fresh proc in it, while the host's full proc is still visible (in a
   user namespace the kernel refuses a new proc otherwise);
3. the masked paths: /dev/null bound over a file, an empty read-only tmpfs
   over a directory; then the read-only paths, each a read-only bind of
   itself;
4. a minimal /dev: a tmpfs with binds of the host's device nodes (mknod is
   refused in a user namespace), a new devpts, shm and the fd links;
5. /tmp, a sized tmpfs; then the caller's own mounts, their targets inside
   the new root;
6. pivot_root, which detaches the host's tree.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import Optional, Sequence, Union

from .mounts import (_BIND, _FILE, _FS, _MKDIR, _PIVOT, MS_NODEV, MS_NOSUID, MS_REC,
                     MS_NOEXEC, _PROC, _SYMLINK, _TMPFS, absolute)

_PIVOT_MOUNTED = 1                    # NSF_PIVOT_MOUNTED

# what OCI runtimes (runc, crun) mask and keep read-only by default
MASKED_PATHS = ("/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/sys/devices/virtual/powercap")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"),
             ("/proc/self/fd/1", "stdout"), ("/proc/self/fd/2", "stderr"),
             ("pts/ptmx", "ptmx"))
# the host's / is bound on a directory of nsfast's own when no root= is
# given: what it covers (in the child's mount namespace only) must not be a
# source the caller binds from, as /tmp would be
_staging: dict = {}


def staging_dir() -> bytes:
    """An empty directory of this user's, made once: /run/nsfast/root as
    root, else nsfast-root-UID in $XDG_RUNTIME_DIR or the temp directory.
    Checked to be a real directory owned by us (not a link someone else
    planted in a shared /tmp), since the child resolves it at each step."""
    uid = os.geteuid()
    path = _staging.get(uid)
    if path is not None:
        return path
    if uid == 0:
        name = "/run/nsfast/root"
    else:
        import tempfile
        base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        name = os.path.join(base, f"nsfast-root-{uid}")
    os.makedirs(os.path.dirname(name), mode=0o755, exist_ok=True)
    try:
        os.mkdir(name, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(name)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
        raise OSError(errno.EEXIST, f"{name} is not a directory of uid {uid}: nsfast stages "
                      f"the sandbox's root there (remove it)")
    _staging[uid] = path = os.fsencode(name)
    return path


def _paths(value: Union[bool, Sequence], default: tuple, what: str) -> tuple:
    if value is True:
        return tuple(p.encode() for p in default)
    if not value:
        return ()
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{what} is True or a list of paths, not one path")
    return tuple(absolute(p, what) for p in value)


def wanted(readonly_root, mask_paths, readonly_paths, minimal_dev, tmp_size,
           overlay=None) -> bool:
    """Whether any confinement option asks for a confined root."""
    return bool(readonly_root or mask_paths or readonly_paths or minimal_dev
                or tmp_size is not None or overlay)


OVERLAY_SIZE = 64 << 20


def _overlay_steps(lower: bytes, size: int) -> tuple[bytes, list]:
    """(the merged root, its steps): a tmpfs of `size` on the staging
    directory holds the upper layer and the merged mount point; lower is
    the read-only layer (only its own filesystem: overlayfs does not cross
    the mounts below it)."""
    from .mounts import _tmpfs_options
    if b"," in lower or b":" in lower or b"\\" in lower:
        raise ValueError("an overlay's lower directory cannot hold ',', ':' or '\\'")
    stage = staging_dir()
    merged = stage + b"/root"
    steps = [(_TMPFS, False, MS_NOSUID | MS_NODEV, b"tmpfs", stage, _tmpfs_options(size, 0o755))]
    for d in (b"/upper", b"/work", b"/root"):
        steps.append((_MKDIR, False, 0, None, stage + d, None))
    # userxattr: the only xattrs an overlay in a user namespace may write
    data = b"lowerdir=" + lower + b",upperdir=" + stage + b"/upper,workdir=" + stage + \
        b"/work,userxattr"
    steps.append((_FS, False, MS_NOSUID, b"overlay", merged, data))
    return merged, steps


def root_steps(root: Optional[bytes], readonly_root: bool, mount_proc: bool,
               mask_paths, readonly_paths, minimal_dev: bool, tmp_size: Optional[int],
               user_steps: Sequence[tuple], overlay: Union[None, bool, int] = None) -> list:
    """The mount steps of a confined root, ending with its pivot_root.

    root: root= (bytes) or None for the host's /.  user_steps: the caller's
    mounts (as_steps() tuples), whose targets are paths inside the new root.
    Paths missing from the new root (as seen now, from the parent) are
    skipped: a kernel without /proc/acpi has nothing to mask there."""
    masked = _paths(mask_paths, MASKED_PATHS, "mask_paths")
    ro = _paths(readonly_paths, READONLY_PATHS, "readonly_paths")
    if (masked or ro) and not mount_proc:
        raise ValueError("mask_paths and readonly_paths need mount_proc=True "
                         "(they confine a fresh /proc)")
    new = (root.rstrip(b"/") or b"/") if root is not None else staging_dir()
    seen_from_parent = root.rstrip(b"/") if root is not None else b""
    if overlay:
        if root is None:
            # overlayfs clones its lower layer's mount, which the kernel
            # refuses in a user namespace when locked mounts lie below it, as
            # they do below the host's / ("failed to clone lowerpath")
            raise ValueError("overlay needs root=DIR (a tree without mounts below it): "
                             "the host's / has mounts below it that a user namespace "
                             "cannot leave out")
        size = OVERLAY_SIZE if overlay is True else overlay
        new, steps = _overlay_steps(root, size)
    else:
        steps = [(_BIND, bool(readonly_root), MS_REC, root if root is not None else b"/",
                  new, None)]

    def inside(path: bytes) -> bytes:
        return new + path

    def as_seen(path: bytes) -> bytes:
        """Where the parent sees a path of the new root now: /proc is the
        fresh proc of this same kernel, anything else is in the root."""
        return path if path.startswith(b"/proc/") else seen_from_parent + path

    steps += sandbox_steps(inside, as_seen, mount_proc, masked, ro, minimal_dev, tmp_size,
                           user_steps, with_dev_tree=True)
    # the first bind made `new` a mount point: no second copy of its tree
    steps.append((_PIVOT, False, _PIVOT_MOUNTED, new, None, None))
    return steps


def template_steps(mount_proc: bool, mask_paths, readonly_paths, minimal_dev: bool,
                   tmp_size: Optional[int], user_steps: Sequence[tuple],
                   empty_dir: Optional[bytes] = None) -> list:
    """The mount steps of a sandbox started from a template.MountTemplate,
    which holds the root, /dev's nodes and the masks outside /proc: the
    rest, each sandbox's own, on top.  empty_dir: an empty directory of the
    template on a read-only superblock, bound over the masked directories
    (no new filesystem each)."""
    masked = tuple(p for p in _paths(mask_paths, MASKED_PATHS, "mask_paths")
                   if p.startswith(b"/proc/"))
    ro = _paths(readonly_paths, READONLY_PATHS, "readonly_paths")
    if (masked or ro) and not mount_proc:
        raise ValueError("mask_paths and readonly_paths need mount_proc=True "
                         "(they confine a fresh /proc)")
    return sandbox_steps(lambda p: p, lambda p: p, mount_proc, masked, ro, minimal_dev,
                         tmp_size, user_steps, with_dev_tree=False, empty_dir=empty_dir)


def sandbox_steps(inside, as_seen, mount_proc: bool, masked: tuple, ro: tuple,
                  minimal_dev: bool, tmp_size: Optional[int], user_steps: Sequence[tuple],
                  with_dev_tree: bool, empty_dir: Optional[bytes] = None) -> list:
    """proc, its masks and read-only paths, /dev (its tree, or only devpts and
    shm on a template's), /tmp and the caller's mounts, targets inside the
    new root (inside(); as_seen(): where the parent sees a path now)."""
    from .mounts import _tmpfs_options
    size_opts = _tmpfs_options(tmp_size, 0o1777) if tmp_size is not None else None
    steps: list = []
    if mount_proc:
        steps.append((_PROC, False, 0, b"proc", inside(b"/proc"), None))
    for p in masked:
        seen = as_seen(p)
        if not os.path.lexists(seen):
            continue
        if os.path.isdir(seen) and empty_dir is not None:
            steps.append((_BIND, False, 0, empty_dir, inside(p), None))
        elif os.path.isdir(seen):
            steps.append((_TMPFS, True, MS_NOSUID | MS_NODEV | MS_NOEXEC, b"tmpfs", inside(p),
                          b"mode=0555"))
        else:
            steps.append((_BIND, False, 0, b"/dev/null", inside(p), None))
    for p in ro:
        if os.path.lexists(as_seen(p)):
            steps.append((_BIND, True, MS_REC, inside(p), inside(p), None))
    if minimal_dev:
        steps.extend(_dev_steps(inside(b"/dev"), with_dev_tree))
    if tmp_size is not None:
        steps.append((_TMPFS, False, MS_NOSUID | MS_NODEV, b"tmpfs", inside(b"/tmp"), size_opts))
    for s in user_steps:
        kind, readonly, flags, src, dst, data = s
        if dst is None:
            raise ValueError("a confined root takes Bind, Tmpfs, Proc, Mkdir ... mounts; "
                             "it makes its own pivot_root")
        if kind in (_BIND, _TMPFS, _PROC):
            # the mount point, made if missing: a directory, or a file for a
            # file's bind (an existing one stays; on the read-only root a
            # missing one is EROFS)
            file_bind = kind == _BIND and src is not None and not os.path.isdir(src)
            steps.append((_FILE if file_bind else _MKDIR, False, 0, None, inside(dst), None))
        steps.append((kind, readonly, flags, src, inside(dst), data))
    return steps


def _dev_steps(dev: bytes, with_tree: bool) -> list:
    """A tmpfs /dev with the host's device nodes bound in (with_tree; a
    template has them), a new devpts (its ptmx for /dev/ptmx), /dev/shm and
    the fd links."""
    steps: list = []
    if with_tree:
        steps.append((_TMPFS, False, MS_NOSUID | MS_NOEXEC, b"tmpfs", dev,
                      b"mode=0755,size=65536k"))
        for name in DEVICES:
            target = dev + b"/" + name.encode()
            steps.append((_FILE, False, 0, None, target, None))
            steps.append((_BIND, False, 0, b"/dev/" + name.encode(), target, None))
        steps.append((_MKDIR, False, 0, None, dev + b"/pts", None))
    # newinstance: the payload's ptys are its own; no gid=5: the tty group is
    # rarely mapped in the sandbox (EINVAL then)
    steps.append((_FS, False, MS_NOSUID | MS_NOEXEC, b"devpts", dev + b"/pts",
                  b"newinstance,ptmxmode=0666,mode=0620"))
    if with_tree:
        steps.append((_MKDIR, False, 0, None, dev + b"/shm", None))
    steps.append((_TMPFS, False, MS_NOSUID | MS_NODEV, b"tmpfs", dev + b"/shm", b"mode=1777"))
    if with_tree:
        for target, name in DEV_LINKS:
            steps.append((_SYMLINK, False, 0, target.encode(), dev + b"/" + name.encode(), None))
    return steps
