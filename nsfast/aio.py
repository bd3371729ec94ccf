"""asyncio for nsfast: wait for payloads on their pidfds in the event loop.

A pidfd becomes readable when its process ends, so a loop waits for any
number of payloads with loop.add_reader, one reader per pidfd and no thread
per process.  Each waiter registers a dup of the pidfd, not the pidfd
itself: whoever reaps the process (a sync wait(), a Sandbox reclaiming its id
range) closes the Process's pidfd, and a closed fd left in the loop's
selector would never become readable, or would name the next file opened
under its number.  The dup stays open, and readable, until the waiter is done.

A wall-time limit (nsfast.Limits(wall_time=...)) is enforced by the watcher
thread (nsfast/watch.py); a waiter also arms a loop timer at the deadline, as
Process.wait() does, so that the limit holds when the watcher is late.

asyncio is imported by each coroutine, not here: it is loaded already
wherever a loop runs, and `import nsfast` stays without its cost.  This
module imports no other nsfast module: Process.wait_async and
Sandbox.run_async delegate here, and wait_all is exported as nsfast.wait_all.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import time
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional

if TYPE_CHECKING:
    import asyncio


async def wait(process: Any) -> int:
    """Wait for an nsfast.Process to end without blocking the event loop;
    reap it and return its exit code (as Process.wait() does).
    Process.wait_async() is this.

    >>> import asyncio
    >>> with nsfast.spawn(["sh", "-c", "exit 3"]) as p:
    ...     asyncio.run(nsfast.aio.wait(p))
    3
    """
    import asyncio
    code: Optional[int] = process.returncode
    if code is not None:
        return code
    loop = asyncio.get_running_loop()
    fd = process._pidfd_dup()
    if fd >= 0:
        try:
            with _wall_time_timer(loop, process):
                await _readable(loop, fd)
        finally:
            os.close(fd)
    code = process.wait()   # it has ended: this reaps without blocking
    return code


async def wait_all(processes: Iterable[Any]) -> list[int]:
    """Wait for every nsfast.Process in processes in one event loop (a reader
    on each pidfd, no thread per process); their exit codes, in order.
    Cancelled, it stops waiting and leaves the processes as they are.

    >>> import asyncio
    >>> with nsfast.Sandbox(limits=nsfast.Limits(nofile=64)) as box:
    ...     procs = [box.spawn(["sh", "-c", f"exit {n}"]) for n in range(3)]
    ...     asyncio.run(nsfast.wait_all(procs))
    [0, 1, 2]
    """
    import asyncio
    procs = list(processes)
    for p in procs:
        if not callable(getattr(p, "_pidfd_dup", None)):
            raise TypeError(f"wait_all takes nsfast.Process objects, not {type(p).__name__}")
    tasks = [asyncio.ensure_future(wait(p)) for p in procs]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()   # after a failure or a cancel: no waiter is left behind


async def communicate(process: Any, input: Optional[bytes] = None,
                      timeout: Optional[float] = None) -> tuple[Optional[bytes], Optional[bytes]]:
    """Process.communicate() for the event loop: send input, read stdout and
    stderr to EOF and wait for the end, through loop readers and writers on
    the pipes.  After timeout seconds, subprocess.TimeoutExpired with what was
    read so far; the process is left running (the caller kills it).

    >>> import asyncio
    >>> with nsfast.spawn(["cat"], stdin=nsfast.PIPE, stdout=nsfast.PIPE) as p:
    ...     asyncio.run(nsfast.aio.communicate(p, b"hi"))
    (b'hi', None)
    """
    import asyncio
    check_input(input)
    chunks: dict[IO[bytes], list[bytes]] = {
        f: [] for f in (process.stdout, process.stderr) if f is not None}

    def collected(f: Optional[IO[bytes]]) -> Optional[bytes]:
        return None if f is None else b"".join(chunks[f])

    async def to_the_end() -> None:
        loop = asyncio.get_running_loop()
        with _wall_time_timer(loop, process):
            await _pump(loop, process, input, chunks)
        await wait(process)

    try:
        await asyncio.wait_for(to_the_end(), timeout)
    except asyncio.TimeoutError:
        if timeout is None:
            raise   # not ours: a TimeoutError from inside
        raise subprocess.TimeoutExpired(process.args, timeout,
                                        output=collected(process.stdout),
                                        stderr=collected(process.stderr)) from None
    return collected(process.stdout), collected(process.stderr)


def check_input(input: Any) -> None:
    """TypeError unless input is None or bytes-like (before anything starts).

    >>> nsfast.aio.check_input("text")
    Traceback (most recent call last):
    TypeError: input is bytes, not str
    """
    if input is not None and not isinstance(input, (bytes, bytearray, memoryview)):
        raise TypeError(f"input is bytes, not {type(input).__name__}")


async def _readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """Return once fd is readable; the reader is gone when this returns or
    is cancelled (before the caller may close fd)."""
    done = loop.create_future()
    loop.add_reader(fd, _set_once, done)
    try:
        await done
    finally:
        loop.remove_reader(fd)


def _set_once(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


@contextlib.contextmanager
def _wall_time_timer(loop: asyncio.AbstractEventLoop, process: Any) -> Iterator[None]:
    """A loop timer that kills the process's sandbox at its wall-time deadline
    while the block runs (Process.expire(), which does nothing once it is reaped)."""
    deadline = process._deadline
    if deadline is None:
        yield
        return
    # loop.time() need not be time.monotonic() (another loop's clock): convert
    handle = loop.call_at(loop.time() + (deadline - time.monotonic()), process.expire)
    try:
        yield
    finally:
        handle.cancel()


async def _pump(loop: asyncio.AbstractEventLoop, process: Any, input: Optional[bytes],
                chunks: dict[IO[bytes], list[bytes]]) -> None:
    """Write input to process.stdin and read its stdout and stderr into
    chunks, until every pipe is closed; each pipe is closed at its end."""
    done = loop.create_future()
    live: dict[IO[bytes], Callable[[int], bool]] = {}   # file -> loop.remove_reader/_writer
    data = memoryview(bytes(input or b""))
    sent = 0

    def finished(f: IO[bytes]) -> None:
        live.pop(f)(f.fileno())
        f.close()
        if not live and not done.done():
            done.set_result(None)

    def failed(e: OSError) -> None:
        if not done.done():
            done.set_exception(e)

    def read(f: IO[bytes]) -> None:
        try:
            chunk = os.read(f.fileno(), 65536)
        except BlockingIOError:
            return
        except OSError as e:
            return failed(e)
        if chunk:
            chunks[f].append(chunk)
        else:
            finished(f)

    def write(f: IO[bytes]) -> None:
        nonlocal sent
        try:
            sent += os.write(f.fileno(), data[sent:])
        except BlockingIOError:
            return
        except BrokenPipeError:
            sent = len(data)   # the payload stopped reading, as communicate() allows
        except OSError as e:
            return failed(e)
        if sent >= len(data):
            finished(f)

    stdin = process.stdin
    if stdin is not None and not stdin.closed:
        if data:
            os.set_blocking(stdin.fileno(), False)   # our end only: the payload's is its own
            live[stdin] = loop.remove_writer
            loop.add_writer(stdin.fileno(), write, stdin)
        else:
            stdin.close()
    for f in chunks:
        if not f.closed:
            os.set_blocking(f.fileno(), False)
            live[f] = loop.remove_reader
            loop.add_reader(f.fileno(), read, f)
    if not live:
        return
    try:
        await done
    finally:
        for f, remove in live.items():   # cancelled or failed: the pipes stay the caller's
            remove(f.fileno())
