# Declarations of the C core in csrc/, one block per header.
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t

cdef extern from "nscore.h" nogil:
    struct nsf_join:
        int count
        int use_pidfd
        int setgroups_first
        const int *fds
        const int *kinds
    int nsf_unshare(int flags)
    int nsf_setns(int fd, int nstype)
    int nsf_pidfd_open(int pid, unsigned int flags)
    int nsf_pidfd_send_signal(int pidfd, int sig)
    int nsf_ns_ioctl(int fd, unsigned long request)
    int nsf_ns_owner_uid(int fd, uint32_t *uid)
    int nsf_socket_netns(int pidfd, int fd)
    int nsf_probe_clone3()
    int nsf_probe_pidfd_open()
    int nsf_probe_mount_setattr()
    int nsf_probe_close_range()
    int nsf_join_run(const nsf_join *j, int *failed_kind)
    int nsf_mount(const char *src, const char *target, const char *fstype, unsigned long flags,
                  const char *data)
    int nsf_umount2(const char *target, int flags)
    int nsf_mount_setattr(const char *path, unsigned int at_flags, uint64_t attr_set,
                          uint64_t attr_clr, uint64_t propagation)

cdef extern from "compat.h" nogil:
    unsigned long NS_GET_USERNS
    unsigned long NS_GET_PARENT
    unsigned long NS_GET_NSTYPE

cdef extern from "spawn.h" nogil:
    enum: NSF_STEP_COUNT
    struct nsf_step_info:
        const char *name
        const char *what
        int hint_errno
        const char *hint
    const nsf_step_info *nsf_step_row(int step)
    const char *nsf_step_name(int step)
    struct nsf_op:
        int32_t step
        int64_t a
        int64_t b
        int64_t c
        const char *s
    struct nsf_record:
        int32_t step
        int32_t err
        int32_t index
        int32_t value
    struct nsf_mount_step:
        int kind
        int readonly
        unsigned long flags
        const char *src
        const char *dst
        const char *data
    struct nsf_spawn:
        const char *const *exec_paths
        char *const *argv
        char *const *envp
        const char *cwd
        const char *root
        int new_kinds
        nsf_join join
        int parent_hold
        int no_pid_fork
        int user_last
        const char *hostname
        const char *domainname
        unsigned long propagation
        const nsf_mount_step *mounts
        int n_mounts
        const char *proc_target
        int loopback_up
        int std_fds[3]
        const int *keep_fds
        int n_keep_fds
        int max_fd
        int new_session
        int controlling_tty
        int pdeathsig
        int parent_pid
        int no_new_privs
        int use_caps
        uint64_t caps_keep
        uint64_t caps_ambient
        int init
        int init_fd
        int ids_early
        const nsf_op *ops
        int n_ops
        int cgroup_fd
        int user_fd
        const int *cgroup_procs_fds
        int n_cgroup_procs
        int use_clone3
        int n_groups
        const int *groups
        int groups_best_effort
        long gid
        long uid
        int root_fd
        int cwd_fd
    struct nsf_spawn_state:
        int pid
        int first_pid
        int pidfd
        int errpipe_r
        int sync_w
        int exit_signal
        char **init_argv
        void *stack
    int nsf_spawn_clone(const nsf_spawn *sp, nsf_spawn_state *st)
    int nsf_spawn_wait_ready(nsf_spawn_state *st, nsf_record *rec)
    int nsf_proc_write(int pid, const char *name, const char *text, size_t length)
    int nsf_spawn_release(nsf_spawn_state *st)
    int nsf_spawn_finish(nsf_spawn_state *st, nsf_record *rec, int *status)
    void nsf_spawn_abort(nsf_spawn_state *st)
    void nsf_spawn_free_stack(nsf_spawn_state *st)

cdef extern from "mounts.h" nogil:
    int nsf_set_propagation(const char *path, unsigned long ms_type, int recursive, int method)
    int nsf_pivot_root(const char *new_root, const char *put_old)
# ---------------------------------------------------------------- netns (helper threads)
cdef extern from "netns_thread.h" nogil:
    int nsf_netns_new_bound(const char *target)
    int nsf_netns_new_fd()
    int nsf_netns_socket(int nsfd, int family, int type, int proto)

cdef extern from "kinds.h" nogil:
    struct nsf_kind:
        int flag
        const char *proc
        char letter
    enum: NSF_KINDS
    const nsf_kind nsf_kinds[]

cdef extern from "thread_ns.h" nogil:
    enum: NSF_PER_THREAD
    int nsf_thread_push(int kind, int *back)
    int nsf_thread_pop(int kind)
    int nsf_thread_enter(int fd, int kind)
    int nsf_thread_leave(int kind)
    int nsf_thread_setns(int fd, int kind)
    void nsf_thread_forget(int kinds)
