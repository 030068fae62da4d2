/*
 * fuzz_zone_lines.c - fuzz target for the zone-line parser of the world's DNS server
 * (sts_dns_zone_add_lines, fakedns/dnszone.h via dnssrv.h): the input is the `dns:`
 * text of a scenario (zone-file lines, names relative to example.test).
 *
 * Properties checked (abort on violation):
 *  - A rejected text gives a message "fuzz:LINE: ..." whose LINE is a line of the
 *    input.
 *  - An accepted text makes a zone that sts_dns_zone_finish indexes, and then, for
 *    every owner the text names (first field of its first lines), the apex and every
 *    MX target, queries of several types answer the same through the index and
 *    through the reference path, with sound replies (fuzz_dns_check in fuzz_dns.h):
 *    whatever records an author writes, the precomputed answers equal ldns's.
 *  - sts_dns_zone_mx_targets lists names without a trailing dot, in lower case
 *    (a target whose escaped form is long once came back cut: a regression seed).
 * Every zone is freed before the next input. The function returns 0.
 */
#include <ctype.h>

#include "fuzz/fuzz_dns.h"

#define MAX_OWNERS 6

/* The owner of a zone line as an absolute name into out ("" when the line has none). */
static void line_owner(const char *line, size_t n, char *out, size_t outlen)
{
    out[0] = '\0';
    if (!n || line[0] == ' ' || line[0] == '\t' || line[0] == ';' || line[0] == '$')
        return;
    size_t k = 0;
    while (k < n && line[k] != ' ' && line[k] != '\t' && line[k] != '\r')
        k++;
    if (k == 0)
        return;
    if (k == 1 && line[0] == '@')
        snprintf(out, outlen, "example.test");
    else if (line[k - 1] == '.')
        snprintf(out, outlen, "%.*s", (int)(k - 1), line);
    else
        snprintf(out, outlen, "%.*s.example.test", (int)k, line);
}

static void query_all(const sts_dns_zone *z, const char *name, const uint16_t *types, size_t nt)
{
    uint8_t q[512];
    for (size_t i = 0; i < nt; i++) {
        size_t len = fuzz_dns_query(name, types[i], i == 1 ? 1232 : 0, q, sizeof(q));
        if (!len)
            return;
        fuzz_dns_check(z, q, len, STS_DNS_UDP);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    size_t nlines = 1;
    for (size_t i = 0; i < size; i++)
        nlines += text[i] == '\n';

    char err[512] = "";
    sts_dns_zone *z = sts_dns_zone_new("example.test", err, sizeof(err));
    FUZZ_CHECK(z != NULL, "zone_new: %s", err);
    int rc = sts_dns_zone_add_lines(z, text, "fuzz", 1, err, sizeof(err));
    if (rc) {
        FUZZ_CHECK(rc < 0, "rc %d", rc);
        int line = 0;
        if (rc != STS_ENOMEM) {
            FUZZ_CHECK(sscanf(err, "fuzz:%d:", &line) == 1, "message without a line: '%s'", err);
            FUZZ_CHECK(line >= 1 && (size_t)line <= nlines, "line %d of %zu: '%s'", line, nlines,
                       err);
        }
        goto out;
    }
    /* the world adds its hosts' addresses after the scenario's lines */
    sts_dns_zone_add_a(z, "mail.example.test", "127.1.2.10");
    rc = sts_dns_zone_finish(z);
    FUZZ_CHECK(rc == 0 || rc == STS_ENOMEM, "finish rc %d", rc);
    if (rc)
        goto out;

    static const uint16_t all_types[] = {LDNS_RR_TYPE_A,    LDNS_RR_TYPE_MX,  LDNS_RR_TYPE_TXT,
                                         LDNS_RR_TYPE_AAAA, LDNS_RR_TYPE_ANY, LDNS_RR_TYPE_CNAME,
                                         LDNS_RR_TYPE_NS,   LDNS_RR_TYPE_SOA};
    static const uint16_t some_types[] = {LDNS_RR_TYPE_A, LDNS_RR_TYPE_TXT, LDNS_RR_TYPE_ANY,
                                          LDNS_RR_TYPE_MX};
    query_all(z, "example.test", all_types, sizeof(all_types) / sizeof(all_types[0]));
    query_all(z, "nx.example.test", some_types, 1);

    /* the owners of the first lines */
    const char *p = text;
    int owners = 0;
    while (*p && owners < MAX_OWNERS) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char name[300];
        line_owner(p, n, name, sizeof(name));
        if (name[0]) {
            query_all(z, name, some_types, sizeof(some_types) / sizeof(some_types[0]));
            owners++;
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    char **mx = sts_dns_zone_mx_targets(z);
    for (size_t i = 0; mx && mx[i]; i++) {
        size_t n = strlen(mx[i]);
        FUZZ_CHECK(n == 0 || mx[i][n - 1] != '.', "MX target '%s' with a trailing dot", mx[i]);
        for (size_t k = 0; k < n; k++)
            FUZZ_CHECK(!isupper((unsigned char)mx[i][k]), "MX target '%s' not in lower case",
                       mx[i]);
        if (i < MAX_OWNERS)
            query_all(z, mx[i], some_types, 2);
        free(mx[i]);
    }
    free(mx);
out:
    sts_dns_zone_free(z);
    free(text);
    return 0;
}
