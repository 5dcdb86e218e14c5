/* test_config.c - configuration parsing and validation: every kind of error
 * is reported with its JSON path and line:column, all of them at once. */
#include <check.h>

#include "testutil.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "config.h"

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
             "          \"connection_memory_limit\": 32768, \"threads\": 3},\n"
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
        "http.threads (line 2, column 22): 0 out of range (1 to 64)",
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
    config_free(c);
    /* latencystats_interval: "0s" means with every poll; below a second is refused */
    struct config_errors e0;
    c = parse("{\"instances\": [{\"name\": \"a\", \"address\": \"h:1\", \"latencystats_interval\": \"0s\"},\n"
              "{\"name\": \"b\", \"address\": \"h:2\", \"latencystats_interval\": \"5m\"}]}", &e0);
    ck_assert_msg(c != NULL, "%s", e0.text.p);
    ck_assert_uint_eq(c->instances[0].latencystats_interval_ms, 0);
    ck_assert_uint_eq(c->instances[1].latencystats_interval_ms, 300000);
    config_free(c);
    config_errors_free(&e0);
    const char *const n[] = {"instances[0].latencystats_interval (line 1, column", "\"0s\" asks with every poll", NULL};
    expect_errors("{\"instances\": [{\"name\": \"a\", \"address\": \"h:1\", \"latencystats_interval\": \"500ms\"}]}", 1, n);
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
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
