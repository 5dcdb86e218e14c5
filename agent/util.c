/*
 * util.c - the small things everyone needs: allocation that aborts on
 * exhaustion (like redis' zmalloc), clocks, duration parsing.
 */
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void oom(size_t n)
{
    fprintf(stderr, "redpulse: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

uint64_t now_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

double now_mono_s(void) { return (double)now_mono_us() / 1e6; }
double now_real_s(void) { return (double)now_real_us() / 1e6; }

uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

uint64_t fnv1a_str(uint64_t h, const char *s) { return fnv1a(h, s, strlen(s)); }

uint64_t now_real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Each term is digits, an optional fraction and a unit, read here rather
 * than with strtod: strtod also takes "0x10", "1e3" and "inf", none of them
 * a duration anyone means. The sum is kept in microseconds, exactly, so a
 * term finer than a millisecond ("0.4ms", "99.6ms", "0.0001s") is refused
 * instead of rounded: rounded, "0.4ms" became 0, which means "off" for
 * the slower cadences, and "99.6ms" passed a 100 ms minimum. */
int parse_duration_ms(const char *s, uint64_t *out, const char **why)
{
    static const uint64_t limit_us = 86400000000ull * 365; /* a year */
    const char *p = s;
    uint64_t total_us = 0;
    if (!*p) {
        *why = "empty duration";
        return -1;
    }
    while (*p) {
        if (*p < '0' || *p > '9') {
            *why = "expected a number followed by a unit (ms, s, m, h), e.g. \"250ms\" or \"10s\"";
            return -1;
        }
        /* whole part, then up to 9 fraction digits (nanoseconds of an
         * hour is 3.6e12: still exact); more digits than that are only
         * accepted when they are zeros */
        uint64_t whole = 0, frac = 0, frac_div = 1;
        for (; *p >= '0' && *p <= '9'; p++) {
            whole = whole * 10 + (uint64_t)(*p - '0');
            if (whole > limit_us) {
                *why = "duration too long";
                return -1;
            }
        }
        if (*p == '.') {
            p++;
            if (*p < '0' || *p > '9') {
                *why = "expected digits after the decimal point";
                return -1;
            }
            for (; *p >= '0' && *p <= '9'; p++) {
                if (frac_div < 1000000000ull)
                    frac = frac * 10 + (uint64_t)(*p - '0'), frac_div *= 10;
                else if (*p != '0') {
                    *why = "finer than a millisecond (durations are whole milliseconds)";
                    return -1;
                }
            }
        }
        uint64_t unit_us;
        if (strncmp(p, "ms", 2) == 0)
            unit_us = 1000, p += 2;
        else if (*p == 's')
            unit_us = 1000000, p++;
        else if (*p == 'm')
            unit_us = 60000000, p++;
        else if (*p == 'h')
            unit_us = 3600000000ull, p++;
        else {
            /* named for what it is: "0x10s" has no unknown unit */
            if ((*p == 'x' || *p == 'X') && whole == 0 && frac_div == 1)
                *why = "not a decimal number: durations are decimal digits and a unit, e.g. \"16s\"";
            else if ((*p == 'e' || *p == 'E') && ((p[1] >= '0' && p[1] <= '9') || p[1] == '+' || p[1] == '-'))
                *why = "no exponents: write the digits and a unit, e.g. \"1000ms\"";
            else
                *why = "missing or unknown unit (use ms, s, m or h)";
            return -1;
        }
        /* whole <= limit_us (about 2^45) and unit_us < 2^32: no overflow
         * before the check; frac * unit_us < 1e9 * 3.6e9 < 2^62 */
        if (whole > limit_us / unit_us) {
            *why = "duration too long";
            return -1;
        }
        uint64_t frac_num = frac * unit_us;
        if (frac_num % frac_div) {
            *why = "finer than a millisecond (durations are whole milliseconds)";
            return -1;
        }
        total_us += whole * unit_us + frac_num / frac_div;
        if (total_us > limit_us) {
            *why = "duration too long";
            return -1;
        }
    }
    if (total_us % 1000) {
        *why = "finer than a millisecond (durations are whole milliseconds)";
        return -1;
    }
    *out = total_us / 1000;
    return 0;
}

const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* plain_decimal_prefix over the whole of s[0..n) */
static bool plain_decimal(const char *s, size_t n, double *out)
{
    const char *stop;
    double v;
    if (!plain_decimal_prefix(s, s + n, &stop, &v) || stop != s + n)
        return false;
    *out = v;
    return true;
}

/* The rest of what strtod reads (exponents, "+1", ".5", long digit runs),
 * less hex, "inf" and "nan", for a NUL-terminated s. */
static bool parse_other(const char *s, double *out)
{
    const char *p = s + (*s == '-');
    if ((*p < '0' || *p > '9') && *p != '.' && *p != '+')
        return false; /* not a number at all: the common string case */
    if (!*s || *s == ' ' || *s == '\t')
        return false;
    /* "7.0.15" and "1.83M" pass the first test: only the characters of a
     * number, and one point at most ("7.0.15", "127.0.0.1": no number has
     * two; strtod and strspn were a tenth of a poll's parse in perf while
     * a version went to them) */
    int points = 0;
    for (const char *c = s; *c; c++) {
        if (*c == '.')
            points++;
        else if ((*c < '0' || *c > '9') && *c != 'e' && *c != 'E' && *c != '+' && *c != '-')
            return false;
    }
    if (points > 1)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v))
        return false;
    /* strtod accepts hex and "inf"/"nan"; INFO never sends those as numbers */
    for (const char *c = s; c < end; c++)
        if (*c == 'x' || *c == 'X' || *c == 'n' || *c == 'N' || *c == 'i' || *c == 'I')
            return false;
    *out = v;
    return true;
}

bool parse_double(const char *s, double *out)
{
    return plain_decimal(s, strlen(s), out) || parse_other(s, out);
}

bool parse_double_n(const char *s, size_t n, double *out)
{
    if (plain_decimal(s, n, out))
        return true;
    char tmp[64];
    if (n == 0 || n >= sizeof tmp || memchr(s, '\0', n))
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return parse_other(tmp, out);
}

bool is_label_name(const char *s)
{
    if (!*s || (s[0] == '_' && s[1] == '_'))
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (p != s && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

/* Length of the valid UTF-8 sequence starting at p, or 0 when invalid. */
size_t utf8_seq_len(const unsigned char *p)
{
    size_t n;
    unsigned min;
    unsigned cp;
    if ((p[0] & 0xe0) == 0xc0)
        n = 2, min = 0x80, cp = p[0] & 0x1f;
    else if ((p[0] & 0xf0) == 0xe0)
        n = 3, min = 0x800, cp = p[0] & 0x0f;
    else if ((p[0] & 0xf8) == 0xf0)
        n = 4, min = 0x10000, cp = p[0] & 0x07;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void utf8_clean(char *s, size_t n, char ctrl)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t l = c >= 0x80 ? utf8_seq_len((const unsigned char *)s + i) : 1;
        if (c < 0x20 || c == 0x7f) {
            s[i] = ctrl;
        } else if (l == 0) {
            s[i] = '?';
        } else if (l > 1) {
            unsigned cp = l == 2 ? (c & 0x1fu) << 6 | (s[i + 1] & 0x3fu)
                                 : l == 3 ? (c & 0x0fu) << 12 | (s[i + 1] & 0x3fu) << 6 | (s[i + 2] & 0x3fu) : 0;
            bool hide = (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || (cp >= 0x202a && cp <= 0x202e) ||
                        (cp >= 0x2066 && cp <= 0x2069);
            if (hide)
                memset(s + i, ctrl, l);
            i += l - 1;
        }
    }
}

const char *printable(const char *s, char *buf, size_t cap)
{
    size_t n = strlen(s);
    if (cap < 4) {
        if (cap)
            buf[0] = '\0';
        return buf;
    }
    if (n < cap) {
        memcpy(buf, s, n + 1);
    } else {
        n = cap - 4;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--; /* not inside a UTF-8 sequence */
        memcpy(buf, s, n);
        memcpy(buf + n, "...", 4);
    }
    utf8_clean(buf, strlen(buf), '?');
    return buf;
}

bool utf8_text_ok(const char *s, size_t n)
{
    /* Eight bytes at a time while they are all printable ASCII, the usual
     * case: it runs on every INFO key outside the field table at every
     * poll (commandstats, errorstats, latencystats), where the byte loop
     * below alone was 4% of poll_micro's instructions (callgrind). A byte
     * below 0x20 or above 0x7e sets its high bit in `odd`. */
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        uint64_t odd = ((x - ones * 0x20) & ~x) | ((x + ones * (0x7f - 0x7e)) | x);
        if (odd & highs)
            break;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c >= 0x80) {
            size_t l = utf8_seq_len((const unsigned char *)s + i);
            if (!l || l > n - i)
                return false;
            i += l - 1;
        }
    }
    return true;
}

bool utf8_valid(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p >= 0x80) {
            size_t n = utf8_seq_len(p);
            if (!n)
                return false;
            p += n - 1;
        }
    return true;
}
