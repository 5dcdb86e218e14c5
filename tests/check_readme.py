#!/usr/bin/env python3
"""Keeps the README's metrics reference true: the table between the
METRICS-TABLE markers must be exactly what include/fields.def,
derived.def, cfgparams.def, families.def and globals.def say. With --write, rewrites it."""
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "."
TYPES = {"G": "gauge", "C": "counter", "S": "summary"}


def table():
    rows = ["| metric | type | INFO field | meaning |", "|---|---|---|---|"]
    with open(root + "/include/fields.def") as f:
        for m in re.finditer(r'^F\(\w+, "([^"]*)", "([^"]*)", (\w), (\w+), "([^"]*)"\)', f.read(), re.M):
            key, metric, typ, conv, help_ = m.groups()
            unit = {"USEC": " (µs → s)", "MSEC": " (ms → s)", "STATUS": " (ok/up → 1)"}.get(conv, "")
            rows.append("| `%s` | %s | `%s`%s | %s |" % (metric, TYPES[typ], key, unit, help_))
    with open(root + "/include/derived.def") as f:
        for m in re.finditer(r'^D\(\w+, (\w+), "([^"]*)", "([^"]*)", "([^"]*)"\)', f.read(), re.M):
            group, json_name, metric, help_ = m.groups()
            if metric:
                rows.append("| `%s` | gauge | derived: `%s.%s` | %s |" % (metric, group, json_name, help_))
    with open(root + "/include/cfgparams.def") as f:
        for m in re.finditer(r'^P\(\w+, "([^"]*)", (\w+), "([^"]*)", "([^"]*)"\)', f.read(), re.M):
            param, kind, metric, help_ = m.groups()
            if metric:
                rows.append("| `%s` | gauge | `CONFIG GET %s` | %s |" % (metric, param, help_))
    with open(root + "/include/families.def") as f:
        for m in re.finditer(r'^E\(\w+, "([^"]*)", (\w), "([^"]*)"\)', f.read(), re.M):
            metric, typ, help_ = m.groups()
            rows.append("| `%s` | %s | | %s |" % (metric, TYPES[typ], help_))
    with open(root + "/include/globals.def") as f:
        for m in re.finditer(r'^X\(\w+, "([^"]*)", (\w), "([^"]*)"\)', f.read(), re.M):
            metric, typ, help_ = m.groups()
            rows.append("| `%s` | %s | | %s |" % (metric, TYPES[typ], help_))
    return "\n".join(rows) + "\n"


def main():
    path = root + "/README.md"
    with open(path) as f:
        text = f.read()
    start, end = "<!-- METRICS-TABLE:BEGIN -->\n", "<!-- METRICS-TABLE:END -->"
    i, j = text.find(start), text.find(end)
    if i < 0 or j < 0:
        sys.exit("README.md: METRICS-TABLE markers missing")
    want = table()
    if "--write" in sys.argv:
        with open(path, "w") as f:
            f.write(text[:i + len(start)] + want + text[j:])
        return
    if text[i + len(start):j] != want:
        sys.exit("README.md metrics table is out of date: run tests/check_readme.py . --write")
    print("README metrics table matches fields.def and families.def (%d rows)" % (want.count("\n") - 2))


main()
