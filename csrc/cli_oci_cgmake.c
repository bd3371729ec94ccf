/* nsfast-runtime's create in C: the container's cgroups (csrc/cli_oci_create.h).
 *
 * nsfast/oci/cgroup.py is the reference, matched step for step: mounted()
 * names the hierarchies, make() makes the directory at cgroupsPath in each
 * one (the parents it had to make go to ROOT/cgroup-parents under the flock
 * of cgroup.Parents), _limit() and _device_rules() write linux.resources.
 * Where this file cannot be sure to do what Python does (a value Python would
 * print otherwise, a field it refuses, a controller that is not mounted),
 * oci_resources_check says OCI_FALLBACK before anything is made and Python's
 * create does the whole command.  So the Python quirks are kept here on
 * purpose: a difference would make the two runtimes disagree about the same
 * bundle.  csrc/cli_oci_cgroup.c acts on these cgroups later. */
#include "cli.h"
#include "cli_oci_create.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Python's string and path rules, where make() relies on them */

/* Length of the whitespace character at p as Python's str.split() sees the
 * surrogateescape-decoded text: the ASCII ones and the UTF-8 of U+0085,
 * U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
 * 0 when it is none.  (A lead byte is never a continuation byte, so these
 * byte patterns are exactly where Python's decoder finds those characters.) */
static size_t py_space(const unsigned char *p, const unsigned char *end)
{
    size_t left = (size_t)(end - p);
    if (left == 0)
        return 0;
    if (*p && strchr("\t\n\v\f\r\x1c\x1d\x1e\x1f ", *p))
        return 1;
    if (left >= 2 && p[0] == 0xc2 && (p[1] == 0x85 || p[1] == 0xa0))
        return 2;
    if (left < 3)
        return 0;
    if ((p[0] == 0xe1 && p[1] == 0x9a && p[2] == 0x80) ||
        (p[0] == 0xe2 && p[1] == 0x80 &&
         ((p[2] >= 0x80 && p[2] <= 0x8a) || p[2] == 0xa8 || p[2] == 0xa9 || p[2] == 0xaf)) ||
        (p[0] == 0xe2 && p[1] == 0x81 && p[2] == 0x9f) ||
        (p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80))
        return 3;
    return 0;
}

/* Word number `want` (from 0) of s[0..len) as str.split() cuts it; 0 when
 * there are fewer words. */
static int py_word(const char *s, size_t len, int want, const char **word, size_t *wlen)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    for (int i = 0;; i++) {
        size_t sp;
        while (p < end && (sp = py_space(p, end)) > 0)
            p += sp;
        if (p == end)
            return 0;
        const unsigned char *start = p;
        while (p < end && py_space(p, end) == 0)
            p++;
        if (i == want) {
            *word = (const char *)start;
            *wlen = (size_t)(p - start);
            return 1;
        }
    }
}

/* cgroups._unescape: a backslash and three octal digits become the
 * character of that code (as its UTF-8 when past 0x7f, as Python encodes the
 * path).  The length written, -1 when it does not fit or makes a NUL. */
static int py_unescape(const char *s, size_t len, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned v = (unsigned char)s[i];
        size_t used = 1;
        if (v == '\\' && len - i >= 4 && s[i + 1] >= '0' && s[i + 1] <= '7' &&
            s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
            v = (unsigned)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            used = 4;
            if (v == 0)
                return -1;
        }
        if (used == 4 && v >= 0x80) {
            if (o + 2 >= size)
                return -1;
            out[o++] = (char)(0xc0 | (v >> 6));
            out[o++] = (char)(0x80 | (v & 0x3f));
        } else {
            if (o + 1 >= size)
                return -1;
            out[o++] = (char)v;
        }
        i += used;
    }
    out[o] = 0;
    return (int)o;
}

/* Where os.path.dirname() and os.path.basename() cut p: the head's length
 * (its trailing slashes dropped unless it is all slashes) and the tail. */
static size_t py_head_len(const char *p, const char **tail)
{
    const char *slash = strrchr(p, '/');
    size_t i = slash ? (size_t)(slash - p) + 1 : 0, head = i;
    if (tail)
        *tail = p + i;
    while (head > 0 && p[head - 1] == '/')
        head--;
    return head > 0 ? head : i;
}

/* os.path.dirname(p), malloc'd (NULL: out of memory). */
static char *py_dirname(const char *p)
{
    return strndup(p, py_head_len(p, NULL));
}

/* os.path.join(a, b) for a b not starting with '/', malloc'd. */
static char *py_join(const char *a, const char *b)
{
    char *out;
    size_t n = strlen(a);
    if (asprintf(&out, "%s%s%s", a, n == 0 || a[n - 1] == '/' ? "" : "/", b) < 0)
        return NULL;
    return out;
}

/* repr() of an ASCII str, as Python's error texts quote values. */
static void py_repr(const char *s, char *out, size_t size)
{
    char q = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';
    size_t o = 0;
    if (size < 8)
        return;
    out[o++] = q;
    for (; *s && o + 6 < size; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\\' || ch == (unsigned char)q)
            o += (size_t)sprintf(out + o, "\\%c", ch);
        else if (ch == '\t' || ch == '\n' || ch == '\r')
            o += (size_t)sprintf(out + o, "\\%c", ch == '\t' ? 't' : ch == '\n' ? 'n' : 'r');
        else if (ch < 0x20 || ch == 0x7f)
            o += (size_t)sprintf(out + o, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    out[o++] = q;
    out[o] = 0;
}

/* str(value) where this file is sure it is what Python writes: an int that
 * json-c holds exactly, or a string of printable ASCII; NULL otherwise. */
static const char *py_str(struct json_object *v, char *buf, size_t size)
{
    if (json_object_is_type(v, json_type_int)) {
        int64_t i = json_object_get_int64(v);
        uint64_t u = json_object_get_uint64(v);
        if (i > INT64_MIN && i < INT64_MAX)
            snprintf(buf, size, "%lld", (long long)i);
        else if (i == INT64_MAX && u < UINT64_MAX)   /* json-c saturates past these */
            snprintf(buf, size, "%llu", (unsigned long long)u);
        else
            return NULL;
        return buf;
    }
    if (!json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return NULL;
    return s;
}

static int py_isdir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A growing list of malloc'd strings. */
struct strv {
    char **v;
    int n, cap;
};

static int strv_add(struct strv *s, char *p)
{
    if (!p)
        return -1;
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 8;
        char **v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) {
            free(p);
            return -1;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = p;
    return 0;
}

static void strv_free(struct strv *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* ---- mounted() */

static int by_bytes(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A v1 hierarchy's name from its super options: the controllers and name=,
 * sorted, as mounted() joins them.  -EINVAL for a byte past ASCII, where
 * Python's sort of surrogate-escaped text may differ from strcmp. */
static int v1_name(const char *opts, size_t len, char *name, size_t size)
{
    char *copy = strndup(opts, len), *kept[256];
    int n = 0, rc = 0;
    if (!copy)
        return -ENOMEM;
    for (char *o = copy, *next; o; o = next) {
        next = strchr(o, ',');
        if (next)
            *next++ = 0;
        if (!strcmp(o, "rw") || !strcmp(o, "ro") || !strcmp(o, "relatime") ||
            !strncmp(o, "no", 2) || (strchr(o, '=') && strncmp(o, "name=", 5)))
            continue;
        for (const char *p = o; *p; p++)
            if ((unsigned char)*p >= 0x80)
                rc = -EINVAL;
        if (n == 256)
            rc = -E2BIG;
        if (rc)
            break;
        kept[n++] = o;
    }
    if (!rc) {
        qsort(kept, (size_t)n, sizeof kept[0], by_bytes);
        size_t used = 0;
        name[0] = 0;
        for (int i = 0; i < n && !rc; i++) {
            int w = snprintf(name + used, size - used, "%s%s", i ? "," : "", kept[i]);
            if (w < 0 || (size_t)w >= size - used)
                rc = -ENAMETOOLONG;
            else
                used += (size_t)w;
        }
    }
    free(copy);
    return rc;
}

/* One line of mountinfo, as mounted() reads it: appended to out when it is
 * a cgroup hierarchy mounted at its root, under a name not seen yet.  0, or
 * -errno where Python would raise (a line it cannot unpack). */
static int hierarchy_line(const char *line, size_t len, struct oci_hierarchy *out, int *n,
                          int max)
{
    const char *sep = memmem(line, len, " - ", 3), *word;
    size_t left = sep ? (size_t)(sep - line) : len, wlen;
    const char *right = sep ? sep + 3 : line + len, *end = line + len;
    const char *sp1 = memchr(right, ' ', (size_t)(end - right));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1)) : NULL;
    if (!sp2)
        return -EINVAL;   /* fstype, _source, options = right.split(" ", 2) */
    size_t flen = (size_t)(sp1 - right);
    int v2 = flen == 7 && !memcmp(right, "cgroup2", 7);
    if (!v2 && !(flen == 6 && !memcmp(right, "cgroup", 6)))
        return 0;
    char root[8], name[sizeof out->name];
    if (!py_word(line, left, 3, &word, &wlen))
        return -EINVAL;
    if (py_unescape(word, wlen, root, sizeof root) < 0 || strcmp(root, "/") != 0)
        return 0;
    if (v2) {
        strcpy(name, "unified");
    } else {
        int rc = v1_name(sp2 + 1, (size_t)(end - sp2 - 1), name, sizeof name);
        if (rc)
            return rc;
    }
    if (!py_word(line, left, 4, &word, &wlen))
        return -EINVAL;
    for (int i = 0; i < *n; i++)
        if (!strcmp(out[i].name, name))
            return 0;   /* found.setdefault: the first mount of a name */
    if (*n == max)
        return -E2BIG;
    if (py_unescape(word, wlen, out[*n].mount, sizeof out[*n].mount) < 0)
        return -EINVAL;
    strcpy(out[*n].name, name);
    (*n)++;
    return 0;
}

int oci_hierarchies(struct oci_hierarchy *out, int max)
{
    size_t len;
    char *data = nsf_read_file("/proc/self/mountinfo", &len);
    int n = 0, rc = 0;
    if (!data)
        return -errno;
    /* lines as Python's text mode splits them: \n, \r\n and \r all end one */
    for (const char *line = data, *end = data + len; line < end && rc == 0;) {
        const char *stop = line;
        while (stop < end && *stop != '\n' && *stop != '\r')
            stop++;
        rc = hierarchy_line(line, (size_t)(stop - line), out, &n, max);
        line = stop + (stop < end ? 1 : 0);
        if (stop < end && *stop == '\r' && line < end && *line == '\n')
            line++;
    }
    free(data);
    return rc < 0 ? rc : n;
}

/* ---- check_resources() and _limit() */

/* One write of _limit(): value into file, for controller's error texts. */
struct limit {
    const char *controller;
    char *path, *value;
};

struct limits {
    struct limit *v;
    int n, cap;
};

static void limits_free(struct limits *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->v[i].path);
        free(l->v[i].value);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Queue file (under dir) = value; -ENOMEM. */
static int limit_add(struct limits *l, const char *controller, const char *dir,
                     const char *file, const char *value)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        struct limit *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    struct limit *one = &l->v[l->n];
    one->controller = controller;
    one->path = py_join(dir, file);
    one->value = strdup(value);
    if (!one->path || !one->value) {
        free(one->path);
        free(one->value);
        return -ENOMEM;
    }
    l->n++;
    return 0;
}

/* _limit's put(): the file in the hierarchy that has controller; where none
 * has it Python raises (OCI_FALLBACK, its message in why). */
static int put(struct limits *l, const struct oci_container *dirs, const char *controller,
               const char *file, const char *value, char *why, size_t why_size)
{
    const char *dir = oci_cgroup_dir(dirs, controller);
    if (!value) {
        snprintf(why, why_size, "linux.resources: a value for %s that the C create does not "
                 "write as nsfast/oci/cgroup.py does", file);
        return OCI_FALLBACK;
    }
    if (!dir) {
        snprintf(why, why_size, "linux.resources needs the %s cgroup controller, which this "
                 "host has not mounted as cgroup v1", controller);
        return OCI_FALLBACK;
    }
    return limit_add(l, controller, dir, file, value);
}

/* check_resources(): only SUPPORTED keys and fields, each group an object
 * (Python accepts a few other shapes, or fails on them: Python decides). */
static int check_keys(struct json_object *resources)
{
    static const char *const memory[] = {"limit", "swap", "reservation", "disableOOMKiller", 0};
    static const char *const pids[] = {"limit", 0};
    static const char *const cpu[] = {"shares", "quota", "period", "cpus", "mems", 0};
    static const struct {
        const char *key;
        const char *const *fields;
    } supported[] = {{"memory", memory}, {"pids", pids}, {"cpu", cpu}, {"devices", NULL}};
    json_object_object_foreach(resources, key, value) {
        unsigned i = 0;
        while (i < 4 && strcmp(key, supported[i].key) != 0)
            i++;
        if (i == 4)
            return OCI_FALLBACK;
        if (!supported[i].fields)
            continue;
        if (!json_object_is_type(value, json_type_object))
            return OCI_FALLBACK;
        json_object_object_foreach(value, field, v) {
            const char *const *f = supported[i].fields;
            (void)v;
            while (*f && strcmp(*f, field) != 0)
                f++;
            if (!*f)
                return OCI_FALLBACK;
        }
    }
    struct json_object *mem, *oom;
    if (json_object_object_get_ex(resources, "memory", &mem) &&
        json_object_object_get_ex(mem, "disableOOMKiller", &oom) && oci_json_truthy(oom))
        return OCI_FALLBACK;
    return 0;
}

static int has_swap(void)
{
    char *data = nsf_read_file("/proc/swaps", NULL);
    if (!data)
        return -1;
    char *nl = strchr(data, '\n');
    int more = nl && nl[1] != 0;   /* splitlines() > 1 */
    free(data);
    return more;
}

/* _device_rules(): each rule to devices.allow or devices.deny, then the
 * devices every container gets. */
static int device_rules(struct limits *l, const char *dir, struct json_object *rules,
                        char *why, size_t why_size)
{
    static const char *const defaults[] = {"c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                                           "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm",
                                           "c 136:* rwm"};
    int rc = 0;
    if (!json_object_is_type(rules, json_type_array))
        goto odd;
    for (size_t i = 0; i < json_object_array_length(rules) && !rc; i++) {
        struct json_object *r = json_object_array_get_idx(rules, i), *v;
        char kbuf[32], abuf[32], mbuf[2][32], *rule;
        const char *kind = "a", *access = "rwm", *num[2];
        static const char *const keys[2] = {"major", "minor"};
        if (!json_object_is_type(r, json_type_object))
            goto odd;
        /* r.get("type", "a"): a null there is Python's None, printed */
        if (json_object_object_get_ex(r, "type", &v) && !(kind = py_str(v, kbuf, sizeof kbuf)))
            goto odd;
        if (json_object_object_get_ex(r, "access", &v) &&
            !(access = py_str(v, abuf, sizeof abuf)))
            goto odd;
        for (int k = 0; k < 2; k++) {
            v = oci_json_get(r, keys[k]);
            if (!v || (json_object_is_type(v, json_type_int) && json_object_get_int64(v) == -1))
                num[k] = "*";
            else if (!(num[k] = py_str(v, mbuf[k], sizeof mbuf[k])))
                goto odd;
        }
        int all = !strcmp(kind, "a") && !strcmp(num[0], "*") && !strcmp(num[1], "*");
        if (asprintf(&rule, "%s %s:%s %s", kind, num[0], num[1], access) < 0)
            return -ENOMEM;
        rc = limit_add(l, "devices", dir, oci_json_given(r, "allow") ? "devices.allow" :
                       "devices.deny", all ? "a" : rule);
        free(rule);
    }
    for (unsigned i = 0; i < sizeof defaults / sizeof defaults[0] && !rc; i++)
        rc = limit_add(l, "devices", dir, "devices.allow", defaults[i]);
    return rc;
odd:
    snprintf(why, why_size, "linux.resources.devices: a rule the C create does not write as "
             "nsfast/oci/cgroup.py does");
    return OCI_FALLBACK;
}

/* What _limit(dirs, resources) writes, in its order, into l; dirs is the
 * hierarchies' names with their directories.  0, OCI_FALLBACK (why says
 * which, in Python's words where Python raises), or -ENOMEM. */
static int plan_limits(struct json_object *resources, const struct oci_container *dirs,
                       struct limits *l, char *why, size_t why_size)
{
    char buf[32];
    struct json_object *v;
    int rc = 0;
    snprintf(why, why_size, "linux.resources: not handled by the C create");
    if (!resources)
        return 0;
    if (!json_object_is_type(resources, json_type_object) || check_keys(resources))
        return OCI_FALLBACK;
    struct json_object *mem = oci_json_get(resources, "memory");
    if ((v = oci_json_get(mem, "limit")))
        rc = put(l, dirs, "memory", "memory.limit_in_bytes", py_str(v, buf, sizeof buf),
                 why, why_size);
    if (!rc && (v = oci_json_get(mem, "reservation")))
        rc = put(l, dirs, "memory", "memory.soft_limit_in_bytes", py_str(v, buf, sizeof buf),
                 why, why_size);
    if (!rc && (v = oci_json_get(mem, "swap"))) {
        const char *dir = oci_cgroup_dir(dirs, "memory");
        char *memsw = dir ? py_join(dir, "memory.memsw.limit_in_bytes") : NULL;
        struct stat st;
        if (dir && !memsw)
            return -ENOMEM;
        int exists = memsw && stat(memsw, &st) == 0;
        free(memsw);
        if (exists) {
            rc = put(l, dirs, "memory", "memory.memsw.limit_in_bytes",
                     py_str(v, buf, sizeof buf), why, why_size);
        } else if (has_swap() != 0) {
            snprintf(why, why_size, "linux.resources.memory.swap: this kernel does not "
                     "account swap (no memory.memsw.limit_in_bytes), and the host has swap");
            return OCI_FALLBACK;
        }
        /* no swap on the host: memory plus swap is memory, which is limited */
    }
    if (!rc && (v = oci_json_get(oci_json_get(resources, "pids"), "limit"))) {
        /* "max" if limit <= 0: an int only (Python compares others its own way) */
        if (!json_object_is_type(v, json_type_int))
            return OCI_FALLBACK;
        rc = put(l, dirs, "pids", "pids.max", json_object_get_int64(v) <= 0 ? "max" :
                 py_str(v, buf, sizeof buf), why, why_size);
    }
    static const char *const cpu_keys[][3] = {
        {"shares", "cpu", "cpu.shares"}, {"period", "cpu", "cpu.cfs_period_us"},
        {"quota", "cpu", "cpu.cfs_quota_us"}, {"cpus", "cpuset", "cpuset.cpus"},
        {"mems", "cpuset", "cpuset.mems"}};
    struct json_object *cpu = oci_json_get(resources, "cpu");
    for (unsigned i = 0; i < sizeof cpu_keys / sizeof cpu_keys[0] && !rc; i++)
        if ((v = oci_json_get(cpu, cpu_keys[i][0])) && oci_json_truthy(v))
            rc = put(l, dirs, cpu_keys[i][1], cpu_keys[i][2], py_str(v, buf, sizeof buf),
                     why, why_size);
    const char *devices = oci_cgroup_dir(dirs, "devices");
    if (!rc && (v = oci_json_get(resources, "devices")) && devices)
        rc = device_rules(l, devices, v, why, why_size);
    return rc;
}

int oci_resources_check(struct json_object *resources, const struct oci_hierarchy *h, int n)
{
    /* the hierarchies' mount points stand for the directories to come: they
     * have the same controllers and the same files */
    struct oci_container *dirs = calloc(1, sizeof *dirs);
    struct limits l = {0};
    char why[256];
    if (!dirs || n > OCI_MAX_CGROUPS) {
        free(dirs);
        return OCI_FALLBACK;
    }
    for (int i = 0; i < n; i++) {
        snprintf(dirs->cgroups[i].name, sizeof dirs->cgroups[i].name, "%s", h[i].name);
        snprintf(dirs->cgroups[i].path, sizeof dirs->cgroups[i].path, "%s", h[i].mount);
    }
    dirs->n_cgroups = n;
    int rc = plan_limits(resources, dirs, &l, why, sizeof why);
    limits_free(&l);
    free(dirs);
    return rc == 0 ? 0 : OCI_FALLBACK;
}

/* ---- cgroup.Parents: ROOT/cgroup-parents, under its flock */

/* Parents.add(made): the known paths, then those of made not among them. */
static int parents_add(int fd, const struct strv *made)
{
    if (lseek(fd, 0, SEEK_SET) < 0)
        return -1;
    size_t len, out = 0;
    char *known = nsf_read_fd(fd, &len);
    if (!known)
        return -1;
    size_t need = len + 2;
    for (int i = 0; i < made->n; i++)
        need += strlen(made->v[i]) + 1;
    char *all = malloc(need);
    if (!all) {
        free(known);
        errno = ENOMEM;
        return -1;
    }
    /* "\n".join of the non-empty lines, each ended by "\n" */
    for (char *p = known, *end = known + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n) {
            memcpy(all + out, p, n);
            all[out + n] = '\n';
            out += n + 1;
        }
        p += n + 1;
    }
    size_t known_len = out;
    for (int i = 0; i < made->n; i++) {
        size_t n = strlen(made->v[i]);
        int seen = 0;
        for (size_t at = 0; at < known_len && !seen;) {
            const char *nl = memchr(all + at, '\n', known_len - at);
            seen = (size_t)(nl - (all + at)) == n && !memcmp(all + at, made->v[i], n);
            at = (size_t)(nl - all) + 1;
        }
        if (!seen) {
            memcpy(all + out, made->v[i], n);
            all[out + n] = '\n';
            out += n + 1;
        }
    }
    free(known);
    int rc = ftruncate(fd, 0) == 0 && pwrite(fd, all, out, 0) >= 0 ? 0 : -1;
    int e = errno;
    free(all);
    errno = e;
    return rc;
}

/* ---- make() */

/* os.makedirs(name, exist_ok=True): 0, or -1 with errno and the path that
 * failed in *failed (malloc'd). */
static int py_makedirs(const char *name, char **failed)
{
    const char *tail;
    char *split = strndup(name, py_head_len(name, &tail)), *head = split;
    struct stat st;
    int rc = 0, e = 0;
    *failed = NULL;
    if (!split) {
        errno = ENOMEM;
        return -1;
    }
    if (!*tail) {   /* "a/b/": split(head) once more, tail then in split */
        head = strndup(split, py_head_len(split, &tail));
        if (!head) {
            free(split);
            errno = ENOMEM;
            return -1;
        }
    }
    if (*head && *tail && stat(head, &st) != 0) {
        if (py_makedirs(head, failed) < 0) {
            if (errno != EEXIST)   /* FileExistsError is passed over */
                rc = -1, e = errno;
            else
                free(*failed), *failed = NULL;
        }
        if (rc == 0 && !strcmp(tail, "."))   /* xxx/newdir/. exists if xxx/newdir exists */
            rc = 1;
    }
    if (head != split)
        free(head);
    free(split);
    if (rc)
        return rc < 0 ? (errno = e, -1) : 0;
    if (mkdir(name, 0777) < 0) {
        e = errno;
        if (py_isdir(name))
            return 0;
        *failed = strdup(name);
        errno = e;
        return -1;
    }
    return 0;
}

/* cgroups._write(path, text, controller), with Python's error text. */
static int write_file(const char *path, const char *text, const char *controller, char *err,
                      size_t err_size)
{
    char quoted[1024];
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_size, "opening the %s cgroup file: %s (hint: the %s controller "
                 "cannot be used here): %s", controller, strerror(errno), controller, path);
        return -1;
    }
    ssize_t n;
    do
        n = write(fd, text, strlen(text));
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        py_repr(text, quoted, sizeof quoted);
        snprintf(err, err_size, "writing %s for the %s controller: %s: %s", quoted, controller,
                 strerror(errno), path);
    }
    close(fd);
    return n < 0 ? -1 : 0;
}

/* A small cgroup file's text, str.strip()'ed (its ASCII whitespace: the
 * kernel writes no other); NULL with errno. */
static char *read_stripped(const char *path)
{
    char *text = nsf_read_file(path, NULL);
    if (!text)
        return NULL;
    size_t start = 0, end = strlen(text);
    while (end > 0 && py_space((unsigned char *)text + end - 1, (unsigned char *)text + end))
        end--;
    while (start < end && py_space((unsigned char *)text + start, (unsigned char *)text + end))
        start++;
    memmove(text, text + start, end - start);
    text[end - start] = 0;
    return text;
}

/* _inherit(mount, rel, file): each level of rel under mount that has an
 * empty cpuset file gets its parent's. */
static int inherit(const char *mount, const char *rel, const char *file, char *err,
                   size_t err_size)
{
    char *dir = strdup(mount), *parts = strdup(rel), *save = NULL;
    int rc = 0;
    for (char *part = strtok_r(parts, "/", &save); part && dir && !rc;
         part = strtok_r(NULL, "/", &save)) {
        char *next = py_join(dir, part), *path = next ? py_join(next, file) : NULL;
        char *up = path ? py_dirname(path) : NULL, *upup = up ? py_dirname(up) : NULL;
        char *from = upup ? py_join(upup, file) : NULL, *mine = NULL, *theirs = NULL;
        free(dir);
        dir = next;
        if (!from) {
            snprintf(err, err_size, "out of memory");
            rc = -1;
        } else if (!(mine = read_stripped(path))) {
            snprintf(err, err_size, "%s: %s", strerror(errno), path);
            rc = -1;
        } else if (!*mine) {
            if (!(theirs = read_stripped(from))) {
                snprintf(err, err_size, "%s: %s", strerror(errno), from);
                rc = -1;
            } else {
                rc = write_file(path, theirs, "cpuset", err, err_size);
            }
        }
        free(path);
        free(up);
        free(upup);
        free(from);
        free(mine);
        free(theirs);
    }
    if (!dir && !rc) {
        snprintf(err, err_size, "out of memory");
        rc = -1;
    }
    free(dir);
    free(parts);
    return rc;
}

/* make(cgroups_path, resources, made), filling c->cgroups as its dirs. */
static int make(const char *cgroups_path, struct json_object *resources,
                const struct oci_hierarchy *h, int n, struct oci_container *c,
                struct strv *made, char *err, size_t err_size)
{
    struct limits l = {0};
    char *rel = NULL, *path = NULL, *failed = NULL;
    int rc = -1;
    size_t from = strspn(cgroups_path, "/"), to = strlen(cgroups_path);
    while (to > from && cgroups_path[to - 1] == '/')
        to--;
    if (asprintf(&rel, "/%.*s", (int)(to - from), cgroups_path + from) < 0) {
        rel = NULL;
        goto oom;
    }
    for (const char *p = rel; p; p = strchr(p + 1, '/'))
        if (!strncmp(p, "/..", 3) && (p[3] == '/' || p[3] == 0)) {
            char quoted[512];
            py_repr(cgroups_path, quoted, sizeof quoted);
            snprintf(err, err_size, "cgroupsPath %s goes up with '..'", quoted);
            free(rel);
            return -1;
        }
    for (int i = 0; i < n; i++) {
        struct strv missing = {0};
        if (asprintf(&path, "%s%s", h[i].mount, rel) < 0) {
            path = NULL;
            goto oom;
        }
        size_t mount_len = strlen(h[i].mount);
        char *parent = py_dirname(path);
        while (parent && strlen(parent) > mount_len && !py_isdir(parent)) {
            char *up = py_dirname(parent);
            if (strv_add(&missing, parent) < 0) {
                free(up);
                up = NULL;
            }
            parent = up;
        }
        if (!parent) {
            strv_free(&missing);
            goto oom;
        }
        free(parent);
        if (py_makedirs(path, &failed) < 0) {
            if (failed)
                snprintf(err, err_size, "%s: %s", strerror(errno), failed);
            else
                snprintf(err, err_size, "out of memory");
            strv_free(&missing);
            goto fail;
        }
        for (int m = 0; m < missing.n; m++) {
            if (strv_add(made, missing.v[m]) < 0) {
                missing.v[m] = NULL;
                for (m++; m < missing.n; m++)
                    free(missing.v[m]);
                free(missing.v);
                goto oom;
            }
        }
        free(missing.v);
        if (strlen(path) >= sizeof c->cgroups[0].path || c->n_cgroups == OCI_MAX_CGROUPS) {
            snprintf(err, err_size, "%s: %s", strerror(ENAMETOOLONG), path);
            goto fail;
        }
        strcpy(c->cgroups[c->n_cgroups].name, h[i].name);
        strcpy(c->cgroups[c->n_cgroups].path, path);
        c->n_cgroups++;
        free(path);
        path = NULL;
        /* a v1 cpuset child starts empty: copy the parent's so it can hold tasks */
        if (oci_cgroup_has(h[i].name, "cpuset") &&
            (inherit(h[i].mount, rel, "cpuset.cpus", err, err_size) < 0 ||
             inherit(h[i].mount, rel, "cpuset.mems", err, err_size) < 0))
            goto fail;
    }
    int planned = plan_limits(resources, c, &l, err, err_size);
    if (planned < 0)
        goto oom;
    if (planned > 0)
        goto fail;
    for (int i = 0; i < l.n; i++)
        if (write_file(l.v[i].path, l.v[i].value, l.v[i].controller, err, err_size) < 0)
            goto fail;
    rc = 0;
    err[0] = 0;
    goto done;
oom:
    snprintf(err, err_size, "out of memory");
fail:
    /* no process is in them yet: rmdir is enough (remove_parents) */
    for (int i = c->n_cgroups - 1; i >= 0; i--)
        rmdir(c->cgroups[i].path);
    for (int i = 0; i < made->n; i++)
        rmdir(made->v[i]);
    c->n_cgroups = 0;
done:
    limits_free(&l);
    free(failed);
    free(path);
    free(rel);
    return rc;
}

int oci_cgroup_make(const char *root, const char *cgroups_path, struct json_object *resources,
                    const struct oci_hierarchy *h, int n, struct oci_container *c, char *err,
                    size_t err_size)
{
    struct strv made = {0};
    char *path = py_join(root, "cgroup-parents");
    int fd, rc = -1;
    c->n_cgroups = 0;
    err[0] = 0;
    if (!path) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    /* with cgroup.Parents(root) as parents: dirs = make(...); parents.add(made) */
    fd = oci_parents_lock(path);
    if (fd < 0) {
        snprintf(err, err_size, "%s: %s", strerror(errno), path);
    } else {
        rc = make(cgroups_path, resources, h, n, c, &made, err, err_size);
        if (rc == 0 && parents_add(fd, &made) < 0) {
            snprintf(err, err_size, "%s: %s", strerror(errno), path);
            c->n_cgroups = 0;   /* as in Python, the dirs never reach the state */
            rc = -1;
        }
        oci_parents_unlock(fd, path);
    }
    strv_free(&made);
    free(path);
    return rc;
}
