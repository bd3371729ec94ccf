"""asyncio (nsfast/aio.py): Sandbox.run_async, Process.wait_async and
nsfast.wait_all wait on pidfds and pipes in the event loop, with no thread
per process, and the wall-time limit still holds.

Witnesses: /proc/<pid>/stat (the payloads are alive, then gone), our
children in /proc, the threads in /proc/self/task, and a ticker coroutine
that shows the loop was never blocked.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time

import pytest

import nsfast
from nsfast import watch
from conftest import children_of

# 500 at once: every namespace of the default Sandbox, and a small cgroup
# each (a few tasks, 16 MiB); wall_time also arms the one watcher thread
MANY = 500
SMALL = nsfast.Limits(pids=8, memory="16M", wall_time=120)


def alive(pid: int) -> bool:
    """pid runs (and is not a zombie), per /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def box():
    """A Sandbox with SMALL limits; what the test started through it and left
    running is killed and reaped after it."""
    started = []
    sandbox = nsfast.Sandbox(limits=SMALL)
    spawn = sandbox.spawn

    def keep(*args, **kwargs):
        proc = spawn(*args, **kwargs)
        started.append(proc)
        return proc

    sandbox.spawn = keep
    sandbox.started = started
    yield sandbox
    for proc in started:
        proc.__exit__(None, None, None)
    sandbox.close()
    started.clear()   # the processes (and their id leases) go now, not at a gc
    del sandbox.spawn, sandbox.started
    nsfast.cgroups.clear()   # and the cgroups their box kept for reuse, with their fds


async def ticking(coro, every: float = 0.01):
    """(what coro returns, how many times a ticker ran meanwhile): a loop that
    was blocked does not tick."""
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(every)
            ticks += 1

    t = asyncio.ensure_future(ticker())
    try:
        return await coro, ticks
    finally:
        t.cancel()


def test_wait_all_waits_for_500_sandboxes_in_one_loop_without_threads(box):
    # every payload reads one shared pipe: all run until we close its write end
    r, w = os.pipe2(os.O_CLOEXEC)
    release = open(w, "wb", buffering=0)   # closed once, whichever way the test goes
    with release:
        try:
            procs = [box.spawn(["cat"], stdin=r, stdout=nsfast.DEVNULL) for _ in range(MANY)]
        finally:
            os.close(r)
        assert all(alive(p.pid) for p in procs), "the payloads were not all running at once"
        # a wait_all that blocked the loop would wait for a release that never comes
        safety = threading.Timer(60, release.close)
        safety.start()
        threads_before = len(os.listdir("/proc/self/task"))
        seen = {}

        async def main():
            waiting = asyncio.ensure_future(nsfast.wait_all(procs))
            await asyncio.sleep(0.5)   # the loop runs on while all of them are waited for
            seen["threads"] = len(os.listdir("/proc/self/task"))
            seen["pending"] = not waiting.done()
            release.close()   # EOF for all of them
            return await waiting

        t0 = time.monotonic()
        try:
            codes = asyncio.run(main())
        finally:
            safety.cancel()
        took = time.monotonic() - t0
    assert seen["pending"], "the loop was blocked while it waited"
    assert seen["threads"] <= threads_before, "a thread per process"
    assert took < 50
    assert codes == [0] * MANY
    ours = set(children_of(os.getpid()))
    assert not any(p.pid in ours for p in procs), "a payload was not reaped"
    assert all(p.returncode == 0 and p.usage.limit_hit is None for p in procs)


def test_run_async_runs_many_at_once_each_with_its_own_input(box):
    n = 100

    async def main():
        return await asyncio.gather(*(box.run_async(["cat"], input=b"%d" % i) for i in range(n)))

    done = asyncio.run(main())
    assert [d.stdout for d in done] == [b"%d" % i for i in range(n)]
    assert {d.returncode for d in done} == {0}


def test_run_async_returns_what_run_returns(box):
    # more input than a pipe holds: written as the payload reads it
    data = os.urandom(1 << 20)
    argv = ["sh", "-c", "cat; echo to-stderr >&2; exit 3"]
    sync = box.run(argv, input=data)
    done, ticks = asyncio.run(ticking(box.run_async(argv, input=data)))
    assert isinstance(done, nsfast.Completed)
    assert done[:4] == sync[:4] == (argv, 3, data, b"to-stderr\n")
    assert done.usage.exit_code == 3 and done.usage.limit_hit is None
    # without input, stdin is /dev/null as in run()
    assert asyncio.run(box.run_async(["cat"])).stdout == b""


def test_run_async_timeout_kills_the_payload_and_keeps_what_it_wrote(box):
    before = set(children_of(os.getpid()))
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        asyncio.run(ticking(box.run_async(["sh", "-c", "echo started; exec sleep 600"],
                                          timeout=0.5)))
    assert 0.5 <= time.monotonic() - t0 < 10
    assert caught.value.timeout == 0.5
    assert caught.value.output == b"started\n"
    assert set(children_of(os.getpid())) == before, "the payload outlived the timeout"


def test_a_cancelled_run_async_kills_its_payload(box):
    before = set(children_of(os.getpid()))

    async def main():
        task = asyncio.ensure_future(box.run_async(["sleep", "600"]))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert set(children_of(os.getpid())) == before


def test_wall_time_is_enforced_for_async_waiters():
    with nsfast.Sandbox(limits=nsfast.Limits(wall_time=0.5)) as box:
        t0 = time.monotonic()
        done, ticks = asyncio.run(ticking(box.run_async(["sleep", "600"])))
    assert done.returncode == -9 and done.usage.limit_hit == "wall_time"
    assert time.monotonic() - t0 < 10 and ticks >= 3


def test_the_loop_enforces_wall_time_when_the_watcher_is_late(monkeypatch):
    # the watcher thread (nsfast/watch.py) never comes: the loop's timer kills
    monkeypatch.setattr(watch, "watch", lambda process, deadline: None)
    with nsfast.Sandbox(limits=nsfast.Limits(wall_time=0.5)) as box:
        p = box.spawn(["sleep", "600"])
        with p:
            code = asyncio.run(asyncio.wait_for(p.wait_async(), 20))
    assert code == -9 and p.usage.limit_hit == "wall_time"


def test_wait_async_wakes_when_someone_else_reaps(sleeper):
    # the pidfd is closed by a sync wait while the loop waits on it
    r, w = os.pipe2(os.O_CLOEXEC)
    p = sleeper(["cat"], stdin=r)
    os.close(r)

    async def main():
        waiters = [asyncio.ensure_future(p.wait_async()) for _ in range(2)]
        await asyncio.sleep(0.1)
        os.close(w)
        assert p.wait() == 0   # reaps, closes p.pidfd
        return await asyncio.wait_for(asyncio.gather(*waiters), 10)

    assert asyncio.run(main()) == [0, 0]


def test_two_waiters_on_one_process_both_wake(sleeper):
    p = sleeper(["sleep", "0.3"])

    async def main():
        return await asyncio.wait_for(asyncio.gather(p.wait_async(), nsfast.wait_all([p, p])),
                                      10)

    assert asyncio.run(main()) == [0, [0, 0]]


def test_run_async_refuses_text_input_before_it_starts(box):
    with pytest.raises(TypeError, match="input is bytes, not str"):
        asyncio.run(box.run_async(["cat"], input="text"))
    assert box.started == []


@pytest.mark.unit
def test_wait_all_takes_processes_only():
    with pytest.raises(TypeError, match="nsfast.Process"):
        asyncio.run(nsfast.wait_all([os.getpid()]))
