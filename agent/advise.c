/*
 * advise.c - the write-tuning guide as checks: each one reads settings,
 * rates and host facts and, when its condition holds, says what it measured,
 * the exact change to make and what that change costs, in the manner of
 * LATENCY DOCTOR and MySQLTuner, but continuously. Pure: no I/O, no clocks.
 * Settings-only checks run when settings arrive; rate checks run after each
 * poll, and only those the settings arm (appendfsync_always is not looked at
 * on a server with appendfsync everysec).
 */
#include "advise.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "util.h"

enum check_kind { RATE, CFG };

static const struct {
    const char *name;
    enum check_kind kind;
    const char *group;
} checks[ADV_COUNT] = {
#define X(id, name, kind, group) [ADV_##id] = {name, kind, #group},
    ADVICE_CHECKS(X)
#undef X
};

static const struct {
    const char *key;
    double def;
} thresholds[ADVT_COUNT] = {
#define X(id, key, def, help) [ADVT_##id] = {key, def},
    ADVICE_THRESHOLDS(X)
#undef X
};

const char *advice_check_name(enum advice_check c) { return checks[c].name; }
const char *advice_check_group(enum advice_check c) { return checks[c].group; }
const char *advice_threshold_key(enum advice_threshold t) { return thresholds[t].key; }
double advice_threshold_default(enum advice_threshold t) { return thresholds[t].def; }

const char *advice_severity_str(enum advice_severity s)
{
    return s == ADV_CRITICAL ? "critical" : s == ADV_WARNING ? "warning" : "info";
}

int advice_check_find(const char *name)
{
    for (int c = 0; c < ADV_COUNT; c++)
        if (strcmp(checks[c].name, name) == 0)
            return c;
    return -1;
}

void advice_opts_default(struct advice_opts *o)
{
    memset(o, 0, sizeof *o);
    for (int t = 0; t < ADVT_COUNT; t++)
        o->t[t] = thresholds[t].def;
}

/* ---- findings ---------------------------------------------------------- */

void advisor_init(struct advisor *a, const struct advice_opts *o)
{
    memset(a, 0, sizeof *a);
    if (o)
        a->o = *o;
    else
        advice_opts_default(&a->o);
}

static void finding_free(struct advice_finding *f)
{
    if (f)
        free(f->json);
    free(f);
}

static void drop(struct advisor *a, int c)
{
    if (a->f[c]) {
        finding_free(a->f[c]);
        a->f[c] = NULL;
        a->n_holding--;
    }
    a->quiet[c] = 0;
}

void advisor_clear(struct advisor *a)
{
    for (int c = 0; c < ADV_COUNT; c++)
        drop(a, c);
}

void advise_reset(struct advisor *a)
{
    advisor_clear(a);
    a->have_prev = false;
    a->last_rewrite_ts = 0;
}

/* Check c holds: its finding, created (since = now) when it did not hold,
 * to write the texts into; NULL when nothing needs writing: the severity is
 * the same, the texts are not the first poll's without rates on a poll
 * that has them, and they are younger than ADVICE_REFRESH_MAX_SECONDS and
 * either younger than ADVICE_REFRESH_SECONDS or, for a rate check, written
 * fewer than ADVICE_REFRESH_POLLS polls ago. A settings check runs once a
 * CONFIG GET: ADVICE_REFRESH_SECONDS alone spaces its rewrites. */
static struct advice_finding *hold(struct advisor *a, int c, enum advice_severity sev, double now)
{
    a->quiet[c] = 0;
    struct advice_finding *f = a->f[c];
    if (!f) {
        f = a->f[c] = xcalloc(1, sizeof *f);
        f->id = (enum advice_check)c;
        f->since = now;
        a->n_holding++;
    } else if (f->sev == sev && now >= f->written && !(f->no_rates && a->rates)) {
        double age = now - f->written;
        bool rate = checks[c].kind == RATE;
        if (age < ADVICE_REFRESH_MAX_SECONDS &&
            (age < ADVICE_REFRESH_SECONDS || (rate && a->polls - f->written_poll < ADVICE_REFRESH_POLLS)))
            return NULL;
    }
    f->sev = sev;
    f->written = now;
    f->written_poll = a->polls;
    f->no_rates = checks[c].kind == RATE && !a->rates;
    free(f->json);
    f->json = NULL; /* rebuilt from the new texts when next rendered */
    a->json_stale = true;
    return f;
}

/* A rate check whose condition did not hold this poll: cleared after two in
 * a row (one quiet interval under a bursty load is not a fix). */
static void quiet(struct advisor *a, int c)
{
    if (a->f[c] && ++a->quiet[c] >= 2)
        drop(a, c);
}

#define SET(field, ...) snprintf(f->field, sizeof f->field, __VA_ARGS__)

/* ---- formatting -------------------------------------------------------- */

/* Formatted numbers live in a ring long enough for every value of one
 * check's texts. */
#define NB_SLOTS 24
struct nb {
    char s[NB_SLOTS][48];
    int i;
};

/* A byte count as "512 B", "64.0 MB", "1.50 GB" (powers of 1024). */
static const char *bytes(struct nb *n, double v)
{
    char *s = n->s[n->i++ % NB_SLOTS];
    const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    int k = 0;
    while (fabs(v) >= 1024 && k < 4)
        v /= 1024, k++;
    if (k == 0)
        snprintf(s, 48, "%.0f B", v);
    else
        snprintf(s, 48, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v, u[k]);
    return s;
}

/* A rate or count, rounded for reading. */
static const char *num(struct nb *n, double v)
{
    char *s = n->s[n->i++ % NB_SLOTS];
    if (isnan(v))
        snprintf(s, 48, "unknown");
    else if (fabs(v) >= 100 || v == floor(v))
        snprintf(s, 48, "%.0f", v);
    else
        snprintf(s, 48, "%.2g", v);
    return s;
}

/* The latest fork's duration, or that none happened yet. */
static const char *fork_ms(struct nb *n, double ms)
{
    char *s = n->s[n->i++ % NB_SLOTS];
    if (isnan(ms) || ms <= 0)
        snprintf(s, 48, "none yet");
    else
        snprintf(s, 48, "%.1f ms", ms);
    return s;
}

/* A duration as "45 s", "12 min", "3.1 h". */
static const char *dur(struct nb *n, double sec)
{
    char *s = n->s[n->i++ % NB_SLOTS];
    if (sec < 120)
        snprintf(s, 48, "%.0f s", sec);
    else if (sec < 7200)
        snprintf(s, 48, "%.0f min", sec / 60);
    else
        snprintf(s, 48, "%.1f h", sec / 3600);
    return s;
}

/* ---- settings ---------------------------------------------------------- */

static const char *cstr(const struct config_values *cv, enum cfg_param p)
{
    return cv && cv->v[p] ? cv->v[p] : NULL;
}

static const char *cval(const struct config_values *cv, enum cfg_param p)
{
    const char *v = cstr(cv, p);
    return v ? v : "";
}

static double cnum(const struct config_values *cv, enum cfg_param p)
{
    return cv ? cfg_value_num(cv, p) : NAN;
}

static bool str_is(const struct config_values *cv, enum cfg_param p, const char *want)
{
    const char *v = cstr(cv, p);
    return v && strcasecmp(v, want) == 0;
}

/* The save rules "secs changes secs changes ..."; returns the number of
 * pairs (0: snapshots off or unparseable). */
#define MAX_SAVE_RULES 8 /* as in struct advisor */
static int save_rules(const char *save, double secs[], double changes[])
{
    int n = 0;
    const char *p = save;
    while (p && *p && n < MAX_SAVE_RULES) {
        char *end;
        double s = strtod(p, &end);
        if (end == p)
            return 0;
        p = end;
        double c = strtod(p, &end);
        if (end == p)
            return 0;
        p = end;
        secs[n] = s, changes[n] = c;
        n++;
        while (*p == ' ')
            p++;
    }
    return n;
}

static bool snapshots_on(const struct config_values *cv)
{
    double s[MAX_SAVE_RULES], c[MAX_SAVE_RULES];
    const char *save = cstr(cv, CFGP_SAVE);
    return save && save_rules(save, s, c) > 0;
}

static bool aof_on(const struct config_values *cv) { return cnum(cv, CFGP_APPENDONLY) == 1; }

/* Which rate checks the settings make possible. */
static uint32_t arm(const struct advisor *a, const struct config_values *cv)
{
    uint32_t m = 1u << ADV_NO_PIPELINING | 1u << ADV_NO_CONNECTION_REUSE | 1u << ADV_REJECTED_CONNECTIONS |
                 1u << ADV_CLIENTS_NEAR_MAXCLIENTS;
    if (cv && cv->have) {
        bool aof = aof_on(cv), snap = snapshots_on(cv);
        double maxmem = cnum(cv, CFGP_MAXMEMORY);
        const char *policy = cstr(cv, CFGP_MAXMEMORY_POLICY);
        if (aof && str_is(cv, CFGP_APPENDFSYNC, "always"))
            m |= 1u << ADV_APPENDFSYNC_ALWAYS;
        if (aof && cnum(cv, CFGP_NO_APPENDFSYNC_ON_REWRITE) == 0 && !str_is(cv, CFGP_APPENDFSYNC, "no"))
            m |= 1u << ADV_FSYNC_DURING_REWRITE;
        if (snap)
            m |= 1u << ADV_SAVE_FORKS_OFTEN;
        if (aof && cnum(cv, CFGP_AUTO_AOF_REWRITE_PERCENTAGE) > 0)
            m |= 1u << ADV_AOF_REWRITES_OFTEN;
        if (aof && snap)
            m |= 1u << ADV_RDB_AND_AOF;
        if (cv->v[CFGP_APPENDONLY] && cv->v[CFGP_SAVE] && !aof && !snap)
            m |= 1u << ADV_PERSISTENCE_OFF;
        if (maxmem == 0)
            m |= 1u << ADV_NO_MAXMEMORY;
        if (maxmem > 0 && policy && strcasecmp(policy, "noeviction") == 0)
            m |= 1u << ADV_NOEVICTION_NEAR_FULL;
        if (maxmem > 0 && policy && strncasecmp(policy, "volatile-", 9) == 0)
            m |= 1u << ADV_VOLATILE_WITHOUT_TTL;
        if (maxmem > 0 && policy && strcasecmp(policy, "noeviction") != 0 &&
            cnum(cv, CFGP_MAXMEMORY_SAMPLES) < a->o.t[ADVT_MAXMEMORY_SAMPLES])
            m |= 1u << ADV_MAXMEMORY_SAMPLES_LOW;
        if (cv->v[CFGP_ACTIVEDEFRAG])
            m |= 1u << ADV_FRAGMENTATION_NO_DEFRAG;
        if (cnum(cv, CFGP_LAZYFREE_LAZY_EVICTION) == 0 || cnum(cv, CFGP_LAZYFREE_LAZY_EXPIRE) == 0)
            m |= 1u << ADV_LAZYFREE_OFF;
    }
    for (int c = 0; c < ADV_COUNT; c++)
        if (a->o.off[c])
            m &= ~(1u << c);
    return m;
}

/* Builds the JSON of the findings whose texts were just written. */
static void write_json(struct advisor *a)
{
    if (!a->json_stale) /* the usual poll: nothing written (the findings are cold memory at scale) */
        return;
    a->json_stale = false;
    for (int c = 0; c < ADV_COUNT; c++) {
        struct advice_finding *f = a->f[c];
        if (!f || f->json)
            continue;
        struct buf b = BUF_INIT;
        buf_puts(&b, "{\"id\":");
        buf_put_json_str(&b, checks[c].name);
        buf_puts(&b, ",\"group\":");
        buf_put_json_str(&b, checks[c].group);
        buf_puts(&b, ",\"severity\":");
        buf_put_json_str(&b, advice_severity_str(f->sev));
        buf_puts(&b, ",\"title\":");
        buf_put_json_str(&b, f->title);
        buf_puts(&b, ",\"evidence\":");
        buf_put_json_str(&b, f->evidence);
        buf_puts(&b, ",\"recommendation\":");
        buf_put_json_str(&b, f->recommendation);
        buf_puts(&b, ",\"tradeoff\":");
        buf_put_json_str(&b, f->tradeoff);
        buf_puts(&b, ",\"since\":");
        buf_put_double(&b, floor(f->since));
        buf_putc(&b, '}');
        f->json = buf_steal(&b, NULL);
    }
}

/* ---- settings-only checks (host and observability) --------------------- */

/* Returns 1 when check c holds (and fills its finding), 0 otherwise. */
static int eval_cfg(struct advisor *a, int c, const struct config_values *cv, const struct host_facts *h, double now)
{
    struct advice_finding *f;
    struct nb n;
    n.i = 0; /* the slots are written before they are read: no need to clear 1 KB per check */
    switch (c) {
    case ADV_THP_ALWAYS: {
        double dthp = cnum(cv, CFGP_DISABLE_THP);
        if (!h || h->thp != THP_ALWAYS || dthp == 1)
            return 0;
        if (!(f = hold(a, c, ADV_WARNING, now)))
            return 1;
        SET(title, "Transparent huge pages are always on: forks copy 2 MB pages, latency spikes and memory grow");
        SET(evidence, "/sys/kernel/mm/transparent_hugepage/enabled: [always]; disable-thp: %s",
            isnan(dthp) ? "not supported (Redis < 6.2)" : "no");
        SET(recommendation, "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled (and transparent_hugepage=madvise "
                            "on the kernel command line)%s",
            isnan(dthp) ? "" : ", or disable-thp yes in redis.conf (read at start)");
        SET(tradeoff, "None for Redis. Other programs on the host that want huge pages must ask for them with madvise().");
        return 1;
    }
    case ADV_OVERCOMMIT_MEMORY:
        if (!h || h->overcommit_memory < 0 || h->overcommit_memory == 1 || !(aof_on(cv) || snapshots_on(cv)))
            return 0;
        if (!(f = hold(a, c, ADV_WARNING, now)))
            return 1;
        SET(title, "vm.overcommit_memory is %d with persistence on: a fork for BGSAVE or a rewrite can fail",
            h->overcommit_memory);
        SET(evidence, "vm.overcommit_memory = %d; appendonly %s, save \"%s\": when the fork fails, saves stop and "
                      "(stop-writes-on-bgsave-error) writes are refused with MISCONF",
            h->overcommit_memory, aof_on(cv) ? "yes" : "no", cval(cv, CFGP_SAVE));
        SET(recommendation, "sysctl vm.overcommit_memory=1 (and vm.overcommit_memory = 1 in /etc/sysctl.d/)");
        SET(tradeoff, "The kernel stops refusing large allocations up front; if memory really runs out, the OOM "
                      "killer acts instead of fork() failing.");
        return 1;
    case ADV_SOMAXCONN_BELOW_BACKLOG: {
        double backlog = cnum(cv, CFGP_TCP_BACKLOG);
        if (!h || h->somaxconn < 0 || isnan(backlog) || backlog <= (double)h->somaxconn)
            return 0;
        if (!(f = hold(a, c, ADV_WARNING, now)))
            return 1;
        SET(title, "net.core.somaxconn %ld is below tcp-backlog %s: the accept queue is silently truncated",
            h->somaxconn, num(&n, backlog));
        SET(evidence, "net.core.somaxconn = %ld; tcp-backlog = %s", h->somaxconn, num(&n, backlog));
        SET(recommendation, "sysctl net.core.somaxconn=%s (and in /etc/sysctl.d/)", num(&n, backlog));
        SET(tradeoff, "A longer accept queue holds a little kernel memory per pending connection; none otherwise.");
        return 1;
    }
    case ADV_OPEN_FILES_LIMIT: {
        double maxc = cnum(cv, CFGP_MAXCLIENTS);
        if (!h || h->nofile_soft < 0 || isnan(maxc) || (double)h->nofile_soft >= maxc + 32)
            return 0;
        if (!(f = hold(a, c, ADV_WARNING, now)))
            return 1;
        SET(title, "Open-files limit %ld of the Redis process is below maxclients + 32 (%s)", h->nofile_soft,
            num(&n, maxc + 32));
        SET(evidence, "/proc/%ld/limits: Max open files %ld (soft); maxclients %s; Redis keeps 32 descriptors for itself",
            h->pid, h->nofile_soft, num(&n, maxc));
        SET(recommendation, "LimitNOFILE=%s in the redis-server systemd unit (or ulimit -n %s before start), "
                            "or CONFIG SET maxclients %ld",
            num(&n, maxc + 32), num(&n, maxc + 32), h->nofile_soft > 32 ? h->nofile_soft - 32 : 1);
        SET(tradeoff, "A higher limit lets more clients connect, each costing a descriptor and its buffers' memory.");
        return 1;
    }
    case ADV_TCP_KEEPALIVE_OFF:
        if (cnum(cv, CFGP_TCP_KEEPALIVE) != 0)
            return 0;
        if (!(f = hold(a, c, ADV_INFO, now)))
            return 1;
        SET(title, "tcp-keepalive is 0: dead client connections are never detected and hold their slots");
        SET(evidence, "tcp-keepalive = 0");
        SET(recommendation, "CONFIG SET tcp-keepalive 300 (and tcp-keepalive 300 in redis.conf)");
        SET(tradeoff, "One probe per idle connection every 300 s: negligible traffic.");
        return 1;
    case ADV_LATENCY_MONITOR_OFF:
        if (cnum(cv, CFGP_LATENCY_MONITOR_THRESHOLD) != 0)
            return 0;
        if (!(f = hold(a, c, ADV_INFO, now)))
            return 1;
        SET(title, "latency-monitor-threshold is 0: LATENCY LATEST and LATENCY DOCTOR have nothing to show");
        SET(evidence, "latency-monitor-threshold = 0 (off)");
        SET(recommendation, "CONFIG SET latency-monitor-threshold 100 (milliseconds; and in redis.conf)");
        SET(tradeoff, "The server records a timestamp for each event longer than the threshold: negligible cost.");
        return 1;
    default:
        return 0;
    }
}

void advise_settings(struct advisor *a, const struct config_values *cv, const struct host_facts *host, double now)
{
    a->have_settings = cv && cv->have;
    a->n_save = cstr(cv, CFGP_SAVE) ? save_rules(cstr(cv, CFGP_SAVE), a->save_secs, a->save_changes) : 0;
    a->armed = arm(a, cv);
    for (int c = 0; c < ADV_COUNT; c++) {
        if (checks[c].kind == RATE) {
            if (!(a->armed & (1u << c)))
                drop(a, c); /* the setting that made it possible changed: cleared at once */
            continue;
        }
        if (a->o.off[c] || !a->have_settings || !eval_cfg(a, c, cv, host, now))
            drop(a, c);
    }
    write_json(a);
}

/* ---- rate checks ------------------------------------------------------- */

struct rates {
    double iv;                /* seconds between the two polls, NaN on a baseline */
    double wps, cps;          /* write commands/s, commands/s */
    double wps_iv;            /* the seconds wps is over (commandstats_interval) */
    double cmds_per_read;     /* NaN when unknown */
    double conns_per_s;
    double rejected;          /* rejected connections in the interval */
    double keys, expires;     /* over all databases; NaN with a compact sample */
};

static double dv(const struct derived *d, enum derived_id id) { return d ? d->v[id] : NAN; }

/* Returns 1 when c holds (finding filled), 0 when it does not, -1 when its
 * inputs are not available on this poll (state kept). */
static int eval_rate(struct advisor *a, int c, const struct config_values *cv, const struct info_sample *s,
                     const struct derived *d, const struct rates *r, double now)
{
    struct advice_finding *f;
    struct nb n;
    n.i = 0; /* the slots are written before they are read: no need to clear 1 KB per check */
    const double *t = a->o.t;
    double fork_ms_v = info_num(s, INFO_LATEST_FORK_USEC) / 1e3;
    switch (c) {
    case ADV_APPENDFSYNC_ALWAYS:
        if (isnan(r->wps))
            return -1;
        if (r->wps < t[ADVT_WRITES_PER_SECOND])
            return 0;
        if (!(f = hold(a, c, ADV_WARNING, now)))
            return 1;
        SET(title, "appendfsync always under %s writes/s: every write waits for an fsync", num(&n, r->wps));
        SET(evidence, "appendonly yes, appendfsync always; %s write commands/s over the last %s (threshold %s): "
                      "the AOF is fsynced before the replies to each batch of writes are sent",
            num(&n, r->wps), dur(&n, r->wps_iv), num(&n, t[ADVT_WRITES_PER_SECOND]));
        SET(recommendation, "CONFIG SET appendfsync everysec (and appendfsync everysec in redis.conf)");
        SET(tradeoff, "everysec fsyncs once a second in a background thread: a crash or power loss can lose up to "
                      "about 1 s (2 s on a slow disk) of acknowledged writes instead of none.");
        return 1;
    case ADV_FSYNC_DURING_REWRITE: {
        if (a->last_rewrite_ts <= 0 || now - a->last_rewrite_ts > t[ADVT_REWRITE_WINDOW])
            return 0;
        double rw = info_num(s, INFO_AOF_LAST_REWRITE_TIME_SEC);
        if (!(f = hold(a, c, ADV_WARNING, now)))
            return 1;
        SET(title, "AOF fsyncs continue during rewrites and saves (no-appendfsync-on-rewrite no)");
        SET(evidence, "appendonly yes, appendfsync %s, no-appendfsync-on-rewrite no; a rewrite or save child ran %s ago "
                      "(last AOF rewrite took %s s, latest fork %s): fsyncs compete with the child's disk writes "
                      "and a slow fsync blocks the main thread",
            cval(cv, CFGP_APPENDFSYNC), dur(&n, now - a->last_rewrite_ts),
            num(&n, rw), fork_ms(&n, fork_ms_v));
        SET(recommendation, "CONFIG SET no-appendfsync-on-rewrite yes (and in redis.conf)");
        SET(tradeoff, "While a rewrite or save runs the AOF is not fsynced: a crash then loses up to the child's "
                      "duration of writes (the last rewrite took %s s; the kernel flushes within about 30 s anyway).",
            num(&n, rw));
        return 1;
    }
    case ADV_SAVE_FORKS_OFTEN: {
        double rate = dv(d, DV_RDB_CHANGES_PER_SECOND);
        if (isnan(rate))
            rate = r->wps;
        if (isnan(rate))
            return -1;
        const double *secs = a->save_secs, *chg = a->save_changes;
        int nr = a->n_save;
        double every = INFINITY;
        int which = -1;
        for (int i = 0; i < nr; i++) {
            if (rate <= 0)
                break;
            double e = fmax(secs[i], chg[i] / rate);
            if (e < every)
                every = e, which = i;
        }
        if (which < 0 || every >= t[ADVT_MIN_FORK_INTERVAL])
            return 0;
        double cow = info_num(s, INFO_RDB_LAST_COW_SIZE), rss = info_num(s, INFO_USED_MEMORY_RSS);
        double keep = fmax(900, 3 * t[ADVT_MIN_FORK_INTERVAL]);
        if (!(f = hold(a, c, ADV_WARNING, now)))
            return 1;
        SET(title, "The save policy forks every %s at the current write rate", dur(&n, every));
        SET(evidence, "save \"%s\"; at %s changes/s the rule \"%.0f %.0f\" forks every %s (threshold %s); latest fork "
                      "%s, last copy-on-write %s of %s RSS",
            cval(cv, CFGP_SAVE), num(&n, rate), secs[which], chg[which], dur(&n, every),
            dur(&n, t[ADVT_MIN_FORK_INTERVAL]), fork_ms(&n, fork_ms_v), isnan(cow) ? "unknown" : bytes(&n, cow),
            isnan(rss) ? "unknown" : bytes(&n, rss));
        SET(recommendation, "CONFIG SET save \"%.0f 1\" (and save %.0f 1 in redis.conf)%s", keep, keep,
            aof_on(cv) ? ", or CONFIG SET save \"\" since AOF is on" : "");
        SET(tradeoff, "Fewer snapshots: a crash loses up to %s of writes since the last one%s; in return fewer "
                      "fork stalls (latest %s) and less copy-on-write memory.",
            dur(&n, keep), aof_on(cv) ? " (the AOF still has them)" : "", fork_ms(&n, fork_ms_v));
        return 1;
    }
    case ADV_AOF_REWRITES_OFTEN: {
        double growth = dv(d, DV_AOF_GROWTH_BYTES_PER_SECOND);
        if (isnan(growth))
            return -1;
        double base = info_num(s, INFO_AOF_BASE_SIZE), pct = cnum(cv, CFGP_AUTO_AOF_REWRITE_PERCENTAGE);
        double minsz = cnum(cv, CFGP_AUTO_AOF_REWRITE_MIN_SIZE);
        if (isnan(base) || isnan(minsz) || growth <= 0)
            return 0;
        double target = fmax(minsz, base * (1 + pct / 100));
        double every = (target - base) / growth;
        if (every <= 0 || every >= t[ADVT_MIN_AOF_REWRITE_INTERVAL])
            return 0;
        double want = ceil((base + growth * t[ADVT_MIN_AOF_REWRITE_INTERVAL]) / (1 << 20));
        if (!(f = hold(a, c, ADV_WARNING, now)))
            return 1;
        SET(title, "The AOF is rewritten about every %s at the current growth", dur(&n, every));
        SET(evidence, "auto-aof-rewrite-percentage %s, auto-aof-rewrite-min-size %s; the AOF grows %s/s from a base of %s, "
                      "so it reaches %s and is rewritten every %s (threshold %s); each rewrite forks (latest fork %s)",
            num(&n, pct), bytes(&n, minsz), bytes(&n, growth), bytes(&n, base), bytes(&n, target), dur(&n, every),
            dur(&n, t[ADVT_MIN_AOF_REWRITE_INTERVAL]), fork_ms(&n, fork_ms_v));
        SET(recommendation, "CONFIG SET auto-aof-rewrite-min-size %.0fmb (and in redis.conf), or CONFIG SET "
                            "auto-aof-rewrite-percentage 0 and a BGREWRITEAOF at a quiet hour", want);
        SET(tradeoff, "A bigger AOF between rewrites: more disk space and a longer replay when the server restarts; "
                      "with automatic rewrites off the AOF grows until the scheduled rewrite.");
        return 1;
    }
    case ADV_RDB_AND_AOF:
        if (isnan(r->wps))
            return -1;
        if (r->wps < t[ADVT_WRITES_PER_SECOND])
            return 0;
        if (!(f = hold(a, c, ADV_INFO, now)))
            return 1;
        SET(title, "RDB snapshots and AOF are both on under %s writes/s", num(&n, r->wps));
        SET(evidence, "appendonly yes and save \"%s\"; %s write commands/s (threshold %s): both fork and write the "
                      "dataset to disk",
            cval(cv, CFGP_SAVE), num(&n, r->wps), num(&n, t[ADVT_WRITES_PER_SECOND]));
        SET(recommendation, "CONFIG SET save \"\" (AOF alone), and take backups with BGSAVE from a replica");
        SET(tradeoff, "No periodic dump.rdb on this server: point-in-time backups must come from elsewhere, and "
                      "restarts load the AOF (with its RDB preamble) instead.");
        return 1;
    case ADV_PERSISTENCE_OFF: {
        const char *role = info_sval(s, INFO_S_ROLE);
        if (isnan(r->keys) || !role)
            return -1;
        if (strcmp(role, "master") != 0 || r->keys <= 0)
            return 0;
        if (!(f = hold(a, c, ADV_INFO, now)))
            return 1;
        SET(title, "Persistence is off: a restart of this master loses all of its %s keys", num(&n, r->keys));
        SET(evidence, "appendonly no, save \"\"; role master with %s keys", num(&n, r->keys));
        SET(recommendation, "CONFIG SET appendonly yes (and appendonly yes in redis.conf), or CONFIG SET save "
                            "\"3600 1 300 100\"; if this is a cache rebuilt from elsewhere, switch this check off");
        SET(tradeoff, "AOF writes every change and fsyncs once a second, and rewrites fork; snapshots fork too.");
        return 1;
    }
    case ADV_NO_MAXMEMORY: {
        if (isnan(r->wps))
            return -1;
        if (r->wps < t[ADVT_WRITES_PER_SECOND])
            return 0;
        double used = info_num(s, INFO_USED_MEMORY), sys = info_num(s, INFO_TOTAL_SYSTEM_MEMORY);
        double rss = info_num(s, INFO_USED_MEMORY_RSS);
        if (!(f = hold(a, c, ADV_WARNING, now)))
            return 1;
        SET(title, "No maxmemory under %s writes/s: the host's memory is the limit", num(&n, r->wps));
        SET(evidence, "maxmemory 0; %s write commands/s (threshold %s); used_memory %s, RSS %s of %s on the host; a "
                      "fork's copy-on-write can add up to the dataset again",
            num(&n, r->wps), num(&n, t[ADVT_WRITES_PER_SECOND]), bytes(&n, used), bytes(&n, rss),
            isnan(sys) || sys <= 0 ? "unknown" : bytes(&n, sys));
        if (sys > 0)
            SET(recommendation, "CONFIG SET maxmemory %.0fmb (about half of the host, room for copy-on-write) and a "
                                "maxmemory-policy; and in redis.conf",
                floor(sys / 2 / (1 << 20)));
        else
            SET(recommendation, "CONFIG SET maxmemory <about half of the host's memory> and a maxmemory-policy");
        SET(tradeoff, "At the limit keys are evicted by maxmemory-policy, or writes are refused with OOM under "
                      "noeviction: a bounded failure instead of the OOM killer.");
        return 1;
    }
    case ADV_NOEVICTION_NEAR_FULL: {
        double used = info_num(s, INFO_USED_MEMORY), max = cnum(cv, CFGP_MAXMEMORY);
        if (isnan(used) || !(max > 0))
            return -1;
        double ratio = used / max;
        if (ratio < t[ADVT_MEMORY_NEAR_MAX])
            return 0;
        if (!(f = hold(a, c, ADV_CRITICAL, now)))
            return 1;
        SET(title, "noeviction at %.0f%% of maxmemory: writes will be refused with OOM", ratio * 100);
        SET(evidence, "maxmemory-policy noeviction; used_memory %s of maxmemory %s (%.0f%%, threshold %.0f%%); OOM "
                      "errors %s/s",
            bytes(&n, used), bytes(&n, max), ratio * 100, t[ADVT_MEMORY_NEAR_MAX] * 100,
            num(&n, dv(d, DV_OOM_ERRORS_PER_SECOND)));
        SET(recommendation, "CONFIG SET maxmemory %.0fmb (more room), or CONFIG SET maxmemory-policy allkeys-lru if "
                            "the data can be evicted",
            ceil(used * 1.5 / (1 << 20)));
        SET(tradeoff, "A higher maxmemory needs the host's memory plus copy-on-write headroom; an eviction policy "
                      "deletes keys to make room.");
        return 1;
    }
    case ADV_VOLATILE_WITHOUT_TTL:
        if (isnan(r->keys))
            return -1;
        if (r->keys <= 0 || r->expires > 0)
            return 0;
        if (!(f = hold(a, c, ADV_WARNING, now)))
            return 1;
        SET(title, "maxmemory-policy %s can evict nothing: no key has a TTL", cval(cv, CFGP_MAXMEMORY_POLICY));
        SET(evidence, "maxmemory-policy %s evicts only keys with an expiry; %s keys, none expiring; used_memory %s of "
                      "maxmemory %s: at the limit writes fail with OOM as under noeviction",
            cval(cv, CFGP_MAXMEMORY_POLICY), num(&n, r->keys), bytes(&n, info_num(s, INFO_USED_MEMORY)),
            bytes(&n, cnum(cv, CFGP_MAXMEMORY)));
        SET(recommendation, "CONFIG SET maxmemory-policy allkeys-lru (or allkeys-lfu), or give the keys that may go a TTL");
        SET(tradeoff, "allkeys-* may evict any key, including ones the application expects to find.");
        return 1;
    case ADV_MAXMEMORY_SAMPLES_LOW: {
        double ev = dv(d, DV_EVICTED_KEYS_PER_SECOND);
        if (isnan(ev))
            return -1;
        if (ev < t[ADVT_EVICTIONS_PER_SECOND])
            return 0;
        if (!(f = hold(a, c, ADV_INFO, now)))
            return 1;
        SET(title, "maxmemory-samples %s while evicting %s keys/s", num(&n, cnum(cv, CFGP_MAXMEMORY_SAMPLES)), num(&n, ev));
        SET(evidence, "maxmemory-samples %s (guide: %s); %s evicted keys/s (threshold %s) under maxmemory-policy %s",
            num(&n, cnum(cv, CFGP_MAXMEMORY_SAMPLES)), num(&n, t[ADVT_MAXMEMORY_SAMPLES]), num(&n, ev),
            num(&n, t[ADVT_EVICTIONS_PER_SECOND]), cval(cv, CFGP_MAXMEMORY_POLICY));
        SET(recommendation, "CONFIG SET maxmemory-samples %.0f (and in redis.conf)", t[ADVT_MAXMEMORY_SAMPLES]);
        SET(tradeoff, "More keys sampled per eviction: closer to true LRU/LFU for a little more CPU per eviction.");
        return 1;
    }
    case ADV_FRAGMENTATION_NO_DEFRAG: {
        double prob = dv(d, DV_FRAGMENTATION_PROBLEM);
        if (isnan(prob))
            return -1;
        if (prob != 1)
            return 0;
        const char *alloc = info_sval(s, INFO_S_MEM_ALLOCATOR);
        bool jemalloc = alloc && strncmp(alloc, "jemalloc", 8) == 0;
        bool defrag = cnum(cv, CFGP_ACTIVEDEFRAG) == 1;
        if (defrag && (jemalloc || !alloc))
            return 0;
        if (!(f = hold(a, c, ADV_WARNING, now)))
            return 1;
        SET(title, "Memory is fragmented (ratio %.2f) and active defragmentation is %s",
            info_num(s, INFO_MEM_FRAGMENTATION_RATIO), defrag ? "not possible with this allocator" : "off");
        SET(evidence, "mem_fragmentation_ratio %.2f, %s held but unused (RSS %s, used_memory %s) by MEMORY DOCTOR's "
                      "rule; activedefrag %s, mem_allocator %s",
            info_num(s, INFO_MEM_FRAGMENTATION_RATIO), bytes(&n, dv(d, DV_FRAGMENTATION_BYTES)),
            bytes(&n, info_num(s, INFO_USED_MEMORY_RSS)), bytes(&n, info_num(s, INFO_USED_MEMORY)), defrag ? "yes" : "no",
            alloc ? alloc : "unknown");
        if (alloc && !jemalloc)
            SET(recommendation, "restart (after a failover) to compact memory: active defrag needs jemalloc, this server "
                                "uses %s", alloc);
        else
            SET(recommendation, "CONFIG SET activedefrag yes (and in redis.conf); a server built without Redis' own "
                                "jemalloc refuses it (Debian's package): then restart or fail over to compact");
        SET(tradeoff, "Active defrag spends main-thread CPU while it runs (active-defrag-cycle-min/max, 1-25%% by "
                      "default); a restart empties the cache or replays persistence.");
        return 1;
    }
    case ADV_LAZYFREE_OFF: {
        bool ev_off = cnum(cv, CFGP_LAZYFREE_LAZY_EVICTION) == 0, ex_off = cnum(cv, CFGP_LAZYFREE_LAZY_EXPIRE) == 0;
        double ev = dv(d, DV_EVICTED_KEYS_PER_SECOND), ex = dv(d, DV_EXPIRED_KEYS_PER_SECOND);
        double rate = fmax(ev_off ? ev : NAN, ex_off ? ex : NAN);
        if (isnan(rate))
            return -1;
        if (rate < t[ADVT_LAZYFREE_KEYS_PER_SECOND])
            return 0;
        bool want_ev = ev_off && ev >= t[ADVT_LAZYFREE_KEYS_PER_SECOND];
        bool want_ex = ex_off && ex >= t[ADVT_LAZYFREE_KEYS_PER_SECOND];
        if (!(f = hold(a, c, ADV_WARNING, now)))
            return 1;
        SET(title, "Keys are freed in the main thread while %s", want_ev ? "evicting heavily" : "expiring heavily");
        SET(evidence, "lazyfree-lazy-eviction %s, lazyfree-lazy-expire %s; %s evicted keys/s, %s expired keys/s "
                      "(threshold %s): big values are freed synchronously, between commands",
            ev_off ? "no" : "yes", ex_off ? "no" : "yes", num(&n, ev), num(&n, ex),
            num(&n, t[ADVT_LAZYFREE_KEYS_PER_SECOND]));
        SET(recommendation, "%s%s%s (and in redis.conf)", want_ev ? "CONFIG SET lazyfree-lazy-eviction yes" : "",
            want_ev && want_ex ? "; " : "", want_ex ? "CONFIG SET lazyfree-lazy-expire yes" : "");
        SET(tradeoff, "Freed memory returns a little later, from a background thread (lazyfree_pending_objects); "
                      "used_memory lags behind; no durability cost.");
        return 1;
    }
    case ADV_NO_PIPELINING:
        if (isnan(r->cmds_per_read) || isnan(r->cps))
            return -1;
        if (r->cps < t[ADVT_PIPELINE_MIN_COMMANDS] || r->cmds_per_read >= t[ADVT_COMMANDS_PER_READ])
            return 0;
        if (!(f = hold(a, c, ADV_WARNING, now)))
            return 1;
        SET(title, "Clients are not pipelining: %.2f commands per read at %s commands/s", r->cmds_per_read, num(&n, r->cps));
        SET(evidence, "%.2f commands per read event (total_commands_processed / total_reads_processed over the last %s; "
                      "threshold %s) at %s commands/s: each client sends one command and waits for its reply",
            r->cmds_per_read, dur(&n, r->iv), num(&n, t[ADVT_COMMANDS_PER_READ]), num(&n, r->cps));
        SET(recommendation, "pipeline in the clients (send batches of commands per round trip, or multi-key commands "
                            "such as MSET/HSET with several fields); no server setting changes this");
        SET(tradeoff, "Replies of a batch are held until the client reads them: batches of 10-100 commands get most of "
                      "the gain with bounded client memory; a pipeline is not a transaction.");
        return 1;
    case ADV_NO_CONNECTION_REUSE:
        if (isnan(r->conns_per_s) || isnan(r->cps))
            return -1;
        if (r->conns_per_s < t[ADVT_NEW_CONNECTIONS_PER_SECOND] ||
            r->conns_per_s < t[ADVT_CONNECTIONS_PER_COMMAND] * r->cps)
            return 0;
        if (!(f = hold(a, c, ADV_WARNING, now)))
            return 1;
        SET(title, "Clients are not reusing connections: %s new connections/s", num(&n, r->conns_per_s));
        SET(evidence, "%s new connections/s (total_connections_received over the last %s; threshold %s) against %s "
                      "commands/s: one new connection per %.1f commands (threshold: one per %.0f)",
            num(&n, r->conns_per_s), dur(&n, r->iv), num(&n, t[ADVT_NEW_CONNECTIONS_PER_SECOND]), num(&n, r->cps),
            r->cps / r->conns_per_s, 1 / t[ADVT_CONNECTIONS_PER_COMMAND]);
        SET(recommendation, "use a connection pool in the clients (keep connections open between requests); no "
                            "server setting changes this");
        SET(tradeoff, "Pooled connections stay open and count against maxclients (%s connected, maxclients %s).",
            num(&n, info_num(s, INFO_CONNECTED_CLIENTS)), num(&n, info_num(s, INFO_MAXCLIENTS)));
        return 1;
    case ADV_REJECTED_CONNECTIONS:
        if (isnan(r->rejected))
            return -1;
        if (r->rejected <= 0)
            return 0;
        if (!(f = hold(a, c, ADV_CRITICAL, now)))
            return 1;
        SET(title, "Connections are being rejected at maxclients");
        SET(evidence, "rejected_connections grew by %s over the last %s; connected_clients %s, maxclients %s",
            num(&n, r->rejected), dur(&n, r->iv), num(&n, info_num(s, INFO_CONNECTED_CLIENTS)),
            num(&n, info_num(s, INFO_MAXCLIENTS)));
        SET(recommendation, "CONFIG SET maxclients %s (with an open-files limit above it + 32), or find the client "
                            "leaking connections (CLIENT LIST)",
            num(&n, 2 * info_num(s, INFO_MAXCLIENTS)));
        SET(tradeoff, "Each connection costs a file descriptor and its buffers' memory.");
        return 1;
    case ADV_CLIENTS_NEAR_MAXCLIENTS: {
        double cc = info_num(s, INFO_CONNECTED_CLIENTS), mx = info_num(s, INFO_MAXCLIENTS);
        if (isnan(mx))
            mx = cnum(cv, CFGP_MAXCLIENTS);
        if (isnan(cc) || !(mx > 0))
            return -1;
        if (cc / mx < t[ADVT_CLIENTS_NEAR_MAX])
            return 0;
        if (!(f = hold(a, c, ADV_WARNING, now)))
            return 1;
        SET(title, "%s of maxclients %s connections in use", num(&n, cc), num(&n, mx));
        SET(evidence, "connected_clients %s, maxclients %s (%.0f%%, threshold %.0f%%)", num(&n, cc), num(&n, mx),
            100 * cc / mx, 100 * t[ADVT_CLIENTS_NEAR_MAX]);
        SET(recommendation, "CONFIG SET maxclients %s (with an open-files limit above it + 32), or pool connections "
                            "in the clients",
            num(&n, 2 * mx));
        SET(tradeoff, "Each connection costs a file descriptor and its buffers' memory.");
        return 1;
    }
    default:
        return 0;
    }
}

static double delta(double cur, double prev) { return isnan(cur) || isnan(prev) || cur < prev ? NAN : cur - prev; }

void advise_poll(struct advisor *a, const struct config_values *cv, const struct info_sample *s,
                 const struct derived *d, double now)
{
    struct rates r = {.iv = d && d->event == DERIVE_OK ? d->interval_seconds : NAN};
    double cmds = info_num(s, INFO_TOTAL_COMMANDS_PROCESSED), reads = info_num(s, INFO_TOTAL_READS_PROCESSED);
    double conns = info_num(s, INFO_TOTAL_CONNECTIONS_RECEIVED), rej = info_num(s, INFO_REJECTED_CONNECTIONS);
    double rewrites = info_num(s, INFO_AOF_REWRITES), forks = info_num(s, INFO_TOTAL_FORKS);
    r.wps = dv(d, DV_WRITE_COMMANDS_PER_SECOND);
    r.wps_iv = d ? d->cmd_interval_seconds : NAN;
    r.cps = dv(d, DV_COMMANDS_PER_SECOND);
    r.cmds_per_read = r.conns_per_s = r.rejected = NAN;
    if (a->have_prev && !isnan(r.iv) && r.iv > 0) {
        double dc = delta(cmds, a->prev_cmds), dr = delta(reads, a->prev_reads);
        if (!isnan(dc) && dr > 0)
            r.cmds_per_read = dc / dr;
        r.conns_per_s = delta(conns, a->prev_conns) / r.iv;
        r.rejected = delta(rej, a->prev_rejected);
        if (isnan(r.cps) && !isnan(dc))
            r.cps = dc / r.iv;
    }
    /* a rewrite or save child seen now, or one that ran since the last poll */
    if (info_num(s, INFO_AOF_REWRITE_IN_PROGRESS) == 1 || info_num(s, INFO_RDB_BGSAVE_IN_PROGRESS) == 1 ||
        (a->have_prev && (delta(rewrites, a->prev_rewrites) > 0 || delta(forks, a->prev_forks) > 0)))
        a->last_rewrite_ts = now;
    a->prev_cmds = cmds, a->prev_reads = reads, a->prev_conns = conns, a->prev_rejected = rej;
    a->prev_rewrites = rewrites, a->prev_forks = forks;
    a->have_prev = true;
    r.keys = r.expires = NAN;
    if (s->known) { /* a full sample: the keyspace is known (empty when no db line) */
        r.keys = r.expires = 0;
        for (size_t i = 0; i < s->n_dbs; i++) {
            if (!isnan(s->dbs[i].keys))
                r.keys += s->dbs[i].keys;
            if (!isnan(s->dbs[i].expires))
                r.expires += s->dbs[i].expires;
        }
    }
    a->last_rate_ts = now;
    a->polls++;
    a->rates = !isnan(r.iv);
    for (int c = 0; c < ADV_COUNT; c++) {
        if (!(a->armed & (1u << c)) || checks[c].kind != RATE)
            continue;
        if (eval_rate(a, c, cv, s, d, &r, now) == 0)
            quiet(a, c);
    }
    write_json(a);
}

int advisor_worst(const struct advisor *a)
{
    int w = -1;
    for (int c = 0; c < ADV_COUNT; c++)
        if (a->f[c] && (int)a->f[c]->sev > w)
            w = (int)a->f[c]->sev;
    return w;
}

void advice_json(const struct advisor *a, struct buf *b)
{
    buf_putc(b, '[');
    bool first = true;
    for (int c = 0; a && c < ADV_COUNT; c++) {
        const struct advice_finding *f = a->f[c];
        if (!f || !f->json)
            continue;
        if (!first)
            buf_putc(b, ',');
        first = false;
        buf_puts(b, f->json);
    }
    buf_putc(b, ']');
}

struct advisor *advisor_new(const struct advice_cfg *cfg, const char *name)
{
    if (cfg && !cfg->enabled)
        return NULL;
    struct advisor *a = xmalloc(sizeof *a);
    struct advice_opts o;
    advice_opts_for(cfg, name, &o);
    advisor_init(a, &o);
    a->local = -1;
    a->host_root = cfg && cfg->host_root ? cfg->host_root : "/";
    a->host_interval = cfg ? cfg->host_interval : ADVICE_HOST_INTERVAL;
    a->armed = arm(a, NULL);
    return a;
}

void advisor_reconfigure(struct advisor **ap, const struct advice_cfg *cfg, const char *name)
{
    struct advisor *a = *ap;
    if (cfg && !cfg->enabled) {
        advisor_free(a);
        *ap = NULL;
        return;
    }
    if (!a) {
        *ap = advisor_new(cfg, name);
        return;
    }
    struct advice_opts o;
    advice_opts_for(cfg, name, &o);
    const char *root = cfg && cfg->host_root ? cfg->host_root : "/";
    bool same_root = a->host_root && strcmp(a->host_root, root) == 0;
    a->host_root = root; /* the old generation's string goes with it */
    a->host_interval = cfg ? cfg->host_interval : ADVICE_HOST_INTERVAL;
    if (memcmp(&o, &a->o, sizeof o) == 0 && same_root)
        return;
    advisor_clear(a);
    a->o = o;
    a->local = -1; /* decide again where host facts come from */
    a->armed = arm(a, NULL);
}

void advisor_free(struct advisor *a)
{
    if (!a)
        return;
    advisor_clear(a);
    free(a);
}
