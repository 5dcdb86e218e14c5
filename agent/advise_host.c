/*
 * advise_host.c - the advisor's one impure step: after a CONFIG GET reply,
 * decide whether the instance runs on this host and, when it does, read the
 * facts its host checks need. procfs and sysfs reads cost tens of
 * microseconds each, so they are cached: the decision and the process'
 * limits per instance until its process_id changes or host_interval passes,
 * the kernel-wide settings once per host_interval for every instance.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "advise.h"
#include "log.h"

/* The kernel-wide facts of one root, shared by every instance. Touched only
 * by the thread that runs the advisor (the event loop; --advise). */
static struct {
    char root[512];
    double ts;
    struct host_facts k;
} kernel;

static const struct host_facts *kernel_facts(const char *root, double now, double interval)
{
    if (kernel.ts == 0 || now - kernel.ts >= interval || now < kernel.ts || strcmp(kernel.root, root) != 0) {
        hostfacts_read_kernel(root, &kernel.k);
        snprintf(kernel.root, sizeof kernel.root, "%s", root);
        kernel.ts = now;
    }
    return &kernel.k;
}

void advise_on_config(struct advisor *a, const struct instance_cfg *inst, const struct config_values *cv,
                      const struct info_sample *last, double now)
{
    const char *root = a->host_root ? a->host_root : "/";
    const char *pid_s = last ? info_sval(last, INFO_S_PROCESS_ID) : NULL;
    long pid = pid_s ? strtol(pid_s, NULL, 10) : 0;
    if (a->local < 0 || pid != a->host.pid || now - a->host_ts >= a->host_interval || now < a->host_ts) {
        char how[256];
        bool local = hostfacts_is_local(root, inst, pid, how, sizeof how);
        if (a->local != (signed char)local)
            log_info("advise", "%s: %s host checks: %s", inst->name, local ? "with" : "without", how);
        a->local = (signed char)local;
        if (local)
            hostfacts_read_process(root, pid, &a->host);
        a->host.pid = pid; /* decided for this process */
        a->host_ts = now;
    }
    struct host_facts h;
    if (a->local == 1) {
        h = *kernel_facts(root, now, a->host_interval);
        h.nofile_soft = a->host.nofile_soft;
        h.pid = a->host.pid;
    }
    advise_settings(a, cv, a->local == 1 ? &h : NULL, now);
}
