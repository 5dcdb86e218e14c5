/*
 * notify.c - what a notification looks like on the wire: Alertmanager's
 * webhook payload (version 4, so anything that takes Alertmanager webhooks
 * takes ours), Alertmanager's own POST /api/v2/alerts body, and a Slack
 * incoming-webhook body; fingerprints, idempotency keys and annotation
 * templates. Pure: no I/O, times passed in.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alerts_hub.h"
#include "util.h"

/* timestamps are cut at the caller's buffer size, on purpose */
#if defined(__GNUC__) && !defined(__clang__) /* clang has no such warning */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

void notify_time(char *out, size_t len, double t)
{
    struct tm tm;
    if (t > 253402300799.0) /* past 9999-12-31T23:59:59: RFC 3339 has four digits of year */
        t = 253402300799.0;
    time_t s = (time_t)(t > 0 ? t : 0); /* in range: the conversion is defined */
    if (!(t > 0) || !gmtime_r(&s, &tm)) {
        snprintf(out, len, "0001-01-01T00:00:00Z"); /* Go's zero time: "not set" */
        return;
    }
    int ms = (int)((t - (double)s) * 1000);
    if (ms > 999)
        ms = 999;
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

void notify_fingerprint(char out[17], const struct label *l, size_t n)
{
    uint64_t h = FNV1A_BASIS;
    for (size_t i = 0; i < n; i++) {
        h = fnv1a_str(h, l[i].name);
        h = fnv1a_str(h, "\xff");
        h = fnv1a_str(h, l[i].value);
        h = fnv1a_str(h, "\xff");
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* When n was made, in whole milliseconds, rounded: the state file keeps
 * `created` to the millisecond ("%.3f"), and a key truncated from the
 * double came out a millisecond off after a restart for half the values. */
static long long created_ms(const struct notif *n)
{
    double ms = n->created * 1000;
    return ms > 0 && ms < 9e18 ? llround(ms) : 0;
}

void notify_idempotency_key(char *out, size_t len, struct notif *const *v, size_t n)
{
    if (n == 1) {
        /* a repeat is a message of its own, told apart by when it was made
         * (kept with it through retries and restarts): a receiver that
         * drops keys it has seen would drop every repeat otherwise */
        if (v[0]->repeat)
            snprintf(out, len, "%s-%u-firing-repeat-%lld", v[0]->fp, (unsigned)v[0]->episode, created_ms(v[0]));
        else
            snprintf(out, len, "%s-%u-%s", v[0]->fp, (unsigned)v[0]->episode, v[0]->resolved ? "resolved" : "firing");
        return;
    }
    uint64_t h = FNV1A_BASIS;
    for (size_t i = 0; i < n; i++) {
        char k[96];
        snprintf(k, sizeof k, "%s-%u-%d-%lld;", v[i]->fp, (unsigned)v[i]->episode, v[i]->resolved,
                 v[i]->repeat ? created_ms(v[i]) : 0LL);
        h = fnv1a_str(h, k);
    }
    snprintf(out, len, "batch-%016llx", (unsigned long long)h);
}

static const char *label_get(const struct label *l, size_t n, const char *k)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].name, k) == 0)
            return l[i].value;
    return NULL;
}

void notify_expand(struct buf *b, const char *t, const struct label *labels, size_t n_labels, double value,
                   double threshold, const char *unit, const char *figure)
{
    while (*t) {
        const char *p = strstr(t, "{{");
        const char *e = p ? strstr(p, "}}") : NULL;
        if (!p || !e) {
            buf_puts(b, t);
            return;
        }
        buf_append(b, t, (size_t)(p - t));
        const char *a = p + 2;
        while (a < e && *a == ' ')
            a++;
        const char *z = e;
        while (z > a && z[-1] == ' ')
            z--;
        size_t l = (size_t)(z - a);
#define IS(s) (l == sizeof s - 1 && strncmp(a, s, l) == 0)
        if (IS("$value") || IS("$threshold")) {
            double v = IS("$value") ? value : threshold;
            if (isfinite(v))
                buf_printf(b, "%.6g", v);
            else
                buf_puts(b, "n/a");
        } else if (IS("$target")) {
            const char *v = label_get(labels, n_labels, "target");
            buf_puts(b, v ? v : "");
        } else if (IS("$severity")) {
            const char *v = label_get(labels, n_labels, "severity");
            buf_puts(b, v ? v : "");
        } else if (IS("$unit")) {
            buf_puts(b, unit ? unit : "");
        } else if (IS("$figure")) {
            buf_puts(b, figure ? figure : "");
        } else if (l > 8 && strncmp(a, "$labels.", 8) == 0) {
            char k[128];
            snprintf(k, sizeof k, "%.*s", (int)(l - 8), a + 8);
            const char *v = label_get(labels, n_labels, k);
            buf_puts(b, v ? v : "");
        }
#undef IS
        t = e + 2;
    }
}

static void put_labels(struct buf *b, const struct label *l, size_t n)
{
    buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        buf_put_json_str(b, l[i].name);
        buf_putc(b, ':');
        buf_put_json_str(b, l[i].value);
    }
    buf_putc(b, '}');
}

static void put_generator(struct buf *b, const char *external_url)
{
    buf_puts(b, "\"generatorURL\":");
    if (external_url) {
        struct buf u = BUF_INIT;
        buf_puts(&u, external_url);
        while (u.len && u.p[u.len - 1] == '/')
            u.p[--u.len] = '\0';
        buf_puts(&u, "/api/v1/alerts");
        buf_put_json_str(b, u.p);
        buf_free(&u);
    } else {
        buf_puts(b, "\"\"");
    }
}

/* Labels (or annotations) every alert of the batch has with equal values. */
static void put_common(struct buf *b, struct notif *const *v, size_t n, bool ann)
{
    buf_putc(b, '{');
    bool first = true;
    const struct label *l0 = ann ? v[0]->ann : v[0]->labels;
    size_t n0 = ann ? v[0]->n_ann : v[0]->n_labels;
    for (size_t i = 0; i < n0; i++) {
        bool all = true;
        for (size_t k = 1; k < n && all; k++) {
            const char *o = ann ? label_get(v[k]->ann, v[k]->n_ann, l0[i].name)
                                : label_get(v[k]->labels, v[k]->n_labels, l0[i].name);
            all = o && strcmp(o, l0[i].value) == 0;
        }
        if (!all)
            continue;
        if (!first)
            buf_putc(b, ',');
        first = false;
        buf_put_json_str(b, l0[i].name);
        buf_putc(b, ':');
        buf_put_json_str(b, l0[i].value);
    }
    buf_putc(b, '}');
}

void notify_webhook_body(struct buf *b, const char *receiver, const char *external_url, struct notif *const *v,
                         size_t n)
{
    bool any_firing = false;
    for (size_t i = 0; i < n; i++)
        any_firing |= !v[i]->resolved;
    char ts[40];
    buf_puts(b, "{\"version\":\"4\",\"groupKey\":");
    struct buf gk = BUF_INIT;
    buf_printf(&gk, "{}:{receiver=\"%s\"}", receiver);
    buf_put_json_str(b, gk.p);
    buf_free(&gk);
    buf_printf(b, ",\"truncatedAlerts\":0,\"status\":\"%s\",\"receiver\":", any_firing ? "firing" : "resolved");
    buf_put_json_str(b, receiver);
    buf_puts(b, ",\"groupLabels\":{},\"commonLabels\":");
    put_common(b, v, n, false);
    buf_puts(b, ",\"commonAnnotations\":");
    put_common(b, v, n, true);
    buf_puts(b, ",\"externalURL\":");
    buf_put_json_str(b, external_url ? external_url : "");
    buf_puts(b, ",\"alerts\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        buf_printf(b, "{\"status\":\"%s\",\"labels\":", v[i]->resolved ? "resolved" : "firing");
        put_labels(b, v[i]->labels, v[i]->n_labels);
        buf_puts(b, ",\"annotations\":");
        put_labels(b, v[i]->ann, v[i]->n_ann);
        notify_time(ts, sizeof ts, v[i]->starts_at);
        buf_printf(b, ",\"startsAt\":\"%s\"", ts);
        notify_time(ts, sizeof ts, v[i]->resolved ? v[i]->ends_at : 0);
        buf_printf(b, ",\"endsAt\":\"%s\",", ts);
        put_generator(b, external_url);
        buf_printf(b, ",\"fingerprint\":\"%s\"}", v[i]->fp);
    }
    buf_puts(b, "]}");
}

void notify_am_body(struct buf *b, const char *external_url, struct notif *const *v, size_t n, double now,
                    double resend_s)
{
    char ts[40];
    buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        buf_puts(b, "{\"labels\":");
        put_labels(b, v[i]->labels, v[i]->n_labels);
        buf_puts(b, ",\"annotations\":");
        put_labels(b, v[i]->ann, v[i]->n_ann);
        notify_time(ts, sizeof ts, v[i]->starts_at);
        buf_printf(b, ",\"startsAt\":\"%s\"", ts);
        /* like Prometheus: a firing alert is valid for 4 x max(interval,
         * resend), so the alerts of an agent that died resolve by themselves */
        double valid = 4 * fmax(v[i]->interval_s, resend_s);
        notify_time(ts, sizeof ts, v[i]->resolved ? v[i]->ends_at : now + valid);
        buf_printf(b, ",\"endsAt\":\"%s\",", ts);
        put_generator(b, external_url);
        buf_putc(b, '}');
    }
    buf_putc(b, ']');
}

void notify_slack_body(struct buf *b, const char *external_url, struct notif *const *v, size_t n)
{
    struct buf t = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        const char *name = label_get(v[i]->labels, v[i]->n_labels, "alertname");
        const char *target = label_get(v[i]->labels, v[i]->n_labels, "target");
        const char *sev = label_get(v[i]->labels, v[i]->n_labels, "severity");
        const char *sum = label_get(v[i]->ann, v[i]->n_ann, "summary");
        if (i)
            buf_putc(&t, '\n');
        buf_printf(&t, "[%s] %s on %s (%s)", v[i]->resolved ? "RESOLVED" : "FIRING", name ? name : "?",
                   target ? target : "?", sev ? sev : "none");
        if (sum)
            buf_printf(&t, ": %s", sum);
    }
    if (external_url)
        buf_printf(&t, "\n<%s|redpulse>", external_url);
    buf_puts(b, "{\"text\":");
    buf_put_json_str(b, t.p ? t.p : "");
    buf_putc(b, '}');
    buf_free(&t);
}

struct notif *notif_dup(const struct notif *n)
{
    struct notif *d = xmalloc(sizeof *d);
    *d = *n;
    d->labels = xcalloc(n->n_labels + 1, sizeof *d->labels);
    for (size_t i = 0; i < n->n_labels; i++) {
        d->labels[i].name = xstrdup(n->labels[i].name);
        d->labels[i].value = xstrdup(n->labels[i].value);
    }
    d->ann = xcalloc(n->n_ann + 1, sizeof *d->ann);
    for (size_t i = 0; i < n->n_ann; i++) {
        d->ann[i].name = xstrdup(n->ann[i].name);
        d->ann[i].value = xstrdup(n->ann[i].value);
    }
    return d;
}

void notif_free(struct notif *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n_labels; i++) {
        free(n->labels[i].name);
        free(n->labels[i].value);
    }
    free(n->labels);
    for (size_t i = 0; i < n->n_ann; i++) {
        free(n->ann[i].name);
        free(n->ann[i].value);
    }
    free(n->ann);
    free(n);
}
