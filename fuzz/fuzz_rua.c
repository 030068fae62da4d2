/*
 * fuzz_rua.c - fuzz target for a rua URI taken apart for delivery (sender/rua.h). The
 * input is one URI (a NUL byte ends it, as for a C string).
 *
 * Properties checked (abort on violation):
 *  - sts_rua_parse returns 0 or STS_ESYNTAX; on failure err is not empty.
 *  - Success, mailto: the address has an "@" with a non-empty local part, only
 *    printable ASCII without space, ",", "<", ">"; the domain is lower case and is the
 *    address's domain (brackets and an IPv6: tag dropped, one trailing dot dropped).
 *    https: the host is non-empty printable ASCII, lower case unless a literal, the
 *    port is 1-65535, the path starts with "/" and has no space, control octet or "#".
 *  - Round trip: the parts written back ("mailto:ADDRESS" with "%", "?" and "!" written
 *    as %HH, or "https://[HOST]:PORT/PATH") parse to the same parts.
 * The function returns 0 (libFuzzer's convention).
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "fuzz/fuzz.h"
#include "sender/rua.h"

static int printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

static void check_mailto(const sts_rua *r)
{
    const char *at = strrchr(r->address, '@');
    FUZZ_CHECK(at && at > r->address, "address '%s'", r->address);
    FUZZ_CHECK(printable(r->address) && !strpbrk(r->address, ",<>"), "address '%s'", r->address);
    FUZZ_CHECK(r->domain[0], "empty domain of '%s'", r->address);
    for (const char *p = r->domain; *p; p++)
        FUZZ_CHECK(!isupper((unsigned char)*p), "domain '%s' not lower case", r->domain);
    if (!r->domain_literal) {
        size_t dl = strlen(r->domain), al = strlen(at + 1);
        FUZZ_CHECK(al == dl || (al == dl + 1 && at[1 + dl] == '.'), "domain '%s' of '%s'",
                   r->domain, r->address);
        FUZZ_CHECK(!strncasecmp(at + 1, r->domain, dl), "domain '%s' of '%s'", r->domain,
                   r->address);
    } else {
        FUZZ_CHECK(at[1] == '[' && strcasestr(at, r->domain), "literal '%s' of '%s'", r->domain,
                   r->address);
    }
    /* Round trip: '%', '?' and '!' must be written %HH to mean themselves. */
    char uri[3 * sizeof(r->address) + 16] = "mailto:";
    size_t o = strlen(uri);
    for (const char *p = r->address; *p && o + 4 < sizeof(uri); p++) {
        if (*p == '%' || *p == '?' || *p == '!')
            o += (size_t)snprintf(uri + o, sizeof(uri) - o, "%%%02X", (unsigned char)*p);
        else
            uri[o++] = *p;
    }
    uri[o] = '\0';
    sts_rua again;
    char err[512];
    int rc = sts_rua_parse(uri, &again, err, sizeof(err));
    FUZZ_CHECK(rc == 0, "'%s' does not parse again: %s", uri, err);
    FUZZ_CHECK(!strcmp(again.address, r->address) && !strcmp(again.domain, r->domain),
               "'%s' gave '%s' '%s', not '%s' '%s'", uri, again.address, again.domain, r->address,
               r->domain);
}

static void check_https(const sts_rua *r)
{
    FUZZ_CHECK(r->host[0] && printable(r->host), "host '%s'", r->host);
    if (!r->host_literal)
        for (const char *p = r->host; *p; p++)
            FUZZ_CHECK(!isupper((unsigned char)*p), "host '%s' not lower case", r->host);
    FUZZ_CHECK(r->port >= 1 && r->port <= 65535, "port %d", r->port);
    FUZZ_CHECK(r->path[0] == '/' && printable(r->path), "path '%s'", r->path);
    FUZZ_CHECK(!strchr(r->path, '#'), "fragment kept in '%s'", r->path);
    char uri[sizeof(r->host) + sizeof(r->path) + 32];
    int v6 = strchr(r->host, ':') != NULL;
    snprintf(uri, sizeof(uri), "https://%s%s%s:%d%s", v6 ? "[" : "", r->host, v6 ? "]" : "",
             r->port, r->path);
    sts_rua again;
    char err[512];
    int rc = sts_rua_parse(uri, &again, err, sizeof(err));
    FUZZ_CHECK(rc == 0, "'%s' does not parse again: %s", uri, err);
    FUZZ_CHECK(!strcmp(again.host, r->host) && again.port == r->port &&
                   !strcmp(again.path, r->path) && again.host_literal == r->host_literal,
               "'%s' gave %s:%d%s", uri, again.host, again.port, again.path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char uri[4096];
    if (size >= sizeof(uri))
        size = sizeof(uri) - 1;
    memcpy(uri, data, size);
    uri[size] = '\0';
    sts_rua r;
    char err[512] = "";
    int rc = sts_rua_parse(uri, &r, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == STS_ESYNTAX, "rc %d", rc);
    if (rc) {
        FUZZ_CHECK(err[0], "no reason for '%s'", uri);
        return 0;
    }
    if (r.scheme == STS_TLSRPT_MAILTO)
        check_mailto(&r);
    else
        check_https(&r);
    return 0;
}
