/*
 * test_result.c - one recipient's result (sender/result.h): the TLS facts copied out
 * of sts_tls_info (peer names on the heap, empty strings as none), the JSON object
 * with and without a pool of shared values (the same text either way), and what the
 * pool shares: equal values of two results are one value, what differs is not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sender/result.h"

static char *policy_mx[] = {"mail.example.test", "*.example.test"};

static void tls_info(sts_tls_info *ti)
{
    memset(ti, 0, sizeof(*ti));
    ti->done = 1;
    snprintf(ti->version, sizeof(ti->version), "TLSv1.3");
    snprintf(ti->cipher, sizeof(ti->cipher), "TLS_AES_256_GCM_SHA384");
    snprintf(ti->sni, sizeof(ti->sni), "mail.example.test");
    ti->verified = ti->chain_ok = ti->time_ok = ti->name_ok = 1;
    /* A view of static names (common/tls.h: a view is never released). */
    static char names[2][STS_TLS_PEER_NAME_LEN] = {"DNS:mail.example.test", "CN:mail.example.test"};
    ti->npeer_names = 2;
    ti->peer_names = names;
    snprintf(ti->not_before, sizeof(ti->not_before), "2024-01-01T00:00:00Z");
    snprintf(ti->not_after, sizeof(ti->not_after), "2034-01-01T00:00:00Z");
}

/* A delivered recipient at example.test through one MX, under a fetched policy. */
static void make(sts_rcpt_result *r, sts_mx_result *m, sts_discovery *d, const char *arg)
{
    memset(r, 0, sizeof(*r));
    memset(m, 0, sizeof(*m));
    memset(d, 0, sizeof(*d));
    d->have_txt = d->have_policy = d->decided = 1;
    snprintf(d->txt_id, sizeof(d->txt_id), "id1");
    snprintf(d->policy_id, sizeof(d->policy_id), "id1");
    d->decision = STS_CACHE_FETCH;
    d->source = STS_POLICY_SOURCE_FETCHED;
    d->policy.mode = STS_MODE_ENFORCE;
    d->policy.max_age = 86400;
    d->policy.nmx = 2;
    d->policy.mx = policy_mx;
    d->fetched_at = 1700000000;
    d->expires_at = 1700086400;
    r->arg = arg;
    snprintf(r->domain, sizeof(r->domain), "example.test");
    r->outcome = STS_OUTCOME_DELIVERED;
    r->mode = STS_MODE_ENFORCE;
    r->tls_required = 1;
    m->host = "mail.example.test";
    m->preference = 10;
    m->policy_match = 1;
    snprintf(m->address, sizeof(m->address), "127.0.0.10");
    snprintf(m->addresses[0], sizeof(m->addresses[0]), "127.0.0.10");
    m->naddresses = 1;
    m->action = STS_ACTION_DELIVERED;
    m->stage = "BODY";
    m->connected = m->starttls_offered = m->tls_attempted = m->tls_up = m->pipelined = 1;
    sts_tls_info ti;
    tls_info(&ti);
    assert_int_equal(sts_mx_tls_set(&m->tls, &ti, 0), 0);
    m->code = 250;
    snprintf(m->enhanced, sizeof(m->enhanced), "2.0.0");
    snprintf(m->text, sizeof(m->text), "Ok: queued");
    snprintf(m->detail, sizeof(m->detail), "message accepted: 250 Ok: queued");
    r->mx = m;
    r->nmx = 1;
}

static char *dump(json_t *o)
{
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    assert_non_null(s);
    return s;
}

static void test_tls_facts(void **state)
{
    (void)state;
    sts_tls_info ti;
    tls_info(&ti);
    sts_mx_tls t;
    memset(&t, 0, sizeof(t));
    assert_int_equal(sts_mx_tls_set(&t, &ti, 0), 0);
    assert_string_equal(t.version, "TLSv1.3");
    assert_string_equal(t.sni, "mail.example.test");
    assert_int_equal(t.npeer_names, 2);
    assert_string_equal(t.peer_names[1], "CN:mail.example.test");
    assert_null(t.error);        /* "" is none */
    assert_null(t.verify_error); /* likewise */
    /* Set again (the plaintext retry keeps a handshake's facts): the old ones go. */
    ti.npeer_names = 0;
    ti.sni[0] = '\0';
    snprintf(ti.error, sizeof(ti.error), "peer closed during handshake");
    assert_int_equal(sts_mx_tls_set(&t, &ti, 0), 0);
    assert_int_equal(t.npeer_names, 0);
    assert_null(t.peer_names);
    assert_null(t.sni);
    assert_string_equal(t.error, "peer closed during handshake");
    sts_mx_tls_free(&t);
    assert_null(t.error);
}

static void test_add_failure(void **state)
{
    (void)state;
    sts_rcpt_result r;
    memset(&r, 0, sizeof(r));
    sts_result_add_failure(&r, STS_RESULT_NONE);
    sts_result_add_failure(&r, STS_RESULT_CERTIFICATE_EXPIRED);
    sts_result_add_failure(&r, STS_RESULT_VALIDATION_FAILURE);
    sts_result_add_failure(&r, STS_RESULT_CERTIFICATE_EXPIRED);
    assert_int_equal(r.nfailures, 2);
    assert_int_equal(r.failures[0], STS_RESULT_CERTIFICATE_EXPIRED);
    assert_int_equal(r.failures[1], STS_RESULT_VALIDATION_FAILURE);
}

static void test_json_pool(void **state)
{
    (void)state;
    sts_rcpt_result r1, r2;
    sts_mx_result m1, m2;
    sts_discovery d1, d2;
    make(&r1, &m1, &d1, "a@example.test");
    make(&r2, &m2, &d2, "b@example.test");

    json_t *plain = sts_result_json(&r1, &d1, 0, 1, NULL);
    sts_result_pool *pool = sts_result_pool_new();
    assert_non_null(pool);
    json_t *a = sts_result_json(&r1, &d1, 0, 1, pool);
    json_t *b = sts_result_json(&r2, &d2, 0, 1, pool);
    sts_result_pool_free(pool); /* the results keep their references */

    char *s_plain = dump(plain), *s_a = dump(a);
    assert_string_equal(s_plain, s_a); /* sharing changes no byte */
    assert_non_null(strstr(s_a, "\"peer_names\": [\n"));
    assert_non_null(strstr(s_a, "\"recheck\": null"));
    /* Equal values are one value; what differs is not shared. */
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(json_object_get(a, "policy"), json_object_get(b, "policy"));
    assert_ptr_equal(json_object_get(a, "cache"), json_object_get(b, "cache"));
    assert_ptr_equal(json_object_get(a, "mx"), json_object_get(b, "mx"));
    assert_ptr_equal(json_object_get(a, "failures"), json_object_get(b, "failures"));
    assert_ptr_equal(json_object_get(a, "domain"), json_object_get(b, "domain"));
    assert_ptr_not_equal(json_object_get(a, "argument"), json_object_get(b, "argument"));
    assert_ptr_equal(json_object_get(a, "argument"), json_object_get(a, "recipient"));
    /* Not the same pointers without a pool. */
    assert_ptr_not_equal(json_object_get(plain, "policy"), json_object_get(a, "policy"));
    char *s_b = dump(b);
    assert_non_null(strstr(s_b, "\"argument\": \"b@example.test\""));
    free(s_plain);
    free(s_a);
    free(s_b);
    json_decref(plain);
    json_decref(a);
    json_decref(b);
    sts_mx_tls_free(&m1.tls);
    sts_mx_tls_free(&m2.tls);
}

/* A check run (no recipient) and a result without MX, policy or discovery. */
static void test_json_bare(void **state)
{
    (void)state;
    sts_rcpt_result r;
    memset(&r, 0, sizeof(r));
    r.arg = "example.test";
    snprintf(r.domain, sizeof(r.domain), "example.test");
    r.outcome = STS_OUTCOME_FAILED;
    r.mode = STS_MODE_NONE;
    snprintf(r.detail, sizeof(r.detail), "null MX");
    r.null_mx = 1;
    sts_discovery d;
    memset(&d, 0, sizeof(d));
    d.source = STS_POLICY_SOURCE_NONE;
    json_t *o = sts_result_json(&r, &d, 1, 0, NULL);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(
        s, "{\"recipient\":null,\"argument\":\"example.test\",\"command\":\"check\","
           "\"domain\":\"example.test\",\"outcome\":\"failed\",\"detail\":\"null MX\","
           "\"tls_required\":false,\"policy\":{\"source\":\"none\",\"mode\":\"none\","
           "\"policy_mode\":null,\"id\":null,\"txt_id\":null,\"max_age\":null,\"mx\":[]},"
           "\"cache\":{\"enabled\":false,\"decision\":null,\"fetched_at\":null,"
           "\"expires_at\":null},\"recheck\":null,\"null_mx\":true,\"mx\":[],\"failures\":[]}");
    free(s);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_facts),
        cmocka_unit_test(test_add_failure),
        cmocka_unit_test(test_json_pool),
        cmocka_unit_test(test_json_bare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
