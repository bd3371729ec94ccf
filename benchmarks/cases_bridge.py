"""Bridged sandboxes (nsfast.Bridge): a spawn whose namespace has eth0, an
address and a default route, from a pre-wired pool and wired inline.

Peers: a spawn from a plain NetnsPool whose namespaces have lo up (what a
bridged one must cost no more than), and `podman run --network bridge`
(with the host's / as its root filesystem: no image to pull, no traffic out).
Floors: benchmarks/floor_netns.c spawn-joined (a spawn into a namespace made
ahead) and benchmarks/floor_bridge.c (the whole wiring, then the spawn).
"""
from __future__ import annotations

import ipaddress
import os
import shutil
import tempfile
import time

import nsfast
from nsfast import netns

from .cases_oci import Podman
from .harness import Case, Config, Floor, Peer, within

# a pool that the samples do not drain: refilling a bridged namespace (a veth
# pair and its wiring) takes about three spawns' time, so a full run's 210
# takes would empty a pool of 64 (--quick takes about 45)
POOL_SIZE = {True: 64, False: 192}
PODMAN = ["run", "--rm", "--rootfs", "/", "--network", "bridge", "/bin/true"]


def _bridge(tag: str) -> nsfast.Bridge:
    """A bridge of this run's own, on a /16 of 10.x that no route of the host
    overlaps (Bridge refuses those with a ValueError before touching anything)."""
    name = f"nsfbb{tag}{os.getpid() % 100000}"
    for second in range(200, 256):
        try:
            return nsfast.Bridge(name, f"10.{second}.0.0/16")
        except ValueError as e:
            if "overlaps" not in str(e):
                raise
    raise RuntimeError("no free 10.x.0.0/16 for the benchmark's bridge")


def _warm(pool: nsfast.NetnsPool) -> nsfast.NetnsPool:
    """pool, once its background thread has filled it (or had 60 s to)."""
    deadline = time.monotonic() + 60
    while pool.stats()["ready"] < pool.size and time.monotonic() < deadline:
        time.sleep(0.01)
    return pool


def _check_wired(source, bridge: nsfast.Bridge) -> None:
    """A spawn from source lands in a namespace whose eth0 has the address
    Process.address names, one of the bridge's subnet, and not the host's."""
    p = nsfast.spawn(["ip", "-4", "-o", "addr", "show", "dev", "eth0"], netns=source,
                     stdout=nsfast.PIPE)
    out, _ = p.communicate()
    if p.returncode != 0 or not out:
        raise AssertionError("the spawned namespace has no eth0 with an address")
    shown = ipaddress.ip_interface(out.split()[3].decode())
    if str(shown.ip) != p.address or shown.ip not in bridge.subnet:
        raise AssertionError(f"eth0 has {shown}, Process.address says {p.address}")


def _pool_case(cfg: Config) -> Case:
    held: dict = {}
    size = POOL_SIZE[cfg.quick]

    def setup():
        held["bridge"] = _bridge("p")
        held["bridged"] = _warm(nsfast.NetnsPool(size=size, bridge=held["bridge"]))
        held["plain"] = _warm(nsfast.NetnsPool(size=size, setup=netns.loopback_up))

    def teardown():
        stats = {k: held[k].stats() for k in ("bridged", "plain")}
        for key in ("bridged", "plain", "bridge"):
            held[key].close()
        case.note = (f"pools of {size}, refilled in the background (bridged: hits "
                     f"{stats['bridged']['hits']}, misses {stats['bridged']['misses']}; "
                     f"loopback: hits {stats['plain']['hits']}, misses "
                     f"{stats['plain']['misses']}); target: within 1.15x of the loopback pool")

    def bridged():
        nsfast.spawn(["/bin/true"], netns=held["bridged"]).wait()

    def loopback():
        nsfast.spawn(["/bin/true"], netns=held["plain"]).wait()

    case = Case(
        name="bridge spawn /bin/true, namespace pre-wired",
        op=bridged,
        floor=Floor("floor_netns.c", ["spawn-joined"], served=True),
        peers=[Peer("loopback pool spawn", loopback)],
        check=lambda: _check_wired(held["bridged"], held["bridge"]),
        setup=setup, teardown=teardown,
        targets=[within(1.15, "loopback pool spawn")],
        samples=200,
    )
    return case


def _inline_case(cfg: Config) -> Case:
    held: dict = {}
    podman = Peer("podman run --network bridge", None, "apt-get install podman")
    floor = Floor("floor_bridge.c", [], served=True)

    def setup():
        br = held["bridge"] = _bridge("i")
        # the floor's addresses: the subnet's upper half, apart from the leases
        net = br.subnet
        floor.args = [br.name, str(net.network_address + net.num_addresses // 2),
                      net.prefixlen, br.address, int(br.isolated)]
        if shutil.which("podman") is None:
            return
        # podman with storage, run directories and cgroups of its own, which
        # reset() removes (the host's default ones would stay behind)
        held["podman_dir"] = tempfile.mkdtemp(prefix="nsfast-bench-bridge-podman-")
        run = held["podman"] = Podman(held["podman_dir"])
        probe = run(*PODMAN, check=False, timeout=120)
        if probe.returncode == 0:
            podman.op = lambda: run(*PODMAN)
        else:
            why = (probe.stderr.decode(errors="replace").strip().splitlines()
                   or ["no reason given"])[-1]
            podman.install = f"podman cannot run a container here: {why}"

    def teardown():
        held["bridge"].close()
        if "podman" in held:
            held.pop("podman").reset()
            shutil.rmtree(held.pop("podman_dir"), ignore_errors=True)

    def inline():
        nsfast.spawn(["/bin/true"], netns=held["bridge"]).wait()

    return Case(
        name="bridge spawn /bin/true, wired inline",
        op=inline,
        floor=floor,
        peers=[podman],
        check=lambda: _check_wired(held["bridge"], held["bridge"]),
        setup=setup, teardown=teardown,
        samples=100,
        note="a new namespace, a veth pair on the bridge, a leased address, lo up, a default "
             "route, then the spawn; floor: the same syscalls without the lease file",
    )


def cases(cfg: Config) -> list:
    return [_pool_case(cfg), _inline_case(cfg)]
