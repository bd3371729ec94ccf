"""`nsfast ls` and `nsfast ps` run as a user would, against the API and lsns."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import subprocess
import time

import pytest

import nsfast
import nsfast.cli

from conftest import children_of, need, need_tool, ns_inode


def lsns(*args: str) -> str:
    need_tool("lsns")
    # errors: another process's command line need not be UTF-8
    return subprocess.run(["lsns", *args], capture_output=True, text=True, check=True,
                          errors="surrogateescape").stdout


# the flag sets compared byte for byte; {a} is a sleeper's pid, {ipc} the
# inode of a namespace that no lister is in (its processes are listed)
FLAG_SETS = [
    (), ("-l",), ("-r",), ("-n",), ("-J",), ("-t", "net"), ("-t", "user", "-T"),
    ("-o", "NS,TYPE,PATH"), ("-p", "{a}"), ("--output-all",),
    ("-J", "-l", "-t", "net"), ("-r", "-t", "net"), ("-T", "-J"), ("-Tparent", "-t", "pid"),
    ("-o", "+PPID,UID"), ("-W", "-u", "-t", "uts"), ("{ipc}",), ("-J", "{ipc}"),
    ("-l", "-o", "NS,PID,PATH,NPROCS", "{ipc}"),
]

# both listers run in a mount namespace of their own without the nsfs mounts
# the host had (lsns 2.38 lists no namespace that only a mount holds, newer
# lsns and nsfast do): one after the other, so that each counts itself in
# the namespaces they share and no other process comes or goes
SIDE_BY_SIDE = """
findmnt -rn -t nsfs -o TARGET | sort -r | while read -r m; do umount -l "$m"; done
lsns "$@" 2>&1; echo "rc=$?"; printf '\\0'
"$PYTHON" -m nsfast.cli ls "$@" 2>&1; echo "rc=$?"
"""


def _side_by_side(args, env: dict | None = None) -> tuple:
    """(lsns ARGS, nsfast ls ARGS): stdout, then rc=STATUS (stderr too for ours)."""
    need_tool("lsns")
    need_tool("findmnt")
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        SIDE_BY_SIDE, "sh", *args], capture_output=True, timeout=60,
                       env=dict(os.environ, PYTHON=sys.executable, **(env or {})))
    theirs, _, ours = r.stdout.partition(b"\0")
    # an error names the command: "lsns: ..." for "nsfast ls: ..."
    return theirs, ours.replace(b"nsfast ls: ", b"lsns: ")


def _wait_for_child_command(pid: int, cmdline: bytes) -> None:
    """Until the shell pid has forked its child and the child has exec'd:
    before that the child's command line is the shell's, and two listings
    a moment apart would differ."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for child in children_of(pid):
            try:
                with open(f"/proc/{child}/cmdline", "rb") as f:
                    if f.read() == cmdline:
                        return
            except OSError:
                pass
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not start {cmdline!r}")


@pytest.fixture
def boxed(sleeper):
    """Two sleepers sharing new net and uts namespaces."""
    a = sleeper(namespaces="net,uts")
    b = sleeper(join=a.pid)
    return a, b


@pytest.fixture
def held(sleeper):
    """Namespaces the test holds: net+uts shared by two, a user namespace, a
    pid namespace, an ipc namespace whose command line has a newline in it."""
    a = sleeper(namespaces="net,uts")
    b = sleeper(join=a.pid)
    user = sleeper(namespaces="user")
    pid = sleeper(namespaces="pid")
    ipc = sleeper(["sh", "-c", "sleep 600; :", "two\nlines"], namespaces="ipc")
    _wait_for_child_command(ipc.pid, b"sleep\x00600\x00")
    return {"a": a.pid, "b": b.pid, "user": user.pid, "pid": pid.pid,
            "ipc": ns_inode(ipc.pid, "ipc"), "ipc_pid": ipc.pid}


@pytest.mark.system   # every namespace of every process, compared
@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: " ".join(f) or "default")
def test_ls_is_lsns_byte_for_byte(held, flags):
    args = [f.format(**held) for f in flags]
    theirs, ours = _side_by_side(args)
    assert b"rc=0" in theirs, theirs
    assert ours == theirs
    # the listing shows what the test holds
    ours_held = {held[k] for k in ("a", "user", "pid", "ipc", "ipc_pid")} | {
        ns_inode(held["a"], "net"), ns_inode(held["user"], "user"), ns_inode(held["pid"], "pid")}
    assert ours_held & {int(x) for x in re.findall(rb"[0-9]+", theirs)}


@pytest.mark.system
def test_ls_under_lc_all_c_draws_ascii_and_escapes_what_is_not(held, sleeper):
    p = sleeper(["sh", "-c", "sleep 600; :", "\u00fc"], namespaces="uts")
    for flags in ((), ("-t", "uts"), ("-T", "-t", "user"), ("-r",)):
        theirs, ours = _side_by_side(flags, {"LC_ALL": "C"})
        assert ours == theirs
    theirs, _ = _side_by_side(("-t", "uts"), {"LC_ALL": "C"})
    assert b"\\xc3\\xbc" in theirs and f" {p.pid} ".encode() in theirs


ON_A_TERMINAL = """
findmnt -rn -t nsfs -o TARGET | sort -r | while read -r m; do umount -l "$m"; done
script -qec "stty cols $COLS; lsns $ARGS" /dev/null; printf '\\0'
script -qec "stty cols $COLS; $PYTHON -m nsfast.cli ls $ARGS" /dev/null
"""


@pytest.mark.system
def test_ls_on_a_terminal_cuts_the_command_as_lsns_does(held, sleeper):
    """On a terminal libsmartcols narrows COMMAND (not under -u) to fit the width."""
    need_tool("script")
    long_one = sleeper(["sh", "-c", "sleep 600; :", "x" * 100], namespaces="uts")
    _wait_for_child_command(long_one.pid, b"sleep\x00600\x00")
    for cols in (40, 80, 200):
        for flags in ("", "-u", "-t uts", "-l -o NS,COMMAND,PID", "-T"):
            r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                ON_A_TERMINAL], capture_output=True, timeout=60,
                               env=dict(os.environ, PYTHON=shlex.quote(sys.executable),
                                        COLS=str(cols), ARGS=flags))
            theirs, _, ours = r.stdout.partition(b"\0")
            assert ours == theirs, (cols, flags)
            if flags == "":   # cut on 40 columns, whole on 200
                assert (b"x" * 100 in theirs) == (cols == 200), cols


def _ls(cli, *args: str) -> str:
    return cli("ls", *args, check=True).stdout.decode(errors="surrogateescape")


def test_a_namespace_only_a_bind_mount_holds_is_listed_as_newer_lsns_lists_it(cli, tmp_path):
    """util-linux 2.39+: NPROCS 0, no PID or PATH, the owner's user, NSFS the mount."""
    name = f"nsfast-ls-{os.getpid()}"
    nsfast.netns.add(name)
    try:
        path = nsfast.netns.path_of(name)
        ino = os.stat(path).st_ino
        out = _ls(cli, "-r", "-n", "-o", "NS,TYPE,NPROCS,PID,PATH,USER,NSFS",
                  "-Q", f"NS == {ino}")
        assert out == f"{ino} net 0   root {path}\n"
        assert _ls(cli, "-n", "-o", "NS", "-t", "net", "-l").split().count(str(ino)) == 1
        # -P (util-linux 2.40): only the namespaces no process is in
        persistent = _ls(cli, "-n", "-r", "-P", "-o", "NS,NPROCS").splitlines()
        assert f"{ino} 0" in persistent and all(r.endswith(" 0") for r in persistent)
    finally:
        nsfast.netns.remove(name)
    assert str(ino) not in _ls(cli, "-n", "-o", "NS", "-t", "net")


def test_a_namespace_only_an_fd_holds_is_listed(cli, sleeper):
    """lsns/filedesc of util-linux: "net 0 root" for a namespace an open fd holds."""
    p = sleeper(namespaces="net")
    fd = os.open(f"/proc/{p.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        ino = os.fstat(fd).st_ino
        p.kill()
        p.wait()
        out = _ls(cli, "--noheadings", "--raw", "--output", "TYPE,NPROCS,USER",
                  "-Q", f"NS == {ino}")
        assert out == "net 0 root\n"
    finally:
        os.close(fd)


def test_a_namespace_file_opened_through_its_bind_mount_is_listed(cli):
    """lsns/filedesc of util-linux: the fd's link names the (removed) mount
    point, not net:[INODE]; the file system (nsfs) tells it is a namespace."""
    name = f"nsfast-ls-fd-{os.getpid()}"
    nsfast.netns.add(name)
    try:
        fd = os.open(nsfast.netns.path_of(name), os.O_RDONLY | os.O_CLOEXEC)
    finally:
        nsfast.netns.remove(name)
    try:
        ino = os.fstat(fd).st_ino
        assert not os.readlink(f"/proc/self/fd/{fd}").startswith("net:")
        out = _ls(cli, "--noheadings", "--raw", "--output", "TYPE,NPROCS,USER",
                  "-Q", f"NS == {ino}")
        assert out == "net 0 root\n"
    finally:
        os.close(fd)


def test_a_network_namespace_only_a_socket_holds_is_listed(cli, sleeper):
    """lsns/netns-from-sock of util-linux: a socket keeps its network namespace;
    newer lsns finds it (pidfd_getfd, SIOCGSKNS) and lists it with NPROCS 0."""
    import socket
    p = sleeper(namespaces="net")
    ino = ns_inode(p.pid, "net")
    with nsfast.enter(p.pid, "net"):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        p.kill()
        p.wait()
        for column, expected in (("NS", str(ino)), ("TYPE", "net"), ("NPROCS", "0"),
                                 ("PID", ""), ("USER", "root"), ("COMMAND", "")):
            out = _ls(cli, "--noheadings", "--raw", "--output", column,
                      "--filter", f"NS == {ino}")
            assert out == expected + "\n", column
    finally:
        sock.close()


def test_filter_selects_rows_as_lsns_dash_q(cli, boxed):
    a, b = boxed
    ino = ns_inode(a.pid, "uts")
    for flag in ("-Q", "--filter"):
        out = _ls(cli, "-n", "--raw", "-o", "PID", flag, f"NS == {ino} && NPROCS == 2")
        assert out == f"{min(a.pid, b.pid)}\n"
    assert _ls(cli, "-n", "-r", "-o", "TYPE", "-Q", f"NS == {ino} and TYPE == 'net'") == ""
    assert _ls(cli, "-n", "-r", "-o", "TYPE", "-Q",
               f"(NS == {ino} || NS == {ns_inode(a.pid, 'net')}) && !(TYPE =~ '^n')") == "uts\n"
    r = cli("ls", "-Q", "NS ==")
    assert r.returncode == 1 and r.stderr.count(b"\n") == 1


def test_a_dead_pid_prints_nothing_and_an_unknown_namespace_is_not_found(cli, sleeper):
    p = sleeper()
    pid = p.pid
    p.kill()
    p.wait()
    r = cli("ls", "-p", str(pid))
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")
    # -p 0 filters nothing, as in lsns
    assert str(ns_inode(os.getpid(), "uts")) in _ls(cli, "-p", "0", "-n", "-o", "NS",
                                                    "-t", "uts").split()
    r = cli("ls", "123")
    assert (r.returncode, r.stdout) == (1, b"")
    assert r.stderr == b"nsfast ls: not found namespace: 123\n"


def test_a_namespace_argument_lists_its_processes(cli, boxed):
    a, b = boxed
    out = _ls(cli, "-l", "-o", "PID,PPID,COMMAND", str(ns_inode(a.pid, "net"))).splitlines()
    assert [line.split()[0] for line in out] == ["PID", str(min(a.pid, b.pid)),
                                                str(max(a.pid, b.pid))]
    assert all(line.endswith("sleep 600") for line in out[1:])


def test_ls_tree_shows_the_user_namespace_hierarchy(cli, sleeper):
    child = sleeper(namespaces="user")
    ours, theirs = ns_inode(os.getpid(), "user"), ns_inode(child.pid, "user")
    out = cli("ls", "--tree", "-t", "user", check=True).stdout.decode().splitlines()
    ns_cells = [line.split()[0] for line in out[1:] if line.strip()]
    root_at = ns_cells.index(str(ours))
    assert any(c.endswith(f"─{theirs}") for c in ns_cells[root_at + 1:])
    tree = json.loads(cli("ls", "-J", "--tree=parent", "-t", "user", check=True).stdout.decode())
    root = [r for r in tree["namespaces"] if r["ns"] == ours][0]
    assert theirs in [c["ns"] for c in root["children"]]


def test_ps_lists_what_the_api_and_proc_say(cli, boxed, sleeper):
    a, b = boxed
    plain = sleeper()
    out = cli("ps", check=True).stdout.decode(errors="surrogateescape").splitlines()
    assert out[0].split() == ["PID", "KINDS", "COMMAND"]
    # only our processes' rows: the others come and go as the test runs
    ours = {str(p.pid) for p in (a, b, plain)}
    rows = {int(cells[0]): cells for cells in (line.split(None, 2) for line in out[1:])
            if cells[0] in ours}
    ref = nsfast.init_namespaces()
    for p in (a, b):
        witness = [k for k in ("mnt", "net", "pid", "user", "uts", "ipc", "cgroup", "time")
                   if ns_inode(p.pid, k) != ref[k]]
        assert sorted(rows[p.pid][1].split(",")) == sorted(witness) == ["net", "uts"]
        assert rows[p.pid][2] == "sleep 600"
    assert plain.pid not in rows
    api = {p.pid for p in nsfast.processes_outside_init()}
    assert {a.pid, b.pid} <= api and {a.pid, b.pid} <= set(rows)
    js = json.loads(cli("ps", "-J", check=True).stdout)["processes"]
    assert {"pid": a.pid, "kinds": ["uts", "net"], "command": "sleep 600"} in js


def test_ps_escapes_control_characters_in_a_command_as_lsns_does(cli, sleeper):
    """A command line with a newline and an escape in it stays on its row."""
    # a pid namespace: the sleep goes with sh when the fixture kills it
    p = sleeper(["sh", "-c", "sleep 600; :", "two\nlines\x1b[31m"], namespaces="uts,pid")
    out = cli("ps", "-n", check=True).stdout.decode(errors="surrogateescape")
    ours = [line for line in out.splitlines() if line.split()[:1] == [str(p.pid)]]
    assert len(ours) == 1
    theirs = lsns("-n", "-o", "PID,COMMAND", "-t", "uts").splitlines()
    [command] = [line.split(None, 1)[1] for line in theirs
                 if line.split()[:1] == [str(p.pid)]]
    assert command == "sh -c sleep 600; : two\\x0alines\\x1b[31m"
    assert ours[0].split(None, 2)[2] == command


@pytest.mark.parametrize("args", [
    ("ls", "--bogus"),
    ("ls", "-t", "bogus"),
    ("ls", "-o", "NS,NOPE"),
    ("ls", "-p", "notapid"),
    ("ls", "-p", "2147483648"),
    ("ls", "-J", "-r"),
    ("ls", "1", "-p", "1"),
    ("ls", "--tree=sideways"),
    ("ps", "--bogus"),
])
def test_bad_flags_are_one_line_and_exit_1(cli, args):
    r = cli(*args)
    assert r.returncode == 1
    err = r.stderr.decode()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"nsfast {args[0]}: ")
    assert "Traceback" not in err
    assert r.stdout == b""


def test_a_newline_in_a_command_line_stays_in_its_row(cli, sleeper):
    """A command line holding a newline (python -c with two lines) would start a
    false row that a reader takes for a pid: it shows as \\x0a, as lsns shows it."""
    p = sleeper(argv=[sys.executable, "-c", "import time\ntime.sleep(600)"], namespaces="uts")
    for args in (("ps",), ("ls", "-t", "uts", "-o", "PID,COMMAND")):
        out = cli(*args, check=True).stdout.decode().splitlines()
        # (a namespace no process is in, which another test may hold, has no PID)
        pids = [line.split()[0] for line in out[1:] if line.strip()]
        assert all(x.isdigit() for x in pids), out
        row = [line for line in out[1:] if line.split()[0] == str(p.pid)]
        assert len(row) == 1 and row[0].endswith("-c import time\\x0atime.sleep(600)")


@pytest.mark.system
def test_a_command_line_that_is_not_utf8_is_escaped_as_lsns_escapes_it(sleeper):
    """Each byte that is not UTF-8 as \\xHH in a table, as it is in -r and
    JSON, in a UTF-8 locale and in C: lsns's bytes (not U+FFFD)."""
    p = sleeper(["sh", "-c", "sleep 600; :", b"a\xffb\xc3\xbc\\x"], namespaces="uts")
    _wait_for_child_command(p.pid, b"sleep\x00600\x00")
    uts = str(ns_inode(p.pid, "uts"))
    for locale in ("C.UTF-8", "C"):
        for flags in ((uts,), ("-J", uts), ("-r", uts)):
            theirs, ours = _side_by_side(flags, {"LC_ALL": locale})
            assert b"rc=0" in theirs and b"a" in theirs, theirs
            assert ours == theirs, (locale, flags)
    theirs, _ = _side_by_side((uts,), {"LC_ALL": "C.UTF-8"})
    assert "a\\xffbü\\x5cx".encode() in theirs


@pytest.fixture
def alone(tmp_path) -> tuple:
    """The nsfast command copied where no Python stands beside it, and an
    environment that names no interpreter either: (path, env)."""
    need(os.access(nsfast.cli.LAUNCHER, os.X_OK), "the C nsfast command (pip install)")
    path = tmp_path / "nsfast"
    shutil.copy2(nsfast.cli.LAUNCHER, path)
    return str(path), dict(os.environ, NSFAST_PYTHON=str(tmp_path / "no-such-python"))


def test_ls_lists_without_python(alone, sleeper):
    """The listing is the launcher's own: no interpreter is started (issue #18)."""
    command, env = alone
    p = sleeper(namespaces="uts")
    ino = ns_inode(p.pid, "uts")
    r = subprocess.run([command, "ls", "-n", "-r", "-o", "NS,NPROCS,PID", "-t", "uts"],
                       capture_output=True, env=env, timeout=60)
    assert (r.returncode, r.stderr) == (0, b"")
    assert f"{ino} 1 {p.pid}".encode() in r.stdout.splitlines()
    r = subprocess.run([command, "ls", "-J", "-t", "uts"], capture_output=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    # another process's command line need not be UTF-8
    rows = json.loads(r.stdout.decode(errors="surrogateescape"))["namespaces"]
    assert {"ns": ino, "type": "uts", "nprocs": 1, "pid": p.pid, "user": "root",
            "command": "sleep 600"} in rows


def test_ls_execs_nothing(tmp_path):
    """strace (witness): `nsfast ls` is one execve, the command's own."""
    strace = need_tool("strace")
    need(os.access(nsfast.cli.LAUNCHER, os.X_OK), "the C nsfast command (pip install)")
    log = tmp_path / "execs"
    r = subprocess.run([strace, "-f", "-qq", "-e", "trace=execve", "-o", str(log),
                        nsfast.cli.LAUNCHER, "ls", "-J"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    execs = [line for line in log.read_text().splitlines() if "execve(" in line]
    assert len(execs) == 1 and nsfast.cli.LAUNCHER in execs[0], execs


@pytest.mark.parametrize("args,message", [
    (("--bogus",), "unrecognized option '--bogus'"),
    (("-t",), "option requires an argument -- 't'"),
    (("--no",), "option '--no' is ambiguous; possibilities: '--noheadings' '--notruncate' "
                "'--nowrap'"),
    (("--json=1",), "option '--json' doesn't allow an argument"),
    (("-t", "bogus"), "unknown namespace type: bogus"),
    (("-o", "NS,NOPE"), "unknown column: NOPE"),
    (("-o", "NS,"), "unknown column:"),
    (("-p", "notapid"), "invalid PID argument: 'notapid'"),
    (("-p", "2147483648"), "invalid PID argument: '2147483648'"),
    (("x1",), "invalid namespace argument: 'x1'"),
    (("18446744073709551616",), "invalid namespace argument: '18446744073709551616'"),
    (("-J", "-r"), "mutually exclusive arguments: --json --raw"),
    (("1", "-p", "1"), "--task is mutually exclusive with <namespace>"),
    (("--tree=sideways",), "unknown tree type: sideways"),
    (("-Q", "NS =="), "failed to parse filter: an operand is missing"),
    (("-Q", "NOPE == 1"), "failed to parse filter: unknown column: NOPE"),
    (("-Q", "(NS == 1"), "failed to parse filter: missing )"),
    (("-Q", "NS == 'x"), "failed to parse filter: unterminated string: 'x"),
    (("-Q", "NS == 1 NS"), "failed to parse filter: unexpected NS"),
    (("-Q", "NS @ 1"), "failed to parse filter: unexpected '@ 1'"),
    (("-Q", "TYPE =~ '('"), "failed to parse filter: bad regular expression: ("),
    (("123",), "not found namespace: 123"),
])
def test_a_bad_command_line_is_one_line_from_the_launcher(alone, args, message):
    """The C lister's errors: lsns's words, one line, status 1, nothing on stdout."""
    command, env = alone
    r = subprocess.run([command, "ls", *args], capture_output=True, env=env, timeout=60)
    assert (r.returncode, r.stdout) == (1, b"")
    assert r.stderr == f"nsfast ls: {message}\n".encode()
