"""`nsfast enter` against util-linux nsenter(1) on the same targets."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

import nsfast

from conftest import need_tool, ns_inode, run_cli
from dropin_helpers import NSFAST, exec_in_place, exit_codes, fds_passed, login_shell
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
    missing = run_cli("enter", "-t", str(p.pid), "-u", "no-such-program-nsfast")
    assert missing.stderr.count(b"\n") == 1


@pytest.mark.parametrize("kinds", [["-u"], ["-p"], ["-p", "-F"]])
def test_exit_codes_and_signals_match_nsenter(sleeper, kinds):
    """127 not found, 126 cannot execute; a program killed by signal N kills
    us with N, in place (-u, -F) and through the fork of -p alike."""
    p = sleeper(namespaces="uts,pid")
    args = ["-t", str(p.pid), *kinds]
    ours = exit_codes(NSFAST + ["enter", *args])
    assert ours == exit_codes([need_tool("nsenter"), *args])
    assert ours == (127, 126, -signal.SIGTERM, -signal.SIGABRT)


def test_no_program_runs_login_shell(sleeper):
    p = sleeper(namespaces="uts", hostname="box")
    env = dict(os.environ, SHELL="/bin/sh")
    r = run_cli("enter", "-t", str(p.pid), "-u", input=b"hostname\nexit 3\n", env=env)
    assert r.returncode == 3
    assert r.stdout.endswith(b"box\n")
    args = ["-t", str(p.pid), "-u"]
    assert login_shell(NSFAST + ["enter", *args]) == \
        login_shell([need_tool("nsenter"), *args]) == b"-sh"


def test_exec_in_place_like_nsenter(sleeper):
    """`nsfast nsenter -t T -n prog & PID=$!`: $! is prog, in T's network
    namespace, and it dies of the SIGTERM sent to it."""
    p = sleeper(namespaces="net")
    want = ns_inode(p.pid, "net")
    for tool in (NSFAST + ["nsenter"], [need_tool("nsenter")]):
        assert exec_in_place(tool + ["-t", str(p.pid), "-n"], "net") == \
            (want, True, -signal.SIGTERM), tool


def test_pid_namespace_forks_once_like_nsenter(sleeper):
    p = sleeper(namespaces="pid")
    for tool in (NSFAST + ["nsenter"], [need_tool("nsenter")]):
        inode, alone, status = exec_in_place(tool + ["-t", str(p.pid), "-p"], "pid")
        # $! is the tool, still in our pid namespace, waiting for its child
        assert (inode, alone) == (ns_inode(os.getpid(), "pid"), False), tool


def test_fds_are_passed_on_like_nsenter(sleeper, tmp_path):
    p = sleeper(namespaces="uts,pid")
    for kinds in (["-u"], ["-p"]):
        args = ["-t", str(p.pid), *kinds]
        assert fds_passed(NSFAST + ["enter", *args], tmp_path) == \
            fds_passed([need_tool("nsenter"), *args], tmp_path) == b"three\nnine\n"


def test_wdns_is_a_directory_inside(sleeper, tmp_path):
    (tmp_path / "inside").mkdir()
    p = sleeper(namespaces="mnt", cwd="/")
    for flags in (["-m", "-r", f"-W{tmp_path}/inside"], ["-m", f"--wdns={tmp_path}"]):
        args = ["-t", str(p.pid), *flags, "pwd"]
        ours, theirs = run_cli("enter", *args), nsenter(*args)
        assert ours.returncode == theirs.returncode == 0, ours.stderr
        assert ours.stdout == theirs.stdout
    assert run_cli("enter", "-t", str(p.pid), "-m", "-W", "/x", "-w", "true").returncode == 1


def test_net_socket_enters_the_sockets_namespace(sleeper):
    """--net-socket FD: the network namespace of socket FD of the target
    (newer nsenter), witnessed by the namespace the socket was made in."""
    net = sleeper(namespaces="net")
    # the holder stays in our network namespace; only its socket is in net's
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import nsfast, socket, sys, time\n"
         f"with nsfast.enter({net.pid}, 'net'):\n"
         "    s = socket.socket()\n"
         "print(s.fileno(), flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE)
    try:
        fd = holder.stdout.readline().strip().decode()
        r = run_cli("nsenter", "-t", str(holder.pid), "--net-socket", fd,
                    "readlink", "/proc/self/ns/net")
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode().strip() == f"net:[{ns_inode(net.pid, 'net')}]"
        bad = run_cli("nsenter", "-t", str(holder.pid), "--net-socket", "0", "true")
        assert bad.returncode == 1 and bad.stderr.count(b"\n") == 1
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_keep_caps_keeps_the_user_namespaces_capabilities(sleeper):
    p = sleeper(namespaces="user", uid_map=[(0, 100000, 65536)], gid_map=[(0, 100000, 65536)])
    args = ["-t", str(p.pid), "-U", "-S", "1000", "-G", "1000", "--keep-caps"]
    script = ["sh", "-c", "grep CapAmb /proc/self/status"]
    ours = run_cli("enter", *args, *script)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.split()[1] != b"0000000000000000"
    without = run_cli("enter", *args[:-1], *script)
    assert without.stdout.split()[1] == b"0000000000000000"


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
