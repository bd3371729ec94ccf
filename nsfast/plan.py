"""SpawnPlan: a spawn request validated once into an immutable plan.

Everything nsfast.spawn decides before any syscall is here: argument
checks, defaults, id maps, mount steps, the child's spec.  A plan holds no
fd and no process; what differs from call to call (std streams, joined
namespaces, a pool's netns, the cgroup's fd) is taken when it starts
(nsfast/spawn.py).  A repeated identical call reuses its plan and skips all
of this: that is spawn's fast path.
"""
from __future__ import annotations

import errno
import os
import signal
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

from . import _core, confine, idmap, seccomp as _seccomp, template as _template
from .argtypes import Argv
from .features import features
from .flags import KindsLike, NsType
from .handles import check_fd
from .limits import Limits
from .mounts import (_FS_ENCODING, _FS_ERRORS, _HOLD, _PIVOT, MS_REC, PROPAGATION_FLAGS, Proc,
                     absolute, pivot_step)

HOST_NAME_MAX = 64

# plain ints: IntFlag arithmetic is slow, and runs on every spawn
_UTS, _MNT, _PID, _NET, _TIME, _USER = (int(k) for k in (
    NsType.UTS, NsType.MNT, NsType.PID, NsType.NET, NsType.TIME, NsType.USER))
_KEEP_ID = 0xFFFFFFFF
_NO_KINDS = NsType(0)


def _kinds(namespaces: KindsLike) -> int:
    """NsType.parse as a plain int (NsType.parse caches the strings callers repeat)."""
    if namespaces is None:
        return 0
    return int(NsType.parse(namespaces))


TIME_CLOCKS = ("monotonic", "boottime")
# what spawn(propagation=) takes: "unbindable" would make / unusable as a bind source
# (a tuple: `in` must answer for unhashable values too, with the ValueError below)
_SPAWN_PROPAGATIONS = ("private", "slave", "shared", "unchanged")


class ChildSpec:
    """Everything the C child reads, already converted (see csrc/spawn.h);
    _core.Packed reads its public fields.

    The defaults are class attributes, so that a spawn sets only what it
    changes: building this object is on every spawn's path.  Sequences
    default to a shared empty tuple and are replaced, never appended to."""
    exec_paths: Sequence = ()
    argv: Sequence = ()
    envp: Optional[Sequence] = None   # None: this process's environment
    cwd: Optional[bytes] = None
    root: Optional[bytes] = None
    new_kinds: int = 0
    no_pid_fork: bool = False
    user_last: bool = False       # the user namespace last (a mount template)
    user_fd: int = -1             # user_last: join this one instead of a new one
    join_fds: Sequence = ()
    join_kinds: Sequence = ()
    join_pidfd: bool = False
    join_setgroups: bool = False
    hostname: Optional[bytes] = None
    domainname: Optional[bytes] = None
    propagation: int = 0
    mounts: Sequence = ()
    proc_target: Optional[bytes] = None
    loopback_up: bool = False
    std_fds: tuple = (-1, -1, -1)
    keep_fds: Sequence = ()
    max_fd: int = 1024
    new_session: bool = False
    controlling_tty: bool = False
    pdeathsig: int = 0
    parent_pid: int = 0
    no_new_privs: bool = False
    caps_keep: Optional[int] = None
    caps_ambient: int = 0
    init: bool = False
    init_fd: int = -1
    ids_early: bool = False
    ops: Sequence = ()   # (step name, a, b, c, text) for steps without a field
    cgroup_fd: int = -1
    use_clone3: bool = True
    groups: Optional[list] = None
    groups_best_effort: bool = False
    gid: Optional[int] = None
    uid: Optional[int] = None
    root_fd: int = -1
    cwd_fd: int = -1


def _bytes_args(values: list, what: str) -> list[bytes]:
    """[_bytes_arg(v, what) for v in values], with str encoded in line."""
    out = []
    for v in values:
        if type(v) is str:
            b = v.encode(_FS_ENCODING, _FS_ERRORS)
            if b"\0" in b:
                raise ValueError(f"embedded null byte in {what}")
            out.append(b)
        else:
            out.append(_bytes_arg(v, what))
    return out


def _bytes_arg(value: Any, what: str) -> bytes:
    if type(value) is str:   # the common case, without os.fsencode's indirection
        b = value.encode(_FS_ENCODING, _FS_ERRORS)
    elif isinstance(value, bytes):
        b = value
    elif isinstance(value, (str, os.PathLike)):
        b = os.fsencode(value)
    else:
        raise TypeError(f"{what} must be str, bytes or os.PathLike, not {type(value).__name__}")
    if b"\0" in b:
        raise ValueError(f"embedded null byte in {what}")
    return b


def _environment(env: Mapping) -> list[bytes]:
    """The child's envp for an env= mapping (env=None is the process's
    environment, which _core passes as it is, as subprocess does)."""
    if not isinstance(env, Mapping):
        raise TypeError(f"env must be a mapping of names to values, not {type(env).__name__}")
    out = []
    for k, v in env.items():
        kb, vb = _bytes_arg(k, "env key"), _bytes_arg(v, "env value")
        if not kb or b"=" in kb:
            raise ValueError(f"illegal environment variable name {kb!r}")
        out.append(kb + b"=" + vb)
    return out


_exec_path_cache: dict = {}


def _exec_paths(program: bytes, env: Optional[Mapping]) -> list[bytes]:
    """Candidates to execve, searched as subprocess does (PATH of the child's env).

    The list depends only on (PATH, program), so it is cached: execve itself
    still tries each candidate, so a program installed later is found."""
    if b"/" in program:
        return [program]
    path = None
    if env is None:
        path = os.environ.get("PATH")
    else:
        for k, v in env.items():
            if k == "PATH" or k == b"PATH":
                path = v
    key = (path, program)
    paths = _exec_path_cache.get(key)
    if paths is None:
        if len(_exec_path_cache) > 256:
            _exec_path_cache.clear()
        dirs = os.get_exec_path({} if path is None else {"PATH": os.fsdecode(path)})
        paths = [os.path.join(os.fsencode(d), program) for d in dirs]
        _exec_path_cache[key] = paths
    return paths


def _time_offsets(offsets: Mapping) -> bytes:
    lines = []
    for clock, seconds in offsets.items():
        if clock not in TIME_CLOCKS:
            raise ValueError(f"unknown clock {clock!r} in time_offsets (use {TIME_CLOCKS})")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError("time offsets are seconds, int or float")
        # the kernel wants 0 <= nsec < 1e9, also for a negative offset
        sec, nsec = divmod(round(seconds * 1_000_000_000), 1_000_000_000)
        lines.append(f"{clock} {sec} {nsec}\n")
    return "".join(lines).encode()


def _capability_mask(caps: Iterable) -> int:
    names = _capability_names()
    mask = 0
    for c in caps:
        if isinstance(c, bool):
            raise TypeError("capabilities are names like 'CAP_NET_ADMIN' or numbers")
        if isinstance(c, int):
            if not 0 <= c < 64:
                raise ValueError(f"capability number {c} is out of range")
            mask |= 1 << c
            continue
        if not isinstance(c, str):
            raise TypeError("capabilities are names like 'CAP_NET_ADMIN' or numbers")
        key = c.upper()
        if not key.startswith("CAP_"):
            key = "CAP_" + key
        if key not in names:
            raise ValueError(f"unknown capability {c!r}")
        mask |= 1 << names[key]
    return mask


def _capability_names() -> dict[str, int]:
    order = ("CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
             "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK "
             "IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN "
             "SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE "
             "AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND "
             "AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE").split()
    return {"CAP_" + n: i for i, n in enumerate(order)}


def _check_id(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be a numeric id, not {type(value).__name__}")
    if not 0 <= value < 2**31:
        raise ValueError(f"{what} {value} is out of range")
    return value


def _credentials(spec: ChildSpec, maps: Optional["_Maps"], uid, gid, extra_groups) -> None:
    """Fill spec.uid/gid/groups: the child's setgroups, setresgid, setresuid."""
    if uid is not None:
        _check_id(uid, "uid")
    if gid is not None:
        _check_id(gid, "gid")
    if extra_groups is not None:
        if isinstance(extra_groups, (int, str, bytes)):
            raise TypeError("extra_groups is a sequence of numeric gids")
        spec.groups = [_check_id(g, "extra_groups entry") for g in extra_groups]
    if maps is not None and (maps.uids or maps.gids):
        if uid is None and gid is None:
            if maps.default_ids is _NOT_YET:
                maps.default_ids = _inside_ids(maps, None, None)
            ids = maps.default_ids
        else:
            ids = _inside_ids(maps, uid, gid)
        if ids is None:
            return
        spec.uid, spec.gid = (None if v == _KEEP_ID else v for v in ids)
        spec.ids_early = True
        if spec.groups is None:
            # drop the host's supplementary groups; refused (and moot) when
            # setgroups is denied in the new namespace
            spec.groups, spec.groups_best_effort = [], True
        return
    spec.uid, spec.gid = uid, gid


class _Maps:
    """The writes (or helper) that set a new user namespace's id maps.

    Shared between spawns (see _shortcut_maps): nothing may modify one."""
    def __init__(self, writes, helper, uids=(), gids=()):
        self.writes = tuple(writes)
        self.helper = helper
        self.uids = uids
        self.gids = gids
        self.default_ids = _NOT_YET   # _inside_ids(self, None, None), once asked


_NOT_YET = object()


def _inside_ids(maps: Optional[_Maps], uid, gid) -> Optional[tuple]:
    """The (uid, gid) the child takes after the maps are written, or None.

    Without a switch the child keeps the caller's kernel ids; when the maps
    leave those unmapped (a range map written as root), it would run as
    nobody inside yet as the host's root towards every file: so it becomes
    inside root (or the lowest mapped id) instead."""
    for what, value in (("uid", uid), ("gid", gid)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"{what} must be an int")
    if maps is None or not (maps.uids or maps.gids):
        if uid is not None or gid is not None:
            raise ValueError("uid=/gid= need an id map in a new user namespace")
        return None
    chosen = []
    for what, value, triples, own in (("uid", uid, maps.uids, os.geteuid()),
                                      ("gid", gid, maps.gids, os.getegid())):
        if value is None:
            inside = [a for a, b, c in triples if b <= own < b + c]
            if not triples or inside:
                chosen.append(None)   # our own id is mapped (or no map): keep it
                continue
            starts = sorted(a for a, _, _ in triples)
            value = 0 if any(a <= 0 < a + c for a, _, c in triples) else starts[0]
        elif not any(a <= value < a + c for a, _, c in triples):
            raise ValueError(f"{what} {value} is not mapped by the {what}_map")
        chosen.append(value)
    if chosen == [None, None]:
        return None
    # (uid_t)-1 leaves that id as it is (setresuid/setresgid semantics)
    return tuple(_KEEP_ID if v is None else v for v in chosen)


def _id_maps(new: int, uid_map, gid_map, map_root, map_current_user, map_users,
             setgroups) -> Optional[_Maps]:
    asked = ((uid_map is not None or gid_map is not None) + bool(map_root)
             + bool(map_current_user) + (map_users is not None))
    if setgroups not in (None, "allow", "deny"):
        raise ValueError(f"setgroups must be 'allow' or 'deny', not {setgroups!r}")
    if not asked:
        if setgroups is None:
            return None
        if not new & _USER:
            raise ValueError("setgroups= needs a new user namespace (namespaces='user')")
        # as unshare -U --setgroups=deny: no map yet, setgroups(2) refused for good
        return _Maps([("setgroups", setgroups.encode())], None)
    if asked > 1:
        raise ValueError("choose one of uid_map/gid_map, map_root, map_current_user, map_users")
    if not new & _USER:
        raise ValueError("id maps need a new user namespace (namespaces='user')")
    euid, egid = os.geteuid(), os.getegid()
    if map_root or map_current_user:
        # these two depend on nothing else: render them once
        key = (bool(map_root), euid, egid, setgroups)
        maps = _shortcut_maps.get(key)
        if maps is None:
            maps = _shortcut_maps[key] = _new_maps(map_root, map_current_user, None, None,
                                                   None, setgroups, euid, egid)
        return maps
    return _new_maps(map_root, map_current_user, map_users, uid_map, gid_map, setgroups,
                     euid, egid)


# map_root/map_current_user maps by (map_root, euid, egid, setgroups)
_shortcut_maps: dict = {}


def _new_maps(map_root, map_current_user, map_users, uid_map, gid_map, setgroups,
              euid: int, egid: int) -> _Maps:
    if map_root:
        uids, gids = [(0, euid, 1)], [(0, egid, 1)]
        setgroups = setgroups or "deny"
    elif map_current_user:
        uids, gids = [(euid, euid, 1)], [(egid, egid, 1)]
        setgroups = setgroups or "deny"
    elif map_users is not None:
        if map_users != "auto":
            raise ValueError("map_users takes 'auto' (a range from /etc/subuid); "
                             "give explicit ranges with uid_map/gid_map")
        ustart, ucount = idmap.subordinate_range("uid")
        gstart, gcount = idmap.subordinate_range("gid")
        uids, gids = [(0, ustart, ucount)], [(0, gstart, gcount)]
    else:
        uids = idmap.parse_map(uid_map, "uid_map") if uid_map is not None else []
        gids = idmap.parse_map(gid_map, "gid_map") if gid_map is not None else []
    privileged = euid == 0
    own_only = all(not t or t == [(t[0][0], own, 1)] for t, own in ((uids, euid), (gids, egid)))
    if not privileged and not own_only:
        return _Maps([], lambda pid: idmap.write_with_helper(pid, uids, gids), uids, gids)
    if not privileged and gids:
        setgroups = setgroups or "deny"
        if setgroups != "deny":
            raise ValueError("an unprivileged gid_map needs setgroups='deny'")
    writes = []
    if uids:
        writes.append(("uid_map", idmap.render(uids)))
    if setgroups is not None:
        writes.append(("setgroups", setgroups.encode()))
    if gids:
        writes.append(("gid_map", idmap.render(gids)))
    return _Maps(writes, None, uids, gids)




class SpawnPlan:
    """A validated, immutable spawn request (see nsfast.spawn for the options).

    Built once per distinct call; spawn() keeps plans of repeated calls.
    Raises ValueError/TypeError for a bad request before anything is
    touched.  Its fields are read, never written, after construction.

    >>> plan = SpawnPlan(["/bin/true"], namespaces="uts")
    >>> plan.spec.new_kinds == int(nsfast.NsType.UTS)
    True
    """
    __slots__ = ("argv", "program", "spec", "env", "cwd", "root", "new", "writes", "helper",
                 "join", "netns", "cgroup", "std", "on_created", "init", "reusable", "packed",
                 "template", "plain", "limits")

    def __init__(self, argv: Argv, *, executable=None, env: Optional[Mapping] = None,
                 cwd=None, namespaces: KindsLike = None, join: Any = None,
                 uid_map=None, gid_map=None, map_root: bool = False,
                 map_current_user: bool = False, map_users: Optional[str] = None,
                 setgroups: Optional[str] = None, uid: Optional[int] = None,
                 gid: Optional[int] = None, hostname: Optional[str] = None,
                 domainname: Optional[str] = None, propagation: str = "private",
                 mount_proc: Union[bool, str] = False, mounts: Sequence = (), root=None,
                 pivot_root: bool = False, init: bool = False, stdin=None, stdout=None,
                 stderr=None, pass_fds: Sequence[int] = (), new_session: bool = False,
                 controlling_tty: bool = False,
                 pdeathsig: Optional[int] = signal.SIGKILL,
                 time_offsets: Optional[Mapping] = None, cgroup=None, netns: Any = None,
                 loopback: bool = False, no_new_privs: bool = False,
                 capabilities: Optional[Iterable] = None,
                 ambient_capabilities: Iterable = (),
                 extra_groups: Optional[Sequence[int]] = None,
                 root_fd: Optional[int] = None, cwd_fd: Optional[int] = None,
                 fork_for_pid: bool = True, umask: Optional[int] = None,
                 limits: Optional[Limits] = None,
                 seccomp: Union[None, str, "_seccomp.Seccomp"] = None,
                 max_user_namespaces: Optional[int] = None,
                 readonly_root: bool = False, mask_paths: Union[bool, Sequence] = False,
                 readonly_paths: Union[bool, Sequence] = False, minimal_dev: bool = False,
                 tmp_size: Optional[int] = None, overlay: Union[None, bool, int] = None,
                 on_created: Optional[Callable[[int], None]] = None,
                 template: Any = None, user_ns: Optional[int] = None,
                 hold: Optional[tuple] = None,
                 hold_before_root: Optional[tuple] = None) -> None:
        spec = ChildSpec()
        # ---- argv, program, env, cwd
        if type(argv) is not list:
            if isinstance(argv, (str, bytes)) or hasattr(argv, "__fspath__"):
                argv = [argv]
            elif isinstance(argv, Mapping):
                raise TypeError("argv is a sequence of arguments, not a mapping")
            try:
                argv = list(argv)
            except TypeError:
                raise TypeError(f"argv is a sequence of arguments, not "
                                f"{type(argv).__name__}") from None
        if not argv:
            raise ValueError("argv must not be empty")
        spec.argv = _bytes_args(argv, "argv")
        program = _bytes_arg(executable, "executable") if executable is not None else spec.argv[0]
        if not program:
            raise ValueError("the program name (argv[0] or executable) is empty")
        spec.exec_paths = _exec_paths(program, env)
        if env is not None:
            spec.envp = _environment(env)
        if cwd is not None:
            spec.cwd = _bytes_arg(cwd, "cwd")
            if not spec.cwd:
                raise ValueError("cwd is an empty path")
        # ---- namespaces
        new = _kinds(namespaces)
        if hostname is not None or domainname is not None:
            if not new & _UTS:
                raise ValueError("hostname/domainname need a new uts namespace (namespaces='uts')")
            for what, name in (("hostname", hostname), ("domainname", domainname)):
                if name is None:
                    continue
                b = _bytes_arg(name, what)
                if len(b) > HOST_NAME_MAX:
                    raise ValueError(f"{what} is {len(b)} bytes; the kernel takes at most "
                                     f"{HOST_NAME_MAX}")
                setattr(spec, what, b)
        if propagation not in _SPAWN_PROPAGATIONS:
            raise ValueError(f"propagation must be private, slave, shared or unchanged, "
                             f"not {propagation!r}")
        if new & _MNT and propagation != "unchanged":
            spec.propagation = PROPAGATION_FLAGS[propagation] | MS_REC
        if mount_proc:
            if not (new & _MNT and new & _PID):
                raise ValueError("mount_proc needs new mnt and pid namespaces")
            target = "/proc" if mount_proc is True else mount_proc
            # a path inside the new root when there is one (the child mounts it
            # after chroot), as unshare -R DIR --mount-proc does
            spec.proc_target = absolute(target, "mount_proc")
        steps = []
        for m in mounts:
            if not hasattr(m, "as_steps"):
                raise TypeError(f"mounts holds Bind, Tmpfs, Proc ... not {type(m).__name__}")
            steps.extend(m.as_steps())
        if (steps or pivot_root) and not new & _MNT:
            raise ValueError("mounts and pivot_root need a new mnt namespace")
        if overlay is not None and (isinstance(overlay, bool) is False and (
                not isinstance(overlay, int) or overlay <= 0)):
            raise ValueError("overlay is True or the upper layer's size in bytes")
        if template is not None:
            # the root is the template's: the mounts each sandbox owns go on
            # top, and the user namespace comes last (nsfast/template.py)
            if not isinstance(template, _template.MountTemplate):
                raise TypeError(f"template is an nsfast.template.MountTemplate, not "
                                f"{type(template).__name__}")
            if not new & _MNT:
                raise ValueError("template= needs a new mnt namespace (a copy of the template)")
            if root is not None or pivot_root or overlay or new & _TIME or join is not None:
                raise ValueError("template= brings the root: it takes no root=, pivot_root, "
                                 "overlay, time namespace or join=")
            if mount_proc and (mount_proc not in (True, "/proc") or not new & _PID):
                raise ValueError("a template's sandbox mounts its proc on /proc, in a new "
                                 "pid namespace")
            if max_user_namespaces is not None:
                raise ValueError("with template= the user namespace comes last, after its "
                                 "sysctls could be written: set max_user_namespaces on a "
                                 "user namespace made ahead (user_ns=)")
            steps = confine.template_steps(bool(mount_proc), mask_paths, readonly_paths,
                                           minimal_dev, tmp_size, steps, template.empty_dir)
            spec.proc_target = None
            spec.propagation = 0   # the template's mounts are private already
            spec.user_last = True
        elif user_ns is not None:
            raise ValueError("user_ns= is joined last, after a template's mounts: it needs "
                             "template=")
        elif confine.wanted(readonly_root, mask_paths, readonly_paths, minimal_dev, tmp_size,
                            overlay):
            # a confined root (nsfast/confine.py): built, then entered with pivot_root
            if not new & _MNT:
                raise ValueError("readonly_root, mask_paths, readonly_paths, minimal_dev, "
                                 "tmp_size and overlay need a new mnt namespace")
            if mount_proc and not new & _PID:
                raise ValueError("mount_proc needs new mnt and pid namespaces")
            if root is not None and not pivot_root:
                raise ValueError("a confined root is entered with pivot_root: "
                                 "give pivot_root=True with root=")
            if mount_proc not in (True, False, "/proc"):
                raise ValueError("a confined root mounts its proc on /proc")
            steps = confine.root_steps(None if root is None else absolute(root, "root"),
                                       readonly_root, bool(mount_proc), mask_paths,
                                       readonly_paths, minimal_dev, tmp_size, steps,
                                       overlay)
            spec.proc_target = None
            root = pivot_root = None
        if root is not None:
            rootb = absolute(root, "root")
            if pivot_root:
                if spec.proc_target is not None:
                    # before the pivot: in a user namespace the kernel lets a new
                    # proc be mounted only while a full one is visible
                    steps.extend(Proc(os.fsdecode(rootb.rstrip(b"/") + spec.proc_target))
                                 .as_steps())
                    spec.proc_target = None
                steps.append(pivot_step(rootb))
            else:
                spec.root = rootb
        elif pivot_root:
            raise ValueError("pivot_root needs root=")
        spec.mounts = steps
        if init:
            if not new & _PID:
                raise ValueError("init needs a new pid namespace")
            spec.init = True
        if loopback:
            if not (new & _NET):
                raise ValueError("loopback=True needs a new net namespace")
            spec.loopback_up = True
        # ---- id maps
        maps = _id_maps(new, uid_map, gid_map, map_root, map_current_user, map_users, setgroups)
        _credentials(spec, maps, uid, gid, extra_groups)
        if user_ns is not None:
            if new & _USER:
                raise ValueError("user_ns= joins a user namespace made ahead: namespaces= "
                                 "must not ask for a new one too")
            spec.user_fd = check_fd(user_ns, "user_ns")
        if spec.user_last:
            spec.ids_early = False   # the ids exist once the user namespace does
        if time_offsets:
            if not new & _TIME:
                raise ValueError("time_offsets need a new time namespace (namespaces='time')")
            if not isinstance(time_offsets, Mapping):
                raise TypeError("time_offsets is a mapping like {'monotonic': 86400}")
            offsets = _time_offsets(time_offsets)
        else:
            offsets = None
        # ---- fds, process
        if isinstance(pass_fds, (int, str, bytes)):
            raise TypeError("pass_fds is a sequence of fds")
        if pass_fds:
            keep = {check_fd(fd, "an fd in pass_fds") for fd in pass_fds}
            spec.keep_fds = sorted(fd for fd in keep if fd > 2)
        if pdeathsig is not None:
            if isinstance(pdeathsig, bool) or not isinstance(pdeathsig, int):
                raise TypeError(f"pdeathsig is a signal number, not {type(pdeathsig).__name__}")
            if not 0 < pdeathsig < signal.NSIG:
                raise ValueError(f"bad pdeathsig {pdeathsig!r}")
            spec.pdeathsig = int(pdeathsig)
        spec.new_session = bool(new_session)
        if controlling_tty:
            # TIOCSCTTY takes a terminal only for the leader of a session
            # that has none: the child's own, new one
            if not new_session:
                raise ValueError("controlling_tty needs new_session=True")
            if stdin is None:
                raise ValueError("controlling_tty makes stdin the session's terminal: "
                                 "give stdin= a terminal")
            spec.controlling_tty = True
        spec.no_new_privs = bool(no_new_privs)
        if capabilities is not None:
            spec.caps_keep = _capability_mask(capabilities)
        ambient = _capability_mask(ambient_capabilities)
        if ambient:
            if spec.caps_keep is None or ambient & ~spec.caps_keep:
                raise ValueError("ambient_capabilities must be among capabilities (the "
                                 "kernel raises only permitted and inheritable ones)")
            spec.caps_ambient = ambient
        for what, fd in (("root_fd", root_fd), ("cwd_fd", cwd_fd)):
            if fd is not None:
                setattr(spec, what, check_fd(fd, what))
        if root_fd is not None and (root is not None or pivot_root):
            raise ValueError("give root= or root_fd=, not both")
        spec.use_clone3 = features.clone3
        if on_created is not None and not callable(on_created):
            raise TypeError("on_created must be callable with the child's pid")
        if umask is not None:
            if isinstance(umask, bool) or not isinstance(umask, int):
                raise TypeError(f"umask is an int like 0o022, not {type(umask).__name__}")
            if not 0 <= umask <= 0o777:
                raise ValueError(f"umask must be between 0 and 0o777, not {umask:#o}")
            spec.ops = (*spec.ops, ("umask", umask, 0, 0, None))
        if limits is not None:
            if not isinstance(limits, Limits):
                raise TypeError(f"limits is an nsfast.Limits, not {type(limits).__name__}")
            if limits.needs_cgroup and cgroup is not None:
                raise ValueError("limits with memory, pids or cpu make the sandbox's own "
                                 "cgroup: they cannot be combined with cgroup=")
            spec.ops = (*spec.ops, *(("rlimits", res, soft, hard, None)
                                     for res, soft, hard in limits.rlimits()))
        if max_user_namespaces is not None:
            if isinstance(max_user_namespaces, bool) or not isinstance(max_user_namespaces, int):
                raise TypeError("max_user_namespaces is an int")
            if not 0 <= max_user_namespaces < 2**31:
                raise ValueError(f"max_user_namespaces {max_user_namespaces} is out of range")
            if not new & _USER:
                raise ValueError("max_user_namespaces needs a new user namespace (it is a "
                                 "sysctl of the user namespace)")
            # written by the child inside its user namespace, before the mounts
            spec.ops = (*spec.ops, ("sysctl", max_user_namespaces, 0, 0,
                                    b"/proc/sys/user/max_user_namespaces"))
        policy = _seccomp.resolve(seccomp)
        if policy is not None:
            bpf = policy.bpf()
            spec.ops = (*spec.ops, ("seccomp", len(bpf) // 8, 0, 0, bpf))
        # (ready fd or -1, go fd): the child waits until a byte comes on go,
        # before seccomp and exec (hold: an OCI runtime's create and start),
        # or after its mounts, before its root is entered (hold_before_root:
        # the runtime's createContainer hooks run in its namespaces then)
        for name, fds, where in (("hold", hold, 0), ("hold_before_root", hold_before_root, 1)):
            if fds is None:
                continue
            if not isinstance(fds, tuple) or len(fds) != 2:
                raise TypeError(f"{name} is (ready fd or -1, go fd)")
            ready, go = fds
            for what, fd in (("ready", ready), ("go", go)):
                if not (what == "ready" and fd == -1) and check_fd(fd, f"{name}'s {what} fd") < 3:
                    raise ValueError(f"{name}'s {what} fd must be above 2 (0-2 are std streams)")
            spec.keep_fds = sorted({*spec.keep_fds, *(fd for fd in fds if fd > 2)})
            spec.ops = (*spec.ops, ("hold", ready, go, where, None))
        if hold_before_root is not None:
            if not spec.mounts:
                raise ValueError("hold_before_root needs mount steps (a new mnt namespace "
                                 "with mounts or a root)")
            at = next((i for i, m in enumerate(spec.mounts) if m[0] == _PIVOT),
                      len(spec.mounts))
            spec.mounts = (*spec.mounts[:at], (_HOLD, False, 0, None, None, None),
                           *spec.mounts[at:])
        if not features.close_range:
            # only the close loop of kernels before 5.9 needs the bound
            try:
                spec.max_fd = os.sysconf("SC_OPEN_MAX")
            except (ValueError, OSError):
                spec.max_fd = 65536

        if netns is not None and new & _NET:
            raise ValueError("netns= conflicts with a new or joined net namespace")
        cg = None
        if cgroup is not None:
            if not features.clone3:
                raise OSError(errno.ENOSYS, "cgroup= needs clone3 (kernel 5.7)")
            cg = os.fsdecode(absolute(cgroup, "cgroup"))
        for which, value in enumerate((stdin, stdout, stderr)):
            _check_stream(value, which)
        # how the namespaces are made (clone, unshare, a second fork) is decided in C
        spec.new_kinds = int(new)
        spec.no_pid_fork = not fork_for_pid
        writes: Sequence = ()
        if maps is not None:
            writes = maps.writes
        if offsets is not None:
            writes = (*writes, ("timens_offsets", offsets))
        fields = dict(
            argv=argv, program=program, spec=spec, env=env, cwd=cwd, root=root, new=new,
            writes=writes, helper=maps.helper if maps is not None else None, join=join,
            netns=netns, cgroup=cg, std=(stdin, stdout, stderr), on_created=on_created,
            init=bool(init), limits=limits, template=template,
            # /etc/subuid may change between calls: map_users="auto" reads it each time
            reusable=map_users is None,
            packed=_core.Packed(spec),
            # nothing to take per call: start() is one call into _core
            plain=((maps is None or maps.helper is None) and join is None and netns is None
                   and template is None
                   and cg is None and stdin is None and stdout is None and stderr is None
                   and on_created is None and not init and b"/" in program
                   # limits: a box, a deadline and the usage are wired up in start()
                   and limits is None))
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a SpawnPlan is immutable")


def _check_stream(value: Any, which: int) -> None:
    """The shape of a std stream argument (its fd is taken at each start):
    None, PIPE (-1), DEVNULL (-3), STDOUT (-2, stderr only), an fd, a file."""
    if value is None:
        return
    if isinstance(value, bool):
        raise TypeError("a std stream cannot be a bool")
    if type(value) is int and value in (-1, -3):
        return
    if type(value) is int and value == -2:
        if which != 2:
            raise ValueError("STDOUT is only valid for stderr")
        return
    if isinstance(value, int):
        check_fd(value, "a std stream")
        return
    if not hasattr(value, "fileno"):
        raise TypeError(f"std stream must be None, an fd, a file, PIPE, DEVNULL or STDOUT, "
                        f"not {type(value).__name__}")
