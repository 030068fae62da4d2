/*
 * test_log.c - common/log: the line format ("[SSS.mmm] prefix text"), verbosity
 * levels, memory and file sinks, child logs sharing a sink, many threads writing at
 * once (no torn lines), and sts_time_iso8601.
 */
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"

/* How many lines of text match the extended regular expression rx. */
static size_t count_matching(const char *text, const char *rx)
{
    regex_t re;
    assert_int_equal(regcomp(&re, rx, REG_EXTENDED | REG_NOSUB), 0);
    size_t n = 0;
    char *copy = strdup(text), *save = NULL;
    assert_non_null(copy);
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        n += regexec(&re, line, 0, NULL, 0) == 0;
    free(copy);
    regfree(&re);
    return n;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

/* Which levels a log of each verbosity keeps. */
static void test_levels(void **state)
{
    (void)state;
    static const struct {
        int verbosity;
        const char *kept; /* the words of the lines kept, in order */
    } rows[] = {
        {STS_LOG_ERROR, "error;"},
        {STS_LOG_INFO, "error;info;"},
        {STS_LOG_DEBUG, "error;info;debug;"},
        {STS_LOG_TRACE, "error;info;debug;trace;"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        sts_log *log = sts_log_new_mem(rows[i].verbosity, NULL);
        assert_non_null(log);
        assert_int_equal(sts_log_verbosity(log), rows[i].verbosity);
        sts_error(log, "error");
        sts_info(log, "info");
        sts_debug(log, "debug");
        sts_trace(log, "trace");
        char kept[64] = "";
        const char *text = sts_log_text(log);
        for (const char *p = text; (p = strstr(p, "] ")); p += 2) {
            size_t n = strcspn(p + 2, "\n");
            strncat(kept, p + 2, n);
            strcat(kept, ";");
        }
        assert_string_equal(kept, rows[i].kept);
        sts_log_free(log);
    }
}

/* "[SSS.mmm] " then the prefix then the text, one line per call. */
static void test_format(void **state)
{
    (void)state;
    sts_log *log = sts_log_new_mem(STS_LOG_INFO, "sender: ");
    assert_non_null(log);
    sts_info(log, "MX %s pref %d", "mail.example.test", 10);
    sts_info(log, "%s", "");
    const char *text = sts_log_text(log);
    assert_int_equal(count_lines(text), 2);
    assert_int_equal(count_matching(text, "^\\[[0-9]{3}\\.[0-9]{3}\\] sender: MX "
                                          "mail\\.example\\.test pref 10$"),
                     1);
    assert_int_equal(count_matching(text, "^\\[[0-9]{3}\\.[0-9]{3}\\] sender: $"), 1);
    assert_true(sts_log_elapsed(log) >= 0);
    assert_true(sts_log_elapsed(log) < 60);
    sts_log_free(log);
}

/* A child writes into its parent's sink with its own prefix and the parent's clock. */
static void test_child(void **state)
{
    (void)state;
    sts_log *log = sts_log_new_mem(STS_LOG_DEBUG, "sender: ");
    sts_log *child = sts_log_new_child(log, "world:  ");
    assert_non_null(child);
    assert_int_equal(sts_log_verbosity(child), STS_LOG_DEBUG);
    sts_info(log, "one");
    sts_debug(child, "two");
    sts_info(log, "three");
    const char *text = sts_log_text(log);
    assert_int_equal(count_lines(text), 3);
    assert_non_null(strstr(text, "] sender: one\n"));
    assert_non_null(strstr(text, "] world:  two\n"));
    assert_true(strstr(text, "one") < strstr(text, "two"));
    assert_true(strstr(text, "two") < strstr(text, "three"));
    assert_string_equal(sts_log_text(child), text);
    sts_log_free(child);
    sts_info(log, "after the child");
    assert_non_null(strstr(sts_log_text(log), "] sender: after the child\n"));
    sts_log_free(log);
    assert_null(sts_log_new_child(NULL, "x"));
}

/* A NULL log discards everything and answers neutrally. */
static void test_null_log(void **state)
{
    (void)state;
    sts_info(NULL, "nothing %d", 1);
    sts_error(NULL, "nothing");
    assert_int_equal(sts_log_verbosity(NULL), -1);
    assert_string_equal(sts_log_text(NULL), "");
    assert_true(sts_log_elapsed(NULL) == 0);
    sts_log_free(NULL);
}

/* A file log writes (and flushes) each line to its FILE and keeps no text. */
static void test_file(void **state)
{
    (void)state;
    char *mem = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&mem, &len);
    assert_non_null(fp);
    sts_log *log = sts_log_new_file(fp, STS_LOG_INFO, "world: ");
    assert_non_null(log);
    sts_info(log, "ready");
    sts_debug(log, "not kept");
    assert_string_equal(sts_log_text(log), "");
    /* Flushed by the log itself: the memstream's buffer already holds the line. */
    assert_int_equal(count_matching(mem, "^\\[[0-9]{3}\\.[0-9]{3}\\] world: ready$"), 1);
    assert_null(strstr(mem, "not kept"));
    sts_log_free(log);
    fputs("still open\n", fp); /* the log does not close the caller's FILE */
    assert_int_equal(fclose(fp), 0);
    assert_non_null(strstr(mem, "still open"));
    free(mem);
}

/* Threads that share a log (the runner's world and sender) never tear a line. */
#define NTHREADS 4
#define NLINES 500

static void *writer(void *arg)
{
    sts_log *log = arg;
    for (int i = 0; i < NLINES; i++)
        sts_info(log, "line %d of a writer with some text to make it long enough", i);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    sts_log *log = sts_log_new_mem(STS_LOG_INFO, NULL);
    sts_log *children[NTHREADS];
    pthread_t tids[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        children[t] = sts_log_new_child(log, "w: ");
        assert_int_equal(pthread_create(&tids[t], NULL, writer, children[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++)
        assert_int_equal(pthread_join(tids[t], NULL), 0);
    const char *text = sts_log_text(log);
    assert_int_equal(count_lines(text), NTHREADS * NLINES);
    assert_int_equal(count_matching(text, "^\\[[0-9]{3}\\.[0-9]{3}\\] w: line [0-9]+ of a writer "
                                          "with some text to make it long enough$"),
                     NTHREADS * NLINES);
    for (int t = 0; t < NTHREADS; t++)
        sts_log_free(children[t]);
    sts_log_free(log);
}

static void test_iso8601(void **state)
{
    (void)state;
    static const struct {
        time_t t;
        const char *iso;
    } rows[] = {
        {0, "1970-01-01T00:00:00Z"},          {951782400, "2000-02-29T00:00:00Z"},
        {1700000000, "2023-11-14T22:13:20Z"}, {1893456000, "2030-01-01T00:00:00Z"},
        {4102444799, "2099-12-31T23:59:59Z"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char out[32];
        sts_time_iso8601(rows[i].t, out, sizeof(out));
        assert_string_equal(out, rows[i].iso);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels),  cmocka_unit_test(test_format),
        cmocka_unit_test(test_child),   cmocka_unit_test(test_null_log),
        cmocka_unit_test(test_file),    cmocka_unit_test(test_threads),
        cmocka_unit_test(test_iso8601),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
