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
import subprocess
import sys

import nsfast

PROBE_IN = "/tmp/probe"


def sandbox(probe_dir: str, **options) -> nsfast.Sandbox:
    """The default Sandbox with the probe bound in (under its /tmp tmpfs)."""
    return nsfast.Sandbox(mounts=[nsfast.Mkdir(PROBE_IN),
                                  nsfast.Bind(probe_dir, PROBE_IN, readonly=True)], **options)


def probe(box: nsfast.Sandbox, args, stdin=None, pass_fds=()) -> str:
    p = box.spawn([PROBE_IN + "/probe", *args], stdout=nsfast.PIPE, stderr=nsfast.STDOUT,
                  stdin=stdin if stdin is not None else nsfast.DEVNULL, pass_fds=pass_fds)
    out = p.communicate(timeout=30)[0].decode(errors="replace").strip()
    return out if p.returncode == 0 else f"exit {p.returncode}: {out}"


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
    print(json.dumps(run(sys.argv[1], json.loads(sys.argv[2]))))
