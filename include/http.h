/*
 * http.h - the embedded HTTP server (libmicrohttpd, its own thread pool).
 *
 * Endpoints: /metrics, /scrape?target=NAME, /api/v1/instances[/NAME], /,
 * /healthz, /readyz. Handlers only read published frags from the registry:
 * a request never waits on Redis and never takes a lock the poller holds
 * for longer than a pointer swap. It waits for the loop only to have the
 * polls not rendered yet rendered (registry_on_read, poller.c "Rendered
 * when read"), 2 s at most, and not while the loop waits on these threads
 * (poller_hold_reads); then it takes what is published. A login that needs
 * bcrypt suspends its connection while auth's workers hash; the threads go
 * on serving others.
 * Bodies not yet sent are bounded by http.max_body_memory (503 past it).
 * A request must come in whole within http.request_timeout of the accept
 * (idle_timeout + request_timeout after the answer before it on a
 * kept-alive connection), or a watchdog thread ("rp-httpwatch") closes its
 * connection.
 * Only GET and HEAD are served.
 */
#ifndef REDPULSE_HTTP_H
#define REDPULSE_HTTP_H

#include <stddef.h>

#include "buf.h"
#include "config.h"
#include "publish.h"

struct http_server;

/* Binds cfg->http.listen and starts serving. cfg and reg must outlive the
 * server. Returns NULL with a message in err when the address cannot be
 * resolved or bound. */
struct http_server *http_start(const struct config *cfg, struct registry *reg, char *err,
                               size_t errlen);
/* Re-reads the TLS certificate, key and client CA (SIGHUP): new handshakes
 * get the new certificate, new requests are checked against the new CA. A
 * bad new set is logged and the running one kept whole. Returns 0, or -1 on a bad set. Call
 * from one thread at a time (the event loop). */
int http_reload_tls(struct http_server *s);
/* Applies cfg's HTTP settings (limits, basic auth users, TLS certificate,
 * key and client CA, listen address) to a running server: starts a new
 * server on the same listening socket (or binds the new address), then lets
 * the old one finish its requests in flight (up to 1 s) and frees it.
 * Returns the new server; on failure returns NULL with a message in err and
 * old keeps serving untouched. cfg must outlive the returned server. Loop
 * thread only (it blocks while the old server drains). */
struct http_server *http_apply(struct http_server *old, const struct config *cfg, char *err, size_t errlen);
/* Stops accepting, ends pending login checks (503), lets in-flight
 * requests finish (up to 2 s), joins the watchdog, and frees; safe on
 * NULL. */
void http_stop(struct http_server *s);
/* Descriptors the server may hold with configuration h: connections plus
 * libmicrohttpd's own per thread (for the process' descriptor budget). */
unsigned http_fd_reserve(const struct http_cfg *h);

/* Assembles the Prometheus exposition of every slot (target NULL: one
 * consistent set, see registry_view_take) or of the slot named target,
 * families contiguous across instances, plus redpulse's global families when
 * target is NULL. Exposed for tests and benchmarks. */
void http_render_metrics(struct registry *reg, const char *target, struct buf *out);
/* Percent-decodes s in place as MHD's unescape callback does for paths and
 * query values, except that "%00" is left as written (a NUL would cut a
 * target name short). Returns the new length. */
size_t http_unescape(char *s);
/* True when an Accept-Encoding header value accepts gzip. */
int http_accepts_gzip(const char *accept_encoding);
/* gzip-compresses in[0..len) into out; returns 0 or -1. */
int http_gzip(const char *in, size_t len, struct buf *out);

#endif
