/* test_alerts.c - alert rules: the `alerts` section's validation (every
 * error with its place), the built-in set and its overrides, the compiled
 * per-instance plans, figures read from captured INFO, and the state machine
 * driven by a fake clock. */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alerts.h"
#include "alerts_hub.h"
#include "outcome.h"
#include "render.h"
#include "collect.h"
#include "config.h"
#include "derive.h"
#include "info.h"
#include "rules.h"
#include "testutil.h"

static struct config *parse(const char *json, struct config_errors *e)
{
    memset(e, 0, sizeof *e);
    return config_parse(json, strlen(json), "test.json", e);
}

#define INST "\"instances\": [{\"name\": \"cache-1\", \"address\": \"127.0.0.1:6379\", \"labels\": {\"env\": \"prod\"}},\n" \
             "               {\"name\": \"cache-2\", \"address\": \"127.0.0.1:6380\", \"labels\": {\"env\": \"dev\"}}]"

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

static const struct alert_rule *rule_named(const struct alerts_cfg *a, const char *name)
{
    for (size_t i = 0; i < a->n_rules; i++)
        if (strcmp(a->rules[i].name, name) == 0)
            return &a->rules[i];
    return NULL;
}

START_TEST(builtin_set_loads)
{
    struct config_errors e;
    struct config *c = parse("{" INST "}", &e);
    ck_assert_msg(c != NULL, "%s", e.text.p);
    const struct alerts_cfg *a = c->alerts;
    ck_assert_ptr_nonnull(a);
    ck_assert(a->builtin);
    ck_assert_str_eq(a->state_dir, "/var/lib/redpulse");
    ck_assert_uint_ge(a->n_rules, 20);
    ck_assert_uint_eq(a->n_enabled, a->n_rules);
    struct alert_plan pl;
    for (size_t i = 0; i < c->n_instances; i++) {
        alerts_plan_compile(a, &c->instances[i], &pl);
        ck_assert_uint_eq(pl.n, a->n_rules); /* every built-in applies everywhere */
        free(pl.e);
    }
    const struct alert_rule *down = rule_named(a, "RedisDown");
    ck_assert_ptr_nonnull(down);
    ck_assert_int_eq(down->fig.kind, FIG_UP);
    ck_assert_str_eq(down->severity, "critical");
    const struct alert_rule *drop = rule_named(a, "RedisWriteThroughputDrop");
    ck_assert(drop->p.drop_below == 0.5 && drop->p.baseline_s == 3600);
    /* event rules hold through bursts; state rules resolve at once */
    ck_assert(rule_named(a, "RedisAofFsyncDelayed")->p.keep_s == 300);
    ck_assert(rule_named(a, "RedisBgsaveFailed")->p.keep_s == 0);
    config_free(c);
    /* the built-in configuration carries them too */
    c = config_default();
    ck_assert_uint_ge(c->alerts->n_rules, 20);
    config_free(c);
}
END_TEST

START_TEST(overrides_and_plans)
{
    const char *json = "{" INST ",\n"
                       " \"alerts\": {\"state_dir\": \"/tmp/rp\", \"rules\": [\n"
                       "  {\"name\": \"RedisDown\", \"for\": \"2m\", \"severity\": \"page\"},\n"
                       "  {\"name\": \"RedisKeysEvicted\", \"enabled\": false},\n"
                       "  {\"name\": \"RedisMemoryHigh\", \"threshold\": 0.8, \"thresholds\": {\"cache-2\": 0.95}},\n"
                       "  {\"name\": \"Mine\", \"figure\": \"derived.aof.delayed_fsyncs_last_interval\", \"op\": \">=\",\n"
                       "   \"threshold\": 3, \"instance_labels\": {\"env\": \"prod\"}}]}}";
    struct config_errors e;
    struct config *c = parse(json, &e);
    ck_assert_msg(c != NULL, "%s", e.text.p);
    const struct alerts_cfg *a = c->alerts;
    const struct alert_rule *down = rule_named(a, "RedisDown");
    ck_assert(down->p.for_s == 120);
    ck_assert_str_eq(down->severity, "page");
    ck_assert_int_eq(down->fig.kind, FIG_UP); /* kept from the built-in */
    ck_assert(!rule_named(a, "RedisKeysEvicted")->enabled);
    ck_assert_uint_eq(a->n_enabled, a->n_rules - 1);
    /* cache-1: every enabled rule including Mine; cache-2: not Mine */
    struct alert_plan pl[2];
    for (int i = 0; i < 2; i++)
        alerts_plan_compile(a, &c->instances[i], &pl[i]);
    ck_assert_uint_eq(pl[0].n, a->n_enabled);
    ck_assert_uint_eq(pl[1].n, a->n_enabled - 1);
    uint32_t mem = (uint32_t)(rule_named(a, "RedisMemoryHigh") - a->rules);
    for (int i = 0; i < 2; i++) {
        for (size_t k = 0; k < pl[i].n; k++)
            if (pl[i].e[k].rule == mem)
                ck_assert(pl[i].e[k].threshold == (i == 0 ? 0.8 : 0.95));
        free(pl[i].e);
    }
    config_free(c);
    /* builtin: false leaves only the configured rules */
    c = parse("{" INST ", \"alerts\": {\"builtin\": false, \"rules\": [{\"name\": \"X\", \"figure\": \"up\", "
              "\"op\": \"==\", \"threshold\": 0}]}}", &e);
    ck_assert_msg(c != NULL, "%s", e.text.p);
    ck_assert_uint_eq(c->alerts->n_rules, 1);
    config_free(c);
}
END_TEST

START_TEST(every_error_located)
{
    const char *json =
        "{" INST ",\n"
        " \"alerts\": {\"state_dir\": \"relative\", \"nope\": 1,\n"
        "  \"receivers\": [{\"name\": \"hook\", \"type\": \"webhook\", \"url\": \"ftp://x\"},\n"
        "                {\"name\": \"am\", \"type\": \"pager\", \"url\": \"http://127.0.0.1:9093\"}],\n"
        "  \"rules\": [{\"name\": \"A\", \"figure\": \"derived.aof.nope\", \"op\": \"=>\", \"threshold\": 1, \"for\": \"5\"},\n"
        "   {\"name\": \"B\", \"figure\": \"info.memory.rdb_changes_since_last_save\", \"threshold\": 1,\n"
        "    \"thresholds\": {\"cache-9\": 3}, \"instances\": [\"x\"], \"receivers\": [\"nobody\"]},\n"
        "   {\"name\": \"C\", \"figure\": \"up\", \"threshold\": 1, \"clear_threshold\": 2,\n"
        "    \"annotations\": {\"summary\": \"{{ $foo }}\"}, \"bogus\": 1},\n"
        "   {\"name\": \"C\", \"figure\": \"up\", \"threshold\": 1},\n"
        "   {\"name\": \"D\", \"figure\": \"up\", \"drop_below\": 2}],\n"
        "  \"route\": [{\"match\": {\"severity\": \"critical\"}, \"receivers\": [\"ghost\"]}],\n"
        "  \"silences\": [{\"matchers\": {\"alertname\": \"A\"}, \"ends_at\": \"tomorrow\"}]}}";
    const char *needles[] = {
        "alerts.state_dir (line 3, column 26): state_dir must be an absolute path",
        "alerts.nope (line 3, column 38): unknown key \"nope\" (known: builtin, state_dir, external_url, rules, receivers, route,",
        "alerts.receivers[0].url (line 4, column 60): \"ftp://x\" is not an http:// or https:// URL",
        "alerts.receivers[1].type (line 5, column 40): unknown receiver type \"pager\" (webhook, alertmanager, slack)",
        "alerts.rules[0].figure (line 6, column 37): unknown derived figure \"derived.aof.nope\" (see derived.def: derived.GROUP.",
        "alerts.rules[0].op (line 6, column 63): unknown operator \"=>\" (>, >=, <, <=, ==, !=)",
        "alerts.rules[0].for (line 6, column 92): bad duration \"5\": missing or unknown unit (use ms, s, m or h)",
        "alerts.rules[1].figure (line 7, column 28): INFO field \"rdb_changes_since_last_save\" is in section \"persistence\", no",
        "alerts.rules[2].annotations.summary (line 10, column 32): unknown placeholder \"{{ $foo }}\" ($value, $threshold, $targe",
        "alerts.rules[2].bogus (line 10, column 47): unknown key \"bogus\" (known: name, figure, op, threshold, clear_threshold, ",
        "alerts.rules[3] (line 11, column 13): duplicate rule name \"C\" (also alerts.rules[2])",
        "alerts.rules[4].drop_below (line 12, column 48): drop_below must be between 0 and 1 (a share of the baseline), got 2",
        "alerts.route[0].receivers[0] (line 13, column 63): unknown receiver ghost",
        "alerts.silences[0].ends_at (line 14, column 60): expected an RFC 3339 time such as \"2026-11-30T03:00:00Z\"",
        "alerts.rules[1].instances[0] (line 8, column 49): unknown instance \"x\"",
        "alerts.rules[1].thresholds.cache-9 (line 8, column 20): unknown instance \"cache-9\"",
        "alerts.rules[1].receivers[0] (line 8, column 69): unknown receiver \"nobody\"",
        "alerts.rules[2] (line 9, column 4): rule \"C\": clear_threshold 2 is on the firing side of threshold 1",
        NULL};
    /* D's refused drop_below has its error: no "missing threshold (or
     * drop_below)" besides it */
    expect_errors(json, 18, needles);
}
END_TEST

/* A threshold cJSON reads as infinity says so (it read "expected a number,
 * got a number"), and is not also "missing required key threshold"; an
 * empty rule name is empty, not missing. */
START_TEST(rule_value_errors_say_why)
{
    const char *json = "{" INST ",\n"
                       " \"alerts\": {\"rules\": [{\"name\": \"r\", \"figure\": \"up\", \"threshold\": 1e999},\n"
                       "  {\"name\": \"\", \"figure\": \"up\", \"threshold\": 1},\n"
                       "  {\"name\": \"t\", \"figure\": \"up\", \"threshold\": \"1\"}]}}";
    const char *needles[] = {
        "alerts.rules[0].threshold (line 3, column 66): not a finite number (out of the range of a double)",
        "alerts.rules[1].name (line 4, column 12): the rule name is empty (it is the alertname label)",
        "alerts.rules[2].threshold (line 5, column 46): expected a number, got a string", NULL};
    expect_errors(json, 3, needles);
}
END_TEST

/* Rule names, severities and receiver names are label values: bytes that
 * are not UTF-8 would make Prometheus refuse every scrape. */
START_TEST(label_texts_must_be_utf8)
{
    const char *json = "{" INST ",\n"
                       " \"alerts\": {\"receivers\": [{\"name\": \"recv\xff\", \"type\": \"webhook\", \"url\": \"http://h/x\"}],\n"
                       "  \"rules\": [{\"name\": \"bad\xff\xferule\", \"figure\": \"up\", \"threshold\": 1, \"severity\": \"sev\xc3\"}]}}";
    const char *needles[] = {
        "alerts.receivers[0].name (line 3, column 36): the receiver name must be UTF-8 (it is the receiver label)",
        "alerts.rules[0].name (line 4, column 22): the rule name must be UTF-8 (it is the alertname label)",
        "alerts.rules[0].severity (line 4, column 79): severity must be UTF-8 (it is a label)", NULL};
    expect_errors(json, 3, needles);
    /* a label name that is not UTF-8 goes into no message, its path either */
    const char *json2 = "{" INST ",\n"
                        " \"alerts\": {\"rules\": [{\"name\": \"R\", \"figure\": \"up\", \"threshold\": 1,\n"
                        "  \"labels\": {\"\xff\xfe\x1b" "ab\": \"x\"}}]}}";
    const char *needles2[] = {"alerts.rules[0].labels.???ab (line 4, column 14): invalid label name (bytes that are not "
                              "UTF-8)", NULL};
    expect_errors(json2, 1, needles2);
}
END_TEST

START_TEST(receivers_parse)
{
    char tok[64];
    snprintf(tok, sizeof tok, "/tmp/rp-alerts-tok-%ld", (long)getpid());
    FILE *f = fopen(tok, "w");
    ck_assert_ptr_nonnull(f);
    fputs("t0ken\n", f);
    fclose(f);
    char json[1024];
    snprintf(json, sizeof json,
             "{" INST ", \"alerts\": {\"receivers\": [\n"
             " {\"name\": \"am\", \"type\": \"alertmanager\", \"urls\": [\"http://a:9093\", \"https://b:9093\"], \"resend_interval\": \"30s\"},\n"
             " {\"name\": \"hook\", \"type\": \"webhook\", \"url\": \"http://h/x\", \"bearer_token_file\": \"%s\",\n"
             "  \"headers\": {\"X-Team\": \"db\"}, \"queue_size\": 3}],\n"
             " \"route\": [{\"match\": {\"severity\": \"critical\"}, \"receivers\": [\"am\", \"hook\"]}, {\"receivers\": [\"hook\"]}],\n"
             " \"silences\": [{\"matchers\": {\"target\": \"cache-2\"}, \"starts_at\": \"2026-01-01T00:00:00Z\",\n"
             "   \"ends_at\": \"2026-01-01T02:00:00+01:00\", \"comment\": \"maintenance\"}]}}", tok);
    struct config_errors e;
    struct config *c = parse(json, &e);
    unlink(tok);
    ck_assert_msg(c != NULL, "%s", e.text.p);
    const struct alerts_cfg *a = c->alerts;
    ck_assert_uint_eq(a->n_recv, 2);
    ck_assert_int_eq(a->recv[0].type, RECV_ALERTMANAGER);
    ck_assert_uint_eq(a->recv[0].n_urls, 2);
    ck_assert_uint_eq(a->recv[0].resend_ms, 30000);
    ck_assert_str_eq(a->recv[1].bearer, "t0ken");
    ck_assert_uint_eq(a->recv[1].queue_size, 3);
    ck_assert_uint_eq(a->n_routes, 2);
    ck_assert_uint_eq(a->routes[0].n_recv, 2);
    ck_assert_uint_eq(a->n_sil, 1);
    /* 02:00+01:00 is an hour after 00:00Z */
    ck_assert(a->sil[0].starts_at == 1767225600.0 && a->sil[0].ends_at == 1767225600.0 + 3600);
    config_free(c);
}
END_TEST

/* A receiver's secrets go into request headers: a token file of two lines
 * is refused (it used to be cut at the first line, silently), a password
 * file that is a directory says so, a CRLF at the end is no part of it. */
START_TEST(receiver_secret_files)
{
    char tok[64], dir[64];
    snprintf(tok, sizeof tok, "/tmp/rp-alerts-tok2-%ld", (long)getpid());
    snprintf(dir, sizeof dir, "/tmp/rp-alerts-dir-%ld", (long)getpid());
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    FILE *f = fopen(tok, "w");
    ck_assert_ptr_nonnull(f);
    fputs("t0ken\nX-Injected: 1\n", f);
    fclose(f);
    char json[1024];
    snprintf(json, sizeof json,
             "{" INST ", \"alerts\": {\"receivers\": [\n"
             " {\"name\": \"hook\", \"type\": \"webhook\", \"url\": \"http://h/x\", \"bearer_token_file\": \"%s\"},\n"
             " {\"name\": \"h2\", \"type\": \"webhook\", \"url\": \"http://h/y\",\n"
             "  \"basic_auth\": {\"username\": \"u\", \"password_file\": \"%s\"}}]}}", tok, dir);
    char n1[256], n2[256];
    snprintf(n1, sizeof n1, "bearer token file \"%s\" holds a line break (at offset 5)", tok);
    snprintf(n2, sizeof n2, "password file \"%s\" is a directory, not a regular file", dir);
    const char *needles[] = {n1, n2, NULL};
    expect_errors(json, 2, needles);

    f = fopen(tok, "w");
    ck_assert_ptr_nonnull(f);
    fputs("t0ken\r\n", f);
    fclose(f);
    snprintf(json, sizeof json,
             "{" INST ", \"alerts\": {\"receivers\": [\n"
             " {\"name\": \"hook\", \"type\": \"webhook\", \"url\": \"http://h/x\", \"bearer_token_file\": \"%s\"}]}}",
             tok);
    struct config_errors e;
    struct config *c = parse(json, &e);
    unlink(tok);
    rmdir(dir);
    ck_assert_msg(c != NULL, "%s", e.text.p);
    ck_assert_str_eq(c->alerts->recv[0].bearer, "t0ken");
    config_free(c);
}
END_TEST

/* ---- the state machine ------------------------------------------------- */

static struct rule_params gt(double thr, double for_s, double keep_s)
{
    struct rule_params p = {OP_GT, thr, false, 0, for_s, keep_s, 0, 0};
    return p;
}

START_TEST(pending_then_firing_after_for)
{
    struct rule_params p = gt(0, 30, 0);
    struct alert_state st = {0};
    ck_assert_int_eq(rule_step(&p, &st, NULL, 0, 1000), TR_NONE);
    ck_assert_int_eq(rule_step(&p, &st, NULL, 5, 1005), TR_PENDING);
    ck_assert_int_eq(st.phase, AP_PENDING);
    ck_assert_int_eq(rule_step(&p, &st, NULL, 5, 1020), TR_NONE);
    ck_assert_int_eq(rule_step(&p, &st, NULL, 5, 1034), TR_NONE);
    ck_assert_int_eq(rule_step(&p, &st, NULL, 5, 1035), TR_FIRING);
    ck_assert_uint_eq(st.episode, 1);
    ck_assert(st.active_since == 1005);
    ck_assert_int_eq(rule_step(&p, &st, NULL, 5, 1040), TR_NONE);
    ck_assert_int_eq(rule_step(&p, &st, NULL, 0, 1045), TR_RESOLVED);
    ck_assert_int_eq(st.phase, AP_INACTIVE);
    /* a condition that ends before `for` cancels silently */
    ck_assert_int_eq(rule_step(&p, &st, NULL, 1, 1050), TR_PENDING);
    ck_assert_int_eq(rule_step(&p, &st, NULL, 0, 1055), TR_CANCELLED);
    ck_assert_uint_eq(st.episode, 1);
    /* for 0 fires at once */
    struct rule_params p0 = gt(0, 0, 0);
    struct alert_state s0 = {0};
    ck_assert_int_eq(rule_step(&p0, &s0, NULL, 1, 1), TR_FIRING);
}
END_TEST

START_TEST(keep_firing_for)
{
    struct rule_params p = gt(0, 0, 20);
    struct alert_state st = {0};
    ck_assert_int_eq(rule_step(&p, &st, NULL, 1, 100), TR_FIRING);
    ck_assert_int_eq(rule_step(&p, &st, NULL, 0, 105), TR_NONE);
    ck_assert_int_eq(rule_step(&p, &st, NULL, 0, 119), TR_NONE);
    ck_assert_int_eq(rule_step(&p, &st, NULL, 1, 121), TR_NONE); /* true again: the clock restarts */
    ck_assert_int_eq(rule_step(&p, &st, NULL, 0, 140), TR_NONE);
    ck_assert_int_eq(rule_step(&p, &st, NULL, 0, 141), TR_RESOLVED);
}
END_TEST

START_TEST(hysteresis)
{
    struct rule_params p = gt(0.9, 0, 0);
    p.has_clear = true;
    p.clear = 0.85;
    struct alert_state st = {0};
    ck_assert_int_eq(rule_step(&p, &st, NULL, 0.89, 0), TR_NONE);
    ck_assert_int_eq(rule_step(&p, &st, NULL, 0.91, 5), TR_FIRING);
    ck_assert_int_eq(rule_step(&p, &st, NULL, 0.88, 10), TR_NONE);
    ck_assert_int_eq(rule_step(&p, &st, NULL, 0.86, 15), TR_NONE);
    ck_assert_int_eq(rule_step(&p, &st, NULL, 0.84, 20), TR_RESOLVED);
    /* below the threshold again: no re-firing between clear and threshold */
    ck_assert_int_eq(rule_step(&p, &st, NULL, 0.88, 25), TR_NONE);
}
END_TEST

START_TEST(oscillation_one_episode)
{
    /* a value crossing the threshold at every poll (5 s) for 10 minutes */
    struct rule_params variants[3] = {gt(1, 0, 15), gt(1, 0, 0), gt(1, 30, 0)};
    variants[1].has_clear = true;
    variants[1].clear = 0; /* never below: holds until the end */
    for (int v = 0; v < 3; v++) {
        struct alert_state st = {0};
        int firing = 0, resolved = 0;
        for (int i = 0; i < 120; i++) {
            enum alert_tr t = rule_step(&variants[v], &st, NULL, i % 2 ? 2 : 0.5, 5.0 * i);
            firing += t == TR_FIRING;
            resolved += t == TR_RESOLVED;
        }
        /* then it settles low */
        for (int i = 120; i < 140; i++) {
            enum alert_tr t = rule_step(&variants[v], &st, NULL, -1, 5.0 * i);
            firing += t == TR_FIRING;
            resolved += t == TR_RESOLVED;
        }
        ck_assert_msg(firing <= 1 && resolved == firing, "variant %d: %d firing, %d resolved", v, firing, resolved);
        ck_assert_int_eq(firing, v < 2 ? 1 : 0); /* `for` longer than a half-period never fires */
    }
}
END_TEST

START_TEST(missing_data_is_not_recovery)
{
    struct rule_params p = gt(0, 10, 0);
    struct alert_state st = {0};
    ck_assert_int_eq(rule_step(&p, &st, NULL, 1, 0), TR_PENDING);
    ck_assert_int_eq(rule_step(&p, &st, NULL, NAN, 5), TR_NONE); /* instance down */
    ck_assert_int_eq(st.phase, AP_PENDING);
    ck_assert_int_eq(rule_step(&p, &st, NULL, 1, 10), TR_FIRING);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(rule_step(&p, &st, NULL, NAN, 15.0 + i), TR_NONE);
    ck_assert_int_eq(st.phase, AP_FIRING);
    /* figures are missing while down, except up */
    struct figure f, up;
    char why[256];
    ck_assert_int_eq(figure_parse("derived.aof.delayed_fsyncs_last_interval", &f, why, sizeof why), 0);
    ck_assert_int_eq(figure_parse("up", &up, why, sizeof why), 0);
    struct rule_input down = {false, NULL, NULL, NULL};
    double prev = NAN;
    ck_assert(isnan(figure_value(&f, &down, &prev)));
    ck_assert(figure_value(&up, &down, &prev) == 0);
}
END_TEST

static struct info_sample *fixture(const char *name)
{
    size_t len;
    char *t = read_fixture(name, &len);
    struct info_sample *s = info_parse(t, len);
    free(t);
    return s;
}

START_TEST(figures_from_captured_info)
{
    struct info_sample *s = fixture("info-redis-7.0.15-bgsave-error.txt");
    struct derived d;
    derive(NULL, 0, s, 1000000, 1e9, NULL, NULL, &d);
    struct rule_input in = {true, s, &d, NULL};
    struct figure f;
    char why[256];
    double prev = NAN;
    ck_assert_int_eq(figure_parse("info.persistence.rdb_last_bgsave_status", &f, why, sizeof why), 0);
    ck_assert(figure_value(&f, &in, &prev) == 0);
    ck_assert_int_eq(figure_parse("derived.rdb.last_bgsave_ok", &f, why, sizeof why), 0);
    ck_assert(figure_value(&f, &in, &prev) == 0);
    /* a baseline poll has no rates: missing, not zero */
    ck_assert_int_eq(figure_parse("derived.errors.misconf_errors_per_second", &f, why, sizeof why), 0);
    ck_assert(isnan(figure_value(&f, &in, &prev)));
    ck_assert_int_eq(figure_parse("errorstat.MISCONF", &f, why, sizeof why), 0);
    ck_assert(isnan(figure_value(&f, &in, &prev)));
    figure_clear(&f);
    ck_assert_int_eq(figure_parse("computed.master_link_down", &f, why, sizeof why), 0);
    ck_assert(figure_value(&f, &in, &prev) == 0); /* a master */
    ck_assert_int_eq(figure_parse("computed.persistence_off", &f, why, sizeof why), 0);
    ck_assert(isnan(figure_value(&f, &in, &prev))); /* needs CONFIG GET save */
    ck_assert_int_eq(figure_parse("increase(info.stats.rejected_connections)", &f, why, sizeof why), 0);
    ck_assert(f.increase);
    ck_assert_int_lt(figure_parse("increase(nope)", &f, why, sizeof why), 0);
    ck_assert_int_lt(figure_parse("config.save", &f, why, sizeof why), 0); /* not numeric */
    derived_clear(&d);
    info_sample_free(s);
}
END_TEST

/* CONFIG GET as it would arrive: "name", "value", ... */
static void config_reply(struct config_values *cv, const char *const *kv)
{
    redisReply *el[16], r[16];
    size_t n = 0;
    for (; kv[n]; n++) {
        r[n] = (redisReply){.type = REDIS_REPLY_STRING, .str = (char *)kv[n], .len = strlen(kv[n])};
        el[n] = &r[n];
    }
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = n, .element = el};
    ck_assert_int_ge(collect_config_reply(cv, &arr), 1);
}

static double computed_on(const char *fig, const char *info_text, const char *const *kv)
{
    struct info_sample *s = info_parse(info_text, strlen(info_text));
    struct derived d;
    derive(NULL, 0, s, 1000000, 1e9, NULL, NULL, &d);
    struct config_values cv = {0};
    if (kv)
        config_reply(&cv, kv);
    struct rule_input in = {true, s, &d, kv ? &cv : NULL};
    struct figure f;
    char why[256];
    ck_assert_int_eq(figure_parse(fig, &f, why, sizeof why), 0);
    double prev = NAN;
    double v = figure_value(&f, &in, &prev);
    figure_clear(&f);
    config_values_clear(&cv);
    derived_clear(&d);
    info_sample_free(s);
    return v;
}

START_TEST(good_replicas_against_min_replicas_to_write)
{
    const char *one_good = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nmin_slaves_good_slaves:1\r\n";
    const char *const want2[] = {"min-replicas-to-write", "2", NULL};
    const char *const want1[] = {"min-replicas-to-write", "1", NULL};
    const char *const off[] = {"min-replicas-to-write", "0", NULL};
    const char *fig = "computed.good_replicas_missing";
    ck_assert(computed_on(fig, one_good, want2) == 1); /* one short: writes refused */
    ck_assert(computed_on(fig, one_good, want1) == 0);
    ck_assert(computed_on(fig, one_good, off) == 0);
    ck_assert(isnan(computed_on(fig, one_good, NULL))); /* setting unknown: no verdict */
    const char *replica = "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\n";
    ck_assert(computed_on(fig, replica, want2) == 0);
}
END_TEST

START_TEST(slow_fork_ignores_short_forks)
{
    const char *fig = "computed.fork_seconds_per_gigabyte_over_10ms";
    /* 0.8 ms for 4 MB is 0.2 s/GB, yet stalls nothing */
    ck_assert(computed_on(fig, "# Memory\r\nused_memory_rss:4194304\r\n# Stats\r\nlatest_fork_usec:800\r\n",
                          NULL) == 0);
    /* 300 ms for 2 GB: 0.15 s/GB */
    double v = computed_on(fig, "# Memory\r\nused_memory_rss:2147483648\r\n# Stats\r\nlatest_fork_usec:300000\r\n",
                           NULL);
    ck_assert(fabs(v - 0.15) < 1e-9);
    ck_assert(isnan(computed_on(fig, "# Memory\r\nused_memory_rss:4194304\r\n", NULL)));
}
END_TEST

START_TEST(restart_of_redis_continues)
{
    /* increase(): a counter that goes down (restart) is a new baseline, no value */
    struct figure f;
    char why[256];
    ck_assert_int_eq(figure_parse("increase(info.stats.rejected_connections)", &f, why, sizeof why), 0);
    struct info_sample *s = fixture("info-redis-7.0.15-master.txt");
    struct derived d, d0;
    derive(NULL, 0, s, 1000000, 1e9, NULL, NULL, &d0); /* the poller's baseline poll */
    derive(s, 1000000, s, 2000000, 1e9, NULL, NULL, &d); /* a poll with rates */
    struct rule_input in = {true, s, &d, NULL}, in0 = {true, s, &d0, NULL};
    double prev = NAN;
    ck_assert(isnan(figure_value(&f, &in0, &prev)));
    ck_assert(!isnan(prev));
    ck_assert(figure_value(&f, &in, &prev) == 0);
    prev += 5; /* as if the server had counted more before a restart */
    ck_assert(isnan(figure_value(&f, &in, &prev)));
    ck_assert(figure_value(&f, &in, &prev) == 0);
    /* another server (an address changed by a reload, a new run_id): the
     * poller starts a baseline, and so does increase(), even when the new
     * server's counter is the higher (it fired with the difference) */
    prev -= 49995;
    ck_assert(isnan(figure_value(&f, &in0, &prev)));
    ck_assert(figure_value(&f, &in, &prev) == 0);
    derived_clear(&d);
    derived_clear(&d0);
    info_sample_free(s);
    /* a firing alert sees the restart poll (no rates: NaN) and goes on */
    struct rule_params p = gt(0, 0, 0);
    struct alert_state st = {0};
    ck_assert_int_eq(rule_step(&p, &st, NULL, 3, 0), TR_FIRING);
    ck_assert_int_eq(rule_step(&p, &st, NULL, NAN, 5), TR_NONE);
    ck_assert_int_eq(rule_step(&p, &st, NULL, 2, 10), TR_NONE);
    ck_assert_uint_eq(st.episode, 1);
}
END_TEST

START_TEST(relative_drop)
{
    struct rule_params p = {OP_LT, 0, false, 0, 0, 0, 0.5, 600};
    struct alert_state st = {0};
    struct baseline b = {NAN, 0, 0};
    double t = 0;
    /* a drop before the baseline is old enough does not fire */
    ck_assert_int_eq(rule_step(&p, &st, &b, 1000, t), TR_NONE);
    ck_assert_int_eq(rule_step(&p, &st, &b, 10, t += 10), TR_NONE);
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(rule_step(&p, &st, &b, 1000, t += 10), TR_NONE);
    ck_assert(b.mean > 900 && b.age_s >= 600);
    ck_assert_int_eq(rule_step(&p, &st, &b, 600, t += 10), TR_NONE); /* above half */
    ck_assert_int_eq(rule_step(&p, &st, &b, 300, t += 10), TR_FIRING);
    ck_assert_int_eq(rule_step(&p, &st, &b, 950, t += 10), TR_RESOLVED);
    /* missing data does not move the baseline */
    double m = b.mean;
    ck_assert_int_eq(rule_step(&p, &st, &b, NAN, t += 10), TR_NONE);
    ck_assert(b.mean == m);
    /* a step of dt moves the mean by 1 - e^(-dt/tau) of the way, with
     * all the digits a double holds, on either side of where the
     * weight's series gives way to expm1 */
    static const double x[] = {1e-9, 2.7e-5, 1e-4, 9.99e-4, 1e-3, 0.01, 0.5, 3};
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) {
        struct alert_state s2 = {0};
        struct baseline b2 = {0, 0, 0};
        rule_step(&p, &s2, &b2, 1, x[i] * p.baseline_s);
        double want = -expm1(-x[i]);
        ck_assert_msg(fabs(b2.mean - want) <= 1e-14 * want, "x %g: %.17g against %.17g", x[i], b2.mean, want);
    }
}
END_TEST


/* ---- payloads ----------------------------------------------------------- */

static struct notif *mk_notif(const char *name, bool resolved, uint32_t episode)
{
    struct notif n = {0};
    struct label l[] = {{(char *)"alertname", (char *)name}, {(char *)"env", (char *)"prod"},
                        {(char *)"severity", (char *)"critical"}, {(char *)"target", (char *)"cache-1"}};
    struct label an[] = {{(char *)"summary", (char *)name}};
    n.labels = l;
    n.n_labels = 4;
    n.ann = an;
    n.n_ann = 1;
    n.resolved = resolved;
    n.episode = episode;
    n.starts_at = 1796000000.25;
    n.ends_at = resolved ? 1796000060.5 : 0;
    n.interval_s = 5;
    notify_fingerprint(n.fp, l, 4);
    return notif_dup(&n);
}

START_TEST(webhook_payload_v4)
{
    struct notif *v[2] = {mk_notif("A", false, 3), mk_notif("B", true, 1)};
    struct buf b = BUF_INIT;
    notify_webhook_body(&b, "oncall", "http://agent:10379", v, 2);
    cJSON *j = cJSON_Parse(b.p);
    ck_assert_msg(j != NULL, "%s", b.p);
    /* every field of Alertmanager's documented webhook payload */
    const char *top[] = {"version", "groupKey", "status", "receiver", "groupLabels", "commonLabels",
                         "commonAnnotations", "externalURL", "truncatedAlerts", "alerts"};
    for (size_t i = 0; i < sizeof top / sizeof *top; i++)
        ck_assert_msg(cJSON_GetObjectItemCaseSensitive(j, top[i]) != NULL, "missing %s", top[i]);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "version")->valuestring, "4");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "status")->valuestring, "firing");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "receiver")->valuestring, "oncall");
    ck_assert(cJSON_GetObjectItemCaseSensitive(j, "truncatedAlerts")->valuedouble == 0);
    const cJSON *common = cJSON_GetObjectItemCaseSensitive(j, "commonLabels");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(common, "target")->valuestring, "cache-1");
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(common, "alertname")); /* differs */
    const cJSON *alerts = cJSON_GetObjectItemCaseSensitive(j, "alerts");
    ck_assert_int_eq(cJSON_GetArraySize(alerts), 2);
    const char *per[] = {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"};
    for (int k = 0; k < 2; k++) {
        const cJSON *a = cJSON_GetArrayItem(alerts, k);
        for (size_t i = 0; i < sizeof per / sizeof *per; i++)
            ck_assert_msg(cJSON_GetObjectItemCaseSensitive(a, per[i]) != NULL, "alert missing %s", per[i]);
        ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(a, "fingerprint")->valuestring, v[k]->fp);
        ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(a, "startsAt")->valuestring, "2026-11-30T00:53:20.250Z");
        ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(a, "generatorURL")->valuestring,
                         "http://agent:10379/api/v1/alerts");
    }
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(alerts, 0), "endsAt")->valuestring,
                     "0001-01-01T00:00:00Z");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(alerts, 1), "endsAt")->valuestring,
                     "2026-11-30T00:54:20.500Z");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(alerts, 1), "status")->valuestring,
                     "resolved");
    cJSON_Delete(j);
    char key[64];
    notify_idempotency_key(key, sizeof key, v, 1);
    char want[64];
    snprintf(want, sizeof want, "%s-3-firing", v[0]->fp);
    ck_assert_str_eq(key, want);
    notify_idempotency_key(key, sizeof key, v, 2);
    ck_assert(strncmp(key, "batch-", 6) == 0);
    /* a repeat's key survives the state file, which keeps `created` to the
     * millisecond ("%.3f"): a key truncated from the double was a
     * millisecond off after the round trip for about half the values */
    struct notif rep = *v[0];
    rep.repeat = true;
    struct notif *rv[] = {&rep};
    for (int i = 0; i < 1000; i++) {
        char before[64], after[64], text[64];
        rep.created = 1796000000.0 + i * 0.0007391;
        notify_idempotency_key(before, sizeof before, rv, 1);
        snprintf(text, sizeof text, "%.3f", rep.created);
        rep.created = strtod(text, NULL);
        notify_idempotency_key(after, sizeof after, rv, 1);
        ck_assert_str_eq(before, after);
        ck_assert(strstr(before, "-3-firing-repeat-"));
    }
    /* Alertmanager API v2: firing valid for 4 x max(interval 5 s, resend 60 s) */
    buf_reset(&b);
    notify_am_body(&b, NULL, v, 2, 1796000100.0, 60);
    j = cJSON_Parse(b.p);
    ck_assert(cJSON_IsArray(j));
    const cJSON *a0 = cJSON_GetArrayItem(j, 0);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(a0, "endsAt")->valuestring, "2026-11-30T00:59:00.000Z");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(a0, "labels"), "alertname")
                         ->valuestring, "A");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(j, 1), "endsAt")->valuestring,
                     "2026-11-30T00:54:20.500Z");
    cJSON_Delete(j);
    buf_reset(&b);
    notify_slack_body(&b, "http://agent:10379", v, 1);
    j = cJSON_Parse(b.p);
    ck_assert(strstr(cJSON_GetObjectItemCaseSensitive(j, "text")->valuestring, "[FIRING] A on cache-1 (critical)"));
    cJSON_Delete(j);
    /* templates */
    buf_reset(&b);
    notify_expand(&b, "{{ $target }} {{$value}}{{ $unit }} > {{ $threshold }} ({{ $labels.env }}, {{ $severity }})",
                  v[0]->labels, v[0]->n_labels, 0.93, 0.9, "ratio", "x");
    ck_assert_str_eq(b.p, "cache-1 0.93ratio > 0.9 (prod, critical)");
    buf_free(&b);
    notif_free(v[0]);
    notif_free(v[1]);
}
END_TEST

/* ---- the engine across an agent restart ---------------------------------- */

static size_t outbox_len(size_t r)
{
    pthread_mutex_lock(&alerts_hub->mu);
    size_t n = alerts_hub->ob[r].n;
    pthread_mutex_unlock(&alerts_hub->mu);
    return n;
}

/* The phase (-1 when none) and start of rule's active alert, under the lock. */
static int active_get(const char *rule, double *since)
{
    int ph = -1;
    double t = NAN;
    pthread_mutex_lock(&alerts_hub->mu);
    for (size_t i = 0; i < alerts_hub->n_act; i++)
        if (strcmp(alerts_hub->cfg->rules[alerts_hub->act[i]->rule].name, rule) == 0) {
            ph = alerts_hub->act[i]->phase;
            t = alerts_hub->act[i]->since;
        }
    pthread_mutex_unlock(&alerts_hub->mu);
    if (since)
        *since = t;
    return ph;
}

static int active_phase(const char *rule) { return active_get(rule, NULL); }

/* A poll ending at wall-clock time now and monotonic time mono. */
static void poll_at(struct alert_inst **slot, const struct config *c, const char *fixture_name, bool up,
                    double now, double mono)
{
    struct poll_stats st = {0};
    st.polled = true;
    st.last_outcome = up ? OUTCOME_OK : OUTCOME_CONNECT_REFUSED;
    st.last_poll_ts = now;
    st.last_poll_mono = mono;
    struct info_sample *s = up ? fixture(fixture_name) : NULL;
    struct derived d;
    if (s)
        derive(NULL, 0, s, 1000000, now, NULL, NULL, &d);
    alerts_after_poll(slot, &c->instances[0], &st, s, s ? &d : NULL, NULL);
    if (s) {
        derived_clear(&d);
        info_sample_free(s);
    }
}

/* A poll at now; the monotonic clock a million seconds behind the wall
 * clock, so that a time of one read as the other shows. */
static void poll_with(struct alert_inst **slot, const struct config *c, const char *fixture_name, bool up,
                      double now)
{
    poll_at(slot, c, fixture_name, up, now, now - 1e6);
}

START_TEST(agent_restart_from_state_file)
{
    char dir[64], json[1024];
    snprintf(dir, sizeof dir, "/tmp/rp-alerts-state-%ld", (long)getpid());
    snprintf(json, sizeof json,
             "{\"instances\": [{\"name\": \"cache-1\", \"address\": \"127.0.0.1:6379\"}],"
             " \"alerts\": {\"builtin\": false, \"state_dir\": \"%s\","
             "  \"receivers\": [{\"name\": \"down\", \"type\": \"webhook\", \"url\": \"http://127.0.0.1:1/\"},"
             "                  {\"name\": \"quiet\", \"type\": \"webhook\", \"url\": \"http://127.0.0.1:1/q\"}],"
             "  \"route\": [{\"match\": {\"severity\": \"page\"}, \"receivers\": [\"quiet\"]}, {\"receivers\": [\"down\"]}],"
             "  \"silences\": [{\"matchers\": {\"alertname\": \"Silenced\"}, \"ends_at\": \"2100-01-01T00:00:00Z\"}],"
             "  \"rules\": [{\"name\": \"Bgsave\", \"figure\": \"info.persistence.rdb_last_bgsave_status\", \"op\": \"==\", \"threshold\": 0},"
             "            {\"name\": \"Silenced\", \"figure\": \"info.persistence.rdb_last_bgsave_status\", \"op\": \"==\", \"threshold\": 0}]}}",
             dir);
    struct config_errors e;
    struct config *c = parse(json, &e);
    ck_assert_msg(c != NULL, "%s", e.text.p);
    /* first life: the bgsave failure fires once, into the outbox of the
     * receiver that is down; the silenced rule changes state but sends nothing */
    ck_assert_int_eq(alerts_start(c), 0);
    struct alert_inst *slot = NULL;
    /* poll times are the wall clock, as the poller's are: the delivery
     * thread compares them with its own (repeat_interval) */
    double t0 = (double)time(NULL);
    poll_with(&slot, c, "info-redis-7.0.15-bgsave-error.txt", true, t0);
    ck_assert_int_eq(active_phase("Bgsave"), AP_FIRING);
    ck_assert_int_eq(active_phase("Silenced"), AP_FIRING);
    ck_assert_uint_eq(outbox_len(0), 1);
    ck_assert_uint_eq(outbox_len(1), 0); /* routed by severity: not "page" */
    poll_with(&slot, c, "info-redis-7.0.15-bgsave-error.txt", true, t0 + 5);
    ck_assert_uint_eq(outbox_len(0), 1); /* still firing: nothing new */
    struct buf api = BUF_INIT;
    alerts_render_api(&api);
    ck_assert(strstr(api.p, "\"alertname\":\"Silenced\"") && strstr(api.p, "\"silenced\":true"));
    buf_free(&api);
    alerts_stop();
    /* second life: firing stays firing, the undelivered notification is back,
     * no second firing */
    slot = NULL;
    ck_assert_int_eq(alerts_start(c), 0);
    ck_assert_uint_eq(outbox_len(0), 1);
    poll_with(&slot, c, "info-redis-7.0.15-bgsave-error.txt", true, t0 + 10);
    ck_assert_int_eq(active_phase("Bgsave"), AP_FIRING);
    ck_assert_uint_eq(outbox_len(0), 1);
    /* down: missing data resolves nothing */
    poll_with(&slot, c, NULL, false, t0 + 15);
    ck_assert_int_eq(active_phase("Bgsave"), AP_FIRING);
    /* the condition ended: resolved, queued behind the firing one */
    poll_with(&slot, c, "info-redis-7.0.15-master.txt", true, t0 + 20);
    ck_assert_int_eq(active_phase("Bgsave"), -1);
    ck_assert_uint_eq(outbox_len(0), 2);
    pthread_mutex_lock(&alerts_hub->mu);
    ck_assert(!alerts_hub->ob[0].v[0]->resolved && alerts_hub->ob[0].v[1]->resolved);
    ck_assert_uint_eq(alerts_hub->ob[0].v[1]->episode, 1);
    pthread_mutex_unlock(&alerts_hub->mu);
    alerts_stop();
    /* a truncated file: moved aside, empty start */
    char path[128];
    snprintf(path, sizeof path, "%s/alerts.json", dir);
    FILE *f = fopen(path, "r+");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(ftruncate(fileno(f), 40), 0);
    fclose(f);
    ck_assert_int_eq(alerts_start(c), 0);
    ck_assert_uint_eq(outbox_len(0), 0);
    alerts_stop();
    /* numbers out of range (no integer conversion of them): moved aside too */
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"version\":1,\"seq\":1e300,\"alerts\":[],\"resolved\":[],\"outbox\":{},"
          "\"episodes\":[{\"instance\":\"cache-1\",\"rule\":\"Bgsave\",\"episode\":1e30}]}", f);
    fclose(f);
    ck_assert_int_eq(alerts_start(c), 0);
    pthread_mutex_lock(&alerts_hub->mu);
    ck_assert_uint_eq(alerts_hub->n_eps, 0);
    pthread_mutex_unlock(&alerts_hub->mu);
    alerts_stop();
    config_free(c);
    testutil_remove_dir(dir);
}
END_TEST

START_TEST(silence_that_ends_lets_the_alert_through)
{
    char dir[64], ends[32], json[1024];
    snprintf(dir, sizeof dir, "/tmp/rp-alerts-sil-%ld", (long)getpid());
    time_t end = time(NULL) + 2;
    struct tm tm;
    gmtime_r(&end, &tm);
    strftime(ends, sizeof ends, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(json, sizeof json,
             "{\"instances\": [{\"name\": \"cache-1\", \"address\": \"127.0.0.1:6379\"}],"
             " \"alerts\": {\"builtin\": false, \"state_dir\": \"%s\","
             "  \"receivers\": [{\"name\": \"down\", \"type\": \"webhook\", \"url\": \"http://127.0.0.1:1/\"}],"
             "  \"silences\": [{\"matchers\": {\"alertname\": \"Bgsave\"}, \"ends_at\": \"%s\"}],"
             "  \"rules\": [{\"name\": \"Bgsave\", \"figure\": \"info.persistence.rdb_last_bgsave_status\","
             "              \"op\": \"==\", \"threshold\": 0}]}}",
             dir, ends);
    struct config_errors e;
    struct config *c = parse(json, &e);
    ck_assert_msg(c != NULL, "%s", e.text.p);
    ck_assert_int_eq(alerts_start(c), 0);
    struct alert_inst *slot = NULL;
    poll_with(&slot, c, "info-redis-7.0.15-bgsave-error.txt", true, (double)time(NULL));
    ck_assert_int_eq(active_phase("Bgsave"), AP_FIRING);
    ck_assert_uint_eq(outbox_len(0), 0); /* silenced: not sent */
    /* the silence ends: the delivery thread sends the firing alert then */
    for (int i = 0; i < 60 && outbox_len(0) == 0; i++)
        usleep(100000);
    ck_assert_uint_eq(outbox_len(0), 1);
    alerts_stop();
    config_free(c);
    testutil_remove_dir(dir);
}
END_TEST

static uint64_t state_writes(void)
{
    pthread_mutex_lock(&alerts_hub->mu);
    uint64_t n = alerts_hub->state_writes;
    pthread_mutex_unlock(&alerts_hub->mu);
    return n;
}

/* One instance and one rule, Bgsave (the bgsave status is 0), with `for`
 * for_s, state under dir. */
static struct config *bgsave_rule(const char *dir, const char *for_s)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"instances\": [{\"name\": \"cache-1\", \"address\": \"127.0.0.1:6379\"}],"
             " \"alerts\": {\"builtin\": false, \"state_dir\": \"%s\","
             "  \"rules\": [{\"name\": \"Bgsave\", \"figure\": \"info.persistence.rdb_last_bgsave_status\","
             "              \"op\": \"==\", \"threshold\": 0, \"for\": \"%s\"}]}}",
             dir, for_s);
    struct config_errors e;
    struct config *c = parse(json, &e);
    ck_assert_msg(c != NULL, "%s", e.text.p);
    return c;
}

/* `for` and its start measure time on the monotonic clock: the wall clock
 * set back an hour does not hold a pending alert back (it stayed pending
 * for the hour), set forward an hour it does not fire one at once; what is
 * shown (since) is wall-clock time. */
START_TEST(wall_clock_steps_move_no_for)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/rp-alerts-clock-%ld", (long)getpid());
    struct config *c = bgsave_rule(dir, "30s");
    ck_assert_int_eq(alerts_start(c), 0);
    struct alert_inst *slot = NULL;
    double t0 = (double)time(NULL), since = 0;
    const char *bad = "info-redis-7.0.15-bgsave-error.txt", *good = "info-redis-7.0.15-master.txt";
    poll_at(&slot, c, bad, true, t0, 1000);
    ck_assert_int_eq(active_get("Bgsave", &since), AP_PENDING);
    ck_assert(fabs(since - t0) < 1e-6);
    poll_at(&slot, c, bad, true, t0 - 3600 + 20, 1020); /* set back an hour */
    ck_assert_int_eq(active_phase("Bgsave"), AP_PENDING);
    poll_at(&slot, c, bad, true, t0 - 3600 + 31, 1031); /* 31 s on the monotonic clock */
    ck_assert_int_eq(active_get("Bgsave", &since), AP_FIRING);
    ck_assert(fabs(since - (t0 - 3600)) < 1e-6); /* when it began, in the wall clock now */
    poll_at(&slot, c, good, true, t0 - 3600 + 40, 1040);
    ck_assert_int_eq(active_phase("Bgsave"), -1); /* resolved */
    poll_at(&slot, c, bad, true, t0, 1050);
    ck_assert_int_eq(active_phase("Bgsave"), AP_PENDING);
    poll_at(&slot, c, bad, true, t0 + 3600, 1055); /* set forward an hour */
    ck_assert_int_eq(active_phase("Bgsave"), AP_PENDING);
    poll_at(&slot, c, bad, true, t0 + 3600 + 30, 1085);
    ck_assert_int_eq(active_phase("Bgsave"), AP_FIRING);
    alerts_stop();
    config_free(c);
    testutil_remove_dir(dir);
}
END_TEST

/* A rule over a bgsave status that fails at every other poll (the last one
 * failing) for about a second (100 polls, 10 ms apart); returns the state
 * file writes made meanwhile. for_s: the rule's `for`; lazy_wait: then
 * wait for (and check) the lazy write of what changed. */
static uint64_t writes_while_flapping(const char *dir, const char *for_s, bool lazy_wait)
{
    struct config *c = bgsave_rule(dir, for_s);
    ck_assert_int_eq(alerts_start(c), 0);
    for (int i = 0; i < 100 && state_writes() == 0; i++) /* the first save, at start */
        usleep(10000);
    uint64_t w0 = state_writes();
    ck_assert_uint_eq(w0, 1);
    struct alert_inst *slot = NULL;
    double t0 = (double)time(NULL);
    for (int i = 0; i < 100; i++) {
        poll_with(&slot, c, i % 2 ? "info-redis-7.0.15-bgsave-error.txt" : "info-redis-7.0.15-master.txt", true,
                  t0 + i * 0.01);
        usleep(10000);
    }
    usleep(200000);
    uint64_t w = state_writes() - w0;
    if (lazy_wait) {
        /* the pending changes are written within 5 s of the first (before
         * the stop, whose own save is not counted here) */
        for (int i = 0; i < 70 && state_writes() - w0 == w; i++)
            usleep(100000);
        ck_assert_uint_eq(state_writes() - w0, w + 1);
    }
    alerts_stop();
    config_free(c);
    return w;
}

START_TEST(pending_churn_is_saved_lazily)
{
    char dir[64], path[96];
    snprintf(dir, sizeof dir, "/tmp/rp-alerts-churn-%ld", (long)getpid());
    /* an alert going pending and back 50 times within a second: at most
     * one write then, and one within 5 s of the first change */
    uint64_t lazy = writes_while_flapping(dir, "1h", true);
    ck_assert_msg(lazy <= 1, "%llu state writes for pending alerts only", (unsigned long long)lazy);
    /* the last one is saved at stop: pending, not lost */
    snprintf(path, sizeof path, "%s/alerts.json", dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char text[8192];
    size_t len = fread(text, 1, sizeof text - 1, f);
    text[len] = 0;
    fclose(f);
    ck_assert_msg(strstr(text, "\"Bgsave\""), "%s", text);
    /* the same flapping of a rule that fires at once: 50 firings and 50
     * resolutions, saved within 50 ms (shared by those that come together;
     * a slow disk spaces them, up to 1 s): more than the lazy ones */
    uint64_t urgent = writes_while_flapping(dir, "0s", false);
    ck_assert_msg(urgent >= 2, "%llu state writes for 100 firings and resolutions", (unsigned long long)urgent);
    testutil_remove_dir(dir);
}
END_TEST

static double active_since(const char *rule)
{
    double t;
    active_get(rule, &t);
    return t;
}

/* A pending alert's `for` survives a clean stop; after a crash (the file
 * not from a clean stop: pending changes are saved lazily, it may be
 * behind) it starts again, so the alert never fires early. */
START_TEST(pending_for_restarts_after_a_crash)
{
    char dir[64], path[96], cmd[160];
    snprintf(dir, sizeof dir, "/tmp/rp-alerts-crash-%ld", (long)getpid());
    snprintf(path, sizeof path, "%s/alerts.json", dir);
    struct config *c = bgsave_rule(dir, "1h");
    for (int crash = 0; crash < 2; crash++) {
        char file[2048];
        /* a pending alert since an hour less a minute ago */
        double t0 = (double)time(NULL), since = t0 - 3540;
        snprintf(file, sizeof file,
                 "{\"version\":1,\"seq\":0,\"clean\":%s,\"alerts\":[{\"instance\":\"cache-1\",\"rule\":\"Bgsave\","
                 "\"phase\":1,\"episode\":0,\"since\":%.3f,\"last_true\":%.3f,\"alert\":{\"labels\":"
                 "{\"alertname\":\"Bgsave\",\"target\":\"cache-1\"},\"annotations\":{},\"fp\":\"0123456789abcdef\","
                 "\"episode\":0,\"starts_at\":%.3f,\"ends_at\":0,\"interval\":0,\"resolved\":false,\"seq\":0,"
                 "\"created\":%.3f}}],"
                 "\"episodes\":[],\"resolved\":[],\"outbox\":{}}",
                 crash ? "false" : "true", since, t0 - 5, since, since);
        ck_assert_int_eq(system(strcat(strcpy(cmd, "mkdir -p "), dir)), 0);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(file, f);
        fclose(f);
        ck_assert_int_eq(alerts_start(c), 0);
        struct alert_inst *slot = NULL;
        poll_with(&slot, c, "info-redis-7.0.15-bgsave-error.txt", true, t0);
        ck_assert_int_eq(active_phase("Bgsave"), AP_PENDING);
        if (crash)
            ck_assert_msg(active_since("Bgsave") >= t0 - 2, "since %.0f, now %.0f", active_since("Bgsave"), t0);
        else
            ck_assert_msg(fabs(active_since("Bgsave") - since) < 0.01, "since %.0f, want %.0f",
                          active_since("Bgsave"), since);
        /* a minute and more later: fires after a clean stop, not after a crash */
        poll_with(&slot, c, "info-redis-7.0.15-bgsave-error.txt", true, t0 + 61);
        ck_assert_int_eq(active_phase("Bgsave"), crash ? AP_PENDING : AP_FIRING);
        alerts_stop();
    }
    config_free(c);
    testutil_remove_dir(dir);
}
END_TEST

START_TEST(plans_by_name_and_forget)
{
    char dir[64], json[1024];
    snprintf(dir, sizeof dir, "/tmp/rp-alerts-forget-%ld", (long)getpid());
    snprintf(json, sizeof json,
             "{\"instances\": [{\"name\": \"cache-1\", \"address\": \"127.0.0.1:6379\"},"
             "               {\"name\": \"cache-2\", \"address\": \"127.0.0.1:6380\"}],"
             " \"alerts\": {\"builtin\": false, \"state_dir\": \"%s\","
             "  \"receivers\": [{\"name\": \"down\", \"type\": \"webhook\", \"url\": \"http://127.0.0.1:1/\"}],"
             "  \"rules\": [{\"name\": \"Down\", \"figure\": \"up\", \"op\": \"==\", \"threshold\": 0,"
             "              \"instances\": [\"cache-2\"]}]}}",
             dir);
    struct config_errors e;
    struct config *c = parse(json, &e);
    ck_assert_msg(c != NULL, "%s", e.text.p);
    ck_assert_int_eq(alerts_start(c), 0);
    struct poll_stats st = {0};
    st.polled = true;
    st.last_outcome = OUTCOME_CONNECT_REFUSED;
    st.last_poll_ts = (double)time(NULL);
    /* the rule is cache-2's by name, whatever the instance's position */
    struct alert_inst *s1 = NULL, *s2 = NULL;
    alerts_after_poll(&s1, &c->instances[0], &st, NULL, NULL, NULL);
    ck_assert_int_eq(active_phase("Down"), -1);
    alerts_after_poll(&s2, &c->instances[1], &st, NULL, NULL, NULL);
    ck_assert_int_eq(active_phase("Down"), AP_FIRING);
    ck_assert_uint_eq(outbox_len(0), 1);
    /* cache-2 is removed: its firing alert is resolved, its state freed */
    alerts_forget(&s2);
    ck_assert_ptr_null(s2);
    ck_assert_int_eq(active_phase("Down"), -1);
    pthread_mutex_lock(&alerts_hub->mu);
    const struct outbox *o = &alerts_hub->ob[0];
    ck_assert_uint_eq(o->n, 2);
    ck_assert(!o->v[0]->resolved && o->v[1]->resolved);
    ck_assert_str_eq(o->v[1]->fp, o->v[0]->fp);
    ck_assert_uint_eq(o->v[1]->episode, 1);
    ck_assert_uint_eq(alerts_hub->n_eps, 1); /* the episode count is kept */
    pthread_mutex_unlock(&alerts_hub->mu);
    alerts_forget(&s2); /* NULL: nothing */
    alerts_forget(&s1); /* no active alert: just freed */
    ck_assert_ptr_null(s1);
    ck_assert_uint_eq(outbox_len(0), 2);
    alerts_stop();
    config_free(c);
    testutil_remove_dir(dir);
}
END_TEST

START_TEST(state_write_is_atomic)
{
    char dir[64], path[128];
    snprintf(dir, sizeof dir, "/tmp/rp-alerts-atomic-%ld", (long)getpid());
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/alerts.json", dir);
    ck_assert_int_eq(state_write_atomic(path, "{\"a\":1}\n", 8), 0);
    ck_assert_int_eq(state_write_atomic(path, "{\"b\":2}\n", 8), 0);
    FILE *f = fopen(path, "r");
    char got[32] = "";
    ck_assert_ptr_nonnull(fgets(got, sizeof got, f));
    fclose(f);
    ck_assert_str_eq(got, "{\"b\":2}\n");
    /* no temporary file is left behind */
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    ck_assert_int_eq(n, 1);
    /* a write that cannot happen leaves the old file whole */
    char bad[160];
    snprintf(bad, sizeof bad, "%s/missing/alerts.json", dir);
    ck_assert_int_eq(state_write_atomic(bad, "x", 1), -1);
    unlink(path);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("alerts");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, builtin_set_loads);
    tcase_add_test(tc, overrides_and_plans);
    tcase_add_test(tc, every_error_located);
    tcase_add_test(tc, label_texts_must_be_utf8);
    tcase_add_test(tc, rule_value_errors_say_why);
    tcase_add_test(tc, receivers_parse);
    tcase_add_test(tc, receiver_secret_files);
    tcase_add_test(tc, pending_then_firing_after_for);
    tcase_add_test(tc, keep_firing_for);
    tcase_add_test(tc, hysteresis);
    tcase_add_test(tc, oscillation_one_episode);
    tcase_add_test(tc, missing_data_is_not_recovery);
    tcase_add_test(tc, figures_from_captured_info);
    tcase_add_test(tc, restart_of_redis_continues);
    tcase_add_test(tc, good_replicas_against_min_replicas_to_write);
    tcase_add_test(tc, slow_fork_ignores_short_forks);
    tcase_add_test(tc, relative_drop);
    tcase_add_test(tc, webhook_payload_v4);
    tcase_add_test(tc, agent_restart_from_state_file);
    tcase_add_test(tc, state_write_is_atomic);
    tcase_add_test(tc, silence_that_ends_lets_the_alert_through);
    tcase_add_test(tc, wall_clock_steps_move_no_for);
    tcase_add_test(tc, plans_by_name_and_forget);
    tcase_add_test(tc, pending_churn_is_saved_lazily);
    tcase_add_test(tc, pending_for_restarts_after_a_crash);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
