/*
 * log.c - one way to say what happened: level, subsystem, text, one line per
 * call, written with a single write so threads never interleave. Three
 * shapes of line: plain text with a UTC timestamp (a terminal, a file);
 * under journald, which stamps lines itself, a syslog priority prefix
 * ("<4>") instead, so `journalctl -p warning` filters; and one JSON object
 * per line for log shippers.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static atomic_int cur_level = LOG_INFO;
static atomic_int cur_format = LOG_FORMAT_TEXT;
static const char *const names[] = {"error", "warn", "info", "debug"};
static const int syslog_prio[] = {3, 4, 6, 7}; /* err, warning, info, debug */
static const char *const formats[] = {"text", "journal", "json"};

void log_set_level(enum log_level lvl) { atomic_store(&cur_level, (int)lvl); }

enum log_level log_get_level(void) { return (enum log_level)atomic_load(&cur_level); }

int log_parse_level(const char *s, enum log_level *out)
{
    for (int i = 0; i <= LOG_DEBUG; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    return -1;
}

void log_set_format(enum log_format f) { atomic_store(&cur_format, (int)f); }

int log_parse_format(const char *s, enum log_format *out)
{
    for (int i = 0; i <= LOG_FORMAT_JSON; i++)
        if (strcmp(s, formats[i]) == 0) {
            *out = (enum log_format)i;
            return 0;
        }
    return -1;
}

bool log_stderr_is_journal(void)
{
    /* systemd sets JOURNAL_STREAM=<dev>:<inode> of the stream it connected;
     * a redirected stderr (a child's log file) is not the journal */
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* Length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0. Peers'
 * text (Redis error strings) may hold any bytes: a line that is not UTF-8
 * is not JSON, and journald shows it as "[blob data]". */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80)
        return 1;
    size_t l = s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
    if (!l || l > n)
        return 0;
    unsigned char lo = 0x80, hi = 0xbf; /* bounds of the second byte */
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xed)
        hi = 0x9f;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < l; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return l;
}

/* Appends s as the inside of a JSON string; bytes that are not UTF-8
 * become U+FFFD. */
static size_t json_escape(char *out, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 7 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t l = utf8_len((const unsigned char *)s + i, n - i);
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else if (l == 0) {
            memcpy(out + o, "\\ufffd", 6);
            o += 6;
        } else {
            memcpy(out + o, s + i, l); /* l <= 4 < 7 */
            o += l;
            i += l - 1;
        }
    }
    return o;
}

void log_msg(enum log_level lvl, const char *subsys, const char *fmt, ...)
{
    if ((int)lvl > atomic_load(&cur_level))
        return;
    enum log_format f = (enum log_format)atomic_load(&cur_format);
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    size_t tn = k < 0 ? 0 : (size_t)k >= sizeof text ? sizeof text - 1 : (size_t)k;
    char stamp[32] = "";
    if (f != LOG_FORMAT_JOURNAL) {
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    char line[2048];
    size_t n;
    if (f == LOG_FORMAT_JSON) {
        n = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"subsys\":\"%s\",\"msg\":\"", stamp,
                             names[lvl], subsys);
        n += json_escape(line + n, sizeof line - n - 3, text, tn);
        line[n++] = '"';
        line[n++] = '}';
    } else {
        if (f == LOG_FORMAT_JOURNAL)
            k = snprintf(line, sizeof line, "<%d>%s: ", syslog_prio[lvl], subsys);
        else
            k = snprintf(line, sizeof line, "%s %s %s: ", stamp, names[lvl], subsys);
        n = k > 0 ? (size_t)k : 0;
        if (tn > sizeof line - 2 - n)
            tn = sizeof line - 2 - n;
        memcpy(line + n, text, tn);
        /* control characters from peers must not forge extra log lines;
         * bytes that are not UTF-8 become '?' */
        for (size_t i = n; i < n + tn; i++) {
            size_t l = utf8_len((const unsigned char *)line + i, n + tn - i);
            if ((unsigned char)line[i] < 0x20)
                line[i] = ' ';
            else if (l == 0)
                line[i] = '?';
            else
                i += l - 1;
        }
        n += tn;
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
