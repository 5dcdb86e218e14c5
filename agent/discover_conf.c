/*
 * discover_conf.c - the "discovery" and "shard" sections of the
 * configuration, parsed with the shared helpers (confparse.h) so their
 * errors read like every other: JSON path, line:column, reason. Instance
 * keys (credentials, TLS, interval, labels) go through config.c's drafts,
 * so a discovered instance takes exactly the settings a listed one would.
 */
#include "discover.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "confparse.h"
#include "util.h"

static const struct conf_opt source_opts[] = {
    {"type", OT_STRING, 0, 0},
    {"name", OT_STRING, 0, 0},
    {"seeds", OT_UINT, 0, 0},       /* cluster */
    {"sentinels", OT_UINT, 0, 0},   /* sentinel */
    {"masters", OT_UINT, 0, 0},     /* sentinel: names, or "all" (the default) */
    {"refresh", OT_DURATION, 500, 3600000},
    {"remove_after", OT_DURATION, 0, 7 * 86400000.0},
    {"prefix", OT_STRING, 0, 0},
    {"name_template", OT_STRING, 0, 0},
    {"defaults", OT_UINT, 0, 0},
};

/* How the source itself connects (to its seeds or Sentinels). */
static const char *const conn_keys[] = {"username", "password_file", "password_env", "password", "tls",
                                        "timeout",  NULL};

/* The same without the timeout: what a cluster's nodes take from the
 * source (the source's timeout bounds its own refreshes). */
static const char *const node_keys[] = {"username", "password_file", "password_env", "password", "tls", NULL};

/* Labels discovery sets on the instances it finds. */
static const char *const disc_labels[] = {"cluster", "shard", "sentinel_master", NULL};

static const struct conf_opt shard_opts[] = {
    {"index", OT_UINT, 0, 65535},
    {"count", OT_UINT, 1, 65536},
};

static bool in_list(const char *const *l, const char *s)
{
    for (; *l; l++)
        if (strcmp(*l, s) == 0)
            return true;
    return false;
}

/* The characters an instance name may hold (config.c's rule). */
/* config.c's rule for instance names, so a discovered name is one the file
 * could have given */
static bool name_ok(const char *s) { return config_name_check(s) == NAME_OK; }

static void source_clear(struct disc_source_cfg *s)
{
    free(s->name);
    for (size_t i = 0; i < s->n_seeds; i++)
        config_instance_clear(&s->seeds[i]);
    free(s->seeds);
    config_instance_clear(&s->tmpl);
    free(s->prefix);
    free(s->name_template);
    for (size_t i = 0; i < s->n_masters; i++)
        free(s->masters[i]);
    free(s->masters);
}

static void parse_strings(struct conf_ctx *c, const cJSON *arr, const char *path, char ***out, size_t *n)
{
    char sub[256];
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0) {
        conf_err(c, arr, 0, path, "expected a non-empty array of strings, got %s",
                 cJSON_IsArray(arr) ? "an empty array" : conf_type_name(arr));
        return;
    }
    int i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        char idx[16];
        snprintf(idx, sizeof idx, "[%d]", i);
        conf_join_path(sub, sizeof sub, path, idx);
        if (!cJSON_IsString(e) || !*e->valuestring) {
            conf_err(c, e, 0, sub, "expected a non-empty string, got %s", conf_type_name(e));
            continue;
        }
        *out = xrealloc(*out, (*n + 1) * sizeof **out);
        (*out)[(*n)++] = xstrdup(e->valuestring);
    }
}

static void parse_source(struct conf_ctx *c, const cJSON *obj, const char *path, const struct config_draft *defaults,
                         struct disc_source_cfg *s)
{
    char sub[256];
    const cJSON *seeds = NULL, *type = NULL, *dflt = NULL, *masters = NULL, *tmpl_node = NULL;
    char *type_s = NULL;
    s->refresh_ms = 30000;
    s->remove_after_ms = 300000;
    for (const cJSON *ch = obj->child; ch; ch = ch->next) {
        conf_join_path(sub, sizeof sub, path, ch->string);
        const struct conf_opt *o = conf_find_opt(source_opts, NELEM(source_opts), ch->string);
        if (!o) {
            if (!in_list(conn_keys, ch->string))
                conf_err(c, ch, 1, sub,
                         "unknown key \"%s\" (known: type, name, seeds, sentinels, masters, refresh, remove_after, "
                         "prefix, name_template, defaults, username, password_file, password_env, password, tls, "
                         "timeout; settings of the instances found go in \"defaults\")",
                         ch->string);
            continue;
        }
        uint64_t u = 0;
        bool b;
        if (strcmp(o->key, "type") == 0) {
            type = ch;
            conf_take(c, o, ch, sub, &type_s, &u, &b);
        } else if (strcmp(o->key, "name") == 0) {
            if (conf_take(c, o, ch, sub, &s->name, &u, &b) == 0 && !name_ok(s->name))
                conf_err(c, ch, 0, sub, "invalid name \"%s\": %s", s->name, CONFIG_NAME_RULE);
        } else if (strcmp(o->key, "seeds") == 0 || strcmp(o->key, "sentinels") == 0) {
            if (seeds)
                conf_err(c, ch, 1, sub, "give \"seeds\" (cluster) or \"sentinels\" (sentinel), not both");
            seeds = ch;
        } else if (strcmp(o->key, "masters") == 0) {
            masters = ch;
            if (!(cJSON_IsString(ch) && strcmp(ch->valuestring, "all") == 0)) /* "all": the default */
                parse_strings(c, ch, sub, &s->masters, &s->n_masters);
        } else if (strcmp(o->key, "refresh") == 0) {
            if (conf_take(c, o, ch, sub, NULL, &u, &b) == 0)
                s->refresh_ms = u;
        } else if (strcmp(o->key, "remove_after") == 0) {
            if (conf_take(c, o, ch, sub, NULL, &u, &b) == 0)
                s->remove_after_ms = u;
        } else if (strcmp(o->key, "prefix") == 0) {
            if (conf_take(c, o, ch, sub, &s->prefix, &u, &b) == 0 && !name_ok(s->prefix))
                conf_err(c, ch, 0, sub, "invalid prefix \"%s\": %s", s->prefix, CONFIG_NAME_RULE);
        } else if (strcmp(o->key, "name_template") == 0) {
            tmpl_node = ch;
            conf_take(c, o, ch, sub, &s->name_template, &u, &b);
        } else if (strcmp(o->key, "defaults") == 0) {
            if (!cJSON_IsObject(ch))
                conf_err(c, ch, 0, sub, "expected an object, got %s", conf_type_name(ch));
            else
                dflt = ch;
        }
    }
    if (!type_s) {
        if (!type)
            conf_err(c, obj, 0, path, "missing required key \"type\" (\"cluster\" or \"sentinel\")");
    } else if (strcmp(type_s, "cluster") == 0) {
        s->kind = DISC_CLUSTER;
    } else if (strcmp(type_s, "sentinel") == 0) {
        s->kind = DISC_SENTINEL;
    } else {
        conf_join_path(sub, sizeof sub, path, "type");
        conf_err(c, type, 0, sub, "unknown source type \"%s\" (\"cluster\" or \"sentinel\")", type_s);
        type_s[0] = '\0';
    }
    bool typed = type_s && *type_s;
    if (!s->name)
        conf_err(c, obj, 0, path, "missing required key \"name\" (names the source in metrics and logs)");
    const char *want = s->kind == DISC_CLUSTER ? "seeds" : "sentinels";
    if (typed && !seeds) {
        conf_err(c, obj, 0, path, "missing required key \"%s\" (addresses to ask)", want);
    } else if (typed && strcmp(seeds->string, want) != 0) {
        conf_join_path(sub, sizeof sub, path, seeds->string);
        conf_err(c, seeds, 1, sub, "a %s source takes \"%s\"", type_s, want);
        typed = false; /* nothing more to check */
    }
    if (typed && masters && s->kind != DISC_SENTINEL) {
        conf_join_path(sub, sizeof sub, path, "masters");
        conf_err(c, masters, 1, sub, "\"masters\" is for sentinel sources");
    }
    if (!s->prefix && s->name)
        s->prefix = xstrdup(s->name);
    if (!s->name_template)
        s->name_template = xstrdup("{prefix}-{host}-{port}");
    {
        struct buf b = BUF_INIT;
        char err[128];
        if (discover_expand_name(s->name_template, "p", "s", "h", 1, &b, err, sizeof err) < 0) {
            conf_join_path(sub, sizeof sub, path, "name_template");
            conf_err(c, tmpl_node, 0, sub, "%s", err);
        }
        buf_free(&b);
    }
    char **addrs = NULL;
    size_t n_addrs = 0;
    bool bad_addr = false;
    if (seeds) {
        conf_join_path(sub, sizeof sub, path, seeds->string);
        parse_strings(c, seeds, sub, &addrs, &n_addrs);
        /* addresses checked here, so their errors point at them */
        struct buf why = BUF_INIT;
        int i = 0;
        for (const cJSON *e = seeds->child; e && !bad_addr; e = e->next, i++) {
            struct instance_cfg scratch;
            memset(&scratch, 0, sizeof scratch);
            if (cJSON_IsString(e) && config_parse_address(e->valuestring, &scratch, &why) < 0) {
                char idx[24], spath[256];
                snprintf(idx, sizeof idx, "[%d]", i);
                conf_join_path(spath, sizeof spath, sub, idx);
                conf_err(c, e, 0, spath, "%s", why.p);
                bad_addr = true; /* reported; go no further */
            }
            buf_reset(&why);
            config_instance_clear(&scratch);
        }
        buf_free(&why);
    }
    if (!typed || !s->name || !name_ok(s->name) || n_addrs == 0 || bad_addr)
        goto out;

    /* how the source connects; cluster nodes are the same servers as the
     * seeds and take the same credentials and TLS (then their "defaults");
     * Sentinels have credentials of their own */
    struct config_draft *conn_d = config_draft_new(s->kind == DISC_CLUSTER ? defaults : NULL);
    struct config_draft *inst_d = config_draft_new(defaults);
    config_draft_apply(c, conn_d, obj, path, conn_keys);
    if (s->kind == DISC_CLUSTER)
        config_draft_apply(c, inst_d, obj, path, node_keys);
    if (dflt) {
        conf_join_path(sub, sizeof sub, path, "defaults");
        config_draft_apply(c, inst_d, dflt, sub, NULL);
    }
    s->seeds = xcalloc(n_addrs, sizeof *s->seeds);
    for (size_t i = 0; i < n_addrs; i++) {
        char idx[24];
        snprintf(idx, sizeof idx, "[%zu]", i);
        char spath[256];
        conf_join_path(spath, sizeof spath, path, seeds->string);
        conf_join_path(sub, sizeof sub, spath, idx);
        /* the interval is not used by a source (refresh is): a day keeps
         * the timeout check out of the way */
        config_draft_finish(c, conn_d, cJSON_GetArrayItem(seeds, (int)i), sub,
                            s->name, addrs[i], 86400000, &s->seeds[i]);
        s->n_seeds++;
        if (s->seeds[i].max_reply_bytes < DISC_MAX_REPLY)
            s->seeds[i].max_reply_bytes = DISC_MAX_REPLY;
        if (i == 0 && s->seeds[0].timeout_ms >= s->refresh_ms) {
            conf_join_path(sub, sizeof sub, path, "refresh");
            const cJSON *rn = cJSON_GetObjectItemCaseSensitive(obj, "refresh");
            conf_err(c, rn ? rn : obj, 0, sub, "refresh (%llums) must be longer than the source's timeout (%llums)",
                     (unsigned long long)s->refresh_ms, (unsigned long long)s->seeds[0].timeout_ms);
        }
    }
    /* the template: the first seed's scheme says whether the instances
     * found speak TLS */
    conf_join_path(sub, sizeof sub, path, "defaults");
    config_draft_finish(c, inst_d, dflt ? dflt : obj, sub, s->name, addrs[0], 0, &s->tmpl);
    for (size_t i = 0; i < s->tmpl.n_labels; i++)
        if (in_list(disc_labels, s->tmpl.labels[i].name))
            conf_err(c, dflt, 0, sub, "label \"%s\" is set by discovery", s->tmpl.labels[i].name);
    config_draft_free(inst_d);
    config_draft_free(conn_d);
out:
    for (size_t i = 0; i < n_addrs; i++)
        free(addrs[i]);
    free(addrs);
    free(type_s);
}

static void parse_shard(struct conf_ctx *c, const cJSON *obj, struct discovery_cfg *d)
{
    char sub[64];
    if (!cJSON_IsObject(obj)) {
        conf_err(c, obj, 0, "shard", "expected an object {\"index\": K, \"count\": N}, got %s", conf_type_name(obj));
        return;
    }
    bool have[2] = {false, false};
    uint64_t val[2] = {0, 0};
    for (const cJSON *ch = obj->child; ch; ch = ch->next) {
        conf_join_path(sub, sizeof sub, "shard", ch->string);
        const struct conf_opt *o = conf_find_opt(shard_opts, NELEM(shard_opts), ch->string);
        if (!o) {
            conf_err(c, ch, 1, sub, "unknown key \"%s\" (known: index, count)", ch->string);
            continue;
        }
        int k = o == &shard_opts[0] ? 0 : 1;
        bool b;
        if (conf_take(c, o, ch, sub, NULL, &val[k], &b) == 0)
            have[k] = true;
    }
    if (!have[0] || !have[1]) {
        conf_err(c, obj, 0, "shard", "both \"index\" and \"count\" are required");
        return;
    }
    if (val[0] >= val[1]) {
        conf_err(c, cJSON_GetObjectItemCaseSensitive(obj, "index"), 0, "shard.index",
                 "index %llu must be below count %llu (shards are numbered from 0)", (unsigned long long)val[0],
                 (unsigned long long)val[1]);
        return;
    }
    d->shard_index = (unsigned)val[0];
    d->shard_count = (unsigned)val[1];
}

struct discovery_cfg *discover_conf_parse(struct conf_ctx *c, const cJSON *discovery, const cJSON *shard,
                                          const struct config_draft *defaults)
{
    struct discovery_cfg *d = xcalloc(1, sizeof *d);
    if (shard)
        parse_shard(c, shard, d);
    if (!discovery)
        return d;
    if (!cJSON_IsArray(discovery)) {
        conf_err(c, discovery, 0, "discovery", "expected an array of sources, got %s", conf_type_name(discovery));
        return d;
    }
    int n = cJSON_GetArraySize(discovery);
    d->sources = xcalloc(n ? (size_t)n : 1, sizeof *d->sources);
    int i = 0;
    for (const cJSON *e = discovery->child; e; e = e->next, i++) {
        char path[64];
        snprintf(path, sizeof path, "discovery[%d]", i);
        if (!cJSON_IsObject(e)) {
            conf_err(c, e, 0, path, "expected an object, got %s", conf_type_name(e));
            continue;
        }
        struct disc_source_cfg *s = &d->sources[d->n_sources++];
        parse_source(c, e, path, defaults, s);
        for (size_t k = 0; s->name && k + 1 < d->n_sources; k++)
            if (d->sources[k].name && strcmp(d->sources[k].name, s->name) == 0) {
                char sub[80];
                conf_join_path(sub, sizeof sub, path, "name");
                conf_err(c, cJSON_GetObjectItemCaseSensitive(e, "name"), 0, sub,
                         "duplicate source name \"%s\" (also discovery[%zu])", s->name, k);
                break;
            }
    }
    return d;
}

size_t discover_conf_sources(const struct discovery_cfg *d) { return d ? d->n_sources : 0; }

void discover_conf_free(struct discovery_cfg *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_sources; i++)
        source_clear(&d->sources[i]);
    free(d->sources);
    free(d);
}
