/* sandbox.c: what hakmemd gives up once it is set up (sockets bound, BPF
 * loaded and attached, ring made): every capability, from the bounding
 * set too, and every system call outside a short allowlist (libseccomp;
 * it sets no_new_privs). What is left is what the event loop does:
 * sockets it has, files under /proc and the cgroup tree that root owns
 * (uid 0 stays; only the capabilities go), BPF map access by fd, memory.
 * A call outside the list fails with EPERM rather than killing the
 * daemon, so a missed call shows up as an error in the log. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "manager.h"

static int drop_capabilities(void)
{
    int last = 63;
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    if (f) {
        if (fscanf(f, "%d", &last) != 1)
            last = 63;
        fclose(f);
    }
    for (int cap = 0; cap <= last; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL && errno != EPERM)
            return -errno;
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    return syscall(SYS_capset, &h, data) == 0 ? 0 : -errno;
}

static const int allowed[] = {
    /* I/O on descriptors it has, and files it opens under /proc and /sys */
    SCMP_SYS(read), SCMP_SYS(readv), SCMP_SYS(pread64), SCMP_SYS(write), SCMP_SYS(writev),
    SCMP_SYS(close), SCMP_SYS(openat), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(statx),
    SCMP_SYS(statfs), /* cgroup_id_of_dir: is a directory on a cgroup file system */
    SCMP_SYS(lseek), SCMP_SYS(fcntl), SCMP_SYS(faccessat), SCMP_SYS(faccessat2),
    SCMP_SYS(unlink), SCMP_SYS(unlinkat), SCMP_SYS(eventfd2),
    /* the event loop and its sockets */
    SCMP_SYS(epoll_create1), SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl), SCMP_SYS(accept4),
    SCMP_SYS(recvmsg), SCMP_SYS(recvfrom), SCMP_SYS(sendmsg), SCMP_SYS(sendto),
    SCMP_SYS(getsockopt), SCMP_SYS(timerfd_settime), SCMP_SYS(timerfd_gettime),
    SCMP_SYS(futex), SCMP_SYS(bpf),
    /* memory (malloc, mapping client stats pages) */
    SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(mprotect), SCMP_SYS(brk),
    SCMP_SYS(madvise),
    /* time, identity, signals, exit */
    SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep), SCMP_SYS(getpid),
    SCMP_SYS(gettid), SCMP_SYS(getrandom), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(restart_syscall), SCMP_SYS(sched_yield), SCMP_SYS(tgkill), SCMP_SYS(exit),
    SCMP_SYS(exit_group),
};

int sandbox_enter(char *why, size_t len)
{
    int rc = drop_capabilities();
    if (rc < 0) {
        snprintf(why, len, "cannot drop capabilities: %s", strerror(-rc));
        return rc;
    }
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx) {
        snprintf(why, len, "seccomp_init failed");
        return -ENOMEM;
    }
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        if (allowed[i] < 0)             /* not on this architecture */
            continue;
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
        if (rc < 0) {
            snprintf(why, len, "seccomp_rule_add(%d): %s", allowed[i], strerror(-rc));
            seccomp_release(ctx);
            return rc;
        }
    }
    rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0)
        snprintf(why, len, "seccomp_load: %s", strerror(-rc));
    return rc;
}
