"""Workers of the scaling curves, each run in its own Python process.

`python -m nsfast._bench.curves WORKER JSON-ARGS` measures one curve and prints one
JSON object on stdout, after all timing is done.  A separate process keeps the
suite's own process small (the resident-memory curve grows its caller to 500 MB),
and its namespaces untouched (the netns churn and the mount-table curve unshare
in place).  Every worker verifies, outside the timed region, that the operation
happened (a namespace inode changed, a child ran), and exits non-zero if not.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time

TRUE = "/bin/true"
from nsfast.kernel import CLONE_NEWNET, CLONE_NEWNS, MS_PRIVATE, MS_REC


def _spawn_wait() -> None:
    import nsfast
    if nsfast.spawn([TRUE]).wait() != 0:
        raise RuntimeError(f"{TRUE} did not exit 0")


def _fork_exec_wait() -> None:
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(TRUE, [TRUE])
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"fork+exec of {TRUE} exited {status:#x}")


def _subprocess_wait() -> None:
    subprocess.run([TRUE], check=True)


def _timed(op) -> int:
    t0 = time.perf_counter_ns()
    op()
    return time.perf_counter_ns() - t0


def _stats(xs: list) -> dict:
    s = sorted(xs)
    return {"median": statistics.median(s), "p90": s[int(0.9 * (len(s) - 1))],
            "p99": s[int(0.99 * (len(s) - 1))], "n": len(s)}


def spawn_threads(threads: list, per_thread: int) -> dict:
    """Spawn+wait latency and throughput with T threads spawning at once."""
    _spawn_wait()
    out = {}
    for t in threads:
        lat: list = [[] for _ in range(t)]
        barrier = threading.Barrier(t + 1)

        def work(mine: list) -> None:
            barrier.wait()
            for _ in range(per_thread):
                mine.append(_timed(_spawn_wait))
        ths = [threading.Thread(target=work, args=(lat[i],)) for i in range(t)]
        for th in ths:
            th.start()
        barrier.wait()
        t0 = time.perf_counter_ns()
        for th in ths:
            th.join()
        wall = time.perf_counter_ns() - t0
        flat = [x for xs in lat for x in xs]
        if len(flat) != t * per_thread:
            raise RuntimeError(f"{t} threads made {len(flat)} spawns, not {t * per_thread}")
        out[str(t)] = {**_stats(flat), "throughput": len(flat) / (wall / 1e9)}
    return out


def _net_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def _slab_active(name: str):
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                if line.startswith(name + " "):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _mem_available_kb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def netns_churn(total: int, batch: int, drain_timeout: float) -> dict:
    """Create `total` net namespaces back to back, in batches; each unshare drops
    the previous one, whose teardown the kernel queues.  Reports latency per batch,
    the namespaces still alive (slab objects) and how long the backlog takes to drain."""
    from nsfast import _core
    base_slab = _slab_active("net_namespace")
    base_mem = _mem_available_kb()
    batches = []
    last = _net_inode()
    done = 0
    while done < total:
        lat = []
        for _ in range(min(batch, total - done)):
            t0 = time.perf_counter_ns()
            _core.unshare(CLONE_NEWNET)
            lat.append(time.perf_counter_ns() - t0)
        done += len(lat)
        now = _net_inode()
        if now == last:
            raise RuntimeError("unshare(CLONE_NEWNET) left the net namespace unchanged")
        last = now
        slab = _slab_active("net_namespace")
        batches.append({"done": done, **_stats(lat),
                        "alive": None if slab is None or base_slab is None else slab - base_slab,
                        "mem_used_mb": (base_mem - _mem_available_kb()) / 1024})
    # drained: back near the count we started from (ours is still alive, and other
    # programs on the machine may hold a few more than they did at the start)
    slack = max(3, total // 100)
    t0 = time.monotonic()
    drained = None
    while base_slab is not None and time.monotonic() - t0 < drain_timeout:
        slab = _slab_active("net_namespace")
        if slab is not None and slab - base_slab <= slack:
            drained = time.monotonic() - t0
            break
        time.sleep(0.05)
    return {"batches": batches, "drain_s": drained}


def _mount_count(under: str = "") -> int:
    """Lines of our mountinfo; with under, only the mount points below that path."""
    # bytes: a mount point need not be UTF-8
    with open("/proc/self/mountinfo", "rb") as f:
        return sum(1 for line in f if line.split()[4].startswith(os.fsencode(under)))


def mount_table(sizes: list, reps: int, scratch: str) -> dict:
    """Cost of a new mount namespace as the mount table grows.  Runs in a private
    mount namespace of its own, so every mount it adds dies with this process."""
    import nsfast
    from nsfast import _core
    _core.unshare(CLONE_NEWNS)
    _core.mount(None, b"/", None, MS_REC | MS_PRIVATE, None)
    _core.mount(b"nsfast-bench", scratch.encode(), b"tmpfs", 0, None)
    made = 0
    out = {}
    for size in sizes:
        while made < size:
            d = os.path.join(scratch, f"m{made}")
            os.mkdir(d)
            _core.mount(b"nsfast-bench", d.encode(), b"tmpfs", 0, None)
            made += 1
        mounts = _mount_count()
        unshare_lat, spawn_lat = [], []
        for _ in range(reps):
            before = os.stat("/proc/self/ns/mnt").st_ino
            unshare_lat.append(_timed(lambda: _core.unshare(CLONE_NEWNS)))
            if os.stat("/proc/self/ns/mnt").st_ino == before:
                raise RuntimeError("unshare(CLONE_NEWNS) left the mount namespace unchanged")
            spawn_lat.append(_timed(
                lambda: nsfast.spawn([TRUE], namespaces="mnt").wait()))
        # ours, counted alone: the host's table may gain or lose mounts meanwhile
        # (a bind-mounted mount namespace file, for one, is not copied by unshare)
        if _mount_count(scratch) != made + 1:
            raise RuntimeError(f"{_mount_count(scratch)} mounts under {scratch} after "
                               f"unshare, not {made + 1}")
        out[str(mounts)] = {"unshare": _stats(unshare_lat), "spawn": _stats(spawn_lat)}
    return out


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def spawn_rss(rss_mb: int, reps: int) -> dict:
    """Spawn+wait latency of nsfast, os.fork+exec and subprocess with the caller
    grown to rss_mb resident (0: as it starts), interleaved A B C A B C."""
    methods = {"nsfast.spawn": _spawn_wait, "os.fork+exec": _fork_exec_wait,
               "subprocess": _subprocess_wait}
    for op in methods.values():   # warm-up first: the imports count in the base size
        op()
    extra = max(0, math.ceil(rss_mb - _rss_mb())) if rss_mb else 0
    ballast = b"\x01" * (extra << 20)   # bytes * n writes every page: resident
    rss = _rss_mb()
    lat: dict = {k: [] for k in methods}
    for _ in range(reps):
        for k, op in methods.items():
            lat[k].append(_timed(op))
    del ballast
    return {"rss_mb": rss, **{k: _stats(v) for k, v in lat.items()}}


WORKERS = {"spawn-threads": spawn_threads, "netns-churn": netns_churn,
           "mount-table": mount_table, "spawn-rss": spawn_rss}


def run_worker(name: str, timeout: float, **kwargs) -> dict:
    """Run one worker in a fresh interpreter; its JSON result, or RuntimeError."""
    import nsfast   # already imported: this module is nsfast._bench.curves
    cmd = [sys.executable, "-m", __spec__.name, name, json.dumps(kwargs)]
    # the worker imports the nsfast this process runs, wherever the working directory is
    root = os.path.dirname(os.path.dirname(os.path.abspath(nsfast.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"curve worker {name} took more than {timeout:.0f} s") from None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"curve worker {name} failed: {last}")
    return json.loads(r.stdout)


def main(argv: list) -> int:
    name, args = argv[0], json.loads(argv[1])
    result = WORKERS[name](**args)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
