/*
 * test_runner.c - runner/runner and runner/external: the external sender's command
 * line (substitution and shell quoting: a table, and a round trip through /bin/sh),
 * running it (exit status, signal, time limit) and reading its output; finding
 * scenario files in folders, --filter and --exclude, and bad files (through `run
 * --list`); and replays of a tiny scenario, in-process and with an external sender
 * (every placeholder's value, the time limit), checked through the console output,
 * the JUnit XML and the JSON report.
 */
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "runner/external.h"
#include "runner/features.h"
#include "runner/runner.h"
#include "tests/unit/unit_fixture.h"

/* ---- a scratch folder per test ---- */

static char dir[64];

static int setup(void **state)
{
    (void)state;
    return fixture_dir_new(dir, sizeof(dir), "runner");
}

static int teardown(void **state)
{
    (void)state;
    return fixture_dir_remove(dir);
}

/* dir/rel (made with its folders) holding text. */
static void put_file(const char *rel, const char *text)
{
    char path[512], cmd[600];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
    assert_int_equal(system(cmd), 0);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static size_t count(const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, what)); p++)
        n++;
    return n;
}

/* ---- the external sender's command line ---- */

/* Placeholders as the runner gives them (runner.c has the real values). */
static const char *const VARS[][2] = {
    {"rcpt", "postmaster@example.test"},
    {"domain", "example.test"},
    {"dns", "127.1.2.53:10053"},
    {"odd", "o'brien@example.test"},
    {"empty", ""},
    {"ststest_flags", "--require-tls --mode enforce --now 1700000000"},
    {NULL, NULL},
};

static void test_command_placeholders(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        const char *tmpl, *want;
    } rows[] = {
        {"no placeholder", "sendmail -t", "sendmail -t"},
        {"empty template", "", ""},
        {"each value one quoted word", "x {rcpt} {domain}",
         "x 'postmaster@example.test' 'example.test'"},
        {"a placeholder inside a word", "--dns={dns}x", "--dns='127.1.2.53:10053'x"},
        {"the same placeholder twice", "{domain}{domain}", "'example.test''example.test'"},
        {"an empty value is still one word", "a {empty} b", "a '' b"},
        {"a quote inside a value", "{odd}", "'o'\\''brien@example.test'"},
        {"ststest flags as words, unquoted", "ststest send {ststest_flags} {rcpt}",
         "ststest send --require-tls --mode enforce --now 1700000000 'postmaster@example.test'"},
        {"unknown and unfinished placeholders stay", "{rcpts} {RCPT} {rcpt {} { x}",
         "{rcpts} {RCPT} {rcpt {} { x}"},
        {"braces around a placeholder", "{{domain}}", "{'example.test'}"},
        {"the template's own shell text is the user's", "$(echo {domain}) | tee",
         "$(echo 'example.test') | tee"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        print_message("row: %s\n", rows[i].what);
        char *cmd = sts_external_command(rows[i].tmpl, VARS);
        assert_non_null(cmd);
        assert_string_equal(cmd, rows[i].want);
        free(cmd);
    }
}

/* Whatever a value holds, the shell hands the command exactly that one word. */
static void test_command_quoting_round_trip(void **state)
{
    (void)state;
    static const char *const values[] = {
        "postmaster@example.test",
        "two words",
        "it's",
        "$(echo pwned)",
        "`id`",
        "\"double\"",
        "back\\slash",
        "semi;colon && ls",
        "new\nline",
        "*",
        "''",
        "",
    };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        const char *const vars[][2] = {{"rcpt", values[i]}, {NULL, NULL}};
        char *cmd = sts_external_command("printf '[%s]' {rcpt}", vars);
        assert_non_null(cmd);
        int timed_out = 1;
        sts_external_out out;
        assert_int_equal(sts_external_run(cmd, 10, NULL, &out, &timed_out), 0);
        assert_int_equal(timed_out, 0);
        char want[256];
        snprintf(want, sizeof(want), "[%s]\n", values[i]); /* a last line gets its end */
        assert_string_equal(out.out.data, want);
        sts_external_out_free(&out);
        free(cmd);
    }
}

/* ---- running it and reading what it prints ---- */

/* The lines of the log that came from the command's stderr ("external (stderr): X"),
 * as "X\n" each. malloc'd. */
static char *stderr_lines(const char *text)
{
    sts_buf b;
    sts_buf_init(&b, 0);
    sts_buf_append(&b, "", 0);
    for (const char *p = text; (p = strstr(p, "external (stderr): "));) {
        p += strlen("external (stderr): ");
        size_t n = strcspn(p, "\n");
        sts_buf_appendf(&b, "%.*s\n", (int)n, p);
        p += n;
    }
    return b.data;
}

static void test_external_run(void **state)
{
    (void)state;
    static const struct {
        const char *cmd;
        double limit;
        int status, timed_out;
        const char *out, *err, *last_err;
    } rows[] = {
        {"echo hello; echo oops >&2", 10, 0, 0, "hello\n", "oops\n", "oops"},
        {"exit 75", 10, 75, 0, "", "", ""},
        {"read x; echo \"[$x]\"", 10, 0, 0, "[]\n", "", ""}, /* stdin is /dev/null */
        {"kill -TERM $$", 10, 128 + 15, 0, "", "", ""},
        {"echo started; exec sleep 30", 0.3, 128 + 9, 1, "started\n", "", ""},
        {"no-such-command-here", 10, 127, 0, "", NULL, NULL},
        /* the last non-empty stderr line is kept (the reason of an exit 76) */
        {"echo a >&2; echo 'no require-tls' >&2; echo >&2; exit 76", 10, 76, 0, "",
         "a\nno require-tls\n\n", "no require-tls"},
        /* a last line without its newline still counts */
        {"printf 'x\\ny' ; printf 'half' >&2", 10, 0, 0, "x\ny\n", "half\n", "half"},
        /* a child left behind holding the pipes does not keep the run alive */
        {"(sleep 30 &) ; echo done", 10, 0, 0, "done\n", "", ""},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        print_message("row: %s\n", rows[i].cmd);
        int timed_out = -1;
        sts_external_out out;
        sts_log *log = sts_log_new_mem(STS_LOG_INFO, NULL);
        assert_int_equal(sts_external_run(rows[i].cmd, rows[i].limit, log, &out, &timed_out),
                         rows[i].status);
        assert_int_equal(timed_out, rows[i].timed_out);
        assert_string_equal(out.out.data ? out.out.data : "", rows[i].out);
        char *e = stderr_lines(sts_log_text(log));
        if (rows[i].err) {
            assert_string_equal(e, rows[i].err);
            assert_string_equal(out.last_err, rows[i].last_err);
        } else {
            assert_true(strlen(e) > 0); /* the shell says what it could not find */
        }
        free(e);
        sts_external_out_free(&out);
        sts_log_free(log);
    }
}

/* Each line is logged when it arrives, stamped on the log's clock: a line printed
 * before a pause is stamped before it, the one after, after it. */
static void test_external_stamped(void **state)
{
    (void)state;
    sts_log *log = sts_log_new_mem(STS_LOG_INFO, NULL);
    sts_external_out out;
    int timed_out = 0;
    assert_int_equal(
        sts_external_run("echo first >&2; sleep 0.5; echo second", 10, log, &out, &timed_out), 0);
    const char *text = sts_log_text(log);
    const char *a = strstr(text, "external (stderr): first"), *b = strstr(text, "external: second");
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a < b);
    /* "[SSS.mmm] external...": the stamps are half a second apart */
    const char *la = a, *lb = b;
    while (la > text && la[-1] != '\n')
        la--;
    while (lb > text && lb[-1] != '\n')
        lb--;
    assert_true(*la == '[' && *lb == '[');
    double sa = strtod(la + 1, NULL), sb = strtod(lb + 1, NULL);
    assert_true(sb - sa >= 0.4);
    sts_external_out_free(&out);
    sts_log_free(log);
}

static void test_external_result(void **state)
{
    (void)state;
    static const struct {
        const char *cmd;
        int result; /* stdout is taken as the result */
    } rows[] = {
        {"echo '{\"results\": [{\"outcome\": \"delivered\"}]}'; echo 'MX mail' >&2", 1},
        {"echo '{\"results\": {}}'", 0},
        {"echo '{\"other\": 1}'", 0},
        {"echo '250 ok'; echo bye", 0},
        {"true", 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        sts_external_out out;
        int timed_out = 0;
        assert_int_equal(sts_external_run(rows[i].cmd, 10, NULL, &out, &timed_out), 0);
        json_t *result = sts_external_result(&out);
        assert_int_equal(result != NULL, rows[i].result);
        json_decref(result);
        sts_external_out_free(&out);
    }
}

/* ---- finding scenarios: run --list ---- */

/* A scenario whose only MX offers no STARTTLS: under enforce a correct sender defers
 * and sends nothing; under testing it delivers in the clear. */
static void put_scenario(const char *rel, const char *name, const char *expect_testing)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "name: %s\n"
             "about: A tiny scenario of the runner's unit test.\n"
             "refs: [RFC 8461 5]\n"
             "domain: example.test\n"
             "dns: |\n"
             "  @          MX   10 mail\n"
             "  _mta-sts   TXT  \"v=STSv1; id=20240101T000000;\"\n"
             "policy:\n"
             "  mode: ${mode}\n"
             "  mx: [mail.example.test]\n"
             "  max_age: 86400\n"
             "mx:\n"
             "  mail.example.test:\n"
             "    starttls: false\n"
             "modes: [enforce, testing]\n"
             "expect:\n"
             "  enforce: {outcome: deferred, exit: 75, received: 0}\n"
             "  testing: %s\n",
             name, expect_testing);
    put_file(rel, text);
}

#define TESTING_OK "{outcome: delivered, exit: 0, tls: none, received: 1}"

/* sts_runner_run over paths with opts; returns its status, *out gets the console. */
static int run(const char *const *rel, size_t n, sts_run_opts *opts, char **out)
{
    char *paths[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        assert_true(asprintf(&paths[i], "%s/%s", dir, rel[i]) > 0);
    }
    size_t len = 0;
    *out = NULL;
    opts->out = open_memstream(out, &len);
    assert_non_null(opts->out);
    if (!opts->jobs)
        opts->jobs = 2;
    int status = sts_runner_run(paths, n, opts);
    assert_int_equal(fclose(opts->out), 0);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    return status;
}

/* The scenario names in a --list output, in order, each followed by ';'. */
static void listed_names(const char *out, char *names, size_t len)
{
    names[0] = '\0';
    for (const char *p = out; *p;) {
        size_t n = strcspn(p, "\n");
        if (*p != ' ') {
            size_t w = strcspn(p, " ");
            snprintf(names + strlen(names), len - strlen(names), "%.*s;", (int)w, p);
        }
        p += n + (p[n] ? 1 : 0);
    }
}

static void make_tree(void)
{
    put_scenario("tree/b.yaml", "b-scn", TESTING_OK);
    put_scenario("tree/a.yml", "a-scn", TESTING_OK);
    put_scenario("tree/sub/c.yaml", "c-scn", TESTING_OK);
    put_scenario("tree/sub/deeper/x.yaml", "x-scn", TESTING_OK);
    put_scenario("tree/.hidden.yaml", "hidden-scn", TESTING_OK);
    put_file("tree/notes.txt", "not a scenario\n");
    put_file("tree/sub/README.md", "# not a scenario\n");
    put_scenario("single.yaml", "single-scn", TESTING_OK);
}

static void test_list_discovery(void **state)
{
    (void)state;
    make_tree();
    static const char *const none[1] = {NULL};
    static const char *const ex_b[] = {"b*"};
    static const char *const ex_two[] = {"x-*", "[ab]-scn"};
    static const struct {
        const char *what;
        const char *paths[3];
        const char *filter;
        const char *const *exclude;
        size_t nexclude;
        const char *names;
    } rows[] = {
        {"a folder: *.yaml and *.yml below it, sorted, hidden files left out",
         {"tree"},
         NULL,
         none,
         0,
         "a-scn;b-scn;c-scn;x-scn;"},
        {"a file and a folder, in the order given",
         {"single.yaml", "tree/sub"},
         NULL,
         none,
         0,
         "single-scn;c-scn;x-scn;"},
        {"a trailing slash", {"tree/sub/"}, NULL, none, 0, "c-scn;x-scn;"},
        {"--filter", {"tree"}, "[bx]-*", none, 0, "b-scn;x-scn;"},
        {"--filter matching nothing", {"tree"}, "nothing", none, 0, ""},
        {"--exclude", {"tree"}, NULL, ex_b, 1, "a-scn;c-scn;x-scn;"},
        {"two --exclude patterns", {"tree"}, NULL, ex_two, 2, "c-scn;"},
        {"--filter and --exclude", {"tree"}, "*-scn", ex_b, 1, "a-scn;c-scn;x-scn;"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        print_message("row: %s\n", rows[i].what);
        size_t n = 0;
        while (n < 3 && rows[i].paths[n])
            n++;
        sts_run_opts o = {.list = 1,
                          .filter = rows[i].filter,
                          .exclude = rows[i].exclude,
                          .nexclude = rows[i].nexclude};
        char *out;
        assert_int_equal(run(rows[i].paths, n, &o, &out), STS_EXIT_OK);
        char names[256];
        listed_names(out, names, sizeof(names));
        assert_string_equal(names, rows[i].names);
        free(out);
    }
}

/* What --list prints of a scenario. */
static void test_list_format(void **state)
{
    (void)state;
    put_scenario("one.yaml", "one-scn", TESTING_OK);
    static const char *const paths[] = {"one.yaml"};
    sts_run_opts o = {.list = 1};
    char *out;
    assert_int_equal(run(paths, 1, &o, &out), STS_EXIT_OK);
    char want[512];
    snprintf(want, sizeof(want),
             "one-scn  (%s/one.yaml)\n  modes: enforce, testing\n  refs: RFC 8461 5\n"
             "  about: A tiny scenario of the runner's unit test.\n",
             dir);
    assert_string_equal(out, want);
    free(out);
}

/* A bad file, a name used twice, a missing path or no scenario at all: exit 65 and
 * nothing listed or run. */
static void test_bad_input(void **state)
{
    (void)state;
    put_scenario("ok/a.yaml", "a-scn", TESTING_OK);
    put_file("bad/broken.yaml", "name: broken\nmodes: [enforce\n");
    put_scenario("bad/good.yaml", "good-scn", TESTING_OK);
    put_scenario("twice/one.yaml", "same-name", TESTING_OK);
    put_scenario("twice/two.yaml", "same-name", TESTING_OK);
    put_file("empty/notes.txt", "nothing here\n");
    static const struct {
        const char *paths[2];
        int list;
        const char *says; /* on stderr */
    } rows[] = {
        {{"bad"}, 1, "bad/broken.yaml:3:1: YAML error"},
        {{"ok", "bad"}, 1, "ststest run: 1 bad scenario file(s); nothing was run\n"},
        {{"twice"}, 1, "twice/two.yaml: scenario name 'same-name' is also used by "},
        {{"nonexistent"}, 1, "nonexistent: No such file or directory\n"},
        {{"empty"}, 1, "ststest run: no scenario files (*.yaml, *.yml) found\n"},
        {{"ok", "bad"}, 0, "ststest run: 1 bad scenario file(s); nothing was run\n"},
    };
    char errfile[256];
    snprintf(errfile, sizeof(errfile), "%s/stderr", dir);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t n = rows[i].paths[1] ? 2 : 1;
        sts_run_opts o = {.list = rows[i].list};
        char *out;
        /* stderr into a file for the run */
        fflush(stderr);
        int saved = dup(2), fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(saved >= 0 && fd >= 0);
        assert_int_equal(dup2(fd, 2), 2);
        close(fd);
        int status = run(rows[i].paths, n, &o, &out);
        fflush(stderr);
        assert_int_equal(dup2(saved, 2), 2);
        close(saved);
        char *err = fixture_slurp(errfile);
        assert_int_equal(status, STS_EXIT_DATAERR);
        assert_string_equal(out, ""); /* nothing listed, nothing run */
        if (!strstr(err, rows[i].says))
            fail_msg("stderr lacks \"%s\":\n%s", rows[i].says, err);
        free(err);
        free(out);
    }
}

/* ---- replaying a tiny scenario ---- */

/* In-process: enforce passes, testing fails on purpose (a wrong expectation); the
 * console, the JUnit XML and the JSON report say so. */
static void test_run_reports(void **state)
{
    (void)state;
    put_scenario("s/tiny.yaml", "tiny",
                 "{outcome: deferred, received: 1, why: 'RFC 8461 5: a made-up rule'}");
    static const char *const paths[] = {"s"};
    char junit[256], json[256];
    snprintf(junit, sizeof(junit), "%s/junit.xml", dir);
    snprintf(json, sizeof(json), "%s/report.json", dir);
    sts_run_opts o = {.junit_file = junit, .json_file = json, .stage_timeout = 5};
    char *out;
    assert_int_equal(run(paths, 1, &o, &out), STS_EXIT_FAILED_CHECK);
    static const char *const console[] = {
        "running 2 case(s) from 1 scenario(s), 2 at a time\n",
        "PASS tiny [enforce] (",
        "FAIL tiny [testing] (",
        /* a delivery the expectation refuses leads, as a security difference */
        "  security differences:\n    outcome: expected deferred, got delivered\n",
        "  why: RFC 8461 5: a made-up rule\n",
        "  actual: {\"outcome\":\"delivered\",\"exit\":0,",
        "  transcript:\n",
        "\nfailed:\n  tiny [testing]  ",
        "\n1 passed, 1 failed (1 scenarios, ",
    };
    for (size_t i = 0; i < sizeof(console) / sizeof(console[0]); i++)
        if (!strstr(out, console[i]))
            fail_msg("console lacks \"%s\":\n%s", console[i], out);
    /* Only the failed case shows its transcript without -v. */
    assert_int_equal(count(out, "  transcript:\n"), 1);
    free(out);

    char *xml = fixture_slurp(junit);
    static const char *const junit_has[] = {
        "<testsuites name=\"ststest\" tests=\"2\" failures=\"1\" errors=\"0\"",
        "<testcase classname=\"tiny\" name=\"enforce\" file=\"",
        "<testcase classname=\"tiny\" name=\"testing\" file=\"",
        "<failure message=\"expectation not met: security 1\" type=\"security\">security:\n"
        "  outcome: expected deferred, got delivered (why: RFC 8461 5: a made-up rule)\n",
        "<system-out>",
    };
    for (size_t i = 0; i < sizeof(junit_has) / sizeof(junit_has[0]); i++)
        if (!strstr(xml, junit_has[i]))
            fail_msg("JUnit XML lacks \"%s\":\n%s", junit_has[i], xml);
    free(xml);

    json_error_t je;
    json_t *doc = json_load_file(json, 0, &je);
    if (!doc)
        fail_msg("%s: %s", json, je.text);
    assert_int_equal(json_integer_value(json_object_get(doc, "passed")), 1);
    assert_int_equal(json_integer_value(json_object_get(doc, "failed")), 1);
    json_t *cases = json_object_get(doc, "cases");
    assert_int_equal(json_array_size(cases), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *c = json_array_get(cases, i);
        const char *mode = json_string_value(json_object_get(c, "mode"));
        int enforce = !strcmp(mode, "enforce");
        assert_string_equal(json_string_value(json_object_get(c, "scenario")), "tiny");
        assert_int_equal(json_is_true(json_object_get(c, "passed")), enforce);
        assert_int_equal(json_integer_value(json_object_get(c, "exit")), enforce ? 75 : 0);
        assert_true(json_is_null(json_object_get(c, "error")));
        json_t *actual = json_object_get(c, "actual");
        assert_string_equal(json_string_value(json_object_get(actual, "outcome")),
                            enforce ? "deferred" : "delivered");
        assert_int_equal(json_integer_value(json_object_get(actual, "received")), enforce ? 0 : 1);
        json_t *diff = json_object_get(c, "differences");
        assert_int_equal(json_array_size(diff), enforce ? 0 : 1);
        if (!enforce)
            assert_string_equal(json_string_value(json_array_get(diff, 0)),
                                "outcome: expected deferred, got delivered");
        json_t *classified = json_object_get(c, "classified");
        assert_int_equal(json_array_size(classified), enforce ? 0 : 1);
        if (!enforce) {
            json_t *d = json_array_get(classified, 0);
            assert_string_equal(json_string_value(json_object_get(d, "text")),
                                "outcome: expected deferred, got delivered");
            assert_string_equal(json_string_value(json_object_get(d, "class")), "security");
            assert_string_equal(json_string_value(json_object_get(d, "why")),
                                "RFC 8461 5: a made-up rule");
        }
    }
    json_decref(doc);
}

/* An external sender that sends nothing and exits 75: deferred, which is right under
 * enforce. Its command line and its output are in the transcript (-v). */
static void test_run_external(void **state)
{
    (void)state;
    put_scenario("s/tiny.yaml", "tiny", TESTING_OK);
    static const char *const paths[] = {"s"};
    sts_run_opts o = {
        .filter = "tiny",
        .verbose = 1,
        .sender_cmd = "printf '%s|%s|%s|%s\\n' {rcpt} {domain} {mode} {require_tls}; "
                      "echo to-stderr >&2; exit 75",
    };
    static const char *const ex[] = {"nothing"};
    o.exclude = ex;
    o.nexclude = 1;
    char *out;
    /* testing expects a delivery, which this sender does not make. */
    assert_int_equal(run(paths, 1, &o, &out), STS_EXIT_FAILED_CHECK);
    static const char *const console[] = {
        "PASS tiny [enforce] (",
        "FAIL tiny [testing] (",
        "] sender: external sender: printf '%s|%s|%s|%s\\n' 'postmaster@example.test' "
        "'example.test' 'enforce' '0'; echo to-stderr >&2; exit 75\n",
        "] sender: external (stderr): to-stderr\n",
        "] sender: external: postmaster@example.test|example.test|enforce|0\n",
        "] sender: external: postmaster@example.test|example.test|testing|0\n",
        "  outcome: expected delivered, got deferred\n",
        "\n1 passed, 1 failed (1 scenarios, ",
    };
    for (size_t i = 0; i < sizeof(console) / sizeof(console[0]); i++)
        if (!strstr(out, console[i]))
            fail_msg("console lacks \"%s\":\n%s", console[i], out);
    free(out);
}

/* A sender command that exits 76 declares the case unsupported, its last stderr line
 * the reason; --sender-features leaves out cases that need a feature it lacks without
 * running them. Neither passes nor fails: the run exits 0, the summary counts them
 * apart, JUnit has <skipped>, JSON an "unsupported" reason. */
static void test_run_unsupported(void **state)
{
    (void)state;
    put_scenario("s/tiny.yaml", "tiny", TESTING_OK);
    put_file("s/rt.yaml", "name: rt\n"
                          "about: Needs --require-tls.\n"
                          "refs: [RFC 8461 5]\n"
                          "domain: example.test\n"
                          "dns: |\n  @ MX 10 mail\n"
                          "sender: {require_tls: true}\n"
                          "expect: {enforce: {outcome: delivered}}\n");
    static const char *const paths[] = {"s"};
    char junit[256], json[256];
    snprintf(junit, sizeof(junit), "%s/junit.xml", dir);
    snprintf(json, sizeof(json), "%s/report.json", dir);
    sts_run_opts o = {
        .junit_file = junit,
        .json_file = json,
        .sender_cmd = "echo trying >&2; echo 'cannot do {mode}' >&2; exit 76",
        .features_set = 1,
        .sender_features = STS_FEATURE_STEPS, /* no require-tls */
    };
    char *out;
    assert_int_equal(run(paths, 1, &o, &out), STS_EXIT_OK);
    static const char *const console[] = {
        "UNSUPPORTED rt [enforce] (",
        "  reason: needs sender feature(s) require-tls, not in --sender-features\n",
        "UNSUPPORTED tiny [testing] (",
        "  reason: the sender command exited 76: cannot do testing\n",
        "\nunsupported:\n",
        "\n0 passed, 0 failed, 3 unsupported (2 scenarios, ",
    };
    for (size_t i = 0; i < sizeof(console) / sizeof(console[0]); i++)
        if (!strstr(out, console[i]))
            fail_msg("console lacks \"%s\":\n%s", console[i], out);
    assert_null(strstr(out, "SECURITY INVARIANT"));
    assert_null(strstr(out, "FAIL "));
    free(out);
    char *xml = fixture_slurp(junit);
    if (!strstr(xml, "failures=\"0\" errors=\"0\" skipped=\"3\"") ||
        !strstr(xml, "<skipped message=\"unsupported: the sender command exited 76: cannot do "
                     "enforce\"/>"))
        fail_msg("JUnit XML: %s", xml);
    free(xml);
    json_t *doc = json_load_file(json, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(doc, "unsupported")), 3);
    assert_int_equal(json_integer_value(json_object_get(doc, "failed")), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "passed")), 0);
    json_t *c0 = json_array_get(json_object_get(doc, "cases"), 0);
    assert_non_null(strstr(json_string_value(json_object_get(c0, "unsupported")), "require-tls"));
    json_decref(doc);

    /* With every feature, the same sender command still declares them unsupported;
     * with ours they run (and pass). */
    o.features_set = 0;
    o.sender_cmd = NULL;
    assert_int_equal(run(paths, 1, &o, &out), STS_EXIT_OK);
    if (!strstr(out, "\n3 passed, 0 failed (2 scenarios, "))
        fail_msg("%s", out);
    free(out);
}

/* Every placeholder, as the runner fills it for the step from the case's world and
 * the scenario's `sender:`. */
static void test_run_external_placeholders(void **state)
{
    (void)state;
    put_file("p.yaml", "name: placeholders\n"
                       "about: Every placeholder of --sender-cmd.\n"
                       "refs: [RFC 8461 5]\n"
                       "domain: example.test\n"
                       "dns: |\n"
                       "  @          MX   10 mail\n"
                       "mx:\n"
                       "  mail.example.test: {}\n"
                       "sender: {require_tls: true, mode: testing, dns_timeout: 2.5, "
                       "rcpt: \"o'brien@example.test\"}\n"
                       "modes: [enforce]\n"
                       "expect:\n"
                       "  enforce: {outcome: deferred, received: 0}\n");
    static const char *const paths[] = {"p.yaml"};
    sts_run_opts o = {
        .verbose = 1,
        .sender_cmd = "echo {rcpt} {domain} {dns} {dns_host} {dns_port} {ca} {smtp_port} "
                      "{https_port} {mode} {require_tls} {sender_mode} {now} {cache} "
                      "{dns_timeout}; echo {ststest_flags}; exit 75",
    };
    char *out;
    assert_int_equal(run(paths, 1, &o, &out), STS_EXIT_OK);
    static const char *const lines[] = {
        "^    \\[[0-9.]+\\] sender: external: o'brien@example\\.test example\\.test "
        "127\\.[0-9]+\\.[0-9]+\\.53:[0-9]+ 127\\.[0-9]+\\.[0-9]+\\.53 [0-9]+ "
        "/tmp/ststest-run-[^ /]+/ca\\.pem [0-9]+ [0-9]+ enforce 1 testing [0-9]{10} "
        "/tmp/ststest-run-[^ /]+/policy-cache\\.sqlite 2\\.5$",
        "^    \\[[0-9.]+\\] sender: external: --require-tls --mode testing --cache "
        "/tmp/ststest-run-[^ /]+/policy-cache\\.sqlite --now [0-9]{10} --dns-timeout 2\\.5$",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        regex_t re;
        assert_int_equal(regcomp(&re, lines[i], REG_EXTENDED | REG_NEWLINE | REG_NOSUB), 0);
        int found = regexec(&re, out, 0, NULL, 0) == 0;
        regfree(&re);
        if (!found)
            fail_msg("no line matches\n%s\nin:\n%s", lines[i], out);
    }
    free(out);
}

/* An external sender that runs over --time-limit: the case is an error, not a fail. */
static void test_run_external_time_limit(void **state)
{
    (void)state;
    put_scenario("s/tiny.yaml", "tiny", TESTING_OK);
    static const char *const paths[] = {"s/tiny.yaml"};
    sts_run_opts o = {.sender_cmd = "exec sleep 30", .time_limit = 1};
    char *out;
    assert_int_equal(run(paths, 1, &o, &out), STS_EXIT_FAILED_CHECK);
    static const char *const console[] = {
        "ERROR tiny [enforce] (",
        "ERROR tiny [testing] (",
        "  error: the sender command ran over the time limit of 1 s\n",
        "\n0 passed, 2 failed (1 scenarios, ",
    };
    for (size_t i = 0; i < sizeof(console) / sizeof(console[0]); i++)
        if (!strstr(out, console[i]))
            fail_msg("console lacks \"%s\":\n%s", console[i], out);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_command_placeholders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_quoting_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_external_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_external_stamped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_external_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_discovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_reports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_external, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_unsupported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_external_placeholders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_external_time_limit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
