"""The OCI runtime under real clients: `podman run --rm IMAGE true` and
`ctr run --rm IMAGE ID true`, with nsfast-runtime and, side by side, each
other runtime installed (runc, crun).

The image is made here from busybox-static (`podman import` of a rootfs
tarball; `ctr image import` of an OCI layout tarball): nothing is pulled.
Podman runs with storage, run and temp directories of its own, cgroupfs and
`--network none`; containerd is started with a config, state and socket of
its own and stopped after.  A runtime that cannot run a container here (crun
refuses a hybrid host whose v2 tree has controllers) is a missing peer with
its own error.  The tests use the same image builders and containerd
(tests/test_oci_*.py).

Targets (issue #20): nsfast-runtime faster than runc on both, within 1.2x of crun.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time

from nsfast.flags import NsType
from nsfast.targets import differing_kinds

from .cases_spawn import floor_for
from .harness import Case, Floor, Peer, at_most, within

# the floor: the C spawn of /bin/true in a container's namespaces, what the
# kernel charges for the container itself (a client and a runtime add the rest)
CONTAINER_NAMESPACES = "pid,mnt,ipc,uts,net"

PODMAN_IMAGE = "localhost/nsfast-bench:1"
# podman's own, and nsfast-runtime's state root (conmon passes no --root)
PODMAN_HOST_DIRS = ("/run/containers", "/var/lib/containers", "/run/libpod",
                    "/run/nsfast-runtime")
NAMESPACE = "nsfast-test"   # containerd's namespace, and the cgroup of its containers
CTR_IMAGE = "docker.io/library/nsfast-bench:1"
BUSYBOX_APPLETS = ("sh", "echo", "cat", "id", "sleep", "true", "false", "ls", "hostname",
                   "touch", "grep", "ps", "env", "kill", "wc", "head")


def busybox_rootfs(path, busybox: str) -> str:
    """A root filesystem of a static busybox and a few files."""
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "out"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    shutil.copy(busybox, os.path.join(path, "bin", "busybox"))
    for name in BUSYBOX_APPLETS:
        os.symlink("busybox", os.path.join(path, "bin", name))
    with open(os.path.join(path, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
    with open(os.path.join(path, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnobody:x:65534:\n")
    return str(path)


def rootfs_tarball(path, busybox: str) -> str:
    """The rootfs as a plain tarball, for `podman import`."""
    rootfs = busybox_rootfs(os.path.join(path, "rootfs"), busybox)
    tar = os.path.join(path, "rootfs.tar")
    with tarfile.open(tar, "w") as t:
        t.add(rootfs, arcname=".")
    return tar


def _blob(blobs: str, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def oci_tarball(path, busybox: str, name: str) -> str:
    """An OCI image layout tarball of one layer, the busybox rootfs, named
    `name` (for `ctr image import`)."""
    rootfs = busybox_rootfs(os.path.join(path, "rootfs-oci"), busybox)
    layout = os.path.join(path, "layout")
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs)
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
           "annotations": {"io.containerd.image.name": name,
                           "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [man]}, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion": "1.0.0"}')
    tar = os.path.join(path, "image-oci.tar")
    with tarfile.open(tar, "w") as t:
        for entry in ("oci-layout", "index.json", "blobs"):
            t.add(os.path.join(layout, entry), arcname=entry)
    return tar


def _missing_dirs(name: str) -> list:
    """The directories named `name` at the root of each cgroup hierarchy that
    do not exist now: a client makes them for its containers (libpod_parent,
    containerd's namespace) and they stay; the caller removes them after."""
    return [path for path in (os.path.join("/sys/fs/cgroup", h, name)
                              for h in os.listdir("/sys/fs/cgroup"))
            if not os.path.exists(path)]


def _remove_dirs(paths: list, timeout: float = 10.0) -> None:
    """Remove cgroup directories and those below them, waiting for the
    processes still in them to end (a conmon exits after its container)."""
    deadline = time.monotonic() + timeout
    for path in paths:
        for d in sorted((os.path.join(dirpath, n) for dirpath, names, _ in os.walk(path)
                         for n in names), key=len, reverse=True) + [path]:
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)


class Podman:
    """podman with storage, run and temp directories under base, cgroupfs,
    file events and default ulimits a host without CAP_SYS_RESOURCE allows."""

    def __init__(self, base) -> None:
        conf = os.path.join(base, "containers.conf")
        with open(conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=1024:1024", '
                    '"nproc=4096:4096"]\n')
        self.env = {**os.environ, "CONTAINERS_CONF": conf}
        self.cgroup_dirs = _missing_dirs("libpod_parent")
        # made by podman whatever its --root says (network state, the blob
        # cache of an import): removed by reset() when they were not there before
        self.host_dirs = [d for d in PODMAN_HOST_DIRS if not os.path.exists(d)]
        # podman refuses a runroot path longer than 50 characters
        self.runroot = tempfile.mkdtemp(prefix="nsfast-podman-", dir="/run")
        self.argv = [shutil.which("podman") or "podman",
                     "--root", os.path.join(base, "root"),
                     "--runroot", self.runroot,
                     "--tmpdir", os.path.join(base, "tmp"), "--storage-driver", "vfs",
                     "--cgroup-manager", "cgroupfs", "--events-backend", "file"]

    def __call__(self, *args, check=True, runtime=None, input=None, timeout=60):
        rt = ["--runtime", runtime] if runtime else []
        r = subprocess.run([*self.argv, *rt, *args], capture_output=True, input=input,
                           env=self.env, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {args}: {r.returncode} {r.stderr.decode()}")
        return r

    def reset(self) -> None:
        """Remove every container and image, and the run directory."""
        self("rm", "-af", "-t", "0", check=False)
        self("system", "reset", "-f", check=False)
        shutil.rmtree(self.runroot, ignore_errors=True)
        for d in self.host_dirs:
            shutil.rmtree(d, ignore_errors=True)
        _remove_dirs(self.cgroup_dirs)


class Containerd:
    """containerd with its own config, root, state and sockets under base
    (no CRI plugin), stopped by stop()."""

    def __init__(self, base) -> None:
        # unix socket paths must stay under 104 bytes: a short directory of their own
        self.sock_dir = tempfile.mkdtemp(prefix="nsfast-ctrd-", dir="/run")
        self.cgroup_dirs = _missing_dirs(NAMESPACE)
        # ctr's stdio fifos and the shims' sockets go there, whatever the config says
        self.host_dirs = [d for d in ("/run/containerd",) if not os.path.exists(d)]
        self.sock = os.path.join(self.sock_dir, "sock")
        self.runc_root = os.path.join(base, "runc-root")
        config = os.path.join(base, "config.toml")
        with open(config, "w") as f:
            f.write(f'''version = 2
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
        self.log_path = os.path.join(base, "containerd.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([shutil.which("containerd") or "containerd",
                                      "--config", config], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while self.ctr("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(self.log_path) as f:
                    raise RuntimeError(f"containerd did not start: {f.read()[-500:]}")
            time.sleep(0.1)

    def ctr(self, *args, check=True, timeout=60, input=None):
        r = subprocess.run([shutil.which("ctr") or "ctr", "--address", self.sock,
                            "--namespace", NAMESPACE, *args], capture_output=True,
                           timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"ctr {args}: {r.returncode} {r.stderr.decode()}")
        return r

    def runtime_flags(self, binary: str) -> list:
        return ["--runtime", "io.containerd.runc.v2", "--runc-binary", binary,
                "--runc-root", self.runc_root, "--snapshotter", "native"]

    def clear(self) -> None:
        """Kill and delete every task and container of the namespace."""
        for task in self.ctr("task", "ls", "-q", check=False).stdout.split():
            self.ctr("task", "kill", "-s", "SIGKILL", task.decode(), check=False)
            time.sleep(0.2)
            self.ctr("task", "delete", "--force", task.decode(), check=False)
        for ctn in self.ctr("container", "ls", "-q", check=False).stdout.split():
            self.ctr("container", "delete", ctn.decode(), check=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.sock_dir, ignore_errors=True)
        for d in self.host_dirs:
            shutil.rmtree(d, ignore_errors=True)
        _remove_dirs(self.cgroup_dirs)


RUNTIMES = ("runc", "crun")


def _runtimes() -> dict:
    found = {"nsfast-runtime": shutil.which("nsfast-runtime")}
    for name in RUNTIMES:
        found[name] = shutil.which(name)
    return found


def _podman_case() -> Case:
    state: dict = {}
    binaries = _runtimes()

    def run_with(binary):
        return lambda: state["podman"]("run", "--rm", "--network", "none", PODMAN_IMAGE,
                                       "true", runtime=binary)

    peers = [Peer(name, run_with(path) if path else None, f"not on PATH: apt-get install "
                  f"{name}") for name, path in binaries.items() if name != "nsfast-runtime"]

    def setup():
        base = tempfile.mkdtemp(prefix="nsfast-bench-podman-")
        state["base"] = base
        state["podman"] = podman = Podman(base)
        try:
            podman("import", rootfs_tarball(base, shutil.which("busybox")), PODMAN_IMAGE)
        except BaseException:
            teardown()   # the harness runs teardown only after a setup that worked
            raise
        for p in peers:   # a runtime that cannot run a container here is missing
            if p.op is not None:
                r = podman("run", "--rm", "--network", "none", PODMAN_IMAGE, "true",
                           runtime=binaries[p.name], check=False)
                if r.returncode != 0:
                    p.op, p.install = None, r.stderr.decode().strip().splitlines()[-1][:200]

    def check():
        # pid 1 of the container's own pid namespace is the program run
        r = state["podman"]("run", "--rm", "--network", "none", PODMAN_IMAGE, "cat",
                            "/proc/1/cmdline", runtime=binaries["nsfast-runtime"])
        if r.stdout != b"cat\0/proc/1/cmdline\0":
            raise AssertionError(f"podman on nsfast-runtime ran no container: {r.stdout!r}")

    def teardown():
        state["podman"].reset()
        shutil.rmtree(state["base"], ignore_errors=True)

    return Case(name="oci podman run --rm true", op=run_with(binaries["nsfast-runtime"]),
                floor=floor_for(CONTAINER_NAMESPACES, False), peers=peers, check=check,
                setup=setup, teardown=teardown, samples=30,
                warmup=2, targets=[at_most(1.0, "runc"), within(1.2, "crun")],
                note="podman (vfs storage, cgroupfs, --network none) with each runtime")


def _ctr_case() -> Case:
    state: dict = {}
    binaries = _runtimes()
    ids = itertools.count()

    def run_with(binary):
        def op():
            state["ctrd"].ctr("run", "--rm", *state["ctrd"].runtime_flags(binary), CTR_IMAGE,
                              f"b{os.getpid()}-{next(ids)}", "true")
        return op

    peers = [Peer(name, run_with(path) if path else None, f"not on PATH: apt-get install "
                  f"{name}") for name, path in binaries.items() if name != "nsfast-runtime"]

    def setup():
        base = tempfile.mkdtemp(prefix="nsfast-bench-ctr-")
        state["base"] = base
        try:
            state["ctrd"] = ctrd = Containerd(base)
            ctrd.ctr("image", "import", "--snapshotter", "native",
                     oci_tarball(base, shutil.which("busybox"), CTR_IMAGE))
        except BaseException:
            teardown()   # the harness runs teardown only after a setup that worked
            raise
        for p in peers:
            if p.op is not None:
                r = ctrd.ctr("run", "--rm", *ctrd.runtime_flags(binaries[p.name]), CTR_IMAGE,
                             f"probe-{p.name}", "true", check=False)
                if r.returncode != 0:
                    p.op, p.install = None, r.stderr.decode().strip().splitlines()[-1][:200]
                    ctrd.clear()

    def check():
        r = state["ctrd"].ctr("run", "--rm", *state["ctrd"].runtime_flags(
            binaries["nsfast-runtime"]), CTR_IMAGE, "check", "cat", "/proc/1/cmdline")
        if r.stdout != b"cat\0/proc/1/cmdline\0":
            raise AssertionError(f"ctr on nsfast-runtime ran no container: {r.stdout!r}")

    def teardown():
        ctrd = state.pop("ctrd", None)
        try:
            if ctrd is not None:
                ctrd.clear()
        finally:
            if ctrd is not None:
                ctrd.stop()
            shutil.rmtree(state["base"], ignore_errors=True)

    return Case(name="oci ctr run --rm true", op=run_with(binaries["nsfast-runtime"]),
                floor=floor_for(CONTAINER_NAMESPACES, False), peers=peers, check=check,
                setup=setup, teardown=teardown, samples=30,
                warmup=2, targets=[at_most(1.0, "runc"), within(1.2, "crun")],
                note="containerd's runc shim (v2) with --runc-binary of each runtime")


def _bundle(base: str) -> str:
    """A bundle of its own (busybox, sleeping), in the shape `runc spec`
    writes, that every runtime here can create."""
    bundle = os.path.join(base, "bundle")
    os.makedirs(bundle)
    rootfs = busybox_rootfs(os.path.join(bundle, "rootfs"), shutil.which("busybox"))
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    config = {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0},
                    "args": ["sleep", "3600"], "env": ["PATH=/bin"], "cwd": "/",
                    "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
                    "noNewPrivileges": True},
        "root": {"path": rootfs}, "hostname": "bench",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}],
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts",
                                                      "mount")]}}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    return bundle


def _exec_case() -> Case:
    """`RUNTIME exec --process FILE ID true` into a running container, as
    conmon and containerd's shim call it (podman exec, ctr task exec,
    Kubernetes' exec probes)."""
    state: dict = {}
    binaries = _runtimes()

    def runtime(name: str, *args: str, check: bool = True):
        r = subprocess.run([binaries[name], "--root", os.path.join(state["base"], name),
                            *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE if not check else subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"{name} {args[0]}: exit status {r.returncode}")
        return r

    def exec_with(name: str):
        return lambda: runtime(name, "exec", "--process", state["process"], "box")

    peers = [Peer(name, exec_with(name) if path else None, f"not on PATH: apt-get install "
                  f"{name}") for name, path in binaries.items() if name != "nsfast-runtime"]
    floor = Floor("floor_enter.c", ["exec", "(pid)", "(mask)"], served=True)   # forks

    def start(name: str):
        # a runtime's container, held by a sleeping process; its stdio is
        # files, since the container keeps them open: a pipe would not end
        with tempfile.TemporaryFile() as err:
            r = subprocess.run([binaries[name], "--root", os.path.join(state["base"], name),
                                "create", "--bundle", state["bundle"], "box"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            err.seek(0)
            said = err.read().decode(errors="replace").strip().splitlines()
        if r.returncode != 0:
            return said[-1][:200] if said else f"create: exit status {r.returncode}"
        runtime(name, "start", "box")
        state["started"].append(name)
        return None

    def setup():
        state["base"] = base = tempfile.mkdtemp(prefix="nsfast-bench-exec-")
        state["started"] = []
        try:
            state["bundle"] = _bundle(base)
            state["process"] = os.path.join(base, "process.json")
            with open(state["process"], "w") as f:
                json.dump({"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["true"],
                           "env": ["PATH=/bin"], "cwd": "/"}, f)
            why = start("nsfast-runtime")
            if why:
                raise RuntimeError(f"nsfast-runtime create: {why}")
            for p in peers:
                if p.op is not None:
                    why = start(p.name)
                    if why:
                        p.op, p.install = None, why
            with open(os.path.join(base, "nsfast-runtime", "box", "state")) as f:
                pid = int(f.read().split()[1])
            floor.args = ["exec", str(pid), hex(int(differing_kinds(pid, NsType.all())))]
        except BaseException:
            teardown()   # the harness runs teardown only after a setup that worked
            raise

    def check():
        p = subprocess.run([binaries["nsfast-runtime"], "--root",
                            os.path.join(state["base"], "nsfast-runtime"), "exec", "box",
                            "hostname"], capture_output=True, stdin=subprocess.DEVNULL)
        if p.stdout != b"bench\n":
            raise AssertionError(f"nsfast-runtime exec did not run in the container: "
                                 f"{p.stdout!r} {p.stderr!r}")

    def teardown():
        for name in state.get("started", []):
            runtime(name, "delete", "--force", "box", check=False)
        shutil.rmtree(state["base"], ignore_errors=True)

    return Case(name="oci exec --process true", op=exec_with("nsfast-runtime"), floor=floor,
                peers=peers, check=check, setup=setup, teardown=teardown, samples=30,
                warmup=2, note="exec into a running container of each runtime (no client), "
                "as conmon and the shim call it; no target names it")


def cases(cfg) -> list:
    """The two client paths, when the clients and nsfast-runtime are installed,
    and exec into a running container."""
    if os.geteuid() != 0 or not shutil.which("nsfast-runtime") or not shutil.which("busybox"):
        return []
    out = []
    if shutil.which("podman") and shutil.which("conmon"):
        out.append(_podman_case())
    if shutil.which("containerd") and shutil.which("ctr") and \
            shutil.which("containerd-shim-runc-v2"):
        out.append(_ctr_case())
    out.append(_exec_case())
    return out
