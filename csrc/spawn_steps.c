/* The names of the child's steps: the one table that _core.pyx (SpawnFailure.step)
 * and the nsfast command (its error messages) both read. */
#include "spawn.h"

static const char *const step_names[NSF_STEP_COUNT] = {
    [NSF_STEP_NONE] = "none",
    [NSF_STEP_PDEATHSIG] = "pdeathsig",
    [NSF_STEP_SYNC] = "sync",
    [NSF_STEP_JOIN] = "join",
    [NSF_STEP_UNSHARE] = "unshare",
    [NSF_STEP_FORK] = "fork",
    [NSF_STEP_HOSTNAME] = "hostname",
    [NSF_STEP_DOMAINNAME] = "domainname",
    [NSF_STEP_PROPAGATION] = "propagation",
    [NSF_STEP_MOUNT] = "mount",
    [NSF_STEP_MOUNT_PROC] = "mount_proc",
    [NSF_STEP_LOOPBACK] = "loopback",
    [NSF_STEP_ROOT] = "root",
    [NSF_STEP_CWD] = "cwd",
    [NSF_STEP_FDS] = "fds",
    [NSF_STEP_SETSID] = "setsid",
    [NSF_STEP_NO_NEW_PRIVS] = "no_new_privs",
    [NSF_STEP_CAPS] = "capabilities",
    [NSF_STEP_INIT] = "init",
    [NSF_STEP_EXEC] = "exec",
    [NSF_STEP_GROUPS] = "groups",
    [NSF_STEP_SETGID] = "setgid",
    [NSF_STEP_SETUID] = "setuid",
};

const char *nsf_step_name(int step)
{
    return step >= 0 && step < NSF_STEP_COUNT ? step_names[step] : 0;
}
