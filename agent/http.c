/*
 * http.c - request routing and response assembly on libmicrohttpd's
 * threads. Everything served is either static or assembled from frags the
 * poller already rendered: /metrics copies per-family byte ranges of every
 * instance, /api copies JSON. Limits (connections, per-IP, idle timeout,
 * memory per connection) come from the configuration.
 */
#include "http.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "conn.h"
#include "log.h"
#include "prom.h"
#include "util.h"

struct http_server {
    struct MHD_Daemon *d;
    const struct config *cfg;
    struct registry *reg;
};

static const char CT_PROM[] = "text/plain; version=0.0.4; charset=utf-8";
static const char CT_JSON[] = "application/json";
static const char CT_TEXT[] = "text/plain; charset=utf-8";
static const char CT_HTML[] = "text/html; charset=utf-8";

void http_render_metrics(struct registry *reg, long target, struct buf *out)
{
    size_t n = registry_size(reg);
    struct frag *one = NULL;
    struct frag **fr = &one;
    size_t nf = 1;
    if (target < 0) {
        fr = xcalloc(n ? n : 1, sizeof *fr);
        registry_snapshot(reg, fr);
        nf = n;
    } else {
        one = registry_get(reg, (size_t)target);
    }
    size_t total = 0;
    for (size_t i = 0; i < nf; i++)
        if (fr[i])
            total += fr[i]->fam_off[FAM_COUNT];
    buf_reserve(out, total + 16384);
    for (int f = 0; f < FAM_COUNT; f++) {
        bool any = false;
        for (size_t i = 0; i < nf; i++) {
            const struct frag *g = fr[i];
            if (!g || g->fam_off[f + 1] == g->fam_off[f])
                continue;
            if (!any) {
                size_t hl;
                const char *h = prom_family_header((enum prom_family)f, &hl);
                buf_append(out, h, hl);
                any = true;
            }
            buf_append(out, g->prom + g->fam_off[f], g->fam_off[f + 1] - g->fam_off[f]);
        }
    }
    if (target < 0) {
        buf_puts(out, "# HELP redpulse_build_info Build information of redpulse\n"
                      "# TYPE redpulse_build_info gauge\n");
        buf_puts(out, "redpulse_build_info{version=\"" REDPULSE_VERSION "\"} 1\n");
        buf_puts(out, "# HELP redpulse_open_connections Connections to Redis currently open\n"
                      "# TYPE redpulse_open_connections gauge\n");
        buf_printf(out, "redpulse_open_connections %ld\n", conn_open_count());
        buf_puts(out, "# HELP redpulse_instances Configured Redis instances\n"
                      "# TYPE redpulse_instances gauge\n");
        buf_printf(out, "redpulse_instances %zu\n", n);
    }
    for (size_t i = 0; i < nf; i++)
        frag_unref(fr[i]);
    if (fr != &one)
        free(fr);
}

int http_accepts_gzip(const char *ae)
{
    if (!ae)
        return 0;
    const char *p = ae;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *tok = p;
        while (*p && *p != ',')
            p++;
        size_t tl = (size_t)(p - tok);
        const char *semi = memchr(tok, ';', tl);
        size_t nl = semi ? (size_t)(semi - tok) : tl;
        while (nl && tok[nl - 1] == ' ')
            nl--;
        if ((nl == 4 && strncasecmp(tok, "gzip", 4) == 0) || (nl == 1 && tok[0] == '*')) {
            if (!semi)
                return 1;
            const char *q = semi + 1;
            while (*q == ' ')
                q++;
            if (strncasecmp(q, "q=", 2) != 0)
                return 1;
            double qv = strtod(q + 2, NULL);
            return qv > 0;
        }
    }
    return 0;
}

int http_gzip(const char *in, size_t len, struct buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t bound = deflateBound(&z, len) + 32;
    buf_reserve(out, bound);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out->p + out->len;
    z.avail_out = (uInt)bound;
    int r = deflate(&z, Z_FINISH);
    if (r != Z_STREAM_END) {
        deflateEnd(&z);
        return -1;
    }
    out->len += z.total_out;
    out->p[out->len] = '\0';
    deflateEnd(&z);
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

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned status, const char *ctype,
                                struct buf *body, bool gzip_ok)
{
    struct buf gz = BUF_INIT;
    bool gz_used = false;
    if (gzip_ok && body->len > 256 && http_gzip(body->p ? body->p : "", body->len, &gz) == 0) {
        buf_free(body);
        *body = gz;
        gz_used = true;
    } else {
        buf_free(&gz);
    }
    size_t len;
    char *p = buf_steal(body, &len);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, p, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(p);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (gzip_ok || gz_used)
        MHD_add_response_header(r, "Vary", "Accept-Encoding");
    if (gz_used)
        MHD_add_response_header(r, "Content-Encoding", "gzip");
    if (strcmp(ctype, CT_HTML) == 0) {
        MHD_add_response_header(r, "X-Frame-Options", "deny");
        MHD_add_response_header(r, "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
    }
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, "Allow", "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *msg)
{
    struct buf b = BUF_INIT;
    buf_puts(&b, msg);
    return send_buf(c, status, CT_TEXT, &b, false);
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
                 "<li><a href=\"/healthz\">/healthz</a> and <a href=\"/readyz\">/readyz</a></li></ul>"
                 "<h2>Instances</h2><ul>");
    size_t n = s->cfg->n_instances;
    for (size_t i = 0; i < n && i < 100; i++) {
        const char *name = s->cfg->instances[i].name;
        buf_puts(&b, "<li>");
        html_escape(&b, name);
        buf_puts(&b, ": <a href=\"/scrape?target=");
        html_escape(&b, name);
        buf_puts(&b, "\">metrics</a>, <a href=\"/api/v1/instances/");
        html_escape(&b, name);
        buf_puts(&b, "\">json</a></li>");
    }
    if (n > 100)
        buf_printf(&b, "<li>... and %zu more</li>", n - 100);
    buf_puts(&b, "</ul></body></html>\n");
    return send_buf(c, MHD_HTTP_OK, CT_HTML, &b, false);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **req_cls)
{
    (void)version, (void)upload;
    static int seen_headers;
    struct http_server *s = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD are allowed\n");
    if (*req_cls == NULL) {
        /* first call: headers only. Answering now would make MHD close the
         * connection (it cannot know the request is complete); answer on
         * the next call and keep connections alive for Prometheus. */
        *req_cls = &seen_headers;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* a body on GET is ignored */
        return MHD_YES;
    }
    bool gz = http_accepts_gzip(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING));
    struct buf b = BUF_INIT;

    if (strcmp(url, "/metrics") == 0) {
        http_render_metrics(s->reg, -1, &b);
        return send_buf(c, MHD_HTTP_OK, CT_PROM, &b, gz);
    }
    if (strcmp(url, "/scrape") == 0) {
        const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "target");
        if (!name || !*name)
            return send_text(c, MHD_HTTP_BAD_REQUEST, "missing ?target=NAME (a configured instance name)\n");
        long i = registry_find(s->reg, name);
        if (i < 0)
            return send_text(c, MHD_HTTP_NOT_FOUND, "unknown target: only configured instance names are accepted\n");
        http_render_metrics(s->reg, i, &b);
        return send_buf(c, MHD_HTTP_OK, CT_PROM, &b, gz);
    }
    if (strcmp(url, "/api/v1/instances") == 0) {
        size_t n = registry_size(s->reg);
        struct frag **fr = xcalloc(n ? n : 1, sizeof *fr);
        registry_snapshot(s->reg, fr);
        buf_putc(&b, '[');
        bool first = true;
        for (size_t i = 0; i < n; i++) {
            if (!fr[i])
                continue;
            if (!first)
                buf_putc(&b, ',');
            first = false;
            frag_append_json(fr[i], &b);
            frag_unref(fr[i]);
        }
        free(fr);
        buf_puts(&b, "]\n");
        return send_buf(c, MHD_HTTP_OK, CT_JSON, &b, gz);
    }
    if (strncmp(url, "/api/v1/instances/", 18) == 0) {
        long i = registry_find(s->reg, url + 18);
        struct frag *f = i >= 0 ? registry_get(s->reg, (size_t)i) : NULL;
        if (!f)
            return send_text(c, MHD_HTTP_NOT_FOUND, "unknown instance\n");
        frag_append_json(f, &b);
        buf_putc(&b, '\n');
        frag_unref(f);
        return send_buf(c, MHD_HTTP_OK, CT_JSON, &b, gz);
    }
    if (strcmp(url, "/healthz") == 0)
        return send_text(c, MHD_HTTP_OK, "ok\n");
    if (strcmp(url, "/readyz") == 0) {
        if (registry_all_polled(s->reg))
            return send_text(c, MHD_HTTP_OK, "ready\n");
        return send_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: first round of polls not done\n");
    }
    if (strcmp(url, "/") == 0)
        return landing(s, c);
    return send_text(c, MHD_HTTP_NOT_FOUND, "not found; see / for the endpoints\n");
}

/* Percent-decoding for paths and query values that never produces a NUL:
 * "%00" stays as written, so "name%00suffix" cannot pass for "name". */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls, (void)c;
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

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t l = strlen(msg);
    while (l && msg[l - 1] == '\n')
        msg[--l] = '\0';
    log_warn("http", "%s", msg);
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

struct http_server *http_start(const struct config *cfg, struct registry *reg, char *err,
                               size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (resolve_listen(cfg->http.listen, &ss, &sl, err, errlen) < 0)
        return NULL;
    struct http_server *s = xcalloc(1, sizeof *s);
    s->cfg = cfg;
    s->reg = reg;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    const struct http_cfg *h = &cfg->http;
    unsigned timeout_s = (unsigned)((h->idle_timeout_ms + 999) / 1000);
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, handler, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_THREAD_POOL_SIZE, h->threads,
                            MHD_OPTION_CONNECTION_LIMIT, h->max_connections,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, h->max_connections_per_ip,
                            MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, h->connection_memory_limit,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
                            MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
                            MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, errlen, "cannot listen on %s (in use, or not an address of this host?)", h->listen);
        free(s);
        return NULL;
    }
    return s;
}

void http_stop(struct http_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d);
    free(s);
}
