"""nsfast.Sandbox and the spawn options it is made of: seccomp=,
max_user_namespaces=, the confined root (readonly_root, mask_paths,
readonly_paths, minimal_dev, tmp_size), the id lease.  Witnessed by the
payload's own view (/proc/self/status, its mountinfo, its syscalls' errnos)
and by /proc/<pid> from outside."""
from __future__ import annotations

import errno
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

import nsfast
import nsfast.confine
import nsfast.pool
from conftest import need_root

NS = "user,mnt,pid,uts,ipc,net,cgroup"
PY = sys.executable

# a probe in Python: calls a syscall with ctypes and prints its errno (0: success)
SYSCALL_PROBE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
nr = int(sys.argv[1]); args = [int(a, 0) for a in sys.argv[2:]]
r = libc.syscall(nr, *args)
print(0 if r >= 0 else ctypes.get_errno())
"""
NR = {"keyctl": 250, "bpf": 321, "perf_event_open": 298, "unshare": 272, "clone3": 435,
      "mount": 165, "getpid": 39, "userfaultfd": 323, "open_by_handle_at": 304,
      "setns": 308, "fsopen": 430}
NEWUSER, NEWUTS = 0x10000000, 0x04000000


def errno_of(name, *args, **spawn_options) -> int:
    argv = [PY, "-c", SYSCALL_PROBE, str(NR[name]), *map(str, args)]
    p = nsfast.spawn(argv, stdout=nsfast.PIPE, **spawn_options)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0, out
    return int(out)


# ---------------------------------------------------------------- seccomp

@pytest.mark.parametrize("name,args,err", [
    ("keyctl", (0, 0), errno.EPERM), ("bpf", (0, 0, 0), errno.EPERM),
    ("perf_event_open", (0, 0, -1, -1, 0), errno.EPERM),
    ("userfaultfd", (0,), errno.EPERM), ("open_by_handle_at", (-1, 0, 0), errno.EPERM),
    ("mount", (0, 0, 0, 0, 0), errno.EPERM), ("fsopen", (0, 0), errno.EPERM),
    ("unshare", (NEWUSER,), errno.EPERM), ("clone3", (0, 0), errno.ENOSYS),
    ("setns", (-1, NEWUSER), errno.EPERM), ("setns", (-1, 0), errno.EPERM)])
def test_default_filter_refuses(name, args, err):
    assert errno_of(name, *args, no_new_privs=True, seccomp="default") == err


@pytest.mark.parametrize("name,args", [("keyctl", (0, 0)), ("unshare", (NEWUSER,))])
def test_without_a_filter_the_same_calls_reach_the_kernel(name, args):
    # the witness that the refusals above are the filter's: keyctl(0) is EINVAL
    # (no such operation), unshare(CLONE_NEWUSER) works
    got = errno_of(name, *args, no_new_privs=True)
    assert got in ((errno.EOPNOTSUPP, errno.EINVAL) if name == "keyctl" else (0,))


def test_default_filter_allows_other_unshares_and_the_payload_runs():
    assert errno_of("unshare", NEWUTS, namespaces="user", map_root=True, no_new_privs=True,
                    seccomp="default") == 0


def test_the_filter_is_installed_in_the_payload():
    p = nsfast.spawn(["grep", "^Seccomp", "/proc/self/status"], stdout=nsfast.PIPE,
                     no_new_privs=True, seccomp="default")
    out = p.communicate(timeout=30)[0].decode()
    assert "Seccomp:\t2" in out and "Seccomp_filters:\t1" in out


def test_the_init_program_runs_under_the_default_filter():
    p = nsfast.spawn(["sh", "-c", "sleep 0.1 & wait; grep ^Seccomp: /proc/1/status"],
                     stdout=nsfast.PIPE, namespaces="user,pid,mnt", map_root=True,
                     mount_proc=True, init=True, no_new_privs=True, seccomp="default")
    assert p.communicate(timeout=30)[0].split() == [b"Seccomp:", b"2"]   # init is filtered
    assert p.returncode == 0


def test_nested_user_namespaces_when_the_sandbox_allows_them():
    with nsfast.Sandbox(allow_nested_userns=True) as box:
        r = box.run(["unshare", "-U", "echo", "nested"])
    assert r.stdout == b"nested\n", r.stderr
    with nsfast.Sandbox() as box:
        r = box.run(["unshare", "-U", "echo", "nested"])
    assert r.returncode != 0 and b"Operation not permitted" in r.stderr


def test_custom_policy_denies_with_its_errno():
    policy = nsfast.Seccomp(deny=["getpid"], errno=errno.EACCES)
    assert errno_of("getpid", no_new_privs=True, seccomp=policy) == errno.EACCES


def test_allow_list_policy_runs_a_static_program(tmp_path):
    # default="errno": only execve (always allowed) and what is listed
    src = tmp_path / "p.c"
    src.write_text("#include <unistd.h>\n#include <sys/syscall.h>\n"
                   "int main(void){long r = syscall(SYS_getppid);\n"
                   "syscall(SYS_exit_group, r < 0 ? 3 : 4);}\n")
    subprocess.run(["cc", "-static", "-O", "-o", str(tmp_path / "p"), str(src)], check=True,
                   timeout=120)
    allow = ["exit_group", "arch_prctl", "brk", "set_tid_address", "set_robust_list",
             "rseq", "prlimit64", "readlinkat", "uname", "mprotect", "getrandom"]
    p = nsfast.spawn([str(tmp_path / "p")], no_new_privs=True,
                     seccomp=nsfast.Seccomp(default="errno", allow=allow))
    assert p.wait(timeout=30) == 3   # getppid refused, the rest ran


def test_seccomp_without_no_new_privs_is_refused_by_the_kernel_with_a_hint():
    if os.geteuid() == 0:
        # root has CAP_SYS_ADMIN: drop it to see the kernel's rule
        kw = dict(capabilities=[])
    else:
        kw = {}
    with pytest.raises(OSError) as e:
        nsfast.spawn(["/bin/true"], seccomp="default", **kw)
    assert e.value.errno == errno.EACCES and "no_new_privs" in str(e.value)


@pytest.mark.parametrize("bad,exc", [
    (dict(default="deny"), ValueError), (dict(deny="keyctl"), TypeError),
    (dict(allow=["read"], deny=["read"]), ValueError), (dict(errno=0), ValueError)])
def test_bad_policies(bad, exc):
    with pytest.raises(exc):
        nsfast.Seccomp(**bad)


def test_unknown_syscall_name_is_a_value_error_before_any_spawn():
    with pytest.raises(ValueError, match="nosuchcall"):
        nsfast.spawn(["/bin/true"], seccomp=nsfast.Seccomp(deny=["nosuchcall"]))
    with pytest.raises(ValueError):
        nsfast.spawn(["/bin/true"], seccomp="strict")


def test_compiled_once_per_policy():
    a = nsfast.Seccomp(deny=["keyctl"])
    assert a.bpf() is nsfast.Seccomp(deny=["keyctl"]).bpf()


def test_missing_libseccomp_is_a_clear_error_never_an_unfiltered_sandbox():
    code = ("import nsfast\n"
            "try:\n nsfast.spawn(['/bin/true'], no_new_privs=True, seccomp='default')\n"
            "except OSError as e: print('ERR', e)\nelse: print('RAN')\n")
    env = dict(os.environ, NSFAST_LIBSECCOMP="/nonexistent/libseccomp.so.2")
    out = subprocess.run([PY, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60).stdout
    assert out.startswith("ERR") and "libseccomp2" in out


# ---------------------------------------------------------------- max_user_namespaces

def test_max_user_namespaces_is_set_inside_only():
    p = nsfast.spawn(["cat", "/proc/sys/user/max_user_namespaces"], stdout=nsfast.PIPE,
                     namespaces="user", map_root=True, max_user_namespaces=0)
    assert p.communicate(timeout=30)[0] == b"0\n"
    with open("/proc/sys/user/max_user_namespaces") as f:
        assert int(f.read()) > 0
    # and a nested user namespace is refused by it, without any filter
    assert errno_of("unshare", NEWUSER, namespaces="user", map_root=True,
                    max_user_namespaces=0) == errno.ENOSPC


def test_max_user_namespaces_needs_a_new_user_namespace():
    with pytest.raises(ValueError, match="user namespace"):
        nsfast.spawn(["/bin/true"], max_user_namespaces=0)


# ---------------------------------------------------------------- confined root

CONFINED = dict(namespaces=NS, map_root=True, mount_proc=True, readonly_root=True,
                mask_paths=True, readonly_paths=True, minimal_dev=True, tmp_size=8 << 20)


def sh(script: str, **options) -> tuple[int, str]:
    p = nsfast.spawn(["sh", "-c", script], stdout=nsfast.PIPE, stderr=nsfast.STDOUT,
                     **options)
    out = p.communicate(timeout=60)[0]
    return p.returncode, out.decode(errors="replace")


@pytest.fixture(params=["pivot_root", "template"])
def confined(request):
    """The confined root's options: built in the child and entered with
    pivot_root, or on top of a template mount namespace (nsfast/template.py)."""
    if request.param == "pivot_root":
        yield CONFINED
        return
    from nsfast import template
    t = template.MountTemplate(masked=template.static_masks(True))
    yield dict(CONFINED, template=t)
    t.close()


def test_confined_root_mounts_as_the_payload_sees_them(confined):
    code, out = sh("cat /proc/self/mountinfo", **confined)
    assert code == 0
    rows = {}
    for line in out.splitlines():
        f = line.split()
        rows[f[4]] = (f[5].split(","), f[f.index("-") + 1], f[3])
    assert "ro" in rows["/"][0]
    assert rows["/proc"][1] == "proc"
    for path in nsfast.confine.READONLY_PATHS:
        if os.path.exists(path):   # this kernel has it
            assert "ro" in rows[path][0], path
    assert rows["/tmp"][1] == "tmpfs" and "rw" in rows["/tmp"][0]
    assert rows["/dev"][1] == "tmpfs" and rows["/dev/pts"][1] == "devpts"
    assert rows["/proc/keys"][2] == "/null"   # /dev/null bound over it
    if os.path.isdir("/sys/firmware"):
        assert rows["/sys/firmware"][1] == "tmpfs" and "ro" in rows["/sys/firmware"][0]
    # the host's tree is gone: no staging path (other processes' mounts under
    # the host's /tmp may lie below the sandbox's /tmp on the usual path)
    stage = nsfast.confine.staging_dir().decode()
    assert not any(m.startswith(stage) for m in rows)
    if "template" in confined:   # it leaves them out
        assert not any(m.startswith("/tmp/") for m in rows)


def test_confined_root_contents(confined):
    code, out = sh("echo $(ls /dev); readlink /dev/ptmx /dev/fd /dev/stdin; "
                   "head -c4 /dev/zero | od -An -tx1; cat /proc/keys | wc -c; "
                   "ls -A /sys/firmware 2>&1 | wc -l; "
                   "echo x > /proc/sys/kernel/hostname; echo sys=$?; "
                   "touch /usr/x; echo ro=$?; dd if=/dev/zero of=/tmp/f bs=1M count=16 "
                   "2>/dev/null; echo tmp=$?; python3 -c 'import pty,os; m,s=pty.openpty(); "
                   "print(\"pty\", os.ttyname(s))'", **confined)
    lines = out.splitlines()
    assert set(lines[0].split()) == {"fd", "full", "null", "ptmx", "pts", "random", "shm",
                                     "stderr", "stdin", "stdout", "tty", "urandom", "zero"}
    assert lines[1:4] == ["pts/ptmx", "/proc/self/fd", "/proc/self/fd/0"]
    assert lines[4].split() == ["00"] * 4
    assert lines[5] == "0"          # /proc/keys reads as /dev/null
    assert lines[6] == "0"          # /sys/firmware empty (or absent)
    assert "hostname: Read-only file system" in out and "ro=1" in out
    assert "tmp=1" in out           # 16 MiB do not fit the 8 MiB /tmp
    assert "pty /dev/pts/0" in out  # the sandbox's own devpts


def test_confined_root_with_root_dir(tmp_path):
    # a root= tree: the host's /usr (and /bin, /lib ... as the host has them)
    # bound in read-only; /proc, /dev and /tmp made by the confinement
    root = tmp_path / "root"
    for d in ("usr", "proc", "dev", "tmp", "sys"):
        (root / d).mkdir(parents=True)
    mounts = [nsfast.Bind("/usr", "/usr", readonly=True)]
    for d in ("bin", "lib", "lib64", "sbin"):
        host = "/" + d
        if os.path.islink(host):
            os.symlink(os.readlink(host), root / d)
        elif os.path.isdir(host):
            (root / d).mkdir()
            mounts.append(nsfast.Bind(host, host, readonly=True))
    opts = dict(CONFINED, root=str(root), pivot_root=True, mounts=mounts)
    code, out = sh("ls /; touch /usr/x; echo ro=$?; touch /tmp/x; echo tmp=$?", **opts)
    assert code == 0, out
    assert "ro=1" in out and "tmp=0" in out
    assert "home" not in out.split() and "etc" not in out.split()   # only the given tree
    assert not os.path.exists(root / "tmp" / "x")   # /tmp is the sandbox's tmpfs


def test_caller_mounts_in_a_confined_root_sources_under_the_host_tmp():
    # the host's / is staged on a directory of nsfast's own, which hides
    # nothing a caller binds from; mount points are made as needed
    d = tempfile.mkdtemp(prefix="nsfast-src-", dir="/tmp")
    try:
        os.chmod(d, 0o755)
        with open(os.path.join(d, "f"), "w") as f:
            f.write("from the host's /tmp\n")
        os.chmod(os.path.join(d, "f"), 0o644)
        with nsfast.Sandbox(mounts=[nsfast.Bind(d, "/tmp/in", readonly=True),
                                    nsfast.Bind(os.path.join(d, "f"), "/tmp/file")]) as box:
            r = box.run(["cat", "/tmp/in/f", "/tmp/file"])
        assert r.stdout == b"from the host's /tmp\n" * 2, r.stderr
    finally:
        shutil.rmtree(d)


def test_caller_mounts_over_existing_files_and_dirs_of_the_read_only_root():
    with open("/etc/hostname", "rb") as f:
        hostname = f.read()
    target = next(d for d in ("/mnt", "/srv", "/opt") if os.path.isdir(d))
    with nsfast.Sandbox(mounts=[nsfast.Bind("/etc/hostname", "/etc/hosts", readonly=True),
                                nsfast.Bind("/etc", target, readonly=True)]) as box:
        r = box.run(["sh", "-c", f"cat /etc/hosts; test -e {target}/hostname && echo dir"])
    assert r.stdout == hostname + b"dir\n", r.stderr


@pytest.fixture
def open_dir():
    """A directory the sandbox's range-mapped ids may enter (pytest's
    tmp_path lies below root's 0700 directory)."""
    d = tempfile.mkdtemp(prefix="nsfast-tree-", dir="/var/tmp")
    os.chmod(d, 0o755)
    yield pathlib.Path(d)
    shutil.rmtree(d)


def test_overlay_over_a_root_dir_takes_writes_and_keeps_them_off_the_tree(open_dir):
    root = open_dir / "root"
    for d in ("usr", "proc", "dev", "tmp", "etc"):
        (root / d).mkdir(parents=True)
    (root / "etc" / "motd").write_text("lower\n")
    # the tree is the host root's, unmapped in the sandbox: new files go where
    # "other" may write and nothing needs a copy-up (an unmapped owner's file
    # or directory cannot be copied up: EOVERFLOW; a tree to change belongs
    # to the mapped ids)
    os.chmod(root, 0o777)
    for d in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink("/" + d):
            os.symlink(os.readlink("/" + d), root / d)
    with nsfast.Sandbox(root=str(root), overlay=1 << 20,
                        mounts=[nsfast.Bind("/usr", "/usr", readonly=True)]) as box:
        r = box.run(["sh", "-c", "cat /etc/motd; echo upper > /f; cat /f; "
                     "mkdir /new; head -c 2000000 /dev/zero > /new/big; echo big=$?"])
    assert r.stdout.decode().split() == ["lower", "upper", "big=1"], r.stderr
    assert b"No space left" in r.stderr   # the upper layer's 1 MiB
    assert (root / "etc" / "motd").read_text() == "lower\n"   # the tree is untouched
    assert not (root / "new").exists() and not (root / "f").exists()


def test_overlay_needs_a_root_dir():
    with pytest.raises(ValueError, match="root=DIR"):
        nsfast.Sandbox(overlay=True)


@pytest.mark.parametrize("bad", [
    dict(readonly_root=True),                                   # no mnt ns
    dict(namespaces="user,mnt", map_root=True, mask_paths=True),   # no proc to mask
    dict(namespaces="user,mnt,pid", map_root=True, root="/tmp", readonly_root=True),
    dict(namespaces="user,mnt", map_root=True, tmp_size=-1),
])
def test_confinement_option_errors_before_any_syscall(bad):
    with pytest.raises((ValueError, TypeError)):
        nsfast.spawn(["/bin/true"], **bad)


# ---------------------------------------------------------------- Sandbox

def test_sandbox_defaults_witnessed_from_outside():
    box = nsfast.Sandbox()
    p = box.spawn(["sleep", "30"])
    try:
        me = os.getpid()
        for kind in ("user", "mnt", "pid", "uts", "ipc", "cgroup", "net"):
            deadline = 0
            while os.readlink(f"/proc/{p.pid}/exe").endswith("python3") and deadline < 1000:
                deadline += 1
            assert os.readlink(f"/proc/{p.pid}/ns/{kind}") != os.readlink(f"/proc/{me}/ns/{kind}")
        status = dict(line.split(":", 1) for line in open(f"/proc/{p.pid}/status"))
        assert status["NoNewPrivs"].strip() == "1"
        assert status["Seccomp"].strip() == "2"
        assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0
        host_uid = int(status["Uid"].split()[0])
        if os.geteuid() == 0:
            assert host_uid >= nsfast.sandbox.ID_BASE and host_uid == p._id_lease.start
        else:
            assert host_uid == os.geteuid()
        assert os.getsid(p.pid) == p.pid
        env = open(f"/proc/{p.pid}/environ", "rb").read().split(b"\0")
        assert sorted(e.split(b"=")[0] for e in env if e) == [b"HOME", b"LANG", b"PATH", b"TERM"]
    finally:
        p.kill()
        p.wait()
        box.close()


@pytest.mark.parametrize("loopback", [None, True], ids=["default", "loopback=True"])
def test_sandbox_run_and_loopback(loopback):
    with nsfast.Sandbox(loopback=loopback) as box:
        r = box.run(["sh", "-c", "cat; ip -o link | cut -d' ' -f2,9; exit 3"], input=b"in\n",
                    timeout=60)
    assert r.returncode == 3 and r.usage.exit_code == 3 and r.usage.limit_hit is None
    assert r.stdout == b"in\nlo: UNKNOWN\n"


def _net_owner(pid: int) -> tuple:
    """The payload's net namespace and the user namespace that owns it (lsns as witness)."""
    out = subprocess.run(["lsns", "-n", "-r", "-t", "net", "-o", "NS,ONS", "-p", str(pid)],
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def test_default_net_namespace_is_fresh_per_payload_and_made_ahead():
    need_root()
    me_user = os.stat("/proc/self/ns/user").st_ino
    with nsfast.Sandbox() as a, nsfast.Sandbox() as b:
        procs = [a.spawn(["sleep", "30"]), a.spawn(["sleep", "30"]), b.spawn(["sleep", "30"])]
        try:
            nets = [_net_owner(p.pid) for p in procs]
            host_net = os.stat("/proc/self/ns/net").st_ino
            # three payloads, three namespaces, none the host's
            assert len({ns for ns, _ in nets}) == 3 and host_net not in {ns for ns, _ in nets}
            # made ahead by this process's pool: owned by the host's user namespace
            assert {owner for _, owner in nets} == {me_user}
            assert nsfast.pool.shared_loopback().stats()["made"] >= 1
            for p in procs:
                out = subprocess.run(["nsenter", "-t", str(p.pid), "-n", "ip", "-o", "link"],
                                     capture_output=True, text=True, check=True).stdout
                assert "lo: <LOOPBACK,UP" in out
        finally:
            for p in procs:
                p.kill()
                p.wait()


def test_kept_capabilities_get_a_net_namespace_of_the_sandbox_user_namespace():
    need_root()
    with nsfast.Sandbox(capabilities=["CAP_NET_ADMIN"], seccomp=None) as box:
        p = box.spawn(["sleep", "30"])
        try:
            ns, owner = _net_owner(p.pid)
            assert owner == os.stat(f"/proc/{p.pid}/ns/user").st_ino
        finally:
            p.kill()
            p.wait()
        # its root can change its own namespace: the capability means something
        r = box.run(["ip", "link", "set", "lo", "mtu", "1280"])
        assert r.returncode == 0, r.stderr


def test_network_new_makes_the_namespace_at_spawn():
    need_root()
    pool = nsfast.pool.shared_loopback()
    with nsfast.Sandbox(network="new") as box:
        taken = pool.stats()["hits"] + pool.stats()["misses"]
        r = box.run(["sh", "-c", "readlink /proc/self/ns/net; ip -o link | cut -d' ' -f2,9"])
        assert pool.stats()["hits"] + pool.stats()["misses"] == taken
    assert r.stdout.split()[1:] == [b"lo:", b"UNKNOWN"]
    assert r.stdout.split()[0] != os.readlink("/proc/self/ns/net").encode()


def test_sandbox_run_timeout_kills():
    with nsfast.Sandbox() as box:
        with pytest.raises(subprocess.TimeoutExpired):
            box.run(["sleep", "30"], timeout=0.5)


def test_sandbox_closes_inherited_fds():
    fd = os.open("/etc/hostname", os.O_RDONLY)   # inheritable
    os.set_inheritable(fd, True)
    try:
        with nsfast.Sandbox() as box:
            r = box.run(["ls", "/proc/self/fd"])
        assert r.stdout.split() == [b"0", b"1", b"2", b"3"]   # 3: ls's own dir fd
    finally:
        os.close(fd)


def test_each_default_turns_off_by_name():
    with nsfast.Sandbox(seccomp=None, no_new_privs=False, readonly_root=False,
                        allow_nested_userns=True, mask_paths=False, readonly_paths=False,
                        minimal_dev=False, tmp_size=None, capabilities=None) as box:
        r = box.run(["sh", "-c", "grep ^Seccomp: /proc/self/status; "
                     "cat /proc/sys/user/max_user_namespaces; touch /tmp/.nsfast-sbx-probe; "
                     "echo $?"])
    lines = r.stdout.decode().split()
    assert lines[1] == "0" and int(lines[2]) > 0
    # readonly_root off: / is the host's (still in its own mnt ns, pivoted)


def host_uid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("Uid:")).split()[1])


def test_no_two_running_payloads_share_a_host_uid():
    need_root()
    a, b = nsfast.Sandbox(), nsfast.Sandbox()
    procs = [a.spawn(["sleep", "30"]), a.spawn(["sleep", "30"]), b.spawn(["sleep", "30"])]
    try:
        uids = [host_uid(p.pid) for p in procs]
        assert len(set(uids)) == 3 and min(uids) >= nsfast.sandbox.ID_BASE
        assert all(abs(x - y) >= 65536 for x in uids for y in uids if x != y)
        # another process leases none of them
        code = "import nsfast.sandbox as s; print(s.IdLease().start)"
        out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
        assert int(out.stdout) not in uids
    finally:
        for p in procs:
            p.kill()
            p.wait()
        a.close()
        b.close()


def test_a_range_is_reused_once_its_payload_has_ended():
    need_root()
    with nsfast.Sandbox() as box:
        first = box.spawn(["sleep", "30"])
        uid = host_uid(first.pid)
        first.kill()
        first.wait()
        second = box.spawn(["sleep", "30"])
        try:
            assert host_uid(second.pid) == uid
        finally:
            second.kill()
            second.wait()


def test_sandbox_validates_once_before_anything():
    with pytest.raises(ValueError):
        nsfast.Sandbox(tmp_size=0)
    with pytest.raises(TypeError):
        nsfast.Sandbox(limits={"pids": 10})
    with pytest.raises(TypeError):
        nsfast.Sandbox(nosuchoption=1)


def test_a_sandbox_without_a_user_namespace_says_what_else_to_turn_off():
    with pytest.raises(ValueError, match="ids=None and allow_nested_userns=True"):
        nsfast.Sandbox(namespaces="mnt,pid")
    with nsfast.Sandbox(namespaces="mnt,pid,uts", ids=None, allow_nested_userns=True) as box:
        r = box.run(["grep", "^CapEff:", "/proc/self/status"])
    assert r.stdout.split() == [b"CapEff:", b"0000000000000000"]


def test_repeated_spawns_reuse_the_validated_plan():
    spawn_module = sys.modules["nsfast.spawn"]
    with nsfast.Sandbox() as box:
        box.spawn(["/bin/true"]).wait()
        before = spawn_module.plans_reused()
        for _ in range(3):
            assert box.spawn(["/bin/true"]).wait() == 0
        assert spawn_module.plans_reused() == before + 3


def test_everything_a_sandbox_does_is_a_spawn_option():
    with nsfast.Sandbox() as box:
        opts = box.spawn_options()
        p = nsfast.spawn(["grep", "^Seccomp:", "/proc/self/status"], stdout=nsfast.PIPE, **opts)
        assert p.communicate(timeout=30)[0].split() == [b"Seccomp:", b"2"]


def test_default_limits_are_generous_but_never_unlimited():
    """As root: a cgroup of the sandbox's own caps tasks and memory, and the
    sandbox ends after its wall time; limits=None turns all of it off."""
    from nsfast.sandbox import default_limits
    limits = default_limits()
    assert limits.pids and limits.memory and limits.wall_time
    with nsfast.Sandbox() as box:
        assert box.spawn_options()["limits"] == limits
        with open("/proc/self/cgroup", "rb") as f:
            hierarchies = len(f.read().splitlines())
        with box.spawn(["sh", "-c", "cat /proc/self/cgroup; exec sleep 30"],
                       stdout=nsfast.PIPE) as p:
            seen_inside = [p.stdout.readline().rstrip(b"\n") for _ in range(hierarchies)]
            with open(f"/proc/{p.pid}/cgroup", "rb") as f:
                outside = f.read()
    # the host sees the sandbox in a pids and a memory cgroup of its own...
    assert any(b":pids:" in line and b"box-" in line for line in outside.splitlines())
    assert any(b":memory:" in line and b"box-" in line for line in outside.splitlines())
    # ...and the sandbox, in its cgroup namespace, sees only its root there
    assert all(line.endswith(b":/") for line in seen_inside), seen_inside
    with nsfast.Sandbox(limits=None) as box:
        assert "limits" not in box.spawn_options()
    with nsfast.Sandbox(limits=nsfast.Limits(wall_time=0.5)) as box:
        r = box.run(["sleep", "30"], timeout=60)
    assert r.usage.limit_hit == "wall_time"


def test_a_forked_child_never_runs_a_payload_on_its_parents_id_range():
    """A Sandbox's free ranges are its parent's after a fork (the flock is the
    shared open file's): the child leases one of its own, and takes its net
    namespaces from a pool of its own."""
    need_root()
    from conftest import in_forked_child
    with nsfast.Sandbox() as box:
        box.run(["true"])   # its range is the box's to reuse now
        parents = {lease.start for lease in box._free} | {l.start for _, l in box._busy}
        assert parents

        parent_pool = nsfast.pool.shared_loopback()

        def in_child() -> bytes:
            with box.spawn(["sleep", "30"]) as p:
                uid = host_uid(p.pid)
                p.kill()
            # and its network namespace came from a pool of its own
            fresh = box.options["netns"] is nsfast.pool.shared_loopback() is not parent_pool
            return b"%d %d" % (uid, fresh)
        child_uid, fresh = map(int, in_forked_child(in_child).split())
        assert child_uid not in parents and child_uid >= nsfast.sandbox.ID_BASE
        assert fresh
