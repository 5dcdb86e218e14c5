/*
 * config.h - the parsed, validated configuration.
 *
 * config_load() reads a JSON file and checks everything before anything
 * starts: every problem is reported (not just the first) with its JSON path
 * and line:column, unknown keys are errors, and nothing is half-applied.
 * The options an instance takes, their types, defaults and ranges live in one
 * table in config.c that the parser, the validator and redpulse.json(5) follow.
 */
#ifndef REDPULSE_CONFIG_H
#define REDPULSE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define REDPULSE_DEFAULT_LISTEN "127.0.0.1:10379"
#define REDPULSE_DEFAULT_ADDRESS "redis://127.0.0.1:6379"

enum addr_kind { ADDR_TCP, ADDR_UNIX };

struct label {
    char *name, *value;
};

struct tls_opts {
    bool enabled;        /* rediss:// */
    char *ca_file;       /* NULL: system default store */
    char *cert_file;     /* client certificate (optional) */
    char *key_file;
    char *server_name;   /* SNI and verification name; default: the host */
    bool insecure_skip_verify;
};

struct instance_cfg {
    char *name;          /* unique; the `target` label */
    char *address;       /* as configured, credentials removed */
    enum addr_kind kind;
    char *host;          /* ADDR_TCP: host name or IP literal */
    uint16_t port;
    char *path;          /* ADDR_UNIX */
    int db;              /* from redis://host/db; informational */
    char *username;      /* NULL: default user */
    char *password;      /* resolved secret; NULL when none. Never logged. */
    uint64_t interval_ms, timeout_ms;
    size_t max_reply_bytes;
    uint64_t config_interval_ms;  /* CONFIG GET cadence; 0: off */
    char *config_command;         /* "CONFIG", or its renamed name */
    uint64_t latency_interval_ms; /* LATENCY LATEST cadence; 0: off */
    uint64_t latencystats_interval_ms; /* INFO latencystats cadence; 0: every poll */
    uint64_t commandstats_interval_ms; /* INFO commandstats cadence; 0: every poll */
    size_t max_nested_entries;    /* per nested INFO family (commandstats...) */
    struct tls_opts tls;
    struct label *labels;
    size_t n_labels;
};

struct http_cfg {
    char *listen;                 /* "host:port" or "[v6]:port" */
    unsigned max_connections;
    unsigned max_connections_per_ip;
    uint64_t idle_timeout_ms;
    uint64_t request_timeout_ms;  /* a request must be in whole this long after the accept */
    size_t connection_memory_limit;
    unsigned threads;
    /* TLS for the HTTP endpoint (all NULL: plain HTTP) */
    char *tls_cert_file, *tls_key_file;
    char *tls_client_ca_file;     /* clients must present a certificate it signed */
    int tls_min_version;          /* 12 or 13 */
    /* basic auth: user names and bcrypt hashes; none: no authentication */
    struct label *users;          /* name = user, value = hash */
    size_t n_users;
    uint64_t login_cache_ttl_ms;  /* a good login is remembered this long */
    uint64_t max_body_memory;     /* bytes of response bodies held for slow readers; 503 past it */
};

struct alerts_cfg;
struct discovery_cfg; /* discover.h: discovery sources and the fleet shard */

struct config {
    struct http_cfg http;
    char *log_level;              /* NULL: keep the command line's */
    struct instance_cfg *instances;
    size_t n_instances;
    struct advice_cfg *advice;    /* the "advice" section (advise.h); NULL: defaults */
    struct alerts_cfg *alerts;    /* the `alerts` section, compiled (alerts.h) */
    struct discovery_cfg *discovery; /* NULL: neither "discovery" nor "shard" given */
};

/* Problems found while loading, one line each, in document order. */
struct config_errors {
    struct buf text;
    size_t count;
};

/* The largest configuration file read, in bytes. */
#define CONFIG_MAX_FILE_BYTES (16u << 20)

/* Reads the whole file at path into out with plain blocking read(2): the one
 * read path of configuration files (start, reload, --check-config). Returns
 * 0, or -1 with one line appended to errs (cannot open / read error, both
 * with strerror, or larger than CONFIG_MAX_FILE_BYTES). */
int config_read_file(const char *path, struct buf *out, struct config_errors *errs);

/* Loads and validates `path` (read with config_read_file). Returns a config
 * (free with config_free), or NULL with every problem appended to errs.
 * Warnings (inline password, insecure TLS, loose file permissions) are
 * logged, not errors. */
struct config *config_load(const char *path, struct config_errors *errs);
/* Same, from a string; `origin` names it in messages. */
struct config *config_parse(const char *json, size_t len, const char *origin,
                            struct config_errors *errs);
/* The built-in configuration: one instance at REDPULSE_DEFAULT_ADDRESS. */
struct config *config_default(void);
void config_free(struct config *c);
void config_errors_free(struct config_errors *e);

/* The largest secret file (password_file and the like) read, in bytes. */
#define CONFIG_MAX_SECRET_BYTES (64u << 10)

/* Reads the secret in the regular file at path, trailing CR/LF removed.
 * Refuses (NULL, with a reason naming the file appended to why) a file that
 * cannot be opened, is not a regular file, is empty, holds a NUL byte or is
 * longer than CONFIG_MAX_SECRET_BYTES; warns when it is world-readable.
 * what ("password file") starts the messages. Caller frees (and zeroes). */
char *config_read_secret(const char *what, const char *path, struct buf *why);

/* The instance name rule, shared by the file's instances and discovery:
 * 1 to CONFIG_NAME_MAX characters (code points) of UTF-8, no spaces, no
 * control characters and none of / ? & # % (they would not reach
 * /scrape?target= as written). A '+' is allowed: it reads as a space in a
 * query typed by hand, but Prometheus sends it as %2B, and the landing
 * page's links percent-encode the name. */
#define CONFIG_NAME_MAX 128
#define CONFIG_NAME_RULE "1 to 128 characters, no spaces, control characters or any of / ? & # %"
enum config_name_fault { NAME_OK, NAME_EMPTY, NAME_NOT_UTF8, NAME_TOO_LONG, NAME_BAD_CHAR };
enum config_name_fault config_name_check(const char *s);

/* Parses an instance address into cfg->kind/host/port/path/db (and username
 * when given as user@). Returns 0, or -1 with a message in why. */
int config_parse_address(const char *addr, struct instance_cfg *cfg, struct buf *why);

/* For sections parsed in other modules that describe instances
 * (discovery sources): an instance being merged, its keys applied the way
 * "defaults" and "instances[]" are. */
struct config_draft;
struct conf_ctx;
struct cJSON;
/* A draft starting from base (NULL: the built-in defaults). */
struct config_draft *config_draft_new(const struct config_draft *base);
/* Applies obj's instance keys to d as "defaults" does (no name or address).
 * only: NULL, or a NULL-terminated list of the keys to take (the others are
 * left to the caller, which reports the unknown ones). */
void config_draft_apply(struct conf_ctx *c, struct config_draft *d, const struct cJSON *obj, const char *path,
                        const char *const *only);
/* Checks d as an instance named name at address (its secret is resolved
 * now), reporting problems at node/path; interval_ms, when not 0, replaces
 * the interval first. Fills *out (the caller owns it: config_instance_clear). */
void config_draft_finish(struct conf_ctx *c, const struct config_draft *d, const struct cJSON *node, const char *path,
                         const char *name, const char *address, uint64_t interval_ms, struct instance_cfg *out);
void config_draft_free(struct config_draft *d); /* NULL-safe */
/* Deep copy of src into dst (secrets included). */
void config_instance_copy(struct instance_cfg *dst, const struct instance_cfg *src);
/* Frees what i holds (the password wiped) and zeroes it. */
void config_instance_clear(struct instance_cfg *i);
/* Sets label name to value on i (replacing a label of that name). */
void config_instance_label(struct instance_cfg *i, const char *name, const char *value);
/* Sets i's address (and kind, host, port, tls.enabled) from addr, keeping the
 * display form without credentials. Returns 0, or -1 with a reason in why. */
int config_instance_set_address(struct instance_cfg *i, const char *addr, struct buf *why);

#endif
