/* test_peerlimit.c - the keys a connection counts under (its address; its
 * IPv6 /64 too when global) and their counts, against a plain array as the
 * model, through churn that exercises the table's backward-shift deletion. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peerlimit.h"
#include "testutil.h"

static void sockaddr_of(const char *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (strchr(a, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        ck_assert_int_eq(inet_pton(AF_INET6, a, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        ck_assert_int_eq(inet_pton(AF_INET, a, &s4->sin_addr), 1);
    }
}

static size_t keys_of(const char *a, struct peer_key k[2])
{
    struct sockaddr_storage ss;
    sockaddr_of(a, &ss);
    return peer_keys((const struct sockaddr *)&ss, k);
}

/* The failed-login source of a, as text: its length and bytes in hex. */
static const char *source_of(const char *a, char out[2 * PEER_SOURCE_MAX + 8])
{
    struct sockaddr_storage ss;
    unsigned char b[PEER_SOURCE_MAX];
    sockaddr_of(a, &ss);
    size_t n = peer_source_bytes((const struct sockaddr *)&ss, b);
    int w = snprintf(out, 8, "%zu:", n);
    for (size_t i = 0; i < n; i++)
        w += snprintf(out + w, 3, "%02x", b[i]);
    return out;
}

static bool same(const struct peer_key *a, const struct peer_key *b)
{
    return a->hi == b->hi && a->lo == b->lo && a->kind == b->kind;
}

START_TEST(keys_of_addresses)
{
    struct peer_key a[2], b[2];
    ck_assert_uint_eq(keys_of("10.0.0.1", a), 1);
    ck_assert_int_eq(a[0].kind, PEER_ADDR);
    ck_assert_uint_eq(keys_of("::ffff:10.0.0.1", b), 1); /* IPv4-mapped: the same host */
    ck_assert(same(&a[0], &b[0]));
    keys_of("10.0.0.2", b);
    ck_assert(!same(&a[0], &b[0]));
    /* a global IPv6 address: itself and its /64 */
    ck_assert_uint_eq(keys_of("2001:db8:1:2::1", a), 2);
    ck_assert_uint_eq(keys_of("2001:db8:1:2:ffff:ffff:ffff:ffff", b), 2);
    ck_assert(!same(&a[0], &b[0]));
    ck_assert(same(&a[1], &b[1]));
    ck_assert_int_eq(a[1].kind, PEER_NET64);
    keys_of("2001:db8:1:3::1", b);
    ck_assert(!same(&a[1], &b[1]));
    /* the /64 2001:db8:1:2:: and the address 2001:db8:1:2:: are two keys */
    keys_of("2001:db8:1:2::", b);
    ck_assert(!same(&a[1], &b[0]));
    /* IPv4 through NAT64 is the IPv4 client; ::a.b.c.d is not a.b.c.d */
    ck_assert_uint_eq(keys_of("10.0.0.1", a), 1);
    ck_assert_uint_eq(keys_of("64:ff9b::10.0.0.1", b), 1);
    ck_assert(same(&a[0], &b[0]));
    ck_assert_uint_eq(keys_of("::10.0.0.1", b), 2);
    ck_assert(!same(&a[0], &b[0]));
    /* link-local: the group is the link, by scope id (every link shares fe80::/64) */
    struct sockaddr_in6 ll = {.sin6_family = AF_INET6, .sin6_scope_id = 2};
    inet_pton(AF_INET6, "fe80::1", &ll.sin6_addr);
    ck_assert_uint_eq(peer_keys((const struct sockaddr *)&ll, a), 2);
    inet_pton(AF_INET6, "fe80::2", &ll.sin6_addr);
    ck_assert_uint_eq(peer_keys((const struct sockaddr *)&ll, b), 2);
    ck_assert(!same(&a[0], &b[0]));
    ck_assert(same(&a[1], &b[1]));
    unsigned char src2[PEER_SOURCE_MAX], src3[PEER_SOURCE_MAX];
    ck_assert_uint_eq(peer_source_bytes((const struct sockaddr *)&ll, src2), 8);
    ll.sin6_scope_id = 3; /* another interface */
    peer_keys((const struct sockaddr *)&ll, b);
    ck_assert(!same(&a[1], &b[1]));
    peer_source_bytes((const struct sockaddr *)&ll, src3); /* the login budget's source: the link too */
    ck_assert(memcmp(src2, src3, 8) != 0);
    ck_assert_uint_eq(keys_of("::1", a), 1); /* loopback: itself only */
    struct {
        sa_family_t f;
        char path[20];
    } un = {AF_UNIX, "x"};
    ck_assert_uint_eq(peer_keys((const struct sockaddr *)&un, a), 0); /* not counted */
    ck_assert_uint_eq(peer_keys(NULL, a), 0);
    unsigned char bytes[PEER_SOURCE_MAX];
    ck_assert_uint_eq(peer_source_bytes(NULL, bytes), 0);
    /* the failed-login source is the same key as the connection limits':
     * an IPv4 client whichever way it comes (NAT64 was its /64 there, shared
     * by every IPv4 client of the translator), an IPv6 /64, ::1 alone */
    char x[2 * PEER_SOURCE_MAX + 8], y[2 * PEER_SOURCE_MAX + 8];
    ck_assert_str_eq(source_of("10.0.0.1", x), "16:00000000000000000000ffff0a000001");
    ck_assert_str_eq(source_of("64:ff9b::10.0.0.1", y), x);
    ck_assert_str_eq(source_of("::ffff:10.0.0.1", y), x);
    ck_assert_str_ne(source_of("64:ff9b::10.0.0.2", y), x);
    ck_assert_str_eq(source_of("2001:db8:1:2::1", x), "8:20010db800010002");
    ck_assert_str_eq(source_of("2001:db8:1:2:ffff::9", y), x);
    ck_assert_str_eq(source_of("::1", x), "16:00000000000000000000000000000001");
    ck_assert_str_ne(source_of("::2", y), x);
}
END_TEST

START_TEST(counts)
{
    struct peerlimit *l = peerlimit_new(3, NULL);
    struct peer_key a = {0, 1, PEER_ADDR}, b = {7, 0, PEER_NET64}, c = {0, 3, PEER_ADDR}, d = {0, 4, PEER_ADDR};
    struct peer_key b_addr = {7, 0, PEER_ADDR}; /* same bits as b, another kind */
    ck_assert_uint_eq(peerlimit_count(l, &a), 0);
    ck_assert_uint_eq(peerlimit_add(l, &a), 1);
    ck_assert_uint_eq(peerlimit_add(l, &a), 2);
    ck_assert_uint_eq(peerlimit_add(l, &b), 1);
    ck_assert_uint_eq(peerlimit_count(l, &b_addr), 0);
    ck_assert_uint_eq(peerlimit_add(l, &c), 1);
    ck_assert_uint_eq(peerlimit_add(l, &d), 0); /* a fourth key: full */
    ck_assert_uint_eq(peerlimit_count(l, &d), 0);
    ck_assert_uint_eq(peerlimit_add(l, &a), 3); /* a known one still counts */
    peerlimit_del(l, &c);
    ck_assert_uint_eq(peerlimit_count(l, &c), 0);
    ck_assert_uint_eq(peerlimit_add(l, &d), 1); /* room again */
    peerlimit_del(l, &a);
    ck_assert_uint_eq(peerlimit_count(l, &a), 2);
    ck_assert_uint_eq(peerlimit_count(l, &b), 1);
    peerlimit_free(l);
    peerlimit_free(NULL);
}
END_TEST

/* Random adds and deletes over 300 keys, at most 200 at once, the table
 * checked against the model after every step: a deletion that broke a
 * probe sequence would lose a count behind it. A fixed hash key, so a
 * failure repeats; the 16-slot table of a second run crowds its runs. */
static void churn_with(size_t keys, size_t max, const uint64_t *seed)
{
    struct peerlimit *l = peerlimit_new(max, seed);
    unsigned *model = calloc(keys, sizeof *model);
    size_t open = 0;
    unsigned r = 12345;
    for (int step = 0; step < 200000; step++) {
        r = r * 1103515245u + 12345u;
        unsigned i = (r >> 8) % keys;
        /* pairs of keys differing only in kind */
        struct peer_key k = {0x0a00000000000000ull + i / 2, 0, i & 1 ? PEER_NET64 : PEER_ADDR};
        if ((r >> 4) & 1) {
            unsigned n = peerlimit_add(l, &k);
            if (!model[i] && open == max) {
                ck_assert_uint_eq(n, 0);
            } else {
                if (!model[i])
                    open++;
                ck_assert_uint_eq(n, ++model[i]);
            }
        } else if (model[i]) {
            peerlimit_del(l, &k);
            if (!--model[i])
                open--;
        }
        unsigned j = (r >> 16) % keys;
        struct peer_key kj = {0x0a00000000000000ull + j / 2, 0, j & 1 ? PEER_NET64 : PEER_ADDR};
        ck_assert_uint_eq(peerlimit_count(l, &kj), model[j]);
    }
    for (unsigned i = 0; i < keys; i++) {
        struct peer_key k = {0x0a00000000000000ull + i / 2, 0, i & 1 ? PEER_NET64 : PEER_ADDR};
        ck_assert_uint_eq(peerlimit_count(l, &k), model[i]);
    }
    free(model);
    peerlimit_free(l);
}

START_TEST(churn)
{
    static const uint64_t seed[2] = {0x0123456789abcdefull, 0xfedcba9876543210ull};
    churn_with(300, 200, seed);
    churn_with(12, 7, seed); /* 16 slots for up to 7 keys */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("peerlimit");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, keys_of_addresses);
    tcase_add_test(tc, counts);
    tcase_add_test(tc, churn);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
