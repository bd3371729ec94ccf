"""One watcher thread for every sandbox with a wall-time limit.

A heap of (deadline, Process) and a condition: the thread sleeps until the
earliest deadline (or a new, earlier one) and then has the Process kill its
sandbox, which Process.expire() does only while the child is not reaped
(under the Process's lock, so never through a closed pidfd).  The owner
still reaps.  Process.wait() and poll() enforce the deadline themselves too,
so a limit holds even when the watcher is late.

The thread outlives its last deadline by LINGER seconds: starting a thread
costs more than a whole spawn, and sandboxes come in runs.  An idle thread
is stopped at once by quiesce(), which whatever needs a single-threaded
process (unshare(CLONE_NEWUSER) in place) calls first.
"""
from __future__ import annotations

import heapq
import itertools
import os
import threading
import time

LINGER = 2.0
_lock = threading.Condition()
_heap: list = []            # [deadline, order, Process or None once forgotten]
_entries: dict = {}         # id(Process) -> its heap entry
_order = itertools.count()
_thread = None
_stop = False
_wake_at = 0.0              # when the sleeping thread wakes on its own


def _forget_in_child() -> None:
    # a forked child has no watcher thread (only the forking thread comes
    # along) and none of its parent's sandboxes: it starts afresh, so that
    # its own deadlines get a thread of their own
    global _lock, _heap, _entries, _thread, _stop, _wake_at
    _lock, _heap, _entries = threading.Condition(), [], {}
    _thread, _stop, _wake_at = None, False, 0.0


os.register_at_fork(after_in_child=_forget_in_child)


def watch(process, deadline: float) -> None:
    """Kill process's sandbox at deadline (time.monotonic()) unless it has ended."""
    global _thread
    with _lock:
        # a strong reference: a Process dropped before its deadline is still
        # killed at it (then reaped as dropped Processes are)
        entry = [deadline, next(_order), process]
        heapq.heappush(_heap, entry)
        _entries[id(process)] = entry
        if _thread is None:
            _thread = threading.Thread(target=_run, name="nsfast-wall-time", daemon=True)
            _thread.start()
        elif deadline < _wake_at:   # only a wake-up it would sleep through
            _lock.notify()


def forget(process) -> None:
    """Drop process's deadline (it was reaped); the entry leaves the heap
    when it reaches the top."""
    with _lock:
        entry = _entries.pop(id(process), None)
        if entry is not None and entry[2] is process:
            entry[2] = None
        while _heap and _heap[0][2] is None:   # what a run of sandboxes leaves
            heapq.heappop(_heap)


def watched() -> int:
    """How many deadlines are pending.

    >>> watched() >= 0
    True
    """
    with _lock:
        return len(_entries)


def quiesce() -> bool:
    """Stop the watcher thread if no deadline is pending (it lingers for
    the next sandbox otherwise); False while it still has work.

    >>> quiesce()
    True
    """
    global _stop
    with _lock:
        if _entries:
            return False
        thread = _thread
        if thread is None:
            return True
        _stop = True
        _lock.notify()
    thread.join(1.0)   # a deadline that came in meanwhile keeps it
    return not thread.is_alive()


def _run() -> None:
    global _thread, _stop, _wake_at
    idle_until = None
    while True:
        with _lock:
            while _heap and _heap[0][2] is None:
                heapq.heappop(_heap)
            now = time.monotonic()
            if not _heap:
                if idle_until is None:
                    idle_until = now + LINGER
                if _stop or now >= idle_until:
                    _thread, _stop, _wake_at = None, False, 0.0
                    return
                _wake_at = idle_until
                _lock.wait(idle_until - now)
                continue
            idle_until = None
            entry = _heap[0]
            left = entry[0] - now
            if left > 0:
                _wake_at = entry[0]
                _lock.wait(left)
                continue
            heapq.heappop(_heap)
            process, entry[2] = entry[2], None
            _entries.pop(id(process), None)
        process.expire()
        del process
