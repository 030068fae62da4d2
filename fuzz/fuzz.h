/*
 * fuzz.h - what every fuzz target shares: the libFuzzer entry point's prototype and
 * FUZZ_CHECK, which prints the violated property and aborts, so that libFuzzer (or
 * replay.c under ctest) reports the input as a crash.
 */
#ifndef STS_FUZZ_H
#define STS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property of the code under test: on violation name it (file:line, the condition
 * and a printf-style detail) and abort. Never compiled out. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property violated: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
