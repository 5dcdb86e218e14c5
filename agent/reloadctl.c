/*
 * reloadctl.c - both ends of a reload that can be waited for: the daemon
 * writes $RUNTIME_DIRECTORY/reload-status at start and around each SIGHUP,
 * and `redpulse --reload PID` (systemd's ExecReload=) signals and reads the
 * outcome there. systemd 252 has no Type=notify-reload, and under
 * Type=notify a reload ends when ExecReload= exits: this is what makes it
 * end with the reload, and fail when the reload does.
 *
 * The race: the client reads the sequence number before it signals, and
 * the daemon bumps it (and says "reloading") before it reads the
 * configuration file. A reload numbered after the one the client saw, and
 * not already running then, read the file after the client was started.
 */
#include "reloadctl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "util.h"

#define STATUS_NAME "reload-status"
#define MAGIC "redpulse-reload-status 1"
#define MAX_STATUS (64u << 10)

static const char *const result_names[] = {"ok", "partial", "failed"};

/* ---- daemon side ---- */

static char *dir;     /* NULL: not publishing */
static int dir_fd = -1; /* dir, opened once: every file is made relative to it, never by path */
static uint64_t seq;
static bool running;
static enum reloadctl_result last_result = RELOADCTL_OK;
static uint64_t last_hash;
static char *last_errors;
static bool write_failed; /* warned once until it works again */

/* $RUNTIME_DIRECTORY's first entry (systemd joins several with ':'). */
static char *runtime_dir(void)
{
    const char *e = getenv("RUNTIME_DIRECTORY");
    if (!e || !*e)
        return NULL;
    return xstrndup(e, strcspn(e, ":"));
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

/* Temp file, then rename(2): a reader sees the old file or the new one. */
static void publish(void)
{
    if (!dir)
        return;
    struct buf b = BUF_INIT;
    buf_printf(&b, MAGIC "\npid %ld\nseq %" PRIu64 "\nstate %s\nresult %s\nhash %016" PRIx64 "\n", (long)getpid(),
               seq, running ? "reloading" : "done", result_names[last_result], last_hash);
    for (const char *p = last_errors ? last_errors : ""; *p;) {
        size_t l = strcspn(p, "\n");
        if (l)
            buf_printf(&b, "error %.*s\n", (int)l, p);
        p += l + (p[l] == '\n');
    }
    static const char tmp[] = "." STATUS_NAME ".tmp";
    /* made anew in the directory checked at start, never through what is
     * at the name: a symlink planted there must not have the daemon write
     * where it points */
    unlinkat(dir_fd, tmp, 0);
    int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -1 : write_all(fd, b.p, b.len);
    if (fd >= 0 && close(fd) != 0)
        rc = -1;
    if (rc == 0)
        rc = renameat(dir_fd, tmp, dir_fd, STATUS_NAME);
    if (rc != 0) {
        if (!write_failed)
            log_warn("reload", "cannot write %s/" STATUS_NAME ": %s; redpulse --reload cannot follow reloads", dir,
                     strerror(errno));
        unlinkat(dir_fd, tmp, 0);
    } else if (write_failed) {
        log_info("reload", "%s/" STATUS_NAME " written again", dir);
    }
    write_failed = rc != 0;
    buf_free(&b);
}

/* The directory to publish in, made (mode 0700) when missing and opened
 * (*fd; not through a symlink), its checks made on what was opened, so a
 * directory swapped in later is not written to; NULL after saying why when
 * another user could write in it: the status could be forged (a reload
 * reported done that is not) or its temporary file replaced. */
static char *checked_dir(char *d, int *fd)
{
    struct stat st;
    if (!d)
        return NULL;
    if (mkdir(d, 0700) != 0 && errno != EEXIST) {
        log_warn("reload", "RUNTIME_DIRECTORY %s cannot be made: %s; redpulse --reload cannot follow reloads", d,
                 strerror(errno));
        free(d);
        return NULL;
    }
    *fd = open(d, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (*fd < 0 || fstat(*fd, &st) != 0) {
        log_warn("reload", "RUNTIME_DIRECTORY %s: %s%s; redpulse --reload cannot follow reloads", d, strerror(errno),
                 errno == ELOOP || errno == ENOTDIR ? " (a symlink, or not a directory)" : "");
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
        free(d);
        return NULL;
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022)) {
        log_error("reload", "RUNTIME_DIRECTORY %s is not a directory of this user writable by it alone (owner %ld, "
                  "mode %04o): no reload status is published there; redpulse --reload cannot follow reloads",
                  d, (long)st.st_uid, (unsigned)(st.st_mode & 07777));
        close(*fd);
        *fd = -1;
        free(d);
        return NULL;
    }
    return d;
}

void reloadctl_open(uint64_t hash)
{
    dir = checked_dir(runtime_dir(), &dir_fd);
    last_hash = hash;
    publish();
}

void reloadctl_begin(void)
{
    seq++;
    running = true;
    publish();
}

void reloadctl_end(enum reloadctl_result r, uint64_t hash, const char *errors)
{
    running = false;
    last_result = r;
    last_hash = hash;
    free(last_errors);
    last_errors = errors && *errors ? xstrdup(errors) : NULL;
    publish();
}

void reloadctl_close(void)
{
    if (dir_fd >= 0) {
        unlinkat(dir_fd, STATUS_NAME, 0);
        close(dir_fd);
        dir_fd = -1;
    }
    free(dir);
    free(last_errors);
    dir = last_errors = NULL;
}

/* ---- client side ---- */

struct status {
    long pid;
    uint64_t seq;
    bool running;
    enum reloadctl_result result;
    char hash[17];
    struct buf errors; /* one a line */
};

/* Parses the file; 0, or -1 when it is missing, partial or not ours. */
static int read_status(const char *path, struct status *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char *text = xmalloc(MAX_STATUS + 1);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, text + n, MAX_STATUS - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == MAX_STATUS)
            break;
    }
    close(fd);
    text[n] = '\0';
    buf_reset(&st->errors);
    int got = 0, rc = -1;
    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    if (!line || strcmp(line, MAGIC) != 0)
        goto out;
    while ((line = strtok_r(NULL, "\n", &save))) {
        char *v = strchr(line, ' ');
        if (!v)
            goto out;
        *v++ = '\0';
        if (strcmp(line, "pid") == 0) {
            st->pid = strtol(v, NULL, 10), got |= 1;
        } else if (strcmp(line, "seq") == 0) {
            st->seq = strtoull(v, NULL, 10), got |= 2;
        } else if (strcmp(line, "state") == 0) {
            st->running = strcmp(v, "reloading") == 0, got |= 4;
        } else if (strcmp(line, "result") == 0) {
            for (int i = 0; i < 3; i++)
                if (strcmp(v, result_names[i]) == 0)
                    st->result = (enum reloadctl_result)i, got |= 8;
        } else if (strcmp(line, "hash") == 0) {
            snprintf(st->hash, sizeof st->hash, "%s", v);
        } else if (strcmp(line, "error") == 0) {
            buf_printf(&st->errors, "%s\n", v);
        }
    }
    rc = got == 15 ? 0 : -1;
out:
    free(text);
    return rc;
}

/* Sleeps until the directory changes or max_s passes (inotify; without it,
 * a short sleep). */
static void wait_change(int ino, double max_s)
{
    int ms = (int)(max_s * 1000) + 1;
    if (ms > 100)
        ms = 100; /* also look whether the process is still there */
    if (ino < 0) {
        struct timespec ts = {0, (long)(ms < 20 ? ms : 20) * 1000000L};
        nanosleep(&ts, NULL);
        return;
    }
    struct pollfd p = {ino, POLLIN, 0};
    if (poll(&p, 1, ms) > 0) {
        char ev[4096];
        while (read(ino, ev, sizeof ev) > 0) {
        }
    }
}

int reloadctl_client(const char *pid_arg, const char *timeout_arg)
{
    char *end;
    errno = 0;
    long pid = strtol(pid_arg, &end, 10);
    if (errno || end == pid_arg || *end || pid <= 1) {
        char shown[PRINTABLE_MAX];
        fprintf(stderr, "redpulse: --reload wants the daemon's process id (> 1), not \"%s\"\n",
                printable(pid_arg, shown, sizeof shown));
        return 2;
    }
    double timeout = 30;
    if (timeout_arg && (!parse_double(timeout_arg, &timeout) || !(timeout > 0) || timeout > 86400)) {
        char shown[PRINTABLE_MAX];
        fprintf(stderr, "redpulse: --reload-timeout wants seconds (0 < s <= 86400), not \"%s\"\n",
                printable(timeout_arg, shown, sizeof shown));
        return 2;
    }
    char *d = runtime_dir();
    if (!d) {
        fprintf(stderr, "redpulse: RUNTIME_DIRECTORY is not set: it names the directory where the daemon "
                        "publishes its reloads (systemd sets it with RuntimeDirectory=; elsewhere set it "
                        "for both the daemon and --reload)\n");
        return 2;
    }
    struct buf path = BUF_INIT;
    buf_printf(&path, "%s/" STATUS_NAME, d);
    int ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (ino >= 0 && inotify_add_watch(ino, d, IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE) < 0) {
        close(ino);
        ino = -1;
    }
    struct status st = {0};
    double deadline = now_mono_s() + timeout;
    int rc = 3;
    /* 1. PID's own status: its sequence number before the signal */
    for (;;) {
        if (read_status(path.p, &st) == 0 && st.pid == pid)
            break;
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            fprintf(stderr, "redpulse: no process %ld\n", pid);
            goto out;
        }
        double left = deadline - now_mono_s();
        if (left <= 0) {
            fprintf(stderr, "redpulse: process %ld published no reload status in %s within %g s (not "
                            "redpulse, still starting, or started with another RUNTIME_DIRECTORY); not "
                            "signalled\n", pid, path.p, timeout);
            goto out;
        }
        wait_change(ino, left);
    }
    /* The daemon numbers a reload when it begins. Done at seq S: the next
     * one, S + 1, begins after now. Running S (it may have read the file
     * before we were started): the next one, S + 1, begins after it ends.
     * Our SIGHUP may be folded into that next one with other clients'. */
    uint64_t want = st.seq + 1;
    /* 2. the signal */
    if (kill((pid_t)pid, SIGHUP) != 0) {
        fprintf(stderr, "redpulse: cannot signal process %ld: %s\n", pid, strerror(errno));
        goto out;
    }
    /* 3. the end of a reload that started after step 1 */
    for (;;) {
        if (read_status(path.p, &st) == 0 && st.pid == pid && !st.running && st.seq >= want)
            break;
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            fprintf(stderr, "redpulse: process %ld exited during the reload\n", pid);
            goto out;
        }
        double left = deadline - now_mono_s();
        if (left <= 0) {
            fprintf(stderr, "redpulse: process %ld did not finish reloading within %g s (it may still be "
                            "reading the configuration); its outcome will be in its log and in "
                            "redpulse_config_last_reload_successful\n", pid, timeout);
            goto out;
        }
        wait_change(ino, left);
    }
    if (st.errors.p)
        fputs(st.errors.p, stderr);
    if (st.result == RELOADCTL_OK) {
        printf("redpulse: process %ld reloaded: configuration hash %s\n", pid, st.hash);
        rc = 0;
    } else if (st.result == RELOADCTL_PARTIAL) {
        fprintf(stderr, "redpulse: process %ld applied the new configuration (hash %s) except what the errors "
                        "above name, which keeps its previous settings\n", pid, st.hash);
        rc = 1;
    } else {
        fprintf(stderr, "redpulse: reload failed; process %ld keeps running the previous configuration "
                        "(hash %s)\n", pid, st.hash);
        rc = 1;
    }
out:
    if (ino >= 0)
        close(ino);
    buf_free(&st.errors);
    buf_free(&path);
    free(d);
    return rc;
}
