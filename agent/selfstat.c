/*
 * selfstat.c - process_* metrics with the names and meanings of the
 * Prometheus client libraries (client_golang's process collector): figures
 * from /proc/self/stat, /proc/self/fd and getrlimit, computed per scrape.
 */
#include "selfstat.h"

#include "globals.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const struct {
    const char *name, *type, *help;
} fams[] = {
#define X(id, name, type, help) {name, #type[0] == 'C' ? "counter" : "gauge", help},
#include "globals.def"
#undef X
};

void global_header(struct buf *b, enum global_family f)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s", fams[f].name, fams[f].help, fams[f].name, fams[f].type,
               fams[f].name);
}

static void family(struct buf *b, enum global_family f, double v)
{
    global_header(b, f);
    buf_putc(b, ' ');
    buf_put_double(b, v);
    buf_putc(b, '\n');
}

/* Seconds since the epoch at which the system booted (for the start time). */
static double boot_time(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    char line[256];
    double bt = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "btime ", 6) == 0) {
            bt = (double)strtoull(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return bt;
}

void selfstat_render(struct buf *b)
{
    double tick = (double)sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    char st[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(st, 1, sizeof st - 1, f) : 0;
    if (f)
        fclose(f);
    st[n] = '\0';
    /* fields after the command name, which may hold spaces and ')' */
    char *p = strrchr(st, ')');
    unsigned long long utime, stime, start, vsize;
    long long rss;
    if (p && p[1] == ' ' && tick > 0 && /* p + 2 stays inside what was read */
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %lld",
               &utime, &stime, &start, &vsize, &rss) == 5) {
        family(b, GLOBAL_PROCESS_CPU, (double)(utime + stime) / tick);
        family(b, GLOBAL_PROCESS_RSS, (double)rss * (double)page);
        family(b, GLOBAL_PROCESS_VSZ, (double)vsize);
        double bt = boot_time();
        if (bt >= 0)
            family(b, GLOBAL_PROCESS_START, bt + (double)start / tick);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long fds = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            fds += e->d_name[0] != '.';
        closedir(d);
        family(b, GLOBAL_PROCESS_FDS, (double)(fds - 1)); /* not the directory's own */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        family(b, GLOBAL_PROCESS_MAX_FDS, rl.rlim_cur == RLIM_INFINITY ? 1e308 : (double)rl.rlim_cur);
}
