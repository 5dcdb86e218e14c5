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
#include <sys/random.h>
#include <time.h>

#include "info.h"
#include "util.h"

size_t peer_source_bytes(const struct sockaddr *sa, unsigned char out[8])
{
    if (sa && sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa && sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            memcpy(out, a6->s6_addr + 12, 4);
            return 4;
        }
        memcpy(out, a6->s6_addr, 8);
        return 8;
    }
    return 0;
}

uint64_t peer_source_key(const struct sockaddr *sa)
{
    unsigned char b[8];
    size_t n = peer_source_bytes(sa, b);
    uint64_t k = 0;
    for (size_t i = 0; i < n; i++)
        k = k << 8 | b[i];
    /* the top bits tag an IPv4 source (ffff:0:...), and ::/64 (::1, the
     * IPv4-compatible forms) whose bytes make 0 (fffe::): both lie in
     * ff00::/8, multicast, never a source address */
    if (n == 4)
        return 0xffff000000000000ull | k;
    return n && !k ? 0xfffe000000000000ull : k;
}

struct slot {
    uint64_t key; /* 0: free */
    unsigned n;
};

struct peerlimit {
    struct slot *t;
    size_t mask, used, max;
    uint64_t seed[2];
};

struct peerlimit *peerlimit_new(size_t max_sources)
{
    struct peerlimit *l = xcalloc(1, sizeof *l);
    size_t cap = 16;
    while (cap < 2 * max_sources + 2)
        cap *= 2;
    l->t = xcalloc(cap, sizeof *l->t);
    l->mask = cap - 1;
    l->max = max_sources;
    if (getrandom(l->seed, sizeof l->seed, GRND_NONBLOCK) != (ssize_t)sizeof l->seed) {
        l->seed[0] = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull;
        l->seed[1] = (uint64_t)(uintptr_t)l * 0xc2b2ae3d27d4eb4full;
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

static size_t home(const struct peerlimit *l, uint64_t key)
{
    return (size_t)info_siphash(l->seed, (const char *)&key, sizeof key, 1, 3) & l->mask;
}

/* key's slot, or the free slot ending its probe sequence. */
static size_t find(const struct peerlimit *l, uint64_t key)
{
    size_t i = home(l, key);
    while (l->t[i].key && l->t[i].key != key)
        i = (i + 1) & l->mask;
    return i;
}

unsigned peerlimit_count(const struct peerlimit *l, uint64_t key)
{
    return key ? l->t[find(l, key)].n : 0;
}

unsigned peerlimit_add(struct peerlimit *l, uint64_t key)
{
    size_t i = find(l, key);
    if (!l->t[i].key) {
        if (l->used >= l->max)
            return 0;
        l->t[i].key = key;
        l->used++;
    }
    return ++l->t[i].n;
}

void peerlimit_del(struct peerlimit *l, uint64_t key)
{
    size_t i = find(l, key);
    if (!l->t[i].key || --l->t[i].n)
        return;
    /* backward shift: move up each later entry of the run that may sit
     * at or before the hole, so every probe sequence stays unbroken */
    l->used--;
    for (size_t j = (i + 1) & l->mask; l->t[j].key; j = (j + 1) & l->mask) {
        size_t h = home(l, l->t[j].key);
        /* j's entry may move to i unless its home lies cyclically in (i, j] */
        if (((j - h) & l->mask) >= ((j - i) & l->mask)) {
            l->t[i] = l->t[j];
            i = j;
        }
    }
    l->t[i] = (struct slot){0, 0};
}
