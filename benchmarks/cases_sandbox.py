"""nsfast.Sandbox with its full default policy.

sandbox-spawn: Sandbox().spawn(["/bin/true"]) and its wait, against
nsfast.spawn of the same namespaces with no policy (target: at most 1.25x)
and against bwrap given the nearest policy it has (target: at most 0.33x).

sandbox-mounts-1000: the same spawn from a mount namespace with 1,000 more
mounts, against the same from one with none more (target: at most 1.3x);
each from a thread living in its mount namespace, alike for both.

sandbox-2-threads: 20 sandboxes spawned and waited by 2 threads at once,
against the same with nsfast.spawn and no policy: the throughput.

    nsfast bench --only sandbox
"""
from __future__ import annotations

import os
import queue
import shutil
import subprocess
import tempfile
import threading

import nsfast
from nsfast import _core, mounts
from nsfast.kernel import CLONE_NEWNS, MS_PRIVATE, MS_REC
from nsfast.sandbox import NAMESPACES

from .cases_spawn import floor_for
from .harness import Case, Peer, at_most, within

TRUE = "/bin/true"
BWRAP = ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
         "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
PER_THREAD = 5


class _Boxes:
    """The Sandbox every case spawns from, made when a case starts."""
    box = None

    @classmethod
    def get(cls) -> nsfast.Sandbox:
        if cls.box is None:
            cls.box = nsfast.Sandbox()
        return cls.box


def _sandboxed() -> None:
    _Boxes.get().spawn([TRUE]).wait()


def _plain() -> None:
    nsfast.spawn([TRUE], namespaces=NAMESPACES, map_root=True).wait()


def _check() -> None:
    """The payload really runs under the policy: filtered, no capabilities,
    its own uid range, a read-only root (the witnesses: its own view)."""
    r = _Boxes.get().run(["sh", "-c", "grep -E '^(Seccomp|CapEff):' /proc/self/status; "
                          "touch /usr/.x 2>/dev/null; echo $?"])
    out = r.stdout.decode().split()
    if sorted(out) != sorted(["Seccomp:", "2", "CapEff:", "0000000000000000", "1"]):
        raise AssertionError(f"the sandbox is not confined: {out}")


def _bwrap_peer() -> Peer:
    exe = shutil.which("bwrap")
    if exe is None:
        return Peer("bwrap", None, "apt-get install bubblewrap")
    argv = [exe, *BWRAP, TRUE]
    return Peer("bwrap", lambda: subprocess.run(argv, check=True))


class _MountNamespace:
    """A thread living in a mount namespace with n tmpfs mounts more than
    this process's (which stays as it is), spawning sandboxes on request:
    a sandbox starts from its spawning thread's mount namespace.  The mount
    points are under a directory of the host's."""
    def __init__(self, n: int):
        self.top = tempfile.mkdtemp(prefix=f"nsfast-bench-mounts-{n}-")
        self.jobs: queue.Queue = queue.Queue()
        self.done: queue.Queue = queue.Queue()
        ready: queue.Queue = queue.Queue()

        def serve():
            try:
                _core.unshare(CLONE_NEWNS)   # this thread only: its fs struct goes along
                _core.mount(None, b"/", None, MS_REC | MS_PRIVATE, None)
                for i in range(n):
                    d = os.path.join(self.top, str(i))
                    os.mkdir(d)
                    mounts.tmpfs(d)
            except BaseException as e:
                ready.put(e)
                return
            ready.put(None)
            while self.jobs.get():
                try:
                    _sandboxed()
                    self.done.put(None)
                except BaseException as e:
                    self.done.put(e)
        self.thread = threading.Thread(target=serve, name=f"mounts-{n}")
        self.thread.start()
        error = ready.get()
        if error is not None:
            self.thread.join()
            shutil.rmtree(self.top, ignore_errors=True)
            raise error

    def spawn_in(self) -> None:
        self.jobs.put(True)
        error = self.done.get()
        if error is not None:
            raise error

    def close(self) -> None:
        self.jobs.put(False)
        self.thread.join()   # the namespace and its mounts go with the thread
        shutil.rmtree(self.top, ignore_errors=True)


def _threads(op) -> None:
    errors: list = []

    def run():
        try:
            for _ in range(PER_THREAD):
                op()
        except BaseException as e:
            errors.append(e)
    ts = [threading.Thread(target=run) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


def cases(cfg) -> list:
    if os.geteuid() != 0:
        return []   # the default policy's id ranges and cgroups need root
    spaces: dict = {}

    def setup_mounts():
        spaces["many"] = _MountNamespace(1000)
        spaces["few"] = _MountNamespace(0)

    def teardown_mounts():
        for s in spaces.values():
            s.close()
        spaces.clear()

    return [
        Case(name="sandbox-spawn", op=_sandboxed, floor=floor_for(NAMESPACES, True),
             peers=[Peer("spawn", _plain), _bwrap_peer()], check=_check,
             targets=[within(1.25, "spawn"), at_most(0.33, "bwrap")], samples=200,
             note="Sandbox().spawn of /bin/true and its wait, with the full default policy "
                  "(seccomp, confined root, limits, an id range of its own), against "
                  "nsfast.spawn of the same namespaces with no policy and bwrap "
                  f"{' '.join(BWRAP)}"),
        Case(name="sandbox-mounts-1000", op=lambda: spaces["many"].spawn_in(),
             floor=floor_for(NAMESPACES, True),
             peers=[Peer("0 more mounts", lambda: spaces["few"].spawn_in())], check=_check,
             setup=setup_mounts, teardown=teardown_mounts,
             targets=[within(1.3, "0 more mounts")], samples=100,
             note="a Sandbox spawn from a mount namespace with 1,000 more tmpfs mounts, "
                  "against one with none more; each from a thread that lives in its "
                  "namespace, handed the request through a queue; the floor is a spawn "
                  "of the same namespaces from this process's"),
        Case(name="sandbox-2-threads", op=lambda: _threads(_sandboxed),
             floor=floor_for(NAMESPACES, True),
             peers=[Peer("spawn", lambda: _threads(_plain))], check=_check, samples=20,
             note=f"{2 * PER_THREAD} Sandbox payloads spawned and waited by 2 threads at "
                  f"once, against the same with nsfast.spawn and no policy; per payload: "
                  f"the median / {2 * PER_THREAD}; the floor is one spawn of the same "
                  f"namespaces"),
    ]
