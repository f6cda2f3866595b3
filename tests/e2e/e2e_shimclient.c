/* e2e_shimclient.c: a real hakmem client for the end-to-end tests. Run
 * under LD_PRELOAD=libhakmem.so (with HAKMEM_RUNTIME_DIR); it allocates a
 * little, then idles in a sleep loop, and every 20 ms replaces the file
 * named by argv[1] with "mode M level L\n" (hakmem_get_mode() and the
 * shim's "level" counter, found with dlsym so that the program also runs
 * without the shim: then it exits 3). SIGTERM ends it with status 0.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s STATUS_FILE\n", argv[0]);
        return 2;
    }
    int (*get_mode)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "hakmem_get_mode");
    int (*counter)(const char *, uint64_t *) =
        (int (*)(const char *, uint64_t *))dlsym(RTLD_DEFAULT, "hakmem_counter");
    if (!get_mode || !counter) {
        fprintf(stderr, "e2e_shimclient: libhakmem is not loaded\n");
        return 3;
    }
    struct sigaction sa = { .sa_handler = on_term };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);

    /* some memory of our own, so that a mode switch has something to do */
    enum { N = 256 };
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = malloc(64 + (size_t)i * 16);
    for (int i = 0; i < N; i += 2) {
        free(blocks[i]);
        blocks[i] = NULL;
    }

    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);
    while (!stop) {
        uint64_t level = 0;
        counter("level", &level);
        char line[64];
        int n = snprintf(line, sizeof(line), "mode %d level %llu\n", get_mode(),
                         (unsigned long long)level);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            ssize_t w = write(fd, line, (size_t)n);
            (void)w;
            close(fd);
            rename(tmp, argv[1]);
        }
        struct timespec d = { 0, 20 * 1000 * 1000 };
        nanosleep(&d, NULL);
    }
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    return 0;
}
