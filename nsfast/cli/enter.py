"""nsfast enter (alias nsfast nsenter): run a program in other namespaces, as nsenter(1).

The flags are util-linux 2.38's, parsed the way its getopt_long does: an
optional =FILE must be attached (-n/run/netns/x, -n=FILE, --net=FILE), the
first non-option ends the options, long options may be abbreviated.
"""
from __future__ import annotations

import os
import signal
from typing import Optional

from . import getopt
from .common import Parser, UsageError, exit_status
from .getopt import Opt

# letter -> (long name, kind name); order as nsenter enters them
NAMESPACE_FLAGS = {
    "U": ("user", "user"), "C": ("cgroup", "cgroup"), "i": ("ipc", "ipc"), "u": ("uts", "uts"),
    "n": ("net", "net"), "p": ("pid", "pid"), "m": ("mount", "mnt"), "T": ("time", "time"),
}
# nsenter's options: an optional value (FILE, DIR) may be attached to the letter too
GETOPT = [
    Opt("all", "a"), Opt("target", "t", 1), Opt("setuid", "S", 1), Opt("setgid", "G", 1),
    Opt("preserve-credentials"), Opt("root", "r", "?", True), Opt("wd", "w", "?", True),
    Opt("no-fork", "F"), Opt("help", "h"), Opt("version", "V"),
    *(Opt(name, letter, "?", True) for letter, (name, _) in NAMESPACE_FLAGS.items()),
]
# long name -> the key _apply() knows it by
KEY = {o.name: (o.short or "preserve") for o in GETOPT}

HELP = """usage: {prog} [options] [<program> [<argument>...]]

Run a program with namespaces of other processes.

options:
 -a, --all                 enter all namespaces
 -t, --target <pid>        target process to get namespaces from
 -m, --mount[=<file>]      enter mount namespace
 -u, --uts[=<file>]        enter UTS namespace (hostname etc)
 -i, --ipc[=<file>]        enter System V IPC namespace
 -n, --net[=<file>]        enter network namespace
 -p, --pid[=<file>]        enter pid namespace
 -C, --cgroup[=<file>]     enter cgroup namespace
 -U, --user[=<file>]       enter user namespace
 -T, --time[=<file>]       enter time namespace
 -S, --setuid <uid>        set uid in entered namespace
 -G, --setgid <gid>        set gid in entered namespace
     --preserve-credentials do not touch uids or gids
 -r, --root[=<dir>]        set the root directory
 -w, --wd[=<dir>]          set the working directory
 -F, --no-fork             do not fork before exec'ing <program>
 -h, --help                display this help
 -V, --version             display version
"""


class Options:
    """What the command line asked for."""

    def __init__(self) -> None:
        self.target: Optional[int] = None
        self.all = False
        self.namespaces: dict = {}        # kind name -> FILE or None (from the target)
        self.uid: Optional[int] = None
        self.gid: Optional[int] = None
        self.preserve_credentials = False
        self.root: object = None          # None, True (the target's) or a path
        self.wd: object = None
        self.fork = True
        self.program: list = []


def _number(value: str, what: str) -> int:
    try:
        n = int(value, 10)
    except ValueError:
        raise UsageError(f"failed to parse {what}: '{value}'") from None
    if n < 0:
        raise UsageError(f"failed to parse {what}: '{value}'")
    return n


def _apply(opts: Options, key: str, value: Optional[str]) -> None:
    if value is not None and value.startswith("=") and key in NAMESPACE_FLAGS.keys() | {"r", "w"}:
        value = value[1:]  # -n=FILE, as nsenter accepts
    if key in NAMESPACE_FLAGS:
        opts.namespaces[NAMESPACE_FLAGS[key][1]] = value or None
    elif key == "a":
        opts.all = True
    elif key == "t":
        if opts.target is not None:
            raise UsageError("option --target may be given only once")
        opts.target = _number(value or "", "target PID")
        if opts.target == 0:
            raise UsageError(f"failed to parse target PID: '{value}'")
    elif key == "S":
        opts.uid = _number(value or "", "uid")
    elif key == "G":
        opts.gid = _number(value or "", "gid")
    elif key == "preserve":
        opts.preserve_credentials = True
    elif key == "r":
        opts.root = value or True
    elif key == "w":
        opts.wd = value or True
    elif key == "F":
        opts.fork = False


def parse(argv: list, prog: str) -> Options:
    """nsenter's command line, parsed as its getopt_long does."""
    opts = Options()
    found, opts.program = getopt.parse(argv, GETOPT)
    for name, value in found:
        _handle(opts, KEY[name], value, prog)
    return opts


def _handle(opts: Options, key: str, value: Optional[str], prog: str) -> None:
    if key == "h":
        os.write(1, HELP.format(prog=prog).encode())
        raise SystemExit(0)
    if key == "V":
        from nsfast import __version__
        os.write(1, f"{prog} (nsfast {__version__}, util-linux 2.38 flags)\n".encode())
        raise SystemExit(0)
    _apply(opts, key, value)


class _EnterParser(Parser):
    """The dispatcher's parser interface over the getopt-style parse()."""

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        return parse(list(args or []), self.prog)


def build_parser(prog: str) -> Parser:
    return _EnterParser(prog=prog, add_help=False)


def _usable_kinds(opts: Options) -> None:
    """-a: every kind this kernel has, except a user namespace we are already in."""
    pid = opts.target
    for _, kind in NAMESPACE_FLAGS.values():
        if kind in opts.namespaces or not os.path.exists(f"/proc/self/ns/{kind}"):
            continue
        if kind == "user":
            try:
                theirs = os.stat(f"/proc/{pid}/ns/user")
            except FileNotFoundError:
                raise ProcessLookupError(3, "No such process", f"/proc/{pid}") from None
            ours = os.stat("/proc/self/ns/user")
            if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
                continue
        opts.namespaces[kind] = None


def run(opts: Options) -> int:
    from nsfast.enter import enter_and_exec

    if opts.all:
        if opts.target is None:
            raise UsageError("no target PID specified for --all")
        _usable_kinds(opts)
    if not opts.namespaces:
        raise UsageError("no namespace specified (give -t PID with -a or -n, -m, ...)")
    join: dict = {}
    for kind, path in opts.namespaces.items():
        if path is None and opts.target is None:
            raise UsageError("no target PID specified")
        join[kind] = path if path is not None else opts.target
    if (opts.root is True or opts.wd is True) and opts.target is None:
        raise UsageError("neither filename nor target pid supplied for "
                         f"{'root' if opts.root is True else 'cwd'}")
    argv, executable = opts.program, None
    if not argv:
        executable = os.environ.get("SHELL") or "/bin/sh"
        argv = ["-" + os.path.basename(executable)]  # a login shell, as nsenter starts it
    try:
        proc = enter_and_exec(join, argv, executable=executable, user=opts.uid, group=opts.gid,
                              preserve_credentials=opts.preserve_credentials,
                              root=opts.root, cwd=opts.wd, fork=opts.fork)
    except FileNotFoundError as e:
        if e.filename and os.fsdecode(e.filename) == (executable or argv[0]):
            raise SystemExit(_exec_failed(argv[0] if executable is None else executable, e, 127))
        raise
    except PermissionError as e:
        if e.filename and os.fsdecode(e.filename) == (executable or argv[0]):
            raise SystemExit(_exec_failed(argv[0] if executable is None else executable, e, 126))
        raise
    return exit_status(_wait_forwarding(proc))


def _exec_failed(program: str, e: OSError, status: int) -> int:
    os.write(2, f"nsfast enter: failed to execute {program}: {e.strerror}\n".encode())
    return status


def _wait_forwarding(proc) -> int:
    """Wait for the program; the terminal's ^C and ^\\ reach it directly, and a
    TERM/HUP sent to us is passed on, so we leave with its status."""
    def forward(sig, _frame):
        try:
            proc.send_signal(sig)
        except (ProcessLookupError, OSError):
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, forward)
    return proc.wait()
