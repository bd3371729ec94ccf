"""OSError construction with the path involved and a hint for known kernel traps."""
from __future__ import annotations

import errno as _errno
import os
from typing import Optional

_LIMIT_FILES = {
    "user": "/proc/sys/user/max_user_namespaces",
    "mnt": "/proc/sys/user/max_mnt_namespaces",
    "net": "/proc/sys/user/max_net_namespaces",
    "pid": "/proc/sys/user/max_pid_namespaces",
    "ipc": "/proc/sys/user/max_ipc_namespaces",
    "uts": "/proc/sys/user/max_uts_namespaces",
    "cgroup": "/proc/sys/user/max_cgroup_namespaces",
    "time": "/proc/sys/user/max_time_namespaces",
}


PTRACE_HINT = ("reading another process's namespaces needs ptrace access to it "
               "(CAP_SYS_PTRACE and every capability it holds)")


def os_error(err: int, path: Optional[str] = None, hint: Optional[str] = None,
             what: Optional[str] = None) -> OSError:
    """An OSError of the right subclass for err, naming path, with a hint.

    >>> isinstance(os_error(2, "/nope"), FileNotFoundError)
    True
    """
    msg = os.strerror(err)
    if what:
        msg = f"{what}: {msg}"
    if hint:
        msg = f"{msg} (hint: {hint})"
    if path is not None:
        return OSError(err, msg, path)
    return OSError(err, msg)


def userns_disabled_reason() -> Optional[str]:
    """Why user namespaces cannot be made here, if a sysctl says so."""
    checks = [
        ("/proc/sys/user/max_user_namespaces", "0", "user.max_user_namespaces is 0"),
        ("/proc/sys/kernel/unprivileged_userns_clone", "0",
         "kernel.unprivileged_userns_clone is 0"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1",
         "kernel.apparmor_restrict_unprivileged_userns is 1"),
    ]
    for path, bad, reason in checks:
        try:
            with open(path) as f:
                if f.read().strip() == bad:
                    return reason
        except OSError:
            continue
    return None


def namespace_hint(err: int, kinds: list[str]) -> Optional[str]:
    """A hint for a failed unshare/clone of the given kind names."""
    if err == _errno.ENOSPC:
        for k in kinds:
            try:
                with open(_LIMIT_FILES[k]) as f:
                    if f.read().strip() == "0":
                        return f"{_LIMIT_FILES[k]} is 0"
            except (OSError, KeyError):
                pass
        return ("a max_*_namespaces limit in /proc/sys/user/ was reached, "
                "or the nesting depth of 32")
    if err in (_errno.EPERM, _errno.EACCES):
        if "user" in kinds:
            reason = userns_disabled_reason()
            if reason:
                return f"user namespaces are disabled: {reason}"
        return "creating namespaces needs CAP_SYS_ADMIN, or a new user namespace with them"
    if err == _errno.EINVAL and "user" in kinds:
        return "the caller has several threads or shares its fs struct"
    if err == _errno.EINVAL:
        return "a kind this kernel lacks, or a flag combination it refuses"
    return None


def map_hint(err: int, name: str) -> Optional[str]:
    """A hint for a refused write to /proc/PID/{uid_map,gid_map,setgroups}."""
    if err == _errno.EPERM:
        if name == "gid_map":
            return ("an unprivileged gid_map needs setgroups=deny, and only your own gid "
                    "without newgidmap")
        if name == "uid_map":
            return ("an unprivileged writer may map only its own uid; ranges need "
                    "newuidmap and /etc/subuid (mapping uid 0 needs CAP_SETFCAP)")
        return "the map was already written, or the writer lacks the capability"
    if err == _errno.EINVAL:
        return "overlapping ranges, more than 340 lines, or an id outside the parent's map"
    return None
