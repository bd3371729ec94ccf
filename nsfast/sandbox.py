"""nsfast.Sandbox: spawn with a policy that is safe by default.

A Sandbox holds a policy, validated once, and adds safe defaults to
nsfast.spawn: every option it sets is a spawn option, so nothing here is
out of spawn's reach (Sandbox.spawn_options() shows them).  Each default is
turned off by name: Sandbox(seccomp=None), Sandbox(readonly_root=False) ...

The defaults:
- new user, mnt, pid, uts, ipc, cgroup and net namespaces; lo up.  As
  root, with no capability kept, the net namespace is a fresh one made
  ahead with lo up (nsfast.pool.shared_loopback), owned by the host's user
  namespace, and never handed to two payloads (network="new": made by the
  payload's clone instead, as for a user);
- ids never the host's root: as root, a range of 65536 host ids leased to
  each running payload alone (IdLease), so that no two payloads, of this
  box or any other, share a host uid; as a user, the user's own id;
- no_new_privs, no capabilities, a new session, SIGKILL on the parent's
  death, no fds above 2, a minimal environment;
- a confined root (nsfast/confine.py): the host's / read-only, a fresh
  /proc with the OCI masked and read-only paths, a minimal /dev, a 64 MiB
  /tmp;
- the default seccomp filter (nsfast/seccomp.py), and no nested user
  namespaces (max_user_namespaces 0 inside, as bwrap --disable-userns);
- limits (nsfast.Limits): generous, never unlimited (default_limits()).

A Sandbox used in a forked child leases id ranges of the child's own and
takes its net namespaces from the child's own shared pool: nothing of
its parent's is handed to a payload twice.

network=nsfast.Bridge(...) (or a NetnsPool, bridged or not) puts each
payload in a network namespace wired to the bridge instead: eth0 with an
address (Process.address), lo up, a default route via the bridge.  The
namespace belongs to the host's user namespace, so the payload, root only
in its own, cannot change its addresses or routes.
"""
from __future__ import annotations

import errno
import fcntl
import os
import signal
import subprocess
import threading
from typing import Any, Mapping, NamedTuple, Optional, Sequence

from . import aio
from . import seccomp as _seccomp, template as _template
from .argtypes import Argv
from .limits import Limits, Usage
from .plan import SpawnPlan
from .spawn import PIPE, spawn
from .process import Process

NAMESPACES = "user,mnt,pid,uts,ipc,cgroup,net"
ENV = (("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
       ("HOME", "/"), ("LANG", "C.UTF-8"), ("TERM", "dumb"))
ID_BASE = 1 << 30          # host ids leased to sandboxes start here
ID_COUNT = 65536           # ids a sandbox gets
LEASE_DIR = "/run/nsfast/idleases"
TMP_SIZE = 64 << 20
DEFAULT_PIDS = 512
DEFAULT_MEMORY = 1 << 30
DEFAULT_WALL_TIME = 600.0


class Completed(NamedTuple):
    """What Sandbox.run returns: as subprocess.CompletedProcess, and the
    payload's usage (nsfast.Usage)."""
    args: Argv
    returncode: int
    stdout: Optional[bytes]
    stderr: Optional[bytes]
    usage: Optional[Usage] = None


class _Env(dict):
    """The sandbox's environment: a dict that hashes, so that spawn reuses
    the plan of a repeated call (a dict argument would be validated anew)."""
    def __hash__(self) -> int:   # type: ignore[override]
        return hash(tuple(self.items()))

    def _immutable(self, *a, **k):
        raise TypeError("a Sandbox's environment is fixed")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _immutable


class IdLease:
    """A range of host ids held by one sandbox: an flock'ed file per slot
    under LEASE_DIR, so that no other sandbox of this or another process
    takes it while it is held (flock locks belong to the open file, so two
    Sandboxes of one process exclude each other too).

    >>> lease = IdLease(); lease.count
    65536
    """
    def __init__(self, base: int = ID_BASE, count: int = ID_COUNT,
                 directory: str = LEASE_DIR) -> None:
        if isinstance(base, bool) or not isinstance(base, int) or base < 1:
            raise ValueError("id_base must be a positive host id (0 is the host's root)")
        if not 0 < count <= 2**32 - 1 - base:
            raise ValueError("the id range does not fit below 2**32")
        self.count = count
        self.fd = -1
        self._user_ns: dict = {}   # max_user_namespaces -> fd (user_ns())
        os.makedirs(directory, mode=0o700, exist_ok=True)
        slots = min((2**32 - 1 - base) // count, 1 << 16)
        for slot in range(slots):
            start = base + slot * count
            fd = os.open(os.path.join(directory, f"{start}-{count}"),
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.fd, self.start = fd, start
            return
        raise OSError(errno.EAGAIN, f"all {slots} id ranges from {base} are leased "
                                    f"(see {directory})")

    def user_ns(self, max_user_namespaces: Optional[int]) -> int:
        """An fd of a user namespace that maps 0.. onto this range, made once
        (its maps and max_user_namespaces written): a sandbox started from a
        mount template joins it last instead of making one, so no spawn
        waits for its maps.  Only one payload at a time holds a lease, so no
        two share it."""
        key = max_user_namespaces
        fd = self._user_ns.get(key)
        if fd is not None:
            return fd
        got: list = []

        def hold(pid: int) -> None:   # while the maker waits, its maps written
            got.append(os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC))
        opts: dict = dict(namespaces="user", pdeathsig=None, on_created=hold, **_ranges(self))
        if max_user_namespaces is not None:
            opts["max_user_namespaces"] = max_user_namespaces
        try:
            maker = spawn(["true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **opts)
            maker.wait()
        except BaseException:
            for fd in got:
                os.close(fd)
            raise
        self._user_ns[key] = got[0]
        return got[0]

    def release(self) -> None:
        """Give the range back (the processes that use it must be gone)."""
        for fd in self._user_ns.values():
            os.close(fd)
        self._user_ns = {}
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.release()


def _ranges(lease: IdLease) -> dict:
    """The spawn options that map inside ids 0.. onto a lease's host ids."""
    ranges = ((0, lease.start, lease.count),)
    return {"uid_map": ranges, "gid_map": ranges}


def _no_template(kinds: list, ids: Any, overlay: Any, capabilities: Any, mounts: Sequence,
                 mount_proc: bool, opts: dict) -> Optional[str]:
    """Why a Sandbox cannot start from a mount template, or None.  From a
    template every namespace but the user namespace is the caller's, so the
    payload cannot use capabilities in them: kept capabilities need the
    usual path; so do binds of the caller's paths (outside the template)."""
    from .mounts import Bind
    if os.geteuid() != 0 or ids != "auto":
        return "a template needs root and leased ids"
    if not {"user", "mnt", "pid"} <= set(kinds) or "time" in kinds:
        return "a template needs new user, mnt and pid namespaces and no time namespace"
    if overlay or not mount_proc or capabilities is None or tuple(capabilities):
        return "a template takes no overlay, needs mount_proc and drops every capability"
    if any(isinstance(m, Bind) for m in mounts):
        return "a template's sandbox cannot bind the caller's paths (they are outside it)"
    if not any(opts.get(k) for k in ("readonly_root", "mask_paths", "readonly_paths",
                                       "minimal_dev", "tmp_size")):
        return "a template is for a confined root"
    return None


def _joined_network(network: Any, kinds: list, loopback: Optional[bool]) -> list:
    """The namespace kinds of a Sandbox(network=...): a bridge (nsfast.Bridge)
    or a pool of namespaces (nsfast.NetnsPool, bridged or not) gives each
    payload a network namespace of its own that it joins, so none is made."""
    from .bridge import Bridge
    from .pool import NetnsPool
    if not isinstance(network, (Bridge, NetnsPool)):
        raise TypeError(f"network is an nsfast.Bridge or an nsfast.NetnsPool, not "
                        f"{type(network).__name__}")
    if loopback is not None:
        raise ValueError("network= brings its own lo up (a bridge) or leaves it to the "
                         "pool's setup: loopback= cannot be given with it")
    return [k for k in kinds if k != "net"]


def default_limits() -> Limits:
    """Sandbox's limits unless told otherwise: generous, never unlimited.  As
    root, a cgroup of its own caps tasks and memory; a user seldom may make
    cgroups, so there the caps are rlimits (its address space, its
    processes, its files).  Both end the sandbox after ten minutes.

    >>> default_limits().wall_time
    600.0
    """
    if os.geteuid() == 0:
        return Limits(pids=DEFAULT_PIDS, memory=DEFAULT_MEMORY, wall_time=DEFAULT_WALL_TIME)
    return Limits(address_space=DEFAULT_MEMORY * 2, nofile=1024, nproc=DEFAULT_PIDS,
                  wall_time=DEFAULT_WALL_TIME)


class Sandbox:
    """A confinement policy, validated once; spawn() and run() start payloads
    under it.

    >>> with Sandbox(limits=nsfast.Limits(nofile=64)) as box:
    ...     done = box.run(["sh", "-c", "id -u; ulimit -n"])
    >>> done.stdout, done.returncode, done.usage.limit_hit
    (b'0\\n64\\n', 0, None)

    (The default limits keep a cgroup ready for the next payload.)
    """
    def __init__(self, *, namespaces: str = NAMESPACES, loopback: Optional[bool] = None,
                 ids: str = "auto", id_base: int = ID_BASE,
                 no_new_privs: bool = True, capabilities: Optional[Sequence] = (),
                 new_session: bool = True, pdeathsig: Optional[int] = signal.SIGKILL,
                 env: Optional[Mapping] = None, root=None, readonly_root: bool = True,
                 mount_proc: bool = True, mask_paths: Any = True, readonly_paths: Any = True,
                 minimal_dev: bool = True, tmp_size: Optional[int] = TMP_SIZE,
                 mounts: Sequence = (), seccomp: Any = "default",
                 allow_nested_userns: bool = False, hostname: Optional[str] = None,
                 cwd: Any = "/", init: bool = False, overlay: Any = None,
                 limits: Any = "default", network: Any = None,
                 mount_template: Any = "auto") -> None:
        if isinstance(limits, str) and limits == "default":
            limits = default_limits()
        elif limits is not None and not isinstance(limits, Limits):
            raise TypeError(f"limits is an nsfast.Limits, 'default' or None, not "
                            f"{type(limits).__name__}")
        capabilities = None if capabilities is None else tuple(capabilities)
        # as root: id ranges, one per running payload (_take_ids)
        self._id_base: Optional[int] = None
        self._free: list = []       # leases no payload uses
        self._busy: list = []       # (Process, lease)
        self._reclaim = "pid" in str(namespaces).split(",")
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._shared_pool = None    # the shared loopback pool, when it is ours
        opts: dict = dict(namespaces=namespaces, loopback=loopback, no_new_privs=no_new_privs,
                          new_session=new_session, pdeathsig=pdeathsig, cwd=cwd,
                          env=_Env(ENV if env is None else env), readonly_root=readonly_root,
                          mount_proc=mount_proc, mask_paths=mask_paths,
                          readonly_paths=readonly_paths, minimal_dev=minimal_dev,
                          tmp_size=tmp_size, mounts=tuple(mounts), seccomp=seccomp)
        if limits is not None:
            opts["limits"] = limits
        if capabilities is not None:
            opts["capabilities"] = capabilities
        if root is not None:
            opts.update(root=root, pivot_root=True)
        if overlay:
            # a writable tmpfs layer (True: 64 MiB, or a size) over root=
            opts["overlay"] = overlay
        if hostname is not None:
            opts["hostname"] = hostname
        kinds = str(namespaces).replace(" ", "").split(",")
        if isinstance(network, str) and network == "new":
            network = None   # made by the payload's clone
        elif (network is None and loopback in (None, True) and "net" in kinds
                and capabilities == () and os.geteuid() == 0):
            # a fresh namespace with lo up, made ahead: making one costs the
            # kernel more than the rest of a spawn.  It belongs to the host's
            # user namespace; a payload without capabilities can do nothing
            # more in one of its own
            from .pool import shared_loopback
            network, loopback = shared_loopback(), None   # lo is up in its namespaces
            self._shared_pool = network
        if network is not None:
            kinds = _joined_network(network, kinds, loopback)
            opts.update(namespaces=",".join(kinds), netns=network, loopback=False)
        if loopback is None:   # lo up in a new net namespace, which is the default
            opts["loopback"] = "net" in kinds
        if "user" not in kinds:
            if ids is not None or not allow_nested_userns:
                raise ValueError("a Sandbox without a new user namespace needs ids=None and "
                                 "allow_nested_userns=True (its id map and its "
                                 "max_user_namespaces belong to that namespace)")
        if ids not in ("auto", None):
            raise ValueError("ids takes 'auto' (a leased range as root, your own id "
                             "otherwise) or None (no map)")
        if ids == "auto":
            if os.geteuid() == 0:
                self._id_base = id_base
                lease = IdLease(id_base)
                self._free.append(lease)
                opts.update(_ranges(lease))
            else:
                opts["map_current_user"] = True
        if not allow_nested_userns:
            opts["max_user_namespaces"] = 0
        elif seccomp == "default":
            opts["seccomp"] = _seccomp.default_policy(nested_userns=True)
        if init:
            # csrc/init.c as pid 1: it reaps orphans and forwards signals
            opts["init"] = True
        # a template mount namespace: the start costs the same whatever the
        # host's mount table (nsfast/template.py)
        self._template = None
        self._nested_sysctl = None if allow_nested_userns else 0
        if mount_template not in ("auto", True, False):
            raise ValueError("mount_template takes 'auto', True or False")
        if mount_template:
            why = _no_template(kinds, ids, overlay, capabilities, mounts, mount_proc, opts)
            if why is None:
                self._template = _template.shared(
                    None if root is None else os.fsencode(root), readonly_root, minimal_dev,
                    _template.static_masks(mask_paths))
                opts["namespaces"] = ",".join(k for k in kinds if k != "user")
                opts["template"] = self._template
                for key in ("max_user_namespaces", "root", "pivot_root", "uid_map", "gid_map"):
                    opts.pop(key, None)
                opts.update(self._lease_options(self._free[0]))
            elif mount_template is True:
                raise ValueError(f"mount_template=True, but {why}")
        self.options = opts
        try:
            SpawnPlan(["/bin/true"], **opts)   # every check spawn makes, now
        except BaseException:
            self.close()
            raise

    def spawn_options(self) -> dict:
        """The nsfast.spawn options this sandbox passes (a copy)."""
        return dict(self.options)

    def spawn(self, argv: Argv, *, stdin=None, stdout=None, stderr=None, cwd=None,
              env: Optional[Mapping] = None, pass_fds: Sequence[int] = ()) -> Process:
        """Start argv in the sandbox; a Process as nsfast.spawn returns."""
        if self.options is None:
            raise ValueError("this Sandbox is closed")
        if self._pid != os.getpid():
            self._forked()
        opts = self.options
        if cwd is not None or env is not None or pass_fds:
            opts = dict(opts)
            if cwd is not None:
                opts["cwd"] = cwd
            if env is not None:
                opts["env"] = _Env(env)
            if pass_fds:
                opts["pass_fds"] = tuple(pass_fds)
        if self._id_base is None:
            return spawn(argv, stdin=stdin, stdout=stdout, stderr=stderr, **opts)
        lease = self._take_ids()
        try:
            proc = spawn(argv, stdin=stdin, stdout=stdout, stderr=stderr,
                         **{**opts, **self._lease_options(lease)})
        except BaseException:
            with self._lock:
                self._free.append(lease)
            raise
        proc._id_lease = lease   # leased while the Process lives, even past close()
        with self._lock:
            self._busy.append((proc, lease))
        return proc

    def _forked(self) -> None:
        """First use in a forked child: the id ranges it inherited are its
        parent's (an flock belongs to the open file, which both share), and
        so are the shared pool's namespaces; it takes its own of both."""
        with self._lock:
            if self._pid == os.getpid():
                return
            self._free, self._busy = [], []
            if self._shared_pool is not None:   # not a pool the caller gave
                from .pool import shared_loopback
                self._shared_pool = shared_loopback()
                self.options = {**self.options, "netns": self._shared_pool}
            self._pid = os.getpid()

    def _lease_options(self, lease: "IdLease") -> dict:
        """The spawn options of a payload on this lease: its id maps, or with
        a template the user namespace made for the lease, joined last."""
        if self._template is None:
            return _ranges(lease)
        return {"user_ns": lease.user_ns(self._nested_sysctl), "uid": 0, "gid": 0,
                "extra_groups": ()}

    def _take_ids(self) -> "IdLease":
        """An id range no running payload uses: one whose payload has ended
        (with a pid namespace, its end is the end of every process in it), or
        a new lease.  So two payloads never share a host uid, and a box that
        runs one payload at a time reuses one range (and its spawn plan)."""
        with self._lock:
            if self._reclaim:
                busy = []
                for proc, lease in self._busy:
                    # ended, not reaped here: its owner may be waiting for it
                    if proc.ended():
                        self._free.append(lease)
                    else:
                        busy.append((proc, lease))
                self._busy = busy
            if self._free:
                return self._free.pop()
        return IdLease(self._id_base)

    def run(self, argv: Argv, *, input: Optional[bytes] = None,
            timeout: Optional[float] = None) -> Completed:
        """Run argv to its end, its output captured, as subprocess.run.  On a
        timeout the payload is killed and TimeoutExpired raised."""
        proc = self.spawn(argv, stdin=PIPE if input is not None else subprocess.DEVNULL,
                          stdout=PIPE, stderr=PIPE)
        with proc:
            try:
                out, err = proc.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
        return Completed(proc.args, proc.returncode, out, err, proc.usage)

    async def run_async(self, argv: Sequence, *, input: Optional[bytes] = None,
                        timeout: Optional[float] = None) -> Completed:
        """run() for the event loop: the pipes and the pidfd are watched by the
        loop (nsfast.aio), no thread is started.  On a timeout the payload is
        killed and TimeoutExpired raised; cancelled, the payload is killed.

        >>> import asyncio
        >>> with Sandbox(limits=nsfast.Limits(nofile=64)) as box:
        ...     done = asyncio.run(box.run_async(["cat"], input=b"hi"))
        >>> done.stdout, done.returncode
        (b'hi', 0)
        """
        aio.check_input(input)
        proc = self.spawn(argv, stdin=PIPE if input is not None else subprocess.DEVNULL,
                          stdout=PIPE, stderr=PIPE)
        with proc:   # killed and reaped when cancelled
            try:
                out, err = await aio.communicate(proc, input, timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                await aio.wait(proc)
                raise
        return Completed(proc.args, proc.returncode, out, err, proc.usage)

    def close(self) -> None:
        """No more spawns.  The id ranges are given back, each once the
        Process that uses it is dropped too."""
        self.options = None
        with self._lock:
            self._free, self._busy = [], []

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
