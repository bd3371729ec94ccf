"""Seccomp: a syscall filter policy, compiled once to BPF with libseccomp.

libseccomp (the library crun and Podman use) is loaded at run time with
ctypes; a policy is compiled in the parent, once, and its BPF program is
cached.  The child installs it with one seccomp() call just before exec
(csrc/spawn_child.c, install_seccomp), after no_new_privs.

The default policy is modelled on the default profile of Docker and
Podman: it refuses what those refuse to a container without
CAP_SYS_ADMIN (keys, bpf, perf, userfaultfd, kexec, modules,
open_by_handle_at, the old and new mount APIs, new user namespaces).
Unlike them it is a list of refusals on top of "allow", not an allow
list: nsfast's payloads run without capabilities, so the calls Docker
leaves to a capability check are refused by the kernel anyway.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os
from dataclasses import dataclass
from typing import Optional, Union

# actions (seccomp.h)
_ACT_ALLOW = 0x7FFF0000
_ACT_KILL_PROCESS = 0x80000000
_ACT_LOG = 0x7FFC0000


def _act_errno(err: int) -> int:
    return 0x00050000 | (err & 0xFFFF)


_FLTATR_CTL_OPTIMIZE = 8   # enum scmp_filter_attr
# struct scmp_arg_cmp's operators
_CMP_EQ, _CMP_MASKED_EQ = 4, 7
_CLONE_NEWUSER = 0x10000000
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C

DEFAULTS = ("allow", "errno", "kill", "log")

# Refused by the default policy, as Docker and Podman refuse them (moby
# profiles/seccomp/default.json: not in its allow list, or only with
# CAP_SYS_ADMIN, CAP_SYS_MODULE, CAP_SYS_BOOT, CAP_SYS_TIME ...).  Names
# this architecture does not have are skipped.
DEFAULT_DENY = (
    # keys, bpf, perf, userfaultfd: kernel attack surface with a history
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    # kernels and modules
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "create_module", "query_module", "get_kernel_syms",
    # file handles bypass the mount tree (the "shocker" escape)
    "open_by_handle_at", "name_to_handle_at",
    # mounts, the old and the new API
    "mount", "umount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick",
    "move_mount", "open_tree", "mount_setattr",
    # host state: clocks, reboot, swap, accounting, quotas, ports
    "reboot", "swapon", "swapoff", "acct", "settimeofday", "stime", "clock_settime",
    "clock_adjtime", "adjtimex", "quotactl", "quotactl_fd", "ioperm", "iopl", "vhangup",
    "syslog", "lookup_dcookie", "nfsservctl", "uselib", "ustat", "sysfs", "_sysctl",
    "vm86", "vm86old", "fanotify_init",
    # memory policy and other processes' memory
    "mbind", "set_mempolicy", "get_mempolicy", "move_pages", "migrate_pages",
    "process_vm_readv", "process_vm_writev", "kcmp",
    # io_uring runs calls this filter never sees (Docker refuses it since 25.0)
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)

# Always allowed by a custom policy: the child's exec happens under the filter.
_EXEC = ("execve", "execveat")


@dataclass(frozen=True)
class Seccomp:
    """A syscall filter: `default` for the calls in neither list ("allow",
    "errno", "kill" or "log"), `allow` and `deny` lists of syscall names,
    and the errno a refused call returns (EPERM unless given).

    With default="errno" (an allow list) the filter always allows execve and
    execveat, which the child makes under it; the program itself must find
    what it needs in `allow`.

    >>> Seccomp(deny=["keyctl"]).deny
    ('keyctl',)
    >>> len(default_policy().bpf()) % 8
    0
    """
    default: str = "allow"
    allow: tuple = ()
    deny: tuple = ()
    errno: int = _errno.EPERM
    # the default policy's rules on arguments (_ARGS: TIOCSTI, and with
    # _NO_USERNS new user namespaces and clone3); custom policies take names only
    _builtin: int = 0

    def __post_init__(self) -> None:
        if self.default not in DEFAULTS:
            raise ValueError(f"Seccomp default must be one of {DEFAULTS}, not {self.default!r}")
        for what in ("allow", "deny"):
            names = getattr(self, what)
            if isinstance(names, (str, bytes)):
                raise TypeError(f"Seccomp {what} is a list of syscall names, not one string")
            names = tuple(names)
            for n in names:
                if not isinstance(n, str) or not n:
                    raise TypeError(f"Seccomp {what} holds syscall names (str), not {n!r}")
            object.__setattr__(self, what, names)
        both = set(self.allow) & set(self.deny)
        if both:
            raise ValueError(f"syscalls both allowed and denied: {sorted(both)}")
        if isinstance(self.errno, bool) or not isinstance(self.errno, int) \
                or not 0 < self.errno < 4096:
            raise ValueError(f"Seccomp errno must be an errno number, not {self.errno!r}")

    def bpf(self) -> bytes:
        """The compiled BPF program (struct sock_filter[]), cached per policy.

        Raises OSError naming the libseccomp2 package when the library is
        missing, ValueError for a syscall name libseccomp does not know."""
        return _compile(self)


_ARGS, _NO_USERNS = 1, 2
_DEFAULT = Seccomp(deny=DEFAULT_DENY, _builtin=_ARGS | _NO_USERNS)
_DEFAULT_NESTED = Seccomp(deny=DEFAULT_DENY, _builtin=_ARGS)


def default_policy(nested_userns: bool = False) -> Seccomp:
    """The default filter (what seccomp="default" means); with
    nested_userns=True it lets the payload make user namespaces (and use
    clone3), as Sandbox(allow_nested_userns=True) wants."""
    return _DEFAULT_NESTED if nested_userns else _DEFAULT


def resolve(policy: Union[None, str, Seccomp]) -> Optional[Seccomp]:
    """What spawn(seccomp=...) takes: None, "default" or a Seccomp."""
    if policy is None:
        return None
    if isinstance(policy, str):
        if policy != "default":
            raise ValueError(f"seccomp takes 'default', None or nsfast.Seccomp(...), "
                             f"not {policy!r}")
        return _DEFAULT
    if not isinstance(policy, Seccomp):
        raise TypeError(f"seccomp takes 'default', None or nsfast.Seccomp(...), "
                        f"not {type(policy).__name__}")
    return policy


# ---------------------------------------------------------------- libseccomp

class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


_lib = None


def _library():
    """libseccomp.so.2, loaded once; NSFAST_LIBSECCOMP names another file."""
    global _lib
    if _lib is None:
        name = os.environ.get("NSFAST_LIBSECCOMP", "libseccomp.so.2")
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError as e:
            raise OSError(_errno.ENOENT, f"a seccomp filter needs libseccomp, which is not "
                          f"installed ({name}: {e}); install the libseccomp2 package "
                          f"(or pass seccomp=None to run without a filter)") from None
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        _lib = lib
    return _lib


def _number(lib, name: str, strict: bool) -> Optional[int]:
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr == -1:   # __NR_SCMP_ERROR: no architecture has it
        if strict:
            raise ValueError(f"unknown syscall name {name!r} in a Seccomp policy")
        return None
    return nr


def _add(lib, ctx, action: int, nr: int, *cmps: tuple) -> None:
    arr = (_ArgCmp * max(len(cmps), 1))(*(_ArgCmp(*c) for c in cmps))
    r = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr)
    if r < 0:
        raise OSError(-r, f"libseccomp refused a rule for syscall {nr}: {os.strerror(-r)}")


@functools.lru_cache(maxsize=64)
def _compile(policy: Seccomp) -> bytes:
    lib = _library()
    refuse = _act_errno(policy.errno)
    default = {"allow": _ACT_ALLOW, "errno": refuse, "kill": _ACT_KILL_PROCESS,
               "log": _ACT_LOG}[policy.default]
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSError(_errno.ENOMEM, "seccomp_init failed")
    try:
        # a binary tree of syscall numbers (libseccomp 2.5+; older ones refuse
        # the attribute and keep their list): the kernel runs the filter for
        # every syscall number once when it is installed (its action cache)
        lib.seccomp_attr_set(ctx, _FLTATR_CTL_OPTIMIZE, 2)
        strict = not policy._builtin
        allow = policy.allow
        if policy.default != "allow":
            allow = tuple(dict.fromkeys(allow + _EXEC))
        for name in allow:
            nr = _number(lib, name, strict)
            if nr is not None and default != _ACT_ALLOW:
                _add(lib, ctx, _ACT_ALLOW, nr)
        for name in policy.deny:
            nr = _number(lib, name, strict)
            if nr is not None and nr >= 0:
                _add(lib, ctx, refuse, nr)
        if policy._builtin:
            _argument_rules(lib, ctx, refuse, bool(policy._builtin & _NO_USERNS))
        r, out = _export(lib, ctx)
        if r < 0:
            raise OSError(-r, f"seccomp_export_bpf: {os.strerror(-r)}")
        return out
    finally:
        lib.seccomp_release(ctx)


def _argument_rules(lib, ctx, refuse: int, no_userns: bool) -> None:
    """The default policy's refusals that look at arguments."""
    ioctl = _number(lib, "ioctl", True)
    # typing into the terminal (TIOCSTI) or the console (TIOCLINUX); the
    # upper 32 bits of the request are ignored by the kernel: compare the low ones
    for req in (_TIOCSTI, _TIOCLINUX):
        _add(lib, ctx, refuse, ioctl, (1, _CMP_MASKED_EQ, 0xFFFFFFFF, req))
    if not no_userns:
        return
    newuser = (0, _CMP_MASKED_EQ, _CLONE_NEWUSER, _CLONE_NEWUSER)
    for name in ("unshare", "clone"):
        # clone's flags are its first argument on every architecture nsfast builds for
        _add(lib, ctx, refuse, _number(lib, name, True), newuser)
    # clone3's flags are in memory, out of a filter's reach: ENOSYS makes libc
    # fall back to clone, as Docker does
    nr = _number(lib, "clone3", False)
    if nr is not None and nr >= 0:
        _add(lib, ctx, _act_errno(_errno.ENOSYS), nr)
    setns = _number(lib, "setns", True)
    _add(lib, ctx, refuse, setns, (1, _CMP_MASKED_EQ, _CLONE_NEWUSER, _CLONE_NEWUSER))
    _add(lib, ctx, refuse, setns, (1, _CMP_EQ, 0, 0))   # 0: any type, user too


def _export(lib, ctx) -> tuple[int, bytes]:
    fd = os.memfd_create("nsfast-seccomp", os.MFD_CLOEXEC)
    try:
        r = lib.seccomp_export_bpf(ctx, fd)
        if r < 0:
            return r, b""
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
        return 0, b"".join(chunks)
    finally:
        os.close(fd)
