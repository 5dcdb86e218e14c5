/*
 * globals.h - the process-wide families of globals.def, by id, and a writer
 * for their HELP and TYPE lines.
 */
#ifndef REDPULSE_GLOBALS_H
#define REDPULSE_GLOBALS_H

#include "buf.h"

enum global_family {
#define X(id, name, type, help) GLOBAL_##id,
#include "globals.def"
#undef X
    GLOBAL_COUNT
};

/* Appends "# HELP name help\n# TYPE name type\n" and then "name" (no
 * newline: labels or " value" follow). */
void global_header(struct buf *b, enum global_family f);

#endif
