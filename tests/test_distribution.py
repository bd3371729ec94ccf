"""What a build ships: `python -m build` makes an sdist and a wheel from it;
the sdist holds everything a build needs, the wheel installs nothing but the
nsfast package, its metadata and the nsfast command (also as nsfast-runtime), links nothing but glibc
(auditwheel: a manylinux tag) and works in a fresh virtual environment; a
regular build writes no build/ into the tree it builds from, warns about no
license, and the version is written in one place.

`python -m build` makes an sdist from this checkout and a wheel from that
sdist; a second wheel is built from the sdist unpacked with its version
changed (this environment's setuptools and Cython, no network, no build
isolation); the tests here share them.
"""
from __future__ import annotations

import email
import importlib.metadata
import json
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
    if importlib.util.find_spec("Cython") is None or importlib.util.find_spec("build") is None:
        return False
    try:
        return int(importlib.metadata.version("setuptools").split(".")[0]) >= 77
    except importlib.metadata.PackageNotFoundError:
        return False


def python_m_build(*args: str, env: dict | None = None) -> str:
    """`python -m build --no-isolation ARGS` (this environment's setuptools and
    Cython: no network); its output, stdout and stderr in one."""
    r = subprocess.run([sys.executable, "-m", "build", "--no-isolation", *args],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
                       env=env)
    assert r.returncode == 0, r.stdout[-3000:]
    return r.stdout


def license_warnings(log: str) -> list[str]:
    """The lines of a build's output that warn about the license or deprecate
    anything (setuptools' "License classifiers are deprecated", the license
    table it stops reading in 2027-02)."""
    return [line for line in log.splitlines()
            if re.search(r"deprecat", line, re.I) or
            (re.search(r"licen[cs]e", line, re.I) and re.search(r"warn", line, re.I))]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """`python -m build` of this checkout: (the sdist, the wheel it built from
    that sdist, the build's output)."""
    need(_build_tools(), "setuptools>=77, Cython and build in this environment "
                         "(pip install -e '.[test]')")
    out = tmp_path_factory.mktemp("dist")
    log = python_m_build("--outdir", str(out), ROOT)
    [archive] = out.glob("nsfast-*.tar.gz")
    [whl] = out.glob("nsfast-*.whl")
    return archive, whl, log


@pytest.fixture(scope="module")
def sdist(built):
    """(member names without the top directory, the build's output, the archive)."""
    archive, _, log = built
    with tarfile.open(archive) as tar:
        names = [m.name.split("/", 1)[1] for m in tar.getmembers()
                 if m.isfile() and "/" in m.name]
    return names, log, archive


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
    python_m_build("--wheel", "--outdir", str(out), str(tree), env=dict(os.environ, TMPDIR=str(tmp)))
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


def test_python_m_build_makes_both_with_no_license_warning(built):
    """The license is the SPDX expression (license = "MIT", license-files):
    setuptools warns about neither it nor a classifier, for the sdist or the
    wheel built from it."""
    archive, whl, log = built
    assert archive.name == f"nsfast-{nsfast.__version__}.tar.gz"
    assert re.fullmatch(rf"nsfast-{re.escape(nsfast.__version__)}-cp\d+-cp\d+-linux_\w+\.whl",
                        whl.name), whl.name
    assert f"Successfully built {archive.name} and {whl.name}" in log
    assert license_warnings(log) == []
    with zipfile.ZipFile(whl) as z:
        meta = email.message_from_bytes(
            z.read(f"nsfast-{nsfast.__version__}.dist-info/METADATA"))
    assert meta["License-Expression"] == "MIT"
    assert not [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]


def test_license_warnings_are_seen():
    """What setuptools says of a license table or a license classifier is caught."""
    assert license_warnings("SetuptoolsDeprecationWarning: License classifiers are "
                            "deprecated.\nok\n")
    assert license_warnings("!!\n  `project.license` as a TOML table is deprecated\n")
    assert license_warnings("warning: no license file found") != []
    assert license_warnings("adding license file 'LICENSE'\n") == []


# glibc's own libraries: what a manylinux wheel may need from the system
GLIBC = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
         "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}


def test_auditwheel_calls_the_wheel_manylinux_linking_only_glibc(built):
    need(importlib.util.find_spec("auditwheel") is not None,
         "auditwheel (pip install -e '.[test]')")
    _, whl, _ = built
    r = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(whl)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    tag = re.search(r'is consistent with the following platform tag: "(manylinux_\d+_\d+_\w+)"',
                    text)
    assert tag, text
    # the libraries it uses from the system, all glibc's; none it would have to graft in
    used = set(re.findall(r"(\S+\.so(?:\.\d+)*) with versions", text))
    assert used and used <= GLIBC, used
    assert "external shared libraries" not in text, text


def test_the_sdist_builds_a_wheel_that_works_in_a_fresh_venv(built, tmp_path):
    """The wheel `python -m build` made from the sdist, in a new virtual
    environment that has nothing else (--no-deps: no network; pyroute2, which
    only the netlink functions import, is left out): it imports from there,
    spawns into new namespaces, and its command answers."""
    _, whl, _ = built
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python, command = str(venv / "bin" / "python"), str(venv / "bin" / "nsfast")
    r = subprocess.run([python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(whl)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    code = ("import json, sys, nsfast\n"
            "p = nsfast.spawn(['sh', '-c', 'echo $$; hostname'], namespaces='user,pid,uts',\n"
            "                 map_root=True, hostname='fresh', stdout=nsfast.PIPE)\n"
            "out, _ = p.communicate(timeout=30)\n"
            "print(json.dumps([nsfast.__file__, sys.prefix, out.decode(), p.returncode]))\n")
    r = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    where, prefix, out, status = json.loads(r.stdout)
    assert where.startswith(str(venv) + os.sep) and prefix == str(venv)
    assert (out, status) == ("1\nfresh\n", 0)
    r = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path, env=env)
    assert r.returncode == 0 and r.stdout == f"nsfast {nsfast.__version__}\n", r
    r = subprocess.run([command, "ls", "-J", "-t", "user"], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["namespaces"], r.stdout
    # the OCI runtime: the launcher by another name, in C (--version, state)
    # and handing the rest to this venv's Python (features)
    runtime = str(venv / "bin" / "nsfast-runtime")
    r = subprocess.run([runtime, "--version"], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path, env=env)
    assert r.returncode == 0 and r.stdout.startswith(
        f"nsfast-runtime version {nsfast.__version__}\n"), r
    r = subprocess.run([runtime, "--root", str(tmp_path / "state"), "state", "nosuch"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert (r.returncode, r.stderr) == (1, "nsfast-runtime: container 'nosuch' does not exist\n")
    r = subprocess.run([runtime, "features"], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path, env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["ociVersionMax"] == "1.0.2", r.stderr


def test_the_wheel_installs_only_nsfast_its_metadata_and_the_command(wheel):
    names, _, _, _ = wheel
    dist_info = f"nsfast-{TEST_VERSION}.dist-info/"
    command = f"nsfast-{TEST_VERSION}.data/data/bin/nsfast"
    runtime = f"nsfast-{TEST_VERSION}.data/data/bin/nsfast-runtime"
    elsewhere = [n for n in names
                 if not n.startswith(("nsfast/", dist_info)) and n not in (command, runtime)]
    assert elsewhere == []
    assert command in names and "nsfast/_nsfast" in names and "nsfast/_nsfast_init" in names
    assert runtime in names
    # nsfast-runtime is the launcher, not a console script that starts Python
    with zipfile.ZipFile(wheel[1]) as z:
        entry_points = z.read(dist_info + "entry_points.txt").decode()
    assert "console_scripts" not in entry_points and "pytest11" in entry_points
    assert any(re.fullmatch(r"nsfast/_core\.[^/]*\.so", n) for n in names)
    assert {"nsfast/_bench/__main__.py", "nsfast/_bench/floor_common.h",
            "nsfast/_bench/floor_spawn.c", "nsfast/cli/__main__.py", "nsfast/py.typed",
            dist_info + "licenses/LICENSE"} <= set(names)
    # the generated C and the build's inputs stay out
    assert [n for n in names if n.endswith((".pyx", ".pxd")) or n == "nsfast/_core.c"] == []


def test_the_launcher_is_in_the_wheel_thrice_as_one_program(wheel):
    names, whl, _, _ = wheel
    with zipfile.ZipFile(whl) as z:
        command = z.getinfo(f"nsfast-{TEST_VERSION}.data/data/bin/nsfast")
        runtime = z.getinfo(f"nsfast-{TEST_VERSION}.data/data/bin/nsfast-runtime")
        package = z.getinfo("nsfast/_nsfast")
        assert z.read(command) == z.read(package) == z.read(runtime)
        assert z.read(command)[:4] == b"\x7fELF"
    for info in (command, runtime, package):
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
    # the commands pip put in bin/ and the package's copy are the same program
    with open(INSTALLED, "rb") as a, open(INSTALLED + "-runtime", "rb") as r, \
            open(os.path.join(os.path.dirname(nsfast.__file__), "_nsfast"), "rb") as b:
        assert a.read() == b.read() == r.read()
