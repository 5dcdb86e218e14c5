/* fuzz_discover.c - what a hostile or broken Cluster node or Sentinel can
 * say about the topology. The bytes after the first are a RESP stream read
 * as the connection layer reads it; each reply goes to every parser that
 * takes its type (CLUSTER NODES text; CLUSTER SHARDS, SENTINEL MASTERS and
 * SENTINEL REPLICAS arrays), and the same bytes are also read as CLUSTER
 * NODES text directly. Whatever they parse to must be whole: every node an
 * address and a shard, every cluster node an id, and a name the default
 * template can be expanded into. */
#include <stdint.h>

#include "fuzz.h"
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conn.h"
#include "discover.h"

static void check_nodes(struct disc_nodes *ns, bool cluster)
{
    for (size_t i = 0; i < ns->n; i++) {
        const struct disc_node *n = &ns->v[i];
        if (!n->host || !*n->host || !n->port || !n->shard || (cluster && !n->id) || (n->down && !n->flag))
            abort();
        struct buf b = BUF_INIT;
        char err[200];
        if (discover_expand_name("{prefix}-{host}-{port}", "p", "s", n->host, n->port, &b, err, sizeof err) != 0 ||
            !b.p || !strstr(b.p, n->host))
            abort();
        buf_free(&b);
    }
    disc_nodes_free(ns);
}

static bool on_reply(void *arg, redisReply *r)
{
    (void)arg;
    char err[200] = "";
    struct disc_nodes ns = {0};
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
        if (discover_parse_nodes(r->str, r->len, &ns, err, sizeof err) != 0 && !err[0])
            abort();
        check_nodes(&ns, true);
        return true;
    }
    for (int tls = 0; tls < 2; tls++) {
        err[0] = '\0';
        if (discover_parse_shards(r, tls, &ns, err, sizeof err) != 0 && !err[0])
            abort();
        check_nodes(&ns, true);
    }
    struct disc_masters ms = {0};
    err[0] = '\0';
    if (discover_parse_sentinel_masters(r, &ms, err, sizeof err) != 0 && !err[0])
        abort();
    for (size_t i = 0; i < ms.n; i++)
        if (!ms.v[i].name || !ms.v[i].host || !ms.v[i].port || (ms.v[i].down && !ms.v[i].flag))
            abort();
    disc_masters_free(&ms);
    err[0] = '\0';
    if (discover_parse_sentinel_replicas(r, "m", &ns, err, sizeof err) != 0 && !err[0])
        abort();
    check_nodes(&ns, false);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char err[200];
    err[0] = '\0';
    struct disc_nodes ns = {0};
    if (discover_parse_nodes((const char *)data + 1, size - 1, &ns, err, sizeof err) != 0 && !err[0])
        abort();
    check_nodes(&ns, true);
    /* the first byte picks how the stream is cut into reads */
    size_t step = (size_t)data[0] % 7 + 1;
    redisReader *r = resp_reader_new();
    for (size_t off = 1; off < size;) {
        size_t n = data[0] & 0x80 ? size - off : step;
        if (n > size - off)
            n = size - off;
        if (resp_feed(r, (const char *)data + off, n, 1 << 20, on_reply, NULL, err, sizeof err) != OUTCOME_OK)
            break;
        off += n;
    }
    resp_reader_free(r);
    return 0;
}
