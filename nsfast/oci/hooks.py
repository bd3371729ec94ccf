"""OCI hooks: programs the runtime runs at points of a container's life,
each given the container's state as JSON on its stdin."""
from __future__ import annotations

import json
import subprocess

from .errors import OciError


def run(hooks: dict, kinds: tuple, state: dict, fatal: bool = True) -> None:
    """Run the hooks of each kind in order.  A failing hook is an OciError
    when fatal (create's hooks), else ignored as the spec asks (poststart,
    poststop: "the runtime MUST log a warning")."""
    data = json.dumps(state).encode()
    for kind in kinds:
        for hook in hooks.get(kind) or ():
            argv = hook.get("args") or [hook["path"]]
            try:
                done = subprocess.run(argv, executable=hook["path"], input=data,
                                      env=dict(e.split("=", 1) for e in hook.get("env") or ()),
                                      timeout=hook.get("timeout"), capture_output=True)
                failed = done.returncode != 0 and f"exit status {done.returncode}"
            except (OSError, subprocess.TimeoutExpired) as e:
                failed = str(e)
            if failed and fatal:
                raise OciError(f"{kind} hook {hook['path']} failed: {failed}")


def run_inside(hooks: dict, pid: int, state: dict, kind: str = "startContainer") -> None:
    """startContainer hooks (after start, before the program) or
    createContainer ones (after the mounts, before pivot_root): in the
    container's namespaces, the path resolved in its mount namespace.  A
    failing one is an OciError (start or create fails, as runc's does)."""
    import nsfast
    data = json.dumps(state).encode()
    for hook in hooks.get(kind) or ():
        argv = hook.get("args") or [hook["path"]]
        try:
            proc = nsfast.spawn(argv, executable=hook["path"], join=pid,
                                env=dict(e.split("=", 1) for e in hook.get("env") or ()),
                                stdin=nsfast.PIPE, stdout=nsfast.DEVNULL,
                                stderr=nsfast.DEVNULL, pdeathsig=None)
            with proc:
                proc.communicate(data, timeout=hook.get("timeout"))
            failed = proc.returncode != 0 and f"exit status {proc.returncode}"
        except (OSError, subprocess.TimeoutExpired) as e:
            failed = str(e)
        if failed:
            raise OciError(f"{kind} hook {hook['path']} failed: {failed}")
