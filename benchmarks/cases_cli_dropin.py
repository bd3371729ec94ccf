"""The drop-in commands side by side with the tools they replace, each a
whole command run as a user runs it (the installed C launcher, bin/nsfast):

    nsfast unshare -Urmpiuf --mount-proc true   vs  unshare -Urmpiuf --mount-proc true
    nsfast nsenter -t PID -a true               vs  nsenter -t PID -a true
    nsfast netns add N; netns exec N true; netns del N   vs  ip netns ...

    python -m nsfast._bench --only cli_dropin
"""
from __future__ import annotations

import os
import shutil
import subprocess

from nsfast.targets import differing_kinds
from nsfast.flags import NsType

from .cases_enter import _launcher, _Target
from .harness import Case, Floor, Peer, within

UNSHARE_FLAGS = ["-Urmpiuf", "--mount-proc"]


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True)


def _unshare_case(cfg) -> Case:
    ours, unshare = _launcher(), shutil.which("unshare")

    def check() -> None:
        # pid 1 of a new pid namespace, with a proc of its own, root inside
        out = subprocess.run([ours, "unshare", *UNSHARE_FLAGS, "sh", "-c",
                              "echo $$; cat /proc/1/comm; id -u"],
                             check=True, capture_output=True).stdout.split()
        if out != [b"1", b"sh", b"0"]:
            raise AssertionError(f"nsfast unshare {' '.join(UNSHARE_FLAGS)} did not make a "
                                 f"new pid namespace with its own proc: {out!r}")

    return Case(
        name="dropin-unshare-Urmpiuf-true", op=lambda: _run(ours, "unshare", *UNSHARE_FLAGS,
                                                             "true"),
        floor=Floor("floor_cli_dropin.c", ["unshare"], served=True),   # forks
        peers=[Peer("unshare", (lambda: _run(unshare, *UNSHARE_FLAGS, "true"))
                    if unshare else None, "apt-get install util-linux")],
        check=check, targets=[within(1.0, "unshare")], samples=60, warmup=3,
        note="nsfast unshare -Urmpiuf --mount-proc true vs util-linux unshare, the same "
             "flags: both unshare in place, fork once for the pid namespace, exec true")


def _nsenter_case(cfg) -> Case:
    target = _Target(namespaces="user,mnt,pid,ipc,uts,net", map_root=True, mount_proc=True,
                     hostname="dropin")
    ours, nsenter = _launcher(), shutil.which("nsenter")
    floor = Floor("floor_enter.c", ["exec", "(pid)", "(mask)"], served=True)   # forks

    def setup() -> None:
        target.start()
        floor.args = ["exec", str(target.pid), hex(int(differing_kinds(target.pid,
                                                                       NsType.all())))]

    def check() -> None:
        out = subprocess.run([ours, "nsenter", "-t", str(target.pid), "-a", "hostname"],
                             check=True, capture_output=True).stdout
        if out != b"dropin\n":
            raise AssertionError(f"nsfast nsenter -a did not reach the target: {out!r}")

    return Case(
        name="dropin-nsenter-all-true",
        op=lambda: _run(ours, "nsenter", "-t", str(target.pid), "-a", "true"),
        peers=[Peer("nsenter", (lambda: _run(nsenter, "-t", str(target.pid), "-a", "true"))
                    if nsenter else None, "apt-get install util-linux")],
        floor=floor, check=check, setup=setup, teardown=target.stop,
        targets=[within(1.0, "nsenter")], samples=60, warmup=3,
        note="nsfast nsenter -t PID -a true vs nsenter -t PID -a true: join six kinds in "
             "place, fork for the pid namespace, exec true")


def _netns_case(cfg) -> Case:
    ours, ip = _launcher(), shutil.which("ip")
    name = f"dropin{os.getpid()}"

    def cycle(*tool: str) -> None:
        _run(*tool, "add", name)
        _run(*tool, "exec", name, "true")
        _run(*tool, "del", name)

    def check() -> None:
        _run(ours, "netns", "add", name)
        try:
            inside = subprocess.run([ours, "netns", "exec", name, "readlink",
                                     "/proc/self/ns/net"], check=True,
                                    capture_output=True).stdout.decode().strip()
            if inside != f"net:[{os.stat(f'/run/netns/{name}').st_ino}]":
                raise AssertionError(f"nsfast netns exec did not enter {name}: {inside}")
        finally:
            _run(ours, "netns", "del", name)
        if os.path.lexists(f"/run/netns/{name}"):
            raise AssertionError(f"nsfast netns del left /run/netns/{name}")

    def teardown() -> None:   # what a failed sample (ours, ip's, the floor's) left
        for left in (name, name + "f"):
            if os.path.lexists(f"/run/netns/{left}"):
                subprocess.run([ours, "netns", "del", left])

    return Case(
        name="dropin-ipnetns-cycle", op=lambda: cycle(ours, "netns"),
        floor=Floor("floor_cli_dropin.c", ["netns", name + "f"], served=True),   # forks
        peers=[Peer("ip netns", (lambda: cycle(ip, "netns")) if ip else None,
                    "apt-get install iproute2")],
        check=check, teardown=teardown, targets=[within(1.0, "ip netns")], samples=40,
        warmup=3,
        note="three commands, netns add N, netns exec N true, netns del N, all in the C "
             "launcher, vs the same with ip netns (named so that the pyroute2 promise on "
             "*netns*add* does not take it)")


def cases(cfg) -> list:
    return [_unshare_case(cfg), _nsenter_case(cfg), _netns_case(cfg)]
