"""Named network namespaces, veth, addresses and routes, against the real kernel.

Witnesses: `ip netns`, `ip -n NAME`, /proc/self/mountinfo, /proc/PID/ns/net
inodes, nsenter.  Traffic flows only between namespaces these tests create.
"""
from __future__ import annotations

import errno
import os
import select
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import nsfast
from nsfast import netns
from conftest import children_of, need, need_tool, ns_inode, run_cli

PID = os.getpid()


def unique(tag: str) -> str:
    """A netns name no other engineer or test uses."""
    return f"nsft{PID}{tag}"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check,
                          timeout=30)


def mountinfo() -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return f.read().splitlines()


def mounts_at(*prefixes: str) -> list[str]:
    """Our mountinfo lines whose mount point starts with one of prefixes: the
    mounts a test could make or leak; other processes mount elsewhere."""
    return [line for line in mountinfo() if line.split()[4].startswith(prefixes)]


def mount_points() -> list[str]:
    return [line.split()[4] for line in mountinfo()]


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.fixture
def names():
    """Factory of unique netns names (made with nsfast unless create=False); every
    one that still exists is removed afterwards."""
    made = []

    def make(tag: str, create: bool = True) -> str:
        name = unique(tag)
        made.append(name)
        if create:
            netns.add(name)
        return name

    yield make
    for name in made:
        try:
            netns.remove(name)
        except FileNotFoundError:
            pass
        except OSError:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


# ---------------------------------------------------------------- names

BAD_NAMES = ["", ".", "..", "a/b", "../x", "a\0b", "x" * 256, "é" * 128]


@pytest.mark.unit
@pytest.mark.parametrize("bad", BAD_NAMES)
def test_bad_names_raise_valueerror_before_anything_is_touched(bad):
    # where a mount for the bad name would land; others' named netns are elsewhere
    where = {"/run", "/run/netns", os.path.normpath(f"/run/netns/{bad}")}
    before = [line for line in mountinfo() if line.split()[4] in where]
    for call in (netns.add, netns.remove, netns.open, netns.pids, netns.path_of,
                 lambda n: netns.attach(n, PID), lambda n: netns.exec(n, ["true"])):
        with pytest.raises(ValueError):
            call(bad)
    assert [line for line in mountinfo() if line.split()[4] in where] == before
    assert bad not in netns.list()


@pytest.mark.unit
@pytest.mark.parametrize("bad", [None, bytearray(b"name"), 3])
def test_non_str_names_raise_typeerror(bad):
    with pytest.raises(TypeError):
        netns.add(bad)


def test_name_of_255_bytes_is_accepted(names):
    tag = "L" * (255 - len(unique("")))
    name = names(tag)
    assert len(name.encode()) == 255
    assert name in ip("netns", "list").stdout.split()


# ---------------------------------------------------------------- add / remove / interop

def test_add_makes_a_bind_mount_that_ip_netns_uses(names):
    name = names("b")
    path = f"/run/netns/{name}"
    assert path in mount_points()
    assert name in [line.split()[0] for line in ip("netns", "list").stdout.splitlines()]
    assert os.stat(path).st_ino != ns_inode(PID, "net")
    r = ip("netns", "exec", name, "ip", "-o", "link")
    assert r.stdout.count("\n") == 1 and ": lo:" in r.stdout
    ip("netns", "del", name)
    assert name not in netns.list()
    assert path not in mount_points()


def test_ip_netns_add_is_seen_and_removed_by_nsfast(names):
    name = names("a", create=False)
    ip("netns", "add", name)
    assert name in netns.list()
    with netns.open(name) as ns:
        assert ns.kind == nsfast.NsType.NET
        assert ns.inode == os.stat(f"/run/netns/{name}").st_ino
    netns.remove(name)
    assert name not in ip("netns", "list").stdout.split()
    assert f"/run/netns/{name}" not in mount_points()


def test_add_forks_nothing_and_leaves_no_thread(names):
    kids, nthreads = children_of(PID), threads()
    name = names("f")
    assert children_of(PID) == kids
    assert threads() == nthreads
    # the calling thread stayed in its namespace
    assert os.stat("/proc/thread-self/ns/net").st_ino == ns_inode(PID, "net")
    assert os.stat(f"/run/netns/{name}").st_ino != ns_inode(PID, "net")


def test_add_existing_name_raises_and_keeps_the_namespace(names):
    name = names("e")
    inode = os.stat(f"/run/netns/{name}").st_ino
    with pytest.raises(FileExistsError) as info:
        netns.add(name)
    assert info.value.filename == f"/run/netns/{name}"
    assert os.stat(f"/run/netns/{name}").st_ino == inode
    assert mount_points().count(f"/run/netns/{name}") == 1


def test_remove_missing_raises_filenotfound():
    with pytest.raises(FileNotFoundError) as info:
        netns.remove(unique("missing"))
    assert info.value.filename == f"/run/netns/{unique('missing')}"


def test_symlink_planted_at_the_name_is_not_followed(names, tmp_path):
    name = names("s", create=False)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = f"/run/netns/{name}"
    os.makedirs("/run/netns", exist_ok=True)
    os.symlink(victim, link)
    try:
        before = mount_points()
        with pytest.raises(FileExistsError):
            netns.add(name)
        with pytest.raises(OSError) as info:
            netns.open(name)  # followed, then refused: a regular file is no namespace
        assert info.value.errno == errno.EINVAL and info.value.filename == link
        assert str(victim) in str(info.value)
        assert mount_points() == before
        assert victim.read_text() == "keep"
        netns.remove(name)  # removes the link, not what it points at
        assert not os.path.lexists(link)
        assert victim.read_text() == "keep"
    finally:
        if os.path.islink(link):
            os.unlink(link)


def test_contention_200_adds_from_8_threads(names):
    warm = names("w")  # the run directory is a mount from here on
    netns.remove(warm)
    ours = f"/run/netns/{unique('c')}"
    assert mounts_at(ours) == []
    batch = [names(f"c{i}", create=False) for i in range(200)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(netns.add, batch))
    points = mount_points()
    assert points.count("/run/netns") == 1
    assert sorted(p for p in points if p.startswith(ours)) == \
        sorted(f"/run/netns/{n}" for n in batch)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(netns.remove, batch))
    assert mounts_at(ours) == []


STACKING = """
import os, sys, threading
from concurrent.futures import ThreadPoolExecutor
from nsfast import _core, netns

def unmount_all():  # /run/netns a plain directory again, in this mount namespace only
    while True:
        try:
            _core.umount2(b"/run/netns", 2)
        except OSError:
            return

def mounts_of_run_dir():
    with open("/proc/self/mountinfo", errors="surrogateescape") as f:
        return [line.split()[4] for line in f].count("/run/netns")

# 8 threads released at once into the make-it-a-shared-mount step, 30 times over
worst = 0
for _ in range(30):
    unmount_all()
    start = threading.Barrier(8)
    def racer():
        start.wait()
        os.close(netns._prepare_run_dir())  # the fd holds the flock
    threads = [threading.Thread(target=racer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    worst = max(worst, mounts_of_run_dir())
unmount_all()
batch = [f"{sys.argv[1]}{i}" for i in range(200)]
with ThreadPoolExecutor(8) as pool:
    list(pool.map(netns.add, batch))
points = [line.split()[4] for line in open("/proc/self/mountinfo", errors="surrogateescape")]
print(worst, points.count("/run/netns"), sum(p[len("/run/netns/"):] in batch for p in points))
with ThreadPoolExecutor(8) as pool:
    list(pool.map(netns.remove, batch))
"""


def test_contention_on_a_run_dir_that_is_not_yet_a_mount():
    """In a private mount namespace, where /run/netns starts as a plain directory,
    200 racing adds must still make exactly one mount of it (the flock's job)."""
    prefix = unique("k")
    root = os.path.dirname(os.path.dirname(os.path.abspath(nsfast.__file__)))
    try:
        p = nsfast.spawn([sys.executable, "-c", STACKING, prefix], namespaces="mnt",
                         stdout=nsfast.PIPE, env={**os.environ, "PYTHONPATH": root})
        out = p.communicate(timeout=120)[0].decode().split()
        assert p.returncode == 0
        assert out == ["1", "1", "200"]  # worst race, after 200 adds, bind mounts
    finally:  # the files are on the shared directory below the mounts
        for name in os.listdir("/run/netns"):
            if name.startswith(prefix) and not os.path.ismount(f"/run/netns/{name}"):
                os.unlink(f"/run/netns/{name}")
    assert not [n for n in netns.list() if n.startswith(prefix)]


# ---------------------------------------------------------------- attach, identify, exec

def test_docker_style_attach_then_ip_and_nsfast_exec_show_it(names, sleeper):
    nsenter = need_tool("nsenter")
    p = sleeper(namespaces="net")
    dummy = f"dk{PID}"[:15]
    subprocess.run([nsenter, "-t", str(p.pid), "-n", "ip", "link", "add", dummy, "type",
                    "veth", "peer", "name", "dkpeer0"], check=True)
    name = names("d", create=False)
    netns.attach(name, p.pid)
    assert os.stat(f"/run/netns/{name}").st_ino == ns_inode(p.pid, "net")
    assert netns.identify(p.pid) == [name]
    assert p.pid in netns.pids(name)
    assert dummy in ip("netns", "exec", name, "ip", "addr").stdout
    r = run_cli("netns", "exec", name, "ip", "addr", check=True)
    assert dummy.encode() in r.stdout
    assert dummy not in ip("addr").stdout


def test_attach_missing_pid_raises_and_leaves_nothing(names):
    name = names("m", create=False)
    with pytest.raises(ProcessLookupError):
        netns.attach(name, 2 ** 22 + 1)
    assert name not in netns.list()


def test_exec_is_ip_netns_exec(names):
    name = names("x")
    etc = f"/etc/netns/{name}"
    os.makedirs(etc)
    try:
        with open(f"{etc}/hosts", "w") as f:
            f.write(f"10.1.2.3 only-in-{name}\n")
        host_hosts = open("/etc/hosts").read()
        # what exec mounts in its own namespace: /etc/hosts, /sys
        host_mounts = mounts_at("/etc", "/sys")
        script = ("stat -L -c %i /proc/self/ns/net; stat -L -c %i /proc/self/ns/mnt; "
                  "ls /sys/class/net; cat /etc/hosts")
        p = netns.exec(name, ["sh", "-c", script], stdout=nsfast.PIPE)
        out = p.communicate(timeout=30)[0].decode().split("\n")
        assert p.returncode == 0
        assert int(out[0]) == os.stat(f"/run/netns/{name}").st_ino
        assert int(out[1]) != ns_inode(PID, "mnt")
        assert out[2] == "lo" and out[3] == f"10.1.2.3 only-in-{name}"
        assert open("/etc/hosts").read() == host_hosts
        assert mounts_at("/etc", "/sys") == host_mounts  # nothing leaked (slave propagation)
    finally:
        for entry in os.listdir(etc):
            os.unlink(f"{etc}/{entry}")
        os.rmdir(etc)


def test_exec_missing_name_and_program(names):
    with pytest.raises(FileNotFoundError):
        netns.exec(unique("nope"), ["true"])
    name = names("p")
    with pytest.raises(FileNotFoundError) as info:
        netns.exec(name, ["/no/such/program"])
    assert info.value.filename == "/no/such/program"


def test_spawn_joins_a_named_namespace(names, sleeper):
    name = names("j")
    p = sleeper(netns=name)
    assert ns_inode(p.pid, "net") == os.stat(f"/run/netns/{name}").st_ino
    assert netns.pids(name) == [p.pid]


# ---------------------------------------------------------------- pyroute2 sockets

def test_iproute_forks_nothing_and_acts_in_the_namespace(names):
    name = names("i")
    dummy = f"di{PID}"[:15]
    ip("-n", name, "link", "add", dummy, "type", "veth", "peer", "name", "dipeer0")
    kids, nthreads = children_of(PID), threads()
    with netns.iproute(name) as ipr:
        assert children_of(PID) == kids
        seen = {link.get("ifname") for link in ipr.get_links()}
    assert threads() == nthreads
    assert seen == {"lo", dummy, "dipeer0"}
    with netns.iproute() as host:
        assert dummy not in {link.get("ifname") for link in host.get_links()}


def test_loopback_up_is_one_call_and_lo_starts_down(names):
    name = names("l")
    assert "UP" not in ip("-n", name, "-o", "link", "show", "lo").stdout.split(">")[0]
    netns.loopback_up(name)
    assert ",UP" in ip("-n", name, "-o", "link", "show", "lo").stdout


def test_veth_name_in_use_raises_fileexists(names):
    a, b = names("va"), names("vb")
    netns.veth(f"vu{PID}"[:15], f"vp{PID}"[:15], netns=a, peer_netns=b, up=False)
    with pytest.raises(FileExistsError):
        netns.veth(f"vu{PID}"[:15], "other0", netns=a, peer_netns=b)
    assert "other0" not in ip("-n", b, "-o", "link").stdout


def test_veth_whose_configuration_fails_leaves_no_pair(names):
    """The pair is made by one request, then configured: when the kernel
    refuses an address (IPv6 disabled in that namespace), the pair is deleted
    again and the error says what failed."""
    a, b = names("vr"), names("vs")
    subprocess.run(["ip", "netns", "exec", a, "sysctl", "-qw",
                    "net.ipv6.conf.default.disable_ipv6=1"], check=True)
    end, peer = f"vr{PID}"[:15], f"vs{PID}"[:15]
    with pytest.raises(OSError):
        netns.veth(end, peer, netns=a, peer_netns=b, addr="fd00:9::1/64")
    assert end not in ip("-n", a, "-o", "link").stdout
    assert peer not in ip("-n", b, "-o", "link").stdout
    netns.veth(end, peer, netns=a, peer_netns=b, up=False)   # the names are free again
    assert f" {peer}@" in ip("-n", b, "-o", "link").stdout


@pytest.mark.parametrize("kw", [
    dict(name="x" * 16, peer="p0"), dict(name="a/b", peer="p0"), dict(name="v0", peer=""),
    dict(name="v0", peer="p0", addr="10.0.0.1"), dict(name="v0", peer="p0", addr="10.0.0.300/24"),
    dict(name="v0", peer="p0", peer_addr=24),
])
def test_veth_bad_arguments_raise_before_any_syscall(kw):
    # a missing peer namespace would be FileNotFoundError: the arguments are checked first
    with pytest.raises((ValueError, TypeError)):
        netns.veth(**kw, peer_netns=unique("absent"))


def test_veth_same_names_in_one_namespace_is_a_valueerror():
    with pytest.raises(ValueError):
        netns.veth("v0", "v0")


def test_move_lo_raises_the_netns_local_error(names):
    a, b = names("ma"), names("mb")
    with pytest.raises(OSError) as info:
        netns.move("lo", b, source=a)
    assert info.value.errno == errno.EINVAL
    assert "netns-local" in str(info.value) and "loopback" in str(info.value)


def test_move_a_bridge_raises_the_netns_local_error(names):
    a, b = names("ga"), names("gb")
    bridge = f"bq{PID}"[:15]
    made = ip("-n", a, "link", "add", bridge, "type", "bridge", check=False)
    need(made.returncode == 0, f"bridge devices ({made.stderr.strip()})")
    with pytest.raises(OSError) as info:
        netns.move(bridge, b, source=a)
    assert info.value.errno == errno.EINVAL
    assert "netns-local" in str(info.value) and "bridge" in str(info.value)
    assert bridge in ip("-n", a, "-o", "link").stdout


def test_move_a_veth_end(names):
    a, b = names("oa"), names("ob")
    end, peer = f"mv{PID}"[:15], f"mw{PID}"[:15]
    netns.veth(end, peer, netns=a, up=False)
    netns.move(peer, b, source=a)
    assert peer in ip("-n", b, "-o", "link").stdout
    assert peer not in ip("-n", a, "-o", "link").stdout
    with pytest.raises(OSError) as info:
        netns.move("nosuch0", b, source=a)
    assert info.value.errno == errno.ENODEV


def test_removing_the_peer_namespace_destroys_both_ends(names):
    a, b = names("da"), names("db")
    end = f"de{PID}"[:15]
    netns.veth(end, f"df{PID}"[:15], netns=a, peer_netns=b, up=False)
    assert f" {end}@" in ip("-n", a, "-o", "link").stdout
    netns.remove(b)  # nothing else holds b: the kernel's cleanup takes the pair
    deadline = time.monotonic() + 20
    while f" {end}@" in ip("-n", a, "-o", "link").stdout:
        assert time.monotonic() < deadline, "the veth outlived its peer's namespace"
        time.sleep(0.05)


# ---------------------------------------------------------------- the seed scenario

SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.settimeout(20)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(20)
c.sendall(b"pong:" + c.recv(100))
c.close()
"""

CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
c.sendall(sys.argv[3].encode())
print(c.recv(100).decode())
"""


def _tcp(listen_ns: str, listen_ip: str, client_ns: str, word: str) -> str:
    port = "5001"
    server = nsfast.spawn([sys.executable, "-c", SERVER, listen_ip, port], netns=listen_ns,
                          stdout=nsfast.PIPE)
    with server:
        ready, _, _ = select.select([server.stdout], [], [], 20)
        assert ready and server.stdout.readline() == b"ready\n"
        client = netns.exec(client_ns, [sys.executable, "-c", CLIENT, listen_ip, port, word],
                            stdout=nsfast.PIPE)
        out = client.communicate(timeout=30)[0].decode().strip()
        assert server.wait(timeout=20) == 0
    return out


def test_seed_scenario_two_namespaces_veth_ping_and_tcp(names):
    ping = need_tool("ping")
    host, nstest = names("host"), names("nstest")
    for ns in (host, nstest):
        assert "UP" not in ip("-n", ns, "-o", "link", "show", "lo").stdout.split(">")[0]
        netns.loopback_up(ns)
        assert ",UP" in ip("-n", ns, "-o", "link", "show", "lo").stdout
    end, peer = f"sh{PID}"[:15], f"sn{PID}"[:15]
    netns.veth(end, peer, netns=host, peer_netns=nstest, addr="10.0.0.1/24",
               peer_addr="10.0.0.2/24")
    assert "10.0.0.1/24" in ip("-n", host, "-o", "addr", "show", end).stdout
    assert "10.0.0.2/24" in ip("-n", nstest, "-o", "addr", "show", peer).stdout
    assert end not in ip("-o", "link").stdout  # nothing in the test process's namespace
    for ns in (host, nstest):
        dev = end if ns == host else peer
        assert ",UP" in ip("-n", ns, "-o", "link", "show", dev).stdout
    netns.add_route("default", gateway="10.0.0.1", netns=nstest)
    assert "default via 10.0.0.1" in ip("-n", nstest, "route").stdout

    p = netns.exec(host, [ping, "-c", "1", "-W", "2", "10.0.0.2"], stdout=nsfast.PIPE)
    assert p.communicate(timeout=30)[0] and p.returncode == 0
    p = nsfast.spawn([ping, "-c", "1", "-W", "2", "10.0.0.1"], netns=nstest,
                     stdout=nsfast.PIPE)
    assert p.communicate(timeout=30)[0] and p.returncode == 0

    assert _tcp(nstest, "10.0.0.2", host, "from-host") == "pong:from-host"
    assert _tcp(host, "10.0.0.1", nstest, "from-nstest") == "pong:from-nstest"
