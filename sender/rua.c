/*
 * rua.c - a TLSRPT rua URI taken apart for delivery (rua.h). Pure: returns 0 or
 * STS_ESYNTAX with the reason, as rua.h documents.
 */
#include "sender/rua.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"

static int bad(char *err, size_t errlen, const char *uri, const char *why)
{
    snprintf(err, errlen, "%s: %s", uri, why);
    return STS_ESYNTAX;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A host name: LDH labels of 1..63, dots between, 253 at most (one final dot dropped). */
static int host_name_ok(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (!n || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (!label || s[i - 1] == '-')
                return 0;
            label = 0;
        } else if (isalnum(c) || c == '_' || (c == '-' && label)) {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0 && s[n - 1] != '-';
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* "!SIZE": digits then an optional k, m, g or t (DMARC's units, RFC 7489 6.2). */
static int parse_limit(const char *s, unsigned long long *out)
{
    unsigned long long v = 0;
    const char *p = s;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        if (v > (~0ULL - 9) / 10)
            return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    unsigned shift = 0;
    switch (tolower((unsigned char)*p)) {
    case '\0':
        break;
    case 'k':
        shift = 10;
        break;
    case 'm':
        shift = 20;
        break;
    case 'g':
        shift = 30;
        break;
    case 't':
        shift = 40;
        break;
    default:
        return -1;
    }
    if (*p && p[1])
        return -1;
    if (shift && v > (~0ULL >> shift))
        return -1;
    *out = v << shift;
    return 0;
}

static int parse_mailto(const char *uri, const char *rest, sts_rua *out, char *err, size_t errlen)
{
    char raw[1024];
    size_t n = strcspn(rest, "?");
    if (n >= sizeof(raw))
        return bad(err, errlen, uri, "address too long");
    memcpy(raw, rest, n);
    raw[n] = '\0';
    char *bang = strchr(raw, '!');
    if (bang) {
        *bang = '\0';
        if (parse_limit(bang + 1, &out->limit))
            return bad(err, errlen, uri, "'!' not followed by a size (digits, then k, m, g or t)");
    }
    /* Percent-decoding (RFC 6068 2). */
    size_t o = 0;
    for (size_t i = 0; raw[i]; i++) {
        int c = (unsigned char)raw[i];
        if (c == '%') {
            int h = hexval(raw[i + 1]), l = h < 0 ? -1 : hexval(raw[i + 2]);
            if (h < 0 || l < 0)
                return bad(err, errlen, uri, "'%' not followed by two hex digits");
            c = h * 16 + l;
            i += 2;
        }
        if (c <= 0x20 || c >= 0x7f || c == ',' || c == '<' || c == '>')
            return bad(err, errlen, uri,
                       "a space, control, ',', '<', '>' or non-ASCII octet "
                       "in the address");
        if (o + 1 >= sizeof(out->address))
            return bad(err, errlen, uri, "address too long");
        out->address[o++] = (char)c;
    }
    out->address[o] = '\0';
    char *at = strrchr(out->address, '@');
    if (!o)
        return bad(err, errlen, uri, "empty address");
    if (!at)
        return bad(err, errlen, uri, "no '@' in the address");
    if (at == out->address)
        return bad(err, errlen, uri, "empty local part");
    if (strchr(out->address, '@') != at && out->address[0] != '"')
        return bad(err, errlen, uri, "more than one '@' in the address");
    const char *dom = at + 1;
    size_t dl = strlen(dom);
    if (dom[0] == '[') {
        if (dl < 3 || dom[dl - 1] != ']' || dl - 2 >= sizeof(out->domain))
            return bad(err, errlen, uri, "unterminated address literal");
        memcpy(out->domain, dom + 1, dl - 2);
        out->domain[dl - 2] = '\0';
        const char *lit = out->domain;
        unsigned char tmp[16];
        if (!strncasecmp(lit, "IPv6:", 5) && inet_pton(AF_INET6, lit + 5, tmp) == 1)
            memmove(out->domain, lit + 5, strlen(lit + 5) + 1);
        else if (inet_pton(AF_INET, lit, tmp) != 1)
            return bad(err, errlen, uri, "address literal is not an IPv4 or IPv6: address");
        out->domain_literal = 1;
        lower(out->domain);
        return 0;
    }
    if (dl >= sizeof(out->domain))
        return bad(err, errlen, uri, "domain too long");
    memcpy(out->domain, dom, dl + 1);
    if (dl && out->domain[dl - 1] == '.')
        out->domain[dl - 1] = '\0';
    if (!host_name_ok(out->domain))
        return bad(err, errlen, uri, "the domain is not a host name");
    lower(out->domain);
    return 0;
}

static int parse_https(const char *uri, const char *rest, sts_rua *out, char *err, size_t errlen)
{
    if (strncmp(rest, "//", 2))
        return bad(err, errlen, uri, "no '//' after 'https:'");
    rest += 2;
    size_t auth = strcspn(rest, "/?#");
    const char *end = rest + auth;
    if (memchr(rest, '@', auth))
        return bad(err, errlen, uri, "userinfo ('@') in the authority (RFC 7230 2.7.1)");
    const char *host = rest, *hend, *colon = NULL;
    if (*host == '[') {
        const char *rb = memchr(host, ']', auth);
        if (!rb)
            return bad(err, errlen, uri, "unterminated [IPv6] host");
        host++;
        hend = rb;
        if (rb + 1 < end) {
            if (rb[1] != ':')
                return bad(err, errlen, uri, "text after the [IPv6] host");
            colon = rb + 1;
        }
        out->host_literal = 1;
    } else {
        colon = memchr(host, ':', auth);
        hend = colon ? colon : end;
    }
    size_t hl = (size_t)(hend - host);
    if (!hl)
        return bad(err, errlen, uri, "empty host");
    if (hl >= sizeof(out->host))
        return bad(err, errlen, uri, "host too long");
    memcpy(out->host, host, hl);
    out->host[hl] = '\0';
    unsigned char tmp[16];
    if (out->host_literal) {
        if (inet_pton(AF_INET6, out->host, tmp) != 1)
            return bad(err, errlen, uri, "[host] is not an IPv6 address");
    } else if (inet_pton(AF_INET, out->host, tmp) == 1) {
        out->host_literal = 1;
    } else {
        if (out->host[hl - 1] == '.')
            out->host[hl - 1] = '\0';
        /* "192.0.2.1." is that address, not a name to look up */
        if (inet_pton(AF_INET, out->host, tmp) == 1)
            out->host_literal = 1;
        else if (!host_name_ok(out->host))
            return bad(err, errlen, uri, "the host is not a host name");
        lower(out->host);
    }
    out->port = 443;
    if (colon && colon + 1 < end) {
        long port = 0;
        for (const char *p = colon + 1; p < end; p++) {
            if (!isdigit((unsigned char)*p))
                return bad(err, errlen, uri, "the port is not a number");
            if ((port = port * 10 + (*p - '0')) > 65535)
                return bad(err, errlen, uri, "port out of range (1-65535)");
        }
        if (!port)
            return bad(err, errlen, uri, "port out of range (1-65535)");
        out->port = (int)port;
    }
    size_t pl = strcspn(end, "#");
    if (pl + 2 > sizeof(out->path))
        return bad(err, errlen, uri, "path too long");
    for (size_t i = 0; i < pl; i++)
        if ((unsigned char)end[i] <= 0x20 || (unsigned char)end[i] >= 0x7f)
            return bad(err, errlen, uri, "a space, control or non-ASCII octet in the path");
    if (!pl || end[0] != '/')
        out->path[0] = '/';
    memcpy(out->path + (!pl || end[0] != '/'), end, pl);
    out->path[pl + (!pl || end[0] != '/')] = '\0';
    return 0;
}

int sts_rua_parse(const char *uri, sts_rua *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (err && errlen)
        err[0] = '\0';
    const char *colon = strchr(uri, ':');
    if (!colon || sts_tlsrpt_scheme_parse(uri, (size_t)(colon - uri), &out->scheme))
        return bad(err, errlen, uri, "not a mailto: or https: URI (RFC 8460 3)");
    return out->scheme == STS_TLSRPT_MAILTO ? parse_mailto(uri, colon + 1, out, err, errlen)
                                            : parse_https(uri, colon + 1, out, err, errlen);
}
