"""`nsfast unshare` as a user runs it, compared with what unshare(1) does,
witnessed with id, hostname, ipcs, findmnt, ps, ip, nsenter and /proc."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import nsfast
from conftest import children_of, kill_tree, need_tool, ns_inode, run_cli
from dropin_helpers import NSFAST, end, exec_in_place, exit_codes, fds_passed, login_shell, \
    start_ready
from test_spawn import MONO, TAG, _mounted, _queue_ids, host_queue, open_dir, shared_base, \
    wait_gone  # noqa: F401 - fixtures

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# where the nsfast under test is installed (not the checkout: .ci/sanitize
# tests an instrumented install, and the checkout may be unbuilt)
INSTALLED = os.path.dirname(os.path.dirname(os.path.abspath(nsfast.__file__)))
CLI = [sys.executable, "-m", "nsfast.cli", "unshare"]


def ok(*args, **kw) -> str:
    r = run_cli("unshare", *args, **kw)
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    return r.stdout.decode()


def one_line_error(*args) -> str:
    r = run_cli("unshare", *args)
    assert r.returncode == 1, (args, r.returncode, r.stdout)
    err = r.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("nsfast unshare: "), err
    assert "Traceback" not in err
    return err


def background(*args) -> tuple[subprocess.Popen, int]:
    """The CLI running in the background, and the pid of its program: the
    CLI's own pid when it exec'd in place, its one child when it forked."""
    cli = subprocess.Popen(CLI + list(args), cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert cli.stdout.readline() == b"ready\n"
        kids = children_of(cli.pid)
        forks = any(a in ("-f", "--fork", "-pf") or a.startswith("--kill-child")
                    for a in args)
        assert len(kids) == (1 if forks else 0)
        kids = kids or [cli.pid]
    except BaseException:
        kill_tree(cli)
        cli.stdout.close()
        raise
    return cli, kids[0]


def stop(cli: subprocess.Popen, pid: int) -> None:
    """End the program (it outlives the CLI without --kill-child) and the CLI."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        cli.wait(timeout=10)
    except subprocess.TimeoutExpired:   # -f: the CLI dies of the program's SIGKILL
        cli.kill()
        cli.wait()
    cli.stdout.close()
    assert wait_gone(pid)


# ---------------------------------------------------------------- user

def test_user_id_without_and_with_map():
    assert ok("--user", "id", "-u").strip() == "65534"
    assert ok("-r", "id", "-u").strip() == "0"
    assert ok("-Ur", "cat", "/proc/self/uid_map").split() == ["0", str(os.geteuid()), "1"]
    assert ok("-r", "cat", "/proc/self/setgroups").strip() == "deny"
    assert ok("-c", "id", "-u").strip() == str(os.geteuid())
    assert ok("--map-user=5", "--map-group=7", "sh", "-c", "id -u; id -g").split() == \
        ["5", "7"]
    assert ok("-U", "--setgroups=deny", "cat", "/proc/self/setgroups").strip() == "deny"
    assert ok("--map-users=0:100000:65536", "--map-groups=0:100000:65536", "-S", "1000",
              "-G", "5", "sh", "-c", "id -u; id -g").split() == ["1000", "5"]
    assert "not mapped" in one_line_error("-r", "-S", "7", "true")


def test_range_map_cli(open_dir):
    for i, flags in enumerate([("--map-users=0:100000:65536", "--map-groups=0:100000:65536"),
                               ("--map-users=100000,0,65536", "--map-groups=100000,0,65536")]):
        target = os.path.join(open_dir, f"f{i}")
        assert ok(*flags, "cat", "/proc/self/uid_map").split() == ["0", "100000", "65536"]
        ok(*flags, "-S", "0", "-G", "0", "touch", target)
        st = os.stat(target)
        assert (st.st_uid, st.st_gid) == (100000, 100000)


# ---------------------------------------------------------------- uts, ipc, net

def test_hostname_cli():
    host = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    name = f"cli-{TAG}"
    assert ok("-u", "sh", "-c", f"hostname {name}; hostname").strip() == name
    assert ok("--hostname", name, "hostname").strip() == name
    assert subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip() == host


def test_ipc_cli(host_queue):
    assert _queue_ids(ok("-i", "ipcs", "-q")) == set()
    inside = ok("-i", "sh", "-c", "ipcmk -Q >/dev/null; ipcs -q")
    rows = [line.split() for line in inside.splitlines() if line.startswith("0x")]
    assert len(rows) == 1
    key = rows[0][0]
    host = subprocess.run(["ipcs", "-q"], capture_output=True, text=True).stdout
    assert key not in host.split()
    assert host_queue in _queue_ids(host)


def test_net_cli():
    lines = ok("-n", "ip", "-o", "link").splitlines()
    assert len(lines) == 1 and ": lo:" in lines[0] and "state DOWN" in lines[0]


# ---------------------------------------------------------------- mnt

@pytest.mark.parametrize("flags,leaks", [((), False), (("--propagation=private",), False),
                                         (("--propagation=unchanged",), True)])
def test_tmpfs_propagation_cli(shared_base, flags, leaks):
    inner, outer = shared_base / "inner", shared_base / "outer"
    cli, pid = background("-m", *flags, "sh", "-c",
                          f"mount -t tmpfs in{TAG} {inner} && echo ready && exec sleep 600")
    try:
        assert _mounted(pid, inner)
        assert _mounted(None, inner) == leaks
        subprocess.run(["mount", "-t", "tmpfs", "out" + TAG, str(outer)], check=True)
        assert _mounted(pid, outer) == leaks
    finally:
        stop(cli, pid)


def test_bind_ro_bind_tmpfs_cli(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("hi\n")
    for d in ("a", "b", "t"):
        (tmp_path / d).mkdir()
    script = (f"cat {tmp_path}/a/f {tmp_path}/b/f; touch {tmp_path}/a/w && echo rw; "
              f"touch {tmp_path}/b/w 2>/dev/null || echo ro; findmnt -no FSTYPE {tmp_path}/t")
    text = ok("-m", "--bind", str(tmp_path / "src"), str(tmp_path / "a"),
              "--ro-bind", str(tmp_path / "src"), str(tmp_path / "b"),
              "--tmpfs", str(tmp_path / "t"), "sh", "-c", script)
    assert text.split() == ["hi", "hi", "rw", "ro", "tmpfs"]
    assert "need -m" in one_line_error("--tmpfs", str(tmp_path / "t"), "true")


def test_root_and_wd_cli(tmp_path):
    busybox = need_tool("busybox")
    (tmp_path / "bin").mkdir()
    (tmp_path / "sub").mkdir()
    shutil.copy(busybox, tmp_path / "bin" / "busybox")
    assert ok("-R", str(tmp_path), "/bin/busybox", "pwd").strip() == "/"
    assert ok(f"--root={tmp_path}", "-w", "/sub", "/bin/busybox", "pwd").strip() == "/sub"
    assert ok("-w", str(tmp_path / "sub"), "pwd").strip() == str(tmp_path / "sub")


# ---------------------------------------------------------------- pid

def test_pid_fork_mount_proc_ps():
    lines = ok("--pid", "--fork", "--mount-proc", "ps", "-ef").splitlines()
    assert len(lines) == 2
    assert lines[1].split()[1] == "1" and lines[1].split()[-2:] == ["ps", "-ef"]
    assert ok("-pf", "--mount-proc", "ps", "-eo", "pid=").split() == ["1"]
    inode = ok("-p", "-f", "readlink", "/proc/self/ns/pid").strip()
    assert inode != f"pid:[{ns_inode(os.getpid(), 'pid')}]"


def test_mount_proc_dir_and_init_cli(tmp_path):
    listing = ok("-p", f"--mount-proc={tmp_path}", "ls", str(tmp_path)).split()
    assert "1" in listing and "self" in listing
    assert ok("-p", "--init", "sh", "-c", "echo $$").strip() == "2"


def test_killing_pid1_ends_everything_cli():
    cli, pid = background("-pf", "--mount-proc", "sh", "-c",
                          "sleep 600 & sleep 600 & echo ready; wait")
    try:
        deadline = time.monotonic() + 5
        while len(children_of(pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        kids = children_of(pid)
        assert len(kids) == 2
        os.kill(pid, signal.SIGKILL)
        assert cli.wait(timeout=10) == -signal.SIGKILL   # as unshare(1): the same death
        assert all(wait_gone(k) for k in kids)
    finally:
        stop(cli, pid)


def test_kill_child_cli():
    cli, pid = background("--kill-child", "sh", "-c", "echo ready; exec sleep 600")
    cli.kill()
    cli.wait()
    cli.stdout.close()
    assert wait_gone(pid)
    # without it the program outlives us, as with unshare(1)
    cli, pid = background("-f", "sh", "-c", "echo ready; exec sleep 600")
    try:
        cli.kill()
        cli.wait()
        time.sleep(0.1)
        assert os.path.exists(f"/proc/{pid}")
    finally:
        cli.stdout.close()
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)


# ---------------------------------------------------------------- time

def test_monotonic_cli():
    before = time.clock_gettime(time.CLOCK_MONOTONIC)
    text = ok("-T", "--monotonic", "86400", "--boottime=3600", sys.executable, "-c", MONO)
    after = time.clock_gettime(time.CLOCK_MONOTONIC)
    mono, boot = (float(x) for x in text.split())
    assert before + 86400 <= mono <= after + 86400
    assert boot > time.clock_gettime(time.CLOCK_BOOTTIME) + 3000
    assert "-T" in one_line_error("--monotonic", "5", "true")


# ---------------------------------------------------------------- persisting

PERSIST = """
set -e
cd {d}
touch uts net ipc
{cli} --uts=uts --net=net --ipc=ipc --pid=pid --user=user -r --hostname {name} true
findmnt -no FSTYPE {d}/uts
nsenter --uts={d}/uts hostname
nsenter --net={d}/net ip -o link | wc -l
test -e pid && test -e user && echo created
nsenter --user={d}/user cat /proc/self/uid_map
umount uts net ipc pid user
"""

PERSIST_MNT = """
set -e
cd {d}
touch mnt
{cli} --mount=mnt --tmpfs {d}/t grep Cpus_allowed_list /proc/self/status
nsenter --mount={d}/mnt findmnt -no FSTYPE {d}/t
umount mnt
"""


def _in_private_mount_ns(script: str) -> subprocess.CompletedProcess:
    # a throwaway private mount namespace: the bind mounts vanish with it
    env = dict(os.environ, PYTHONPATH=INSTALLED)
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)


def test_namespace_files_persist(tmp_path):
    need_tool("nsenter")
    r = _in_private_mount_ns(PERSIST.format(d=tmp_path, cli=" ".join(CLI), name=f"p-{TAG}"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["nsfs", f"p-{TAG}", "1", "created", "0", str(os.geteuid()), "1"]


def test_mount_namespace_file_persists(tmp_path):
    """Every time, from a mount namespace made just before.  The kernel binds
    a mount namespace file only into an older namespace (it compares ids), and
    6.x hands ids out in per-CPU batches, so a namespace made on the other CPU
    can come out "older" than ours: about a third of these runs failed with
    EINVAL before nsfast retried from each CPU.  The program must not inherit
    the pinning used for the retry."""
    (tmp_path / "t").mkdir()
    script = PERSIST_MNT.format(d=tmp_path, cli=" ".join(CLI))
    with open("/proc/self/status") as f:
        ours = next(line for line in f if line.startswith("Cpus_allowed_list")).split()[1]
    for _ in range(20):
        r = _in_private_mount_ns(script)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["Cpus_allowed_list:", ours, "tmpfs"]


def test_persist_failure_is_one_line(tmp_path):
    err = one_line_error(f"--uts={tmp_path}/no/such/dir/f", "true")
    assert "no/such/dir" in err


# ---------------------------------------------------------------- status, errors

def test_exit_status_and_signals():
    assert run_cli("unshare", "sh", "-c", "exit 3").returncode == 3
    # the Python path (--pids: a cgroup) dies of the program's signal too
    assert run_cli("unshare", "--pids=9", "sh", "-c", "kill -KILL $$").returncode == -9
    # --init is the program's parent, and exits 128+N as a shell does
    assert run_cli("unshare", "-p", "--init", "sh", "-c", "kill -KILL $$").returncode == 137


@pytest.mark.parametrize("flags", [[], ["-f"], ["-n", "--kill-child"], ["-Ur"]])
def test_exit_codes_and_signals_match_unshare(flags):
    """127 not found, 126 cannot execute, death by the program's signal, in
    place and through a fork alike, as util-linux's unshare."""
    ours = exit_codes(NSFAST + ["unshare", *flags])
    assert ours == exit_codes([need_tool("unshare"), *flags])
    assert ours == (127, 126, -signal.SIGTERM, -signal.SIGABRT)
    r = run_cli("unshare", *flags, "no-such-prog-nsfast")
    assert r.stderr.count(b"\n") == 1 and b"no-such-prog-nsfast" in r.stderr


def test_no_program_runs_login_shell():
    env = dict(os.environ, SHELL="/bin/sh")
    r = run_cli("unshare", "-pf", input=b"echo $$; exit 4\n", env=env)
    assert r.returncode == 4 and r.stdout.endswith(b"1\n")
    for flags in (["-u"], ["-pf"]):
        assert login_shell(NSFAST + ["unshare", *flags]) == \
            login_shell([need_tool("unshare"), *flags]) == b"-sh"


@pytest.mark.parametrize("kind,flag", [("net", "-n"), ("uts", "-u"), ("mnt", "-m")])
def test_exec_in_place_like_unshare(kind, flag):
    """`nsfast unshare -n prog & PID=$!`: $! is prog itself, in a new
    namespace, and SIGTERM sent to it ends it, as with unshare(1)."""
    host = ns_inode(os.getpid(), kind)
    for tool in (NSFAST + ["unshare"], [need_tool("unshare")]):
        inode, alone, status = exec_in_place(tool + [flag], kind)
        assert (alone, status) == (True, -signal.SIGTERM), tool
        assert inode != host, tool


def test_pid_without_fork_makes_the_first_child_pid_1():
    """unshare -p without -f: the program stays in our pid namespace and its
    first child is pid 1 of the new one."""
    script = "sh -c 'echo $$'; echo $$"
    for tool in (NSFAST + ["unshare"], [need_tool("unshare")]):
        p = subprocess.Popen(tool + ["-p", "sh", "-c", script], stdout=subprocess.PIPE)
        out = p.communicate(timeout=30)[0]
        assert out.split() == [b"1", str(p.pid).encode()], tool


def test_fds_are_passed_on_like_unshare(tmp_path):
    for flags in ([], ["-f"], ["-Urn"]):
        assert fds_passed(NSFAST + ["unshare", *flags], tmp_path) == \
            fds_passed([need_tool("unshare"), *flags], tmp_path) == b"three\nnine\n"


def test_forked_parent_ignores_int_and_term_like_unshare():
    """-f: INT and TERM sent to the parent wait for the program (blocked);
    with --forward-signals they are passed to it."""
    for extra, term_ends in (([], False), (["--forward-signals"], True)):
        p = start_ready(NSFAST + ["unshare", "-f", *extra])
        try:
            (child,) = children_of(p.pid)
            os.kill(p.pid, signal.SIGTERM)
            time.sleep(0.2)
            assert (p.poll() is not None) == term_ends, extra
            assert os.path.exists(f"/proc/{child}") != term_ends
            if term_ends:
                assert p.returncode == -signal.SIGTERM
        finally:
            end(p)


def test_setgroups_rules_of_2_38():
    """-c denies setgroups as -r does; -r --setgroups=allow is refused."""
    for tool in (NSFAST + ["unshare"], [need_tool("unshare")]):
        r = subprocess.run(tool + ["-c", "cat", "/proc/self/setgroups"], capture_output=True)
        assert r.stdout == b"deny\n", tool
        r = subprocess.run(tool + ["-r", "--setgroups=allow", "true"], capture_output=True)
        assert r.returncode == 1 and r.stderr.count(b"\n") == 1, tool
        assert b"mutually exclusive" in r.stderr


def test_keep_caps_makes_them_ambient():
    script = ["sh", "-c", "grep CapAmb /proc/self/status"]
    flags = ["--map-users=0:100000:65536", "--map-groups=0:100000:65536", "-S", "1000",
             "-G", "1000"]
    kept = ok(*flags, "--keep-caps", *script).split()[1]
    assert kept != "0000000000000000"
    assert ok(*flags, *script).split()[1] == "0000000000000000"
    assert ok("-r", "--keep-caps", *script).split()[1] != "0000000000000000"


def test_map_auto_reads_subuid(tmp_path):
    """--map-auto maps the first /etc/subuid and /etc/subgid range of the
    user; our own copy of those files is bound over them in a private mount
    namespace, so the host's stay as they are."""
    user = __import__("pwd").getpwuid(os.geteuid()).pw_name
    (tmp_path / "subuid").write_text(f"{user}:300000:65536\n")
    (tmp_path / "subgid").write_text(f"{user}:400000:65536\n")
    script = (f"mount --bind {tmp_path}/subuid /etc/subuid && "
              f"mount --bind {tmp_path}/subgid /etc/subgid && "
              f"exec {' '.join(CLI)} --map-auto cat /proc/self/uid_map /proc/self/gid_map")
    r = _in_private_mount_ns(script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "300000", "65536", "0", "400000", "65536"]


def test_clear_env_and_whitelist_env():
    """Newer util-linux's flags (2.38 has neither), as its tests/ts/unshare/env."""
    env = dict(os.environ, NSFAST_A="a", NSFAST_B="b")
    r = subprocess.run(NSFAST + ["unshare", "--clear-env", "env"], capture_output=True, env=env)
    assert r.returncode == 0 and r.stdout == b""
    r = subprocess.run(NSFAST + ["unshare", "--whitelist-env", "NSFAST_A,NSFAST_C", "env"],
                       capture_output=True, env=env)
    assert r.returncode == 0 and r.stdout == b"NSFAST_A=a\n"


def test_python_path_still_works_for_limits():
    """--pids and the other limits need Python's cgroup code: the launcher
    hands the command line over, and the program runs limited."""
    r = run_cli("unshare", "--pids=5", "-f", "sh", "-c", "cat /proc/self/cgroup")
    assert r.returncode == 0, r.stderr
    cgroup = r.stdout.decode().strip().rsplit(":", 1)[1]
    assert cgroup != open("/proc/self/cgroup").read().strip().rsplit(":", 1)[1]


def test_cli_errors_are_one_line():
    assert "/nonexistent" in one_line_error("-w", "/nonexistent", "true")
    assert "64" in one_line_error("--hostname", "x" * 65, "true")
    assert "--bogus" in one_line_error("--bogus", "true")
    assert "-x" in one_line_error("-x", "true") or "'x'" in one_line_error("-x", "true")
    one_line_error("--propagation=sideways", "-m", "true")
    one_line_error("--setgroups=maybe", "-U", "true")
    one_line_error("--map-users=1:2", "true")
    one_line_error("--kill-child=NOPE", "true")
    one_line_error("--fork=x", "true")
    one_line_error("--wd")


def test_help_and_option_end():
    r = run_cli("unshare", "--help")
    assert r.returncode == 0 and b"--map-root-user" in r.stdout
    # the program's own options are not ours, and -- ends ours
    assert ok("echo", "-m", "--bogus").strip() == "-m --bogus"
    assert ok("-u", "--", "echo", "-n", "x") == "x"


def test_netns_flag_joins_a_named_network_namespace(cli):
    import nsfast
    name = f"cliunshare{os.getpid()}"
    nsfast.netns.add(name)
    try:
        want = os.stat(f"/run/netns/{name}").st_ino
        r = cli("unshare", f"--netns={name}", "-u", "readlink", "/proc/self/ns/net")
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode().strip() == f"net:[{want}]"
        bad = cli("unshare", "--netns", name, "-n", "true")
        assert bad.returncode == 1 and len(bad.stderr.splitlines()) == 1
    finally:
        nsfast.netns.remove(name)
