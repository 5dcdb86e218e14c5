#!/usr/bin/env python3
"""Alerts across live reloads (SIGHUP), against real redis-servers and a
webhook receiver: an alert firing on an instance that a reload moves keeps
firing with no second notification; an instance the reload adds gets its
rules by name (the built-in RedisDown fires when its server is killed, even
at a position the start configuration did not have); an instance the reload
removes has its firing alert resolved; a changed threshold applies (the
alert resolves, and fires again when changed back) while alerts of rules
kept stay firing unsent; a receiver renamed gets what is firing; a changed
state_dir moves the state file while the rest of the section applies."""
import json
import os
import re
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Agent, RedisServer, Tmp, series, value, wait_for  # noqa: E402
from test_alerts_webhook import Blocker, Receiver  # noqa: E402


def notes(rec, alertname, receiver=None):
    """(target, status) of every alert named alertname (None: any) the
    receiver got (for the receiver named so, if given), in order."""
    out = []
    with rec.lock:
        for r in rec.log:
            if receiver and r["body"]["receiver"] != receiver:
                continue
            for al in r["body"]["alerts"]:
                if alertname is None or al["labels"]["alertname"] == alertname:
                    out.append((al["labels"]["target"], al["status"]))
    return out


class AlertsReload(unittest.TestCase):
    def setUp(self):
        self.tmp = Tmp()
        self.rec = Receiver()
        self.rec.up()
        self.servers = {n: RedisServer(self.tmp.path, n) for n in "abcd"}
        self.agent = None

    def tearDown(self):
        if self.agent:
            self.agent.stop()
            if os.environ.get("DUMP"):
                print(self.agent.log_text()[-6000:])
        self.rec.close()
        for s in self.servers.values():
            s.stop()
        self.tmp.cleanup()

    def inst(self, names):
        return [{"name": n, "address": "127.0.0.1:%d" % self.servers[n].port} for n in names]

    def alerts_cfg(self, threshold):
        return {"receivers": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:%d/h" % self.rec.port}],
                "rules": [{"name": "Blocked", "figure": "info.clients.blocked_clients", "op": ">=",
                           "threshold": threshold},
                          {"name": "RedisDown", "for": "1s"}]}

    def reload(self, instances, threshold, alerts=None):
        cfg = dict(self.agent.cfg, instances=instances)
        cfg["alerts"] = dict(alerts or self.alerts_cfg(threshold))
        cfg["alerts"].setdefault("state_dir", self.agent.cfg["alerts"]["state_dir"])
        with open(self.agent.path, "w") as f:
            json.dump(cfg, f)
        done = len(re.findall(r"configuration reloaded|reload failed", self.agent.log_text()))
        self.agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(re.findall(r"configuration reloaded|reload failed", self.agent.log_text())) > done,
                 10, what="reload done")
        self.assertIn("configuration reloaded", self.agent.log_text())

    def firing(self, target, alertname):
        return series(self.agent.metrics(), "redpulse_alerts", alertname=alertname, target=target,
                      alertstate="firing")

    def test_labels_choose_rules_and_a_new_server_is_a_new_baseline(self):
        """Rules chosen by instance_labels follow a relabelling reload (the
        plan was compiled once: a rule for env=prod never ran on an instance
        relabelled prod, and one it no longer matched stayed firing); and an
        address moved to another server is a new baseline for increase() too
        (the new server's higher counter fired as an increase)."""
        rules = {"builtin": False,
                 "receivers": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:%d/h" % self.rec.port}],
                 "rules": [{"name": "ProdUp", "figure": "up", "op": "==", "threshold": 1,
                            "instance_labels": {"env": "prod"}},
                           {"name": "CmdBurst", "figure": "increase(info.stats.total_commands_processed)",
                            "threshold": 1000}]}
        a = dict(self.inst("a")[0], labels={"env": "staging"})
        self.agent = Agent(self.tmp.path, [a], defaults={"interval": "300ms", "timeout": "250ms"},
                           extra={"alerts": rules})
        wait_for(lambda: value(self.agent.metrics(), "redpulse_polls_total", target="a") >= 3, 10, what="polls")
        self.assertEqual(notes(self.rec, "ProdUp"), [])
        self.reload([dict(a, labels={"env": "prod"})], None, alerts=rules)
        wait_for(lambda: notes(self.rec, "ProdUp") == [("a", "firing")], 10, what="ProdUp firing once relabelled")
        self.reload([a], None, alerts=rules)
        wait_for(lambda: notes(self.rec, "ProdUp") == [("a", "firing"), ("a", "resolved")], 10,
                 what="ProdUp resolved once no longer prod")
        # b has counted 3,000 commands more than a: a moved there is a new server
        c = self.servers["b"].client()
        for _ in range(3000):
            c.cmd("PING")
        c.close()
        self.reload([dict(a, address="127.0.0.1:%d" % self.servers["b"].port)], None, alerts=rules)
        wait_for(lambda: "a: connection settings changed" in self.agent.log_text(), 10, what="the reconnect")
        p = value(self.agent.metrics(), "redpulse_polls_total", target="a")
        wait_for(lambda: value(self.agent.metrics(), "redpulse_polls_total", target="a") >= p + 4, 10,
                 what="polls of the new server")
        self.assertEqual(notes(self.rec, "CmdBurst"), [])
        self.assertNotIn("CmdBurst firing", self.agent.log_text())

    def test_reload_moves_adds_and_removes_instances(self):
        defaults = {"interval": "300ms", "timeout": "250ms"}
        self.agent = Agent(self.tmp.path, self.inst("ab"), defaults=defaults,
                           extra={"alerts": self.alerts_cfg(1)})
        blockers = [Blocker(self.servers["a"].port), Blocker(self.servers["b"].port)]
        try:
            wait_for(lambda: sorted(notes(self.rec, "Blocked")) == [("a", "firing"), ("b", "firing")], 10,
                     what="Blocked firing for a and b")
            # b removed, c added first, a moved from 0 to 1, d added at 2 (no such position at start)
            self.reload(self.inst("cad"), 1)
            wait_for(lambda: ("b", "resolved") in notes(self.rec, "Blocked"), 10, what="b's alert resolved")
            wait_for(lambda: value(self.agent.metrics(), "redis_up", target="d") == 1, 10, what="d polled")
            self.assertTrue(self.firing("a", "Blocked"), "a's alert stopped firing across the reload")
            self.assertFalse(series(self.agent.metrics(), "redpulse_alerts", target="b"), "b's alert still listed")
            # the newly added instance at a new position has the built-in down rule
            self.servers["d"].kill()
            wait_for(lambda: ("d", "firing") in notes(self.rec, "RedisDown"), 15, what="RedisDown firing for d")
            self.assertEqual(notes(self.rec, "RedisDown"), [("d", "firing")])
            # a's alert fired once: the reload sent no second firing
            self.assertEqual([n for n in notes(self.rec, "Blocked") if n[0] == "a"], [("a", "firing")])
            self.assertNotIn("restart redpulse to apply", self.agent.log_text())
            # a changed threshold applies: 1 blocked client is under 5, a's alert resolves (once)
            self.reload(self.inst("cad"), 5)
            self.assertIn("alert settings reloaded", self.agent.log_text())
            wait_for(lambda: ("a", "resolved") in notes(self.rec, "Blocked"), 10, what="a's alert resolved")
            self.assertFalse(self.firing("a", "Blocked"))
            self.assertEqual(sorted(notes(self.rec, "Blocked")),
                             [("a", "firing"), ("a", "resolved"), ("b", "firing"), ("b", "resolved")])
            # d's RedisDown (a rule the change kept) is still firing, not sent again
            self.assertTrue(self.firing("d", "RedisDown"))
            self.assertEqual(notes(self.rec, "RedisDown"), [("d", "firing")])
            # the threshold back to 1: it fires again, as episode 2
            self.reload(self.inst("cad"), 1)
            wait_for(lambda: notes(self.rec, "Blocked").count(("a", "firing")) == 2, 10, what="a firing again")
            # receivers by name: "hook" removed, "hook2" added; what is firing goes to the new one
            cfg = self.alerts_cfg(1)
            cfg["receivers"][0]["name"] = "hook2"
            self.reload(self.inst("cad"), 1, alerts=cfg)
            wait_for(lambda: sorted(notes(self.rec, None, receiver="hook2")) == [("a", "firing"), ("d", "firing")],
                     10, what="firing alerts sent to the new receiver")
            m = self.agent.metrics()
            self.assertTrue(series(m, "redpulse_notifications_total", receiver="hook2", result="success"))
            self.assertFalse(series(m, "redpulse_notifications_total", receiver="hook"))
            # /scrape?target= carries that instance's alerts and no other's
            for t, want in (("a", {("Blocked", "a", "firing")}), ("d", {("RedisDown", "d", "firing")}), ("c", set())):
                got = {(lb["alertname"], lb["target"], lb["alertstate"])
                       for lb, _ in series(self.agent.metrics("/scrape?target=" + t), "redpulse_alerts")}
                self.assertEqual({x for x in got if x[0] in ("Blocked", "RedisDown")}, want, t)
                self.assertLessEqual({x[1] for x in got}, {t}, t)
            self.assertEqual(notes(self.rec, "RedisDown", receiver="hook"), [("d", "firing")])
            # a state_dir change moves the state file, and the rest of the
            # section applies with it (the receiver renamed back)
            old_file = os.path.join(self.agent.cfg["alerts"]["state_dir"], "alerts.json")
            self.assertTrue(os.path.exists(old_file))
            # the same directory written another way is no move: the file
            # stays (a string compare once removed the file just written)
            w = value(self.agent.metrics(), "redpulse_alert_state_writes_total")
            self.reload(self.inst("cad"), 1, alerts=dict(cfg, state_dir=self.agent.cfg["alerts"]["state_dir"] + "/."))
            self.assertNotIn("state_dir changed", self.agent.log_text())
            wait_for(lambda: value(self.agent.metrics(), "redpulse_alert_state_writes_total") > w, 10,
                     what="a state write after that reload")
            self.assertTrue(os.path.exists(old_file))
            new_dir = os.path.join(self.tmp.path, "elsewhere")
            cfg["receivers"][0]["name"] = "hook"
            cfg = dict(cfg, state_dir=new_dir)
            self.reload(self.inst("cad"), 1, alerts=cfg)
            new_file = os.path.join(new_dir, "alerts.json")
            wait_for(lambda: os.path.exists(new_file) and not os.path.exists(old_file), 10,
                     what="state file moved")

            def saved_firing():
                with open(new_file) as f:
                    st = json.load(f)
                return sorted((a["instance"], a["rule"]) for a in st["alerts"] if a["phase"] == 2)
            self.assertIn(("a", "Blocked"), saved_firing())
            self.assertIn(("d", "RedisDown"), saved_firing())
            self.assertTrue(self.firing("a", "Blocked"))
            wait_for(lambda: series(self.agent.metrics(), "redpulse_notifications_total", receiver="hook",
                                    result="success"), 10, what="the receiver renamed back applied")
            self.assertNotIn("restart redpulse", self.agent.log_text())
        finally:
            for b in blockers:
                b.close()
        self.assertEqual(self.agent.stop(), 0)
        with open(new_file) as f:  # the last save of the stop went to the new place
            self.assertTrue(json.load(f)["clean"])
        self.assertFalse(os.path.exists(old_file))


if __name__ == "__main__":
    unittest.main()
