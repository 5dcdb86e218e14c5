/*
 * selfstat.h - the process_* metrics every Prometheus exporter serves (CPU
 * time, memory, descriptors, start time), read from /proc/self on request,
 * so fleet dashboards and alerts written for exporters see redpulse too.
 */
#ifndef REDPULSE_SELFSTAT_H
#define REDPULSE_SELFSTAT_H

#include "buf.h"

/* Appends process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds and
 * process_start_time_seconds. A family whose source cannot be read is left
 * out. Thread-safe; reads a few small /proc files. */
void selfstat_render(struct buf *b);

#endif
