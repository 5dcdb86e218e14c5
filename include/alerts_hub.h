/*
 * alerts_hub.h - what the event loop, the HTTP threads and the delivery
 * thread share about alerts: the table of active (pending and firing)
 * alerts, the per-receiver outboxes of undelivered notifications, recently
 * resolved alerts (re-sent to Alertmanager) and the delivery counters. One
 * mutex guards all of it; every holder keeps it for a copy or a small
 * update, never across I/O.
 */
#ifndef REDPULSE_ALERTS_HUB_H
#define REDPULSE_ALERTS_HUB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alerts.h"
#include "buf.h"

/* One notification: an alert's state change (or a repeat of it). */
struct notif {
    uint64_t seq;          /* creation order, over all receivers */
    double created;        /* wall clock: same-second notifications are batched */
    bool resolved;
    bool repeat;           /* a repeat of a firing already told (repeat_interval) */
    uint32_t episode;      /* the n-th firing of this fingerprint */
    char fp[17];           /* fingerprint: 16 hex digits of a hash of the labels */
    double starts_at, ends_at; /* ends_at 0 while firing */
    double interval_s;     /* the instance's poll interval (Alertmanager endsAt) */
    struct label *labels;  /* sorted by name */
    size_t n_labels;
    struct label *ann;
    size_t n_ann;
};

struct notif *notif_dup(const struct notif *n);
void notif_free(struct notif *n);

/* An active alert. */
struct hub_alert {
    char *instance;
    uint32_t rule;         /* index in alerts_cfg.rules */
    uint8_t phase;         /* AP_PENDING or AP_FIRING */
    uint32_t episode;
    double since;          /* pending began (Prometheus' activeAt, our startsAt) */
    double last_true;
    double value, threshold, interval_s;
    bool silenced;
    struct notif *n;       /* labels, annotations, fingerprint (status firing) */
    double *last_sent;     /* [n_recv] when last queued or sent to each receiver
                            * (monotonic clock); 0: never */
    bool *routed;          /* [n_recv] receivers this alert goes to */
};

/* Upper bounds of the notification latency histogram buckets, seconds. */
#define HUB_LAT_BUCKETS 10
extern const double hub_lat_bounds[HUB_LAT_BUCKETS];

/* A receiver's undelivered notifications, oldest first, and its counters.
 * Shared by the receiver's URLs: the delivery thread keeps, per URL, how
 * many entries from the head it has had (and its backoff), so entries leave
 * only from the head: once every URL has had them (deliver.c), or by an
 * overflow, which counts them in dropped. */
struct outbox {
    struct notif **v;
    size_t n, cap;
    uint64_t dropped;      /* overflowed: the oldest were dropped */
    uint64_t ok, failed, final; /* requests (one per URL): delivered, failed (retried), refused (final 4xx) */
    uint64_t lat_count[HUB_LAT_BUCKETS], lat_total; /* latency histogram (hub_lat_bounds) */
    double lat_sum;
};

/* How many times an (instance, rule) has fired, kept while it is inactive so
 * episode numbers (and so Idempotency-Keys) never repeat across restarts. */
struct ep_rec {
    char *instance, *rule;
    uint32_t episode;
};

struct hub {
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* signalled when there is something to send or save */
    const struct alerts_cfg *cfg;
    struct hub_alert **act;
    size_t n_act, cap_act;
    struct notif **resolved; /* for Alertmanager re-sends (15 minutes) */
    size_t n_resolved;
    struct ep_rec *eps;      /* episode counters of alerts that fired and ended */
    size_t n_eps;
    struct outbox *ob;     /* [cfg->n_recv] */
    uint64_t seq;
    bool dirty;            /* the state file is behind on what a restart must not lose:
                            * firing, resolved, the outbox (saved within 50 ms) */
    bool dirty_lazy;       /* ... only on pending alerts (saved within LAZY_SAVE_S) */
    uint64_t state_writes; /* state file writes done (redpulse_alert_state_writes_total) */
    uint64_t state_write_failures; /* ... that failed (redpulse_alert_state_write_failures_total) */
    unsigned state_fails;  /* delivery thread only: failed writes since the last good one */
    double state_warned;   /* delivery thread only: monotonic s of the last warning of them; 0: none */
    bool state_warned_streak; /* delivery thread only: the failures since the last good write were warned of */
    bool stop;
    double stop_by;        /* after stop: when the last flush gives up (monotonic clock) */
    char *state_path;      /* <state_dir>/alerts.json (the lock guards it: a reload moves it) */
    char *moved_from;      /* a reload moved state_dir: the old file, removed after the first
                            * good write at state_path; NULL: none */
    int *recv_map;         /* a reload changed the receivers: [cfg->n_recv] the index each had
                            * in the delivery thread's view (-1: new), until it takes it in */
    size_t map_n_old;      /* receivers in that view */
};

/* The process' hub while alerts run (NULL otherwise). */
extern struct hub *alerts_hub;

/* The delivery thread takes in h->recv_map (lock held): its per-URL state
 * moves to the new receiver indexes; the requests of receivers removed, and
 * of URLs removed or whose headers or credentials changed, are cancelled
 * (such a URL starts afresh, with no backoff). */
void deliver_remap(struct hub *h);

/* Appends n (adopted) to receiver r's outbox; drops the oldest beyond its
 * queue_size. Lock held. */
void hub_enqueue(struct hub *h, size_t r, struct notif *n);

/* True when a silence of the configuration covers n's labels at time now. */
bool hub_silenced(const struct alerts_cfg *a, const struct notif *n, double now);

/* Serialises the hub's durable part (active alerts, resolved list,
 * outboxes) as JSON into b; clean: the last save of a clean stop (pending
 * alerts keep their `for` across it). Lock held. */
void hub_serialize(const struct hub *h, bool clean, struct buf *b);
/* The mode state_dir is made with: at start, at a reload that moves it, and
 * again by the delivery thread when it is deleted at run time. */
#define STATE_DIR_MODE 0750

/* Writes b to path atomically: temp file in the same directory, fsync,
 * rename, fsync of the directory. Returns 0, or -1 (errno set). */
int state_write_atomic(const char *path, const char *data, size_t len);
/* True when a and b name one existing file or directory ("/d" and "/d/",
 * a symlink and its target): a state_dir "moved" there must not remove the
 * file it just wrote. */
bool same_file(const char *a, const char *b);

/* ---- payloads (notify.c; pure) ---- */

/* Alertmanager's webhook payload, version 4, for the batch v[0..n). */
void notify_webhook_body(struct buf *b, const char *receiver, const char *external_url, struct notif *const *v,
                         size_t n);
/* A Slack incoming-webhook body. */
void notify_slack_body(struct buf *b, const char *external_url, struct notif *const *v, size_t n);
/* Alertmanager API v2 (POST /api/v2/alerts) body; firing alerts get
 * endsAt = now + valid_for_s. */
void notify_am_body(struct buf *b, const char *external_url, struct notif *const *v, size_t n, double now,
                    double resend_s);
/* "<fp>-<episode>-<firing|resolved>" for one notification, or a hash of
 * all of them for a batch. */
void notify_idempotency_key(char *out, size_t len, struct notif *const *v, size_t n);
/* RFC 3339 with milliseconds, UTC. */
void notify_time(char *out, size_t len, double t);
/* The fingerprint of sorted labels. */
void notify_fingerprint(char out[17], const struct label *l, size_t n);
/* "{{ $value }}" ... expanded for one alert. */
void notify_expand(struct buf *b, const char *tmpl, const struct label *labels, size_t n_labels, double value,
                   double threshold, const char *unit, const char *figure);

#endif
