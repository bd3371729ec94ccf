"""The rootless path: nsfast used by an unprivileged user (uid 65534 via setpriv).

pytest itself stays root; each scenario runs a small Python program as the
unprivileged user and reports what it saw."""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time

import pytest

import nsfast
from conftest import need, need_tool

NOBODY = 65534
SUB_START, SUB_COUNT = 300000, 65536


# the python_for_nobody fixture's staged interpreter, set for this module below
_staged: list = []


def as_nobody(argv: list) -> list:
    """argv run as uid/gid 65534 with no groups, for subprocess."""
    setpriv = need_tool("setpriv")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]


def run_unprivileged_python(args: list, timeout: float = 60) -> subprocess.CompletedProcess:
    """Python with args, as uid 65534, importing nsfast from a copy that user
    can read (the checkout may be in a directory it cannot search)."""
    [staged] = _staged
    return subprocess.run(as_nobody([staged.executable, *args]), capture_output=True,
                          text=True, timeout=timeout, env=staged.env(), cwd="/")


def run_unprivileged(code: str, timeout: float = 60) -> dict:
    """Run code as uid/gid 65534 with no groups; it prints one JSON document."""
    r = run_unprivileged_python(["-c", textwrap.dedent(code)], timeout)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module", autouse=True)
def _userns_allowed(python_for_nobody):
    with open("/proc/sys/user/max_user_namespaces") as f:
        need(int(f.read()) > 0, "user namespaces (user.max_user_namespaces > 0)")
    _staged[:] = [python_for_nobody]
    yield
    _staged.clear()


def test_unprivileged_sandbox_with_map_root_and_mount_proc():
    seen = run_unprivileged("""
        import json, os, nsfast
        p = nsfast.spawn(["sh", "-c", "id -u; hostname; ls /proc | grep -c '^[0-9]'"],
                         namespaces="user,mnt,pid,uts,ipc,net", map_root=True,
                         mount_proc=True, hostname="rootless", stdout=nsfast.PIPE)
        out, _ = p.communicate(timeout=30)
        print(json.dumps({"euid": os.geteuid(), "rc": p.returncode,
                          "lines": out.decode().split()}))
    """)
    assert seen["euid"] == NOBODY
    assert seen["rc"] == 0
    uid, host, nprocs = seen["lines"]
    assert uid == "0" and host == "rootless"
    assert int(nprocs) <= 3  # sh, ls, grep: only the sandbox's processes


def test_unprivileged_map_root_gid_map_uses_setgroups_deny():
    seen = run_unprivileged("""
        import json, nsfast
        p = nsfast.spawn(["sh", "-c", "cat /proc/self/setgroups /proc/self/gid_map"],
                         namespaces="user", map_root=True, stdout=nsfast.PIPE)
        out, _ = p.communicate(timeout=30)
        print(json.dumps(out.decode().split()))
    """)
    assert seen == ["deny", "0", str(NOBODY), "1"]


@pytest.fixture
def subid_entries():
    """A subordinate id range for uid 65534 in /etc/subuid and /etc/subgid, removed after."""
    need_tool("newuidmap")
    need_tool("newgidmap")
    line = f"{NOBODY}:{SUB_START}:{SUB_COUNT}\n"
    saved = {}
    for path in ("/etc/subuid", "/etc/subgid"):
        saved[path] = open(path).read() if os.path.exists(path) else None
        with open(path, "a") as f:
            f.write(line)
    try:
        yield
    finally:
        for path, text in saved.items():
            if text is None:
                os.unlink(path)
            else:
                with open(path, "w") as f:
                    f.write(text)


def test_unprivileged_range_map_goes_through_newuidmap(subid_entries):
    seen = run_unprivileged(f"""
        import json, nsfast
        p = nsfast.spawn(["cat", "/proc/self/uid_map", "/proc/self/gid_map"],
                         namespaces="user", map_users="auto", stdout=nsfast.PIPE)
        out, _ = p.communicate(timeout=30)
        print(json.dumps(out.decode().split()))
    """)
    assert seen == ["0", str(SUB_START), str(SUB_COUNT)] * 2


def test_unprivileged_range_map_without_subids_says_so():
    for path in ("/etc/subuid", "/etc/subgid"):
        if os.path.exists(path):
            assert f"{NOBODY}:" not in open(path).read()
    seen = run_unprivileged("""
        import json, nsfast
        try:
            nsfast.spawn(["true"], namespaces="user", map_users="auto")
            print(json.dumps("no error"))
        except (LookupError, OSError) as e:
            print(json.dumps(str(e)))
    """)
    assert "/etc/subuid" in seen


def test_unprivileged_foreign_range_is_refused_with_a_hint():
    seen = run_unprivileged("""
        import json, nsfast
        try:
            nsfast.spawn(["true"], namespaces="user", uid_map="0 0 1", gid_map="0 0 1")
            print(json.dumps("no error"))
        except OSError as e:
            print(json.dumps([type(e).__name__, str(e)]))
    """)
    assert seen != "no error"
    assert seen[0] in ("PermissionError", "FileNotFoundError")


def test_privileged_only_operations_fail_cleanly_with_a_hint():
    """Named netns live under /run and need root: PermissionError, a hint, no crash."""
    seen = run_unprivileged("""
        import json, nsfast
        out = {}
        for what, call in (("add", lambda: nsfast.netns.add("rootless-probe")),
                           ("remove", lambda: nsfast.netns.remove("rootless-probe"))):
            try:
                call()
                out[what] = "no error"
            except OSError as e:
                out[what] = [type(e).__name__, str(e)]
        print(json.dumps(out))
    """)
    kind, message = seen["add"]
    assert kind == "PermissionError"
    assert "hint" in message and "/run/netns" in message
    assert seen["remove"][0] in ("PermissionError", "FileNotFoundError")
    assert "rootless-probe" not in nsfast.netns.list()


@pytest.fixture
def nobody_in_its_own_userns():
    """A `sleep` that uid 65534 started in a user namespace of its own (unshare -Ur)."""
    need_tool("unshare")
    p = subprocess.Popen(as_nobody(["unshare", "-Ur", "sleep", "100"]))
    try:
        ours = os.stat("/proc/self/ns/user").st_ino
        for _ in range(1000):   # until unshare has exec'd sleep in the new namespace
            with open(f"/proc/{p.pid}/comm") as f:
                if f.read().strip() == "sleep" and \
                        os.stat(f"/proc/{p.pid}/ns/user").st_ino != ours:
                    break
            assert p.poll() is None, "unshare -Ur failed for uid 65534"
            time.sleep(0.01)
        else:
            pytest.fail("unshare -Ur sleep never got going")
        yield p.pid
    finally:
        p.kill()   # by pid: ours, not yet reaped
        p.wait()


def test_unprivileged_ps_lists_what_that_user_may_see(nobody_in_its_own_userns):
    """nsfast ps as uid 65534, which may read neither pid 1's nor kthreadd's
    namespaces: exit 0, and its own process in a user namespace is listed."""
    pid = nobody_in_its_own_userns
    assert os.stat(f"/proc/{pid}").st_uid == NOBODY
    r = run_unprivileged_python(["-m", "nsfast.cli", "ps", "--json"])
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    listed = {p["pid"]: p for p in json.loads(r.stdout)["processes"]}
    assert pid in listed
    assert "user" in listed[pid]["kinds"]
    assert listed[pid]["command"] == "sleep 100"
    # only what uid 65534 may inspect: every listed process is its own
    for q in listed:
        try:
            assert os.stat(f"/proc/{q}").st_uid == NOBODY
        except FileNotFoundError:
            pass   # ended since


def test_a_refused_fork_reports_its_own_errno():
    """The init's fork of the payload refused by RLIMIT_NPROC is EAGAIN; the
    child's forks used to report every failure as ENOMEM."""
    seen = run_unprivileged("""
        import json, resource, nsfast
        resource.setrlimit(resource.RLIMIT_NPROC, (2, 2))   # us, and the init
        try:
            nsfast.spawn(["true"], namespaces="user,pid", map_root=True, init=True).wait()
            print(json.dumps({"errno": 0}))
        except OSError as e:
            print(json.dumps({"errno": e.errno, "text": str(e)}))
    """)
    assert seen["errno"] == 11, seen   # EAGAIN
