"""`mypy --strict` passes on a module that uses nsfast's public API as another
tool would (tests/typing/consumer.py): spawn, Sandbox, Limits, enter, netns,
NetnsPool, list_namespaces.

The consumer is checked as a consumer sees nsfast: errors inside nsfast's own
modules are not its to fix (--follow-imports=silent, as mypy treats an
installed package), but every type it gets from them is checked, and
assert_type there catches an annotation that is wrong or decays to Any.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

import nsfast
from conftest import need

pytestmark = pytest.mark.unit

HERE = os.path.dirname(os.path.abspath(__file__))
# where mypy finds the nsfast this process imports (an editable install's too)
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(nsfast.__file__)))


def mypy_strict(path: str, cache: str) -> subprocess.CompletedProcess:
    need(importlib.util.find_spec("mypy") is not None, "mypy (pip install -e '.[test]')")
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
                           "--cache-dir", cache, "--no-error-summary", path],
                          capture_output=True, text=True, timeout=300, cwd=PACKAGE_PARENT)


def test_the_consumer_passes_mypy_strict(tmp_path):
    r = mypy_strict(os.path.join(HERE, "consumer.py"), str(tmp_path / "cache"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == ""


def test_a_type_error_in_a_consumer_fails_the_check(tmp_path):
    """The check can fail: a caller that takes a Process for a str, or passes
    Limits a list, is told so."""
    bad = tmp_path / "bad_consumer.py"
    bad.write_text("import nsfast\n"
                   "name: str = nsfast.spawn(['true'])\n"
                   "nsfast.Sandbox().run(['true']).returncode.upper()\n")
    r = mypy_strict(str(bad), str(tmp_path / "cache"))
    assert r.returncode == 1
    assert 'Incompatible types in assignment (expression has type "Process"' in r.stdout
    assert '"int" has no attribute "upper"' in r.stdout
