/*
 * prom.h - Prometheus text exposition (format 0.0.4): the family table
 * (fields.def then families.def, in output order) and the writers that
 * escape label values correctly.
 */
#ifndef REDPULSE_PROM_H
#define REDPULSE_PROM_H

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

/* Name of a family ("redis_up"); "" for derived figures that are JSON-only. */
const char *prom_family_name(enum prom_family f);
/* The "# HELP ...\n# TYPE ...\n" lines of a family (static storage). */
const char *prom_family_header(enum prom_family f, size_t *len);

/* Appends s as an escaped label value (\\, \" and \n escaped), no quotes. */
void prom_escape(struct buf *b, const char *s);
/* Writes the label set every series of an instance carries:
 *   target="NAME",k1="v1",...   (no braces) */
void prom_label_prefix(struct buf *b, const char *target, const struct label *labels, size_t n);
/* Appends one sample line:
 *   metric[suffix]{prefix[,k="v"...]} value\n
 * kv is NULL or a NULL-terminated list of name, value pairs (values escaped
 * here). prefix may be "" for series without instance labels. */
void prom_line(struct buf *b, const char *metric, const char *suffix, const char *prefix,
               const char *const *kv, double v);

/* Same with a value already formatted as a Prometheus float. */
void prom_line_str(struct buf *b, const char *metric, const char *suffix, const char *prefix,
                   const char *const *kv, const char *value);

#endif
