"""The suite's scaling curves, and the plain spawn case that anchors them.

curves(cfg) returns the four curves of issue 7; each runs its measurement in a
worker process (benchmarks/curves.py).  cases(cfg) returns the base point of the
resident-memory curve measured the ordinary way, against its C floor.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading

import nsfast
from nsfast import _core

from . import curves as w
from .harness import Case, Config, Curve, Floor, Peer


def check_spawn_execs() -> None:
    """The spawned program really runs: true exits 0 and false exits 1, and a
    sample child's pid shows up in /proc while it lives."""
    if nsfast.spawn([w.TRUE]).wait() != 0 or nsfast.spawn([shutil.which("false")]).wait() != 1:
        raise AssertionError("nsfast.spawn did not run the program")
    with nsfast.spawn(["sleep", "5"]) as p:
        if not os.path.exists(f"/proc/{p.pid}/ns/net"):
            raise AssertionError("the spawned child is not a live process")


def check_netns_unshare() -> None:
    """unshare(CLONE_NEWNET) on a throwaway thread gives that thread a new net
    namespace inode (the thread, and its namespace, then go away)."""
    seen: dict = {}

    def body() -> None:
        seen["before"] = w._net_inode()
        _core.unshare(w.CLONE_NEWNET)
        seen["after"] = w._net_inode()
    t = threading.Thread(target=body)
    t.start()
    t.join()
    if seen.get("after") in (None, seen.get("before")):
        raise AssertionError("unshare(CLONE_NEWNET) did not give the thread a new net namespace")


def check_mnt_spawn() -> None:
    """A child spawned with namespaces='mnt' has another mount namespace inode."""
    with nsfast.spawn(["sleep", "5"], namespaces="mnt") as p:
        if os.stat(f"/proc/{p.pid}/ns/mnt").st_ino == os.stat("/proc/self/ns/mnt").st_ino:
            raise AssertionError("the child shares the caller's mount namespace")


def _points(rows: dict, field: str, x_of=float) -> list:
    return [{"x": x_of(k), "y": v[field]["median"] if field else v["median"],
             "p90": v[field]["p90"] if field else v["p90"]} for k, v in rows.items()]


def spawn_threads_curve(cfg: Config) -> list:
    per = 10 if cfg.quick else 200
    rows = w.run_worker("spawn-threads", 120 if cfg.quick else 900,
                        threads=[1, 2, 4, 8], per_thread=per)
    lat = [{"x": int(k), "y": v["median"], "p90": v["p90"], "p99": v["p99"]}
           for k, v in rows.items()]
    thr = [{"x": int(k), "y": v["throughput"]} for k, v in rows.items()]
    return [{"y_label": "spawn+wait latency (ns)",
             "series": [{"label": "nsfast.spawn(['/bin/true'])", "points": lat}]},
            {"y_label": "throughput (spawns/s)",
             "series": [{"label": "nsfast.spawn(['/bin/true'])", "points": thr}]}]


def netns_churn_curve(cfg: Config) -> list:
    total, batch = (1000, 100) if cfg.quick else (10_000, 500)
    r = w.run_worker("netns-churn", 120 if cfg.quick else 1800,
                     total=total, batch=batch, drain_timeout=5 if cfg.quick else 120)
    b = r["batches"]
    panels = [{"y_label": "unshare(CLONE_NEWNET) latency (ns)",
               "series": [{"label": "median of the batch",
                           "points": [{"x": x["done"], "y": x["median"], "p90": x["p90"],
                                       "p99": x["p99"]} for x in b]}]}]
    if b and b[0]["alive"] is not None:
        panels.append({"y_label": "namespaces awaiting teardown",
                       "series": [{"label": "net_namespace slab objects",
                                   "points": [{"x": x["done"], "y": x["alive"]} for x in b]}]})
    panels.append({"y_label": "memory in use (MB)",
                   "series": [{"label": "MemAvailable drop",
                               "points": [{"x": x["done"], "y": x["mem_used_mb"]} for x in b]}]})
    panels[0]["drain_s"] = r["drain_s"]
    return panels


def mount_table_curve(cfg: Config) -> list:
    sizes = [0, 100, 500] if cfg.quick else [0, 100, 500, 1000, 2000, 5000]
    scratch = tempfile.mkdtemp(prefix=f"nsfast-bench-mnt-{os.getpid()}-")
    try:
        rows = w.run_worker("mount-table", 120 if cfg.quick else 1200,
                            sizes=sizes, reps=10 if cfg.quick else 100, scratch=scratch)
    finally:
        os.rmdir(scratch)
    return [{"y_label": "new mount namespace (ns)",
             "series": [{"label": "unshare(CLONE_NEWNS)", "points": _points(rows, "unshare", int)},
                        {"label": "nsfast.spawn(namespaces='mnt')+wait",
                         "points": _points(rows, "spawn", int)}]}]


def spawn_rss_curve(cfg: Config) -> list:
    reps = 10 if cfg.quick else 200
    rows = [w.run_worker("spawn-rss", 120 if cfg.quick else 900, rss_mb=mb, reps=reps)
            for mb in (0, 50, 500)]   # as started, a 50 MB and a 500 MB Python process
    series = []
    for method in ("nsfast.spawn", "os.fork+exec", "subprocess"):
        series.append({"label": method, "points": [
            {"x": r["rss_mb"], "y": r[method]["median"], "p90": r[method]["p90"]} for r in rows]})
    return [{"y_label": "spawn+wait latency (ns)", "series": series}]


def curves(cfg: Config) -> list:
    return [
        Curve("curve/spawn-threads", "spawn latency and throughput vs concurrent threads",
              "spawning threads", spawn_threads_curve, check_spawn_execs),
        Curve("curve/netns-churn", "net namespace creation over consecutive creations",
              "namespaces created", netns_churn_curve, check_netns_unshare,
              note="each unshare drops the previous namespace onto the kernel's cleanup queue"),
        Curve("curve/mount-table", "new mount namespace cost vs mount-table size",
              "mounts in the table", mount_table_curve, check_mnt_spawn),
        Curve("curve/spawn-rss", "spawn latency vs the caller's resident memory",
              "caller RSS (MB)", spawn_rss_curve, check_spawn_execs,
              note="os.fork copies the page tables; nsfast's CLONE_VM path and "
                   "subprocess's vfork do not"),
    ]


def cases(cfg: Config) -> list:
    return [Case(
        "curves/spawn-true", w._spawn_wait,
        floor=Floor("floor_curves.c", [w.TRUE], served=True),   # no target rides on it
        peers=[Peer("os.fork+exec", w._fork_exec_wait), Peer("subprocess", w._subprocess_wait)],
        check=check_spawn_execs, area="curves",
        note="spawn+exec+wait of /bin/true; the base point of curve/spawn-rss")]
