#!/usr/bin/env python3
"""Both dashboards validate against the JSON schema of Grafana's saved
dashboard model (grafana-dashboard-10.4.schema.json, generated from
@grafana/schema by make_schema.sh), and the schema is not toothless: a
dashboard broken in ways Grafana would refuse fails it."""
import copy
import json
import os
import unittest

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
DASH = os.path.join(HERE, "..", "..", "dashboards")
NAMES = ("redpulse-fleet.json", "redpulse-write-path.json")

with open(os.path.join(HERE, "grafana-dashboard-10.4.schema.json"), encoding="utf-8") as f:
    SCHEMA = json.load(f)
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)


def load(name):
    with open(os.path.join(DASH, name), encoding="utf-8") as f:
        return json.load(f)


class Schema(unittest.TestCase):
    def test_schema_is_grafanas_dashboard(self):
        jsonschema.Draft7Validator.check_schema(SCHEMA)
        self.assertIn("Dashboard", SCHEMA["definitions"])
        self.assertIn("panels", SCHEMA["definitions"]["Dashboard"]["properties"])

    def test_dashboards_validate(self):
        for name in NAMES:
            with self.subTest(name=name):
                errors = ["%s: %s" % ("/".join(map(str, e.absolute_path)), e.message)
                          for e in VALIDATOR.iter_errors(load(name))]
                self.assertEqual(errors, [])

    def test_broken_dashboards_fail(self):
        cases = [
            ("schemaVersion as a string", lambda d: d.update(schemaVersion="36")),
            ("a panel without a type", lambda d: d["panels"][1].pop("type")),
            ("a grid position as text", lambda d: d["panels"][1]["gridPos"].update(w="6")),
            ("a variable of an unknown type", lambda d: d["templating"]["list"][1].update(type="lookup")),
            ("a threshold mode that does not exist",
             lambda d: d["panels"][1]["fieldConfig"]["defaults"]["thresholds"].update(mode="relative-ish")),
            ("a dashboard link of an unknown type", lambda d: d["links"][0].update(type="menu")),
        ]
        base = load(NAMES[0])
        for what, mutate in cases:
            with self.subTest(case=what):
                d = copy.deepcopy(base)
                mutate(d)
                self.assertTrue(list(VALIDATOR.iter_errors(d)), what)


if __name__ == "__main__":
    unittest.main()
