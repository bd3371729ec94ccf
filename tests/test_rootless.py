"""The rootless path: nsfast used by an unprivileged user (uid 65534 via setpriv).

pytest itself stays root; each scenario runs a small Python program as the
unprivileged user and reports what it saw."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import nsfast
from conftest import need, need_tool

NOBODY = 65534
SUB_START, SUB_COUNT = 300000, 65536


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(nsfast.__file__)))


def run_unprivileged(code: str, timeout: float = 60) -> dict:
    """Run code as uid/gid 65534 with no groups; it prints one JSON document."""
    setpriv = need_tool("setpriv")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/",
           "PYTHONPATH": _repo_root(), "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run([setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                        sys.executable, "-c", textwrap.dedent(code)],
                       capture_output=True, text=True, timeout=timeout, env=env, cwd="/")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module", autouse=True)
def _userns_allowed():
    with open("/proc/sys/user/max_user_namespaces") as f:
        need(int(f.read()) > 0, "user namespaces (user.max_user_namespaces > 0)")
    st = os.stat(nsfast.__file__)
    need(st.st_mode & 0o004 != 0, "a checkout readable by other users (for uid 65534)")


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
