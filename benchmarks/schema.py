"""A validator for the suite's JSON document, as documented in benchmarks/SCHEMA.md.

A tiny structural checker instead of a jsonschema dependency: a spec is a type,
a tuple of types, a dict of key -> spec (every key required unless wrapped in Opt,
none extra), a tuple of specs (any one of them), [spec] for a list of spec,
Map(spec) for a dict of str -> spec, or OneOf(values).

>>> validate({"schema": "nsfast-bench/1"})[:1]
['$: missing key created']
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NUM = (int, float)
NONE = type(None)


@dataclass(frozen=True)
class Opt:
    """A key that may be absent."""
    spec: Any


@dataclass(frozen=True)
class Map:
    """A dict of str -> spec."""
    spec: Any


@dataclass(frozen=True)
class OneOf:
    """A value from a fixed set."""
    values: tuple


STATS = {"median": NUM, "p90": NUM, "p99": NUM, "mean": NUM, "stdev": NUM, "min": NUM,
         "n": int}

TARGET = {"key": str, "text": str, "against": str, "limit": NUM, "ratio": (NUM, NONE),
          "status": OneOf(("PASS", "MISS", "N/A")), "why": str}

RESULT = {
    "case": str, "area": str, "note": str, "checked": OneOf((True,)),
    "nsfast": STATS, "floor": (STATS, NONE), "peers": Map(STATS), "missing": Map(str),
    # absent from documents written before peers could fail on their own
    "failed": Opt(Map(str)),
    "ratio_floor": (NUM, NONE), "ratio_peers": Map(NUM),
    "spread": NUM, "noisy": bool, "reruns": int, "targets": [TARGET],
    "elapsed_s": NUM, "run_medians": [NUM],
    "samples": Opt(Map([int])),
}

POINT = {"x": NUM, "y": (NUM, NONE), "p90": Opt(NUM), "p99": Opt(NUM)}

CURVE = {
    "curve": str, "area": str, "title": str, "x_label": str, "log_x": bool, "note": str,
    "checked": OneOf((True,)), "elapsed_s": NUM,
    "panels": [{"y_label": str, "drain_s": Opt((NUM, NONE)),
                "series": [{"label": str, "points": [POINT]}]}],
}

COMPARE = {"case": str, "old": NUM, "new": NUM, "ratio": (NUM, NONE), "regression": bool}

DOCUMENT = {
    "schema": OneOf(("nsfast-bench/1",)), "created": str, "command": [str], "quick": bool,
    "repeat": int,
    "machine": {"kernel": str, "cpu": str, "cores": (int, NONE), "memory_mb": int,
                "python": str, "nsfast": str, "peers": Map(str)},
    "results": [RESULT], "curves": [CURVE], "errors": [{"name": str, "error": str}],
    "compare": Opt([COMPARE]),
}


def _check(value: Any, spec: Any, where: str, errors: list) -> None:
    if isinstance(spec, Opt):
        spec = spec.spec
    if isinstance(spec, tuple) and not all(isinstance(t, type) for t in spec):
        # a union of specs: valid when one alternative is; else the first one's complaints
        attempts = []
        for alt in spec:
            sub: list = []
            _check(value, alt, where, sub)
            if not sub:
                return
            attempts.append(sub)
        errors.extend(attempts[0])
    elif isinstance(spec, OneOf):
        if not any(value is v or (type(value) is type(v) and value == v) for v in spec.values):
            errors.append(f"{where}: {value!r} is not one of {spec.values}")
    elif isinstance(spec, dict):
        if not isinstance(value, dict):
            errors.append(f"{where}: expected an object, got {type(value).__name__}")
            return
        for key, sub in spec.items():
            if key in value:
                _check(value[key], sub, f"{where}.{key}", errors)
            elif not isinstance(sub, Opt):
                errors.append(f"{where}: missing key {key}")
        for key in value.keys() - spec.keys():
            errors.append(f"{where}: unexpected key {key}")
    elif isinstance(spec, list):
        if not isinstance(value, list):
            errors.append(f"{where}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _check(item, spec[0], f"{where}[{i}]", errors)
    elif isinstance(spec, Map):
        if not isinstance(value, dict):
            errors.append(f"{where}: expected an object, got {type(value).__name__}")
            return
        for key, item in value.items():
            _check(item, spec.spec, f"{where}.{key}", errors)
    else:
        types = spec if isinstance(spec, tuple) else (spec,)
        # a bool is an int to Python, but not a number in this document
        if isinstance(value, bool) and bool not in types:
            errors.append(f"{where}: expected {_names(types)}, got bool")
        elif not isinstance(value, types):
            errors.append(f"{where}: expected {_names(types)}, got {type(value).__name__}")


def _names(types: tuple) -> str:
    flat = []
    for t in types:
        flat.extend(t if isinstance(t, tuple) else (t,))
    return " or ".join("null" if t is NONE else t.__name__ for t in flat)


def validate(doc: Any) -> list:
    """Every way doc departs from the schema, as 'path: problem' strings; [] if valid."""
    errors: list = []
    _check(doc, DOCUMENT, "$", errors)
    return errors
