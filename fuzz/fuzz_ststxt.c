/*
 * fuzz_ststxt.c - fuzz target for the `_mta-sts` TXT record parser (sender/ststxt.h,
 * RFC 8461 3.1). The input is one record; its lines (split at LF) are also used as
 * the record set given to sts_txt_select.
 *
 * Properties checked (abort on violation):
 *  - sts_txt_parse returns 0 or STS_ESYNTAX (STS_ENOMEM only on allocation failure);
 *    on success no error diagnostic, version "STSv1", an id of 1-32 letters/digits and
 *    extension names and values as the ABNF allows; on failure at least one error,
 *    every diagnostic on line 1 with a column inside the record, *out zeroed.
 *  - It agrees with ref_parse below, an independent reading of the ABNF that splits
 *    the record at ';' instead of scanning it (accept/reject, the id and every
 *    extension in order).
 *  - Round trip: the parsed record written back canonically ("v=STSv1; id=..; n=v")
 *    parses to the same id and extensions.
 *  - sts_txt_is_sts holds for every record that parses.
 *  - sts_txt_select over the input's lines: ENOTFOUND when no line is an STS record,
 *    EINVAL when several are, else exactly sts_txt_parse's result for that line.
 * The function returns 0 (libFuzzer's convention).
 */
#include <string.h>

#include "fuzz/fuzz_txtrec.h"
#include "sender/ststxt.h"

#define MAX_FIELDS 512

/* sts-id = %s"id=" 1*32(ALPHA / DIGIT) */
static int id_ok(const char *s, size_t n)
{
    if (n < 1 || n > STS_TXT_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!fuzz_is_alnum((unsigned char)s[i]))
            return 0;
    return 1;
}

typedef struct ref_field {
    const char *name, *value;
    size_t nlen, vlen;
} ref_field;

typedef struct ref_txt {
    const char *id;
    size_t idlen;
    size_t nf;
    ref_field f[MAX_FIELDS]; /* extensions in record order */
} ref_txt;

/* The record as the header documents it, read by splitting at ';':
 *   "v=STSv1" seg0 (";" seg)*   where seg0 is only whitespace, every middle segment
 *   holds one field, and the last (after the last ';') holds one field or nothing
 *   ([sts-field-delim]). Whitespace after the last field without a ';' is tolerated
 *   (as sts_txt_parse does, with a warning). Every field name=value; "id" fields are sts-id (all must
 *   be valid; the first is used); at least one id. 1 valid (r filled), 0 invalid. */
static int ref_parse(const char *rec, size_t len, ref_txt *r)
{
    memset(r, 0, sizeof(*r));
    if (memchr(rec, '\0', len) || len < 7 || memcmp(rec, "v=STSv1", 7))
        return 0;
    const char *p = rec + 7, *end = rec + len;
    /* segment boundaries */
    const char *segs[MAX_FIELDS + 2];
    size_t nseg = 0;
    segs[nseg++] = p;
    for (const char *q = p; q < end; q++)
        if (*q == ';') {
            if (nseg >= MAX_FIELDS + 1)
                return -1; /* too many to compare: skip */
            segs[nseg++] = q + 1;
        }
    int have_id = 0;
    size_t nfields = 0;
    for (size_t i = 0; i < nseg; i++) {
        const char *s = segs[i];
        const char *e = i + 1 < nseg ? segs[i + 1] - 1 : end;
        const char *f;
        size_t fl;
        int empty;
        if (!fuzz_segment(s, (size_t)(e - s), &f, &fl, &empty))
            return 0;
        if (i == 0) {
            /* between v=STSv1 and the first ';': only whitespace */
            if (!empty)
                return 0;
            if (nseg == 1)
                return 0; /* no ';' at all: no field, so no id */
            continue;
        }
        if (empty) {
            if (i + 1 < nseg)
                return 0; /* ";;" or "; ;": an empty field */
            continue;     /* the optional trailing delimiter */
        }
        nfields++;
        const char *eq = memchr(f, '=', fl);
        if (!eq)
            return 0;
        size_t nl = (size_t)(eq - f), vl = fl - nl - 1;
        if (nl == 2 && !memcmp(f, "id", 2)) {
            if (!id_ok(eq + 1, vl))
                return 0;
            if (!have_id) {
                r->id = eq + 1;
                r->idlen = vl;
                have_id = 1;
            }
            continue;
        }
        if (!fuzz_ext_name_ok(f, nl) || !fuzz_ext_value_ok(eq + 1, vl))
            return 0;
        r->f[r->nf].name = f;
        r->f[r->nf].nlen = nl;
        r->f[r->nf].value = eq + 1;
        r->f[r->nf].vlen = vl;
        r->nf++;
    }
    return nfields > 0 && have_id;
}

static void check_ok(const char *rec, size_t len, const sts_txt *t)
{
    FUZZ_CHECK(!strcmp(t->version, "STSv1"), "version '%s'", t->version);
    FUZZ_CHECK(id_ok(t->id, strlen(t->id)), "id '%s'", t->id);
    FUZZ_CHECK(sts_txt_is_sts(rec, len), "a valid record that is not an STS record");
    for (size_t i = 0; i < t->next; i++) {
        FUZZ_CHECK(fuzz_ext_name_ok(t->ext[i].name, strlen(t->ext[i].name)), "extension name '%s'",
                   t->ext[i].name);
        FUZZ_CHECK(strcmp(t->ext[i].name, "id") != 0, "id kept as an extension");
        FUZZ_CHECK(fuzz_ext_value_ok(t->ext[i].value, strlen(t->ext[i].value)),
                   "extension value '%s'", t->ext[i].value);
    }
}

/* The record written back canonically must parse to the same thing. */
static void check_round_trip(const sts_txt *t)
{
    size_t cap = 32 + strlen(t->id);
    for (size_t i = 0; i < t->next; i++)
        cap += strlen(t->ext[i].name) + strlen(t->ext[i].value) + 3;
    char *s = malloc(cap);
    if (!s)
        return;
    size_t n = (size_t)snprintf(s, cap, "v=STSv1; id=%s;", t->id);
    for (size_t i = 0; i < t->next; i++)
        n += (size_t)snprintf(s + n, cap - n, " %s=%s;", t->ext[i].name, t->ext[i].value);
    sts_txt u;
    int rc = sts_txt_parse(s, n, &u, NULL);
    if (rc == STS_ENOMEM) {
        free(s);
        return;
    }
    FUZZ_CHECK(rc == 0, "canonical form '%s' does not parse (%d)", s, rc);
    FUZZ_CHECK(!strcmp(u.id, t->id), "id '%s' became '%s'", t->id, u.id);
    FUZZ_CHECK(u.next == t->next, "%zu extensions became %zu", t->next, u.next);
    for (size_t i = 0; i < t->next; i++)
        FUZZ_CHECK(!strcmp(u.ext[i].name, t->ext[i].name) &&
                       !strcmp(u.ext[i].value, t->ext[i].value),
                   "extension %zu changed", i);
    sts_txt_free(&u);
    free(s);
}

/* sts_txt_select over the input's lines. */
static void check_select(const char *rec, size_t len)
{
    enum { NREC = 8 };
    const char *recs[NREC];
    size_t lens[NREC], n = fuzz_split_lines(rec, len, recs, lens, NREC), which;
    size_t nfound = fuzz_count_records(recs, lens, n, sts_txt_is_sts, &which);
    sts_txt t, u;
    memset(&u, 0, sizeof(u));
    sts_diags d;
    sts_diags_init(&d);
    char why[512];
    int rc = sts_txt_select(recs, lens, n, &t, &d, why, sizeof(why)), prc = STS_ENOMEM;
    if (rc == STS_ENOMEM)
        goto out;
    if (nfound == 1)
        prc = sts_txt_parse(recs[which], lens[which], &u, NULL);
    fuzz_check_select(nfound, rc, prc, &d, why);
    if (rc == 0 && prc == 0)
        FUZZ_CHECK(!strcmp(u.id, t.id), "select id '%s', parse id '%s'", t.id, u.id);
    if (rc != 0)
        FUZZ_CHECK(t.next == 0 && t.ext == NULL && t.id[0] == '\0', "select: *out not zeroed");
out:
    sts_txt_free(&t);
    sts_txt_free(&u);
    sts_diags_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *rec = (const char *)data;
    sts_txt t;
    sts_diags d;
    sts_diags_init(&d);
    int rc = sts_txt_parse(rec, size, &t, &d);
    if (rc == STS_ENOMEM)
        goto out;
    static ref_txt r; /* large; only ever written by ref_parse before it is read */
    int ref = ref_parse(rec, size, &r);
    fuzz_check_parse(rc, &d, size, ref);
    if (rc == 0) {
        check_ok(rec, size, &t);
        if (ref > 0) {
            FUZZ_CHECK(strlen(t.id) == r.idlen && !memcmp(t.id, r.id, r.idlen),
                       "id '%s', reference '%.*s'", t.id, (int)r.idlen, r.id);
            FUZZ_CHECK(t.next == r.nf, "%zu extensions, reference %zu", t.next, r.nf);
            for (size_t i = 0; i < t.next; i++)
                FUZZ_CHECK(strlen(t.ext[i].name) == r.f[i].nlen &&
                               !memcmp(t.ext[i].name, r.f[i].name, r.f[i].nlen) &&
                               strlen(t.ext[i].value) == r.f[i].vlen &&
                               !memcmp(t.ext[i].value, r.f[i].value, r.f[i].vlen),
                           "extension %zu '%s=%s' differs from the reference", i, t.ext[i].name,
                           t.ext[i].value);
        }
        check_round_trip(&t);
    } else {
        FUZZ_CHECK(t.next == 0 && t.ext == NULL && t.id[0] == '\0', "*out not zeroed");
    }
    check_select(rec, size);
out:
    sts_txt_free(&t);
    sts_diags_free(&d);
    return 0;
}
