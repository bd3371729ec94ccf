"""Process: a spawned child, waited on through its pidfd, with subprocess's API."""
from __future__ import annotations

import collections
import fcntl
import os
import select
import selectors
import signal
import struct
import subprocess
import threading
import time
from typing import IO, Optional

from . import aio
from . import _core
from .argtypes import Argv
from .flags import NsType
from .handles import Namespace
from .kernel import PIDFD_GET_INFO, PIDFD_INFO_EXIT, PIDFD_INFO_EXIT_CODE_OFFSET, WALL
from .limits import Limits, Usage, limit_hit

# __WALL: children with exit signal 0 (caller ignores SIGCHLD)
_WALL = WALL

# A caller that ignores SIGCHLD has its exec'd children reaped by the kernel
# (execve resets the exit signal to SIGCHLD), so waitpid fails with ECHILD.
# PIDFD_GET_INFO with PIDFD_INFO_EXIT (6.15) still tells the wait status.


def _readable(fd: int, timeout_ms: Optional[int]) -> bool:
    """poll(2) for POLLIN (select() refuses fds above 1023)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout_ms))


def _status_from_pidfd(pidfd: int) -> Optional[int]:
    """The wait status of an exited, already reaped process, or None."""
    if pidfd < 0:
        return None
    buf = bytearray(64)
    struct.pack_into("Q", buf, 0, PIDFD_INFO_EXIT)
    try:
        _readable(pidfd, None)   # readable once it has exited
        fcntl.ioctl(pidfd, PIDFD_GET_INFO, buf)
    except OSError:
        return None
    if not struct.unpack_from("Q", buf, 0)[0] & PIDFD_INFO_EXIT:
        return None
    return struct.unpack_from("i", buf, PIDFD_INFO_EXIT_CODE_OFFSET)[0]


# The children of Processes dropped before their child was reaped, as
# (pidfd, _core.Child) pairs: subprocess's _active list, for nsfast.  A deque,
# because __del__ may append from any thread while a reaper pops.
_dropped: collections.deque = collections.deque()


def _settle(pidfd: int, child: "_core.Child") -> bool:
    """Reap the dropped child behind pidfd if it has ended, without blocking,
    and then close pidfd; False while it runs.  Through the pidfd, so never
    another process that got the pid after someone else reaped ours."""
    try:
        if os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG | _WALL) is None:
            return False
    except ChildProcessError:
        pass    # reaped already: SIGCHLD ignored, or someone's wait(-1)
    except OSError:
        # no waitid(P_PIDFD) before 5.4: give up on it, as before
        _close_quietly(pidfd)
        return True
    _close_quietly(pidfd)
    child.free_stack()
    return True


class _WithBox:
    """A dropped child and its cgroup box: once reaped, the box is finished
    too (what is left in it killed, then reused or removed)."""

    def __init__(self, child: "_core.Child", box) -> None:
        self.child, self.box = child, box

    def free_stack(self) -> None:
        self.child.free_stack()
        try:
            self.box.finish()
        except (OSError, ValueError):
            pass   # gc() removes what stays behind


def _close_quietly(fd: int) -> None:
    """Close fd; one that someone closed behind our back must not fail a spawn."""
    try:
        os.close(fd)
    except OSError:
        pass


def reap_dropped() -> int:
    """Reap, without blocking, the ended children of nsfast.Process objects
    that were dropped without a wait (each spawn does this too); return how
    many were reaped.  A dropped child that still runs is left running.

    >>> nsfast.reap_dropped()
    0
    """
    # One waitid per dropped child that still runs, as subprocess's _cleanup
    # does: a waitid(P_ALL, WNOWAIT) first would miss children that the
    # kernel reaps itself (SIGCHLD ignored) while others run.
    reaped = 0
    for _ in range(len(_dropped)):
        try:
            pidfd, child = _dropped.popleft()
        except IndexError:
            break   # another thread took the rest
        if _settle(pidfd, child):
            reaped += 1
        else:
            _dropped.append((pidfd, child))
    return reaped


class Process:
    """A child made by nsfast.spawn.

    >>> with nsfast.spawn(["true"]) as p:
    ...     p.wait()
    0
    """

    # communicate()'s state, kept for a retry: the chunks read from each pipe,
    # the input and how much of it was written (class defaults: set on use)
    _output: Optional[dict] = None
    _input = memoryview(b"")
    _input_offset = 0
    # limits (set by spawn when limits= is given): the cgroup box, the
    # wall-time deadline; usage once reaped
    _limits: Optional[Limits] = None
    _box = None
    _deadline: Optional[float] = None
    _timed_out = False
    # what the reaped child used (nsfast.Usage), with limits= or without
    usage: Optional[Usage] = None
    # the IPv4 address of its eth0 when it was spawned on an nsfast.Bridge
    # (spawn(netns=bridge), a NetnsPool(bridge=...), Sandbox(network=...))
    address: Optional[str] = None

    def __init__(self, child: "_core.Child", args: Argv, stdin: Optional[IO] = None,
                 stdout: Optional[IO] = None, stderr: Optional[IO] = None):
        if _dropped:
            reap_dropped()   # both spawn paths make a Process: the one hook they share
        self._child = child
        self.pid: int = child.pid
        self.pidfd: int = child.take_pidfd()
        self.args = args
        self.returncode: Optional[int] = None
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self._started = time.monotonic()
        self._lock = threading.Lock()   # reaping against the watcher's kill

    def _limit(self, limits: Optional[Limits], box, started: float) -> None:
        """Set by spawn: the limits, the cgroup box, when the spawn began."""
        self._limits, self._box, self._started = limits, box, started
        if limits is not None and limits.wall_time is not None:
            from . import watch
            self._deadline = started + limits.wall_time
            watch.watch(self, self._deadline)

    def expire(self) -> None:
        """The wall-time limit passed: kill the whole sandbox (its cgroup, its
        process group when it leads one, the child) unless it is reaped."""
        with self._lock:
            if self.returncode is not None or self.pidfd < 0:
                return
            self._timed_out = True
            if self._box is not None:
                self._box.kill()
            try:
                if os.getpgid(self.pid) == self.pid:   # not reaped: still our child
                    os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                _core.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _check_deadline(self) -> None:
        if self._deadline is not None and not self._timed_out and \
                time.monotonic() >= self._deadline:
            self.expire()

    def _reaped(self, status: int, rusage=None) -> int:
        with self._lock:
            # two threads may end one wait each (a wait and a poll): the
            # first one here records the end, once
            if self.returncode is not None:
                return self.returncode
            self._child.free_stack()
            if self.pidfd >= 0:
                os.close(self.pidfd)
                self.pidfd = -1
            self.usage = self._usage(status, rusage)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def _usage(self, status: int, rusage) -> Usage:
        """The Usage of the reaped child: rusage, and its cgroup's counters."""
        wall = time.monotonic() - self._started
        if self._deadline is not None:
            from . import watch
            watch.forget(self)
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        user = system = 0.0
        rss = 0
        if rusage is not None:
            user, system, rss = rusage.ru_utime, rusage.ru_stime, rusage.ru_maxrss * 1024
        oom = pids_hit = False
        if self._box is not None:
            used = self._box.finish()
            self._box = None
            if used.cpu_user is not None:
                user, system = max(user, used.cpu_user), max(system, used.cpu_system)
            if used.max_memory:
                rss = used.max_memory
            oom, pids_hit = used.oom_killed, used.pids_hit
        return Usage(code, sig, wall, user, system, rss, oom,
                     limit_hit(self._limits, sig, user + system, self._timed_out, oom, pids_hit))

    def _reaped_elsewhere(self) -> int:
        """The kernel (SIGCHLD ignored) or someone else reaped the child: ask
        the pidfd for its status; 0 where the kernel cannot tell, as subprocess."""
        with self._lock:   # the pidfd stays ours while it is read
            if self.returncode is not None:   # the other thread was first
                return self.returncode
            status = _status_from_pidfd(self.pidfd)
        if status is None:
            status = 0
        return self._reaped(status)

    def ended(self) -> bool:
        """Whether the child has exited, without reaping it (its pidfd is
        readable then): another thread may be waiting for it.

        >>> p = nsfast.spawn(["true"]); p.wait(); p.ended()
        0
        True
        """
        with self._lock:
            if self.returncode is not None:
                return True
            return _readable(self.pidfd, 0)

    def poll(self) -> Optional[int]:
        """The exit code if the child has ended (reaping it), else None."""
        if self.returncode is not None:
            return self.returncode
        self._check_deadline()
        try:
            pid, status, rusage = os.wait4(self.pid, os.WNOHANG | _WALL)
        except ChildProcessError:
            return self._reaped_elsewhere()
        if pid == 0:
            return None
        return self._reaped(status, rusage)

    def wait(self, timeout: Optional[float] = None) -> int:
        """Wait for the child to end; subprocess.TimeoutExpired after timeout seconds."""
        if self.returncode is not None:
            return self.returncode
        if self._deadline is not None and not self._timed_out:
            # the wall-time limit: wait no longer than it, kill at it
            until = self._deadline - time.monotonic()
            if timeout is None or timeout > until:
                try:
                    return self._wait(max(until, 0.0))
                except subprocess.TimeoutExpired:
                    self.expire()
                    if timeout is not None:
                        timeout = max(0.0, timeout - until)
        return self._wait(timeout)

    def _wait(self, timeout: Optional[float]) -> int:
        if timeout is not None:
            deadline = time.monotonic() + timeout
            poller = select.poll()
            poller.register(self.pidfd, select.POLLIN)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not poller.poll(left * 1000):
                    if self.poll() is not None:
                        return self.returncode
                    if deadline - time.monotonic() <= 0:
                        raise subprocess.TimeoutExpired(self.args, timeout)
                    continue
                break
        try:
            _, status, rusage = os.wait4(self.pid, _WALL)
        except ChildProcessError:
            return self._reaped_elsewhere()
        return self._reaped(status, rusage)

    async def wait_async(self) -> int:
        """wait() for the event loop: a reader on the pidfd, no thread
        (nsfast.aio.wait; nsfast.wait_all waits for many).

        >>> import asyncio
        >>> with nsfast.spawn(["true"]) as p:
        ...     asyncio.run(p.wait_async())
        0
        """
        return await aio.wait(self)

    def _pidfd_dup(self) -> int:
        """A new fd on the pidfd, the caller's to close; -1 once reaped.  An
        event loop waits on the copy: reaping closes the pidfd itself."""
        with self._lock:   # _reaped closes the pidfd under it
            if self.returncode is not None or self.pidfd < 0:
                return -1
            return os.dup(self.pidfd)

    def send_signal(self, sig: int) -> None:
        """Send sig through the pidfd: never to a recycled pid."""
        if self.returncode is not None or self.pidfd < 0:
            return
        try:
            _core.pidfd_send_signal(self.pidfd, int(sig))
        except ProcessLookupError:
            pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, input: Optional[bytes] = None, timeout: Optional[float] = None
                    ) -> tuple[Optional[bytes], Optional[bytes]]:
        """Send input, read stdout and stderr to EOF and wait, as Popen.communicate
        does (bytes only).  After a TimeoutExpired (or an exception raised by a
        signal handler, such as KeyboardInterrupt) a new call carries on where
        the last one stopped: what was read is kept, the input is not sent twice.

        >>> nsfast.spawn(["cat"], stdin=nsfast.PIPE, stdout=nsfast.PIPE).communicate(b"hi")
        (b'hi', None)
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._output is None:
            self._output = {f: [] for f in (self.stdout, self.stderr) if f is not None}
            self._input = memoryview(input or b"")
            self._input_offset = 0
        elif input:
            raise ValueError("communicate() was started already: its input cannot change")
        sel = selectors.DefaultSelector()
        if self.stdin is not None and not self.stdin.closed:
            if self._input_offset < len(self._input):
                sel.register(self.stdin, selectors.EVENT_WRITE)
            else:
                self.stdin.close()
        for f in self._output:
            if not f.closed:
                sel.register(f, selectors.EVENT_READ)
        with sel:
            while sel.get_map():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise self._communicate_timeout(timeout)
                for key, _ in sel.select(left):
                    f = key.fileobj
                    if f is self.stdin:
                        chunk = self._input[self._input_offset:
                                            self._input_offset + select.PIPE_BUF]
                        try:
                            self._input_offset += os.write(f.fileno(), chunk)
                        except BrokenPipeError:
                            self._input_offset = len(self._input)
                        if self._input_offset >= len(self._input):
                            sel.unregister(f)
                            f.close()
                        continue
                    data = os.read(f.fileno(), 65536)
                    if data:
                        self._output[f].append(data)
                    else:
                        sel.unregister(f)
                        f.close()
        try:
            self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise self._communicate_timeout(timeout) from None
        return self._collected(self.stdout), self._collected(self.stderr)

    def _collected(self, f: Optional[IO]) -> Optional[bytes]:
        """What communicate() has read from f so far (None: not a pipe)."""
        if f is None:
            return None
        chunks = self._output[f]
        if len(chunks) > 1:
            chunks[:] = [b"".join(chunks)]   # a retry joins once, not again
        return chunks[0] if chunks else b""

    def _communicate_timeout(self, timeout: Optional[float]) -> subprocess.TimeoutExpired:
        return subprocess.TimeoutExpired(self.args, timeout, output=self._collected(self.stdout),
                                         stderr=self._collected(self.stderr))

    def namespaces(self) -> dict[NsType, Namespace]:
        """Handles on each of the child's namespaces, by kind."""
        result = {}
        for kind in NsType.all().kinds():
            if os.path.exists(f"/proc/{self.pid}/ns/{kind.proc_name}"):
                result[kind] = Namespace.of(self.pid, kind)
        # the handles are only the child's if it is still the same process
        if self.pidfd >= 0:
            try:
                _core.pidfd_send_signal(self.pidfd, 0)
            except ProcessLookupError:
                for ns in result.values():
                    ns.close()
                raise
        return result

    def _close_pipes(self) -> None:
        for f in (self.stdin, self.stdout, self.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass

    def __enter__(self) -> "Process":
        return self

    def __exit__(self, *exc) -> None:
        """Kill the child if it still runs, reap it and close the pipes."""
        if self.returncode is None:
            self.kill()
            self.wait()
        self._close_pipes()

    def __del__(self):
        pidfd = getattr(self, "pidfd", -1)
        if pidfd < 0 or self.returncode is not None:
            return
        # Leave the child running (as subprocess does), but reap it once it
        # ends: now if it has, else at a later spawn or reap_dropped().
        self.pidfd = -1
        child = self._child if self._box is None else _WithBox(self._child, self._box)
        try:
            if not _settle(pidfd, child):
                _dropped.append((pidfd, child))
        except (TypeError, AttributeError):
            pass    # interpreter shutdown: module globals are gone

    def __repr__(self) -> str:
        return f"<nsfast.Process pid={self.pid} returncode={self.returncode}>"
