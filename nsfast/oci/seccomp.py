"""linux.seccomp of an OCI config, compiled to BPF with libseccomp.

The OCI format (what Podman and containerd write: a default action, its
errno, architectures, and rules with actions and argument comparisons) is
richer than nsfast.Seccomp's name lists, so it is compiled here, through
the same libseccomp binding (nsfast/seccomp.py); the child installs the
program as it installs any, last before exec.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import functools
import json
import os
import stat
from dataclasses import dataclass
from typing import Optional

from ..seccomp import (_ACT_ALLOW, _ACT_KILL_PROCESS, _ACT_LOG, _FLTATR_CTL_OPTIMIZE, Seccomp,
                       _add, _act_errno, _export, _library, _number)
from .errors import OciError

_ACT_KILL_THREAD = 0x00000000
_ACT_TRAP = 0x00030000
_ACT_TRACE = 0x7FF00000
_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
        "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
_ARCHES = {"SCMP_ARCH_X86": 0x40000003, "SCMP_ARCH_X86_64": 0xC000003E,
           "SCMP_ARCH_X32": 0x4000003E, "SCMP_ARCH_AARCH64": 0xC00000B7,
           "SCMP_ARCH_ARM": 0x40000028}
_KNOWN = {"defaultAction", "defaultErrnoRet", "architectures", "syscalls", "flags"}
_RULE_KEYS = {"names", "action", "errnoRet", "args", "comment", "includes", "excludes"}


def _action(name: str, errno_ret) -> int:
    if name == "SCMP_ACT_ERRNO":
        return _act_errno(_errno.EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_TRACE":
        return _ACT_TRACE | ((_errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    actions = {"SCMP_ACT_ALLOW": _ACT_ALLOW, "SCMP_ACT_KILL": _ACT_KILL_THREAD,
               "SCMP_ACT_KILL_THREAD": _ACT_KILL_THREAD,
               "SCMP_ACT_KILL_PROCESS": _ACT_KILL_PROCESS, "SCMP_ACT_LOG": _ACT_LOG,
               "SCMP_ACT_TRAP": _ACT_TRAP}
    if name not in actions:
        raise OciError(f"linux.seccomp: action {name!r} is not supported")
    return actions[name]


@dataclass(frozen=True)
class OciProfile(Seccomp):
    """An OCI profile as spawn(seccomp=) takes a policy: its JSON text,
    compiled by bpf() (cached per text)."""
    profile: str = "{}"

    def bpf(self) -> bytes:
        return _compiled(self.profile)


# Each create is a new process, and Podman passes the same profile to
# every container: the program is kept between them, in root's own
# directory, read only when it is root's and closed to others (whoever can
# write there could hand containers an allow-everything filter).  On tmpfs:
# a reboot, or a new libseccomp, starts afresh.
CACHE_DIR = "/run/nsfast-runtime.seccomp"
_CACHE_MAX = 64   # programs; beyond that the directory is emptied


@functools.lru_cache(maxsize=16)
def _compiled(text: str) -> bytes:
    key = _cache_key(text)
    out = _cache_read(key)
    if out is None:
        out = compile_profile(json.loads(text))
        _cache_write(key, out)
    return out


def _cache_key(text: str) -> str:
    """sha256 of the profile and what else decides the program: a key that
    a crafted profile cannot share with another's."""
    try:   # the builtin module: hashlib loads OpenSSL, 3 ms of a create
        from _sha2 import sha256   # type: ignore[import-not-found]  # 3.12+
    except ImportError:
        try:
            from _sha256 import sha256   # type: ignore[import-not-found,no-redef]
        except ImportError:
            from hashlib import sha256   # type: ignore[no-redef]
    from .. import __version__
    ident = f"{__version__}\0{os.uname().machine}\0{os.environ.get('NSFAST_LIBSECCOMP')}\0"
    return sha256((ident + text).encode()).hexdigest()


def _cache_dir() -> Optional[str]:
    """CACHE_DIR when it can be trusted (made now if missing), else None."""
    if os.geteuid() != 0:
        return None
    try:
        os.mkdir(CACHE_DIR, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    st = os.lstat(CACHE_DIR)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o077:
        return None
    return CACHE_DIR


def _cache_read(key: str) -> Optional[bytes]:
    where = _cache_dir()
    if where is None:
        return None
    try:
        fd = os.open(os.path.join(where, key), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        data = f.read()
    # a whole program of sock_filter records, root's own (a torn or foreign
    # file is compiled anew)
    if st.st_uid != 0 or st.st_mode & 0o077 or not data or len(data) % 8:
        return None
    return data


def _cache_write(key: str, program: bytes) -> None:
    where = _cache_dir()
    if where is None:
        return
    try:
        names = os.listdir(where)
        if len(names) >= _CACHE_MAX:
            for name in names:
                os.unlink(os.path.join(where, name))
        tmp = os.path.join(where, f".{key}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(program)
        os.rename(tmp, os.path.join(where, key))
    except OSError:
        pass   # a cache: the next create compiles again


def compile_profile(profile: dict) -> bytes:
    """The BPF program for an OCI seccomp profile; OciError for a field
    this runtime does not support (listenerPath, flags, notify)."""
    extra = set(profile) - _KNOWN
    if extra:
        raise OciError(f"linux.seccomp.{sorted(extra)[0]} is not supported by nsfast-runtime")
    if profile.get("flags"):
        raise OciError(f"linux.seccomp.flags {profile['flags']} are not supported")
    lib = _library()
    default = _action(profile.get("defaultAction", "SCMP_ACT_ALLOW"),
                      profile.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSError(_errno.ENOMEM, "seccomp_init failed")
    try:
        lib.seccomp_attr_set(ctx, _FLTATR_CTL_OPTIMIZE, 2)
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        for arch in profile.get("architectures") or ():
            if arch not in _ARCHES:
                raise OciError(f"linux.seccomp: architecture {arch!r} is not supported")
            r = lib.seccomp_arch_add(ctx, _ARCHES[arch])
            if r < 0 and r != -_errno.EEXIST:
                raise OciError(f"linux.seccomp: libseccomp refused architecture {arch}: "
                               f"{_errno.errorcode.get(-r, r)}")
        for rule in profile.get("syscalls") or ():
            extra = set(rule) - _RULE_KEYS
            if extra:
                raise OciError(f"linux.seccomp.syscalls[].{sorted(extra)[0]} is not supported")
            action = _action(rule["action"], rule.get("errnoRet"))
            if action == default:
                continue   # libseccomp refuses a rule that repeats the default
            cmps = [(a["index"], _OPS[a["op"]], a.get("value", 0), a.get("valueTwo", 0))
                    for a in rule.get("args") or ()]
            for name in rule.get("names") or ():
                nr = _number(lib, name, False)
                if nr is None or nr < 0:
                    continue   # not a call of this architecture, as runc skips it
                _add_rule(lib, ctx, action, nr, cmps)
        r, out = _export(lib, ctx)
        if r < 0:
            raise OSError(-r, "seccomp_export_bpf failed")
        return out
    finally:
        lib.seccomp_release(ctx)


def _add_rule(lib, ctx, action: int, nr: int, cmps: list) -> None:
    """One rule; comparisons of one argument given twice are ORed, as runc
    does, by a rule for each."""
    indexes = [c[0] for c in cmps]
    if len(set(indexes)) == len(indexes):
        _add(lib, ctx, action, nr, *cmps)
        return
    for c in cmps:
        _add(lib, ctx, action, nr, c)
