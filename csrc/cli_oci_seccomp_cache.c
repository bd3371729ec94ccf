/* The seccomp programs create compiled, kept between creates.
 *
 * Each create is a new process, and a manager passes the same profile to
 * every container (Podman's default compiles in about 10 ms, most of a C
 * create), so a program is kept in root's own directory, beside the ones
 * Python's create keeps (nsfast/oci/seccomp.py; the same trust rules: the
 * directory and the file root's and closed to others, since whoever could
 * write there could hand containers an allow-everything filter).  An entry
 * holds the whole text it was compiled from and is used only when that text
 * is the same again, so its name, a hash, needs no strength. */
#include "cli.h"
#include "cli_oci_create.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#ifndef NSFAST_VERSION
#define NSFAST_VERSION "unknown"
#endif

#define CACHE_DIR "/run/nsfast-runtime.seccomp"
#define CACHE_MAX 64   /* entries; beyond that the directory is emptied (as Python's) */

static uint64_t fnv1a(const char *text, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)text[i]) * 1099511628211ULL;
    return h;
}

static int trusted_dir(void)
{
    struct stat st;
    if (geteuid() != 0 || (mkdir(CACHE_DIR, 0700) < 0 && errno != EEXIST))
        return 0;
    return lstat(CACHE_DIR, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == 0 &&
           !(st.st_mode & 077);
}

/* The program kept for key (its whole text), or NULL. */
static unsigned char *cache_read(const char *path, const char *key, size_t key_len,
                                 size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    unsigned char *data = NULL;
    size_t got = 0;
    if (fstat(fd, &st) == 0 && st.st_uid == 0 && !(st.st_mode & 077) &&
        (size_t)st.st_size > key_len)
        data = (unsigned char *)nsf_read_fd(fd, &got);
    close(fd);
    size_t program = got - key_len;
    if (!data || got != (size_t)st.st_size || memcmp(data, key, key_len) != 0 ||
        program % 8 || !program) {
        free(data);   /* torn, foreign or another text's: compiled anew */
        return NULL;
    }
    memmove(data, data + key_len, program);
    *len = program;
    return data;
}

static void cache_write(const char *name, const char *key, size_t key_len,
                        const unsigned char *prog, size_t len)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    DIR *d = opendir(CACHE_DIR);
    int entries = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        entries += e->d_name[0] != '.';
    if (d && entries >= CACHE_MAX) {
        rewinddir(d);
        for (struct dirent *e; (e = readdir(d));)
            if (e->d_name[0] != '.')
                unlinkat(dirfd(d), e->d_name, 0);
    }
    if (d)
        closedir(d);
    snprintf(path, sizeof path, CACHE_DIR "/%s", name);
    snprintf(tmp, sizeof tmp, CACHE_DIR "/.%s.%d", name, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    int ok = write(fd, key, key_len) == (ssize_t)key_len &&
             write(fd, prog, len) == (ssize_t)len;
    if (close(fd) < 0 || !ok || rename(tmp, path) < 0)
        unlink(tmp);   /* a cache: the next create compiles again */
}

int oci_seccomp_program(struct json_object *profile, unsigned char **prog, size_t *len)
{
    const char *text = json_object_to_json_string_ext(
        profile, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    /* another libseccomp for Python (NSFAST_LIBSECCOMP): Python's create */
    if (!text || getenv("NSFAST_LIBSECCOMP") || !trusted_dir())
        return oci_seccomp_bpf(profile, prog, len);
    /* what else decides the program: nsfast's version (its compiler), the
     * machine (the native architecture), libseccomp's version */
    const struct scmp_version *v = seccomp_version();
    struct utsname u;
    uname(&u);
    size_t text_len = strlen(text);
    char *key = malloc(text_len + 256);
    if (!key)
        return oci_seccomp_bpf(profile, prog, len);
    int head = snprintf(key, 256, "nsfast-runtime %s %s libseccomp %u.%u.%u\n",
                        NSFAST_VERSION, u.machine, v->major, v->minor, v->micro);
    memcpy(key + head, text, text_len);
    size_t key_len = (size_t)head + text_len;
    char name[32], path[PATH_MAX];
    snprintf(name, sizeof name, "c-%016llx",
             (unsigned long long)fnv1a(key, key_len, 14695981039346656037ULL));
    snprintf(path, sizeof path, CACHE_DIR "/%s", name);
    if ((*prog = cache_read(path, key, key_len, len))) {
        free(key);
        return 0;
    }
    int r = oci_seccomp_bpf(profile, prog, len);
    if (r == 0)
        cache_write(name, key, key_len, *prog, *len);
    free(key);
    return r;
}
