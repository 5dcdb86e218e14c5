/*
 * advise.h - the write-tuning advisor: settings (CONFIG GET), the measured
 * rates (derive) and, for an instance on this host, kernel facts -> findings,
 * each with its evidence, the change to make and what that change costs.
 *
 * The checks are pure (no I/O, no clocks: times are passed in). They run
 * when their inputs change: advise_settings() after a CONFIG GET reply
 * re-evaluates the checks that read only settings and host facts and arms
 * the rate checks whose settings make them possible; advise_poll() after each
 * poll evaluates only the armed rate checks. A rate finding clears after two
 * polls in a row without its condition (one quiet interval is not a fix); a
 * finding whose settings changed clears at once. A holding finding's texts
 * are rewritten every so often (ADVICE_REFRESH_*), not every poll.
 */
#ifndef REDPULSE_ADVISE_H
#define REDPULSE_ADVISE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "collect.h"
#include "derive.h"
#include "hostfacts.h"
#include "info.h"

/* X(id, "check id", kind, group): kind CFG reads settings (and host facts)
 * only, RATE reads settings and the rates of each poll; group is persistence,
 * memory, clients, host or observability. The id is stable: it is the
 * `check` label of redpulse_advice and the key of the configuration. */
#define ADVICE_CHECKS(X)                                  \
    X(APPENDFSYNC_ALWAYS, "appendfsync_always", RATE, persistence)     \
    X(FSYNC_DURING_REWRITE, "fsync_during_rewrite", RATE, persistence) \
    X(SAVE_FORKS_OFTEN, "save_forks_often", RATE, persistence)         \
    X(AOF_REWRITES_OFTEN, "aof_rewrites_often", RATE, persistence)     \
    X(RDB_AND_AOF, "rdb_and_aof", RATE, persistence)                   \
    X(PERSISTENCE_OFF, "persistence_off", RATE, persistence)           \
    X(NO_MAXMEMORY, "no_maxmemory", RATE, memory)                 \
    X(NOEVICTION_NEAR_FULL, "noeviction_near_full", RATE, memory) \
    X(VOLATILE_WITHOUT_TTL, "volatile_without_ttl", RATE, memory) \
    X(MAXMEMORY_SAMPLES_LOW, "maxmemory_samples_low", RATE, memory) \
    X(FRAGMENTATION_NO_DEFRAG, "fragmentation_no_defrag", RATE, memory) \
    X(LAZYFREE_OFF, "lazyfree_off", RATE, memory)                 \
    X(NO_PIPELINING, "no_pipelining", RATE, clients)               \
    X(NO_CONNECTION_REUSE, "no_connection_reuse", RATE, clients)   \
    X(REJECTED_CONNECTIONS, "rejected_connections", RATE, clients) \
    X(CLIENTS_NEAR_MAXCLIENTS, "clients_near_maxclients", RATE, clients) \
    X(THP_ALWAYS, "thp_always", CFG, host)                      \
    X(OVERCOMMIT_MEMORY, "overcommit_memory", CFG, host)        \
    X(SOMAXCONN_BELOW_BACKLOG, "somaxconn_below_backlog", CFG, host) \
    X(OPEN_FILES_LIMIT, "open_files_limit", CFG, host)          \
    X(TCP_KEEPALIVE_OFF, "tcp_keepalive_off", CFG, host)        \
    X(LATENCY_MONITOR_OFF, "latency_monitor_off", CFG, observability)

enum advice_check {
#define X(id, name, kind, group) ADV_##id,
    ADVICE_CHECKS(X)
#undef X
    ADV_COUNT
};

enum advice_severity { ADV_INFO, ADV_WARNING, ADV_CRITICAL };

/* X(id, "config key", default, "meaning"): the thresholds that decide
 * "high", in the units of their names. */
#define ADVICE_THRESHOLDS(X)                                                                            \
    X(WRITES_PER_SECOND, "write_commands_per_second", 1000, "write load called sustained/heavy")        \
    X(MIN_FORK_INTERVAL, "min_fork_interval_seconds", 300, "save policy forking more often is flagged")  \
    X(MIN_AOF_REWRITE_INTERVAL, "min_aof_rewrite_interval_seconds", 3600, "AOF rewrites more often are flagged") \
    X(MEMORY_NEAR_MAX, "memory_near_max_ratio", 0.9, "used_memory/maxmemory called near full")           \
    X(MAXMEMORY_SAMPLES, "maxmemory_samples", 10, "the guide's maxmemory-samples")                        \
    X(EVICTIONS_PER_SECOND, "evictions_per_second", 100, "evicting heavily")                              \
    X(LAZYFREE_KEYS_PER_SECOND, "lazyfree_keys_per_second", 1000, "evictions or expiries that call for lazy freeing") \
    X(PIPELINE_MIN_COMMANDS, "pipelining_min_commands_per_second", 1000, "command rate the pipelining check needs") \
    X(COMMANDS_PER_READ, "min_commands_per_read", 1.5, "commands per read event below which clients do not pipeline") \
    X(NEW_CONNECTIONS_PER_SECOND, "new_connections_per_second", 10, "connection rate the reuse check needs") \
    X(CONNECTIONS_PER_COMMAND, "max_connections_per_command", 0.05, "new connections per command above which clients do not reuse") \
    X(CLIENTS_NEAR_MAX, "clients_near_max_ratio", 0.9, "connected_clients/maxclients called near full") \
    X(REWRITE_WINDOW, "rewrite_window_seconds", 3600, "a rewrite or save seen this recently counts as happening")

enum advice_threshold {
#define X(id, key, def, help) ADVT_##id,
    ADVICE_THRESHOLDS(X)
#undef X
    ADVT_COUNT
};

/* One instance's advice settings, resolved (global section, then the
 * instance's own entry). */
struct advice_opts {
    double t[ADVT_COUNT];
    bool off[ADV_COUNT]; /* switched off for this instance */
};

/* The "advice" configuration section. */
struct advice_cfg {
    bool enabled;        /* default true */
    char *host_root;     /* "/" unless configured: where host facts are read */
    double host_interval; /* seconds between reads of host facts (procfs reads cost
                           * tens of microseconds each); default ADVICE_HOST_INTERVAL */
    struct advice_opts global;
    struct advice_inst {
        char *name;
        struct advice_opts o;
    } *inst;
    size_t n_inst;
};

struct advice_finding {
    enum advice_check id;
    enum advice_severity sev;
    uint32_t written_poll;  /* the advisor's poll count when the texts were written */
    bool no_rates;          /* a rate check's texts written on a poll without rates */
    double since;           /* Unix seconds: when it started to hold */
    char title[160];        /* one line */
    char evidence[512];     /* settings and measured values, with units */
    char recommendation[320]; /* the CONFIG SET / redis.conf line or sysctl */
    char tradeoff[400];     /* what the change costs */
    double written;         /* Unix s the texts were last written */
    char *json;             /* the finding as a JSON object, rebuilt with the texts */
};

#define ADVICE_HOST_INTERVAL 600.0

/* While a finding holds, its texts (and their measured values) are rewritten
 * once ADVICE_REFRESH_SECONDS and, for a rate check, ADVICE_REFRESH_POLLS
 * polls have passed since they were last written, or once
 * ADVICE_REFRESH_MAX_SECONDS have; and at the first poll with rates after
 * texts written without them (a baseline poll). Between rewrites a holding
 * finding costs a few comparisons per poll. At 1 s the texts are at most
 * 10 s old, at the default 5 s 30 s; from 10 s up they are rewritten at the
 * first poll a minute or more after the last rewrite. The polls matter from
 * an interval of 10/6 s up: with the seconds alone an interval of 10 s or
 * more rewrote them every poll, 4.1% of the agent's perf samples at 10,000
 * instances with clients_near_maxclients holding on each (docs/advice.md). */
#define ADVICE_REFRESH_SECONDS 10
#define ADVICE_REFRESH_POLLS 6
#define ADVICE_REFRESH_MAX_SECONDS 60

/* Per-instance advisor state; owned by whoever polls the instance. */
struct advisor {
    struct advice_opts o;
    uint32_t armed;   /* bit per check: settings make it possible */
    uint8_t quiet[ADV_COUNT]; /* polls in a row without the condition */
    struct advice_finding *f[ADV_COUNT]; /* allocated while it holds */
    bool json_stale;  /* a finding's texts were written since its JSON was */
    uint32_t polls;   /* advise_poll() calls so far (wraps harmlessly) */
    bool rates;       /* the latest poll had rates (not a baseline) */
    size_t n_holding;
    /* counters of the previous poll (for rates derive does not compute) */
    double prev_cmds, prev_reads, prev_conns, prev_rejected, prev_rewrites, prev_forks;
    bool have_prev;
    double last_rewrite_ts; /* Unix s a rewrite or save child was last seen; 0 never */
    double last_rate_ts;    /* last poll evaluated */
    /* the save rules, parsed when the settings arrive */
    double save_secs[8], save_changes[8];
    int n_save;
    bool have_settings;
    signed char local; /* on this host: -1 not decided yet, 0 no, 1 yes */
    const char *host_root; /* the configuration's host_root (it outlives the advisor), or "/" */
    double host_interval;  /* seconds */
    struct host_facts host; /* this instance's, as last read */
    double host_ts;         /* Unix s of that read; 0 never */
};

const char *advice_check_name(enum advice_check c);
const char *advice_check_group(enum advice_check c);
const char *advice_severity_str(enum advice_severity s);
/* The check of a name, or -1. */
int advice_check_find(const char *name);
const char *advice_threshold_key(enum advice_threshold t);
double advice_threshold_default(enum advice_threshold t);

/* Defaults into o (every check on, documented thresholds). */
void advice_opts_default(struct advice_opts *o);
/* The options for instance `name` from cfg (NULL: defaults). */
void advice_opts_for(const struct advice_cfg *cfg, const char *name, struct advice_opts *o);

/* Parses the "advice" section (node) into a new advice_cfg; problems go to
 * c with JSON path and line:column. instance names are checked against the
 * n configured names. Returns NULL only when node is not an object. Free
 * with advice_cfg_free(). */
struct conf_ctx;
struct advice_cfg *advice_cfg_parse(struct conf_ctx *c, const cJSON *node, const char *const *names, size_t n);
void advice_cfg_free(struct advice_cfg *cfg); /* NULL-safe */

void advisor_init(struct advisor *a, const struct advice_opts *o);
/* A new advisor for instance `name` with its options from cfg (NULL:
 * defaults; cfg must outlive the advisor); NULL when cfg switches advice
 * off. Free with advisor_free(). */
struct advisor *advisor_new(const struct advice_cfg *cfg, const char *name);
void advisor_free(struct advisor *a); /* NULL-safe */
/* A reload: *ap takes the options, host root and interval of cfg (which
 * must outlive it), or is created or freed when cfg switches advice on or
 * off. When the options changed, the findings are dropped: they come back,
 * judged by the new options, after the next CONFIG GET and polls. */
void advisor_reconfigure(struct advisor **ap, const struct advice_cfg *cfg, const char *name);
/* Frees the findings; a stays usable (nothing holds). */
void advisor_clear(struct advisor *a);

/* Settings changed (a CONFIG GET reply): re-arms the rate checks and
 * evaluates the settings-only ones. host: facts of the instance's host, NULL
 * when it is not on this host (host checks then never hold). now: Unix s. */
void advise_settings(struct advisor *a, const struct config_values *cv, const struct host_facts *host, double now);
/* After a successful poll: updates the armed rate checks from the sample
 * (full or compact) and the figures derive() made of it. */
void advise_poll(struct advisor *a, const struct config_values *cv, const struct info_sample *s,
                 const struct derived *d, double now);
/* Forgets every finding and the rate baseline (the instance went down or
 * restarted: what held may not hold on the new server). */
void advise_reset(struct advisor *a);

/* The agent's step after a CONFIG GET reply (advise_host.c; reads files):
 * decides whether the instance is on this host (hostfacts_is_local, with the
 * process_id of the last sample) and reads its process' limits under
 * a->host_root when it is, and calls advise_settings(). The decision and the
 * limits are renewed when process_id changes or after host_interval; the
 * kernel-wide facts are read once per host_interval for all instances (a
 * cache private to the calling thread: the event loop, or --advise). */
void advise_on_config(struct advisor *a, const struct instance_cfg *inst, const struct config_values *cv,
                      const struct info_sample *last, double now);

/* The worst severity holding, or -1 when none. */
int advisor_worst(const struct advisor *a);
/* Appends the findings as a JSON array (ordered by check). */
struct buf;
void advice_json(const struct advisor *a, struct buf *b);

/* `redpulse --advise ADDRESS [--seconds N] [--host-root DIR] [--password-env
 * VAR]` (advise_cli.c): two INFO samples N s apart and CONFIG GET, the checks,
 * a report on stdout. Blocks. Returns the exit status: 0 nothing above info,
 * 1 warnings, 2 critical, 3 could not advise. */
int advise_cli_main(int argc, char **argv);

/* ---- serving (advise_http.c; HTTP threads, from published frags) ---- */
struct frag;
struct registry;
/* The "advice" value rendered into f's JSON head (an array, or null): *len
 * bytes at the returned pointer, or NULL when the head has none. */
const char *advice_in_frag(const struct frag *f, size_t *len);
/* Appends /api/v1/advice: [{"name":..., "advice":[...] or null}, ...] in
 * instance order. */
void advice_api_json(struct registry *reg, struct buf *b);
/* Appends an HTML list of f's findings (severity, title, recommendation),
 * escaped; nothing when none hold. */
void advice_landing_html(const struct frag *f, struct buf *b);

#endif
