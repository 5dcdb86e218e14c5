/* test_discover.c - discovery's pure parts: CLUSTER SHARDS, CLUSTER NODES
 * and SENTINEL replies captured from real Redis 7.0.15 servers (a 6-node
 * cluster after a manual failover and with a killed replica, a Sentinel
 * watching a master and a replica), the name template, the fleet shard
 * hash, and the "discovery"/"shard" configuration sections. */
#include <check.h>

#include "testutil.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "conn.h"
#include "discover.h"

/* The one reply in len bytes of RESP (they may hold NULs), parsed by the
 * hiredis reader. */
static redisReply *reply_of(const char *resp, size_t len)
{
    redisReader *r = resp_reader_new();
    ck_assert_int_eq(redisReaderFeed(r, resp, len), REDIS_OK);
    void *reply = NULL;
    ck_assert_int_eq(redisReaderGetReply(r, &reply), REDIS_OK);
    ck_assert_ptr_nonnull(reply);
    resp_reader_free(r);
    return reply;
}

/* The one reply in fixture name. */
static redisReply *load_reply(const char *name)
{
    size_t len;
    char *raw = read_fixture(name, &len);
    redisReply *reply = reply_of(raw, len);
    free(raw);
    return reply;
}

static const struct disc_node *find(const struct disc_nodes *ns, uint16_t port)
{
    for (size_t i = 0; i < ns->n; i++)
        if (ns->v[i].port == port)
            return &ns->v[i];
    return NULL;
}

/* Three shards of a master and a replica each: every replica's shard is
 * its master's node id; masters name their own. */
static void check_pairs(const struct disc_nodes *ns)
{
    size_t masters = 0;
    for (size_t i = 0; i < ns->n; i++) {
        const struct disc_node *n = &ns->v[i];
        ck_assert_str_eq(n->host, "127.0.0.1");
        if (n->master) {
            masters++;
            ck_assert_str_eq(n->shard, n->id);
        }
        size_t same = 0;
        for (size_t k = 0; k < ns->n; k++)
            same += strcmp(ns->v[k].shard, n->shard) == 0;
        ck_assert_uint_eq(same, 2);
    }
    ck_assert_uint_eq(masters, 3);
}

START_TEST(cluster_shards_after_failover)
{
    redisReply *r = load_reply("discovery/cluster-shards-7.0.15-failover.resp");
    struct disc_nodes ns = {0};
    char err[200];
    ck_assert_int_eq(discover_parse_shards(r, false, &ns, err, sizeof err), 0);
    ck_assert_uint_eq(ns.n, 6);
    check_pairs(&ns);
    /* 30004 was promoted over 30001 */
    ck_assert(find(&ns, 30004)->master);
    ck_assert(!find(&ns, 30001)->master);
    ck_assert_str_eq(find(&ns, 30001)->shard, find(&ns, 30004)->id);
    for (size_t i = 0; i < ns.n; i++)
        ck_assert(!ns.v[i].down);
    disc_nodes_free(&ns);
    /* asked for TLS ports, a plain cluster has none: no node to poll */
    ck_assert_int_eq(discover_parse_shards(r, true, &ns, err, sizeof err), 0);
    ck_assert_uint_eq(ns.n, 0);
    freeReplyObject(r);
}
END_TEST

START_TEST(cluster_nodes_agree_with_shards)
{
    const char *const pairs[][2] = {
        {"discovery/cluster-shards-7.0.15-failover.resp", "discovery/cluster-nodes-7.0.15-failover.resp"},
        {"discovery/cluster-shards-7.0.15-failed-node.resp", "discovery/cluster-nodes-7.0.15-failed-node.resp"},
    };
    for (size_t p = 0; p < 2; p++) {
        redisReply *rs = load_reply(pairs[p][0]), *rn = load_reply(pairs[p][1]);
        ck_assert_int_eq(rn->type, REDIS_REPLY_STRING);
        struct disc_nodes a = {0}, b = {0};
        char err[200];
        ck_assert_int_eq(discover_parse_shards(rs, false, &a, err, sizeof err), 0);
        ck_assert_msg(discover_parse_nodes(rn->str, rn->len, &b, err, sizeof err) == 0, "%s", err);
        ck_assert_uint_eq(a.n, 6);
        ck_assert_uint_eq(b.n, 6);
        check_pairs(&b);
        for (size_t i = 0; i < a.n; i++) {
            const struct disc_node *x = &a.v[i], *y = find(&b, x->port);
            ck_assert_ptr_nonnull(y);
            ck_assert_str_eq(x->id, y->id);
            ck_assert_str_eq(x->shard, y->shard);
            ck_assert_int_eq(x->master, y->master);
            ck_assert_int_eq(x->down, y->down);
        }
        disc_nodes_free(&a);
        disc_nodes_free(&b);
        freeReplyObject(rs);
        freeReplyObject(rn);
    }
}
END_TEST

START_TEST(cluster_failed_node)
{
    redisReply *r = load_reply("discovery/cluster-shards-7.0.15-failed-node.resp");
    struct disc_nodes ns = {0};
    char err[200];
    ck_assert_int_eq(discover_parse_shards(r, false, &ns, err, sizeof err), 0);
    size_t down = 0;
    for (size_t i = 0; i < ns.n; i++)
        if (ns.v[i].down) {
            down++;
            ck_assert_uint_eq(ns.v[i].port, 30006); /* the killed replica */
            ck_assert_str_eq(ns.v[i].flag, "fail");
            ck_assert(!ns.v[i].master);
        }
    ck_assert_uint_eq(down, 1);
    disc_nodes_free(&ns);
    freeReplyObject(r);
}
END_TEST

START_TEST(cluster_nodes_flags_and_garbage)
{
    const char text[] =
        "aaaa 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-100\n"
        "bbbb 10.0.0.2:7001@17001 slave,fail? aaaa 0 0 1 connected\r\n"
        "cccc [::1]:7002@17002 master,handshake - 0 0 0 connected\n"
        "dddd :0@0 master,noaddr - 0 0 0 disconnected\n"
        "eeee ::1:7003@17003,host.example slave aaaa 0 0 1 connected\n";
    struct disc_nodes ns = {0};
    char err[200];
    ck_assert_int_eq(discover_parse_nodes(text, sizeof text - 1, &ns, err, sizeof err), 0);
    ck_assert_uint_eq(ns.n, 4); /* noaddr left out */
    ck_assert_str_eq(find(&ns, 7001)->flag, "pfail");
    ck_assert(!find(&ns, 7001)->down);
    ck_assert_str_eq(find(&ns, 7001)->shard, "aaaa");
    ck_assert_str_eq(find(&ns, 7002)->flag, "handshake");
    ck_assert_str_eq(find(&ns, 7003)->host, "::1");
    disc_nodes_free(&ns);
    const char bad[] = "aaaa 10.0.0.1:7000@17000 master\n";
    ck_assert_int_eq(discover_parse_nodes(bad, sizeof bad - 1, &ns, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "line 1"));
    disc_nodes_free(&ns);
    /* a reply of the wrong shape */
    redisReply *r = load_reply("discovery/not-cluster-7.0.15.resp");
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    ck_assert_ptr_nonnull(strstr(r->str, "cluster support disabled"));
    ck_assert_int_eq(discover_parse_shards(r, false, &ns, err, sizeof err), -1);
    freeReplyObject(r);
}
END_TEST

START_TEST(sentinel_replies)
{
    redisReply *rm = load_reply("discovery/sentinel-masters-7.0.15.resp");
    struct disc_masters ms = {0};
    char err[200];
    ck_assert_int_eq(discover_parse_sentinel_masters(rm, &ms, err, sizeof err), 0);
    ck_assert_uint_eq(ms.n, 1);
    ck_assert_str_eq(ms.v[0].name, "mymaster");
    ck_assert_str_eq(ms.v[0].host, "127.0.0.1");
    ck_assert_uint_eq(ms.v[0].port, 31001);
    ck_assert(!ms.v[0].down);
    redisReply *rr = load_reply("discovery/sentinel-replicas-7.0.15.resp");
    struct disc_nodes ns = {0};
    ck_assert_int_eq(discover_parse_sentinel_replicas(rr, "mymaster", &ns, err, sizeof err), 0);
    ck_assert_uint_eq(ns.n, 1);
    ck_assert_uint_eq(ns.v[0].port, 31002);
    ck_assert(!ns.v[0].master);
    ck_assert_str_eq(ns.v[0].shard, "mymaster");
    disc_nodes_free(&ns);
    /* errors as a Sentinel and a plain Redis answer them */
    redisReply *ru = load_reply("discovery/sentinel-replicas-unknown-7.0.15.resp");
    ck_assert_int_eq(discover_parse_sentinel_replicas(ru, "nosuch", &ns, err, sizeof err), -1);
    redisReply *rn = load_reply("discovery/not-sentinel-7.0.15.resp");
    ck_assert_int_eq(discover_parse_sentinel_masters(rn, &ms, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "not an array"));
    /* a cluster reply is not a list of masters */
    redisReply *rc = load_reply("discovery/cluster-shards-7.0.15-failover.resp");
    ck_assert_int_eq(discover_parse_sentinel_masters(rc, &ms, err, sizeof err), -1);
    disc_masters_free(&ms);
    freeReplyObject(rm);
    freeReplyObject(rr);
    freeReplyObject(ru);
    freeReplyObject(rn);
    freeReplyObject(rc);
}
END_TEST

/* A hostile Sentinel: an empty ip, or one with a NUL inside (C would read
 * "10.0.0.1\0evil" as 10.0.0.1), is no address; the entry is refused with
 * its reason (fuzz_discover found the empty one getting through). */
START_TEST(sentinel_bad_addresses)
{
    static const char empty_ip[] = "*1\r\n*4\r\n$2\r\nip\r\n$0\r\n\r\n$4\r\nport\r\n$4\r\n6379\r\n";
    static const char nul_ip[] = "*1\r\n*4\r\n$2\r\nip\r\n$10\r\n10.0.0.1\0x\r\n$4\r\nport\r\n$4\r\n6379\r\n";
    static const char good_ip[] = "*1\r\n*4\r\n$2\r\nip\r\n$8\r\n10.0.0.1\r\n$4\r\nport\r\n$4\r\n6379\r\n";
    static const char empty_master[] = "*1\r\n*6\r\n$4\r\nname\r\n$1\r\nm\r\n$2\r\nip\r\n$0\r\n\r\n"
                                       "$4\r\nport\r\n$4\r\n6379\r\n";
    char err[200];
    struct disc_nodes ns = {0};
    struct disc_masters ms = {0};
    redisReply *r = reply_of(empty_ip, sizeof empty_ip - 1);
    ck_assert_int_eq(discover_parse_sentinel_replicas(r, "m", &ns, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "entry 0 lacks ip or port"));
    freeReplyObject(r);
    r = reply_of(nul_ip, sizeof nul_ip - 1);
    ck_assert_int_eq(discover_parse_sentinel_replicas(r, "m", &ns, err, sizeof err), -1);
    freeReplyObject(r);
    ck_assert_uint_eq(ns.n, 0);
    r = reply_of(good_ip, sizeof good_ip - 1);
    ck_assert_int_eq(discover_parse_sentinel_replicas(r, "m", &ns, err, sizeof err), 0);
    ck_assert_uint_eq(ns.n, 1);
    ck_assert_str_eq(ns.v[0].host, "10.0.0.1");
    freeReplyObject(r);
    disc_nodes_free(&ns);
    r = reply_of(empty_master, sizeof empty_master - 1);
    ck_assert_int_eq(discover_parse_sentinel_masters(r, &ms, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "entry 0 lacks name, ip or port"));
    ck_assert_uint_eq(ms.n, 0);
    freeReplyObject(r);
}
END_TEST

/* A CLUSTER SHARDS node of key/value pairs, as RESP text. */
static void shards_node(struct buf *b, const char *id, const char *endpoint, const char *health)
{
    const char *kv[] = {"id", id, "port", "7000", "endpoint", endpoint, "role", "master", "health", health};
    buf_printf(b, "*%d\r\n", 10);
    for (int i = 0; i < 10; i++)
        buf_printf(b, "$%zu\r\n%s\r\n", strlen(kv[i]), kv[i]);
}

/* What a hostile topology chooses is no label and no address of its own
 * making: a health outside the known words becomes "unknown" (it went into
 * /metrics as written: a forged series), a shard id past 128 bytes or not
 * UTF-8 and an endpoint that is not an IP address or host name ("admin@..."
 * chose the user the source's password went with) leave the node out,
 * counted, with the first one's reason. */
START_TEST(hostile_topology_contents)
{
    char longid[400];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    struct { const char *id, *endpoint, *health; } nodes[] = {
        {"s1", "10.0.0.1", "x\"} 1\nredis_up{target=\"forged\"} 1\n#"},
        {"s2", "10.0.0.2", "loading"},
        {"s3", "admin@10.0.0.3", "online"},
        {longid, "10.0.0.4", "online"},
        {"s\xff", "10.0.0.5", "online"},
        {"s6", "::ffff:10.0.0.6", "failed"},
        {"s7", "a b", "online"},
    };
    size_t n = sizeof nodes / sizeof nodes[0];
    struct buf b = BUF_INIT;
    buf_printf(&b, "*%zu\r\n", n);
    for (size_t i = 0; i < n; i++) {
        buf_puts(&b, "*2\r\n$5\r\nnodes\r\n*1\r\n");
        shards_node(&b, nodes[i].id, nodes[i].endpoint, nodes[i].health);
    }
    redisReply *r = reply_of(b.p, b.len);
    struct disc_nodes ns = {0};
    char err[200];
    ck_assert_int_eq(discover_parse_shards(r, false, &ns, err, sizeof err), 0);
    ck_assert_uint_eq(ns.n, 3);
    ck_assert_str_eq(ns.v[0].flag, "unknown");
    ck_assert(!ns.v[0].down);
    ck_assert_str_eq(ns.v[1].flag, "loading");
    ck_assert_str_eq(ns.v[2].flag, "fail");
    ck_assert(ns.v[2].down);
    ck_assert_uint_eq(ns.skipped.n, 4);
    ck_assert_msg(strstr(ns.skipped.first, "\"admin@10.0.0.3\" is not an IP address or host name"), "%s",
                  ns.skipped.first);
    disc_nodes_free(&ns);
    ck_assert_uint_eq(ns.skipped.n, 0);
    freeReplyObject(r);
    buf_free(&b);
    /* CLUSTER NODES: the same rules */
    const char text[] = "aaaa u%2f10.0.0.1:7000@17000 master - 0 0 1 connected\n"
                        "bbbb [::1]:7001@17001 master - 0 0 1 connected\n"
                        "cccc 10.0.0.3:7002@17002 slave \x01\x02 0 0 1 connected\n";
    ck_assert_int_eq(discover_parse_nodes(text, sizeof text - 1, &ns, err, sizeof err), 0);
    ck_assert_uint_eq(ns.n, 1);
    ck_assert_str_eq(ns.v[0].host, "::1");
    ck_assert_uint_eq(ns.skipped.n, 2);
    disc_nodes_free(&ns);
    /* Sentinel: a master name is a label value, an ip an address */
    static const char masters[] = "*2\r\n*6\r\n$4\r\nname\r\n$3\r\nm\nx\r\n$2\r\nip\r\n$8\r\n10.0.0.1\r\n$4\r\nport\r\n"
                                  "$4\r\n6379\r\n*6\r\n$4\r\nname\r\n$1\r\nm\r\n$2\r\nip\r\n$3\r\na/b\r\n$4\r\nport\r\n"
                                  "$4\r\n6379\r\n";
    struct disc_masters ms = {0};
    r = reply_of(masters, sizeof masters - 1);
    ck_assert_int_eq(discover_parse_sentinel_masters(r, &ms, err, sizeof err), 0);
    ck_assert_uint_eq(ms.n, 0);
    ck_assert_uint_eq(ms.skipped.n, 2);
    ck_assert_ptr_nonnull(strstr(ms.skipped.first, "master name is not a label value"));
    disc_masters_free(&ms);
    freeReplyObject(r);
    ck_assert(disc_host_ok("host-1.example_x"));
    ck_assert(disc_host_ok("fe80::1"));
    ck_assert(!disc_host_ok("fe80::1%eth0"));
    ck_assert(!disc_host_ok("h:1"));
    ck_assert(!disc_host_ok(""));
}
END_TEST

/* One server, however a static instance and a topology write it. */
START_TEST(address_keys)
{
    static const char *const same[][2] = {
        {"10.0.0.1", "::ffff:10.0.0.1"}, {"::1", "0::1"}, {"2001:db8::1", "2001:DB8:0::1"},
        {"Redis-1.Example.COM.", "redis-1.example.com"}, {"redis-1.", "REDIS-1"},
        {"FE80:0::1%eth0", "fe80::1%eth0"}};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        char *a = disc_addr_key(same[i][0], 6379), *b = disc_addr_key(same[i][1], 6379);
        ck_assert_msg(strcmp(a, b) == 0, "%s and %s: %s vs %s", same[i][0], same[i][1], a, b);
        free(a);
        free(b);
    }
    static const char *const other[][2] = {{"redis-1", "redis-2"}, {"redis-1.example.com", "redis-1"},
                                           {"10.0.0.1", "10.0.0.2"}, {"::1", "::2"},
                                           {"fe80::1%eth0", "fe80::1%ETH0"}, {"fe80::1%eth0", "fe80::1"}};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        char *a = disc_addr_key(other[i][0], 6379), *b = disc_addr_key(other[i][1], 6379);
        ck_assert_msg(strcmp(a, b) != 0, "%s and %s", other[i][0], other[i][1]);
        free(a);
        free(b);
    }
    char *a = disc_addr_key("redis-1", 6379), *b = disc_addr_key("redis-1", 6380);
    ck_assert_str_eq(a, "redis-1:6379");
    ck_assert_str_ne(a, b);
    free(a);
    free(b);
}
END_TEST

START_TEST(name_template_and_shard_hash)
{
    struct buf b = BUF_INIT;
    char err[200];
    ck_assert_int_eq(discover_expand_name("{prefix}-{host}-{port}", "main", "src", "10.0.0.1", 7000, &b, err,
                                          sizeof err), 0);
    ck_assert_str_eq(b.p, "main-10.0.0.1-7000");
    buf_reset(&b);
    ck_assert_int_eq(discover_expand_name("{source}.{host}.{port}", "p", "src", "h", 1, &b, err, sizeof err), 0);
    ck_assert_str_eq(b.p, "src.h.1");
    ck_assert_int_eq(discover_expand_name("{prefix}-{port}", "p", "s", "h", 1, &b, err, sizeof err), -1);
    ck_assert_int_eq(discover_expand_name("{host}-{port}-{id}", "p", "s", "h", 1, &b, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "{id}"));
    ck_assert_int_eq(discover_expand_name("{host}-{port", "p", "s", "h", 1, &b, err, sizeof err), -1);
    buf_free(&b);
    /* FNV-1a 64 reference vectors */
    ck_assert_uint_eq(discover_name_hash(""), 0xcbf29ce484222325ull);
    ck_assert_uint_eq(discover_name_hash("a"), 0xaf63dc4c8601ec8cull);
    ck_assert_uint_eq(discover_name_hash("foobar"), 0x85944171f73967e8ull);
    /* every name in exactly one shard */
    char name[32];
    size_t per[3] = {0, 0, 0};
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "cache-%d", i);
        int owners = 0;
        for (unsigned k = 0; k < 3; k++)
            if (discover_shard_owns(name, k, 3)) {
                owners++;
                per[k]++;
            }
        ck_assert_int_eq(owners, 1);
        ck_assert(discover_shard_owns(name, 0, 0));
    }
    for (int k = 0; k < 3; k++)
        ck_assert_msg(per[k] > 60, "shard %d has %zu of 300", k, per[k]);
}
END_TEST

static struct config *parse(const char *json, struct config_errors *e)
{
    memset(e, 0, sizeof *e);
    return config_parse(json, strlen(json), "test.json", e);
}

START_TEST(config_sections)
{
    const char *json =
        "{\"defaults\": {\"interval\": \"3s\", \"labels\": {\"env\": \"prod\"}},\n"
        " \"shard\": {\"index\": 1, \"count\": 4},\n"
        " \"discovery\": [\n"
        "  {\"type\": \"cluster\", \"name\": \"main\", \"seeds\": [\"10.0.0.1:7000\", \"redis://10.0.0.2:7000\"],\n"
        "   \"username\": \"mon\", \"password\": \"pw\", \"timeout\": \"1s\",\n"
        "   \"defaults\": {\"interval\": \"5s\", \"labels\": {\"team\": \"a\"}}},\n"
        "  {\"type\": \"sentinel\", \"name\": \"sen\", \"sentinels\": [\"10.0.0.9:26379\"], \"masters\": [\"m1\"],\n"
        "   \"password\": \"sentinel-pw\", \"refresh\": \"10s\", \"remove_after\": \"1m\", \"prefix\": \"s\",\n"
        "   \"name_template\": \"{prefix}.{host}.{port}\", \"defaults\": {\"password\": \"redis-pw\"}}\n"
        " ]}\n";
    struct config_errors e;
    struct config *c = parse(json, &e);
    ck_assert_msg(c != NULL, "%s", e.text.p);
    ck_assert_uint_eq(c->n_instances, 0); /* discovery finds them */
    const struct discovery_cfg *d = c->discovery;
    ck_assert_uint_eq(d->shard_index, 1);
    ck_assert_uint_eq(d->shard_count, 4);
    ck_assert_uint_eq(d->n_sources, 2);
    const struct disc_source_cfg *cl = &d->sources[0], *se = &d->sources[1];
    ck_assert_int_eq(cl->kind, DISC_CLUSTER);
    ck_assert_uint_eq(cl->n_seeds, 2);
    ck_assert_uint_eq(cl->seeds[1].port, 7000);
    ck_assert_str_eq(cl->seeds[0].password, "pw");
    ck_assert_uint_eq(cl->seeds[0].timeout_ms, 1000);
    ck_assert_uint_eq(cl->refresh_ms, 30000);
    ck_assert_uint_eq(cl->remove_after_ms, 300000);
    ck_assert_str_eq(cl->prefix, "main");
    ck_assert_str_eq(cl->name_template, "{prefix}-{host}-{port}");
    /* a cluster's nodes take the source's credentials, then its defaults */
    ck_assert_str_eq(cl->tmpl.password, "pw");
    ck_assert_str_eq(cl->tmpl.username, "mon");
    ck_assert_uint_eq(cl->tmpl.interval_ms, 5000);
    ck_assert_uint_eq(cl->tmpl.n_labels, 2);
    /* a Sentinel's credentials are its own */
    ck_assert_int_eq(se->kind, DISC_SENTINEL);
    ck_assert_str_eq(se->seeds[0].password, "sentinel-pw");
    ck_assert_str_eq(se->tmpl.password, "redis-pw");
    ck_assert_uint_eq(se->tmpl.interval_ms, 3000);
    ck_assert_uint_eq(se->n_masters, 1);
    ck_assert_str_eq(se->masters[0], "m1");
    ck_assert_uint_eq(se->remove_after_ms, 60000);
    config_free(c);
    config_errors_free(&e);
}
END_TEST

START_TEST(config_errors_located)
{
    const char *json =
        "{\"instances\": [],\n"
        " \"shard\": {\"index\": 2, \"count\": 2},\n"
        " \"discovery\": [\n"
        "  {\"type\": \"clustr\", \"name\": \"a\", \"seeds\": [\"127.0.0.1:1\"]},\n"
        "  {\"type\": \"cluster\", \"name\": \"b\", \"sentinels\": [\"x:1\"], \"interval\": \"1s\"},\n"
        "  {\"type\": \"sentinel\", \"name\": \"c\", \"sentinels\": [\"h:1\"], \"name_template\": \"{nope}\"},\n"
        "  {\"type\": \"cluster\", \"name\": \"d\", \"seeds\": [\"h:1\"], \"refresh\": \"1s\", \"timeout\": \"2s\",\n"
        "   \"defaults\": {\"labels\": {\"shard\": \"x\"}}},\n"
        "  {\"type\": \"cluster\", \"name\": \"d\", \"seeds\": [\"http://h:1\"]}\n"
        " ]}\n";
    struct config_errors e;
    struct config *c = parse(json, &e);
    ck_assert_ptr_null(c);
    const char *const want[] = {
        "shard.index (line 2, column 21): index 2 must be below count 2",
        "discovery[0].type (line 4, column 12): unknown source type \"clustr\"",
        "discovery[1].sentinels (line 5, column 36): a cluster source takes \"seeds\"",
        "discovery[1].interval (line 5, column 58): unknown key \"interval\"",
        "discovery[2].name_template (line 6, column 76): unknown field \"{nope}\"",
        "discovery[3].refresh (line 7, column 65): refresh (1000ms) must be longer than the source's timeout",
        "discovery[3].defaults (line 8, column 16): label \"shard\" is set by discovery",
        "discovery[4].seeds[0] (line 9, column 46): unknown scheme \"http\"",
        "discovery[4].name (line 9, column 31): duplicate source name \"d\"",
        NULL};
    for (const char *const *w = want; *w; w++)
        ck_assert_msg(strstr(e.text.p, *w) != NULL, "missing \"%s\" in:\n%s", *w, e.text.p);
    ck_assert_msg(e.count == 9, "%zu errors:\n%s", e.count, e.text.p);
    config_errors_free(&e);
    /* no instances and no source: still an error */
    c = parse("{\"instances\": [], \"shard\": {\"index\": 0, \"count\": 2}}", &e);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(e.text.p, "configure at least one instance"));
    config_errors_free(&e);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("discover");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, cluster_shards_after_failover);
    tcase_add_test(tc, cluster_nodes_agree_with_shards);
    tcase_add_test(tc, cluster_failed_node);
    tcase_add_test(tc, cluster_nodes_flags_and_garbage);
    tcase_add_test(tc, sentinel_replies);
    tcase_add_test(tc, sentinel_bad_addresses);
    tcase_add_test(tc, hostile_topology_contents);
    tcase_add_test(tc, address_keys);
    tcase_add_test(tc, name_template_and_shard_hash);
    tcase_add_test(tc, config_sections);
    tcase_add_test(tc, config_errors_located);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
