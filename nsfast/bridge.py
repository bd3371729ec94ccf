"""Bridge: sandbox networking as Docker's docker0 does it.

A bridge on the host carries the subnet's first address; each sandbox's
network namespace gets one end of a veth pair as eth0, with an address of
the subnet, lo up and a default route via the bridge's address, while the
other end is a port of the bridge.  Isolated ports (the bridge port flag
`isolated`) reach the bridge but not one another.

Addresses come from a lease file shared by every thread and process that
uses the bridge (nsfast/leases.py).  Nothing has to be released by hand:
when a sandbox's namespace goes, the kernel destroys its veth pair, which
ends the lease and detaches the port.

Wiring a namespace costs a veth pair (about a millisecond, most of it the
kernel's) and a few netlink requests; NetnsPool(bridge=...) does it ahead of
time so that a bridged spawn only joins a namespace.

Outbound NAT is left out: nothing here lets traffic leave the bridge.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import socket
import threading
from typing import Any, Dict, Optional

from . import links
from .errors import os_error
from .flags import NsType
from .handles import Closeable, Namespace
from .leases import LEASE_DIR, LeaseFile
from .targets import open_namespace

DEFAULT_NAME = "nsfast0"
DEFAULT_SUBNET = "10.88.0.0/16"
PEER_NAME = "eth0"              # the sandbox's end of its veth pair
VETH_PREFIX = "nsv"             # the host's end: nsv + 10 hex digits
RT_TABLE_MAIN = 254
# what Docker sets in its containers: unprivileged ICMP echo sockets for
# every gid, so that ping works in a sandbox without CAP_NET_RAW
PING_GROUP_RANGE = b"0 2147483647"
_PING_GROUP_RANGE_FILE = "/proc/sys/net/ipv4/ping_group_range"


def parse_subnet(subnet: Any) -> ipaddress.IPv4Network:
    """The IPv4 network of a CIDR string, with room for the bridge's address
    and at least one sandbox; ValueError/TypeError otherwise.

    >>> nsfast.bridge.parse_subnet("10.88.0.0/16")
    IPv4Network('10.88.0.0/16')
    """
    if not isinstance(subnet, str):
        raise TypeError(f"subnet is a CIDR string like {DEFAULT_SUBNET!r}, not "
                        f"{type(subnet).__name__}")
    if "/" not in subnet:
        raise ValueError(f"subnet {subnet!r} needs a prefix length, like {DEFAULT_SUBNET!r}")
    try:
        net = ipaddress.ip_network(subnet)
    except ValueError as e:
        raise ValueError(f"subnet {subnet!r} is not an IPv4 network: {e}") from None
    if net.version != 4:
        raise ValueError(f"subnet {subnet!r}: only IPv4 subnets are supported")
    if net.prefixlen > 30:
        raise ValueError(f"subnet {subnet!r} is too small: it needs room for the network, "
                         "the bridge's address, a sandbox and the broadcast address (/30 "
                         "or larger)")
    return net


def gateway(subnet: ipaddress.IPv4Network) -> str:
    """The bridge's address: the subnet's first host address.

    >>> nsfast.bridge.gateway(ipaddress.ip_network("10.88.0.0/16"))
    '10.88.0.1'
    """
    return str(subnet.network_address + 1)


class BridgedNamespace(Namespace):
    """A network namespace wired to a bridge: its address and the host's end
    of its veth pair come with the handle."""

    __slots__ = ("address", "veth")


def _netlink_error(e: Exception, name: str, what: str) -> OSError:
    return links._netlink_error(e, name, what, {
        errno.EOPNOTSUPP: "this kernel lacks bridge or veth support (modprobe bridge veth)",
        errno.EPERM: "a bridge and its ports need CAP_NET_ADMIN on the host",
    })


def _link_kind(link) -> Optional[str]:
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info is not None else None


def _bridge_message(name: str):
    """RTM_NEWLINK for a bridge named name, up."""
    from pyroute2.netlink import NLM_F_CREATE, NLM_F_EXCL
    from pyroute2.netlink.rtnl import RTM_NEWLINK
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    msg = ifinfmsg()
    msg["family"] = socket.AF_UNSPEC
    msg["flags"] = msg["change"] = links.IFF_UP
    msg["attrs"] = [("IFLA_IFNAME", name),
                    ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge")]})]
    msg["header"]["type"] = RTM_NEWLINK
    msg["header"]["flags"] = NLM_F_CREATE | NLM_F_EXCL
    return msg


def _isolation_message(port: str):
    """RTM_NEWLINK that sets the bridge port flag `isolated` on port."""
    from pyroute2.netlink.rtnl import RTM_NEWLINK
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    msg = ifinfmsg()
    msg["family"] = socket.AF_UNSPEC
    msg["attrs"] = [("IFLA_IFNAME", port),
                    ("IFLA_LINKINFO", {"attrs": [
                        ("IFLA_INFO_SLAVE_KIND", "bridge"),
                        ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_ISOLATED", 1)]})]})]
    msg["header"]["type"] = RTM_NEWLINK
    msg["header"]["flags"] = 0
    return msg


def _up_message(index: int):
    """RTM_NEWLINK that brings the link of that index up."""
    from pyroute2.netlink.rtnl import RTM_NEWLINK
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    msg = ifinfmsg()
    msg["family"] = socket.AF_UNSPEC
    msg["index"] = index
    msg["flags"] = msg["change"] = links.IFF_UP
    msg["header"]["type"] = RTM_NEWLINK
    msg["header"]["flags"] = 0
    return msg


def _address_message(index: int, address: str, prefixlen: int):
    """RTM_NEWADDR of address/prefixlen on the link of that index."""
    from pyroute2.netlink import NLM_F_CREATE, NLM_F_EXCL
    from pyroute2.netlink.rtnl import RTM_NEWADDR
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    msg = ifaddrmsg()
    msg["family"] = socket.AF_INET
    msg["prefixlen"] = prefixlen
    msg["index"] = index
    msg["attrs"] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
    msg["header"]["type"] = RTM_NEWADDR
    msg["header"]["flags"] = NLM_F_CREATE | NLM_F_EXCL
    return msg


def _default_route_message(index: int, via: str):
    """RTM_NEWROUTE of the default route via `via` out of the link of that index."""
    from pyroute2.netlink import NLM_F_CREATE, NLM_F_EXCL
    from pyroute2.netlink.rtnl import RTM_NEWROUTE
    from pyroute2.netlink.rtnl.rtmsg import rtmsg
    msg = rtmsg()
    msg["family"] = socket.AF_INET
    msg["table"] = RT_TABLE_MAIN
    msg["proto"] = 3    # RTPROT_BOOT, as `ip route add` marks its routes
    msg["scope"] = 0    # RT_SCOPE_UNIVERSE
    msg["type"] = 1     # RTN_UNICAST
    msg["attrs"] = [("RTA_GATEWAY", via), ("RTA_OIF", index)]
    msg["header"]["type"] = RTM_NEWROUTE
    msg["header"]["flags"] = NLM_F_CREATE | NLM_F_EXCL
    return msg


class Bridge(Closeable):
    """A bridge on the host for sandboxes, docker0-style: created, or adopted
    when a bridge of that name exists; it gets the subnet's first address.
    close() removes it only if this object created it.

    isolated=True gives each port the `isolated` flag: sandboxes reach the
    bridge's address but not one another; isolated=False lets them talk.

    spawn(netns=bridge), Sandbox(network=bridge) and NetnsPool(bridge=bridge)
    give each sandbox eth0 with an address of the subnet (Process.address),
    lo up and a default route via the bridge.

    Bad input is a ValueError before anything is touched: a subnet smaller
    than /30, a name of 16 bytes or more, a name that is another kind of
    link, a subnet that overlaps a route of the host.

    >>> nsfast.Bridge(name="x" * 16)
    Traceback (most recent call last):
    ValueError: bridge name must be 1 to 15 bytes, not 16: 'xxxxxxxxxxxxxxxx'
    """

    def __init__(self, name: str = DEFAULT_NAME, subnet: str = DEFAULT_SUBNET,
                 isolated: bool = True) -> None:
        self._closed = True      # until set up: close() has nothing to do
        self.created = False
        self.name = links.check_ifname(name, "bridge name")
        self.subnet = parse_subnet(subnet)
        if not isinstance(isolated, bool):
            raise TypeError(f"isolated is a bool, not {type(isolated).__name__}")
        self.isolated = isolated
        self.address = gateway(self.subnet)
        self._lock = threading.Lock()   # one request at a time on the host socket
        # the host: the namespace of the thread making the bridge; every later
        # request goes there, whichever namespace the calling thread is in
        self._home = Namespace(os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC))
        try:
            self._sock = links._socket(self._home)
        except BaseException:
            self._home.close()
            raise
        self._closed = False
        try:
            self.index = self._create_or_adopt()
            self._leases = LeaseFile(LEASE_DIR, self.name, self._home.inode, self.subnet,
                                     self._alive)
        except BaseException:
            self.close()
            raise

    # ---- the bridge itself
    def _create_or_adopt(self) -> int:
        """The bridge's ifindex, after making it (or adopting it), with its
        address and up.  The checks come first: nothing is changed on a
        ValueError."""
        from pyroute2 import NetlinkError
        with links.iproute(self._home) as ipr:
            existing = ipr.get_links(ifname=self.name) if links.ifindex(
                self._sock, self.name) else []
            if existing:
                kind = _link_kind(existing[0])
                if kind != "bridge":
                    raise ValueError(f"{self.name!r} exists and is a {kind or 'device'} "
                                     "link, not a bridge")
            self._check_overlap(ipr, existing[0]["index"] if existing else 0)
            if not existing:
                try:
                    links.transact(self._sock, [_bridge_message(self.name)])
                    self.created = True
                except NetlinkError as e:
                    if e.code != errno.EEXIST:   # EEXIST: someone made it just now
                        raise _netlink_error(e, self.name, "creating the bridge") from None
            index = links.ifindex(self._sock, self.name)
            if not index:
                raise os_error(errno.ENODEV, self.name, "the bridge went away while it "
                               "was being set up", what="adopting the bridge")
            try:
                msgs = [_up_message(index)]
                if not any(a.get_attr("IFA_LOCAL") == self.address and
                           a["prefixlen"] == self.subnet.prefixlen
                           for a in ipr.get_addr(family=socket.AF_INET, index=index)):
                    msgs.insert(0, _address_message(index, self.address,
                                                    self.subnet.prefixlen))
                links.transact(self._sock, msgs)
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise _netlink_error(e, self.name, "giving the bridge its address") \
                        from None
        return index

    def _check_overlap(self, ipr, own: int) -> None:
        """ValueError if the subnet overlaps a route of the host that is not
        the bridge's own (adding it would take over the host's traffic)."""
        for route in ipr.get_routes(family=socket.AF_INET):
            table = route.get_attr("RTA_TABLE") or route["table"]
            if table != RT_TABLE_MAIN or route["dst_len"] == 0:
                continue
            if own and route.get_attr("RTA_OIF") == own:
                continue
            dst = ipaddress.ip_network(f"{route.get_attr('RTA_DST')}/{route['dst_len']}")
            if dst.overlaps(self.subnet):
                raise ValueError(f"subnet {self.subnet} overlaps the host's route to {dst}: "
                                 "pick a subnet that is not in use")

    def _alive(self, veth: str, index: int) -> bool:
        """Whether the host still has the veth end named veth with that ifindex."""
        return links.ifindex(self._sock, veth) == index

    # ---- wiring namespaces
    def take(self) -> BridgedNamespace:
        """A new network namespace wired to the bridge (what spawn(netns=bridge)
        joins): eth0 with an address, lo up, a default route via the bridge.

        >>> with nsfast.Bridge(f"nsfdoc{os.getpid()}", "10.213.213.0/24") as br, \\
        ...         br.take() as ns:
        ...     ns.address
        '10.213.213.2'
        """
        from .pool import new_netns
        self._check_open()
        ns = new_netns(BridgedNamespace)
        try:
            ns.address, ns.veth = self._wire(ns)
        except BaseException:
            ns.close()
            raise
        return ns

    def attach(self, netns: Any) -> str:
        """Wire an existing network namespace (any nsfast target: a name under
        /run/netns, a path, a pid, a Namespace) to the bridge; its address.
        The veth pair, and so the lease, ends with the namespace."""
        self._check_open()
        with open_namespace(netns, NsType.NET) as ns:
            return self._wire(ns)[0]

    def _wire(self, ns: Namespace) -> tuple:
        """(address, host veth name) after wiring ns; nothing is left of a failure."""
        veth, index = self._make_veth(ns)
        try:
            address = self._leases.take(veth, index)
        except BaseException:
            self._delete(veth)
            raise
        try:
            self._configure_inside(ns, address)
        except BaseException:
            self._delete(veth)
            self._leases.drop(address, veth)
            raise
        return address, veth

    def _make_veth(self, ns: Namespace) -> tuple:
        """(name, ifindex) of a new veth whose peer is eth0 in ns, attached to
        the bridge (isolated if asked), the host's end up."""
        from pyroute2 import NetlinkError
        for _ in range(8):
            veth = VETH_PREFIX + os.urandom(5).hex()
            msgs = [links._veth_message(veth, PEER_NAME, ns.fileno(), master=self.index,
                                        up=True)]
            if self.isolated:
                msgs.append(_isolation_message(veth))
            try:
                with self._lock:
                    links.transact(self._sock, msgs)
            except NetlinkError as e:
                failed = getattr(e, "failed", 0)
                if failed > 0:   # the pair was made, the port flag refused
                    self._delete(veth)
                    raise _netlink_error(e, veth, "setting the bridge port isolated") from None
                if e.code == errno.EEXIST:
                    if links.ifindex(self._sock, veth):
                        continue   # our random name was taken: another one
                    raise os_error(errno.EEXIST, ns.path, f"the namespace has an interface "
                                   f"named {PEER_NAME} already",
                                   what="wiring the namespace to the bridge") from None
                if e.code == errno.ENODEV:
                    raise os_error(errno.ENODEV, self.name, "the bridge is gone (deleted "
                                   "by someone else?)", what="attaching a port") from None
                raise _netlink_error(e, veth, "creating the sandbox's veth pair") from None
            index = links.ifindex(self._sock, veth)
            if index:
                return veth, index
        raise os_error(errno.EEXIST, veth, what="finding a free veth name")

    def _configure_inside(self, ns: Namespace, address: str) -> None:
        """lo and eth0 up, eth0's address, the default route, in one datagram on a
        netlink socket made inside ns; ping allowed to every gid."""
        from pyroute2 import NetlinkError
        with links._socket(ns) as s:
            index = links.ifindex(s, PEER_NAME)
            if not index:
                raise os_error(errno.ENODEV, PEER_NAME, "the sandbox's end of the veth "
                               "pair is not in its namespace", what="configuring eth0")
            try:
                links.transact(s, [_up_message(links.LOOPBACK_IFINDEX), _up_message(index),
                                   _address_message(index, address, self.subnet.prefixlen),
                                   _default_route_message(index, self.address)])
            except NetlinkError as e:
                raise _netlink_error(e, PEER_NAME, f"configuring {address} on eth0") from None
        _write_in(ns, _PING_GROUP_RANGE_FILE, PING_GROUP_RANGE)

    def _delete(self, veth: str) -> None:
        """Delete the host's end of a veth pair (both ends go); quietly."""
        try:
            with self._lock:
                links.transact(self._sock, [links._deletion(veth)])
        except Exception:
            pass

    # ---- looking at it
    def leases(self) -> Dict[str, str]:
        """address -> host veth name of every sandbox that holds an address now
        (the leases of namespaces that are gone are collected first).

        >>> with nsfast.Bridge(f"nsfdoc{os.getpid()}", "10.213.213.0/24") as br:
        ...     br.leases()
        {}
        """
        self._check_open()
        return {address: veth for address, (veth, _) in self._leases.live().items()}

    def ports(self) -> list:
        """The names of the links attached to the bridge, sorted.

        >>> with nsfast.Bridge(f"nsfdoc{os.getpid()}", "10.213.213.0/24") as br:
        ...     br.ports()
        []
        """
        self._check_open()
        with links.iproute(self._home) as ipr:
            return sorted(link.get_attr("IFLA_IFNAME") for link in ipr.get_links()
                          if link.get_attr("IFLA_MASTER") == self.index)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("this Bridge is closed")

    # ---- the end
    def close(self) -> None:
        """Delete the bridge if this object created it (its ports are detached;
        the sandboxes keep their eth0 but lose the bridge), and its leases;
        an adopted bridge is left as it is.  Twice is fine."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.created:
                with self._lock:
                    try:
                        links.transact(self._sock, [links._deletion(self.name)])
                    except Exception as e:
                        if getattr(e, "code", None) != errno.ENODEV:
                            raise _netlink_error(e, self.name, "deleting the bridge") \
                                from None
                self._leases.remove()
        finally:
            self._sock.close()
            self._home.close()

    def detach(self) -> None:
        """Let go of the bridge without removing it, even if this object made it
        (what `nsfast netns bridge add` does): it stays for others to adopt."""
        self.created = False
        self.close()

    @property
    def closed(self) -> bool:
        """True once close() has run."""
        return self._closed

    def __repr__(self) -> str:
        return (f"<nsfast.Bridge {self.name} {self.address}/{self.subnet.prefixlen}"
                f"{' isolated' if self.isolated else ''}"
                f"{' created' if self.created else ' adopted'}"
                f"{' closed' if self._closed else ''}>")


def _write_in(ns: Namespace, path: str, value: bytes) -> None:
    """Write value to a /proc/sys/net file of ns: the file belongs to the
    namespace of whoever opens it, so this thread enters ns for the open."""
    from .enter import enter
    with enter(ns):
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value)
    except OSError as e:
        raise os_error(e.errno, path, what="setting a sysctl of the sandbox's namespace") \
            from None
    finally:
        os.close(fd)


def delete(name: str) -> None:
    """Delete the bridge of that name and its leases (`nsfast netns bridge del`);
    ValueError if that link is not a bridge, FileNotFoundError if there is none.

    >>> nsfast.bridge.delete("nsfast-none")
    Traceback (most recent call last):
    FileNotFoundError: [Errno 2] No such file or directory (hint: no bridge of that name): 'nsfast-none'
    """
    from pyroute2 import NetlinkError
    links.check_ifname(name, "bridge name")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        exists = links.ifindex(s, name)
    with links.iproute() as ipr:
        found = ipr.get_links(ifname=name) if exists else []
        if not found:
            raise os_error(errno.ENOENT, name, "no bridge of that name")
        if _link_kind(found[0]) != "bridge":
            raise ValueError(f"{name!r} is a {_link_kind(found[0]) or 'device'} link, "
                             "not a bridge")
        try:
            ipr.link("del", index=found[0]["index"])
        except NetlinkError as e:
            raise _netlink_error(e, name, "deleting the bridge") from None
    with Namespace(os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)) as home:
        LeaseFile(LEASE_DIR, name, home.inode, ipaddress.ip_network("0.0.0.0/32"),
                  lambda veth, index: False).remove()


def list_bridges() -> list:
    """(name, [CIDR addresses], [port names]) of every bridge of this network
    namespace, sorted by name (`nsfast netns bridge list`).

    >>> isinstance(nsfast.bridge.list_bridges(), list)
    True
    """
    with links.iproute() as ipr:
        all_links = ipr.get_links()
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in all_links}
        bridges = {link["index"]: link.get_attr("IFLA_IFNAME") for link in all_links
                   if _link_kind(link) == "bridge"}
        ports: dict = {index: [] for index in bridges}
        for link in all_links:
            master = link.get_attr("IFLA_MASTER")
            if master in ports:
                ports[master].append(names[link["index"]])
        addresses: dict = {index: [] for index in bridges}
        for a in ipr.get_addr(family=socket.AF_INET):
            if a["index"] in addresses:
                addresses[a["index"]].append(f"{a.get_attr('IFA_LOCAL')}/{a['prefixlen']}")
    return sorted((bridges[i], addresses[i], sorted(ports[i])) for i in bridges)


def subnet_of(name: str) -> Optional[str]:
    """The subnet of the bridge of that name as its first IPv4 address says
    (what adopting it without naming a subnet uses); None when there is no
    such bridge or it has no IPv4 address.

    >>> nsfast.bridge.subnet_of("nsfast-none") is None
    True
    """
    for bridge, addresses, _ in list_bridges():
        if bridge == name and addresses:
            return str(ipaddress.ip_interface(addresses[0]).network)
    return None
