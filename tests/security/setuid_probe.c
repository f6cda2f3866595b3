/* setuid_probe.c: the setuid-root helper of tests/security. The test
 * compiles it at run time into a temporary directory, linked against a
 * copy of libhakmem.so there (an absolute RPATH: the only kind a secure
 * process honours), and makes it setuid root. Run by an unprivileged user
 * with HAKMEM_* and MEMORY_PRESSURE_* variables of their choosing, it
 * allocates, waits for the shim's listener, and prints whether it runs in
 * secure mode and what mode and level the shim ended up in. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <time.h>
#include <unistd.h>

int hakmem_get_mode(void);
int hakmem_counter(const char *name, uint64_t *value);

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    void *p[64];
    for (int round = 0; round < (int)(secs * 10); round++) {
        for (int i = 0; i < 64; i++)
            p[i] = malloc(100 + (size_t)i * 64);
        for (int i = 0; i < 64; i++)
            free(p[i]);
        struct timespec d = { 0, 100 * 1000 * 1000 };
        nanosleep(&d, NULL);
    }
    uint64_t level = 0;
    hakmem_counter("level", &level);
    printf("secure %lu euid %d mode %d level %llu\n", getauxval(AT_SECURE), (int)geteuid(),
           hakmem_get_mode(), (unsigned long long)level);
    return 0;
}
