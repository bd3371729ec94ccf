"""Limits (what a sandbox may use) and Usage (what it used and why it ended).

A Limits is validated when it is made, before anything is touched: bad
values are ValueError/TypeError.  Its rlimits (cpu_time, nofile, fsize,
stack, address_space, core) are set by the child on itself before exec
(the "rlimits" step of csrc/spawn_child.c); memory, memory_swap, pids and
cpu need a cgroup per sandbox (nsfast/cgroups.py); wall_time is kept by
the caller (nsfast/watch.py and Process.wait()).
"""
from __future__ import annotations

import math
import re
import resource
import signal
from typing import NamedTuple, Optional, Union

Size = Union[int, str]

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)

# the rlimits Limits sets, by field: (resource number, the name `--rlimit` takes)
RLIMIT_FIELDS = {
    "cpu_time": (resource.RLIMIT_CPU, "cpu"),
    "nofile": (resource.RLIMIT_NOFILE, "nofile"),
    "nproc": (resource.RLIMIT_NPROC, "nproc"),
    "fsize": (resource.RLIMIT_FSIZE, "fsize"),
    "stack": (resource.RLIMIT_STACK, "stack"),
    "address_space": (resource.RLIMIT_AS, "as"),
    "core": (resource.RLIMIT_CORE, "core"),
}
RLIMIT_NAMES = {name: field for field, (_, name) in RLIMIT_FIELDS.items()}
_SIZE_FIELDS = ("memory", "memory_swap", "fsize", "stack", "address_space", "core")
# the kernel's ceiling for an rlimit value that is not RLIM_INFINITY
_RLIM_MAX = (1 << 63) - 1


def parse_size(value: Size, what: str = "size") -> int:
    """Bytes from an int or a string with an optional binary unit (K, M, G, T).

    >>> parse_size("256M"), parse_size(4096), parse_size("1.5k")
    (268435456, 4096, 1536)
    """
    if isinstance(value, bool):
        raise TypeError(f"{what} is bytes (an int) or a string like '256M', not a bool")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str):
        m = _SIZE.fullmatch(value)
        if not m:
            raise ValueError(f"{what} {value!r} is not a size like 4096, '64K' or '256M'")
        n = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    else:
        raise TypeError(f"{what} is bytes (an int) or a string like '256M', "
                        f"not {type(value).__name__}")
    if n < 0:
        raise ValueError(f"{what} must not be negative: {value!r}")
    if n > _RLIM_MAX:
        raise ValueError(f"{what} {value!r} is more than 2**63-1 bytes")
    return n


def _seconds(value, what: str, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} is seconds (a number), not {type(value).__name__}")
    if not math.isfinite(value) or value <= minimum:
        raise ValueError(f"{what} must be a finite number above {minimum}, not {value!r}")
    return float(value)


def _count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} is a count (an int), not {type(value).__name__}")
    if not 0 < value <= _RLIM_MAX:
        raise ValueError(f"{what} must be at least 1, not {value!r}")
    return value


class Limits:
    """What one sandbox may use.  None is no limit; core is 0 (no core dumps)
    unless given.

    memory, memory_swap: bytes of RAM, and of RAM plus swap, in the sandbox's
    cgroup (OOM kill beyond them).  pids: tasks in the cgroup.  cpu: a share
    of one CPU (0.5 is half a core) through the cgroup's CPU quota.
    cpu_time: CPU seconds of each process (RLIMIT_CPU: SIGXCPU at the limit,
    SIGKILL a second later).  wall_time: seconds from the start, after which
    the whole sandbox is killed.  nofile, fsize, stack, address_space, core:
    the rlimits (sizes take bytes or a string such as "256M").  nproc:
    RLIMIT_NPROC, the processes of the payload's uid in its user namespace
    (the tasks limit where no cgroup can be made).

    >>> Limits(memory="256M", pids=64, cpu_time=1.5)
    Limits(memory=268435456, pids=64, cpu_time=1.5, core=0)
    >>> p = nsfast.spawn(["sh", "-c", "ulimit -n"], limits=Limits(nofile=64),
    ...                  stdout=nsfast.PIPE)
    >>> p.communicate()[0]
    b'64\\n'
    """
    _FIELDS = ("memory", "memory_swap", "pids", "cpu", "cpu_time", "wall_time", "nofile",
               "fsize", "stack", "address_space", "core", "nproc")
    # _hash: a spawn's plan is looked up by its options, Limits among them
    __slots__ = (*_FIELDS, "_hash")

    def __init__(self, memory: Optional[Size] = None, memory_swap: Optional[Size] = None,
                 pids: Optional[int] = None, cpu: Optional[float] = None,
                 cpu_time: Optional[float] = None, wall_time: Optional[float] = None,
                 nofile: Optional[int] = None, fsize: Optional[Size] = None,
                 stack: Optional[Size] = None, address_space: Optional[Size] = None,
                 core: Optional[Size] = 0, nproc: Optional[int] = None) -> None:
        values = dict(memory=memory, memory_swap=memory_swap, fsize=fsize, stack=stack,
                      address_space=address_space, core=core)
        for name in _SIZE_FIELDS:
            v = values[name]
            object.__setattr__(self, name, None if v is None else parse_size(v, name))
        if self.memory is not None and self.memory < 4096:
            raise ValueError(f"memory must be at least one page (4096 bytes), not {memory!r}")
        if self.memory_swap is not None:
            if self.memory is None:
                raise ValueError("memory_swap needs memory (it is memory plus swap)")
            if self.memory_swap < self.memory:
                raise ValueError("memory_swap is memory plus swap: it cannot be below memory")
        object.__setattr__(self, "pids", None if pids is None else _count(pids, "pids"))
        object.__setattr__(self, "nofile", None if nofile is None else _count(nofile, "nofile"))
        object.__setattr__(self, "nproc", None if nproc is None else _count(nproc, "nproc"))
        if cpu is not None:
            cpu = _seconds(cpu, "cpu", 0.0)
            if cpu < 0.001:
                raise ValueError(f"cpu is a share of one CPU of at least 0.001, not {cpu!r}")
        object.__setattr__(self, "cpu", cpu)
        object.__setattr__(self, "cpu_time", None if cpu_time is None
                           else _seconds(cpu_time, "cpu_time", 0.0))
        object.__setattr__(self, "wall_time", None if wall_time is None
                           else _seconds(wall_time, "wall_time", 0.0))
        object.__setattr__(self, "_hash", hash(self._items()))

    def __setattr__(self, name, value):
        raise AttributeError("Limits are immutable")

    def _items(self) -> tuple:
        return tuple((n, getattr(self, n)) for n in self._FIELDS)

    def __eq__(self, other):
        return type(other) is Limits and self._items() == other._items()

    def __hash__(self):
        return self._hash

    def __reduce__(self):
        # copy and pickle: through __init__, since attributes cannot be set
        return (_from_fields, (dict(self._items()),))

    def __repr__(self) -> str:
        given = ", ".join(f"{n}={v!r}" for n, v in self._items() if v is not None)
        return f"Limits({given})"

    @property
    def needs_cgroup(self) -> bool:
        """Whether a cgroup is needed (memory, memory_swap, pids or cpu)."""
        return any(v is not None for v in (self.memory, self.memory_swap, self.pids, self.cpu))

    def rlimits(self) -> list[tuple[int, int, int]]:
        """(resource, soft, hard) for each rlimit to set, -1 for infinity.

        RLIMIT_CPU is whole seconds, rounded up: soft N (SIGXCPU), hard N+1
        (SIGKILL), so that a payload that catches SIGXCPU still ends.

        >>> Limits(cpu_time=1.2, nofile=64).rlimits()[:2]
        [(0, 2, 3), (7, 64, 64)]
        """
        out = []
        for field, (res, _) in RLIMIT_FIELDS.items():
            v = getattr(self, field)
            if v is None:
                continue
            if field == "cpu_time":
                n = max(1, math.ceil(v))
                out.append((res, n, n + 1))
            else:
                out.append((res, v, v))
        return out

    def with_rlimit(self, text: str) -> "Limits":
        """A copy with one rlimit changed from "NAME=VALUE" (as --rlimit takes it).

        >>> Limits().with_rlimit("nofile=32").nofile
        32
        """
        name, sep, value = text.partition("=")
        field = RLIMIT_NAMES.get(name.strip().lower())
        if not sep or field is None:
            raise ValueError(f"--rlimit takes NAME=VALUE with NAME one of "
                             f"{', '.join(sorted(RLIMIT_NAMES))}, not {text!r}")
        if field in ("nofile", "nproc"):
            parsed = int(value) if value.strip().isdigit() else value
        elif field == "cpu_time":
            try:
                parsed = float(value)
            except ValueError:
                raise ValueError(f"--rlimit cpu takes seconds, not {value!r}") from None
        else:
            parsed = value
        values = dict(self._items())
        values[field] = parsed
        return Limits(**values)


def _from_fields(fields: dict) -> "Limits":
    """A Limits from its fields by name (what __reduce__ hands pickle and copy)."""
    return Limits(**fields)


class Usage(NamedTuple):
    """What a reaped sandbox used, and why it ended.

    exit_code: its exit status, or None when a signal ended it (then signal
    is the signal number).  wall_time, cpu_time_user, cpu_time_system:
    seconds.  max_rss: bytes, the peak of the sandbox's cgroup when it has
    one, else of the largest process (rusage).  oom_killed: the cgroup's
    OOM killer killed something in it.  limit_hit: None or "wall_time",
    "cpu_time", "memory", "pids", "fsize".

    >>> p = nsfast.spawn(["true"]); p.wait()
    0
    >>> p.usage.exit_code, p.usage.signal, p.usage.limit_hit
    (0, None, None)
    """
    exit_code: Optional[int]
    signal: Optional[int]
    wall_time: float
    cpu_time_user: float
    cpu_time_system: float
    max_rss: int
    oom_killed: bool
    limit_hit: Optional[str]


def limit_hit(limits: Optional[Limits], sig: Optional[int], cpu_time: float,
              timed_out: bool, oom_killed: bool, pids_hit: bool) -> Optional[str]:
    """Which limit ended (or hampered) the sandbox, the most telling first.

    >>> limit_hit(Limits(cpu_time=1), signal.SIGKILL, 1.9, False, False, False)
    'cpu_time'
    """
    if timed_out:
        return "wall_time"
    if oom_killed:
        return "memory"
    if limits is not None and limits.cpu_time is not None and (
            sig == signal.SIGXCPU or sig == signal.SIGKILL
            and cpu_time >= 0.9 * max(1, math.ceil(limits.cpu_time))):
        return "cpu_time"   # rusage counts in ticks: a little below the limit
    if sig == signal.SIGXFSZ:
        return "fsize"
    if pids_hit:
        return "pids"
    return None
