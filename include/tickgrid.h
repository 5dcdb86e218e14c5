/*
 * tickgrid.h - the poller's clock: every due time lies on one grid of
 * ticks (a common epoch, a tick of a few milliseconds), and one timer per
 * grid (its own timerfd, watched by libevent) wakes the loop once per tick
 * that has something due, which then runs everything due in that tick.
 * Entries are kept in a binary min-heap by due time. Loop thread only.
 */
#ifndef REDPULSE_TICKGRID_H
#define REDPULSE_TICKGRID_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

/* One scheduled thing, embedded in its owner. pos is managed by the grid
 * (0: not queued). */
struct grid_entry {
    uint64_t due_us; /* on the grid, monotonic (now_mono_us) */
    size_t pos;      /* heap index + 1 */
};

struct tickgrid;

/* fire(e, now_us, arg) runs for each entry whose tick has come, with the
 * entry already unqueued (it may queue itself again). */
typedef void (*grid_fire_fn)(struct grid_entry *e, uint64_t now_us, void *arg);

/* A grid whose epoch is now and whose tick is tick_us (>= 1). Never NULL. */
struct tickgrid *tickgrid_new(struct event_base *base, uint64_t tick_us, grid_fire_fn fire, void *arg);
/* Unqueues nothing: the owners must have removed their entries (or stop
 * using them). Safe on NULL. */
void tickgrid_free(struct tickgrid *g);

/* The tick for a set of instances whose shortest interval is
 * shortest_interval_ms: 10 ms, or a twentieth of it when less, at least
 * 1 ms (why: see tickgrid.c). Pure. */
uint64_t tickgrid_choose_tick_us(uint64_t shortest_interval_ms);
/* Changes the tick; queued entries keep their due times, later ones fall on
 * the new grid (same epoch). */
void tickgrid_set_tick(struct tickgrid *g, uint64_t tick_us);
uint64_t tickgrid_tick_us(const struct tickgrid *g);
/* The first grid time at or after t_us. */
uint64_t tickgrid_ceil(const struct tickgrid *g, uint64_t t_us);

/* Queues e for the first grid time at or after t_us (its due_us says
 * which); re-queues it when it was queued. */
void tickgrid_add(struct tickgrid *g, struct grid_entry *e, uint64_t t_us);
/* Unqueues e; nothing when it is not queued. */
void tickgrid_del(struct tickgrid *g, struct grid_entry *e);
/* Entries queued. */
size_t tickgrid_count(const struct tickgrid *g);

#endif
