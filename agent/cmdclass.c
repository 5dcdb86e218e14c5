/*
 * cmdclass.c - write/read classification of commands. The learned map is a
 * sorted array per connection (a few hundred commands at most, bounded by
 * CMDCLASS_MAP_MAX); the built-in table is two sorted lists searched with
 * bsearch.
 */
#include "cmdclass.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* Commands with the "write" flag in Redis 7.0-8.0 and Valkey 8, sorted. An
 * integration test checks it against the COMMAND reply of the installed
 * redis-server. */
static const char *const builtin_write[] = {
    "append", "bitfield", "bitop", "blmove", "blmpop", "blpop", "brpop", "brpoplpush", "bzmpop",
    "bzpopmax", "bzpopmin", "copy", "decr", "decrby", "del", "expire", "expireat", "flushall",
    "flushdb", "function|delete", "function|flush", "function|load", "function|restore", "geoadd",
    "georadius", "georadiusbymember", "geosearchstore", "getdel", "getex", "getset", "hdel",
    "hexpire", "hexpireat", "hgetdel", "hgetex", "hincrby", "hincrbyfloat", "hmset", "hpersist",
    "hpexpire", "hpexpireat", "hset", "hsetex", "hsetnx", "incr", "incrby", "incrbyfloat",
    "linsert", "lmove", "lmpop", "lpop", "lpush", "lpushx", "lrem", "lset", "ltrim", "migrate",
    "move", "mset", "msetnx", "persist", "pexpire", "pexpireat", "pfadd", "pfdebug", "pfmerge",
    "psetex", "rename", "renamenx", "restore", "restore-asking", "rpop", "rpoplpush", "rpush",
    "rpushx", "sadd", "sdiffstore", "set", "setbit", "setex", "setnx", "setrange", "sinterstore",
    "smove", "sort", "spop", "srem", "sunionstore", "swapdb", "unlink", "xack", "xadd",
    "xautoclaim", "xclaim", "xdel", "xgroup|create", "xgroup|createconsumer", "xgroup|delconsumer",
    "xgroup|destroy", "xgroup|setid", "xreadgroup", "xsetid", "xtrim", "zadd", "zdiffstore",
    "zincrby", "zinterstore", "zmpop", "zpopmax", "zpopmin", "zrangestore", "zrem",
    "zremrangebylex", "zremrangebyrank", "zremrangebyscore", "zunionstore",
};

/* Commands with the "readonly" flag, sorted. */
static const char *const builtin_read[] = {
    "bitcount", "bitfield_ro", "bitpos", "dbsize", "dump", "eval_ro", "evalsha_ro", "exists",
    "expiretime", "fcall_ro", "geodist", "geohash", "geopos", "georadius_ro",
    "georadiusbymember_ro", "geosearch", "get", "getbit", "getrange", "hexists", "hexpiretime",
    "hget", "hgetall", "hkeys", "hlen", "hmget", "hpexpiretime", "hpttl", "hrandfield", "hscan",
    "hstrlen", "httl", "hvals", "keys", "lcs", "lindex", "llen", "lolwut", "lpos", "lrange",
    "memory|usage", "mget", "object|encoding", "object|freq", "object|idletime", "object|refcount",
    "pexpiretime", "pfcount", "pttl", "randomkey", "scan", "scard", "sdiff", "sinter", "sintercard",
    "sismember", "smembers", "smismember", "sort_ro", "srandmember", "sscan", "strlen", "substr",
    "sunion", "touch", "ttl", "type", "xinfo|consumers", "xinfo|groups", "xinfo|stream", "xlen",
    "xpending", "xrange", "xread", "xrevrange", "zcard", "zcount", "zdiff", "zinter", "zintercard",
    "zlexcount", "zmscore", "zrandmember", "zrange", "zrangebylex", "zrangebyscore", "zrank",
    "zrevrange", "zrevrangebylex", "zrevrangebyscore", "zrevrank", "zscan", "zscore", "zunion",
};

static int cmp_name(const void *key, const void *elem)
{
    return strcmp((const char *)key, *(const char *const *)elem);
}

const char *cmdclass_str(enum cmd_class c)
{
    return c == CMD_WRITE ? "write" : c == CMD_READ ? "read" : "other";
}

enum cmd_class cmdclass_builtin(const char *cmd)
{
    if (bsearch(cmd, builtin_write, sizeof builtin_write / sizeof *builtin_write, sizeof *builtin_write, cmp_name))
        return CMD_WRITE;
    if (bsearch(cmd, builtin_read, sizeof builtin_read / sizeof *builtin_read, sizeof *builtin_read, cmp_name))
        return CMD_READ;
    return CMD_OTHER;
}

struct entry {
    char *name;
    enum cmd_class cls; /* CMD_UNKNOWN: asked, no answer yet */
};

struct cmdclass_map {
    struct entry *v;
    size_t n, cap;
};

struct cmdclass_map *cmdclass_map_new(void) { return xcalloc(1, sizeof(struct cmdclass_map)); }

void cmdclass_map_free(struct cmdclass_map *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->v[i].name);
    free(m->v);
    free(m);
}

/* Where cmd is, or would go, in the map's sorted array. */
static size_t lower_bound(const struct cmdclass_map *m, const char *cmd)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(m->v[mid].name, cmd) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct entry *find(const struct cmdclass_map *m, const char *cmd)
{
    size_t i = m ? lower_bound(m, cmd) : 0;
    return m && i < m->n && strcmp(m->v[i].name, cmd) == 0 ? &m->v[i] : NULL;
}

/* cmd's entry, added (asked, no answer yet) when new; NULL when new and the
 * map is full. The memmove is at most CMDCLASS_MAP_MAX entries (64 KB). */
static struct entry *insert(struct cmdclass_map *m, const char *cmd)
{
    size_t i = lower_bound(m, cmd);
    if (i < m->n && strcmp(m->v[i].name, cmd) == 0)
        return &m->v[i];
    if (m->n >= CMDCLASS_MAP_MAX)
        return NULL;
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 32;
        m->v = xrealloc(m->v, m->cap * sizeof *m->v);
    }
    memmove(m->v + i + 1, m->v + i, (m->n - i) * sizeof *m->v);
    m->v[i] = (struct entry){xstrdup(cmd), CMD_UNKNOWN};
    m->n++;
    return &m->v[i];
}

enum cmd_class cmdclass_map_get(const struct cmdclass_map *m, const char *cmd)
{
    const struct entry *e = find(m, cmd);
    return e ? e->cls : CMD_UNKNOWN;
}

enum cmd_class cmdclass_classify(const struct cmdclass_map *m, const char *cmd)
{
    enum cmd_class c = cmdclass_map_get(m, cmd);
    return c != CMD_UNKNOWN ? c : cmdclass_builtin(cmd);
}

int cmdclass_map_mark_asked(struct cmdclass_map *m, const char *cmd) { return insert(m, cmd) ? 0 : -1; }

int cmdclass_map_known(const struct cmdclass_map *m, const char *cmd) { return find(m, cmd) != NULL; }

size_t cmdclass_map_learn(struct cmdclass_map *m, const char *const *names, size_t n, const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return 0;
    size_t learned = 0;
    for (size_t i = 0; i < r->elements && i < n; i++) {
        const redisReply *c = r->element[i];
        if (!c || c->type != REDIS_REPLY_ARRAY || c->elements < 3)
            continue;
        const redisReply *flags = c->element[2];
        if (!flags || flags->type != REDIS_REPLY_ARRAY)
            continue;
        enum cmd_class cls = CMD_OTHER;
        for (size_t k = 0; k < flags->elements; k++) {
            const redisReply *f = flags->element[k];
            if (!f || (f->type != REDIS_REPLY_STATUS && f->type != REDIS_REPLY_STRING) || !f->str)
                continue;
            if (strcasecmp(f->str, "write") == 0)
                cls = CMD_WRITE;
            else if (strcasecmp(f->str, "readonly") == 0 && cls != CMD_WRITE)
                cls = CMD_READ;
        }
        struct entry *e = insert(m, names[i]); /* asked, so there unless the caller skipped that */
        if (!e)
            continue;
        e->cls = cls;
        learned++;
    }
    return learned;
}
