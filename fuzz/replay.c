/*
 * replay.c - the main() of a fuzz target in a normal (non-libFuzzer) build: runs every
 * file named on the command line, and every regular file in every directory named
 * there (not recursive, in name order), through LLVMFuzzerTestOneInput once.
 *
 * main returns 0 when every input ran (a violated property aborts inside the target),
 * 1 when an input could not be read or no input was found at all (an empty or missing
 * corpus is an error: the test would otherwise pass without testing anything).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Run one file; 0 or -1 (message printed). */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fprintf(stderr, "replay: %s: out of memory\n", path);
            fclose(f);
            return -1;
        }
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        uint8_t *nb = realloc(buf, cap * 2);
        if (!nb)
            free(buf);
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "replay: %s: read error\n", path);
        free(buf);
        return -1;
    }
    /* An exact-size copy, so that ASan catches a read one past the input's end. */
    uint8_t *in = malloc(len ? len : 1);
    if (!in) {
        free(buf);
        return -1;
    }
    memcpy(in, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(in, len);
    free(in);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run every regular file of dir; adds to *n. 0 or -1. */
static int replay_dir(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t nn = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char **nv = realloc(names, (nn + 1) * sizeof(*names));
        char *p = malloc(strlen(dir) + strlen(e->d_name) + 2);
        if (!nv || !p) {
            free(p);
            if (nv)
                names = nv;
            rc = -1;
            break;
        }
        names = nv;
        sprintf(p, "%s/%s", dir, e->d_name);
        names[nn++] = p;
    }
    closedir(d);
    if (nn)
        qsort(names, nn, sizeof(*names), by_name);
    for (size_t i = 0; i < nn; i++) {
        struct stat st;
        if (rc == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            if (replay_file(names[i]))
                rc = -1;
            else
                (*n)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    size_t n = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            rc = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (replay_dir(argv[i], &n))
                rc = 1;
        } else if (replay_file(argv[i])) {
            rc = 1;
        } else {
            n++;
        }
    }
    if (n == 0) {
        fprintf(stderr, "replay: no input found\n");
        rc = 1;
    }
    printf("replay: %zu inputs ran%s\n", n, rc ? " (with errors)" : "");
    return rc;
}
