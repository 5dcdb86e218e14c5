#!/usr/bin/env python3
"""Keeps the README and docs/ true.

1. The metrics reference (docs/metrics.md): the table between the
   METRICS-TABLE markers must be exactly what include/fields.def,
   derived.def, cfgparams.def, families.def and globals.def say. With
   --write, rewrites it.
2. Every relative link of README.md and docs/*.md resolves: the file exists
   and, for a #fragment, the target has a heading with that anchor (GitHub's
   rules: lower case, punctuation dropped, spaces to hyphens, -1, -2 for
   repeats). Links inside fenced code blocks and inline code are ignored.
3. Every metric named in the README's "The metric families that matter"
   exists: in the generated table or as a "# TYPE" line the agent writes.
4. The README has exactly two commands to run (code blocks of sh): the
   quick start and the test suite; the rest belongs in docs/."""
import glob
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "."
TYPES = {"G": "gauge", "C": "counter", "S": "summary"}
METRICS_DOC = "docs/metrics.md"


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


def check_metrics_table():
    path = os.path.join(root, METRICS_DOC)
    with open(path) as f:
        text = f.read()
    start, end = "<!-- METRICS-TABLE:BEGIN -->\n", "<!-- METRICS-TABLE:END -->"
    i, j = text.find(start), text.find(end)
    if i < 0 or j < 0:
        return ["%s: METRICS-TABLE markers missing" % METRICS_DOC]
    want = table()
    if "--write" in sys.argv:
        with open(path, "w") as f:
            f.write(text[:i + len(start)] + want + text[j:])
        return []
    if text[i + len(start):j] != want:
        return ["%s: metrics table is out of date: run tests/check_readme.py . --write" % METRICS_DOC]
    print("%s: metrics table matches the .def files (%d rows)" % (METRICS_DOC, want.count("\n") - 2))
    return []


def prose_lines(text):
    """(line number, line) outside fenced code blocks, inline code removed."""
    fence = None
    for n, line in enumerate(text.split("\n"), 1):
        m = re.match(r"^\s*(```|~~~)", line)
        if m:
            fence = None if fence == m.group(1) else (fence or m.group(1))
            continue
        if fence:
            continue
        yield n, re.sub(r"`[^`]*`", "", line)


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"<[^>]+>", "", s)
    s = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", s)
    s = re.sub(r"[^\w\- ]", "", s)       # GitHub keeps letters, digits, _, -, space
    return s.replace(" ", "-")


def anchors(path):
    seen, out = {}, set()
    with open(path) as f:
        text = f.read()
    fence = None
    for line in text.split("\n"):
        m = re.match(r"^\s*(```|~~~)", line)
        if m:
            fence = None if fence == m.group(1) else (fence or m.group(1))
            continue
        if fence:
            continue
        h = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if h:
            base = slug(h.group(1).replace("`", ""))
            k = seen.get(base, 0)
            out.add(base if k == 0 else "%s-%d" % (base, k))
            seen[base] = k + 1
    return out


def check_links():
    errors, count = [], 0
    files = [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs", "*.md")))
    cache = {}
    for path in files:
        rel = os.path.relpath(path, root)
        with open(path) as f:
            text = f.read()
        for n, line in prose_lines(text):
            for m in re.finditer(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line):
                target = m.group(1)
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    continue             # http:, https:, mailto:
                count += 1
                file_part, _, frag = target.partition("#")
                dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
                if not os.path.exists(dest):
                    errors.append("%s:%d: link to %s: no such file" % (rel, n, target))
                    continue
                if frag:
                    if not dest.endswith(".md") or os.path.isdir(dest):
                        errors.append("%s:%d: link to %s: a fragment on a non-Markdown target" % (rel, n, target))
                        continue
                    if dest not in cache:
                        cache[dest] = anchors(dest)
                    if frag not in cache[dest]:
                        errors.append("%s:%d: link to %s: no heading with anchor #%s in %s"
                                      % (rel, n, target, frag, os.path.relpath(dest, root)))
    if not errors:
        print("%d relative links in %d files resolve" % (count, len(files)))
    return errors


def check_readme_metrics():
    known = set(re.findall(r"^\| `(\w+)` \|", table(), re.M))
    for path in glob.glob(os.path.join(root, "agent", "*.c")):
        with open(path) as f:
            known.update(re.findall(r"# TYPE (\w+) ", f.read()))
    with open(os.path.join(root, "README.md")) as f:
        text = f.read()
    m = re.search(r"^## The metric families that matter\n(.*?)(?=^## )", text, re.M | re.S)
    if not m:
        return ["README.md: no section \"The metric families that matter\""]
    named = set(re.findall(r"`((?:redis|redpulse|process)_\w+)(?:\{[^}`]*\})?`", m.group(1)))
    unknown = sorted(named - known)
    if unknown:
        return ["README.md: metrics that redpulse does not export: " + ", ".join(unknown)]
    print("README.md: the %d metrics it names exist" % len(named))
    blocks = re.findall(r"^```(?:sh|bash|shell|console)\n(.*?)^```", text, re.M | re.S)
    want = ["packaging/quickstart.sh\n", "tests/run.sh\n"]
    if blocks != want:
        return ["README.md: the command blocks must be exactly %r, found %r" % (want, blocks)]
    return []


def main():
    errors = check_metrics_table()
    if "--write" not in sys.argv:
        errors += check_links() + check_readme_metrics()
    for e in errors:
        print(e, file=sys.stderr)
    sys.exit(1 if errors else 0)


main()
