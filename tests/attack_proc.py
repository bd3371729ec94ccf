"""An attacker inside a sandbox: read /proc/N/environ, maps and mem of every
process it can see (or of the pids given) and report what it read.

Run as a payload: python attack_proc.py REVERSED_TOKEN [PID...].  The token
comes reversed so that neither this process's argv nor its parents' (an init
holds the payload's argv) contain it.  It prints one JSON document:
{"self": pid, "found": [[pid, file], ...], "read": [[pid, file], ...],
 "denied": [[pid, file, errno], ...]}.
"""
import json
import os
import sys

MAX_BYTES = 256 << 20     # bounded: the caller's heap, not the machine


def main() -> None:
    token = sys.argv[1][::-1].encode()
    pids = [int(p) for p in sys.argv[2:]] or sorted(
        int(p) for p in os.listdir("/proc") if p.isdigit())
    me = os.getpid()
    found, read, denied = [], [], []
    budget = MAX_BYTES
    for pid in pids:
        if pid == me:
            continue
        for name in ("environ", "maps"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    data = f.read()
            except OSError as e:
                denied.append([pid, name, e.errno])
                continue
            read.append([pid, name])
            if token in data:
                found.append([pid, name])
        try:
            with open(f"/proc/{pid}/maps") as f:
                ranges = [line.split()[0:2] for line in f]
            fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
        except OSError as e:
            denied.append([pid, "mem", e.errno])
            continue
        hit = False
        try:
            for span, perms in ranges:
                if not perms.startswith("r") or budget <= 0:
                    continue
                lo, hi = (int(x, 16) for x in span.split("-"))
                size = min(hi - lo, budget)
                try:
                    data = os.pread(fd, size, lo)
                except OSError:
                    continue
                budget -= len(data)
                if token in data:
                    hit = True
                    break
        finally:
            os.close(fd)
        read.append([pid, "mem"])
        if hit:
            found.append([pid, "mem"])
    print(json.dumps({"self": me, "found": found, "read": read, "denied": denied}))


if __name__ == "__main__":
    main()
