"""nsfast-runtime's fast paths: the commands a container manager calls on
every container (state, start, kill, delete, --version, and ps, pause,
resume) run in the C launcher without starting Python, with runc's errors and log records; and
create reuses the seccomp program it compiled for an earlier container.

The C commands are run here through a copy of the launcher named
nsfast-runtime in a directory without Python, with NSFAST_PYTHON naming
nothing: a command that needed Python would fail."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

import nsfast
from conftest import need_root
from nsfast.oci import seccomp as oci_seccomp
from test_oci_runtime import RUNTIME, _gone, _wait_for, rt  # noqa: F401  (rt: the fixture)


@pytest.fixture
def c_only(tmp_path):
    """Run the launcher as nsfast-runtime where no Python can be found:
    call(*args, root=) -> CompletedProcess."""
    need_root()
    where = tmp_path / "no-python"
    where.mkdir()
    binary = where / "nsfast-runtime"
    shutil.copy(os.path.join(os.path.dirname(nsfast.__file__), "_nsfast"), binary)
    env = {"PATH": "/usr/bin:/bin", "NSFAST_PYTHON": str(where / "nonexistent")}

    def call(*args, root=None):
        # files, not pipes: a created container keeps the runtime's stdio open
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            r = subprocess.run([str(binary), *(["--root", root] if root else []), *args],
                               stdout=out, stderr=err, timeout=60, env=env,
                               stdin=subprocess.DEVNULL)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(r.args, r.returncode, out.read(), err.read())
    return call


def _one_line_error(r) -> str:
    """The error of a failed command: exit status 1, one line, no traceback."""
    assert r.returncode == 1, r
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nsfast-runtime: "), r.stderr
    return lines[0][len("nsfast-runtime: "):]


def _pids_cgroup(rt, cid) -> str:
    return next(path for name, path in rt.facts(cid)["cgroups"].items()
                if name in ("pids", "unified"))


def test_the_lifecycle_runs_without_python(rt, c_only):
    # what C's create does not handle is Python's (tests/test_oci_create_c.py):
    # through the copy it cannot start
    bundle, _, _ = rt.bundle(["true"], hooks={"poststop": [{"path": "/bin/true"}]})
    assert "no Python" in c_only("create", "--bundle", bundle, "x", root=rt.root).stderr.decode()
    cid, out, pid = rt.create(["sh", "-c", "echo started > /out/x; sleep 30"])
    r = c_only("--version")
    assert r.returncode == 0 and r.stdout.decode() == \
        f"nsfast-runtime version {nsfast.__version__}\nspec: 1.0.2\n"

    def state() -> dict:
        r = c_only("state", cid, root=rt.root)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    st = state()
    assert (st["id"], st["status"], st["pid"]) == (cid, "created", pid)
    assert os.path.isfile(os.path.join(st["bundle"], "config.json"))
    assert c_only("start", cid, root=rt.root).returncode == 0
    # start returns once the payload has exec'd: a manager's next look finds it
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] in (b"sh", b"sleep")   # (sh may exec sleep)
    _wait_for(lambda: (out / "x").exists())          # the payload ran: start released it
    assert state()["status"] == "running"
    r = c_only("ps", "--format", "json", cid, root=rt.root)
    assert r.returncode == 0 and json.loads(r.stdout) == [pid]
    r = c_only("ps", cid, root=rt.root)
    assert r.returncode == 0 and r.stdout.decode() == "PID CMD\n" + f"{pid} sleep 30\n"
    freezer = next((p for name, p in rt.facts(cid)["cgroups"].items()
                    if "freezer" in name.split(",")), None)
    if freezer is not None:
        assert c_only("pause", cid, root=rt.root).returncode == 0
        assert state()["status"] == "paused"
        assert open(f"{freezer}/freezer.state").read().strip() == "FROZEN"
        assert "container is paused, not running" in _one_line_error(
            c_only("pause", cid, root=rt.root))
        assert c_only("resume", cid, root=rt.root).returncode == 0
        assert open(f"{freezer}/freezer.state").read().strip() == "THAWED"
        assert state()["status"] == "running"
    assert c_only("kill", cid, "KILL", root=rt.root).returncode == 0
    _wait_for(lambda: _gone(pid))
    assert state() | {"status": "stopped", "pid": 0} == state()
    cgroups = rt.facts(cid)["cgroups"].values()
    assert cgroups and all(os.path.isdir(d) for d in cgroups)
    assert c_only("delete", cid, root=rt.root).returncode == 0
    assert not os.path.exists(os.path.join(rt.root, cid))
    assert not any(os.path.exists(d) for d in cgroups)


def test_delete_force_kills_a_running_container_without_python(rt, c_only):
    cid, out, pid = rt.create(["sh", "-c", "sleep 60 & sleep 60"])
    assert c_only("start", cid, root=rt.root).returncode == 0
    procs = os.path.join(_pids_cgroup(rt, cid), "cgroup.procs")
    _wait_for(lambda: len(open(procs).read().split()) == 2)
    assert "not stopped: running" in _one_line_error(c_only("delete", cid, root=rt.root))
    assert c_only("delete", "--force", cid, root=rt.root).returncode == 0
    assert _gone(pid) and not os.path.exists(os.path.join(rt.root, cid))


def test_kill_all_signals_every_process_of_the_container(rt, c_only):
    cid, out, pid = rt.create(["sh", "-c", "sleep 60 & echo $! > /out/child; wait"])
    assert c_only("start", cid, root=rt.root).returncode == 0
    _wait_for(lambda: (out / "child").exists() and (out / "child").read_text().strip())
    procs = os.path.join(_pids_cgroup(rt, cid), "cgroup.procs")
    inside = [int(p) for p in open(procs).read().split()]
    assert pid in inside and len(inside) == 2
    assert c_only("kill", "--all", cid, "SIGKILL", root=rt.root).returncode == 0
    _wait_for(lambda: all(_gone(p) for p in inside))


def test_start_during_create_waits_for_it_and_reads_the_state_anew(rt, c_only):
    gate = rt.tmp / "gate"

    def slow(c):
        # the createRuntime hook runs inside create: hold it until told
        c["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": [
            "sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.02; done"]}]}
        return c
    bundle, out, cid = rt.bundle(["sh", "-c", "echo ran > /out/x"], _=slow)
    creating = subprocess.Popen([*RUNTIME, "--root", rt.root, "create", "--bundle", bundle,
                                 cid], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    box: dict = {}
    starting = threading.Thread(target=lambda: box.update(r=c_only("start", cid,
                                                                   root=rt.root)))
    try:
        _wait_for(lambda: os.path.exists(os.path.join(rt.root, cid, "state")))
        starting.start()
        time.sleep(0.3)
        assert starting.is_alive()             # waiting for create's lock
    finally:
        gate.touch()
        assert creating.wait(30) == 0
    starting.join(30)
    assert box["r"].returncode == 0, box["r"].stderr   # not "a container that is stopped"
    rt.pids.append(rt.facts(cid)["pid"])
    _wait_for(lambda: (out / "x").exists())


def test_kill_leaves_a_process_that_took_the_container_pid(rt, c_only, tmp_path):
    """A state whose pid now names another process (its start time differs):
    kill refuses and that process lives on; delete removes the state only."""
    other = subprocess.Popen(["sleep", "60"])
    try:
        cid = "t-reused-" + uuid.uuid4().hex[:8]
        os.makedirs(os.path.join(rt.root, cid))
        with open(os.path.join(rt.root, cid, "state"), "w") as f:
            f.write(f"pid {other.pid}\nstart_time 1\n")
        with open(os.path.join(rt.root, cid, "state.json"), "w") as f:
            json.dump({"bundle": str(tmp_path)}, f)
        assert json.loads(c_only("state", cid, root=rt.root).stdout)["status"] == "stopped"
        assert _one_line_error(c_only("kill", cid, "KILL", root=rt.root)) == \
            "container not running (stopped)"
        assert c_only("delete", "--force", cid, root=rt.root).returncode == 0
        assert other.poll() is None                   # not signalled
        assert not os.path.exists(os.path.join(rt.root, cid))
    finally:
        other.kill()
        other.wait()


ID = "t-bad-input"


@pytest.mark.parametrize("args,message", [
    ((), "a command is needed: create, start, state, kill, delete"),
    (("bogus", ID), "unknown command 'bogus'"),
    (("state",), "state needs a container id"),
    (("state", "../etc"), "invalid container id '../etc'"),
    (("state", ""), "invalid container id ''"),
    (("state", "a/b"), "invalid container id 'a/b'"),
    (("state", "x" * 1025), "invalid container id"),
    (("state", "-x"), "state: flag provided but not defined: -x"),
    (("start", ID, "extra"), "start: too many arguments: extra"),
    (("delete", "--all", ID), "delete: flag provided but not defined: --all"),
    (("delete", ""), "invalid container id ''"),
    (("ps", "--format", "xml", ID), "ps: --format xml: use table or json"),
    (("ps", "-f"), "flag needs an argument: -f"),
    (("pause", ID), f"container '{ID}' does not exist"),
    (("resume", ID, ID), "resume: too many arguments"),
    (("kill", ID, "NOPE"), "unknown signal 'NOPE'"),
    (("kill", ID, "SIGNOPE"), "unknown signal 'SIGNOPE'"),
    (("kill", ID, "0"), "signal '0' is out of range"),
    (("kill", ID, "65"), "signal '65' is out of range"),
    (("kill", ID, "99999999999999999999"), "is out of range"),
    (("kill", ID, "RTMIN+99"), "signal 'RTMIN+99' is out of range"),
    (("kill", ID, "RTMIN+"), "unknown signal 'RTMIN+'"),
    (("--bogus", "state", ID), "flag provided but not defined: --bogus"),
    (("--systemd-cgroup", "state", ID), "--systemd-cgroup is not supported"),
    (("--root",), "flag needs an argument: -root"),
    (("state", ID), f"container '{ID}' does not exist"),
    (("start", ID), f"container '{ID}' does not exist"),
    (("delete", ID), f"container '{ID}' does not exist"),
])
def test_bad_input_is_one_line_and_one_log_record(c_only, tmp_path, args, message):
    log = tmp_path / "log.json"
    root = tmp_path / "state"
    r = c_only("--log", str(log), "--log-format", "json", *(["--root", str(root)] if
                                                            args[:1] != ("--root",) else []),
               *args)
    said = _one_line_error(r)
    assert message in said
    record = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(record) == 1 and record[0]["level"] == "error" and record[0]["msg"] == said
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record[0]["time"])
    assert not root.exists() or os.listdir(root) == []


def test_the_text_log_is_logfmt(c_only, tmp_path):
    log = tmp_path / "log"
    r = c_only("--log", str(log), "--root", str(tmp_path), "kill", ID, 'a "quoted" name')
    said = _one_line_error(r)
    line, = log.read_text().splitlines()
    m = re.fullmatch(r'time="[^"]+" level=error msg=(".*")', line)
    assert m and json.loads(m.group(1)) == said == "unknown signal 'a \"quoted\" name'"


def test_a_damaged_state_file_is_an_error_not_a_guess(c_only, tmp_path):
    os.makedirs(tmp_path / "state" / ID)
    (tmp_path / "state" / ID / "state").write_text("pid 12x\n")
    said = _one_line_error(c_only("state", ID, root=str(tmp_path / "state")))
    assert "bad pid '12x'" in said and "damaged" in said
    (tmp_path / "state" / ID / "state").write_text("cgroup memory relative/path\n")
    said = _one_line_error(c_only("kill", "--all", ID, root=str(tmp_path / "state")))
    assert "bad cgroup line" in said


def test_bad_log_format_is_refused(c_only, tmp_path):
    said = _one_line_error(c_only("--log-format", "xml", "state", ID, root=str(tmp_path)))
    assert said == "--log-format xml: use text or json"


# ------------------------------------------------------------ seccomp cache

def _profile(tag: str) -> dict:
    """mkdir refused with EACCES; tag makes the profile (and its cache key) this test's."""
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": 13, "comment": tag}]}


# a program of one instruction: SECCOMP_RET_ALLOW for every call
_ALLOW_ALL = (0x06).to_bytes(2, "little") + bytes(2) + (0x7FFF0000).to_bytes(4, "little")


def test_create_reuses_a_trusted_compiled_profile_only(rt):
    tag = uuid.uuid4().hex
    profile = _profile(tag)
    before = set(os.listdir(oci_seccomp.CACHE_DIR)) if os.path.isdir(oci_seccomp.CACHE_DIR) \
        else set()
    made: list = []

    def run_mkdir() -> bytes:
        def sc(c):
            c["linux"]["seccomp"] = profile
            return c
        bundle, _, cid = rt.bundle(["sh", "-c", "mkdir /tmp/d 2>&1; echo $?"], _=sc)
        return rt("run", "--bundle", bundle, cid, check=False).stdout
    try:
        assert b"Permission denied" in run_mkdir()
        made = [n for n in set(os.listdir(oci_seccomp.CACHE_DIR)) - before
                if not n.startswith(".")]
        assert len(made) == 1
        cached = os.path.join(oci_seccomp.CACHE_DIR, made[0])
        st = os.stat(cached)
        assert st.st_uid == 0 and st.st_mode & 0o777 == 0o600 and st.st_size % 8 == 0
        assert oct(os.stat(oci_seccomp.CACHE_DIR).st_mode & 0o777) == "0o700"
        # the next create takes the program from there (no compiling)...
        with open(cached, "wb") as f:
            f.write(_ALLOW_ALL)
        assert run_mkdir().endswith(b"0\n")
        # ...but only from a file no one else can have written
        os.chmod(cached, 0o644)
        assert b"Permission denied" in run_mkdir()
        assert os.stat(cached).st_mode & 0o777 == 0o600     # compiled anew, in place
    finally:
        for name in made:
            try:
                os.unlink(os.path.join(oci_seccomp.CACHE_DIR, name))
            except FileNotFoundError:
                pass


def test_kill_with_no_such_signal_name_sends_nothing(rt, c_only):
    cid, _, pid = rt.create(["sleep", "30"])
    said = _one_line_error(c_only("kill", cid, "SIGWHAT", root=rt.root))
    assert said == "unknown signal 'SIGWHAT'"
    assert not _gone(pid)
    assert json.loads(c_only("state", cid, root=rt.root).stdout)["status"] == "created"
