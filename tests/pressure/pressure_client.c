/* pressure_client.c: an idle shim client for the pressure tests. Run it
 * under LD_PRELOAD=libhakmem.so: it allocates MB megabytes in small blocks
 * (16..1024 bytes), frees all but KEEP_PCT percent of them at random,
 * prints "ready" and then sleeps until SIGTERM, touching nothing: whatever
 * it gives back meanwhile is the listener's doing. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 40;
    unsigned keep_pct = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 10;
    size_t total = mb << 20, used = 0, n = 0, cap = total / 16 + 1;
    void **p = malloc(cap * sizeof(*p));
    unsigned s = 12345;
    if (!p)
        return 1;
    while (used < total && n < cap) {
        s = s * 1103515245u + 12345u;
        size_t sz = 16 + (s >> 8) % 1009;
        if (!(p[n] = malloc(sz)))
            return 1;
        memset(p[n], (int)n, sz);
        used += sz;
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        if ((s >> 8) % 100 >= keep_pct) {
            free(p[i]);
            p[i] = NULL;
        }
    }
    signal(SIGTERM, on_term);
    printf("ready %d %zu\n", (int)getpid(), n);
    fflush(stdout);
    while (!stop)
        pause();
    return 0;
}
