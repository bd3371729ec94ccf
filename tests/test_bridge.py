"""nsfast.Bridge: a docker0-style bridge, leased addresses, wired namespaces.

Traffic only between namespaces these tests make and the bridge's address.
Every bridge has a name of its own (the pid in it) and a subnet that no route
of the host overlaps; fixtures remove bridges, leases and processes also when
a test fails.  Witnesses: ip, bridge (iproute2), nsenter, lsns, the lease
file itself.
"""
from __future__ import annotations

import ipaddress
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import nsfast
from nsfast import bridge as bridge_module
from nsfast.leases import LEASE_DIR
from conftest import need, need_tool, run_cli

PID = os.getpid()
_serial = itertools.count()
_subnets = itertools.count()


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check,
                          timeout=30)


def bridge_name() -> str:
    """A bridge name no other test or engineer uses (at most 15 bytes)."""
    return f"nsfb{PID % 100000}x{next(_serial)}"


def host_networks() -> list:
    """The destinations of the host's IPv4 routes (all tables) and addresses."""
    nets = []
    for line in ip("-4", "-o", "route", "show", "table", "all").stdout.splitlines():
        dst = line.split()[0]
        if dst in ("local", "broadcast", "unicast", "multicast"):
            dst = line.split()[1]
        if dst != "default":
            try:
                nets.append(ipaddress.ip_network(dst, strict=False))
            except ValueError:
                pass
    for line in ip("-4", "-o", "addr").stdout.splitlines():
        nets.append(ipaddress.ip_interface(line.split()[3]).network)
    return nets


def free_subnet(prefix: int = 24) -> str:
    """A 10.x subnet that no route or address of the host overlaps."""
    taken = host_networks()
    base = 150 + PID % 90
    for _ in range(4096):
        k = next(_subnets)
        net = ipaddress.ip_network(f"10.{base + k // 256 % 100}.{k % 256}.0/{prefix}",
                                   strict=False)
        if not any(net.overlaps(t) for t in taken):
            return str(net)
    raise AssertionError("no free 10.x subnet on this host")


def link_exists(name: str) -> bool:
    return ip("link", "show", "dev", name, check=False).returncode == 0


def ports_of(name: str) -> list[str]:
    """The links `ip link` shows as ports of the bridge."""
    out = ip("-o", "link", "show", "master", name).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def lease_files(name: str) -> list[str]:
    try:
        return [f for f in os.listdir(LEASE_DIR) if f.startswith(f"{name}.")]
    except FileNotFoundError:
        return []


def leased_in_file(name: str) -> list[str]:
    """The addresses the bridge's lease file holds: its journal replayed
    ("+ ADDRESS VETH IFINDEX" leases, "- ADDRESS" ends a lease)."""
    held: dict = {}
    for f in lease_files(name):
        if f.endswith(".leases"):
            with open(os.path.join(LEASE_DIR, f)) as fh:
                for line in fh.read().splitlines():
                    fields = line.split()
                    if fields[0] == "+":
                        held[fields[1]] = fields[2]
                    elif fields[0] == "-":
                        held.pop(fields[1])
    return sorted(held)


def eth0_address(pid: int) -> str:
    """eth0's IPv4 address in pid's network namespace, as `ip` there shows it."""
    out = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-4", "-o", "addr",
                          "show", "dev", "eth0"], capture_output=True, text=True,
                         check=True).stdout
    return str(ipaddress.ip_interface(out.split()[3]).ip)


def ping_from(pid: int, address: str) -> bool:
    r = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ping", "-c1", "-W1",
                        address], capture_output=True, timeout=30)
    return r.returncode == 0


def wait_until(predicate, timeout: float = 30.0, what: str = "") -> None:
    """Poll predicate until it holds: the kernel tears namespaces down late."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {what}")
        time.sleep(0.05)


@pytest.fixture
def make_bridge():
    """Factory of bridges with unique names and free subnets; each one (and its
    lease files) is gone afterwards, whatever the test did."""
    need_tool("ip")
    made: list = []
    bridges: list = []

    def make(isolated: bool = True, prefix: int = 24, **kwargs):
        name = kwargs.pop("name", None) or bridge_name()
        subnet = kwargs.pop("subnet", None) or free_subnet(prefix)
        made.append(name)
        bridges.append(nsfast.Bridge(name, subnet, isolated=isolated, **kwargs))
        return bridges[-1]

    yield make
    for br in bridges:
        br.close()   # its fds too, now rather than at some later garbage collection
    for name in made:
        ip("link", "del", "dev", name, check=False)
        for f in lease_files(name):
            os.unlink(os.path.join(LEASE_DIR, f))


@pytest.fixture
def procs():
    """Processes to kill and reap after the test."""
    started: list = []
    yield started
    for p in started:
        try:
            p.kill()
            p.wait()
        except Exception:
            pass


def sleepers(br, count: int, procs: list) -> list:
    """count `sleep` processes, each in a namespace of its own on br."""
    out = []
    for _ in range(count):
        p = nsfast.spawn(["sleep", "60"], netns=br)
        procs.append(p)
        out.append(p)
    return out


# ---- the bridge itself

def test_bridge_is_created_with_the_first_address_and_removed_on_close(make_bridge):
    br = make_bridge()
    net = br.subnet
    shown = ip("-d", "-o", "link", "show", "dev", br.name).stdout
    assert " bridge " in shown and "UP" in shown.split(">")[0]
    addrs = ip("-4", "-o", "addr", "show", "dev", br.name).stdout.split()
    assert f"{net.network_address + 1}/{net.prefixlen}" in addrs
    assert br.created and br.address == str(net.network_address + 1)
    br.close()
    br.close()
    assert not link_exists(br.name)


def test_an_existing_bridge_is_adopted_and_left_on_close(make_bridge):
    name = bridge_name()
    ip("link", "add", name, "type", "bridge")
    br = make_bridge(name=name)
    assert not br.created
    net = br.subnet
    assert f"{net.network_address + 1}/{net.prefixlen}" in \
        ip("-4", "-o", "addr", "show", "dev", name).stdout.split()
    br.close()
    assert link_exists(name)


# ---- bad input: ValueError before anything is touched

def test_a_subnet_too_small_is_refused_before_anything_is_made():
    name = bridge_name()
    for subnet in ("10.213.0.0/31", "10.213.0.0/32"):
        with pytest.raises(ValueError, match="too small"):
            nsfast.Bridge(name, subnet)
    for subnet, error in (("10.213.0.1/24", ValueError), ("fd00::/64", ValueError),
                          ("10.213.0.0", ValueError), (None, TypeError)):
        with pytest.raises(error):
            nsfast.Bridge(name, subnet)
    with pytest.raises(TypeError):
        nsfast.Bridge(name, "10.213.0.0/24", isolated="yes")
    assert not link_exists(name)


def test_a_name_over_ifnamsiz_is_refused():
    long_name = f"nsfb{PID}" + "x" * 16
    with pytest.raises(ValueError, match="15 bytes"):
        nsfast.Bridge(long_name, "10.213.0.0/24")
    for bad in ("", "a/b", "a b"):
        with pytest.raises(ValueError):
            nsfast.Bridge(bad, "10.213.0.0/24")
    assert not link_exists(long_name[:15])


def test_a_name_that_is_another_kind_of_link_is_refused_untouched(make_bridge):
    name = bridge_name()
    ip("link", "add", name, "type", "veth", "peer", "name", bridge_name())
    try:
        before = ip("-d", "-o", "link", "show", "dev", name).stdout
        with pytest.raises(ValueError, match="veth"):
            make_bridge(name=name)
        assert ip("-d", "-o", "link", "show", "dev", name).stdout == before
        assert ip("-4", "-o", "addr", "show", "dev", name).stdout == ""
    finally:
        ip("link", "del", "dev", name, check=False)


def test_a_subnet_the_host_routes_already_is_refused(make_bridge):
    dummy = bridge_name()
    subnet = ipaddress.ip_network(free_subnet())
    ip("link", "add", dummy, "type", "veth", "peer", "name", bridge_name())
    try:
        ip("addr", "add", f"{subnet.network_address + 1}/{subnet.prefixlen}", "dev", dummy)
        ip("link", "set", dummy, "up")
        name = bridge_name()
        with pytest.raises(ValueError, match="overlaps"):
            make_bridge(name=name, subnet=str(subnet.supernet(new_prefix=16)))
        assert not link_exists(name)
    finally:
        ip("link", "del", "dev", dummy, check=False)


# ---- traffic

def test_isolated_sandboxes_reach_the_bridge_but_not_each_other(make_bridge, procs):
    need_tool("nsenter")
    need_tool("ping")
    need_tool("bridge")
    br = make_bridge(isolated=True)
    a, b = sleepers(br, 2, procs)
    assert a.address != b.address
    assert eth0_address(a.pid) == a.address and eth0_address(b.pid) == b.address
    for p in (a, b):
        assert ping_from(p.pid, br.address)
    assert not ping_from(a.pid, b.address)
    assert not ping_from(b.pid, a.address)
    details = subprocess.run(["bridge", "-d", "link", "show"], capture_output=True,
                             text=True).stdout
    for port in ports_of(br.name):
        block = details.split(f"{port}@")[1].split("\n", 2)[1]
        assert "isolated on" in block


def test_sandboxes_on_a_bridge_that_is_not_isolated_reach_each_other(make_bridge, procs):
    need_tool("nsenter")
    need_tool("ping")
    br = make_bridge(isolated=False)
    a, b = sleepers(br, 2, procs)
    assert ping_from(a.pid, b.address) and ping_from(b.pid, a.address)
    # and by TCP, between two Sandboxes (each root in a user namespace of its own)
    server_code = textwrap.dedent("""
        import socket, sys
        s = socket.socket()
        s.bind(("0.0.0.0", 7777)); s.listen(1)
        print("ready", flush=True)
        c, peer = s.accept()
        c.sendall(b"hello " + peer[0].encode()); c.close()
    """)
    python = "/usr/bin/python3"   # the system's: the sandbox's ids may run it
    need(os.access(python, os.X_OK), python)
    box = nsfast.Sandbox(network=br)
    server = box.spawn([python, "-c", server_code], stdout=nsfast.PIPE)
    procs.append(server)
    assert server.stdout.readline() == b"ready\n"
    client_code = ("import socket, sys; c = socket.create_connection((sys.argv[1], 7777), 5);"
                   "print(c.recv(100).decode())")
    done = box.run([python, "-c", client_code, server.address], timeout=30)
    assert done.returncode == 0, done.stderr
    client_address = done.stdout.decode().split()[1]
    assert done.stdout.decode().split()[0] == "hello"
    assert ipaddress.ip_address(client_address) in br.subnet
    assert client_address not in (server.address, br.address)
    assert server.wait(timeout=10) == 0
    box.close()


def test_a_sandbox_gets_eth0_lo_and_a_default_route_it_cannot_change(make_bridge, procs):
    br = make_bridge()
    with nsfast.Sandbox(network=br) as box:
        p = box.spawn(["sh", "-c", "ip -o link; ip route; exec sleep 60"], stdout=nsfast.PIPE)
        procs.append(p)
        listing = b"".join(p.stdout.readline() for _ in range(4)).decode()
        assert "lo: <LOOPBACK,UP,LOWER_UP>" in listing
        # the flags, not operstate: the kernel sets that a moment later (linkwatch)
        eth0 = listing.split("eth0@")[1].split("\n")[0]
        assert {"UP", "LOWER_UP"} <= set(eth0.split("<")[1].split(">")[0].split(","))
        assert f"default via {br.address} dev eth0" in listing
        assert eth0_address(p.pid) == p.address
        # the namespace belongs to the host's user namespace: root inside the
        # sandbox has no CAP_NET_ADMIN over it
        done = box.run(["ip", "addr", "add", "10.99.99.99/32", "dev", "eth0"])
        assert done.returncode != 0 and b"not permitted" in done.stderr


# ---- addresses

def test_200_sandboxes_from_4_threads_get_distinct_addresses_and_leave_nothing(
        make_bridge, procs):
    need_tool("lsns")
    br = make_bridge()
    started: list = []
    errors: list = []
    lock = threading.Lock()

    def spawn_50():
        try:
            for _ in range(50):
                # pdeathsig follows the spawning thread: these outlive theirs
                p = nsfast.spawn(["sleep", "120"], netns=br, pdeathsig=None)
                with lock:
                    started.append(p)
                    procs.append(p)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=spawn_50) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    addresses = [p.address for p in started]
    assert len(addresses) == 200 and len(set(addresses)) == 200
    assert all(ipaddress.ip_address(a) in br.subnet and a != br.address for a in addresses)
    for p in started[::10]:
        assert eth0_address(p.pid) == p.address
    assert len(ports_of(br.name)) == 200
    assert sorted(br.leases()) == sorted(addresses)
    assert leased_in_file(br.name) == sorted(addresses)
    inodes = {os.stat(f"/proc/{p.pid}/ns/net").st_ino for p in started}
    assert len(inodes) == 200
    for p in started:
        p.kill()
    for p in started:
        p.wait()

    def left() -> tuple:
        listed = subprocess.run(["lsns", "-n", "-t", "net", "-o", "NS"], capture_output=True,
                                text=True).stdout.split()
        return ports_of(br.name), {int(x) for x in listed} & inodes, br.leases()

    wait_until(lambda: left() == ([], set(), {}), what="ports, netns or leases left")
    assert link_exists(br.name) and ports_of(br.name) == []
    assert leased_in_file(br.name) == []
    assert ip("-o", "link", "show", "type", "veth").stdout.count("master " + br.name) == 0


_ALLOCATOR = """
import os, json
import nsfast
br = nsfast.Bridge({name!r}, {subnet!r})
os.read(0, 1)   # go: both processes allocate at once
held = [br.take() for _ in range({count})]
print(json.dumps([ns.address for ns in held]), flush=True)
os.read(0, 1)   # hold the namespaces until told
"""


def test_two_processes_allocating_at_once_never_collide(make_bridge):
    br = make_bridge()
    code = _ALLOCATOR.format(name=br.name, subnet=str(br.subnet), count=60)
    children = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE) for _ in range(2)]
    try:
        time.sleep(1.0)   # both have opened the bridge
        for c in children:
            c.stdin.write(b"x")
            c.stdin.flush()
        got = [json.loads(c.stdout.readline()) for c in children]
        assert len(got[0]) == len(got[1]) == 60
        assert not set(got[0]) & set(got[1])
        assert len(set(got[0]) | set(got[1])) == 120
        assert sorted(br.leases()) == sorted(got[0] + got[1])
    finally:
        for c in children:
            c.kill()
            c.wait()
            c.stdin.close()
            c.stdout.close()
    # killed with SIGKILL: their namespaces die, and with them the leases
    wait_until(lambda: br.leases() == {} and ports_of(br.name) == [],
               what="the leases of SIGKILLed owners were not collected")


def test_a_sigkilled_owners_lease_is_collected_by_the_next_allocation(make_bridge):
    br = make_bridge(prefix=30)   # room for one sandbox: its address must come back
    code = _ALLOCATOR.format(name=br.name, subnet=str(br.subnet), count=1)
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    try:
        child.stdin.write(b"x")
        child.stdin.flush()
        (address,) = json.loads(child.stdout.readline())
        with pytest.raises(OSError, match="leased"):
            br.take()
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        child.kill()
        child.wait()
        child.stdin.close()
        child.stdout.close()
    deadline = time.monotonic() + 30
    while True:
        try:
            with br.take() as ns:
                assert ns.address == address
            break
        except OSError:
            assert time.monotonic() < deadline, "the dead owner's lease was never collected"
            time.sleep(0.05)


# ---- pre-wired pools

def test_a_bridged_pool_hands_out_wired_namespaces_and_release_frees_them(make_bridge, procs):
    br = make_bridge()
    pool = nsfast.NetnsPool(size=4, bridge=br)
    try:
        wait_until(lambda: pool.stats()["ready"] == 4, what="the pool never filled")
        assert len(br.leases()) == 4 and len(ports_of(br.name)) == 4
        p = nsfast.spawn(["sleep", "60"], netns=pool)
        procs.append(p)
        assert pool.stats()["hits"] == 1
        assert p.address in br.leases()
        assert eth0_address(p.pid) == p.address
        assert os.stat(f"/proc/{p.pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
        p.kill()
        p.wait()
    finally:
        pool.close()
    wait_until(lambda: br.leases() == {} and ports_of(br.name) == [],
               what="a released namespace kept its veth or lease")


def test_netnspool_refuses_a_bridge_of_the_wrong_type():
    with pytest.raises(TypeError, match="Bridge"):
        nsfast.NetnsPool(size=1, bridge="nsfast0")


def test_sandbox_refuses_a_network_of_the_wrong_type(make_bridge):
    with pytest.raises(TypeError, match="network"):
        nsfast.Sandbox(network="nsfast0")
    br = make_bridge()
    with pytest.raises(ValueError, match="loopback"):
        nsfast.Sandbox(network=br, loopback=True)


# ---- command line

def test_cli_bridge_add_list_run_del(tmp_path):
    name = bridge_name()
    subnet = ipaddress.ip_network(free_subnet())
    try:
        run_cli("netns", "bridge", "add", name, str(subnet), check=True)
        assert f"{subnet.network_address + 1}/{subnet.prefixlen}" in \
            ip("-4", "-o", "addr", "show", "dev", name).stdout
        listed = run_cli("netns", "bridge", "list", check=True).stdout.decode()
        assert f"{name} {subnet.network_address + 1}/{subnet.prefixlen} ports 0\n" in listed
        r = run_cli("run", "--net", f"bridge:{name}", "--", "ip", "-4", "-o", "addr", "show",
                    "dev", "eth0", check=True)
        assert ipaddress.ip_interface(r.stdout.decode().split()[3]) in \
            [ipaddress.ip_interface(f"{a}/{subnet.prefixlen}") for a in subnet.hosts()]
        assert link_exists(name)   # adopted by the run, so left in place
        config = tmp_path / "bridge.toml"
        config.write_text(f'network = "bridge:{name}"\n')
        r = run_cli("run", "--config", str(config), "--", "ip", "-4", "-o", "route",
                    check=True)
        assert f"default via {subnet.network_address + 1} dev eth0" in r.stdout.decode()
        again = run_cli("netns", "bridge", "add", name)
        assert again.returncode == 1 and b"exists" in again.stderr
        run_cli("netns", "bridge", "del", name, check=True)
        assert not link_exists(name) and lease_files(name) == []
    finally:
        ip("link", "del", "dev", name, check=False)


def test_cli_bridge_errors_are_one_line():
    name = bridge_name()
    for args, words in ((("netns", "bridge", "del", name), b"no bridge"),
                        (("netns", "bridge", "del", "lo"), b"not a bridge"),
                        (("netns", "bridge", "add", name, "10.213.0.0/31"), b"too small"),
                        (("netns", "bridge", "frob"), b"unknown command"),
                        (("run", "--net", "bridge:" + "x" * 16, "true"), b"15 bytes"),
                        (("run", "--net", "wifi", "true"), b"--net")):
        r = run_cli(*args)
        assert r.returncode == 1, args
        assert r.stderr.count(b"\n") == 1 and b"Traceback" not in r.stderr
        assert words in r.stderr, (args, r.stderr)
    assert not link_exists(name)


def test_attach_wires_a_named_namespace_until_it_is_removed(make_bridge):
    from nsfast import netns
    br = make_bridge()
    name = f"nsfb{PID}attach"
    netns.add(name)
    try:
        address = br.attach(name)
        shown = ip("-n", name, "-4", "-o", "addr", "show", "dev", "eth0").stdout.split()
        assert shown[3] == f"{address}/{br.subnet.prefixlen}"
        assert f"default via {br.address} dev eth0" in ip("-n", name, "route").stdout
        assert list(br.leases()) == [address]
        with pytest.raises(FileExistsError, match="eth0"):
            br.attach(name)   # it has its eth0 already: nothing else is made
        assert list(br.leases()) == [address] and len(ports_of(br.name)) == 1
    finally:
        netns.remove(name)
    wait_until(lambda: br.leases() == {} and ports_of(br.name) == [],
               what="the removed namespace's lease or port stayed")
    with nsfast.spawn(["true"]) as p:
        assert p.address is None   # not on a bridge
        p.wait()


def test_a_lease_journal_cut_short_by_a_killed_writer_stays_readable(tmp_path):
    import ipaddress as ip_
    from nsfast.leases import LeaseFile
    leases = LeaseFile(str(tmp_path), "br", 1, ip_.ip_network("10.213.0.0/29"),
                       lambda veth, index: True)
    assert leases.take("nsvA", 1) == "10.213.0.2"
    with open(leases.path, "a") as f:
        f.write("+ 10.213.0.3 nsvB")   # a writer killed in the middle of its line
    assert leases.take("nsvC", 3) == "10.213.0.3"   # the torn line leased nothing
    assert leases.take("nsvD", 4) == "10.213.0.4"
    assert leases.live() == {"10.213.0.2": ("nsvA", 1), "10.213.0.3": ("nsvC", 3),
                             "10.213.0.4": ("nsvD", 4)}
    with open(leases.path) as f:
        assert "+ 10.213.0.3 nsvB\n+ 10.213.0.3 nsvC 3\n" in f.read()
