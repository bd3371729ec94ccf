"""The hostile-payload suite: a static C probe (probe.c, built here with the
system cc -static) tries each attack under the default nsfast.Sandbox, as
root and as uid 65534 (setpriv), and each test asserts the specific
outcome: the errno, the empty read, the survivor.  The resource attacks
(fork bomb, 4 GiB of memory, 2 GiB into /tmp, an endless CPU loop) run
in a driver process with limits of its own above the Sandbox's, as a
safety net, and each asserts the limit that stopped it."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

import nsfast.sandbox
from conftest import need, need_tool

sys.path.insert(0, os.path.dirname(__file__))
import driver   # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NOBODY = 65534

# attack -> the outcomes that mean "contained" (a path this kernel lacks is
# ENOENT: nothing to read either)
E = lambda n: f"errno {n}"   # noqa: E731
EXPECTED = {
    "read /proc/kcore": {"read 0", E(errno.ENOENT)},
    "list /sys/firmware": {"entries 0", E(errno.ENOENT)},
    "read /proc/keys": {"read 0"},
    "read /proc/timer_list": {"read 0", E(errno.ENOENT)},
    "read /proc/sched_debug": {"read 0", E(errno.ENOENT)},
    "read /etc/shadow": {E(errno.EACCES)},
    # the host root's files, unmapped: permission is refused before the
    # read-only mount would be (test_sandbox.py shows /proc/sys read-only)
    "write /proc/sys/kernel/hostname": {E(errno.EACCES)},
    "write /proc/sys/kernel/core_pattern": {E(errno.EACCES)},
    "tiocsti": {E(errno.EPERM)},
    "ctty": {E(errno.ENXIO)},
    "ptrace {hostpid}": {E(errno.ESRCH)},
    "fd {fd}": {E(errno.EBADF)},
    "mount": {E(errno.EPERM)},
    "userns": {E(errno.EPERM)},
    "keyctl": {E(errno.EPERM)},
    "bpf": {E(errno.EPERM)},
    "perf": {E(errno.EPERM)},
    # pid 1 of its namespace: kill(-1) has no one to signal
    "killall": {f"{E(errno.ESRCH)}; host alive; other alive"},
    "other kill": {f"{E(errno.ESRCH)}; victim alive"},
    "other ptrace": {f"{E(errno.ESRCH)}; victim alive"},
}
# as root only: without pid namespaces, the leased id ranges keep sandboxes apart
EXPECTED_ROOT = {
    "other kill nopid": {f"{E(errno.EPERM)}; victim alive"},
    "other ptrace nopid": {f"{E(errno.EPERM)}; victim alive"},
}


@pytest.fixture(scope="module")
def probe_dir():
    """The probe, built static into a directory any user may read."""
    cc = shutil.which("cc")
    need(cc is not None, "a C compiler (cc) for the hostile probe")
    d = tempfile.mkdtemp(prefix="nsfast-probe-", dir="/var/tmp")
    try:
        os.chmod(d, 0o755)
        r = subprocess.run([cc, "-static", "-O", "-o", os.path.join(d, "probe"),
                            os.path.join(HERE, "probe.c")], capture_output=True, text=True,
                           timeout=120)
        need(r.returncode == 0, f"a static libc for cc -static ({r.stderr.strip()[:200]})")
        yield d
    finally:
        shutil.rmtree(d)


def _host_mounts_of(path: str) -> list:
    with open("/proc/self/mountinfo", errors="surrogateescape") as f:
        return [line for line in f if path in line]


@pytest.fixture(scope="module")
def as_root(probe_dir):
    before = _host_mounts_of(probe_dir)
    results = driver.run(probe_dir, [k.split() for k in {**EXPECTED, **EXPECTED_ROOT}])
    assert _host_mounts_of(probe_dir) == before   # no mount reached the host
    return results


@pytest.fixture(scope="module")
def as_nobody(probe_dir, python_for_nobody):
    setpriv = need_tool("setpriv")
    with open("/proc/sys/user/max_user_namespaces") as f:
        need(int(f.read()) > 0, "user namespaces for unprivileged users")
    # the staging directory of that user (nsfast/confine.py), if this run makes it
    staging = os.path.join(tempfile.gettempdir(), f"nsfast-root-{NOBODY}")
    existed = os.path.exists(staging)
    try:
        # the driver's source is handed over, and nsfast is a readable copy:
        # this checkout may be in a directory uid 65534 cannot search
        with open(driver.__file__) as f:
            source = f.read()
        r = subprocess.run([setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                            python_for_nobody.executable, "-c", source, probe_dir,
                            json.dumps([k.split() for k in EXPECTED])],
                           capture_output=True, text=True, timeout=300, cwd="/",
                           env=python_for_nobody.env())
    finally:
        if not existed and os.path.isdir(staging):
            os.rmdir(staging)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


RESOURCE_ATTACKS = ["forkbomb 5000", "memhog 4096", "fill /tmp/fill 2048", "spin"]
GIB = 1 << 30


def _driver_resources(probe_dir: str, prefix: list) -> dict:
    r = subprocess.run([*prefix, sys.executable, os.path.join(HERE, "driver.py"), probe_dir,
                        json.dumps([a.split() for a in RESOURCE_ATTACKS]), "--resources"],
                       capture_output=True, text=True, timeout=600, cwd="/",
                       env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module", params=["root", "nobody"])
def resource_run(request, probe_dir):
    """(who, what each resource attack got) under the default Sandbox."""
    if request.param == "root":
        return "root", _driver_resources(probe_dir, [])
    setpriv = need_tool("setpriv")
    staging = os.path.join(tempfile.gettempdir(), f"nsfast-root-{NOBODY}")
    existed = os.path.exists(staging)
    try:
        return "nobody", _driver_resources(
            probe_dir, [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"])
    finally:
        if not existed and os.path.isdir(staging):
            os.rmdir(staging)


def _number(line: str, word: str) -> int:
    fields = line.split()
    return int(fields[fields.index(word) + 1])


def test_fork_bomb_is_stopped(resource_run):
    who, got = resource_run
    r = got["forkbomb 5000"]
    # pids.max (root) or RLIMIT_NPROC (a user): 512 tasks, the probe's own among them
    assert r["returncode"] == 0 and "errno 11" in r["last"], r
    assert _number(r["last"], "forked") < nsfast.sandbox.DEFAULT_PIDS
    if who == "root":
        assert r["limit_hit"] == "pids"


def test_memory_hog_is_stopped(resource_run):
    who, got = resource_run
    r = got["memhog 4096"]
    if who == "root":   # the cgroup's 1 GiB: an OOM kill
        assert r["returncode"] == -9 and r["oom_killed"] and r["limit_hit"] == "memory", r
        assert r["max_rss"] <= nsfast.sandbox.DEFAULT_MEMORY
    else:               # the address space rlimit: the mapping is refused
        assert "errno 12" in r["last"], r
        assert _number(r["last"], "touched") * (1 << 20) < 2 * GIB
    assert _number(r["last"], "touched") * (1 << 20) <= 2 * GIB


def test_disk_fill_is_stopped_by_the_tmp_size(resource_run):
    _, got = resource_run
    r = got["fill /tmp/fill 2048"]
    assert r["returncode"] == 0 and "errno 28" in r["last"], r   # ENOSPC
    assert _number(r["last"], "wrote") <= nsfast.sandbox.TMP_SIZE >> 20


def test_endless_loop_is_ended_by_the_wall_time(resource_run):
    _, got = resource_run
    r = got["spin"]
    assert r["returncode"] == -9 and r["limit_hit"] == "wall_time", r
    assert 1.5 < r["wall_time"] < 30


@pytest.mark.parametrize("attack", sorted({**EXPECTED, **EXPECTED_ROOT}))
def test_contained_as_root(as_root, attack):
    expected = {**EXPECTED, **EXPECTED_ROOT}[attack]
    assert as_root[attack] in expected, f"{attack}: {as_root[attack]}"


@pytest.mark.parametrize("attack", sorted(EXPECTED))
def test_contained_as_nobody(as_nobody, attack):
    assert as_nobody[attack] in EXPECTED[attack], f"{attack}: {as_nobody[attack]}"


def test_nothing_left_on_the_host(as_root, as_nobody):
    # the driver's processes were all waited for: no child of ours is left
    me = os.getpid()
    left = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid == me:
                left.append(pid)
    assert left == []
