/*
 * jsonloc.h - where in the source text each node of a cJSON tree came from.
 *
 * cJSON keeps no positions; config errors must say "line 14, column 18".
 * jsonloc walks the (already validated) text in step with the tree and
 * records, for every node, the line and column of its value and, for object
 * members, of its key: one pass over the text, so a lookup costs a binary
 * search however many errors a file has.
 */
#ifndef REDPULSE_JSONLOC_H
#define REDPULSE_JSONLOC_H

#include <cjson/cJSON.h>
#include <stddef.h>

struct jsonloc;

/* Builds the position index of `root`, which cJSON parsed from text[0..len).
 * Never returns NULL. */
struct jsonloc *jsonloc_build(const char *text, size_t len, const cJSON *root);
/* Line and column (1-based) of node's value, or of its key when key != 0 and
 * it has one. Returns 0, or -1 when the node is unknown (lines set to 0). */
int jsonloc_find(const struct jsonloc *l, const cJSON *node, int key, unsigned *line,
                 unsigned *col);
/* Line and column (1-based) of byte offset `off` in text, counted from the
 * start (for a one-off position such as a syntax error's). */
void jsonloc_linecol(const char *text, size_t off, unsigned *line, unsigned *col);
/* Frees; safe on NULL. */
void jsonloc_free(struct jsonloc *l);

#endif
