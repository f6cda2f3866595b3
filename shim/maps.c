/* maps.c: one line of /proc/self/maps, parsed. Pure: reads only the bytes
 * it is given (no terminator needed), writes only *e; foreign.c's start-up
 * snapshot and the fuzz target (tests/fuzz) call it.
 */
#define _GNU_SOURCE
#include <string.h>
#include "hk_internal.h"

/* A hex number of 1 to 16 digits at *s (< end); advances *s. */
static bool parse_hex(const char **s, const char *end, uintptr_t *out)
{
    uintptr_t v = 0;
    unsigned digits = 0;
    for (; *s < end; (*s)++, digits++) {
        char c = **s;
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            break;
        if (digits == 2 * sizeof(uintptr_t))
            return false;
        v = v * 16 + d;
    }
    *out = v;
    return digits > 0;
}

/* Past the field at s and the spaces after it. */
static const char *skip_field(const char *s, const char *end)
{
    while (s < end && *s != ' ')
        s++;
    while (s < end && *s == ' ')
        s++;
    return s;
}

/* "lo-hi perms offset dev inode   path" (the path may be missing; a
 * trailing newline is ignored). false when the line is not of that form. */
bool hk_maps_parse(const char *line, size_t n, struct hk_maps_entry *e)
{
    const char *s = line, *end = line + n;
    if (n > 0 && end[-1] == '\n')
        end--;
    uintptr_t lo, hi;
    if (!parse_hex(&s, end, &lo) || s == end || *s++ != '-' || !parse_hex(&s, end, &hi) ||
        lo >= hi || end - s < 5 || *s++ != ' ')
        return false;
    e->lo = lo;
    e->hi = hi;
    e->rw = s[0] == 'r' && s[1] == 'w';
    for (int f = 0; f < 4; f++)         /* perms, offset, dev, inode */
        s = skip_field(s, end);
    e->anon = s == end;
    static const char rtld[] = "/ld-linux";
    e->rtld = memmem(s, (size_t)(end - s), rtld, sizeof(rtld) - 1) != NULL;
    return true;
}
