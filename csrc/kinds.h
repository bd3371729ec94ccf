/* The eight namespace kinds: the one table of CLONE_NEW* flag, /proc/PID/ns
 * name and nsenter letter, read by the nsfast command and, through
 * _core.KIND_NAMES, by nsfast/flags.py. */
#ifndef NSFAST_KINDS_H
#define NSFAST_KINDS_H

struct nsf_kind {
    int flag;                       /* CLONE_NEW* */
    const char *proc;               /* the /proc/PID/ns entry */
    char letter;                    /* nsenter's and unshare's option */
};

/* In nsenter's order of its flags (-U -C -i -u -n -p -m -T), which -a follows. */
#define NSF_KINDS 8
extern const struct nsf_kind nsf_kinds[NSF_KINDS];

/* "net" for CLONE_NEWNET; "?" for a value that is not one kind. */
const char *nsf_kind_name(int flag);

#endif
