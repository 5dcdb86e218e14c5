/* test_poller.c - the pure parts of the poller: the reconnect backoff
 * schedule (1, 2, 4 s ... capped at two intervals and at 60 s), and the
 * tick grid on a real event loop. The schedule as it happens, with jitter, at
 * a fake peer: integration_pollstates; the grid's spread at a real server:
 * integration_ticks. */
#include <check.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "poller.h"
#include "testutil.h"
#include "tickgrid.h"
#include "util.h"

START_TEST(backoff_schedule)
{
    /* one failure: the next tick retries */
    ck_assert_uint_eq(poller_backoff_ms(0, 1000), 0);
    ck_assert_uint_eq(poller_backoff_ms(1, 1000), 0);
    /* then doubling from a second, up to two intervals */
    ck_assert_uint_eq(poller_backoff_ms(2, 1000), 1000);
    ck_assert_uint_eq(poller_backoff_ms(3, 1000), 2000);
    ck_assert_uint_eq(poller_backoff_ms(4, 1000), 2000);
    ck_assert_uint_eq(poller_backoff_ms(1000, 1000), 2000);
    ck_assert_uint_eq(poller_backoff_ms(2, 5000), 1000);
    ck_assert_uint_eq(poller_backoff_ms(4, 5000), 4000);
    ck_assert_uint_eq(poller_backoff_ms(5, 5000), 8000);
    ck_assert_uint_eq(poller_backoff_ms(6, 5000), 10000);
    ck_assert_uint_eq(poller_backoff_ms(40, 5000), 10000);
}
END_TEST

START_TEST(backoff_caps_at_60s)
{
    /* 40 s interval: two intervals would be 80 s; 60 s is the cap */
    uint64_t prev = 0;
    for (unsigned f = 2; f < 10; f++) {
        uint64_t ms = poller_backoff_ms(f, 40000);
        ck_assert_uint_ge(ms, prev); /* never shrinks while failing */
        prev = ms;
    }
    ck_assert_uint_eq(poller_backoff_ms(7, 40000), 32000);
    ck_assert_uint_eq(poller_backoff_ms(8, 40000), 60000);
    ck_assert_uint_eq(poller_backoff_ms(40, 40000), 60000);
    /* 30 s: two intervals are exactly 60 s */
    ck_assert_uint_eq(poller_backoff_ms(9, 30000), 60000);
    /* an interval over 60 s: never under one interval */
    ck_assert_uint_eq(poller_backoff_ms(20, 120000), 120000);
    ck_assert_uint_eq(poller_backoff_ms(2, 120000), 1000);
}
END_TEST

START_TEST(tick_choice)
{
    ck_assert_uint_eq(tickgrid_choose_tick_us(1000), 10000);  /* 1 s: 10 ms */
    ck_assert_uint_eq(tickgrid_choose_tick_us(200), 10000);
    ck_assert_uint_eq(tickgrid_choose_tick_us(100), 5000);    /* a twentieth */
    ck_assert_uint_eq(tickgrid_choose_tick_us(60000), 10000); /* at most 10 ms */
    ck_assert_uint_eq(tickgrid_choose_tick_us(10), 1000);     /* at least 1 ms */
}
END_TEST

struct fired {
    struct grid_entry *e[8];
    uint64_t at[8];
    int n;
};

static void on_fire(struct grid_entry *e, uint64_t now, void *arg)
{
    struct fired *f = arg;
    ck_assert_int_lt(f->n, 8);
    f->e[f->n] = e;
    f->at[f->n++] = now;
}

static void guard_cb(evutil_socket_t fd, short what, void *arg) { (void)fd, (void)what, (void)arg; }

/* no_fd: the grid is made with no descriptor to spare (its libevent timer) */
static void grid_run(bool no_fd)
{
    struct event_base *base = event_base_new();
    struct fired f = {.n = 0};
    struct rlimit was;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &was), 0);
    if (no_fd) { /* the lowest free descriptor is the limit: none to spare */
        int next = open("/dev/null", O_RDONLY);
        ck_assert_int_ge(next, 0);
        close(next);
        struct rlimit none = {(rlim_t)next, was.rlim_max};
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &none), 0);
        ck_assert_int_lt(open("/dev/null", O_RDONLY), 0); /* so timerfd_create fails too */
    }
    struct tickgrid *g = tickgrid_new(base, 10000, on_fire, &f);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &was), 0);
    uint64_t now = now_mono_us();
    uint64_t tick = tickgrid_ceil(g, now + 30000); /* a grid time 30-40 ms away */
    ck_assert_uint_eq(tickgrid_ceil(g, tick), tick);
    ck_assert_uint_eq(tickgrid_ceil(g, tick - 9999), tick);
    ck_assert_uint_eq(tickgrid_ceil(g, tick + 1), tick + 10000);
    struct grid_entry a = {0}, b = {0}, c = {0}, d = {0}, gone = {0};
    tickgrid_add(g, &d, tick + 20000);  /* two ticks later */
    tickgrid_add(g, &a, tick - 9000);   /* three slots of one tick */
    tickgrid_add(g, &b, tick);
    tickgrid_add(g, &c, tick - 1);
    tickgrid_add(g, &gone, tick - 5000);
    tickgrid_del(g, &gone);             /* never fires */
    tickgrid_add(g, &c, tick - 2);      /* re-queued, not twice */
    ck_assert_uint_eq(tickgrid_count(g), 4);
    ck_assert_uint_eq(a.due_us, tick);
    uint64_t give_up = now + 5000000;
    while (f.n < 4 && now_mono_us() < give_up)
        event_base_loop(base, EVLOOP_ONCE);
    ck_assert_int_eq(f.n, 4);
    /* the three of one tick in one pass (one wake-up, the same now), the
     * fourth two ticks later, none early by more than the slack */
    ck_assert_uint_eq(f.at[0], f.at[1]);
    ck_assert_uint_eq(f.at[1], f.at[2]);
    ck_assert_ptr_eq(f.e[3], &d);
    ck_assert_uint_gt(f.at[3], f.at[0]);
    ck_assert_uint_ge(f.at[0] + 5000, tick);
    ck_assert_uint_ge(f.at[3] + 5000, tick + 20000);
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_ne(f.e[i], &gone);
    ck_assert_uint_eq(tickgrid_count(g), 0);
    /* the timer that fired last is not set again: it does not wake the
     * loop (a timerfd left expired would, at once and for ever) */
    struct event *guard = evtimer_new(base, guard_cb, NULL);
    struct timeval tv = {0, 30000};
    evtimer_add(guard, &tv);
    uint64_t t0 = now_mono_us();
    event_base_loop(base, EVLOOP_ONCE);
    ck_assert_uint_ge(now_mono_us() - t0, 20000);
    ck_assert_int_eq(f.n, 4);
    event_free(guard);
    tickgrid_free(g);
    event_base_free(base);
}

START_TEST(grid_groups_a_tick)
{
    grid_run(false);
}
END_TEST

START_TEST(grid_without_a_descriptor_to_spare)
{
    grid_run(true);
}
END_TEST

enum { MANY = 2000 };

struct order {
    struct grid_entry *base;
    int fired[MANY];
    uint64_t last_due;
    int n;
    bool in_order;
};

static void on_fire_many(struct grid_entry *e, uint64_t now, void *arg)
{
    (void)now;
    struct order *o = arg;
    o->in_order &= e->due_us >= o->last_due;
    o->last_due = e->due_us;
    o->fired[e - o->base]++;
    o->n++;
}

/* Many entries, removed from and re-queued anywhere in the heap: every one
 * still queued fires once, in due order, and none removed fires. */
START_TEST(grid_heap_keeps_order)
{
    struct event_base *base = event_base_new();
    static struct grid_entry e[MANY];
    memset(e, 0, sizeof e);
    static struct order o;
    memset(&o, 0, sizeof o);
    o.base = e;
    o.in_order = true;
    struct tickgrid *g = tickgrid_new(base, 1, on_fire_many, &o); /* 1 µs ticks: due times kept as given */
    uint64_t now = now_mono_us();
    srand(7);
    bool queued[MANY];
    for (int i = 0; i < MANY; i++) {
        tickgrid_add(g, &e[i], now + 20000 + (uint64_t)(rand() % 60000));
        queued[i] = true;
    }
    for (int k = 0; k < MANY / 3; k++) { /* out of the middle, the top, anywhere */
        int i = rand() % MANY;
        tickgrid_del(g, &e[i]);
        queued[i] = false;
    }
    for (int k = 0; k < MANY / 4; k++) { /* moved, or back in */
        int i = rand() % MANY;
        tickgrid_add(g, &e[i], now + 20000 + (uint64_t)(rand() % 60000));
        queued[i] = true;
    }
    int want = 0;
    for (int i = 0; i < MANY; i++)
        want += queued[i];
    ck_assert_uint_eq(tickgrid_count(g), (size_t)want);
    uint64_t give_up = now + 5000000;
    while (o.n < want && now_mono_us() < give_up)
        event_base_loop(base, EVLOOP_ONCE);
    ck_assert_int_eq(o.n, want);
    ck_assert(o.in_order);
    for (int i = 0; i < MANY; i++)
        ck_assert_int_eq(o.fired[i], queued[i] ? 1 : 0);
    tickgrid_free(g);
    event_base_free(base);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("poller");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, backoff_schedule);
    tcase_add_test(tc, backoff_caps_at_60s);
    tcase_add_test(tc, tick_choice);
    tcase_add_test(tc, grid_groups_a_tick);
    tcase_add_test(tc, grid_without_a_descriptor_to_spare);
    tcase_add_test(tc, grid_heap_keeps_order);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
