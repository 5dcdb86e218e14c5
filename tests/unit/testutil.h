/* testutil.h - helpers shared by the unit suites. */
#ifndef REDPULSE_TESTUTIL_H
#define REDPULSE_TESTUTIL_H

#include <check.h>
#include <stddef.h>

/* Reads FIXTURES/name into a malloc'd NUL-terminated buffer; aborts on error. */
char *read_fixture(const char *name, size_t *len);

/* Removes a test's scratch directory and everything in it (rm -rf). */
void testutil_remove_dir(const char *dir);

/* Runs the suite, prints Check's summary; returns the process exit status. */
int testutil_run(Suite *s);

#endif
