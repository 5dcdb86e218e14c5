/*
 * service.c - wiring of a running daemon and its life cycle under a service
 * manager. Everything here runs on the event-loop thread: signals arrive as
 * libevent events, the watchdog is a loop timer (so a stuck loop stops
 * feeding it and systemd restarts the process), and a reload is applied in
 * one pass of the loop, so polls never see half a configuration.
 *
 * SIGHUP, SIGTERM and SIGINT stay blocked in every thread for the life of
 * the process (SIGHUP from main()'s first line, so that one sent at start is
 * a reload, not the end) and are read from a signalfd on the loop. No
 * handler runs, so no thread is interrupted by them: with a handler
 * (libevent's) a signal landed on whichever thread did not block it, and a
 * flood of SIGHUP at stop woke libmicrohttpd's workers out of epoll_wait
 * until one raced MHD_quiesce_daemon for the listening socket and MHD
 * aborted ("Failed to remove listen FD from epoll set", 0.9.75). Any wake-up
 * can meet that race: the fix for it is MHD on poll() (http.c,
 * start_daemon); this only stops signals from making it likely. Signals of
 * one kind that arrive before the loop reads them are one (a standard signal
 * does not queue): a burst of SIGHUP is one reload, not one each, and that
 * reload still reads the file after every one of them.
 */
#include "service.h"

#include <errno.h>
#include <event2/event.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "alerts.h"
#include "conn.h"
#include "discover.h"
#include "http.h"
#include "log.h"
#include "poller.h"
#include "publish.h"
#include "reload.h"
#include "reloadctl.h"
#include "sdnotify.h"
#include "util.h"

struct service {
    struct event_base *base;
    const char *path;          /* NULL: built-in configuration */
    bool level_fixed;
    struct cfg_gen *gen;       /* what the poller runs */
    struct cfg_gen *http_gen;  /* what the HTTP server was started with */
    struct cfg_gen *alerts_gen; /* what the alert engine was started with */
    struct registry *reg;
    struct poller *poller;
    struct discover *disc;     /* static + discovered instances, the fleet shard */
    struct http_server *http;
    int sig_fd;                /* signalfd of SIGHUP, SIGTERM, SIGINT */
    struct event *sig;
    struct event *watchdog;
    struct event *status_tick; /* STATUS= refresh (firing alerts), under systemd */
    bool ready;                /* READY=1 sent */
    char status[96];           /* last STATUS= sent */
};

/* One descriptor per instance: raise the soft limit to the hard one, and
 * keep some for HTTP clients and the process itself. */
static void set_fd_budget(const struct http_cfg *h, size_t n_instances)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    long reserve = 32 + (long)http_fd_reserve(h);
    long budget = (long)rl.rlim_cur - reserve;
    if (budget < 1)
        budget = 1;
    conn_set_fd_budget(budget);
    if ((size_t)budget < n_instances)
        log_warn("main", "file descriptor limit %llu allows %ld Redis connections for %zu instances "
                 "(%ld kept for HTTP); raise LimitNOFILE / ulimit -n",
                 (unsigned long long)rl.rlim_cur, budget, n_instances, reserve);
}

static void apply_log_level(const struct service *sv, const struct config *cfg)
{
    /* a file without log_level means the default: a reload that removes
     * the key goes back to it, not to the level before */
    enum log_level lvl = LOG_INFO;
    if (!sv->level_fixed && (!cfg->log_level || log_parse_level(cfg->log_level, &lvl) == 0))
        log_set_level(lvl);
}

/* STATUS= when it changed; READY=1 once HTTP listens and every instance has
 * finished its first poll. Called by the poller on every change. */
static void on_poller_change(void *arg)
{
    struct service *sv = arg;
    size_t up, total;
    bool round;
    poller_status(sv->poller, &up, &total, &round);
    char st[sizeof sv->status];
    size_t firing = alerts_firing_count();
    snprintf(st, sizeof st, "%zu/%zu instances up%s", up, total, round ? "" : " (first polls running)");
    if (firing)
        snprintf(st + strlen(st), sizeof st - strlen(st), ", %zu alert%s firing", firing, firing == 1 ? "" : "s");
    round = round && discover_settled(); /* the set of instances is known */
    bool send_ready = round && !sv->ready && sv->http;
    if (strcmp(st, sv->status) == 0 && !send_ready)
        return;
    snprintf(sv->status, sizeof sv->status, "%s", st);
    if (send_ready) {
        sv->ready = true;
        sdnotify_send("READY=1\nSTATUS=%s", st);
        log_info("main", "ready: %s", st);
    } else {
        sdnotify_send("STATUS=%s", st);
    }
}

static void on_status_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    on_poller_change(arg);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    sdnotify_send("WATCHDOG=1");
}

static bool same_str(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

/* Every field of the HTTP section: one not compared here would be kept
 * from the old generation while the reload said it applied. */
static bool same_http(const struct http_cfg *a, const struct http_cfg *b)
{
    if (!(same_str(a->listen, b->listen) && a->max_connections == b->max_connections &&
          a->max_connections_per_ip == b->max_connections_per_ip && a->idle_timeout_ms == b->idle_timeout_ms &&
          a->request_timeout_ms == b->request_timeout_ms &&
          a->connection_memory_limit == b->connection_memory_limit && a->threads == b->threads &&
          same_str(a->tls_cert_file, b->tls_cert_file) && same_str(a->tls_key_file, b->tls_key_file) &&
          same_str(a->tls_client_ca_file, b->tls_client_ca_file) && a->tls_min_version == b->tls_min_version &&
          a->n_users == b->n_users && a->login_cache_ttl_ms == b->login_cache_ttl_ms &&
          a->max_body_memory == b->max_body_memory))
        return false;
    for (size_t i = 0; i < a->n_users; i++)
        if (strcmp(a->users[i].name, b->users[i].name) || strcmp(a->users[i].value, b->users[i].value))
            return false;
    return true;
}

/* Logs each line of a config error report on its own (each names its
 * JSON path and line:column). */
static void log_errors(const struct config_errors *e)
{
    const char *p = e->text.p ? e->text.p : "";
    while (*p) {
        size_t l = strcspn(p, "\n");
        log_error("config", "%.*s", (int)l, p);
        p += l + (p[l] == '\n');
    }
}

/* SIGHUP: read and validate everything, then apply it in one pass of the
 * loop; on any error the running configuration stays untouched. */
static void reload(struct service *sv)
{
    sdnotify_reloading();
    reloadctl_begin(); /* before the file is read: see reloadctl.c */
    char shown[PRINTABLE_MAX];
    log_info("main", "SIGHUP: reloading %s", sv->path ? printable(sv->path, shown, sizeof shown) : "(built-in configuration)");
    struct buf why = BUF_INIT; /* the errors, for redpulse --reload */
    struct config_errors errs = {BUF_INIT, 0};
    struct cfg_gen *g = cfg_gen_load(sv->path, &errs);
    bool ok = g != NULL;
    if (!g) {
        log_errors(&errs);
        log_error("config", "reload failed with %zu error%s; still running the previous configuration",
                  errs.count, errs.count == 1 ? "" : "s");
        buf_puts(&why, errs.text.p ? errs.text.p : "");
    }
    config_errors_free(&errs);
    if (g) {
        const struct config *c = g->cfg;
        if (same_http(&sv->http_gen->cfg->http, &c->http)) {
            ok = http_reload_tls(sv->http) == 0; /* same files, maybe renewed */
            if (!ok)
                buf_puts(&why, "the TLS certificate files could not be read again (see the log); the "
                               "current certificate stays\n");
        } else {
            char err[256];
            /* the old server's requests finish first: none waits for this thread */
            poller_hold_reads(sv->poller, true);
            struct http_server *h = http_apply(sv->http, c, err, sizeof err);
            poller_hold_reads(sv->poller, false);
            if (h) {
                sv->http = h;
                cfg_gen_unref(sv->http_gen);
                sv->http_gen = cfg_gen_ref(g);
            } else {
                log_error("http", "new HTTP settings not applied: %s; still serving with the previous ones", err);
                buf_printf(&why, "new HTTP settings not applied: %s; still serving with the previous ones\n", err);
                ok = false;
            }
        }
        apply_log_level(sv, c);
        /* for the HTTP settings that serve now (the new ones unless they failed) */
        set_fd_budget(&sv->http_gen->cfg->http, c->n_instances);
        discover_apply(sv->disc, c); /* the poller's new set, before the old generation goes */
        if (alerts_reload(c)) { /* the engine runs g's alert settings now */
            cfg_gen_unref(sv->alerts_gen);
            sv->alerts_gen = cfg_gen_ref(g);
        }
        cfg_gen_unref(sv->gen);
        sv->gen = g;
        log_info("main", "configuration reloaded: %zu instance%s, hash %016llx%s", c->n_instances,
                 c->n_instances == 1 ? "" : "s", (unsigned long long)g->hash,
                 ok ? "" : " (with the errors above)");
    }
    reload_record(ok, sv->gen->hash);
    reloadctl_end(!g ? RELOADCTL_FAILED : ok ? RELOADCTL_OK : RELOADCTL_PARTIAL, sv->gen->hash, why.p);
    buf_free(&why);
    if (sv->ready) /* else READY=1 comes with the end of the first round */
        sdnotify_send("READY=1\nSTATUS=%s", sv->status);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct service *sv = arg;
    struct signalfd_siginfo si[8];
    bool hup = false;
    int stop = 0;
    /* one read: at most three signals are pending, and a flood that kept
     * a loop here busy would hold the stop and the watchdog (level-
     * triggered: what is left comes back on the next pass) */
    ssize_t n = read(fd, si, sizeof si);
    if (n > 0)
        for (size_t i = 0; i < (size_t)n / sizeof si[0]; i++) {
            if (si[i].ssi_signo == SIGHUP)
                hup = true;
            else if (!stop)
                stop = (int)si[i].ssi_signo;
        }
    if (stop) { /* a reload asked for with it is dropped */
        log_info("main", "signal %d: stopping", stop);
        sdnotify_send("STOPPING=1");
        event_base_loopbreak(sv->base);
    } else if (hup && sv->http) {
        reload(sv);
    }
}

int service_run(const char *config_path, bool level_fixed)
{
    /* Blocked from here to the exit, in this thread and every thread it
     * starts (they inherit the mask): the loop reads them (on_signal). */
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGHUP);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
    struct service sv;
    memset(&sv, 0, sizeof sv);
    sv.sig_fd = -1;
    sv.path = config_path;
    sv.level_fixed = level_fixed;
    struct config_errors errs = {BUF_INIT, 0};
    sv.gen = cfg_gen_load(config_path, &errs);
    if (!sv.gen) {
        char shown[PRINTABLE_MAX];
        fprintf(stderr, "%s%zu error%s in %s\n", errs.text.p ? errs.text.p : "", errs.count,
                errs.count == 1 ? "" : "s", printable(config_path, shown, sizeof shown));
        config_errors_free(&errs);
        return 2;
    }
    config_errors_free(&errs);
    const struct config *cfg = sv.gen->cfg;
    apply_log_level(&sv, cfg);
    reload_record(true, sv.gen->hash);
    sdnotify_init();

    signal(SIGPIPE, SIG_IGN);
    set_fd_budget(&cfg->http, cfg->n_instances);
    /* A fixed threshold: response buffers of a big /metrics (megabytes) are
     * mmapped and go back to the system when freed. glibc's adaptive one
     * would move them into the heap after the first free and keep the RSS. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    /* libevent's own clock, the coarse one: the poller's tick grid has its
     * own timerfd (tickgrid.c), and the loop's other timers (deadlines,
     * retries) need no better than its 4 ms. The precise clock
     * (EVENT_BASE_FLAG_PRECISE_TIMER) sets its timerfd before every
     * epoll_wait: two timerfd_settime a lone poll, where the grid's own
     * timerfd needs one (strace -c, 10 connections at 100 ms: 996 for 499
     * polls with it, 498 for 498 without; each about 1.4 µs here). */
    sv.base = event_base_new();
    sv.reg = registry_new(NULL, 0); /* the poller fills it */
    int rc = 1;
    char err[256];
    if (!sv.base) {
        log_error("main", "cannot create the event loop");
        goto out;
    }
    /* before HTTP answers: whoever saw it answer may signal at once */
    sv.sig_fd = signalfd(-1, &stop_sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sv.sig_fd < 0) {
        log_error("main", "cannot read signals: signalfd: %s", strerror(errno));
        goto out;
    }
    sv.sig = event_new(sv.base, sv.sig_fd, EV_READ | EV_PERSIST, on_signal, &sv);
    if (!sv.sig || event_add(sv.sig, NULL) != 0) {
        log_error("main", "cannot read signals: the event loop refused the signalfd");
        goto out;
    }
    /* before HTTP (its threads read the alert table); the engine keeps the
     * generation it started with (its rules, receivers and plans) */
    if (alerts_start(cfg) < 0)
        goto out;
    sv.alerts_gen = cfg_gen_ref(sv.gen);
    sv.poller = poller_new(sv.base, sv.reg);
    if (!sv.poller)
        goto out;
    poller_on_change(sv.poller, on_poller_change, &sv);
    sv.disc = discover_new(sv.base, sv.poller);
    discover_on_settled(sv.disc, on_poller_change, &sv);
    discover_apply(sv.disc, cfg); /* slots exist before the first scrape */
    sv.http = http_start(cfg, sv.reg, err, sizeof err);
    if (!sv.http) {
        log_error("http", "%s", err);
        goto out;
    }
    sv.http_gen = cfg_gen_ref(sv.gen);
    reloadctl_open(sv.gen->hash); /* SIGHUP is handled from here on */
    if (sdnotify_enabled()) { /* alerts change between the poller's up/down events */
        sv.status_tick = event_new(sv.base, -1, EV_PERSIST, on_status_tick, &sv);
        struct timeval one = {1, 0};
        event_add(sv.status_tick, &one);
    }
    uint64_t wd = sdnotify_watchdog_usec();
    if (wd) { /* fed from the loop itself, at half the interval systemd asked for */
        sv.watchdog = event_new(sv.base, -1, EV_PERSIST, on_watchdog, NULL);
        uint64_t half = wd / 2 < 1000 ? 1000 : wd / 2; /* a zero timeout would never fire again */
        struct timeval tv = {(time_t)(half / 1000000), (suseconds_t)(half % 1000000)};
        event_add(sv.watchdog, &tv);
        sdnotify_send("WATCHDOG=1");
    }
    log_info("main", "redpulse %s: %zu instance%s, serving http%s://%s/metrics", REDPULSE_VERSION,
             cfg->n_instances, cfg->n_instances == 1 ? "" : "s", cfg->http.tls_cert_file ? "s" : "",
             cfg->http.listen);
    on_poller_change(&sv); /* READY=1 now if there is nothing to poll */
    event_base_dispatch(sv.base);
    rc = 0;
out:
    /* HTTP first (stops accepting, finishes what is in flight, bounded),
     * then the Redis connections. A delivery queue, once there is one,
     * gets its bounded flush here, between the two. */
    poller_hold_reads(sv.poller, true); /* a request in flight waits for no render */
    http_stop(sv.http);
    log_debug("main", "HTTP stopped");
    poller_free(sv.poller);
    discover_free(sv.disc);
    log_debug("main", "Redis connections closed");
    alerts_stop(); /* after the poller: it holds pointers into alert state; a last save */
    cfg_gen_unref(sv.alerts_gen);
    if (sv.sig) /* a signal that comes from here on stays pending, blocked */
        event_free(sv.sig);
    if (sv.sig_fd >= 0)
        close(sv.sig_fd);
    if (sv.watchdog)
        event_free(sv.watchdog);
    if (sv.status_tick)
        event_free(sv.status_tick);
    /* a bufferevent callback deferred when the loop stopped (a connect
     * that had just completed, or was refused, at SIGTERM) holds its
     * bufferevent although the conn is closed: one pass of the loop lets
     * libevent finalize it (the conns' callbacks are unset; nothing of ours
     * runs) */
    if (sv.base)
        event_base_loop(sv.base, EVLOOP_NONBLOCK);
    registry_free(sv.reg);
    if (sv.base)
        event_base_free(sv.base);
    cfg_gen_unref(sv.http_gen);
    cfg_gen_unref(sv.gen);
    sdnotify_close();
    reloadctl_close();
    libevent_global_shutdown();
    return rc;
}
