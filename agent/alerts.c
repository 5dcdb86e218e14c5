/*
 * alerts.c - the alert engine: after every poll it runs the instance's
 * compiled plan through the pure state machine (rules.c), turns transitions
 * into notifications routed to receivers (unless silenced), and keeps the
 * active table that /metrics, /api/v1/alerts and the state file read. The
 * state file itself is written by the delivery thread (deliver.c), so the
 * event loop never waits on a disk; it is written atomically (temp, fsync,
 * rename, as redis' rdbSave) and restored here at start.
 */
#include "alerts.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alerts_hub.h"
#include "deliver.h"
#include "log.h"
#include "render.h"
#include "util.h"

struct hub *alerts_hub;

/* An instance's alert state: one state machine per plan entry. */
struct alert_inst {
    struct alert_plan plan;  /* compiled against the running rules at the first poll */
    const struct instance_cfg *ic; /* of its last poll (or reload) */
    char *name;
    struct alert_state *st;
    struct hub_alert **h;    /* the active-table entry of each, NULL when inactive;
                              * the array itself only once one was active */
    double *prev;            /* [plan->n_slots] increase(): previous raw values */
    struct baseline *base;   /* [plan->n_slots] drop_below: baselines */
    size_t n_active;
    uint64_t labels;         /* labels_hash() of the instance the plan was compiled for */
    struct alert_inst *next;
};

/* The instance's labels, for telling when its plan must be compiled anew:
 * rules choose instances by label (instance_labels), and a reload or a
 * discovery failover (role) changes labels without a new rule set. */
static uint64_t labels_hash(const struct instance_cfg *ic)
{
    uint64_t h = FNV1A_BASIS;
    for (size_t i = 0; i < ic->n_labels; i++) {
        h = fnv1a_str(h, ic->labels[i].name);
        h = fnv1a_str(h, "=");
        h = fnv1a_str(h, ic->labels[i].value);
        h = fnv1a_str(h, "\n");
    }
    return h;
}

static struct alert_inst *insts; /* every alert_inst, for alerts_stop */

/* ---- the active table (hub lock held) ----------------------------------- */

static void hub_alert_free(struct hub_alert *a)
{
    if (!a)
        return;
    free(a->instance);
    notif_free(a->n);
    free(a->last_sent);
    free(a->routed);
    free(a);
}

static void act_add(struct hub *h, struct hub_alert *a)
{
    if (h->n_act == h->cap_act) {
        h->cap_act = h->cap_act ? 2 * h->cap_act : 16;
        h->act = xrealloc(h->act, h->cap_act * sizeof *h->act);
    }
    h->act[h->n_act++] = a;
}

static void act_remove(struct hub *h, struct hub_alert *a)
{
    for (size_t i = 0; i < h->n_act; i++)
        if (h->act[i] == a) {
            memmove(h->act + i, h->act + i + 1, (h->n_act - i - 1) * sizeof *h->act);
            h->n_act--;
            return;
        }
}

void hub_enqueue(struct hub *h, size_t r, struct notif *n)
{
    struct outbox *o = &h->ob[r];
    size_t cap = h->cfg->recv[r].queue_size;
    while (o->n >= cap && o->n) {
        /* overflow drops the oldest: the newest says where things stand */
        notif_free(o->v[0]);
        memmove(o->v, o->v + 1, (o->n - 1) * sizeof *o->v);
        o->n--;
        o->dropped++;
    }
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 16;
        o->v = xrealloc(o->v, o->cap * sizeof *o->v);
    }
    o->v[o->n++] = n;
}

/* ---- building alerts ---------------------------------------------------- */

static int cmp_label(const void *a, const void *b)
{
    return strcmp(((const struct label *)a)->name, ((const struct label *)b)->name);
}

static const char *label_val(const struct label *l, size_t n, const char *k)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].name, k) == 0)
            return l[i].value;
    return NULL;
}

static bool matches(const struct label *m, size_t nm, const struct label *l, size_t n)
{
    for (size_t i = 0; i < nm; i++) {
        const char *v = label_val(l, n, m[i].name);
        if (!v || strcmp(v, m[i].value) != 0)
            return false;
    }
    return true;
}

bool hub_silenced(const struct alerts_cfg *a, const struct notif *n, double now)
{
    for (size_t i = 0; i < a->n_sil; i++)
        if (now >= a->sil[i].starts_at && now < a->sil[i].ends_at &&
            matches(a->sil[i].match, a->sil[i].n_match, n->labels, n->n_labels))
            return true;
    return false;
}

/* The receivers of an alert: those named on its rule, else the first
 * route that matches, else (no routes at all) every receiver. */
static void route(const struct alerts_cfg *a, const struct alert_rule *r, const struct notif *n, bool *out)
{
    memset(out, 0, a->n_recv * sizeof *out);
    if (r->n_recv) {
        for (size_t i = 0; i < r->n_recv; i++)
            out[r->recv[i]] = true;
        return;
    }
    if (!a->n_routes) {
        for (size_t i = 0; i < a->n_recv; i++)
            out[i] = true;
        return;
    }
    for (size_t k = 0; k < a->n_routes; k++)
        if (matches(a->routes[k].match, a->routes[k].n_match, n->labels, n->n_labels)) {
            for (size_t i = 0; i < a->routes[k].n_recv; i++)
                out[a->routes[k].recv[i]] = true;
            return;
        }
}

static struct notif *build_notif(const struct alert_rule *r, const struct instance_cfg *ic, double value,
                                 double threshold)
{
    struct notif *n = xcalloc(1, sizeof *n);
    for (size_t i = 0; i < ic->n_labels; i++)
        alerts_label_put(&n->labels, &n->n_labels, ic->labels[i].name, ic->labels[i].value);
    for (size_t i = 0; i < r->n_labels; i++)
        alerts_label_put(&n->labels, &n->n_labels, r->labels[i].name, r->labels[i].value);
    alerts_label_put(&n->labels, &n->n_labels, "alertname", r->name);
    alerts_label_put(&n->labels, &n->n_labels, "target", ic->name);
    alerts_label_put(&n->labels, &n->n_labels, "severity", r->severity);
    qsort(n->labels, n->n_labels, sizeof *n->labels, cmp_label);
    notify_fingerprint(n->fp, n->labels, n->n_labels);
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < r->n_ann; i++) {
        buf_reset(&b);
        notify_expand(&b, r->ann[i].value, n->labels, n->n_labels, value, threshold, figure_unit(&r->fig),
                      r->figure_text);
        alerts_label_put(&n->ann, &n->n_ann, r->ann[i].name, b.p ? b.p : "");
    }
    buf_free(&b);
    n->interval_s = (double)ic->interval_ms / 1000.0;
    return n;
}

static struct hub_alert *new_hub_alert(struct hub *h, const struct alert_rule *r, uint32_t ri,
                                       const struct instance_cfg *ic, double value, double threshold)
{
    struct hub_alert *a = xcalloc(1, sizeof *a);
    a->instance = xstrdup(ic->name);
    a->rule = ri;
    a->threshold = threshold;
    a->value = value;
    a->interval_s = (double)ic->interval_ms / 1000.0;
    a->n = build_notif(r, ic, value, threshold);
    a->last_sent = xcalloc(h->cfg->n_recv + 1, sizeof *a->last_sent);
    a->routed = xcalloc(h->cfg->n_recv + 1, sizeof *a->routed);
    route(h->cfg, r, a->n, a->routed);
    act_add(h, a);
    return a;
}

/* Queues a firing n for every receiver a goes to (unless silenced); a
 * resolved n for every receiver told of the firing, wherever the alert goes
 * now and silenced or not (a reload that moved it elsewhere, or a silence
 * added since, must not leave a receiver with a firing alert that never
 * ends), and never to one that was not told (a webhook added by a reload,
 * or while the agent was stopped, is told by the delivery thread: the end
 * may come first). Alertmanager learns of active alerts from the periodic
 * re-send too, so an unsilenced one it is routed gets the end as well.
 * True when n went to at least one. */
static bool send_to_routes(struct hub *h, struct hub_alert *a, const struct notif *n, double now)
{
    bool any = false;
    for (size_t r = 0; r < h->cfg->n_recv; r++) {
        bool routed = a->routed[r] && !a->silenced;
        bool to = n->resolved ? a->last_sent[r] || (routed && h->cfg->recv[r].type == RECV_ALERTMANAGER) : routed;
        if (to) {
            any = true;
            struct notif *c = notif_dup(n);
            c->seq = ++h->seq;
            c->created = now;
            hub_enqueue(h, r, c);
            a->last_sent[r] = now_mono_s(); /* repeats are timed on it (deliver.c) */
        }
    }
    return any;
}

static void keep_resolved(struct hub *h, const struct notif *n)
{
    bool am = false;
    for (size_t r = 0; r < h->cfg->n_recv; r++)
        am |= h->cfg->recv[r].type == RECV_ALERTMANAGER;
    if (!am)
        return;
    /* one per fingerprint, the latest: a flapping rule keeps one entry, not
     * one per episode in every re-send and state file write for 15 minutes */
    for (size_t i = 0; i < h->n_resolved; i++)
        if (strcmp(h->resolved[i]->fp, n->fp) == 0) {
            notif_free(h->resolved[i]);
            h->resolved[i] = notif_dup(n);
            return;
        }
    h->resolved = xrealloc(h->resolved, (h->n_resolved + 1) * sizeof *h->resolved);
    h->resolved[h->n_resolved++] = notif_dup(n);
}

static void ep_put(struct hub *h, const char *instance, const char *rule, uint32_t episode)
{
    for (size_t i = 0; i < h->n_eps; i++)
        if (strcmp(h->eps[i].instance, instance) == 0 && strcmp(h->eps[i].rule, rule) == 0) {
            h->eps[i].episode = episode;
            return;
        }
    h->eps = xrealloc(h->eps, (h->n_eps + 1) * sizeof *h->eps);
    h->eps[h->n_eps].instance = xstrdup(instance);
    h->eps[h->n_eps].rule = xstrdup(rule);
    h->eps[h->n_eps++].episode = episode;
}

static uint32_t ep_get(const struct hub *h, const char *instance, const char *rule)
{
    for (size_t i = 0; i < h->n_eps; i++)
        if (strcmp(h->eps[i].instance, instance) == 0 && strcmp(h->eps[i].rule, rule) == 0)
            return h->eps[i].episode;
    return 0;
}

/* in's active alert of plan entry k, or NULL. Most instances never have
 * one: the array is allocated with the first (bench: 200 B an instance). */
static struct hub_alert *active_of(const struct alert_inst *in, size_t k) { return in->h ? in->h[k] : NULL; }

static void set_active(struct alert_inst *in, size_t k, struct hub_alert *a)
{
    if (!in->h && !a)
        return;
    if (!in->h)
        in->h = xcalloc(in->plan.n + 1, sizeof *in->h);
    in->h[k] = a;
}

/* The rule states run on the monotonic clock (rule_step); what is shown
 * and saved is wall-clock time. off: the poll's wall-clock time minus its
 * monotonic one, to go from the first to the second. */
static void on_transition(struct hub *h, struct alert_inst *in, size_t k, enum alert_tr tr, double value,
                          double now, double off)
{
    const struct plan_entry *pe = &in->plan.e[k];
    const struct alert_rule *r = &h->cfg->rules[pe->rule];
    struct alert_state *st = &in->st[k];
    struct hub_alert *a = active_of(in, k);
    switch (tr) {
    case TR_PENDING:
    case TR_FIRING:
        if (!a) {
            a = new_hub_alert(h, r, pe->rule, in->ic, value, pe->threshold);
            set_active(in, k, a);
            in->n_active++;
        }
        a->phase = st->phase;
        a->episode = st->episode;
        a->since = st->active_since + off;
        a->last_true = st->last_true + off;
        a->value = value;
        if (tr == TR_FIRING) {
            /* annotations show the value at the time of firing */
            struct notif *fresh = build_notif(r, in->ic, value, pe->threshold);
            notif_free(a->n);
            a->n = fresh;
            a->n->episode = st->episode;
            a->n->starts_at = a->since;
            a->silenced = hub_silenced(h->cfg, a->n, now);
            send_to_routes(h, a, a->n, now);
            log_info("alerts", "%s: %s firing (value %g, threshold %g)%s", in->ic->name, r->name, value,
                     pe->threshold, a->silenced ? " [silenced]" : "");
        }
        break;
    case TR_CANCELLED:
    case TR_RESOLVED:
        if (!a)
            break;
        if (tr == TR_RESOLVED) {
            struct notif *n = build_notif(r, in->ic, value, pe->threshold);
            n->resolved = true;
            n->episode = a->episode;
            n->starts_at = a->since;
            n->ends_at = now;
            a->silenced = hub_silenced(h->cfg, n, now);
            if (send_to_routes(h, a, n, now))
                keep_resolved(h, n);
            notif_free(n);
            log_info("alerts", "%s: %s resolved (value %g)", in->ic->name, r->name, value);
        }
        if (a->episode)
            ep_put(h, a->instance, r->name, a->episode);
        act_remove(h, a);
        hub_alert_free(a);
        set_active(in, k, NULL);
        in->n_active--;
        break;
    case TR_NONE:
        break;
    }
    /* A pending alert that comes and goes (a figure hovering at the threshold
     * of a rule with a long `for`, on thousands of instances) must not
     * rewrite the state file at every poll: losing it to a crash only
     * restarts its `for`. */
    if (tr == TR_PENDING || tr == TR_CANCELLED)
        h->dirty_lazy = true;
    else
        h->dirty = true;
}

/* ---- restore ------------------------------------------------------------ */

/* Active alerts read from the state file, waiting for their instance's first
 * poll to claim them. */
struct saved {
    char *instance, *rule;
    struct alert_state st;
    struct notif *n;
    bool claimed;
    cJSON *told; /* names of the receivers told of its firing; NULL: a file from before, all of them */
};
static struct saved *saved;
static size_t n_saved;

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int labels_from_json(const cJSON *o, struct label **v, size_t *n)
{
    if (!cJSON_IsObject(o))
        return -1;
    for (const cJSON *c = o->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return -1;
        alerts_label_put(v, n, c->string, c->valuestring);
    }
    return 0;
}

static struct notif *notif_from_json(const cJSON *o)
{
    const char *fp = jstr(o, "fp");
    double seq = jnum(o, "seq"), created = jnum(o, "created"), ep = jnum(o, "episode");
    double sa = jnum(o, "starts_at"), ea = jnum(o, "ends_at"), iv = jnum(o, "interval");
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(o, "resolved");
    const cJSON *rep = cJSON_GetObjectItemCaseSensitive(o, "repeat"); /* absent: false */
    /* ranges first: converting an out-of-range double to an integer is UB */
    if (!fp || strlen(fp) != 16 || strspn(fp, "0123456789abcdef") != 16 || !(seq >= 0 && seq < 9e15) ||
        !(ep >= 0 && ep <= 4294967295.0) || !isfinite(created) || !isfinite(sa) || !isfinite(ea) || !isfinite(iv) ||
        !cJSON_IsBool(res) || (rep && !cJSON_IsBool(rep)))
        return NULL;
    struct notif *n = xcalloc(1, sizeof *n);
    memcpy(n->fp, fp, 17);
    n->seq = (uint64_t)seq;
    n->created = created;
    n->episode = (uint32_t)ep;
    n->starts_at = sa;
    n->ends_at = ea;
    n->interval_s = iv;
    n->resolved = cJSON_IsTrue(res);
    n->repeat = cJSON_IsTrue(rep);
    if (labels_from_json(cJSON_GetObjectItemCaseSensitive(o, "labels"), &n->labels, &n->n_labels) < 0 ||
        labels_from_json(cJSON_GetObjectItemCaseSensitive(o, "annotations"), &n->ann, &n->n_ann) < 0) {
        notif_free(n);
        return NULL;
    }
    return n;
}

static void put_notif(struct buf *b, const struct notif *n)
{
    buf_printf(b, "{\"fp\":\"%s\",\"seq\":%llu,\"created\":%.3f,\"episode\":%u,\"resolved\":%s,%s"
                  "\"starts_at\":%.3f,\"ends_at\":%.3f,\"interval\":%.3f,\"labels\":{",
               n->fp, (unsigned long long)n->seq, n->created, (unsigned)n->episode, n->resolved ? "true" : "false",
               n->repeat ? "\"repeat\":true," : "", n->starts_at, n->ends_at, n->interval_s);
    for (size_t i = 0; i < n->n_labels; i++) {
        if (i)
            buf_putc(b, ',');
        buf_put_json_str(b, n->labels[i].name);
        buf_putc(b, ':');
        buf_put_json_str(b, n->labels[i].value);
    }
    buf_puts(b, "},\"annotations\":{");
    for (size_t i = 0; i < n->n_ann; i++) {
        if (i)
            buf_putc(b, ',');
        buf_put_json_str(b, n->ann[i].name);
        buf_putc(b, ':');
        buf_put_json_str(b, n->ann[i].value);
    }
    buf_puts(b, "}}");
}

void hub_serialize(const struct hub *h, bool clean, struct buf *b)
{
    buf_printf(b, "{\"version\":1,\"seq\":%llu,\"clean\":%s,\"alerts\":[", (unsigned long long)h->seq,
               clean ? "true" : "false");
    for (size_t i = 0; i < h->n_act; i++) {
        const struct hub_alert *a = h->act[i];
        if (i)
            buf_putc(b, ',');
        buf_puts(b, "{\"instance\":");
        buf_put_json_str(b, a->instance);
        buf_puts(b, ",\"rule\":");
        buf_put_json_str(b, h->cfg->rules[a->rule].name);
        buf_printf(b, ",\"phase\":%d,\"episode\":%u,\"since\":%.3f,\"last_true\":%.3f,\"told\":[", a->phase,
                   (unsigned)a->episode, a->since, a->last_true);
        for (size_t r = 0, k = 0; r < h->cfg->n_recv; r++)
            if (a->last_sent[r]) {
                if (k++)
                    buf_putc(b, ',');
                buf_put_json_str(b, h->cfg->recv[r].name);
            }
        buf_puts(b, "],\"alert\":");
        put_notif(b, a->n);
        buf_putc(b, '}');
    }
    buf_puts(b, "],\"episodes\":[");
    for (size_t i = 0; i < h->n_eps; i++) {
        if (i)
            buf_putc(b, ',');
        buf_puts(b, "{\"instance\":");
        buf_put_json_str(b, h->eps[i].instance);
        buf_puts(b, ",\"rule\":");
        buf_put_json_str(b, h->eps[i].rule);
        buf_printf(b, ",\"episode\":%u}", (unsigned)h->eps[i].episode);
    }
    buf_puts(b, "],\"resolved\":[");
    for (size_t i = 0; i < h->n_resolved; i++) {
        if (i)
            buf_putc(b, ',');
        put_notif(b, h->resolved[i]);
    }
    buf_puts(b, "],\"outbox\":{");
    for (size_t r = 0; r < h->cfg->n_recv; r++) {
        if (r)
            buf_putc(b, ',');
        buf_put_json_str(b, h->cfg->recv[r].name);
        buf_puts(b, ":[");
        for (size_t i = 0; i < h->ob[r].n; i++) {
            if (i)
                buf_putc(b, ',');
            put_notif(b, h->ob[r].v[i]);
        }
        buf_putc(b, ']');
    }
    buf_puts(b, "}}\n");
}

bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int state_write_atomic(const char *path, const char *data, size_t len)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return -1;
    bool ok = fwrite(data, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (!ok || rename(tmp, path) != 0) {
        e = ok ? errno : e;
        unlink(tmp);
        errno = e;
        return -1;
    }
    /* the rename itself is durable once the directory is synced */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *sl = strrchr(dir, '/');
    if (sl) {
        *sl = '\0';
        FILE *d = fopen(*dir ? dir : "/", "r");
        if (d) {
            fsync(fileno(d));
            fclose(d);
        }
    }
    return 0;
}

/* Moves a bad state file aside so the next start does not trip on it again
 * and a human can look at it. */
static void move_aside(const char *path, const char *why)
{
    char dst[4200];
    snprintf(dst, sizeof dst, "%s.corrupt-%lld", path, (long long)time(NULL));
    if (rename(path, dst) == 0)
        log_error("alerts", "state file %s: %s; moved to %s, starting with no alert state", path, why, dst);
    else
        log_error("alerts", "state file %s: %s; cannot move it aside (%s), starting with no alert state", path, why,
                  strerror(errno));
}

/* A state file that is there but cannot be read (EACCES, EIO, a directory,
 * a symlink to nothing, a symlink loop) is moved aside as a corrupt one is:
 * started empty with it in place, the first write would rename the empty
 * state over it (or over the symlink) and lose its firing alerts, outboxes
 * and episode counts for good. Only nothing at the path is a first start. */
static void unreadable(const char *path, int err)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (err != ENOENT) /* nothing there to keep: state_dir itself is unusable */
            log_warn("alerts", "cannot read state file %s: %s", path, strerror(err));
        return;
    }
    struct buf why = BUF_INIT;
    buf_printf(&why, "cannot be read: %s%s", strerror(err),
               S_ISLNK(sb.st_mode) && err == ENOENT ? " (a symlink whose target is missing)" : "");
    move_aside(path, why.p);
    buf_free(&why);
}

/* A time from the state file, taken as at most now (a clock set back
 * since, or an edited file: an end in the future never ages out) and at
 * least the epoch. */
static double clamp_time(double t, double now) { return t > now ? now : t > 0 ? t : 0; }

static struct notif *clamp_times(struct notif *n, double now)
{
    n->created = clamp_time(n->created, now);
    n->starts_at = clamp_time(n->starts_at, now);
    if (n->ends_at) /* 0: still firing */
        n->ends_at = clamp_time(n->ends_at, now);
    return n;
}

static void restore(struct hub *h)
{
    FILE *f = fopen(h->state_path, "rb");
    if (!f) {
        unreadable(h->state_path, errno);
        return;
    }
    struct buf b = BUF_INIT;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_append(&b, tmp, n);
    if (ferror(f)) { /* EISDIR, EIO: what was read is not the file */
        int e = errno;
        fclose(f);
        buf_free(&b);
        unreadable(h->state_path, e);
        return;
    }
    fclose(f);
    cJSON *root = b.p ? cJSON_ParseWithLength(b.p, b.len) : NULL;
    buf_free(&b);
    const cJSON *alerts = root ? cJSON_GetObjectItemCaseSensitive(root, "alerts") : NULL;
    const cJSON *res = root ? cJSON_GetObjectItemCaseSensitive(root, "resolved") : NULL;
    const cJSON *ob = root ? cJSON_GetObjectItemCaseSensitive(root, "outbox") : NULL;
    const cJSON *eps = root ? cJSON_GetObjectItemCaseSensitive(root, "episodes") : NULL;
    if (!root || jnum(root, "version") != 1 || !cJSON_IsArray(alerts) || !cJSON_IsArray(res) ||
        !cJSON_IsObject(ob) || !cJSON_IsArray(eps)) {
        cJSON_Delete(root);
        move_aside(h->state_path, "not a valid state file (truncated or corrupt)");
        return;
    }
    /* check everything before taking anything */
    bool bad = false;
    for (const cJSON *a = alerts->child; a && !bad; a = a->next) {
        struct notif *t = notif_from_json(cJSON_GetObjectItemCaseSensitive(a, "alert"));
        double ph = jnum(a, "phase");
        double ep = jnum(a, "episode");
        const cJSON *told = cJSON_GetObjectItemCaseSensitive(a, "told");
        bad = !t || !jstr(a, "instance") || !jstr(a, "rule") || !(ph == AP_PENDING || ph == AP_FIRING) ||
              !(ep >= 0 && ep <= 4294967295.0) || !isfinite(jnum(a, "since")) || !isfinite(jnum(a, "last_true")) ||
              (told && !cJSON_IsArray(told));
        for (const cJSON *x = told ? told->child : NULL; x && !bad; x = x->next)
            bad = !cJSON_IsString(x);
        notif_free(t);
    }
    for (const cJSON *e = eps->child; e && !bad; e = e->next)
        bad = !jstr(e, "instance") || !jstr(e, "rule") || !(jnum(e, "episode") >= 0 && jnum(e, "episode") <= 4294967295.0);
    for (const cJSON *a = res->child; a && !bad; a = a->next) {
        struct notif *t = notif_from_json(a);
        bad = !t;
        notif_free(t);
    }
    for (const cJSON *q = ob->child; q && !bad; q = q->next) {
        bad = !cJSON_IsArray(q);
        for (const cJSON *a = bad ? NULL : q->child; a && !bad; a = a->next) {
            struct notif *t = notif_from_json(a);
            bad = !t;
            notif_free(t);
        }
    }
    if (bad) {
        cJSON_Delete(root);
        move_aside(h->state_path, "an entry is malformed");
        return;
    }
    double seq = jnum(root, "seq");
    h->seq = seq >= 0 && seq < 9e15 ? (uint64_t)seq : 0;
    /* the outbox is numbered again below, in its order, from here on: seq
     * values of an edited file that do not rise would keep a delivered
     * batch from ever leaving its queue */
    /* Pending alerts are saved lazily (within 5 s): after a crash the file
     * may still hold one whose condition ended since, so its `for` starts
     * again now rather than from a time the condition did not hold since.
     * The last save of a clean stop holds everything. */
    bool clean = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "clean"));
    double now = now_real_s();
    size_t restarted = 0;
    for (const cJSON *a = alerts->child; a; a = a->next) {
        saved = xrealloc(saved, (n_saved + 1) * sizeof *saved);
        struct saved *s = &saved[n_saved++];
        memset(s, 0, sizeof *s);
        s->instance = xstrdup(jstr(a, "instance"));
        s->rule = xstrdup(jstr(a, "rule"));
        s->st.phase = (uint8_t)jnum(a, "phase");
        s->st.episode = (uint32_t)jnum(a, "episode");
        s->st.active_since = clamp_time(jnum(a, "since"), now);
        s->st.last_true = clamp_time(jnum(a, "last_true"), now);
        s->n = notif_from_json(cJSON_GetObjectItemCaseSensitive(a, "alert"));
        clamp_times(s->n, now);
        const cJSON *told = cJSON_GetObjectItemCaseSensitive(a, "told");
        s->told = told ? cJSON_Duplicate(told, 1) : NULL;
        if (!clean && s->st.phase == AP_PENDING) {
            s->st.active_since = s->st.last_true = now;
            s->n->starts_at = now;
            restarted++;
        }
    }
    for (const cJSON *e = eps->child; e; e = e->next)
        ep_put(h, jstr(e, "instance"), jstr(e, "rule"), (uint32_t)jnum(e, "episode"));
    for (const cJSON *a = res->child; a; a = a->next) {
        h->resolved = xrealloc(h->resolved, (h->n_resolved + 1) * sizeof *h->resolved);
        h->resolved[h->n_resolved++] = clamp_times(notif_from_json(a), now);
    }
    size_t queued = 0;
    for (const cJSON *q = ob->child; q; q = q->next) {
        int r = alerts_cfg_receiver(h->cfg, q->string);
        if (r < 0) {
            log_warn("alerts", "state file: %d undelivered notifications for receiver \"%s\", which is no longer "
                     "configured, are dropped", cJSON_GetArraySize(q), q->string);
            continue;
        }
        /* past the receiver's queue_size the oldest go, as on overflow:
         * skipped here rather than each pushed out of a full queue */
        size_t have = (size_t)cJSON_GetArraySize(q), cap = h->cfg->recv[r].queue_size, skip = have > cap ? have - cap : 0;
        if (skip) {
            h->ob[r].dropped += skip;
            log_warn("alerts", "state file: %zu undelivered notifications for receiver \"%s\", more than its "
                     "queue_size (%zu): the %zu oldest are dropped", have, q->string, cap, skip);
        }
        for (const cJSON *a = q->child; a; a = a->next) {
            if (skip) {
                skip--;
                continue;
            }
            struct notif *nf = clamp_times(notif_from_json(a), now);
            nf->seq = ++h->seq;
            hub_enqueue(h, (size_t)r, nf);
            queued++;
        }
    }
    cJSON_Delete(root);
    log_info("alerts", "state restored from %s: %zu active alerts, %zu undelivered notifications%s", h->state_path,
             n_saved, queued, restarted ? " (not a clean stop: the `for` of the pending ones starts again)" : "");
}

/* Saved alerts whose instance or rule is gone: resolve them now. */
static void resolve_orphans(struct hub *h, const struct config *cfg)
{
    double now = now_real_s();
    for (size_t i = 0; i < n_saved; i++) {
        bool found = false;
        for (size_t k = 0; k < cfg->n_instances && !found; k++) {
            if (strcmp(cfg->instances[k].name, saved[i].instance) != 0)
                continue;
            struct alert_plan pl; /* start and reload only, for saved alerts only */
            alerts_plan_compile(h->cfg, &cfg->instances[k], &pl);
            for (size_t e = 0; e < pl.n && !found; e++)
                found = strcmp(h->cfg->rules[pl.e[e].rule].name, saved[i].rule) == 0;
            free(pl.e);
        }
        if (found)
            continue;
        saved[i].claimed = true;
        if (saved[i].st.phase != AP_FIRING)
            continue;
        struct notif *n = saved[i].n;
        n->resolved = true;
        n->ends_at = now;
        for (size_t r = 0; r < h->cfg->n_recv; r++) { /* its rule is gone: every receiver */
            struct notif *c = notif_dup(n);
            c->seq = ++h->seq;
            c->created = now;
            hub_enqueue(h, r, c);
        }
        keep_resolved(h, n);
        log_info("alerts", "%s: %s resolved (its instance or rule is no longer configured)", saved[i].instance,
                 saved[i].rule);
        h->dirty = true;
    }
}

/* ---- the engine --------------------------------------------------------- */

/* <dir>/alerts.json, the directory made when missing (a warning when it
 * cannot be: the state is then kept in memory only). */
static char *state_file(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0 && mkdir(dir, STATE_DIR_MODE) != 0)
        log_warn("alerts", "state_dir %s: %s; alert state will not survive a restart", dir, strerror(errno));
    struct buf p = BUF_INIT;
    buf_printf(&p, "%s/alerts.json", dir);
    return buf_steal(&p, NULL);
}

int alerts_start(const struct config *cfg)
{
    if (alerts_hub || !cfg->alerts)
        return 0;
    struct hub *h = xcalloc(1, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->cfg = cfg->alerts;
    h->ob = xcalloc(h->cfg->n_recv + 1, sizeof *h->ob);
    h->state_path = state_file(h->cfg->state_dir);
    restore(h);
    resolve_orphans(h, cfg);
    alerts_hub = h;
    if (deliver_start(h) < 0) {
        log_error("alerts", "cannot start the delivery thread");
        alerts_stop();
        return -1;
    }
    log_info("alerts", "%zu alert rules (%zu enabled), %zu receivers, state in %s", h->cfg->n_rules,
             h->cfg->n_enabled, h->cfg->n_recv, h->state_path);
    return 0;
}

void alerts_stop(void)
{
    struct hub *h = alerts_hub;
    if (!h)
        return;
    deliver_stop(h);
    alerts_hub = NULL;
    while (insts) {
        struct alert_inst *n = insts->next;
        free(insts->plan.e);
        free(insts->name);
        free(insts->st);
        free(insts->h);
        free(insts->prev);
        free(insts->base);
        free(insts);
        insts = n;
    }
    for (size_t i = 0; i < h->n_act; i++)
        hub_alert_free(h->act[i]);
    free(h->act);
    for (size_t i = 0; i < h->n_resolved; i++)
        notif_free(h->resolved[i]);
    free(h->resolved);
    for (size_t i = 0; i < h->n_eps; i++) {
        free(h->eps[i].instance);
        free(h->eps[i].rule);
    }
    free(h->eps);
    for (size_t r = 0; r < h->cfg->n_recv; r++) {
        for (size_t i = 0; i < h->ob[r].n; i++)
            notif_free(h->ob[r].v[i]);
        free(h->ob[r].v);
    }
    free(h->ob);
    for (size_t i = 0; i < n_saved; i++) {
        free(saved[i].instance);
        free(saved[i].rule);
        notif_free(saved[i].n);
        cJSON_Delete(saved[i].told);
    }
    free(saved);
    saved = NULL;
    n_saved = 0;
    free(h->state_path);
    free(h->moved_from);
    free(h->recv_map);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}

/* A wall-clock time t from the state file on the monotonic clock of the
 * poll st: as long before the poll as the wall clock says, never after it
 * (the clock may have been set back since it was saved). */
static double mono_of(const struct poll_stats *st, double t)
{
    double ago = st->last_poll_ts - t;
    return st->last_poll_mono - (ago > 0 ? ago : 0);
}

/* Whether the receiver called name was told of a saved alert's firing:
 * named in its list, or any receiver when the file has no list (written
 * before there was one). A receiver added while the agent was stopped is
 * in no list, and is told now (deliver.c). */
static bool told_of(const cJSON *told, const char *name)
{
    if (!told)
        return true;
    for (const cJSON *x = told->child; x; x = x->next)
        if (strcmp(x->valuestring, name) == 0)
            return true;
    return false;
}

static struct alert_inst *inst_new(struct hub *h, const struct instance_cfg *ic, const struct poll_stats *st)
{
    struct alert_inst *in = xcalloc(1, sizeof *in);
    /* by name, against the rules the engine runs: an instance a reload
     * added or moved gets its own rules, overrides and matchers */
    alerts_plan_compile(h->cfg, ic, &in->plan);
    in->ic = ic;
    in->labels = labels_hash(ic);
    in->name = xstrdup(ic->name);
    size_t n = in->plan.n;
    in->st = xcalloc(n + 1, sizeof *in->st);
    if (in->plan.n_slots) {
        /* only the rules that need them: previous values and baselines */
        in->prev = xmalloc(in->plan.n_slots * sizeof *in->prev);
        in->base = xmalloc(in->plan.n_slots * sizeof *in->base);
        for (size_t j = 0; j < in->plan.n_slots; j++) {
            in->prev[j] = NAN;
            in->base[j] = (struct baseline){NAN, 0, 0};
        }
    }
    /* episode counts go on from where they were */
    for (size_t k = 0; k < n; k++)
        in->st[k].episode = ep_get(h, ic->name, h->cfg->rules[in->plan.e[k].rule].name);
    /* take over what the state file says about this instance */
    for (size_t i = 0; i < n_saved; i++) {
        struct saved *s = &saved[i];
        if (s->claimed || strcmp(s->instance, ic->name) != 0)
            continue;
        for (size_t k = 0; k < n; k++) {
            const struct plan_entry *pe = &in->plan.e[k];
            const struct alert_rule *r = &h->cfg->rules[pe->rule];
            if (strcmp(r->name, s->rule) != 0)
                continue;
            s->claimed = true;
            if (active_of(in, k)) { /* a second entry for one alert (the file was edited): the first holds */
                log_warn("alerts", "state file: %s/%s listed twice; the second entry is dropped", s->instance,
                         s->rule);
                break;
            }
            in->st[k] = s->st;
            in->st[k].active_since = mono_of(st, s->st.active_since);
            in->st[k].last_true = mono_of(st, s->st.last_true);
            struct hub_alert *a = new_hub_alert(h, r, pe->rule, ic, NAN, pe->threshold);
            notif_free(a->n);
            a->n = notif_dup(s->n);
            a->phase = s->st.phase;
            a->episode = s->st.episode;
            /* shown and sent as wall-clock times, never later than now
             * (an end before its start would be refused) */
            a->since = fmin(s->st.active_since, st->last_poll_ts);
            a->last_true = fmin(s->st.last_true, st->last_poll_ts);
            a->n->starts_at = fmin(a->n->starts_at, st->last_poll_ts);
            double now = now_real_s();
            a->silenced = hub_silenced(h->cfg, a->n, now);
            if (a->phase == AP_FIRING) /* told before the restart: no second firing */
                for (size_t r2 = 0; r2 < h->cfg->n_recv; r2++)
                    if (told_of(s->told, h->cfg->recv[r2].name))
                        a->last_sent[r2] = now_mono_s();
            set_active(in, k, a);
            in->n_active++;
            break;
        }
    }
    in->next = insts;
    insts = in;
    return in;
}

static void inst_rebuild(struct hub *h, struct alert_inst *in, const struct alerts_cfg *old, double now);

void alerts_after_poll(struct alert_inst **slot, const struct instance_cfg *ic, const struct poll_stats *st, const struct info_sample *s, const struct derived *d,
                       const struct config_values *cv)
{
    struct hub *h = alerts_hub;
    if (!h || !st->polled)
        return;
    struct alert_inst *in = *slot;
    if (!in) {
        pthread_mutex_lock(&h->mu);
        in = *slot = inst_new(h, ic, st);
        pthread_mutex_unlock(&h->mu);
    }
    in->ic = ic; /* a reload may have moved the instance to a new generation */
    uint64_t lh = labels_hash(ic);
    if (lh != in->labels) { /* relabelled: the rules that choose it by label may be others */
        pthread_mutex_lock(&h->mu);
        inst_rebuild(h, in, h->cfg, st->last_poll_ts);
        bool wake = h->dirty;
        pthread_mutex_unlock(&h->mu);
        if (wake)
            deliver_wake();
    }
    bool up = st->last_outcome == OUTCOME_OK && s && d;
    struct rule_input ri = {up, up ? s : NULL, up ? d : NULL, cv};
    double now = st->last_poll_ts, mono = st->last_poll_mono;
    bool locked = false;
    for (size_t k = 0; k < in->plan.n; k++) {
        const struct plan_entry *pe = &in->plan.e[k];
        const struct alert_rule *r = &h->cfg->rules[pe->rule];
        double scratch = NAN;
        double v = figure_value(&r->fig, &ri, pe->slot >= 0 ? &in->prev[pe->slot] : &scratch);
        struct rule_params p = r->p;
        p.threshold = pe->threshold;
        enum alert_tr tr = rule_step(&p, &in->st[k], pe->slot >= 0 ? &in->base[pe->slot] : NULL, v, mono);
        if (tr == TR_NONE && !active_of(in, k))
            continue;
        if (!locked) {
            pthread_mutex_lock(&h->mu);
            locked = true;
        }
        if (tr == TR_NONE) {
            if (!isnan(v))
                in->h[k]->value = v;
            in->h[k]->last_true = in->st[k].last_true + (now - mono);
            if (in->st[k].phase == AP_PENDING) /* saved as it is: in the wall clock of now */
                in->h[k]->since = in->st[k].active_since + (now - mono);
            continue;
        }
        on_transition(h, in, k, tr, v, now, now - mono);
    }
    if (locked) {
        bool wake = h->dirty;
        pthread_mutex_unlock(&h->mu);
        if (wake)
            deliver_wake();
    }
}

/* Ends active alert a whose instance or rule is gone (lock held): a firing
 * one is resolved, as Prometheus does when a series vanishes, with the
 * labels and annotations it fired with; a pending one is dropped. */
static void drop_active(struct hub *h, struct hub_alert *a, const char *rule, double now, const char *why)
{
    if (a->phase == AP_FIRING) {
        struct notif *n = notif_dup(a->n);
        n->resolved = true;
        n->episode = a->episode;
        n->starts_at = a->since;
        n->ends_at = now;
        if (send_to_routes(h, a, n, now))
            keep_resolved(h, n);
        notif_free(n);
        log_info("alerts", "%s: %s resolved (%s)", a->instance, rule, why);
    }
    if (a->episode)
        ep_put(h, a->instance, rule, a->episode);
    act_remove(h, a);
    hub_alert_free(a);
    h->dirty = true;
}

void alerts_forget(struct alert_inst **slot)
{
    struct hub *h = alerts_hub;
    struct alert_inst *in = *slot;
    if (!h || !in)
        return;
    *slot = NULL;
    double now = now_real_s();
    pthread_mutex_lock(&h->mu);
    for (size_t k = 0; k < in->plan.n; k++)
        if (active_of(in, k))
            drop_active(h, in->h[k], h->cfg->rules[in->h[k]->rule].name, now, "the instance is no longer configured");
    for (struct alert_inst **p = &insts; *p; p = &(*p)->next)
        if (*p == in) {
            *p = in->next;
            break;
        }
    bool wake = h->dirty;
    pthread_mutex_unlock(&h->mu);
    free(in->plan.e);
    free(in->name);
    free(in->st);
    free(in->h);
    free(in->prev);
    free(in->base);
    free(in);
    if (wake)
        deliver_wake();
}

/* The receivers of h->cfg (just swapped in from old; lock held) by name:
 * outboxes and their counters, and each active alert's per-receiver
 * bookkeeping, move to the new indexes; the outboxes of receivers removed
 * are dropped (logged with their count); the delivery thread takes the
 * mapping in (deliver_remap) before it next looks at a receiver. */
static void remap_receivers(struct hub *h, const struct alerts_cfg *old)
{
    size_t n = h->cfg->n_recv;
    int *map = xcalloc(n + 1, sizeof *map);
    bool *kept = xcalloc(old->n_recv + 1, sizeof *kept);
    for (size_t r = 0; r < n; r++) {
        map[r] = alerts_cfg_receiver(old, h->cfg->recv[r].name);
        if (map[r] >= 0)
            kept[map[r]] = true;
    }
    struct outbox *ob = xcalloc(n + 1, sizeof *ob);
    for (size_t r = 0; r < n; r++)
        if (map[r] >= 0)
            ob[r] = h->ob[map[r]];
    for (size_t o = 0; o < old->n_recv; o++) {
        if (kept[o])
            continue;
        if (h->ob[o].n)
            log_warn("alerts", "receiver \"%s\" is no longer configured: %zu undelivered notifications dropped",
                     old->recv[o].name, h->ob[o].n);
        for (size_t i = 0; i < h->ob[o].n; i++)
            notif_free(h->ob[o].v[i]);
        free(h->ob[o].v);
    }
    free(h->ob);
    h->ob = ob;
    for (size_t i = 0; i < h->n_act; i++) {
        struct hub_alert *a = h->act[i];
        double *ls = xcalloc(n + 1, sizeof *ls);
        bool *ro = xcalloc(n + 1, sizeof *ro);
        for (size_t r = 0; r < n; r++)
            if (map[r] >= 0) {
                ls[r] = a->last_sent[map[r]];
                ro[r] = a->routed[map[r]];
            }
        free(a->last_sent);
        free(a->routed);
        a->last_sent = ls;
        a->routed = ro;
    }
    free(kept);
    /* the delivery thread's view may still be older than old: compose */
    if (h->recv_map) {
        for (size_t r = 0; r < n; r++)
            map[r] = map[r] >= 0 ? h->recv_map[map[r]] : -1;
        free(h->recv_map);
    } else {
        h->map_n_old = old->n_recv;
    }
    h->recv_map = map;
}

static const struct instance_cfg *find_instance(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_instances; i++)
        if (cfg->instances[i].name && strcmp(cfg->instances[i].name, name) == 0)
            return &cfg->instances[i];
    return NULL;
}

/* Moves in to the rules of h->cfg (just swapped in; lock held): states of
 * the rules it still has carry over by rule name, active alerts of the
 * others end. */
static void inst_rebuild(struct hub *h, struct alert_inst *in, const struct alerts_cfg *old, double now)
{
    struct alert_plan pl;
    alerts_plan_compile(h->cfg, in->ic, &pl);
    in->labels = labels_hash(in->ic);
    struct alert_state *st = xcalloc(pl.n + 1, sizeof *st);
    struct hub_alert **ha = NULL; /* with the first active alert, as set_active */
    double *prev = pl.n_slots ? xmalloc(pl.n_slots * sizeof *prev) : NULL;
    struct baseline *base = pl.n_slots ? xmalloc(pl.n_slots * sizeof *base) : NULL;
    for (size_t j = 0; j < pl.n_slots; j++) {
        prev[j] = NAN;
        base[j] = (struct baseline){NAN, 0, 0};
    }
    size_t n_active = 0;
    bool *taken = xcalloc(in->plan.n + 1, sizeof *taken);
    for (size_t k2 = 0; k2 < pl.n; k2++) {
        const struct alert_rule *r = &h->cfg->rules[pl.e[k2].rule];
        st[k2].episode = ep_get(h, in->name, r->name);
        for (size_t k = 0; k < in->plan.n; k++) {
            if (taken[k] || strcmp(old->rules[in->plan.e[k].rule].name, r->name) != 0)
                continue;
            taken[k] = true;
            st[k2] = in->st[k];
            if (pl.e[k2].slot >= 0 && in->plan.e[k].slot >= 0) {
                prev[pl.e[k2].slot] = in->prev[in->plan.e[k].slot];
                base[pl.e[k2].slot] = in->base[in->plan.e[k].slot];
            }
            struct hub_alert *a = active_of(in, k);
            if (a) {
                if (!ha)
                    ha = xcalloc(pl.n + 1, sizeof *ha);
                ha[k2] = a;
                a->rule = pl.e[k2].rule;
                a->threshold = pl.e[k2].threshold;
                route(h->cfg, r, a->n, a->routed);
                a->silenced = hub_silenced(h->cfg, a->n, now);
                n_active++;
            }
            break;
        }
    }
    /* rules gone (or no longer for this instance): their alerts end */
    for (size_t k = 0; k < in->plan.n; k++) {
        struct hub_alert *a = active_of(in, k);
        if (taken[k] || !a)
            continue;
        drop_active(h, a, old->rules[in->plan.e[k].rule].name, now,
                    "its rule is no longer configured for the instance");
    }
    free(taken);
    free(in->plan.e);
    free(in->st);
    free(in->h);
    free(in->prev);
    free(in->base);
    in->plan = pl;
    in->st = st;
    in->h = ha;
    in->prev = prev;
    in->base = base;
    in->n_active = n_active;
}

bool alerts_reload(const struct config *cfg)
{
    struct hub *h = alerts_hub;
    if (!h)
        return false;
    /* instances kept by the reload: their settings are cfg's from now on */
    for (struct alert_inst *in = insts; in; in = in->next) {
        const struct instance_cfg *ic = find_instance(cfg, in->name);
        if (ic)
            in->ic = ic;
    }
    if (!cfg->alerts || cfg->alerts->src_hash == h->cfg->src_hash)
        return false;
    const struct alerts_cfg *old = h->cfg, *nw = cfg->alerts;
    /* a new state_dir: the state in memory is written there at once, and
     * the old file removed once it is (deliver.c, save_state) */
    char *moved = strcmp(old->state_dir, nw->state_dir) != 0 && !same_file(old->state_dir, nw->state_dir)
                      ? state_file(nw->state_dir)
                      : NULL;
    double now = now_real_s();
    pthread_mutex_lock(&h->mu);
    if (moved) {
        if (h->moved_from) /* moved twice before a write: the file is still at the first place */
            free(h->state_path);
        else
            h->moved_from = h->state_path;
        h->state_path = moved;
        log_info("alerts", "state_dir changed: alert state now kept in %s", moved);
    }
    h->cfg = nw;
    remap_receivers(h, old);
    for (struct alert_inst *in = insts; in; in = in->next)
        inst_rebuild(h, in, old, now);
    h->dirty = true;
    pthread_mutex_unlock(&h->mu);
    deliver_wake();
    log_info("alerts", "alert settings reloaded: %zu alert rules (%zu enabled), %zu receivers", nw->n_rules,
             nw->n_enabled, nw->n_recv);
    return true;
}
