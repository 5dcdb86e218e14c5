/*
 * sdnotify.c - readiness, status, watchdog and reload notifications to
 * systemd, written the way sd_notify(3)'s reference implementation does:
 * one SOCK_DGRAM datagram per message, no libsystemd, nothing when the
 * service manager did not ask for it.
 */
#include "sdnotify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int fd = -1;
static struct sockaddr_un addr;
static socklen_t addr_len;
static uint64_t watchdog_usec;
static char where[sizeof addr.sun_path + 1]; /* NOTIFY_SOCKET as given, for messages */

int sdnotify_init(void)
{
    const char *e = getenv("NOTIFY_SOCKET");
    const char *w = getenv("WATCHDOG_USEC");
    const char *wp = getenv("WATCHDOG_PID");
    if (w && (!wp || strtol(wp, NULL, 10) == (long)getpid())) {
        char *end;
        unsigned long long v = strtoull(w, &end, 10);
        if (*w && !*end && v > 0)
            watchdog_usec = v;
        else
            log_warn("systemd", "ignoring WATCHDOG_USEC=\"%s\": not a positive number", w);
    }
    if (!e || !*e)
        return 0;
    size_t l = strlen(e);
    if (e[0] != '/' && e[0] != '@') {
        log_error("systemd", "NOTIFY_SOCKET=\"%s\" is neither an absolute path nor an abstract \"@name\"", e);
        return -1;
    }
    /* a path needs its NUL in sun_path; an abstract name fills it all */
    if (l > sizeof addr.sun_path - (e[0] == '/')) {
        log_error("systemd", "NOTIFY_SOCKET=\"%s\" is %zu bytes: a socket address holds at most %zu", e, l,
                  sizeof addr.sun_path - (e[0] == '/'));
        return -1;
    }
    snprintf(where, sizeof where, "%s", e);
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, e, l);
    if (e[0] == '@')
        addr.sun_path[0] = '\0'; /* abstract namespace: no trailing NUL counted */
    addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + l + (e[0] == '/'));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        log_error("systemd", "cannot create the notification socket: %s", strerror(errno));
        return -1;
    }
    return 0;
}

bool sdnotify_enabled(void) { return fd >= 0; }

uint64_t sdnotify_watchdog_usec(void) { return watchdog_usec; }

void sdnotify_send(const char *fmt, ...)
{
    if (fd < 0)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof msg)
        n = sizeof msg - 1;
    if (sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (const struct sockaddr *)&addr, addr_len) < 0) {
        /* READY=1 and STOPPING=1 lost are a start or a stop systemd waits
         * out: always said; the others (status, watchdog) once, then at
         * debug level */
        static bool warned;
        const char *nl = memchr(msg, '\n', (size_t)n);
        int first = nl ? (int)(nl - msg) : n;
        bool state = strncmp(msg, "READY=1", 7) == 0 || strncmp(msg, "STOPPING=1", 10) == 0;
        if (state || !warned)
            log_warn("systemd", "notification %.*s not sent to %s: %s", first, msg, where, strerror(errno));
        else
            log_debug("systemd", "notification %.*s not sent: %s", first, msg, strerror(errno));
        warned |= !state; /* READY=1 and STOPPING=1 do not use up the others' one warning */
    }
}

void sdnotify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    sdnotify_send("RELOADING=1\nMONOTONIC_USEC=%llu",
                  (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
}

void sdnotify_close(void)
{
    if (fd >= 0)
        close(fd);
    fd = -1;
}
