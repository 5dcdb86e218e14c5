/*
 * auth.h - HTTP basic authentication against bcrypt hashes (the "$2y$" and
 * "$2b$" hashes Prometheus' web configuration uses), verified with crypt_r.
 *
 * Unknown users are checked against a dummy hash of the same cost, so the
 * time of a refusal tells nothing; at most a few bcrypt checks run at once
 * (they cost tens of milliseconds each), and a successful check is
 * remembered for a minute so scrapes stay cheap. Thread-safe.
 */
#ifndef REDPULSE_AUTH_H
#define REDPULSE_AUTH_H

#include <stddef.h>

#include "buf.h"
#include "config.h"

enum auth_result { AUTH_OK, AUTH_DENIED, AUTH_BUSY, AUTH_RESULTS };

struct auth;

/* Users are name/hash pairs (copied). Returns NULL when n is 0 (no auth). */
struct auth *auth_new(const struct label *users, size_t n);
void auth_free(struct auth *a); /* NULL-safe */
/* Checks a user and password (either may be NULL: denied, after the same
 * work as a wrong password). AUTH_BUSY when too many checks are running for
 * longer than a couple of seconds. */
enum auth_result auth_check(struct auth *a, const char *user, const char *pass);
/* Appends redpulse_http_auth_checks_total{result} and
 * redpulse_http_bcrypt_checks_total (NULL a: nothing). */
void auth_render_metrics(struct auth *a, struct buf *out);
/* Writes a new "$2b$" bcrypt hash of pass with 2^cost rounds to out (at
 * least 64 bytes). Returns 0, or -1 when the system's crypt cannot. */
int auth_hash_password(const char *pass, unsigned cost, char *out, size_t outlen);

#endif
