/*
 * auth.c - bcrypt basic auth for the HTTP threads. crypt_r does the
 * hashing (libxcrypt); OpenSSL gives SHA-256 for the cache of good
 * credentials and a constant-time compare. Nothing here logs a password.
 */
#include "auth.h"

#include <crypt.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "util.h"

#define CACHE_SLOTS 64
#define CACHE_TTL_US (60ull * 1000000)
#define MAX_CONCURRENT 2
#define BUSY_WAIT_S 2

struct cached {
    unsigned char key[32];
    uint64_t expires_us;
};

struct auth {
    struct label *users;
    size_t n;
    char dummy[128]; /* hash checked for unknown users */
    sem_t slots;     /* concurrent bcrypt checks */
    pthread_mutex_t lock;
    struct cached cache[CACHE_SLOTS];
    size_t next; /* round-robin replacement */
    _Atomic unsigned long results[AUTH_RESULTS]; /* by enum auth_result */
    _Atomic unsigned long bcrypt_runs;
};

static const char *const result_names[AUTH_RESULTS] = {"ok", "denied", "busy"};

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

struct auth *auth_new(const struct label *users, size_t n)
{
    if (n == 0)
        return NULL;
    struct auth *a = xcalloc(1, sizeof *a);
    a->users = xcalloc(n, sizeof *a->users);
    for (size_t i = 0; i < n; i++)
        a->users[i] = (struct label){xstrdup(users[i].name), xstrdup(users[i].value)};
    a->n = n;
    /* the dummy costs what the users' hashes cost */
    unsigned cost = (unsigned)atoi(users[0].value + 4);
    unsigned char rnd[16];
    char pw[33];
    RAND_bytes(rnd, sizeof rnd);
    for (int i = 0; i < 16; i++)
        snprintf(pw + 2 * i, 3, "%02x", rnd[i]);
    if (auth_hash_password(pw, cost ? cost : 10, a->dummy, sizeof a->dummy) < 0)
        snprintf(a->dummy, sizeof a->dummy, "%s", users[0].value);
    sem_init(&a->slots, 0, MAX_CONCURRENT);
    pthread_mutex_init(&a->lock, NULL);
    return a;
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->users[i].name);
        free(a->users[i].value);
    }
    free(a->users);
    sem_destroy(&a->slots);
    pthread_mutex_destroy(&a->lock);
    explicit_bzero(a, sizeof *a);
    free(a);
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

static bool cache_hit(struct auth *a, const unsigned char key[32])
{
    uint64_t now = now_mono_us();
    bool hit = false;
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < CACHE_SLOTS; i++) /* every slot, so timing is flat */
        hit |= a->cache[i].expires_us > now && CRYPTO_memcmp(a->cache[i].key, key, 32) == 0;
    pthread_mutex_unlock(&a->lock);
    return hit;
}

static void cache_put(struct auth *a, const unsigned char key[32])
{
    pthread_mutex_lock(&a->lock);
    memcpy(a->cache[a->next].key, key, 32);
    a->cache[a->next].expires_us = now_mono_us() + CACHE_TTL_US;
    a->next = (a->next + 1) % CACHE_SLOTS;
    pthread_mutex_unlock(&a->lock);
}

enum auth_result auth_check(struct auth *a, const char *user, const char *pass)
{
    const char *hash = a->dummy;
    bool known = false;
    for (size_t i = 0; i < a->n; i++) /* no early exit */
        if (user && strcmp(a->users[i].name, user) == 0) {
            hash = a->users[i].value;
            known = true;
        }
    if (!pass)
        pass = "";
    unsigned char key[32];
    cache_key(user ? user : "", pass, hash, key);
    if (known && cache_hit(a, key)) {
        a->results[AUTH_OK]++;
        return AUTH_OK;
    }

    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += BUSY_WAIT_S;
    while (sem_timedwait(&a->slots, &until) != 0)
        if (errno != EINTR) {
            log_warn("http", "too many concurrent password checks; answering 503");
            a->results[AUTH_BUSY]++;
            return AUTH_BUSY;
        }
    struct crypt_data *cd = xcalloc(1, sizeof *cd);
    const char *h = crypt_r(pass, hash, cd);
    size_t hl = strlen(hash);
    bool match = h && strlen(h) == hl && CRYPTO_memcmp(h, hash, hl) == 0;
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    sem_post(&a->slots);
    a->bcrypt_runs++;
    if (match && known) {
        cache_put(a, key);
        a->results[AUTH_OK]++;
        return AUTH_OK;
    }
    a->results[AUTH_DENIED]++;
    return AUTH_DENIED;
}

void auth_render_metrics(struct auth *a, struct buf *out)
{
    if (!a)
        return;
    buf_puts(out, "# HELP redpulse_http_auth_checks_total HTTP basic-auth checks by result\n"
                  "# TYPE redpulse_http_auth_checks_total counter\n");
    for (int r = 0; r < AUTH_RESULTS; r++)
        buf_printf(out, "redpulse_http_auth_checks_total{result=\"%s\"} %lu\n", result_names[r],
                   (unsigned long)a->results[r]);
    buf_puts(out, "# HELP redpulse_http_bcrypt_checks_total Password hashes computed (logins not served from the cache)\n"
                  "# TYPE redpulse_http_bcrypt_checks_total counter\n");
    buf_printf(out, "redpulse_http_bcrypt_checks_total %lu\n", (unsigned long)a->bcrypt_runs);
}
