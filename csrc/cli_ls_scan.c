/* `nsfast ls`: which namespaces exist and who holds them, read from /proc
 * as lsns reads it: the ns links of every process, then (as util-linux
 * 2.39+) the nsfs bind mounts in /proc/self/mountinfo, the open namespace
 * files and the sockets of every process (a socket keeps its network
 * namespace alive), and where the listing needs them the nsfs ioctls for
 * parents, owners and creators, and RTM_GETNSID for NETNSID.  A process
 * that vanishes or that we may not inspect is skipped, as lsns skips it.
 * Only what the listing shows is read: a command line when its row is
 * printed, a parent only when a column or a tree asks for it. */
#include "cli.h"
#include "cli_ls.h"
#include "compat.h"
#include "nscore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/net_namespace.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- the table */

/* (kind, inode) -> namespace, open addressing; the world's list is sorted
 * once everything is in */
static struct ls_ns **slots;
static unsigned nslots;

static unsigned slot_of(int kind, unsigned long long ino)
{
    unsigned long long h = (ino ^ (unsigned long long)kind << 56) * 0x9e3779b97f4a7c15ULL;
    return (unsigned)(h >> 32) & (nslots - 1);
}

struct ls_ns *ls_find(struct ls_world *w, int kind, unsigned long long ino)
{
    (void)w;
    if (!nslots)
        return 0;
    for (unsigned i = slot_of(kind, ino);; i = (i + 1) & (nslots - 1)) {
        struct ls_ns *ns = slots[i];
        if (!ns || (ns->kind == kind && ns->ino == ino))
            return ns;
    }
}

static struct ls_ns *add_ns(struct ls_world *w, int kind, unsigned long long ino)
{
    struct ls_ns *ns = ls_find(w, kind, ino);
    if (ns)
        return ns;
    if ((unsigned)(w->nns + 1) * 2 > nslots) {
        /* grow and re-insert: the list holds every namespace */
        nslots = nslots ? nslots * 2 : 256;
        free(slots);
        slots = ls_alloc(sizeof *slots * nslots);
        for (int i = 0; i < w->nns; i++) {
            unsigned s = slot_of(w->ns[i]->kind, w->ns[i]->ino);
            while (slots[s])
                s = (s + 1) & (nslots - 1);
            slots[s] = w->ns[i];
        }
        w->ns = ls_grow(w->ns, sizeof *w->ns * nslots);
    }
    ns = ls_alloc(sizeof *ns);
    *ns = (struct ls_ns){.kind = kind, .ino = ino, .uid = -1, .netnsid = -1, .row = -1};
    unsigned s = slot_of(kind, ino);
    while (slots[s])
        s = (s + 1) & (nslots - 1);
    slots[s] = ns;
    w->ns[w->nns++] = ns;
    return ns;
}

static void add_holder(struct ls_holder **list, int *n, int pid, int fd)
{
    *list = ls_grow(*list, sizeof **list * (size_t)(*n + 1));
    (*list)[(*n)++] = (struct ls_holder){pid, fd};
}

/* K_* of "net" in "net:[4026531840]" (with its inode), -1 for anything else */
static int parse_link(const char *link, size_t len, unsigned long long *ino)
{
    const char *open = memchr(link, '[', len);
    if (!open || open == link || open[-1] != ':' || link[len - 1] != ']')
        return -1;
    size_t name_len = (size_t)(open - 1 - link);
    int kind = -1;
    for (int k = 0; k < LS_KINDS; k++)
        if (strlen(ls_kind_names[k]) == name_len &&
            memcmp(ls_kind_names[k], link, name_len) == 0)
            kind = k;
    if (kind < 0 || open + 2 > link + len - 1)
        return -1;
    unsigned long long v = 0;
    for (const char *p = open + 1; p < link + len - 1; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    *ino = v;
    return kind;
}

static int kind_of_flag(int flag)
{
    static const int flags[LS_KINDS] = {CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWUSER,
                                        CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWCGROUP,
                                        CLONE_NEWTIME};
    for (int k = 0; k < LS_KINDS; k++)
        if (flags[k] == flag)
            return k;
    return -1;
}

/* ---------------------------------------------------------------- processes */

static int by_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* every pid in /proc, ascending */
static int *all_pids(int *n)
{
    DIR *d = opendir("/proc");
    if (!d)
        nsf_cli_die(LS_PROG, "cannot open /proc: %s", strerror(errno));
    int *pids = 0, cap = 0;
    *n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || pid > INT_MAX)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 512;
            pids = ls_grow(pids, sizeof *pids * (size_t)cap);
        }
        pids[(*n)++] = (int)pid;
    }
    closedir(d);
    qsort(pids, (size_t)*n, sizeof *pids, by_int);
    return pids;
}

/* The ns links of each process, of the kinds asked for, read relative to
 * its ns directory (a path walk of one step each), and its owner. */
static void scan_processes(struct ls_world *w, const int *pids, int npids, unsigned kinds)
{
    char path[64], link[64];
    for (int i = 0; i < npids; i++) {
        int pid = pids[i];
        snprintf(path, sizeof path, "/proc/%d/ns", pid);
        int dfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
            continue;
        struct ls_ns *found[LS_KINDS];
        int nfound = 0;
        for (int k = 0; k < LS_KINDS; k++) {
            if (!(kinds & (1u << k)))
                continue;
            ssize_t len = readlinkat(dfd, ls_kind_names[k], link, sizeof link - 1);
            unsigned long long ino;
            /* gone, a zombie, not ours to inspect, or a kind the kernel lacks */
            if (len <= 0 || parse_link(link, (size_t)len, &ino) != k)
                continue;
            found[nfound++] = add_ns(w, k, ino);
        }
        /* the owner of /proc/PID/ns is the owner of /proc/PID */
        struct stat st;
        int owned = nfound && fstat(dfd, &st) == 0;
        close(dfd);
        if (!owned)
            continue;
        if ((w->nprocs & 255) == 0)
            w->procs = ls_grow(w->procs, sizeof *w->procs * (size_t)(w->nprocs + 256));
        w->procs[w->nprocs] = (struct ls_proc){.pid = pid, .uid = st.st_uid, .row = -1};
        for (int f = 0; f < nfound; f++) {
            struct ls_ns *ns = found[f];
            if (ns->nprocs == ns->cap) {
                ns->cap = ns->cap ? ns->cap * 2 : 4;
                ns->members = ls_grow(ns->members, sizeof *ns->members * (size_t)ns->cap);
            }
            ns->members[ns->nprocs++] = w->nprocs;
        }
        w->nprocs++;
    }
}

struct ls_proc *ls_proc_of(struct ls_world *w, int pid)
{
    int lo = 0, hi = w->nprocs - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (w->procs[mid].pid == pid)
            return &w->procs[mid];
        if (w->procs[mid].pid < pid)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return 0;
}

/* a whole small /proc file into buf (NUL-terminated); its length, -1 */
static ssize_t read_file(const char *path, char **buf)
{
    size_t n;
    char *text = nsf_read_file(path, &n);
    if (!text && errno == ENOMEM)
        nsf_cli_die(LS_PROG, "out of memory");
    if (!text)
        return -1;
    *buf = text;
    return (ssize_t)n;
}

int ls_ppid(struct ls_proc *p)
{
    if (p->ppid_read)
        return p->ppid;
    p->ppid_read = 1;
    p->ppid = -1;
    char path[64], *text;
    snprintf(path, sizeof path, "/proc/%d/stat", p->pid);
    if (read_file(path, &text) < 0)
        return -1;
    /* after the command's closing parenthesis: the state, then the ppid */
    char *paren = strrchr(text, ')'), *end;
    if (paren) {
        char *s = paren + 1;
        while (*s == ' ')
            s++;
        while (*s && *s != ' ')
            s++;
        long v = strtol(s, &end, 10);
        if (end != s && (*end == ' ' || *end == 0 || *end == '\n') && v >= 0 && v <= INT_MAX)
            p->ppid = (int)v;
    }
    free(text);
    return p->ppid;
}

/* The command line as lsns shows it: argv joined by spaces, else the comm. */
int ls_command(struct ls_proc *p)
{
    if (p->cmd_read)
        return p->has_cmd;
    p->cmd_read = 1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", p->pid);
    ssize_t n = read_file(path, &p->cmd);
    if (n < 0)
        return 0;
    if (n > 0) {
        while (n > 0 && p->cmd[n - 1] == 0)
            n--;
        for (ssize_t i = 0; i < n; i++)
            if (p->cmd[i] == 0)
                p->cmd[i] = ' ';
    } else {
        free(p->cmd);
        p->cmd = 0;
        snprintf(path, sizeof path, "/proc/%d/comm", p->pid);
        n = read_file(path, &p->cmd);
        if (n < 0)
            return 0;
        while (n > 0 && p->cmd[n - 1] == '\n')
            n--;
    }
    p->cmd[n] = 0;
    p->cmd_len = (size_t)n;
    return p->has_cmd = 1;
}

/* ---------------------------------------------------------------- other holders */

struct socket_ns {
    int pid, fd;
    unsigned long long ino;
};

struct fd_scan {
    struct ls_world *w;
    unsigned kinds;
    dev_t nsfs_dev;                 /* 0: not known (yet) */
    int nsfs_known;
    struct socket_ns *sockets;
    int nsockets;
};

/* One fd of pid (dfd: its /proc/PID/fd), whose link says link. */
static void fd_holder(struct fd_scan *s, int pid, int dfd, const char *name, const char *link,
                      size_t len, int *pidfd)
{
    int fd = atoi(name);
    unsigned long long ino;
    struct stat st;
    if (link[0] == '/') {
        /* a namespace file opened through a bind mount shows that path in
         * its link, deleted or not: nsfs's device tells it apart */
        if (!s->nsfs_known) {
            s->nsfs_known = 1;
            if (stat("/proc/self/ns/net", &st) == 0)
                s->nsfs_dev = st.st_dev;
        }
        if (!s->nsfs_dev || fstatat(dfd, name, &st, 0) < 0 || st.st_dev != s->nsfs_dev)
            return;
        int nsfd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (nsfd < 0)
            return;
        int kind = kind_of_flag(nsf_ns_ioctl(nsfd, NS_GET_NSTYPE));
        close(nsfd);
        if (kind >= 0 && (s->kinds & (1u << kind))) {
            struct ls_ns *ns = add_ns(s->w, kind, st.st_ino);
            add_holder(&ns->fds, &ns->nfds, pid, fd);
        }
    } else if (strncmp(link, "socket:[", 8) == 0) {
        if (!(s->kinds & (1u << K_NET)))
            return;
        if (*pidfd == -2)
            *pidfd = nsf_pidfd_open(pid, 0);
        int nsfd = *pidfd >= 0 ? nsf_socket_netns(*pidfd, fd) : -1;
        if (nsfd < 0)
            return;
        if (fstat(nsfd, &st) == 0) {
            s->sockets = ls_grow(s->sockets, sizeof *s->sockets * (size_t)(s->nsockets + 1));
            s->sockets[s->nsockets++] = (struct socket_ns){pid, fd, st.st_ino};
        }
        close(nsfd);
    } else {
        int kind = parse_link(link, len, &ino);
        if (kind >= 0 && (s->kinds & (1u << kind))) {
            struct ls_ns *ns = add_ns(s->w, kind, ino);
            add_holder(&ns->fds, &ns->nfds, pid, fd);
        }
    }
}

/* Open namespace files and (with net among kinds) sockets of every process:
 * a socket keeps its network namespace alive. */
static void scan_fds(struct fd_scan *s, const int *pids, int npids)
{
    char path[64], link[PATH_MAX], entries[8192];
    for (int i = 0; i < npids; i++) {
        snprintf(path, sizeof path, "/proc/%d/fd", pids[i]);
        int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
            continue;
        int pidfd = -2, denied = 0;   /* pidfd -2: not opened yet, -1: none */
        ssize_t got;
        /* getdents64 on the fd itself: opendir's bookkeeping costs syscalls */
        while (!denied && (got = getdents64(dfd, entries, sizeof entries)) > 0) {
            for (ssize_t at = 0; at < got && !denied;) {
                struct dirent64 *e = (struct dirent64 *)(entries + at);
                at += e->d_reclen;
                if (e->d_name[0] < '0' || e->d_name[0] > '9')
                    continue;
                ssize_t len = readlinkat(dfd, e->d_name, link, sizeof link - 1);
                /* not ours to inspect: no fd of this process is */
                denied = len < 0 && errno == EACCES;
                if (len <= 0)
                    continue;
                link[len] = 0;
                fd_holder(s, pids[i], dfd, e->d_name, link, (size_t)len, &pidfd);
            }
        }
        if (pidfd >= 0)
            close(pidfd);
        close(dfd);
    }
}

/* the kernel's octal escapes in a mountinfo field (\040 a space), in place */
static void unescape(char *s)
{
    char *out = s;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *out++ = *s;
        }
    }
    *out = 0;
}

/* nsfs bind mounts in our mount namespace, from /proc/self/mountinfo */
static void scan_mounts(struct ls_world *w, unsigned kinds)
{
    char *text;
    if (read_file("/proc/self/mountinfo", &text) < 0)
        return;
    for (char *line = text, *next; *line; line = next) {
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : line + strlen(line);
        if (nl)
            *nl = 0;
        char *dash = strstr(line, " - nsfs ");
        if (!dash)
            continue;
        *dash = 0;
        /* ID PARENT MAJ:MIN ROOT MOUNT-POINT ... */
        char *field[5];
        int n = 0;
        for (char *p = line; n < 5 && p; n++) {
            field[n] = p;
            p = strchr(p, ' ');
            if (p)
                *p++ = 0;
        }
        if (n < 5)
            continue;
        unsigned long long ino;
        int kind = parse_link(field[3], strlen(field[3]), &ino);
        if (kind < 0 || !(kinds & (1u << kind)))
            continue;
        unescape(field[4]);
        struct ls_ns *ns = add_ns(w, kind, ino);
        ns->mounts = ls_grow(ns->mounts, sizeof *ns->mounts * (size_t)(ns->nmounts + 1));
        ns->mounts[ns->nmounts++] = strdup(field[4]);
        if (!ns->mounts[ns->nmounts - 1])
            nsf_cli_die(LS_PROG, "out of memory");
    }
    free(text);
}

/* ---------------------------------------------------------------- the kernel's relations */

/* fd when it is on the namespace ino; else -1, fd closed */
static int if_ours(int fd, unsigned long long ino)
{
    struct stat st;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) == 0 && st.st_ino == ino)
        return fd;
    close(fd);
    return -1;
}

/* An fd on the namespace through whatever holds it; -1 when all are gone
 * (a path whose inode differs: a process exited and its pid was reused).
 * O_NONBLOCK: what a path opens now may be a fifo, which must not block. */
static int open_ns(struct ls_world *w, const struct ls_ns *ns)
{
    const int how = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    char path[64];
    int fd = -1;
    if (ns->nprocs) {
        snprintf(path, sizeof path, "/proc/%d/ns/%s", w->procs[ns->members[0]].pid,
                 ls_kind_names[ns->kind]);
        fd = if_ours(open(path, how), ns->ino);
    }
    for (int i = 0; fd < 0 && i < ns->nmounts; i++)
        fd = if_ours(open(ns->mounts[i], how), ns->ino);
    for (int i = 0; fd < 0 && i < ns->nfds; i++) {
        snprintf(path, sizeof path, "/proc/%d/fd/%d", ns->fds[i].pid, ns->fds[i].fd);
        fd = if_ours(open(path, how), ns->ino);
    }
    for (int i = 0; fd < 0 && i < ns->nsockets; i++) {
        int pidfd = nsf_pidfd_open(ns->sockets[i].pid, 0);
        if (pidfd < 0)
            continue;
        fd = if_ours(nsf_socket_netns(pidfd, ns->sockets[i].fd), ns->ino);
        close(pidfd);
    }
    return fd;
}

struct pending {
    struct ls_ns *ns;
    int fd;   /* -2: open it when its turn comes */
};

/* Parents and owners (NS_GET_PARENT, NS_GET_USERNS), the creator of a user
 * namespace no process is in; with related, the user and pid namespaces
 * they name that nothing else holds (the kernel's references keep them). */
static void fill_relations(struct ls_world *w, int related)
{
    int n = w->nns, cap = n + 16;
    struct pending *todo = ls_alloc(sizeof *todo * (size_t)cap);
    for (int i = 0; i < n; i++)
        todo[i] = (struct pending){w->ns[i], -2};
    while (n) {
        struct pending p = todo[--n];
        int fd = p.fd == -2 ? open_ns(w, p.ns) : p.fd;
        if (fd < 0)
            continue;
        if (!p.ns->nprocs && p.ns->kind == K_USER) {
            uint32_t uid;
            if (nsf_ns_owner_uid(fd, &uid) >= 0)
                p.ns->uid = uid;
        }
        for (int which = 0; which < 2; which++) {
            if (which == 1 && p.ns->kind != K_USER && p.ns->kind != K_PID)
                break;
            int rel_kind = which == 0 ? K_USER : p.ns->kind;
            /* refused: outside our user namespace (EPERM), no parent (EINVAL) */
            int rel = nsf_ns_ioctl(fd, which == 0 ? NS_GET_USERNS : NS_GET_PARENT);
            if (rel < 0)
                continue;
            struct stat st;
            if (fstat(rel, &st) < 0) {
                close(rel);
                continue;
            }
            if (which == 0)
                p.ns->owner = st.st_ino;
            else
                p.ns->parent = st.st_ino;
            if (related && !ls_find(w, rel_kind, st.st_ino)) {
                if (n == cap)
                    todo = ls_grow(todo, sizeof *todo * (size_t)(cap *= 2));
                todo[n++] = (struct pending){add_ns(w, rel_kind, st.st_ino), rel};
            } else {
                close(rel);
            }
        }
        close(fd);
    }
    free(todo);
}

/* The creator of each user namespace no process is in (NS_GET_OWNER_UID). */
static void fill_creators(struct ls_world *w)
{
    for (int i = 0; i < w->nns; i++) {
        struct ls_ns *ns = w->ns[i];
        if (ns->nprocs || ns->kind != K_USER)
            continue;
        int fd = open_ns(w, ns);
        uint32_t uid;
        if (fd < 0)
            continue;
        if (nsf_ns_owner_uid(fd, &uid) >= 0)
            ns->uid = uid;
        close(fd);
    }
}

static void fill_netnsids(struct ls_world *w)
{
    int sock = -1;
    for (int i = 0; i < w->nns; i++) {
        if (w->ns[i]->kind != K_NET)
            continue;
        int fd = open_ns(w, w->ns[i]);
        if (fd < 0)
            continue;
        if (sock < 0)
            sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (sock >= 0)
            w->ns[i]->netnsid = nsf_netnsid_of(sock, fd);
        close(fd);
    }
    if (sock >= 0)
        close(sock);
}

/* ---------------------------------------------------------------- the listing */

static int lsns_order(const void *a, const void *b)
{
    const struct ls_ns *x = *(struct ls_ns *const *)a, *y = *(struct ls_ns *const *)b;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return (x->kind > y->kind) - (x->kind < y->kind);
}

void ls_scan(struct ls_world *w, unsigned kinds, const struct ls_needs *needs)
{
    if (!kinds)
        kinds = (1u << LS_KINDS) - 1;
    int npids;
    int *pids = all_pids(&npids);
    scan_processes(w, pids, npids, kinds);
    scan_mounts(w, kinds);
    struct fd_scan fds = {.w = w, .kinds = kinds};
    scan_fds(&fds, pids, npids);
    free(pids);
    /* a network namespace only sockets hold */
    for (int i = 0; i < fds.nsockets; i++) {
        struct socket_ns *sock = &fds.sockets[i];
        struct ls_ns *ns = ls_find(w, K_NET, sock->ino);
        if (ns && !ns->nsockets)
            continue;
        ns = add_ns(w, K_NET, sock->ino);
        add_holder(&ns->sockets, &ns->nsockets, sock->pid, sock->fd);
    }
    free(fds.sockets);
    if (needs->relations)
        fill_relations(w, needs->related);
    else if (needs->creator)
        fill_creators(w);
    qsort(w->ns, (size_t)w->nns, sizeof *w->ns, lsns_order);
    if (needs->netnsid)
        fill_netnsids(w);
}
