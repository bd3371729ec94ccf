"""Threads: concurrent spawners and enter()ers never see each other's namespaces."""
from __future__ import annotations

import os
import threading

import nsfast

SPAWNERS, SPAWNS, ENTERERS, ENTERS = 8, 500, 4, 2000


def test_spawning_threads_beside_entering_threads(sleeper):
    host_net = f"net:[{os.stat('/proc/self/ns/net').st_ino}]"
    targets = [sleeper(namespaces="net") for _ in range(ENTERERS)]
    errors: list = []
    stop = threading.Event()

    def spawner(i: int) -> None:
        try:
            for n in range(SPAWNS):
                # a child inherits its spawning thread's namespaces: the host's
                p = nsfast.spawn(["readlink", "/proc/self/ns/net"], stdout=nsfast.PIPE)
                out, _ = p.communicate(timeout=30)
                if p.returncode != 0 or out.decode().strip() != host_net:
                    errors.append(f"spawner {i} spawn {n}: {out!r} rc={p.returncode}")
                    return
        except BaseException as e:  # report, never hang the test
            errors.append(f"spawner {i}: {e!r}")

    def enterer(i: int) -> None:
        want = os.stat(f"/proc/{targets[i].pid}/ns/net").st_ino
        home = os.stat("/proc/thread-self/ns/net").st_ino
        try:
            for n in range(ENTERS):
                with nsfast.enter(targets[i].pid, "net"):
                    inside = os.stat("/proc/thread-self/ns/net").st_ino
                if inside != want or os.stat("/proc/thread-self/ns/net").st_ino != home:
                    errors.append(f"enterer {i} round {n}: inside {inside} want {want}")
                    return
                if stop.is_set():
                    return
        except BaseException as e:
            errors.append(f"enterer {i}: {e!r}")

    threads = [threading.Thread(target=spawner, args=(i,)) for i in range(SPAWNERS)]
    threads += [threading.Thread(target=enterer, args=(i,)) for i in range(ENTERERS)]
    for t in threads:
        t.start()
    for t in threads[:SPAWNERS]:
        t.join()
    stop.set()
    for t in threads[SPAWNERS:]:
        t.join()
    assert not errors, errors[:5]
    # the main thread never moved
    assert f"net:[{os.stat('/proc/thread-self/ns/net').st_ino}]" == host_net
