/*
 * unit_fixture.h - helpers the unit tests share (include it after <cmocka.h>): a
 * listening loopback socket and TLS contexts for a server driven in-process, a
 * scratch folder for a test, and the text of a file.
 */
#ifndef STS_UNIT_FIXTURE_H
#define STS_UNIT_FIXTURE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/testca.h"
#include "common/tls.h"

/* A bound, listening socket on 127.0.0.1 at a port the kernel picks (in *sa). */
static inline int fixture_listen_fd(struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t slen = sizeof(*sa);
    assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)sa, &slen), 0);
    return fd;
}

/* A test CA, a certificate it signs for one name and its key, a server context with
 * them, and a client context that verifies nothing (no host is asked): for tests in
 * which whether a handshake happens is what counts. */
typedef struct fixture_tls {
    sts_ca *ca;
    X509 *cert;
    EVP_PKEY *key;
    SSL_CTX *sctx, *cctx;
} fixture_tls;

static inline void fixture_tls_new(fixture_tls *t, const char *name)
{
    char err[256] = "";
    memset(t, 0, sizeof(*t));
    if (!(t->ca = sts_ca_new("ststest unit CA", 0, err, sizeof(err))))
        fail_msg("%s", err);
    const char *names[] = {name};
    sts_cert_spec spec = {.names = names, .nnames = 1};
    assert_int_equal(sts_ca_mint(t->ca, &spec, 0, &t->cert, &t->key), 0);
    if (!(t->sctx = sts_tls_server_ctx(t->cert, t->key, NULL, 0, 0, err, sizeof(err))))
        fail_msg("%s", err);
    if (!(t->cctx = sts_tls_client_ctx(NULL, 0, err, sizeof(err))))
        fail_msg("%s", err);
}

static inline void fixture_tls_free(fixture_tls *t)
{
    SSL_CTX_free(t->cctx);
    SSL_CTX_free(t->sctx);
    X509_free(t->cert);
    EVP_PKEY_free(t->key);
    sts_ca_free(t->ca);
}

/* A new scratch folder /tmp/ststest-test-<what>-XXXXXX, its name in dir. 0 or -1. */
static inline int fixture_dir_new(char *dir, size_t len, const char *what)
{
    snprintf(dir, len, "/tmp/ststest-test-%s-XXXXXX", what);
    return mkdtemp(dir) ? 0 : -1;
}

/* Remove the scratch folder and everything in it. 0 or -1. */
static inline int fixture_dir_remove(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The text of the file at path (at most 1 MiB; malloc'd), or a failed test. */
static inline char *fixture_slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        fail_msg("cannot open %s", path);
    char *buf = calloc(1, 1 << 20);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

#endif
