"""nsfast: Linux namespaces from Python, with the hot paths in C.

Namespaces are per thread for net, uts, ipc and cgroup, and per process for
user, mnt, pid and time: nsfast never changes the latter in the caller; it
does that work in a child made by clone.
"""
import sys as _sys

if not _sys.platform.startswith("linux"):
    raise ImportError(f"nsfast needs Linux (namespaces are a Linux kernel feature); "
                      f"this is {_sys.platform}")

from .aio import wait_all
from .features import Features, features
from .flags import NsType
from .enter import enter, enter_and_exec, run_in
from .handles import KindMismatch, Namespace
from .inplace import pidfd_open, setns, unshare
from .inspect import (NamespaceInfo, OutsideProcess, init_namespaces, list_namespaces,
                      namespaces, netnsid, nsfs_mounts, processes_outside_init)
from .limits import Limits, Usage
from .mounts import Bind, Mkdir, Proc, Sysfs, Tmpfs
from . import netns
from .pool import NetnsPool
from .process import Process, reap_dropped
from .plan import SpawnPlan
from .spawn import DEVNULL, PIPE, STDOUT, spawn
from .sandbox import Completed, Sandbox
from .seccomp import Seccomp
from .targets import Fd, PidFd

__version__ = "0.1.0"

__all__ = [
    "Bind", "Completed", "DEVNULL", "Features", "Fd", "KindMismatch", "Limits", "Mkdir",
    "Namespace", "NamespaceInfo", "NetnsPool", "NsType", "OutsideProcess", "PIPE", "PidFd",
    "Proc", "Process", "STDOUT", "Sandbox", "Seccomp", "SpawnPlan", "Sysfs", "Tmpfs", "Usage",
    "enter", "enter_and_exec", "features", "init_namespaces", "list_namespaces", "namespaces",
    "netns", "netnsid", "nsfs_mounts", "pidfd_open", "processes_outside_init", "reap_dropped",
    "run_in", "setns", "spawn", "unshare", "wait_all",
]
