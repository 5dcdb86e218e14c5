/* test_conn.c - the read path without a socket: the reader-less fast path
 * for a whole bulk reply, and the size cap of the hiredis path. */
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
    ck_assert_int_eq(resp_feed(r, "$100\r\n", 6, 64, count, &n, detail, sizeof detail), OUTCOME_OK);
    char big[80];
    memset(big, 'x', sizeof big);
    ck_assert_int_eq(resp_feed(r, big, sizeof big, 64, count, &n, detail, sizeof detail), OUTCOME_REPLY_TOO_LARGE);
    ck_assert_ptr_nonnull(strstr(detail, "larger than 64 bytes"));
    redisReaderFree(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conn");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, whole_bulk);
    tcase_add_test(tc, reader_cap);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
