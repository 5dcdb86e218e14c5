/* fuzz_http.c - what the HTTP side does with request text: percent
 * decoding of paths and target names (never a NUL), the lookup of the
 * name among configured instances (only exact names match), and the
 * Accept-Encoding parser. */
#include <stdint.h>

#include "fuzz.h"
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "publish.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct registry *reg;
    static const char *names[] = {"cache-1", "queue", "a", "redis-01.prod", "x%y"};
    if (!reg)
        reg = registry_new(names, 5);
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    (void)http_accepts_gzip(s);
    size_t before = strlen(s);
    size_t n = http_unescape(s);
    if (n > before || strlen(s) != n)
        abort();
    long i = registry_find(reg, s);
    if (i >= 0 && strcmp(names[i], s) != 0)
        abort();
    free(s);
    return 0;
}
