/*
 * fuzz_smtpreply.c - fuzz target for the SMTP reply parser and the EHLO keyword
 * lookups (sender/smtpreply.h; RFC 5321 4.2, RFC 2034, RFC 3463, RFC 1870). The
 * input is what a server sent: any number of replies, possibly cut short.
 *
 * Properties checked (abort on violation):
 *  - sts_smtp_reply_parse returns 0, STS_EPROTO (with a reason), STS_ETOOBIG or
 *    STS_ENOMEM; consumed <= the bytes given, and a complete reply ends at a LF.
 *  - A complete reply: code 200-559 with a second digit 0-5; nlines >= 1 and the text
 *    has exactly nlines - 1 LFs; text no longer than the reply; an enhanced code, when
 *    found, is class.subject.detail with the class of the reply code.
 *  - sts_smtp_reply_line finds lines 0..nlines-1 and no more; has_ext, ext_param and
 *    size_limit agree with each other and with the lines (the first word of every
 *    line after the first is an advertised keyword, in any case).
 *  - Streaming: the input parsed reply after reply in one go, and fed to the parser in
 *    small pieces as a client reading a socket would, gives the same replies (code,
 *    text, length) and ends the same way (error code, or incomplete).
 * The function returns 0 (libFuzzer's convention).
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "fuzz/fuzz.h"
#include "sender/smtpreply.h"

#define MAX_REPLIES 64

typedef struct seen_reply {
    int code;
    size_t consumed, textlen, nlines;
    unsigned long texthash;
} seen_reply;

typedef struct run {
    seen_reply r[MAX_REPLIES];
    size_t n;
    int end_rc; /* the last return: 0 (incomplete or all consumed) or an error */
} run;

static unsigned long hash(const char *p, size_t n)
{
    unsigned long h = 5381;
    for (size_t i = 0; i < n; i++)
        h = h * 33 + (unsigned char)p[i];
    return h;
}

static int enhanced_ok(const char *e, int cls)
{
    /* class "." 1*3digit "." 1*3digit */
    if (e[0] - '0' != cls || e[1] != '.')
        return 0;
    const char *p = e + 2;
    for (int part = 0; part < 2; part++) {
        size_t d = 0;
        while (isdigit((unsigned char)p[d]))
            d++;
        if (d < 1 || d > 3)
            return 0;
        p += d;
        if (part == 0) {
            if (*p != '.')
                return 0;
            p++;
        }
    }
    return *p == '\0';
}

/* The first word of line (up to SP or the end), upper-cased into out; "" when it
 * does not fit. */
static void first_word(const char *line, char *out, size_t outlen)
{
    size_t i = 0;
    while (line[i] && line[i] != ' ' && i + 1 < outlen) {
        out[i] = (char)toupper((unsigned char)line[i]);
        i++;
    }
    out[line[i] && line[i] != ' ' ? 0 : i] = '\0';
}

static void check_reply(const char *data, size_t consumed, const sts_smtp_reply *r)
{
    FUZZ_CHECK(consumed >= 4 && data[consumed - 1] == '\n', "reply of %zu bytes ends in 0x%02x",
               consumed, consumed ? (unsigned char)data[consumed - 1] : 0);
    FUZZ_CHECK(r->code >= 200 && r->code <= 559 && (r->code / 10) % 10 <= 5, "code %d", r->code);
    FUZZ_CHECK(r->nlines >= 1, "no lines");
    FUZZ_CHECK(r->text.data != NULL, "no text buffer");
    FUZZ_CHECK(r->text.len <= consumed, "text %zu bytes from %zu", r->text.len, consumed);
    size_t lfs = 0;
    for (size_t i = 0; i < r->text.len; i++)
        lfs += r->text.data[i] == '\n';
    FUZZ_CHECK(lfs + 1 == r->nlines, "%zu lines but %zu LFs in the text", r->nlines, lfs);
    if (r->enhanced[0])
        FUZZ_CHECK(enhanced_ok(r->enhanced, r->code / 100), "enhanced code '%s' for %d",
                   r->enhanced, r->code);

    char line[512], kw[64], param[256];
    for (size_t i = 0; i < r->nlines; i++)
        FUZZ_CHECK(sts_smtp_reply_line(r, i, line, sizeof(line)) == 0, "line %zu of %zu", i,
                   r->nlines);
    FUZZ_CHECK(sts_smtp_reply_line(r, r->nlines, line, sizeof(line)) == STS_ENOTFOUND,
               "line past the end");
    for (size_t i = 1; i < r->nlines && i < 16; i++) {
        sts_smtp_reply_line(r, i, line, sizeof(line));
        first_word(line, kw, sizeof(kw));
        /* has_ext reads lines into 256 bytes: stay well inside it */
        if (!kw[0] || strlen(line) > 200)
            continue;
        FUZZ_CHECK(sts_smtp_reply_has_ext(r, kw), "keyword '%s' of line %zu not found", kw, i);
        FUZZ_CHECK(sts_smtp_reply_ext_param(r, kw, param, sizeof(param)) == 1,
                   "ext_param misses '%s'", kw);
    }
    static const char *const kws[] = {"STARTTLS", "SIZE", "PIPELINING", "8BITMIME", "starttls"};
    for (size_t k = 0; k < sizeof(kws) / sizeof(kws[0]); k++) {
        int h = sts_smtp_reply_has_ext(r, kws[k]);
        int e = sts_smtp_reply_ext_param(r, kws[k], param, sizeof(param));
        FUZZ_CHECK(h == e, "has_ext(%s) = %d, ext_param = %d", kws[k], h, e);
        if (!e)
            FUZZ_CHECK(param[0] == '\0', "ext_param left '%s'", param);
    }
    unsigned long long limit = 123;
    int s = sts_smtp_reply_size_limit(r, &limit);
    FUZZ_CHECK(s == sts_smtp_reply_has_ext(r, "SIZE"), "size_limit %d vs has_ext", s);
    if (!s)
        FUZZ_CHECK(limit == 0, "limit %llu without SIZE", limit);
}

static void record(run *rn, const sts_smtp_reply *r, size_t consumed)
{
    if (rn->n < MAX_REPLIES) {
        seen_reply *s = &rn->r[rn->n];
        s->code = r->code;
        s->consumed = consumed;
        s->textlen = r->text.len;
        s->nlines = r->nlines;
        s->texthash = hash(r->text.data, r->text.len);
    }
    rn->n++;
}

/* Parse everything in one go, reply after reply. */
static void parse_all(const char *data, size_t size, run *rn, int check)
{
    sts_smtp_reply r;
    sts_smtp_reply_init(&r);
    size_t off = 0;
    rn->n = 0;
    rn->end_rc = 0;
    while (off < size) {
        size_t used = 7777;
        char why[256] = "";
        int rc = sts_smtp_reply_parse(data + off, size - off, &r, &used, why, sizeof(why));
        FUZZ_CHECK(rc == 0 || rc == STS_EPROTO || rc == STS_ETOOBIG || rc == STS_ENOMEM, "rc %d",
                   rc);
        if (rc) {
            FUZZ_CHECK(rc == STS_ENOMEM || why[0], "error %d without a reason", rc);
            rn->end_rc = rc;
            break;
        }
        FUZZ_CHECK(used <= size - off, "consumed %zu of %zu", used, size - off);
        if (used == 0)
            break; /* incomplete */
        if (check)
            check_reply(data + off, used, &r);
        record(rn, &r, used);
        off += used;
    }
    sts_smtp_reply_free(&r);
}

/* Feed the bytes in pieces of `step` octets into a growing buffer, parsing after each
 * piece as smtpc does. */
static void parse_stream(const char *data, size_t size, size_t step, run *rn)
{
    sts_smtp_reply r;
    sts_smtp_reply_init(&r);
    size_t start = 0, have = 0;
    rn->n = 0;
    rn->end_rc = 0;
    while (have < size) {
        have += step;
        if (have > size)
            have = size;
        for (;;) {
            size_t used = 0;
            int rc = sts_smtp_reply_parse(data + start, have - start, &r, &used, NULL, 0);
            if (rc) {
                rn->end_rc = rc;
                goto out;
            }
            if (!used)
                break;
            record(rn, &r, used);
            start += used;
        }
    }
out:
    sts_smtp_reply_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 3 * STS_SMTP_LINE_MAX)
        return 0; /* the caps are reached long before this; keep runs fast */
    const char *in = (const char *)data;
    static run whole, streamed; /* reset by parse_all/parse_stream before use */
    parse_all(in, size, &whole, 1);
    size_t step = 1 + (size ? (unsigned char)in[size - 1] % 11 : 0);
    parse_stream(in, size, step, &streamed);
    FUZZ_CHECK(whole.end_rc == streamed.end_rc, "in one go: rc %d; in pieces of %zu: rc %d",
               whole.end_rc, step, streamed.end_rc);
    FUZZ_CHECK(whole.n == streamed.n, "%zu replies in one go, %zu in pieces of %zu", whole.n,
               streamed.n, step);
    for (size_t i = 0; i < whole.n && i < MAX_REPLIES; i++)
        FUZZ_CHECK(whole.r[i].code == streamed.r[i].code &&
                       whole.r[i].consumed == streamed.r[i].consumed &&
                       whole.r[i].textlen == streamed.r[i].textlen &&
                       whole.r[i].nlines == streamed.r[i].nlines &&
                       whole.r[i].texthash == streamed.r[i].texthash,
                   "reply %zu differs when read in pieces of %zu", i, step);
    return 0;
}
