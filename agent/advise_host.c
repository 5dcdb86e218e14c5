/*
 * advise_host.c - the advisor's one impure step: after a CONFIG GET reply,
 * decide whether the instance runs on this host and, when it does, read the
 * kernel facts its host checks need (a few small files under the configured
 * root, at the CONFIG GET cadence, never per poll).
 */
#include <stdlib.h>

#include "advise.h"
#include "log.h"

void advise_on_config(struct advisor *a, const struct instance_cfg *inst, const struct config_values *cv,
                      const struct info_sample *last, double now)
{
    const char *root = a->host_root ? a->host_root : "/";
    const char *pid_s = last ? info_sval(last, INFO_S_PROCESS_ID) : NULL;
    long pid = pid_s ? strtol(pid_s, NULL, 10) : 0;
    char how[256];
    bool local = hostfacts_is_local(root, inst, pid, how, sizeof how);
    if (a->local != (signed char)local)
        log_info("advise", "%s: %s host checks: %s", inst->name, local ? "with" : "without", how);
    a->local = (signed char)local;
    struct host_facts h;
    if (local)
        hostfacts_read(root, pid, &h);
    advise_settings(a, cv, local ? &h : NULL, now);
}
