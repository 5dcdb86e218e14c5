#!/usr/bin/env python3
"""The linter's own test: the shipped dashboards and rules are clean, and a
copy with one violation of each rule is caught by that rule (and only by
it). Also checks that dashboards/*.json are what dashboards/build.py writes."""
import copy
import glob
import json
import os
import subprocess
import sys
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lint  # noqa: E402

ROOT = lint.ROOT
DASH = os.path.join(ROOT, "dashboards")


def load():
    ds = []
    for p in sorted(glob.glob(os.path.join(DASH, "*.json"))):
        with open(p, encoding="utf-8") as f:
            ds.append((os.path.basename(p), json.load(f)))
    rules = []
    for p in sorted(glob.glob(os.path.join(DASH, "rules", "*.yml"))):
        with open(p, encoding="utf-8") as f:
            rules.append((os.path.basename(p), yaml.safe_load(f)))
    return ds, rules


METRICS = lint.load_capture(os.path.join(HERE, "metrics-capture.prom"))


def panel(d, title):
    for p in d["panels"]:
        if p.get("title") == title:
            return p
    raise KeyError(title)


def var(d, name):
    return next(v for v in d["templating"]["list"] if v["name"] == name)


def alert(rules, name):
    for _, doc in rules:
        for g in doc["groups"]:
            for r in g["rules"]:
                if r.get("alert") == name or r.get("record") == name:
                    return r
    raise KeyError(name)


# one mutation per rule: (rule id, function(fleet dashboard, both dashboards, rule docs))
def m_expr(title, ref, f):
    def mut(fleet, ds, rules):
        t = next(t for t in panel(fleet, title)["targets"] if t["refId"] == ref)
        t["expr"] = f(t["expr"])
    return mut


def setp(title, f):
    return lambda fleet, ds, rules: f(panel(fleet, title))


def seta(name, f):
    return lambda fleet, ds, rules: f(alert(rules, name))


MUTATIONS = [
    ("template-datasource", lambda fleet, ds, rules: fleet["templating"]["list"].remove(var(fleet, "datasource"))),
    ("template-job", lambda fleet, ds, rules: var(fleet, "job").update(query="label_values(redis_up, instance)")),
    ("template-target", lambda fleet, ds, rules: var(fleet, "target").update(
        query="label_values(redis_up, target)")),
    ("template-on-time-change-reload", lambda fleet, ds, rules: var(fleet, "job").update(refresh=1)),
    ("panel-datasource", setp("Commands/s, all instances", lambda p: p.update(datasource={"type": "prometheus",
                                                                          "uid": "P1809F7CD0C75ACF3"}))),
    ("panel-title-description", setp("Fragmentation bytes", lambda p: p.update(description="Fragmentation."))),
    ("panel-units", setp("Fragmentation bytes", lambda p: p["fieldConfig"]["defaults"].pop("unit"))),
    ("panel-no-targets", setp("Fragmentation bytes", lambda p: p.update(targets=[]))),
    ("target-promql", m_expr("Fragmentation bytes", "A", lambda e: "sum(" + e)),
    ("target-rate-interval", m_expr("Average command latency", "A",
                                    lambda e: e.replace("[$__rate_interval]", "[5m]", 1))),
    ("target-job-target-matchers", m_expr("Fragmentation bytes", "A", lambda e: e.replace(',target=~"$target"', ""))),
    ("target-counter-agg", m_expr("Evictions and rejected connections", "A",
                                  lambda e: 'sum by (job, target) (redis_evicted_keys_total{job=~"$job",'
                                            'target=~"$target"})')),
    ("target-counter-agg", m_expr("Fragmentation bytes", "A",
                                  lambda e: 'rate(redis_mem_fragmentation_bytes{job=~"$job",target=~"$target"}'
                                            '[$__rate_interval])')),
    ("unit-suffix", setp("Fragmentation bytes", lambda p: p["fieldConfig"]["defaults"].update(unit="s"))),
    ("unit-suffix", setp("Top 10 main-thread CPU", lambda p: p["fieldConfig"]["defaults"].update(unit="ops"))),
    ("keyed-on-target", m_expr("Refused writes/s by reason", "A",
                               lambda e: e.replace("by (job, target, err)", "by (instance, err)"))),
    ("keyed-on-target", setp("Fragmentation bytes", lambda p: p["targets"][0].update(legendFormat="{{instance}}"))),
    ("hardcoded-value", m_expr("Fragmentation bytes", "A", lambda e: e.replace('target=~"$target"',
                                                                              'target=~"cache-1"'))),
    ("no-inputs", lambda fleet, ds, rules: fleet.update(__inputs=[{"name": "DS_PROMETHEUS", "type": "datasource"}])),
    ("safe-division", m_expr("Average command latency", "A", lambda e: e.replace(" > 0)", ")"))),
    ("safe-division", m_expr("Average command latency", "A",  # the filter binds to the quotient, not the divisor
                             lambda e: e.replace("/ (", "/ ").replace(" > 0)", " > 0"))),
    ("fixed-uid", lambda fleet, ds, rules: fleet.update(uid=None)),
    ("fixed-uid", lambda fleet, ds, rules: fleet.update(uid=ds[1][1]["uid"])),
    ("dashboard-links", lambda fleet, ds, rules: fleet.update(links=[])),
    ("dashboard-links", lambda fleet, ds, rules: fleet["links"][0].update(includeVars=False)),
    ("schema-version", lambda fleet, ds, rules: fleet.update(schemaVersion=27)),
    ("panel-type", setp("Fragmentation bytes", lambda p: p.update(type="graph"))),
    ("schema-version", lambda fleet, ds, rules: fleet.update(editable=True)),
    ("metric-exists", m_expr("Fragmentation bytes", "A", lambda e: e.replace("redis_mem_fragmentation_bytes",
                                                                            "redis_mem_fragmentation_byte"))),
    ("metric-exists", seta("RedisDown", lambda r: r.update(expr="redis_upp == 0"))),
    ("alert-name", seta("RedisDown", lambda r: r.update(alert="redis_down"))),
    ("alert-name", seta("RedisDown", lambda r: r.update(alert="RedisDownForLongerThanAnyoneShouldEverWait"))),
    ("alert-severity", seta("RedisDown", lambda r: r["labels"].update(severity="page"))),
    ("alert-summary", seta("RedisDown", lambda r: r["annotations"].update(summary="{{ $labels.target }} down"))),
    ("alert-description", seta("RedisDown", lambda r: r["annotations"].update(description="Redis is down."))),
    ("record-name", lambda fleet, ds, rules: rules[1][1]["groups"][0]["rules"].append(
        {"record": "redis_write_rate", "expr": "target:redis_write_commands:rate1m"})),
    ("hardcoded-value", seta("RedisDown", lambda r: r.update(expr='redis_up{target="cache-1"} == 0'))),
    ("target-counter-agg", seta("RedisRejectedConnections",
                                lambda r: r.update(expr="redis_rejected_connections_total > 0"))),
    ("safe-division", seta("RedisMemoryNearMax",
                           lambda r: r.update(expr="redis_memory_used_bytes / redis_memory_max_bytes > 0.9"))),
]


class Lint(unittest.TestCase):
    def test_every_rule_has_a_violation_case(self):
        self.assertEqual({r for r, _ in MUTATIONS}, set(lint.RULES))

    def test_shipped_files_are_clean(self):
        ds, rules = load()
        self.assertEqual(len(ds), 2)
        self.assertEqual(lint.lint_docs(ds, rules, METRICS), [])

    def test_each_violation_caught_by_its_rule(self):
        for i, (rule, mutate) in enumerate(MUTATIONS):
            with self.subTest(case=i, rule=rule):
                ds, rules = load()
                fleet = next(d for n, d in ds if n == "redpulse-fleet.json")
                mutate(fleet, ds, rules)
                got = lint.lint_docs(ds, rules, METRICS)
                self.assertTrue(got, "case %d (%s) not caught" % (i, rule))
                self.assertEqual({r for _, r, _ in got}, {rule}, got)

    def test_promtool_tests_cover_every_rule(self):
        """rules_test.yml has, for every alert, a case where it fires and one
        where it does not, and a test of every recording rule."""
        with open(os.path.join(HERE, "rules_test.yml"), encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        firing, quiet, exprs = set(), set(), set()
        for t in doc["tests"]:
            for a in t.get("alert_rule_test", []):
                (firing if a.get("exp_alerts") else quiet).add(a["alertname"])
            for e in t.get("promql_expr_test", []):
                if e.get("exp_samples"):
                    exprs.add(e["expr"])
        _, rules = load()
        alerts = {r["alert"] for _, d in rules for g in d["groups"] for r in g["rules"] if "alert" in r}
        records = {r["record"] for _, d in rules for g in d["groups"] for r in g["rules"] if "record" in r}
        self.assertEqual(len(alerts), 13)
        self.assertEqual(alerts - firing, set(), "alerts never tested firing")
        self.assertEqual(alerts - quiet, set(), "alerts never tested quiet")
        self.assertEqual(records - exprs, set(), "recording rules without a test")

    def test_parser(self):
        p = lint.parse
        self.assertEqual(lint.expr_kind(p("rate(a_seconds_total[1m]) / (rate(a_total[1m]) > 0)")), "seconds")
        t = p("a / b > 0")  # (a / b) > 0
        self.assertEqual((t.kind, t.op, t.lhs.op), ("binary", ">", "/"))
        t = p("2 ^ 3 ^ 2")  # right-associative
        self.assertEqual((t.op, lint.unparen(t.rhs).op), ("^", "^"))
        t = p("a - b - c")  # left-associative
        self.assertEqual(t.lhs.kind, "binary")
        t = p('sum without (cmd) (x{a="b"}) * on (job) group_left (role) y')
        self.assertEqual((t.matching, t.group), (("on", ["job"]), ("group_left", ["role"])))
        t = p("rate(x_total[5m] offset 1h30m) / 2")
        self.assertEqual(lint.unparen(t.lhs).args[0].range, "5m")
        for bad in ("x offset y", "sum(x", "x{a=b}", "x +", "{a=\"b\"}", "x{a=\"b\"", "rate(x[5m]) ) "):
            with self.assertRaises(lint.PromQLError, msg=bad):
                p(bad)

    def test_dashboards_match_their_generator(self):
        r = subprocess.run([sys.executable, os.path.join(DASH, "build.py"), "--check"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_command_line_reports_and_fails(self):
        ds, _ = load()
        fleet = copy.deepcopy(next(d for n, d in ds if n == "redpulse-fleet.json"))
        fleet["panels"][1]["description"] = ""
        tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), "redpulse-lint-%d.json" % os.getpid())
        with open(tmp, "w") as f:
            json.dump(fleet, f)
        try:
            r = subprocess.run([sys.executable, os.path.join(HERE, "lint.py"), tmp], capture_output=True, text=True)
        finally:
            os.unlink(tmp)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("panel-title-description", r.stdout)


if __name__ == "__main__":
    unittest.main()
