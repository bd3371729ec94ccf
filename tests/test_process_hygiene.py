"""Process hygiene: dropped Processes leave no zombie; communicate() can be retried.

The witness for zombies is /proc/<pid>/stat (state and parent pid)."""
from __future__ import annotations

import gc
import os
import signal
import subprocess
import time

import pytest

import nsfast
from conftest import open_fds

TRUE = "/bin/true"


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of pid from /proc, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0].decode(), int(fields[1])


def _our_zombies(pids) -> list[int]:
    me = os.getpid()
    return [pid for pid in pids if (st := _stat(pid)) is not None and st == ("Z", me)]


def _wait_until_ended(pids, timeout: float = 20.0) -> None:
    """Until each pid is a zombie or gone: the children have ended."""
    deadline = time.monotonic() + timeout
    while True:
        running = [pid for pid in pids if (st := _stat(pid)) is not None and st[0] != "Z"]
        if not running:
            return
        assert time.monotonic() < deadline, f"still running: {running[:5]}"
        time.sleep(0.01)


@pytest.fixture
def zombie_guard():
    """The pids a test drops; any left a zombie child of ours is reaped after
    (by pid: a zombie's pid cannot have been reused)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        st = _stat(pid)
        if st is not None and st[1] == os.getpid():
            if st[0] != "Z":
                os.kill(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def test_dropped_processes_are_reaped_at_the_next_spawn(zombie_guard):
    # someone else's child: nsfast must not reap it (its status stays its owner's)
    other = subprocess.Popen(["sh", "-c", "exit 7"])
    fds = open_fds()
    for i in range(200):
        # both spawn paths: the compiled one and the Python one (cwd= takes it)
        p = nsfast.spawn([TRUE]) if i % 2 else nsfast.spawn([TRUE], cwd="/")
        zombie_guard.append(p.pid)
        del p
    gc.collect()
    _wait_until_ended(zombie_guard + [other.pid])
    nsfast.spawn([TRUE]).wait()
    assert _our_zombies(zombie_guard) == []
    assert open_fds() == fds, "the pidfds of the reaped children are closed"
    assert other.wait(timeout=10) == 7


def test_a_dropped_process_that_ended_is_reaped_when_dropped(zombie_guard):
    p = nsfast.spawn([TRUE])
    zombie_guard.append(p.pid)
    _wait_until_ended([p.pid])
    del p
    assert _our_zombies(zombie_guard) == []


def test_a_dropped_running_child_is_left_running_then_reaped(zombie_guard):
    p = nsfast.spawn(["sleep", "100"])
    pid = p.pid
    zombie_guard.append(pid)
    del p
    gc.collect()
    nsfast.spawn([TRUE]).wait()
    assert nsfast.reap_dropped() == 0
    assert _stat(pid) == ("S", os.getpid()), "not killed, not reaped: still sleeping"
    os.kill(pid, signal.SIGKILL)   # ours, and not reaped: the pid is still this child
    _wait_until_ended([pid])
    assert nsfast.reap_dropped() == 1
    assert _stat(pid) is None or _stat(pid)[1] != os.getpid()


# ---- communicate() retried

PRINT_SLEEP_PRINT = ["sh", "-c",
                     "echo first; echo err1 >&2; sleep 1.5; echo second; echo err2 >&2"]


def _wait_for_output(p) -> None:
    """Until the child's first lines are in the pipes (nothing is read from them)."""
    import select
    select.select([p.stdout], [], [], 10)


def test_communicate_after_a_timeout_returns_everything():
    with nsfast.spawn(PRINT_SLEEP_PRINT, stdout=nsfast.PIPE, stderr=nsfast.PIPE) as p:
        _wait_for_output(p)
        with pytest.raises(subprocess.TimeoutExpired) as e:
            p.communicate(timeout=0.3)
        assert e.value.output == b"first\n"   # what was read so far, as subprocess says
        out, err = p.communicate(timeout=30)
    assert out == b"first\nsecond\n"
    assert err == b"err1\nerr2\n"
    assert p.returncode == 0


def test_communicate_after_a_timeout_sends_the_input_once():
    # the child reads its input only after the first call has timed out
    script = "sleep 1; cat; echo done >&2"
    payload = os.urandom(200_000)   # more than a pipe holds: part waits in the caller
    with nsfast.spawn(["sh", "-c", script], stdin=nsfast.PIPE, stdout=nsfast.PIPE,
                      stderr=nsfast.PIPE) as p:
        with pytest.raises(subprocess.TimeoutExpired):
            p.communicate(payload, timeout=0.3)
        out, err = p.communicate(timeout=30)
    assert out == payload
    assert err == b"done\n"


class _Interrupted(KeyboardInterrupt):
    pass


def _interrupt(signum, frame):
    raise _Interrupted()


def test_communicate_after_keyboard_interrupt_returns_everything():
    old = signal.signal(signal.SIGALRM, _interrupt)
    try:
        with nsfast.spawn(PRINT_SLEEP_PRINT, stdout=nsfast.PIPE, stderr=nsfast.PIPE) as p:
            _wait_for_output(p)
            signal.setitimer(signal.ITIMER_REAL, 0.4)
            with pytest.raises(_Interrupted):
                p.communicate()   # ^C arrives while it waits for the second line
            signal.setitimer(signal.ITIMER_REAL, 0)
            out, err = p.communicate(timeout=30)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert out == b"first\nsecond\n"
    assert err == b"err1\nerr2\n"
