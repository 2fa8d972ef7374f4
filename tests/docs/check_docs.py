#!/usr/bin/python3
"""The README documents every flag, configuration key and metric family that exists.

Flags and keys come from the binary's own --help (generated from the tables in
src/cli.c and src/conf.c); metric names from the metric_def tables in src/.
The example configuration must name every key too. Ends with "N passed, N failed".
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "bedrock-cost-exporter")
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    example = open(os.path.join(ROOT, "etc", "bedrock-cost-exporter.conf"), encoding="utf-8").read()
    help_text = subprocess.run([binary, "--help"], stdout=subprocess.PIPE, check=True,
                               timeout=30).stdout.decode()
    flags = re.findall(r"^  --([a-z.-]+)", help_text, re.M)
    keys = re.findall(r"^  ([a-z_]+(?:\.[a-z_]+)?)\s+\S+\s+default\b", help_text, re.M)
    metrics = set()
    for dirpath, _, names in os.walk(os.path.join(ROOT, "src")):
        for name in (n for n in names if n.endswith(".c")):
            text = open(os.path.join(dirpath, name), encoding="utf-8").read()
            metrics.update(re.findall(r'"(bedrock_cost_[a-z_]+)", METRIC_', text))
    checks = []
    checks += [("flag --%s in README" % f, "`--%s`" % f in readme) for f in flags]
    checks += [("key %s in README" % k, "`%s`" % k in readme) for k in keys]
    checks += [("key %s in etc/ example" % k,
                re.search(r"^\s*%s\s*=" % re.escape(k.split(".")[-1]), example, re.M) is not None)
               for k in keys]

    def documented(m):
        if "`%s`" % m in readme:
            return True
        # families written once with braces, e.g. bedrock_cost_tag_{today,yesterday}_usd
        for pat in re.findall(r"`(bedrock_cost_[a-z_]*\{[a-z_,]+\}[a-z_]*)`", readme):
            head, alts, tail = re.match(r"(.*)\{(.*)\}(.*)", pat).groups()
            if any(m == head + a + tail for a in alts.split(",")):
                return True
        return False
    checks += [("metric %s in README" % m, documented(m)) for m in sorted(metrics)]
    failed = [name for name, ok in checks if not ok]
    for name in failed:
        print("FAIL: " + name)
    if len(flags) < 5 or len(keys) < 20 or len(metrics) < 20:
        print("FAIL: too few flags/keys/metrics found; the parsers above are broken")
        failed.append("parsers")
    print("%d passed, %d failed" % (len(checks) + 1 - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
