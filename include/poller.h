/*
 * poller.h - drives every configured instance from one libevent loop:
 * polls spread over the interval on a tick grid shared by all instances
 * (tickgrid.h: the polls of one tick go out in one wake-up), a persistent
 * connection, one INFO per poll under a hard deadline, exponential backoff
 * with jitter after failures. A poll is rendered (Prometheus text and JSON)
 * and published to the registry when a reader first asks for it, at most
 * once a poll (poller.c, "Rendered when read"). All mutable per-instance state
 * lives here and is touched only by the event-loop thread.
 */
#ifndef REDPULSE_POLLER_H
#define REDPULSE_POLLER_H

#include <event2/event.h>

#include "config.h"
#include "publish.h"

struct poller;

/* Creates a poller with no instance; poller_apply() gives it some. reg must
 * outlive it. Returns NULL (after logging) when libevent's DNS base cannot
 * be created. */
struct poller *poller_new(struct event_base *base, struct registry *reg);
/* Makes the instances of cfg the polled set, matched to the running ones by
 * name: new ones get a slot and their first polls spread over their
 * interval (rounded up onto the grid, whose tick follows the shortest
 * interval); removed ones close their connection and leave the registry (in
 * the same registry_set, so a scrape sees the old set or the new one);
 * unchanged ones keep their connection, previous sample and counters; a
 * change of connection settings (address, credentials, TLS, reply cap)
 * drops the connection and the previous sample, other changes keep both.
 * cfg must stay alive until the next poller_apply or poller_free. Loop
 * thread only. */
void poller_apply(struct poller *p, const struct config *cfg);
/* Calls fn(arg) on the loop thread whenever the number of instances up, the
 * total, or the first-round flag changes (for systemd STATUS= and READY=1). */
void poller_on_change(struct poller *p, void (*fn)(void *arg), void *arg);
/* Instances whose last poll succeeded, instances, and whether every instance
 * has finished at least one poll since it was added. */
void poller_status(const struct poller *p, size_t *up, size_t *total, bool *round_done);
/* Closes every connection and frees all state; no callbacks run after. */
void poller_free(struct poller *p);

/* Appends redpulse_poll_delay_seconds (a histogram): how late every poll since
 * start began after its scheduled time (its grid time), over all instances;
 * and redpulse_renders_total. Thread-safe. */
struct buf;
void poller_render_self(struct buf *b);
/* hold: readers take what is published without asking the loop (nor
 * waiting for it) until poller_hold_reads(p, false); readers waiting are
 * released. For when the loop thread waits on the HTTP threads: a reload
 * of the HTTP settings, the stop. Any thread. */
void poller_hold_reads(struct poller *p, bool hold);

/* The INFO sections requested in one command (Redis >= 7.0 takes several;
 * older servers get "INFO all" after their first syntax error), commandstats
 * only every commandstats_interval, and "latencystats" with it every
 * latencystats_interval. latencystats: the server works out percentiles from
 * a histogram per command for it, the costliest section by far, and they are
 * cumulative since start, so minutes apart lose nothing. commandstats: a
 * formatted line per command called, about 30% of the server's CPU for a
 * poll of these sections (tests/bench/info_cost.py), and what the write/read
 * split is computed from, so a poll faster than 5 s, there for its memory,
 * fork and replication figures, need not pay for a finer split (struct
 * cmd_window); it is also asked at the first poll after a scrape of the
 * instance (registry_note_scrape, registry_get_name), so that every scrape's
 * redis_commands_total is newer than the last one's. cpu and server ride
 * with commandstats: CPU counters whose ratios are as good over its window,
 * and mostly facts fixed for the connection's life (the uptime and a few
 * others, io_threads_active, hz, lag by up to the cadence); they cost the
 * server four system calls a poll (three getrusage, a getpid). In between,
 * the last text of each is parsed with the reply. */
extern const char *const poller_info_sections[];

/* The reconnect delay after `fails` failed polls in a row, before jitter
 * (the poller adds +-20%): none after one (the next tick retries), then 1 s,
 * 2 s, 4 s ... capped at two intervals and at 60 s, never under one
 * interval. Pure. */
uint64_t poller_backoff_ms(unsigned fails, uint64_t interval_ms);

#endif
