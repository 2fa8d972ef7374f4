#!/usr/bin/python3
"""The folders of src/ are layers, and includes only go down.

Reads the "May include" table of src/README.md and every #include of src/, then checks:
- every folder of src/ is in the table, and every folder of the table exists;
- a file includes only headers of its own folder and of the folders its row allows;
- <curl/curl.h> only in aws/ and main.c, <microhttpd.h> only in serve/;
- no circle between modules (x.c and x.h are one module);
- each x.c includes its own header first;
- every row of the source table (src/sources/table.c) is described in src/README.md.
A self-test first proves the checks can fail. Ends with "N passed, N failed".
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "src")
SYSTEM_ONLY = {"curl/curl.h": {"aws", "."}, "microhttpd.h": {"serve"}}


def read_table(readme):
    """{folder: set of folders it may include} from the README's layer table."""
    rules = {}
    for line in readme.splitlines():
        m = re.match(r"\|\s*`([a-z_]+)/`\s*\|.*\|\s*([^|]*)\|\s*$", line)
        if not m:
            continue
        allowed = set(re.findall(r"`([a-z_]+)`", m.group(2)))
        rules[m.group(1)] = allowed
    return rules


def read_includes(src):
    """{path relative to src: (local includes, system includes)}."""
    out = {}
    for dirpath, _, names in os.walk(src):
        for name in names:
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, src)
            text = open(path, encoding="utf-8").read()
            local = re.findall(r'^\s*#\s*include\s+"([^"]+)"', text, re.M)
            system = re.findall(r"^\s*#\s*include\s+<([^>]+)>", text, re.M)
            out[rel] = (local, system)
    return out


def folder(rel):
    return os.path.dirname(rel) or "."


def module(rel):
    return os.path.splitext(rel)[0]


def find_cycle(edges):
    """A list of modules forming a circle, or None."""
    state = {}
    stack = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def problems(rules, includes, folders):
    """Every violation, as text."""
    bad = []
    for f in sorted(folders - set(rules)):
        bad.append("src/%s/ is not in the layer table of src/README.md" % f)
    for f in sorted(set(rules) - folders):
        bad.append("the layer table names %s/, which does not exist" % f)
    edges = {}
    for rel, (local, system) in sorted(includes.items()):
        here = folder(rel)
        for inc in local:
            there = folder(inc)
            if inc.startswith("../") or not os.path.exists(os.path.join(SRC, inc)) and \
                    inc not in includes:
                bad.append("%s includes \"%s\", which is not a path under src/" % (rel, inc))
                continue
            if here != "." and there != here and there not in rules.get(here, set()):
                bad.append("%s (%s/) includes %s: %s/ is not below %s/" % (rel, here, inc, there,
                                                                           here))
            if module(inc) != module(rel):
                edges.setdefault(module(rel), set()).add(module(inc))
        for sysinc in system:
            allowed = SYSTEM_ONLY.get(sysinc)
            if allowed is not None and here not in allowed:
                bad.append("%s includes <%s>, allowed only in %s" % (rel, sysinc,
                                                                     ", ".join(sorted(allowed))))
        if rel.endswith(".c") and rel != "main.c":
            own = module(rel) + ".h"
            if own in includes and (not local or local[0] != own):
                bad.append("%s does not include its own header %s first" % (rel, own))
    cycle = find_cycle(edges)
    if cycle:
        bad.append("modules include each other in a circle: " + " -> ".join(cycle))
    return bad


def self_test(rules, includes, folders):
    """The checks must be able to fail: an upward include, a circle, curl in the model."""
    results = []
    if "model" in rules and "engine" in rules:
        mutated = dict(includes)
        mutated["model/registry.c"] = (includes.get("model/registry.c", ([], []))[0] +
                                       ["engine/poller.h"], [])
        results.append(("self-test: an upward include (model -> engine) is reported",
                        any("model/registry.c" in p and "engine" in p
                            for p in problems(rules, mutated, folders))))
        mutated = dict(includes)
        mutated["model/expfmt.c"] = (includes.get("model/expfmt.c", ([], []))[0],
                                     ["curl/curl.h"])
        results.append(("self-test: <curl/curl.h> in the model is reported",
                        any("curl" in p for p in problems(rules, mutated, folders))))
        mutated = dict(includes)
        mutated["base/util.c"] = (includes.get("base/util.c", ([], []))[0] + ["base/log.h"], [])
        results.append(("self-test: a circle (util <-> log) is reported",
                        any("circle" in p for p in problems(rules, mutated, folders))))
    else:
        results.append(("self-test: the layer table has model/ and engine/", False))
    return results


def table_sources(src):
    """The `source` names of the rows of src/sources/table.c, in order."""
    table = open(os.path.join(src, "sources", "table.c"), encoding="utf-8").read()
    rows = re.findall(r"^\s*&([a-z_]+),\s*$", table, re.M)
    names = []
    for row in rows:
        for dirpath, _, files in os.walk(os.path.join(src, "sources")):
            for f in (n for n in files if n.endswith(".c")):
                text = open(os.path.join(dirpath, f), encoding="utf-8").read()
                m = re.search(r"const struct source_def %s = \{.*?\.name = \"([a-z_]+)\"" % row,
                              text, re.S)
                if m:
                    names.append(m.group(1))
    return rows, names


def main():
    readme_path = os.path.join(SRC, "README.md")
    if not os.path.exists(readme_path):
        print("FAIL: src/README.md is missing")
        print("0 passed, 1 failed")
        return 1
    rules = read_table(open(readme_path, encoding="utf-8").read())
    includes = read_includes(SRC)
    folders = {d for d in os.listdir(SRC) if os.path.isdir(os.path.join(SRC, d))}
    checks = [("the layer table of src/README.md names at least 6 folders", len(rules) >= 6)]
    checks += self_test(rules, includes, folders)
    rows, names = table_sources(SRC)
    readme = open(readme_path, encoding="utf-8").read()
    checks.append(("src/sources/table.c has rows and each names a source_def with a .name",
                   len(rows) >= 4 and len(names) == len(rows)))
    checks += [("source %s is a row of src/README.md's source table" % n,
                re.search(r"^\| `%s` \(" % n, readme, re.M) is not None) for n in names]
    found = problems(rules, includes, folders)
    checks += [(p, False) for p in found]
    checks.append(("%d files of src/ include only down the layers" % len(includes), not found))
    failed = [name for name, ok in checks if not ok]
    for name in failed:
        print("FAIL: " + name)
    print("%d passed, %d failed" % (len(checks) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
