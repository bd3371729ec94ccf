/* linux.seccomp of an OCI config compiled to BPF with libseccomp, for the
 * C create: the program nsfast/oci/seccomp.py compile_profile() makes of
 * the same profile, byte for byte.  It makes the same libseccomp calls in
 * the same order (init, the optimize attribute, the architectures, one rule
 * add per name and comparison set, the export), so the reading of the JSON
 * is where the two could part: wherever Python raises, or might read a
 * value otherwise than json-c does (a float, a clamped integer, a
 * non-array where Python would iterate a string or a dict's keys), this
 * returns OCI_FALLBACK and Python's create takes the whole command.
 * Nothing is cached: a profile is compiled at each create. */
#include "cli_oci_create.h"

#include <errno.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Python's enum value (nsfast/seccomp.py _FLTATR_CTL_OPTIMIZE = 8) */
_Static_assert(SCMP_FLTATR_CTL_OPTIMIZE == 8, "libseccomp's attribute numbering changed");

struct named_value {
    const char *name;
    uint32_t value;
};

/* seccomp.py's _ACT_* table; ERRNO and TRACE carry an errno (below) */
static const struct named_value plain_actions[] = {
    {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW},
    {"SCMP_ACT_KILL", SCMP_ACT_KILL_THREAD},
    {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD},
    {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS},
    {"SCMP_ACT_LOG", SCMP_ACT_LOG},
    {"SCMP_ACT_TRAP", SCMP_ACT_TRAP},
    {NULL, 0},
};

/* seccomp.py's _ARCHES */
static const struct named_value arches[] = {
    {"SCMP_ARCH_X86", SCMP_ARCH_X86},
    {"SCMP_ARCH_X86_64", SCMP_ARCH_X86_64},
    {"SCMP_ARCH_X32", SCMP_ARCH_X32},
    {"SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64},
    {"SCMP_ARCH_ARM", SCMP_ARCH_ARM},
    {NULL, 0},
};

/* seccomp.py's _OPS */
static const struct named_value operators[] = {
    {"SCMP_CMP_NE", SCMP_CMP_NE},
    {"SCMP_CMP_LT", SCMP_CMP_LT},
    {"SCMP_CMP_LE", SCMP_CMP_LE},
    {"SCMP_CMP_EQ", SCMP_CMP_EQ},
    {"SCMP_CMP_GE", SCMP_CMP_GE},
    {"SCMP_CMP_GT", SCMP_CMP_GT},
    {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
    {NULL, 0},
};

static const char *const profile_keys[] = {
    "defaultAction", "defaultErrnoRet", "architectures", "syscalls", "flags", NULL};
static const char *const rule_keys[] = {
    "names", "action", "errnoRet", "args", "comment", "includes", "excludes", NULL};

/* A JSON string equal to lit: its whole length, so that "X\u0000Y" is not
 * taken for "X" (Python compares whole strings). */
static int string_is(struct json_object *v, const char *lit)
{
    return json_object_is_type(v, json_type_string) &&
           (size_t)json_object_get_string_len(v) == strlen(lit) &&
           memcmp(json_object_get_string(v), lit, strlen(lit)) == 0;
}

/* The value of the table entry named by v; -1 when v names none. */
static int lookup(const struct named_value *table, struct json_object *v, uint32_t *value)
{
    for (; table->name; table++)
        if (string_is(v, table->name)) {
            *value = table->value;
            return 0;
        }
    return -1;
}

/* What Python's `v or ()` iterates: an empty list for a false value, the
 * array itself; anything else (a string's characters, a dict's keys) is
 * Python's to iterate: -1. */
static int list_of(struct json_object *v, struct json_object **array)
{
    *array = NULL;
    if (!oci_json_truthy(v))
        return 0;
    if (!json_object_is_type(v, json_type_array))
        return -1;
    *array = v;
    return 0;
}

static size_t length_of(struct json_object *array)
{
    return array ? json_object_array_length(array) : 0;
}

/* A JSON integer as ctypes stores a Python int into a c_uint64: modulo
 * 2**64.  -1 for a non-integer (bools too) and for the two values json-c
 * clamps an out-of-range number to, which no longer say what was written. */
static int integer_mod64(struct json_object *v, uint64_t *out)
{
    if (!json_object_is_type(v, json_type_int))
        return -1;
    int64_t s = json_object_get_int64(v);
    if (s < 0) {
        if (s == INT64_MIN)
            return -1;
        *out = (uint64_t)s;
        return 0;
    }
    uint64_t u = json_object_get_uint64(v);   /* above INT64_MAX, json-c keeps a uint64 */
    if (u == UINT64_MAX)
        return -1;
    *out = u;
    return 0;
}

/* seccomp.py _action(): the action named, with errno_ret (EPERM for None)
 * in the low 16 bits of ERRNO and TRACE, where alone it is looked at. */
static int action_of(struct json_object *name, struct json_object *errno_ret, uint32_t *action)
{
    int errno_action = string_is(name, "SCMP_ACT_ERRNO");
    if (errno_action || string_is(name, "SCMP_ACT_TRACE")) {
        uint64_t err = EPERM;
        if (errno_ret && integer_mod64(errno_ret, &err) < 0)
            return -1;
        *action = errno_action ? SCMP_ACT_ERRNO(err & 0xFFFF) : SCMP_ACT_TRACE(err & 0xFFFF);
        return 0;
    }
    return lookup(plain_actions, name, action);
}

/* One comparison of a rule's args: index and op are required, value and
 * valueTwo 0 when missing.  Python takes any int for an index (ctypes cuts
 * it to 32 bits); only 0-5 are taken here, the others are Python's. */
static int comparison_of(struct json_object *arg, struct scmp_arg_cmp *cmp)
{
    struct json_object *index, *op, *value;
    uint32_t op_value;
    if (!json_object_is_type(arg, json_type_object) ||
        !json_object_object_get_ex(arg, "index", &index) ||
        !json_object_is_type(index, json_type_int) ||
        json_object_get_int64(index) < 0 || json_object_get_int64(index) > 5 ||
        !json_object_object_get_ex(arg, "op", &op) || lookup(operators, op, &op_value) < 0)
        return -1;
    cmp->arg = (unsigned int)json_object_get_int64(index);
    cmp->op = (enum scmp_compare)op_value;
    cmp->datum_a = cmp->datum_b = 0;
    if (json_object_object_get_ex(arg, "value", &value) && integer_mod64(value, &cmp->datum_a) < 0)
        return -1;
    if (json_object_object_get_ex(arg, "valueTwo", &value) &&
        integer_mod64(value, &cmp->datum_b) < 0)
        return -1;
    return 0;
}

/* A syscall name as Python would pass it to libseccomp.  Only plain names:
 * a string with a NUL or one json-c decoded otherwise than Python (a lone
 * surrogate) must not be resolved here. */
static int plain_name(struct json_object *v)
{
    if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0)
        return 0;
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '_' || (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z')))
            return 0;
    return 1;
}

/* seccomp.py _add_rule(): all comparisons in one rule, unless an argument
 * is compared twice; then each comparison is a rule of its own (ORed, as
 * runc does). */
static int add_rule(scmp_filter_ctx ctx, uint32_t action, int nr,
                    const struct scmp_arg_cmp *cmps, size_t n)
{
    int repeated = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            repeated |= cmps[i].arg == cmps[j].arg;
    if (!repeated)
        return seccomp_rule_add_array(ctx, action, nr, (unsigned int)n, cmps);
    for (size_t i = 0; i < n; i++) {
        int r = seccomp_rule_add_array(ctx, action, nr, 1, &cmps[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

/* One element of syscalls[], added to ctx unless its action is the
 * default's (libseccomp refuses such a rule; Python skips it before
 * looking at its args and names). */
static int add_syscalls_rule(scmp_filter_ctx ctx, uint32_t default_action,
                             struct json_object *rule)
{
    struct json_object *action_name, *args, *names;
    uint32_t action;
    if (!json_object_is_type(rule, json_type_object) || oci_json_only_keys(rule, rule_keys) ||
        !json_object_object_get_ex(rule, "action", &action_name) ||
        action_of(action_name, oci_json_get(rule, "errnoRet"), &action) < 0)
        return OCI_FALLBACK;
    if (action == default_action)
        return 0;
    if (list_of(oci_json_get(rule, "args"), &args) < 0 ||
        list_of(oci_json_get(rule, "names"), &names) < 0)
        return OCI_FALLBACK;
    size_t n_cmps = length_of(args);
    struct scmp_arg_cmp *cmps = calloc(n_cmps ? n_cmps : 1, sizeof(*cmps));
    if (!cmps)
        return -ENOMEM;
    int r = 0;
    for (size_t i = 0; i < n_cmps && r == 0; i++)
        if (comparison_of(json_object_array_get_idx(args, i), &cmps[i]) < 0)
            r = OCI_FALLBACK;
    for (size_t i = 0; i < length_of(names) && r == 0; i++) {
        struct json_object *name = json_object_array_get_idx(names, i);
        if (!plain_name(name)) {
            r = OCI_FALLBACK;
            break;
        }
        /* negative: no architecture has it (__NR_SCMP_ERROR), or not this
         * one (a pseudo number); Python skips both, as runc does */
        int nr = seccomp_syscall_resolve_name(json_object_get_string(name));
        if (nr < 0)
            continue;
        if (add_rule(ctx, action, nr, cmps, n_cmps) < 0)
            r = OCI_FALLBACK;   /* Python raises: its create names the error */
    }
    free(cmps);
    return r;
}

/* seccomp_export_bpf writes to an fd (libseccomp 2.5 has no export to
 * memory): through a memfd, as Python's _export. */
static int export_bpf(scmp_filter_ctx ctx, unsigned char **prog, size_t *len)
{
    int fd = memfd_create("nsfast-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int r = seccomp_export_bpf(ctx, fd);
    if (r == 0 && fstat(fd, &st) < 0)
        r = -errno;
    unsigned char *out = NULL;
    if (r == 0 && !(out = malloc(st.st_size ? (size_t)st.st_size : 1)))
        r = -ENOMEM;
    size_t got = 0;
    while (r == 0 && got < (size_t)st.st_size) {
        ssize_t n = pread(fd, out + got, (size_t)st.st_size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            r = n < 0 ? -errno : -EIO;
        else
            got += (size_t)n;
    }
    close(fd);
    if (r < 0) {
        free(out);
        return r;
    }
    *prog = out;
    *len = got;
    return 0;
}

int oci_seccomp_bpf(struct json_object *profile, unsigned char **prog, size_t *len)
{
    struct json_object *default_name = NULL, *architectures, *syscalls;
    uint32_t default_action = SCMP_ACT_ALLOW;
    *prog = NULL;
    *len = 0;
    /* Python's binding loads another library when this names one */
    if (getenv("NSFAST_LIBSECCOMP"))
        return OCI_FALLBACK;
    if (!json_object_is_type(profile, json_type_object) ||
        oci_json_only_keys(profile, profile_keys) || oci_json_given(profile, "flags"))
        return OCI_FALLBACK;
    /* a missing defaultAction is "allow"; a null one an error */
    if (json_object_object_get_ex(profile, "defaultAction", &default_name) &&
        action_of(default_name, oci_json_get(profile, "defaultErrnoRet"), &default_action) < 0)
        return OCI_FALLBACK;
    if (list_of(oci_json_get(profile, "architectures"), &architectures) < 0 ||
        list_of(oci_json_get(profile, "syscalls"), &syscalls) < 0)
        return OCI_FALLBACK;

    /* NULL for an action this kernel lacks too: Python raises, its error */
    scmp_filter_ctx ctx = seccomp_init(default_action);
    if (!ctx)
        return OCI_FALLBACK;
    /* a binary tree of syscall numbers, as Python asks (its result unread) */
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    int r = 0;
    for (size_t i = 0; i < length_of(architectures) && r == 0; i++) {
        uint32_t arch;
        if (lookup(arches, json_object_array_get_idx(architectures, i), &arch) < 0)
            r = OCI_FALLBACK;
        else {
            int added = seccomp_arch_add(ctx, arch);
            if (added < 0 && added != -EEXIST)   /* EEXIST: the native one */
                r = OCI_FALLBACK;
        }
    }
    for (size_t i = 0; i < length_of(syscalls) && r == 0; i++)
        r = add_syscalls_rule(ctx, default_action, json_object_array_get_idx(syscalls, i));
    if (r == 0)
        r = export_bpf(ctx, prog, len);
    seccomp_release(ctx);
    return r;
}
