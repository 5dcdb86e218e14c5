#!/usr/bin/env python3
"""Our own dashboard and rule linter: the rules of Grafana's dashboard-linter
and of mixtool (neither installs here), plus redpulse's own, checked on a
parsed PromQL tree rather than with regular expressions.

    lint.py [--metrics CAPTURE] [--rules FILE ...] [DASHBOARD.json ...]

Without arguments it lints dashboards/*.json and dashboards/rules/*.yml
against tests/dashboards/metrics-capture.prom (a real /metrics of the agent).
Prints one line per violation, `file: where: rule-id: message`, and exits 1
when there is any. The rule ids are listed in RULES."""
import glob
import json
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DS = {"type": "prometheus", "uid": "${datasource}"}

RULES = {
    # dashboard-linter
    "template-datasource": "a `datasource` variable of type datasource for Prometheus",
    "template-job": "a `job` query variable from label_values on ${datasource}",
    "template-target": "a `target` query variable from label_values restricted to $job",
    "template-on-time-change-reload": "query variables refresh on time range change (refresh 2)",
    "panel-datasource": "panels, queries and variables use the ${datasource} variable, never a fixed datasource",
    "panel-title-description": "every panel has a title and a description saying what a bad value is (`Bad:`)",
    "panel-units": "every panel sets a known unit",
    "panel-no-targets": "every data panel has queries",
    "target-promql": "every query is valid PromQL",
    "target-rate-interval": "range vectors in dashboards use $__rate_interval",
    "target-job-target-matchers": 'every selector has job=~"$job" and target=~"$target"',
    "target-counter-agg": "counters only inside rate/irate/increase, and those only over counters",
    # mixtool and ours
    "unit-suffix": "the unit matches the metric's suffix (_seconds, _bytes, _total, _ratio, _per_second)",
    "keyed-on-target": "no instance matchers, groupings or legends: series are keyed on target",
    "hardcoded-value": "job and target matchers use variables, not literal names",
    "no-inputs": "no __inputs (an export for sharing, not a dashboard to import as is)",
    "safe-division": "every division by a series filters the divisor (`/ (x > 0)`)",
    "fixed-uid": "a fixed, unique, URL-safe dashboard uid; unique panel ids",
    "dashboard-links": "a link to the other redpulse dashboards carrying variables and time",
    "schema-version": "schemaVersion 36 or newer (Grafana 9) and not editable",
    "panel-type": "core panel types of Grafana 9 only, none of the Angular ones later Grafanas removed",
    "metric-exists": "every metric exists in the agent's /metrics capture or is a shipped recording rule",
    "alert-name": "alert names are CamelCase, at most 40 characters",
    "alert-severity": "severity is critical, warning or info",
    "alert-summary": "a static summary (no templating)",
    "alert-description": "a description naming {{ $labels.target }}",
    "record-name": "recording rule names are level:metric:operation",
}

COUNTER_FUNCS = {"rate", "irate", "increase", "resets"}
AGGS = {"sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
        "count_values", "group"}
UNITS = {
    "seconds": {"s", "ms", "µs", "ns", "dtdurations", "dtdurationms", "clocks"},
    "time_rate": {"percentunit", "percent"},
    "ratio": {"percentunit", "percent", "none"},
    "bytes": {"bytes", "decbytes", "kbytes", "mbytes", "gbytes", "deckbytes", "decmbytes", "decgbytes"},
    "bytes_rate": {"Bps", "binBps", "KBs", "MBs"},
    "rate": {"ops", "reqps", "rps", "wps", "cps", "iops"},
    "count": {"short", "none", "locale"},
    "timestamp": {"dateTimeAsIso", "dateTimeAsUS", "dateTimeFromNow", "dateTimeAsSystem"},
}
KNOWN_UNITS = set().union(*UNITS.values()) | {"short", "none"}
# core panels of Grafana 9.0 that are not Angular (graph, singlestat,
# table-old ... stopped loading in Grafana 11)
PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "bargauge", "table", "text", "state-timeline",
               "status-history", "barchart", "histogram", "heatmap", "piechart", "logs", "news", "nodeGraph",
               "dashlist", "alertlist", "annolist", "geomap", "candlestick"}


# ---------------------------------------------------------------- PromQL --

class PromQLError(Exception):
    pass


class Node:
    def __init__(self, kind, **kw):
        self.kind = kind
        self.__dict__.update(kw)

    def children(self):
        for k in ("args", "lhs", "rhs", "expr"):
            v = getattr(self, k, None)
            if isinstance(v, list):
                yield from v
            elif isinstance(v, Node):
                yield v


TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<dur>(?:\d+(?:ms|[smhdwy]))+(?![\w:]))
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w:])|0x[0-9a-fA-F]+|Inf\b|NaN\b)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<id>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|==|!=|<=|>=|[-+*/%^<>=(){},])
""", re.X)


def tokenize(s):
    out, i = [], 0
    while i < len(s):
        m = TOKEN.match(s, i)
        if not m:
            raise PromQLError("unexpected %r at offset %d" % (s[i:i + 10], i))
        i = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    out.append(("eof", ""))
    return out


BINARY = {"or": 1, "and": 2, "unless": 2, "==": 3, "!=": 3, "<=": 3, "<": 3, ">=": 3, ">": 3,
          "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5, "^": 6}
COMPARISONS = {"==", "!=", "<=", "<", ">=", ">"}


class Parser:
    def __init__(self, s):
        self.t = tokenize(s)
        self.i = 0

    def peek(self, k=0):
        return self.t[self.i + k]

    def next(self):
        tok = self.t[self.i]
        self.i += 1
        return tok

    def expect(self, text):
        tok = self.next()
        if tok[1] != text:
            raise PromQLError("expected %r, got %r" % (text, tok[1] or "end"))
        return tok

    def parse(self):
        e = self.expr(1)
        if self.peek()[0] != "eof":
            raise PromQLError("unexpected %r" % self.peek()[1])
        return e

    def expr(self, min_prec):
        """Precedence climbing; ^ is right-associative, the rest left."""
        lhs = self.unary()
        while True:
            kind, text = self.peek()
            if kind not in ("op", "id") or text not in BINARY or BINARY[text] < min_prec:
                return lhs
            prec = BINARY[text]
            self.next()
            node = Node("binary", op=text, bool=False, matching=None, group=None, lhs=lhs)
            if self.peek()[1] == "bool":
                self.next()
                node.bool = True
            if self.peek()[1] in ("on", "ignoring"):
                node.matching = (self.next()[1], self.labels())
                if self.peek()[1] in ("group_left", "group_right"):
                    g = self.next()[1]
                    node.group = (g, self.labels() if self.peek()[1] == "(" else [])
            node.rhs = self.expr(prec if text == "^" else prec + 1)
            lhs = node

    def labels(self):
        self.expect("(")
        out = []
        while self.peek()[1] != ")":
            kind, text = self.next()
            if kind != "id":
                raise PromQLError("expected a label name, got %r" % text)
            out.append(text)
            if self.peek()[1] == ",":
                self.next()
        self.expect(")")
        return out

    def unary(self):
        if self.peek()[1] in ("-", "+"):
            op = self.next()[1]
            return Node("unary", op=op, expr=self.unary())
        return self.postfix(self.primary())

    def postfix(self, node):
        kind, text = self.peek()
        if kind == "range":
            self.next()
            rng = text[1:-1].strip()
            if node.kind == "selector" and node.range is None:
                node.range = rng
            else:
                node = Node("subquery", expr=node, range=rng)
        if self.peek()[1] == "offset":
            self.next()
            if self.peek()[1] == "-":
                self.next()
            if self.next()[0] != "dur":
                raise PromQLError("expected a duration after offset")
        return node

    def primary(self):
        kind, text = self.next()
        if kind == "num":
            return Node("number", value=float(text) if not text.startswith("0x") else float(int(text, 16)))
        if kind == "str":
            return Node("string", value=text[1:-1])
        if text == "(":
            e = self.expr(1)
            self.expect(")")
            return Node("paren", expr=e)
        if text == "{":
            return self.selector(None)
        if kind != "id":
            raise PromQLError("unexpected %r" % (text or "end"))
        if text in AGGS and self.peek()[1] in ("(", "by", "without"):
            grouping = None
            if self.peek()[1] in ("by", "without"):
                grouping = (self.next()[1], self.labels())
            args = self.call_args()
            if self.peek()[1] in ("by", "without"):
                grouping = (self.next()[1], self.labels())
            return Node("agg", op=text, grouping=grouping, args=args)
        if self.peek()[1] == "(":
            return Node("call", func=text, args=self.call_args())
        if self.peek()[1] == "{":
            self.next()
            return self.selector(text)
        return Node("selector", name=text, matchers=[], range=None)

    def call_args(self):
        self.expect("(")
        args = []
        while self.peek()[1] != ")":
            args.append(self.expr(1))
            if self.peek()[1] == ",":
                self.next()
            elif self.peek()[1] != ")":
                raise PromQLError("expected ',' or ')', got %r" % self.peek()[1])
        self.expect(")")
        return args

    def selector(self, name):
        matchers = []
        while self.peek()[1] != "}":
            kind, label = self.next()
            if kind != "id":
                raise PromQLError("expected a label name in a selector, got %r" % label)
            op = self.next()[1]
            if op not in ("=", "!=", "=~", "!~"):
                raise PromQLError("bad matcher operator %r" % op)
            kind, val = self.next()
            if kind != "str":
                raise PromQLError("expected a string after %s%s" % (label, op))
            matchers.append((label, op, val[1:-1]))
            if self.peek()[1] == ",":
                self.next()
        self.expect("}")
        for label, _, val in matchers:
            if label == "__name__":
                name = val
        if name is None:
            raise PromQLError("a selector without a metric name")
        return Node("selector", name=name, matchers=matchers, range=None)


def parse(expr):
    return Parser(expr).parse()


def walk(node, parent=None):
    yield node, parent
    for c in node.children():
        yield from walk(c, node)


def unparen(n):
    while n.kind == "paren":
        n = n.expr
    return n


# ------------------------------------------------------------ the facts --

def load_capture(path):
    """{series name: type} from exposition text; summary and histogram
    parts get their own names (_sum and _count are counters)."""
    types, names = {}, set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("# TYPE "):
                _, _, name, typ = line.split()[:4]
                types[name] = typ
            elif line.strip() and not line.startswith("#"):
                names.add(re.split(r"[{ ]", line, 1)[0])
    out = {}
    for n in names:
        if n in types:
            out[n] = types[n]
            continue
        for suf in ("_sum", "_count", "_bucket"):
            if n.endswith(suf) and types.get(n[:-len(suf)]) in ("summary", "histogram"):
                out[n] = "counter"
                break
        else:
            out[n] = "untyped"
    return out


def suffix_kind(name):
    if ":" in name:  # a recording rule: level:metric:operation
        parts = name.split(":")
        metric, op = parts[1], parts[-1]
        if op.startswith("rate"):
            k = suffix_kind(metric + "_total")
            return {"seconds_counter": "time_rate", "bytes_counter": "bytes_rate", "counter": "rate"}.get(k)
        if op == "ratio":
            return "ratio"
        return suffix_kind(metric)
    for suf, kind in (("_timestamp_seconds", "timestamp"), ("_seconds_total", "seconds_counter"),
                      ("_bytes_total", "bytes_counter"), ("_total", "counter"), ("_count", "counter"),
                      ("_bytes_per_second", "bytes_rate"), ("_per_second", "rate"), ("_seconds", "seconds"),
                      ("_bytes", "bytes"), ("_ratio", "ratio")):
        if name.endswith(suf):
            return kind
    return None


def expr_kind(n):
    """What the expression measures, from its metrics' suffixes (None:
    unknown or dimensionless; then any unit goes)."""
    n = unparen(n)
    if n.kind in ("number", "string"):
        return None
    if n.kind == "selector":
        return suffix_kind(n.name)
    if n.kind in ("unary", "subquery"):
        return expr_kind(n.expr)
    if n.kind == "agg":
        if n.op in ("count", "count_values", "group"):
            return "count"
        return expr_kind(n.args[-1])
    if n.kind == "call":
        if n.func in ("rate", "irate"):
            return {"seconds_counter": "time_rate", "bytes_counter": "bytes_rate",
                    "counter": "rate"}.get(expr_kind(n.args[0]))
        if n.func == "increase":
            return {"seconds_counter": "seconds", "bytes_counter": "bytes",
                    "counter": "count"}.get(expr_kind(n.args[0]))
        if n.func == "time":
            return "timestamp"
        for a in n.args:
            if unparen(a).kind not in ("number", "string"):
                return expr_kind(a)
        return None
    if n.kind == "binary":
        lk, rk = expr_kind(n.lhs), expr_kind(n.rhs)
        if n.op in COMPARISONS and not n.bool or n.op in ("and", "unless", "or"):
            return lk
        if n.op == "/":
            if unparen(n.rhs).kind == "number":
                return lk
            if lk == rk:
                return "ratio"
            if lk == "time_rate" and rk == "rate":
                return "seconds"
            return None
        if n.op == "-" and lk == rk == "timestamp":
            return "seconds"
        if lk is None or rk is None or lk == rk:
            return lk or rk
        return None
    return None


# ----------------------------------------------------------- the linter --

class Linter:
    def __init__(self, metrics, recorded):
        self.metrics = metrics        # series name -> type from the capture
        self.recorded = set(recorded)  # recording rule names
        self.out = []

    def v(self, where, rule, msg):
        assert rule in RULES, rule
        self.out.append((where, rule, msg))

    # -- PromQL shared by dashboards and rules
    def check_expr(self, where, expr, dashboard):
        try:
            tree = parse(expr)
        except PromQLError as e:
            self.v(where, "target-promql", "%s in %r" % (e, expr))
            return None
        for n, parent in walk(tree):
            if n.kind == "selector":
                self.check_selector(where, n, parent, dashboard)
            elif n.kind == "binary":
                if n.op == "/" and not self.safe_divisor(n.rhs):
                    self.v(where, "safe-division", "divisor not filtered (use `/ (x > 0)`): %r" % expr)
                if n.matching and "instance" in n.matching[1]:
                    self.v(where, "keyed-on-target", "matching on instance in %r" % expr)
            elif n.kind == "agg" and n.grouping and "instance" in n.grouping[1] and n.grouping[0] == "by":
                self.v(where, "keyed-on-target", "grouping by instance in %r" % expr)
            elif n.kind == "subquery" and dashboard and n.range.split(":")[0] not in ("$__rate_interval",
                                                                                     "${__rate_interval}"):
                self.v(where, "target-rate-interval", "subquery range [%s] in %r" % (n.range, expr))
        return tree

    def safe_divisor(self, rhs):
        r = unparen(rhs)
        if r.kind == "number":
            return r.value != 0
        if r.kind == "binary" and r.op in (">", ">=") and not r.bool:
            bound = unparen(r.rhs)
            return bound.kind == "number" and (bound.value > 0 or (r.op == ">" and bound.value == 0))
        if r.kind == "call" and r.func == "clamp_min" and len(r.args) == 2:
            b = unparen(r.args[1])
            return b.kind == "number" and b.value > 0
        return False

    def check_selector(self, where, n, parent, dashboard):
        name = n.name
        typ = self.metrics.get(name)
        if typ is None and name not in self.recorded:
            self.v(where, "metric-exists", "%s is neither in the /metrics capture nor a recording rule" % name)
        counter = typ == "counter"
        in_counter_fn = parent is not None and parent.kind == "call" and parent.func in COUNTER_FUNCS
        if counter and not in_counter_fn:
            self.v(where, "target-counter-agg", "counter %s used outside rate/irate/increase" % name)
        if in_counter_fn and typ is not None and not counter:
            self.v(where, "target-counter-agg", "%s(%s): %s is a %s, not a counter" % (parent.func, name, name, typ))
        m = {label: (op, val) for label, op, val in n.matchers}
        if "instance" in m:
            self.v(where, "keyed-on-target", "%s matches on instance" % name)
        if dashboard:
            if n.range is not None and n.range not in ("$__rate_interval", "${__rate_interval}"):
                self.v(where, "target-rate-interval", "%s[%s]: use [$__rate_interval]" % (name, n.range))
            for label in ("job", "target"):
                op, val = m.get(label, (None, None))
                if op is None:
                    self.v(where, "target-job-target-matchers", "%s has no %s matcher" % (name, label))
                elif "$" not in val:
                    self.v(where, "hardcoded-value", '%s{%s%s"%s"}: use $%s' % (name, label, op, val, label))
                elif op not in ("=~", "=") or val not in ("$" + label, "${%s}" % label):
                    self.v(where, "target-job-target-matchers", '%s: %s%s"%s" should be %s=~"$%s"'
                           % (name, label, op, val, label, label))
        else:
            for label in ("job", "target"):
                if label in m and m[label][1] and not m[label][1].startswith("$"):
                    self.v(where, "hardcoded-value", '%s{%s%s"%s"} in a shipped rule' % (name, label, *m[label]))

    # -- dashboards
    def dashboard(self, path, d, all_dashboards):
        w = os.path.basename(path)
        if "__inputs" in d:
            self.v(w, "no-inputs", "__inputs present (re-export without 'share externally')")
        uid = d.get("uid")
        if not isinstance(uid, str) or not re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", uid):
            self.v(w, "fixed-uid", "uid %r is not a fixed URL-safe string of at most 40 characters" % uid)
        elif [o.get("uid") for o in all_dashboards].count(uid) > 1:
            self.v(w, "fixed-uid", "uid %r used by two dashboards" % uid)
        if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
            self.v(w, "schema-version", "schemaVersion %r < 36 (Grafana 9)" % d.get("schemaVersion"))
        if d.get("editable", True):
            self.v(w, "schema-version", "editable is true (dashboard-linter: provisioned dashboards are read-only)")
        if not d.get("title"):
            self.v(w, "panel-title-description", "dashboard has no title")
        self.links(w, d, all_dashboards)
        self.templating(w, d)
        self.datasource_refs(w, d)
        ids = []
        for p in self.panels(d):
            ids.append(p.get("id"))
            self.panel(w, p)
        dup = sorted({i for i in ids if ids.count(i) > 1}, key=str)
        if dup or None in ids:
            self.v(w, "fixed-uid", "panel ids missing or repeated: %r" % (dup or [None]))

    def panels(self, d):
        for p in d.get("panels", []):
            yield p
            yield from p.get("panels", [])

    def links(self, w, d, all_dashboards):
        others = [o for o in all_dashboards if o is not d]
        for o in others:
            ok = False
            for link in d.get("links", []):
                carries = link.get("includeVars") and link.get("keepTime")
                if link.get("type") == "dashboards" and set(link.get("tags", [])) <= set(o.get("tags", [])) \
                        and link.get("tags"):
                    ok = ok or carries
                elif link.get("type") == "link" and o.get("uid") and "/d/%s" % o["uid"] in link.get("url", ""):
                    ok = ok or carries
            if not ok:
                self.v(w, "dashboard-links", "no link to %r carrying variables and time" % o.get("title"))

    def templating(self, w, d):
        vs = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
        ds = vs.get("datasource")
        if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
            self.v(w, "template-datasource", "no `datasource` variable of type datasource for prometheus")
        for name, rule in (("job", "template-job"), ("target", "template-target")):
            v = vs.get(name)
            if not v or v.get("type") != "query":
                self.v(w, rule, "no `%s` query variable" % name)
                continue
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or "")
            m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", q)
            if not m or m.group(2) != name:
                self.v(w, rule, "%s: query %r is not label_values(..., %s)" % (name, q, name))
            elif name == "target" and not re.search(r'job=~"\$job"', m.group(1)):
                self.v(w, rule, "target: query %r does not restrict to $job" % q)
        for name, v in vs.items():
            if v.get("type") == "query":
                if v.get("datasource") != DS:
                    self.v(w, "panel-datasource", "variable %s: datasource %r" % (name, v.get("datasource")))
                if v.get("refresh") != 2:
                    self.v(w, "template-on-time-change-reload", "variable %s: refresh %r, want 2" % (name, v.get("refresh")))

    def datasource_refs(self, w, d):
        def visit(x, path):
            if isinstance(x, dict):
                for k, val in x.items():
                    if k == "datasource" and val != DS and not (
                            path.startswith("annotations") and val == {"type": "grafana", "uid": "-- Grafana --"}):
                        if not (path.startswith("templating") and x.get("type") == "datasource"):
                            self.v(w, "panel-datasource", "%s.datasource is %r, not ${datasource}" % (path, val))
                    visit(val, "%s.%s" % (path, k) if path else k)
            elif isinstance(x, list):
                for i, val in enumerate(x):
                    visit(val, "%s[%d]" % (path, i))
        visit(d, "")

    def panel(self, w, p):
        where = "%s: panel %r" % (w, p.get("title"))
        if p.get("type") not in PANEL_TYPES:
            self.v(where, "panel-type", "panel type %r is not a core Grafana 9 panel (or is Angular)" % p.get("type"))
        if p.get("type") == "row":
            return
        if not (p.get("title") or "").strip():
            self.v(where, "panel-title-description", "panel %s has no title" % p.get("id"))
        desc = (p.get("description") or "").strip()
        if len(desc) < 40 or "Bad:" not in desc:
            self.v(where, "panel-title-description", "description missing, too short or without 'Bad:'")
        if p.get("type") == "text":
            return
        targets = p.get("targets") or []
        if not targets:
            self.v(where, "panel-no-targets", "no queries")
        fc = p.get("fieldConfig", {})
        unit = fc.get("defaults", {}).get("unit")
        if not unit:
            self.v(where, "panel-units", "no unit")
        elif unit not in KNOWN_UNITS:
            self.v(where, "panel-units", "unknown unit %r" % unit)
        for o in fc.get("overrides", []):
            for prop in o.get("properties", []):
                if prop.get("id") == "unit" and prop.get("value") not in KNOWN_UNITS:
                    self.v(where, "panel-units", "unknown unit %r in an override" % prop.get("value"))
        for t in targets:
            tw = "%s %s" % (where, t.get("refId"))
            if "instance" in re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat") or ""):
                self.v(tw, "keyed-on-target", "legend uses {{instance}}")
            tree = self.check_expr(tw, t.get("expr", ""), True)
            if tree is None:
                continue
            kind = expr_kind(tree)
            u = self.unit_for(fc, t.get("refId"))
            if kind in UNITS and u in KNOWN_UNITS and u not in UNITS[kind]:
                self.v(tw, "unit-suffix", "unit %r for a %s expression (want one of %s): %r"
                       % (u, kind, ", ".join(sorted(UNITS[kind])), t.get("expr")))

    def unit_for(self, fc, ref):
        for o in fc.get("overrides", []):
            m = o.get("matcher", {})
            if (m.get("id") == "byFrameRefID" and m.get("options") == ref) or \
                    (m.get("id") == "byName" and m.get("options") == "Value #%s" % ref):
                for prop in o.get("properties", []):
                    if prop.get("id") == "unit":
                        return prop.get("value")
        return fc.get("defaults", {}).get("unit")

    # -- rule files
    def rules(self, path, doc):
        w = os.path.basename(path)
        for g in (doc or {}).get("groups", []):
            for r in g.get("rules", []):
                name = r.get("alert") or r.get("record")
                where = "%s: %s" % (w, name)
                self.check_expr(where, str(r.get("expr", "")), False)
                if "record" in r:
                    if not re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", r["record"]):
                        self.v(where, "record-name", "%r is not level:metric:operation" % r["record"])
                    continue
                if not re.fullmatch(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)*", name or "") or len(name) > 40:
                    self.v(where, "alert-name", "%r is not CamelCase of at most 40 characters" % name)
                if (r.get("labels") or {}).get("severity") not in ("critical", "warning", "info"):
                    self.v(where, "alert-severity", "severity %r" % (r.get("labels") or {}).get("severity"))
                ann = r.get("annotations") or {}
                if not ann.get("summary") or "{{" in ann["summary"]:
                    self.v(where, "alert-summary", "summary missing or templated: %r" % ann.get("summary"))
                if not re.search(r"\{\{\s*\$labels\.target\s*\}\}", ann.get("description") or ""):
                    self.v(where, "alert-description", "description does not name {{ $labels.target }}")


def recorded_names(rule_docs):
    return [r["record"] for doc in rule_docs for g in (doc or {}).get("groups", [])
            for r in g.get("rules", []) if "record" in r]


def lint_docs(dashboards, rule_docs, metrics):
    """[(where, rule id, message)] for parsed dashboards [(name, dict)] and
    rule files [(name, doc)], against metrics {series name: type}."""
    linter = Linter(metrics, recorded_names(doc for _, doc in rule_docs))
    for p, d in dashboards:
        linter.dashboard(p, d, [x for _, x in dashboards])
    for p, doc in rule_docs:
        linter.rules(p, doc)
    return linter.out


def lint(dashboards, rule_files, capture):
    """lint_docs() on files."""
    with_docs = []
    for p in rule_files:
        with open(p, encoding="utf-8") as f:
            with_docs.append((p, yaml.safe_load(f)))
    ds = []
    for p in dashboards:
        with open(p, encoding="utf-8") as f:
            ds.append((p, json.load(f)))
    return lint_docs(ds, with_docs, load_capture(capture))


def main(argv):
    capture = os.path.join(HERE, "metrics-capture.prom")
    rules, dashboards = [], []
    it = iter(argv)
    for a in it:
        if a == "--metrics":
            capture = next(it)
        elif a == "--rules":
            rules.append(next(it))
        else:
            dashboards.append(a)
    if not dashboards and not rules:
        dashboards = sorted(glob.glob(os.path.join(ROOT, "dashboards", "*.json")))
        rules = sorted(glob.glob(os.path.join(ROOT, "dashboards", "rules", "*.yml")))
    out = lint(dashboards, rules, capture)
    for where, rule, msg in out:
        print("%s: %s: %s" % (where, rule, msg))
    n_panels = 0
    for p in dashboards:
        with open(p, encoding="utf-8") as f:
            n_panels += sum(1 for x in json.load(f)["panels"] if x.get("type") != "row")
    print("%d violations in %d dashboards (%d panels) and %d rule files" % (len(out), len(dashboards), n_panels,
                                                                          len(rules)))
    return 1 if out else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
