"""nsfast gc: remove the cgroups of sandboxes whose owner is gone."""
from __future__ import annotations

from .common import Parser


def build_parser(prog: str) -> Parser:
    p = Parser(prog=prog, description="Remove the cgroups nsfast made for sandboxes whose "
               "owning process has ended (killed, crashed), and kill what they still hold.")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    return p


def run(args) -> int:
    """Remove stale subtrees; print how many.

    >>> run(build_parser("nsfast gc").parse_args(["-q"]))
    0
    """
    from ..cgroups import gc
    removed = gc()
    if not args.quiet:
        print(f"removed {removed} stale cgroup subtree{'s' if removed != 1 else ''}")
    return 0
