/*
 * buf.h - capped byte buffers and a bounded read cursor.
 *
 * Every buffer fed from the network has a cap (max): appending beyond it fails with
 * STS_ETOOBIG and leaves the buffer unchanged. Parsing goes through sts_cur, which
 * never reads past its end.
 */
#ifndef STS_BUF_H
#define STS_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct sts_buf {
    char *data; /* always NUL-terminated past len when data != NULL */
    size_t len;
    size_t cap;
    size_t max; /* 0 = no cap (only for buffers we fill ourselves) */
} sts_buf;

void sts_buf_init(sts_buf *b, size_t max);
void sts_buf_free(sts_buf *b);
/* 0, STS_ENOMEM or STS_ETOOBIG. */
int sts_buf_append(sts_buf *b, const void *p, size_t n);
int sts_buf_appendf(sts_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes. */
void sts_buf_consume(sts_buf *b, size_t n);
void sts_buf_reset(sts_buf *b);
/* Length of the first complete line including its LF (0 when no LF yet); *content_len
 * gets the length without CRLF/LF. */
size_t sts_buf_line(const sts_buf *b, size_t *content_len);

typedef struct sts_cur {
    const uint8_t *p;
    size_t len;
    size_t off;
} sts_cur;

void sts_cur_init(sts_cur *c, const void *p, size_t len);
size_t sts_cur_left(const sts_cur *c);
/* The next octet (0-255) without taking it, or -1 at the end. */
int sts_cur_peek(const sts_cur *c);
/* Each returns 0, or STS_ETOOBIG when fewer bytes are left than asked for. */
int sts_cur_u8(sts_cur *c, uint8_t *v);
int sts_cur_u16(sts_cur *c, uint16_t *v); /* network order */
int sts_cur_bytes(sts_cur *c, void *out, size_t n);
int sts_cur_skip(sts_cur *c, size_t n);

/* Make room for need elements of elsize octets in the array *v that holds *cap: its
 * capacity doubles, from *cap or else from first (> 0), until need fit. 0, or
 * STS_ENOMEM with *v and *cap unchanged (also when the size would overflow). */
int sts_array_grow(void **v, size_t *cap, size_t need, size_t elsize, size_t first);

/* A NUL-terminated copy of the n octets at p (malloc; NULL on ENOMEM). Unlike
 * strndup it never looks past p + n, so p need not be a string: a length-delimited
 * slice of network input is fine. */
char *sts_strdup_n(const void *p, size_t n);

#endif
