"""nsfast bench: the benchmark suite nsfast._bench, with its flags.

The suite's source is the repository's benchmarks/ directory, installed as
nsfast._bench: never a `benchmarks` package found in the working directory.

>>> from nsfast.cli import main
>>> main(["bench", "--list", "--only", "curves/spawn-true"])  # doctest: +NORMALIZE_WHITESPACE
curves/spawn-true  curves
0
"""
from __future__ import annotations

from .common import Parser


def build_parser(prog: str) -> Parser:
    from nsfast._bench.__main__ import build_parser as suite_parser
    return suite_parser(prog)


def run(args) -> int:
    from nsfast._bench.__main__ import run as suite_run
    return suite_run(args)
