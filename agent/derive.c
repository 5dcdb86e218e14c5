/*
 * derive.c - turns two INFO samples into rates, ratios and health flags.
 * Every rate is (current - previous) / elapsed with the agent's monotonic
 * clock; a counter that went down never yields a rate (it is a reset, and
 * the whole poll becomes a new baseline).
 */
#include "derive.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "util.h"

static const struct {
    const char *group, *json;
} meta[DV_COUNT] = {
#define D(id, grp, json, metric, help) [DV_##id] = {#grp, json},
#include "derived.def"
#undef D
};

const char *derived_group(enum derived_id id) { return meta[id].group; }
const char *derived_json_name(enum derived_id id) { return meta[id].json; }

/* Counters whose decrease means CONFIG RESETSTAT (or a restart). */
static const enum info_field monotonic[] = {
    INFO_TOTAL_COMMANDS_PROCESSED, INFO_TOTAL_CONNECTIONS_RECEIVED, INFO_TOTAL_NET_INPUT_BYTES,
    INFO_TOTAL_NET_OUTPUT_BYTES, INFO_KEYSPACE_HITS, INFO_KEYSPACE_MISSES, INFO_EXPIRED_KEYS,
    INFO_EVICTED_KEYS, INFO_TOTAL_ERROR_REPLIES, INFO_SYNC_FULL, INFO_REJECTED_CONNECTIONS,
    INFO_AOF_DELAYED_FSYNC, INFO_USED_CPU_SYS, INFO_USED_CPU_USER, INFO_USED_CPU_SYS_CHILDREN,
    INFO_USED_CPU_USER_CHILDREN, INFO_USED_CPU_SYS_MAIN_THREAD, INFO_USED_CPU_USER_MAIN_THREAD,
};

/* Error types come in the same order poll after poll: look where the entry
 * was (hint) first; info_find_err hashes otherwise. */
static double err_count(const struct info_sample *s, const char *err, size_t hint)
{
    const struct info_errstat *e = info_find_err(s, err, hint);
    return e ? e->count : 0;
}

/* a - b, treating a missing b as 0 (a command or error type new in cur). */
static double delta0(double a, double b) { return a - (isnan(b) ? 0 : b); }

/* cmds: compare the commandstats too (false when prev's predate a baseline
 * taken on a poll that did not ask for them: see struct cmd_window). */
static enum derive_event detect(const struct info_sample *prev, const struct info_sample *cur, bool cmds)
{
    if (!prev)
        return DERIVE_FIRST;
    const char *r0 = info_sval(prev, INFO_S_RUN_ID), *r1 = info_sval(cur, INFO_S_RUN_ID);
    if (r0 && r1 && strcmp(r0, r1) != 0)
        return DERIVE_RESTART;
    double u0 = info_num(prev, INFO_UPTIME_IN_SECONDS), u1 = info_num(cur, INFO_UPTIME_IN_SECONDS);
    if (u1 < u0)
        return DERIVE_RESTART;
    for (size_t i = 0; i < sizeof monotonic / sizeof *monotonic; i++)
        if (info_num(cur, monotonic[i]) < info_num(prev, monotonic[i]))
            return DERIVE_RESET;
    for (size_t i = 0; cmds && i < cur->n_cmds; i++) {
        const struct info_cmdstat *c = &cur->cmds[i], *p = info_find_cmd(prev, c->cmd, i);
        if (p && (c->calls < p->calls || c->usec < p->usec || c->rejected_calls < p->rejected_calls ||
                  c->failed_calls < p->failed_calls))
            return DERIVE_RESET;
    }
    for (size_t i = 0; i < cur->n_errs; i++)
        if (cur->errs[i].count < err_count(prev, cur->errs[i].err, i))
            return DERIVE_RESET;
    /* commands leave commandstats only through RESETSTAT */
    for (size_t i = 0; cmds && i < prev->n_cmds; i++)
        if (!info_find_cmd(cur, prev->cmds[i].cmd, i))
            return DERIVE_RESET;
    return DERIVE_OK;
}

/* Redis 6.2+: commandstats count rejected and failed calls. */
static bool has_rejected_calls(const struct info_sample *s)
{
    for (size_t i = 0; i < s->n_cmds; i++)
        if (!isnan(s->cmds[i].rejected_calls))
            return true;
    return false;
}

static double ratio(double num, double den) { return den > 0 ? num / den : NAN; }

static double flag(double v) { return isnan(v) ? NAN : (v > 0 ? 1 : 0); }

/* Figures that need only the current sample; its server section is age
 * seconds old (kept from an earlier reply: struct cmd_window). */
static void instant(const struct info_sample *s, double now_real, double age, struct derived *d)
{
    double *v = d->v;
    double used = info_num(s, INFO_USED_MEMORY), maxm = info_num(s, INFO_MAXMEMORY);
    double rss = info_num(s, INFO_USED_MEMORY_RSS);
    v[DV_USED_MEMORY_RATIO] = maxm > 0 ? used / maxm : NAN;
    double fr = info_num(s, INFO_MEM_FRAGMENTATION_RATIO);
    double fb = info_num(s, INFO_MEM_FRAGMENTATION_BYTES);
    if (isnan(fb) && !isnan(rss) && !isnan(used))
        fb = rss - used;
    v[DV_FRAGMENTATION_RATIO] = fr;
    v[DV_FRAGMENTATION_BYTES] = fb;
    if (!isnan(fr) && !isnan(used)) /* MEMORY DOCTOR: small datasets are not a problem */
        v[DV_FRAGMENTATION_PROBLEM] = (used >= 5 * 1024 * 1024 && fr > 1.4 && fb > 10 * 1024 * 1024) ? 1 : 0;
    v[DV_ACTIVE_DEFRAG_RUNNING] = flag(info_num(s, INFO_ACTIVE_DEFRAG_RUNNING));
    v[DV_LAZYFREE_PENDING_OBJECTS] = info_num(s, INFO_LAZYFREE_PENDING_OBJECTS);

    double aof = info_num(s, INFO_AOF_ENABLED);
    double wok = info_num(s, INFO_AOF_LAST_WRITE_STATUS), rok = info_num(s, INFO_AOF_LAST_BGREWRITE_STATUS);
    double cf = info_num(s, INFO_AOF_REWRITES_CONSECUTIVE_FAILURES);
    v[DV_AOF_ENABLED] = aof;
    v[DV_AOF_LAST_WRITE_OK] = wok;
    v[DV_AOF_LAST_REWRITE_OK] = rok;
    v[DV_AOF_REWRITE_IN_PROGRESS] = info_num(s, INFO_AOF_REWRITE_IN_PROGRESS);
    v[DV_AOF_REWRITES_CONSECUTIVE_FAILURES] = cf;
    v[DV_AOF_PENDING_BIO_FSYNC] = info_num(s, INFO_AOF_PENDING_BIO_FSYNC);
    v[DV_AOF_BUFFER_LENGTH_BYTES] = info_num(s, INFO_AOF_BUFFER_LENGTH);
    if (aof == 1)
        v[DV_AOF_HEALTHY] = (wok != 0 && rok != 0 && !(cf > 0)) ? 1 : 0;

    v[DV_RDB_LAST_BGSAVE_OK] = info_num(s, INFO_RDB_LAST_BGSAVE_STATUS);
    v[DV_RDB_BGSAVE_IN_PROGRESS] = info_num(s, INFO_RDB_BGSAVE_IN_PROGRESS);
    double cur_save = info_num(s, INFO_RDB_CURRENT_BGSAVE_TIME_SEC);
    v[DV_RDB_CURRENT_BGSAVE_SECONDS] = cur_save >= 0 ? cur_save : NAN;
    double last_save = info_num(s, INFO_RDB_LAST_SAVE_TIME);
    const char *tu = info_sval(s, INFO_S_SERVER_TIME_USEC);
    double server_now;
    if (!tu || !parse_double(tu, &server_now))
        server_now = now_real;
    else
        server_now = server_now / 1e6 + age;
    if (last_save > 0)
        v[DV_RDB_SECONDS_SINCE_LAST_SAVE] = fmax(0, server_now - last_save);
    v[DV_RDB_CHANGES_SINCE_LAST_SAVE] = info_num(s, INFO_RDB_CHANGES_SINCE_LAST_SAVE);

    double fork = info_num(s, INFO_LATEST_FORK_USEC); /* already in seconds */
    v[DV_LATEST_FORK_SECONDS] = fork;
    if (fork > 0 && rss > 0)
        v[DV_FORK_SECONDS_PER_GB] = fork / (rss / (1024.0 * 1024 * 1024));
    double rcow = info_num(s, INFO_RDB_LAST_COW_SIZE), acow = info_num(s, INFO_AOF_LAST_COW_SIZE);
    v[DV_RDB_LAST_COW_BYTES] = rcow;
    v[DV_AOF_LAST_COW_BYTES] = acow;
    v[DV_RDB_COW_RSS_RATIO] = ratio(rcow, rss);
    v[DV_AOF_COW_RSS_RATIO] = ratio(acow, rss);

    v[DV_MASTER_LINK_UP] = info_num(s, INFO_MASTER_LINK_STATUS);
    double moff = info_num(s, INFO_MASTER_REPL_OFFSET);
    d->replicas = xcalloc(s->n_replicas ? s->n_replicas : 1, sizeof *d->replicas);
    for (size_t i = 0; i < s->n_replicas; i++) {
        double lag = NAN;
        if (!isnan(moff) && !isnan(s->replicas[i].offset))
            lag = fmax(0, moff - s->replicas[i].offset);
        d->replicas[d->n_replicas++] = (struct derived_replica){&s->replicas[i], lag};
        if (!isnan(lag) && !(v[DV_MAX_REPLICA_LAG_BYTES] >= lag))
            v[DV_MAX_REPLICA_LAG_BYTES] = lag;
    }
}

/* Per-second rate of a known counter, NaN when either side lacks it. */
static double rate(const struct info_sample *p, const struct info_sample *c, enum info_field f, double dt)
{
    double a = info_num(p, f), b = info_num(c, f);
    return (isnan(a) || isnan(b)) ? NAN : (b - a) / dt;
}

static void rates(const struct info_sample *p, const struct info_sample *c, double dt, struct derived *d)
{
    double *v = d->v;
    v[DV_COMMANDS_PER_SECOND] = rate(p, c, INFO_TOTAL_COMMANDS_PROCESSED, dt);
    v[DV_NET_INPUT_BYTES_PER_SECOND] = rate(p, c, INFO_TOTAL_NET_INPUT_BYTES, dt);
    v[DV_NET_OUTPUT_BYTES_PER_SECOND] = rate(p, c, INFO_TOTAL_NET_OUTPUT_BYTES, dt);
    v[DV_EXPIRED_KEYS_PER_SECOND] = rate(p, c, INFO_EXPIRED_KEYS, dt);
    v[DV_EVICTED_KEYS_PER_SECOND] = rate(p, c, INFO_EVICTED_KEYS, dt);
    double hits = rate(p, c, INFO_KEYSPACE_HITS, dt), misses = rate(p, c, INFO_KEYSPACE_MISSES, dt);
    v[DV_KEYSPACE_HIT_RATIO] = ratio(hits, hits + misses);
    v[DV_ERROR_REPLIES_PER_SECOND] = rate(p, c, INFO_TOTAL_ERROR_REPLIES, dt);
    double misconf = (err_count(c, "MISCONF", SIZE_MAX) - err_count(p, "MISCONF", SIZE_MAX)) / dt;
    double oom = (err_count(c, "OOM", SIZE_MAX) - err_count(p, "OOM", SIZE_MAX)) / dt;
    bool have_errstats = c->n_errs > 0 || info_has(c, INFO_TOTAL_ERROR_REPLIES);
    v[DV_MISCONF_ERRORS_PER_SECOND] = have_errstats ? misconf : NAN;
    v[DV_OOM_ERRORS_PER_SECOND] = have_errstats ? oom : NAN;
    /* the servers without rejected_calls (before 6.2): refused writes are
     * MISCONF and OOM errors (cmd_rates: the others) */
    if (have_errstats && !has_rejected_calls(c))
        v[DV_WRITES_REFUSED_PER_SECOND] = misconf + oom;
    for (size_t i = 0; i < d->n_errs; i++)
        d->errs[i].per_second = (c->errs[i].count - err_count(p, c->errs[i].err, i)) / dt;


    v[DV_AOF_DELAYED_FSYNCS] = info_num(c, INFO_AOF_DELAYED_FSYNC) - info_num(p, INFO_AOF_DELAYED_FSYNC);
    /* sizes that shrink on purpose: only growth between two quiet samples */
    if (info_num(c, INFO_AOF_REWRITES) == info_num(p, INFO_AOF_REWRITES)) {
        double g = info_num(c, INFO_AOF_CURRENT_SIZE) - info_num(p, INFO_AOF_CURRENT_SIZE);
        if (g >= 0)
            v[DV_AOF_GROWTH_BYTES_PER_SECOND] = g / dt;
    }
    if (info_num(c, INFO_RDB_LAST_SAVE_TIME) == info_num(p, INFO_RDB_LAST_SAVE_TIME)) {
        double g = info_num(c, INFO_RDB_CHANGES_SINCE_LAST_SAVE) - info_num(p, INFO_RDB_CHANGES_SINCE_LAST_SAVE);
        if (g >= 0)
            v[DV_RDB_CHANGES_PER_SECOND] = g / dt;
    }
    v[DV_FULL_RESYNCS_LAST_INTERVAL] = info_num(c, INFO_SYNC_FULL) - info_num(p, INFO_SYNC_FULL);
}

/* The figures from commandstats and cpu, over dt (which is the poll's
 * interval, or longer when they are asked less often: struct cmd_window). */
static void cmd_rates(const struct info_sample *p, const struct info_sample *c, double dt, struct derived *d)
{
    double *v = d->v;
    double cs = rate(p, c, INFO_USED_CPU_SYS, dt), cu = rate(p, c, INFO_USED_CPU_USER, dt);
    v[DV_CPU_SYS_RATIO] = cs;
    v[DV_CPU_USER_RATIO] = cu;
    v[DV_CPU_TOTAL_RATIO] = cs + cu;
    v[DV_CPU_CHILDREN_RATIO] = rate(p, c, INFO_USED_CPU_SYS_CHILDREN, dt) + rate(p, c, INFO_USED_CPU_USER_CHILDREN, dt);
    v[DV_CPU_MAIN_THREAD_RATIO] = rate(p, c, INFO_USED_CPU_SYS_MAIN_THREAD, dt) + rate(p, c, INFO_USED_CPU_USER_MAIN_THREAD, dt);
    double w = 0, r = 0, o = 0, rej = 0, fail = 0, wrej = 0;
    bool have_rej = false;
    for (size_t i = 0; i < d->n_cmds; i++) {
        struct derived_cmd *dc = &d->cmds[i];
        const struct info_cmdstat *cc = &c->cmds[i], *pc = info_find_cmd(p, cc->cmd, i);
        double calls = delta0(cc->calls, pc ? pc->calls : NAN);
        double usec = delta0(cc->usec, pc ? pc->usec : NAN);
        dc->calls_per_second = calls / dt;
        dc->seconds_per_call = calls > 0 && !isnan(usec) ? usec / calls / 1e6 : NAN;
        if (dc->cls == CMD_WRITE)
            w += calls;
        else if (dc->cls == CMD_READ)
            r += calls;
        else
            o += calls;
        if (!isnan(cc->rejected_calls)) {
            have_rej = true;
            double dr = delta0(cc->rejected_calls, pc ? pc->rejected_calls : NAN);
            rej += dr;
            if (dc->cls == CMD_WRITE)
                wrej += dr;
            fail += delta0(cc->failed_calls, pc ? pc->failed_calls : NAN);
        }
    }
    v[DV_WRITE_COMMANDS_PER_SECOND] = w / dt;
    v[DV_READ_COMMANDS_PER_SECOND] = r / dt;
    v[DV_OTHER_COMMANDS_PER_SECOND] = o / dt;
    if (have_rej) {
        v[DV_REJECTED_CALLS_PER_SECOND] = rej / dt;
        v[DV_FAILED_CALLS_PER_SECOND] = fail / dt;
        v[DV_WRITES_REFUSED_PER_SECOND] = wrej / dt;
    }
}

/* The figures cmd_rates sets, kept in a cmd_window. */
static const enum derived_id cmd_figs[CMD_WINDOW_FIGS] = {
    DV_WRITE_COMMANDS_PER_SECOND, DV_READ_COMMANDS_PER_SECOND, DV_OTHER_COMMANDS_PER_SECOND,
    DV_REJECTED_CALLS_PER_SECOND, DV_FAILED_CALLS_PER_SECOND,  DV_WRITES_REFUSED_PER_SECOND,
    DV_CPU_SYS_RATIO,             DV_CPU_USER_RATIO,           DV_CPU_TOTAL_RATIO,
    DV_CPU_CHILDREN_RATIO,        DV_CPU_MAIN_THREAD_RATIO,
};

static void window_keep(struct cmd_window *w, const struct derived *d)
{
    for (int i = 0; i < CMD_WINDOW_FIGS; i++)
        w->v[i] = d->v[cmd_figs[i]];
    if (w->n != d->n_cmds) {
        free(w->per_cmd);
        w->per_cmd = xcalloc(d->n_cmds ? 2 * d->n_cmds : 1, sizeof *w->per_cmd);
        w->n = d->n_cmds;
    }
    for (size_t i = 0; i < d->n_cmds; i++) {
        w->per_cmd[2 * i] = d->cmds[i].calls_per_second;
        w->per_cmd[2 * i + 1] = d->cmds[i].seconds_per_call;
    }
    w->seconds = d->cmd_interval_seconds;
    w->kept = true;
}

/* A poll that did not ask: its commandstats are the kept section, the same
 * list in the same order as the sample the figures were kept from. */
static void window_reuse(const struct cmd_window *w, uint64_t cur_us, struct derived *d)
{
    if (!w->kept)
        return;
    d->cmd_interval_seconds = w->seconds;
    d->cmd_age_seconds = (double)(cur_us - w->since_us) / 1e6;
    for (int i = 0; i < CMD_WINDOW_FIGS; i++)
        if (!isnan(w->v[i]))
            d->v[cmd_figs[i]] = w->v[i];
    if (w->n != d->n_cmds)
        return;
    for (size_t i = 0; i < d->n_cmds; i++) {
        d->cmds[i].calls_per_second = w->per_cmd[2 * i];
        d->cmds[i].seconds_per_call = w->per_cmd[2 * i + 1];
    }
}

void cmd_window_clear(struct cmd_window *w)
{
    free(w->per_cmd);
    memset(w, 0, sizeof *w);
}

void derive_window(const struct info_sample *prev, uint64_t prev_us, const struct info_sample *cur,
                   uint64_t cur_us, double now_real, derive_classify_fn classify, void *ctx,
                   struct cmd_window *w, struct derived *d)
{
    memset(d, 0, sizeof *d);
    for (int i = 0; i < DV_COUNT; i++)
        d->v[i] = NAN;
    d->interval_seconds = d->cmd_interval_seconds = d->cmd_age_seconds = NAN;
    d->event = detect(prev, cur, !w || !w->rebase);
    if (d->event == DERIVE_OK && cur_us <= prev_us)
        d->event = DERIVE_FIRST; /* no elapsed time: nothing to divide by */
    d->cmds = xcalloc(cur->n_cmds ? cur->n_cmds : 1, sizeof *d->cmds);
    d->n_cmds = cur->n_cmds;
    for (size_t i = 0; i < cur->n_cmds; i++) {
        enum cmd_class cls = classify ? classify(ctx, cur->cmds[i].cmd) : CMD_UNKNOWN;
        if (cls == CMD_UNKNOWN)
            cls = cmdclass_builtin(cur->cmds[i].cmd);
        d->cmds[i] = (struct derived_cmd){cur->cmds[i].cmd, cls, NAN, NAN};
    }
    d->errs = xcalloc(cur->n_errs ? cur->n_errs : 1, sizeof *d->errs);
    d->n_errs = cur->n_errs;
    for (size_t i = 0; i < cur->n_errs; i++)
        d->errs[i] = (struct derived_err){cur->errs[i].err, NAN};
    instant(cur, now_real, w && !w->fresh && w->since_us && cur_us > w->since_us ? (double)(cur_us - w->since_us) / 1e6 : 0,
            d);
    bool ok = d->event == DERIVE_OK, kept = false;
    if (ok) {
        double dt = (double)(cur_us - prev_us) / 1e6;
        d->interval_seconds = dt;
        if (!w || (w->fresh && !w->rebase && cur_us > w->since_us)) {
            d->cmd_interval_seconds = w ? (double)(cur_us - w->since_us) / 1e6 : dt;
            d->cmd_age_seconds = 0;
            cmd_rates(prev, cur, d->cmd_interval_seconds, d);
            if (w) { /* before rates(): only what cmd_rates computed (the
                      * pre-6.2 writes refused come from each poll's errorstats) */
                window_keep(w, d);
                kept = true;
            }
        } else if (!w->fresh) {
            window_reuse(w, cur_us, d);
        }
        rates(prev, cur, dt, d);
    }
    if (!w)
        return;
    if (w->fresh) {
        if (!kept)
            w->kept = false; /* this sample's commandstats are the baseline */
        w->since_us = cur_us;
        w->rebase = false;
    } else if (!ok) {
        /* a baseline on commandstats kept from before it: the next ones
         * asked for are the commandstats baseline, not compared with these */
        w->kept = false;
        w->rebase = true;
    }
}

void derive(const struct info_sample *prev, uint64_t prev_us, const struct info_sample *cur,
            uint64_t cur_us, double now_real, derive_classify_fn classify, void *ctx,
            struct derived *d)
{
    derive_window(prev, prev_us, cur, cur_us, now_real, classify, ctx, NULL, d);
}

void derived_unbind(struct derived *d)
{
    for (size_t i = 0; i < d->n_cmds; i++)
        d->cmds[i].cmd = NULL;
    for (size_t i = 0; i < d->n_errs; i++)
        d->errs[i].err = NULL;
    for (size_t i = 0; i < d->n_replicas; i++)
        d->replicas[i].r = NULL;
}

bool derived_rebind(struct derived *d, const struct info_sample *cur)
{
    if (d->n_cmds != cur->n_cmds || d->n_errs != cur->n_errs || d->n_replicas != cur->n_replicas)
        return false;
    for (size_t i = 0; i < d->n_cmds; i++)
        d->cmds[i].cmd = cur->cmds[i].cmd;
    for (size_t i = 0; i < d->n_errs; i++)
        d->errs[i].err = cur->errs[i].err;
    for (size_t i = 0; i < d->n_replicas; i++)
        d->replicas[i].r = &cur->replicas[i];
    return true;
}

void derived_clear(struct derived *d)
{
    free(d->cmds);
    free(d->errs);
    free(d->replicas);
    memset(d, 0, sizeof *d);
}
