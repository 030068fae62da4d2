/*
 * cli.h - option-value parsers shared by the sub-commands. Each returns 0 and sets
 * *out, or -1 (nothing set) for anything but the whole string being a valid value;
 * the caller names the option in its message.
 */
#ifndef STS_CLI_H
#define STS_CLI_H

/* A TCP/UDP port, 1-65535. */
int sts_cli_port(const char *s, int *out);
/* A decimal number from lo to hi (inclusive). */
int sts_cli_number(const char *s, double lo, double hi, double *out);

/* The last rows of a sub-command's getopt_long table: -v/--verbose, -h/--help and
 * the terminator (the file includes <getopt.h>). */
/* clang-format off */
#define STS_CLI_OPTS_VERBOSE_HELP                                                                  \
    {"verbose", no_argument, NULL, 'v'},                                                           \
    {"help", no_argument, NULL, 'h'},                                                              \
    {NULL, 0, NULL, 0}
/* clang-format on */

#endif
