/* test_bpf_pressure.c: the BPF pressure source against real memory pressure.
 *
 * Loads daemon/bpf_source.c with the filter on and creates child memory
 * cgroups (64 MiB limit) under this process's own one. Default scenario:
 * "press" holds 32 MiB of anonymous memory, writes a 256 MiB file on the
 * disk and reads it back (page cache reclaim, nobody is OOM-killed); its
 * sibling "calm" touches 8 MiB and sleeps. Asserts: reclaim counted for
 * press's cgroup id (its directory's inode), at least one ring-buffer
 * notification for it, none for calm and none for any other memcg (the
 * filter). Prints the time from pressure start to the first reclaim and to
 * the first notification. --oom: "oom" grows 128 MiB of anonymous memory and
 * is OOM-killed; asserts an OOM notification and oom_kills for its memcg.
 *
 * Must not: touch any cgroup but the ones it creates, or leave them behind:
 * they are emptied and removed on every exit path, signals included.
 * Exit: 0 pass, 1 fail, 77 skip (reason printed).
 * Usage: test_bpf_pressure [--attach=auto|tp_btf|raw_tp] [--oom]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <linux/magic.h>

#include "bpf_source.h"
#include "cgroup_util.h"

#define EXIT_SKIP 77

#define LIMIT_BYTES   (64ull << 20)  /* both children */
#define PRESS_ANON    (32ull << 20)  /* held by press during the file phase */
#define PRESS_FILE    (256ull << 20) /* written then read back */
#define CALM_ANON     (8ull << 20)
#define OOM_ANON      (128ull << 20) /* twice the limit */
#define CHUNK         (1u << 20)
#define DEADLINE_S    90             /* meson timeout is 120 s */
#define SETTLE_MS     300            /* drain time after the workload ends */

/* ---- state the cleanup (also from a signal handler) needs ---- */
static char parent_dir[4096];
enum { PRESS, CALM, OOM, NCHILD };
static const char *const child_name[NCHILD] = { "press", "calm", "oom" };
static char child_dir[NCHILD][4096];
static int child_made[NCHILD];
static volatile pid_t child_pid[NCHILD];
static int cgroup_v2;

/* Shared with the press child: when its pressure started. */
struct shared {
	volatile uint64_t t_start_ns;   /* CLOCK_MONOTONIC */
	volatile uint64_t t_end_ns;
	volatile int phase_err;         /* errno of a failed workload step */
};
static struct shared *shm;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Async-signal-safe: open/write/close only. */
static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int err = 0;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	if (n < 0)
		err = -errno;
	close(fd);
	return err;
}

static void join_path(char *out, size_t len, const char *dir, const char *name)
{
	if (snprintf(out, len, "%s/%s", dir, name) >= (int)len)
		out[0] = 0; /* too long: later opens fail with ENOENT */
}

/* ---- cleanup: kill, reap, move back what is left, rmdir (signal-safe) ---- */

static void utoa(char *buf, unsigned long v)
{
	char tmp[24];
	int i = 0, j = 0;

	do
		tmp[i++] = (char)('0' + v % 10);
	while ((v /= 10) && i < (int)sizeof(tmp));
	while (i)
		buf[j++] = tmp[--i];
	buf[j++] = '\n';
	buf[j] = 0;
}

static void move_back(const char *dir)
{
	char path[4200], dst[4200], buf[4096], num[32];
	unsigned long pid = 0;
	int fd, have = 0;
	ssize_t n, i;

	strcpy(path, dir);
	strcat(path, "/cgroup.procs");
	strcpy(dst, parent_dir);
	strcat(dst, "/cgroup.procs");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (i = 0; i < n; i++) {
			if (buf[i] >= '0' && buf[i] <= '9') {
				pid = pid * 10 + (unsigned long)(buf[i] - '0');
				have = 1;
			} else if (have) {
				utoa(num, pid);
				write_file(dst, num);
				pid = 0;
				have = 0;
			}
		}
	close(fd);
}

static void cleanup(void)
{
	int i, tries;

	for (i = 0; i < NCHILD; i++)
		if (child_pid[i] > 0) {
			kill(child_pid[i], SIGKILL);
			waitpid(child_pid[i], NULL, 0);
			child_pid[i] = 0;
		}
	for (i = 0; i < NCHILD; i++) {
		if (!child_made[i])
			continue;
		for (tries = 0; tries < 50; tries++) {
			move_back(child_dir[i]);
			if (rmdir(child_dir[i]) == 0 || errno == ENOENT)
				break;
			sleep_ms(20); /* an exiting task leaves the cgroup late */
		}
		child_made[i] = 0;
	}
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---- finding our memory cgroup ---- */

static void skip(const char *fmt, ...)
{
	va_list ap;

	printf("SKIP: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	cleanup();
	exit(EXIT_SKIP);
}

static void fail(const char *fmt, ...)
{
	va_list ap;

	printf("FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	cleanup();
	exit(1);
}

static int has_word(const char *list, const char *word, char sep)
{
	size_t n = strlen(word);
	const char *p = list;

	while (p && *p) {
		if (!strncmp(p, word, n) && (p[n] == sep || p[n] == 0 || p[n] == '\n'))
			return 1;
		p = strchr(p, sep);
		if (p)
			p++;
	}
	return 0;
}

/* Mount point (and mounted root) of the v1 hierarchy holding `memory`, or
 * of cgroup2 when v2 is set. */
static int find_mount(int v2, char *mnt, size_t mlen, char *root, size_t rlen)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		char r[1024], m[1024], fstype[64], src[256], opts[1024];
		char *dash = strstr(line, " - ");

		if (!dash || sscanf(line, "%*s %*s %*s %1023s %1023s", r, m) != 2)
			continue;
		if (sscanf(dash + 3, "%63s %255s %1023s", fstype, src, opts) != 3)
			continue;
		if (v2 ? !strcmp(fstype, "cgroup2")
		       : (!strcmp(fstype, "cgroup") && has_word(opts, "memory", ','))) {
			snprintf(mnt, mlen, "%s", m);
			snprintf(root, rlen, "%s", r);
			found = 1;
		}
	}
	fclose(f);
	return found;
}

/* Our memory cgroup directory: v1 memory line first, else cgroup2 with the
 * memory controller. Skips the test when neither exists. */
static void find_own_memcg(void)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[4096], v1path[4096] = "", v2path[4096] = "";
	char mnt[1024], root[1024], ctl[4096];
	const char *rel;

	if (!f)
		skip("cannot read /proc/self/cgroup: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

		if (!c2)
			continue;
		line[strcspn(line, "\n")] = 0;
		*c2 = 0;
		if (c1[1] == 0 && !strncmp(line, "0", 1))
			snprintf(v2path, sizeof(v2path), "%s", c2 + 1);
		else if (has_word(c1 + 1, "memory", ','))
			snprintf(v1path, sizeof(v1path), "%s", c2 + 1);
	}
	fclose(f);

	if (v1path[0] && find_mount(0, mnt, sizeof(mnt), root, sizeof(root))) {
		rel = v1path;
		if (strcmp(root, "/") && !strncmp(v1path, root, strlen(root)))
			rel = v1path + strlen(root);
		snprintf(parent_dir, sizeof(parent_dir), "%s%s", mnt, rel);
		cgroup_v2 = 0;
		return;
	}
	if (v2path[0] && find_mount(1, mnt, sizeof(mnt), root, sizeof(root))) {
		FILE *c;

		rel = v2path;
		if (strcmp(root, "/") && !strncmp(v2path, root, strlen(root)))
			rel = v2path + strlen(root);
		snprintf(parent_dir, sizeof(parent_dir), "%s%s", mnt, rel);
		cgroup_v2 = 1;
		/* children get memory.max only if our cgroup delegates memory */
		join_path(ctl, sizeof(ctl), parent_dir, "cgroup.subtree_control");
		c = fopen(ctl, "re");
		if (!c || !fgets(line, sizeof(line), c) || !has_word(line, "memory", ' ')) {
			if (c)
				fclose(c);
			skip("cgroup2 %s does not delegate the memory controller to its "
			     "children (cgroup.subtree_control lacks memory)", parent_dir);
		}
		fclose(c);
		return;
	}
	skip("no memory controller: neither a v1 memory hierarchy nor cgroup2 with memory");
}

static void make_child(int i, uint64_t *id)
{
	char path[4200], lim[32];
	int err;

	if (snprintf(child_dir[i], sizeof(child_dir[i]), "%s/hakmem-bpf-%d-%s",
		     parent_dir, (int)getpid(), child_name[i]) >= (int)sizeof(child_dir[i]))
		fail("cgroup path too long: %s", parent_dir);
	if (mkdir(child_dir[i], 0755) < 0)
		fail("mkdir %s: %s", child_dir[i], strerror(errno));
	child_made[i] = 1;
	snprintf(lim, sizeof(lim), "%llu", (unsigned long long)LIMIT_BYTES);
	join_path(path, sizeof(path), child_dir[i],
		  cgroup_v2 ? "memory.max" : "memory.limit_in_bytes");
	err = write_file(path, lim);
	if (err)
		fail("write %s: %s", path, strerror(-err));
	err = cgroup_id_of_dir(child_dir[i], NULL, id);
	if (err)
		fail("cgroup_id_of_dir(%s): %s", child_dir[i], strerror(-err));
}

/* ---- the workloads (run in forked children, exit codes only) ---- */

static void join_cgroup(int i)
{
	char path[4200], num[32];

	join_path(path, sizeof(path), child_dir[i], "cgroup.procs");
	snprintf(num, sizeof(num), "%d", (int)getpid());
	if (write_file(path, num))
		_exit(3);
}

static void touch_anon(size_t bytes)
{
	char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		_exit(4);
	for (size_t off = 0; off < bytes; off += 4096)
		p[off] = 1;
}

/* A directory on a disk file system (not tmpfs: shmem cannot be reclaimed
 * without swap, it would OOM instead of reclaiming). */
static const char *disk_dir(void)
{
	static const char *const dirs[] = { "/var/tmp", ".", "/tmp" };
	struct statfs sfs;
	struct statvfs vfs;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (statfs(dirs[i], &sfs) < 0 || sfs.f_type == TMPFS_MAGIC ||
		    sfs.f_type == RAMFS_MAGIC)
			continue;
		if (statvfs(dirs[i], &vfs) < 0 ||
		    (uint64_t)vfs.f_bavail * vfs.f_frsize < 2 * PRESS_FILE)
			continue;
		return dirs[i];
	}
	return NULL;
}

static void press_child(const char *dir)
{
	static char buf[CHUNK];
	char tmpl[4200];
	uint64_t off;
	int fd;

	join_cgroup(PRESS);
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(tmpl, sizeof(tmpl), "%s/hakmem-bpf-XXXXXX", dir);
		fd = mkstemp(tmpl);
		if (fd < 0)
			_exit(5);
		unlink(tmpl);
	}
	memset(buf, 0x5a, sizeof(buf));
	shm->t_start_ns = now_ns();
	touch_anon(PRESS_ANON);
	for (off = 0; off < PRESS_FILE; off += CHUNK)
		if (pwrite(fd, buf, CHUNK, (off_t)off) != (ssize_t)CHUNK) {
			shm->phase_err = errno;
			_exit(6);
		}
	for (off = 0; off < PRESS_FILE; off += CHUNK)
		if (pread(fd, buf, CHUNK, (off_t)off) != (ssize_t)CHUNK) {
			shm->phase_err = errno;
			_exit(7);
		}
	shm->t_end_ns = now_ns();
	_exit(0);
}

static void calm_child(void)
{
	join_cgroup(CALM);
	touch_anon(CALM_ANON);
	for (;;)
		pause();
}

/* Anonymous memory past the limit, no swap: the memcg OOM killer must pick
 * this process (the only one in its memcg). */
static void oom_child(void)
{
	join_cgroup(OOM);
	shm->t_start_ns = now_ns();
	touch_anon(OOM_ANON);
	shm->t_end_ns = now_ns();
	_exit(0); /* survived: the limit did not hold */
}

/* ---- notifications ---- */

struct seen {
	uint64_t id[NCHILD];
	unsigned pressure[NCHILD], oom[NCHILD], other;
	uint64_t other_id;
	struct hakmem_bpf_event first[NCHILD]; /* first event per child memcg */
	uint64_t first_rx_ns[NCHILD];          /* when user space got it */
	struct hakmem_bpf_event first_oom;     /* first OOM event (oom child) */
	uint64_t first_oom_rx_ns;
};

static int on_event(void *ctx, const struct hakmem_bpf_event *ev)
{
	struct seen *s = ctx;
	int i;

	for (i = 0; i < NCHILD; i++)
		if (s->id[i] && ev->cgroup_id == s->id[i])
			break;
	if (i == NCHILD) {
		s->other++;
		s->other_id = ev->cgroup_id;
		return 0;
	}
	if (!s->pressure[i] && !s->oom[i]) {
		s->first[i] = *ev;
		s->first_rx_ns[i] = now_ns();
	}
	if (ev->kind != HAKMEM_BPF_EV_OOM) {
		s->pressure[i]++;
		return 0;
	}
	if (!s->oom[i]++) {
		s->first_oom = *ev;
		s->first_oom_rx_ns = now_ns();
	}
	return 0;
}

static void print_stats(int i, struct seen *seen, struct bpf_source *src)
{
	struct hakmem_memcg_stats st;
	int err = bpf_source_read(src, seen->id[i], &st);

	if (err) {
		printf("# %s (memcg %llu): no counters (%s)\n", child_name[i],
		       (unsigned long long)seen->id[i], strerror(-err));
		return;
	}
	printf("# %s (memcg %llu): direct_reclaims %llu memcg_reclaims %llu "
	       "reclaim_ms %.3f pages_scanned %llu pages_stolen %llu "
	       "kswapd_scanned %llu oom_kills %llu notifications %llu\n",
	       child_name[i], (unsigned long long)seen->id[i],
	       (unsigned long long)st.direct_reclaims,
	       (unsigned long long)st.memcg_reclaims, st.reclaim_ns / 1e6,
	       (unsigned long long)st.pages_scanned,
	       (unsigned long long)st.pages_stolen,
	       (unsigned long long)st.kswapd_scanned,
	       (unsigned long long)st.oom_kills,
	       (unsigned long long)st.notifications);
}

static void log_to_stdout(enum bpf_source_log_level level, const char *fmt, va_list ap)
{
	if (level > BPF_SOURCE_LOG_INFO)
		return;
	printf("# libbpf: ");
	vprintf(fmt, ap);
}

static pid_t spawn(int i, void (*fn)(void))
{
	pid_t pid = fork();

	if (pid < 0)
		fail("fork: %s", strerror(errno));
	if (pid == 0) {
		/* the cleanup handler belongs to the parent */
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		fn();
		_exit(0);
	}
	child_pid[i] = pid;
	return pid;
}

static const char *press_dir;
static void press_main(void)
{
	press_child(press_dir);
}

/* Polls until child `i` has exited and SETTLE_MS more have passed;
 * returns its wait status. */
static int run_until_exit(struct bpf_source *src, struct seen *seen, int i)
{
	uint64_t deadline = now_ns() + DEADLINE_S * 1000000000ull, done = 0;
	int err, status = -1;

	for (;;) {
		/* as hakmemd does: wait on the source's descriptor, then consume */
		struct pollfd pfd = { .fd = bpf_source_fd(src), .events = POLLIN };
		err = poll(&pfd, 1, 50) < 0 ? -errno : 0;
		if (err == 0)
			err = bpf_source_consume(src, on_event, seen);
		if (err < 0 && err != -EINTR)
			fail("bpf_source_consume: %s", strerror(-err));
		if (!done && waitpid(child_pid[i], &status, WNOHANG) == child_pid[i]) {
			child_pid[i] = 0;
			done = now_ns();
		}
		if (done && now_ns() - done > SETTLE_MS * 1000000ull)
			break;
		if (now_ns() > deadline)
			fail("%s workload still running after %d s", child_name[i], DEADLINE_S);
	}
	bpf_source_consume(src, on_event, seen);
	return status;
}

static void print_info(struct bpf_source *src, struct seen *seen)
{
	struct bpf_source_info info;

	bpf_source_get_info(src, &info);
	printf("# notifications: press %u, calm %u, oom %u pressure + %u oom, "
	       "other memcgs %u; ringbuf_dropped %llu stats_full %llu malformed %llu\n",
	       seen->pressure[PRESS], seen->pressure[CALM], seen->pressure[OOM],
	       seen->oom[OOM], seen->other,
	       (unsigned long long)info.ringbuf_dropped,
	       (unsigned long long)info.stats_full,
	       (unsigned long long)info.malformed);
	if (seen->other)
		fail("%u notification(s) for unwatched memcg %llu (filter broken)",
		     seen->other, (unsigned long long)seen->other_id);
}

/* press + calm: reclaim counted and notified for press, nothing for calm. */
static void scenario_pressure(struct bpf_source *src, struct seen *seen,
			      const struct bpf_source_info *info)
{
	struct hakmem_memcg_stats st;
	int err, status;

	make_child(PRESS, &seen->id[PRESS]);
	make_child(CALM, &seen->id[CALM]);
	printf("# press %s (memcg %llu), calm %s (memcg %llu), limit %llu MiB, file in %s\n",
	       child_dir[PRESS], (unsigned long long)seen->id[PRESS],
	       child_dir[CALM], (unsigned long long)seen->id[CALM],
	       (unsigned long long)(LIMIT_BYTES >> 20), press_dir);
	if ((err = bpf_source_watch(src, seen->id[PRESS])) ||
	    (err = bpf_source_watch(src, seen->id[CALM])))
		fail("bpf_source_watch: %s", strerror(-err));

	spawn(CALM, calm_child);
	spawn(PRESS, press_main);
	status = run_until_exit(src, seen, PRESS);

	print_stats(PRESS, seen, src);
	print_stats(CALM, seen, src);
	print_info(src, seen);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail("press workload failed: status 0x%x (%s)", status,
		     shm->phase_err ? strerror(shm->phase_err) : "see exit code");
	printf("# workload: %.1f ms (%llu MiB written and read back, %llu MiB anon)\n",
	       (shm->t_end_ns - shm->t_start_ns) / 1e6,
	       (unsigned long long)(PRESS_FILE >> 20),
	       (unsigned long long)(PRESS_ANON >> 20));

	err = bpf_source_read(src, seen->id[PRESS], &st);
	if (err)
		fail("no counters for press memcg %llu: %s",
		     (unsigned long long)seen->id[PRESS], strerror(-err));
	if (st.direct_reclaims + st.memcg_reclaims == 0)
		fail("no reclaim counted for press memcg %llu",
		     (unsigned long long)seen->id[PRESS]);
	if ((info->programs & BPF_SOURCE_PROG_MEMCG_EVENT) && st.pages_scanned == 0)
		fail("count_memcg_events attached but no pages scanned in press");
	if (!seen->pressure[PRESS])
		fail("no notification for press memcg %llu",
		     (unsigned long long)seen->id[PRESS]);
	if (seen->pressure[CALM] || seen->oom[CALM])
		fail("%u notification(s) for the calm sibling",
		     seen->pressure[CALM] + seen->oom[CALM]);

	printf("# first notification: why 0x%x, window events %llu stall %.3f ms "
	       "scanned %llu pages\n", seen->first[PRESS].why,
	       (unsigned long long)seen->first[PRESS].win_events,
	       seen->first[PRESS].win_stall_ns / 1e6,
	       (unsigned long long)seen->first[PRESS].win_scanned);
	printf("# timing: pressure start -> first reclaim %.3f ms, "
	       "first reclaim -> notification %.3f ms, "
	       "notification -> user space %.3f ms; "
	       "pressure start -> notification received %.3f ms\n",
	       ((int64_t)(st.first_event_ns - shm->t_start_ns)) / 1e6,
	       ((int64_t)(seen->first[PRESS].ts_ns - st.first_event_ns)) / 1e6,
	       ((int64_t)(seen->first_rx_ns[PRESS] - seen->first[PRESS].ts_ns)) / 1e6,
	       ((int64_t)(seen->first_rx_ns[PRESS] - shm->t_start_ns)) / 1e6);
}

/* oom: the victim's memcg gets an OOM notification and oom_kills. */
static void scenario_oom(struct bpf_source *src, struct seen *seen,
			 const struct bpf_source_info *info)
{
	struct hakmem_memcg_stats st;
	int err, status;

	if (!(info->programs & (BPF_SOURCE_PROG_OOM_VICTIM | BPF_SOURCE_PROG_OOM_EVENT)))
		skip("no OOM tracepoint usable on this kernel");
	make_child(OOM, &seen->id[OOM]);
	printf("# oom %s (memcg %llu), limit %llu MiB, %llu MiB anon\n",
	       child_dir[OOM], (unsigned long long)seen->id[OOM],
	       (unsigned long long)(LIMIT_BYTES >> 20),
	       (unsigned long long)(OOM_ANON >> 20));
	err = bpf_source_watch(src, seen->id[OOM]);
	if (err)
		fail("bpf_source_watch: %s", strerror(-err));

	spawn(OOM, oom_child);
	status = run_until_exit(src, seen, OOM);
	print_stats(OOM, seen, src);
	print_info(src, seen);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail("oom workload was not OOM-killed: status 0x%x", status);
	err = bpf_source_read(src, seen->id[OOM], &st);
	if (err || st.oom_kills == 0)
		fail("no OOM kill counted for memcg %llu",
		     (unsigned long long)seen->id[OOM]);
	if (!seen->oom[OOM])
		fail("no OOM notification for memcg %llu",
		     (unsigned long long)seen->id[OOM]);
	printf("# timing: anon growth start -> first notification (kind %u) received "
	       "%.3f ms, -> OOM notification received %.3f ms; "
	       "OOM notification -> user space %.3f ms\n",
	       seen->first[OOM].kind,
	       ((int64_t)(seen->first_rx_ns[OOM] - shm->t_start_ns)) / 1e6,
	       ((int64_t)(seen->first_oom_rx_ns - shm->t_start_ns)) / 1e6,
	       ((int64_t)(seen->first_oom_rx_ns - seen->first_oom.ts_ns)) / 1e6);
}

int main(int argc, char **argv)
{
	struct bpf_source_opts opts;
	struct bpf_source_info info;
	struct bpf_source *src = NULL;
	struct seen seen;
	int err, oom = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&seen, 0, sizeof(seen));
	bpf_source_opts_init(&opts);
	opts.filter = true;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--attach=tp_btf"))
			opts.attach = BPF_SOURCE_ATTACH_TP_BTF;
		else if (!strcmp(argv[i], "--attach=raw_tp"))
			opts.attach = BPF_SOURCE_ATTACH_RAW_TP;
		else if (!strcmp(argv[i], "--oom"))
			oom = 1;
		else if (strcmp(argv[i], "--attach=auto")) {
			fprintf(stderr, "usage: %s [--attach=auto|tp_btf|raw_tp] [--oom]\n",
				argv[0]);
			return 2;
		}
	}

	if (geteuid() != 0)
		skip("needs root (BPF, cgroups)");
	find_own_memcg();
	if (!oom) {
		press_dir = disk_dir();
		if (!press_dir)
			skip("no disk (non-tmpfs) directory with %llu MiB free",
			     (unsigned long long)(2 * PRESS_FILE >> 20));
	}

	bpf_source_set_log(log_to_stdout);
	err = bpf_source_open(&src, &opts);
	if (err == -EPERM || err == -EACCES)
		skip("BPF load refused: %s", strerror(-err));
	if (err == -EOPNOTSUPP || err == -ENOENT)
		skip("BPF source unsupported here: %s", strerror(-err));
	if (err)
		fail("bpf_source_open: %s", strerror(-err));
	bpf_source_get_info(src, &info);
	printf("# attach %s, programs 0x%x, cgroup %s, parent %s\n",
	       info.attach == BPF_SOURCE_ATTACH_TP_BTF ? "tp_btf" : "raw_tp",
	       info.programs, cgroup_v2 ? "v2" : "v1", parent_dir);

	shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED)
		fail("mmap: %s", strerror(errno));
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGHUP, on_signal);

	if (oom)
		scenario_oom(src, &seen, &info);
	else
		scenario_pressure(src, &seen, &info);

	bpf_source_close(src);
	cleanup();
	printf("PASS\n");
	return 0;
}
