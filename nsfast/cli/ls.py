"""nsfast ls: list namespaces with the flags, columns and bytes of lsns(8).

The output is util-linux lsns's, byte for byte (its libsmartcols table): the
same columns and defaults, the process tree in COMMAND and the owner/parent
trees in NS, column widths, escapes, raw and JSON layouts.  Where newer
util-linux differs from 2.38 it follows the newer one: namespaces held only by
an nsfs bind mount, an open fd or a socket are listed (NPROCS 0), -Q/--filter
and -P/--persistent.

Start-up is most of a listing's cost, so this module imports only what the
listing needs (see tests/test_imports.py).
"""
from __future__ import annotations

import os
import sys

from .common import UsageError, write_text
from .getopt import Opt, parse

# heading -> (right-aligned, a JSON number, width hint): lsns's table, in its order
COLUMNS = {
    "NS": (True, True, 10), "TYPE": (False, False, 5), "PATH": (False, False, 0),
    "NPROCS": (True, True, 5), "PID": (True, True, 5), "PPID": (True, True, 5),
    "COMMAND": (False, False, 0), "UID": (True, True, 0), "USER": (False, False, 0),
    "NETNSID": (True, False, 0), "NSFS": (False, False, 0), "PNS": (True, True, 10),
    "ONS": (True, True, 10),
}
# nsfast's own, which lsns would refuse (not in --output-all): PNS and ONS
# under the names nsfast ls used first, and the (pid:fd) holders of a namespace
EXTRA = {"PARENT": (True, True, 0), "OWNER": (True, True, 0), "FDS": (False, False, 0)}
KNOWN = {**COLUMNS, **EXTRA}
DEFAULT = ["NS", "TYPE", "NPROCS", "PID", "USER", "COMMAND"]
NET_EXTRA = ["NETNSID", "NSFS"]   # before COMMAND when -t net is given
PROCESS_DEFAULT = ["PID", "PPID", "USER", "COMMAND"]   # with a NS argument
TYPES = ("mnt", "net", "pid", "user", "uts", "ipc", "cgroup", "time")
TREES = ("owner", "parent", "process")

OPTIONS = [
    Opt("json", "J"), Opt("list", "l"), Opt("task", "p", 1), Opt("output", "o", 1),
    Opt("output-all"), Opt("noheadings", "n"), Opt("raw", "r"), Opt("notruncate", "u"),
    Opt("nowrap", "W"), Opt("type", "t", 1), Opt("tree", "T", "??"), Opt("filter", "Q", 1),
    Opt("persistent", "P"), Opt("help", "h"), Opt("version", "V"),
]
# lsns 2.38 also declares -l and -T exclusive, in an order its check never
# reaches: it takes both (-l -T is a tree), and so does nsfast ls
EXCLUSIVE = [("json", "raw")]

HELP = """
Usage:
 nsfast ls [options] [<namespace>]

List system namespaces (the flags and output of lsns(8)).

Options:
 -J, --json             use JSON output format
 -l, --list             use list format output
 -n, --noheadings       don't print headings
 -o, --output <list>    define which output columns to use
     --output-all       output all columns
 -P, --persistent       namespaces without processes
 -p, --task <pid>       print process namespaces
 -r, --raw              use the raw output format
 -u, --notruncate       don't truncate text in columns
 -W, --nowrap           don't use multi-line representation
 -t, --type <name>      namespace type (mnt, net, ipc, user, pid, uts, cgroup, time)
 -T, --tree <rel>       use tree format (parent, owner, or process)
 -Q, --filter <expr>    print only the rows for which the expression holds
                        (libsmartcols filter: NS == 4026531840 && NPROCS > 1)

 -h, --help             display this help
 -V, --version          display version
"""


class Args:
    """What the command line asks for, after lsns's rules for defaults."""

    def __init__(self) -> None:
        self.json = self.raw = self.noheadings = self.nowrap = self.notruncate = False
        self.columns: list = []
        self.types: list = []
        self.task = None
        self.namespace = None
        self.tree = None
        self.filter = None
        self.help = self.version = self.persistent = False


class _Parser:
    """lsns's getopt_long "JlPp:o:nruhVt:T::WQ:" and its checks, in its order."""

    def parse_args(self, argv) -> Args:
        found, words = parse(argv, OPTIONS, permute=True)
        seen = {name for name, _ in found}
        for a, b in EXCLUSIVE:
            if a in seen and b in seen:
                raise UsageError(f"mutually exclusive arguments: --{a} --{b}")
        args = Args()
        output = None
        force_list = False
        for name, value in found:
            if name == "task":
                # as lsns: a 32-bit number, and 0 filters nothing
                args.task = _number(value, "invalid PID argument", 2 ** 31 - 1, signed=True) \
                    or None
            elif name == "type":
                if value not in TYPES:
                    raise UsageError(f"unknown namespace type: {value}")
                args.types.append(value)
            elif name == "tree":
                value = (value or "owner").removeprefix("=")
                if value not in TREES:
                    raise UsageError(f"unknown tree type: {value}")
                args.tree = value
            elif name == "output":
                output = value
            elif name == "output-all":
                args.columns = list(COLUMNS)
            elif name == "list":
                force_list = True
            elif name == "filter":
                args.filter = value
            else:
                setattr(args, name.replace("-", "_"), True)
        if args.raw:
            args.nowrap = True
        if words:
            if args.task is not None:
                raise UsageError("--task is mutually exclusive with <namespace>")
            args.namespace = _number(words[0], "invalid namespace argument", 2 ** 64 - 1)
            if not args.tree and not force_list:
                args.tree = "process"
            if not args.columns:
                args.columns = list(PROCESS_DEFAULT)
        if not args.columns:
            args.columns = DEFAULT[:-1] + (NET_EXTRA if "net" in args.types else []) + \
                DEFAULT[-1:]
            if not args.tree and not force_list:
                args.tree = "process"
        if output:
            args.columns = _column_list(output, args.columns)
        if args.filter is not None:
            from .lsfilter import compile_filter
            args.filter = compile_filter(args.filter, KNOWN)
        return args


def _number(text: str, what: str, top: int, signed: bool = False) -> int:
    digits = text[1:] if signed and text[:1] == "-" else text
    if not digits.isdigit() or not digits.isascii() or not -top - 1 <= int(text) <= top:
        raise UsageError(f"{what}: '{text}'")
    return int(text)


def _column_list(spec: str, current: list) -> list:
    """-o LIST: these columns, or with a leading + the current ones and these."""
    cols = list(current) if spec.startswith("+") else []
    for name in spec.removeprefix("+").split(","):
        if name.upper() not in KNOWN:
            raise UsageError(f"unknown column: {name}")
        cols.append(name.upper())
    return cols


def build_parser(prog: str) -> _Parser:
    """The parser of `nsfast ls` (lsns's options)."""
    return _Parser()


# ---------------------------------------------------------------- rows

class Row:
    """One line of the table: a namespace, and the process shown for it."""

    __slots__ = ("ns", "pid", "parent", "children")

    def __init__(self, ns, pid) -> None:
        self.ns, self.pid, self.parent, self.children = ns, pid, None, []


def _namespace_rows(infos: list, args: Args) -> list:
    """lsns's show_namespaces(): one row a namespace in inode order, nested
    under its owner or parent row (--tree=owner/parent; the owner or parent
    is put first when it has no row yet), or under the row of its process's
    parent process (the process tree).  Rows in the order lsns adds them."""
    rows: list = []
    ns_row: dict = {}    # id(info) -> its row
    pid_row: dict = {}   # pid -> the latest row shown for that process
    by_key = {(i.kind.proc_name, i.inode): i for i in infos}

    def related(info, how: str):
        if how == "parent":
            if info.kind.proc_name not in ("user", "pid") or not info.parent:
                return None
            return by_key.get((info.kind.proc_name, info.parent))
        return by_key.get(("user", info.owner)) if info.owner else None

    def show(info) -> None:
        tree = args.tree
        if tree in ("owner", "parent"):
            up = related(info, tree)
            if tree == "parent" and up is None:
                up_first = related(info, "owner")   # lsns shows it first, yet no nesting
            else:
                up_first = up
            if up_first is not None and id(up_first) not in ns_row and up_first is not info:
                show(up_first)
            holder = ns_row.get(id(up)) if up is not None else None
        elif tree == "process" and info.pid is not None:
            holder = pid_row.get(info.ppid)
        else:
            holder = None
        row = Row(info, info.pid)
        _attach(rows, row, holder)
        if tree in ("owner", "parent"):
            ns_row[id(info)] = row
        elif info.pid is not None:
            pid_row[info.pid] = row

    for info in infos:
        if args.task is not None and args.task not in info.pids:
            continue
        if args.persistent and info.nprocs:
            continue
        if id(info) not in ns_row:
            show(info)
    return rows


def _process_rows(info, args: Args) -> list:
    """lsns NS: one row a process of the namespace, in pid order, under its
    parent process's row where that process is in the namespace too."""
    from ..inspect import _ppid
    rows: list = []
    by_pid: dict = {}
    members = set(info.pids)
    ppids = {pid: _ppid(pid) for pid in info.pids}

    def show(pid: int) -> None:
        parent = ppids.get(pid)
        if args.tree == "process" and parent in members and parent not in by_pid:
            show(parent)
        row = Row(info, pid)
        _attach(rows, row, by_pid.get(parent) if args.tree == "process" else None)
        by_pid[pid] = row

    for pid in info.pids:
        if pid not in by_pid:
            show(pid)
    return rows


def _attach(rows: list, row: Row, holder) -> None:
    row.parent = holder
    if holder is not None:
        holder.children.append(row)
    rows.append(row)


# ---------------------------------------------------------------- cells

class Cells:
    """The text of each column for a row, as lsns fills it (None: empty)."""

    def __init__(self, args: Args) -> None:
        self.args = args
        self.sep = "," if args.nowrap else "\n"
        self.proc_cache: dict = {}

    def _proc(self, pid: int) -> tuple:
        """(ppid, uid, command) of a process, read once."""
        if pid not in self.proc_cache:
            from ..inspect import _command, _ppid
            try:
                uid = os.stat(f"/proc/{pid}").st_uid
            except OSError:
                uid = None
            self.proc_cache[pid] = (_ppid(pid), uid, _command(pid))
        return self.proc_cache[pid]

    def value(self, row: Row, col: str):
        ns, pid = row.ns, row.pid
        if col == "NS":
            return str(ns.inode)
        if col == "TYPE":
            return ns.kind.proc_name
        if col == "NPROCS":
            return str(ns.nprocs)
        if col in ("PNS", "PARENT"):
            return str(ns.parent or 0)
        if col in ("ONS", "OWNER"):
            return str(ns.owner or 0)
        if col == "FDS":
            return ",".join(f"{p}:{fd}" for p, fd in ns.fds) or None
        if col == "NSFS":
            return self.sep.join(dict.fromkeys(ns.mounts)) or None
        if col == "NETNSID":
            if ns.kind.proc_name != "net":
                return None
            return "unassigned" if ns.netnsid is None else str(ns.netnsid)
        if col in ("UID", "USER"):
            uid = self._proc(pid)[1] if pid is not None else ns.uid
            uid = uid or 0   # lsns: the creator of a user namespace no process is in, else 0
            return str(uid) if col == "UID" else _user_name(uid)
        if pid is None:
            return None
        if col == "PID":
            return str(pid)
        if col == "PATH":
            return f"/proc/{pid}/ns/{ns.kind.proc_name}"
        ppid, _, command = self._proc(pid)
        if col == "PPID":
            return None if ppid is None else str(ppid)
        return command   # COMMAND


def _user_name(uid: int) -> str:
    from ..inspect import _user
    return _user(uid)


# ---------------------------------------------------------------- output

def _utf8_locale() -> bool:
    """Whether lsns (setlocale(LC_ALL, "")) would run in a UTF-8 locale."""
    for var in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = os.environ.get(var)
        if value:
            low = value.lower()
            return "utf-8" in low or "utf8" in low
    return False


def safe(text: str, utf8: bool) -> str:
    """A cell as libsmartcols shows it in a table (mbs_safe_encode): what is
    not printable, each byte that is not UTF-8 and, outside a UTF-8 locale,
    each byte that is not ASCII, as \\xHH; a backslash before an x as \\x5c.

    >>> safe("a\\nb ü", True), safe("ü", False)
    ('a\\\\x0ab ü', '\\\\xc3\\\\xbc')
    """
    if text.isascii() and text.isprintable() and "\\x" not in text:
        return text
    out = []
    for k, ch in enumerate(text):
        if ch == "\\" and text[k + 1:k + 2] == "x":
            out.append("\\x5c")
        elif ch.isprintable() and (utf8 or ch.isascii()) and not 0xdc80 <= ord(ch) <= 0xdcff:
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogateescape"))
    return "".join(out)


def raw_cell(text: str) -> str:
    """A cell of -r output (fputs_nonblank): every byte but the ASCII
    graphic ones, and the backslash, as \\xHH.

    >>> raw_cell("sh -c 'a\\\\b'")
    "sh\\\\x20-c\\\\x20'a\\\\x5cb'"
    """
    data = text.encode("utf-8", "surrogateescape")
    return "".join(chr(b) if 0x21 <= b <= 0x7e and b != 0x5c else f"\\x{b:02x}" for b in data)


def _tree_columns(args: Args, cols: list) -> int:
    """The index of the column that draws the tree, -1 when none does."""
    name = {"process": "COMMAND", "owner": "NS", "parent": "NS"}.get(args.tree or "")
    return cols.index(name) if name in cols else -1


def _ordered(rows: list, tree: bool) -> list:
    """Rows in print order: with a tree column, each root in the order added
    and its children after it (depth first); without, the order added."""
    if not tree:
        return rows
    out: list = []

    def walk(r):
        out.append(r)
        for c in r.children:
            walk(c)
    for r in rows:
        if r.parent is None:
            walk(r)
    return out


def _art(row: Row, ascii_art: bool) -> str:
    """The tree drawing before a row's cell: its ancestors' verticals, then its branch."""
    if row.parent is None:
        return ""
    return _verticals(row.parent, ascii_art) + (
        ("`-" if ascii_art else "└─") if row.parent.children[-1] is row else
        ("|-" if ascii_art else "├─"))


def _verticals(row: Row, ascii_art: bool) -> str:
    """What continues below a row in the tree column: for it and each
    ancestor, a vertical where more siblings follow, else blanks."""
    if row.parent is None:
        return ""
    last = row.parent.children[-1] is row
    return _verticals(row.parent, ascii_art) + ("  " if last else ("| " if ascii_art else "│ "))


def _print_table(rows: list, cols: list, cells: Cells, args: Args) -> str:
    utf8 = _utf8_locale()
    at = _tree_columns(args, cols)
    order = _ordered(rows, at >= 0)
    data = [[cells.value(r, c) for c in cols] for r in order]
    if args.raw:
        lines = [] if args.noheadings else [" ".join(cols)]
        for r, values in zip(order, data):
            lines.append(" ".join(raw_cell((_art(r, not utf8) if k == at else "") + (v or ""))
                                  for k, v in enumerate(values)))
        return "".join(line + "\n" for line in lines)
    right = [KNOWN[c][0] and k != at for k, c in enumerate(cols)]
    # each cell as chunks: one, or the lines of a multi-line NSFS cell
    table = []
    for r, values in zip(order, data):
        cells_of_row = []
        for k, v in enumerate(values):
            text = safe(v, utf8) if v is not None else ""
            if cols[k] == "NSFS" and not args.nowrap:
                chunks = [safe(p, utf8) for p in (v or "").split("\n")]
            else:
                chunks = [text]
            if k == at:
                chunks[0] = _art(r, not utf8) + chunks[0]
            cells_of_row.append(chunks)
        table.append((r, cells_of_row))
    widths = [0] * len(cols)
    for _, row_cells in table:
        for k, chunks in enumerate(row_cells):
            widths[k] = max(widths[k], *(len(x) for x in chunks))
    for k, c in enumerate(cols):
        # libsmartcols: at least the heading (also under -n); the width hint
        # only where the data is at least as wide as the heading
        hint = KNOWN[c][2]
        if widths[k] < len(c):
            widths[k] = len(c)
        elif widths[k] < hint and len(c) < hint:
            widths[k] = hint
    last = len(cols) - 1
    trunc = [c == "COMMAND" and not args.notruncate for c in cols]
    room = _terminal_width()
    if room is not None:
        _fit(widths, cols, trunc, room)
        # a cell wider than its (reduced) column is cut, as libsmartcols cuts it
        for _, row_cells in table:
            for k, chunks in enumerate(row_cells):
                if trunc[k]:
                    chunks[:] = [x[:widths[k]] for x in chunks]

    def line(texts: list) -> str:
        parts = []
        for k, t in enumerate(texts):
            if right[k] and t:
                parts.append(t.rjust(widths[k]))
            elif k == last:
                parts.append(t)
            else:
                parts.append(t.ljust(widths[k]))
        return " ".join(parts)

    out = [] if args.noheadings else [line(list(cols))]
    for r, row_cells in table:
        out.append(line([chunks[0] for chunks in row_cells]))
        extra = max(len(chunks) for chunks in row_cells) - 1
        for n in range(1, extra + 1):
            texts = []
            for k, chunks in enumerate(row_cells):
                if n < len(chunks):
                    texts.append(chunks[n])
                elif k == at:   # the tree goes on beside the extra lines
                    more = r.children and n < extra
                    texts.append(_verticals(r, not utf8) +
                                 ((("| " if not utf8 else "│ ")) if more else ""))
                else:
                    texts.append("")
            out.append(line(texts))
    return "".join(x + "\n" for x in out)


def _terminal_width() -> int | None:
    """The width libsmartcols fits a table into: the terminal's when stdout is
    one (TIOCGWINSZ, else $COLUMNS, else 80); None when stdout is no terminal."""
    if not sys.stdout.isatty():
        return None
    try:
        columns = os.get_terminal_size(sys.stdout.fileno()).columns
    except OSError:
        columns = 0
    if columns <= 0:
        env = os.environ.get("COLUMNS", "")
        columns = int(env) if env.isdigit() else 0
    return columns if columns > 0 else 80


def _fit(widths: list, cols: list, trunc: list, room: int) -> None:
    """Narrow the truncatable columns (COMMAND, unless -u) one cell at a time,
    in column order, down to their heading's width, until the table fits in
    room: libsmartcols's reduction for lsns's columns (none of which has a
    relative width hint)."""
    total = sum(widths) + len(widths) - 1
    while total > room:
        before = total
        for k, c in enumerate(cols):
            if total <= room:
                break
            if trunc[k] and widths[k] > len(c):
                widths[k] -= 1
                total -= 1
        if total == before:
            return


def _json_string(text: str) -> str:
    """A JSON string as util-linux writes it: only ", \\ and controls escaped."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20:
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
                        "\r": "\\r"}.get(ch) or f"\\u00{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _print_json(rows: list, cols: list, cells: Cells, args: Args) -> str:
    """libsmartcols's JSON: three-space indent, "},{" between objects,
    children nested in a "children" array when a column draws the tree."""
    tree = _tree_columns(args, cols) >= 0
    out = ['{\n   "namespaces": [\n']

    def obj(r: Row, depth: int) -> None:
        pad = "   " * depth
        fields = []
        for c in cols:
            v = cells.value(r, c)
            if not v:
                text = "null"
            elif KNOWN[c][1]:
                text = v
            else:
                text = _json_string(v)
            fields.append(f'{pad}   "{c.lower()}": {text}')
        out.append(",\n".join(fields))
        kids = r.children if tree else []
        if kids:
            out.append(f',\n{pad}   "children": [\n{pad}      {{\n')
            for k, c in enumerate(kids):
                if k:
                    out.append(f"\n{pad}      }},{{\n")
                obj(c, depth + 2)
            out.append(f"\n{pad}      }}\n{pad}   ]")

    top = [r for r in rows if r.parent is None] if tree else rows
    for k, r in enumerate(top):
        out.append("      {\n" if k == 0 else "\n      },{\n")
        obj(r, 2)
    if top:
        out.append("\n      }\n")
    else:
        out.append("\n")
    out.append("   ]\n}\n")
    return "".join(out)


# ---------------------------------------------------------------- the command

def run(args: Args) -> int:
    """List as lsns lists; 1 for a namespace argument that names none."""
    if args.help:
        sys.stdout.write(HELP)
        return 0
    if args.version:
        from nsfast import __version__
        sys.stdout.write(f"nsfast ls {__version__}\n")
        return 0
    from ..inspect import list_namespaces
    infos = list_namespaces(",".join(args.types) if args.types else None,
                            with_netnsid="NETNSID" in args.columns or
                            "NETNSID" in getattr(args.filter, "columns", ()),
                            related=args.tree in ("owner", "parent"), related_kinds="user,pid")
    cells = Cells(args)
    if args.namespace is not None:
        match = [i for i in infos if i.inode == args.namespace]
        if not match:
            raise UsageError(f"not found namespace: {args.namespace}")
        rows = _process_rows(match[0], args)
    else:
        rows = _namespace_rows(infos, args)
    if args.filter is not None:
        rows = _filtered(rows, args.filter, cells, args.columns)
    if not rows:
        text = '{\n   "namespaces": [\n\n   ]\n}\n' if args.json else ""
    elif args.json:
        text = _print_json(rows, args.columns, cells, args)
    else:
        text = _print_table(rows, args.columns, cells, args)
    write_text(sys.stdout, text)
    return 0


def _filtered(rows: list, keep, cells: Cells, cols: list) -> list:
    """The rows for which the -Q expression holds; a row whose parent is
    dropped moves up to its nearest kept ancestor."""
    kept = [r for r in rows if keep(lambda col, r=r: cells.value(r, col))]
    keep_ids = {id(r) for r in kept}
    for r in rows:
        r.children = []
    for r in kept:
        up = r.parent
        while up is not None and id(up) not in keep_ids:
            up = up.parent
        r.parent = up
        if up is not None:
            up.children.append(r)
    return kept
