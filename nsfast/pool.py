"""NetnsPool: network namespaces made ahead of time, so a spawn only has to join one.

Creating a network namespace costs the kernel about half a millisecond or
more; joining one is a setns.  A background thread keeps up to `size` fresh
namespaces ready, each held only as an fd (no name, no mount).  It tops the
pool up once takes have drained it to half, not after every take: a
namespace made beside each spawn would compete with it for the CPU.  A namespace
leaves the pool once and is never given back: the caller's handle (or the
spawned child) is the last thing holding it, so it is destroyed after use.
"""
from __future__ import annotations

import collections
import os
import threading
import time
import weakref
from typing import Any, Callable, Optional

from . import _core
from .errors import namespace_hint, os_error
from .handles import Closeable, Namespace

Setup = Callable[[Namespace], object]


def _max_net_namespaces() -> int:
    """The kernel's cap on a user's network namespaces (a pool can never hold more)."""
    try:
        with open("/proc/sys/user/max_net_namespaces", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 2**31 - 1


def new_netns(cls: type = Namespace) -> Namespace:
    """A handle (of class cls) on a new network namespace, made on a helper
    thread: the caller's stays put.

    >>> with nsfast.pool.new_netns() as ns:
    ...     ns.kind
    <NsType.NET: 1073741824>
    """
    try:
        fd = _core.netns_new_fd()
    except OSError as e:
        raise os_error(e.errno, None, namespace_hint(e.errno, ["net"]),
                       what="unshare(net)") from None
    return cls(fd)


_pools: "weakref.WeakSet[NetnsPool]" = weakref.WeakSet()


def _forget_pools_in_child() -> None:
    # a forked child must never hand out the namespaces its parent hands
    # out too: its copies of the pools are closed, their namespaces dropped
    for pool in list(_pools):
        pool._forked()


os.register_at_fork(after_in_child=_forget_pools_in_child)


class NetnsPool(Closeable):
    """Keep up to `size` fresh network namespaces ready; setup(handle) configures each one
    as it is made, off the caller's path.

    With bridge=nsfast.Bridge(...), each one is wired to the bridge as it is
    made (eth0 with an address, lo up, a default route: Bridge.take), so a
    bridged spawn from the pool costs what a loopback one does; the handle
    it hands out has the address (Process.address after a spawn).  Closing
    the handle (a spawned child's end) ends the namespace, and with it the
    veth pair and the address's lease.

    >>> with nsfast.NetnsPool(size=2, setup=nsfast.netns.loopback_up) as pool:
    ...     nsfast.spawn(["ip", "-o", "link"], netns=pool, stdout=nsfast.PIPE).communicate()[0]
    b'1: lo: <LOOPBACK,UP,LOWER_UP> ...'
    """

    def __init__(self, size: int = 8, setup: Optional[Setup] = None, bridge=None):
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"size is an int, not {type(size).__name__}")
        if size < 0:
            raise ValueError(f"size must be 0 or more, not {size}")
        limit = _max_net_namespaces()
        if size > limit:
            raise ValueError(f"size {size} is more network namespaces than this user may "
                             f"have (user.max_net_namespaces = {limit})")
        if setup is not None and not callable(setup):
            raise TypeError("setup is a callable taking a Namespace")
        if bridge is not None:
            # an nsfast.Bridge (not imported: the bridge makes its namespaces here)
            if not callable(getattr(bridge, "take", None)) or not hasattr(bridge, "subnet"):
                raise TypeError(f"bridge is an nsfast.Bridge, not {type(bridge).__name__}")
            if bridge.closed:
                raise ValueError("the bridge is closed")
        self.bridge = bridge
        self.size = size
        self._low = size // 2
        self._setup = setup
        self._ready: collections.deque[Namespace] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._hits = self._misses = self._made = self._setup_errors = 0
        self._wait_ns = 0
        self._last_error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        self._pid = os.getpid()
        _pools.add(self)
        if size:
            self._thread = threading.Thread(target=self._refill, name="nsfast-netns-pool",
                                            daemon=True)
            self._thread.start()

    # ---- making namespaces
    def _configured(self, ns: Namespace) -> Optional[Namespace]:
        """ns after setup, or None (ns closed) when setup raised."""
        if self._setup is None:
            return ns
        try:
            self._setup(ns)
        except Exception as e:  # a bad namespace is dropped, never handed out
            ns.close()
            with self._cond:
                self._setup_errors += 1
                self._last_error = e
            return None
        return ns

    def _refill(self) -> None:
        """The background thread.  Each namespace is made on a throwaway helper
        thread (netns_new_fd): going back to our own namespace after an unshare
        would need CAP_SYS_ADMIN over it, which a process inside a user
        namespace does not have over the host's."""
        while True:
            with self._cond:
                if len(self._ready) >= self.size:
                    # full: sleep until take() drains it to the low-water mark
                    while not self._closed and len(self._ready) > self._low:
                        self._cond.wait()
                if self._closed:
                    return
            try:
                ns = self._new()
            except (OSError, ValueError) as e:
                with self._cond:
                    self._last_error = e
                    if self._closed:
                        return
                time.sleep(0.05)  # e.g. ENOSPC from max_net_namespaces: do not spin
                continue
            ns = self._configured(ns)
            if ns is None:
                time.sleep(0.1)  # a setup that keeps failing must not churn namespaces
                continue
            with self._cond:
                if self._closed:
                    ns.close()
                    return
                self._ready.append(ns)
                self._made += 1

    def _new(self) -> Namespace:
        """A new namespace: wired to the bridge (address, veth, routes) when the
        pool has one, else bare."""
        if self.bridge is not None:
            return self.bridge.take()
        return new_netns()

    def _make_inline(self) -> Namespace:
        ns = self._configured(self._new())
        if ns is None:
            raise RuntimeError(f"the pool's setup failed: {self._last_error!r}") \
                from self._last_error
        return ns

    # ---- the public side
    def _forked(self) -> None:
        """In a forked child: this copy is closed and its namespaces, the
        parent's to hand out, are dropped (its thread did not come along)."""
        self._cond = threading.Condition()   # another thread may have held it
        self._closed, self._thread = True, None
        while self._ready:
            self._ready.popleft().close()

    def take(self) -> Namespace:
        """A fresh network namespace handle, yours to close; made inline (a miss)
        when none is ready.

        >>> with nsfast.NetnsPool(size=1) as pool, pool.take() as ns:
        ...     ns.kind
        <NsType.NET: 1073741824>
        """
        t0 = time.perf_counter_ns()
        with self._cond:
            if self._closed:
                if self._pid != os.getpid():
                    raise ValueError(f"this NetnsPool belongs to process {self._pid}: a "
                                     f"forked child makes a pool of its own")
                raise ValueError("the pool is closed")
            if self._ready:
                ns = self._ready.popleft()
                self._hits += 1
                if len(self._ready) == self._low:
                    self._cond.notify()
                self._wait_ns += time.perf_counter_ns() - t0
                return ns
            self._misses += 1
            self._cond.notify()
        ns = self._make_inline()
        with self._cond:
            self._wait_ns += time.perf_counter_ns() - t0
        return ns

    def stats(self) -> dict[str, Any]:
        """hits, misses, wait_seconds (spent inside take()), ready, made (by the
        background thread), setup_errors, last_error.

        >>> with nsfast.NetnsPool(size=1) as pool:
        ...     pool.take().close()
        ...     pool.stats()["hits"] + pool.stats()["misses"]
        1
        """
        with self._cond:
            return {
                "hits": self._hits,
                "misses": self._misses,
                "wait_seconds": self._wait_ns / 1e9,
                "ready": len(self._ready),
                "made": self._made,
                "setup_errors": self._setup_errors,
                "last_error": self._last_error,
            }

    def close(self) -> None:
        """Stop refilling and release every namespace still in the pool; twice is fine.

        >>> pool = nsfast.NetnsPool(size=1)
        >>> pool.close(); pool.close(); pool.closed
        True
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._cond:
            while self._ready:
                self._ready.popleft().close()

    @property
    def closed(self) -> bool:
        """True once close() has run."""
        return self._closed

    def __repr__(self) -> str:
        s = self.stats()
        return (f"<NetnsPool size={self.size} ready={s['ready']} hits={s['hits']} "
                f"misses={s['misses']}{' closed' if self._closed else ''}>")


class _Shared:
    """The process's loopback pool (shared_loopback), made on first use."""
    lock = threading.Lock()
    pool: Optional[NetnsPool] = None
    pid = 0


def shared_loopback() -> NetnsPool:
    """This process's pool of fresh network namespaces with lo up, which
    Sandboxes share by default (as root): a payload joins one instead of
    making its own, so the kernel's half a millisecond of making it is
    spent ahead, off the spawn.  Each namespace is still handed out once.

    >>> nsfast.pool.shared_loopback() is nsfast.pool.shared_loopback()
    True
    """
    with _Shared.lock:
        if _Shared.pool is None or _Shared.pool.closed or _Shared.pid != os.getpid():
            from .netns import loopback_up
            _Shared.pool, _Shared.pid = NetnsPool(size=8, setup=loopback_up), os.getpid()
        return _Shared.pool


def close_shared() -> None:
    """Close the shared loopback pool, if there is one (its thread stops, its
    ready namespaces go); the next default Sandbox makes a new one.

    >>> nsfast.pool.close_shared()
    """
    with _Shared.lock:
        pool, _Shared.pool = _Shared.pool, None
    if pool is not None and _Shared.pid == os.getpid():
        pool.close()
