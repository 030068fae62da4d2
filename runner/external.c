/*
 * external.c - the external sender of `ststest run --sender-cmd` (see external.h):
 * placeholders, running the command under a time limit, reading what it printed.
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
#include "common/vocab.h"

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

/* tmpl with its placeholders replaced by vars ({name, value} pairs, ending in a NULL
 * name). */
static char *expand(const char *tmpl, const char *const vars[][2])
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

char *sts_external_command(const char *tmpl, const sts_external_step *step)
{
    const sts_sender_opts *so = step->so;
    char port_s[3][16], now_s[32], cache_path[4096];
    const char *dns = so->dns ? so->dns : "";
    const char *colon = strrchr(dns, ':');
    char dns_host[256];
    snprintf(dns_host, sizeof(dns_host), "%.*s", (int)(colon ? colon - dns : 0), dns);
    snprintf(port_s[0], sizeof(port_s[0]), "%s", colon ? colon + 1 : "");
    snprintf(port_s[1], sizeof(port_s[1]), "%d", so->smtp_port);
    snprintf(port_s[2], sizeof(port_s[2]), "%d", so->https_port);
    snprintf(now_s, sizeof(now_s), "%lld", (long long)so->now);
    snprintf(cache_path, sizeof(cache_path), "%s", so->cache_file ? so->cache_file : "");
    /* {dns_timeout}: the scenario's, else our sender's default, in seconds. */
    char dns_timeout_s[32];
    snprintf(dns_timeout_s, sizeof(dns_timeout_s), "%g",
             so->dns_timeout > 0 ? so->dns_timeout : STS_SENDER_DNS_TIMEOUT);
    /* ststest options for the scenario's `sender:` and the case's own policy cache
     * and clock (the cache path is the runner's: no shell metacharacters). */
    char flags[4300];
    snprintf(flags, sizeof(flags), "%s%s%s --cache %s --now %lld%s%s",
             so->require_tls ? "--require-tls" : "", step->mode_set ? " --mode " : "",
             step->mode_set ? sts_mode_name(so->mode) : "", cache_path, (long long)so->now,
             so->dns_timeout > 0 ? " --dns-timeout " : "",
             so->dns_timeout > 0 ? dns_timeout_s : "");
    const char *const vars[][2] = {
        {"require_tls", so->require_tls ? "1" : "0"},
        {"sender_mode", sts_mode_name(so->mode)},
        {"ststest_flags", flags},
        {"rcpt", step->rcpt},
        {"domain", step->domain},
        {"dns", dns},
        {"dns_host", dns_host},
        {"dns_port", port_s[0]},
        {"ca", so->ca_file},
        {"smtp_port", port_s[1]},
        {"https_port", port_s[2]},
        {"mode", step->mode},
        {"now", now_s},
        {"cache", cache_path},
        {"dns_timeout", dns_timeout_s},
        {NULL, NULL},
    };
    return expand(tmpl, vars);
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
