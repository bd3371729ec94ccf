"""Network namespaces: named add+del, veth into a namespace, spawn from a pool.

Peers: `ip netns` / `ip link` (iproute2) and pyroute2 (netns.create/remove,
IPRoute.link).  Floors: benchmarks/floor_netns.c.
"""
from __future__ import annotations

import itertools
import os
import subprocess
import time

import nsfast
from nsfast import _core, netns

from .harness import Case, Config, Floor, Peer, which_or_none

NET = int(nsfast.NsType.NET)


def _pyroute2():
    try:
        import pyroute2
        from pyroute2 import IPRoute
        from pyroute2 import netns as pr_netns
        return pyroute2, IPRoute, pr_netns
    except ImportError:
        return None, None, None


def _prefix(tag: str) -> str:
    return f"b{tag}{os.getpid() % 100000}"


def _named_case(cfg: Config) -> Case:
    _, _, pr_netns = _pyroute2()
    ip = which_or_none("ip")
    counter = itertools.count()
    prefix = _prefix("n")

    def add_then_remove(add, remove):
        def op():
            name = f"{prefix}_{next(counter)}"
            add(name)
            remove(name)
        return op

    def ip_netns(verb):
        return lambda name: subprocess.run([ip, "netns", verb, name], check=True)

    ours = add_then_remove(netns.add, netns.remove)
    with_ip = add_then_remove(ip_netns("add"), ip_netns("del")) if ip else None
    with_pyroute2 = add_then_remove(pr_netns.create, pr_netns.remove) if pr_netns else None

    def check():
        name = f"{prefix}_check"
        netns.add(name)
        try:
            listed = subprocess.run([ip or "ip", "netns", "list"], capture_output=True,
                                    text=True).stdout.split()
            if name not in listed or os.stat(f"/run/netns/{name}").st_ino == \
                    os.stat("/proc/self/ns/net").st_ino:
                raise AssertionError("named add made no namespace that ip netns sees")
        finally:
            netns.remove(name)

    return Case(
        name="netns named add+del",
        op=ours,
        floor=Floor("floor_netns.c", ["named", f"{prefix}f"], served=True),   # threads unshare
        peers=[Peer("ip netns", with_ip, "apt-get install iproute2"),
               Peer("pyroute2", with_pyroute2, "pip install pyroute2")],
        check=check,
        target=("pyroute2", 1 / 3),
        samples=200,
        note="targets: <= 1/3 of pyroute2 netns.create+remove and < ip netns add+del",
    )


class _VethBench:
    """Two named namespaces A and B; the benchmark thread sits in A, so every
    contender creates its end there and the peer in B.  Removing A and B at the
    end destroys every pair in one batched kernel cleanup."""

    def __init__(self):
        self.a, self.b = _prefix("va"), _prefix("vb")
        self.home = -1
        self.peer_ns = None
        self.counter = itertools.count()

    def names(self, tag: str) -> tuple[str, str]:
        i = next(self.counter)
        return f"x{tag}{i}a", f"x{tag}{i}b"

    def setup(self) -> None:
        netns.add(self.a)
        netns.add(self.b)
        self.peer_ns = netns.open(self.b)
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        with netns.open(self.a) as a:
            _core.setns(a.fileno(), NET)

    def teardown(self) -> None:
        if self.home >= 0:
            _core.setns(self.home, NET)
            os.close(self.home)
            self.home = -1
        if self.peer_ns is not None:
            self.peer_ns.close()
        for name in (self.a, self.b):
            try:
                netns.remove(name)
            except FileNotFoundError:
                pass


def _veth_case(cfg: Config) -> Case:
    _, IPRoute, _ = _pyroute2()
    ip = which_or_none("ip")
    bench = _VethBench()

    def ours():
        end, peer = bench.names("n")
        netns.veth(end, peer, peer_netns=bench.peer_ns, up=False)

    def with_ip():
        end, peer = bench.names("i")
        subprocess.run([ip, "link", "add", end, "type", "veth", "peer", "name", peer,
                        "netns", bench.b], check=True)

    def with_pyroute2():
        end, peer = bench.names("p")
        with IPRoute() as ipr:
            ipr.link("add", ifname=end, kind="veth",
                     peer={"ifname": peer, "net_ns_fd": bench.peer_ns.fileno()})

    def check():
        end, peer = bench.names("c")
        netns.veth(end, peer, peer_netns=bench.peer_ns, up=False)
        out = subprocess.run([ip or "ip", "-n", bench.b, "-o", "link"], capture_output=True,
                             text=True).stdout
        if f" {peer}@" not in out:
            raise AssertionError("the veth peer is not in the peer namespace")

    return Case(
        name="veth with the peer in a netns",
        op=ours,
        floor=Floor("floor_netns.c", ["veth", f"/run/netns/{bench.a}", f"/run/netns/{bench.b}",
                                      "xf"], served=True),   # moves its thread
        peers=[Peer("ip link", with_ip if ip else None, "apt-get install iproute2"),
               Peer("pyroute2", with_pyroute2 if IPRoute else None, "pip install pyroute2")],
        check=check,
        setup=bench.setup,
        teardown=bench.teardown,
        target=("pyroute2", 1.0),
        samples=200,
        note="each contender opens its netlink socket per call; no addresses, both ends down",
    )


def _warm_pool(size: int) -> nsfast.NetnsPool:
    """A pool whose background thread has filled it (or had 30 s to)."""
    pool = nsfast.NetnsPool(size=size)
    deadline = time.monotonic() + 30
    while pool.stats()["ready"] < size and time.monotonic() < deadline:
        time.sleep(0.01)
    return pool


def _spawn_case(cfg: Config) -> Case:
    holder: dict = {}

    def setup():
        holder["pool"] = _warm_pool(32)

    def teardown():
        stats = holder["pool"].stats()
        holder["pool"].close()
        case.note = (f"pool of 32 (hits {stats['hits']}, misses {stats['misses']}); "
                     "target: warm pool within 1.15x of a spawn with no net namespace")

    def from_pool():
        nsfast.spawn(["/bin/true"], netns=holder["pool"]).wait()

    def no_netns():
        nsfast.spawn(["/bin/true"]).wait()

    def new_netns():
        nsfast.spawn(["/bin/true"], namespaces="net").wait()

    def check():
        with nsfast.spawn(["sleep", "5"], netns=holder["pool"]) as p:
            if os.stat(f"/proc/{p.pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino:
                raise AssertionError("spawn from the pool did not join a pool namespace")

    case = Case(
        name="spawn /bin/true from a warm netns pool",
        op=from_pool,
        floor=Floor("floor_netns.c", ["spawn-joined"], served=True),   # makes netns on threads
        peers=[Peer("spawn no netns", no_netns), Peer("spawn new netns", new_netns)],
        check=check, setup=setup, teardown=teardown,
        target=("spawn no netns", 1.15),
        samples=200,
    )
    return case


def _sustained_case(cfg: Config) -> Case:
    """500 spawns/s from a pool: each sample is one paced burst (0.5 s, or 0.1 s
    under --quick); 20 samples make the 10 s run.  The note tells whether the
    refill kept up (misses) and the rate reached."""
    rate = 500
    burst = 50 if cfg.quick else 250
    holder: dict = {"spawns": 0, "seconds": 0.0}

    def setup():
        holder["pool"] = _warm_pool(64)

    def paced_burst():
        pool = holder["pool"]
        t0 = time.perf_counter()
        for i in range(burst):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            nsfast.spawn(["/bin/true"], netns=pool).wait()
        holder["spawns"] += burst
        holder["seconds"] += time.perf_counter() - t0

    def teardown():
        stats = holder["pool"].stats()
        holder["pool"].close()
        total = stats["hits"] + stats["misses"]
        achieved = holder["spawns"] / holder["seconds"] if holder["seconds"] else 0
        case.note = (f"asked {rate}/s, reached {achieved:.0f}/s over "
                     f"{holder['seconds']:.1f} s; pool hits {stats['hits']}, misses "
                     f"{stats['misses']} ({100 * stats['misses'] / max(1, total):.1f}%), "
                     f"time in take() {stats['wait_seconds'] * 1000:.0f} ms; median is per "
                     f"burst of {burst} (ideal {burst / rate * 1000:.0f} ms)")

    def check():
        # a spawn from the pool lands in one of its namespaces, not the caller's
        pool = holder["pool"]
        hits = pool.stats()["hits"]
        p = nsfast.spawn(["readlink", "/proc/self/ns/net"], netns=pool, stdout=nsfast.PIPE)
        out, _ = p.communicate()
        if out.strip() == os.readlink("/proc/self/ns/net").encode() or \
                pool.stats()["hits"] != hits + 1:
            raise AssertionError("the spawn did not take a namespace from the pool")

    case = Case(
        name=f"netns pool sustained {rate} spawns/s",
        op=paced_burst, setup=setup, teardown=teardown, check=check,
        # in rounds although it spawns: a sample is a whole paced burst, not served
        floor=Floor("floor_netns.c", ["paced", burst, rate]),
        samples=20, warmup=1,
    )
    return case


def cases(cfg: Config) -> list:
    return [_named_case(cfg), _veth_case(cfg), _spawn_case(cfg), _sustained_case(cfg)]
