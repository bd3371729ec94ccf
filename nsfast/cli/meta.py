"""isolate's --meta file: key:value lines about how a sandboxed program ended.

The keys and status codes are isolate's (isolate(1), META-FILES), so that a
judge that reads isolate's meta files can read nsfast's: time (CPU seconds),
time-wall, max-rss and cg-mem (KiB), cg-oom-killed, exitcode (a normal
exit), exitsig (a fatal signal), killed (the sandbox ended it at a limit),
status (RE: non-zero exit, SG: a fatal signal, TO: a time limit, XX: the
sandbox itself failed; absent for a clean exit) and message.
"""
from __future__ import annotations

import signal
from typing import Optional, Sequence

from ..limits import Limits, Usage
from .common import UsageError


def meta_lines(usage: Optional[Usage], error: Optional[str] = None,
               cgroup: bool = False) -> str:
    """The meta file's text for a usage, or for a sandbox that failed (error).

    >>> print(meta_lines(Usage(None, 9, 1.5, 0.25, 0.0, 2 << 20, False, "wall_time")), end="")
    time:0.250
    time-wall:1.500
    max-rss:2048
    exitsig:9
    killed:1
    status:TO
    message:Time limit exceeded (wall clock)
    """
    if usage is None:
        return f"status:XX\nmessage:{_one_line(error or 'internal error')}\n"
    rows = [("time", f"{usage.cpu_time_user + usage.cpu_time_system:.3f}"),
            ("time-wall", f"{usage.wall_time:.3f}"),
            ("max-rss", str(usage.max_rss // 1024))]
    if cgroup:
        rows.append(("cg-mem", str(usage.max_rss // 1024)))
        if usage.oom_killed:
            rows.append(("cg-oom-killed", "1"))
    if usage.signal is None:
        rows.append(("exitcode", str(usage.exit_code)))
    else:
        rows.append(("exitsig", str(usage.signal)))
    status, message = _status(usage)
    if status == "TO":   # isolate's "killed": the sandbox, not the kernel, ended it
        rows.append(("killed", "1"))
    if status:
        rows += [("status", status), ("message", message)]
    return "".join(f"{k}:{v}\n" for k, v in rows)


def _status(usage: Usage) -> tuple[str, str]:
    if usage.limit_hit == "wall_time":
        return "TO", "Time limit exceeded (wall clock)"
    if usage.limit_hit == "cpu_time":
        return "TO", "Time limit exceeded"
    if usage.signal is not None:
        try:
            name = signal.Signals(usage.signal).name
        except ValueError:
            name = str(usage.signal)
        why = " (out of memory)" if usage.oom_killed else ""
        return "SG", f"Caught fatal signal {usage.signal} ({name}){why}"
    if usage.exit_code:
        return "RE", f"Exited with error status {usage.exit_code}"
    return "", ""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def write_meta(path: str, text: str) -> None:
    """Write the meta file whole (a reader never sees half of it)."""
    with open(path, "w") as f:
        f.write(text)


# the limit flags of nsfast unshare and nsfast run: flag -> (Limits field, parse)
LIMIT_FLAGS = {"memory": ("memory", str), "pids": ("pids", int), "cpu": ("cpu", float),
               "cpu-time": ("cpu_time", float), "wall-time": ("wall_time", float)}


def limits_from(values: dict, rlimits: Sequence[str], base: Optional[Limits] = None):
    """The Limits of the limit flags given (values: flag -> text) and
    --rlimit NAME=VALUE texts, over base; None when nothing is given and
    there is no base.  UsageError for a bad value.

    >>> limits_from({"pids": "64"}, ["NOFILE=32"])
    Limits(pids=64, nofile=32, core=0)
    """
    given: dict = {}
    for flag, text in values.items():
        key, parse = LIMIT_FLAGS[flag]
        try:
            given[key] = parse(text)
        except ValueError:
            raise UsageError(f"--{flag} takes a number, not {text!r}") from None
    if not given and not rlimits and base is None:
        return None
    try:
        fields = {} if base is None else dict(base._items())
        fields.update(given)
        limits = Limits(**fields)
        for text in rlimits:
            limits = limits.with_rlimit(text)
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from None
    return limits
