/* The table of namespace kinds (see kinds.h). */
#include "kinds.h"
#include "compat.h"

const struct nsf_kind nsf_kinds[NSF_KINDS] = {
    {CLONE_NEWUSER, "user", 'U'}, {CLONE_NEWCGROUP, "cgroup", 'C'},
    {CLONE_NEWIPC, "ipc", 'i'},   {CLONE_NEWUTS, "uts", 'u'},
    {CLONE_NEWNET, "net", 'n'},   {CLONE_NEWPID, "pid", 'p'},
    {CLONE_NEWNS, "mnt", 'm'},    {CLONE_NEWTIME, "time", 'T'},
};

const char *nsf_kind_name(int flag)
{
    for (int k = 0; k < NSF_KINDS; k++)
        if (nsf_kinds[k].flag == flag)
            return nsf_kinds[k].proc;
    return "?";
}
