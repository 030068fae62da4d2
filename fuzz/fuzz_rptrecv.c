/*
 * fuzz_rptrecv.c - fuzz target for what the world's TLSRPT endpoints receive from the
 * network (fakedns/rptrecv.h): the input as an HTTPS POST body (with a Content-Type
 * taken from its first line when it has one) and as a whole mail message delivered to
 * the mailbox (its 5.3 headers read by sts_rptmsg_read_head, its DKIM signature
 * verified by libopendkim against a zone of the target's own).
 *
 * Properties checked (abort on violation):
 *  - every record is made (NULL only on allocation failure) with via, valid, errors,
 *    warnings and findings, and `valid` is true exactly when `errors` is 0;
 *  - errors + warnings = the number of findings, each finding has a severity, a name,
 *    a where and a message;
 *  - a mail record has a DKIM verdict of pass, fail or none, and "pass" never comes
 *    without a signature the zone's key verifies: the zone publishes no key, so a pass
 *    is impossible;
 *  - sts_rptmsg_read_head's fields are NUL-terminated within their arrays.
 * The function returns 0 (libFuzzer's convention).
 */
#include <string.h>

#include "common/rptmsg.h"
#include "common/vocab.h"
#include "fakedns/dnszone.h"
#include "fakedns/rptrecv.h"
#include "fuzz/fuzz.h"

static void check_record(json_t *rec, int mail)
{
    if (!rec)
        return; /* out of memory */
    json_t *findings = json_object_get(rec, "findings");
    json_int_t errors = json_integer_value(json_object_get(rec, "errors"));
    json_int_t warnings = json_integer_value(json_object_get(rec, "warnings"));
    FUZZ_CHECK(json_is_array(findings), "no findings array");
    FUZZ_CHECK(json_is_boolean(json_object_get(rec, "valid")), "no valid");
    FUZZ_CHECK(json_is_true(json_object_get(rec, "valid")) == (errors == 0), "valid vs %lld errors",
               (long long)errors);
    FUZZ_CHECK((size_t)(errors + warnings) == json_array_size(findings), "%lld+%lld != %zu",
               (long long)errors, (long long)warnings, json_array_size(findings));
    size_t i;
    json_t *f;
    json_array_foreach(findings, i, f)
    {
        FUZZ_CHECK(json_is_string(json_object_get(f, "severity")) &&
                       json_is_string(json_object_get(f, "name")) &&
                       json_is_string(json_object_get(f, "where")) &&
                       json_is_string(json_object_get(f, "message")),
                   "finding %zu incomplete", i);
    }
    if (mail) {
        const char *r = json_string_value(json_object_get(json_object_get(rec, "dkim"), "result"));
        sts_dkim_result d;
        FUZZ_CHECK(r && !sts_dkim_result_parse(r, &d), "dkim result %s", r ? r : "(none)");
        FUZZ_CHECK(d != STS_DKIM_PASS, "a DKIM pass without any key in the zone");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sts_dns_zone *zone;
    if (!zone) {
        char err[128];
        zone = sts_dns_zone_new("example.test", err, sizeof(err));
        if (!zone || sts_dns_zone_finish(zone))
            abort();
    }
    const char *in = (const char *)data;

    sts_rptmsg_head h;
    sts_rptmsg_read_head(in, size, &h);
    FUZZ_CHECK(memchr(h.subject, 0, sizeof(h.subject)) &&
                   memchr(h.part_type, 0, sizeof(h.part_type)),
               "an unterminated head field");

    /* HTTPS: a first line up to 100 octets is the Content-Type, the rest the body. */
    const char *nl = memchr(in, '\n', size < 100 ? size : 100);
    char ctype[101] = "";
    size_t off = 0;
    if (nl) {
        memcpy(ctype, in, (size_t)(nl - in));
        ctype[nl - in] = '\0';
        off = (size_t)(nl - in) + 1;
    }
    json_t *rec = sts_rptrecv_https(nl ? ctype : NULL, NULL, in + off, size - off);
    check_record(rec, 0);
    json_decref(rec);

    rec = sts_rptrecv_mail(in, size, zone);
    check_record(rec, 1);
    json_decref(rec);
    return 0;
}
