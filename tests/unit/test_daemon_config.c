/* test_daemon_config.c: hakmemd's options (daemon/config.c): defaults,
 * comments and syntax, every kind of bad line reported with its file and
 * line number, ranges, cross checks, --set, and a printout that loads
 * back to the same configuration. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "test_main.h"

static char path[64];

/* Writes text to a fresh temp file named .../hakmemd.conf-XXXXXX. */
static const char *write_conf(const char *text)
{
    strcpy(path, "/tmp/hakmemd.conf-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t n = strlen(text);
    ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

/* Loads text; returns config_load's result, err holds the message. */
static int load_text(const char *text, struct hakmemd_config *cfg, char *err, size_t errlen)
{
    const char *p = write_conf(text);
    int r = config_load(p, cfg, err, errlen);
    unlink(p);
    return r;
}

/* err must read "PATH:LINE: <what...>". */
static void assert_line_error(const char *err, unsigned line, const char *what)
{
    char want[128];
    snprintf(want, sizeof(want), "%s:%u: ", path, line);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "'%s' does not start with '%s'",
                  err, want);
    ck_assert_msg(strstr(err, what) != NULL, "'%s' does not mention '%s'", err, what);
}

START_TEST(test_defaults)
{
    struct hakmemd_config cfg;
    char err[256] = "";
    ck_assert_int_eq(config_init(&cfg), 0);
    ck_assert_str_eq(cfg.runtime_dir, "/run/hakmem");
    ck_assert_str_eq(cfg.cgroup_root, "/sys/fs/cgroup");
    ck_assert_uint_eq(cfg.sources, CONFIG_SOURCE_BPF | CONFIG_SOURCE_PSI | CONFIG_SOURCE_USAGE |
                                       CONFIG_SOURCE_EVENTS);
    ck_assert_int_eq(cfg.log_level, LOG_INFO);
    ck_assert_uint_eq(cfg.usage_low_pct, 80);
    ck_assert_uint_eq(cfg.usage_medium_pct, 90);
    ck_assert_uint_eq(cfg.usage_critical_pct, 97);
    ck_assert_uint_eq(cfg.psi_trigger_stall_us, 37500);
    ck_assert_uint_eq(cfg.psi_trigger_window_us, 500000);
    ck_assert_int_eq(cfg.psi_trigger_level, HAKMEM_LEVEL_LOW);
    ck_assert_uint_eq(cfg.calm_low_ms, 10000);
    ck_assert_int_eq(config_check(&cfg, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_default_thresholds_are_the_policy_defaults)
{
    struct hakmemd_config cfg;
    struct policy_thresholds a, b;
    config_init(&cfg);
    config_policy(&cfg, &a);
    policy_thresholds_default(&b);
    for (int l = 0; l < HAKMEM_LEVEL_COUNT; l++) {
        ck_assert_uint_eq(a.usage_permille[l], b.usage_permille[l]);
        ck_assert_uint_eq(a.reclaim_events_per_s[l], b.reclaim_events_per_s[l]);
        ck_assert_uint_eq(a.reclaim_stall_ns_per_s[l], b.reclaim_stall_ns_per_s[l]);
        ck_assert_uint_eq(a.psi_some_cpct[l], b.psi_some_cpct[l]);
        ck_assert_uint_eq(a.psi_full_cpct[l], b.psi_full_cpct[l]);
        ck_assert_uint_eq(a.calm_ns[l], b.calm_ns[l]);
    }
    ck_assert_int_eq(a.psi_trigger_level, b.psi_trigger_level);
    ck_assert_int_eq(a.memevents_high_level, b.memevents_high_level);
    ck_assert_int_eq(a.memevents_max_level, b.memevents_max_level);
    ck_assert_uint_eq(a.hysteresis_pct, b.hysteresis_pct);
}
END_TEST

START_TEST(test_file_syntax)
{
    struct hakmemd_config cfg;
    char err[256] = "";
    int r = load_text("# hakmemd.conf\n"
                      "\n"
                      "   \t\n"
                      "heartbeat_ms = 500\n"
                      "  max_clients=100   \n"
                      "runtime_dir\t=\t/run/hk test\n" /* a path may hold spaces */
                      "usage_low_pct = 70 # inline comment\n"
                      "sources = bpf , usage\n"
                      "log_level = DEBUG\r\n"
                      "psi_trigger_level = medium\n"
                      "heartbeat_ms = 700\n" /* last one wins */
                      "cgroup_root = /x#y\n" /* '#' inside a word is not a comment */
                      "    # indented comment\n"
                      "calm_low_ms = 0", /* no final newline */
                      &cfg, err, sizeof(err));
    ck_assert_msg(r == 1, "load: %d %s", r, err);
    ck_assert_uint_eq(cfg.heartbeat_ms, 700);
    ck_assert_uint_eq(cfg.max_clients, 100);
    ck_assert_str_eq(cfg.runtime_dir, "/run/hk test");
    ck_assert_uint_eq(cfg.usage_low_pct, 70);
    ck_assert_uint_eq(cfg.sources, CONFIG_SOURCE_BPF | CONFIG_SOURCE_USAGE);
    ck_assert_int_eq(cfg.log_level, LOG_DEBUG);
    ck_assert_int_eq(cfg.psi_trigger_level, HAKMEM_LEVEL_MEDIUM);
    ck_assert_str_eq(cfg.cgroup_root, "/x#y");
    ck_assert_uint_eq(cfg.calm_low_ms, 0);
    /* untouched keys keep their defaults */
    ck_assert_uint_eq(cfg.usage_medium_pct, 90);

    r = load_text("sources = none\n", &cfg, err, sizeof(err));
    ck_assert_int_eq(r, 1);
    ck_assert_uint_eq(cfg.sources, 0);

    /* an empty file is the defaults */
    r = load_text("", &cfg, err, sizeof(err));
    ck_assert_int_eq(r, 1);
    ck_assert_uint_eq(cfg.heartbeat_ms, 1000);
}
END_TEST

/* Each kind of bad line, always on a known line after good ones. */
static const struct bad_line {
    const char *line;
    int err;
    const char *what;
} bad_lines[] = {
    { "foo = 1", -EINVAL, "unknown key 'foo'" },
    { "heartbeat_ms 500", -EINVAL, "missing '='" },
    { "= 5", -EINVAL, "missing key" },
    { "heartbeat_ms =", -EINVAL, "missing value for 'heartbeat_ms'" },
    { "heartbeat_ms = abc", -EINVAL, "invalid value 'abc' for heartbeat_ms" },
    { "heartbeat_ms = -5", -EINVAL, "invalid value '-5'" },
    { "heartbeat_ms = 5 0", -EINVAL, "invalid value '5 0'" },
    { "heartbeat_ms = 0x10", -EINVAL, "invalid value '0x10'" },
    { "heartbeat_ms = 10", -ERANGE, "heartbeat_ms = 10 is out of range (50..60000)" },
    { "heartbeat_ms = 60001", -ERANGE, "out of range" },
    { "heartbeat_ms = 99999999999999999999", -ERANGE, "out of range" },
    { "usage_low_pct = 101", -ERANGE, "out of range (0..100)" },
    { "runtime_dir = run/hakmem", -EINVAL, "expected an absolute path" },
    { "psi_trigger_level = severe", -EINVAL, "expected none, low, medium or critical" },
    { "log_level = loud", -EINVAL, "expected err, warning" },
    { "sources = bpf,ebpf", -EINVAL, "unknown source 'ebpf'" },
    { "sources = bpf,,psi", -EINVAL, "unknown source ''" },
    { "Heartbeat_ms = 500", -EINVAL, "unknown key 'Heartbeat_ms'" },
};

START_TEST(test_bad_lines_name_file_and_line)
{
    const struct bad_line *b = &bad_lines[_i];
    struct hakmemd_config cfg;
    char text[512], err[512] = "";

    config_init(&cfg);
    cfg.heartbeat_ms = 4242; /* must survive a failed load */
    snprintf(text, sizeof(text),
             "# line 1\n"
             "max_clients = 10\n"
             "\n"
             "usage_low_pct = 75\n"
             "# line 5\n"
             "heartbeat_ms = 900\n"
             "%s\n"
             "usage_medium_pct = 95\n",
             b->line);
    int r = load_text(text, &cfg, err, sizeof(err));
    ck_assert_msg(r == b->err, "'%s': got %d (%s), want %d", b->line, r, err, b->err);
    assert_line_error(err, 7, b->what);
    ck_assert_uint_eq(cfg.heartbeat_ms, 4242);
}
END_TEST

START_TEST(test_example_message)
{
    struct hakmemd_config cfg;
    char err[256];
    int r = load_text("\n\n\n\n\n\nfoo = bar\n", &cfg, err, sizeof(err));
    ck_assert_int_eq(r, -EINVAL);
    char want[128];
    snprintf(want, sizeof(want), "%s:7: unknown key 'foo'", path);
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_too_long_and_nul)
{
    struct hakmemd_config cfg;
    char text[CONFIG_STR_MAX + 64], err[512];

    memset(text, 0, sizeof(text));
    strcpy(text, "runtime_dir = /");
    memset(text + strlen(text), 'a', CONFIG_STR_MAX);
    strcat(text, "\n");
    ck_assert_int_eq(load_text(text, &cfg, err, sizeof(err)), -ENAMETOOLONG);
    assert_line_error(err, 1, "too long");

    /* a path of exactly CONFIG_STR_MAX - 1 bytes fits */
    memset(text, 0, sizeof(text));
    strcpy(text, "runtime_dir = /");
    memset(text + strlen(text), 'b', CONFIG_STR_MAX - 2);
    ck_assert_int_eq(load_text(text, &cfg, err, sizeof(err)), 1);
    ck_assert_uint_eq(strlen(cfg.runtime_dir), CONFIG_STR_MAX - 1);

    /* a NUL byte inside a line */
    static const char nul[] = "max_clients = 1\nheartbeat_ms = 5\0000\n";
    const char *p = write_conf("");
    FILE *f = fopen(p, "w");
    fwrite(nul, 1, sizeof(nul) - 1, f);
    fclose(f);
    ck_assert_int_eq(config_load(p, &cfg, err, sizeof(err)), -EINVAL);
    unlink(p);
    assert_line_error(err, 2, "NUL");
}
END_TEST

START_TEST(test_cross_checks)
{
    struct hakmemd_config cfg;
    char err[512];

    int r = load_text("usage_low_pct = 95\n", &cfg, err, sizeof(err));
    ck_assert_int_eq(r, -EINVAL);
    ck_assert_msg(strstr(err, "usage_medium_pct (90) is below usage_low_pct (95)"), "%s", err);
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "%s", err);

    /* zeros (off) are skipped by the order check */
    r = load_text("usage_medium_pct = 0\nusage_low_pct = 95\n", &cfg, err, sizeof(err));
    ck_assert_int_eq(r, 1);

    r = load_text("reclaim_events_critical = 5\n", &cfg, err, sizeof(err));
    ck_assert_int_eq(r, -EINVAL);
    ck_assert_msg(strstr(err, "reclaim_events_critical (5) is below reclaim_events_medium"),
                  "%s", err);

    r = load_text("psi_full_critical_pct = 1\n", &cfg, err, sizeof(err));
    ck_assert_int_eq(r, -EINVAL);

    r = load_text("psi_trigger_stall_us = 3000000\n", &cfg, err, sizeof(err));
    ck_assert_int_eq(r, -EINVAL);
    ck_assert_msg(strstr(err, "psi_trigger_stall_us (3000000) exceeds"), "%s", err);
}
END_TEST

START_TEST(test_missing_files)
{
    struct hakmemd_config cfg;
    char err[256] = "";

    /* a missing file at another path is an error */
    config_init(&cfg);
    int r = config_load("/nonexistent/hakmemd.conf", &cfg, err, sizeof(err));
    ck_assert_int_eq(r, -ENOENT);
    ck_assert_msg(strstr(err, "/nonexistent/hakmemd.conf: cannot open"), "%s", err);

    /* a missing default file is the defaults */
    if (access(CONFIG_DEFAULT_PATH, F_OK) == 0) {
        fprintf(stderr, "SKIP missing-default check: %s exists\n", CONFIG_DEFAULT_PATH);
        return;
    }
    cfg.heartbeat_ms = 1;
    ck_assert_int_eq(config_load(NULL, &cfg, err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.heartbeat_ms, 1000);
    cfg.heartbeat_ms = 1;
    ck_assert_int_eq(config_load(CONFIG_DEFAULT_PATH, &cfg, err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.heartbeat_ms, 1000);
}
END_TEST

/* What is not a regular file is refused at once, before a byte is read
 * (a FIFO without a writer would block, /dev/zero never end); so is a
 * file over CONFIG_FILE_MAX. The configuration stays as it was. */
START_TEST(test_not_a_regular_file)
{
    struct hakmemd_config cfg;
    char err[256] = "";
    config_init(&cfg);
    cfg.heartbeat_ms = 77;

    ck_assert_int_eq(config_load("/dev/zero", &cfg, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, "/dev/zero: not a regular file (a character device)"), "%s", err);
    ck_assert_int_eq(config_load("/tmp", &cfg, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, "not a regular file (a directory)"), "%s", err);

    char fifo[] = "/tmp/hakmemd.fifo-XXXXXX";
    int fd = mkstemp(fifo);
    ck_assert_int_ge(fd, 0);
    close(fd);
    unlink(fifo);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    ck_assert_int_eq(config_load(fifo, &cfg, err, sizeof(err)), -EINVAL);  /* no writer: no wait */
    ck_assert_msg(strstr(err, "not a regular file (a FIFO)"), "%s", err);
    unlink(fifo);

    const char *p = write_conf("");
    ck_assert_int_eq(truncate(p, CONFIG_FILE_MAX + 1), 0);
    ck_assert_int_eq(config_load(p, &cfg, err, sizeof(err)), -EFBIG);
    ck_assert_msg(strstr(err, "too large"), "%s", err);
    unlink(p);
    ck_assert_uint_eq(cfg.heartbeat_ms, 77);

    /* an empty file is the defaults */
    p = write_conf("");
    ck_assert_int_eq(config_load(p, &cfg, err, sizeof(err)), 1);
    ck_assert_uint_eq(cfg.heartbeat_ms, 1000);
    unlink(p);
}
END_TEST

START_TEST(test_diff)
{
    struct hakmemd_config a, b;
    char err[256];
    config_init(&a);
    config_init(&b);
    ck_assert_int_eq(config_diff(&a, &b, NULL, NULL), 0);
    ck_assert_int_eq(config_set(&b, "heartbeat_ms", "2000", err, sizeof(err)), 0);
    ck_assert_int_eq(config_set(&b, "metrics_group", "exporters", err, sizeof(err)), 0);
    ck_assert_int_eq(config_set(&b, "metrics_group", "a/b", err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(config_diff(&a, &b, NULL, NULL), 2);
}
END_TEST

START_TEST(test_set_and_set_arg)
{
    struct hakmemd_config cfg;
    char err[256];

    config_init(&cfg);
    ck_assert_int_eq(config_set(&cfg, "calm_medium_ms", "2500", err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.calm_medium_ms, 2500);
    ck_assert_int_eq(config_set(&cfg, "nope", "1", err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "unknown key 'nope'");
    ck_assert_int_eq(config_set(&cfg, "hysteresis_pct", "91", err, sizeof(err)), -ERANGE);
    ck_assert_str_eq(err, "hysteresis_pct = 91 is out of range (0..90)");
    ck_assert_int_eq(config_set(&cfg, "max_clients", "1", NULL, 0), 0);

    ck_assert_int_eq(config_set_arg(&cfg, "usage_low_pct=60", err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.usage_low_pct, 60);
    ck_assert_int_eq(config_set_arg(&cfg, " psi_some_low_pct = 3 ", err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.psi_some_low_pct, 3);
    ck_assert_int_eq(config_set_arg(&cfg, "usage_low_pct", err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, "missing '='"), "%s", err);
    ck_assert_int_eq(config_set_arg(&cfg, "log_level=warning", err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.log_level, LOG_WARNING);
    ck_assert_str_eq(config_log_level_name(cfg.log_level), "warning");

    /* a message that does not fit is cut, not overrun */
    char small[8];
    ck_assert_int_eq(config_set(&cfg, "nope", "1", small, sizeof(small)), -EINVAL);
    ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
}
END_TEST

static char *print_to_string(const struct hakmemd_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(config_print(f, cfg), 0);
    fclose(f);
    return buf;
}

START_TEST(test_print_round_trip)
{
    struct hakmemd_config a, b;
    char err[256];

    /* --help: every key with its default */
    char *help = print_to_string(NULL);
    ck_assert_ptr_nonnull(strstr(help, "\nruntime_dir = /run/hakmem\n"));
    ck_assert_ptr_nonnull(strstr(help, "\nsources = bpf,psi,usage,events\n"));
    ck_assert_ptr_nonnull(strstr(help, "\nlog_level = info\n"));
    ck_assert_ptr_nonnull(strstr(help, "\nusage_critical_pct = 97\n"));
    ck_assert_ptr_nonnull(strstr(help, "#   default 1000, range 50..60000\nheartbeat_ms = 1000\n"));
    ck_assert_ptr_nonnull(strstr(help, "\nhysteresis_pct = 10\n"));
    /* no comment line wider than 76 columns unless one word is */
    for (char *l = help; *l;) {
        char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);
        if (l[0] == '#')
            ck_assert_uint_le(n, 76);
        l += n + (nl ? 1 : 0);
    }

    /* a changed config prints and loads back to itself */
    config_init(&a);
    ck_assert_int_eq(config_set_arg(&a, "sources=psi", err, sizeof(err)), 0);
    ck_assert_int_eq(config_set_arg(&a, "runtime_dir=/tmp/x y", err, sizeof(err)), 0);
    ck_assert_int_eq(config_set_arg(&a, "log_level=err", err, sizeof(err)), 0);
    ck_assert_int_eq(config_set_arg(&a, "psi_trigger_level=critical", err, sizeof(err)), 0);
    ck_assert_int_eq(config_set_arg(&a, "reclaim_stall_critical_ms=500", err, sizeof(err)), 0);
    char *text = print_to_string(&a);
    int r = load_text(text, &b, err, sizeof(err));
    ck_assert_msg(r == 1, "reload: %s", err);
    char *again = print_to_string(&b);
    ck_assert_str_eq(text, again);
    ck_assert_uint_eq(b.sources, CONFIG_SOURCE_PSI);
    ck_assert_str_eq(b.runtime_dir, "/tmp/x y");
    free(help);
    free(text);
    free(again);
}
END_TEST

static Suite *daemon_config_suite(void)
{
    Suite *s = suite_create("daemon_config");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_default_thresholds_are_the_policy_defaults);
    tcase_add_test(tc, test_file_syntax);
    tcase_add_loop_test(tc, test_bad_lines_name_file_and_line, 0,
                        (int)(sizeof(bad_lines) / sizeof(bad_lines[0])));
    tcase_add_test(tc, test_example_message);
    tcase_add_test(tc, test_too_long_and_nul);
    tcase_add_test(tc, test_cross_checks);
    tcase_add_test(tc, test_missing_files);
    tcase_add_test(tc, test_not_a_regular_file);
    tcase_add_test(tc, test_diff);
    tcase_add_test(tc, test_set_and_set_arg);
    tcase_add_test(tc, test_print_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(daemon_config_suite)
