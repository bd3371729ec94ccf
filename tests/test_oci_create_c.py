"""nsfast-runtime create in C (csrc/cli_oci_create.c) against its reference,
Python's create (nsfast/oci): for the configs C handles it makes the same
plan (NSFAST_OCI_PLAN=1 prints it instead of making the container, here
printed the same way from Python's translation), it runs without Python,
and what it does not handle, or what fails once it has begun, goes to
Python's create, which does it or says why in its own words."""
import json
import sys
import os
import subprocess

import pytest

from nsfast import NsType
from nsfast.oci import config as oci_config
from nsfast.oci.runtime import _Steps
from nsfast.plan import SpawnPlan
from test_oci_fast import c_only  # noqa: F401  (the fixture)
from test_oci_runtime import RUNTIME, _gone, _wait_for, rt  # noqa: F401  (rt: the fixture)


def _text(value) -> str:
    """As the C plan prints a string: bytes outside 0x21-0x7e (and the
    backslash) as \\xHH, None as -."""
    if value is None:
        return "-"
    if isinstance(value, str):
        value = os.fsencode(value)
    return "".join(chr(b) if 0x21 <= b <= 0x7e and b != 0x5c else f"\\x{b:02x}"
                   for b in value)


def python_plan(bundle: str, cid: str) -> str:
    """Python's create's plan for the bundle, printed as NSFAST_OCI_PLAN=1
    prints the C one."""
    conf = oci_config.load(bundle)
    opts, setup = oci_config.spawn_options(bundle, conf)
    cgroups_path = setup.cgroups_path or f"/nsfast-runtime/{cid}"
    steps = oci_config.mount_steps(conf, setup.rootfs, "/" + cgroups_path.strip("/"))
    argv = opts.pop("argv")
    spec = SpawnPlan(argv, mounts=[_Steps(steps)], **opts).spec
    lines = [f"rootfs {_text(setup.rootfs)}", f"new {spec.new_kinds:#x}",
             f"hostname {_text(spec.hostname)}", f"domainname {_text(spec.domainname)}",
             *(f"join {int(NsType[kind.upper()]):#x} {_text(path)}"
               for kind, path in opts.get("join", {}).items()),
             f"propagation {spec.propagation:#x}",
             f"ids {spec.uid} {spec.gid} groups" + "".join(f" {g}" for g in spec.groups or ()),
             f"caps {int(spec.caps_keep is not None)} {spec.caps_keep or 0:#x} "
             f"{spec.caps_ambient:#x}",
             f"no_new_privs {int(spec.no_new_privs)}", f"cwd {_text(spec.cwd)}"]
    for name, values in (("argv", spec.argv), ("env", spec.envp),
                         ("exec_paths", spec.exec_paths)):
        lines.append(name + "".join(" " + _text(v) for v in values))
    for step, a, _b, _c, text in spec.ops:
        if step == "umask":
            lines.append(f"umask 0{a:o}")
        elif step == "seccomp":
            lines.append(f"seccomp {a} {text.hex()}")
    lines += [f"rlimit {res} {soft} {hard}" for res, soft, hard in setup.rlimits]
    if setup.oom_score_adj is not None:
        lines.append(f"oom_score_adj {setup.oom_score_adj}")
    lines.append(f"cgroups_path {_text(cgroups_path)}")
    for kind, ro, flags, src, dst, data in spec.mounts:
        lines.append(f"{kind} {int(ro)} {flags:#x} {_text(src)} {_text(dst)} {_text(data)}")
    return "\n".join(lines) + "\n"


def c_plan(bundle: str, cid: str):
    """The C create's plan for the bundle, or None when it hands it to Python."""
    r = subprocess.run([*RUNTIME, "create", "--bundle", bundle, cid], capture_output=True,
                       env={**os.environ, "NSFAST_OCI_PLAN": "1",
                            "NSFAST_PYTHON": "/nonexistent"},
                       stdin=subprocess.DEVNULL, timeout=30)
    if r.returncode == 0:
        return r.stdout.decode()
    assert b"Python" in r.stderr, r   # handed over, and no Python to take it here
    return None


SECCOMP = {
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ["read", "write", "exit", "exit_group", "execve", "brk", "mmap", "close",
                   "openat", "fstat", "newfstatat", "arch_prctl", "rt_sigaction",
                   "set_tid_address", "getpid", "uname", "nanosleep"],
         "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 0,
                   "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["no_such_syscall_here"], "action": "SCMP_ACT_ALLOW"},
    ],
}


def _podman_like(c):
    """The shape of what Podman writes: a cgroup mount, file binds, its
    masked paths, umask, rlimits, pids and device rules, a seccomp profile."""
    c["process"]["user"]["umask"] = 0o22
    c["process"]["rlimits"].append({"type": "RLIMIT_NPROC", "hard": 4096, "soft": 4096})
    c["process"]["oomScoreAdj"] = 100
    c["mounts"] += [
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/etc/hostname", "type": "bind", "source": "/etc/hostname",
         "options": ["bind", "rprivate"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["rprivate", "nosuid", "noexec", "nodev", "relatime", "ro"]}]
    c["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}],
                               "pids": {"limit": 2048}}
    c["linux"]["maskedPaths"] += ["/proc/acpi", "/proc/scsi", "/sys/dev/block"]
    c["linux"]["seccomp"] = SECCOMP
    c["annotations"] = {"io.container.manager": "libpod"}
    return c


def _containerd_like(c):
    """The shape of containerd's default spec: extra gids, tmpfs /run,
    device allow rules, cpu shares, its own cgroupsPath."""
    c["process"]["user"]["additionalGids"] = [0, 10]
    c["mounts"].append({"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                        "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]})
    c["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"},
                                           {"allow": True, "type": "c", "major": 1,
                                            "minor": 3, "access": "rwm"},
                                           {"allow": True, "type": "c", "major": 136,
                                            "access": "rwm"}],
                               "cpu": {"shares": 1024}}
    return c


def _everything_else(c):
    """Fields neither shape has: a nonroot user with ambient capabilities,
    a read-only root, propagation, domainname, a memory limit, a cgroup ns."""
    c["process"]["user"].update(uid=1000, gid=1000)
    caps = ["CAP_NET_BIND_SERVICE"]
    c["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted",
                                                      "inheritable", "ambient")}
    c["process"]["cwd"] = "/tmp"
    c["process"]["env"] = ["PATH=/usr/bin::/bin/", "A=1", "B=2", "A=3"]
    c["root"]["readonly"] = True
    c["domainname"] = "example"
    c["linux"]["rootfsPropagation"] = "private"
    c["linux"]["namespaces"].append({"type": "cgroup"})
    c["linux"]["resources"] = {"memory": {"limit": 64 << 20, "reservation": 32 << 20}}
    c["linux"]["cgroupsPath"] = "/nsfast-create-c-test/x"
    return c


def _joins(c):
    """Namespaces joined through their paths (a pod's, Podman's netns)."""
    c["linux"]["namespaces"] = [{"type": "network", "path": f"/proc/{os.getpid()}/ns/net"},
                                {"type": "uts", "path": f"/proc/{os.getpid()}/ns/uts"},
                                {"type": "mount"}, {"type": "pid"}]
    del c["hostname"]
    return c


@pytest.mark.parametrize("shape", [None, _podman_like, _containerd_like, _everything_else,
                                   _joins],
                         ids=["runc-spec", "podman", "containerd", "other-fields", "joins"])
def test_c_create_makes_the_plan_python_makes(rt, shape):
    changes = {"_": shape} if shape else {}
    bundle, _, cid = rt.bundle(["sh", "-c", "true"], **changes)
    made = c_plan(bundle, cid)
    assert made is not None, "C handed a config it should handle to Python"
    assert made == python_plan(bundle, cid)
    # it printed the plan only: nothing was made
    assert not os.path.exists(os.path.join(rt.root, cid))


@pytest.mark.parametrize("change", [
    lambda c: {**c, "hooks": {"poststop": [{"path": "/bin/true"}]}},
    lambda c: {**c, "process": {**c["process"], "terminal": True}},   # no --console-socket
    lambda c: {**c, "linux": {**c["linux"], "sysctl": {"net.ipv4.ip_forward": "1"}}},
    lambda c: {**c, "linux": {**c["linux"], "namespaces": [
        *c["linux"]["namespaces"], {"type": "user"}]}},
    lambda c: {**c, "linux": {**c["linux"], "devices": [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}},
    lambda c: {**c, "linux": {**c["linux"], "namespaces": [
        {"type": "network", "path": "/etc/hostname"}, {"type": "mount"}]}},
    lambda c: {**c, "process": {**c["process"], "capabilities": {"bounding": ["CAP_NOPE"]}}},
    lambda c: {**c, "linux": {**c["linux"], "resources": {"blockIO": {"weight": 10}}}},
    lambda c: {**c, "unknownField": 1},
], ids=["hooks", "terminal", "sysctl", "user-ns", "devices", "join-not-a-namespace", "bad-cap",
        "unknown-resource", "unknown-field"])
def test_what_c_does_not_handle_goes_to_python(rt, change):
    bundle, _, cid = rt.bundle(["true"], _=change)
    assert c_plan(bundle, cid) is None


def test_python_create_when_asked_for(rt):
    bundle, _, cid = rt.bundle(["true"])
    r = subprocess.run([*RUNTIME, "--root", rt.root, "create", "--bundle", bundle, cid],
                       capture_output=True, stdin=subprocess.DEVNULL, timeout=30,
                       env={**os.environ, "NSFAST_RUNTIME_CREATE": "python",
                            "NSFAST_PYTHON": "/nonexistent"})
    assert r.returncode != 0 and b"Python" in r.stderr   # handed over: no Python here
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_create_runs_without_python(rt, c_only):
    bundle, out, cid = rt.bundle(["sh", "-c", "echo $$ $(hostname) > /out/ran"])
    r = c_only("create", "--bundle", bundle, "--pid-file", f"{bundle}/pid", cid, root=rt.root)
    assert r.returncode == 0, r.stderr
    pid = int(open(f"{bundle}/pid").read())
    rt.pids.append(pid)
    rt.cgroups.extend(rt.facts(cid)["cgroups"].values())
    # held in its own namespaces and cgroups, before exec
    assert json.loads(c_only("state", cid, root=rt.root).stdout)["status"] == "created"
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    for path in rt.facts(cid)["cgroups"].values():
        assert str(pid) in open(f"{path}/cgroup.procs").read().split()
    assert c_only("start", cid, root=rt.root).returncode == 0
    _wait_for(lambda: (out / "ran").exists() and (out / "ran").read_text().endswith("\n"))
    assert (out / "ran").read_text() == "1 oci-test\n"


def test_a_failure_after_c_began_is_undone_and_python_names_it(rt):
    # the bind source goes away between the plan and the child's mount: C
    # has made the directory and cgroups by then; Python's create, run on
    # the same command line after C undid them, fails and says why
    def missing_source(c):
        c["mounts"].append({"destination": "/gone", "type": "bind",
                            "source": str(rt.tmp / "no-such-dir"), "options": ["bind"]})
        return c
    bundle, _, cid = rt.bundle(["true"], _=missing_source)
    r = rt("create", "--bundle", bundle, cid, check=False)
    assert r.returncode == 1
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and "no-such-dir" in lines[0], lines
    assert not os.path.exists(os.path.join(rt.root, cid))


def python_plan_of_command_line(args: list) -> str:
    """python_plan for a runtime command line (global flags, create
    --bundle DIR ... ID), as a client calls it."""
    rest = args[args.index("create") + 1:]
    bundle = "."
    for i, a in enumerate(rest):
        if a in ("--bundle", "-b"):
            bundle = rest[i + 1]
        elif a.startswith("--bundle="):
            bundle = a.split("=", 1)[1]
    return python_plan(bundle, rest[-1])


class PlanRecorder:
    """A runtime for a client (Podman, containerd's shim) that runs
    nsfast-runtime, and for each create first keeps both plans: the C
    create's (NSFAST_OCI_PLAN=1) and Python's for the same bundle.  So the
    configs the clients really write are checked, seccomp profile and all."""

    def __init__(self, where, runtime: str) -> None:
        self.dir = where
        tests = os.path.dirname(os.path.abspath(__file__))
        self.path = os.path.join(where, "recording-runtime")
        with open(self.path, "w") as f:
            f.write(f"""#!/bin/sh
case " $* " in *" create "*)
  NSFAST_OCI_PLAN=1 NSFAST_PYTHON=/nonexistent {runtime} "$@" > {where}/c-plan.$$ 2>&1
  {sys.executable} -c 'import sys; sys.path.insert(0, "{tests}")
from test_oci_create_c import python_plan_of_command_line as plan
sys.stdout.write(plan(sys.argv[1:]))' "$@" > {where}/py-plan.$$ 2>&1
esac
exec {runtime} "$@"
""")
        os.chmod(self.path, 0o755)

    def plans(self) -> list:
        """[(C plan, Python plan)] of the creates seen."""
        found = []
        for name in sorted(os.listdir(self.dir)):
            if name.startswith("c-plan."):
                pid = name.split(".", 1)[1]
                with open(os.path.join(self.dir, name)) as c, \
                        open(os.path.join(self.dir, f"py-plan.{pid}")) as py:
                    found.append((c.read(), py.read()))
        return found


def test_c_create_reuses_a_trusted_compiled_profile_only(rt):
    from test_oci_fast import _ALLOW_ALL, _profile
    from nsfast.oci.seccomp import CACHE_DIR
    profile = _profile(os.urandom(8).hex())
    before = set(os.listdir(CACHE_DIR)) if os.path.isdir(CACHE_DIR) else set()
    made: list = []

    def mkdir_status() -> str:
        def sc(c):
            c["linux"]["seccomp"] = profile
            return c
        cid, out, _ = rt.create(["sh", "-c", "mkdir /tmp/d 2>/dev/null; echo $? > /out/rc"],
                                _=sc)
        rt("start", cid)
        _wait_for(lambda: (out / "rc").exists() and (out / "rc").read_text().endswith("\n"))
        return (out / "rc").read_text().strip()
    try:
        assert mkdir_status() == "1"   # EACCES from the filter: mkdir fails
        made = [n for n in set(os.listdir(CACHE_DIR)) - before if n.startswith("c-")]
        assert len(made) == 1, "C's create compiled no program, or more than one"
        cached = os.path.join(CACHE_DIR, made[0])
        st = os.stat(cached)
        assert st.st_uid == 0 and st.st_mode & 0o777 == 0o600
        with open(cached, "rb") as f:
            kept = f.read()
        key = kept[:kept.rindex(b"}") + 1]   # the text the program was made of
        assert json.loads(key.split(b"\n", 1)[1]) == profile
        # the next create takes the program from there (no compiling)...
        with open(cached, "wb") as f:
            f.write(key + _ALLOW_ALL)
        assert mkdir_status() == "0"
        # ...but only from a file no one else can have written
        os.chmod(cached, 0o644)
        assert mkdir_status() == "1"
        assert os.stat(cached).st_mode & 0o777 == 0o600   # compiled anew, in place
        # and only for the text it was made of
        with open(cached, "wb") as f:
            f.write(key.replace(b"mkdirat", b"mkdirzz") + _ALLOW_ALL)
        assert mkdir_status() == "1"
    finally:
        for name in made:
            try:
                os.unlink(os.path.join(CACHE_DIR, name))
            except FileNotFoundError:
                pass
