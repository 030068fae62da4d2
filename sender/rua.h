/*
 * rua.h - one `rua` destination of a TLSRPT record (RFC 8460 3), taken apart for
 * delivery: where `ststest report --deliver` sends a report.
 *
 *   mailto:LOCAL@DOMAIN[?hfields][!SIZE]   (RFC 6068; RFC 8460 3 gives one addr-spec per
 *                                           URI, a list is several URIs)
 *   https://HOST[:PORT][/PATH][?QUERY]      (RFC 7230 2.7.2; PORT default 443)
 *
 * Decisions, each with its clause:
 *  - mailto: percent-encoded octets (%HH) are decoded (RFC 6068 2); header fields after
 *    "?" are ignored (only the address matters to an aggregate report); a DMARC-style
 *    "!SIZE" suffix (digits, then k/m/g/t) is taken as a size limit in bytes: RFC 8460 3
 *    says "!" MUST be encoded in the URI, so sender/tlsrpt.c refuses such a record, but
 *    a caller handed one directly gets the limit, not an address ending in "!10m".
 *  - https: the host is a DNS name or an [IPv6] / IPv4 literal; no userinfo (RFC 7230
 *    2.7.1); the path (with its query) is kept as written, "/" when empty; a fragment
 *    is dropped (it is never sent).
 *
 * Pure; functions return 0 or a negative code from common/err.h.
 */
#ifndef STS_RUA_H
#define STS_RUA_H

#include <stddef.h>

#include "sender/tlsrpt.h"

typedef struct sts_rua {
    sts_tlsrpt_scheme scheme;
    /* mailto */
    char address[320];        /* decoded addr-spec: "tlsrpt@example.com" */
    char domain[256];         /* its domain, lower case, no brackets for a literal */
    int domain_literal;       /* the domain was an [address literal] */
    unsigned long long limit; /* "!SIZE" in bytes; 0: none */
    /* https */
    char host[256];   /* no brackets */
    int host_literal; /* host is an IP address literal: no DNS */
    int port;         /* 443 unless given */
    char path[2048];  /* "/tlsrpt?x=1" */
} sts_rua;

/* Take uri (a whole rua URI, scheme included) apart into *out. 0, or STS_ESYNTAX with
 * err saying what is wrong, e.g. "mailto:foo: no '@' in the address",
 * "https://:99/: empty host", "https://h:99999/: port 99999 out of range". */
int sts_rua_parse(const char *uri, sts_rua *out, char *err, size_t errlen);

#endif
