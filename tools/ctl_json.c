/* ctl_json.c: a streaming JSON writer for hakmemctl --json: objects,
 * arrays, strings, integers (written as integers, never as floats),
 * finite floats, booleans and null.
 *
 * Owns: commas, indentation and string escaping. Whatever bytes a string
 * holds (paths and process names come from other processes), the output
 * is valid JSON: control characters are escaped and invalid UTF-8 becomes
 * U+FFFD. Must not: allocate or fail; write errors are the FILE's, checked
 * by the caller with ferror/fclose.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ctl.h"
#include "msg.h"

void json_init(struct ctl_json *j, FILE *f, bool pretty)
{
    memset(j, 0, sizeof(*j));
    j->f = f;
    j->pretty = pretty;
}

static void indent(struct ctl_json *j)
{
    if (!j->pretty)
        return;
    fputc('\n', j->f);
    for (int i = 0; i < j->depth; i++)
        fputs("  ", j->f);
}

static void put_string(FILE *f, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;

    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc((int)c, f);
            i++;
        } else if (c == '\n') {
            fputs("\\n", f);
            i++;
        } else if (c == '\t') {
            fputs("\\t", f);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
            i++;
        } else {
            size_t len = proto_utf8_len(s + i, n - i);
            if (len == 0) {
                fputs("\\ufffd", f);
                i++;
            } else {
                fwrite(s + i, 1, len, f);
                i += len;
            }
        }
    }
    fputc('"', f);
}

/* Comma, indentation and "key": before a value. */
static void member(struct ctl_json *j, const char *key)
{
    if (j->depth > 0) {
        if (j->comma[j->depth - 1])
            fputc(',', j->f);
        j->comma[j->depth - 1] = true;
        indent(j);
    }
    if (key) {
        put_string(j->f, key, strlen(key));
        fputs(j->pretty ? ": " : ":", j->f);
    }
}

static void open_container(struct ctl_json *j, const char *key, char c)
{
    member(j, key);
    fputc(c, j->f);
    /* nesting is hakmemctl's own, a few levels: deeper is a bug */
    if (j->depth < CTL_JSON_DEPTH) {
        j->comma[j->depth] = false;
        j->kind[j->depth] = c;
        j->depth++;
    }
}

void json_obj(struct ctl_json *j, const char *key)
{
    open_container(j, key, '{');
}

void json_arr(struct ctl_json *j, const char *key)
{
    open_container(j, key, '[');
}

void json_end(struct ctl_json *j)
{
    if (j->depth == 0)
        return;
    bool had = j->comma[j->depth - 1];
    char close = j->kind[j->depth - 1] == '[' ? ']' : '}';
    j->depth--;
    if (had)
        indent(j);
    fputc(close, j->f);
}

void json_str(struct ctl_json *j, const char *key, const char *s)
{
    if (!s) {
        json_null(j, key);
        return;
    }
    json_strn(j, key, s, strlen(s));
}

void json_strn(struct ctl_json *j, const char *key, const char *s, size_t n)
{
    member(j, key);
    put_string(j->f, s, n);
}

void json_u64(struct ctl_json *j, const char *key, uint64_t v)
{
    member(j, key);
    fprintf(j->f, "%" PRIu64, v);
}

void json_i64(struct ctl_json *j, const char *key, int64_t v)
{
    member(j, key);
    fprintf(j->f, "%" PRId64, v);
}

void json_i64_known(struct ctl_json *j, const char *key, int64_t v)
{
    if (v < 0)
        json_null(j, key);
    else
        json_i64(j, key, v);
}

void json_f64(struct ctl_json *j, const char *key, double v)
{
    if (!isfinite(v)) {
        json_null(j, key);
        return;
    }
    member(j, key);
    /* %.17g round-trips; trim to something readable when exact enough */
    char buf[64];
    snprintf(buf, sizeof(buf), "%.6g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, sizeof(buf), "%.17g", v);
    fputs(buf, j->f);
}

void json_bool(struct ctl_json *j, const char *key, bool v)
{
    member(j, key);
    fputs(v ? "true" : "false", j->f);
}

void json_null(struct ctl_json *j, const char *key)
{
    member(j, key);
    fputs("null", j->f);
}

void json_done(struct ctl_json *j)
{
    fputc('\n', j->f);
}
