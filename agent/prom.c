/*
 * prom.c - Prometheus text writers. The family table is built from the two
 * .def lists so names, types and HELP live in one place; label values are
 * always escaped here, never by callers.
 */
#include "prom.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "util.h"

struct fam {
    const char *name, *type, *help;
};

#define TYPE_G "gauge"
#define TYPE_C "counter"
#define TYPE_S "summary"

static const struct fam fams[FAM_COUNT] = {
#define F(id, key, metric, type, conv, help) [FAM_##id] = {metric, TYPE_##type, help},
#include "fields.def"
#undef F
#define D(id, group, json, metric, help) [FAM_D_##id] = {metric, TYPE_G, help},
#include "derived.def"
#undef D
#define P(id, name, kind, metric, help) [FAM_P_##id] = {metric, TYPE_G, help},
#include "cfgparams.def"
#undef P
#define E(id, name, type, help) [FAM_##id] = {name, TYPE_##type, help},
#include "families.def"
#undef E
};

const char *const prom_label_names[PL_COUNT] = {
#define L(id, name) [PL_##id] = name,
#include "labels.def"
#undef L
};

bool prom_label_reserved(const char *name)
{
    for (int i = 0; i < PL_COUNT; i++)
        if (strcmp(name, prom_label_names[i]) == 0)
            return true;
    return false;
}

static char *headers[FAM_COUNT];
static size_t header_len[FAM_COUNT];
static size_t name_len[FAM_COUNT];
static pthread_once_t headers_once = PTHREAD_ONCE_INIT;

static void build_headers(void)
{
    for (int i = 0; i < FAM_COUNT; i++) {
        struct buf b = BUF_INIT;
        buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", fams[i].name, fams[i].help, fams[i].name,
                   fams[i].type);
        headers[i] = buf_steal(&b, &header_len[i]);
        name_len[i] = strlen(fams[i].name);
    }
}

const char *prom_family_name(enum prom_family f) { return fams[f].name; }

size_t prom_family_name_len(enum prom_family f)
{
    pthread_once(&headers_once, build_headers);
    return name_len[f];
}

const char *prom_family_header(enum prom_family f, size_t *len)
{
    pthread_once(&headers_once, build_headers);
    *len = header_len[f];
    return headers[f];
}

void prom_escape(struct buf *b, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        size_t skip = 1;
        unsigned char c = (unsigned char)*s;
        if (c == '\\')
            rep = "\\\\";
        else if (c == '"')
            rep = "\\\"";
        else if (c == '\n')
            rep = "\\n";
        else if (c >= 0x80) {
            size_t n = utf8_seq_len((const unsigned char *)s);
            if (n) { /* valid: keep as is */
                s += n - 1;
                continue;
            }
            rep = "\xef\xbf\xbd"; /* U+FFFD: Prometheus rejects a whole scrape with invalid UTF-8 */
        }
        if (rep) {
            buf_append(b, run, (size_t)(s - run));
            buf_append(b, rep, strlen(rep));
            run = s + skip;
        }
    }
    buf_append(b, run, (size_t)(s - run));
}

void prom_label_prefix(struct buf *b, const char *target, const struct label *labels, size_t n)
{
    buf_puts(b, "target=\"");
    prom_escape(b, target);
    buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        buf_putc(b, ',');
        buf_puts(b, labels[i].name);
        buf_puts(b, "=\"");
        prom_escape(b, labels[i].value);
        buf_putc(b, '"');
    }
}

static void tail_start(struct buf *b, const char *suffix, const char *const *kv)
{
    if (suffix)
        buf_puts(b, suffix);
    buf_putc(b, '{');
    for (const char *const *p = kv; p && p[0]; p += 2) {
        buf_putc(b, ',');
        buf_puts(b, p[0]);
        buf_append(b, "=\"", 2);
        prom_escape(b, p[1] ? p[1] : "");
        buf_putc(b, '"');
    }
    buf_append(b, "} ", 2);
}

void prom_tail(struct prom_tails *t, const char *suffix, const char *const *kv, double v)
{
    tail_start(t->b, suffix, kv);
    buf_put_double(t->b, v);
    buf_putc(t->b, '\n');
    t->lines++;
}

void prom_tail_str(struct prom_tails *t, const char *suffix, const char *const *kv, const char *value)
{
    tail_start(t->b, suffix, kv);
    buf_puts(t->b, value);
    buf_putc(t->b, '\n');
    t->lines++;
}

void prom_expand(struct buf *out, const char *metric, size_t mlen, const char *prefix, size_t plen,
                 const char *tail, size_t len)
{
    const char *p = tail, *end = tail + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *br = memchr(p, '{', (size_t)((nl ? nl : end) - p));
        if (!nl || !br)
            break; /* not tail form: nothing a renderer writes */
        /* the line grows by at most mlen + plen (a no-op when the caller
         * reserved the whole response, as http_render_metrics does) */
        buf_reserve(out, mlen + plen + (size_t)(nl + 1 - p));
        char *o = out->p + out->len;
        memcpy(o, metric, mlen);
        o += mlen;
        size_t head = (size_t)(br - p); /* the suffix */
        memcpy(o, p, head);
        o += head;
        const char *rest = br + 1; /* after '{': "}" or ",k=..." */
        if (plen) {
            *o++ = '{';
            memcpy(o, prefix, plen);
            o += plen;
        } else if (*rest == ',') {
            *o++ = '{';
            rest++;
        } else { /* no label at all: no braces */
            rest++;
        }
        size_t tl = (size_t)(nl + 1 - rest);
        memcpy(o, rest, tl);
        o += tl;
        out->len = (size_t)(o - out->p);
        p = nl + 1;
    }
    if (out->p)
        out->p[out->len] = '\0';
}
