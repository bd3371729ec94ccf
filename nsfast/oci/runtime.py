"""The runtime's Python commands: create, run, exec, features, and the
hooks the C commands hand over.  state, start, kill, delete, ps, pause and
resume are C (csrc/cli_oci.c, run by the launcher without Python); the
commands here that need one of them, or a container's status, call the
launcher (launcher()).  create and exec are C too for what C handles
(csrc/cli_oci_create.c, cli_oci_exec.c); these are their reference, tested
side by side with them, and run the rest (hooks, user namespaces, devices,
sysctls, exec's ARGS form) and every refusal.

create spawns the container through nsfast.spawn (nsfast/oci/config.py
turns config.json into its options) with hold=: the child makes its
namespaces, mounts, ids and capabilities, says so on a pipe, and waits on
exec.fifo, before its seccomp filter and exec.  create then records the
state and exits; the child, no longer anyone's child, is adopted by the
caller's subreaper (conmon, containerd's shim), as runc's is.  start writes
one byte into the fifo and the child execs.
"""
from __future__ import annotations

import os
import signal
import socket
import threading
from typing import Optional

from . import cgroup, config as _config
from .state import Container, OciError, start_time, timestamp


def _write_pid_file(path: Optional[str], pid: int) -> None:
    """The pid file, written whole and renamed into place (conmon and the
    shim read it as soon as the command returns)."""
    if not path:
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def _send_console(socket_path: str, master: int) -> None:
    """The pty's master to the console socket, over SCM_RIGHTS, as runc sends it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(socket_path)
        except OSError as e:
            raise OciError(f"--console-socket {socket_path}: {e.strerror}") from None
        socket.send_fds(s, [b"/dev/ptmx"], [master])


def _terminal(opts: dict, console_socket: Optional[str], opened: list) -> int:
    """process.terminal: a new pty, both ends CLOEXEC and in opened (the
    spawn passes the slave as std fds, which the child dup2's), the slave
    the new session's controlling terminal.  Returns the master, for
    --console-socket."""
    if not console_socket:
        raise OciError("process.terminal needs --console-socket")
    master, slave = os.openpty()
    for fd in (master, slave):
        os.set_inheritable(fd, False)
    opened.extend((master, slave))
    opts.update(stdin=slave, stdout=slave, stderr=slave, new_session=True,
                controlling_tty=True)
    return master


class _Held:
    """A spawn on a thread that returns once the child holds before exec.

    The child's ready byte comes over a unix socket whose reading end has
    SO_PASSCRED: the kernel adds the writer's pid, as seen from here, which
    is the pid of the process that will exec, also when the spawn forked
    once more to enter a pid namespace (its pid is 1 inside)."""

    def __init__(self, argv: list, opts: dict, on_created) -> None:
        here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        here.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.ready_sock = here
        self.ready_w = there.detach()
        self.held_pid = 0
        self.result: dict = {}
        self._lock = threading.Lock()
        self._on_created = on_created
        self.thread = threading.Thread(target=self._run, args=(argv, opts), daemon=True)

    def _close_ready(self) -> None:
        with self._lock:
            if self.ready_w >= 0:
                os.close(self.ready_w)
                self.ready_w = -1

    def _created(self, pid: int) -> None:
        self._on_created(pid)
        self._close_ready()   # the child's copy alone now: its death is EOF

    def _run(self, argv: list, opts: dict) -> None:
        import nsfast
        try:
            self.result["process"] = nsfast.spawn(argv, on_created=self._created, **opts)
        except BaseException as e:
            self.result["error"] = e
        finally:
            self._close_ready()

    def _ready(self) -> bool:
        """The child's next ready byte (its pid in held_pid); False at EOF."""
        import struct
        got, anc, _, _ = self.ready_sock.recvmsg(1, socket.CMSG_SPACE(12))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                self.held_pid = struct.unpack("iII", data[:12])[0]
        return got == b"r"

    def wait_held(self, before_root=None) -> None:
        """Start the child and wait until it holds; raise its error.  With
        before_root (the child was given hold_before_root), it first holds
        after its mounts: before_root(pid) runs then and releases it."""
        self.thread.start()
        try:
            ok = self._ready()
            if ok and before_root is not None:
                before_root(self.held_pid)
                ok = self._ready()
        finally:
            self.ready_sock.close()
        if not ok:
            self.thread.join()
            err = self.result.get("error")
            if err is None:
                raise OciError("the container process exited before it was set up")
            if isinstance(err, OciError):
                raise err
            raise OciError(f"creating the container: {err}") from None


def create(root: str, container_id: str, bundle: str, pid_file: Optional[str] = None,
           console_socket: Optional[str] = None) -> "_Held":
    """Create the container and leave it held on exec.fifo.  Returns the
    _Held spawn (run waits on its Process)."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    c = Container(root, container_id)
    try:
        os.mkdir(c.dir, 0o700)
    except FileExistsError:
        raise OciError(f"container with id {container_id!r} exists already") from None
    bundle = os.path.realpath(bundle)
    opened: list = []
    c.lock()
    try:
        public = {"bundle": bundle, "rootfs": "", "created": timestamp(), "owner": "",
                  "annotations": {}}
        c.save(public)
        c.save_facts()
        conf = _config.load(bundle)
        opts, setup = _config.spawn_options(bundle, conf)
        public.update(rootfs=setup.rootfs, annotations=conf.get("annotations") or {})
        c.save(public)
        cg_path = setup.cgroups_path or f"/nsfast-runtime/{container_id}"
        made: list = []
        with cgroup.Parents(root) as parents:
            dirs = cgroup.make(cg_path, setup.resources, made)
            parents.add(made)
        c.save_facts(cgroups=dirs)
        from .config import mount_steps
        spawn_mounts = mount_steps(conf, setup.rootfs, "/" + cg_path.strip("/"))
        os.mkfifo(c.fifo, 0o600)
        go = os.open(c.fifo, os.O_RDWR | os.O_CLOEXEC)
        opened.append(go)
        master = _terminal(opts, console_socket, opened) if setup.terminal else -1
        argv = opts.pop("argv")
        opts["mounts"] = [_Steps(spawn_mounts)]

        def on_created(pid: int) -> None:
            cgroup.attach(dirs, pid)
            if setup.rlimits:
                import resource
                for res, soft, hard in setup.rlimits:
                    resource.prlimit(pid, res, (soft, hard))
            if setup.oom_score_adj is not None:
                with open(f"/proc/{pid}/oom_score_adj", "w") as f:
                    f.write(str(setup.oom_score_adj))
            if setup.sysctl:
                _sysctls(pid, setup.sysctl)
            if setup.hooks.get("prestart") or setup.hooks.get("createRuntime"):
                from . import hooks as _hooks
                _hooks.run(setup.hooks, ("prestart", "createRuntime"),
                           _hook_state(c, public, "created", pid))

        held = _Held(argv, opts, on_created)
        opts["hold"] = (held.ready_w, go)
        before_root = None
        if setup.hooks.get("createContainer"):
            # after the mounts, before pivot_root, in the container's
            # namespaces: the child holds there once more
            root_r, root_w = os.pipe2(os.O_CLOEXEC)
            opened.extend((root_r, root_w))
            opts["hold_before_root"] = (held.ready_w, root_r)

            def before_root(pid: int) -> None:
                from . import hooks as _hooks
                # it waits for our byte: this pid is surely the child's
                pidfd = os.pidfd_open(pid)
                try:
                    _hooks.run_inside(setup.hooks, pid, _hook_state(c, public, "created", pid),
                                      "createContainer")
                except BaseException:
                    # not an EOF on root_r: the child's fds, our lock's among
                    # them, are still copies of ours until its fds step
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    raise
                finally:
                    os.close(pidfd)
                os.write(root_w, b"g")
        held.wait_held(before_root)
        pid = held.held_pid
        c.save_facts(pid, start_time(pid), dirs, setup.hooks)
        _write_pid_file(pid_file, pid)
        if master >= 0:
            _send_console(console_socket, master)
        c.unlock()
        return held
    except BaseException:
        # delete --force (C) kills what the cgroups hold and removes them,
        # the parents no container uses, and the directory
        c.unlock()
        launcher(root, "delete", "--force", container_id, check=False)
        raise
    finally:
        for fd in opened:
            os.close(fd)


def launcher(root: str, *args: str, check: bool = True) -> str:
    """Run a C command of nsfast-runtime (state, start, delete, ...) on the
    state root; its output.  OciError with its one-line error when it fails."""
    import subprocess
    from ..cli import LAUNCHER
    done = subprocess.run([LAUNCHER, "oci", "--root", root, *args], capture_output=True,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0 and check:
        message = done.stderr.decode(errors="replace").strip()
        raise OciError(message.removeprefix("nsfast-runtime: ") or
                       f"{args[0]}: exit status {done.returncode}")
    return done.stdout.decode()


def status_of(root: str, container_id: str) -> str:
    """The container's status, as the C `state` says it."""
    import json
    return json.loads(launcher(root, "state", container_id))["status"]


class _Steps:
    """Mount steps already in the child's form, as spawn(mounts=) takes
    objects with as_steps()."""

    def __init__(self, steps: list) -> None:
        self.steps = steps

    def as_steps(self) -> list:
        return self.steps


def _hook_state(c: Container, public: dict, st: str, pid: int) -> dict:
    return {"ociVersion": "1.0.2", "id": c.id, "status": st, "pid": pid,
            "bundle": public.get("bundle", ""), "annotations": public.get("annotations", {})}


def _sysctls(pid: int, values: dict) -> None:
    """Write sysctls from a thread inside the container's net and ipc
    namespaces: /proc/sys shows the writer's namespaces."""
    import nsfast
    errors: list = []

    def write() -> None:
        try:
            with nsfast.enter(pid, "net,ipc"):
                for key, value in values.items():
                    with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                        f.write(value)
        except BaseException as e:
            errors.append(e)
    t = threading.Thread(target=write)
    t.start()
    t.join()
    if errors:
        raise OciError(f"linux.sysctl: {errors[0]}")


def run_hooks(root: str, container_id: str, kind: str) -> None:
    """The hooks of one kind that a C command hands over (`nsfast oci hooks
    KIND ID`): startContainer inside the container, before start releases
    it (a failure fails start); poststart and poststop, whose failures are
    ignored, as the spec asks."""
    from . import hooks as _hooks
    c = Container(root, container_id)
    hooks, public, pid = c.hooks(), c.load(), c.facts()["pid"]
    if kind == "startContainer":
        _hooks.run_inside(hooks, pid, _hook_state(c, public, "created", pid))
    elif kind == "poststart":
        _hooks.run(hooks, ("poststart",), _hook_state(c, public, "running", pid), fatal=False)
    elif kind == "poststop":
        _hooks.run(hooks, ("poststop",), _hook_state(c, public, "stopped", 0), fatal=False)
    else:
        raise OciError(f"hooks: unknown kind {kind!r}")


def run(root: str, container_id: str, bundle: str, pid_file: Optional[str] = None,
        console_socket: Optional[str] = None, detach: bool = False, keep: bool = False) -> int:
    """create + start; without detach, wait for the container and delete it
    (unless keep); its exit status is the command's."""
    held = create(root, container_id, bundle, pid_file, console_socket)
    launcher(root, "start", container_id)
    if detach:
        return 0
    held.thread.join()
    proc = held.result.get("process")
    code = 255
    if proc is not None:
        rc = proc.wait()
        code = 128 - rc if rc < 0 else rc
    else:
        # exec failed after start: the child reported it on the spawn's pipe
        err = held.result.get("error")
        if err is not None:
            print(f"nsfast-runtime: {err}", file=__import__("sys").stderr)
        code = 127
    if not keep:
        launcher(root, "delete", "--force", container_id)
    return code


def exec_(root: str, container_id: str, process: dict, pid_file: Optional[str] = None,
          console_socket: Optional[str] = None, detach: bool = False) -> int:
    """Run one more process in the container's namespaces and cgroup, with
    the container's seccomp filter and the process's own ids and capabilities."""
    s = status_of(root, container_id)
    if s != "running":
        raise OciError(f"cannot exec in a container that is {s}")
    c = Container(root, container_id)
    public, facts = c.load(), c.facts()
    opts = _config.process_options(process)
    conf = _config.load(public["bundle"])
    linux = conf.get("linux") or {}
    opts.update(_config.seccomp_options(linux))
    _config.check_program(public["rootfs"], conf, opts["argv"][0], opts["env"])
    pid = facts["pid"]
    opts["join"] = pid
    opened: list = []
    master = -1
    try:
        if process.get("terminal"):
            master = _terminal(opts, console_socket, opened)
        dirs = facts["cgroups"]
        argv = opts.pop("argv")
        # held before exec until the pid file is written: the caller (conmon,
        # the shim) must know the pid before the process can end
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        opened.extend((go_r, go_w))
        held = _Held(argv, opts, lambda p: cgroup.attach(dirs, p))
        opts["hold"] = (held.ready_w, go_r)
        held.wait_held()
        _write_pid_file(pid_file, held.held_pid)
        if master >= 0:
            _send_console(console_socket, master)
        if detach:
            _release_after_exit(go_w)
        else:
            os.write(go_w, b"g")
    finally:
        for fd in opened:
            os.close(fd)
    if detach:
        return 0
    held.thread.join()
    proc = held.result.get("process")
    if proc is None:
        raise OciError(f"exec: {held.result.get('error')}")
    rc = proc.wait()
    return 128 - rc if rc < 0 else rc


def _release_after_exit(go_w: int) -> None:
    """Let a detached exec go once this command has exited.  Conmon reads
    the pid file when the runtime has exited, and loses the status of a
    process that ended before (Podman then reports 255): a small forked
    helper waits for this process's end, then writes the byte."""
    parent = os.pidfd_open(os.getpid())
    if os.fork() == 0:
        try:
            import select
            select.select([parent], [], [], 30)
            os.write(go_w, b"g")
        finally:
            os._exit(0)
    os.close(parent)


def features() -> dict:
    """What this runtime supports, in the runtime spec's features format."""
    from .config import _FLAGS, _PROPAGATION
    opts = sorted({*_FLAGS, *_PROPAGATION, "bind", "rbind"})
    return {"ociVersionMin": "1.0.0", "ociVersionMax": "1.0.2",
            "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                      "poststart", "poststop"],
            "mountOptions": opts,
            "linux": {"namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time",
                                     "user", "uts"],
                      "capabilities": sorted(_capability_names()),
                      "cgroup": {"v1": True, "v2": True, "systemd": False,
                                 "systemdUser": False},
                      "seccomp": {"enabled": True,
                                  "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO",
                                              "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                                              "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",
                                              "SCMP_ACT_TRAP", "SCMP_ACT_TRACE"],
                                  "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
                                                "SCMP_CMP_LE", "SCMP_CMP_LT",
                                                "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                                  "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64",
                                            "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64",
                                            "SCMP_ARCH_ARM"]},
                      "apparmor": {"enabled": False}, "selinux": {"enabled": False}},
            "annotations": {"io.github.nsfast.runtime": "nsfast-runtime"}}


def _capability_names() -> list:
    from ..plan import _capability_names as names
    return list(names())
