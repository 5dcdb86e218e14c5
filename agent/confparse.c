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
    /* path and message quote keys and values from the file: one clean line
     * (a newline in a value split one error into two, the second with no
     * place; ESC and bytes that are not UTF-8 reached terminals as is).
     * The path as conf_join_path cleans it ('?'), whoever built it. */
    struct buf m = BUF_INIT;
    buf_puts(&m, path && *path ? path : "(top level)");
    utf8_clean(m.p, m.len, '?');
    buf_append(t, m.p, m.len);
    if (node && jsonloc_find(c->loc, node, key, &line, &col) == 0)
        buf_printf(t, " (line %u, column %u)", line, col);
    buf_puts(t, ": ");
    m.len = 0;
    m.p[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&m, fmt, ap);
    va_end(ap);
    utf8_clean(m.p, m.len, ' ');
    buf_append(t, m.p, m.len);
    buf_free(&m);
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
    case OT_UINT: {
        /* say which way the number is wrong: all of these read "expected a
         * whole number, got a number". Ranges are checked on the double,
         * before any conversion (a negative or huge double to an integer is
         * UB); the tables' bounds are far below 2^53. */
        double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
        if (!cJSON_IsNumber(v))
            conf_err(c, v, 0, path, "expected a whole number, got %s", conf_type_name(v));
        else if (!isfinite(d))
            conf_err(c, v, 0, path, "not a finite number (too large: at most %.0f)", o->max);
        else if (d < 0)
            conf_err(c, v, 0, path, "negative (%.15g): expected a whole number from %.0f to %.0f", d, o->min, o->max);
        else if (d != floor(d))
            conf_err(c, v, 0, path, "not a whole number (%.15g)", d);
        else if (d > o->max)
            conf_err(c, v, 0, path, "too large: %.0f (at most %.0f)", d, o->max);
        else if (d < o->min)
            conf_err(c, v, 0, path, "too small: %.0f (at least %.0f)", d, o->min);
        else {
            *u_out = (uint64_t)d;
            return 0;
        }
        return -1;
    }
    default:
        return -1;
    }
}
