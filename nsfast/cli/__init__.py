"""The nsfast command: sub-commands that speak unshare, nsenter, lsns and ip netns.

Each sub-command is a module here with build_parser(prog) and run(args) -> int;
they are imported only when used, so that start-up stays short.  `enter` (alias
`nsenter`), `unshare`, `netns exec` and `ls` are C: the nsfast command itself is a
C launcher (csrc/cli_main.c) that runs them without starting Python (and execs the
program in place, as the tools they replace do).  This module hands them over to
the copy of that launcher in the package, so both ways run the same code; the
launcher hands back (from_launcher) an unshare whose options need Python.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Optional, Sequence

from .common import fail, run_guarded

COMMANDS = {
    "unshare": "unshare",
    "ps": "ps",
    "netns": "netns",
    "bench": "bench",
    "gc": "gc",
    "run": "run",
    "oci": "oci",
}

# the sub-commands the C launcher runs itself (netns: exec, add, del, list,
# identify; oci:
# its frequent commands, and it hands the others back)
C_COMMANDS = ("enter", "nsenter", "unshare", "ls", "oci")
C_NETNS_VERBS = ("exec", "add", "del", "delete", "list", "identify")
# the launcher as setup.py builds it into the package directory
LAUNCHER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_nsfast")

USAGE = """usage: nsfast COMMAND [ARGS]

commands:
  unshare   run a program in new namespaces (unshare(1) flags)
  enter     run a program in another process's namespaces (nsenter(1) flags; alias nsenter)
  ls        list namespaces (lsns(8) flags)
  ps        processes whose namespaces differ from pid 1's
  netns     named network namespaces (ip netns sub-commands), veth pairs
  run       run a program under nsfast.Sandbox (safe defaults; --config FILE.toml)
  bench     the benchmark suite
  gc        remove the cgroups of sandboxes whose owner is gone
  oci       the OCI runtime (runc's command line; also installed as nsfast-runtime)
"""


def main(argv: Optional[Sequence[str]] = None, from_launcher: bool = False) -> int:
    """Entry point of the console script.  from_launcher: the C launcher
    started us for this command line, which it does not run itself.

    >>> main(["--version"])
    nsfast ...
    0
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        (sys.stdout if args else sys.stderr).write(USAGE)
        return 0 if args else 1
    if args[0] in ("-V", "--version"):
        from nsfast import __version__
        print(f"nsfast {__version__}")
        return 0
    if not from_launcher and (args[0] in C_COMMANDS or (
            args[0] == "netns" and args[1:2] and args[1] in C_NETNS_VERBS)):
        return _exec_launcher(args)
    name = COMMANDS.get(args[0])
    if name is None:
        return fail("nsfast", f"unknown command {args[0]!r} (see nsfast --help)")
    module = importlib.import_module(f"nsfast.cli.{name}")
    prog = f"nsfast {args[0]}"
    return run_guarded(prog, lambda: module.run(module.build_parser(prog).parse_args(args[1:])))


def _exec_launcher(args: list) -> int:
    """Replace this process with the C launcher running `nsfast ARGS`."""
    sys.stdout.flush()
    try:
        os.execv(LAUNCHER, [LAUNCHER, *args])
    except OSError as e:
        return fail(f"nsfast {args[0]}", f"cannot run {LAUNCHER}: {e.strerror} "
                    "(reinstall nsfast: the build makes it)")
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
