"""nsfast-runtime exec in C (csrc/cli_oci_exec.c), as container managers
call it (`exec --process FILE ...`): it runs without Python, in the
container's namespaces, cgroups and seccomp filter with the process's own
ids, and hands the rest (the ARGS form, a container not running) to
Python's exec (nsfast/oci/runtime.py exec_), which is its reference."""
import json
import os

from test_oci_fast import c_only  # noqa: F401  (the fixture)
from test_oci_runtime import _wait_for, rt  # noqa: F401  (rt: the fixture)


def _process(rt, args, **fields) -> str:
    path = rt.tmp / f"process-{os.urandom(4).hex()}.json"
    path.write_text(json.dumps({"args": args, "cwd": "/", "env": ["PATH=/bin"],
                                "user": {"uid": 0, "gid": 0}, **fields}))
    return str(path)


def test_exec_runs_without_python_inside_the_container(rt, c_only):
    def seccomp(c):
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
        return c
    cid, out, pid = rt.create(["sleep", "30"], _=seccomp)
    rt("start", cid)
    script = ("hostname; cat /proc/1/cmdline; echo; id -u; cat /proc/self/cgroup > /out/cg; "
              "mkdir /tmp/x 2>/dev/null || echo denied; exit 4")
    r = c_only("exec", "--process", _process(rt, ["sh", "-c", script],
                                             user={"uid": 65534, "gid": 65534}),
               "--pid-file", str(rt.tmp / "epid"), cid, root=rt.root)
    # its namespaces (hostname, pid 1), its ids, its seccomp filter, its status
    assert r.returncode == 4, r.stderr
    assert r.stdout.decode().split("\n") == ["oci-test", "sleep\x0030\x00", "65534",
                                             "denied", ""]
    assert int((rt.tmp / "epid").read_text()) > 0
    # and the container's cgroups (seen from the host, where the cgroup is named)
    pids_cgroup = next(p for n, p in rt.facts(cid)["cgroups"].items() if n == "pids")
    line = next(x for x in (out / "cg").read_text().splitlines() if ":pids:" in x)
    assert pids_cgroup.endswith(line.split(":", 2)[2])


def test_exec_detached_returns_before_the_process_ends(rt, c_only):
    cid, out, _ = rt.create(["sleep", "30"])
    rt("start", cid)
    r = c_only("exec", "--process", _process(rt, ["sh", "-c", "sleep 0.3; echo done > /out/d"]),
               "--detach", "--pid-file", str(rt.tmp / "epid"), cid, root=rt.root)
    assert r.returncode == 0 and not (out / "d").exists()
    _wait_for(lambda: (out / "d").exists() and (out / "d").read_text() == "done\n")


def test_what_c_exec_does_not_handle_goes_to_python(rt, c_only):
    cid, _, _ = rt.create(["sleep", "30"])
    # a created container: Python's exec says it is not running
    r = c_only("exec", "--process", _process(rt, ["true"]), cid, root=rt.root)
    assert r.returncode != 0 and b"no Python" in r.stderr
    rt("start", cid)
    # the ARGS form, and a process.json field C does not read
    for args in (["exec", cid, "true"],
                 ["exec", "--process", _process(rt, ["true"], terminal=True), cid]):
        r = c_only(*args, root=rt.root)
        assert r.returncode != 0 and b"no Python" in r.stderr, args
    # while through Python they work or are refused in its words
    assert rt("exec", cid, "true").returncode == 0
    r = rt("exec", "--process", _process(rt, ["true"], terminal=True), cid, check=False)
    assert r.returncode == 1 and b"console-socket" in r.stderr
