"""NetnsPool: pre-made network namespaces, held as fds, used once.

Witnesses: /proc/PID/ns/net inodes, the fds of this process, `ip -o link`
run inside the child's namespace through nsenter.
"""
from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

import nsfast
import nsfast.pool
from conftest import in_forked_child, need_root, need_tool, ns_inode, open_fds


def host_net() -> int:
    return ns_inode(os.getpid(), "net")


def net_inodes_held() -> set[int]:
    """Inodes of the net namespaces this process holds fds on."""
    held = set()
    for fd in open_fds():
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("net:["):
            held.add(int(target[5:-1]))
    return held


def wait_ready(pool: nsfast.NetnsPool, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while pool.stats()["ready"] < count:
        assert time.monotonic() < deadline, f"pool never had {count} ready: {pool.stats()}"
        time.sleep(0.005)


@pytest.fixture
def pool_factory():
    pools = []

    def make(**kw):
        p = nsfast.NetnsPool(**kw)
        pools.append(p)
        return p

    yield make
    for p in pools:
        p.close()


def test_take_gives_distinct_fresh_net_namespaces(pool_factory):
    pool = pool_factory(size=3)
    wait_ready(pool, 3)
    handles = [pool.take() for _ in range(3)]
    try:
        assert all(h.kind == nsfast.NsType.NET for h in handles)
        inodes = {h.inode for h in handles}
        assert len(inodes) == 3 and host_net() not in inodes
        assert pool.stats()["hits"] == 3 and pool.stats()["misses"] == 0
    finally:
        for h in handles:
            h.close()
    assert os.stat("/proc/thread-self/ns/net").st_ino == host_net()


def test_refill_waits_for_the_low_water_mark_then_fills_up(pool_factory):
    """The background thread does not wake for every take (its namespace
    creation would then run beside each spawn): it tops up once the pool is
    down to half, and then fills it completely."""
    pool = pool_factory(size=4)
    wait_ready(pool, 4)
    made = pool.stats()["made"]
    taken = [pool.take()]
    try:
        time.sleep(0.3)
        assert (pool.stats()["ready"], pool.stats()["made"]) == (3, made)
        taken.append(pool.take())   # down to 2 = size // 2
        wait_ready(pool, 4)
        assert pool.stats()["made"] == made + 2
    finally:
        for h in taken:
            h.close()


def test_spawn_from_pool_joins_one_configured_namespace_never_reused(pool_factory, sleeper):
    nsenter = need_tool("nsenter")
    pool = pool_factory(size=2, setup=nsfast.netns.loopback_up)
    wait_ready(pool, 2)
    first = sleeper(netns=pool)
    second = sleeper(netns=pool)
    inodes = {ns_inode(first.pid, "net"), ns_inode(second.pid, "net")}
    assert len(inodes) == 2 and host_net() not in inodes
    # the pool gave the fd away: nothing in this process still holds either namespace
    assert not inodes & net_inodes_held()
    assert pool.stats()["hits"] == 2
    link = subprocess.run([nsenter, "-t", str(first.pid), "-n", "ip", "-o", "link", "show",
                           "lo"], capture_output=True, text=True, check=True).stdout
    assert ",UP" in link  # setup ran before the namespace was handed out


def test_exhausted_pool_falls_back_inline_and_counts_a_miss(pool_factory):
    release = threading.Event()
    inline_calls = []
    made = []

    def setup(ns):
        made.append(ns.inode)
        if threading.current_thread() is threading.main_thread():
            inline_calls.append(ns.inode)
        elif len(made) > 1:
            release.wait(30)  # hold the refill thread: the pool stays empty

    pool = pool_factory(size=1, setup=setup)
    try:
        wait_ready(pool, 1)
        with pool.take() as hit:
            assert hit.kind == nsfast.NsType.NET
        with pool.take() as miss:
            assert miss.kind == nsfast.NsType.NET and miss.inode != host_net()
            assert inline_calls == [miss.inode]
        stats = pool.stats()
        assert (stats["hits"], stats["misses"]) == (1, 1)
        assert stats["wait_seconds"] > 0
        assert os.stat("/proc/thread-self/ns/net").st_ino == host_net()
    finally:
        release.set()


def test_size_zero_pool_always_misses(pool_factory):
    pool = pool_factory(size=0)
    with pool.take() as ns:
        assert ns.kind == nsfast.NsType.NET
    assert pool.stats()["misses"] == 1 and pool.stats()["hits"] == 0


def test_close_releases_every_namespace_and_the_thread():
    fds = open_fds()
    threads = threading.active_count()
    with nsfast.NetnsPool(size=4) as pool:
        wait_ready(pool, 4)
        assert len(open_fds() - fds) >= 4
    assert open_fds() == fds
    assert threading.active_count() == threads
    assert pool.closed
    pool.close()  # a second close does nothing
    with pytest.raises(ValueError):
        pool.take()


def test_failing_setup_is_counted_and_never_handed_out(pool_factory):
    def setup(ns):
        raise RuntimeError("bad setup")

    pool = pool_factory(size=0, setup=setup)
    fds = open_fds()
    with pytest.raises(RuntimeError, match="setup"):
        pool.take()
    assert pool.stats()["setup_errors"] == 1
    assert open_fds() == fds


@pytest.mark.unit
@pytest.mark.parametrize("kw, exc", [
    (dict(size=-1), ValueError), (dict(size="2"), TypeError), (dict(size=True), TypeError),
    (dict(size=1, setup=3), TypeError),
])
def test_bad_arguments(kw, exc):
    threads = threading.active_count()
    with pytest.raises(exc):
        nsfast.NetnsPool(**kw)
    assert threading.active_count() == threads


def _child_report(pool, held: set, shared: bool) -> bytes:
    """In the forked child: how many of the parent's ready namespaces it
    holds, then what taking one gives it."""
    inherited = sum(os.stat(f"/proc/self/fd/{fd}").st_ino in held
                    for fd in os.listdir("/proc/self/fd") if fd.isdigit()
                    and os.path.exists(f"/proc/self/fd/{fd}"))
    try:
        mine = nsfast.pool.shared_loopback() if shared else pool
        with mine.take() as ns:
            ino = os.fstat(ns.fileno()).st_ino
        said = b"took %d, %s" % (ino, b"the parent's" if ino in held else b"its own")
    except ValueError as e:
        said = str(e).encode()
    return b"%d %s" % (inherited, said)


@pytest.mark.parametrize("shared", [False, True], ids=["own pool", "shared_loopback"])
def test_a_forked_child_never_hands_out_its_parents_namespaces(shared):
    """The ready namespaces of a pool are the parent's to hand out: a forked
    child's copy of a pool is closed, without them, and says why; the shared
    loopback pool of Sandboxes is made anew in the child."""
    need_root()
    pool = nsfast.pool.shared_loopback() if shared else nsfast.NetnsPool(size=2)
    try:
        for _ in range(500):   # until the background thread has made some
            if pool.stats()["ready"]:
                break
            time.sleep(0.01)
        held = {os.fstat(ns.fileno()).st_ino for ns in list(pool._ready)}
        assert held
        got = in_forked_child(lambda: _child_report(pool, held, shared))
        assert got.startswith(b"0 "), got
        if shared:
            assert got.endswith(b"its own"), got
        else:
            assert b"forked child makes a pool of its own" in got
        with pool.take() as ns:   # the parent's pool goes on
            assert os.fstat(ns.fileno()).st_ino in held
    finally:
        if not shared:
            pool.close()
