/*
 * discover_parse.c - what a Redis Cluster node or a Sentinel says about the
 * topology, turned into nodes: CLUSTER SHARDS (7.0+), CLUSTER NODES (any
 * version), SENTINEL MASTERS and SENTINEL REPLICAS. Pure: no I/O, tested
 * with replies captured from real servers. Also the two small pure pieces
 * of discovery: the instance name template and the fleet shard hash.
 */
#include "discover.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void disc_nodes_free(struct disc_nodes *ns)
{
    for (size_t i = 0; i < ns->n; i++) {
        free(ns->v[i].id);
        free(ns->v[i].host);
        free(ns->v[i].shard);
        free(ns->v[i].flag);
    }
    free(ns->v);
    ns->v = NULL;
    ns->n = 0;
    ns->skipped.n = 0;
}

void disc_masters_free(struct disc_masters *ms)
{
    for (size_t i = 0; i < ms->n; i++) {
        free(ms->v[i].name);
        free(ms->v[i].host);
        free(ms->v[i].flag);
    }
    free(ms->v);
    ms->v = NULL;
    ms->n = 0;
    ms->skipped.n = 0;
}

bool disc_host_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253)
        return false;
    if (strchr(h, ':')) {
        struct in6_addr a;
        return inet_pton(AF_INET6, h, &a) == 1;
    }
    for (; *h; h++)
        if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') || *h == '.' ||
              *h == '-' || *h == '_'))
            return false;
    return true;
}

bool disc_label_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= DISC_MAX_LABEL && utf8_text_ok(s, n);
}

void disc_skip(struct disc_skipped *sk, const char *fmt, ...)
{
    if (sk->n++)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sk->first, sizeof sk->first, fmt, ap);
    va_end(ap);
}

#define BAD_HOST "is not an IP address or host name"
#define BAD_LABEL "is not a label value (over 128 bytes, not UTF-8, or control characters)"

/* v (n elements of size bytes) with room for one more. The capacity is the
 * next power of two of n (the lists have no field for it): a reply of N
 * entries costs log N reallocs, not N copies of a growing array. */
static void *room_for_one(void *v, size_t n, size_t size)
{
    return (n & (n - 1)) == 0 ? xrealloc(v, (n ? 2 * n : 1) * size) : v;
}

struct disc_node *disc_nodes_add(struct disc_nodes *ns)
{
    ns->v = room_for_one(ns->v, ns->n, sizeof *ns->v);
    struct disc_node *n = &ns->v[ns->n++];
    memset(n, 0, sizeof *n);
    return n;
}

/* A string value; one holding a NUL is not a name, an address or a flag
 * (C would read it cut short: "10.0.0.1\0..." as 10.0.0.1). */
static bool is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str &&
           !memchr(r->str, '\0', r->len);
}

/* The value of key in a RESP2 flat key/value array, or NULL. */
static const redisReply *kv_get(const redisReply *r, const char *key)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (is_str(r->element[i]) && strcmp(r->element[i]->str, key) == 0)
            return r->element[i + 1];
    return NULL;
}

static const char *kv_str(const redisReply *r, const char *key)
{
    const redisReply *v = kv_get(r, key);
    return is_str(v) ? v->str : NULL;
}

/* A port given as an integer or as a decimal string; 0 when missing or bad. */
static uint16_t kv_port(const redisReply *r, const char *key)
{
    const redisReply *v = kv_get(r, key);
    long long p = -1;
    if (v && v->type == REDIS_REPLY_INTEGER)
        p = v->integer;
    else if (is_str(v)) {
        char *end;
        p = strtoll(v->str, &end, 10);
        if (end == v->str || *end)
            p = -1;
    }
    return p > 0 && p <= 65535 ? (uint16_t)p : 0;
}

static bool is_kv_array(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements % 2 == 0;
}

int discover_parse_shards(const redisReply *r, bool tls, struct disc_nodes *out, char *err, size_t errlen)
{
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "CLUSTER SHARDS reply is not an array");
        return -1;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *sh = r->element[i];
        const redisReply *nodes = is_kv_array(sh) ? kv_get(sh, "nodes") : NULL;
        if (!nodes || nodes->type != REDIS_REPLY_ARRAY) {
            snprintf(err, errlen, "CLUSTER SHARDS: shard %zu has no node list", i);
            return -1;
        }
        /* the shard's name: its id where the server gives one, else the
         * node id of its master */
        const char *shard_id = kv_str(sh, "id");
        for (size_t k = 0; !shard_id && k < nodes->elements; k++) {
            const redisReply *nd = nodes->element[k];
            const char *role = is_kv_array(nd) ? kv_str(nd, "role") : NULL;
            if (role && strcmp(role, "master") == 0)
                shard_id = kv_str(nd, "id");
        }
        for (size_t k = 0; k < nodes->elements; k++) {
            const redisReply *nd = nodes->element[k];
            if (!is_kv_array(nd)) {
                snprintf(err, errlen, "CLUSTER SHARDS: shard %zu node %zu is not a key/value list", i, k);
                return -1;
            }
            const char *id = kv_str(nd, "id"), *role = kv_str(nd, "role"), *health = kv_str(nd, "health");
            const char *host = kv_str(nd, "endpoint");
            if (!host || !*host || strcmp(host, "?") == 0)
                host = kv_str(nd, "ip");
            uint16_t port = kv_port(nd, tls ? "tls-port" : "port");
            if (!id || !role) {
                snprintf(err, errlen, "CLUSTER SHARDS: shard %zu node %zu lacks id or role", i, k);
                return -1;
            }
            if (!host || !*host || strcmp(host, "?") == 0 || !port)
                continue; /* no address to poll */
            if (!disc_host_ok(host)) {
                disc_skip(&out->skipped, "CLUSTER SHARDS shard %zu node %zu: address \"%.40s\" " BAD_HOST, i, k, host);
                continue;
            }
            if (!disc_label_ok(shard_id ? shard_id : id)) {
                disc_skip(&out->skipped, "CLUSTER SHARDS shard %zu node %zu: shard id " BAD_LABEL, i, k);
                continue;
            }
            struct disc_node *n = disc_nodes_add(out);
            n->id = xstrdup(id);
            n->host = xstrdup(host);
            n->port = port;
            n->master = strcmp(role, "master") == 0;
            n->shard = xstrdup(shard_id ? shard_id : id);
            if (health && strcmp(health, "online") != 0) {
                /* a closed set: the flag is a label value, and a peer's
                 * own word would be one it chose */
                n->down = strcmp(health, "fail") == 0 || strcmp(health, "failed") == 0; /* 7.0.15 says "fail" */
                n->flag = xstrdup(n->down ? "fail" : strcmp(health, "loading") == 0 ? "loading" : "unknown");
            }
        }
    }
    return 0;
}

static bool has_flag(const char *flags, const char *f)
{
    size_t fl = strlen(f);
    for (const char *p = flags; *p;) {
        size_t l = strcspn(p, ",");
        if (l == fl && strncmp(p, f, l) == 0)
            return true;
        p += l + (p[l] == ',');
    }
    return false;
}

int discover_parse_nodes(const char *text, size_t len, struct disc_nodes *out, char *err, size_t errlen)
{
    size_t lineno = 0;
    for (const char *p = text, *end = text + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char line[4096];
        lineno++;
        if (ll >= sizeof line)
            ll = sizeof line - 1;
        memcpy(line, p, ll);
        line[ll] = '\0';
        p = nl ? nl + 1 : end;
        if (ll && line[ll - 1] == '\r')
            line[--ll] = '\0';
        if (!ll)
            continue;
        char *f[8], *save = NULL;
        int nf = 0;
        for (char *t = strtok_r(line, " ", &save); t && nf < 8; t = strtok_r(NULL, " ", &save))
            f[nf++] = t;
        if (nf < 8) {
            snprintf(err, errlen, "CLUSTER NODES line %zu: %d fields, expected at least 8", lineno, nf);
            return -1;
        }
        /* f[1]: ip:port@cport[,hostname] */
        char *at = strchr(f[1], '@');
        if (at)
            *at = '\0';
        char *colon = strrchr(f[1], ':');
        if (!colon) {
            snprintf(err, errlen, "CLUSTER NODES line %zu: address \"%.60s\" has no port", lineno, f[1]);
            return -1;
        }
        *colon = '\0';
        size_t hl = strlen(f[1]);
        if (hl >= 2 && f[1][0] == '[' && f[1][hl - 1] == ']') { /* "[::1]:7002": the address without brackets */
            f[1][hl - 1] = '\0';
            f[1]++;
        }
        char *pend;
        long port = strtol(colon + 1, &pend, 10);
        if (*pend || port < 0 || port > 65535) {
            snprintf(err, errlen, "CLUSTER NODES line %zu: bad port", lineno);
            return -1;
        }
        const char *flags = f[2];
        bool master = has_flag(flags, "master"), slave = has_flag(flags, "slave");
        if (!master && !slave)
            continue; /* neither role yet (a handshake with no role): nothing to label */
        if (!*f[1] || port == 0 || has_flag(flags, "noaddr"))
            continue;
        const char *shard = master || strcmp(f[3], "-") == 0 ? f[0] : f[3];
        if (!disc_host_ok(f[1])) {
            disc_skip(&out->skipped, "CLUSTER NODES line %zu: address \"%.40s\" " BAD_HOST, lineno, f[1]);
            continue;
        }
        if (!disc_label_ok(shard)) {
            disc_skip(&out->skipped, "CLUSTER NODES line %zu: node id " BAD_LABEL, lineno);
            continue;
        }
        struct disc_node *n = disc_nodes_add(out);
        n->id = xstrdup(f[0]);
        n->host = xstrdup(f[1]);
        n->port = (uint16_t)port;
        n->master = master;
        n->shard = xstrdup(shard);
        if (has_flag(flags, "fail")) {
            n->flag = xstrdup("fail");
            n->down = true;
        } else if (has_flag(flags, "handshake")) {
            n->flag = xstrdup("handshake");
        } else if (has_flag(flags, "fail?")) {
            n->flag = xstrdup("pfail");
        }
    }
    return 0;
}

/* The first flag of a Sentinel flags list that says something is wrong. */
static const char *sentinel_trouble(const char *flags, bool *down)
{
    static const char *const bad[] = {"o_down", "s_down", "disconnected", NULL};
    for (int i = 0; bad[i]; i++)
        if (has_flag(flags, bad[i])) {
            *down = true;
            return bad[i];
        }
    *down = false;
    return NULL;
}

int discover_parse_sentinel_masters(const redisReply *r, struct disc_masters *out, char *err, size_t errlen)
{
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "SENTINEL MASTERS reply is not an array");
        return -1;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *m = r->element[i];
        const char *name = is_kv_array(m) ? kv_str(m, "name") : NULL;
        const char *ip = name ? kv_str(m, "ip") : NULL;
        const char *flags = name ? kv_str(m, "flags") : NULL;
        uint16_t port = name ? kv_port(m, "port") : 0;
        if (!name || !*name || !ip || !*ip || !port) {
            snprintf(err, errlen, "SENTINEL MASTERS: entry %zu lacks name, ip or port", i);
            return -1;
        }
        if (!disc_label_ok(name)) {
            disc_skip(&out->skipped, "SENTINEL MASTERS entry %zu: master name " BAD_LABEL, i);
            continue;
        }
        if (!disc_host_ok(ip)) {
            disc_skip(&out->skipped, "SENTINEL MASTERS entry %zu: address \"%.40s\" " BAD_HOST, i, ip);
            continue;
        }
        out->v = room_for_one(out->v, out->n, sizeof *out->v);
        struct disc_master *dm = &out->v[out->n++];
        memset(dm, 0, sizeof *dm);
        dm->name = xstrdup(name);
        dm->host = xstrdup(ip);
        dm->port = port;
        const char *t = sentinel_trouble(flags ? flags : "", &dm->down);
        dm->flag = t ? xstrdup(t) : NULL;
    }
    return 0;
}

int discover_parse_sentinel_replicas(const redisReply *r, const char *master, struct disc_nodes *out, char *err,
                                     size_t errlen)
{
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "SENTINEL REPLICAS %s: reply is not an array", master);
        return -1;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *m = r->element[i];
        const char *ip = is_kv_array(m) ? kv_str(m, "ip") : NULL;
        uint16_t port = ip ? kv_port(m, "port") : 0;
        if (!ip || !*ip || !port) {
            snprintf(err, errlen, "SENTINEL REPLICAS %s: entry %zu lacks ip or port", master, i);
            return -1;
        }
        if (!disc_host_ok(ip)) {
            disc_skip(&out->skipped, "SENTINEL REPLICAS %.40s entry %zu: address \"%.40s\" " BAD_HOST, master, i, ip);
            continue;
        }
        const char *flags = kv_str(m, "flags");
        struct disc_node *n = disc_nodes_add(out);
        n->host = xstrdup(ip);
        n->port = port;
        n->master = false;
        n->shard = xstrdup(master);
        const char *t = sentinel_trouble(flags ? flags : "", &n->down);
        n->flag = t ? xstrdup(t) : NULL;
    }
    return 0;
}

int discover_expand_name(const char *tmpl, const char *prefix, const char *source, const char *host,
                         uint16_t port, struct buf *out, char *err, size_t errlen)
{
    for (const char *p = tmpl; *p;) {
        if (*p != '{') {
            buf_putc(out, *p++);
            continue;
        }
        const char *close = strchr(p, '}');
        size_t l = close ? (size_t)(close - p - 1) : 0;
        if (!close) {
            snprintf(err, errlen, "unterminated \"{\" in the name template");
            return -1;
        }
        if (l == 6 && strncmp(p + 1, "prefix", 6) == 0)
            buf_puts(out, prefix);
        else if (l == 6 && strncmp(p + 1, "source", 6) == 0)
            buf_puts(out, source);
        else if (l == 4 && strncmp(p + 1, "host", 4) == 0)
            buf_puts(out, host);
        else if (l == 4 && strncmp(p + 1, "port", 4) == 0)
            buf_printf(out, "%u", port);
        else {
            snprintf(err, errlen, "unknown field \"{%.*s}\" in the name template (known: {prefix}, {source}, {host}, {port})",
                     (int)(l > 40 ? 40 : l), p + 1);
            return -1;
        }
        p = close + 1;
    }
    if (!strstr(tmpl, "{host}") || !strstr(tmpl, "{port}")) {
        snprintf(err, errlen, "the name template must hold {host} and {port} (names must be unique per node)");
        return -1;
    }
    return 0;
}

uint64_t discover_name_hash(const char *name) { return fnv1a_str(FNV1A_BASIS, name); }

bool discover_shard_owns(const char *name, unsigned index, unsigned count)
{
    return count == 0 || discover_name_hash(name) % count == index;
}
