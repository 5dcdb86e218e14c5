/* fuzz_info.c - INFO text -> sample -> derived figures -> rendered output.
 * Whatever the bytes, the JSON must parse, with no object holding one key
 * twice, and the exposition must pass the strict reader; a poll's parse
 * must give the values the whole parse gives, and a parse that remembers
 * the last reply's keys what one that remembers none gives. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>

#include "fuzz.h"
#include <stdlib.h>
#include <string.h>

#include "derive.h"
#include "expo_check.h"
#include "http.h"
#include "info.h"
#include "render.h"

/* True when some object in j has two members of one name (cJSON keeps
 * both; most readers silently keep one). */
static bool duplicate_key(const cJSON *j)
{
    for (const cJSON *a = j->child; a; a = a->next) {
        if (cJSON_IsObject(j))
            for (const cJSON *b = a->next; b; b = b->next)
                if (strcmp(a->string, b->string) == 0)
                    return true;
        if (duplicate_key(a))
            return true;
    }
    return false;
}

static bool same_num(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }
static bool same_str(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

/* A poll's parse (info_parse_poll) gives every value by id and every
 * nested list as the whole parse does; its entries are the whole parse's,
 * in order, less some. */
static bool poll_agrees(const struct info_sample *a, const struct info_sample *b)
{
    if (memcmp(a->dropped, b->dropped, sizeof a->dropped) || b->malformed > a->malformed)
        return false;
    size_t j = 0;
    for (size_t i = 0; i < b->n_entries; i++, j++) {
        while (j < a->n_entries && (strcmp(a->entries[j].key, b->entries[i].key) ||
                                    strcmp(a->entries[j].val, b->entries[i].val)))
            j++;
        if (j == a->n_entries)
            return false;
    }
    for (int f = 0; f < INFO_FIELD_COUNT; f++)
        if (info_has(a, (enum info_field)f) != info_has(b, (enum info_field)f) ||
            !same_num(info_num(a, (enum info_field)f), info_num(b, (enum info_field)f)) ||
            !same_str(info_num_text(a, (enum info_field)f), info_num_text(b, (enum info_field)f)))
            return false;
    for (int k = 0; k < INFO_SFIELD_COUNT; k++)
        if (!same_str(info_sval(a, (enum info_sfield)k), info_sval(b, (enum info_sfield)k)))
            return false;
    if (a->n_cmds != b->n_cmds || a->n_errs != b->n_errs || a->n_lats != b->n_lats || a->n_dbs != b->n_dbs ||
        a->n_replicas != b->n_replicas)
        return false;
    for (size_t i = 0; i < a->n_cmds; i++) {
        const struct info_cmdstat *x = &a->cmds[i], *y = &b->cmds[i];
        if (strcmp(x->cmd, y->cmd) || !same_num(x->calls, y->calls) || !same_num(x->usec, y->usec) ||
            !same_num(x->rejected_calls, y->rejected_calls) || !same_num(x->failed_calls, y->failed_calls))
            return false;
    }
    for (size_t i = 0; i < a->n_errs; i++)
        if (strcmp(a->errs[i].err, b->errs[i].err) || !same_num(a->errs[i].count, b->errs[i].count))
            return false;
    for (size_t i = 0; i < a->n_lats; i++) {
        const struct info_latency *x = &a->lats[i], *y = &b->lats[i];
        if (strcmp(x->cmd, y->cmd) || x->n != y->n)
            return false;
        for (int q = 0; q < x->n; q++)
            if (x->q[q] != y->q[q] || x->usec[q] != y->usec[q] || x->utext_len[q] != y->utext_len[q] ||
                !x->utext[q] != !y->utext[q] || (x->utext[q] && memcmp(x->utext[q], y->utext[q], x->utext_len[q])))
                return false;
    }
    for (size_t i = 0; i < a->n_dbs; i++) {
        const struct info_db *x = &a->dbs[i], *y = &b->dbs[i];
        if (strcmp(x->name, y->name) || !same_num(x->keys, y->keys) || !same_num(x->expires, y->expires) ||
            !same_num(x->avg_ttl_ms, y->avg_ttl_ms) || !same_num(x->subexpiry, y->subexpiry))
            return false;
    }
    for (size_t i = 0; i < a->n_replicas; i++) {
        const struct info_replica *x = &a->replicas[i], *y = &b->replicas[i];
        if (strcmp(x->ip, y->ip) || strcmp(x->port, y->port) || strcmp(x->state, y->state) ||
            !same_num(x->offset, y->offset) || !same_num(x->lag, y->lag))
            return false;
    }
    return true;
}

/* b holds what a holds, entry by entry (and so every value and list). */
static bool same_sample(const struct info_sample *a, const struct info_sample *b)
{
    if (a->n_entries != b->n_entries || a->malformed != b->malformed || !poll_agrees(a, b))
        return false;
    for (size_t i = 0; i < a->n_entries; i++) {
        const struct info_entry *x = &a->entries[i], *y = &b->entries[i];
        if (strcmp(x->section, y->section) || x->is_num != y->is_num || !same_num(x->num, y->num))
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *txt = (const char *)data;
    struct info_sample *prev = info_parse("", 0); /* and the key order forgets */
    struct info_sample *s = info_parse(txt, size);
    struct info_sample *p = info_parse_poll(NULL, txt, size, SIZE_MAX);
    if (!poll_agrees(s, p))
        abort(); /* a poll would have seen other values than a render */
    /* lines read at the key order's cursor (every keyed line, the second
     * time; the second half's after a parse of it) read as a parse that
     * remembers nothing read them; also with the nested lists bounded */
    p = info_parse_again(p, txt, size, SIZE_MAX);
    if (!same_sample(s, p))
        abort();
    info_sample_free(info_parse(txt + size / 2, size - size / 2));
    p = info_parse_again(p, txt, size, SIZE_MAX);
    if (!same_sample(s, p))
        abort();
    info_sample_free(info_parse("", 0));
    struct info_sample *cold = info_parse_max(txt, size, 2);
    info_sample_free(info_parse(txt, size)); /* the order has the lines past the bound */
    p = info_parse_again(p, txt, size, 2);
    if (!same_sample(cold, p))
        abort();
    info_sample_free(cold);
    info_sample_free(p);
    struct derived d;
    derive(prev, 1000000, s, 2000000, 1795975130.0, NULL, NULL, &d);
    struct label lab = {"env", "fuzz"};
    struct instance_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "f";
    cfg.address = "redis://127.0.0.1:6379";
    cfg.labels = &lab;
    cfg.n_labels = 1;
    struct poll_stats st;
    memset(&st, 0, sizeof st);
    st.polled = true;
    struct rstr *raw = rstr_new((const char *)data, size);
    struct render_input in = {&cfg, "target=\"f\",env=\"fuzz\"", s, &st, raw, &d, NULL, NULL, NULL, NULL};
    struct frag *f = render_frag(&in);
    rstr_unref(raw);
    struct buf json = BUF_INIT;
    frag_append_json(f, &json);
    cJSON *j = cJSON_ParseWithLength(json.p, json.len);
    if (!j || duplicate_key(j))
        abort(); /* redpulse wrote invalid JSON, or a key twice */
    cJSON_Delete(j);
    const char *names[] = {"f"};
    struct registry *reg = registry_new(names, 1);
    registry_publish(reg, 0, f);
    struct buf text = BUF_INIT;
    http_render_metrics(reg, "f", &text);
    size_t n;
    if (expo_check(text.p, text.len, &n, NULL, NULL, NULL))
        abort(); /* invalid exposition */
    registry_free(reg);
    buf_free(&text);
    buf_free(&json);
    derived_clear(&d);
    info_sample_free(s);
    info_sample_free(prev);
    return 0;
}
