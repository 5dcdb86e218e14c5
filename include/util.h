/*
 * util.h - allocation that cannot fail, clocks, durations and small parsers
 * shared by several modules.
 */
#ifndef REDPULSE_UTIL_H
#define REDPULSE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Allocators that abort with a message on exhaustion; they never return NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Monotonic clock in microseconds: for intervals and deadlines. */
uint64_t now_mono_us(void);
/* Wall clock in microseconds since the epoch: for timestamps shown to users. */
uint64_t now_real_us(void);
/* The same two in seconds. */
double now_mono_s(void);
double now_real_s(void);

/* FNV-1a 64, public and unkeyed: for fingerprints, the shard split and
 * change detection, never for a table a peer can fill (info_hash is keyed).
 * fnv1a goes on from h over the n bytes at p, fnv1a_str over the string s;
 * start from FNV1A_BASIS. */
#define FNV1A_BASIS 14695981039346656037ULL
uint64_t fnv1a(uint64_t h, const void *p, size_t n);
uint64_t fnv1a_str(uint64_t h, const char *s);

/* Parses a duration such as "250ms", "1.5s", "1m30s", "2h" into milliseconds.
 * Each term is digits with an optional fraction, then a unit (ms, s, m, h);
 * a bare number, hex, exponents and anything finer than a millisecond are
 * rejected. Returns 0, or -1 with a short reason in *why (a static string). */
int parse_duration_ms(const char *s, uint64_t *out, const char **why);

/* Parses a whole string as a finite double (leading/trailing junk rejected). */
bool parse_double(const char *s, double *out);
/* The same for the n bytes at s (no terminator needed; NUL bytes inside, and
 * anything but a plain decimal longer than 63 bytes, are refused). */
bool parse_double_n(const char *s, size_t n, double *out);

/* 10^0 .. 10^22: the powers of ten a double holds exactly. */
extern const double pow10_exact[23];

/* The plain decimal ([-]digits[.digits], at most 16 digits, 15 with a
 * fraction) that s starts with, read up to end: *stop gets the first byte
 * past it (past what was read when it is not one). True, with its value in
 * *out, when the bytes from s to *stop are one, whatever follows: a caller
 * that meets what it expects at *stop (a line's end) has its number
 * without a second pass over the bytes. parse_double_n of s[0..*stop)
 * gives the same. Worked out without strtod and exactly: an integer below
 * 2^53 divided by an exact power of ten is correctly rounded; most INFO
 * values are this shape. The digit loops do not count: a run longer than
 * 19 digits wraps m, and is refused by its length after. Inline: the INFO
 * parse calls it for every value. */
static inline bool plain_decimal_prefix(const char *s, const char *end, const char **stop, double *out)
{
    const char *p = s;
    bool neg = p < end && *p == '-';
    p += neg;
    *stop = p;
    if (p == end || (unsigned char)(*p - '0') >= 10)
        return false;
    uint64_t m = 0;
    const char *first = p;
    while (p < end && (unsigned char)(*p - '0') < 10)
        m = m * 10 + (uint64_t)(*p++ - '0');
    size_t frac = 0;
    if (p < end && *p == '.') {
        const char *dot = ++p;
        while (p < end && (unsigned char)(*p - '0') < 10)
            m = m * 10 + (uint64_t)(*p++ - '0');
        frac = (size_t)(p - dot);
        if (frac == 0) {
            *stop = p;
            return false;
        }
    }
    *stop = p;
    if ((size_t)(p - first) - (frac ? 1 : 0) > (frac ? 15 : 16))
        return false;
    double v = neg ? -(double)m : (double)m;
    *out = frac ? v / pow10_exact[frac] : v;
    return true;
}

/* Length (2-4) of the valid multi-byte UTF-8 sequence at p (which must be
 * NUL-terminated), or 0 when it is not one: overlong forms, surrogates and
 * code points past U+10FFFF are invalid. */
size_t utf8_seq_len(const unsigned char *p);

/* True when the n bytes at s are valid UTF-8 without control characters
 * (nor DEL): a name from a peer that can be written as it is, as a label
 * value or JSON key (written with U+FFFD for invalid bytes, two names could
 * come out the same). The byte after them must not be a continuation byte
 * (a NUL, a separator). */
bool utf8_text_ok(const char *s, size_t n);

/* True when the NUL-terminated s is valid UTF-8. */
bool utf8_valid(const char *s);

/* Makes s[0..n) (s[n] must be '\0'; NULs before it count as control
 * characters) fit for one line of a message, in place: control characters
 * (C0, DEL, and C1 as UTF-8), the line and paragraph separators and the
 * bidirectional overrides and isolates (which reorder what a terminal
 * shows) become ctrl, each of their bytes; bytes that are not UTF-8 '?'. */
void utf8_clean(char *s, size_t n, char ctrl);

/* s fit to be quoted in one line of a message (a path or word from the
 * command line, which may hold a newline that would forge a log line): a
 * copy in buf, cut with "..." past cap - 1 bytes (cap >= 4; less gives
 * ""), cleaned as utf8_clean does with '?'. Returns buf. */
#define PRINTABLE_MAX 512
const char *printable(const char *s, char *buf, size_t cap);

/* True when s is a valid Prometheus label name that does not start with "__". */
bool is_label_name(const char *s);

#endif
