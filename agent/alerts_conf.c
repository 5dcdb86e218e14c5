/*
 * alerts_conf.c - the `alerts` section: rules (built-in and configured,
 * merged by name), receivers, routes and silences, checked like the rest of
 * the configuration (every problem with its JSON path and line:column), then
 * compiled into one plan per instance so a poll evaluates an array of
 * (rule, threshold) with no name lookups.
 */
#include "alerts.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "confparse.h"
#include "util.h"

/* JSON paths in messages are cut at their buffer's size, on purpose */
#if defined(__GNUC__) && !defined(__clang__) /* clang has no such warning */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static const struct conf_opt rule_opts[] = {
    {"name", OT_STRING, 0, 0},
    {"figure", OT_STRING, 0, 0},
    {"op", OT_STRING, 0, 0},
    {"threshold", OT_UINT, 0, 0},       /* a number: parsed here */
    {"clear_threshold", OT_UINT, 0, 0}, /* a number: parsed here */
    {"for", OT_DURATION, 0, 7 * 86400000.0},
    {"keep_firing_for", OT_DURATION, 0, 7 * 86400000.0},
    {"severity", OT_STRING, 0, 0},
    {"labels", OT_LABELS, 0, 0},
    {"annotations", OT_LABELS, 0, 0},
    {"instances", OT_LABELS, 0, 0},
    {"instance_labels", OT_LABELS, 0, 0},
    {"thresholds", OT_LABELS, 0, 0},
    {"enabled", OT_BOOL, 0, 0},
    {"receivers", OT_LABELS, 0, 0},
    {"drop_below", OT_UINT, 0, 0},      /* a number: parsed here */
    {"baseline", OT_DURATION, 60000, 7 * 86400000.0},
};

static const struct conf_opt recv_opts[] = {
    {"name", OT_STRING, 0, 0},
    {"type", OT_STRING, 0, 0},
    {"url", OT_STRING, 0, 0},
    {"urls", OT_LABELS, 0, 0},
    {"headers", OT_LABELS, 0, 0},
    {"bearer_token_file", OT_STRING, 0, 0},
    {"basic_auth", OT_LABELS, 0, 0},
    {"timeout", OT_DURATION, 100, 300000},
    {"connect_timeout", OT_DURATION, 100, 60000},
    {"resend_interval", OT_DURATION, 1000, 86400000},
    {"repeat_interval", OT_DURATION, 0, 7 * 86400000.0},
    {"max_backoff", OT_DURATION, 100, 3600000},
    {"queue_size", OT_UINT, 1, 1000000},
};

static const struct conf_opt top_opts[] = {
    {"builtin", OT_BOOL, 0, 0},      {"state_dir", OT_STRING, 0, 0}, {"external_url", OT_STRING, 0, 0},
    {"rules", OT_LABELS, 0, 0},      {"receivers", OT_LABELS, 0, 0}, {"route", OT_LABELS, 0, 0},
    {"silences", OT_LABELS, 0, 0},
};

static const char *const reserved[] = {"alertname", "target", "severity", "instance", "job"};

/* ---- small helpers ---------------------------------------------------- */

void alerts_label_put(struct label **v, size_t *n, const char *k, const char *val)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i].name, k) == 0) {
            free((*v)[i].value);
            (*v)[i].value = xstrdup(val);
            return;
        }
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[*n].name = xstrdup(k);
    (*v)[*n].value = xstrdup(val);
    (*n)++;
}

static void labels_free(struct label *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

static int take_number(struct conf_ctx *c, const cJSON *v, const char *path, double *out)
{
    if (!cJSON_IsNumber(v)) {
        conf_err(c, v, 0, path, "expected a number, got %s", conf_type_name(v));
        return -1;
    }
    if (!isfinite(v->valuedouble)) { /* 1e999: cJSON reads it as infinity */
        conf_err(c, v, 0, path, "not a finite number (out of the range of a double)");
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

/* An object of string values into labels; label_names: keys must be label
 * names and not reserved. Returns 0 or -1 (after reporting). */
static int take_labels(struct conf_ctx *c, const cJSON *obj, const char *path, bool label_names, struct label **v,
                       size_t *n)
{
    char sub[256];
    int rc = 0;
    if (!cJSON_IsObject(obj)) {
        conf_err(c, obj, 0, path, "expected an object of names to strings, got %s", conf_type_name(obj));
        return -1;
    }
    for (const cJSON *ch = obj->child; ch; ch = ch->next) {
        conf_join_path(sub, sizeof sub, path, ch->string);
        if (label_names && !is_label_name(ch->string)) {
            if (utf8_valid(ch->string))
                conf_err(c, ch, 1, sub, "invalid label name \"%s\"", ch->string);
            else /* not echoed: the message itself would not be UTF-8 */
                conf_err(c, ch, 1, sub, "invalid label name (bytes that are not UTF-8)");
            rc = -1;
            continue;
        }
        if (!cJSON_IsString(ch) || !utf8_valid(ch->valuestring)) {
            conf_err(c, ch, 0, sub, "expected a UTF-8 string, got %s",
                     cJSON_IsString(ch) ? "bytes that are not UTF-8" : conf_type_name(ch));
            rc = -1;
            continue;
        }
        alerts_label_put(v, n, ch->string, ch->valuestring);
    }
    return rc;
}

static int take_string_list(struct conf_ctx *c, const cJSON *arr, const char *path, char ***v, size_t *n)
{
    if (!cJSON_IsArray(arr)) {
        conf_err(c, arr, 0, path, "expected an array of strings, got %s", conf_type_name(arr));
        return -1;
    }
    for (size_t i = 0; i < *n; i++)
        free((*v)[i]);
    free(*v);
    *v = NULL;
    *n = 0;
    int i = 0, rc = 0;
    for (const cJSON *ch = arr->child; ch; ch = ch->next, i++) {
        if (!cJSON_IsString(ch)) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s[%d]", path, i);
            conf_err(c, ch, 0, sub, "expected a string, got %s", conf_type_name(ch));
            rc = -1;
            continue;
        }
        *v = xrealloc(*v, (*n + 1) * sizeof **v);
        (*v)[(*n)++] = xstrdup(ch->valuestring);
    }
    return rc;
}

/* A receiver's token or password goes into a request header: read like
 * every secret file (config_read_secret), and one line of printable text,
 * so that a file holding two lines is refused rather than cut or sent with
 * a line break in the header. */
static char *read_secret(struct conf_ctx *c, const cJSON *node, const char *path, const char *what,
                         const char *file)
{
    struct buf why = BUF_INIT;
    char *s = config_read_secret(what, file, &why);
    if (!s) {
        conf_err(c, node, 0, path, "%s", why.p);
        buf_free(&why);
        return NULL;
    }
    buf_free(&why);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            conf_err(c, node, 0, path, "%s \"%s\" holds a %s (at offset %zu): it goes into a request header "
                     "and must be one line", what, file, *p == '\n' || *p == '\r' ? "line break" : "control character",
                     (size_t)(p - (const unsigned char *)s));
            explicit_bzero(s, strlen(s));
            free(s);
            return NULL;
        }
    return s;
}

/* RFC 3339: 2026-11-30T03:00:00Z or with a +hh:mm offset. */
static int parse_time(const char *s, double *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!e)
        return -1;
    double frac = 0;
    if (*e == '.') {
        char *fe;
        frac = strtod(e, &fe);
        e = fe;
    }
    long off = 0;
    if (*e == 'Z' || *e == 'z') {
        e++;
    } else if ((*e == '+' || *e == '-') && strlen(e) == 6 && e[3] == ':') {
        int hh = atoi(e + 1), mm = atoi(e + 4);
        off = (hh * 60 + mm) * 60 * (*e == '-' ? -1 : 1);
        e += 6;
    } else {
        return -1;
    }
    if (*e)
        return -1;
    *out = (double)(timegm(&tm) - off) + frac;
    return 0;
}

/* Annotation placeholders: {{ $value }}, {{ $threshold }}, {{ $target }},
 * {{ $unit }}, {{ $figure }}, {{ $severity }}, {{ $labels.NAME }}. */
static int check_template(const char *t, char *why, size_t n)
{
    for (const char *p = strstr(t, "{{"); p; p = strstr(p, "{{")) {
        const char *e = strstr(p, "}}");
        if (!e) {
            snprintf(why, n, "unclosed \"{{\"");
            return -1;
        }
        const char *a = p + 2;
        while (a < e && *a == ' ')
            a++;
        const char *b = e;
        while (b > a && b[-1] == ' ')
            b--;
        size_t l = (size_t)(b - a);
        static const char *const ok[] = {"$value", "$threshold", "$target", "$unit", "$figure", "$severity"};
        bool good = false;
        for (size_t i = 0; i < NELEM(ok); i++)
            if (l == strlen(ok[i]) && strncmp(a, ok[i], l) == 0)
                good = true;
        if (l > 8 && strncmp(a, "$labels.", 8) == 0)
            good = true;
        if (!good) {
            snprintf(why, n, "unknown placeholder \"{{ %.*s }}\" ($value, $threshold, $target, $unit, $figure, "
                             "$severity, $labels.NAME)", (int)(l > 40 ? 40 : l), a);
            return -1;
        }
        p = e + 2;
    }
    return 0;
}

/* ---- rules ------------------------------------------------------------ */

/* Where a rule's values came from, for checks after the merge. */
struct rule_src {
    const cJSON *obj, *figure, *instances, *thresholds, *receivers;
    /* given in the file, whether or not the value was taken: a refused
     * value has had its error and is not also "missing" */
    const cJSON *name, *threshold, *drop_below;
    const cJSON *receivers_list;
    char path[128];
};

static void rule_init(struct alert_rule *r)
{
    memset(r, 0, sizeof *r);
    r->p.op = OP_GT;
    r->p.threshold = NAN;
    r->p.baseline_s = 3600;
    r->enabled = true;
    r->severity = xstrdup("warning");
}

static void rule_clear(struct alert_rule *r)
{
    free(r->name);
    free(r->figure_text);
    figure_clear(&r->fig);
    free(r->severity);
    labels_free(r->labels, r->n_labels);
    labels_free(r->ann, r->n_ann);
    for (size_t i = 0; i < r->n_inst_names; i++)
        free(r->inst_names[i]);
    free(r->inst_names);
    labels_free(r->inst_match, r->n_inst_match);
    for (size_t i = 0; i < r->n_over; i++)
        free(r->over[i].instance);
    free(r->over);
    free(r->recv);
    memset(r, 0, sizeof *r);
}

static void apply_rule(struct conf_ctx *c, const cJSON *obj, struct alert_rule *r, struct rule_src *src,
                       const char *path)
{
    char sub[256], why[256];
    for (const cJSON *ch = obj->child; ch; ch = ch->next) {
        conf_join_path(sub, sizeof sub, path, ch->string);
        const struct conf_opt *o = conf_find_opt(rule_opts, NELEM(rule_opts), ch->string);
        if (!o) {
            conf_err(c, ch, 1, sub, "unknown key \"%s\" (known: name, figure, op, threshold, clear_threshold, for, "
                                    "keep_firing_for, severity, labels, annotations, instances, instance_labels, "
                                    "thresholds, enabled, receivers, drop_below, baseline)", ch->string);
            continue;
        }
        const char *k = o->key;
        uint64_t u;
        bool b;
        char *s = NULL;
        double d;
        if (strcmp(k, "name") == 0) {
            src->name = ch;
            if (conf_take(c, o, ch, sub, &r->name, &u, &b) == 0) {
                if (!r->name[0])
                    conf_err(c, ch, 0, sub, "the rule name is empty (it is the alertname label)");
                else if (!utf8_valid(r->name)) /* a label value */
                    conf_err(c, ch, 0, sub, "the rule name must be UTF-8 (it is the alertname label)");
            }
        } else if (strcmp(k, "figure") == 0) {
            src->figure = ch;
            if (conf_take(c, o, ch, sub, &s, &u, &b) == 0) {
                struct figure f;
                if (figure_parse(s, &f, why, sizeof why) < 0) {
                    conf_err(c, ch, 0, sub, "%s", why);
                } else {
                    figure_clear(&r->fig);
                    r->fig = f;
                    free(r->figure_text);
                    r->figure_text = xstrdup(s);
                }
            }
        } else if (strcmp(k, "op") == 0) {
            if (conf_take(c, o, ch, sub, &s, &u, &b) == 0 && rule_op_parse(s, &r->p.op) < 0)
                conf_err(c, ch, 0, sub, "unknown operator \"%s\" (>, >=, <, <=, ==, !=)", s);
        } else if (strcmp(k, "threshold") == 0) {
            src->threshold = ch;
            if (take_number(c, ch, sub, &d) == 0)
                r->p.threshold = d;
        } else if (strcmp(k, "clear_threshold") == 0) {
            if (take_number(c, ch, sub, &d) == 0) {
                r->p.clear = d;
                r->p.has_clear = true;
            }
        } else if (strcmp(k, "drop_below") == 0) {
            src->drop_below = ch;
            if (take_number(c, ch, sub, &d) == 0) {
                if (!(d > 0 && d < 1))
                    conf_err(c, ch, 0, sub, "drop_below must be between 0 and 1 (a share of the baseline), got %g", d);
                else
                    r->p.drop_below = d;
            }
        } else if (strcmp(k, "for") == 0 || strcmp(k, "keep_firing_for") == 0 || strcmp(k, "baseline") == 0) {
            if (conf_take(c, o, ch, sub, NULL, &u, &b) == 0) {
                double sec = (double)u / 1000.0;
                if (k[0] == 'f')
                    r->p.for_s = sec;
                else if (k[0] == 'k')
                    r->p.keep_s = sec;
                else
                    r->p.baseline_s = sec;
            }
        } else if (strcmp(k, "severity") == 0) {
            if (conf_take(c, o, ch, sub, &r->severity, &u, &b) == 0 && !r->severity[0])
                conf_err(c, ch, 0, sub, "severity must not be empty");
            else if (r->severity && !utf8_valid(r->severity))
                conf_err(c, ch, 0, sub, "severity must be UTF-8 (it is a label)");
        } else if (strcmp(k, "enabled") == 0) {
            conf_take(c, o, ch, sub, NULL, &u, &r->enabled);
        } else if (strcmp(k, "labels") == 0) {
            if (take_labels(c, ch, sub, true, &r->labels, &r->n_labels) == 0)
                for (const cJSON *l = ch->child; l; l = l->next)
                    for (size_t i = 0; i < NELEM(reserved); i++)
                        if (strcmp(l->string, reserved[i]) == 0) {
                            char sub2[256];
                            conf_join_path(sub2, sizeof sub2, sub, l->string);
                            conf_err(c, l, 1, sub2, "label \"%s\" is set by redpulse (use the rule's own key)",
                                     l->string);
                        }
        } else if (strcmp(k, "annotations") == 0) {
            if (take_labels(c, ch, sub, true, &r->ann, &r->n_ann) == 0)
                for (const cJSON *l = ch->child; l; l = l->next)
                    if (check_template(l->valuestring, why, sizeof why) < 0) {
                        char sub2[256];
                        conf_join_path(sub2, sizeof sub2, sub, l->string);
                        conf_err(c, l, 0, sub2, "%s", why);
                    }
        } else if (strcmp(k, "instances") == 0) {
            take_string_list(c, ch, sub, &r->inst_names, &r->n_inst_names);
            src->instances = ch;
        } else if (strcmp(k, "instance_labels") == 0) {
            take_labels(c, ch, sub, true, &r->inst_match, &r->n_inst_match);
        } else if (strcmp(k, "thresholds") == 0) {
            if (!cJSON_IsObject(ch)) {
                conf_err(c, ch, 0, sub, "expected an object of instance names to numbers, got %s", conf_type_name(ch));
            } else {
                src->thresholds = ch;
                for (const cJSON *t = ch->child; t; t = t->next) {
                    char sub2[256];
                    conf_join_path(sub2, sizeof sub2, sub, t->string);
                    if (take_number(c, t, sub2, &d) < 0)
                        continue;
                    r->over = xrealloc(r->over, (r->n_over + 1) * sizeof *r->over);
                    r->over[r->n_over].instance = xstrdup(t->string);
                    r->over[r->n_over++].threshold = d;
                }
            }
        } else if (strcmp(k, "receivers") == 0) {
            if (!cJSON_IsArray(ch))
                conf_err(c, ch, 0, sub, "expected an array of receiver names, got %s", conf_type_name(ch));
            else
                src->receivers_list = ch;
            snprintf(src->path, sizeof src->path, "%s", sub);
        }
        free(s);
    }
}

/* Checks a merged rule and resolves its receivers. */
static void check_rule(struct conf_ctx *c, struct alert_rule *r, const struct rule_src *src, const char *path,
                       const struct alerts_cfg *a, const struct config *cfg)
{
    char sub[256];
    if (!r->name || !r->name[0]) {
        if (!src->name)
            conf_err(c, src->obj, 0, path, "missing required key \"name\"");
        return;
    }
    if (!r->figure_text && !src->figure)
        conf_err(c, src->obj, 0, path, "rule \"%s\": missing required key \"figure\"", r->name);
    if (r->p.drop_below > 0) {
        if (r->p.has_clear) {
            conf_err(c, src->obj, 0, path, "rule \"%s\": clear_threshold does not apply to a drop_below rule", r->name);
        }
        if (r->fig.kind == FIG_UP)
            conf_err(c, src->figure, 0, path, "rule \"%s\": drop_below needs a figure other than up", r->name);
    } else if (isnan(r->p.threshold) && !src->threshold && !src->drop_below) {
        conf_err(c, src->obj, 0, path, "rule \"%s\": missing required key \"threshold\" (or drop_below)", r->name);
    }
    if (r->p.has_clear) {
        bool ok = true;
        switch (r->p.op) {
        case OP_GT:
        case OP_GE: ok = r->p.clear <= r->p.threshold; break;
        case OP_LT:
        case OP_LE: ok = r->p.clear >= r->p.threshold; break;
        default:
            conf_err(c, src->obj, 0, path, "rule \"%s\": clear_threshold needs >, >=, < or <=", r->name);
            ok = true;
            break;
        }
        if (!ok)
            conf_err(c, src->obj, 0, path, "rule \"%s\": clear_threshold %g is on the firing side of threshold %g",
                     r->name, r->p.clear, r->p.threshold);
    }
    for (size_t i = 0; i < r->n_inst_names; i++) {
        bool found = false;
        for (size_t k = 0; k < cfg->n_instances && !found; k++)
            found = cfg->instances[k].name && strcmp(cfg->instances[k].name, r->inst_names[i]) == 0;
        if (!found) {
            snprintf(sub, sizeof sub, "%s.instances[%zu]", path, i);
            conf_err(c, cJSON_GetArrayItem(src->instances, (int)i), 0, sub, "unknown instance \"%s\"",
                     r->inst_names[i]);
        }
    }
    for (size_t i = 0; i < r->n_over; i++) {
        bool found = false;
        for (size_t k = 0; k < cfg->n_instances && !found; k++)
            found = cfg->instances[k].name && strcmp(cfg->instances[k].name, r->over[i].instance) == 0;
        if (!found) {
            snprintf(sub, sizeof sub, "%s.thresholds.%s", path, r->over[i].instance);
            conf_err(c, cJSON_GetObjectItemCaseSensitive(src->thresholds, r->over[i].instance), 1, sub,
                     "unknown instance \"%s\"", r->over[i].instance);
        }
    }
    if (src->receivers_list) {
        free(r->recv);
        r->recv = NULL;
        r->n_recv = 0;
        int i = 0;
        for (const cJSON *ch = src->receivers_list->child; ch; ch = ch->next, i++) {
            snprintf(sub, sizeof sub, "%s[%d]", src->path, i);
            int k = cJSON_IsString(ch) ? alerts_cfg_receiver(a, ch->valuestring) : -1;
            if (k < 0) {
                conf_err(c, ch, 0, sub, "unknown receiver %s%s%s", cJSON_IsString(ch) ? "\"" : "",
                         cJSON_IsString(ch) ? ch->valuestring : conf_type_name(ch), cJSON_IsString(ch) ? "\"" : "");
                continue;
            }
            r->recv = xrealloc(r->recv, (r->n_recv + 1) * sizeof *r->recv);
            r->recv[r->n_recv++] = (size_t)k;
        }
    }
}

/* ---- receivers, routes, silences -------------------------------------- */

static bool is_http_url(const char *u)
{
    return (strncmp(u, "http://", 7) == 0 && u[7]) || (strncmp(u, "https://", 8) == 0 && u[8]);
}

static void parse_receiver(struct conf_ctx *c, const cJSON *obj, struct alert_receiver *r, const char *path)
{
    char sub[256];
    char *type = NULL, *url = NULL, *tokfile = NULL;
    r->timeout_ms = 10000;
    r->connect_timeout_ms = 5000;
    r->resend_ms = 60000;
    r->repeat_ms = 4 * 3600000ull;
    r->max_backoff_ms = 300000;
    r->queue_size = 10000;
    const cJSON *url_node = NULL;
    for (const cJSON *ch = obj->child; ch; ch = ch->next) {
        conf_join_path(sub, sizeof sub, path, ch->string);
        const struct conf_opt *o = conf_find_opt(recv_opts, NELEM(recv_opts), ch->string);
        if (!o) {
            conf_err(c, ch, 1, sub, "unknown key \"%s\" (known: name, type, url, urls, headers, bearer_token_file, "
                                    "basic_auth, timeout, connect_timeout, resend_interval, repeat_interval, "
                                    "max_backoff, queue_size)", ch->string);
            continue;
        }
        uint64_t u = 0;
        bool b;
        const char *k = o->key;
        if (strcmp(k, "name") == 0) {
            if (conf_take(c, o, ch, sub, &r->name, &u, &b) == 0 && !utf8_valid(r->name))
                conf_err(c, ch, 0, sub, "the receiver name must be UTF-8 (it is the receiver label)");
        } else if (strcmp(k, "type") == 0)
            conf_take(c, o, ch, sub, &type, &u, &b);
        else if (strcmp(k, "url") == 0) {
            if (conf_take(c, o, ch, sub, &url, &u, &b) == 0)
                url_node = ch;
        } else if (strcmp(k, "urls") == 0) {
            if (take_string_list(c, ch, sub, &r->urls, &r->n_urls) == 0)
                for (size_t i = 0; i < r->n_urls; i++)
                    if (!is_http_url(r->urls[i])) {
                        char sub2[256];
                        snprintf(sub2, sizeof sub2, "%s[%zu]", sub, i);
                        conf_err(c, cJSON_GetArrayItem(ch, (int)i), 0, sub2, "\"%s\" is not an http:// or https:// URL",
                                 r->urls[i]);
                    }
        } else if (strcmp(k, "headers") == 0) {
            take_labels(c, ch, sub, false, &r->headers, &r->n_headers);
            for (size_t i = 0; i < r->n_headers; i++)
                if (strpbrk(r->headers[i].name, ":\r\n ") || strpbrk(r->headers[i].value, "\r\n"))
                    conf_err(c, ch, 0, sub, "header \"%s\": no colon, space or line break in names, no line break in values",
                             r->headers[i].name);
        } else if (strcmp(k, "bearer_token_file") == 0) {
            if (conf_take(c, o, ch, sub, &tokfile, &u, &b) == 0) {
                free(r->bearer);
                r->bearer = read_secret(c, ch, sub, "bearer token file", tokfile);
            }
        } else if (strcmp(k, "basic_auth") == 0) {
            struct label *ba = NULL;
            size_t nba = 0;
            bool pass_given = false; /* a file that cannot be read has its own error */
            if (take_labels(c, ch, sub, false, &ba, &nba) == 0) {
                for (size_t i = 0; i < nba; i++) {
                    char sub2[256];
                    conf_join_path(sub2, sizeof sub2, sub, ba[i].name);
                    const cJSON *node = cJSON_GetObjectItemCaseSensitive(ch, ba[i].name);
                    if (strcmp(ba[i].name, "username") == 0) {
                        free(r->basic_user);
                        r->basic_user = xstrdup(ba[i].value);
                    } else if (strcmp(ba[i].name, "password_file") == 0) {
                        free(r->basic_pass);
                        pass_given = true;
                        r->basic_pass = read_secret(c, node, sub2, "password file", ba[i].value);
                    } else {
                        conf_err(c, node, 1, sub2, "unknown key \"%s\" (known: username, password_file)", ba[i].name);
                    }
                }
                if (!r->basic_user || !pass_given)
                    conf_err(c, ch, 0, sub, "basic_auth needs username and password_file");
            }
            labels_free(ba, nba);
        } else if (o->type == OT_DURATION) {
            if (conf_take(c, o, ch, sub, NULL, &u, &b) == 0) {
                if (strcmp(k, "timeout") == 0)
                    r->timeout_ms = u;
                else if (strcmp(k, "connect_timeout") == 0)
                    r->connect_timeout_ms = u;
                else if (strcmp(k, "resend_interval") == 0)
                    r->resend_ms = u;
                else if (strcmp(k, "repeat_interval") == 0)
                    r->repeat_ms = u;
                else
                    r->max_backoff_ms = u;
            }
        } else if (strcmp(k, "queue_size") == 0) {
            if (conf_take(c, o, ch, sub, NULL, &u, &b) == 0)
                r->queue_size = (size_t)u;
        }
    }
    if (!r->name || !r->name[0])
        conf_err(c, obj, 0, path, "missing required key \"name\"");
    if (!type)
        conf_err(c, obj, 0, path, "missing required key \"type\" (webhook, alertmanager, slack)");
    else if (strcmp(type, "webhook") == 0)
        r->type = RECV_WEBHOOK;
    else if (strcmp(type, "alertmanager") == 0)
        r->type = RECV_ALERTMANAGER;
    else if (strcmp(type, "slack") == 0)
        r->type = RECV_SLACK;
    else {
        conf_join_path(sub, sizeof sub, path, "type");
        conf_err(c, cJSON_GetObjectItemCaseSensitive(obj, "type"), 0, sub,
                 "unknown receiver type \"%s\" (webhook, alertmanager, slack)", type);
    }
    if (url) {
        conf_join_path(sub, sizeof sub, path, "url");
        if (!is_http_url(url))
            conf_err(c, url_node, 0, sub, "\"%s\" is not an http:// or https:// URL", url);
        r->urls = xrealloc(r->urls, (r->n_urls + 1) * sizeof *r->urls);
        r->urls[r->n_urls++] = url;
        url = NULL;
    }
    if (!r->n_urls)
        conf_err(c, obj, 0, path, "missing required key \"url\"%s", type && strcmp(type, "alertmanager") == 0 ? " (or urls)" : "");
    if (r->bearer && r->basic_user)
        conf_err(c, obj, 0, path, "bearer_token_file and basic_auth are exclusive");
    free(type);
    free(url);
    free(tokfile);
}

static void parse_matchers(struct conf_ctx *c, const cJSON *obj, const char *path, struct label **v, size_t *n)
{
    take_labels(c, obj, path, true, v, n);
}

static void parse_recv_names(struct conf_ctx *c, const cJSON *arr, const char *path, const struct alerts_cfg *a,
                             size_t **out, size_t *n)
{
    if (!cJSON_IsArray(arr)) {
        conf_err(c, arr, 0, path, "expected an array of receiver names, got %s", conf_type_name(arr));
        return;
    }
    int i = 0;
    for (const cJSON *ch = arr->child; ch; ch = ch->next, i++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s[%d]", path, i);
        int k = cJSON_IsString(ch) ? alerts_cfg_receiver(a, ch->valuestring) : -1;
        if (k < 0) {
            conf_err(c, ch, 0, sub, "unknown receiver %s", cJSON_IsString(ch) ? ch->valuestring : conf_type_name(ch));
            continue;
        }
        *out = xrealloc(*out, (*n + 1) * sizeof **out);
        (*out)[(*n)++] = (size_t)k;
    }
}

static void parse_route(struct conf_ctx *c, const cJSON *obj, struct alert_route *r, const char *path,
                        const struct alerts_cfg *a)
{
    char sub[256];
    if (!cJSON_IsObject(obj)) {
        conf_err(c, obj, 0, path, "expected an object, got %s", conf_type_name(obj));
        return;
    }
    bool have = false;
    for (const cJSON *ch = obj->child; ch; ch = ch->next) {
        conf_join_path(sub, sizeof sub, path, ch->string);
        if (strcmp(ch->string, "match") == 0)
            parse_matchers(c, ch, sub, &r->match, &r->n_match);
        else if (strcmp(ch->string, "receivers") == 0) {
            parse_recv_names(c, ch, sub, a, &r->recv, &r->n_recv);
            have = true;
        } else
            conf_err(c, ch, 1, sub, "unknown key \"%s\" (known: match, receivers)", ch->string);
    }
    if (!have)
        conf_err(c, obj, 0, path, "missing required key \"receivers\"");
}

static void parse_silence(struct conf_ctx *c, const cJSON *obj, struct alert_silence *s, const char *path)
{
    char sub[256];
    if (!cJSON_IsObject(obj)) {
        conf_err(c, obj, 0, path, "expected an object, got %s", conf_type_name(obj));
        return;
    }
    s->starts_at = -INFINITY;
    s->ends_at = INFINITY;
    bool have_match = false, have_end = false;
    for (const cJSON *ch = obj->child; ch; ch = ch->next) {
        conf_join_path(sub, sizeof sub, path, ch->string);
        if (strcmp(ch->string, "matchers") == 0) {
            parse_matchers(c, ch, sub, &s->match, &s->n_match);
            have_match = s->n_match > 0;
        } else if (strcmp(ch->string, "starts_at") == 0 || strcmp(ch->string, "ends_at") == 0) {
            double t;
            have_end |= ch->string[0] == 'e';
            if (!cJSON_IsString(ch) || parse_time(ch->valuestring, &t) < 0) {
                conf_err(c, ch, 0, sub, "expected an RFC 3339 time such as \"2026-11-30T03:00:00Z\"");
                continue;
            }
            if (ch->string[0] == 's')
                s->starts_at = t;
            else {
                s->ends_at = t;
                have_end = true;
            }
        } else if (strcmp(ch->string, "comment") == 0) {
            if (!cJSON_IsString(ch))
                conf_err(c, ch, 0, sub, "expected a string, got %s", conf_type_name(ch));
            else {
                free(s->comment);
                s->comment = xstrdup(ch->valuestring);
            }
        } else {
            conf_err(c, ch, 1, sub, "unknown key \"%s\" (known: matchers, starts_at, ends_at, comment)", ch->string);
        }
    }
    if (!have_match)
        conf_err(c, obj, 0, path, "a silence needs at least one matcher");
    if (!have_end)
        conf_err(c, obj, 0, path, "missing required key \"ends_at\"");
    else if (s->ends_at <= s->starts_at)
        conf_err(c, obj, 0, path, "ends_at is not after starts_at");
}

int alerts_cfg_receiver(const struct alerts_cfg *a, const char *name)
{
    for (size_t i = 0; i < a->n_recv; i++)
        if (a->recv[i].name && strcmp(a->recv[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- compile ---------------------------------------------------------- */

static bool rule_applies(const struct alert_rule *r, const struct instance_cfg *ic)
{
    if (r->n_inst_names) {
        bool in = false;
        for (size_t i = 0; i < r->n_inst_names && !in; i++)
            in = strcmp(r->inst_names[i], ic->name) == 0;
        if (!in)
            return false;
    }
    for (size_t m = 0; m < r->n_inst_match; m++) {
        const char *want = r->inst_match[m].value, *have = NULL;
        if (strcmp(r->inst_match[m].name, "target") == 0)
            have = ic->name;
        for (size_t l = 0; l < ic->n_labels && !have; l++)
            if (strcmp(ic->labels[l].name, r->inst_match[m].name) == 0)
                have = ic->labels[l].value;
        if (!have || strcmp(have, want) != 0)
            return false;
    }
    return true;
}

void alerts_plan_compile(const struct alerts_cfg *a, const struct instance_cfg *ic, struct alert_plan *pl)
{
    *pl = (struct alert_plan){NULL, 0, 0};
    if (!ic->name)
        return;
    size_t n = 0;
    for (size_t r = 0; r < a->n_rules; r++)
        n += a->rules[r].enabled && rule_applies(&a->rules[r], ic);
    if (!n)
        return;
    pl->e = xmalloc(n * sizeof *pl->e); /* one block: it lives as long as the instance */
    for (size_t r = 0; r < a->n_rules; r++) {
        const struct alert_rule *ru = &a->rules[r];
        if (!ru->enabled || !rule_applies(ru, ic))
            continue;
        pl->e[pl->n].rule = (uint32_t)r;
        pl->e[pl->n].slot = ru->fig.increase || ru->p.drop_below > 0 ? (int32_t)pl->n_slots++ : -1;
        pl->e[pl->n].threshold = ru->p.threshold;
        for (size_t o = 0; o < ru->n_over; o++)
            if (strcmp(ru->over[o].instance, ic->name) == 0)
                pl->e[pl->n].threshold = ru->over[o].threshold;
        pl->n++;
    }
}

/* h over s (NULL: "") and a 0xff after it, which ends it: "ab","c" differs
 * from "a","bc" */
static uint64_t fnv_more(uint64_t h, const char *s) { return fnv1a_str(fnv1a_str(h, s ? s : ""), "\xff"); }

/* FNV-1a 64 of the section's text as parsed and of the secrets its
 * receivers read from files: equal hashes, same settings. A token file
 * rotated under an unchanged section is a change (the reload applies it). */
static uint64_t section_hash(const cJSON *node, const struct alerts_cfg *a)
{
    char *t = node ? cJSON_PrintUnformatted(node) : NULL;
    uint64_t h = fnv_more(FNV1A_BASIS, t);
    cJSON_free(t);
    for (size_t r = 0; r < a->n_recv; r++) {
        h = fnv_more(h, a->recv[r].bearer);
        h = fnv_more(h, a->recv[r].basic_pass);
    }
    return h;
}

struct alerts_cfg *alerts_cfg_parse(struct conf_ctx *c, const cJSON *node, const struct config *cfg)
{
    size_t errs0 = c->errs->count;
    struct alerts_cfg *a = xcalloc(1, sizeof *a);
    a->builtin = true;
    a->state_dir = xstrdup(ALERTS_DEFAULT_STATE_DIR);
    const cJSON *rules = NULL, *receivers = NULL, *route = NULL, *silences = NULL;
    if (node && !cJSON_IsObject(node)) {
        conf_err(c, node, 0, "alerts", "expected an object, got %s", conf_type_name(node));
        node = NULL;
    }
    for (const cJSON *ch = node ? node->child : NULL; ch; ch = ch->next) {
        char sub[256];
        conf_join_path(sub, sizeof sub, "alerts", ch->string);
        const struct conf_opt *o = conf_find_opt(top_opts, NELEM(top_opts), ch->string);
        uint64_t u;
        bool b;
        if (!o)
            conf_err(c, ch, 1, sub, "unknown key \"%s\" (known: builtin, state_dir, external_url, rules, receivers, "
                                    "route, silences)", ch->string);
        else if (strcmp(o->key, "builtin") == 0)
            conf_take(c, o, ch, sub, NULL, &u, &a->builtin);
        else if (strcmp(o->key, "state_dir") == 0) {
            if (conf_take(c, o, ch, sub, &a->state_dir, &u, &b) == 0 && a->state_dir[0] != '/')
                conf_err(c, ch, 0, sub, "state_dir must be an absolute path");
        } else if (strcmp(o->key, "external_url") == 0) {
            if (conf_take(c, o, ch, sub, &a->external_url, &u, &b) == 0 && !is_http_url(a->external_url))
                conf_err(c, ch, 0, sub, "\"%s\" is not an http:// or https:// URL", a->external_url);
        } else if (strcmp(o->key, "rules") == 0)
            rules = ch;
        else if (strcmp(o->key, "receivers") == 0)
            receivers = ch;
        else if (strcmp(o->key, "route") == 0)
            route = ch;
        else
            silences = ch;
    }
    /* receivers first: rules and routes name them */
    if (receivers && !cJSON_IsArray(receivers)) {
        conf_err(c, receivers, 0, "alerts.receivers", "expected an array, got %s", conf_type_name(receivers));
    } else if (receivers) {
        a->recv = xcalloc((size_t)cJSON_GetArraySize(receivers) + 1, sizeof *a->recv);
        int i = 0;
        for (const cJSON *ch = receivers->child; ch; ch = ch->next, i++) {
            char path[64];
            snprintf(path, sizeof path, "alerts.receivers[%d]", i);
            if (!cJSON_IsObject(ch)) {
                conf_err(c, ch, 0, path, "expected an object, got %s", conf_type_name(ch));
                continue;
            }
            struct alert_receiver *r = &a->recv[a->n_recv];
            parse_receiver(c, ch, r, path);
            if (r->name && alerts_cfg_receiver(a, r->name) >= 0)
                conf_err(c, cJSON_GetObjectItemCaseSensitive(ch, "name"), 0, path, "duplicate receiver name \"%s\"",
                         r->name);
            a->n_recv++;
        }
    }
    /* rules: the built-in set, then the configured ones (merged by name) */
    cJSON *bi = a->builtin ? cJSON_Parse(alerts_builtin_json) : NULL;
    size_t n_bi = bi ? (size_t)cJSON_GetArraySize(bi) : 0;
    size_t n_user = rules && cJSON_IsArray(rules) ? (size_t)cJSON_GetArraySize(rules) : 0;
    if (rules && !cJSON_IsArray(rules))
        conf_err(c, rules, 0, "alerts.rules", "expected an array, got %s", conf_type_name(rules));
    a->rules = xcalloc(n_bi + n_user + 1, sizeof *a->rules);
    struct rule_src *srcs = xcalloc(n_bi + n_user + 1, sizeof *srcs);
    char (*paths)[64] = xcalloc(n_bi + n_user + 1, sizeof *paths);
    bool *user = xcalloc(n_bi + n_user + 1, sizeof *user);
    struct conf_ctx bctx = {NULL, c->errs, "built-in rules"};
    int i = 0;
    for (const cJSON *ch = bi ? bi->child : NULL; ch; ch = ch->next, i++) {
        struct alert_rule *r = &a->rules[a->n_rules];
        rule_init(r);
        r->builtin = true;
        snprintf(paths[a->n_rules], sizeof paths[0], "alerts.builtin[%d]", i);
        srcs[a->n_rules].obj = ch;
        apply_rule(&bctx, ch, r, &srcs[a->n_rules], paths[a->n_rules]);
        a->n_rules++;
    }
    i = 0;
    for (const cJSON *ch = n_user ? rules->child : NULL; ch; ch = ch->next, i++) {
        char path[64];
        snprintf(path, sizeof path, "alerts.rules[%d]", i);
        if (!cJSON_IsObject(ch)) {
            conf_err(c, ch, 0, path, "expected an object, got %s", conf_type_name(ch));
            continue;
        }
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(ch, "name");
        size_t k = a->n_rules;
        if (cJSON_IsString(nm))
            for (size_t j = 0; j < a->n_rules; j++)
                if (a->rules[j].name && strcmp(a->rules[j].name, nm->valuestring) == 0) {
                    k = j;
                    break;
                }
        if (k < a->n_rules && user[k]) {
            conf_err(c, nm, 0, path, "duplicate rule name \"%s\" (also %s)", nm->valuestring, paths[k]);
            continue;
        }
        if (k < a->n_rules) {
            /* override of a built-in rule: its keys over the built-in ones */
            user[k] = true;
            snprintf(paths[k], sizeof paths[0], "%s", path);
            srcs[k].obj = ch;
            apply_rule(c, ch, &a->rules[k], &srcs[k], path);
            continue;
        }
        user[a->n_rules] = true;
        struct alert_rule *r = &a->rules[a->n_rules];
        rule_init(r);
        snprintf(paths[a->n_rules], sizeof paths[0], "%s", path);
        srcs[a->n_rules].obj = ch;
        apply_rule(c, ch, r, &srcs[a->n_rules], path);
        a->n_rules++;
    }
    if (route && !cJSON_IsArray(route)) {
        conf_err(c, route, 0, "alerts.route", "expected an array, got %s", conf_type_name(route));
    } else if (route) {
        a->routes = xcalloc((size_t)cJSON_GetArraySize(route) + 1, sizeof *a->routes);
        i = 0;
        for (const cJSON *ch = route->child; ch; ch = ch->next, i++) {
            char path[64];
            snprintf(path, sizeof path, "alerts.route[%d]", i);
            parse_route(c, ch, &a->routes[a->n_routes++], path, a);
        }
    }
    if (silences && !cJSON_IsArray(silences)) {
        conf_err(c, silences, 0, "alerts.silences", "expected an array, got %s", conf_type_name(silences));
    } else if (silences) {
        a->sil = xcalloc((size_t)cJSON_GetArraySize(silences) + 1, sizeof *a->sil);
        i = 0;
        for (const cJSON *ch = silences->child; ch; ch = ch->next, i++) {
            char path[64];
            snprintf(path, sizeof path, "alerts.silences[%d]", i);
            parse_silence(c, ch, &a->sil[a->n_sil++], path);
        }
    }
    for (size_t r = 0; r < a->n_rules; r++) {
        struct conf_ctx *rc = user[r] ? c : &bctx;
        check_rule(rc, &a->rules[r], &srcs[r], paths[r], a, cfg);
        if (a->rules[r].enabled)
            a->n_enabled++;
    }
    free(srcs);
    free(paths);
    free(user);
    cJSON_Delete(bi);
    if (c->errs->count > errs0) {
        alerts_cfg_free(a);
        return NULL;
    }
    a->src_hash = section_hash(node, a);
    return a;
}

void alerts_cfg_free(struct alerts_cfg *a)
{
    if (!a)
        return;
    free(a->state_dir);
    free(a->external_url);
    for (size_t i = 0; i < a->n_rules; i++)
        rule_clear(&a->rules[i]);
    free(a->rules);
    for (size_t i = 0; i < a->n_recv; i++) {
        struct alert_receiver *r = &a->recv[i];
        free(r->name);
        for (size_t k = 0; k < r->n_urls; k++)
            free(r->urls[k]);
        free(r->urls);
        labels_free(r->headers, r->n_headers);
        if (r->bearer)
            explicit_bzero(r->bearer, strlen(r->bearer));
        free(r->bearer);
        free(r->basic_user);
        if (r->basic_pass)
            explicit_bzero(r->basic_pass, strlen(r->basic_pass));
        free(r->basic_pass);
    }
    free(a->recv);
    for (size_t i = 0; i < a->n_routes; i++) {
        labels_free(a->routes[i].match, a->routes[i].n_match);
        free(a->routes[i].recv);
    }
    free(a->routes);
    for (size_t i = 0; i < a->n_sil; i++) {
        labels_free(a->sil[i].match, a->sil[i].n_match);
        free(a->sil[i].comment);
    }
    free(a->sil);
    free(a);
}
