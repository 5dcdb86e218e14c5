/*
 * hostfacts.c - reads the kernel's write-path settings and a Redis process'
 * limits, the facts Redis itself warns about once at start (THP, overcommit,
 * somaxconn) and never again. Everything goes through a root directory so
 * tests read prepared trees instead of this machine's /proc and /sys.
 */
#include "hostfacts.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *hostfacts_thp_str(enum thp_mode m)
{
    return m == THP_ALWAYS ? "always" : m == THP_MADVISE ? "madvise" : m == THP_NEVER ? "never" : "unknown";
}

/* Reads root/rel into buf (NUL-terminated); returns bytes or -1. Only a
 * regular file is read (the kernel's files under /proc and /sys are): under
 * a host_root of someone's making, a FIFO there would otherwise block the
 * loop thread in open() or read(), polls and SIGTERM with it. */
static ssize_t read_small(const char *root, const char *rel, char *buf, size_t n)
{
    char path[1024];
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/')
        rl--;
    if (snprintf(path, sizeof path, "%.*s/%s", (int)(rl == 1 && root[0] == '/' ? 0 : rl), root, rel) >= (int)sizeof path)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    while (got < n - 1) {
        ssize_t r = read(fd, buf + got, n - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    return (ssize_t)got;
}

enum thp_mode hostfacts_parse_thp(const char *text)
{
    const char *o = strchr(text, '['), *c = o ? strchr(o, ']') : NULL;
    if (!o || !c)
        return THP_UNKNOWN;
    size_t len = (size_t)(c - o - 1);
    if (len == 6 && strncmp(o + 1, "always", 6) == 0)
        return THP_ALWAYS;
    if (len == 7 && strncmp(o + 1, "madvise", 7) == 0)
        return THP_MADVISE;
    if (len == 5 && strncmp(o + 1, "never", 5) == 0)
        return THP_NEVER;
    return THP_UNKNOWN;
}

/* v when lo <= v <= hi, else -1 (unknown): a value the kernel never
 * writes must not become one it does, as a cast to int would make it. */
static long in_range(long v, long lo, long hi) { return v >= lo && v <= hi ? v : -1; }

static long parse_long(const char *s, long bad)
{
    char *end;
    while (*s == ' ' || *s == '\t')
        s++;
    long v = strtol(s, &end, 10);
    if (end == s)
        return bad;
    return v;
}

long hostfacts_parse_nofile(const char *text)
{
    const char *l = strstr(text, "Max open files");
    if (!l)
        return -1;
    const char *p = l + strlen("Max open files");
    while (*p == ' ')
        p++;
    if (strncmp(p, "unlimited", 9) == 0)
        return -2;
    return parse_long(p, -1);
}

void hostfacts_read_kernel(const char *root, struct host_facts *out)
{
    char buf[4096];
    out->thp = THP_UNKNOWN;
    out->overcommit_memory = -1;
    out->somaxconn = -1;
    if (read_small(root, "sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof buf) > 0)
        out->thp = hostfacts_parse_thp(buf);
    if (read_small(root, "proc/sys/vm/overcommit_memory", buf, sizeof buf) > 0)
        out->overcommit_memory = (int)in_range(parse_long(buf, -1), 0, 2); /* the kernel takes 0, 1, 2 */
    if (read_small(root, "proc/sys/net/core/somaxconn", buf, sizeof buf) > 0)
        out->somaxconn = in_range(parse_long(buf, -1), 0, INT_MAX);
}

void hostfacts_read(const char *root, long pid, struct host_facts *out)
{
    hostfacts_read_kernel(root, out);
    hostfacts_read_process(root, pid, out);
}

void hostfacts_read_process(const char *root, long pid, struct host_facts *out)
{
    char buf[4096];
    out->nofile_soft = -1;
    out->pid = pid > 0 ? pid : 0;
    if (pid > 0) {
        char rel[64];
        snprintf(rel, sizeof rel, "proc/%ld/limits", pid);
        if (read_small(root, rel, buf, sizeof buf) > 0)
            out->nofile_soft = hostfacts_parse_nofile(buf);
    }
}

static bool loopback_host(const char *h)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(h, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, h, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, h, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

bool hostfacts_is_local(const char *root, const struct instance_cfg *cfg, long pid, char *how, size_t n)
{
    if (cfg->kind == ADDR_UNIX) {
        snprintf(how, n, "unix socket %s", cfg->path);
        return true;
    }
    if (!loopback_host(cfg->host)) {
        snprintf(how, n, "%s is not a loopback address", cfg->host);
        return false;
    }
    if (pid <= 0) {
        snprintf(how, n, "process_id not known yet");
        return false;
    }
    char rel[64], comm[64];
    snprintf(rel, sizeof rel, "proc/%ld/comm", pid);
    if (read_small(root, rel, comm, sizeof comm) <= 0) {
        snprintf(how, n, "loopback, but no local process %ld (another host's port forwarded, or a container)", pid);
        return false;
    }
    comm[strcspn(comm, "\n")] = '\0';
    if (strncmp(comm, "redis-server", 12) != 0 && strncmp(comm, "valkey-server", 13) != 0) {
        snprintf(how, n, "loopback, but local process %ld is \"%s\", not redis-server", pid, comm);
        return false;
    }
    snprintf(how, n, "loopback address and local process %ld is %s", pid, comm);
    return true;
}
