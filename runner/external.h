/*
 * external.h - another implementation as the runner's sender (`ststest run
 * --sender-cmd`, README "Testing another implementation"): its command line made
 * from the user's template and the placeholders' values (the runner's), the command
 * run under /bin/sh with a time limit, and what it printed read back into the case's
 * transcript.
 */
#ifndef STS_EXTERNAL_H
#define STS_EXTERNAL_H

#include <jansson.h>

#include "common/log.h"

/* The command line: tmpl with each placeholder {name} of vars ({name, value} pairs,
 * ending with a NULL name) replaced by its value quoted as one /bin/sh word, except
 * {ststest_flags}, inserted as it is (ststest options: words of a fixed vocabulary
 * that need no quoting). Any other text, unknown placeholders included, is kept as it
 * is. malloc'd; NULL on ENOMEM. */
char *sts_external_command(const char *tmpl, const char *const vars[][2]);

/* Run cmd under /bin/sh in its own process group, stdin from /dev/null, stdout and
 * stderr into out_path and err_path; kill the group after limit seconds (and once it
 * exits: whatever it left behind goes with it). Returns the exit status (128+signal
 * when killed), or -1 when it could not be started; *timed_out says whether the
 * limit struck. */
int sts_external_run(const char *cmd, const char *out_path, const char *err_path, double limit,
                     int *timed_out);

/* What the command printed, into log: its stderr, then its stdout, one transcript
 * line each ("external (stderr): ...", "external: ..."). Returns stdout as a JSON
 * document when it is one in our format ({"results": [...]}, as `ststest send --json`
 * prints), else NULL. */
json_t *sts_external_output(const char *out_path, const char *err_path, sts_log *log);

#endif
