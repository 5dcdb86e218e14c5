/* test_advise.c - every advisor check trips and does not, on pairs of samples
 * built from the real Redis 7.0.15 capture one second apart, with prepared
 * settings (as CONFIG GET replies) and prepared host trees
 * (tests/fixtures/host/{bad,good,other}); plus the rules around them:
 * arming by settings, clearing, switching off, the config section, JSON. */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "advise.h"
#include "buf.h"
#include "cmdclass.h"
#include "confparse.h"
#include "hostfacts.h"
#include "info.h"
#include "testutil.h"
#include "util.h"

#define M "info-redis-7.0.15-master.txt"
#define SEC 1000000ull
#define NOW 1.8e9

/* The fixture with "key:value" lines replaced (or appended when new). */
static struct info_sample *mutate(const char *const *kvs)
{
    size_t len;
    char *t = read_fixture(M, &len);
    struct buf out = BUF_INIT;
    bool used[64] = {false};
    for (char *save, *line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r')
            line[--l] = '\0';
        const char *colon = strchr(line, ':');
        const char *rep = NULL;
        for (int i = 0; kvs && kvs[i] && colon; i++)
            if (strncmp(kvs[i], line, (size_t)(colon - line) + 1) == 0) {
                rep = kvs[i];
                used[i] = true;
            }
        buf_puts(&out, rep ? rep : line);
        buf_puts(&out, "\r\n");
    }
    for (int i = 0; kvs && kvs[i]; i++)
        if (!used[i]) {
            buf_puts(&out, kvs[i]);
            buf_puts(&out, "\r\n");
        }
    struct info_sample *s = info_parse(out.p, out.len);
    buf_free(&out);
    free(t);
    return s;
}

/* Settings as a CONFIG GET reply would bring them: the guide's tuned ones,
 * then the overrides ("name", "value", ..., NULL). */
static const char *const tuned[] = {
    "appendonly", "yes", "appendfsync", "everysec", "save", "", "maxmemory", "1073741824",
    "maxmemory-policy", "allkeys-lru", "maxclients", "10000", "no-appendfsync-on-rewrite", "yes",
    "auto-aof-rewrite-percentage", "100", "auto-aof-rewrite-min-size", "1073741824", "activedefrag", "yes",
    "lazyfree-lazy-eviction", "yes", "lazyfree-lazy-expire", "yes", "lazyfree-lazy-server-del", "yes",
    "lazyfree-lazy-user-del", "yes", "latency-monitor-threshold", "100", "tcp-backlog", "511",
    "maxmemory-samples", "10", "tcp-keepalive", "300", "disable-thp", "yes", NULL};

static void settings(struct config_values *cv, const char *const *over)
{
    redisReply *el[2 * 64];
    size_t n = 0;
    const char *const *lists[2] = {tuned, over};
    for (int l = 0; l < 2; l++)
        for (int i = 0; lists[l] && lists[l][i]; i += 2)
            for (int k = 0; k < 2; k++) {
                redisReply *r = xcalloc(1, sizeof *r);
                r->type = REDIS_REPLY_STRING;
                r->str = (char *)lists[l][i + k];
                r->len = strlen(r->str);
                el[n++] = r;
            }
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = n, .element = el};
    ck_assert_int_ge(collect_config_reply(cv, &arr), 1);
    for (size_t i = 0; i < n; i++)
        free(el[i]);
}

static enum cmd_class classify(void *ctx, const char *cmd)
{
    (void)ctx;
    return cmdclass_builtin(cmd);
}

/* One advisor, fed settings (with host facts from tree when given, pid 4242)
 * then polls: prev (kvs_a) and cur (kvs_b) one second apart. */
struct run {
    struct advisor a;
    struct config_values cv;
};

/* A CONFIG GET reply at now: the settings replace the last ones. */
static void run_settings_at(struct run *r, const char *const *over, const char *tree, double now)
{
    config_values_clear(&r->cv);
    settings(&r->cv, over);
    struct host_facts h;
    if (tree) {
        char root[512];
        snprintf(root, sizeof root, "%s/host/%s", FIXTURES, tree);
        hostfacts_read(root, 4242, &h);
    }
    advise_settings(&r->a, &r->cv, tree ? &h : NULL, now);
}

static void run_settings(struct run *r, const char *const *over, const char *tree)
{
    run_settings_at(r, over, tree, NOW);
}

static void run_poll(struct run *r, const char *const *a, const char *const *b, double now)
{
    struct info_sample *p = mutate(a), *c = mutate(b);
    struct derived d;
    derive(NULL, 0, p, 10 * SEC, now - 1, classify, NULL, &d); /* the previous poll: a baseline */
    advise_poll(&r->a, &r->cv, p, &d, now - 1);
    derived_clear(&d);
    derive(p, 10 * SEC, c, 11 * SEC, now, classify, NULL, &d);
    advise_poll(&r->a, &r->cv, c, &d, now);
    derived_clear(&d);
    info_sample_free(p);
    info_sample_free(c);
}

static void start(struct run *r)
{
    advisor_init(&r->a, NULL);
    memset(&r->cv, 0, sizeof r->cv);
}

static void finish_run(struct run *r)
{
    advisor_clear(&r->a);
    config_values_clear(&r->cv);
}

static bool holds(const struct run *r, enum advice_check c) { return r->a.f[c] != NULL; }

/* Trips c: settings `bad` and samples (a -> b) make it hold with severity
 * sev, its texts are filled and name what they should, and `good` settings
 * with the same samples do not. */
static void trip(enum advice_check c, enum advice_severity sev, const char *const *bad, const char *const *good,
                 const char *const *a, const char *const *b, const char *tree_bad, const char *tree_good,
                 const char *recommend)
{
    struct run r;
    start(&r);
    run_settings(&r, bad, tree_bad);
    run_poll(&r, a, b, NOW);
    ck_assert_msg(holds(&r, c), "%s does not hold", advice_check_name(c));
    const struct advice_finding *f = r.a.f[c];
    ck_assert_int_eq(f->sev, sev);
    ck_assert(f->title[0] && f->evidence[0] && f->tradeoff[0]);
    ck_assert_msg(strstr(f->recommendation, recommend), "%s: recommendation \"%s\" lacks \"%s\"",
                  advice_check_name(c), f->recommendation, recommend);
    ck_assert(f->since >= NOW - 1 && f->since <= NOW); /* some hold from the first poll */
    finish_run(&r);

    start(&r);
    run_settings(&r, good, tree_good);
    run_poll(&r, a, b, NOW);
    ck_assert_msg(!holds(&r, c), "%s holds with the good settings: %s", advice_check_name(c),
                  r.a.f[c] ? r.a.f[c]->evidence : "");
    finish_run(&r);
}

/* 2000 SETs, 2000 changes and 2000 commands in 2000 reads over the second */
static const char *const base[] = {NULL};
static const char *const writes[] = {
    "cmdstat_set:calls=77003,usec=38138,usec_per_call=0.50,rejected_calls=0,failed_calls=0",
    "total_commands_processed:177036", "total_reads_processed:177304", "rdb_changes_since_last_save:27003", NULL};

START_TEST(persistence_checks)
{
    const char *const always[] = {"appendfsync", "always", NULL}, *const everysec[] = {NULL};
    trip(ADV_APPENDFSYNC_ALWAYS, ADV_WARNING, always, everysec, base, writes, NULL, NULL,
         "CONFIG SET appendfsync everysec");
    /* under a light load appendfsync always is a fair choice: no finding */
    struct run r;
    start(&r);
    run_settings(&r, always, NULL);
    run_poll(&r, base, base, NOW);
    ck_assert(!holds(&r, ADV_APPENDFSYNC_ALWAYS));
    finish_run(&r);

    const char *const rw_no[] = {"no-appendfsync-on-rewrite", "no", NULL};
    const char *const rewriting[] = {"aof_rewrite_in_progress:1", NULL};
    trip(ADV_FSYNC_DURING_REWRITE, ADV_WARNING, rw_no, everysec, base, rewriting, NULL, NULL,
         "CONFIG SET no-appendfsync-on-rewrite yes");

    /* "60 10000" at 2000 changes/s: a fork every minute */
    const char *const often[] = {"save", "60 10000", NULL}, *const rare[] = {"save", "3600 1", NULL};
    trip(ADV_SAVE_FORKS_OFTEN, ADV_WARNING, often, rare, base, writes, NULL, NULL, "CONFIG SET save \"900 1\"");

    /* the AOF grows 100 KB/s from 3681 bytes: 64 MB minimum -> every ~11 min */
    const char *const small_min[] = {"auto-aof-rewrite-min-size", "67108864", NULL};
    const char *const grow[] = {"aof_current_size:1231273", NULL};
    trip(ADV_AOF_REWRITES_OFTEN, ADV_WARNING, small_min, everysec, base, grow, NULL, NULL,
         "CONFIG SET auto-aof-rewrite-min-size");

    const char *const both[] = {"save", "3600 1 300 100", NULL};
    trip(ADV_RDB_AND_AOF, ADV_INFO, both, everysec, base, writes, NULL, NULL, "CONFIG SET save \"\"");

    const char *const off[] = {"appendonly", "no", "save", "", NULL};
    trip(ADV_PERSISTENCE_OFF, ADV_INFO, off, everysec, base, base, NULL, NULL, "CONFIG SET appendonly yes");
    /* a replica without persistence is normal: its master has the data */
    const char *const replica[] = {"role:slave", NULL};
    start(&r);
    run_settings(&r, off, NULL);
    run_poll(&r, replica, replica, NOW);
    ck_assert(!holds(&r, ADV_PERSISTENCE_OFF));
    finish_run(&r);
}
END_TEST

START_TEST(memory_checks)
{
    const char *const nolimit[] = {"maxmemory", "0", NULL}, *const tuned_[] = {NULL};
    trip(ADV_NO_MAXMEMORY, ADV_WARNING, nolimit, tuned_, base, writes, NULL, NULL, "CONFIG SET maxmemory");

    /* used_memory 1922936: a 2000000-byte maxmemory is 96% full */
    const char *const noev[] = {"maxmemory", "2000000", "maxmemory-policy", "noeviction", NULL};
    const char *const lru[] = {"maxmemory", "2000000", NULL};
    trip(ADV_NOEVICTION_NEAR_FULL, ADV_CRITICAL, noev, lru, base, base, NULL, NULL, "maxmemory");
    struct run r;
    const char *const roomy[] = {"maxmemory", "20000000", "maxmemory-policy", "noeviction", NULL};
    start(&r);
    run_settings(&r, roomy, NULL);
    run_poll(&r, base, base, NOW);
    ck_assert(!holds(&r, ADV_NOEVICTION_NEAR_FULL));
    finish_run(&r);

    /* volatile-lru with no expiring key; the capture has 1 expiring key */
    const char *const vol[] = {"maxmemory-policy", "volatile-lru", NULL};
    const char *const no_ttl[] = {"db0:keys=997,expires=0,avg_ttl=0", "db1:keys=2,expires=0,avg_ttl=0", NULL};
    trip(ADV_VOLATILE_WITHOUT_TTL, ADV_WARNING, vol, tuned_, no_ttl, no_ttl, NULL, NULL, "allkeys-lru");
    start(&r);
    run_settings(&r, vol, NULL);
    run_poll(&r, base, base, NOW);
    ck_assert(!holds(&r, ADV_VOLATILE_WITHOUT_TTL));
    finish_run(&r);

    const char *const evicting[] = {"evicted_keys:5000", NULL};
    const char *const five[] = {"maxmemory-samples", "5", NULL};
    trip(ADV_MAXMEMORY_SAMPLES_LOW, ADV_INFO, five, tuned_, base, evicting, NULL, NULL,
         "CONFIG SET maxmemory-samples 10");

    /* 100 MB used, 200 MB resident: fragmented by MEMORY DOCTOR's rule */
    const char *const frag[] = {"used_memory:104857600", "used_memory_rss:209715200", "mem_fragmentation_ratio:2.00",
                                "mem_fragmentation_bytes:104857600", NULL};
    const char *const nodefrag[] = {"activedefrag", "no", NULL};
    trip(ADV_FRAGMENTATION_NO_DEFRAG, ADV_WARNING, nodefrag, tuned_, frag, frag, NULL, NULL,
         "CONFIG SET activedefrag yes");
    /* defrag on, but the allocator cannot: still a finding, a different fix */
    const char *const libc[] = {"used_memory:104857600", "used_memory_rss:209715200", "mem_fragmentation_ratio:2.00",
                                "mem_fragmentation_bytes:104857600", "mem_allocator:libc", NULL};
    start(&r);
    run_settings(&r, tuned_, NULL);
    run_poll(&r, libc, libc, NOW);
    ck_assert(holds(&r, ADV_FRAGMENTATION_NO_DEFRAG));
    ck_assert(strstr(r.a.f[ADV_FRAGMENTATION_NO_DEFRAG]->recommendation, "jemalloc"));
    finish_run(&r);

    const char *const lazy_off[] = {"lazyfree-lazy-eviction", "no", NULL};
    trip(ADV_LAZYFREE_OFF, ADV_WARNING, lazy_off, tuned_, base, evicting, NULL, NULL,
         "CONFIG SET lazyfree-lazy-eviction yes");
    const char *const expiring[] = {"expired_keys:5000", NULL};
    const char *const lazy_exp_off[] = {"lazyfree-lazy-expire", "no", NULL};
    trip(ADV_LAZYFREE_OFF, ADV_WARNING, lazy_exp_off, tuned_, base, expiring, NULL, NULL,
         "CONFIG SET lazyfree-lazy-expire yes");
}
END_TEST

START_TEST(client_checks)
{
    const char *const tuned_[] = {NULL};
    /* 2000 commands in 2000 reads: one command per read */
    struct run r;
    const char *const piped[] = {
        "cmdstat_set:calls=77003,usec=38138,usec_per_call=0.50,rejected_calls=0,failed_calls=0",
        "total_commands_processed:177036", "total_reads_processed:175344", NULL};
    start(&r);
    run_settings(&r, tuned_, NULL);
    run_poll(&r, base, writes, NOW);
    ck_assert(holds(&r, ADV_NO_PIPELINING));
    ck_assert_int_eq(r.a.f[ADV_NO_PIPELINING]->sev, ADV_WARNING);
    ck_assert(strstr(r.a.f[ADV_NO_PIPELINING]->evidence, "1.00 commands per read"));
    finish_run(&r);
    start(&r);
    run_settings(&r, tuned_, NULL);
    run_poll(&r, base, piped, NOW);
    ck_assert(!holds(&r, ADV_NO_PIPELINING));
    finish_run(&r);

    /* 2000 commands over 2000 new connections */
    const char *const churn[] = {
        "cmdstat_set:calls=77003,usec=38138,usec_per_call=0.50,rejected_calls=0,failed_calls=0",
        "total_commands_processed:177036", "total_reads_processed:175344", "total_connections_received:2272", NULL};
    start(&r);
    run_settings(&r, tuned_, NULL);
    run_poll(&r, base, churn, NOW);
    ck_assert(holds(&r, ADV_NO_CONNECTION_REUSE));
    ck_assert(strstr(r.a.f[ADV_NO_CONNECTION_REUSE]->recommendation, "connection pool"));
    finish_run(&r);
    start(&r);
    run_settings(&r, tuned_, NULL);
    run_poll(&r, base, piped, NOW);
    ck_assert(!holds(&r, ADV_NO_CONNECTION_REUSE));
    finish_run(&r);

    const char *const rejected[] = {"rejected_connections:3", NULL};
    start(&r);
    run_settings(&r, tuned_, NULL);
    run_poll(&r, base, rejected, NOW);
    ck_assert(holds(&r, ADV_REJECTED_CONNECTIONS));
    ck_assert_int_eq(r.a.f[ADV_REJECTED_CONNECTIONS]->sev, ADV_CRITICAL);
    ck_assert(strstr(r.a.f[ADV_REJECTED_CONNECTIONS]->recommendation, "CONFIG SET maxclients 20000"));
    finish_run(&r);
    start(&r);
    run_settings(&r, tuned_, NULL);
    run_poll(&r, rejected, rejected, NOW);
    ck_assert(!holds(&r, ADV_REJECTED_CONNECTIONS));
    finish_run(&r);

    const char *const full[] = {"connected_clients:9500", NULL};
    start(&r);
    run_settings(&r, tuned_, NULL);
    run_poll(&r, full, full, NOW);
    ck_assert(holds(&r, ADV_CLIENTS_NEAR_MAXCLIENTS));
    finish_run(&r);
    start(&r);
    run_settings(&r, tuned_, NULL);
    run_poll(&r, base, base, NOW);
    ck_assert(!holds(&r, ADV_CLIENTS_NEAR_MAXCLIENTS));
    finish_run(&r);
}
END_TEST

/* A holding finding's texts follow the measured values, but not every poll:
 * once ADVICE_REFRESH_SECONDS and (a rate check) ADVICE_REFRESH_POLLS polls
 * have passed since they were written, or ADVICE_REFRESH_MAX_SECONDS; and at
 * once when the texts were written without rates (a first poll) and the
 * poll has them. Its JSON is rebuilt with them. */
struct series {
    struct run r;
    struct info_sample *prev;
    uint64_t prev_us;
};

static void series_start(struct series *z)
{
    const char *const tuned_[] = {NULL};
    start(&z->r);
    run_settings(&z->r, tuned_, NULL);
    z->prev = NULL;
    z->prev_us = 0;
}

/* A poll at now (Unix s) with this connected_clients line; the one before
 * is its baseline, so that every poll after the first has rates. */
static void poll_clients(struct series *z, const char *clients, double now)
{
    const char *const kv[] = {clients, NULL};
    struct info_sample *s = mutate(kv);
    uint64_t us = (uint64_t)((now - NOW + 100) * SEC);
    struct derived d;
    derive(z->prev, z->prev_us, s, us, now, classify, NULL, &d);
    advise_poll(&z->r.a, &z->r.cv, s, &d, now);
    derived_clear(&d);
    info_sample_free(z->prev);
    z->prev = s;
    z->prev_us = us;
}

static void series_end(struct series *z)
{
    info_sample_free(z->prev);
    finish_run(&z->r);
}

/* NULL when c's finding holds and its texts and JSON carry what; else what
 * it has instead. */
static const char *says(const struct series *z, enum advice_check c, const char *what)
{
    const struct advice_finding *f = z->r.a.f[c];
    if (!f)
        return "the finding does not hold";
    if (!strstr(f->evidence, what) || !f->json || !strstr(f->json, what))
        return f->evidence;
    return NULL;
}

/* The finding says what, or the test fails naming the step (a label and a number). */
#define SAYS(z, what, label, k)                                                                         \
    do {                                                                                                \
        const char *got_ = says(z, ADV_CLIENTS_NEAR_MAXCLIENTS, what);                                  \
        ck_assert_msg(!got_, "want \"%s\", have \"%s\" (%s %d)", what, got_ ? got_ : "", label, (int)(k)); \
    } while (0)

START_TEST(texts_refresh)
{
    struct series z;
    /* a 10 s interval: every poll is ADVICE_REFRESH_SECONDS after the last */
    series_start(&z);
    poll_clients(&z, "connected_clients:9500", NOW); /* a first poll: no rates */
    SAYS(&z, "connected_clients 9500", "first poll", 0);
    double since = z.r.a.f[ADV_CLIENTS_NEAR_MAXCLIENTS]->since;
    poll_clients(&z, "connected_clients:9600", NOW + 10); /* the first with rates: rewritten */
    SAYS(&z, "connected_clients 9600", "first poll with rates", 1);
    for (int i = 1; i < ADVICE_REFRESH_POLLS; i++) {
        poll_clients(&z, "connected_clients:9700", NOW + 10 + 10.0 * i);
        SAYS(&z, "connected_clients 9600", "polls after the rewrite:", i);
    }
    double t = NOW + 10 + 10.0 * ADVICE_REFRESH_POLLS;
    poll_clients(&z, "connected_clients:9700", t);
    SAYS(&z, "connected_clients 9700", "polls after the rewrite:", ADVICE_REFRESH_POLLS);
    poll_clients(&z, "connected_clients:9800", t + 10); /* the count starts again */
    SAYS(&z, "connected_clients 9700", "polls after the second rewrite:", 1);
    ck_assert(z.r.a.f[ADV_CLIENTS_NEAR_MAXCLIENTS]->since == since); /* the same finding, still holding */
    series_end(&z);

    /* a 1 s interval: the texts wait for ADVICE_REFRESH_SECONDS */
    series_start(&z);
    poll_clients(&z, "connected_clients:9500", NOW);
    poll_clients(&z, "connected_clients:9600", NOW + 1);
    SAYS(&z, "connected_clients 9600", "first poll with rates", 1);
    for (int i = 1; i < ADVICE_REFRESH_SECONDS; i++) {
        poll_clients(&z, "connected_clients:9700", NOW + 1 + i);
        SAYS(&z, "connected_clients 9600", "seconds after the rewrite:", i);
    }
    poll_clients(&z, "connected_clients:9700", NOW + 1 + ADVICE_REFRESH_SECONDS);
    SAYS(&z, "connected_clients 9700", "seconds after the rewrite:", ADVICE_REFRESH_SECONDS);
    series_end(&z);

    /* a 30 s interval: ADVICE_REFRESH_MAX_SECONDS before ADVICE_REFRESH_POLLS
     * polls; and a clock gone back rewrites them */
    series_start(&z);
    poll_clients(&z, "connected_clients:9500", NOW);
    poll_clients(&z, "connected_clients:9600", NOW + 30);
    poll_clients(&z, "connected_clients:9700", NOW + 30 + ADVICE_REFRESH_MAX_SECONDS - 1);
    SAYS(&z, "connected_clients 9600", "seconds after the rewrite:", ADVICE_REFRESH_MAX_SECONDS - 1);
    poll_clients(&z, "connected_clients:9700", NOW + 30 + ADVICE_REFRESH_MAX_SECONDS);
    SAYS(&z, "connected_clients 9700", "seconds after the rewrite:", ADVICE_REFRESH_MAX_SECONDS);
    poll_clients(&z, "connected_clients:9800", NOW + 60);
    SAYS(&z, "connected_clients 9800", "seconds the clock went back:", 29);
    series_end(&z);

    /* a settings check: its texts follow the CONFIG GET replies every
     * ADVICE_REFRESH_SECONDS (somaxconn 128 in the bad tree) */
    struct run r;
    start(&r);
    const char *const backlogs[][3] = {{"tcp-backlog", "511", NULL}, {"tcp-backlog", "600", NULL}};
    const double at[] = {NOW, NOW + ADVICE_REFRESH_SECONDS - 1, NOW + ADVICE_REFRESH_SECONDS};
    const char *want[] = {"tcp-backlog = 511", "tcp-backlog = 511", "tcp-backlog = 600"};
    for (int i = 0; i < 3; i++) {
        run_settings_at(&r, backlogs[i > 0], "bad", at[i]);
        const struct advice_finding *f = r.a.f[ADV_SOMAXCONN_BELOW_BACKLOG];
        ck_assert_msg(f && strstr(f->evidence, want[i]) && f->json && strstr(f->json, want[i]),
                      "CONFIG GET %d: want \"%s\", have \"%s\"", i, want[i], f ? f->evidence : "(none)");
    }
    finish_run(&r);
}
END_TEST

START_TEST(host_checks)
{
    const char *const tuned_[] = {NULL};
    /* THP [always] trips where the server cannot opt out (Redis < 6.2: no
     * disable-thp) or does not */
    const char *const no_optout[] = {"disable-thp", "no", NULL};
    trip(ADV_THP_ALWAYS, ADV_WARNING, no_optout, tuned_, base, base, "bad", "bad", "transparent_hugepage");
    trip(ADV_THP_ALWAYS, ADV_WARNING, no_optout, no_optout, base, base, "bad", "good", "madvise");
    const char *const snap[] = {"appendonly", "no", "save", "3600 1", NULL};
    const char *const nopersist[] = {"appendonly", "no", "save", "", NULL};
    trip(ADV_OVERCOMMIT_MEMORY, ADV_WARNING, snap, nopersist, base, base, "bad", "bad", "vm.overcommit_memory=1");
    trip(ADV_OVERCOMMIT_MEMORY, ADV_WARNING, tuned_, tuned_, base, base, "bad", "good", "vm.overcommit_memory=1");
    /* somaxconn 128 against tcp-backlog 511 */
    trip(ADV_SOMAXCONN_BELOW_BACKLOG, ADV_WARNING, tuned_, tuned_, base, base, "bad", "good",
         "sysctl net.core.somaxconn=511");
    const char *const small_backlog[] = {"tcp-backlog", "100", NULL};
    trip(ADV_SOMAXCONN_BELOW_BACKLOG, ADV_WARNING, tuned_, small_backlog, base, base, "bad", "bad", "somaxconn");
    /* 1024 open files against maxclients 10000 */
    trip(ADV_OPEN_FILES_LIMIT, ADV_WARNING, tuned_, tuned_, base, base, "bad", "good", "LimitNOFILE=10032");
    const char *const few[] = {"maxclients", "900", NULL};
    trip(ADV_OPEN_FILES_LIMIT, ADV_WARNING, tuned_, few, base, base, "bad", "bad", "LimitNOFILE");
    /* no host facts (not on this host): no host finding, whatever the tree */
    struct run r;
    start(&r);
    run_settings(&r, no_optout, NULL);
    for (int c = ADV_THP_ALWAYS; c <= ADV_OPEN_FILES_LIMIT; c++)
        ck_assert(!holds(&r, (enum advice_check)c));
    finish_run(&r);

    const char *const ka0[] = {"tcp-keepalive", "0", NULL};
    trip(ADV_TCP_KEEPALIVE_OFF, ADV_INFO, ka0, tuned_, base, base, NULL, NULL, "CONFIG SET tcp-keepalive 300");
    const char *const lm0[] = {"latency-monitor-threshold", "0", NULL};
    trip(ADV_LATENCY_MONITOR_OFF, ADV_INFO, lm0, tuned_, base, base, NULL, NULL,
         "CONFIG SET latency-monitor-threshold 100");
}
END_TEST

static void put_file(const char *root, const char *rel, const char *text)
{
    char path[600], dir[700];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(dir, sizeof dir, "mkdir -p \"$(dirname '%s')\"", path);
    ck_assert_int_eq(system(dir), 0);
    if (text) {
        FILE *f = fopen(path, "w");
        ck_assert(f);
        fputs(text, f);
        fclose(f);
    } else {
        ck_assert_int_eq(mkfifo(path, 0600), 0); /* a FIFO nobody writes */
    }
}

/* A host_root of someone's making: values the kernel never writes are
 * unknown (4294967297 was read as 1 through a cast to int), and a FIFO in
 * place of a file is not read (it blocked the loop thread in open()). */
START_TEST(host_facts_hostile_root)
{
    char root[64];
    snprintf(root, sizeof root, "/tmp/rp-advise-hostroot-%ld", (long)getpid()); /* as the other suites name theirs */
    testutil_remove_dir(root); /* a run killed before its end left it */
    put_file(root, "proc/sys/vm/overcommit_memory", "4294967297\n");
    put_file(root, "proc/sys/net/core/somaxconn", "99999999999\n");
    put_file(root, "sys/kernel/mm/transparent_hugepage/enabled", NULL);
    struct host_facts h;
    hostfacts_read_kernel(root, &h); /* returns: the FIFO is not opened for reading */
    ck_assert_int_eq(h.overcommit_memory, -1);
    ck_assert_int_eq(h.somaxconn, -1);
    ck_assert_int_eq(h.thp, THP_UNKNOWN);
    put_file(root, "proc/sys/vm/overcommit_memory", "2\n");
    put_file(root, "proc/sys/net/core/somaxconn", "4096\n");
    hostfacts_read_kernel(root, &h);
    ck_assert_int_eq(h.overcommit_memory, 2);
    ck_assert_int_eq(h.somaxconn, 4096);
    testutil_remove_dir(root);
}
END_TEST

START_TEST(host_facts_and_locality)
{
    char root[512];
    struct host_facts h;
    snprintf(root, sizeof root, "%s/host/bad", FIXTURES);
    hostfacts_read(root, 4242, &h);
    ck_assert_int_eq(h.thp, THP_ALWAYS);
    ck_assert_int_eq(h.overcommit_memory, 0);
    ck_assert_int_eq(h.somaxconn, 128);
    ck_assert_int_eq(h.nofile_soft, 1024);
    hostfacts_read("/nonexistent-root", 1, &h);
    ck_assert_int_eq(h.thp, THP_UNKNOWN);
    ck_assert_int_eq(h.overcommit_memory, -1);
    ck_assert_int_eq(h.nofile_soft, -1);
    ck_assert_int_eq(hostfacts_parse_thp("always madvise [never]\n"), THP_NEVER);
    ck_assert_int_eq(hostfacts_parse_thp("garbage"), THP_UNKNOWN);
    ck_assert_int_eq(hostfacts_parse_nofile("Max open files            unlimited            unlimited  files\n"), -2);

    char how[256];
    struct instance_cfg unix_ = {.kind = ADDR_UNIX, .path = "/run/redis.sock"};
    ck_assert(hostfacts_is_local(root, &unix_, 0, how, sizeof how));
    struct instance_cfg lo = {.kind = ADDR_TCP, .host = "127.0.0.1", .port = 6379};
    ck_assert(hostfacts_is_local(root, &lo, 4242, how, sizeof how));
    ck_assert(strstr(how, "redis-server"));
    ck_assert(!hostfacts_is_local(root, &lo, 0, how, sizeof how));   /* pid not known yet */
    ck_assert(!hostfacts_is_local(root, &lo, 4243, how, sizeof how)); /* no such local process */
    snprintf(root, sizeof root, "%s/host/other", FIXTURES);
    ck_assert(!hostfacts_is_local(root, &lo, 77, how, sizeof how)); /* a local process, not Redis */
    ck_assert(strstr(how, "sshd"));
    struct instance_cfg v6 = {.kind = ADDR_TCP, .host = "::1", .port = 6379};
    snprintf(root, sizeof root, "%s/host/bad", FIXTURES);
    ck_assert(hostfacts_is_local(root, &v6, 4242, how, sizeof how));
    struct instance_cfg remote = {.kind = ADDR_TCP, .host = "10.1.2.3", .port = 6379};
    ck_assert(!hostfacts_is_local(root, &remote, 4242, how, sizeof how));
}
END_TEST

/* The agent's host step: local by the tree's proc/4242/comm, facts read once
 * per host_interval or when the process changes, host findings from them. */
START_TEST(host_step_caches)
{
    char root[512];
    snprintf(root, sizeof root, "%s/host/bad", FIXTURES);
    struct advice_cfg cfg = {.enabled = true, .host_root = root, .host_interval = 600};
    advice_opts_default(&cfg.global);
    struct advisor *a = advisor_new(&cfg, "r1");
    struct config_values cv = {0};
    settings(&cv, NULL);
    struct instance_cfg lo = {.name = "r1", .kind = ADDR_TCP, .host = "127.0.0.1", .port = 6379};
    const char *const pid[] = {"process_id:4242", NULL}, *const other[] = {"process_id:4243", NULL};
    struct info_sample *s = mutate(pid), *s2 = mutate(other);
    advise_on_config(a, &lo, &cv, NULL, NOW); /* no sample yet: pid unknown, not local */
    ck_assert_int_eq(a->local, 0);
    ck_assert_ptr_null(a->f[ADV_SOMAXCONN_BELOW_BACKLOG]);
    advise_on_config(a, &lo, &cv, s, NOW + 1);
    ck_assert_int_eq(a->local, 1);
    ck_assert_ptr_nonnull(a->f[ADV_SOMAXCONN_BELOW_BACKLOG]);
    ck_assert_ptr_nonnull(a->f[ADV_OPEN_FILES_LIMIT]);
    ck_assert(a->host_ts == NOW + 1);
    advise_on_config(a, &lo, &cv, s, NOW + 60); /* same process, within host_interval: not read again */
    ck_assert(a->host_ts == NOW + 1);
    advise_on_config(a, &lo, &cv, s, NOW + 601); /* host_interval passed */
    ck_assert(a->host_ts == NOW + 601);
    advise_on_config(a, &lo, &cv, s2, NOW + 602); /* another process (a restart): decided again */
    ck_assert_int_eq(a->local, 0);
    ck_assert_ptr_null(a->f[ADV_OPEN_FILES_LIMIT]);
    info_sample_free(s);
    info_sample_free(s2);
    config_values_clear(&cv);
    advisor_free(a);
}
END_TEST

START_TEST(clearing_and_switching_off)
{
    const char *const always[] = {"appendfsync", "always", NULL}, *const everysec[] = {NULL};
    struct run r;
    start(&r);
    run_settings(&r, always, NULL);
    run_poll(&r, base, writes, NOW);
    ck_assert(holds(&r, ADV_APPENDFSYNC_ALWAYS));
    /* one quiet poll does not clear it, the second does; since is kept */
    run_poll(&r, base, writes, NOW + 1);
    ck_assert(r.a.f[ADV_APPENDFSYNC_ALWAYS]->since == NOW);
    run_poll(&r, base, base, NOW + 2);
    ck_assert(holds(&r, ADV_APPENDFSYNC_ALWAYS));
    run_poll(&r, base, base, NOW + 3);
    ck_assert(!holds(&r, ADV_APPENDFSYNC_ALWAYS));
    /* a settings change clears it at once */
    run_poll(&r, base, writes, NOW + 4);
    ck_assert(holds(&r, ADV_APPENDFSYNC_ALWAYS));
    config_values_clear(&r.cv);
    run_settings(&r, everysec, NULL);
    ck_assert(!holds(&r, ADV_APPENDFSYNC_ALWAYS));
    /* unarmed checks are not evaluated: the same load finds nothing */
    run_poll(&r, base, writes, NOW + 5);
    ck_assert(!holds(&r, ADV_APPENDFSYNC_ALWAYS));
    ck_assert_int_eq(advisor_worst(&r.a), ADV_WARNING); /* no_pipelining */
    finish_run(&r);

    /* switched off for this instance */
    struct advice_opts o;
    advice_opts_default(&o);
    o.off[ADV_APPENDFSYNC_ALWAYS] = o.off[ADV_NO_PIPELINING] = true;
    advisor_init(&r.a, &o);
    memset(&r.cv, 0, sizeof r.cv);
    run_settings(&r, always, NULL);
    run_poll(&r, base, writes, NOW);
    ck_assert(!holds(&r, ADV_APPENDFSYNC_ALWAYS));
    ck_assert(!holds(&r, ADV_NO_PIPELINING));
    finish_run(&r);

    /* a threshold from the configuration */
    advice_opts_default(&o);
    o.t[ADVT_WRITES_PER_SECOND] = 5000;
    advisor_init(&r.a, &o);
    memset(&r.cv, 0, sizeof r.cv);
    run_settings(&r, always, NULL);
    run_poll(&r, base, writes, NOW);
    ck_assert(!holds(&r, ADV_APPENDFSYNC_ALWAYS));
    finish_run(&r);
}
END_TEST

/* The guide's tuned settings under a pipelined write load: no persistence,
 * memory or client finding; and a default server at idle only the
 * informational ones. */
START_TEST(no_false_positives)
{
    const char *const piped[] = {
        "cmdstat_set:calls=277003,usec=138138,usec_per_call=0.50,rejected_calls=0,failed_calls=0",
        "total_commands_processed:377036", "total_reads_processed:179304", "aof_current_size:1328873", NULL};
    struct run r;
    start(&r);
    run_settings(&r, NULL, "good");
    run_poll(&r, base, piped, NOW);
    for (int c = 0; c < ADV_COUNT; c++)
        ck_assert_msg(!holds(&r, (enum advice_check)c), "%s: %s", advice_check_name((enum advice_check)c),
                      r.a.f[c] ? r.a.f[c]->evidence : "");
    finish_run(&r);

    /* Redis 7.0's defaults, idle */
    const char *const defaults[] = {"appendonly", "no", "save", "3600 1 300 100 60 10000", "maxmemory", "0",
                                    "maxmemory-policy", "noeviction", "no-appendfsync-on-rewrite", "no",
                                    "auto-aof-rewrite-min-size", "67108864", "activedefrag", "no",
                                    "lazyfree-lazy-eviction", "no", "lazyfree-lazy-expire", "no",
                                    "latency-monitor-threshold", "0", "maxmemory-samples", "5", "disable-thp", "yes",
                                    NULL};
    start(&r);
    run_settings(&r, defaults, "good");
    run_poll(&r, base, base, NOW);
    for (int c = 0; c < ADV_COUNT; c++)
        if (c != ADV_LATENCY_MONITOR_OFF)
            ck_assert_msg(!holds(&r, (enum advice_check)c), "%s", advice_check_name((enum advice_check)c));
    ck_assert(holds(&r, ADV_LATENCY_MONITOR_OFF));
    ck_assert_int_eq(advisor_worst(&r.a), ADV_INFO);
    finish_run(&r);
}
END_TEST

START_TEST(json_output)
{
    const char *const bad[] = {"appendfsync", "always", "tcp-keepalive", "0", "save", "60 \"x\"", NULL};
    struct run r;
    start(&r);
    run_settings(&r, bad, NULL);
    run_poll(&r, base, writes, NOW);
    struct buf b = BUF_INIT;
    advice_json(&r.a, &b);
    cJSON *j = cJSON_ParseWithLength(b.p, b.len);
    ck_assert_msg(cJSON_IsArray(j), "%s", b.p);
    ck_assert_int_eq(cJSON_GetArraySize(j), (int)r.a.n_holding);
    const cJSON *e = cJSON_GetArrayItem(j, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(e, "id")->valuestring, "appendfsync_always");
    ck_assert_str_eq(cJSON_GetObjectItem(e, "severity")->valuestring, "warning");
    ck_assert_str_eq(cJSON_GetObjectItem(e, "group")->valuestring, "persistence");
    ck_assert(cJSON_GetObjectItem(e, "since")->valuedouble == NOW);
    cJSON_Delete(j);
    buf_free(&b);
    finish_run(&r);
}
END_TEST

static struct advice_cfg *parse(const char *json, struct config_errors *errs)
{
    cJSON *root = cJSON_Parse(json);
    ck_assert_ptr_nonnull(root);
    struct conf_ctx c = {NULL, errs, "test"};
    const char *names[] = {"r1", "r2"};
    struct advice_cfg *cfg = advice_cfg_parse(&c, root, names, 2);
    cJSON_Delete(root);
    return cfg;
}

START_TEST(config_section)
{
    struct config_errors errs = {BUF_INIT, 0};
    struct advisor *a;
    struct advice_cfg *cfg = parse("{\"host_root\":\"/srv/root\",\"host_interval\":\"30s\",\"thresholds\":{\"write_commands_per_second\":50},"
                                   "\"disable\":[\"latency_monitor_off\"],"
                                   "\"instances\":{\"r2\":{\"disable\":[\"no_pipelining\"],"
                                   "\"thresholds\":{\"min_commands_per_read\":3}}}}",
                                   &errs);
    ck_assert_msg(errs.count == 0, "%s", errs.text.p);
    ck_assert_str_eq(cfg->host_root, "/srv/root");
    ck_assert(cfg->host_interval == 30);
    struct advice_opts o;
    advice_opts_for(cfg, "r1", &o);
    ck_assert(o.t[ADVT_WRITES_PER_SECOND] == 50 && o.off[ADV_LATENCY_MONITOR_OFF] && !o.off[ADV_NO_PIPELINING]);
    advice_opts_for(cfg, "r2", &o);
    ck_assert(o.t[ADVT_WRITES_PER_SECOND] == 50 && o.off[ADV_LATENCY_MONITOR_OFF] && o.off[ADV_NO_PIPELINING]);
    ck_assert(o.t[ADVT_COMMANDS_PER_READ] == 3);
    advice_cfg_free(cfg);

    cfg = parse("{\"thresholds\":{\"bogus\":1,\"maxmemory_samples\":-1},\"disable\":[\"nope\",3],"
                "\"instances\":{\"r9\":{}},\"enabled\":\"yes\",\"extra\":1,\"host_interval\":\"10ms\"}",
                &errs);
    ck_assert_int_eq(errs.count, 8);
    ck_assert_msg(strstr(errs.text.p, "advice.thresholds.bogus") && strstr(errs.text.p, "unknown threshold"),
                  "%s", errs.text.p);
    ck_assert(strstr(errs.text.p, "advice.disable[0]") && strstr(errs.text.p, "unknown check \"nope\""));
    ck_assert(strstr(errs.text.p, "advice.instances.r9") && strstr(errs.text.p, "no instance is named"));
    ck_assert(strstr(errs.text.p, "unknown key \"extra\""));
    advice_cfg_free(cfg);
    config_errors_free(&errs);

    /* through the whole file: located errors, and the section reaches the config */
    const char *file = "{\"instances\":[{\"name\":\"r1\",\"address\":\"redis://127.0.0.1:6379\"}],\n"
                       " \"advice\":{\"disable\":[\"bogus\"]}}";
    ck_assert_ptr_null(config_parse(file, strlen(file), "t.json", &errs));
    ck_assert_msg(strstr(errs.text.p, "advice.disable[0] (line 2, column 23): unknown check \"bogus\""), "%s",
                  errs.text.p);
    config_errors_free(&errs);
    const char *ok = "{\"instances\":[{\"name\":\"r1\",\"address\":\"redis://127.0.0.1:6379\"}],"
                     "\"advice\":{\"instances\":{\"r1\":{\"disable\":[\"no_pipelining\"]}}}}";
    struct config *whole = config_parse(ok, strlen(ok), "t.json", &errs);
    ck_assert_ptr_nonnull(whole);
    a = advisor_new(whole->advice, "r1");
    ck_assert(a->o.off[ADV_NO_PIPELINING]);
    advisor_free(a);
    config_free(whole);

    cfg = parse("{\"enabled\":false}", &errs);
    ck_assert_ptr_null(advisor_new(cfg, "r1"));
    advice_cfg_free(cfg);
    a = advisor_new(NULL, "r1");
    ck_assert_ptr_nonnull(a);
    advisor_free(a);
    config_errors_free(&errs);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("advise");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, persistence_checks);
    tcase_add_test(tc, memory_checks);
    tcase_add_test(tc, client_checks);
    tcase_add_test(tc, texts_refresh);
    tcase_add_test(tc, host_checks);
    tcase_add_test(tc, host_facts_and_locality);
    tcase_add_test(tc, host_step_caches);
    tcase_add_test(tc, clearing_and_switching_off);
    tcase_add_test(tc, no_false_positives);
    tcase_add_test(tc, host_facts_hostile_root);
    tcase_add_test(tc, json_output);
    tcase_add_test(tc, config_section);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
