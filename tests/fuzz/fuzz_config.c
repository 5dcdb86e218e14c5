/* fuzz_config.c - the configuration parser and validator on any bytes:
 * either a config whose every instance is complete, or errors; never both. */
#include <stdint.h>

#include "fuzz.h"
#include <stdlib.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    log_set_level(LOG_ERROR); /* warnings about inline passwords are expected */
    struct config_errors e = {BUF_INIT, 0};
    struct config *c = config_parse((const char *)data, size, "fuzz", &e);
    if (c && e.count)
        abort();
    if (!c && !e.count)
        abort();
    for (size_t i = 0; c && i < c->n_instances; i++) {
        const struct instance_cfg *ic = &c->instances[i];
        if (!ic->name || !ic->address || ic->timeout_ms >= ic->interval_ms)
            abort();
        if (ic->kind == ADDR_TCP ? !ic->host || !ic->port : !ic->path)
            abort();
    }
    config_free(c);
    config_errors_free(&e);
    return 0;
}
