#!/usr/bin/env python3
"""Renders the man pages from their Markdown sources in docs/ (the same text
GitHub shows), for the small subset those sources use:

  <!-- man: NAME SECTION "TITLE" -->   the .TH line (date: packaging/changelog,
                                       version: CMakeLists.txt)
  # title                              skipped (GitHub's page title)
  ## NAME / ### Sub                    .SH / .SS
  - **term**: text                     .TP (term up to the first ": " outside `code`)
  - text                               a bullet
  ``` ... ```                          a literal block
  `code` **bold** *italic*             bold, bold, italic
  <!-- anything else -->               skipped

Usage: mdman.py [--check] [ROOT]   writes (or, with --check, compares)
packaging/redpulse.8 and packaging/redpulse.json.5 from docs/*.md.
"""
import os
import re
import sys

PAGES = {"docs/redpulse.8.md": "packaging/redpulse.8", "docs/redpulse.json.5.md": "packaging/redpulse.json.5"}


def _esc(text):
    """roff-escapes plain text (no markup left in it)."""
    return text.replace("\\", "\\e")


def _code(text):
    return _esc(text).replace("-", "\\-")


def inline(text):
    """Markdown inline markup to roff font changes."""
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if text.startswith("**", i):
            j = text.index("**", i + 2)
            inner = text[i + 2:j].replace("`", "")
            out.append("\\fB" + _code(inner) + "\\fR")
            i = j + 2
        elif c == "`":
            j = text.index("`", i + 1)
            out.append("\\fB" + _code(text[i + 1:j]) + "\\fR")
            i = j + 1
        elif c == "*" and i + 1 < len(text) and text[i + 1] not in " *":
            j = text.index("*", i + 1)
            out.append("\\fI" + _code(text[i + 1:j].replace("`", "")) + "\\fR")
            i = j + 1
        else:
            j = i + 1
            while j < len(text) and text[j] not in "*`":
                j += 1
            out.append(_esc(text[i:j]))
            i = j
    return "".join(out)


def _line(s):
    """A roff text line: one starting with . or ' would be a request."""
    return "\\&" + s if s[:1] in (".", "'") else s


def split_term(item):
    """'**t**: text' -> ('**t**', 'text'); the ': ' must be outside `code`."""
    code = False
    for i, c in enumerate(item):
        if c == "`":
            code = not code
        elif c == ":" and not code and item[i + 1:i + 2] == " ":
            return item[:i], item[i + 2:]
    return None, item


def _version_and_date(root):
    with open(os.path.join(root, "CMakeLists.txt")) as f:
        version = re.search(r"project\(\s*redpulse\s+VERSION\s+([\d.]+)", f.read()).group(1)
    months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
    with open(os.path.join(root, "packaging/changelog")) as f:
        m = re.search(r"^ -- .*>  \w+, (\d+) (\w+) (\d{4})", f.read(), re.M)
    date = "%s-%02d-%02d" % (m.group(3), months.index(m.group(2)) + 1, int(m.group(1)))
    return version, date


def render(md, version, date):
    out = []
    lines = md.split("\n")
    i = 0

    def flush_para(para):
        if para:
            out.append(".PP")
            out.extend(_line(inline(p)) for p in para)
            para.clear()

    para = []
    while i < len(lines):
        line = lines[i]
        m = re.match(r'<!-- man: (\S+) (\d) "([^"]*)" -->', line)
        if m:
            out.append('.TH %s %s "%s" "redpulse %s" "%s"' % (m.group(1), m.group(2), date, version, m.group(3)))
            i += 1
            continue
        if line.startswith("<!--") or line.startswith("# "):
            flush_para(para)
            i += 1
            continue
        if line.startswith("## ") or line.startswith("### "):
            flush_para(para)
            macro = ".SH" if line.startswith("## ") else ".SS"
            out.append('%s "%s"' % (macro, inline(line.split(" ", 1)[1])))
            i += 1
            continue
        if line.startswith("```"):
            flush_para(para)
            out += [".PP", ".RS 4", ".nf"]
            i += 1
            while not lines[i].startswith("```"):
                out.append(_line(_code(lines[i])))
                i += 1
            out += [".fi", ".RE"]
            i += 1
            continue
        if line.startswith("- "):
            flush_para(para)
            item = [line[2:]]
            i += 1
            while i < len(lines) and lines[i].startswith("  ") and lines[i].strip():
                item.append(lines[i].strip())
                i += 1
            text = " ".join(item)
            term, body = split_term(text) if text.startswith("**") else (None, text)
            if term is not None:
                out += [".TP", _line(inline(term)), _line(inline(body))]
            else:
                out += [".IP \\(bu 2", _line(inline(body))]
            continue
        if not line.strip():
            flush_para(para)
            i += 1
            continue
        para.append(line)
        i += 1
    flush_para(para)
    # ".PP" right after ".SH"/".SS" is redundant (groff/lintian warn)
    res = []
    for ln in out:
        if res and res[-1] == '.SH "NAME"' and ln != ".PP":
            ln = ln.replace(" - ", " \\- ", 1)  # the whatis entry: "name \- what"
        if ln == ".PP" and res and res[-1].startswith((".SH", ".SS")):
            continue
        res.append(ln)
    return "\n".join(res) + "\n"


def main(argv):
    check = "--check" in argv
    args = [a for a in argv if not a.startswith("--")]
    root = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    version, date = _version_and_date(root)
    stale = []
    for src, dst in PAGES.items():
        with open(os.path.join(root, src)) as f:
            roff = render(f.read(), version, date)
        path = os.path.join(root, dst)
        if check:
            try:
                with open(path) as f:
                    if f.read() != roff:
                        stale.append(dst)
            except FileNotFoundError:
                stale.append(dst)
        else:
            with open(path, "w") as f:
                f.write(roff)
    if stale:
        print("out of date with docs/: %s; run python3 packaging/mdman.py" % ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
