/* expo_check.h - a strict reader of Prometheus text format 0.0.4 for the
 * tests and fuzzers, independent of the writer: it checks what promtool
 * does not (families contiguous, no duplicate series) and the escaping. */
#ifndef REDPULSE_EXPO_CHECK_H
#define REDPULSE_EXPO_CHECK_H

#include <stddef.h>

/* Called with each unescaped value of the label `label` (when non-NULL). */
typedef void (*expo_label_fn)(void *arg, const char *value);

/* Returns NULL when text is valid, else a static description of the first
 * problem. *samples gets the number of sample lines. */
const char *expo_check(const char *text, size_t len, size_t *samples, const char *label, expo_label_fn fn,
                       void *arg);

#endif
