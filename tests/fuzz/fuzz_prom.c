/* fuzz_prom.c - the exposition writer with hostile names and label values:
 * instances named by the fuzzer (with labels), commands and error prefixes
 * from the fuzzer in their INFO. The assembled /metrics must pass the
 * strict reader, and every target label must read back as the exact name. */
#include <stdint.h>

#include "fuzz.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expo_check.h"
#include "http.h"
#include "info.h"
#include "prom.h"
#include "render.h"
#include "util.h"

struct seen {
    const char **names;
    int n, hits;
};

static void on_target(void *arg, const char *v)
{
    struct seen *s = arg;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], v) == 0) {
            s->hits++;
            return;
        }
    abort(); /* a target value that is no instance's name: escaping broke */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* fields separated by NUL: names, then a label value, then a command */
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *field[8] = {"a", "b", "c", "v", "cmd", "ERR"};
    int nf = 0;
    for (size_t off = 0; off <= size && nf < 6; nf++) {
        field[nf] = copy + off;
        off += strlen(copy + off) + 1;
    }
    int ninst = 3;
    /* names must be distinct and non-empty to be a valid configuration */
    for (int i = 0; i < ninst; i++)
        for (int k = 0; k < i; k++)
            if (!*field[i] || strcmp(field[i], field[k]) == 0) {
                free(copy);
                return 0;
            }
    if (!*field[0]) {
        free(copy);
        return 0;
    }
    /* the configuration only accepts names that are valid UTF-8 */
    for (int i = 0; i < ninst; i++)
        for (const unsigned char *u = (const unsigned char *)field[i]; *u; u++)
            if (*u >= 0x80) {
                size_t k = utf8_seq_len(u);
                if (!k) {
                    free(copy);
                    return 0;
                }
                u += k - 1;
            }
    char info[512];
    int il = snprintf(info, sizeof info, "# Commandstats\ncmdstat_%.100s:calls=3,usec=9\n# Errorstats\nerrorstat_%.100s:count=2\n"
                      "# Keyspace\ndb0:keys=1,expires=0,avg_ttl=0\n", field[4], field[5]);
    struct info_sample *s = info_parse(info, (size_t)il);
    const char *names[3] = {field[0], field[1], field[2]};
    struct registry *reg = registry_new(names, 3);
    struct label lab = {"note", (char *)field[3]};
    for (int i = 0; i < ninst; i++) {
        struct instance_cfg cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.name = (char *)names[i];
        cfg.address = "redis://h:1";
        cfg.labels = &lab;
        cfg.n_labels = 1;
        struct buf pre = BUF_INIT;
        prom_label_prefix(&pre, cfg.name, cfg.labels, cfg.n_labels);
        struct poll_stats st;
        memset(&st, 0, sizeof st);
        st.polled = true;
        struct render_input in = {&cfg, pre.p, i == 2 ? NULL : s, &st, NULL, NULL, NULL, NULL, NULL, NULL};
        registry_publish(reg, (size_t)i, render_frag(&in));
        buf_free(&pre);
    }
    struct buf text = BUF_INIT;
    http_render_metrics(reg, NULL, &text);
    size_t n;
    struct seen seen = {names, ninst, 0};
    const char *err = expo_check(text.p, text.len, &n, "target", on_target, &seen);
    if (err) {
        fprintf(stderr, "exposition rejected: %s\n", err);
        abort();
    }
    if (seen.hits == 0 || (size_t)seen.hits != n - 3 - 11 - 1 - 3 - 6 /* global series: 3 gauges, the lateness histogram, redpulse_renders_total, 3 config reload series, 6 process_* */)
        abort();
    buf_free(&text);
    registry_free(reg);
    info_sample_free(s);
    free(copy);
    return 0;
}
