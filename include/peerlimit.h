/*
 * peerlimit.h - open connections counted per source, for
 * http.max_connections_per_ip: a source is an IPv4 address (IPv4-mapped
 * IPv6 ones too) or the /64 prefix of an IPv6 address. One host usually
 * holds a whole /64, so a count per /128 would let it open max_connections
 * from addresses of its own (the password-failure budget, auth.c, counts
 * the same way). Not thread-safe: the caller locks.
 */
#ifndef REDPULSE_PEERLIMIT_H
#define REDPULSE_PEERLIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The bytes naming sa's source into out: 4 (IPv4) or 8 (an IPv6 /64);
 * 0 for other families (not counted). */
size_t peer_source_bytes(const struct sockaddr *sa, unsigned char out[8]);
/* The same as one number, never 0 for a counted source; 0 otherwise. */
uint64_t peer_source_key(const struct sockaddr *sa);

struct peerlimit;

/* A table for at most max_sources sources open at once (more are refused
 * by peerlimit_add). Never NULL. */
struct peerlimit *peerlimit_new(size_t max_sources);
void peerlimit_free(struct peerlimit *l);
/* Connections open from key (0: none). */
unsigned peerlimit_count(const struct peerlimit *l, uint64_t key);
/* Counts one more from key (not 0) and returns the new count; 0 when the
 * table is full (the connection is to be refused, and not counted). */
unsigned peerlimit_add(struct peerlimit *l, uint64_t key);
/* Counts one fewer from key, which peerlimit_add counted. */
void peerlimit_del(struct peerlimit *l, uint64_t key);

#endif
