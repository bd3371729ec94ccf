"""nsfast ps: the processes whose namespaces differ from init's, and which kinds differ."""
from __future__ import annotations

import json
import sys

from .common import Parser, cell


def build_parser(prog: str) -> Parser:
    p = Parser(prog=prog, description="Processes outside pid 1's namespaces: PID, the kinds "
                                      "that differ, COMMAND.  An unprivileged user sees only "
                                      "the processes it may inspect, compared with its own "
                                      "namespaces where pid 1's cannot be read.")
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
    rows = [(str(p.pid), ",".join(k.proc_name for k in p.kinds.kinds()), cell(p.command or ""))
            for p in procs]
    if not args.noheadings:
        rows.insert(0, ("PID", "KINDS", "COMMAND"))
    wpid = max((len(r[0]) for r in rows), default=0)
    wkinds = max((len(r[1]) for r in rows), default=0)
    sys.stdout.write("".join(f"{r[0].rjust(wpid)} {r[1].ljust(wkinds)} {r[2]}\n" for r in rows))
    return 0
