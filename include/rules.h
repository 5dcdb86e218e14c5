/*
 * rules.h - the alert state machine of one rule on one instance, and the
 * figures rules watch. Pure: no I/O, no clocks, no globals; the time of the
 * poll is passed in, so unit tests drive it with a fake clock (as
 * Prometheus' rules/alerting.go Eval is driven in its TestNotify).
 *
 *   inactive --cond--> pending --cond held for `for`--> firing
 *   firing --cond false for keep_firing_for (or past clear_threshold)--> inactive (resolved)
 *   pending --cond false--> inactive (no notification)
 *
 * A missing value (NaN: instance down, a rate on a baseline poll, a field the
 * server does not have) moves nothing: missing data is not recovery.
 */
#ifndef REDPULSE_RULES_H
#define REDPULSE_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct info_sample;
struct derived;
struct config_values;

enum rule_op { OP_GT, OP_GE, OP_LT, OP_LE, OP_EQ, OP_NE };

/* Parses ">", ">=", "<", "<=", "==", "!=". Returns 0 or -1. */
int rule_op_parse(const char *s, enum rule_op *out);
const char *rule_op_str(enum rule_op op);
/* True when `v op t`. */
bool rule_op_holds(enum rule_op op, double v, double t);

enum fig_kind {
    FIG_UP,       /* 1 when the poll succeeded, 0 when it failed */
    FIG_DERIVED,  /* derived.<group>.<name>: id is an enum derived_id */
    FIG_INFO,     /* info.<section>.<field>: id is an enum info_field */
    FIG_CONFIG,   /* config.<parameter>: id is an enum cfg_param (CONFIG GET) */
    FIG_ERRSTAT,  /* errorstat.<ERR>: that error's replies per second */
    FIG_COMPUTED, /* computed.<name>: id is an enum fig_computed */
};

/* Figures that combine several fields (for the built-in rules). */
#define FIG_COMPUTED_LIST(X)                                                                            \
    X(PERSISTENCE_OFF, "persistence_off", "")                                                           \
    X(SAVE_OVERDUE, "save_overdue_seconds", "s")                                                       \
    X(MASTER_LINK_DOWN, "master_link_down", "")                                                         \
    X(MEM_NOEVICTION, "used_memory_ratio_noeviction", "")                                               \
    X(MEM_EVICTING, "used_memory_ratio_evicting", "")                                                   \
    X(GOOD_REPLICAS_MISSING, "good_replicas_missing", "")                                               \
    X(SLOW_FORK, "fork_seconds_per_gigabyte_over_10ms", "s/GB")

enum fig_computed {
#define X(id, name, unit) FC_##id,
    FIG_COMPUTED_LIST(X)
#undef X
    FC_COUNT
};

/* A compiled figure: no name lookups at evaluation (except FIG_ERRSTAT,
 * whose error names are the server's own and come and go). */
struct figure {
    enum fig_kind kind;
    int id;
    char *err;     /* FIG_ERRSTAT: the error prefix, e.g. "READONLY" */
    bool increase; /* increase(...): the change since the previous poll */
};

/* Compiles "up", "derived.aof.delayed_fsyncs_last_interval",
 * "info.persistence.rdb_last_bgsave_status", "config.maxmemory",
 * "errorstat.READONLY", "computed.persistence_off", each optionally wrapped
 * in "increase(...)". Returns 0, or -1 with a reason in why (static or in
 * whybuf). f->err is allocated; free with figure_clear(). */
int figure_parse(const char *s, struct figure *f, char *whybuf, size_t n);
void figure_clear(struct figure *f);
/* The unit of a figure for annotations ("/s", "bytes", "s", "" ...). */
const char *figure_unit(const struct figure *f);

/* What a figure is read from on one poll. */
struct rule_input {
    bool up;                          /* the poll succeeded */
    const struct info_sample *s;      /* NULL when down */
    const struct derived *d;          /* NULL when down */
    const struct config_values *cv;   /* may be NULL */
};

/* The value of f on this poll, NaN when missing (every figure but `up` is
 * missing while the instance is down). For increase(): *prev holds the
 * previous raw value (NaN at first) and is updated; a decrease (restart)
 * gives NaN. */
double figure_value(const struct figure *f, const struct rule_input *in, double *prev);

/* A rule's thresholds and timings, resolved for one instance. */
struct rule_params {
    enum rule_op op;
    double threshold;
    bool has_clear;
    double clear;          /* hysteresis: firing holds while value is on this side */
    double for_s, keep_s;  /* `for`, keep_firing_for */
    double drop_below;     /* relative rule when > 0: value < drop_below x baseline */
    double baseline_s;     /* the EWMA's time constant */
};

enum alert_phase { AP_INACTIVE, AP_PENDING, AP_FIRING };

/* Per rule and instance: 32 bytes, plus 24 for relative rules. */
struct alert_state {
    uint8_t phase;        /* enum alert_phase */
    uint32_t episode;     /* firings so far: the n-th firing is episode n */
    double value;         /* last value seen */
    double active_since;  /* pending began (Prometheus' ActiveAt), on rule_step's clock */
    double last_true;     /* the condition last held, on rule_step's clock */
};

/* EWMA baseline of a relative rule. */
struct baseline {
    double mean;  /* NaN until the first value */
    double age_s; /* time covered so far; the rule waits for baseline_s */
    double at;    /* time of the last update */
};

enum alert_tr { TR_NONE, TR_PENDING, TR_FIRING, TR_RESOLVED, TR_CANCELLED };
const char *alert_tr_str(enum alert_tr t);
const char *alert_phase_str(enum alert_phase p);

/* One evaluation at time now (seconds on a clock no one sets: the poll's
 * last_poll_mono, so that a step of the wall clock neither fires a `for`
 * early nor holds one back) of value (NaN: missing).
 * b is the baseline of a relative rule (NULL otherwise): it is compared
 * against first, then updated with value. Returns the transition made. */
enum alert_tr rule_step(const struct rule_params *p, struct alert_state *st, struct baseline *b, double value,
                        double now);

#endif
