"""The installed nsfast command: a C launcher (csrc/cli_main.c) that runs
`nsfast enter` itself and hands every other command line to Python."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import nsfast

from conftest import children_of, need, need_tool, run_cli
from enter_helpers import start_unshare_sleep, stop_all, unshare_cli_exists

INSTALLED = os.path.join(os.path.dirname(sys.executable), "nsfast")


@pytest.fixture
def launcher() -> str:
    """The nsfast command pip installed beside this interpreter."""
    need(os.access(INSTALLED, os.X_OK) and not _is_script(INSTALLED),
         f"the C nsfast command at {INSTALLED} (pip install the package)")
    return INSTALLED


def _is_script(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"#!"


def run(*argv: str, env: dict | None = None, input: bytes | None = None):
    return subprocess.run(list(argv), capture_output=True, timeout=60, env=env, input=input)


def test_enter_net_of_an_unshare_target_matches_nsenter(launcher):
    need(unshare_cli_exists(), "nsfast unshare")
    ip = need_tool("ip")
    procs: list = []
    try:
        pid = str(start_unshare_sleep(["-fn"], "net", procs))
        ours = run(launcher, "enter", "-t", pid, "-n", ip, "addr")
        theirs = run(need_tool("nsenter"), "-t", pid, "-n", ip, "addr")
    finally:
        stop_all(procs)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    links = [line for line in ours.stdout.decode().splitlines() if line[:1].isdigit()]
    assert len(links) == 1 and ": lo:" in links[0] and "state DOWN" in links[0]


def test_python_commands_ignore_the_working_directory(launcher, tmp_path):
    """A root command must not import modules lying in the directory it is run
    from (python -m would put it first on sys.path)."""
    marker = tmp_path / "hijacked"
    for name in ("nsfast/__init__.py", "pyroute2.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(f"open({str(marker)!r}, 'w').close()\n")
    # --version imports nsfast, and depends on nothing on the host: `ls` read
    # the host's whole mount table and failed when another process had a
    # mount point there whose name is not UTF-8
    r = subprocess.run([launcher, "--version"], cwd=tmp_path, capture_output=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"nsfast {nsfast.__version__}\n".encode()
    assert not marker.exists()
    # nor from PYTHONPATH: Python starts isolated (-I), as the issue asks
    r = subprocess.run([launcher, "--version"], capture_output=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    assert not marker.exists()


def test_other_commands_reach_python(launcher):
    version = run(launcher, "--version")
    assert version.returncode == 0 and version.stdout == f"nsfast {nsfast.__version__}\n".encode()
    ps = run(launcher, "ps")
    assert ps.returncode == 0, ps.stderr
    assert ps.stdout.split()[:3] == [b"PID", b"KINDS", b"COMMAND"]
    usage = run(launcher)
    assert usage.returncode == 1 and usage.stderr.startswith(b"usage: nsfast")


def test_unknown_command_is_one_line(launcher):
    r = run(launcher, "bogus-command")
    assert r.returncode == 1
    assert r.stderr.count(b"\n") == 1 and r.stderr.startswith(b"nsfast: ")


def test_signalled_program_kills_us_with_its_signal(launcher, sleeper):
    """As nsenter: the program is exec'd in place (-u), or its signal is
    raised again in us after the fork (-p): never 128+N."""
    pid = str(sleeper(namespaces="uts,pid").pid)
    for kinds in (["-u"], ["-p"]):
        r = run(launcher, "enter", "-t", pid, *kinds, "sh", "-c", "kill -KILL $$")
        assert r.returncode == -signal.SIGKILL
        r = run(launcher, "enter", "-t", pid, *kinds, "sh", "-c", "exit 7")
        assert r.returncode == 7


def test_fork_parent_dies_of_term_and_leaves_the_program(launcher, sleeper):
    """-p forks, as nsenter: the parent stays in our pid namespace; SIGTERM
    sent to it kills it (the default action, as nsenter's), not the program."""
    pid = str(sleeper(namespaces="pid").pid)
    p = subprocess.Popen([launcher, "enter", "-t", pid, "-p", "sleep", "30"])
    try:
        deadline = time.monotonic() + 10
        while not children_of(p.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        (child,) = children_of(p.pid)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == -signal.SIGTERM
        assert os.path.exists(f"/proc/{child}")
    finally:
        for c in children_of(p.pid) + ([child] if "child" in locals() else []):
            try:
                os.kill(c, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if p.poll() is None:
            p.kill()
            p.wait()


def test_python_m_nsfast_cli_enter_runs_the_launcher(launcher):
    for args in (["enter", "--help"], ["nsenter", "-V"], ["enter", "-t", "0"]):
        ours = run(launcher, *args)
        through_python = run_cli(*args)
        assert (ours.returncode, ours.stdout, ours.stderr) == \
            (through_python.returncode, through_python.stdout, through_python.stderr)


def test_no_python_is_one_line_and_enter_still_works(launcher, tmp_path, sleeper):
    alone = tmp_path / "nsfast"
    shutil.copy2(launcher, alone)
    env = dict(os.environ, NSFAST_PYTHON=str(tmp_path / "no-such-python"))
    r = run(str(alone), "ps", env=env)
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr.count(b"\n") == 1 and r.stderr.startswith(b"nsfast: ")
    assert b"NSFAST_PYTHON" in r.stderr and b"no-such-python" in r.stderr
    # NSFAST_PYTHON names the interpreter when none stands beside the command
    r = run(str(alone), "--version", env=dict(env, NSFAST_PYTHON=sys.executable))
    assert r.returncode == 0 and r.stdout == f"nsfast {nsfast.__version__}\n".encode()
    # enter needs no Python at all
    p = sleeper(namespaces="uts", hostname="alone")
    r = run(str(alone), "enter", "-t", str(p.pid), "-u", "hostname", env=env)
    assert r.returncode == 0 and r.stdout == b"alone\n"
