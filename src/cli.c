/* cli.c - option-value parsers and the input reader shared by the sub-commands (see
 * cli.h). */
#include "src/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/rptjson.h"

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

int sts_cli_time(const char *s, time_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!errno && end != s && !*end) {
        if (v <= 0)
            return -1;
        *out = (time_t)v;
        return 0;
    }
    time_t t;
    if (sts_rpt_parse_time(s, &t) || t <= 0)
        return -1;
    *out = t;
    return 0;
}

int sts_cli_read_file(const char *path, sts_buf *b, const char *toobig, char *err, size_t errlen)
{
    FILE *fp = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!fp) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return STS_EIO;
    }
    char chunk[16384];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        if ((rc = sts_buf_append(b, chunk, n)))
            snprintf(err, errlen, "%s: %s", path, rc == STS_ETOOBIG ? toobig : sts_strerror(rc));
    if (!rc && ferror(fp)) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        rc = STS_EIO;
    }
    if (fp != stdin)
        fclose(fp);
    return rc;
}
