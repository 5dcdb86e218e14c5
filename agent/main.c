/*
 * main.c - wiring only: command line, configuration, then the event loop
 * (poller), the HTTP server, and a clean stop on SIGTERM/SIGINT.
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts.h"
#include "auth.h"
#include "deliver.h"
#include "config.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "poller.h"
#include "publish.h"
#include "util.h"

static const char usage[] =
    "usage: redpulse [--config FILE] [--log-level LEVEL]\n"
    "       redpulse --check-config FILE\n"
    "       redpulse --hash-password < password\n"
    "       redpulse --test-receiver NAME --config FILE\n"
    "\n"
    "Polls INFO on Redis instances and serves Prometheus metrics and JSON.\n"
    "Without --config it monitors " REDPULSE_DEFAULT_ADDRESS " and listens on http://" REDPULSE_DEFAULT_LISTEN "/.\n"
    "\n"
    "  -c, --config FILE        JSON configuration file\n"
    "  -t, --check-config FILE  validate FILE, print \"configuration OK\" or every error (exit 2)\n"
    "  -l, --log-level LEVEL    error, warn, info (default) or debug; overrides the file\n"
    "      --hash-password      read a password on stdin, print its bcrypt hash for\n"
    "                           http.basic_auth_users\n"
    "      --test-receiver NAME send a test notification to alert receiver NAME and\n"
    "                           print what it answered (exit 0 on 2xx)\n"
    "  -V, --version            print the version\n"
    "  -h, --help               print this help\n";

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_info("main", "signal %d: stopping", (int)sig);
    event_base_loopbreak(arg);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig, (void)what;
    struct http_server *http = arg;
    log_info("main", "SIGHUP: reloading the HTTP TLS certificate (other settings need a restart)");
    http_reload_tls(http);
}

static int hash_password(void)
{
    char pw[1024];
    if (!fgets(pw, sizeof pw, stdin)) {
        fprintf(stderr, "redpulse: no password on standard input\n");
        return 2;
    }
    pw[strcspn(pw, "\r\n")] = '\0';
    char out[128];
    int rc = auth_hash_password(pw, 10, out, sizeof out);
    explicit_bzero(pw, sizeof pw);
    if (rc < 0) {
        fprintf(stderr, "redpulse: this system's crypt() cannot make bcrypt hashes\n");
        return 1;
    }
    printf("%s\n", out);
    return 0;
}

/* One descriptor per instance: raise the soft limit to the hard one, and
 * keep some for HTTP clients and the process itself. */
static void set_fd_budget(const struct config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    long reserve = 32 + (long)cfg->http.max_connections;
    long budget = (long)rl.rlim_cur - reserve;
    if (budget < 1)
        budget = 1;
    conn_set_fd_budget(budget);
    if ((size_t)budget < cfg->n_instances)
        log_warn("main", "file descriptor limit %llu allows %ld Redis connections for %zu instances "
                 "(%ld kept for HTTP); raise LimitNOFILE / ulimit -n",
                 (unsigned long long)rl.rlim_cur, budget, cfg->n_instances, reserve);
}

static struct config *load(const char *path)
{
    struct config_errors errs = {BUF_INIT, 0};
    struct config *cfg = path ? config_load(path, &errs) : config_default();
    if (!cfg)
        fprintf(stderr, "%s%zu error%s in %s\n", errs.text.p ? errs.text.p : "", errs.count,
                errs.count == 1 ? "" : "s", path);
    config_errors_free(&errs);
    return cfg;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", required_argument, NULL, 't'},
        {"log-level", required_argument, NULL, 'l'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'}, {"hash-password", no_argument, NULL, 'H'},
        {"test-receiver", required_argument, NULL, 'R'}, {NULL, 0, NULL, 0}};
    const char *config_path = NULL, *check_path = NULL, *level = NULL, *test_receiver = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "c:t:l:Vh", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config_path = optarg; break;
        case 't': check_path = optarg; break;
        case 'l': level = optarg; break;
        case 'V': printf("redpulse %s\n", REDPULSE_VERSION); return 0;
        case 'h': fputs(usage, stdout); return 0;
        case 'H': return hash_password();
        case 'R': test_receiver = optarg; break;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "redpulse: unexpected argument \"%s\"\n%s", argv[optind], usage);
        return 2;
    }
    enum log_level lvl;
    if (level && log_parse_level(level, &lvl) < 0) {
        fprintf(stderr, "redpulse: unknown log level \"%s\" (error, warn, info, debug)\n", level);
        return 2;
    }
    if (level)
        log_set_level(lvl);
    if (check_path) {
        struct config *cfg = load(check_path);
        if (!cfg)
            return 2;
        printf("configuration OK (%zu instance%s)\n", cfg->n_instances, cfg->n_instances == 1 ? "" : "s");
        config_free(cfg);
        return 0;
    }
    struct config *cfg = load(config_path);
    if (!cfg)
        return 2;
    if (test_receiver) {
        int trc = deliver_test_receiver(cfg->alerts, test_receiver, stdout);
        config_free(cfg);
        return trc;
    }
    if (!level && cfg->log_level && log_parse_level(cfg->log_level, &lvl) == 0)
        log_set_level(lvl);

    signal(SIGPIPE, SIG_IGN);
    set_fd_budget(cfg);
    /* A fixed threshold: response buffers of a big /metrics (megabytes) are
     * mmapped and go back to the system when freed. glibc's adaptive one
     * would move them into the heap after the first free and keep the RSS. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    evthread_use_pthreads();
    /* libevent's default coarse clock, on purpose: EVENT_BASE_FLAG_PRECISE_TIMER
     * (timerfd) ended the occasional early wake-up at low poll rates, but at
     * 5,000 instances it cost 3.0 context switches a poll instead of 2.0,
     * since the coarse clock lets ticks due together share a wake-up */
    struct event_base *base = event_base_new();
    const char **names = xcalloc(cfg->n_instances, sizeof *names);
    for (size_t i = 0; i < cfg->n_instances; i++)
        names[i] = cfg->instances[i].name;
    struct registry *reg = registry_new(names, cfg->n_instances);
    free(names);
    int rc = 1;
    struct poller *poller = NULL;
    struct http_server *http = NULL;
    struct event *sigs[3] = {NULL, NULL, NULL};
    char err[256];
    if (!base) {
        log_error("main", "cannot create the event loop");
        goto out;
    }
    if (alerts_start(cfg) < 0) /* before HTTP: its threads read the alert table */
        goto out;
    http = http_start(cfg, reg, err, sizeof err);
    if (!http) {
        log_error("http", "%s", err);
        goto out;
    }
    poller = poller_new(base, cfg, reg);
    if (!poller)
        goto out;
    sigs[0] = evsignal_new(base, SIGTERM, on_stop, base);
    sigs[1] = evsignal_new(base, SIGINT, on_stop, base);
    sigs[2] = evsignal_new(base, SIGHUP, on_hup, http);
    for (int i = 0; i < 3; i++)
        evsignal_add(sigs[i], NULL);
    log_info("main", "redpulse %s: %zu instance%s, serving http://%s/metrics", REDPULSE_VERSION,
             cfg->n_instances, cfg->n_instances == 1 ? "" : "s", cfg->http.listen);
    event_base_dispatch(base);
    rc = 0;
out:
    http_stop(http);
    poller_free(poller);
    alerts_stop(); /* after the poller: it holds pointers into alert state */
    for (int i = 0; i < 3; i++)
        if (sigs[i])
            event_free(sigs[i]);
    registry_free(reg);
    if (base)
        event_base_free(base);
    config_free(cfg);
    libevent_global_shutdown();
    return rc;
}
