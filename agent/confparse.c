/*
 * confparse.c - shared helpers of the configuration parsers: located error
 * reports and typed, range-checked values from an option table.
 */
#include "confparse.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "jsonloc.h"
#include "util.h"

void conf_err(struct conf_ctx *c, const cJSON *node, int key, const char *path, const char *fmt, ...)
{
    unsigned line, col;
    struct buf *t = &c->errs->text;
    buf_puts(t, path && *path ? path : "(top level)");
    if (node && jsonloc_find(c->loc, node, key, &line, &col) == 0)
        buf_printf(t, " (line %u, column %u)", line, col);
    buf_puts(t, ": ");
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(t, fmt, ap);
    va_end(ap);
    buf_putc(t, '\n');
    c->errs->count++;
}

const struct conf_opt *conf_find_opt(const struct conf_opt *t, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].key, key) == 0)
            return &t[i];
    return NULL;
}

/* Out of line so the compiler does not reason about the sizes of the
 * callers' buffers. */
void __attribute__((noinline)) conf_join_path(char *dst, size_t n, const char *a, const char *b)
{
    snprintf(dst, n, "%s%s%s", a, *a && *b != '[' ? "." : "", b);
    /* a key from the file goes into messages: one clean line */
    utf8_clean(dst, strlen(dst), '?');
}

const char *conf_type_name(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    return "an object";
}

int conf_take(struct conf_ctx *c, const struct conf_opt *o, const cJSON *v, const char *path, char **s_out,
              uint64_t *u_out, bool *b_out)
{
    const char *why;
    switch (o->type) {
    case OT_STRING:
        if (!cJSON_IsString(v)) {
            conf_err(c, v, 0, path, "expected a string, got %s", conf_type_name(v));
            return -1;
        }
        free(*s_out);
        *s_out = xstrdup(v->valuestring);
        return 0;
    case OT_BOOL:
        if (!cJSON_IsBool(v)) {
            conf_err(c, v, 0, path, "expected true or false, got %s", conf_type_name(v));
            return -1;
        }
        *b_out = cJSON_IsTrue(v);
        return 0;
    case OT_DURATION: {
        uint64_t ms;
        if (!cJSON_IsString(v)) {
            conf_err(c, v, 0, path, "expected a duration string such as \"10s\", got %s", conf_type_name(v));
            return -1;
        }
        if (parse_duration_ms(v->valuestring, &ms, &why) < 0) {
            conf_err(c, v, 0, path, "bad duration \"%s\": %s", v->valuestring, why);
            return -1;
        }
        if (ms < o->min || ms > o->max) {
            conf_err(c, v, 0, path, "duration \"%s\" out of range (%.0fms to %.0fms)", v->valuestring, o->min,
                     o->max);
            return -1;
        }
        *u_out = ms;
        return 0;
    }
    case OT_SIZE:
    case OT_UINT:
        /* range first: converting a negative or huge double to an integer is UB */
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 9e15) ||
            v->valuedouble != floor(v->valuedouble)) {
            conf_err(c, v, 0, path, "expected a whole number, got %s", conf_type_name(v));
            return -1;
        }
        if (v->valuedouble < o->min || v->valuedouble > o->max) {
            conf_err(c, v, 0, path, "%.0f out of range (%.0f to %.0f)", v->valuedouble, o->min, o->max);
            return -1;
        }
        *u_out = (uint64_t)v->valuedouble;
        return 0;
    default:
        return -1;
    }
}
