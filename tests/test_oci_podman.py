"""Podman runs its containers on nsfast-runtime.

`podman --runtime $(which nsfast-runtime) run --rm IMAGE ...` with an image
the test builds (busybox-static and a few files, through `podman import`:
nothing is pulled).  Podman gets a storage, run and temp directory of its
own under the test's temp directory, cgroupfs, file events, and
`--network none` unless a test says otherwise, so that it touches no host
state; the fixture resets it (`podman system reset -f`) and checks that
nothing of its containers is left: no process, no cgroup, no state in
nsfast-runtime's directory."""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import need_root, need_tool
from nsfast._bench.cases_oci import Podman as _Podman, rootfs_tarball

IMAGE = "localhost/nsfast-test:1"
STATE_ROOT = "/run/nsfast-runtime"   # where podman's calls (no --root) keep state


class Podman(_Podman):
    """The benchmark's podman, on nsfast-runtime, remembering what it named."""

    def __init__(self, base) -> None:
        super().__init__(str(base))
        self.runtime = shutil.which("nsfast-runtime")
        self.ids: set = set()

    def __call__(self, *args, check=True, input=None, timeout=60):   # type: ignore[override]
        return super().__call__(*args, check=check, runtime=self.runtime, input=input,
                                timeout=timeout)

    def run(self, *args, check=False, input=None, network="none"):
        """podman run --rm IMAGE args, with a known name; CompletedProcess."""
        name = f"nsft-{os.urandom(6).hex()}"
        self.ids.add(name)
        opts = ["--network", network] if network else []
        return self("run", "--rm", "--name", name, *opts, *args, check=check, input=input)

    def detached(self, *args):
        """podman run -d: (name, container id)."""
        name = f"nsft-{os.urandom(6).hex()}"
        self.ids.add(name)
        cid = self("run", "-d", "--name", name, "--network", "none", *args).stdout
        cid = cid.decode().strip()
        self.ids.add(cid)
        return name, cid


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    need_root()
    need_tool("podman")
    need_tool("conmon")
    need_tool("nsfast-runtime")
    base = tmp_path_factory.mktemp("podman")
    p = Podman(base)
    p("import", rootfs_tarball(str(base), need_tool("busybox")), IMAGE)
    yield p
    full_ids = [line for line in p("ps", "-aq", "--no-trunc", check=False).stdout.decode()
                .split()]
    p.reset()
    for cid in full_ids + list(p.ids):
        assert not os.path.exists(os.path.join(STATE_ROOT, cid)), f"state of {cid} left"
        for h in os.listdir("/sys/fs/cgroup"):
            assert not os.path.exists(f"/sys/fs/cgroup/{h}/libpod_parent/libpod-{cid}")
    # libpod_parent (and conmon's cgroup in it), made on first use, went with reset()
    assert [d for d in p.cgroup_dirs + p.host_dirs if os.path.exists(d)] == []
    shutil.rmtree(base, ignore_errors=True)


def test_exit_code_and_stdout(podman):
    r = podman.run(IMAGE, "sh", "-c", "echo out; echo err >&2; exit 42")
    assert r.returncode == 42
    assert r.stdout == b"out\n"
    assert b"err\n" in r.stderr


def test_missing_program_fails_at_create(podman):
    r = podman.run(IMAGE, "no-such-program")
    assert r.returncode in (126, 127)
    assert b"no-such-program" in r.stderr


def test_stdin_with_i(podman):
    r = podman.run("-i", IMAGE, "sh", "-c", "wc -c; cat /dev/null", input=b"x" * 1000)
    assert r.returncode == 0 and r.stdout.split() == [b"1000"]


def test_tty_with_t(podman):
    # the pty is the container's controlling terminal too (field 7 of stat)
    r = podman.run("-t", IMAGE, "sh", "-c", "test -t 0 && test -t 1 && echo tty; "
                   "cut -d' ' -f7 /proc/self/stat")
    out = r.stdout.split()
    assert r.returncode == 0 and out[0] == b"tty" and int(out[1]) != 0


def test_memory_limit(podman):
    name, cid = podman.detached("--memory", "48m", IMAGE, "sleep", "30")
    path = f"/sys/fs/cgroup/memory/libpod_parent/libpod-{cid}/memory.limit_in_bytes"
    assert open(path).read().strip() == str(48 << 20)
    podman("rm", "-f", "-t", "0", name)
    assert not os.path.exists(os.path.dirname(path))


def test_pids_limit(podman):
    # an inner shell forks until it cannot (busybox sh gives up there); the
    # outer one then reads the counters with builtins only
    r = podman.run("--pids-limit", "5", IMAGE, "sh", "-c",
                   "sh -c 'for i in 1 2 3 4 5 6 7 8; do sleep 3 & done'; "
                   "read cur < /sys/fs/cgroup/pids/pids.current; "
                   "read max < /sys/fs/cgroup/pids/pids.max; echo $cur $max")
    cur, limit = r.stdout.split()
    assert limit == b"5" and int(cur) <= 5
    assert b"can't fork" in r.stderr


def test_read_only(podman):
    r = podman.run("--read-only", IMAGE, "sh", "-c", "touch /x && echo wrote; touch /tmp/y "
                   "&& echo tmp-ok")
    assert b"wrote" not in r.stdout
    assert b"Read-only file system" in r.stderr
    assert b"tmp-ok" in r.stdout    # podman puts a tmpfs on /tmp for --read-only


def test_network_none(podman):
    r = podman.run(IMAGE, "ls", "/sys/class/net")
    assert r.returncode == 0 and r.stdout.split() == [b"lo"]


def test_user(podman):
    r = podman.run("--user", "65534:65534", IMAGE, "sh", "-c",
                   "id -u; id -g; grep CapEff /proc/self/status")
    assert r.returncode == 0
    assert r.stdout.split()[:2] == [b"65534", b"65534"]
    assert r.stdout.split()[3] == b"0000000000000000"


def test_env(podman):
    r = podman.run("--env", "GREETING=hello there", IMAGE, "sh", "-c", 'echo "$GREETING"')
    assert r.stdout == b"hello there\n"


def test_exec_into_running_container(podman):
    name, cid = podman.detached(IMAGE, "sleep", "60")
    r = podman("exec", name, "sh", "-c", "cat /proc/1/cmdline; hostname; exit 5", check=False)
    assert r.returncode == 5
    assert r.stdout.startswith(b"sleep\x0060\x00")
    r = podman("exec", "--user", "65534", name, "id", "-u")
    assert r.stdout == b"65534\n"
    podman("rm", "-f", "-t", "0", name)


def test_stop_sigterm_then_sigkill(podman):
    # pid 1 ignores SIGTERM unless it handles it: stop waits, then SIGKILL
    name, cid = podman.detached(IMAGE, "sleep", "60")
    t = time.monotonic()
    podman("stop", "-t", "1", name)
    took = time.monotonic() - t
    assert 0.9 < took < 10
    code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    assert code == b"137"
    # a payload that handles SIGTERM ends on it, at once
    name2, _ = podman.detached(IMAGE, "sh", "-c", "trap 'exit 9' TERM; "
                                                  "while :; do sleep 0.1; done")
    time.sleep(0.3)
    t = time.monotonic()
    podman("stop", "-t", "10", name2)
    assert time.monotonic() - t < 5
    assert podman("inspect", "--format", "{{.State.ExitCode}}", name2).stdout.strip() == b"9"
    podman("rm", "-f", name, name2)


def test_runtime_state_while_running(podman):
    name, cid = podman.detached(IMAGE, "sleep", "60")
    st = json.loads(subprocess.run([podman.runtime, "state", cid], capture_output=True,
                                   check=True).stdout)
    assert st["status"] == "running" and st["pid"] > 0
    with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
        assert f.read() == b"sleep\x0060\x00"
    podman("rm", "-f", "-t", "0", name)


@pytest.mark.parametrize("options", [
    [], ["-t"], ["--user", "65534:65534", "--memory", "64m", "--read-only", "--env", "A=1"]],
    ids=["plain", "tty", "user-memory-readonly-env"])
def test_podmans_config_goes_through_c_create_as_python_would(podman, tmp_path, options):
    from test_oci_create_c import PlanRecorder
    recorder = PlanRecorder(str(tmp_path), podman.runtime)
    name = f"nsft-{os.urandom(6).hex()}"
    podman.ids.add(name)
    r = super(Podman, podman).__call__("run", "--rm", "--name", name, "--network", "none",
                                       "--pids-limit", "100", *options, IMAGE, "true",
                                       runtime=recorder.path)
    assert r.returncode == 0, r.stderr
    (c, py), = recorder.plans()
    assert c.startswith("rootfs "), c   # C made a plan: no hand-over to Python
    assert "\nseccomp " in c            # Podman's own profile, compiled in C
    assert c == py
