/* cli.c - option-value parsers shared by the sub-commands (see cli.h). */
#include "src/cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

int sts_cli_port(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > 65535)
        return -1;
    *out = (int)v;
    return 0;
}

int sts_cli_number(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || isnan(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}
