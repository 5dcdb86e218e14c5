/*
 * publish.h - where the poller hands rendered output to the HTTP threads.
 *
 * A frag is one instance's output from one poll: Prometheus sample lines in
 * tail form (prom.h) cut into per-family byte ranges, the instance's label
 * prefix, and a JSON object. Frags are immutable once published, but for
 * their INFO text (which moves on to newer polls', registry_set_info), and
 * reference-counted, so an HTTP thread takes references under a short lock
 * and assembles its response without holding anything the poller needs. A
 * scrape is a copy of bytes already rendered, with the family name and the
 * label prefix put back on each line (prom_expand).
 */
#ifndef REDPULSE_PUBLISH_H
#define REDPULSE_PUBLISH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prom.h"

/* An immutable reference-counted string (an INFO text, shared by the
 * poller and frags). */
struct rstr {
    atomic_long refs;
    size_t len;
    char data[]; /* NUL-terminated */
};

/* Makes an rstr holding a copy of s[0..len) (s NULL: len bytes for the
 * caller to fill before sharing it); refs = 1. */
struct rstr *rstr_new(const char *s, size_t len);
struct rstr *rstr_ref(struct rstr *r);  /* NULL-safe */
void rstr_unref(struct rstr *r);        /* NULL-safe */

/* One allocation holds the frag, its family offsets, both texts and the
 * label prefix. */
struct frag {
    atomic_long refs;
    const char *tails;             /* all families of this instance in tail form, NUL-terminated */
    const char *prefix;            /* label prefix, NUL-terminated */
    size_t prefix_len;
    size_t text_len;               /* bytes of all families once expanded */
    const char *json_head;         /* JSON object text up to (excluding) "sections" */
    size_t json_head_len;
    struct rstr *info;             /* raw text of the last good INFO (shared); may be NULL;
                                    * read it with frag_info(): the one field
                                    * that changes after publishing (registry_set_info).
                                    * Its JSON "sections" are rendered on request: the
                                    * API is read rarely, polls happen all the time. */
    const void *fam_off;           /* FAM_COUNT + 1 offsets: uint16_t, or uint32_t when wide */
    bool wide;                     /* tails are 64 KB or more */
    bool polled;                   /* at least one poll finished */
};

/* Family f of frag g is g->tails[frag_off(g, f) .. frag_off(g, f + 1)). */
static inline size_t frag_off(const struct frag *g, int f)
{
    return g->wide ? ((const uint32_t *)g->fam_off)[f] : ((const uint16_t *)g->fam_off)[f];
}

/* A frag of prom_len + json_len text bytes, copied from text (tail lines
 * first, then the JSON head), with the offsets off[FAM_COUNT + 1], the size
 * of its families once expanded (text_len) and a copy of the label prefix;
 * refs = 1. */
struct frag *frag_new(const char *text, size_t prom_len, size_t json_len, const uint32_t *off, size_t text_len,
                      const char *prefix, struct rstr *info, bool polled);
/* Appends family f of frag g as Prometheus sample lines. */
void frag_expand(const struct frag *g, int f, struct buf *out);
struct frag *frag_ref(struct frag *f);  /* NULL-safe */
void frag_unref(struct frag *f);        /* NULL-safe; frees at zero */
/* g's INFO text, with a reference for the caller (rstr_unref it), or NULL.
 * Any thread. */
struct rstr *frag_info(const struct frag *g);

struct registry;

/* The registry's slots, in configuration order, are an immutable,
 * reference-counted table; the loop thread replaces the whole table when
 * instances come and go (registry_set), and a reader keeps the table it
 * started with, so a scrape sees either the old set or the new one. Frags
 * inside a slot are replaced by every poll. */

/* A registry of n named slots (names copied; must be unique). */
struct registry *registry_new(const char *const *names, size_t n);
void registry_free(struct registry *r);
/* Replaces the set of slots in one step: slot i of the new table is named
 * names[i]. A name already present keeps its slot and frag; a new name gets
 * frags[i] (ownership taken; NULL: nothing published yet); frags[i] of a kept
 * name is unref'd. Slots not named any more vanish from later snapshots.
 * Loop thread only. */
void registry_set(struct registry *r, const char *const *names, struct frag **frags, size_t n);
/* Slots in the current table. Loop thread only (readers use a view). */
size_t registry_size(const struct registry *r);
/* Index of a slot by name in the current table, or -1. Loop thread only
 * (the index changes with registry_set). */
long registry_find(struct registry *r, const char *name);
/* Replaces slot i's frag; takes ownership of f. Loop thread only. */
void registry_publish(struct registry *r, size_t i, struct frag *f);
/* Moves slot i's published frag on to info, the text of a newer good poll
 * (referenced; the frag's old text unref'd): a poll waiting for its render
 * (poller.c, "Rendered when read") then keeps one INFO text, not two, and
 * the JSON API's "sections" are the newest poll's. Nothing when the slot
 * has no frag. Loop thread only. */
void registry_set_info(struct registry *r, size_t i, struct rstr *info);
/* Republishes slot i's frag with a new label prefix (the Prometheus lines
 * follow at once; the JSON object at the next poll). Loop thread only. */
void registry_relabel(struct registry *r, size_t i, const char *prefix);

/* Sets what a reader calls first (registry_view_take, registry_get_name):
 * the poller's, which has the polls not yet rendered rendered before the
 * reader goes on (poller.c, "Rendered when read"). fn(arg) must return at
 * once on the thread that renders. NULL: none. Before readers start or
 * after they stop. */
void registry_on_read(struct registry *r, void (*fn)(void *arg), void *arg);

/* A reader's consistent copy: one table and a reference to every slot's frag
 * (NULL where nothing is published yet), all taken under one lock hold.
 * names[i] stays valid until registry_view_release. */
struct registry_view {
    size_t n;
    const char *const *names;
    struct frag **frags;
    void *table; /* the table held */
};
/* Fills v (after the on_read call); any thread. Release it with
 * registry_view_release. */
void registry_view_take(struct registry *r, struct registry_view *v);
void registry_view_release(struct registry_view *v);
/* Whether a slot is named name (no on_read call). Any thread. */
bool registry_has_name(struct registry *r, const char *name);
/* Reference to the frag of the slot named name, or NULL (unknown name or
 * nothing published yet), after the on_read call. scrape: the read is of
 * Prometheus text (/scrape?target=) and is counted for the slot, after which
 * the poller asks for commandstats at its next poll (poller.h). Any thread. */
struct frag *registry_get_name(struct registry *r, const char *name, bool scrape);
/* Counts a read of Prometheus text of every slot (/metrics), as
 * registry_get_name's scrape does for one. Any thread. */
void registry_note_scrape(struct registry *r);
/* The reads counted for slot i so far. Loop thread only. */
unsigned long registry_scrapes(struct registry *r, size_t i);
/* True when every slot has a frag with polled set. Any thread. */
bool registry_all_polled(struct registry *r);

#endif
