/*
 * discover.h - instances found rather than listed: Redis Cluster and
 * Sentinel discovery sources, and the fleet shard that splits one
 * configuration across several agents.
 *
 * Three parts: the "discovery" and "shard" sections of the configuration
 * (discover_conf.c), pure parsers of CLUSTER SHARDS / CLUSTER NODES /
 * SENTINEL replies (discover_parse.c), and the sources at run time
 * (discover.c), which keep one connection each on the loop thread, refresh
 * the topology, and hand the effective set of instances (static plus
 * discovered, filtered by the shard) to poller_apply(), the same path a
 * reload takes.
 */
#ifndef REDPULSE_DISCOVER_H
#define REDPULSE_DISCOVER_H

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"

struct conf_ctx;
struct config_draft;
struct poller;
struct cJSON;

/* ---- configuration ---------------------------------------------------- */

enum disc_kind { DISC_CLUSTER, DISC_SENTINEL };

struct disc_source_cfg {
    enum disc_kind kind;
    char *name;                   /* unique; the `source` label of the discovery metrics */
    struct instance_cfg *seeds;   /* one per seed address: how to reach it (auth, TLS, timeout) */
    size_t n_seeds;
    struct instance_cfg tmpl;     /* what a discovered instance starts from (name and address replaced) */
    uint64_t refresh_ms, remove_after_ms;
    char *prefix;                 /* {prefix} in the name template; default: the source name */
    char *name_template;          /* default "{prefix}-{host}-{port}" */
    char **masters;               /* sentinel: master names followed; n_masters 0: all */
    size_t n_masters;
};

struct discovery_cfg {
    struct disc_source_cfg *sources;
    size_t n_sources;
    unsigned shard_index, shard_count; /* count 0: no shard, every instance is ours */
};

/* Parses the "discovery" array and the "shard" object (either may be NULL),
 * sources starting from the file's "defaults" (defaults). Problems go to c
 * with their JSON path and line:column. Returns the parsed sections
 * (possibly partial when errors were reported; the caller drops the whole
 * configuration then). */
struct discovery_cfg *discover_conf_parse(struct conf_ctx *c, const struct cJSON *discovery,
                                          const struct cJSON *shard, const struct config_draft *defaults);
size_t discover_conf_sources(const struct discovery_cfg *d); /* NULL-safe */
void discover_conf_free(struct discovery_cfg *d);            /* NULL-safe */

/* ---- the fleet shard (pure) ------------------------------------------- */

/* FNV-1a 64 of the instance name's bytes. */
uint64_t discover_name_hash(const char *name);
/* True when the instance named name belongs to shard index of count
 * (discover_name_hash(name) % count == index); count 0: always true. */
bool discover_shard_owns(const char *name, unsigned index, unsigned count);

/* ---- topology replies (pure) ------------------------------------------ */

/* One node as a topology reply describes it. */
struct disc_node {
    char *id;          /* cluster node id; sentinel: NULL */
    char *host;
    uint16_t port;
    bool master;       /* role: master, else replica */
    char *shard;       /* cluster: the shard id, or the node id of its master; sentinel: the master name */
    char *flag;        /* why the topology says it is unwell ("fail", "handshake", "s_down"...), or NULL */
    bool down;         /* the flag means it is not serving (fail, noaddr, s_down, o_down, disconnected) */
};

/* Nodes a reply lists that cannot be polled or labelled as given: a host
 * that is neither an IP address nor a host name ("admin@10.0.0.1" would
 * choose the user name the source's password goes with), or a shard id or
 * master name that is no label value (over DISC_MAX_LABEL bytes, not
 * UTF-8, control characters: every series of the node repeats it). They
 * are left out and counted; the first one's reason is kept for the log. */
struct disc_skipped {
    size_t n;
    char first[160];
};
#define DISC_MAX_LABEL 128
/* Counts a node left out in sk; the first one's reason (printf) is kept. */
void disc_skip(struct disc_skipped *sk, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct disc_nodes {
    struct disc_node *v;
    size_t n;
    struct disc_skipped skipped;
};

void disc_nodes_free(struct disc_nodes *ns);
/* Appends a zeroed node to ns and returns it (valid until the next append).
 * The array grows by doubling, so every append to ns must come through here. */
struct disc_node *disc_nodes_add(struct disc_nodes *ns);

/* The most nodes one source may list in a refresh, and may know at once.
 * The agent is sized for 10,000 instances (docs/performance.md); a refresh
 * listing more ends as a bad reply and changes nothing, and past it after
 * a merge the nodes no longer listed go before remove_after, so a hostile
 * or broken seed cannot make the agent hold, and poll, an unbounded set. */
#define DISC_MAX_NODES 10000
/* The reply cap of a source's own connection (at least; max_reply_bytes
 * when larger): a Sentinel's SENTINEL MASTERS for 900 masters is 546 KB of
 * 36,000 elements, past 1 MiB in conn.c's reckoning, and 10,000 masters
 * are some 25 MiB. */
#define DISC_MAX_REPLY ((size_t)32 << 20)

/* CLUSTER SHARDS (Redis 7.0+, RESP2 arrays of key/value pairs) into out
 * (appended). tls: take each node's "tls-port". Returns 0, or -1 with a
 * reason in err for a reply of the wrong shape. */
int discover_parse_shards(const redisReply *r, bool tls, struct disc_nodes *out, char *err, size_t errlen);
/* True when host is an IP address (v4, or v6 without brackets or zone) or
 * a host name ([A-Za-z0-9._-], at most 253 bytes): what a topology may
 * name a node by. */
bool disc_host_ok(const char *host);
/* The key two addresses of one server share, "host:port" (malloc'd): an
 * IPv6 address in its one canonical text, an IPv4-mapped one as IPv4, a
 * host name in lower case without a trailing dot (DNS names are compared
 * so: "Redis-1.example.com." is "redis-1.example.com"), an IPv6 zone
 * ("%eth0") as written. Names are not resolved: a name and its address are
 * two keys. */
char *disc_addr_key(const char *host, unsigned port);
/* True when s is fit for a label value a topology chooses: 1 to
 * DISC_MAX_LABEL bytes of UTF-8 without control characters. */
bool disc_label_ok(const char *s);
/* CLUSTER NODES text (any Redis with cluster support). Lines that do not
 * parse make it fail: -1 with the reason. Nodes without an address
 * (noaddr, port 0) are left out, and so are those counted in skipped. */
int discover_parse_nodes(const char *text, size_t len, struct disc_nodes *out, char *err, size_t errlen);

/* One master of SENTINEL MASTERS. */
struct disc_master {
    char *name, *host;
    uint16_t port;
    char *flag;        /* "s_down", "o_down", ... or NULL */
    bool down;
};
struct disc_masters {
    struct disc_master *v;
    size_t n;
    struct disc_skipped skipped;
};
void disc_masters_free(struct disc_masters *ms);
/* SENTINEL MASTERS into out (appended; out's capacity is implied by its n,
 * so only this function appends to it). Returns 0 or -1 with a reason. */
int discover_parse_sentinel_masters(const redisReply *r, struct disc_masters *out, char *err, size_t errlen);
/* SENTINEL REPLICAS <master> into out (appended; shard = master). Returns 0
 * or -1 with a reason. */
int discover_parse_sentinel_replicas(const redisReply *r, const char *master, struct disc_nodes *out, char *err,
                                     size_t errlen);

/* Expands a name template ({prefix}, {host}, {port}, {source})
 * into out. Returns 0, or -1 when the template names an unknown field
 * (the field in err). */
int discover_expand_name(const char *tmpl, const char *prefix, const char *source, const char *host,
                         uint16_t port, struct buf *out, char *err, size_t errlen);

/* ---- at run time (loop thread) ---------------------------------------- */

struct discover;

/* Sources of no configuration yet; discover_apply gives them one. p must
 * outlive it. */
struct discover *discover_new(struct event_base *base, struct poller *p);
/* Runs cfg (start and every reload): sources are matched to the running
 * ones by name (a source that stays keeps what it found, so a reload does
 * not drop discovered instances), the effective set goes to poller_apply
 * at once, and again after every refresh that changes it. cfg must stay
 * alive until the next discover_apply or discover_free. */
void discover_apply(struct discover *d, const struct config *cfg);
/* Closes every source connection and frees the effective set: call it
 * after poller_free (the poller runs that set). */
void discover_free(struct discover *d);

/* True once every source of the configuration applied last has finished
 * its first refresh (found something or failed): until then the set of
 * instances is not known, and the agent is not ready. Thread-safe. */
bool discover_settled(void);
/* Calls fn(arg) on the loop thread when discover_settled() becomes true. */
void discover_on_settled(struct discover *d, void (*fn)(void *arg), void *arg);

/* Appends the redpulse_discovery_* families. Thread-safe. */
void discover_render_metrics(struct buf *b);
/* Appends the Prometheus http_sd_configs document of the instances this
 * agent polls: one group per instance, targets [self] (the agent's own
 * host:port), labels __param_target (the name) and the instance's labels.
 * Thread-safe. */
void discover_render_targets(const char *self, struct buf *out);

#endif
