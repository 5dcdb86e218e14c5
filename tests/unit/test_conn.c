/* test_conn.c - the read path without a socket: the reader-less fast path
 * for a whole bulk reply, and the size cap of the hiredis path, which holds
 * for the whole reply whatever its shape. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "testutil.h"

/* resp_whole_bulk on a writable copy of s (n bytes) */
static bool whole(const char *s, size_t n, size_t cap, redisReply *r, char **copy)
{
    *copy = malloc(n + 1);
    memcpy(*copy, s, n + 1);
    return resp_whole_bulk(*copy, n, cap, r);
}

START_TEST(whole_bulk)
{
    redisReply r;
    char *c;
    const char ok[] = "$11\r\n# Server\r\nx\r\n";
    ck_assert(whole(ok, sizeof ok - 1, 1024, &r, &c));
    ck_assert_int_eq(r.type, REDIS_REPLY_STRING);
    ck_assert_uint_eq(r.len, 11);
    ck_assert_str_eq(r.str, "# Server\r\nx"); /* NUL-terminated in place */
    free(c);
    ck_assert(whole("$0\r\n\r\n", 6, 1024, &r, &c) && r.len == 0 && r.str[0] == '\0');
    free(c);
    /* anything else is left to the reader, untouched */
    const char *no[] = {
        "$11\r\n# Server\r\nx",          /* partial */
        "$3\r\nabc\r\n$3\r\nabc\r\n",    /* two replies */
        "$-1\r\n",                       /* nil */
        "$03\r\nabc\r\n",                /* leading zero */
        "$3\r\nabcd\r\n",                /* longer than announced */
        "$4\r\nabc\r\n",                 /* shorter */
        "$3\nabc\r\n",                   /* bad header */
        "+OK\r\n",                       /* another type */
        "-ERR no\r\n",
        "*1\r\n$1\r\na\r\n",
        "$99999999999\r\nabc\r\n",       /* absurd length */
        NULL};
    for (const char *const *p = no; *p; p++) {
        ck_assert_msg(!whole(*p, strlen(*p), 1024, &r, &c), "accepted: %s", *p);
        ck_assert_str_eq(c, *p);
        free(c);
    }
    /* over the cap: the reader path reports it */
    ck_assert(!whole(ok, sizeof ok - 1, 10, &r, &c));
    free(c);
}
END_TEST

static bool count(void *arg, redisReply *r)
{
    (void)r;
    ++*(int *)arg;
    return true;
}

START_TEST(reader_cap)
{
    char detail[200];
    int n = 0;
    redisReader *r = resp_reader_new();
    ck_assert_int_eq(resp_feed(r, "$3\r\nabc\r\n+OK\r\n", 14, 64, count, &n, detail, sizeof detail), OUTCOME_OK);
    ck_assert_int_eq(n, 2);
    /* a header announcing more than fits ends it at once: no bytes waited for */
    ck_assert_int_eq(resp_feed(r, "$100\r\n", 6, 64, count, &n, detail, sizeof detail), OUTCOME_REPLY_TOO_LARGE);
    ck_assert_ptr_nonnull(strstr(detail, "larger than 64 bytes"));
    resp_reader_free(r);
    /* a line that ends in the read that takes it over the cap */
    char line[110] = "+";
    memset(line + 1, 'a', 100);
    memcpy(line + 101, "\r\n", 3);
    n = 0;
    r = resp_reader_new();
    ck_assert_int_eq(resp_feed(r, line, 103, 64, count, &n, detail, sizeof detail), OUTCOME_REPLY_TOO_LARGE);
    ck_assert_int_eq(n, 0);
    resp_reader_free(r);
    /* the replies that fit before it in the same read are still delivered */
    r = resp_reader_new();
    n = 0;
    ck_assert_int_eq(resp_feed(r, "+OK\r\n:1\r\n$100\r\nab", 19, 64, count, &n, detail, sizeof detail),
                     OUTCOME_REPLY_TOO_LARGE);
    ck_assert_int_eq(n, 2);
    resp_reader_free(r);
    /* the bytes themselves, when the header did not say */
    r = resp_reader_new();
    ck_assert_int_eq(resp_feed(r, "+", 1, 64, count, &n, detail, sizeof detail), OUTCOME_OK);
    char big[80];
    memset(big, 'x', sizeof big);
    ck_assert_int_eq(resp_feed(r, big, sizeof big, 64, count, &n, detail, sizeof detail), OUTCOME_REPLY_TOO_LARGE);
    resp_reader_free(r);
}
END_TEST

/* Feeds all of s in reads of step bytes; returns the outcome of the last
 * feed, the replies seen in *n and the bytes taken before it ended in *fed. */
static enum outcome feed_steps(const char *s, size_t len, size_t step, size_t cap, int *n, size_t *fed)
{
    char detail[200];
    redisReader *r = resp_reader_new();
    enum outcome o = OUTCOME_OK;
    *n = 0;
    for (*fed = 0; *fed < len && o == OUTCOME_OK;) {
        size_t k = len - *fed < step ? len - *fed : step;
        o = resp_feed(r, s + *fed, k, cap, count, n, detail, sizeof detail);
        *fed += k;
    }
    resp_reader_free(r);
    return o;
}

/* The cap and the fast path count a bulk reply alike, to the byte. */
START_TEST(cap_is_exact)
{
    char buf[1200];
    size_t payload = 1000;
    int hl = snprintf(buf, sizeof buf, "$%zu\r\n", payload);
    memset(buf + hl, 'y', payload);
    memcpy(buf + hl + payload, "\r\n", 2);
    size_t len = (size_t)hl + payload + 2, cap = len + RESP_ELEM_COST;
    redisReply w;
    char *c;
    int n;
    size_t fed;
    ck_assert(whole(buf, len, cap, &w, &c));
    free(c);
    ck_assert_int_eq(feed_steps(buf, len, len, cap, &n, &fed), OUTCOME_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(feed_steps(buf, len, 7, cap, &n, &fed), OUTCOME_OK);
    ck_assert_int_eq(n, 1);
    ck_assert(!whole(buf, len, cap - 1, &w, &c));
    free(c);
    ck_assert_int_eq(feed_steps(buf, len, len, cap - 1, &n, &fed), OUTCOME_REPLY_TOO_LARGE);
    ck_assert_int_eq(feed_steps(buf, len, 7, cap - 1, &n, &fed), OUTCOME_REPLY_TOO_LARGE);
    ck_assert_int_eq(n, 0);
    ck_assert_uint_le(fed, (size_t)hl + 7); /* refused at its header */
    /* an array whose last string's CRLF takes it over: 18 bytes on the wire
     * and three elements weigh 66, however the read is cut (a whole read
     * once let it through: the reply ended before the cap was checked) */
    const char *arr = "*2\r\n$2\r\nab\r\n$0\r\n\r\n";
    size_t steps[] = {1, 3, 18};
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        ck_assert_int_eq(feed_steps(arr, 18, steps[i], 18 + 3 * RESP_ELEM_COST, &n, &fed), OUTCOME_OK);
        ck_assert_int_eq(n, 1);
        ck_assert_int_eq(feed_steps(arr, 18, steps[i], 18 + 3 * RESP_ELEM_COST - 1, &n, &fed),
                         OUTCOME_REPLY_TOO_LARGE);
        ck_assert_int_eq(n, 0);
    }
}
END_TEST

/* Appends s (n bytes) to a growing buffer. */
static void put(char **b, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n > *cap) {
        *cap = (*len + n) * 2;
        *b = realloc(*b, *cap);
    }
    memcpy(*b + *len, s, n);
    *len += n;
}

/* The shapes a hostile peer streams: none gets past the cap, whatever the
 * nesting; each is refused within one read of crossing it. */
START_TEST(cap_holds_for_arrays)
{
    size_t cap = 1 << 20, len = 0, sz = 0;
    char *b = NULL, elem[220];
    int el = snprintf(elem, sizeof elem, "$200\r\n");
    memset(elem + el, 'z', 200);
    memcpy(elem + el + 200, "\r\n", 2);
    el += 202;
    /* 20 arrays of 1000 strings of 200 bytes (4 MB), nested in one */
    put(&b, &len, &sz, "*20\r\n", 5);
    for (int i = 0; i < 20; i++) {
        put(&b, &len, &sz, "*1000\r\n", 7);
        for (int k = 0; k < 1000; k++)
            put(&b, &len, &sz, elem, (size_t)el);
    }
    int n;
    size_t fed;
    size_t steps[] = {1, 4096, 65536};
    for (size_t s = 0; s < 3; s++) {
        ck_assert_int_eq(feed_steps(b, len, steps[s], cap, &n, &fed), OUTCOME_REPLY_TOO_LARGE);
        ck_assert_int_eq(n, 0);
        ck_assert_uint_le(fed, cap + steps[s]);
        ck_assert_uint_ge(fed, cap / 2); /* elements weigh, but not more than they cost */
    }
    /* the same within the cap is read whole */
    ck_assert_int_eq(feed_steps(b, len, 4096, 64 << 20, &n, &fed), OUTCOME_OK);
    ck_assert_int_eq(n, 1);
    /* a flat array of a million, or more than any int: refused at the header */
    const char *hdr[] = {"*1000000\r\n$100\r\n", "*2147483648\r\n", "*9223372036854775807\r\n",
                         "*99999999999999999999\r\n", "*1\r\n*1\r\n*100000\r\n", NULL};
    for (const char *const *h = hdr; *h; h++) {
        ck_assert_int_eq(feed_steps(*h, strlen(*h), 1, cap, &n, &fed), OUTCOME_REPLY_TOO_LARGE);
        ck_assert_int_eq(n, 0);
    }
    /* a string announced larger than the cap, however it is split */
    ck_assert_int_eq(feed_steps("$2000000\r\nab", 12, 3, cap, &n, &fed), OUTCOME_REPLY_TOO_LARGE);
    ck_assert_uint_le(fed, 12);
    /* many small elements weigh what they cost: 100,000 "+\r\n" = 300 KB on
     * the wire, 1.9 MB counted */
    len = 0;
    put(&b, &len, &sz, "*100000\r\n", 9);
    ck_assert_int_eq(feed_steps(b, len, 1, cap, &n, &fed), OUTCOME_REPLY_TOO_LARGE);
    /* replies that each fit are fine however many arrive in one read */
    len = 0;
    for (int i = 0; i < 3000; i++)
        put(&b, &len, &sz, elem, (size_t)el); /* 600 KB of 200-byte strings */
    ck_assert_int_eq(feed_steps(b, len, len, 4096, &n, &fed), OUTCOME_OK);
    ck_assert_int_eq(n, 3000);
    free(b);
}
END_TEST

/* The framing scan and hiredis agree on where replies end, byte by byte;
 * what hiredis refuses stays a protocol error. */
START_TEST(framing_agrees)
{
    const char ok[] = "+OK\r\n-ERR x\r\n:42\r\n$-1\r\n*-1\r\n*0\r\n$0\r\n\r\n+a\rb\r\n"
                      "*3\r\n$3\r\nfoo\r\n*2\r\n:1\r\n*0\r\n$3\r\nbar\r\n"
                      "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"
                      "$3\r\nabcXY"; /* hiredis skips two bytes after a string, whatever they are */
    int n;
    size_t fed;
    for (size_t step = 1; step <= sizeof ok; step++) {
        ck_assert_int_eq(feed_steps(ok, sizeof ok - 1, step, 1 << 20, &n, &fed), OUTCOME_OK);
        ck_assert_int_eq(n, 11);
    }
    const char *bad[] = {"%1\r\n", "*-2\r\n", "$-2\r\n", "$03\r\nabc\r\n", "*01\r\n:1\r\n", "$abc\r\n",
                         "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", "$1\r2\r\n", NULL};
    for (const char *const *p = bad; *p; p++)
        ck_assert_msg(feed_steps(*p, strlen(*p), 1, 1 << 20, &n, &fed) == OUTCOME_PROTOCOL, "accepted: %s", *p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conn");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, whole_bulk);
    tcase_add_test(tc, reader_cap);
    tcase_add_test(tc, cap_is_exact);
    tcase_add_test(tc, cap_holds_for_arrays);
    tcase_add_test(tc, framing_agrees);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
