/*
 * publish.c - the meeting point of the poller and the HTTP threads. One
 * mutex guards only pointer swaps and reference increments; rendering and
 * response assembly both happen outside it.
 */
#include "publish.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

struct rstr *rstr_new(const char *s, size_t len)
{
    struct rstr *r = xmalloc(sizeof *r + len + 1);
    atomic_init(&r->refs, 1);
    r->len = len;
    if (s)
        memcpy(r->data, s, len);
    r->data[len] = '\0';
    return r;
}

struct rstr *rstr_ref(struct rstr *r)
{
    if (r)
        atomic_fetch_add(&r->refs, 1);
    return r;
}

void rstr_unref(struct rstr *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1)
        free(r);
}

struct frag *frag_ref(struct frag *f)
{
    if (f)
        atomic_fetch_add(&f->refs, 1);
    return f;
}

void frag_unref(struct frag *f)
{
    if (!f || atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    rstr_unref(f->info);
    free(f);
}

struct frag *frag_new(const char *text, size_t prom_len, size_t json_len, const uint32_t *off, size_t text_len,
                      const char *prefix, struct rstr *info, bool polled)
{
    bool wide = prom_len > UINT16_MAX;
    size_t offsz = (FAM_COUNT + 1) * (wide ? sizeof(uint32_t) : sizeof(uint16_t));
    size_t plen = strlen(prefix);
    struct frag *f = xmalloc(sizeof *f + offsz + prom_len + json_len + plen + 3);
    char *p = (char *)(f + 1);
    atomic_init(&f->refs, 1);
    f->fam_off = p;
    f->wide = wide;
    if (wide) {
        memcpy(p, off, offsz);
    } else {
        uint16_t *o = (uint16_t *)p;
        for (int i = 0; i <= FAM_COUNT; i++)
            o[i] = (uint16_t)off[i];
    }
    p += offsz;
    memcpy(p, text, prom_len);
    p[prom_len] = '\0';
    f->tails = p;
    p += prom_len + 1;
    memcpy(p, text + prom_len, json_len);
    p[json_len] = '\0';
    f->json_head = p;
    f->json_head_len = json_len;
    p += json_len + 1;
    memcpy(p, prefix, plen + 1);
    f->prefix = p;
    f->prefix_len = plen;
    f->text_len = text_len;
    f->info = rstr_ref(info);
    f->polled = polled;
    return f;
}

void frag_expand(const struct frag *g, int f, struct buf *out)
{
    size_t a = frag_off(g, f), z = frag_off(g, f + 1);
    if (a < z)
        prom_expand(out, prom_family_name((enum prom_family)f), prom_family_name_len((enum prom_family)f),
                    g->prefix, g->prefix_len, g->tails + a, z - a);
}

struct slot {
    char *name;
    struct frag *frag;
};

struct registry {
    pthread_mutex_t lock;
    struct slot *slots;  /* in configuration order */
    size_t n;
    size_t *by_name;     /* slot indices sorted by name */
};

static const struct registry *sort_reg; /* qsort has no context argument */
static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(sort_reg->slots[*(const size_t *)a].name, sort_reg->slots[*(const size_t *)b].name);
}

struct registry *registry_new(const char *const *names, size_t n)
{
    struct registry *r = xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    r->n = n;
    r->slots = xcalloc(n, sizeof *r->slots);
    r->by_name = xcalloc(n, sizeof *r->by_name);
    for (size_t i = 0; i < n; i++) {
        r->slots[i].name = xstrdup(names[i]);
        r->by_name[i] = i;
    }
    sort_reg = r; /* called once at startup, before any thread exists */
    qsort(r->by_name, n, sizeof *r->by_name, cmp_by_name);
    sort_reg = NULL;
    return r;
}

void registry_free(struct registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->slots[i].name);
        frag_unref(r->slots[i].frag);
    }
    free(r->slots);
    free(r->by_name);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

size_t registry_size(const struct registry *r) { return r->n; }

long registry_find(const struct registry *r, const char *name)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(name, r->slots[r->by_name[mid]].name);
        if (c == 0)
            return (long)r->by_name[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

void registry_publish(struct registry *r, size_t i, struct frag *f)
{
    pthread_mutex_lock(&r->lock);
    struct frag *old = r->slots[i].frag;
    r->slots[i].frag = f;
    pthread_mutex_unlock(&r->lock);
    frag_unref(old);
}

void registry_snapshot(struct registry *r, struct frag **out)
{
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n; i++)
        out[i] = frag_ref(r->slots[i].frag);
    pthread_mutex_unlock(&r->lock);
}

struct frag *registry_get(struct registry *r, size_t i)
{
    pthread_mutex_lock(&r->lock);
    struct frag *f = frag_ref(r->slots[i].frag);
    pthread_mutex_unlock(&r->lock);
    return f;
}

bool registry_all_polled(struct registry *r)
{
    bool all = true;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n && all; i++)
        all = r->slots[i].frag && r->slots[i].frag->polled;
    pthread_mutex_unlock(&r->lock);
    return all;
}
