"""containerd runs its containers on nsfast-runtime through the runc shim.

The test starts containerd with a config, root, state and sockets of its
own (no CRI plugin), imports an OCI image tarball it built from
busybox-static (`ctr image import`: nothing is pulled), and runs
`ctr run --runtime io.containerd.runc.v2 --runc-binary nsfast-runtime`,
then acts on a running task with `ctr task exec` and `ctr task kill`.  The
runtime's state goes to a directory of the test's own (--runc-root)."""
import os
import shutil
import time

import pytest

from conftest import need_root, need_tool
from nsfast._bench.cases_oci import Containerd as _Containerd, oci_tarball

IMAGE = "docker.io/library/nsfast-test:1"


class Containerd(_Containerd):
    def __init__(self, base) -> None:
        super().__init__(base)
        self.runtime = shutil.which("nsfast-runtime")

    def runtime_flags(self) -> list:   # type: ignore[override]
        return super().runtime_flags(self.runtime)


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    need_root()
    need_tool("containerd")
    need_tool("containerd-shim-runc-v2")
    need_tool("nsfast-runtime")
    base = tmp_path_factory.mktemp("ctrd")
    c = Containerd(base)
    try:
        c.ctr("image", "import", "--snapshotter", "native",
              oci_tarball(base, need_tool("busybox"), IMAGE))
        yield c
        c.clear()
        c.ctr("image", "rm", IMAGE, check=False)
        left = os.listdir(c.runc_root) if os.path.isdir(c.runc_root) else []
        # the shim keeps nsfast-runtime's state per namespace: empty after
        assert all(os.listdir(os.path.join(c.runc_root, d)) == [] for d in left), left
        for h in os.listdir("/sys/fs/cgroup"):
            assert not os.path.exists(f"/sys/fs/cgroup/{h}/nsfast-test"), h
    finally:
        c.stop()
        shutil.rmtree(base, ignore_errors=True)
    assert [d for d in c.host_dirs + c.cgroup_dirs if os.path.exists(d)] == []


def _name() -> str:
    return "nsft-" + os.urandom(5).hex()


def test_ctr_run_exit_code_and_output(containerd):
    r = containerd.ctr("run", "--rm", *containerd.runtime_flags(), IMAGE, _name(),
                       "sh", "-c", "echo from-container; hostname; exit 3", check=False)
    assert r.returncode == 3, r.stderr
    assert r.stdout.split(b"\n")[0] == b"from-container"


def test_ctr_run_limits_in_cgroup(containerd):
    name = _name()
    containerd.ctr("run", "-d", *containerd.runtime_flags(), "--memory-limit",
                   str(40 << 20), IMAGE, name, "sleep", "60")
    path = f"/sys/fs/cgroup/memory/nsfast-test/{name}"
    try:
        with open(f"{path}/memory.limit_in_bytes") as f:
            assert f.read().strip() == str(40 << 20)
    finally:
        containerd.ctr("task", "kill", "-s", "SIGKILL", name, check=False)
        containerd.ctr("task", "delete", "--force", name, check=False)
        containerd.ctr("container", "delete", name, check=False)
    assert not os.path.exists(path)   # removed with the container


def test_task_exec_and_kill(containerd):
    name = _name()
    containerd.ctr("run", "-d", *containerd.runtime_flags(), IMAGE, name, "sleep", "60")
    try:
        tasks = containerd.ctr("task", "ls").stdout.decode()
        line = next(ln for ln in tasks.splitlines() if ln.startswith(name))
        pid = int(line.split()[1])
        assert line.split()[2] == "RUNNING"
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f.read() == b"sleep\x0060\x00"
        with open(f"/sys/fs/cgroup/memory/nsfast-test/{name}/cgroup.procs") as f:
            assert str(pid) in f.read().split()
        r = containerd.ctr("task", "exec", "--exec-id", "e1", name, "sh", "-c",
                           "cat /proc/1/cmdline; exit 6", check=False)
        assert r.returncode == 6
        assert r.stdout == b"sleep\x0060\x00"
        # pid 1 ignores SIGTERM without a handler: SIGKILL ends it
        containerd.ctr("task", "kill", "-s", "SIGKILL", name)
        deadline = time.monotonic() + 10
        while b"STOPPED" not in containerd.ctr("task", "ls").stdout:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{pid}/cmdline") or \
            open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
    finally:
        containerd.ctr("task", "delete", "--force", name, check=False)
        containerd.ctr("container", "delete", name, check=False)
    assert not os.path.exists(f"/sys/fs/cgroup/memory/nsfast-test/{name}")


def test_containerds_config_goes_through_c_create_as_python_would(containerd, tmp_path):
    from test_oci_create_c import PlanRecorder
    recorder = PlanRecorder(str(tmp_path), containerd.runtime)
    r = containerd.ctr("run", "--rm", *_Containerd.runtime_flags(containerd, recorder.path),
                       IMAGE, _name(), "true")
    assert r.returncode == 0, r.stderr
    (c, py), = recorder.plans()
    assert c.startswith("rootfs "), c   # C made a plan: no hand-over to Python
    assert c == py
