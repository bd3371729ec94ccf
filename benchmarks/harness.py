"""Timing machinery: interleaved samples, the compiled C floors, statistics, targets.

A Case times one operation done by nsfast, by each peer and by a C floor
program.  Samples are taken in passes after a warm-up, one sample of each contender
per pass in a shuffled order (A B C, C A B, B C A, ...), so that drift on this
shared machine, and whatever one contender leaves behind for the next, hits
every contender alike.  The floor is one more contender in that order, as a
program answering one sample per request (served) or as a library loaded
into this process (in process); a few floors still run in rounds of their
own between the passes (Floor says which and why).  Every case must prove, through
its check(), that the operation really happened; run_case refuses a case
without one.  The result records are described in benchmarks/SCHEMA.md.

Writing a case (in benchmarks/cases_<area>.py, `def cases(cfg) -> list[Case]`):

    Case("spawn/net", op=lambda: nsfast.spawn(["/bin/true"], namespaces="net").wait(),
         floor=Floor("floor_spawn.c", ["net"]),
         peers=[command_peer("unshare", ["unshare", "-n", "/bin/true"])],
         check=check_child_gets_new_net_inode,
         targets=[within(1.10, key="spawn-floor"), at_most(0.5, "unshare", key="spawn-unshare")])

A target compares nsfast's median with the floor's or a peer's: within(1.5) of the
floor, at_most(0.5, "unshare"), faster(3, "pyroute2").  A baseline that is not
another tool (the pool's "spawn with no net namespace") is a Peer too, so that it
is sampled interleaved with nsfast.  A module may also define `curves(cfg)`.
"""
from __future__ import annotations

import ctypes
import fcntl
import gc
import importlib
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

from .floors import build_floor

Op = Callable[[], object]

# How to get each peer the cases know about, shown when it is missing.
INSTALL = {
    "unshare": "apt-get install util-linux",
    "nsenter": "apt-get install util-linux",
    "lsns": "apt-get install util-linux",
    "ip": "apt-get install iproute2",
    "bwrap": "apt-get install bubblewrap",
    "pyroute2": "pip install pyroute2",
}

NOISE_SPREAD = 2.0          # p90/median above this reruns the case once
QUICK_MIN_SAMPLES = 5       # per contender, even past the budget
FULL_CASE_BUDGET_S = 30.0   # a full-run case stops sampling after this
# A case still running after this long is stopped with an error (an op that blocks
# forever must not hang the suite).
CASE_TIME_LIMIT_S = {True: 60.0, False: 600.0}


@dataclass
class Floor:
    """A C floor: benchmarks/<source> compiled with cc (floors.py), run as `prog N ARGS...`;
    it prints one sample in nanoseconds per line.  Where its samples are
    taken, in this order of preference:

    in_process: the floor is built as a shared library too and sampled inside
    the benchmark process, as one more contender in the passes with nsfast
    and the peers (floor_prepare/floor_sample in floor_common.h).  It then
    meets the same process, the same CPU and the same moment as nsfast's
    samples, and what the sample before left behind (a command's namespace
    teardown, evicted caches) falls on it as on them.  A floor program of its
    own has its own caches and page tables, and on a shared machine a
    microsecond call's cost drifts by 20-30% over seconds: in rounds, the
    ratio of the same code moved from 0.9 to 1.35 between runs.  Only for a
    floor that leaves this process as it found it: it may not move the
    calling thread's namespaces for good, start threads, nor fork (a fork
    leaves this process's pages copy-on-write, and the next sample pays the
    faults; clone with CLONE_VM, as nsfast's own spawn, shares them).

    served: otherwise the program takes `prog serve ARGS...` (floor_emit) and
    answers one sample per request, in the passes.

    Neither: in rounds of its own between the passes, for samples that are
    not one operation (a paced burst) or are taken in a forked child."""
    source: str
    args: list = field(default_factory=list)
    served: bool = False
    in_process: bool = False


@dataclass
class Peer:
    """Another implementation of the same operation; op None means missing,
    and install says how to get it."""
    name: str
    op: Optional[Op]
    install: str = ""


@dataclass(frozen=True)
class Target:
    """A goal on the nsfast/against median ratio, which must be <= limit.

    `against` is "floor" or a peer's name; `key` names one of REQUIRED_TARGETS
    when the target is one the project promised; `text` is how the report says it.
    """
    against: str
    limit: float
    text: str
    key: str = ""

    def judge(self, ratio: Optional[float]) -> str:
        if ratio is None:
            return "N/A"
        return "PASS" if ratio <= self.limit else "MISS"


def within(factor: float, against: str = "floor", key: str = "") -> Target:
    """nsfast at most `factor` times the time of `against`.

    >>> within(1.10, "floor").judge(1.05)
    'PASS'
    """
    what = "the floor" if against == "floor" else against
    return Target(against, factor, f"within {factor:g}x of {what}", key)


def at_most(fraction: float, against: str, key: str = "") -> Target:
    """nsfast takes at most `fraction` of the time of the peer `against`.

    >>> at_most(0.5, "unshare").judge(0.7)
    'MISS'
    """
    return Target(against, fraction, f"at most {fraction:g}x of {against}", key)


def faster(times: float, against: str, key: str = "") -> Target:
    """nsfast at least `times` times faster than the peer `against`.

    >>> faster(3, "pyroute2").judge(0.25)
    'PASS'
    """
    return Target(against, 1.0 / times, f"at least {times:g}x faster than {against}", key)


# The promises of the other issues, restated so that the report shows all of them
# in one table: key -> (what, target, globs of the case names it applies to).  A case may
# also claim one itself, e.g. targets=[within(1.10, key="spawn-floor")]; otherwise
# the suite judges every matching case that measured the `against` figure.
REQUIRED_TARGETS = {
    "spawn-floor": ("spawn", within(1.10, key="spawn-floor"), ("spawn-*",)),
    "spawn-unshare": ("spawn", at_most(0.5, "unshare", key="spawn-unshare"), ("spawn-*",)),
    # what the enter issue promised: a namespace entered and left again, i.e.
    # two setns calls, with enter(ns[, kind]) per kind and with nsfast.setns.
    # enter-pidfd-* (a pidfd_open and four setns) and enter-fds-* (the C setns
    # loop) are reported against their floors without this promise; the
    # command (enter-cli-*) is judged against nsenter.
    "enter-floor": ("enter", within(1.5, key="enter-floor"),
                    ("enter-net", "enter-uts", "enter-ipc", "enter-cgroup", "*/enter*",
                     "*setns*")),
    "netns-add-pyroute2": ("named netns add", faster(3, "pyroute2", key="netns-add-pyroute2"),
                           ("*netns*add*",)),
    "pool-nonet": ("spawn from the pool", within(1.15, "spawn no netns", key="pool-nonet"),
                   ("*pool*",)),
    "propagation-floor": ("propagation change", within(1.2, key="propagation-floor"),
                          ("set_propagation recursive*",)),
}


def judge(t: Target, result: dict) -> dict:
    """A target row for one result record: its ratio, PASS/MISS/N/A, and why."""
    ratio = result["ratio_floor"] if t.against == "floor" else result["ratio_peers"].get(t.against)
    why = ""
    if ratio is None:
        why = (f"{t.against} missing" if t.against in result["missing"] else
               f"{t.against} failed" if t.against in result.get("failed", {}) else
               "no floor" if t.against == "floor" else f"{t.against} not measured")
    return {"key": t.key, "text": t.text, "against": t.against, "limit": t.limit,
            "ratio": ratio, "status": t.judge(ratio), "why": why}


@dataclass
class Case:
    """One benchmarked operation.

    check() runs once before timing and raises unless the operation really
    happened (it looks at namespace inodes); it is required.  setup/teardown
    bracket the case.  targets: Target objects (within, at_most, faster); the
    older target=(against, limit) tuple still works."""
    name: str
    op: Op
    floor: Optional[Floor] = None
    peers: list = field(default_factory=list)
    check: Optional[Callable[[], None]] = None
    setup: Optional[Callable[[], None]] = None
    teardown: Optional[Callable[[], None]] = None
    target: Optional[tuple] = None
    targets: list = field(default_factory=list)
    samples: int = 200
    warmup: int = 10
    note: str = ""
    area: str = ""

    def all_targets(self) -> list:
        out = list(self.targets)
        if isinstance(self.target, Target):
            out.append(self.target)
        elif self.target:
            out.append(within(self.target[1], self.target[0]))
        return out


@dataclass
class Curve:
    """A scaling curve: run(cfg) returns its panels (see SCHEMA.md, "curves").

    check() proves the measured operation happens, as for a Case; plots.py
    draws one PNG per curve."""
    name: str
    title: str
    x_label: str
    run: Callable[["Config"], list]
    check: Optional[Callable[[], None]] = None
    note: str = ""
    log_x: bool = False
    area: str = ""


@dataclass
class Config:
    quick: bool = False
    repeat: int = 1
    only: Optional[str] = None
    case_budget_s: Optional[float] = None   # sampling time a case may take (quick mode)


def command_peer(name: str, argv: Sequence[str], tool: Optional[str] = None,
                 install: Optional[str] = None) -> Peer:
    """A peer that runs a command (as a Python user would, with subprocess);
    missing, with its install command, when the tool is not on PATH.

    >>> command_peer("unshare", ["unshare", "-n", "true"]).name
    'unshare'
    """
    tool = tool or argv[0]
    hint = install or INSTALL.get(tool, f"install {tool}")
    if shutil.which(tool) is None:
        return Peer(name, None, hint)
    argv = list(argv)

    def op() -> None:
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return Peer(name, op, hint)


def module_peer(name: str, module: str, make_op: Callable[[object], Op],
                install: Optional[str] = None) -> Peer:
    """A peer from a Python module; missing, with its install command, when the
    module does not import.  make_op(module) returns the timed callable."""
    hint = install or INSTALL.get(module, f"pip install {module}")
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return Peer(name, None, hint)
    return Peer(name, make_op(mod), hint)


def percentile(xs: list, p: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summarize(samples: list) -> dict:
    """median, p90, p99, mean, stdev, min and n of nanosecond samples."""
    return {
        "median": statistics.median(samples),
        "p90": percentile(samples, 0.90),
        "p99": percentile(samples, 0.99),
        "mean": statistics.fmean(samples),
        "stdev": statistics.pstdev(samples),
        "min": min(samples),
        "n": len(samples),
    }


def run_floor(floor: Floor, n: int) -> list:
    prog = build_floor(floor.source)
    r = subprocess.run([prog, str(n), *map(str, floor.args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"floor {floor.source} {floor.args} failed: {r.stderr.strip()}")
    samples = [int(x) for x in r.stdout.split()]
    if len(samples) != n:
        raise RuntimeError(f"floor {floor.source} printed {len(samples)} samples, not {n}")
    return samples


class Measured(int):
    """Returned by an op that timed itself (e.g. inside a forked child, reporting
    through a pipe): this many ns is the sample, not the wall time around op."""


class ServedFloor:
    """A floor program running in serve mode: each call takes one sample."""

    def __init__(self, floor: Floor):
        self.proc = subprocess.Popen([build_floor(floor.source), "serve", *map(str, floor.args)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)

    def __call__(self) -> Measured:
        os.write(self.proc.stdin.fileno(), b"x")
        got = os.read(self.proc.stdout.fileno(), 8)
        if len(got) != 8:
            self.close()
            raise RuntimeError(f"served floor {self.proc.args} stopped (exit {self.proc.returncode})")
        return Measured(int.from_bytes(got, sys.byteorder, signed=True))

    def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.stdin.close()
            self.proc.wait()
            self.proc.stdout.close()


def _open_fds() -> set:
    """This process's open fds, without the one the listing itself used."""
    listed = {int(fd) for fd in os.listdir("/proc/self/fd")}
    for fd in list(listed):
        try:
            fcntl.fcntl(fd, fcntl.F_GETFD)
        except OSError:
            listed.discard(fd)
    return listed


class InProcessFloor:
    """A floor built as a shared library and sampled inside this process
    (Floor.in_process): each call takes one sample, timed in C."""

    def __init__(self, floor: Floor):
        self.what = f"{floor.source} {' '.join(map(str, floor.args))}"
        lib = ctypes.CDLL(build_floor(floor.source, library=True))
        # the library keeps pointers into argv (its sample context): hold it
        self._argv = [b"floor", b"inproc", *(str(a).encode() for a in floor.args)]
        self._c_argv = (ctypes.c_char_p * (len(self._argv) + 1))(*self._argv, None)
        lib.floor_prepare.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
        lib.floor_sample.argtypes = []
        lib.floor_sample.restype = ctypes.c_longlong
        # the fds the floor opens while preparing are its own (nothing else
        # runs meanwhile): close() closes exactly those
        before = _open_fds()
        r = lib.floor_prepare(len(self._argv), self._c_argv)
        self._fds = sorted(_open_fds() - before)
        if r != 0:
            self.close()
            raise RuntimeError(f"in-process floor {self.what}: {os.strerror(-r)}")
        self._sample = lib.floor_sample

    def __call__(self) -> Measured:
        ns = self._sample()
        if ns < 0:
            raise RuntimeError(f"in-process floor {self.what} failed: {os.strerror(-ns)}")
        return Measured(ns)

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []


def one_line_error(e: BaseException) -> str:
    """An exception as one line of text, its type first.

    >>> one_line_error(OSError(2, "No such file or directory"))
    'FileNotFoundError: [Errno 2] No such file or directory'
    """
    return " ".join(f"{type(e).__name__}: {e}".split())


def time_op(op: Op) -> int:
    """One sample in ns; the op's result (and any printing) is outside the timing."""
    t0 = time.perf_counter_ns()
    r = op()
    dt = time.perf_counter_ns() - t0
    return int(r) if isinstance(r, Measured) else dt


class _Contenders:
    """The contenders of one sampling run, in order: nsfast, the peers, the floor.

    A peer whose op raises is taken out of the run there and then, its samples
    dropped and its error kept in `failed`: another tool tripping over this
    machine says nothing about nsfast, so nsfast's samples, the floor's and the
    other peers' go on.  nsfast's own op or the floor raising ends the case."""

    def __init__(self, case: Case):
        self.peers = {p.name for p in case.peers if p.op}
        self.ops = [("nsfast", case.op)] + [(p.name, p.op) for p in case.peers if p.op]
        self.samples: dict = {name: [] for name, _ in self.ops}
        self.failed: dict = {}

    def add(self, name: str, op: Op, samples: list) -> None:
        self.ops.append((name, op))
        self.samples[name] = samples

    def take(self, name: str, op: Op, timed: bool = True) -> None:
        """One sample of a contender (one untimed call when not timed)."""
        if name in self.failed:
            return
        try:
            if timed:
                self.samples[name].append(time_op(op))
            else:
                op()
        except CaseTimeout:
            raise
        except Exception as e:
            if name not in self.peers:
                raise
            self.failed[name] = one_line_error(e)
            self.ops = [c for c in self.ops if c[0] != name]
            del self.samples[name]


def sample_case(case: Case, cfg: Config) -> tuple:
    """Take the raw samples of one case: ({contender: [ns, ...]} with "floor",
    {failed peer: its error as one line}).

    Refuses (ValueError) a case without a check.  In quick mode sampling stops
    at cfg.case_budget_s once every contender has QUICK_MIN_SAMPLES."""
    if case.check is None:
        raise ValueError(f"case {case.name} has no check(): a benchmark must prove that it "
                         f"did the operation")
    n = max(20, case.samples // (5 if cfg.quick else 1))
    budget = cfg.case_budget_s if cfg.quick and cfg.case_budget_s else FULL_CASE_BUDGET_S
    min_n = QUICK_MIN_SAMPLES if cfg.quick else 20
    warmup = min(case.warmup, 2) if cfg.quick else case.warmup
    rounds = 4
    per_round = max(1, math.ceil(n / rounds))
    floor_samples: list = []
    start = time.monotonic()
    if case.setup:
        case.setup()
    # after setup: it may find a peer unusable here (op None, the reason in install)
    run = _Contenders(case)
    samples = run.samples
    gc_was = gc.isenabled()
    served: Optional[Union[ServedFloor, InProcessFloor]] = None
    try:
        case.check()
        if case.floor and (case.floor.served or case.floor.in_process):
            # after setup: it may fill in the args
            served = (InProcessFloor if case.floor.in_process else ServedFloor)(case.floor)
            run.add("floor", served, floor_samples)
        for _ in range(warmup):
            for name, op in list(run.ops):
                run.take(name, op, timed=False)
        gc.collect()
        gc.disable()   # a collection inside one sample is noise that belongs to nobody
        # each pass takes the contenders in a fresh order, so that each
        # follows every other about equally often: what the one before leaves
        # behind (cold caches, namespace teardown) is shared out fairly.  The
        # seed makes a run's order reproducible; the orders are drawn before
        # the round, since running the random module between two samples
        # would cool the caches of a microsecond-scale op.
        order = random.Random(case.name)
        for _ in range(rounds):
            taken = 0
            passes = [order.sample(run.ops, len(run.ops)) for _ in range(per_round)]
            for this_pass in passes:
                for name, op in this_pass:
                    run.take(name, op)
                taken += 1
                if (time.monotonic() - start > budget
                        and len(samples["nsfast"]) >= min_n):
                    break
            if case.floor and not served:
                floor_samples.extend(run_floor(case.floor, max(taken, min_n // 2 + 1)))
            if time.monotonic() - start > budget and len(samples["nsfast"]) >= min_n:
                break
    finally:
        if gc_was:
            gc.enable()
        if served:
            served.close()
        if case.teardown:
            case.teardown()
    if floor_samples:
        samples["floor"] = floor_samples
    return samples, run.failed


def result_of(case: Case, samples: dict, elapsed_s: float, runs: Optional[list] = None,
              failed: Optional[dict] = None) -> dict:
    """The result record of a case from its samples (see SCHEMA.md, "results");
    failed: each peer that failed -> its error."""
    nsf = summarize(samples["nsfast"])
    floor = summarize(samples["floor"]) if samples.get("floor") else None
    peers = {k: summarize(v) for k, v in samples.items() if k not in ("nsfast", "floor")}
    med = nsf["median"]
    ratio_floor = med / floor["median"] if floor and floor["median"] else None
    ratio_peers = {k: med / v["median"] for k, v in peers.items() if v["median"]}
    spread = nsf["p90"] / med if med else 0.0
    result = {
        "case": case.name,
        "area": case.area,
        "note": case.note,
        "checked": True,
        "nsfast": nsf,
        "floor": floor,
        "peers": peers,
        "missing": {p.name: p.install for p in case.peers if not p.op},
        "failed": dict(failed or {}),
        "ratio_floor": ratio_floor,
        "ratio_peers": ratio_peers,
        "spread": spread,
        "noisy": spread > NOISE_SPREAD,
        "reruns": 0,
        "targets": [],
        "elapsed_s": elapsed_s,
        "run_medians": runs if runs is not None else [med],
        "samples": samples,
    }
    result["targets"] = [judge(t, result) for t in case.all_targets()]
    return result


class CaseTimeout(Exception):
    """A case ran past CASE_TIME_LIMIT_S."""


@contextmanager
def time_limit(seconds: float, what: str):
    """Raise CaseTimeout in the main thread after `seconds` (SIGALRM); elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise CaseTimeout(f"{what} still running after {seconds:.0f} s: stopped")
    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_case(case: Case, cfg: Config) -> dict:
    """Measure one case; returns its result record (see benchmarks/SCHEMA.md).

    A case whose p90/median exceeds NOISE_SPREAD is run once more and the second
    run is kept, with a note saying so.  A case running past CASE_TIME_LIMIT_S
    is stopped with CaseTimeout."""
    with time_limit(CASE_TIME_LIMIT_S[cfg.quick], f"case {case.name}"):
        return _run_case(case, cfg)


# a case starts once the CPUs are less than this busy over SETTLE_STEP_S
# (at most SETTLE_MAX_S of waiting)
SETTLE_BUSY, SETTLE_STEP_S, SETTLE_MAX_S = 0.15, 0.1, 5.0


def _cpu_times() -> tuple:
    """(idle, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    return fields[3] + fields[4], sum(fields)


def settle(max_s: float = SETTLE_MAX_S) -> float:
    """Wait until the machine is quiet: what an earlier case left to the
    kernel (namespaces, veths and cgroups torn down by kworkers) is then
    not charged to whichever contender of the next case comes first.
    Returns the seconds waited.

    >>> settle(0.0) >= 0.0
    True
    """
    start = time.monotonic()
    idle0, total0 = _cpu_times()
    while time.monotonic() - start < max_s:
        time.sleep(SETTLE_STEP_S)
        idle1, total1 = _cpu_times()
        if total1 > total0 and 1 - (idle1 - idle0) / (total1 - total0) < SETTLE_BUSY:
            break
        idle0, total0 = idle1, total1
    return time.monotonic() - start


def _run_case(case: Case, cfg: Config) -> dict:
    settle()
    t0 = time.monotonic()
    samples, failed = sample_case(case, cfg)
    result = result_of(case, samples, time.monotonic() - t0, failed=failed)
    if result["noisy"]:
        first = result["spread"]
        t0 = time.monotonic()
        samples, failed = sample_case(case, cfg)
        result = result_of(case, samples, time.monotonic() - t0, failed=failed)
        result["reruns"] = 1
        still = "; still noisy" if result["noisy"] else ""
        result["note"] = (f"{case.note} rerun: first run's p90/median was {first:.2f}"
                          f"{still}").strip()
    return result


def merge_runs(case: Case, runs: list) -> dict:
    """Pool the samples of --repeat runs of one case into one record; the
    median of each run is kept in run_medians."""
    if len(runs) == 1:
        return runs[0]
    # a peer that failed in one run is reported failed, its other runs' samples left out
    failed: dict = {}
    for r in runs:
        failed.update(r["failed"])
    pooled: dict = {}
    for r in runs:
        for k, v in r["samples"].items():
            if k not in failed:
                pooled.setdefault(k, []).extend(v)
    merged = result_of(case, pooled, sum(r["elapsed_s"] for r in runs),
                       [r["nsfast"]["median"] for r in runs], failed)
    merged["reruns"] = sum(r["reruns"] for r in runs)
    merged["note"] = "; ".join(dict.fromkeys(r["note"] for r in runs if r["note"]))
    return merged


def run_curve(curve: Curve, cfg: Config) -> dict:
    """Run a scaling curve; refuses one without a check, like run_case."""
    if curve.check is None:
        raise ValueError(f"curve {curve.name} has no check(): a benchmark must prove that "
                         f"it did the operation")
    t0 = time.monotonic()
    curve.check()
    panels = curve.run(cfg)
    return {"curve": curve.name, "area": curve.area, "title": curve.title, "x_label": curve.x_label,
            "log_x": curve.log_x, "note": curve.note, "checked": True,
            "elapsed_s": time.monotonic() - t0, "panels": panels}


def which_or_none(name: str) -> Optional[str]:
    return shutil.which(name)


def python_version() -> str:
    return sys.version.split()[0]


def stdlib_setns() -> tuple:
    """(peer name, setns(fd, nstype)) from the standard library: os.setns on
    Python 3.12+, libc's setns through ctypes before that."""
    if hasattr(os, "setns"):
        return "os.setns", os.setns
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]

    def setns(fd: int, nstype: int) -> None:
        if libc.setns(fd, nstype) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    return "ctypes setns", setns


def stdlib_unshare() -> tuple:
    """(peer name, unshare(flags)): os.unshare on Python 3.12+, libc's through ctypes
    before that."""
    if hasattr(os, "unshare"):
        return "os.unshare", os.unshare
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.unshare.argtypes = [ctypes.c_int]

    def unshare(flags: int) -> None:
        if libc.unshare(flags) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    return "ctypes unshare", unshare
