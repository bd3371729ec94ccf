"""nsfast.mounts against the real kernel, witnessed with findmnt and /proc/PID/mountinfo.

The in-place functions change the caller's mount namespace, so every call runs
in an agent: a Python child made by nsfast.spawn (in a new mount namespace, or
in the host's for the host side of the propagation tests) that executes the
snippets the test sends it.  Host mounts a test makes live on a private tmpfs
under a temp dir and are torn down; an autouse fixture checks that the host's
/proc/self/mountinfo lines of those temp dirs, / and /proc are byte for byte
what they were before each test (the rest of the table is other processes').
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

import nsfast
from nsfast import mounts
from conftest import need, need_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(nsfast.__file__)))
TAG = f"nsfast-mounts-{os.getpid()}"

# Runs JSON-encoded snippets from stdin; everything it needs is imported
# up front, because after a pivot_root the old tree (and the stdlib) is gone.
AGENT = r"""
import json, os, subprocess, sys
from nsfast import mounts, _core
g = {"os": os, "subprocess": subprocess, "mounts": mounts, "_core": _core}
for line in sys.stdin:
    g["result"] = None
    try:
        exec(json.loads(line), g)
        out = {"ok": True, "result": g["result"]}
    except BaseException as e:
        out = {"ok": False, "type": type(e).__name__, "errno": getattr(e, "errno", None),
               "filename": getattr(e, "filename", None), "msg": str(e)}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
"""


class Agent:
    """A Python child executing snippets in its own (or the host's) mount namespace."""

    def __init__(self, namespaces=None, propagation="private", **kw):
        env = dict(os.environ, PYTHONPATH=ROOT)
        if namespaces:
            kw["propagation"] = propagation
        self.proc = nsfast.spawn([sys.executable, "-c", AGENT], namespaces=namespaces,
                                 stdin=nsfast.PIPE, stdout=nsfast.PIPE, env=env, **kw)
        self.pid = self.proc.pid

    def _send(self, code: str) -> dict:
        self.proc.stdin.write((json.dumps(code) + "\n").encode())
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"agent {self.pid} died"
        return json.loads(line)

    def run(self, code: str):
        """Run code; return its `result`, or fail the test with the agent's error."""
        out = self._send(code)
        assert out["ok"], f"agent failed: {out}"
        return out["result"]

    def fails(self, code: str) -> dict:
        """Run code that must raise; return the exception's type, errno, filename, msg."""
        out = self._send(code)
        assert not out["ok"], f"expected an exception from {code!r}, got {out['result']!r}"
        return out

    def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def _host_mounts_we_could_change() -> list[bytes]:
    """The host's mountinfo lines at our temp dirs, / and /proc: where a test's
    own mount, or one leaking from an agent, would land.  Other processes on
    this host mount elsewhere meanwhile: their lines are not compared."""
    with open("/proc/self/mountinfo", "rb") as f:
        lines = f.read().splitlines()
    return [line for line in lines
            if TAG.encode() in line.split()[4] or line.split()[4] in (b"/", b"/proc")]


@pytest.fixture(autouse=True)
def host_mounts_unchanged():
    """Nothing leaks: the host's mounts that a test could change are as they were."""
    before = _host_mounts_we_could_change()
    yield
    assert _host_mounts_we_could_change() == before, "the test left the host's mounts changed"


@pytest.fixture
def agents():
    made = []

    def make(namespaces=None, propagation="private", **kw):
        a = Agent(namespaces, propagation, **kw)
        made.append(a)
        return a

    yield make
    for a in made:
        a.close()


@pytest.fixture
def workdir():
    """A temp dir on the host; anything mounted under it is lazily unmounted after."""
    d = tempfile.mkdtemp(prefix=TAG + "-")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-R", "-l", d], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def shared_point(workdir, agents):
    """(host agent, S): S a shared tmpfs on a private tmpfs in a temp dir of the host."""
    host = agents()
    s = os.path.join(workdir, "s")
    host.run(f"mounts.tmpfs({workdir!r}); mounts.set_propagation({workdir!r}, 'private');"
             f"os.mkdir({s!r}); mounts.tmpfs({s!r}); mounts.set_propagation({s!r}, 'shared')")
    yield host, s
    subprocess.run(["umount", "-R", "-l", workdir], capture_output=True)


def findmnt(pid: int) -> dict:
    """target -> findmnt's row for the mount table of pid (the last mount wins)."""
    r = subprocess.run([need_tool("findmnt"), "--task", str(pid), "-J", "-l", "-o",
                        "ID,PARENT,MAJ:MIN,FSROOT,TARGET,FSTYPE,SOURCE,VFS-OPTIONS,"
                        "FS-OPTIONS,PROPAGATION"], capture_output=True, text=True, check=True,
                       errors="surrogateescape")   # a host mount point need not be UTF-8
    return {m["target"]: m for m in json.loads(r.stdout)["filesystems"]}


def raw_tags(pid: int, mount_point: str) -> list[str]:
    """The optional fields of mount_point's line in /proc/PID/mountinfo, read raw."""
    tags = None
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            if fields[4] == mount_point:
                tags = fields[6:fields.index("-")]
    assert tags is not None, f"{mount_point} is not mounted in {pid}'s namespace"
    return tags


def tag_value(tags: list[str], name: str) -> int:
    [value] = [t.split(":")[1] for t in tags if t.startswith(name + ":")]
    return int(value)


# ---------------------------------------------------------------- propagation

def cross_mount(shared_point, agents, mode: str, method: str = "auto"):
    """A child namespace made after S was shared sets S to mode; then the host
    and the child each mount a tmpfs under S.  Returns (child, S, whether the
    child sees the host's mount, whether the host sees the child's)."""
    host, s = shared_point
    child = agents("mnt", propagation="unchanged")
    child.run(f"mounts.set_propagation({s!r}, {mode!r}, method={method!r})")
    os.mkdir(f"{s}/from_host")
    os.mkdir(f"{s}/from_child")
    host.run(f"mounts.tmpfs({s + '/from_host'!r})")
    child.run(f"mounts.tmpfs({s + '/from_child'!r})")
    return (child, s, f"{s}/from_host" in findmnt(child.pid),
            f"{s}/from_child" in findmnt(os.getpid()))


@pytest.mark.parametrize("method", ["mount_setattr", "mount"])
def test_shared_mounts_propagate_both_ways(shared_point, agents, method):
    child, s, child_sees, host_sees = cross_mount(shared_point, agents, "shared", method)
    assert child_sees and host_sees
    group = tag_value(raw_tags(os.getpid(), s), "shared")
    assert tag_value(raw_tags(child.pid, s), "shared") == group
    assert findmnt(child.pid)[s]["propagation"] == "shared"


@pytest.mark.parametrize("method", ["mount_setattr", "mount"])
def test_slave_receives_but_does_not_send(shared_point, agents, method):
    child, s, child_sees, host_sees = cross_mount(shared_point, agents, "slave", method)
    assert child_sees and not host_sees
    tags = raw_tags(child.pid, s)
    assert tag_value(tags, "master") == tag_value(raw_tags(os.getpid(), s), "shared")
    assert not any(t.startswith("shared:") for t in tags)
    assert "slave" in findmnt(child.pid)[s]["propagation"]
    [entry] = [e for e in mounts.mountinfo(child.pid) if e.mount_point == s]
    assert (entry.propagation, entry.master) == ("slave", tag_value(tags, "master"))


@pytest.mark.parametrize("method", ["mount_setattr", "mount"])
def test_private_sees_nothing_either_way(shared_point, agents, method):
    child, s, child_sees, host_sees = cross_mount(shared_point, agents, "private", method)
    assert not child_sees and not host_sees
    assert raw_tags(child.pid, s) == []
    assert findmnt(child.pid)[s]["propagation"] == "private"


def test_recursive_flag_reaches_submounts_only_when_set(workdir, agents):
    a = agents("mnt")
    sub = f"{workdir}/sub"
    a.run(f"mounts.tmpfs({workdir!r}); os.mkdir({sub!r}); mounts.tmpfs({sub!r});"
          f"mounts.set_propagation({workdir!r}, 'shared', recursive=False)")
    rows = findmnt(a.pid)
    assert (rows[workdir]["propagation"], rows[sub]["propagation"]) == ("shared", "private")
    a.run(f"mounts.set_propagation({workdir!r}, 'shared')")
    assert findmnt(a.pid)[sub]["propagation"] == "shared"


def test_unbindable_refuses_a_bind(workdir, agents):
    a = agents("mnt")
    src, dst = f"{workdir}/u", f"{workdir}/dst"
    a.run(f"mounts.tmpfs({workdir!r}); os.mkdir({src!r}); os.mkdir({dst!r});"
          f"mounts.tmpfs({src!r}); mounts.set_propagation({src!r}, 'unbindable')")
    assert findmnt(a.pid)[src]["propagation"] == "private,unbindable"
    assert "unbindable" in raw_tags(a.pid, src)
    err = a.fails(f"mounts.bind({src!r}, {dst!r})")
    assert (err["errno"], err["filename"]) == (errno.EINVAL, src)
    assert "unbindable" in err["msg"]
    assert dst not in findmnt(a.pid)


def test_not_a_mount_point_is_a_clear_error(workdir, agents):
    a = agents("mnt")
    plain = f"{workdir}/plain"
    os.mkdir(plain)
    err = a.fails(f"mounts.set_propagation({plain!r}, 'private')")
    assert (err["errno"], err["filename"]) == (errno.EINVAL, plain)
    assert "not a mount point" in err["msg"]


def test_repeated_arguments_fail_as_clearly_as_new_ones(workdir, agents):
    """A second call with the same arguments skips validation (the compiled
    path): once the mount is gone it must fail with the same error, and it
    must really change the mode while the mount is there."""
    a = agents("mnt")
    m = f"{workdir}/m"
    os.mkdir(m)
    a.run(f"mounts.tmpfs({m!r}); mounts.set_propagation({m!r}, 'shared');"
          f"mounts.set_propagation({m!r}, 'private'); mounts.set_propagation({m!r}, 'shared')")
    assert [e.propagation for e in mounts.mountinfo(a.pid) if e.mount_point == m] == ["shared"]
    for args, mode in ((f"{m!r}, 'private', method='mount'", "private"),
                       (f"{m!r}, 'shared', recursive=False", "shared"),
                       (f"{m!r}, 'private', method='mount'", "private"),
                       (f"{m!r}, 'shared', recursive=False", "shared")):
        a.run(f"mounts.set_propagation({args})")   # the second round: arguments seen
        assert [e.propagation for e in mounts.mountinfo(a.pid) if e.mount_point == m] == [mode]
    a.run(f"_core.umount2({os.fsencode(m)!r}, 0)")
    err = a.fails(f"mounts.set_propagation({m!r}, 'shared')")
    assert (err["errno"], err["filename"]) == (errno.EINVAL, m)
    assert "not a mount point" in err["msg"]
    gone = f"{workdir}/gone"
    a.run(f"os.mkdir({gone!r}); mounts.tmpfs({gone!r}); mounts.set_propagation({gone!r}, 'slave');"
          f"_core.umount2({os.fsencode(gone)!r}, 0); os.rmdir({gone!r})")
    err = a.fails(f"mounts.set_propagation({gone!r}, 'slave')")
    assert (err["type"], err["filename"]) == ("FileNotFoundError", gone)


# ---------------------------------------------------------------- seed scenario

@pytest.fixture
def two_mount_points(workdir):
    """Two loop-mounted ext4 images on the host when loop devices work, else tmpfs."""
    loops = []
    points = [f"{workdir}/m1", f"{workdir}/m2"]
    use_loop = os.path.exists("/dev/loop-control") and shutil.which("losetup") and \
        shutil.which("mkfs.ext4")
    try:
        for i, mp in enumerate(points):
            os.mkdir(mp)
            if use_loop:
                img = f"{workdir}/img{i}"
                with open(img, "wb") as f:
                    f.truncate(4 << 20)
                subprocess.run(["mkfs.ext4", "-q", img], check=True)
                dev = subprocess.run(["losetup", "-f", "--show", img], check=True,
                                     capture_output=True, text=True).stdout.strip()
                loops.append(dev)
                subprocess.run(["mount", dev, mp], check=True)
            else:
                subprocess.run(["mount", "-t", "tmpfs", "tmpfs", mp], check=True)
            with open(f"{mp}/marker", "w") as f:
                f.write(mp)
        yield points
    finally:
        for mp in reversed(points):
            subprocess.run(["umount", mp], capture_output=True)
        for dev in loops:
            subprocess.run(["losetup", "-d", dev], capture_output=True)


def test_new_namespace_mounts_and_unmounts_stay_inside(two_mount_points, agents):
    m1, m2 = two_mount_points
    os.mkdir(f"{m1}/inner")
    a = agents("mnt")
    a.run(f"mounts.tmpfs({m1 + '/inner'!r}); _core.umount2({m2.encode()!r}, 0)")
    inside, host = findmnt(a.pid), findmnt(os.getpid())
    assert f"{m1}/inner" in inside and f"{m1}/inner" not in host
    assert m2 not in inside and m2 in host
    with open(f"{m2}/marker") as f:
        assert f.read() == m2
    assert a.run(f"result = os.path.exists({m2 + '/marker'!r})") is False


# ---------------------------------------------------------------- proc, ro bind

def test_mount_proc_shows_only_the_namespace(agents):
    host_pids_before = {p for p in os.listdir("/proc") if p.isdigit()}
    a = agents("mnt,pid")
    a.run("mounts.mount_proc()")
    assert a.run("result = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())") == [1]
    ps = a.run("result = subprocess.run(['ps', '-eo', 'pid='], capture_output=True, "
               "text=True).stdout.split()")
    assert sorted(map(int, ps)) == [1, 2]  # the agent and ps itself
    inside = findmnt(a.pid)["/proc"]
    host = findmnt(os.getpid())["/proc"]
    assert inside["maj:min"] != host["maj:min"]
    assert str(os.getpid()) in os.listdir("/proc")
    assert len(host_pids_before & {p for p in os.listdir("/proc") if p.isdigit()}) > 1


def test_readonly_bind_refuses_writes_recursively(workdir, agents):
    a = agents("mnt")
    src, dst = f"{workdir}/src", f"{workdir}/dst"
    a.run(f"mounts.tmpfs({workdir!r}); os.makedirs({src + '/sub'!r}); os.mkdir({dst!r});"
          f"mounts.tmpfs({src + '/sub'!r}); mounts.bind({src!r}, {dst!r}, readonly=True)")
    for path in (f"{dst}/f", f"{dst}/sub/f"):
        err = a.fails(f"open({path!r}, 'w')")
        assert err["errno"] == errno.EROFS, path
    a.run(f"open({src + '/f'!r}, 'w').close(); open({src + '/sub/f'!r}, 'w').close()")
    rows = findmnt(a.pid)
    assert rows[dst]["vfs-options"].split(",")[0] == "ro"
    assert rows[f"{dst}/sub"]["vfs-options"].split(",")[0] == "ro"
    assert rows[f"{src}/sub"]["vfs-options"].split(",")[0] == "rw"


def test_readonly_bind_in_a_user_namespace_over_locked_mounts(workdir, agents):
    # inherited mounts are locked in a less privileged user namespace: they
    # cannot be unmounted, but a read-only bind of them is allowed and holds
    src, dst = f"{workdir}/src", f"{workdir}/dst"
    os.mkdir(src)
    os.mkdir(dst)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", src], check=True)
    try:
        a = agents("user,mnt", map_root=True)
        assert a.fails(f"_core.umount2({src.encode()!r}, 0)")["errno"] == errno.EINVAL
        a.run(f"mounts.bind({src!r}, {dst!r}, readonly=True)")
        assert a.fails(f"open({dst + '/f'!r}, 'w')")["errno"] == errno.EROFS
        assert findmnt(a.pid)[dst]["vfs-options"].split(",")[0] == "ro"
    finally:
        subprocess.run(["umount", "-l", src], check=True)


def test_tmpfs_size_and_mode(workdir, agents):
    a = agents("mnt")
    a.run(f"mounts.tmpfs({workdir!r}, size=1 << 20, mode=0o700)")
    row = findmnt(a.pid)[workdir]
    assert row["fstype"] == "tmpfs"
    assert "size=1024k" in row["fs-options"] and "mode=700" in row["fs-options"]


def test_spawn_steps_bind_readonly_and_tmpfs(workdir):
    src, dst, scratch = f"{workdir}/src", f"{workdir}/dst", f"{workdir}/scratch"
    for d in (src, dst, scratch):
        os.mkdir(d)
    p = nsfast.spawn(["sh", "-c", f"touch {scratch}/ok && touch {dst}/no"], namespaces="mnt",
                     mounts=[nsfast.Tmpfs(scratch), nsfast.Bind(src, dst, readonly=True)],
                     stderr=nsfast.PIPE)
    _, err = p.communicate(timeout=30)
    assert p.returncode != 0 and b"Read-only file system" in err
    assert os.listdir(scratch) == [] and os.listdir(dst) == []


# ---------------------------------------------------------------- pivot_root

@pytest.fixture
def busybox_root(workdir):
    """A minimal root: /bin/busybox with sh and ls links, /proc, /etc/marker."""
    bb = shutil.which("busybox")
    if bb is None and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "busybox-static"],
                       capture_output=True)
        bb = shutil.which("busybox")
    need(bb is not None, "busybox (Debian package busybox-static)")
    root = f"{workdir}/root"
    for d in ("bin", "proc", "etc"):
        os.makedirs(f"{root}/{d}")
    shutil.copy(bb, f"{root}/bin/busybox")
    for applet in ("sh", "ls", "cat"):
        os.symlink("busybox", f"{root}/bin/{applet}")
    with open(f"{root}/etc/marker", "w") as f:
        f.write("inside")
    return root


def test_pivot_root_shows_only_the_new_tree(busybox_root, agents):
    a = agents("mnt,pid")
    a.run(f"mounts.pivot_root({busybox_root!r}); mounts.mount_proc('/proc')")
    assert sorted(a.run("result = os.listdir('/')")) == ["bin", "etc", "proc"]
    ls = a.run("result = subprocess.run(['/bin/ls', '/'], capture_output=True, "
               "text=True).stdout.split()")
    assert ls == ["bin", "etc", "proc"]
    table = a.run("result = subprocess.run(['/bin/cat', '/proc/self/mountinfo'], "
                  "capture_output=True, text=True).stdout.splitlines()")
    assert [line.split()[4] for line in table] == ["/", "/proc"]
    assert a.run("result = open('/etc/marker').read()") == "inside"
    # the witness from outside: only the new root and its proc are left
    assert sorted(findmnt(a.pid)) == ["/", "/proc"]


def test_pivot_root_under_a_shared_parent(busybox_root, workdir, agents):
    # pivot_root(2) refuses a shared parent with EINVAL; ours makes it private first
    a = agents("mnt", propagation="unchanged")
    a.run(f"mounts.bind({workdir!r}, {workdir!r}); mounts.set_propagation({workdir!r}, 'shared')")
    assert findmnt(a.pid)[workdir]["propagation"] == "shared"
    a.run(f"mounts.pivot_root({busybox_root!r})")
    assert sorted(a.run("result = os.listdir('/')")) == ["bin", "etc", "proc"]


def test_pivot_root_refused_in_pid1s_mount_namespace(busybox_root, agents):
    # the agent is pid 1 of its pid namespace, so it shares pid 1's mount ns
    a = agents("mnt,pid")
    a.run("mounts.mount_proc()")
    err = a.fails(f"mounts.pivot_root({busybox_root!r})")
    assert err["type"] == "RuntimeError" and "pid 1" in err["msg"]


def test_spawn_pivot_root_into_busybox(busybox_root):
    p = nsfast.spawn(["/bin/ls", "/"], namespaces="mnt", root=busybox_root, pivot_root=True,
                     stdout=nsfast.PIPE, env={"PATH": "/bin"})
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0 and out.split() == [b"bin", b"etc", b"proc"]


# ---------------------------------------------------------------- mountinfo

def test_mountinfo_matches_findmnt_with_escapes(workdir, agents):
    a = agents("mnt")
    odd = [f"{workdir}/a b", f"{workdir}/tab\there", f"{workdir}/back\\slash"]
    a.run(f"mounts.tmpfs({workdir!r}); mounts.set_propagation({workdir!r}, 'shared')\n"
          f"for p in {odd!r}:\n os.mkdir(p); mounts.tmpfs(p)\n"
          f"mounts.set_propagation({odd[0]!r}, 'unbindable')")
    with open(f"/proc/{a.pid}/mountinfo", "rb") as f:
        assert b"a\\040b" in f.read()  # the kernel escaped it; we must decode
    ours = {e.mount_id: e for e in mounts.mountinfo(a.pid)}
    theirs = {int(m["id"]): m for m in findmnt(a.pid).values()}
    assert set(theirs) <= set(ours)
    for mid, m in theirs.items():
        e = ours[mid]
        assert (e.parent_id, f"{e.major}:{e.minor}", e.root, e.mount_point, e.fs_type) == \
            (int(m["parent"]), m["maj:min"], m["fsroot"], m["target"], m["fstype"])
        assert ",".join(e.options) == m["vfs-options"]
        assert ",".join(e.super_options) == m["fs-options"]
        expect = {"private": "private", "shared": "shared", "private,slave": "slave",
                  "shared,slave": "shared,slave", "private,unbindable": "unbindable"}
        assert e.propagation == expect[m["propagation"]]
    by_point = {e.mount_point: e for e in ours.values()}
    assert all(p in by_point for p in odd)
    assert by_point[odd[0]].propagation == "unbindable"
    assert by_point[odd[1]].peer_group is not None


@pytest.mark.unit
def test_parse_mountinfo_optional_fields():
    text = (b"36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 propagate_from:2 - "
            b"ext3 /dev/root rw,errors=continue\n"
            b"37 35 98:0 / /x rw shared:4 master:3 - tmpfs tmp\\134fs rw\n")
    a, b = mounts.parse_mountinfo(text)
    assert (a.mount_point, a.propagation, a.master, a.propagate_from, a.peer_group) == \
        ("/mnt 2", "slave", 1, 2, None)
    assert a.super_options == ("rw", "errors=continue") and a.options == ("rw", "noatime")
    assert (b.propagation, b.peer_group, b.master, b.source) == ("shared,slave", 4, 3,
                                                                 "tmp\\fs")


# ---------------------------------------------------------------- bad input

def test_missing_paths_raise_file_not_found_with_the_path(workdir, agents):
    a = agents("mnt")
    there, gone = f"{workdir}/there", f"{workdir}/gone"
    os.mkdir(there)
    for code, path in ((f"mounts.bind({gone!r}, {there!r})", gone),
                       (f"mounts.bind({there!r}, {gone!r})", gone),
                       (f"mounts.tmpfs({gone!r})", gone),
                       (f"mounts.mount_proc({gone!r})", gone),
                       (f"mounts.set_propagation({gone!r}, 'private')", gone),
                       (f"mounts.pivot_root({gone!r})", gone)):
        err = a.fails(code)
        assert (err["type"], err["filename"]) == ("FileNotFoundError", path), code


def test_bad_arguments_raise_value_error(agents):
    a = agents("mnt")
    for code in ("mounts.set_propagation('/', 'rshared')",
                 "mounts.set_propagation('/', None)",
                 "mounts.set_propagation('relative', 'private')",
                 "mounts.set_propagation('/', 'private', method='fast')",
                 "mounts.bind('etc', '/mnt')",
                 "mounts.bind('/etc', 'mnt')",
                 "mounts.tmpfs('tmp')",
                 "mounts.tmpfs('/tmp', size=-1)",
                 "mounts.tmpfs('/tmp', mode=0o17777)",
                 "mounts.mount_proc('proc')",
                 "mounts.pivot_root('root')",
                 "mounts.mountinfo(-1)"):
        assert a.fails(code)["type"] == "ValueError", code
    assert a.fails("mounts.mountinfo('1')")["type"] == "TypeError"
    assert a.fails("mounts.mountinfo(2 ** 22 + 1)")["type"] == "ProcessLookupError"


def test_spawn_bind_of_missing_source_names_it(workdir):
    gone, there = f"{workdir}/gone", f"{workdir}/there"
    os.mkdir(there)
    with pytest.raises(FileNotFoundError) as e:
        nsfast.spawn(["true"], namespaces="mnt", mounts=[nsfast.Bind(gone, there)])
    assert e.value.filename == gone
