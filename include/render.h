/*
 * render.h - one instance's poll result -> a frag (Prometheus text cut by
 * family, and JSON). Pure: everything it needs is in render_input. Called
 * once per poll per instance, on the event loop; never by HTTP threads.
 */
#ifndef REDPULSE_RENDER_H
#define REDPULSE_RENDER_H

#include <stdint.h>

#include "advise.h"
#include "buf.h"
#include "collect.h"
#include "config.h"
#include "derive.h"
#include "info.h"
#include "outcome.h"
#include "publish.h"

/* The poller's per-instance counters, as rendered. Times are Unix seconds,
 * 0 when it never happened. */
struct poll_stats {
    uint64_t polls, connects;
    uint64_t errors[OUTCOME_COUNT];
    double last_poll_ts, last_success_ts, last_duration_s;
    double last_poll_mono; /* the last poll's end on the monotonic clock, seconds:
                            * the alert rules measure their durations with it */
    enum outcome last_outcome;
    char last_error[200]; /* human detail of the last failure, "" when ok */
    size_t reply_bytes;
    bool polled;          /* at least one poll has ended */
    uint64_t restarts, resets; /* detected by derive() */
    double lateness_s;    /* last poll: actual start minus scheduled start */
    uint64_t nested_dropped; /* nested INFO lines over max_nested_entries, all polls */
    uint64_t latency_dropped; /* LATENCY LATEST entries left out, all replies */
};

struct render_input {
    const struct instance_cfg *cfg;
    const char *label_prefix;        /* from prom_label_prefix() */
    const struct info_sample *sample; /* NULL when the last poll failed */
    const struct poll_stats *st;
    struct rstr *info_text;          /* raw INFO the frag keeps for JSON: the
                                      * current one, or the last good one */
    const struct derived *derived;   /* with sample; NULL when the poll failed */
    const struct config_values *config;   /* may be NULL */
    const struct latency_values *latency; /* may be NULL */
    struct buf *scratch;             /* reused between calls when given (may be NULL) */
    const struct advisor *advice;    /* findings; NULL when advice is off */
};

/* Renders a new frag (refs = 1); it takes its own reference to info_text. */
struct frag *render_frag(const struct render_input *in);
/* Appends f's full JSON object to b, rendering the INFO sections from the
 * kept raw text (parsed again here: safe on any thread). */
void frag_append_json(const struct frag *f, struct buf *b);

#endif
