/*
 * conn.c - the byte mover. One bufferevent per Redis connection (plain
 * socket, unix socket, or OpenSSL), hiredis' redisReader to cut the stream
 * into replies, and nothing else: no INFO, no timers. Every failure becomes
 * an outcome from outcome.h so the poller can say why an instance is down.
 *
 * Callbacks are deferred (BEV_OPT_DEFER_CALLBACKS), so none runs from inside
 * conn_open() or conn_command(); conn_close() from inside a callback only
 * marks the conn, and it is freed when the callback returns.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <hiredis/read.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "util.h"

struct conn {
    struct bufferevent *bev;
    struct event *rd;    /* plain sockets, once connected: our own read event */
    redisReader *reader;
    struct conn_callbacks cb;
    void *arg;
    size_t max_reply;
    int in_cb;           /* nesting depth of our callbacks into the owner */
    bool connected;      /* BEV_EVENT_CONNECTED seen */
    bool counted;        /* counted in open_count */
    bool dead;           /* on_error delivered */
    bool close_requested;
    bool tls;
};

static atomic_long open_count;  /* connected */
static atomic_long alloc_count; /* holding a socket (connecting or connected) */
static long fd_budget = -1;     /* sockets we allow ourselves; -1: not set */

long conn_open_count(void) { return atomic_load(&open_count); }

void conn_set_fd_budget(long n) { fd_budget = n; }

const char *outcome_str(enum outcome o)
{
    static const char *const s[] = {
#define X(id, str, desc) str,
        OUTCOME_MAP(X)
#undef X
    };
    return (unsigned)o < OUTCOME_COUNT ? s[o] : "unknown";
}

const char *outcome_desc(enum outcome o)
{
    static const char *const s[] = {
#define X(id, str, desc) desc,
        OUTCOME_MAP(X)
#undef X
    };
    return (unsigned)o < OUTCOME_COUNT ? s[o] : "unknown";
}

static void do_free(struct conn *c)
{
    atomic_fetch_sub(&alloc_count, 1);
    if (c->rd)
        event_free(c->rd);
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->reader)
        resp_reader_free(c->reader);
    if (c->counted)
        atomic_fetch_sub(&open_count, 1);
    free(c);
}

/* Runs after each of our libevent callbacks: frees a conn whose owner asked
 * for it while we were calling into the owner. Returns true if freed. */
static bool reap(struct conn *c)
{
    if (c->close_requested && c->in_cb == 0) {
        do_free(c);
        return true;
    }
    return false;
}

static void fail(struct conn *c, enum outcome why, const char *detail)
{
    if (c->dead || c->close_requested)
        return;
    c->dead = true;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    if (c->rd)
        event_del(c->rd);
    c->in_cb++;
    c->cb.on_error(c->arg, why, detail);
    c->in_cb--;
}

/* hiredis allocates an array's element table as soon as it reads "*N":
 * a hostile "*2000000000" would ask for 16 GB before any cap could see the
 * bytes. The framing scan below refuses such headers first (their elements
 * could never fit under the cap); this guard stays as a second line. */
#define RESP_MAX_ELEMENTS (1 << 20)

/* hiredis 0.14 nests arrays eight deep at most (rstack[9]) */
#define RESP_MAX_DEPTH 8
/* the smallest element on the wire: "+\r\n" */
#define RESP_MIN_ELEM_WIRE 3
/* the longest length header hiredis accepts: "-9223372036854775808" */
#define RESP_MAX_LEN_DIGITS 20

/* The framing of the reply being read, followed byte by byte before hiredis
 * sees the bytes, so the cap holds for the whole reply whatever its shape:
 * hiredis builds array elements as they arrive and drops the bytes it has
 * consumed, so its buffer only ever shows the unparsed tail. The scan keeps
 * no data, only counts; hiredis still does the parsing. */
struct resp_scan {
    size_t wire;     /* bytes of the current top-level reply so far */
    size_t elems;    /* its elements begun (each weighs RESP_ELEM_COST) */
    size_t owed;     /* least cost of the elements its open arrays still promise */
    long long left[RESP_MAX_DEPTH]; /* elements still to come, per open array */
    int depth;
    enum { SC_TYPE, SC_LINE, SC_LEN, SC_BULK, SC_LOST } st;
    char type;       /* SC_LEN: '$' or '*' */
    bool cr;         /* the byte before was '\r' (lines end at "\r\n") */
    char num[RESP_MAX_LEN_DIGITS + 1];
    int nlen;
    unsigned long long skip; /* SC_BULK: payload and CRLF bytes still to come */
    size_t complete; /* top-level replies scanned whole that hiredis has not yet returned */
};

static redisReplyObjectFunctions guarded;
static const redisReplyObjectFunctions *plain;
static pthread_once_t guarded_once = PTHREAD_ONCE_INIT;

static void *guard_array(const redisReadTask *task, int elements)
{
    if (elements > RESP_MAX_ELEMENTS)
        return NULL; /* the reader reports an error; the reply is refused */
    return plain->createArray(task, elements);
}

static void init_guarded(void)
{
    redisReader *tmp = redisReaderCreate(); /* to learn hiredis' default functions */
    plain = tmp->fn;                        /* static storage inside hiredis */
    redisReaderFree(tmp);
    guarded = *plain;
    guarded.createArray = guard_array;
}

redisReader *resp_reader_new(void)
{
    pthread_once(&guarded_once, init_guarded);
    redisReader *r = redisReaderCreateWithFunctions(&guarded);
    if (!r)
        return NULL;
    struct resp_scan *sc = calloc(1, sizeof *sc);
    if (!sc) {
        redisReaderFree(r);
        return NULL;
    }
    r->privdata = sc;
    return r;
}

void resp_reader_free(redisReader *r)
{
    if (!r)
        return;
    free(r->privdata);
    redisReaderFree(r);
}

/* True between replies: nothing buffered, nothing half-read. */
static bool resp_reader_idle(const redisReader *r)
{
    const struct resp_scan *sc = r->privdata;
    return r->pos == r->len && r->ridx == -1 && sc->st == SC_TYPE && sc->depth == 0 && sc->wire == 0;
}

/* The measure the cap applies to: what the reply so far holds or must hold. */
static size_t scan_cost(const struct resp_scan *sc)
{
    return sc->wire + sc->elems * RESP_ELEM_COST + sc->owed;
}

/* An element begins (its type byte has arrived). */
static void scan_elem_begin(struct resp_scan *sc)
{
    sc->elems++;
    if (sc->depth > 0)
        sc->owed -= RESP_MIN_ELEM_WIRE + RESP_ELEM_COST; /* promised, now counted for real */
}

/* An element ended: close the arrays it completes; at the top, the reply. */
static void scan_elem_end(struct resp_scan *sc)
{
    while (sc->depth > 0 && --sc->left[sc->depth - 1] == 0)
        sc->depth--;
    if (sc->depth == 0) {
        sc->complete++;
        sc->wire = sc->elems = sc->owed = 0;
    }
    sc->st = SC_TYPE;
}

/* A length header as hiredis' string2ll reads it: "0", or an optional '-'
 * and digits without a leading zero. Values past the range saturate (they
 * are refused by size either way). */
static bool scan_len(const char *s, int n, long long *out)
{
    bool neg = n > 0 && s[0] == '-';
    int i = neg;
    if (i == n || (s[i] == '0' && n > i + 1) || (neg && s[i] == '0'))
        return false;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v > (unsigned long long)LLONG_MAX / 10 ? (unsigned long long)LLONG_MAX : v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > (unsigned long long)LLONG_MAX)
        v = (unsigned long long)LLONG_MAX;
    *out = neg ? -(long long)v : (long long)v;
    return true;
}

/* A complete length header: a bulk string or an array begins, or a nil.
 * Returns false when the reply could never fit under max (detail says why). */
static bool scan_header(struct resp_scan *sc, size_t max, char *detail, size_t detail_len)
{
    long long n;
    if (!scan_len(sc->num, sc->nlen, &n) || n < -1 || (sc->type == '*' && n > 0 && sc->depth == RESP_MAX_DEPTH)) {
        sc->st = SC_LOST; /* hiredis refuses it with its own message */
        return true;
    }
    if (n <= 0) { /* nil, empty string or empty array */
        if (scan_cost(sc) > max) {
            snprintf(detail, detail_len, "reply larger than %zu bytes", max);
            return false;
        }
        if (sc->type == '$' && n == 0) {
            sc->st = SC_BULK;
            sc->skip = 2;
        } else {
            scan_elem_end(sc);
        }
        return true;
    }
    size_t used = scan_cost(sc);
    size_t room = max > used ? max - used : 0;
    if (sc->type == '$') {
        if ((unsigned long long)n + 2 > room) {
            snprintf(detail, detail_len, "reply larger than %zu bytes (a %lld-byte string)", max, n);
            return false;
        }
        sc->st = SC_BULK;
        sc->skip = (unsigned long long)n + 2;
        return true;
    }
    if ((unsigned long long)n > room / (RESP_MIN_ELEM_WIRE + RESP_ELEM_COST)) {
        snprintf(detail, detail_len, "reply larger than %zu bytes (an array of %lld elements)", max, n);
        return false;
    }
    sc->owed += (size_t)n * (RESP_MIN_ELEM_WIRE + RESP_ELEM_COST);
    sc->left[sc->depth++] = n;
    sc->st = SC_TYPE;
    return true;
}

/* Follows len bytes of the stream. Returns false as soon as the reply they
 * belong to exceeds max; *whole then gets how many of the bytes end
 * replies that fit (they may still be parsed and delivered). */
static bool scan(struct resp_scan *sc, const char *data, size_t len, size_t max, size_t *whole, char *detail,
                 size_t detail_len)
{
    size_t i = 0;
    *whole = 0;
    while (i < len) {
        size_t before = sc->complete;
        switch (sc->st) {
        case SC_TYPE: {
            char t = data[i++];
            sc->wire++;
            scan_elem_begin(sc);
            if (t == '+' || t == '-' || t == ':') {
                sc->st = SC_LINE;
                sc->cr = false;
            } else if (t == '$' || t == '*') {
                sc->st = SC_LEN;
                sc->type = t;
                sc->cr = false;
                sc->nlen = 0;
            } else {
                sc->st = SC_LOST; /* hiredis: "Protocol error, got ... as reply type byte" */
            }
            break;
        }
        case SC_LINE: {
            const char *nl = memchr(data + i, '\n', len - i);
            size_t take = nl ? (size_t)(nl - (data + i)) + 1 : len - i;
            bool ends = nl && (nl > data + i ? nl[-1] == '\r' : sc->cr);
            sc->cr = data[i + take - 1] == '\r';
            sc->wire += take;
            i += take;
            if (ends && scan_cost(sc) <= max) /* (checked below otherwise) */
                scan_elem_end(sc);
            break;
        }
        case SC_LEN: {
            char ch = data[i++];
            sc->wire++;
            if (ch == '\n' && sc->cr) {
                sc->nlen--; /* the '\r' */
                if (!scan_header(sc, max, detail, detail_len))
                    return false;
            } else if (sc->nlen == RESP_MAX_LEN_DIGITS + 1) {
                sc->st = SC_LOST; /* no length is that long */
            } else {
                sc->num[sc->nlen++] = ch;
                sc->cr = ch == '\r';
            }
            break;
        }
        case SC_BULK: {
            size_t take = sc->skip < len - i ? (size_t)sc->skip : len - i;
            sc->skip -= take;
            sc->wire += take;
            i += take;
            if (sc->skip == 0 && scan_cost(sc) <= max) /* as for lines: however the bytes were cut */
                scan_elem_end(sc);
            break;
        }
        case SC_LOST: /* hiredis will report the error; only count */
            sc->wire += len - i;
            i = len;
            break;
        }
        if (sc->complete != before)
            *whole = i;
        else if (scan_cost(sc) > max) {
            snprintf(detail, detail_len, "reply larger than %zu bytes", max);
            return false;
        }
    }
    return true;
}

enum outcome resp_feed(redisReader *r, const char *data, size_t len, size_t max_reply,
                       bool (*on_reply)(void *arg, redisReply *reply), void *arg, char *detail,
                       size_t detail_len)
{
    struct resp_scan *sc = r->privdata;
    size_t whole;
    char why[160];
    bool fits = scan(sc, data, len, max_reply, &whole, why, sizeof why);
    size_t feed = fits ? len : whole; /* the replies that fit before the one that does not */
    if (feed && redisReaderFeed(r, data, feed) != REDIS_OK) {
        snprintf(detail, detail_len, "reader out of memory");
        return OUTCOME_RESOURCES;
    }
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(r, &reply) != REDIS_OK) {
            snprintf(detail, detail_len, "%s", r->errstr);
            return OUTCOME_PROTOCOL;
        }
        if (!reply)
            break;
        if (sc->complete == 0) { /* cannot happen while both read RESP alike */
            freeReplyObject(reply);
            snprintf(detail, detail_len, "reply framing not understood");
            return OUTCOME_PROTOCOL;
        }
        sc->complete--;
        bool go_on = on_reply(arg, reply);
        freeReplyObject(reply);
        if (!go_on)
            return OUTCOME_OK;
    }
    if (!fits) {
        snprintf(detail, detail_len, "%s", why);
        return OUTCOME_REPLY_TOO_LARGE;
    }
    if (sc->complete != 0) {
        snprintf(detail, detail_len, "reply framing not understood");
        return OUTCOME_PROTOCOL;
    }
    return OUTCOME_OK;
}

bool resp_whole_bulk(char *data, size_t len, size_t max_reply, redisReply *out)
{
    if (len < 4 || data[0] != '$')
        return false;
    size_t i = 1, n = 0;
    while (i < len && i <= 10 && data[i] >= '0' && data[i] <= '9')
        n = n * 10 + (size_t)(data[i++] - '0');
    if (i == 1 || i > 10 || (data[1] == '0' && i > 2) || len - i < 2 || data[i] != '\r' || data[i + 1] != '\n')
        return false;
    size_t hdr = i + 2;
    if (len + RESP_ELEM_COST > max_reply || len - hdr < 2 || len - hdr - 2 != n || data[hdr + n] != '\r' || data[hdr + n + 1] != '\n')
        return false;
    data[hdr + n] = '\0'; /* hiredis' strings are NUL-terminated too */
    memset(out, 0, sizeof *out);
    out->type = REDIS_REPLY_STRING;
    out->str = data + hdr;
    out->len = n;
    return true;
}

/* Hands one reply to the owner; false once the owner closed us. */
static bool deliver(void *arg, redisReply *reply)
{
    struct conn *c = arg;
    c->in_cb++;
    c->cb.on_reply(c->arg, reply);
    c->in_cb--;
    return !c->dead && !c->close_requested;
}

/* Hands len received bytes to the reader, and the replies to the owner. */
static void consume(struct conn *c, const char *data, size_t len)
{
    char detail[160];
    if (!c->reader && !(c->reader = resp_reader_new())) {
        fail(c, OUTCOME_RESOURCES, "out of memory");
        return;
    }
    enum outcome o = resp_feed(c->reader, data, len, c->max_reply, deliver, c, detail, sizeof detail);
    if (c->dead || c->close_requested)
        return;
    if (o != OUTCOME_OK) {
        fail(c, o, detail);
        return;
    }
    if (resp_reader_idle(c->reader)) {
        /* idle between polls: no reader at all (hiredis keeps a reply-sized
         * buffer and its task stack, ~1 KB or more; 10,000 connections...) */
        resp_reader_free(c->reader);
        c->reader = NULL;
    }
}

/* Bytes that came through the bufferevent (TLS; plain ones before the
 * switch to raw_read_cb). */
static void drain_input(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (!c->dead && !c->close_requested && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        consume(c, v.iov_base, v.iov_len);
        if (c->close_requested)
            break;
        evbuffer_drain(in, v.iov_len);
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    drain_input(c);
    reap(c);
}

static enum outcome classify_errno(const struct conn *c, int err);

/* Plain sockets: one recv() per readable event, as big as a reply. libevent
 * 2.1's bufferevents read at most 4 KB a time (an INFO reply is ~8 KB: two
 * wake-ups, two FIONREAD ioctls and two reads a poll). */
static void raw_read_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct conn *c = arg;
    char buf[64 * 1024];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    redisReply whole;
    if (n > 0 && !c->reader && resp_whole_bulk(buf, (size_t)n, c->max_reply, &whole)) {
        deliver(c, &whole); /* the usual INFO reply: no reader, no copy */
    } else if (n > 0) {
        consume(c, buf, (size_t)n);
    } else if (n == 0) {
        fail(c, OUTCOME_CLOSED, "server closed the connection");
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        int err = errno;
        fail(c, classify_errno(c, err), strerror(err));
    }
    reap(c);
}

static enum outcome classify_errno(const struct conn *c, int err)
{
    switch (err) {
    case ECONNREFUSED:
    case ENOENT: /* unix socket path missing: nobody listens */
        return OUTCOME_CONNECT_REFUSED;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        return OUTCOME_RESOURCES;
    case ECONNRESET:
    case EPIPE:
        return c->connected ? OUTCOME_CLOSED : OUTCOME_CONNECT_FAILED;
    default:
        return c->connected ? OUTCOME_CLOSED : OUTCOME_CONNECT_FAILED;
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    char detail[200];
    int err = EVUTIL_SOCKET_ERROR();
    if (what & BEV_EVENT_CONNECTED) {
        c->connected = true;
        if (!c->tls && !c->rd) {
            /* from now on, reads are ours (raw_read_cb) */
            c->rd = event_new(bufferevent_get_base(bev), bufferevent_getfd(bev), EV_READ | EV_PERSIST, raw_read_cb, c);
            if (!c->rd || event_add(c->rd, NULL) != 0) {
                fail(c, OUTCOME_RESOURCES, "cannot add a read event");
                reap(c);
                return;
            }
            bufferevent_disable(bev, EV_READ);
            drain_input(c); /* anything it read before the switch */
        }
        if (!c->counted) {
            c->counted = true;
            atomic_fetch_add(&open_count, 1);
        }
        c->in_cb++;
        c->cb.on_connected(c->arg);
        c->in_cb--;
    } else if (what & BEV_EVENT_EOF) {
        if (c->tls && !c->connected)
            fail(c, OUTCOME_TLS, "connection closed during the TLS handshake");
        else
            fail(c, OUTCOME_CLOSED, "server closed the connection");
    } else if (what & BEV_EVENT_ERROR) {
        int dns = bufferevent_socket_get_dns_error(bev);
        unsigned long ssl_err = c->tls ? bufferevent_get_openssl_error(bev) : 0;
        if (dns) {
            snprintf(detail, sizeof detail, "%s", evutil_gai_strerror(dns));
            fail(c, OUTCOME_DNS, detail);
        } else if (ssl_err) {
            char e[160];
            ERR_error_string_n(ssl_err, e, sizeof e);
            snprintf(detail, sizeof detail, "%s", e);
            while (bufferevent_get_openssl_error(bev))
                ;
            fail(c, OUTCOME_TLS, detail);
        } else {
            enum outcome o = classify_errno(c, err);
            if (c->tls && !c->connected && o == OUTCOME_CONNECT_FAILED)
                o = OUTCOME_TLS;
            snprintf(detail, sizeof detail, "%s", err ? strerror(err) : "connection error");
            fail(c, o, detail);
        }
    }
    reap(c);
}

static bool is_ip_literal(const char *h)
{
    unsigned char tmp[16];
    return inet_pton(AF_INET, h, tmp) == 1 || inet_pton(AF_INET6, h, tmp) == 1;
}

SSL_CTX *conn_tls_ctx_new(const struct tls_opts *tls, char *detail, size_t detail_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(detail, detail_len, "cannot create TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    int ok = tls->ca_file ? SSL_CTX_load_verify_locations(ctx, tls->ca_file, NULL)
                          : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        snprintf(detail, detail_len, "cannot load CA file \"%s\"", tls->ca_file ? tls->ca_file : "(system)");
        goto fail;
    }
    if (tls->cert_file) {
        if (SSL_CTX_use_certificate_chain_file(ctx, tls->cert_file) != 1) {
            snprintf(detail, detail_len, "cannot load certificate \"%s\"", tls->cert_file);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, tls->key_file, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            snprintf(detail, detail_len, "cannot load key \"%s\" or it does not match the certificate", tls->key_file);
            goto fail;
        }
    }
    SSL_CTX_set_verify(ctx, tls->insecure_skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    ERR_clear_error();
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

struct conn *conn_open(struct event_base *base, struct evdns_base *dns, SSL_CTX *ssl_ctx,
                       const struct instance_cfg *cfg, const struct conn_callbacks *cb,
                       void *arg, enum outcome *why, char *detail, size_t detail_len)
{
    if (fd_budget >= 0 && atomic_load(&alloc_count) >= fd_budget) {
        /* keep descriptors for the HTTP server and the rest of the process */
        *why = OUTCOME_RESOURCES;
        snprintf(detail, detail_len, "file descriptor budget of %ld Redis connections reached (raise LimitNOFILE / ulimit -n)", fd_budget);
        return NULL;
    }
    struct conn *c = xcalloc(1, sizeof *c);
    c->cb = *cb;
    c->arg = arg;
    c->max_reply = cfg->max_reply_bytes; /* the reader comes with the first bytes */
    int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
    if (cfg->kind == ADDR_TCP && cfg->tls.enabled) {
        if (!ssl_ctx) {
            *why = OUTCOME_TLS;
            snprintf(detail, detail_len, "no TLS context (bad TLS settings)");
            goto fail;
        }
        SSL *ssl = SSL_new(ssl_ctx);
        if (!ssl) {
            *why = OUTCOME_RESOURCES;
            snprintf(detail, detail_len, "cannot create TLS session");
            goto fail;
        }
        const char *name = cfg->tls.server_name ? cfg->tls.server_name : cfg->host;
        if (!is_ip_literal(name))
            SSL_set_tlsext_host_name(ssl, name);
        if (!cfg->tls.insecure_skip_verify) {
            if (is_ip_literal(name))
                X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
            else
                SSL_set1_host(ssl, name);
        }
        c->tls = true;
        c->bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, opts);
        if (c->bev)
            bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
        else
            SSL_free(ssl);
    } else {
        c->bev = bufferevent_socket_new(base, -1, opts);
    }
    if (!c->bev) {
        *why = OUTCOME_RESOURCES;
        snprintf(detail, detail_len, "cannot create bufferevent");
        goto fail;
    }
    atomic_fetch_add(&alloc_count, 1); /* do_free() and the fail path give it back */
    bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    int r;
    errno = 0;
    if (cfg->kind == ADDR_UNIX) {
        struct sockaddr_un sun;
        memset(&sun, 0, sizeof sun);
        sun.sun_family = AF_UNIX;
        snprintf(sun.sun_path, sizeof sun.sun_path, "%s", cfg->path);
        r = bufferevent_socket_connect(c->bev, (struct sockaddr *)&sun, sizeof sun);
    } else {
        r = bufferevent_socket_connect_hostname(c->bev, dns, AF_UNSPEC, cfg->host, cfg->port);
    }
    if (r < 0) {
        int err = errno;
        *why = classify_errno(c, err);
        snprintf(detail, detail_len, "connect: %s", err ? strerror(err) : "failed");
        goto fail;
    }
    return c;
fail:
    if (c->bev) {
        bufferevent_free(c->bev);
        atomic_fetch_sub(&alloc_count, 1);
    }
    free(c);
    return NULL;
}

int conn_send(struct conn *c, const char *cmd, size_t len)
{
    if (c->dead || c->close_requested)
        return -1;
    size_t sent = 0;
    if (!c->tls && c->connected && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        /* the usual case, one small command on an idle connection: write
         * it now, and the write event is never armed (two epoll_ctl and an
         * epoll_wait less per poll). What does not fit, and any error, go
         * through the bufferevent, which reports errors as usual. */
        ssize_t n = send(bufferevent_getfd(c->bev), cmd, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0)
            sent = (size_t)n;
    }
    return sent == len ? 0 : bufferevent_write(c->bev, cmd + sent, len - sent);
}

int conn_command(struct conn *c, int argc, const char **argv)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    if (len < 0)
        return -1;
    int r = conn_send(c, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return r;
}

bool conn_in_tls_handshake(const struct conn *c)
{
    if (!c || !c->tls || c->connected)
        return false;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    return fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0;
}

void conn_close(struct conn *c)
{
    if (!c)
        return;
    if (c->in_cb) {
        c->close_requested = true;
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
        if (c->rd)
            event_del(c->rd);
        return;
    }
    do_free(c);
}
