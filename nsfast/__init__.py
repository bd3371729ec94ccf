"""nsfast: Linux namespaces from Python, with the hot paths in C.

Namespaces are per thread for net, uts, ipc and cgroup, and per process for
user, mnt, pid and time: nsfast never changes the latter in the caller; it
does that work in a child made by clone.

The public names are imported on first use (PEP 562), so that `import nsfast`
costs next to nothing and probes nothing: a command such as `nsfast ls` loads
only the modules it runs.
"""
import sys as _sys
import types as _types

if not _sys.platform.startswith("linux"):
    raise ImportError(f"nsfast needs Linux (namespaces are a Linux kernel feature); "
                      f"this is {_sys.platform}")

__version__ = "0.1.0"

# public name -> the module (under nsfast) that defines it; the module itself
# where the name is a module's
_HOME = {
    "Features": "features", "features": "features", "NsType": "flags",
    "enter": "enter", "enter_and_exec": "enter", "run_in": "enter",
    "KindMismatch": "handles", "Namespace": "handles",
    "pidfd_open": "inplace", "setns": "inplace", "unshare": "inplace",
    "NamespaceInfo": "inspect", "OutsideProcess": "inspect", "init_namespaces": "inspect",
    "list_namespaces": "inspect", "namespaces": "inspect", "netnsid": "inspect",
    "nsfs_mounts": "inspect", "processes_outside_init": "inspect",
    "Limits": "limits", "Usage": "limits",
    "Bind": "mounts", "Mkdir": "mounts", "Proc": "mounts", "Sysfs": "mounts", "Tmpfs": "mounts",
    "netns": "netns", "NetnsPool": "pool", "Process": "process", "reap_dropped": "process",
    "SpawnPlan": "plan", "DEVNULL": "spawn", "PIPE": "spawn", "STDOUT": "spawn",
    "spawn": "spawn", "Completed": "sandbox", "Sandbox": "sandbox", "Seccomp": "seccomp",
    "Fd": "targets", "PidFd": "targets", "Bridge": "bridge", "wait_all": "aio",
}

__all__ = [
    "Bind", "Bridge", "Completed", "DEVNULL", "Features", "Fd", "KindMismatch", "Limits", "Mkdir",
    "Namespace", "NamespaceInfo", "NetnsPool", "NsType", "OutsideProcess", "PIPE", "PidFd",
    "Proc", "Process", "STDOUT", "Sandbox", "Seccomp", "SpawnPlan", "Sysfs", "Tmpfs", "Usage",
    "enter", "enter_and_exec", "features", "init_namespaces", "list_namespaces", "namespaces",
    "netns", "netnsid", "nsfs_mounts", "pidfd_open", "processes_outside_init", "reap_dropped",
    "run_in", "setns", "spawn", "unshare", "wait_all",
]

TYPE_CHECKING = False
if TYPE_CHECKING:   # what type checkers see; at run time __getattr__ imports these
    from . import netns
    from .aio import wait_all
    from .bridge import Bridge
    from .enter import enter, enter_and_exec, run_in
    from .features import Features, features
    from .flags import NsType
    from .handles import KindMismatch, Namespace
    from .inplace import pidfd_open, setns, unshare
    from .inspect import (NamespaceInfo, OutsideProcess, init_namespaces, list_namespaces,
                          namespaces, netnsid, nsfs_mounts, processes_outside_init)
    from .limits import Limits, Usage
    from .mounts import Bind, Mkdir, Proc, Sysfs, Tmpfs
    from .plan import SpawnPlan
    from .pool import NetnsPool
    from .process import Process, reap_dropped
    from .sandbox import Completed, Sandbox
    from .seccomp import Seccomp
    from .spawn import DEVNULL, PIPE, STDOUT, spawn
    from .targets import Fd, PidFd


def __getattr__(name: str):
    """Import the module that defines a public name, the first time it is asked for."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'nsfast' has no attribute {name!r}")
    __import__(f"{__name__}.{home}")
    module = _sys.modules[f"{__name__}.{home}"]
    value = module if home == name else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_HOME))


class _Package(_types.ModuleType):
    """nsfast itself.  Importing the submodule nsfast.spawn makes Python set
    the package's attribute `spawn` to that module; the public `spawn` is the
    function.  A property for each such name keeps the public object."""


def _public_over_submodule(name: str) -> property:
    found: list = []   # the public object, once imported: the hot paths ask each call

    def get(self):
        if not found:
            found.append(getattr(__import__(f"{__name__}.{name}", fromlist=[name]), name))
        return found[0]

    def set_(self, _module) -> None:
        pass   # the import system naming the submodule: the property answers instead
    return property(get, set_, doc=f"nsfast.{name}.{name}")


for _name in ("enter", "features", "spawn"):   # public names that are also module names
    setattr(_Package, _name, _public_over_submodule(_name))
_sys.modules[__name__].__class__ = _Package
