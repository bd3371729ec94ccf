"""What this kernel offers, probed once, on first use, with cheap syscalls."""
from __future__ import annotations

import os
from dataclasses import dataclass

from . import _core


def _kernel_at_least(major: int, minor: int) -> bool:
    release = os.uname().release
    try:
        parts = release.split("-")[0].split(".")
        return (int(parts[0]), int(parts[1])) >= (major, minor)
    except (ValueError, IndexError):
        return False


@dataclass(frozen=True)
class Features:
    """Optional kernel features nsfast uses, each True where present.

    >>> nsfast.features.clone3 in (True, False)
    True
    """

    clone3: bool
    pidfd_open: bool
    pidfd_setns: bool
    time_namespaces: bool
    cgroup_namespaces: bool
    mount_setattr: bool
    close_range: bool


def probe() -> Features:
    """Probe the running kernel."""
    p = _core.probe()
    return Features(
        clone3=p["clone3"],
        pidfd_open=p["pidfd_open"],
        # setns(pidfd, mask) came in 5.8; no cheap call tells it apart
        pidfd_setns=p["pidfd_open"] and _kernel_at_least(5, 8),
        time_namespaces=os.path.exists("/proc/self/ns/time"),
        cgroup_namespaces=os.path.exists("/proc/self/ns/cgroup"),
        mount_setattr=p["mount_setattr"],
        close_range=p["close_range"],
    )


def __getattr__(name: str):
    """`features`: the probe's result, made the first time it is asked for
    (PEP 562), so that importing nsfast probes nothing."""
    if name != "features":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    global features
    features = probe()
    return features
