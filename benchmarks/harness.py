"""Timing machinery: interleaved samples, the compiled C floors, statistics.

A Case times one operation done by nsfast, by each peer and by a C floor
program.  Samples are taken A B A B after a warm-up, so that drift on this
shared machine hits every contender alike; the floor program runs in rounds
between the Python rounds for the same reason.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(HERE, ".build")

Op = Callable[[], object]


@dataclass
class Floor:
    """A C floor: benchmarks/<source> compiled with cc, run as `prog N ARGS...`;
    it prints one sample in nanoseconds per line."""
    source: str
    args: list = field(default_factory=list)


@dataclass
class Peer:
    """Another implementation of the same operation; op None means missing."""
    name: str
    op: Optional[Op]
    install: str = ""   # how to get it when missing


@dataclass
class Case:
    """One benchmarked operation.

    check() runs once before timing and raises unless the operation really
    happened (it looks at namespace inodes); setup/teardown bracket the case.
    target = (against, ratio): against is "floor" or a peer name, ratio the
    largest acceptable nsfast/against median ratio."""
    name: str
    op: Op
    floor: Optional[Floor] = None
    peers: list = field(default_factory=list)
    check: Optional[Callable[[], None]] = None
    setup: Optional[Callable[[], None]] = None
    teardown: Optional[Callable[[], None]] = None
    target: Optional[tuple] = None
    samples: int = 200
    warmup: int = 10
    note: str = ""


@dataclass
class Config:
    quick: bool = False
    repeat: int = 1
    only: Optional[str] = None


def percentile(xs: list, p: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summarize(samples: list) -> dict:
    """median, p90, p99, mean, stdev and n of nanosecond samples."""
    return {
        "median": statistics.median(samples),
        "p90": percentile(samples, 0.90),
        "p99": percentile(samples, 0.99),
        "mean": statistics.fmean(samples),
        "stdev": statistics.pstdev(samples),
        "n": len(samples),
    }


_built: dict = {}


def build_floor(source: str) -> str:
    """Compile benchmarks/<source> once per run; return the binary's path."""
    if source in _built:
        return _built[source]
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler: the floors need cc (apt-get install gcc)")
    os.makedirs(BUILD, exist_ok=True)
    out = os.path.join(BUILD, os.path.splitext(source)[0])
    src = os.path.join(HERE, source)
    if not os.path.exists(out) or os.path.getmtime(out) < max(
            os.path.getmtime(src), os.path.getmtime(os.path.join(HERE, "floor_common.h"))):
        subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-D_GNU_SOURCE", "-o", out, src],
                       check=True)
    _built[source] = out
    return out


def run_floor(floor: Floor, n: int) -> list:
    prog = build_floor(floor.source)
    r = subprocess.run([prog, str(n), *map(str, floor.args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"floor {floor.source} {floor.args} failed: {r.stderr.strip()}")
    return [int(x) for x in r.stdout.split()]


class Measured(int):
    """Returned by an op that timed itself (e.g. inside a forked child, reporting
    through a pipe): this many ns is the sample, not the wall time around op."""


def time_op(op: Op) -> int:
    t0 = time.perf_counter_ns()
    r = op()
    dt = time.perf_counter_ns() - t0
    return int(r) if isinstance(r, Measured) else dt


def run_case(case: Case, cfg: Config) -> dict:
    """Measure one case; returns its result record (see benchmarks/SCHEMA.md)."""
    n = max(20, case.samples // (5 if cfg.quick else 1))
    rounds = 4
    contenders = [("nsfast", case.op)] + [(p.name, p.op) for p in case.peers if p.op]
    samples: dict = {name: [] for name, _ in contenders}
    floor_samples: list = []
    if case.setup:
        case.setup()
    try:
        if case.check:
            case.check()
        for _ in range(case.warmup):
            for _, op in contenders:
                op()
        per_round = max(1, n // rounds)
        for _ in range(rounds):
            for _ in range(per_round):
                for name, op in contenders:
                    samples[name].append(time_op(op))
            if case.floor:
                floor_samples.extend(run_floor(case.floor, per_round))
    finally:
        if case.teardown:
            case.teardown()
    result = {
        "case": case.name,
        "note": case.note,
        "nsfast": summarize(samples["nsfast"]),
        "floor": summarize(floor_samples) if floor_samples else None,
        "peers": {name: summarize(s) for name, s in samples.items() if name != "nsfast"},
        "missing": {p.name: p.install for p in case.peers if not p.op},
        "samples": samples | ({"floor": floor_samples} if floor_samples else {}),
    }
    med = result["nsfast"]["median"]
    result["ratio_floor"] = med / result["floor"]["median"] if result["floor"] else None
    result["ratio_peers"] = {k: med / v["median"] for k, v in result["peers"].items()}
    spread = result["nsfast"]["p90"] / med if med else 0
    result["noisy"] = spread > 2
    if case.target:
        against, limit = case.target
        ratio = result["ratio_floor"] if against == "floor" else result["ratio_peers"].get(against)
        result["target"] = {"against": against, "limit": limit, "ratio": ratio,
                            "pass": ratio is not None and ratio <= limit}
    return result


def which_or_none(name: str) -> Optional[str]:
    return shutil.which(name)


def python_version() -> str:
    return sys.version.split()[0]
