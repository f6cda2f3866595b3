/* capture.h: run code with stderr redirected to a temporary file and get
 * back what it wrote (the shim logs with write(2) on fd 2). */
#ifndef CAPTURE_H
#define CAPTURE_H
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct capture { int saved; FILE *f; char text[4096]; };

static inline void capture_begin(struct capture *c)
{
    fflush(stderr);
    c->f = tmpfile();
    c->saved = dup(2);
    dup2(fileno(c->f), 2);
}

static inline const char *capture_end(struct capture *c)
{
    dup2(c->saved, 2);
    close(c->saved);
    rewind(c->f);
    size_t n = fread(c->text, 1, sizeof(c->text) - 1, c->f);
    c->text[n] = '\0';
    fclose(c->f);
    return c->text;
}
#endif
