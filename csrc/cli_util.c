/* One-line errors, numbers and small files for the C commands. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void vsay(const char *prog, const char *fmt, va_list ap)
{
    char msg[4096], line[4096 + 256];
    int n = 0, space = 0;
    vsnprintf(msg, sizeof msg, fmt, ap);
    for (const char *p = msg; *p && n < (int)sizeof line - 2; p++) {
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
