/*
 * deliver.c - the delivery thread (see deliver.h): one libcurl multi handle,
 * at most one request in flight per receiver URL, classification of answers
 * as Alertmanager's notify/util.go has it, and the state file written off the
 * event loop. Ordering: each URL of a receiver is sent its outbox head first,
 * and a failed head blocks the ones behind it for that URL, so firing always
 * arrives before resolved. The URLs of one receiver (an HA set of
 * Alertmanagers) share the outbox but go at their own pace, each with its own
 * backoff, as Prometheus sends every Alertmanager each notification on its
 * own: a notification leaves the outbox once every URL has had it.
 * Waits (backoff, re-send, repeat, the stop's grace) are measured on the
 * monotonic clock (now_mono_s): a step of the wall clock (NTP at boot, a VM
 * resumed) must neither hold a receiver back for as long as the step nor
 * send everything at once. What goes into notifications is wall-clock time
 * (now_real_s).
 */
#include "deliver.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alerts_hub.h"
#include "log.h"
#include "util.h"

#define MAX_BATCH 64
#define RESOLVED_KEEP_S (15 * 60)
#define BODY_KEEP 512
#define URL_LOG_MAX 200

const double hub_lat_bounds[HUB_LAT_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

/* One request to one URL of a receiver: a batch from its outbox, or an
 * Alertmanager re-send. */
struct req {
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    char resp[BODY_KEEP + 1];
    size_t resp_len;
    char err[CURL_ERROR_SIZE]; /* libcurl's detail of a failure ("transfer closed with ...") */
    size_t recv, url;          /* where the answer goes (a reload renumbers them) */
    long status;               /* 0: no HTTP answer */
    CURLcode cc;
    curl_off_t retry_after;
    size_t end;                /* outbox entries [0, end) are covered once this succeeds */
    bool resend;               /* an Alertmanager re-send: covers no outbox entry */
    size_t n_notifs;
    double started;            /* monotonic */
};

/* One URL of a receiver: how far it has got through the receiver's outbox,
 * its request in flight and its own backoff. */
struct dest {
    char *url;          /* a copy: a reload matches URLs by their text */
    struct req *q;      /* in flight; NULL: idle */
    size_t done;        /* the outbox's first `done` entries went here (delivered or refused for good) */
    double next_try;    /* monotonic clock: no attempt before (backoff) */
    unsigned fails;     /* consecutive failed attempts */
    double next_resend; /* alertmanager: the next full re-send (monotonic clock) */
};

/* The delivery thread's view of one receiver; n_d 0 until first looked at. */
struct rstate {
    struct dest *d;        /* [n_d], one per URL, in the configuration's order */
    size_t n_d;
    uint64_t ident;        /* hash of type, headers and credentials: a reload that changes them starts afresh */
    uint64_t seen_dropped; /* the outbox's dropped counter when last looked at */
};

static struct {
    pthread_t th;
    CURLM *multi;
    struct rstate *rs; /* [n_recv] */
    bool running;
} D;

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    struct req *r = arg;
    size_t len = sz * n, room = BODY_KEEP - r->resp_len;
    size_t k = len < room ? len : room;
    memcpy(r->resp + r->resp_len, p, k);
    r->resp_len += k;
    r->resp[r->resp_len] = '\0';
    return len;
}

/* The request for receiver rc carrying body to url. */
static CURL *make_easy(const struct alert_receiver *rc, const char *url, struct req *r, const char *idem)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    struct buf u = BUF_INIT;
    buf_puts(&u, url);
    if (rc->type == RECV_ALERTMANAGER) {
        while (u.len && u.p[u.len - 1] == '/')
            u.p[--u.len] = '\0';
        buf_puts(&u, "/api/v2/alerts");
    }
    curl_easy_setopt(e, CURLOPT_URL, u.p);
    buf_free(&u);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* redirects are not followed: a POST carrying credentials must not be
     * sent on to wherever a receiver (or whoever answers in its place)
     * points; a 3xx is a retried failure that logs its Location instead */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)rc->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)rc->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->err);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "redpulse/" REDPULSE_VERSION);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    struct buf line = BUF_INIT;
    if (idem && rc->type != RECV_ALERTMANAGER) {
        buf_printf(&line, "Idempotency-Key: %s", idem);
        h = curl_slist_append(h, line.p);
    }
    for (size_t i = 0; i < rc->n_headers; i++) {
        buf_reset(&line);
        buf_printf(&line, "%s: %s", rc->headers[i].name, rc->headers[i].value);
        h = curl_slist_append(h, line.p);
    }
    if (rc->bearer) {
        buf_reset(&line);
        buf_printf(&line, "Authorization: Bearer %s", rc->bearer);
        h = curl_slist_append(h, line.p);
        explicit_bzero(line.p, line.len);
    }
    buf_free(&line);
    if (rc->basic_user) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, rc->basic_user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, rc->basic_pass);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    r->hdrs = h;
    return e;
}

/* How an answer is taken, as Alertmanager's notify/util.go has it, but for
 * 3xx: a redirect is not followed (make_easy) and not final either, since
 * the receiver (or its URL here) can be fixed while the notifications wait. */
enum verdict { V_OK, V_RETRY, V_FINAL };

static enum verdict classify(CURLcode cc, long status)
{
    if (cc != CURLE_OK || status == 0)
        return V_RETRY; /* a transfer that failed after a status line too */
    if (status >= 200 && status < 300)
        return V_OK;
    if ((status >= 300 && status < 400) || status >= 500 || status == 408 || status == 429)
        return V_RETRY;
    return V_FINAL;
}

/* s (a URL from the configuration or a Location header) as a log line may
 * show it: any user:password@ hidden, control characters as '?', cut at
 * URL_LOG_MAX bytes. */
static void put_url_for_log(struct buf *b, const char *s)
{
    const char *start = s, *scheme = strstr(s, "://");
    if (scheme) {
        const char *host = scheme + 3;
        size_t auth_end = strcspn(host, "/?#");
        const char *at = memchr(host, '@', auth_end);
        if (at) {
            buf_append(b, s, (size_t)(host - s));
            buf_puts(b, "<credentials>");
            start = at;
        }
    }
    size_t n = 0;
    for (const char *p = start; *p && n < URL_LOG_MAX; p++, n++)
        buf_putc(b, (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p);
    if (strlen(start) > URL_LOG_MAX)
        buf_puts(b, "...");
}

/* "name" or, for an Alertmanager receiver, "name (URL)": which of its
 * Alertmanagers a line is about. Webhook and Slack URLs stay out of the log
 * (a Slack incoming-webhook URL is itself the secret); such a receiver has
 * one URL, so its name says which. */
static void put_dest_name(struct buf *b, const struct alert_receiver *rc, size_t u)
{
    buf_puts(b, rc->name);
    if (rc->type == RECV_ALERTMANAGER && u < rc->n_urls) {
        buf_puts(b, " (");
        put_url_for_log(b, rc->urls[u]);
        buf_putc(b, ')');
    }
}

static void body_for(struct buf *b, const struct alerts_cfg *a, size_t r, struct notif *const *v, size_t n,
                     double now)
{
    const struct alert_receiver *rc = &a->recv[r];
    switch (rc->type) {
    case RECV_WEBHOOK: notify_webhook_body(b, rc->name, a->external_url, v, n); break;
    case RECV_SLACK: notify_slack_body(b, a->external_url, v, n); break;
    case RECV_ALERTMANAGER: notify_am_body(b, a->external_url, v, n, now, (double)rc->resend_ms / 1000.0); break;
    }
}

/* What makes a receiver's requests go elsewhere or as someone else: its
 * type, headers and credentials (the URLs are compared one by one). */
static uint64_t recv_ident(const struct alert_receiver *rc)
{
    uint64_t h = fnv1a(FNV1A_BASIS, &rc->type, sizeof rc->type);
    const char *parts[3] = {rc->bearer, rc->basic_user, rc->basic_pass};
    for (size_t i = 0; i < rc->n_headers; i++) {
        h = fnv1a(h, rc->headers[i].name, strlen(rc->headers[i].name) + 1);
        h = fnv1a(h, rc->headers[i].value, strlen(rc->headers[i].value) + 1);
    }
    for (size_t i = 0; i < 3; i++)
        h = parts[i] ? fnv1a(h, parts[i], strlen(parts[i]) + 1) : fnv1a(h, "\377", 1);
    return h;
}

static void free_req(struct req *q)
{
    if (!q)
        return;
    if (q->easy) {
        curl_multi_remove_handle(D.multi, q->easy); /* takes its pending message too */
        curl_easy_cleanup(q->easy);
    }
    curl_slist_free_all(q->hdrs);
    free(q->body);
    free(q);
}

static void rstate_free(struct rstate *s)
{
    for (size_t u = 0; u < s->n_d; u++) {
        free_req(s->d[u].q);
        free(s->d[u].url);
    }
    free(s->d);
    memset(s, 0, sizeof *s);
}

/* Receiver r's view, made at first sight, and caught up with the outbox:
 * entries leave it only from the head, by trim_outbox below or by an
 * overflow (counted in dropped), so a URL's place moves back by what
 * overflowed since. Hub lock held. */
static struct rstate *rstate_of(struct hub *h, size_t r)
{
    const struct alert_receiver *rc = &h->cfg->recv[r];
    struct outbox *o = &h->ob[r];
    struct rstate *s = &D.rs[r];
    if (!s->n_d) {
        s->n_d = rc->n_urls;
        s->d = xcalloc(s->n_d + 1, sizeof *s->d);
        for (size_t u = 0; u < s->n_d; u++)
            s->d[u].url = xstrdup(rc->urls[u]);
        s->ident = recv_ident(rc);
        s->seen_dropped = o->dropped;
    }
    uint64_t gone = o->dropped > s->seen_dropped ? o->dropped - s->seen_dropped : 0;
    s->seen_dropped = o->dropped;
    for (size_t u = 0; u < s->n_d; u++) {
        struct dest *d = &s->d[u];
        d->done = d->done > gone ? d->done - gone : 0;
        if (d->done > o->n)
            d->done = o->n;
        if (d->q && !d->q->resend)
            d->q->end = d->q->end > gone ? d->q->end - gone : 0;
    }
    return s;
}

/* The outbox entries every URL of receiver r has had leave it. Hub lock
 * held. */
static void trim_outbox(struct hub *h, size_t r, struct rstate *s)
{
    struct outbox *o = &h->ob[r];
    size_t k = o->n;
    for (size_t u = 0; u < s->n_d; u++)
        if (s->d[u].done < k)
            k = s->d[u].done;
    if (!k)
        return;
    for (size_t i = 0; i < k; i++)
        notif_free(o->v[i]);
    memmove(o->v, o->v + k, (o->n - k) * sizeof *o->v);
    o->n -= k;
    for (size_t u = 0; u < s->n_d; u++) {
        s->d[u].done -= k;
        if (s->d[u].q && !s->d[u].q->resend)
            s->d[u].q->end = s->d[u].q->end > k ? s->d[u].q->end - k : 0;
    }
    h->dirty = true;
}

static double backoff_s(const struct alert_receiver *rc, unsigned fails, double retry_after)
{
    double cap = (double)rc->max_backoff_ms / 1000.0;
    double d = fails > 30 ? cap : fmin(cap, pow(2, (double)fails - 1));
    d = d / 2 + d / 2 * ((double)rand() / RAND_MAX); /* jitter: a fleet does not retry in step */
    /* a receiver's Retry-After is honoured up to max_backoff: one far in
     * the future (a proxy's mistake, or a date) must not stop it for good */
    return fmax(d, fmin(retry_after, cap));
}

/* URL u of receiver r has its answer (or its request could not be made).
 * Hub lock held; mono: now on the monotonic clock. */
static void finish_req(struct hub *h, size_t r, size_t u, double mono)
{
    const struct alert_receiver *rc = &h->cfg->recv[r];
    struct outbox *o = &h->ob[r];
    struct rstate *s = rstate_of(h, r);
    struct dest *d = &s->d[u];
    struct req *q = d->q;
    enum verdict v = classify(q->cc, q->status);
    double lat = mono - q->started;
    size_t bk = 0;
    while (bk < HUB_LAT_BUCKETS && lat > hub_lat_bounds[bk])
        bk++;
    if (bk < HUB_LAT_BUCKETS)
        o->lat_count[bk]++;
    o->lat_total++;
    o->lat_sum += lat;
    struct buf who = BUF_INIT;
    put_dest_name(&who, rc, u);
    if (v == V_OK) {
        o->ok++;
        if (d->fails)
            log_info("deliver", "%s: delivered again after %u failed attempts", who.p, d->fails);
        d->fails = 0;
        d->next_try = 0;
    } else if (v == V_RETRY) {
        o->failed++;
        d->fails++;
        double wait = backoff_s(rc, d->fails, q->retry_after > 0 ? (double)q->retry_after : 0);
        d->next_try = mono + wait;
        if (q->cc != CURLE_OK) {
            /* checked first: a transfer can fail after a good status line */
            struct buf st = BUF_INIT;
            if (q->status)
                buf_printf(&st, " after HTTP %ld", q->status);
            log_warn("deliver", "%s: %s%s%s%s%s; retry %u in %.1fs", who.p, curl_easy_strerror(q->cc),
                     q->err[0] ? " (" : "", q->err, q->err[0] ? ")" : "", st.p ? st.p : "", d->fails, wait);
            buf_free(&st);
        } else if (q->status >= 300 && q->status < 400) {
            char *loc = NULL;
            struct buf lb = BUF_INIT;
            if (q->easy && curl_easy_getinfo(q->easy, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc)
                put_url_for_log(&lb, loc);
            log_warn("deliver", "%s: HTTP %ld redirects to %s (redirects are not followed: fix the URL); retry %u "
                     "in %.1fs", who.p, q->status, lb.p ? lb.p : "(no Location)", d->fails, wait);
            buf_free(&lb);
        } else if (q->status) {
            log_warn("deliver", "%s: HTTP %ld (%.100s); retry %u in %.1fs", who.p, q->status, q->resp, d->fails,
                     wait);
        } else {
            log_warn("deliver", "%s: no answer; retry %u in %.1fs", who.p, d->fails, wait);
        }
    } else {
        o->final++;
        d->fails = 0;
        d->next_try = 0;
        log_error("deliver", "%s: HTTP %ld refused %zu notifications for good: %.200s", who.p, q->status,
                  q->n_notifs, q->resp);
    }
    buf_free(&who);
    if (v != V_RETRY) {
        if (!q->resend) {
            /* delivered or refused: this URL is past them (those already
             * dropped by an overflow meanwhile are gone anyway); they leave
             * the outbox once every URL is */
            if (q->end > d->done)
                d->done = q->end < o->n ? q->end : o->n;
        } else {
            d->next_resend = mono + (double)rc->resend_ms / 1000.0;
        }
    }
    free_req(q);
    d->q = NULL;
    trim_outbox(h, r, s);
}

/* Starts a request to URL u of receiver r with notifications v[0..n);
 * end: the outbox entries it covers, from the head (resend: none). Hub lock
 * held. */
static void start_req(struct hub *h, size_t r, size_t u, struct notif *const *v, size_t n, size_t end, bool resend,
                      double now)
{
    const struct alert_receiver *rc = &h->cfg->recv[r];
    struct dest *d = &D.rs[r].d[u];
    struct req *q = xcalloc(1, sizeof *q);
    struct buf b = BUF_INIT;
    body_for(&b, h->cfg, r, v, n, now);
    char idem[64];
    notify_idempotency_key(idem, sizeof idem, v, n);
    q->body = buf_steal(&b, NULL);
    q->recv = r;
    q->url = u;
    q->end = end;
    q->resend = resend;
    q->n_notifs = n;
    q->started = now_mono_s();
    d->q = q;
    q->easy = make_easy(rc, rc->urls[u], q, idem);
    if (!q->easy || curl_multi_add_handle(D.multi, q->easy) != CURLM_OK) {
        q->cc = CURLE_OUT_OF_MEMORY; /* a failed attempt like any other: backoff */
        finish_req(h, r, u, now_mono_s());
    }
}

/* What receiver r should send now (wall clock; mono: the same moment on
 * the monotonic clock), if anything. Hub lock held. */
static void consider(struct hub *h, size_t r, double now, double mono)
{
    const struct alert_receiver *rc = &h->cfg->recv[r];
    struct outbox *o = &h->ob[r];
    struct rstate *s = rstate_of(h, r);
    trim_outbox(h, r, s);
    bool ready = false;
    for (size_t u = 0; u < s->n_d; u++)
        ready |= !s->d[u].q && mono >= s->d[u].next_try;
    if (!ready)
        return;
    for (size_t i = 0; i < h->n_act; i++) {
        /* silences end: an alert that fired under one is sent now */
        struct hub_alert *a = h->act[i];
        if (h->cfg->n_sil)
            a->silenced = hub_silenced(h->cfg, a->n, now);
        if (a->phase == AP_FIRING && a->routed[r] && !a->silenced && !a->last_sent[r] &&
            rc->type != RECV_ALERTMANAGER) {
            struct notif *c = notif_dup(a->n);
            c->seq = ++h->seq;
            c->created = now;
            hub_enqueue(h, r, c);
            a->last_sent[r] = mono;
            h->dirty = true;
        }
    }
    if (rc->type != RECV_ALERTMANAGER && rc->repeat_ms) {
        /* repeat_interval: a firing alert is told again while it lasts */
        for (size_t i = 0; i < h->n_act; i++) {
            struct hub_alert *a = h->act[i];
            if (a->phase != AP_FIRING || !a->routed[r] || a->silenced || !a->last_sent[r] ||
                mono - a->last_sent[r] < (double)rc->repeat_ms / 1000.0)
                continue;
            struct notif *c = notif_dup(a->n);
            c->repeat = true; /* its own Idempotency-Key (notify.c) */
            c->seq = ++h->seq;
            c->created = now;
            hub_enqueue(h, r, c);
            a->last_sent[r] = mono;
            h->dirty = true;
        }
    }
    s = rstate_of(h, r); /* what was queued just now may have overflowed */
    struct notif **rv = NULL; /* the re-send, made once for every URL due */
    size_t rn = 0;
    for (size_t u = 0; u < s->n_d; u++) {
        struct dest *d = &s->d[u];
        if (d->q || mono < d->next_try)
            continue;
        if (d->done < o->n) {
            /* its head, and whatever arose in the same second behind it */
            struct notif **v = o->v + d->done;
            size_t left = o->n - d->done, n = 1;
            if (rc->type == RECV_ALERTMANAGER)
                n = left < MAX_BATCH ? left : MAX_BATCH;
            else
                while (n < left && n < MAX_BATCH && floor(v[n]->created) == floor(v[0]->created))
                    n++;
            start_req(h, r, u, v, n, d->done + n, false, now);
            continue;
        }
        if (rc->type != RECV_ALERTMANAGER || mono < d->next_resend)
            continue;
        if (!rv) {
            /* Alertmanager keeps nothing across its restarts: firing alerts
             * are re-sent every resend_interval, resolved ones for 15
             * minutes. The resolved go first: Alertmanager takes a batch in
             * order and keeps the last of a fingerprint when the two do not
             * overlap in time, so an alert that resolved and fired again
             * must come after its old end (sent the other way, it read as
             * resolved until that end aged out, while firing here) */
            rv = xmalloc((h->n_resolved + h->n_act + 1) * sizeof *rv);
            for (size_t i = 0; i < h->n_resolved; i++)
                rv[rn++] = h->resolved[i];
            for (size_t i = 0; i < h->n_act; i++) {
                struct hub_alert *a = h->act[i];
                if (a->phase == AP_FIRING && a->routed[r] && !a->silenced)
                    rv[rn++] = a->n;
            }
        }
        if (rn)
            start_req(h, r, u, rv, rn, 0, true, now);
        else
            d->next_resend = mono + (double)rc->resend_ms / 1000.0;
    }
    free(rv);
}

/* Changes that come together share one write of the state file: those a
 * restart must not lose within SAVE_EVERY_S, and no sooner than SAVE_DUTY
 * times the last write took (thousands of alerts changing at once keep this
 * thread on the disk at most a quarter of the time), but never later than
 * SAVE_MAX_S; pending alerts coming and going within LAZY_SAVE_S. A failed
 * write is tried again after SAVE_RETRY_S. */
#define SAVE_EVERY_S 0.05
#define SAVE_DUTY 4.0
#define SAVE_MAX_S 1.0
#define LAZY_SAVE_S 5.0
#define SAVE_RETRY_S 1.0
/* At stop, what is queued (and due within it) gets this long to go out;
 * whatever is still undelivered then stays in the saved outbox. */
#define STOP_GRACE_S 2.0
/* A failed state write is warned of at once, then at most this often
 * while the failures go on (it is tried again every SAVE_RETRY_S). */
#define SAVE_WARN_EVERY_S 60.0

/* state_write_atomic(path), and once more when it failed because the
 * directory is gone (state_dir deleted at run time: it is made only at start
 * and at a reload, so every write would fail until a restart). Returns 0,
 * or -1 with errno set. */
static int write_state(const char *path, const char *data, size_t len)
{
    if (state_write_atomic(path, data, len) == 0)
        return 0;
    int e = errno;
    const char *sl = strrchr(path, '/');
    if (e != ENOENT || !sl || sl == path)
        return -1;
    char *dir = xstrndup(path, (size_t)(sl - path)); /* state_path is <state_dir>/alerts.json */
    struct stat sb;
    int rc = -1;
    /* only a directory that is not there at all (a dangling symlink, as
     * systemd's StateDirectory= makes, says EEXIST: left alone, and the
     * failure goes on quietly under the rate-limited warning) */
    if (stat(dir, &sb) != 0 && errno == ENOENT) {
        if (mkdir(dir, STATE_DIR_MODE) == 0) {
            log_warn("alerts", "state_dir %s was gone: made it again", dir);
            rc = state_write_atomic(path, data, len);
            e = errno;
        } else if (errno != EEXIST) {
            e = errno;
        }
    }
    free(dir);
    errno = e;
    return rc;
}

/* Writes the state file; returns false when the write failed. The lock is
 * held on entry and exit, released for the disk. final: the last save of a
 * clean stop. */
static bool save_state(struct hub *h, bool final)
{
    struct buf b = BUF_INIT;
    hub_serialize(h, final, &b);
    h->dirty = h->dirty_lazy = false;
    char *path = xstrdup(h->state_path); /* a reload may move it meanwhile */
    pthread_mutex_unlock(&h->mu);
    bool ok = write_state(path, b.p, b.len) == 0;
    int e = errno;
    buf_free(&b);
    /* the limiter is this thread's alone, on the monotonic clock (a step of
     * the wall clock must not silence it): one warning a minute at most,
     * good writes in between or not (a disk failing every other write
     * would say so twice a second), and "resumed" only after a warning */
    double mono = now_mono_s();
    if (!ok) {
        if (!h->state_warned_streak && (!h->state_warned || mono - h->state_warned >= SAVE_WARN_EVERY_S)) {
            log_warn("alerts", "cannot write state file %s: %s (tried again every %gs)", path, strerror(e),
                     SAVE_RETRY_S);
            h->state_warned = mono;
            h->state_warned_streak = true;
        }
        h->state_fails++;
    } else if (h->state_fails) {
        if (h->state_warned_streak)
            log_info("alerts", "alert state writes resumed: %s written after %u failed attempts", path,
                     h->state_fails);
        h->state_fails = 0;
        h->state_warned_streak = false;
    }
    pthread_mutex_lock(&h->mu);
    if (ok) {
        h->state_writes++;
    } else {
        h->state_write_failures++;
        h->dirty = true; /* nothing is lost: tried again (SAVE_RETRY_S) */
    }
    bool current = strcmp(path, h->state_path) == 0;
    if (ok && h->moved_from && current) {
        /* state_dir moved by a reload: the state is whole at the new place */
        if (strcmp(h->moved_from, path) != 0 && !same_file(h->moved_from, path) && unlink(h->moved_from) != 0 &&
            errno != ENOENT)
            log_warn("alerts", "state moved to %s; cannot remove the old file %s: %s", path, h->moved_from,
                     strerror(errno));
        free(h->moved_from);
        h->moved_from = NULL;
    } else if (ok && !current && !same_file(path, h->state_path) &&
               !(h->moved_from && strcmp(path, h->moved_from) == 0)) {
        /* written where a second reload moved away from during the write:
         * a stale copy a later start must not find (the first place, in
         * moved_from, goes with the next write) */
        unlink(path);
    }
    free(path);
    return ok;
}

/* Receiver r (index r from now on) of the new configuration, kept by a
 * reload with view s: a URL it keeps, with the same headers and
 * credentials, goes on where it was (its request in flight, its backoff);
 * any other starts afresh: what was in flight to an old URL or with the old
 * credentials is cancelled (it could hang to its timeout), the backoff is
 * reset, and a new URL is sent the outbox from its head. Hub lock held. */
static void rstate_rebind(struct rstate *s, const struct alert_receiver *rc, size_t r)
{
    if (!s->n_d)
        return; /* never looked at: made from the new settings at first sight */
    uint64_t ident = recv_ident(rc);
    bool same = ident == s->ident && rc->n_urls == s->n_d;
    for (size_t u = 0; same && u < s->n_d; u++)
        same = strcmp(s->d[u].url, rc->urls[u]) == 0;
    if (!same) {
        struct dest *nd = xcalloc(rc->n_urls + 1, sizeof *nd);
        bool *taken = xcalloc(s->n_d + 1, sizeof *taken);
        size_t reset = 0;
        for (size_t u = 0; u < rc->n_urls; u++) {
            size_t j = 0;
            while (j < s->n_d && (taken[j] || strcmp(s->d[j].url, rc->urls[u]) != 0))
                j++;
            if (j == s->n_d) {
                nd[u].url = xstrdup(rc->urls[u]);
                continue;
            }
            taken[j] = true;
            nd[u] = s->d[j];
            if (ident != s->ident) {
                /* what it has had stays had; the rest starts afresh */
                reset += nd[u].q || nd[u].fails;
                free_req(nd[u].q);
                nd[u].q = NULL;
                nd[u].fails = 0;
                nd[u].next_try = 0;
            }
        }
        for (size_t j = 0; j < s->n_d; j++)
            if (!taken[j]) {
                reset += s->d[j].q || s->d[j].fails;
                free_req(s->d[j].q);
                free(s->d[j].url);
            }
        free(taken);
        free(s->d);
        s->d = nd;
        s->n_d = rc->n_urls;
        s->ident = ident;
        log_info("deliver", "%s: URLs or credentials changed: %zu requests in flight or waiting to retry start "
                 "afresh", rc->name, reset);
    }
    for (size_t u = 0; u < s->n_d; u++)
        if (s->d[u].q) {
            s->d[u].q->recv = r;
            s->d[u].q->url = u;
        }
}

void deliver_remap(struct hub *h)
{
    if (!h->recv_map)
        return;
    struct rstate *rs = xcalloc(h->cfg->n_recv + 1, sizeof *rs);
    bool *kept = xcalloc(h->map_n_old + 1, sizeof *kept);
    for (size_t r = 0; r < h->cfg->n_recv; r++) {
        int o = h->recv_map[r];
        if (o < 0)
            continue;
        rs[r] = D.rs[o];
        kept[o] = true;
        rstate_rebind(&rs[r], &h->cfg->recv[r], r);
    }
    for (size_t o = 0; o < h->map_n_old; o++)
        if (!kept[o])
            rstate_free(&D.rs[o]); /* its receiver is gone: so are its requests */
    free(kept);
    free(D.rs);
    D.rs = rs;
    free(h->recv_map);
    h->recv_map = NULL;
}

/* After stop: a request in flight, or a notification due before stop_by
 * (mono: now on the monotonic clock). */
static bool flushing(struct hub *h, double mono)
{
    if (mono >= h->stop_by)
        return false;
    deliver_remap(h);
    for (size_t r = 0; r < h->cfg->n_recv; r++) {
        const struct rstate *s = &D.rs[r];
        if (h->ob[r].n && !s->n_d)
            return true;
        for (size_t u = 0; u < s->n_d; u++)
            if (s->d[u].q || (s->d[u].done < h->ob[r].n && s->d[u].next_try < h->stop_by))
                return true;
    }
    return false;
}

static void *thread_main(void *arg)
{
    struct hub *h = arg;
    /* monotonic seconds: a step of the wall clock moves no save */
    double last_save = -INFINITY, save_took = 0, retry_at = -INFINITY;
    pthread_mutex_lock(&h->mu);
    while (!h->stop || flushing(h, now_mono_s())) {
        deliver_remap(h);
        double now = now_real_s();
        size_t kept = 0;
        for (size_t i = 0; i < h->n_resolved; i++) {
            if (now - h->resolved[i]->ends_at > RESOLVED_KEEP_S) {
                notif_free(h->resolved[i]);
                h->dirty = true;
            } else {
                h->resolved[kept++] = h->resolved[i];
            }
        }
        h->n_resolved = kept;
        double mono_now = now_mono_s();
        for (size_t r = 0; r < h->cfg->n_recv; r++)
            consider(h, r, now, mono_now);
        int wait_ms = 250;
        double mono = now_mono_s();
        double due = h->dirty ? fmax(last_save + fmin(fmax(SAVE_EVERY_S, SAVE_DUTY * save_took), SAVE_MAX_S), retry_at)
                   : h->dirty_lazy ? last_save + LAZY_SAVE_S : INFINITY;
        if (mono >= due) {
            if (!save_state(h, false))
                retry_at = mono + SAVE_RETRY_S;
            last_save = mono;
            save_took = now_mono_s() - mono;
        } else if (due - mono < 0.25) {
            wait_ms = (int)((due - mono) * 1000) + 1;
        }
        pthread_mutex_unlock(&h->mu);
        curl_multi_poll(D.multi, NULL, 0, wait_ms, NULL);
        int running;
        curl_multi_perform(D.multi, &running);
        pthread_mutex_lock(&h->mu);
        deliver_remap(h); /* a reload may have changed the receivers meanwhile */
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(D.multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct req *q;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
            q->cc = m->data.result;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &q->status);
            curl_easy_getinfo(m->easy_handle, CURLINFO_RETRY_AFTER, &q->retry_after);
            finish_req(h, q->recv, q->url, now_mono_s());
        }
    }
    deliver_remap(h);
    for (size_t r = 0; r < h->cfg->n_recv; r++) { /* what the grace did not get out is not lost: said so */
        /* not had by some URL yet (the outbox keeps what one Alertmanager of
         * several had until all had it; the state file keeps no per-URL
         * progress, so those go to every URL again at the next start) */
        size_t n = h->ob[r].n, left = D.rs[r].n_d ? 0 : n;
        for (size_t u = 0; u < D.rs[r].n_d; u++) {
            size_t had = D.rs[r].d[u].done < n ? D.rs[r].d[u].done : n;
            if (n - had > left)
                left = n - had;
        }
        if (left)
            log_warn("alerts", "receiver \"%s\": %zu undelivered notifications at stop, left in the outbox (the "
                     "state file keeps it for the next start, when every URL is sent the %zu it holds)",
                     h->cfg->recv[r].name, left, n);
    }
    for (size_t r = 0; r < h->cfg->n_recv; r++)
        rstate_free(&D.rs[r]); /* what is still in flight stays in the saved outbox */
    save_state(h, true);
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

int deliver_start(struct hub *h)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    D.multi = curl_multi_init();
    if (!D.multi)
        return -1;
    D.rs = xcalloc(h->cfg->n_recv + 1, sizeof *D.rs);
    h->dirty = true; /* a first save: proves the directory is writable */
    if (pthread_create(&D.th, NULL, thread_main, h) != 0) {
        curl_multi_cleanup(D.multi);
        free(D.rs);
        D.rs = NULL;
        D.multi = NULL;
        return -1;
    }
    D.running = true;
    return 0;
}

void deliver_wake(void)
{
    if (D.multi)
        curl_multi_wakeup(D.multi);
}

void deliver_stop(struct hub *h)
{
    if (!D.running)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    h->stop_by = now_mono_s() + STOP_GRACE_S;
    pthread_mutex_unlock(&h->mu);
    curl_multi_wakeup(D.multi);
    pthread_join(D.th, NULL);
    curl_multi_cleanup(D.multi);
    D.multi = NULL;
    free(D.rs);
    D.rs = NULL;
    D.running = false;
    curl_global_cleanup();
}

int deliver_test_receiver(const struct alerts_cfg *a, const char *name, FILE *out)
{
    int r = alerts_cfg_receiver(a, name);
    if (r < 0) {
        fprintf(out, "no receiver named \"%s\"\n", name);
        return 2;
    }
    const struct alert_receiver *rc = &a->recv[r];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    double now = now_real_s();
    struct notif n = {0};
    struct label labels[] = {{(char *)"alertname", (char *)"RedpulseTestNotification"},
                             {(char *)"severity", (char *)"none"},
                             {(char *)"target", (char *)"redpulse"}};
    struct label ann[] = {{(char *)"summary", (char *)"A test notification from redpulse --test-receiver"}};
    n.labels = labels;
    n.n_labels = 3;
    n.ann = ann;
    n.n_ann = 1;
    n.starts_at = now;
    n.episode = 1;
    n.interval_s = 60;
    notify_fingerprint(n.fp, labels, 3);
    struct notif *v[] = {&n};
    struct buf b = BUF_INIT;
    body_for(&b, a, (size_t)r, v, 1, now);
    char idem[64];
    notify_idempotency_key(idem, sizeof idem, v, 1);
    int rc_out = 0;
    for (size_t u = 0; u < rc->n_urls; u++) {
        struct req q = {0};
        q.body = b.p;
        CURL *e = make_easy(rc, rc->urls[u], &q, idem);
        if (!e) {
            fprintf(out, "%s: cannot create a request\n", rc->urls[u]);
            rc_out = 1;
            continue;
        }
        CURLcode cc = curl_easy_perform(e);
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        if (cc != CURLE_OK) {
            fprintf(out, "%s: %s\n", rc->urls[u], curl_easy_strerror(cc));
            rc_out = 1;
        } else {
            enum verdict vd = classify(cc, status);
            const char *verdict = vd == V_OK      ? "delivered"
                                  : vd == V_RETRY ? "failed (would be retried)"
                                                  : "refused (final)";
            fprintf(out, "%s: HTTP %ld, %s\n", rc->urls[u], status, verdict);
            char *loc = NULL;
            if (status >= 300 && status < 400 && curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK) {
                struct buf lb = BUF_INIT;
                if (loc)
                    put_url_for_log(&lb, loc);
                fprintf(out, "redirects to %s (redirects are not followed: fix the URL)\n",
                        lb.p ? lb.p : "(no Location)");
                buf_free(&lb);
            }
            fprintf(out, "%s%s", q.resp, q.resp_len && q.resp[q.resp_len - 1] != '\n' ? "\n" : "");
            if (!(status >= 200 && status < 300))
                rc_out = 1;
        }
        curl_easy_cleanup(e);
        curl_slist_free_all(q.hdrs);
    }
    buf_free(&b);
    curl_global_cleanup();
    return rc_out;
}
