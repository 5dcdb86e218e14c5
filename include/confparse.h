/*
 * confparse.h - the pieces of configuration parsing that every section's
 * parser shares: located error reports, option tables, typed value checks.
 * config.c parses the core sections with them; other modules (alert rules,
 * advice, discovery) parse their own sections with the same helpers, so
 * every error in the file reads the same: JSON path, line:column, reason.
 */
#ifndef REDPULSE_CONFPARSE_H
#define REDPULSE_CONFPARSE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct jsonloc;

/* One parse: where positions come from and where errors go. */
struct conf_ctx {
    const struct jsonloc *loc;
    struct config_errors *errs;
    const char *origin;
};

/* Appends "path (line L, column C): message" to c->errs (key: locate the
 * node's key rather than its value). */
void conf_err(struct conf_ctx *c, const cJSON *node, int key, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

enum opt_type { OT_STRING, OT_DURATION, OT_SIZE, OT_UINT, OT_BOOL, OT_TLS, OT_LABELS };

struct conf_opt {
    const char *key;
    enum opt_type type;
    double min, max; /* OT_DURATION in ms, OT_SIZE/OT_UINT as is */
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The entry of table t[n] for key, or NULL. */
const struct conf_opt *conf_find_opt(const struct conf_opt *t, size_t n, const char *key);

/* Checks v against o (type and range) and stores it: OT_STRING in *s_out
 * (strdup'ed, the old value freed), OT_DURATION (ms), OT_SIZE and OT_UINT
 * in *u_out, OT_BOOL in *b_out. Returns 0, or -1 after reporting. */
int conf_take(struct conf_ctx *c, const struct conf_opt *o, const cJSON *v, const char *path, char **s_out,
              uint64_t *u_out, bool *b_out);

/* "a string", "a number", ... for messages. */
const char *conf_type_name(const cJSON *v);

/* dst = "a.b", or "a[0]" when b starts with '[' (truncated to n bytes). */
void conf_join_path(char *dst, size_t n, const char *a, const char *b);

#endif
