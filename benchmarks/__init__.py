"""The nsfast benchmark suite: every case against a C floor and the peers, in one run.

Run it with `python -m benchmarks` or `nsfast bench`.  Cases live in
benchmarks/cases_*.py; each module has cases(cfg) -> list[Case].
"""
