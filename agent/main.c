/*
 * main.c - the command line: the one-shot modes (--check-config,
 * --hash-password), then service_run() for the daemon.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "advise.h"
#include "alerts.h"
#include "auth.h"
#include "deliver.h"
#include "config.h"
#include "log.h"
#include "reload.h"
#include "reloadctl.h"
#include "service.h"
#include "util.h"

static const char usage[] =
    "usage: redpulse [--config FILE] [--log-level LEVEL] [--log-format FORMAT]\n"
    "       redpulse --check-config FILE\n"
    "       redpulse --hash-password < password\n"
    "       redpulse --advise ADDRESS [--seconds N]   (write-tuning report; --advise --help)\n"
    "       redpulse --test-receiver NAME --config FILE\n"
    "       redpulse --reload PID [--reload-timeout SECONDS]\n"
    "\n"
    "Polls INFO on Redis instances and serves Prometheus metrics and JSON.\n"
    "Without --config it monitors " REDPULSE_DEFAULT_ADDRESS " and listens on http://" REDPULSE_DEFAULT_LISTEN "/.\n"
    "\n"
    "  -c, --config FILE        JSON configuration file\n"
    "  -t, --check-config FILE  validate FILE, print \"configuration OK\" or every error (exit 2)\n"
    "  -l, --log-level LEVEL    error, warn, info (default) or debug; overrides the file\n"
    "      --log-format FORMAT  text (timestamped lines), journal (syslog priority\n"
    "                           prefixes, no timestamp) or json (one object a line);\n"
    "                           default: journal when stderr is the journal, else text\n"
    "      --hash-password      read a password on stdin, print its bcrypt hash for\n"
    "                           http.basic_auth_users\n"
    "      --test-receiver NAME send a test notification to alert receiver NAME and\n"
    "                           print what it answered (exit 0 on 2xx)\n"
    "      --reload PID         SIGHUP the daemon PID and wait for its reload to end:\n"
    "                           exit 0 when applied, 1 with the errors when not\n"
    "                           (needs $RUNTIME_DIRECTORY, as systemd sets it)\n"
    "      --reload-timeout SECONDS  give up waiting after SECONDS (default 30; exit 3)\n"
    "  -V, --version            print the version\n"
    "  -h, --help               print this help\n";

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

/* Through cfg_gen_load, as the daemon loads at start and on reload: one
 * read path, one size limit, the same messages (path NULL: built-in). */
static struct cfg_gen *load(const char *path)
{
    struct config_errors errs = {BUF_INIT, 0};
    struct cfg_gen *g = cfg_gen_load(path, &errs);
    char shown[PRINTABLE_MAX];
    if (!g)
        fprintf(stderr, "%s%zu error%s in %s\n", errs.text.p ? errs.text.p : "", errs.count,
                errs.count == 1 ? "" : "s", path ? printable(path, shown, sizeof shown) : "the built-in configuration");
    config_errors_free(&errs);
    return g;
}

/* A SIGHUP's default action ends the process, and the daemon takes signals
 * over only in service_run(): one sent while the command line is read (a
 * reload asked for the moment the process starts) would kill it. SIGHUP is
 * held blocked from the first line of main(); service_run() reads the held
 * one from its signalfd (a reload), and a one-shot mode gives the process
 * back the mask it started with before it runs, so that a hang-up ends it
 * as it would have. */
static sigset_t start_mask;

static void hold_sighup(void)
{
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    sigprocmask(SIG_BLOCK, &hup, &start_mask);
}

static void release_sighup(void) { sigprocmask(SIG_SETMASK, &start_mask, NULL); }

int main(int argc, char **argv)
{
    hold_sighup();
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", required_argument, NULL, 't'},
        {"log-level", required_argument, NULL, 'l'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'}, {"hash-password", no_argument, NULL, 'H'},
        {"log-format", required_argument, NULL, 'F'}, {"test-receiver", required_argument, NULL, 'X'},
        {"reload", required_argument, NULL, 'R'}, {"reload-timeout", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0}};
    const char *config_path = NULL, *check_path = NULL, *level = NULL, *format = NULL, *test_receiver = NULL;
    const char *reload_pid = NULL, *reload_timeout = NULL;
    char shown[PRINTABLE_MAX]; /* a word of the command line, quoted in a message */
    int o;
    for (int i = 1; i < argc; i++) /* the one-shot report has its own options */
        if (strcmp(argv[i], "--advise") == 0 || strncmp(argv[i], "--advise=", 9) == 0) {
            release_sighup();
            return advise_cli_main(argc, argv);
        }
    while ((o = getopt_long(argc, argv, "c:t:l:Vh", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config_path = optarg; break;
        case 't': check_path = optarg; break;
        case 'l': level = optarg; break;
        case 'F': format = optarg; break;
        case 'R': reload_pid = optarg; break;
        case 'T': reload_timeout = optarg; break;
        case 'V': printf("redpulse %s\n", REDPULSE_VERSION); return 0;
        case 'h': fputs(usage, stdout); return 0;
        case 'H': release_sighup(); return hash_password();
        case 'X': test_receiver = optarg; break;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "redpulse: unexpected argument \"%s\"\n%s", printable(argv[optind], shown, sizeof shown), usage);
        return 2;
    }
    enum log_level lvl;
    if (level && log_parse_level(level, &lvl) < 0) {
        fprintf(stderr, "redpulse: unknown log level \"%s\" (error, warn, info, debug)\n",
                printable(level, shown, sizeof shown));
        return 2;
    }
    if (level)
        log_set_level(lvl);
    enum log_format fmt = log_stderr_is_journal() ? LOG_FORMAT_JOURNAL : LOG_FORMAT_TEXT;
    if (format && log_parse_format(format, &fmt) < 0) {
        fprintf(stderr, "redpulse: unknown log format \"%s\" (text, journal, json)\n",
                printable(format, shown, sizeof shown));
        return 2;
    }
    log_set_format(fmt);
    if (reload_pid || check_path || test_receiver)
        release_sighup(); /* one-shot modes */
    if (reload_pid)
        return reloadctl_client(reload_pid, reload_timeout);
    if (check_path) {
        struct cfg_gen *g = load(check_path);
        if (!g)
            return 2;
        printf("configuration OK (%zu instance%s)\n", g->cfg->n_instances, g->cfg->n_instances == 1 ? "" : "s");
        cfg_gen_unref(g);
        return 0;
    }
    if (test_receiver) { /* one notification through the real delivery path */
        struct cfg_gen *g = load(config_path);
        if (!g)
            return 2;
        int trc = deliver_test_receiver(g->cfg->alerts, test_receiver, stdout);
        cfg_gen_unref(g);
        return trc;
    }
    return service_run(config_path, level != NULL);
}
