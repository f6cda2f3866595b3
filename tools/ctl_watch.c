/* ctl_watch.c: `hakmemctl watch`: status and clients redrawn every
 * --interval, owning the terminal while it runs (restored on every way
 * out: q, Ctrl-C, SIGTERM, SIGHUP; Ctrl-Z suspends with the terminal
 * restored).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include "ctl.h"
#include "msg.h"

/* ---- watch --------------------------------------------------------------- */

static volatile sig_atomic_t got_quit, got_tstp, got_winch;

static void on_signal(int sig)
{
    if (sig == SIGTSTP)
        got_tstp = 1;
    else if (sig == SIGWINCH)
        got_winch = 1;
    else
        got_quit = 1;
}

struct term {
    bool screen;           /* stdout is a terminal we draw on */
    bool keys;             /* stdin is a terminal we read keys from */
    bool raw;              /* its settings are changed now */
    struct termios saved;
};

static void term_enter(struct term *t)
{
    if (t->keys && !t->raw && tcgetattr(STDIN_FILENO, &t->saved) == 0) {
        struct termios r = t->saved;
        r.c_lflag &= ~(tcflag_t)(ICANON | ECHO); /* keys one by one, unechoed; ISIG stays */
        r.c_cc[VMIN] = 1;
        r.c_cc[VTIME] = 0;
        if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &r) == 0)
            t->raw = true;
    }
    if (t->screen) {
        fputs("\033[?1049h\033[?25l", stdout); /* alternate screen, cursor hidden */
        fflush(stdout);
    }
}

static void term_leave(struct term *t)
{
    if (t->screen) {
        fputs("\033[?25h\033[?1049l", stdout);
        fflush(stdout);
    }
    if (t->raw) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &t->saved);
        t->raw = false;
    }
}

static void screen_size(int *rows, int *cols)
{
    struct winsize ws;
    *rows = 24;
    *cols = 80;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
        *rows = ws.ws_row;
        *cols = ws.ws_col;
    }
}

/* One frame: a view, or the error that came instead. */
static void render_frame(FILE *f, const struct ctl_opts *o, const struct ctl_view *v, int rc,
                         const char *err, int width, bool screen)
{
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));

    fprintf(f, "hakmemctl watch  %s  every %gs%s\n\n", when, o->interval_s,
            screen ? "  (q quits)" : "");
    if (rc != CTL_EXIT_OK) {
        fprintf(f, "%s\n", err);
        return;
    }
    show_status_text(f, v, width);
    fputc('\n', f);
    show_clients_text(f, v, width);
}

/* Draws buf clipped to the screen: at most rows - 1 lines of cols bytes. */
static void draw(const char *buf, size_t len)
{
    int rows, cols, line = 0;
    screen_size(&rows, &cols);
    fputs("\033[H\033[2J", stdout);
    for (size_t pos = 0; pos < len && line < rows - 1; line++) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;
        fwrite(buf + pos, 1, n < (size_t)cols ? n : (size_t)cols, stdout);
        fputs("\r\n", stdout);
        pos += n + 1;
    }
    fflush(stdout);
}

static void frame_json(const struct ctl_view *v)
{
    struct ctl_json j;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_init(&j, stdout, false);
    json_obj(&j, NULL);
    json_f64(&j, "time", (double)ts.tv_sec + ts.tv_nsec / 1e9);
    json_obj(&j, "status");
    show_status_json(&j, v);
    json_end(&j);
    show_clients_json(&j, v);
    json_end(&j);
    json_done(&j);
    fflush(stdout);
}

/* Waits one interval; false when the user asked to leave. */
static bool wait_interval(struct term *t, double seconds)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (got_quit)
            return false;
        if (got_tstp) {
            got_tstp = 0;
            term_leave(t);
            raise(SIGSTOP);
            term_enter(t);
            return true; /* redraw at once after fg */
        }
        if (got_winch) {
            got_winch = 0;
            return true;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        double left = seconds - (double)(now.tv_sec - start.tv_sec)
                      - (now.tv_nsec - start.tv_nsec) / 1e9;
        if (left <= 0)
            return true;
        struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
        int r = poll(&p, t->raw ? 1 : 0, (int)ceil(left * 1000));
        if (r > 0) {
            char c;
            ssize_t n = read(STDIN_FILENO, &c, 1);
            if (n <= 0)
                t->keys = t->raw = false; /* stdin gone: stop reading it */
            else if (c == 'q' || c == 'Q')
                return false;
            else
                return true; /* any other key: refresh now */
        }
    }
}

int ctl_cmd_watch(struct ctl_opts *o, int argc, char **argv)
{
    struct term t = { .screen = !o->json && isatty(STDOUT_FILENO) };
    t.keys = t.screen && isatty(STDIN_FILENO);
    struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: poll wakes */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (t.screen) {
        sigaction(SIGWINCH, &sa, NULL);
        sigaction(SIGTSTP, &sa, NULL);
    }
    signal(SIGPIPE, SIG_IGN);

    int last = CTL_EXIT_OK;
    bool entered = false;
    for (long frame = 0; o->count == 0 || frame < o->count; frame++) {
        struct ctl_view v;
        char err[512] = "";
        int rc = ctl_fetch_view(o, true, true, &v, err, sizeof(err));
        last = rc;
        if (rc == CTL_EXIT_OK)
            ctl_warn_malformed(&v);
        if (frame == 0 && rc != CTL_EXIT_OK) {
            /* nothing to watch: say so plainly, as the other commands do */
            ctl_view_free(&v);
            return ctl_fail(rc, err);
        }
        if (o->json) {
            if (rc == CTL_EXIT_OK)
                frame_json(&v);
            else
                fprintf(stderr, "hakmemctl: %s\n", err);
        } else if (t.screen) {
            char *buf = NULL;
            size_t len = 0;
            int rows, cols;
            FILE *m = open_memstream(&buf, &len);
            if (!m) {
                ctl_view_free(&v);
                if (entered)
                    term_leave(&t);
                return ctl_fail(CTL_EXIT_ERROR, "out of memory");
            }
            screen_size(&rows, &cols);
            render_frame(m, o, &v, rc, err, cols, true);
            fclose(m);
            if (!entered) {
                term_enter(&t);
                entered = true;
            }
            draw(buf, len);
            free(buf);
        } else {
            render_frame(stdout, o, &v, rc, err, 0, false);
            fputc('\n', stdout);
            fflush(stdout);
        }
        ctl_view_free(&v);
        if (ferror(stdout))
            break; /* reader gone (EPIPE) */
        if (o->count && frame + 1 >= o->count)
            break;
        if (!wait_interval(&t, o->interval_s))
            break;
    }
    if (entered)
        term_leave(&t);
    return last;
}
