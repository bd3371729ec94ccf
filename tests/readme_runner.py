"""Runs one README block, then reports what it left behind (tests/test_readme.py).

    readme_runner.py python|sh README_PATH LINE < SOURCE
    readme_runner.py --left-behind

Started by test_readme.py inside namespaces of its own (util-linux unshare: a
mount, pid, net, uts and ipc namespace, an empty tmpfs on /run/netns and on
/tmp, which is the working directory), in a mount namespace of its own below
that world's pid 1, so that `nsfast.mounts` may change it.  Before the block,
`pid` (Python) and `$PID` (shell) name a sleeper in its own mnt, uts (hostname
"box"), ipc and net namespaces; Python blocks find `nsfast` imported.  A
Python block may `await` at its top level: it then runs in asyncio.run.

After the block the givens are killed and reaped, and the threads the block
left running are printed as a JSON line on stdout ({"threads": [...]}).  The
exit status is 0 when the block ran, else 1 with its traceback (or the
shell's status) on stderr.  Then pid 1 runs `--left-behind`, which prints
what the block made and did not clean up, seen from outside the block's own
mount namespace (which a block may have pivoted): processes of this pid
namespace, named network namespaces, links other than lo.
"""
from __future__ import annotations

import ast
import asyncio
import inspect
import json
import os
import subprocess
import sys
import threading
import traceback

import nsfast
from nsfast.pool import close_shared
from nsfast.watch import quiesce

# the givens' names; the block sees each only if it names it
SLEEPER_NAMES = ("pid", "container_pid")


def _sleeper() -> nsfast.Process:
    return nsfast.spawn(["sleep", "600"], namespaces="mnt,uts,ipc,net", hostname="box")


def _run_python(path: str, line: int, source: str, made: list) -> None:
    # the block's own line numbers, so that a traceback points into the README
    code = compile("\n" * (line - 1) + source, path, "exec",
                   flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    env = {"__name__": "__readme__", "nsfast": nsfast}
    for name in SLEEPER_NAMES:
        if name in source:
            made.append(_sleeper())
            env[name] = made[-1].pid
    result = eval(code, env)
    if inspect.isawaitable(result):   # a top-level await made the block a coroutine
        asyncio.run(result)


def _run_sh(source: str, made: list) -> None:
    made.append(_sleeper())
    env = dict(os.environ, PID=str(made[-1].pid))
    r = subprocess.run(["sh", "-e", "-c", source], env=env, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise SystemExit(f"the shell block exited {r.returncode}")


def left_behind() -> dict:
    """What is left in this world once the block's process has ended: run by
    its pid 1, which is the only process that should remain (and `ip`)."""
    me = os.getpid()
    processes = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in (1, me):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue   # ended meanwhile
            processes.append(f"{entry} {b' '.join(argv).decode(errors='replace').strip()}")
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    return {
        "processes": sorted(p for p in processes if not p.endswith(" ip -o link show")),
        "netns": sorted(os.listdir("/run/netns")),
        "links": sorted(ln.split(":")[1].strip() for ln in links if ": lo:" not in ln),
    }


def main(kind: str, path: str, line: str) -> int:
    # the block comes on stdin (not in argv, which `ps` and lsns would show);
    # it then runs with /dev/null there, as it would from a script
    source = sys.stdin.read()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    threads_before = {t.ident for t in threading.enumerate()}
    made: list = []
    status = 0
    try:
        if kind == "python":
            _run_python(path, int(line), source, made)
        else:
            _run_sh(source, made)
    except BaseException:
        traceback.print_exc()
        status = 1
    finally:
        for p in made:
            p.kill()
            p.wait()
    # nsfast's wall-time watcher lingers idle for the next sandbox, by design:
    # stopped here when idle, it is left only while a deadline is pending
    quiesce()
    # so does the pool of fresh network namespaces default Sandboxes share
    close_shared()
    threads = sorted(t.name for t in threading.enumerate()
                     if t.ident not in threads_before and t.is_alive())
    print(json.dumps({"threads": threads}))
    return status


if __name__ == "__main__":
    if sys.argv[1:] == ["--left-behind"]:
        print(json.dumps(left_behind()))
    else:
        sys.exit(main(*sys.argv[1:]))
