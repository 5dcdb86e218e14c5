/* test_util.c - durations, numbers, label names, buffers and JSON strings. */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "testutil.h"
#include "util.h"

START_TEST(durations)
{
    uint64_t ms;
    const char *why;
    ck_assert_int_eq(parse_duration_ms("250ms", &ms, &why), 0);
    ck_assert_uint_eq(ms, 250);
    ck_assert_int_eq(parse_duration_ms("1s", &ms, &why), 0);
    ck_assert_uint_eq(ms, 1000);
    ck_assert_int_eq(parse_duration_ms("1m30s", &ms, &why), 0);
    ck_assert_uint_eq(ms, 90000);
    ck_assert_int_eq(parse_duration_ms("1.5s", &ms, &why), 0);
    ck_assert_uint_eq(ms, 1500);
    ck_assert_int_eq(parse_duration_ms("2h", &ms, &why), 0);
    ck_assert_uint_eq(ms, 7200000);
    ck_assert_int_eq(parse_duration_ms("10", &ms, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "unit"));
    ck_assert_int_eq(parse_duration_ms("", &ms, &why), -1);
    ck_assert_int_eq(parse_duration_ms("-1s", &ms, &why), -1);
    ck_assert_int_eq(parse_duration_ms("5 s", &ms, &why), -1);
    ck_assert_int_eq(parse_duration_ms("1d", &ms, &why), -1);
    ck_assert_int_eq(parse_duration_ms("s", &ms, &why), -1);
    ck_assert_int_eq(parse_duration_ms("99999999h", &ms, &why), -1);
}
END_TEST

/* Only digits, an optional fraction and a unit: strtod's other forms (hex,
 * exponents, "inf") are refused, and so is anything finer than a
 * millisecond, which was rounded ("0.4ms" became 0, "off" for a cadence;
 * "99.6ms" passed a 100 ms minimum). */
START_TEST(duration_forms)
{
    uint64_t ms;
    const char *why;
    static const char *const bad[] = {"0x10s", "0X1s", "1e3ms", "1E1s", "1.e3s", "infs", "nans", "1.s", ".5s",
                                      "+1s", "0.4ms", "99.6ms", "1.0005s", "0.0000001h", "1ms0.5ms", NULL};
    for (const char *const *b = bad; *b; b++)
        ck_assert_msg(parse_duration_ms(*b, &ms, &why) == -1, "\"%s\" accepted as %llu ms", *b,
                      (unsigned long long)ms);
    ck_assert_int_eq(parse_duration_ms("0.4ms", &ms, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "finer than a millisecond"));
    /* the message names what is wrong, not "unknown unit" */
    ck_assert_int_eq(parse_duration_ms("0x10s", &ms, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "not a decimal number"));
    ck_assert_int_eq(parse_duration_ms("1E1s", &ms, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "no exponents"));
    ck_assert_int_eq(parse_duration_ms("10", &ms, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "unknown unit"));
    ck_assert_int_eq(parse_duration_ms("10x", &ms, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "unknown unit"));
    struct {
        const char *s;
        uint64_t ms;
    } good[] = {{"0s", 0},          {"0.5s", 500},      {"0.001s", 1},        {"1.0ms", 1},
                {"1.5000000000000s", 1500}, {"0.25m", 15000}, {"1h1m1s1ms", 3661001}, {"0.0001h", 360},
                {"8760h", 31536000000ull}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ck_assert_msg(parse_duration_ms(good[i].s, &ms, &why) == 0, "\"%s\": %s", good[i].s, why);
        ck_assert_uint_eq(ms, good[i].ms);
    }
    ck_assert_int_eq(parse_duration_ms("8761h", &ms, &why), -1);
    ck_assert_int_eq(parse_duration_ms("99999999999999999999999999s", &ms, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "too long"));
}
END_TEST

START_TEST(doubles)
{
    double v;
    ck_assert(parse_double("12", &v) && v == 12);
    ck_assert(parse_double("-1", &v) && v == -1);
    ck_assert(parse_double("4.78", &v) && v == 4.78);
    ck_assert(!parse_double("", &v));
    ck_assert(!parse_double("1x", &v));
    ck_assert(!parse_double("0x10", &v));
    ck_assert(!parse_double("nan", &v));
    ck_assert(!parse_double("inf", &v));
    ck_assert(!parse_double(" 1", &v));
    ck_assert(!parse_double("1e999", &v));
    /* the exact decimal path agrees with strtod */
    static const char *const dec[] = {"0.1", "50.76", "-4.78", "1.003", "123456789.123456", "9007199254740993",
                                      "1234567890123456", "0.000001", "1.", ".5", "+7", "1e5", "12345678901234567"};
    for (size_t i = 0; i < sizeof dec / sizeof dec[0]; i++) {
        ck_assert_msg(parse_double(dec[i], &v) && v == strtod(dec[i], NULL), "%s", dec[i]);
        ck_assert_msg(parse_double_n(dec[i], strlen(dec[i]), &v) && v == strtod(dec[i], NULL), "%s", dec[i]);
    }
    ck_assert(parse_double_n("12,34", 2, &v) && v == 12); /* only the n bytes */
    ck_assert(parse_double_n("4.5e1x", 5, &v) && v == 45);
    ck_assert(!parse_double_n("1\0002", 3, &v));
    ck_assert(!parse_double_n("", 0, &v));
    ck_assert(parse_double_n("1.", 1, &v) && v == 1);
}
END_TEST

/* plain_decimal_prefix stops where a plain decimal stops, and what it
 * reads as one, parse_double_n reads the same. */
START_TEST(decimal_prefix)
{
    static const struct {
        const char *s;
        size_t stop; /* bytes read */
        bool ok;
    } cases[] = {
        {"12\r\n", 2, true},   {"12", 2, true},          {"-0\n", 2, true},     {"4.78%", 4, true},
        {"1.\n", 2, false},     {".5", 0, false},          {"-", 1, false},        {"", 0, false},
        {"+1", 0, false},       {"1e5", 1, true},          {"1.2.3", 3, true},     {"ok", 0, false},
        {"1234567890123456:", 16, true},                    {"12345678901234567\n", 17, false},
        {"123456789012345.6\n", 17, false},                 {"1234567890123.45", 16, true},
        {"99999999999999999999999999\n", 26, false},        {"007", 3, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *s = cases[i].s, *stop = NULL;
        double v = -1, w = -2;
        bool ok = plain_decimal_prefix(s, s + strlen(s), &stop, &v);
        ck_assert_msg(ok == cases[i].ok && (size_t)(stop - s) == cases[i].stop, "%s: %d, %td bytes", s, ok,
                      stop - s);
        if (ok)
            ck_assert_msg(parse_double_n(s, cases[i].stop, &w) && v == w, "%s: %g against %g", s, v, w);
    }
    /* end bounds the read: no byte at or past it is looked at */
    const char *stop, *d = "1234", *m = "-5";
    double v;
    ck_assert(plain_decimal_prefix(d, d + 2, &stop, &v) && v == 12 && stop == d + 2);
    ck_assert(!plain_decimal_prefix(m, m + 1, &stop, &v));
}
END_TEST

/* The printf-free formatter must write exactly what "%.15g" writes. */
START_TEST(g15_matches_printf)
{
    static const double fixed[] = {0.1, 0.5, 1.5, 2.5, 1e-5, 1.2345e-6, 9.99999999999999e14, 999999999999999.4,
                                   1e15 + 0.5, 123456.789, 0.000123, 0.0001, 1e-4, 1e22, 1.7976931348623157e308,
                                   5e-324, 3.14159265358979, 2.0 / 3.0, 1e-300, 0.30000000000000004, 64.5, -7.25};
    char a[64], b[64];
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        fmt_g15(a, fixed[i]);
        snprintf(b, sizeof b, "%.15g", fixed[i]);
        ck_assert_str_eq(a, b);
    }
    srand(42);
    for (int i = 0; i < 500000; i++) {
        /* every magnitude, and the rates and ratios redpulse writes most */
        double m = (double)rand() / RAND_MAX + (double)rand() / RAND_MAX / 1e9;
        int ex = rand() % 80 - 40;
        double v = m * pow(10, ex) * (rand() % 2 ? 1 : -1);
        if (i % 4 == 0)
            v = (double)(rand() % 100000) / (double)(rand() % 999 + 1);
        fmt_g15(a, v);
        snprintf(b, sizeof b, "%.15g", v);
        ck_assert_msg(strcmp(a, b) == 0, "%.17g: got %s, printf %s", v, a, b);
    }
}
END_TEST

START_TEST(label_names)
{
    ck_assert(is_label_name("namespace"));
    ck_assert(is_label_name("_x9"));
    ck_assert(!is_label_name("9x"));
    ck_assert(!is_label_name("__meta"));
    ck_assert(!is_label_name("a-b"));
    ck_assert(!is_label_name(""));
}
END_TEST

START_TEST(buf_numbers)
{
    struct buf b = BUF_INIT;
    buf_put_double(&b, 1795980094972430.0);
    buf_putc(&b, ' ');
    buf_put_double(&b, 0.1);
    buf_putc(&b, ' ');
    buf_put_double(&b, -1);
    buf_putc(&b, ' ');
    buf_put_double(&b, NAN);
    buf_putc(&b, ' ');
    buf_put_double(&b, 1e-6);
    ck_assert_str_eq(b.p, "1795980094972430 0.1 -1 NaN 1e-06");
    /* every printed double reads back to 15 significant digits */
    double vals[] = {1.0 / 3, 2.0 / 3 * 1e10, 123456789.123456789, 4.78};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        buf_reset(&b);
        buf_put_double(&b, vals[i]);
        ck_assert(fabs(strtod(b.p, NULL) - vals[i]) <= fabs(vals[i]) * 1e-14);
    }
    buf_free(&b);
}
END_TEST

START_TEST(json_strings)
{
    struct buf b = BUF_INIT;
    buf_put_json_str(&b, "a\"b\\c\n\x01\xc3\xa9\xff");
    ck_assert_str_eq(b.p, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\\ufffd\"");
    buf_reset(&b);
    buf_put_json_str(&b, "\xed\xa0\x80"); /* UTF-16 surrogate encoded in UTF-8: invalid */
    ck_assert_str_eq(b.p, "\"\\ufffd\\ufffd\\ufffd\"");
    buf_reset(&b);
    buf_put_json_str(&b, "\xc3"); /* truncated sequence */
    ck_assert_str_eq(b.p, "\"\\ufffd\"");
    buf_free(&b);
}
END_TEST

/* utf8_text_ok against the byte loop it replaced, every odd byte at every
 * place of strings long enough for its eight-byte steps: a control
 * character, DEL, a lone continuation byte, a sequence cut by the end, and
 * valid two-, three- and four-byte characters. */
static bool text_ok_ref(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c >= 0x80) {
            size_t l = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
            if (!l || l > n - i)
                return false;
            for (size_t k = 1; k < l; k++)
                if (((unsigned char)s[i + k] & 0xc0) != 0x80)
                    return false;
            i += l - 1;
        }
    }
    return true;
}

START_TEST(utf8_text_checks)
{
    static const char *const odd[] = {"\x01", "\x1f", "\t", "\x7f", "\x80", "\xff", "\xc3", "\xe2\x82",
                                      "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", " ", "~", NULL};
    char s[64];
    size_t checked = 0, refused = 0;
    for (size_t len = 0; len <= 40; len++)
        for (size_t at = 0; at <= len; at++)
            for (const char *const *o = odd; *o; o++) {
                size_t ol = strlen(*o);
                if (len + ol >= sizeof s)
                    continue;
                memset(s, 'a', len);
                memmove(s + at + ol, s + at, len - at);
                memcpy(s + at, *o, ol);
                s[len + ol] = '\0';
                bool want = text_ok_ref(s, len + ol);
                ck_assert_msg(utf8_text_ok(s, len + ol) == want, "length %zu, \"%s\" at %zu: expected %d", len, *o,
                              at, want);
                checked++;
                refused += !want;
            }
    ck_assert_uint_gt(refused, checked / 3);
    ck_assert(utf8_text_ok("cmdstat_config|get", 18));
    ck_assert(!utf8_text_ok("cmdstat_config|get\n", 19));
    ck_assert(!utf8_text_ok("abcdefgh\xe2\x82\xac", 10)); /* a character cut by n */
}
END_TEST

START_TEST(buf_growth)
{
    struct buf b = BUF_INIT;
    for (int i = 0; i < 10000; i++)
        buf_printf(&b, "%d,", i);
    ck_assert_uint_gt(b.len, 40000);
    ck_assert(strncmp(b.p, "0,1,2,", 6) == 0);
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    buf_reset(&b);
    buf_printf(&b, "<%s>", big);
    ck_assert_uint_eq(b.len, 1001);
    size_t len;
    char *p = buf_steal(&b, &len);
    ck_assert_uint_eq(len, 1001);
    ck_assert_ptr_null(b.p);
    free(p);
    p = buf_steal(&b, &len);
    ck_assert_str_eq(p, "");
    free(p);
}
END_TEST

/* A word of the command line quoted in a message stays on its line. */
START_TEST(printable_words)
{
    char b[PRINTABLE_MAX];
    ck_assert_str_eq(printable("/etc/redpulse.json", b, sizeof b), "/etc/redpulse.json");
    ck_assert_str_eq(printable("/tmp/x\n2026-12-02T00:00:00Z error main: forged", b, sizeof b),
                     "/tmp/x?2026-12-02T00:00:00Z error main: forged");
    ck_assert_str_eq(printable("a\tb\rc\x7f\x1b[31m", b, sizeof b), "a?b?c??[31m");
    ck_assert_str_eq(printable("caf\xc3\xa9 \xff", b, sizeof b), "caf\xc3\xa9 ?"); /* UTF-8 kept, the rest '?' */
    char small[8];
    ck_assert_str_eq(printable("abcdefghij", small, sizeof small), "abcd...");
    ck_assert_str_eq(printable("abc\xc3\xa9\xc3\xa9\xc3\xa9", small, sizeof small), "abc..."); /* never half a character */
    ck_assert_str_eq(printable("abcdefg", small, sizeof small), "abcdefg");
    /* what splits or reorders a line without being C0: NEL (C1), the line
     * separator, a right-to-left override; other text kept */
    ck_assert_str_eq(printable("a\xc2\x85" "b", b, sizeof b), "a??b");
    ck_assert_str_eq(printable("x\xe2\x80\xa8y", b, sizeof b), "x???y");
    ck_assert_str_eq(printable("\xe2\x80\xaegnp.exe", b, sizeof b), "???gnp.exe");
    ck_assert_str_eq(printable("\xe2\x82\xac \xc2\xa0", b, sizeof b), "\xe2\x82\xac \xc2\xa0"); /* euro, nbsp */
    char tiny[3] = "zz";
    ck_assert_str_eq(printable("abc", tiny, sizeof tiny), "");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, durations);
    tcase_add_test(tc, duration_forms);
    tcase_add_test(tc, doubles);
    tcase_add_test(tc, decimal_prefix);
    tcase_add_test(tc, g15_matches_printf);
    tcase_add_test(tc, label_names);
    tcase_add_test(tc, buf_numbers);
    tcase_add_test(tc, json_strings);
    tcase_add_test(tc, buf_growth);
    tcase_add_test(tc, utf8_text_checks);
    tcase_add_test(tc, printable_words);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
