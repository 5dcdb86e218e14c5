/*
 * info.c - turns the text of an INFO reply into a sample. Every line is split
 * on its first colon; nothing is found by searching the blob, so a field name
 * that is a prefix or suffix of another can never be mistaken for it. The
 * parser never fails: what it cannot read it counts and skips.
 */
#include "info.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

enum conv { NUM, USEC, MSEC, STATUS };

static const struct {
    const char *key;
    enum conv conv;
} field_meta[INFO_FIELD_COUNT] = {
#define F(id, key, metric, type, conv, help) [INFO_##id] = {key, conv},
#include "fields.def"
#undef F
};

static const char *const sfield_keys[INFO_SFIELD_COUNT] = {
#define X(id, key) [INFO_S_##id] = key,
    INFO_SFIELDS(X)
#undef X
};

/* Keys and names come from the peer, so the hash is keyed: SipHash-1-3 (as
 * Python's str hash; Redis uses SipHash-1-2) with a random 128-bit key per
 * process. Names chosen offline to collide in a table (and make its lookups
 * linear) cannot be chosen without the key. It takes the key 8 bytes at a
 * time: FNV-1a's byte loop (a multiply chain) was a quarter of the parse of
 * an INFO reply in perf, and SipHash-1-3 parses 5% faster (poll_micro,
 * 12.3 against 12.9 µs a poll); a plain multiply-and-fold of words had
 * collisions that held for every seed (a flip of bit 63 in one word undone
 * by flips in the next). */
static uint64_t hash_key[2];

void info_random_key(uint64_t k[2])
{
    if (getrandom(k, 2 * sizeof *k, GRND_NONBLOCK) != (ssize_t)(2 * sizeof *k)) {
        k[0] = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
        k[1] = (uint64_t)(uintptr_t)k * 0xc2b2ae3d27d4eb4full ^ (uint64_t)clock();
    }
}

static void seed_hash(void) { info_random_key(hash_key); }

static inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

static inline uint64_t le64(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

#define SIPROUND                                                                                                   \
    do {                                                                                                           \
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);                                                  \
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                                                                     \
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                                                                     \
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);                                                  \
    } while (0)

uint64_t info_siphash(const uint64_t k[2], const char *s, size_t n, int c_rounds, int d_rounds)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ k[0], v1 = 0x646f72616e646f6dull ^ k[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ k[0], v3 = 0x7465646279746573ull ^ k[1];
    uint64_t last = (uint64_t)n << 56;
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t m = le64(s);
        v3 ^= m;
        for (int r = 0; r < c_rounds; r++)
            SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < n; i++) /* byte by byte: a short memcpy would stall on store forwarding */
        last |= (uint64_t)(unsigned char)s[i] << (8 * i);
    v3 ^= last;
    for (int r = 0; r < c_rounds; r++)
        SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    for (int r = 0; r < d_rounds; r++)
        SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t hash_bytes(const char *s, size_t n) { return info_siphash(hash_key, s, n, 1, 3); }

/* Every key looked up by name, in a hash table built once; a key can be both
 * a numeric field and an indexed string (process_id). */
struct lookup {
    const char *key;
    uint64_t hash;
    int16_t fid, sid; /* -1 when not */
};
#define LOOKUP_SLOTS 1024 /* a power of two, over twice the keys */
static struct lookup table[LOOKUP_SLOTS];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static struct lookup *lookup_slot(const char *key, size_t n, uint64_t h)
{
    size_t i = (size_t)h & (LOOKUP_SLOTS - 1);
    while (table[i].key && !(table[i].hash == h && strncmp(table[i].key, key, n) == 0 && table[i].key[n] == '\0'))
        i = (i + 1) & (LOOKUP_SLOTS - 1);
    return &table[i];
}

static void add_known(const char *key, int fid, int sid)
{
    uint64_t h = hash_bytes(key, strlen(key));
    struct lookup *l = lookup_slot(key, strlen(key), h);
    if (!l->key)
        *l = (struct lookup){key, h, -1, -1};
    if (fid >= 0)
        l->fid = (int16_t)fid;
    if (sid >= 0)
        l->sid = (int16_t)sid;
}

static void build_table(void)
{
    seed_hash();
    _Static_assert(INFO_FIELD_COUNT + INFO_SFIELD_COUNT < LOOKUP_SLOTS / 2, "lookup table too small");
    for (int f = 0; f < INFO_FIELD_COUNT; f++)
        add_known(field_meta[f].key, f, -1);
    for (int k = 0; k < INFO_SFIELD_COUNT; k++)
        add_known(sfield_keys[k], -1, k);
}

static const struct lookup *find_known(const char *key, size_t n, uint64_t h)
{
    const struct lookup *l = lookup_slot(key, n, h);
    return l->key ? l : NULL;
}

/* The keys of a reply come in the order of the last reply parsed, poll after
 * poll and from one instance of a version to the next; the table above is
 * 24 KB read at random, and between two polls the caches have gone to the
 * kernel and the server: in perf of 100 polls a second, the load of a
 * table slot was 70% of the parse's own time. So the keys of the last reply
 * parsed on this thread are kept in order, with what the table said of
 * them, and each key of a reply is first compared with the one at a cursor
 * in that list: on a match the cursor moves on, past up to SEQ_AHEAD lines
 * removed when one of the next entries matches (a master's replica lines,
 * a replica's master_* lines: instances of every kind share this thread),
 * and it waits when a line was added. The list is
 * read in order and the prefetcher has it. A key found before is matched by
 * its hash, its length and its bytes; one the table did not hold, by its
 * hash and length (the key of the hash is secret, so no peer can make a
 * known key collide with an unknown one). Measured (the bench's
 * head-to-head setup, 10 connections at 100 ms, six interleaved 8 s
 * rounds, Release): 168.6 against 148.6 µs of agent CPU a poll, and the
 * parse's own share of the agent's time in perf from 12.4% to 4.5%.
 * A key of the table is looked for near the cursor by its bytes before
 * anything else (seq_known): most lines of a reply are never hashed, and a
 * duplicate of one is told by its field being set already. With the sample
 * reused (info_parse_again), poll_micro's parse went from 11.3 to 10.0 µs
 * hot and from 16.0 to 12.6 µs cold; SipHash left the agent's profile
 * (2.8% of its samples before). A key the table does not hold is kept as
 * a copy of its bytes (in an arena of SEQ_ARENA bytes a list) and found
 * near the cursor by them in the same way, so a reply like the last hashes
 * no key at all. A key past the arena or past SEQ_MAX lines is still
 * matched by its hash and length, and a new key is hashed. With
 * info_parse_poll and the last byte compared first (seq_known), the parse
 * of a poll went from 102.0 to 91.1 thousand instructions, and all the
 * loop runs a poll from 128.4 to 117.5 thousand (tests/bench/
 * instructions.py; CPU time in turns gives no firm figure: ab.py, B/A
 * 0.86 and 0.89 in two runs, every range straddling 1). A line that starts
 * with the key at the cursor and a colon is then read without looking for
 * its colon or its end, a number of the table with its end in one pass
 * (line_at_cursor), and a reply that follows the last key for key copies
 * none of the list (seq_record): with a version no longer handed to
 * strtod (util.c), the parse went from 91.0 to 68.1 thousand instructions
 * a poll and the loop from 117.5 to 94.0 (instructions.py); with a nested
 * field cut in one pass (info_kv_next) and a plain number read inline
 * (value_number), 66.4 and 92.2. */
struct seq_key {
    uint64_t hash; /* of the key, when it was first met */
    /* the table's key; for one the table did not hold, a copy of its bytes
     * in the list's arena, or NULL when the arena was full */
    const char *key;
    uint32_t len;
    int16_t fid, sid; /* both -1: not the table's */
};
#define SEQ_MAX 512 /* lines of a reply that are remembered; the rest use the table */
#define SEQ_AHEAD 8 /* entries looked at past the cursor, hashes first */
/* bytes of keys outside the table kept a list: 1.3 KB in the Redis 7.0.15
 * capture, of which 0.9 KB are its 15 commands' cmdstat_ and
 * latency_percentiles_usec_ keys; room for about 300 commands */
#define SEQ_ARENA 16384
struct seq {
    struct seq_key k[2][SEQ_MAX];
    char arena[2][SEQ_ARENA]; /* arena[i]: the copied keys of k[i] */
    size_t n[2];
    int cur; /* k[cur]: the last reply's keys */
};
static _Thread_local struct seq key_seq;
static _Thread_local size_t keys_hashed; /* info_keys_hashed() */
static _Thread_local size_t lines_at_cursor; /* info_lines_at_cursor() */

size_t info_keys_hashed(void) { return keys_hashed; }
size_t info_lines_at_cursor(void) { return lines_at_cursor; }

struct seq_cursor {
    const struct seq_key *old;
    size_t n_old, c;
    struct seq_key *next;
    size_t n_next;
    char *arena; /* the next list's */
    size_t arena_used;
    /* every key so far was old[n_next]: the next list is old's first
     * n_next, and nothing was copied to next yet (seq_record) */
    bool same;
};

static void seq_begin(struct seq_cursor *q)
{
    struct seq *sq = &key_seq;
    q->old = sq->k[sq->cur];
    q->n_old = sq->n[sq->cur];
    q->c = 0;
    q->next = sq->k[!sq->cur];
    q->n_next = 0;
    q->arena = sq->arena[!sq->cur];
    q->arena_used = 0;
    q->same = true;
}

static void seq_end(const struct seq_cursor *q)
{
    struct seq *sq = &key_seq;
    if (!q->same) /* else the last list stays, cut to the keys this reply had */
        sq->cur = !sq->cur;
    sq->n[sq->cur] = q->n_next;
}

static bool seq_match(const struct seq_key *e, const char *key, size_t n, uint64_t h)
{
    return e->hash == h && e->len == n && (!e->key || memcmp(e->key, key, n) == 0);
}

/* Appends e to the next list; a key outside the table gets a copy of its
 * bytes (key; NULL: none) in the list's arena while there is room. */
static void seq_put(struct seq_cursor *q, const struct seq_key *e, const char *key)
{
    struct seq_key *x = &q->next[q->n_next++];
    *x = *e;
    if (e->fid < 0 && e->sid < 0) {
        x->key = NULL;
        if (key && e->len <= SEQ_ARENA - q->arena_used) {
            x->key = memcpy(q->arena + q->arena_used, key, e->len);
            q->arena_used += e->len;
        }
    }
}

/* seq_record's way for a key that is not the last list's next one: the
 * keys so far are copied over from the last list first. */
static void seq_record_copy(struct seq_cursor *q, const struct seq_key *e, const char *key)
{
    if (q->same) {
        size_t n = q->n_next;
        q->n_next = 0;
        q->same = false;
        for (size_t i = 0; i < n; i++)
            seq_put(q, &q->old[i], q->old[i].key);
    }
    seq_put(q, e, key);
}

/* Takes e as the answer for the line at hand (whose key is e's): kept for
 * the next reply's order, its fid and sid given out. A key outside the
 * table is kept as a copy of its bytes in the next list's arena (the
 * reply's text is not there at the next parse): the next reply's same key
 * is then matched by its bytes, unhashed, like a key of the table. While
 * the reply follows the last one key for key, nothing is copied: the last
 * list is the next one (in callgrind, the copies were 40 instructions a
 * line); at the first key that differs, the keys so far are copied over. */
static inline void seq_record(struct seq_cursor *q, const struct seq_key *e, const char *key, int *fid, int *sid)
{
    *fid = e->fid;
    *sid = e->sid;
    if (q->n_next == SEQ_MAX)
        return;
    if (q->same && e == &q->old[q->n_next])
        q->n_next++;
    else
        seq_record_copy(q, e, key);
}

/* The table's answer for key (n bytes, hash h): fid and sid, -1 when not. */
static void seq_lookup(struct seq_cursor *q, const char *key, size_t n, uint64_t h, int *fid, int *sid)
{
    for (size_t k = q->c; k < q->n_old && k <= q->c + SEQ_AHEAD; k++)
        if (seq_match(&q->old[k], key, n, h)) {
            q->c = k + 1;
            seq_record(q, &q->old[k], key, fid, sid);
            return;
        }
    const struct lookup *lk = find_known(key, n, h);
    struct seq_key e = {h, lk ? lk->key : NULL, (uint32_t)n, lk ? lk->fid : -1, lk ? lk->sid : -1};
    seq_record(q, &e, key, fid, sid);
}

/* The table's answer for key (n bytes) when it is a key seen in the last
 * reply near the cursor, compared by its bytes: no hash needed (most lines
 * of a reply, and every line of one like the last). False when not found
 * so: then seq_lookup. */
static bool seq_known(struct seq_cursor *q, const char *key, size_t n, uint64_t *h, int *fid, int *sid)
{
    for (size_t k = q->c; k < q->n_old && k <= q->c + SEQ_AHEAD; k++) {
        const struct seq_key *e = &q->old[k];
        /* the last byte first: keys of one length that differ only at the
         * end (a peer's) do not each cost a whole compare */
        if (e->key && e->len == n && e->key[n - 1] == key[n - 1] && memcmp(e->key, key, n) == 0) {
            q->c = k + 1;
            *h = e->hash;
            seq_record(q, e, key, fid, sid);
            return true;
        }
    }
    return false;
}

const char *info_field_key(enum info_field f) { return field_meta[f].key; }

uint64_t info_hash(const char *s, size_t n)
{
    pthread_once(&table_once, build_table);
    return hash_bytes(s, n);
}

void info_section_spans(const char *text, size_t len, const char *const *names, size_t n, struct info_span *span)
{
    const char *end = text + len;
    struct info_span *open = NULL; /* the section being spanned */
    for (size_t i = 0; i < n; i++)
        span[i] = (struct info_span){0, 0};
    for (const char *p = text; p < end;) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        const char *next = e ? e + 1 : end;
        if (*p == '#') {
            if (open) {
                open->len = (size_t)(p - text) - open->off;
                open = NULL;
            }
            const char *h = p + 1;
            while (h < next && *h == ' ')
                h++;
            size_t hl = (size_t)((e ? e : end) - h);
            if (hl && h[hl - 1] == '\r')
                hl--;
            for (size_t i = 0; i < n; i++)
                if (!span[i].len && strlen(names[i]) == hl && strncasecmp(h, names[i], hl) == 0) {
                    open = &span[i];
                    open->off = (size_t)(p - text);
                    open->len = (size_t)(next - p); /* the header, until the section ends */
                    break;
                }
        }
        p = next;
    }
    if (open)
        open->len = len - open->off;
}

bool info_kv_next(const char **p, struct info_kv *out)
{
    const char *s = *p;
    if (!*s)
        return false;
    /* one byte loop over the field, not strchr and memchr: only this
     * field is read (strchr may look at the whole rest, as sanitizers'
     * strict string checks do: quadratic in a value of thousands of
     * fields), once */
    const char *q = s;
    while (*q && *q != ',' && *q != '=')
        q++;
    out->k = s;
    out->klen = (size_t)(q - s);
    if (*q == '=') {
        out->v = ++q;
        while (*q && *q != ',')
            q++;
        out->vlen = (size_t)(q - out->v);
    } else {
        out->v = q;
        out->vlen = 0;
    }
    *p = *q ? q + 1 : q;
    return true;
}

static bool kv_is(const struct info_kv *kv, const char *name)
{
    return kv->klen == strlen(name) && memcmp(kv->k, name, kv->klen) == 0;
}

static bool value_number(const char *v, size_t n, double *out);

static double kv_num(const struct info_kv *kv)
{
    double v;
    return value_number(kv->v, kv->vlen, &v) ? v : NAN;
}

static void kv_copy(char *dst, size_t cap, const struct info_kv *kv)
{
    size_t n = kv->vlen < cap - 1 ? kv->vlen : cap - 1;
    memcpy(dst, kv->v, n);
    dst[n] = '\0';
}

#define GROW(arr, n, cap)                                                  \
    do {                                                                   \
        if ((n) == (cap)) {                                                \
            (cap) = (cap) ? (cap) * 2 : 8;                                 \
            (arr) = xrealloc((arr), (cap) * sizeof *(arr));                \
        }                                                                  \
    } while (0)

/* arr holds at least need elements afterwards; what it held is not kept
 * (a reused buffer about to be overwritten) */
#define FIT(arr, cap, need)                                                \
    do {                                                                   \
        size_t need_ = (need);                                             \
        if ((cap) < need_) {                                               \
            free(arr);                                                     \
            (arr) = xmalloc(need_ * sizeof *(arr));                        \
            (cap) = need_;                                                 \
        }                                                                  \
    } while (0)

struct caps {
    size_t max_nested;      /* per family; the rest is dropped */
    uint32_t *rep_slot;     /* replicas seen: index + 1 by (ip, port, state) */
    size_t rep_mask;
};

static const char *const nested_names[INFO_NF_COUNT] = {
#define X(id, name) name,
    INFO_NESTED_FAMILIES(X)
#undef X
};

const char *info_nested_family_name(enum info_nested_family f)
{
    return (unsigned)f < INFO_NF_COUNT ? nested_names[f] : "unknown";
}

static uint64_t hash_replica(const struct info_replica *r)
{
    /* the three fields with their NULs, so ("a", "bc") differs from ("ab", "c") */
    char k[sizeof r->ip + sizeof r->port + sizeof r->state];
    size_t a = strlen(r->ip) + 1, b = strlen(r->port) + 1, c = strlen(r->state) + 1;
    memcpy(k, r->ip, a);
    memcpy(k + a, r->port, b);
    memcpy(k + a + b, r->state, c);
    return hash_bytes(k, a + b + c);
}

static bool same_replica(const struct info_replica *a, const struct info_replica *b)
{
    return strcmp(a->ip, b->ip) == 0 && strcmp(a->port, b->port) == 0 && strcmp(a->state, b->state) == 0;
}

/* Adds s->replicas[n] to the set unless an equal one is there (two would be
 * duplicate series); returns false for a duplicate. O(1) expected. */
static bool replica_add(struct caps *c, const struct info_sample *s, size_t n)
{
    if ((n + 1) * 2 > c->rep_mask) { /* keep the set at most half full */
        size_t slots = c->rep_mask ? (c->rep_mask + 1) * 2 : 16;
        free(c->rep_slot);
        c->rep_slot = xcalloc(slots, sizeof *c->rep_slot);
        c->rep_mask = slots - 1;
        for (size_t i = 0; i < n; i++) {
            size_t j = (size_t)hash_replica(&s->replicas[i]) & c->rep_mask;
            while (c->rep_slot[j])
                j = (j + 1) & c->rep_mask;
            c->rep_slot[j] = (uint32_t)(i + 1);
        }
    }
    const struct info_replica *r = &s->replicas[n];
    size_t j = (size_t)hash_replica(r) & c->rep_mask;
    for (; c->rep_slot[j]; j = (j + 1) & c->rep_mask)
        if (same_replica(&s->replicas[c->rep_slot[j] - 1], r))
            return false;
    c->rep_slot[j] = (uint32_t)(n + 1);
    return true;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

enum nested { N_NONE, N_CMD, N_ERR, N_LAT, N_DB, N_SLAVE };

static enum nested nested_kind(const char *key)
{
    switch (key[0]) {
    case 'c':
        return strncmp(key, "cmdstat_", 8) == 0 && key[8] ? N_CMD : N_NONE;
    case 'e':
        return strncmp(key, "errorstat_", 10) == 0 && key[10] ? N_ERR : N_NONE;
    case 'l':
        return strncmp(key, "latency_percentiles_usec_", 25) == 0 && key[25] ? N_LAT : N_NONE;
    case 'd':
        return key[1] == 'b' && all_digits(key + 2) ? N_DB : N_NONE;
    case 's':
        return strncmp(key, "slave", 5) == 0 && all_digits(key + 5) ? N_SLAVE : N_NONE;
    default:
        return N_NONE;
    }
}

bool info_nested_key(const char *key) { return nested_kind(key) != N_NONE; }

static const enum info_nested_family family_of[] = {[N_CMD] = INFO_NF_CMDSTAT, [N_ERR] = INFO_NF_ERRORSTAT,
                                                    [N_LAT] = INFO_NF_LATENCY, [N_DB] = INFO_NF_DB,
                                                    [N_SLAVE] = INFO_NF_REPLICA};

/* True when the family of kind already has max_nested lines in its list. */
static bool family_full(const struct info_sample *s, const struct caps *c, enum nested kind)
{
    size_t have = kind == N_CMD ? s->n_cmds : kind == N_ERR ? s->n_errs : kind == N_LAT ? s->n_lats
                : kind == N_DB ? s->n_dbs : s->n_replicas;
    return have >= c->max_nested;
}

/* Parses the nested value of a key of that kind; returns false when the value
 * does not have the expected shape (the line then counts as malformed). */
static bool parse_nested(struct info_sample *s, struct caps *c, enum nested kind, const char *key, const char *val)
{
    struct info_kv kv;
    const char *p = val;
    if (kind == N_NONE)
        return true;
    /* names become label values: info_parse_again refused keys that are not
     * UTF-8 before this (two would both read U+FFFD: duplicate series) */
    if (kind == N_CMD) {
        GROW(s->cmds, s->n_cmds, s->cap_cmds);
        struct info_cmdstat *cs = &s->cmds[s->n_cmds];
        *cs = (struct info_cmdstat){key + 8, NAN, NAN, NAN, NAN};
        while (info_kv_next(&p, &kv)) {
            if (kv_is(&kv, "calls"))
                cs->calls = kv_num(&kv);
            else if (kv_is(&kv, "usec"))
                cs->usec = kv_num(&kv);
            else if (kv_is(&kv, "rejected_calls"))
                cs->rejected_calls = kv_num(&kv);
            else if (kv_is(&kv, "failed_calls"))
                cs->failed_calls = kv_num(&kv);
        }
        if (isnan(cs->calls))
            return false;
        s->n_cmds++;
        return true;
    }
    if (kind == N_ERR) {
        GROW(s->errs, s->n_errs, s->cap_errs);
        struct info_errstat *es = &s->errs[s->n_errs];
        *es = (struct info_errstat){key + 10, NAN};
        while (info_kv_next(&p, &kv))
            if (kv_is(&kv, "count"))
                es->count = kv_num(&kv);
        if (isnan(es->count))
            return false;
        s->n_errs++;
        return true;
    }
    if (kind == N_LAT) {
        GROW(s->lats, s->n_lats, s->cap_lats);
        struct info_latency *l = &s->lats[s->n_lats];
        memset(l, 0, sizeof *l);
        l->cmd = key + 25;
        while (info_kv_next(&p, &kv) && l->n < INFO_MAX_QUANTILES) {
            if (kv.klen < 2 || kv.k[0] != 'p')
                return false;
            struct info_kv qk = {kv.k + 1, kv.k + 1, kv.klen - 1, kv.klen - 1};
            double q = kv_num(&qk), v = kv_num(&kv);
            if (isnan(q) || isnan(v) || q < 0 || q > 100)
                return false;
            bool dup = false;
            for (int i = 0; i < l->n; i++)
                dup |= fabs(l->q[i] - q / 100.0) < 1e-12;
            if (dup)
                return false; /* one quantile twice: not what a server writes */
            l->q[l->n] = q / 100.0;
            l->usec[l->n] = v;
            bool plain = kv.vlen > 0 && kv.vlen < 32;
            for (size_t i = 0; plain && i < kv.vlen; i++)
                plain = (kv.v[i] >= '0' && kv.v[i] <= '9') || kv.v[i] == '.';
            l->utext[l->n] = plain ? kv.v : NULL;
            l->utext_len[l->n] = plain ? (uint8_t)kv.vlen : 0;
            l->n++;
        }
        if (l->n == 0)
            return false;
        s->n_lats++;
        return true;
    }
    if (kind == N_DB) {
        GROW(s->dbs, s->n_dbs, s->cap_dbs);
        struct info_db *d = &s->dbs[s->n_dbs];
        *d = (struct info_db){key, NAN, NAN, NAN, NAN};
        while (info_kv_next(&p, &kv)) {
            if (kv_is(&kv, "keys"))
                d->keys = kv_num(&kv);
            else if (kv_is(&kv, "expires"))
                d->expires = kv_num(&kv);
            else if (kv_is(&kv, "avg_ttl"))
                d->avg_ttl_ms = kv_num(&kv);
            else if (kv_is(&kv, "subexpiry"))
                d->subexpiry = kv_num(&kv);
        }
        if (isnan(d->keys))
            return false;
        s->n_dbs++;
        return true;
    }
    if (kind == N_SLAVE) {
        GROW(s->replicas, s->n_replicas, s->cap_replicas);
        struct info_replica *r = &s->replicas[s->n_replicas];
        memset(r, 0, sizeof *r);
        r->offset = r->lag = NAN;
        while (info_kv_next(&p, &kv)) {
            if (kv_is(&kv, "ip"))
                kv_copy(r->ip, sizeof r->ip, &kv);
            else if (kv_is(&kv, "port"))
                kv_copy(r->port, sizeof r->port, &kv);
            else if (kv_is(&kv, "state"))
                kv_copy(r->state, sizeof r->state, &kv);
            else if (kv_is(&kv, "offset"))
                r->offset = kv_num(&kv);
            else if (kv_is(&kv, "lag"))
                r->lag = kv_num(&kv);
        }
        if (!r->ip[0] || !utf8_valid(r->ip) || !utf8_valid(r->port) || !utf8_valid(r->state))
            return false;
        if (!replica_add(c, s, s->n_replicas)) /* would be duplicate series */
            return false;
        s->n_replicas++;
        return true;
    }
    return true; /* not a nested key */
}

static double entry_value(enum info_field f, const struct info_entry *e);

/* A value with a zero before another digit: "00000000" (redis_git_sha1)
 * is an identifier; INFO never pads numbers. */
static bool leading_zero(const char *v, size_t n)
{
    const char *d = n && v[0] == '-' ? v + 1 : v;
    size_t dn = n - (size_t)(d - v);
    return dn >= 2 && d[0] == '0' && d[1] >= '0' && d[1] <= '9';
}

/* A value as a number (parse_double_n), for the n bytes at v: a plain
 * decimal read inline (most values; parse_double_n reads it the same), the
 * rest by parse_double_n. */
static bool value_number(const char *v, size_t n, double *out)
{
    const char *stop;
    double x;
    if (leading_zero(v, n))
        return false;
    if (plain_decimal_prefix(v, v + n, &stop, &x) && stop == v + n) {
        *out = x;
        return true;
    }
    return parse_double_n(v, n, out);
}

struct seen_slot {
    uint64_t hash;
    const char *key;
};

static const char *cmd_name(const struct info_sample *s, size_t i) { return s->cmds[i].cmd; }
static const char *err_name(const struct info_sample *s, size_t i) { return s->errs[i].err; }

/* Lists this short are searched; longer ones get a hash index. */
#define INDEX_MIN 16

/* Indexes the n names of a list (unique: their keys were). */
static void index_build(struct info_index *x, const struct info_sample *s, size_t n,
                        const char *(*name)(const struct info_sample *, size_t))
{
    x->mask = 0;
    if (n <= INDEX_MIN)
        return; /* searched (mask 0); slots are kept for reuse */
    size_t slots = 64;
    while (slots < n * 2)
        slots *= 2;
    FIT(x->slot, x->cap, slots);
    memset(x->slot, 0, slots * sizeof *x->slot);
    x->mask = slots - 1;
    for (size_t i = 0; i < n; i++) {
        const char *k = name(s, i);
        size_t j = (size_t)hash_bytes(k, strlen(k)) & x->mask;
        while (x->slot[j])
            j = (j + 1) & x->mask;
        x->slot[j] = (uint32_t)(i + 1);
    }
}

/* Position of key in a list of n names, or -1: the hint, then the index. */
static long index_find(const struct info_index *x, const struct info_sample *s, size_t n,
                       const char *(*name)(const struct info_sample *, size_t), const char *key, size_t hint)
{
    if (hint < n && strcmp(name(s, hint), key) == 0)
        return (long)hint;
    if (!x->mask) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(name(s, i), key) == 0)
                return (long)i;
        return -1;
    }
    for (size_t j = (size_t)hash_bytes(key, strlen(key)) & x->mask; x->slot[j]; j = (j + 1) & x->mask)
        if (strcmp(name(s, x->slot[j] - 1), key) == 0)
            return (long)x->slot[j] - 1;
    return -1;
}

static void index_lists(struct info_sample *s)
{
    index_build(&s->cmd_index, s, s->n_cmds, cmd_name);
    index_build(&s->err_index, s, s->n_errs, err_name);
}

struct info_sample *info_parse(const char *text, size_t len) { return info_parse_again(NULL, text, len, SIZE_MAX); }

struct info_sample *info_parse_max(const char *text, size_t len, size_t max_nested)
{
    return info_parse_again(NULL, text, len, max_nested);
}

/* Empties s for a new parse, keeping its buffers and what they hold. */
static void sample_reset(struct info_sample *s)
{
    struct info_sample keep = *s;
    memset(s, 0, sizeof *s);
#define KEPT(f) s->f = keep.f
    KEPT(text), KEPT(cap_text), KEPT(known), KEPT(entries), KEPT(cap_entries), KEPT(cmds), KEPT(cap_cmds);
    KEPT(errs), KEPT(cap_errs), KEPT(lats), KEPT(cap_lats), KEPT(dbs), KEPT(cap_dbs), KEPT(replicas);
    KEPT(cap_replicas), KEPT(cmd_index.slot), KEPT(cmd_index.cap), KEPT(err_index.slot), KEPT(err_index.cap);
#undef KEPT
}

static struct info_sample *parse(struct info_sample *s, const char *text, size_t len, size_t max_nested, bool all);

/* A line at p read at the key order's cursor, e (line_at_cursor). */
struct cursor_line {
    char *line_end; /* where its value ends (NUL written there) */
    char *next;     /* where the next line starts */
    bool is_num;    /* num is the value's number, read with the line's end */
    double num;
};

/* When the line at p (text up to end) starts with e's key and a colon:
 * what the general path of parse() would have found, without looking for
 * the colon (no key has one, nor a newline: each was cut at the first
 * colon of a line), and for a field of the table its number read with its
 * line's end in one pass (plain_decimal_prefix), without a search for the
 * end. The key and the value are NUL-terminated; false (nothing written)
 * when the line does not start so. */
static inline bool line_at_cursor(const struct seq_key *e, char *p, char *end, struct cursor_line *cl)
{
    if (!e->key || e->len >= (size_t)(end - p) || p[e->len] != ':' || p[e->len - 1] != e->key[e->len - 1] ||
        memcmp(p, e->key, e->len) != 0)
        return false;
    p[e->len] = '\0';
    char *val = p + e->len + 1, *at = val;
    cl->is_num = false;
    if (e->fid >= 0) {
        const char *stop;
        bool ok = plain_decimal_prefix(val, end, &stop, &cl->num);
        at = (char *)stop;
        if (at == end || *at == '\n' || (*at == '\r' && (at + 1 == end || at[1] == '\n'))) {
            cl->line_end = at;
            cl->next = at == end ? end : at + 1;
            if (cl->next < end && *at == '\r')
                cl->next++; /* its '\n' */
            cl->is_num = ok && !leading_zero(val, (size_t)(at - val));
            *at = '\0';
            return true;
        }
    }
    char *nl = memchr(at, '\n', (size_t)(end - at));
    cl->line_end = nl ? nl : end;
    cl->next = nl ? nl + 1 : end;
    if (cl->line_end > val && cl->line_end[-1] == '\r')
        cl->line_end--;
    *cl->line_end = '\0';
    return true;
}


struct info_sample *info_parse_again(struct info_sample *s, const char *text, size_t len, size_t max_nested)
{
    return parse(s, text, len, max_nested, true);
}

struct info_sample *info_parse_poll(struct info_sample *s, const char *text, size_t len, size_t max_nested)
{
    return parse(s, text, len, max_nested, false);
}

/* all false: the lines outside the table that are not nested are skipped
 * once their key is known not to be the table's (info_parse_poll). */
static struct info_sample *parse(struct info_sample *s, const char *text, size_t len, size_t max_nested, bool all)
{
    pthread_once(&table_once, build_table);
    if (s)
        sample_reset(s);
    else
        s = xcalloc(1, sizeof *s);
    struct caps caps = {0};
    caps.max_nested = max_nested;
    if (!s->known)
        s->known = xmalloc(INFO_FIELD_COUNT * sizeof *s->known);
    for (int i = 0; i < INFO_FIELD_COUNT; i++) {
        s->known[i] = -1;
        s->val[i] = NAN;
    }
    /* one entry per line: INFO lines average 25-30 bytes, so this is one
     * allocation for a usual reply instead of six doublings */
    FIT(s->entries, s->cap_entries, len / 24 + 16);
    FIT(s->text, s->cap_text, len + 1);
    memcpy(s->text, text, len);
    s->text[len] = '\0';
    bool has_nul = memchr(s->text, '\0', len) != NULL;

    /* keys seen, to drop duplicate lines: on the stack for a usual reply */
    struct seen_slot local[256]; /* keys outside the table: about 80 in the reference reply */
    size_t nslots = sizeof local / sizeof local[0];
    struct seen_slot *seen = local;
    memset(local, 0, sizeof local);
    size_t nseen = 0;

    struct seq_cursor sq;
    seq_begin(&sq);
    const char *section = "";
    bool section_ok = true; /* false under a header utf8_text_ok refused */
    char *p = s->text, *end = s->text + len;
    while (p < end) {
        char *key, *val, *line_end;
        size_t klen, vlen;
        enum nested kind;
        int fid, sid;
        uint64_t h = 0;
        const struct seq_key *e = sq.c < sq.n_old ? &sq.old[sq.c] : NULL;
        struct cursor_line cl = {.is_num = false};
        bool at_cursor = e && !has_nul && section_ok && line_at_cursor(e, p, end, &cl);
        if (at_cursor) {
            lines_at_cursor++;
            key = p;
            klen = e->len;
            val = key + klen + 1;
            line_end = cl.line_end;
            vlen = (size_t)(line_end - val);
            p = cl.next;
            kind = e->fid >= 0 || e->sid >= 0 ? N_NONE : nested_kind(key);
        } else {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            line_end = nl ? nl : end;
            char *next = nl ? nl + 1 : end;
            if (line_end > p && line_end[-1] == '\r')
                line_end--;
            *line_end = '\0';
            char *line = p;
            p = next;
            size_t line_len = (size_t)(line_end - line);
            if (line_len == 0)
                continue;
            if (has_nul && memchr(line, '\0', line_len) != NULL) {
                s->malformed++; /* embedded NUL: not text */
                continue;
            }
            if (line[0] == '#') {
                line++;
                while (*line == ' ')
                    line++;
                section = line;
                /* a section is a JSON key: one that could not be written as
                 * sent is refused with its lines (they would have no key) */
                section_ok = utf8_text_ok(line, (size_t)(line_end - line));
                if (!section_ok)
                    s->malformed++;
                continue;
            }
            char *colon = memchr(line, ':', line_len);
            if (!colon || colon == line || !section_ok) {
                s->malformed++;
                continue;
            }
            *colon = '\0';
            key = line;
            val = colon + 1;
            klen = (size_t)(colon - line);
            vlen = (size_t)(line_end - val);

            kind = nested_kind(key);
        }
        if (kind != N_NONE && family_full(s, &caps, kind)) {
            /* past the bound: not parsed, not even an entry, not in the key
             * order (what the peer sends beyond it costs a line scan,
             * nothing more) */
            s->dropped[family_of[kind]]++;
            continue;
        }
        /* a key the last reply had is matched in that reply's order by its
         * bytes, unhashed (its hash is the one kept from when it was first
         * met); only a new key is hashed. A key of the table is a duplicate
         * when its field is already set; the others are kept in the set of
         * keys seen. The order remembered takes in duplicate and malformed
         * lines too: it only guides the lookup, never changes its answer. */
        if (at_cursor) {
            sq.c++;
            h = e->hash;
            seq_record(&sq, e, key, &fid, &sid);
        } else if (!seq_known(&sq, key, klen, &h, &fid, &sid)) {
            keys_hashed++;
            h = hash_bytes(key, klen);
            seq_lookup(&sq, key, klen, h, &fid, &sid);
        }
        bool in_table = fid >= 0 || sid >= 0, dup = false;
        if (!all && !in_table && kind == N_NONE)
            continue; /* no reader of a poll's sample looks at it */
        /* the table's keys are plain ASCII: only the others are checked,
         * once, before the duplicate test (which compares raw bytes: it is
         * only right for keys written as they are) */
        if (!in_table && !utf8_text_ok(key, klen)) {
            s->malformed++;
            continue;
        }
        size_t slot = (size_t)h & (nslots - 1);
        if (in_table) {
            dup = fid >= 0 ? s->known[fid] >= 0 : s->sval[sid] != NULL;
        } else {
            while (seen[slot].key) {
                if (seen[slot].hash == h && strcmp(seen[slot].key, key) == 0) {
                    dup = true;
                    break;
                }
                slot = (slot + 1) & (nslots - 1);
            }
        }
        if (dup) {
            s->malformed++;
            continue;
        }
        if (!parse_nested(s, &caps, kind, key, val)) {
            s->malformed++;
            continue;
        }
        if (!in_table) {
            if (nseen + 1 >= nslots / 2) { /* keep the set sparse */
                size_t n2 = nslots * 2;
                struct seen_slot *seen2 = xcalloc(n2, sizeof *seen2);
                for (size_t i = 0; i < nslots; i++)
                    if (seen[i].key) {
                        size_t j = (size_t)seen[i].hash & (n2 - 1);
                        while (seen2[j].key)
                            j = (j + 1) & (n2 - 1);
                        seen2[j] = seen[i];
                    }
                if (seen != local)
                    free(seen);
                seen = seen2;
                nslots = n2;
                slot = (size_t)h & (nslots - 1);
                while (seen[slot].key)
                    slot = (slot + 1) & (nslots - 1);
            }
            seen[slot] = (struct seen_slot){h, key};
            nseen++;
        }
        GROW(s->entries, s->n_entries, s->cap_entries);
        struct info_entry *en = &s->entries[s->n_entries];
        en->section = section;
        en->key = key;
        en->val = val;
        en->num = NAN;
        en->is_num = false;
        if (cl.is_num) {
            en->is_num = true;
            en->num = cl.num;
        } else if (vlen > 0 && vlen < 64) {
            /* used_memory_peak_perc:50.76% */
            en->is_num = value_number(val, val[vlen - 1] == '%' ? vlen - 1 : vlen, &en->num);
        }
        if (sid >= 0)
            s->sval[sid] = val;
        if (fid >= 0) {
            s->known[fid] = (int32_t)s->n_entries;
            s->val[fid] = entry_value((enum info_field)fid, en);
        }
        s->n_entries++;
    }
    seq_end(&sq);
    if (seen != local)
        free(seen);
    free(caps.rep_slot);
    index_lists(s);
    return s;
}

size_t info_sample_heap(const struct info_sample *s)
{
    return sizeof *s + s->cap_text + (s->known ? INFO_FIELD_COUNT * sizeof *s->known : 0) +
           s->cap_entries * sizeof *s->entries + s->cap_cmds * sizeof *s->cmds + s->cap_errs * sizeof *s->errs +
           s->cap_lats * sizeof *s->lats + s->cap_dbs * sizeof *s->dbs + s->cap_replicas * sizeof *s->replicas +
           (s->cmd_index.cap + s->err_index.cap) * sizeof(uint32_t);
}

void info_sample_free(struct info_sample *s)
{
    if (!s)
        return;
    free(s->text);
    free(s->known);
    free(s->entries);
    free(s->cmds);
    free(s->errs);
    free(s->lats);
    free(s->dbs);
    free(s->replicas);
    free(s->cmd_index.slot);
    free(s->err_index.slot);
    free(s);
}

bool info_has(const struct info_sample *s, enum info_field f) { return s->known && s->known[f] >= 0; }

double info_num(const struct info_sample *s, enum info_field f) { return s->val[f]; }

const char *info_sval(const struct info_sample *s, enum info_sfield f) { return s->sval[f]; }

const char *info_num_text(const struct info_sample *s, enum info_field f)
{
    int32_t i = s->known ? s->known[f] : -1;
    if (i < 0 || field_meta[f].conv != NUM || !s->entries[i].is_num)
        return NULL;
    const char *v = s->entries[i].val;
    return v[strlen(v) - 1] == '%' ? NULL : v;
}

static double entry_value(enum info_field f, const struct info_entry *e)
{
    switch (field_meta[f].conv) {
    case STATUS:
        return (strcmp(e->val, "ok") == 0 || strcmp(e->val, "up") == 0) ? 1.0 : 0.0;
    case USEC:
        return e->is_num ? e->num / 1e6 : NAN;
    case MSEC:
        return e->is_num ? e->num / 1e3 : NAN;
    case NUM:
    default:
        return e->is_num ? e->num : NAN;
    }
}

struct info_sample *info_compact(const struct info_sample *s) { return info_compact_again(NULL, s); }

struct info_sample *info_compact_again(struct info_sample *c, const struct info_sample *s)
{
    if (c && c->known) { /* a full sample: its entries would answer info_has() */
        info_sample_free(c);
        c = NULL;
    }
    if (c)
        sample_reset(c);
    else
        c = xcalloc(1, sizeof *c);
    size_t arena = 1;
    for (int k = 0; k < INFO_SFIELD_COUNT; k++)
        arena += s->sval[k] ? strlen(s->sval[k]) + 1 : 0;
    for (size_t i = 0; i < s->n_cmds; i++)
        arena += strlen(s->cmds[i].cmd) + 1;
    for (size_t i = 0; i < s->n_errs; i++)
        arena += strlen(s->errs[i].err) + 1;
    FIT(c->text, c->cap_text, arena);
    char *a = c->text;
    *a = '\0';
#define KEEP(dst, src)                     \
    do {                                   \
        size_t l_ = strlen(src) + 1;       \
        memcpy(a, (src), l_);              \
        (dst) = a;                         \
        a += l_;                           \
    } while (0)
    for (int k = 0; k < INFO_SFIELD_COUNT; k++)
        if (s->sval[k])
            KEEP(c->sval[k], s->sval[k]);
    memcpy(c->val, s->val, sizeof c->val);
    if (s->n_cmds) {
        FIT(c->cmds, c->cap_cmds, s->n_cmds);
        for (size_t i = 0; i < s->n_cmds; i++) {
            c->cmds[i] = s->cmds[i];
            KEEP(c->cmds[i].cmd, s->cmds[i].cmd);
        }
        c->n_cmds = s->n_cmds;
    }
    if (s->n_errs) {
        FIT(c->errs, c->cap_errs, s->n_errs);
        for (size_t i = 0; i < s->n_errs; i++) {
            c->errs[i] = s->errs[i];
            KEEP(c->errs[i].err, s->errs[i].err);
        }
        c->n_errs = s->n_errs;
    }
#undef KEEP
    c->malformed = s->malformed;
    memcpy(c->dropped, s->dropped, sizeof c->dropped);
    index_lists(c);
    return c;
}

const struct info_cmdstat *info_find_cmd(const struct info_sample *s, const char *cmd, size_t hint)
{
    long i = index_find(&s->cmd_index, s, s->n_cmds, cmd_name, cmd, hint);
    return i < 0 ? NULL : &s->cmds[i];
}

const struct info_errstat *info_find_err(const struct info_sample *s, const char *err, size_t hint)
{
    long i = index_find(&s->err_index, s, s->n_errs, err_name, err, hint);
    return i < 0 ? NULL : &s->errs[i];
}

const char *info_str(const struct info_sample *s, const char *key)
{
    for (size_t i = 0; i < s->n_entries; i++)
        if (strcmp(s->entries[i].key, key) == 0)
            return s->entries[i].val;
    return NULL;
}
