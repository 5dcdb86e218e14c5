/*
 * clockshift.c - a test fake for a fault no real server produces: the wall
 * clock stepped (NTP at boot, a VM resumed, an operator's `date -s`) under a
 * running agent, without touching the machine's clock. Preloaded
 * (LD_PRELOAD) into the agent, it adds to CLOCK_REALTIME (and its coarse
 * form) the number of seconds written in the file named by $CLOCKSHIFT_FILE,
 * read again at most every 20 ms; a file missing or not a number leaves the
 * shift as it was (start: none). Write the file whole (rename into place).
 * The monotonic clock is left alone: that is the point. time() and
 * gettimeofday() are shifted too (redpulse reads the wall clock through
 * clock_gettime, but its log lines' timestamps and its libraries use those),
 * so that no reading of the wall clock in the process escapes the step.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_fn)(clockid_t, struct timespec *);

static clock_fn real_clock;          /* set before main: no thread yet */
static atomic_llong shift_ns;        /* the shift in force */
static atomic_llong next_read_ns;    /* monotonic: when the file is read again */

__attribute__((constructor)) static void clockshift_init(void)
{
    real_clock = (clock_fn)dlsym(RTLD_NEXT, "clock_gettime");
    if (!real_clock)
        abort();
}

/* The file's shift into *ns; false (and *ns untouched) when there is none. */
static int read_shift_ns(long long *ns)
{
    const char *path = getenv("CLOCKSHIFT_FILE");
    if (!path)
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    double s = strtod(buf, &end);
    if (end == buf)
        return 0;
    *ns = (long long)(s * 1e9);
    return 1;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    clock_fn real = real_clock ? real_clock : (clock_fn)dlsym(RTLD_NEXT, "clock_gettime");
    int r = real(id, ts);
    if (r != 0 || (id != CLOCK_REALTIME && id != CLOCK_REALTIME_COARSE))
        return r;
    int saved = errno; /* the file's open/read must not show in the caller's errno */
    struct timespec m;
    real(CLOCK_MONOTONIC, &m);
    long long mono = (long long)m.tv_sec * 1000000000LL + m.tv_nsec;
    if (mono >= atomic_load(&next_read_ns)) {
        long long ns;
        if (read_shift_ns(&ns))
            atomic_store(&shift_ns, ns);
        atomic_store(&next_read_ns, mono + 20000000LL);
    }
    long long t = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + atomic_load(&shift_ns);
    if (t < 0)
        t = 0;
    ts->tv_sec = (time_t)(t / 1000000000LL);
    ts->tv_nsec = (long)(t % 1000000000LL);
    errno = saved;
    return 0;
}

time_t time(time_t *out)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out)
        *out = ts.tv_sec;
    return ts.tv_sec;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    (void)tz; /* obsolete: nothing in the process asks for a timezone here */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    tv->tv_sec = ts.tv_sec; /* glibc declares tv nonnull */
    tv->tv_usec = (suseconds_t)(ts.tv_nsec / 1000);
    return 0;
}
