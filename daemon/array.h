/* array.h: the daemon's growable arrays: a pointer to the elements, a
 * count and a capacity, grown by doubling. One helper for every table
 * (clients, control connections, cgroups, their records, the usage
 * entries, the graveyard, an answer's bytes).
 */
#ifndef HAKMEMD_ARRAY_H
#define HAKMEMD_ARRAY_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Room for need elements of elem bytes in the array whose pointer is at
 * arrp (a T ** for an array of T), with *cap elements allocated: the
 * capacity doubles from *cap (first when 0) until need fits. 0, or
 * -ENOMEM with the array and *cap unchanged. */
static inline int array_reserve(void *arrp, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : first;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem)
            return -ENOMEM;
        c *= 2;
    }
    void *old, *grown;
    memcpy(&old, arrp, sizeof(old));
    grown = realloc(old, c * elem);
    if (!grown)
        return -ENOMEM;
    memcpy(arrp, &grown, sizeof(grown));
    *cap = c;
    return 0;
}

#endif /* HAKMEMD_ARRAY_H */
