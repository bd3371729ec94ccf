"""The tiers of tests/conftest.py, and the namespaces the `system` tier runs in.

A system test compares host-wide state: the whole mount table, /run/netns,
every process.  On a shared host other processes change all three while it
runs, so the pytest that collected it (the host's) runs every selected system
test at once in one child pytest, started as

    unshare --mount --propagation private --pid --fork --mount-proc --kill-child \\
        python tests/isolation.py python -m pytest NODEID...

There the mount table is a private copy that no host mount reaches, /proc
shows only the child's own processes, and /run/netns is an empty tmpfs.
pid 1 is main() below: it mounts that tmpfs, runs the child pytest and reaps
the orphans as init does on the host.  The child writes every test report to
a file, which the host pytest replays as its own: its summary, exit status
and -m selection are as if the tests had run in-process.  The witness is
util-linux unshare, not nsfast, so a bug in nsfast cannot weaken it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

TIERS = ("unit", "kernel", "system")
DEFAULT_TIER = "kernel"
REPORTS_ENV = "NSFAST_ISOLATED_REPORTS"   # set in the child pytest: where its reports go
INSIDE = REPORTS_ENV in os.environ
_config = None   # the child pytest's config, for serialising its reports
_reports_key = pytest.StashKey[dict]()


@pytest.hookimpl(tryfirst=True)   # before -m deselects: an unmarked test is `kernel`
def pytest_collection_modifyitems(config, items):
    global _config
    _config = config
    for item in items:
        tiers = {m.name for m in item.iter_markers() if m.name in TIERS}
        if len(tiers) > 1:
            raise pytest.UsageError(f"{item.nodeid} is in more than one tier: "
                                    f"{', '.join(sorted(tiers))}")
        if not tiers:
            item.add_marker(DEFAULT_TIER)


def runs_isolated(item) -> bool:
    """True when this pytest hands item to a child pytest in its own namespaces."""
    return (not INSIDE and item.get_closest_marker("system") is not None
            and os.geteuid() == 0 and shutil.which("unshare") is not None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    if not runs_isolated(item):
        return None   # pytest runs it here (a system test without root or unshare skips)
    reports = item.config.stash.get(_reports_key, None)
    if reports is None:
        reports = item.config.stash[_reports_key] = _run_isolated(item.config, item.session)
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for data in reports.get(item.nodeid) or [_lost(item, reports)]:
        report = item.config.hook.pytest_report_from_serializable(config=item.config, data=data)
        ihook.pytest_runtest_logreport(report=report)
    # The test item before kept what this one shares with it (its module,
    # module fixtures) for it: tear down here what the next item does not need,
    # as pytest's own teardown step would.
    call = pytest.CallInfo.from_call(
        lambda: item.session._setupstate.teardown_exact(nextitem), when="teardown")
    if call.excinfo is not None:
        ihook.pytest_runtest_logreport(report=ihook.pytest_runtest_makereport(item=item,
                                                                              call=call))
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def pytest_runtest_logreport(report):
    """In the child pytest: every report, one JSON line, for the host pytest."""
    if not INSIDE:
        return
    data = _config.hook.pytest_report_to_serializable(config=_config, report=report)
    with open(os.environ[REPORTS_ENV], "a") as f:
        f.write(json.dumps(data) + "\n")


def _child_args(config) -> list[str]:
    """The child pytest's options: silent (the host pytest prints its reports),
    and this run's settings that change what a test does."""
    args = ["-p", "no:cacheprovider", "-p", "no:terminal", "-o", "addopts="]
    if config.inipath:
        args += ["-c", str(config.inipath)]
    if config.option.capture == "no":
        args.append("-s")
    if config.getoption("--soak-long"):
        args.append("--soak-long")
    return args


def _python_flags() -> list[str]:
    # .ci/sanitize runs pytest with -P: the source tree must not shadow the
    # installed (instrumented) package in the child either
    return ["-P"] if sys.flags.safe_path else []


def _run_isolated(config, session) -> dict:
    """Run every selected system test in one child pytest; nodeid -> its reports."""
    nodeids = [i.nodeid for i in session.items if runs_isolated(i)]
    fd, path = tempfile.mkstemp(prefix="nsfast-system-reports-")
    os.close(fd)
    try:
        cmd = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
               "--mount-proc", "--kill-child", sys.executable, os.path.abspath(__file__),
               sys.executable, *_python_flags(), "-m", "pytest", *_child_args(config), *nodeids]
        status = subprocess.run(cmd, cwd=config.rootpath,
                                env=dict(os.environ, **{REPORTS_ENV: path})).returncode
        reports: dict = {"": status}
        with open(path) as f:
            for line in f:
                data = json.loads(line)
                if isinstance(data.get("longrepr"), list):   # a skip's (path, line, reason)
                    data["longrepr"] = tuple(data["longrepr"])
                reports.setdefault(data["nodeid"], []).append(data)
        return reports
    finally:
        os.unlink(path)


def _lost(item, reports: dict) -> dict:
    """A failure report for a test the child pytest never reported on."""
    report = pytest.TestReport(
        item.nodeid, item.location, {}, "failed",
        f"the isolated pytest exited {reports['']} without running this test "
        "(its stderr is above)", "call")
    return item.config.hook.pytest_report_to_serializable(config=item.config, report=report)


def main(argv: list[str]) -> int:
    """pid 1 of the system tests' pid namespace: an empty /run/netns, the
    command in argv, every orphan reaped; its exit status is the command's."""
    os.makedirs("/run/netns", exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "nsfast-system-tests",
                    "/run/netns"], check=True)
    child = os.fork()
    if child == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda n, _: os.kill(child, n))   # pid 1 has no defaults
    while True:
        pid, status = os.wait()
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
