#!/usr/bin/env python3
"""The man pages cannot drift from the code:

1. packaging/redpulse.8 and packaging/redpulse.json.5 are what
   packaging/mdman.py renders from docs/*.md (the same text as docs/);
2. every key of every option table (`struct conf_opt NAME[] = {...}`, in any
   agent/*.c) is documented in docs/redpulse.json.5.md under a
   `<!-- keys: FILE NAME -->` list, and every key documented there is in that
   table;
3. every option `redpulse --help` prints is in the OPTIONS of redpulse(8),
   and every option there is in --help;
4. man(1) renders both pages without a warning.

Usage: check_man.py SOURCE_DIR REDPULSE_BINARY
"""
import glob
import os
import re
import shutil
import subprocess
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "packaging"))
import mdman  # noqa: E402

errors = []


def err(msg):
    errors.append(msg)


def code_tables():
    """{(file, table): [keys]} from every conf_opt table in agent/*.c."""
    tables = {}
    head = re.compile(r"(?:static\s+)?(?:const\s+)?struct\s+conf_opt\s+(?:const\s+)?(\w+)\s*\[[^\]]*\]\s*=\s*\{")
    for path in sorted(glob.glob(os.path.join(ROOT, "agent", "*.c"))):
        with open(path) as f:
            src = f.read()
        src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
        src = re.sub(r"//[^\n]*", "", src)
        for m in head.finditer(src):
            depth, i = 1, m.end()
            while depth:
                depth += {"{": 1, "}": -1}.get(src[i], 0)
                i += 1
            body = src[m.end():i - 1]
            keys = re.findall(r'\{\s*"([^"]*)"\s*,', body)
            tables[(os.path.basename(path), m.group(1))] = keys
    return tables


def doc_tables(md_path):
    """{(file, table): [keys]} from the `<!-- keys: -->` lists of the page."""
    tables = {}
    cur = None
    with open(md_path) as f:
        for n, line in enumerate(f, 1):
            m = re.match(r"<!-- keys: (\S+) (\w+) -->", line)
            if m:
                cur = (m.group(1), m.group(2))
                if cur in tables:
                    err("%s:%d: the keys of %s %s are listed twice" % (md_path, n, *cur))
                tables[cur] = []
                continue
            if line.startswith("#"):
                cur = None
                continue
            m = re.match(r"- \*\*`([\w.\[\]]+)`\*\*", line)
            if m:
                if cur is None:
                    err("%s:%d: key %s is outside a <!-- keys: FILE TABLE --> list" % (md_path, n, m.group(1)))
                    continue
                tables[cur].append(m.group(1).split(".")[-1])
    return tables


def check_keys():
    md = os.path.join(ROOT, "docs", "redpulse.json.5.md")
    code, doc = code_tables(), doc_tables(md)
    if not code:
        err("no struct conf_opt table found in agent/*.c: has the option table mechanism changed?")
    for t, keys in sorted(code.items()):
        if t not in doc:
            err("agent/%s: table %s (keys: %s) is not documented in docs/redpulse.json.5.md; "
                "add a '<!-- keys: %s %s -->' list with one '- **`key`** (type, default): meaning' per key"
                % (t[0], t[1], ", ".join(keys), t[0], t[1]))
            continue
        for k in keys:
            if k not in doc[t]:
                err("agent/%s: key \"%s\" of table %s is missing from docs/redpulse.json.5.md" % (t[0], k, t[1]))
        for k in doc[t]:
            if k not in keys:
                err("docs/redpulse.json.5.md: key \"%s\" listed for %s %s is not in that table of the code"
                    % (k, t[0], t[1]))
        if len(set(doc[t])) != len(doc[t]):
            err("docs/redpulse.json.5.md: a key of %s %s is listed twice" % t)
    for t in sorted(set(doc) - set(code)):
        err("docs/redpulse.json.5.md: table %s %s does not exist in agent/*.c" % t)
    n = sum(len(v) for v in code.values())
    print("keys: %d tables, %d keys in the code; %d documented" % (len(code), n, sum(len(v) for v in doc.values())))


OPT = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def check_options(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        err("%s --help exited %d" % (binary, out.returncode))
    helpopts = set(OPT.findall(out.stdout))
    manopts = set()
    section = None
    with open(os.path.join(ROOT, "docs", "redpulse.8.md")) as f:
        for line in f:
            if line.startswith("## "):
                section = line[3:].strip()
            elif section == "OPTIONS" and line.startswith("- "):
                term, _ = mdman.split_term(line[2:].strip())
                manopts |= set(OPT.findall(term or ""))
    if not helpopts:
        err("no option found in --help")
    for o in sorted(helpopts - manopts):
        err("option %s of redpulse --help is not in OPTIONS of docs/redpulse.8.md" % o)
    for o in sorted(manopts - helpopts):
        err("option %s of docs/redpulse.8.md is not in redpulse --help" % o)
    print("options: %s" % " ".join(sorted(helpopts)))


def check_render():
    if mdman.main(["--check", ROOT]) != 0:
        err("the man pages in packaging/ are not what docs/*.md renders to")
    if not shutil.which("man"):
        err("man(1) is missing (Debian package man-db): cannot check the pages render cleanly")
        return
    for page in mdman.PAGES.values():
        env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
        r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", os.path.join(ROOT, page)],
                           capture_output=True, text=True, env=env, timeout=60)
        if r.returncode != 0 or r.stderr.strip():
            err("%s: man reports: %s" % (page, r.stderr.strip() or "exit %d" % r.returncode))


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    check_render()
    check_keys()
    check_options(sys.argv[2])
    for e in errors:
        print("FAIL: " + e)
    print("%d problem%s" % (len(errors), "" if len(errors) == 1 else "s"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
