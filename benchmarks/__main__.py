"""python -m nsfast._bench (or nsfast bench): run every case and curve, report them.

Cases come from every benchmarks/cases_*.py module: `cases(cfg) -> list[Case]`
and, optionally, `curves(cfg) -> list[Curve]`.  A case that fails (or has no
check) is reported as one line and the suite goes on; the exit status is then 1.  A peer that fails is reported
as failed in its case, with its error, and does not change the exit status:
only nsfast's own failure (its op, its check, its floor, a cases module) does.
"""
from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import os
import pkgutil
import sys
import time
from typing import Optional, Sequence

from nsfast.cli.common import Parser, run_guarded

from . import report
from .harness import Config, merge_runs, one_line_error, run_case, run_curve
from .schema import validate

HERE = os.path.dirname(os.path.abspath(__file__))

# --quick: the whole suite in under 60 s.  The cases share QUICK_CASES_S, each
# getting an equal part of what is left (within the bounds below); the curves
# and the start-up have the rest.
QUICK_CASES_S = 40.0
QUICK_CASE_MIN_S, QUICK_CASE_MAX_S = 0.15, 1.5


def positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def build_parser(prog: str = "python -m nsfast._bench") -> argparse.ArgumentParser:
    p = Parser(prog=prog, description="nsfast benchmark suite: every operation against the "
                                      "C floor and the peers, in one run")
    p.add_argument("--quick", action="store_true", help="fewer samples: the suite in under 60 s")
    p.add_argument("--only", metavar="PATTERN",
                   help="run one area (core, spawn, enter, mounts, netns, curves) or the "
                        "cases and curves whose name matches PATTERN (glob or substring)")
    p.add_argument("--json", metavar="FILE", help="write every sample and the machine here")
    p.add_argument("--markdown", metavar="FILE", help="write the tables here")
    p.add_argument("--plot", metavar="FILE.png",
                   help="bar chart of nsfast against the peers here, a PNG per curve beside it")
    p.add_argument("--repeat", type=positive_int, default=1, metavar="N",
                   help="run the cases N times and pool their samples (the curves run once)")
    p.add_argument("--compare", metavar="OLD",
                   help="ratio of each case to an earlier run (its --json document or its "
                        "--markdown table, e.g. benchmarks/results/latest.md); flags "
                        "regressions > 10%%")
    p.add_argument("--list", action="store_true", help="list the cases and curves, run nothing")
    return p


def matches(pattern: Optional[str], name: str, area: str, areas: frozenset = frozenset()) -> bool:
    """--only: the name of an area selects that area alone; anything else is a
    glob on the case's name or a substring of it.

    >>> matches("spawn", "curve/spawn-rss", "curves", frozenset({"spawn", "curves"}))
    False
    """
    if pattern is None:
        return True
    if pattern in areas:
        return pattern == area
    return fnmatch.fnmatch(name, pattern) or pattern in name


def discover(cfg: Config) -> tuple:
    """(cases, curves, errors) from every benchmarks/cases_*.py module."""
    cases, curves, errors = [], [], []
    modules = sorted(m.name for m in pkgutil.iter_modules([HERE]) if m.name.startswith("cases_"))
    areas = frozenset(m[len("cases_"):] for m in modules)
    for mod in modules:
        area = mod[len("cases_"):]
        if cfg.only in areas and cfg.only != area:
            continue   # --only AREA: the other areas are not even imported
        try:
            m = importlib.import_module(f".{mod}", __package__)
            found = list(m.cases(cfg))
            found_curves = list(m.curves(cfg)) if hasattr(m, "curves") else []
        except Exception as e:  # one broken area must not hide the others
            errors.append({"name": f"benchmarks/{mod}.py", "error": one_line_error(e)})
            continue
        for c in found + found_curves:
            if not getattr(c, "area", ""):
                c.area = area
        cases += [c for c in found if matches(cfg.only, c.name, c.area, areas)]
        curves += [c for c in found_curves if matches(cfg.only, c.name, c.area, areas)]
    return cases, curves, errors


def _load_old(path: str) -> dict:
    """The run --compare reads: a --json document, or the table --markdown wrote
    (what the repository keeps of a run: results/latest.md, no samples)."""
    with open(path) as f:
        text = f.read()
    try:
        old = json.loads(text)
    except json.JSONDecodeError as e:
        medians = report.medians_from_markdown(text)
        if medians is None:
            raise ValueError(f"{path} is neither JSON ({e}) nor a table written by "
                             f"--markdown") from None
        return {"results": medians}
    problems = validate(old)
    if problems:
        raise ValueError(f"{path} is not an {report.SCHEMA} document: {problems[0]}")
    return old


def _quick_budget(cfg: Config, started: float, left: int) -> None:
    if cfg.quick:
        share = (QUICK_CASES_S - (time.monotonic() - started)) / max(1, left)
        cfg.case_budget_s = min(QUICK_CASE_MAX_S, max(QUICK_CASE_MIN_S, share))


def _attempt(name: str, measure, errors: list) -> Optional[dict]:
    """measure() or, when it fails, None with the failure recorded as one line."""
    try:
        return measure()
    except Exception as e:  # reported, and the suite goes on; the exit status says it
        errors.append({"name": name, "error": one_line_error(e)})
        print(f"{name}: error: {one_line_error(e)}", file=sys.stderr)
        return None


def run_cases(cases: list, cfg: Config, errors: list) -> list:
    """Run every case --repeat times (the whole list each time), pool each case's runs."""
    runs: dict = {c.name: [] for c in cases}
    started = time.monotonic()
    total = len(cases) * cfg.repeat
    for rep in range(cfg.repeat):
        for i, case in enumerate(cases):
            _quick_budget(cfg, started, total - rep * len(cases) - i)
            r = _attempt(case.name, lambda: run_case(case, cfg), errors)
            if r is not None:
                runs[case.name].append(r)
                print(f"{case.name}: {r['nsfast']['median'] / 1000:.1f} us"
                      f"{' (rerun: noisy)' if r['reruns'] else ''}", file=sys.stderr)
                for peer, error in r["failed"].items():
                    print(f"{case.name}: peer {peer} failed: {error}", file=sys.stderr)
    return [merge_runs(c, runs[c.name]) for c in cases if runs[c.name]]


def run_curves(curves: list, cfg: Config, errors: list) -> list:
    out = []
    for curve in curves:
        r = _attempt(curve.name, lambda: run_curve(curve, cfg), errors)
        if r is not None:
            out.append(r)
            print(f"{curve.name}: {r['elapsed_s']:.1f} s", file=sys.stderr)
    return out


def run(args) -> int:
    # refuse what cannot work before spending a minute measuring
    if args.plot:
        from .plots import require_matplotlib
        require_matplotlib()
    for path in (args.json, args.markdown, args.plot):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise FileNotFoundError(2, "no such directory for the output", path)
    old = _load_old(args.compare) if args.compare else None
    cfg = Config(quick=args.quick, repeat=args.repeat, only=args.only)
    cases, curves, errors = discover(cfg)
    if args.list:
        for c in cases + curves:
            print(f"{c.name}\t{c.area}")
        return 0
    if not cases and not curves and not errors:
        raise ValueError(f"no case or curve matches {args.only!r}")
    for e in errors:
        print(f"{e['name']}: error: {e['error']}", file=sys.stderr)
    results = run_cases(cases, cfg, errors)
    curve_results = run_curves(curves, cfg, errors)
    doc = report.document(results, curve_results, errors, quick=cfg.quick, repeat=cfg.repeat,
                          command=list(sys.argv))
    comparison = report.compare(old, results) if old is not None else None
    if comparison is not None:
        doc["compare"] = comparison
    text = report.full_markdown(doc, comparison)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.json:
        report.write_json(doc, args.json)
    if args.plot:
        from .plots import write_plots
        for path in write_plots(doc, args.plot):
            print(f"wrote {path}", file=sys.stderr)
    regressed = [c["case"] for c in comparison or [] if c["regression"]]
    if regressed:
        print(f"{len(regressed)} regression(s) above {report.REGRESSION - 1:.0%}: "
              f"{', '.join(regressed)}", file=sys.stderr)
    return 1 if errors else 0


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m nsfast._bench") -> int:
    return run_guarded(prog, lambda: run(build_parser(prog).parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
