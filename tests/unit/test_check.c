/* test_check.c - what check gathers beyond send's facts (sender/check.h): the judgement
 * of the _smtp._tls answer (RFC 8460 3) and the drift between a cached policy and the
 * one served, as tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sender/check.h"

#define NAME "_smtp._tls.example.test"
#define V1 "v=TLSRPTv1; rua=mailto:tlsrpt@example.test"

static const struct tlsrpt_row {
    const char *what;
    sts_dns_status status;
    const char *recs[3];
    sts_check_tlsrpt want;
    size_t nrua;
    const char *why_part; /* in tlsrpt_why / the JSON error when not valid */
} tlsrpt_rows[] = {
    {"one v1 record", STS_DNS_OK, {V1}, STS_CHECK_TLSRPT_VALID, 1, NULL},
    {"two URIs", STS_DNS_OK, {V1 ",https://r.example.test/v1"}, STS_CHECK_TLSRPT_VALID, 2, NULL},
    {"v1 among other TXT",
     STS_DNS_OK,
     {"google-site-verification=x", V1},
     STS_CHECK_TLSRPT_VALID,
     1,
     NULL},
    {"NXDOMAIN", STS_DNS_NXDOMAIN, {NULL}, STS_CHECK_TLSRPT_MISSING, 0, "NXDOMAIN"},
    {"NODATA", STS_DNS_NODATA, {NULL}, STS_CHECK_TLSRPT_MISSING, 0, "NODATA"},
    {"SERVFAIL: no answer, not absent",
     STS_DNS_SERVFAIL,
     {NULL},
     STS_CHECK_TLSRPT_INVALID,
     0,
     "SERVFAIL"},
    {"v=TLSRPTv2 only: present but not usable",
     STS_DNS_OK,
     {"v=TLSRPTv2; rua=mailto:tlsrpt@example.test"},
     STS_CHECK_TLSRPT_INVALID,
     0,
     "TLSRPTv1"},
    {"two v1 records",
     STS_DNS_OK,
     {V1, "v=TLSRPTv1; rua=mailto:b@example.test"},
     STS_CHECK_TLSRPT_INVALID,
     0,
     "2"},
    {"no rua", STS_DNS_OK, {"v=TLSRPTv1;"}, STS_CHECK_TLSRPT_INVALID, 0, "rua"},
    {"unsupported scheme",
     STS_DNS_OK,
     {"v=TLSRPTv1; rua=ftp://example.test/"},
     STS_CHECK_TLSRPT_INVALID,
     0,
     NULL},
};

static void test_tlsrpt(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(tlsrpt_rows) / sizeof(tlsrpt_rows[0]); i++) {
        const struct tlsrpt_row *w = &tlsrpt_rows[i];
        sts_dns_txt recs[3];
        size_t n = 0;
        while (n < 3 && w->recs[n]) {
            recs[n].data = w->recs[n];
            recs[n].len = strlen(w->recs[n]);
            n++;
        }
        sts_dns_txt_result res = {.status = w->status,
                                  .name = NAME,
                                  .canonical = NAME,
                                  .n = n,
                                  .records = recs,
                                  .detail = NULL};
        sts_check_extra x;
        memset(&x, 0, sizeof(x));
        sts_check_read_tlsrpt(&x, NAME, &res);
        json_t *j = x.tlsrpt_json;
        int bad =
            !x.tlsrpt_done || x.tlsrpt != w->want || !j ||
            strcmp(json_string_value(json_object_get(j, "name")), NAME) ||
            json_array_size(json_object_get(j, "records")) != n ||
            json_array_size(json_object_get(j, "rua")) != w->nrua ||
            json_is_true(json_object_get(j, "valid")) != (w->want == STS_CHECK_TLSRPT_VALID) ||
            (w->want == STS_CHECK_TLSRPT_VALID) != json_is_null(json_object_get(j, "error")) ||
            (w->why_part && !strstr(x.tlsrpt_why, w->why_part));
        if (bad) {
            char *dump = j ? json_dumps(j, JSON_COMPACT) : NULL;
            print_error("row '%s': got %d (want %d), why '%s', json %s\n", w->what, x.tlsrpt,
                        w->want, x.tlsrpt_why, dump ? dump : "NULL");
            free(dump);
        }
        sts_check_extra_free(&x);
        assert_false(bad);
    }
}

static char *pats_a[] = {"mail.example.test"};
static char *pats_b[] = {"mail.example.test", "backup.example.test"};

static void policy(sts_policy *p, char **mx, size_t nmx, long max_age)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->version, sizeof(p->version), "STSv1");
    p->mode = STS_MODE_ENFORCE;
    p->max_age = max_age;
    p->mx = mx;
    p->nmx = nmx;
}

static void test_drift(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        int cached; /* a cache entry with a policy */
        const char *cached_id, *served_id;
        int same_policy;
        sts_drift want;
    } rows[] = {
        {"nothing cached", 0, "1", "1", 1, STS_DRIFT_NONE},
        {"same id, same policy", 1, "1", "1", 1, STS_DRIFT_NONE},
        {"same id, policy changed", 1, "1", "1", 0, STS_DRIFT_SAME_ID},
        {"id changed, same policy", 1, "1", "2", 1, STS_DRIFT_ID_ONLY},
        {"both changed: as it should be", 1, "1", "2", 0, STS_DRIFT_NONE},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        sts_cache_entry e;
        memset(&e, 0, sizeof(e));
        e.has_policy = rows[i].cached;
        snprintf(e.id, sizeof(e.id), "%s", rows[i].cached_id);
        policy(&e.policy, pats_a, 1, 604800);
        sts_discovery d;
        memset(&d, 0, sizeof(d));
        d.have_txt = d.have_policy = 1;
        snprintf(d.txt_id, sizeof(d.txt_id), "%s", rows[i].served_id);
        if (rows[i].same_policy)
            policy(&d.policy, pats_a, 1, 604800);
        else
            policy(&d.policy, pats_b, 2, 604800);
        sts_check_extra x;
        memset(&x, 0, sizeof(x));
        sts_check_drift(&x, &e, &d);
        if (x.drift != rows[i].want)
            print_error("row '%s': drift %d, want %d\n", rows[i].what, x.drift, rows[i].want);
        assert_int_equal(x.drift, rows[i].want);
        if (rows[i].want != STS_DRIFT_NONE)
            assert_string_equal(x.cached_id, rows[i].cached_id);
    }
    /* No policy served: no drift to speak of. */
    sts_discovery none;
    memset(&none, 0, sizeof(none));
    sts_check_extra x;
    memset(&x, 0, sizeof(x));
    sts_check_drift(&x, NULL, &none);
    assert_int_equal(x.drift, STS_DRIFT_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tlsrpt),
        cmocka_unit_test(test_drift),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
