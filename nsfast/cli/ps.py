"""nsfast ps: the processes whose namespaces differ from init's, and which kinds differ."""
from __future__ import annotations

import json
import re
import sys

from .common import Parser


# C0, DEL and C1 controls, and the bytes a surrogateescape decoding kept
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\udc80-\udcff]")


def _escape(char: str) -> str:
    code = ord(char)
    if code >= 0xdc80:   # a byte that was not UTF-8
        return f"\\x{code - 0xdc00:02x}"
    return "".join(f"\\x{b:02x}" for b in char.encode())


def printable(text: str) -> str:
    r"""text with each control character as \xHH (per UTF-8 byte), as lsns
    prints a command: a command line cannot break the table's rows.

    >>> printable("sh -c 'a\nb' \x1b")
    "sh -c 'a\\x0ab' \\x1b"
    """
    return _UNSAFE.sub(lambda m: _escape(m.group()), text)


def build_parser(prog: str) -> Parser:
    p = Parser(prog=prog, description="Processes outside pid 1's namespaces: PID, the kinds "
                                      "that differ, COMMAND.")
    p.add_argument("-J", "--json", action="store_true", help="JSON output")
    p.add_argument("-n", "--noheadings", action="store_true", help="no heading line")
    return p


def run(args) -> int:
    import nsfast
    procs = nsfast.processes_outside_init()
    if args.json:
        json.dump({"processes": [{"pid": p.pid, "kinds": [k.proc_name for k in p.kinds.kinds()],
                                  "command": p.command} for p in procs]}, sys.stdout, indent=3)
        sys.stdout.write("\n")
        return 0
    rows = [(str(p.pid), ",".join(k.proc_name for k in p.kinds.kinds()),
             printable(p.command or ""))
            for p in procs]
    if not args.noheadings:
        rows.insert(0, ("PID", "KINDS", "COMMAND"))
    wpid = max((len(r[0]) for r in rows), default=0)
    wkinds = max((len(r[1]) for r in rows), default=0)
    sys.stdout.write("".join(f"{r[0].rjust(wpid)} {r[1].ljust(wkinds)} {r[2]}\n" for r in rows))
    return 0
