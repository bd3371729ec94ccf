"""run_in against a hostile target: nothing of the caller may reach it (issue #13).

The target is util-linux `unshare -Urpf --mount-proc`, run by root: its root is
the host's uid 0 with every capability in its own user namespace, the worst
case.  The attacker is a process of the target (entered with nsenter, so it
holds exactly the target root's credentials) that looks at run_in's child
through the target's own /proc while fn waits for it.
"""
from __future__ import annotations

import errno
import importlib.util
import json
import os
import pickle
import secrets
import signal
import subprocess
import sys
import threading
import time

import pytest

import nsfast
from nsfast import _core
from nsfast.enter import RemoteTraceback

from conftest import need, need_tool

# what the caller holds: one token in its environment (inherited by every
# fork), one in an ordinary heap object
ENV_SECRET = "env-" + secrets.token_hex(16)
HEAP_SECRET = ("heap-" + secrets.token_hex(16)).encode()
WAIT = 30.0  # seconds any one step may take before the test gives up


def _target_pid(unshare: subprocess.Popen, comm: bytes) -> int:
    """The pid (ours) of unshare's forked child once it runs `comm`."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if unshare.poll() is not None:
            raise AssertionError(f"unshare exited {unshare.returncode}: "
                                 f"{unshare.stderr.read().decode(errors='replace')}")
        try:
            with open(f"/proc/{unshare.pid}/task/{unshare.pid}/children") as f:
                kids = [int(x) for x in f.read().split()]
            if kids:
                with open(f"/proc/{kids[0]}/comm", "rb") as f:
                    if f.read().strip() == comm:
                        return kids[0]
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError("the unshare target did not start")


@pytest.fixture
def hostile():
    """Factory: a target made by `unshare -Urpf --mount-proc` (plus -m's
    private mount namespace), after `setup` (shell) ran in it; its pid.
    pid 1 of its pid namespace is killed by pid afterwards, which ends it all."""
    need_tool("unshare")
    made = []

    def make(setup: str = "") -> int:
        argv = ["unshare", "-Urpf", "--mount-proc", "--kill-child",
                "sh", "-c", f"{setup}\nexec sleep 300"]
        # a clean environment: the target must not get the caller's secrets from us
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env={"PATH": os.environ.get("PATH", os.defpath)})
        made.append([p, None])
        made[-1][1] = _target_pid(p, b"sleep")
        return made[-1][1]

    yield make
    for p, pid in made:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            p.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        p.stderr.close()


# The attacker: runs as the target's root inside its user, pid and mount
# namespaces and reports, per process it can see, what it could read of it.
ATTACKER = r"""
import errno, json, os, sys
mode, tokens = sys.argv[1], [t.encode() for t in sys.argv[2:]]
me = os.getpid()

def why(e):
    return errno.errorcode.get(e.errno, str(e.errno))

def scan_mem(base):
    # every readable mapping, through /proc/PID/mem, looking for the tokens
    with open(base + "/maps") as f:
        maps = f.read().splitlines()
    found, scanned = set(), 0
    fd = os.open(base + "/mem", os.O_RDONLY)
    try:
        for line in maps:
            addr, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in addr.split("-"))
            if perms[0] != "r" or scanned > 1 << 30:
                continue
            tail, pos = b"", lo
            while pos < hi:
                try:
                    chunk = os.pread(fd, min(4 << 20, hi - pos), pos)
                except OSError:
                    break
                if not chunk:
                    break
                scanned += len(chunk)
                data = tail + chunk
                found.update(t.decode() for t in tokens if t in data)
                tail, pos = data[-64:], pos + len(chunk)
    finally:
        os.close(fd)
    return {"scanned": scanned, "found": sorted(found)}

def attempt(what, fn):
    try:
        return {"ok": True, "value": fn()}
    except OSError as e:
        return {"ok": False, "errno": why(e)}

def read(path):
    with open(path, "rb") as f:
        return f.read()

report = {}
for entry in os.listdir("/proc"):
    if not entry.isdigit() or int(entry) == me:
        continue
    base = "/proc/" + entry
    r = report[entry] = {}
    if mode == "scan":
        env = attempt("environ", lambda: read(base + "/environ"))
        if env["ok"]:
            env["value"] = [t.decode() for t in tokens if t in env["value"]]
        r["environ"] = env
        r["maps"] = attempt("maps", lambda: len(read(base + "/maps")))
        r["mem"] = attempt("mem", lambda: scan_mem(base))
        # listing fd/ may work (the directory belongs to the same uid 0);
        # where each fd leads must not
        r["fd"] = attempt("fd", lambda: [os.readlink(base + "/fd/" + n)
                                         for n in os.listdir(base + "/fd")])
        r["fdinfo"] = attempt("fdinfo", lambda: [read(base + "/fdinfo/" + n).decode()
                                                 for n in os.listdir(base + "/fdinfo")])
        # without a mount namespace of its own the child's root is the host's /
        r["root"] = attempt("root", lambda: os.listdir(base + "/root/"))
        r["cmdline"] = attempt("cmdline", lambda: read(base + "/cmdline").decode("latin-1"))
    else:  # inject: write a result of our own into every fd we can open
        forged = bytes.fromhex(mode.split(":")[1])
        names = attempt("fd", lambda: os.listdir(base + "/fd"))
        r["fd"] = {"ok": names["ok"], "errno": names.get("errno")}
        opened = {}
        for name in (names["value"] if names["ok"] else [str(n) for n in range(64)]):
            try:
                wfd = os.open(base + "/fd/" + name, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                opened[name] = why(e)
                continue
            try:
                os.write(wfd, forged)
                opened[name] = "written"
            except OSError as e:
                opened[name] = "open, write " + why(e)
            finally:
                os.close(wfd)
        r["opened"] = opened
json.dump(report, sys.stdout)
"""


def attack(target: int, mode: str, *tokens: str) -> dict:
    """Run ATTACKER as the target's root (nsenter -U -p -m, credentials kept)."""
    need_tool("nsenter")
    r = subprocess.run(["nsenter", "-t", str(target), "-U", "-p", "-m", "--preserve-credentials",
                        sys.executable, "-I", "-c", ATTACKER, mode, *tokens],
                       capture_output=True, timeout=WAIT * 2, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return json.loads(r.stdout)


def hold(ready: str, done: str) -> int:
    """fn for run_in: say where it runs (its pid in the target), wait for the
    attacker to finish, return that pid."""
    with open(ready + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(ready + ".tmp", ready)
    deadline = time.monotonic() + WAIT
    while not os.path.exists(done) and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


def while_held(target: int, kinds, tmp_path, during) -> tuple:
    """run_in(target, hold) on a thread; call during(pid of fn in the target)
    while fn waits; return (what during returned, run_in's outcome)."""
    ready, done = str(tmp_path / "ready"), str(tmp_path / "done")
    outcome: dict = {}

    def body():
        try:
            outcome["value"] = nsfast.run_in(target, hold, ready, done, kinds=kinds)
        except BaseException as e:  # reported below
            outcome["error"] = e

    t = threading.Thread(target=body)
    t.start()
    try:
        deadline = time.monotonic() + WAIT
        while not os.path.exists(ready) and t.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if "error" in outcome:
            raise outcome["error"]
        with open(ready) as f:
            seen = during(int(f.read()))
    finally:
        open(done, "w").close()
        t.join(WAIT)
    assert not t.is_alive(), "run_in did not return"
    if "error" in outcome:
        raise outcome["error"]
    return seen, outcome["value"]


@pytest.fixture
def planted(monkeypatch):
    monkeypatch.setenv("NSFAST_TEST_SECRET", ENV_SECRET)
    assert HEAP_SECRET in HEAP_SECRET  # held by this module for the test's duration
    return [ENV_SECRET, HEAP_SECRET.decode()]


# user,pid: the child runs as the target's root, in the host's mount
# namespace; default: user, mnt and pid
@pytest.mark.parametrize("kinds", ["user,pid", None], ids=["user-pid", "default"])
def test_the_target_cannot_read_the_run_in_child(hostile, planted, tmp_path, kinds):
    """The run_in child is not dumpable before it joins anything: the target's
    root cannot read its environ, maps, memory, fds or root directory.  The
    same attacker does read the target's own pid 1, so its reads are real."""
    target = hostile()
    dumpable = _core.get_dumpable()
    report, pid = while_held(target, kinds, tmp_path, lambda pid: (attack(target, "scan",
                                                                          *planted), pid))[0]
    assert _core.get_dumpable() == dumpable  # the child's prctl left the caller alone
    for seen_pid, seen in report.items():
        for what in ("mem", "environ"):
            if seen[what]["ok"]:
                found = seen[what]["value"]
                found = found if what == "environ" else found["found"]
                assert found == [], f"{what} of pid {seen_pid} in the target holds {found}"
    child = report[str(pid)]
    for what in ("environ", "maps", "mem", "fd", "fdinfo", "root"):
        assert not child[what]["ok"], (what, child[what])
        assert child[what]["errno"] in ("EACCES", "EPERM"), (what, child[what])
    # the witness: the same attacker reads what the target owns
    assert all(report["1"][what]["ok"] for what in ("environ", "mem", "fd", "fdinfo", "root"))
    assert report["1"]["mem"]["value"]["scanned"] > 0


def test_the_target_does_not_see_the_callers_command_line(hostile, tmp_path):
    """/proc/PID/cmdline needs no ptrace access: the child replaces the
    command line it inherited before joining."""
    target = hostile()
    report, pid = while_held(target, "pid,mnt", tmp_path,
                             lambda pid: (attack(target, "scan"), pid))[0]
    with open("/proc/self/cmdline", "rb") as f:
        ours = f.read().decode("latin-1")
    theirs = report[str(pid)]["cmdline"]
    assert theirs["ok"]  # readable by anyone: what it shows is what matters
    assert theirs["value"] != ours
    for arg in ours.split("\0")[1:]:
        assert len(arg) < 3 or arg not in theirs["value"], arg


# user,pid: the child runs as the target's root, in the host's mount
# namespace; default: user, mnt and pid
@pytest.mark.parametrize("kinds", ["user,pid", None], ids=["user-pid", "default"])
def test_the_target_cannot_inject_a_result(hostile, tmp_path, kinds):
    """The target's root tries to write a result of its own into every fd of
    the child through /proc/PID/fd/N while fn waits: every open fails and
    run_in returns fn's own result."""
    target = hostile()
    forged = pickle.dumps(("ok", "FORGED"))
    (seen, pid), returned = while_held(target, kinds, tmp_path,
                                       lambda pid: (attack(target, "inject:" + forged.hex()), pid))
    assert returned == pid  # fn's own result, not the forged one
    opened = seen[str(pid)]["opened"]
    assert opened, "the attacker found no fd to try"
    assert not [n for n, what in opened.items() if what == "written" or what.startswith("open")]


class _Mkdir:
    """Unpickling it makes a directory: the proof that a pickle was loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


INJECT_FROM_FN = r"""
import os, sys
data = bytes.fromhex(sys.argv[1])
for fd in (int(x) for x in sys.argv[2:]):
    try:
        os.write(fd, data)
    except OSError:
        pass
"""


def _pipes_and_sockets() -> dict:
    """fd -> (st_dev, st_ino) of this process's pipes and sockets."""
    import stat
    found = {}
    for fd in range(3, 1024):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
            found[fd] = (st.st_dev, st.st_ino)
    return found


def inject_from_a_process_of_the_target(payload_hex: str, known: set) -> str:
    """fn for run_in: hand every pipe and socket this process holds, but those
    the test process had before (pytest's own), to a program of its own, which
    writes payload into each; then return normally."""
    channels = [fd for fd, ino in _pipes_and_sockets().items() if ino not in known]
    subprocess.run([sys.executable, "-I", "-c", INJECT_FROM_FN, payload_hex,
                    *map(str, channels)], pass_fds=channels, timeout=WAIT, check=True)
    return "real"


@pytest.mark.parametrize("kinds", ["mnt", "pid,mnt"], ids=["one-fork", "two-forks"])
def test_a_result_from_another_process_is_refused_unread(hostile, tmp_path, kinds):
    """Even a process that holds the channel (here one fn started itself) cannot
    pass a result: run_in takes data only from the processes it forked, and
    refuses the rest without unpickling anything."""
    target = hostile()
    marker = str(tmp_path / "unpickled")
    payload = pickle.dumps(("ok", _Mkdir(marker)))
    with pytest.raises(RuntimeError, match=r"run_in: refused .* pid \d+"):
        nsfast.run_in(target, inject_from_a_process_of_the_target, payload.hex(),
                      set(_pipes_and_sockets().values()), kinds=kinds)
    assert not os.path.exists(marker)
    # and without the intruder the same call works
    assert nsfast.run_in(target, os.getpid, kinds=kinds) > 0


def _facts() -> dict:
    import socket
    return {"pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid(),
            "hostname": socket.gethostname(),
            "ns": {k: os.stat(f"/proc/self/ns/{k}").st_ino for k in ("user", "mnt", "pid")}}


def test_default_kinds_into_a_target_with_its_own_proc(hostile):
    """user, mnt and pid differ and the target mounted its own /proc: the
    child reads nothing from /proc after joining, and fn runs in all three
    (witness: /proc/TARGET/ns/* read here)."""
    target = hostile()
    facts = nsfast.run_in(target, _facts)
    assert facts["ns"] == {k: os.stat(f"/proc/{target}/ns/{k}").st_ino
                           for k in ("user", "mnt", "pid")}
    assert 1 < facts["pid"] < 100
    assert (facts["uid"], facts["gid"]) == (0, 0)


def test_the_child_imports_nothing_from_the_target(hostile, tmp_path):
    """The target's mount namespace puts its own pickle.py where the caller's
    is: a caller that never imported pickle must not load it from there."""
    real = importlib.util.find_spec("pickle").origin
    (tmp_path / "planted").mkdir()  # not the script's directory, which is on its sys.path
    evil, owned = tmp_path / "planted" / "pickle.py", tmp_path / "owned"
    evil.write_text(f"open({str(owned)!r}, 'w').close()\nraise ImportError('planted')\n")
    cache = os.path.join(os.path.dirname(real), "__pycache__")
    # a tmpfs over the stdlib's byte-code cache too: nothing written there can reach the host
    target = hostile(f"mount -t tmpfs none {cache} && mount --bind {evil} {real}")
    script = f"""
import os, sys, nsfast
assert "pickle" not in sys.modules, "nsfast imported pickle itself: the test proves nothing"
print(nsfast.run_in({target}, os.getpid) > 0)
"""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.path.dirname(os.path.dirname(nsfast.__file__)))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=WAIT, env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert not owned.exists(), "the run_in child ran the target's pickle.py"
    assert r.stdout.strip() == "True"


class Boom(Exception):
    """Raised inside run_in; module level so that it pickles."""


def raise_boom() -> None:
    try:
        raise ValueError("inner")  # THE INNER LINE
    except ValueError as e:
        raise Boom("from the target") from e  # THE LINE THE TRACEBACK SHOWS


def test_remote_traceback_reads_no_file_of_the_target(hostile, tmp_path):
    """The target puts other text at this test file's path: the remote
    traceback still shows the caller's source lines, read by the caller."""
    planted_file = tmp_path / "planted.py"
    planted_file.write_text("PLANTED BY THE TARGET\n" * 1000)
    target = hostile(f"mount --bind {planted_file} {os.path.abspath(__file__)}")
    with pytest.raises(Boom, match="from the target") as e:
        nsfast.run_in(target, raise_boom, kinds="mnt")
    text = str(e.value.__cause__)
    assert isinstance(e.value.__cause__, RemoteTraceback)
    assert "PLANTED" not in text
    assert "THE LINE THE TRACEBACK SHOWS" in text and "THE INNER LINE" in text
    assert "ValueError: inner\n\nThe above exception was the direct cause" in text
    assert "in raise_boom" in text and text.rstrip().endswith("Boom: from the target")


def test_remote_traceback_does_not_hang_on_a_fifo_of_the_target(hostile, tmp_path):
    """A FIFO at this test file's path in the target: a child that looked up
    source lines there would block in open() for ever."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    target = hostile(f"mount --bind {fifo} {os.path.abspath(__file__)}")
    outcome: dict = {}

    def body():
        try:
            nsfast.run_in(target, raise_boom, kinds="mnt,pid")
        except BaseException as e:
            outcome["error"] = e

    t = threading.Thread(target=body)
    t.start()
    t.join(WAIT / 3)
    hung = t.is_alive()
    if hung:
        os.kill(target, signal.SIGKILL)  # ends the grandchild, which is in its pid namespace
        t.join(WAIT)
    assert not hung, "run_in's child blocked on the target's FIFO"
    assert isinstance(outcome.get("error"), Boom)
    assert "THE LINE THE TRACEBACK SHOWS" in str(outcome["error"].__cause__)


TIOCSTI_SCRIPT = r"""
import fcntl, json, os, subprocess, sys, termios
import nsfast
fcntl.ioctl(0, termios.TIOCSCTTY, 0)   # the pty on stdin becomes our terminal
TYPE = ("import fcntl, termios\ntry:\n    fcntl.ioctl(0, termios.TIOCSTI, b'#')\n"
        "    print('typed')\nexcept OSError as e:\n    print(e.errno)")

def type_into_stdin():
    return subprocess.run([sys.executable, "-I", "-c", TYPE], stdout=subprocess.PIPE,
                          text=True, timeout=30).stdout.strip()

print(json.dumps({"caller": type_into_stdin(),
                  "child": nsfast.run_in(int(sys.argv[1]), type_into_stdin)}))
"""


def test_programs_of_the_child_cannot_type_into_the_callers_terminal(hostile):
    """A program that fn starts in the target shares the caller's stdio; once
    the target's root ptraces it, TIOCSTI would type commands into the
    caller's terminal.  The child gives up the controlling terminal first."""
    try:
        with open("/proc/sys/dev/tty/legacy_tiocsti") as f:
            legacy = f.read().strip() == "1"
    except FileNotFoundError:
        legacy = True  # before 6.2 TIOCSTI is always there
    need(legacy, "TIOCSTI (dev.tty.legacy_tiocsti=1; this kernel has it disabled)")
    target = hostile()
    master, slave = os.openpty()
    try:
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(nsfast.__file__)))
        r = subprocess.run([sys.executable, "-c", TIOCSTI_SCRIPT, str(target)], stdin=slave,
                           capture_output=True, text=True, timeout=WAIT, env=env,
                           start_new_session=True)
    finally:
        os.close(slave)
        os.close(master)
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert seen["caller"] == "typed"  # the witness: the terminal takes TIOCSTI from its owner
    assert seen["child"] == str(errno.EPERM)
