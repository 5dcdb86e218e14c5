/* test_peerlimit.c - sources (IPv4 address, IPv6 /64) and their counts,
 * against a plain array as the model, through churn that exercises the
 * table's backward-shift deletion. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "peerlimit.h"
#include "testutil.h"

static uint64_t key4(const char *a)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    ck_assert_int_eq(inet_pton(AF_INET, a, &sa.sin_addr), 1);
    return peer_source_key((const struct sockaddr *)&sa);
}

static uint64_t key6(const char *a)
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
    ck_assert_int_eq(inet_pton(AF_INET6, a, &sa.sin6_addr), 1);
    return peer_source_key((const struct sockaddr *)&sa);
}

START_TEST(sources)
{
    ck_assert_uint_ne(key4("10.0.0.1"), 0);
    ck_assert_uint_ne(key4("10.0.0.1"), key4("10.0.0.2"));
    ck_assert_uint_eq(key4("10.0.0.1"), key6("::ffff:10.0.0.1")); /* IPv4-mapped: the same host */
    ck_assert_uint_eq(key6("2001:db8:1:2::1"), key6("2001:db8:1:2:ffff:ffff:ffff:ffff")); /* one /64 */
    ck_assert_uint_ne(key6("2001:db8:1:2::1"), key6("2001:db8:1:3::1"));
    ck_assert_uint_ne(key6("::1"), 0);
    ck_assert_uint_ne(key6("::1"), key4("0.0.0.1"));
    struct sockaddr_un_like {
        sa_family_t f;
        char path[20];
    } un = {AF_UNIX, "x"};
    ck_assert_uint_eq(peer_source_key((const struct sockaddr *)&un), 0); /* not counted */
    ck_assert_uint_eq(peer_source_key(NULL), 0);
    unsigned char b[8];
    ck_assert_uint_eq(peer_source_bytes(NULL, b), 0);
}
END_TEST

START_TEST(counts)
{
    struct peerlimit *l = peerlimit_new(3);
    uint64_t a = key4("10.0.0.1"), b = key6("2001:db8::1"), c = key4("10.0.0.3"), d = key4("10.0.0.4");
    ck_assert_uint_eq(peerlimit_count(l, a), 0);
    ck_assert_uint_eq(peerlimit_add(l, a), 1);
    ck_assert_uint_eq(peerlimit_add(l, a), 2);
    ck_assert_uint_eq(peerlimit_add(l, b), 1);
    ck_assert_uint_eq(peerlimit_add(l, c), 1);
    ck_assert_uint_eq(peerlimit_add(l, d), 0); /* a fourth source: full */
    ck_assert_uint_eq(peerlimit_count(l, d), 0);
    ck_assert_uint_eq(peerlimit_add(l, a), 3);  /* a known one still counts */
    peerlimit_del(l, c);
    ck_assert_uint_eq(peerlimit_count(l, c), 0);
    ck_assert_uint_eq(peerlimit_add(l, d), 1); /* room again */
    peerlimit_del(l, a);
    ck_assert_uint_eq(peerlimit_count(l, a), 2);
    ck_assert_uint_eq(peerlimit_count(l, b), 1);
    ck_assert_uint_eq(peerlimit_count(l, 0), 0);
    peerlimit_free(l);
    peerlimit_free(NULL);
}
END_TEST

/* Random adds and deletes over 300 sources, at most 200 open at once, the
 * table checked against the model after every step: a deletion that broke
 * a probe sequence would lose a count behind it. */
START_TEST(churn)
{
    enum { SOURCES = 300, MAX = 200 };
    struct peerlimit *l = peerlimit_new(MAX);
    unsigned model[SOURCES] = {0};
    size_t open = 0;
    unsigned seed = 12345;
    for (int step = 0; step < 200000; step++) {
        seed = seed * 1103515245u + 12345u;
        unsigned i = (seed >> 8) % SOURCES;
        uint64_t k = 0x0a00000000000000ull + i * 0x10000ull; /* distinct /64s */
        if ((seed >> 4) & 1) {
            unsigned n = peerlimit_add(l, k);
            if (!model[i] && open == MAX) {
                ck_assert_uint_eq(n, 0);
            } else {
                if (!model[i])
                    open++;
                ck_assert_uint_eq(n, ++model[i]);
            }
        } else if (model[i]) {
            peerlimit_del(l, k);
            if (!--model[i])
                open--;
        }
        unsigned j = (seed >> 16) % SOURCES;
        ck_assert_uint_eq(peerlimit_count(l, 0x0a00000000000000ull + j * 0x10000ull), model[j]);
    }
    for (unsigned i = 0; i < SOURCES; i++)
        ck_assert_uint_eq(peerlimit_count(l, 0x0a00000000000000ull + i * 0x10000ull), model[i]);
    peerlimit_free(l);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("peerlimit");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, sources);
    tcase_add_test(tc, counts);
    tcase_add_test(tc, churn);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
