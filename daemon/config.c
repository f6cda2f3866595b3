/* config.c: parses, checks and prints hakmemd's options, all generated
 * from the one list CONFIG_KEYS in config.h (nothing here is kept in sync
 * by position). Errors go into the caller's buffer, never to a log; the
 * only file this reads is the one it is given.
 */
#include "config.h"
#include "msg.h"
#include "reason.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

enum config_type {
    CONFIG_T_U32,
    CONFIG_T_PATH,
    CONFIG_T_NAME,
    CONFIG_T_LEVEL,
    CONFIG_T_LOGLEVEL,
    CONFIG_T_SOURCES,
};

struct config_key {
    const char *name;
    enum config_type type;
    const char *def;  /* default, in file syntax */
    uint32_t min, max; /* U32 only */
    const char *doc;
    size_t off;       /* offset of the field in struct hakmemd_config */
};

static const struct config_key config_keys[] = {
#define CONFIG_X_KEY(name, type, def, min, max, doc) \
    { #name, CONFIG_T_##type, def, min, max, doc, offsetof(struct hakmemd_config, name) },
    CONFIG_KEYS(CONFIG_X_KEY)
#undef CONFIG_X_KEY
};
#define CONFIG_NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

static const struct {
    const char *name;
    int prio;
} log_levels[] = {
    { "err", LOG_ERR },
    { "warning", LOG_WARNING },
    { "notice", LOG_NOTICE },
    { "info", LOG_INFO },
    { "debug", LOG_DEBUG },
};

static const struct {
    const char *name;
    uint32_t bit;
} source_names[] = {
    { "bpf", CONFIG_SOURCE_BPF },
    { "psi", CONFIG_SOURCE_PSI },
    { "usage", CONFIG_SOURCE_USAGE },
    { "events", CONFIG_SOURCE_EVENTS },
};

static const struct config_key *find_key(const char *name)
{
    for (size_t i = 0; i < CONFIG_NKEYS; i++)
        if (strcmp(config_keys[i].name, name) == 0)
            return &config_keys[i];
    return NULL;
}

const char *config_log_level_name(int level)
{
    for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
        if (log_levels[i].prio == level)
            return log_levels[i].name;
    return "?";
}

/* Decimal digits only: no sign, no spaces, no base prefix. */
static int parse_u32(const struct config_key *k, const char *v, uint32_t *out,
                     char *err, size_t errlen)
{
    uint64_t n = 0;
    bool big = false;

    if (!*v)
        goto bad;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            goto bad;
        n = n * 10 + (uint64_t)(*p - '0');
        if (n > UINT32_MAX) {
            big = true;
            n = UINT32_MAX + UINT64_C(1); /* keep it from wrapping */
        }
    }
    if (big || n < k->min || n > k->max) {
        reason_set(err, errlen, "%s = %s is out of range (%u..%u)", k->name, v, k->min, k->max);
        return -ERANGE;
    }
    *out = (uint32_t)n;
    return 0;
bad:
    reason_set(err, errlen, "invalid value '%s' for %s: expected a decimal number (%u..%u)",
            v, k->name, k->min, k->max);
    return -EINVAL;
}

static int parse_sources(const struct config_key *k, const char *v, uint32_t *out,
                         char *err, size_t errlen)
{
    uint32_t mask = 0;
    const char *p = v;

    if (strcasecmp(v, "none") == 0) {
        *out = 0;
        return 0;
    }
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && isspace((unsigned char)*p)) {
            p++;
            n--;
        }
        while (n > 0 && isspace((unsigned char)p[n - 1]))
            n--;
        bool found = false;
        for (size_t i = 0; i < sizeof(source_names) / sizeof(source_names[0]); i++) {
            if (strlen(source_names[i].name) == n && strncasecmp(p, source_names[i].name, n) == 0) {
                mask |= source_names[i].bit;
                found = true;
            }
        }
        if (!found) {
            reason_set(err, errlen,
                    "invalid value '%s' for %s: unknown source '%.*s' (expected a "
                    "comma list of bpf, psi, usage, events, or none)",
                    v, k->name, (int)n, p);
            return -EINVAL;
        }
        if (!end)
            break;
        p = end + 1;
    }
    *out = mask;
    return 0;
}

static int parse_value(const struct config_key *k, const char *v, void *field,
                       char *err, size_t errlen)
{
    switch (k->type) {
    case CONFIG_T_U32:
        return parse_u32(k, v, field, err, errlen);
    case CONFIG_T_PATH: {
        size_t n = strlen(v);
        if (n >= CONFIG_STR_MAX) {
            reason_set(err, errlen, "value for %s is too long (%zu bytes, at most %d)",
                    k->name, n, CONFIG_STR_MAX - 1);
            return -ENAMETOOLONG;
        }
        if (v[0] != '/') {
            reason_set(err, errlen, "invalid value '%s' for %s: expected an absolute path",
                    v, k->name);
            return -EINVAL;
        }
        memcpy(field, v, n + 1);
        return 0;
    }
    case CONFIG_T_NAME: {
        size_t n = strlen(v);
        if (n >= CONFIG_NAME_MAX || strspn(v, "abcdefghijklmnopqrstuvwxyz"
                                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != n) {
            reason_set(err, errlen, "invalid value '%s' for %s: expected a name of letters, "
                    "digits, '_', '-' and '.', at most %d bytes", v, k->name, CONFIG_NAME_MAX - 1);
            return -EINVAL;
        }
        memcpy(field, v, n + 1);
        return 0;
    }
    case CONFIG_T_LEVEL: {
        unsigned l;
        if (proto_level_parse(v, &l) < 0) {
            reason_set(err, errlen,
                    "invalid value '%s' for %s: expected none, low, medium or critical",
                    v, k->name);
            return -EINVAL;
        }
        *(enum hakmem_level *)field = (enum hakmem_level)l;
        return 0;
    }
    case CONFIG_T_LOGLEVEL:
        for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++) {
            if (strcasecmp(v, log_levels[i].name) == 0) {
                *(int *)field = log_levels[i].prio;
                return 0;
            }
        }
        reason_set(err, errlen,
                "invalid value '%s' for %s: expected err, warning, notice, info or debug",
                v, k->name);
        return -EINVAL;
    case CONFIG_T_SOURCES:
        return parse_sources(k, v, field, err, errlen);
    }
    reason_set(err, errlen, "%s: internal error: unknown type", k->name);
    return -EINVAL;
}

int config_set(struct hakmemd_config *cfg, const char *key, const char *value,
               char *err, size_t errlen)
{
    const struct config_key *k = find_key(key);

    if (!k) {
        reason_set(err, errlen, "unknown key '%s'", key);
        return -EINVAL;
    }
    if (!*value) {
        reason_set(err, errlen, "missing value for '%s'", key);
        return -EINVAL;
    }
    return parse_value(k, value, (char *)cfg + k->off, err, errlen);
}

int config_init(struct hakmemd_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        int r = config_set(cfg, config_keys[i].name, config_keys[i].def, NULL, 0);
        if (r < 0)
            return r;
    }
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Splits "key = value" in place. Returns 0, or -EINVAL with a message. */
static int split_assignment(char *line, char **key, char **value, char *err, size_t errlen)
{
    char *eq = strchr(line, '=');

    if (!eq) {
        reason_set(err, errlen, "missing '=' in '%s' (expected 'key = value')", trim(line));
        return -EINVAL;
    }
    *eq = '\0';
    *key = trim(line);
    *value = trim(eq + 1);
    if (!**key) {
        reason_set(err, errlen, "missing key before '='");
        return -EINVAL;
    }
    return 0;
}

int config_set_arg(struct hakmemd_config *cfg, const char *arg, char *err, size_t errlen)
{
    char buf[CONFIG_STR_MAX + 128];
    char *key, *value;

    if (strlen(arg) >= sizeof(buf)) {
        reason_set(err, errlen, "'%.32s...' is too long", arg);
        return -ENAMETOOLONG;
    }
    strcpy(buf, arg);
    int r = split_assignment(buf, &key, &value, err, errlen);
    if (r < 0)
        return r;
    return config_set(cfg, key, value, err, errlen);
}

/* Cuts a comment: '#' at the start of the line or after whitespace. */
static void cut_comment(char *s)
{
    for (char *p = s; *p; p++) {
        if (*p == '#' && (p == s || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            return;
        }
    }
}

static int parse_stream(FILE *f, const char *path, struct hakmemd_config *cfg,
                        char *err, size_t errlen)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned lineno = 0;
    int r = 0;
    char msg[512];

    while ((len = getline(&line, &cap, f)) >= 0) {
        char *key, *value;

        lineno++;
        if (strlen(line) != (size_t)len) {
            reason_set(err, errlen, "%s:%u: NUL byte in line", path, lineno);
            r = -EINVAL;
            break;
        }
        cut_comment(line);
        char *s = trim(line);
        if (!*s)
            continue;
        r = split_assignment(s, &key, &value, msg, sizeof(msg));
        if (r == 0)
            r = config_set(cfg, key, value, msg, sizeof(msg));
        if (r < 0) {
            reason_set(err, errlen, "%s:%u: %s", path, lineno, msg);
            break;
        }
    }
    if (r == 0 && ferror(f)) {
        r = -EIO;
        reason_set(err, errlen, "%s: read error", path);
    }
    free(line);
    return r;
}

static const char *file_kind(mode_t m)
{
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a plain file";
}

/* The whole file at path into buf (NUL-terminated), if it is a regular
 * file that fits. Never blocks: O_NONBLOCK makes a FIFO's open return at
 * once, and fstat refuses it before any read. */
static int read_config_file(const char *path, char *buf, size_t cap, size_t *len, char *err,
                            size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    struct stat st;
    int r = 0;
    if (fstat(fd, &st) != 0) {
        r = -errno;
        reason_set(err, errlen, "%s: cannot stat: %s", path, strerror(-r));
    } else if (!S_ISREG(st.st_mode)) {
        r = -EINVAL;
        reason_set(err, errlen, "%s: not a regular file (%s)", path, file_kind(st.st_mode));
    } else if ((uint64_t)st.st_size >= cap) {
        r = -EFBIG;
        reason_set(err, errlen, "%s: too large (%lld bytes; at most %zu)", path,
                (long long)st.st_size, cap - 1);
    }
    size_t n = 0;
    while (r == 0 && n < cap) {
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            r = -errno;
            reason_set(err, errlen, "%s: read error: %s", path, strerror(-r));
        }
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    if (r == 0 && n >= cap) {           /* it grew while we read */
        r = -EFBIG;
        reason_set(err, errlen, "%s: too large (at most %zu bytes)", path, cap - 1);
    }
    close(fd);
    if (r == 0) {
        buf[n] = '\0';
        *len = n;
    }
    return r;
}

int config_load(const char *path, struct hakmemd_config *cfg, char *err, size_t errlen)
{
    struct hakmemd_config tmp;
    char msg[512];
    int r;

    if (!path)
        path = CONFIG_DEFAULT_PATH;
    r = config_init(&tmp);
    if (r < 0) {
        reason_set(err, errlen, "%s: internal error: a default fails its checks", path);
        return r;
    }
    char *buf = malloc(CONFIG_FILE_MAX + 1);
    if (!buf) {
        reason_set(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    size_t len = 0;
    msg[0] = '\0';
    r = read_config_file(path, buf, CONFIG_FILE_MAX + 1, &len, msg, sizeof(msg));
    if (r < 0) {
        free(buf);
        if (r == -ENOENT && strcmp(path, CONFIG_DEFAULT_PATH) == 0) {
            *cfg = tmp;
            return 0;
        }
        if (msg[0])
            reason_set(err, errlen, "%s", msg);
        else
            reason_set(err, errlen, "%s: cannot open: %s", path, strerror(-r));
        return r;
    }
    if (len > 0) {
        FILE *f = fmemopen(buf, len, "r");
        if (!f) {
            r = -errno;
            reason_set(err, errlen, "%s: %s", path, strerror(-r));
        } else {
            r = parse_stream(f, path, &tmp, err, errlen);
            fclose(f);
        }
    }
    free(buf);
    if (r < 0)
        return r;
    r = config_check(&tmp, msg, sizeof(msg));
    if (r < 0) {
        reason_set(err, errlen, "%s: %s", path, msg);
        return r;
    }
    *cfg = tmp;
    return 1;
}

/* Nonzero thresholds must not fall as the level rises. */
static int check_rising(const char *what, const char *const names[3],
                        const uint32_t v[3], char *err, size_t errlen)
{
    int prev = -1;

    for (int i = 0; i < 3; i++) {
        if (v[i] == 0)
            continue;
        if (prev >= 0 && v[i] < v[prev]) {
            reason_set(err, errlen,
                    "%s (%u) is below %s (%u): %s thresholds must not fall as the level rises",
                    names[i], v[i], names[prev], v[prev], what);
            return -EINVAL;
        }
        prev = i;
    }
    return 0;
}

#define CHECK_RISING(what, prefix, suffix)                                      \
    do {                                                                        \
        static const char *const n_[3] = { #prefix "_low" #suffix,              \
                                           #prefix "_medium" #suffix,           \
                                           #prefix "_critical" #suffix };       \
        const uint32_t v_[3] = { cfg->prefix##_low##suffix,                     \
                                 cfg->prefix##_medium##suffix,                  \
                                 cfg->prefix##_critical##suffix };              \
        int r_ = check_rising(what, n_, v_, err, errlen);                       \
        if (r_ < 0)                                                             \
            return r_;                                                          \
    } while (0)

int config_check(const struct hakmemd_config *cfg, char *err, size_t errlen)
{
    CHECK_RISING("usage", usage, _pct);
    CHECK_RISING("reclaim event", reclaim_events, );
    CHECK_RISING("reclaim stall", reclaim_stall, _ms);
    CHECK_RISING("PSI some", psi_some, _pct);
    CHECK_RISING("PSI full", psi_full, _pct);
    if (cfg->usage_min_interval_ms > cfg->usage_interval_ms) {
        reason_set(err, errlen, "usage_min_interval_ms (%u) exceeds usage_interval_ms (%u)",
                cfg->usage_min_interval_ms, cfg->usage_interval_ms);
        return -EINVAL;
    }
    /* vmpressure counts are events at or above each level: no order needed */
    if (cfg->psi_trigger_stall_us > cfg->psi_trigger_window_us) {
        reason_set(err, errlen, "psi_trigger_stall_us (%u) exceeds psi_trigger_window_us (%u)",
                cfg->psi_trigger_stall_us, cfg->psi_trigger_window_us);
        return -EINVAL;
    }
    return 0;
}

static int format_value(const struct config_key *k, const struct hakmemd_config *cfg,
                        char *buf, size_t len)
{
    const void *field = (const char *)cfg + k->off;

    switch (k->type) {
    case CONFIG_T_U32:
        return snprintf(buf, len, "%u", *(const uint32_t *)field);
    case CONFIG_T_PATH:
    case CONFIG_T_NAME:
        return snprintf(buf, len, "%s", (const char *)field);
    case CONFIG_T_LEVEL:
        return snprintf(buf, len, "%s", proto_level_name(*(const enum hakmem_level *)field));
    case CONFIG_T_LOGLEVEL:
        return snprintf(buf, len, "%s", config_log_level_name(*(const int *)field));
    case CONFIG_T_SOURCES: {
        uint32_t m = *(const uint32_t *)field;
        size_t used = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < sizeof(source_names) / sizeof(source_names[0]); i++) {
            if (m & source_names[i].bit)
                used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s%s",
                                         used ? "," : "", source_names[i].name);
        }
        if (!used)
            return snprintf(buf, len, "none");
        return (int)used;
    }
    }
    return snprintf(buf, len, "?");
}

/* Writes "# " + text, wrapped at 76 columns. */
static void print_wrapped(FILE *f, const char *prefix, const char *text)
{
    const int width = 76;
    const char *p = text;

    while (*p) {
        int room = width - (int)strlen(prefix);
        int n = (int)strlen(p);
        if (n > room) {
            n = room;
            while (n > 0 && p[n] != ' ')
                n--;
            if (n == 0)
                n = room;
        }
        fprintf(f, "%s%.*s\n", prefix, n, p);
        p += n;
        while (*p == ' ')
            p++;
    }
}

int config_print(FILE *f, const struct hakmemd_config *cfg)
{
    struct hakmemd_config defaults;
    char val[CONFIG_STR_MAX + 64];

    config_init(&defaults);
    if (!cfg)
        cfg = &defaults;
    fprintf(f, "# hakmemd configuration, %s by default.\n"
               "# `key = value` lines, '#' comments. Every option, with its doc,\n"
               "# default and range; each can also be given as --set key=value.\n",
            CONFIG_DEFAULT_PATH);
    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        const struct config_key *k = &config_keys[i];
        fputc('\n', f);
        print_wrapped(f, "# ", k->doc);
        if (k->type == CONFIG_T_U32)
            fprintf(f, "#   default %s, range %u..%u\n", k->def, k->min, k->max);
        else
            fprintf(f, "#   default %s\n", k->def);
        format_value(k, cfg, val, sizeof(val));
        fprintf(f, "%s = %s\n", k->name, val);
    }
    if (fflush(f) != 0 || ferror(f))
        return -EIO;
    return 0;
}

int config_diff(const struct hakmemd_config *a, const struct hakmemd_config *b,
                void (*fn)(const char *key, const char *from, const char *to, void *ctx),
                void *ctx)
{
    char va[CONFIG_STR_MAX + 64], vb[CONFIG_STR_MAX + 64];
    int n = 0;

    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        format_value(&config_keys[i], a, va, sizeof(va));
        format_value(&config_keys[i], b, vb, sizeof(vb));
        if (strcmp(va, vb) != 0) {
            n++;
            if (fn)
                fn(config_keys[i].name, va, vb, ctx);
        }
    }
    return n;
}

void config_policy(const struct hakmemd_config *cfg, struct policy_thresholds *th)
{
    const uint64_t ms = 1000000;

    *th = (struct policy_thresholds){
        .usage_permille = { 0, cfg->usage_low_pct * 10, cfg->usage_medium_pct * 10,
                            cfg->usage_critical_pct * 10 },
        .reclaim_events_per_s = { 0, cfg->reclaim_events_low, cfg->reclaim_events_medium,
                                  cfg->reclaim_events_critical },
        .reclaim_stall_ns_per_s = { 0, cfg->reclaim_stall_low_ms * ms,
                                    cfg->reclaim_stall_medium_ms * ms,
                                    cfg->reclaim_stall_critical_ms * ms },
        .psi_some_cpct = { 0, cfg->psi_some_low_pct * 100, cfg->psi_some_medium_pct * 100,
                           cfg->psi_some_critical_pct * 100 },
        .psi_full_cpct = { 0, cfg->psi_full_low_pct * 100, cfg->psi_full_medium_pct * 100,
                           cfg->psi_full_critical_pct * 100 },
        .psi_trigger_level = cfg->psi_trigger_level,
        .memevents_high_level = cfg->memevents_high_level,
        .memevents_max_level = cfg->memevents_max_level,
        .calm_ns = { 0, cfg->calm_low_ms * ms, cfg->calm_medium_ms * ms,
                     cfg->calm_critical_ms * ms },
        .hysteresis_pct = cfg->hysteresis_pct,
    };
}
