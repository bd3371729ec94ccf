"""Compiling the C floors (benchmarks/floor_*.c) into the user's cache directory.

The binaries go to $XDG_CACHE_HOME/nsfast/bench (~/.cache/nsfast/bench by
default), never beside the sources: the sources may be a read-only
site-packages, and `pip uninstall` would leave a build directory behind there.
A binary's name carries a hash of everything that makes it (the source, the
header it includes, the compiler and its flags), so an edited floor or another
compiler builds a new binary instead of running a stale one; $CC picks the
compiler, as make does.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = "floor_common.h"
FLAGS = ["-O2", "-Wall", "-Wextra", "-D_GNU_SOURCE"]
# a shared library for Floor.in_process: main renamed, floor_prepare and
# floor_sample exported (floor_common.h)
LIBRARY_FLAGS = ["-shared", "-fPIC", "-fvisibility=hidden", "-DFLOOR_LIBRARY",
                 "-Dmain=floor_program_main"]


def cache_dir() -> str:
    """Where the floors are compiled: $XDG_CACHE_HOME/nsfast/bench, or
    ~/.cache/nsfast/bench when it is unset or not absolute (the XDG rule).

    >>> cache_dir().endswith(os.path.join("nsfast", "bench"))
    True
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "nsfast", "bench")


def _private_dir(path: str) -> str:
    """Make path (mode 700) and refuse it if someone else could swap a binary
    in it: this process runs what it finds there, often as root."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RuntimeError(f"{path} is writable by another user: refusing to run binaries "
                           f"from it (set XDG_CACHE_HOME to a directory of your own)")
    return path


@functools.lru_cache(maxsize=None)
def _compiler() -> tuple:
    """(path, identity) of the C compiler: $CC or cc or gcc; identity is what
    names this compiler in the cache key (its resolved path and version)."""
    cc = shutil.which(os.environ.get("CC") or "cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler: the floors need cc (apt-get install gcc)")
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    return cc, f"{os.path.realpath(cc)}\n{version}"


def binary_name(source: str, flags: list, compiler: str) -> str:
    """The cache file name of a floor: its stem and a hash of its source, the
    header beside it, the flags and the compiler's identity.

    >>> binary_name(os.path.join(HERE, "floor_core.c"), FLAGS, "cc") == \\
    ...     binary_name(os.path.join(HERE, "floor_core.c"), FLAGS + ["-g"], "cc")
    False
    """
    h = hashlib.sha256()
    for path in (source, os.path.join(os.path.dirname(source), HEADER)):
        h.update(path.encode(errors="surrogateescape") + b"\0")
        try:
            with open(path, "rb") as f:
                h.update(f.read())
        except FileNotFoundError:
            h.update(b"(missing)")
    h.update("\0".join(flags).encode() + b"\0" + compiler.encode())
    stem = os.path.splitext(os.path.basename(source))[0]
    return f"{stem}-{h.hexdigest()[:16]}" + (".so" if "-shared" in flags else "")


_built: dict = {}


def build_floor(source: str, library: bool = False) -> str:
    """Compile benchmarks/<source> (or an absolute path) unless the cache holds
    it already; return the binary's path.  library: build it as a shared
    library for Floor.in_process instead."""
    src = os.path.join(HERE, source)
    key = (src, library)
    if key in _built:   # once per run: the hash reads the sources
        return _built[key]
    if not os.path.exists(src):
        raise RuntimeError(f"floor source {src} does not exist")
    cc, identity = _compiler()
    flags = FLAGS + (LIBRARY_FLAGS if library else [])
    build = _private_dir(cache_dir())
    out = os.path.join(build, binary_name(src, flags, identity))
    if not os.path.exists(out):
        # compile to a private name and rename, so that two suites running at once
        # never execute a half-written binary
        fd, tmp = tempfile.mkstemp(dir=build, prefix=os.path.basename(out) + ".")
        os.close(fd)
        try:
            r = subprocess.run([cc, *flags, "-o", tmp, src], capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"cannot compile {source}: {r.stderr.strip()}")
            if r.stderr.strip():   # a floor must build without warnings: show them
                sys.stderr.write(r.stderr)
            os.rename(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    _built[key] = out
    return out
