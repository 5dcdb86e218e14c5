/*
 * deliver.c - the delivery thread (see deliver.h): one libcurl multi handle,
 * at most one request in flight per receiver, classification of answers as
 * Alertmanager's notify/util.go has it, and the state file written off the
 * event loop. Ordering: a receiver's outbox is sent head first, and a failed
 * head blocks the ones behind it, so firing always arrives before resolved.
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

const double hub_lat_bounds[HUB_LAT_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

/* One request of a receiver, to one of its URLs. */
struct req {
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    char resp[BODY_KEEP + 1];
    size_t resp_len;
    size_t recv;
    bool done;
    long status;     /* 0: no HTTP answer */
    CURLcode cc;
    curl_off_t retry_after;
};

/* A receiver's attempt: a batch of its outbox (or an Alertmanager re-send),
 * to each of its URLs. */
struct attempt {
    struct req *reqs;
    size_t n_reqs, n_done;
    uint64_t max_seq; /* outbox entries up to this seq are covered; 0: a re-send */
    size_t n_notifs;
    double started;
};

static struct {
    pthread_t th;
    CURLM *multi;
    struct attempt *att; /* [n_recv]; reqs NULL when idle */
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
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)rc->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)rc->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
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

/* Starts an attempt for receiver r with notifications v[0..n). Hub lock held. */
static void start_attempt(struct hub *h, size_t r, struct notif *const *v, size_t n, uint64_t max_seq, double now)
{
    const struct alert_receiver *rc = &h->cfg->recv[r];
    struct attempt *at = &D.att[r];
    struct buf b = BUF_INIT;
    body_for(&b, h->cfg, r, v, n, now);
    char idem[64];
    notify_idempotency_key(idem, sizeof idem, v, n);
    char *body = buf_steal(&b, NULL);
    at->reqs = xcalloc(rc->n_urls, sizeof *at->reqs);
    at->n_reqs = rc->n_urls;
    at->n_done = 0;
    at->max_seq = max_seq;
    at->n_notifs = n;
    at->started = now_mono_s();
    for (size_t u = 0; u < rc->n_urls; u++) {
        struct req *q = &at->reqs[u];
        q->recv = r;
        q->body = xstrdup(body);
        q->easy = make_easy(rc, rc->urls[u], q, idem);
        if (!q->easy || curl_multi_add_handle(D.multi, q->easy) != CURLM_OK) {
            q->done = true;
            q->cc = CURLE_OUT_OF_MEMORY;
            at->n_done++;
        }
    }
    free(body);
}

static void free_attempt(struct attempt *at)
{
    for (size_t i = 0; i < at->n_reqs; i++) {
        struct req *q = &at->reqs[i];
        if (q->easy) {
            curl_multi_remove_handle(D.multi, q->easy);
            curl_easy_cleanup(q->easy);
        }
        curl_slist_free_all(q->hdrs);
        free(q->body);
    }
    free(at->reqs);
    at->reqs = NULL;
    at->n_reqs = at->n_done = 0;
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

/* An attempt of receiver r has all its answers. Hub lock held. */
/* mono: now on the monotonic clock (now_mono_s). */
static void finish_attempt(struct hub *h, size_t r, double mono)
{
    const struct alert_receiver *rc = &h->cfg->recv[r];
    struct attempt *at = &D.att[r];
    struct outbox *o = &h->ob[r];
    enum { OK, RETRY, FINAL } res = OK;
    double retry_after = 0;
    const struct req *bad = NULL;
    for (size_t i = 0; i < at->n_reqs; i++) {
        const struct req *q = &at->reqs[i];
        int k;
        if (q->cc != CURLE_OK || q->status == 0)
            k = RETRY;
        else if (q->status >= 200 && q->status < 300)
            k = OK;
        else if (q->status >= 500 || q->status == 408 || q->status == 429)
            k = RETRY;
        else
            k = FINAL;
        if (q->retry_after > 0)
            retry_after = fmax(retry_after, (double)q->retry_after);
        if (k > (int)res) {
            res = k;
            bad = q;
        }
    }
    double lat = mono - at->started;
    size_t bk = 0;
    while (bk < HUB_LAT_BUCKETS && lat > hub_lat_bounds[bk])
        bk++;
    if (bk < HUB_LAT_BUCKETS)
        o->lat_count[bk]++;
    o->lat_total++;
    o->lat_sum += lat;
    if (res == OK) {
        o->ok++;
        if (o->fails)
            log_info("deliver", "%s: delivered again after %u failed attempts", rc->name, o->fails);
        o->fails = 0;
        o->next_try = 0;
    } else if (res == RETRY) {
        o->failed++;
        o->fails++;
        double wait = backoff_s(rc, o->fails, retry_after);
        o->next_try = mono + wait;
        if (bad->status)
            log_warn("deliver", "%s: HTTP %ld (%.100s); retry %u in %.1fs", rc->name, bad->status, bad->resp,
                     o->fails, wait);
        else
            log_warn("deliver", "%s: %s; retry %u in %.1fs", rc->name, curl_easy_strerror(bad->cc), o->fails, wait);
    } else {
        o->final++;
        o->fails = 0;
        o->next_try = 0;
        log_error("deliver", "%s: HTTP %ld refused %zu notifications for good: %.200s", rc->name, bad->status,
                  at->n_notifs, bad->resp);
    }
    if (res != RETRY) {
        if (at->max_seq) {
            /* delivered or refused: they leave the outbox (those already
             * dropped by an overflow meanwhile are gone anyway) */
            size_t k = 0;
            while (k < o->n && o->v[k]->seq <= at->max_seq)
                notif_free(o->v[k++]);
            memmove(o->v, o->v + k, (o->n - k) * sizeof *o->v);
            o->n -= k;
            h->dirty = true;
        } else {
            o->next_resend = mono + (double)rc->resend_ms / 1000.0;
        }
    }
    free_attempt(at);
}

/* What receiver r should send now (wall clock; mono: the same moment on
 * the monotonic clock), if anything. Hub lock held. */
static void consider(struct hub *h, size_t r, double now, double mono)
{
    const struct alert_receiver *rc = &h->cfg->recv[r];
    struct outbox *o = &h->ob[r];
    if (D.att[r].reqs || mono < o->next_try)
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
    if (o->n) {
        /* the head, and whatever arose in the same second behind it */
        size_t n = 1;
        if (rc->type == RECV_ALERTMANAGER)
            n = o->n < MAX_BATCH ? o->n : MAX_BATCH;
        else
            while (n < o->n && n < MAX_BATCH && floor(o->v[n]->created) == floor(o->v[0]->created))
                n++;
        start_attempt(h, r, o->v, n, o->v[n - 1]->seq, now);
        return;
    }
    if (rc->type == RECV_ALERTMANAGER && mono >= o->next_resend) {
        /* Alertmanager keeps nothing across its restarts: firing alerts are
         * re-sent every resend_interval, resolved ones for 15 minutes. The
         * resolved go first: Alertmanager takes a batch in order and keeps
         * the last of a fingerprint when the two do not overlap in time, so
         * an alert that resolved and fired again must come after its old
         * end (sent the other way, it read as resolved until that end aged
         * out, while firing here) */
        struct notif **v = xmalloc((h->n_resolved + h->n_act + 1) * sizeof *v);
        size_t n = 0;
        for (size_t i = 0; i < h->n_resolved; i++)
            v[n++] = h->resolved[i];
        for (size_t i = 0; i < h->n_act; i++) {
            struct hub_alert *a = h->act[i];
            if (a->phase == AP_FIRING && a->routed[r] && !a->silenced)
                v[n++] = a->n;
        }
        if (n)
            start_attempt(h, r, v, n, 0, now);
        else
            o->next_resend = mono + (double)rc->resend_ms / 1000.0;
        free(v);
    }
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

void deliver_remap(struct hub *h)
{
    if (!h->recv_map)
        return;
    struct attempt *att = xcalloc(h->cfg->n_recv + 1, sizeof *att);
    bool *kept = xcalloc(h->map_n_old + 1, sizeof *kept);
    for (size_t r = 0; r < h->cfg->n_recv; r++) {
        int o = h->recv_map[r];
        if (o < 0)
            continue;
        att[r] = D.att[o];
        kept[o] = true;
        for (size_t i = 0; i < att[r].n_reqs; i++)
            att[r].reqs[i].recv = r;
    }
    for (size_t o = 0; o < h->map_n_old; o++)
        if (!kept[o] && D.att[o].reqs)
            free_attempt(&D.att[o]); /* its receiver is gone */
    free(kept);
    free(D.att);
    D.att = att;
    free(h->recv_map);
    h->recv_map = NULL;
}

/* After stop: a request in flight, or a notification due before stop_by
 * (mono: now on the monotonic clock). */
static bool flushing(const struct hub *h, double mono)
{
    if (mono >= h->stop_by)
        return false;
    for (size_t r = 0; r < h->cfg->n_recv; r++)
        if (D.att[r].reqs || (h->ob[r].n && h->ob[r].next_try < h->stop_by))
            return true;
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
            q->done = true;
            struct attempt *at = &D.att[q->recv];
            if (++at->n_done == at->n_reqs)
                finish_attempt(h, q->recv, now_mono_s());
        }
    }
    deliver_remap(h);
    for (size_t r = 0; r < h->cfg->n_recv; r++)
        if (D.att[r].reqs)
            free_attempt(&D.att[r]);
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
    D.att = xcalloc(h->cfg->n_recv + 1, sizeof *D.att);
    h->dirty = true; /* a first save: proves the directory is writable */
    if (pthread_create(&D.th, NULL, thread_main, h) != 0) {
        curl_multi_cleanup(D.multi);
        free(D.att);
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
    free(D.att);
    D.att = NULL;
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
            const char *verdict = status >= 200 && status < 300 ? "delivered"
                                  : status >= 500 || status == 408 || status == 429 ? "failed (would be retried)"
                                                                                      : "refused (final)";
            fprintf(out, "%s: HTTP %ld, %s\n%s%s", rc->urls[u], status, verdict, q.resp,
                    q.resp_len && q.resp[q.resp_len - 1] != '\n' ? "\n" : "");
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
