/* test_auth.c - the failed-login budget: one address's failures do not
 * limit other addresses, even those whose budget slot collides with it. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
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

START_TEST(one_address_limits_no_other)
{
    char hash[128];
    ck_assert_int_eq(auth_hash_password("pw", 4, hash, sizeof hash), 0);
    struct label users[] = {{"u", hash}};
    struct auth *a = auth_new(users, 1, 60000);
    /* A (10.0.0.1) spends its whole budget on wrong passwords */
    struct sockaddr_in sa = v4(0x0a000001);
    for (int i = 0; i < AUTH_FAIL_BURST; i++) {
        struct auth_job *job;
        ck_assert_int_eq(auth_begin(a, "u", "wrong", (struct sockaddr *)&sa, &job), AUTH_PENDING);
        auth_submit(a, job, nothing, NULL);
    }
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

int main(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, one_address_limits_no_other);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
