"""Names under /run/netns that are not plain nsfast-made bind mounts (nsfast issue #13):
docker's symlink recipe, the empty file a killed add leaves, names and mount
points that are not UTF-8.

Witnesses: /proc/PID/ns/net inodes, `ip netns`, util-linux unshare/nsenter/lsns,
/proc/self/mountinfo.  Every name, link, file and process is the test's own and
is removed in a fixture.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

import nsfast
from nsfast import netns
from conftest import need_tool, ns_inode, run_cli

PID = os.getpid()
RUN = "/run/netns"


def unique(tag: str) -> str:
    return f"nsft{PID}n{tag}"


def mount_points() -> list[bytes]:
    """Mount points of our mount namespace, as bytes (the kernel's escapes undone)."""
    with open("/proc/self/mountinfo", "rb") as f:
        return [os.fsencode(e.mount_point) for e in nsfast.mounts.parse_mountinfo(f.read())]


def ip_list() -> list[bytes]:
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, check=True, timeout=30)
    return [line.split(b" ")[0] for line in r.stdout.splitlines()]


def forget(path: str) -> None:
    """Remove whatever a test left at path: the namespace mount, then the entry."""
    raw = os.fsencode(path)
    while raw in mount_points():
        subprocess.run(["umount", "-l", raw], capture_output=True)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@pytest.fixture
def paths():
    """Factory of unique /run/netns paths, whatever is left at each removed afterwards."""
    made = []

    def make(tag: str) -> str:
        path = f"{RUN}/{unique(tag)}"
        made.append(path)
        return path

    os.makedirs(RUN, exist_ok=True)
    yield make
    for path in made:
        forget(path)


@pytest.fixture
def target():
    """A util-linux `unshare -n sleep 100` (its pid), killed by pid afterwards."""
    need_tool("unshare")
    p = subprocess.Popen(["unshare", "-n", "sleep", "100"])
    try:
        deadline = time.monotonic() + 10
        while ns_inode(p.pid, "net") == ns_inode(PID, "net"):  # until unshare has run
            assert time.monotonic() < deadline and p.poll() is None
            time.sleep(0.001)
        yield p.pid
    finally:
        p.kill()
        p.wait()


@pytest.fixture
def docker(paths, target):
    """docker's recipe: /run/netns/NAME -> /proc/PID/ns/net; (name, target's inode)."""
    path = paths("d")
    os.symlink(f"/proc/{target}/ns/net", path)
    return os.path.basename(path), ns_inode(target, "net")


def enter_on_a_thread(name) -> None:
    """nsfast.enter(name) on a thread of its own (never this one); its exception raised."""
    errors = []

    def run():
        try:
            with nsfast.enter(name):
                pass
        except BaseException as e:
            errors.append(e)
    t = threading.Thread(target=run)
    t.start()
    t.join()
    if errors:
        raise errors[0]


def child_net(p) -> int:
    """The net inode of a spawned child (it sleeps), which is then killed."""
    try:
        return ns_inode(p.pid, "net")
    finally:
        p.kill()
        p.wait()


# ---------------------------------------------------------------- 1. the docker symlink

def test_open_follows_a_symlink_to_a_net_namespace(docker):
    name, inode = docker
    with netns.open(name) as ns:
        assert ns.kind == nsfast.NsType.NET and ns.inode == inode
        assert ns.path == f"{RUN}/{name}"


def test_exec_spawn_and_enter_join_the_symlinked_namespace(docker):
    name, inode = docker
    assert child_net(netns.exec(name, ["sleep", "100"])) == inode
    assert child_net(nsfast.spawn(["sleep", "100"], netns=name)) == inode
    assert child_net(nsfast.spawn(["sleep", "100"], netns=os.fsencode(name))) == inode
    seen = []

    def inside():
        with nsfast.enter(name):
            seen.append(os.stat("/proc/thread-self/ns/net").st_ino)
        seen.append(os.stat("/proc/thread-self/ns/net").st_ino)
    t = threading.Thread(target=inside)
    t.start()
    t.join()
    assert seen == [inode, ns_inode(PID, "net")]


def test_cli_exec_unshare_identify_list_pids_use_the_symlink(docker, target):
    name, inode = docker
    want = f"net:[{inode}]\n".encode()
    assert run_cli("netns", "exec", name, "readlink", "/proc/self/ns/net",
                   check=True).stdout == want
    assert run_cli("unshare", f"--netns={name}", "readlink", "/proc/self/ns/net",
                   check=True).stdout == want
    assert name.encode() in run_cli("netns", "identify", str(target), check=True).stdout.split()
    assert name.encode() in run_cli("netns", "list", check=True).stdout.split()
    pids = run_cli("netns", "pids", name, check=True).stdout.split()
    assert str(target).encode() in pids and str(PID).encode() not in pids
    # ip itself agrees on what the name means
    r = subprocess.run(["ip", "netns", "exec", name, "readlink", "/proc/self/ns/net"],
                       capture_output=True, check=True, timeout=30)
    assert r.stdout == want


def test_links_act_in_the_symlinked_namespace(docker, target):
    name, _ = docker
    need_tool("nsenter")

    def lo_flags() -> bytes:
        r = subprocess.run(["nsenter", "-t", str(target), "-n", "ip", "-o", "link", "show", "lo"],
                           capture_output=True, check=True, timeout=30)
        return r.stdout.split(b"<", 1)[1].split(b">", 1)[0]
    assert b"UP" not in lo_flags().split(b",")
    netns.loopback_up(name)
    assert b"UP" in lo_flags().split(b",")


def test_remove_unlinks_the_symlink_and_leaves_its_namespace(docker, target):
    name, inode = docker
    procs = mount_points().count(b"/proc")
    netns.remove(name)
    assert not os.path.lexists(f"{RUN}/{name}")
    assert ns_inode(target, "net") == inode and os.path.exists(f"/proc/{target}")
    assert mount_points().count(b"/proc") == procs  # nothing unmounted through the link


def test_remove_of_a_symlink_to_a_named_namespace_keeps_that_mount(paths):
    real, link = paths("r"), paths("l")
    netns.add(os.path.basename(real))
    os.symlink(real, link)
    with netns.open(os.path.basename(link)) as ns:
        assert ns.inode == os.stat(real).st_ino
    netns.remove(os.path.basename(link))
    assert not os.path.lexists(link)
    assert os.fsencode(real) in mount_points()  # not unmounted through the link


def _uts_of(pid):
    return f"/proc/{pid}/ns/uts"


@pytest.mark.parametrize("what", ["regular file", "directory", "fifo", "uts namespace",
                                  "dangling"])
def test_a_symlink_to_anything_but_a_net_namespace_is_refused(paths, tmp_path, what):
    link = paths("x")
    name = os.path.basename(link)
    dest = {"regular file": tmp_path / "file", "directory": tmp_path,
            "fifo": tmp_path / "fifo", "uts namespace": _uts_of(PID),
            "dangling": tmp_path / "nothing"}[what]
    if what == "regular file":
        dest.write_text("keep")
    elif what == "fifo":
        os.mkfifo(dest)  # opening it for reading would block: it must not be opened
    os.symlink(dest, link)
    want = errno.ENOENT if what == "dangling" else errno.EINVAL
    calls = [netns.open, netns.pids, lambda n: netns.exec(n, ["true"]),
             lambda n: nsfast.spawn(["true"], netns=n), enter_on_a_thread]
    for call in calls:
        with pytest.raises(OSError) as info:
            call(name)
        assert info.value.errno == want, call
        assert info.value.filename == link
        assert str(dest) in str(info.value)
    r = run_cli("netns", "exec", name, "true")
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr.count(b"\n") == 1 and link.encode() in r.stderr
    assert b"Traceback" not in r.stderr
    if what == "regular file":
        assert dest.read_text() == "keep"


@pytest.mark.parametrize("bad", [b"", b".", b"..", b"a/b", b"../x", b"a\0b", b"x" * 256])
def test_bad_bytes_names_raise_valueerror_before_anything_is_touched(bad):
    def what_a_bad_name_could_hit():  # not the names other tests on this host add
        return sorted(m for m in mount_points() if m in (b"/", b"/run", RUN.encode())), \
            os.path.isdir(RUN)
    before = what_a_bad_name_could_hit()
    for call in (netns.add, netns.remove, netns.open, netns.pids,
                 lambda n: netns.exec(n, ["true"])):
        with pytest.raises(ValueError):
            call(bad)
    assert what_a_bad_name_could_hit() == before


# ---------------------------------------------------------------- 2. a killed add

def plant(path: str) -> int:
    """The empty file a killed add leaves; its inode."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    try:
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)


def is_namespace_mount(path: str) -> bool:
    with open("/proc/self/mountinfo", "rb") as f:
        return any(os.fsencode(e.mount_point) == os.fsencode(path) and e.fs_type == "nsfs"
                   for e in nsfast.mounts.parse_mountinfo(f.read()))


def test_add_over_an_empty_file_left_by_a_killed_add(paths):
    path = paths("k")
    name = os.path.basename(path)
    plant(path)
    assert name in netns.stale()
    r = run_cli("netns", "list", check=True)
    assert name.encode() in r.stdout.split()  # listed, as ip netns list does
    assert path.encode() in r.stderr and b"nsfast netns del" in r.stderr
    with pytest.raises(OSError) as info:
        netns.open(name)
    assert info.value.errno == errno.EINVAL and info.value.filename == path
    assert "del" in str(info.value)
    netns.add(name)
    assert is_namespace_mount(path)
    assert name not in netns.stale()
    assert subprocess.run(["ip", "netns", "exec", name, "true"], timeout=30).returncode == 0
    netns.remove(name)
    assert not os.path.lexists(path) and not is_namespace_mount(path)


def test_remove_deletes_an_empty_file(paths):
    path = paths("e")
    plant(path)
    netns.remove(os.path.basename(path))
    assert not os.path.lexists(path)


@pytest.mark.parametrize("kind", ["in progress", "not empty"])
def test_a_file_that_is_not_stale_is_kept(paths, kind):
    """An add in progress holds the file's flock; a file with content is not ours."""
    path = paths("p")
    name = os.path.basename(path)
    inode = plant(path)
    holder = os.open(path, os.O_RDWR)
    try:
        if kind == "in progress":
            fcntl.flock(holder, fcntl.LOCK_EX)
        else:
            os.write(holder, b"x")
        assert name not in netns.stale()
        with pytest.raises(FileExistsError):
            netns.add(name)
        assert os.lstat(path).st_ino == inode and not is_namespace_mount(path)
    finally:
        os.close(holder)
    if kind == "in progress":  # the lock is gone with its holder: now it is stale
        netns.add(name)
        assert is_namespace_mount(path)


def test_racing_adds_of_one_name_never_clean_each_other_away(paths):
    """8 threads add one name at once, 30 times: the cleanup of a killed add's file
    must never take the file of an add in progress (exactly one wins, one mount)."""
    path = paths("race")
    name = os.path.basename(path)
    for _ in range(30):
        start = threading.Barrier(8)
        results = []

        def racer():
            start.wait()
            try:
                netns.add(name)
                results.append("made")
            except FileExistsError:
                results.append("exists")
        threads = [threading.Thread(target=racer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == ["exists"] * 7 + ["made"]
        assert mount_points().count(os.fsencode(path)) == 1
        netns.remove(name)
        assert not os.path.lexists(path)


ADDER = """
import os, sys
from nsfast import netns
os.write(1, b"r")
netns.add(sys.argv[1])
"""


@pytest.mark.system   # fault injection: 100 adds killed at random moments
def test_sigkill_at_random_moments_of_add_leaves_nothing_behind(paths):
    """100 adds killed at random moments (at most 60 s): after each, add, list and
    remove leave neither a file nor a mount."""
    path = paths("z")
    name = os.path.basename(path)
    rng = random.Random(13)
    stale_seen = done = 0
    deadline = time.monotonic() + 60
    for _ in range(100):
        if time.monotonic() > deadline:
            break
        p = subprocess.Popen([sys.executable, "-c", ADDER, name], stdout=subprocess.PIPE)
        try:
            assert p.stdout.read(1) == b"r"
            time.sleep(rng.uniform(0, 0.004))
        finally:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            p.stdout.close()
        stale_seen += os.path.lexists(path) and not is_namespace_mount(path)
        try:
            netns.add(name)
        except FileExistsError:  # only a namespace the killed add had finished
            assert is_namespace_mount(path)
        done += 1
        assert name in netns.list() and is_namespace_mount(path)
        netns.remove(name)
        assert not os.path.lexists(path) and not is_namespace_mount(path)
    assert done >= 20, f"only {done} rounds in 60 s"
    print(f"{stale_seen} of {done} kills left an empty file")


# ---------------------------------------------------------------- 3. not UTF-8

RAW = f"nsft{PID}u-".encode() + b"\xff\xfe"
TEXT = os.fsdecode(RAW)


@pytest.fixture
def raw_name():
    """A netns name that is not UTF-8, whatever is left of it removed afterwards."""
    yield RAW
    forget(os.fsdecode(f"{RUN}/".encode() + RAW))


def test_not_utf8_name_through_the_api_with_ip_as_witness(raw_name):
    netns.add(raw_name)
    assert raw_name in ip_list()
    assert TEXT in netns.list() and netns.path_of(raw_name) == f"{RUN}/{TEXT}"
    with netns.open(raw_name) as a, netns.open(TEXT) as b:
        assert a == b and a.inode == os.stat(os.fsencode(f"{RUN}/{TEXT}")).st_ino
    p = netns.exec(raw_name, ["sleep", "100"])
    try:
        assert ns_inode(p.pid, "net") == a.inode
        assert netns.identify(p.pid) == [TEXT]
        assert p.pid in netns.pids(raw_name)
    finally:
        p.kill()
        p.wait()
    assert TEXT in netns.list_ids()
    netns.remove(raw_name)
    assert raw_name not in ip_list()
    assert os.fsencode(f"{RUN}/{TEXT}") not in mount_points()


def test_not_utf8_name_made_by_ip_is_removed_by_nsfast(raw_name):
    subprocess.run([b"ip", b"netns", b"add", raw_name], check=True, timeout=30)
    assert TEXT in netns.list()
    netns.remove(TEXT)
    assert raw_name not in ip_list()


def test_not_utf8_name_made_by_nsfast_is_removed_by_ip(raw_name):
    netns.add(raw_name)
    subprocess.run([b"ip", b"netns", b"del", raw_name], check=True, timeout=30)
    assert TEXT not in netns.list()
    assert os.fsencode(f"{RUN}/{TEXT}") not in mount_points()


def test_not_utf8_name_through_the_cli(raw_name):
    def cli(*args):
        r = subprocess.run([sys.executable, "-m", "nsfast.cli", *args], capture_output=True,
                           timeout=60)
        assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr
        return r.stdout
    cli(b"netns", b"add", raw_name)
    assert raw_name in ip_list()
    assert raw_name in cli(b"netns", b"list").split(b"\n")
    inode = os.stat(f"{RUN}/".encode() + raw_name).st_ino
    want = f"net:[{inode}]\n".encode()
    assert cli(b"netns", b"exec", raw_name, b"readlink", b"/proc/self/ns/net") == want
    assert cli(b"unshare", b"--netns=" + raw_name, b"readlink", b"/proc/self/ns/net") == want
    p = netns.exec(raw_name, ["sleep", "100"])
    try:
        assert cli(b"netns", b"identify", str(p.pid).encode()) == raw_name + b"\n"
        assert str(p.pid).encode() in cli(b"netns", b"pids", raw_name).split()
    finally:
        p.kill()
        p.wait()
    cli(b"netns", b"del", raw_name)
    assert raw_name not in ip_list()
    r = subprocess.run([sys.executable, "-m", "nsfast.cli", "netns", "del", raw_name],
                       capture_output=True, timeout=60)
    assert r.returncode == 1 and r.stderr.count(b"\n") == 1 and raw_name in r.stderr


MOUNTER = r"""
set -e
mount -t tmpfs t "$1"
d="$1/$(printf 'm\377')"
mkdir "$d" && mount -t tmpfs t "$d" && touch "$d/ns"
mount --bind /proc/self/ns/net "$d/ns"
echo ready
exec sleep 100
"""


@pytest.fixture
def odd_mounts(tmp_path):
    """A process in its own mount (and net) namespace with a tmpfs, and an nsfs bind
    of its netns, at paths that are not UTF-8; (pid, the nsfs mount point as bytes).
    The host's mount table is not touched."""
    need_tool("unshare")
    p = subprocess.Popen(["unshare", "-m", "-n", "--propagation", "private",
                          "sh", "-c", MOUNTER, "sh", str(tmp_path)], stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ready\n"
        yield p.pid, os.fsencode(tmp_path) + b"/m\xff/ns"
    finally:
        p.kill()
        p.wait()
        p.stdout.close()


def in_mounts_of(pid: int, *argv) -> subprocess.CompletedProcess:
    """argv run (by util-linux nsenter) in pid's mount namespace only."""
    need_tool("nsenter")
    return subprocess.run(["nsenter", "-t", str(pid), "-m", "--", *argv], capture_output=True,
                          timeout=60)


LISTER = """
import json, os, nsfast
infos = nsfast.list_namespaces()
print(json.dumps({"mnt": [i.inode for i in infos if i.kind == nsfast.NsType.MNT],
                  "nsfs": [os.fsencode(m).hex() for i in infos for m in i.mounts]}))
"""


def test_list_namespaces_and_ls_with_a_mount_point_that_is_not_utf8(odd_mounts):
    pid, point = odd_mounts
    mnt, net = ns_inode(pid, "mnt"), ns_inode(pid, "net")
    assert os.fsdecode(point) in [e.mount_point for e in nsfast.mounts.mountinfo(pid)]
    r = in_mounts_of(pid, sys.executable, "-c", LISTER)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert mnt in got["mnt"] and point.hex() in got["nsfs"]

    r = in_mounts_of(pid, sys.executable, "-m", "nsfast.cli", "ls")
    assert r.returncode == 0, r.stderr
    assert str(mnt).encode() in r.stdout.split()

    r = in_mounts_of(pid, sys.executable, "-m", "nsfast.cli", "ls", "-J")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout.decode("utf-8", "surrogateescape"))["namespaces"]
    assert mnt in [row["ns"] for row in rows]

    # the nsfs mount point in the NSFS column, as lsns shows it (witness)
    args = ["-t", "net", "-o", "NS,NSFS"]
    lsns_text = in_mounts_of(pid, "lsns", *args)
    ours_text = in_mounts_of(pid, sys.executable, "-m", "nsfast.cli", "ls", *args)
    assert ours_text.returncode == 0, ours_text.stderr
    row = [line for line in ours_text.stdout.splitlines() if line.split()[0] == str(net).encode()]
    assert row == [f"{net} ".encode() + point.replace(b"\xff", b"\\xff")]
    assert row[0] in lsns_text.stdout.splitlines()
    lsns_json = json.loads(in_mounts_of(pid, "lsns", "-J", *args).stdout
                           .decode("utf-8", "surrogateescape"))["namespaces"]
    ours_json = json.loads(in_mounts_of(pid, sys.executable, "-m", "nsfast.cli", "ls", "-J",
                                        *args).stdout.decode("utf-8", "surrogateescape"))
    want = {"ns": net, "nsfs": os.fsdecode(point)}
    assert want in lsns_json and want in ours_json["namespaces"]
