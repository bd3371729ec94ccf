"""Every sub-command, fed unknown flags, missing values and bad pids, exits 1 with
one line on stderr and never a traceback."""
from __future__ import annotations

import pytest

from conftest import run_cli

BAD_PID = "4194304999"  # above pid_max

CASES = [
    ["--no-such-flag"],
    ["bogus-command"],
    ["ls", "--no-such-flag"],
    ["ls", "-t"],
    ["ls", "-t", "nonsense"],
    ["ls", "-p", BAD_PID],
    ["ls", "-p", "abc"],
    ["ls", "-o", "NOSUCHCOLUMN"],
    ["ps", "--no-such-flag"],
    ["enter"],
    ["enter", "-t"],
    ["enter", "-t", BAD_PID, "-n", "true"],
    ["enter", "-t", "abc", "-n", "true"],
    ["enter", "--no-such-flag"],
    ["nsenter", "-t", BAD_PID, "-a", "true"],
    ["enter", "--net=/nonexistent/ns", "true"],
    ["netns", "--no-such-flag"],
    ["netns", "add"],
    ["netns", "add", "../escape"],
    ["netns", "del", "no-such-netns-for-sure"],
    ["netns", "exec", "no-such-netns-for-sure", "true"],
    ["netns", "attach", "x"],
    ["netns", "attach", "x", BAD_PID],
    ["netns", "pids"],
    ["netns", "identify", BAD_PID],
    ["netns", "veth"],
    ["netns", "frobnicate"],
    ["bench", "--no-such-flag"],
    ["bench", "--repeat", "many"],
    ["unshare", "--no-such-flag"],
    ["unshare", "--propagation"],
    ["unshare", "--propagation=sideways", "true"],
    ["unshare", "--map-users=1:2", "-U", "true"],
    ["unshare", "--kill-child=NOSIG", "true"],
    ["unshare", "-w", "/nonexistent-dir", "true"],
    ["unshare", "--hostname", "x" * 65, "-u", "true"],
]


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a)[:40])
def test_bad_command_lines_fail_with_one_line(args):
    r = run_cli(*args, timeout=30)
    err = r.stderr.decode()
    assert r.returncode == 1, (r.returncode, err)
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("nsfast"), err
