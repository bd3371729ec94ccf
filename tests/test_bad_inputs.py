"""Hostile arguments to every public function: ValueError or TypeError, never
AttributeError, OverflowError, IndexError or another crash.

Each case names the hostile values that are in fact valid for that parameter
(None where it is optional, an empty kinds list, ...): those may also succeed
or meet an OSError from the kernel.  Every other value must be refused with
ValueError or TypeError before the kernel is asked.  Boolean flags are left
out: like subprocess's, they take any value's truth.

Calls that change the caller in place (setns, unshare, the mounts.* that
mount) run in a forked child inside a private mount namespace of its own."""
from __future__ import annotations

import os
import pickle
import signal

import pytest
from hypothesis import given, settings, strategies as st

import nsfast
from nsfast import Fd, Namespace, NsType, PidFd, mounts, netns


class NoAttributes:
    """An object with none of the attributes any parameter expects."""


class BadFspath:
    def __fspath__(self):
        return 5


class BadFileno:
    def fileno(self):
        return "3"


class HugeFileno:
    def fileno(self):
        return 2**64


class HugePid:
    pid = 2**64


HOSTILE = {
    "None": None, "2**64": 2**64, "-2**64": -2**64, "2**31": 2**31, "2**63": 2**63,
    "-1": -1, "0": 0, "1.5": 1.5, "nan": float("nan"), "inf": float("inf"), "True": True,
    "False": False, "''": "", "[]": [], "[[]]": [[]], "[['x']]": [["x"]], "'a\\0b'": "a\0b",
    "b'a\\0b'": b"a\0b", "b''": b"", "bytearray": bytearray(b"x"), "object()": NoAttributes(),
    "{}": {}, "{'x': 1}": {"x": 1}, "{None: None}": {None: None}, "{'net': 2**64}": {"net": 2**64},
    "[None]": [None], "[2**64]": [2**64], "[-1]": [-1], "['a\\0b']": ["a\0b"], "[1.5]": [1.5],
    "BadFspath": BadFspath(), "BadFileno": BadFileno(), "HugeFileno": HugeFileno(),
    "HugePid": HugePid(),
}

TRUE = ["/bin/true"]
NO_KINDS = {"0", "''", "[]"}          # parse to "no kinds", which some calls take
NOT_A_NAME = "nsft-bad-inputs-none"   # a valid netns name that does not exist


def _outcome(call) -> str:
    """'ok', 'VT' (ValueError/TypeError), 'OS' (OSError) or 'BAD: <exception>'."""
    try:
        result = call()
    except (ValueError, TypeError):
        return "VT"
    except OSError:
        return "OS"
    except BaseException as e:   # noqa: BLE001 - exactly what this test looks for
        return f"BAD: {type(e).__name__}: {e}"
    if isinstance(result, nsfast.Process):   # a value that was valid: the child is ours
        result.kill()
        result.wait()
        result._close_pipes()
    elif isinstance(result, (Namespace, nsfast.NetnsPool)):
        result.close()
    return "ok"


def _judge(label: str, outcomes: dict, accepted=frozenset()) -> list[str]:
    wrong = []
    for name, got in outcomes.items():
        fine = {"VT", "ok", "OS"} if name in accepted else {"VT"}
        if got not in fine:
            wrong.append(f"{label.format(v=name)}: {got}")
    return wrong


def _in_place(make_call) -> dict:
    """{value name: outcome} of make_call(value)() for every hostile value, in a
    forked child in a private mount namespace: these calls change their caller."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # pragma: no cover - the child
        try:
            os.close(r)
            nsfast.unshare("mnt")
            mounts.set_propagation("/", "private")
            data = pickle.dumps({n: _outcome(make_call(v)) for n, v in HOSTILE.items()})
            while data:
                data = data[os.write(w, data):]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    assert chunks, "the child died"
    return pickle.loads(b"".join(chunks))


def _here(make_call) -> dict:
    return {n: _outcome(make_call(v)) for n, v in HOSTILE.items()}


# ---- spawn: each option alone, with what makes spawn read it
SPAWN_CONTEXT = {
    "hostname": {"namespaces": "uts"}, "domainname": {"namespaces": "uts"},
    "uid_map": {"namespaces": "user"}, "gid_map": {"namespaces": "user"},
    "setgroups": {"namespaces": "user"}, "map_users": {"namespaces": "user"},
    "uid": {"namespaces": "user", "map_root": True},
    "gid": {"namespaces": "user", "map_root": True},
    "mounts": {"namespaces": "mnt"}, "root": {"namespaces": "mnt"},
    "mount_proc": {"namespaces": "mnt,pid"}, "propagation": {"namespaces": "mnt"},
    "time_offsets": {"namespaces": "time"},
}
# option -> the hostile values it may take (see the module's docstring)
SPAWN_ACCEPTS = {
    "executable": {"None"}, "env": {"None", "{}"}, "cwd": {"None"},
    "namespaces": {"None"} | NO_KINDS, "join": {"None", "[]", "{}"},
    "uid_map": {"None", "''", "[]"}, "gid_map": {"None", "''", "[]"},
    "map_users": {"None"}, "setgroups": {"None"}, "uid": {"None", "0"}, "gid": {"None", "0"},
    "hostname": {"None", "''", "b''"}, "domainname": {"None", "''", "b''"},
    "propagation": set(), "mounts": {"[]", "''", "b''", "{}"},
    # falsy values turn these off
    "mount_proc": {"None", "0", "False", "''", "[]", "{}", "b''", "True"},
    "root": {"None"},
    "stdin": {"None", "-1", "0"}, "stdout": {"None", "-1", "0"}, "stderr": {"None", "-1", "0"},
    "pass_fds": {"None", "[]", "{}", "bytearray"},   # bytearray: fd 120, refused by the kernel
    "pdeathsig": {"None"}, "time_offsets": {"None", "{}", "0", "''", "[]", "False", "b''"},
    "cgroup": {"None"}, "netns": {"None"}, "capabilities": {"None", "[]", "''", "{}", "b''"},
    "extra_groups": {"None", "[]", "{}", "bytearray"},
    "root_fd": {"None", "0"}, "cwd_fd": {"None", "0"},   # fd 0 is open: the kernel refuses it
    "on_created": {"None"},
}


@pytest.mark.parametrize("option", sorted(SPAWN_ACCEPTS))
def test_spawn_options(option):
    context = SPAWN_CONTEXT.get(option, {})
    outcomes = _here(lambda v: lambda: nsfast.spawn(TRUE, **context, **{option: v}))
    assert _judge(f"spawn({option}={{v}})", outcomes, SPAWN_ACCEPTS[option]) == []


def test_spawn_argv():
    wrong = _judge("spawn({v})", _here(lambda v: lambda: nsfast.spawn(v)))
    wrong += _judge("spawn([true, {v}])", _here(lambda v: lambda: nsfast.spawn([*TRUE, v])),
                    {"''", "b''"})
    assert wrong == []


# tmpfs sizes below 2**64 and mode 0 are valid
TMPFS_ACCEPTS = {"size": {"None", "2**31", "2**63"}, "mode": {"None", "0"}}


def test_mount_steps():
    mnt = {"namespaces": "mnt"}
    wrong = []
    for cls in (mounts.Proc, mounts.Sysfs, mounts.Mkdir, mounts.Tmpfs):
        wrong += _judge(f"{cls.__name__}({{v}})", _here(
            lambda v: lambda: nsfast.spawn(TRUE, mounts=[cls(v)], **mnt)))
    for label, make, accepts in (
            ("Bind({v}, /mnt)", lambda v: mounts.Bind(v, "/mnt"), set()),
            ("Bind(/tmp, {v})", lambda v: mounts.Bind("/tmp", v), set()),
            ("Tmpfs(/mnt, size={v})", lambda v: mounts.Tmpfs("/mnt", size=v),
             TMPFS_ACCEPTS["size"]),
            ("Tmpfs(/mnt, mode={v})", lambda v: mounts.Tmpfs("/mnt", mode=v),
             TMPFS_ACCEPTS["mode"])):
        wrong += _judge(label, _here(
            lambda v: lambda: nsfast.spawn(TRUE, mounts=[make(v)], **mnt)), accepts)
    assert wrong == []


# ---- handles, kinds, inspection
def test_kinds_and_handles():
    me = os.getpid()
    wrong = _judge("NsType.parse({v})", _here(lambda v: lambda: NsType.parse(v)),
                   {"None"} | NO_KINDS)
    wrong += _judge("Namespace.of({v}, net)", _here(lambda v: lambda: Namespace.of(v, "net")))
    wrong += _judge("Namespace.of(me, {v})", _here(lambda v: lambda: Namespace.of(me, v)))
    wrong += _judge("Namespace.open({v})", _here(lambda v: lambda: Namespace.open(v)))
    wrong += _judge("Namespace.open(net, {v})", _here(
        lambda v: lambda: Namespace.open("/proc/self/ns/net", v)), {"None"})
    wrong += _judge("Fd({v})", _here(lambda v: lambda: Fd(v)), {"0"})
    wrong += _judge("PidFd({v})", _here(lambda v: lambda: PidFd(v)), {"0"})
    wrong += _judge("pidfd_open({v})", _here(lambda v: lambda: os.close(nsfast.pidfd_open(v))))
    wrong += _judge("list_namespaces({v})", _here(lambda v: lambda: nsfast.list_namespaces(v)),
                    {"None"} | NO_KINDS)
    wrong += _judge("namespaces({v})", _here(lambda v: lambda: nsfast.namespaces(v)), {"None"})
    wrong += _judge("mounts.mountinfo({v})", _here(lambda v: lambda: mounts.mountinfo(v)),
                    {"None"})
    wrong += _judge("mounts.parse_mountinfo({v})", _here(
        lambda v: lambda: mounts.parse_mountinfo(v)), {"b''"})
    assert wrong == []


def test_pool():
    wrong = _judge("NetnsPool({v})", _here(lambda v: lambda: nsfast.NetnsPool(v)), {"0"})
    wrong += _judge("NetnsPool(0, setup={v})", _here(
        lambda v: lambda: nsfast.NetnsPool(0, setup=v)), {"None"})
    assert wrong == []


# ---- entering
def _entered(target, kinds=None):
    with nsfast.enter(target, kinds):
        pass


def test_enter_run_in_enter_and_exec():
    me = os.getpid()
    wrong = _judge("enter({v})", _here(lambda v: lambda: _entered(v)))
    wrong += _judge("enter(me, {v})", _here(lambda v: lambda: _entered(me, v)))
    wrong += _judge("run_in({v}, getpid)", _here(lambda v: lambda: nsfast.run_in(v, os.getpid)))
    wrong += _judge("run_in(me, getpid, kinds={v})", _here(
        lambda v: lambda: nsfast.run_in(me, os.getpid, kinds=v)), {"None"})
    wrong += _judge("run_in(me, {v})", _here(lambda v: lambda: nsfast.run_in(me, v, kinds="uts")))
    wrong += _judge("enter_and_exec({v}, true)", _here(
        lambda v: lambda: nsfast.enter_and_exec(v, TRUE)))
    wrong += _judge("enter_and_exec(me, {v})", _here(
        lambda v: lambda: nsfast.enter_and_exec(me, v, "uts")))
    wrong += _judge("enter_and_exec(me, true, {v})", _here(
        lambda v: lambda: nsfast.enter_and_exec(me, TRUE, v)), {"None"})
    for option, accepts in (("user", {"None", "0"}), ("group", {"None", "0"}),
                            ("root", {"None", "False", "True"}),
                            ("cwd", {"None", "False", "True"})):
        wrong += _judge(f"enter_and_exec(me, true, uts, {option}={{v}})", _here(
            lambda v: lambda: nsfast.enter_and_exec(me, TRUE, "uts", **{option: v})), accepts)
    assert wrong == []


def test_setns_and_unshare_in_place():
    me = os.getpid()
    wrong = _judge("setns({v})", _in_place(lambda v: lambda: nsfast.setns(v)))
    wrong += _judge("setns({v}, net)", _in_place(lambda v: lambda: nsfast.setns(v, "net")))
    wrong += _judge("setns(me, {v})", _in_place(lambda v: lambda: nsfast.setns(me, v)),
                    {"None"})
    wrong += _judge("setns(Fd, {v})", _in_place(
        lambda v: lambda: nsfast.setns(Fd(os.open("/proc/self/ns/uts", os.O_RDONLY)), v)),
        {"None"})
    wrong += _judge("unshare({v})", _in_place(lambda v: lambda: nsfast.unshare(v)))
    assert wrong == []


def test_mounts_in_place():
    wrong = []
    for label, make, accepts in (
            ("bind({v}, /mnt)", lambda v: lambda: mounts.bind(v, "/mnt"), set()),
            ("bind(/tmp, {v})", lambda v: lambda: mounts.bind("/tmp", v), set()),
            ("tmpfs({v})", lambda v: lambda: mounts.tmpfs(v), set()),
            ("tmpfs(/mnt, size={v})", lambda v: lambda: mounts.tmpfs("/mnt", size=v),
             TMPFS_ACCEPTS["size"]),
            ("tmpfs(/mnt, mode={v})", lambda v: lambda: mounts.tmpfs("/mnt", mode=v),
             TMPFS_ACCEPTS["mode"]),
            ("mount_proc({v})", lambda v: lambda: mounts.mount_proc(v), set()),
            ("pivot_root({v})", lambda v: lambda: mounts.pivot_root(v), set()),
            ("set_propagation({v}, private)",
             lambda v: lambda: mounts.set_propagation(v, "private"), set()),
            ("set_propagation(/, {v})", lambda v: lambda: mounts.set_propagation("/", v), set()),
            ("set_propagation(/, private, method={v})",
             lambda v: lambda: mounts.set_propagation("/", "private", method=v), set())):
        wrong += _judge(label, _in_place(make), accepts)
    assert wrong == []


# ---- named network namespaces and links
@pytest.fixture
def named_netns():
    name = f"nsft-bad-{os.getpid()}"
    netns.add(name)
    try:
        yield name
    finally:
        netns.remove(name)


def test_netns_functions(named_netns):
    me = os.getpid()
    wrong = []
    for fn in (netns.add, netns.remove, netns.open, netns.pids, netns.path_of,
               netns.check_name, netns.etc_binds):
        wrong += _judge(f"netns.{fn.__name__}({{v}})", _here(lambda v: lambda: fn(v)))
    wrong += _judge("netns.attach({v}, me)", _here(lambda v: lambda: netns.attach(v, me)))
    wrong += _judge("netns.attach(name, {v})", _here(
        lambda v: lambda: netns.attach(NOT_A_NAME, v)))
    wrong += _judge("netns.identify({v})", _here(lambda v: lambda: netns.identify(v)), {"None"})
    wrong += _judge("netns.exec({v}, true)", _here(lambda v: lambda: netns.exec(v, TRUE)))
    wrong += _judge("netns.exec(name, {v})", _here(
        lambda v: lambda: netns.exec(named_netns, v)))
    wrong += _judge("netns.veth({v}, peer)", _here(lambda v: lambda: netns.veth(v, "nsftbadp")))
    wrong += _judge("netns.veth(v, {v})", _here(lambda v: lambda: netns.veth("nsftbadv", v)))
    for option in ("addr", "peer_addr"):
        wrong += _judge(f"netns.veth(v, p, {option}={{v}})", _here(
            lambda v: lambda: netns.veth("nsftbadv", "nsftbadp", netns=NOT_A_NAME,
                                         **{option: v})), {"None"})
    wrong += _judge("netns.add_address({v}, cidr)", _here(
        lambda v: lambda: netns.add_address(v, "10.9.9.1/24", netns=named_netns)))
    wrong += _judge("netns.add_address(lo, {v})", _here(
        lambda v: lambda: netns.add_address("lo", v, netns=named_netns)))
    wrong += _judge("netns.add_route({v})", _here(
        lambda v: lambda: netns.add_route(v, ifname="lo", netns=named_netns)))
    wrong += _judge("netns.add_route(gateway={v})", _here(
        lambda v: lambda: netns.add_route("10.8.0.0/16", gateway=v, netns=named_netns)),
        {"None"})
    wrong += _judge("netns.add_route(ifname={v})", _here(
        lambda v: lambda: netns.add_route("10.8.0.0/16", ifname=v, netns=named_netns)),
        {"None"})
    wrong += _judge("netns.loopback_up({v})", _here(lambda v: lambda: netns.loopback_up(v)),
                    {"None"})
    wrong += _judge("netns.move(dev, {v})", _here(lambda v: lambda: netns.move("nsftbadx", v)))
    wrong += _judge("netns.move({v}, name)", _here(
        lambda v: lambda: netns.move(v, named_netns)))
    wrong += _judge("netns.iproute({v})", _here(lambda v: lambda: netns.iproute(v).close()),
                    {"None"})
    assert wrong == []
    assert NOT_A_NAME not in netns.list()


# ---- anything at all, through hypothesis
ANYTHING = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=3),
    max_leaves=6)


@settings(max_examples=200, deadline=None)
@given(ANYTHING)
def test_kinds_take_anything(value):
    for call in (lambda: NsType.parse(value), lambda: Namespace.of(os.getpid(), value),
                 lambda: nsfast.list_namespaces(value)):
        assert _outcome(call) in ("ok", "VT", "OS")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(SPAWN_ACCEPTS)), ANYTHING)
def test_spawn_takes_anything(option, value):
    context = SPAWN_CONTEXT.get(option, {})
    if option == "pdeathsig" and value == signal.SIGKILL:
        return
    assert _outcome(lambda: nsfast.spawn(TRUE, **context, **{option: value})) in \
        ("ok", "VT", "OS")
