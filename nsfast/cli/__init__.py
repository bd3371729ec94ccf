"""The nsfast command: sub-commands that speak unshare, nsenter, lsns and ip netns.

Each sub-command is a module here with build_parser(prog) and run(args) -> int;
they are imported only when used, so that start-up stays short.
"""
from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

from .common import fail, run_guarded

COMMANDS = {
    "unshare": "unshare",
    "enter": "enter",
    "nsenter": "enter",
    "ls": "ls",
    "ps": "ps",
    "netns": "netns",
    "bench": "bench",
}

USAGE = """usage: nsfast COMMAND [ARGS]

commands:
  unshare   run a program in new namespaces (unshare(1) flags)
  enter     run a program in another process's namespaces (nsenter(1) flags; alias nsenter)
  ls        list namespaces (lsns(8) flags)
  ps        processes whose namespaces differ from pid 1's
  netns     named network namespaces (ip netns sub-commands), veth pairs
  bench     the benchmark suite
"""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the console script.

    >>> main(["ls", "-t", "net"])  # doctest: +SKIP
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        (sys.stdout if args else sys.stderr).write(USAGE)
        return 0 if args else 1
    if args[0] in ("-V", "--version"):
        from nsfast import __version__
        print(f"nsfast {__version__}")
        return 0
    name = COMMANDS.get(args[0])
    if name is None:
        return fail("nsfast", f"unknown command {args[0]!r} (see nsfast --help)")
    module = importlib.import_module(f"nsfast.cli.{name}")
    prog = f"nsfast {args[0]}"
    return run_guarded(prog, lambda: module.run(module.build_parser(prog).parse_args(args[1:])))


if __name__ == "__main__":
    sys.exit(main())
