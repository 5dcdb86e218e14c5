/*
 * peerlimit.h - open connections counted per source, for
 * http.max_connections_per_ip. A connection counts for its address (an
 * IPv4 address, the same in its IPv4-mapped or NAT64 64:ff9b::/96 IPv6
 * form, or an IPv6 address) and, for an IPv6 address other than ::1, for
 * its group as well: its /64, since one host usually holds a whole /64 and
 * could otherwise open max_connections from addresses of its own; for a
 * link-local address, the link it came in on (every link's neighbours
 * share fe80::/64). Not thread-safe: the caller locks.
 */
#ifndef REDPULSE_PEERLIMIT_H
#define REDPULSE_PEERLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum peer_kind { PEER_ADDR = 1, PEER_NET64 };
struct peer_key {
    uint64_t hi, lo;     /* the address (IPv4: as ::ffff:a.b.c.d), or the group (lo 0) */
    enum peer_kind kind;
};
/* The keys a connection from sa counts under, into out: its address, then
 * its group for an IPv6 address. Returns how many (0: other families, not
 * counted). */
size_t peer_keys(const struct sockaddr *sa, struct peer_key out[2]);

/* The bytes naming the source the failed-login budget counts sa under,
 * the last of its peer_keys, into out: 8 for a group (an IPv6 /64, a
 * link-local address's link), 16 for an address (IPv4, as ::ffff:a.b.c.d,
 * whether it came as IPv4, IPv4-mapped or through NAT64; ::1); 0 for other
 * families. */
#define PEER_SOURCE_MAX 16
size_t peer_source_bytes(const struct sockaddr *sa, unsigned char out[PEER_SOURCE_MAX]);

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
