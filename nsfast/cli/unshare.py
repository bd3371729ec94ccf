"""nsfast unshare: run a program in new namespaces, with the flags of unshare(1).

The C launcher runs `nsfast unshare` itself (csrc/cli_unshare.c) and execs the
program in place, as unshare(1) does; it hands the command line to this module
only when an option needs Python: a namespace persisted on =FILE, --netns,
--init, --bind, --ro-bind, --tmpfs, the resource limits, --meta.  Here the
program runs as a child of nsfast.spawn.

util-linux 2.38+ flags, plus nsfast's own --hostname, --init, --bind, --ro-bind
and --tmpfs.  Options end at the first non-option word (as getopt's "+"), so
`nsfast unshare -m ls -l` runs `ls -l`.  A namespace takes a FILE only in the
long form with "=" (`--uts=FILE`), never as the next word; `-Ur` is -U -r.
"""
from __future__ import annotations

import argparse
import os
import pwd
import grp
import signal
import sys
from typing import Optional, Sequence

from . import getopt
from .common import Parser, UsageError, exit_status
from .getopt import Opt

# namespace flags: (short, long, kind, the /proc/PID/ns entry to persist)
NAMESPACE_FLAGS = [
    ("m", "mount", "mnt", "mnt"),
    ("u", "uts", "uts", "uts"),
    ("i", "ipc", "ipc", "ipc"),
    ("n", "net", "net", "net"),
    ("p", "pid", "pid", "pid_for_children"),
    ("U", "user", "user", "user"),
    ("C", "cgroup", "cgroup", "cgroup"),
    ("T", "time", "time", "time_for_children"),
]

# option name -> (short letter or None, how many values: 0, "?" attached only, 1, 2)
OPTIONS = {long: (short, "?") for short, long, _, _ in NAMESPACE_FLAGS}
OPTIONS.update({
    "fork": ("f", 0),
    "forward-signals": (None, 0),
    "keep-caps": (None, 0),
    "clear-env": (None, 0),
    "map-auto": (None, 0),
    "map-root-user": ("r", 0),
    "map-current-user": ("c", 0),
    "map-user": (None, 1),
    "map-group": (None, 1),
    "map-users": (None, 1),
    "map-groups": (None, 1),
    "setgroups": (None, 1),
    "mount-proc": (None, "?"),
    "propagation": (None, 1),
    "kill-child": (None, "?"),
    "setuid": ("S", 1),
    "setgid": ("G", 1),
    "root": ("R", 1),
    "wd": ("w", 1),
    "monotonic": (None, 1),
    "boottime": (None, 1),
    "hostname": (None, 1),
    "netns": (None, 1),
    "init": (None, 0),
    "bind": (None, 2),
    "ro-bind": (None, 2),
    "tmpfs": (None, 1),
    "memory": (None, 1),
    "pids": (None, 1),
    "cpu": (None, 1),
    "cpu-time": (None, 1),
    "wall-time": (None, 1),
    "rlimit": (None, 1),
    "meta": (None, 1),
    "help": ("h", 0),
    "version": ("V", 0),
})
REPEATABLE = {"bind", "ro-bind", "tmpfs", "rlimit"}

USAGE = """usage: {prog} [options] [--] [PROGRAM [ARGS...]]

Run PROGRAM (default $SHELL) in new namespaces.

 -m, --mount[=FILE]        new mount namespace (FILE: persist it by a bind mount)
 -u, --uts[=FILE]          new UTS namespace (hostname, domain name)
 -i, --ipc[=FILE]          new System V IPC namespace
 -n, --net[=FILE]          new network namespace
 -p, --pid[=FILE]          new pid namespace
 -U, --user[=FILE]         new user namespace
 -C, --cgroup[=FILE]       new cgroup namespace
 -T, --time[=FILE]         new time namespace
 -f, --fork                fork before running the program
     --forward-signals     pass SIGTERM and SIGINT on to the program (implies -f)
     --keep-caps           keep the user namespace's capabilities (not with the
                           options that run through Python)
     --clear-env           start the program with an empty environment
 -r, --map-root-user       map your uid and gid to root (implies -U, setgroups deny)
 -c, --map-current-user    map your uid and gid to themselves (implies -U)
     --map-user=UID        map your uid to UID (implies -U)
     --map-group=GID       map your gid to GID (implies -U, setgroups deny)
     --map-users=INNER:OUTER:COUNT|auto   map a range of uids (implies -U)
     --map-groups=INNER:OUTER:COUNT|auto  map a range of gids (implies -U)
     --map-auto            --map-users=auto --map-groups=auto
     --setgroups=allow|deny
     --mount-proc[=DIR]    mount a fresh proc on DIR (default /proc; implies -m)
     --propagation=slave|shared|private|unchanged   (default private)
     --kill-child[=SIG]    send SIG (default KILL) to the program when we die
 -S, --setuid=UID          the uid to run as inside (must be mapped)
 -G, --setgid=GID          the gid to run as inside (must be mapped)
 -R, --root=DIR            chroot into DIR
 -w, --wd=DIR              working directory
     --monotonic=SECONDS   CLOCK_MONOTONIC offset in the time namespace (needs -T)
     --boottime=SECONDS    CLOCK_BOOTTIME offset in the time namespace (needs -T)
     --hostname=NAME       hostname inside (implies -u)
     --netns=NAME          join the named network namespace /run/netns/NAME
     --init                a C init as pid 1 (implies -p)
     --bind SRC DST        bind-mount SRC on DST (needs -m)
     --ro-bind SRC DST     read-only bind mount (needs -m)
     --tmpfs DST           a fresh tmpfs on DST (needs -m)
     --memory=SIZE         memory limit of the sandbox's cgroup (bytes, or 256M)
     --pids=N              at most N tasks in the sandbox's cgroup
     --cpu=SHARE           a share of one CPU (0.5: half a core)
     --cpu-time=SECONDS    CPU time of each process (SIGXCPU, then SIGKILL)
     --wall-time=SECONDS   kill the whole sandbox after SECONDS (-T/--time is the
                           time namespace, as in unshare(1))
     --rlimit NAME=VALUE   an rlimit: cpu, nofile, fsize, stack, as, core (repeatable)
     --meta=FILE           write how it ended to FILE, in isolate's --meta format
 -h, --help, -V, --version
"""


GETOPT = [Opt(name, short, arity) for name, (short, arity) in OPTIONS.items()]


class UnshareParser(Parser):
    """unshare(1)'s getopt_long: an optional FILE only on the long form."""

    def parse_args(self, args: Optional[Sequence[str]] = None,  # type: ignore[override]
                   namespace=None) -> argparse.Namespace:
        found, command = getopt.parse(sys.argv[1:] if args is None else args, GETOPT)
        opts: dict = {}
        for name, value in found:
            arity = OPTIONS[name][1]
            if arity == 0:
                opts[name] = True
            elif arity == "?":
                if value is not None or name not in opts:
                    opts[name] = value
            elif name in REPEATABLE:
                opts.setdefault(name, []).append(value)
            else:
                opts[name] = value
        if "help" in opts:
            sys.stdout.write(USAGE.format(prog=self.prog))
            raise SystemExit(0)
        return argparse.Namespace(opts=opts, command=command)


def build_parser(prog: str) -> Parser:
    return UnshareParser(prog=prog, add_help=False)


def _user_id(text: str, lookup, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return lookup(text)
    except KeyError:
        raise UsageError(f"unknown {what} {text!r}") from None


def _range(text: str, kind: str) -> list:
    """--map-users/--map-groups: INNER:OUTER:COUNT, util-linux 2.38's
    OUTER,INNER,COUNT, or auto (the first range of /etc/subuid or subgid)."""
    from .. import idmap
    if text == "auto":
        start, count = idmap.subordinate_range(kind)
        return [(0, start, count)]
    try:
        if ":" in text:
            inner, outer, count = (int(x) for x in text.split(":"))
        else:
            outer, inner, count = (int(x) for x in text.split(","))
    except ValueError:
        option = "--map-users" if kind == "uid" else "--map-groups"
        raise UsageError(f"{option} takes INNER:OUTER:COUNT or auto, not {text!r}") from None
    return [(inner, outer, count)]


def _seconds(text: str, what: str) -> float:
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        raise UsageError(f"--{what} takes seconds, not {text!r}") from None


def _signal_number(text: Optional[str]) -> int:
    if text is None:
        return signal.SIGKILL
    if text.isdigit():
        return int(text)
    name = text.upper()
    try:
        return int(signal.Signals[name if name.startswith("SIG") else "SIG" + name])
    except KeyError:
        raise UsageError(f"unknown signal {text!r}") from None


def _mntns_id(path: str) -> Optional[int]:
    """The id of the mount namespace at path; None where the kernel has no ids."""
    import fcntl
    from ..kernel import NS_GET_MNTNS_ID
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, NS_GET_MNTNS_ID, buf)
        return int.from_bytes(buf, sys.byteorder)
    except OSError:
        return None
    finally:
        os.close(fd)


class _OlderMountNamespace(Exception):
    """The new mount namespace's id is not above ours: the bind would be refused."""


def _persist(files: dict, affinity: Optional[set] = None):
    """An on_created hook that bind-mounts each new namespace onto its FILE.

    affinity: the CPUs to give the child back (the caller pinned itself, and
    so the child, to one CPU to make the namespace; see _spawn_persisting)."""
    from .. import _core
    from ..kernel import MS_BIND

    def bind(pid: int) -> None:
        if "mnt" in files:
            # The kernel binds a mount namespace file only into an older mount
            # namespace (its loop check compares ids), and since 6.x the ids
            # come from per-CPU batches: a namespace made now on another CPU
            # may have a lower id than ours.
            ours, theirs = _mntns_id("/proc/self/ns/mnt"), _mntns_id(f"/proc/{pid}/ns/mnt")
            if ours is not None and theirs is not None and theirs <= ours:
                raise _OlderMountNamespace
        done = []
        try:
            for entry, path in files.items():
                fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444)
                os.close(fd)
                source = f"/proc/{pid}/ns/{entry}".encode()
                _core.mount(source, os.fsencode(path), None, MS_BIND, None)
                done.append(path)
        except OSError as e:
            for path in done:
                _core.umount2(os.fsencode(path), 2)  # MNT_DETACH
            raise OSError(e.errno, f"persisting the namespace: {e.strerror}"
                          + (" (hint: FILE must not be on a shared mount; see "
                             "findmnt -o+PROPAGATION)" if e.errno == 22 else ""),
                          e.filename) from None
        if affinity is not None:
            os.sched_setaffinity(pid, affinity)
    return bind


def _spawn_persisting(command: list, kw: dict, files: dict):
    """nsfast.spawn, persisting the new namespaces onto their files.

    A new mount namespace takes its id from the CPU that makes it, so when
    its id comes out below our own namespace's (see _persist) the child is
    dropped and made again from each of our CPUs in turn: the CPU that made
    our namespace hands out higher ids than ours from then on."""
    import nsfast
    try:
        return nsfast.spawn(command, on_created=_persist(files), **kw)
    except _OlderMountNamespace:
        pass
    mask = os.sched_getaffinity(0)
    try:
        for cpu in sorted(mask):
            os.sched_setaffinity(0, {cpu})
            try:
                return nsfast.spawn(command, on_created=_persist(files, mask), **kw)
            except _OlderMountNamespace:
                continue
    finally:
        os.sched_setaffinity(0, mask)
    raise OSError(22, "persisting the namespace: the kernel refuses to bind a mount "
                  "namespace whose id is below the caller's own, and no CPU of ours "
                  "gave a higher one (hint: run from a mount namespace made earlier, "
                  "or with more CPUs allowed)", files["mnt"])


def spawn_options(opts: dict) -> tuple[dict, dict]:
    """The nsfast.spawn keywords for parsed unshare options, and the files to
    persist new namespaces on (/proc/PID/ns entry -> FILE)."""
    kinds, persist = set(), {}
    for _, long, kind, entry in NAMESPACE_FLAGS:
        if long in opts:
            kinds.add(kind)
            if opts[long]:
                persist[entry] = opts[long]
    kw: dict = {"pdeathsig": None}
    euid, egid = os.geteuid(), os.getegid()
    uids: list = []
    gids: list = []
    setgroups = opts.get("setgroups")
    if opts.get("map-root-user"):
        uids, gids, setgroups = [(0, euid, 1)], [(0, egid, 1)], setgroups or "deny"
    if opts.get("map-current-user"):
        uids, gids, setgroups = [(euid, euid, 1)], [(egid, egid, 1)], setgroups or "deny"
    if gids and setgroups == "allow":
        raise UsageError("options --setgroups=allow and --map-group are mutually exclusive")
    if "map-user" in opts:
        uids = [(_user_id(opts["map-user"], lambda n: pwd.getpwnam(n).pw_uid, "user"),
                 euid, 1)]
    if "map-group" in opts:
        gids = [(_user_id(opts["map-group"], lambda n: grp.getgrnam(n).gr_gid, "group"),
                 egid, 1)]
        setgroups = setgroups or "deny"
    if opts.get("map-auto"):
        opts = dict(opts, **{"map-users": opts.get("map-users", "auto"),
                             "map-groups": opts.get("map-groups", "auto")})
    if "map-users" in opts:
        uids = uids + _range(opts["map-users"], "uid")
    if "map-groups" in opts:
        gids = gids + _range(opts["map-groups"], "gid")
    if uids or gids:
        kinds.add("user")
        if uids:
            kw["uid_map"] = uids
        if gids:
            kw["gid_map"] = gids
    if setgroups is not None:
        if setgroups not in ("allow", "deny"):
            raise UsageError(f"--setgroups takes allow or deny, not {setgroups!r}")
        kw["setgroups"] = setgroups
    if "hostname" in opts:
        kinds.add("uts")
        kw["hostname"] = opts["hostname"]
    if "netns" in opts:
        if "net" in kinds:
            raise UsageError("--netns joins a network namespace: it cannot go with -n")
        kw["netns"] = opts["netns"]
    if opts.get("init"):
        kinds.add("pid")
        kw["init"] = True
    if "mount-proc" in opts:
        kinds.add("mnt")
        target = opts["mount-proc"] or "/proc"
        if "pid" in kinds:
            kw["mount_proc"] = target
        else:  # unshare(1) allows it: the proc of the current pid namespace
            from ..mounts import Proc
            kw["mounts"] = [Proc(target)]
    if "propagation" in opts:
        kw["propagation"] = opts["propagation"]
    mounts = _mount_steps(opts)
    if mounts:
        if "mnt" not in kinds:
            raise UsageError("--bind, --ro-bind and --tmpfs need -m/--mount")
        kw["mounts"] = kw.get("mounts", []) + mounts
    for option, key in (("setuid", "uid"), ("setgid", "gid")):
        if option in opts:
            try:
                kw[key] = int(opts[option])
            except ValueError:
                raise UsageError(f"--{option} takes a number, not {opts[option]!r}") from None
    if "kill-child" in opts:
        kw["pdeathsig"] = _signal_number(opts["kill-child"])
    if "root" in opts:
        kw["root"] = os.path.abspath(opts["root"])
    if "wd" in opts:
        kw["cwd"] = opts["wd"]
    offsets = {clock: _seconds(opts[clock], clock) for clock in ("monotonic", "boottime")
               if clock in opts}
    if offsets:
        if "time" not in kinds:
            raise UsageError("options --monotonic and --boottime require unsharing of a "
                             "time namespace (-T)")
        kw["time_offsets"] = offsets
    if opts.get("keep-caps"):
        raise UsageError("--keep-caps goes only with the options of unshare(1), not with "
                         "nsfast's own (--init, --bind, --memory, ...)")
    if opts.get("clear-env"):
        kw["env"] = {}
    limits = _limits(opts)
    if limits is not None:
        kw["limits"] = limits
    kw["namespaces"] = ",".join(sorted(kinds))
    return kw, persist


def _limits(opts: dict):
    """The Limits of --memory, --pids, --cpu, --cpu-time, --wall-time and
    --rlimit, or None when none is given."""
    from .meta import LIMIT_FLAGS, limits_from
    return limits_from({f: opts[f] for f in LIMIT_FLAGS if f in opts}, opts.get("rlimit", []))


def _mount_steps(opts: dict) -> list:
    from ..mounts import Bind, Tmpfs
    steps = []
    for src, dst in opts.get("bind", []):
        steps.append(Bind(os.path.abspath(src), dst))
    for src, dst in opts.get("ro-bind", []):
        steps.append(Bind(os.path.abspath(src), dst, readonly=True))
    for dst in opts.get("tmpfs", []):
        steps.append(Tmpfs(dst))
    return steps


def run(args: argparse.Namespace) -> int:
    """Spawn the program and wait; its exit status, or 128+N for signal N."""
    opts = args.opts
    if opts.get("version"):
        from nsfast import __version__
        print(f"nsfast unshare {__version__}")
        return 0
    import nsfast
    command = args.command
    kw, persist = spawn_options(opts)
    if not command:   # the user's shell, as a login shell, as unshare(1) starts it
        shell = os.environ.get("SHELL") or "/bin/sh"
        command, kw["executable"] = ["-" + os.path.basename(shell)], shell
    meta = opts.get("meta")
    if meta is not None:
        from .meta import meta_lines, write_meta
        kw.setdefault("limits", nsfast.Limits())   # for the usage report
    try:
        proc = (_spawn_persisting(command, kw, persist) if persist
                else nsfast.spawn(command, **kw))
    except OSError as e:
        if meta is not None:
            write_meta(meta, meta_lines(None, f"{e.filename or ''}: {e.strerror}"))
        raise
    # as unshare(1): the terminal's ^C and a TERM go to the program (passed
    # on with --forward-signals), and we report how it ended.  Ignored only
    # now: the program inherits what is ignored when it starts.
    forward = opts.get("forward-signals")
    handler = (lambda sig, _frame: proc.send_signal(sig)) if forward else signal.SIG_IGN
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        returncode = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if meta is not None:
        write_meta(meta, meta_lines(proc.usage, cgroup=kw["limits"].needs_cgroup))
    if returncode < 0:
        die_of_signal(-returncode)
    return exit_status(returncode)


def die_of_signal(sig: int) -> None:
    """End this process with signal sig, as the program ended, as unshare(1)
    does; returns only for a signal that does not kill by default."""
    import resource
    sys.stdout.flush()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))   # the program's core is the one
    if sig not in (signal.SIGKILL, signal.SIGSTOP):   # their action cannot change
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
    os.kill(os.getpid(), sig)
