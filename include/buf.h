/*
 * buf.h - a growable byte buffer.
 *
 * Every renderer in redpulse (Prometheus text, JSON, HTTP bodies) appends into
 * a struct buf. Allocation failure aborts the process (see util.h xmalloc): a
 * monitoring agent that cannot allocate a few KB has nothing sensible to do.
 */
#ifndef REDPULSE_BUF_H
#define REDPULSE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

struct buf {
    char *p;    /* bytes, always NUL-terminated when p != NULL */
    size_t len; /* bytes used, excluding the NUL */
    size_t cap; /* bytes allocated */
};

#define BUF_INIT {NULL, 0, 0}

/* The growing half of buf_reserve (out of line: rare). */
void buf_grow(struct buf *b, size_t need);

/* Ensures room for `extra` more bytes plus the terminating NUL. */
static inline void buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra + 1 > b->cap)
        buf_grow(b, b->len + extra + 1);
}

/* Appends n bytes of s. */
static inline void buf_append(struct buf *b, const void *s, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Appends a NUL-terminated string. */
static inline void buf_puts(struct buf *b, const char *s) { buf_append(b, s, strlen(s)); }

/* Appends one byte. */
static inline void buf_putc(struct buf *b, char c)
{
    buf_reserve(b, 1);
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}
/* Appends printf-formatted text. */
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Appends a double the way Prometheus and JSON both accept it: integers
 * without exponent or fraction, others exactly as printf's "%.15g" would,
 * NaN/Inf as "NaN"/"+Inf"/"-Inf" (callers writing JSON must not pass those). */
void buf_put_double(struct buf *b, double v);
/* Appends u in decimal (what printf("%llu") writes, without printf). */
void buf_put_u64(struct buf *b, unsigned long long u);
/* Writes v as "%.15g" would to out (at least 32 bytes), without printf in
 * the common cases; returns the length. For finite v. */
size_t fmt_g15(char *out, double v);
/* Appends s as a JSON string literal, quotes included. */
void buf_put_json_str(struct buf *b, const char *s);
/* Empties the buffer, keeping its memory. */
void buf_reset(struct buf *b);
/* Hands the bytes to the caller (who frees them with free()); b becomes empty.
 * Never returns NULL: an empty buffer yields "". */
char *buf_steal(struct buf *b, size_t *len);
/* Frees the bytes; safe on an empty buffer. */
void buf_free(struct buf *b);

#endif
