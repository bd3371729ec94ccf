/* One-line errors, numbers and small files for the C commands. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/net_namespace.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdint.h>
#include <sys/socket.h>

void nsf_cli_one_line(const char *text, char *line, size_t size)
{
    size_t n = 0;
    int space = 0;
    for (const char *p = text; *p && n + 2 < size; p++) {
        if (isspace((unsigned char)*p)) {
            space = n > 0;
            continue;
        }
        if (space)
            line[n++] = ' ';
        space = 0;
        line[n++] = *p;
    }
    line[n] = 0;
}

static void vsay(const char *prog, const char *fmt, va_list ap)
{
    char msg[4096], line[4096 + 256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    nsf_cli_one_line(msg, line, sizeof line);
    fprintf(stderr, "%s: %s\n", prog, line);
}

void nsf_cli_say(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(prog, fmt, ap);
    va_end(ap);
}

void nsf_cli_die(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(prog, fmt, ap);
    va_end(ap);
    exit(1);
}

long long nsf_cli_u32(const char *prog, const char *text, const char *what)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (!*text || *end || errno || text[0] == '-' || v > 0xffffffffULL)
        nsf_cli_die(prog, "failed to parse %s: '%s'", what, text);
    return (long long)v;
}

void nsf_cli_write_file(const char *prog, const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        nsf_cli_die(prog, "cannot open %s: %s", path, strerror(errno));
    ssize_t n = write(fd, text, strlen(text));
    if (n != (ssize_t)strlen(text))
        nsf_cli_die(prog, "write failed %s: %s", path, n < 0 ? strerror(errno) : "short write");
    close(fd);
}

/* The id our network namespace gives the one fd refers to (RTM_GETNSID);
 * -1 when unassigned or not told. */
int nsf_netnsid_of(int sock, int fd)
{
    struct {
        struct nlmsghdr h;
        struct rtgenmsg g;
        char pad[3];
        struct nlattr a;
        uint32_t fd;
    } req = {
        .h = {.nlmsg_len = sizeof req, .nlmsg_type = RTM_GETNSID, .nlmsg_flags = NLM_F_REQUEST,
              .nlmsg_seq = 1},
        .g = {.rtgen_family = AF_UNSPEC},
        .a = {.nla_len = 8, .nla_type = NETNSA_FD},
        .fd = (uint32_t)fd,
    };
    if (send(sock, &req, sizeof req, 0) < 0)
        return -1;
    union {
        struct nlmsghdr h;
        char bytes[4096];
    } reply;
    ssize_t n = recv(sock, &reply, sizeof reply, 0);
    if (n < (ssize_t)sizeof reply.h || reply.h.nlmsg_type != RTM_NEWNSID)
        return -1;
    size_t length = reply.h.nlmsg_len < (size_t)n ? reply.h.nlmsg_len : (size_t)n;
    for (size_t pos = NLMSG_HDRLEN + 4; pos + 4 <= length;) {
        struct nlattr a;
        memcpy(&a, reply.bytes + pos, sizeof a);
        if (a.nla_type == NETNSA_NSID && a.nla_len >= 8 && pos + 8 <= length) {
            int32_t v;
            memcpy(&v, reply.bytes + pos + 4, sizeof v);
            return v < 0 ? -1 : v;
        }
        if (a.nla_len < 4)
            break;
        pos += (a.nla_len + 3u) & ~3u;
    }
    return -1;
}

char *nsf_read_fd(int fd, size_t *len)
{
    size_t got = 0, cap = 8192;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            return NULL;
        if (got + 1 >= cap) {
            char *more = realloc(buf, cap *= 2);
            if (!more) {
                free(buf);
                errno = ENOMEM;
                return NULL;
            }
            buf = more;
        }
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(buf);
            errno = e;
            return NULL;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = 0;
    if (len)
        *len = got;
    return buf;
}

char *nsf_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *data = nsf_read_fd(fd, len);
    int e = errno;
    close(fd);
    errno = e;
    return data;
}
