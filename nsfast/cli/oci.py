"""nsfast-runtime (also `nsfast oci`): runc's command line over nsfast/oci.

    nsfast-runtime [--root DIR] [--log FILE] [--log-format text|json] COMMAND ...

Podman's conmon and containerd's runc shim call it as they call runc.  The
nsfast launcher is installed as nsfast-runtime: it runs the global flags,
--version, state, start, kill, delete, ps, pause, resume and most creates
and execs itself, in C (csrc/cli_oci*.c), and hands run, features, the hooks
its commands need and the creates and execs it does not handle to this
module.  An error is one line on stderr (and in
--log, as JSON with --log-format json, where the shim looks for it), exit
status 1.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Optional, Sequence

from .common import Parser, UsageError

PROG = "nsfast-runtime"


def _global_parser() -> Parser:
    p = Parser(prog=PROG, add_help=True, allow_abbrev=False)
    p.add_argument("--root", default=None)
    p.add_argument("--log", default=None)
    p.add_argument("--log-format", default="text", choices=("text", "json"))
    p.add_argument("--systemd-cgroup", action="store_true")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--rootless", default=None)
    p.add_argument("command", nargs="?")
    p.add_argument("rest", nargs="...")
    return p


def _command_parser(name: str) -> Parser:
    p = Parser(prog=f"{PROG} {name}", allow_abbrev=False)
    if name in ("create", "run"):
        p.add_argument("-b", "--bundle", default=".")
        p.add_argument("--console-socket")
        p.add_argument("--pid-file")
        p.add_argument("--no-pivot", action="store_true")
        p.add_argument("--no-new-keyring", action="store_true")
        p.add_argument("--preserve-fds", type=int, default=0)
        if name == "run":
            p.add_argument("-d", "--detach", action="store_true")
            p.add_argument("--keep", action="store_true")
    elif name == "exec":
        p.add_argument("-p", "--process")
        p.add_argument("-t", "--tty", action="store_true")
        p.add_argument("-d", "--detach", action="store_true")
        p.add_argument("--pid-file")
        p.add_argument("--console-socket")
        p.add_argument("--cwd")
        p.add_argument("-e", "--env", action="append", default=[])
        p.add_argument("-u", "--user")
        p.add_argument("-g", "--additional-gids", action="append", default=[])
        p.add_argument("-c", "--cap", action="append", default=[])
        p.add_argument("--no-new-privs", action="store_true")
        p.add_argument("--preserve-fds", type=int, default=0)
    if name == "hooks":
        p.add_argument("kind")
    if name != "features":
        p.add_argument("id")
    if name == "exec":
        p.add_argument("args", nargs="...")
    return p


# what the launcher hands over (hooks: for its start and delete)
COMMANDS = ("create", "run", "exec", "features", "hooks")


def _log_error(path: Optional[str], fmt: str, message: str) -> None:
    if not path:
        return
    from ..oci.state import timestamp
    now = timestamp()
    line = (json.dumps({"level": "error", "msg": message, "time": now}) if fmt == "json"
            else f"time=\"{now}\" level=error msg={json.dumps(message)}")
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def _exec_process(args, state_dir: str, cid: str) -> dict:
    """The process of `exec`: --process FILE, or ARGS with the flags."""
    if args.process:
        with open(args.process) as f:
            process = json.load(f)
    else:
        if not args.args:
            raise UsageError("exec needs --process FILE or the program to run")
        from ..oci.state import Container
        conf = json.load(open(os.path.join(Container(state_dir, cid).load()["bundle"],
                                           "config.json")))
        base = conf.get("process") or {}
        process = {"args": [a for a in args.args if a != "--"] or args.args,
                   "env": base.get("env", []), "cwd": args.cwd or base.get("cwd", "/"),
                   "user": dict(base.get("user") or {"uid": 0, "gid": 0}),
                   "capabilities": base.get("capabilities"),
                   "noNewPrivileges": base.get("noNewPrivileges", False),
                   "terminal": args.tty}
        if process["args"][0] == "--":
            process["args"] = process["args"][1:]
    if args.env:
        process["env"] = list(process.get("env") or []) + args.env
    if args.cwd:
        process["cwd"] = args.cwd
    if args.user:
        uid, _, gid = args.user.partition(":")
        process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if args.additional_gids:
        process.setdefault("user", {})["additionalGids"] = [int(g) for g in args.additional_gids]
    if args.no_new_privs:
        process["noNewPrivileges"] = True
    if args.cap:
        raise UsageError("exec --cap is not supported by nsfast-runtime (use --process)")
    if args.tty:
        process["terminal"] = True
    return process


def run_command(argv: Sequence[str]) -> int:
    """Parse the command line the launcher handed over (it has checked the
    global flags and the command) and run it; the exit status."""
    g, rest = _global_parser().parse_known_args(list(argv))
    # runc takes global flags before the command only; argparse may have
    # taken the command's own flags into rest
    if g.command not in COMMANDS:
        raise UsageError(f"{g.command!r} is not a command of nsfast-runtime's Python side")
    if g.command in ("create", "run"):
        from ..oci import cgroup
        cgroup.warm_migrations()   # first: it overlaps the imports below
    from ..oci.state import DEFAULT_ROOT
    root = g.root or DEFAULT_ROOT
    args = _command_parser(g.command).parse_args([*rest, *g.rest])
    from ..oci import runtime
    name = g.command
    if getattr(args, "preserve_fds", 0):
        raise UsageError("--preserve-fds is not supported by nsfast-runtime")
    if name == "create":
        runtime.create(root, args.id, args.bundle, args.pid_file, args.console_socket)
        return 0
    if name == "run":
        return runtime.run(root, args.id, args.bundle, args.pid_file, args.console_socket,
                           args.detach, args.keep)
    if name == "hooks":
        runtime.run_hooks(root, args.id, args.kind)
    elif name == "exec":
        process = _exec_process(args, root, args.id)
        return runtime.exec_(root, args.id, process, args.pid_file, args.console_socket,
                             args.detach)
    elif name == "features":
        print(json.dumps(runtime.features(), indent=2))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`nsfast oci ARGS` as the launcher hands it over.  It ends with
    os._exit: create leaves a thread blocked until the container execs,
    which must not keep the command alive.

    >>> run_command(["features"])  # doctest: +ELLIPSIS
    {
      "ociVersionMin": "1.0.0",
    ...
    0
    """
    args = list(sys.argv[1:] if argv is None else argv)
    code = _guarded(args)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _guarded(args: list) -> int:
    from ..oci import OciError
    log, fmt = _log_target(args)
    try:
        return run_command(args)
    except (OciError, UsageError, ValueError, TypeError, OSError) as e:
        message = str(e) if not isinstance(e, OSError) or not e.strerror else \
            f"{e.strerror}: {e.filename}" if e.filename else str(e)
        _log_error(log, fmt, message)
        print(f"{PROG}: {' '.join(message.split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _log_target(args: list) -> tuple:
    log, fmt = None, "text"
    for i, a in enumerate(args):
        if a == "--log" and i + 1 < len(args):
            log = args[i + 1]
        elif a.startswith("--log="):
            log = a[6:]
        elif a == "--log-format" and i + 1 < len(args):
            fmt = args[i + 1]
        elif a.startswith("--log-format="):
            fmt = a[13:]
    return log, fmt


class _Verbatim:
    """For `nsfast oci`: everything after `oci` is runc's command line,
    flags first included, parsed by run_command."""

    def parse_args(self, args: list):
        import argparse
        return argparse.Namespace(rest=list(args))


def build_parser(prog: str) -> _Verbatim:
    return _Verbatim()


def run(args) -> int:
    """`nsfast oci ...` from the launcher: the same command line as nsfast-runtime."""
    return main(args.rest)
