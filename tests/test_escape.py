"""Nothing inside a sandbox may reach the caller (issue #13).

A secret is planted in the caller's environment and heap; attackers inside
the sandbox, or in a namespace the caller joins, read /proc/N/{environ,maps,
mem} of whatever they can see, and must find nothing of the caller.  The
other tests here cover the ways in that an adversarial probe found: the
error pipe through pass_fds, a parent killed mid-spawn, the caller's
dumpable flag, and the child's own object code.
"""
from __future__ import annotations

import ast
import ctypes
import errno
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

import nsfast
from nsfast import kernel
from nsfast.kernel import PR_GET_DUMPABLE
from conftest import need, need_tool, proc_files

HERE = os.path.dirname(os.path.abspath(__file__))
ATTACK = os.path.join(HERE, "attack_proc.py")
REPO = os.path.dirname(HERE)
_libc = ctypes.CDLL(None, use_errno=True)


@pytest.fixture
def secret():
    """A token in this process's environment and heap; the attackers get it
    reversed, so that their own argv does not hold it."""
    token = "nsfast-secret-" + secrets.token_hex(16)
    heap = [token.encode() * 4]   # noqa: F841 - kept alive on the heap
    os.environ["NSFAST_ESCAPE_SECRET"] = token
    try:
        yield token
    finally:
        del os.environ["NSFAST_ESCAPE_SECRET"]
        del heap


def _attack_output(out: bytes) -> dict:
    return json.loads(out.decode().strip().splitlines()[-1])


@pytest.fixture
def util_unshare():
    """Factory: a util-linux `unshare FLAGS sleep 300`, killed and reaped after
    the test.  Returns the pid of the sleep (the target)."""
    tool = need_tool("unshare")
    procs = []

    def make(*flags, as_user=None):
        argv = [tool, *flags, "sleep", "300"]
        if as_user is not None:
            argv = [need_tool("setpriv"), f"--reuid={as_user}", f"--regid={as_user}",
                    "--clear-groups", *argv]
        # its own environment: the target is not the caller, whose secret it
        # would otherwise inherit
        p = subprocess.Popen(argv, cwd="/", env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        procs.append(p)
        target = _sleep_below(p.pid)
        # unshare -f leaves its child when it is killed: the sleep is ended
        # through a pidfd of its own (never a recycled pid)
        targets.append(os.pidfd_open(target))
        return target

    targets: list = []
    yield make
    for p in procs:
        p.kill()
        p.wait()
    for fd in targets:
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(fd)


def _sleep_below(pid: int, timeout: float = 10.0) -> int:
    """The pid of the `sleep` that pid is or starts (unshare -f forks it)."""
    deadline = time.monotonic() + timeout
    todo = [pid]
    while time.monotonic() < deadline:
        seen = []
        while todo:
            p = todo.pop()
            seen.append(p)
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() == "sleep":
                        return p
                with open(f"/proc/{p}/task/{p}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
        todo = [pid]
        time.sleep(0.01)
    raise AssertionError(f"no sleep below pid {pid}")


def _dumpable() -> int:
    return _libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)


# ---------------------------------------------------------------- what the payload sees

def test_init_pid1_shares_nothing_with_the_caller(secret):
    p = nsfast.spawn([sys.executable, ATTACK, secret[::-1]],
                     namespaces="user,mnt,pid", map_root=True, mount_proc=True, init=True,
                     env={"PATH": "/usr/bin:/bin"}, stdout=nsfast.PIPE)
    out, _ = p.communicate(timeout=120)
    seen = _attack_output(out)
    assert p.returncode == 0
    assert seen["self"] == 2
    # it did look at pid 1, which is the init program and holds nothing of ours
    assert [1, "environ"] in seen["read"] and [1, "mem"] in seen["read"]
    assert seen["found"] == []
    with open("/proc/1/comm") as f:   # host's view: nothing of ours runs as our init
        assert "nsfast" not in f.read()


def test_init_program_is_a_sealed_copy(secret):
    """A root payload cannot change the file every later init runs from
    (runc's CVE-2019-5736): /proc/1/exe is a sealed memfd."""
    p = nsfast.spawn(["sh", "-c", "readlink /proc/1/exe; echo x >> /proc/1/exe; echo rc=$?"],
                     namespaces="user,mnt,pid", map_root=True, mount_proc=True, init=True,
                     stdout=nsfast.PIPE, stderr=nsfast.DEVNULL)
    out = p.communicate(timeout=30)[0].decode()
    assert out.startswith("/memfd:nsfast-init")
    assert "rc=0" not in out


def test_pid_join_payload_finds_nothing_of_the_caller(secret, util_unshare):
    target = util_unshare("-Urpf", "--mount-proc")
    p = nsfast.spawn([sys.executable, ATTACK, secret[::-1]], join=target,
                     stdout=nsfast.PIPE, env={"PATH": "/usr/bin:/bin"})
    out, _ = p.communicate(timeout=120)
    seen = _attack_output(out)
    assert p.returncode == 0
    assert [1, "environ"] in seen["read"]      # the target's own processes were read
    assert seen["found"] == []


@pytest.mark.parametrize("flags", [("-Ur",), ("-Urpf",)], ids=["user", "user+pid"])
def test_a_joining_child_is_unreadable_by_the_targets_root(secret, util_unshare, flags):
    """While the child waits inside the target (on_created runs then), the
    target's root tries to read it: the child has an mm of its own, made
    non-dumpable before the join, so /proc gives nothing."""
    target = util_unshare(*flags)
    nsenter = need_tool("nsenter")
    reports = []

    def attack(pid: int) -> None:
        kinds = ["-U"] + (["-p"] if "-Urpf" in flags else [])
        r = subprocess.run([nsenter, "-t", str(target), *kinds, sys.executable, ATTACK,
                            secret[::-1], str(pid)], capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        reports.append(_attack_output(r.stdout))

    p = nsfast.spawn(["true"], join=target, namespaces="uts", on_created=attack)
    assert p.wait(timeout=30) == 0
    (seen,) = reports
    assert seen["found"] == []
    denied = {name for _, name, _ in seen["denied"]}
    assert {"environ", "mem"} <= denied


def test_spawn_leaves_the_callers_dumpable_flag_alone(util_unshare):
    """A child that changes its ids in the caller's mm made the caller
    non-dumpable for good; so did a join of a user namespace."""
    before = _dumpable()
    assert before == 1
    target = util_unshare("-Ur")
    calls = [
        dict(namespaces="user", uid_map="0 100000 65536", gid_map="0 100000 65536"),
        dict(namespaces="user", uid_map="0 100000 65536", gid_map="0 100000 65536", uid=7),
        dict(namespaces="user,mnt", map_root=True),
        dict(join=target),
        dict(join={"user": target}, uid=0, gid=0),
        dict(uid=0, gid=0, extra_groups=[]),
    ]
    for kw in calls:
        assert nsfast.spawn(["true"], **kw).wait(timeout=30) == 0
        assert _dumpable() == before, kw


# ---------------------------------------------------------------- fds

def test_pass_fds_cannot_name_the_error_pipe():
    """pass_fds with a number that is not open was handed our error pipe: the
    program could forge records and spawn() waited for it to exit."""
    probe = os.open(os.devnull, os.O_RDONLY)
    os.close(probe)     # `probe` is now the lowest free number: the pipe's, before
    record = kernel.record(kernel.NSF_MSG_PID, value=1)   # "the grandchild is pid 1"
    forge = f"import os, time; os.write({probe}, {record!r}); time.sleep(3)"
    start = time.monotonic()
    with pytest.raises(OSError) as info:
        nsfast.spawn([sys.executable, "-c", forge], pass_fds=[probe])
    assert info.value.errno == errno.EBADF   # that fd is not open here
    assert time.monotonic() - start < 2


def test_a_passed_fd_above_the_pipes_is_the_only_extra_fd():
    r, w = os.pipe()
    high = os.dup2(w, 200)
    try:
        p = nsfast.spawn(["sh", "-c", "ls /proc/self/fd"], pass_fds=[high],
                         stdout=nsfast.PIPE)
        out = p.communicate(timeout=30)[0].split()
    finally:
        for fd in (r, w, high):
            os.close(fd)
    # 0-2, the passed fd, and ls's own directory fd
    assert [int(x) for x in out if int(x) > 2 and int(x) != 200] in ([], [3])
    assert b"200" in out


# ---------------------------------------------------------------- the parent dies mid-spawn

_KILLED_PARENT = textwrap.dedent("""
    import sys, nsfast
    marker = sys.argv[1]
    while True:
        nsfast.spawn(["sh", "-c", "sleep 1000; : " + marker], namespaces="user,mnt,pid",
                     uid_map="0 100000 65536", gid_map="0 100000 65536")
""")


def _procs_with(marker: str) -> list[int]:
    return [pid for pid, cmdline in proc_files("cmdline") if marker.encode() in cmdline]


@pytest.mark.system   # fault injection: 40 parents killed at random points, 10 s
def test_no_sandbox_outlives_a_parent_killed_mid_spawn():
    """pdeathsig armed after the last credential change, and the child's own
    check that the caller still lives (getppid() is 0 in a new pid namespace)."""
    marker = "nsfast-orphan-" + secrets.token_hex(8)
    rng = random.Random(1234)
    env = dict(os.environ, PYTHONPATH=REPO)
    try:
        for _ in range(40):
            parent = subprocess.Popen([sys.executable, "-c", _KILLED_PARENT, marker], env=env)
            time.sleep(0.25 + rng.random() * 0.05)   # import, then some spawns
            parent.send_signal(signal.SIGKILL)
            parent.wait()
        deadline = time.monotonic() + 5
        while _procs_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _procs_with(marker) == []
    finally:
        for pid in _procs_with(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ---------------------------------------------------------------- the child's code

def _setup_constant(name: str) -> list[str]:
    with open(os.path.join(REPO, "setup.py")) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == name for t in node.targets):
            value = node.value
            if isinstance(value, ast.BinOp):   # CHILD_FLAGS + [...]
                return _setup_constant(value.left.id) + ast.literal_eval(value.right)
            return ast.literal_eval(value)
    raise AssertionError(f"setup.py has no {name}")


def test_the_child_object_code_calls_no_libc():
    """The code of a CLONE_VM child is compiled so that no builtin becomes a
    libc call (a strlen loop became a `strlen` PLT call once): every undefined
    symbol of its objects must be one of nsfast's own."""
    cc = need_tool("cc")
    nm = need_tool("nm")
    sources, flags = _setup_constant("CHILD"), _setup_constant("CHILD_FLAGS")
    defined, undefined = set(), set()
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources:
            obj = os.path.join(tmp, os.path.basename(src) + ".o")
            subprocess.run([cc, "-c", "-O2", "-fPIC", "-D_GNU_SOURCE", "-I", "csrc", *flags,
                            "-o", obj, src], cwd=REPO, check=True)
            out = subprocess.run([nm, obj], capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                parts = line.split()
                if parts[0] == "U":
                    undefined.add(parts[1])
                elif len(parts) == 3 and parts[1] in "TtDdBbRr":
                    defined.add(parts[2])
    assert undefined - defined == set()


def test_the_launcher_resolves_every_symbol_at_start():
    """-z now: no lazy binding can run in a child of the nsfast command."""
    readelf = need_tool("readelf")
    launcher = os.path.join(os.path.dirname(nsfast.__file__), "_nsfast")
    out = subprocess.run([readelf, "-d", launcher], capture_output=True, text=True,
                         check=True).stdout
    assert "BIND_NOW" in out or "NOW" in out.split("FLAGS_1")[-1]


# ---------------------------------------------------------------- signals, as subprocess

def _signal_fields(text: str) -> dict:
    fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
    return {k: int(fields[k], 16) for k in ("SigBlk", "SigIgn", "SigCgt")}


def test_signal_state_is_what_subprocess_gives():
    """Ignored signals stay ignored (nohup works), handlers become defaults,
    SIGPIPE/SIGXFSZ go back to default, the thread's mask is kept."""
    old_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    try:
        argv = ["cat", "/proc/self/status"]
        ours = nsfast.spawn(argv, stdout=nsfast.PIPE).communicate(timeout=30)[0].decode()
        theirs = subprocess.run(argv, capture_output=True, text=True).stdout
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        signal.signal(signal.SIGHUP, old_hup)
    ours_f, theirs_f = _signal_fields(ours), _signal_fields(theirs)
    hup, usr2, pipe = (1 << (s - 1) for s in (signal.SIGHUP, signal.SIGUSR2, signal.SIGPIPE))
    assert ours_f["SigIgn"] & hup and not ours_f["SigIgn"] & pipe
    assert ours_f["SigBlk"] & usr2
    assert ours_f["SigCgt"] == 0
    for key in ("SigIgn", "SigBlk", "SigCgt"):
        assert ours_f[key] == theirs_f[key], key


# ---------------------------------------------------------------- the safe configuration

@pytest.fixture
def busybox_root():
    """A directory holding a static busybox and the directories a root needs."""
    busybox = shutil.which("busybox")
    need(busybox is not None, "busybox (busybox-static)")
    with tempfile.TemporaryDirectory() as tmp:
        for d in ("bin", "proc", "tmp", "dev"):
            os.mkdir(os.path.join(tmp, d))
        shutil.copy(busybox, os.path.join(tmp, "bin", "busybox"))
        for applet in ("sh", "ls", "cat", "id", "ps"):
            os.symlink("busybox", os.path.join(tmp, "bin", applet))
        yield tmp


RANGE = dict(uid_map="0 100000 65536", gid_map="0 100000 65536")


def test_a_tmpfs_root_with_mkdir_steps_under_a_range_map():
    """Mkdir ran before the child took its inside ids: EOVERFLOW, so the
    safer map could not have a tmpfs root."""
    with tempfile.TemporaryDirectory() as box:
        usr = os.path.join(box, "usr")
        steps = [nsfast.Tmpfs(box), nsfast.Mkdir(usr), nsfast.Mkdir(box + "/proc"),
                 nsfast.Mkdir(box + "/bin"), nsfast.Mkdir(box + "/lib"),
                 nsfast.Mkdir(box + "/lib64"), nsfast.Mkdir(box + "/made"),
                 nsfast.Bind("/usr", usr, readonly=True),
                 nsfast.Bind("/bin", box + "/bin", readonly=True),
                 nsfast.Bind("/lib", box + "/lib", readonly=True)]
        if os.path.isdir("/lib64"):
            steps.append(nsfast.Bind("/lib64", box + "/lib64", readonly=True))
        p = nsfast.spawn(["sh", "-c", "stat -c '%u %g' /made; cat /proc/self/uid_map; id -u"],
                         namespaces="user,mnt,pid", mounts=steps, root=box, pivot_root=True,
                         mount_proc=True, stdout=nsfast.PIPE, **RANGE)
        out = p.communicate(timeout=30)[0].decode().split()
        assert p.returncode == 0
        assert out[:2] == ["0", "0"]                # owned by inside root = host 100000
        assert out[2:5] == ["0", "100000", "65536"]
        assert out[-1] == "0"
        assert os.listdir(box) == []                # all of it was the child's own tmpfs


def test_mount_proc_with_pivot_root_in_a_user_namespace(busybox_root):
    """mount_proc=True with pivot_root=True was EPERM in a user namespace
    (proc mounted after the old root, the one full proc, was gone)."""
    p = nsfast.spawn(["/bin/sh", "-c", "ls /proc | grep -c '^[0-9]'; cat /proc/1/comm; :"],
                     namespaces="user,mnt,pid", map_root=True, root=busybox_root,
                     pivot_root=True, mount_proc=True, stdout=nsfast.PIPE)
    out = p.communicate(timeout=30)[0].decode().split()
    assert p.returncode == 0
    assert int(out[0]) <= 3 and out[1] == "sh"


def test_mount_proc_with_a_chroot_root_is_inside_it(busybox_root):
    """root= (chroot) with mount_proc=True gave an empty /proc: proc was
    mounted on the old /proc before the chroot."""
    p = nsfast.spawn(["/bin/sh", "-c", "cat /proc/1/comm; :"], namespaces="mnt,pid",
                     root=busybox_root, mount_proc=True, stdout=nsfast.PIPE)
    assert p.communicate(timeout=30)[0] == b"sh\n"
    assert os.listdir(os.path.join(busybox_root, "proc")) == []   # the host sees none of it


def test_nsfast_unshare_root_mount_proc_matches_util_linux(busybox_root):
    unshare = need_tool("unshare")
    cmd = ["-R", busybox_root, "--mount-proc", "-fp", "/bin/sh", "-c", "cat /proc/1/comm; :"]
    theirs = subprocess.run([unshare, *cmd], capture_output=True, timeout=30)
    from conftest import run_cli
    ours = run_cli("unshare", *cmd)
    assert theirs.returncode == 0 and ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout == b"sh\n"


def _own_v1_cgroup() -> str:
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if "memory" in controllers.split(","):
                base = "/sys/fs/cgroup/memory"
                if os.path.isdir(base):
                    return base + path
    return ""


def test_cgroup_v1_directory_is_a_clear_error():
    path = _own_v1_cgroup()
    need(bool(path), "a cgroup v1 memory hierarchy")
    with pytest.raises(OSError) as info:
        nsfast.spawn(["true"], cgroup=path)
    assert info.value.errno == 9
    assert info.value.filename == path
    assert "cgroup v2" in str(info.value)


# ---------------------------------------------------------------- the nsfast command

def test_nsfast_enter_prints_a_refused_join_instead_of_dying_of_sigpipe(util_unshare):
    """The command wrote the release byte to a child that had already failed
    its join: SIGPIPE killed it (exit 141) before it printed the error."""
    setpriv = need_tool("setpriv")
    launcher = shutil.which("nsfast", path=os.path.dirname(sys.executable))
    need(launcher is not None, "the installed nsfast command")
    target = util_unshare("-Urnpf", as_user=65534)
    codes = set()
    for _ in range(30):
        r = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                            launcher, "enter", "-t", str(target), "-n", "-p", "true"],
                           capture_output=True, timeout=30, cwd="/")
        codes.add(r.returncode)
        assert r.returncode == 1, (r.returncode, r.stderr)
        lines = r.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nsfast enter:"), lines
    assert codes == {1}

