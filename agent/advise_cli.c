/*
 * advise_cli.c - `redpulse --advise ADDRESS [--seconds N]`: the advisor as a
 * one-shot report for one instance, what an operator runs before and after
 * changing a setting. Two INFO samples N seconds apart and the settings
 * (CONFIG GET), the same checks and words as the daemon, host checks when the
 * server is on this host. Blocking hiredis calls: nothing else runs here.
 * Exit status: 0 no warning or critical finding, 1 warnings, 2 critical,
 * 3 could not advise (usage, connection, AUTH or INFO failed, or CONFIG GET
 * failed and nothing above info was found).
 */
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "advise.h"
#include "cmdclass.h"
#include "config.h"
#include "conn.h"
#include "util.h"

static const char usage[] =
    "usage: redpulse --advise ADDRESS [--seconds N] [--config FILE] [--host-root DIR] [--password-env VAR]\n"
    "\n"
    "Measures one Redis for N seconds (default 10) and prints the write-tuning advice:\n"
    "what was measured, the change to make and what it costs. ADDRESS is\n"
    "redis://[user@]host:port or unix:///path. The password comes from the\n"
    "environment variable VAR, never from the command line. Host checks (THP,\n"
    "overcommit, somaxconn, open files) run when the server is on this host,\n"
    "reading the kernel's files under DIR (default /). With --config, the \"advice\"\n"
    "section of the agent's configuration file sets thresholds, switched-off\n"
    "checks and the host root, as in the daemon.\n"
    "Exit status: 0 nothing above info, 1 warnings, 2 critical, 3 could not advise.\n";

static enum cmd_class classify(void *ctx, const char *cmd)
{
    (void)ctx;
    return cmdclass_builtin(cmd);
}

/*
 * The connection. Each sample has its own (connect, AUTH, commands, close):
 * nothing sits idle through --seconds, so a server's `timeout` shorter than
 * the measurement cannot close it under us. Replies are read as the daemon
 * reads them: the framing scan of conn.c caps a reply at MAX_REPLY bytes
 * whatever its shape, and each command has one deadline for all of its
 * exchange, not one per read (a peer dripping a byte at a time ends there).
 */
#define MAX_REPLY (1u << 20) /* the daemon's default max_reply_bytes */
#define DEADLINE_MS 5000     /* connect, and each command's whole exchange */

struct cli {
    const struct instance_cfg *inst;
    const char *addr, *pw;
    redisContext *c;
};

/* A peer's text, fit for a terminal: control characters become spaces,
 * bytes that are not UTF-8 '?', at most cap - 1 bytes ("..." when cut). */
static const char *peer_text(char *dst, size_t cap, const char *s, size_t n)
{
    size_t o = n < cap ? n : cap - 1;
    memcpy(dst, s, o);
    dst[o] = '\0';
    utf8_clean(dst, o, ' ');
    if (o < n && o >= 3) {
        size_t e = o - 3; /* "..." starts on a character's first byte */
        while (e > 0 && ((unsigned char)dst[e] & 0xc0) == 0x80)
            e--;
        memcpy(dst + e, "...", 4);
    }
    return dst;
}

static const char *type_name(int type)
{
    switch (type) {
    case REDIS_REPLY_STRING: return "a bulk string";
    case REDIS_REPLY_ARRAY: return "an array";
    case REDIS_REPLY_INTEGER: return "an integer";
    case REDIS_REPLY_NIL: return "a nil";
    case REDIS_REPLY_STATUS: return "a status";
    case REDIS_REPLY_ERROR: return "an error";
    default: return "an unknown reply";
    }
}

/* What one command got back: the reply's type and text (strings, status,
 * errors); an array goes to on_array while the reply is alive. */
struct answer {
    int type; /* 0: none (the exchange failed: why says so) */
    char *text;
    size_t len;
    int (*on_array)(void *arg, const redisReply *r);
    void *arg;
    char why[200];
};

static bool take(void *arg, redisReply *r)
{
    struct answer *a = arg;
    a->type = r->type;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR) {
        a->text = xmalloc(r->len + 1);
        memcpy(a->text, r->str, r->len);
        a->text[r->len] = '\0';
        a->len = r->len;
    } else if (r->type == REDIS_REPLY_ARRAY && a->on_array) {
        a->on_array(a->arg, r);
    }
    return false; /* one reply per command */
}

static int ms_left(uint64_t deadline_us)
{
    uint64_t now = now_mono_us();
    return now >= deadline_us ? 0 : (int)((deadline_us - now + 999) / 1000);
}

/* Sends argv and reads its reply into *a; false (a->why set) when the
 * exchange fails: timeout, closed, too large, not RESP. */
static bool command(struct cli *k, int argc, const char **argv, struct answer *a)
{
    uint64_t deadline = now_mono_us() + DEADLINE_MS * 1000ull;
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    int fd = k->c->fd;
    bool ok = false;
    redisReader *rd = resp_reader_new();
    if (len < 0 || !rd) {
        snprintf(a->why, sizeof a->why, "out of memory");
        goto done;
    }
    for (int sent = 0; sent < len;) {
        struct pollfd pf = {fd, POLLOUT, 0};
        if (poll(&pf, 1, ms_left(deadline)) == 0) {
            snprintf(a->why, sizeof a->why, "the command was not sent within %d s", DEADLINE_MS / 1000);
            goto done;
        }
        ssize_t w = send(fd, cmd + sent, (size_t)(len - sent), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            snprintf(a->why, sizeof a->why, "sending: %s", strerror(errno));
            goto done;
        }
        sent += w > 0 ? (int)w : 0;
    }
    char buf[16384];
    while (!a->type) {
        struct pollfd pf = {fd, POLLIN, 0};
        int left = ms_left(deadline);
        if (left == 0 || poll(&pf, 1, left) == 0) {
            snprintf(a->why, sizeof a->why, "no whole reply within %d s", DEADLINE_MS / 1000);
            goto done;
        }
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0) {
            snprintf(a->why, sizeof a->why, "the server closed the connection");
            goto done;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            snprintf(a->why, sizeof a->why, "reading: %s", strerror(errno));
            goto done;
        }
        char detail[160];
        if (resp_feed(rd, buf, (size_t)n, MAX_REPLY, take, a, detail, sizeof detail) != OUTCOME_OK) {
            snprintf(a->why, sizeof a->why, "%s", detail);
            goto done;
        }
    }
    ok = true;
done:
    resp_reader_free(rd);
    if (cmd)
        redisFreeCommand(cmd);
    return ok;
}

static void answer_clear(struct answer *a)
{
    free(a->text);
    memset(a, 0, sizeof *a);
}

/* An error reply's text (cleaned), or "answered with <type>", for messages. */
static const char *what_came(const struct answer *a, char *dst, size_t cap)
{
    char t[160];
    if (a->type == REDIS_REPLY_ERROR)
        snprintf(dst, cap, "%s", peer_text(t, sizeof t, a->text, a->len));
    else
        snprintf(dst, cap, "answered with %s", type_name(a->type));
    return dst;
}

static void close_session(struct cli *k)
{
    if (k->c)
        redisFree(k->c);
    k->c = NULL;
}

/* Connects and authenticates; false after saying why. */
static bool open_session(struct cli *k)
{
    struct timeval tv = {DEADLINE_MS / 1000, 0};
    k->c = k->inst->kind == ADDR_UNIX ? redisConnectUnixWithTimeout(k->inst->path, tv)
                                      : redisConnectWithTimeout(k->inst->host, k->inst->port, tv);
    if (!k->c || k->c->err) {
        fprintf(stderr, "redpulse: cannot connect to %s: %s\n", k->addr, k->c ? k->c->errstr : "out of memory");
        close_session(k);
        return false;
    }
    if (!k->pw)
        return true;
    const char *argv[3] = {"AUTH", k->inst->username ? k->inst->username : k->pw, k->pw};
    struct answer a = {0};
    bool ok = command(k, k->inst->username ? 3 : 2, argv, &a) && a.type == REDIS_REPLY_STATUS;
    if (!ok) {
        char w[200];
        fprintf(stderr, "redpulse: AUTH failed: %s\n", a.type ? what_came(&a, w, sizeof w) : a.why);
        close_session(k);
    }
    answer_clear(&a);
    return ok;
}

/* INFO as a sample; NULL (after saying why) on failure. */
static struct info_sample *info(struct cli *k, uint64_t *at)
{
    const char *argv[2] = {"INFO", "all"};
    struct answer a = {0};
    struct info_sample *s = NULL;
    char w[200];
    if (!command(k, 2, argv, &a))
        fprintf(stderr, "redpulse: INFO failed: %s\n", a.why);
    else if (a.type == REDIS_REPLY_ERROR)
        fprintf(stderr, "redpulse: INFO refused: %s\n", what_came(&a, w, sizeof w));
    else if (a.type != REDIS_REPLY_STRING)
        fprintf(stderr, "redpulse: INFO answered with %s, not the bulk string of its text\n", type_name(a.type));
    else {
        *at = now_mono_us();
        s = info_parse(a.text, a.len);
        if (!info_sval(s, INFO_S_REDIS_VERSION)) {
            fprintf(stderr, "redpulse: the INFO reply has no redis_version: not the INFO of a Redis server\n");
            info_sample_free(s);
            s = NULL;
        }
    }
    answer_clear(&a);
    return s;
}

static int merge_config(void *arg, const redisReply *r) { return collect_config_reply(arg, r); }

/* The settings; false (after saying why) when they could not be read. */
static bool config_get(struct cli *k, const struct info_sample *s, struct config_values *cv)
{
    const char *argv[CFGP_COUNT + 2];
    const char *v = info_sval(s, INFO_S_REDIS_VERSION);
    bool several = v && atoi(v) >= 7;
    for (int p = 0; p < (several ? 1 : CFGP_COUNT); p++) {
        int n = several ? collect_config_argv("CONFIG", argv) : collect_config_argv_one("CONFIG", (enum cfg_param)p, argv);
        struct answer a = {.on_array = merge_config, .arg = cv};
        char w[200];
        bool ok = command(k, n, argv, &a) && a.type == REDIS_REPLY_ARRAY;
        if (!ok)
            fprintf(stderr, "redpulse: CONFIG GET %s: the checks of settings are skipped\n",
                    !a.type ? a.why : a.type == REDIS_REPLY_ERROR ? what_came(&a, w, sizeof w) : type_name(a.type));
        answer_clear(&a);
        if (!ok)
            return false;
    }
    return true;
}

static void print_wrapped(const char *label, const char *text)
{
    printf("  %-10s %s\n", label, text);
}

int advise_cli_main(int argc, char **argv)
{
    static const struct option opts[] = {{"advise", required_argument, NULL, 'a'},
                                         {"seconds", required_argument, NULL, 's'},
                                         {"host-root", required_argument, NULL, 'r'},
                                         {"password-env", required_argument, NULL, 'p'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *addr = NULL, *root = NULL, *pw_env = NULL, *cfg_path = NULL;
    char shown[PRINTABLE_MAX]; /* a word of the command line, quoted in a message */
    double seconds = 10;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'a': addr = optarg; break;
        case 's':
            if (!parse_double(optarg, &seconds) || seconds < 1 || seconds > 3600) {
                fprintf(stderr, "redpulse: --seconds takes a number of seconds from 1 to 3600, not \"%s\"\n",
                        printable(optarg, shown, sizeof shown));
                return 3;
            }
            break;
        case 'r': root = optarg; break;
        case 'p': pw_env = optarg; break;
        case 'c': cfg_path = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 3;
        }
    }
    if (!addr || optind < argc) {
        fputs(usage, stderr);
        return 3;
    }
    /* both are quoted in messages as written from here on */
    if (strcmp(printable(addr, shown, sizeof shown), addr) != 0) { /* cut, or with '?' for what is not text */
        fprintf(stderr, "redpulse: --advise takes an address of printable text, not \"%s\"\n", shown);
        return 3;
    }
    if (pw_env && (!*pw_env || strspn(pw_env, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
                                   strlen(pw_env))) {
        fprintf(stderr, "redpulse: --password-env takes a variable name (letters, digits and _), not \"%s\"\n",
                printable(pw_env, shown, sizeof shown));
        return 3;
    }
    struct config *file = NULL;
    if (cfg_path) {
        struct config_errors errs = {BUF_INIT, 0};
        file = config_load(cfg_path, &errs);
        if (!file)
            fprintf(stderr, "%s%zu error%s in %s\n", errs.text.p ? errs.text.p : "", errs.count,
                    errs.count == 1 ? "" : "s", printable(cfg_path, shown, sizeof shown));
        config_errors_free(&errs);
        if (!file)
            return 3;
    }
    struct instance_cfg inst = {0};
    struct buf why = BUF_INIT;
    if (config_parse_address(addr, &inst, &why) < 0 || inst.tls.enabled) {
        /* a password in the address is not echoed, and the way to give one
         * here is named: userinfo as config_parse_address reads it, the
         * authority (after any scheme, up to the first '/') to its last '@' */
        const char *scheme = strstr(addr, "://"), *auth = scheme ? scheme + 3 : addr;
        size_t alen = strcspn(auth, "/");
        const char *at = NULL;
        for (const char *p = auth; p < auth + alen; p++)
            if (*p == '@')
                at = p;
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon)
            fprintf(stderr, "redpulse: %.*s:***%s: passwords are not accepted in the address; give the password in "
                    "an environment variable named by --password-env\n", (int)(colon - addr), addr, at);
        else
            fprintf(stderr, "redpulse: %s: %s\n", addr, inst.tls.enabled ? "rediss:// is not supported by --advise" : why.p);
        buf_free(&why);
        free(inst.host), free(inst.path), free(inst.username);
        config_free(file);
        return 3;
    }
    buf_free(&why);
    inst.name = (char *)addr;
    signal(SIGPIPE, SIG_IGN); /* a peer gone mid-send is an error to report, not the end of the process */
    struct cli cl = {&inst, addr, NULL, NULL};
    int rc = 3;
    struct info_sample *s1 = NULL, *s2 = NULL;
    struct config_values cv = {0};
    struct advisor *a = NULL;
    cl.pw = pw_env ? getenv(pw_env) : NULL;
    if (pw_env && (!cl.pw || !*cl.pw)) {
        fprintf(stderr, "redpulse: environment variable %s is not set or empty\n", pw_env);
        goto out;
    }
    uint64_t t1, t2;
    if (!open_session(&cl) || !(s1 = info(&cl, &t1)))
        goto out;
    bool settings = config_get(&cl, s1, &cv);
    close_session(&cl); /* nothing held open through the measurement */
    /* the file's advice section, for an instance of no particular name */
    struct advice_cfg hc = {.enabled = true, .host_root = (char *)"/", .host_interval = ADVICE_HOST_INTERVAL};
    if (file && file->advice)
        hc = *file->advice;
    hc.enabled = true, hc.n_inst = 0;
    if (root)
        hc.host_root = (char *)root;
    if (!file || !file->advice)
        advice_opts_default(&hc.global);
    a = advisor_new(&hc, addr);
    double now = now_real_s();
    advise_on_config(a, &inst, &cv, s1, now);
    struct derived d;
    derive(NULL, 0, s1, t1, now, classify, NULL, &d);
    advise_poll(a, &cv, s1, &d, now);
    derived_clear(&d);
    fprintf(stderr, "redpulse: measuring %s for %.0f s...\n", addr, seconds);
    struct timespec ts = {(time_t)seconds, (long)((seconds - floor(seconds)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
    if (!open_session(&cl) || !(s2 = info(&cl, &t2)))
        goto out;
    close_session(&cl);
    now = now_real_s();
    derive(s1, t1, s2, t2, now, classify, NULL, &d);
    advise_poll(a, &cv, s2, &d, now);
    derived_clear(&d);

    const char *ver = info_sval(s2, INFO_S_REDIS_VERSION), *role = info_sval(s2, INFO_S_ROLE);
    printf("redpulse advice for %s (Redis %s, %s), measured over %.0f s; host checks: %s\n", addr, ver ? ver : "?",
           role ? role : "?", seconds, a->local == 1 ? "yes" : "no (not on this host)");
    if (!settings)
        printf("(settings unknown: CONFIG GET failed, see above; the checks of settings did not run)\n");
    int worst = advisor_worst(a);
    if (a->n_holding == 0)
        printf(settings ? "\nNo findings.\n" : "\nNo findings among the checks that ran.\n");
    for (int sev = ADV_CRITICAL; sev >= ADV_INFO; sev--)
        for (int k = 0; k < ADV_COUNT; k++) {
            const struct advice_finding *f = a->f[k];
            if (!f || (int)f->sev != sev)
                continue;
            char up[16];
            const char *s = advice_severity_str(f->sev);
            size_t i = 0;
            for (; s[i] && i < sizeof up - 1; i++)
                up[i] = (char)(s[i] - 32 * (s[i] >= 'a' && s[i] <= 'z'));
            up[i] = '\0';
            printf("\n%s %s: %s\n", up, advice_check_name((enum advice_check)k), f->title);
            print_wrapped("evidence:", f->evidence);
            print_wrapped("change:", f->recommendation);
            print_wrapped("trade-off:", f->tradeoff);
        }
    /* an all-clear needs every check to have run: without the settings
     * it is "could not advise" (warnings and critical findings still say so) */
    rc = worst == ADV_CRITICAL ? 2 : worst == ADV_WARNING ? 1 : settings ? 0 : 3;
out:
    advisor_free(a);
    config_values_clear(&cv);
    info_sample_free(s1);
    info_sample_free(s2);
    close_session(&cl);
    free(inst.host), free(inst.path), free(inst.username);
    config_free(file);
    return rc;
}
