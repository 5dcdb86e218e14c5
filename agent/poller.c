/*
 * poller.c - the event loop's work: when each instance is polled, what a
 * poll sends, how it ends, and what is published afterwards. Like
 * node_exporter's collector wrapper, the poller (not the parser or the
 * renderer) records duration, outcome and up for every target.
 *
 * A poll: [connect -> AUTH -> CLIENT SETNAME, pipelined] -> INFO <sections>.
 * The deadline covers all of it. A failed poll closes the connection; the
 * next connect waits out an exponential backoff with jitter, counted in
 * ticks so a down instance costs one slot per interval. Every poll's due
 * time is its slot rounded up onto the tick grid (tickgrid.c), shared by all
 * instances: one wake-up sends all the polls of a tick.
 */
#include "poller.h"

#include <errno.h>
#include <event2/dns.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "advise.h"
#include "alerts.h"
#include "cmdclass.h"
#include "collect.h"
#include "conn.h"
#include "derive.h"
#include "info.h"
#include "log.h"
#include "prom.h"
#include "render.h"
#include "tickgrid.h"
#include "util.h"

const char *const poller_info_sections[] = {
    "server", "clients", "memory", "persistence", "stats", "replication", "cpu",
    "commandstats", "errorstats", "cluster", "keyspace", NULL};

/* The sections asked for at a cadence rather than with every poll (Redis
 * >= 7.0; see poller.h): latencystats at its own; commandstats, and with it
 * cpu and server. The last text of each is kept and appended to the replies
 * that do not ask for it, in this order. */
enum kept_sec { K_LATENCYSTATS, K_SERVER, K_CPU, K_COMMANDSTATS, N_KEPT };
static const char *const kept_names[N_KEPT] = {"latencystats", "server", "cpu", "commandstats"};

/* Whether sec rides with commandstats (kept_names from K_SERVER on). */
static bool with_cmdstats(const char *sec)
{
    for (int k = K_SERVER; k < N_KEPT; k++)
        if (strcmp(sec, kept_names[k]) == 0)
            return true;
    return false;
}

/* Poll lateness over all instances, for redpulse_poll_delay_seconds. */
static const double late_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
#define N_LATE (sizeof late_bounds / sizeof late_bounds[0])
static atomic_ullong late_count[N_LATE + 1], late_total;
static atomic_ullong late_sum_us;

static void record_lateness(double s)
{
    size_t i = 0;
    while (i < N_LATE && s > late_bounds[i])
        i++;
    atomic_fetch_add(&late_count[i], 1);
    atomic_fetch_add(&late_total, 1);
    atomic_fetch_add(&late_sum_us, (unsigned long long)(s * 1e6));
}

/* Instances rendered (Prometheus text and JSON), for redpulse_renders_total. */
static atomic_ullong renders_total;

void poller_render_self(struct buf *b)
{
    buf_puts(b, "# HELP redpulse_poll_delay_seconds How late polls started after their scheduled time, all instances\n"
                "# TYPE redpulse_poll_delay_seconds histogram\n");
    unsigned long long cum = 0;
    for (size_t i = 0; i <= N_LATE; i++) {
        cum += atomic_load(&late_count[i]);
        if (i < N_LATE) {
            buf_puts(b, "redpulse_poll_delay_seconds_bucket{le=\"");
            buf_put_double(b, late_bounds[i]);
            buf_printf(b, "\"} %llu\n", cum);
        } else {
            buf_printf(b, "redpulse_poll_delay_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
        }
    }
    buf_puts(b, "redpulse_poll_delay_seconds_sum ");
    buf_put_double(b, (double)atomic_load(&late_sum_us) / 1e6);
    buf_printf(b, "\nredpulse_poll_delay_seconds_count %llu\n", atomic_load(&late_total));
    buf_puts(b, "# HELP redpulse_renders_total Polls rendered into Prometheus text and JSON: when first read, "
                "at most once a poll, all instances\n"
                "# TYPE redpulse_renders_total counter\n"
                "redpulse_renders_total ");
    buf_put_u64(b, atomic_load(&renders_total));
    buf_putc(b, '\n');
}

#define LOG_REPEAT_US (300 * 1000000ull) /* a failure that goes on is warned about every 5 min */

enum pend { P_AUTH, P_SETNAME, P_CMDINFO, P_CONFIG, P_LATENCY, P_INFO };
#define MAX_PEND (8 + CFGP_COUNT)
#define MAX_ASK 64 /* command names per COMMAND INFO */

/* One connection and what was learnt on it. Freed when the connection
 * drops: the next one may reach another server (failover, upgrade), so
 * nothing here survives a reconnect. */
struct session {
    struct conn *conn;
    enum pend pend[MAX_PEND]; /* replies expected, in order */
    int npend;
    bool info_all;            /* server rejected multi-section INFO */
    struct cmdclass_map *classes; /* what the server said about command flags */
    bool command_refused;     /* or the map is full: COMMAND INFO is not asked any more */
    char **asking;            /* [MAX_ASK] names in the COMMAND INFO in flight (allocated while asking) */
    size_t n_asking;
    /* the command names of the target's last sample may hold some that
     * classes has not seen: set by a new session and by a poll that asked
     * for commandstats (other polls carry the kept section: the same names) */
    bool names_unchecked;
    bool config_refused, latency_refused;
};

/* One monitored Redis, keyed by its name: schedule, backoff, previous
 * sample, counters and its published slot. Survives reconnects, and
 * reloads that leave its settings alone (poller_apply). */
struct target {
    struct poller *p;
    size_t idx;            /* its slot in the registry's current table */
    const struct instance_cfg *cfg; /* in the generation last applied */
    char *prefix;          /* rendered label prefix */
    SSL_CTX *ssl;          /* rediss:// only */
    struct grid_entry slot; /* its next poll on the poller's tick grid */
    struct event *deadline;
    struct session *s;     /* NULL while not connected */
    bool polling;
    uint64_t next_due_us;  /* monotonic, its slot before rounding up to the grid */
    uint64_t poll_start_us;
    uint64_t retry_at_us;  /* no connect before this (backoff) */
    unsigned fails;        /* consecutive failed polls */
    uint64_t warned_us;    /* when a failure was last logged as a warning */
    unsigned repeats;      /* the same failure since, logged at debug level */
    bool streak_warned;    /* a failure since the last success was a warning */
    struct poll_stats st;
    struct info_sample *last; /* compact copy of the latest good sample */
    uint64_t last_us;         /* monotonic time its reply arrived */
    struct rstr *info_text;   /* raw text of the last good INFO, for the JSON API */
    uint64_t next_latstats_us; /* when INFO asks for latencystats again; 0: next poll */
    bool asked_latstats;       /* the INFO in flight asks for it */
    uint64_t next_cmdstats_us; /* the same for commandstats (and cpu and server) */
    bool asked_cmdstats;
    unsigned long cmds_reads;  /* registry_scrapes() when commandstats were last asked for */
    struct rstr *kept[N_KEPT]; /* the last text of each section, or NULL */
    struct cmd_window cw;      /* the figures from the last commandstats and cpu */
    /* slower cadences */
    uint64_t next_config_us, next_latency_us;
    struct config_values config;
    struct latency_values *latency; /* allocated when LATENCY LATEST first answers */
    struct advisor *adv;            /* write-tuning findings; NULL when advice is off */
    struct alert_inst *alerts; /* alert rule states (owned by alerts.c) */
    /* the last poll, not rendered yet (its registry slot has the poll before):
     * a good one, whose text is info_text */
    bool pending;
    struct derived pend_d; /* its figures; names rebound at the render */
};

struct poller {
    struct event_base *base;
    struct evdns_base *dns;
    struct registry *reg;
    struct tickgrid *grid; /* every poll's due time, one timer */
    struct target **t;  /* in configuration order: t[i]->idx == i */
    size_t n;
    size_t n_up;        /* targets whose last poll succeeded */
    size_t n_polled;    /* targets with at least one finished poll */
    void (*on_change)(void *arg); /* up/total or first round changed */
    void *on_change_arg;
    bool round_done;    /* every target has finished a poll */
    struct buf scratch; /* render_frag's working buffer, reused by every poll */
    /* every parse's buffers, reused (parse_text): two, for a poll whose
     * render parses the text whole while the poll's sample is in use */
    struct info_sample *parsed[2];
    /* rendered when read: the readers' requests and the loop's answers */
    pthread_t loop_thread;
    struct event *render_ev; /* the render pass, in steps */
    /* a reader's request wakes the loop through this eventfd: the loop's
     * only wake-up from another thread, so libevent runs without its
     * locks (evthread_use_pthreads cost a mutex pair on every event
     * operation: 1.5% of the agent's time in perf, 10 connections at
     * 100 ms) */
    int wake_fd;
    struct event *wake_ev;
    size_t render_pos;       /* where the pass goes on */
    size_t pass_left;        /* targets the pass has still to visit; 0: none running */
    uint64_t pass_gen;       /* the last request the running pass answers */
    atomic_size_t n_pending; /* targets with a poll not rendered */
    pthread_mutex_t rlock;   /* guards the three below */
    pthread_cond_t rdone;
    uint64_t req_gen, done_gen; /* requests made; the last one answered */
    bool held;                  /* the loop cannot answer: readers take what is there */
    /* the poll's INFO, encoded once: [0] the sections but commandstats, cpu
     * and server, [+1] with those three, [+2] with latencystats, [4] INFO
     * all (servers refusing several sections) */
    char *info_cmd[5];
    int info_cmd_len[5];
};

static void arm_deadline(struct target *t)
{
    struct timeval tv = {(time_t)(t->cfg->timeout_ms / 1000), (suseconds_t)(t->cfg->timeout_ms % 1000) * 1000};
    evtimer_add(t->deadline, &tv);
}

static enum cmd_class classify(void *ctx, const char *cmd)
{
    struct target *t = ctx;
    return cmdclass_map_get(t->s ? t->s->classes : NULL, cmd);
}

/*
 * Rendered when read. A poll's sample becomes Prometheus text and JSON only
 * when a reader (/metrics, /scrape, the JSON API) asks for it, at most once
 * a poll: the render was a quarter of the agent's CPU a poll (measured: the
 * bench's head-to-head setup, 10 connections at 100 ms, 6 interleaved 8 s
 * rounds: 272 µs a poll with it, 205 without), and Prometheus usually scrapes
 * less often than the write path wants to be polled. The poll's figures
 * wait in the target, and its INFO text is the one the target keeps for the
 * JSON API: the render parses it again (the full sample, about 20 KB, would
 * have to wait in its place). The published frag is moved on to that text
 * at once (registry_set_info): one copy an instance, not two (the bench's
 * RSS slope: 33.5 KB an instance against 35.8). The render reads the target's own
 * state with the figures, all on this thread. A reader that finds polls waiting
 * asks the loop for a render pass and waits for it (a timer of 0,
 * in steps of at most RENDER_STEP_US so that polls due go out between
 * them), or for RENDER_WAIT_S and then takes what is there; so does a
 * reader while the loop waits on the HTTP threads itself (a reload of the
 * HTTP settings, the stop: poller_hold_reads). Rendered at
 * once: the first poll of a target, failed polls (up goes to 0 now), the
 * first good one after them, a new baseline (publish), and what is waiting
 * when a settings change reconnects or changes the nesting bound
 * (target_update). The alert rules and the advisor
 * still see every poll as it ends.
 */
#define RENDER_STEP_US 5000
#define RENDER_WAIT_S 2

static void render_now(struct target *t, const struct info_sample *s, const struct derived *d)
{
    struct render_input in = {t->cfg, t->prefix, s, &t->st, t->info_text, d, &t->config, t->latency, &t->p->scratch, t->adv};
    registry_publish(t->p->reg, t->idx, render_frag(&in));
    atomic_fetch_add(&renders_total, 1);
}

static void drop_pending(struct target *t)
{
    if (!t->pending)
        return;
    derived_clear(&t->pend_d);
    t->pending = false;
    atomic_fetch_sub(&t->p->n_pending, 1);
}

/* Past this, the buffers of the parse (a few tens of KB for a usual reply)
 * are let go after use rather than kept for the next; below it they only
 * grow, so a big reply (the nested lists are bounded, not the text) can
 * leave up to this much held in each of the two kept (parsed[]) until the
 * agent stops. */
#define PARSED_KEEP_BYTES (1u << 20)

/* text parsed into the poller's reused sample: one parse at a time (loop
 * thread), handed back with parsed_done. Reusing the buffers: no malloc and
 * free of a dozen blocks a poll (5% of the agent's CPU in perf at 100 polls
 * a second), and the parse writes to memory its last run left in the
 * caches. full: every line, for a render; otherwise the table's fields and
 * the nested lists (info_parse_poll), all a poll's readers look at: the
 * parse is four fifths of the instructions the loop runs a poll
 * (tests/bench/instructions.py), and a seventh of a reply's lines are
 * neither (32 of 223 in the Redis 7.0.15 capture). */
static struct info_sample *parse_text(struct target *t, const struct rstr *text, bool full)
{
    struct poller *p = t->p;
    int k = p->parsed[0] ? 0 : 1;
    struct info_sample *s = (full ? info_parse_again : info_parse_poll)(p->parsed[k], text->data, text->len,
                                                                         t->cfg->max_nested_entries);
    p->parsed[k] = NULL;
    return s;
}

static void parsed_done(struct poller *p, struct info_sample *s)
{
    int k = p->parsed[0] ? 1 : 0;
    if (p->parsed[k] || info_sample_heap(s) > PARSED_KEEP_BYTES)
        info_sample_free(s);
    else
        p->parsed[k] = s;
}

static void flush_pending(struct target *t)
{
    if (!t->pending)
        return;
    struct info_sample *s = parse_text(t, t->info_text, true);
    render_now(t, s, derived_rebind(&t->pend_d, s) ? &t->pend_d : NULL);
    parsed_done(t->p, s);
    drop_pending(t);
}

/* The end of every poll, failed ones too (the down rule). Takes d (left
 * empty) when the render waits for a reader. Rendered at once besides the
 * first poll and failed ones: the first good poll after a failure, and a
 * new baseline (a restart, another server, counters reset), so that the
 * published head is never a failure's or another run's while the JSON
 * API's sections are already this poll's text (registry_set_info). */
static void publish(struct target *t, const struct info_sample *s, struct derived *d, bool was_up)
{
    alerts_after_poll(&t->alerts, t->cfg, &t->st, s, d, &t->config);
    drop_pending(t);
    if (!s) {
        render_now(t, NULL, d);
        return;
    }
    if (!was_up || d->event != DERIVE_OK) { /* !was_up: the first poll too */
        /* s has only what a poll reads: the render parses the text whole
         * (the text s was parsed from, so d binds to it), and d goes back
         * to s for the caller */
        struct info_sample *full = parse_text(t, t->info_text, true);
        render_now(t, full, derived_rebind(d, full) ? d : NULL);
        parsed_done(t->p, full);
        if (!derived_rebind(d, s)) /* cannot fail (d was derived from s); if it did, no pointer into full */
            derived_unbind(d);
        return;
    }
    t->pend_d = *d;
    derived_unbind(&t->pend_d); /* s goes back for reuse: rebound to a new parse when rendered */
    memset(d, 0, sizeof *d);
    t->pending = true;
    atomic_fetch_add(&t->p->n_pending, 1);
}

static void answer_readers(struct poller *p, uint64_t gen)
{
    pthread_mutex_lock(&p->rlock);
    if (gen > p->done_gen)
        p->done_gen = gen;
    pthread_cond_broadcast(&p->rdone);
    pthread_mutex_unlock(&p->rlock);
}

/* The pass goes on in a next step, after the polls due. */
static void render_later(struct poller *p)
{
    struct timeval zero = {0, 0};
    evtimer_add(p->render_ev, &zero);
}

/* One step of the render pass. A pass visits every target once, rendering
 * what waits, and then answers the requests made before it began; it goes
 * on in steps after the polls due when a step has used RENDER_STEP_US. */
static void render_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct poller *p = arg;
    if (!p->pass_left) { /* a new pass */
        pthread_mutex_lock(&p->rlock);
        p->pass_gen = p->req_gen;
        pthread_mutex_unlock(&p->rlock);
        p->pass_left = p->n;
    }
    uint64_t start = now_mono_us();
    size_t done = 0;
    while (p->pass_left && atomic_load(&p->n_pending)) {
        if (p->render_pos >= p->n)
            p->render_pos = 0;
        struct target *t = p->t[p->render_pos++];
        p->pass_left--;
        if (!t->pending)
            continue;
        flush_pending(t);
        if (++done % 16 == 0 && p->pass_left && atomic_load(&p->n_pending) &&
            now_mono_us() - start >= RENDER_STEP_US) {
            render_later(p);
            return;
        }
    }
    p->pass_left = 0;
    answer_readers(p, p->pass_gen);
    pthread_mutex_lock(&p->rlock);
    uint64_t later = p->req_gen; /* made while the pass ran */
    pthread_mutex_unlock(&p->rlock);
    if (later > p->pass_gen) {
        if (atomic_load(&p->n_pending))
            render_later(p); /* another pass */
        else
            answer_readers(p, later);
    }
}

/* A reader asked for a render pass (render_for_reader): the pass starts,
 * or goes on, now; nothing more when it is due already (an evtimer_add
 * would move a timer that is due back to the heap: each reader could put
 * the pass off again). */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct poller *p = arg;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        log_warn("poller", "cannot read the render wake-up: %s", strerror(errno));
    if (!event_pending(p->render_ev, EV_TIMEOUT, NULL))
        event_active(p->render_ev, EV_TIMEOUT, 1);
}

/* registry_on_read: has what waits rendered before a reader goes on. */
static void render_for_reader(void *arg)
{
    struct poller *p = arg;
    if (!atomic_load(&p->n_pending) || pthread_equal(pthread_self(), p->loop_thread))
        return;
    pthread_mutex_lock(&p->rlock);
    if (p->held) {
        pthread_mutex_unlock(&p->rlock);
        return;
    }
    uint64_t gen = ++p->req_gen;
    pthread_mutex_unlock(&p->rlock);
    uint64_t one = 1; /* on_wake; a full counter (2^64 - 2 requests) is awake already */
    if (write(p->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("poller", "cannot wake the loop for a render pass: %s", strerror(errno));
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += RENDER_WAIT_S;
    pthread_mutex_lock(&p->rlock);
    int rc = 0;
    while (p->done_gen < gen && !p->held && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&p->rdone, &p->rlock, &until);
    pthread_mutex_unlock(&p->rlock);
    if (rc == ETIMEDOUT)
        log_warn("poller", "render pass not done within %d s: serving the polls rendered before", RENDER_WAIT_S);
}

void poller_hold_reads(struct poller *p, bool hold)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->rlock);
    p->held = hold;
    pthread_cond_broadcast(&p->rdone);
    pthread_mutex_unlock(&p->rlock);
}

uint64_t poller_backoff_ms(unsigned fails, uint64_t interval_ms)
{
    if (fails <= 1)
        return 0; /* a single blip: retry at the next tick */
    /* two intervals: a server that comes back is read again within 2.4
     * intervals and a tick (eight held a 20 s outage's return unseen for up
     * to 8.6 s at 1 s), and a down instance costs at most half a healthy one
     * (up to 30 s intervals, where the 60 s cap takes over) */
    uint64_t cap = interval_ms * 2;
    if (cap > 60000)
        cap = 60000;
    if (cap < interval_ms)
        cap = interval_ms;
    unsigned shift = fails - 2 > 16 ? 16 : fails - 2;
    uint64_t ms = 1000ull << shift;
    return ms > cap ? cap : ms;
}

static uint64_t backoff_us(const struct target *t)
{
    uint64_t ms = poller_backoff_ms(t->fails, t->cfg->interval_ms);
    /* +-20% jitter so a fleet that failed together does not retry together */
    double j = 0.8 + 0.4 * ((double)arc4random_uniform(1000) / 1000.0); /* seeded per process by the kernel */
    return (uint64_t)((double)ms * 1000.0 * j);
}

static void forget_asking(struct session *s)
{
    for (size_t i = 0; i < s->n_asking; i++)
        free(s->asking[i]);
    s->n_asking = 0;
    free(s->asking);
    s->asking = NULL;
}

static void drop_connection(struct target *t)
{
    struct session *s = t->s;
    if (!s)
        return;
    conn_close(s->conn);
    cmdclass_map_free(s->classes);
    forget_asking(s);
    free(s);
    t->s = NULL;
    t->next_latstats_us = t->next_cmdstats_us = 0; /* a new connection may be a new server */
}

/* Keeps n_up and the first-round flag, and tells the owner when either
 * changes (systemd STATUS= and READY=1). */
static void count_up(struct target *t, bool was_up, bool first)
{
    struct poller *p = t->p;
    bool up = t->st.last_outcome == OUTCOME_OK;
    bool changed = up != was_up;
    if (changed)
        p->n_up = up ? p->n_up + 1 : p->n_up - 1;
    if (first && ++p->n_polled == p->n)
        p->round_done = changed = true;
    if (changed && p->on_change)
        p->on_change(p->on_change_arg);
}

/* Ends the current poll. On success s (from parse_text) goes back for reuse
 * and raw is adopted. close: drop the
 * connection (every failure that leaves it in an unknown state). */
static void finish(struct target *t, enum outcome o, const char *detail, struct info_sample *s,
                   struct rstr *raw, bool close)
{
    uint64_t now = now_mono_us();
    evtimer_del(t->deadline);
    bool was_polling = t->polling;
    t->polling = false;
    if (t->s)
        t->s->npend = 0;
    if (close)
        drop_connection(t);
    if (!was_polling && o != OUTCOME_OK) {
        /* the idle connection died between polls: reconnect at the next tick */
        log_debug("poller", "%s: idle connection lost: %s", t->cfg->name, detail);
        return;
    }
    enum outcome prev = t->st.last_outcome;
    bool first = !t->st.polled;
    bool was_up = !first && prev == OUTCOME_OK;
    t->st.polls++;
    t->st.polled = true;
    t->st.last_outcome = o;
    t->st.last_poll_ts = now_real_s();
    t->st.last_poll_mono = (double)now / 1e6;
    t->st.last_duration_s = (double)(now - t->poll_start_us) / 1e6;
    if (o == OUTCOME_OK) {
        t->fails = 0;
        t->retry_at_us = 0;
        t->st.last_error[0] = '\0';
        t->st.last_success_ts = t->st.last_poll_ts;
        t->st.reply_bytes = raw->len;
        rstr_unref(t->info_text);
        t->info_text = raw; /* adopted */
        registry_set_info(t->p->reg, t->idx, raw); /* one copy while the render waits */
        if (prev != OUTCOME_OK && !first) {
            if (t->streak_warned)
                log_info("poller", "%s: recovered", t->cfg->name);
            else
                log_debug("poller", "%s: recovered", t->cfg->name);
        }
        t->streak_warned = false;
        if (s->malformed)
            log_debug("poller", "%s: %zu malformed INFO lines skipped (of those a poll reads; "
                      "redpulse_info_malformed_lines counts all)", t->cfg->name, s->malformed);
    } else {
        t->st.errors[o]++;
        t->fails++;
        t->retry_at_us = now + backoff_us(t);
        snprintf(t->st.last_error, sizeof t->st.last_error, "%s: %s", outcome_desc(o), detail);
        /* failing again soon after the last warning, with successes in
         * between: a flapping peer, whose every failure and recovery would
         * otherwise be logged (two lines a poll, for as long as it goes on) */
        bool flap = prev == OUTCOME_OK && !first && t->warned_us && now - t->warned_us < LOG_REPEAT_US;
        if (!flap && (prev != o || first || now - t->warned_us >= LOG_REPEAT_US)) {
            /* the same failure again is a warning once per LOG_REPEAT_US */
            t->streak_warned = true;
            if ((prev == o || t->repeats) && !first)
                log_warn("poller", "%s: poll still failing (%s, %u times since the last warning): %s",
                         t->cfg->name, outcome_str(o), t->repeats, detail);
            else
                log_warn("poller", "%s: poll failed (%s): %s", t->cfg->name, outcome_str(o), detail);
            t->warned_us = now;
            t->repeats = 0;
        } else {
            t->repeats++;
            log_debug("poller", "%s: poll failed again (%s): %s", t->cfg->name, outcome_str(o), detail);
        }
    }
    if (o != OUTCOME_OK) {
        /* the sections this poll asked for at their cadence did not come:
         * the next poll asks (and answers the scrape that made it ask) */
        if (t->asked_cmdstats)
            t->next_cmdstats_us = 0;
        if (t->asked_latstats)
            t->next_latstats_us = 0;
        publish(t, NULL, NULL, was_up);
        count_up(t, was_up, first);
        return;
    }
    struct derived d;
    t->cw.fresh = t->asked_cmdstats;
    derive_window(t->last, t->last_us, s, now, t->st.last_poll_ts, classify, t, &t->cw, &d);
    if (!t->cw.kept)
        t->next_cmdstats_us = 0; /* no write/read split yet: ask at the next poll */
    const char *mode = !t->last || d.event == DERIVE_RESTART ? info_sval(s, INFO_S_REDIS_MODE) : NULL;
    if (mode && strcmp(mode, "sentinel") == 0)
        /* it answers INFO, so it is up, with no data, memory or write
         * path to speak of: a Sentinel's address given for a server's
         * (looked at on a new baseline only: not every poll) */
        log_warn("poller", "%s: %s is a Sentinel (redis_mode:sentinel), not a Redis server: it has no data or write "
                 "path to measure; to poll the servers it watches, make it a discovery source of type sentinel",
                 t->cfg->name, t->cfg->address);
    if (d.event == DERIVE_RESTART) {
        t->st.restarts++;
        log_info("poller", "%s: server restarted (new run_id or lower uptime): new baseline", t->cfg->name);
    } else if (d.event == DERIVE_RESET) {
        t->st.resets++;
        log_info("poller", "%s: counters went down (CONFIG RESETSTAT?): new baseline", t->cfg->name);
    }
    if (t->adv)
        advise_poll(t->adv, &t->config, s, &d, t->st.last_poll_ts);
    publish(t, s, &d, was_up); /* may take d: rendered when read */
    derived_clear(&d);
    t->last = info_compact_again(t->last, s); /* the full sample is not needed any more */
    if (t->asked_cmdstats && t->s)
        t->s->names_unchecked = true;
    parsed_done(t->p, s);
    t->last_us = now;
    count_up(t, was_up, first);
}

static void push(struct target *t, enum pend k) { t->s->pend[t->s->npend++] = k; }

static enum pend pop(struct session *s)
{
    enum pend k = s->pend[0];
    memmove(s->pend, s->pend + 1, (size_t)(s->npend - 1) * sizeof s->pend[0]);
    s->npend--;
    return k;
}

/* Whether a section with its own cadence is due now, and if so its next turn. */
static bool due(uint64_t *next_us, uint64_t cadence_ms, uint64_t now)
{
    if (cadence_ms && now < *next_us)
        return false;
    *next_us = now + cadence_ms * 1000;
    return true;
}

static void send_info(struct target *t)
{
    int k = 4;
    t->asked_latstats = t->asked_cmdstats = true;
    if (!t->s->info_all) {
        uint64_t now = now_mono_us();
        /* and at the first poll after a scrape: every scrape then has
         * commandstats newer than the previous scrape's (and at most the
         * cadence old), so rate() and irate() of redis_commands_total see
         * them move from scrape to scrape, whatever the two intervals */
        unsigned long reads = registry_scrapes(t->p->reg, t->idx);
        if (reads != t->cmds_reads)
            t->next_cmdstats_us = 0;
        t->asked_cmdstats = due(&t->next_cmdstats_us, t->cfg->commandstats_interval_ms, now);
        if (t->asked_cmdstats)
            t->cmds_reads = reads;
        t->asked_latstats = due(&t->next_latstats_us, t->cfg->latencystats_interval_ms, now);
        k = t->asked_cmdstats + 2 * t->asked_latstats;
    }
    conn_send(t->s->conn, t->p->info_cmd[k], (size_t)t->p->info_cmd_len[k]);
    push(t, P_INFO);
}

static int server_major(const struct info_sample *s)
{
    const char *v = s ? info_sval(s, INFO_S_REDIS_VERSION) : NULL;
    return v ? atoi(v) : 0;
}

/* Commands that ride along with a poll when they are due: COMMAND INFO for
 * command names not classified on this connection yet, CONFIG GET and
 * LATENCY LATEST at their own cadences. In steady state: none. */
static void send_extras(struct target *t, uint64_t now)
{
    const struct info_sample *s = t->last;
    struct session *se = t->s;
    /* the names are looked up only when they may be new: a lookup is a
     * binary search of the map, a few cold cache lines a name, and in
     * steady state every poll but one in commandstats_interval carries the
     * same names as the poll before */
    if (s && se->classes && !se->command_refused && se->n_asking == 0 && se->names_unchecked) {
        const char *argv[MAX_ASK + 2] = {"COMMAND", "INFO"};
        size_t i;
        for (i = 0; i < s->n_cmds && se->n_asking < MAX_ASK; i++)
            if (!cmdclass_map_known(se->classes, s->cmds[i].cmd)) {
                if (cmdclass_map_mark_asked(se->classes, s->cmds[i].cmd) < 0) {
                    /* the map is full: no real server has that many
                     * commands. Stop asking, as when COMMAND is refused */
                    log_info("poller", "%s: more than %d command names on this connection; using the built-in "
                             "command table for the others", t->cfg->name, CMDCLASS_MAP_MAX);
                    se->command_refused = true;
                    break;
                }
                if (!se->asking)
                    se->asking = xcalloc(MAX_ASK, sizeof *se->asking);
                se->asking[se->n_asking] = xstrdup(s->cmds[i].cmd);
                argv[2 + se->n_asking] = se->asking[se->n_asking];
                se->n_asking++;
            }
        if (i == s->n_cmds) /* else the names past MAX_ASK wait for the answer */
            se->names_unchecked = false;
        if (se->n_asking) {
            conn_command(se->conn, (int)(2 + se->n_asking), argv);
            push(t, P_CMDINFO);
        }
    }
    /* CONFIG GET needs the server version (one parameter per call before
     * 7.0), so it starts from the second poll */
    if (t->cfg->config_interval_ms && !se->config_refused && s && now >= t->next_config_us) {
        t->next_config_us = now + t->cfg->config_interval_ms * 1000;
        const char *argv[CFGP_COUNT + 2];
        if (server_major(s) >= 7) {
            conn_command(se->conn, collect_config_argv(t->cfg->config_command, argv), argv);
            push(t, P_CONFIG);
        } else {
            for (int p = 0; p < CFGP_COUNT; p++) {
                conn_command(se->conn, collect_config_argv_one(t->cfg->config_command, (enum cfg_param)p, argv), argv);
                push(t, P_CONFIG);
            }
        }
    }
    if (t->cfg->latency_interval_ms && !se->latency_refused && now >= t->next_latency_us) {
        t->next_latency_us = now + t->cfg->latency_interval_ms * 1000;
        const char *argv[] = {"LATENCY", "LATEST"};
        conn_command(se->conn, 2, argv);
        push(t, P_LATENCY);
    }
}

/* The INFO text to parse and keep: the reply, with the sections asked for
 * at a cadence that it did not ask for appended as they were last kept, so
 * that every poll's text has all the sections. The sections it asked for are
 * kept from it (in one pass over the text), unless every poll asks for all
 * (INFO all). */
static struct rstr *info_with_kept(struct target *t, const char *text, size_t len)
{
    bool asked[N_KEPT] = {t->asked_latstats, t->asked_cmdstats, t->asked_cmdstats, t->asked_cmdstats};
    const char *names[N_KEPT];
    int which[N_KEPT], n = 0;
    for (int k = 0; k < N_KEPT && !t->s->info_all; k++)
        if (asked[k]) {
            names[n] = kept_names[k];
            which[n++] = k;
        }
    if (n) {
        struct info_span sp[N_KEPT];
        info_section_spans(text, len, names, (size_t)n, sp);
        for (int i = 0; i < n; i++) {
            rstr_unref(t->kept[which[i]]);
            t->kept[which[i]] = sp[i].len ? rstr_new(text + sp[i].off, sp[i].len) : NULL;
        }
    }
    size_t total = len;
    for (int k = 0; k < N_KEPT; k++)
        if (!asked[k] && t->kept[k])
            total += 2 + t->kept[k]->len;
    struct rstr *r = rstr_new(NULL, total);
    memcpy(r->data, text, len);
    size_t at = len;
    for (int k = 0; k < N_KEPT; k++)
        if (!asked[k] && t->kept[k]) {
            memcpy(r->data + at, "\r\n", 2);
            memcpy(r->data + at + 2, t->kept[k]->data, t->kept[k]->len);
            at += 2 + t->kept[k]->len;
        }
    return r;
}

static void on_connected(void *arg)
{
    struct target *t = arg;
    log_debug("poller", "%s: connected to %s", t->cfg->name, t->cfg->address);
}

static void on_error(void *arg, enum outcome why, const char *detail)
{
    finish(arg, why, detail, NULL, NULL, true);
}

static bool starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static void on_info_error(struct target *t, const char *err)
{
    if (!t->s->info_all && (strstr(err, "syntax error") || strstr(err, "wrong number of arguments"))) {
        /* Redis < 7.0 takes a single section: ask for all of them instead */
        log_info("poller", "%s: server takes one INFO section; using \"INFO all\"", t->cfg->name);
        t->s->info_all = true;
        send_info(t);
        return;
    }
    if (starts_with(err, "NOAUTH") || starts_with(err, "WRONGPASS"))
        finish(t, OUTCOME_AUTH, err, NULL, NULL, true);
    else if (starts_with(err, "NOPERM"))
        finish(t, OUTCOME_NO_PERMISSION, err, NULL, NULL, false);
    else
        finish(t, OUTCOME_ERROR_REPLY, err, NULL, NULL, false);
}

/* Counts the nested lines the parser left out; says so once when it starts
 * (and at debug level while it goes on). */
static void note_dropped(struct target *t, const struct info_sample *s)
{
    size_t now = 0, before = 0;
    for (int f = 0; f < INFO_NF_COUNT; f++) {
        now += s->dropped[f];
        before += t->last ? t->last->dropped[f] : 0;
    }
    if (!now)
        return;
    t->st.nested_dropped += now;
    char what[200] = "";
    size_t off = 0;
    for (int f = 0; f < INFO_NF_COUNT && off < sizeof what; f++)
        if (s->dropped[f])
            off += (size_t)snprintf(what + off, sizeof what - off, "%s%s %zu", off ? ", " : "",
                                    info_nested_family_name((enum info_nested_family)f), s->dropped[f]);
    if (!before)
        log_warn("poller", "%s: INFO has more than max_nested_entries (%zu) lines of a family; left out: %s",
                 t->cfg->name, t->cfg->max_nested_entries, what);
    else
        log_debug("poller", "%s: nested INFO lines left out: %s", t->cfg->name, what);
}

static void on_reply(void *arg, redisReply *r)
{
    struct target *t = arg;
    struct session *se = t->s;
    char detail[200];
    if (se->npend == 0) {
        finish(t, OUTCOME_PROTOCOL, "reply without a request", NULL, NULL, true);
        return;
    }
    enum pend k = pop(se);
    bool is_err = r->type == REDIS_REPLY_ERROR;
    if (is_err)
        snprintf(detail, sizeof detail, "%.*s", (int)(r->len > 180 ? 180 : r->len), r->str ? r->str : "");
    switch (k) {
    case P_AUTH:
        if (is_err)
            finish(t, OUTCOME_AUTH, detail, NULL, NULL, true);
        return;
    case P_SETNAME:
        /* NOAUTH here means no password was configured for a server that
         * wants one. It must end the poll now: Redis 7 answers the INFO that
         * follows (more than 10 arguments, unauthenticated) with a protocol
         * error and closes, which would hide the real reason. */
        if (is_err && starts_with(detail, "NOAUTH"))
            finish(t, OUTCOME_AUTH, detail, NULL, NULL, true);
        else if (is_err) /* an ACL may refuse CLIENT SETNAME; polling still works */
            log_debug("poller", "%s: CLIENT SETNAME refused: %s", t->cfg->name, detail);
        return;
    case P_CMDINFO:
        if (is_err && collect_refusal_permanent(detail)) {
            /* no +command: classify with the built-in table on this connection */
            if (!se->command_refused)
                log_info("poller", "%s: COMMAND INFO refused (%s); using the built-in command table", t->cfg->name, detail);
            se->command_refused = true;
        } else if (is_err) { /* the names asked stay on the built-in table on this connection */
            log_debug("poller", "%s: COMMAND INFO failed (%s)", t->cfg->name, detail);
        } else if (se->classes) {
            cmdclass_map_learn(se->classes, (const char *const *)se->asking, se->n_asking, r);
        }
        forget_asking(se);
        return;
    case P_CONFIG:
        if (is_err && collect_refusal_permanent(detail)) {
            if (!se->config_refused)
                log_info("poller", "%s: %s GET refused (%s); not asking again on this connection", t->cfg->name,
                         t->cfg->config_command, detail);
            se->config_refused = true;
        } else if (is_err) { /* BUSY, LOADING...: asked again at the next cadence */
            log_debug("poller", "%s: %s GET failed (%s); asking again later", t->cfg->name, t->cfg->config_command,
                      detail);
        } else if (collect_config_reply(&t->config, r) < 0) {
            log_debug("poller", "%s: unexpected CONFIG GET reply", t->cfg->name);
        }
        if (t->adv && !is_err && (se->npend == 0 || se->pend[0] != P_CONFIG)) /* the last of them (Redis < 7) */
            advise_on_config(t->adv, t->cfg, &t->config, t->last, now_real_s());
        return;
    case P_LATENCY:
        if (is_err && collect_refusal_permanent(detail)) {
            if (!se->latency_refused)
                log_info("poller", "%s: LATENCY LATEST refused (%s); not asking again on this connection",
                         t->cfg->name, detail);
            se->latency_refused = true;
        } else if (is_err) {
            log_debug("poller", "%s: LATENCY LATEST failed (%s); asking again later", t->cfg->name, detail);
        } else if (collect_latency_reply(t->latency ? t->latency : (t->latency = xcalloc(1, sizeof *t->latency)), r) < 0) {
            log_debug("poller", "%s: unexpected LATENCY LATEST reply", t->cfg->name);
        } else if (t->latency->dropped) {
            if (!t->st.latency_dropped) /* once: a peer that sends them sends them every time */
                log_warn("poller", "%s: LATENCY LATEST: %zu entries left out (of another shape, a bad or repeated name, or past %d events); counted in redpulse_latency_events_dropped_total",
                         t->cfg->name, t->latency->dropped, LATENCY_MAX_EVENTS);
            t->st.latency_dropped += t->latency->dropped;
        }
        return;
    case P_INFO:
        if (is_err) {
            on_info_error(t, detail);
        } else if (r->type == REDIS_REPLY_STRING) {
            struct rstr *raw = info_with_kept(t, r->str, r->len);
            struct info_sample *s = parse_text(t, raw, false);
            note_dropped(t, s);
            finish(t, OUTCOME_OK, "", s, raw, false);
        } else {
            finish(t, OUTCOME_PROTOCOL, "INFO reply is not a bulk string", NULL, NULL, true);
        }
        return;
    }
}

static const struct conn_callbacks callbacks = {on_connected, on_reply, on_error};

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct target *t = arg;
    char detail[128];
    if (t->s && conn_in_tls_handshake(t->s->conn)) {
        /* TCP is up but the server never answered the TLS handshake: most
         * likely a plain-text server behind a rediss:// address */
        snprintf(detail, sizeof detail, "TLS handshake not completed within %llums (is the server speaking TLS?)",
                 (unsigned long long)t->cfg->timeout_ms);
        finish(t, OUTCOME_TLS, detail, NULL, NULL, true);
        return;
    }
    snprintf(detail, sizeof detail, "no complete reply within %llums",
             (unsigned long long)t->cfg->timeout_ms);
    finish(t, OUTCOME_TIMEOUT, detail, NULL, NULL, true);
}

static void schedule_tick(struct target *t, uint64_t now)
{
    uint64_t iv = t->cfg->interval_ms * 1000;
    t->next_due_us += iv;
    if (t->next_due_us <= now) /* fell behind (suspend, overload): skip, don't burst */
        t->next_due_us = now + iv - (now - t->next_due_us) % iv;
    tickgrid_add(t->p->grid, &t->slot, t->next_due_us);
}

/* A target's tick has come (the grid runs every target due in that tick in
 * one wake-up). */
static void tick_cb(struct grid_entry *e, uint64_t now, void *arg)
{
    (void)arg;
    struct target *t = (struct target *)(void *)((char *)e - offsetof(struct target, slot));
    /* against the grid time: how late the wake-up was, not the rounding */
    t->st.lateness_s = now > e->due_us ? (double)(now - e->due_us) / 1e6 : 0;
    record_lateness(t->st.lateness_s);
    schedule_tick(t, now);
    if (t->polling)
        return; /* cannot happen while timeout < interval; be safe */
    t->poll_start_us = now;
    t->polling = true;
    if (!t->s) {
        if (now < t->retry_at_us) {
            t->polling = false; /* backing off: this tick is skipped */
            return;
        }
        enum outcome why;
        char detail[200] = "";
        struct conn *c = conn_open(t->p->base, t->p->dns, t->ssl, t->cfg, &callbacks, t, &why, detail,
                                   sizeof detail);
        if (!c) {
            finish(t, why, detail, NULL, NULL, true);
            return;
        }
        t->s = xcalloc(1, sizeof *t->s);
        t->s->conn = c;
        t->st.connects++;
        if (t->cfg->password) {
            const char *argv[3] = {"AUTH", t->cfg->username, t->cfg->password};
            if (t->cfg->username)
                conn_command(c, 3, argv);
            else {
                argv[1] = t->cfg->password;
                conn_command(c, 2, argv);
            }
            push(t, P_AUTH);
        }
        const char *setname[] = {"CLIENT", "SETNAME", "redpulse"};
        conn_command(c, 3, setname);
        push(t, P_SETNAME);
        t->s->classes = cmdclass_map_new();
        t->s->names_unchecked = true;
    }
    send_extras(t, now);
    send_info(t); /* INFO last: its reply ends the poll */
    arm_deadline(t);
}

struct poller *poller_new(struct event_base *base, struct registry *reg)
{
    struct poller *p = xcalloc(1, sizeof *p);
    p->base = base;
    p->reg = reg;
    p->loop_thread = pthread_self();
    pthread_mutex_init(&p->rlock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->rdone, &ca);
    pthread_condattr_destroy(&ca);
    p->render_ev = evtimer_new(base, render_step, p);
    p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->wake_ev = p->wake_fd < 0 ? NULL : event_new(base, p->wake_fd, EV_READ | EV_PERSIST, on_wake, p);
    if (!p->wake_ev || event_add(p->wake_ev, NULL) != 0) {
        log_error("poller", "cannot make the render wake-up: %s", p->wake_fd < 0 ? strerror(errno) : "event refused");
        goto undo;
    }
    p->grid = tickgrid_new(base, tickgrid_choose_tick_us(1000), tick_cb, p);
    p->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!p->dns) /* no usable resolv.conf: /etc/hosts and literals still work */
        p->dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!p->dns) {
        log_error("poller", "cannot create the DNS resolver");
        tickgrid_free(p->grid);
        goto undo;
    }
    evdns_base_load_hosts(p->dns, NULL);
    evdns_base_set_option(p->dns, "timeout:", "2");
    evdns_base_set_option(p->dns, "attempts:", "2");
    /* [k]: commandstats, cpu and server when k & 1, latencystats when k & 2 */
    for (int k = 0; k < 4; k++) {
        const char *argv[16] = {"INFO"};
        int n = 1;
        for (const char *const *sec = poller_info_sections; *sec; sec++)
            if ((k & 1) || !with_cmdstats(*sec))
                argv[n++] = *sec;
        if (k & 2)
            argv[n++] = "latencystats";
        p->info_cmd_len[k] = redisFormatCommandArgv(&p->info_cmd[k], n, argv, NULL);
    }
    const char *all[] = {"INFO", "all"};
    p->info_cmd_len[4] = redisFormatCommandArgv(&p->info_cmd[4], 2, all, NULL);
    for (int k = 0; k < 5; k++)
        if (p->info_cmd_len[k] < 0) { /* hiredis fails only out of memory */
            log_error("poller", "out of memory encoding INFO");
            abort();
        }
    registry_on_read(reg, render_for_reader, p);
    return p;
undo: /* what was made before the failure */
    if (p->wake_ev)
        event_free(p->wake_ev);
    if (p->wake_fd >= 0)
        close(p->wake_fd);
    event_free(p->render_ev);
    pthread_cond_destroy(&p->rdone);
    pthread_mutex_destroy(&p->rlock);
    free(p);
    return NULL;
}

void poller_on_change(struct poller *p, void (*fn)(void *arg), void *arg)
{
    p->on_change = fn;
    p->on_change_arg = arg;
}

static void set_prefix(struct target *t)
{
    struct buf b = BUF_INIT;
    prom_label_prefix(&b, t->cfg->name, t->cfg->labels, t->cfg->n_labels);
    free(t->prefix);
    t->prefix = buf_steal(&b, NULL);
}

static void set_tls(struct target *t)
{
    if (t->ssl)
        SSL_CTX_free(t->ssl);
    t->ssl = NULL;
    if (t->cfg->kind == ADDR_TCP && t->cfg->tls.enabled) {
        char detail[200];
        t->ssl = conn_tls_ctx_new(&t->cfg->tls, detail, sizeof detail);
        if (!t->ssl)
            log_error("poller", "%s: %s", t->cfg->name, detail);
    }
}

static void arm_first(struct target *t, uint64_t now, uint64_t off)
{
    t->next_due_us = now + off;
    tickgrid_add(t->p->grid, &t->slot, t->next_due_us);
}

static struct target *target_new(struct poller *p, const struct instance_cfg *cfg, const struct advice_cfg *adv)
{
    struct target *t = xcalloc(1, sizeof *t);
    t->p = p;
    t->cfg = cfg;
    t->adv = advisor_new(adv, cfg->name);
    set_prefix(t);
    set_tls(t);
    t->deadline = evtimer_new(p->base, deadline_cb, t);
    return t;
}

/* Forgets what was learnt about the server: the next sample is a first one
 * (no rates from a sample of what may be another server). Counters stay. */
static void forget_server(struct target *t)
{
    info_sample_free(t->last);
    t->last = NULL;
    rstr_unref(t->info_text);
    t->info_text = NULL;
    for (int k = 0; k < N_KEPT; k++) {
        rstr_unref(t->kept[k]);
        t->kept[k] = NULL;
    }
    cmd_window_clear(&t->cw);
    t->next_cmdstats_us = 0;
    config_values_clear(&t->config);
    free(t->latency);
    t->latency = NULL;
    t->next_config_us = t->next_latency_us = 0;
    t->fails = 0;
    t->retry_at_us = 0;
}

static void target_free(struct target *t)
{
    drop_pending(t); /* its slot may be gone already */
    drop_connection(t);
    forget_server(t);
    tickgrid_del(t->p->grid, &t->slot);
    if (t->deadline)
        event_free(t->deadline);
    if (t->ssl)
        SSL_CTX_free(t->ssl);
    advisor_free(t->adv);
    free(t->prefix);
    free(t);
}

static bool same_str(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

/* A reload that shortened a cadence (old_ms to new_ms), or turned it on
 * when 0 is off, brings its next turn (*next) forward to one new period
 * from now if that is sooner: it runs by its own clock, not after the old
 * one's next turn (a config_interval of 24h made 1s waited out the day). */
static void shorten_cadence(uint64_t *next, uint64_t old_ms, uint64_t new_ms, bool zero_is_off, uint64_t now)
{
    if (new_ms < old_ms || (zero_is_off && !old_ms)) {
        uint64_t due = now + new_ms * 1000;
        if (due < *next)
            *next = due;
    }
}

/* Settings that pick the server and how we talk to it: a change needs a new
 * connection (and may reach another server). */
static bool same_connection(const struct instance_cfg *a, const struct instance_cfg *b)
{
    return same_str(a->address, b->address) && a->kind == b->kind && same_str(a->host, b->host) &&
           a->port == b->port && same_str(a->path, b->path) && same_str(a->username, b->username) &&
           same_str(a->password, b->password) && a->max_reply_bytes == b->max_reply_bytes &&
           a->tls.enabled == b->tls.enabled && same_str(a->tls.ca_file, b->tls.ca_file) &&
           same_str(a->tls.cert_file, b->tls.cert_file) && same_str(a->tls.key_file, b->tls.key_file) &&
           same_str(a->tls.server_name, b->tls.server_name) &&
           a->tls.insecure_skip_verify == b->tls.insecure_skip_verify;
}

static bool same_labels(const struct instance_cfg *a, const struct instance_cfg *b)
{
    if (a->n_labels != b->n_labels)
        return false;
    for (size_t i = 0; i < a->n_labels; i++)
        if (strcmp(a->labels[i].name, b->labels[i].name) || strcmp(a->labels[i].value, b->labels[i].value))
            return false;
    return true;
}

/* Moves a kept target to its new settings. Returns true when its published
 * frag needs the new label prefix. A new connection keeps the published
 * frag until its first poll replaces it. */
static bool target_update(struct target *t, const struct instance_cfg *nc, uint64_t now)
{
    const struct instance_cfg *oc = t->cfg;
    bool reconnect = !same_connection(oc, nc);
    /* what waits is rendered from the kept INFO text (which a new server
     * forgets), parsed with the bound it was polled with; the rest of what
     * changes (labels, interval) applies to it as it will to the next poll */
    if (reconnect || oc->max_nested_entries != nc->max_nested_entries)
        flush_pending(t);
    bool relabel = !same_labels(oc, nc);
    bool resched = oc->interval_ms != nc->interval_ms;
    t->cfg = nc;
    if (reconnect) {
        log_info("poller", "%s: connection settings changed: reconnecting as a new server", nc->name);
        if (t->polling) { /* abandon the poll in flight: its server is not ours any more */
            evtimer_del(t->deadline);
            t->polling = false;
        }
        drop_connection(t);
        forget_server(t);
        set_tls(t);
        if (t->adv)
            advise_reset(t->adv);
    }
    if (relabel)
        set_prefix(t);
    if (resched) {
        arm_first(t, now, 0);
    }
    if (!reconnect) {
        /* a command name fixed by the reload is tried on the kept
         * connection (its refusal was of the old name) */
        bool cmd_changed = !same_str(oc->config_command, nc->config_command);
        if (t->s && (cmd_changed || !oc->config_interval_ms))
            t->s->config_refused = false;
        if (t->s && !oc->latency_interval_ms)
            t->s->latency_refused = false;
        if (cmd_changed)
            t->next_config_us = 0;
        shorten_cadence(&t->next_config_us, oc->config_interval_ms, nc->config_interval_ms, true, now);
        shorten_cadence(&t->next_latency_us, oc->latency_interval_ms, nc->latency_interval_ms, true, now);
        shorten_cadence(&t->next_latstats_us, oc->latencystats_interval_ms, nc->latencystats_interval_ms, false, now);
        shorten_cadence(&t->next_cmdstats_us, oc->commandstats_interval_ms, nc->commandstats_interval_ms, false,
                        now);
    }
    return relabel;
}

/* The running target named name (its registry slot index is its position
 * in p->t), or -1. */
static long find_target(struct poller *p, const char *name)
{
    long i = registry_find(p->reg, name);
    return i >= 0 && (size_t)i < p->n && strcmp(p->t[i]->cfg->name, name) == 0 ? i : -1;
}

void poller_apply(struct poller *p, const struct config *cfg)
{
    size_t n = cfg->n_instances;
    struct target **nt = xcalloc(n ? n : 1, sizeof *nt);
    struct frag **frags = xcalloc(n ? n : 1, sizeof *frags);
    const char **names = xcalloc(n ? n : 1, sizeof *names);
    bool *redo = xcalloc(n ? n : 1, sizeof *redo);
    bool *kept = xcalloc(p->n ? p->n : 1, sizeof *kept);
    uint64_t now = now_mono_us();
    size_t n_new = 0, k_new = 0;
    uint64_t shortest = 0;
    for (size_t i = 0; i < n; i++) {
        if (find_target(p, cfg->instances[i].name) < 0)
            n_new++;
        if (!shortest || cfg->instances[i].interval_ms < shortest)
            shortest = cfg->instances[i].interval_ms;
    }
    if (n) /* before any slot is placed: the tick follows the shortest interval */
        tickgrid_set_tick(p->grid, tickgrid_choose_tick_us(shortest));
    for (size_t i = 0; i < n; i++) {
        const struct instance_cfg *ic = &cfg->instances[i];
        names[i] = ic->name;
        long old = find_target(p, ic->name);
        if (old >= 0) {
            nt[i] = p->t[old];
            kept[old] = true;
            redo[i] = target_update(nt[i], ic, now);
            advisor_reconfigure(&nt[i]->adv, cfg->advice, ic->name);
            continue;
        }
        struct target *t = nt[i] = target_new(p, ic, cfg->advice);
        /* spread first polls (and so connects) evenly over the interval */
        arm_first(t, now, n_new > 1 ? ic->interval_ms * 1000 * k_new++ / n_new : 0);
        struct render_input in = {t->cfg, t->prefix, NULL, &t->st, NULL, NULL, NULL, NULL, &p->scratch, NULL};
        frags[i] = render_frag(&in); /* so /scrape knows the instance before its first poll */
    }
    /* one step: a scrape sees the old set or the new one */
    registry_set(p->reg, names, frags, n);
    size_t removed = 0;
    for (size_t i = 0; i < p->n; i++)
        if (!kept[i]) {
            alerts_forget(&p->t[i]->alerts); /* resolves what it had firing (not at exit: that state is kept) */
            target_free(p->t[i]);
            removed++;
        }
    free(p->t);
    p->t = nt;
    p->n = n;
    p->n_up = p->n_polled = 0;
    for (size_t i = 0; i < n; i++) {
        struct target *t = nt[i];
        t->idx = i;
        if (redo[i]) /* same values, new labels */
            registry_relabel(p->reg, i, t->prefix);
        p->n_up += t->st.polled && t->st.last_outcome == OUTCOME_OK;
        p->n_polled += t->st.polled;
    }
    if (n_new || removed)
        log_info("poller", "%zu instance%s: %zu added, %zu removed", n, n == 1 ? "" : "s", n_new, removed);
    p->round_done = p->n_polled == n;
    free(kept);
    free(redo);
    free(names);
    free(frags);
    if (p->on_change)
        p->on_change(p->on_change_arg);
}

void poller_status(const struct poller *p, size_t *up, size_t *total, bool *round_done)
{
    *up = p->n_up;
    *total = p->n;
    *round_done = p->round_done;
}

void poller_free(struct poller *p)
{
    if (!p)
        return;
    registry_on_read(p->reg, NULL, NULL);
    for (size_t i = 0; i < p->n; i++)
        target_free(p->t[i]);
    free(p->t);
    event_free(p->render_ev);
    event_free(p->wake_ev);
    close(p->wake_fd);
    pthread_cond_destroy(&p->rdone);
    pthread_mutex_destroy(&p->rlock);
    buf_free(&p->scratch);
    info_sample_free(p->parsed[0]);
    info_sample_free(p->parsed[1]);
    for (int k = 0; k < 5; k++)
        redisFreeCommand(p->info_cmd[k]);
    evdns_base_free(p->dns, 0);
    tickgrid_free(p->grid);
    free(p);
}
