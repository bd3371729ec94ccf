"""Which namespaces exist and who is in them: one process's namespaces, the
system-wide listing that lsns(8) gives, and the processes outside init's.

Everything is read from /proc (the ns links of each process, its fds, and
/proc/self/mountinfo for nsfs bind mounts) plus the nsfs ioctls for parents
and owners.  Processes that vanish or that the caller may not inspect are
skipped, as lsns skips them.
"""
from __future__ import annotations

import errno
import os
import pwd
import struct
from collections import namedtuple
from typing import Optional

from . import _core
from .errors import PTRACE_HINT, os_error
from .flags import KindsLike, LSNS_ORDER, NsType, from_proc_name
from .handles import _check_pid
from .kernel import (NETNSA_FD, NETNSA_NSID, NLM_F_REQUEST, NLMSG_ERROR, NLMSG_HDR, RTM_GETNSID,
                     RTM_NEWNSID)
from .mounttable import mountinfo

# No dataclasses, socket or nsfast.mounts at import: the first list_namespaces()
# of a program pays for what this module imports.


def _parse_link(link: str) -> Optional[tuple[str, int]]:
    """("net", 4026531833) from "net:[4026531833]", None for anything else."""
    kind, sep, rest = link.partition(":[")
    if not sep or not rest.endswith("]") or not kind.isidentifier():
        return None
    digits = rest[:-1]
    return (kind, int(digits)) if digits.isdigit() and digits.isascii() else None


def _link_inode(link: str) -> int:
    """4026531833 from "net:[4026531833]"."""
    return int(link[link.index("[") + 1:-1])


def namespaces(pid: Optional[int] = None) -> dict[str, int]:
    """Namespace inode by /proc/PID/ns entry name, like `ls -l /proc/PID/ns`.

    pid None means the calling thread (net, uts, ipc and cgroup are per thread).
    The pid_for_children and time_for_children entries are included, except
    pid_for_children after unshare(CLONE_NEWPID) and before the first fork,
    when the kernel has no namespace to show for it yet.

    >>> nsfast.namespaces()["net"] == os.stat("/proc/thread-self/ns/net").st_ino
    True
    >>> nsfast.namespaces(pid)["uts"] == nsfast.namespaces()["uts"]
    False
    """
    if pid is None:
        base = "/proc/thread-self/ns"
    else:
        base = f"/proc/{_check_pid(pid)}/ns"
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        raise ProcessLookupError(errno.ESRCH, f"no process {pid}", f"/proc/{pid}") from None
    except OSError as e:
        raise os_error(e.errno, base) from None
    result = {}
    for name in names:
        path = f"{base}/{name}"
        try:
            result[name] = _link_inode(os.readlink(path))
        except FileNotFoundError:
            # pid_for_children of a new pid namespace has no link until its pid 1
            # is forked; a zombie keeps only its pid and user links
            if name == "pid_for_children":
                continue
            raise ProcessLookupError(errno.ESRCH, f"process {pid} has exited", path) from None
        except PermissionError as e:
            raise os_error(e.errno, path, PTRACE_HINT) from None
    return result


# ---------------------------------------------------------------- the process scan

# ns: proc name -> inode
_Proc = namedtuple("_Proc", "pid uid ns")


def _pids() -> list[int]:
    return sorted(int(n) for n in os.listdir("/proc") if n.isdigit())


def _scan_processes(names: list[str]) -> list[_Proc]:
    """Every process whose ns links we can read, with the inodes of `names`."""
    found = []
    for pid in _pids():
        ns = {}
        for name in names:
            try:
                ns[name] = _link_inode(os.readlink(f"/proc/{pid}/ns/{name}"))
            except OSError:
                continue  # gone, a zombie, not ours to inspect, or a kind the kernel lacks
        if not ns:
            continue
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
        found.append(_Proc(pid, uid, ns))
    return found


def _command(pid: int) -> Optional[str]:
    """The command line as lsns shows it: argv joined by spaces, else the comm."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
        args = [a for a in raw.rstrip(b"\0").split(b"\0")] if raw else []
        if args:
            return b" ".join(args).decode(errors="replace")
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().rstrip(b"\n").decode(errors="replace")
    except OSError:
        return None


def _ppid(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


_user_names: dict = {}


def _user(uid: int) -> str:
    if uid not in _user_names:
        try:
            _user_names[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            _user_names[uid] = str(uid)
    return _user_names[uid]


# ---------------------------------------------------------------- holders other than processes

def nsfs_mounts() -> dict[tuple[str, int], list[str]]:
    """Bind mounts of namespace files in the caller's mount namespace:
    (proc name, inode) -> mount points, from /proc/self/mountinfo.  A mount
    point that is not UTF-8 keeps its bytes as surrogates (os.fsencode gives
    them back), as everywhere nsfast returns a path.

    >>> path = nsfast.netns.path_of(netns_name)
    >>> nsfast.nsfs_mounts()[("net", os.stat(path).st_ino)] == [path]
    True
    """
    found: dict = {}
    for entry in mountinfo():
        if entry.fs_type != "nsfs":
            continue
        key = _parse_link(entry.root)
        if key:
            found.setdefault(key, []).append(entry.mount_point)
    return found


def _fd_holders(names: set) -> tuple[dict, dict]:
    """(proc name, inode) -> [(pid, fd)] for every open fd on a namespace file;
    and, when net is among names, ("net", inode) -> [(pid, fd)] of the sockets
    in each network namespace (a socket keeps its namespace alive, as newer
    lsns finds it: pidfd_getfd and SIOCGSKNS, where the caller may ptrace)."""
    found: dict = {}
    sockets: dict = {}
    nsfs_dev = _nsfs_dev()
    for pid in _pids():
        base = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(base)
        except OSError:
            continue
        pidfd = None
        try:
            for fd in fds:
                try:
                    link = os.readlink(f"{base}/{fd}")
                except OSError:
                    continue
                if link.startswith("/"):
                    # a namespace file opened through a bind mount shows that
                    # path (deleted or not): nsfs's device tells it apart
                    key = _nsfs_file(f"{base}/{fd}", nsfs_dev)
                    if key and key[0] in names:
                        found.setdefault(key, []).append((pid, int(fd)))
                    continue
                if not link.endswith("]"):
                    continue
                if link.startswith("socket:[") and "net" in names:
                    if pidfd is None:
                        pidfd = _pidfd(pid)
                    ino = _socket_netns_inode(pidfd, int(fd)) if pidfd is not None else None
                    if ino is not None:
                        sockets.setdefault(("net", ino), []).append((pid, int(fd)))
                    continue
                key = _parse_link(link)
                if key and key[0] in names:
                    found.setdefault(key, []).append((pid, int(fd)))
        finally:
            if pidfd is not None and pidfd >= 0:
                os.close(pidfd)
    return found, sockets


def _nsfs_dev() -> Optional[int]:
    """The device number of nsfs, the file system of every namespace file."""
    try:
        return os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return None


def _nsfs_file(path: str, nsfs_dev: Optional[int]) -> Optional[tuple[str, int]]:
    """(proc name, inode) when path opens a namespace file, else None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st.st_dev != nsfs_dev:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        kind = NsType(_core.ns_get_nstype(fd)).proc_name
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    return kind, st.st_ino


def _pidfd(pid: int) -> Optional[int]:
    """A pidfd for pid; -1 (tried, none) when it is gone or not ours to inspect."""
    try:
        return _core.pidfd_open(pid)
    except OSError:
        return -1


def _socket_netns_fd(pidfd: int, fd: int) -> Optional[int]:
    """An fd on the network namespace of socket fd of pidfd's process, or None."""
    if pidfd < 0:
        return None
    try:
        return _core.socket_netns(pidfd, fd)
    except OSError:
        return None


def _socket_netns_inode(pidfd: int, fd: int) -> Optional[int]:
    nsfd = _socket_netns_fd(pidfd, fd)
    if nsfd is None:
        return None
    try:
        return os.fstat(nsfd).st_ino
    finally:
        os.close(nsfd)


# ---------------------------------------------------------------- the listing

class NamespaceInfo:
    """One namespace in the system-wide listing (a row of lsns).

    pid is the lowest pid in it (None when no process is), uid, user and
    command are that process's (for a user namespace no process is in, uid
    and user are its creator's); parent and owner are inodes where the kernel
    tells (NS_GET_PARENT for user and pid namespaces, NS_GET_USERNS for all);
    mounts are the nsfs bind mounts holding it, fds the (pid, fd) pairs of
    open namespace files, sockets the (pid, fd) pairs of the sockets in a
    network namespace no process, mount or namespace file holds; pids
    every process in it, in pid order.  related is True for a namespace listed
    only because the kernel names it as another's parent or owner.

    >>> NamespaceInfo(nsfast.NsType.NET, 4026531840).nprocs
    0
    """

    __slots__ = ("kind", "inode", "nprocs", "pid", "ppid", "uid", "user", "command", "parent",
                 "owner", "mounts", "fds", "pids", "netnsid", "related", "sockets")

    def __init__(self, kind: NsType, inode: int, nprocs: int = 0, pid: Optional[int] = None,
                 ppid: Optional[int] = None, uid: Optional[int] = None,
                 user: Optional[str] = None, command: Optional[str] = None,
                 parent: Optional[int] = None, owner: Optional[int] = None,
                 mounts: tuple = (), fds: tuple = (), pids: tuple = (),
                 netnsid: Optional[int] = None, related: bool = False,
                 sockets: tuple = ()) -> None:
        self.kind, self.inode, self.nprocs, self.pid, self.ppid = kind, inode, nprocs, pid, ppid
        self.uid, self.user, self.command, self.parent, self.owner = (uid, user, command,
                                                                     parent, owner)
        self.mounts, self.fds, self.pids, self.netnsid, self.related = (mounts, fds, pids,
                                                                       netnsid, related)
        self.sockets = sockets

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not NamespaceInfo:
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]   # mutable, as the dataclass it replaced

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__
                          if name != "pids")
        return f"NamespaceInfo({shown})"

    @property
    def held_by_fd(self) -> bool:
        """Whether some process has an open fd on this namespace."""
        return bool(self.fds)

    @property
    def path(self) -> Optional[str]:
        """A path that opens this namespace, as lsns's PATH column."""
        if self.pid is not None:
            return f"/proc/{self.pid}/ns/{self.kind.proc_name}"
        if self.mounts:
            return self.mounts[0]
        if self.fds:
            return f"/proc/{self.fds[0][0]}/fd/{self.fds[0][1]}"
        return None


def _open_info(info: NamespaceInfo) -> Optional[int]:
    """An fd on the namespace, through whatever holds it; None when all are gone."""
    paths = ([info.path] if info.pid is not None else []) + list(info.mounts) + \
        [f"/proc/{p}/fd/{fd}" for p, fd in info.fds]
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        if os.fstat(fd).st_ino == info.inode:
            return fd
        os.close(fd)  # a process exited and its pid was reused
    for pid, sock in info.sockets:
        pidfd = _pidfd(pid)
        try:
            fd = _socket_netns_fd(pidfd, sock)
        finally:
            if pidfd >= 0:
                os.close(pidfd)
        if fd is not None:
            if os.fstat(fd).st_ino == info.inode:
                return fd
            os.close(fd)
    return None


def _related(fd: int, ioctl) -> Optional[int]:
    """The fd NS_GET_PARENT/NS_GET_USERNS gives, None where the kernel refuses
    (EPERM: outside our user namespace; EINVAL: no parent for this kind)."""
    try:
        return ioctl(fd)
    except OSError:
        return None


def netnsid(fd: int) -> Optional[int]:
    """The id the caller's network namespace gives the one fd refers to
    (RTM_GETNSID), None when unassigned, as lsns's NETNSID column.

    >>> with nsfast.netns.open(netns_name) as ns:
    ...     nsfast.netnsid(ns.fileno()) is None
    True
    """
    import socket   # only here: most listings ask for no netnsid
    attr = struct.pack("=HHI", 8, NETNSA_FD, fd)   # struct nlattr + the fd
    body = struct.pack("=B3x", socket.AF_UNSPEC) + attr   # struct rtgenmsg, padded
    msg = NLMSG_HDR.pack(NLMSG_HDR.size + len(body), RTM_GETNSID, NLM_F_REQUEST, 1, 0) + body
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                       socket.NETLINK_ROUTE) as s:
        s.send(msg)
        reply = s.recv(4096)
    length, mtype = NLMSG_HDR.unpack_from(reply)[:2]
    if mtype != RTM_NEWNSID:
        if mtype == NLMSG_ERROR:
            err = -struct.unpack_from("=i", reply, NLMSG_HDR.size)[0]
            raise os_error(err, None, what="RTM_GETNSID")
        return None
    pos = NLMSG_HDR.size + 4  # nlmsghdr + rtgenmsg padded
    while pos + 4 <= length:
        alen, atype = struct.unpack_from("=HH", reply, pos)
        if atype == NETNSA_NSID and alen >= 8:
            value = struct.unpack_from("=i", reply, pos + 4)[0]
            return None if value < 0 else value
        pos += (alen + 3) & ~3
    return None


def list_namespaces(kinds: KindsLike = None, *, with_netnsid: bool = False,
                    related: bool = True, related_kinds: KindsLike = None
                    ) -> list[NamespaceInfo]:
    """Every namespace on the system (of the given kinds), sorted by inode, as lsns.

    Besides the namespaces processes are in, it lists those held only by an
    nsfs bind mount, an open fd or a socket (as util-linux 2.39+ lsns does),
    and, unless related is False, the user and pid namespaces that the kernel
    names as parents or owners of a listed one: of the kinds asked for, or of
    related_kinds (lsns --tree adds the owning user namespaces to `-t net`).
    with_netnsid fills .netnsid of network namespaces (one netlink request each).

    >>> path = nsfast.netns.path_of(netns_name)
    >>> [(n.nprocs, n.mounts) for n in nsfast.list_namespaces("net") if path in n.mounts]
    [(0, ('/run/netns/...',))]
    """
    want = NsType.parse(kinds) if kinds is not None else NsType.all()
    names = [k.proc_name for k in LSNS_ORDER if k & want]
    table: dict[tuple[str, int], NamespaceInfo] = {}
    members: dict[tuple[str, int], list[_Proc]] = {}
    for proc in _scan_processes(names):
        for name, ino in proc.ns.items():
            members.setdefault((name, ino), []).append(proc)
    for key, procs in members.items():
        first = procs[0]  # the scan goes in pid order
        table[key] = NamespaceInfo(kind=from_proc_name(key[0]), inode=key[1],
                                   nprocs=len(procs), pid=first.pid, uid=first.uid,
                                   user=_user(first.uid), pids=tuple(p.pid for p in procs))
    name_set = set(names)
    fd_files, sockets = _fd_holders(name_set)
    for holders, attr in ((nsfs_mounts(), "mounts"), (fd_files, "fds")):
        for key, where in holders.items():
            if key[0] not in name_set:
                continue
            info = table.get(key)
            if info is None:
                info = table[key] = NamespaceInfo(kind=from_proc_name(key[0]), inode=key[1])
            setattr(info, attr, tuple(where))
    for key, where in sockets.items():
        if key not in table:
            table[key] = NamespaceInfo(kind=NsType.NET, inode=key[1], sockets=tuple(where))
    if not related:
        add = NsType(0)
    else:
        add = want if related_kinds is None else NsType.parse(related_kinds)
    _fill_relations(table, add)
    for info in table.values():
        if info.pid is not None:
            info.command = _command(info.pid)
            info.ppid = _ppid(info.pid)
    result = sorted(table.values(), key=lambda i: (i.inode, LSNS_ORDER.index(i.kind)))
    if with_netnsid:
        for info in result:
            if info.kind == NsType.NET:
                fd = _open_info(info)
                if fd is not None:
                    try:
                        info.netnsid = netnsid(fd)
                    finally:
                        os.close(fd)
    return result


def _fill_relations(table: dict, add_kinds: NsType) -> None:
    """Set parent and owner inodes, and the creator of a user namespace no
    process is in; add the related user and pid namespaces of add_kinds that
    nothing else in the table holds (kept alive by the kernel's references)."""
    pending = [(info, _open_info(info)) for info in table.values()]
    while pending:
        info, fd = pending.pop()
        if fd is None:
            continue
        try:
            if info.pid is None and info.kind == NsType.USER:
                try:
                    info.uid = _core.ns_owner_uid(fd)
                    info.user = _user(info.uid)
                except OSError:
                    pass
            ioctls = [("owner", _core.ns_get_userns, NsType.USER)]
            if info.kind in (NsType.USER, NsType.PID):
                ioctls.append(("parent", _core.ns_get_parent, info.kind))
            for attr, ioctl, rel_kind in ioctls:
                rel_fd = _related(fd, ioctl)
                if rel_fd is None:
                    continue
                ino = os.fstat(rel_fd).st_ino
                setattr(info, attr, ino)
                key = (rel_kind.proc_name, ino)
                if key not in table and rel_kind & add_kinds:
                    table[key] = rel = NamespaceInfo(kind=rel_kind, inode=ino, related=True)
                    pending.append((rel, rel_fd))
                else:
                    os.close(rel_fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------- outside init

class OutsideProcess(namedtuple("OutsideProcess", "pid kinds command")):
    """A process in at least one namespace that is not init's: kinds are
    those (an NsType), command its command line (None when it has exited)."""

    __slots__ = ()


def init_namespaces() -> dict[str, int]:
    """The namespaces of pid 1, by proc name.

    Where pid 1 cannot be inspected (it holds capabilities the caller lacks,
    as in some VMs and containers), kthreadd's are used: kernel threads live in
    the initial namespaces, which are what pid 1 normally has."""
    try:
        return namespaces(1)
    except PermissionError:
        if _ppid(2) == 0 and _command(2) == "kthreadd":
            return namespaces(2)
        raise


def processes_outside_init() -> list[OutsideProcess]:
    """The processes whose namespaces differ from pid 1's, with the kinds that differ.

    As `ps` does for an unprivileged user, it lists only the processes the
    caller may inspect, and skips the rest.  Such a caller may not read the
    namespaces of pid 1 nor of kthreadd either (see init_namespaces); then it
    compares with its own process's namespaces instead, which for a user
    logged in on the host are the initial ones: what it lists is then what
    runs in namespaces other than the caller's.

    >>> [p.kinds == nsfast.NsType.parse("mnt,uts,ipc,net")
    ...  for p in nsfast.processes_outside_init() if p.pid == pid]
    [True]
    """
    try:
        ref = init_namespaces()
    except PermissionError:
        ref = namespaces(os.getpid())
    names = [k.proc_name for k in LSNS_ORDER if k.proc_name in ref]
    result = []
    for proc in _scan_processes(names):
        differ = NsType(0)
        for name, ino in proc.ns.items():
            if ino != ref[name]:
                differ |= from_proc_name(name)
        if differ:
            result.append(OutsideProcess(proc.pid, differ, _command(proc.pid)))
    return result
