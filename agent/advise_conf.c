/*
 * advise_conf.c - the "advice" section of the configuration file:
 *
 *   "advice": {
 *     "enabled": true,
 *     "host_root": "/",
 *     "host_interval": "10m",
 *     "thresholds": {"write_commands_per_second": 1000, ...},
 *     "disable": ["latency_monitor_off", ...],
 *     "instances": {"NAME": {"thresholds": {...}, "disable": [...]}}
 *   }
 *
 * Parsed here with confparse.h's helpers so its errors read like every
 * other one (JSON path, line:column).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "advise.h"
#include "confparse.h"
#include "util.h"

static void parse_thresholds(struct conf_ctx *c, const cJSON *obj, struct advice_opts *o, const char *path)
{
    char sub[256];
    if (!cJSON_IsObject(obj)) {
        conf_err(c, obj, 0, path, "expected an object, got %s", conf_type_name(obj));
        return;
    }
    for (const cJSON *ch = obj->child; ch; ch = ch->next) {
        conf_join_path(sub, sizeof sub, path, ch->string);
        int t = 0;
        while (t < ADVT_COUNT && strcmp(advice_threshold_key((enum advice_threshold)t), ch->string) != 0)
            t++;
        if (t == ADVT_COUNT) {
            conf_err(c, ch, 1, sub, "unknown threshold \"%s\"", ch->string);
            continue;
        }
        if (!cJSON_IsNumber(ch) || !isfinite(ch->valuedouble) || ch->valuedouble < 0) {
            conf_err(c, ch, 0, sub, "expected a number >= 0, got %s", conf_type_name(ch));
            continue;
        }
        o->t[t] = ch->valuedouble;
    }
}

static void parse_disable(struct conf_ctx *c, const cJSON *arr, struct advice_opts *o, const char *path)
{
    char sub[256];
    if (!cJSON_IsArray(arr)) {
        conf_err(c, arr, 0, path, "expected an array of check ids, got %s", conf_type_name(arr));
        return;
    }
    int i = 0;
    for (const cJSON *ch = arr->child; ch; ch = ch->next, i++) {
        char idx[24];
        snprintf(idx, sizeof idx, "[%d]", i);
        conf_join_path(sub, sizeof sub, path, idx);
        int k = cJSON_IsString(ch) ? advice_check_find(ch->valuestring) : -1;
        if (k < 0)
            conf_err(c, ch, 0, sub, "unknown check %s%s%s (see docs/advice.md for the checks)",
                     cJSON_IsString(ch) ? "\"" : "", cJSON_IsString(ch) ? ch->valuestring : conf_type_name(ch),
                     cJSON_IsString(ch) ? "\"" : "");
        else
            o->off[k] = true;
    }
}

/* "thresholds" and "disable" of one object (the section or an instance);
 * other keys are the caller's (returns false for them). */
static bool parse_opt_key(struct conf_ctx *c, const cJSON *ch, struct advice_opts *o, const char *sub)
{
    if (strcmp(ch->string, "thresholds") == 0)
        parse_thresholds(c, ch, o, sub);
    else if (strcmp(ch->string, "disable") == 0)
        parse_disable(c, ch, o, sub);
    else
        return false;
    return true;
}

/* The keys of the section itself (thresholds and disable also go per
 * instance); the man page's key list is checked against this table. */
static const struct conf_opt advice_keys[] = {
    {"enabled", OT_BOOL, 0, 0},     {"host_root", OT_STRING, 0, 0},
    {"host_interval", OT_DURATION, 1000, 86400000},
    {"thresholds", OT_UINT, 0, 0},  {"disable", OT_UINT, 0, 0},
    {"instances", OT_UINT, 0, 0},
};

struct advice_cfg *advice_cfg_parse(struct conf_ctx *c, const cJSON *node, const char *const *names, size_t n)
{
    char sub[256];
    if (!cJSON_IsObject(node)) {
        conf_err(c, node, 0, "advice", "expected an object, got %s", conf_type_name(node));
        return NULL;
    }
    struct advice_cfg *cfg = xcalloc(1, sizeof *cfg);
    cfg->enabled = true;
    cfg->host_root = xstrdup("/");
    cfg->host_interval = ADVICE_HOST_INTERVAL;
    advice_opts_default(&cfg->global);
    const cJSON *insts = NULL;
    for (const cJSON *ch = node->child; ch; ch = ch->next) {
        conf_join_path(sub, sizeof sub, "advice", ch->string);
        if (parse_opt_key(c, ch, &cfg->global, sub))
            continue;
        const struct conf_opt *o = conf_find_opt(advice_keys, NELEM(advice_keys), ch->string);
        if (!o) {
            conf_err(c, ch, 1, sub, "unknown key \"%s\" (known: enabled, host_root, host_interval, thresholds, disable, instances)",
                     ch->string);
        } else if (strcmp(ch->string, "enabled") == 0) {
            if (!cJSON_IsBool(ch))
                conf_err(c, ch, 0, sub, "expected true or false, got %s", conf_type_name(ch));
            else
                cfg->enabled = cJSON_IsTrue(ch);
        } else if (strcmp(ch->string, "host_root") == 0) {
            if (!cJSON_IsString(ch) || ch->valuestring[0] != '/')
                conf_err(c, ch, 0, sub, "expected an absolute directory path");
            else {
                free(cfg->host_root);
                cfg->host_root = xstrdup(ch->valuestring);
            }
        } else if (strcmp(ch->string, "host_interval") == 0) {
            uint64_t ms;
            bool b;
            if (conf_take(c, o, ch, sub, NULL, &ms, &b) == 0)
                cfg->host_interval = (double)ms / 1e3;
        } else if (strcmp(ch->string, "instances") == 0) {
            if (!cJSON_IsObject(ch))
                conf_err(c, ch, 0, sub, "expected an object keyed by instance name, got %s", conf_type_name(ch));
            else
                insts = ch;
        }
    }
    /* instances after the section's own keys: they start from its values */
    for (const cJSON *ch = insts ? insts->child : NULL; ch; ch = ch->next) {
        char ipath[256];
        conf_join_path(ipath, sizeof ipath, "advice.instances", ch->string);
        bool known = false;
        for (size_t i = 0; i < n && !known; i++)
            known = names[i] && strcmp(names[i], ch->string) == 0;
        if (!known) {
            conf_err(c, ch, 1, ipath, "no instance is named \"%s\"", ch->string);
            continue;
        }
        if (!cJSON_IsObject(ch)) {
            conf_err(c, ch, 0, ipath, "expected an object, got %s", conf_type_name(ch));
            continue;
        }
        cfg->inst = xrealloc(cfg->inst, (cfg->n_inst + 1) * sizeof *cfg->inst);
        struct advice_inst *ai = &cfg->inst[cfg->n_inst++];
        ai->name = xstrdup(ch->string);
        ai->o = cfg->global;
        for (const cJSON *k = ch->child; k; k = k->next) {
            conf_join_path(sub, sizeof sub, ipath, k->string);
            if (!parse_opt_key(c, k, &ai->o, sub))
                conf_err(c, k, 1, sub, "unknown key \"%s\" (known: thresholds, disable)", k->string);
        }
    }
    return cfg;
}

void advice_cfg_free(struct advice_cfg *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_inst; i++)
        free(cfg->inst[i].name);
    free(cfg->inst);
    free(cfg->host_root);
    free(cfg);
}

void advice_opts_for(const struct advice_cfg *cfg, const char *name, struct advice_opts *o)
{
    if (!cfg) {
        advice_opts_default(o);
        return;
    }
    for (size_t i = 0; i < cfg->n_inst; i++)
        if (strcmp(cfg->inst[i].name, name) == 0) {
            *o = cfg->inst[i].o;
            return;
        }
    *o = cfg->global;
}
