/* expo_check.c - see expo_check.h. Written for hostile input: every read is
 * bounded by the text's length. */
#include "expo_check.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct strs {
    char **v;
    size_t n, cap;
};

static void push(struct strs *s, char *p)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = p;
}

static void clear(struct strs *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool name_ok(const char *s, size_t n, bool metric)
{
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (metric && c == ':') ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

/* Parses one sample line into key "name|l1=v1\x01l2=v2\x01" (sorted labels). */
static const char *sample(const char *p, const char *end, char **key, const char *want, expo_label_fn fn, void *arg)
{
    const char *n0 = p;
    while (p < end && *p != '{' && *p != ' ')
        p++;
    size_t name_len = (size_t)(p - n0);
    if (!name_ok(n0, name_len, true))
        return "bad metric name";
    struct strs labels = {0};
    if (p < end && *p == '{') {
        p++;
        while (p < end && *p != '}') {
            const char *l0 = p;
            while (p < end && *p != '=')
                p++;
            size_t ll = (size_t)(p - l0);
            if (p >= end || !name_ok(l0, ll, false) || p + 1 >= end || p[1] != '"') {
                clear(&labels);
                return "bad label name";
            }
            p += 2;
            size_t cap = (size_t)(end - p) + ll + 2, vl = 0;
            char *pair = malloc(cap + 1);
            memcpy(pair, l0, ll);
            pair[ll] = '=';
            char *v = pair + ll + 1;
            while (p < end && *p != '"') {
                if (*p == '\n') {
                    free(pair);
                    clear(&labels);
                    return "raw newline in a label value";
                }
                if (*p == '\\') {
                    if (p + 1 >= end || (p[1] != 'n' && p[1] != '\\' && p[1] != '"')) {
                        free(pair);
                        clear(&labels);
                        return "invalid escape in a label value";
                    }
                    v[vl++] = p[1] == 'n' ? '\n' : p[1];
                    p += 2;
                } else {
                    v[vl++] = *p++;
                }
            }
            v[vl] = '\0';
            for (const unsigned char *u = (const unsigned char *)v; *u; u++)
                if (*u >= 0x80) {
                    size_t k = utf8_seq_len(u);
                    if (!k) {
                        free(pair);
                        clear(&labels);
                        return "label value is not valid UTF-8";
                    }
                    u += k - 1;
                }
            if (p >= end) {
                free(pair);
                clear(&labels);
                return "unterminated label value";
            }
            p++;
            if (want && fn && strlen(want) == ll && memcmp(want, l0, ll) == 0)
                fn(arg, v);
            for (size_t i = 0; i < labels.n; i++)
                if (strncmp(labels.v[i], pair, ll + 1) == 0) {
                    free(pair);
                    clear(&labels);
                    return "repeated label name";
                }
            push(&labels, pair);
            if (p < end && *p == ',')
                p++;
            else if (p < end && *p != '}') {
                clear(&labels);
                return "expected , or }";
            }
        }
        if (p >= end) {
            clear(&labels);
            return "unterminated label set";
        }
        p++;
    }
    if (p >= end || *p != ' ') {
        clear(&labels);
        return "no space before the value";
    }
    p++;
    char num[64];
    size_t nl = (size_t)(end - p);
    if (nl == 0 || nl >= sizeof num) {
        clear(&labels);
        return "bad value";
    }
    memcpy(num, p, nl);
    num[nl] = '\0';
    char *e;
    strtod(num, &e);
    if (*e || e == num) {
        clear(&labels);
        return "bad value";
    }
    if (labels.n)
        qsort(labels.v, labels.n, sizeof *labels.v, cmp);
    size_t kl = name_len + 2;
    for (size_t i = 0; i < labels.n; i++)
        kl += strlen(labels.v[i]) + 1;
    char *k = malloc(kl);
    memcpy(k, n0, name_len);
    size_t off = name_len;
    k[off++] = '|';
    for (size_t i = 0; i < labels.n; i++) {
        size_t l = strlen(labels.v[i]);
        memcpy(k + off, labels.v[i], l);
        off += l;
        k[off++] = '\x01';
    }
    k[off] = '\0';
    clear(&labels);
    *key = k;
    return NULL;
}

const char *expo_check(const char *text, size_t len, size_t *samples, const char *label, expo_label_fn fn,
                       void *arg)
{
    struct strs fams = {0}, keys = {0};
    const char *err = NULL;
    char cur[256] = "", cur_type[16] = "";
    const char *p = text, *end = text + len;
    *samples = 0;
    while (p < end && !err) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            err = "last line without a newline";
            break;
        }
        if (strncmp(p, "# HELP ", 7) == 0) {
            p = nl + 1;
            continue;
        }
        if (strncmp(p, "# TYPE ", 7) == 0) {
            const char *n0 = p + 7, *sp = memchr(n0, ' ', (size_t)(nl - n0));
            if (!sp || (size_t)(sp - n0) >= sizeof cur || (size_t)(nl - sp - 1) >= sizeof cur_type) {
                err = "bad TYPE line";
                break;
            }
            memcpy(cur, n0, (size_t)(sp - n0));
            cur[sp - n0] = '\0';
            memcpy(cur_type, sp + 1, (size_t)(nl - sp - 1));
            cur_type[nl - sp - 1] = '\0';
            for (size_t i = 0; i < fams.n && !err; i++)
                if (strcmp(fams.v[i], cur) == 0)
                    err = "family not contiguous (TYPE seen twice)";
            if (strcmp(cur_type, "gauge") && strcmp(cur_type, "counter") && strcmp(cur_type, "summary") &&
                strcmp(cur_type, "histogram") && strcmp(cur_type, "untyped"))
                err = "unknown TYPE";
            push(&fams, strdup(cur));
            p = nl + 1;
            continue;
        }
        if (*p == '#') {
            err = "stray comment";
            break;
        }
        size_t nlen = strcspn(p, "{ \n");
        size_t cl = strlen(cur);
        bool ok = cl && nlen == cl && strncmp(p, cur, cl) == 0;
        bool hist = strcmp(cur_type, "histogram") == 0;
        if (!ok && (hist || strcmp(cur_type, "summary") == 0) && nlen > cl && strncmp(p, cur, cl) == 0)
            ok = (nlen - cl == 4 && strncmp(p + cl, "_sum", 4) == 0) || (nlen - cl == 6 && strncmp(p + cl, "_count", 6) == 0) ||
                 (hist && nlen - cl == 7 && strncmp(p + cl, "_bucket", 7) == 0);
        if (!ok) {
            err = "sample outside its family";
            break;
        }
        char *key = NULL;
        err = sample(p, nl, &key, label, fn, arg);
        if (!err) {
            push(&keys, key);
            (*samples)++;
        }
        p = nl + 1;
    }
    if (!err) {
        if (keys.n)
            qsort(keys.v, keys.n, sizeof *keys.v, cmp);
        for (size_t i = 1; i < keys.n && !err; i++)
            if (strcmp(keys.v[i - 1], keys.v[i]) == 0)
                err = "duplicate series";
    }
    clear(&fams);
    clear(&keys);
    return err;
}
