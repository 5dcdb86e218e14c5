/* test_auth.c - the failed-login budget: one address's failures do not
 * limit other addresses, even those whose budget slot collides with it;
 * password checks in flight per address; the login cache's extension on a
 * fake clock. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "testutil.h"

static void nothing(void *arg, enum auth_result r)
{
    (void)arg, (void)r;
}

static struct sockaddr_in v4(uint32_t host)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(host);
    return sa;
}

static struct sockaddr_in6 v6(const char *text)
{
    struct sockaddr_in6 sa;
    memset(&sa, 0, sizeof sa);
    sa.sin6_family = AF_INET6;
    ck_assert_int_eq(inet_pton(AF_INET6, text, &sa.sin6_addr), 1);
    return sa;
}

/* Checks ended, and their results, for tests that wait for the workers. */
static pthread_mutex_t ended_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ended_cond = PTHREAD_COND_INITIALIZER;
static int ended;
static enum auth_result last_result;

static void count_ended(void *arg, enum auth_result r)
{
    (void)arg;
    pthread_mutex_lock(&ended_lock);
    ended++;
    last_result = r;
    pthread_cond_broadcast(&ended_cond);
    pthread_mutex_unlock(&ended_lock);
}

static void wait_ended(int n)
{
    pthread_mutex_lock(&ended_lock);
    while (ended < n)
        pthread_cond_wait(&ended_cond, &ended_lock);
    pthread_mutex_unlock(&ended_lock);
}

/* One login from sa: its result, a check started and waited for when one
 * is needed. */
static enum auth_result login(struct auth *a, const char *pass, const void *sa)
{
    struct auth_job *job;
    enum auth_result r = auth_begin(a, "u", pass, sa, &job);
    if (r != AUTH_PENDING)
        return r;
    pthread_mutex_lock(&ended_lock);
    int want = ended + 1;
    pthread_mutex_unlock(&ended_lock);
    auth_submit(a, job, count_ended, NULL);
    wait_ended(want);
    return last_result;
}

/* An auth with one user, "u", whose password "pw" is hashed at cost. */
static struct auth *auth_of(unsigned cost, uint64_t cache_ttl_ms)
{
    char hash[128];
    ck_assert_int_eq(auth_hash_password("pw", cost, hash, sizeof hash), 0);
    struct label users[] = {{"u", hash}};
    return auth_new(users, 1, cache_ttl_ms); /* copies them */
}

START_TEST(one_address_limits_no_other)
{
    struct auth *a = auth_of(4, 60000);
    /* A (10.0.0.1) spends its whole budget on wrong passwords, one check
     * after the other (two at most may be in flight) */
    ended = 0;
    struct sockaddr_in sa = v4(0x0a000001);
    for (int i = 0; i < AUTH_FAIL_BURST; i++)
        ck_assert_int_eq(login(a, "wrong", &sa), AUTH_DENIED);
    struct auth_job *job;
    ck_assert_int_eq(auth_begin(a, "u", "wrong", (struct sockaddr *)&sa, &job), AUTH_LIMITED);
    /* 20,000 other addresses (some share A's slot in a 1024-slot table):
     * none is limited. Past the queue they are busy, not limited. */
    int limited = 0;
    for (uint32_t h = 0; h < 20000; h++) {
        struct sockaddr_in sb = v4(0x0b000000 + h);
        enum auth_result r = auth_begin(a, "u", "wrong", (struct sockaddr *)&sb, &job);
        if (r == AUTH_PENDING)
            auth_submit(a, job, nothing, NULL);
        limited += r == AUTH_LIMITED;
    }
    ck_assert_int_eq(limited, 0);
    auth_free(a);
}
END_TEST

START_TEST(checks_in_flight_per_address)
{
    struct auth *a = auth_of(4, 60000);
    ended = 0;
    ck_assert_int_eq(login(a, "pw", NULL), AUTH_OK); /* remembered */
    /* 10.0.0.1 starts two checks (jobs begun, not yet submitted: in flight
     * for as long as the test likes); a third is refused without a check.
     * Every password differs: a login already being checked is no new
     * check (same_login_checked_once) */
    struct sockaddr_in sa = v4(0x0a000001);
    struct auth_job *held[6];
    int n_held = 0;
    for (int i = 0; i < AUTH_IN_FLIGHT; i++) {
        char pw[16];
        snprintf(pw, sizeof pw, "held-%d", i);
        ck_assert_int_eq(auth_begin(a, "u", pw, (struct sockaddr *)&sa, &held[n_held++]), AUTH_PENDING);
    }
    struct auth_job *job;
    ck_assert_int_eq(auth_begin(a, "u", "wrong-1", (struct sockaddr *)&sa, &job), AUTH_LIMITED);
    ck_assert_int_eq(auth_begin(a, "u", "new-password", (struct sockaddr *)&sa, &job), AUTH_LIMITED);
    /* a remembered login is no check: still answered */
    ck_assert_int_eq(auth_begin(a, "u", "pw", (struct sockaddr *)&sa, &job), AUTH_OK);
    /* another IPv4 address is not limited */
    struct sockaddr_in sb = v4(0x0a000002);
    ck_assert_int_eq(auth_begin(a, "u", "wrong-2", (struct sockaddr *)&sb, &held[n_held++]), AUTH_PENDING);
    /* IPv6: one /64 is one client, the next /64 another */
    struct sockaddr_in6 s6a = v6("2001:db8:0:1::1"), s6b = v6("2001:db8:0:1:ffff::2"), s6c = v6("2001:db8:0:1::3");
    struct sockaddr_in6 s6d = v6("2001:db8:0:2::1");
    ck_assert_int_eq(auth_begin(a, "u", "wrong-3", (struct sockaddr *)&s6a, &held[n_held++]), AUTH_PENDING);
    ck_assert_int_eq(auth_begin(a, "u", "wrong-4", (struct sockaddr *)&s6b, &held[n_held++]), AUTH_PENDING);
    ck_assert_int_eq(auth_begin(a, "u", "wrong-5", (struct sockaddr *)&s6c, &job), AUTH_LIMITED);
    ck_assert_int_eq(auth_begin(a, "u", "wrong-6", (struct sockaddr *)&s6d, &held[n_held++]), AUTH_PENDING);
    /* IPv4-mapped is the IPv4 address: 10.0.0.1 again */
    struct sockaddr_in6 mapped = v6("::ffff:10.0.0.1");
    ck_assert_int_eq(auth_begin(a, "u", "wrong-7", (struct sockaddr *)&mapped, &job), AUTH_LIMITED);
    /* the checks end: their places come back */
    for (int i = 0; i < n_held; i++)
        auth_submit(a, held[i], count_ended, NULL);
    wait_ended(1 + n_held);
    ck_assert_int_eq(login(a, "wrong", &sa), AUTH_DENIED);
    ck_assert_int_eq(login(a, "wrong", &s6c), AUTH_DENIED);
    auth_free(a);
}
END_TEST

/* Results of the requests of same_login_checked_once, by request. */
static enum auth_result results_of[16];

static void record_result(void *arg, enum auth_result r)
{
    results_of[(intptr_t)arg] = r;
    count_ended(arg, r);
}

static unsigned long bcrypt_runs(struct auth *a)
{
    struct buf b = BUF_INIT;
    auth_render_metrics(a, &b);
    const char *p = strstr(b.p, "\nredpulse_http_bcrypt_checks_total ");
    ck_assert_ptr_nonnull(p);
    unsigned long n = strtoul(p + strlen("\nredpulse_http_bcrypt_checks_total "), NULL, 10);
    buf_free(&b);
    return n;
}

/* Requests for a login already being checked wait for that check (a
 * Prometheus with basic auth starting its scrapes of many targets at once,
 * with the cache empty, got 429 past two checks in flight): one bcrypt, the
 * same answer for all; the waiting ones cost the address no failure (they
 * tried no password of their own and cost no bcrypt), and are at most
 * AUTH_FOLLOWERS. */
START_TEST(same_login_checked_once)
{
    struct auth *a = auth_of(12, 60000); /* a check of 100 ms or more */
    ended = 0;
    struct sockaddr_in sa = v4(0x0a000001), sb = v4(0x0a000002);
    for (int round = 0; round < 2; round++) {
        const char *pass = round == 0 ? "pw" : "nope";
        const struct sockaddr *from = round == 0 ? (struct sockaddr *)&sa : (struct sockaddr *)&sb;
        int base = ended;
        for (intptr_t i = 0; i < 8; i++) {
            struct auth_job *job;
            ck_assert_int_eq(auth_begin(a, "u", pass, from, &job), AUTH_PENDING);
            auth_submit(a, job, record_result, (void *)i);
        }
        wait_ended(base + 8);
        for (int i = 0; i < 8; i++)
            ck_assert_int_eq(results_of[i], round == 0 ? AUTH_OK : AUTH_DENIED);
        ck_assert_uint_eq(bcrypt_runs(a), (unsigned long)round + 1);
    }
    /* the same login asked again between the first's auth_begin and its
     * auth_submit (the HTTP thread has not handed it over yet): one check */
    {
        int b0 = ended;
        struct auth_job *first, *second;
        ck_assert_int_eq(auth_begin(a, "u", "pw2", (struct sockaddr *)&sa, &first), AUTH_PENDING);
        ck_assert_int_eq(auth_begin(a, "u", "pw2", (struct sockaddr *)&sb, &second), AUTH_PENDING);
        auth_submit(a, second, count_ended, NULL);
        auth_submit(a, first, count_ended, NULL);
        wait_ended(b0 + 2);
        ck_assert_uint_eq(bcrypt_runs(a), 3);
    }
    /* at most AUTH_FOLLOWERS wait for one check; the next is busy */
    struct sockaddr_in sc = v4(0x0a000003);
    int base = ended;
    for (int i = 0; i <= AUTH_FOLLOWERS; i++) {
        struct auth_job *job;
        ck_assert_int_eq(auth_begin(a, "u", "cap", (struct sockaddr *)&sc, &job), AUTH_PENDING);
        auth_submit(a, job, count_ended, NULL);
    }
    struct auth_job *busy;
    ck_assert_int_eq(auth_begin(a, "u", "cap", (struct sockaddr *)&sc, &busy), AUTH_BUSY);
    wait_ended(base + AUTH_FOLLOWERS + 1);
    ck_assert_uint_eq(bcrypt_runs(a), 4);
    /* the 8 cost sb one failure of its 10, not 8: nine passwords more
     * (ten if a failure came back meanwhile, one every 6 s), then none */
    int more = 0;
    for (; more < AUTH_FAIL_BURST + 1; more++) {
        char pw[16];
        snprintf(pw, sizeof pw, "x%d", more);
        if (login(a, pw, &sb) == AUTH_LIMITED)
            break;
    }
    ck_assert_msg(more == AUTH_FAIL_BURST - 1 || more == AUTH_FAIL_BURST, "%d more failures allowed", more);
    struct auth_job *job;
    /* sa's good login is remembered, its budget whole */
    ck_assert_int_eq(auth_begin(a, "u", "pw", (struct sockaddr *)&sa, &job), AUTH_OK);
    auth_free(a);
}
END_TEST

static _Atomic uint64_t fake_now_us;

static uint64_t fake_clock(void)
{
    return atomic_load(&fake_now_us);
}

/* A check begun, a request joined it, then the stop: the check is
 * cancelled when it is handed over, and the request that joined it gets the
 * same answer (503), not a wait for ever. */
START_TEST(begun_check_cancelled_with_its_followers)
{
    struct auth *a = auth_of(4, 60000);
    ended = 0;
    struct sockaddr_in sa = v4(0x0a000001), sb = v4(0x0a000002);
    struct auth_job *first, *second;
    ck_assert_int_eq(auth_begin(a, "u", "pw", (struct sockaddr *)&sa, &first), AUTH_PENDING);
    ck_assert_int_eq(auth_begin(a, "u", "pw", (struct sockaddr *)&sb, &second), AUTH_PENDING);
    auth_submit(a, second, record_result, (void *)(intptr_t)1);
    auth_shutdown(a);
    auth_submit(a, first, record_result, (void *)(intptr_t)0);
    wait_ended(2);
    ck_assert_int_eq(results_of[0], AUTH_BUSY);
    ck_assert_int_eq(results_of[1], AUTH_BUSY);
    auth_free(a);
}
END_TEST

START_TEST(cache_hit_extends_the_login)
{
    const uint64_t ttl_ms = 60000, s_us = 1000000;
    struct auth *a = auth_of(4, ttl_ms);
    auth_set_clock(a, fake_clock);
    ended = 0;
    atomic_store(&fake_now_us, 1000 * s_us);
    const uint64_t checked = 1000 * s_us;
    ck_assert_int_eq(login(a, "pw", NULL), AUTH_OK);
    ck_assert_int_eq(ended, 1); /* a bcrypt */
    /* used every 50 s: each use keeps it another TTL, far past the first
     * TTL, with no check */
    uint64_t t = checked;
    for (; t + 50 * s_us < checked + AUTH_CACHE_MAX_S * s_us; t += 50 * s_us) {
        atomic_store(&fake_now_us, t + 50 * s_us);
        struct auth_job *job;
        ck_assert_msg(auth_begin(a, "u", "pw", NULL, &job) == AUTH_OK, "checked again %llu s after the check",
                      (unsigned long long)((t + 50 * s_us - checked) / s_us));
    }
    /* but never past AUTH_CACHE_MAX_S after the check: then it is checked again */
    atomic_store(&fake_now_us, checked + AUTH_CACHE_MAX_S * s_us);
    ck_assert_int_eq(login(a, "pw", NULL), AUTH_OK);
    ck_assert_int_eq(ended, 2);
    /* remembered anew from that check; an unused login expires after the TTL */
    atomic_store(&fake_now_us, checked + AUTH_CACHE_MAX_S * s_us + ttl_ms * 1000 - 1);
    ck_assert_int_eq(login(a, "pw", NULL), AUTH_OK);
    ck_assert_int_eq(ended, 2);
    atomic_store(&fake_now_us, checked + AUTH_CACHE_MAX_S * s_us + 2 * ttl_ms * 1000);
    ck_assert_int_eq(login(a, "pw", NULL), AUTH_OK);
    ck_assert_int_eq(ended, 3);
    /* a wrong password is never remembered, an extension notwithstanding */
    ck_assert_int_eq(login(a, "wrong", NULL), AUTH_DENIED);
    ck_assert_int_eq(login(a, "wrong", NULL), AUTH_DENIED);
    ck_assert_int_eq(ended, 5);
    auth_free(a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, one_address_limits_no_other);
    tcase_add_test(tc, checks_in_flight_per_address);
    tcase_add_test(tc, cache_hit_extends_the_login);
    tcase_add_test(tc, same_login_checked_once);
    tcase_add_test(tc, begun_check_cancelled_with_its_followers);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
