/* report.c - JUnit XML and JSON reports of a run, written atomically. */
#include <stdio.h>

#include "runner/report.h"
#include "runner/verdict.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sts_report_xml_escape(FILE *fp, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        switch (*p) {
        case '&':
            fputs("&amp;", fp);
            break;
        case '<':
            fputs("&lt;", fp);
            break;
        case '>':
            fputs("&gt;", fp);
            break;
        case '"':
            fputs("&quot;", fp);
            break;
        case '\'':
            fputs("&apos;", fp);
            break;
        default:
            /* XML 1.0 allows only TAB, LF and CR below 0x20. */
            if (*p >= 0x20 || *p == '\t' || *p == '\n' || *p == '\r')
                fputc(*p, fp);
        }
    }
}

/* Open path's temporary sibling for writing. */
static FILE *open_tmp(const char *path, char *tmp, size_t tmplen)
{
    snprintf(tmp, tmplen, "%s.tmp.%ld", path, (long)getpid());
    return fopen(tmp, "w");
}

static int finish(FILE *fp, const char *tmp, const char *path)
{
    int bad = ferror(fp);
    if (fclose(fp) || bad) {
        int e = errno;
        unlink(tmp);
        errno = e ? e : EIO;
        return -1;
    }
    if (rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

/* A failure's differences grouped by class, security first ("security:\n  line\n"),
 * each with its why; the message names the classes and their counts ("expectation
 * not met: security 1, outcome-only 2"), the type the weightiest class. Unclassified
 * differences (no diffs) are written as they are. */
static void junit_failure(FILE *fp, const sts_report_case *c)
{
    /* The classes in the order of their table: the weightiest first. */
    const char *order[STS_DIFF_NCLASSES];
    const size_t n = STS_DIFF_NCLASSES;
    for (size_t k = 0; k < n; k++)
        order[k] = sts_diff_class_name((sts_diff_class)k);
    if (!c->diffs) {
        fprintf(fp, "      <failure message=\"expectation not met\">");
        sts_report_xml_escape(fp, c->diff);
        return;
    }
    size_t cnt[STS_DIFF_NCLASSES] = {0};
    for (size_t i = 0; i < json_array_size(c->diffs); i++)
        for (size_t k = 0; k < n; k++)
            cnt[k] += !strcmp(
                order[k], json_string_value(json_object_get(json_array_get(c->diffs, i), "class")));
    /* type: the weightiest class present, so a reporter can sort on it. */
    const char *type = "expectation";
    for (size_t k = n; k-- > 0;)
        if (cnt[k])
            type = order[k];
    fprintf(fp, "      <failure message=\"expectation not met:");
    for (size_t k = 0, first = 1; k < n; k++)
        if (cnt[k]) {
            fprintf(fp, "%s %s %zu", first ? "" : ",", order[k], cnt[k]);
            first = 0;
        }
    fprintf(fp, "\" type=\"%s\">", type);
    for (size_t k = 0; k < n; k++) {
        int head = 0;
        for (size_t i = 0; i < json_array_size(c->diffs); i++) {
            json_t *d = json_array_get(c->diffs, i);
            if (strcmp(order[k], json_string_value(json_object_get(d, "class"))))
                continue;
            if (!head++)
                fprintf(fp, "%s:\n", order[k]);
            fputs("  ", fp);
            sts_report_xml_escape(fp, json_string_value(json_object_get(d, "text")));
            const char *why = json_string_value(json_object_get(d, "why"));
            if (why) {
                fputs(" (why: ", fp);
                sts_report_xml_escape(fp, why);
                fputs(")", fp);
            }
            fputc('\n', fp);
        }
    }
}

int sts_report_junit(const char *path, const sts_report_case *cases, size_t n, double seconds)
{
    char tmp[4096];
    FILE *fp = open_tmp(path, tmp, sizeof(tmp));
    if (!fp)
        return -1;
    size_t failures = 0, errors = 0, skipped = 0;
    for (size_t i = 0; i < n; i++) {
        if (cases[i].error)
            errors++;
        else if (cases[i].unsupported)
            skipped++;
        else if (!cases[i].passed)
            failures++;
    }
    fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(fp,
            "<testsuites name=\"ststest\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" "
            "time=\"%.3f\">\n",
            n, failures, errors, seconds);
    fprintf(fp,
            "  <testsuite name=\"ststest scenarios\" tests=\"%zu\" failures=\"%zu\" "
            "errors=\"%zu\" skipped=\"%zu\" time=\"%.3f\">\n",
            n, failures, errors, skipped, seconds);
    for (size_t i = 0; i < n; i++) {
        const sts_report_case *c = &cases[i];
        fprintf(fp, "    <testcase classname=\"");
        sts_report_xml_escape(fp, c->scenario);
        fprintf(fp, "\" name=\"");
        sts_report_xml_escape(fp, c->mode);
        fprintf(fp, "\" file=\"");
        sts_report_xml_escape(fp, c->file);
        fprintf(fp, "\" time=\"%.3f\">\n", c->seconds);
        if (c->error) {
            fprintf(fp, "      <error message=\"");
            sts_report_xml_escape(fp, c->error);
            fprintf(fp, "\"/>\n");
        } else if (c->unsupported) {
            fprintf(fp, "      <skipped message=\"unsupported: ");
            sts_report_xml_escape(fp, c->unsupported);
            fprintf(fp, "\"/>\n");
        } else if (!c->passed) {
            junit_failure(fp, c);
            if (c->actual) {
                char *a = json_dumps(c->actual, JSON_COMPACT);
                fprintf(fp, "actual: ");
                sts_report_xml_escape(fp, a);
                free(a);
            }
            fprintf(fp, "</failure>\n");
        }
        if (c->transcript && *c->transcript) {
            fprintf(fp, "      <system-out>");
            sts_report_xml_escape(fp, c->transcript);
            fprintf(fp, "</system-out>\n");
        }
        fprintf(fp, "    </testcase>\n");
    }
    fprintf(fp, "  </testsuite>\n</testsuites>\n");
    return finish(fp, tmp, path);
}

int sts_report_json(const char *path, const sts_report_case *cases, size_t n, double seconds)
{
    json_t *arr = json_array();
    size_t passed = 0, unsupported = 0;
    for (size_t i = 0; arr && i < n; i++) {
        const sts_report_case *c = &cases[i];
        passed += c->passed != 0;
        unsupported += !c->error && c->unsupported;
        json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:f, s:i}", "scenario", c->scenario, "file",
                              c->file, "mode", c->mode, "passed", c->passed, "seconds", c->seconds,
                              "exit", c->exit_status);
        if (!o)
            continue;
        json_object_set_new(o, "error", c->error ? json_string(c->error) : json_null());
        json_object_set_new(o, "unsupported",
                            c->unsupported ? json_string(c->unsupported) : json_null());
        json_t *diff = json_array();
        for (const char *p = c->diff; p && *p;) {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            json_array_append_new(diff, json_stringn(p, len));
            p += len + (nl ? 1 : 0);
        }
        json_object_set_new(o, "differences", diff);
        /* The same differences, each with its class and why (runner/verdict.h). */
        json_object_set_new(o, "classified", c->diffs ? json_incref(c->diffs) : json_array());
        json_object_set(o, "actual", c->actual ? c->actual : json_null());
        json_array_append_new(arr, o);
    }
    json_t *doc = json_pack("{s:o, s:i, s:i, s:i, s:f}", "cases", arr, "passed", (json_int_t)passed,
                            "failed", (json_int_t)(n - passed - unsupported), "unsupported",
                            (json_int_t)unsupported, "seconds", seconds);
    if (!doc) {
        errno = ENOMEM;
        return -1;
    }
    char tmp[4096];
    FILE *fp = open_tmp(path, tmp, sizeof(tmp));
    if (!fp) {
        json_decref(doc);
        return -1;
    }
    int rc = json_dumpf(doc, fp, JSON_INDENT(2));
    fputc('\n', fp);
    json_decref(doc);
    if (rc) {
        fclose(fp);
        unlink(tmp);
        errno = EIO;
        return -1;
    }
    return finish(fp, tmp, path);
}
