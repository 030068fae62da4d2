/*
 * txt_mutate.h - the bounded mutation runs of the TXT record tables
 * (tests/unit/test_ststxt.c, tests/unit/test_tlsrpt.c): a deterministic xorshift
 * generator edits copies of a table's records, one to three characters of an alphabet
 * written over a byte or inserted before it, and hands each mutant to a check (run under
 * ASan, this is a small fuzz run in every build).
 */
#ifndef STS_TXT_MUTATE_H
#define STS_TXT_MUTATE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* rounds mutants of the nrecs records rec(0..nrecs-1), in turn; check(buf, len) judges
 * each (buf is not NUL-terminated). alphabet has alen characters (NUL bytes allowed). */
static inline void txt_mutation_run(size_t nrecs, const char *(*rec)(size_t), const char *alphabet,
                                    size_t alen, int rounds,
                                    void (*check)(const char *buf, size_t len))
{
    uint32_t x = 0x9e3779b9;
    char buf[256];
    for (int round = 0; round < rounds; round++) {
        const char *r = rec((size_t)round % nrecs);
        size_t len = strlen(r);
        if (len >= sizeof(buf))
            len = sizeof(buf) - 1;
        memcpy(buf, r, len);
        for (int k = 0; k < 1 + round % 3; k++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            size_t at = len ? x % len : 0;
            char ch = alphabet[(x >> 8) % alen];
            if ((x >> 20) % 2 == 0 && len) {
                buf[at] = ch;
            } else if (len < sizeof(buf) - 1) {
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = ch;
                len++;
            }
        }
        check(buf, len);
    }
}

#endif
