"""Every example in a docstring of nsfast (and of nsfast._bench) runs, as root.

Collected here rather than by pytest's --doctest-modules so that the README's test
command runs them unchanged, and so that what runs is the importable package: the
compiled _core included (Cython keeps the examples of its docstrings in the module's
__test__ dict), never a .pyx file of the source tree.

An example finds in its globals, besides its module's own names: nsfast, os, socket,
`pid` (a sleeper in its own mnt, uts (hostname "box"), ipc and net namespaces),
`netns_name` (a named network namespace that exists) and `new_name` (a free one).
Each is made for that one docstring and removed after it, also when it fails.
"""
from __future__ import annotations

import contextlib
import doctest
import importlib
import itertools
import os
import pkgutil
import re
import socket

import pytest

import nsfast
import nsfast._bench
import nsfast.pool
from conftest import children_of, open_fds

# an example that cannot run here says why, after these words
SKIP_REASON = "Skipped as a doctest:"

# modules that run their program when imported
RUN_ON_IMPORT = {"nsfast.cli.__main__"}

_names = itertools.count()


def _modules():
    for package in (nsfast, nsfast._bench):
        yield package
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name not in RUN_ON_IMPORT:
                yield importlib.import_module(info.name)


def _doctests() -> list[doctest.DocTest]:
    """Each docstring with an example once (a compiled function re-exported under
    another module's name is found twice)."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    seen, found = set(), []
    for module in _modules():
        for test in finder.find(module, module.__name__):
            if test.examples and test.docstring not in seen:
                seen.add(test.docstring)
                found.append(test)
    return sorted(found, key=lambda t: t.name)


DOCTESTS = _doctests()


def _uses(test: doctest.DocTest, name: str) -> bool:
    return any(re.search(rf"\b{name}\b", example.source) for example in test.examples)


def _fds_but_own_namespaces() -> set[int]:
    """Our open fds, less those on this thread's own namespaces: enter() keeps them
    open for the thread's next enter, by design; and less the mount templates
    Sandboxes share (nsfast/template.py), made once per process, by design."""
    own = {os.readlink(f"/proc/thread-self/ns/{k}") for k in os.listdir("/proc/thread-self/ns")}
    import nsfast.template
    shared = {t.fd for t in list(nsfast.template._shared.values())}
    fds = set()
    for fd in set(open_fds()) - shared:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") not in own:
                fds.add(fd)
        except FileNotFoundError:  # the fd of the listing itself
            pass
    return fds


def _state() -> dict:
    """What an example must leave as it found it: this process's and this thread's
    namespaces, its fds and its children."""
    return {"process": nsfast.namespaces(os.getpid()), "thread": nsfast.namespaces(),
            "fds": _fds_but_own_namespaces(), "children": sorted(children_of(os.getpid()))}


@contextlib.contextmanager
def _named_netns(name: str, add: bool):
    """A netns name for one example, added now if add; removed after it, if there."""
    if add:
        nsfast.netns.add(name)
    else:
        os.makedirs(nsfast.netns.RUN_DIR, exist_ok=True)  # stale()'s example makes a file there
    try:
        yield name
    finally:
        if os.path.lexists(nsfast.netns.path_of(name)):
            nsfast.netns.remove(name)


@pytest.fixture
def example_globals(request):
    test = request.param
    globs = dict(test.globs, nsfast=nsfast, os=os, socket=socket)
    with contextlib.ExitStack() as made:
        if _uses(test, "pid"):
            globs["pid"] = made.enter_context(
                nsfast.spawn(["sleep", "600"], namespaces="mnt,uts,ipc,net", hostname="box")).pid
        for name, add in (("netns_name", True), ("new_name", False)):
            if _uses(test, name):
                netns = f"nsf-doc-{os.getpid()}-{next(_names)}"
                globs[name] = made.enter_context(_named_netns(netns, add))
        yield globs


# an exception in a thread an example started fails the example
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("example_globals", DOCTESTS, ids=[t.name for t in DOCTESTS],
                         indirect=True)
def test_docstring_examples_run(example_globals, request):
    test = request.node.callspec.params["example_globals"]
    if any(e.options.get(doctest.SKIP) for e in test.examples):
        assert SKIP_REASON in test.docstring, \
            f"a skipped example needs a reason: {SKIP_REASON} ... in its docstring"
    test = doctest.DocTest(test.examples, example_globals, test.name, test.filename,
                           test.lineno, test.docstring)
    nsfast.init_program.init_fd()  # made once per process, by design: not a leak
    # the cgroups earlier tests' sandboxes kept for reuse (open fds, by design):
    # gone before, so that an example's clear() cannot look like a change
    nsfast.cgroups.clear()
    # and the loopback pool default Sandboxes share (a thread and open fds)
    nsfast.pool.close_shared()
    before = _state()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report: list[str] = []
    result = runner.run(test, out=report.append, clear_globs=False)
    assert result.failed == 0, "".join(report)
    test.globs.clear()  # an example's handles and processes go now, not at the next gc
    nsfast.pool.close_shared()
    assert _state() == before, "the example left something behind"


@pytest.mark.unit
def test_examples_are_found_in_every_kind_of_module():
    """The collector reads Python modules, the compiled _core (as built, not its
    .pyx) and nsfast._bench."""
    modules = {m.__name__: m for m in _modules()}
    assert modules["nsfast._core"].__file__.endswith(".so")
    assert "nsfast._bench.harness" in modules
    names = {t.name for t in DOCTESTS}
    assert "nsfast.spawn.spawn" in names
    assert any(n.startswith("nsfast._bench.") for n in names)
