/* fuzz_ring.c: libFuzzer target for everything that reads bytes from the
 * other side: ring regions (validate, read, state lookups, resolve), the
 * stats page, hello, welcome and control messages. Build with clang
 * -fsanitize=fuzzer,address (proto/meson.build does when cc is clang).
 * Input byte 0 picks the shape:
 *   even  the input itself is a ring region and a message of each kind
 *   odd   a valid ring is built (geometry from bytes 1-2), filled with
 *         messages, then patched with (offset, byte) pairs from the rest,
 *         which reaches the read paths a random header never would.
 * Must not: depend on anything but proto/; keep state between runs.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include "ring.h"

#define FUZZ_MAX (1u << 18)

static _Alignas(4096) unsigned char region[FUZZ_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_ring(const unsigned char *mem, size_t size, uint64_t k1, uint64_t k2)
{
    struct ring r;
    struct ring_reader rd;
    struct ring_state st;
    struct hakmem_ring_msg m;

    if (ring_validate(&r, mem, size) < 0)
        return;
    (void)ring_futex_value(&r);
    (void)ring_heartbeat_age(&r, k1);
    (void)ring_state_word(&r);
    (void)ring_state_lookup(&r, k1, &st);
    (void)ring_state_lookup(&r, k2, &st);
    (void)ring_resolve(&r, k1, k2 | HAKMEM_KEY_PID_BIT, &m);
    if (ring_reader_init(&rd, &r) < 0)
        return;
    /* Also read from arbitrary positions, as a lapped reader would. */
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 1)
            rd.next = k1 % (HAKMEM_RING_MAX_POS + 2);
        if (pass == 2)
            rd.next = 1;
        for (int i = 0; i < 300; i++) {
            int rc = ring_read_next(&rd, &m);
            if (rc == RING_EMPTY)
                break;
            if (rc == RING_LAPPED && ring_reader_resync(&rd) < 0)
                break;
            if (rc < 0 && rc != -EBADMSG)
                break;
        }
    }
}

static void read_messages(const uint8_t *data, size_t size)
{
    struct hakmem_hello h;
    struct hakmem_welcome w;
    struct hakmem_ctl_req q;
    struct hakmem_ctl_resp resp;
    const unsigned char *payload;
    struct proto_stats s;

    (void)proto_hello_check(data, size, &h);
    (void)proto_welcome_check(data, size, &w);
    (void)proto_ctl_req_check(data, size, &q);
    if (proto_ctl_resp_check(data, size, &resp, &payload) == 0) {
        /* touch every payload byte the header promises */
        unsigned sum = 0;
        for (uint32_t i = 0; i < resp.payload_len; i++)
            sum += payload[i];
        (void)sum;
    }
    memcpy(region, data, size);
    (void)proto_stats_read(region, size, &s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX || size < 1)
        return 0;
    read_messages(data, size);

    if (!(data[0] & 1)) {
        uint64_t k1 = 0, k2 = 0;
        memcpy(region, data, size);
        if (size >= 17) {
            memcpy(&k1, data + 1, 8);
            memcpy(&k2, data + 9, 8);
        }
        read_ring(region, size, k1, k2);
        return 0;
    }

    /* Build a valid ring, then damage it. */
    if (size < 3)
        return 0;
    uint32_t slots = 1u << (data[1] % 8), cap = 1u << (data[2] % 8);
    size_t len = ring_layout_size(slots, cap);
    if (len == 0 || len > FUZZ_MAX)
        return 0;
    struct ring_producer p;
    struct ring_params prm = { .generation = 7, .heartbeat_period_ns = 1000, .now_ns = 1 };
    if (ring_init(&p, region, len, slots, cap, &prm) < 0)
        return 0;
    for (uint32_t i = 0; i < slots + 3; i++)
        (void)ring_publish(&p, i % 5, (uint8_t)(i % HAKMEM_LEVEL_COUNT), 0, i, 0);
    for (size_t i = 3; i + 3 <= size; i += 3) {
        uint32_t off = ((uint32_t)data[i] | (uint32_t)data[i + 1] << 8) * 7u % (uint32_t)len;
        region[off] = data[i + 2];
    }
    read_ring(region, len, data[1], data[2]);
    /* A region shorter than the header claims must be refused. */
    read_ring(region, len - (data[size - 1] % len), data[1], data[2]);
    return 0;
}
