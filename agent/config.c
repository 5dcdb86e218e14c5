/*
 * config.c - JSON configuration: parse, merge defaults into instances, and
 * validate everything, collecting every problem with its JSON path and
 * line:column. Like relayd's reconfigure(), nothing is applied unless the
 * whole file is good. The option tables below are the single source for
 * types, defaults and ranges.
 */
#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alerts.h"
#include "confparse.h"
#include "advise.h"
#include "discover.h"
#include "jsonloc.h"
#include "log.h"
#include "prom.h"
#include "util.h"

/* ---- option tables -------------------------------------------------- */

/* Keys an instance (and "defaults", except name and address) accepts. */
static const struct conf_opt instance_opts[] = {
    {"name", OT_STRING, 0, 0},
    {"address", OT_STRING, 0, 0},
    {"username", OT_STRING, 0, 0},
    {"password_file", OT_STRING, 0, 0},
    {"password_env", OT_STRING, 0, 0},
    {"password", OT_STRING, 0, 0},
    {"interval", OT_DURATION, 100, 3600000},
    {"timeout", OT_DURATION, 10, 3600000},
    {"max_reply_bytes", OT_SIZE, 65536, 64 << 20},
    {"config_interval", OT_DURATION, 0, 86400000},
    {"config_command", OT_STRING, 0, 0},
    {"latency_interval", OT_DURATION, 0, 86400000},
    {"latencystats_interval", OT_DURATION, 0, 86400000},
    {"commandstats_interval", OT_DURATION, 0, 86400000},
    {"tls", OT_TLS, 0, 0},
    {"labels", OT_LABELS, 0, 0},
    {"max_nested_entries", OT_UINT, 10, 100000},
};

static const struct conf_opt tls_opts[] = {
    {"ca_file", OT_STRING, 0, 0},      {"cert_file", OT_STRING, 0, 0},
    {"key_file", OT_STRING, 0, 0},     {"server_name", OT_STRING, 0, 0},
    {"insecure_skip_verify", OT_BOOL, 0, 0},
};

static const struct conf_opt http_opts[] = {
    {"listen", OT_STRING, 0, 0},
    {"max_connections", OT_UINT, 1, 65536},
    {"max_connections_per_ip", OT_UINT, 1, 65536},
    {"idle_timeout", OT_DURATION, 100, 3600000},
    {"request_timeout", OT_DURATION, 1000, 300000},
    {"connection_memory_limit", OT_SIZE, 4096, 16 << 20},
    {"threads", OT_UINT, 1, 64},
    {"tls", OT_TLS, 0, 0},
    {"basic_auth_users", OT_LABELS, 0, 0},
    {"login_cache_ttl", OT_DURATION, 1000, 86400000},
    {"max_body_memory", OT_SIZE, 1 << 20, 1ull << 40},
};

static const struct conf_opt http_tls_opts[] = {
    {"cert_file", OT_STRING, 0, 0},
    {"key_file", OT_STRING, 0, 0},
    {"client_ca_file", OT_STRING, 0, 0},
    {"min_version", OT_STRING, 0, 0},
};

static const struct conf_opt top_opts[] = {
    {"listen", OT_STRING, 0, 0},     {"log_level", OT_STRING, 0, 0},
    {"http", OT_UINT, 0, 0},         {"defaults", OT_UINT, 0, 0},
    {"instances", OT_UINT, 0, 0},
    {"advice", OT_UINT, 0, 0},
    {"alerts", OT_UINT, 0, 0},
    {"discovery", OT_UINT, 0, 0},    {"shard", OT_UINT, 0, 0},
};

static bool file_readable(const char *path) { return access(path, R_OK) == 0; }

/* Warns when a secret file can be read by anyone on the host. */
static void warn_loose(const char *what, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & S_IROTH))
        log_warn("config", "%s \"%s\" is world-readable: make it readable by redpulse's user only (under the "
                 "packaged unit, a dynamic user, load it with LoadCredential=: see redpulse.service)", what, path);
}


/* ---- instances -------------------------------------------------------- */

/* Where each secret-ish setting came from, for messages after the merge. */
struct origins {
    const cJSON *password_file, *password_env, *password, *tls, *tls_files[3], *address, *name;
    const char *password_file_path, *password_env_path, *password_path, *tls_path;
    char tls_file_paths[3][256];
};

struct pending { /* one instance while being merged */
    struct instance_cfg cfg;
    char *password_file, *password_env, *password_inline;
    bool tls_set;
    struct origins o;
    const char *const *only; /* config_draft_apply: the keys to take; NULL: all */
};

/* Labels an instance may have from the file, those of "defaults" included:
 * every series of the instance carries them all (Prometheus' label_limit
 * is the same idea), and setting one searches those already set. Discovery
 * adds its few (role, cluster...) on top. */
#define MAX_LABELS 64

static struct label *labels_find(const struct instance_cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_labels; i++)
        if (strcmp(cfg->labels[i].name, name) == 0)
            return &cfg->labels[i];
    return NULL;
}

static void labels_set(struct instance_cfg *cfg, const char *name, const char *value)
{
    struct label *l = labels_find(cfg, name);
    if (l) {
        free(l->value);
        l->value = xstrdup(value);
        return;
    }
    cfg->labels = xrealloc(cfg->labels, (cfg->n_labels + 1) * sizeof *cfg->labels);
    cfg->labels[cfg->n_labels++] = (struct label){xstrdup(name), xstrdup(value)};
}

static void apply_tls(struct conf_ctx *c, const cJSON *obj, struct pending *p, const char *path)
{
    char sub[256];
    if (!cJSON_IsObject(obj)) {
        conf_err(c, obj, 0, path, "expected an object, got %s", conf_type_name(obj));
        return;
    }
    p->tls_set = true;
    for (const cJSON *ch = obj->child; ch; ch = ch->next) {
        conf_join_path(sub, sizeof sub, path, ch->string);
        const struct conf_opt *o = conf_find_opt(tls_opts, NELEM(tls_opts), ch->string);
        if (!o) {
            conf_err(c, ch, 1, sub, "unknown key \"%s\" (known: ca_file, cert_file, key_file, server_name, insecure_skip_verify)", ch->string);
            continue;
        }
        uint64_t u;
        struct tls_opts *t = &p->cfg.tls;
        char **dst = NULL;
        int fi = -1;
        if (strcmp(o->key, "ca_file") == 0)
            dst = &t->ca_file, fi = 0;
        else if (strcmp(o->key, "cert_file") == 0)
            dst = &t->cert_file, fi = 1;
        else if (strcmp(o->key, "key_file") == 0)
            dst = &t->key_file, fi = 2;
        else if (strcmp(o->key, "server_name") == 0)
            dst = &t->server_name;
        char *dummy = NULL;
        if (conf_take(c, o, ch, sub, dst ? dst : &dummy, &u, &t->insecure_skip_verify) == 0 && fi >= 0) {
            p->o.tls_files[fi] = ch;
            snprintf(p->o.tls_file_paths[fi], sizeof p->o.tls_file_paths[fi], "%s", sub);
        }
        free(dummy);
    }
    p->o.tls = obj;
}

static void apply_labels(struct conf_ctx *c, const cJSON *obj, struct pending *p, const char *path)
{
    char sub[256];
    if (!cJSON_IsObject(obj)) {
        conf_err(c, obj, 0, path, "expected an object of label names to string values, got %s",
               conf_type_name(obj));
        return;
    }
    for (const cJSON *ch = obj->child; ch; ch = ch->next) {
        conf_join_path(sub, sizeof sub, path, ch->string);
        if (!is_label_name(ch->string)) {
            conf_err(c, ch, 1, sub, "invalid label name \"%s\" (must match [a-zA-Z_][a-zA-Z0-9_]* and not start with \"__\")", ch->string);
            continue;
        }
        if (prom_label_reserved(ch->string)) { /* labels.def: the renderers' own names */
            conf_err(c, ch, 1, sub, "label name \"%s\" is reserved (redpulse or Prometheus sets it)", ch->string);
            continue;
        }
        if (!cJSON_IsString(ch)) {
            conf_err(c, ch, 0, sub, "label value must be a string, got %s", conf_type_name(ch));
            continue;
        }
        if (!utf8_valid(ch->valuestring)) {
            conf_err(c, ch, 0, sub, "label value is not valid UTF-8");
            continue;
        }
        if (p->cfg.n_labels >= MAX_LABELS && !labels_find(&p->cfg, ch->string)) {
            /* once: the rest of the object would only repeat it */
            conf_err(c, ch, 1, sub, "too many labels: at most %d an instance, those from \"defaults\" included",
                     MAX_LABELS);
            return;
        }
        labels_set(&p->cfg, ch->string, ch->valuestring);
    }
}

/* The slower cadences ("0s" or at least a second): where key goes in cfg,
 * or NULL when key is not one of them. */
static uint64_t *cadence_field(struct instance_cfg *cfg, const char *key)
{
    if (strcmp(key, "config_interval") == 0)
        return &cfg->config_interval_ms;
    if (strcmp(key, "latency_interval") == 0)
        return &cfg->latency_interval_ms;
    if (strcmp(key, "latencystats_interval") == 0)
        return &cfg->latencystats_interval_ms;
    if (strcmp(key, "commandstats_interval") == 0)
        return &cfg->commandstats_interval_ms;
    return NULL;
}

static bool in_list(const char *const *l, const char *s)
{
    for (; *l; l++)
        if (strcmp(*l, s) == 0)
            return true;
    return false;
}

/* Applies the keys of one JSON object (the "defaults" object, or one
 * instance) onto p. */
static void apply_instance_obj(struct conf_ctx *c, const cJSON *obj, struct pending *p,
                               const char *path, bool is_defaults)
{
    char sub[256];
    for (const cJSON *ch = obj->child; ch; ch = ch->next) {
        if (p->only && !in_list(p->only, ch->string))
            continue; /* the caller's key */
        conf_join_path(sub, sizeof sub, path, ch->string);
        const struct conf_opt *o = conf_find_opt(instance_opts, NELEM(instance_opts), ch->string);
        if (!o || (is_defaults && (strcmp(o->key, "name") == 0 || strcmp(o->key, "address") == 0))) {
            conf_err(c, ch, 1, sub, "unknown key \"%s\"%s", ch->string,
                   o ? " (only valid in an instance)" : "");
            continue;
        }
        struct instance_cfg *cfg = &p->cfg;
        uint64_t u = 0, *cadence;
        bool b;
        if (o->type == OT_TLS) {
            apply_tls(c, ch, p, sub);
        } else if (o->type == OT_LABELS) {
            apply_labels(c, ch, p, sub);
        } else if (strcmp(o->key, "interval") == 0) {
            if (conf_take(c, o, ch, sub, NULL, &u, &b) == 0)
                cfg->interval_ms = u;
        } else if (strcmp(o->key, "timeout") == 0) {
            if (conf_take(c, o, ch, sub, NULL, &u, &b) == 0)
                cfg->timeout_ms = u;
        } else if (strcmp(o->key, "max_reply_bytes") == 0) {
            if (conf_take(c, o, ch, sub, NULL, &u, &b) == 0)
                cfg->max_reply_bytes = (size_t)u;
        } else if (strcmp(o->key, "max_nested_entries") == 0) {
            if (conf_take(c, o, ch, sub, NULL, &u, &b) == 0)
                cfg->max_nested_entries = (size_t)u;
        } else if ((cadence = cadence_field(cfg, o->key)) != NULL) {
            if (conf_take(c, o, ch, sub, NULL, &u, &b) < 0)
                continue;
            if (u != 0 && u < 1000) {
                conf_err(c, ch, 0, sub, "\"%s\" is too short: \"0s\" %s, else at least \"1s\"", ch->valuestring,
                       cadence == &cfg->latencystats_interval_ms || cadence == &cfg->commandstats_interval_ms
                           ? "asks with every poll"
                           : "switches it off");
                continue;
            }
            *cadence = u;
        } else if (strcmp(o->key, "config_command") == 0) {
            if (conf_take(c, o, ch, sub, &cfg->config_command, &u, &b) < 0)
                continue;
            bool bad = !*cfg->config_command || strlen(cfg->config_command) > 64;
            for (const char *q = cfg->config_command; *q; q++)
                if ((unsigned char)*q <= 32 || *q == 0x7f)
                    bad = true;
            if (bad)
                conf_err(c, ch, 0, sub, "invalid command name \"%s\" (1 to 64 characters, no spaces)",
                       cfg->config_command);
        } else {
            char **dst = NULL;
            if (strcmp(o->key, "name") == 0)
                dst = &cfg->name, p->o.name = ch;
            else if (strcmp(o->key, "address") == 0)
                dst = &cfg->address, p->o.address = ch;
            else if (strcmp(o->key, "username") == 0)
                dst = &cfg->username;
            else if (strcmp(o->key, "password_file") == 0)
                dst = &p->password_file, p->o.password_file = ch;
            else if (strcmp(o->key, "password_env") == 0)
                dst = &p->password_env, p->o.password_env = ch;
            else
                dst = &p->password_inline, p->o.password = ch;
            conf_take(c, o, ch, sub, dst, &u, &b);
        }
    }
}

/* Read whole and checked rather than cut: a password past a fixed buffer
 * or a NUL became a different password, and the poll failed with
 * WRONGPASS with nothing pointing at the file. O_NONBLOCK: a FIFO is
 * opened without waiting for a writer, then refused by fstat. */
char *config_read_secret(const char *what, const char *path, struct buf *why)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        buf_printf(why, "cannot read %s \"%s\": %s", what, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        buf_printf(why, "cannot read %s \"%s\": %s", what, path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        buf_printf(why, "%s \"%s\" is %s, not a regular file", what, path,
                   S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO"
                   : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)               ? "a device"
                   : S_ISSOCK(st.st_mode)                                      ? "a socket"
                                                                               : "something else");
        close(fd);
        return NULL;
    }
    if (st.st_mode & S_IROTH)
        log_warn("config", "%s \"%s\" is world-readable: make it readable by redpulse's user only (under the "
                 "packaged unit, a dynamic user, load it with LoadCredential=: see redpulse.service)", what, path);
    /* room for the file's size and one byte more: a full buffer means
     * longer than the cap, or grown since fstat. Sized by the file, not by
     * the cap: every reload reads every secret again. */
    size_t cap = (st.st_size > CONFIG_MAX_SECRET_BYTES ? CONFIG_MAX_SECRET_BYTES : (size_t)st.st_size) + 1, n = 0;
    char *s = xmalloc(cap + 1);
    int err = 0;
    while (n < cap) {
        ssize_t r = read(fd, s + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = errno;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    const char *nul = memchr(s, '\0', n);
    if (err) {
        buf_printf(why, "cannot read %s \"%s\": %s", what, path, strerror(err));
        goto fail;
    }
    if (n > CONFIG_MAX_SECRET_BYTES) {
        buf_printf(why, "%s \"%s\" is too long (more than %u KiB)", what, path, CONFIG_MAX_SECRET_BYTES >> 10);
        goto fail;
    }
    if (n == cap) {
        buf_printf(why, "%s \"%s\" changed while it was read", what, path);
        goto fail;
    }
    if (nul) {
        buf_printf(why, "%s \"%s\" contains a NUL byte (at offset %zu)", what, path, (size_t)(nul - s));
        goto fail;
    }
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    if (n == 0) {
        buf_printf(why, "%s \"%s\" is empty", what, path);
        goto fail;
    }
    s[n] = '\0';
    char *out = xstrdup(s);
    explicit_bzero(s, cap + 1);
    free(s);
    return out;
fail:
    explicit_bzero(s, cap + 1);
    free(s);
    return NULL;
}

enum config_name_fault config_name_check(const char *s)
{
    if (!*s)
        return NAME_EMPTY;
    if (!utf8_valid(s))
        return NAME_NOT_UTF8;
    size_t chars = 0;
    for (const char *q = s; *q; q++) {
        if ((unsigned char)*q < 0x21 || *q == 0x7f || strchr("/?&#%", *q))
            return NAME_BAD_CHAR;
        chars += ((unsigned char)*q & 0xc0) != 0x80; /* continuation bytes are no new character */
    }
    return chars > CONFIG_NAME_MAX ? NAME_TOO_LONG : NAME_OK;
}

int config_parse_address(const char *addr, struct instance_cfg *cfg, struct buf *why)
{
    const char *rest;
    bool url = false;
    cfg->tls.enabled = false;
    if (strncmp(addr, "unix://", 7) == 0) {
        const char *path = addr + 7;
        if (path[0] != '/') {
            buf_printf(why, "unix socket path must be absolute: \"unix:///path/redis.sock\"");
            return -1;
        }
        if (strlen(path) > 107) {
            buf_printf(why, "unix socket path too long (%zu bytes, at most 107)", strlen(path));
            return -1;
        }
        cfg->kind = ADDR_UNIX;
        free(cfg->path);
        cfg->path = xstrdup(path);
        return 0;
    }
    if (strncmp(addr, "redis://", 8) == 0) {
        rest = addr + 8, url = true;
    } else if (strncmp(addr, "rediss://", 9) == 0) {
        rest = addr + 9, url = true;
        cfg->tls.enabled = true;
    } else {
        const char *scheme_end = strstr(addr, "://");
        if (scheme_end) {
            buf_printf(why, "unknown scheme \"%.*s\" (use redis://, rediss:// or unix://)",
                       (int)(scheme_end - addr > 20 ? 20 : scheme_end - addr), addr);
            return -1;
        }
        rest = addr;
    }
    char hostport[300];
    const char *slash = url ? strchr(rest, '/') : NULL;
    size_t hl = slash ? (size_t)(slash - rest) : strlen(rest);
    if (hl >= sizeof hostport) {
        buf_printf(why, "address too long");
        return -1;
    }
    memcpy(hostport, rest, hl);
    hostport[hl] = '\0';
    char *hp = hostport;
    char *at = strrchr(hp, '@');
    if (at) {
        if (!url) {
            buf_printf(why, "user@ is only valid in a redis:// or rediss:// URL");
            return -1;
        }
        *at = '\0';
        if (strchr(hp, ':')) {
            buf_printf(why, "passwords are not accepted in the address; use password_file or password_env");
            return -1;
        }
        if (*hp) {
            free(cfg->username);
            cfg->username = xstrdup(hp);
        }
        hp = at + 1;
    }
    char *host = hp, *port = NULL;
    if (*hp == '[') {
        char *close = strchr(hp, ']');
        if (!close) {
            buf_printf(why, "unterminated IPv6 literal");
            return -1;
        }
        *close = '\0';
        host = hp + 1;
        if (close[1] == ':')
            port = close + 2;
        else if (close[1]) {
            buf_printf(why, "unexpected text after IPv6 literal");
            return -1;
        }
    } else {
        char *colon = strrchr(hp, ':');
        if (colon) {
            if (strchr(hp, ':') != colon) {
                buf_printf(why, "IPv6 addresses must be written in brackets, e.g. \"[::1]:6379\"");
                return -1;
            }
            *colon = '\0';
            port = colon + 1;
        }
    }
    if (!*host) {
        buf_printf(why, "missing host");
        return -1;
    }
    for (const char *h = host; *h; h++)
        if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') ||
              *h == '.' || *h == '-' || *h == ':' || *h == '_' || *h == '%')) {
            buf_printf(why, "invalid character '%c' in host", *h >= 32 && *h < 127 ? *h : '?');
            return -1;
        }
    long pn = 6379;
    if (port) {
        char *end;
        errno = 0;
        pn = strtol(port, &end, 10);
        if (!*port || *end || errno || pn < 1 || pn > 65535) {
            buf_printf(why, "invalid port \"%s\" (1 to 65535)", port);
            return -1;
        }
    } else if (!url) {
        buf_printf(why, "missing port: write host:port, or a redis:// URL");
        return -1;
    }
    cfg->db = 0;
    if (slash && slash[1]) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 100000) {
            buf_printf(why, "invalid database number \"%s\"", slash + 1);
            return -1;
        }
        cfg->db = (int)db;
    }
    cfg->kind = ADDR_TCP;
    free(cfg->host);
    cfg->host = xstrdup(host);
    cfg->port = (uint16_t)pn;
    return 0;
}

static void pending_free(struct pending *p)
{
    free(p->password_file);
    free(p->password_env);
    if (p->password_inline)
        memset(p->password_inline, 0, strlen(p->password_inline));
    free(p->password_inline);
}

static void instance_cfg_clear(struct instance_cfg *i)
{
    free(i->name);
    free(i->address);
    free(i->host);
    free(i->path);
    free(i->username);
    free(i->config_command);
    if (i->password)
        memset(i->password, 0, strlen(i->password));
    free(i->password);
    free(i->tls.ca_file);
    free(i->tls.cert_file);
    free(i->tls.key_file);
    free(i->tls.server_name);
    for (size_t k = 0; k < i->n_labels; k++) {
        free(i->labels[k].name);
        free(i->labels[k].value);
    }
    free(i->labels);
    memset(i, 0, sizeof *i);
}

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

/* Deep copy of the merged defaults as a new instance's starting point. */
static void pending_copy(struct pending *dst, const struct pending *src)
{
    memset(dst, 0, sizeof *dst);
    const struct instance_cfg *s = &src->cfg;
    struct instance_cfg *d = &dst->cfg;
    d->username = dup_or_null(s->username);
    d->interval_ms = s->interval_ms;
    d->timeout_ms = s->timeout_ms;
    d->max_reply_bytes = s->max_reply_bytes;
    d->config_interval_ms = s->config_interval_ms;
    d->config_command = dup_or_null(s->config_command);
    d->latency_interval_ms = s->latency_interval_ms;
    d->latencystats_interval_ms = s->latencystats_interval_ms;
    d->commandstats_interval_ms = s->commandstats_interval_ms;
    d->max_nested_entries = s->max_nested_entries;
    d->tls.ca_file = dup_or_null(s->tls.ca_file);
    d->tls.cert_file = dup_or_null(s->tls.cert_file);
    d->tls.key_file = dup_or_null(s->tls.key_file);
    d->tls.server_name = dup_or_null(s->tls.server_name);
    d->tls.insecure_skip_verify = s->tls.insecure_skip_verify;
    for (size_t k = 0; k < s->n_labels; k++)
        labels_set(d, s->labels[k].name, s->labels[k].value);
    dst->password_file = dup_or_null(src->password_file);
    dst->password_env = dup_or_null(src->password_env);
    dst->password_inline = dup_or_null(src->password_inline);
    dst->tls_set = src->tls_set;
    dst->o = src->o;
}

static void builtin_defaults(struct pending *p)
{
    memset(p, 0, sizeof *p);
    p->cfg.interval_ms = 5000;
    p->cfg.timeout_ms = 2000;
    p->cfg.max_reply_bytes = 1 << 20;
    p->cfg.config_interval_ms = 60000;
    p->cfg.config_command = xstrdup("CONFIG");
    p->cfg.latency_interval_ms = 0;
    p->cfg.latencystats_interval_ms = 60000;
    p->cfg.commandstats_interval_ms = 5000;
    p->cfg.max_nested_entries = 1000;
}

/* Checks a merged instance and resolves its secret; reports problems. */
static void finish_instance(struct conf_ctx *c, struct pending *p, const cJSON *inst, const char *path)
{
    struct instance_cfg *cfg = &p->cfg;
    char sub[256];
    struct buf why = BUF_INIT;
    /* a key given with a value that was refused has had its error: it is
     * not also "missing" */
    if (!cfg->name) {
        if (!p->o.name)
            conf_err(c, inst, 0, path, "missing required key \"name\"");
    } else {
        conf_join_path(sub, sizeof sub, path, "name");
        switch (config_name_check(cfg->name)) {
        case NAME_OK: break;
        case NAME_EMPTY: conf_err(c, p->o.name, 0, sub, "the name is empty (%s)", CONFIG_NAME_RULE); break;
        case NAME_NOT_UTF8: conf_err(c, p->o.name, 0, sub, "invalid name: not valid UTF-8"); break;
        case NAME_TOO_LONG:
            conf_err(c, p->o.name, 0, sub, "name too long (%s)", CONFIG_NAME_RULE);
            break;
        case NAME_BAD_CHAR:
            conf_err(c, p->o.name, 0, sub, "invalid name \"%s\": %s", cfg->name, CONFIG_NAME_RULE);
            break;
        }
    }
    if (!cfg->address) {
        if (!p->o.address)
            conf_err(c, inst, 0, path, "missing required key \"address\"");
    } else {
        conf_join_path(sub, sizeof sub, path, "address");
        char *orig = cfg->address;
        if (config_parse_address(orig, cfg, &why) < 0) {
            conf_err(c, p->o.address, 0, sub, "%s", why.p);
        } else {
            /* keep a display form without credentials */
            struct buf a = BUF_INIT;
            if (cfg->kind == ADDR_UNIX)
                buf_printf(&a, "unix://%s", cfg->path);
            else {
                buf_puts(&a, cfg->tls.enabled ? "rediss://" : "redis://");
                bool v6 = strchr(cfg->host, ':') != NULL;
                buf_printf(&a, v6 ? "[%s]:%u" : "%s:%u", cfg->host, cfg->port);
                if (cfg->db)
                    buf_printf(&a, "/%d", cfg->db);
            }
            cfg->address = buf_steal(&a, NULL);
            free(orig);
        }
    }
    if (cfg->timeout_ms >= cfg->interval_ms)
        conf_err(c, inst, 0, path, "timeout (%llums) must be shorter than interval (%llums)",
               (unsigned long long)cfg->timeout_ms, (unsigned long long)cfg->interval_ms);

    int nsecrets = !!p->password_file + !!p->password_env + !!p->password_inline;
    if (nsecrets > 1)
        conf_err(c, inst, 0, path, "give at most one of password_file, password_env and password");
    else if (p->password_file) {
        buf_reset(&why);
        cfg->password = config_read_secret("password file", p->password_file, &why);
        if (!cfg->password)
            conf_err(c, p->o.password_file, 0, path, "%s", why.p);
    } else if (p->password_env) {
        const char *v = getenv(p->password_env);
        if (!v || !*v)
            conf_err(c, p->o.password_env, 0, path, "environment variable \"%s\" is not set or empty",
                   p->password_env);
        else
            cfg->password = xstrdup(v);
    } else if (p->password_inline) {
        log_warn("config", "%s: inline \"password\" in the configuration file; prefer password_file or password_env", cfg->name ? cfg->name : path);
        cfg->password = xstrdup(p->password_inline);
    }
    if (p->tls_set && !cfg->tls.enabled && cfg->address)
        conf_err(c, p->o.tls, 1, path, "tls settings given but the address is not rediss://");
    if (cfg->tls.enabled) {
        const char *files[3] = {cfg->tls.ca_file, cfg->tls.cert_file, cfg->tls.key_file};
        for (int i = 0; i < 3; i++)
            if (files[i] && !file_readable(files[i]))
                conf_err(c, p->o.tls_files[i], 0, p->o.tls_file_paths[i], "cannot read \"%s\": %s",
                       files[i], strerror(errno));
        if (cfg->tls.key_file)
            warn_loose("TLS key file", cfg->tls.key_file);
        if (!cfg->tls.cert_file != !cfg->tls.key_file)
            conf_err(c, p->o.tls, 1, path, "tls.cert_file and tls.key_file go together");
        if (cfg->tls.insecure_skip_verify)
            log_warn("config", "%s: tls.insecure_skip_verify is on: the server's certificate is not checked", cfg->name ? cfg->name : path);
    }
    buf_free(&why);
}

static void parse_http_tls(struct conf_ctx *c, const cJSON *obj, struct http_cfg *h, const char *path)
{
    char sub[256];
    if (!cJSON_IsObject(obj)) {
        conf_err(c, obj, 0, path, "expected an object, got %s", conf_type_name(obj));
        return;
    }
    for (const cJSON *ch = obj->child; ch; ch = ch->next) {
        conf_join_path(sub, sizeof sub, path, ch->string);
        const struct conf_opt *o = conf_find_opt(http_tls_opts, NELEM(http_tls_opts), ch->string);
        if (!o) {
            conf_err(c, ch, 1, sub, "unknown key \"%s\" (known: cert_file, key_file, client_ca_file, min_version)", ch->string);
            continue;
        }
        uint64_t u;
        bool b;
        char **dst = strcmp(o->key, "cert_file") == 0        ? &h->tls_cert_file
                     : strcmp(o->key, "key_file") == 0       ? &h->tls_key_file
                     : strcmp(o->key, "client_ca_file") == 0 ? &h->tls_client_ca_file
                                                             : NULL;
        if (dst) {
            if (conf_take(c, o, ch, sub, dst, &u, &b) == 0 && !file_readable(*dst))
                conf_err(c, ch, 0, sub, "cannot read \"%s\": %s", *dst, strerror(errno));
            else if (dst == &h->tls_key_file)
                warn_loose("TLS key file", *dst);
            continue;
        }
        char *v = NULL;
        if (conf_take(c, o, ch, sub, &v, &u, &b) == 0) {
            if (strcmp(v, "1.2") == 0)
                h->tls_min_version = 12;
            else if (strcmp(v, "1.3") == 0)
                h->tls_min_version = 13;
            else
                conf_err(c, ch, 0, sub, "unknown TLS version \"%s\" (\"1.2\" or \"1.3\")", v);
        }
        free(v);
    }
    if (!h->tls_cert_file || !h->tls_key_file)
        conf_err(c, obj, 0, path, "cert_file and key_file are both required");
}

static void parse_users(struct conf_ctx *c, const cJSON *obj, struct http_cfg *h, const char *path)
{
    char sub[256];
    if (!cJSON_IsObject(obj)) {
        conf_err(c, obj, 0, path, "expected an object of user names to bcrypt hashes, got %s", conf_type_name(obj));
        return;
    }
    for (const cJSON *ch = obj->child; ch; ch = ch->next) {
        conf_join_path(sub, sizeof sub, path, ch->string);
        if (!*ch->string || strchr(ch->string, ':')) {
            conf_err(c, ch, 1, sub, "invalid user name \"%s\" (not empty, no ':')", ch->string);
            continue;
        }
        const char *hsh = cJSON_IsString(ch) ? ch->valuestring : NULL;
        if (!hsh || strlen(hsh) != 60 || hsh[0] != '$' || hsh[1] != '2' ||
            !(hsh[2] == 'y' || hsh[2] == 'b' || hsh[2] == 'a') || hsh[3] != '$') {
            conf_err(c, ch, 0, sub, "expected a bcrypt hash (\"$2y$...\" or \"$2b$...\", 60 characters; "
                                  "make one with redpulse --hash-password)");
            continue;
        }
        h->users = xrealloc(h->users, (h->n_users + 1) * sizeof *h->users);
        h->users[h->n_users++] = (struct label){xstrdup(ch->string), xstrdup(hsh)};
    }
}

static void parse_http(struct conf_ctx *c, const cJSON *obj, struct http_cfg *h)
{
    char sub[128];
    if (!cJSON_IsObject(obj)) {
        conf_err(c, obj, 0, "http", "expected an object, got %s", conf_type_name(obj));
        return;
    }
    for (const cJSON *ch = obj->child; ch; ch = ch->next) {
        conf_join_path(sub, sizeof sub, "http", ch->string);
        const struct conf_opt *o = conf_find_opt(http_opts, NELEM(http_opts), ch->string);
        if (!o) {
            conf_err(c, ch, 1, sub, "unknown key \"%s\"", ch->string);
            continue;
        }
        uint64_t u = 0;
        bool b;
        if (strcmp(o->key, "listen") == 0) {
            conf_take(c, o, ch, sub, &h->listen, &u, &b);
            continue;
        }
        if (o->type == OT_TLS) {
            parse_http_tls(c, ch, h, sub);
            continue;
        }
        if (o->type == OT_LABELS) {
            parse_users(c, ch, h, sub);
            continue;
        }
        if (conf_take(c, o, ch, sub, NULL, &u, &b) < 0)
            continue;
        if (strcmp(o->key, "max_connections") == 0)
            h->max_connections = (unsigned)u;
        else if (strcmp(o->key, "max_connections_per_ip") == 0)
            h->max_connections_per_ip = (unsigned)u;
        else if (strcmp(o->key, "idle_timeout") == 0)
            h->idle_timeout_ms = u;
        else if (strcmp(o->key, "request_timeout") == 0)
            h->request_timeout_ms = u;
        else if (strcmp(o->key, "connection_memory_limit") == 0)
            h->connection_memory_limit = (size_t)u;
        else if (strcmp(o->key, "login_cache_ttl") == 0)
            h->login_cache_ttl_ms = u;
        else if (strcmp(o->key, "max_body_memory") == 0)
            h->max_body_memory = u;
        else
            h->threads = (unsigned)u;
    }
}

static int check_listen(const char *l, struct buf *why)
{
    const char *colon = strrchr(l, ':');
    if (!colon || colon == l) {
        buf_printf(why, "expected host:port, e.g. \"127.0.0.1:10379\" or \"[::1]:10379\"");
        return -1;
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || p < 1 || p > 65535) {
        buf_printf(why, "invalid port \"%s\"", colon + 1);
        return -1;
    }
    if (l[0] == '[' && colon[-1] != ']') {
        buf_printf(why, "unterminated IPv6 literal");
        return -1;
    }
    return 0;
}

static void http_defaults(struct http_cfg *h)
{
    h->listen = xstrdup(REDPULSE_DEFAULT_LISTEN);
    h->max_connections = 256;
    h->max_connections_per_ip = 32;
    h->idle_timeout_ms = 10000;
    h->request_timeout_ms = 5000;
    h->connection_memory_limit = 32 * 1024; /* above 32 KB libmicrohttpd mmaps each connection's pool: ~8x the CPU per connection */
    h->threads = 2;
    h->tls_min_version = 12;
    h->login_cache_ttl_ms = 60000;
    h->max_body_memory = 256ull << 20;
}

/* By name, then by place in the file: the first of a name is the one kept. */
static int cmp_names(const void *a, const void *b)
{
    const struct instance_cfg *x = *(const struct instance_cfg *const *)a;
    const struct instance_cfg *y = *(const struct instance_cfg *const *)b;
    int r = strcmp(x->name, y->name);
    return r ? r : (x > y) - (x < y);
}

/* A member of an object and its place in it, for check_dup_keys. */
struct keyref {
    const char *name;
    size_t idx;
};

static int cmp_keyref(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    return r ? r : (x->idx > y->idx) - (x->idx < y->idx);
}

/* dup[i] = whether member i of obj repeats an earlier member's key. Sorted
 * by (key, place), every member equal to the one before it is a repeat:
 * n log n, where comparing each key with all the earlier ones made an
 * instance of 40,000 keys take 16 s to check. NULL when nothing repeats. */
static bool *repeated_keys(const cJSON *obj)
{
    size_t n = 0;
    for (const cJSON *ch = obj->child; ch; ch = ch->next)
        n++;
    if (n < 2)
        return NULL;
    struct keyref *v = xcalloc(n, sizeof *v);
    size_t i = 0;
    for (const cJSON *ch = obj->child; ch; ch = ch->next, i++)
        v[i] = (struct keyref){ch->string, i};
    qsort(v, n, sizeof *v, cmp_keyref);
    bool *dup = NULL;
    for (i = 1; i < n; i++)
        if (strcmp(v[i - 1].name, v[i].name) == 0) {
            if (!dup)
                dup = xcalloc(n, sizeof *dup);
            dup[v[i].idx] = true;
        }
    free(v);
    return dup;
}

/* Reports keys repeated within one object: cJSON keeps both silently. In
 * document order, each where it repeats, the nodes inside in between. */
static void check_dup_keys(struct conf_ctx *c, const cJSON *node, const char *path, int depth)
{
    if (!node || depth > 64)
        return;
    char sub[256];
    bool *dup = cJSON_IsObject(node) ? repeated_keys(node) : NULL;
    int idx = 0;
    for (const cJSON *ch = node->child; ch; ch = ch->next, idx++) {
        if (cJSON_IsObject(node)) {
            conf_join_path(sub, sizeof sub, path, ch->string);
            if (dup && dup[idx])
                conf_err(c, ch, 1, sub, "duplicate key \"%s\"", ch->string);
        } else {
            char idxs[16];
            snprintf(idxs, sizeof idxs, "[%d]", idx);
            conf_join_path(sub, sizeof sub, path, idxs);
        }
        check_dup_keys(c, ch, sub, depth + 1);
    }
    free(dup);
}

struct config *config_parse(const char *json, size_t len, const char *origin,
                            struct config_errors *errs)
{
    struct conf_ctx c = {NULL, errs, origin};
    struct config *cfg = NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        unsigned line, col;
        size_t off = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        jsonloc_linecol(json, off, &line, &col);
        buf_printf(&errs->text, "%s (line %u, column %u): invalid JSON\n", origin, line, col);
        errs->count++;
        return NULL;
    }
    {
        /* trailing content after the document */
        size_t off = (size_t)(end - json);
        while (off < len && (unsigned char)json[off] <= 32)
            off++;
        if (off < len) {
            unsigned line, col;
            jsonloc_linecol(json, off, &line, &col);
            buf_printf(&errs->text, "%s (line %u, column %u): unexpected text after the JSON document\n", origin, line, col);
            errs->count++;
            cJSON_Delete(root);
            return NULL;
        }
    }
    struct jsonloc *loc = jsonloc_build(json, len, root);
    c.loc = loc;
    if (!cJSON_IsObject(root)) {
        conf_err(&c, root, 0, "", "the configuration must be a JSON object");
        goto out;
    }
    check_dup_keys(&c, root, "", 0);

    cfg = xcalloc(1, sizeof *cfg);
    http_defaults(&cfg->http);
    struct pending defaults;
    builtin_defaults(&defaults);
    const cJSON *instances = NULL, *advice = NULL, *alerts = NULL, *discovery = NULL, *shard = NULL;
    for (const cJSON *ch = root->child; ch; ch = ch->next) {
        const struct conf_opt *o = conf_find_opt(top_opts, NELEM(top_opts), ch->string);
        if (!o) {
            char top[256];
            conf_join_path(top, sizeof top, "", ch->string); /* the file's key: cleaned for the message */
            conf_err(&c, ch, 1, top, "unknown key \"%s\" (known: listen, log_level, http, defaults, instances, advice, alerts, discovery, shard)", ch->string);
            continue;
        }
        uint64_t u;
        bool b;
        if (strcmp(o->key, "listen") == 0) {
            conf_take(&c, o, ch, "listen", &cfg->http.listen, &u, &b);
        } else if (strcmp(o->key, "log_level") == 0) {
            enum log_level lvl;
            if (conf_take(&c, o, ch, "log_level", &cfg->log_level, &u, &b) == 0 &&
                log_parse_level(cfg->log_level, &lvl) < 0)
                conf_err(&c, ch, 0, "log_level", "unknown level \"%s\" (error, warn, info, debug)", cfg->log_level);
        } else if (strcmp(o->key, "http") == 0) {
            parse_http(&c, ch, &cfg->http);
        } else if (strcmp(o->key, "defaults") == 0) {
            if (!cJSON_IsObject(ch))
                conf_err(&c, ch, 0, "defaults", "expected an object, got %s", conf_type_name(ch));
            else
                apply_instance_obj(&c, ch, &defaults, "defaults", true);
        } else if (strcmp(o->key, "advice") == 0) {
            advice = ch;
        } else if (strcmp(o->key, "alerts") == 0) {
            alerts = ch;
        } else if (strcmp(o->key, "discovery") == 0) {
            discovery = ch;
        } else if (strcmp(o->key, "shard") == 0) {
            shard = ch;
        } else {
            instances = ch;
        }
    }
    if (discovery || shard) /* after the loop: sources start from "defaults" wherever it is */
        cfg->discovery = discover_conf_parse(&c, discovery, shard, (const struct config_draft *)&defaults);
    bool any_source = cfg->discovery && discover_conf_sources(cfg->discovery) > 0;
    {
        /* two spellings of one setting: refuse both rather than let one win */
        const cJSON *top_listen = cJSON_GetObjectItemCaseSensitive(root, "listen");
        const cJSON *http_obj = cJSON_GetObjectItemCaseSensitive(root, "http");
        const cJSON *http_listen = cJSON_IsObject(http_obj) ? cJSON_GetObjectItemCaseSensitive(http_obj, "listen") : NULL;
        unsigned tl = 0, tc = 0;
        if (top_listen && http_listen) {
            jsonloc_find(loc, top_listen, 1, &tl, &tc);
            conf_err(&c, http_listen, 1, "http.listen",
                     "\"listen\" is also set at the top level (line %u): give the address in one place", tl);
        }
    }
    {
        /* located where it was given: top-level "listen" or "http.listen" */
        struct buf why = BUF_INIT;
        const cJSON *at = cJSON_GetObjectItemCaseSensitive(root, "listen");
        const char *path = "listen";
        const cJSON *http_obj = cJSON_GetObjectItemCaseSensitive(root, "http");
        if (!at && cJSON_IsObject(http_obj) && (at = cJSON_GetObjectItemCaseSensitive(http_obj, "listen")))
            path = "http.listen";
        if (check_listen(cfg->http.listen, &why) < 0)
            conf_err(&c, at, 0, path, "%s", why.p);
        buf_free(&why);
    }
    if (!instances && any_source) {
        /* discovery finds the instances */
    } else if (!instances) {
        conf_err(&c, root, 0, "instances", "missing required key \"instances\" (a list of Redis instances to poll)");
    } else if (!cJSON_IsArray(instances)) {
        conf_err(&c, instances, 0, "instances", "expected an array, got %s", conf_type_name(instances));
    } else if (cJSON_GetArraySize(instances) == 0 && !any_source) {
        conf_err(&c, instances, 0, "instances", "the list is empty: configure at least one instance");
    } else {
        int n = cJSON_GetArraySize(instances);
        cfg->instances = xcalloc((size_t)n, sizeof *cfg->instances);
        /* each instance's object and its place in the list (elements that
         * are not objects leave none), for the duplicate names below */
        const cJSON **objs = xcalloc((size_t)n, sizeof *objs);
        int *elem = xcalloc((size_t)n, sizeof *elem);
        int i = 0;
        for (const cJSON *inst = instances->child; inst; inst = inst->next, i++) {
            char path[64];
            snprintf(path, sizeof path, "instances[%d]", i);
            if (!cJSON_IsObject(inst)) {
                conf_err(&c, inst, 0, path, "expected an object, got %s", conf_type_name(inst));
                continue;
            }
            struct pending p;
            pending_copy(&p, &defaults);
            apply_instance_obj(&c, inst, &p, path, false);
            finish_instance(&c, &p, inst, path);
            objs[cfg->n_instances] = inst;
            elem[cfg->n_instances] = i;
            cfg->instances[cfg->n_instances++] = p.cfg;
            pending_free(&p);
        }
        /* names unique: sort pointers, compare neighbours */
        struct instance_cfg **v = xcalloc(cfg->n_instances, sizeof *v);
        size_t nv = 0;
        for (size_t k = 0; k < cfg->n_instances; k++)
            if (cfg->instances[k].name)
                v[nv++] = &cfg->instances[k];
        qsort(v, nv, sizeof *v, cmp_names);
        for (size_t k = 1; k < nv; k++)
            if (strcmp(v[k - 1]->name, v[k]->name) == 0) {
                size_t at = (size_t)(v[k] - cfg->instances), first = (size_t)(v[k - 1] - cfg->instances);
                char path[64];
                snprintf(path, sizeof path, "instances[%d].name", elem[at]);
                const cJSON *node = cJSON_GetObjectItemCaseSensitive(objs[at], "name");
                conf_err(&c, node, 0, path, "duplicate instance name \"%s\" (also instances[%d])", v[k]->name,
                         elem[first]);
            }
        free(v);
        free(objs);
        free(elem);
    }
    if (advice) { /* after the instances: it names them */
        const char **names = xcalloc(cfg->n_instances + 1, sizeof *names);
        for (size_t k = 0; k < cfg->n_instances; k++)
            names[k] = cfg->instances[k].name;
        cfg->advice = advice_cfg_parse(&c, advice, names, cfg->n_instances);
        free(names);
    }
    pending_free(&defaults);
    instance_cfg_clear(&defaults.cfg);
    cfg->alerts = alerts_cfg_parse(&c, alerts, cfg);
out:
    jsonloc_free(loc);
    cJSON_Delete(root);
    if (errs->count && cfg) {
        config_free(cfg);
        cfg = NULL;
    }
    return cfg;
}

/* With plain read(2): a FIFO or a slow file system blocks here, on the
 * caller's thread (the loop thread on reload: the watchdog's business).
 * The one limit and the one wording for start, reload and --check-config:
 * two readers had two limits (16 and 64 MiB), so a file the check passed
 * could fail to start. */
int config_read_file(const char *path, struct buf *out, struct config_errors *errs)
{
    char shown[PRINTABLE_MAX];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        buf_printf(&errs->text, "%s: cannot open: %s\n", printable(path, shown, sizeof shown), strerror(errno));
        errs->count++;
        return -1;
    }
    char tmp[65536];
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            buf_printf(&errs->text, "%s: read error: %s\n", printable(path, shown, sizeof shown), strerror(errno));
            errs->count++;
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        buf_append(out, tmp, (size_t)n);
        if (out->len > CONFIG_MAX_FILE_BYTES) {
            buf_printf(&errs->text, "%s: file larger than %u MiB\n", printable(path, shown, sizeof shown),
                       CONFIG_MAX_FILE_BYTES >> 20);
            errs->count++;
            close(fd);
            return -1;
        }
    }
    close(fd);
    return 0;
}

struct config *config_load(const char *path, struct config_errors *errs)
{
    struct buf b = BUF_INIT;
    struct config *c = NULL;
    if (config_read_file(path, &b, errs) == 0)
        c = config_parse(b.p ? b.p : "", b.len, path, errs);
    if (b.p)
        explicit_bzero(b.p, b.len); /* may hold inline passwords */
    buf_free(&b);
    return c;
}

struct config *config_default(void)
{
    struct config *cfg = xcalloc(1, sizeof *cfg);
    http_defaults(&cfg->http);
    cfg->instances = xcalloc(1, sizeof *cfg->instances);
    cfg->n_instances = 1;
    struct pending p;
    builtin_defaults(&p);
    struct instance_cfg *i = &cfg->instances[0];
    *i = p.cfg;
    i->name = xstrdup("local");
    struct buf why = BUF_INIT;
    config_parse_address(REDPULSE_DEFAULT_ADDRESS, i, &why);
    buf_free(&why);
    i->address = xstrdup("redis://127.0.0.1:6379");
    struct config_errors errs = {BUF_INIT, 0};
    struct conf_ctx c = {NULL, &errs, "built-in configuration"};
    cfg->alerts = alerts_cfg_parse(&c, NULL, cfg);
    config_errors_free(&errs);
    return cfg;
}

void config_free(struct config *c)
{
    if (!c)
        return;
    free(c->http.listen);
    free(c->http.tls_cert_file);
    free(c->http.tls_key_file);
    free(c->http.tls_client_ca_file);
    for (size_t i = 0; i < c->http.n_users; i++) {
        free(c->http.users[i].name);
        free(c->http.users[i].value);
    }
    free(c->http.users);
    free(c->log_level);
    advice_cfg_free(c->advice);
    for (size_t i = 0; i < c->n_instances; i++)
        instance_cfg_clear(&c->instances[i]);
    free(c->instances);
    alerts_cfg_free(c->alerts);
    discover_conf_free(c->discovery);
    free(c);
}

void config_errors_free(struct config_errors *e)
{
    buf_free(&e->text);
    e->count = 0;
}

/* ---- drafts, for sections parsed elsewhere (discover.c) -------------- */

struct config_draft {
    struct pending p;
};

struct config_draft *config_draft_new(const struct config_draft *base)
{
    struct config_draft *d = xcalloc(1, sizeof *d);
    if (base)
        pending_copy(&d->p, &base->p);
    else
        builtin_defaults(&d->p);
    return d;
}

void config_draft_apply(struct conf_ctx *c, struct config_draft *d, const cJSON *obj, const char *path,
                        const char *const *only)
{
    d->p.only = only;
    apply_instance_obj(c, obj, &d->p, path, true);
    d->p.only = NULL;
}

void config_draft_finish(struct conf_ctx *c, const struct config_draft *d, const cJSON *node, const char *path,
                         const char *name, const char *address, uint64_t interval_ms, struct instance_cfg *out)
{
    struct pending p;
    pending_copy(&p, &d->p);
    p.cfg.name = xstrdup(name);
    p.cfg.address = xstrdup(address);
    if (interval_ms)
        p.cfg.interval_ms = interval_ms;
    finish_instance(c, &p, node, path);
    *out = p.cfg;
    pending_free(&p);
}

void config_draft_free(struct config_draft *d)
{
    if (!d)
        return;
    pending_free(&d->p);
    instance_cfg_clear(&d->p.cfg);
    free(d);
}

void config_instance_copy(struct instance_cfg *dst, const struct instance_cfg *src)
{
    *dst = *src;
    dst->name = dup_or_null(src->name);
    dst->address = dup_or_null(src->address);
    dst->host = dup_or_null(src->host);
    dst->path = dup_or_null(src->path);
    dst->username = dup_or_null(src->username);
    dst->password = dup_or_null(src->password);
    dst->config_command = dup_or_null(src->config_command);
    dst->tls.ca_file = dup_or_null(src->tls.ca_file);
    dst->tls.cert_file = dup_or_null(src->tls.cert_file);
    dst->tls.key_file = dup_or_null(src->tls.key_file);
    dst->tls.server_name = dup_or_null(src->tls.server_name);
    dst->labels = NULL;
    dst->n_labels = 0;
    for (size_t k = 0; k < src->n_labels; k++)
        labels_set(dst, src->labels[k].name, src->labels[k].value);
}

void config_instance_clear(struct instance_cfg *i) { instance_cfg_clear(i); }

void config_instance_label(struct instance_cfg *i, const char *name, const char *value)
{
    labels_set(i, name, value);
}

int config_instance_set_address(struct instance_cfg *i, const char *addr, struct buf *why)
{
    if (config_parse_address(addr, i, why) < 0)
        return -1;
    struct buf a = BUF_INIT;
    if (i->kind == ADDR_UNIX)
        buf_printf(&a, "unix://%s", i->path);
    else
        buf_printf(&a, strchr(i->host, ':') ? "%s[%s]:%u" : "%s%s:%u", i->tls.enabled ? "rediss://" : "redis://",
                   i->host, i->port);
    free(i->address);
    i->address = buf_steal(&a, NULL);
    return 0;
}
