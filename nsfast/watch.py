"""One watcher thread for every sandbox with a wall-time limit.

A heap of (deadline, Process) and a condition: the thread sleeps until the
earliest deadline (or a new, earlier one) and then has the Process kill its
sandbox, which Process.expire() does only while the child is not reaped
(under the Process's lock, so never through a closed pidfd).  The owner
still reaps.  The thread ends when no deadline is pending.  Process.wait() and poll() enforce the deadline themselves too,
so a limit holds even when the watcher is late.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time

_lock = threading.Condition()
_heap: list = []
_order = itertools.count()
_thread = None


def watch(process, deadline: float) -> None:
    """Kill process's sandbox at deadline (time.monotonic()) unless it has ended."""
    global _thread
    with _lock:
        # a strong reference: a Process dropped before its deadline is still
        # killed at it (then reaped as dropped Processes are)
        heapq.heappush(_heap, (deadline, next(_order), process))
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="nsfast-wall-time", daemon=True)
            _thread.start()
        _lock.notify()


def forget(process) -> None:
    """Drop process's deadline (it was reaped): the thread may end sooner."""
    with _lock:
        kept = [e for e in _heap if e[2] is not process]
        if len(kept) != len(_heap):
            _heap[:] = kept
            heapq.heapify(_heap)
            _lock.notify()


def watched() -> int:
    """How many deadlines are pending.

    >>> watched() >= 0
    True
    """
    with _lock:
        return len(_heap)


def _run() -> None:
    global _thread
    while True:
        with _lock:
            if not _heap:
                # no thread stays behind: a second thread makes the caller's
                # own unshare(CLONE_NEWUSER) fail (nsfast.unshare)
                _thread = None
                return
            deadline, _, process = _heap[0]
            left = deadline - time.monotonic()
            if left > 0:
                _lock.wait(left)
                continue
            heapq.heappop(_heap)
        process.expire()
        del process
