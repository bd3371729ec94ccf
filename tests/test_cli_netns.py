"""`nsfast netns`: ip netns arguments, ip-netns-shaped output, one-line errors.

The witness for every command is `ip netns` / `ip -n` on the same namespaces.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import need_tool, run_cli
from dropin_helpers import NSFAST, exec_in_place, exit_codes, fds_passed
from test_netns import ip, mount_points, names, unique  # noqa: F401 - names is a fixture

PID = os.getpid()


def lines_about(text: str, prefix: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line.startswith(prefix))


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 1
    err = r.stderr.decode()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert r.stdout == b""
    return err


def test_add_list_del_round_trip_matches_ip_netns(names):
    a = names("ca", create=False)
    b = names("cb", create=False)
    run_cli("netns", "add", a, check=True)
    run_cli("netns", "add", b, check=True)
    ip("netns", "set", a, "auto")  # one with an id, one without
    ours = run_cli("netns", "list", check=True).stdout.decode()
    theirs = ip("netns", "list").stdout
    assert lines_about(ours, unique("c")) == lines_about(theirs, unique("c"))
    assert any(line.startswith(f"{a} (id: ") for line in ours.splitlines())
    assert f"{b}\n" in ours
    assert run_cli("netns", check=True).stdout.decode() == ours  # bare `netns` lists
    run_cli("netns", "del", a, b, check=True)
    assert not lines_about(ip("netns", "list").stdout, unique("c"))
    assert f"/run/netns/{a}" not in mount_points()


def test_exec_passes_the_exit_status_and_joins_the_namespace(names):
    name = names("ce")
    r = run_cli("netns", "exec", name, "sh", "-c", "stat -L -c %i /proc/self/ns/net; exit 7")
    assert r.returncode == 7
    assert int(r.stdout) == os.stat(f"/run/netns/{name}").st_ino
    ours = run_cli("netns", "exec", name, "ip", "-o", "link", check=True).stdout.decode()
    assert ours == ip("netns", "exec", name, "ip", "-o", "link").stdout


def test_attach_identify_pids_as_ip_prints_them(names, sleeper):
    p = sleeper(namespaces="net")
    name = names("ct", create=False)
    run_cli("netns", "attach", name, str(p.pid), check=True)
    assert run_cli("netns", "identify", str(p.pid), check=True).stdout.decode() == f"{name}\n"
    assert ip("netns", "identify", str(p.pid)).stdout == f"{name}\n"
    ours = run_cli("netns", "pids", name, check=True).stdout.decode()
    assert ours == ip("netns", "pids", name).stdout == f"{p.pid}\n"


def test_veth_with_addresses_between_two_namespaces(names):
    ping = need_tool("ping")
    a, b = names("va"), names("vb")
    end, peer = f"cv{PID}"[:15], f"cw{PID}"[:15]
    run_cli("netns", "veth", end, peer, "--netns", a, "--peer-netns", b,
            "--addr", "10.0.7.1/24", "--peer-addr", "10.0.7.2/24", check=True)
    assert "10.0.7.1/24" in ip("-n", a, "-o", "addr", "show", end).stdout
    assert "10.0.7.2/24" in ip("-n", b, "-o", "addr", "show", peer).stdout
    r = run_cli("netns", "exec", a, ping, "-c", "1", "-W", "2", "10.0.7.2")
    assert r.returncode == 0, r.stderr
    err = one_line_error(run_cli("netns", "veth", end, "x0", "--netns", a))
    assert "File exists" in err


@pytest.mark.parametrize("args, words", [
    (["del", unique("gone")], "No such file"),
    (["add", "a/b"], "'/'"),
    (["add", ".."], "not a usable"),
    (["exec", unique("gone"), "true"], "No such file"),
    (["frobnicate"], "unknown command"),
    (["set", unique("gone"), "7"], "No such file"),
    (["set", "x", "seven"], "netnsid"),
    (["identify", "notapid"], "not a pid"),
    (["-all", "list"], "-all"),
    (["move", "lo"], "usage"),
    (["add"], "usage"),
    (["attach", "x", "notapid"], "not a pid"),
    (["veth", "only-one"], "the following arguments are required"),
    (["veth", "v0", "p0", "--addr", "10.0.0.1"], "prefix length"),
])
def test_errors_are_one_line_with_status_1(args, words):
    assert words in one_line_error(run_cli("netns", *args))


# ---------------------------------------------------------------- byte for byte
# Each script runs twice in a private mount namespace whose /run/netns is an
# empty tmpfs of its own, and a network namespace of its own (the ids it sets
# are that namespace's): once with `nsfast netns` as $NETNS (and `nsfast
# netns -all` as $ALL), once with `ip netns` (`ip -all netns`); their outputs
# must be the same bytes.  Nothing the script names or deletes is seen by
# the host's (or another test's) ip netns.

PRIVATE = """set -e
mount --make-rprivate /
mount -t tmpfs netns-test /run/netns
"""


def both(script: str) -> tuple[bytes, bytes]:
    """(nsfast's stdout, ip's stdout) of script, each in its own private /run/netns."""
    out = []
    nsfast, ip = " ".join(NSFAST), need_tool("ip")
    for netns, every in ((f"{nsfast} netns", f"{nsfast} netns -all"),
                         (f"{ip} netns", f"{ip} -all netns")):
        r = subprocess.run(["unshare", "-mn", "sh", "-c", PRIVATE + script],
                           env=dict(os.environ, NETNS=netns, ALL=every), capture_output=True,
                           timeout=60)
        assert r.returncode == 0, (netns, r.stderr)
        out.append(r.stdout)
    return out[0], out[1]


def test_list_is_in_directory_order_with_ids_like_ip():
    ours, theirs = both("""
$NETNS add zeta; $NETNS add alpha; $NETNS add mid
$NETNS set alpha 42; $NETNS set zeta auto
$NETNS list; echo; $NETNS; echo; $NETNS show
""")
    assert ours == theirs
    assert b"alpha (id: 42)\n" in ours and b"mid\n" in ours


def test_set_and_list_id_like_ip():
    ours, theirs = both("""
$NETNS add one; $NETNS add two
$NETNS set one 11; $NETNS set two 12
$NETNS list-id | grep netns; $NETNS list-id nsid 12
""")
    assert ours == theirs
    assert b"nsid 11 (iproute2 netns name: one)\n" in ours


def test_identify_without_a_match_prints_an_empty_line():
    ours, theirs = both("""
$NETNS identify; $NETNS identify $$
$NETNS add held; $NETNS exec held sh -c '$NETNS identify $$'
""")
    assert ours == theirs == b"\n\nheld\n"


def test_all_exec_and_all_delete_like_ip():
    ours, theirs = both("""
$NETNS add a1; $NETNS add a2
$ALL exec sh -c 'readlink /proc/self/ns/net | cut -c1-4'
$ALL delete; $NETNS list; echo end
""")
    assert ours == theirs
    assert ours.count(b"\nnetns: ") == 2 and ours.endswith(b"net:\nend\n")


def test_monitor_reports_add_and_delete(names):
    mon = subprocess.Popen(NSFAST + ["netns", "monitor"], stdout=subprocess.PIPE)
    try:
        time.sleep(0.5)   # the watch is in place
        name = names("mon")
        run_cli("netns", "del", name, check=True)
        seen = []
        while len(seen) < 2:
            line = mon.stdout.readline().decode()
            assert line, "monitor ended"
            if line.strip().endswith(name):
                seen.append(line.strip())
        assert seen == [f"add {name}", f"delete {name}"]
    finally:
        mon.kill()
        mon.wait()
        mon.stdout.close()


# ---------------------------------------------------------------- exec in place

def test_exec_in_place_like_ip(names):
    """`nsfast netns exec NAME prog & PID=$!`: $! is prog, in NAME, and it
    dies of the SIGTERM sent to it, as with ip netns exec."""
    name = names("ep")
    want = os.stat(f"/run/netns/{name}").st_ino
    for tool in (NSFAST + ["netns"], [need_tool("ip"), "netns"]):
        assert exec_in_place(tool + ["exec", name], "net") == (want, True, -signal.SIGTERM)


def test_exec_passes_fds_and_exit_codes(names, tmp_path):
    name = names("ef")
    ours, theirs = NSFAST + ["netns", "exec", name], [need_tool("ip"), "netns", "exec", name]
    assert fds_passed(ours, tmp_path) == fds_passed(theirs, tmp_path) == b"three\nnine\n"
    # ip exits 1 for a program it cannot run; nsfast as unshare and nsenter
    assert exit_codes(ours) == (127, 126, -signal.SIGTERM, -signal.SIGABRT)
    assert exit_codes(theirs)[2:] == (-signal.SIGTERM, -signal.SIGABRT)


def test_exec_binds_etc_netns_files(names):
    name = names("ee")
    etc = f"/etc/netns/{name}"
    os.makedirs(etc)
    try:
        with open(f"{etc}/hostname", "w") as f:
            f.write("inside\n")
        for tool in (NSFAST + ["netns"], [need_tool("ip"), "netns"]):
            r = subprocess.run(tool + ["exec", name, "cat", "/etc/hostname"],
                               capture_output=True)
            assert r.stdout == b"inside\n", tool
    finally:
        os.unlink(f"{etc}/hostname")
        os.rmdir(etc)


# ---------------------------------------------------------------- links by pid

def test_veth_peer_netns_and_move_take_a_pid(names, sleeper):
    """--peer-netns PID and `move DEV PID`, as `ip link set DEV netns PID`:
    the link lands in that process's network namespace (seen by nsenter)."""
    nsenter = need_tool("nsenter")
    p = sleeper(namespaces="net")
    a = names("vp")
    end, peer, moved = f"vx{os.getpid()}"[:15], f"vy{os.getpid()}"[:15], f"vz{os.getpid()}"[:15]
    run_cli("netns", "veth", end, peer, "--netns", a, "--peer-netns", str(p.pid), check=True)
    inside = subprocess.run([nsenter, "-t", str(p.pid), "-n", "ip", "-o", "link"],
                            capture_output=True, text=True).stdout
    assert f": {peer}@" in inside
    ip("-n", a, "link", "add", moved, "type", "veth", "peer", "name", moved[:-1] + "w")
    # from inside a, as `ip -n a link set DEV netns PID`
    r = run_cli("netns", "exec", a, *NSFAST, "netns", "move", moved, str(p.pid))
    assert r.returncode == 0, r.stderr
    inside = subprocess.run([nsenter, "-t", str(p.pid), "-n", "ip", "-o", "link"],
                            capture_output=True, text=True).stdout
    assert f": {moved}@" in inside


def test_add_replaces_what_a_killed_add_left(names):
    """An empty file at the name, no namespace on it, nobody's flock: what an
    add killed before its bind leaves.  The next add removes it and goes on;
    a file with a namespace on it is never replaced."""
    name = names("st", create=False)
    path = f"/run/netns/{name}"
    os.close(os.open(path, os.O_CREAT | os.O_EXCL, 0))
    run_cli("netns", "add", name, check=True)
    assert ip("netns", "exec", name, "ip", "-o", "link").stdout.startswith("1: lo:")
    assert "already exists" in one_line_error(run_cli("netns", "add", name))
    run_cli("netns", "del", name, check=True)
    assert not os.path.lexists(path)


@pytest.mark.parametrize("verb", [["list"], ["identify"]])
def test_list_and_identify_start_no_python(tmp_path, verb):
    """strace (witness): `nsfast netns list|identify` is one execve, the
    launcher's own, as `ip netns` starts."""
    import nsfast.cli
    from conftest import need
    strace = need_tool("strace")
    need(os.access(nsfast.cli.LAUNCHER, os.X_OK), "the C nsfast command (pip install)")
    log = tmp_path / "execs"
    r = subprocess.run([strace, "-f", "-qq", "-e", "trace=execve", "-o", str(log),
                        nsfast.cli.LAUNCHER, "netns", *verb], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    execs = [line for line in log.read_text().splitlines() if "execve(" in line]
    assert len(execs) == 1 and nsfast.cli.LAUNCHER in execs[0], execs


def test_list_names_what_a_killed_add_left_on_stderr(names):
    """The empty file a killed add leaves is listed, as ip lists it, and named
    on stderr; the status stays 0, as ip's."""
    name = names("kl", create=False)
    os.close(os.open(f"/run/netns/{name}", os.O_CREAT | os.O_EXCL, 0))
    try:
        r = run_cli("netns", "list", check=True)
        assert name in r.stdout.decode().split()
        assert f"/run/netns/{name}: an empty file, not a network namespace" in r.stderr.decode()
        assert name in ip("netns", "list").stdout.split()
    finally:
        run_cli("netns", "del", name, check=True)
