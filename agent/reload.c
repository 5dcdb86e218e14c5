/*
 * reload.c - configuration generations: read the file once, hash its bytes
 * (so a fleet can see which agents run which configuration), parse and
 * validate it with config.c, and hand out references. Also keeps what the
 * last reload did, for the redpulse_config_* metrics.
 */
#include "reload.h"

#include <stdlib.h>
#include <string.h>

#include "globals.h"
#include "prom.h"
#include "util.h"

static atomic_int last_ok = 1;
static atomic_llong last_ok_ms; /* Unix milliseconds of the last success */
static atomic_ullong running_hash;

struct cfg_gen *cfg_gen_load(const char *path, struct config_errors *errs)
{
    struct config *c = NULL;
    uint64_t h = FNV1A_BASIS; /* of an empty file */
    if (!path) {
        c = config_default();
    } else {
        struct buf b = BUF_INIT;
        if (config_read_file(path, &b, errs) == 0) {
            h = fnv1a(FNV1A_BASIS, b.p ? b.p : "", b.len);
            c = config_parse(b.p ? b.p : "", b.len, path, errs);
        }
        if (b.p)
            explicit_bzero(b.p, b.len); /* may hold inline passwords */
        buf_free(&b);
    }
    if (!c)
        return NULL;
    struct cfg_gen *g = xcalloc(1, sizeof *g);
    atomic_init(&g->refs, 1);
    g->cfg = c;
    g->hash = h;
    return g;
}

struct cfg_gen *cfg_gen_ref(struct cfg_gen *g)
{
    if (g)
        atomic_fetch_add(&g->refs, 1);
    return g;
}

void cfg_gen_unref(struct cfg_gen *g)
{
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    config_free(g->cfg);
    free(g);
}

void reload_record(bool ok, uint64_t hash)
{
    atomic_store(&last_ok, ok);
    /* a reload that failed in part (HTTP settings) still runs the rest of
     * the new file: the hash follows what runs, not what succeeded */
    atomic_store(&running_hash, hash);
    if (ok)
        atomic_store(&last_ok_ms, (long long)(now_real_us() / 1000));
}

void reload_render_metrics(struct buf *b)
{
    global_header(b, GLOBAL_CONFIG_RELOAD_OK);
    buf_printf(b, " %d\n", atomic_load(&last_ok));
    global_header(b, GLOBAL_CONFIG_RELOAD_TS);
    buf_putc(b, ' ');
    buf_put_double(b, (double)atomic_load(&last_ok_ms) / 1e3);
    buf_putc(b, '\n');
    global_header(b, GLOBAL_CONFIG_HASH);
    buf_printf(b, "{%s=\"%016llx\"} 1\n", PL(HASH), (unsigned long long)atomic_load(&running_hash));
}
