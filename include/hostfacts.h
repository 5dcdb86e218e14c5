/*
 * hostfacts.h - the kernel settings that decide whether a Redis on this host
 * can write fast and fork safely: transparent huge pages, overcommit,
 * somaxconn, and the server process' open-files limit. Every path is read
 * under a configurable root ("/" in production, a prepared tree in tests).
 * Reads a handful of small files; blocking, but only procfs/sysfs.
 */
#ifndef REDPULSE_HOSTFACTS_H
#define REDPULSE_HOSTFACTS_H

#include <stdbool.h>

#include "config.h"

enum thp_mode { THP_UNKNOWN, THP_ALWAYS, THP_MADVISE, THP_NEVER };

struct host_facts {
    enum thp_mode thp;      /* sys/kernel/mm/transparent_hugepage/enabled, the [bracketed] word */
    int overcommit_memory;  /* proc/sys/vm/overcommit_memory; -1 unknown */
    long somaxconn;         /* proc/sys/net/core/somaxconn; -1 unknown */
    long nofile_soft;       /* proc/PID/limits "Max open files" soft; -1 unknown, -2 unlimited */
    long pid;               /* the server's process id the limits came from; 0 none */
};

/* "always", "madvise", "never", "unknown". */
const char *hostfacts_thp_str(enum thp_mode m);
/* Parses the text of transparent_hugepage/enabled ("always [madvise] never"). */
enum thp_mode hostfacts_parse_thp(const char *text);
/* Parses /proc/PID/limits text: the soft "Max open files" (-2 unlimited, -1
 * not found). */
long hostfacts_parse_nofile(const char *text);

/* Reads the facts under root (pid > 0: also that process' limits). Fields
 * that cannot be read stay unknown; never fails. */
void hostfacts_read(const char *root, long pid, struct host_facts *out);
/* The kernel-wide part only (thp, overcommit_memory, somaxconn). */
void hostfacts_read_kernel(const char *root, struct host_facts *out);
/* The process part only (nofile_soft and pid). */
void hostfacts_read_process(const char *root, long pid, struct host_facts *out);

/* Decides whether an instance runs on this host, and says why in how (n
 * bytes): a unix socket is; a TCP address is when its host is a loopback
 * literal (127.0.0.0/8, ::1) or "localhost" AND root/proc/PID/comm of the
 * server's INFO process_id names a redis-server (or valkey-server) process.
 * pid <= 0 (not known yet): TCP is not local. */
bool hostfacts_is_local(const char *root, const struct instance_cfg *cfg, long pid, char *how, size_t n);

#endif
