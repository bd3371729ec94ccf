"""Every example of README.md runs: each Python and each shell block, as root,
against the installed package, so that the README cannot drift from the code.

The blocks are found when the tests are collected: a block added to the README
is a test here with nothing else to do.  Each runs in tests/readme_runner.py,
inside namespaces of its own made by util-linux unshare (mount, pid, net, uts,
ipc; empty tmpfs on /run/netns and /tmp, the working directory): names such as
`blue` or `v-host` cannot meet another test's, and a block that leaves
something behind is seen there, not guessed at on a shared host.  What the
runner gives a block (`nsfast`, a sleeper as `pid`/`$PID`) is described in
its docstring.

A block that must not run is marked in the README, on the line right before
its fence, with why:

    <!-- not run by tests/test_readme.py: REASON -->

and the skip here says that reason.  Every fenced block of the README is a
Python block, a shell block or a `text` one: a block in another language would
run nowhere, and fails test_every_block_is_run_or_text.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

from conftest import need_root, need_tool

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(os.path.dirname(HERE), "README.md")
RUNNER = os.path.join(HERE, "readme_runner.py")

LANGUAGES = {"python": "python", "py": "python", "sh": "sh", "bash": "sh", "shell": "sh"}
NOT_RUN = re.compile(r"^<!-- not run by tests/test_readme\.py: (?P<why>.+?) -->$")
FENCE = re.compile(r"^```(?P<lang>\S*)\s*$")


@dataclass(frozen=True)
class Block:
    kind: str         # "python", "sh", or the fence's own word for the others
    line: int         # of its first line of code, 1-based
    source: str
    not_run: str      # the README's reason not to run it, or ""

    @property
    def id(self) -> str:
        return f"{self.kind}-line-{self.line}"


def blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, with the marker before each.

    >>> [b.id for b in blocks("a\\n```python\\nx = 1\\n```\\n")]
    ['python-line-3']
    """
    found, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, end = i + 1, i + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        marker = NOT_RUN.match(lines[i - 1].strip()) if i else None
        lang = m.group("lang")
        found.append(Block(LANGUAGES.get(lang, lang or "(none)"), start + 1,
                           "\n".join(lines[start:end]) + "\n",
                           marker.group("why") if marker else ""))
        i = end + 1
    return found


with open(README, encoding="utf-8") as _f:
    BLOCKS = blocks(_f.read())
RUN = [b for b in BLOCKS if b.kind in ("python", "sh")]


def run_block(block: Block, timeout: float = 240) -> subprocess.CompletedProcess:
    """The block in its own namespaces (the module's docstring), as root."""
    unshare = need_tool("unshare")
    os.makedirs("/run/netns", exist_ok=True)   # where the private tmpfs goes
    world = ("mount -t tmpfs -o mode=0755 nsfast-readme /run/netns; "
             "mount -t tmpfs -o mode=1777 nsfast-readme /tmp; cd /tmp; "
             # below pid 1, in a mount namespace of its own: nsfast.mounts may change it
             f"rc=0; {unshare} --mount --propagation private \"$@\" || rc=$?; "
             # then what it left, seen by pid 1
             "\"$1\" \"$2\" --left-behind; exit $rc")
    # the venv's bin first: shell blocks call the installed nsfast command
    path = f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    return subprocess.run(
        [unshare, "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc",
         "--net", "--uts", "--ipc", "--kill-child", "sh", "-e", "-c", world, "sh",
         sys.executable, RUNNER, block.kind, README, str(block.line)],
        input=block.source, capture_output=True, text=True, timeout=timeout,
        env=dict(os.environ, PATH=path))


def left_behind(r: subprocess.CompletedProcess) -> dict:
    """The runner's two reports, the block's threads and what pid 1 saw after."""
    threads, rest = r.stdout.splitlines()[-2:]
    return {**json.loads(threads), **json.loads(rest)}


RUNNABLE = [b for b in RUN if not b.not_run]


def test_blocks_not_run_say_why():
    """A block marked not to run (the install lines, which .ci/run runs; the
    full benchmark) gives its reason; it is not collected as a test, so no
    skip stands for it."""
    marked = [b for b in RUN if b.not_run]
    assert all(b.not_run.strip() for b in marked)
    assert len(RUNNABLE) + len(marked) == len(RUN) and RUNNABLE


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_readme_block_runs_and_cleans_up(block):
    need_root()
    r = run_block(block)
    assert r.returncode == 0, f"README.md line {block.line}:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    left = left_behind(r)
    assert left == {"processes": [], "netns": [], "links": [], "threads": []}, \
        f"README.md line {block.line} leaves behind: {left}"


def test_every_block_is_run_or_text():
    """A block in another language would run nowhere: say `text` for output."""
    others = [f"line {b.line}: ```{b.kind}" for b in BLOCKS
              if b.kind not in ("python", "sh", "text")]
    assert others == []


def test_the_readme_has_blocks_of_both_kinds_and_runs_most():
    kinds = {b.kind for b in RUN if not b.not_run}
    assert kinds == {"python", "sh"}
    assert len([b for b in RUN if b.not_run]) <= 2, [b.id for b in RUN if b.not_run]


@pytest.mark.parametrize("source, left", [
    ("netns.add('leak')\n", {"netns": ["leak"]}),
    ("netns.veth('leak0', 'leak1')\n", {"links": ["leak0@leak1", "leak1@leak0"]}),
    # a dropped Process is killed with its parent (pdeathsig), unless told otherwise
    ("nsfast.spawn(['sleep', '60'], pdeathsig=None)\n", {"processes": ["sleep 60"]}),
    ("import threading, time\n"
     "threading.Thread(target=time.sleep, args=(60,), name='leak', daemon=True).start()\n",
     {"threads": ["leak"]}),
], ids=["netns", "veth", "process", "thread"])
def test_a_block_that_leaves_something_fails(source, left):
    """The runner's witness: a block that cleans nothing up is seen to."""
    need_root()
    r = run_block(Block("python", 1, "from nsfast import netns\n" + source, ""))
    assert r.returncode == 0, r.stderr
    seen = left_behind(r)
    seen["processes"] = [p.split(" ", 1)[1] for p in seen["processes"]]
    assert {k: v for k, v in seen.items() if v} == left


def test_a_failing_block_fails_with_its_readme_line():
    need_root()
    r = run_block(Block("python", 7, "x = 1\nraise ValueError('from the block')\n", ""))
    assert r.returncode == 1 and "ValueError: from the block" in r.stderr
    assert f'File "{README}", line 8' in r.stderr
    r = run_block(Block("sh", 3, "true\nfalse\necho not reached\n", ""))
    assert r.returncode == 1 and "not reached" not in r.stdout
