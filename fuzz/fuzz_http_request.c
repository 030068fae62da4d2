/*
 * fuzz_http_request.c - fuzz target for the policy server's request-head parser
 * (fakedns/httpsrv.h: sts_http_parse_request; RFC 9112). The input is what a client
 * sent on a connection so far.
 *
 * Properties checked (abort on violation):
 *  - The result is 0 (need more), 200, 400, 414, 431 or 505.
 *  - 200: the method is 1-15 tchars, the target starts with '/' and holds only
 *    visible ASCII, minor is 0-9, an HTTP/1.1+ request has a Host, the Host value
 *    has no control character other than TAB and no surrounding whitespace.
 *  - Round trip: a 200 request written back canonically ("M T HTTP/1.m", Host) parses
 *    to the same fields.
 *  - Line endings: when the input has no CR, the same input with every LF turned into
 *    CRLF gives the same result and the same fields (RFC 9112 2.2 accepts both).
 *  - More bytes never change a decision: when the first half of the input already
 *    gives a status, the whole input gives the same one; when the whole input needs
 *    more, so does its first half.
 * The function returns 0 (libFuzzer's convention).
 */
#include <string.h>

#include "fakedns/httpsrv.h"
#include "fuzz/fuzz.h"

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void check_same(const sts_http_request *a, const sts_http_request *b, const char *what)
{
    FUZZ_CHECK(!strcmp(a->method, b->method), "%s: method '%s' vs '%s'", what, a->method,
               b->method);
    FUZZ_CHECK(!strcmp(a->path, b->path), "%s: path '%s' vs '%s'", what, a->path, b->path);
    FUZZ_CHECK(a->have_host == b->have_host && !strcmp(a->host, b->host), "%s: host '%s' vs '%s'",
               what, a->host, b->host);
    FUZZ_CHECK(a->minor == b->minor, "%s: minor %d vs %d", what, a->minor, b->minor);
}

static void check_ok(const sts_http_request *q)
{
    size_t ml = strnlen(q->method, sizeof(q->method));
    FUZZ_CHECK(ml >= 1 && ml < sizeof(q->method), "method of %zu bytes", ml);
    for (size_t i = 0; i < ml; i++)
        FUZZ_CHECK(is_tchar((unsigned char)q->method[i]), "method byte 0x%02x",
                   (unsigned char)q->method[i]);
    size_t pl = strnlen(q->path, sizeof(q->path));
    FUZZ_CHECK(pl >= 1 && pl < sizeof(q->path) && q->path[0] == '/', "path '%.40s'", q->path);
    for (size_t i = 0; i < pl; i++)
        FUZZ_CHECK((unsigned char)q->path[i] > ' ' && (unsigned char)q->path[i] < 0x7f,
                   "path byte 0x%02x", (unsigned char)q->path[i]);
    FUZZ_CHECK(q->minor >= 0 && q->minor <= 9, "minor %d", q->minor);
    FUZZ_CHECK(q->minor == 0 || q->have_host, "HTTP/1.%d without Host", q->minor);
    size_t hl = strnlen(q->host, sizeof(q->host));
    FUZZ_CHECK(hl < sizeof(q->host), "host not terminated");
    FUZZ_CHECK(q->have_host || hl == 0, "host '%s' without a Host field", q->host);
    for (size_t i = 0; i < hl; i++)
        FUZZ_CHECK((unsigned char)q->host[i] >= ' ' || q->host[i] == '\t', "host byte 0x%02x",
                   (unsigned char)q->host[i]);
    if (hl)
        FUZZ_CHECK(q->host[0] != ' ' && q->host[0] != '\t' && q->host[hl - 1] != ' ' &&
                       q->host[hl - 1] != '\t',
                   "host '%s' not trimmed", q->host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    sts_http_request q;
    int st = sts_http_parse_request(in, size, &q);
    FUZZ_CHECK(st == 0 || st == 200 || st == 400 || st == 414 || st == 431 || st == 505,
               "status %d", st);
    if (st == 0)
        FUZZ_CHECK(size < STS_HTTP_MAX_HEAD, "still waiting after %zu bytes", size);
    if (st == 200) {
        check_ok(&q);
        char buf[2048];
        int n = q.have_host ? snprintf(buf, sizeof(buf), "%s %s HTTP/1.%d\r\nHost: %s\r\n\r\n",
                                       q.method, q.path, q.minor, q.host)
                            : snprintf(buf, sizeof(buf), "%s %s HTTP/1.%d\r\n\r\n", q.method,
                                       q.path, q.minor);
        FUZZ_CHECK(n > 0 && (size_t)n < sizeof(buf), "canonical form too long");
        sts_http_request r;
        FUZZ_CHECK(sts_http_parse_request(buf, (size_t)n, &r) == 200, "canonical form: %s", buf);
        check_same(&q, &r, "round trip");
    }

    /* LF vs CRLF */
    if (size < STS_HTTP_MAX_HEAD / 2 && !memchr(in, '\r', size)) {
        char *crlf = malloc(2 * size + 1);
        if (crlf) {
            size_t k = 0;
            for (size_t i = 0; i < size; i++) {
                if (in[i] == '\n')
                    crlf[k++] = '\r';
                crlf[k++] = in[i];
            }
            sts_http_request r;
            int st2 = sts_http_parse_request(crlf, k, &r);
            FUZZ_CHECK(st2 == st, "LF gives %d, CRLF gives %d", st, st2);
            if (st == 200)
                check_same(&q, &r, "CRLF");
            free(crlf);
        }
    }

    /* A decision taken on a prefix stands. (At STS_HTTP_MAX_HEAD the "too big"
     * decision may come before the end of a head that ends just there: stay below.) */
    if (size < STS_HTTP_MAX_HEAD) {
        size_t half = size / 2;
        char *pre = malloc(half ? half : 1); /* exact size: ASan sees reads past it */
        if (pre) {
            memcpy(pre, in, half);
            sts_http_request r;
            int sp = sts_http_parse_request(pre, half, &r);
            if (sp != 0)
                FUZZ_CHECK(sp == st, "the first %zu bytes give %d, all %zu give %d", half, sp, size,
                           st);
            if (st == 0)
                FUZZ_CHECK(sp == 0, "the first %zu bytes give %d, all %zu need more", half, sp,
                           size);
            if (sp == 200)
                check_same(&q, &r, "prefix");
            free(pre);
        }
    }
    return 0;
}
