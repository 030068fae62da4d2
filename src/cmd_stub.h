/* cmd_stub.h - shared "not built yet" behaviour for sub-commands still in progress. */
#ifndef STS_CMD_STUB_H
#define STS_CMD_STUB_H
#include <stdio.h>
#include <string.h>
#include "common/err.h"
static inline int sts_cmd_not_built(const char *name, const char *synopsis, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: ststest %s\n\nThis command is not built yet.\n", synopsis);
            return STS_EXIT_OK;
        }
    fprintf(stderr, "ststest %s: not built yet\n", name);
    return STS_EXIT_SOFTWARE;
}
#endif
