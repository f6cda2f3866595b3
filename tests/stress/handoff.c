/* handoff.c: producer threads allocate blocks and consumer threads free
 * them (mimalloc-bench's xmalloc-test pattern): every block crosses
 * threads. Checks each block's contents on the way, and that in FAST the
 * freed batches reach the next refill through the depot and not the
 * slabs' bitmaps: the shim's depot_spills counter must not move in steady
 * state (LEAN's depot is its few batches in place: there it moves). The queue holds at most QUEUE batches of BATCH blocks, so the
 * free blocks never outnumber what one class's depot holds (8 MiB of
 * 64-byte blocks: docs/ARCHITECTURE.md, "depot"); a depot bounded below
 * that (or none) spills on every burst of frees.
 *
 * Built as a plain program and run with the shim preloaded (and in the
 * TSan build with its calls renamed, tests/stress/hk_names.h).
 * Arguments: pairs of threads, batches per producer, block size.
 * Prints the counter and the peak RSS (VmHWM). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shim's, when it is loaded (weak: the program runs on any malloc). */
extern int hakmem_counter(const char *name, uint64_t *value) __attribute__((weak));
extern int hakmem_get_mode(void) __attribute__((weak));

#define BATCH 4096
#define QUEUE 16
#define WARMUP 8                        /* batches per producer before the count */

struct batch {
    struct batch *next;
    unsigned seq;
    void *obj[BATCH];
};

static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qfull = PTHREAD_COND_INITIALIZER, qempty = PTHREAD_COND_INITIALIZER;
static struct batch *queue;
static unsigned queued, producers_left;
static size_t block_size;
static unsigned batches_per_producer;
static pthread_barrier_t warm;          /* producers, and main taking the count */

static void fail(const char *msg)
{
    fprintf(stderr, "handoff: %s\n", msg);
    exit(1);
}

static uint64_t spills(void)
{
    uint64_t v = 0;
    if (hakmem_counter && hakmem_counter("depot_spills", &v) != 0)
        fail("hakmem_counter(depot_spills) failed");
    return v;
}

static void fill(unsigned char *p, unsigned seq, unsigned i)
{
    memset(p, (int)((seq * 31 + i) & 0xff), block_size);
}

static void check(const unsigned char *p, unsigned seq, unsigned i)
{
    unsigned char want = (unsigned char)((seq * 31 + i) & 0xff);
    for (size_t k = 0; k < block_size; k++)
        if (p[k] != want)
            fail("a block's contents changed between its producer and its consumer");
}

static void *producer(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    for (unsigned n = 0; n < batches_per_producer; n++) {
        if (n == WARMUP)
            pthread_barrier_wait(&warm);
        struct batch *b = malloc(sizeof *b);
        if (!b)
            fail("malloc of a batch failed");
        b->seq = id * 100000 + n;
        for (unsigned i = 0; i < BATCH; i++) {
            if (!(b->obj[i] = malloc(block_size)))
                fail("malloc failed");
            fill(b->obj[i], b->seq, i);
        }
        pthread_mutex_lock(&qlock);
        while (queued >= QUEUE)
            pthread_cond_wait(&qfull, &qlock);
        b->next = queue;
        queue = b;
        queued++;
        pthread_cond_signal(&qempty);
        pthread_mutex_unlock(&qlock);
    }
    pthread_mutex_lock(&qlock);
    producers_left--;
    pthread_cond_broadcast(&qempty);
    pthread_mutex_unlock(&qlock);
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&qlock);
        while (!queue && producers_left)
            pthread_cond_wait(&qempty, &qlock);
        struct batch *b = queue;
        if (b) {
            queue = b->next;
            queued--;
            pthread_cond_signal(&qfull);
        }
        pthread_mutex_unlock(&qlock);
        if (!b)
            return NULL;
        for (unsigned i = 0; i < BATCH; i++) {
            check(b->obj[i], b->seq, i);
            free(b->obj[i]);
        }
        free(b);
    }
}

static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

int main(int argc, char **argv)
{
    unsigned pairs = argc > 1 ? (unsigned)atoi(argv[1]) : 2;
    batches_per_producer = argc > 2 ? (unsigned)atoi(argv[2]) : 100;
    block_size = argc > 3 ? (size_t)atol(argv[3]) : 64;
    if (pairs < 1 || pairs > 16 || batches_per_producer <= WARMUP || block_size < 1 ||
        block_size > 1024)
        fail("usage: handoff [pairs 1..16] [batches per producer > 8] [block size 1..1024]");
    producers_left = pairs;
    pthread_barrier_init(&warm, NULL, pairs + 1);
    pthread_t t[32];
    for (unsigned i = 0; i < pairs; i++) {
        if (pthread_create(&t[2 * i], NULL, consumer, NULL) ||
            pthread_create(&t[2 * i + 1], NULL, producer, (void *)(uintptr_t)i))
            fail("pthread_create failed");
    }
    pthread_barrier_wait(&warm);
    uint64_t before = spills();
    for (unsigned i = 0; i < 2 * pairs; i++)
        pthread_join(t[i], NULL);
    uint64_t after = spills();
    printf("handoff: %u pairs, %u batches of %d blocks of %zu B each: depot_spills %llu "
           "after the warm-up (%s), peak RSS %ld kB\n",
           pairs, batches_per_producer, BATCH, block_size,
           (unsigned long long)(after - before), hakmem_counter ? "hakmem" : "not hakmem",
           peak_rss_kb());
    if (after != before && !(hakmem_get_mode && hakmem_get_mode() == 1))   /* 1: LEAN */
        fail("freed batches went to the slabs' bitmaps in steady state (depot_spills moved)");
    return 0;
}
