/* mempressure.c: systemd's memory-pressure protocol, followed by the
 * listener thread when no hakmemd is there to follow.
 *
 * The service manager sets $MEMORY_PRESSURE_WATCH (a file to watch: a PSI
 * trigger on the service's own cgroup's memory.pressure) and
 * $MEMORY_PRESSURE_WRITE (the trigger to write there, base64), read by
 * env.c with the rest of the environment (never in secure mode). An event
 * is MEDIUM; HK_MP_CALM_MS without one brings NONE back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include "hk_internal.h"

#define HK_MP_CALM_MS 10000             /* calm before NONE */

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static size_t b64decode(const char *in, unsigned char *out, size_t cap)
{
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *in && *in != '='; in++) {
        int v = b64val(*in);
        if (v < 0)
            return 0;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8 && n < cap) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}

int hk_mp_open(void)
{
    int fd = open(hk_mp_watch, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        hk_log("MEMORY_PRESSURE_WATCH %s: %s; not following it", hk_mp_watch, strerror(errno));
        hk_mp_watch[0] = '\0';
        return -1;
    }
    unsigned char trig[193];
    size_t n = b64decode(hk_mp_write, trig, sizeof(trig) - 1);
    if (n > 0 && trig[n - 1] != '\0')  /* the kernel reads a C string */
        trig[n++] = '\0';
    if (n > 0 && write(fd, trig, n) != (ssize_t)n) {
        hk_log("MEMORY_PRESSURE_WATCH %s: cannot arm the trigger: %s; not following it",
               hk_mp_watch, strerror(errno));
        close(fd);
        hk_mp_watch[0] = '\0';         /* once is enough */
        return -1;
    }
    return fd;
}

int hk_mp_wait(int fd, unsigned ms, uint64_t *last_event, int level)
{
    if (hk_helper_poll(fd, POLLPRI, (int)ms) & POLLPRI) {
        *last_event = hk_now_ns();
        return HAKMEM_LEVEL_MEDIUM;
    }
    if (level != HAKMEM_LEVEL_NONE &&
        hk_now_ns() - *last_event > (uint64_t)HK_MP_CALM_MS * 1000000u)
        return HAKMEM_LEVEL_NONE;
    return level;
}
