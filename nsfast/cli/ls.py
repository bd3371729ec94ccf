"""nsfast ls: list namespaces, with the flags and columns of lsns(8)."""
from __future__ import annotations

import json
import sys
from typing import Callable, Optional

from .common import Parser, UsageError, cell, write_text

# column (its heading) -> (value of a NamespaceInfo, right-aligned)
COLUMNS: dict[str, tuple[Callable, bool]] = {
    "NS": (lambda i: i.inode, True),
    "TYPE": (lambda i: i.kind.proc_name, False),
    "PATH": (lambda i: i.path, False),
    "NPROCS": (lambda i: i.nprocs, True),
    "PID": (lambda i: i.pid, True),
    "PPID": (lambda i: i.ppid, True),
    "COMMAND": (lambda i: i.command, False),
    "UID": (lambda i: i.uid, True),
    "USER": (lambda i: i.user, False),
    "NETNSID": (lambda i: _netnsid(i), True),
    "NSFS": (lambda i: ",".join(i.mounts) or None, False),
    "PARENT": (lambda i: i.parent or 0, True),
    "OWNER": (lambda i: i.owner or 0, True),
    "FDS": (lambda i: ",".join(f"{p}:{fd}" for p, fd in i.fds) or None, False),
}
# lsns's names for the parent and owner columns, headed as the user named them
ALIASES = {"PNS": "PARENT", "ONS": "OWNER"}
COLUMNS.update({alias: COLUMNS[name] for alias, name in ALIASES.items()})
DEFAULT = ["NS", "TYPE", "NPROCS", "PID", "USER", "COMMAND"]
# lsns adds these when listing network namespaces only
NET_EXTRA = ["NETNSID", "NSFS"]


def _netnsid(info) -> Optional[object]:
    if info.kind.proc_name != "net":
        return None
    return "unassigned" if info.netnsid is None else info.netnsid


def build_parser(prog: str) -> Parser:
    p = Parser(prog=prog, description="List namespaces (the flags of lsns(8)).")
    p.add_argument("namespace", nargs="?", type=int, metavar="NS",
                   help="show only the namespace with this inode")
    p.add_argument("-t", "--type", action="append", default=[], metavar="TYPE",
                   help="namespace type (mnt, net, ipc, user, pid, uts, cgroup, time); repeatable")
    p.add_argument("-p", "--task", type=int, metavar="PID",
                   help="only the namespaces of this process")
    p.add_argument("-J", "--json", action="store_true", help="JSON output, shaped like lsns -J")
    p.add_argument("-o", "--output", metavar="LIST",
                   help=f"columns, comma-separated (+LIST appends): {', '.join(COLUMNS)}")
    p.add_argument("--output-all", action="store_true", help="all columns")
    p.add_argument("-n", "--noheadings", action="store_true", help="no heading line")
    p.add_argument("-l", "--list", action="store_true",
                   help="list format (default: rows under their parent process's, as lsns)")
    p.add_argument("-r", "--raw", action="store_true", help="columns separated by one space")
    p.add_argument("-T", "--tree", nargs="?", const="parent", choices=["parent", "owner"],
                   help="show the parent (user and pid namespaces) or owner hierarchy")
    return p


def _columns(args) -> list[str]:
    base = list(DEFAULT)
    if args.type and all(t.strip().lower() in ("net", "network") for t in args.type):
        base += NET_EXTRA
    if args.output_all:
        return [c for c in COLUMNS if c not in ALIASES]
    if not args.output:
        return base
    spec = args.output
    cols = base if spec.startswith("+") else []
    for name in spec.lstrip("+").split(","):
        name = name.strip().upper()
        if name not in COLUMNS:
            raise UsageError(f"unknown column: {name} (known: {', '.join(COLUMNS)})")
        cols.append(name)
    return cols


def _select(args) -> list:
    import nsfast
    kinds = nsfast.NsType.parse(",".join(args.type)) if args.type else None
    if args.task is not None:
        nsfast.namespaces(args.task)  # ProcessLookupError for a pid that does not exist
    infos = nsfast.list_namespaces(kinds, with_netnsid="NETNSID" in _columns(args))
    if args.task is not None:
        infos = [i for i in infos if args.task in i.pids]
    if args.namespace is not None:
        infos = [i for i in infos if i.inode == args.namespace]
    return infos


def _forest(infos: list, relation: str) -> list[tuple[object, list]]:
    """(info, children) roots in listing order.

    "parent" and "owner" follow the kernel's relations; "process" is lsns's
    default tree: a row goes under the last earlier row whose process is the
    parent of its own process."""
    children: dict = {id(i): [] for i in infos}
    roots = []
    by_key = {(i.kind.proc_name, i.inode): i for i in infos}
    last_row_of_pid: dict = {}
    for i in infos:
        if relation == "process":
            holder = last_row_of_pid.get(i.ppid) if i.pid is not None else None
            if i.pid is not None:
                last_row_of_pid[i.pid] = i
        else:
            up = getattr(i, relation)
            up_kind = i.kind.proc_name if relation == "parent" else "user"
            holder = by_key.get((up_kind, up)) if up else None
        if holder is not None and holder is not i:
            children[id(holder)].append(i)
        else:
            roots.append(i)

    def node(i):
        return (i, [node(c) for c in children[id(i)]])
    return [node(r) for r in roots]


def _tree_mode(args) -> Optional[str]:
    """Which hierarchy to draw: --tree's, else lsns's process tree unless -l or -r."""
    if args.tree:
        return args.tree
    return None if args.list or args.raw else "process"


def _value(info, col: str):
    return COLUMNS[col][0](info)


def _json_row(info, cols: list[str]) -> dict:
    return {c.lower(): _value(info, c) for c in cols}


def _print_json(infos: list, cols: list[str], tree: Optional[str]) -> None:
    if tree:
        def nest(n):
            row = _json_row(n[0], cols)
            if n[1]:
                row["children"] = [nest(c) for c in n[1]]
            return row
        rows = [nest(n) for n in _forest(infos, tree)]
    else:
        rows = [_json_row(i, cols) for i in infos]
    # as lsns -J: text as it is, a path's bytes that are not UTF-8 as those bytes
    write_text(sys.stdout, json.dumps({"namespaces": rows}, indent=3, ensure_ascii=False) + "\n")


def _text(v) -> str:
    return "" if v is None else cell(str(v))


def _print_table(infos: list, cols: list[str], args) -> None:
    mode = _tree_mode(args)
    # lsns draws the process tree in COMMAND, the namespace trees in NS
    tree_col = ("COMMAND" if mode == "process" else "NS") if mode else None
    tree_at = cols.index(tree_col) if tree_col in cols else (0 if mode != "process" else -1)
    rows = []  # (tree drawing for the tree column, info)
    if mode:
        def walk(n, lead, last, depth):
            rows.append(((lead + ("└─" if last else "├─")) if depth else "", n[0]))
            for k, c in enumerate(n[1]):
                walk(c, lead + ("  " if last else "│ ") if depth else "", k == len(n[1]) - 1,
                     depth + 1)
        for n in _forest(infos, mode):
            walk(n, "", True, 0)
    else:
        rows = [("", i) for i in infos]
    cells = [[prefix + _text(_value(i, c)) if k == tree_at else _text(_value(i, c))
              for k, c in enumerate(cols)] for prefix, i in rows]
    lines = []
    if args.raw:
        if not args.noheadings:
            lines.append(" ".join(cols))
        lines += [" ".join(r) for r in cells]
    else:
        table = ([cols] if not args.noheadings else []) + cells
        widths = [max((len(r[k]) for r in table), default=0) for k in range(len(cols))]
        for r in table:
            parts = []
            for k, c in enumerate(cols):
                right = COLUMNS[c][1] and k != tree_at
                last = k == len(cols) - 1
                parts.append(r[k].rjust(widths[k]) if right else
                             r[k] if last else r[k].ljust(widths[k]))
            lines.append(" ".join(parts))
    sys.stdout.write("".join(line + "\n" for line in lines))


def run(args) -> int:
    cols = _columns(args)
    infos = _select(args)
    if args.json:
        _print_json(infos, cols, _tree_mode(args))
    else:
        _print_table(infos, cols, args)
    return 0
