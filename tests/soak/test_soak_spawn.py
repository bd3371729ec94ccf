"""Soak: thousands of sandboxes in a row leave nothing behind and do not slow down."""
from __future__ import annotations

import statistics
import time

import nsfast
from conftest import system_state

SANDBOX = dict(namespaces="user,mnt,pid,uts,ipc,net", map_root=True, mount_proc=True)


def _check_no_leak(before: dict, after: dict) -> None:
    for key in ("fds", "children", "mountinfo", "run_netns"):
        assert after[key] == before[key], key
    # other processes on the machine may make net namespaces; ours are gone
    assert after["net_namespaces"] <= before["net_namespaces"] + 2
    assert after["rss_kb"] - before["rss_kb"] < 2048, "RSS grew by 2 MB or more"


def _latency_drift(latencies: list) -> float:
    tenth = max(1, len(latencies) // 10)
    first = statistics.median(latencies[:tenth])
    last = statistics.median(latencies[-tenth:])
    return last / first


def test_spawn_soak(soak_scale, capsys):
    n = 2000 * soak_scale
    # warm-up: the first spawns fault in code and caches
    for _ in range(50):
        nsfast.spawn(["/bin/true"], **SANDBOX).wait()
    before = system_state()
    lat = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        p = nsfast.spawn(["/bin/echo", "line"], stdout=nsfast.DEVNULL, **SANDBOX)
        assert p.wait() == 0
        lat.append(time.perf_counter_ns() - t0)
    after = system_state()
    _check_no_leak(before, after)
    drift = _latency_drift(lat)
    with capsys.disabled():
        print(f"\nsoak: {n} sandboxes, median {statistics.median(lat) / 1000:.0f} us, "
              f"last 10% / first 10% = {drift:.2f}")
    assert drift < 1.3
