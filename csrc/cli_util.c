/* One-line errors for the C commands. */
#include "cli.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

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
