/*
 * derive.h - (previous sample, current sample) -> the figures that matter
 * for write throughput. Pure: no I/O, no clocks (times are passed in).
 *
 * Restarts are not spikes: a lower uptime or a new run_id is a restart, any
 * counter that went down (CONFIG RESETSTAT) is a reset; either starts a new
 * baseline and the poll yields no rates at all, so no rate is ever negative
 * or inflated.
 */
#ifndef REDPULSE_DERIVE_H
#define REDPULSE_DERIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "cmdclass.h"

#include "info.h"

enum derived_id {
#define D(id, group, json, metric, help) DV_##id,
#include "derived.def"
#undef D
    DV_COUNT
};

enum derive_event {
    DERIVE_FIRST,   /* no previous sample: baseline */
    DERIVE_OK,      /* rates computed */
    DERIVE_RESTART, /* new run_id or lower uptime: baseline */
    DERIVE_RESET,   /* a counter went down: baseline */
};

struct derived_cmd {
    const char *cmd;        /* points into the current sample */
    enum cmd_class cls;
    double calls_per_second; /* NaN on a baseline poll */
    double seconds_per_call; /* average over the interval; NaN without calls */
};

struct derived_err {
    const char *err;
    double per_second;
};

struct derived_replica {
    const struct info_replica *r;
    double lag_bytes;
};

struct derived {
    double v[DV_COUNT]; /* NaN: not available on this poll */
    enum derive_event event;
    double interval_seconds; /* NaN on a baseline poll */
    /* the commandstats figures' interval (the poll's, or longer: struct
     * cmd_window) and how long ago it ended; NaN when there are none */
    double cmd_interval_seconds, cmd_age_seconds;
    struct derived_cmd *cmds;
    size_t n_cmds;
    struct derived_err *errs;
    size_t n_errs;
    struct derived_replica *replicas;
    size_t n_replicas;
};

/* Classifies a command name for the write/read split. */
typedef enum cmd_class (*derive_classify_fn)(void *ctx, const char *cmd);

/* Fills out from cur (and prev when given; prev_us/cur_us are the agent's
 * monotonic times of the two replies, now_real the wall clock in seconds).
 * Pointers in out refer to cur, which must outlive out. Free with
 * derived_clear(). */
void derive(const struct info_sample *prev, uint64_t prev_us, const struct info_sample *cur,
            uint64_t cur_us, double now_real, derive_classify_fn classify, void *ctx,
            struct derived *out);
void derived_clear(struct derived *d);

/*
 * Commandstats asked less often than INFO (commandstats_interval), and the
 * cpu and server sections with them: the polls in between carry the last
 * text of those sections unchanged, so the figures from them (the
 * write/read split, per-command rates, rejected and failed calls, the CPU
 * ratios) are computed only when fresh ones come, over the time since the
 * previous fresh ones, and kept for the polls in between; the server's
 * clock (server_time_usec, for the time since the last save) is moved on
 * by the age of its section. A baseline (restart, reset) on a poll that did
 * not ask leaves its kept commandstats out of the next comparison.
 * Zero-initialise; the caller sets fresh before each derive_window; the
 * rest is derive_window's.
 */
#define CMD_WINDOW_FIGS 11
struct cmd_window {
    bool fresh;        /* the caller's: this poll's reply brought commandstats, cpu and server */
    bool kept;         /* v and per_cmd hold figures (false: ask at the next poll) */
    bool rebase;       /* the next fresh commandstats are a baseline */
    double seconds;    /* the interval v and per_cmd are over */
    uint64_t since_us; /* when the commandstats in the previous sample came */
    double v[CMD_WINDOW_FIGS];
    double *per_cmd; /* [2 * n]: calls per second, seconds per call */
    size_t n;
};
/* derive() with a cmd_window (derive() is this with none: commandstats in
 * every sample). */
void derive_window(const struct info_sample *prev, uint64_t prev_us, const struct info_sample *cur,
                   uint64_t cur_us, double now_real, derive_classify_fn classify, void *ctx,
                   struct cmd_window *w, struct derived *out);
void cmd_window_clear(struct cmd_window *w);
/* Sets d's pointers into its sample (command and error names, replicas) to
 * NULL, for keeping d after that sample is freed or reused: a read before
 * derived_rebind is then a NULL dereference, not another instance's names. */
void derived_unbind(struct derived *d);
/* Points d's command and error names and its replicas into cur, a new parse
 * of the text of the sample d was derived from (the parse is a function of
 * the text: the same lists in the same order), after that sample was freed
 * or reused. False, and d untouched, when cur's list lengths are not d's. */
bool derived_rebind(struct derived *d, const struct info_sample *cur);

/* Metadata of a figure. */
const char *derived_group(enum derived_id id);
const char *derived_json_name(enum derived_id id);

#endif
