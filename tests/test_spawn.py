"""nsfast.spawn into new namespaces, witnessed from outside with /proc, ip, ipcs,
findmnt, hostname and ps.  The same scenarios through the CLI are in
test_cli_unshare.py."""
from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

import nsfast
from conftest import children_of, need, need_tool, ns_inode

TAG = f"spawn{os.getpid()}"


def output(argv, **kw) -> str:
    """stdout of argv spawned with kw; fails unless it exits 0."""
    p = nsfast.spawn(argv, stdout=nsfast.PIPE, **kw)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0, (argv, kw, p.returncode)
    return out.decode()


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.01)
    return False


# ---------------------------------------------------------------- user

def test_user_without_map_is_overflow_id():
    assert output(["id", "-u"], namespaces="user").strip() == "65534"
    assert output(["id", "-g"], namespaces="user").strip() == "65534"


def test_user_map_root_shows_root_and_the_map(sleeper):
    assert output(["id", "-u"], namespaces="user", map_root=True).strip() == "0"
    text = output(["cat", "/proc/self/uid_map"], namespaces="user", map_root=True)
    assert text.split() == ["0", str(os.geteuid()), "1"]
    # the witness from outside: the map and setgroups of a held child
    p = sleeper(namespaces="user", map_root=True)
    assert open(f"/proc/{p.pid}/uid_map").read().split() == ["0", str(os.geteuid()), "1"]
    assert open(f"/proc/{p.pid}/gid_map").read().split() == ["0", str(os.getegid()), "1"]
    assert open(f"/proc/{p.pid}/setgroups").read().strip() == "deny"
    assert ns_inode(p.pid, "user") != ns_inode(os.getpid(), "user")


def test_map_current_user_and_explicit_maps(sleeper):
    assert output(["id", "-u"], namespaces="user", map_current_user=True).strip() == \
        str(os.geteuid())
    p = sleeper(namespaces="user", uid_map=[(5, os.geteuid(), 1)], gid_map="7 0 1",
                setgroups="allow")
    assert open(f"/proc/{p.pid}/uid_map").read().split() == ["5", str(os.geteuid()), "1"]
    assert open(f"/proc/{p.pid}/setgroups").read().strip() == "allow"


@pytest.fixture
def open_dir():
    """A directory anyone may write into (pytest's tmp_path is 0700 root)."""
    d = tempfile.mkdtemp(prefix=f"nsfast-{TAG}-")
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d)


def test_range_map_owns_files_as_the_outer_id(open_dir):
    target = os.path.join(open_dir, "made-inside")
    rng = [(0, 100000, 65536)]
    output(["sh", "-c", f"id -u > {target}; id -G >> {target}"], namespaces="user",
           uid_map=rng, gid_map=rng)
    st = os.stat(target)
    assert (st.st_uid, st.st_gid) == (100000, 100000)
    # uid 0 inside, and none of the host's supplementary groups
    assert open(target).read().split() == ["0", "0"]


def test_explicit_inside_ids(open_dir):
    target = os.path.join(open_dir, "f")
    rng = [(0, 100000, 65536)]
    output(["sh", "-c", f"touch {target}"], namespaces="user", uid_map=rng, gid_map=rng,
           uid=1000, gid=5)
    st = os.stat(target)
    assert (st.st_uid, st.st_gid) == (101000, 100005)
    with pytest.raises(ValueError):
        nsfast.spawn(["true"], namespaces="user", uid_map=rng, gid_map=rng, uid=70000)


@pytest.mark.parametrize("kw,ids", [({"uid_map": "0 100000 10"}, ["0", "65534"]),
                                    ({"gid_map": "0 100000 10"}, ["65534", "0"])])
def test_one_map_only_switches_that_id_only(kw, ids):
    assert output(["sh", "-c", "id -u; id -g"], namespaces="user", **kw).split() == ids


def test_setgroups_deny_without_a_map(sleeper):
    p = sleeper(namespaces="user", setgroups="deny")
    assert open(f"/proc/{p.pid}/setgroups").read().strip() == "deny"
    assert open(f"/proc/{p.pid}/uid_map").read() == ""


def test_map_users_auto_uses_subuid_or_says_what_is_missing():
    from nsfast import idmap
    try:
        start, count = idmap.subordinate_range("uid")
        idmap.subordinate_range("gid")
    except (LookupError, FileNotFoundError) as e:
        # the error names the file and how to add a range, before any clone
        with pytest.raises(type(e), match="/etc/sub"):
            nsfast.spawn(["true"], namespaces="user", map_users="auto")
        return
    text = output(["cat", "/proc/self/uid_map"], namespaces="user", map_users="auto")
    assert text.split() == ["0", str(start), str(count)]


def test_spawn_with_an_extra_thread_makes_a_user_namespace():
    import threading
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert len(os.listdir("/proc/self/task")) >= 2
        # the caller itself could not: unshare(CLONE_NEWUSER) is EINVAL with threads
        text = output(["sh", "-c", "id -u; readlink /proc/self/ns/user"],
                      namespaces="user", map_root=True)
        uid, ns = text.split()
        assert uid == "0"
        assert ns != os.readlink("/proc/self/ns/user")
    finally:
        stop.set()
        t.join()


# ---------------------------------------------------------------- uts

def test_hostname_inside_leaves_the_host_alone(sleeper):
    host = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    name = f"box-{TAG}"
    assert output(["hostname"], namespaces="uts", hostname=name).strip() == name
    p = sleeper(namespaces="uts", hostname=name, domainname="dom" + TAG)
    seen = subprocess.run(["nsenter", "-t", str(p.pid), "-u", "hostname"],
                          capture_output=True, text=True).stdout.strip()
    assert seen == name
    assert subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip() == host
    assert socket.gethostname() == host


# ---------------------------------------------------------------- ipc

@pytest.fixture
def host_queue():
    need_tool("ipcmk")
    out = subprocess.run(["ipcmk", "-Q"], capture_output=True, text=True, check=True).stdout
    qid = int(re.search(r"(\d+)", out).group(1))
    yield qid
    subprocess.run(["ipcrm", "-q", str(qid)], capture_output=True)


def _queue_ids(text: str) -> set[int]:
    return {int(line.split()[1]) for line in text.splitlines()
            if line.startswith("0x") and len(line.split()) > 1}


def test_sysv_queue_is_per_ipc_namespace(host_queue, sleeper):
    host = subprocess.run(["ipcs", "-q"], capture_output=True, text=True).stdout
    assert host_queue in _queue_ids(host)
    assert _queue_ids(output(["ipcs", "-q"], namespaces="ipc")) == set()
    # one made inside lives in that namespace only and goes with it
    p = sleeper(namespaces="ipc")
    inode = ns_inode(p.pid, "ipc")
    made = subprocess.run(["nsenter", "-t", str(p.pid), "-i", "ipcmk", "-Q"],
                          capture_output=True, text=True, check=True).stdout
    inner = int(re.search(r"(\d+)", made).group(1))
    inside = subprocess.run(["nsenter", "-t", str(p.pid), "-i", "ipcs", "-q"],
                            capture_output=True, text=True).stdout
    assert _queue_ids(inside) == {inner}
    assert open(f"/proc/{p.pid}/root/proc/sysvipc/msg").read().count("\n") >= 1
    p.kill()
    p.wait()
    lsns = subprocess.run(["lsns", "-n", "-o", "NS", "-t", "ipc"], capture_output=True,
                          text=True).stdout.split()
    assert str(inode) not in lsns
    host_after = subprocess.run(["ipcs", "-q"], capture_output=True, text=True).stdout
    assert host_queue in _queue_ids(host_after)


# ---------------------------------------------------------------- mnt

@pytest.fixture
def shared_base(tmp_path):
    """A tmpfs made shared in the host, so that propagation can be seen."""
    base = tmp_path / "base"
    base.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", TAG, str(base)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(base)], check=True)
        (base / "inner").mkdir()
        (base / "outer").mkdir()
        yield base
    finally:
        subprocess.run(["umount", "-R", "-l", str(base)], capture_output=True)


def _mounted(pid_or_none, path) -> bool:
    cmd = ["findmnt", "-n", str(path)]
    if pid_or_none is not None:
        cmd = ["nsenter", "-t", str(pid_or_none), "-m"] + cmd
    return subprocess.run(cmd, capture_output=True).returncode == 0


@pytest.mark.parametrize("propagation,leaks", [("private", False), ("slave", None),
                                               ("unchanged", True)])
def test_tmpfs_propagation_both_ways(shared_base, propagation, leaks):
    inner, outer = shared_base / "inner", shared_base / "outer"
    script = f"mount -t tmpfs in{TAG} {inner} && echo ready && exec sleep 600"
    p = nsfast.spawn(["sh", "-c", script], namespaces="mnt", propagation=propagation,
                     stdout=nsfast.PIPE)
    try:
        assert p.stdout.readline() == b"ready\n"
        assert _mounted(p.pid, inner)
        # inside -> outside: only a shared peer carries it back
        assert _mounted(None, inner) == bool(leaks)
        # outside -> inside: private stops it; slave and shared receive it
        subprocess.run(["mount", "-t", "tmpfs", "out" + TAG, str(outer)], check=True)
        assert _mounted(p.pid, outer) == (leaks is not False)
    finally:
        p.kill()
        p.wait()
        p.stdout.close()


def test_mounts_bind_and_tmpfs(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("hello\n")
    (tmp_path / "dst").mkdir()
    (tmp_path / "t").mkdir()
    script = (f"cat {tmp_path}/dst/f; touch {tmp_path}/dst/g 2>/dev/null || echo ro; "
              f"findmnt -n -o FSTYPE {tmp_path}/t")
    text = output(["sh", "-c", script], namespaces="mnt",
                  mounts=[nsfast.Bind(str(tmp_path / "src"), str(tmp_path / "dst"),
                                      readonly=True), nsfast.Tmpfs(str(tmp_path / "t"))])
    assert text.split() == ["hello", "ro", "tmpfs"]
    assert not _mounted(None, tmp_path / "t")


def test_root_chroots_and_cwd_inside(tmp_path):
    busybox = need_tool("busybox")
    (tmp_path / "bin").mkdir()
    (tmp_path / "sub").mkdir()
    with open(busybox, "rb") as src, open(tmp_path / "bin" / "busybox", "wb") as dst:
        dst.write(src.read())
    os.chmod(tmp_path / "bin" / "busybox", 0o755)
    assert output(["/bin/busybox", "pwd"], root=str(tmp_path)).strip() == "/"
    assert output(["/bin/busybox", "pwd"], root=str(tmp_path), cwd="/sub").strip() == "/sub"
    assert output(["/bin/busybox", "ls", "/"], root=str(tmp_path)).split() == ["bin", "sub"]


# ---------------------------------------------------------------- pid

def test_pid_namespace_with_proc_shows_only_itself():
    text = output(["ps", "-eo", "pid=,comm="], namespaces="mnt,pid", mount_proc=True)
    assert [line.split() for line in text.splitlines()] == [["1", "ps"]]
    full = output(["ps", "-ef"], namespaces="mnt,pid", mount_proc=True).splitlines()
    assert len(full) == 2 and full[1].split()[1] == "1"


def test_pid_namespace_inode_differs_and_pid1_takes_all_down(sleeper):
    p = sleeper(["sh", "-c", "sleep 600 & sleep 600 & wait"], namespaces="pid")
    assert ns_inode(p.pid, "pid") != ns_inode(os.getpid(), "pid")
    deadline = time.monotonic() + 5
    while len(children_of(p.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    kids = children_of(p.pid)
    assert len(kids) == 2
    with open(f"/proc/{kids[0]}/status") as f:
        assert re.search(r"NSpid:\s+\d+\s+\d+", f.read())
    p.kill()
    assert p.wait() == -9
    assert all(wait_gone(k) for k in kids)


def test_mount_proc_elsewhere(tmp_path):
    text = output(["ls", str(tmp_path)], namespaces="mnt,pid", mount_proc=str(tmp_path))
    assert "1" in text.split() and "self" in text.split()


# ---------------------------------------------------------------- net

def test_new_net_namespace_has_only_lo_down(sleeper):
    need_tool("ip")
    text = output(["ip", "-o", "link"], namespaces="net")
    lines = text.splitlines()
    assert len(lines) == 1
    assert ": lo:" in lines[0] and "state DOWN" in lines[0]
    p = sleeper(namespaces="net")
    seen = subprocess.run(["ip", "-n", "x", "link"], capture_output=True)  # no such netns
    assert seen.returncode != 0
    witness = subprocess.run(["nsenter", "-t", str(p.pid), "-n", "ip", "-br", "link"],
                             capture_output=True, text=True).stdout.split()
    assert witness[:2] == ["lo", "DOWN"] and len(witness) <= 4


def test_loopback_up():
    text = output(["ip", "-br", "link"], namespaces="net", loopback=True)
    assert text.split()[:2] == ["lo", "UNKNOWN"]


# ---------------------------------------------------------------- time, cgroup

MONO = ("import time; print(time.clock_gettime(time.CLOCK_MONOTONIC)); "
        "print(time.clock_gettime(time.CLOCK_BOOTTIME))")


def test_time_offsets_shift_the_clocks():
    need(nsfast.features.time_namespaces, "time namespaces")
    before = time.clock_gettime(time.CLOCK_MONOTONIC)
    text = output([sys.executable, "-c", MONO], namespaces="time",
                  time_offsets={"monotonic": 86400, "boottime": -1.5})
    after = time.clock_gettime(time.CLOCK_MONOTONIC)
    mono, boot = (float(x) for x in text.split())
    assert before + 86400 <= mono <= after + 86400
    real_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
    assert real_boot - 1.5 - 30 < boot < real_boot - 1.5 + 0.001


def test_map_root_writes_are_not_carried_into_the_next_spawn(sleeper):
    """map_root's writes are rendered once and shared: the time offsets of one
    spawn, and the setgroups of another, must not stick to the next one."""
    need(nsfast.features.time_namespaces, "time namespaces")
    text = output([sys.executable, "-c", MONO], namespaces="user,time", map_root=True,
                  time_offsets={"monotonic": 86400})
    assert float(text.split()[0]) >= time.clock_gettime(time.CLOCK_MONOTONIC) + 86000
    # a user namespace without a time one: an offsets write would fail it
    p = sleeper(namespaces="user", map_root=True)
    assert ns_inode(p.pid, "time") == ns_inode(os.getpid(), "time")
    assert open(f"/proc/{p.pid}/setgroups").read().strip() == "deny"
    q = sleeper(namespaces="user", map_root=True, setgroups="allow")
    assert open(f"/proc/{q.pid}/setgroups").read().strip() == "allow"
    r = sleeper(namespaces="user", map_root=True)
    assert open(f"/proc/{r.pid}/setgroups").read().strip() == "deny"


def test_cgroup_namespace_and_clone_into_cgroup():
    root = "/sys/fs/cgroup/unified"
    need(os.path.exists(f"{root}/cgroup.procs") and os.access(root, os.W_OK),
         "a writable cgroup v2 hierarchy")
    need(nsfast.features.clone3, "clone3 (CLONE_INTO_CGROUP)")
    path = f"{root}/nsfast-{TAG}"
    os.mkdir(path)
    try:
        text = output(["cat", "/proc/self/cgroup"], cgroup=path)
        assert f"0::/nsfast-{TAG}" in text.splitlines()
        # in a new cgroup namespace made there, the same cgroup is its root
        text = output(["cat", "/proc/self/cgroup"], cgroup=path, namespaces="cgroup")
        assert "0::/" in text.splitlines()
    finally:
        deadline = time.monotonic() + 5
        while True:
            try:
                os.rmdir(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


def test_cgroup_missing_dir_names_it():
    with pytest.raises(FileNotFoundError) as e:
        nsfast.spawn(["true"], cgroup=f"/sys/fs/cgroup/unified/no-{TAG}")
    assert e.value.filename.endswith(f"no-{TAG}")


# ---------------------------------------------------------------- join

def test_join_by_pid_mapping_and_handles(sleeper):
    name = f"j-{TAG}"
    target = sleeper(namespaces="uts,net,ipc", hostname=name)
    want = {k: ns_inode(target.pid, k) for k in ("uts", "net", "ipc")}
    script = "readlink /proc/self/ns/uts /proc/self/ns/net /proc/self/ns/ipc; hostname"

    def joined(**kw):
        lines = output(["sh", "-c", script], **kw).split()
        inodes = [int(re.search(r"\[(\d+)\]", x).group(1)) for x in lines[:3]]
        return dict(zip(("uts", "net", "ipc"), inodes)), lines[3]

    assert joined(join=target.pid) == (want, name)
    got, host = joined(join={"uts": target.pid, "net": f"/proc/{target.pid}/ns/net"})
    assert got["uts"] == want["uts"] and got["net"] == want["net"]
    assert got["ipc"] == ns_inode(os.getpid(), "ipc")
    with nsfast.Namespace.of(target.pid, "uts") as uts, \
            nsfast.Namespace.of(target.pid, "ipc") as ipc:
        got, _ = joined(join=[uts, ipc])
        assert (got["uts"], got["ipc"]) == (want["uts"], want["ipc"])
        got, _ = joined(join=uts)
        assert got["uts"] == want["uts"]


def test_join_with_a_handle_of_the_wrong_kind_names_both_kinds():
    """The same error as enter() and Namespace.open give: OSError naming both."""
    before = children_of(os.getpid())
    with nsfast.Namespace.open("/proc/self/ns/uts") as uts:
        with pytest.raises(OSError) as e:
            nsfast.spawn(["true"], join={"net": uts})
    assert e.value.errno == errno.EINVAL
    assert "uts namespace, not net" in str(e.value)
    assert children_of(os.getpid()) == before   # refused before any clone


def test_join_a_user_namespace_with_the_others(sleeper):
    target = sleeper(namespaces="user,uts,mnt", map_root=True, hostname=f"u-{TAG}")
    script = "readlink /proc/self/ns/user /proc/self/ns/mnt; hostname; id -u"
    for join in (target.pid, {"user": target.pid, "uts": target.pid, "mnt": target.pid}):
        user, mnt, host, uid = output(["sh", "-c", script], join=join).split()
        assert user == os.readlink(f"/proc/{target.pid}/ns/user")
        assert mnt == os.readlink(f"/proc/{target.pid}/ns/mnt")
        assert (host, uid) == (f"u-{TAG}", "0")


def test_join_then_new_pid_and_user(sleeper):
    target = sleeper(namespaces="uts")
    text = output(["sh", "-c", "echo $$; id -u; readlink /proc/self/ns/uts /proc/self/ns/user"],
                  join={"uts": target.pid}, namespaces="pid,user", map_root=True)
    pid, uid, uts, user = text.split()
    assert pid == "1" and uid == "0"
    assert uts == os.readlink(f"/proc/{target.pid}/ns/uts")
    assert user != os.readlink("/proc/self/ns/user")


def test_namespaces_of_process(sleeper):
    p = sleeper(namespaces="uts,ipc")
    handles = p.namespaces()
    try:
        assert handles[nsfast.NsType.UTS].inode == ns_inode(p.pid, "uts")
        assert handles[nsfast.NsType.UTS].inode != ns_inode(os.getpid(), "uts")
        assert handles[nsfast.NsType.NET].inode == ns_inode(os.getpid(), "net")
    finally:
        for h in handles.values():
            h.close()


# ---------------------------------------------------------------- on_created

def test_on_created_runs_before_the_child_goes_on(tmp_path):
    seen = []
    marker = tmp_path / "ran"

    def hook(pid):
        # the child is held: its program has not run, its namespace exists
        seen.append((pid, ns_inode(pid, "uts"), marker.exists()))

    p = nsfast.spawn(["sh", "-c", f"touch {marker}; readlink /proc/self/ns/uts"],
                     namespaces="uts", on_created=hook, stdout=nsfast.PIPE)
    out, _ = p.communicate()
    assert len(seen) == 1 and seen[0][2] is False
    assert out.decode().strip() == f"uts:[{seen[0][1]}]"


def test_on_created_failure_kills_and_reaps():
    kids = set(children_of(os.getpid()))

    def hook(pid):
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        nsfast.spawn(["sleep", "600"], namespaces="user,pid", map_root=True, on_created=hook)
    assert set(children_of(os.getpid())) == kids


def test_join_a_pid_and_take_the_netns_from_a_pool(sleeper):
    """join=<pid> with netns=: the pid's namespaces are joined per fd, so that
    the pool's net namespace can be joined beside them."""
    target = sleeper(namespaces="uts,ipc")
    with nsfast.NetnsPool(size=1) as pool:
        p = sleeper(join=target.pid, netns=pool)
        for kind in ("uts", "ipc"):
            assert ns_inode(p.pid, kind) == ns_inode(target.pid, kind)
        assert ns_inode(p.pid, "net") != ns_inode(os.getpid(), "net")
