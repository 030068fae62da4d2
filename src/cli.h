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

#endif
