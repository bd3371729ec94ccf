"""The eight namespace kinds as an IntFlag of the kernel's CLONE_NEW* values."""
from __future__ import annotations

import enum
from typing import Iterable, Mapping, Union

from . import _core, kernel

KindsLike = Union["NsType", int, str, Iterable[Union[str, "NsType"]], None]


class NsType(enum.IntFlag):
    """A set of namespace kinds; each member's value is its CLONE_NEW* flag.

    >>> NsType.parse("net,uts") == NsType.NET | NsType.UTS
    True
    """

    TIME = kernel.CLONE_NEWTIME
    MNT = kernel.CLONE_NEWNS
    CGROUP = kernel.CLONE_NEWCGROUP
    UTS = kernel.CLONE_NEWUTS
    IPC = kernel.CLONE_NEWIPC
    USER = kernel.CLONE_NEWUSER
    PID = kernel.CLONE_NEWPID
    NET = kernel.CLONE_NEWNET

    @property
    def proc_name(self) -> str:
        """The entry under /proc/PID/ns for a single kind, e.g. "mnt"."""
        try:
            return _PROC_NAMES[self]
        except KeyError:
            raise ValueError(f"{self!r} is not a single namespace kind") from None

    def kinds(self) -> list["NsType"]:
        """The single kinds in this set, in the order lsns lists them."""
        v = self._value_
        return [k for k in ORDER if k._value_ & v]

    @classmethod
    def all(cls) -> "NsType":
        """Every kind."""
        return cls(_ALL_VALUE)

    @classmethod
    def parse(cls, value: KindsLike) -> "NsType":
        """Parse "net,uts", ["net", "uts"], a flag or int, "all", or None (no kinds).

        >>> NsType.parse(["mnt", "pid"]).kinds()
        [<NsType.MNT: 131072>, <NsType.PID: 536870912>]
        """
        if type(value) is cls:
            return value
        if value is None:
            return cls(0)
        if type(value) is str:
            cached = _PARSED.get(value)
            if cached is None:
                cached = cls._parse(value)
                # bounded, and never closed to new strings: enter()'s
                # common case and the compiled spawn() find kinds only here
                if len(_PARSED) >= 256:
                    _PARSED.clear()
                _PARSED[value] = cached
            return cached
        return cls._parse(value)

    @classmethod
    def _parse(cls, value: KindsLike) -> "NsType":
        if isinstance(value, bool):
            raise TypeError("namespace kinds must be names or NsType flags, not bool")
        if isinstance(value, int):
            if value & ~_ALL_VALUE:
                raise ValueError(f"unknown namespace flag bits: {value & ~_ALL_VALUE:#x}")
            return cls(value)
        if isinstance(value, (str, bytes)):
            if isinstance(value, bytes):
                raise TypeError("namespace kinds must be str, not bytes")
            parts = [p.strip() for p in value.split(",")]
            if parts == [""]:
                return cls(0)
        elif isinstance(value, Mapping):
            raise TypeError("namespace kinds are names or NsType flags, not a mapping")
        else:
            try:
                parts = list(value)
            except TypeError:
                raise TypeError(f"cannot parse namespace kinds from {type(value).__name__}") from None
        result = cls(0)
        for p in parts:
            if isinstance(p, NsType):
                result |= p
                continue
            if not isinstance(p, str):
                raise TypeError(f"namespace kind must be a str or NsType, not {type(p).__name__}")
            name = p.strip().lower()
            if name == "all":
                result |= cls.all()
                continue
            try:
                result |= _BY_NAME[name]
            except KeyError:
                known = ", ".join(sorted(_BY_NAME))
                raise ValueError(f"unknown namespace kind {p!r} (known: {known}, all)") from None
        return result


ORDER = [NsType.TIME, NsType.CGROUP, NsType.USER, NsType.MNT, NsType.UTS, NsType.IPC,
         NsType.PID, NsType.NET]
_ALL_VALUE = sum(k._value_ for k in ORDER)
# lsns lists types in this order
LSNS_ORDER = [NsType.MNT, NsType.NET, NsType.PID, NsType.USER, NsType.UTS, NsType.IPC,
              NsType.CGROUP, NsType.TIME]

# parsed kind strings: the same few ("net", "net,uts") come back on hot paths
_PARSED: dict = {}

# the names come from the C table the nsfast command reads too (csrc/kinds.c)
_PROC_NAMES = {NsType(flag): name for flag, name in _core.KIND_NAMES.items()}
_BY_NAME = {v: k for k, v in _PROC_NAMES.items()}
_BY_NAME.update({"mount": NsType.MNT, "ns": NsType.MNT, "network": NsType.NET})


def from_proc_name(name: str) -> NsType:
    """The kind of a /proc/PID/ns entry name ("pid_for_children" counts as pid)."""
    base = name.replace("_for_children", "")
    return _BY_NAME[base]
