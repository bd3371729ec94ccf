"""nsfast netns: `ip netns` sub-commands on the same /run/netns, plus veth pairs.

    nsfast netns add NAME            nsfast netns attach NAME PID
    nsfast netns del NAME...         nsfast netns pids NAME
    nsfast netns list                nsfast netns identify [PID]
    nsfast netns exec NAME CMD...    nsfast netns veth NAME PEER [--netns NS] [--peer-netns NS]
                                                     [--addr CIDR] [--peer-addr CIDR]
    nsfast netns bridge add [NAME [SUBNET]]   (default nsfast0 10.88.0.0/16)
    nsfast netns bridge del NAME...           nsfast netns bridge list
"""
from __future__ import annotations

import argparse
import sys

from .common import Parser, UsageError, exit_status, fail, write_text

VERBS = {
    "add": "add", "attach": "attach", "del": "delete", "delete": "delete",
    "list": "list", "ls": "list", "show": "list", "exec": "exec", "pids": "pids",
    "identify": "identify", "veth": "veth", "bridge": "bridge",
}


def build_parser(prog: str) -> Parser:
    p = Parser(prog=prog, description="named network namespaces, as `ip netns`",
               formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("verb", nargs="?", default="list", metavar="COMMAND",
                   help="add, attach, del, list, exec, pids, identify, veth, bridge")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the command's arguments")
    return p


def _veth_parser(prog: str) -> Parser:
    p = Parser(prog=f"{prog} veth", description="create a veth pair")
    p.add_argument("name")
    p.add_argument("peer")
    p.add_argument("--netns", metavar="NS", help="namespace of NAME (default: this one)")
    p.add_argument("--peer-netns", metavar="NS", help="namespace of PEER (default: NAME's)")
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


def _print_lines(lines) -> None:
    """One line each on stdout; a name that is not UTF-8 as its bytes, as ip prints it."""
    write_text(sys.stdout, "".join(f"{line}\n" for line in lines))


def run(args) -> int:
    from nsfast import netns
    verb = VERBS.get(args.verb)
    if verb is None:
        raise UsageError(f"unknown command {args.verb!r} (add, attach, del, list, exec, "
                         "pids, identify, veth, bridge)")
    rest = list(args.args)
    if verb == "add":
        netns.add(*_want(rest, 1, "add NAME"))
    elif verb == "attach":
        name, pid = _want(rest, 2, "attach NAME PID")
        netns.attach(name, _pid(pid))
    elif verb == "delete":
        if not rest:
            raise UsageError("usage: nsfast netns del NAME...")
        for name in rest:
            netns.remove(name)
    elif verb == "list":
        _want(rest, 0, "list")
        _print_lines(name if nsid is None else f"{name} (id: {nsid})"
                     for name, nsid in netns.list_ids().items())
        for name in netns.stale():
            fail("nsfast netns", f"{netns.path_of(name)}: an empty file, not a network "
                 f"namespace (an add was killed); `nsfast netns del` or the next add of "
                 f"that name removes it")
    elif verb == "pids":
        _print_lines(str(pid) for pid in netns.pids(*_want(rest, 1, "pids NAME")))
    elif verb == "identify":
        if len(rest) > 1:
            raise UsageError("usage: nsfast netns identify [PID]")
        _print_lines(netns.identify(_pid(rest[0]) if rest else None))
    elif verb == "exec":
        if rest and rest[0] == "--":
            rest = rest[1:]
        if len(rest) < 2:
            raise UsageError("usage: nsfast netns exec NAME CMD [ARGS...]")
        with netns.exec(rest[0], rest[1:]) as p:
            return exit_status(p.wait())
    elif verb == "veth":
        v = _veth_parser("nsfast netns").parse_args(rest)
        netns.veth(v.name, v.peer, peer_netns=v.peer_netns, netns=v.netns, addr=v.addr,
                   peer_addr=v.peer_addr, up=not v.down)
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
