#!/usr/bin/env python3
"""`make bench-plan`: the Cost Explorer query plan, measured (issue 12; tests/bench/README.md).

For a full account (1,000 projects + default, us-east-1) and for 10,000 projects across 10
regions (1,000 + default in each, the account limit), on day 28 of a month (2026-11-28,
start 00:30 UTC), with Cost Explorer pages that hold one day of groups, it runs the
exporter's real engine on a simulated clock (build/bench/plan_bench, plan_bench.c) against
the fake AWS account (fake_fast.py) and reports the Cost Explorer requests and dollars of

  - the first fill (empty state file, until every source is up),
  - a steady day (the next full UTC day, every refresh at the default 6-hour interval),
  - a restart (on the day after, at 10:00: a new poller on the same state file, until its
    first scheduled cost refresh),

by operation, counted by the exporter (its own API counters) and by the fake
(/_fake/requests?surface=ce), which must agree. The exporter runs with its defaults; only
the endpoints, the regions and the state file are set. The fake's "today" follows the
simulated clock (PUT /_fake/config), and at each simulated midnight the ledger gains the
new day's rows (the same account generated 7 days later, its rows of that day).

Prints one table; writes tests/bench/results/issue-12/{plan.csv,table.txt,plan.json}.
Only 127.0.0.1 traffic; every process is tracked and stopped by pid; every wait is bounded.
"""
import argparse
import calendar
import collections
import csv
import datetime
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True   # no __pycache__ in the work tree
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import gen_account  # noqa: E402
from bench import AKID, API_KEY, PYTHON, SECRET, Procs, log, req, wait_until  # noqa: E402

DAY_28 = datetime.date(2026, 11, 28)
START = datetime.datetime(2026, 11, 28, 0, 30, tzinfo=datetime.timezone.utc)
RESTART_HOUR = 10
POOL_DAYS = 7                     # days after day 28 the ledger can grow by (+ --days)
KEYS = ("Application", "Environment")   # the default cost_explorer.attribution_tags
REGIONS_10 = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1",
              "eu-north-1", "ap-northeast-1", "ap-south-1", "ap-southeast-2", "sa-east-1"]
PER_REGION = 1000                 # projects per region (the account limit, plus default)
OPS = ("GetCostAndUsage", "GetDimensionValues", "GetCostForecast", "ListCostAllocationTags")
FILL_MAX = 15                     # issue 12: first fill at 1,000 projects
STEADY_MAX = 24                   # issue 12: a steady day at the default 6-hour interval
PHASES = ("fill", "fill_day_rest", "steady", "restart_before", "restart", "restart_rest")


def one_day_of_groups(rows):
    """The most attribution-tag combinations one day of the ledger has (Bedrock rows), as
    tests/integration/full_account.py computes it: a page of this size holds one day."""
    per_day = collections.defaultdict(set)
    for r in rows:
        if "bedrock" in r["service"].lower():
            per_day[r["date"]].add(tuple(r["tags"].get(k, "") for k in KEYS))
    return max(len(v) for v in per_day.values())


def billing_key(tags):
    """The tags gen_account stamps on a project's billing rows."""
    return tuple(tags.get(k, "") for k in ("Application", "Environment", "Team", "CostCenter",
                                           "Owner"))


def regions_of(n, projects):
    """{region: projects}: 1,000 (+ default) per region, in order."""
    default, rest = projects[0], projects[1:]
    if n <= PER_REGION:
        return {"us-east-1": projects}
    nreg = (len(rest) + PER_REGION - 1) // PER_REGION
    if nreg > len(REGIONS_10):
        raise SystemExit("plan_bench: %d projects need more than %d regions" % (n, len(REGIONS_10)))
    return {REGIONS_10[i]: [dict(default)] + rest[i * PER_REGION:(i + 1) * PER_REGION]
            for i in range(nreg)}


def write_conf(path, port, regions, state_file):
    """The exporter's defaults, but where it finds the fake, the regions and the state."""
    with open(path, "w") as f:
        f.write("""# written by tests/bench/plan_bench.py: the defaults but endpoints, regions, state
projects: {{
  regions = [{regions}];
  endpoint = "http://127.0.0.1:{port}/mantle/{{region}}/v1";
}};
aws: {{
  sts_endpoint = "http://127.0.0.1:{port}/sts";
  imds_enabled = false;
}};
cost_explorer: {{
  endpoint = "http://127.0.0.1:{port}/ce";
}};
cloudwatch: {{ enabled = false; }};   # the Cost Explorer query plan alone
state_file = "{state}";
""".format(regions=", ".join('"%s"' % r for r in regions), port=port, state=state_file))


def driver_env(tmp):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(BEDROCK_API_KEY=API_KEY, HOME=tmp, AWS_ACCESS_KEY_ID=AKID,
               AWS_SECRET_ACCESS_KEY=SECRET, AWS_EC2_METADATA_DISABLED="true")
    return env


def fake_ce_counters(port):
    st, _, b = req(port, "/_fake/requests?surface=ce", timeout=60)
    assert st == 200, b
    c = json.loads(b)["ce"]
    return {"total": c["total"], "by_operation": dict(c["by_operation"])}


def read_line(proc, deadline):
    """One line of the driver's stdout, or an error at the deadline."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError("plan_bench: the driver took longer than the timeout")
        r, _, _ = select.select([proc.stdout], [], [], min(left, 5.0))
        if r:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("plan_bench: the driver exited with %s" % proc.wait(10))
            return line.decode().rstrip("\n")
        if proc.poll() is not None:
            raise RuntimeError("plan_bench: the driver exited with %s" % proc.returncode)


def run_size(args, n, tmp):
    procs = Procs()
    out = {"projects": n}
    sdir = os.path.join(tmp, "n%d" % n)
    os.makedirs(sdir)
    t0 = time.monotonic()
    try:
        projects, rows = gen_account.account(n, DAY_28)
        _, later = gen_account.account(n, DAY_28 + datetime.timedelta(days=POOL_DAYS + args.days))
        cut = DAY_28.isoformat()
        # the account generated for a later day is the same account (the same projects and
        # usage levels), but its archived projects spend on Bedrock until 30 days before that
        # day: on day 28 they had stopped, so those rows are left out
        archived = {billing_key(p["tags"]) for p in projects if p["status"] == "archived"}
        active = {billing_key(p["tags"]) for p in projects if p["status"] != "archived"}
        pool = collections.defaultdict(list)      # day -> the rows that day adds
        for r in later:
            k = billing_key(r["tags"])
            if r["date"] > cut and (k not in archived or k in active or
                                    "bedrock" not in r["service"].lower()):
                pool[r["date"]].append(r)
        del later
        page = one_day_of_groups(rows + [r for d in sorted(pool) for r in pool[d]])
        regions = regions_of(n, projects)
        out.update(regions=len(regions), page_size=page, ledger_rows=len(rows),
                   rows_per_new_day=max(len(v) for v in pool.values()))
        ledger = os.path.join(sdir, "ledger.json")
        with open(ledger, "w") as f:
            f.write(json.dumps(rows, separators=(",", ":")))
        del rows
        log("%d projects in %d region(s): account generated, page size %d groups (one day), "
            "%.1f s" % (n, len(regions), page, time.monotonic() - t0))

        port_file = os.path.join(sdir, "fake.port")
        fake = procs.start([PYTHON, os.path.join(HERE, "fake_fast.py"), "--port", "0",
                            "--port-file", port_file, "--quiet", "--today", DAY_28.isoformat(),
                            "--ce-page-size", str(page), "--ledger", ledger],
                           stdout=subprocess.DEVNULL)
        wait_until(lambda: os.path.exists(port_file), 900, "the fake", fake, 0.2)
        port = int(open(port_file).read())
        for region, items in regions.items():
            st, _, b = req(port, "/_fake/projects/" + region, "PUT",
                           {"Content-Type": "application/json"}, json.dumps(items), 120)
            assert st == 200, b
        keys = sorted({k for p in projects for k in p["tags"]})
        st, _, b = req(port, "/_fake/allocation_tags", "PUT",
                       {"Content-Type": "application/json"},
                       json.dumps({k: "Active" for k in keys}), 30)
        assert st == 200, b

        conf = os.path.join(sdir, "plan.conf")
        write_conf(conf, port, list(regions), os.path.join(sdir, "state.json"))
        start = calendar.timegm(START.timetuple())
        argv = [args.driver, conf, "%d" % start, "--seed", str(args.seed),
                "--restart-hour", str(RESTART_HOUR), "--days", str(args.days)]
        log("%d projects: driver %s" % (n, " ".join(argv[1:])))
        t_run = time.monotonic()
        drv = procs.start(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          env=driver_env(sdir))
        deadline = time.monotonic() + args.timeout
        marks, result, days = [], None, []
        while result is None:
            line = read_line(drv, deadline)
            kind, _, rest = line.partition(" ")
            if kind == "DAY":
                st, _, b = req(port, "/_fake/config", "PUT", {"Content-Type": "application/json"},
                               json.dumps({"today": rest}), 60)
                assert st == 200, b
                added = pool.pop(rest, [])
                if added:
                    st, _, b = req(port, "/_fake/ledger/rows", "POST",
                                   {"Content-Type": "application/json"},
                                   json.dumps(added, separators=(",", ":")), 300)
                    assert st == 200, b
                elif rest > cut:
                    raise RuntimeError("plan_bench: no ledger rows for %s (POOL_DAYS)" % rest)
                days.append(rest)
                log("%d projects: simulated day %s (%d rows added), %.0f s" %
                    (n, rest, len(added), time.monotonic() - t_run))
            elif kind == "MARK":
                marks.append((rest, fake_ce_counters(port)))
            elif kind == "RESULT":
                result = json.loads(rest)
                break
            else:
                raise RuntimeError("plan_bench: unexpected line from the driver: %r" % line)
            drv.stdin.write(b"ok\n")
            drv.stdin.flush()
        rc = drv.wait(120)
        out["driver_rc"] = rc
        out["run_seconds"] = time.monotonic() - t_run
        out["days"] = days
        # the fake's own count of each phase: between its MARK and the next one
        names = [m[0] for m in marks]
        assert names == [p["name"] for p in result["phases"]] + ["end"], names
        assert names[:len(PHASES)] == list(PHASES), names
        for ph, (a, b) in zip(result["phases"], zip(marks, marks[1:])):
            assert ph["name"] == a[0]
            ops = set(a[1]["by_operation"]) | set(b[1]["by_operation"])
            ph["fake"] = {op: b[1]["by_operation"].get(op, 0) - a[1]["by_operation"].get(op, 0)
                          for op in ops}
            ph["fake_total"] = b[1]["total"] - a[1]["total"]
            ph["agree"] = (ph["fake_total"] == ph["total"] and
                           all(ph["fake"].get(op, 0) == ph["requests"].get(op, 0)
                               for op in set(ph["fake"]) | set(ph["requests"])))
        out["result"] = result
        out["seconds"] = time.monotonic() - t0
        log("%d projects: done in %.0f s (driver %.0f s)" % (n, out["seconds"], out["run_seconds"]))
        return out
    finally:
        procs.stop_all()


def utc(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)


def span(ph):
    a, b = utc(ph["from"]), utc(ph["to"])
    return "%s %s -> %s %s" % (a.strftime("%d"), a.strftime("%H:%M"), b.strftime("%d"),
                               b.strftime("%H:%M"))


def phase(r, name):
    return next(p for p in r["result"]["phases"] if p["name"] == name)


LABELS = {
    "fill": "first fill",
    "fill_day_rest": "  rest of day 28",
    "steady": "steady day (day 29)",
    "restart_before": "  day 30 before the restart",
    "restart": "restart (day 30 10:00)",
    "restart_rest": "  day 30 after it",
}


def build_table(rows, meta):
    price = rows[0]["result"]["price_usd"]
    lines = [
        "bedrock-cost-exporter: the Cost Explorer query plan (issue 12)  %s" % meta["when"],
        "account on day 28 (2026-11-28), start 00:30 UTC; Cost Explorer pages hold one day of "
        "groups; exporter defaults",
        "(refresh_interval %d s with 10%% jitter, seeded %d; max_requests_per_day %d; $%.2f a "
        "request); simulated clock, requests counted by the exporter and the fake"
        % (rows[0]["result"]["refresh_interval"], rows[0]["result"]["seed"],
           rows[0]["result"]["max_requests_per_day"], price),
        "columns: requests, dollars, then GetCostAndUsage GetDimensionValues GetCostForecast "
        "ListCostAllocationTags; cost refreshes; simulated span; fake agrees", ""]
    for r in rows:
        res = r["result"]
        lines.append("%s projects + default, %d region(s), page %s groups, ledger %s rows "
                     "(+%s a day); run %.0f s"
                     % ("{:,}".format(r["projects"]), r["regions"], "{:,}".format(r["page_size"]),
                        "{:,}".format(r["ledger_rows"]), "{:,}".format(r["rows_per_new_day"]),
                        r["seconds"]))
        lines.append("  %-28s %5s %7s   %5s %5s %5s %5s   %9s  %-17s %s"
                     % ("phase", "req", "USD", "CaU", "DimV", "Fcst", "Tags", "cost refr",
                        "simulated", "fake"))
        for name in PHASES:
            ph = phase(r, name)
            q = ph["requests"]
            lines.append("  %-28s %5d %7s   %5d %5d %5d %5d   %9d  %-17s %s"
                         % (LABELS[name], ph["total"], "$%.2f" % (ph["total"] * price),
                            q.get(OPS[0], 0), q.get(OPS[1], 0), q.get(OPS[2], 0), q.get(OPS[3], 0),
                            ph["refreshes"].get("cost_explorer", 0), span(ph),
                            "same" if ph["agree"] else "DIFFERS %d" % ph["fake_total"]))
        day30 = sum(phase(r, n)["total"] for n in ("restart_before", "restart", "restart_rest"))
        f, rs = res["fill"], res["restart"]
        lines.append("  fill: %s in %d simulated day(s), %d windows served; restart: ready at "
                     "once %s, %d windows, next cost refresh %s (the old poller's: %s); "
                     "day 30 with the restart: %d requests"
                     % ("complete" if f["complete"] else "NOT COMPLETE", f["days"], f["windows"],
                        "yes" if rs["ready_at_once"] and rs["cost_explorer_up_at_once"] else
                        "NO (%s)" % rs["not_ready_because"], rs["windows"],
                        utc(rs["new_next_cost_refresh"]).strftime("%H:%M"),
                        utc(rs["old_next_cost_refresh"]).strftime("%H:%M"), day30))
        lines.append("  retries %d, errors %d; real time: fill %.1f s, steady day %.1f s"
                     % (sum(p["retries"] for p in res["phases"]),
                        sum(p["errors"] for p in res["phases"]),
                        phase(r, "fill")["real_seconds"], phase(r, "steady")["real_seconds"]))
        extra = [p for p in res["phases"] if p["name"].startswith("day_")]
        if extra:
            tot = sorted(p["total"] for p in extra)
            worst = max(extra, key=lambda p: p["total"])
            lines.append("  %d more UTC days (%s .. %s): requests a day min %d, median %d, max %d "
                         "(%s: %d cost refreshes, %s); days with 5 cost refreshes: %d"
                         % (len(extra), extra[0]["name"][4:], extra[-1]["name"][4:], tot[0],
                            tot[len(tot) // 2], tot[-1], worst["name"][4:],
                            worst["refreshes"].get("cost_explorer", 0),
                            " ".join("%s %d" % (op, worst["requests"].get(op, 0)) for op in OPS),
                            sum(1 for p in extra if p["refreshes"].get("cost_explorer", 0) >= 5)))
            lines.append("  per day: " + " ".join("%s:%d" % (p["name"][-2:], p["total"])
                                                  for p in extra))
        lines.append("")
    lines.append("targets (issue 12):")
    for r in rows:
        fill, steady = phase(r, "fill")["total"], phase(r, "steady")["total"]
        size = "{:,}".format(r["projects"])
        if r["projects"] == 1000:
            lines.append("  first fill <= %d requests at 1,000 projects       %s  %d"
                         % (FILL_MAX, "HOLDS" if fill <= FILL_MAX and
                            r["result"]["fill"]["complete"] else "FAILS", fill))
        lines.append("  steady day <= %d requests at %-7s projects     %s  %d"
                     % (STEADY_MAX, size, "HOLDS" if steady <= STEADY_MAX else "FAILS", steady))
        rst = phase(r, "restart")["total"]
        ok = r["result"]["restart"]["ready_at_once"] and rst == 0
        lines.append("  restart ready at once, nothing paid, %-7s      %s  %d requests"
                     % (size, "HOLDS" if ok else "FAILS", rst))
    return "\n".join(lines) + "\n"


def write_csv(path, rows):
    fields = ["projects", "regions", "page_size", "phase", "from_utc", "to_utc", "requests",
              "usd"] + list(OPS) + ["retries", "errors", "cost_refreshes", "fake_requests",
                                    "agree", "real_seconds", "turns"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            price = r["result"]["price_usd"]
            for ph in r["result"]["phases"]:
                name = ph["name"]
                d = {"projects": r["projects"], "regions": r["regions"],
                     "page_size": r["page_size"], "phase": name,
                     "from_utc": utc(ph["from"]).strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "to_utc": utc(ph["to"]).strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "requests": ph["total"], "usd": "%.2f" % (ph["total"] * price),
                     "retries": ph["retries"], "errors": ph["errors"],
                     "cost_refreshes": ph["refreshes"].get("cost_explorer", 0),
                     "fake_requests": ph["fake_total"], "agree": ph["agree"],
                     "real_seconds": "%.1f" % ph["real_seconds"], "turns": ph["turns"]}
                for op in OPS:
                    d[op] = ph["requests"].get(op, 0)
                w.writerow(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--driver", default=os.path.join(ROOT, "build", "bench", "plan_bench"))
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--seed", type=int, default=1, help="seed of the schedule's jitter")
    ap.add_argument("--days", type=int, default=0,
                    help="simulate N more full UTC days after the restart day (per-day requests)")
    ap.add_argument("--timeout", type=int, default=5400, help="seconds per size (driver)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "issue-12"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # run the clean-ups
    started = time.monotonic()
    meta = {"when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    tmp = tempfile.mkdtemp(prefix="bce-plan-")
    try:
        driver = os.path.join(tmp, "plan_bench")    # immune to rebuilds mid-run
        shutil.copy2(args.driver, driver)
        args.driver = driver
        rows = [run_size(args, n, tmp) for n in sizes]
        table = build_table(rows, meta)
        table += "\nwhole run: %.0f s (%s)\n" % (time.monotonic() - started, " ".join(
            "%d: %.0f s" % (r["projects"], r["seconds"]) for r in rows))
        os.makedirs(args.out, exist_ok=True)
        write_csv(os.path.join(args.out, "plan.csv"), rows)
        with open(os.path.join(args.out, "table.txt"), "w") as f:
            f.write(table)
        with open(os.path.join(args.out, "plan.json"), "w") as f:
            json.dump(rows, f, indent=1, sort_keys=True)
        print(table)
        bad = [r["projects"] for r in rows if r["driver_rc"] != 0 or
               not all(p["agree"] for p in r["result"]["phases"])]
        if bad:
            log("the driver reported a failure, or the fake counted differently, at %s" % bad)
            return 1
        return 0
    finally:
        if args.keep:
            log("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
