/* nsfast-runtime create in C: the container's mount steps and the check
 * that its program is there, step for step what nsfast/oci/config.py
 * mount_steps() and check_program() make of the same config.
 *
 * Python stays the judge: whatever it would refuse (OciError, or any other
 * exception) is OCI_FALLBACK here, and so is whatever this file does not
 * reproduce byte for byte; create then hands the command to Python, which
 * names the error.  Paths are bytes throughout (never assumed UTF-8), and
 * every question asked of the file system is the one Python asks: lstat
 * for islink/lexists, stat for isdir/isfile, an error meaning "no". */
#include "cli_oci_create.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define SYMLINK_HOPS 40             /* secure_join's limit */
#define NOT_FOUND 2                 /* check_program: try the next candidate */
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* ---- growing byte strings, always NUL-terminated */

struct buf {
    char *p;
    size_t n, cap;
};

static int buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

static int buf_str(struct buf *b, const char *s)
{
    return buf_put(b, s, strlen(s));
}

/* b = s1 s2 s3 (NULL parts left out) */
static int buf_set(struct buf *b, const char *s1, const char *s2, const char *s3)
{
    b->n = 0;
    int r = buf_put(b, "", 0);
    if (!r && s1)
        r = buf_str(b, s1);
    if (!r && s2)
        r = buf_str(b, s2);
    if (!r && s3)
        r = buf_str(b, s3);
    return r;
}

static void buf_cut(struct buf *b, size_t n)
{
    b->n = n;
    if (b->p)
        b->p[n] = '\0';
}

/* ---- the config's values, read as Python's json and dict read them */

/* Whether the bytes are ones Python reads and encodes back the same:
 * strict UTF-8 (Python decodes config.json so, and refuses anything else),
 * no NUL, and no U+FFFD, which json-c also makes of a lone surrogate
 * escape ("\udcff") that Python keeps and encodes back to the byte 0xff. */
static int same_in_python(const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t more;
        unsigned lo = 0x80, hi = 0xbf;      /* the range of the second byte */
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            more = 1;
        else if (c >= 0xe0 && c <= 0xef) {
            more = 2;
            if (c == 0xe0)
                lo = 0xa0;                  /* no overlong forms */
            if (c == 0xed)
                hi = 0x9f;                  /* no surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            more = 3;
            if (c == 0xf0)
                lo = 0x90;
            if (c == 0xf4)
                hi = 0x8f;                  /* nothing past U+10FFFF */
        } else
            return 0;
        if (i + more >= n || s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= more; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return 0;
        if (c == 0xef && s[i + 1] == 0xbf && s[i + 2] == 0xbd)
            return 0;
        i += more + 1;
    }
    return 1;
}

/* *s = the JSON string o, or OCI_FALLBACK for anything else. */
static int text_of(struct json_object *o, const char **s)
{
    if (!json_object_is_type(o, json_type_string))
        return OCI_FALLBACK;
    const char *p = json_object_get_string(o);
    size_t n = (size_t)json_object_get_string_len(o);
    if (strlen(p) != n || !same_in_python(p, n))
        return OCI_FALLBACK;
    *s = p;
    return 0;
}

/* How many items `value or ()` iterates over: a false value none, an array
 * its items; OCI_FALLBACK for what Python would iterate otherwise (a
 * string's characters, an object's keys). */
static int list_len(struct json_object *value, size_t *n)
{
    *n = 0;
    if (!oci_json_truthy(value))
        return 0;
    if (!json_object_is_type(value, json_type_array))
        return OCI_FALLBACK;
    *n = json_object_array_length(value);
    return 0;
}

/* `value or {}` as a dict: *obj NULL for a false value (empty);
 * OCI_FALLBACK for a true one that is no object (.get would raise). */
static int dict_of(struct json_object *value, struct json_object **obj)
{
    *obj = NULL;
    if (!oci_json_truthy(value))
        return 0;
    if (!json_object_is_type(value, json_type_object))
        return OCI_FALLBACK;
    *obj = value;
    return 0;
}

/* ---- Python's path functions, on bytes */

static int is_link(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

static int lexists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The length of os.path.dirname(p[:n]), which is always a prefix of p: up
 * to the last slash, trailing slashes removed unless it is only slashes. */
static size_t dirname_len(const char *p, size_t n)
{
    size_t i = n;
    while (i > 0 && p[i - 1] != '/')
        i--;
    size_t j = i;
    while (j > 0 && p[j - 1] == '/')
        j--;
    return j ? j : i;
}

/* os.path.normpath(path) into out: "." and ".." resolved by text, "//" kept
 * at the start (exactly two slashes), "." for nothing. */
static int normpath(const char *path, struct buf *out)
{
    size_t n = strlen(path), lead = 0, kept = 0;
    if (path[0] == '/')
        lead = (path[1] == '/' && path[2] != '/') ? 2 : 1;
    int r = buf_set(out, lead == 2 ? "//" : lead ? "/" : "", NULL, NULL);
    size_t base = out->n;
    for (size_t i = 0; !r && i < n;) {
        size_t end = i;
        while (end < n && path[end] != '/')
            end++;
        size_t len = end - i;
        const char *comp = path + i;
        i = end + 1;
        if (len == 0 || (len == 1 && comp[0] == '.'))
            continue;
        int dots = len == 2 && comp[0] == '.' && comp[1] == '.';
        /* the last kept component, to see whether it is ".." itself */
        const char *last = out->p + base;
        if (kept) {
            last = memrchr(out->p + base, '/', out->n - base);
            last = last ? last + 1 : out->p + base;
        }
        int last_dots = kept && strcmp(last, "..") == 0;
        if (!dots || (!lead && !kept) || last_dots) {
            if (kept)
                r = buf_put(out, "/", 1);
            if (!r)
                r = buf_put(out, comp, len);
            kept++;
        } else if (kept) {
            buf_cut(out, (size_t)(last - out->p) - (kept > 1 ? 1 : 0));
            kept--;
        }
    }
    if (!r && out->n == 0)
        r = buf_put(out, ".", 1);
    return r;
}

/* config.py secure_join(): rootfs + path with each symlink on the way
 * resolved inside rootfs, as if rootfs were /, into out.  OCI_FALLBACK
 * past 40 links or when a link cannot be read (Python raises). */
static int secure_join(const char *root, const char *path, struct buf *out)
{
    struct buf rest = {0}, done = {0}, here = {0};   /* done: "/a/b" */
    char target[PATH_MAX + 1];
    size_t pos = 0;
    int hops = 0;
    int r = buf_str(&rest, path);
    if (!r)
        r = buf_put(&done, "", 0);
    while (!r) {
        while (pos < rest.n && rest.p[pos] == '/')
            pos++;
        if (pos == rest.n)
            break;
        size_t end = pos;
        while (end < rest.n && rest.p[end] != '/')
            end++;
        const char *part = rest.p + pos;
        size_t len = end - pos;
        pos = end;
        if (len == 1 && part[0] == '.')
            continue;
        if (len == 2 && part[0] == '.' && part[1] == '.') {
            char *slash = memrchr(done.p, '/', done.n);
            buf_cut(&done, slash ? (size_t)(slash - done.p) : 0);
            continue;
        }
        if ((r = buf_set(&here, root, done.p, "/")) || (r = buf_put(&here, part, len)))
            break;
        if (!is_link(here.p)) {
            if (!(r = buf_put(&done, "/", 1)))
                r = buf_put(&done, part, len);
            continue;
        }
        ssize_t tn = readlink(here.p, target, sizeof target);
        if (++hops > SYMLINK_HOPS || tn <= 0 || (size_t)tn >= sizeof target) {
            r = OCI_FALLBACK;
            break;
        }
        if (target[0] == '/')
            buf_cut(&done, 0);
        /* what is left: the link's parts first */
        struct buf next = {0};
        if (!(r = buf_put(&next, target, (size_t)tn)) && !(r = buf_put(&next, "/", 1)))
            r = buf_put(&next, rest.p + pos, rest.n - pos);
        free(rest.p);
        rest = next;
        pos = 0;
    }
    if (!r)
        r = buf_set(out, root, done.p, NULL);
    free(rest.p);
    free(done.p);
    free(here.p);
    return r;
}

/* ---- the step list */

static int push(struct oci_steps *out, int kind, int readonly, unsigned long flags,
                const char *src, const char *dst, const char *data)
{
    if (out->n == out->cap) {
        int cap = out->cap ? out->cap * 2 : 64;
        struct nsf_mount_step *v = realloc(out->v, (size_t)cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        out->v = v;
        out->cap = cap;
    }
    char *s = src ? strdup(src) : NULL, *d = dst ? strdup(dst) : NULL;
    char *o = data ? strdup(data) : NULL;
    if ((src && !s) || (dst && !d) || (data && !o)) {
        free(s);
        free(d);
        free(o);
        return -ENOMEM;
    }
    out->v[out->n++] = (struct nsf_mount_step){kind, readonly, flags, s, d, o};
    return 0;
}

/* Free the steps from index `from` on. */
static void steps_cut(struct oci_steps *s, int from)
{
    for (int i = from; i < s->n; i++) {
        free((char *)s->v[i].src);
        free((char *)s->v[i].dst);
        free((char *)s->v[i].data);
    }
    s->n = from;
}

void oci_steps_free(struct oci_steps *s)
{
    steps_cut(s, 0);
    free(s->v);
    s->v = NULL;
    s->cap = 0;
}

/* Escaped as the comparison with Python's steps needs it: bytes outside
 * 0x21-0x7e and the backslash as \xHH, "-" for a missing string. */
static void print_bytes(FILE *f, const char *s)
{
    if (!s) {
        fputc('-', f);
        return;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x21 || *p > 0x7e || *p == '\\')
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
}

void oci_print_steps(FILE *f, const struct oci_steps *s)
{
    for (int i = 0; i < s->n; i++) {
        const struct nsf_mount_step *m = &s->v[i];
        fprintf(f, "%d %d 0x%lx ", m->kind, m->readonly ? 1 : 0, m->flags);
        print_bytes(f, m->src);
        fputc(' ', f);
        print_bytes(f, m->dst);
        fputc(' ', f);
        print_bytes(f, m->data);
        fputc('\n', f);
    }
}

/* config.py _parents(): a mkdir step for each missing directory above
 * dst, below the rootfs, outermost first. */
static int parent_steps(struct oci_steps *out, const char *root, const char *dst)
{
    size_t root_len = strlen(root), n = dirname_len(dst, strlen(dst)), k = 0;
    size_t *missing = malloc((strlen(dst) + 1) * sizeof *missing);
    struct buf d = {0};
    int r = missing ? 0 : -ENOMEM;
    while (!r && n > root_len) {
        d.n = 0;
        if ((r = buf_put(&d, dst, n)) || is_dir(d.p))
            break;
        missing[k++] = n;
        size_t up = dirname_len(dst, n);
        if (up == n)
            r = OCI_FALLBACK;      /* only slashes, not a directory: Python loops */
        n = up;
    }
    while (!r && k > 0) {
        d.n = 0;
        if (!(r = buf_put(&d, dst, missing[--k])))
            r = push(out, NSF_MOUNT_MKDIR, 0, 0, NULL, d.p, NULL);
    }
    free(missing);
    free(d.p);
    return r;
}

/* ---- mount options (config.py _options) */

static const struct {
    const char *name;
    unsigned long on, off;
} option_flags[] = {
    {"ro", MS_RDONLY, 0}, {"rw", 0, MS_RDONLY}, {"nosuid", MS_NOSUID, 0},
    {"suid", 0, MS_NOSUID}, {"nodev", MS_NODEV, 0}, {"dev", 0, MS_NODEV},
    {"noexec", MS_NOEXEC, 0}, {"exec", 0, MS_NOEXEC}, {"sync", MS_SYNCHRONOUS, 0},
    {"async", 0, MS_SYNCHRONOUS}, {"dirsync", MS_DIRSYNC, 0},
    {"mand", MS_MANDLOCK, 0}, {"nomand", 0, MS_MANDLOCK},
    {"noatime", MS_NOATIME, 0}, {"atime", 0, MS_NOATIME},
    {"nodiratime", MS_NODIRATIME, 0}, {"diratime", 0, MS_NODIRATIME},
    {"relatime", MS_RELATIME, 0}, {"norelatime", 0, MS_RELATIME},
    {"strictatime", MS_STRICTATIME, 0}, {"nostrictatime", 0, MS_STRICTATIME},
};

static const struct {
    const char *name;
    unsigned long flags;
} option_propagation[] = {
    {"private", MS_PRIVATE}, {"rprivate", MS_PRIVATE | MS_REC},
    {"slave", MS_SLAVE}, {"rslave", MS_SLAVE | MS_REC},
    {"shared", MS_SHARED}, {"rshared", MS_SHARED | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

struct options {
    unsigned long flags, prop;
    struct buf data;                /* the rest, joined by commas */
    int n_data;                     /* how many: "" and "" make "," */
    int bind, rbind, copyup;
};

static int parse_options(struct json_object *list, struct options *o)
{
    size_t n;
    int r = list_len(list, &n);
    if (!r)
        r = buf_put(&o->data, "", 0);
    for (size_t i = 0; !r && i < n; i++) {
        const char *opt;
        if ((r = text_of(json_object_array_get_idx(list, i), &opt)))
            break;
        size_t k;
        for (k = 0; k < COUNT(option_flags) && strcmp(opt, option_flags[k].name); k++)
            ;
        if (k < COUNT(option_flags)) {
            o->flags = (o->flags | option_flags[k].on) & ~option_flags[k].off;
            continue;
        }
        for (k = 0; k < COUNT(option_propagation) && strcmp(opt, option_propagation[k].name);
             k++)
            ;
        if (k < COUNT(option_propagation))
            o->prop |= option_propagation[k].flags;
        else if (!strcmp(opt, "bind"))
            o->bind = 1;
        else if (!strcmp(opt, "rbind"))
            o->bind = o->rbind = 1;
        else if (!strcmp(opt, "tmpcopyup"))
            o->copyup = 1;
        else if (!strcmp(opt, "idmap") || !strcmp(opt, "ridmap") ||
                 !strcmp(opt, "copy-symlink") || !strcmp(opt, "remount"))
            r = OCI_FALLBACK;
        else if (!(r = o->n_data++ ? buf_put(&o->data, ",", 1) : 0))
            r = buf_str(&o->data, opt);
    }
    return r;
}

/* ---- the steps of the config's mounts */

struct mounts_ctx {
    struct oci_steps *out;
    const char *root;
    const char *cgroup_rel;
    const struct oci_hierarchy *h;
    int n_h;
    int dev_bound;
};

/* os.listdir(dir) has entries; OCI_FALLBACK when it cannot be read. */
static int dir_has_entries(const char *dir, int *yes)
{
    DIR *d = opendir(dir);
    if (!d)
        return OCI_FALLBACK;
    struct dirent *e;
    *yes = 0;
    errno = 0;
    while (!*yes && (e = readdir(d)))
        *yes = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    int failed = !*yes && errno;
    closedir(d);
    return failed ? OCI_FALLBACK : 0;
}

/* config.py _cgroup_steps(): a tmpfs on dst with the container's own
 * directory of each hierarchy bound in, read-only as the mount asks. */
static int cgroup_steps(struct mounts_ctx *c, const char *dst, unsigned long flags)
{
    const unsigned long hidden = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    int ro = !!(flags & MS_RDONLY);
    struct buf target = {0}, src = {0};
    int r = push(c->out, NSF_MOUNT_MKDIR, 0, 0, NULL, dst, NULL);
    if (!r)
        r = push(c->out, NSF_MOUNT_TMPFS, 0, hidden, "tmpfs", dst, "mode=755");
    for (int i = 0; !r && i < c->n_h; i++) {
        /* the name with every "name=" taken out ("name=systemd": systemd) */
        if ((r = buf_set(&target, dst, "/", NULL)))
            break;
        for (const char *p = c->h[i].name; !r && *p;) {
            if (!strncmp(p, "name=", 5)) {
                p += 5;
                continue;
            }
            r = buf_put(&target, p++, 1);
        }
        if (!r)
            r = push(c->out, NSF_MOUNT_MKDIR, 0, 0, NULL, target.p, NULL);
        if (!r)
            r = buf_set(&src, c->h[i].mount, c->cgroup_rel, NULL);
        if (!r)
            r = push(c->out, NSF_MOUNT_BIND, ro, 0, src.p, target.p, NULL);
    }
    if (!r && ro)
        r = push(c->out, NSF_MOUNT_FS, 0, MS_REMOUNT | hidden | MS_RDONLY, NULL, dst, NULL);
    free(target.p);
    free(src.p);
    return r;
}

static const char *const fs_types[] = {"tmpfs", "proc", "sysfs", "devpts", "mqueue",
                                       "cgroup", "cgroup2"};

static int is_fs_type(const char *kind)
{
    for (size_t i = 0; i < COUNT(fs_types); i++)
        if (!strcmp(kind, fs_types[i]))
            return 1;
    return 0;
}

static int bind_steps(struct mounts_ctx *c, struct json_object *m, const char *dest,
                      const char *dst, const struct options *o)
{
    const char *src;
    struct buf norm = {0};
    if (text_of(oci_json_get(m, "source"), &src) || src[0] != '/')
        return OCI_FALLBACK;       /* a relative source, or none */
    int r = normpath(dest, &norm);
    if (!r && !strcmp(norm.p, "/dev"))
        c->dev_bound = 1;
    free(norm.p);
    if (!r)
        r = parent_steps(c->out, c->root, dst);
    if (!r)
        r = push(c->out, is_dir(src) ? NSF_MOUNT_MKDIR : NSF_MOUNT_FILE, 0, 0, NULL, dst, NULL);
    if (!r)
        r = push(c->out, NSF_MOUNT_BIND, 0, o->rbind ? MS_REC : 0, src, dst, NULL);
    if (!r && o->flags)
        r = push(c->out, NSF_MOUNT_FS, 0, MS_REMOUNT | MS_BIND | o->flags, NULL, dst, NULL);
    return r;
}

/* The steps of a mount by its type (kind) or its bind option. */
static int kind_steps(struct mounts_ctx *c, struct json_object *m, const char *kind,
                      const char *dest, const char *dst, const struct options *o)
{
    int r;
    if (!strcmp(kind, "bind") || o->bind)
        return bind_steps(c, m, dest, dst, o);
    if (!strcmp(kind, "cgroup") || !strcmp(kind, "cgroup2")) {
        if (!(r = parent_steps(c->out, c->root, dst)))
            r = cgroup_steps(c, dst, o->flags);
        return r;
    }
    if (!is_fs_type(kind))
        return OCI_FALLBACK;        /* a type Python does not mount */
    if (!(r = parent_steps(c->out, c->root, dst)))
        r = push(c->out, NSF_MOUNT_MKDIR, 0, 0, NULL, dst, NULL);
    if (!r)
        r = push(c->out, NSF_MOUNT_FS, 0, o->flags, kind, dst, o->data.n ? o->data.p : NULL);
    return r;
}

/* One item of config.mounts. */
static int mount_item(struct mounts_ctx *c, struct json_object *m)
{
    static const char *const keys[] = {"destination", "type", "source", "options",
                                       "uidMappings", "gidMappings"};
    if (!json_object_is_type(m, json_type_object))
        return OCI_FALLBACK;
    json_object_object_foreach(m, key, value) {
        size_t k;
        (void)value;
        for (k = 0; k < COUNT(keys) && strcmp(key, keys[k]); k++)
            ;
        if (k == COUNT(keys))
            return OCI_FALLBACK;
    }
    if (oci_json_given(m, "uidMappings") || oci_json_given(m, "gidMappings"))
        return OCI_FALLBACK;
    const char *dest, *kind = "";
    if (text_of(oci_json_get(m, "destination"), &dest))
        return OCI_FALLBACK;
    struct json_object *type = oci_json_get(m, "type");
    if (oci_json_truthy(type) && text_of(type, &kind))
        return OCI_FALLBACK;        /* a type that is no string */
    struct options o = {0};
    struct buf dst = {0};
    int r = secure_join(c->root, dest, &dst);
    if (!r)
        r = parse_options(oci_json_get(m, "options"), &o);
    if (!r && o.copyup && is_dir(dst.p)) {
        int full;
        r = dir_has_entries(dst.p, &full);
        if (!r && full)
            r = OCI_FALLBACK;      /* crun's copy of what the tmpfs covers */
    }
    if (!r)
        r = kind_steps(c, m, kind, dest, dst.p, &o);
    if (!r && o.prop)
        r = push(c->out, NSF_MOUNT_FS, 0, o.prop, NULL, dst.p, NULL);
    free(o.data.p);
    free(dst.p);
    return r;
}

/* config.py _default_devices(): the host's nodes bound into ROOT/dev (not
 * resolved inside the rootfs, as Python does not) and the fd links. */
static int default_devices(struct oci_steps *out, const char *root)
{
    static const char *const devices[] = {"null", "zero", "full", "random", "urandom",
                                          "tty"};
    static const char *const links[][2] = {
        {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
        {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}};
    struct buf dev = {0}, target = {0}, host = {0};
    int r = buf_set(&dev, root, "/dev", NULL);
    if (!r)
        r = push(out, NSF_MOUNT_MKDIR, 0, 0, NULL, dev.p, NULL);
    for (size_t i = 0; !r && i < COUNT(devices); i++) {
        if (!(r = buf_set(&target, dev.p, "/", devices[i])))
            r = buf_set(&host, "/dev/", devices[i], NULL);
        if (!r)
            r = push(out, NSF_MOUNT_FILE, 0, 0, NULL, target.p, NULL);
        if (!r)
            r = push(out, NSF_MOUNT_BIND, 0, 0, host.p, target.p, NULL);
    }
    for (size_t i = 0; !r && i < COUNT(links); i++) {
        if (!(r = buf_set(&target, dev.p, "/", links[i][1])))
            r = push(out, NSF_MOUNT_SYMLINK, 0, 0, links[i][0], target.p, NULL);
    }
    free(dev.p);
    free(target.p);
    free(host.p);
    return r;
}

/* ---- masked and read-only paths */

/* The mount points of a fresh proc or sysfs, each normpath + "/": where the
 * parent sees /proc/... and /sys/... as the child will (as_seen). */
struct fresh {
    char **dirs;
    size_t n;
};

static int fresh_mounts(struct json_object *mounts, size_t n, struct fresh *f)
{
    struct buf norm = {0};
    int r = 0;
    f->dirs = calloc(n + 1, sizeof *f->dirs);
    if (!f->dirs)
        return -ENOMEM;
    for (size_t i = 0; !r && i < n; i++) {
        struct json_object *m = json_object_array_get_idx(mounts, i);
        const char *type, *dest;
        if (text_of(oci_json_get(m, "type"), &type) ||
            (strcmp(type, "proc") && strcmp(type, "sysfs")))
            continue;
        if ((r = text_of(oci_json_get(m, "destination"), &dest)) || (r = normpath(dest, &norm)) ||
            (r = buf_put(&norm, "/", 1)))
            break;
        if (!(f->dirs[f->n] = strdup(norm.p)))
            r = -ENOMEM;
        else
            f->n++;
    }
    free(norm.p);
    return r;
}

static void fresh_free(struct fresh *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->dirs[i]);
    free(f->dirs);
}

/* config.py as_seen(p): p itself under a fresh /proc or /sys, else p in
 * the rootfs (by text: rootfs + p). */
static int as_seen(const struct fresh *f, const char *rootfs, const char *p, struct buf *out)
{
    if (!strncmp(p, "/proc/", 6) || !strncmp(p, "/sys/", 5))
        for (size_t i = 0; i < f->n; i++)
            if (!strncmp(p, f->dirs[i], strlen(f->dirs[i])))
                return buf_set(out, p, NULL, NULL);
    return buf_set(out, rootfs, p, NULL);
}

/* linux.maskedPaths (masked) or linux.readonlyPaths: for each path there
 * as the child will see it, an empty read-only tmpfs over a directory or
 * /dev/null over a file, or a read-only bind of the path on itself. */
static int confine_steps(struct oci_steps *out, const char *root, struct json_object *linux_conf,
                         const struct fresh *f, int masked)
{
    struct json_object *list =
        oci_json_get(linux_conf, masked ? "maskedPaths" : "readonlyPaths");
    struct buf dst = {0}, seen = {0};
    size_t n;
    int r = list_len(list, &n);
    for (size_t i = 0; !r && i < n; i++) {
        const char *p;
        if ((r = text_of(json_object_array_get_idx(list, i), &p)))
            break;
        /* a masked path is resolved first: Python raises for a bad one
         * even when it is not there */
        if (masked && (r = secure_join(root, p, &dst)))
            break;
        if ((r = as_seen(f, root, p, &seen)) || !lexists(seen.p))
            continue;
        if (!masked && (r = secure_join(root, p, &dst)))
            break;
        if (!masked)
            r = push(out, NSF_MOUNT_BIND, 1, MS_REC, dst.p, dst.p, NULL);
        else if (is_dir(seen.p))
            r = push(out, NSF_MOUNT_TMPFS, 1, MS_NOSUID | MS_NODEV | MS_NOEXEC, "tmpfs", dst.p,
                     "mode=0555");
        else
            r = push(out, NSF_MOUNT_BIND, 0, 0, "/dev/null", dst.p, NULL);
    }
    free(dst.p);
    free(seen.p);
    return r;
}

/* device_steps() reads linux.namespaces whatever the devices: any(
 * n.get("type") == "user" and not n.get("path") ...) raises on an item
 * that is no object before the first such one. */
static int namespaces_readable(struct json_object *linux_conf)
{
    struct json_object *list = oci_json_get(linux_conf, "namespaces");
    size_t n;
    int r = list_len(list, &n);
    for (size_t i = 0; !r && i < n; i++) {
        struct json_object *ns = json_object_array_get_idx(list, i);
        const char *type;
        if (!json_object_is_type(ns, json_type_object))
            return OCI_FALLBACK;
        if (!text_of(oci_json_get(ns, "type"), &type) && !strcmp(type, "user") &&
            !oci_json_given(ns, "path"))
            break;
    }
    return r;
}

static int mount_steps(struct json_object *config, struct mounts_ctx *c)
{
    struct json_object *mounts, *linux_conf, *root_conf;
    size_t n;
    if (!json_object_is_type(config, json_type_object))
        return OCI_FALLBACK;
    mounts = oci_json_get(config, "mounts");
    int r = list_len(mounts, &n);
    if (!r)
        r = dict_of(oci_json_get(config, "linux"), &linux_conf);
    if (!r)
        r = dict_of(oci_json_get(config, "root"), &root_conf);
    if (r)
        return r;
    /* linux.devices: the namespaces decide between mknod and binds, left
     * to Python */
    if (linux_conf && (oci_json_given(linux_conf, "devices") || namespaces_readable(linux_conf)))
        return OCI_FALLBACK;
    if ((r = push(c->out, NSF_MOUNT_BIND, 0, MS_REC, c->root, c->root, NULL)))
        return r;
    for (size_t i = 0; !r && i < n; i++)
        r = mount_item(c, json_object_array_get_idx(mounts, i));
    if (!r && !c->dev_bound)
        r = default_devices(c->out, c->root);
    if (r)
        return r;
    if (linux_conf) {
        struct fresh f = {0};
        r = fresh_mounts(mounts, n, &f);
        if (!r)
            r = confine_steps(c->out, c->root, linux_conf, &f, 1);
        if (!r)
            r = confine_steps(c->out, c->root, linux_conf, &f, 0);
        fresh_free(&f);
    }
    if (!r && root_conf && oci_json_given(root_conf, "readonly"))
        r = push(c->out, NSF_MOUNT_FS, 0, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL, c->root, NULL);
    if (!r)
        r = push(c->out, NSF_MOUNT_PIVOT, 0, NSF_PIVOT_MOUNTED, c->root, NULL, NULL);
    return r;
}

int oci_mount_steps(struct json_object *config, const char *rootfs, const char *cgroup_rel,
                    const struct oci_hierarchy *h, int n, struct oci_steps *out)
{
    if (!rootfs || !cgroup_rel || n < 0 || (n && !h))
        return -EINVAL;
    struct mounts_ctx c = {out, rootfs, cgroup_rel, h, n, 0};
    int from = out->n;
    int r = mount_steps(config, &c);
    if (r)
        steps_cut(out, from);       /* none of them, then */
    return r;
}

/* ---- check_program */

/* The normalized destinations of config.mounts but "/" (malloc'd, NULL
 * at the end), where a program is seen only inside. */
static int mount_points(struct json_object *config, char ***points)
{
    struct json_object *mounts = oci_json_get(config, "mounts");
    struct buf norm = {0};
    size_t n, k = 0;
    int r = list_len(mounts, &n);
    if (r)
        return r;
    if (!(*points = calloc(n + 1, sizeof **points)))
        return -ENOMEM;
    for (size_t i = 0; !r && i < n; i++) {
        struct json_object *m = json_object_array_get_idx(mounts, i), *d;
        const char *dest = "/";     /* m.get("destination", "/") */
        if (!json_object_is_type(m, json_type_object))
            r = OCI_FALLBACK;
        else if (json_object_object_get_ex(m, "destination", &d))
            r = text_of(d, &dest);
        if (r || (r = normpath(dest, &norm)) || !strcmp(norm.p, "/"))
            continue;
        if (!((*points)[k++] = strdup(norm.p)))
            r = -ENOMEM;
    }
    free(norm.p);
    return r;
}

/* Whether candidate is a mount point or below one. */
static int under_mount(char *const *points, const char *candidate)
{
    for (; *points; points++) {
        size_t len = strlen(*points);
        if (!strcmp(candidate, *points))
            return 1;
        while (len > 0 && (*points)[len - 1] == '/')
            len--;                  /* m.rstrip("/") + "/" */
        if (!strncmp(candidate, *points, len) && candidate[len] == '/')
            return 1;
    }
    return 0;
}

/* 0 when the candidate is found, NOT_FOUND to try the next one. */
static int try_candidate(const char *rootfs, char *const *points, const char *candidate)
{
    struct buf path = {0};
    if (under_mount(points, candidate))
        return 0;
    int r = secure_join(rootfs, candidate, &path);
    if (!r && !is_file(path.p))
        r = NOT_FOUND;
    free(path.p);
    return r;
}

/* os.path.join(dir, name) for a name that is not absolute. */
static int join(const char *dir, const char *name, struct buf *out)
{
    size_t n = strlen(dir);
    return buf_set(out, dir, n && dir[n - 1] != '/' ? "/" : "", name);
}

static int check_program(struct json_object *config, const char *rootfs, const char *argv0,
                         const char *env_path, char *const *points)
{
    struct buf candidate = {0};
    int r;
    if (argv0[0] == '/')
        r = try_candidate(rootfs, points, argv0);
    else if (strchr(argv0, '/')) {
        struct json_object *process;
        const char *cwd = "/";
        r = dict_of(oci_json_get(config, "process"), &process);
        if (!r && process && oci_json_given(process, "cwd"))
            r = text_of(oci_json_get(process, "cwd"), &cwd);
        if (!r && !(r = join(cwd, argv0, &candidate)))
            r = try_candidate(rootfs, points, candidate.p);
    } else {
        const char *path = env_path ? env_path : DEFAULT_PATH;
        r = NOT_FOUND;
        if (!same_in_python(path, strlen(path)))
            r = OCI_FALLBACK;
        for (const char *d = path; r == NOT_FOUND; d++) {
            const char *end = strchrnul(d, ':');
            if (d[0] == '/') {
                char *dir = strndup(d, (size_t)(end - d));
                r = dir ? join(dir, argv0, &candidate) : -ENOMEM;
                free(dir);
                if (!r)
                    r = try_candidate(rootfs, points, candidate.p);
            }
            if (!*end)
                break;
            d = end;
        }
    }
    free(candidate.p);
    return r == NOT_FOUND ? OCI_FALLBACK : r;
}

int oci_check_program(struct json_object *config, const char *rootfs, const char *argv0,
                      const char *env_path)
{
    char **points = NULL;
    if (!rootfs || !argv0)
        return -EINVAL;
    if (!json_object_is_type(config, json_type_object) ||
        !same_in_python(argv0, strlen(argv0)))
        return OCI_FALLBACK;
    int r = mount_points(config, &points);
    if (!r)
        r = check_program(config, rootfs, argv0, env_path, points);
    for (size_t i = 0; points && points[i]; i++)
        free(points[i]);
    free(points);
    return r;
}
