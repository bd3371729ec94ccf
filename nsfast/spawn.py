"""spawn(): start a plan, return a Process.

nsfast/plan.py validates a call into a SpawnPlan once; spawn() keeps the
plans of repeated calls, takes what each call needs fresh (std streams,
joined namespaces, a pool's netns, the cgroup's fd) and hands the plan's
packed form to _core, whose C (csrc/spawn_parent.c, spawn_child.c) clones
the child and runs its steps without running any Python.
"""
from __future__ import annotations

import errno
import os
import subprocess
import time
from typing import Any, Callable, Optional

from . import _core, cgroups, init_program
from .argtypes import Argv
from .errors import map_hint, namespace_hint, os_error
from .flags import NsType
from .handles import Namespace, check_fd
from .mounts import step_path
from .plan import ChildSpec, SpawnPlan, _exec_paths
from .process import Process
from .targets import open_joins, open_namespace

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT

_USER, _NET, _MNT = int(NsType.USER), int(NsType.NET), int(NsType.MNT)

# plans of calls seen before, by (argv, options, euid, egid); bounded
_plans: dict = {}
_PLANS_MAX = 256
_reused = 0


def plans_reused() -> int:
    """How many spawns reused a plan instead of validating again (for tests).

    >>> isinstance(plans_reused(), int)
    True
    """
    return _reused


def spawn(argv: Argv | SpawnPlan, **options: Any) -> Process:
    """Start argv in new (and/or joined) namespaces, without forking Python.

    The options are SpawnPlan's keyword arguments (nsfast/plan.py, which
    lists them once; help(nsfast.SpawnPlan)).  A call repeated with equal
    (hashable) arguments reuses the plan validated the first time;
    spawn(plan) starts a SpawnPlan made beforehand.

    on_created(pid), if given, runs in the caller once the child's new
    namespaces exist and its id maps are written, before the child does
    anything inside them: the place to persist a namespace by bind-mounting
    /proc/<pid>/ns/<kind> (pid_for_children and time_for_children for those
    two kinds).  If it raises, the child is killed and reaped.  A mount
    namespace file binds only into an older mount namespace, and on 6.x kernels
    "older" is by ids handed out per CPU: `nsfast unshare --mount=FILE` shows
    how to retry from each CPU (cli/unshare.py, _spawn_persisting).

    uid/gid: the ids the child takes (setresuid/setresgid, ids as seen inside
    its namespaces) after its namespaces are made or joined.  In a new user
    namespace it keeps the caller's ids by default when they are mapped, and
    becomes inside root (or the lowest mapped id) when they are not, so that a
    range map never runs the payload as the host's root.  extra_groups: the
    supplementary groups to set (default: dropped when the ids change inside
    a new user namespace, kept otherwise).

    capabilities: the names (or numbers) kept in every set, the rest dropped
    from the bounding set too; ambient_capabilities: those of them raised
    into the ambient set, which is what a uid other than 0 keeps through exec.
    new_session: setsid; controlling_tty=True then makes stdin, a terminal,
    the new session's controlling terminal (TIOCSCTTY).

    hold=(ready, go): the child writes a byte on ready (an fd, or -1) once set
    up, and execs only after a byte comes on go (an OCI runtime's create and
    start); hold_before_root holds it the same way after its mounts, before its
    root is entered.  spawn() returns at the exec, so call it from a thread.

    pdeathsig fires when the spawning *thread* ends (the kernel's rule): a
    child spawned from a short-lived worker thread dies with that thread
    unless pdeathsig=None.

    >>> p = nsfast.spawn(["hostname"], namespaces="uts", hostname="box", stdout=nsfast.PIPE)
    >>> p.communicate()[0]
    b'box\\n'

    limits: an nsfast.Limits (nsfast/limits.py): rlimits set before exec, a
    cgroup of its own for memory, pids and cpu, a wall-time deadline; the
    Process's usage tells what it used and which limit ended it.

    >>> p = nsfast.spawn(["sleep", "10"], limits=nsfast.Limits(wall_time=0.2))
    >>> p.wait(), p.usage.limit_hit
    (-9, 'wall_time')

    root_fd, cwd_fd: directory fds opened by the caller, chrooted into / made the
    working directory after joining (nsenter -r/-w).  fork_for_pid=False
    execs without the extra fork when a pid namespace is joined, so only the
    program's children are inside it (nsenter -F).
    """
    global _reused
    if type(argv) is SpawnPlan:
        if options:
            raise TypeError("spawn(plan) takes no options: they are the plan's")
        return start(argv)
    try:
        # with the values' types: False == 0, and only one of them is valid
        key = (tuple(argv) if type(argv) is list else argv, tuple(options.items()),
               tuple(map(type, options.values())), os.geteuid(), os.getegid())
        plan = _plans.get(key)
    except TypeError:   # an unhashable argument (a dict, a list): no reuse
        key = plan = None
    if plan is None:
        plan = SpawnPlan(argv, **options)
        if key is not None and plan.reusable:
            if len(_plans) >= _PLANS_MAX:
                _plans.clear()
            _plans[key] = plan
    else:
        _reused += 1
        if plan.plain:
            try:
                return Process(plan.packed.run_plain(os.getpid(), plan.writes), plan.argv)
            except (OSError, _core.SpawnFailure) as e:
                raise _spawn_error(e, plan.spec, plan.program, plan.new, NsType(0)) from None
    return start(plan)


def start(plan: SpawnPlan) -> Process:
    """Start a child from a plan: take this call's fds, clone, wait for exec.

    >>> start(SpawnPlan(["/bin/true"])).wait()
    0
    """
    spec = plan.spec
    program = plan.program
    exec_paths = None if b"/" in program else _exec_paths(program, plan.env)
    join_fds: list = []
    join_kinds: list = []
    join_pidfd = join_setgroups = groups_best_effort = False
    cgroup_fd = -1
    std_fds = None
    handles: list = []
    opened: list = []
    parent_ends: dict = {}
    joined = NsType(0)
    address = None   # the address of a bridged netns (nsfast.Bridge)
    limits = plan.limits
    box = None
    started = time.monotonic()
    try:
        if limits is not None and limits.needs_cgroup:
            box = cgroups.take(limits)
            if box.fd >= 0 and spec.use_clone3:
                cgroup_fd = box.fd
        if plan.cgroup is not None:
            try:
                cgroup_fd = os.open(plan.cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as e:
                raise os_error(e.errno, plan.cgroup) from None
            opened.append(cgroup_fd)
        if plan.join is not None:
            # a pidfd join cannot be mixed with fds: with netns= join all per fd
            joined, join_fds, join_kinds, join_pidfd = _join_targets(
                plan.join, handles, use_pidfd=plan.netns is None)
            join_setgroups = bool(joined & _USER) and os.geteuid() == 0
            # the groups were cleared before the user ns join: a refusal inside
            # (setgroups denied there) changes nothing, as for nsenter
            groups_best_effort = join_setgroups and spec.groups == []
        if plan.template is not None:
            if plan.template.fd < 0:
                raise ValueError("this mount template is closed")
            join_fds.append(plan.template.fd)
            join_kinds.append(_MNT)
        if plan.netns is not None:
            if joined & _NET:
                raise ValueError("netns= conflicts with a new or joined net namespace")
            ns = _netns_target(plan.netns, handles)
            address = getattr(ns, "address", None)
            join_fds.append(ns.fileno())
            join_kinds.append(_NET)
            joined |= NsType.NET
        # ---- std fds last: nothing above may fail with pipes half made
        stdin, stdout, stderr = plan.std
        if stdin is not None or stdout is not None or stderr is not None:
            fds = [_std_fd(stdin, 0, opened, parent_ends),
                   _std_fd(stdout, 1, opened, parent_ends)]
            if stderr is STDOUT:
                fds.append(fds[1] if fds[1] >= 0 else 1)
            else:
                fds.append(_std_fd(stderr, 2, opened, parent_ends))
            std_fds = fds
        helper, on_created = plan.helper, plan.on_created
        raised: list = []   # what the caller's callbacks raised passes through as is
        try:
            child = plan.packed.run(
                exec_paths, std_fds, join_fds, join_kinds, join_pidfd, join_setgroups,
                groups_best_effort, cgroup_fd,
                None if box is None else box.join_fds(cgroup_fd >= 0),
                init_program.init_fd() if plan.init else -1, os.getpid(), plan.writes,
                None if helper is None else _passing(helper, raised),
                None if on_created is None else _passing(on_created, raised))
        except BaseException as e:
            for fd in parent_ends.values():
                os.close(fd)
            parent_ends.clear()
            if not isinstance(e, (OSError, _core.SpawnFailure)) or e in raised:
                raise
            if plan.cgroup is not None and isinstance(e, OSError) and e.errno == errno.EBADF:
                raise _cgroup_error(plan.cgroup) from None
            raise _spawn_error(e, spec, program, plan.new, joined) from None
    except BaseException:
        if box is not None:
            box.finish()
        raise
    finally:
        for fd in opened:
            os.close(fd)
        for h in handles:
            h.close()
    if not parent_ends:
        process = Process(child, plan.argv)
    else:
        streams = [os.fdopen(parent_ends[i], "wb" if i == 0 else "rb") if i in parent_ends
                   else None for i in range(3)]
        process = Process(child, plan.argv, *streams)
    if limits is not None:
        process._limit(limits, box, started)
    if address is not None:
        process.address = address
    return process


def _std_fd(value: Any, which: int, opened: list, parent_ends: dict) -> int:
    """The fd the child gets as std fd `which`, -1 to inherit; value's shape
    was checked with the plan (plan._check_stream), its fd is taken now."""
    if value is None:
        return -1
    if value is PIPE:
        r, w = os.pipe2(os.O_CLOEXEC)
        opened.append(r if which == 0 else w)
        parent_ends[which] = w if which == 0 else r
        return r if which == 0 else w
    if value is DEVNULL:
        fd = os.open(os.devnull, (os.O_RDONLY if which == 0 else os.O_WRONLY) | os.O_CLOEXEC)
        opened.append(fd)
        return fd
    if isinstance(value, int):
        os.fstat(value)  # EBADF now rather than in the child
        return value
    return check_fd(value.fileno(), f"{type(value).__name__}.fileno()")


def _join_targets(join: Any, handles: list, use_pidfd: bool = True) -> tuple:
    """(kinds joined, fds, their kinds, whether fds[0] is a pidfd for all) for
    join= (any target of nsfast.targets, a mapping kind -> target or a list of
    targets); what it opens goes to handles, which the caller closes."""
    joins = open_joins(join, use_pidfd=use_pidfd)
    handles.append(joins)
    return joins.joined, list(joins.fds), list(joins.kinds), joins.pidfd


def _netns_target(netns: Any, handles: list) -> Namespace:
    """A Namespace for spawn(netns=...): a pool's next one, or any target
    (nsfast.targets) of a net namespace, a name under /run/netns included."""
    if hasattr(netns, "take") and callable(netns.take):
        ns = netns.take()
    else:
        ns = open_namespace(netns, NsType.NET)
    handles.append(ns)  # used once, then closed
    return ns


def _passing(callback: Optional[Callable[[int], None]], raised: list):
    """callback, noting what it raises so that it is not taken for a clone error."""
    def call(pid: int) -> None:
        try:
            callback(pid)
        except BaseException as e:
            raised.append(e)
            raise
    return call


def _cgroup_error(path: str) -> OSError:
    """clone3's EBADF for cgroup=: the directory is not in a cgroup v2 tree."""
    from .mounts import mountinfo   # the error path only
    best = None
    real = os.path.realpath(path)
    for entry in mountinfo():
        mp = entry.mount_point
        if (real == mp or real.startswith(mp.rstrip("/") + "/")) and (
                best is None or len(mp) > len(best.mount_point)):
            best = entry
    fs = f"{best.fs_type} ({','.join(best.super_options)})" if best else "unknown"
    return os_error(errno.EBADF, path,
                    f"cgroup= takes a directory of the cgroup v2 tree (CLONE_INTO_CGROUP); "
                    f"this one is on {fs}, a cgroup v1 hierarchy or no cgroup at all",
                    what="cloning into the cgroup")


def _spawn_error(e: Exception, spec: ChildSpec, program: bytes, new: int,
                 joined: NsType) -> OSError:
    """The error spawn raises for a SpawnFailure or OSError of Packed.run: a
    child's failure as the error of its step; a refused clone with a hint."""
    if isinstance(e, _core.SpawnFailure):
        return _failure_to_error(e, spec, program, NsType(new), joined)
    names = [k.proc_name for k in NsType(new).kinds()]
    return os_error(e.errno, None, namespace_hint(e.errno, names),
                    what=f"clone({','.join(names) or 'no new namespaces'})")


def _failure_to_error(f: "_core.SpawnFailure", spec: ChildSpec, program: bytes,
                      new: NsType, joined: NsType) -> OSError:
    """A failed step as an OSError, worded by the step table of
    csrc/spawn_child.c (_core.STEP_WORDING), as the nsfast command words it."""
    step, err = f.step, f.errno
    if step in ("uid_map", "gid_map", "setgroups", "timens_offsets"):   # the parent's writes
        return os_error(err, f"/proc/<child>/{step}", map_hint(err, step),
                        what=f"writing {step}")
    what, hint_errno, hint = _core.STEP_WORDING.get(step, ("child step %s", 0, None))
    path: Optional[bytes] = None
    subject = ""
    if step == "exec":
        path = program
    elif step == "cwd":
        path = spec.cwd
    elif step == "root":
        path = spec.root
    elif step == "mount":
        path, subject = step_path(spec.mounts[f.index], err), str(f.index)
    elif step == "mount_proc":
        path = spec.proc_target
    elif step in ("join", "unshare"):
        kind = (NsType(f.index) if f.index else joined) if step == "join" else new
        subject = ",".join(k.proc_name for k in kind.kinds()) or "?"
        if step == "unshare":
            hint = namespace_hint(err, subject.split(","))
            hint_errno = err
    elif step in ("groups", "setgid", "setuid"):
        subject = str({"groups": spec.groups, "setgid": spec.gid, "setuid": spec.uid}[step])
    elif step == "rlimits":
        subject = _rlimit_name(f.index)
    elif what == "child step %s":
        subject = step
    text_path = None if path is None else os.fsdecode(path)
    if what is None:   # the subject is the path: "path: strerror", as subprocess
        return OSError(err, os.strerror(err), text_path)
    return os_error(err, text_path, hint if err == hint_errno else None,
                    what=what % subject if "%s" in what else what)




def _rlimit_name(resource_number: int) -> str:
    """RLIMIT_CPU for 0, as the rlimits step's error names it."""
    import resource
    for name in dir(resource):
        if name.startswith("RLIMIT_") and getattr(resource, name) == resource_number:
            return name
    return str(resource_number)
