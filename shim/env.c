/* env.c: the env box. Every HAKMEM_* variable is declared once, in
 * HK_OPTIONS (hk_internal.h), and parsed here once at start, without
 * allocating. A bad value warns once on stderr and keeps the default; an
 * unknown HAKMEM_* name warns too (a typo should not pass silently).
 * Nothing outside this file reads the environment. In a secure process
 * (AT_SECURE) nothing is read at all: see hk_env_init.
 */
#include <fcntl.h>
#include <sys/auxv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "hk_internal.h"

#define HK_OPT_INIT_HK_OPT_BOOL(f, def, choices) .f = (def),
#define HK_OPT_INIT_HK_OPT_UINT(f, def, choices) .f = (def),
#define HK_OPT_INIT_HK_OPT_ENUM(f, def, choices) .f = (def),
#define HK_OPT_INIT_HK_OPT_PATH(f, def, choices) .f = choices,
struct hk_options hk_opt = {
#define HK_OPT_INIT(name, field, type, def, min, max, choices, doc) \
    HK_OPT_INIT_##type(field, def, choices)
    HK_OPTIONS(HK_OPT_INIT)
#undef HK_OPT_INIT
};

const struct hk_optdef hk_optdefs[] = {
#define HK_OPT_DEF(name, field, type, def, min, max, choices, doc) \
    { #name, type, def, min, max, choices, doc, offsetof(struct hk_options, field) },
    HK_OPTIONS(HK_OPT_DEF)
#undef HK_OPT_DEF
};
const size_t hk_noptdefs = sizeof(hk_optdefs) / sizeof(hk_optdefs[0]);

/* Case-insensitive compare of s with the n bytes at w. */
static bool hk_word_eq(const char *s, const char *w, size_t n)
{
    return strlen(s) == n && strncasecmp(s, w, n) == 0;
}

static int hk_parse_bool(const char *s, uint32_t *out)
{
    static const char *const yes[] = { "1", "yes", "true", "on" };
    static const char *const no[] = { "0", "no", "false", "off" };
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) { *out = 1; return 0; }
        if (strcasecmp(s, no[i]) == 0) { *out = 0; return 0; }
    }
    return -1;
}

static int hk_parse_uint(const struct hk_optdef *d, const char *s, uint32_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX)
            return -1;
    }
    if (v < d->min || v > d->max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int hk_parse_enum(const struct hk_optdef *d, const char *s, uint32_t *out)
{
    const char *w = d->choices;
    for (uint32_t i = 0; w && *w; i++) {
        const char *bar = strchr(w, '|');
        size_t n = bar ? (size_t)(bar - w) : strlen(w);
        if (hk_word_eq(s, w, n)) {
            *out = i;
            return 0;
        }
        w = bar ? bar + 1 : NULL;
    }
    return -1;
}

/* An absolute path of at most d->max bytes. */
static int hk_parse_path(const struct hk_optdef *d, const char *s, char *out)
{
    size_t n = strlen(s);
    if (s[0] != '/' || n > d->max)
        return -1;
    memcpy(out, s, n + 1);
    return 0;
}

/* Parse s for option d into *out (a uint32_t, or a char[HK_PATH_MAX] for
 * PATH). Returns 0, or -1 leaving *out as is. */
int hk_opt_parse(const struct hk_optdef *d, const char *s, void *out)
{
    uint32_t v;
    int rc = -1;
    switch (d->type) {
    case HK_OPT_BOOL: rc = hk_parse_bool(s, &v); break;
    case HK_OPT_UINT: rc = hk_parse_uint(d, s, &v); break;
    case HK_OPT_ENUM: rc = hk_parse_enum(d, s, &v); break;
    case HK_OPT_PATH: return hk_parse_path(d, s, out);
    }
    if (rc == 0)
        *(uint32_t *)out = v;
    return rc;
}

void hk_opt_default(const struct hk_optdef *d, void *out)
{
    if (d->type == HK_OPT_PATH)
        hk_fmt(out, HK_PATH_MAX, "%s", d->choices);
    else
        *(uint32_t *)out = d->def;
}

/* The text of the value at pv of option d ("1", "DONTNEED", "/run/x"). */
size_t hk_opt_format(const struct hk_optdef *d, const void *pv, char *buf, size_t len)
{
    if (d->type == HK_OPT_PATH)
        return hk_fmt(buf, len, "%s", (const char *)pv);
    uint32_t v = *(const uint32_t *)pv;
    if (d->type == HK_OPT_ENUM) {
        const char *w = d->choices;
        for (uint32_t i = 0; w && *w; i++) {
            const char *bar = strchr(w, '|');
            size_t n = bar ? (size_t)(bar - w) : strlen(w);
            if (i == v)
                return hk_fmt(buf, len, "%.*s", (int)n, w);
            w = bar ? bar + 1 : NULL;
        }
    }
    return hk_fmt(buf, len, "%u", v);
}

static void hk_expected(const struct hk_optdef *d, char *buf, size_t len)
{
    switch (d->type) {
    case HK_OPT_BOOL: hk_fmt(buf, len, "0 or 1"); break;
    case HK_OPT_UINT: hk_fmt(buf, len, "an integer from %u to %u", d->min, d->max); break;
    case HK_OPT_ENUM: hk_fmt(buf, len, "one of %s", d->choices); break;
    case HK_OPT_PATH: hk_fmt(buf, len, "an absolute path of at most %u bytes", d->max); break;
    }
}

char hk_mp_watch[HK_PATH_MAX * 2];
char hk_mp_write[256];

/* Copy the value of entry e (NAME=value) into buf if e is name=; true then. */
static bool take_foreign(const char *e, const char *name, char *buf, size_t len)
{
    size_t n = strlen(name);
    if (strncmp(e, name, n) != 0 || e[n] != '=')
        return false;
    if (strlen(e + n + 1) >= len) {
        hk_log("%s is longer than %zu bytes; ignored", name, len - 1);
        return true;
    }
    memcpy(buf, e + n + 1, strlen(e + n + 1) + 1);
    return true;
}

/* Apply every HAKMEM_* entry of envp to o; entries of other names are
 * ignored. Each bad or unknown entry warns once (this runs once). */
void hk_env_load(char *const *envp, struct hk_options *o)
{
    for (; envp && *envp; envp++) {
        const char *e = *envp;
        if (o == &hk_opt && (take_foreign(e, "MEMORY_PRESSURE_WATCH", hk_mp_watch, sizeof(hk_mp_watch)) ||
                             take_foreign(e, "MEMORY_PRESSURE_WRITE", hk_mp_write, sizeof(hk_mp_write))))
            continue;
        if (strncmp(e, "HAKMEM_", 7) != 0)
            continue;
        const char *eq = strchr(e, '=');
        if (!eq)
            continue;
        size_t nlen = (size_t)(eq - e);
        const struct hk_optdef *d = NULL;
        for (size_t i = 0; i < hk_noptdefs; i++)
            if (strlen(hk_optdefs[i].name) == nlen && memcmp(hk_optdefs[i].name, e, nlen) == 0)
                d = &hk_optdefs[i];
        if (!d) {
            hk_log("unknown variable %.*s ignored", (int)nlen, e);
            continue;
        }
        void *field = (char *)o + d->offset;
        if (hk_opt_parse(d, eq + 1, field) != 0) {
            char exp[96], defs[HK_PATH_MAX];
            hk_opt_default(d, field);
            hk_expected(d, exp, sizeof(exp));
            hk_opt_format(d, field, defs, sizeof(defs));
            hk_log("%s='%.40s' is not valid (expected %s); using %s", d->name, eq + 1, exp, defs);
        }
    }
}

extern char **environ;

/* Before libc has set environ (a malloc from ld.so), read the environment
 * from /proc into a static buffer. */
static char hk_env_buf[32768];
static char *hk_env_vec[512];

static char **hk_env_from_proc(void)
{
    int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, hk_env_buf + n, sizeof(hk_env_buf) - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    hk_env_buf[n] = '\0';
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < sizeof(hk_env_vec) / sizeof(hk_env_vec[0]);) {
        hk_env_vec[k++] = hk_env_buf + i;
        i += strlen(hk_env_buf + i) + 1;
    }
    hk_env_vec[k] = NULL;
    return hk_env_vec;
}

bool hk_secure;

/* A setuid, setgid or file-capability program runs with the environment
 * of whoever started it: HAKMEM_RUNTIME_DIR could point it at a fake
 * daemon, MEMORY_PRESSURE_WATCH make it open any file read-write. As
 * glibc with MALLOC_*, the shim then ignores its environment: defaults
 * only, and the listener checks that hakmemd is root's (listener.c). */
void hk_env_init(void)
{
    if (getauxval(AT_SECURE)) {
        hk_secure = true;
        return;
    }
    hk_env_load(environ ? environ : hk_env_from_proc(), &hk_opt);
}

void hakmem_config_print(int fd)
{
    char line[256];
    for (size_t i = 0; i < hk_noptdefs; i++) {
        const struct hk_optdef *d = &hk_optdefs[i];
        char val[HK_PATH_MAX];
        hk_opt_format(d, (const char *)&hk_opt + d->offset, val, sizeof(val));
        size_t n = hk_fmt(line, sizeof(line), "%s=%s\n", d->name, val);
        if (write(fd, line, n) < 0)
            return;
    }
}
