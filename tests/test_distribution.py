"""What a build ships: the sdist holds everything a build needs, the wheel
installs nothing but the nsfast package, its metadata and the nsfast command,
a regular build writes no build/ into the tree it builds from, and the version
is written in one place.

One sdist is built from this checkout, and one wheel from that sdist unpacked
with its version changed (this environment's setuptools and Cython, no
network, no build isolation); the tests here share them.
"""
from __future__ import annotations

import email
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import zipfile

import pytest

import nsfast

from conftest import need

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALLED = os.path.join(os.path.dirname(sys.executable), "nsfast")
# a version this checkout does not have, written into the unpacked sdist only
TEST_VERSION = "0.0.1.dev4242"


def _build_tools() -> bool:
    if importlib.util.find_spec("Cython") is None:
        return False
    try:
        return int(importlib.metadata.version("setuptools").split(".")[0]) >= 77
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    """(member names without the top directory, the build's stderr, the archive)."""
    need(_build_tools(), "setuptools>=77 and Cython in this environment "
                         "(pip install -e '.[test]')")
    out = tmp_path_factory.mktemp("sdist")
    # the PEP 517 hook pip and `python -m build` call, without either of them
    code = "import sys; from setuptools import build_meta; build_meta.build_sdist(sys.argv[1])"
    r = subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    [archive] = out.glob("nsfast-*.tar.gz")
    with tarfile.open(archive) as tar:
        names = [m.name.split("/", 1)[1] for m in tar.getmembers()
                 if m.isfile() and "/" in m.name]
    return names, r.stderr, archive


@pytest.fixture(scope="module")
def wheel(sdist, tmp_path_factory):
    """(member names, the wheel's path, the tree it was built from, the TMPDIR the
    build ran with), built from the unpacked sdist with TEST_VERSION."""
    _, _, archive = sdist
    work = tmp_path_factory.mktemp("wheel")
    with tarfile.open(archive) as tar:
        # the "data" filter (3.10.12+, 3.11.4+) refuses links and paths out of work
        tar.extractall(work, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    [tree] = work.glob("nsfast-*")
    init = tree / "nsfast" / "__init__.py"
    text, n = re.subn(r'^__version__ = "[^"]*"$', f'__version__ = "{TEST_VERSION}"',
                      init.read_text(), flags=re.M)
    assert n == 1
    init.write_text(text)
    out, tmp = work / "dist", work / "tmp"
    tmp.mkdir()
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
                        "--no-build-isolation", "-w", str(out), str(tree)],
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, TMPDIR=str(tmp)))
    assert r.returncode == 0, r.stderr[-3000:]
    [whl] = out.glob("nsfast-*.whl")
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
    return names, whl, tree, tmp


def test_the_sdist_holds_what_a_build_needs(sdist):
    names, stderr, _ = sdist
    needed = {"pyproject.toml", "setup.py", "MANIFEST.in", "LICENSE", "README.md",
              "nsfast/_core.pyx", "nsfast/_core.pyi", "nsfast/py.typed"}
    for folder, suffixes in (("nsfast/includes", (".pxd",)), ("csrc", (".c", ".h")),
                             ("benchmarks", (".py", ".c", ".h", ".md")),
                             ("tests", (".py",)), ("tests/soak", (".py",))):
        needed |= {f"{folder}/{f}" for f in os.listdir(os.path.join(ROOT, folder))
                   if f.endswith(suffixes)}
    assert needed - set(names) == set()
    # nothing a build makes: the wheel built from it (below) shows the rest was enough
    made = [n for n in names if n in ("nsfast/_core.c", "nsfast/_nsfast") or
            n.endswith((".so", ".o", ".pyc")) or n.startswith(("build/", "benchmarks/results/"))]
    assert made == []
    # setuptools has nothing to warn about (the license table it stops reading in 2027)
    assert "Warning" not in stderr and "deprecated" not in stderr, stderr


def test_the_wheel_installs_only_nsfast_its_metadata_and_the_command(wheel):
    names, _, _, _ = wheel
    dist_info = f"nsfast-{TEST_VERSION}.dist-info/"
    command = f"nsfast-{TEST_VERSION}.data/data/bin/nsfast"
    elsewhere = [n for n in names
                 if not n.startswith(("nsfast/", dist_info)) and n != command]
    assert elsewhere == []
    assert command in names and "nsfast/_nsfast" in names and "nsfast/_nsfast_init" in names
    assert any(re.fullmatch(r"nsfast/_core\.[^/]*\.so", n) for n in names)
    assert {"nsfast/_bench/__main__.py", "nsfast/_bench/floor_common.h",
            "nsfast/_bench/floor_spawn.c", "nsfast/cli/__main__.py", "nsfast/py.typed",
            dist_info + "licenses/LICENSE"} <= set(names)
    # the generated C and the build's inputs stay out
    assert [n for n in names if n.endswith((".pyx", ".pxd")) or n == "nsfast/_core.c"] == []


def test_the_launcher_is_in_the_wheel_twice_as_one_program(wheel):
    names, whl, _, _ = wheel
    with zipfile.ZipFile(whl) as z:
        command = z.getinfo(f"nsfast-{TEST_VERSION}.data/data/bin/nsfast")
        package = z.getinfo("nsfast/_nsfast")
        assert z.read(command) == z.read(package)
        assert z.read(command)[:4] == b"\x7fELF"
    for info in (command, package):
        assert (info.external_attr >> 16) & 0o111 == 0o111, info.filename


def test_a_regular_build_leaves_the_source_tree_without_build(wheel):
    _, _, tree, tmp = wheel
    assert not (tree / "build").exists()
    # its build directory was a temporary one, and it is gone
    assert [p.name for p in tmp.iterdir() if p.name.startswith("nsfast-build-")] == []


def test_the_version_is_written_once(wheel, tmp_path):
    """The version in nsfast/__init__.py alone made the wheel's name, its
    metadata and the launcher's own --version (compiled in, no Python)."""
    names, whl, _, _ = wheel
    assert os.path.basename(whl).startswith(f"nsfast-{TEST_VERSION}-")
    with zipfile.ZipFile(whl) as z:
        meta = email.message_from_bytes(z.read(f"nsfast-{TEST_VERSION}.dist-info/METADATA"))
        launcher = tmp_path / "nsfast"
        launcher.write_bytes(z.read("nsfast/_nsfast"))
    assert meta["Version"] == TEST_VERSION
    assert meta["License-Expression"] == "MIT" and meta["License"] is None
    launcher.chmod(0o755)
    r = subprocess.run([str(launcher), "enter", "--version"], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, NSFAST_PYTHON="/nonexistent"))
    assert r.returncode == 0 and f"(nsfast {TEST_VERSION}," in r.stdout, r


def test_this_installation_reports_one_version():
    need(os.access(INSTALLED, os.X_OK), f"the nsfast command at {INSTALLED} (pip install)")
    assert importlib.metadata.version("nsfast") == nsfast.__version__
    r = subprocess.run([INSTALLED, "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == f"nsfast {nsfast.__version__}\n"
    r = subprocess.run([INSTALLED, "enter", "--version"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and f"(nsfast {nsfast.__version__}," in r.stdout
    # the command pip put in bin/ and the package's copy are the same program
    with open(INSTALLED, "rb") as a, \
            open(os.path.join(os.path.dirname(nsfast.__file__), "_nsfast"), "rb") as b:
        assert a.read() == b.read()
