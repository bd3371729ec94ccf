"""The nsfast benchmark suite: every case against a C floor and the peers, in one run.

Its source is the repository's benchmarks/ directory, installed as nsfast._bench
so that it cannot collide with another project's `benchmarks`.  Run it with
`nsfast bench` or `python -m nsfast._bench`.  Cases live in benchmarks/cases_*.py;
each module has cases(cfg) -> list[Case].
"""
