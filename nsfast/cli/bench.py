"""nsfast bench: the benchmark suite of benchmarks/ (same flags as python -m benchmarks).

>>> main(["bench", "--quick", "--only", "curves/spawn-true"])  # doctest: +SKIP
"""
from __future__ import annotations

from .common import Parser


def build_parser(prog: str) -> Parser:
    from benchmarks.__main__ import build_parser as suite_parser
    return suite_parser(prog)


def run(args) -> int:
    from benchmarks.__main__ import run as suite_run
    return suite_run(args)
