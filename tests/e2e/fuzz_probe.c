/* fuzz_probe.c: configure-time check that clang can build a libFuzzer
 * target (tests/e2e/meson.build); on Debian the fuzzer runtime comes with
 * libclang-rt-14-dev (libclang_rt.fuzzer-x86_64.a). */
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    (void)d;
    (void)n;
    return 0;
}
