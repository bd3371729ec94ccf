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

>>> nsfast.netns.add(new_name)                                     # ip netns add NAME
>>> p = nsfast.netns.exec(new_name, ["ip", "-o", "link"], stdout=nsfast.PIPE)
>>> p.communicate()[0]                                            # a new netns: lo, DOWN
b'1: lo: <LOOPBACK> ...state DOWN...'
>>> nsfast.netns.remove(new_name)                                  # ip netns del NAME
"""
from __future__ import annotations

import errno
import fcntl
import os
import stat
from typing import Any, Optional

from . import _core
from .argtypes import Argv
from .errors import os_error
from .flags import NsType
from .handles import _check_pid, process_gone
from .kernel import MNT_DETACH, MS_BIND, MS_REC, MS_SHARED, UMOUNT_NOFOLLOW
from .links import add_address, add_route, iproute, loopback_up, move, veth
from .mounts import Bind, Sysfs
from .netns_names import (NAME_MAX, PRIVILEGED_HINT, RUN_DIR, check_name, path_of,
                          missing as _missing, open_plain as _open_plain,
                          privilege_hint as _privilege_hint)
from .netns_names import open_named as open  # noqa: A001 - the handle of a named namespace
from .process import Process
from .spawn import spawn
from .targets import open_namespace

ETC_DIR = "/etc/netns"


__all__ = [
    "RUN_DIR", "add", "add_address", "add_route", "attach", "check_name", "exec", "identify",
    "iproute", "list", "list_ids", "loopback_up", "move", "open", "path_of", "pids", "remove",
    "stale", "veth",
]

_builtin_list = list
_builtin_open = open


def _lock_run_dir(mode: int) -> Optional[int]:
    """An fd on RUN_DIR holding its flock in mode (LOCK_EX or LOCK_SH); None when
    there is no run directory.  Closing the fd releases the lock."""
    try:
        fd = os.open(RUN_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise os_error(e.errno, RUN_DIR, _privilege_hint(e.errno),
                       what="opening the netns run directory") from None
    try:
        fcntl.flock(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _prepare_run_dir() -> int:
    """Make RUN_DIR exist and be a shared mount, whoever else is racing; an fd
    on it that still holds the exclusive flock (the caller closes it).

    Without the lock, parallel creators each bind the directory on itself and
    the mounts stack without bound (iproute2 learnt this the hard way)."""
    try:
        os.mkdir(RUN_DIR, 0o755)
    except FileExistsError:
        pass
    except OSError as e:
        raise os_error(e.errno, RUN_DIR, _privilege_hint(e.errno),
                       what="creating the netns run directory") from None
    fd = _lock_run_dir(fcntl.LOCK_EX)
    if fd is None:  # removed under us: report it as the mkdir would have
        raise os_error(errno.ENOENT, RUN_DIR, what="opening the netns run directory")
    try:
        target = RUN_DIR.encode()
        made_mount = False
        while True:
            try:
                _core.mount(None, target, b"none", MS_SHARED | MS_REC, None)
                return fd
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
    except BaseException:
        os.close(fd)
        raise


def _same_file(fd: int, path: str) -> bool:
    """Whether path (not followed) still names the file fd is open on."""
    try:
        st, now = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)


def _is_stale(path: str, fd: int) -> bool:
    """Whether the file fd (opened at path) is what a killed add leaves: an empty
    regular file, no namespace mounted on it, and no add holding its flock.

    Call it with the run directory's flock held: an nsfast add takes the file's
    flock before it lets go of the directory's, so the two together tell that
    no nsfast add is between creating the file and binding the namespace."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size != 0:
        return False
    try:
        _core.ns_get_nstype(fd)
        return False  # a namespace is mounted there
    except OSError:
        pass
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # an add is binding it right now
    return _same_file(fd, path)


def _remove_if_stale(path: str) -> bool:
    """Unlink path if _is_stale says so (the run directory's flock held)."""
    try:
        fd = _open_plain(path)
    except OSError:
        return False  # gone, or a symlink: the user's, not ours to remove
    try:
        if not _is_stale(path, fd):
            return False
        os.unlink(path)
        return True
    finally:
        os.close(fd)


def _create_file(path: str) -> int:
    """O_EXCL-create path; an fd on it holding the file's flock.  An empty file
    that a killed add left behind (see _is_stale) is removed first.  The run
    directory's flock must be held."""
    flags = os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for first in (True, False):
        try:
            fd = os.open(path, flags, 0)
        except FileExistsError:
            if first and _remove_if_stale(path):
                continue
            raise os_error(errno.EEXIST, path, "a network namespace of that name already exists",
                           what="creating the namespace file") from None
        except OSError as e:
            raise os_error(e.errno, path, _privilege_hint(e.errno),
                           what="creating the namespace file") from None
        try:
            # taken before the directory's flock is let go: a later add sees it held
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        return fd
    raise AssertionError("unreachable")


def _create_mount_point(name: str | bytes) -> tuple[str, int]:
    """Create the empty file /run/netns/NAME; an fd on it that the bind goes through,
    holding the file's flock until the caller closes it.

    O_EXCL never follows a symlink, so one planted at the name makes this
    EEXIST instead of creating (or mounting on) something elsewhere."""
    path = path_of(name)
    lock = _prepare_run_dir()
    try:
        return path, _create_file(path)
    finally:
        os.close(lock)


def _bind_or_undo(path: str, fd: int, bind) -> None:
    """Run bind(target) on the file behind fd; unlink the file if it fails."""
    try:
        # the magic link names the very file we created, even if the name is swapped
        bind(f"/proc/self/fd/{fd}".encode())
    except OSError as e:
        if _same_file(fd, path):  # not a file someone made after removing ours
            try:
                os.unlink(path)
            except OSError:
                pass
        raise os_error(e.errno, path, _privilege_hint(e.errno),
                       what="bind-mounting the namespace") from None
    finally:
        os.close(fd)


def add(name: str | bytes) -> None:
    """Create a network namespace named NAME, as `ip netns add NAME` does, without forking.

    An add that is killed between creating /run/netns/NAME and binding the
    namespace on it leaves an empty file (`ip netns add` does too).  The next
    add of that name removes such a file and goes on, but only when no
    namespace is mounted there and no nsfast add is in progress on it (an add
    holds the file's flock until the bind is done).  An `ip netns add` holds no
    such lock: one racing an nsfast add of the same name can lose its file.
    list() shows such a name, as `ip netns list` does; stale() names them and
    remove() deletes them.

    >>> nsfast.netns.add(new_name)
    >>> new_name in nsfast.netns.list()
    True
    >>> nsfast.netns.remove(new_name)
    """
    path, fd = _create_mount_point(name)
    _bind_or_undo(path, fd, _core.netns_new_bound)


def attach(name: str | bytes, pid: Any) -> None:
    """Name the network namespace of a running process (`ip netns attach NAME PID`).

    pid is any namespace target (nsfast.targets): a pid, a Process, a
    Namespace handle or path of a net namespace, another name...

    >>> nsfast.netns.attach(new_name, pid)
    >>> nsfast.netns.identify(pid) == [new_name]
    True
    >>> nsfast.netns.remove(new_name)
    """
    check_name(name)
    with open_namespace(pid, NsType.NET) as source:
        path, fd = _create_mount_point(name)
        src = f"/proc/self/fd/{source.fileno()}".encode()
        _bind_or_undo(path, fd, lambda target: _core.mount(src, target, b"none", MS_BIND, None))


def remove(name: str | bytes) -> None:
    """Delete a named network namespace (`ip netns del NAME`): detach the mount, unlink.

    The namespace itself ends when nothing else holds it.  FileNotFoundError
    when there is no such name.  What is not a mount is unlinked as it is, as
    `ip netns del` does: an empty file left by a killed add, or a symlink (the
    docker recipe `ln -s /proc/PID/ns/net /run/netns/NAME`), whose target is
    left alone, never unmounted.

    >>> nsfast.netns.remove(netns_name)
    >>> netns_name in nsfast.netns.list()
    False
    """
    path = path_of(name)
    try:
        _core.umount2(os.fsencode(path), MNT_DETACH | UMOUNT_NOFOLLOW)
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


def list() -> "_builtin_list[str]":  # noqa: A001 - the verb of `ip netns list`
    """The names under /run/netns, sorted (what `ip netns list` shows), decoded as
    os.listdir decodes them (a name that is not UTF-8 keeps its bytes as
    surrogates: os.fsencode gives them back).  Like `ip netns list` it shows
    every entry, also a symlink and an empty file left by a killed add (see
    stale()).

    >>> netns_name in nsfast.netns.list()
    True
    """
    try:
        return sorted(os.listdir(RUN_DIR))
    except FileNotFoundError:
        return []


def stale() -> "_builtin_list[str]":
    """The names under /run/netns that a killed add left as an empty file: no
    namespace is mounted there and no add is in progress on it.  The next add
    of such a name removes the file; remove() deletes it now.

    >>> path = nsfast.netns.path_of(new_name)
    >>> os.close(os.open(path, os.O_CREAT | os.O_EXCL, 0))  # what a killed add leaves
    >>> new_name in nsfast.netns.stale()
    True
    >>> nsfast.netns.remove(new_name)
    """
    lock = _lock_run_dir(fcntl.LOCK_SH)  # no add is between its create and its flock
    if lock is None:
        return []
    try:
        found = []
        for name in list():
            path = f"{RUN_DIR}/{name}"
            try:
                fd = _open_plain(path)
            except OSError:
                continue  # gone, or a symlink
            try:
                if _is_stale(path, fd):
                    found.append(name)
            finally:
                os.close(fd)  # releases the flock _is_stale took
        return found
    finally:
        os.close(lock)


def _identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def pids(name: str | bytes) -> "_builtin_list[int]":
    """Pids of the processes in the named namespace (`ip netns pids NAME`).

    >>> with nsfast.netns.exec(netns_name, ["sleep", "60"]) as p:
    ...     nsfast.netns.pids(netns_name) == [p.pid]
    True
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

    >>> with nsfast.netns.exec(netns_name, ["sleep", "60"]) as p:
    ...     nsfast.netns.identify(p.pid) == [netns_name]
    True
    """
    pid = os.getpid() if pid is None else _check_pid(pid)
    try:
        want = _identity(f"/proc/{pid}/ns/net")
    except FileNotFoundError:
        raise process_gone(pid) from None
    names = []
    for name in list():
        try:
            if _identity(f"{RUN_DIR}/{name}") == want:
                names.append(name)
        except OSError:
            continue
    return names


def etc_binds(name: str | bytes) -> "_builtin_list[Bind]":
    """The /etc/netns/NAME/X -> /etc/X binds that `ip netns exec` makes (X must exist).

    With /etc/netns/NAME/resolv.conf, that is
    [Bind(src='/etc/netns/NAME/resolv.conf', dst='/etc/resolv.conf', readonly=False)];
    without /etc/netns/NAME, nothing:

    >>> nsfast.netns.etc_binds(netns_name)
    []
    """
    src_dir = f"{ETC_DIR}/{check_name(name)}"
    try:
        entries = sorted(os.listdir(src_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [Bind(f"{src_dir}/{e}", f"/etc/{e}") for e in entries
            if os.path.lexists(f"/etc/{e}")]


def exec(name: str | bytes, argv: Argv, **spawn_options: Any) -> Process:  # noqa: A001
    """Run argv in the named namespace as `ip netns exec NAME argv` does: in a new
    mount namespace (slave propagation) with a fresh /sys for that netns and the
    files of /etc/netns/NAME bound over /etc.  Other options go to nsfast.spawn.

    >>> nsfast.netns.exec(netns_name, ["ip", "-o", "link"], stdout=nsfast.PIPE).communicate()
    (b'1: lo: <LOOPBACK> ...', None)
    """
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

    >>> nsfast.netns.list_ids()[netns_name] is None  # no id until something asks for one
    True
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
