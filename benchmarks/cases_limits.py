"""A limited spawn against an unlimited one of the same namespaces.

limits-spawn: nsfast.spawn of /bin/true with Limits(memory, pids, cpu,
nofile, cpu_time), so a cgroup box per sandbox (made ahead and reused, see
nsfast/cgroups.py) and an rlimits step, against the same spawn without
limits (target: at most 1.2x), and against crun, nsjail and isolate given
the same limits where they are on PATH (named as missing otherwise).

    nsfast bench --only limits
"""
from __future__ import annotations

import shutil
import subprocess

import nsfast
from nsfast import cgroups

from .cases_spawn import floor_for
from .harness import Case, Peer, within
from .peer_crun import CrunPeer

TRUE = "/bin/true"
NAMES = "pid,mnt,uts,ipc"
LIMITS = nsfast.Limits(memory="256M", pids=64, cpu=1.0, nofile=256, cpu_time=10)


def _limited():
    nsfast.spawn([TRUE], namespaces=NAMES, limits=LIMITS, pdeathsig=None).wait()


def _unlimited():
    nsfast.spawn([TRUE], namespaces=NAMES, pdeathsig=None).wait()


def _check():
    """The limited child really is in a box with pids.max written, and its
    rlimit is set (the witnesses: /proc/self/cgroup and limits as it sees them)."""
    p = nsfast.spawn(["sh", "-c", "cat /proc/self/cgroup; ulimit -n"], namespaces=NAMES,
                     limits=LIMITS, stdout=nsfast.PIPE)
    out = p.communicate()[0].decode()
    if "/box-" not in out or not out.rstrip().endswith("256"):
        raise AssertionError(f"the limited spawn is not limited: {out!r}")


def _nsjail_peer() -> Peer:
    exe = shutil.which("nsjail")
    if exe is None:
        return Peer("nsjail", None, "not on PATH: build it from github.com/google/nsjail")
    argv = [exe, "-Mo", "-q", "--disable_clone_newnet", "--chroot", "/",
            "--cgroup_mem_max", str(LIMITS.memory), "--cgroup_pids_max", str(LIMITS.pids),
            "--cgroup_cpu_ms_per_sec", "1000", "--rlimit_nofile", str(LIMITS.nofile),
            "--rlimit_cpu", "10", "--", TRUE]
    return Peer("nsjail", lambda: subprocess.run(argv, check=True, capture_output=True))


def _isolate_peer() -> Peer:
    exe = shutil.which("isolate")
    if exe is None:
        return Peer("isolate", None, "not on PATH: apt-get install isolate (or build "
                    "github.com/ioi/isolate); it also needs its cgroup set-up (isolate-cg-keeper)")
    argv = [exe, "--cg", "--box-id=97", f"--cg-mem={LIMITS.memory // 1024}",
            f"--processes={LIMITS.pids}", f"--open-files={LIMITS.nofile}", "--time=10",
            "--run", "--", TRUE]

    def op():
        subprocess.run(argv, check=True, capture_output=True)
    return Peer("isolate", op)


def cases(cfg) -> list:
    try:
        cgroups.layout(["memory", "pids", "cpu"])
    except OSError:
        return []   # a host without these controllers: nothing to compare
    crun = CrunPeer(TRUE, NAMES, LIMITS)
    isolate = _isolate_peer()
    if isolate.op is not None:
        subprocess.run([shutil.which("isolate"), "--cg", "--box-id=97", "--init"],
                       capture_output=True)

    def setup():
        cgroups.prepare(LIMITS, 4)

    def setup_peers():
        setup()
        crun.setup()

    def teardown_peers():
        try:
            crun.teardown()
        finally:
            cgroups.clear()
    what = (f"spawn and wait /bin/true in {NAMES} with memory, pids, cpu (a cgroup box, "
            f"reused) and nofile, cpu_time (rlimits)")
    return [
        Case(name="limits-spawn", op=_limited,
             # the C spawn of the same namespaces, without limits: what the limits add
             floor=floor_for(NAMES, False), peers=[Peer("unlimited", _unlimited)],
             check=_check, setup=setup, teardown=cgroups.clear,
             targets=[within(1.2, "unlimited")], samples=200,
             note=f"{what}, against the same without limits.  Apart from the peers' case: "
                  f"a tool that removes cgroups leaves the kernel work of their teardown "
                  f"(cgroup_mutex held by a kworker) to whichever cgroup join comes next, "
                  f"which is the limited spawn's and not the unlimited one's"),
        Case(name="limits-spawn-peers", op=_limited, floor=floor_for(NAMES, False),
             peers=[crun.peer, _nsjail_peer(), isolate], check=_check,
             setup=setup_peers, teardown=teardown_peers, samples=100,
             note=f"{what}, against crun running the same /bin/true, copied with its "
                  f"libraries into the rootfs of an OCI bundle with the same limits and "
                  f"namespaces (benchmarks/peer_crun.py), and nsjail and isolate given them"),
    ]
