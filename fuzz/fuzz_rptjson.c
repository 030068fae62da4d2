/*
 * fuzz_rptjson.c - fuzz target for a received TLS report: sts_rptmsg_decode (JSON,
 * gzip or a mail message, common/rptmsg.h) and the strict RFC 8460 4.4 validator
 * sts_rpt_validate_text (common/rptjson.h). The input is the received bytes.
 *
 * Properties checked (abort on violation):
 *  - decode returns 0, STS_ESYNTAX or STS_ETOOBIG (STS_ENOMEM only on allocation
 *    failure), says why when it fails, and never yields more than STS_RPTMSG_MAX bytes.
 *  - validate returns 0 exactly when it counted no error, STS_ESYNTAX when it counted
 *    one; kept + dropped findings = errors + warnings; at most STS_RPT_FINDINGS_MAX
 *    kept; every path starts with "$"; a finding with a line is the one parse error.
 *  - A valid report really has what the validator promises, checked here on the JSON
 *    directly: the five top-level fields, a date range of one day whose times parse,
 *    known policy and result types, non-negative integer counts, failure counts that
 *    add up to at most the summary's.
 *  - Determinism: the parsed object written back as compact JSON validates to the same
 *    verdict with the same number of errors and warnings.
 * The function returns 0 (libFuzzer's convention).
 */
#include <string.h>

#include "common/err.h"
#include "common/rptjson.h"
#include "common/rptmsg.h"
#include "fuzz/fuzz.h"

static int count_ok(const json_t *j)
{
    return json_is_integer(j) && json_integer_value(j) >= 0;
}

/* What a valid report must be, read without the validator. */
static void check_valid(const json_t *root)
{
    static const char *const top[] = {"organization-name", "date-range", "contact-info",
                                      "report-id", "policies"};
    for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++)
        FUZZ_CHECK(json_object_get(root, top[i]) != NULL, "valid without %s", top[i]);
    const json_t *range = json_object_get(root, "date-range");
    time_t s, e;
    FUZZ_CHECK(
        !sts_rpt_parse_time(json_string_value(json_object_get(range, "start-datetime")), &s) &&
            !sts_rpt_parse_time(json_string_value(json_object_get(range, "end-datetime")), &e),
        "valid with an unparsable time");
    FUZZ_CHECK(e - s == 86399 || e - s == 86400, "valid with a range of %lld s",
               (long long)(e - s));
    const json_t *pols = json_object_get(root, "policies");
    FUZZ_CHECK(json_array_size(pols) > 0, "valid without policies");
    for (size_t i = 0; i < json_array_size(pols); i++) {
        const json_t *p = json_array_get(pols, i);
        sts_policy_type pt;
        FUZZ_CHECK(!sts_policy_type_parse(json_string_value(json_object_get(
                                              json_object_get(p, "policy"), "policy-type")),
                                          &pt),
                   "valid with an unknown policy type");
        const json_t *sum = json_object_get(p, "summary");
        const json_t *tf = json_object_get(sum, "total-failure-session-count");
        FUZZ_CHECK(count_ok(json_object_get(sum, "total-successful-session-count")) && count_ok(tf),
                   "valid with a bad summary count");
        const json_t *fds = json_object_get(p, "failure-details");
        long long failed = 0;
        for (size_t k = 0; k < json_array_size(fds); k++) {
            const json_t *fd = json_array_get(fds, k);
            sts_result_type rt;
            FUZZ_CHECK(
                !sts_result_type_parse(json_string_value(json_object_get(fd, "result-type")), &rt),
                "valid with an unknown result type");
            const json_t *c = json_object_get(fd, "failed-session-count");
            FUZZ_CHECK(count_ok(c), "valid with a bad failed-session-count");
            if (failed < (1LL << 62))
                failed += (long long)json_integer_value(c);
        }
        FUZZ_CHECK(failed <= (long long)json_integer_value(tf), "valid with %lld > %lld failures",
                   failed, (long long)json_integer_value(tf));
    }
}

static void check_findings(const sts_rpt_findings *f, int rc)
{
    FUZZ_CHECK((rc == 0) == (f->nerrors == 0), "rc %d with %zu errors", rc, f->nerrors);
    FUZZ_CHECK(f->n + f->ndropped == f->nerrors + f->nwarnings, "findings do not add up");
    FUZZ_CHECK(f->n <= STS_RPT_FINDINGS_MAX, "%zu findings kept", f->n);
    for (size_t i = 0; i < f->n; i++) {
        FUZZ_CHECK(f->items[i].path[0] == '$', "path '%s'", f->items[i].path);
        if (f->items[i].line)
            FUZZ_CHECK(f->n == 1 && !strcmp(f->items[i].path, "$"), "a line on a path finding");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sts_buf text;
    sts_buf_init(&text, 0);
    sts_rptmsg_form form;
    char err[256] = "";
    int rc = sts_rptmsg_decode((const char *)data, size, &text, &form, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == STS_ESYNTAX || rc == STS_ETOOBIG || rc == STS_ENOMEM, "decode %d",
               rc);
    if (rc) {
        FUZZ_CHECK(err[0] != '\0', "decode failed (%d) without saying why", rc);
        sts_buf_free(&text);
        return 0;
    }
    FUZZ_CHECK(text.len <= STS_RPTMSG_MAX, "%zu bytes decoded", text.len);
    sts_rpt_findings f;
    sts_rpt_findings_init(&f);
    json_t *root = NULL;
    rc = sts_rpt_validate_text(text.data ? text.data : "", text.len, &f, &root);
    FUZZ_CHECK(rc == 0 || rc == STS_ESYNTAX || rc == STS_ENOMEM, "validate %d", rc);
    if (rc != STS_ENOMEM)
        check_findings(&f, rc);
    if (rc == 0)
        check_valid(root);
    if (root && rc != STS_ENOMEM) {
        char *again = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (again) {
            sts_rpt_findings g;
            sts_rpt_findings_init(&g);
            int rc2 = sts_rpt_validate_text(again, strlen(again), &g, NULL);
            if (rc2 != STS_ENOMEM)
                FUZZ_CHECK(rc2 == rc && g.nerrors == f.nerrors && g.nwarnings == f.nwarnings,
                           "written back: %d (%zu errors, %zu warnings), was %d (%zu, %zu)", rc2,
                           g.nerrors, g.nwarnings, rc, f.nerrors, f.nwarnings);
            sts_rpt_findings_free(&g);
            free(again);
        }
    }
    json_decref(root);
    sts_rpt_findings_free(&f);
    sts_buf_free(&text);
    return 0;
}
