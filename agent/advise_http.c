/*
 * advise_http.c - the advisor's findings as served: the /api/v1/advice
 * document and the landing page's list, both cut out of the JSON head each
 * poll already rendered (HTTP threads never touch the advisor itself).
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "advise.h"
#include "buf.h"
#include "publish.h"
#include "util.h"

static const char KEY[] = ",\"advice\":";

/* End of the JSON value starting at p (an array or null), or NULL. */
static const char *value_end(const char *p, const char *end)
{
    if (end - p >= 4 && memcmp(p, "null", 4) == 0)
        return p + 4;
    if (p >= end || *p != '[')
        return NULL;
    int depth = 0;
    bool str = false;
    for (; p < end; p++) {
        if (str) {
            if (*p == '\\')
                p++;
            else if (*p == '"')
                str = false;
        } else if (*p == '"') {
            str = true;
        } else if (*p == '[' || *p == '{') {
            depth++;
        } else if (*p == ']' || *p == '}') {
            if (--depth == 0)
                return p + 1;
        }
    }
    return NULL;
}

const char *advice_in_frag(const struct frag *f, size_t *len)
{
    /* the key outside any string: a quote inside a JSON string is escaped, so
     * `,"advice":` can only be the member; the last one is the top level's */
    const char *h = f->json_head, *end = h + f->json_head_len, *found = NULL;
    for (const char *p = h; (p = memmem(p, (size_t)(end - p), KEY, sizeof KEY - 1)) != NULL; p++)
        found = p;
    if (!found)
        return NULL;
    const char *v = found + sizeof KEY - 1, *ve = value_end(v, end);
    if (!ve)
        return NULL;
    *len = (size_t)(ve - v);
    return v;
}

void advice_api_json(struct registry *reg, struct buf *b)
{
    struct registry_view view;
    registry_view_take(reg, &view);
    size_t n = view.n;
    struct frag **fr = view.frags;
    buf_putc(b, '[');
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (!fr[i])
            continue;
        size_t len = 0;
        const char *v = advice_in_frag(fr[i], &len);
        /* the head opens with {"name":"...": copy that member as rendered */
        const char *h = fr[i]->json_head, *he = h + fr[i]->json_head_len, *q = h + 9;
        while (q < he && *q != '"')
            q += *q == '\\' ? 2 : 1;
        buf_puts(b, first ? "{" : ",{");
        first = false;
        buf_append(b, h + 1, (size_t)(q + 1 - (h + 1)));
        buf_puts(b, ",\"advice\":");
        if (v)
            buf_append(b, v, len);
        else
            buf_puts(b, "null");
        buf_putc(b, '}');
    }
    registry_view_release(&view);
    buf_puts(b, "]\n");
}

static void esc(struct buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': buf_puts(b, "&lt;"); break;
        case '>': buf_puts(b, "&gt;"); break;
        case '&': buf_puts(b, "&amp;"); break;
        case '"': buf_puts(b, "&quot;"); break;
        case '\'': buf_puts(b, "&#39;"); break;
        default: buf_putc(b, *s);
        }
    }
}

void advice_landing_html(const struct frag *f, struct buf *b)
{
    size_t len = 0;
    const char *v = f ? advice_in_frag(f, &len) : NULL;
    if (!v || len < 3)
        return;
    cJSON *arr = cJSON_ParseWithLength(v, len);
    if (cJSON_IsArray(arr) && cJSON_GetArraySize(arr) > 0) {
        buf_puts(b, "<ul>");
        for (const cJSON *e = arr->child; e; e = e->next) {
            buf_puts(b, "<li><b>");
            esc(b, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "severity")));
            buf_puts(b, "</b> <code>");
            esc(b, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "id")));
            buf_puts(b, "</code>: ");
            esc(b, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "title")));
            buf_puts(b, ". <i>Fix:</i> ");
            esc(b, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "recommendation")));
            buf_puts(b, "</li>");
        }
        buf_puts(b, "</ul>");
    }
    cJSON_Delete(arr);
}
