/* fuzz_env.c: libFuzzer target for the env box (shim/env.c). The input,
 * split at NUL and newline bytes, is an environment: hk_env_load applies
 * it to a struct hk_options of defaults and to the shim's own (which also
 * takes MEMORY_PRESSURE_*), and hk_opt_parse gets the value of every entry
 * for every option. Beyond the sanitizers it checks that every option is
 * within its range afterwards, and that a value hk_opt_parse accepts
 * formats (hk_opt_format) to a text that parses to the same value.
 * Built by tests/fuzz/meson.build with env.c and log.c only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hk_internal.h"

#define FUZZ_MAX_ENV 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int cond, const char *what, const struct hk_optdef *d)
{
    if (!cond) {
        fprintf(stderr, "fuzz_env: %s: %s\n", d->name, what);
        abort();
    }
}

/* *v (option d's field) is a value d allows. */
static void check_value(const struct hk_optdef *d, const void *v)
{
    if (d->type == HK_OPT_PATH) {
        const char *s = v;
        size_t n = strnlen(s, HK_PATH_MAX);
        must(n < HK_PATH_MAX && n <= d->max, "path not terminated within its bound", d);
        must(s[0] == '/', "path not absolute", d);
        return;
    }
    uint32_t u = *(const uint32_t *)v;
    switch (d->type) {
    case HK_OPT_BOOL: must(u <= 1, "bool above 1", d); break;
    case HK_OPT_UINT: must(u >= d->min && u <= d->max, "uint out of range", d); break;
    case HK_OPT_ENUM: {
        uint32_t n = 1;
        for (const char *c = d->choices; *c; c++)
            n += *c == '|';
        must(u < n, "enum beyond its choices", d);
        break;
    }
    default: break;
    }
}

static void check_options(const struct hk_options *o)
{
    for (size_t i = 0; i < hk_noptdefs; i++)
        check_value(&hk_optdefs[i], (const char *)o + hk_optdefs[i].offset);
}

/* Parse s for d; if accepted: in range, and format -> parse gives it back. */
static void round_trip(const struct hk_optdef *d, const char *s)
{
    union { uint32_t u; char path[HK_PATH_MAX]; } a, b;
    hk_opt_default(d, &a);
    if (hk_opt_parse(d, s, &a) != 0)
        return;
    check_value(d, &a);
    char text[HK_PATH_MAX + 16];
    hk_opt_format(d, &a, text, sizeof(text));
    hk_opt_default(d, &b);
    must(hk_opt_parse(d, text, &b) == 0, "its own formatted value does not parse", d);
    if (d->type == HK_OPT_PATH)
        must(strcmp(a.path, b.path) == 0, "path changed on the round trip", d);
    else
        must(a.u == b.u, "value changed on the round trip", d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[8192];
    static char *envp[FUZZ_MAX_ENV + 1];
    if (size >= sizeof(buf))
        size = sizeof(buf) - 1;
    memcpy(buf, data, size);
    buf[size] = '\0';
    size_t n = 0;
    for (size_t i = 0; i <= size && n < FUZZ_MAX_ENV;) {
        envp[n++] = buf + i;
        while (i < size && buf[i] != '\0' && buf[i] != '\n')
            i++;
        buf[i++] = '\0';
    }
    envp[n] = NULL;

    struct hk_options o;
    for (size_t i = 0; i < hk_noptdefs; i++)
        hk_opt_default(&hk_optdefs[i], (char *)&o + hk_optdefs[i].offset);
    hk_env_load(envp, &o);
    check_options(&o);
    hk_env_load(envp, &hk_opt);
    check_options(&hk_opt);
    if (strnlen(hk_mp_watch, sizeof(hk_mp_watch)) == sizeof(hk_mp_watch) ||
        strnlen(hk_mp_write, sizeof(hk_mp_write)) == sizeof(hk_mp_write)) {
        fprintf(stderr, "fuzz_env: MEMORY_PRESSURE_* copy not terminated\n");
        abort();
    }

    for (size_t e = 0; e < n; e++) {
        const char *eq = strchr(envp[e], '=');
        const char *value = eq ? eq + 1 : envp[e];
        for (size_t i = 0; i < hk_noptdefs; i++)
            round_trip(&hk_optdefs[i], value);
    }
    return 0;
}
