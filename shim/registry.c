/* registry.c: the ownership registry (the DSO guard's first half).
 * One bit per 2 MiB of the 47-bit address space, set while a hakmem
 * segment starts there. 8 MiB of zero pages in .bss: a lookup reads the
 * bitmap, never the pointer's memory, so a foreign or stale pointer is
 * told apart without a fault. Written only by segment map/unmap. It sits
 * in struct hk_lookup beside the free path's block test.
 */
#include "hk_internal.h"

struct hk_lookup hk_lookup;

void hk_reg_set(uintptr_t seg)
{
    uintptr_t idx = seg >> HK_SEG_SHIFT;
    atomic_fetch_or_explicit(&hk_lookup.regmap[idx >> 6], (uint64_t)1 << (idx & 63),
                             memory_order_release);
}

void hk_reg_clear(uintptr_t seg)
{
    uintptr_t idx = seg >> HK_SEG_SHIFT;
    atomic_fetch_and_explicit(&hk_lookup.regmap[idx >> 6], ~((uint64_t)1 << (idx & 63)),
                              memory_order_release);
}
