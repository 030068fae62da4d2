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

static const char STS_V[] = "v=STSv1";
#define STS_V_LEN (sizeof(STS_V) - 1)

static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}
static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Length of the token at rec[p..len): up to ';', whitespace or the end. */
static size_t token_len(const char *rec, size_t p, size_t len)
{
    size_t e = p;
    while (e < len && rec[e] != ';' && !is_wsp(rec[e]))
        e++;
    return e - p;
}

int sts_txt_is_sts(const char *rec, size_t len)
{
    /* RFC 8461 3.1 says records "that do not begin with "v=STSv1;"" are discarded; the
     * ABNF's sts-field-delim (*WSP ";" *WSP) lets whitespace stand before the ";", and a
     * bare "v=STSv1" is an STS record (an invalid one: it lacks id). */
    if (len < STS_V_LEN || memcmp(rec, STS_V, STS_V_LEN) != 0)
        return 0;
    return len == STS_V_LEN || rec[STS_V_LEN] == ';' || is_wsp(rec[STS_V_LEN]);
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
    if (!eq) {
        ERR_AT(s, "field '%.*s' has no '=' (expected name=value)", (int)(e - s), rec + s);
        goto out;
    }
    size_t nlen = (size_t)(eq - (rec + s)), v = (size_t)(eq - rec) + 1, vlen = e - v;
    const char *name = rec + s;
    if (nlen == 2 && !memcmp(name, "id", 2)) {
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
    /* sts-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
    if (nlen == 0) {
        ERR_AT(s, "field name is empty");
        goto out;
    }
    if (nlen > 32)
        ERR_AT(s, "field name '%.*s' is longer than 32 characters", (int)nlen, name);
    if (!is_alnum((unsigned char)name[0]))
        ERR_AT(s, "field name '%.*s' must begin with a letter or digit", (int)nlen, name);
    for (size_t i = 1; i < nlen; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!is_alnum(c) && c != '_' && c != '-' && c != '.') {
            ERR_AT(s + i, "field name '%.*s' contains '%c'", (int)nlen, name, c);
            break;
        }
    }
    /* sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E) */
    if (vlen == 0)
        ERR_AT(v, "field '%.*s' has an empty value", (int)nlen, name);
    for (size_t i = v; i < e; i++) {
        unsigned char c = (unsigned char)rec[i];
        if (c < 0x21 || c > 0x7e || c == '=') {
            if (c >= 0x21 && c <= 0x7e)
                ERR_AT(i, "value of '%.*s' contains '%c'", (int)nlen, name, c);
            else
                ERR_AT(i, "value of '%.*s' contains byte 0x%02x", (int)nlen, name, c);
            break;
        }
    }
    if (nlen == 2 && (name[0] == 'i' || name[0] == 'I') && (name[1] == 'd' || name[1] == 'D'))
        WARN_AT(s, "field '%.*s' is not 'id' (field names are case-sensitive)", (int)nlen, name);
    if (nlen == 1 && name[0] == 'v')
        WARN_AT(s, "v= appears again after the version");
    if (add_ext(t, name, nlen, rec + v, vlen))
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

    const char *nul = memchr(rec, '\0', len);
    if (nul) {
        ERR_AT(nul - rec, "record contains a NUL byte");
        goto fail;
    }
    /* sts-version = %s"v=STSv1", first in the record (RFC 8461 3.1). */
    if (len < STS_V_LEN || memcmp(rec, STS_V, STS_V_LEN) != 0) {
        size_t i = 0;
        while (i < len && is_wsp(rec[i]))
            i++;
        if (len - i >= 2 && !memcmp(rec + i, "v=", 2) && i > 0)
            ERR_AT(0, "record must begin with v=STSv1 (no leading whitespace)");
        else if (len >= 2 && !memcmp(rec, "v=", 2))
            ERR_AT(2, "unsupported version '%.*s' (expected STSv1)", (int)token_len(rec, 2, len),
                   rec + 2);
        else
            ERR_AT(0, "record must begin with v=STSv1");
        goto fail;
    }
    if (!sts_txt_is_sts(rec, len)) {
        ERR_AT(STS_V_LEN, "expected ';' after v=STSv1");
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
            ERR_AT(p, "expected ';' before '%.*s'", (int)token_len(rec, p, len), rec + p);
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

int sts_txt_select(const char *const *records, const size_t *lens, size_t n, sts_txt *out,
                   sts_diags *diags, char *why, size_t whylen)
{
    char dummy[8];
    if (!why) {
        why = dummy;
        whylen = sizeof(dummy);
    }
    memset(out, 0, sizeof(*out));
    size_t nsts = 0, which = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(records[i]);
        if (sts_txt_is_sts(records[i], len)) {
            if (nsts == 0)
                which = i;
            nsts++;
        }
    }
    /* RFC 8461 3.1: "If the number of resulting records is not one, or if the resulting
     * record is syntactically invalid, senders MUST assume the recipient domain does not
     * have an available MTA-STS Policy". */
    if (nsts == 0) {
        snprintf(why, whylen, "%s",
                 n ? "no TXT record begins with v=STSv1: no policy" : "no TXT record: no policy");
        return STS_ENOTFOUND;
    }
    if (nsts > 1) {
        snprintf(why, whylen,
                 "%zu TXT records begin with v=STSv1: no policy (RFC 8461 3.1 requires exactly "
                 "one)",
                 nsts);
        return STS_EINVAL;
    }
    size_t len = lens ? lens[which] : strlen(records[which]);
    sts_diags local;
    sts_diags_init(&local);
    int rc = sts_txt_parse(records[which], len, out, &local);
    if (rc == STS_ESYNTAX) {
        char s[300];
        snprintf(why, whylen, "invalid STS TXT record: %s: no policy",
                 sts_diags_summary(&local, s, sizeof(s)));
    } else if (rc == 0) {
        snprintf(why, whylen, "STS TXT record id=%s", out->id);
    } else {
        snprintf(why, whylen, "%s", sts_strerror(rc));
    }
    if (diags)
        for (size_t i = 0; i < local.n && rc != STS_ENOMEM; i++)
            if (sts_diags_add(diags, local.items[i].severity, local.items[i].line,
                              local.items[i].column, "%s", local.items[i].message)) {
                sts_txt_free(out);
                rc = STS_ENOMEM;
            }
    sts_diags_free(&local);
    return rc;
}
