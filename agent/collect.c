/*
 * collect.c - CONFIG GET and LATENCY LATEST: what to ask and how to read
 * the answers. Values are kept as the server wrote them (strings) and
 * converted when rendered, so JSON shows exactly what CONFIG GET said.
 */
#include "collect.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static const struct {
    const char *name;
    enum cfg_kind kind;
} params[CFGP_COUNT] = {
#define P(id, name, kind, metric, help) [CFGP_##id] = {name, CFG_##kind},
#include "cfgparams.def"
#undef P
};

const char *cfg_param_name(enum cfg_param p) { return params[p].name; }
enum cfg_kind cfg_param_kind(enum cfg_param p) { return params[p].kind; }

static double value_num(enum cfg_param p, const char *s)
{
    double d;
    switch (params[p].kind) {
    case CFG_BOOL:
        return strcasecmp(s, "yes") == 0 ? 1 : strcasecmp(s, "no") == 0 ? 0 : NAN;
    case CFG_MSEC:
        return parse_double(s, &d) ? d / 1e3 : NAN;
    case CFG_NUM:
        return parse_double(s, &d) ? d : NAN;
    default:
        return NAN;
    }
}

double cfg_value_num(const struct config_values *c, enum cfg_param p)
{
    return c->v[p] ? c->num[p] : NAN;
}

int collect_config_argv(const char *command, const char **argv)
{
    int n = 0;
    argv[n++] = command;
    argv[n++] = "GET";
    for (int p = 0; p < CFGP_COUNT; p++)
        argv[n++] = params[p].name;
    return n;
}

int collect_config_argv_one(const char *command, enum cfg_param p, const char **argv)
{
    argv[0] = command;
    argv[1] = "GET";
    argv[2] = params[p].name;
    return 3;
}

static bool is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str;
}

int collect_config_reply(struct config_values *c, const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return -1;
    int found = 0;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (!is_str(k) || !is_str(v) || v->len > 1024)
            continue;
        for (int p = 0; p < CFGP_COUNT; p++)
            if (strcasecmp(k->str, params[p].name) == 0) {
                free(c->v[p]);
                c->v[p] = xstrndup(v->str, v->len);
                c->num[p] = value_num((enum cfg_param)p, c->v[p]); /* once, not at every render */
                found++;
            }
    }
    c->have = true;
    return found;
}

void config_values_clear(struct config_values *c)
{
    for (int p = 0; p < CFGP_COUNT; p++)
        free(c->v[p]);
    memset(c, 0, sizeof *c);
}

int collect_latency_reply(struct latency_values *l, const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return -1;
    l->n = 0;
    l->dropped = 0;
    l->have = true;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (l->n == LATENCY_MAX_EVENTS) {
            l->dropped += r->elements - i;
            break;
        }
        l->dropped++; /* until it is kept */
        if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 4 || !is_str(e->element[0]))
            continue;
        bool ok = true;
        for (int k = 1; k < 4; k++)
            ok = ok && e->element[k] && e->element[k]->type == REDIS_REPLY_INTEGER;
        if (!ok)
            continue;
        /* a name is kept whole or not at all: cut (at a NUL or at the
         * buffer's end) or with bytes replaced, two names could read the
         * same and make two series of one */
        const redisReply *nm = e->element[0];
        if (nm->len >= sizeof l->ev[0].name || memchr(nm->str, '\0', nm->len) || !utf8_text_ok(nm->str, nm->len))
            continue;
        bool seen = false; /* at most LATENCY_MAX_EVENTS: a scan is enough */
        for (size_t j = 0; j < l->n && !seen; j++)
            seen = strcmp(l->ev[j].name, nm->str) == 0;
        if (seen)
            continue;
        l->dropped--;
        struct latency_event *ev = &l->ev[l->n++];
        memcpy(ev->name, nm->str, nm->len + 1);
        ev->timestamp = (double)e->element[1]->integer;
        ev->latest_s = (double)e->element[2]->integer / 1e3;
        ev->max_s = (double)e->element[3]->integer / 1e3;
    }
    return (int)l->n;
}

bool collect_refusal_permanent(const char *err)
{
    if (strncmp(err, "NOPERM", 6) == 0)
        return true;
    /* "ERR unknown command 'X', with args...", "ERR unknown subcommand 'X'",
     * Redis 5's "ERR Unknown subcommand or wrong number of arguments for..." */
    for (const char *p = err; *p; p++)
        if ((*p == 'u' || *p == 'U') &&
            (strncasecmp(p, "unknown command", 15) == 0 || strncasecmp(p, "unknown subcommand", 18) == 0))
            return true;
    return false;
}
