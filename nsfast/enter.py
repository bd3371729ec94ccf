"""Entering namespaces: `with enter(...)` in the calling thread, run_in in a
forked child, enter_and_exec through spawn(join=...).

Namespaces are per thread for net, uts, ipc and cgroup: enter() switches the
calling thread only and switches it back on exit, so other threads never see
a change.  user, mnt, pid and time belong to the whole process; enter()
refuses them unless a single-threaded caller says allow_process_wide=True,
and run_in / spawn do that work in a child instead.
"""
from __future__ import annotations

import errno
import os
import socket
import struct
import sys
from typing import Any, Callable, Mapping, Optional

from . import _core
from .argtypes import Argv
from .errors import os_error
from .flags import _PARSED, KindsLike, NsType
from .handles import Namespace, wanted_kinds
from .process import Process
from .spawn import spawn
from .targets import (PidFd, current_inode, differing_kinds, open_joins, open_namespace,
                      own_user_ns_is as _own_user_ns_is, pid_of as _pid_of,
                      pidfd_for as _pidfd_for)

PER_THREAD = NsType(_core.PER_THREAD)  # net, uts, ipc, cgroup
PROCESS_WIDE = NsType.all() & ~PER_THREAD
# plain ints for the hot paths, where IntFlag's & is slow
_USER, _MNT, _WIDE = int(NsType.USER), int(NsType.MNT), int(PROCESS_WIDE)
_PER_THREAD, _ALL = int(PER_THREAD), int(NsType.all())

_POINTER = ("use nsfast.run_in(target, fn) or nsfast.spawn(argv, join=target), which join "
            "them in a child")


# ---------------------------------------------------------------- thread state

# Where each thread comes back to, and how many enter() blocks of each kind it
# has open, is kept by _core (csrc/thread_ns.c) and nowhere else.
_setns = _core.setns_held  # per-thread kinds only: see _core


def _here(kind: NsType) -> str:
    return f"/proc/thread-self/ns/{kind.proc_name}"


def _thread_push(kind: NsType) -> int:
    """_core.thread_push, its error naming the file it opens."""
    try:
        return _core.thread_push(kind._value_)
    except OSError as e:
        raise os_error(e.errno, _here(kind)) from None


def thread_moved(kinds: KindsLike) -> None:
    """Tell enter() that this thread changed namespaces by other means
    (os.setns, os.unshare): outside any enter() block, the namespaces it
    returns to are read again.  nsfast.setns and nsfast.unshare call this.

    uts belongs to the thread: here a worker thread moves, the caller stays.

    >>> import ctypes
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> def move_this_thread():  # os.unshare(os.CLONE_NEWUTS) from Python 3.12 on
    ...     moved = ctypes.CDLL(None).unshare(int(nsfast.NsType.UTS)) == 0
    ...     nsfast.enter.thread_moved("uts")
    ...     return moved
    >>> with ThreadPoolExecutor(1) as worker:
    ...     worker.submit(move_this_thread).result()
    True
    """
    _core.thread_forget(NsType.parse(kinds)._value_)


def thread_moved_here() -> None:
    """nsfast.setns/unshare moved this thread: outside enter() blocks, read its
    namespaces again on the next enter()."""
    _core.thread_forget(_ALL)


# ---------------------------------------------------------------- targets

_SINGLES_CACHE: dict = {}


def _singles(kinds: NsType) -> tuple:
    """kinds.kinds() as a tuple, cached (IntFlag arithmetic is slow)."""
    try:
        return _SINGLES_CACHE[kinds]
    except KeyError:
        t = _SINGLES_CACHE[kinds] = tuple(kinds.kinds())
        return t


# ---------------------------------------------------------------- enter()

def _check_process_wide(kinds: NsType, allow: bool) -> None:
    if not kinds._value_ & _WIDE:
        return
    wide = kinds & PROCESS_WIDE
    names = ",".join(k.proc_name for k in wide.kinds())
    if not allow:
        raise ValueError(f"{names} namespaces belong to the whole process, not to a thread: "
                         f"{_POINTER}; or pass allow_process_wide=True from a "
                         "single-threaded program to switch the whole process")
    if wide & NsType.USER:
        raise ValueError("a user namespace cannot be left once entered (the way back needs "
                         f"privilege in the parent namespace): {_POINTER}")
    from .watch import quiesce   # an idle wall-time watcher is ours to stop
    quiesce()
    threads = len(os.listdir("/proc/self/task"))
    if threads > 1:
        raise RuntimeError(f"cannot enter {names} namespaces: this process has {threads} "
                           f"threads and they belong to the whole process; {_POINTER}")


class enter:
    """Enter namespaces in the calling thread; leave them on exit.

    target: a pid, a Process, a path to a namespace file, a Namespace, Fd(n),
    PidFd(n), or the name of a network namespace under /run/netns.  kinds:
    which kinds (default: the kind of the file; needed for a pid).

    net, uts, ipc and cgroup switch this thread only.  user, mnt, pid and
    time switch the whole process and are refused unless the process is
    single-threaded and allow_process_wide=True (a user namespace cannot be
    left, so it is always refused: use run_in or spawn).

    The thread's own namespaces are opened once per thread and reused; after
    moving a thread with os.setns yourself, call thread_moved(kinds).

    >>> with nsfast.enter(pid, "net,uts"):      # this thread only, back on exit
    ...     socket.gethostname()
    'box'
    >>> socket.gethostname() == os.uname().nodename
    True
    """

    # _undo: None when not active; the NsType that _core.thread_enter entered
    # (the common case); else the general path's list of
    # (kind, fd back, whether that fd is ours to close)
    __slots__ = ("_target", "_kinds", "_allow", "_undo", "_dirs")
    thread_moved = staticmethod(thread_moved)  # nsfast.enter.thread_moved(kinds)

    def __init__(self, target: Any, kinds: KindsLike = None, *,
                 allow_process_wide: bool = False) -> None:
        self._target = target
        self._kinds = kinds
        self._allow = allow_process_wide
        self._undo = None
        self._dirs = None

    def __enter__(self) -> "enter":
        if self._undo is not None:
            raise RuntimeError("this enter() is already active; nest a new enter() instead")
        target = self._target
        # The common case in few steps: a handle of a per-thread kind, outside
        # any enter() of that kind in this thread.  It only has to succeed:
        # on any failure the general path below runs and says what is wrong.
        if type(target) is Namespace:
            kind = target.kind
            kinds = self._kinds
            if kinds is None or kinds is kind or type(kinds) is str and _PARSED.get(kinds) is kind:
                try:
                    if _core.thread_enter(target.fd, kind):   # a per-thread kind, not nested
                        self._undo = kind
                        return self
                except OSError:
                    pass
        return self._enter_slow()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        undo = self._undo
        if type(undo) is NsType:
            self._undo = None
            try:
                _core.thread_leave(undo)
            except OSError as e:
                raise _restore_error(e.errno, undo) from None
            return None
        self._restore()
        return None

    def _enter_slow(self) -> "enter":
        target = self._target
        kinds = NsType.parse(self._kinds) if self._kinds is not None else None
        pid = _pid_of(target)
        if pid is None and not isinstance(target, PidFd):
            ns = open_namespace(target, kinds or None)
            try:
                _check_process_wide(ns.kind, self._allow)
                self._save_dirs(ns.kind)
                self._undo = []
                self._switch(ns.kind, ns.fileno(), ns.path)
            finally:
                ns.close()
            return self
        if not kinds:
            raise ValueError("say which kinds to enter of a process, e.g. kinds='net,uts'")
        if pid is not None and kinds._value_ & _USER and _own_user_ns_is(pid):
            kinds &= ~NsType.USER  # already in it; joining it again is EINVAL
        value = kinds._value_
        if value & _WIDE:
            _check_process_wide(kinds, self._allow)
        pidfd, owned = _pidfd_for(target, pid)
        try:
            if value & _MNT:
                self._save_dirs(kinds)
            self._undo = []
            self._switch(kinds, pidfd, None, pidfd=True, pid=pid)
        finally:
            if owned:
                os.close(pidfd)
        return self

    def _switch(self, kinds: NsType, fd: int, path: Optional[str], pidfd: bool = False,
                pid: Optional[int] = None) -> None:
        """setns into fd for kinds, first noting how to come back (path, or
        the pid's /proc/PID/ns, names the target in an error)."""
        undo = self._undo
        for k in (_singles(kinds) if pidfd else (kinds,)):
            back = _thread_push(k)
            owned = back < 0
            if owned:
                # inside an outer enter(): come back to where that one put us
                try:
                    back = os.open(_here(k), os.O_RDONLY | os.O_CLOEXEC)
                except BaseException:
                    _core.thread_pop(k._value_)
                    raise
            undo.append((k, back, owned))
        try:
            _core.setns(fd, kinds._value_)
        except OSError as e:
            self._restore(skip_setns=True)
            if pid:
                path = f"/proc/{pid}/ns"
            raise _setns_error(e.errno, kinds, path) from None

    def _save_dirs(self, kinds: NsType) -> None:
        # joining a mount namespace moves root and cwd to its root
        if kinds._value_ & _MNT:
            self._dirs = (os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC),
                          os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))

    def _restore(self, skip_setns: bool = False) -> None:
        undo, self._undo = self._undo or [], None
        failed = None
        for k, back, owned in reversed(undo):
            if not skip_setns and failed is None:
                try:
                    (_setns if k._value_ & _PER_THREAD else _core.setns)(back, k._value_)
                except OSError as e:
                    failed = (k, e.errno)
            if owned:
                os.close(back)
            _core.thread_pop(k._value_)
        if self._dirs is not None:
            self._restore_dirs()
        if failed is not None:
            raise _restore_error(failed[1], failed[0])

    def _restore_dirs(self) -> None:
        dirs = self._dirs
        if dirs is None:
            return
        root, cwd = dirs
        self._dirs = None
        try:
            os.fchdir(root)
            os.chroot(".")
            os.fchdir(cwd)
        finally:
            os.close(root)
            os.close(cwd)


def _restore_error(err: int, kind: NsType) -> OSError:
    return os_error(err, None, "this thread is still inside the entered namespace",
                    what=f"setns back into the original {kind.proc_name} namespace")


def _setns_error(err: int, kinds: NsType, path: Optional[str]) -> OSError:
    names = ",".join(k.proc_name for k in kinds.kinds())
    hint = None
    if err == errno.EPERM:
        hint = "needs CAP_SYS_ADMIN in the namespace's owning user namespace"
    elif err == errno.EINVAL and kinds & (NsType.MNT | NsType.USER):
        hint = "needs a single-threaded caller with an unshared fs struct"
    elif err == errno.EUSERS:
        hint = "a time namespace can only be joined by a single-threaded process"
    return os_error(err, path, hint, what=f"setns({names})")


# ---------------------------------------------------------------- run_in()

# modules only the run_in child uses, bound by _child_imports() before its
# first fork (an import after the join would read the target's files); not
# imported with nsfast, to keep them off the nsfast command's start-up
fcntl: Any = None
pickle: Any = None
termios: Any = None
traceback: Any = None


class RemoteTraceback(Exception):
    """The traceback of an exception raised by run_in's callable, as text."""

    def __str__(self) -> str:
        return self.args[0]


def _join_plan(target: Any, kinds: KindsLike) -> tuple[list, list, bool, NsType]:
    """(fds, kinds, use_pidfd, joined) for _core.join; fds are the caller's to close."""
    with open_joins(target, kinds) as joins:
        fds = [os.dup(fd) for fd in joins.fds]
        return fds, joins.kinds, joins.pidfd, joins.joined


def _become_root_inside() -> None:
    """After joining a user namespace: uid and gid 0 where 0 is mapped, as
    nsenter does.  Tried, not looked up in /proc/self/*_map: the /proc here
    may be the target's, which does not show this process."""
    try:
        os.setgroups([])
    except OSError:
        pass  # setgroups may be denied in the namespace; the groups were cleared before
    for set_id in (os.setgid, os.setuid):
        try:
            set_id(0)
        except OSError as e:
            if e.errno != errno.EINVAL:  # EINVAL: 0 is not mapped there
                raise


# the title the child shows in /proc/PID/cmdline instead of the caller's command line
_TITLE = b"nsfast run_in"


def _hide_command_line() -> None:
    """Overwrite the command line this fork inherited from the caller:
    /proc/PID/cmdline is readable by anyone who sees the process, dumpable
    or not.  Read before any join, written through /proc/self/mem (a process
    may always write its own memory).  Best effort: where /proc/self is not
    this process's, the line stays as it was."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # fields 48, 49: arg_start, arg_end
        fd = os.open("/proc/self/mem", os.O_WRONLY | os.O_CLOEXEC)
        try:
            # the last byte stays NUL: a non-NUL one makes the kernel read on
            # into the environment (the setproctitle convention)
            os.pwrite(fd, _TITLE[:end - start - 1].ljust(end - start, b"\0"), start)
        finally:
            os.close(fd)
    except (OSError, ValueError, IndexError):
        pass


def _drop_controlling_terminal() -> None:
    """Give up the caller's controlling terminal (TIOCNOTTY), for this child
    and all it starts: a process of the target that shared it could type
    into the caller's terminal with TIOCSTI.  Still in the caller's process
    group, so ^C reaches fn as before.  Opened before any join (/dev/tty of
    the target's /dev is another file)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return  # no controlling terminal
    try:
        fcntl.ioctl(fd, termios.TIOCNOTTY)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---- the result channel
#
# An AF_UNIX socketpair: unlike a pipe, it cannot be opened again through
# /proc/PID/fd/N.  The caller's end has SO_PASSCRED, so each message names its
# sender (SCM_CREDENTIALS, a pid in the caller's pid namespace), and one
# recvmsg never mixes two senders.  What run_in's child writes:
#   b"G" + pid   the grandchild it forked for a pid or time namespace
#   b"R" + pickle  the outcome (from the child, or from that grandchild)
# Data from any other sender is refused and nothing is unpickled.
_GRANDCHILD, _RESULT = b"G", b"R"
_PID = struct.Struct("=i")
_UCRED = struct.Struct("=iII")  # struct ucred: pid, uid, gid


def _receive(sock: socket.socket) -> dict:
    """Everything written into the channel until EOF: sender pid -> [chunks]
    (None for data without credentials, which SO_PASSCRED should never give)."""
    parts: dict = {}
    space = socket.CMSG_SPACE(_UCRED.size)
    while True:
        data, ancillary, _, _ = sock.recvmsg(1 << 16, space)
        if not data:
            return parts
        sender = None
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                sender = _UCRED.unpack_from(value)[0]
        parts.setdefault(sender, []).append(data)


def _accepted(parts: dict, child: int) -> Optional[bytes]:
    """The pickled outcome, if only child and the grandchild it named wrote."""
    own = b"".join(parts.pop(child, ()))
    grandchild = None
    if own[:1] == _GRANDCHILD and len(own) >= 1 + _PID.size:
        grandchild = _PID.unpack_from(own, 1)[0]
        own = own[1 + _PID.size:]
    theirs = b"".join(parts.pop(grandchild, ())) if grandchild else b""
    if parts:
        senders = ", ".join(str(p) for p in parts)
        raise RuntimeError(f"run_in: refused the result: pid {senders} wrote into its channel, "
                           f"where only run_in's child (pid {child}) and the grandchild it "
                           "forked may; nothing was unpickled")
    if own and theirs or (own or theirs)[:1] not in (b"", _RESULT):
        raise RuntimeError("run_in: refused a malformed result; nothing was unpickled")
    return (own or theirs)[1:] or None


def _send(sock: socket.socket, payload: tuple) -> None:
    sock.sendall(_RESULT + pickle.dumps(payload))


# ---- remote tracebacks: the child sends frames, the caller reads the lines

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def _exception_chain(e: Optional[BaseException]) -> list:
    """e and its causes as data, outermost first: [(frames, lines, link)],
    frames as (file, line number, function).  No source file is read: in the
    child that would read the target's files (a FIFO there hangs the read)."""
    chain: list = []
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if e.__cause__ is not None:
            inner, link = e.__cause__, _CAUSE
        elif e.__context__ is not None and not e.__suppress_context__:
            inner, link = e.__context__, _CONTEXT
        else:
            inner, link = None, ""
        frames = [(f.f_code.co_filename, n, f.f_code.co_name)
                  for f, n in traceback.walk_tb(e.__traceback__)]
        # format_exception_only would look up the source lines of the whole
        # chain: unlink it (in the child's copy, which exits after sending)
        e.__cause__ = e.__context__ = None
        chain.append((frames, traceback.format_exception_only(type(e), e), link))
        e = inner
    return chain


def _format_chain(chain: list) -> str:
    """The text of traceback.format_exc() for a chain from _exception_chain,
    with source lines read here, from the caller's files (the child ran the
    caller's code)."""
    text = []
    for frames, lines, link in reversed(chain):
        text.append(link)
        if frames:
            text.append("Traceback (most recent call last):\n")
            text.extend(traceback.StackSummary.from_list(
                [(file, n, name, None) for file, n, name in frames]).format())
        text.extend(lines)
    return "".join(text)


def _run_child(sock: socket.socket, fds: list, kinds: list, use_pidfd: bool, joined: NsType,
               fn: Callable, args: tuple, kwargs: dict) -> int:
    """In the forked child: become unreadable to the target, join, (fork again
    for pid/time), run fn, report.  After the join nothing here reads a file
    or imports a module: the mount namespace may be the target's."""
    try:
        # before any join: the target's root must not ptrace this copy of the
        # caller nor read its /proc files (runc, CVE-2016-9962)
        _core.set_dumpable(0)
        _hide_command_line()
        _drop_controlling_terminal()
        try:
            _core.join(fds, kinds, use_pidfd, joined & NsType.USER and os.geteuid() == 0)
        except _core.JoinError as e:
            names = ",".join(k.proc_name for k in NsType(e.kind or int(joined)).kinds())
            raise os_error(e.errno, None, what=f"joining {names} namespace") from None
        if joined & NsType.USER:
            _become_root_inside()
        # a credential change sets dumpable to fs.suid_dumpable, which may be 1
        _core.set_dumpable(0)
        if joined & (NsType.PID | NsType.TIME):
            # joined pid and time namespaces apply to children only
            pid = os.fork()
            if pid:
                sock.sendall(_GRANDCHILD + _PID.pack(pid))
                return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) & 0xFF
        try:
            result = ("ok", fn(*args, **kwargs))
        except BaseException as e:
            result = ("err", e, _exception_chain(e))
        try:
            _send(sock, result)
        except Exception as e:  # the result or exception does not pickle
            what = "result" if result[0] == "ok" else "exception"
            _send(sock, ("err", RuntimeError(f"run_in: cannot send back the {what} of "
                                             f"{getattr(fn, '__qualname__', fn)!r}: {e}"),
                         result[2] if result[0] == "err" else []))
        return 0
    except BaseException as e:
        try:
            _send(sock, ("err", e, _exception_chain(e)))
        except Exception:
            return 70
        return 0


def run_in(target: Any, fn: Callable, *args: Any, kinds: KindsLike = None, **kwargs: Any) -> Any:
    """Run fn(*args, **kwargs) inside target's namespaces; return its result.

    A forked child joins the kinds (default: every kind in which target
    differs from the caller), forks once more when a pid or time namespace is
    joined, runs fn and sends back the pickled result or exception, which is
    raised here with the remote traceback (source lines read here) as its
    cause.  Works from a threaded caller: the child only joins, runs fn,
    reports and _exits.

    Against a hostile target (its root included), run_in guarantees:
    - the child is not dumpable from before its first join, so the target
      cannot ptrace it nor read its memory, environ, maps, fds or root
      through /proc; its command line (which anyone may read) no longer
      shows the caller's; it gives up the caller's controlling terminal
      (no TIOCSTI into it from anything the child starts);
    - the result comes back over a socket that cannot be reopened through
      /proc, and is unpickled only when run_in's child (or the grandchild
      it forked) wrote all of it; anything else raises RuntimeError;
    - after the join the child reads no file and imports no module (the
      mount namespace may be the target's).
    What fn itself does is not covered: modules it imports late come from
    the target's files, and programs it starts are ordinary processes of
    the target that inherit the caller's environment and stdio (pass env=
    and stdin/stdout/stderr).

    >>> nsfast.run_in(pid, socket.gethostname, kinds="uts")
    'box'
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, not {type(fn).__name__}")
    _child_imports()
    fds, join_kinds, use_pidfd, joined = _join_plan(target, kinds)
    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            sys.stdout.flush()
            sys.stderr.flush()
            child = os.fork()
            if child == 0:  # pragma: no cover - runs in the child
                code = 70
                try:
                    ours.close()
                    code = _run_child(theirs, fds, join_kinds, use_pidfd, joined, fn, args,
                                      kwargs)
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
    finally:
        for fd in fds:
            os.close(fd)
    try:
        parts = _receive(ours)
    finally:
        ours.close()
        status = os.waitpid(child, 0)[1]
    data = _accepted(parts, child)
    if data is None:
        raise ChildProcessError(f"run_in: the child died without a result "
                                f"(exit code {os.waitstatus_to_exitcode(status)})")
    outcome = pickle.loads(data)
    if outcome[0] == "ok":
        return outcome[1]
    exc = outcome[1]
    exc.__cause__ = RemoteTraceback(_format_chain(outcome[2]))
    raise exc


def _child_imports() -> None:
    """Import, here and before the fork, what the child needs: an import in
    the child after the join would run the target's copy of the module."""
    global fcntl, pickle, termios, traceback
    import fcntl
    import pickle
    import termios
    import traceback


# ---------------------------------------------------------------- enter_and_exec()

def _dir_fd(value: Any, pid: Optional[int], which: str) -> int:
    """A directory fd opened now, in the caller's mount namespace, as nsenter
    opens -r/-w before joining: True means the target's own root or cwd."""
    if value is True:
        if pid is None:
            raise ValueError(f"{which}=True (the target's {which}) needs a target pid")
        path = f"/proc/{pid}/{which}"
    else:
        path = os.fsdecode(os.fspath(value))
        if not path:
            raise ValueError(f"{which} is an empty path")
    try:
        return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise os_error(e.errno, path) from None


def _without_own_time(join: dict, joined: NsType) -> tuple[dict, NsType]:
    """Drop a time namespace that is already ours: joining it changes nothing,
    and the spawn child, which shares its memory with us, cannot join any
    time namespace (EUSERS: the kernel wants a sole user of the mm)."""
    for key in list(join):
        if NsType.parse(key) != NsType.TIME:
            continue
        with open_namespace(join[key], NsType.TIME) as ns:
            if ns.id == current_inode(NsType.TIME):
                del join[key]
                joined &= ~NsType.TIME
    return join, joined


def enter_and_exec(target: Any, argv: Argv, kinds: KindsLike = None, *,
                   user: Optional[int] = None, group: Optional[int] = None,
                   preserve_credentials: bool = False, root: Any = None, cwd: Any = None,
                   fork: bool = True, **spawn_options: Any) -> Process:
    """Run argv inside target's namespaces, as nsenter does; returns a Process.

    target: a pid (kinds default to every kind that differs, as nsenter -a),
    a namespace file or Namespace (its own kind), or a mapping kind -> target.
    After joining a user namespace the program runs as uid/gid 0 with no
    supplementary groups unless preserve_credentials; user/group set other
    ids (nsenter -S/-G).  root/cwd: a directory, or True for the target's
    own (nsenter -r/-w).  fork=False: no fork for a joined pid namespace
    (nsenter -F).  Other options go to nsfast.spawn.  No Python runs in the
    child: this is spawn(join=...).

    >>> nsfast.enter_and_exec(pid, ["hostname"], "uts", stdout=nsfast.PIPE).communicate()
    (b'box\\n', None)
    """
    if isinstance(target, Mapping):
        if kinds is not None:
            raise ValueError("give kinds either as the mapping's keys or as kinds=, not both")
        join: Any = dict(target)
        joined = NsType(0)
        for k in join:
            joined |= NsType.parse(k)
        pids = {p for p in (_pid_of(t) for t in join.values()) if p is not None}
        pid = pids.pop() if len(pids) == 1 else None
    else:
        pid = _pid_of(target)
        if pid is not None and kinds in (None, "all"):
            join, joined = target, differing_kinds(pid, NsType.all())
            if joined & NsType.USER and _own_user_ns_is(pid):
                joined &= ~NsType.USER
        elif pid is not None:
            joined = wanted_kinds(kinds)
            if joined & NsType.USER and _own_user_ns_is(pid):
                joined &= ~NsType.USER
            join = {k: target for k in joined.kinds()}
        else:
            ns = open_namespace(target, kinds)
            join, joined = [ns], ns.kind
    if isinstance(join, dict):
        join, joined = _without_own_time(join, joined)
    opened = []
    try:
        if joined & NsType.USER and not preserve_credentials:
            user = 0 if user is None else user
            group = 0 if group is None else group
        extra_groups = [] if group is not None else None
        for which, value in (("root", root), ("cwd", cwd)):
            if value is not None and value is not False:
                opened.append(_dir_fd(value, pid, which))
                spawn_options[f"{which}_fd"] = opened[-1]
        return spawn(argv, join=join, uid=user, gid=group,
                     extra_groups=extra_groups, fork_for_pid=fork, **spawn_options)
    finally:
        for fd in opened:
            os.close(fd)
        if isinstance(join, list):
            for ns in join:
                ns.close()


