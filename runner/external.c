/*
 * external.c - the external sender of `ststest run --sender-cmd` (see external.h):
 * its command line, running it under a time limit, its output read as it arrives.
 */
#include "runner/external.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"

/* Append s to b quoted for /bin/sh ('...' with embedded quotes escaped). */
static void shell_quote(sts_buf *b, const char *s)
{
    sts_buf_append(b, "'", 1);
    for (; *s; s++) {
        if (*s == '\'')
            sts_buf_append(b, "'\\''", 4);
        else
            sts_buf_append(b, s, 1);
    }
    sts_buf_append(b, "'", 1);
}

char *sts_external_command(const char *tmpl, const char *const vars[][2])
{
    sts_buf b;
    sts_buf_init(&b, 0);
    for (const char *p = tmpl; *p;) {
        size_t i = 0;
        if (*p == '{') {
            for (; vars[i][0]; i++) {
                size_t n = strlen(vars[i][0]);
                if (!strncmp(p + 1, vars[i][0], n) && p[1 + n] == '}') {
                    /* {ststest_flags} is a fixed vocabulary of options, inserted as
                     * words; every other value is one quoted word. */
                    if (!strcmp(vars[i][0], "ststest_flags"))
                        sts_buf_append(&b, vars[i][1], strlen(vars[i][1]));
                    else
                        shell_quote(&b, vars[i][1]);
                    p += n + 2;
                    break;
                }
            }
            if (vars[i][0])
                continue;
        }
        sts_buf_append(&b, p, 1);
        p++;
    }
    if (!b.data)
        sts_buf_append(&b, "", 0);
    return b.data;
}

static double mono_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A line longer than this is logged in pieces. */
#define EXT_LINE_MAX 4096
/* After the command exits, how long its pipes may stay open (a child it left behind
 * is killed with the group, so they close at once in practice). */
#define EXT_DRAIN_SECONDS 2.0

/* One output stream of the command: its pipe and the part of a line not yet ended. */
typedef struct ext_stream {
    int fd; /* -1 once at EOF */
    int is_err;
    char line[EXT_LINE_MAX + 1];
    size_t len;
} ext_stream;

/* One complete line of a stream (without its newline) arrived: log it now. */
static void stream_line(ext_stream *st, sts_log *log, sts_external_out *out)
{
    st->line[st->len] = '\0';
    sts_info(log, "external%s: %s", st->is_err ? " (stderr)" : "", st->line);
    if (!st->is_err)
        sts_buf_appendf(&out->out, "%s\n", st->line);
    else if (st->len)
        snprintf(out->last_err, sizeof(out->last_err), "%s", st->line);
    st->len = 0;
}

/* Read what the pipe holds; log each line it completes. At EOF a last unterminated
 * line is logged too and the pipe closed. */
static void stream_read(ext_stream *st, sts_log *log, sts_external_out *out)
{
    char buf[4096];
    ssize_t n = read(st->fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        if (st->len)
            stream_line(st, log, out);
        close(st->fd);
        st->fd = -1;
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            stream_line(st, log, out);
            continue;
        }
        st->line[st->len++] = buf[i];
        if (st->len == EXT_LINE_MAX)
            stream_line(st, log, out);
    }
}

/* Start cmd with stdout and stderr on the write ends of two pipes. The pid, or -1. */
static pid_t spawn(const char *cmd, int outp[2], int errp[2])
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    setpgid(0, 0);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0)
        _exit(127);
    dup2(null, 0);
    dup2(outp[1], 1);
    dup2(errp[1], 2);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
}

int sts_external_run(const char *cmd, double limit, sts_log *log, sts_external_out *out,
                     int *timed_out)
{
    memset(out, 0, sizeof(*out));
    sts_buf_init(&out->out, 4 << 20);
    *timed_out = 0;
    int outp[2], errp[2];
    if (pipe2(outp, O_CLOEXEC))
        return -1;
    if (pipe2(errp, O_CLOEXEC)) {
        close(outp[0]);
        close(outp[1]);
        return -1;
    }
    pid_t pid = spawn(cmd, outp, errp);
    close(outp[1]);
    close(errp[1]);
    ext_stream st[2] = {{.fd = errp[0], .is_err = 1}, {.fd = outp[0]}};
    if (pid < 0) {
        close(outp[0]);
        close(errp[0]);
        return -1;
    }
    setpgid(pid, pid);
    double deadline = mono_now() + limit, drain_until = 0;
    int status = 0, reaped = 0;
    while (!reaped || st[0].fd >= 0 || st[1].fd >= 0) {
        struct pollfd pfd[2];
        nfds_t n = 0;
        for (int k = 0; k < 2; k++)
            if (st[k].fd >= 0)
                pfd[n++] = (struct pollfd){.fd = st[k].fd, .events = POLLIN};
        if (poll(pfd, n, 20) < 0 && errno != EINTR)
            break;
        for (nfds_t j = 0; j < n; j++)
            if (pfd[j].revents)
                for (int k = 0; k < 2; k++)
                    if (st[k].fd == pfd[j].fd)
                        stream_read(&st[k], log, out);
        if (!reaped) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid || (r < 0 && errno != EINTR)) {
                reaped = 1;
                /* Whatever the command left behind in its group goes with it. */
                kill(-pid, SIGKILL);
                drain_until = mono_now() + EXT_DRAIN_SECONDS;
                if (r < 0)
                    status = -1;
            }
        }
        if (!reaped && mono_now() > deadline && !*timed_out) {
            *timed_out = 1;
            kill(-pid, SIGKILL);
        }
        if (reaped && mono_now() > drain_until)
            break;
    }
    for (int k = 0; k < 2; k++)
        if (st[k].fd >= 0) {
            if (st[k].len)
                stream_line(&st[k], log, out);
            close(st[k].fd);
        }
    if (status == -1)
        return -1;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

void sts_external_out_free(sts_external_out *out)
{
    sts_buf_free(&out->out);
}

json_t *sts_external_result(const sts_external_out *out)
{
    if (!out->out.data)
        return NULL;
    json_t *doc = json_loads(out->out.data, 0, NULL);
    if (json_is_array(json_object_get(doc, "results")))
        return doc;
    json_decref(doc);
    return NULL;
}
