"""nsfast run: a program under nsfast.Sandbox, from flags or a TOML file.

    nsfast run [--config FILE.toml] [flags] [--meta FILE] -- PROGRAM [ARGS]

The TOML file holds the keys of the Python options (Sandbox(**policy)):
namespaces, loopback, ids, id_base, no_new_privs, capabilities,
new_session, env, root, readonly_root, mount_proc, mask_paths,
readonly_paths, minimal_dev, tmp_size, mounts, seccomp,
allow_nested_userns, hostname, cwd, init, overlay, limits (a table of
nsfast.Limits' keys, or false for none), network ("bridge" or
"bridge:NAME", as --net).  Flags given on the command line
win over the file; the limit flags (--memory, --pids, --cpu, --cpu-time,
--wall-time or --time, --rlimit NAME=VALUE) change the Sandbox's default limits, and
--no-limits drops them.  Both are checked before anything is touched: an
unknown key is an error.  The exit status is the payload's (128+N for a
signal N); --meta writes how it ended in isolate's --meta format.
"""
from __future__ import annotations

import argparse
import inspect
import os
import re
from typing import Any

from .. import Bind, Mkdir, Seccomp, Tmpfs
from ..sandbox import Sandbox
from .common import Parser, UsageError, exit_status
from .meta import LIMIT_FLAGS, limits_from, meta_lines, write_meta

_SIZE = re.compile(r"^(\d+)([kKmMgG]?)$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
KEYS = tuple(p for p in inspect.signature(Sandbox.__init__).parameters if p != "self")
_MOUNT_KEYS = {"bind": ("src", "dst", "readonly"), "tmpfs": ("dst", "size", "mode"),
               "mkdir": ("dst",)}
_SECCOMP_KEYS = ("default", "allow", "deny", "errno")


def size(text: str) -> int:
    """'64M' -> 67108864: bytes, with an optional k, M or G.

    >>> size("64M")
    67108864
    """
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"bad size {text!r} (bytes, or a number with k, M or G)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


class BridgeNet(str):
    """--net bridge[:NAME] (or network = "bridge[:NAME]" in the file): the
    bridge's name, resolved into an nsfast.Bridge only when the run starts."""


def net_mode(text: str) -> str:
    """--net's value: none, loopback, host, or a BridgeNet for bridge[:NAME].

    >>> net_mode("host"), net_mode("bridge:br0"), type(net_mode("bridge")).__name__
    ('host', 'br0', 'BridgeNet')
    """
    if text in ("none", "loopback", "host"):
        return text
    kind, sep, name = text.partition(":")
    if kind == "bridge":
        if sep and not name:
            raise UsageError("--net bridge:NAME needs a name")
        from ..bridge import DEFAULT_NAME
        from ..links import check_ifname
        try:
            return BridgeNet(check_ifname(name, "bridge name") if sep else DEFAULT_NAME)
        except ValueError as e:
            raise UsageError(str(e)) from None
    raise UsageError(f"--net takes none, loopback, host or bridge[:NAME], not {text!r}")


def build_parser(prog: str) -> Parser:
    p = Parser(prog=prog, description="Run a program under nsfast.Sandbox.")
    p.add_argument("--config", metavar="FILE.toml", help="the policy's keys, as Sandbox()'s")
    p.add_argument("--bind", nargs=2, action="append", default=[], metavar=("SRC", "DST"))
    p.add_argument("--ro-bind", nargs=2, action="append", default=[], metavar=("SRC", "DST"))
    p.add_argument("--tmpfs", action="append", default=[], metavar="DST[:SIZE]")
    p.add_argument("--root", metavar="DIR", help="this tree as /, instead of the host's")
    p.add_argument("--overlay", nargs="?", const="64M", metavar="SIZE",
                   help="a writable tmpfs layer of SIZE (64M) over the --root tree")
    p.add_argument("--net", type=net_mode, metavar="none|loopback|host|bridge[:NAME]",
                   help="a new net namespace without (none) or with lo up (loopback, the "
                        "default), the host's, or one on a bridge (bridge: nsfast0, made "
                        "for the run unless it exists; bridge:NAME adopts NAME)")
    p.add_argument("--no-seccomp", action="store_true", help="no syscall filter")
    p.add_argument("--seccomp", metavar="FILE", help="a TOML filter: default, allow, deny, errno")
    p.add_argument("--allow-nested-userns", action="store_true")
    p.add_argument("--writable-root", action="store_true", help="the root read-write")
    p.add_argument("--tmp-size", metavar="SIZE", help="the size of /tmp, or 'none'")
    p.add_argument("--hostname")
    p.add_argument("--cwd", metavar="DIR")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--init", action="store_true", help="an init as pid 1 (reaps orphans)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="kill the payload after this wall time (exit status 124)")
    for flag, (key, _) in LIMIT_FLAGS.items():
        # nsfast run is no drop-in, so --time can be the wall limit the
        # resource issue names; unshare keeps util-linux's -T/--time[=FILE]
        names = [f"--{flag}", "--time"] if flag == "wall-time" else [f"--{flag}"]
        p.add_argument(*names, dest=key, metavar="N", help=f"nsfast.Limits {key}")
    p.add_argument("--rlimit", action="append", default=[], metavar="NAME=VALUE",
                   help="an rlimit of the payload, e.g. NOFILE=64")
    p.add_argument("--no-limits", action="store_true", help="no limits at all")
    p.add_argument("--meta", metavar="FILE", help="write how it ended, in isolate's format")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="PROGRAM [ARGS]")
    return p


def _mounts(items: Any) -> list:
    """The mounts key of a config: [{type = "bind", src, dst, readonly}, ...]."""
    if not isinstance(items, list):
        raise UsageError("mounts is a list of tables")
    out = []
    for m in items:
        if not isinstance(m, dict) or m.get("type") not in _MOUNT_KEYS:
            raise UsageError(f"a mount is a table with type = {' | '.join(_MOUNT_KEYS)}")
        kind = m["type"]
        unknown = set(m) - {"type", *_MOUNT_KEYS[kind]}
        if unknown:
            raise UsageError(f"unknown key(s) in a {kind} mount: {', '.join(sorted(unknown))}")
        fields = {k: v for k, v in m.items() if k != "type"}
        out.append({"bind": Bind, "tmpfs": Tmpfs, "mkdir": Mkdir}[kind](**fields))
    return out


def _seccomp(value: Any) -> Any:
    """The seccomp key: "default", false (none) or a table of Seccomp's keys."""
    if value is False:
        return None
    if isinstance(value, dict):
        unknown = set(value) - set(_SECCOMP_KEYS)
        if unknown:
            raise UsageError(f"unknown key(s) in seccomp: {', '.join(sorted(unknown))}")
        return Seccomp(**value)
    return value


def _limits_table(value: Any) -> Any:
    """The limits key: false (none) or a table of nsfast.Limits' keys."""
    if value is False:
        return None
    if not isinstance(value, dict):
        raise UsageError("limits is a table of nsfast.Limits' keys, or false")
    from ..limits import Limits
    try:
        return Limits(**value)
    except TypeError as e:
        raise UsageError(f"limits: {e}") from None
    except ValueError as e:
        raise UsageError(f"limits: {e}") from None


def _read_toml(path: str) -> dict:
    import tomllib   # Python 3.11+
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: {e}") from None


def policy(args) -> dict:
    """Sandbox keywords from --config and the flags; UsageError for what is wrong."""
    opts: dict = {}
    if args.config:
        config = _read_toml(args.config)
        unknown = set(config) - set(KEYS)
        if unknown:
            raise UsageError(f"{args.config}: unknown key(s) {', '.join(sorted(unknown))} "
                             f"(the keys are Sandbox()'s: {', '.join(KEYS)})")
        opts.update(config)
        if "mounts" in opts:
            opts["mounts"] = _mounts(opts["mounts"])
        if "seccomp" in opts:
            opts["seccomp"] = _seccomp(opts["seccomp"])
        if "limits" in opts:
            opts["limits"] = _limits_table(opts["limits"])
        if "network" in opts:
            if not isinstance(opts["network"], str) or not isinstance(
                    net_mode(opts["network"]), BridgeNet):
                raise UsageError(f"{args.config}: network is \"bridge\" or \"bridge:NAME\"")
            opts["network"] = net_mode(opts["network"])
    mounts = list(opts.get("mounts", ()))
    for src, dst in args.bind:
        mounts.append(Bind(os.path.abspath(src), dst))
    for src, dst in args.ro_bind:
        mounts.append(Bind(os.path.abspath(src), dst, readonly=True))
    for spec in args.tmpfs:
        dst, _, sz = spec.partition(":")
        mounts.append(Tmpfs(dst, size=size(sz) if sz else None))
    if mounts:
        opts["mounts"] = mounts
    if args.overlay:
        opts["overlay"] = size(args.overlay)
    if args.root:
        opts["root"] = os.path.abspath(args.root)
    if args.net == "none":
        opts["loopback"] = False
    elif args.net == "host":
        opts["namespaces"] = ",".join(k for k in opts.get("namespaces", _default("namespaces"))
                                      .split(",") if k.strip() != "net")
        opts["loopback"] = False
    if isinstance(args.net, BridgeNet):
        opts["network"] = args.net
    elif args.net is not None:
        opts.pop("network", None)
    if args.no_seccomp and args.seccomp:
        raise UsageError("give --no-seccomp or --seccomp FILE, not both")
    if args.no_seccomp:
        opts["seccomp"] = None
    if args.seccomp:
        table = _read_toml(args.seccomp)
        opts["seccomp"] = _seccomp(table if table else False)
    if args.allow_nested_userns:
        opts["allow_nested_userns"] = True
    if args.writable_root:
        opts["readonly_root"] = False
    if args.tmp_size:
        opts["tmp_size"] = None if args.tmp_size == "none" else size(args.tmp_size)
    for name in ("hostname", "cwd"):
        if getattr(args, name):
            opts[name] = getattr(args, name)
    if args.init:
        opts["init"] = True
    flags = {flag: getattr(args, key) for flag, (key, _) in LIMIT_FLAGS.items()
             if getattr(args, key) is not None}
    if args.no_limits and (flags or args.rlimit):
        raise UsageError("give --no-limits or limit flags, not both")
    if args.no_limits:
        opts["limits"] = None
    elif flags or args.rlimit:
        from ..sandbox import default_limits
        base = opts.get("limits", default_limits()) or None
        opts["limits"] = limits_from(flags, args.rlimit, base)
    if args.env:
        env = dict(opts.get("env") or dict(_default("env")))
        for item in args.env:
            k, sep, v = item.partition("=")
            if not sep or not k:
                raise UsageError(f"--env takes NAME=VALUE, not {item!r}")
            env[k] = v
        opts["env"] = env
    return opts


def _default(name: str) -> Any:
    from .. import sandbox
    return {"namespaces": sandbox.NAMESPACES, "env": sandbox.ENV}[name]


def run(args) -> int:
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise UsageError("no program to run")
    options = policy(args)
    bridge = _bridge(options.get("network"))
    try:
        if bridge is not None:
            options["network"] = bridge
        else:
            # one payload: a pool would make namespaces nobody takes
            options["network"] = "new"
        return _run_in(Sandbox(**options), argv, args)
    finally:
        if bridge is not None:
            bridge.close()   # removes the bridge only if this run made it


def _bridge(network: Any) -> Any:
    """The nsfast.Bridge of --net bridge[:NAME]: the bridge of that name,
    adopted with its own subnet, or made (with the default subnet)."""
    if not isinstance(network, BridgeNet):
        return None
    from ..bridge import DEFAULT_SUBNET, Bridge, subnet_of
    return Bridge(str(network), subnet_of(network) or DEFAULT_SUBNET)


def _run_in(box: Sandbox, argv: list, args) -> int:
    """Run argv in box to its end; its exit status (and --meta)."""
    import subprocess
    box_limits = box.spawn_options().get("limits")
    with box:
        proc = box.spawn(argv)
        try:
            code = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        except KeyboardInterrupt:
            proc.kill()
            proc.wait()
            raise
    status = 124 if code is None else exit_status(code)
    if args.meta:
        limits = box_limits
        write_meta(args.meta, meta_lines(proc.usage, cgroup=bool(limits and limits.needs_cgroup)))
    return status
