/* chaos_driver.c: libchaosdriver.so, preloaded beside the shim
 * (LD_PRELOAD="libchaosdriver.so libhakmem.so"). When CHAOS_LEVELS=1, its
 * constructor starts a thread that never allocates -- what the listener
 * is -- and that changes the pressure level (hakmem_apply_pressure: NONE,
 * LOW, MEDIUM, CRITICAL) or the mode (hakmem_set_mode) at random every 1 to
 * 20 ms, while the program does its work. Each change appends one byte to
 * the file CHAOS_LOG (when set), so the driver counts changes across
 * processes without allocating. CHAOS_SEED seeds it (default: the pid).
 * Without the shim (hakmem_* not found) it does nothing.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int (*apply_level)(int);
static int (*set_mode)(int);
static int log_fd = -1;
static uint64_t rng;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void *driver(void *arg)
{
    for (;;) {
        uint64_t r = next();
        struct timespec d = { 0, (long)(1 + r % 20) * 1000000 };
        while (nanosleep(&d, &d) != 0)
            ;
        r >>= 8;
        if (r % 10 == 0)
            set_mode((int)(r >> 4) & 1);
        else
            apply_level((int)(r % 4));
        if (log_fd >= 0 && write(log_fd, "l", 1) != 1)
            log_fd = -1;
    }
    return arg;
}

__attribute__((constructor)) static void chaos_start(void)
{
    const char *on = getenv("CHAOS_LEVELS");
    if (!on || *on != '1')
        return;
    apply_level = (int (*)(int))dlsym(RTLD_DEFAULT, "hakmem_apply_pressure");
    set_mode = (int (*)(int))dlsym(RTLD_DEFAULT, "hakmem_set_mode");
    if (!apply_level || !set_mode)
        return;
    const char *seed = getenv("CHAOS_SEED");
    rng = (seed ? strtoull(seed, NULL, 0) : 0) * 0x9E3779B97F4A7C15ull + (uint64_t)getpid();
    if (!rng)
        rng = 1;
    const char *log = getenv("CHAOS_LOG");
    if (log && *log)
        log_fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    /* the program's signals are not the driver's */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    pthread_create(&t, &a, driver, NULL);
    pthread_attr_destroy(&a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
