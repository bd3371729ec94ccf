"""Links, addresses and routes inside a network namespace, through pyroute2.

nsfast does not encode netlink itself: it hands pyroute2 a netlink socket that
a helper thread created *inside* the target namespace (csrc/netns_thread.c:
setns on a fresh pthread, socket(), the thread ends).  A netlink socket
belongs to the namespace it was created in, whichever thread uses it later,
so the returned IPRoute acts on that namespace.  No process is forked, unlike
IPRoute(netns=...), which forks a child to open the socket.

One request is on a hot path, a veth pair's creation: there building an
IPRoute costs about as much as the kernel's work, so a message encoded by
pyroute2 goes out on a plain socket and only the kernel's acknowledgement is
read back (_request).

Using nsfast as the backend of another tool:

    with nsfast.netns.iproute("blue") as ipr:        # a plain pyroute2 IPRoute
        ipr.link("add", ifname="d0", kind="dummy")
        idx = ipr.link_lookup(ifname="d0")[0]
        ipr.addr("add", index=idx, address="192.0.2.1", prefixlen=24)
        ipr.link("set", index=idx, state="up")
        ipr.route("add", dst="default", gateway="192.0.2.254")

Anything pyroute2's IPRoute can do works on it; use it from the thread that
made it, as pyroute2 asks of every IPRoute.
"""
from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import socket
import struct
from typing import Any, Optional

from . import _core
from .errors import os_error
from .flags import NsType
from .handles import Namespace
from .kernel import (IFF_LOOPBACK, NETLINK_ROUTE, NLM_F_ACK, NLM_F_REQUEST, NLMSG_ERROR,
                     NLMSG_HDR)
from .targets import open_namespace

IFNAMSIZ = 16
SIOCGIFINDEX = 0x8933
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP = 0x1
LOOPBACK_IFINDEX = 1  # lo is always ifindex 1 in every network namespace
# device kinds the kernel marks netns-local (they cannot change namespace)
NETNS_LOCAL_KINDS = ("bridge", "vrf", "ppp", "openvswitch")


def check_ifname(name: Any, what: str = "interface name") -> str:
    """name if the kernel would accept it as an interface name (dev_valid_name).

    >>> nsfast.links.check_ifname("veth0")
    'veth0'
    """
    if not isinstance(name, str):
        raise TypeError(f"{what} is a str, not {type(name).__name__}")
    size = len(name.encode("utf-8", "surrogateescape"))
    if not name or size >= IFNAMSIZ:
        raise ValueError(f"{what} must be 1 to {IFNAMSIZ - 1} bytes, not {size}: {name!r}")
    if name in (".", "..") or any(c in name for c in "/:\0") or any(c.isspace() for c in name):
        raise ValueError(f"{what} {name!r} is not valid (no '/', ':', NUL or spaces)")
    return name


def parse_cidr(cidr: Any, what: str = "address") -> tuple[str, int]:
    """(address, prefix length) of a CIDR string such as '10.0.0.1/24'.

    >>> nsfast.links.parse_cidr("10.0.0.1/24")
    ('10.0.0.1', 24)
    """
    if not isinstance(cidr, str):
        raise TypeError(f"{what} is a CIDR string like '10.0.0.1/24', not {type(cidr).__name__}")
    if "/" not in cidr:
        raise ValueError(f"{what} {cidr!r} needs a prefix length, like '10.0.0.1/24'")
    try:
        iface = ipaddress.ip_interface(cidr)
    except ValueError as e:
        raise ValueError(f"{what} {cidr!r} is not a CIDR address: {e}") from None
    return str(iface.ip), iface.network.prefixlen


def _namespace(target: Any) -> Optional[Namespace]:
    """A new handle on a net namespace target (a name, path, pid, handle), or None
    for the calling thread's own.  The caller closes it."""
    if target is None:
        return None
    return open_namespace(target, NsType.NET)


def _netlink_error(e: Exception, name: Optional[str], what: str,
                   hints: Optional[dict] = None) -> OSError:
    code = getattr(e, "code", None) or errno.EIO
    hint = (hints or {}).get(code) or {
        errno.EPERM: "changing links needs CAP_NET_ADMIN in the namespace's user namespace",
        errno.ENODEV: "no such interface in that namespace",
    }.get(code)
    return os_error(code, name, hint, what=what)


def iproute(netns: Any = None, **options: Any):
    """A pyroute2 IPRoute whose netlink socket lives in netns (a name under /run/netns,
    a path, a pid, a Namespace; None for the calling thread's own).

    The socket is opened by a helper thread that entered netns; nothing forks.

    >>> with nsfast.netns.iproute(netns_name) as ipr:
    ...     [link.get("ifname") for link in ipr.get_links()]
    ['lo']
    """
    from pyroute2 import IPRoute
    ns = _namespace(netns)
    if ns is None:
        return IPRoute(**options)
    with ns:
        fd = _netlink_fd(ns)
    try:
        return IPRoute(fileno=fd, **options)  # it owns fd from here
    except BaseException:
        os.close(fd)
        raise


def _netlink_fd(ns: Namespace) -> int:
    """A NETLINK_ROUTE socket made inside ns by a helper thread, as an fd."""
    try:
        return _core.netns_socket(ns.fileno(), socket.AF_NETLINK, socket.SOCK_DGRAM,
                                  NETLINK_ROUTE)
    except OSError as e:
        raise os_error(e.errno, ns.path, what="opening a netlink socket in the namespace") \
            from None


def _socket(ns: Optional[Namespace]) -> socket.socket:
    """A NETLINK_ROUTE socket in ns (None: the calling thread's namespace)."""
    if ns is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC,
                             NETLINK_ROUTE)
    return socket.socket(fileno=_netlink_fd(ns))




def _request(ns: Optional[Namespace], msg) -> None:
    """Send one request (a pyroute2 message, not yet encoded) on a fresh socket
    in ns and raise pyroute2's NetlinkError if the kernel refuses it.  For a
    single request this skips IPRoute's set-up, as slow as making a veth."""
    with _socket(ns) as s:
        transact(s, [msg])


def transact(sock: socket.socket, msgs: list) -> None:
    """Send requests (pyroute2 messages, not yet encoded) in one datagram on a
    NETLINK_ROUTE socket and read each one's acknowledgement; the kernel's
    refusal of any of them is pyroute2's NetlinkError (the first one met, its
    index in msgs as the error's `failed`).

    The kernel handles the messages of a datagram in order, so a later one
    may name a link an earlier one made.  Sequence numbers tell the
    acknowledgements apart from any left over on the socket by a request
    that was interrupted."""
    from pyroute2 import NetlinkError
    global _sequence
    first = _sequence = (_sequence + len(msgs)) & 0x3FFFFFFF
    data = bytearray()
    for i, msg in enumerate(msgs):
        msg["header"]["flags"] |= NLM_F_REQUEST | NLM_F_ACK
        msg["header"]["sequence_number"] = first + i
        msg.encode()
        data += msg.data
    sock.send(data)
    waiting = set(range(first, first + len(msgs)))
    error = failed = 0
    size = NLMSG_HDR.size
    while waiting:
        reply = sock.recv(65536)
        offset = 0
        while offset + size <= len(reply):
            length, kind, _, seq, _ = NLMSG_HDR.unpack_from(reply, offset)
            if length < size:
                break
            if kind == NLMSG_ERROR and seq in waiting and length >= size + 4:
                waiting.discard(seq)
                # struct nlmsgerr's error (s32): 0 is the acknowledgement
                err = struct.unpack_from("=i", reply, offset + size)[0]
                if err and not error:
                    error, failed = -err, seq - first
            offset += (length + 3) & ~3
    if error:
        e = NetlinkError(error, os.strerror(error))
        e.failed = failed   # which of msgs the kernel refused
        raise e


_sequence = 0


def ifindex(sock: socket.socket, ifname: str) -> int:
    """The index of interface ifname in the network namespace of sock (any
    socket: the ioctl resolves in its namespace, not the calling thread's);
    0 when there is none.

    >>> with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    ...     nsfast.links.ifindex(s, "lo"), nsfast.links.ifindex(s, "no-such-if")
    (1, 0)
    """
    req = struct.pack("16si20x", os.fsencode(ifname), 0)
    try:
        reply = fcntl.ioctl(sock.fileno(), SIOCGIFINDEX, req)
    except OSError as e:
        if e.errno == errno.ENODEV:
            return 0
        raise
    return struct.unpack_from("16si", reply)[1]


def _deletion(name: str):
    """RTM_DELLINK for the interface of that name."""
    from pyroute2.netlink.rtnl import RTM_DELLINK
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    msg = ifinfmsg()
    msg["family"] = socket.AF_UNSPEC
    msg["attrs"] = [("IFLA_IFNAME", name)]
    msg["header"]["type"] = RTM_DELLINK
    msg["header"]["flags"] = 0
    return msg


def _veth_message(name: str, peer: str, peer_fd: Optional[int], master: int = 0,
                  up: bool = False):
    """RTM_NEWLINK for a veth pair, the peer made in peer_fd's namespace;
    `name` attached to the bridge of index master (0: none) and up when up.
    The peer cannot be brought up by this request: the kernel opens it before
    the two ends are joined, and veth_open refuses that (ENOTCONN)."""
    from pyroute2.netlink import NLM_F_CREATE, NLM_F_EXCL
    from pyroute2.netlink.rtnl import RTM_NEWLINK
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    peer_attrs: list = [("IFLA_IFNAME", peer)]
    if peer_fd is not None:
        peer_attrs.append(("IFLA_NET_NS_FD", peer_fd))
    flags = IFF_UP if up else 0
    msg = ifinfmsg()
    msg["family"] = socket.AF_UNSPEC
    msg["flags"] = msg["change"] = flags
    msg["attrs"] = [
        ("IFLA_IFNAME", name),
        ("IFLA_LINKINFO", {"attrs": [
            ("IFLA_INFO_KIND", "veth"),
            ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": peer_attrs})]}),
        ]}),
    ]
    if master:
        msg["attrs"].append(("IFLA_MASTER", master))
    msg["header"]["type"] = RTM_NEWLINK
    msg["header"]["flags"] = NLM_F_CREATE | NLM_F_EXCL
    return msg


def _index(ipr, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise os_error(errno.ENODEV, ifname, "no such interface in that namespace")
    return found[0]


def _configure(ipr, ifname: str, cidr: Optional[tuple], up: bool) -> None:
    from pyroute2 import NetlinkError
    try:
        idx = _index(ipr, ifname)
        if cidr is not None:
            ipr.addr("add", index=idx, address=cidr[0], prefixlen=cidr[1])
        if up:
            ipr.link("set", index=idx, state="up")
    except NetlinkError as e:
        raise _netlink_error(e, ifname, "configuring the interface") from None


def veth(name: str, peer: str, peer_netns: Any = None, netns: Any = None,
         addr: Optional[str] = None, peer_addr: Optional[str] = None, up: bool = True) -> None:
    """Create a veth pair: `name` in netns (None: the calling thread's), `peer` created
    directly inside peer_netns (None: next to `name`), in one netlink request; then
    optionally an address on each end (CIDR strings) and both ends up.

    FileExistsError when either name is taken in its namespace.

    Here `name` goes into a sleeper's namespace (pid) rather than the caller's:

    >>> nsfast.netns.veth("v-host", "v-ns", netns=pid, peer_netns=netns_name,
    ...                   addr="10.0.0.1/24", peer_addr="10.0.0.2/24")
    >>> ping = ["ping", "-c1", "-W5", "10.0.0.1"]
    >>> nsfast.netns.exec(netns_name, ping, stdout=nsfast.DEVNULL).wait()
    0
    """
    from pyroute2 import NetlinkError
    check_ifname(name)
    check_ifname(peer, "peer name")
    if name == peer and peer_netns is None:
        raise ValueError("the two ends of a veth pair in one namespace need different names")
    cidr = parse_cidr(addr, "addr") if addr is not None else None
    peer_cidr = parse_cidr(peer_addr, "peer_addr") if peer_addr is not None else None
    pns = _namespace(peer_netns)
    ns = None
    try:
        ns = _namespace(netns)
        try:
            _request(ns, _veth_message(name, peer, None if pns is None else pns.fileno()))
        except NetlinkError as e:
            raise _netlink_error(e, name, f"creating veth {name}/{peer}", {
                errno.EEXIST: "an interface of one of these names exists in its namespace",
                errno.EOPNOTSUPP: "this kernel lacks veth (modprobe veth)",
            }) from None
        if cidr is None and peer_cidr is None and not up:
            return
        try:
            with iproute(ns) as ipr:
                _configure(ipr, name, cidr, up)
                if pns is None:
                    _configure(ipr, peer, peer_cidr, up)
                else:
                    with iproute(pns) as pipr:
                        _configure(pipr, peer, peer_cidr, up)
        except BaseException:
            # deleting one end destroys the pair: leave nothing half made
            try:
                _request(ns, _deletion(name))
            except Exception:
                pass
            raise
    finally:
        for handle in (ns, pns):
            if handle is not None:
                handle.close()


def move(ifname: str, netns: Any, source: Any = None) -> None:
    """Move interface ifname from source (None: the calling thread's namespace) into netns.

    Devices the kernel marks netns-local (lo, bridges, vrf, ppp) cannot move:
    that is an OSError(EINVAL) that says so.

    >>> nsfast.netns.veth("veth0", "veth1", netns=pid)
    >>> nsfast.netns.move("veth1", netns_name, source=pid)
    >>> with nsfast.netns.iproute(netns_name) as ipr:
    ...     [link.get("ifname") for link in ipr.get_links()]
    ['lo', 'veth1']
    """
    from pyroute2 import NetlinkError
    check_ifname(ifname)
    dst = _namespace(netns)
    if dst is None:
        raise ValueError("move needs a destination namespace")
    with dst, iproute(source) as ipr:
        idx = _index(ipr, ifname)
        try:
            ipr.link("set", index=idx, net_ns_fd=dst.fileno())
        except NetlinkError as e:
            reason = _netns_local_reason(ipr, idx) if e.code == errno.EINVAL else None
            if reason:
                raise os_error(errno.EINVAL, ifname,
                               f"{reason}: the kernel marks it netns-local, and netns-local "
                               "devices cannot change network namespace",
                               what=f"moving {ifname}") from None
            raise _netlink_error(e, ifname, f"moving {ifname}") from None


def _netns_local_reason(ipr, idx: int) -> Optional[str]:
    """Why the device at idx is netns-local, if it is one of the kinds we know."""
    try:
        link = ipr.get_links(idx)[0]
    except Exception:
        return None
    if link["flags"] & IFF_LOOPBACK:
        return f"{link.get('ifname')} is the loopback device"
    kind = link.get(("linkinfo", "kind")) if hasattr(link, "get_nested") else None
    if kind is None:
        info = link.get("IFLA_LINKINFO")
        kind = info.get("IFLA_INFO_KIND") if info is not None else None
    if kind in NETNS_LOCAL_KINDS:
        return f"{link.get('ifname')} is a {kind}"
    return None


def loopback_up(netns: Any = None) -> None:
    """Bring lo up in netns (a new namespace has lo DOWN): SIOCSIFFLAGS on a
    socket made there, as the spawn child does it (csrc/spawn_child.c).

    >>> nsfast.netns.loopback_up(netns_name)
    >>> ping = ["ping", "-c1", "-W5", "127.0.0.1"]
    >>> nsfast.netns.exec(netns_name, ping, stdout=nsfast.DEVNULL).wait()
    0
    """
    ns = _namespace(netns)
    if ns is None:
        sock = _socket(None)
    else:
        with ns:
            sock = _socket(ns)
    # the ioctl resolves in the socket's namespace, whatever its family
    with sock:
        request = struct.pack("16sH22x", b"lo", 0)
        try:
            flags = struct.unpack_from("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
            fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))
        except OSError as e:
            raise os_error(e.errno, None if ns is None else ns.path,
                           "bringing lo up needs CAP_NET_ADMIN over the namespace",
                           what="bringing lo up") from None


def add_address(ifname: str, cidr: str, netns: Any = None) -> None:
    """Add an address (CIDR string) to ifname in netns, through pyroute2.

    >>> nsfast.netns.add_address("lo", "10.0.0.1/24", netns=netns_name)
    >>> nsfast.netns.exec(netns_name, ["ip", "-o", "addr"], stdout=nsfast.PIPE).communicate()[0]
    b'1: lo    inet 10.0.0.1/24 scope global lo...'
    """
    from pyroute2 import NetlinkError
    check_ifname(ifname)
    address, prefix = parse_cidr(cidr)
    with iproute(netns) as ipr:
        try:
            ipr.addr("add", index=_index(ipr, ifname), address=address, prefixlen=prefix)
        except NetlinkError as e:
            raise _netlink_error(e, ifname, f"adding {cidr}") from None


def add_route(dst: str, gateway: Optional[str] = None, ifname: Optional[str] = None,
              netns: Any = None) -> None:
    """Add a route ('default' or a CIDR) via gateway and/or out of ifname, through pyroute2.

    >>> nsfast.netns.veth("veth0", "veth1", netns=netns_name, addr="10.0.0.1/24")
    >>> nsfast.netns.add_route("default", gateway="10.0.0.2", netns=netns_name)
    >>> nsfast.netns.exec(netns_name, ["ip", "route"], stdout=nsfast.PIPE).communicate()[0]
    b'default via 10.0.0.2 dev veth0 ...'
    """
    from pyroute2 import NetlinkError
    if dst != "default":
        parse_cidr(dst, "dst")
    if gateway is None and ifname is None:
        raise ValueError("a route needs a gateway or an interface")
    if gateway is not None:
        if not isinstance(gateway, str):
            raise TypeError(f"gateway is an address string, not {type(gateway).__name__}")
        ipaddress.ip_address(gateway)
    if ifname is not None:
        check_ifname(ifname)
    with iproute(netns) as ipr:
        spec: dict = {"dst": dst}
        if gateway is not None:
            spec["gateway"] = gateway
        try:
            if ifname is not None:
                spec["oif"] = _index(ipr, ifname)
            ipr.route("add", **spec)
        except NetlinkError as e:
            raise _netlink_error(e, dst, f"adding route {dst}") from None
