"""Named network namespaces, stored exactly where and how `ip netns` stores them.

A named namespace is an nsfs file bind-mounted on /run/netns/NAME.  The run
directory is made a shared mount (a bind mount of itself first, if it is not a
mount point yet) under an flock, as iproute2 does, so `ip netns` and nsfast see
and delete each other's namespaces.  Creating one forks nothing: a helper
thread unshares CLONE_NEWNET, bind-mounts its /proc/thread-self/ns/net, and
ends (csrc/netns_thread.c).

Links, addresses and routes go through pyroute2 on a netlink socket opened
inside the namespace: see nsfast.links (iproute, veth, move, loopback_up),
re-exported here.

>>> nsfast.netns.add("blue")                                  # doctest: +SKIP
>>> nsfast.netns.exec("blue", ["ip", "link"]).wait()          # doctest: +SKIP
>>> nsfast.netns.remove("blue")                               # doctest: +SKIP
"""
from __future__ import annotations

import errno
import fcntl
import os
from typing import Any, Optional, Sequence

from . import _core
from .errors import os_error
from .flags import NsType
from .handles import Namespace, _check_pid
from .links import add_address, add_route, iproute, loopback_up, move, veth
from .mounts import Bind, Sysfs
from .process import Process

RUN_DIR = "/run/netns"
ETC_DIR = "/etc/netns"
NAME_MAX = 255

MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

__all__ = [
    "RUN_DIR", "add", "add_address", "add_route", "attach", "check_name", "exec", "identify",
    "iproute", "list", "list_ids", "loopback_up", "move", "open", "path_of", "pids", "remove",
    "veth",
]

_builtin_list = list
_builtin_open = open


def check_name(name: Any) -> str:
    """name, if it is a valid netns name; ValueError/TypeError before anything is touched.

    >>> nsfast.netns.check_name("blue")
    'blue'
    """
    if not isinstance(name, str):
        raise TypeError(f"a netns name is a str, not {type(name).__name__}")
    if name in ("", ".", ".."):
        raise ValueError(f"{name!r} is not a usable netns name")
    if "/" in name or "\0" in name:
        raise ValueError(f"a netns name cannot contain '/' or NUL: {name!r}")
    try:
        size = len(os.fsencode(name))
    except UnicodeEncodeError:
        raise ValueError(f"a netns name must be encodable to the filesystem: {name!r}") from None
    if size > NAME_MAX:
        raise ValueError(f"a netns name is at most {NAME_MAX} bytes, this one is {size}")
    return name


def path_of(name: str) -> str:
    """/run/netns/NAME after checking NAME.

    >>> nsfast.netns.path_of("blue")
    '/run/netns/blue'
    """
    return f"{RUN_DIR}/{check_name(name)}"


PRIVILEGED_HINT = ("named network namespaces live in /run/netns and need root "
                   "(CAP_SYS_ADMIN); unprivileged, use spawn(namespaces='user,net') "
                   "or a NetnsPool inside a user namespace")


def _privilege_hint(err: int) -> Optional[str]:
    return PRIVILEGED_HINT if err in (errno.EPERM, errno.EACCES) else None


def _prepare_run_dir() -> None:
    """Make RUN_DIR exist and be a shared mount, once, whoever else is racing.

    Without the lock, parallel creators each bind the directory on itself and
    the mounts stack without bound (iproute2 learnt this the hard way)."""
    try:
        os.mkdir(RUN_DIR, 0o755)
    except FileExistsError:
        pass
    except OSError as e:
        raise os_error(e.errno, RUN_DIR, _privilege_hint(e.errno),
                       what="creating the netns run directory") from None
    fd = os.open(RUN_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        target = RUN_DIR.encode()
        made_mount = False
        while True:
            try:
                _core.mount(None, target, b"none", MS_SHARED | MS_REC, None)
                return
            except OSError as e:
                # EINVAL: not a mount point yet; make it one, then retry once
                if e.errno != errno.EINVAL or made_mount:
                    raise os_error(e.errno, RUN_DIR, _privilege_hint(e.errno),
                                   what="making the run directory shared") from None
            try:
                _core.mount(target, target, b"none", MS_BIND | MS_REC, None)
            except OSError as e:
                raise os_error(e.errno, RUN_DIR, _privilege_hint(e.errno),
                               what="bind-mounting the run directory") from None
            made_mount = True
    finally:
        os.close(fd)  # releases the flock


def _create_mount_point(name: str) -> tuple[str, int]:
    """Create the empty file /run/netns/NAME; an fd on it that the bind goes through.

    O_EXCL never follows a symlink, so one planted at the name makes this
    EEXIST instead of creating (or mounting on) something elsewhere."""
    path = path_of(name)
    _prepare_run_dir()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0)
    except FileExistsError:
        raise os_error(errno.EEXIST, path, "a network namespace of that name already exists",
                       what="creating the namespace file") from None
    except OSError as e:
        raise os_error(e.errno, path, _privilege_hint(e.errno),
                       what="creating the namespace file") from None
    return path, fd


def _bind_or_undo(path: str, fd: int, bind) -> None:
    """Run bind(target) on the file behind fd; unlink the file if it fails."""
    try:
        # the magic link names the very file we created, even if the name is swapped
        bind(f"/proc/self/fd/{fd}".encode())
    except OSError as e:
        try:
            os.unlink(path)
        except OSError:
            pass
        raise os_error(e.errno, path, _privilege_hint(e.errno),
                       what="bind-mounting the namespace") from None
    finally:
        os.close(fd)


def add(name: str) -> None:
    """Create a network namespace named NAME, as `ip netns add NAME` does, without forking.

    >>> nsfast.netns.add("blue")  # doctest: +SKIP
    """
    path, fd = _create_mount_point(name)
    _bind_or_undo(path, fd, _core.netns_new_bound)


def attach(name: str, pid: Any) -> None:
    """Name the network namespace of a running process (`ip netns attach NAME PID`).

    pid is a pid, a Process, or a Namespace handle of a net namespace.

    >>> nsfast.netns.attach("container", 4242)  # doctest: +SKIP
    """
    check_name(name)
    if isinstance(pid, Namespace):
        if pid.kind != NsType.NET:
            raise ValueError(f"{pid!r} is not a net namespace")
        source = Namespace(os.dup(pid.fileno()), pid.path)
    else:
        if not isinstance(pid, int) and isinstance(getattr(pid, "pid", None), int):
            pid = pid.pid
        source = Namespace.of(_check_pid(pid), NsType.NET)
    with source:
        path, fd = _create_mount_point(name)
        src = f"/proc/self/fd/{source.fileno()}".encode()
        _bind_or_undo(path, fd, lambda target: _core.mount(src, target, b"none", MS_BIND, None))


def remove(name: str) -> None:
    """Delete a named network namespace (`ip netns del NAME`): detach the mount, unlink.

    The namespace itself ends when nothing else holds it.  FileNotFoundError
    when there is no such name.

    >>> nsfast.netns.remove("blue")  # doctest: +SKIP
    """
    path = path_of(name)
    try:
        _core.umount2(path.encode(), MNT_DETACH | UMOUNT_NOFOLLOW)
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise _missing(path) from None
        if e.errno != errno.EINVAL:  # EINVAL: not mounted, unlink what is there
            raise os_error(e.errno, path, _privilege_hint(e.errno),
                           what="unmounting the namespace") from None
    try:
        os.unlink(path)
    except FileNotFoundError:
        raise _missing(path) from None
    except OSError as e:
        raise os_error(e.errno, path, _privilege_hint(e.errno),
                       what="removing the namespace file") from None


def _missing(path: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, f"{os.strerror(errno.ENOENT)} (hint: no network "
                             f"namespace of that name; see nsfast netns list)", path)


def list() -> "_builtin_list[str]":  # noqa: A001 - the verb of `ip netns list`
    """The names under /run/netns, sorted (what `ip netns list` shows).

    >>> "blue" in nsfast.netns.list()  # doctest: +SKIP
    True
    """
    try:
        return sorted(os.listdir(RUN_DIR))
    except FileNotFoundError:
        return []


def open(name: str) -> Namespace:  # noqa: A001 - the handle of a named namespace
    """A Namespace handle on the named network namespace.

    >>> with nsfast.netns.open("blue") as ns:  # doctest: +SKIP
    ...     ns.kind
    <NsType.NET: 1073741824>
    """
    path = path_of(name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise _missing(path) from None
    except OSError as e:
        raise os_error(e.errno, path, "the name is a symlink, not a namespace"
                       if e.errno == errno.ELOOP else None) from None
    return Namespace(fd, path).require(NsType.NET)


def _identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def pids(name: str) -> "_builtin_list[int]":
    """Pids of the processes in the named namespace (`ip netns pids NAME`).

    >>> nsfast.netns.pids("blue")  # doctest: +SKIP
    [4242]
    """
    with open(name) as ns:
        want = ns.id
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if _identity(f"/proc/{entry}/ns/net") == want:
                found.append(int(entry))
        except OSError:
            continue  # gone, or a kernel thread we may not look into
    return sorted(found)


def identify(pid: int | None = None) -> "_builtin_list[str]":
    """The names under which pid's network namespace is known (`ip netns identify PID`).

    >>> nsfast.netns.identify(os.getpid())  # doctest: +SKIP
    []
    """
    pid = os.getpid() if pid is None else _check_pid(pid)
    try:
        want = _identity(f"/proc/{pid}/ns/net")
    except FileNotFoundError:
        raise ProcessLookupError(errno.ESRCH, f"no process {pid}", f"/proc/{pid}") from None
    names = []
    for name in list():
        try:
            if _identity(f"{RUN_DIR}/{name}") == want:
                names.append(name)
        except OSError:
            continue
    return names


def etc_binds(name: str) -> "_builtin_list[Bind]":
    """The /etc/netns/NAME/X -> /etc/X binds that `ip netns exec` makes (X must exist).

    >>> nsfast.netns.etc_binds("blue")  # doctest: +SKIP
    [Bind(src='/etc/netns/blue/resolv.conf', dst='/etc/resolv.conf', readonly=False, recursive=True)]
    """
    src_dir = f"{ETC_DIR}/{check_name(name)}"
    try:
        entries = sorted(os.listdir(src_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [Bind(f"{src_dir}/{e}", f"/etc/{e}") for e in entries
            if os.path.lexists(f"/etc/{e}")]


def exec(name: str, argv: Sequence, **spawn_options: Any) -> Process:  # noqa: A001
    """Run argv in the named namespace as `ip netns exec NAME argv` does: in a new
    mount namespace (slave propagation) with a fresh /sys for that netns and the
    files of /etc/netns/NAME bound over /etc.  Other options go to nsfast.spawn.

    >>> nsfast.netns.exec("blue", ["ip", "addr"], stdout=nsfast.PIPE).communicate()  # doctest: +SKIP
    """
    from .spawn import spawn
    check_name(name)
    new = NsType.parse(spawn_options.pop("namespaces", None))
    if new & NsType.NET:
        raise ValueError("exec joins the named namespace; namespaces= cannot ask for a new net")
    for key in ("netns", "join"):
        if spawn_options.get(key) is not None:
            raise ValueError(f"exec chooses the net namespace itself; {key}= is not allowed")
    spawn_options.pop("netns", None)
    mounts = [Sysfs(), *etc_binds(name), *spawn_options.pop("mounts", ())]
    spawn_options.setdefault("propagation", "slave")
    with open(name) as ns:
        return spawn(argv, namespaces=new | NsType.MNT, netns=ns, mounts=mounts,
                     **spawn_options)


def list_ids() -> "dict[str, int | None]":
    """Each name under /run/netns with the netnsid the calling thread's namespace has
    assigned to it (None: no id), as `ip netns list` prints them.

    >>> nsfast.netns.list_ids()  # doctest: +SKIP
    {'blue': 0, 'red': None}
    """
    names = list()
    ids: dict = {name: None for name in names}
    if not names:
        return ids
    with iproute() as ipr:
        for name in names:
            try:
                ns = open(name)
            except (OSError, ValueError):
                continue
            with ns:
                try:
                    reply = ipr.get_netnsid(fd=ns.fileno())
                except Exception:  # pyroute2 NetlinkError: the kernel has no id for it
                    continue
            nsid = reply.get("nsid") if isinstance(reply, dict) else None
            if nsid is not None and 0 <= nsid < 0x7FFFFFFF:
                ids[name] = nsid
    return ids
