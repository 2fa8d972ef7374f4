#!/usr/bin/python3
"""The documentation names everything the code has, where the layout says it lives.

    tests/docs/check_docs.py [--src DIR] [./bedrock-cost-exporter]

Sources of truth: the binary's own --help (flags and configuration keys, generated from
the tables in src/config/) and the metric_def tables in src/**/*.c (metric families).
Checked against them:

- etc/bedrock-cost-exporter.conf, parsed as libconfig: the set of WHOLE key paths it sets
  (projects.enabled, cost_explorer.enabled, budgets, ...) equals the set --help lists. A key
  counts only under its own group, and only when it is set: a commented-out `# key = value`
  line is not a key (the example sets every key to its default, so nothing needs to be
  commented out). Each value equals the --help default, each key has its own comment (on
  its line or directly above it) and that comment states the allowed range or values, and
  `--check-config` accepts the file. Self-tests first prove the parser and the comparison
  can fail: a copy of the example without its `cost_explorer.enabled` line must report
  exactly that key missing.
- packaging/bedrock-cost-exporter.1: every flag, every key and every metric family is an
  entry (a .TP tag) of the man page.
- dashboards/README.md: every metric family has a row in its tables, and every family a
  row names exists in src/ (PENDING lists families announced but not yet in src/).
- README.md is under 16 KB and shows `make demo` and `make check` on its first screen.
- The folder READMEs exist, and every relative Markdown link in the READMEs and the
  runbook points to an existing file, and to an existing heading when it has an #anchor.

Ends with "N passed, N failed"; exits 1 on any failure. Python standard library only.
"""
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "etc", "bedrock-cost-exporter.conf")
MAN = os.path.join(ROOT, "packaging", "bedrock-cost-exporter.1")
README_LIMIT = 16 * 1024
FIRST_SCREEN_LINES = 30
FOLDER_READMES = ["packaging/README.md", "dashboards/README.md", "tests/bench/README.md",
                  "src/README.md"]
LINKED_DOCS = ["README.md", "packaging/README.md", "dashboards/README.md",
               "dashboards/RUNBOOK.md", "dashboards/provisioning/README.md",
               "tests/bench/README.md", "src/README.md"]
# Families documented ahead of the code: a name here may have a row in dashboards/README.md
# while src/ does not define it yet. Empty it again once src/ has it.
PENDING = set()

results = []


def check(name, ok, detail=""):
    results.append((name, bool(ok)))
    if not ok:
        print("FAIL: %s%s" % (name, (": " + detail) if detail else ""))


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---- libconfig ------------------------------------------------------------------------

class ConfError(Exception):
    pass


TOKEN_RE = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<float>[-+]?(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?\d+[eE][-+]?\d+)
  | (?P<hex>0[xX][0-9a-fA-F]+L{0,2})
  | (?P<int>[-+]?\d+L{0,2})
  | (?P<bool>(?i:true|false)(?![-A-Za-z0-9_*]))
  | (?P<name>[A-Za-z*][-A-Za-z0-9_*]*)
  | (?P<punct>[=:;,{}()\[\]])
""", re.X | re.S)
ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r", "f": "\f"}


def tokenize(text):
    """[(kind, value, line)] without whitespace; comments kept as kind 'comment'."""
    out, pos, line = [], 0, 1
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        if not m:
            raise ConfError("line %d: cannot read %r" % (line, text[pos:pos + 20]))
        kind, value = m.lastgroup, m.group()
        if kind == "string":
            body = value[1:-1]
            value = re.sub(r"\\x([0-9a-fA-F]{2})|\\(.)",
                           lambda e: chr(int(e.group(1), 16)) if e.group(1)
                           else ESCAPES.get(e.group(2), "\\" + e.group(2)), body)
        if kind != "ws":
            out.append((kind, value, line))
        line += m.group().count("\n")
        pos = m.end()
    return out


class Group(dict):
    """A libconfig group: setting name -> value, with the line of each setting."""
    def __init__(self):
        super().__init__()
        self.lines = {}


class List(list):
    kind = "list"    # "list" for ( ), "array" for [ ]


def parse_conf(text):
    """Parse libconfig text into a Group; raises ConfError with a line number."""
    toks = [t for t in tokenize(text) if t[0] != "comment"]
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else ("eof", "", toks[-1][2] if toks else 1)

    def take(kind=None, value=None):
        nonlocal pos
        t = peek()
        if (kind and t[0] != kind) or (value and t[1] != value):
            raise ConfError("line %d: expected %s, found %r" % (t[2], value or kind, t[1]))
        pos += 1
        return t

    def settings(end):
        g = Group()
        while peek()[1] != end and peek()[0] != "eof":
            _, name, line = take("name")
            if peek()[1] not in ("=", ":"):
                raise ConfError("line %d: expected = or : after %s" % (line, name))
            take()
            if name in g:
                raise ConfError("line %d: %s set twice in one group" % (line, name))
            g[name] = value()
            g.lines[name] = line
            if peek()[1] in (";", ","):
                take()
        return g

    def value():
        kind, v, line = peek()
        if v == "{":
            take()
            g = settings("}")
            take("punct", "}")
            return g
        if v in ("(", "["):
            take()
            end = ")" if v == "(" else "]"
            items = List()
            items.kind = "list" if v == "(" else "array"
            while peek()[1] != end:
                items.append(value())
                if peek()[1] == ",":
                    take()
                elif peek()[1] != end:
                    raise ConfError("line %d: expected , or %s" % (peek()[2], end))
            take("punct", end)
            return items
        take()
        if kind == "string":
            while peek()[0] == "string":       # adjacent strings are concatenated
                v += take()[1]
            return v
        if kind == "bool":
            return v.lower() == "true"
        if kind == "int":
            return int(v.rstrip("L"))
        if kind == "hex":
            return int(v.rstrip("L"), 16)
        if kind == "float":
            return float(v)
        raise ConfError("line %d: expected a value, found %r" % (line, v))

    g = settings(None)
    if peek()[0] != "eof":
        raise ConfError("line %d: unexpected %r" % (peek()[2], peek()[1]))
    return g


def leaf_paths(group, prefix=""):
    """{full.key.path: (value, line)} of every setting that is not a group. The settings
    inside list elements (the entries of budgets) are data, not keys."""
    out = {}
    for name, v in group.items():
        path = prefix + name
        if isinstance(v, Group):
            out.update(leaf_paths(v, path + "."))
        else:
            out[path] = (v, group.lines[name])
    return out


def compare_keys(example_text, help_keys):
    """(missing, unknown) key paths of an example configuration against --help's."""
    paths = leaf_paths(parse_conf(example_text))
    return sorted(set(help_keys) - set(paths)), sorted(set(paths) - set(help_keys))


def self_tests(example_text, help_keys):
    tricky = r'''
a: { b = "x; } # not a comment \" still"; /* c = 1; */ // d = 2;
  e = ( { f = 1; }, { g = [1, 2]; } );   # settings inside a list are data
  h = "one" " two"; # k = 3;
  sub = { enabled = true; };
};
i = 0x10; j : -2.5e1, k = FALSE
'''
    try:
        g = parse_conf(tricky)
        p = leaf_paths(g)
        ok = (sorted(p) == ["a.b", "a.e", "a.h", "a.sub.enabled", "i", "j", "k"]
              and p["a.b"][0] == 'x; } # not a comment " still' and p["a.h"][0] == "one two"
              and p["i"][0] == 16 and p["j"][0] == -25.0 and p["k"][0] is False
              and p["a.e"][0][1]["g"] == [1, 2])
        check("self-test: libconfig parser reads comments, strings, nesting, lists", ok,
              repr(p))
    except ConfError as e:
        check("self-test: libconfig parser reads comments, strings, nesting, lists", False,
              str(e))
    for bad in ('a = { b = 1; ', 'a = "unterminated;', 'a = 1; a = 2;', 'a b;'):
        try:
            parse_conf(bad)
            check("self-test: parser rejects %r" % bad, False, "accepted")
        except ConfError:
            check("self-test: parser rejects %r" % bad, True)

    # remove the one `enabled` line of the cost_explorer group: exactly that key is missing,
    # although projects.enabled still exists
    lines = example_text.split("\n")
    group, removed, mutated = None, 0, []
    for line in lines:
        m = re.match(r"^\s*([a-z_]+)\s*[:=]\s*\{", line)
        if m:
            group = m.group(1)
        elif re.match(r"^\s*\}\s*;?", line):
            group = None
        if group == "cost_explorer" and re.match(r"^\s*enabled\s*=", line):
            removed += 1
            continue
        mutated.append(line)
    missing, unknown = compare_keys("\n".join(mutated), help_keys)
    check("self-test: example without its cost_explorer.enabled line reports exactly "
          "that key missing", removed == 1 and missing == ["cost_explorer.enabled"]
          and not unknown, "removed %d line(s); missing %s, unknown %s" % (removed, missing,
                                                                            unknown))
    # and a key moved to another group counts as missing there and unknown here
    line = re.search(r"^\s*max_pages = \d+;$", example_text, re.M)
    moved = example_text.replace(line.group(0), "", 1).replace(
        "page_size = 100;", "page_size = 100;\n" + line.group(0), 1) if line else example_text
    missing, unknown = compare_keys(moved, help_keys)
    check("self-test: cost_explorer.max_pages moved into projects is missing and unknown",
          missing == ["cost_explorer.max_pages"] and unknown == ["projects.max_pages"],
          "missing %s, unknown %s" % (missing, unknown))


# ---- --help -------------------------------------------------------------------------

KEY_RE = re.compile(r"^  ([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)\s+"
                    r"(boolean|list|string|integer|number)\s+default (.*?)(?:, allowed (.*))?$")


def parse_help(text):
    flags = re.findall(r"^  (--[a-z][a-z0-9.-]*)", text, re.M)
    keys = {}
    for line in text.split("\n"):
        m = KEY_RE.match(line)
        if m:
            keys[m.group(1)] = {"type": m.group(2), "default": m.group(3),
                                "allowed": m.group(4)}
    return flags, keys


TYPES = {"boolean": (bool,), "integer": (int,), "number": (float, int), "string": (str,),
         "list": (list,)}


def same_value(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


def own_comment(lines, lineno):
    """The comment of the setting on 1-based line @lineno: the `#` part of that line
    (outside strings) and the comment lines directly above it."""
    parts = []
    line = lines[lineno - 1]
    code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line)
    if "#" in code:
        parts.append(code[code.index("#") + 1:])
    i = lineno - 2
    above = []
    while i >= 0 and re.match(r"^\s*#", lines[i]):
        above.insert(0, lines[i].strip()[1:])
        i -= 1
    return " ".join(above + parts).strip()


def check_example(example_text, help_keys, binary):
    try:
        paths = leaf_paths(parse_conf(example_text))
    except ConfError as e:
        check("etc/bedrock-cost-exporter.conf parses as libconfig", False, str(e))
        return
    check("etc/bedrock-cost-exporter.conf parses as libconfig", True)
    missing, unknown = compare_keys(example_text, help_keys)
    for k in help_keys:
        check("key %s set in etc/ example (whole path)" % k, k not in missing)
    check("etc/ example sets no key --help does not list", not unknown, ", ".join(unknown))
    lines = example_text.split("\n")
    for k, spec in help_keys.items():
        if k not in paths:
            continue
        v, lineno = paths[k]
        try:
            default = parse_conf("x = %s;" % spec["default"])["x"]
        except ConfError as e:
            check("key %s: --help default parses" % k, False, str(e))
            continue
        check("key %s: example value is the --help default (%s)" % (k, spec["default"]),
              isinstance(v, TYPES[spec["type"]]) and same_value(v, default), repr(v))
        comment = own_comment(lines, lineno)
        check("key %s has its own comment in the example" % k, len(comment) >= 10,
              "line %d" % lineno)
        if spec["allowed"]:
            allowed = spec["allowed"].replace(" entries", "")
            words = allowed.split("|") if "|" in allowed else [allowed]
            check("key %s: its comment states the allowed %s" % (k, spec["allowed"]),
                  all(w in comment for w in words), "comment: %r" % comment)
    p = subprocess.run([binary, "--check-config", "--config.file=" + EXAMPLE],
                       capture_output=True, text=True, timeout=30)
    check("--check-config accepts etc/bedrock-cost-exporter.conf", p.returncode == 0,
          p.stderr.strip())


# ---- metric families ----------------------------------------------------------------

def metric_families(src):
    """Every `"bedrock_cost_...", METRIC_GAUGE|METRIC_COUNTER,` in src/**/*.c."""
    found = {}
    for dirpath, _, names in os.walk(src):
        for name in sorted(n for n in names if n.endswith(".c")):
            path = os.path.join(dirpath, name)
            for m in re.finditer(r'"(bedrock_cost_[a-z0-9_]+)"\s*,\s*METRIC_(GAUGE|COUNTER)\s*,',
                                 read(path)):
                found[m.group(1)] = os.path.relpath(path, ROOT)
    return found


# ---- man page -----------------------------------------------------------------------

def man_entries(roff):
    """The terms of every .TP entry, roff escapes removed."""
    lines = roff.split("\n")
    terms = set()
    for i, line in enumerate(lines[:-1]):
        if line.startswith(".TP"):
            t = re.sub(r"\\f[BIRP]|\\&|\\:", "", lines[i + 1])
            t = t.replace("\\-", "-").replace("\\e", "\\")
            terms.add(t.split(" (")[0].split("=")[0].strip())
            terms.update(x.strip() for x in t.split(","))
    return terms


# ---- Markdown -----------------------------------------------------------------------

def slug(heading):
    """GitHub's anchor for a heading."""
    h = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


def anchors(md):
    seen, out = {}, set()
    for m in re.finditer(r"^#{1,6} +(.*?) *#*$", strip_code(md), re.M):
        s = slug(m.group(1))
        n = seen.get(s, 0)
        out.add(s if n == 0 else "%s-%d" % (s, n))
        seen[s] = n + 1
    for m in re.finditer(r'<a (?:name|id)="([^"]+)"', md):
        out.add(m.group(1))
    return out


def strip_code(md):
    md = re.sub(r"^```.*?^```", "", md, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", md)


def check_links(rel):
    path = os.path.join(ROOT, rel)
    md = read(path)
    n = 0
    for m in re.finditer(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", strip_code(md)):
        target = m.group(1)
        if re.match(r"^[a-z]+:", target):
            continue
        n += 1
        file_part, _, anchor = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part \
            else path
        if not os.path.exists(dest):
            check("%s: link %s" % (rel, target), False, "no such file")
            continue
        if anchor and dest.endswith(".md"):
            check("%s: link %s" % (rel, target), anchor in anchors(read(dest)),
                  "no heading with that anchor")
        else:
            check("%s: link %s" % (rel, target), True)
    return n


def broken_tables(md):
    """Line numbers where a blank line splits a Markdown table: rows follow it that start no
    new table (no |---| line under them), so they render as text."""
    lines = strip_fences(md).split("\n")
    out = []
    for i in range(1, len(lines) - 1):
        if lines[i].strip() or not lines[i - 1].startswith("|") or not lines[i + 1].startswith("|"):
            continue
        if not (i + 2 < len(lines) and re.match(r"^\|[ :-]+\|", lines[i + 2])):
            out.append(i + 1)
    return out


def strip_fences(md):
    """@md with the lines of fenced code blocks blanked (line numbers kept)."""
    out, fence = [], False
    for line in md.split("\n"):
        if line.startswith("```"):
            fence = not fence
            out.append("")
            continue
        out.append("" if fence else line)
    return "\n".join(out)


def main():
    args = sys.argv[1:]
    src = os.path.join(ROOT, "src")
    if args[:1] == ["--src"] and len(args) > 1:
        src, args = args[1], args[2:]
    binary = args[0] if args else os.path.join(ROOT, "bedrock-cost-exporter")
    help_text = subprocess.run([binary, "--help"], stdout=subprocess.PIPE, check=True,
                               timeout=30).stdout.decode()
    flags, keys = parse_help(help_text)
    metrics = metric_families(src)
    check("parsers found enough: %d flags, %d keys, %d metric families"
          % (len(flags), len(keys), len(metrics)),
          len(flags) >= 5 and len(keys) >= 20 and len(metrics) >= 20
          and "cost_explorer.enabled" in keys and "projects.enabled" in keys)

    example = read(EXAMPLE)
    self_tests(example, keys)
    check_example(example, keys, binary)

    man = man_entries(read(MAN)) if os.path.exists(MAN) else set()
    for f in flags:
        check("flag %s in the man page" % f, f in man)
    for k in keys:
        check("key %s in the man page" % k, k in man)
    for m in sorted(metrics):
        check("metric %s in the man page" % m, m in man)

    dash_path = os.path.join(ROOT, "dashboards", "README.md")
    dash = read(dash_path) if os.path.exists(dash_path) else ""
    rows = set(re.findall(r"^\| *`(bedrock_cost_[a-z0-9_]+)`", dash, re.M))
    for m in sorted(metrics):
        check("metric %s has a row in dashboards/README.md" % m, m in rows)
    for m in sorted(rows - set(metrics) - PENDING):
        check("dashboards/README.md row %s is a family in src/" % m, False, "not in src/")

    readme = read(os.path.join(ROOT, "README.md"))
    size = len(readme.encode("utf-8"))
    check("README.md under 16 KB (%d bytes)" % size, size < README_LIMIT)
    first = "\n".join(readme.split("\n")[:FIRST_SCREEN_LINES])
    check("README.md shows make demo and make check on its first screen",
          re.search(r"^make demo\b", first, re.M) and re.search(r"^make check\b", first, re.M))

    for rel in FOLDER_READMES:
        check("%s exists" % rel, os.path.exists(os.path.join(ROOT, rel)))
    for rel in LINKED_DOCS:
        if os.path.exists(os.path.join(ROOT, rel)):
            check_links(rel)
            broken = broken_tables(read(os.path.join(ROOT, rel)))
            check("%s: no table split by a blank line" % rel, not broken,
                  "at line(s) %s" % ", ".join(map(str, broken)))
    check("self-test: a table split by a blank line is found",
          broken_tables("| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n") == [4] and
          not broken_tables("| a |\n|---|\n| 1 |\n\n| b |\n|---|\n| 2 |\n"))

    failed = sum(1 for _, ok in results if not ok)
    print("%d passed, %d failed" % (len(results) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
