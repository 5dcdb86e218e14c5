/* fuzz_resp.c - the RESP read path as the connection layer feeds it (any
 * split of the bytes, the size cap), and what the poller does with each
 * reply: INFO text to the parser, arrays to COMMAND INFO, CONFIG GET and
 * LATENCY LATEST readers. */
#include <stdint.h>

#include "fuzz.h"
#include <stdlib.h>
#include <string.h>

#include "cmdclass.h"
#include "collect.h"
#include "conn.h"
#include "info.h"
#include "util.h"

static bool on_reply(void *arg, redisReply *r)
{
    (void)arg;
    if (r->type == REDIS_REPLY_STRING) {
        info_sample_free(info_parse(r->str, r->len));
    } else if (r->type == REDIS_REPLY_ARRAY) {
        const char *names[] = {"set", "get", "config|get", "x"};
        struct cmdclass_map *m = cmdclass_map_new();
        cmdclass_map_learn(m, names, 4, r);
        cmdclass_map_free(m);
        struct config_values cv;
        memset(&cv, 0, sizeof cv);
        collect_config_reply(&cv, r);
        for (int p = 0; p < CFGP_COUNT; p++)
            (void)cfg_value_num(&cv, (enum cfg_param)p);
        config_values_clear(&cv);
        struct latency_values lv;
        memset(&lv, 0, sizeof lv);
        collect_latency_reply(&lv, r);
        /* event names are label values and JSON keys: whole (a NUL would
         * have cut one), valid UTF-8 with no control character (U+FFFD would
         * make two equal) and each once */
        for (size_t i = 0; i < lv.n; i++) {
            const char *nm = lv.ev[i].name;
            for (const unsigned char *c = (const unsigned char *)nm; *c; c++)
                if (*c < 0x20 || *c == 0x7f)
                    abort();
            if (!utf8_valid(nm))
                abort();
            for (size_t k = 0; k < i; k++)
                if (strcmp(nm, lv.ev[k].name) == 0)
                    abort();
        }
    }
    return true;
}

static bool keep_one(void *arg, redisReply *r)
{
    redisReply **out = arg;
    if (!*out && r->type == REDIS_REPLY_STRING) {
        *out = malloc(sizeof **out + r->len + 1);
        **out = *r;
        (*out)->str = (char *)(*out + 1);
        memcpy((*out)->str, r->str, r->len + 1);
    }
    return true;
}

/* The reader-less fast path agrees with hiredis whenever it says yes. */
static void whole_bulk_agrees(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    redisReply fast;
    if (resp_whole_bulk(copy, size, 1 << 20, &fast)) {
        char detail[200];
        redisReply *slow = NULL;
        redisReader *r = resp_reader_new();
        if (resp_feed(r, (const char *)data, size, 1 << 20, keep_one, &slow, detail, sizeof detail) != OUTCOME_OK ||
            !slow || slow->len != fast.len || memcmp(slow->str, fast.str, fast.len + 1) != 0 ||
            r->pos != r->len)
            abort();
        free(slow);
        resp_reader_free(r);
    }
    free(copy);
}

/* What the cap must bound, counted from below: every delivered reply's
 * least wire size plus RESP_ELEM_COST per element. */
static size_t least_cost(const redisReply *r)
{
    size_t c = RESP_ELEM_COST + 4; /* type byte, one digit or char, CRLF */
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR)
        c = RESP_ELEM_COST + 3 + r->len;
    else if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            c += least_cost(r->element[i]);
    return c;
}

struct record {
    size_t cap;
    struct buf_sig {
        char *p;
        size_t len;
    } sig;
};

static void sig_put(struct buf_sig *b, const void *p, size_t n)
{
    b->p = realloc(b->p, b->len + n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void sig_reply(struct buf_sig *b, const redisReply *r)
{
    sig_put(b, &r->type, sizeof r->type);
    if (r->type == REDIS_REPLY_INTEGER)
        sig_put(b, &r->integer, sizeof r->integer);
    if (r->str) {
        sig_put(b, &r->len, sizeof r->len);
        sig_put(b, r->str, r->len);
    }
    sig_put(b, &r->elements, sizeof r->elements);
    for (size_t i = 0; i < r->elements; i++)
        sig_reply(b, r->element[i]);
}

static bool on_reply_checked(void *arg, redisReply *r)
{
    struct record *rec = arg;
    if (least_cost(r) > rec->cap)
        abort(); /* a reply over the cap got through */
    sig_reply(&rec->sig, r);
    return on_reply(NULL, r);
}

/* The same bytes, whole or cut into reads of step bytes, give the same
 * replies, none over the cap. */
static void splits_agree(const uint8_t *data, size_t size, size_t cap)
{
    struct record whole = {cap, {NULL, 0}}, cut = {cap, {NULL, 0}};
    char detail[200];
    redisReader *r = resp_reader_new();
    enum outcome ow = size ? resp_feed(r, (const char *)data, size, cap, on_reply_checked, &whole, detail, sizeof detail)
                           : OUTCOME_OK;
    resp_reader_free(r);
    r = resp_reader_new();
    enum outcome oc = OUTCOME_OK;
    for (size_t off = 0; off < size && oc == OUTCOME_OK; off++)
        oc = resp_feed(r, (const char *)data + off, 1, cap, on_reply_checked, &cut, detail, sizeof detail);
    resp_reader_free(r);
    if ((ow == OUTCOME_OK) != (oc == OUTCOME_OK) || whole.sig.len != cut.sig.len ||
        (whole.sig.len && memcmp(whole.sig.p, cut.sig.p, whole.sig.len) != 0))
        abort();
    free(whole.sig.p);
    free(cut.sig.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char detail[200];
    whole_bulk_agrees(data, size);
    if (size > 1 && size < 4096) {
        splits_agree(data + 1, size - 1, 64);
        splits_agree(data + 1, size - 1, 1 << 20);
    }
    /* the first byte picks how the stream is cut into reads */
    size_t step = size ? (size_t)data[0] % 7 + 1 : 1;
    for (int pass = 0; pass < 2; pass++) {
        redisReader *r = resp_reader_new();
        size_t cap = pass ? 64 : 1 << 20;
        for (size_t off = 1; off < size;) {
            size_t n = pass ? step : size - off;
            if (n > size - off)
                n = size - off;
            enum outcome o = resp_feed(r, (const char *)data + off, n, cap, on_reply, NULL, detail, sizeof detail);
            if (o != OUTCOME_OK)
                break;
            off += n;
        }
        resp_reader_free(r);
    }
    return 0;
}
