/* test_derive.c - every derivation on pairs of samples built from the real
 * captures: rates, the write/read split, CPU, memory doctor, AOF/RDB health,
 * fork and copy-on-write, replication, restarts, resets, missing fields. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cmdclass.h"
#include "derive.h"
#include "info.h"
#include "testutil.h"
#include "util.h"

/* The fixture with "key:value" lines replaced (or appended when new). */
static struct info_sample *mutate(const char *fixture, const char *const *kvs)
{
    size_t len;
    char *t = read_fixture(fixture, &len);
    struct buf out = BUF_INIT;
    bool *used = xcalloc(64, sizeof *used);
    for (char *save, *line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r')
            line[--l] = '\0';
        const char *colon = strchr(line, ':');
        const char *rep = NULL;
        for (int i = 0; kvs[i] && colon; i++)
            if (strncmp(kvs[i], line, (size_t)(colon - line) + 1) == 0) {
                rep = kvs[i];
                used[i] = true;
            }
        buf_puts(&out, rep ? rep : line);
        buf_puts(&out, "\r\n");
    }
    for (int i = 0; kvs[i]; i++)
        if (!used[i] && strchr(kvs[i], ':')) {
            buf_puts(&out, kvs[i]);
            buf_puts(&out, "\r\n");
        }
    struct info_sample *s = info_parse(out.p, out.len);
    buf_free(&out);
    free(t);
    free(used);
    return s;
}

static const char *none[] = {NULL};
#define M "info-redis-7.0.15-master.txt"
#define SEC 1000000ull

static bool near(double a, double b) { return fabs(a - b) <= 1e-9 * fmax(1, fabs(b)); }

START_TEST(rates_and_split)
{
    struct info_sample *a = mutate(M, none);
    const char *kv[] = {"total_commands_processed:177036", /* +2000 */
                        "cmdstat_set:calls=76003,usec=37638,usec_per_call=0.50,rejected_calls=3,failed_calls=0",
                        "cmdstat_lpush:calls=50501,usec=18832,usec_per_call=0.37,rejected_calls=0,failed_calls=1",
                        "cmdstat_get:calls=402,usec=433,usec_per_call=1.07,rejected_calls=0,failed_calls=2",
                        "cmdstat_info:calls=5,usec=141,usec_per_call=28.2,rejected_calls=0,failed_calls=0",
                        "used_cpu_sys:2.499652", "used_cpu_user:0.949262",
                        "used_cpu_sys_main_thread:2.396329", "used_cpu_user_main_thread:0.845604",
                        "keyspace_hits:91", "keyspace_misses:11",
                        "total_net_input_bytes:8376252", "expired_keys:40", "evicted_keys:0",
                        "errorstat_MISCONF:count=5", "errorstat_ERR:count=3", "total_error_replies:9",
                        "aof_delayed_fsync:2", "aof_current_size:100000", "aof_base_size:1000",
                        "rdb_changes_since_last_save:27003", NULL};
    const char *ka[] = {"aof_delayed_fsync:0", "aof_current_size:60000", NULL};
    info_sample_free(a);
    a = mutate(M, ka);
    struct info_sample *b = mutate(M, kv);
    struct derived d;
    derive(a, 10 * SEC, b, 12 * SEC, 0, NULL, NULL, &d); /* 2 seconds */
    ck_assert_int_eq(d.event, DERIVE_OK);
    ck_assert(near(d.interval_seconds, 2));
    ck_assert(near(d.v[DV_COMMANDS_PER_SECOND], 1000));
    ck_assert(near(d.v[DV_WRITE_COMMANDS_PER_SECOND], (1000 + 500) / 2.0));
    ck_assert(near(d.v[DV_READ_COMMANDS_PER_SECOND], 400 / 2.0));
    ck_assert(near(d.v[DV_OTHER_COMMANDS_PER_SECOND], 2 / 2.0));
    ck_assert(near(d.v[DV_REJECTED_CALLS_PER_SECOND], 1.5));
    ck_assert(near(d.v[DV_WRITES_REFUSED_PER_SECOND], 1.5)); /* set's rejected calls */
    ck_assert(near(d.v[DV_FAILED_CALLS_PER_SECOND], 1.0));   /* get: 0 -> 2 */
    ck_assert(near(d.v[DV_MISCONF_ERRORS_PER_SECOND], 2.5));
    ck_assert(near(d.v[DV_OOM_ERRORS_PER_SECOND], 0));
    ck_assert(near(d.v[DV_ERROR_REPLIES_PER_SECOND], 3.5));
    ck_assert(near(d.v[DV_CPU_SYS_RATIO], 0.5));
    ck_assert(near(d.v[DV_CPU_USER_RATIO], 0.25));
    ck_assert(near(d.v[DV_CPU_TOTAL_RATIO], 0.75));
    ck_assert(near(d.v[DV_CPU_MAIN_THREAD_RATIO], 0.65));
    ck_assert(near(d.v[DV_CPU_CHILDREN_RATIO], 0));
    ck_assert(near(d.v[DV_KEYSPACE_HIT_RATIO], 0.9));
    ck_assert(near(d.v[DV_NET_INPUT_BYTES_PER_SECOND], 50000));
    ck_assert(near(d.v[DV_EXPIRED_KEYS_PER_SECOND], 20));
    ck_assert(near(d.v[DV_AOF_DELAYED_FSYNCS], 2));
    ck_assert(near(d.v[DV_AOF_GROWTH_BYTES_PER_SECOND], 20000));
    ck_assert(near(d.v[DV_RDB_CHANGES_PER_SECOND], 1000));
    bool seen_set = false;
    for (size_t i = 0; i < d.n_cmds; i++)
        if (strcmp(d.cmds[i].cmd, "set") == 0) {
            seen_set = true;
            ck_assert_int_eq(d.cmds[i].cls, CMD_WRITE);
            ck_assert(near(d.cmds[i].calls_per_second, 500));
            ck_assert(near(d.cmds[i].seconds_per_call, 500e-6 / 1000));
        } else if (strcmp(d.cmds[i].cmd, "bgsave") == 0) {
            ck_assert(near(d.cmds[i].calls_per_second, 0));
            ck_assert(isnan(d.cmds[i].seconds_per_call));
        }
    ck_assert(seen_set);
    bool seen_misconf = false;
    for (size_t i = 0; i < d.n_errs; i++)
        if (strcmp(d.errs[i].err, "MISCONF") == 0)
            seen_misconf = near(d.errs[i].per_second, 2.5);
    ck_assert(seen_misconf);
    derived_clear(&d);
    info_sample_free(a);
    info_sample_free(b);
}
END_TEST

static enum cmd_class all_other(void *ctx, const char *cmd)
{
    (void)ctx;
    return strcmp(cmd, "set") == 0 ? CMD_OTHER : CMD_UNKNOWN;
}

START_TEST(server_flags_win)
{
    struct info_sample *a = mutate(M, none);
    const char *kv[] = {"cmdstat_set:calls=76003,usec=37638,usec_per_call=0.50,rejected_calls=0,failed_calls=0", NULL};
    struct info_sample *b = mutate(M, kv);
    struct derived d;
    derive(a, SEC, b, 2 * SEC, 0, all_other, NULL, &d);
    ck_assert(near(d.v[DV_WRITE_COMMANDS_PER_SECOND], 0));
    ck_assert(near(d.v[DV_OTHER_COMMANDS_PER_SECOND], 1000));
    derived_clear(&d);
    /* a learned map */
    struct cmdclass_map *m = cmdclass_map_new();
    ck_assert_int_eq(cmdclass_classify(m, "set"), CMD_WRITE); /* built-in */
    cmdclass_map_mark_asked(m, "set");
    ck_assert(cmdclass_map_known(m, "set"));
    ck_assert_int_eq(cmdclass_map_get(m, "set"), CMD_UNKNOWN);
    cmdclass_map_free(m);
    info_sample_free(a);
    info_sample_free(b);
}
END_TEST

START_TEST(builtin_table)
{
    ck_assert_int_eq(cmdclass_builtin("set"), CMD_WRITE);
    ck_assert_int_eq(cmdclass_builtin("xgroup|create"), CMD_WRITE);
    ck_assert_int_eq(cmdclass_builtin("get"), CMD_READ);
    ck_assert_int_eq(cmdclass_builtin("config|get"), CMD_OTHER);
    ck_assert_int_eq(cmdclass_builtin("info"), CMD_OTHER);
    ck_assert_int_eq(cmdclass_builtin("nonexistent"), CMD_OTHER);
    ck_assert_str_eq(cmdclass_str(CMD_UNKNOWN), "other");
}
END_TEST

/* A COMMAND INFO reply of n elements: [name, -1, [flag]] each, or nil
 * where flag is NULL. Freed with freeReplyObject. */
static redisReply *command_info_reply(const char *const *names, const char *const *flags, size_t n)
{
    redisReply *r = xcalloc(1, sizeof *r);
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = xcalloc(n, sizeof *r->element);
    for (size_t i = 0; i < n; i++) {
        redisReply *c = r->element[i] = xcalloc(1, sizeof *c);
        if (!flags[i]) {
            c->type = REDIS_REPLY_NIL;
            continue;
        }
        c->type = REDIS_REPLY_ARRAY;
        c->elements = 3;
        c->element = xcalloc(3, sizeof *c->element);
        c->element[0] = xcalloc(1, sizeof(redisReply));
        *c->element[0] = (redisReply){.type = REDIS_REPLY_STRING, .str = xstrdup(names[i]), .len = strlen(names[i])};
        c->element[1] = xcalloc(1, sizeof(redisReply));
        *c->element[1] = (redisReply){.type = REDIS_REPLY_INTEGER, .integer = -1};
        redisReply *f = c->element[2] = xcalloc(1, sizeof *f);
        f->type = REDIS_REPLY_ARRAY;
        f->elements = 1;
        f->element = xcalloc(1, sizeof *f->element);
        f->element[0] = xcalloc(1, sizeof(redisReply));
        *f->element[0] = (redisReply){.type = REDIS_REPLY_STATUS, .str = xstrdup(flags[i]), .len = strlen(flags[i])};
    }
    return r;
}

/* The map of one connection holds CMDCLASS_MAP_MAX names: a peer naming
 * new commands in every INFO cannot grow it for as long as the connection
 * lasts. Past the bound names are neither recorded nor learned, and
 * classify falls back to the built-in table for them. */
START_TEST(map_is_bounded)
{
    struct cmdclass_map *m = cmdclass_map_new();
    char name[32];
    /* filled in a scrambled order (7919 is prime to 4096): the array stays sorted */
    for (size_t i = 0; i < CMDCLASS_MAP_MAX; i++) {
        snprintf(name, sizeof name, "c%05zu", i * 7919 % CMDCLASS_MAP_MAX);
        ck_assert_int_eq(cmdclass_map_mark_asked(m, name), 0);
    }
    for (size_t i = 0; i < CMDCLASS_MAP_MAX; i++) {
        snprintf(name, sizeof name, "c%05zu", i);
        ck_assert_msg(cmdclass_map_known(m, name), "%s", name);
    }
    ck_assert_int_eq(cmdclass_map_mark_asked(m, "c00000"), 0); /* already there: fine */
    /* full: new names are refused, before, among and after the others */
    const char *over[] = {"a-new", "c00001x", "set", "get", "zzz"};
    for (size_t i = 0; i < sizeof over / sizeof *over; i++) {
        ck_assert_int_eq(cmdclass_map_mark_asked(m, over[i]), -1);
        ck_assert(!cmdclass_map_known(m, over[i]));
    }
    for (size_t i = 0; i < 1000; i++) { /* and it stays that way */
        snprintf(name, sizeof name, "d%05zu", i);
        ck_assert_int_eq(cmdclass_map_mark_asked(m, name), -1);
        ck_assert(!cmdclass_map_known(m, name));
    }
    /* names past the bound: the built-in table */
    ck_assert_int_eq(cmdclass_map_get(m, "set"), CMD_UNKNOWN);
    ck_assert_int_eq(cmdclass_classify(m, "set"), CMD_WRITE);
    ck_assert_int_eq(cmdclass_classify(m, "get"), CMD_READ);
    ck_assert_int_eq(cmdclass_classify(m, "zzz"), CMD_OTHER);
    /* a reply still teaches the names in the map, and not the others */
    const char *names[] = {"c00007", "set", "c04095", "c00008"};
    const char *flags[] = {"write", "readonly", "readonly", NULL};
    redisReply *r = command_info_reply(names, flags, 4);
    ck_assert_uint_eq(cmdclass_map_learn(m, names, 4, r), 2);
    freeReplyObject(r);
    ck_assert_int_eq(cmdclass_classify(m, "c00007"), CMD_WRITE);
    ck_assert_int_eq(cmdclass_classify(m, "c04095"), CMD_READ);
    ck_assert_int_eq(cmdclass_map_get(m, "c00008"), CMD_UNKNOWN); /* nil: asked, not learned */
    ck_assert_int_eq(cmdclass_classify(m, "set"), CMD_WRITE);       /* the built-in table, not the reply */
    ck_assert(!cmdclass_map_known(m, "set"));
    cmdclass_map_free(m);
}
END_TEST

START_TEST(restart_and_reset_are_baselines)
{
    struct info_sample *a = mutate(M, none);
    const char *newrun[] = {"run_id:0000000000000000000000000000000000000001", NULL};
    const char *lower_uptime[] = {"uptime_in_seconds:3", NULL};
    const char *resetstat[] = {"total_commands_processed:10", NULL};
    const char *cmd_down[] = {"cmdstat_set:calls=5,usec=1,usec_per_call=0.2,rejected_calls=0,failed_calls=0", NULL};
    struct {
        const char *const *kv;
        enum derive_event want;
    } cases[] = {{newrun, DERIVE_RESTART}, {lower_uptime, DERIVE_RESTART}, {resetstat, DERIVE_RESET}, {cmd_down, DERIVE_RESET}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct info_sample *b = mutate(M, cases[c].kv);
        struct derived d;
        derive(a, SEC, b, 2 * SEC, 0, NULL, NULL, &d);
        ck_assert_int_eq(d.event, cases[c].want);
        ck_assert(isnan(d.interval_seconds));
        ck_assert(isnan(d.v[DV_COMMANDS_PER_SECOND]));
        ck_assert(isnan(d.v[DV_WRITE_COMMANDS_PER_SECOND]));
        ck_assert(isnan(d.v[DV_CPU_TOTAL_RATIO]));
        for (size_t i = 0; i < d.n_cmds; i++)
            ck_assert(isnan(d.cmds[i].calls_per_second));
        ck_assert(!isnan(d.v[DV_FRAGMENTATION_RATIO])); /* instantaneous figures stay */
        derived_clear(&d);
        info_sample_free(b);
    }
    /* RESETSTAT empties commandstats: a command that vanished is a reset */
    size_t len;
    char *t = read_fixture(M, &len);
    char *cut = strstr(t, "cmdstat_incr:");
    memmove(cut, strchr(cut, '\n') + 1, strlen(strchr(cut, '\n') + 1) + 1);
    struct info_sample *b = info_parse(t, strlen(t));
    struct derived d;
    derive(a, SEC, b, 2 * SEC, 0, NULL, NULL, &d);
    ck_assert_int_eq(d.event, DERIVE_RESET);
    derived_clear(&d);
    /* first poll, and no elapsed time */
    derive(NULL, 0, a, SEC, 0, NULL, NULL, &d);
    ck_assert_int_eq(d.event, DERIVE_FIRST);
    derived_clear(&d);
    derive(a, SEC, a, SEC, 0, NULL, NULL, &d);
    ck_assert_int_eq(d.event, DERIVE_FIRST);
    derived_clear(&d);
    info_sample_free(b);
    free(t);
    info_sample_free(a);
}
END_TEST

START_TEST(memory_doctor)
{
    struct {
        const char *used, *ratio, *bytes;
        double want;
    } cases[] = {
        {"used_memory:104857600", "mem_fragmentation_ratio:1.50", "mem_fragmentation_bytes:52428800", 1},
        {"used_memory:104857600", "mem_fragmentation_ratio:1.30", "mem_fragmentation_bytes:31457280", 0},
        {"used_memory:104857600", "mem_fragmentation_ratio:1.45", "mem_fragmentation_bytes:5242880", 0},
        {"used_memory:4194304", "mem_fragmentation_ratio:4.00", "mem_fragmentation_bytes:12582912", 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *kv[] = {cases[c].used, cases[c].ratio, cases[c].bytes, NULL};
        struct info_sample *s = mutate(M, kv);
        struct derived d;
        derive(NULL, 0, s, SEC, 0, NULL, NULL, &d);
        ck_assert_msg(d.v[DV_FRAGMENTATION_PROBLEM] == cases[c].want, "case %zu", c);
        derived_clear(&d);
        info_sample_free(s);
    }
    /* the real capture: 4.78 but a 1.8 MB dataset -> not a problem */
    struct info_sample *s = mutate(M, none);
    struct derived d;
    derive(NULL, 0, s, SEC, 1795975200, NULL, NULL, &d);
    ck_assert(d.v[DV_FRAGMENTATION_PROBLEM] == 0);
    ck_assert(d.v[DV_FRAGMENTATION_RATIO] == 4.78);
    ck_assert(isnan(d.v[DV_USED_MEMORY_RATIO])); /* maxmemory 0 */
    ck_assert(d.v[DV_AOF_HEALTHY] == 1);
    ck_assert(d.v[DV_RDB_LAST_BGSAVE_OK] == 1);
    ck_assert(isnan(d.v[DV_RDB_CURRENT_BGSAVE_SECONDS]));
    /* server_time_usec 1795975130.968551 - rdb_last_save_time 1795975110 */
    ck_assert(fabs(d.v[DV_RDB_SECONDS_SINCE_LAST_SAVE] - 20.968551) < 1e-6);
    ck_assert(near(d.v[DV_LATEST_FORK_SECONDS], 804e-6));
    ck_assert(near(d.v[DV_FORK_SECONDS_PER_GB], 804e-6 / (9003008.0 / 1073741824.0)));
    ck_assert(near(d.v[DV_RDB_COW_RSS_RATIO], 630784.0 / 9003008.0));
    ck_assert(near(d.v[DV_AOF_COW_RSS_RATIO], 618496.0 / 9003008.0));
    ck_assert_uint_eq(d.n_replicas, 1);
    ck_assert(d.replicas[0].lag_bytes == 0); /* offset 225037 == master_repl_offset */
    ck_assert(d.v[DV_MAX_REPLICA_LAG_BYTES] == 0);
    ck_assert(isnan(d.v[DV_MASTER_LINK_UP]));
    derived_clear(&d);
    info_sample_free(s);
    const char *kv[] = {"maxmemory:3845872", "master_repl_offset:230037", NULL};
    s = mutate(M, kv);
    derive(NULL, 0, s, SEC, 0, NULL, NULL, &d);
    ck_assert(near(d.v[DV_USED_MEMORY_RATIO], 0.5));
    ck_assert(d.replicas[0].lag_bytes == 5000);
    derived_clear(&d);
    info_sample_free(s);
}
END_TEST

START_TEST(persistence_health)
{
    struct info_sample *s = mutate("info-redis-7.0.15-bgsave-error.txt", none);
    struct derived d;
    derive(NULL, 0, s, SEC, 0, NULL, NULL, &d);
    ck_assert(d.v[DV_RDB_LAST_BGSAVE_OK] == 0);
    ck_assert(isnan(d.v[DV_AOF_HEALTHY])); /* AOF off */
    ck_assert(d.v[DV_AOF_ENABLED] == 0);
    derived_clear(&d);
    info_sample_free(s);
    const char *bad_aof[] = {"aof_last_write_status:err", NULL};
    s = mutate(M, bad_aof);
    derive(NULL, 0, s, SEC, 0, NULL, NULL, &d);
    ck_assert(d.v[DV_AOF_HEALTHY] == 0);
    ck_assert(d.v[DV_AOF_LAST_WRITE_OK] == 0);
    derived_clear(&d);
    info_sample_free(s);
    const char *failing[] = {"aof_rewrites_consecutive_failures:2", "rdb_bgsave_in_progress:1", "rdb_current_bgsave_time_sec:7", NULL};
    s = mutate(M, failing);
    derive(NULL, 0, s, SEC, 0, NULL, NULL, &d);
    ck_assert(d.v[DV_AOF_HEALTHY] == 0);
    ck_assert(d.v[DV_RDB_CURRENT_BGSAVE_SECONDS] == 7);
    derived_clear(&d);
    info_sample_free(s);
    /* a rewrite in between: no AOF growth, no negative number */
    const char *before[] = {"aof_current_size:900000", "aof_rewrites:1", NULL};
    const char *after[] = {"aof_current_size:1000", "aof_rewrites:2", NULL};
    struct info_sample *a = mutate(M, before), *b = mutate(M, after);
    derive(a, SEC, b, 2 * SEC, 0, NULL, NULL, &d);
    ck_assert_int_eq(d.event, DERIVE_OK);
    ck_assert(isnan(d.v[DV_AOF_GROWTH_BYTES_PER_SECOND]));
    derived_clear(&d);
    info_sample_free(a);
    info_sample_free(b);
    /* a save in between: changes_since_last_save dropped, no rate */
    const char *s1[] = {"rdb_changes_since_last_save:5000", NULL};
    const char *s2[] = {"rdb_changes_since_last_save:10", "rdb_last_save_time:1795975140", NULL};
    a = mutate(M, s1);
    b = mutate(M, s2);
    derive(a, SEC, b, 2 * SEC, 0, NULL, NULL, &d);
    ck_assert(isnan(d.v[DV_RDB_CHANGES_PER_SECOND]));
    derived_clear(&d);
    info_sample_free(a);
    info_sample_free(b);
}
END_TEST

START_TEST(old_servers)
{
    /* Redis 5.0: no rejected_calls, no errorstats, no main-thread CPU */
    struct info_sample *a = mutate("info-redis-5.0.0.txt", none);
    const char *kv[] = {"cmdstat_set:calls=75103,usec=225309,usec_per_call=3.00", NULL};
    struct info_sample *b = mutate("info-redis-5.0.0.txt", kv);
    struct derived d;
    derive(a, SEC, b, 3 * SEC, 0, NULL, NULL, &d);
    ck_assert_int_eq(d.event, DERIVE_OK);
    ck_assert(near(d.v[DV_WRITE_COMMANDS_PER_SECOND], 50));
    ck_assert(isnan(d.v[DV_REJECTED_CALLS_PER_SECOND]));
    ck_assert(isnan(d.v[DV_WRITES_REFUSED_PER_SECOND]));
    ck_assert(isnan(d.v[DV_CPU_MAIN_THREAD_RATIO]));
    ck_assert(near(d.v[DV_CPU_SYS_RATIO], 0));
    derived_clear(&d);
    info_sample_free(a);
    info_sample_free(b);
    /* no rejected_calls but errorstats (hypothetical): refused writes from MISCONF/OOM */
    const char *e0[] = {"cmdstat_set:calls=1,usec=1,usec_per_call=1", "errorstat_OOM:count=1", NULL};
    const char *e1[] = {"cmdstat_set:calls=1,usec=1,usec_per_call=1", "errorstat_OOM:count=5", "errorstat_MISCONF:count=2", NULL};
    a = mutate("info-redis-6.0.0.txt", e0);
    b = mutate("info-redis-6.0.0.txt", e1);
    derive(a, SEC, b, 2 * SEC, 0, NULL, NULL, &d);
    ck_assert(near(d.v[DV_WRITES_REFUSED_PER_SECOND], 6));
    derived_clear(&d);
    /* the same on a poll that did not ask for commandstats: errorstats come
     * with every poll, so the refused writes are this poll's, not kept ones */
    struct cmd_window w = {.fresh = true};
    derive_window(NULL, 0, a, SEC, 0, NULL, NULL, &w, &d);
    derived_clear(&d);
    derive_window(a, SEC, a, 2 * SEC, 0, NULL, NULL, &w, &d);
    ck_assert(w.kept);
    ck_assert(near(d.v[DV_WRITES_REFUSED_PER_SECOND], 0));
    for (int i = 0; i < 6; i++) /* the window keeps no errorstats figure */
        ck_assert(i < 3 ? near(w.v[i], 0) : isnan(w.v[i]));
    for (int i = 6; i < CMD_WINDOW_FIGS; i++) /* the CPU ratios (6.0: no main thread figure) */
        ck_assert(i < 10 ? near(w.v[i], 0) : isnan(w.v[i]));
    derived_clear(&d);
    w.fresh = false;
    derive_window(a, 2 * SEC, b, 4 * SEC, 0, NULL, NULL, &w, &d);
    ck_assert(near(d.v[DV_WRITES_REFUSED_PER_SECOND], 3));
    derived_clear(&d);
    cmd_window_clear(&w);
    info_sample_free(a);
    info_sample_free(b);
}
END_TEST

/* A render after the sample was freed: a new parse of the same text gets
 * the derived figures' names and replicas pointed into it, figures kept;
 * a parse of another text (a list of another length) is refused. */
START_TEST(rebind_to_a_new_parse)
{
    size_t len;
    char *t = read_fixture(M, &len);
    struct buf text = BUF_INIT;
    buf_append(&text, t, len);
    buf_puts(&text, "slave0:ip=10.0.0.1,port=6380,state=online,offset=100,lag=0\r\n"
                    "slave1:ip=10.0.0.2,port=6380,state=online,offset=90,lag=1\r\n");
    struct info_sample *a = mutate(M, none), *b = info_parse(text.p, text.len);
    struct derived d;
    derive(a, SEC, b, 2 * SEC, 0, NULL, NULL, &d);
    ck_assert_uint_gt(d.n_cmds, 3);
    ck_assert_uint_eq(d.n_replicas, 2);
    char **names = xcalloc(d.n_cmds, sizeof *names);
    for (size_t i = 0; i < d.n_cmds; i++)
        names[i] = xstrdup(d.cmds[i].cmd);
    double cps = d.v[DV_COMMANDS_PER_SECOND], lag = d.replicas[1].lag_bytes, first = d.cmds[0].calls_per_second;
    info_sample_free(b);
    struct info_sample *b2 = info_parse(text.p, text.len);
    ck_assert(derived_rebind(&d, b2));
    for (size_t i = 0; i < d.n_cmds; i++) {
        ck_assert_ptr_eq(d.cmds[i].cmd, b2->cmds[i].cmd);
        ck_assert_str_eq(d.cmds[i].cmd, names[i]);
        free(names[i]);
    }
    for (size_t i = 0; i < d.n_errs; i++)
        ck_assert_ptr_eq(d.errs[i].err, b2->errs[i].err);
    ck_assert_ptr_eq(d.replicas[0].r, &b2->replicas[0]);
    ck_assert_str_eq(d.replicas[1].r->ip, "10.0.0.2");
    ck_assert(near(d.replicas[1].lag_bytes, lag));
    ck_assert(near(d.v[DV_COMMANDS_PER_SECOND], cps));
    ck_assert(isnan(first) ? isnan(d.cmds[0].calls_per_second) : near(d.cmds[0].calls_per_second, first));
    /* one replica less: not the text d came from */
    struct info_sample *c = info_parse(text.p, text.len - strlen("slave1:ip=10.0.0.2,port=6380,state=online,offset=90,lag=1\r\n"));
    const struct info_replica *r0 = d.replicas[0].r;
    ck_assert(!derived_rebind(&d, c));
    ck_assert_ptr_eq(d.replicas[0].r, r0);
    free(names);
    derived_clear(&d);
    info_sample_free(a);
    info_sample_free(b2);
    info_sample_free(c);
    buf_free(&text);
    free(t);
}
END_TEST

/* Commandstats asked every few polls (commandstats_interval), cpu and
 * server with them: the polls in between carry the kept sections, so their
 * split and CPU ratios are the last ones computed, and the server's clock
 * is moved on by the kept section's age; a fresh one is computed over the
 * time since the previous fresh one; a baseline on a poll that did not ask
 * leaves the kept section out of the next comparison. */
static double set_rate(const struct derived *d)
{
    for (size_t i = 0; i < d->n_cmds; i++)
        if (strcmp(d->cmds[i].cmd, "set") == 0)
            return d->cmds[i].calls_per_second;
    return -1;
}

START_TEST(commandstats_window)
{
    /* the fixture: total_commands_processed 175036, set 75003 calls */
    /* and used_cpu_sys 1.499652, server_time_usec 1795975130968551,
     * rdb_last_save_time 1795975110 */
    const char *b_kv[] = {"total_commands_processed:176036",
                          "cmdstat_set:calls=76003,usec=37638,usec_per_call=0.50,rejected_calls=2,failed_calls=0",
                          "used_cpu_sys:2.0", "server_time_usec:1795975140000000", NULL};
    const char *c_kv[] = {"total_commands_processed:176536", /* + 500, commandstats, cpu and server kept from b */
                          "cmdstat_set:calls=76003,usec=37638,usec_per_call=0.50,rejected_calls=2,failed_calls=0",
                          "used_cpu_sys:2.0", "server_time_usec:1795975140000000", NULL};
    const char *d_kv[] = {"total_commands_processed:178036",
                          "cmdstat_set:calls=78003,usec=38638,usec_per_call=0.50,rejected_calls=6,failed_calls=0",
                          "used_cpu_sys:3.0", "server_time_usec:1795975144000000", NULL};
    const char *e_kv[] = {"total_commands_processed:100", /* CONFIG RESETSTAT; commandstats kept from d */
                          "cmdstat_set:calls=78003,usec=38638,usec_per_call=0.50,rejected_calls=6,failed_calls=0", NULL};
    const char *f_kv[] = {"total_commands_processed:200",
                          "cmdstat_set:calls=50,usec=20,usec_per_call=0.40,rejected_calls=0,failed_calls=0", NULL};
    const char *g_kv[] = {"total_commands_processed:400",
                          "cmdstat_set:calls=150,usec=70,usec_per_call=0.47,rejected_calls=1,failed_calls=0", NULL};
    struct info_sample *a = mutate(M, none), *b = mutate(M, b_kv), *c = mutate(M, c_kv), *dd = mutate(M, d_kv);
    struct info_sample *e = mutate(M, e_kv), *f = mutate(M, f_kv), *g = mutate(M, g_kv);
    struct cmd_window w = {0};
    struct derived d;

    w.fresh = true; /* the first poll: a baseline, nothing kept */
    derive_window(NULL, 0, a, 1 * SEC, 0, NULL, NULL, &w, &d);
    ck_assert_int_eq(d.event, DERIVE_FIRST);
    ck_assert(!w.kept);
    derived_clear(&d);

    derive_window(a, 1 * SEC, b, 2 * SEC, 0, NULL, NULL, &w, &d); /* fresh: over 1 s */
    ck_assert_int_eq(d.event, DERIVE_OK);
    ck_assert(w.kept);
    ck_assert(near(set_rate(&d), 1000));
    ck_assert(near(d.v[DV_WRITES_REFUSED_PER_SECOND], 2));
    double write_b = d.v[DV_WRITE_COMMANDS_PER_SECOND];
    ck_assert(write_b >= 1000);
    ck_assert(near(d.v[DV_CPU_SYS_RATIO], 2.0 - 1.499652));
    ck_assert(near(d.v[DV_RDB_SECONDS_SINCE_LAST_SAVE], 30));
    derived_clear(&d);

    w.fresh = false; /* b's commandstats again: b's figures, the rest over this poll */
    derive_window(b, 2 * SEC, c, 3 * SEC, 0, NULL, NULL, &w, &d);
    ck_assert_int_eq(d.event, DERIVE_OK);
    ck_assert(near(d.v[DV_COMMANDS_PER_SECOND], 500));
    ck_assert(near(set_rate(&d), 1000));
    ck_assert(near(d.v[DV_WRITE_COMMANDS_PER_SECOND], write_b));
    ck_assert(near(d.v[DV_WRITES_REFUSED_PER_SECOND], 2));
    ck_assert(near(d.cmd_interval_seconds, 1) && near(d.cmd_age_seconds, 1));
    ck_assert(near(d.v[DV_CPU_SYS_RATIO], 2.0 - 1.499652)); /* b's, not 0 over this poll */
    ck_assert(near(d.v[DV_CPU_TOTAL_RATIO], 2.0 - 1.499652));
    ck_assert(near(d.v[DV_RDB_SECONDS_SINCE_LAST_SAVE], 31)); /* b's clock, a second on */
    derived_clear(&d);

    w.fresh = true; /* fresh at 6 s: over the 4 s since b's */
    derive_window(c, 3 * SEC, dd, 6 * SEC, 0, NULL, NULL, &w, &d);
    ck_assert_int_eq(d.event, DERIVE_OK);
    ck_assert(near(d.v[DV_COMMANDS_PER_SECOND], 1500.0 / 3));
    ck_assert(near(set_rate(&d), 2000.0 / 4));
    ck_assert(near(d.v[DV_WRITES_REFUSED_PER_SECOND], 4.0 / 4));
    ck_assert(near(d.interval_seconds, 3) && near(d.cmd_interval_seconds, 4) && d.cmd_age_seconds == 0);
    ck_assert(near(d.v[DV_CPU_SYS_RATIO], 1.0 / 4)); /* over the 4 s, not the 3 s since c */
    ck_assert(near(d.v[DV_RDB_SECONDS_SINCE_LAST_SAVE], 34)); /* its own clock */
    derived_clear(&d);

    w.fresh = false; /* a reset seen on a poll that did not ask */
    derive_window(dd, 6 * SEC, e, 7 * SEC, 0, NULL, NULL, &w, &d);
    ck_assert_int_eq(d.event, DERIVE_RESET);
    ck_assert(!w.kept);
    derived_clear(&d);

    w.fresh = true; /* its commandstats went down since d's: a baseline for them only */
    derive_window(e, 7 * SEC, f, 8 * SEC, 0, NULL, NULL, &w, &d);
    ck_assert_int_eq(d.event, DERIVE_OK);
    ck_assert(near(d.v[DV_COMMANDS_PER_SECOND], 100));
    ck_assert(isnan(d.v[DV_WRITE_COMMANDS_PER_SECOND]));
    ck_assert(isnan(set_rate(&d)));
    ck_assert(!w.kept);
    derived_clear(&d);

    derive_window(f, 8 * SEC, g, 10 * SEC, 0, NULL, NULL, &w, &d);
    ck_assert_int_eq(d.event, DERIVE_OK);
    ck_assert(near(set_rate(&d), 50));
    ck_assert(near(d.v[DV_WRITES_REFUSED_PER_SECOND], 0.5));
    ck_assert(w.kept);
    derived_clear(&d);

    cmd_window_clear(&w);
    info_sample_free(a), info_sample_free(b), info_sample_free(c), info_sample_free(dd);
    info_sample_free(e), info_sample_free(f), info_sample_free(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("derive");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, rates_and_split);
    tcase_add_test(tc, commandstats_window);
    tcase_add_test(tc, rebind_to_a_new_parse);
    tcase_add_test(tc, server_flags_win);
    tcase_add_test(tc, builtin_table);
    tcase_add_test(tc, map_is_bounded);
    tcase_add_test(tc, restart_and_reset_are_baselines);
    tcase_add_test(tc, memory_doctor);
    tcase_add_test(tc, persistence_health);
    tcase_add_test(tc, old_servers);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
