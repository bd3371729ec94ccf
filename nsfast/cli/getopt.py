"""getopt_long with a leading '+', the way util-linux's unshare parses: options
end at the first non-option or '--', long options may be abbreviated, and an
optional value must be attached to the long form (--net=FILE); a letter never
takes one (-nf is -n -f).
(`nsfast enter` and `nsfast ls` are C and use glibc's getopt_long.)"""
from __future__ import annotations

from collections import namedtuple
from typing import Sequence

from .common import UsageError

# arity: 0, 1, 2 or "?" (optional, attached to the long form only)
# (a namedtuple, not a dataclass: it is imported on a command's start)
Opt = namedtuple("Opt", "name short arity", defaults=(None, 0))
Opt.__doc__ = "One option: its long name, its letter, how many values it takes."


def parse(argv: Sequence[str], options: Sequence[Opt]) -> tuple[list, list]:
    """[(long name, value)] in command-line order, and the words after the options.

    A value is None (no value), a str, or a tuple for an option taking two.

    >>> parse(["-n", "--uts=/x", "ip", "-a"], [Opt("net", "n", "?"), Opt("uts", "u", "?")])
    ([('net', None), ('uts', '/x')], ['ip', '-a'])
    """
    by_long = {o.name: o for o in options}
    by_short = {o.short: o for o in options if o.short}
    argv = list(argv)
    found: list = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        i += 1
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            opt = _long(name, by_long)
            if opt.arity == 0:
                if eq:
                    raise UsageError(f"option '--{opt.name}' doesn't allow an argument")
                found.append((opt.name, None))
            elif opt.arity == "?":
                found.append((opt.name, value if eq else None))
            else:
                i = _take(found, opt, [value] if eq else [], argv, i,
                          f"option '--{opt.name}' requires {{}}")
            continue
        j = 1
        while j < len(arg):
            opt = by_short.get(arg[j])
            if opt is None:
                raise UsageError(f"invalid option -- '{arg[j]}'")
            rest = arg[j + 1:]
            if opt.arity in (0, "?"):
                found.append((opt.name, None))
                j += 1
                continue
            i = _take(found, opt, [rest] if rest else [], argv, i,
                      f"option requires {{}} -- '{arg[j]}'")
            break
    return found, argv[i:]


def _long(name: str, by_long: dict) -> Opt:
    if name in by_long:
        return by_long[name]
    matches = [n for n in by_long if n.startswith(name)] if name else []
    if len(matches) == 1:
        return by_long[matches[0]]
    if matches:
        raise UsageError(f"option '--{name}' is ambiguous; possibilities: "
                         + " ".join(f"'--{m}'" for m in sorted(matches)))
    raise UsageError(f"unrecognized option '--{name}'")


def _take(found: list, opt: Opt, values: list, argv: list, i: int, missing: str) -> int:
    """Take opt's values from the words after it; missing is the message, as
    getopt words it, with {} for what is missing."""
    while len(values) < int(opt.arity):
        if i >= len(argv):
            raise UsageError(missing.format("an argument" if opt.arity == 1 else "two arguments"))
        values.append(argv[i])
        i += 1
    found.append((opt.name, values[0] if opt.arity == 1 else tuple(values)))
    return i
