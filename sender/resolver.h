/*
 * resolver.h - an asynchronous DNS stub resolver (c-ares) on a libuv loop.
 *
 * It asks the nameservers of /etc/resolv.conf, or those given, for TXT, MX, A and
 * AAAA records of class IN. It never reads /etc/hosts and never applies search
 * domains (ARES_FLAG_NOSEARCH), so what the sender sees is exactly what DNS says.
 *
 * Callbacks: each query function that returns 0 calls its callback exactly once,
 * never inside the call itself (libuv rule). The result struct and everything it
 * points to is valid only during the callback: copy what you keep.
 *
 * Load: at most STS_RESOLVER_MAX_IN_FLIGHT DNS queries (a TXT, MX, A or AAAA question
 * each) are outstanding at once; the rest wait in FIFO order and go out as answers
 * come in, so a sender with a thousand deliveries at once does not fire thousands of
 * datagrams at one server (which would drop them and make every run depend on
 * retries). The wait counts towards a query's timeout.
 *
 * Timeouts: timeout_s bounds each query as a whole (all retries included); when it
 * passes the callback gets STS_DNS_TIMEOUT.
 *
 * Logging: every query and its answer is logged at debug level, e.g.
 *     dns query TXT _mta-sts.example.com
 *     dns answer TXT _mta-sts.example.com NOERROR 1 record(s): "v=STSv1; id=1;"
 *
 * Functions return 0 or a negative code from common/err.h.
 */
#ifndef STS_RESOLVER_H
#define STS_RESOLVER_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#include "common/log.h"

typedef struct sts_resolver sts_resolver;

typedef enum {
    STS_DNS_OK = 0,    /* NOERROR with at least one record of the type asked */
    STS_DNS_NXDOMAIN,  /* the name does not exist (rcode 3) */
    STS_DNS_NODATA,    /* the name exists, no record of that type (NOERROR, empty) */
    STS_DNS_SERVFAIL,  /* rcode 2 */
    STS_DNS_TIMEOUT,   /* no answer within timeout_s */
    STS_DNS_REFUSED,   /* rcode 5 */
    STS_DNS_CANCELLED, /* the resolver was freed while the query was pending */
    STS_DNS_ERROR,     /* anything else: malformed answer, bad name, connection refused... */
} sts_dns_status;

/* "OK", "NXDOMAIN", "NODATA", "SERVFAIL", "TIMEOUT", "REFUSED", "CANCELLED", "ERROR". */
const char *sts_dns_status_name(sts_dns_status st);
/* 1 for outcomes that may change on retry (SERVFAIL, TIMEOUT, REFUSED, CANCELLED,
 * ERROR): RFC 8461 5.1 / RFC 5321 5.1 treat them as temporary failures, whereas OK,
 * NXDOMAIN and NODATA are authoritative answers. */
int sts_dns_status_is_temporary(sts_dns_status st);

/* One sentence for a lookup that gave nothing usable, in the same words whichever
 * lookup it was: "NAME TYPE: WHAT (STATUS)", WHAT being the result's detail when it
 * has one, else the status in words. type: "TXT", "MX", "A/AAAA". E.g.
 *     "example.test MX: malformed answer: Misformatted domain name (ERROR)"
 *     "mail.example.test A/AAAA: CNAME loop: mail.example.test -> loop.example.test ->
 *      mail.example.test (ERROR)"
 *     "_mta-sts.example.test TXT: no TXT record (NODATA)"
 * Returns buf. */
const char *sts_dns_failure_text(const char *name, const char *type, sts_dns_status st,
                                 const char *detail, char *buf, size_t len);

/* servers: "HOST[:PORT][,...]" with IPv4 "1.2.3.4:53" or IPv6 "[::1]:53" (a bare IPv6
 * address without port is allowed too), or NULL for /etc/resolv.conf.
 * timeout_s: per-query bound (<= 0: 10 s). log may be NULL.
 * Returns 0 and *out, or STS_EINVAL (bad servers string; err says why) or STS_EDNS
 * (c-ares could not be initialised; err says why). */
int sts_resolver_new(uv_loop_t *loop, const char *servers, double timeout_s, sts_log *log,
                     sts_resolver **out, char *err, size_t errlen);

/* Free the resolver. Safe while queries are pending: their callbacks run, inside this
 * call, with status STS_DNS_CANCELLED (so a callback must not free the resolver
 * again, and a query it starts is refused with STS_ESTATE). The uv handles then close
 * asynchronously and the memory is released in the last close callback: run the loop
 * (uv_run) once more before uv_loop_close(). */
void sts_resolver_free(sts_resolver *r);

#define STS_RESOLVER_MAX_IN_FLIGHT 64

/* The DNS questions now outstanding (at most STS_RESOLVER_MAX_IN_FLIGHT) and waiting
 * for their turn. */
void sts_resolver_load(const sts_resolver *r, size_t *in_flight, size_t *waiting);

/* ---- TXT ---- */

typedef struct sts_dns_txt {
    const char *data; /* the record's character-strings joined without separator
                       * (RFC 8461 3.1, RFC 7208 3.3); NUL-terminated for convenience,
                       * but may contain NUL bytes: use len */
    size_t len;
} sts_dns_txt;

typedef struct sts_dns_txt_result {
    sts_dns_status status;
    const char *name;           /* the name asked */
    const char *canonical;      /* the name the records were found at (after CNAMEs) */
    size_t n;                   /* records (0 unless status is OK) */
    const sts_dns_txt *records; /* in answer order */
    const char *detail;         /* human explanation, e.g. c-ares' message */
} sts_dns_txt_result;

typedef void (*sts_dns_txt_cb)(const sts_dns_txt_result *res, void *arg);

/* TXT records of name, following CNAMEs (up to 8, also when the server returns only the
 * CNAME). 0, STS_EINVAL (empty name), STS_ESTATE (the resolver is being freed)
 * or STS_ENOMEM. */
int sts_resolver_query_txt(sts_resolver *r, const char *name, sts_dns_txt_cb cb, void *arg);

/* ---- MX ---- */

typedef struct sts_dns_mx {
    const char *host; /* lower case, no trailing dot */
    unsigned preference;
} sts_dns_mx;

typedef struct sts_dns_mx_result {
    sts_dns_status status;
    const char *name;
    size_t n;
    const sts_dns_mx *mx; /* sorted by preference, ties in random order (RFC 5321 5.1) */
    int null_mx;          /* RFC 7505: the only MX is "." with preference 0: the domain
                           * accepts no mail (then n is 0 and status OK) */
    const char *detail;
} sts_dns_mx_result;

typedef void (*sts_dns_mx_cb)(const sts_dns_mx_result *res, void *arg);

/* MX records of domain. 0, STS_EINVAL, STS_ESTATE or STS_ENOMEM. */
int sts_resolver_query_mx(sts_resolver *r, const char *domain, sts_dns_mx_cb cb, void *arg);

/* ---- A / AAAA ---- */

typedef struct sts_dns_addr {
    int family;                  /* AF_INET or AF_INET6 */
    char text[INET6_ADDRSTRLEN]; /* "192.0.2.1" / "2001:db8::1" */
    struct sockaddr_storage sa;  /* port 0 */
} sts_dns_addr;

typedef struct sts_dns_addr_result {
    sts_dns_status status;      /* OK when either query found an address; otherwise
                                 * the A query's status unless AAAA's says more
                                 * (a temporary failure wins over NODATA/NXDOMAIN) */
    sts_dns_status status_a;    /* of the A query */
    sts_dns_status status_aaaa; /* of the AAAA query */
    const char *name;
    size_t n;
    const sts_dns_addr *addrs; /* A addresses first, then AAAA, in answer order */
    const char *detail;
} sts_dns_addr_result;

typedef void (*sts_dns_addr_cb)(const sts_dns_addr_result *res, void *arg);

/* A and AAAA records of host, asked in parallel; one callback when both are done.
 * 0, STS_EINVAL, STS_ESTATE or STS_ENOMEM. */
int sts_resolver_query_addr(sts_resolver *r, const char *host, sts_dns_addr_cb cb, void *arg);

/* Addresses no sender may connect to, whatever DNS says (RFC 6890, RFC 5771, RFC 4291):
 * 0.0.0.0/8 and :: (Linux routes both to the local host), 255.255.255.255 and the
 * rest of 240.0.0.0/4, multicast 224.0.0.0/4 and ff00::/8, and the IPv4-mapped forms
 * (::ffff:a.b.c.d) of the IPv4 ones. Loopback stays usable: test worlds live there.
 * Returns the range and why, e.g. "0.0.0.0/8: 'this network', RFC 6890", or NULL for
 * a usable address. Pure. */
const char *sts_dns_addr_unusable(const struct sockaddr *sa);

/* 1 and buf = "address 0.0.0.0 is not a usable destination (0.0.0.0/8: 'this
 * network', RFC 6890)" when a is unusable; 0 when it is usable. */
int sts_dns_addr_check(const sts_dns_addr *a, char *buf, size_t len);

#endif
