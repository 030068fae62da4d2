/*
 * log.h - the human transcript.
 *
 * One line per fact, each prefixed with the time since the log was created:
 *     [000.747] MTASTS policy-->mode enforce
 * A log writes to a FILE (stderr for the CLI) or to memory (the runner keeps each
 * scenario's transcript to show it when an expectation fails). Thread-safe: the
 * runner's world thread and its sender share nothing else, but may share a log.
 *
 * Levels: STS_LOG_INFO lines are the transcript a person reads by default;
 * STS_LOG_DEBUG lines appear with -v; STS_LOG_TRACE with -vv.
 */
#ifndef STS_LOG_H
#define STS_LOG_H

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

enum { STS_LOG_ERROR = 0, STS_LOG_INFO = 1, STS_LOG_DEBUG = 2, STS_LOG_TRACE = 3 };

typedef struct sts_log sts_log;

/* A log writing to fp (not closed by sts_log_free); lines above verbosity are dropped.
 * prefix (may be NULL) is put after the timestamp, e.g. "world: ". */
sts_log *sts_log_new_file(FILE *fp, int verbosity, const char *prefix);
/* A log collecting its lines in memory; read them with sts_log_text(). */
sts_log *sts_log_new_mem(int verbosity, const char *prefix);
/* A log sharing parent's sink and clock with another prefix. Free it before parent. */
sts_log *sts_log_new_child(sts_log *parent, const char *prefix);
void sts_log_free(sts_log *log);

int sts_log_verbosity(const sts_log *log);
/* Seconds since the log (or its root) was created. */
double sts_log_elapsed(const sts_log *log);
/* t as "2026-12-01T02:11:59Z" (UTC, ISO 8601) into out, for transcripts and JSON. */
void sts_time_iso8601(time_t t, char *out, size_t len);
/* The text collected by a memory log ("" for a file log). Valid until the next write. */
const char *sts_log_text(sts_log *log);

/* Write one line (a trailing newline is added). A NULL log discards. */
void sts_logf(sts_log *log, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sts_vlogf(sts_log *log, int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define sts_info(log, ...) sts_logf((log), STS_LOG_INFO, __VA_ARGS__)
#define sts_debug(log, ...) sts_logf((log), STS_LOG_DEBUG, __VA_ARGS__)
#define sts_trace(log, ...) sts_logf((log), STS_LOG_TRACE, __VA_ARGS__)
#define sts_error(log, ...) sts_logf((log), STS_LOG_ERROR, __VA_ARGS__)

#endif
