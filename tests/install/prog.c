/* prog.c: a program built against the installed hakmem (tests/install):
 * links -lhakmem found through pkg-config, allocates small blocks, and
 * prints what hakmem's own API says, so the test knows the installed
 * library served the allocations. */
#include <hakmem.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    enum { N = 1000 };
    static void *p[N];
    uint64_t live = 0, in_use = 0;

    for (int i = 0; i < N; i++) {
        p[i] = malloc(64);
        if (!p[i])
            return 1;
        memset(p[i], 0xa5, 64);
    }
    if (hakmem_counter("superslabs_live", &live) != 0 || hakmem_counter("bytes_in_use", &in_use) != 0)
        return 2;
    printf("superslabs_live %" PRIu64 "\nbytes_in_use %" PRIu64 "\nmode %d\n", live, in_use,
           hakmem_get_mode());
    for (int i = 0; i < N; i++)
        free(p[i]);
    return 0;
}
