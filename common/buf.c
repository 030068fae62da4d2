/* buf.c - capped byte buffers and a bounded read cursor. */
#include "common/buf.h"
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sts_buf_init(sts_buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void sts_buf_free(sts_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int sts_array_grow(void **v, size_t *cap, size_t need, size_t elsize, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : first;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return STS_ENOMEM;
        n *= 2;
    }
    if (n > SIZE_MAX / elsize)
        return STS_ENOMEM;
    void *p = realloc(*v, n * elsize);
    if (!p)
        return STS_ENOMEM;
    *v = p;
    *cap = n;
    return 0;
}

static int buf_reserve(sts_buf *b, size_t extra)
{
    if (b->max && b->len + extra > b->max)
        return STS_ETOOBIG;
    return sts_array_grow((void **)&b->data, &b->cap, b->len + extra + 1, 1, 256);
}

int sts_buf_append(sts_buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int sts_buf_appendf(sts_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return STS_EINVAL;
    int rc = buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void sts_buf_consume(sts_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void sts_buf_reset(sts_buf *b)
{
    sts_buf_consume(b, b->len);
}

size_t sts_buf_line(const sts_buf *b, size_t *content_len)
{
    if (!b->len)
        return 0;
    const char *lf = memchr(b->data, '\n', b->len);
    if (!lf)
        return 0;
    size_t n = (size_t)(lf - b->data);
    size_t content = n;
    if (content > 0 && b->data[content - 1] == '\r')
        content--;
    if (content_len)
        *content_len = content;
    return n + 1;
}

void sts_cur_init(sts_cur *c, const void *p, size_t len)
{
    c->p = p;
    c->len = len;
    c->off = 0;
}

size_t sts_cur_left(const sts_cur *c)
{
    return c->len - c->off;
}

int sts_cur_peek(const sts_cur *c)
{
    return c->off < c->len ? c->p[c->off] : -1;
}

int sts_cur_bytes(sts_cur *c, void *out, size_t n)
{
    if (sts_cur_left(c) < n)
        return STS_ETOOBIG;
    if (out)
        memcpy(out, c->p + c->off, n);
    c->off += n;
    return 0;
}

int sts_cur_skip(sts_cur *c, size_t n)
{
    return sts_cur_bytes(c, NULL, n);
}

int sts_cur_u8(sts_cur *c, uint8_t *v)
{
    return sts_cur_bytes(c, v, 1);
}

int sts_cur_u16(sts_cur *c, uint16_t *v)
{
    uint8_t b[2];
    int rc = sts_cur_bytes(c, b, 2);
    if (rc)
        return rc;
    *v = (uint16_t)((b[0] << 8) | b[1]);
    return 0;
}

char *sts_strdup_n(const void *p, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}
