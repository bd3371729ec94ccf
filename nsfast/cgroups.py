"""One cgroup per sandbox, on cgroup v2, v1 and hybrid hosts, behind one interface.

A Box is a sandbox's cgroup: one directory in each hierarchy it needs (the
v1 hierarchies of its controllers, and the v2 tree when it is mounted),
each made under this process's own cgroup of that hierarchy, in a subtree
named after the owner, `<own>/nsfast-<pidns>-<pid>-<starttime>/box-<n>`.  nsfast
never writes into a cgroup it did not make.  A subtree whose owner is gone
(its pid ended, or is now another process with another start time) is
stale: gc(), run in the owner's pid namespace, kills what is still in it and removes it; the first box a
process makes calls gc() first, and so does `nsfast gc`.

The child enters with CLONE_INTO_CGROUP on v2 (Box.fd) and by a write of
its pid into cgroup.procs while it waits for its release on v1
(Box.attach).  Limits are written when the box is made, before the child
exists.  When the sandbox is reaped, Box.finish() kills what is left
(cgroup.kill on v2, freezer or a kill loop on v1), reads the usage and
removes the directories.

A limit the host cannot apply is an OSError naming the controller and the
path, raised before the child runs.
"""
from __future__ import annotations

import atexit
import errno
import itertools
import os
import re
import signal
import threading
import time
from typing import NamedTuple, Optional

from .errors import os_error
from .limits import Limits

_PERIOD_US = 100_000   # cpu quota period
_RESIDUE_MAX = 1 << 20   # memory still charged to a box that may be reused
_SUBTREE = re.compile(r"nsfast-(\d+)-(\d+)-(\d+)\Z")   # pid ns inode, pid, start time


def _owner_name() -> str:
    """This process's subtree name: its pid namespace (a pid means nothing
    outside it), its pid and its start time (a pid is reused)."""
    return (f"nsfast-{os.stat('/proc/self/ns/pid').st_ino}-{os.getpid()}-"
            f"{_start_time('self')}")


class Hierarchy(NamedTuple):
    """A mounted cgroup hierarchy: its controllers (empty set for v2: see
    controllers_v2), the directory of this process's own cgroup in it."""
    version: int
    controllers: frozenset
    own: str


def _start_time(pid) -> Optional[int]:
    """Field 22 of /proc/pid/stat, or None when pid does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2:].split()[19])


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def hierarchies() -> list[Hierarchy]:
    """The cgroup hierarchies this process is in, with its own directory in each.

    >>> all(os.path.isdir(h.own) for h in hierarchies())
    True
    """
    own_paths: dict = {}
    with open("/proc/self/cgroup", errors="surrogateescape") as f:
        for line in f:
            hid, ctrls, path = line.rstrip("\n").split(":", 2)
            own_paths["" if hid == "0" and not ctrls else ctrls] = path
    found = []
    with open("/proc/self/mountinfo", errors="surrogateescape") as f:
        for line in f:
            left, _, right = line.rstrip("\n").partition(" - ")
            fields = left.split()
            fstype, _source, options = right.split(" ", 2)
            if fstype not in ("cgroup", "cgroup2"):
                continue
            root, mount_point = _unescape(fields[3]), _unescape(fields[4])
            if fstype == "cgroup2":
                key, ctrls = "", frozenset()
            else:
                opts = options.split(",")
                ctrls = frozenset(o for o in opts if o not in ("rw", "ro") and "=" not in o
                                  and not o.startswith("no") and o != "relatime")
                names = [o for o in opts if o.startswith("name=")]
                key = ",".join(sorted(c for c in own_paths if c and set(c.split(",")) ==
                                      set(ctrls | set(names))))
                if not key:
                    continue
            path = own_paths.get(key)
            if path is None or not (path == root or path.startswith(root.rstrip("/") + "/")):
                continue   # mounted from another place of the hierarchy
            own = os.path.join(mount_point, path[len(root):].lstrip("/")).rstrip("/")
            if any(h.own == own for h in found):
                continue   # the same hierarchy mounted twice
            found.append(Hierarchy(2 if fstype == "cgroup2" else 1, ctrls, own))
    return found


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, text: str, controller: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise os_error(e.errno, path, f"the {controller} controller cannot be used here",
                       what=f"opening the {controller} cgroup file") from None
    try:
        os.write(fd, text.encode())
    except OSError as e:
        raise os_error(e.errno, path, None, what=f"writing {text!r} for the {controller} "
                       f"controller") from None
    finally:
        os.close(fd)


def _key_values(path: str, read=_read) -> dict:
    """A flat keyed file ("key value" lines) as a dict of ints; {} if missing."""
    try:
        text = read(path)
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if v.strip().lstrip("-").isdigit():
            out[k] = int(v)
    return out


def _int_file(path: str, read=_read) -> Optional[int]:
    try:
        return int(read(path).split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _needed(limits: Limits) -> list[str]:
    need = []
    if limits.memory is not None or limits.memory_swap is not None:
        need.append("memory")
    if limits.pids is not None:
        need.append("pids")
    if limits.cpu is not None:
        need.append("cpu")
    return need


class Layout(NamedTuple):
    """Where a box's directories go: the v1 hierarchies (own dir, controllers)
    and the v2 own dir (or None), with the controllers taken from v2."""
    v1: tuple
    v2: Optional[str]
    v2_controllers: frozenset


def layout(needed: list[str]) -> Layout:
    """Where each needed controller is, plus the v1 freezer on a host without
    a v2 tree (to kill) and the v2 tree itself.  OSError naming the
    controller when one is nowhere.

    >>> layout([]).v2 is None or os.path.isdir(layout([]).v2)
    True
    """
    hs = hierarchies()
    v2 = next((h.own for h in hs if h.version == 2), None)
    v2_ctrls: frozenset = frozenset()
    if v2 is not None:
        try:
            # a box's controllers are what its parent enables: only those our
            # own cgroup already enables for its children (never changed here)
            v2_ctrls = frozenset(_read(os.path.join(v2, "cgroup.subtree_control")).split())
        except OSError:
            pass
    v1 = {}
    taken_v2 = set()
    for c in needed:
        h = next((h for h in hs if h.version == 1 and c in h.controllers), None)
        if h is not None:
            v1[h.own] = h.controllers
        elif c in v2_ctrls:
            taken_v2.add(c)
        else:
            where = ", ".join(sorted(h.own for h in hs)) or "no cgroup mounted"
            raise os_error(errno.ENODEV, f"/sys/fs/cgroup ({where})",
                           f"the {c} controller is neither a cgroup v1 hierarchy nor "
                           f"enabled below this process's cgroup v2 ({v2})",
                           what=f"no {c} controller")
    if needed:
        # the freezer kills on v1 only (v2 has cgroup.kill).  No cpuacct: each
        # v1 hierarchy costs a cgroup.procs write per spawn (a migration, tens
        # of microseconds), and the CPU time comes from the reaped child's rusage
        for extra in () if v2 is not None else ("freezer",):
            h = next((h for h in hs if h.version == 1 and extra in h.controllers), None)
            if h is not None:
                v1[h.own] = h.controllers
    return Layout(tuple(v1.items()), v2, frozenset(taken_v2))


class _Owner:
    """This process's subtree in each hierarchy: made on first use."""
    lock = threading.Lock()
    pid = -1
    made: set = set()
    counter = itertools.count()

    @classmethod
    def remove_all(cls) -> None:
        """At exit: remove this process's idle boxes and subtrees."""
        if cls.pid == os.getpid():
            _Idle.clear()
            for path in cls.made:
                try:
                    os.rmdir(path)
                except OSError:
                    pass   # a box still used: gc() removes it later

    @classmethod
    def subtree(cls, own: str) -> str:
        pid = os.getpid()
        with cls.lock:
            if cls.pid != pid:   # first use, or a forked child: its own subtree
                cls.pid, cls.made = pid, set()
                gc()
                atexit.register(cls.remove_all)
            path = os.path.join(own, _owner_name())
            if path not in cls.made:
                try:
                    os.mkdir(path, 0o755)
                except FileExistsError:
                    pass
                except OSError as e:
                    raise os_error(e.errno, path, "making cgroups needs write access to "
                                   "this process's own cgroup", what="making a cgroup") from None
                cls.made.add(path)
            return path


class BoxUsage(NamedTuple):
    cpu_user: Optional[float]
    cpu_system: Optional[float]
    max_memory: Optional[int]
    oom_killed: bool
    pids_hit: bool


class Box:
    """One sandbox's cgroup (a directory per hierarchy), limits written.

    >>> box = Box(Limits(pids=8))
    >>> with open(box.file("pids.max")) as f:
    ...     f.read()
    '8\\n'
    >>> box.finish().pids_hit
    False
    >>> clear() >= 1   # the clean box was kept for reuse
    True
    """

    def __init__(self, limits: Limits, place: Optional[Layout] = None):
        place = place or layout(_needed(limits))
        self.dirs: list = []          # (path, version, controllers)
        self.fd = -1                  # the v2 directory, for CLONE_INTO_CGROUP
        self.finished = False
        self._killed = False
        self._fds: dict = {}
        self._join: dict = {}   # cloned_into -> the fds of join_fds
        self.key = _key(limits)
        # kernel objects of an ended sandbox are freed a while after it
        # (RCU): a box reused at once still has some charged, a little
        # more each time, so what may stay is a small share of the limit
        self._residue_max = max(_RESIDUE_MAX, (limits.memory or 0) // 128)
        # counters of v2 controllers cannot all be reset: such boxes are not reused
        self._reusable = not place.v2_controllers
        name = f"box-{next(_Owner.counter)}"
        try:
            for own, ctrls in place.v1:
                self._make(os.path.join(_Owner.subtree(own), name), 1, ctrls)
            if place.v2 is not None:
                parent = _Owner.subtree(place.v2)
                if place.v2_controllers:
                    _write(os.path.join(parent, "cgroup.subtree_control"),
                           " ".join(f"+{c}" for c in sorted(place.v2_controllers)),
                           ",".join(sorted(place.v2_controllers)))
                try:
                    self._make(os.path.join(parent, name), 2, place.v2_controllers)
                except OSError:
                    if place.v2_controllers:
                        raise
                if any(v == 2 for _, v, _ in self.dirs):
                    self.fd = os.open(self.dirs[-1][0], os.O_RDONLY | os.O_DIRECTORY
                                      | os.O_CLOEXEC)
            self._limit(limits)
        except BaseException:
            self._remove()
            raise

    # A box's files stay open while it lives (and is reused): a spawn then
    # costs one write per v1 hierarchy and its end a pread per counter,
    # not an open, read and close each.
    def _r(self, path: str) -> str:
        fd = self._fds.get(path)
        if fd is None:
            fd = self._fds[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        return os.pread(fd, 4096, 0).decode()

    def _fd_w(self, path: str, controller: str) -> int:
        key = path + "\0w"
        fd = self._fds.get(key)
        if fd is None:
            try:
                fd = self._fds[key] = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            except OSError as e:
                raise os_error(e.errno, path, f"the {controller} controller cannot be "
                               f"used here", what=f"opening the {controller} cgroup file") from None
        return fd

    def _w(self, path: str, text: str, controller: str) -> None:
        fd = self._fd_w(path, controller)
        try:
            os.write(fd, text.encode())
        except OSError as e:
            raise os_error(e.errno, path, None, what=f"writing {text!r} for the {controller} "
                           f"controller") from None

    def _make(self, path: str, version: int, ctrls: frozenset) -> None:
        try:
            os.mkdir(path, 0o755)
        except OSError as e:
            raise os_error(e.errno, path, f"the {','.join(sorted(ctrls)) or 'cgroup v2'} "
                           f"hierarchy refused a new cgroup", what="making a cgroup") from None
        self.dirs.append((path, version, ctrls))

    def file(self, name: str) -> str:
        """The path of a controller file in whichever directory has it."""
        for path, _, _ in self.dirs:
            p = os.path.join(path, name)
            if os.path.exists(p):
                return p
        ctrl = name.split(".")[0]
        raise os_error(errno.ENOENT, os.path.join(self.dirs[0][0] if self.dirs else "?", name),
                       f"no cgroup of this sandbox has the {ctrl} controller's file",
                       what=f"the {ctrl} controller")

    def _limit(self, limits: Limits) -> None:
        v2 = {c for _, v, cs in self.dirs if v == 2 for c in cs}
        if limits.memory is not None:
            if "memory" in v2:
                _write(self.file("memory.max"), str(limits.memory), "memory")
                swap = (limits.memory_swap or limits.memory) - limits.memory
                _write(self.file("memory.swap.max"), str(swap), "memory")
            else:
                _write(self.file("memory.limit_in_bytes"), str(limits.memory), "memory")
                try:
                    memsw = self.file("memory.memsw.limit_in_bytes")
                except OSError:
                    if limits.memory_swap is not None:
                        raise
                else:   # no swap beyond memory unless memory_swap says so
                    _write(memsw, str(limits.memory_swap or limits.memory), "memory")
        if limits.pids is not None:
            _write(self.file("pids.max"), str(limits.pids), "pids")
        if limits.cpu is not None:
            quota = max(1000, round(limits.cpu * _PERIOD_US))
            if "cpu" in v2:
                _write(self.file("cpu.max"), f"{quota} {_PERIOD_US}", "cpu")
            else:
                _write(self.file("cpu.cfs_period_us"), str(_PERIOD_US), "cpu")
                _write(self.file("cpu.cfs_quota_us"), str(quota), "cpu")

    def join_fds(self, cloned_into: bool) -> list[int]:
        """The files the child writes "0" into to join the box itself, first
        thing (csrc/spawn_child.c): each v1 directory's tasks (one thread:
        the kernel's global lock is skipped), and the v2 one's cgroup.procs
        unless the clone put it there (CLONE_INTO_CGROUP, cloned_into)."""
        fds = self._join.get(cloned_into)
        if fds is None:
            fds = []
            for path, version, ctrls in self.dirs:
                if version == 1 or not cloned_into:
                    name = "tasks" if version == 1 else "cgroup.procs"
                    fds.append(self._fd_w(os.path.join(path, name),
                                          ",".join(sorted(ctrls)) or "cgroup v2"))
            self._join[cloned_into] = fds
        return fds

    def pids(self) -> list[int]:
        """The processes in the box (from its first directory)."""
        if not self.dirs:
            return []
        try:
            # opened afresh: a v1 cgroup.procs read again through the same
            # fd can list tasks that have left (its pid list is cached)
            return [int(x) for x in _read(os.path.join(self.dirs[0][0], "cgroup.procs")).split()]
        except OSError:
            return []

    def _empty(self) -> bool:
        """No process in the box: pids.current (zombies count) or v2's
        cgroup.events, read through a kept fd, else cgroup.procs afresh."""
        for path, version, ctrls in self.dirs:
            if "pids" in ctrls:
                return _int_file(os.path.join(path, "pids.current"), self._r) == 0
        for path, version, _ in self.dirs:
            if version == 2:
                events = _key_values(os.path.join(path, "cgroup.events"), self._r)
                return events.get("populated", 1) == 0
        return not self.pids()

    def kill(self) -> None:
        """SIGKILL everything in the box: cgroup.kill (v2), else freeze, kill, thaw."""
        self._killed = True
        for path, version, _ in self.dirs:
            if version == 2 and os.path.exists(os.path.join(path, "cgroup.kill")):
                try:
                    _write(os.path.join(path, "cgroup.kill"), "1", "cgroup v2")
                    return
                except OSError:
                    break
        freezer = next((p for p, v, c in self.dirs if v == 1 and "freezer" in c), None)
        if freezer is not None:
            state = os.path.join(freezer, "freezer.state")
            try:
                _write(state, "FROZEN", "freezer")
                for _ in range(200):   # a frozen box cannot fork between reads and kills
                    if _read(state).strip() != "FREEZING":
                        break
                    time.sleep(0.001)
            except OSError:
                freezer = None
        try:
            for _ in range(1000):   # a fork may race each pass without the freezer
                pids = self.pids()
                if not pids:
                    return
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                if freezer is not None:
                    return
        finally:
            if freezer is not None:
                try:
                    _write(os.path.join(freezer, "freezer.state"), "THAWED", "freezer")
                except OSError:
                    pass

    def usage(self) -> BoxUsage:
        """CPU seconds, the memory peak, and whether OOM or the pids limit struck."""
        user = system = peak = None
        oom = pids_hit = False
        for path, version, ctrls in self.dirs:
            if version == 2 and user is None:   # cpuacct (v1) if there is one: it can be reset
                st = _key_values(os.path.join(path, "cpu.stat"), self._r)
                if "user_usec" in st:
                    user, system = st["user_usec"] / 1e6, st["system_usec"] / 1e6
            if version == 1 and "cpuacct" in ctrls:
                u = _int_file(os.path.join(path, "cpuacct.usage_user"), self._r)
                s = _int_file(os.path.join(path, "cpuacct.usage_sys"), self._r)
                if u is not None and s is not None:
                    user, system = u / 1e9, s / 1e9
            if "memory" in ctrls:
                peak_file, oom_file = _MEMORY_FILES[version]
                peak = _int_file(os.path.join(path, peak_file), self._r)
                oom |= _key_values(os.path.join(path, oom_file), self._r).get("oom_kill", 0) > 0
            if "pids" in ctrls:
                pids_hit |= _key_values(os.path.join(path, "pids.events"), self._r).get("max", 0) > 0
        return BoxUsage(user, system, peak, oom, pids_hit)

    def finish(self) -> BoxUsage:
        """Kill what is left and read the usage; then keep the box for the
        next sandbox with the same limits when it is clean (empty, no
        counter that cannot be reset), else remove its directories."""
        if self.finished:
            raise ValueError("this cgroup box was finished already")
        if not self._empty():
            self.kill()
        used = self.usage()
        # a v2 cgroup that got cgroup.kill kills every later clone into it
        # (seen on 6.18): a box that needed a kill is never reused
        clean = (self._reusable and not self._killed and not used.oom_killed
                 and not used.pids_hit and self._reset(used.max_memory))
        # finished before it is put back: another thread may take it at once
        self.finished = True
        if not (clean and _Idle.put(self)):
            self._remove()
        return used

    def _reset(self, peak: Optional[int]) -> bool:
        """Ready the box for another sandbox: empty, little memory charged,
        the peak and CPU counters at zero.  False when it cannot be."""
        try:   # empty: finish() saw it, and nothing joins a box of ours
            for path, version, ctrls in self.dirs:
                if version == 1 and "memory" in ctrls:
                    # page cache the payload left stays charged: then a fresh
                    # box, so that no sandbox starts with less than a share of
                    # its limit (what is charged now is at most the peak)
                    if peak is None or peak > self._residue_max:
                        used = _int_file(os.path.join(path, "memory.usage_in_bytes"), self._r)
                        if used is None or used > self._residue_max:
                            return False
                    self._w(os.path.join(path, "memory.max_usage_in_bytes"), "0", "memory")
                if version == 1 and "cpuacct" in ctrls:
                    self._w(os.path.join(path, "cpuacct.usage"), "0", "cpuacct")
        except OSError:
            return False
        return True

    def _remove(self) -> None:
        self.finished = True
        for fd in self._fds.values():
            os.close(fd)
        self._fds, self._join = {}, {}
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        for path, _, _ in reversed(self.dirs):
            _rmdir_killing(path)
        self.dirs = []


# cgroup version -> (the memory peak, the file whose oom_kill counts OOM kills)
_MEMORY_FILES = {1: ("memory.max_usage_in_bytes", "memory.oom_control"),
                 2: ("memory.peak", "memory.events")}


def _key(limits: Limits) -> tuple:
    """What a box's directories and written limits depend on."""
    return (limits.memory, limits.memory_swap, limits.pids, limits.cpu)


class _Idle:
    """Boxes made ahead (prepare) or left clean by a sandbox, by their
    limits: taking one costs no mkdir and no write."""
    lock = threading.Lock()
    boxes: dict = {}
    count = 0
    MAX = 32

    @classmethod
    def put(cls, box: "Box") -> bool:
        with cls.lock:
            if cls.count >= cls.MAX or _Owner.pid != os.getpid():
                return False
            cls.boxes.setdefault(box.key, []).append(box)
            cls.count += 1
            return True

    @classmethod
    def get(cls, key: tuple) -> Optional["Box"]:
        with cls.lock:
            boxes = cls.boxes.get(key)
            if not boxes or _Owner.pid != os.getpid():
                return None
            cls.count -= 1
            box = boxes.pop(0)   # the one that rested longest: its residue drained
        box.finished = False
        return box

    @classmethod
    def clear(cls) -> int:
        with cls.lock:
            boxes = [b for bs in cls.boxes.values() for b in bs]
            cls.boxes, cls.count = {}, 0
        for b in boxes:
            b._remove()
        return len(boxes)


_layouts: dict = {}


def _layout_for(limits: Limits) -> Layout:
    """layout() of the controllers limits need, cached: mounts rarely change,
    and a changed one fails the box's mkdir or write with its path."""
    needed = tuple(_needed(limits))
    place = _layouts.get(needed)
    if place is None:
        place = _layouts[needed] = layout(list(needed))
    return place


def take(limits: Limits) -> Box:
    """A box with limits written, for one sandbox: a clean idle one with the
    same limits if there is one, else a new one.

    >>> take(Limits(pids=4)).finish().oom_killed
    False
    >>> clear() >= 1
    True
    """
    box = _Idle.get(_key(limits))
    if box is not None:
        return box
    try:
        return Box(limits, _layout_for(limits))
    except OSError:
        _layouts.clear()   # the host may have changed: look again next time
        raise


def prepare(limits: Limits, count: int = 8) -> int:
    """Make up to count boxes for limits ahead of time (off the spawn's
    path); return how many are ready.  They are reused after each sandbox
    while they stay clean, and removed at exit (or by gc() after a crash).

    >>> prepare(Limits(pids=16), 2)
    2
    >>> clear()
    2
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count is a number of boxes, not {count!r}")
    if not isinstance(limits, Limits):
        raise TypeError(f"limits is an nsfast.Limits, not {type(limits).__name__}")
    key = _key(limits)
    have = len(_Idle.boxes.get(key, ()))
    for _ in range(count - have):
        box = Box(limits, _layout_for(limits))
        box.finished = True
        if not _Idle.put(box):
            box._remove()
            break
    return len(_Idle.boxes.get(key, ()))


def clear() -> int:
    """Remove the boxes kept for reuse (and made by prepare()); return how many.

    >>> clear() >= 0
    True
    """
    return _Idle.clear()


def _rmdir_killing(path: str, timeout: float = 2.0) -> bool:
    """rmdir a cgroup we made, killing what is in it; False if it stays busy
    (then gc() removes it once its owner is gone)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                return False
        try:
            procs = _read(os.path.join(path, "cgroup.procs")).split()
        except OSError:
            procs = []
        for pid in procs:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        time.sleep(0.002)


_INIT_PIDNS = 0xEFFFFFFC   # PROC_PID_INIT_INO: the initial pid namespace's inode


def _stale(owner_ns: int, pid: int, start: int, pidns: int, live: list) -> bool:
    """Whether the owner of a subtree is gone.  In our pid namespace: its pid
    has ended or is another process now.  In another one: only from the
    initial pid namespace, which sees every process, when no process is
    left in that namespace (it is gone with its owner); otherwise it is
    that namespace's to judge."""
    if owner_ns == pidns:
        return _start_time(pid) != start
    if pidns != _INIT_PIDNS:
        return False
    if not live:
        live.append(_live_pid_namespaces())
    return owner_ns not in live[0]


def _live_pid_namespaces() -> set:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                found.add(os.stat(f"/proc/{entry}/ns/pid").st_ino)
            except OSError:
                pass
    return found


def gc() -> int:
    """Remove the subtrees of owners that are gone, in every hierarchy, killing
    what they still hold; return how many subtrees were removed.

    >>> gc() >= 0
    True
    """
    removed = 0
    try:
        pidns = os.stat("/proc/self/ns/pid").st_ino
        if int(os.readlink("/proc/self")) != os.getpid():
            return 0   # this /proc is another pid namespace's: its pids are not ours
    except (OSError, ValueError):
        return 0
    live: list = []   # the pid namespaces that have a process, found once if needed
    for h in hierarchies():
        try:
            names = os.listdir(h.own)
        except OSError:
            continue
        for name in names:
            m = _SUBTREE.match(name)
            if not m or not _stale(int(m.group(1)), int(m.group(2)), int(m.group(3)),
                                   pidns, live):
                continue
            subtree = os.path.join(h.own, name)
            ok = True
            for box in os.listdir(subtree) if os.path.isdir(subtree) else ():
                if box.startswith("box-"):
                    ok &= _rmdir_killing(os.path.join(subtree, box))
            if ok and _rmdir_killing(subtree):
                removed += 1
    return removed
