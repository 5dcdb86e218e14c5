/*
 * tickgrid.c - one timer for all polls. Each poll is due on a grid of ticks
 * shared by every instance, so the polls whose slots fall in the same tick
 * go out in one wake-up of the loop instead of one wake-up each; the spread
 * over the interval stays, at the granularity of a tick.
 *
 * Why one timer and a heap rather than libevent's per-instance timers with
 * their due times rounded up to the grid (measured, Release build, one
 * redis-server, tests/bench/wakeups.py, loop context switches per poll;
 * 2.7 at 200 instances at 1 s and 1.33 at 1,000 before the grid): on
 * libevent's coarse clock both do the same, 1.82 and 0.42 rounded timers,
 * 1.78-1.88 and 0.39-0.41 here; but a libevent timer's deadline is its
 * clock's time at arming plus the delay given, so per-instance timers aimed
 * at one grid time from different callbacks land apart and, on the precise
 * clock, fire in different wake-ups (not measured: the reason alone). Here
 * the pass that wakes runs every entry due in its tick whatever the clocks
 * did, and with libevent's precise clock it was 1.47-1.54 and 0.38.
 *
 * The timer is the grid's own timerfd, set to the next due time (absolute,
 * CLOCK_MONOTONIC) when that changes: once a tick with something due. A
 * libevent timer on the precise clock costs a timerfd_settime before every
 * epoll_wait instead, two a lone poll; on the coarse clock (kept for the
 * loop's other timers, service.c) it woke early, 2.87 epoll_wait a poll
 * against 2.0 (strace -c, 10 connections at 100 ms). Measured with the
 * timerfd (wakeups.py): 1.49-1.50 loop context switches a poll at 200
 * instances at 1 s, 0.31-0.35 at 1,000, as with the precise clock. Without a
 * descriptor to spare, a libevent timer does the job.
 */
#include "tickgrid.h"

#include <stdbool.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "util.h"

/* A heap slot carries its entry's due time: the comparisons of a sift stay
 * in the heap's array and touch only the entries moved (the entries are in
 * the targets, scattered and cold between their polls; a heap of 10,000
 * has 14 levels). Measured: rescheduling the earliest of 10,000 entries
 * inside 4 KB structures, 1 MB of other memory written between two, took
 * 1.64-1.72 µs with the due times read through the entries, 1.02-1.17 µs
 * with them in the slots (Release, three runs each, an ad hoc program). */
struct slot {
    uint64_t due_us;
    struct grid_entry *e;
};

struct tickgrid {
    struct event *timer;
    int tfd;            /* the grid's own timerfd; -1: a libevent timer */
    uint64_t epoch_us, tick_us;
    uint64_t slack_us;  /* a wake-up this early still runs the tick */
    uint64_t armed_us;  /* due time the timer is set for; 0: not set;
                         * FIRED: it went off, not set again yet */
    bool firing;        /* in the fire pass: re-arm once at its end */
    struct slot *heap;
    size_t n, cap;
    grid_fire_fn fire;
    void *arg;
};

/* 10 ms, or a twentieth of the shortest interval when that is less (at
 * least 1 ms, epoll_wait's resolution). What it trades: a bigger tick puts
 * more polls in one wake-up, but more of them on a server at once and each
 * up to a tick late. At 10 ms, 1,000 polls a second are ten a wake-up, where
 * the wake-up is already a small part of a poll's cost, and 200 names on one
 * server at 1 s see two INFOs together, never more. Twenty ticks an
 * interval at least keep the spread (a tick holds at most 5% of an
 * interval's slots); a hundred were measured to cost more than they gave
 * (tests/bench/wakeups.py, 100 instances at 100 ms: a 1 ms tick held one
 * poll, 1.80 loop context switches a poll against 1.23 with the timer per
 * instance before the grid; the 5 ms tick holds five, 0.70). The tick does not follow the instance count:
 * a fixed rule keeps running instances in their slots when reload or
 * discovery adds or removes others. */
uint64_t tickgrid_choose_tick_us(uint64_t shortest_interval_ms)
{
    uint64_t us = shortest_interval_ms * 50; /* ms * 1000 / 20 */
    if (us < 1000)
        us = 1000;
    if (us > 10000)
        us = 10000;
    return us;
}

static void set_slack(struct tickgrid *g)
{
    /* a wake-up a little early (a coarse clock's step, or the 1 ms of
     * epoll_wait) still runs its tick, with lateness 0, rather than costing
     * one more wake-up; half a tick never reaches the next one */
    g->slack_us = g->tick_us / 2;
}

static void place(struct tickgrid *g, size_t i, struct slot x)
{
    g->heap[i] = x;
    x.e->pos = i + 1;
}

static void sift_up(struct tickgrid *g, size_t i)
{
    struct slot x = g->heap[i];
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (x.due_us >= g->heap[up].due_us)
            break;
        place(g, i, g->heap[up]);
        i = up;
    }
    place(g, i, x);
}

static void sift_down(struct tickgrid *g, size_t i)
{
    struct slot x = g->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= g->n)
            break;
        if (c + 1 < g->n && g->heap[c + 1].due_us < g->heap[c].due_us)
            c++;
        if (g->heap[c].due_us >= x.due_us)
            break;
        place(g, i, g->heap[c]);
        i = c;
    }
    place(g, i, x);
}

#define FIRED UINT64_MAX

/* Sets the timer to go off at due (now_mono_us's clock), or disarms it (0).
 * Setting the timerfd (absolute, CLOCK_MONOTONIC) clears an expiry not
 * read (the kernel zeroes the count): no read() is needed, and a timer that
 * went off is set again or disarmed before the loop waits (FIRED), or epoll
 * would report it again. */
static void timer_set(struct tickgrid *g, uint64_t due)
{
    g->armed_us = due;
    if (g->tfd >= 0) {
        struct itimerspec its = {{0, 0}, {(time_t)(due / 1000000), (long)(due % 1000000) * 1000}};
        timerfd_settime(g->tfd, TFD_TIMER_ABSTIME, &its, NULL); /* fails only on bad arguments */
    } else if (!due) {
        evtimer_del(g->timer);
    } else {
        uint64_t now = now_mono_us();
        uint64_t d = due > now ? due - now : 0;
        struct timeval tv = {(time_t)(d / 1000000), (suseconds_t)(d % 1000000)};
        evtimer_add(g->timer, &tv);
    }
}

static void rearm(struct tickgrid *g)
{
    if (g->firing)
        return;
    uint64_t due = g->n ? g->heap[0].due_us : 0;
    if (due != g->armed_us)
        timer_set(g, due);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct tickgrid *g = arg;
    g->armed_us = FIRED; /* set again or disarmed at the end of the pass */
    g->firing = true;
    uint64_t now = now_mono_us();
    while (g->n && g->heap[0].due_us <= now + g->slack_us) {
        struct grid_entry *e = g->heap[0].e;
        tickgrid_del(g, e);
        g->fire(e, now, g->arg);
    }
    g->firing = false;
    rearm(g);
}

struct tickgrid *tickgrid_new(struct event_base *base, uint64_t tick_us, grid_fire_fn fire, void *arg)
{
    struct tickgrid *g = xcalloc(1, sizeof *g);
    g->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (g->tfd >= 0) {
        g->timer = event_new(base, g->tfd, EV_READ | EV_PERSIST, on_timer, g);
        if (!g->timer || event_add(g->timer, NULL) != 0) { /* epoll's limit */
            if (g->timer)
                event_free(g->timer);
            close(g->tfd);
            g->tfd = -1;
        }
    }
    if (g->tfd < 0) /* out of descriptors: libevent's timer does the same job */
        g->timer = evtimer_new(base, on_timer, g);
    if (!g->timer)
        abort(); /* libevent fails only out of memory */
    g->epoch_us = now_mono_us();
    g->tick_us = tick_us ? tick_us : 1;
    set_slack(g);
    g->fire = fire;
    g->arg = arg;
    return g;
}

void tickgrid_free(struct tickgrid *g)
{
    if (!g)
        return;
    event_free(g->timer);
    if (g->tfd >= 0)
        close(g->tfd);
    free(g->heap);
    free(g);
}

void tickgrid_set_tick(struct tickgrid *g, uint64_t tick_us)
{
    g->tick_us = tick_us ? tick_us : 1;
    set_slack(g);
}

uint64_t tickgrid_tick_us(const struct tickgrid *g) { return g->tick_us; }

uint64_t tickgrid_ceil(const struct tickgrid *g, uint64_t t_us)
{
    if (t_us <= g->epoch_us)
        return g->epoch_us;
    return g->epoch_us + (t_us - g->epoch_us + g->tick_us - 1) / g->tick_us * g->tick_us;
}

void tickgrid_add(struct tickgrid *g, struct grid_entry *e, uint64_t t_us)
{
    tickgrid_del(g, e);
    e->due_us = tickgrid_ceil(g, t_us);
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->heap = xrealloc(g->heap, g->cap * sizeof *g->heap);
    }
    place(g, g->n++, (struct slot){e->due_us, e});
    sift_up(g, g->n - 1);
    rearm(g);
}

void tickgrid_del(struct tickgrid *g, struct grid_entry *e)
{
    if (!e->pos)
        return;
    size_t i = e->pos - 1;
    e->pos = 0;
    struct slot last = g->heap[--g->n];
    if (i < g->n) {
        place(g, i, last);
        sift_up(g, i);
        sift_down(g, last.e->pos - 1);
    }
    rearm(g);
}

size_t tickgrid_count(const struct tickgrid *g) { return g->n; }
