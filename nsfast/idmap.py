"""uid/gid maps: parse, validate, render, subordinate id ranges, newuidmap."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from typing import Iterable, Optional, Sequence, Union

MAX_LINES = 340           # kernel 4.15+
MAX_ID = 2**32 - 1        # (uid_t)-1 is never valid

Triple = tuple[int, int, int]
MapLike = Union[str, Iterable[Sequence[int]]]


def parse_map(value: MapLike, what: str = "uid_map") -> list[Triple]:
    """Parse a map in the kernel's text form or as (inside, outside, count) triples,
    and validate it as the kernel would.

    >>> parse_map("0 1000 1")
    [(0, 1000, 1)]
    """
    if isinstance(value, bytes):
        raise TypeError(f"{what} must be str or a list of triples, not bytes")
    if isinstance(value, str):
        triples = []
        for n, line in enumerate(value.strip().splitlines(), 1):
            fields = line.split()
            if len(fields) != 3:
                raise ValueError(f"{what} line {n}: expected 'inside outside count', got {line!r}")
            try:
                triples.append(tuple(int(f) for f in fields))
            except ValueError:
                raise ValueError(f"{what} line {n}: not integers: {line!r}") from None
    else:
        triples = []
        for item in value:
            if isinstance(item, (str, bytes)) or len(item) != 3:
                raise ValueError(f"{what}: each entry must be (inside, outside, count)")
            for v in item:
                if isinstance(v, bool) or not isinstance(v, int):
                    raise TypeError(f"{what}: ids must be int, not {type(v).__name__}")
            triples.append(tuple(item))
    validate(triples, what)
    return triples


def validate(triples: list[Triple], what: str = "uid_map") -> None:
    """Raise ValueError for a map the kernel would refuse."""
    if not triples:
        raise ValueError(f"{what} is empty")
    if len(triples) > MAX_LINES:
        raise ValueError(f"{what} has {len(triples)} lines; the kernel takes at most {MAX_LINES}")
    for inside, outside, count in triples:
        if count <= 0:
            raise ValueError(f"{what}: count must be positive in {(inside, outside, count)}")
        for name, start in (("inside", inside), ("outside", outside)):
            if start < 0 or start + count - 1 >= MAX_ID:
                raise ValueError(f"{what}: {name} range {start}+{count} is outside 0..{MAX_ID - 1}")
    for side in (0, 1):
        ranges = sorted((t[side], t[side] + t[2]) for t in triples)
        for (a0, a1), (b0, _) in zip(ranges, ranges[1:]):
            if b0 < a1:
                label = "inside" if side == 0 else "outside"
                raise ValueError(f"{what}: {label} ranges overlap at {b0}")


def render(triples: list[Triple]) -> bytes:
    """The text written to the map file in one write."""
    return "".join(f"{a} {b} {c}\n" for a, b, c in triples).encode()


def subordinate_range(kind: str, user: Optional[Union[int, str]] = None) -> tuple[int, int]:
    """The first (start, count) for the user in /etc/subuid or /etc/subgid.

    Skipped as a doctest: the answer is this machine's /etc/subuid (CI has none).

    >>> subordinate_range("uid", "root")  # doctest: +SKIP
    (100000, 65536)
    """
    path = f"/etc/sub{kind}"
    uid = os.geteuid() if user is None else user
    names = set()
    if isinstance(uid, int):
        names.add(str(uid))
        try:
            names.add(pwd.getpwuid(uid).pw_name)
        except KeyError:
            pass
    else:
        names.add(uid)
        try:
            names.add(str(pwd.getpwnam(uid).pw_uid))
        except KeyError:
            pass
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] in names:
                    return int(parts[1]), int(parts[2])
    except FileNotFoundError:
        raise FileNotFoundError(2, f"{path} does not exist: no subordinate ids are "
                                   "configured (see subuid(5), usermod --add-subuids)", path) \
            from None
    raise LookupError(f"{path} has no range for {sorted(names)}: add one with "
                      f"usermod --add-sub{kind}s START-END")


def write_with_helper(pid: int, uid_map: list[Triple], gid_map: list[Triple]) -> None:
    """Write maps through the setuid helpers newuidmap/newgidmap (rootless ranges)."""
    for tool, triples in (("newuidmap", uid_map), ("newgidmap", gid_map)):
        if not triples:
            continue
        exe = shutil.which(tool)
        if exe is None:
            raise FileNotFoundError(2, f"{tool} is not installed (Debian: apt-get install uidmap)",
                                    tool)
        args = [exe, str(pid)] + [str(v) for t in triples for v in t]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            raise PermissionError(1, f"{tool} refused the map: {r.stderr.strip()} "
                                     "(hint: the range must be in /etc/sub"
                                     f"{'uid' if tool == 'newuidmap' else 'gid'})", tool)
