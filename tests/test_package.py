"""Packaging: the typed stub matches the compiled module; import guards."""
import ast
import inspect
import os
import subprocess
import sys

import pytest

import nsfast
from nsfast import _core

pytestmark = pytest.mark.unit

STUB = os.path.join(os.path.dirname(nsfast.__file__), "_core.pyi")


def _stub_names():
    tree = ast.parse(open(STUB).read())
    return {n.name for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.ClassDef))} | {
        t.id for n in tree.body if isinstance(n, ast.AnnAssign) for t in [n.target]}


def _module_names():
    return {n for n in dir(_core) if not n.startswith("_") and
            (callable(getattr(_core, n)) or isinstance(getattr(_core, n), (dict, int)))}


def test_stub_and_module_agree():
    """A name in _core without a stub entry, or the reverse, is drift."""
    assert _stub_names() == _module_names()


def test_public_calls_are_python_functions():
    """nsfast.setns, mounts.set_propagation and enter()'s methods are Python
    code of their own modules, over _core calls; _core is handed no Python
    callbacks or caches by them."""
    for fn, module in ((nsfast.setns, "nsfast.inplace"),
                       (nsfast.mounts.set_propagation, "nsfast.mounts"),
                       (nsfast.enter.__init__, "nsfast.enter"),
                       (nsfast.enter.__enter__, "nsfast.enter"),
                       (nsfast.enter.__exit__, "nsfast.enter")):
        assert inspect.isfunction(fn) and fn.__module__ == module, fn
    assert nsfast.setns.__doc__ and nsfast.mounts.set_propagation.__doc__
    assert _core.__name__ not in {c.__module__ for c in nsfast.enter.__mro__}
    assert not {"enter_bind", "setns_bind", "propagation_bind"} & set(dir(_core))


def test_stub_signatures_match():
    tree = ast.parse(open(STUB).read())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            fn = getattr(_core, node.name)
            try:
                sig = inspect.signature(fn, follow_wrapped=False)
            except (TypeError, ValueError):
                continue
            a = node.args
            stub_params = [p.arg for p in [*a.args, a.vararg, *a.kwonlyargs, a.kwarg] if p]
            assert list(sig.parameters) == stub_params, node.name


def test_py_typed_shipped():
    assert os.path.exists(os.path.join(os.path.dirname(nsfast.__file__), "py.typed"))


def test_import_fails_clearly_off_linux():
    code = ("import sys; sys.platform = 'darwin'\n"
            "try:\n import nsfast\nexcept ImportError as e: print(e)")
    root = os.path.dirname(os.path.dirname(nsfast.__file__))
    env = dict(os.environ, PYTHONPATH=root)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd="/", env=env).stdout
    assert "needs Linux" in out
