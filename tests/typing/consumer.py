"""A consumer of nsfast's public API, as another tool would write it.

Never run: `mypy --strict` checks it (tests/test_typing.py).  Each public name
is used the way the README shows it, and the results a caller relies on are
pinned with assert_type, so that an annotation that is wrong, or that decays
to Any, fails the check.
"""
from __future__ import annotations

import signal
import socket
from typing import Any, Optional

from typing_extensions import assert_type

import nsfast
from nsfast import (Bridge, Limits, Namespace, NamespaceInfo, NetnsPool, NsType, Process,
                    Sandbox, Usage, enter, list_namespaces, netns, spawn)


def spawn_and_wait() -> tuple[bytes, int]:
    p = spawn(["sh", "-c", "id -u"], namespaces="user,mnt,pid", map_root=True,
              mount_proc=True, hostname="box", stdout=nsfast.PIPE)
    assert_type(p, Process)
    out, err = p.communicate(timeout=10)
    assert_type(out, Optional[bytes])
    assert out is not None and err is None
    assert_type(p.poll(), Optional[int])
    p.send_signal(signal.SIGTERM)
    status = p.wait(timeout=1.5)
    assert_type(status, int)
    for kind, ns in p.namespaces().items():
        assert_type(kind, NsType)
        assert_type(ns, Namespace)
        ns.close()
    plan = nsfast.SpawnPlan([b"/bin/true"], namespaces="net")
    assert_type(spawn(plan).wait(), int)
    return out, status


def with_limits() -> Optional[str]:
    limits = Limits(memory="256M", pids=64, cpu=0.5, cpu_time=2, wall_time=5.0,
                    fsize="16M", nofile=256)
    with spawn(["true"], namespaces="pid,mnt", mount_proc=True, limits=limits) as p:
        p.wait()
        usage = p.usage
    assert_type(usage, Optional[Usage])
    if usage is None:
        return None
    assert_type(usage.max_rss, int)
    assert_type(usage.wall_time, float)
    assert_type(usage.oom_killed, bool)
    return usage.limit_hit


def in_a_sandbox() -> bytes:
    box = Sandbox(hostname="box", limits=Limits(pids=16))
    r = box.run(["python3", "-c", "print(1)"], timeout=10)
    assert_type(r, nsfast.Completed)
    assert_type(r.returncode, int)
    assert_type(r.stdout, Optional[bytes])
    assert_type(r.usage, Optional[Usage])
    p = box.spawn(["sh"], stdin=nsfast.PIPE, stdout=nsfast.PIPE)
    out, _ = p.communicate(b"echo hi\n")
    return (r.stdout or b"") + (out or b"")


def entering(pid: int) -> str:
    with enter(pid, "net,uts"):
        socket.create_server(("127.0.0.1", 0)).close()
    name: str = nsfast.run_in(pid, socket.gethostname)
    assert_type(nsfast.enter_and_exec(pid, ["ip", "addr"]), Process)
    return name


def named_netns() -> list[str]:
    netns.add("blue")
    try:
        netns.loopback_up("blue")
        netns.veth("v-host", "v-blue", peer_netns="blue", addr="10.0.0.1/24",
                   peer_addr="10.0.0.2/24")
        assert_type(netns.exec("blue", ["ping", "-c1", "10.0.0.1"]), Process)
        with netns.iproute("blue") as ipr:     # pyroute2's IPRoute: untyped
            ipr.route("add", dst="default", gateway="10.0.0.1")
        names = netns.list()
        assert_type(names, list[str])
    finally:
        netns.remove("blue")
    return names


def pooled() -> dict[str, Any]:
    with NetnsPool(size=4, setup=netns.loopback_up) as pool:
        assert_type(pool, NetnsPool)
        spawn(["/bin/true"], netns=pool).wait()
        stats = pool.stats()
    assert_type(stats, dict[str, Any])
    return stats


def bridged() -> Optional[str]:
    bridge = Bridge(name="nsfast-typing", subnet="10.213.0.0/24", isolated=True)
    assert_type(bridge, Bridge)
    try:
        p = spawn(["/bin/true"], netns=bridge)
        assert_type(p, Process)
        p.wait()
        return p.address
    finally:
        bridge.close()


def listing() -> list[tuple[str, int, Optional[int]]]:
    rows = []
    for ns in list_namespaces("net,user"):
        assert_type(ns, NamespaceInfo)
        assert_type(ns.kind, NsType)
        assert_type(ns.inode, int)
        assert_type(ns.pid, Optional[int])
        rows.append((ns.kind.proc_name, ns.inode, ns.pid))
    return rows
