"""The spawn step `hold` (SpawnPlan(hold=(ready, go))): the child is set up,
says so on `ready`, and execs only once a byte comes on `go`; what an OCI
runtime's create and start need (nsfast/oci)."""
import os
import select
import threading

import pytest

import nsfast
from conftest import need_root


def _spawn_in_thread(argv, **options):
    """spawn() blocks until the exec: run it on a thread; (thread, box)."""
    box: dict = {}

    def run():
        try:
            box["proc"] = nsfast.spawn(argv, **options)
        except BaseException as e:
            box["error"] = e
    t = threading.Thread(target=run)
    t.start()
    return t, box


def _cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


@pytest.fixture
def pipes():
    made = [os.pipe2(os.O_CLOEXEC), os.pipe2(os.O_CLOEXEC)]
    yield made
    for pair in made:
        for fd in pair:
            try:
                os.close(fd)
            except OSError:
                pass


def test_hold_waits_until_go_then_execs(pipes, tmp_path):
    need_root()
    (ready_r, ready_w), (go_r, go_w) = pipes
    out = tmp_path / "out"
    pids = []
    t, box = _spawn_in_thread(["/bin/sh", "-c", f"echo ran > {out}"], namespaces="pid,mnt",
                              hold=(ready_w, go_r), pdeathsig=None, on_created=pids.append)
    try:
        assert os.read(ready_r, 1) == b"r"
        # set up, not yet exec'd: still the spawning interpreter's image, no output
        assert _cmdline(pids[0]) == _cmdline(os.getpid())
        assert not out.exists()
        assert t.is_alive()
        os.write(go_w, b"g")
        t.join(10)
        assert box["proc"].wait(10) == 0
        assert out.read_text() == "ran\n"
    finally:
        if t.is_alive():
            os.close(go_w)
            t.join(10)


def test_hold_fds_do_not_reach_the_program(pipes):
    need_root()
    (ready_r, ready_w), (go_r, go_w) = pipes
    t, box = _spawn_in_thread(["/bin/sh", "-c", "ls /proc/self/fd"], hold=(ready_w, go_r),
                              stdout=nsfast.PIPE, pdeathsig=None)
    assert os.read(ready_r, 1) == b"r"
    os.write(go_w, b"g")
    t.join(10)
    out, _ = box["proc"].communicate(timeout=10)
    assert sorted(out.split()) == [b"0", b"1", b"2", b"3"]   # 3: ls's own directory fd


def test_hold_end_of_file_ends_the_child(pipes):
    need_root()
    (ready_r, ready_w), (go_r, go_w) = pipes
    t, box = _spawn_in_thread(["/bin/true"], hold=(ready_w, go_r), pdeathsig=None)
    assert os.read(ready_r, 1) == b"r"
    os.close(go_w)   # the holder gives up: the child exits without exec
    t.join(10)
    assert box["proc"].wait(10) == 127


@pytest.mark.unit
def test_hold_refuses_std_fds():
    with pytest.raises(ValueError, match="above 2"):
        nsfast.SpawnPlan(["/bin/true"], hold=(-1, 0))
    with pytest.raises(TypeError):
        nsfast.SpawnPlan(["/bin/true"], hold=[5, 6])


def test_hold_before_root_waits_after_the_mounts_before_the_pivot(pipes, tmp_path):
    """hold_before_root: the child holds once its mounts are made, its root
    not yet entered (the host's paths still in its mount namespace)."""
    need_root()
    from nsfast._bench.cases_oci import busybox_rootfs
    from conftest import need_tool
    root = busybox_rootfs(str(tmp_path / "root"), need_tool("busybox"))
    os.makedirs(os.path.join(root, "mark"), exist_ok=True)
    (ready_r, ready_w), (go_r, go_w) = pipes
    pids = []
    t, box = _spawn_in_thread(["/bin/true"], namespaces="pid,mnt", root=root, pivot_root=True,
                              mounts=[nsfast.Tmpfs(os.path.join(root, "mark"))],
                              hold_before_root=(ready_w, go_r), pdeathsig=None,
                              on_created=pids.append)
    try:
        readable, _, _ = select.select([ready_r], [], [], 30)
        assert readable and os.read(ready_r, 1) == b"r", box
        # its tmpfs is mounted under the host's path of its root: not entered yet
        out = nsfast.spawn(["findmnt", "-n", "-o", "FSTYPE", os.path.join(root, "mark")],
                           join=pids[0], stdout=nsfast.PIPE, pdeathsig=None).communicate()[0]
        assert out.split() == [b"tmpfs"]
        assert t.is_alive()
        os.write(go_w, b"g")
        t.join(10)
        assert box["proc"].wait(10) == 0
    finally:
        if t.is_alive():
            os.close(go_w)
            t.join(10)


@pytest.mark.unit
def test_hold_before_root_needs_mount_steps():
    with pytest.raises(ValueError, match="hold_before_root needs mount steps"):
        nsfast.SpawnPlan(["/bin/true"], hold_before_root=(5, 6))
