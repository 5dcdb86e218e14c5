/*
 * discover.c - discovery sources at run time, and the effective set of
 * instances. Each source keeps one connection (conn.c, on the loop thread,
 * never blocking, every round under the source's timeout) to one of its
 * seeds or Sentinels, asks for the topology every refresh, and keeps what it
 * found. Whenever the found set changes (a node appears or goes, a role
 * changes), the effective set - static instances plus discovered ones, a
 * static instance winning over a discovered one at the same address or
 * name (and an earlier source over a later one), filtered by the fleet
 * shard - goes to poller_apply(), the path a reload takes. A failover changes labels only: the poller re-renders the
 * instance and keeps its connection, previous sample and counters.
 */
#include "discover.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "info.h"
#include "log.h"
#include "poller.h"
#include "prom.h"
#include "util.h"

/* How a refresh ended: the `result` label of redpulse_discovery_refreshes_total. */
#define DISC_RESULTS(X)                                                                                  \
    X(OK, "ok")                                                                                          \
    X(UNREACHABLE, "unreachable")       /* connect, DNS, TLS or a dropped connection */                 \
    X(TIMEOUT, "timeout")                                                                                \
    X(AUTH, "auth")                                                                                      \
    X(NOT_CLUSTER, "not_cluster")       /* the seed has cluster support disabled */                      \
    X(NOT_SENTINEL, "not_sentinel")     /* SENTINEL refused: not a Sentinel */                           \
    X(UNKNOWN_MASTER, "unknown_master") /* a master name the Sentinel does not know */                   \
    X(ERROR_REPLY, "error_reply")                                                                        \
    X(BAD_REPLY, "bad_reply")           /* a reply that does not parse, or past DISC_MAX_NODES */
enum dres {
#define X(id, s) DR_##id,
    DISC_RESULTS(X)
#undef X
        DR_COUNT
};
static const char *const dres_str[] = {
#define X(id, s) s,
    DISC_RESULTS(X)
#undef X
};

enum dreq { RQ_AUTH, RQ_SHARDS, RQ_NODES, RQ_MASTERS, RQ_REPLICAS };

/* One node a source found, and what it becomes. */
struct known {
    char *key;                /* "host:port" */
    char *host;
    uint16_t port;
    struct instance_cfg cfg;  /* the instance: template + name, address, labels */
    char *flag;               /* what the topology says is wrong ("fail", "gone"...), or NULL */
    uint64_t ok_us;           /* monotonic: the last refresh that listed it healthy */
    bool seen;                /* listed by the refresh being applied */
};

/* A node removed while listed failed. It goes when a refresh lists it
 * healthy (it is added again), or when TOMB_MISSES refreshes in a row that
 * cover its master (Sentinel; a cluster's cover all) do not list it: one
 * refresh of a seed or Sentinel that does not list it, or one that did
 * not ask its master, must not forget it (it was found again at the next
 * refresh that listed it failed). */
#define TOMB_MISSES 3
struct tomb {
    char *key;
    char *master; /* sentinel_master, or NULL */
    unsigned misses;
};

struct source {
    struct discover *d;
    const struct disc_source_cfg *cfg;
    char *name;               /* owned: matches sources across reloads */
    enum disc_kind kind;
    struct conn *conn;
    size_t seed;              /* the seed the connection goes to */
    SSL_CTX *ssl;
    struct event *timer, *deadline;
    bool busy;                /* a round in flight */
    enum dreq *pend;          /* replies expected, in order ... */
    size_t *pend_arg;         /* ... with an index into masters for RQ_REPLICAS */
    size_t npend, cap_pend;
    size_t pend_head;         /* the next reply's entry (a queue, not a memmove per reply) */
    bool use_nodes;           /* this seed knows no CLUSTER SHARDS */
    unsigned fails;
    /* the round in flight */
    struct disc_nodes got;
    struct disc_masters masters;
    char **answered;          /* sentinel: masters answered this round */
    size_t n_answered;
    char unknown[256];        /* sentinel: master names not known, for the error */
    /* what it knows */
    struct known *known;
    size_t n_known, cap_known;
    /* nodes removed after remove_after while listed failed, by key: not
     * added again while the topology lists them failed (a cluster lists a
     * dead node until CLUSTER FORGET, a Sentinel a dead replica until
     * SENTINEL RESET: each remove_after it was found again, and RedisDown
     * resolved and fired anew) */
    struct tomb *tomb;
    size_t n_tomb;
    size_t last_skipped;      /* nodes the last refresh left out (logged when it changes) */
    bool failing;
    bool refreshed;           /* a refresh has ended (either way) */
    /* metrics (loop thread; copied into the published text) */
    unsigned long long results[DR_COUNT];
    double last_success_ts;
};

struct discover {
    struct event_base *base;
    struct evdns_base *dns;
    struct poller *p;
    const struct config *cfg;  /* the generation applied */
    struct source **s;
    size_t n;
    struct config *eff;        /* the effective set the poller runs (NULL: cfg itself) */
    void (*on_settled)(void *arg);
    void *on_settled_arg;
};

/* What HTTP threads read: the discovery metrics text and the targets. */
static atomic_bool pub_settled = true; /* every source has finished a refresh */
static pthread_mutex_t pub_mu = PTHREAD_MUTEX_INITIALIZER;
static char *pub_metrics;        /* redpulse_discovery_* families */
static char **pub_groups;        /* one JSON labels object per instance */
static size_t pub_n_groups;

static void round_start(struct source *s);

/* ---- publishing ----------------------------------------------------- */

static void publish_metrics(struct discover *d)
{
    struct buf b = BUF_INIT;
    if (d->n) {
        buf_puts(&b, "# HELP redpulse_discovery_instances Instances a discovery source currently knows (kept "
                     "ones included)\n# TYPE redpulse_discovery_instances gauge\n");
        for (size_t i = 0; i < d->n; i++) {
            buf_puts(&b, "redpulse_discovery_instances{source=\"");
            prom_escape(&b, d->s[i]->name);
            buf_printf(&b, "\"} %zu\n", d->s[i]->n_known);
        }
        buf_puts(&b, "# HELP redpulse_discovery_refreshes_total Topology refreshes by outcome\n"
                     "# TYPE redpulse_discovery_refreshes_total counter\n");
        for (size_t i = 0; i < d->n; i++)
            for (int r = 0; r < DR_COUNT; r++) {
                buf_puts(&b, "redpulse_discovery_refreshes_total{source=\"");
                prom_escape(&b, d->s[i]->name);
                buf_printf(&b, "\",result=\"%s\"} %llu\n", dres_str[r], d->s[i]->results[r]);
            }
        buf_puts(&b, "# HELP redpulse_discovery_last_success_timestamp_seconds When the source last refreshed "
                     "successfully (0: never)\n# TYPE redpulse_discovery_last_success_timestamp_seconds gauge\n");
        for (size_t i = 0; i < d->n; i++) {
            buf_puts(&b, "redpulse_discovery_last_success_timestamp_seconds{source=\"");
            prom_escape(&b, d->s[i]->name);
            buf_puts(&b, "\"} ");
            buf_put_double(&b, d->s[i]->last_success_ts);
            buf_putc(&b, '\n');
        }
        bool head = false;
        for (size_t i = 0; i < d->n; i++)
            for (size_t k = 0; k < d->s[i]->n_known; k++) {
                const struct known *kn = &d->s[i]->known[k];
                if (!kn->flag)
                    continue;
                if (!head)
                    buf_puts(&b, "# HELP redpulse_discovery_node_flagged Discovered instances the topology reports "
                                 "unwell or no longer lists, by reason (kept until remove_after)\n"
                                 "# TYPE redpulse_discovery_node_flagged gauge\n");
                head = true;
                buf_puts(&b, "redpulse_discovery_node_flagged{source=\"");
                prom_escape(&b, d->s[i]->name);
                buf_puts(&b, "\",target=\"");
                prom_escape(&b, kn->cfg.name);
                buf_puts(&b, "\",reason=\"");
                prom_escape(&b, kn->flag);
                buf_puts(&b, "\"} 1\n");
            }
    }
    char *text = buf_steal(&b, NULL);
    pthread_mutex_lock(&pub_mu);
    char *old = pub_metrics;
    pub_metrics = text;
    pthread_mutex_unlock(&pub_mu);
    free(old);
}

static void publish_targets(const struct config *eff)
{
    size_t n = eff->n_instances;
    char **g = xcalloc(n ? n : 1, sizeof *g);
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        const struct instance_cfg *ic = &eff->instances[i];
        buf_puts(&b, "{\"__param_target\":");
        buf_put_json_str(&b, ic->name);
        for (size_t k = 0; k < ic->n_labels; k++) {
            buf_putc(&b, ',');
            buf_put_json_str(&b, ic->labels[k].name);
            buf_putc(&b, ':');
            buf_put_json_str(&b, ic->labels[k].value);
        }
        buf_putc(&b, '}');
        g[i] = buf_steal(&b, NULL);
    }
    pthread_mutex_lock(&pub_mu);
    char **old = pub_groups;
    size_t on = pub_n_groups;
    pub_groups = g;
    pub_n_groups = n;
    pthread_mutex_unlock(&pub_mu);
    for (size_t i = 0; i < on; i++)
        free(old[i]);
    free(old);
}

void discover_render_metrics(struct buf *b)
{
    pthread_mutex_lock(&pub_mu);
    if (pub_metrics)
        buf_puts(b, pub_metrics);
    pthread_mutex_unlock(&pub_mu);
}

void discover_render_targets(const char *self, struct buf *out)
{
    struct buf t = BUF_INIT;
    buf_put_json_str(&t, self);
    pthread_mutex_lock(&pub_mu);
    buf_putc(out, '[');
    for (size_t i = 0; i < pub_n_groups; i++) {
        buf_puts(out, i ? ",\n{\"targets\":[" : "{\"targets\":[");
        buf_append(out, t.p, t.len);
        buf_puts(out, "],\"labels\":");
        buf_puts(out, pub_groups[i]);
        buf_putc(out, '}');
    }
    pthread_mutex_unlock(&pub_mu);
    buf_puts(out, "]\n");
    buf_free(&t);
}

/* ---- the effective set ---------------------------------------------- */

/* A small open-addressing set of strings (borrowed pointers). */
struct strset {
    const char **v;
    size_t cap;
};

/* Slots of an open-addressing table for n keys: a power of two, at most
 * half full. */
static size_t table_cap(size_t n)
{
    size_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    return cap;
}

static void strset_init(struct strset *s, size_t n)
{
    s->cap = table_cap(n);
    s->v = xcalloc(s->cap, sizeof *s->v);
}

/* The slot a string a peer chose starts probing at: a keyed hash
 * (info_hash), so node addresses cannot be chosen to collide and make the
 * tables linear (FNV-1a, the shard hash, is public and unkeyed: 10,000
 * addresses in one slot are found in seconds). */
static size_t slot_of(const char *str, size_t cap) { return (size_t)info_hash(str, strlen(str)) & (cap - 1); }

/* Adds str; returns false when it was there already. */
static bool strset_add(struct strset *s, const char *str)
{
    size_t i = slot_of(str, s->cap);
    for (; s->v[i]; i = (i + 1) & (s->cap - 1))
        if (strcmp(s->v[i], str) == 0)
            return false;
    s->v[i] = str;
    return true;
}

/* So that "::ffff:10.0.0.1", "0::1" and "Redis-1.example.com." written
 * otherwise by a static instance and a topology are one server. */
char *disc_addr_key(const char *host, unsigned port)
{
    struct buf b = BUF_INIT;
    struct in6_addr a6;
    char t[INET6_ADDRSTRLEN], bare[INET6_ADDRSTRLEN];
    const char *zone = strchr(host, '%'); /* fe80::1%eth0: the zone kept as written */
    size_t alen = zone ? (size_t)(zone - host) : strlen(host);
    if (strchr(host, ':') && alen < sizeof bare) {
        memcpy(bare, host, alen);
        bare[alen] = '\0';
        if (inet_pton(AF_INET6, bare, &a6) == 1) {
            if (IN6_IS_ADDR_V4MAPPED(&a6))
                inet_ntop(AF_INET, &a6.s6_addr[12], t, sizeof t);
            else
                inet_ntop(AF_INET6, &a6, t, sizeof t);
            buf_printf(&b, "%s%s:%u", t, zone ? zone : "", port);
            return buf_steal(&b, NULL);
        }
    }
    size_t n = strlen(host);
    if (n > 1 && host[n - 1] == '.')
        n--; /* the root: "a.example." is "a.example" */
    for (size_t i = 0; i < n; i++) {
        char c = host[i];
        buf_putc(&b, c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c);
    }
    buf_printf(&b, ":%u", port);
    return buf_steal(&b, NULL);
}

/* Hands the poller static + discovered instances (this agent's shard of
 * them) in one poller_apply. */
static void rebuild(struct discover *d)
{
    const struct config *cfg = d->cfg;
    const struct discovery_cfg *dc = cfg->discovery;
    struct config *old = d->eff;
    if (!dc) { /* nothing to add or filter: the generation itself */
        d->eff = NULL;
        poller_apply(d->p, cfg);
        publish_targets(cfg);
        config_free(old);
        return;
    }
    size_t total = cfg->n_instances;
    for (size_t i = 0; i < d->n; i++)
        total += d->s[i]->n_known;
    struct config *eff = xcalloc(1, sizeof *eff);
    eff->instances = xcalloc(total ? total : 1, sizeof *eff->instances);
    struct strset names, addrs;
    strset_init(&names, total);
    strset_init(&addrs, total);
    char **keys = xcalloc(cfg->n_instances ? cfg->n_instances : 1, sizeof *keys);
    for (size_t i = 0; i < cfg->n_instances; i++) {
        const struct instance_cfg *ic = &cfg->instances[i];
        strset_add(&names, ic->name);
        if (ic->kind == ADDR_TCP) {
            keys[i] = disc_addr_key(ic->host, ic->port);
            strset_add(&addrs, keys[i]);
        }
        if (discover_shard_owns(ic->name, dc->shard_index, dc->shard_count))
            config_instance_copy(&eff->instances[eff->n_instances++], ic);
    }
    for (size_t i = 0; i < d->n; i++) {
        struct source *s = d->s[i];
        for (size_t k = 0; k < s->n_known; k++) {
            const struct known *kn = &s->known[k];
            if (!strset_add(&addrs, kn->key)) {
                log_debug("discover", "%s: %s is configured, or found by an earlier source, already", s->name,
                          kn->key);
                continue;
            }
            if (!strset_add(&names, kn->cfg.name)) {
                log_debug("discover", "%s: name %s is taken; %s left out", s->name, kn->cfg.name, kn->key);
                continue;
            }
            if (discover_shard_owns(kn->cfg.name, dc->shard_index, dc->shard_count))
                config_instance_copy(&eff->instances[eff->n_instances++], &kn->cfg);
        }
    }
    for (size_t i = 0; i < cfg->n_instances; i++)
        free(keys[i]);
    free(keys);
    free(names.v);
    free(addrs.v);
    d->eff = eff;
    poller_apply(d->p, eff); /* the old set stays alive until the poller left it */
    publish_targets(eff);
    config_free(old);
}

/* ---- what a refresh found ------------------------------------------- */

/* config.c's rule for instance names, so a discovered name is one the file
 * could have given */
static bool name_ok(const char *s) { return config_name_check(s) == NAME_OK; }

/* The instance a node at host:port becomes: the source's template, the
 * name from its template, the address. Returns 0, or -1 when the node
 * gives no valid name or address: counted in sk (the refresh's summary is
 * logged), or logged when sk is NULL. */
static int make_cfg(const struct source *s, const char *host, uint16_t port, struct instance_cfg *out,
                    struct disc_skipped *sk)
{
    const struct disc_source_cfg *sc = s->cfg;
    struct buf nb = BUF_INIT, why = BUF_INIT;
    char err[160];
    int rc = -1;
    bool v6 = strchr(host, ':') != NULL;
    buf_printf(&why, v6 ? "%s[%s]:%u" : "%s%s:%u", sc->tmpl.tls.enabled ? "rediss://" : "redis://", host, port);
    char *addr = buf_steal(&why, NULL);
    if (discover_expand_name(sc->name_template, sc->prefix, sc->name, host, port, &nb, err, sizeof err) < 0 ||
        !name_ok(nb.p ? nb.p : "")) {
        if (sk)
            disc_skip(sk, "node %.60s:%u gives no valid instance name", host, port);
        else
            log_warn("discover", "%s: node %s:%u gives no valid instance name; left out", s->name, host, port);
        goto out;
    }
    config_instance_copy(out, &sc->tmpl);
    if (config_instance_set_address(out, addr, &why) < 0) {
        if (sk)
            disc_skip(sk, "node %.60s:%u has an unusable address (%.60s)", host, port, why.p);
        else
            log_warn("discover", "%s: node %s:%u has an unusable address (%s); left out", s->name, host, port, why.p);
        config_instance_clear(out);
        goto out;
    }
    free(out->name);
    out->name = buf_steal(&nb, NULL);
    rc = 0;
out:
    free(addr);
    buf_free(&why);
    buf_free(&nb);
    return rc;
}

static void known_clear(struct known *k)
{
    free(k->host);
    free(k->key);
    free(k->flag);
    config_instance_clear(&k->cfg);
}

/* What a source knows, by key, for one merge: a refresh of N nodes costs
 * O(N), not N scans of the known list (30,000 nodes held the loop 14 s).
 * Slots hold an index into s->known plus one; 0 is empty. */
struct known_index {
    size_t *slot;
    size_t cap;
};

static void known_index_init(struct known_index *ix, size_t n)
{
    ix->cap = table_cap(n);
    ix->slot = xcalloc(ix->cap, sizeof *ix->slot);
}

/* The slot of key: its entry, or the empty slot where it goes. */
static size_t *known_slot(const struct source *s, const struct known_index *ix, const char *key)
{
    size_t i = slot_of(key, ix->cap);
    while (ix->slot[i] && strcmp(s->known[ix->slot[i] - 1].key, key) != 0)
        i = (i + 1) & (ix->cap - 1);
    return &ix->slot[i];
}

static bool same_flag(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

static void set_flag(struct source *s, struct known *k, const char *flag)
{
    if (same_flag(k->flag, flag))
        return;
    if (flag)
        log_info("discover", "%s: %s (%s) is flagged \"%s\"", s->name, k->cfg.name, k->key, flag);
    else
        log_info("discover", "%s: %s (%s) is healthy again", s->name, k->cfg.name, k->key);
    free(k->flag);
    k->flag = flag ? xstrdup(flag) : NULL;
}

/* Sets a label; true when its value changed. */
static bool set_label(struct instance_cfg *ic, const char *name, const char *value)
{
    for (size_t i = 0; i < ic->n_labels; i++)
        if (strcmp(ic->labels[i].name, name) == 0 && strcmp(ic->labels[i].value, value) == 0)
            return false;
    config_instance_label(ic, name, value);
    return true;
}

/* A node's sentinel_master label, or NULL (a cluster's node). */
static const char *sentinel_master_of(const struct instance_cfg *c)
{
    for (size_t i = 0; i < c->n_labels; i++)
        if (strcmp(c->labels[i].name, "sentinel_master") == 0)
            return c->labels[i].value;
    return NULL;
}

/* Whether this round's answer speaks for the nodes of master m: a
 * cluster's answer is the whole topology, and so is a Sentinel's when it
 * follows all masters; a master name the Sentinel did not know keeps its
 * nodes as they were. */
static bool master_covered(const struct source *s, const char *m)
{
    if (s->kind == DISC_CLUSTER || s->cfg->n_masters == 0)
        return true;
    for (size_t i = 0; m && i < s->n_answered; i++)
        if (strcmp(s->answered[i], m) == 0)
            return true;
    return false;
}

/* Same, for a node the source knows. */
static bool covered(const struct source *s, const struct known *k)
{
    return master_covered(s, sentinel_master_of(&k->cfg));
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Past DISC_MAX_NODES after a merge, the nodes this refresh did not list
 * (kept until remove_after) go early, those healthy longest ago first: a
 * seed listing a new set every refresh would otherwise pile up a limit's
 * worth per refresh. The listed ones (at most the limit) all stay. */
static void trim_unlisted(struct source *s)
{
    size_t over = s->n_known - DISC_MAX_NODES, n = 0;
    uint64_t *ok = xcalloc(s->n_known, sizeof *ok);
    for (size_t i = 0; i < s->n_known; i++)
        if (!s->known[i].seen)
            ok[n++] = s->known[i].ok_us;
    qsort(ok, n, sizeof *ok, cmp_u64);
    /* n >= over: the listed ones are at most the limit. Those healthy
     * before cut go, and as many of those at cut as it takes. */
    uint64_t cut = ok[over - 1];
    size_t ties = over;
    for (size_t i = 0; i < over; i++)
        ties -= ok[i] < cut;
    free(ok);
    size_t w = 0;
    for (size_t i = 0; i < s->n_known; i++) {
        struct known *k = &s->known[i];
        bool drop = !k->seen && (k->ok_us < cut || (k->ok_us == cut && ties > 0));
        if (drop) {
            ties -= k->ok_us == cut;
            known_clear(k);
            continue;
        }
        s->known[w++] = *k;
    }
    s->n_known = w;
    log_warn("discover", "%s: %zu nodes no longer listed removed before remove_after: a source knows at most %d",
             s->name, over, DISC_MAX_NODES);
}

/* The tombstones of a source, by key, for one merge: slots hold an index
 * into s->tomb plus one. */
static size_t *tomb_slot(const struct source *s, size_t *slot, size_t cap, const char *key)
{
    size_t i = slot_of(key, cap);
    while (slot[i] && strcmp(s->tomb[slot[i] - 1].key, key) != 0)
        i = (i + 1) & (cap - 1);
    return &slot[i];
}

/* What a merge saw of a tombstone. */
enum { TOMB_UNLISTED, TOMB_DOWN, TOMB_HEALTHY };

/* Keeps the tombstones listed failed again by this refresh, and those
 * not listed fewer than TOMB_MISSES covering refreshes in a row; the
 * others go (a node listed healthy was added again, one no longer listed
 * is forgotten by the topology too). */
static void tombs_keep_down(struct source *s, const unsigned char *state)
{
    size_t w = 0;
    for (size_t i = 0; i < s->n_tomb; i++) {
        struct tomb *t = &s->tomb[i];
        if (state[i] == TOMB_DOWN)
            t->misses = 0;
        else if (state[i] == TOMB_UNLISTED && master_covered(s, t->master))
            t->misses++;
        if (state[i] == TOMB_HEALTHY || t->misses >= TOMB_MISSES) {
            free(t->key);
            free(t->master);
        } else {
            s->tomb[w++] = *t;
        }
    }
    s->n_tomb = w;
}

/* Merges the nodes of a successful round into what the source knows.
 * Returns true when the set of instances or their labels changed. */
static bool merge(struct source *s, uint64_t now)
{
    bool changed = false;
    const struct disc_source_cfg *sc = s->cfg;
    struct known_index ix;
    known_index_init(&ix, s->n_known + s->got.n);
    for (size_t i = 0; i < s->n_known; i++) {
        s->known[i].seen = false;
        *known_slot(s, &ix, s->known[i].key) = i + 1;
    }
    size_t tcap = table_cap(s->n_tomb);
    size_t *tslot = xcalloc(tcap, sizeof *tslot);
    unsigned char *tstate = xcalloc(s->n_tomb ? s->n_tomb : 1, 1);
    for (size_t i = 0; i < s->n_tomb; i++)
        *tomb_slot(s, tslot, tcap, s->tomb[i].key) = i + 1;
    for (size_t i = 0; i < s->got.n; i++) {
        const struct disc_node *n = &s->got.v[i];
        char *key = disc_addr_key(n->host, n->port);
        size_t *slot = known_slot(s, &ix, key);
        struct known *k = *slot ? &s->known[*slot - 1] : NULL;
        if (k && k->seen) { /* listed twice (a Sentinel in mid-failover): the first wins */
            free(key);
            continue;
        }
        if (!k) {
            size_t t = s->n_tomb ? *tomb_slot(s, tslot, tcap, key) : 0;
            if (t && tstate[t - 1] != TOMB_HEALTHY) {
                tstate[t - 1] = n->down ? TOMB_DOWN : TOMB_HEALTHY;
                if (n->down) { /* removed, and still failed */
                    free(key);
                    continue;
                }
            }
            struct instance_cfg ic;
            if (make_cfg(s, n->host, n->port, &ic, &s->got.skipped) < 0) {
                free(key);
                continue;
            }
            if (s->n_known == s->cap_known) {
                s->cap_known = s->cap_known ? 2 * s->cap_known : 16;
                s->known = xrealloc(s->known, s->cap_known * sizeof *s->known);
            }
            k = &s->known[s->n_known++];
            *slot = s->n_known;
            memset(k, 0, sizeof *k);
            k->key = key;
            k->host = xstrdup(n->host);
            k->port = n->port;
            k->cfg = ic;
            k->ok_us = now;
            key = NULL;
            changed = true;
            log_info("discover", "%s: found %s at %s (%s)", s->name, k->cfg.name, k->key,
                     n->master ? "master" : "replica");
        }
        free(key);
        k->seen = true;
        if (s->kind == DISC_CLUSTER) {
            changed |= set_label(&k->cfg, "cluster", sc->name);
            changed |= set_label(&k->cfg, "shard", n->shard);
        } else {
            changed |= set_label(&k->cfg, "sentinel_master", n->shard);
        }
        const char *role = n->master ? "master" : "replica";
        bool role_changed = set_label(&k->cfg, "role", role);
        if (role_changed && k->ok_us != now)
            log_info("discover", "%s: %s is now a %s", s->name, k->cfg.name, role);
        changed |= role_changed;
        set_flag(s, k, n->flag);
        if (!n->down)
            k->ok_us = now;
    }
    free(ix.slot);
    free(tslot);
    tombs_keep_down(s, tstate);
    free(tstate);
    /* nodes not listed, or listed as failed, go after remove_after (the
     * kept ones close up in one pass); a failed one leaves a tombstone */
    size_t w = 0;
    for (size_t i = 0; i < s->n_known; i++) {
        struct known *k = &s->known[i];
        bool unlisted = !k->seen && covered(s, k);
        if (unlisted)
            set_flag(s, k, "gone");
        if ((unlisted || (k->flag && strcmp(k->flag, "gone") != 0 && k->ok_us != now)) &&
            now - k->ok_us >= sc->remove_after_ms * 1000) {
            log_info("discover", "%s: %s (%s) removed: %s for %llums%s", s->name, k->cfg.name, k->key,
                     k->flag ? k->flag : "gone", (unsigned long long)sc->remove_after_ms,
                     unlisted ? "" : "; not added again while the topology lists it failed");
            if (!unlisted) {
                const char *m = sentinel_master_of(&k->cfg);
                s->tomb = xrealloc(s->tomb, (s->n_tomb + 1) * sizeof *s->tomb);
                s->tomb[s->n_tomb++] = (struct tomb){k->key, m ? xstrdup(m) : NULL, 0};
                k->key = NULL;
            }
            known_clear(k);
            changed = true;
            continue;
        }
        s->known[w++] = *k;
    }
    s->n_known = w;
    if (s->n_known > DISC_MAX_NODES) {
        trim_unlisted(s);
        changed = true;
    }
    return changed;
}

/* ---- one refresh ---------------------------------------------------- */

static void round_reset(struct source *s)
{
    disc_nodes_free(&s->got);
    disc_masters_free(&s->masters);
    for (size_t i = 0; i < s->n_answered; i++)
        free(s->answered[i]);
    free(s->answered);
    s->answered = NULL;
    s->n_answered = 0;
    s->unknown[0] = '\0';
    s->npend = s->pend_head = 0;
}

static void drop_conn(struct source *s)
{
    conn_close(s->conn);
    s->conn = NULL;
    s->use_nodes = false;
}

static void arm_timer(struct source *s, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

/* The nodes a successful refresh left out, in one line: a warning when
 * their number changes, debug while it stays (a seed listing 1,500 bad
 * nodes every 500 ms made 3,000 warnings a second). */
static void log_skipped(struct source *s)
{
    size_t n = s->masters.skipped.n + s->got.skipped.n;
    const char *first = s->masters.skipped.n ? s->masters.skipped.first : s->got.skipped.first;
    if (n && n != s->last_skipped)
        log_warn("discover", "%s: %zu node%s left out of the topology (the first: %s)", s->name, n,
                 n == 1 ? "" : "s", first);
    else if (n)
        log_debug("discover", "%s: %zu nodes left out again (the first: %s)", s->name, n, first);
    else if (s->last_skipped)
        log_info("discover", "%s: no node left out of the topology any more", s->name);
    s->last_skipped = n;
}

static void round_end(struct source *s, enum dres r, const char *detail)
{
    struct discover *d = s->d;
    evtimer_del(s->deadline);
    s->busy = false;
    s->results[r]++;
    uint64_t next = s->cfg->refresh_ms;
    const char *seed = s->cfg->seeds[s->seed].address;
    if (r == DR_OK || (r == DR_UNKNOWN_MASTER && s->n_answered)) {
        /* unknown master names: the masters that did answer are applied */
        bool changed = merge(s, now_mono_us());
        log_skipped(s);
        if (r == DR_OK) {
            s->last_success_ts = now_real_s();
            if (s->failing)
                log_info("discover", "%s: refresh works again (%s): %zu instances", s->name, seed, s->n_known);
            s->failing = false;
            s->fails = 0;
        }
        if (changed)
            rebuild(d);
    }
    if (r != DR_OK) {
        s->fails++;
        if (r != DR_UNKNOWN_MASTER) {
            drop_conn(s);
            s->seed = (s->seed + 1) % s->cfg->n_seeds; /* the next seed, next time */
        }
        /* retry sooner than refresh, backing off: 1 s, 2 s, 4 s ... up to refresh */
        uint64_t back = 1000ull << (s->fails - 1 > 10 ? 10 : s->fails - 1);
        back = (uint64_t)((double)back * (0.8 + 0.4 * ((double)(rand() % 1000) / 1000.0)));
        if (back < next)
            next = back;
        if (!s->failing || s->fails == 1)
            log_warn("discover", "%s: refresh from %s failed (%s): %s; keeping the %zu instances known, retrying "
                     "in %llums", s->name, seed, dres_str[r], detail, s->n_known, (unsigned long long)next);
        else
            log_debug("discover", "%s: refresh from %s failed again (%s): %s", s->name, seed, dres_str[r], detail);
        s->failing = true;
    }
    round_reset(s);
    publish_metrics(d);
    arm_timer(s, next);
    s->refreshed = true;
    if (!atomic_load(&pub_settled)) {
        bool all = true;
        for (size_t i = 0; i < d->n; i++)
            all &= d->s[i]->refreshed;
        if (all) {
            atomic_store(&pub_settled, true);
            if (d->on_settled)
                d->on_settled(d->on_settled_arg);
        }
    }
}

bool discover_settled(void) { return atomic_load(&pub_settled); }

void discover_on_settled(struct discover *d, void (*fn)(void *arg), void *arg)
{
    d->on_settled = fn;
    d->on_settled_arg = arg;
}

static void push(struct source *s, enum dreq k, size_t arg)
{
    if (s->npend == s->cap_pend) {
        s->cap_pend = s->cap_pend ? s->cap_pend * 2 : 8;
        s->pend = xrealloc(s->pend, s->cap_pend * sizeof *s->pend);
        s->pend_arg = xrealloc(s->pend_arg, s->cap_pend * sizeof *s->pend_arg);
    }
    s->pend[s->npend] = k;
    s->pend_arg[s->npend] = arg;
    s->npend++;
}

static bool starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* Fails the round (-1, the reason in err) once its nodes pass the limit. */
static int over_limit(const struct source *s, char *err, size_t errlen)
{
    if (s->got.n <= DISC_MAX_NODES)
        return 0;
    snprintf(err, errlen, "topology lists more than %d nodes", DISC_MAX_NODES);
    return -1;
}

/* SENTINEL MASTERS answered: the followed masters become nodes, and their
 * replicas are asked for (pipelined), once per name: the first entry of a
 * name wins, as in merge(), and a Sentinel listing one master 3,000 times
 * cannot have 3,000 REPLICAS replies held for the round. Returns 0, or -1
 * (err) when the nodes pass the limit. */
static int on_masters(struct source *s, char *err, size_t errlen)
{
    const struct disc_source_cfg *sc = s->cfg;
    size_t nu = 0;
    for (size_t i = 0; i < sc->n_masters; i++) {
        bool found = false;
        for (size_t k = 0; k < s->masters.n; k++)
            found |= strcmp(s->masters.v[k].name, sc->masters[i]) == 0;
        if (!found) {
            size_t l = strlen(s->unknown);
            snprintf(s->unknown + l, sizeof s->unknown - l, "%s\"%s\"", nu++ ? ", " : "", sc->masters[i]);
        }
    }
    struct strset asked; /* names borrowed from s->masters */
    strset_init(&asked, s->masters.n);
    int rc = 0;
    for (size_t k = 0; k < s->masters.n; k++) {
        const struct disc_master *m = &s->masters.v[k];
        bool follow = sc->n_masters == 0;
        for (size_t i = 0; i < sc->n_masters; i++)
            follow |= strcmp(m->name, sc->masters[i]) == 0;
        if (!follow || !strset_add(&asked, m->name))
            continue;
        struct disc_node *n = disc_nodes_add(&s->got);
        n->host = xstrdup(m->host);
        n->port = m->port;
        n->master = true;
        n->shard = xstrdup(m->name);
        n->flag = m->flag ? xstrdup(m->flag) : NULL;
        n->down = m->down;
        rc = over_limit(s, err, errlen);
        if (rc < 0)
            break;
        s->answered = xrealloc(s->answered, (s->n_answered + 1) * sizeof *s->answered);
        s->answered[s->n_answered++] = xstrdup(m->name);
        const char *argv[] = {"SENTINEL", "REPLICAS", m->name};
        conn_command(s->conn, 3, argv);
        push(s, RQ_REPLICAS, k);
    }
    free(asked.v);
    return rc;
}

static void on_reply(void *arg, redisReply *r)
{
    struct source *s = arg;
    char err[256];
    if (!s->busy) { /* between refreshes: no refresh to fail; the connection is not trusted again */
        log_debug("discover", "%s: reply without a request on the idle connection; reconnecting next time", s->name);
        drop_conn(s);
        return;
    }
    if (s->pend_head == s->npend) {
        round_end(s, DR_BAD_REPLY, "reply without a request");
        return;
    }
    enum dreq k = s->pend[s->pend_head];
    size_t karg = s->pend_arg[s->pend_head];
    s->pend_head++;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, sizeof err, "%.200s", r->str ? r->str : "");
        if (k == RQ_AUTH || starts_with(err, "NOAUTH") || starts_with(err, "WRONGPASS")) {
            round_end(s, DR_AUTH, err);
        } else if (k == RQ_SHARDS && (strstr(err, "nknown subcommand") || strstr(err, "wrong number of arguments"))) {
            /* before 7.0: CLUSTER NODES, from now on on this connection */
            log_info("discover", "%s: %s has no CLUSTER SHARDS (Redis before 7.0): using CLUSTER NODES", s->name,
                     s->cfg->seeds[s->seed].address);
            s->use_nodes = true;
            const char *argv[] = {"CLUSTER", "NODES"};
            conn_command(s->conn, 2, argv);
            push(s, RQ_NODES, 0);
        } else if ((k == RQ_SHARDS || k == RQ_NODES) && strstr(err, "cluster support disabled")) {
            round_end(s, DR_NOT_CLUSTER, "the seed is not a Redis Cluster node (cluster support disabled)");
        } else if (k == RQ_MASTERS && strstr(err, "nknown command")) {
            round_end(s, DR_NOT_SENTINEL, "not a Sentinel (SENTINEL is an unknown command there)");
        } else {
            round_end(s, DR_ERROR_REPLY, err);
        }
        return;
    }
    int rc = 0;
    err[0] = '\0';
    switch (k) {
    case RQ_AUTH:
        return;
    case RQ_SHARDS:
        rc = discover_parse_shards(r, s->cfg->tmpl.tls.enabled, &s->got, err, sizeof err);
        break;
    case RQ_NODES:
        if (r->type != REDIS_REPLY_STRING) {
            snprintf(err, sizeof err, "CLUSTER NODES reply is not a string");
            rc = -1;
        } else {
            rc = discover_parse_nodes(r->str, r->len, &s->got, err, sizeof err);
        }
        break;
    case RQ_MASTERS:
        rc = discover_parse_sentinel_masters(r, &s->masters, err, sizeof err);
        if (rc == 0)
            rc = on_masters(s, err, sizeof err);
        break;
    case RQ_REPLICAS:
        rc = discover_parse_sentinel_replicas(r, s->masters.v[karg].name, &s->got, err, sizeof err);
        break;
    }
    if (rc == 0) /* what every reply of the round gathered so far */
        rc = over_limit(s, err, sizeof err);
    if (rc < 0) {
        round_end(s, DR_BAD_REPLY, err);
        return;
    }
    if (s->pend_head == s->npend) {
        if (s->unknown[0]) {
            snprintf(err, sizeof err, "the Sentinel does not know master %.200s", s->unknown);
            round_end(s, DR_UNKNOWN_MASTER, err);
        } else {
            round_end(s, DR_OK, "");
        }
    }
}

static void on_connected(void *arg)
{
    struct source *s = arg;
    log_debug("discover", "%s: connected to %s", s->name, s->cfg->seeds[s->seed].address);
}

static void on_error(void *arg, enum outcome why, const char *detail)
{
    struct source *s = arg;
    if (!s->busy) { /* the idle connection died: reconnect at the next refresh */
        log_debug("discover", "%s: idle connection lost: %s", s->name, detail);
        drop_conn(s);
        return;
    }
    round_end(s,
              why == OUTCOME_AUTH                ? DR_AUTH
              : why == OUTCOME_TIMEOUT           ? DR_TIMEOUT
              : why == OUTCOME_REPLY_TOO_LARGE   ? DR_BAD_REPLY
                                                 : DR_UNREACHABLE,
              detail);
}

static const struct conn_callbacks callbacks = {on_connected, on_reply, on_error};

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct source *s = arg;
    char detail[96];
    snprintf(detail, sizeof detail, "no complete answer within %llums",
             (unsigned long long)s->cfg->seeds[s->seed].timeout_ms);
    round_end(s, DR_TIMEOUT, detail);
}

static void round_start(struct source *s)
{
    if (s->busy)
        return;
    const struct instance_cfg *seed = &s->cfg->seeds[s->seed];
    s->busy = true;
    round_reset(s);
    struct timeval tv = {(time_t)(seed->timeout_ms / 1000), (suseconds_t)(seed->timeout_ms % 1000) * 1000};
    evtimer_add(s->deadline, &tv);
    if (!s->conn) {
        enum outcome why;
        char detail[200] = "";
        if (seed->kind == ADDR_TCP && seed->tls.enabled && !s->ssl) {
            s->ssl = conn_tls_ctx_new(&seed->tls, detail, sizeof detail);
            if (!s->ssl) {
                round_end(s, DR_UNREACHABLE, detail);
                return;
            }
        }
        s->conn = conn_open(s->d->base, s->d->dns, s->ssl, seed, &callbacks, s, &why, detail, sizeof detail);
        if (!s->conn) {
            round_end(s, why == OUTCOME_TIMEOUT ? DR_TIMEOUT : DR_UNREACHABLE, detail);
            return;
        }
        if (seed->password) {
            const char *argv[3] = {"AUTH", seed->username, seed->password};
            if (seed->username)
                conn_command(s->conn, 3, argv);
            else {
                argv[1] = seed->password;
                conn_command(s->conn, 2, argv);
            }
            push(s, RQ_AUTH, 0);
        }
    }
    if (s->kind == DISC_SENTINEL) {
        const char *argv[] = {"SENTINEL", "MASTERS"};
        conn_command(s->conn, 2, argv);
        push(s, RQ_MASTERS, 0);
    } else {
        const char *argv[] = {"CLUSTER", s->use_nodes ? "NODES" : "SHARDS"};
        conn_command(s->conn, 2, argv);
        push(s, s->use_nodes ? RQ_NODES : RQ_SHARDS, 0);
    }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    round_start(arg);
}

/* ---- sources across generations ------------------------------------- */

static void source_free(struct source *s)
{
    if (!s)
        return;
    drop_conn(s);
    round_reset(s);
    free(s->pend);
    free(s->pend_arg);
    if (s->ssl)
        SSL_CTX_free(s->ssl);
    event_free(s->timer);
    event_free(s->deadline);
    for (size_t i = 0; i < s->n_known; i++)
        known_clear(&s->known[i]);
    free(s->known);
    for (size_t i = 0; i < s->n_tomb; i++) {
        free(s->tomb[i].key);
        free(s->tomb[i].master);
    }
    free(s->tomb);
    free(s->name);
    free(s);
}

/* A kept source under its new settings: connection and round start over
 * (the seeds or credentials may have changed); what it found is
 * re-derived from the new template (names, defaults), labels kept. */
static void source_update(struct source *s, const struct disc_source_cfg *sc)
{
    static const char *const keep[] = {"cluster", "shard", "sentinel_master", "role", NULL};
    evtimer_del(s->deadline);
    evtimer_del(s->timer);
    s->busy = false;
    round_reset(s);
    drop_conn(s);
    if (s->ssl)
        SSL_CTX_free(s->ssl);
    s->ssl = NULL;
    s->cfg = sc;
    s->seed = 0;
    for (size_t i = 0; i < s->n_known;) {
        struct known *k = &s->known[i];
        struct instance_cfg ic;
        if (make_cfg(s, k->host, k->port, &ic, NULL) < 0) {
            known_clear(k);
            memmove(k, k + 1, (s->n_known - i - 1) * sizeof *k);
            s->n_known--;
            continue;
        }
        for (const char *const *l = keep; *l; l++)
            for (size_t j = 0; j < k->cfg.n_labels; j++)
                if (strcmp(k->cfg.labels[j].name, *l) == 0)
                    config_instance_label(&ic, *l, k->cfg.labels[j].value);
        if (sc->kind == DISC_CLUSTER)
            config_instance_label(&ic, "cluster", sc->name);
        config_instance_clear(&k->cfg);
        k->cfg = ic;
        i++;
    }
}

static struct source *source_new(struct discover *d, const struct disc_source_cfg *sc)
{
    struct source *s = xcalloc(1, sizeof *s);
    s->d = d;
    s->cfg = sc;
    s->name = xstrdup(sc->name);
    s->kind = sc->kind;
    s->timer = evtimer_new(d->base, timer_cb, s);
    s->deadline = evtimer_new(d->base, deadline_cb, s);
    return s;
}

struct discover *discover_new(struct event_base *base, struct poller *p)
{
    struct discover *d = xcalloc(1, sizeof *d);
    d->base = base;
    d->p = p;
    d->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!d->dns)
        d->dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (d->dns) {
        evdns_base_load_hosts(d->dns, NULL);
        evdns_base_set_option(d->dns, "timeout:", "2");
        evdns_base_set_option(d->dns, "attempts:", "2");
    }
    return d;
}

void discover_apply(struct discover *d, const struct config *cfg)
{
    const struct discovery_cfg *dc = cfg->discovery;
    size_t n = dc ? dc->n_sources : 0;
    struct source **ns = xcalloc(n ? n : 1, sizeof *ns);
    for (size_t i = 0; i < n; i++) {
        const struct disc_source_cfg *sc = &dc->sources[i];
        for (size_t k = 0; k < d->n; k++)
            if (d->s[k] && d->s[k]->kind == sc->kind && strcmp(d->s[k]->name, sc->name) == 0) {
                ns[i] = d->s[k];
                d->s[k] = NULL;
                source_update(ns[i], sc);
                break;
            }
        if (!ns[i]) {
            ns[i] = source_new(d, sc);
            log_info("discover", "%s: %s source with %zu seed%s, refresh every %llums", sc->name,
                     sc->kind == DISC_CLUSTER ? "cluster" : "sentinel", sc->n_seeds, sc->n_seeds == 1 ? "" : "s",
                     (unsigned long long)sc->refresh_ms);
        }
    }
    for (size_t k = 0; k < d->n; k++)
        if (d->s[k]) {
            log_info("discover", "%s: source removed; its instances go", d->s[k]->name);
            source_free(d->s[k]);
        }
    free(d->s);
    d->s = ns;
    d->n = n;
    d->cfg = cfg;
    bool settled = true;
    for (size_t i = 0; i < n; i++)
        settled &= ns[i]->refreshed;
    atomic_store(&pub_settled, settled);
    rebuild(d);
    publish_metrics(d);
    for (size_t i = 0; i < n; i++)
        arm_timer(ns[i], 0); /* first refresh now */
}

void discover_free(struct discover *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        source_free(d->s[i]);
    free(d->s);
    if (d->dns)
        evdns_base_free(d->dns, 0);
    config_free(d->eff); /* the poller that ran it is gone (freed first) */
    free(d);
    pthread_mutex_lock(&pub_mu);
    free(pub_metrics);
    pub_metrics = NULL;
    for (size_t i = 0; i < pub_n_groups; i++)
        free(pub_groups[i]);
    free(pub_groups);
    pub_groups = NULL;
    pub_n_groups = 0;
    pthread_mutex_unlock(&pub_mu);
}
