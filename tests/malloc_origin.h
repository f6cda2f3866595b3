/* malloc_origin.h: for test programs that run on whatever malloc the
 * process has (hakmem preloaded or linked, glibc): print where malloc comes
 * from and, with want non-empty, fail unless that object's path contains
 * want (the proof that LD_PRELOAD or the link took effect). Returns 0, or
 * -1 after printing why on stderr. */
#ifndef HK_TEST_MALLOC_ORIGIN_H
#define HK_TEST_MALLOC_ORIGIN_H

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static inline int malloc_origin_check(const char *prog, const char *want)
{
    void *fn = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info info;
    const char *from = "?";
    if (fn && dladdr(fn, &info) && info.dli_fname)
        from = info.dli_fname;
    printf("%s: malloc comes from %s\n", prog, from);
    if (want && *want && !strstr(from, want)) {
        fprintf(stderr, "%s: FAIL: malloc comes from %s, not from an object matching \"%s\" "
                "(LD_PRELOAD not in effect?)\n", prog, from, want);
        return -1;
    }
    return 0;
}

#endif
