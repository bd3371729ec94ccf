"""`nsfast netns`: ip netns arguments, ip-netns-shaped output, one-line errors.

The witness for every command is `ip netns` / `ip -n` on the same namespaces.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from conftest import need_tool, run_cli
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
    (["add"], "usage"),
    (["attach", "x", "notapid"], "not a pid"),
    (["veth", "only-one"], "the following arguments are required"),
    (["veth", "v0", "p0", "--addr", "10.0.0.1"], "prefix length"),
])
def test_errors_are_one_line_with_status_1(args, words):
    assert words in one_line_error(run_cli("netns", *args))
