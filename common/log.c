/* log.c - the human transcript: relative timestamps, file or memory sink, thread-safe. */
#include "common/log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sts_sink {
    pthread_mutex_t mu;
    FILE *fp;        /* where lines go */
    int own_fp;      /* memory log: fp is an open_memstream */
    char *mem;       /* open_memstream buffer */
    size_t memlen;
    struct timespec t0;
    int refs;
};

struct sts_log {
    struct sts_sink *sink;
    int verbosity;
    char prefix[64];
};

static sts_log *log_new(struct sts_sink *sink, int verbosity, const char *prefix)
{
    sts_log *log = calloc(1, sizeof(*log));
    if (!log)
        return NULL;
    log->sink = sink;
    log->verbosity = verbosity;
    if (prefix)
        snprintf(log->prefix, sizeof(log->prefix), "%s", prefix);
    return log;
}

static struct sts_sink *sink_new(void)
{
    struct sts_sink *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    clock_gettime(CLOCK_MONOTONIC, &s->t0);
    s->refs = 1;
    return s;
}

sts_log *sts_log_new_file(FILE *fp, int verbosity, const char *prefix)
{
    struct sts_sink *s = sink_new();
    if (!s)
        return NULL;
    s->fp = fp;
    sts_log *log = log_new(s, verbosity, prefix);
    if (!log)
        free(s);
    return log;
}

sts_log *sts_log_new_mem(int verbosity, const char *prefix)
{
    struct sts_sink *s = sink_new();
    if (!s)
        return NULL;
    s->fp = open_memstream(&s->mem, &s->memlen);
    s->own_fp = 1;
    sts_log *log = s->fp ? log_new(s, verbosity, prefix) : NULL;
    if (!log) {
        if (s->fp)
            fclose(s->fp);
        free(s->mem);
        free(s);
    }
    return log;
}

sts_log *sts_log_new_child(sts_log *parent, const char *prefix)
{
    if (!parent)
        return NULL;
    pthread_mutex_lock(&parent->sink->mu);
    parent->sink->refs++;
    pthread_mutex_unlock(&parent->sink->mu);
    return log_new(parent->sink, parent->verbosity, prefix);
}

void sts_log_free(sts_log *log)
{
    if (!log)
        return;
    struct sts_sink *s = log->sink;
    pthread_mutex_lock(&s->mu);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last) {
        if (s->own_fp)
            fclose(s->fp);
        free(s->mem);
        pthread_mutex_destroy(&s->mu);
        free(s);
    }
    free(log);
}

int sts_log_verbosity(const sts_log *log)
{
    return log ? log->verbosity : -1;
}

double sts_log_elapsed(const sts_log *log)
{
    if (!log)
        return 0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - log->sink->t0.tv_sec) +
           (double)(now.tv_nsec - log->sink->t0.tv_nsec) / 1e9;
}

const char *sts_log_text(sts_log *log)
{
    if (!log || !log->sink->own_fp)
        return "";
    pthread_mutex_lock(&log->sink->mu);
    fflush(log->sink->fp);
    const char *t = log->sink->mem ? log->sink->mem : "";
    pthread_mutex_unlock(&log->sink->mu);
    return t;
}

void sts_vlogf(sts_log *log, int level, const char *fmt, va_list ap)
{
    if (!log || level > log->verbosity)
        return;
    double t = sts_log_elapsed(log);
    pthread_mutex_lock(&log->sink->mu);
    fprintf(log->sink->fp, "[%07.3f] %s", t, log->prefix);
    vfprintf(log->sink->fp, fmt, ap);
    fputc('\n', log->sink->fp);
    if (!log->sink->own_fp)
        fflush(log->sink->fp);
    pthread_mutex_unlock(&log->sink->mu);
}

void sts_logf(sts_log *log, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sts_vlogf(log, level, fmt, ap);
    va_end(ap);
}

void sts_time_iso8601(time_t t, char *out, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
