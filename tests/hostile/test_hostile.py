"""The hostile-payload suite: a static C probe (probe.c, built here with the
system cc -static) tries each attack under the default nsfast.Sandbox, as
root and as uid 65534 (setpriv), and each test asserts the specific
outcome: the errno, the empty read, the survivor.  The resource attacks
(fork bomb, memory, disk, CPU) belong to the limits (issue #15)."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

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
