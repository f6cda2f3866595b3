/* ns.c: unshare and setns, exported in front of libc's. Some namespace
 * changes refuse a multithreaded caller -- unshare(CLONE_NEWUSER) (and
 * CLONE_THREAD, CLONE_SIGHAND, CLONE_VM), setns into a user or a mount
 * namespace -- and the shim's helper threads (helper.c) would make every
 * program multithreaded: unshare -U, nsenter, bubblewrap, rootless podman
 * would fail with EINVAL. So these park the helpers (they really exit),
 * make the raw system call, and let the helpers come back when their boxes
 * next ask for them. A program with threads of its own gets EINVAL, as
 * without the shim. Not guarded: this is no allocation path, and parking
 * takes no allocator lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "hk_internal.h"

#define HK_NS_SINGLE (CLONE_NEWUSER | CLONE_THREAD | CLONE_SIGHAND | CLONE_VM)

int hakmem_unshare(int flags)
{
    bool park = (flags & HK_NS_SINGLE) != 0;
    if (park)
        hk_helper_park();
    long rc = syscall(SYS_unshare, flags);
    int e = errno;
    if (park)
        hk_helper_unpark();
    errno = e;
    return (int)rc;
}

/* nstype 0 accepts any kind of namespace, a pidfd several at once: park
 * for every call. */
int hakmem_setns(int fd, int nstype)
{
    hk_helper_park();
    long rc = syscall(SYS_setns, fd, nstype);
    int e = errno;
    hk_helper_unpark();
    errno = e;
    return (int)rc;
}

#ifndef HK_NO_LIBC_NAMES
extern __typeof(hakmem_unshare) unshare __attribute__((alias("hakmem_unshare"), visibility("default")));
extern __typeof(hakmem_setns) setns __attribute__((alias("hakmem_setns"), visibility("default")));
#endif
