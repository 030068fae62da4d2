/*
 * rptdeliver.c - TLS report delivery: the `_smtp._tls` lookup, HTTPS POST with
 * libcurl, SMTP with sender/smtpc.c (rptdeliver.h). Each call runs the private loop
 * until its own answer is in. Returns 0 or a negative code from common/err.h with the
 * reason in `why`, as rptdeliver.h documents.
 */
#include "sender/rptdeliver.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/err.h"
#include "common/tls.h"
#include "sender/diag.h"
#include "sender/resolver.h"
#include "sender/smtpc.h"

#define MAX_ADDRS 16
#define MAX_MX 10

struct sts_rptdeliver {
    sts_rptdeliver_opts o;
    uv_loop_t loop;
    sts_resolver *res;
    SSL_CTX *smtp_ctx;
};

/* ---- waiting for one answer --------------------------------------------------------- */

static void run_until(sts_rptdeliver *d, const int *done)
{
    /* The resolver and smtpc call back exactly once while a handle of theirs is
     * active: a loop with nothing left to run and no answer is a bug, never a wait. */
    while (!*done)
        if (!uv_run(&d->loop, UV_RUN_ONCE) && !*done) {
            sts_error(d->o.log, "BUG: the delivery loop ran dry before its answer");
            abort();
        }
}

typedef struct txt_wait {
    int done;
    sts_dns_status st;
    char detail[256];
    size_t n;
    char **recs;
    size_t *lens;
} txt_wait;

static void txt_cb(const sts_dns_txt_result *res, void *arg)
{
    txt_wait *w = arg;
    w->st = res->status;
    snprintf(w->detail, sizeof(w->detail), "%s", res->detail ? res->detail : "");
    if (res->status == STS_DNS_OK && res->n) {
        w->recs = calloc(res->n, sizeof(*w->recs));
        w->lens = calloc(res->n, sizeof(*w->lens));
        for (size_t i = 0; w->recs && w->lens && i < res->n; i++) {
            w->recs[i] = malloc(res->records[i].len + 1);
            if (!w->recs[i])
                break;
            memcpy(w->recs[i], res->records[i].data, res->records[i].len);
            w->recs[i][res->records[i].len] = '\0';
            w->lens[i] = res->records[i].len;
            w->n = i + 1;
        }
    }
    w->done = 1;
}

typedef struct mx_wait {
    int done;
    sts_dns_status st;
    char detail[256];
    int null_mx;
    size_t n;
    char hosts[MAX_MX][256];
} mx_wait;

static void mx_cb(const sts_dns_mx_result *res, void *arg)
{
    mx_wait *w = arg;
    w->st = res->status;
    w->null_mx = res->null_mx;
    snprintf(w->detail, sizeof(w->detail), "%s", res->detail ? res->detail : "");
    for (size_t i = 0; res->status == STS_DNS_OK && i < res->n && i < MAX_MX; i++)
        snprintf(w->hosts[w->n++], sizeof(w->hosts[0]), "%s", res->mx[i].host);
    w->done = 1;
}

typedef struct addr_wait {
    int done;
    sts_dns_status st;
    char detail[256];
    size_t n;
    sts_dns_addr addrs[MAX_ADDRS];
} addr_wait;

static void addr_cb(const sts_dns_addr_result *res, void *arg)
{
    addr_wait *w = arg;
    w->st = res->status;
    snprintf(w->detail, sizeof(w->detail), "%s", res->detail ? res->detail : "");
    for (size_t i = 0; res->status == STS_DNS_OK && i < res->n && w->n < MAX_ADDRS; i++)
        if (!sts_dns_addr_unusable((const struct sockaddr *)&res->addrs[i].sa))
            w->addrs[w->n++] = res->addrs[i];
    w->done = 1;
}

/* The usable addresses of host: 0, or STS_EDNS with why. */
static int lookup_addr(sts_rptdeliver *d, const char *host, addr_wait *w, char *why, size_t whylen)
{
    memset(w, 0, sizeof(*w));
    int rc = sts_resolver_query_addr(d->res, host, addr_cb, w);
    if (rc) {
        snprintf(why, whylen, "%s A/AAAA: cannot ask (%s)", host, sts_strerror(rc));
        return STS_EDNS;
    }
    run_until(d, &w->done);
    if (w->st == STS_DNS_OK && !w->n) {
        snprintf(why, whylen,
                 "%s A/AAAA: no usable address (only addresses no sender may "
                 "connect to)",
                 host);
        return STS_EDNS;
    }
    if (w->st != STS_DNS_OK) {
        sts_dns_failure_text(host, "A/AAAA", w->st, w->detail[0] ? w->detail : NULL, why, whylen);
        return STS_EDNS;
    }
    return 0;
}

/* ---- life cycle --------------------------------------------------------------------- */

int sts_rptdeliver_new(const sts_rptdeliver_opts *o, sts_rptdeliver **out, char *err, size_t errlen)
{
    *out = NULL;
    sts_rptdeliver *d = calloc(1, sizeof(*d));
    if (!d)
        return STS_ENOMEM;
    d->o = *o;
    if (d->o.timeout_s <= 0)
        d->o.timeout_s = 60;
    if (!d->o.smtp_port)
        d->o.smtp_port = 25;
    CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "curl_global_init: %s", curl_easy_strerror(cc));
        free(d);
        return STS_EIO;
    }
    if (uv_loop_init(&d->loop)) {
        snprintf(err, errlen, "uv_loop_init failed");
        free(d);
        return STS_EIO;
    }
    int rc = sts_resolver_new(&d->loop, d->o.dns, d->o.timeout_s, d->o.log, &d->res, err, errlen);
    if (rc) {
        uv_loop_close(&d->loop);
        free(d);
        return rc;
    }
    /* Opportunistic TLS for the report MX: the trust anchors only say in the log
     * whether its certificate verified; delivery goes on either way (RFC 8460 5.3). */
    char why[512] = "";
    d->smtp_ctx = sts_tls_client_ctx(d->o.ca_file, 0, why, sizeof(why));
    if (!d->smtp_ctx) {
        snprintf(err, errlen, "--ca-file: %s", why);
        sts_rptdeliver_free(d);
        return STS_ETLS;
    }
    if (d->o.now)
        sts_tls_ctx_set_time(d->smtp_ctx, d->o.now);
    *out = d;
    return 0;
}

void sts_rptdeliver_free(sts_rptdeliver *d)
{
    if (!d)
        return;
    if (d->res)
        sts_resolver_free(d->res);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    uv_loop_close(&d->loop);
    SSL_CTX_free(d->smtp_ctx);
    free(d);
}

/* ---- the record ----------------------------------------------------------------------- */

int sts_rptdeliver_record(sts_rptdeliver *d, const char *domain, sts_tlsrpt *out, char *why,
                          size_t whylen)
{
    memset(out, 0, sizeof(*out));
    char name[300];
    if (sts_tlsrpt_record_name(domain, name, sizeof(name))) {
        snprintf(why, whylen, "'%s' gives no _smtp._tls name", domain);
        return STS_ESYNTAX;
    }
    txt_wait w;
    memset(&w, 0, sizeof(w));
    int rc = sts_resolver_query_txt(d->res, name, txt_cb, &w);
    if (rc) {
        snprintf(why, whylen, "%s TXT: cannot ask (%s)", name, sts_strerror(rc));
        return STS_EDNS;
    }
    run_until(d, &w.done);
    if (w.st == STS_DNS_NXDOMAIN || w.st == STS_DNS_NODATA) {
        sts_dns_failure_text(name, "TXT", w.st, NULL, why, whylen);
        rc = STS_ENOTFOUND;
    } else if (w.st != STS_DNS_OK) {
        sts_dns_failure_text(name, "TXT", w.st, w.detail[0] ? w.detail : NULL, why, whylen);
        rc = STS_EDNS;
    } else if (!w.recs || !w.lens || !w.n) {
        rc = STS_ENOMEM;
    } else {
        sts_diags diags;
        sts_diags_init(&diags);
        char sel[300] = "";
        rc = sts_tlsrpt_select((const char *const *)w.recs, w.lens, w.n, out, &diags, sel,
                               sizeof(sel));
        const sts_diag *first = sts_diags_first_error(&diags);
        if (rc == STS_ESYNTAX && first)
            snprintf(why, whylen, "%s TXT: %s: column %d: %s", name, sel[0] ? sel : "invalid",
                     first->column, first->message);
        else if (rc)
            snprintf(why, whylen, "%s TXT: %s", name, sel[0] ? sel : sts_strerror(rc));
        sts_diags_free(&diags);
    }
    for (size_t i = 0; i < w.n; i++)
        free(w.recs[i]);
    free(w.recs);
    free(w.lens);
    return rc;
}

/* ---- https ---------------------------------------------------------------------------- */

static size_t discard_cb(char *p, size_t size, size_t n, void *arg)
{
    size_t *total = arg;
    *total += size * n;
    return *total > 65536 ? 0 : size * n; /* an answer is a status; its body is capped */
}

static CURLcode https_ctx_cb(CURL *curl, void *sslctx, void *arg)
{
    (void)curl;
    const time_t *now = arg;
    if (*now)
        X509_VERIFY_PARAM_set_time(SSL_CTX_get0_param((SSL_CTX *)sslctx), *now);
    return CURLE_OK;
}

int sts_rptdeliver_https(sts_rptdeliver *d, const sts_rua *r, const void *gz, size_t len, char *why,
                         size_t whylen)
{
    char resolve[MAX_ADDRS * (INET6_ADDRSTRLEN + 3) + 300], url[2600];
    int v6lit = strchr(r->host, ':') != NULL;
    snprintf(url, sizeof(url), "https://%s%s%s:%d%s", v6lit ? "[" : "", r->host, v6lit ? "]" : "",
             r->port, r->path);
    struct curl_slist *rl = NULL, *hdrs = NULL;
    if (!r->host_literal) {
        addr_wait w;
        if (lookup_addr(d, r->host, &w, why, whylen))
            return STS_EDNS;
        int n = snprintf(resolve, sizeof(resolve), "%s:%d:", r->host, r->port);
        for (size_t i = 0; i < w.n && n > 0 && (size_t)n < sizeof(resolve); i++)
            n += snprintf(resolve + n, sizeof(resolve) - (size_t)n, "%s%s%s%s", i ? "," : "",
                          w.addrs[i].family == AF_INET6 ? "[" : "", w.addrs[i].text,
                          w.addrs[i].family == AF_INET6 ? "]" : "");
        rl = curl_slist_append(NULL, resolve);
        if (!rl)
            return STS_ENOMEM;
    }
    hdrs = curl_slist_append(NULL, "Content-Type: application/tlsrpt+gzip");
    struct curl_slist *h2 = hdrs ? curl_slist_append(hdrs, "Expect:") : NULL;
    CURL *c = h2 ? curl_easy_init() : NULL;
    if (!c) {
        curl_slist_free_all(rl);
        curl_slist_free_all(hdrs);
        return STS_ENOMEM;
    }
    hdrs = h2;
    char errbuf[CURL_ERROR_SIZE] = "";
    size_t got = 0;
    time_t now = d->o.now;
    char ua[64];
    snprintf(ua, sizeof(ua), "ststest/%s", STSTEST_VERSION);
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (rl)
        curl_easy_setopt(c, CURLOPT_RESOLVE, rl);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, gz);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(d->o.timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, d->o.insecure ? 0L : 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, d->o.insecure ? 0L : 2L);
    if (d->o.ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, d->o.ca_file);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, https_ctx_cb);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, &now);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    sts_info(d->o.log, "POST %s (%zu bytes, application/tlsrpt+gzip)%s%s", url, len,
             rl ? " at " : "", rl ? strrchr(resolve, ':') + 1 : "");
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    char *ip = NULL;
    curl_easy_getinfo(c, CURLINFO_PRIMARY_IP, &ip);
    char where[300];
    snprintf(where, sizeof(where), "%s%s%s", url, ip && *ip ? " at " : "", ip && *ip ? ip : "");
    int rc = 0;
    if (cc == CURLE_WRITE_ERROR && status / 100 == 2) {
        cc = CURLE_OK; /* a long body after a 2xx: the report was taken */
    }
    if (cc != CURLE_OK) {
        const char *e = errbuf[0] ? errbuf : curl_easy_strerror(cc);
        switch (cc) {
        case CURLE_COULDNT_CONNECT:
            rc = STS_ECONNECT;
            break;
        case CURLE_OPERATION_TIMEDOUT:
            rc = STS_ETIMEDOUT;
            break;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
            rc = STS_ETLS;
            break;
        default:
            rc = STS_EIO;
        }
        snprintf(why, whylen, "%s: %s%s", where, e,
                 rc == STS_ETLS && !d->o.insecure ? " (--rua-insecure accepts any certificate)"
                                                  : "");
    } else if (status / 100 != 2) {
        rc = STS_EPROTO;
        snprintf(why, whylen, "%s: HTTP status %ld%s", where, status,
                 status / 100 == 3 ? " (redirects are not followed)" : " (not 2xx)");
    } else {
        sts_info(d->o.log, "POST %s: HTTP status %ld", where, status);
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(rl);
    curl_slist_free_all(hdrs);
    return rc;
}

/* ---- mailto ----------------------------------------------------------------------------- */

typedef struct smtp_wait {
    int done;
} smtp_wait;

static void smtp_done_cb(sts_smtpc *s, void *arg)
{
    (void)s;
    ((smtp_wait *)arg)->done = 1;
}

/* One session to addr (port set); *res copied out. 0 or STS_ENOMEM/STS_EINVAL. */
static int smtp_session(sts_rptdeliver *d, const char *host, const sts_dns_addr *a,
                        const char *rcpt, const char *msg, size_t len, int plain,
                        sts_smtpc_result *res)
{
    struct sockaddr_storage sa = a->sa;
    if (sa.ss_family == AF_INET)
        ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)d->o.smtp_port);
    else
        ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)d->o.smtp_port);
    const char *rcpts[1] = {rcpt};
    sts_smtpc_params p = {
        .addr = (const struct sockaddr *)&sa,
        .host = host,
        .helo = d->o.helo,
        .from = d->o.from,
        .rcpts = rcpts,
        .nrcpts = 1,
        .msg = msg,
        .msglen = len,
        .ssl_ctx = d->smtp_ctx,
        .tls_required = 0, /* RFC 8460 5.3: deliver despite any TLS-related failure */
        .no_starttls = plain,
        .log = d->o.log,
    };
    sts_smtpc_timeouts_init(&p.timeouts, d->o.timeout_s);
    smtp_wait w = {0};
    sts_smtpc *s = NULL;
    int rc = sts_smtpc_start(&d->loop, &p, smtp_done_cb, &w, &s);
    if (rc)
        return rc;
    run_until(d, &w.done);
    *res = *sts_smtpc_get_result(s);
    sts_smtpc_free(s);
    return 0;
}

int sts_rptdeliver_mail(sts_rptdeliver *d, const sts_rua *r, const char *msg, size_t len, char *how,
                        size_t howlen, char *why, size_t whylen)
{
    if (r->limit && sts_smtpc_message_size(msg, len) > r->limit) {
        snprintf(why, whylen,
                 "mailto:%s: the message (%zu bytes) is over the rua's size limit "
                 "(%llu bytes)",
                 r->address, sts_smtpc_message_size(msg, len), r->limit);
        return STS_ETOOBIG;
    }
    /* RFC 5321 5.1: the MX records, else the domain itself as the implicit MX. */
    char hosts[MAX_MX][256];
    size_t nhosts = 0;
    if (r->domain_literal) {
        snprintf(hosts[nhosts++], sizeof(hosts[0]), "%s", r->domain);
    } else {
        mx_wait w;
        memset(&w, 0, sizeof(w));
        int rc = sts_resolver_query_mx(d->res, r->domain, mx_cb, &w);
        if (rc) {
            snprintf(why, whylen, "%s MX: cannot ask (%s)", r->domain, sts_strerror(rc));
            return STS_EDNS;
        }
        run_until(d, &w.done);
        if (w.st == STS_DNS_OK && w.null_mx) {
            snprintf(why, whylen, "%s MX: a null MX (RFC 7505): the domain accepts no mail",
                     r->domain);
            return STS_EPROTO;
        }
        if (w.st == STS_DNS_OK) {
            for (size_t i = 0; i < w.n; i++)
                snprintf(hosts[nhosts++], sizeof(hosts[0]), "%s", w.hosts[i]);
        } else if (w.st == STS_DNS_NODATA) {
            snprintf(hosts[nhosts++], sizeof(hosts[0]), "%s", r->domain);
        } else {
            sts_dns_failure_text(r->domain, "MX", w.st, w.detail[0] ? w.detail : NULL, why, whylen);
            return STS_EDNS;
        }
    }
    char last[1024] = "";
    int last_rc = STS_EDNS;
    for (size_t h = 0; h < nhosts; h++) {
        addr_wait aw;
        memset(&aw, 0, sizeof(aw));
        if (r->domain_literal) {
            sts_dns_addr *a = &aw.addrs[0];
            memset(a, 0, sizeof(*a));
            snprintf(a->text, sizeof(a->text), "%s", r->domain);
            struct sockaddr_in *s4 = (struct sockaddr_in *)&a->sa;
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->sa;
            if (inet_pton(AF_INET, r->domain, &s4->sin_addr) == 1)
                a->family = s4->sin_family = AF_INET;
            else if (inet_pton(AF_INET6, r->domain, &s6->sin6_addr) == 1)
                a->family = s6->sin6_family = AF_INET6;
            aw.n = 1;
        } else if (lookup_addr(d, hosts[h], &aw, last, sizeof(last))) {
            last_rc = STS_EDNS;
            continue;
        }
        for (size_t i = 0; i < aw.n; i++) {
            sts_smtpc_result res;
            int plain = 0, rc;
            for (;;) {
                rc = smtp_session(d, hosts[h], &aw.addrs[i], r->address, msg, len, plain, &res);
                if (rc || !res.retry_plain || plain)
                    break;
                /* RFC 8460 5.3: a failed handshake does not stop a report. */
                sts_info(d->o.log, "%s[%s]: TLS handshake failed (%s): again without STARTTLS",
                         hosts[h], aw.addrs[i].text, res.tls.error[0] ? res.tls.error : "?");
                plain = 1;
            }
            if (rc) {
                snprintf(why, whylen, "%s[%s]: cannot start a session (%s)", hosts[h],
                         aw.addrs[i].text, sts_strerror(rc));
                return rc;
            }
            const char *tls = res.tls_up
                                  ? (res.tls.verified ? "TLS verified" : "TLS unverified, accepted")
                              : plain ? "plaintext after a failed TLS handshake"
                                      : "plaintext (no STARTTLS)";
            if (res.action == STS_ACTION_DELIVERED) {
                snprintf(how, howlen, "%s[%s]:%d %d %s%s%s, %s", hosts[h], aw.addrs[i].text,
                         d->o.smtp_port, res.code, res.enhanced, res.enhanced[0] ? " " : "",
                         res.text, tls);
                return 0;
            }
            snprintf(last, sizeof(last), "%s[%s]:%d: %s (%s, %s)", hosts[h], aw.addrs[i].text,
                     d->o.smtp_port, res.detail, sts_smtpc_state_name(res.stage), tls);
            if (res.action == STS_ACTION_PERMFAIL) {
                snprintf(why, whylen, "%s", last);
                return STS_EPROTO;
            }
            last_rc = res.error == STS_ETIMEDOUT ? STS_ETIMEDOUT : STS_ECONNECT;
        }
    }
    snprintf(why, whylen, "%s", last[0] ? last : "no MX to try");
    return last_rc;
}
