"""nsfast's pytest plugin (nsfast/pytest_plugin.py), used as another project's
suite would use it: pytester writes a test file, and a pytest session run
in this process (inline) loads the plugin through its pytest11 entry point.

Each inner test writes what it saw (inodes, `ip` output, names, pids) to a
witness file; the outer test checks it, and checks after the session that
everything is gone: this thread is back in its namespace, no fd of ours
holds a test's namespace, `ip netns` and `ip link` no longer show what the
fixtures made, no payload is left running.  Each kind is checked also after
an inner test that fails.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest

import nsfast
from conftest import children_of, need_tool
from test_pool import net_inodes_held

pytest_plugins = ["pytester"]

# the top of every inner test file: how it reports what it saw
PRELUDE = '''
import json, os, subprocess, threading
import pytest

def record(**seen):
    with open({witness!r}, "a") as f:
        f.write(json.dumps(seen) + "\\n")

def thread_net(tid=None):
    """The inode of a thread's net namespace (this thread's by default)."""
    tid = threading.get_native_id() if tid is None else tid
    return os.stat(f"/proc/{{os.getpid()}}/task/{{tid}}/ns/net").st_ino

def sh(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout
'''


def thread_net(tid: int | None = None) -> int:
    tid = threading.get_native_id() if tid is None else tid
    return os.stat(f"/proc/{os.getpid()}/task/{tid}/ns/net").st_ino


@pytest.fixture
def inner(pytester):
    """Run an inner test file (its source after PRELUDE) in a pytest session
    of this process; (the session's result, the records its tests wrote).
    --strict-markers: the marker must be registered by the plugin."""
    witness = str(pytester.path / "witness.jsonl")

    def run(source: str, **outcomes: int):
        pytester.makepyfile(PRELUDE.format(witness=witness) + source)
        result = pytester.runpytest_inprocess("--strict-markers", "-p", "no:cacheprovider")
        result.assert_outcomes(**outcomes)
        with open(witness) as f:
            return result, [json.loads(line) for line in f]

    return run


@pytest.fixture
def other_thread():
    """The native id of a second thread of this process, idle while the test runs."""
    started, done = threading.Event(), threading.Event()
    tid = []

    def idle():
        tid.append(threading.get_native_id())
        started.set()
        done.wait()

    t = threading.Thread(target=idle, name="idle-witness")
    t.start()
    started.wait()
    yield tid[0]
    done.set()
    t.join()


def assert_released(inode: int) -> None:
    assert inode not in net_inodes_held(), "an fd of ours still holds the netns"


def test_the_plugin_is_loaded_by_its_entry_point_and_adds_nothing_unasked(inner):
    # no autouse fixture: a test that asks for nothing gets nothing
    _, seen = inner('''
def test_plain(request):
    record(plugin=request.config.pluginmanager.hasplugin("nsfast"),
           fixtures=request.fixturenames, net=thread_net())
''', passed=1)
    assert seen == [{"plugin": True, "fixtures": ["request"], "net": thread_net()}]


def test_netns_runs_the_test_inside_a_fresh_netns_of_its_thread(inner, other_thread):
    assert threading.current_thread() is threading.main_thread()
    main_before = thread_net()
    need_tool("ip")
    _, seen = inner(f'''
def test_inside(netns):
    record(here=thread_net(), handle=netns.inode, other=thread_net({other_thread}),
           links=sh("ip", "-o", "link"))

def test_fails_inside(netns):
    record(here=thread_net())
    assert False, "the netns goes all the same"
''', passed=1, failed=1)
    inside, failed = seen
    assert inside["here"] == inside["handle"] != main_before
    assert inside["other"] == main_before, "another thread of the process moved too"
    lines = inside["links"].splitlines()
    assert len(lines) == 1 and lines[0].startswith("1: lo: <LOOPBACK,UP,LOWER_UP>")
    assert failed["here"] not in (main_before, inside["here"])
    assert thread_net() == main_before, "the test's thread did not come back"
    assert_released(inside["here"])
    assert_released(failed["here"])


def test_isolated_netns_marker_runs_only_the_call_inside(inner):
    before = thread_net()
    need_tool("ip")
    _, seen = inner('''
@pytest.fixture
def setup_net():
    return thread_net()

@pytest.mark.isolated_netns
def test_marked(setup_net):
    record(test="marked", setup=setup_net, here=thread_net(), links=sh("ip", "-o", "link"))

def test_unmarked():
    record(test="unmarked", here=thread_net())

@pytest.mark.isolated_netns
def test_marked_fails():
    record(test="marked_fails", here=thread_net())
    raise RuntimeError("the netns goes all the same")
''', passed=2, failed=1)
    by_test = {s["test"]: s for s in seen}
    marked = by_test["marked"]
    assert marked["setup"] == before, "the marker is about the call, not the fixtures"
    assert marked["here"] != before
    lines = marked["links"].splitlines()
    assert len(lines) == 1 and lines[0].startswith("1: lo: <LOOPBACK,UP,LOWER_UP>")
    assert by_test["unmarked"]["here"] == before
    assert by_test["marked_fails"]["here"] not in (before, marked["here"])
    assert thread_net() == before
    assert_released(marked["here"])
    assert_released(by_test["marked_fails"]["here"])


def ip_netns_names() -> list[str]:
    out = subprocess.run([need_tool("ip"), "netns", "list"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def test_named_netns_is_seen_by_ip_netns_and_removed(inner):
    need_tool("ip")
    _, seen = inner('''
def test_named(named_netns):
    record(name=named_netns, listed=sh("ip", "netns", "list"),
           links=sh("ip", "netns", "exec", named_netns, "ip", "-o", "link"))

def test_named_fails(named_netns):
    record(name=named_netns)
    assert False
''', passed=1, failed=1)
    named, failed = seen
    assert named["name"] != failed["name"]
    assert named["name"] in [line.split()[0] for line in named["listed"].splitlines()]
    lines = named["links"].splitlines()
    assert len(lines) == 1 and lines[0].startswith("1: lo: <LOOPBACK,UP,LOWER_UP>")
    left = ip_netns_names()
    assert named["name"] not in left and failed["name"] not in left
    assert not os.path.lexists(nsfast.netns.path_of(failed["name"]))


def test_veth_pair_links_the_test_netns_to_a_second_one(inner):
    before = thread_net()
    need_tool("ip")
    need_tool("ping")
    _, seen = inner('''
def test_pair(veth_pair, netns):
    ping = subprocess.run(["ping", "-c1", "-W5", veth_pair.peer_address], capture_output=True)
    record(here=thread_net(), netns=netns.inode, peer_netns=veth_pair.peer_netns.inode,
           addrs=sh("ip", "-o", "-4", "addr", "show", veth_pair.name), ping=ping.returncode)

def test_pair_fails(veth_pair):
    record(here=thread_net(), peer_netns=veth_pair.peer_netns.inode)
    assert False
''', passed=1, failed=1)
    pair, failed = seen
    assert pair["here"] == pair["netns"] != before
    assert pair["peer_netns"] not in (before, pair["here"])
    assert " veth0@" in pair["addrs"] or " veth0 " in pair["addrs"]
    assert "inet 10.200.0.1/30" in pair["addrs"]
    assert pair["ping"] == 0, "no traffic over the pair"
    assert thread_net() == before
    for inode in (pair["here"], pair["peer_netns"], failed["here"], failed["peer_netns"]):
        assert_released(inode)


def test_sandbox_is_a_default_sandbox_and_its_payloads_end(inner):
    _, seen = inner('''
def test_runs(sandbox):
    done = sandbox.run(["cat", "/proc/self/uid_map"])
    with sandbox.spawn(["sleep", "600"]) as p:
        record(uid_map=done.stdout.decode(), code=done.returncode,
               kinds=sorted(k for k in os.listdir("/proc/self/ns")
                            if os.stat(f"/proc/self/ns/{k}").st_ino
                            != os.stat(f"/proc/{p.pid}/ns/{k}").st_ino))

def test_leaves_a_payload_running(sandbox):
    p = sandbox.spawn(["sleep", "600"])
    record(pid=p.pid)
    assert False
''', passed=1, failed=1)
    runs, failed = seen
    inside, outside, count = runs["uid_map"].split()
    assert (inside, count) == ("0", "65536") and outside != "0", "the host's root inside"
    assert {"user", "mnt", "pid", "uts", "ipc", "cgroup", "net"} <= set(runs["kinds"])
    assert failed["pid"] not in children_of(os.getpid()), "the payload was not reaped"


def ip_link_exists(name: str) -> bool:
    return subprocess.run([need_tool("ip"), "link", "show", "dev", name],
                          capture_output=True).returncode == 0


def test_bridge_is_made_and_closed(inner):
    need_tool("ip")
    prefix = f"nsb{os.getpid():x}-"
    _, seen = inner(f'''
def ours():
    out = sh("ip", "-o", "link", "show", "type", "bridge")
    return [line.split(": ")[1].split("@")[0] for line in out.splitlines()
            if line.split(": ")[1].startswith({prefix!r})]

def test_bridge(bridge):
    record(names=ours())

def test_bridge_fails(bridge):
    record(names=ours())
    assert False
''', passed=1, failed=1)
    made = [name for s in seen for name in s["names"]]
    assert len(made) == 2 and len(set(made)) == 2, seen
    for name in made:
        assert not ip_link_exists(name), f"bridge {name} is still there"


def test_the_readme_example_suite_passes(pytester):
    need_tool("ip")
    need_tool("ping")
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## asyncio and pytest"):]
    suite = next(block for block in re.findall(r"```python\n(.*?)```", section, re.S)
                 if "def test_" in block)
    pytester.makepyfile(suite)
    pytester.runpytest_inprocess("--strict-markers", "-p", "no:cacheprovider"
                                 ).assert_outcomes(passed=5)
