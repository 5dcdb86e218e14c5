/*
 * buf.c - growable byte buffer used by every renderer. Appends are amortised
 * O(1); formatting of doubles is centralised here so Prometheus text and JSON
 * print numbers identically.
 */
#include "buf.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

void buf_grow(struct buf *b, size_t need)
{
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, cp);
    va_end(cp);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        buf_append(b, tmp, (size_t)n);
        return;
    }
    buf_reserve(b, (size_t)n);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

/* |v| scaled to 15 integer digits: |v| * 10^k, one rounding (10^k is exact
 * as a double for |k| <= 22). Returns false when k is out of that range. */
static bool scale15(double a, int k, double *p)
{
    if (k > 22 || k < -22)
        return false;
    *p = k >= 0 ? a * pow10_exact[k] : a / pow10_exact[-k];
    return true;
}

size_t fmt_g15(char *out, double v)
{
    double a = fabs(v), p;
    if (a == 0 || !isfinite(a))
        goto slow;
    int e2;
    frexp(a, &e2); /* a in [2^(e2-1), 2^e2) */
    /* floor(log10(a)) is this or one more: corrected below */
    int e = (int)floor((e2 - 1) * 0.30102999566398120);
    if (!scale15(a, 14 - e, &p))
        goto slow;
    if (p >= 1e15) {
        e++;
        if (!scale15(a, 14 - e, &p))
            goto slow;
    } else if (p < 1e14) {
        e--;
        if (!scale15(a, 14 - e, &p))
            goto slow;
    }
    /* p is within 1/16 of |v| * 10^(14-e) (half an ulp below 2^50); near a
     * rounding tie or a digit-count boundary, printf decides */
    if (p < 1e14 + 0.125 || p >= 1e15 - 0.125)
        goto slow;
    double fl = floor(p), fr = p - fl;
    if (fabs(fr - 0.5) < 0.125)
        goto slow;
    uint64_t m = (uint64_t)fl + (fr > 0.5);
    if (m == 1000000000000000ull) { /* 999...9.7 rounds up to a new digit */
        m = 100000000000000ull;
        e++;
    }
    char d[15];
    for (int i = 14; i >= 0; i--, m /= 10)
        d[i] = (char)('0' + m % 10);
    int nd = 15;
    while (nd > 1 && d[nd - 1] == '0')
        nd--;
    char *o = out;
    if (v < 0)
        *o++ = '-';
    if (e < -4 || e >= 15) { /* d.ddde-XX, as %g */
        *o++ = d[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, d + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        *o++ = 'e';
        *o++ = e < 0 ? '-' : '+';
        int ae = e < 0 ? -e : e;
        if (ae >= 100) {
            *o++ = (char)('0' + ae / 100);
            ae %= 100;
        }
        *o++ = (char)('0' + ae / 10);
        *o++ = (char)('0' + ae % 10);
    } else if (e >= 0) {
        memcpy(o, d, (size_t)e + 1);
        o += e + 1;
        if (nd > e + 1) {
            *o++ = '.';
            memcpy(o, d + e + 1, (size_t)(nd - e - 1));
            o += nd - e - 1;
        }
    } else { /* 0.000ddd */
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -e - 1; i++)
            *o++ = '0';
        memcpy(o, d, (size_t)nd);
        o += nd;
    }
    *o = '\0';
    return (size_t)(o - out);
slow:;
    int n = snprintf(out, 32, "%.15g", v);
    return n > 0 ? (size_t)n : 0;
}

void buf_put_u64(struct buf *b, unsigned long long u)
{
    char tmp[24], *e = tmp + sizeof tmp, *q = e;
    do
        *--q = (char)('0' + u % 10);
    while (u /= 10);
    buf_append(b, q, (size_t)(e - q));
}

void buf_put_double(struct buf *b, double v)
{
    char tmp[40];
    size_t n;
    if (isnan(v)) {
        buf_append(b, "NaN", 3);
        return;
    }
    if (isinf(v)) {
        buf_puts(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (fabs(v) < 9e18 && v == (double)(long long)v) {
        /* integers are most of what INFO sends */
        long long x = (long long)v;
        if (x < 0)
            buf_putc(b, '-');
        buf_put_u64(b, x < 0 ? 0ull - (unsigned long long)x : (unsigned long long)x);
        return;
    }
    n = fmt_g15(tmp, v); /* every decimal INFO sends reads back as written */
    buf_append(b, tmp, n);
}

void buf_put_json_str(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const unsigned char *run = p; /* plain ASCII is copied in one go */
        while (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
            p++;
        if (p > run)
            buf_append(b, run, (size_t)(p - run));
        if (!*p)
            break;
        unsigned char c = *p;
        switch (c) {
        case '"': buf_append(b, "\\\"", 2); break;
        case '\\': buf_append(b, "\\\\", 2); break;
        case '\n': buf_append(b, "\\n", 2); break;
        case '\r': buf_append(b, "\\r", 2); break;
        case '\t': buf_append(b, "\\t", 2); break;
        default:
            if (c < 0x20 || c == 0x7f) {
                char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                buf_append(b, e, 6);
            } else if (c < 0x80) {
                buf_putc(b, (char)c);
            } else {
                size_t n = utf8_seq_len(p);
                if (n) {
                    buf_append(b, p, n);
                    p += n - 1;
                } else {
                    buf_append(b, "\\ufffd", 6); /* never emit invalid UTF-8 */
                }
            }
        }
    }
    buf_putc(b, '"');
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

char *buf_steal(struct buf *b, size_t *len)
{
    if (!b->p)
        buf_reserve(b, 0), b->p[0] = '\0';
    char *p = b->p;
    if (len)
        *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
