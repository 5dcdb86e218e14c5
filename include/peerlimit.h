/*
 * peerlimit.h - open connections counted per source, for
 * http.max_connections_per_ip. A connection counts for its address (an
 * IPv4 address, IPv4-mapped IPv6 ones too, or an IPv6 address) and, when
 * that is a global IPv6 address, for its /64 as well: one host usually
 * holds a whole /64 and could otherwise open max_connections from
 * addresses of its own. Link-local addresses (fe80::/10) count only for
 * themselves: every neighbour on every link shares fe80::/64. Not
 * thread-safe: the caller locks.
 */
#ifndef REDPULSE_PEERLIMIT_H
#define REDPULSE_PEERLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The bytes naming sa's source into out: 4 (IPv4) or 8 (an IPv6 /64);
 * 0 for other families. (The failed-login budget counts these.) */
size_t peer_source_bytes(const struct sockaddr *sa, unsigned char out[8]);

enum peer_kind { PEER_ADDR = 1, PEER_NET64 };
struct peer_key {
    uint64_t hi, lo;     /* the address (IPv4: hi 0), or the /64 (lo 0) */
    enum peer_kind kind;
};
/* The keys a connection from sa counts under, into out: its address, then
 * its /64 for a global IPv6 address. Returns how many (0: other families,
 * not counted). */
size_t peer_keys(const struct sockaddr *sa, struct peer_key out[2]);

struct peerlimit;

/* A table for at most max_keys keys at once (more are refused by
 * peerlimit_add). seed: the hash key, or NULL for a random one (tests
 * give one to repeat a run). Never NULL. */
struct peerlimit *peerlimit_new(size_t max_keys, const uint64_t *seed);
void peerlimit_free(struct peerlimit *l);
/* Connections counted under k. */
unsigned peerlimit_count(const struct peerlimit *l, const struct peer_key *k);
/* Counts one more under k and returns the new count; 0 when the table is
 * full (not counted). */
unsigned peerlimit_add(struct peerlimit *l, const struct peer_key *k);
/* Counts one fewer under k, which peerlimit_add counted. */
void peerlimit_del(struct peerlimit *l, const struct peer_key *k);

#endif
