/*
 * report.h - machine-readable reports of a `ststest run`: JUnit XML (as GitLab,
 * Jenkins and GitHub test reporters read it: one <testsuite> per run, one <testcase>
 * per scenario and mode, <failure> with the expected-vs-actual lines, <skipped> for
 * an unsupported case, <system-out>
 * with the transcript) and a JSON document. Files are written to a temporary name
 * and renamed, so a reader never sees half a report. Both return 0 or -1 (errno set).
 */
#ifndef STS_REPORT_H
#define STS_REPORT_H

#include <jansson.h>
#include <stddef.h>

typedef struct sts_report_case {
    const char *scenario;
    const char *file;
    const char *about;
    const char *mode;
    int passed;
    const char *error;       /* the case could not run; NULL otherwise */
    const char *unsupported; /* why the sender cannot do the case (JUnit <skipped>);
                                NULL otherwise */
    const char *diff;        /* expected-vs-actual lines; NULL or "" when none */
    json_t *diffs;           /* the same, classified (runner/verdict.h: {text, class, why,
                                step}); borrowed; NULL: not classified */
    json_t *actual;          /* borrowed */
    int exit_status;
    double seconds;
    const char *transcript;
} sts_report_case;

int sts_report_junit(const char *path, const sts_report_case *cases, size_t n, double seconds);
int sts_report_json(const char *path, const sts_report_case *cases, size_t n, double seconds);

/* Write s XML-escaped (text and attribute safe; invalid control bytes dropped). */
void sts_report_xml_escape(FILE *fp, const char *s);

#endif
