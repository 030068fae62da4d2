/*
 * external.c - the external sender of `ststest run --sender-cmd` (see external.h):
 * its command line, running it under a time limit, reading what it printed.
 */
#include "runner/external.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int sts_external_run(const char *cmd, const char *out_path, const char *err_path, double limit,
                     int *timed_out)
{
    *timed_out = 0;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        setpgid(0, 0);
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int efd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || efd < 0 || null < 0)
            _exit(127);
        dup2(null, 0);
        dup2(fd, 1);
        dup2(efd, 2);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    double deadline = mono_now() + limit;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return -1;
        if (mono_now() > deadline && !*timed_out) {
            *timed_out = 1;
            kill(-pid, SIGKILL);
        }
        usleep(20000);
    }
    /* Whatever the command left behind in its group goes with it. */
    kill(-pid, SIGKILL);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

json_t *sts_external_output(const char *out_path, const char *err_path, sts_log *log)
{
    json_t *result = NULL;
    const char *paths[2] = {err_path, out_path};
    for (int k = 0; k < 2; k++) {
        FILE *fp = fopen(paths[k], "r");
        if (!fp)
            continue;
        char line[4096];
        sts_buf all;
        sts_buf_init(&all, 4 << 20);
        while (fgets(line, sizeof(line), fp)) {
            line[strcspn(line, "\n")] = '\0';
            sts_info(log, "external%s: %s", k ? "" : " (stderr)", line);
            sts_buf_appendf(&all, "%s\n", line);
        }
        fclose(fp);
        if (k == 1 && all.data) {
            json_t *doc = json_loads(all.data, 0, NULL);
            if (json_is_array(json_object_get(doc, "results")))
                result = doc;
            else
                json_decref(doc);
        }
        sts_buf_free(&all);
    }
    return result;
}
