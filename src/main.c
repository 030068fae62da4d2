/* main.c - the ststest entry point: dispatches to a sub-command (src/cmds.h). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "src/cmds.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"send", sts_cmd_send, "deliver a test message to each recipient"},
    {"check", sts_cmd_check, "discovery + STARTTLS + certificate per domain, no mail sent"},
    {"world", sts_cmd_world, "serve a scenario's fake world until SIGINT/SIGTERM"},
    {"run", sts_cmd_run, "replay scenario files (files or folders)"},
    {"lint", sts_cmd_lint, "lint an MTA-STS policy, a _mta-sts TXT, a TLSRPT record or report"},
    {"report", sts_cmd_report, "TLS reports (RFC 8460): write, --deliver, --summary"},
};

static void usage(FILE *fp)
{
    fprintf(fp, "usage: ststest COMMAND [options] ...\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(fp, "  %-7s %s\n", commands[i].name, commands[i].summary);
    fprintf(fp, "\n`ststest COMMAND --help` describes each command's options;\n"
                "`ststest --version` prints the version; `man ststest` has it all.\n"
                "exit status: 0 ok, 1 expectation failed (run), 64 usage, 65 bad input,\n"
                "69 failed permanently, 70 internal error, 75 deferred, 77 needs root\n"
                "(--standard-ports).\n");
}

int main(int argc, char **argv)
{
    /* A peer closing a socket must surface as EPIPE on write, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return STS_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return STS_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("ststest %s\n", STSTEST_VERSION);
        return STS_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "ststest: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return STS_EXIT_USAGE;
}
