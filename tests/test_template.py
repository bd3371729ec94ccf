"""Sandboxes started from a template mount namespace (nsfast/template.py):
the payload's mount table is the template's small one whatever the host's,
its namespaces but the user namespace are the caller's, and its user
namespace is the one made ahead for its id lease.  Witnessed through
/proc/<pid>/ns/*, NS_GET_USERNS, the payload's own mountinfo and uid_map."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import nsfast
from nsfast import _core, template
from conftest import need_root

PY = sys.executable


def _owner_inode(path: str) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        owner = _core.ns_get_userns(fd)
    except OSError:
        os.close(fd)
        raise
    os.close(fd)
    try:
        return os.fstat(owner).st_ino
    finally:
        os.close(owner)


@pytest.fixture
def sleeper_box():
    need_root()
    box = nsfast.Sandbox()
    procs: list = []

    def start():
        p = box.spawn(["sleep", "60"])
        procs.append(p)
        # the payload has exec'd once its exe is sleep
        while not os.readlink(f"/proc/{p.pid}/exe").endswith("sleep"):
            pass
        return p
    yield box, start
    for p in procs:
        p.kill()
        p.wait()
    box.close()


def test_a_root_sandbox_starts_from_a_template(sleeper_box):
    box, start = sleeper_box
    assert box.spawn_options()["template"] is not None
    p = start()
    host_user = os.stat("/proc/self/ns/user").st_ino
    # its mount, pid and net namespaces are the caller's user namespace's ...
    for kind in ("mnt", "pid", "net", "uts", "ipc"):
        assert _owner_inode(f"/proc/{p.pid}/ns/{kind}") == host_user, kind
    # ... and it lives in the user namespace made for its lease
    payload_user = os.stat(f"/proc/{p.pid}/ns/user").st_ino
    assert payload_user != host_user
    assert payload_user == os.fstat(p._id_lease.user_ns(0)).st_ino
    with open(f"/proc/{p.pid}/uid_map") as f:
        assert f.read().split() == ["0", str(p._id_lease.start), "65536"]
    with open(f"/proc/{p.pid}/mountinfo") as f:
        points = [line.split()[4] for line in f]
    assert points[0] == "/" and "/proc" in points and "/tmp" in points
    assert not any(m.startswith("/sys/fs/cgroup") for m in points)   # left out


def test_two_running_payloads_have_their_own_user_namespaces(sleeper_box):
    _, start = sleeper_box
    a, b = start(), start()
    assert os.stat(f"/proc/{a.pid}/ns/user").st_ino != os.stat(f"/proc/{b.pid}/ns/user").st_ino
    with open(f"/proc/{a.pid}/uid_map") as fa, open(f"/proc/{b.pid}/uid_map") as fb:
        assert fa.read() != fb.read()


def test_nested_user_namespaces_are_capped_in_the_lease_namespace(sleeper_box):
    box, _ = sleeper_box
    r = box.run(["sh", "-c", "cat /proc/sys/user/max_user_namespaces"])
    assert r.stdout == b"0\n"


def test_the_payload_mount_table_does_not_follow_the_hosts():
    """With 1,000 more mounts in the caller's mount namespace, the payload's
    table is as small as without them (in a separate interpreter, which
    makes the mounts in a mount namespace of its own)."""
    need_root()
    code = textwrap.dedent("""
        import os, sys, tempfile, nsfast
        from nsfast import _core, mounts
        def table():
            with nsfast.Sandbox() as box:
                r = box.run(["sh", "-c", "wc -l < /proc/self/mountinfo"])
            return int(r.stdout)
        before = table()
        _core.unshare(0x00020000)                      # CLONE_NEWNS, this process only
        mounts.set_propagation("/", "private")
        top = tempfile.mkdtemp()
        mounts.tmpfs(top)
        for i in range(1000):
            os.mkdir(f"{top}/{i}")
            mounts.tmpfs(f"{top}/{i}")
        with open("/proc/self/mountinfo") as f:
            host = len(f.readlines())
        print(before, table(), host)
    """)
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    before, after, host = map(int, r.stdout.split())
    assert host > 1000
    assert after == before and after < 40


@pytest.mark.parametrize("options, exc", [
    (dict(template="x"), TypeError),
    (dict(user_ns=0), ValueError),
    (dict(namespaces="pid", template=None, user_ns=0), ValueError),
])
def test_bad_template_options_before_any_syscall(options, exc):
    with pytest.raises(exc):
        nsfast.spawn(["/bin/true"], **options)


def test_template_needs_a_mount_namespace_and_no_root():
    need_root()
    t = template.MountTemplate()
    try:
        with pytest.raises(ValueError, match="mnt"):
            nsfast.spawn(["/bin/true"], namespaces="pid", template=t)
        with pytest.raises(ValueError, match="root="):
            nsfast.spawn(["/bin/true"], namespaces="mnt", template=t, root="/")
        with pytest.raises(ValueError, match="max_user_namespaces"):
            nsfast.spawn(["/bin/true"], namespaces="mnt,user", template=t, map_root=True,
                         max_user_namespaces=0)
    finally:
        t.close()


def test_the_template_is_opt_out_by_name_and_refused_where_it_cannot_hold():
    need_root()
    with nsfast.Sandbox(mount_template=False) as box:
        assert "template" not in box.spawn_options()
        r = box.run(["sh", "-c", "id -u"])
        assert r.stdout == b"0\n"
    with pytest.raises(ValueError, match="capabilit"):
        nsfast.Sandbox(mount_template=True, capabilities=None)
    # capabilities kept: the usual path, whose namespaces the payload owns
    with nsfast.Sandbox(capabilities=["CAP_NET_ADMIN"]) as box:
        assert "template" not in box.spawn_options()


def test_without_minimal_dev_the_template_keeps_the_hosts_dev():
    need_root()
    with nsfast.Sandbox(minimal_dev=False) as box:
        assert box.spawn_options()["template"] is not None
        r = box.run(["sh", "-c", "head -c1 /dev/zero | od -An -tx1; test -e /dev/vda || "
                     "test -d /dev/pts && echo host"])
    assert r.returncode == 0 and r.stdout.split() == [b"00", b"host"], r


def test_a_lease_is_freed_by_an_ended_payload_that_its_owner_reaps():
    """The Sandbox looks for ended payloads without reaping them (a thread
    may be waiting for one): the zombie stays for its owner, whose wait
    gets its status and usage (witness: /proc/<pid>/stat)."""
    need_root()
    with nsfast.Sandbox() as box:
        p = box.spawn(["sh", "-c", "exit 7"])
        while not p.ended():
            pass
        with open(f"/proc/{p.pid}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[0] == "Z"
        q = box.spawn(["true"])           # takes p's range: p has ended
        assert q._id_lease is p._id_lease
        with open(f"/proc/{p.pid}/stat") as f:   # still its owner's to reap
            assert f.read().rsplit(")", 1)[1].split()[0] == "Z"
        assert p.wait() == 7 and p.usage.exit_code == 7
        assert q.wait() == 0
