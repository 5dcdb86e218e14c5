/*
 * publish.c - the meeting point of the poller and the HTTP threads. One
 * mutex guards only pointer swaps and reference increments; rendering and
 * response assembly both happen outside it.
 */
#include "publish.h"

#include <pthread.h>
#include <stdatomic.h>
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

/* A frag's info moves on to newer polls' texts (registry_set_info): this
 * lock guards that pointer, for the swap and a reader's reference, nothing
 * else. */
static pthread_mutex_t info_lock = PTHREAD_MUTEX_INITIALIZER;

struct rstr *frag_info(const struct frag *g)
{
    pthread_mutex_lock(&info_lock);
    struct rstr *r = rstr_ref(g->info);
    pthread_mutex_unlock(&info_lock);
    return r;
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

/* A slot lives as long as some table holds it: a reader may still hold a
 * table whose slot was removed by a reload. */
struct slot {
    atomic_long refs;
    char *name;
    struct frag *frag; /* guarded by the registry lock */
    atomic_ulong scrapes; /* /scrape?target= reads of it */
};

struct table {
    atomic_long refs;
    size_t n;
    struct slot **slots;   /* in configuration order */
    size_t *by_name;       /* slot indices sorted by name */
    const char **names;    /* slots[i]->name, for views */
};

struct registry {
    pthread_mutex_t lock;  /* guards tab (the pointer) and every slot's frag */
    struct table *tab;
    void (*on_read)(void *arg); /* set while no reader runs */
    void *on_read_arg;
    atomic_ulong scrapes; /* /metrics reads */
};

void registry_on_read(struct registry *r, void (*fn)(void *arg), void *arg)
{
    r->on_read = fn;
    r->on_read_arg = arg;
}

static void slot_unref(struct slot *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    free(s->name);
    frag_unref(s->frag);
    free(s);
}

static void table_unref(struct table *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    for (size_t i = 0; i < t->n; i++)
        slot_unref(t->slots[i]);
    free(t->slots);
    free(t->by_name);
    free(t->names);
    free(t);
}

static _Thread_local const struct table *sort_tab; /* qsort has no context argument */
static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(sort_tab->slots[*(const size_t *)a]->name, sort_tab->slots[*(const size_t *)b]->name);
}

/* A table of n slots; slots[] filled by the caller, then table_index(). */
static struct table *table_new(size_t n)
{
    struct table *t = xcalloc(1, sizeof *t);
    atomic_init(&t->refs, 1);
    t->n = n;
    t->slots = xcalloc(n ? n : 1, sizeof *t->slots);
    t->by_name = xcalloc(n ? n : 1, sizeof *t->by_name);
    t->names = xcalloc(n ? n : 1, sizeof *t->names);
    return t;
}

static void table_index(struct table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        t->by_name[i] = i;
        t->names[i] = t->slots[i]->name;
    }
    sort_tab = t;
    qsort(t->by_name, t->n, sizeof *t->by_name, cmp_by_name);
    sort_tab = NULL;
}

static long table_find(const struct table *t, const char *name)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(name, t->slots[t->by_name[mid]]->name);
        if (c == 0)
            return (long)t->by_name[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

static struct slot *slot_new(const char *name, struct frag *f)
{
    struct slot *s = xcalloc(1, sizeof *s);
    atomic_init(&s->refs, 1);
    s->name = xstrdup(name);
    s->frag = f;
    return s;
}

struct registry *registry_new(const char *const *names, size_t n)
{
    struct registry *r = xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    r->tab = table_new(n);
    for (size_t i = 0; i < n; i++)
        r->tab->slots[i] = slot_new(names[i], NULL);
    table_index(r->tab);
    return r;
}

void registry_free(struct registry *r)
{
    if (!r)
        return;
    table_unref(r->tab);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

void registry_set(struct registry *r, const char *const *names, struct frag **frags, size_t n)
{
    struct table *old = r->tab; /* only this thread replaces it: no lock to read */
    struct table *t = table_new(n);
    for (size_t i = 0; i < n; i++) {
        long k = table_find(old, names[i]);
        if (k >= 0) {
            t->slots[i] = old->slots[k];
            atomic_fetch_add(&t->slots[i]->refs, 1);
            frag_unref(frags[i]);
        } else {
            t->slots[i] = slot_new(names[i], frags[i]);
        }
    }
    table_index(t);
    pthread_mutex_lock(&r->lock);
    r->tab = t;
    pthread_mutex_unlock(&r->lock);
    table_unref(old);
}

size_t registry_size(const struct registry *r) { return r->tab->n; }

long registry_find(struct registry *r, const char *name) { return table_find(r->tab, name); }

void registry_publish(struct registry *r, size_t i, struct frag *f)
{
    struct slot *s = r->tab->slots[i];
    pthread_mutex_lock(&r->lock);
    struct frag *old = s->frag;
    s->frag = f;
    pthread_mutex_unlock(&r->lock);
    frag_unref(old);
}

void registry_set_info(struct registry *r, size_t i, struct rstr *info)
{
    struct frag *f = r->tab->slots[i]->frag; /* only this thread replaces it */
    if (!f || f->info == info)
        return;
    rstr_ref(info);
    pthread_mutex_lock(&info_lock);
    struct rstr *old = f->info;
    f->info = info;
    pthread_mutex_unlock(&info_lock);
    rstr_unref(old);
}

void registry_relabel(struct registry *r, size_t i, const char *prefix)
{
    const struct frag *g = r->tab->slots[i]->frag; /* only this thread replaces it */
    if (!g)
        return;
    size_t nfam = (size_t)FAM_COUNT + 1;
    uint32_t *off = xcalloc(nfam, sizeof *off);
    for (size_t f = 0; f < nfam; f++)
        off[f] = (uint32_t)frag_off(g, (int)f);
    /* lines are counted once per family: the expanded size moves by the
     * prefix difference once per line */
    size_t lines = 0;
    for (const char *p = g->tails; *p; p++)
        lines += *p == '\n';
    size_t plen = strlen(prefix);
    size_t text_len = g->text_len - lines * g->prefix_len + lines * plen;
    size_t prom_len = off[FAM_COUNT];
    struct buf b = BUF_INIT;
    buf_append(&b, g->tails, prom_len);
    buf_append(&b, g->json_head, g->json_head_len);
    struct rstr *info = frag_info(g);
    struct frag *f = frag_new(b.p, prom_len, g->json_head_len, off, text_len, prefix, info, g->polled);
    rstr_unref(info);
    buf_free(&b);
    free(off);
    registry_publish(r, i, f);
}

void registry_view_take(struct registry *r, struct registry_view *v)
{
    if (r->on_read)
        r->on_read(r->on_read_arg);
    pthread_mutex_lock(&r->lock);
    struct table *t = r->tab;
    atomic_fetch_add(&t->refs, 1);
    v->frags = xcalloc(t->n ? t->n : 1, sizeof *v->frags); /* under the lock: rare and small */
    for (size_t i = 0; i < t->n; i++)
        v->frags[i] = frag_ref(t->slots[i]->frag);
    pthread_mutex_unlock(&r->lock);
    v->n = t->n;
    v->names = t->names;
    v->table = t;
}

void registry_view_release(struct registry_view *v)
{
    for (size_t i = 0; i < v->n; i++)
        frag_unref(v->frags[i]);
    free(v->frags);
    table_unref(v->table);
    memset(v, 0, sizeof *v);
}

bool registry_has_name(struct registry *r, const char *name)
{
    pthread_mutex_lock(&r->lock);
    bool has = table_find(r->tab, name) >= 0;
    pthread_mutex_unlock(&r->lock);
    return has;
}

struct frag *registry_get_name(struct registry *r, const char *name, bool scrape)
{
    if (r->on_read)
        r->on_read(r->on_read_arg);
    struct frag *f = NULL;
    pthread_mutex_lock(&r->lock);
    long i = table_find(r->tab, name);
    if (i >= 0) {
        f = frag_ref(r->tab->slots[i]->frag);
        if (scrape)
            atomic_fetch_add_explicit(&r->tab->slots[i]->scrapes, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&r->lock);
    return f;
}

void registry_note_scrape(struct registry *r)
{
    atomic_fetch_add_explicit(&r->scrapes, 1, memory_order_relaxed);
}

unsigned long registry_scrapes(struct registry *r, size_t i)
{
    return atomic_load_explicit(&r->scrapes, memory_order_relaxed) +
           atomic_load_explicit(&r->tab->slots[i]->scrapes, memory_order_relaxed); /* the table: this thread's */
}

bool registry_all_polled(struct registry *r)
{
    bool all = true;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->tab->n && all; i++)
        all = r->tab->slots[i]->frag && r->tab->slots[i]->frag->polled;
    pthread_mutex_unlock(&r->lock);
    return all;
}
