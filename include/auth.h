/*
 * auth.h - HTTP basic authentication against bcrypt hashes (the "$2y$" and
 * "$2b$" hashes Prometheus' web configuration uses), verified with crypt_r.
 *
 * bcrypt costs tens of milliseconds, so it never runs on the caller's
 * thread: auth_begin answers from a cache of good logins or refuses at
 * once, and otherwise hands a job to two worker threads (at most two
 * checks at once, a short queue behind them, AUTH_BUSY past it). Unknown
 * users are checked against a dummy hash of the costliest user's cost, and
 * a cheaper user's check is padded up to it, so the time of a refusal
 * tells nothing. Each client address may fail a few logins, then
 * one every few seconds, and have two checks in flight (AUTH_LIMITED past
 * either), so one address cannot keep the workers busy. A login already
 * being checked is not checked twice: later requests for it wait for that
 * check, at no charge. Thread-safe.
 */
#ifndef REDPULSE_AUTH_H
#define REDPULSE_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "config.h"

/* Outcomes, counted by redpulse_http_auth_checks_total{result}. */
enum auth_result { AUTH_OK, AUTH_DENIED, AUTH_BUSY, AUTH_LIMITED, AUTH_RESULTS, AUTH_PENDING = AUTH_RESULTS };

/* Failed logins one client address (an IPv6 /64) may make at once, and
 * how often it gets one back (docs/http.md, Security). */
#define AUTH_FAIL_BURST 10
#define AUTH_FAIL_REFILL_S 6
/* Password checks one client address may have running or queued. */
#define AUTH_IN_FLIGHT 2
/* A remembered login is checked again this long after its last check,
 * however often it is used meanwhile (each use keeps it one TTL more). */
#define AUTH_CACHE_MAX_S 86400
/* Requests that may wait for one check of their login; past it AUTH_BUSY. */
#define AUTH_FOLLOWERS 64
/* bcrypt worker threads (the most checks at once) and the jobs that may
 * wait for them. */
#define AUTH_WORKERS 2
#define AUTH_QUEUE 16

struct auth;
struct auth_job;
typedef void (*auth_done_fn)(void *arg, enum auth_result r);

/* Users are name/hash pairs (copied); a good login is remembered for
 * cache_ttl_ms after its last use, at most AUTH_CACHE_MAX_S after its
 * check. Starts the worker threads (they inherit the caller's
 * signal mask). Returns NULL when n is 0 (no auth). */
struct auth *auth_new(const struct label *users, size_t n, uint64_t cache_ttl_ms);
/* Stops the workers (auth_shutdown) and frees; NULL-safe. */
void auth_free(struct auth *a);

/* First step of a check, on the calling thread; never runs bcrypt. user and
 * pass may be NULL (denied, after the same work as a wrong password); addr
 * is the client's address (may be NULL: not limited). Returns
 *   AUTH_OK       a good login remembered from an earlier check;
 *   AUTH_LIMITED  addr has used its failed logins, or has AUTH_IN_FLIGHT
 *                 checks running or queued: refuse without a check;
 *   AUTH_BUSY     the workers and their queue are full, AUTH_FOLLOWERS wait
 *                 for the check of this login already, or no worker could
 *                 be started;
 *   AUTH_PENDING  a bcrypt check is needed: *job is set, a queue place is
 *                 reserved for it, and it must be given to auth_submit; or
 *                 the same login is being checked: *job waits for that
 *                 check (no queue place, no failure charged), and it must
 *                 be given to auth_submit all the same.
 * Counted, except AUTH_PENDING (counted when it ends). */
enum auth_result auth_begin(struct auth *a, const char *user, const char *pass, const struct sockaddr *addr,
                            struct auth_job **job);
/* Queues job (ownership passes). done(arg, r) is called exactly once, with
 * AUTH_OK or AUTH_DENIED, or with AUTH_BUSY when auth_shutdown cancels it:
 * from a worker thread, or from the caller's, inside auth_submit, when the
 * answer is already there (the check it waited for ended meanwhile, or
 * auth is stopping). Nothing of the job is touched after done. */
void auth_submit(struct auth *a, struct auth_job *job, auth_done_fn done, void *arg);
/* Stops accepting jobs, ends the queued ones with AUTH_BUSY, waits for the
 * running ones. Idempotent. Call before stopping the HTTP server, whose
 * suspended requests wait for their done callbacks. */
void auth_shutdown(struct auth *a);

/* For tests: the clock auth reads instead of now_mono_us (monotonic
 * microseconds; called from the caller's and the worker threads). Set it
 * before the first check. */
void auth_set_clock(struct auth *a, uint64_t (*now_us)(void));

/* Appends redpulse_http_auth_checks_total{result},
 * redpulse_http_bcrypt_checks_total and redpulse_http_bcrypt_pending
 * (NULL a: nothing). */
void auth_render_metrics(struct auth *a, struct buf *out);
/* Writes a new "$2b$" bcrypt hash of pass with 2^cost rounds to out (at
 * least 64 bytes). Returns 0, or -1 when the system's crypt cannot. */
int auth_hash_password(const char *pass, unsigned cost, char *out, size_t outlen);

#endif
