/*
 * reload.h - configuration generations and what the last reload did.
 *
 * A generation is one parsed, validated configuration plus the hash of the
 * file it came from. It is immutable and reference-counted: the poller runs
 * one, the HTTP server holds the one it was started with, and a generation
 * is freed when the last holder lets go.
 */
#ifndef REDPULSE_RELOAD_H
#define REDPULSE_RELOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"

struct cfg_gen {
    atomic_long refs;
    struct config *cfg;
    uint64_t hash; /* FNV-1a 64 of the file's bytes; of "" for the built-in one */
};

/* Reads and validates path (NULL: the built-in configuration). Returns a
 * generation (refs = 1), or NULL with every problem appended to errs. The
 * file is read with plain blocking reads on the calling thread. */
struct cfg_gen *cfg_gen_load(const char *path, struct config_errors *errs);
struct cfg_gen *cfg_gen_ref(struct cfg_gen *g);  /* NULL-safe */
void cfg_gen_unref(struct cfg_gen *g);           /* NULL-safe; frees at zero */

/* Records the outcome of a load or reload for the metrics below (the first
 * load counts as a successful one). hash: of the generation now running. */
void reload_record(bool ok, uint64_t hash);
/* Appends redpulse_config_last_reload_successful,
 * redpulse_config_last_reload_success_timestamp_seconds and the info metric
 * redpulse_config_hash{hash="..."}. Thread-safe. */
void reload_render_metrics(struct buf *b);

#endif
