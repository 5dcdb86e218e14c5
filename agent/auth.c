/*
 * auth.c - bcrypt basic auth for the HTTP server. The HTTP threads only
 * look up the cache of good logins (a SHA-256 of user, password and hash)
 * and the per-address failure budget; crypt_r runs on AUTH_WORKERS threads
 * of its own, fed by a short queue, and reports back through a callback.
 * OpenSSL gives SHA-256 and a constant-time compare. Nothing here logs a
 * password.
 */
#include "auth.h"

#include <crypt.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"
#include "peerlimit.h"
#include "prom.h"
#include "util.h"

#define CACHE_SLOTS 64
#define LIMIT_SLOTS 1024
#define LIMIT_PROBES 8

struct cached {
    unsigned char key[32];
    uint64_t expires_us;
    uint64_t checked_us; /* when bcrypt said yes: no use keeps it past AUTH_CACHE_MAX_S after */
};

/* Failed-login budget of one client address (a token bucket), in an
 * open-addressed table keyed by a seeded hash (limit_slot). */
struct limit {
    unsigned char addr[PEER_SOURCE_MAX];
    unsigned char len; /* 0: free */
    double tokens;
    uint64_t updated_us;
    unsigned in_flight; /* its checks running or queued (at most AUTH_IN_FLIGHT) */
};

struct auth_job {
    struct auth_job *next; /* in the queue, or in a leader's followers */
    struct auth_job *begun_next; /* in a->begun */
    struct auth_job *followers; /* requests for the same login, answered with this check */
    unsigned n_followers;
    bool follower;  /* waits for another job's check (auth_begin found one) */
    bool resolved;  /* a follower whose check ended before auth_submit: result */
    enum auth_result result;
    char *pass;
    const char *hash; /* a user's or the dummy: lives as long as the auth */
    unsigned cost;    /* hash's bcrypt cost */
    bool known;
    unsigned char key[32];
    int limit_slot; /* -1: no address */
    auth_done_fn done;
    void *arg;
};

struct auth {
    struct label *users;
    size_t n;
    unsigned *costs; /* each user's hash's bcrypt cost */
    unsigned max_cost; /* every refusal costs this much (the dummy's cost) */
    char dummy[128]; /* hash checked for unknown users */
    uint64_t ttl_us;
    uint64_t (*now_us)(void); /* now_mono_us, or a test's clock */
    pthread_mutex_t lock; /* everything below */
    pthread_cond_t work;
    struct auth_job *head, **tail;
    struct auth_job *begun; /* checks auth_begin reserved, not submitted yet (linked by begun_next) */
    struct auth_job *running[AUTH_WORKERS]; /* being checked */
    unsigned pending; /* reserved by auth_begin, released when a job ends */
    bool stopping;
    pthread_t workers[AUTH_WORKERS];
    unsigned n_workers;
    bool no_workers; /* none could be started: every check is AUTH_BUSY (set once, by auth_new) */
    struct cached cache[CACHE_SLOTS];
    size_t next; /* round-robin replacement */
    struct limit limits[LIMIT_SLOTS];
    uint64_t limit_seed;
    _Atomic unsigned long results[AUTH_RESULTS]; /* by enum auth_result */
    _Atomic unsigned long bcrypt_runs;
};

static const char *const result_names[AUTH_RESULTS] = {"ok", "denied", "busy", "limited"};

int auth_hash_password(const char *pass, unsigned cost, char *out, size_t outlen)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn("$2b$", cost, NULL, 0, salt, sizeof salt))
        return -1;
    struct crypt_data *cd = xcalloc(1, sizeof *cd);
    const char *h = crypt_r(pass, salt, cd);
    int rc = -1;
    if (h && h[0] == '$' && strlen(h) < outlen) {
        memcpy(out, h, strlen(h) + 1);
        rc = 0;
    }
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    return rc;
}

static void cache_key(const char *user, const char *pass, const char *hash, unsigned char out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned len = 32;
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, user, strlen(user) + 1);
    EVP_DigestUpdate(ctx, pass, strlen(pass) + 1);
    EVP_DigestUpdate(ctx, hash, strlen(hash));
    EVP_DigestFinal_ex(ctx, out, &len);
    EVP_MD_CTX_free(ctx);
}

/* A hit keeps the login one TTL from now, but never past AUTH_CACHE_MAX_S
 * after its check: a scraper using it more often than the TTL pays no
 * bcrypt, and a password is still checked again at least daily. Call with
 * a->lock held. */
static bool cache_hit(struct auth *a, const unsigned char key[32])
{
    uint64_t now = a->now_us();
    bool hit = false;
    for (size_t i = 0; i < CACHE_SLOTS; i++) { /* every slot, so timing is flat */
        struct cached *c = &a->cache[i];
        if (c->expires_us > now && CRYPTO_memcmp(c->key, key, 32) == 0) {
            uint64_t cap = c->checked_us + (uint64_t)AUTH_CACHE_MAX_S * 1000000;
            c->expires_us = now + a->ttl_us < cap ? now + a->ttl_us : cap;
            hit = true;
        }
    }
    return hit;
}

/* Call with a->lock held. */
static void cache_put(struct auth *a, const unsigned char key[32])
{
    struct cached *c = &a->cache[a->next];
    memcpy(c->key, key, 32);
    c->checked_us = a->now_us();
    c->expires_us = c->checked_us + a->ttl_us;
    a->next = (a->next + 1) % CACHE_SLOTS;
}

/* Refills slot i's budget to now. Call with a->lock held. */
static void limit_refill(struct limit *l, uint64_t now)
{
    if (l->len) {
        l->tokens += (double)(now - l->updated_us) / (AUTH_FAIL_REFILL_S * 1e6);
        if (l->tokens > AUTH_FAIL_BURST)
            l->tokens = AUTH_FAIL_BURST;
    }
    l->updated_us = now;
}

/* The budget slot of an address, refilled to now; -1 without an address.
 * An address looks at LIMIT_PROBES slots from its keyed hash: its own
 * record, else the first free or full one there without checks in flight
 * (another address' record still refilling or waiting for a check is not
 * taken over, so a flood cannot evict its own).
 * Only when all of them are others' records still refilling does it share
 * the first: one address' failures do not limit its neighbours while the
 * table has room. Call with a->lock held. */
static int limit_slot(struct auth *a, const struct sockaddr *sa)
{
    unsigned char b[PEER_SOURCE_MAX]; /* an IPv4 address or an IPv6 /64: one host usually
                                       * holds a whole /64, so counting /128s would let it rotate */
    size_t len = peer_source_bytes(sa, b);
    if (!len)
        return -1;
    uint64_t h = fnv1a(1469598103934665603ull ^ a->limit_seed, b, len); /* FNV-1a, keyed */
    h ^= h >> 29;
    uint64_t now = a->now_us();
    int take = -1;
    for (int p = 0; p < LIMIT_PROBES; p++) {
        int i = (int)((h + (uint64_t)p) % LIMIT_SLOTS);
        struct limit *l = &a->limits[i];
        limit_refill(l, now);
        if (l->len == len && memcmp(l->addr, b, len) == 0)
            return i;
        if (take < 0 && (!l->len || (l->tokens >= AUTH_FAIL_BURST && l->in_flight == 0)))
            take = i;
    }
    if (take < 0)
        return (int)(h % LIMIT_SLOTS);
    struct limit *l = &a->limits[take];
    memcpy(l->addr, b, len);
    l->len = (unsigned char)len;
    l->tokens = AUTH_FAIL_BURST;
    l->in_flight = 0;
    return take;
}

/* A job that checks ends (checked or cancelled): its queue place and its
 * address' place in flight come back (a follower held neither). Call with
 * a->lock held. */
static void job_release(struct auth *a, const struct auth_job *j)
{
    struct limit *l = j->limit_slot >= 0 ? &a->limits[j->limit_slot] : NULL;
    a->pending--;
    if (l && l->in_flight)
        l->in_flight--;
}

/* The job checking or queued to check the login of key, or NULL. Call
 * with a->lock held. */
static struct auth_job *leader_of(struct auth *a, const unsigned char key[32])
{
    /* from auth_begin on: a request for the same login that comes between
     * auth_begin and auth_submit of the first is its follower too */
    for (struct auth_job *j = a->begun; j; j = j->begun_next)
        if (CRYPTO_memcmp(j->key, key, 32) == 0)
            return j;
    for (unsigned i = 0; i < AUTH_WORKERS; i++)
        if (a->running[i] && CRYPTO_memcmp(a->running[i]->key, key, 32) == 0)
            return a->running[i];
    for (struct auth_job *j = a->head; j; j = j->next)
        if (CRYPTO_memcmp(j->key, key, 32) == 0)
            return j;
    return NULL;
}

static void job_free(struct auth_job *j)
{
    if (!j)
        return;
    if (j->pass) {
        explicit_bzero(j->pass, strlen(j->pass));
        free(j->pass);
    }
    explicit_bzero(j, sizeof *j);
    free(j);
}

enum auth_result auth_begin(struct auth *a, const char *user, const char *pass, const struct sockaddr *addr,
                            struct auth_job **job)
{
    *job = NULL;
    const char *hash = a->dummy;
    unsigned cost = a->max_cost;
    bool known = false;
    for (size_t i = 0; i < a->n; i++) /* no early exit */
        if (user && strcmp(a->users[i].name, user) == 0) {
            hash = a->users[i].value;
            cost = a->costs[i];
            known = true;
        }
    if (!pass)
        pass = "";
    unsigned char key[32];
    cache_key(user ? user : "", pass, hash, key);
    enum auth_result r;
    struct auth_job *j = xcalloc(1, sizeof *j); /* a follower is listed before the lock is let go */
    memcpy(j->key, key, sizeof key);
    explicit_bzero(key, sizeof key);
    pthread_mutex_lock(&a->lock);
    int slot = limit_slot(a, addr);
    j->limit_slot = slot;
    struct auth_job *leader = NULL;
    if (known && cache_hit(a, j->key)) {
        r = AUTH_OK;
    } else if (slot >= 0 && a->limits[slot].tokens < 1) {
        r = AUTH_LIMITED; /* out of failures */
    } else if (!a->stopping && (leader = leader_of(a, j->key)) && leader->n_followers < AUTH_FOLLOWERS) {
        /* the same login is being checked already (a Prometheus starting
         * its scrapes of many targets at once, with an empty cache): wait
         * for that check instead of another, at no charge (it tries no
         * password of its own and costs no bcrypt); the
         * waiting requests are as many as the connections allowed */
        j->follower = true;
        j->next = leader->followers;
        leader->followers = j;
        leader->n_followers++;
        r = AUTH_PENDING;
    } else if (slot >= 0 && a->limits[slot].in_flight >= AUTH_IN_FLIGHT) {
        /* enough checks waiting already: one address cannot fill the
         * queue with passwords to try */
        r = AUTH_LIMITED;
    } else if (a->stopping || a->no_workers || leader || a->pending >= AUTH_WORKERS + AUTH_QUEUE) {
        r = AUTH_BUSY; /* leader: AUTH_FOLLOWERS wait for it already */
    } else {
        /* charged now, refunded when the password was right: checks in
         * flight count against the budget too */
        if (slot >= 0) {
            a->limits[slot].tokens -= 1;
            a->limits[slot].in_flight++;
        }
        a->pending++;
        j->begun_next = a->begun;
        a->begun = j;
        r = AUTH_PENDING;
    }
    pthread_mutex_unlock(&a->lock);
    if (r != AUTH_PENDING) {
        a->results[r]++;
        job_free(j);
        return r;
    }
    if (!j->follower) {
        j->pass = xstrdup(pass);
        j->hash = hash;
        j->cost = cost;
        j->known = known;
    }
    *job = j;
    return AUTH_PENDING;
}

static void end_job(struct auth *a, struct auth_job *j, enum auth_result r);

void auth_submit(struct auth *a, struct auth_job *job, auth_done_fn done, void *arg)
{
    pthread_mutex_lock(&a->lock);
    job->done = done;
    job->arg = arg;
    if (job->follower) {
        /* listed with its leader, whose end answers it; unless that end
         * came first */
        bool resolved = job->resolved;
        pthread_mutex_unlock(&a->lock);
        if (resolved) {
            a->results[job->result]++;
            done(arg, job->result);
            job_free(job);
        }
        return;
    }
    for (struct auth_job **p = &a->begun; *p; p = &(*p)->begun_next)
        if (*p == job) {
            *p = job->begun_next;
            break;
        }
    if (a->stopping) { /* it, and those that joined while it was begun, get 503 */
        end_job(a, job, AUTH_BUSY);
        return;
    }
    job->next = NULL;
    *a->tail = job;
    a->tail = &job->next;
    pthread_cond_signal(&a->work);
    pthread_mutex_unlock(&a->lock);
}

/* A check ended with r (or was cancelled: AUTH_BUSY): its followers are
 * detached; those already submitted are returned, linked, for answer_all
 * after the lock is let go, the others keep r for their auth_submit. Call
 * with a->lock held. */
static struct auth_job *end_followers(struct auth_job *j, enum auth_result r)
{
    struct auth_job *f = j->followers, *answer = NULL;
    j->followers = NULL;
    while (f) {
        struct auth_job *next = f->next;
        if (f->done) {
            f->next = answer;
            answer = f;
        } else {
            f->resolved = true;
            f->result = r;
        }
        f = next;
    }
    return answer;
}

static void answer_all(struct auth *a, struct auth_job *f, enum auth_result r)
{
    while (f) {
        struct auth_job *next = f->next;
        a->results[r]++;
        f->done(f->arg, r);
        job_free(f);
        f = next;
    }
}

/* Ends the submitted check j with r (AUTH_BUSY: cancelled): its budget is
 * given back, and it and its followers are answered. Call with a->lock
 * held; returns with it let go (the answers run outside it). */
static void end_job(struct auth *a, struct auth_job *j, enum auth_result r)
{
    job_release(a, j);
    struct auth_job *f = end_followers(j, r);
    pthread_mutex_unlock(&a->lock);
    a->results[r]++;
    j->done(j->arg, r);
    job_free(j);
    answer_all(a, f, r);
}

static void *worker(void *arg)
{
    struct auth *a = arg;
    /* checks are background work: under a login flood they must not take
     * the CPU from the event loop and the HTTP threads */
    setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
    struct crypt_data *cd = xcalloc(1, sizeof *cd);
    for (;;) {
        pthread_mutex_lock(&a->lock);
        while (!a->stopping && !a->head)
            pthread_cond_wait(&a->work, &a->lock);
        struct auth_job *j = a->head;
        if (a->stopping || !j) {
            pthread_mutex_unlock(&a->lock);
            break;
        }
        a->head = j->next;
        if (!a->head)
            a->tail = &a->head;
        unsigned slot = 0;
        while (a->running[slot]) /* a free one: as many as workers */
            slot++;
        a->running[slot] = j;
        pthread_mutex_unlock(&a->lock);

        const char *h = crypt_r(j->pass, j->hash, cd);
        size_t hl = strlen(j->hash);
        bool match = h && strlen(h) == hl && CRYPTO_memcmp(h, j->hash, hl) == 0;
        /* a cheaper hash is padded up to the costliest one's time (2^c +
         * 2^c + 2^(c+1) + ... + 2^(max-1) = 2^max rounds), so how long a
         * refusal takes does not tell which users exist */
        for (unsigned k = j->cost; k < a->max_cost; k++) {
            char salt[CRYPT_GENSALT_OUTPUT_SIZE];
            if (crypt_gensalt_rn("$2b$", k, NULL, 0, salt, sizeof salt))
                (void)crypt_r(j->pass, salt, cd);
        }
        explicit_bzero(cd, sizeof *cd);
        enum auth_result r = match && j->known ? AUTH_OK : AUTH_DENIED;
        pthread_mutex_lock(&a->lock);
        a->running[slot] = NULL; /* none join from here on */
        if (r == AUTH_OK)
            cache_put(a, j->key);
        struct limit *l = j->limit_slot >= 0 ? &a->limits[j->limit_slot] : NULL;
        if (r == AUTH_OK && l && l->tokens + 1 <= AUTH_FAIL_BURST)
            l->tokens += 1; /* charged in begin: not a failure after all */
        a->bcrypt_runs++;
        end_job(a, j, r);
    }
    free(cd);
    return NULL;
}

struct auth *auth_new(const struct label *users, size_t n, uint64_t cache_ttl_ms)
{
    if (n == 0)
        return NULL;
    struct auth *a = xcalloc(1, sizeof *a);
    a->users = xcalloc(n, sizeof *a->users);
    for (size_t i = 0; i < n; i++)
        a->users[i] = (struct label){xstrdup(users[i].name), xstrdup(users[i].value)};
    a->n = n;
    a->ttl_us = cache_ttl_ms * 1000;
    a->now_us = now_mono_us;
    /* the dummy costs what the costliest user's hash costs */
    a->costs = xcalloc(n, sizeof *a->costs);
    size_t dearest = 0;
    for (size_t i = 0; i < n; i++) {
        int c = atoi(users[i].value + 4); /* "$2y$NN$" */
        a->costs[i] = c < 4 ? 4 : c > 31 ? 31 : (unsigned)c;
        if (a->costs[i] > a->max_cost) {
            a->max_cost = a->costs[i];
            dearest = i;
        }
    }
    unsigned cost = a->max_cost;
    unsigned char rnd[16];
    char pw[33];
    RAND_bytes(rnd, sizeof rnd);
    for (int i = 0; i < 16; i++)
        snprintf(pw + 2 * i, 3, "%02x", rnd[i]);
    if (auth_hash_password(pw, cost ? cost : 10, a->dummy, sizeof a->dummy) < 0)
        snprintf(a->dummy, sizeof a->dummy, "%s", users[dearest].value);
    RAND_bytes((unsigned char *)&a->limit_seed, sizeof a->limit_seed);
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->work, NULL);
    a->tail = &a->head;
    for (unsigned i = 0; i < AUTH_WORKERS; i++) {
        if (pthread_create(&a->workers[i], NULL, worker, a) != 0) {
            log_error("http", "cannot start a password-check thread");
            break;
        }
        pthread_setname_np(a->workers[i], "rp-bcrypt"); /* visible in top -H and /proc */
        a->n_workers++;
    }
    a->no_workers = a->n_workers == 0; /* a check queued would wait for ever */
    return a;
}

void auth_shutdown(struct auth *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->stopping = true;
    struct auth_job *j = a->head;
    a->head = NULL;
    a->tail = &a->head;
    pthread_cond_broadcast(&a->work);
    pthread_mutex_unlock(&a->lock);
    while (j) { /* queued, never started: their requests (and those
                 * waiting for them) get 503 */
        struct auth_job *next = j->next;
        pthread_mutex_lock(&a->lock);
        end_job(a, j, AUTH_BUSY);
        j = next;
    }
    for (unsigned i = 0; i < a->n_workers; i++)
        pthread_join(a->workers[i], NULL);
    a->n_workers = 0;
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    auth_shutdown(a);
    for (size_t i = 0; i < a->n; i++) {
        free(a->users[i].name);
        free(a->users[i].value);
    }
    free(a->users);
    free(a->costs);
    pthread_cond_destroy(&a->work);
    pthread_mutex_destroy(&a->lock);
    explicit_bzero(a, sizeof *a);
    free(a);
}

void auth_set_clock(struct auth *a, uint64_t (*now_us)(void))
{
    a->now_us = now_us;
}

void auth_render_metrics(struct auth *a, struct buf *out)
{
    if (!a)
        return;
    buf_puts(out, "# HELP redpulse_http_auth_checks_total HTTP basic-auth checks by result (limited: the client address used its failed logins)\n"
                  "# TYPE redpulse_http_auth_checks_total counter\n");
    for (int r = 0; r < AUTH_RESULTS; r++)
        buf_printf(out, "redpulse_http_auth_checks_total{%s=\"%s\"} %lu\n", PL(RESULT), result_names[r],
                   (unsigned long)a->results[r]);
    buf_puts(out, "# HELP redpulse_http_bcrypt_checks_total Password hashes computed (logins not served from the cache)\n"
                  "# TYPE redpulse_http_bcrypt_checks_total counter\n");
    buf_printf(out, "redpulse_http_bcrypt_checks_total %lu\n", (unsigned long)a->bcrypt_runs);
    pthread_mutex_lock(&a->lock);
    unsigned pending = a->pending;
    pthread_mutex_unlock(&a->lock);
    buf_puts(out, "# HELP redpulse_http_bcrypt_pending Password checks running or queued\n"
                  "# TYPE redpulse_http_bcrypt_pending gauge\n");
    buf_printf(out, "redpulse_http_bcrypt_pending %u\n", pending);
}
