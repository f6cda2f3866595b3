/* fuzz_maps.c: libFuzzer target for the /proc/self/maps line parser
 * (shim/maps.c, hk_maps_parse). The input is one line, in a heap buffer
 * of exactly its size (ASan catches a read past it). Beyond the
 * sanitizers it checks that an accepted line has lo < hi, that a line
 * with a path is not anonymous, and that the result depends on the given
 * bytes only: the same line followed by more bytes parses the same.
 * Built by tests/fuzz/meson.build with maps.c only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hk_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_maps: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size ? size : 1);
    char *longer = malloc(size + 16);
    memcpy(line, data, size);
    memcpy(longer, data, size);
    memset(longer + size, 'f', 16);     /* hex digits and a path, if read */

    struct hk_maps_entry a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    bool ok = hk_maps_parse(line, size, &a);
    if (ok != hk_maps_parse(longer, size, &b) || (ok && memcmp(&a, &b, sizeof(a)) != 0))
        fail("the result depends on bytes past the line");
    if (ok && a.lo >= a.hi)
        fail("accepted a range with lo >= hi");
    if (ok && a.anon && a.rtld)
        fail("anonymous and ld.so at once");
    free(line);
    free(longer);
    return 0;
}
