# cython: language_level=3, boundscheck=False, wraparound=False
"""Thin layer over csrc/: converts Python values to C, calls C, raises OSError.

No policy lives here: validation, defaults and hints are in the Python
modules, which turn the plain OSError(errno) raised here into their worded
errors.  Nothing here imports an nsfast module or calls one back.
"""
import os

from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset

from nsfast.includes.csrc cimport *


cdef object _err(int err, object path=None):
    return OSError(err, os.strerror(err), path) if path is not None else OSError(err, os.strerror(err))


# CLONE_NEW* flag -> /proc/PID/ns name; the table lives in csrc/kinds.c, which
# the nsfast command reads too
KIND_NAMES = {nsf_kinds[i].flag: nsf_kinds[i].proc.decode() for i in range(NSF_KINDS)}


def unshare(int flags):
    """unshare(2) on the calling thread's task."""
    cdef int r
    with nogil:
        r = nsf_unshare(flags)
    if r < 0:
        raise _err(-r)


def setns(int fd, int nstype):
    """setns(2): fd is an nsfs file or a pidfd; nstype a CLONE_NEW* value or mask."""
    cdef int r
    with nogil:
        r = nsf_setns(fd, nstype)
    if r < 0:
        raise _err(-r)


def pidfd_open(int pid):
    """A pidfd (O_CLOEXEC by the kernel's rule) for pid."""
    cdef int r = nsf_pidfd_open(pid, 0)
    if r < 0:
        raise _err(-r)
    return r


def pidfd_send_signal(int pidfd, int sig):
    cdef int r = nsf_pidfd_send_signal(pidfd, sig)
    if r < 0:
        raise _err(-r)


def ns_get_userns(int fd):
    """NS_GET_USERNS: a new fd for the user namespace that owns fd's namespace."""
    cdef int r = nsf_ns_ioctl(fd, NS_GET_USERNS)
    if r < 0:
        raise _err(-r)
    return r


def ns_get_parent(int fd):
    """NS_GET_PARENT: a new fd for the parent of a user or pid namespace."""
    cdef int r = nsf_ns_ioctl(fd, NS_GET_PARENT)
    if r < 0:
        raise _err(-r)
    return r


def ns_get_nstype(int fd):
    """NS_GET_NSTYPE: the CLONE_NEW* value of the namespace fd refers to."""
    cdef int r = nsf_ns_ioctl(fd, NS_GET_NSTYPE)
    if r < 0:
        raise _err(-r)
    return r


def ns_owner_uid(int fd):
    """NS_GET_OWNER_UID: the uid (in the caller's namespace) owning a user ns."""
    cdef uint32_t uid = 0
    cdef int r = nsf_ns_owner_uid(fd, &uid)
    if r < 0:
        raise _err(-r)
    return uid


def socket_netns(int pidfd, int fd):
    """An fd on the network namespace of another process's socket: fd is the
    socket's number in the process pidfd names (pidfd_getfd, SIOCGSKNS)."""
    cdef int r = nsf_socket_netns(pidfd, fd)
    if r < 0:
        raise _err(-r)
    return r


def probe():
    """Which optional syscalls this kernel has, as a dict of booleans."""
    return {
        "clone3": bool(nsf_probe_clone3()),
        "pidfd_open": bool(nsf_probe_pidfd_open()),
        "mount_setattr": bool(nsf_probe_mount_setattr()),
        "close_range": bool(nsf_probe_close_range()),
    }


class JoinError(OSError):
    """A setns pass failed; .kind is the CLONE_NEW* value being joined."""
    def __init__(self, err, kind):
        super().__init__(err, os.strerror(err))
        self.kind = kind


def join(fds, kinds, bint use_pidfd=False, bint setgroups_first=False):
    """Run the ordered setns loop in the calling thread."""
    cdef int n = len(fds)
    cdef int cfds[16]
    cdef int ckinds[16]
    cdef nsf_join j
    cdef int failed = 0, r, i
    if n > 16 or n != len(kinds):
        raise ValueError("at most 16 (fd, kind) pairs")
    for i in range(n):
        cfds[i] = fds[i]
        ckinds[i] = kinds[i]
    j.count = n
    j.use_pidfd = use_pidfd
    j.setgroups_first = setgroups_first
    j.fds = cfds
    j.kinds = ckinds
    with nogil:
        r = nsf_join_run(&j, &failed)
    if r < 0:
        raise JoinError(-r, failed)


# ---------------------------------------------------------------- mounts

cdef const char *_opt(object b):
    if b is None:
        return NULL
    return <const char *>(<bytes>b)


def mount(src, bytes target, fstype, unsigned long flags, data):
    """mount(2); src, fstype and data are bytes or None.  OSError names target."""
    cdef int r
    cdef const char *csrc = _opt(src)
    cdef const char *ctype = _opt(fstype)
    cdef const char *cdata = _opt(data)
    cdef const char *ctarget = target
    with nogil:
        r = nsf_mount(csrc, ctarget, ctype, flags, cdata)
    if r < 0:
        raise _err(-r, target.decode(errors="surrogateescape"))


def umount2(bytes target, int flags):
    """umount2(2)."""
    cdef int r
    cdef const char *ctarget = target
    with nogil:
        r = nsf_umount2(ctarget, flags)
    if r < 0:
        raise _err(-r, target.decode(errors="surrogateescape"))


def mount_setattr(bytes path, unsigned int at_flags, uint64_t attr_set, uint64_t attr_clr,
                  uint64_t propagation):
    """mount_setattr(2) on a path (AT_RECURSIVE in at_flags for the whole tree)."""
    cdef int r
    cdef const char *cpath = path
    with nogil:
        r = nsf_mount_setattr(cpath, at_flags, attr_set, attr_clr, propagation)
    if r < 0:
        raise _err(-r, path.decode(errors="surrogateescape"))


# ---------------------------------------------------------------- spawn

cdef tuple _step_row(int i):
    cdef const nsf_step_info *info = nsf_step_row(i)
    return (info.name.decode(), None if info.what == NULL else info.what.decode(),
            info.hint_errno, None if info.hint == NULL else info.hint.decode())


# The step table of csrc/spawn_child.c, which the nsfast command reads too:
# number -> name, and name -> (what it was doing, errno of the hint, hint)
STEP_NAMES = {i: _step_row(i)[0] for i in range(NSF_STEP_COUNT)}
STEP_WORDING = {row[0]: row[1:] for row in (_step_row(i) for i in range(NSF_STEP_COUNT))}
_STEP_NUMBERS = {name: i for i, name in STEP_NAMES.items()}


class SpawnFailure(Exception):
    """The child (or the parent's map writes) failed at a step.

    step is a name from STEP_NAMES or a /proc file name; status the child's
    wait status when it was reaped."""
    def __init__(self, step, err, index=0, status=0):
        super().__init__(step, err, index)
        self.step = step
        self.errno = err
        self.index = index
        self.status = status


cdef class _Pack:
    """Owns every C array the child reads; bytes objects are kept alive in
    self.keep and pointed into directly (they are immutable)."""
    cdef list keep
    cdef void **blocks
    cdef int nblocks

    def __cinit__(self):
        self.keep = []
        self.blocks = <void **>malloc(16 * sizeof(void *))
        self.nblocks = 0

    def __dealloc__(self):
        cdef int i
        for i in range(self.nblocks):
            free(self.blocks[i])
        free(self.blocks)

    cdef void *alloc(self, size_t size) except NULL:
        if self.nblocks == 16:
            raise MemoryError
        cdef void *p = malloc(size if size else 1)
        if p == NULL:
            raise MemoryError
        memset(p, 0, size if size else 1)
        self.blocks[self.nblocks] = p
        self.nblocks += 1
        return p

    cdef const char *cstr(self, object b):
        if b is None:
            return NULL
        self.keep.append(b)
        return <const char *>(<bytes>b)

    cdef char **strv(self, list items) except NULL:
        cdef char **v = <char **>self.alloc((len(items) + 1) * sizeof(char *))
        cdef Py_ssize_t i
        for i in range(len(items)):
            v[i] = <char *>self.cstr(items[i])
        v[len(items)] = NULL
        return v

    cdef int *intv(self, object items) except NULL:
        cdef int *v = <int *>self.alloc((len(items) + 1) * sizeof(int))
        cdef Py_ssize_t i
        for i in range(len(items)):
            v[i] = items[i]
        return v


cdef class Child:
    """A spawned child as the C layer left it: pid and pidfd."""
    cdef nsf_spawn_state st
    cdef readonly int pid
    cdef readonly int exit_signal

    def __cinit__(self):
        self.st.stack = NULL
        self.st.init_argv = NULL
        self.st.pidfd = -1

    def take_pidfd(self):
        fd = self.st.pidfd
        self.st.pidfd = -1
        return fd

    def free_stack(self):
        """Give back the child stack if the spawn still holds it (it does not
        once exec happened)."""
        nsf_spawn_free_stack(&self.st)

    def __dealloc__(self):
        nsf_spawn_free_stack(&self.st)


cdef extern from "<unistd.h>":
    char **environ


cdef char **_environ_copy(_Pack pk) except NULL:
    """This process's environment as the child's envp (env=None, as subprocess):
    a copy of the pointer array, taken under the GIL, so that a putenv from
    another Python thread cannot move it while the child reads it.  The
    strings stay valid: glibc's setenv and unsetenv never free them."""
    cdef Py_ssize_t n = 0
    while environ[n] != NULL:
        n += 1
    cdef char **v = <char **>pk.alloc((n + 1) * sizeof(char *))
    memcpy(v, environ, (n + 1) * sizeof(char *))
    return v


cdef void _spec_defaults(nsf_spawn *sp):
    """A spawn that changes nothing: every optional step off."""
    memset(sp, 0, sizeof(nsf_spawn))
    sp.std_fds[0] = sp.std_fds[1] = sp.std_fds[2] = -1
    sp.max_fd = 1024
    sp.cgroup_fd = -1
    sp.user_fd = -1
    sp.init_fd = -1
    sp.use_clone3 = 1
    sp.n_groups = -1
    sp.gid = -1
    sp.uid = -1
    sp.root_fd = -1
    sp.cwd_fd = -1


cdef class Packed:
    """A spawn plan's spec (nsfast.plan.ChildSpec: every field public) packed
    once into the struct the C core reads (csrc/spawn.h), with the memory it
    points into.  run() starts a child from a copy of it, with what differs
    from call to call.  No policy here: spec says everything."""
    cdef nsf_spawn sp
    cdef _Pack pk

    def __cinit__(self, spec):
        cdef nsf_mount_step *ms
        cdef int i
        cdef nsf_spawn *sp = &self.sp
        pk = self.pk = _Pack()
        _spec_defaults(sp)
        sp.exec_paths = <const char *const *>pk.strv(spec.exec_paths)
        sp.argv = pk.strv(spec.argv)
        sp.envp = NULL if spec.envp is None else pk.strv(spec.envp)
        sp.cwd = pk.cstr(spec.cwd)
        sp.root = pk.cstr(spec.root)
        sp.new_kinds = spec.new_kinds
        sp.no_pid_fork = spec.no_pid_fork
        sp.user_last = spec.user_last
        sp.hostname = pk.cstr(spec.hostname)
        sp.domainname = pk.cstr(spec.domainname)
        sp.propagation = spec.propagation
        mounts = spec.mounts
        ms = <nsf_mount_step *>pk.alloc(len(mounts) * sizeof(nsf_mount_step))
        for i in range(len(mounts)):
            m = mounts[i]
            ms[i].kind = m[0]
            ms[i].readonly = m[1]
            ms[i].flags = m[2]
            ms[i].src = pk.cstr(m[3])
            ms[i].dst = pk.cstr(m[4])
            ms[i].data = pk.cstr(m[5])
        sp.mounts = ms
        sp.n_mounts = len(mounts)
        sp.proc_target = pk.cstr(spec.proc_target)
        sp.loopback_up = spec.loopback_up
        sp.keep_fds = pk.intv(spec.keep_fds)
        sp.n_keep_fds = len(spec.keep_fds)
        sp.max_fd = spec.max_fd
        sp.new_session = spec.new_session
        sp.controlling_tty = spec.controlling_tty
        sp.pdeathsig = spec.pdeathsig
        sp.no_new_privs = spec.no_new_privs
        sp.use_caps = spec.caps_keep is not None
        sp.caps_keep = spec.caps_keep or 0
        sp.caps_ambient = spec.caps_ambient
        sp.init = spec.init
        sp.ids_early = spec.ids_early
        sp.ops = _pack_ops(pk, spec.ops)
        sp.n_ops = len(spec.ops)
        sp.use_clone3 = spec.use_clone3
        sp.n_groups = -1 if spec.groups is None else len(spec.groups)
        sp.groups = pk.intv(spec.groups or [])
        sp.groups_best_effort = spec.groups_best_effort
        sp.gid = -1 if spec.gid is None else spec.gid
        sp.uid = -1 if spec.uid is None else spec.uid
        sp.root_fd = spec.root_fd
        sp.cwd_fd = spec.cwd_fd
        sp.user_fd = spec.user_fd

    def run_plain(self, int parent_pid, map_writes):
        """run() for a plan that takes nothing per call: no std streams, no
        joins, no cgroup, no callbacks, a program path; map_writes as run()."""
        cdef nsf_spawn sp = self.sp
        cdef _Pack pk = _Pack()
        if sp.envp == NULL:
            sp.envp = _environ_copy(pk)
        sp.parent_pid = parent_pid
        sp.parent_hold = len(map_writes) > 0
        return _run(&sp, pk, map_writes, None, None)

    def run(self, exec_paths, std_fds, join_fds, join_kinds, bint join_pidfd,
            bint join_setgroups, bint groups_best_effort, int cgroup_fd, cgroup_procs_fds,
            int init_fd, int parent_pid, map_writes, map_helper, on_created):
        """Clone, set up and exec a child.  exec_paths: the candidates when
        they differ from the spec's (a PATH search), else None; std_fds: three
        fds or None; join_*: the fds to join now; map_writes: (proc file name,
        bytes) written into /proc/<pid>/ while the child waits; map_helper,
        if set, is called with the pid instead to write maps with newuidmap;
        on_created, if set, after the maps, before the child goes on;
        cgroup_procs_fds: cgroup files the child writes "0" into first.
        Returns a Child or raises SpawnFailure / OSError."""
        cdef int i
        cdef nsf_spawn sp = self.sp          # a copy: calls may run at once
        cdef _Pack pk = _Pack()              # what this call adds
        if exec_paths is not None:
            sp.exec_paths = <const char *const *>pk.strv(exec_paths)
        if sp.envp == NULL:
            sp.envp = _environ_copy(pk)
        if std_fds is not None:
            for i in range(3):
                sp.std_fds[i] = std_fds[i]
        if join_fds:
            sp.join.count = len(join_fds)
            sp.join.fds = pk.intv(join_fds)
            sp.join.kinds = pk.intv(join_kinds)
            sp.join.use_pidfd = join_pidfd
            sp.join.setgroups_first = join_setgroups
        sp.groups_best_effort = sp.groups_best_effort or groups_best_effort
        sp.cgroup_fd = cgroup_fd
        if cgroup_procs_fds:
            sp.cgroup_procs_fds = pk.intv(cgroup_procs_fds)
            sp.n_cgroup_procs = len(cgroup_procs_fds)
        sp.init_fd = init_fd
        sp.parent_pid = parent_pid
        sp.parent_hold = bool(map_writes) or map_helper is not None or on_created is not None
        return _run(&sp, pk, map_writes, map_helper, on_created)


cdef nsf_op *_pack_ops(_Pack pk, ops) except? NULL:
    """ops: (step name, a, b, c, s or None) for the steps without a field of
    their own (struct nsf_op)."""
    cdef Py_ssize_t i, n = len(ops)
    if n == 0:
        return NULL
    cdef nsf_op *v = <nsf_op *>pk.alloc(n * sizeof(nsf_op))
    for i in range(n):
        name, a, b, c, text = ops[i]
        v[i].step = _STEP_NUMBERS[name]
        v[i].a, v[i].b, v[i].c = a, b, c
        v[i].s = pk.cstr(text)
    return v


cdef Child _run(nsf_spawn *sp, _Pack pk, map_writes, map_helper, on_created):
    """Clone, write the maps, run the callbacks, release the child and read
    its report: the parent's side of every spawn, whoever filled sp."""
    cdef Child child = Child()
    cdef nsf_record rec
    cdef int r, status = 0
    cdef const char *name
    cdef const char *text
    cdef size_t length

    with nogil:
        r = nsf_spawn_clone(sp, &child.st)
    if r < 0:
        raise _err(-r)
    child.pid = child.st.pid
    child.exit_signal = child.st.exit_signal
    with nogil:
        r = nsf_spawn_wait_ready(&child.st, &rec)
    if r:
        raise SpawnFailure(STEP_NAMES.get(rec.step, rec.step), rec.err, rec.index)
    if map_helper is not None:
        try:
            map_helper(child.pid)
        except BaseException:
            nsf_spawn_abort(&child.st)
            raise
    for fname, data in map_writes:
        name = pk.cstr(fname.encode())
        text = pk.cstr(data)
        length = len(data)
        with nogil:
            r = nsf_proc_write(child.st.first_pid, name, text, length)
        if r < 0:
            nsf_spawn_abort(&child.st)
            raise SpawnFailure(fname, -r)
    if on_created is not None:
        try:
            on_created(child.st.first_pid)
        except BaseException:
            nsf_spawn_abort(&child.st)
            raise
    r = nsf_spawn_release(&child.st)
    if r < 0:
        nsf_spawn_abort(&child.st)
        raise SpawnFailure("sync", -r)
    with nogil:
        r = nsf_spawn_finish(&child.st, &rec, &status)
    if r:
        raise SpawnFailure(STEP_NAMES.get(rec.step, rec.step), rec.err, rec.index, status)
    child.pid = child.st.pid
    return child


# ---------------------------------------------------------------- mounts (in place)

cdef class PropagationChange:
    """A propagation change converted once, to run as often as needed: the
    mount at path gets ms_type (MS_PRIVATE, MS_SHARED, ...), with method 0 =
    mount_setattr with a mount(2) fallback, 1 = mount_setattr only, 2 =
    mount(2) only."""
    cdef readonly bytes path
    cdef unsigned long ms_type
    cdef bint recursive
    cdef int method

    def __init__(self, bytes path not None, unsigned long ms_type, bint recursive, int method):
        self.path = path
        self.ms_type = ms_type
        self.recursive = recursive
        self.method = method

    def run(self):
        """Change it now; OSError naming path."""
        cdef int r
        cdef const char *cpath = self.path
        with nogil:
            r = nsf_set_propagation(cpath, self.ms_type, self.recursive, self.method)
        if r < 0:
            raise _err(-r, self.path.decode(errors="surrogateescape"))


def pivot_root(bytes new_root, bytes put_old):
    """pivot_root(2)."""
    cdef int r
    cdef const char *cnew = new_root
    cdef const char *cold = put_old
    with nogil:
        r = nsf_pivot_root(cnew, cold)
    if r < 0:
        raise _err(-r, new_root.decode(errors="surrogateescape"))
# ---------------------------------------------------------------- netns (helper threads)

def netns_new_bound(bytes target):
    """On a helper thread: unshare(CLONE_NEWNET) and bind its netns onto target."""
    cdef int r
    cdef const char *ctarget = target
    with nogil:
        r = nsf_netns_new_bound(ctarget)
    if r < 0:
        raise _err(-r, target.decode(errors="surrogateescape"))


def netns_new_fd():
    """On a helper thread: unshare(CLONE_NEWNET); an O_CLOEXEC fd of the new netns."""
    cdef int r
    with nogil:
        r = nsf_netns_new_fd()
    if r < 0:
        raise _err(-r)
    return r


def netns_socket(int nsfd, int family, int type, int proto):
    """On a helper thread that joined netns nsfd: socket(2), returned as an fd."""
    cdef int r
    with nogil:
        r = nsf_netns_socket(nsfd, family, type, proto)
    if r < 0:
        raise _err(-r)
    return r


# ---------------------------------------------------------------- enter

def setns_held(int fd, int nstype):
    """setns(2) without releasing the GIL: for the per-thread kinds (net, uts,
    ipc, cgroup), whose setns is quicker than handing the GIL over and
    back."""
    cdef int r = nsf_setns(fd, nstype)
    if r < 0:
        raise _err(-r)


cdef extern from "<sys/prctl.h>":
    int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4,
              unsigned long arg5)
    int PR_SET_DUMPABLE
    int PR_GET_DUMPABLE

from libc.errno cimport errno as c_errno


def set_dumpable(int on):
    """prctl(PR_SET_DUMPABLE, on): 0 keeps processes of other users, and the
    root of a joined user namespace, out of this one's memory and /proc files."""
    if prctl(PR_SET_DUMPABLE, on, 0, 0, 0) < 0:
        raise _err(c_errno)


def get_dumpable():
    """prctl(PR_GET_DUMPABLE): 1 when dumpable, 0 or 2 when not."""
    cdef int r = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)
    if r < 0:
        raise _err(c_errno)
    return r


# ---------------------------------------------------------------- enter()'s thread state

# nsfast.enter()'s per-thread state lives in C (csrc/thread_ns.c) and only
# there: for each kind, the thread's way back and its count of open enter()
# blocks.  kind is one CLONE_NEW* value.  thread_enter, thread_leave and
# thread_setns keep the GIL: they are for the per-thread kinds (see
# setns_held).

# the kinds a thread switches on its own (a CLONE_NEW* mask)
PER_THREAD = NSF_PER_THREAD


def thread_push(int kind):
    """Count one more enter() block of kind in this thread; the fd to come
    back to when it is the outermost one (opened on first use, owned here),
    -1 when it is nested in another."""
    cdef int back = -1
    cdef int r = nsf_thread_push(kind, &back)
    if r < 0:
        raise _err(-r)
    return back


def thread_pop(int kind):
    """Count one enter() block of kind fewer in this thread."""
    cdef int r = nsf_thread_pop(kind)
    if r < 0:
        raise _err(-r)


def thread_enter(int fd, int kind):
    """The outermost enter() block of a per-thread kind in one call:
    setns(fd, kind) and count it.  True when entered; False, with nothing
    done, when a block of kind is open in this thread already or kind is not
    per-thread.  OSError changes nothing."""
    cdef int r = nsf_thread_enter(fd, kind)
    if r < 0:
        raise _err(-r)
    return r == 1


def thread_leave(int kind):
    """End the block thread_enter began: setns back to where the thread was
    and count it out (also when that setns fails, with OSError)."""
    cdef int r = nsf_thread_leave(kind)
    if r < 0:
        raise _err(-r)


def thread_setns(int fd, int kind):
    """setns(fd, kind) for a per-thread kind outside enter(); enter() then
    comes back here.  False, with nothing done, for another kind."""
    cdef int r = nsf_thread_setns(fd, kind)
    if r < 0:
        raise _err(-r)
    return r == 1


def thread_forget(int kinds):
    """This thread moved by other means (setns, unshare): forget where it
    returns to for the kinds in the mask that no enter() block holds."""
    nsf_thread_forget(kinds)

