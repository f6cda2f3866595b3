/* prog.c: the program gcc.sh compiles (with -O2) and runs, with and without
 * the shim. It exists to give cc1 real work (many inlinable functions,
 * loops to vectorize, a switch-heavy interpreter, macro-generated variants)
 * and to print results that depend only on its fixed seeds: hashing,
 * sorting, a hash table, big-number arithmetic, a small VM, matrix
 * products, string building and a tree. Its own allocations go through
 * malloc, so the produced binary exercises the shim too.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t next_rand(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static uint64_t fnv1a(const void *data, size_t n, uint64_t h)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001B3ull;
    }
    return h;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* ---- sorting: merge sort and quicksort must agree ---- */
static void merge_sort(uint32_t *a, uint32_t *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t m = n / 2;
    merge_sort(a, tmp, m);
    merge_sort(a + m, tmp, n - m);
    size_t i = 0, j = m, k = 0;
    while (i < m && j < n)
        tmp[k++] = a[i] <= a[j] ? a[i++] : a[j++];
    while (i < m)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof *a);
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return (a > b) - (a < b);
}

static uint64_t test_sort(size_t n)
{
    uint32_t *a = xmalloc(n * sizeof *a), *b = xmalloc(n * sizeof *b);
    uint32_t *tmp = xmalloc(n * sizeof *tmp);
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] = (uint32_t)next_rand();
    merge_sort(a, tmp, n);
    qsort(b, n, sizeof *b, cmp_u32);
    uint64_t h = memcmp(a, b, n * sizeof *a) == 0 ? 1 : 0;
    h = fnv1a(a, n * sizeof *a, h);
    free(a);
    free(b);
    free(tmp);
    return h;
}

/* ---- a chained hash table with string keys ---- */
struct entry {
    struct entry *next;
    uint64_t count;
    char key[];
};

struct table {
    struct entry **bucket;
    size_t nbucket, n;
};

static void table_grow(struct table *t)
{
    size_t nb = t->nbucket ? t->nbucket * 2 : 64;
    struct entry **b = calloc(nb, sizeof *b);
    if (!b)
        exit(1);
    for (size_t i = 0; i < t->nbucket; i++) {
        struct entry *e = t->bucket[i];
        while (e) {
            struct entry *next = e->next;
            size_t h = fnv1a(e->key, strlen(e->key), 14695981039346656037ull) & (nb - 1);
            e->next = b[h];
            b[h] = e;
            e = next;
        }
    }
    free(t->bucket);
    t->bucket = b;
    t->nbucket = nb;
}

static void table_add(struct table *t, const char *key)
{
    if (t->n >= t->nbucket)
        table_grow(t);
    size_t len = strlen(key);
    size_t h = fnv1a(key, len, 14695981039346656037ull) & (t->nbucket - 1);
    for (struct entry *e = t->bucket[h]; e; e = e->next)
        if (strcmp(e->key, key) == 0) {
            e->count++;
            return;
        }
    struct entry *e = xmalloc(sizeof *e + len + 1);
    memcpy(e->key, key, len + 1);
    e->count = 1;
    e->next = t->bucket[h];
    t->bucket[h] = e;
    t->n++;
}

static uint64_t test_table(int n)
{
    struct table t = {0};
    char key[32];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "k%" PRIu64, next_rand() % (uint64_t)(n / 3 + 1));
        table_add(&t, key);
    }
    uint64_t h = t.n, maxc = 0;
    for (size_t i = 0; i < t.nbucket; i++) {
        struct entry *e = t.bucket[i];
        while (e) {
            struct entry *next = e->next;
            h += fnv1a(e->key, strlen(e->key), e->count);   /* order-free sum */
            if (e->count > maxc)
                maxc = e->count;
            free(e);
            e = next;
        }
    }
    free(t.bucket);
    return h ^ (maxc << 48);
}

/* ---- big numbers: factorial in base 1e9, digits summed ---- */
static uint64_t test_bignum(int n)
{
    size_t cap = 4, len = 1;
    uint32_t *d = xmalloc(cap * sizeof *d);
    d[0] = 1;
    for (int k = 2; k <= n; k++) {
        uint64_t carry = 0;
        for (size_t i = 0; i < len; i++) {
            uint64_t v = (uint64_t)d[i] * (uint64_t)k + carry;
            d[i] = (uint32_t)(v % 1000000000u);
            carry = v / 1000000000u;
        }
        while (carry) {
            if (len == cap) {
                cap *= 2;
                uint32_t *nd = realloc(d, cap * sizeof *d);
                if (!nd)
                    exit(1);
                d = nd;
            }
            d[len++] = (uint32_t)(carry % 1000000000u);
            carry /= 1000000000u;
        }
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < len; i++)
        for (uint32_t v = d[i]; v; v /= 10)
            sum += v % 10;
    free(d);
    return sum * 1000000 + len;
}

/* ---- a small stack VM ---- */
enum op {
    OP_PUSH, OP_ADD, OP_MUL, OP_XOR, OP_DUP, OP_SWAP, OP_DROP, OP_JNZ, OP_DEC, OP_HALT,
};

static uint64_t run_vm(const uint8_t *code, size_t n, uint64_t arg)
{
    uint64_t stack[64], t;
    int sp = 0;
    size_t pc = 0;
    stack[sp++] = arg;
    for (long steps = 0; pc < n && steps < 20000; steps++) {
        switch ((enum op)code[pc++]) {
        case OP_PUSH:
            if (sp < 64)
                stack[sp++] = code[pc];
            pc++;
            break;
        case OP_ADD:
            if (sp > 1) {
                sp--;
                stack[sp - 1] += stack[sp];
            }
            break;
        case OP_MUL:
            if (sp > 1) {
                sp--;
                stack[sp - 1] *= stack[sp] | 1;
            }
            break;
        case OP_XOR:
            if (sp > 1) {
                sp--;
                stack[sp - 1] ^= stack[sp] << 7;
            }
            break;
        case OP_DUP:
            if (sp > 0 && sp < 64) {
                stack[sp] = stack[sp - 1];
                sp++;
            }
            break;
        case OP_SWAP:
            if (sp > 1) {
                t = stack[sp - 1];
                stack[sp - 1] = stack[sp - 2];
                stack[sp - 2] = t;
            }
            break;
        case OP_DROP:
            if (sp > 1)
                sp--;
            break;
        case OP_JNZ:
            if (sp > 0 && stack[0] != 0)
                pc = code[pc] % n;
            else
                pc++;
            break;
        case OP_DEC:
            if (sp > 0 && stack[0] > 0)
                stack[0]--;
            break;
        case OP_HALT:
            pc = n;
            break;
        }
    }
    uint64_t h = (uint64_t)sp;
    for (int i = 0; i < sp; i++)
        h = h * 31 + stack[i];
    return h;
}

static uint64_t test_vm(void)
{
    /* squares and mixes stack[0] until it reaches 0 or the step limit */
    static const uint8_t prog[] = {
        OP_PUSH, 3, OP_DUP, OP_MUL, OP_PUSH, 5, OP_XOR, OP_ADD, OP_DROP,
        OP_DEC, OP_JNZ, 2, OP_HALT,
    };
    uint64_t h = 0;
    for (uint64_t a = 1; a < 200; a++)
        h = h * 1099511628211ull + run_vm(prog, sizeof prog, a * 10);
    return h;
}

/* ---- matrices: generated variants for several element types ---- */
#define DEFINE_MATMUL(T, NAME)                                               \
    static uint64_t NAME(int n)                                              \
    {                                                                        \
        T *a = xmalloc((size_t)n * n * sizeof(T));                           \
        T *b = xmalloc((size_t)n * n * sizeof(T));                           \
        T *c = calloc((size_t)n * n, sizeof(T));                             \
        if (!c)                                                              \
            exit(1);                                                         \
        for (int i = 0; i < n * n; i++) {                                    \
            a[i] = (T)(next_rand() % 17);                                    \
            b[i] = (T)(next_rand() % 13);                                    \
        }                                                                    \
        for (int i = 0; i < n; i++)                                          \
            for (int k = 0; k < n; k++)                                      \
                for (int j = 0; j < n; j++)                                  \
                    c[i * n + j] += a[i * n + k] * b[k * n + j];             \
        uint64_t h = 0;                                                      \
        for (int i = 0; i < n * n; i++)                                      \
            h = h * 1000003u + (uint64_t)c[i];                               \
        free(a);                                                             \
        free(b);                                                             \
        free(c);                                                             \
        return h;                                                            \
    }

DEFINE_MATMUL(uint8_t, matmul_u8)
DEFINE_MATMUL(uint16_t, matmul_u16)
DEFINE_MATMUL(uint32_t, matmul_u32)
DEFINE_MATMUL(uint64_t, matmul_u64)
DEFINE_MATMUL(int32_t, matmul_i32)
DEFINE_MATMUL(double, matmul_f64)
DEFINE_MATMUL(float, matmul_f32)

/* ---- strings: build a document, count words by length ---- */
static uint64_t test_strings(int n)
{
    size_t cap = 16, len = 0;
    char *s = xmalloc(cap);
    for (int i = 0; i < n; i++) {
        char w[48];
        int wl = snprintf(w, sizeof w, "%s%" PRIx64 " ", i % 3 ? "w" : "word",
                          next_rand() % 100000);
        if (len + (size_t)wl + 1 > cap) {
            cap *= 2;
            char *ns = realloc(s, cap);
            if (!ns)
                exit(1);
            s = ns;
        }
        memcpy(s + len, w, (size_t)wl);
        len += (size_t)wl;
    }
    s[len] = 0;
    uint64_t bylen[16] = {0};
    for (char *tok = strtok(s, " "); tok; tok = strtok(NULL, " "))
        bylen[strlen(tok) & 15]++;
    free(s);
    return fnv1a(bylen, sizeof bylen, len);
}

/* ---- a binary search tree, built and torn down ---- */
struct node {
    struct node *l, *r;
    uint64_t key;
};

static struct node *insert(struct node *t, uint64_t key)
{
    struct node **p = &t;
    while (*p)
        p = key < (*p)->key ? &(*p)->l : &(*p)->r;
    *p = xmalloc(sizeof **p);
    (*p)->l = (*p)->r = NULL;
    (*p)->key = key;
    return t;
}

static uint64_t walk(const struct node *t, uint64_t h, int depth, int *maxdepth)
{
    while (t) {
        if (depth > *maxdepth)
            *maxdepth = depth;
        h = walk(t->l, h, depth + 1, maxdepth);
        h = h * 31 + t->key;
        t = t->r;
        depth++;
    }
    return h;
}

static void drop(struct node *t)
{
    while (t) {
        struct node *r = t->r;
        drop(t->l);
        free(t);
        t = r;
    }
}

static uint64_t test_tree(int n)
{
    struct node *t = NULL;
    for (int i = 0; i < n; i++)
        t = insert(t, next_rand() % 1000000007u);
    int maxdepth = 0;
    uint64_t h = walk(t, 0, 0, &maxdepth);
    drop(t);
    return h ^ (uint64_t)maxdepth << 56;
}

int main(void)
{
    printf("sort %016" PRIx64 "\n", test_sort(200000));
    printf("table %016" PRIx64 "\n", test_table(200000));
    printf("bignum %" PRIu64 "\n", test_bignum(3000));
    printf("vm %016" PRIx64 "\n", test_vm());
    printf("matmul %016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64 "\n",
           matmul_u8(64), matmul_u16(64), matmul_u32(96), matmul_u64(96));
    printf("matmul %016" PRIx64 " %016" PRIx64 " %016" PRIx64 "\n",
           matmul_i32(96), matmul_f64(96), matmul_f32(64));
    printf("strings %016" PRIx64 "\n", test_strings(300000));
    printf("tree %016" PRIx64 "\n", test_tree(200000));
    return 0;
}
