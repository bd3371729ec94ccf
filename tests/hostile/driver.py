"""Runs the hostile probe under the default nsfast.Sandbox and reports what
each attack got: imported by test_hostile.py as root, and run as a script
(`driver.py PROBE_DIR ATTACKS_JSON`) under setpriv as an unprivileged user.

An attack is a list of probe arguments; placeholders are filled here:
{fd} an inheritable host fd, {hostpid} a host process's pid.  Three attacks
are set up here: "tiocsti" and "ctty" run with a pty as stdin, "killall"
(kill -9 -1) and "other" (signal or ptrace another sandbox's payload) have
witnesses that must survive."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import nsfast
import nsfast.sandbox

PROBE_IN = "/tmp/probe"
_probe = {"path": PROBE_IN + "/probe"}   # where sandbox() put it


def sandbox(probe_dir: str, **options) -> nsfast.Sandbox:
    """The default Sandbox running the probe: where it is, when the
    sandbox's read-only root shows the host's root filesystem there; else
    bound in (under its /tmp tmpfs), which takes the usual path instead of
    a template (a template's sandbox binds nothing of the caller's)."""
    if os.stat(probe_dir).st_dev == os.stat("/").st_dev:
        _probe["path"] = os.path.join(probe_dir, "probe")
        return nsfast.Sandbox(**options)
    _probe["path"] = PROBE_IN + "/probe"
    return nsfast.Sandbox(mounts=[nsfast.Mkdir(PROBE_IN),
                                  nsfast.Bind(probe_dir, PROBE_IN, readonly=True)], **options)


def probe(box: nsfast.Sandbox, args, stdin=None, pass_fds=()) -> str:
    p = box.spawn([_probe["path"], *args], stdout=nsfast.PIPE, stderr=nsfast.STDOUT,
                  stdin=stdin if stdin is not None else nsfast.DEVNULL, pass_fds=pass_fds)
    out = p.communicate(timeout=30)[0].decode(errors="replace").strip()
    return out if p.returncode == 0 else f"exit {p.returncode}: {out}"


# the driver's own limits around the resource attacks, above what the
# default Sandbox allows: a safety net should nsfast fail to contain one
OUTER = {resource.RLIMIT_AS: 6 << 30, resource.RLIMIT_NPROC: 6000,
         resource.RLIMIT_CPU: 120, resource.RLIMIT_FSIZE: 3 << 30}
SPIN_WALL = 2.0   # the default policy's wall time (600 s), shortened for the test


def resources(probe_dir: str, attacks: list) -> dict:
    """Each resource attack under the default Sandbox (for spin with a short
    wall time): its exit, its output's last line and what the usage says."""
    for res, value in OUTER.items():
        soft, hard = resource.getrlimit(res)
        cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(res, (cap, cap))
    results = {}
    for attack in attacks:
        options = {}
        if attack[0] == "spin":
            base = dict(nsfast.sandbox.default_limits()._items())
            options["limits"] = nsfast.Limits(**{**base, "wall_time": SPIN_WALL})
        box = sandbox(probe_dir, **options)
        try:
            p = box.spawn([_probe["path"], *attack], stdout=nsfast.PIPE,
                          stderr=nsfast.STDOUT, stdin=nsfast.DEVNULL)
            out = p.communicate(timeout=120)[0].decode(errors="replace").strip()
            u = p.usage
            last = out.splitlines()[-1] if out else ""
            results[" ".join(attack)] = dict(
                returncode=p.returncode, last=last, limit_hit=u.limit_hit,
                oom_killed=u.oom_killed, max_rss=u.max_rss, wall_time=u.wall_time)
        finally:
            box.close()
    return results


def run(probe_dir: str, attacks: list) -> dict:
    results = {}
    box = sandbox(probe_dir)
    host_fd = os.open("/etc/hostname", os.O_RDONLY)   # inheritable, no CLOEXEC
    os.set_inheritable(host_fd, True)
    host = subprocess.Popen(["sleep", "60"])
    try:
        for attack in attacks:
            key = " ".join(attack)
            args = [a.replace("{fd}", str(host_fd)).replace("{hostpid}", str(host.pid))
                    for a in attack]
            if args[0] in ("tiocsti", "ctty"):
                master, slave = os.openpty()
                try:
                    results[key] = probe(box, args, stdin=slave)
                finally:
                    os.close(master)
                    os.close(slave)
            elif args[0] == "killall":
                results[key] = killall(box, probe_dir, host)
            elif args[0] == "other":
                results[key] = other_sandbox(probe_dir, args[1], args[2:])
            else:
                results[key] = probe(box, args)
    finally:
        host.kill()
        host.wait()
        os.close(host_fd)
        box.close()
    return results


def killall(box, probe_dir: str, host: subprocess.Popen) -> str:
    """kill -9 -1 in one sandbox; the host's process and another sandbox's live on."""
    other = sandbox(probe_dir)
    victim = other.spawn(["sleep", "60"])
    try:
        got = probe(box, ["kill", "-1", "9"])
        return f"{got}; host {'alive' if host.poll() is None else 'dead'}; " \
               f"other {'alive' if victim.poll() is None else 'dead'}"
    finally:
        victim.kill()
        victim.wait()
        other.close()


def other_sandbox(probe_dir: str, what: str, options: list) -> str:
    """Sandbox B signals (kill PID 0) or ptraces sandbox A's payload by its
    host pid.  options "nopid": both without a pid namespace, so that the pid
    is visible and only the ids keep them apart."""
    kw = {}
    if "nopid" in options:
        kw = dict(namespaces="user,mnt,uts,ipc,cgroup,net", mount_proc=False,
                  mask_paths=False, readonly_paths=False)
    a, b = sandbox(probe_dir, **kw), sandbox(probe_dir, **kw)
    victim = a.spawn(["sleep", "60"])
    try:
        args = ["kill", str(victim.pid), "9"] if what == "kill" else ["ptrace", str(victim.pid)]
        got = probe(b, args)
        return f"{got}; victim {'alive' if victim.poll() is None else 'dead'}"
    finally:
        victim.kill()
        victim.wait()
        a.close()
        b.close()


if __name__ == "__main__":
    if sys.argv[3:] == ["--resources"]:
        print(json.dumps(resources(sys.argv[1], json.loads(sys.argv[2]))))
    else:
        print(json.dumps(run(sys.argv[1], json.loads(sys.argv[2]))))
