/*
 * external.h - another implementation as the runner's sender (`ststest run
 * --sender-cmd`, README "Testing another implementation"): its command line made
 * from the user's template and the placeholders' values (the runner's), the command
 * run under /bin/sh with a time limit, and what it prints read into the case's
 * transcript line by line as it arrives.
 */
#ifndef STS_EXTERNAL_H
#define STS_EXTERNAL_H

#include <jansson.h>

#include "common/buf.h"
#include "common/log.h"

/* The command line: tmpl with each placeholder {name} of vars ({name, value} pairs,
 * ending with a NULL name) replaced by its value quoted as one /bin/sh word, except
 * {ststest_flags}, inserted as it is (ststest options: words of a fixed vocabulary
 * that need no quoting). Any other text, unknown placeholders included, is kept as it
 * is. malloc'd; NULL on ENOMEM. */
char *sts_external_command(const char *tmpl, const char *const vars[][2]);

/* What an external sender printed, as it came. */
typedef struct sts_external_out {
    sts_buf out;         /* all of stdout (capped at 4 MiB) */
    char last_err[1024]; /* the last non-empty line of stderr ("" if none) */
} sts_external_out;

/* Run cmd under /bin/sh in its own process group, stdin from /dev/null, stdout and
 * stderr on pipes read as they arrive: each line goes into log at once ("external
 * (stderr): ...", "external: ..."), stamped on the log's clock, which is the world's
 * (the runner's world log is a child of the case's log), so that the external
 * sender's lines interleave with the world's in the transcript. The group is killed
 * after limit seconds (and once the command exits: whatever it left behind goes with
 * it). Returns the exit status (128+signal when killed), or -1 when it could not be
 * started; *timed_out says whether the limit struck. out is initialised here; free it
 * with sts_external_out_free(). */
int sts_external_run(const char *cmd, double limit, sts_log *log, sts_external_out *out,
                     int *timed_out);
void sts_external_out_free(sts_external_out *out);

/* stdout as a JSON document when it is one in our format ({"results": [...]}, as
 * `ststest send --json` prints), else NULL. */
json_t *sts_external_result(const sts_external_out *out);

#endif
