"""Python for another user: the tests that drop to uid 65534 run nsfast there.

A checkout may sit where no other user can look (root's home is 0700), and so
may its virtual environment: uid 65534 could then read neither nsfast nor
pyroute2, nor the environment's pyvenv.cfg.  So those tests run the installed
nsfast from a world-readable copy: the package directory (compiled _core and
programs included) and the files of each package it requires, staged into a
fresh temporary directory of mode 0755, and the interpreter the environment was
made from (sys._base_executable), with the copy first on PYTHONPATH.  What runs
is the same code as in this process, installed from wherever; nothing of the
checkout itself is made readable.
"""
from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import nsfast

# generated or cached files that the copy does not need
_LEAVE_OUT = shutil.ignore_patterns("__pycache__", "*.pyc", "*.c", "*.pyx", "*.pxd")


@dataclass(frozen=True)
class StagedPython:
    """An interpreter that another user can run, and the environment that
    makes `import nsfast` find the world-readable copy."""
    executable: str
    site: str

    def env(self, **extra: str) -> dict:
        """A minimal environment for the other user: PATH, HOME=/, the copy
        on PYTHONPATH, no bytecode written into it."""
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/",
                "PYTHONPATH": self.site, "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONNOUSERSITE": "1", **extra}


def _required(dist: str) -> list[str]:
    """The distributions `dist` requires on every platform (no marker, no extra)."""
    names = []
    for req in importlib.metadata.requires(dist) or []:
        if ";" not in req:
            names.append(re.split(r"[\s<>=!~\[(]", req, maxsplit=1)[0])
    return names


def _copy_distribution(name: str, site: str) -> None:
    """The importable files of an installed distribution (its package
    directories and modules, not its metadata or scripts) into site."""
    dist = importlib.metadata.distribution(name)
    for f in dist.files or []:
        parts = f.parts
        if ".." in parts or parts[0].endswith((".dist-info", ".egg-info")) or \
                "__pycache__" in parts or f.suffix == ".pyc":
            continue
        src = str(f.locate())
        dst = os.path.join(site, *parts)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)


def _make_readable(top: str) -> None:
    os.chmod(top, 0o755)
    for where, dirs, files in os.walk(top):
        for d in dirs:
            os.chmod(os.path.join(where, d), 0o755)
        for f in files:
            path = os.path.join(where, f)
            os.chmod(path, os.stat(path).st_mode | 0o444)


def stage(top: str) -> StagedPython:
    """Copy nsfast as installed, and what it requires, into top/site."""
    site = os.path.join(top, "site")
    shutil.copytree(os.path.dirname(os.path.abspath(nsfast.__file__)),
                    os.path.join(site, "nsfast"), ignore=_LEAVE_OUT)
    todo, seen = _required("nsfast"), set()
    while todo:
        name = todo.pop()
        if name.lower() not in seen:
            seen.add(name.lower())
            _copy_distribution(name, site)
            todo += _required(name)
    _make_readable(top)
    base = getattr(sys, "_base_executable", None) or sys.executable
    return StagedPython(os.path.realpath(base), site)


def runs_as(uid: int, staged: StagedPython) -> str:
    """'' when uid can import the staged nsfast, else why not."""
    r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                        staged.executable, "-c", "import nsfast, sys; print(nsfast.__file__)"],
                       capture_output=True, text=True, timeout=60, env=staged.env(), cwd="/")
    if r.returncode != 0:
        return r.stderr.strip()[-500:]
    if not r.stdout.startswith(staged.site + os.sep):
        return f"uid {uid} imported nsfast from {r.stdout.strip()}, not from {staged.site}"
    return ""


def staged_dir() -> str:
    """A fresh directory for the copy, under the temporary directory."""
    return tempfile.mkdtemp(prefix="nsfast-staged-")
