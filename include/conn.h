/*
 * conn.h - one persistent connection to a Redis server: TCP, unix socket or
 * TLS, over a libevent bufferevent, with hiredis' reader parsing replies
 * (except the usual one, a whole bulk string in one read: resp_whole_bulk).
 *
 * conn moves bytes and knows nothing of INFO. It sends commands (pipelining
 * is fine, even before the connection is up) and hands back replies in order.
 * Deadlines belong to the caller (the poller), which closes the connection
 * when one passes; conn enforces the per-reply size cap itself.
 */
#ifndef REDPULSE_CONN_H
#define REDPULSE_CONN_H

#include <event2/dns.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "outcome.h"

struct conn;

struct conn_callbacks {
    /* The socket is connected (and the TLS handshake done). */
    void (*on_connected)(void *arg);
    /* A complete reply; r is owned by conn and freed after the call. */
    void (*on_reply)(void *arg, redisReply *r);
    /* The connection failed; no more callbacks follow. The caller should
     * conn_close() it (doing so from inside this callback is allowed). */
    void (*on_error)(void *arg, enum outcome why, const char *detail);
};

/* Starts connecting to cfg's address. ssl_ctx is used for rediss:// (may be
 * NULL otherwise); dns resolves host names without blocking. Returns NULL
 * with *why set (OUTCOME_RESOURCES, OUTCOME_TLS...) and detail filled when
 * the attempt cannot even start; callbacks never run in that case. */
struct conn *conn_open(struct event_base *base, struct evdns_base *dns, SSL_CTX *ssl_ctx,
                       const struct instance_cfg *cfg, const struct conn_callbacks *cb,
                       void *arg, enum outcome *why, char *detail, size_t detail_len);
/* Queues one command (encoded with redisFormatCommandArgv). Returns 0 or -1. */
int conn_command(struct conn *c, int argc, const char **argv);
/* Queues one command already encoded as RESP (len bytes of cmd, copied when
 * it cannot be written at once). Returns 0 or -1. */
int conn_send(struct conn *c, const char *cmd, size_t len);
/* Closes and frees; no callbacks run after it returns. Safe on NULL and from
 * inside any conn callback. */
void conn_close(struct conn *c);
/* True while a TLS connection has its TCP link up but the handshake has not
 * finished (used to name a stalled handshake as a TLS failure). */
bool conn_in_tls_handshake(const struct conn *c);
/* Connections currently open, across all conns (for self-metrics). */
long conn_open_count(void);
/* At most n conns may hold a socket at once; conn_open() beyond it fails
 * with OUTCOME_RESOURCES, so running out of descriptors never starves the
 * HTTP server. Set once at startup, before the event loop runs. */
void conn_set_fd_budget(long n);

/* What max_reply_bytes bounds: a reply's bytes on the wire plus this much
 * per element (a share of what each parsed element costs in memory), counted
 * for the whole reply whatever its shape, from its first byte, on every read
 * path. Memory held for one reply then stays within a few times the cap. */
#define RESP_ELEM_COST 16

/* A RESP reader that follows the framing of each reply before hiredis parses
 * it, so the cap of resp_feed holds for the whole reply (hiredis alone only
 * sees the unparsed tail). NULL when out of memory. Free with
 * resp_reader_free (not redisReaderFree: it owns a little more). */
redisReader *resp_reader_new(void);
/* Frees a reader from resp_reader_new; safe on NULL. */
void resp_reader_free(redisReader *r);

/* The read path without a socket (used by conn itself and by the fuzzer):
 * feeds len bytes to r (from resp_reader_new) and hands every complete reply
 * to on_reply, which returns false to stop (the reply is freed after it
 * returns). A reply whose size (see RESP_ELEM_COST) passes max_reply returns
 * OUTCOME_REPLY_TOO_LARGE as soon as the bytes that cross it, or a header
 * announcing more than can fit (a "$N" string, a "*N" array of N elements of
 * at least 3 bytes each), arrive: nothing of it is parsed beyond the
 * replies that fit before it. A protocol error or memory exhaustion return
 * the matching outcome; OUTCOME_OK otherwise. detail is filled on failure.
 * After a failure r is only good for resp_reader_free. */
enum outcome resp_feed(redisReader *r, const char *data, size_t len, size_t max_reply,
                       bool (*on_reply)(void *arg, redisReply *reply), void *arg, char *detail,
                       size_t detail_len);

/* The usual reply in one read: data[0..len) is exactly one bulk string
 * ("$<n>\r\n<n bytes>\r\n") that fits max_reply as resp_feed counts it. Then *out is a
 * string reply pointing into data (the '\r' after the bytes becomes their
 * NUL) and the result is true; anything else (other types, several or
 * partial replies, nil) is false and leaves data alone, for the reader. */
bool resp_whole_bulk(char *data, size_t len, size_t max_reply, redisReply *out);
/* Builds the client TLS context for cfg (CA, client certificate, verify
 * mode). Returns NULL and fills detail on failure. */
SSL_CTX *conn_tls_ctx_new(const struct tls_opts *tls, char *detail, size_t detail_len);

#endif
