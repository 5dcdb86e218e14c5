/*
 * advise_cli.c - `redpulse --advise ADDRESS [--seconds N]`: the advisor as a
 * one-shot report for one instance, what an operator runs before and after
 * changing a setting. Two INFO samples N seconds apart and the settings
 * (CONFIG GET), the same checks and words as the daemon, host checks when the
 * server is on this host. Blocking hiredis calls: nothing else runs here.
 * Exit status: 0 no warning or critical finding, 1 warnings, 2 critical,
 * 3 could not advise (usage, connection, refused commands).
 */
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "advise.h"
#include "cmdclass.h"
#include "config.h"
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

/* INFO as a sample; NULL (after saying why) on failure. */
static struct info_sample *info(redisContext *c, uint64_t *at)
{
    redisReply *r = redisCommand(c, "INFO all");
    if (!r || r->type != REDIS_REPLY_STRING) {
        fprintf(stderr, "redpulse: INFO failed: %s\n", r && r->str ? r->str : c->errstr);
        if (r)
            freeReplyObject(r);
        return NULL;
    }
    *at = now_mono_us();
    struct info_sample *s = info_parse(r->str, r->len);
    freeReplyObject(r);
    return s;
}

static void config_get(redisContext *c, const struct info_sample *s, struct config_values *cv)
{
    const char *argv[CFGP_COUNT + 2];
    const char *v = info_sval(s, INFO_S_REDIS_VERSION);
    if (v && atoi(v) >= 7) {
        int n = collect_config_argv("CONFIG", argv);
        redisReply *r = redisCommandArgv(c, n, argv, NULL);
        if (r && r->type != REDIS_REPLY_ERROR)
            collect_config_reply(cv, r);
        else
            fprintf(stderr, "redpulse: CONFIG GET refused (%s): the checks of settings are skipped\n",
                    r && r->str ? r->str : c->errstr);
        if (r)
            freeReplyObject(r);
        return;
    }
    for (int p = 0; p < CFGP_COUNT; p++) {
        int n = collect_config_argv_one("CONFIG", (enum cfg_param)p, argv);
        redisReply *r = redisCommandArgv(c, n, argv, NULL);
        if (r && r->type == REDIS_REPLY_ARRAY)
            collect_config_reply(cv, r);
        if (r)
            freeReplyObject(r);
    }
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
    double seconds = 10;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'a': addr = optarg; break;
        case 's':
            if (!parse_double(optarg, &seconds) || seconds < 1 || seconds > 3600) {
                fprintf(stderr, "redpulse: --seconds takes a number of seconds from 1 to 3600, not \"%s\"\n", optarg);
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
    struct config *file = NULL;
    if (cfg_path) {
        struct config_errors errs = {BUF_INIT, 0};
        file = config_load(cfg_path, &errs);
        if (!file)
            fprintf(stderr, "%s%zu error%s in %s\n", errs.text.p ? errs.text.p : "", errs.count,
                    errs.count == 1 ? "" : "s", cfg_path);
        config_errors_free(&errs);
        if (!file)
            return 3;
    }
    struct instance_cfg inst = {0};
    struct buf why = BUF_INIT;
    if (config_parse_address(addr, &inst, &why) < 0 || inst.tls.enabled) {
        fprintf(stderr, "redpulse: %s: %s\n", addr, inst.tls.enabled ? "rediss:// is not supported by --advise" : why.p);
        buf_free(&why);
        free(inst.host), free(inst.path), free(inst.username);
        config_free(file);
        return 3;
    }
    buf_free(&why);
    inst.name = (char *)addr;
    struct timeval tv = {5, 0};
    redisContext *c = inst.kind == ADDR_UNIX ? redisConnectUnixWithTimeout(inst.path, tv)
                                             : redisConnectWithTimeout(inst.host, inst.port, tv);
    int rc = 3;
    struct info_sample *s1 = NULL, *s2 = NULL;
    struct config_values cv = {0};
    struct advisor *a = NULL;
    if (!c || c->err) {
        fprintf(stderr, "redpulse: cannot connect to %s: %s\n", addr, c ? c->errstr : "out of memory");
        goto out;
    }
    redisSetTimeout(c, tv);
    const char *pw = pw_env ? getenv(pw_env) : NULL;
    if (pw_env && (!pw || !*pw)) {
        fprintf(stderr, "redpulse: environment variable %s is not set or empty\n", pw_env);
        goto out;
    }
    if (pw) {
        redisReply *r = inst.username ? redisCommand(c, "AUTH %s %s", inst.username, pw) : redisCommand(c, "AUTH %s", pw);
        bool ok = r && r->type != REDIS_REPLY_ERROR;
        if (!ok)
            fprintf(stderr, "redpulse: AUTH failed: %s\n", r && r->str ? r->str : c->errstr);
        if (r)
            freeReplyObject(r);
        if (!ok)
            goto out;
    }
    uint64_t t1, t2;
    if (!(s1 = info(c, &t1)))
        goto out;
    config_get(c, s1, &cv);
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
    if (!(s2 = info(c, &t2)))
        goto out;
    now = now_real_s();
    derive(s1, t1, s2, t2, now, classify, NULL, &d);
    advise_poll(a, &cv, s2, &d, now);
    derived_clear(&d);

    const char *ver = info_sval(s2, INFO_S_REDIS_VERSION), *role = info_sval(s2, INFO_S_ROLE);
    printf("redpulse advice for %s (Redis %s, %s), measured over %.0f s; host checks: %s\n", addr, ver ? ver : "?",
           role ? role : "?", seconds, a->local == 1 ? "yes" : "no (not on this host)");
    if (!cv.have)
        printf("(settings unknown: CONFIG GET was refused)\n");
    int worst = advisor_worst(a);
    if (a->n_holding == 0)
        printf("\nNo findings.\n");
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
    rc = worst == ADV_CRITICAL ? 2 : worst == ADV_WARNING ? 1 : 0;
out:
    advisor_free(a);
    config_values_clear(&cv);
    info_sample_free(s1);
    info_sample_free(s2);
    if (c)
        redisFree(c);
    free(inst.host), free(inst.path), free(inst.username);
    config_free(file);
    return rc;
}
