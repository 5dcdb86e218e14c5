/*
 * poller.h - drives every configured instance from one libevent loop:
 * per-instance timers spread over the interval, a persistent connection,
 * one INFO per poll under a hard deadline, exponential backoff with jitter
 * after failures. After each poll it renders the instance once and
 * publishes the result to the registry. All mutable per-instance state
 * lives here and is touched only by the event-loop thread.
 */
#ifndef REDPULSE_POLLER_H
#define REDPULSE_POLLER_H

#include <event2/event.h>

#include "config.h"
#include "publish.h"

struct poller;

/* Creates the poller and arms the first poll of every instance, spread over
 * its interval. cfg and reg must outlive the poller; slot i of reg is
 * cfg->instances[i]. Returns NULL (after logging) when libevent's DNS base
 * cannot be created. */
struct poller *poller_new(struct event_base *base, const struct config *cfg, struct registry *reg);
/* Closes every connection and frees all state; no callbacks run after. */
void poller_free(struct poller *p);

/* Appends redpulse_poll_delay_seconds (a histogram): how late every poll since
 * start began after its scheduled time, over all instances. Thread-safe. */
struct buf;
void poller_render_lateness(struct buf *b);

/* The INFO sections requested in one command (Redis >= 7.0 takes several;
 * older servers get "INFO all" after their first syntax error), and
 * "latencystats" with it every latencystats_interval: the server works out
 * percentiles from a histogram per command for it, the costliest section by
 * far, and they are cumulative since start, so minutes apart lose nothing. In
 * between, the last latencystats text is parsed with each reply. */
extern const char *const poller_info_sections[];

#endif
