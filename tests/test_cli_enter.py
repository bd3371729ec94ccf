"""`nsfast enter` against util-linux nsenter(1) on the same targets."""
from __future__ import annotations

import os
import signal
import subprocess

import pytest

import nsfast

from conftest import need_tool, ns_inode, run_cli
from enter_helpers import start_unshare_sleep, stop_all, unshare_cli_exists

KINDS = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"]


def nsenter(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([need_tool("nsenter"), *args], capture_output=True, input=input,
                          timeout=60)


@pytest.fixture
def cli_target():
    """Factory: the pid of `sleep 60` under `nsfast unshare FLAGS sleep 60`."""
    procs: list = []
    yield lambda *flags, kinds: start_unshare_sleep(list(flags), kinds, procs)
    stop_all(procs)


NET_FORMS = ["api"] + (["cli"] if unshare_cli_exists() else [])


@pytest.fixture
def net_target(sleeper, cli_target, request):
    if request.param == "api":
        return sleeper(["sleep", "60"], namespaces="net").pid
    return cli_target("-fn", kinds="net")


@pytest.mark.parametrize("net_target", NET_FORMS, indirect=True)
def test_ip_addr_shows_only_lo_down(net_target):
    ip = need_tool("ip")
    for r in (run_cli("enter", "-t", str(net_target), "-n", ip, "addr"),
              nsenter("-t", str(net_target), "-n", ip, "addr")):
        assert r.returncode == 0, r.stderr
        links = [line for line in r.stdout.decode().splitlines() if line[:1].isdigit()]
        assert len(links) == 1
        assert ": lo:" in links[0] and "state DOWN" in links[0]


BOX_FORMS = ["api"] + (["cli"] if unshare_cli_exists() else [])


@pytest.fixture
def box_target(sleeper, cli_target, request):
    """user+mnt+pid+ipc+uts, root mapped, a fresh /proc, hostname box."""
    if request.param == "api":
        return sleeper(["sleep", "60"], namespaces="user,mnt,pid,ipc,uts", map_root=True,
                       mount_proc=True, hostname="box").pid
    return cli_target("-Urmpiuf", "--mount-proc", "--hostname", "box",
                      kinds="user,mnt,pid,ipc,uts")


@pytest.mark.parametrize("box_target", BOX_FORMS, indirect=True)
@pytest.mark.parametrize("command", [
    ["hostname"],
    ["sh", "-c", "readlink /proc/self/ns/*"],
    ["id"],
    ["ps", "-e", "-o", "comm="],
])
def test_all_flag_matches_nsenter(box_target, command):
    need_tool(command[0])
    ours = run_cli("enter", "-t", str(box_target), "-a", *command)
    theirs = nsenter("-t", str(box_target), "-a", *command)
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    assert ours.stdout == theirs.stdout
    out = ours.stdout.decode().split()
    if command[0] == "hostname":
        assert out == ["box"]
    if command[0] == "sh":  # all eight kinds, pid and time twice (_for_children)
        assert sorted({x.split(":")[0] for x in out}) == KINDS
        for kind in ("mnt", "pid", "ipc", "uts", "user"):
            assert f"{kind}:[{ns_inode(box_target, kind)}]" in out
    if command[0] == "id":
        assert out[0].startswith("uid=0(")
    if command[0] == "ps":
        assert sorted(out) == ["ps", "sleep"]  # only the target's processes


def test_no_target_is_a_one_line_usage_error():
    for args in (["enter"], ["enter", "-n", "true"], ["nsenter", "-a", "true"],
                 ["enter", "-t"], ["enter", "-t", "abc", "-n", "true"], ["enter", "-x"]):
        r = run_cli(*args)
        assert r.returncode == 1, args
        err = r.stderr.decode()
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith(f"nsfast {args[0]}: ")
        assert r.stdout == b""


def test_exited_target(sleeper):
    p = nsfast.spawn(["true"])
    pid = p.pid
    p.wait()
    r = run_cli("enter", "-t", str(pid), "-n", "true")
    assert r.returncode == 1
    assert b"Traceback" not in r.stderr and str(pid).encode() in r.stderr


def test_exit_status_and_signal(sleeper):
    p = sleeper(namespaces="uts")
    assert run_cli("enter", "-t", str(p.pid), "-u", "sh", "-c", "exit 7").returncode == 7
    r = run_cli("enter", "-t", str(p.pid), "-u", "sh", "-c", "kill -TERM $$")
    assert r.returncode == 128 + signal.SIGTERM
    missing = run_cli("enter", "-t", str(p.pid), "-u", "no-such-program-nsfast")
    assert missing.returncode == nsenter("-t", str(p.pid), "-u",
                                         "no-such-program-nsfast").returncode == 127
    assert missing.stderr.count(b"\n") == 1


def test_no_program_runs_shell(sleeper):
    p = sleeper(namespaces="uts", hostname="box")
    env = dict(os.environ, SHELL="/bin/sh")
    r = run_cli("enter", "-t", str(p.pid), "-u", input=b"hostname\nexit 3\n", env=env)
    assert r.returncode == 3
    assert r.stdout == b"box\n"


def test_namespace_files_and_long_options(sleeper):
    p = sleeper(namespaces="net,uts", hostname="box")
    uts = f"/proc/{p.pid}/ns/uts"
    for args in (["--uts=" + uts], ["-u" + uts], ["-u=" + uts], ["--ut=" + uts]):
        r = run_cli("enter", *args, "hostname")
        assert r.returncode == 0, (args, r.stderr)
        assert r.stdout == b"box\n"
    # the alias, and `--` before the program
    r = run_cli("nsenter", "--target", str(p.pid), "--net", "--", "cat", "/proc/net/dev")
    assert r.returncode == 0 and b"eth" not in r.stdout and b"lo:" in r.stdout
    # wrong kind for the file: both kinds named
    r = run_cli("enter", "--uts=" + f"/proc/{p.pid}/ns/net", "true")
    assert r.returncode == 1 and b"net" in r.stderr and b"uts" in r.stderr


def test_setuid_setgid_preserve_credentials_match_nsenter(sleeper):
    p = sleeper(namespaces="user,uts", map_root=True, hostname="box")
    for flags in (["-u", "-S", "1000", "-G", "1000"], ["-U", "--preserve-credentials"],
                  ["-U"], ["-a", "-S", "0"]):
        ours = run_cli("enter", "-t", str(p.pid), *flags, "id")
        theirs = nsenter("-t", str(p.pid), *flags, "id")
        assert ours.returncode == theirs.returncode, (flags, ours.stderr, theirs.stderr)
        assert ours.stdout == theirs.stdout, flags


def test_root_and_wd_match_nsenter(sleeper, tmp_path):
    (tmp_path / "marker").write_text("x")
    p = sleeper(namespaces="mnt,uts", cwd=str(tmp_path))
    for flags in (["-m", "-w"], ["-m", "-r"], ["-m", "-r", "-w"], ["-u", f"-w{tmp_path}"],
                  ["-u", f"--wd={tmp_path}"], ["-m", "--root=/"]):
        ours = run_cli("enter", "-t", str(p.pid), *flags, "sh", "-c", "pwd; ls")
        theirs = nsenter("-t", str(p.pid), *flags, "sh", "-c", "pwd; ls")
        assert ours.returncode == theirs.returncode == 0, (flags, ours.stderr)
        assert ours.stdout == theirs.stdout, flags
    r = run_cli("enter", "-t", str(p.pid), "-m", "-w", "cat", "marker")
    assert r.stdout == b"x"


def test_pid_namespace_forks_unless_no_fork(sleeper):
    p = sleeper(namespaces="pid")
    target = f"pid:[{ns_inode(p.pid, 'pid')}]".encode()
    ours = f"pid:[{ns_inode(os.getpid(), 'pid')}]".encode()
    # `exec readlink` makes the program itself report its pid namespace
    script = "readlink /proc/self/ns/pid_for_children; exec readlink /proc/self/ns/pid"
    forked = run_cli("enter", "-t", str(p.pid), "-p", "sh", "-c", script)
    assert forked.stdout.split() == [target, target]
    assert forked.stdout == nsenter("-t", str(p.pid), "-p", "sh", "-c", script).stdout
    # -F: no fork, so only the program's children are inside
    no_fork = run_cli("enter", "-t", str(p.pid), "-p", "-F", "sh", "-c", script)
    assert no_fork.stdout.split() == [target, ours]
    assert no_fork.stdout == nsenter("-t", str(p.pid), "-p", "-F", "sh", "-c", script).stdout


def test_time_namespace_matches_nsenter(sleeper):
    """A time namespace cannot be joined by a process sharing its mm, as the
    spawn child does: the join happens after a fork of its own."""
    p = sleeper(namespaces="time", time_offsets={"boottime": 86400})
    script = "readlink /proc/self/ns/time; cut -d' ' -f1 /proc/uptime"
    ours = run_cli("enter", "-t", str(p.pid), "-T", "sh", "-c", script)
    theirs = nsenter("-t", str(p.pid), "-T", "sh", "-c", script)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    (ns_ours, up_ours), (ns_theirs, up_theirs) = (r.stdout.split() for r in (ours, theirs))
    assert ns_ours == ns_theirs == f"time:[{ns_inode(p.pid, 'time')}]".encode()
    with open("/proc/uptime") as f:
        host = float(f.read().split()[0])
    assert float(up_ours) - host > 86000 and float(up_theirs) - host > 86000
