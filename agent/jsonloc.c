/*
 * jsonloc.c - a position index for cJSON trees. The walk trusts the text's
 * structure because cJSON has already accepted it, but it still checks every
 * bound so a tree/text mismatch can only lose positions, never read past the
 * end. Line and column are worked out during the walk, whose offsets only
 * go forward: one pass over the text in all, however many errors are
 * reported (a rescan from the start for each error made a file with 20,000
 * bad labels take seconds to check).
 */
#include "jsonloc.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

struct pos {
    unsigned line, col; /* 1-based; line 0: none */
};

struct loc {
    const cJSON *node;
    struct pos key, val; /* key.line == 0: no key */
};

struct jsonloc {
    const char *text;
    size_t len;
    struct loc *v;
    size_t n, cap;
    size_t at;      /* the walk's line counting has reached text[at]... */
    struct pos cur; /* ...which is here */
};

static void skip_ws(const struct jsonloc *l, size_t *pos)
{
    while (*pos < l->len && (unsigned char)l->text[*pos] <= 32)
        (*pos)++;
}

static void skip_string(const struct jsonloc *l, size_t *pos)
{
    if (*pos >= l->len || l->text[*pos] != '"')
        return;
    (*pos)++;
    while (*pos < l->len && l->text[*pos] != '"') {
        if (l->text[*pos] == '\\')
            (*pos)++;
        (*pos)++;
    }
    if (*pos < l->len)
        (*pos)++;
}

/* The line and column of off, counting on from the last offset asked
 * (offsets must not go back). Stops at a NUL byte. */
static struct pos pos_of(struct jsonloc *l, size_t off)
{
    if (off == SIZE_MAX)
        return (struct pos){0, 0};
    for (; l->at < off && l->at < l->len && l->text[l->at]; l->at++) {
        if (l->text[l->at] == '\n')
            l->cur.line++, l->cur.col = 1;
        else
            l->cur.col++;
    }
    return l->cur;
}

static void add(struct jsonloc *l, const cJSON *node, size_t key_off, size_t val_off)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    struct pos k = pos_of(l, key_off); /* the key comes before its value */
    l->v[l->n++] = (struct loc){node, k, pos_of(l, val_off)};
}

static void walk(struct jsonloc *l, const cJSON *node, size_t key_off, size_t *pos, int depth)
{
    skip_ws(l, pos);
    add(l, node, key_off, *pos);
    if (*pos >= l->len || depth > 1000)
        return;
    char c = l->text[*pos];
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        (*pos)++;
        for (const cJSON *ch = node ? node->child : NULL; ch; ch = ch->next) {
            skip_ws(l, pos);
            size_t k = SIZE_MAX;
            if (c == '{') {
                k = *pos;
                skip_string(l, pos);
                skip_ws(l, pos);
                if (*pos < l->len && l->text[*pos] == ':')
                    (*pos)++;
            }
            walk(l, ch, k, pos, depth + 1);
            skip_ws(l, pos);
            if (*pos < l->len && l->text[*pos] == ',')
                (*pos)++;
        }
        skip_ws(l, pos);
        if (*pos < l->len && l->text[*pos] == close)
            (*pos)++;
    } else if (c == '"') {
        skip_string(l, pos);
    } else {
        while (*pos < l->len && !strchr(",]} \t\r\n", l->text[*pos]))
            (*pos)++;
    }
}

static int cmp_loc(const void *a, const void *b)
{
    const struct loc *x = a, *y = b;
    return (x->node > y->node) - (x->node < y->node);
}

struct jsonloc *jsonloc_build(const char *text, size_t len, const cJSON *root)
{
    struct jsonloc *l = xcalloc(1, sizeof *l);
    l->text = text;
    l->len = len;
    l->cur = (struct pos){1, 1};
    size_t pos = 0;
    walk(l, root, SIZE_MAX, &pos, 0);
    qsort(l->v, l->n, sizeof *l->v, cmp_loc);
    return l;
}

void jsonloc_linecol(const char *text, size_t off, unsigned *line, unsigned *col)
{
    struct jsonloc l = {.text = text, .len = SIZE_MAX, .cur = {1, 1}}; /* to the offset or a NUL */
    struct pos p = pos_of(&l, off);
    *line = p.line;
    *col = p.col;
}

int jsonloc_find(const struct jsonloc *l, const cJSON *node, int key, unsigned *line,
                 unsigned *col)
{
    struct loc k = {node, {0, 0}, {0, 0}};
    const struct loc *f = l ? bsearch(&k, l->v, l->n, sizeof *l->v, cmp_loc) : NULL;
    if (!f) {
        *line = *col = 0;
        return -1;
    }
    struct pos p = key && f->key.line ? f->key : f->val;
    *line = p.line;
    *col = p.col;
    return 0;
}

void jsonloc_free(struct jsonloc *l)
{
    if (!l)
        return;
    free(l->v);
    free(l);
}
