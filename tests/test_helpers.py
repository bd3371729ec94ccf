"""The test helpers themselves hold on a shared host: another process may have
a mount point or a command name that is not UTF-8 while they read /proc."""
from __future__ import annotations

import os
import sys
import textwrap

import nsfast

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)

# in a mount namespace of its own: a tmpfs on a directory named with a byte
# that is not UTF-8, a child whose command name is that byte, then the helpers
HELPERS_WITH_BAD_NAMES = textwrap.dedent("""
    import os, subprocess, sys, tempfile, time
    from nsfast import _core
    _core.mount(None, b"/", None, (1 << 18) | (1 << 14), None)   # MS_PRIVATE | MS_REC
    bad = os.path.join(tempfile.mkdtemp().encode(), b"name\\xff")
    os.mkdir(bad)
    _core.mount(b"tmpfs", bad, b"tmpfs", 0, None)
    # sh itself takes the name, then waits in a builtin (no child to outlive it)
    child = subprocess.Popen(["sh", "-c", "printf '\\\\377' > /proc/self/comm; read x"],
                             stdin=subprocess.PIPE)
    try:
        while open(f"/proc/{child.pid}/comm", "rb").read() != b"\\xff\\n":
            time.sleep(0.01)
        import conftest, test_mounts, test_netns
        state = conftest.system_state()
        assert os.fsdecode(bad) in state["mountinfo"]
        assert child.pid in conftest.children_of(os.getpid())
        test_mounts._host_mounts_we_could_change()
        test_netns.mounts_at("/run/netns")
        print("ok")
    finally:
        child.kill()
        child.wait()
        _core.umount2(bad, 2)
        os.rmdir(bad)
        os.rmdir(os.path.dirname(bad))
""")


def test_helpers_read_names_that_are_not_utf8():
    p = nsfast.spawn([sys.executable, "-c", HELPERS_WITH_BAD_NAMES], namespaces="mnt",
                     stdout=nsfast.PIPE, stderr=nsfast.STDOUT, cwd=TESTS,
                     env=dict(os.environ, PYTHONPATH=f"{TESTS}:{ROOT}"))
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0, out.decode(errors="replace")
    assert out.endswith(b"ok\n"), out
