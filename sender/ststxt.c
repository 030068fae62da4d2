/*
 * ststxt.c - the `_mta-sts` TXT record parser and the RFC 8461 3.1 record selection.
 * sts_txt_parse/sts_txt_select return 0 or STS_ESYNTAX / STS_ENOTFOUND / STS_EINVAL /
 * STS_ENOMEM as ststxt.h documents; every problem is reported with its column.
 */
#include "sender/ststxt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "sender/txtrec.h"

#define STS_V_LEN (sizeof("v=STSv1") - 1)

static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}
static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int sts_txt_is_sts(const char *rec, size_t len)
{
    return sts_txtrec_begins(rec, len, "STSv1");
}

void sts_txt_free(sts_txt *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->next; i++) {
        free(t->ext[i].name);
        free(t->ext[i].value);
    }
    free(t->ext);
    memset(t, 0, sizeof(*t));
}

static int add_ext(sts_txt *t, const char *name, size_t nlen, const char *val, size_t vlen)
{
    sts_txt_ext *ext = realloc(t->ext, (t->next + 1) * sizeof(*ext));
    if (!ext)
        return STS_ENOMEM;
    t->ext = ext;
    char *n = sts_strdup_n(name, nlen), *v = sts_strdup_n(val, vlen);
    if (!n || !v) {
        free(n);
        free(v);
        return STS_ENOMEM;
    }
    ext[t->next].name = n;
    ext[t->next].value = v;
    t->next++;
    return 0;
}

/* Report an error at byte offset off (column off+1). */
#define ERR_AT(off, ...)                                                                           \
    do {                                                                                           \
        nerr++;                                                                                    \
        if (sts_diags_add(diags, STS_DIAG_ERROR, 1, (int)(off) + 1, __VA_ARGS__))                  \
            goto nomem;                                                                            \
    } while (0)
#define WARN_AT(off, ...)                                                                          \
    do {                                                                                           \
        if (sts_diags_add(diags, STS_DIAG_WARNING, 1, (int)(off) + 1, __VA_ARGS__))                \
            goto nomem;                                                                            \
    } while (0)

/* Check one field "name=value" found at rec[s..e). */
static int parse_field(const char *rec, size_t s, size_t e, sts_txt *t, int *have_id,
                       sts_diags *diags, int *nerrp)
{
    int nerr = 0;
    const char *eq = memchr(rec + s, '=', e - s);
    size_t nlen = eq ? (size_t)(eq - (rec + s)) : 0, v = s + nlen + 1, vlen = eq ? e - v : 0;
    const char *name = rec + s;
    if (eq && nlen == 2 && !memcmp(name, "id", 2)) {
        /* sts-id = %s"id=" 1*32(ALPHA / DIGIT) */
        int bad = 0;
        if (vlen == 0) {
            ERR_AT(v, "id is empty (1-32 letters or digits required)");
            bad = 1;
        } else if (vlen > STS_TXT_ID_MAX) {
            ERR_AT(v, "id is %zu characters long (at most %d letters or digits)", vlen,
                   STS_TXT_ID_MAX);
            bad = 1;
        } else {
            for (size_t i = v; i < e; i++)
                if (!is_alnum((unsigned char)rec[i])) {
                    ERR_AT(i, "id contains '%c' (only letters and digits are allowed)", rec[i]);
                    bad = 1;
                    break;
                }
        }
        if (*have_id) {
            WARN_AT(s, "id given more than once; the first one is used");
        } else if (!bad) {
            memcpy(t->id, rec + v, vlen);
            t->id[vlen] = '\0';
            *have_id = 1;
        } else {
            *have_id = -1; /* present but invalid: no "missing id" error on top */
        }
        goto out;
    }
    size_t at;
    if (sts_txtrec_check_ext(rec, s, e, "id", diags, &nerr, &at))
        goto nomem;
    if (at != (size_t)-1 && add_ext(t, name, nlen, rec + v, vlen))
        goto nomem;
out:
    *nerrp += nerr;
    return 0;
nomem:
    return STS_ENOMEM;
}

int sts_txt_parse(const char *rec, size_t len, sts_txt *out, sts_diags *diags)
{
    int nerr = 0, have_id = 0;
    sts_txt t;
    memset(&t, 0, sizeof(t));
    memset(out, 0, sizeof(*out));

    /* sts-version = %s"v=STSv1", first in the record (RFC 8461 3.1). */
    int src = sts_txtrec_check_start(rec, len, "STSv1", diags);
    if (src == STS_ENOMEM)
        goto nomem;
    if (src) {
        nerr++;
        goto fail;
    }
    memcpy(t.version, "STSv1", 6);

    size_t p = STS_V_LEN, nfields = 0;
    for (;;) {
        size_t ws = p;
        while (p < len && is_wsp(rec[p]))
            p++;
        if (p == len) {
            /* sts-text-record = sts-version 1*(sts-field-delim sts-field)
             * [sts-field-delim]: whitespace may end the record only with a ';'. It
             * changes nothing here, so it is taken, with a word for the lint. */
            if (ws < len && nfields)
                WARN_AT(ws, "whitespace after the last field without a ';' is outside "
                            "RFC 8461 3.1's grammar");
            break;
        }
        if (rec[p] != ';') {
            ERR_AT(p, "expected ';' before '%.*s'", (int)sts_txtrec_token_len(rec, p, len),
                   rec + p);
            /* Resynchronise at the next delimiter to report further problems. */
            while (p < len && rec[p] != ';')
                p++;
            if (p == len)
                break;
        }
        p++; /* the ';' */
        while (p < len && is_wsp(rec[p]))
            p++;
        if (p == len)
            break; /* a trailing delimiter is allowed: [sts-field-delim] */
        if (rec[p] == ';') {
            ERR_AT(p, "empty field (two ';' in a row)");
            continue;
        }
        size_t s = p;
        while (p < len && rec[p] != ';' && !is_wsp(rec[p]))
            p++;
        nfields++;
        int rc = parse_field(rec, s, p, &t, &have_id, diags, &nerr);
        if (rc)
            goto nomem;
    }
    if (nfields == 0 && nerr == 0)
        ERR_AT(STS_V_LEN, "no fields after v=STSv1 (id is required)");
    else if (!have_id)
        ERR_AT(-1, "missing required field id");
    if (nerr)
        goto fail;
    *out = t;
    return 0;
fail:
    sts_txt_free(&t);
    return STS_ESYNTAX;
nomem:
    sts_txt_free(&t);
    return STS_ENOMEM;
}

static int parse_cb(const char *rec, size_t len, void *out, sts_diags *diags)
{
    return sts_txt_parse(rec, len, out, diags);
}
static void release_cb(void *out)
{
    sts_txt_free(out);
}

int sts_txt_select(const char *const *records, const size_t *lens, size_t n, sts_txt *out,
                   sts_diags *diags, char *why, size_t whylen)
{
    /* RFC 8461 3.1: "If the number of resulting records is not one, or if the resulting
     * record is syntactically invalid, senders MUST assume the recipient domain does not
     * have an available MTA-STS Policy". */
    static const sts_txtrec_kind kind = {.tag = "STSv1",
                                         .label = "STS TXT record",
                                         .absent = "no policy",
                                         .rfc = "RFC 8461 3.1",
                                         .size = sizeof(sts_txt),
                                         .parse = parse_cb,
                                         .release = release_cb};
    int rc = sts_txtrec_select(&kind, records, lens, n, out, diags, why, whylen);
    if (rc == 0 && why)
        snprintf(why, whylen, "STS TXT record id=%s", out->id);
    return rc;
}
