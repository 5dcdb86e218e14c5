/*
 * prom.h - Prometheus text exposition (format 0.0.4): the family table
 * (fields.def then families.def, in output order) and the writers that
 * escape label values correctly.
 */
#ifndef REDPULSE_PROM_H
#define REDPULSE_PROM_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"

enum prom_family {
#define F(id, key, metric, type, conv, help) FAM_##id,
#include "fields.def"
#undef F
#define D(id, group, json, metric, help) FAM_D_##id,
#include "derived.def"
#undef D
#define P(id, name, kind, metric, help) FAM_P_##id,
#include "cfgparams.def"
#undef P
#define E(id, name, type, help) FAM_##id,
#include "families.def"
#undef E
    FAM_COUNT
};

/* Label names redpulse writes (labels.def): renderers write PL(CMD), never
 * a literal, so this list is the one place a label name is defined. */
enum prom_label {
#define L(id, name) PL_##id,
#include "labels.def"
#undef L
    PL_COUNT
};
extern const char *const prom_label_names[PL_COUNT];
#define PL(id) (prom_label_names[PL_##id])
/* True when name is a label redpulse writes or Prometheus sets: such a name
 * cannot be an instance's own label. */
bool prom_label_reserved(const char *name);

/* Name of a family ("redis_up"); "" for derived figures that are JSON-only. */
const char *prom_family_name(enum prom_family f);
/* strlen(prom_family_name(f)), from a table built once. */
size_t prom_family_name_len(enum prom_family f);
/* The "# HELP ...\n# TYPE ...\n" lines of a family (static storage). */
const char *prom_family_header(enum prom_family f, size_t *len);

/* Appends s as an escaped label value (\\, \" and \n escaped), no quotes. */
void prom_escape(struct buf *b, const char *s);
/* Writes the label set every series of an instance carries:
 *   target="NAME",k1="v1",...   (no braces) */
void prom_label_prefix(struct buf *b, const char *target, const struct label *labels, size_t n);
/* Sample lines are kept in tail form: without the metric name and the
 * instance's label prefix, which every line of one family of one instance
 * shares and which are most of a line's bytes. A tail line is
 *   [suffix]{[,k="v"...]} value\n
 * and prom_expand() writes it out as
 *   metric[suffix]{prefix[,k="v"...]} value\n */
struct prom_tails {
    struct buf *b;
    size_t lines; /* tail lines written: what expanding them adds is known without a scan */
};
/* Appends one tail line to t->b and counts it. kv is NULL or a
 * NULL-terminated list of name, value pairs (values escaped here; the suffix
 * and names must not hold '{' or '\n'). */
void prom_tail(struct prom_tails *t, const char *suffix, const char *const *kv, double v);
/* Same with a value already formatted as a Prometheus float. */
void prom_tail_str(struct prom_tails *t, const char *suffix, const char *const *kv, const char *value);
/* Appends the tail lines tail[0..len) as full sample lines of metric (mlen
 * bytes) with the label prefix (plen bytes; when 0, a line without other
 * labels has no braces). Writes at most len + lines * (mlen + plen) bytes. */
void prom_expand(struct buf *out, const char *metric, size_t mlen, const char *prefix, size_t plen,
                 const char *tail, size_t len);

#endif
