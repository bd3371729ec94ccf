"""nsfast netns: `ip netns` sub-commands on the same /run/netns, plus veth pairs.

    nsfast netns add NAME            nsfast netns attach NAME PID
    nsfast netns del NAME...         nsfast netns pids NAME
    nsfast netns list                nsfast netns identify [PID]
    nsfast netns set NAME ID|auto    nsfast netns list-id [target-nsid ID] [nsid ID]
    nsfast netns exec NAME CMD...    nsfast netns monitor
    nsfast netns -all exec CMD...    nsfast netns -all delete
    nsfast netns veth NAME PEER [--netns NS] [--peer-netns NS|PID]
                                [--addr CIDR] [--peer-addr CIDR]
    nsfast netns move DEV NETNS|PID  (ip link set DEV netns NETNS|PID)
    nsfast netns bridge add [NAME [SUBNET]]   (default nsfast0 10.88.0.0/16)
    nsfast netns bridge del NAME...           nsfast netns bridge list

`exec NAME` is run by the C launcher, in place, as `ip netns exec` runs it.
Output is ip's: `list` in directory order with `(id: N)`, `identify` the
last name that matches (an empty line for none), `list-id` as ip prints it.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from .common import Parser, UsageError, fail, write_text

RUN_DIR = "/run/netns"

# ip's verbs in the order ip tries them: a verb is any prefix of its name
# (`ip netns l` lists); nsfast's own after them
VERBS = [("list", "list"), ("show", "list"), ("lst", "list"), ("list-id", "list-id"),
         ("add", "add"), ("set", "set"), ("delete", "delete"), ("identify", "identify"),
         ("pids", "pids"), ("exec", "exec"), ("monitor", "monitor"), ("attach", "attach"),
         ("veth", "veth"), ("move", "move"), ("bridge", "bridge")]
NAMES = ", ".join(v for v, _ in VERBS if v != "lst")


class NetnsParser(Parser):
    """ip's own: an optional -all, a verb (default list), its words."""

    def parse_args(self, args=None, namespace=None) -> argparse.Namespace:  # type: ignore[override]
        args = list(sys.argv[1:] if args is None else args)
        every = bool(args) and len(args[0]) > 1 and "-all".startswith(args[0])
        if every:
            args = args[1:]
        if args and args[0] in ("-h", "--help", "help"):
            sys.stdout.write(__doc__)
            raise SystemExit(0)
        if args and args[0].startswith("-"):
            raise UsageError(f"unknown option {args[0]!r} (only -all, before the command)")
        return argparse.Namespace(all=every, verb=args[0] if args else "list", args=args[1:])


def build_parser(prog: str) -> Parser:
    return NetnsParser(prog=prog)


def _verb(word: str) -> str:
    for name, verb in VERBS:
        if word and name.startswith(word):
            return verb
    raise UsageError(f"unknown command {word!r} ({NAMES})")


def _veth_parser(prog: str) -> Parser:
    p = Parser(prog=f"{prog} veth", description="create a veth pair")
    p.add_argument("name")
    p.add_argument("peer")
    p.add_argument("--netns", metavar="NS", help="namespace of NAME (default: this one)")
    p.add_argument("--peer-netns", metavar="NS", help="namespace of PEER: a name, or a pid "
                   "as `ip link set ... netns PID` takes it (default: NAME's)")
    p.add_argument("--addr", metavar="CIDR", help="address of NAME, like 10.0.0.1/24")
    p.add_argument("--peer-addr", metavar="CIDR", help="address of PEER")
    p.add_argument("--down", action="store_true", help="leave both ends down")
    return p


def _want(args: list, count: int, usage: str) -> list:
    if len(args) != count:
        raise UsageError(f"usage: nsfast netns {usage}")
    return args


def _pid(text: str) -> int:
    try:
        pid = int(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a pid") from None
    if pid <= 0:
        raise UsageError(f"{text!r} is not a pid")
    return pid


def _netns_or_pid(text: Optional[str]):
    """A network namespace as ip names one: a name under /run/netns (or a
    path) first, else a pid (`ip link set DEV netns X`)."""
    if text is None or not text.isdigit() or os.path.lexists(f"{RUN_DIR}/{text}"):
        return text
    return _pid(text)


def _print_lines(lines) -> None:
    """One line each on stdout; a name that is not UTF-8 as its bytes, as ip prints it."""
    write_text(sys.stdout, "".join(f"{line}\n" for line in lines))


def _names() -> list:
    """The entries of /run/netns in directory order, as ip reads them."""
    try:
        return os.listdir(RUN_DIR)
    except FileNotFoundError:
        return []


def _nsid_of_name(name: str) -> Optional[int]:
    from .nsid import nsid_of
    try:
        fd = os.open(f"{RUN_DIR}/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return nsid_of(fd)
    finally:
        os.close(fd)


def _list_id(rest: list) -> None:
    """ip netns list-id [target-nsid ID] [nsid ID]"""
    from .nsid import all_nsids
    want: dict = {}
    while rest:
        key = rest.pop(0)
        if key not in ("target-nsid", "nsid") or not rest or key in want:
            raise UsageError("usage: nsfast netns list-id [target-nsid ID] [nsid ID]")
        value = rest.pop(0)
        if not value.isdigit():
            raise UsageError(f'"{key}" value is invalid: {value!r}')
        want[key] = int(value)
    names = {name: _nsid_of_name(name) for name in _names()}
    lines = []
    for nsid, current in all_nsids(want.get("target-nsid")):
        if "nsid" in want and nsid != want["nsid"]:
            continue
        line = f"nsid {nsid} "
        if current is not None:
            line += f"current-nsid {current} " if current >= 0 else "current-nsid unassigned "
        key = current if current is not None else nsid
        name = next((n for n, i in names.items() if i == key), None)
        lines.append(line + (f"(iproute2 netns name: {name})" if name is not None else ""))
    _print_lines(lines)


def _set(rest: list) -> None:
    from nsfast import netns
    from .nsid import set_nsid
    name, value = _want(rest, 2, "set NAME ID|auto")
    if value == "auto":
        nsid = -1
    elif value.isdigit():
        nsid = int(value)
    else:
        raise UsageError(f'invalid "netnsid" value {value!r} (a number >= 0, or auto)')
    with netns.open(name) as ns:
        try:
            set_nsid(ns.fileno(), nsid)
        except OSError as e:
            raise OSError(e.errno, f"setting the id {value}: {e.strerror}",
                          netns.path_of(name)) from None


def _monitor(rest: list) -> None:
    """`add NAME` and `delete NAME` for each change of /run/netns, until killed."""
    import ctypes
    import struct
    _want(rest, 0, "monitor")
    os.makedirs(RUN_DIR, mode=0o755, exist_ok=True)
    libc = ctypes.CDLL(None, use_errno=True)
    in_create, in_delete, in_cloexec = 0x100, 0x200, 0o2000000
    fd = libc.inotify_init1(in_cloexec)
    if fd < 0 or libc.inotify_add_watch(fd, os.fsencode(RUN_DIR), in_create | in_delete) < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"watching the directory: {os.strerror(e)}", RUN_DIR)
    head = struct.Struct("iIII")
    while True:
        data = os.read(fd, 65536)
        offset = 0
        while offset < len(data):
            _, mask, _, length = head.unpack_from(data, offset)
            name = data[offset + head.size:offset + head.size + length].rstrip(b"\0")
            offset += head.size + length
            word = "add" if mask & in_create else "delete" if mask & in_delete else None
            if word:
                _print_lines([f"{word} {os.fsdecode(name)}"])


def _exec_all(rest: list) -> int:
    """`ip -all netns exec CMD`: CMD in each namespace in turn, each after a
    `netns: NAME` heading; a CMD killed by a signal ends the round (status 1)."""
    from nsfast import netns
    if rest and rest[0] == "--":
        rest = rest[1:]
    if not rest:
        raise UsageError("usage: nsfast netns -all exec CMD [ARGS...]")
    for name in _names():
        _print_lines(["", f"netns: {name}"])
        try:
            with netns.exec(name, rest) as p:
                if p.wait() < 0:
                    return 1
        except OSError as e:
            fail("nsfast netns", f"{name}: {e.filename or rest[0]}: {e.strerror}")
    return 0


def _delete(names: list, every: bool) -> int:
    from nsfast import netns
    if every:
        names = _names()
    elif not names:
        raise UsageError("usage: nsfast netns del NAME...")
    for name in names:
        netns.remove(name)
    return 0


def run(args) -> int:
    from nsfast import netns
    verb = _verb(args.verb)
    rest = list(args.args)
    if args.all and verb not in ("exec", "delete"):
        raise UsageError("-all goes with exec and delete only")
    if verb == "add":
        netns.add(*_want(rest, 1, "add NAME"))
    elif verb == "attach":
        name, pid = _want(rest, 2, "attach NAME PID")
        netns.attach(name, _pid(pid))
    elif verb == "delete":
        return _delete(rest, args.all)
    elif verb == "list-id":
        _list_id(rest)
    elif verb == "set":
        _set(rest)
    elif verb == "pids":
        _print_lines(str(pid) for pid in netns.pids(*_want(rest, 1, "pids NAME")))
    elif verb == "monitor":
        _monitor(rest)
    elif verb in ("exec", "list", "identify"):
        if args.all:
            return _exec_all(rest)
        # the launcher's (csrc/cli_netns.c, cli_netns_list.c): this is an
        # abbreviated verb, or `python -m nsfast.cli` started by something
        # that is not the launcher
        from . import _exec_launcher
        return _exec_launcher(["netns", verb, *rest])
    elif verb == "veth":
        v = _veth_parser("nsfast netns").parse_args(rest)
        netns.veth(v.name, v.peer, peer_netns=_netns_or_pid(v.peer_netns),
                   netns=_netns_or_pid(v.netns), addr=v.addr, peer_addr=v.peer_addr,
                   up=not v.down)
    elif verb == "move":
        dev, target = _want(rest, 2, "move DEV NETNS|PID")
        netns.move(dev, _netns_or_pid(target))
    elif verb == "bridge":
        _bridge(rest)
    return 0


def _bridge(rest: list) -> None:
    """nsfast netns bridge add|del|list: bridges for sandboxes (nsfast.Bridge)."""
    import errno
    import socket
    from nsfast import bridge, links
    verb = rest[0] if rest else "list"
    rest = rest[1:]
    if verb == "add":
        if len(rest) > 2:
            raise UsageError("usage: nsfast netns bridge add [NAME [SUBNET]]")
        name = rest[0] if rest else bridge.DEFAULT_NAME
        subnet = rest[1] if len(rest) > 1 else bridge.DEFAULT_SUBNET
        links.check_ifname(name, "bridge name")
        bridge.parse_subnet(subnet)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            if links.ifindex(s, name):
                raise FileExistsError(errno.EEXIST, "a link of that name exists", name)
        bridge.Bridge(name, subnet).detach()
    elif verb in ("del", "delete"):
        if not rest:
            raise UsageError("usage: nsfast netns bridge del NAME...")
        for name in rest:
            bridge.delete(name)
    elif verb in ("list", "ls", "show"):
        _want(rest, 0, "bridge list")
        _print_lines(f"{name} {' '.join(addresses) or '-'} ports {len(ports)}"
                     for name, addresses, ports in bridge.list_bridges())
    else:
        raise UsageError(f"unknown command bridge {verb!r} (add, del, list)")
