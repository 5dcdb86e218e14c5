/* test_config.c - configuration parsing and validation: every kind of error
 * is reported with its JSON path and line:column, all of them at once. */
#include <check.h>

#include "testutil.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "reload.h"
#include "util.h"

static struct config *parse(const char *json, struct config_errors *e)
{
    memset(e, 0, sizeof *e);
    return config_parse(json, strlen(json), "test.json", e);
}

/* Asserts json is rejected and the error text contains every needle. */
static void expect_errors(const char *json, size_t count, const char *const *needles)
{
    struct config_errors e;
    struct config *c = parse(json, &e);
    ck_assert_ptr_null(c);
    ck_assert_msg(e.count == count, "expected %zu errors, got %zu:\n%s", count, e.count, e.text.p);
    for (const char *const *n = needles; *n; n++)
        ck_assert_msg(strstr(e.text.p, *n) != NULL, "missing \"%s\" in:\n%s", *n, e.text.p);
    config_errors_free(&e);
}

START_TEST(full_valid)
{
    setenv("RP_TEST_PW", "s3cret", 1);
    /* a fresh file of our own (O_EXCL), named by the process id */
    char pwfile[64];
    snprintf(pwfile, sizeof pwfile, "/tmp/rp-pw-%ld", (long)getpid());
    unlink(pwfile);
    int fd = open(pwfile, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert(fd >= 0);
    ck_assert(write(fd, "filepass\n", 9) == 9);
    close(fd);
    char json[2048];
    snprintf(json, sizeof json,
             "{\"listen\": \"[::1]:9999\", \"log_level\": \"debug\",\n"
             " \"http\": {\"max_connections\": 10, \"max_connections_per_ip\": 2, \"idle_timeout\": \"5s\",\n"
             "          \"connection_memory_limit\": 32768, \"threads\": 3, \"request_timeout\": \"2s\"},\n"
             " \"defaults\": {\"interval\": \"2s\", \"timeout\": \"500ms\", \"labels\": {\"env\": \"prod\", \"team\": \"a\"}},\n"
             " \"instances\": [\n"
             "  {\"name\": \"a\", \"address\": \"redis://app@10.0.0.1:7000/3\", \"password_env\": \"RP_TEST_PW\"},\n"
             "  {\"name\": \"b\", \"address\": \"unix:///run/redis.sock\", \"password_file\": \"%s\",\n"
             "   \"labels\": {\"team\": \"b\", \"namespace\": \"x\"}, \"interval\": \"10s\", \"max_reply_bytes\": 2097152},\n"
             "  {\"name\": \"c\", \"address\": \"rediss://cache.example:6380\", \"tls\": {\"insecure_skip_verify\": true, \"server_name\": \"cache\"}},\n"
             "  {\"name\": \"d\", \"address\": \"[::1]:6379\", \"username\": \"u\"}\n"
             " ]}\n",
             pwfile);
    struct config_errors e;
    struct config *c = parse(json, &e);
    ck_assert_msg(c != NULL, "%s", e.text.p);
    ck_assert_uint_eq(e.count, 0);
    ck_assert_str_eq(c->http.listen, "[::1]:9999");
    ck_assert_uint_eq(c->http.max_connections, 10);
    ck_assert_uint_eq(c->http.threads, 3);
    ck_assert_uint_eq(c->http.idle_timeout_ms, 5000);
    ck_assert_uint_eq(c->http.request_timeout_ms, 2000);
    ck_assert_str_eq(c->log_level, "debug");
    ck_assert_uint_eq(c->n_instances, 4);
    const struct instance_cfg *a = &c->instances[0], *b = &c->instances[1], *cc = &c->instances[2],
                              *d = &c->instances[3];
    ck_assert_str_eq(a->host, "10.0.0.1");
    ck_assert_uint_eq(a->port, 7000);
    ck_assert_int_eq(a->db, 3);
    ck_assert_str_eq(a->username, "app");
    ck_assert_str_eq(a->password, "s3cret");
    ck_assert_str_eq(a->address, "redis://10.0.0.1:7000/3"); /* no user, no secret */
    ck_assert_uint_eq(a->interval_ms, 2000);
    ck_assert_uint_eq(a->timeout_ms, 500);
    ck_assert_uint_eq(a->n_labels, 2);
    ck_assert_int_eq(b->kind, ADDR_UNIX);
    ck_assert_str_eq(b->path, "/run/redis.sock");
    ck_assert_str_eq(b->password, "filepass");
    ck_assert_uint_eq(b->interval_ms, 10000);
    ck_assert_uint_eq(b->max_reply_bytes, 2097152);
    ck_assert_uint_eq(b->n_labels, 3);
    ck_assert_str_eq(b->labels[1].name, "team");
    ck_assert_str_eq(b->labels[1].value, "b"); /* instance overrides defaults */
    ck_assert(cc->tls.enabled && cc->tls.insecure_skip_verify);
    ck_assert_str_eq(cc->tls.server_name, "cache");
    ck_assert_uint_eq(cc->port, 6380);
    ck_assert_str_eq(d->host, "::1");
    ck_assert_str_eq(d->address, "redis://[::1]:6379");
    ck_assert_ptr_null(d->password);
    config_free(c);
    unlink(pwfile);
}
END_TEST

START_TEST(issue_example_location)
{
    const char *json = "{\n"
                       "  \"instances\": [\n"
                       "    {\n"
                       "      \"name\": \"one\",\n"
                       "      \"address\": \"redis://127.0.0.1:6379\"\n"
                       "    },\n"
                       "    {\n"
                       "      \"name\": \"two\",\n"
                       "      \"address\": \"127.0.0.1:6380\"\n"
                       "    },\n"
                       "    {\n"
                       "      \"name\": \"three\",\n"
                       "      \"interval\": \"5s\",\n"
                       "      \"address\": \"http://127.0.0.1:6381\"\n"
                       "    }\n"
                       "  ]\n"
                       "}\n";
    const char *n[] = {"instances[2].address (line 14, column 18): unknown scheme \"http\"", NULL};
    expect_errors(json, 1, n);
}
END_TEST

START_TEST(http_listen_located)
{
    /* a bad http.listen is named and located as given (it was reported as
     * "listen", without a position) */
    const char *json = "{\"http\": {\"listen\": \"nope\"},\n"
                       " \"instances\": [{\"name\": \"a\", \"address\": \"h:1\"}]}\n";
    const char *n[] = {"http.listen (line 1, column 21): expected host:port", NULL};
    expect_errors(json, 1, n);
}
END_TEST

START_TEST(all_errors_reported)
{
    const char *json = "{\"listen\": \"nope\", \"bogus\": 1,\n"
                       " \"http\": {\"threads\": 0, \"colour\": \"red\"},\n"
                       " \"defaults\": {\"interval\": \"10\", \"name\": \"x\"},\n"
                       " \"instances\": [\n"
                       "  {\"name\": \"a\", \"address\": \"redis://h:99999\", \"timeout\": 5},\n"
                       "  {\"name\": \"a\", \"address\": \"h:1\", \"labels\": {\"9bad\": \"v\", \"instance\": \"i\", \"ok\": 3}},\n"
                       "  {\"address\": \"redis://h\", \"tls\": {\"ca_file\": \"/x\"}, \"passwrd\": \"p\"},\n"
                       "  {\"name\": \"b c\", \"address\": \"h:1\", \"interval\": \"1s\", \"timeout\": \"2s\", \"password_env\": \"RP_UNSET_VAR\", \"password\": \"x\"},\n"
                       "  {\"name\": \"e\", \"address\": \"h\", \"password_file\": \"/nonexistent/pw\"},\n"
                       "  {\"name\": \"f\", \"address\": \"redis://:pw@h\"},\n"
                       "  7\n"
                       " ]}\n";
    const char *n[] = {
        "listen (line 1, column 12): expected host:port",
        "bogus (line 1, column 20): unknown key \"bogus\"",
        "http.threads (line 2, column 22): too small: 0 (at least 1)",
        "http.colour (line 2, column 25): unknown key \"colour\"",
        "defaults.interval (line 3, column 27): bad duration \"10\"",
        "defaults.name (line 3, column 33): unknown key \"name\" (only valid in an instance)",
        "instances[0].address (line 5, column 28): invalid port \"99999\"",
        "instances[0].timeout (line 5, column 58): expected a duration string",
        "instances[1].labels.9bad (line 6, column 46): invalid label name \"9bad\"",
        "instances[1].labels.instance (line 6, column 59): label name \"instance\" is reserved",
        "instances[1].labels.ok (line 6, column 82): label value must be a string, got a number",
        "instances[1].name (line 6, column 12): duplicate instance name \"a\" (also instances[0])",
        "instances[2].passwrd (line 7, column 54): unknown key \"passwrd\"",
        "instances[2] (line 7, column 3): missing required key \"name\"",
        "instances[2] (line 7, column 28): tls settings given but the address is not rediss://",
        "instances[3].name (line 8, column 12): invalid name \"b c\"",
        "instances[3] (line 8, column 3): timeout (2000ms) must be shorter than interval (1000ms)",
        "instances[3] (line 8, column 3): give at most one of password_file, password_env and password",
        "instances[4].address (line 9, column 28): missing port",
        "instances[4] (line 9, column 50): cannot read password file \"/nonexistent/pw\"",
        "instances[5].address (line 10, column 28): passwords are not accepted in the address",
        "instances[6] (line 11, column 3): expected an object, got a number",
        NULL};
    unsetenv("RP_UNSET_VAR");
    expect_errors(json, 22, n);
}
END_TEST

/* A duplicate name is located at the repeat, by its place in the list,
 * also when an element before it is not an instance at all (the place was
 * once the instance's index among the objects: the wrong element). */
START_TEST(duplicate_names_located)
{
    const char *json = "{\"instances\": [1,\n"
                       " {\"name\": \"a\", \"address\": \"127.0.0.1:1\"},\n"
                       " {\"name\": \"b\", \"address\": \"127.0.0.1:2\"},\n"
                       " {\"name\": \"a\", \"address\": \"127.0.0.1:3\"},\n"
                       " {\"name\": \"a\", \"address\": \"127.0.0.1:4\"}]}";
    const char *n[] = {"instances[0] (line 1, column 16): expected an object, got a number",
                       "instances[3].name (line 4, column 11): duplicate instance name \"a\" (also instances[1])",
                       "instances[4].name (line 5, column 11): duplicate instance name \"a\" (also instances[3])", NULL};
    expect_errors(json, 3, n);
}
END_TEST

START_TEST(syntax_errors)
{
    const char *n1[] = {"test.json (line 2, column 16): invalid JSON", NULL};
    expect_errors("{\"instances\": [\n  {\"name\": \"a\"}\n", 1, n1);
    const char *n2[] = {"unexpected text after the JSON document", NULL};
    expect_errors("{\"instances\": []} x", 1, n2);
    const char *n3[] = {"the configuration must be a JSON object", NULL};
    expect_errors("[1]", 1, n3);
    const char *n4[] = {"instances (line 1, column 15): the list is empty", NULL};
    expect_errors("{\"instances\": []}", 1, n4);
    const char *n5[] = {"instances (line 1, column 1): missing required key \"instances\"", NULL};
    expect_errors("{}", 1, n5);
    const char *n6[] = {"instances[0].name (line 1, column 30): duplicate key \"name\"", NULL};
    expect_errors("{\"instances\": [{\"name\": \"a\", \"name\": \"b\", \"address\": \"h:1\"}]}", 1, n6);
    const char *n7[] = {"log_level (line 1, column 15): unknown level \"loud\"", NULL};
    expect_errors("{\"log_level\": \"loud\", \"instances\": [{\"name\": \"a\", \"address\": \"h:1\"}]}", 1, n7);
    const char *n8[] = {"invalid JSON", NULL};
    expect_errors("", 1, n8);
}
END_TEST

START_TEST(addresses)
{
    struct {
        const char *addr;
        int ok;
        const char *why;
    } cases[] = {
        {"redis://localhost", 1, NULL},
        {"rediss://[2001:db8::1]:6380/2", 1, NULL},
        {"host.example:6379", 1, NULL},
        {"unix:///var/run/redis.sock", 1, NULL},
        {"unix://relative.sock", 0, "must be absolute"},
        {"http://h:1", 0, "unknown scheme \"http\""},
        {"h:0", 0, "invalid port"},
        {"h:abc", 0, "invalid port"},
        {"::1:6379", 0, "brackets"},
        {"redis://:6379", 0, "missing host"},
        {"redis://h/x", 0, "invalid database"},
        {"user@h:1", 0, "only valid in a redis://"},
        {"redis://h o:1", 0, "invalid character ' '"},
        {"[::1", 0, "unterminated"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct instance_cfg cfg;
        memset(&cfg, 0, sizeof cfg);
        struct buf why = BUF_INIT;
        int r = config_parse_address(cases[i].addr, &cfg, &why);
        ck_assert_msg((r == 0) == cases[i].ok, "%s: %s", cases[i].addr, why.p ? why.p : "");
        if (!cases[i].ok)
            ck_assert_msg(strstr(why.p, cases[i].why) != NULL, "%s: %s", cases[i].addr, why.p);
        free(cfg.host);
        free(cfg.path);
        free(cfg.username);
        buf_free(&why);
    }
    struct instance_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    struct buf why = BUF_INIT;
    ck_assert_int_eq(config_parse_address("rediss://[2001:db8::1]:6380/2", &cfg, &why), 0);
    ck_assert_str_eq(cfg.host, "2001:db8::1");
    ck_assert_uint_eq(cfg.port, 6380);
    ck_assert_int_eq(cfg.db, 2);
    ck_assert(cfg.tls.enabled);
    free(cfg.host);
}
END_TEST

START_TEST(defaults_and_file)
{
    struct config *c = config_default();
    ck_assert_uint_eq(c->n_instances, 1);
    ck_assert_str_eq(c->instances[0].host, "127.0.0.1");
    ck_assert_uint_eq(c->instances[0].port, 6379);
    ck_assert_str_eq(c->http.listen, REDPULSE_DEFAULT_LISTEN);
    ck_assert_uint_lt(c->instances[0].timeout_ms, c->instances[0].interval_ms);
    ck_assert_uint_eq(c->instances[0].latencystats_interval_ms, 60000);
    ck_assert_uint_eq(c->instances[0].commandstats_interval_ms, 5000);
    config_free(c);
    /* latencystats_interval, commandstats_interval: "0s" means with every
     * poll; below a second is refused */
    struct config_errors e0;
    c = parse("{\"instances\": [{\"name\": \"a\", \"address\": \"h:1\", \"latencystats_interval\": \"0s\", "
              "\"commandstats_interval\": \"0s\"},\n"
              "{\"name\": \"b\", \"address\": \"h:2\", \"latencystats_interval\": \"5m\", \"commandstats_interval\": \"15s\"}]}",
              &e0);
    ck_assert_msg(c != NULL, "%s", e0.text.p);
    ck_assert_uint_eq(c->instances[0].latencystats_interval_ms, 0);
    ck_assert_uint_eq(c->instances[1].latencystats_interval_ms, 300000);
    ck_assert_uint_eq(c->instances[0].commandstats_interval_ms, 0);
    ck_assert_uint_eq(c->instances[1].commandstats_interval_ms, 15000);
    config_free(c);
    config_errors_free(&e0);
    const char *const n[] = {"instances[0].latencystats_interval (line 1, column", "\"0s\" asks with every poll", NULL};
    expect_errors("{\"instances\": [{\"name\": \"a\", \"address\": \"h:1\", \"latencystats_interval\": \"500ms\"}]}", 1, n);
    const char *const n2[] = {"defaults.commandstats_interval (line 1, column", "\"0s\" asks with every poll", NULL};
    expect_errors("{\"defaults\": {\"commandstats_interval\": \"999ms\"}, \"instances\": [{\"name\": \"a\", \"address\": \"h:1\"}]}",
                  1, n2);
    struct config_errors e = {BUF_INIT, 0};
    ck_assert_ptr_null(config_load("/nonexistent/redpulse.json", &e));
    ck_assert_ptr_nonnull(strstr(e.text.p, "/nonexistent/redpulse.json: cannot open"));
    config_errors_free(&e);
}
END_TEST

/* A configuration whose "defaults" have n_def labels d0... and whose one
 * instance has d0 again, then n_inst labels i0... (caller frees). */
static char *labels_config(int n_def, int n_inst)
{
    struct buf j = BUF_INIT;
    buf_puts(&j, "{\"defaults\": {\"labels\": {");
    for (int i = 0; i < n_def; i++)
        buf_printf(&j, "%s\"d%d\": \"v\"", i ? ", " : "", i);
    buf_puts(&j, "}},\n \"instances\": [{\"name\": \"a\", \"address\": \"h:1\", \"labels\": {\"d0\": \"again\"");
    for (int i = 0; i < n_inst; i++)
        buf_printf(&j, ", \"i%d\": \"v\"", i);
    buf_puts(&j, "}}]}");
    return buf_steal(&j, NULL);
}

/* Labels an instance may have: 64, those from "defaults" counted in; the
 * first one over is a located error naming the limit, reported once. */
START_TEST(label_limit)
{
    char *json = labels_config(40, 24); /* 64: d0 again is no new one */
    struct config_errors e;
    struct config *c = parse(json, &e);
    ck_assert_msg(c != NULL, "%s", e.text.p);
    ck_assert_uint_eq(c->instances[0].n_labels, 64);
    ck_assert_str_eq(c->instances[0].labels[0].value, "again");
    config_free(c);
    config_errors_free(&e);
    free(json);
    /* two over: one error, at the first of them (i24) */
    json = labels_config(40, 26);
    char want[160];
    snprintf(want, sizeof want, "instances[0].labels.i24 (line 2, column %u): too many labels: at most 64 an instance",
             (unsigned)(strstr(json, "\"i24\"") - strchr(json, '\n')));
    const char *n[] = {want, "those from \"defaults\" included", NULL};
    expect_errors(json, 1, n);
    free(json);
    /* and in "defaults" alone */
    json = labels_config(65, 0);
    const char *n2[] = {"defaults.labels.d64 (line 1, column", "at most 64", NULL};
    expect_errors(json, 1, n2);
    free(json);
}
END_TEST

/* A large file still parses, and a duplicate key is found wherever it is:
 * the last member of 20,000 instances, the last of an object of 20,000
 * keys repeating its first (their checks are n log n now, not n^2; the
 * test asserts results only, never time). */
START_TEST(large_file)
{
    enum { N = 20000 };
    struct buf j = BUF_INIT;
    buf_puts(&j, "{\"instances\": [\n");
    for (int i = 0; i < N; i++)
        buf_printf(&j, "{\"name\": \"i%d\", \"address\": \"h:%d\"}%s\n", i, 1 + i % 60000, i < N - 1 ? "," : "");
    buf_puts(&j, "]}\n");
    struct config_errors e;
    struct config *c = parse(j.p, &e);
    ck_assert_msg(c != NULL, "%.500s", e.text.p);
    ck_assert_uint_eq(c->n_instances, N);
    ck_assert_str_eq(c->instances[N - 1].name, "i19999");
    config_free(c);
    config_errors_free(&e);
    /* the last instance repeats "name" at its end (line N + 1) */
    buf_reset(&j);
    buf_puts(&j, "{\"instances\": [\n");
    for (int i = 0; i < N; i++)
        buf_printf(&j, "{\"name\": \"i%d\", \"address\": \"h:%d\"%s}%s\n", i, 1 + i % 60000,
                   i < N - 1 ? "" : ", \"name\": \"z\"", i < N - 1 ? "," : "");
    buf_puts(&j, "]}\n");
    const char *n[] = {"instances[19999].name (line 20001, column 42): duplicate key \"name\"", NULL};
    expect_errors(j.p, 1, n);
    /* an object of N keys (a labels object, over the label limit too)
     * whose last key repeats its first, and one in the middle repeated */
    buf_reset(&j);
    buf_puts(&j, "{\"instances\": [{\"name\": \"a\", \"address\": \"h:1\", \"labels\": {\n");
    for (int i = 0; i < N; i++)
        buf_printf(&j, "\"k%d\": \"v\",\n", i);
    buf_puts(&j, "\"k10000\": \"v\",\n\"k0\": \"v\"}}]}\n");
    const char *n2[] = {"instances[0].labels.k10000 (line 20002, column 1): duplicate key \"k10000\"",
                        "instances[0].labels.k0 (line 20003, column 1): duplicate key \"k0\"",
                        "instances[0].labels.k64 (line 66, column 1): too many labels", NULL};
    expect_errors(j.p, 3, n2);
    buf_free(&j);
}
END_TEST

/* A scratch directory of this process (caller removes it). */
static void scratch(char *dir, size_t n, const char *what)
{
    snprintf(dir, n, "/tmp/rp-cfg-%s-%ld", what, (long)getpid());
    testutil_remove_dir(dir);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
}

static void write_file(const char *path, const void *p, size_t n, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    ck_assert(fd >= 0);
    ck_assert(write(fd, p, n) == (ssize_t)n);
    close(fd);
}

/* --check-config (config_load) and start/reload (cfg_gen_load) read through
 * one reader: one size limit (16 MiB; the check allowed 64, so a file it
 * passed failed to start) and one wording, strerror included ("read
 * error" alone for a directory). */
START_TEST(one_read_path)
{
    char dir[64], big[96];
    scratch(dir, sizeof dir, "read");
    snprintf(big, sizeof big, "%s/big.json", dir);
    const char head[] = "{\"instances\": [{\"name\": \"a\", \"address\": \"127.0.0.1:6399\"}]";
    size_t n = (17u << 20);
    char *text = xmalloc(n);
    memset(text, ' ', n);
    memcpy(text, head, sizeof head - 1);
    text[n - 1] = '}';
    write_file(big, text, n, 0600);
    free(text);
    const char *paths[] = {big, dir, "/nonexistent/redpulse.json"};
    const char *want[] = {": file larger than 16 MiB\n", ": read error: Is a directory\n",
                          ": cannot open: No such file or directory\n"};
    for (int i = 0; i < 3; i++) {
        struct config_errors e1 = {BUF_INIT, 0}, e2 = {BUF_INIT, 0};
        ck_assert_ptr_null(config_load(paths[i], &e1));
        ck_assert_ptr_null(cfg_gen_load(paths[i], &e2));
        ck_assert_uint_eq(e1.count, 1);
        ck_assert_msg(strstr(e1.text.p, want[i]) && strncmp(e1.text.p, paths[i], strlen(paths[i])) == 0, "%s",
                      e1.text.p);
        ck_assert_str_eq(e1.text.p, e2.text.p);
        config_errors_free(&e1);
        config_errors_free(&e2);
    }
    testutil_remove_dir(dir);
}
END_TEST

/* An error is one clean line whatever the file puts in the values and keys
 * it quotes: a newline in a value made a second, forged line (with no
 * place of its own) in the log and the reload status; ESC and bytes that
 * are not UTF-8 reached the terminal of --check-config and --reload. */
START_TEST(errors_are_clean_lines)
{
    const char *json = "{\"bad\xff\x1b[31mRED\": 1,\n"
                       " \"instances\": [{\"name\": \"a\", \"address\": \"h:1\",\n"
                       "  \"interval\": \"5s\\ninstances[0] (line 1, column 1): forged\\u001b[2J\",\n"
                       "  \"log\\u007f\": 1, \"password_env\": \"X\\r\\nY\"}]}";
    struct config_errors e;
    ck_assert_ptr_null(parse(json, &e));
    ck_assert_msg(e.count == 4, "%s", e.text.p);
    size_t lines = 0;
    for (const char *q = e.text.p; *q; q++) {
        lines += *q == '\n';
        ck_assert_msg(*q == '\n' || ((unsigned char)*q >= 0x20 && *q != 0x7f), "control byte 0x%02x in:\n%s",
                      (unsigned)(unsigned char)*q, e.text.p);
    }
    ck_assert_uint_eq(lines, 4);
    ck_assert(utf8_valid(e.text.p));
    const char *needles[] = {"bad??[31mRED (line 1, column 2): unknown key \"bad? [31mRED\"",
                             "instances[0].interval (line 3, column 15): bad duration \"5s instances[0] (line 1, "
                             "column 1): forged [2J\"",
                             "instances[0].log? (line 4, column 3): unknown key \"log \"",
                             "environment variable \"X  Y\" is not set", NULL};
    for (const char *const *q = needles; *q; q++)
        ck_assert_msg(strstr(e.text.p, *q) != NULL, "missing \"%s\" in:\n%s", *q, e.text.p);
    config_errors_free(&e);
}
END_TEST

/* A number the integer keys refuse says what is wrong with it (each read
 * "expected a whole number, got a number"), and a key whose value was
 * refused is not also "missing". */
START_TEST(number_errors_say_why)
{
    const char *json = "{\"http\": {\"threads\": 65},\n"
                       " \"instances\": [{\"name\": \"a\", \"address\": \"h:1\", \"max_reply_bytes\": -1},\n"
                       "  {\"name\": \"b\", \"address\": \"h:1\", \"max_reply_bytes\": 65536.5},\n"
                       "  {\"name\": \"c\", \"address\": \"h:1\", \"max_reply_bytes\": 1e400},\n"
                       "  {\"name\": \"d\", \"address\": \"h:1\", \"max_reply_bytes\": 9007199254740993},\n"
                       "  {\"name\": 5, \"address\": true}]}";
    const char *n[] = {"http.threads (line 1, column 22): too large: 65 (at most 64)",
                       "instances[0].max_reply_bytes (line 2, column 67): negative (-1): expected a whole number from "
                       "65536 to 67108864",
                       "instances[1].max_reply_bytes (line 3, column 54): not a whole number (65536.5)",
                       "instances[2].max_reply_bytes (line 4, column 54): not a finite number (too large: at most "
                       "67108864)",
                       "instances[3].max_reply_bytes (line 5, column 54): too large: 9007199254740992 (at most 67108864)",
                       "instances[4].name (line 6, column 12): expected a string, got a number",
                       "instances[4].address (line 6, column 26): expected a string, got a boolean", NULL};
    expect_errors(json, 7, n);
}
END_TEST

/* password_file is read whole or refused: a password past 4095 bytes or
 * holding a NUL was cut (a different password: WRONGPASS, with nothing
 * pointing at the file), and a directory was "empty". */
START_TEST(password_file_checked)
{
    char dir[64], path[96], fifo[96], json[512];
    scratch(dir, sizeof dir, "pw");
    size_t n = 5000;
    char *pw = xmalloc(70000);
    memset(pw, 'x', 70000);
    pw[n - 1] = 'y';
    snprintf(path, sizeof path, "%s/pw", dir);
    write_file(path, pw, n, 0600);
    snprintf(json, sizeof json, "{\"instances\": [{\"name\": \"a\", \"address\": \"h:1\", \"password_file\": \"%s\"}]}",
             path);
    struct config_errors e;
    struct config *c = parse(json, &e);
    ck_assert_msg(c != NULL, "%s", e.text.p);
    ck_assert_uint_eq(strlen(c->instances[0].password), n);
    ck_assert_int_eq(c->instances[0].password[n - 1], 'y');
    config_free(c);
    config_errors_free(&e);
    /* 64 KiB is the cap: past it, "too long" */
    write_file(path, pw, 65536, 0600);
    c = parse(json, &e);
    ck_assert_msg(c != NULL, "%s", e.text.p);
    config_free(c);
    config_errors_free(&e);
    write_file(path, pw, 65537, 0600);
    char want[160];
    snprintf(want, sizeof want, "password file \"%s\" is too long (more than 64 KiB)", path);
    const char *n1[] = {"instances[0] (line 1, column 65): ", want, NULL};
    expect_errors(json, 1, n1);
    /* a NUL inside */
    write_file(path, "ab\0cd\n", 6, 0600);
    snprintf(want, sizeof want, "password file \"%s\" contains a NUL byte (at offset 2)", path);
    const char *n2[] = {want, NULL};
    expect_errors(json, 1, n2);
    /* a directory, and a FIFO (refused without waiting for a writer) */
    snprintf(json, sizeof json, "{\"instances\": [{\"name\": \"a\", \"address\": \"h:1\", \"password_file\": \"%s\"}]}",
             dir);
    snprintf(want, sizeof want, "password file \"%s\" is a directory, not a regular file", dir);
    const char *n3[] = {want, NULL};
    expect_errors(json, 1, n3);
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    snprintf(json, sizeof json, "{\"instances\": [{\"name\": \"a\", \"address\": \"h:1\", \"password_file\": \"%s\"}]}",
             fifo);
    snprintf(want, sizeof want, "password file \"%s\" is a FIFO, not a regular file", fifo);
    const char *n4[] = {want, NULL};
    expect_errors(json, 1, n4);
    free(pw);
    testutil_remove_dir(dir);
}
END_TEST

/* Names: 128 characters, counted as characters (a 100-character name of
 * 'é', 200 bytes, was refused); '+' allowed (/scrape?target=a%2Bb reaches
 * it, as Prometheus sends it). */
START_TEST(instance_names)
{
    struct buf j = BUF_INIT;
    buf_puts(&j, "{\"instances\": [{\"name\": \"");
    for (int i = 0; i < 128; i++)
        buf_puts(&j, "\xc3\xa9");
    buf_puts(&j, "\", \"address\": \"h:1\"}]}");
    struct config_errors e;
    struct config *c = parse(j.p, &e);
    ck_assert_msg(c != NULL, "%s", e.text.p);
    ck_assert_uint_eq(strlen(c->instances[0].name), 256);
    config_free(c);
    config_errors_free(&e);
    buf_reset(&j);
    buf_puts(&j, "{\"instances\": [{\"name\": \"");
    for (int i = 0; i < 129; i++)
        buf_puts(&j, "\xc3\xa9");
    buf_puts(&j, "\", \"address\": \"h:1\"},\n {\"name\": \"a#b\", \"address\": \"h:1\"},\n"
                 " {\"name\": \"\", \"address\": \"h:1\"}]}");
    const char *n[] = {"instances[0].name (line 1, column 25): name too long (1 to 128 characters, no spaces, control "
                       "characters or any of / ? & # %)",
                       "instances[1].name (line 2, column 11): invalid name \"a#b\": 1 to 128 characters",
                       "instances[2].name (line 3, column 11): the name is empty", NULL};
    expect_errors(j.p, 3, n);
    buf_free(&j);
    /* '+' stays allowed: names with one worked before (Prometheus sends %2B) */
    ck_assert_int_eq(config_name_check("cache+1"), NAME_OK);
    ck_assert_int_eq(config_name_check("cache-1:6379"), NAME_OK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, full_valid);
    tcase_add_test(tc, issue_example_location);
    tcase_add_test(tc, all_errors_reported);
    tcase_add_test(tc, http_listen_located);
    tcase_add_test(tc, duplicate_names_located);
    tcase_add_test(tc, syntax_errors);
    tcase_add_test(tc, addresses);
    tcase_add_test(tc, defaults_and_file);
    tcase_add_test(tc, label_limit);
    tcase_add_test(tc, large_file);
    tcase_add_test(tc, one_read_path);
    tcase_add_test(tc, errors_are_clean_lines);
    tcase_add_test(tc, number_errors_say_why);
    tcase_add_test(tc, password_file_checked);
    tcase_add_test(tc, instance_names);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
