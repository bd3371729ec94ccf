"""nsfast as a pytest plugin: network namespaces, veth pairs, bridges and
sandboxes as fixtures, made fresh for each test and removed after it, also
when it fails.

Installed with nsfast and loaded by pytest through the `pytest11` entry
point, so any test suite in the environment can ask for:

netns
    A fresh network namespace with lo up, and the test runs inside it: the
    fixture enters it in the test's thread with nsfast.enter(), which
    switches that thread only and switches it back after the test.  The
    value is its nsfast.Namespace handle.
named_netns
    The name of a fresh network namespace under /run/netns (lo up), seen by
    `ip netns` and usable as netns=NAME by nsfast.spawn.
veth_pair
    A VethPair: a veth link from the test's `netns` (so the test runs inside
    it) to a second fresh namespace, addresses on both ends, everything up.
bridge
    An nsfast.Bridge with a name of its own and a 10.x.0.0/16 subnet that no
    route of the caller's namespace covers; closed after the test.
sandbox
    A default nsfast.Sandbox; every payload it started that still runs is
    killed and reaped after the test.

and mark a test with ``@pytest.mark.isolated_netns`` to run its function
(the call, not its fixtures) in a network namespace of its own, entered and
left the same way.

The plugin defines fixtures and one marker, nothing autouse: a suite that
asks for none of them runs as it did.  nsfast is imported by the fixtures
only, so that pytest starts as before (also where nsfast cannot import).
"""
from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
from typing import Any, Iterator, NamedTuple

import pytest

MARKER = "isolated_netns"
VETH_NAME, VETH_PEER = "veth0", "veth1"
VETH_ADDRESS, VETH_PEER_ADDRESS, VETH_PREFIX = "10.200.0.1", "10.200.0.2", 30
# the bridge fixture picks a free 10.N.0.0/16 with N in this range
BRIDGE_SECOND_OCTETS = range(64, 250)

_serial = itertools.count()


class VethPair(NamedTuple):
    """What the veth_pair fixture gives: `name` at `address` in `netns` (the
    test's own namespace), `peer` at `peer_address` in `peer_netns`."""
    name: str
    address: str
    netns: Any
    peer: str
    peer_address: str
    peer_netns: Any


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: run the test function in a fresh network namespace with lo up "
                   "(nsfast.enter in the test's thread, left after the call)")


def fresh_netns() -> Any:
    """A new network namespace with lo up, as an nsfast.Namespace handle that
    the caller closes (made on a helper thread: the caller's stays put).

    >>> with fresh_netns() as ns, nsfast.netns.iproute(ns) as ipr:
    ...     [(link.get("ifname"), link.get("state")) for link in ipr.get_links()]
    [('lo', 'up')]
    """
    import nsfast
    with nsfast.NetnsPool(size=0, setup=nsfast.netns.loopback_up) as pool:
        return pool.take()


@contextlib.contextmanager
def inside_fresh_netns() -> Iterator[Any]:
    """Run the block in a fresh network namespace (this thread only); it is
    left and released afterwards, also when the block raises.

    >>> with inside_fresh_netns() as ns:
    ...     os.stat("/proc/thread-self/ns/net").st_ino == ns.inode
    True
    """
    import nsfast
    with fresh_netns() as ns, nsfast.enter(ns):
        yield ns


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """The isolated_netns marker: the call phase runs inside a fresh netns."""
    if item.get_closest_marker(MARKER) is None:
        yield
        return
    with inside_fresh_netns():
        yield   # the test's outcome is pytest's: a failure does not skip the exit


@pytest.fixture
def netns() -> Iterator[Any]:
    """A fresh network namespace (lo up) that the test runs inside; its handle."""
    with inside_fresh_netns() as ns:
        yield ns


def _unique(prefix: str) -> str:
    """A name no other test of any process takes: pid and a serial number."""
    return f"{prefix}{os.getpid():x}-{next(_serial):x}"


@pytest.fixture
def named_netns() -> Iterator[str]:
    """The name of a fresh network namespace under /run/netns (lo up)."""
    import nsfast
    name = _unique("pytest-nsfast-")
    nsfast.netns.add(name)
    try:
        nsfast.netns.loopback_up(name)
        yield name
    finally:
        if os.path.lexists(nsfast.netns.path_of(name)):
            nsfast.netns.remove(name)


@pytest.fixture
def veth_pair(netns: Any) -> Iterator[VethPair]:
    """A veth pair from the test's netns to a fresh one, both ends up with
    an address; the pair goes with the namespaces."""
    import nsfast
    with fresh_netns() as peer_netns:
        nsfast.netns.veth(VETH_NAME, VETH_PEER, netns=netns, peer_netns=peer_netns,
                          addr=f"{VETH_ADDRESS}/{VETH_PREFIX}",
                          peer_addr=f"{VETH_PEER_ADDRESS}/{VETH_PREFIX}")
        yield VethPair(VETH_NAME, VETH_ADDRESS, netns, VETH_PEER, VETH_PEER_ADDRESS, peer_netns)


def free_subnet(start: int = 0) -> str:
    """A 10.N.0.0/16 that no address or route of the calling thread's
    namespace overlaps, trying N from BRIDGE_SECOND_OCTETS from start on.

    >>> free_subnet().startswith("10.")
    True
    """
    import nsfast
    with nsfast.netns.iproute() as ipr:
        taken = [ipaddress.ip_network(f"{r.get('dst')}/{r['dst_len']}", strict=False)
                 for r in ipr.get_routes(family=2) if r.get("dst")]
        taken += [ipaddress.ip_network(f"{a.get('address')}/{a['prefixlen']}", strict=False)
                  for a in ipr.get_addr(family=2)]
    octets = list(BRIDGE_SECOND_OCTETS)
    start %= len(octets)
    for n in octets[start:] + octets[:start]:
        net = ipaddress.ip_network(f"10.{n}.0.0/16")
        if not any(net.overlaps(t) for t in taken):
            return str(net)
    raise RuntimeError(f"no free 10.N.0.0/16 for N in {BRIDGE_SECOND_OCTETS}")


@pytest.fixture
def bridge() -> Iterator[Any]:
    """An isolated nsfast.Bridge with a name and subnet of its own."""
    from nsfast import Bridge   # nsfast/net (#17)
    name = _unique("nsb")   # an interface name: at most 15 bytes
    box = Bridge(name=name, subnet=free_subnet(os.getpid() + next(_serial)), isolated=True)
    try:
        yield box
    finally:
        box.close()


@pytest.fixture
def sandbox() -> Iterator[Any]:
    """A default nsfast.Sandbox; what it started and still runs is killed after."""
    import nsfast
    box = nsfast.Sandbox()
    started: list[Any] = []
    spawn = box.spawn

    def spawn_and_keep(*args: Any, **kwargs: Any) -> Any:
        proc = spawn(*args, **kwargs)
        started.append(proc)
        return proc

    box.spawn = spawn_and_keep   # type: ignore[method-assign]   # run() spawns through it
    try:
        yield box
    finally:
        for proc in started:
            proc.__exit__(None, None, None)   # killed if it runs, reaped, pipes closed
        box.close()
        started.clear()   # no cycle through box.spawn keeps them (and their ids) to a gc
        del box.spawn
