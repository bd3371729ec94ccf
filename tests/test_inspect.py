"""The inspection API against lsns -J, ls -l /proc/PID/ns, mountinfo and /proc links."""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

import nsfast
from nsfast import Namespace, NsType

from conftest import need_tool, ns_inode

OWN_KINDS = "net,uts,ipc"


def lsns_json(*args: str) -> list[dict] | None:
    """lsns -J -l ARGS; None when lsns itself tripped over a process that exited."""
    need_tool("lsns")
    r = subprocess.run(["lsns", "-J", "-l", *args], capture_output=True, text=True,
                       errors="surrogateescape")   # a command line need not be UTF-8
    return json.loads(r.stdout)["namespaces"] if r.returncode == 0 else None


def _pairs(rows) -> set:
    return {(r["ns"], r["type"]) for r in rows}


@pytest.fixture
def held(sleeper):
    """Three sleepers sharing new net, uts and ipc namespaces (stable while the test runs)."""
    first = sleeper(namespaces=OWN_KINDS)
    others = [sleeper(join=first.pid) for _ in range(2)]
    pids = sorted([first.pid] + [p.pid for p in others])
    inodes = {k: ns_inode(first.pid, k) for k in OWN_KINDS.split(",")}
    for pid in pids:
        assert {k: ns_inode(pid, k) for k in inodes} == inodes
    return pids, inodes


def test_namespaces_is_ls_l_proc_ns(sleeper):
    need_tool("ls")
    need_tool("unshare")
    # unshare stays in our pid namespace; the child it forks is pid 1 of the new one
    p = sleeper(["unshare", "--pid", "--fork", "--kill-child", "sleep", "600"])
    ours = nsfast.namespaces()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if ns_inode(p.pid, "pid_for_children") != ours["pid"]:
                break
        except FileNotFoundError:
            pass  # unshare(CLONE_NEWPID) done, its pid 1 not forked yet
        time.sleep(0.01)
    got = nsfast.namespaces(p.pid)
    out = subprocess.run(["ls", "-l", f"/proc/{p.pid}/ns"], capture_output=True, text=True,
                         check=True).stdout
    witness = {}
    for line in out.splitlines():
        if "->" in line:
            name, link = line.split()[-3], line.split()[-1]
            witness[name] = int(link.split("[")[1].rstrip("]"))
    assert got == witness
    assert {"pid_for_children", "time_for_children"} <= set(got)
    assert got["pid"] == ours["pid"]
    assert got["pid_for_children"] != got["pid"]
    assert ours == nsfast.namespaces(os.getpid())


def _snapshot():
    """(lsns, ours) taken between two lsns runs that list the same namespaces.

    Other tests on this machine make and drop namespaces all the time: an
    attempt where anything changed meanwhile is retried; CI runs alone."""
    for _ in range(20):
        before = lsns_json()
        mine = nsfast.list_namespaces()
        after = lsns_json()
        if before is None or after is None or _pairs(before) != _pairs(after):
            continue
        if _pairs(after) == {(i.inode, i.kind.proc_name) for i in mine if i.nprocs}:
            break
    return after, mine


@pytest.mark.system   # every namespace of every process, compared
def test_listing_agrees_with_lsns(held):
    pids, inodes = held
    lsns, mine = _snapshot()
    assert _pairs(lsns) == {(i.inode, i.kind.proc_name) for i in mine if i.nprocs}
    by_key = {(i.inode, i.kind.proc_name): i for i in mine}
    for row in lsns:
        # rows of processes that come and go are compared by their pairs above only
        if row["pid"] == 2 or row["ns"] in inodes.values():
            info = by_key[(row["ns"], row["type"])]
            assert (info.pid, info.user, info.command) == \
                (row["pid"], row["user"], row["command"])
    rows = {(r["ns"], r["type"]): r for r in lsns}
    for kind, ino in inodes.items():
        # counts only where stable: lsns counts itself in the namespaces we share
        info = by_key[(ino, kind)]
        assert info.nprocs == rows[(ino, kind)]["nprocs"]
        assert info.nprocs == 3
        assert info.pids == tuple(pids)
        assert info.pid == pids[0]
        assert info.command == "sleep 600"
        assert info.path == f"/proc/{pids[0]}/ns/{kind}"


def test_kinds_filter_and_parent_owner_agree_with_lsns(held, sleeper):
    _, inodes = held
    child = sleeper(namespaces="user,net")
    user_ino, net_ino = ns_inode(child.pid, "user"), ns_inode(child.pid, "net")
    mine = nsfast.list_namespaces("user,net")
    assert {i.kind for i in mine} == {NsType.USER, NsType.NET}
    by_key = {(i.inode, i.kind.proc_name): i for i in mine}
    rows = lsns_json("-o", "NS,TYPE,PNS,ONS") or lsns_json("-o", "NS,TYPE,PNS,ONS")
    assert rows is not None
    our_user = ns_inode(os.getpid(), "user")
    stable = {our_user, ns_inode(os.getpid(), "net"), user_ino, net_ino, inodes["net"]}
    compared = 0
    for row in rows:
        if row["ns"] in stable and row["type"] in ("user", "net"):
            compared += 1
            info = by_key[(row["ns"], row["type"])]
            assert (info.parent or 0, info.owner or 0) == (row["pns"], row["ons"]), row
    assert compared == len(stable)
    assert by_key[(user_ino, "user")].parent == our_user
    assert by_key[(net_ino, "net")].owner == user_ino
    assert by_key[(inodes["net"], "net")].owner == our_user
    assert by_key[(inodes["net"], "net")].parent is None


@pytest.fixture
def bind_target(tmp_path):
    target = tmp_path / f"core-uts-{os.getpid()}"
    target.touch()
    yield str(target)
    subprocess.run(["umount", str(target)], capture_output=True)


def test_namespace_held_only_by_a_bind_mount_is_listed_with_its_path(sleeper, bind_target):
    need_tool("mount")
    p = sleeper(namespaces="uts")
    ino = ns_inode(p.pid, "uts")
    subprocess.run(["mount", "--bind", f"/proc/{p.pid}/ns/uts", bind_target], check=True)
    p.kill()
    p.wait()
    assert os.stat(bind_target).st_ino == ino  # the witness: the mount still names it
    info = {i.inode: i for i in nsfast.list_namespaces("uts")}[ino]
    assert info.nprocs == 0 and info.pid is None
    assert info.mounts == (bind_target,)
    assert info.path == bind_target
    assert nsfast.nsfs_mounts()[("uts", ino)] == [bind_target]


def test_named_netns_from_ip_is_listed(tmp_path):
    need_tool("ip")
    name = f"core-inspect-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        ino = os.stat(f"/run/netns/{name}").st_ino
        info = {i.inode: i for i in nsfast.list_namespaces("net", with_netnsid=True)}[ino]
        assert f"/run/netns/{name}" in info.mounts
        assert info.nprocs == 0
        assert info.netnsid is None  # ip netns add assigns no id
        assert info.owner == ns_inode(os.getpid(), "user")
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def test_namespace_held_only_by_an_fd_is_listed(sleeper):
    p = sleeper(namespaces="ipc")
    ino = ns_inode(p.pid, "ipc")
    with Namespace.of(p.pid, "ipc") as handle:
        p.kill()
        p.wait()
        assert os.readlink(f"/proc/self/fd/{handle.fileno()}") == f"ipc:[{ino}]"
        info = {i.inode: i for i in nsfast.list_namespaces("ipc")}[ino]
        assert info.nprocs == 0
        assert info.held_by_fd
        assert (os.getpid(), handle.fileno()) in info.fds
        assert info.path == f"/proc/{os.getpid()}/fd/{handle.fileno()}"
    assert ino not in {i.inode for i in nsfast.list_namespaces("ipc")}


def test_processes_outside_init(held, sleeper):
    pids, _ = held
    plain = sleeper()
    ref = nsfast.init_namespaces()
    kinds = ["mnt", "net", "pid", "user", "uts", "ipc", "cgroup", "time"]
    outside = {p.pid: p for p in nsfast.processes_outside_init()}
    for pid in pids:
        witness = {k for k in kinds if ns_inode(pid, k) != ref[k]}
        assert {k.proc_name for k in outside[pid].kinds.kinds()} == witness
        assert witness == {"net", "uts", "ipc"}
        assert outside[pid].command == "sleep 600"
    assert plain.pid not in outside
    assert os.getpid() not in outside
