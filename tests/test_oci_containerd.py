"""containerd runs its containers on nsfast-runtime through the runc shim.

The test starts containerd with a config, root, state and sockets of its
own (no CRI plugin), imports an OCI image tarball it built from
busybox-static (`ctr image import`: nothing is pulled), and runs
`ctr run --runtime io.containerd.runc.v2 --runc-binary nsfast-runtime`,
then acts on a running task with `ctr task exec` and `ctr task kill`.  The
runtime's state goes to a directory of the test's own (--runc-root)."""
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time

import pytest

from conftest import need_root, need_tool
from test_oci_runtime import busybox_rootfs

IMAGE = "docker.io/library/nsfast-test:1"


def _blob(blobs, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def oci_tarball(path) -> str:
    """An OCI image layout, as a tarball, of one layer: a busybox rootfs."""
    rootfs = busybox_rootfs(path / "rootfs")
    layout = path / "layout"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        t.add(rootfs, arcname=".")
    layer_tar = raw.getvalue()
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
             **_blob(blobs, gzip.compress(layer_tar, mtime=0))}
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
              "rootfs": {"type": "layers",
                         "diff_ids": [f"sha256:{hashlib.sha256(layer_tar).hexdigest()}"]}}
    cfg = {"mediaType": "application/vnd.oci.image.config.v1+json",
           **_blob(blobs, json.dumps(config).encode())}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": cfg, "layers": [layer]}
    man = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
           **_blob(blobs, json.dumps(manifest).encode()),
           "annotations": {"io.containerd.image.name": IMAGE,
                           "org.opencontainers.image.ref.name": "1"}}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [man]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    tar = path / "image.tar"
    with tarfile.open(tar, "w") as t:
        for name in ("oci-layout", "index.json", "blobs"):
            t.add(layout / name, arcname=name)
    return str(tar)


class Containerd:
    def __init__(self, base) -> None:
        self.base = base
        self.sock = str(base / "containerd.sock")
        self.runc_root = str(base / "runc-root")
        self.runtime = shutil.which("nsfast-runtime")
        config = base / "config.toml"
        config.write_text(f'''version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
''')
        self.log = open(base / "containerd.log", "wb")
        self.proc = subprocess.Popen([need_tool("containerd"), "--config", str(config)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while self.ctr("version", check=False).returncode != 0:
            assert self.proc.poll() is None, (base / "containerd.log").read_text()
            assert time.monotonic() < deadline, "containerd did not start"
            time.sleep(0.1)

    def ctr(self, *args, check=True, timeout=60, input=None):
        r = subprocess.run([need_tool("ctr"), "--address", self.sock, "--namespace",
                            "nsfast-test", *args], capture_output=True, timeout=timeout,
                           input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"ctr {args}: {r.returncode} {r.stderr.decode()}")
        return r

    def runtime_flags(self) -> list:
        return ["--runtime", "io.containerd.runc.v2", "--runc-binary", self.runtime,
                "--runc-root", self.runc_root, "--snapshotter", "native"]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    need_root()
    need_tool("containerd")
    need_tool("containerd-shim-runc-v2")
    need_tool("nsfast-runtime")
    base = tmp_path_factory.mktemp("ctrd")
    c = Containerd(base)
    try:
        c.ctr("image", "import", "--snapshotter", "native", oci_tarball(base))
        yield c
        for task in c.ctr("task", "ls", "-q", check=False).stdout.split():
            c.ctr("task", "kill", "-s", "SIGKILL", task.decode(), check=False)
            time.sleep(0.2)
            c.ctr("task", "delete", "--force", task.decode(), check=False)
        for ctn in c.ctr("container", "ls", "-q", check=False).stdout.split():
            c.ctr("container", "delete", ctn.decode(), check=False)
        c.ctr("image", "rm", IMAGE, check=False)
        left = os.listdir(c.runc_root) if os.path.isdir(c.runc_root) else []
        # the shim keeps nsfast-runtime's state per namespace: empty after
        assert all(os.listdir(os.path.join(c.runc_root, d)) == [] for d in left), left
        for h in os.listdir("/sys/fs/cgroup"):
            assert not os.path.exists(f"/sys/fs/cgroup/{h}/nsfast-test"), h
    finally:
        c.stop()
        shutil.rmtree(base, ignore_errors=True)


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
