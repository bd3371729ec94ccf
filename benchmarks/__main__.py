"""python -m benchmarks [--quick] [--only PATTERN] [--json FILE] [--markdown FILE] [--repeat N]"""
from __future__ import annotations

import argparse
import fnmatch
import importlib
import os
import pkgutil
import sys
from typing import Optional, Sequence

from . import report
from .harness import Config, run_case

HERE = os.path.dirname(os.path.abspath(__file__))


def build_parser(prog: str = "python -m benchmarks") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="nsfast benchmark suite")
    p.add_argument("--quick", action="store_true", help="fewer samples: the suite in under 60 s")
    p.add_argument("--only", metavar="PATTERN", help="run the cases whose name matches (glob)")
    p.add_argument("--json", metavar="FILE", help="write every sample and the machine here")
    p.add_argument("--markdown", metavar="FILE", help="write the table here")
    p.add_argument("--repeat", type=int, default=1, metavar="N", help="run each case N times")
    return p


def all_cases(cfg: Config) -> list:
    cases = []
    for mod in sorted(m.name for m in pkgutil.iter_modules([HERE]) if m.name.startswith("cases_")):
        cases.extend(importlib.import_module(f"benchmarks.{mod}").cases(cfg))
    return cases


def run(args) -> int:
    cfg = Config(quick=args.quick, repeat=args.repeat, only=args.only)
    results = []
    for case in all_cases(cfg):
        if cfg.only and not fnmatch.fnmatch(case.name, cfg.only) and cfg.only not in case.name:
            continue
        for _ in range(max(1, cfg.repeat)):
            r = run_case(case, cfg)
            if r.get("noisy"):
                r2 = run_case(case, cfg)
                r2["note"] = (r2["note"] + " rerun: first run's p90/median > 2").strip()
                r = r2
            results.append(r)
            print(f"{r['case']}: {r['nsfast']['median'] / 1000:.1f} us", file=sys.stderr)
    table = report.markdown(results)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    if args.json:
        report.to_json(results, args.json)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
