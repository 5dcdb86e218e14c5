/*
 * alerts_render.c - what the HTTP threads show of alerts: the /metrics
 * families (active alerts shaped like Prometheus' ALERTS, delivery counters
 * and latency per receiver), /api/v1/alerts, an instance's active alerts for
 * its JSON, and the landing page's list of firing alerts. Each takes the hub
 * lock for the time of one copy into the caller's buffer.
 */
#include <math.h>
#include <string.h>

#include "alerts.h"
#include "alerts_hub.h"
#include "prom.h"
#include "util.h"

/* ` name="` (after the family name and '{', or after the previous value):
 * label names come from labels.def only. */
static void lbl_open(struct buf *b, bool first, const char *name)
{
    buf_puts(b, first ? "{" : "\",");
    buf_puts(b, name);
    buf_puts(b, "=\"");
}

/* The redpulse_alerts family: every active alert, or instance's only. */
static void put_alerts(struct buf *b, const struct hub *h, const char *instance)
{
    buf_puts(b, "# HELP redpulse_alerts Active alerts, shaped like Prometheus' ALERTS: 1 per pending or firing "
                "alert\n# TYPE redpulse_alerts gauge\n");
    for (size_t i = 0; i < h->n_act; i++) {
        const struct hub_alert *a = h->act[i];
        if (instance && strcmp(a->instance, instance) != 0)
            continue;
        const struct alert_rule *r = &h->cfg->rules[a->rule];
        buf_puts(b, "redpulse_alerts");
        lbl_open(b, true, PL(ALERTNAME));
        prom_escape(b, r->name);
        lbl_open(b, false, PL(TARGET));
        prom_escape(b, a->instance);
        lbl_open(b, false, PL(SEVERITY));
        prom_escape(b, r->severity);
        lbl_open(b, false, PL(ALERTSTATE));
        buf_printf(b, "%s\"} 1\n", a->phase == AP_FIRING ? "firing" : "pending");
    }
}

void alerts_render_instance_metrics(struct buf *b, const char *instance)
{
    struct hub *h = alerts_hub;
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    put_alerts(b, h, instance);
    pthread_mutex_unlock(&h->mu);
}

void alerts_render_metrics(struct buf *b)
{
    struct hub *h = alerts_hub;
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    buf_puts(b, "# HELP redpulse_alert_rules Alert rules loaded and enabled\n# TYPE redpulse_alert_rules gauge\n");
    buf_printf(b, "redpulse_alert_rules %zu\n", h->cfg->n_enabled);
    buf_puts(b, "# HELP redpulse_alert_state_writes_total Writes of the alert state file\n"
                "# TYPE redpulse_alert_state_writes_total counter\n");
    buf_printf(b, "redpulse_alert_state_writes_total %llu\n", (unsigned long long)h->state_writes);
    buf_puts(b, "# HELP redpulse_alert_state_write_failures_total State file writes that failed (retried every "
                "second)\n# TYPE redpulse_alert_state_write_failures_total counter\n");
    buf_printf(b, "redpulse_alert_state_write_failures_total %llu\n", (unsigned long long)h->state_write_failures);
    put_alerts(b, h, NULL);
    static const char *const res[] = {"success", "failed", "refused"};
    buf_puts(b, "# HELP redpulse_notifications_total Notification requests per receiver by result: success (2xx), "
                "failed (retried: network error, 3xx, 5xx, 408, 429), refused (other 4xx: final)\n"
                "# TYPE redpulse_notifications_total counter\n");
    for (size_t r = 0; r < h->cfg->n_recv; r++)
        for (int k = 0; k < 3; k++) {
            uint64_t v = k == 0 ? h->ob[r].ok : k == 1 ? h->ob[r].failed : h->ob[r].final;
            buf_puts(b, "redpulse_notifications_total");
            lbl_open(b, true, PL(RECEIVER));
            prom_escape(b, h->cfg->recv[r].name);
            lbl_open(b, false, PL(RESULT));
            buf_printf(b, "%s\"} %llu\n", res[k], (unsigned long long)v);
        }
    buf_puts(b, "# HELP redpulse_notifications_dropped_total Notifications dropped because the receiver's queue "
                "was full (the oldest go)\n# TYPE redpulse_notifications_dropped_total counter\n");
    for (size_t r = 0; r < h->cfg->n_recv; r++) {
        buf_puts(b, "redpulse_notifications_dropped_total");
        lbl_open(b, true, PL(RECEIVER));
        prom_escape(b, h->cfg->recv[r].name);
        buf_printf(b, "\"} %llu\n", (unsigned long long)h->ob[r].dropped);
    }
    buf_puts(b, "# HELP redpulse_notification_queue_length Notifications waiting for delivery per receiver\n"
                "# TYPE redpulse_notification_queue_length gauge\n");
    for (size_t r = 0; r < h->cfg->n_recv; r++) {
        buf_puts(b, "redpulse_notification_queue_length");
        lbl_open(b, true, PL(RECEIVER));
        prom_escape(b, h->cfg->recv[r].name);
        buf_printf(b, "\"} %zu\n", h->ob[r].n);
    }
    buf_puts(b, "# HELP redpulse_notification_latency_seconds Duration of notification requests per receiver\n"
                "# TYPE redpulse_notification_latency_seconds histogram\n");
    for (size_t r = 0; r < h->cfg->n_recv; r++) {
        const struct outbox *o = &h->ob[r];
        uint64_t cum = 0;
        for (size_t k = 0; k <= HUB_LAT_BUCKETS; k++) {
            cum += k < HUB_LAT_BUCKETS ? o->lat_count[k] : 0;
            buf_puts(b, "redpulse_notification_latency_seconds_bucket");
            lbl_open(b, true, PL(RECEIVER));
            prom_escape(b, h->cfg->recv[r].name);
            lbl_open(b, false, PL(LE));
            if (k < HUB_LAT_BUCKETS) {
                buf_put_double(b, hub_lat_bounds[k]);
                buf_printf(b, "\"} %llu\n", (unsigned long long)cum);
            } else {
                buf_printf(b, "+Inf\"} %llu\n", (unsigned long long)o->lat_total);
            }
        }
        buf_puts(b, "redpulse_notification_latency_seconds_sum");
        lbl_open(b, true, PL(RECEIVER));
        prom_escape(b, h->cfg->recv[r].name);
        buf_puts(b, "\"} ");
        buf_put_double(b, o->lat_sum);
        buf_puts(b, "\nredpulse_notification_latency_seconds_count");
        lbl_open(b, true, PL(RECEIVER));
        prom_escape(b, h->cfg->recv[r].name);
        buf_printf(b, "\"} %llu\n", (unsigned long long)o->lat_total);
    }
    pthread_mutex_unlock(&h->mu);
}

static void put_alert_json(struct buf *b, const struct hub *h, const struct hub_alert *a)
{
    char ts[40];
    const struct alert_rule *r = &h->cfg->rules[a->rule];
    buf_puts(b, "{\"alertname\":");
    buf_put_json_str(b, r->name);
    buf_puts(b, ",\"target\":");
    buf_put_json_str(b, a->instance);
    buf_printf(b, ",\"state\":\"%s\",\"since\":\"", a->phase == AP_FIRING ? "firing" : "pending");
    notify_time(ts, sizeof ts, a->since);
    buf_printf(b, "%s\",\"value\":", ts);
    if (isfinite(a->value))
        buf_put_double(b, a->value);
    else
        buf_puts(b, "null");
    buf_puts(b, ",\"threshold\":");
    if (isfinite(a->threshold))
        buf_put_double(b, a->threshold);
    else
        buf_puts(b, "null");
    buf_printf(b, ",\"episode\":%u,\"fingerprint\":\"%s\",\"silenced\":%s,\"labels\":{", (unsigned)a->episode,
               a->n->fp, a->silenced ? "true" : "false");
    for (size_t i = 0; i < a->n->n_labels; i++) {
        if (i)
            buf_putc(b, ',');
        buf_put_json_str(b, a->n->labels[i].name);
        buf_putc(b, ':');
        buf_put_json_str(b, a->n->labels[i].value);
    }
    buf_puts(b, "},\"annotations\":{");
    for (size_t i = 0; i < a->n->n_ann; i++) {
        if (i)
            buf_putc(b, ',');
        buf_put_json_str(b, a->n->ann[i].name);
        buf_putc(b, ':');
        buf_put_json_str(b, a->n->ann[i].value);
    }
    buf_puts(b, "}}");
}

void alerts_render_api(struct buf *b)
{
    struct hub *h = alerts_hub;
    buf_puts(b, "{\"alerts\":[");
    if (h) {
        pthread_mutex_lock(&h->mu);
        for (size_t i = 0; i < h->n_act; i++) {
            if (i)
                buf_putc(b, ',');
            put_alert_json(b, h, h->act[i]);
        }
        pthread_mutex_unlock(&h->mu);
    }
    buf_puts(b, "]}\n");
}

void alerts_render_instance(struct buf *b, const char *instance)
{
    struct hub *h = alerts_hub;
    buf_putc(b, '[');
    if (h) {
        bool first = true;
        pthread_mutex_lock(&h->mu);
        for (size_t i = 0; i < h->n_act; i++)
            if (strcmp(h->act[i]->instance, instance) == 0) {
                if (!first)
                    buf_putc(b, ',');
                first = false;
                put_alert_json(b, h, h->act[i]);
            }
        pthread_mutex_unlock(&h->mu);
    }
    buf_putc(b, ']');
}

static void html_escape(struct buf *b, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '<': buf_puts(b, "&lt;"); break;
        case '>': buf_puts(b, "&gt;"); break;
        case '&': buf_puts(b, "&amp;"); break;
        case '"': buf_puts(b, "&quot;"); break;
        default: buf_putc(b, *s);
        }
}

size_t alerts_firing_count(void)
{
    struct hub *h = alerts_hub;
    if (!h)
        return 0;
    pthread_mutex_lock(&h->mu);
    size_t firing = 0;
    for (size_t i = 0; i < h->n_act; i++)
        firing += h->act[i]->phase == AP_FIRING;
    pthread_mutex_unlock(&h->mu);
    return firing;
}

void alerts_render_landing(struct buf *b)
{
    struct hub *h = alerts_hub;
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    size_t firing = 0;
    for (size_t i = 0; i < h->n_act; i++)
        firing += h->act[i]->phase == AP_FIRING;
    buf_printf(b, "<h2>Firing alerts (%zu)</h2>\n<ul>\n", firing);
    for (size_t i = 0; i < h->n_act; i++) {
        const struct hub_alert *a = h->act[i];
        if (a->phase != AP_FIRING)
            continue;
        const struct alert_rule *r = &h->cfg->rules[a->rule];
        buf_puts(b, "<li>");
        html_escape(b, r->name);
        buf_puts(b, " on ");
        html_escape(b, a->instance);
        buf_puts(b, " (");
        html_escape(b, r->severity);
        buf_puts(b, ")");
        for (size_t k = 0; k < a->n->n_ann; k++)
            if (strcmp(a->n->ann[k].name, "summary") == 0) {
                buf_puts(b, ": ");
                html_escape(b, a->n->ann[k].value);
            }
        buf_puts(b, a->silenced ? " [silenced]</li>\n" : "</li>\n");
    }
    buf_puts(b, "</ul>\n<p><a href=\"/api/v1/alerts\">/api/v1/alerts</a></p>\n");
    pthread_mutex_unlock(&h->mu);
}
