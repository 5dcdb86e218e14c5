/* test_poller.c - the pure parts of the poller: the reconnect backoff
 * schedule (1, 2, 4 s ... capped at eight intervals and at 60 s). The
 * schedule as it happens, with jitter, at a fake peer: integration_pollstates. */
#include <check.h>

#include "poller.h"
#include "testutil.h"

START_TEST(backoff_schedule)
{
    /* one failure: the next tick retries */
    ck_assert_uint_eq(poller_backoff_ms(0, 1000), 0);
    ck_assert_uint_eq(poller_backoff_ms(1, 1000), 0);
    /* then doubling from a second, up to eight intervals */
    ck_assert_uint_eq(poller_backoff_ms(2, 1000), 1000);
    ck_assert_uint_eq(poller_backoff_ms(3, 1000), 2000);
    ck_assert_uint_eq(poller_backoff_ms(4, 1000), 4000);
    ck_assert_uint_eq(poller_backoff_ms(5, 1000), 8000);
    ck_assert_uint_eq(poller_backoff_ms(6, 1000), 8000);
    ck_assert_uint_eq(poller_backoff_ms(1000, 1000), 8000);
}
END_TEST

START_TEST(backoff_caps_at_60s)
{
    /* 10 s interval: eight intervals would be 80 s; 60 s is the cap */
    uint64_t prev = 0;
    for (unsigned f = 2; f < 10; f++) {
        uint64_t ms = poller_backoff_ms(f, 10000);
        ck_assert_uint_ge(ms, prev); /* never shrinks while failing */
        prev = ms;
    }
    ck_assert_uint_eq(poller_backoff_ms(7, 10000), 32000);
    ck_assert_uint_eq(poller_backoff_ms(8, 10000), 60000);
    ck_assert_uint_eq(poller_backoff_ms(40, 10000), 60000);
    /* 7.5 s: eight intervals are exactly 60 s */
    ck_assert_uint_eq(poller_backoff_ms(9, 7500), 60000);
    /* an interval over 60 s: never under one interval */
    ck_assert_uint_eq(poller_backoff_ms(20, 120000), 120000);
    ck_assert_uint_eq(poller_backoff_ms(2, 120000), 1000);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("poller");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, backoff_schedule);
    tcase_add_test(tc, backoff_caps_at_60s);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
