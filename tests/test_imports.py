"""No module of nsfast imports one that imports it back.

Every `import` and `from ... import` statement counts, also one inside a
function: a late import hides a cycle from Python's import machinery, not
from a reader.  nsfast/__init__.py is the root that re-exports the public
names and is left out; the compiled _core imports no nsfast module.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
# package name -> its source directory (pyproject.toml's package-dir)
PACKAGES = {"nsfast": ROOT / "nsfast", "nsfast._bench": ROOT / "benchmarks"}


def modules() -> dict[str, Path]:
    """Module name -> file, for every .py file of the nsfast packages."""
    found = {}
    for package, directory in PACKAGES.items():
        if not directory.is_dir():
            continue
        for path in sorted(directory.rglob("*.py")):
            rel = path.relative_to(directory).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            if any(part.startswith(".") or part in ("build", "tests") for part in rel):
                continue
            found[".".join((package, *rel))] = path
    return found


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The nsfast modules that the module `name` imports anywhere in its file."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from . import x` imports the module x when there is one, else
            # takes the name x from the package
            targets = [f"{mod}.{alias.name}" if f"{mod}.{alias.name}" in known else mod
                       for alias in node.names]
        else:
            continue
        for target in targets:
            # `import a.b.c` runs a, a.b and a.b.c: the deepest known one is the edge
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    edges = {}
    for name, path in mods.items():
        if name == "nsfast":
            continue  # the root: it imports everything to re-export it
        edges[name] = imported(name, path, known) - {name, "nsfast"}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str]:
    """One cycle as [a, b, ..., a], or [] when there is none (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def test_the_walk_sees_late_imports(tmp_path):
    # the walk itself: a function-level relative import is an edge
    module = tmp_path / "late.py"
    module.write_text("def f():\n    from .spawn import spawn\n    from . import netns\n"
                      "    import nsfast.cli.common\n")
    known = {"nsfast.spawn", "nsfast.netns", "nsfast.cli", "nsfast.cli.common"}
    assert imported("nsfast.late", module, known) == {"nsfast.spawn", "nsfast.netns",
                                                      "nsfast.cli.common"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


# ---------------------------------------------------------------- import cost

IMPORT_BUDGET_US = 10_000   # issue #18: `import nsfast` at most 10 ms over a bare interpreter
# what `import nsfast` must not load: the heavy standard modules, and any of
# nsfast's own (the public names are imported on first use, nothing probed)
NOT_AT_IMPORT = ("dataclasses", "inspect", "json", "socket", "argparse", "nsfast.features",
                 "nsfast._core", "nsfast.spawn", "nsfast.enter", "nsfast.mounts")


def _importtime(code: str) -> tuple[dict, set]:
    """(cumulative microseconds by module, modules loaded) for `python -I -c code`,
    as -X importtime reports them."""
    import subprocess
    import sys
    probe = f"{code}\nimport sys\nprint(' '.join(sys.modules))"
    r = subprocess.run([sys.executable, "-I", "-X", "importtime", "-c", probe],
                       capture_output=True, text=True, timeout=60, check=True)
    cumulative = {}
    for line in r.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cum, name = line.split("|")
            cumulative[name.strip()] = int(cum)
    return cumulative, set(r.stdout.split())


def test_import_nsfast_is_cheap_and_probes_nothing():
    """The minimum of a few runs, so that another process's burst of work
    on this machine cannot fail it; the module list is exact either way."""
    costs = []
    for _ in range(5):
        cumulative, loaded = _importtime("import nsfast")
        costs.append(cumulative["nsfast"])
        assert not loaded & set(NOT_AT_IMPORT), sorted(loaded & set(NOT_AT_IMPORT))
    assert min(costs) <= IMPORT_BUDGET_US, costs


def test_public_names_are_there_on_first_use():
    import nsfast
    for name in nsfast.__all__:
        assert getattr(nsfast, name) is not None, name
    # names that are also modules' stay the public objects once the module is imported
    import nsfast.enter   # noqa: F401
    import nsfast.spawn   # noqa: F401
    assert callable(nsfast.spawn) and nsfast.features.clone3 in (True, False)
    assert type(nsfast.features).__name__ == "Features"
    assert set(dir(nsfast)) >= set(nsfast.__all__)
