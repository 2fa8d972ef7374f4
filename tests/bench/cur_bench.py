#!/usr/bin/env python3
"""`make bench-cur`: how fast, and in how much memory, the exporter's streaming readers
(base/gunzip.c + base/csv.c, driven by tests/bench/cur_parse.c) read an AWS Data Exports
(CUR 2.0) data file of --lines Bedrock line items (default 10 million, about 5 GB once
inflated), next to Python's gzip + csv modules doing the same (cur_parse_ref.py).

The file is generated once by cur_gen.py into --dir (kept for the next run, with the sums it
must give). Each reader runs as a child process measured from outside (os.wait4: wall time,
user + system CPU, peak RSS). Both must find every line and the generator's sums per line
item type (within 1e-6 USD); the exporter's readers must stay under 64 MiB of peak RSS (issue
15). Prints a table, writes it and the raw numbers to tests/bench/results/issue-15/, and exits
1 when a check fails. Only local files; nothing on the network.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RSS_TARGET_MIB = 64


def measure(argv):
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError("%s exited %d: %s" % (argv[0], code, err.decode()[-500:]))
    got = json.loads(out)
    # peak RSS as the reader measured it (VmHWM): wait4's ru_maxrss would include what this
    # Python process held when it forked the reader
    return got, {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
                 "max_rss_mib": got["vm_hwm_kib"] / 1024.0}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "bench", "cur_parse"))
    ap.add_argument("--results", default=os.path.join(HERE, "results", "issue-15"))
    ap.add_argument("--no-python", action="store_true", help="skip the Python reference")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    data = os.path.join(args.dir, "cur-%d.csv.gz" % args.lines)
    want_path = data + ".sums.json"
    if not (os.path.exists(data) and os.path.exists(want_path)):
        print("generating %s (%d lines)..." % (data, args.lines), flush=True)
        t0 = time.monotonic()
        with open(want_path + ".tmp", "wb") as out:
            subprocess.run([sys.executable, os.path.join(HERE, "cur_gen.py"), "--lines",
                            str(args.lines), "--out", data + ".tmp"], stdout=out, check=True)
        os.rename(data + ".tmp", data)
        os.rename(want_path + ".tmp", want_path)
        print("generated in %.0f s" % (time.monotonic() - t0), flush=True)
    with open(want_path) as f:
        want = json.load(f)
    size = os.path.getsize(data)

    runs = [("exporter (data_exports path)", [args.binary, data])]
    if not args.no_python:
        runs.append(("Python 3 gzip + csv", [sys.executable, os.path.join(HERE, "cur_parse_ref.py"),
                                             data]))
    problems, results = [], {}
    for name, argv in runs:
        print("reading with %s..." % name, flush=True)
        got, m = measure(argv)
        results[name] = {"output": got, "measured": m}
        if got["lines"] != want["lines"] or got["bedrock_lines"] != want["lines"]:
            problems.append("%s: %d lines, %d Bedrock, the file has %d (all Bedrock)"
                            % (name, got["lines"], got["bedrock_lines"], want["lines"]))
        for k, v in want["cost_by_line_item_type"].items():
            g = got["cost_by_line_item_type"].get(k)
            # 10 million doubles summed drift by ~1e-11 of the total; a cent is what matters
            if g is None or abs(g - float(v)) > max(1e-6, 1e-9 * abs(float(v))):
                problems.append("%s: %s cost %r, the generator's %s" % (name, k, g, v))
    c = results[runs[0][0]]
    inflated = c["output"]["inflated_bytes"]
    if c["measured"]["max_rss_mib"] >= RSS_TARGET_MIB:
        problems.append("the exporter's readers peaked at %.1f MiB (target under %d MiB)"
                        % (c["measured"]["max_rss_mib"], RSS_TARGET_MIB))

    lines = []
    w = lines.append
    w("bedrock-cost-exporter CUR 2.0 reading benchmark  %s UTC"
      % datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"))
    w("%s, %d CPUs; file %s: %d line items, %.1f MB gzip, %.2f GB inflated"
      % (platform.processor() or platform.machine(), os.cpu_count(), os.path.basename(data),
         want["lines"], size / 1e6, inflated / 1e9))
    w("")
    w("%-30s %10s %10s %14s %14s %12s" % ("reader", "wall s", "CPU s", "peak RSS MiB",
                                           "lines/s", "MB/s infl."))
    w("-" * 95)
    for name, _ in runs:
        m = results[name]["measured"]
        w("%-30s %10.1f %10.1f %14.1f %14s %12.0f"
          % (name, m["wall_s"], m["cpu_s"], m["max_rss_mib"],
             "{:,.0f}".format(want["lines"] / m["wall_s"]), inflated / 1e6 / m["wall_s"]))
    w("")
    w("target (issue 15): peak RSS under %d MiB: %s (%.1f MiB)"
      % (RSS_TARGET_MIB, "HOLDS" if c["measured"]["max_rss_mib"] < RSS_TARGET_MIB else "FAILS",
         c["measured"]["max_rss_mib"]))
    w("sums per line item type equal the generator's: %s"
      % ("yes" if not [p for p in problems if "cost" in p or "lines" in p] else "NO"))
    for p in problems:
        w("problem: " + p)
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(args.results, exist_ok=True)
    with open(os.path.join(args.results, "table.txt"), "w") as f:
        f.write(text)
    with open(os.path.join(args.results, "cur.json"), "w") as f:
        json.dump({"file": os.path.basename(data), "compressed_bytes": size, "want": want,
                   "results": results}, f, indent=1, sort_keys=True)
        f.write("\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
