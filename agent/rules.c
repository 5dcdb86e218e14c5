/*
 * rules.c - the per-rule, per-instance alert state machine and the figures
 * rules read. Pure: the poll's sample, figures and time come in, a
 * transition comes out; alerts.c turns transitions into notifications and
 * the state file.
 */
#include "rules.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collect.h"
#include "derive.h"
#include "info.h"
#include "util.h"

static const char *const op_names[] = {">", ">=", "<", "<=", "==", "!="};

int rule_op_parse(const char *s, enum rule_op *out)
{
    for (int i = 0; i < 6; i++)
        if (strcmp(s, op_names[i]) == 0) {
            *out = (enum rule_op)i;
            return 0;
        }
    return -1;
}

const char *rule_op_str(enum rule_op op) { return op_names[op]; }

bool rule_op_holds(enum rule_op op, double v, double t)
{
    switch (op) {
    case OP_GT: return v > t;
    case OP_GE: return v >= t;
    case OP_LT: return v < t;
    case OP_LE: return v <= t;
    case OP_EQ: return v == t;
    case OP_NE: return v != t;
    }
    return false;
}

const char *alert_tr_str(enum alert_tr t)
{
    static const char *const s[] = {"none", "pending", "firing", "resolved", "cancelled"};
    return s[t];
}

const char *alert_phase_str(enum alert_phase p)
{
    static const char *const s[] = {"inactive", "pending", "firing"};
    return s[p];
}

/* ---- figures ----------------------------------------------------------- */

static const char *const computed_names[] = {
#define X(id, name, unit) name,
    FIG_COMPUTED_LIST(X)
#undef X
};
static const char *const computed_units[] = {
#define X(id, name, unit) unit,
    FIG_COMPUTED_LIST(X)
#undef X
};

/* The INFO section of a known field: fields.def lists them section by
 * section, so the first field of each section bounds it. */
static const char *info_section_of(enum info_field f)
{
    if (f < INFO_CONNECTED_CLIENTS)
        return "server";
    if (f < INFO_USED_MEMORY)
        return "clients";
    if (f < INFO_LOADING)
        return "memory";
    if (f < INFO_TOTAL_CONNECTIONS_RECEIVED)
        return "persistence";
    if (f < INFO_CONNECTED_SLAVES)
        return "stats";
    if (f < INFO_USED_CPU_SYS)
        return "replication";
    if (f < INFO_CLUSTER_ENABLED)
        return "cpu";
    return "cluster";
}

static int parse_plain(const char *s, struct figure *f, char *why, size_t n)
{
    if (strcmp(s, "up") == 0) {
        f->kind = FIG_UP;
        return 0;
    }
    const char *dot = strchr(s, '.');
    if (!dot) {
        snprintf(why, n, "unknown figure \"%s\" (up, derived.GROUP.NAME, info.SECTION.FIELD, config.PARAM, "
                         "errorstat.ERR, computed.NAME)", s);
        return -1;
    }
    size_t pl = (size_t)(dot - s);
    const char *rest = dot + 1;
    if (pl == 7 && strncmp(s, "derived", 7) == 0) {
        for (int i = 0; i < DV_COUNT; i++) {
            const char *g = derived_group((enum derived_id)i), *j = derived_json_name((enum derived_id)i);
            size_t gl = strlen(g);
            if (strncmp(rest, g, gl) == 0 && rest[gl] == '.' && strcmp(rest + gl + 1, j) == 0) {
                f->kind = FIG_DERIVED;
                f->id = i;
                return 0;
            }
        }
        snprintf(why, n, "unknown derived figure \"%s\" (see derived.def: derived.GROUP.NAME)", s);
        return -1;
    }
    if (pl == 4 && strncmp(s, "info", 4) == 0) {
        const char *d2 = strchr(rest, '.');
        if (!d2) {
            snprintf(why, n, "\"%s\": expected info.SECTION.FIELD", s);
            return -1;
        }
        for (int i = 0; i < INFO_FIELD_COUNT; i++)
            if (strcmp(d2 + 1, info_field_key((enum info_field)i)) == 0) {
                const char *sec = info_section_of((enum info_field)i);
                if (strlen(sec) != (size_t)(d2 - rest) || strncasecmp(rest, sec, strlen(sec)) != 0) {
                    snprintf(why, n, "INFO field \"%s\" is in section \"%s\", not \"%.*s\"", d2 + 1, sec,
                             (int)(d2 - rest), rest);
                    return -1;
                }
                f->kind = FIG_INFO;
                f->id = i;
                return 0;
            }
        snprintf(why, n, "unknown INFO field \"%s\" (the numeric fields redpulse knows are in fields.def)", d2 + 1);
        return -1;
    }
    if (pl == 6 && strncmp(s, "config", 6) == 0) {
        for (int i = 0; i < CFGP_COUNT; i++)
            if (strcmp(rest, cfg_param_name((enum cfg_param)i)) == 0) {
                if (cfg_param_kind((enum cfg_param)i) == CFG_STR)
                    break;
                f->kind = FIG_CONFIG;
                f->id = i;
                return 0;
            }
        snprintf(why, n, "unknown or non-numeric setting \"%s\" (see cfgparams.def)", rest);
        return -1;
    }
    if (pl == 9 && strncmp(s, "errorstat", 9) == 0) {
        if (!*rest || strlen(rest) > 64 || strspn(rest, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != strlen(rest)) {
            snprintf(why, n, "bad error name \"%s\" (an upper-case prefix such as READONLY)", rest);
            return -1;
        }
        f->kind = FIG_ERRSTAT;
        f->err = xstrdup(rest);
        return 0;
    }
    if (pl == 8 && strncmp(s, "computed", 8) == 0) {
        for (int i = 0; i < FC_COUNT; i++)
            if (strcmp(rest, computed_names[i]) == 0) {
                f->kind = FIG_COMPUTED;
                f->id = i;
                return 0;
            }
        snprintf(why, n, "unknown computed figure \"%s\"", rest);
        return -1;
    }
    snprintf(why, n, "unknown figure \"%s\" (up, derived.GROUP.NAME, info.SECTION.FIELD, config.PARAM, "
                     "errorstat.ERR, computed.NAME)", s);
    return -1;
}

int figure_parse(const char *s, struct figure *f, char *why, size_t n)
{
    memset(f, 0, sizeof *f);
    size_t l = strlen(s);
    if (l > 10 && strncmp(s, "increase(", 9) == 0 && s[l - 1] == ')') {
        char inner[256];
        snprintf(inner, sizeof inner, "%.*s", (int)(l - 10), s + 9);
        if (parse_plain(inner, f, why, n) < 0)
            return -1;
        f->increase = true;
        return 0;
    }
    return parse_plain(s, f, why, n);
}

void figure_clear(struct figure *f)
{
    free(f->err);
    f->err = NULL;
}

static const char *unit_of_name(const char *name)
{
    size_t l = strlen(name);
#define ENDS(suf) (l >= sizeof suf - 1 && strcmp(name + l - (sizeof suf - 1), suf) == 0)
    if (ENDS("_per_second"))
        return "/s";
    if (ENDS("_bytes") || ENDS("memory") || ENDS("_size") || ENDS("_length"))
        return "bytes";
    if (ENDS("_seconds") || ENDS("_sec") || ENDS("seconds_ago"))
        return "s";
    if (ENDS("_usec"))
        return "us";
    if (ENDS("_ratio"))
        return "ratio";
#undef ENDS
    return "";
}

const char *figure_unit(const struct figure *f)
{
    switch (f->kind) {
    case FIG_DERIVED: return unit_of_name(derived_json_name((enum derived_id)f->id));
    case FIG_INFO: return unit_of_name(info_field_key((enum info_field)f->id));
    case FIG_CONFIG: return cfg_param_kind((enum cfg_param)f->id) == CFG_MSEC ? "s" : "";
    case FIG_ERRSTAT: return "/s";
    case FIG_COMPUTED: return computed_units[f->id];
    default: return "";
    }
}

static bool is_role(const struct info_sample *s, const char *role)
{
    const char *r = info_sval(s, INFO_S_ROLE);
    return r && strcmp(r, role) == 0;
}

/* The largest lateness of a save against the `save` policy: for each
 * "seconds changes" pair whose change count is reached, how long past its
 * seconds the last save is. 0 when no pair is due; NaN without the policy. */
static double save_overdue(const struct rule_input *in)
{
    const char *pol = in->cv ? in->cv->v[CFGP_SAVE] : NULL;
    double changes = info_num(in->s, INFO_RDB_CHANGES_SINCE_LAST_SAVE);
    double secs = in->d->v[DV_RDB_SECONDS_SINCE_LAST_SAVE];
    if (!pol || isnan(changes) || isnan(secs))
        return NAN;
    double worst = 0;
    const char *p = pol;
    while (*p) {
        char *e;
        double t = strtod(p, &e);
        if (e == p)
            break;
        p = e;
        double c = strtod(p, &e);
        if (e == p)
            break;
        p = e;
        if (changes >= c && secs - t > worst)
            worst = secs - t;
    }
    return worst;
}

static double computed(enum fig_computed id, const struct rule_input *in)
{
    const struct info_sample *s = in->s;
    switch (id) {
    case FC_PERSISTENCE_OFF: {
        if (!is_role(s, "master"))
            return 0;
        const char *save = in->cv ? in->cv->v[CFGP_SAVE] : NULL;
        double aof = info_num(s, INFO_AOF_ENABLED);
        if (!save || isnan(aof))
            return NAN; /* CONFIG GET off or refused: unknown */
        double keys = 0;
        for (size_t i = 0; i < s->n_dbs; i++)
            if (!isnan(s->dbs[i].keys))
                keys += s->dbs[i].keys;
        return aof == 0 && save[strspn(save, " ")] == '\0' && keys > 0;
    }
    case FC_SAVE_OVERDUE: return save_overdue(in);
    case FC_MASTER_LINK_DOWN: {
        if (!is_role(s, "slave"))
            return 0;
        double up = info_num(s, INFO_MASTER_LINK_STATUS);
        return isnan(up) ? NAN : up == 0;
    }
    case FC_MEM_NOEVICTION:
    case FC_MEM_EVICTING: {
        const char *pol = info_sval(s, INFO_S_MAXMEMORY_POLICY);
        if (!pol)
            return NAN;
        bool noev = strcmp(pol, "noeviction") == 0;
        if (noev != (id == FC_MEM_NOEVICTION) || info_num(s, INFO_MAXMEMORY) == 0)
            return 0;
        return in->d->v[DV_USED_MEMORY_RATIO];
    }
    case FC_GOOD_REPLICAS_MISSING: {
        /* min-replicas-to-write minus the good replicas; 0 with it off */
        double want = in->cv && in->cv->have ? in->cv->num[CFGP_MIN_REPLICAS_TO_WRITE] : NAN;
        if (isnan(want) || want <= 0 || !is_role(s, "master"))
            return isnan(want) ? NAN : 0;
        double good = info_num(s, INFO_MIN_SLAVES_GOOD_SLAVES);
        return isnan(good) ? NAN : want > good ? want - good : 0;
    }
    case FC_SLOW_FORK: {
        /* seconds per GB of RSS, for forks that stall at least 10 ms: an
         * instance of a few MB forks in a few hundred µs, which is nothing,
         * however large its per-GB figure */
        double fork = info_num(s, INFO_LATEST_FORK_USEC); /* in seconds */
        if (isnan(fork))
            return NAN;
        return fork >= 0.010 ? in->d->v[DV_FORK_SECONDS_PER_GB] : 0;
    }
    default: return NAN;
    }
}

static double raw_value(const struct figure *f, const struct rule_input *in)
{
    if (f->kind == FIG_UP)
        return in->up ? 1 : 0;
    if (!in->up || !in->s || !in->d)
        return NAN;
    switch (f->kind) {
    case FIG_DERIVED: return in->d->v[f->id];
    case FIG_INFO: return info_num(in->s, (enum info_field)f->id);
    case FIG_CONFIG: return in->cv && in->cv->have ? in->cv->num[f->id] : NAN;
    case FIG_ERRSTAT:
        if (isnan(in->d->interval_seconds))
            return NAN; /* a baseline poll has no rates */
        for (size_t i = 0; i < in->d->n_errs; i++)
            if (strcmp(in->d->errs[i].err, f->err) == 0)
                return in->d->errs[i].per_second;
        return 0;
    case FIG_COMPUTED: return computed((enum fig_computed)f->id, in);
    default: return NAN;
    }
}

double figure_value(const struct figure *f, const struct rule_input *in, double *prev)
{
    double v = raw_value(f, in);
    if (!f->increase)
        return v;
    if (isnan(v))
        return NAN; /* keep *prev: the increase spans the gap */
    double p = *prev;
    *prev = v;
    /* first poll, or a restart/reset: a new baseline. The poller's own
     * baseline polls count too (another server after an address change,
     * a new run_id): a counter higher there than here was an "increase" */
    if (isnan(p) || v < p || isnan(in->d->interval_seconds))
        return NAN;
    return v - p;
}

/* ---- the state machine ------------------------------------------------- */

static bool condition(const struct rule_params *p, const struct alert_state *st, const struct baseline *b, double v)
{
    if (p->drop_below > 0) {
        if (!b || isnan(b->mean) || b->age_s < p->baseline_s)
            return false; /* not enough history yet */
        return v < p->drop_below * b->mean;
    }
    if (st->phase == AP_FIRING && p->has_clear) {
        /* hysteresis: hold until the value crosses the clear threshold */
        switch (p->op) {
        case OP_GT:
        case OP_GE: return v >= p->clear;
        case OP_LT:
        case OP_LE: return v <= p->clear;
        default: break;
        }
    }
    return rule_op_holds(p->op, v, p->threshold);
}

/* 1 - e^-x, the weight of a new value in the baseline's mean. For the
 * small x of a poll against a baseline of minutes or hours (0.1 s against
 * 3600 s: 3e-5), the series' first four terms: within x^4/120 of it
 * (relative; 1e-20 there), where 1 - exp(-x) loses eleven of its sixteen
 * digits to the subtraction, and no exp() (0.9% of the agent's samples in
 * perf, 10 connections at 100 ms). */
static double decay_weight(double x)
{
    if (x < 1e-3)
        return x * (1 - x / 2 * (1 - x / 3 * (1 - x / 4)));
    return -expm1(-x);
}

static void baseline_update(struct baseline *b, double tau, double v, double now)
{
    if (isnan(b->mean)) {
        b->mean = v;
        b->age_s = 0;
        b->at = now;
        return;
    }
    double dt = now - b->at;
    if (!(dt > 0))
        return;
    double a = decay_weight(dt / (tau > 0 ? tau : 1));
    b->mean += a * (v - b->mean);
    b->age_s += dt;
    b->at = now;
}

enum alert_tr rule_step(const struct rule_params *p, struct alert_state *st, struct baseline *b, double value,
                        double now)
{
    if (isnan(value))
        return TR_NONE; /* missing data is not recovery */
    st->value = value;
    bool cond = condition(p, st, b, value);
    if (b && p->drop_below > 0)
        baseline_update(b, p->baseline_s, value, now);
    switch ((enum alert_phase)st->phase) {
    case AP_INACTIVE:
        if (!cond)
            return TR_NONE;
        st->active_since = now;
        st->last_true = now;
        if (p->for_s <= 0) {
            st->phase = AP_FIRING;
            st->episode++;
            return TR_FIRING;
        }
        st->phase = AP_PENDING;
        return TR_PENDING;
    case AP_PENDING:
        if (!cond) {
            st->phase = AP_INACTIVE;
            return TR_CANCELLED;
        }
        st->last_true = now;
        if (now - st->active_since >= p->for_s) {
            st->phase = AP_FIRING;
            st->episode++;
            return TR_FIRING;
        }
        return TR_NONE;
    case AP_FIRING:
        if (cond) {
            st->last_true = now;
            return TR_NONE;
        }
        if (now - st->last_true >= p->keep_s) {
            st->phase = AP_INACTIVE;
            return TR_RESOLVED;
        }
        return TR_NONE;
    }
    return TR_NONE;
}
