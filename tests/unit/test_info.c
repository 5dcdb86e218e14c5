/* test_info.c - the INFO parser on real captures, on fixtures built for
 * every supported Redis/Valkey version, and on malformed input. */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "collect.h"
#include "http.h"
#include "info.h"
#include "prom.h"
#include "publish.h"
#include "render.h"
#include "testutil.h"
#include "util.h"

static struct info_sample *load(const char *name)
{
    size_t len;
    char *t = read_fixture(name, &len);
    struct info_sample *s = info_parse(t, len);
    free(t);
    return s;
}

static struct info_sample *parse_str(const char *t) { return info_parse(t, strlen(t)); }

/* The entry named key; fails the test when the parser lost it. */
static const struct info_entry *entry(const struct info_sample *s, const char *key)
{
    for (size_t i = 0; i < s->n_entries; i++)
        if (strcmp(s->entries[i].key, key) == 0)
            return &s->entries[i];
    ck_abort_msg("INFO entry %s missing", key);
    return NULL;
}

START_TEST(real_master)
{
    struct info_sample *s = load("info-redis-7.0.15-master.txt");
    ck_assert_uint_eq(s->malformed, 0);
    ck_assert(info_num(s, INFO_USED_MEMORY) == 1922936);
    ck_assert(info_num(s, INFO_MEM_FRAGMENTATION_RATIO) == 4.78);
    ck_assert(info_num(s, INFO_RDB_LAST_BGSAVE_STATUS) == 1);
    ck_assert(info_num(s, INFO_RDB_CURRENT_BGSAVE_TIME_SEC) == -1);
    ck_assert(info_num(s, INFO_LATEST_FORK_USEC) == 804e-6);
    ck_assert(info_num(s, INFO_TOTAL_COMMANDS_PROCESSED) == 175036);
    ck_assert(info_num(s, INFO_USED_CPU_SYS_MAIN_THREAD) == 1.496329);
    ck_assert(!info_has(s, INFO_MASTER_LINK_STATUS)); /* replica-only field */
    ck_assert_str_eq(info_str(s, "role"), "master");
    ck_assert_str_eq(info_str(s, "redis_version"), "7.0.15");
    ck_assert_str_eq(info_str(s, "config_file"), "");

    ck_assert_uint_eq(s->n_cmds, 15);
    const struct info_cmdstat *cg = NULL, *incr = NULL;
    for (size_t i = 0; i < s->n_cmds; i++) {
        if (strcmp(s->cmds[i].cmd, "config|get") == 0)
            cg = &s->cmds[i];
        if (strcmp(s->cmds[i].cmd, "incr") == 0)
            incr = &s->cmds[i];
    }
    ck_assert_ptr_nonnull(cg);
    ck_assert_ptr_nonnull(incr);
    ck_assert(cg->calls == 6 && cg->usec == 48 && cg->rejected_calls == 0);
    ck_assert(incr->failed_calls == 1);

    ck_assert_uint_eq(s->n_errs, 2);
    ck_assert_str_eq(s->errs[0].err, "ERR");
    ck_assert(s->errs[1].count == 1);

    ck_assert_uint_eq(s->n_lats, 15);
    ck_assert_str_eq(s->lats[1].cmd, "config|get");
    ck_assert_int_eq(s->lats[1].n, 3);
    ck_assert(fabs(s->lats[1].q[2] - 0.999) < 1e-12 && s->lats[1].usec[2] == 17.023);
    ck_assert(s->lats[1].q[0] == 0.5);

    ck_assert_uint_eq(s->n_dbs, 3);
    ck_assert_str_eq(s->dbs[1].name, "db1");
    ck_assert(s->dbs[1].keys == 2 && s->dbs[1].expires == 1 && s->dbs[1].avg_ttl_ms == 490998);
    ck_assert(isnan(s->dbs[1].subexpiry));
    ck_assert_str_eq(s->dbs[2].name, "db3");

    ck_assert_uint_eq(s->n_replicas, 1);
    ck_assert_str_eq(s->replicas[0].ip, "127.0.0.1");
    ck_assert_str_eq(s->replicas[0].port, "16381");
    ck_assert_str_eq(s->replicas[0].state, "online");
    ck_assert(s->replicas[0].offset == 225037 && s->replicas[0].lag == 0);

    /* identifiers that look numeric stay strings; percentages are numbers.
     * Each entry is looked up first: a parser that drops it fails here. */
    ck_assert(!entry(s, "redis_git_sha1")->is_num);
    ck_assert_str_eq(entry(s, "redis_git_sha1")->val, "00000000");
    ck_assert(!entry(s, "master_replid2")->is_num);
    ck_assert_str_eq(entry(s, "master_replid2")->val, "0000000000000000000000000000000000000000");
    ck_assert(entry(s, "used_memory_peak_perc")->is_num && entry(s, "used_memory_peak_perc")->num == 50.76);
    ck_assert_str_eq(entry(s, "used_memory")->section, "Memory");
    ck_assert_str_eq(entry(s, "cmdstat_set")->section, "Commandstats");
    info_sample_free(s);
}
END_TEST

START_TEST(real_bgsave_error)
{
    struct info_sample *s = load("info-redis-7.0.15-bgsave-error.txt");
    ck_assert_uint_eq(s->malformed, 0);
    ck_assert(info_num(s, INFO_RDB_LAST_BGSAVE_STATUS) == 0);
    ck_assert(info_num(s, INFO_AOF_ENABLED) == 0);
    ck_assert_uint_eq(s->n_errs, 1);
    ck_assert_str_eq(s->errs[0].err, "MISCONF");
    bool found = false;
    for (size_t i = 0; i < s->n_cmds; i++)
        if (strcmp(s->cmds[i].cmd, "set") == 0)
            found = s->cmds[i].rejected_calls == 1;
    ck_assert(found);
    info_sample_free(s);
}
END_TEST

START_TEST(lf_equals_crlf)
{
    size_t len;
    char *t = read_fixture("info-redis-7.0.15-master.txt", &len);
    struct info_sample *a = info_parse(t, len);
    char *lf = xmalloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (t[i] != '\r')
            lf[n++] = t[i];
    struct info_sample *b = info_parse(lf, n);
    ck_assert_uint_gt(a->n_entries, 100);
    ck_assert_uint_eq(a->n_entries, b->n_entries);
    for (size_t i = 0; i < a->n_entries; i++) {
        ck_assert_str_eq(a->entries[i].key, b->entries[i].key);
        ck_assert_str_eq(a->entries[i].val, b->entries[i].val);
        ck_assert_str_eq(a->entries[i].section, b->entries[i].section);
    }
    free(t);
    free(lf);
    info_sample_free(a);
    info_sample_free(b);
}
END_TEST

/* Every field of every version's list is parsed, by name, to the value the
 * fixture holds; nested lines are parsed in that version's format. */
static void check_version(const char *server, const char *version, int major, int minor)
{
    char name[128];
    snprintf(name, sizeof name, "info-%s-%s.txt", server, version);
    size_t len;
    char *t = read_fixture(name, &len);
    struct info_sample *s = info_parse(t, len);
    ck_assert_uint_eq(s->malformed, 0);
    snprintf(name, sizeof name, "fields/fields_%s_%s.txt", server, version);
    char *fields = read_fixture(name, NULL);
    size_t nfields = 0;
    for (char *save, *f = strtok_r(fields, "\n", &save); f; f = strtok_r(NULL, "\n", &save)) {
        const char *v = info_str(s, f);
        ck_assert_msg(v != NULL, "%s %s: field %s missing", server, version, f);
        nfields++;
    }
    /* independent reading of the fixture: line by line, first colon */
    for (char *save, *line = strtok_r(t, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        char *colon = strchr(line, ':');
        if (line[0] == '#' || !colon)
            continue;
        *colon = '\0';
        const char *v = info_str(s, line);
        ck_assert_msg(v && strcmp(v, colon + 1) == 0, "%s: %s", version, line);
    }
    for (int f = 0; f < INFO_FIELD_COUNT; f++) {
        const char *v = info_str(s, info_field_key((enum info_field)f));
        double d;
        if (v && parse_double(v, &d) && v[0] != '0')
            ck_assert(info_has(s, (enum info_field)f));
    }
    ck_assert_uint_gt(nfields, 140);
    ck_assert_uint_eq(s->n_cmds, 3);
    ck_assert_uint_eq(s->n_dbs, 2);
    ck_assert_str_eq(s->dbs[1].name, "db15");
    ck_assert_uint_eq(s->n_replicas, 1);
    bool v62 = major > 6 || (major == 6 && minor >= 2);
    ck_assert_uint_eq(s->n_errs, v62 ? 2 : 0);
    ck_assert(v62 ? s->cmds[0].rejected_calls == 1 : isnan(s->cmds[0].rejected_calls));
    ck_assert_uint_eq(s->n_lats, major >= 7 ? 2 : 0);
    if (major >= 7)
        ck_assert_str_eq(s->cmds[2].cmd, "config|get");
    bool sub = strcmp(server, "redis") == 0 && (major > 7 || (major == 7 && minor >= 4));
    ck_assert(sub ? s->dbs[0].subexpiry == 0 : isnan(s->dbs[0].subexpiry));
    if (strcmp(server, "valkey") == 0) {
        ck_assert_str_eq(info_str(s, "valkey_version"), version);
        ck_assert_str_eq(info_str(s, "redis_version"), "7.2.4");
        ck_assert_str_eq(info_str(s, "server_name"), "valkey");
    } else {
        ck_assert_str_eq(info_str(s, "redis_version"), version);
    }
    ck_assert(info_num(s, INFO_RDB_LAST_BGSAVE_STATUS) == 1);
    free(t);
    free(fields);
    info_sample_free(s);
}

START_TEST(versions)
{
    check_version("redis", "5.0.0", 5, 0);
    check_version("redis", "6.0.0", 6, 0);
    check_version("redis", "6.2.0", 6, 2);
    check_version("redis", "7.0.0", 7, 0);
    check_version("redis", "7.2.0", 7, 2);
    check_version("redis", "7.4.0", 7, 4);
    check_version("valkey", "8.0.1", 8, 0);
}
END_TEST

START_TEST(malformed)
{
    const char *t = "# Server\n"
                    "no_colon_here\n"
                    ":empty_key\n"
                    "used_memory:100\n"
                    "used_memory:200\n"          /* duplicate: first wins */
                    "cmdstat_get:garbage\n"      /* no calls= */
                    "cmdstat_:calls=1\n"         /* empty command name: plain entry */
                    "db0:keys=abc,expires=1\n"   /* keys not a number */
                    "latency_percentiles_usec_get:x50=1\n"
                    "errorstat_ERR:count=\n"
                    "slave0:127.0.0.1,6380,online\n" /* pre-2.8 replica format */
                    "\n\n#\n"
                    "used_memory_rss:\n"
                    "mem_fragmentation_ratio:1.5:extra\n"
                    "maxmemory:12";               /* no final newline */
    struct info_sample *s = parse_str(t);
    ck_assert(info_num(s, INFO_USED_MEMORY) == 100);
    ck_assert_uint_eq(s->n_cmds, 0);
    ck_assert_uint_eq(s->n_dbs, 0);
    ck_assert_uint_eq(s->n_lats, 0);
    ck_assert_uint_eq(s->n_errs, 0);
    ck_assert_uint_eq(s->n_replicas, 0);
    ck_assert_uint_eq(s->malformed, 8);
    ck_assert(info_has(s, INFO_USED_MEMORY_RSS));
    ck_assert(isnan(info_num(s, INFO_USED_MEMORY_RSS))); /* empty value: not a number */
    ck_assert_str_eq(info_str(s, "mem_fragmentation_ratio"), "1.5:extra"); /* first colon only */
    ck_assert(isnan(info_num(s, INFO_MEM_FRAGMENTATION_RATIO)));
    ck_assert(info_num(s, INFO_MAXMEMORY) == 12);
    ck_assert_str_eq(info_str(s, "cmdstat_"), "calls=1");
    info_sample_free(s);
}
END_TEST

START_TEST(no_duplicate_series_from_odd_servers)
{
    struct info_sample *s = parse_str("latency_percentiles_usec_get:p50=1,p50=2,p99=3\n"
                                      "latency_percentiles_usec_set:p50=1,p50.0=2\n"
                                      "slave0:ip=10.0.0.1,port=6380,state=online,offset=1,lag=0\n"
                                      "slave1:ip=10.0.0.1,port=6380,state=online,offset=2,lag=0\n"
                                      "slave2:ip=10.0.0.1,port=6381,state=online,offset=3,lag=0\n");
    ck_assert_uint_eq(s->n_lats, 0);
    ck_assert_uint_eq(s->n_replicas, 2);
    ck_assert_str_eq(s->replicas[1].port, "6381");
    ck_assert_uint_eq(s->malformed, 3);
    info_sample_free(s);
}
END_TEST

START_TEST(binary_and_empty)
{
    struct info_sample *s = info_parse("", 0);
    ck_assert_uint_eq(s->n_entries, 0);
    info_sample_free(s);
    const char bin[] = "used_memory:1\nbad\0line:2\nmaxmemory:3\n";
    s = info_parse(bin, sizeof bin - 1);
    ck_assert(info_num(s, INFO_USED_MEMORY) == 1);
    ck_assert(info_num(s, INFO_MAXMEMORY) == 3);
    ck_assert_uint_eq(s->malformed, 1);
    info_sample_free(s);
    /* a huge single line */
    size_t n = 1 << 20;
    char *big = xmalloc(n + 1);
    memset(big, 'a', n);
    memcpy(big, "k:", 2);
    big[n] = '\0';
    s = info_parse(big, n);
    ck_assert_uint_eq(s->n_entries, 1);
    ck_assert_uint_eq(strlen(info_str(s, "k")), n - 2);
    info_sample_free(s);
    free(big);
}
END_TEST

START_TEST(no_prefix_confusion)
{
    struct info_sample *s = parse_str("used_memory_rss:5\nused_memory_peak:6\nkeyspace_hits_x:1\n");
    ck_assert(!info_has(s, INFO_USED_MEMORY));
    ck_assert(info_num(s, INFO_USED_MEMORY_RSS) == 5);
    ck_assert(!info_has(s, INFO_KEYSPACE_HITS));
    info_sample_free(s);
}
END_TEST

START_TEST(nested_by_key_not_position)
{
    struct info_sample *s = parse_str("# Commandstats\r\n"
                                      "cmdstat_ft.search:failed_calls=2,usec=10,calls=5,rejected_calls=1,future=9\r\n"
                                      "# Keyspace\r\n"
                                      "db12:avg_ttl=5,expires=2,keys=9,subexpiry=1\r\n"
                                      "# Replication\r\n"
                                      "slave3:lag=1,offset=77,state=wait_bgsave,port=7001,ip=::1\r\n"
                                      "# Latencystats\r\n"
                                      "latency_percentiles_usec_ft.search:p99.99=4.5,p0=1\r\n");
    ck_assert_uint_eq(s->n_cmds, 1);
    ck_assert_str_eq(s->cmds[0].cmd, "ft.search");
    ck_assert(s->cmds[0].calls == 5 && s->cmds[0].usec == 10 && s->cmds[0].failed_calls == 2 &&
              s->cmds[0].rejected_calls == 1);
    ck_assert(s->dbs[0].keys == 9 && s->dbs[0].expires == 2 && s->dbs[0].avg_ttl_ms == 5 &&
              s->dbs[0].subexpiry == 1);
    ck_assert_str_eq(s->replicas[0].ip, "::1");
    ck_assert_str_eq(s->replicas[0].state, "wait_bgsave");
    ck_assert(s->replicas[0].offset == 77);
    ck_assert(fabs(s->lats[0].q[0] - 0.9999) < 1e-12 && s->lats[0].usec[0] == 4.5);
    ck_assert(s->lats[0].q[1] == 0);
    info_sample_free(s);
}
END_TEST

START_TEST(section_span)
{
    const char *t = "# Server\r\nredis_version:7.0.15\r\n\r\n# Latencystats\r\n"
                    "latency_percentiles_usec_set:p50=1.003\r\n\r\n# Keyspace\r\ndb0:keys=1\r\n";
    const char *lat = "latencystats", *ks = "keyspace", *latency = "latency", *server = "server";
    struct info_span one;
    info_section_spans(t, strlen(t), &lat, 1, &one);
    ck_assert_int_eq(strncmp(t + one.off, "# Latencystats\r\nlatency_percentiles_usec_set:p50=1.003\r\n\r\n", one.len), 0);
    ck_assert_uint_eq(one.len, strlen("# Latencystats\r\nlatency_percentiles_usec_set:p50=1.003\r\n\r\n"));
    info_section_spans(t, strlen(t), &ks, 1, &one); /* the last one runs to the end */
    ck_assert(one.len > 0);
    ck_assert_uint_eq(one.off + one.len, strlen(t));
    info_section_spans(t, strlen(t), &latency, 1, &one); /* whole names only */
    ck_assert_uint_eq(one.len, 0);
    info_section_spans("", 0, &server, 1, &one);
    ck_assert_uint_eq(one.len, 0);
    /* several in one pass, asked in any order: each span is what a search
     * for that name alone gives, and a missing one has length 0 */
    const char *names[] = {"keyspace", "latency", "server", "Latencystats"};
    struct info_span sp[4];
    info_section_spans(t, strlen(t), names, 4, sp);
    for (int i = 0; i < 4; i++) {
        info_section_spans(t, strlen(t), &names[i], 1, &one);
        ck_assert_uint_eq(sp[i].len, one.len);
        if (one.len)
            ck_assert_uint_eq(sp[i].off, one.off);
    }
    ck_assert_uint_eq(sp[1].len, 0);
    ck_assert_uint_eq(sp[2].off, 0);
    ck_assert_uint_eq(sp[2].len, strlen("# Server\r\nredis_version:7.0.15\r\n\r\n"));
    ck_assert_uint_eq(sp[0].off + sp[0].len, strlen(t));
    info_section_spans("# Cpu", 5, names + 2, 2, sp); /* a header without its line end */
    ck_assert_uint_eq(sp[0].len + sp[1].len, 0);
    info_section_spans("# Server", 8, names + 2, 1, sp);
    ck_assert_uint_eq(sp[0].off, 0);
    ck_assert_uint_eq(sp[0].len, 8);
    /* the kept section appended to a reply without it parses as if sent */
    char both[512];
    info_section_spans(t, strlen(t), &lat, 1, &one);
    ck_assert(one.len > 0);
    snprintf(both, sizeof both, "# Server\r\nredis_version:7.0.15\r\n\r\n%.*s", (int)one.len, t + one.off);
    struct info_sample *s = info_parse(both, strlen(both));
    ck_assert_uint_eq(s->n_lats, 1);
    ck_assert_str_eq(s->lats[0].cmd, "set");
    ck_assert_uint_eq(s->malformed, 0);
    info_sample_free(s);
}
END_TEST

/* Each nested family keeps at most max_nested lines (the first ones); the
 * others are counted, not malformed, and skipped. */
START_TEST(nested_bounded_per_family)
{
    struct buf t = BUF_INIT;
    buf_puts(&t, "# Commandstats\r\n");
    for (int i = 0; i < 50; i++)
        buf_printf(&t, "cmdstat_c%d:calls=%d,usec=1\r\nerrorstat_E%d:count=1\r\n"
                       "latency_percentiles_usec_c%d:p50=1.0\r\ndb%d:keys=1,expires=0\r\n"
                       "slave%d:ip=10.0.0.%d,port=6379,state=online,offset=1,lag=0\r\n",
                   i, i, i, i, i, i, i);
    struct info_sample *s = info_parse_max(t.p, t.len, 10);
    ck_assert_uint_eq(s->n_cmds, 10);
    ck_assert_uint_eq(s->n_errs, 10);
    ck_assert_uint_eq(s->n_lats, 10);
    ck_assert_uint_eq(s->n_dbs, 10);
    ck_assert_uint_eq(s->n_replicas, 10);
    for (int f = 0; f < INFO_NF_COUNT; f++)
        ck_assert_uint_eq(s->dropped[f], 40);
    ck_assert_str_eq(s->cmds[9].cmd, "c9"); /* the first ones, in order */
    ck_assert_uint_eq(s->malformed, 0);
    ck_assert_uint_eq(s->n_entries, 50);
    ck_assert_str_eq(info_nested_family_name(INFO_NF_LATENCY), "latencystats");
    struct info_sample *c = info_compact(s);
    ck_assert_uint_eq(c->dropped[INFO_NF_CMDSTAT], 40);
    ck_assert_ptr_nonnull(info_find_cmd(c, "c3", 0));
    ck_assert_ptr_null(info_find_cmd(c, "c10", 0));
    info_sample_free(c);
    info_sample_free(s);
    s = info_parse(t.p, t.len); /* unbounded */
    ck_assert_uint_eq(s->n_cmds, 50);
    ck_assert_uint_eq(s->dropped[INFO_NF_CMDSTAT], 0);
    info_sample_free(s);
    buf_free(&t);
}
END_TEST

static double cpu_s(void) { return (double)clock() / CLOCKS_PER_SEC; }

/* What a peer chooses (how many entries, in which order) costs linear time:
 * lookups by name when the order changed, replica de-duplication, the JSON
 * of nested values and of sections. Each would take seconds if quadratic. */
START_TEST(peer_sized_work_is_linear)
{
    enum { N = 50000 };
    struct buf a = BUF_INIT, b = BUF_INIT;
    for (int i = 0; i < N; i++) {
        buf_printf(&a, "cmdstat_c%05d:calls=1,usec=1\r\nerrorstat_E%05d:count=1\r\n", i, i);
        buf_printf(&b, "cmdstat_c%05d:calls=2,usec=1\r\nerrorstat_E%05d:count=2\r\n", N - 1 - i, N - 1 - i);
    }
    struct info_sample *sa = info_parse(a.p, a.len), *sb = info_parse(b.p, b.len);
    struct info_sample *ca = info_compact(sa);
    double t0 = cpu_s();
    size_t found = 0; /* (ck_assert costs a write to a pipe: not in the timed loop) */
    for (size_t i = 0; i < N; i++) { /* every hint wrong */
        const struct info_cmdstat *x = info_find_cmd(ca, sb->cmds[i].cmd, i);
        const struct info_errstat *e = info_find_err(ca, sb->errs[i].err, i);
        found += x && strcmp(x->cmd, sb->cmds[i].cmd) == 0 && x->calls == 1 && e &&
                 strcmp(e->err, sb->errs[i].err) == 0 && e->count == 1;
    }
    ck_assert_uint_eq(found, N);
    ck_assert_ptr_null(info_find_cmd(ca, "nope", 0));
    double t_find = cpu_s() - t0;
    info_sample_free(sa);
    info_sample_free(sb);
    info_sample_free(ca);

    buf_reset(&a);
    for (int i = 0; i < N; i++)
        buf_printf(&a, "slave%d:ip=10.%d.%d.%d,port=6379,state=online,offset=1,lag=0\r\n", i, i >> 16,
                   (i >> 8) & 255, i & 255);
    buf_printf(&a, "slave%d:ip=10.0.0.7,port=6379,state=online,offset=1,lag=0\r\n", N); /* a duplicate */
    t0 = cpu_s();
    sa = info_parse(a.p, a.len);
    double t_rep = cpu_s() - t0;
    ck_assert_uint_eq(sa->n_replicas, N);
    ck_assert_uint_eq(sa->malformed, 1);
    info_sample_free(sa);

    /* JSON: one nested value of 30,000 keys (all but 3 repeated), and
     * 20,000 sections of one line each */
    buf_reset(&a);
    buf_puts(&a, "# Keyspace\r\ndb0:keys=1");
    for (int i = 0; i < 30000; i++)
        buf_puts(&a, i % 10000 ? ",expires=2" : ",avg_ttl=3");
    buf_puts(&a, ",zz=4\r\n");
    for (int i = 0; i < 20000; i++)
        buf_printf(&a, "# S%d\r\nk%d:v\r\n", i, i);
    buf_puts(&a, "# s7\r\nlate:1\r\n"); /* joins "# S7": section keys are lower case */
    struct rstr *info = rstr_new(a.p, a.len);
    uint32_t off[FAM_COUNT + 1] = {0};
    struct frag *f = frag_new("{\"name\":\"x\"", 0, 11, off, 0, "", info, true);
    t0 = cpu_s();
    buf_reset(&b);
    frag_append_json(f, &b);
    double t_json = cpu_s() - t0;
    ck_assert_ptr_nonnull(strstr(b.p, "\"db0\":{\"keys\":1,\"avg_ttl\":3,\"expires\":2,\"zz\":4}"));
    ck_assert_ptr_nonnull(strstr(b.p, "\"s7\":{\"k7\":\"v\",\"late\":1}"));
    ck_assert_ptr_nonnull(strstr(b.p, "\"s19999\":{\"k19999\":\"v\"}"));
    frag_unref(f);
    rstr_unref(info);
    buf_free(&a);
    buf_free(&b);
    /* linear: 20, 150 and 30 ms here (twice that under sanitizers);
     * quadratic, as they were: 5e8 to 1.3e9 compares each, seconds */
    ck_assert_msg(t_find < 1.0 && t_rep < 2.0 && t_json < 1.0, "find %.3fs, replicas %.3fs, json %.3fs", t_find,
                  t_rep, t_json);
}
END_TEST

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The key hash is SipHash: the reference implementation's vectors (key
 * 00..0f, message 00 01 .. of each length) for SipHash-2-4, from the paper
 * (Aumasson and Bernstein, appendix A) and its vectors.h; the same code with
 * 1 and 3 rounds hashes the INFO keys. */
START_TEST(siphash_reference_vectors)
{
    const uint64_t k[2] = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
    char msg[64];
    for (int i = 0; i < 64; i++)
        msg[i] = (char)i;
    ck_assert_uint_eq(info_siphash(k, msg, 15, 2, 4), 0xa129ca6149be45e5ull); /* the paper's example */
    ck_assert_uint_eq(info_siphash(k, msg, 0, 2, 4), 0x726fdb47dd0e0e31ull);
    ck_assert_uint_eq(info_siphash(k, msg, 8, 2, 4), 0x93f5f5799a932462ull);
    ck_assert_uint_eq(info_siphash(k, msg, 63, 2, 4), 0x958a324ceb064572ull);
}
END_TEST

/* Key pairs that collide for every seed under a plain multiply-and-fold of
 * words (bit 63 flipped in one word, then bits 63 and 31 of the next): under
 * the keyed hash they do not. */
START_TEST(key_hash_has_no_seed_free_collisions)
{
    char a[48], b[48];
    memset(a, 'k', sizeof a);
    for (int blocks = 1; blocks <= 3; blocks++) {
        memcpy(b, a, sizeof b);
        for (int j = 0; j < blocks; j++) {
            b[16 * j + 7] ^= (char)0x80;
            b[16 * j + 11] ^= (char)0x80;
            b[16 * j + 15] ^= (char)0x80;
        }
        ck_assert(info_hash(a, 16u * (size_t)blocks) != info_hash(b, 16u * (size_t)blocks));
    }
}
END_TEST

/* Keys that differ in one byte (in a whole word or in the tail), or only in
 * length, hash apart, and 40,000 INFO-like keys spread over the slot bits as
 * over a table's 1,024 slots. */
START_TEST(key_hash_spreads)
{
    ck_assert(info_hash("used_memory", 11) != info_hash("used_memorz", 11));
    ck_assert(info_hash("cmdstat_get", 11) != info_hash("cmdstat_gew", 11));
    ck_assert(info_hash("abcdefgh", 8) != info_hash("bbcdefgh", 8));
    ck_assert(info_hash("abc", 3) != info_hash("abc\0", 4));
    ck_assert(info_hash("", 0) != info_hash("\0", 1));
    enum { N = 40000, SLOTS = 1024 };
    uint64_t *h = malloc(N * sizeof *h);
    unsigned *bucket = calloc(SLOTS, sizeof *bucket);
    char k[64];
    for (int i = 0; i < N; i++) {
        int n = snprintf(k, sizeof k, i % 2 ? "cmdstat_c%d" : "errorstat_%dX", i);
        h[i] = info_hash(k, (size_t)n);
        bucket[h[i] & (SLOTS - 1)]++;
    }
    qsort(h, N, sizeof *h, cmp_u64);
    for (int i = 1; i < N; i++)
        ck_assert_msg(h[i] != h[i - 1], "two keys share a 64-bit hash");
    unsigned max = 0;
    for (int i = 0; i < SLOTS; i++)
        max = bucket[i] > max ? bucket[i] : max;
    /* 39 a slot on average; a uniform spread stays well under twice that */
    ck_assert_msg(max < 2 * N / SLOTS, "fullest slot %u of mean %d", max, N / SLOTS);
    free(h);
    free(bucket);
}
END_TEST

/* 61 bytes: with three digits, a key of 64 */
#define LONG_KEY "zz_not_a_field_of_the_table_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
_Static_assert(sizeof LONG_KEY - 1 == 61, "LONG_KEY");

/* What the parser remembers of the last reply's key order (a guess checked
 * before the table is asked) never changes a result: every reply below is
 * parsed after others of other shapes and compared with its parse on a new
 * thread, which remembers nothing. */
struct fresh_parse {
    const char *text;
    size_t len;
    struct info_sample *s;
};

static void *parse_on_thread(void *arg)
{
    struct fresh_parse *fp = arg;
    fp->s = info_parse(fp->text, fp->len);
    return NULL;
}

static bool same_num(double x, double y) { return (isnan(x) && isnan(y)) || x == y; }
static bool same_str(const char *x, const char *y) { return (!x && !y) || (x && y && strcmp(x, y) == 0); }

static bool same_entry(const struct info_entry *x, const struct info_entry *y)
{
    return strcmp(x->key, y->key) == 0 && strcmp(x->val, y->val) == 0 && strcmp(x->section, y->section) == 0 &&
           x->is_num == y->is_num && same_num(x->num, y->num);
}

static void assert_same_values(const struct info_sample *a, const struct info_sample *b, const char *what);

/* b holds what a holds, entry by entry and list by list. */
static void assert_same_sample(const struct info_sample *a, const struct info_sample *b, const char *what)
{
    ck_assert_msg(a->n_entries == b->n_entries, "%s: %zu entries against %zu", what, a->n_entries, b->n_entries);
    ck_assert_uint_eq(a->malformed, b->malformed);
    for (size_t i = 0; i < a->n_entries; i++)
        ck_assert_msg(same_entry(&a->entries[i], &b->entries[i]), "%s: entry %zu (%s) differs", what, i,
                      a->entries[i].key);
    assert_same_values(a, b, what);
}

/* A poll's parse (info_parse_poll) of the text of full, a whole parse:
 * every value by id and every list as full has them; its entries are
 * full's, in order, less some; no more lines malformed. */
static void assert_poll_agrees(const struct info_sample *full, const struct info_sample *poll, const char *what)
{
    ck_assert_msg(poll->malformed <= full->malformed, "%s: %zu malformed against %zu", what, poll->malformed,
                  full->malformed);
    size_t j = 0;
    for (size_t i = 0; i < poll->n_entries; i++) {
        while (j < full->n_entries && !same_entry(&full->entries[j], &poll->entries[i]))
            j++;
        ck_assert_msg(j < full->n_entries, "%s: the poll's entry %s is not the whole parse's", what,
                      poll->entries[i].key);
        j++;
    }
    assert_same_values(full, poll, what);
}

/* b gives every value by id and every nested list as a does. */
static void assert_same_values(const struct info_sample *a, const struct info_sample *b, const char *what)
{
    ck_assert_int_eq(memcmp(a->dropped, b->dropped, sizeof a->dropped), 0);
    for (int f = 0; f < INFO_FIELD_COUNT; f++) {
        ck_assert_msg(info_has(a, (enum info_field)f) == info_has(b, (enum info_field)f), "%s: %s known apart", what,
                      info_field_key((enum info_field)f));
        ck_assert_msg(same_num(info_num(a, (enum info_field)f), info_num(b, (enum info_field)f)), "%s: %s differs",
                      what, info_field_key((enum info_field)f));
        ck_assert_msg(same_str(info_num_text(a, (enum info_field)f), info_num_text(b, (enum info_field)f)),
                      "%s: text of %s differs", what, info_field_key((enum info_field)f));
    }
    for (int k = 0; k < INFO_SFIELD_COUNT; k++)
        ck_assert_msg(same_str(info_sval(a, (enum info_sfield)k), info_sval(b, (enum info_sfield)k)),
                      "%s: string field %d differs", what, k);
    ck_assert_uint_eq(a->n_cmds, b->n_cmds);
    for (size_t i = 0; i < a->n_cmds; i++) {
        const struct info_cmdstat *x = &a->cmds[i], *y = info_find_cmd(b, a->cmds[i].cmd, SIZE_MAX);
        ck_assert_msg(y && same_num(x->calls, y->calls) && same_num(x->usec, y->usec) &&
                          same_num(x->failed_calls, y->failed_calls) &&
                          same_num(x->rejected_calls, y->rejected_calls) && y == &b->cmds[i],
                      "%s: cmdstat_%s differs", what, x->cmd);
    }
    ck_assert_uint_eq(a->n_errs, b->n_errs);
    for (size_t i = 0; i < a->n_errs; i++) {
        const struct info_errstat *y = info_find_err(b, a->errs[i].err, SIZE_MAX);
        ck_assert_msg(y == &b->errs[i] && same_num(a->errs[i].count, y->count), "%s: errorstat_%s differs", what,
                      a->errs[i].err);
    }
    ck_assert_uint_eq(a->n_lats, b->n_lats);
    for (size_t i = 0; i < a->n_lats; i++) {
        const struct info_latency *x = &a->lats[i], *y = &b->lats[i];
        ck_assert(strcmp(x->cmd, y->cmd) == 0 && x->n == y->n);
        for (int q = 0; q < x->n; q++)
            ck_assert_msg(x->q[q] == y->q[q] && x->usec[q] == y->usec[q] && x->utext_len[q] == y->utext_len[q] &&
                              !x->utext[q] == !y->utext[q] &&
                              (!x->utext[q] || memcmp(x->utext[q], y->utext[q], x->utext_len[q]) == 0),
                          "%s: latency of %s differs", what, x->cmd);
    }
    ck_assert_uint_eq(a->n_dbs, b->n_dbs);
    for (size_t i = 0; i < a->n_dbs; i++)
        ck_assert(strcmp(a->dbs[i].name, b->dbs[i].name) == 0 && same_num(a->dbs[i].keys, b->dbs[i].keys) &&
                  same_num(a->dbs[i].expires, b->dbs[i].expires) &&
                  same_num(a->dbs[i].avg_ttl_ms, b->dbs[i].avg_ttl_ms) &&
                  same_num(a->dbs[i].subexpiry, b->dbs[i].subexpiry));
    ck_assert_uint_eq(a->n_replicas, b->n_replicas);
    for (size_t i = 0; i < a->n_replicas; i++) {
        const struct info_replica *x = &a->replicas[i], *y = &b->replicas[i];
        ck_assert(strcmp(x->ip, y->ip) == 0 && strcmp(x->port, y->port) == 0 && strcmp(x->state, y->state) == 0 &&
                  same_num(x->offset, y->offset) && same_num(x->lag, y->lag));
    }
}

/* One sample reused by every parse of assert_same_parse, whatever came
 * before it (as the poller reuses one for all instances). */
static struct info_sample *reused;

/* A parse on a fresh thread (no memory of earlier key orders), one on this
 * thread and one into the reused sample hold the same. */
static void assert_same_parse(const char *text, size_t len, const char *what)
{
    struct fresh_parse fp = {text, len, NULL};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, parse_on_thread, &fp), 0);
    pthread_join(th, NULL);
    struct info_sample *a = fp.s, *b = info_parse(text, len);
    assert_same_sample(a, b, what);
    reused = info_parse_again(reused, text, len, SIZE_MAX);
    assert_same_sample(a, reused, what);
    /* and a poll's parse, new and into the sample every parse reuses (the
     * poller's: a poll's parse, a render's, the next poll's) */
    struct info_sample *p = info_parse_poll(NULL, text, len, SIZE_MAX);
    assert_poll_agrees(a, p, what);
    reused = info_parse_poll(reused, text, len, SIZE_MAX);
    assert_poll_agrees(a, reused, what);
    info_sample_free(a);
    info_sample_free(b);
    info_sample_free(p);
}

/* text without its line n (0-based), or with `add` put before it */
static char *edit_line(const char *text, size_t len, size_t n, const char *add, size_t *out_len)
{
    struct buf b = BUF_INIT;
    const char *p = text, *end = text + len;
    for (size_t i = 0; p < end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *next = nl ? nl + 1 : end;
        if (i == n && add)
            buf_puts(&b, add);
        if (i != n || add)
            buf_append(&b, p, (size_t)(next - p));
        p = next;
    }
    return buf_steal(&b, out_len);
}

START_TEST(key_order_memory_never_changes_a_result)
{
    static const char *const names[] = {"info-redis-7.0.15-master.txt", "info-redis-5.0.0.txt",
                                        "info-valkey-8.0.1.txt", "info-redis-7.0.15-bgsave-error.txt",
                                        "info-redis-7.4.0.txt"};
    size_t len[5];
    char *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = read_fixture(names[i], &len[i]);
    /* one version after another, and back */
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 5; i++)
            assert_same_parse(t[i], len[i], names[i]);
    /* one line taken out, one put in, one replaced (known by unknown of the
     * same length, unknown by known), at every place of the reply */
    for (size_t n = 0; n < 120; n += 3) {
        size_t l1, l2, l3, l4;
        char *del = edit_line(t[0], len[0], n, NULL, &l1);
        char *add = edit_line(t[0], len[0], n, "zz_unknown_key:7\r\n", &l2);
        char *rep = edit_line(del, l1, n, "used_memorz:42\r\n", &l3);
        char *rep2 = edit_line(del, l1, n, "used_memory:43\r\n", &l4);
        assert_same_parse(t[0], len[0], "master");
        assert_same_parse(del, l1, "line taken out");
        assert_same_parse(t[0], len[0], "master again");
        assert_same_parse(add, l2, "line put in");
        assert_same_parse(rep, l3, "known key replaced by an unknown one");
        assert_same_parse(rep2, l4, "a line replaced by a known key");
        assert_same_parse(rep, l3, "and back");
        char *cut = del;
        size_t lc = l1;
        for (int k = 0; k < 5; k++) { /* six lines in a row taken out */
            size_t l;
            char *c2 = edit_line(cut, lc, n, NULL, &l);
            if (cut != del)
                free(cut);
            cut = c2;
            lc = l;
        }
        assert_same_parse(t[0], len[0], "master before six lines out");
        assert_same_parse(cut, lc, "six lines taken out");
        free(cut);
        free(del);
        free(add);
        free(rep);
        free(rep2);
    }
    /* keys outside the table past what the remembered order keeps of
     * them (SEQ_ARENA, 16 KB: 256 of these 64-byte keys): the rest are
     * matched by their hash, as new ones; then duplicates of a key copied
     * and of one past the copies, within the SEQ_MAX lines remembered */
    struct buf many = BUF_INIT;
    for (int i = 0; i < 300; i++)
        buf_printf(&many, "%s%03d:%d\r\n", LONG_KEY, i, i);
    buf_printf(&many, "%s007:8\r\n%s280:8\r\n", LONG_KEY, LONG_KEY);
    buf_append(&many, t[0], len[0]);
    assert_same_parse(many.p, many.len, "many keys outside the table");
    assert_same_parse(many.p, many.len, "many keys outside the table again");
    assert_same_parse(t[0], len[0], "master after many keys outside the table");
    buf_free(&many);
    /* a reply longer than what is remembered, then a usual one */
    struct buf big = BUF_INIT;
    buf_append(&big, t[0], len[0]);
    for (int i = 0; i < 700; i++)
        buf_printf(&big, "cmdstat_c%d:calls=%d,usec=1,usec_per_call=1.00\r\n", i, i);
    buf_puts(&big, "used_memory_rss:5\r\n"); /* a duplicate, past the remembered part */
    assert_same_parse(big.p, big.len, "long reply");
    assert_same_parse(big.p, big.len, "long reply again");
    assert_same_parse(t[0], len[0], "master after the long reply");
    buf_free(&big);
    for (int i = 0; i < 5; i++)
        free(t[i]);
    info_sample_free(reused);
    reused = NULL;
}
END_TEST

/* A poll's parse leaves out the lines outside the table that are not
 * nested, and only those; what it keeps is as a whole parse has it. */
START_TEST(poll_parse_leaves_out_only_lines_outside_the_table)
{
    size_t len;
    char *t = read_fixture("info-redis-7.0.15-master.txt", &len);
    struct buf b = BUF_INIT;
    buf_append(&b, t, len);
    /* a key outside the table that is not UTF-8, and a table key twice */
    buf_puts(&b, "zz_bad_\xff_key:1\r\nused_memory:1\r\n");
    struct info_sample *full = info_parse(b.p, b.len), *poll = info_parse_poll(NULL, b.p, b.len, SIZE_MAX);
    assert_poll_agrees(full, poll, "master");
    /* the 32 lines outside the table of the capture (the bad line is an
     * entry of neither) */
    ck_assert_uint_eq(full->n_entries - poll->n_entries, 32);
    ck_assert_ptr_nonnull(info_str(full, "multiplexing_api"));
    ck_assert_ptr_null(info_str(poll, "multiplexing_api"));
    ck_assert_str_eq(info_str(poll, "used_memory"), info_str(full, "used_memory"));
    ck_assert_str_eq(info_sval(poll, INFO_S_MEM_ALLOCATOR), "jemalloc-5.3.0");
    ck_assert_uint_eq(full->malformed, 2);
    ck_assert_uint_eq(poll->malformed, 1); /* the duplicate; the other line was not looked at */
    ck_assert_uint_gt(poll->n_cmds, 0);
    info_sample_free(full);
    info_sample_free(poll);
    buf_free(&b);
    free(t);
}
END_TEST

/* info_kv_next cuts a field at its first '=' and at the next ','. */
START_TEST(kv_fields)
{
    const char *v = "calls=1,flag,=2,a=b=c,,usec=,p99.9=1.003";
    static const char *const want[][2] = {{"calls", "1"}, {"flag", ""}, {"", "2"}, {"a", "b=c"},
                                          {"", ""},       {"usec", ""}, {"p99.9", "1.003"}};
    const char *p = v;
    struct info_kv kv;
    size_t n = 0;
    while (info_kv_next(&p, &kv)) {
        ck_assert_uint_lt(n, sizeof want / sizeof want[0]);
        ck_assert_msg(kv.klen == strlen(want[n][0]) && memcmp(kv.k, want[n][0], kv.klen) == 0 &&
                          kv.vlen == strlen(want[n][1]) && memcmp(kv.v, want[n][1], kv.vlen) == 0,
                      "field %zu: %.*s = %.*s", n, (int)kv.klen, kv.k, (int)kv.vlen, kv.v);
        n++;
    }
    ck_assert_uint_eq(n, sizeof want / sizeof want[0]);
    p = "";
    ck_assert(!info_kv_next(&p, &kv));
    p = "x=1,"; /* a trailing comma ends the list */
    ck_assert(info_kv_next(&p, &kv) && !info_kv_next(&p, &kv));
}
END_TEST

/* A line whose key the last reply had at that place is read without a
 * search for its colon or its end, and its number with its end: whatever
 * the value's shape and the line's end, it reads as a parse that
 * remembers nothing (assert_same_parse) reads it. */
START_TEST(a_known_line_reads_as_a_fresh_parse_reads_it)
{
    static const char *const vals[] = {"0", "00", "007", "-0", "-007", "-", "", "1.", "1.5", ".5", "1e5", "+1",
                                       "12345678901234567", "1234567890123456", "123456789012345.6",
                                       "1234567890123.45", "12.5%", "1,2", "12 ", "12\rx", "1.2.3", "0x10",
                                       "inf", "99999999999999999999999", "ok", "err", "12:3"};
    static const char *const seps[] = {"\r\n", "\n"};
    static const char *const lasts[] = {"", "\r", "\r\n", "\n", "\r\r\n"};
    size_t nv = sizeof vals / sizeof vals[0];
    for (size_t sep = 0; sep < 2; sep++)
        for (size_t last = 0; last < sizeof lasts / sizeof lasts[0]; last++)
            for (size_t i = 0; i < nv; i++) {
                /* fields of each conversion (NUM, STATUS, MSEC, a string
                 * one), a nested line, and one outside the table */
                const char *a = vals[i], *b = vals[(i + 7) % nv], *c = vals[(i + 13) % nv], *sp = seps[sep];
                struct buf t = BUF_INIT;
                buf_printf(&t, "# Memory%sused_memory:%s%srdb_last_bgsave_status:%s%s", sp, a, sp, b, sp);
                buf_printf(&t, "zz_outside:%s%scmdstat_get:calls=%s,usec=1%s", c, sp, a, sp);
                buf_printf(&t, "mem_allocator:%s%sexpire_cycle_cpu_milliseconds:%s%sused_memory_rss:%s%s", b, sp, c,
                           sp, a, lasts[last]);
                char what[96];
                snprintf(what, sizeof what, "values %s / %s / %s, sep %zu, end %zu", a, b, c, sep, last);
                assert_same_parse(t.p, t.len, what); /* after the last text: other values, same keys */
                assert_same_parse(t.p, t.len, what); /* after itself */
                buf_free(&t);
            }
    /* lines past their family's bound that the last reply had within it,
     * at the cursor: left out and counted as a parse remembering nothing
     * does */
    const char *cmds = "cmdstat_a:calls=1\r\ncmdstat_b:calls=2\r\ncmdstat_c:calls=3\r\n";
    info_sample_free(info_parse("", 0));
    struct info_sample *cold = info_parse_max(cmds, strlen(cmds), 2);
    info_sample_free(info_parse(cmds, strlen(cmds)));
    size_t c0 = info_lines_at_cursor();
    struct info_sample *warm = info_parse_max(cmds, strlen(cmds), 2);
    ck_assert_uint_eq(info_lines_at_cursor() - c0, 3);
    assert_same_sample(cold, warm, "past the bound");
    ck_assert_uint_eq(warm->n_cmds, 2);
    ck_assert_uint_eq(warm->dropped[INFO_NF_CMDSTAT], 1);
    info_sample_free(cold);
    info_sample_free(warm);
    info_sample_free(reused);
    reused = NULL;
}
END_TEST

/* A reply like the last one parsed on the thread hashes none of its keys,
 * those outside the table included (the remembered order keeps their
 * bytes), up to SEQ_ARENA (16 KB) of them, and reads each of its lines at
 * the cursor; a changed line hashes its key. */
START_TEST(a_reply_like_the_last_hashes_no_key)
{
    size_t len;
    char *t = read_fixture("info-redis-7.0.15-master.txt", &len);
    struct info_sample *whole = info_parse(t, len);
    size_t keyed = whole->n_entries; /* every line with a key: none malformed */
    ck_assert_uint_eq(whole->malformed, 0);
    info_sample_free(whole);
    for (int full = 0; full < 2; full++) {
        struct info_sample *s = (full ? info_parse_again : info_parse_poll)(NULL, t, len, SIZE_MAX);
        size_t n0 = info_keys_hashed(), c0 = info_lines_at_cursor();
        s = (full ? info_parse_again : info_parse_poll)(s, t, len, SIZE_MAX);
        ck_assert_uint_eq(info_keys_hashed() - n0, 0);
        ck_assert_uint_eq(info_lines_at_cursor() - c0, keyed); /* each read at the cursor */
        size_t l2;
        char *add = edit_line(t, len, 40, "zz_unknown_key:7\r\n", &l2);
        n0 = info_keys_hashed();
        s = (full ? info_parse_again : info_parse_poll)(s, add, l2, SIZE_MAX);
        ck_assert_uint_eq(info_keys_hashed() - n0, 1);
        n0 = info_keys_hashed();
        s = (full ? info_parse_again : info_parse_poll)(s, add, l2, SIZE_MAX);
        ck_assert_uint_eq(info_keys_hashed() - n0, 0);
        free(add);
        info_sample_free(s);
    }
    /* 300 keys of 64 bytes outside the table: 256 fill the copies */
    struct buf many = BUF_INIT;
    for (int i = 0; i < 300; i++)
        buf_printf(&many, "%s%03d:%d\r\n", LONG_KEY, i, i);
    struct info_sample *s = info_parse_poll(NULL, many.p, many.len, SIZE_MAX);
    size_t n0 = info_keys_hashed();
    s = info_parse_poll(s, many.p, many.len, SIZE_MAX);
    ck_assert_uint_eq(info_keys_hashed() - n0, 300 - 16384 / 64);
    info_sample_free(s);
    buf_free(&many);
    free(t);
}
END_TEST

/* A reused sample keeps its buffers for a reply that fits them, grows for
 * one that does not, and starts from anything info_parse* or info_compact
 * made: what it held before never shows in what it holds now. */
START_TEST(parse_again_reuses_buffers)
{
    size_t len;
    char *t = read_fixture("info-redis-7.0.15-master.txt", &len);
    struct info_sample *fresh = info_parse(t, len);
    struct info_sample *s = info_parse_again(NULL, t, len, SIZE_MAX);
    const char *text = s->text;
    const struct info_entry *entries = s->entries;
    size_t heap = info_sample_heap(s);
    ck_assert_uint_gt(heap, len);
    s = info_parse_again(s, t, len, SIZE_MAX);
    ck_assert_ptr_eq(s->text, text); /* nothing reallocated */
    ck_assert_ptr_eq(s->entries, entries);
    ck_assert_uint_eq(info_sample_heap(s), heap);
    assert_same_sample(fresh, s, "the same reply again");

    /* a short reply after it: the old lists must not show through */
    const char *small = "# Server\r\nredis_version:7.0.15\r\nrole:master\r\nrole:slave\r\n"
                        "cmdstat_get:calls=3,usec=4\r\nused_memory:100\r\nused_memory:200\r\n";
    struct info_sample *sf = info_parse(small, strlen(small));
    s = info_parse_again(s, small, strlen(small), SIZE_MAX);
    assert_same_sample(sf, s, "a short reply after a long one");
    ck_assert_uint_eq(s->n_cmds, 1);
    ck_assert_ptr_null(info_find_cmd(s, "set", SIZE_MAX)); /* the long reply's, gone */
    ck_assert_str_eq(info_sval(s, INFO_S_ROLE), "master"); /* a string field's duplicate: the first wins */
    ck_assert(info_num(s, INFO_USED_MEMORY) == 100);
    ck_assert_uint_eq(s->malformed, 2);
    ck_assert(!info_has(s, INFO_USED_MEMORY_RSS));

    /* longer than anything before: the buffers grow */
    struct buf big = BUF_INIT;
    buf_append(&big, t, len);
    for (int i = 0; i < 300; i++)
        buf_printf(&big, "cmdstat_c%d:calls=%d,usec=1\r\nerrorstat_E%d:count=%d\r\n", i, i + 1, i, i + 1);
    struct info_sample *bf = info_parse(big.p, big.len);
    s = info_parse_again(s, big.p, big.len, SIZE_MAX);
    assert_same_sample(bf, s, "a longer reply");
    ck_assert_uint_gt(info_sample_heap(s), heap);

    /* a bound on the lists, then none */
    struct info_sample *bb = info_parse_max(big.p, big.len, 10);
    s = info_parse_again(s, big.p, big.len, 10);
    assert_same_sample(bb, s, "the lists bounded");
    s = info_parse_again(s, t, len, SIZE_MAX);
    assert_same_sample(fresh, s, "the first reply again");

    /* from a compact sample */
    struct info_sample *c = info_compact(bf);
    c = info_parse_again(c, t, len, SIZE_MAX);
    assert_same_sample(fresh, c, "parsed into a compact sample");

    info_sample_free(c);
    info_sample_free(bb);
    info_sample_free(bf);
    info_sample_free(sf);
    info_sample_free(s);
    info_sample_free(fresh);
    buf_free(&big);
    free(t);
}
END_TEST

/* A compact sample made again into the last one keeps its buffers when the
 * new lists and strings fit, grows when they do not, and holds exactly what
 * a fresh info_compact of the same sample holds: never the old lists. */
START_TEST(compact_again_reuses_buffers)
{
    size_t len;
    char *t = read_fixture("info-redis-7.0.15-master.txt", &len);
    struct info_sample *full = info_parse(t, len);
    struct info_sample *c = info_compact_again(NULL, full), *fresh = info_compact(full);
    assert_same_sample(fresh, c, "compact");
    const char *arena = c->text;
    const struct info_cmdstat *cmds = c->cmds;
    c = info_compact_again(c, full);
    ck_assert_ptr_eq(c->text, arena); /* nothing reallocated */
    ck_assert_ptr_eq(c->cmds, cmds);
    assert_same_sample(fresh, c, "compact again");

    /* fewer commands, another role: the old ones must not show through */
    const char *small = "# Server\r\nrole:slave\r\ncmdstat_get:calls=3,usec=4\r\nused_memory:100\r\n";
    struct info_sample *sf = info_parse(small, strlen(small)), *csf = info_compact(sf);
    c = info_compact_again(c, sf);
    assert_same_sample(csf, c, "a short sample after a long one");
    ck_assert_uint_eq(c->n_cmds, 1);
    ck_assert_ptr_null(info_find_cmd(c, "set", SIZE_MAX));
    ck_assert_str_eq(info_sval(c, INFO_S_ROLE), "slave");
    ck_assert(isnan(info_num(c, INFO_USED_MEMORY_RSS)));
    ck_assert_uint_eq(c->n_errs, 0);

    /* more commands and errors than before: the buffers grow */
    struct buf big = BUF_INIT;
    buf_append(&big, t, len);
    for (int i = 0; i < 300; i++)
        buf_printf(&big, "cmdstat_c%d:calls=%d,usec=1\r\nerrorstat_E%d:count=%d\r\n", i, i + 1, i, i + 1);
    struct info_sample *bf = info_parse(big.p, big.len), *cbf = info_compact(bf);
    c = info_compact_again(c, bf);
    assert_same_sample(cbf, c, "a longer sample");
    ck_assert(info_find_cmd(c, "c299", 0) && info_find_cmd(c, "c299", 0)->calls == 300);

    /* from one indexed list to another of other names, the source freed
     * first: the compact sample holds its own copies of the names */
    struct buf other = BUF_INIT;
    for (int i = 0; i < 40; i++)
        buf_printf(&other, "cmdstat_o%d:calls=%d,usec=1\r\n", i, i + 7);
    struct info_sample *of = info_parse(other.p, other.len), *cof = info_compact(of);
    c = info_compact_again(c, of);
    info_sample_free(of);
    assert_same_sample(cof, c, "another indexed list, its source freed");
    ck_assert_ptr_null(info_find_cmd(c, "c5", 0)); /* the last list's names are gone from the index */
    ck_assert(info_find_cmd(c, "o39", 0) && info_find_cmd(c, "o39", 0)->calls == 46);
    /* down to no commands at all */
    struct info_sample *none = info_parse("used_memory:1\r\n", 15), *cnone = info_compact(none);
    c = info_compact_again(c, none);
    assert_same_sample(cnone, c, "no commands after some");
    ck_assert_ptr_null(info_find_cmd(c, "o1", 0));
    info_sample_free(cnone);
    info_sample_free(none);
    info_sample_free(cof);
    buf_free(&other);

    /* a full sample passed in: freed, a compact one made */
    struct info_sample *f2 = info_parse(t, len);
    f2 = info_compact_again(f2, full);
    ck_assert_ptr_null(f2->known);
    assert_same_sample(fresh, f2, "compact into a full sample");

    info_sample_free(f2);
    info_sample_free(cbf);
    info_sample_free(bf);
    info_sample_free(csf);
    info_sample_free(sf);
    info_sample_free(fresh);
    info_sample_free(c);
    info_sample_free(full);
    buf_free(&big);
    free(t);
}
END_TEST

/* True when some object in j (at any depth) has two members of one name:
 * cJSON keeps both, where most readers keep one value and drop the other. */
static bool json_has_duplicate_key(const cJSON *j)
{
    for (const cJSON *a = j ? j->child : NULL; a; a = a->next) {
        if (cJSON_IsObject(j))
            for (const cJSON *b = a->next; b; b = b->next)
                if (strcmp(a->string, b->string) == 0)
                    return true;
        if (json_has_duplicate_key(a))
            return true;
    }
    return false;
}

/* The JSON sections show each key and section exactly as the server wrote
 * it, once: names that are not UTF-8 or hold a control character would be
 * written with U+FFFD (or escaped) and could come out equal, so their lines
 * are refused and counted malformed; long section names are kept whole, not
 * cut at 63 bytes; nested keys that cannot be kept whole are left out. */
START_TEST(json_keys_are_what_the_server_wrote)
{
    struct buf a = BUF_INIT, b = BUF_INIT;
    char longsec[71], longkey[131];
    memset(longsec, 'L', 69);
    longsec[69] = longsec[70] = '\0';
    memset(longkey, 'p', 129);
    longkey[129] = longkey[130] = '\0';
    buf_puts(&a, "# Server\r\nredis_version:7.0.15\r\n"
                 "k\xff:1\r\nk\xfe:2\r\n" /* both would read "k\ufffd" */
                 "tab\tkey:3\r\n"         /* a control character */
                 "caf\xc3\xa9:4\r\n"      /* multibyte, valid: kept */
                 "# Sec\xff\xfetion\r\nx1:1\r\n"  /* refused section: header and line */
                 "# Sec\xfe\xfftion\r\nx2:2\r\n");
    buf_printf(&a, "# %sA\r\nla:1\r\n# %sB\r\nlb:2\r\n", longsec, longsec); /* equal once cut at 63 */
    buf_printf(&a, "# Keyspace\r\ndb0:keys=1,a\xff=1,a\xfe=2,%s1=1,%s2=2,t\x01=3,\xc3\xa9=5\r\n", longkey, longkey);
    struct info_sample *s = info_parse(a.p, a.len);
    ck_assert_uint_eq(s->malformed, 7);
    ck_assert(s->n_dbs == 1 && s->dbs[0].keys == 1);
    ck_assert_str_eq(info_str(s, "redis_version"), "7.0.15");
    info_sample_free(s);

    struct rstr *info = rstr_new(a.p, a.len);
    uint32_t off[FAM_COUNT + 1] = {0};
    struct frag *f = frag_new("{\"name\":\"x\"", 0, 11, off, 0, "", info, true);
    frag_append_json(f, &b);
    cJSON *j = cJSON_ParseWithLength(b.p, b.len);
    ck_assert_ptr_nonnull(j);
    ck_assert_msg(!json_has_duplicate_key(j), "duplicate JSON key in %s", b.p);
    const cJSON *sec = cJSON_GetObjectItemCaseSensitive(j, "sections");
    ck_assert_int_eq(cJSON_GetArraySize(sec), 4); /* server, the two long ones, keyspace */
    const cJSON *server = cJSON_GetObjectItemCaseSensitive(sec, "server");
    ck_assert_int_eq(cJSON_GetArraySize(server), 2);
    ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(server, "caf\xc3\xa9"));
    for (char *c = longsec; *c; c++)
        *c = 'l';
    char name[80];
    snprintf(name, sizeof name, "%sa", longsec);
    ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sec, name), "la"));
    snprintf(name, sizeof name, "%sb", longsec);
    ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sec, name), "lb"));
    const cJSON *db0 = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sec, "keyspace"), "db0");
    ck_assert_int_eq(cJSON_GetArraySize(db0), 2); /* keys and the valid multibyte one */
    ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(db0, "\xc3\xa9"));
    cJSON_Delete(j);
    frag_unref(f);
    rstr_unref(info);
    buf_free(&a);
    buf_free(&b);
}
END_TEST

/* A LATENCY LATEST element [name, time, latest ms, max ms] in r (the name
 * n bytes, NUL-terminated after them as hiredis leaves it). */
static void latency_elem(redisReply *r, redisReply *f, const char *name, size_t n, long long t)
{
    memset(r, 0, sizeof *r);
    memset(f, 0, 4 * sizeof *f);
    r->type = REDIS_REPLY_ARRAY;
    r->elements = 4;
    r->element = malloc(4 * sizeof *r->element);
    f[0].type = REDIS_REPLY_STRING;
    f[0].str = malloc(n + 1);
    memcpy(f[0].str, name, n);
    f[0].str[n] = '\0';
    f[0].len = n;
    for (int k = 0; k < 4; k++) {
        if (k)
            f[k].type = REDIS_REPLY_INTEGER, f[k].integer = t + k;
        r->element[k] = &f[k];
    }
}

/* More events than kept: the first LATENCY_MAX_EVENTS, the rest counted. */
START_TEST(latency_events_past_the_cap)
{
    enum { N = LATENCY_MAX_EVENTS + 8 };
    redisReply el[N + 1], fields[N][4], top = {0}, junk = {0};
    redisReply *elp[N + 1];
    char names[N][8];
    for (size_t i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "e%02zu", i);
        latency_elem(&el[i], fields[i], names[i], strlen(names[i]), (long long)(100 * (i + 1)));
        elp[i + 1] = &el[i];
    }
    junk.type = REDIS_REPLY_INTEGER; /* of another shape, first */
    elp[0] = &junk;
    top.type = REDIS_REPLY_ARRAY;
    top.elements = N + 1;
    top.element = elp;
    struct latency_values *lv = calloc(1, sizeof *lv);
    ck_assert_int_eq(collect_latency_reply(lv, &top), LATENCY_MAX_EVENTS);
    ck_assert_uint_eq(lv->dropped, 1 + 8);
    ck_assert_str_eq(lv->ev[LATENCY_MAX_EVENTS - 1].name, "e31");
    top.elements = 3; /* a later reply: its own count, not a sum */
    ck_assert_int_eq(collect_latency_reply(lv, &top), 2);
    ck_assert_uint_eq(lv->dropped, 1);
    for (size_t i = 0; i < N; i++) {
        free(fields[i][0].str);
        free(el[i].element);
    }
    free(lv);
}
END_TEST

/* LATENCY LATEST event names become label values and JSON keys: a name that
 * is not UTF-8, holds a NUL or control character or is too long to keep
 * whole is refused, and a repeated one is read once (the first), so no two
 * series or keys come out the same. */
START_TEST(latency_names_whole_and_unique)
{
    char n47[48], n48[49];
    memset(n47, 'n', 47);
    n47[47] = '\0';
    memset(n48, 'm', 48);
    n48[48] = '\0';
    const struct {
        const char *name;
        size_t len;
    } in[] = {{"dup", 3}, {"dup", 3}, {"a\0x", 3}, {"a\0y", 3}, {"b\xff", 2},
              {"b\xfe", 2}, {n47, 47}, {n48, 48}, {"c\x01", 2}, {"\xc3\xa9-fork", 7}};
    enum { N = sizeof in / sizeof *in };
    redisReply el[N], fields[N][4], top = {0};
    redisReply *elp[N];
    for (size_t i = 0; i < N; i++) {
        latency_elem(&el[i], fields[i], in[i].name, in[i].len, (long long)(100 * (i + 1)));
        elp[i] = &el[i];
    }
    top.type = REDIS_REPLY_ARRAY;
    top.elements = N;
    top.element = elp;
    struct latency_values *lv = calloc(1, sizeof *lv);
    ck_assert_int_eq(collect_latency_reply(lv, &top), 3);
    ck_assert_uint_eq(lv->dropped, N - 3); /* every one left out, counted */
    ck_assert_str_eq(lv->ev[0].name, "dup");
    ck_assert(lv->ev[0].timestamp == 101); /* the first of the two */
    ck_assert_str_eq(lv->ev[1].name, n47);
    ck_assert_str_eq(lv->ev[2].name, "\xc3\xa9-fork");
    for (size_t i = 0; i < N; i++) {
        free(fields[i][0].str);
        free(el[i].element);
    }

    /* rendered: one series per event and family, one JSON key per event */
    struct instance_cfg cfg = {0};
    cfg.name = "x";
    cfg.address = "127.0.0.1:6379";
    struct buf pre = BUF_INIT, m = BUF_INIT, j = BUF_INIT;
    prom_label_prefix(&pre, cfg.name, NULL, 0);
    struct info_sample *s = info_parse("# Server\r\nredis_version:7.0.15\r\n", 32);
    struct info_sample *prev = info_parse("", 0);
    struct derived d; /* the latency object is written with the figures */
    derive(prev, 1000000, s, 2000000, 1.7e9, NULL, NULL, &d);
    struct poll_stats st = {0};
    st.polled = true;
    struct render_input ri = {&cfg, pre.p, s, &st, NULL, &d, NULL, lv, NULL, NULL};
    struct frag *f = render_frag(&ri);
    const char *names[] = {"x"};
    struct registry *reg = registry_new(names, 1);
    registry_publish(reg, 0, frag_ref(f));
    http_render_metrics(reg, "x", &m);
    size_t dups = 0;
    for (const char *p = m.p; (p = strstr(p, "redis_latency_spike_last{")) != NULL; p++)
        dups += strstr(p, "event_name=\"dup\"") && strstr(p, "event_name=\"dup\"") < strchr(p, '\n');
    ck_assert_uint_eq(dups, 1);
    frag_append_json(f, &j);
    cJSON *doc = cJSON_ParseWithLength(j.p, j.len);
    ck_assert_ptr_nonnull(doc);
    ck_assert_msg(!json_has_duplicate_key(doc), "duplicate JSON key in %s", j.p);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(doc, "derived"), "latency")), 3);
    cJSON_Delete(doc);
    registry_free(reg);
    frag_unref(f);
    derived_clear(&d);
    info_sample_free(prev);
    info_sample_free(s);
    free(lv);
    buf_free(&pre);
    buf_free(&m);
    buf_free(&j);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("info");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, real_master);
    tcase_add_test(tc, real_bgsave_error);
    tcase_add_test(tc, lf_equals_crlf);
    tcase_add_test(tc, versions);
    tcase_add_test(tc, malformed);
    tcase_add_test(tc, binary_and_empty);
    tcase_add_test(tc, no_duplicate_series_from_odd_servers);
    tcase_add_test(tc, no_prefix_confusion);
    tcase_add_test(tc, nested_by_key_not_position);
    tcase_add_test(tc, section_span);
    tcase_add_test(tc, nested_bounded_per_family);
    tcase_add_test(tc, peer_sized_work_is_linear);
    tcase_add_test(tc, key_hash_spreads);
    tcase_add_test(tc, siphash_reference_vectors);
    tcase_add_test(tc, key_hash_has_no_seed_free_collisions);
    tcase_add_test(tc, key_order_memory_never_changes_a_result);
    tcase_add_test(tc, a_known_line_reads_as_a_fresh_parse_reads_it);
    tcase_add_test(tc, kv_fields);
    tcase_add_test(tc, parse_again_reuses_buffers);
    tcase_add_test(tc, poll_parse_leaves_out_only_lines_outside_the_table);
    tcase_add_test(tc, a_reply_like_the_last_hashes_no_key);
    tcase_add_test(tc, compact_again_reuses_buffers);
    tcase_add_test(tc, json_keys_are_what_the_server_wrote);
    tcase_add_test(tc, latency_names_whole_and_unique);
    tcase_add_test(tc, latency_events_past_the_cap);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
