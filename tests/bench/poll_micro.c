/*
 * poll_micro.c - what one poll costs redpulse in user space, without the
 * network: parse an INFO reply, derive the figures against the previous
 * sample, run the alert rules (the built-in set) and the advisor (its
 * default checks, no settings known), render the frag (the agent renders
 * when read: not every poll), keep the compact sample. The parse reuses one
 * sample's buffers, as the poller does. Prints microseconds per poll for
 * each step, hot (the same instance over and over) and cold (each poll on
 * another of 2,000 instances, as at scale).
 *
 *   poll_micro INFO_FILE [ITERATIONS]
 *
 * A benchmark: prints figures, asserts nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "advise.h"
#include "alerts.h"
#include "buf.h"
#include "cmdclass.h"
#include "config.h"
#include "derive.h"
#include "info.h"
#include "prom.h"
#include "publish.h"
#include "render.h"
#include "util.h"

static enum cmd_class classify(void *ctx, const char *cmd)
{
    (void)ctx;
    return cmdclass_builtin(cmd);
}

#define COLD 2000

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s INFO_FILE [ITERATIONS]\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    long iters = argc > 2 ? atol(argv[2]) : 20000;

    struct instance_cfg cfg = {0};
    cfg.name = "bench";
    cfg.address = "127.0.0.1:6379";
    struct buf pre = BUF_INIT;
    prom_label_prefix(&pre, "bench", NULL, 0);
    struct poll_stats st = {0};
    st.polled = true;
    st.last_poll_ts = 1.7e9;
    st.last_poll_mono = 1000;

    /* COLD instances with the built-in alert rules, state in /tmp */
    struct buf js = BUF_INIT;
    buf_printf(&js, "{\"alerts\": {\"state_dir\": \"/tmp/poll-micro-%ld\"}, \"instances\": [", (long)getpid());
    for (int k = 0; k < COLD; k++)
        buf_printf(&js, "%s{\"name\": \"i%d\", \"address\": \"127.0.0.1:6379\"}", k ? "," : "", k);
    buf_puts(&js, "]}");
    struct config_errors errs = {BUF_INIT, 0};
    struct config *acfg = config_parse(js.p, js.len, "poll_micro", &errs);
    buf_free(&js);
    if (!acfg || alerts_start(acfg) < 0) {
        fprintf(stderr, "poll_micro: %s", errs.text.p ? errs.text.p : "cannot start alerts\n");
        return 1;
    }
    struct alert_inst **slots = calloc(COLD, sizeof *slots);

    struct buf scratch = BUF_INIT;
    for (int mode = 0; mode < 2; mode++) {
        size_t n = mode ? COLD : 1;
        struct info_sample **prev = calloc(n, sizeof *prev);
        struct frag **frags = calloc(n, sizeof *frags);
        struct info_sample *parsed = NULL; /* reused, as the poller does */
        struct advisor **adv = calloc(n, sizeof *adv); /* the default checks; no settings known */
        for (size_t k = 0; k < n; k++)
            adv[k] = advisor_new(NULL, "i");
        double t_parse = 0, t_derive = 0, t_alerts = 0, t_advice = 0, t_render = 0, t_compact = 0;
        uint64_t now = 1;
        for (long i = 0; i < iters; i++) {
            size_t k = (size_t)i % n;
            uint64_t t0 = now_mono_us();
            struct rstr *raw = rstr_new(text, len);
            struct info_sample *s = info_parse_again(parsed, raw->data, raw->len, SIZE_MAX);
            uint64_t t1 = now_mono_us();
            struct derived d;
            now += 100000;
            derive(prev[k], now - 100000, s, now, st.last_poll_ts, classify, NULL, &d);
            uint64_t ta = now_mono_us();
            alerts_after_poll(&slots[k], &acfg->instances[k], &st, s, &d, NULL);
            uint64_t tb = now_mono_us();
            advise_poll(adv[k], NULL, s, &d, st.last_poll_ts + (double)now / 1e6);
            uint64_t t2 = now_mono_us();
            struct render_input in = {&cfg, pre.p, s, &st, raw, &d, NULL, NULL, &scratch, NULL};
            struct frag *fr = render_frag(&in);
            rstr_unref(raw);
            frag_unref(frags[k]);
            frags[k] = fr;
            derived_clear(&d);
            uint64_t t3 = now_mono_us();
            prev[k] = info_compact_again(prev[k], s);
            parsed = s;
            uint64_t t4 = now_mono_us();
            t_parse += (double)(t1 - t0);
            t_derive += (double)(ta - t1);
            t_alerts += (double)(tb - ta);
            t_advice += (double)(t2 - tb);
            t_render += (double)(t3 - t2);
            t_compact += (double)(t4 - t3);
        }
        printf("%s (%zu instance%s, %ld polls): parse %.2f µs, derive %.2f µs, alert rules %.2f µs, advisor %.2f µs, "
               "render %.2f µs, compact %.2f µs; total %.2f µs per poll\n",
               mode ? "cold" : "hot", n, n > 1 ? "s" : "", iters, t_parse / iters, t_derive / iters, t_alerts / iters,
               t_advice / iters, t_render / iters, t_compact / iters,
               (t_parse + t_derive + t_alerts + t_advice + t_render + t_compact) / iters);
        for (size_t k = 0; k < n; k++) {
            advisor_free(adv[k]);
            info_sample_free(prev[k]);
            frag_unref(frags[k]);
        }
        info_sample_free(parsed);
        free(adv);
        free(prev);
        free(frags);
    }
    alerts_stop();
    free(slots);
    config_free(acfg);
    config_errors_free(&errs);
    buf_free(&pre);
    buf_free(&scratch);
    return 0;
}
