/* fuzz_info.c - INFO text -> sample -> derived figures -> rendered output.
 * Whatever the bytes, the JSON must parse, with no object holding one key
 * twice, and the exposition must pass the strict reader. */
#include <cjson/cJSON.h>
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct info_sample *prev = info_parse("", 0);
    struct info_sample *s = info_parse((const char *)data, size);
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
