/*
 * peerlimit.c - connection counts per source in an open-addressing table
 * (linear probing, deletion by backward shift: no tombstones, so a flood
 * of short connections from ever new sources cannot fill it with dead
 * slots). The slot comes from a keyed hash: sources are chosen by the
 * peer, and keys that collide on purpose would make every lookup linear.
 */
#include "peerlimit.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "info.h"
#include "util.h"

static uint64_t be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* An IPv4 address's key: its IPv4-mapped IPv6 form (::ffff:a.b.c.d), so
 * that no IPv6 address but that one shares it. */
static struct peer_key v4_key(const unsigned char b[4])
{
    uint64_t v4 = (uint64_t)b[0] << 24 | (uint64_t)b[1] << 16 | (uint64_t)b[2] << 8 | b[3];
    return (struct peer_key){0, 0xffff00000000ull | v4, PEER_ADDR};
}

size_t peer_keys(const struct sockaddr *sa, struct peer_key out[2])
{
    if (sa && sa->sa_family == AF_INET) {
        out[0] = v4_key((const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr);
        return 1;
    }
    if (!sa || sa->sa_family != AF_INET6)
        return 0;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    const struct in6_addr *a6 = &s6->sin6_addr;
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b}; /* 64:ff9b::/96, RFC 6052 */
    if (IN6_IS_ADDR_V4MAPPED(a6) || memcmp(a6->s6_addr, nat64, 12) == 0) {
        out[0] = v4_key(a6->s6_addr + 12); /* an IPv4 client, translated or not */
        return 1;
    }
    uint64_t hi = be64(a6->s6_addr), lo = be64(a6->s6_addr + 8);
    out[0] = (struct peer_key){hi, lo, PEER_ADDR};
    if (IN6_IS_ADDR_LOOPBACK(a6))
        return 1;
    /* link-local: every link's neighbours are in fe80::/64; the group is
     * the link (the scope id, the interface it came in on) */
    out[1] = (struct peer_key){IN6_IS_ADDR_LINKLOCAL(a6) ? 0xfe80000000000000ull | s6->sin6_scope_id : hi, 0,
                               PEER_NET64};
    return 2;
}

size_t peer_source_bytes(const struct sockaddr *sa, unsigned char out[PEER_SOURCE_MAX])
{
    struct peer_key k[2];
    size_t n = peer_keys(sa, k);
    if (!n)
        return 0;
    const struct peer_key *src = &k[n - 1]; /* the group where there is one */
    for (int i = 0; i < 8; i++) {
        out[i] = (unsigned char)(src->hi >> (56 - 8 * i));
        out[8 + i] = (unsigned char)(src->lo >> (56 - 8 * i));
    }
    return src->kind == PEER_NET64 ? 8 : 16; /* a group's lo is 0: its length tells it from an address */
}

struct slot {
    struct peer_key k; /* kind 0: free */
    unsigned n;
};

struct peerlimit {
    struct slot *t;
    size_t mask, used, max;
    uint64_t seed[2];
};

struct peerlimit *peerlimit_new(size_t max_keys, const uint64_t *seed)
{
    struct peerlimit *l = xcalloc(1, sizeof *l);
    size_t cap = 16;
    while (cap < 2 * max_keys + 2)
        cap *= 2;
    l->t = xcalloc(cap, sizeof *l->t);
    l->mask = cap - 1;
    l->max = max_keys;
    if (seed) {
        l->seed[0] = seed[0];
        l->seed[1] = seed[1];
    } else {
        info_random_key(l->seed);
    }
    return l;
}

void peerlimit_free(struct peerlimit *l)
{
    if (!l)
        return;
    free(l->t);
    free(l);
}

static size_t home(const struct peerlimit *l, const struct peer_key *k)
{
    uint64_t w[3] = {k->hi, k->lo, (uint64_t)k->kind};
    return (size_t)info_siphash(l->seed, (const char *)w, sizeof w, 1, 3) & l->mask;
}

static bool same(const struct peer_key *a, const struct peer_key *b)
{
    return a->hi == b->hi && a->lo == b->lo && a->kind == b->kind;
}

/* k's slot, or the free slot ending its probe sequence. */
static size_t find(const struct peerlimit *l, const struct peer_key *k)
{
    size_t i = home(l, k);
    while (l->t[i].k.kind && !same(&l->t[i].k, k))
        i = (i + 1) & l->mask;
    return i;
}

unsigned peerlimit_count(const struct peerlimit *l, const struct peer_key *k)
{
    return l->t[find(l, k)].n;
}

unsigned peerlimit_add(struct peerlimit *l, const struct peer_key *k)
{
    size_t i = find(l, k);
    if (!l->t[i].k.kind) {
        if (l->used >= l->max)
            return 0;
        l->t[i].k = *k;
        l->used++;
    }
    return ++l->t[i].n;
}

void peerlimit_del(struct peerlimit *l, const struct peer_key *k)
{
    size_t i = find(l, k);
    if (!l->t[i].k.kind || --l->t[i].n)
        return;
    /* backward shift: move up each later entry of the run that may sit
     * at or before the hole, so every probe sequence stays unbroken */
    l->used--;
    for (size_t j = (i + 1) & l->mask; l->t[j].k.kind; j = (j + 1) & l->mask) {
        size_t h = home(l, &l->t[j].k);
        /* j's entry may move to i unless its home lies cyclically in (i, j] */
        if (((j - h) & l->mask) >= ((j - i) & l->mask)) {
            l->t[i] = l->t[j];
            i = j;
        }
    }
    memset(&l->t[i], 0, sizeof l->t[i]);
}
