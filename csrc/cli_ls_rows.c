/* `nsfast ls`: the rows of the listing, in the order lsns adds them, each
 * under its parent row in the tree, and the text of each cell. */
#include "cli.h"
#include "cli_ls.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct ls_world *world;   /* the rows' processes (ppid lookups) */

/* row becomes the last child of holder */
static void add_child(struct ls_rows *rows, int holder, int row)
{
    struct ls_row *h = &rows->r[holder];
    if (h->nchildren == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 4;
        h->children = ls_grow(h->children, sizeof *h->children * (size_t)h->cap);
    }
    h->children[h->nchildren++] = row;
}

static int new_row(struct ls_rows *rows, struct ls_ns *ns, struct ls_proc *proc, int holder)
{
    if (rows->n == rows->cap) {
        rows->cap = rows->cap ? rows->cap * 2 : 256;
        rows->r = ls_grow(rows->r, sizeof *rows->r * (size_t)rows->cap);
    }
    int at = rows->n++;
    rows->r[at] = (struct ls_row){.ns = ns, .proc = proc, .parent = holder};
    if (holder >= 0)
        add_child(rows, holder, at);
    return at;
}

static struct ls_proc *first_proc(struct ls_ns *ns)
{
    return ns->nprocs ? &world->procs[ns->members[0]] : 0;
}

/* the namespace a tree nests ns under: its owner, or its parent (user and pid) */
static struct ls_ns *related(struct ls_ns *ns, enum ls_tree how)
{
    if (how == TREE_PARENT) {
        if ((ns->kind != K_USER && ns->kind != K_PID) || !ns->parent)
            return 0;
        return ls_find(world, ns->kind, ns->parent);
    }
    return ns->owner ? ls_find(world, K_USER, ns->owner) : 0;
}

static void show(struct ls_rows *rows, struct ls_ns *ns, const struct ls_args *a)
{
    int holder = -1;
    struct ls_proc *proc = first_proc(ns);
    if (a->tree == TREE_OWNER || a->tree == TREE_PARENT) {
        struct ls_ns *up = related(ns, a->tree);
        /* lsns shows the owner first under --tree=parent too, yet nests nothing */
        struct ls_ns *up_first = a->tree == TREE_PARENT && !up ? related(ns, TREE_OWNER) : up;
        if (up_first && up_first->row < 0 && up_first != ns)
            show(rows, up_first, a);
        holder = up ? up->row : -1;
    } else if (a->tree == TREE_PROCESS && proc) {
        struct ls_proc *parent = ls_proc_of(world, ls_ppid(proc));
        holder = parent ? parent->row : -1;
    }
    int row = new_row(rows, ns, proc, holder);
    if (a->tree == TREE_OWNER || a->tree == TREE_PARENT)
        ns->row = row;
    else if (proc)
        proc->row = row;   /* the latest row shown for that process */
}

static int has_pid(const struct ls_ns *ns, long long pid)
{
    for (int i = 0; i < ns->nprocs; i++)
        if (world->procs[ns->members[i]].pid == pid)
            return 1;
    return 0;
}

/* lsns's show_namespaces(): a row a namespace in inode order, nested under
 * its owner or parent row (--tree=owner/parent; the owner or parent is
 * put first when it has no row yet), or under the row of its process's
 * parent process (the process tree). */
void ls_namespace_rows(struct ls_world *w, const struct ls_args *a, struct ls_rows *rows)
{
    world = w;
    for (int i = 0; i < w->nns; i++) {
        struct ls_ns *ns = w->ns[i];
        if (a->task && !has_pid(ns, a->task))
            continue;
        if (a->persistent && ns->nprocs)
            continue;
        if (ns->row < 0)
            show(rows, ns, a);
    }
}

static void show_process(struct ls_rows *rows, struct ls_ns *ns, struct ls_proc *p,
                         const struct ls_args *a)
{
    struct ls_proc *parent = ls_proc_of(world, ls_ppid(p));
    int in_tree = a->tree == TREE_PROCESS && parent && parent->member;
    p->member = 2;   /* being shown: ppids read at different times may loop */
    if (in_tree && parent->row < 0 && parent->member == 1)
        show_process(rows, ns, parent, a);
    p->row = new_row(rows, ns, p, in_tree ? parent->row : -1);
}

/* lsns NS: a row a process of the namespace, in pid order, under its parent
 * process's row where that process is in the namespace too. */
void ls_process_rows(struct ls_world *w, struct ls_ns *ns, const struct ls_args *a,
                     struct ls_rows *rows)
{
    world = w;
    for (int i = 0; i < ns->nprocs; i++)
        w->procs[ns->members[i]].member = 1;
    for (int i = 0; i < ns->nprocs; i++) {
        struct ls_proc *p = &w->procs[ns->members[i]];
        if (p->row < 0)
            show_process(rows, ns, p, a);
    }
}

void ls_filter_rows(struct ls_rows *rows, const struct ls_args *a)
{
    int *kept = ls_alloc(sizeof *kept * (size_t)rows->n);   /* old index -> new, -1 */
    int n = 0;
    for (int i = 0; i < rows->n; i++)
        kept[i] = ls_filter_holds(a->filter, &rows->r[i], a) ? n++ : -1;
    struct ls_row *r = ls_alloc(sizeof *r * (size_t)(n ? n : 1));
    for (int i = 0; i < rows->n; i++) {
        if (kept[i] < 0)
            continue;
        int up = rows->r[i].parent;
        while (up >= 0 && kept[up] < 0)
            up = rows->r[up].parent;
        r[kept[i]] = (struct ls_row){.ns = rows->r[i].ns, .proc = rows->r[i].proc,
                                     .parent = up >= 0 ? kept[up] : -1};
    }
    for (int i = 0; i < rows->n; i++)
        free(rows->r[i].children);
    free(rows->r);
    rows->r = r;
    rows->n = rows->cap = n;
    for (int i = 0; i < n; i++)
        if (r[i].parent >= 0)
            add_child(rows, r[i].parent, i);
    free(kept);
}

/* ---------------------------------------------------------------- cells */

/* a uid's name, looked up once a uid; the number when it has none */
static const char *user_name(unsigned uid)
{
    static struct {
        unsigned uid;
        char *name;
    } cache[16];
    static int n;
    for (int i = 0; i < n; i++)
        if (cache[i].uid == uid)
            return cache[i].name;
    struct passwd *pw = getpwuid(uid);
    char number[16], *name;
    snprintf(number, sizeof number, "%u", uid);
    name = strdup(pw ? pw->pw_name : number);
    if (!name)
        nsf_cli_die(LS_PROG, "out of memory");
    if (n < (int)(sizeof cache / sizeof *cache)) {
        cache[n].uid = uid;
        cache[n++].name = name;
    }
    return name;
}

static int holders(struct ls_buf *out, const struct ls_ns *ns)
{
    for (int i = 0; i < ns->nfds; i++)
        ls_printf(out, "%s%d:%d", i ? "," : "", ns->fds[i].pid, ns->fds[i].fd);
    return ns->nfds > 0;
}

/* NSFS: each mount point once, in mountinfo's order */
static int mount_points(struct ls_buf *out, const struct ls_ns *ns, char sep)
{
    int shown = 0;
    for (int i = 0; i < ns->nmounts; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = strcmp(ns->mounts[i], ns->mounts[j]) == 0;
        if (seen)
            continue;
        if (shown++)
            ls_putc(out, sep);
        ls_puts(out, ns->mounts[i]);
    }
    return shown > 0;
}

int ls_cell(const struct ls_row *row, int col, const struct ls_args *a, struct ls_buf *out)
{
    const struct ls_ns *ns = row->ns;
    struct ls_proc *p = row->proc;
    out->n = 0;
    if (out->p)
        out->p[0] = 0;
    switch (col) {
    case COL_NS:
        ls_printf(out, "%llu", ns->ino);
        return 1;
    case COL_TYPE:
        ls_puts(out, ls_kind_names[ns->kind]);
        return 1;
    case COL_NPROCS:
        ls_printf(out, "%d", ns->nprocs);
        return 1;
    case COL_PNS:
    case COL_PARENT:
        ls_printf(out, "%llu", ns->parent);
        return 1;
    case COL_ONS:
    case COL_OWNER:
        ls_printf(out, "%llu", ns->owner);
        return 1;
    case COL_FDS:
        return holders(out, ns);
    case COL_NSFS:
        return mount_points(out, ns, a->nowrap ? ',' : '\n');
    case COL_NETNSID:
        if (ns->kind != K_NET)
            return 0;
        if (ns->netnsid < 0)
            ls_puts(out, "unassigned");
        else
            ls_printf(out, "%d", ns->netnsid);
        return 1;
    case COL_UID:
    case COL_USER: {
        /* lsns: the creator of a user namespace no process is in, else 0 */
        unsigned uid = p ? (unsigned)p->uid : ns->uid >= 0 ? (unsigned)ns->uid : 0;
        if (col == COL_UID)
            ls_printf(out, "%u", uid);
        else
            ls_puts(out, user_name(uid));
        return 1;
    }
    }
    if (!p)
        return 0;
    switch (col) {
    case COL_PID:
        ls_printf(out, "%d", p->pid);
        return 1;
    case COL_PATH:
        ls_printf(out, "/proc/%d/ns/%s", p->pid, ls_kind_names[ns->kind]);
        return 1;
    case COL_PPID: {
        int ppid = ls_ppid(p);
        if (ppid < 0)
            return 0;
        ls_printf(out, "%d", ppid);
        return 1;
    }
    case COL_COMMAND:
        if (!ls_command(p))
            return 0;
        ls_put(out, p->cmd, p->cmd_len);
        return 1;
    }
    return 0;
}
