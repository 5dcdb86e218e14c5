/*
 * render.c - turns one poll of one instance into the bytes HTTP serves.
 * Families are written in prom_family order and their byte ranges recorded,
 * so /metrics can interleave instances family by family (families stay
 * contiguous) by copying ranges, without parsing or re-rendering anything.
 */
#include "render.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "alerts.h"
#include "buf.h"
#include "prom.h"
#include "util.h"

static void put_num_or_null(struct buf *b, double v)
{
    if (isfinite(v))
        buf_put_double(b, v);
    else
        buf_puts(b, "null");
}

static const char *str_or_empty(const struct info_sample *s, enum info_sfield f)
{
    const char *v = info_sval(s, f);
    return v ? v : "";
}

/* A value in microseconds, written in seconds without float formatting when
 * it can be: the server's own digits (text, when given) or the integer, then
 * "e-06" (exact, and no printf). */
static void usec_line(struct prom_tails *b, const char *suffix, const char *const *kv, double usec, const char *text,
                      size_t text_len)
{
    char t[48];
    size_t n;
    if (text && text_len < 32) {
        memcpy(t, text, text_len);
        n = text_len;
    } else if (usec == floor(usec) && fabs(usec) < 1e15) {
        struct buf tb = {t, 0, sizeof t};
        buf_put_double(&tb, usec);
        n = tb.len;
    } else {
        prom_tail(b, suffix, kv, usec / 1e6);
        return;
    }
    memcpy(t + n, "e-06", 5);
    prom_tail_str(b, suffix, kv, t);
}

/* The derived figures and config parameters with a metric (the others are
 * JSON-only), known at compile time: reading the first byte of each name at
 * every poll was a third of this file's own time (cache misses in perf). */
static const bool has_metric[FAM_COUNT] = {
#define D(id, group, json, metric, help) [FAM_D_##id] = sizeof(metric) > 1,
#include "derived.def"
#undef D
#define P(id, name, kind, metric, help) [FAM_P_##id] = sizeof(metric) > 1,
#include "cfgparams.def"
#undef P
};

static void render_family(struct prom_tails *b, enum prom_family f, const struct render_input *in)
{
    const struct info_sample *s = in->sample;
    const struct poll_stats *st = in->st;
    char q[32];

    if (f < (enum prom_family)INFO_FIELD_COUNT) {
        if (s) {
            const char *raw = info_num_text(s, (enum info_field)f);
            if (raw) { /* as the server wrote it: nothing to format */
                prom_tail_str(b, NULL, NULL, raw);
                return;
            }
            double v = info_num(s, (enum info_field)f);
            if (isnan(v) && f == FAM_MAXCLIENTS && in->config) /* Redis 5: not in INFO */
                v = cfg_value_num(in->config, CFGP_MAXCLIENTS);
            if (!isnan(v))
                prom_tail(b, NULL, NULL, v);
        }
        return;
    }
    if (f >= FAM_D_COMMANDS_PER_SECOND && f < FAM_D_COMMANDS_PER_SECOND + DV_COUNT) {
        if (s && in->derived && has_metric[f]) {
            double v = in->derived->v[f - FAM_D_COMMANDS_PER_SECOND];
            if (!isnan(v))
                prom_tail(b, NULL, NULL, v);
        }
        return;
    }
    if (f >= FAM_P_APPENDONLY && f < FAM_P_APPENDONLY + CFGP_COUNT) {
        if (s && in->config && has_metric[f]) {
            double v = cfg_value_num(in->config, (enum cfg_param)(f - FAM_P_APPENDONLY));
            if (!isnan(v))
                prom_tail(b, NULL, NULL, v);
        }
        return;
    }
    switch (f) {
    case FAM_UP:
        prom_tail(b, NULL, NULL, s ? 1 : 0);
        return;
    case FAM_RP_POLL_DURATION:
        if (st->polled)
            prom_tail(b, NULL, NULL, st->last_duration_s);
        return;
    case FAM_RP_POLLS:
        prom_tail(b, NULL, NULL, (double)st->polls);
        return;
    case FAM_RP_POLL_ERRORS:
        for (int o = 1; o < OUTCOME_COUNT; o++) {
            const char *kv[] = {PL(REASON), outcome_str((enum outcome)o), NULL};
            prom_tail(b, NULL, kv, (double)st->errors[o]);
        }
        return;
    case FAM_RP_LAST_POLL:
        if (st->polled)
            prom_tail(b, NULL, NULL, st->last_poll_ts);
        return;
    case FAM_RP_LAST_SUCCESS:
        if (st->last_success_ts > 0)
            prom_tail(b, NULL, NULL, st->last_success_ts);
        return;
    case FAM_RP_LAST_OUTCOME:
        if (st->polled) {
            const char *kv[] = {PL(REASON), outcome_str(st->last_outcome), NULL};
            prom_tail(b, NULL, kv, 1);
        }
        return;
    case FAM_RP_CONNECTS:
        prom_tail(b, NULL, NULL, (double)st->connects);
        return;
    case FAM_RP_POLL_LATENESS:
        if (st->polled)
            prom_tail(b, NULL, NULL, st->lateness_s);
        return;
    case FAM_RP_RESTARTS:
        prom_tail(b, NULL, NULL, (double)st->restarts);
        return;
    case FAM_RP_RESETS:
        prom_tail(b, NULL, NULL, (double)st->resets);
        return;
    case FAM_RP_NESTED_DROPPED:
        prom_tail(b, NULL, NULL, (double)st->nested_dropped);
        return;
    case FAM_RP_LATENCY_DROPPED:
        prom_tail(b, NULL, NULL, (double)st->latency_dropped);
        return;
    default:
        break;
    }
    if (!s)
        return;
    const struct derived *d = in->derived;
    switch (f) {
    case FAM_INSTANCE_INFO: {
        const char *kv[] = {PL(ROLE), str_or_empty(s, INFO_S_ROLE),
                            PL(REDIS_VERSION), str_or_empty(s, INFO_S_REDIS_VERSION),
                            PL(REDIS_BUILD_ID), str_or_empty(s, INFO_S_REDIS_BUILD_ID),
                            PL(REDIS_MODE), str_or_empty(s, INFO_S_REDIS_MODE),
                            PL(OS), str_or_empty(s, INFO_S_OS),
                            PL(MAXMEMORY_POLICY), str_or_empty(s, INFO_S_MAXMEMORY_POLICY),
                            PL(TCP_PORT), str_or_empty(s, INFO_S_TCP_PORT),
                            PL(RUN_ID), str_or_empty(s, INFO_S_RUN_ID),
                            PL(PROCESS_ID), str_or_empty(s, INFO_S_PROCESS_ID),
                            NULL};
        /* a discovered instance carries role as its own label already
         * (discover.c): one role label per series, not two */
        bool role_label = false;
        for (size_t i = 0; i < in->cfg->n_labels; i++)
            role_label |= strcmp(in->cfg->labels[i].name, "role") == 0;
        prom_tail(b, NULL, role_label ? kv + 2 : kv, 1);
        return;
    }
    case FAM_START_TIME: {
        double up = info_num(s, INFO_UPTIME_IN_SECONDS);
        const char *tu = info_sval(s, INFO_S_SERVER_TIME_USEC);
        double now;
        if (!tu || !parse_double(tu, &now))
            now = st->last_poll_ts * 1e6;
        if (!isnan(up))
            prom_tail(b, NULL, NULL, floor(now / 1e6 - up));
        return;
    }
    case FAM_COMMANDS_TOTAL:
    case FAM_COMMANDS_DURATION:
    case FAM_COMMANDS_REJECTED:
    case FAM_COMMANDS_FAILED:
        for (size_t i = 0; i < s->n_cmds; i++) {
            const struct info_cmdstat *c = &s->cmds[i];
            double v = f == FAM_COMMANDS_TOTAL      ? c->calls
                       : f == FAM_COMMANDS_DURATION ? c->usec
                       : f == FAM_COMMANDS_REJECTED ? c->rejected_calls
                                                    : c->failed_calls;
            const char *kv[] = {PL(CMD), c->cmd, NULL};
            if (isnan(v))
                continue;
            if (f == FAM_COMMANDS_DURATION)
                usec_line(b, NULL, kv, v, NULL, 0);
            else
                prom_tail(b, NULL, kv, v);
        }
        return;
    case FAM_LATENCY: {
        double last_q = NAN;
        for (size_t i = 0; i < s->n_lats; i++) {
            const struct info_latency *l = &s->lats[i];
            for (int k = 0; k < l->n; k++) {
                if (l->q[k] != last_q) /* the same few quantiles for every command */
                    fmt_g15(q, last_q = l->q[k]);
                const char *kv[] = {PL(CMD), l->cmd, PL(QUANTILE), q, NULL};
                usec_line(b, NULL, kv, l->usec[k], l->utext[k], l->utext_len[k]); /* "1.003e-06" */
            }
            const struct info_cmdstat *c = info_find_cmd(s, l->cmd, i);
            if (c && !isnan(c->usec)) {
                const char *kv[] = {PL(CMD), l->cmd, NULL};
                usec_line(b, "_sum", kv, c->usec, NULL, 0);
                prom_tail(b, "_count", kv, c->calls);
            }
        }
        return;
    }
    case FAM_ERRORS:
        for (size_t i = 0; i < s->n_errs; i++) {
            const char *kv[] = {PL(ERR), s->errs[i].err, NULL};
            prom_tail(b, NULL, kv, s->errs[i].count);
        }
        return;
    case FAM_DB_KEYS:
    case FAM_DB_KEYS_EXPIRING:
    case FAM_DB_AVG_TTL:
        for (size_t i = 0; i < s->n_dbs; i++) {
            const struct info_db *db = &s->dbs[i];
            double v = f == FAM_DB_KEYS ? db->keys : f == FAM_DB_KEYS_EXPIRING ? db->expires : db->avg_ttl_ms / 1e3;
            const char *kv[] = {PL(DB), db->name, NULL};
            if (!isnan(v))
                prom_tail(b, NULL, kv, v);
        }
        return;
    case FAM_SLAVE_OFFSET:
    case FAM_SLAVE_LAG:
        for (size_t i = 0; i < s->n_replicas; i++) {
            const struct info_replica *r = &s->replicas[i];
            double v = f == FAM_SLAVE_OFFSET ? r->offset : r->lag;
            const char *kv[] = {PL(SLAVE_IP), r->ip, PL(SLAVE_PORT), r->port, PL(SLAVE_STATE), r->state, NULL};
            if (!isnan(v))
                prom_tail(b, NULL, kv, v);
        }
        return;
    case FAM_RP_MALFORMED:
        prom_tail(b, NULL, NULL, (double)s->malformed);
        return;
    case FAM_RP_REPLY_BYTES:
        prom_tail(b, NULL, NULL, (double)st->reply_bytes);
        return;
    case FAM_RP_RATE_INTERVAL:
        if (d && !isnan(d->interval_seconds))
            prom_tail(b, NULL, NULL, d->interval_seconds);
        return;
    case FAM_CONFIG_INFO: {
        const struct config_values *c = in->config;
        if (!c || !c->have)
            return;
        const char *kv[] = {PL(APPENDFSYNC), c->v[CFGP_APPENDFSYNC] ? c->v[CFGP_APPENDFSYNC] : "",
                            PL(SAVE), c->v[CFGP_SAVE] ? c->v[CFGP_SAVE] : "",
                            PL(MAXMEMORY_POLICY), c->v[CFGP_MAXMEMORY_POLICY] ? c->v[CFGP_MAXMEMORY_POLICY] : "",
                            NULL};
        prom_tail(b, NULL, kv, 1);
        return;
    }
    case FAM_COMMAND_CALLS_PER_SECOND:
    case FAM_COMMAND_CALL_DURATION:
        for (size_t i = 0; d && i < d->n_cmds; i++) {
            const struct derived_cmd *c = &d->cmds[i];
            double v = f == FAM_COMMAND_CALLS_PER_SECOND ? c->calls_per_second : c->seconds_per_call;
            if (isnan(v))
                continue;
            if (f == FAM_COMMAND_CALLS_PER_SECOND) {
                const char *kv[] = {PL(CMD), c->cmd, PL(CLASS), cmdclass_str(c->cls), NULL};
                prom_tail(b, NULL, kv, v);
            } else {
                const char *kv[] = {PL(CMD), c->cmd, NULL};
                prom_tail(b, NULL, kv, v);
            }
        }
        return;
    case FAM_ERRORS_PER_SECOND:
        for (size_t i = 0; d && i < d->n_errs; i++) {
            const char *kv[] = {PL(ERR), d->errs[i].err, NULL};
            if (!isnan(d->errs[i].per_second))
                prom_tail(b, NULL, kv, d->errs[i].per_second);
        }
        return;
    case FAM_SLAVE_LAG_BYTES:
        for (size_t i = 0; d && i < d->n_replicas; i++) {
            const struct info_replica *r = d->replicas[i].r;
            const char *kv[] = {PL(SLAVE_IP), r->ip, PL(SLAVE_PORT), r->port, PL(SLAVE_STATE), r->state, NULL};
            if (!isnan(d->replicas[i].lag_bytes))
                prom_tail(b, NULL, kv, d->replicas[i].lag_bytes);
        }
        return;
    case FAM_LATENCY_SPIKE_LAST:
    case FAM_LATENCY_SPIKE_DURATION:
    case FAM_LATENCY_SPIKE_MAX:
        for (size_t i = 0; in->latency && i < in->latency->n; i++) {
            const struct latency_event *e = &in->latency->ev[i];
            const char *kv[] = {PL(EVENT_NAME), e->name, NULL};
            prom_tail(b, NULL, kv,
                      f == FAM_LATENCY_SPIKE_LAST ? e->timestamp : f == FAM_LATENCY_SPIKE_DURATION ? e->latest_s : e->max_s);
        }
        return;
    case FAM_ADVICE: /* one series per finding that holds, none otherwise */
        for (int c = 0; in->advice && c < ADV_COUNT; c++)
            if (in->advice->f[c]) {
                const char *kv[] = {PL(CHECK), advice_check_name((enum advice_check)c), PL(SEVERITY),
                                    advice_severity_str(in->advice->f[c]->sev), NULL};
                prom_tail(b, NULL, kv, 1);
            }
        return;
    default:
        return;
    }
}

static const char *event_str(enum derive_event e)
{
    return e == DERIVE_OK ? "ok" : e == DERIVE_RESTART ? "restart" : e == DERIVE_RESET ? "reset" : "first";
}

static const char *const groups[] = {"throughput", "errors", "cpu", "memory", "aof", "rdb", "fork", "replication"};
#define N_GROUPS (sizeof groups / sizeof *groups)

/* The figures of each group in derived.def order, and their JSON keys
 * (",\"name\":"), worked out once. */
static struct {
    int ids[DV_COUNT];
    size_t n;
} group_ids[N_GROUPS];
static char *json_keys[DV_COUNT];
static pthread_once_t groups_once = PTHREAD_ONCE_INIT;

static void build_groups(void)
{
    for (size_t g = 0; g < N_GROUPS; g++)
        for (int i = 0; i < DV_COUNT; i++)
            if (strcmp(derived_group((enum derived_id)i), groups[g]) == 0)
                group_ids[g].ids[group_ids[g].n++] = i;
    for (int i = 0; i < DV_COUNT; i++) {
        struct buf k = BUF_INIT;
        buf_printf(&k, ",\"%s\":", derived_json_name((enum derived_id)i));
        json_keys[i] = buf_steal(&k, NULL);
    }
}

/* "derived": the figures by group, every one present (null when not
 * available), so their names are stable for API users and alert rules. */
static void json_derived(struct buf *b, const struct render_input *in)
{
    const struct derived *d = in->derived;
    pthread_once(&groups_once, build_groups);
    buf_puts(b, ",\"derived\":");
    if (!d) {
        buf_puts(b, "null");
        return;
    }
    buf_puts(b, "{\"event\":");
    buf_put_json_str(b, event_str(d->event));
    buf_puts(b, ",\"interval_seconds\":");
    put_num_or_null(b, d->interval_seconds);
    buf_puts(b, ",\"commandstats_interval_seconds\":");
    put_num_or_null(b, d->cmd_interval_seconds);
    buf_puts(b, ",\"commandstats_age_seconds\":");
    put_num_or_null(b, d->cmd_age_seconds);
    for (size_t g = 0; g < N_GROUPS; g++) {
        buf_puts(b, ",\"");
        buf_puts(b, groups[g]);
        buf_puts(b, "\":{");
        for (size_t k = 0; k < group_ids[g].n; k++) {
            int i = group_ids[g].ids[k];
            buf_puts(b, json_keys[i] + (k == 0)); /* the first without its comma */
            put_num_or_null(b, d->v[i]);
        }
        if (g == 0) {
            buf_puts(b, ",\"commands\":{");
            for (size_t i = 0; i < d->n_cmds; i++) {
                const struct derived_cmd *c = &d->cmds[i];
                if (i)
                    buf_putc(b, ',');
                buf_put_json_str(b, c->cmd);
                buf_puts(b, ":{\"class\":");
                buf_put_json_str(b, cmdclass_str(c->cls));
                buf_puts(b, ",\"calls_per_second\":");
                put_num_or_null(b, c->calls_per_second);
                buf_puts(b, ",\"seconds_per_call\":");
                put_num_or_null(b, c->seconds_per_call);
                buf_putc(b, '}');
            }
            buf_putc(b, '}');
        } else if (g == 1) {
            buf_puts(b, ",\"by_type_per_second\":{");
            for (size_t i = 0; i < d->n_errs; i++) {
                if (i)
                    buf_putc(b, ',');
                buf_put_json_str(b, d->errs[i].err);
                buf_putc(b, ':');
                put_num_or_null(b, d->errs[i].per_second);
            }
            buf_putc(b, '}');
        } else if (g == 7) {
            buf_puts(b, ",\"replicas\":[");
            for (size_t i = 0; i < d->n_replicas; i++) {
                const struct info_replica *r = d->replicas[i].r;
                buf_puts(b, i ? ",{\"ip\":" : "{\"ip\":");
                buf_put_json_str(b, r->ip);
                buf_puts(b, ",\"port\":");
                buf_put_json_str(b, r->port);
                buf_puts(b, ",\"state\":");
                buf_put_json_str(b, r->state);
                buf_puts(b, ",\"lag_bytes\":");
                put_num_or_null(b, d->replicas[i].lag_bytes);
                buf_putc(b, '}');
            }
            buf_putc(b, ']');
        }
        buf_putc(b, '}');
    }
    buf_puts(b, ",\"config\":");
    if (in->config && in->config->have) {
        buf_putc(b, '{');
        for (int p = 0; p < CFGP_COUNT; p++) {
            if (p)
                buf_putc(b, ',');
            buf_putc(b, '"');
            buf_puts(b, cfg_param_name((enum cfg_param)p));
            buf_append(b, "\":", 2);
            const char *v = in->config->v[p];
            double num;
            enum cfg_kind k = cfg_param_kind((enum cfg_param)p);
            if (!v)
                buf_puts(b, "null");
            else if ((k == CFG_NUM || k == CFG_MSEC) && parse_double(v, &num))
                buf_put_double(b, num); /* as the server says it (milliseconds stay ms) */
            else if (k == CFG_BOOL && !isnan(cfg_value_num(in->config, (enum cfg_param)p)))
                buf_puts(b, cfg_value_num(in->config, (enum cfg_param)p) ? "true" : "false");
            else
                buf_put_json_str(b, v);
        }
        buf_putc(b, '}');
    } else {
        buf_puts(b, "null");
    }
    buf_puts(b, ",\"latency\":");
    if (in->latency && in->latency->have) {
        buf_putc(b, '{');
        for (size_t i = 0; i < in->latency->n; i++) {
            const struct latency_event *e = &in->latency->ev[i];
            if (i)
                buf_putc(b, ',');
            buf_put_json_str(b, e->name);
            buf_puts(b, ":{\"timestamp\":");
            buf_put_double(b, e->timestamp);
            buf_puts(b, ",\"latest_seconds\":");
            buf_put_double(b, e->latest_s);
            buf_puts(b, ",\"max_seconds\":");
            buf_put_double(b, e->max_s);
            buf_putc(b, '}');
        }
        buf_putc(b, '}');
    } else {
        buf_puts(b, "null");
    }
    buf_putc(b, '}');
}

/* A set of short strings (JSON keys already written in one object), so a
 * duplicate is skipped in O(1): the text comes from the peer, and comparing
 * each key with every earlier one is quadratic in what it chooses to send.
 * Strings are copied into the set's arena. */
struct keyset {
    uint32_t *slot; /* offset + 1 into arena; 0: empty */
    size_t mask, n;
    struct buf arena;
};

/* arena record at offset o: uint32 length, uint32 number, the bytes */
static void keyset_rec(const struct keyset *ks, uint32_t slot, const char **k, uint32_t *len, uint32_t *num)
{
    const char *rec = ks->arena.p + slot - 1;
    memcpy(len, rec, sizeof *len);
    memcpy(num, rec + sizeof *len, sizeof *num);
    *k = rec + sizeof *len + sizeof *num;
}

/* Adds k (n bytes); returns its number (0, 1, ...) and sets *fresh when new. */
static size_t keyset_add(struct keyset *ks, const char *k, size_t n, bool *fresh)
{
    const char *rk;
    uint32_t rl, rn;
    if ((ks->n + 1) * 2 > ks->mask) { /* at most half full */
        size_t slots = ks->mask ? (ks->mask + 1) * 2 : 32;
        uint32_t *old = ks->slot;
        size_t omask = ks->mask;
        ks->slot = xcalloc(slots, sizeof *ks->slot);
        ks->mask = slots - 1;
        for (size_t i = 0; old && i <= omask; i++)
            if (old[i]) {
                keyset_rec(ks, old[i], &rk, &rl, &rn);
                size_t j = (size_t)info_hash(rk, rl) & ks->mask;
                while (ks->slot[j])
                    j = (j + 1) & ks->mask;
                ks->slot[j] = old[i];
            }
        free(old);
    }
    size_t j = (size_t)info_hash(k, n) & ks->mask;
    for (; ks->slot[j]; j = (j + 1) & ks->mask) {
        keyset_rec(ks, ks->slot[j], &rk, &rl, &rn);
        if (rl == n && memcmp(rk, k, n) == 0) {
            *fresh = false;
            return rn;
        }
    }
    uint32_t len = (uint32_t)n, num = (uint32_t)ks->n;
    ks->slot[j] = (uint32_t)ks->arena.len + 1;
    buf_append(&ks->arena, &len, sizeof len);
    buf_append(&ks->arena, &num, sizeof num);
    buf_append(&ks->arena, k, n);
    *fresh = true;
    return ks->n++;
}

static void keyset_free(struct keyset *ks)
{
    free(ks->slot);
    buf_free(&ks->arena);
}

/* One nested "k=v,..." value as a JSON object, numbers as numbers. A key
 * is written exactly as sent or not at all: one that is empty, 128 bytes or
 * longer, not UTF-8 or with a control character is left out (cut, or with
 * U+FFFD for its invalid bytes, two keys could come out the same), and one
 * written twice is kept once. */
static void json_nested(struct buf *b, const char *val)
{
    struct info_kv kv;
    const char *p = val;
    char k[128], v[128];
    bool first = true;
    struct keyset ks = {0};
    buf_putc(b, '{');
    while (info_kv_next(&p, &kv)) {
        size_t kl = kv.klen;
        size_t vl = kv.vlen < sizeof v - 1 ? kv.vlen : sizeof v - 1;
        if (!kl || kl >= sizeof k || !utf8_text_ok(kv.k, kl))
            continue;
        bool fresh;
        keyset_add(&ks, kv.k, kl, &fresh);
        if (!fresh) /* duplicate keys inside one value would make invalid-ish JSON */
            continue;
        memcpy(k, kv.k, kl);
        k[kl] = '\0';
        memcpy(v, kv.v, vl);
        v[vl] = '\0';
        if (!first)
            buf_putc(b, ',');
        first = false;
        buf_put_json_str(b, k);
        buf_putc(b, ':');
        double d;
        if (parse_double(v, &d))
            buf_put_double(b, d);
        else
            buf_put_json_str(b, v);
    }
    buf_putc(b, '}');
    keyset_free(&ks);
}

/* A section's JSON key into k (reset first): its name in lower case, whole;
 * "other" for lines before any header. info_parse refused names that are
 * not UTF-8 or hold a control character, so the key is the name as sent. */
static void section_key(const char *name, struct buf *k)
{
    buf_reset(k);
    if (!*name) {
        buf_puts(k, "other");
        return;
    }
    size_t n = strlen(name);
    buf_reserve(k, n);
    for (size_t j = 0; j < n; j++)
        k->p[j] = (char)tolower((unsigned char)name[j]);
    k->p[n] = '\0';
    k->len = n;
}

static void json_sections(struct buf *b, const struct info_sample *s)
{
    /* entries grouped by section key, sections in order of first appearance:
     * one pass to number the sections, a counting sort to group entries */
    struct keyset ks = {0};
    uint32_t *sec_of = xmalloc((s->n_entries + 1) * sizeof *sec_of);
    struct buf lower = BUF_INIT;
    const char *last = NULL; /* the lines of one header share its name's pointer */
    uint32_t last_sec = 0;
    for (size_t i = 0; i < s->n_entries; i++) {
        if (s->entries[i].section != last) { /* once a header, not once a line */
            bool fresh;
            last = s->entries[i].section;
            section_key(last, &lower);
            last_sec = (uint32_t)keyset_add(&ks, lower.p, lower.len, &fresh);
        }
        sec_of[i] = last_sec;
    }
    size_t nsec = ks.n;
    size_t *start = xcalloc(nsec + 1, sizeof *start);
    for (size_t i = 0; i < s->n_entries; i++)
        start[sec_of[i] + 1]++;
    for (size_t k = 0; k < nsec; k++)
        start[k + 1] += start[k];
    uint32_t *order = xmalloc((s->n_entries + 1) * sizeof *order);
    size_t *fill = xmalloc((nsec + 1) * sizeof *fill);
    memcpy(fill, start, (nsec + 1) * sizeof *fill);
    for (size_t i = 0; i < s->n_entries; i++)
        order[fill[sec_of[i]]++] = (uint32_t)i;
    buf_putc(b, '{');
    for (size_t k = 0; k < nsec; k++) {
        if (k)
            buf_putc(b, ',');
        const struct info_entry *e0 = &s->entries[order[start[k]]];
        section_key(e0->section, &lower);
        buf_put_json_str(b, lower.p);
        buf_puts(b, ":{");
        for (size_t x = start[k]; x < start[k + 1]; x++) {
            const struct info_entry *e = &s->entries[order[x]];
            if (x > start[k])
                buf_putc(b, ',');
            buf_put_json_str(b, e->key);
            buf_putc(b, ':');
            if (e->is_num)
                buf_put_double(b, e->num);
            else if (info_nested_key(e->key))
                json_nested(b, e->val);
            else
                buf_put_json_str(b, e->val);
        }
        buf_putc(b, '}');
    }
    buf_putc(b, '}');
    free(sec_of);
    free(start);
    free(order);
    free(fill);
    keyset_free(&ks);
    buf_free(&lower);
}

static void json_head(struct buf *b, const struct render_input *in)
{
    const struct instance_cfg *cfg = in->cfg;
    const struct poll_stats *st = in->st;
    const struct info_sample *s = in->sample;
    buf_puts(b, "{\"name\":");
    buf_put_json_str(b, cfg->name);
    buf_puts(b, ",\"address\":");
    buf_put_json_str(b, cfg->address);
    buf_puts(b, ",\"labels\":{");
    for (size_t i = 0; i < cfg->n_labels; i++) {
        if (i)
            buf_putc(b, ',');
        buf_put_json_str(b, cfg->labels[i].name);
        buf_putc(b, ':');
        buf_put_json_str(b, cfg->labels[i].value);
    }
    buf_puts(b, s ? "},\"up\":true,\"reason\":" : "},\"up\":false,\"reason\":");
    if (st->polled)
        buf_put_json_str(b, outcome_str(st->last_outcome));
    else
        buf_puts(b, "null");
    buf_puts(b, ",\"last_error\":");
    if (st->last_error[0])
        buf_put_json_str(b, st->last_error);
    else
        buf_puts(b, "null");
    buf_puts(b, ",\"last_poll_timestamp\":");
    put_num_or_null(b, st->polled ? st->last_poll_ts : NAN);
    buf_puts(b, ",\"last_poll_duration_seconds\":");
    put_num_or_null(b, st->polled ? st->last_duration_s : NAN);
    buf_puts(b, ",\"last_success_timestamp\":");
    put_num_or_null(b, st->last_success_ts > 0 ? st->last_success_ts : NAN);
    buf_puts(b, ",\"polls\":");
    buf_put_u64(b, st->polls);
    buf_puts(b, ",\"errors\":{");
    for (int o = 1; o < OUTCOME_COUNT; o++) {
        buf_puts(b, o > 1 ? ",\"" : "\"");
        buf_puts(b, outcome_str((enum outcome)o));
        buf_append(b, "\":", 2);
        buf_put_u64(b, st->errors[o]);
    }
    buf_puts(b, "}");
    const char *role = s ? info_sval(s, INFO_S_ROLE) : NULL;
    const char *vk = s ? info_sval(s, INFO_S_VALKEY_VERSION) : NULL;
    const char *ver = vk ? vk : s ? info_sval(s, INFO_S_REDIS_VERSION) : NULL;
    const char *server = s ? info_sval(s, INFO_S_SERVER_NAME) : NULL;
    buf_puts(b, ",\"role\":");
    if (role)
        buf_put_json_str(b, role);
    else
        buf_puts(b, "null");
    buf_puts(b, ",\"server\":");
    if (s)
        buf_put_json_str(b, server ? server : vk ? "valkey" : "redis");
    else
        buf_puts(b, "null");
    buf_puts(b, ",\"version\":");
    if (ver)
        buf_put_json_str(b, ver);
    else
        buf_puts(b, "null");
    buf_puts(b, ",\"malformed_lines\":");
    put_num_or_null(b, s ? (double)s->malformed : NAN);
    buf_puts(b, ",\"restarts_detected\":");
    buf_put_u64(b, st->restarts);
    buf_puts(b, ",\"counter_resets_detected\":");
    buf_put_u64(b, st->resets);
    json_derived(b, in);
    buf_puts(b, ",\"advice\":");
    if (in->advice && s)
        advice_json(in->advice, b);
    else
        buf_puts(b, "null");
}

struct frag *render_frag(const struct render_input *in)
{
    struct buf local = BUF_INIT;
    struct buf *b = in->scratch ? in->scratch : &local;
    uint32_t off[FAM_COUNT + 1];
    buf_reset(b);
    size_t plen = strlen(in->label_prefix), grow = 0;
    for (int fam = 0; fam < FAM_COUNT; fam++) {
        off[fam] = (uint32_t)b->len;
        struct prom_tails t = {b, 0};
        render_family(&t, (enum prom_family)fam, in);
        if (t.lines) /* what expanding adds back: the name and the prefix */
            grow += t.lines * (prom_family_name_len((enum prom_family)fam) + plen);
    }
    off[FAM_COUNT] = (uint32_t)b->len;
    size_t prom_len = b->len;
    json_head(b, in);
    struct frag *f = frag_new(b->p, prom_len, b->len - prom_len, off, prom_len + grow, in->label_prefix,
                              in->info_text, in->st->polled);
    buf_free(&local);
    return f;
}

void frag_append_json(const struct frag *f, struct buf *b)
{
    buf_append(b, f->json_head, f->json_head_len);
    buf_puts(b, ",\"sections\":");
    struct rstr *info = frag_info(f);
    if (info) {
        struct info_sample *s = info_parse(info->data, info->len);
        json_sections(b, s);
        info_sample_free(s);
        rstr_unref(info);
    } else {
        buf_puts(b, "{}");
    }
    /* the instance's active alerts (alerts.c), by the name the head starts with */
    size_t q = 9; /* after {"name":" */
    while (q < f->json_head_len && f->json_head[q] != '"')
        q += f->json_head[q] == '\\' ? 2 : 1;
    cJSON *name = q < f->json_head_len ? cJSON_ParseWithLength(f->json_head + 8, q - 7) : NULL;
    buf_puts(b, ",\"alerts\":");
    alerts_render_instance(b, cJSON_IsString(name) ? name->valuestring : "");
    cJSON_Delete(name);
    buf_putc(b, '}');
}
