/*
 * cli.h - option-value parsers and the input reader shared by the sub-commands. Each
 * parser returns 0 and sets *out, or -1 (nothing set) for anything but the whole string
 * being a valid value; the caller names the option in its message.
 */
#ifndef STS_CLI_H
#define STS_CLI_H

#include <stddef.h>
#include <time.h>

#include "common/buf.h"

/* A TCP/UDP port, 1-65535. */
int sts_cli_port(const char *s, int *out);
/* A decimal number from lo to hi (inclusive). */
int sts_cli_number(const char *s, double lo, double hi, double *out);
/* A --now clock: an RFC 3339 date-time ("2030-01-01T00:00:00Z", common/rptjson.h's
 * sts_rpt_parse_time) or a unix time in seconds, after 1970-01-01T00:00:00Z. */
int sts_cli_time(const char *s, time_t *out);

/* Append the whole of file path ("-": standard input) to b. Returns 0, or STS_EIO
 * (cannot open or read it), STS_ETOOBIG (over b's limit: "PATH: <toobig>") or
 * STS_ENOMEM, with the message in err. */
int sts_cli_read_file(const char *path, sts_buf *b, const char *toobig, char *err, size_t errlen);

/* The last rows of a sub-command's getopt_long table: -v/--verbose, -h/--help and
 * the terminator (the file includes <getopt.h>). */
/* clang-format off */
#define STS_CLI_OPTS_VERBOSE_HELP                                                                  \
    {"verbose", no_argument, NULL, 'v'},                                                           \
    {"help", no_argument, NULL, 'h'},                                                              \
    {NULL, 0, NULL, 0}
/* clang-format on */

#endif
