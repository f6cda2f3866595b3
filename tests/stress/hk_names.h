/* hk_names.h: forced into stress.c (-include) for the sanitizer builds of
 * the allocator core, which have no libc names (the sanitizer owns
 * malloc): the program's allocation calls go to the core's hk_ functions
 * instead, so that ASan/UBSan check the core's own memory accesses and
 * TSan its locking and hand-offs. Memory libc allocates for itself (stdio
 * buffers, dlsym) stays the sanitizer's; the program never frees it. */
#define malloc hk_malloc
#define free hk_free
#define calloc hk_calloc
#define realloc hk_realloc
#define reallocarray hk_reallocarray
#define posix_memalign hk_posix_memalign
#define aligned_alloc hk_aligned_alloc
#define memalign hk_memalign_libc
#define valloc hk_valloc
#define pvalloc hk_pvalloc
#define malloc_usable_size hk_usable_size
#define malloc_trim hk_malloc_trim
