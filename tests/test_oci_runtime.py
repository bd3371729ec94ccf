"""nsfast-runtime against the runtime spec's lifecycle, as opencontainers/
runtime-tools' validation checks it (reimplemented): state transitions
(creating, created, running, stopped), errors for commands in the wrong
state, kill and delete semantics, and config.json fields, each checked by
a witness outside the runtime (/proc, the cgroup files, the payload's own
output)."""
import json
import os
import subprocess
import shutil
import sys
import tempfile
import time
import uuid

import pytest

from conftest import need_root, need_tool
from nsfast._bench.cases_oci import busybox_rootfs as _busybox_rootfs
from nsfast.oci.state import Container

RUNTIME = [sys.executable, "-m", "nsfast.cli", "oci"]


def busybox_rootfs(path) -> str:
    """A root filesystem of busybox-static and a few files (the benchmark's
    image builder)."""
    return _busybox_rootfs(path, need_tool("busybox"))


def base_config(args, out_dir) -> dict:
    """A config.json like `runc spec` writes, with out_dir bound on /out."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": args,
                    "env": ["PATH=/bin", "TERM=xterm"], "cwd": "/",
                    "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
                    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                    "noNewPrivileges": True},
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "oci-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/out", "type": "bind", "source": str(out_dir),
             "options": ["rbind", "rw"]},
        ],
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts",
                                                      "mount")],
                  "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
                  "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]},
    }


class Runtime:
    """Runs nsfast-runtime with its own state root; remembers what it made."""

    def __init__(self, tmp_path) -> None:
        self.root = str(tmp_path / "state")
        self.tmp = tmp_path
        self.rootfs = busybox_rootfs(tmp_path / "rootfs-src")
        self.ids: list = []
        self.pids: list = []
        self.cgroups: list = []

    def __call__(self, *args, check=True):
        # files, not pipes: a created container keeps the runtime's stdio
        # open (as runc's does), so a pipe would not end with the command
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run([*RUNTIME, "--root", self.root, *args], stdout=out,
                                  stderr=err, stdin=subprocess.DEVNULL, timeout=60)
            out.seek(0)
            err.seek(0)
            r = subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())
        if check and r.returncode != 0:
            raise AssertionError(f"{args}: {r.returncode} {r.stderr.decode()}")
        return r

    def bundle(self, args, **changes) -> tuple:
        """(bundle dir, out dir, id) for a new container running args."""
        cid = "t-" + uuid.uuid4().hex[:12]
        bundle = self.tmp / cid
        out = self.tmp / (cid + "-out")
        out.mkdir()
        out.chmod(0o777)   # writable for a payload of another uid
        bundle.mkdir()
        os.symlink(self.rootfs, bundle / "rootfs")
        config = base_config(args, out)
        for key, value in changes.items():
            config = value(config) if callable(value) else {**config, key: value}
        (bundle / "config.json").write_text(json.dumps(config))
        self.ids.append(cid)
        return str(bundle), out, cid

    def create(self, args, **changes) -> tuple:
        bundle, out, cid = self.bundle(args, **changes)
        self("create", "--bundle", bundle, "--pid-file", f"{bundle}/pid", cid)
        st = self.state(cid)
        self.pids.append(st["pid"])
        self.cgroups.extend(self.facts(cid)["cgroups"].values())
        return cid, out, st["pid"]

    def state(self, cid) -> dict:
        return json.loads(self("state", cid).stdout)

    def facts(self, cid) -> dict:
        """What create recorded for the C commands (pid, start time, cgroups)."""
        return Container(self.root, cid).facts()

    def status(self, cid) -> str:
        return self.state(cid)["status"]


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def rt(tmp_path):
    need_root()
    parents_before = [h for h in os.listdir("/sys/fs/cgroup")
                      if os.path.exists(f"/sys/fs/cgroup/{h}/nsfast-runtime")]
    r = Runtime(tmp_path)
    yield r
    for cid in r.ids:
        r("delete", "--force", cid, check=False)
    for pid in r.pids:
        _wait_for(lambda: _gone(pid))
    leftover = os.listdir(r.root) if os.path.isdir(r.root) else []
    assert leftover == [], f"state left behind: {leftover}"   # cgroup-parents included
    assert [p for p in r.cgroups if os.path.exists(p)] == []
    # and the parent the runtime made for them (the default cgroupsPath's),
    # unless another test's container is in it now (the host is shared)
    assert [h for h in os.listdir("/sys/fs/cgroup") if _empty_dir(
        f"/sys/fs/cgroup/{h}/nsfast-runtime") and h not in parents_before] == []


def _empty_dir(cgroup: str) -> bool:
    """Whether cgroup exists without a cgroup below it."""
    return os.path.isdir(cgroup) and not any(e.is_dir() for e in os.scandir(cgroup))


def _cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


# ---------------------------------------------------------------- lifecycle

def test_create_holds_until_start(rt):
    cid, out, pid = rt.create(["sh", "-c", "echo started > /out/x; sleep 30"])
    assert rt.status(cid) == "created"
    time.sleep(0.2)
    assert not (out / "x").exists()                 # not exec'd: no output
    assert b"sleep" not in _cmdline(pid)
    assert os.path.exists(os.path.join(rt.root, cid, "exec.fifo"))
    rt("start", cid)
    _wait_for(lambda: (out / "x").exists())
    assert (out / "x").read_text() == "started\n"
    assert rt.status(cid) == "running"
    assert not os.path.exists(os.path.join(rt.root, cid, "exec.fifo"))


def test_state_json_has_the_spec_fields(rt):
    cid, _, pid = rt.create(["sleep", "30"])
    st = rt.state(cid)
    assert {"ociVersion", "id", "status", "pid", "bundle", "annotations"} <= set(st)
    assert st["id"] == cid and st["pid"] == pid and st["status"] == "created"
    assert os.path.isabs(st["bundle"])


def test_stopped_after_the_process_exits(rt):
    cid, out, pid = rt.create(["true"])
    rt("start", cid)
    _wait_for(lambda: _gone(pid))
    assert rt.status(cid) == "stopped"
    assert rt.state(cid)["pid"] == 0


@pytest.mark.parametrize("command,wanted", [
    (("start",), "running"), (("pause",), "running"), (("resume",), "paused"),
])
def test_wrong_state_on_created_is_refused(rt, command, wanted):
    cid, _, _ = rt.create(["sleep", "30"])
    if command == ("start",):
        rt("start", cid)
    r = rt(*command, cid, check=False)
    assert r.returncode == 1
    assert len(r.stderr.decode().strip().splitlines()) == 1      # one line, no traceback
    assert b"Traceback" not in r.stderr


def test_start_twice_and_start_stopped_are_errors(rt):
    cid, _, pid = rt.create(["true"])
    rt("start", cid)
    _wait_for(lambda: _gone(pid))
    r = rt("start", cid, check=False)
    assert r.returncode == 1 and b"stopped" in r.stderr


def test_create_with_an_existing_id_is_refused(rt):
    cid, _, _ = rt.create(["sleep", "30"])
    bundle = os.path.join(rt.tmp, cid)
    r = rt("create", "--bundle", bundle, cid, check=False)
    assert r.returncode == 1 and b"exists" in r.stderr
    assert rt.status(cid) == "created"


def test_commands_on_an_unknown_container_fail(rt):
    for command in ("state", "start", "kill", "delete", "pause", "resume", "ps"):
        r = rt(command, "nosuchcontainer", check=False)
        assert r.returncode == 1, command
        assert b"does not exist" in r.stderr, command


def test_kill_a_created_container(rt):
    cid, _, pid = rt.create(["sleep", "30"])
    rt("kill", cid, "KILL")
    _wait_for(lambda: _gone(pid))
    assert rt.status(cid) == "stopped"
    r = rt("kill", cid, "KILL", check=False)
    assert r.returncode == 1 and b"not running" in r.stderr


def test_kill_sends_the_signal_named(rt):
    # pid 1 of a pid namespace gets only signals it handles: trap HUP
    cid, out, pid = rt.create(["sh", "-c", "trap 'echo hup > /out/sig; exit 3' HUP; "
                                           "echo ready > /out/ready; while :; do sleep 0.1; done"])
    rt("start", cid)
    _wait_for(lambda: (out / "ready").exists())
    rt("kill", cid, "SIGHUP")
    _wait_for(lambda: (out / "sig").exists())
    _wait_for(lambda: _gone(pid))
    assert rt.status(cid) == "stopped"


def test_kill_all_reaches_every_process(rt):
    cid, out, pid = rt.create(["sh", "-c", "sleep 30 & sleep 30 & echo ok > /out/r; wait"])
    rt("start", cid)
    _wait_for(lambda: (out / "r").exists())
    pids = json.loads(rt("ps", "--format", "json", cid).stdout)
    assert pid in pids and len(pids) == 3
    rt("kill", "--all", cid, "KILL")
    for p in pids:
        _wait_for(lambda: _gone(p))
    assert rt.status(cid) == "stopped"


def test_delete_running_needs_force(rt):
    cid, _, pid = rt.create(["sleep", "30"])
    rt("start", cid)
    r = rt("delete", cid, check=False)
    assert r.returncode == 1 and b"not stopped" in r.stderr
    assert not _gone(pid)
    rt("delete", "--force", cid)
    assert _gone(pid)
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_delete_created_kills_it(rt):
    cid, _, pid = rt.create(["sleep", "30"])
    rt("delete", cid)
    assert _gone(pid)
    assert rt("state", cid, check=False).returncode == 1


def test_parents_made_for_containers_go_with_the_last_one(rt):
    parent = f"/nsfast-test-{uuid.uuid4().hex[:8]}"

    def under_parent(c):
        c["linux"]["cgroupsPath"] = f"{parent}/{c['hostname']}"
        return c
    ids = []
    for name in ("first", "second"):
        bundle, _, cid = rt.bundle(["sleep", "30"], hostname=name, _=under_parent)
        rt("create", "--bundle", bundle, cid)
        rt.pids.append(rt.state(cid)["pid"])
        ids.append(cid)
    made = [f"/sys/fs/cgroup/{h}{parent}" for h in os.listdir("/sys/fs/cgroup")
            if os.path.isdir(f"/sys/fs/cgroup/{h}{parent}")]
    assert made
    try:
        rt("delete", "--force", ids[0])
        assert all(os.path.isdir(p) for p in made)        # the second one is in them
        assert os.path.exists(os.path.join(rt.root, "cgroup-parents"))
        rt("delete", "--force", ids[1])
        assert [p for p in made if os.path.exists(p)] == []
        assert os.listdir(rt.root) == []
    finally:
        for p in made:
            for below in ("first", "second", ""):
                try:
                    os.rmdir(os.path.join(p, below))
                except OSError:
                    pass


def test_delete_stopped_removes_state_and_cgroup(rt):
    cid, _, pid = rt.create(["true"])
    dirs = rt.facts(cid)["cgroups"]
    assert dirs and all(os.path.isdir(d) for d in dirs.values())
    with open(os.path.join(dirs[next(k for k in dirs if "pids" in k.split(","))],
                           "cgroup.procs")) as f:
        assert str(pid) in f.read().split()       # moved in while it waited
    rt("start", cid)
    _wait_for(lambda: _gone(pid))
    rt("delete", cid)
    assert not any(os.path.exists(d) for d in dirs.values())


def test_pause_and_resume_through_the_freezer(rt):
    cid, out, pid = rt.create(["sh", "-c", "while :; do echo x >> /out/ticks; sleep 0.05; done"])
    rt("start", cid)
    _wait_for(lambda: (out / "ticks").exists())
    rt("pause", cid)
    assert rt.status(cid) == "paused"
    size = (out / "ticks").stat().st_size
    time.sleep(0.3)
    assert (out / "ticks").stat().st_size == size
    rt("resume", cid)
    assert rt.status(cid) == "running"
    _wait_for(lambda: (out / "ticks").stat().st_size > size)


def test_run_returns_the_exit_status(rt):
    bundle, out, cid = rt.bundle(["sh", "-c", "echo hi; exit 7"])
    r = rt("run", "--bundle", bundle, cid, check=False)
    assert r.returncode == 7
    assert r.stdout == b"hi\n"
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_exec_in_a_running_container(rt):
    cid, out, pid = rt.create(["sleep", "30"])
    r = rt("exec", cid, "hostname", check=False)
    assert r.returncode == 1 and b"created" in r.stderr
    rt("start", cid)
    r = rt("exec", cid, "sh", "-c", "hostname; cat /proc/1/cmdline; exit 4", check=False)
    assert r.returncode == 4
    assert r.stdout == b"oci-test\nsleep\x0030\x00"


def test_exec_process_json_detached(rt):
    cid, out, pid = rt.create(["sleep", "30"])
    rt("start", cid)
    process = {"args": ["sh", "-c", "id -u > /out/who"], "cwd": "/", "env": ["PATH=/bin"],
               "user": {"uid": 65534, "gid": 65534}}
    pfile = rt.tmp / "process.json"
    pfile.write_text(json.dumps(process))
    rt("exec", "--process", str(pfile), "--detach", "--pid-file", str(rt.tmp / "epid"), cid)
    _wait_for(lambda: (out / "who").exists() and (out / "who").read_text())
    assert (out / "who").read_text() == "65534\n"
    assert int((rt.tmp / "epid").read_text()) > 0


# ---------------------------------------------------------------- config fields

def test_config_fields_inside(rt):
    def more(c):
        c["process"]["user"] = {"uid": 0, "gid": 0, "umask": 0o027}
        c["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 33}}
        c["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
        c["process"]["oomScoreAdj"] = 123
        return c
    script = ("hostname; umask; ulimit -n; cat /proc/sys/net/ipv4/ip_forward; "
              "cat /proc/self/oom_score_adj; grep CapBnd /proc/self/status; "
              "grep NoNewPrivs /proc/self/status; cat /proc/kcore | wc -c; "
              "touch /proc/sys/x 2>/dev/null || echo ro-sys")
    bundle, out, cid = rt.bundle(["sh", "-c", "{ " + script + "; } > /out/r"], _=more)
    rt("create", "--bundle", bundle, cid)
    st = rt.facts(cid)
    rt.pids.append(st["pid"])
    rt.cgroups.extend(st["cgroups"].values())
    dirs = st["cgroups"]
    mem = next(v for k, v in dirs.items() if "memory" in k.split(","))
    pids = next(v for k, v in dirs.items() if "pids" in k.split(","))
    assert open(f"{mem}/memory.limit_in_bytes").read().strip() == str(64 << 20)
    assert open(f"{pids}/pids.max").read().strip() == "33"
    rt("start", cid)
    _wait_for(lambda: _gone(st["pid"]))
    lines = (out / "r").read_text().split("\n")
    assert lines[:5] == ["oci-test", "0027", "1024", "1", "123"]
    assert lines[5].split() == ["CapBnd:", "0000000020000420"]
    assert lines[6].split() == ["NoNewPrivs:", "1"]
    assert lines[7:9] == ["0", "ro-sys"]


def test_readonly_root_and_nonroot_user(rt):
    def ro(c):
        c["root"]["readonly"] = True
        c["process"]["user"] = {"uid": 65534, "gid": 65534}
        c["process"]["capabilities"] = {"bounding": ["CAP_KILL"]}
        c["process"]["noNewPrivileges"] = False
        return c
    bundle, out, cid = rt.bundle(["sh", "-c", "id -u > /out/r; touch /x 2>> /out/r; "
                                              "grep NoNewPrivs /proc/self/status >> /out/r"],
                                 _=ro)
    r = rt("run", "--bundle", bundle, cid, check=False)
    assert r.returncode == 0
    text = (out / "r").read_text()
    assert text.startswith("65534\n") and "Read-only file system" in text
    assert text.split()[-1] == "1"   # no capabilities to gain at exec


def test_five_capability_sets_of_a_nonroot_user(rt):
    """An ambient capability is what a uid other than 0 keeps through exec
    (podman run --user N --cap-add ...); the bounding set is the list."""
    def caps(c):
        c["process"]["user"] = {"uid": 1000, "gid": 1000}
        c["process"]["capabilities"] = {
            "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_NET_BIND_SERVICE"], "permitted": ["CAP_NET_BIND_SERVICE"],
            "inheritable": ["CAP_NET_BIND_SERVICE"], "ambient": ["CAP_NET_BIND_SERVICE"]}
        return c
    bundle, out, cid = rt.bundle(["sh", "-c", "grep -E '^(Uid|Cap(Amb|Eff|Bnd)):' "
                                              "/proc/self/status > /out/r"], _=caps)
    r = rt("run", "--bundle", bundle, cid, check=False)
    assert r.returncode == 0, r.stderr
    fields = dict(line.split(":\t") for line in (out / "r").read_text().splitlines())
    assert fields["Uid"].split()[0] == "1000"
    assert int(fields["CapAmb"], 16) == int(fields["CapEff"], 16) == 1 << 10
    assert int(fields["CapBnd"], 16) == (1 << 5) | (1 << 10)


def test_ambient_capabilities_must_be_permitted_and_inheritable(rt):
    def caps(c):
        c["process"]["capabilities"] = {"bounding": ["CAP_KILL"], "permitted": [],
                                        "ambient": ["CAP_KILL"]}
        return c
    bundle, _, cid = rt.bundle(["true"], _=caps)
    r = rt("create", "--bundle", bundle, cid, check=False)
    assert r.returncode == 1 and b"ambient" in r.stderr and b"Traceback" not in r.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_linux_devices_are_made_with_their_number_mode_and_owner(rt):
    def devices(c):
        c["linux"]["devices"] = [
            {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o662,
             "uid": 7, "gid": 8},
            {"path": "/dev/sub/fifo", "type": "p", "fileMode": 0o600}]
        return c
    bundle, out, cid = rt.bundle(["sh", "-c", "stat -c '%F %t:%T %a %u %g' /dev/mynull "
                                              "/dev/sub/fifo > /out/r; echo x > /dev/mynull; "
                                              "echo $? >> /out/r"], _=devices)
    r = rt("run", "--bundle", bundle, cid, check=False)
    assert r.returncode == 0, r.stderr
    assert (out / "r").read_text().splitlines() == [
        "character special file 1:3 662 7 8", "fifo 0:0 600 0 0", "0"]


def test_linux_devices_in_a_user_namespace_are_the_hosts_nodes(rt, open_dir):
    rootfs = busybox_rootfs(os.path.join(open_dir, "rootfs"))

    def userns(c, number):
        c["root"]["path"] = rootfs
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        c["mounts"] = [m for m in c["mounts"] if m["destination"] not in ("/sys", "/out")]
        c["linux"]["devices"] = [{"path": "/dev/tty", "type": "c", "major": number[0],
                                  "minor": number[1]}]
        return c
    # not the host's /dev/tty (5:0): refused at create, named
    bundle, _, cid = rt.bundle(["true"], _=lambda c: userns(c, (1, 3)))
    r = rt("create", "--bundle", bundle, cid, check=False)
    assert r.returncode == 1 and b"/dev/tty" in r.stderr and b"Traceback" not in r.stderr
    bundle, _, cid = rt.bundle(["sh", "-c", "stat -c '%t:%T' /dev/tty"],
                               _=lambda c: userns(c, (5, 0)))
    r = rt("run", "--bundle", bundle, cid, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"5:0\n"


def test_seccomp_profile_in_oci_format(rt):
    def sc(c):
        c["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": 13}]}
        return c
    bundle, out, cid = rt.bundle(["sh", "-c", "mkdir /tmp/d 2>&1; echo $?"], _=sc)
    r = rt("run", "--bundle", bundle, cid, check=False)
    assert b"Permission denied" in r.stdout and r.stdout.endswith(b"1\n")


@pytest.mark.parametrize("change,named", [
    (lambda c: {**c, "linux": {**c["linux"], "intelRdt": {"closID": "x"}}}, "intelRdt"),
    (lambda c: {**c, "process": {**c["process"], "apparmorProfile": "p"}}, "apparmorProfile"),
    (lambda c: {**c, "linux": {**c["linux"], "resources": {"hugepageLimits": []}}},
     "hugepageLimits"),
    (lambda c: {**c, "mounts": c["mounts"] + [{"destination": "/x", "type": "nfs",
                                               "source": "h:/x"}]}, "nfs"),
    (lambda c: {**c, "linux": {**c["linux"], "seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                                                         "listenerPath": "/x"}}},
     "listenerPath"),
    # the hierarchies' roots: limits on the whole host, a delete killing all in them
    (lambda c: {**c, "linux": {**c["linux"], "cgroupsPath": "//./"}}, "root cgroup"),
])
def test_unsupported_field_fails_create_clearly(rt, change, named):
    bundle, _, cid = rt.bundle(["true"], _=change)
    r = rt("create", "--bundle", bundle, cid, check=False)
    assert r.returncode == 1
    assert named.encode() in r.stderr and b"Traceback" not in r.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_systemd_cgroup_is_refused_clearly(rt):
    r = rt("--systemd-cgroup", "state", "x", check=False)
    assert r.returncode == 1 and b"--systemd-cgroup is not supported" in r.stderr


def test_log_json_gets_the_error(rt):
    log = rt.tmp / "log.json"
    r = rt("--log", str(log), "--log-format", "json", "state", "nosuch", check=False)
    assert r.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "does not exist" in entry["msg"]


@pytest.mark.unit
def test_features_and_version():
    out = subprocess.run([*RUNTIME, "features"], capture_output=True, check=True).stdout
    f = json.loads(out)
    assert f["ociVersionMax"] == "1.0.2" and "mount" in f["linux"]["namespaces"]
    v = subprocess.run([*RUNTIME, "--version"], capture_output=True, check=True).stdout
    assert v.startswith(b"nsfast-runtime version ") and b"spec: 1.0.2" in v


def test_hooks_run_at_their_points(rt):
    log = rt.tmp / "hooks.log"

    def hooks(c):
        def hook(kind):
            # the state comes on stdin: its status tells when the hook ran
            return {"path": "/bin/sh", "args": ["sh", "-c", f"echo {kind} $(cat) >> {log}"]}
        c["hooks"] = {k: [hook(k)] for k in ("createRuntime", "poststart", "poststop")}
        # in the container's mount namespace: a path of the rootfs, /out its bind
        c["hooks"]["startContainer"] = [{"path": "/bin/sh", "args": [
            "sh", "-c", "echo inside > /out/start-hook"]}]
        return c
    bundle, out, cid = rt.bundle(["sh", "-c", "cat /out/start-hook > /out/seen"], _=hooks)
    rt("create", "--bundle", bundle, cid)
    pid = rt.state(cid)["pid"]
    rt.pids.append(pid)
    first = log.read_text().splitlines()
    assert len(first) == 1 and first[0].startswith("createRuntime ")
    assert json.loads(first[0].split(" ", 1)[1])["pid"] == pid
    assert not (out / "start-hook").exists()
    rt("start", cid)
    _wait_for(lambda: _gone(pid))
    assert (out / "seen").read_text() == "inside\n"    # before the program ran
    rt("delete", cid)
    kinds = [line.split()[0] for line in log.read_text().splitlines()]
    assert kinds == ["createRuntime", "poststart", "poststop"]


def test_create_container_hooks_run_in_its_namespaces_before_pivot_root(rt):
    seen = rt.tmp / "cc-hook"

    def hooks(c):
        # a host path still resolves (the root is not entered yet), the
        # hostname is the container's, and its state comes on stdin
        c["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": [
            "sh", "-c", f"{{ hostname; readlink /proc/self/ns/mnt; "
                        f"test -e {rt.rootfs}/bin/busybox && echo pre-pivot; "
                        f"cat; echo; }} > {seen}"]}]}
        return c
    bundle, out, cid = rt.bundle(["true"], _=hooks)
    rt("create", "--bundle", bundle, cid)
    pid = rt.state(cid)["pid"]
    rt.pids.append(pid)
    host, mnt, where, state = seen.read_text().splitlines()
    assert host == "oci-test" and where == "pre-pivot"
    assert mnt == os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert json.loads(state)["id"] == cid
    rt("start", cid)
    _wait_for(lambda: _gone(pid))


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
def test_failing_create_hook_fails_create(rt, kind):
    def hooks(c):
        c["hooks"] = {kind: [{"path": "/bin/false"}]}
        return c
    bundle, _, cid = rt.bundle(["true"], _=hooks)
    r = rt("create", "--bundle", bundle, cid, check=False)
    assert r.returncode == 1 and f"{kind} hook /bin/false failed".encode() in r.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))


# (command, its exit status, the status after it): runtime-tools' lifecycle
# validation, one container walked through every state
LIFECYCLE = [
    (("start",), 0, "running"),
    (("start",), 1, "running"),
    (("pause",), 0, "paused"),
    (("pause",), 1, "paused"),
    (("exec", "true"), 1, "paused"),
    (("resume",), 0, "running"),
    (("resume",), 1, "running"),
    (("delete",), 1, "running"),
    (("kill", "KILL"), 0, "stopped"),
    (("kill", "KILL"), 1, "stopped"),
    (("start",), 1, "stopped"),
    (("pause",), 1, "stopped"),
    (("exec", "true"), 1, "stopped"),
    (("delete",), 0, None),
    (("state",), 1, None),
    (("delete",), 1, None),
]


def test_lifecycle_table(rt):
    cid, _, pid = rt.create(["sleep", "60"])
    assert rt.status(cid) == "created"
    for step, (command, code, after) in enumerate(LIFECYCLE):
        r = rt(command[0], *([cid] if command[0] != "kill" else [cid, command[1]]),
               *(command[1:] if command[0] == "exec" else ()), check=False)
        assert r.returncode == code, (step, command, r.stderr)
        if code:
            assert len(r.stderr.splitlines()) == 1 and b"Traceback" not in r.stderr
        if after == "stopped":
            _wait_for(lambda: _gone(pid))
        if after is not None:
            assert rt.status(cid) == after, (step, command)
        else:
            assert not os.path.exists(os.path.join(rt.root, cid))


def test_creating_while_create_runs(rt):
    gate = rt.tmp / "gate"

    def slow(c):
        # the createRuntime hook runs inside create: hold it until told
        c["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": [
            "sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.02; done"]}]}
        return c
    bundle, _, cid = rt.bundle(["sleep", "60"], _=slow)
    creating = subprocess.Popen([*RUNTIME, "--root", rt.root, "create", "--bundle", bundle,
                                 cid], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: os.path.exists(os.path.join(rt.root, cid, "state")))
        assert rt.status(cid) == "creating"
        assert rt.state(cid)["pid"] == 0
    finally:
        gate.touch()
        assert creating.wait(30) == 0
    st = rt.state(cid)
    rt.pids.append(st["pid"])
    assert st["status"] == "created"


def test_a_create_that_died_is_stopped_and_deletable(rt):
    # what a SIGKILLed create leaves: a state without a process, no lock holder
    cid = "t-dead-create"
    os.makedirs(os.path.join(rt.root, cid))
    open(os.path.join(rt.root, cid, "state"), "w").close()
    with open(os.path.join(rt.root, cid, "state.json"), "w") as f:
        json.dump({"bundle": str(rt.tmp)}, f)
    assert rt.status(cid) == "stopped"
    rt("delete", cid)
    assert not os.path.exists(os.path.join(rt.root, cid))


@pytest.fixture
def open_dir():
    """A directory every uid may traverse (the mapped root of a user
    namespace is not the host's root: pytest's 0700 temp path stops it)."""
    path = tempfile.mkdtemp(prefix="nsfast-oci-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


def test_user_namespace_with_id_mappings(rt, open_dir):
    rootfs = busybox_rootfs(os.path.join(open_dir, "rootfs"))
    out = os.path.join(open_dir, "out")
    os.mkdir(out, 0o777)
    os.chmod(out, 0o777)

    def userns(c):
        c["root"]["path"] = rootfs
        c["mounts"] = [m for m in c["mounts"] if m["destination"] not in ("/sys", "/out")]
        c["mounts"].append({"destination": "/out", "type": "bind", "source": out,
                            "options": ["rbind", "rw"]})
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        c["linux"]["resources"] = {"cpu": {"quota": 20000, "period": 100000}}
        return c
    bundle, _, cid = rt.bundle(["sh", "-c", "id -u > /out/id; touch /out/made; sleep 30"],
                                 _=userns)
    rt("create", "--bundle", bundle, cid)
    st = rt.facts(cid)
    pid = st["pid"]
    rt.pids.append(pid)
    rt.cgroups.extend(st["cgroups"].values())
    with open(f"/proc/{pid}/uid_map") as f:
        assert f.read().split() == ["0", "200000", "65536"]
    assert os.stat(f"/proc/{pid}/ns/user").st_ino != os.stat("/proc/self/ns/user").st_ino
    cpu = next(v for k, v in st["cgroups"].items() if "cpu" in k.split(","))
    assert open(f"{cpu}/cpu.cfs_quota_us").read().strip() == "20000"
    rt("start", cid)
    made = os.path.join(out, "made")
    _wait_for(lambda: os.path.exists(made))
    assert open(os.path.join(out, "id")).read() == "0\n"
    assert os.stat(made).st_uid == 200000     # root inside, 200000 outside


def test_a_create_that_fails_after_its_child_holds_leaves_no_process(rt):
    """The console socket is refused after the child is set up and held on
    exec.fifo: create fails, and the held child goes with it."""
    def tty(c):
        c["process"]["terminal"] = True
        return c
    bundle, _, cid = rt.bundle(["true"], _=tty)
    rootfs = os.path.realpath(os.path.join(bundle, "rootfs"))
    r = rt("create", "--bundle", bundle, "--console-socket", str(rt.tmp / "no-such.sock"),
           cid, check=False)
    assert r.returncode == 1 and b"console-socket" in r.stderr

    def rooted_there() -> list:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.readlink(f"/proc/{pid}/root") == rootfs:
                    found.append(pid)
            except OSError:
                pass
        return found
    _wait_for(lambda: not rooted_there())
    assert not os.path.exists(os.path.join(rt.root, cid))
