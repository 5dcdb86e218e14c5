/*
 * alerts.h - threshold alerts: the `alerts` section of the configuration
 * (rules, receivers, routes, silences, compiled per instance at load), and
 * the engine that runs the rules after every poll, keeps the state file and
 * feeds the delivery thread.
 *
 * Threads: alerts_after_poll() runs on the event-loop thread only; the
 * render/list functions are safe on any thread (they read a table under a
 * short lock); delivery has its own thread (deliver.h).
 */
#ifndef REDPULSE_ALERTS_H
#define REDPULSE_ALERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "rules.h"

struct conf_ctx;
struct cJSON;
struct buf;

#define ALERTS_DEFAULT_STATE_DIR "/var/lib/redpulse"

struct thr_override {
    char *instance;
    double threshold;
};

struct alert_rule {
    char *name;            /* the alertname */
    char *figure_text;
    struct figure fig;
    struct rule_params p;  /* threshold is the default; overrides below */
    char *severity;
    struct label *labels;  /* extra labels */
    size_t n_labels;
    struct label *ann;     /* annotations, with {{ $value }} style placeholders */
    size_t n_ann;
    char **inst_names;     /* applies to these instances (none: all) */
    size_t n_inst_names;
    struct label *inst_match; /* ... or those whose labels equal these */
    size_t n_inst_match;
    struct thr_override *over;
    size_t n_over;
    size_t *recv;          /* receiver indexes named on the rule */
    size_t n_recv;
    bool enabled;
    bool builtin;
};

enum recv_type { RECV_WEBHOOK, RECV_ALERTMANAGER, RECV_SLACK };

struct alert_receiver {
    char *name;
    enum recv_type type;
    char **urls;           /* alertmanager: one per Alertmanager; others: one */
    size_t n_urls;
    struct label *headers;
    size_t n_headers;
    char *bearer;          /* read from bearer_token_file; never logged */
    char *basic_user, *basic_pass; /* basic_auth: password from password_file */
    uint64_t timeout_ms, connect_timeout_ms;
    uint64_t resend_ms;    /* alertmanager: re-send firing alerts */
    uint64_t repeat_ms;    /* webhook/slack: repeat while firing; 0: never */
    uint64_t max_backoff_ms;
    size_t queue_size;     /* undelivered notifications kept; overflow drops the oldest */
};

struct alert_route {
    struct label *match;   /* equality matchers on the alert's labels (severity, ...) */
    size_t n_match;
    size_t *recv;
    size_t n_recv;
};

struct alert_silence {
    struct label *match;
    size_t n_match;
    double starts_at, ends_at; /* Unix seconds */
    char *comment;
};

/* One rule as it applies to one instance. */
struct plan_entry {
    uint32_t rule;
    int32_t slot;    /* increase() or drop_below rules: index into the instance's
                      * extra state (previous values, baselines); -1 otherwise */
    double threshold;
};

struct alert_plan {
    struct plan_entry *e;
    size_t n;
    size_t n_slots;  /* entries with a slot */
};

struct alerts_cfg {
    bool builtin;
    char *state_dir;
    char *external_url;    /* for generatorURL and Slack links; NULL: none */
    struct alert_rule *rules; /* enabled and disabled; plans refer to enabled ones */
    size_t n_rules;
    size_t n_enabled;
    struct alert_receiver *recv;
    size_t n_recv;
    struct alert_route *routes;
    size_t n_routes;
    struct alert_silence *sil;
    size_t n_sil;
    uint64_t src_hash;     /* of the section's JSON text: a reload compares it */
};

/* Parses the `alerts` section (node may be NULL: defaults, built-in rules
 * on) against the already parsed instances of cfg, reporting every problem
 * through c. Returns the compiled section (NULL only when c got errors; the
 * caller discards the config then). */
struct alerts_cfg *alerts_cfg_parse(struct conf_ctx *c, const struct cJSON *node, const struct config *cfg);
void alerts_cfg_free(struct alerts_cfg *a);

/* Compiles into *pl (which the caller frees with free(pl->e)) the enabled
 * rules of a that apply to ic (instance names and label matchers), with
 * ic's threshold overrides. */
void alerts_plan_compile(const struct alerts_cfg *a, const struct instance_cfg *ic, struct alert_plan *pl);

/* Sets label k of the list *v (n entries) to val, adding it when absent
 * (copies both). */
void alerts_label_put(struct label **v, size_t *n, const char *k, const char *val);

/* The receiver named name, or -1. */
int alerts_cfg_receiver(const struct alerts_cfg *a, const char *name);

/* The built-in rules as JSON text (an array of rule objects). */
extern const char alerts_builtin_json[];

/* ---- the engine ---------------------------------------------------------- */

struct alert_inst;
struct poll_stats;
struct info_sample;
struct derived;
struct config_values;

/* Starts alerts for cfg (which must outlive them): restores the state file
 * from cfg->alerts->state_dir (a corrupt or truncated one is logged, moved
 * aside, and the agent starts empty; an unwritable directory is logged and
 * alerts run without persistence) and starts the delivery thread. Alerts
 * that were firing stay firing with no second notification. Returns 0, or
 * -1 when the thread cannot start. */
int alerts_start(const struct config *cfg);
/* Stops the delivery thread (after a last save) and frees every alert state,
 * including those alerts_after_poll() created. Safe when not started. */
void alerts_stop(void);

/* Runs the rules of instance ic after one of its polls (event-loop thread
 * only). *slot is its alert state: created on the first call (its rules
 * chosen by ic's name, labels and overrides from the rules the engine runs),
 * owned by the engine.
 * st says whether the poll succeeded; s, d (NULL when it failed) and cv are
 * read, never kept. Transitions go to the active table and the outboxes;
 * nothing here waits on delivery or disk. A no-op when alerts are not
 * started or the instance has not polled yet. */
void alerts_after_poll(struct alert_inst **slot, const struct instance_cfg *ic, const struct poll_stats *st,
                       const struct info_sample *s, const struct derived *d, const struct config_values *cv);
/* The instance of *slot is gone (a reload removed it; event-loop thread
 * only): its firing alerts are resolved (resolved notifications queued),
 * pending ones dropped, its episode counts kept, its state freed and *slot
 * set to NULL. A no-op when *slot is NULL or alerts are not started. */
void alerts_forget(struct alert_inst **slot);
/* A reload is applying cfg (event-loop thread, after poller_apply, while
 * the running generation is still alive). Kept instances take cfg's
 * instance settings. When cfg's `alerts` section differs from the running
 * one, the engine swaps to it under the hub lock:
 * each instance's rules are compiled again, alert states carry over by
 * (instance, rule name), alerts of rules gone are resolved; receivers are
 * matched by name (outboxes and counters kept, those of receivers removed
 * dropped and logged; the delivery thread moves its attempts). Returns true
 * then: cfg->alerts must outlive the engine from now on (hold its
 * generation) and the previous one is no longer used. A new state_dir is
 * made if missing and the state written there at once; the old file is
 * removed after that write succeeds (never before: a new directory that
 * cannot be written keeps the old file and the write is retried). */
bool alerts_reload(const struct config *cfg);

/* Renderers for the HTTP threads (any thread; each takes the hub lock for a
 * copy): the /metrics families, one instance's redpulse_alerts family (for
 * /scrape?target=), the /api/v1/alerts body, one instance's active alerts
 * as a JSON array, and an HTML list of firing alerts. Each appends nothing
 * (or an empty list) when alerts are not started. */
void alerts_render_metrics(struct buf *b);
void alerts_render_instance_metrics(struct buf *b, const char *instance);
void alerts_render_api(struct buf *b);
void alerts_render_instance(struct buf *b, const char *instance);
void alerts_render_landing(struct buf *b);
/* Alerts firing now (0 when alerts are not started); any thread. */
size_t alerts_firing_count(void);

#endif
