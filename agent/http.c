/*
 * http.c - request routing and response assembly on libmicrohttpd's
 * threads. Everything served is either static or assembled from frags the
 * poller already rendered: /metrics copies per-family byte ranges of every
 * instance, /api copies JSON. Limits (connections, per-IP, idle timeout,
 * memory per connection, memory of bodies in flight) come from the
 * configuration. A login that needs bcrypt suspends its connection until
 * auth's worker answers, so these threads never wait for a hash. A
 * watchdog thread cuts off connections whose request does not come in
 * whole by its deadline (the idle timeout alone is reset by every byte).
 */
#include "http.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <libdeflate.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "advise.h"
#include "alerts.h"
#include "auth.h"
#include "conn.h"
#include "discover.h"
#include "log.h"
#include "peerlimit.h"
#include "poller.h"
#include "prom.h"
#include "reload.h"
#include "render.h"
#include "selfstat.h"
#include "util.h"

/* A certificate chain and key ready for handshakes. Handshakes may still
 * use a replaced one, so replaced ones are kept until the server stops
 * (renewals are rare; each costs a few KB). */
struct tls_material {
    gnutls_pcert_st pcert[8];
    unsigned n;
    gnutls_privkey_t key;
    unsigned char digest[64]; /* SHA-256 of the certificate file, then of the key file */
    struct tls_material *older;
};

/* The CAs that sign acceptable client certificates; replaced on SIGHUP,
 * the replaced ones kept (a verification may still be using one). */
struct ca_trust {
    gnutls_x509_trust_list_t tl;
    unsigned char digest[32]; /* SHA-256 of the CA file */
    struct ca_trust *older;
};

/* the watchdog looks at most this often, however many deadlines come */
#define WATCH_MIN_SLEEP_US 100000

/* A connection as the watchdog sees it: on its server's list from MHD's
 * STARTED notification to its CLOSED one, which MHD gives before it closes
 * fd (on every path of 0.9.75), so under watch_lock fd is this
 * connection's. */
struct body;
struct watched {
    struct watched *prev, *next;
    int fd;
    uint64_t deadline_us; /* monotonic; 0: its request is in, none */
    struct body *body;    /* the budgeted body being sent on it, or NULL */
    struct peer_key keys[2]; /* counted in peers under these (peer_keys) */
    size_t nkeys;
    bool refused;         /* over max_connections_per_ip: shut, and its request not served */
};

/* GnuTLS' certificate callback has no user pointer: one HTTP server per
 * process, so the current material is process-wide. */
static _Atomic(struct tls_material *) tls_current;

struct http_server {
    struct MHD_Daemon *d;
    const struct config *cfg;
    struct registry *reg;
    struct auth *auth;        /* NULL: no basic auth */
    bool tls;
    char *client_ca_pem;      /* the first CA: MHD asks for client certificates with it */
    struct tls_material *material; /* newest; ->older the replaced ones */
    _Atomic(struct ca_trust *) trust; /* newest; ->older the replaced ones */
    struct sockaddr_storage addr;
    int listen_fd;            /* >= 0: serve this listening socket (http_apply) */
    _Atomic size_t body_bytes;        /* response bodies not yet sent (changed under watch_lock) */
    size_t evicting;                  /* of those, bodies whose connections were shut for room (watch_lock) */
    _Atomic unsigned long body_refusals; /* 503s for want of body memory */
    _Atomic unsigned long body_evictions; /* connections shut to make room for a new body */
    _Atomic size_t metrics_len[2];    /* what the last /metrics body took of the budget, plain and gzip
                                       * (send_buf_s: its size, or its kept buffer's):
                                       * what the next will take */
    pthread_mutex_t watch_lock;       /* the watched list and its bodies, watch_next_us, watch_stop */
    pthread_cond_t watch_wake;        /* on CLOCK_MONOTONIC */
    struct watched *watched;          /* this server's connections */
    uint64_t watch_next_us;           /* the watchdog's next look; UINT64_MAX: none planned */
    bool watch_stop;
    bool watch_running;               /* watch_thread to join */
    pthread_t watch_thread;
    _Atomic unsigned long deadline_closes; /* connections cut off by their request deadline */
    struct peerlimit *peers;          /* open connections per source (watch_lock) */
    _Atomic unsigned long source_refusals; /* connections refused: their address or /64 had its limit */
    char *spare;                      /* a sent /metrics text's buffer, kept for the next (spare_take; watch_lock) */
    size_t spare_cap;
};

/* One request's state across the handler's calls. */
struct req {
    struct MHD_Connection *c;
    bool whole;               /* read in whole: its deadline is off */
    bool authed;
    bool auth_done;           /* an auth job answered: its result is in ar */
    enum auth_result ar;
};

/* Ownership of one response body: its bytes count in body_bytes until MHD
 * frees it. w, since_us, evicted: under s->watch_lock. */
struct body {
    struct http_server *s;
    size_t len;          /* bytes charged to body_bytes */
    size_t sent;         /* bytes of the body */
    size_t cap;          /* bytes allocated at p */
    bool reuse;          /* a /metrics text: its buffer may be kept (spare_keep) */
    char *p;
    struct watched *w;   /* the connection sending it; NULL once closed */
    uint64_t since_us;   /* when it was queued */
    bool evicted;        /* its connection was shut to make room */
};

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

static const char CT_PROM[] = "text/plain; version=0.0.4; charset=utf-8";
static const char CT_JSON[] = "application/json";
static const char CT_TEXT[] = "text/plain; charset=utf-8";
static const char CT_HTML[] = "text/html; charset=utf-8";

void http_render_metrics(struct registry *reg, const char *target, struct buf *out)
{
    struct registry_view v = {0, NULL, NULL, NULL};
    struct frag *one = NULL;
    struct frag **fr = &one;
    size_t nf = 1;
    if (!target) {
        registry_note_scrape(reg);
        registry_view_take(reg, &v); /* one consistent set of instances */
        fr = v.frags;
        nf = v.n;
    } else {
        one = registry_get_name(reg, target, true);
    }
    size_t total = 0;
    for (size_t i = 0; i < nf; i++)
        if (fr[i])
            total += fr[i]->text_len;
    buf_reserve(out, total + 16384);
    for (int f = 0; f < FAM_COUNT; f++) {
        bool any = false;
        for (size_t i = 0; i < nf; i++) {
            const struct frag *g = fr[i];
            if (!g || frag_off(g, f) == frag_off(g, f + 1))
                continue;
            if (!any) {
                size_t hl;
                const char *h = prom_family_header((enum prom_family)f, &hl);
                buf_append(out, h, hl);
                any = true;
            }
            frag_expand(g, f, out);
        }
    }
    if (!target) {
        buf_puts(out, "# HELP redpulse_build_info Build information of redpulse\n"
                      "# TYPE redpulse_build_info gauge\n");
        buf_printf(out, "redpulse_build_info{%s=\"" REDPULSE_VERSION "\"} 1\n", PL(VERSION));
        buf_puts(out, "# HELP redpulse_open_connections Connections to Redis currently open\n"
                      "# TYPE redpulse_open_connections gauge\n");
        buf_printf(out, "redpulse_open_connections %ld\n", conn_open_count());
        buf_puts(out, "# HELP redpulse_instances Configured Redis instances\n"
                      "# TYPE redpulse_instances gauge\n");
        buf_printf(out, "redpulse_instances %zu\n", v.n);
        poller_render_self(out);
        reload_render_metrics(out);
        discover_render_metrics(out);
        selfstat_render(out);
        alerts_render_metrics(out);
        registry_view_release(&v);
    } else {
        frag_unref(one);
        alerts_render_instance_metrics(out, target); /* its own alerts: what the fleet dashboard counts */
    }
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* An RFC 9110 qvalue in p[0..n): "0" ["." up to 3 digits] or "1" ["." up
 * to 3 zeros]. Its value in thousandths, or -1 when it is none. */
static int qvalue(const char *p, size_t n)
{
    if (n == 0 || (p[0] != '0' && p[0] != '1'))
        return -1;
    int v = (p[0] - '0') * 1000;
    if (n == 1)
        return v;
    if (p[1] != '.' || n > 5)
        return -1;
    int scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v += (p[i] - '0') * scale;
    }
    return v <= 1000 ? v : -1;
}

/* Accept-Encoding as RFC 9110 12.5.3 reads it: codings with optional
 * weights, q=0 "not acceptable"; "*" stands for the codings not named, so a
 * named gzip decides whatever "*" says. An element that does not parse (a
 * weight that is no qvalue, another parameter, text after the weight) counts
 * for nothing: gzip goes only to a client that clearly accepts it. Named
 * twice, the lower weight wins. Reads nothing past the NUL. */
int http_accepts_gzip(const char *ae)
{
    if (!ae)
        return 0;
    int gzip = -1, star = -1; /* lowest weight given, in thousandths; -1: not named */
    const char *p = ae;
    for (;;) {
        const char *e = p + strcspn(p, ","); /* one element: p..e */
        while (p < e && is_ows(*p))
            p++;
        const char *t = p; /* the coding: p..t */
        while (t < e && *t != ';' && !is_ows(*t))
            t++;
        const char *r = t;
        while (r < e && is_ows(*r))
            r++;
        int q = 1000;
        if (r < e) { /* only "; q=VALUE" may follow the coding */
            q = -1;
            if (*r++ == ';') {
                while (r < e && is_ows(*r))
                    r++;
                if (e - r >= 2 && (r[0] == 'q' || r[0] == 'Q') && r[1] == '=') {
                    const char *v = r + 2, *ve = v;
                    while (ve < e && !is_ows(*ve))
                        ve++;
                    const char *z = ve;
                    while (z < e && is_ows(*z))
                        z++;
                    if (z == e)
                        q = qvalue(v, (size_t)(ve - v));
                }
            }
        }
        size_t tl = (size_t)(t - p);
        int *w = NULL; /* the weight this element gives */
        if (q >= 0 && ((tl == 4 && strncasecmp(p, "gzip", 4) == 0) || (tl == 6 && strncasecmp(p, "x-gzip", 6) == 0)))
            w = &gzip; /* x-gzip is gzip (RFC 9110 8.4.1.3) */
        else if (q >= 0 && tl == 1 && *p == '*')
            w = &star;
        if (w && (*w < 0 || q < *w))
            *w = q;
        if (!*e)
            break;
        p = e + 1;
    }
    return gzip >= 0 ? gzip > 0 : star > 0;
}

int http_gzip(const char *in, size_t len, struct buf *out)
{
    /* libdeflate compresses a whole buffer in one call, several times
     * faster than zlib's streaming deflate at the same level */
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(1);
    if (!c)
        return -1;
    size_t bound = libdeflate_gzip_compress_bound(c, len);
    buf_reserve(out, bound);
    size_t n = libdeflate_gzip_compress(c, in, len, out->p + out->len, bound);
    libdeflate_free_compressor(c);
    if (n == 0)
        return -1;
    out->len += n;
    out->p[out->len] = '\0';
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void add_security_headers(struct MHD_Response *r)
{
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "deny");
    MHD_add_response_header(r, "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cache-Control", "no-store");
}

static uint64_t request_deadline_us(const struct http_server *s);
static struct watched *watched_of(struct MHD_Connection *c);

/* The smallest buffer worth keeping: glibc's mmap threshold (service.c);
 * below it freed memory stays in the heap for reuse anyway. */
#define SPARE_MIN (256u * 1024)

/* Keeps p (cap bytes allocated, the last /metrics text written into it
 * len bytes long) as the spare for the next /metrics (spare_take) when none
 * is kept and it is worth it: big enough, at most a quarter of
 * http.max_body_memory, and not more than twice what it last held (the
 * pages a buffer ever had written stay with it: one that the instances
 * cut by a reload left mostly empty goes). false: the caller frees it.
 * Call with s->watch_lock held. */
static bool spare_keep(struct http_server *s, char *p, size_t cap, size_t len)
{
    if (s->spare || cap < SPARE_MIN || cap > s->cfg->http.max_body_memory / 4 || cap > 2 * len + SPARE_MIN)
        return false;
    s->spare = p;
    s->spare_cap = cap;
    return true;
}

static void body_free(void *cls)
{
    struct body *b = cls;
    struct http_server *s = b->s;
    pthread_mutex_lock(&s->watch_lock);
    atomic_fetch_sub(&s->body_bytes, b->len);
    if (b->evicted)
        s->evicting -= b->len;
    if (b->w)
        b->w->body = NULL;
    bool kept = b->reuse && spare_keep(s, b->p, b->cap, b->sent);
    pthread_mutex_unlock(&s->watch_lock);
    if (!kept)
        free(b->p);
    free(b);
}

/* Hands the kept buffer of a sent /metrics, if any, to out (empty) to
 * render the next /metrics into; true when it did. A big body's buffer is
 * above glibc's mmap threshold (service.c), so a new one is fresh pages,
 * each written for the first time through a page fault. Measured on the
 * project's virtual machine: writing 2.7 MB (the /metrics of 200
 * instances) into a new buffer took 6.7-9.5 ms, into a kept one 0.06 ms
 * (an ad hoc program, 200 buffers each way); the faults were most of
 * /metrics' latency at 200 instances (perf: page faults under the body's
 * memcpy). One buffer is kept (spare_keep says which), and only /metrics'
 * own: the other endpoints' bodies are rarer, and one of them kept would
 * let a later /metrics hold more memory than it is charged for. A body in
 * the kept buffer is charged at the buffer's size (send_buf_s). Between
 * scrapes the RSS holds the one buffer, which every scrape needs anyway. */
static bool spare_take(struct http_server *s, struct buf *out)
{
    pthread_mutex_lock(&s->watch_lock);
    bool took = s->spare && !out->p;
    if (took) {
        out->p = s->spare;
        out->cap = s->spare_cap;
        out->len = 0;
        out->p[0] = '\0';
        s->spare = NULL;
        s->spare_cap = 0;
    }
    pthread_mutex_unlock(&s->watch_lock);
    return took;
}

/* Gives the buffer of b, a /metrics text, to the spare (spare_keep) or
 * frees it; b is left empty. */
static void spare_give(struct http_server *s, struct buf *b)
{
    pthread_mutex_lock(&s->watch_lock);
    if (spare_keep(s, b->p, b->cap, b->len))
        *b = (struct buf)BUF_INIT;
    pthread_mutex_unlock(&s->watch_lock);
    buf_free(b);
}

/* Whether len more bytes of bodies fit in http.max_body_memory (one body is
 * always let through, however large, so an endpoint bigger than the budget
 * still answers). When they do not, the bodies not read in whole within
 * request_timeout of their answer give way, oldest first, until what is
 * left fits: their connections are shut (MHD's thread then closes them and
 * frees the bodies, as for the watchdog). With evict false nothing is shut:
 * the answer is whether they would fit after it. A reader that takes a few
 * bytes now and then keeps its connection from ever being idle; without
 * this, a handful of them held the budget and every /metrics got 503. Call
 * with s->watch_lock held. */
static bool body_room(struct http_server *s, size_t len, bool evict)
{
    uint64_t now = now_mono_us(), grace = request_deadline_us(s);
    size_t cur = atomic_load(&s->body_bytes) - s->evicting;
    if (!evict) {
        for (struct watched *w = s->watched; w && cur && cur + len > s->cfg->http.max_body_memory; w = w->next)
            if (w->body && !w->body->evicted && now - w->body->since_us > grace)
                cur -= w->body->len;
        return !cur || cur + len <= s->cfg->http.max_body_memory;
    }
    for (;;) {
        cur = atomic_load(&s->body_bytes) - s->evicting;
        if (!cur || cur + len <= s->cfg->http.max_body_memory)
            return true;
        struct watched *old = NULL;
        for (struct watched *w = s->watched; w; w = w->next)
            if (w->body && !w->body->evicted && now - w->body->since_us > grace &&
                (!old || w->body->since_us < old->body->since_us))
                old = w;
        if (!old)
            return false;
        old->body->evicted = true;
        s->evicting += old->body->len;
        shutdown(old->fd, SHUT_RDWR);
        atomic_fetch_add(&s->body_evictions, 1);
        log_debug("http", "closed a connection still reading a %zu-byte answer after %.1f s: its memory is wanted",
                  old->body->len, (double)(now - old->body->since_us) / 1e6);
    }
}

/* Reserves len bytes of the body budget (body_room). */
static bool body_reserve(struct http_server *s, size_t len)
{
    pthread_mutex_lock(&s->watch_lock);
    bool ok = body_room(s, len, true);
    if (ok)
        atomic_fetch_add(&s->body_bytes, len);
    pthread_mutex_unlock(&s->watch_lock);
    return ok;
}

/* Whether a body of about len bytes would be let through, before it is
 * rendered (nothing is shut for it yet: the request may still be refused,
 * and the body once rendered, gzip or not, is what body_reserve makes
 * room for). */
static bool body_fits(struct http_server *s, size_t len)
{
    pthread_mutex_lock(&s->watch_lock);
    bool ok = body_room(s, len, false);
    pthread_mutex_unlock(&s->watch_lock);
    return ok;
}

/* A Host header that can stand for this agent's address: a name, IPv4 or
 * [IPv6], with or without a port. It is copied once per target group into
 * /api/v1/targets: 20 KB of it made a 6 MB answer from 300 groups. */
static bool host_ok(const char *h)
{
    size_t n = h ? strlen(h) : 0;
    return n > 0 && n <= 263 && /* a 253-character name, ':' and a port */
           strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]") == n;
}

/* A refusal that tells the client when to come back. */
static enum MHD_Result send_retry(struct MHD_Connection *c, unsigned status, const char *msg, const char *after)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(msg), (void *)msg, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", CT_TEXT);
    add_security_headers(r);
    MHD_add_response_header(r, "Retry-After", after);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_503_memory(struct MHD_Connection *c)
{
    return send_retry(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                      "too many large responses still being sent (http.max_body_memory); retry\n", "1");
}

/* What a body's buffer is to the kept one (spare_take). */
enum reuse {
    REUSE_NO,   /* not a /metrics text: freed when sent */
    REUSE_NEW,  /* a /metrics text in a new buffer: may be kept */
    REUSE_KEPT, /* in the kept buffer: charged at its size, every page it
                 * ever had written being still there */
};

/* Queues body (taken) as the response. With s, the body counts against
 * s's budget of bodies in flight until MHD has sent it; past the budget
 * the answer is 503. charged_len: where to keep what the body took of the
 * budget (gzip or not), or NULL. reuse: see enum reuse (with s only). */
static enum MHD_Result send_buf_s(struct http_server *s, struct MHD_Connection *c, unsigned status,
                                  const char *ctype, struct buf *body, bool gzip_ok, _Atomic size_t *charged_len,
                                  enum reuse reuse)
{
    struct buf gz = BUF_INIT;
    bool gz_used = false;
    if (!s)
        reuse = REUSE_NO;
    if (gzip_ok && body->len > 256 && http_gzip(body->p ? body->p : "", body->len, &gz) == 0) {
        if (reuse != REUSE_NO)
            spare_give(s, body); /* the plain text's buffer, for the next render */
        else
            buf_free(body);
        *body = gz;
        reuse = REUSE_NO; /* the compressed copy goes when sent */
        gz_used = true;
    } else {
        buf_free(&gz);
    }
    size_t len, cap = body->cap;
    char *p = buf_steal(body, &len);
    size_t charged = reuse == REUSE_KEPT && cap > len ? cap : len;
    if (charged_len)
        atomic_store(charged_len, charged);
    struct MHD_Response *r;
    if (s) {
        if (!body_reserve(s, charged)) {
            atomic_fetch_add(&s->body_refusals, 1);
            struct buf again = {p, len, cap};
            if (reuse != REUSE_NO)
                spare_give(s, &again); /* rendered for nothing: the next may use it */
            else
                free(p);
            return send_503_memory(c);
        }
        struct body *hold = xcalloc(1, sizeof *hold);
        *hold = (struct body){s, charged, len, cap, reuse != REUSE_NO, p, NULL, now_mono_us(), false};
        r = MHD_create_response_from_buffer_with_free_callback_cls(len, p, body_free, hold);
        if (!r) {
            body_free(hold);
            return MHD_NO;
        }
        struct watched *w = watched_of(c);
        if (w) { /* the connection's, until it or the body goes */
            pthread_mutex_lock(&s->watch_lock);
            if (w->body)
                w->body->w = NULL;
            w->body = hold;
            hold->w = w;
            pthread_mutex_unlock(&s->watch_lock);
        }
    } else {
        r = MHD_create_response_from_buffer(len, p, MHD_RESPMEM_MUST_FREE);
        if (!r) {
            free(p);
            return MHD_NO;
        }
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    add_security_headers(r);
    if (s) /* these endpoints offer gzip: what a cache holds depends on the
            * header whatever this client sent (RFC 9110 12.5.5) */
        MHD_add_response_header(r, "Vary", "Accept-Encoding");
    if (gz_used)
        MHD_add_response_header(r, "Content-Encoding", "gzip");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, "Allow", "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned status, const char *ctype,
                                struct buf *body, bool gzip_ok)
{
    return send_buf_s(NULL, c, status, ctype, body, gzip_ok, NULL, REUSE_NO);
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *msg)
{
    struct buf b = BUF_INIT;
    buf_puts(&b, msg);
    return send_buf(c, status, CT_TEXT, &b, false);
}

static enum MHD_Result send_401(struct MHD_Connection *c)
{
    static const char msg[] = "authentication required\n";
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", CT_TEXT);
    add_security_headers(r);
    /* adds WWW-Authenticate: Basic realm="redpulse" */
    enum MHD_Result ret = MHD_queue_basic_auth_fail_response(c, "redpulse", r);
    MHD_destroy_response(r);
    return ret;
}

/* True when the TLS client presented a certificate chain that verifies
 * against the current client CA (the one SIGHUP last loaded). MHD only
 * requests a certificate; redpulse enforces it. */
static bool client_cert_ok(struct http_server *s, struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session)
        return false;
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers((gnutls_session_t)ci->tls_session, &n);
    if (!certs || n == 0)
        return false;
    gnutls_x509_crt_t crt[8];
    if (n > 8)
        n = 8;
    unsigned got = 0;
    for (; got < n; got++) {
        if (gnutls_x509_crt_init(&crt[got]) < 0)
            break;
        if (gnutls_x509_crt_import(crt[got], &certs[got], GNUTLS_X509_FMT_DER) < 0) {
            gnutls_x509_crt_deinit(crt[got]);
            break;
        }
    }
    unsigned status = 1;
    struct ca_trust *t = atomic_load(&s->trust);
    bool ok = got == n && t && gnutls_x509_trust_list_verify_crt2(t->tl, crt, n, NULL, 0, 0, &status, NULL) == 0 &&
              status == 0;
    for (unsigned i = 0; i < got; i++)
        gnutls_x509_crt_deinit(crt[i]);
    return ok;
}

/* auth's worker answered: note the result and let MHD call the handler
 * again (from any thread; the request waits suspended until then). */
static void auth_done(void *arg, enum auth_result r)
{
    struct req *rq = arg;
    rq->ar = r;
    rq->auth_done = true;
    MHD_resume_connection(rq->c);
}

/* Basic auth and client certificates; /healthz stays open for probes.
 * *ok false: answered, or suspended until auth_done. */
static enum MHD_Result authorize(struct http_server *s, struct req *rq, const char *url, bool *ok)
{
    struct MHD_Connection *c = rq->c;
    *ok = false;
    if (strcmp(url, "/healthz") == 0) {
        *ok = true;
        return MHD_YES;
    }
    if (s->tls && s->cfg->http.tls_client_ca_file && !client_cert_ok(s, c))
        return send_text(c, MHD_HTTP_FORBIDDEN, "a client certificate signed by the configured CA is required\n");
    if (s->auth) {
        enum auth_result r = rq->ar;
        if (!rq->auth_done) {
            char *pass = NULL;
            char *user = MHD_basic_auth_get_username_password(c, &pass);
            const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
            struct auth_job *job = NULL;
            r = auth_begin(s->auth, user, pass, ci ? ci->client_addr : NULL, &job);
            if (pass) {
                explicit_bzero(pass, strlen(pass));
                MHD_free(pass);
            }
            if (user)
                MHD_free(user);
            if (r == AUTH_PENDING) {
                /* suspended first: the worker may answer at once */
                MHD_suspend_connection(c);
                auth_submit(s->auth, job, auth_done, rq);
                return MHD_YES;
            }
        }
        if (r == AUTH_BUSY)
            return send_retry(c, MHD_HTTP_SERVICE_UNAVAILABLE, "too many concurrent logins; retry\n", "1");
        if (r == AUTH_LIMITED) {
            return send_retry(c, MHD_HTTP_TOO_MANY_REQUESTS, "too many failed or pending logins from this address; retry later\n",
                              STRINGIFY(AUTH_FAIL_REFILL_S));
        }
        if (r != AUTH_OK)
            return send_401(c);
    }
    *ok = true;
    return MHD_YES;
}

/* A query value percent-encoded but for the unreserved characters (a '+'
 * as is would read as a space): the result needs no HTML escaping. */
static void query_escape(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
            buf_putc(b, (char)*p);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            buf_append(b, e, 3);
        }
    }
}

static void html_escape(struct buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': buf_puts(b, "&lt;"); break;
        case '>': buf_puts(b, "&gt;"); break;
        case '&': buf_puts(b, "&amp;"); break;
        case '"': buf_puts(b, "&quot;"); break;
        case '\'': buf_puts(b, "&#39;"); break;
        default: buf_putc(b, *s);
        }
    }
}

static enum MHD_Result landing(struct http_server *s, struct MHD_Connection *c)
{
    struct buf b = BUF_INIT;
    buf_puts(&b, "<!doctype html><html><head><meta charset=\"utf-8\"><title>redpulse</title></head><body>"
                 "<h1>redpulse " REDPULSE_VERSION "</h1><p>Redis monitoring agent.</p><ul>"
                 "<li><a href=\"/metrics\">/metrics</a> (all instances)</li>"
                 "<li><a href=\"/api/v1/instances\">/api/v1/instances</a></li>"
                 "<li><a href=\"/api/v1/advice\">/api/v1/advice</a> (write-tuning findings)</li>"
                 "<li><a href=\"/healthz\">/healthz</a> and <a href=\"/readyz\">/readyz</a></li></ul>"
                 "<h2>Instances</h2><ul>");
    struct registry_view v;
    registry_view_take(s->reg, &v);
    size_t n = v.n;
    for (size_t i = 0; i < n && i < 100; i++) {
        const char *name = v.names[i];
        buf_puts(&b, "<li>");
        html_escape(&b, name);
        buf_puts(&b, ": <a href=\"/scrape?target=");
        query_escape(&b, name);
        buf_puts(&b, "\">metrics</a>, <a href=\"/api/v1/instances/");
        html_escape(&b, name);
        buf_puts(&b, "\">json</a>");
        advice_landing_html(v.frags[i], &b);
        buf_puts(&b, "</li>");
    }
    if (n > 100)
        buf_printf(&b, "<li>... and %zu more</li>", n - 100);
    registry_view_release(&v);
    buf_puts(&b, "</ul>");
    alerts_render_landing(&b);
    buf_puts(&b, "</body></html>\n");
    return send_buf(c, MHD_HTTP_OK, CT_HTML, &b, false);
}

static void own_family(struct buf *b, const char *name, const char *type, const char *help, unsigned long long v)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

/* The server's own families (global: no target label). */
static void render_own_metrics(struct http_server *s, struct buf *b)
{
    own_family(b, "redpulse_http_body_bytes_in_flight", "gauge",
               "Bytes of HTTP response bodies not yet sent, a /metrics text in the kept buffer at the buffer's "
               "size (bounded by http.max_body_memory, and for a moment by those whose connections are being "
               "closed to make room)",
               atomic_load(&s->body_bytes));
    own_family(b, "redpulse_http_body_memory_refusals_total", "counter",
               "Requests answered 503 because http.max_body_memory was in use", atomic_load(&s->body_refusals));
    own_family(b, "redpulse_http_body_memory_evictions_total", "counter",
               "Connections closed because the response body they were still reading, held longer than "
               "request_timeout, was wanted for a new one (http.max_body_memory)",
               atomic_load(&s->body_evictions));
    own_family(b, "redpulse_http_source_refusals_total", "counter",
               "Connections closed at once because their address had http.max_connections_per_ip open, or their "
               "IPv6 /64 the larger of that and half of max_connections",
               atomic_load(&s->source_refusals));
    own_family(b, "redpulse_http_request_deadline_closes_total", "counter",
               "Connections closed because a request was not in whole by its deadline (request_timeout after the "
               "accept, idle_timeout + request_timeout after an answer)",
               atomic_load(&s->deadline_closes));
}

/* A request must be in whole (headers and any body) within
 * http.request_timeout of its connection's accept, and on a kept-alive
 * connection within idle_timeout and request_timeout of the answer before
 * it. libmicrohttpd's CONNECTION_TIMEOUT is an idle timeout every byte
 * resets: a client dribbling a header byte a second held a connection slot
 * for ever, and max_connections of them every slot. */
static uint64_t request_deadline_us(const struct http_server *s)
{
    return s->cfg->http.request_timeout_ms * 1000;
}

/* idle_timeout as libmicrohttpd takes it: whole seconds, rounded up. */
static unsigned idle_timeout_s(const struct http_cfg *h)
{
    return (unsigned)((h->idle_timeout_ms + 999) / 1000);
}

/* Sets w's deadline and wakes the watchdog when it comes before its next
 * look. Call with s->watch_lock held. */
static void watch_set_locked(struct http_server *s, struct watched *w, uint64_t deadline_us)
{
    w->deadline_us = deadline_us;
    if (deadline_us && deadline_us < s->watch_next_us)
        pthread_cond_signal(&s->watch_wake);
}

/* Sets w's request deadline (0: none). Any thread. */
static void watch_set(struct http_server *s, struct watched *w, uint64_t deadline_us)
{
    pthread_mutex_lock(&s->watch_lock);
    watch_set_locked(s, w, deadline_us);
    pthread_mutex_unlock(&s->watch_lock);
}

/* The connection's entry, set by connection_notify; NULL once closed. */
static struct watched *watched_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* How many connections one key may have open: an address
 * max_connections_per_ip (as libmicrohttpd's own limit counted), a /64 the
 * larger of that and half of max_connections, so that a host with a /64
 * (2^64 addresses) cannot take them all, while neighbours sharing a /64
 * (the pods of a node, a LAN) keep their own per-address limits below it. */
static unsigned key_limit(const struct http_server *s, const struct peer_key *k)
{
    unsigned per_addr = s->cfg->http.max_connections_per_ip, half = s->cfg->http.max_connections / 2;
    return k->kind == PEER_NET64 && half > per_addr ? half : per_addr;
}

/* MHD's accept policy: a connection whose address, or IPv6 /64, has its
 * limit of connections open is closed at once (libmicrohttpd's own per-IP
 * limit counted IPv6 /128s only). */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t len)
{
    struct http_server *s = cls;
    (void)len;
    struct peer_key keys[2];
    size_t n = peer_keys(addr, keys);
    bool ok = true;
    pthread_mutex_lock(&s->watch_lock);
    for (size_t i = 0; i < n && ok; i++)
        ok = peerlimit_count(s->peers, &keys[i]) < key_limit(s, &keys[i]);
    pthread_mutex_unlock(&s->watch_lock);
    if (!ok)
        atomic_fetch_add(&s->source_refusals, 1);
    return ok ? MHD_YES : MHD_NO;
}

/* MHD_OPTION_NOTIFY_CONNECTION, on the connection's MHD thread: a new
 * connection goes on the list with its first request's deadline, and is
 * counted for its source. */
static void connection_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    struct http_server *s = cls;
    struct watched *w = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci)
            return;
        w = xcalloc(1, sizeof *w);
        w->fd = ci->connect_fd;
        const union MHD_ConnectionInfo *ca = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        struct peer_key keys[2];
        size_t nkeys = ca ? peer_keys(ca->client_addr, keys) : 0;
        uint64_t deadline = now_mono_us() + request_deadline_us(s);
        pthread_mutex_lock(&s->watch_lock);
        w->next = s->watched;
        if (w->next)
            w->next->prev = w;
        s->watched = w;
        watch_set_locked(s, w, deadline);
        /* accept_policy let it in; counted here, where it closes for sure
         * (CLOSED), and cut off if others from its address or /64 came in
         * meanwhile on another thread of the pool, or the table is full:
         * shut, and a request already in its socket is not served */
        for (size_t i = 0; i < nkeys; i++) {
            unsigned n = peerlimit_add(s->peers, &keys[i]);
            if (n)
                w->keys[w->nkeys++] = keys[i];
            if (!n || n > key_limit(s, &keys[i]))
                w->refused = true;
        }
        if (w->refused) {
            shutdown(w->fd, SHUT_RDWR);
            atomic_fetch_add(&s->source_refusals, 1);
        }
        pthread_mutex_unlock(&s->watch_lock);
        *socket_context = w;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && w) {
        pthread_mutex_lock(&s->watch_lock); /* the watchdog and body_room are done with fd */
        if (w->body)
            w->body->w = NULL;
        for (size_t i = 0; i < w->nkeys; i++)
            peerlimit_del(s->peers, &w->keys[i]);
        if (w->prev)
            w->prev->next = w->next;
        else
            s->watched = w->next;
        if (w->next)
            w->next->prev = w->prev;
        pthread_mutex_unlock(&s->watch_lock);
        free(w);
        *socket_context = NULL;
    }
}

/* The "rp-httpwatch" thread: shuts down the socket of each connection past
 * its deadline. MHD's thread then reads the end of the stream and closes
 * the connection itself (closing fd here would race with it); a connection
 * with a request in hand (suspended for a login check, or answering) has
 * no deadline and is never touched. Sleeps until the next deadline. */
static void *watchdog(void *arg)
{
    struct http_server *s = arg;
    pthread_mutex_lock(&s->watch_lock);
    while (!s->watch_stop) {
        uint64_t now = now_mono_us(), next = UINT64_MAX;
        for (struct watched *w = s->watched; w; w = w->next) {
            if (!w->deadline_us)
                continue;
            if (w->deadline_us <= now) {
                shutdown(w->fd, SHUT_RDWR);
                w->deadline_us = 0;
                atomic_fetch_add(&s->deadline_closes, 1);
            } else if (w->deadline_us < next) {
                next = w->deadline_us;
            }
        }
        if (next != UINT64_MAX && next < now + WATCH_MIN_SLEEP_US)
            next = now + WATCH_MIN_SLEEP_US;
        s->watch_next_us = next;
        if (next == UINT64_MAX) {
            pthread_cond_wait(&s->watch_wake, &s->watch_lock);
        } else {
            struct timespec ts = {(time_t)(next / 1000000), (long)(next % 1000000) * 1000};
            pthread_cond_timedwait(&s->watch_wake, &s->watch_lock, &ts);
        }
    }
    pthread_mutex_unlock(&s->watch_lock);
    return NULL;
}

static void watch_init(struct http_server *s)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->watch_wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->watch_lock, NULL);
    s->watch_next_us = UINT64_MAX;
    /* every open connection's source, and those racing in on the other
     * threads of the pool */
    s->peers = peerlimit_new(2 * (size_t)s->cfg->http.max_connections + 128, NULL);
}

/* Starts the watchdog (it inherits the caller's signal mask). */
static void watch_start(struct http_server *s)
{
    if (pthread_create(&s->watch_thread, NULL, watchdog, s) != 0) {
        log_error("http", "cannot start the request deadline thread: slow clients are cut off by idle_timeout only");
        return;
    }
    pthread_setname_np(s->watch_thread, "rp-httpwatch");
    s->watch_running = true;
}

/* Stops and joins the watchdog, frees what is left; after MHD_stop_daemon
 * (whose CLOSED notifications empty the list). */
static void watch_end(struct http_server *s)
{
    if (s->watch_running) {
        pthread_mutex_lock(&s->watch_lock);
        s->watch_stop = true;
        pthread_cond_signal(&s->watch_wake);
        pthread_mutex_unlock(&s->watch_lock);
        pthread_join(s->watch_thread, NULL);
        s->watch_running = false;
    }
    while (s->watched) {
        struct watched *w = s->watched;
        s->watched = w->next;
        free(w);
    }
    free(s->spare); /* no body is sent any more: nothing gives it back */
    s->spare = NULL;
    pthread_cond_destroy(&s->watch_wake);
    pthread_mutex_destroy(&s->watch_lock);
    peerlimit_free(s->peers);
    s->peers = NULL;
}

/* A request ended: on a kept-alive connection the next must be in whole
 * within idle_timeout (MHD closes a silent one then) and the deadline. */
static void request_completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    free(*req_cls);
    *req_cls = NULL;
    struct watched *w = watched_of(c);
    if (w && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        uint64_t idle_us = (uint64_t)idle_timeout_s(&s->cfg->http) * 1000000;
        watch_set(s, w, now_mono_us() + idle_us + request_deadline_us(s));
    }
}

/* Accept-Encoding lines after the first, joined to it with ", " (a
 * header given twice is one list: RFC 9110 5.3). */
static enum MHD_Result join_accept_encoding(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct buf *b = cls;
    (void)kind;
    if (key && value && strcasecmp(key, MHD_HTTP_HEADER_ACCEPT_ENCODING) == 0) {
        if (b->len)
            buf_puts(b, ", ");
        buf_puts(b, value);
    }
    return MHD_YES;
}

static bool accepts_gzip(struct MHD_Connection *c)
{
    struct buf b = BUF_INIT;
    MHD_get_connection_values(c, MHD_HEADER_KIND, join_accept_encoding, &b);
    bool gz = b.len && http_accepts_gzip(b.p);
    buf_free(&b);
    return gz;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **req_cls)
{
    (void)version, (void)upload;
    struct http_server *s = cls;
    const struct watched *wr = watched_of(c);
    if (wr && wr->refused) /* over its limits: nothing served (set on this thread) */
        return MHD_NO;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD are allowed\n");
    struct req *rq = *req_cls;
    if (rq == NULL) {
        /* first call: headers only. Answering now would make MHD close the
         * connection (it cannot know the request is complete); answer on
         * the next call and keep connections alive for Prometheus. */
        rq = xcalloc(1, sizeof *rq);
        rq->c = c;
        *req_cls = rq;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* a body on GET is ignored */
        return MHD_YES;
    }
    if (!rq->whole) { /* the request is in: no deadline while it is served */
        rq->whole = true;
        struct watched *w = watched_of(c);
        if (w)
            watch_set(s, w, 0);
    }
    if (!rq->authed) {
        enum MHD_Result ar = authorize(s, rq, url, &rq->authed);
        if (!rq->authed)
            return ar;
    }
    bool gz = accepts_gzip(c);
    struct buf b = BUF_INIT;

    bool all = strcmp(url, "/metrics") == 0;
    bool big = all || strcmp(url, "/scrape") == 0 || strncmp(url, "/api/", 5) == 0;
    /* refused before rendering when it would not fit: a slow-reader attack
     * must not cost a render per refusal */
    if (big && !body_fits(s, all ? atomic_load(&s->metrics_len[gz]) : 0)) {
        atomic_fetch_add(&s->body_refusals, 1); /* not even rendered */
        return send_503_memory(c);
    }
    if (strcmp(url, "/metrics") == 0) {
        enum reuse reuse = spare_take(s, &b) ? REUSE_KEPT : REUSE_NEW;
        http_render_metrics(s->reg, NULL, &b);
        auth_render_metrics(s->auth, &b);
        render_own_metrics(s, &b);
        return send_buf_s(s, c, MHD_HTTP_OK, CT_PROM, &b, gz, &s->metrics_len[gz], reuse);
    }
    if (strcmp(url, "/scrape") == 0) {
        const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "target");
        if (!name || !*name)
            return send_text(c, MHD_HTTP_BAD_REQUEST, "missing ?target=NAME (a configured instance name)\n");
        if (!registry_has_name(s->reg, name))
            return send_text(c, MHD_HTTP_NOT_FOUND, "unknown target: only configured instance names are accepted\n");
        http_render_metrics(s->reg, name, &b);
        return send_buf_s(s, c, MHD_HTTP_OK, CT_PROM, &b, gz, NULL, REUSE_NO);
    }
    if (strcmp(url, "/api/v1/instances") == 0) {
        struct registry_view v;
        registry_view_take(s->reg, &v);
        buf_putc(&b, '[');
        bool first = true;
        for (size_t i = 0; i < v.n; i++) {
            if (!v.frags[i])
                continue;
            if (!first)
                buf_putc(&b, ',');
            first = false;
            frag_append_json(v.frags[i], &b);
        }
        registry_view_release(&v);
        buf_puts(&b, "]\n");
        return send_buf_s(s, c, MHD_HTTP_OK, CT_JSON, &b, gz, NULL, REUSE_NO);
    }
    if (strncmp(url, "/api/v1/instances/", 18) == 0) {
        struct frag *f = registry_get_name(s->reg, url + 18, false);
        if (!f)
            return send_text(c, MHD_HTTP_NOT_FOUND, "unknown instance\n");
        frag_append_json(f, &b);
        buf_putc(&b, '\n');
        frag_unref(f);
        return send_buf_s(s, c, MHD_HTTP_OK, CT_JSON, &b, gz, NULL, REUSE_NO);
    }
    if (strcmp(url, "/api/v1/advice") == 0) {
        advice_api_json(s->reg, &b);
        return send_buf_s(s, c, MHD_HTTP_OK, CT_JSON, &b, gz, NULL, REUSE_NO);
    }
    if (strcmp(url, "/api/v1/alerts") == 0) {
        alerts_render_api(&b);
        return send_buf_s(s, c, MHD_HTTP_OK, CT_JSON, &b, gz, NULL, REUSE_NO);
    }
    if (strcmp(url, "/api/v1/targets") == 0) {
        /* Prometheus http_sd_configs: the targets are this agent, as the
         * client reached it (Host), else the listen address */
        const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
        discover_render_targets(host_ok(host) ? host : s->cfg->http.listen, &b);
        return send_buf_s(s, c, MHD_HTTP_OK, CT_JSON, &b, gz, NULL, REUSE_NO);
    }
    if (strcmp(url, "/healthz") == 0)
        return send_text(c, MHD_HTTP_OK, "ok\n");
    if (strcmp(url, "/readyz") == 0) {
        if (registry_all_polled(s->reg) && discover_settled())
            return send_text(c, MHD_HTTP_OK, "ready\n");
        return send_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: first round of polls (or of discovery) not done\n");
    }
    if (strcmp(url, "/") == 0)
        return landing(s, c);
    return send_text(c, MHD_HTTP_NOT_FOUND, "not found; see / for the endpoints\n");
}

/* Percent-decoding for paths and query values that never produces a NUL:
 * "%00" stays as written, so "name%00suffix" cannot pass for "name". */
size_t http_unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        int hi, lo;
        if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 && (hi | lo)) {
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls, (void)c;
    return http_unescape(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t l = strlen(msg);
    while (l && msg[l - 1] == '\n')
        msg[--l] = '\0';
    /* MHD reports mostly bad client requests: not worth a warning each */
    log_debug("http", "%s", msg);
}

/* Splits "host:port" / "[v6]:port" and resolves it (numeric or /etc/hosts;
 * at startup, so blocking is fine). */
static int resolve_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sl, char *err,
                          size_t errlen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host) {
        snprintf(err, errlen, "bad listen address \"%s\"", listen);
        return -1;
    }
    size_t hl = (size_t)(colon - listen);
    memcpy(host, listen, hl);
    host[hl] = '\0';
    char *h = host;
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h[hl - 1] = '\0';
        h++;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int r = getaddrinfo(*h ? h : NULL, colon + 1, &hints, &res);
    if (r != 0) {
        snprintf(err, errlen, "cannot resolve listen address \"%s\": %s", listen, gai_strerror(r));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sl = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static char *read_pem(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    struct buf b = BUF_INIT;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0 && b.len < (1u << 20))
        buf_append(&b, tmp, n);
    fclose(f);
    explicit_bzero(tmp, sizeof tmp);
    return buf_steal(&b, NULL);
}

static void material_free(struct tls_material *m)
{
    while (m) {
        struct tls_material *older = m->older;
        for (unsigned i = 0; i < m->n; i++)
            gnutls_pcert_deinit(&m->pcert[i]);
        if (m->key)
            gnutls_privkey_deinit(m->key);
        free(m);
        m = older;
    }
}

/* Reads the certificate chain and key and checks that they belong
 * together, before any handshake can see them: a bad renewal never takes
 * the endpoint down. */
static struct tls_material *load_material(const struct http_cfg *h, char *err, size_t errlen)
{
    struct tls_material *m = NULL;
    char *cert = read_pem(h->tls_cert_file, err, errlen);
    char *key = cert ? read_pem(h->tls_key_file, err, errlen) : NULL;
    if (!cert || !key)
        goto out;
    gnutls_datum_t c = {(unsigned char *)cert, (unsigned)strlen(cert)};
    gnutls_datum_t k = {(unsigned char *)key, (unsigned)strlen(key)};
    m = xcalloc(1, sizeof *m);
    m->n = sizeof m->pcert / sizeof m->pcert[0];
    /* the chain first: GnuTLS 3.7 leaks when set_x509_key_mem meets a
     * certificate that does not parse */
    gnutls_hash_fast(GNUTLS_DIG_SHA256, c.data, c.size, m->digest);
    gnutls_hash_fast(GNUTLS_DIG_SHA256, k.data, k.size, m->digest + 32);
    int r = gnutls_pcert_list_import_x509_raw(m->pcert, &m->n, &c, GNUTLS_X509_FMT_PEM, 0);
    if (r < 0) {
        m->n = 0;
        goto bad;
    }
    gnutls_certificate_credentials_t cred; /* checks that the key matches */
    gnutls_certificate_allocate_credentials(&cred);
    r = gnutls_certificate_set_x509_key_mem(cred, &c, &k, GNUTLS_X509_FMT_PEM);
    gnutls_certificate_free_credentials(cred);
    if (r >= 0 && (r = gnutls_privkey_init(&m->key)) >= 0)
        r = gnutls_privkey_import_x509_raw(m->key, &k, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (r >= 0)
        goto out;
bad:
    snprintf(err, errlen, "TLS certificate or key unusable: %s", gnutls_strerror(r));
    material_free(m);
    m = NULL;
out:
    if (key)
        explicit_bzero(key, strlen(key));
    free(key);
    free(cert);
    return m;
}

static int cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                         const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
                         unsigned int *pcert_length, gnutls_privkey_t *privkey)
{
    (void)req_ca_dn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
    /* called while the server composes its first flight, before any
     * certificate request: do not name the first client CA in it, since
     * SIGHUP may have replaced it (clients then send whatever they have,
     * and client_cert_ok checks it against the current one) */
    gnutls_certificate_send_x509_rdn_sequence(session, 1);
    struct tls_material *m = atomic_load(&tls_current);
    if (!m)
        return -1;
    *pcert = m->pcert;
    *pcert_length = m->n;
    *privkey = m->key;
    return 0;
}

static struct MHD_Daemon *start_daemon(struct http_server *s)
{
    const struct http_cfg *h = &s->cfg->http;
    /* ITC: MHD_quiesce_daemon hands the listening socket over (http_apply, http_stop);
     * suspend/resume: a login check waits off the connection threads.
     * poll(), not epoll: with epoll, MHD 0.9.75's quiesce and a worker
     * that wakes at that moment both take the listening socket out of the
     * worker's epoll set, and the loser's epoll_ctl fails and MHD aborts the
     * process ("Failed to remove listen FD from epoll set"; seen at SIGTERM
     * under a flood of SIGHUP, reachable by any connection at that moment).
     * In poll mode a quiesced worker just leaves the socket out of its next
     * poll(). The cost: each wake-up of a worker scans all its connections
     * (max_connections / threads), nothing at a scrape's few, and linear in
     * them under a flood of idle ones where epoll touched only the ready
     * ones. Worth epoll again once libmicrohttpd has the race fixed. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_ITC |
                     MHD_ALLOW_SUSPEND_RESUME;
    if (s->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (s->tls)
        flags |= MHD_USE_TLS;
    unsigned timeout_s = idle_timeout_s(h);
    const char *prio = h->tls_min_version == 13 ? "NORMAL:-VERS-ALL:+VERS-TLS1.3"
                                                : "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
    struct MHD_OptionItem o[24];
    int n = 0;
#define OPT(opt, val, ptr) (o[n++] = (struct MHD_OptionItem){(opt), (intptr_t)(val), (void *)(ptr)})
    if (s->listen_fd >= 0)
        OPT(MHD_OPTION_LISTEN_SOCKET, s->listen_fd, NULL);
    else
        OPT(MHD_OPTION_SOCK_ADDR, 0, &s->addr);
    OPT(MHD_OPTION_THREAD_POOL_SIZE, h->threads, NULL);
    OPT(MHD_OPTION_CONNECTION_LIMIT, h->max_connections, NULL);
    OPT(MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, NULL);
    OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, h->connection_memory_limit, NULL);
    /* no MHD_OPTION_LISTENING_ADDRESS_REUSE: its 1 adds SO_REUSEPORT, with
     * which a second process (another redpulse, or anyone of the same user)
     * binds the same port silently and the kernel splits the scrapes between
     * them. The default keeps SO_REUSEADDR, enough to restart at once. */
    OPT(MHD_OPTION_NOTIFY_COMPLETED, request_completed, s);
    OPT(MHD_OPTION_NOTIFY_CONNECTION, connection_notify, s);
    if (s->tls) {
        /* the certificate comes from a callback so SIGHUP can swap it */
        OPT(MHD_OPTION_HTTPS_CERT_CALLBACK, 0, cert_callback);
        OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, prio);
        if (s->client_ca_pem)
            OPT(MHD_OPTION_HTTPS_MEM_TRUST, 0, s->client_ca_pem);
    }
    OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
    /* the logger and unescape callbacks take two arguments each, which
     * MHD_OPTION_ARRAY cannot carry: pass them directly */
    return MHD_start_daemon(flags, 0, accept_policy, s, handler, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
                            MHD_OPTION_ARRAY, o,
                            MHD_OPTION_END);
}

static void trust_free(struct ca_trust *t)
{
    while (t) {
        struct ca_trust *older = t->older;
        gnutls_x509_trust_list_deinit(t->tl, 1);
        free(t);
        t = older;
    }
}

/* Reads the client CA file into a trust list (at least one certificate). */
static struct ca_trust *load_trust(const char *path, char *err, size_t errlen)
{
    char *pem = read_pem(path, err, errlen);
    if (!pem)
        return NULL;
    struct ca_trust *t = xcalloc(1, sizeof *t);
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    gnutls_hash_fast(GNUTLS_DIG_SHA256, d.data, d.size, t->digest);
    int r = gnutls_x509_trust_list_init(&t->tl, 0);
    if (r >= 0)
        r = gnutls_x509_trust_list_add_trust_mem(t->tl, &d, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
    free(pem);
    if (r <= 0) {
        snprintf(err, errlen, "client CA file \"%s\" holds no usable certificate%s%s", path, r < 0 ? ": " : "",
                 r < 0 ? gnutls_strerror(r) : "");
        if (t->tl)
            gnutls_x509_trust_list_deinit(t->tl, 1);
        free(t);
        return NULL;
    }
    return t;
}

unsigned http_fd_reserve(const struct http_cfg *h)
{
    /* every MHD thread has an inter-thread channel (an eventfd, two
     * descriptors where eventfd is missing; a third was its epoll set when
     * it used epoll, kept as slack); plus the listening socket, the pool's
     * own, and one per connection */
    return h->max_connections + 3 * h->threads + 4;
}

/* A server for cfg, not started: its address resolved, its TLS files read
 * (certificate and key, the client CA as a trust list). NULL with a message
 * in err. */
static struct http_server *server_new(const struct config *cfg, struct registry *reg, char *err, size_t errlen)
{
    struct http_server *s = xcalloc(1, sizeof *s);
    socklen_t sl;
    s->cfg = cfg;
    s->reg = reg;
    s->listen_fd = -1;
    s->tls = cfg->http.tls_cert_file != NULL;
    watch_init(s);
    if (resolve_listen(cfg->http.listen, &s->addr, &sl, err, errlen) < 0)
        goto fail;
    if (s->tls) {
        if (!(s->material = load_material(&cfg->http, err, errlen)))
            goto fail;
        if (cfg->http.tls_client_ca_file) {
            struct ca_trust *t = load_trust(cfg->http.tls_client_ca_file, err, errlen);
            if (!t || !(s->client_ca_pem = read_pem(cfg->http.tls_client_ca_file, err, errlen))) {
                trust_free(t);
                goto fail;
            }
            atomic_store(&s->trust, t);
        }
    }
    return s;
fail:
    material_free(s->material);
    watch_end(s);
    free(s);
    return NULL;
}

/* Listening beyond loopback without TLS or without basic auth: said at
 * start and at every reload of the HTTP settings. */
static void warn_if_open(const struct http_server *s, const struct config *cfg)
{
    bool loopback = (s->addr.ss_family == AF_INET && ((const struct sockaddr_in *)&s->addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK)) ||
                    (s->addr.ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&s->addr)->sin6_addr));
    if (!loopback && (!s->tls || !s->auth))
        log_warn("http", "listening on %s without %s: anyone who reaches it can read the metrics", cfg->http.listen,
                 !s->tls && !s->auth ? "TLS or basic auth" : !s->tls ? "TLS" : "basic auth");
}

struct http_server *http_start(const struct config *cfg, struct registry *reg, char *err,
                               size_t errlen)
{
    struct http_server *s = server_new(cfg, reg, err, errlen);
    if (!s)
        return NULL;
    if (s->tls)
        atomic_store(&tls_current, s->material);
    /* before the daemon: a request must never find the server without it */
    s->auth = auth_new(cfg->http.users, cfg->http.n_users, cfg->http.login_cache_ttl_ms);
    s->d = start_daemon(s);
    if (!s->d) {
        snprintf(err, errlen, "cannot listen on %s (in use, or not an address of this host?%s)", cfg->http.listen,
                 s->client_ca_pem ? " or the client CA file is not PEM" : "");
        goto fail;
    }
    watch_start(s);
    warn_if_open(s, cfg);
    return s;
fail:
    atomic_store(&tls_current, NULL);
    auth_free(s->auth);
    material_free(s->material);
    trust_free(atomic_load(&s->trust));
    free(s->client_ca_pem);
    watch_end(s);
    free(s);
    return NULL;
}

/* The same certificate chain (the key was checked to match it). */
int http_reload_tls(struct http_server *s)
{
    char err[256];
    if (!s->tls)
        return 0;
    struct tls_material *m = load_material(&s->cfg->http, err, sizeof err);
    struct ca_trust *t = NULL;
    const char *ca = s->cfg->http.tls_client_ca_file;
    if (m && ca && !(t = load_trust(ca, err, sizeof err))) {
        material_free(m);
        m = NULL;
    }
    if (!m) {
        log_error("http", "TLS reload: %s; keeping the current certificate, key and client CA", err);
        return -1;
    }
    /* the replaced generations are kept until the server stops: a SIGHUP
     * that renews nothing (most reloads) must not add one */
    struct ca_trust *cur_t = atomic_load(&s->trust);
    if (s->material && memcmp(m->digest, s->material->digest, sizeof m->digest) == 0 &&
        (!t || (cur_t && memcmp(t->digest, cur_t->digest, sizeof t->digest) == 0))) {
        material_free(m);
        trust_free(t);
        log_info("http", "TLS files unchanged: keeping the current certificate, key and client CA");
        return 0;
    }
    m->older = s->material;
    s->material = m;
    atomic_store(&tls_current, m); /* new handshakes use it from now on */
    if (t) {
        t->older = atomic_load(&s->trust);
        atomic_store(&s->trust, t); /* and new requests this CA */
    }
    log_info("http", "TLS certificate reloaded%s", t ? " (and the client CA)" : "");
    return 0;
}

/* Stops accepting on d, lets the requests in flight finish for up to
 * grace_ms (idle keep-alive connections count until then), then stops it.
 * A socket shared with a newer server (http_apply) stays open there: this
 * closes only d's own descriptor. */
static void drain_and_stop(struct MHD_Daemon *d, unsigned grace_ms)
{
    MHD_socket fd = MHD_quiesce_daemon(d);
    /* a worker woken by the socket just before may still accept one more:
     * idle means no connection at two looks 10 ms apart */
    unsigned idle = 0;
    for (unsigned waited = 0; waited < grace_ms && idle < 2; waited += 10) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        const union MHD_DaemonInfo *i = MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        idle = !i || i->num_connections == 0 ? idle + 1 : 0;
    }
    MHD_stop_daemon(d);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

struct http_server *http_apply(struct http_server *old, const struct config *cfg, char *err, size_t errlen)
{
    struct tls_material *was = atomic_load(&tls_current);
    bool published = false; /* s->material was tls_current */
    struct http_server *s = server_new(cfg, old->reg, err, errlen);
    if (!s)
        return NULL;
    bool same_addr = strcmp(cfg->http.listen, old->cfg->http.listen) == 0;
    if (same_addr) { /* the same listening socket: no connection refused meanwhile */
        const union MHD_DaemonInfo *i = MHD_get_daemon_info(old->d, MHD_DAEMON_INFO_LISTEN_FD);
        if (!i || (s->listen_fd = fcntl(i->listen_fd, F_DUPFD_CLOEXEC, 3)) < 0) {
            snprintf(err, errlen, "cannot share the listening socket: %s", strerror(errno));
            goto fail;
        }
    }
    if (s->tls) {
        atomic_store(&tls_current, s->material);
        published = true;
    }
    s->auth = auth_new(cfg->http.users, cfg->http.n_users, cfg->http.login_cache_ttl_ms);
    s->d = start_daemon(s);
    if (!s->d) {
        snprintf(err, errlen, "cannot serve %s with the new settings (address in use, or a file not PEM?)",
                 cfg->http.listen);
        if (s->listen_fd >= 0)
            close(s->listen_fd);
        goto fail;
    }
    watch_start(s);
    /* the old daemon finishes what it is serving; both share the socket */
    auth_shutdown(old->auth); /* its requests waiting for a login check resume */
    drain_and_stop(old->d, 1000);
    watch_end(old);
    if (!s->tls)
        atomic_store(&tls_current, NULL);
    auth_free(old->auth);
    material_free(old->material);
    trust_free(atomic_load(&old->trust));
    free(old->client_ca_pem);
    free(old);
    log_info("http", "serving http%s://%s/ with the new settings%s", s->tls ? "s" : "", cfg->http.listen,
             same_addr ? " (same listening socket)" : "");
    warn_if_open(s, cfg);
    return s;
fail:
    atomic_store(&tls_current, was);
    if (published && old->material) {
        /* it was current for a moment: a handshake of the old server may
         * have taken it, so it lives as long as the old server's own */
        s->material->older = old->material->older;
        old->material->older = s->material;
        s->material = NULL;
    }
    auth_free(s->auth);
    material_free(s->material);
    trust_free(atomic_load(&s->trust));
    free(s->client_ca_pem);
    watch_end(s);
    free(s);
    return NULL;
}

void http_stop(struct http_server *s)
{
    if (!s)
        return;
    auth_shutdown(s->auth); /* requests suspended for a login check resume */
    drain_and_stop(s->d, 2000);
    watch_end(s);
    atomic_store(&tls_current, NULL);
    auth_free(s->auth);
    material_free(s->material);
    trust_free(atomic_load(&s->trust));
    free(s->client_ca_pem);
    free(s);
}
