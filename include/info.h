/*
 * info.h - INFO text -> sample. Pure: no I/O, no clocks, no globals.
 *
 * A sample keeps one private copy of the reply text and points into it: every
 * "key:value" line becomes an entry (with its section, and its value as a
 * number when it is one), fields listed in fields.def are indexed by id for
 * O(1) access, and the nested "k=v,..." lines of commandstats, errorstats,
 * latencystats, keyspace and replicas are parsed by key (never by position).
 */
#ifndef REDPULSE_INFO_H
#define REDPULSE_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum info_field {
#define F(id, key, metric, type, conv, help) INFO_##id,
#include "fields.def"
#undef F
    INFO_FIELD_COUNT
};

/* String fields read by name often enough to be indexed. */
#define INFO_SFIELDS(X)                                                                 \
    X(ROLE, "role") X(REDIS_VERSION, "redis_version") X(REDIS_BUILD_ID, "redis_build_id") \
    X(REDIS_MODE, "redis_mode") X(OS, "os") X(MAXMEMORY_POLICY, "maxmemory_policy")      \
    X(TCP_PORT, "tcp_port") X(RUN_ID, "run_id") X(PROCESS_ID, "process_id")              \
    X(SERVER_TIME_USEC, "server_time_usec") X(VALKEY_VERSION, "valkey_version")           \
    X(SERVER_NAME, "server_name") X(MEM_ALLOCATOR, "mem_allocator")

enum info_sfield {
#define X(id, key) INFO_S_##id,
    INFO_SFIELDS(X)
#undef X
    INFO_SFIELD_COUNT
};

struct info_entry {
    const char *section; /* as written after "# ", "" before any header */
    const char *key;
    const char *val;
    double num; /* NaN unless is_num */
    bool is_num;
};

struct info_cmdstat { /* cmdstat_<cmd>:calls=..,usec=..,rejected_calls=..,failed_calls=.. */
    const char *cmd;  /* e.g. "set", "config|get" */
    double calls, usec, rejected_calls, failed_calls; /* NaN when absent */
};

struct info_errstat { /* errorstat_<ERR>:count=.. */
    const char *err;
    double count;
};

#define INFO_MAX_QUANTILES 8
struct info_latency { /* latency_percentiles_usec_<cmd>:p50=..,p99=..,p99.9=.. */
    const char *cmd;
    int n;
    double q[INFO_MAX_QUANTILES];    /* 0.5, 0.99, 0.999 */
    double usec[INFO_MAX_QUANTILES]; /* microseconds */
    /* usec[k] as the server wrote it when a plain decimal ("1.003"), for
     * renderers to copy; NULL otherwise. Not NUL-terminated: utext_len. */
    const char *utext[INFO_MAX_QUANTILES];
    uint8_t utext_len[INFO_MAX_QUANTILES];
};

struct info_db { /* db<N>:keys=..,expires=..,avg_ttl=..[,subexpiry=..] */
    const char *name; /* "db0" */
    double keys, expires, avg_ttl_ms, subexpiry; /* NaN when absent */
};

struct info_replica { /* slave<N>:ip=..,port=..,state=..,offset=..,lag=.. */
    char ip[64], port[8], state[24];
    double offset, lag;
};

/* The families of nested lines, each kept in its own list of a sample. */
#define INFO_NESTED_FAMILIES(X)                                                          \
    X(CMDSTAT, "commandstats") X(ERRORSTAT, "errorstats") X(LATENCY, "latencystats")     \
    X(DB, "keyspace") X(REPLICA, "replicas")

enum info_nested_family {
#define X(id, name) INFO_NF_##id,
    INFO_NESTED_FAMILIES(X)
#undef X
    INFO_NF_COUNT
};

/* A hash index over the names of one list (commands, error types): slots
 * hold list index + 1, 0 when empty. mask 0: no index (a short list,
 * searched). */
struct info_index {
    uint32_t *slot;
    size_t mask;
    size_t cap; /* slots allocated (info_parse_again reuses them) */
};

struct info_sample {
    char *text; /* owned; entries point into it */
    struct info_entry *entries;
    size_t n_entries;
    int32_t *known;                  /* [INFO_FIELD_COUNT] index into entries, -1 when
                                      * absent; NULL in compact samples */
    double val[INFO_FIELD_COUNT];    /* info_num() of each known field */
    const char *sval[INFO_SFIELD_COUNT]; /* indexed string fields, NULL when absent */
    struct info_cmdstat *cmds;
    size_t n_cmds;
    struct info_errstat *errs;
    size_t n_errs;
    struct info_latency *lats;
    size_t n_lats;
    struct info_db *dbs;
    size_t n_dbs;
    struct info_replica *replicas;
    size_t n_replicas;
    size_t malformed; /* lines skipped: no colon, empty key, duplicate, bad k=v, a key or
                       * section name not UTF-8 or with control characters */
    /* nested lines past the per-family bound (info_parse_max), per family:
     * skipped (not entries either) */
    size_t dropped[INFO_NF_COUNT];
    struct info_index cmd_index, err_index; /* for info_find_cmd / info_find_err */
    /* what the buffers above can hold, for info_parse_again (0: unknown,
     * reallocated before use) */
    size_t cap_text, cap_entries, cap_cmds, cap_errs, cap_lats, cap_dbs, cap_replicas;
};

/* One key=value pair of a nested INFO value, as pointers into the value. */
struct info_kv {
    const char *k, *v;
    size_t klen, vlen;
};

/* Parses len bytes of INFO text (CRLF or LF; need not be NUL-terminated).
 * Returns a new sample, never NULL; free with info_sample_free(). Unparseable
 * lines are counted in ->malformed, never fatal. */
struct info_sample *info_parse(const char *text, size_t len);
/* The same, keeping at most max_nested lines of each nested family in its
 * list (the first ones, in the server's order); the others are skipped
 * (no entry either) and counted in ->dropped. A peer chooses how many it sends: the lists feed per-poll work
 * and series, so the poller bounds them. Linear in len, whatever the text. */
struct info_sample *info_parse_max(const char *text, size_t len, size_t max_nested);
/* The same into s, reusing its buffers (what s held is gone), and returns
 * it; s NULL: a new sample. For a thread that parses poll after poll: once
 * the buffers have grown to a usual reply, a parse allocates nothing, and
 * it writes to memory the last parse left in the caches. text must not
 * point into s. */
struct info_sample *info_parse_again(struct info_sample *s, const char *text, size_t len, size_t max_nested);
/* The same for the poll path: the lines that are neither fields of the
 * table (fields.def, the indexed strings) nor nested are skipped once their
 * key is known not to be one (no entry, not checked, not counted as
 * malformed), so info_str() finds only the table's keys and ->malformed
 * counts the lines refused before their key is looked up (no colon, a NUL,
 * under a refused header) and what the table's and the nested lines had
 * wrong. Every value the sample gives by id (info_num, info_sval,
 * info_num_text) and every nested list are as info_parse_again gives them.
 * For readers of those alone (derive, rules, advise): a renderer, which
 * writes every line, needs info_parse_again. */
struct info_sample *info_parse_poll(struct info_sample *s, const char *text, size_t len, size_t max_nested);
/* Keys this thread's parses have hashed so far. A key of the last reply
 * parsed on the thread, in about its place, is matched by its bytes
 * unhashed, so a reply like the last hashes none: for tests. */
size_t info_keys_hashed(void);
/* Lines this thread's parses have read at the key order's cursor: the key
 * of the last reply's line there, then a colon, so neither the colon nor
 * the line's end is looked for (and a number of the table is read with its
 * end). A reply like the last reads its lines with a key so, but for a
 * reply with a NUL, lines under a refused header, past SEQ_MAX lines, or
 * whose keys outside the table the order kept no bytes of: for tests. */
size_t info_lines_at_cursor(void);
/* Heap bytes held by s's buffers (for deciding to keep one for reuse). */
size_t info_sample_heap(const struct info_sample *s);
/* Name of a nested family ("commandstats"...), for messages. */
const char *info_nested_family_name(enum info_nested_family f);
/* Frees a sample; safe on NULL. */
void info_sample_free(struct info_sample *s);
/* A small copy of s holding what the next poll needs from its predecessor:
 * known values, the indexed string fields (info_sval), commandstats and
 * errorstats (about 2 KB instead of the text and every entry). Its entries,
 * keyspace, latency and replica lists are empty and info_has()/info_str()
 * answer "absent". It keeps malformed and dropped counts. */
struct info_sample *info_compact(const struct info_sample *s);
/* The same into c, a compact sample (or NULL: a new one), reusing its
 * buffers, and returns it: a target's previous sample is replaced by the
 * next poll's without an allocation once its buffers fit. A full sample
 * passed as c is freed and a new one made. c must not be s. */
struct info_sample *info_compact_again(struct info_sample *c, const struct info_sample *s);

/* Value of a known field: the number, STATUS fields as 1/0 ("ok"/"up" -> 1),
 * NaN when absent or not numeric. */
double info_num(const struct info_sample *s, enum info_field f);
/* True when the known field is present. */
bool info_has(const struct info_sample *s, enum info_field f);
/* Value string of an indexed string field, or NULL. O(1). */
const char *info_sval(const struct info_sample *s, enum info_sfield f);
/* The value of a known field exactly as the server wrote it, when it is a
 * plain number exported unconverted (so renderers need not format it);
 * NULL otherwise. */
const char *info_num_text(const struct info_sample *s, enum info_field f);
/* The commandstats entry of cmd, or NULL. Looks at index hint first (lists
 * keep their order from poll to poll, and latencystats follows commandstats'
 * order), then in a hash index: O(1) whatever order the server chose. */
const struct info_cmdstat *info_find_cmd(const struct info_sample *s, const char *cmd, size_t hint);
/* The errorstats entry of err, or NULL; hint as for info_find_cmd. */
const struct info_errstat *info_find_err(const struct info_sample *s, const char *err, size_t hint);

/* Value string of any field by key, or NULL. Linear: for rare lookups only. */
const char *info_str(const struct info_sample *s, const char *key);

/* Finds the sections headed "# <name>" (case-insensitive) for n names in
 * one pass over len bytes of INFO text: span[i] for names[i] runs from the
 * header line to the next header or the end, its len 0 when the text has
 * no such section (a section's span holds at least its header line). */
struct info_span {
    size_t off, len;
};
void info_section_spans(const char *text, size_t len, const char *const *names, size_t n, struct info_span *span);

/* Iterates "k=v,k=v" in value string *p; returns false at the end. */
bool info_kv_next(const char **p, struct info_kv *out);

/* True for keys whose value is a nested "k=v,..." list (cmdstat_*,
 * errorstat_*, latency_percentiles_usec_*, dbN, slaveN). */
bool info_nested_key(const char *key);

/* A hash of n bytes keyed with a random seed per process, for tables of
 * strings a peer chooses (so it cannot choose them to collide). */
uint64_t info_hash(const char *s, size_t n);
/* SipHash-c-d of s[0..n) under key k (info_hash is SipHash-1-3 under the
 * process' random key); for tests against the reference vectors. */
uint64_t info_siphash(const uint64_t k[2], const char *s, size_t n, int c_rounds, int d_rounds);
/* A random key for info_siphash (getrandom; without it, the time, the pid
 * and an address). */
void info_random_key(uint64_t k[2]);

/* Static metadata of a known field. */
const char *info_field_key(enum info_field f);

#endif
