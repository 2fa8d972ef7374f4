#!/usr/bin/env python3
"""`make bench-org`: what the first fill of an organization costs in Cost Explorer requests,
split across shards versus one exporter covering every account (issue 14; README.md here).

The fake AWS (fake_fast.py: tests/fake_aws/fake_aws.py with GetCostAndUsage memoized) is an
organization of --members member accounts (default 12) with projects in --regions (default
us-east-1,eu-west-1), --projects each per region (default 100), plus the management account
(its single-account seed; ListAccounts lists it as well, so it is served too). Four fakes
with the same options and the same day run side by side: one per shard (--shard=N
--total-shards=3) and one for a single exporter covering every account, so each exporter's
requests are counted by its own fake. Every exporter discovers the accounts
(organization.discover, role_name), lists projects with each account's assumed role
(projects.auth = sigv4), has Cost Explorer on with max_requests_per_day out of the way and
cloudwatch off, starts with an empty state file, and is measured until its first fill is
over: /-/ready answers 200 (every source has had a first success). This is done at two
Cost Explorer page sizes (--page-sizes, default 5000 as in `make bench`, and 50, the fake's
default, where every query takes several pages).

Prints the requests by operation per shard, their sum and the single exporter's, counted by
the fakes (and the exporters' own api_requests_total, which must agree), and fails (exit 1)
when the shards together make more GetCostAndUsage requests, or more Cost Explorer requests
in all, than the single exporter. Only 127.0.0.1; every process is tracked and stopped by
pid; every wait is bounded.
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True   # no __pycache__ in the work tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import AKID, API_KEY, PYTHON, SECRET, Procs, log, req, wait_until  # noqa: E402

OPS = ("GetCostAndUsage", "GetDimensionValues", "GetCostForecast", "ListCostAllocationTags")
ROLE = "BedrockCostExporterRead"          # the fake's default --org-role-name
TOTAL_SHARDS = 3


def shard_of(account_id, total):
    """The exporter's rule: FNV-1a-32 of the 12-digit id, mod the number of shards."""
    h = 2166136261
    for b in account_id.encode("ascii"):
        h = ((h ^ b) * 16777619) & 0xffffffff
    return h % total


def start_fake(args, page_size, tmp, name, procs):
    port_file = os.path.join(tmp, name + ".port")
    with open(os.path.join(tmp, name + ".log"), "wb") as err:
        p = procs.start([PYTHON, os.path.join(HERE, "fake_fast.py"), "--host", "127.0.0.1",
                         "--port", "0", "--port-file", port_file, "--quiet",
                         "--org-accounts", str(args.members), "--org-regions", args.regions,
                         "--org-projects", str(args.projects), "--ce-page-size", str(page_size),
                         "--today", args.today],
                        stdout=subprocess.DEVNULL, stderr=err)
    return p, port_file


def fake_json(port, path):
    st, _, b = req(port, path, timeout=120)
    if st != 200:
        raise RuntimeError("fake on port %d: GET %s answered %d: %r" % (port, path, st, b[:300]))
    return json.loads(b)


def write_conf(path, fport, regions, state_file, max_requests):
    with open(path, "w") as f:
        f.write("""# written by tests/bench/org_bench.py
projects: {{
  regions = [{regions}];
  endpoint = "http://127.0.0.1:{port}/mantle/{{region}}/v1";
  auth = "sigv4";
  page_size = 100;
}};
http: {{ request_timeout = 120; }};   # the Python fake's first answer to a query scans the ledger
aws: {{
  region = "us-east-1";
  sts_endpoint = "http://127.0.0.1:{port}/sts";
  imds_enabled = false;
}};
cost_explorer: {{
  endpoint = "http://127.0.0.1:{port}/ce";
  max_requests_per_day = {maxreq};
}};
cloudwatch: {{ enabled = false; }};
organization: {{
  discover = true;
  endpoint = "http://127.0.0.1:{port}/organizations";
  role_name = "{role}";
}};
state_file = "{state}";
""".format(regions=", ".join('"%s"' % r for r in regions), port=fport, role=ROLE,
           maxreq=max_requests, state=state_file))


def exporter_env(tmp):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(BEDROCK_API_KEY=API_KEY, HOME=tmp, AWS_ACCESS_KEY_ID=AKID,
               AWS_SECRET_ACCESS_KEY=SECRET, AWS_EC2_METADATA_DISABLED="true",
               AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_CONFIG_FILE="/nonexistent")
    for v in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY"):
        env[v] = "http://127.0.0.1:9"        # nothing leaves 127.0.0.1
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text, name):
    out = []
    for line in text.split("\n"):
        m = _SAMPLE.match(line)
        if m and m.group(1) == name:
            out.append((dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def exporter_ce_requests(text):
    out = {op: 0 for op in OPS}
    retries = errors = 0
    for lab, v in samples(text, "bedrock_cost_exporter_api_requests_total"):
        if lab.get("api") == "cost_explorer" and lab.get("operation") in out:
            out[lab["operation"]] += int(v)
    for lab, v in samples(text, "bedrock_cost_exporter_api_retries_total"):
        if lab.get("api") == "cost_explorer":
            retries += int(v)
    for lab, v in samples(text, "bedrock_cost_exporter_api_request_errors_total"):
        if lab.get("api") == "cost_explorer":
            errors += int(v)
    return out, retries, errors


def run(args, page_size):
    """One measurement at one Cost Explorer page size. Returns (table text, ok, data)."""
    regions = args.regions.split(",")
    tmp = tempfile.mkdtemp(prefix="bce-org-bench.")
    procs = Procs()
    binary = os.path.join(tmp, "bedrock-cost-exporter")
    shutil.copy2(args.binary, binary)        # a rebuild during the run changes nothing here
    names = ["shard%d" % i for i in range(TOTAL_SHARDS)] + ["single"]
    try:
        t0 = time.monotonic()
        fakes = {n: start_fake(args, page_size, tmp, n, procs) for n in names}
        ports = {}
        for n, (p, pf) in fakes.items():
            wait_until(lambda: os.path.exists(pf) and open(pf).read().strip(), 600,
                       "fake " + n, p, 0.1)
            ports[n] = int(open(pf).read())
        log("4 fakes up in %.1f s" % (time.monotonic() - t0))
        org = fake_json(ports["single"], "/_fake/organization")
        for n in names:
            o = fake_json(ports[n], "/_fake/organization")
            if o["accounts"] != org["accounts"]:
                raise RuntimeError("fake %s holds another organization" % n)
        accounts = sorted([org["management_account"]["Id"]] +
                          [a["Id"] for a in org["accounts"] if a["Status"] == "ACTIVE"])
        cfg = fake_json(ports["single"], "/_fake/config")
        projects_per_account = {}
        for a in accounts:
            projects_per_account[a] = sum(
                len(fake_json(ports["single"], "/_fake/projects/%s?account=%s" % (r, a)))
                for r in regions)
        owned = {i: [a for a in accounts if shard_of(a, TOTAL_SHARDS) == i]
                 for i in range(TOTAL_SHARDS)}
        log("organization: %d accounts (%d members + management), %d projects in all (default "
            "included), regions %s, today %s, CE page size %d"
            % (len(accounts), args.members, sum(projects_per_account.values()),
               ",".join(regions), cfg["today"], page_size))

        # the exporters, all at once (each against its own fake)
        env = exporter_env(tmp)
        exps = {}
        for i, n in enumerate(names):
            conf = os.path.join(tmp, n + ".conf")
            # the shards' state_file names {shard}, as packaging/README.md advises: shard 0
            # discovers the Bedrock service names and the others read them from its state
            state = os.path.join(tmp, ("shard{shard}" if n != "single" else n) + ".state.json")
            write_conf(conf, ports[n], regions, state, args.max_requests)
            port = free_port()
            argv = [binary, "--config.file=" + conf, "--web.listen-address=127.0.0.1:%d" % port,
                    "--log.level=info"]
            if n != "single":
                argv += ["--shard=%d" % i, "--total-shards=%d" % TOTAL_SHARDS]
            lf = open(os.path.join(tmp, n + ".exporter.log"), "wb")
            started = time.monotonic()
            p = procs.start(argv, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf, env=env)
            exps[n] = {"proc": p, "port": port, "started": started, "log": lf}
        results = {}
        ready_at = {}

        def all_ready():
            for n in names:
                e = exps[n]
                if n in ready_at:
                    continue
                if e["proc"].poll() is not None:
                    raise RuntimeError("exporter %s exited with %s" % (n, e["proc"].returncode))
                if req(e["port"], "/-/ready", timeout=10)[0] == 200:
                    ready_at[n] = time.monotonic()
            return len(ready_at) == len(names)
        try:
            wait_until(all_ready, args.timeout, "the first fills", None, 0.2)
        except RuntimeError:
            for n in names:
                if n not in ready_at:
                    with open(os.path.join(tmp, n + ".exporter.log"), "rb") as fh:
                        sys.stderr.write("--- %s ---\n%s\n" % (n, fh.read().decode(
                            "utf-8", "replace")[-3000:]))
            raise
        for n in names:
            e = exps[n]
            seconds = ready_at[n] - e["started"]
            st, _, body = req(e["port"], "/metrics", timeout=60)
            text = body.decode()
            served = sorted(lab["account_id"] for lab, _ in
                            samples(text, "bedrock_cost_account_info"))
            own, retries, errors = exporter_ce_requests(text)
            c = fake_json(ports[n], "/_fake/requests?surface=ce")["ce"]
            fake_ops = {op: c["by_operation"].get(op, 0) for op in OPS}
            statuses = {op: c["by_operation_status"].get(op, {}) for op in OPS}
            results[n] = {"accounts": served, "fake": fake_ops, "exporter": own,
                          "retries": retries, "errors": errors, "statuses": statuses,
                          "seconds": seconds}
            log("%-7s ready after %.1f s: %d accounts, GetCostAndUsage %d (fake) / %d "
                "(exporter)" % (n, seconds, len(served), fake_ops["GetCostAndUsage"],
                                own["GetCostAndUsage"]))
        # the counts stay what they were at ready (nothing was still under way)
        for n in names:
            c = fake_json(ports[n], "/_fake/requests?surface=ce")["ce"]
            if {op: c["by_operation"].get(op, 0) for op in OPS} != results[n]["fake"]:
                results[n]["late"] = {op: c["by_operation"].get(op, 0) for op in OPS}
        return report(args, page_size, accounts, owned, projects_per_account, results, regions,
                      cfg)
    finally:
        procs.stop_all()
        for e in locals().get("exps", {}).values():
            e["log"].close()
        if args.keep:
            log("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def report(args, page_size, accounts, owned, projects_per_account, results, regions, cfg):
    problems = []
    shards = ["shard%d" % i for i in range(TOTAL_SHARDS)]
    lines = []
    w = lines.append
    w("bedrock-cost-exporter organization benchmark  %s UTC" % time.strftime(
        "%Y-%m-%d %H:%M", time.gmtime()))
    w("fake organization: %d members + the management account = %d accounts, %s, %d projects "
      "per member per region (+ default); %d projects in all; Cost Explorer page size %d; "
      "today %s" % (args.members, len(accounts), ",".join(regions), args.projects,
                    sum(projects_per_account.values()), page_size, cfg["today"]))
    w("first fill: empty state file, until /-/ready; requests counted by each exporter's own fake")
    w("")
    head = "%-26s %8s %9s %8s %8s %8s %9s %9s" % ("", "accounts", "GetCostAnd", "GetDim",
                                                  "Forecast", "ListTags", "all CE", "ready s")
    w(head)
    w("%-26s %8s %9s %8s %8s %8s %9s %9s" % ("", "", "Usage", "Values", "", "", "requests", ""))
    w("-" * len(head))
    tot = {op: 0 for op in OPS}
    for i, n in enumerate(shards):
        r = results[n]
        for op in OPS:
            tot[op] += r["fake"][op]
        w("%-26s %8d %9d %8d %8d %8d %9d %9.1f" % (
            "shard %d of %d" % (i, TOTAL_SHARDS), len(r["accounts"]),
            r["fake"]["GetCostAndUsage"], r["fake"]["GetDimensionValues"],
            r["fake"]["GetCostForecast"], r["fake"]["ListCostAllocationTags"],
            sum(r["fake"].values()), r["seconds"]))
    w("%-26s %8d %9d %8d %8d %8d %9d" % (
        "sum of the 3 shards", sum(len(results[n]["accounts"]) for n in shards),
        tot["GetCostAndUsage"], tot["GetDimensionValues"], tot["GetCostForecast"],
        tot["ListCostAllocationTags"], sum(tot.values())))
    s = results["single"]
    w("%-26s %8d %9d %8d %8d %8d %9d %9.1f" % (
        "one exporter, all accounts", len(s["accounts"]), s["fake"]["GetCostAndUsage"],
        s["fake"]["GetDimensionValues"], s["fake"]["GetCostForecast"],
        s["fake"]["ListCostAllocationTags"], sum(s["fake"].values()), s["seconds"]))
    w("")

    # consistency: the exporters' own counters, statuses, retries, accounts
    for n, r in results.items():
        if r["exporter"] != r["fake"]:
            problems.append("%s: the exporter counted %r, its fake %r" % (n, r["exporter"],
                                                                         r["fake"]))
        bad = {op: st for op, st in r["statuses"].items() if set(st) - {"200"}}
        if bad or r["retries"] or r["errors"]:
            problems.append("%s: retries %d, errors %d, statuses %r (the comparison needs "
                            "clean runs)" % (n, r["retries"], r["errors"], bad))
        if "late" in r:
            problems.append("%s: Cost Explorer requests after /-/ready: %r -> %r"
                            % (n, r["fake"], r["late"]))
    for i, n in enumerate(shards):
        if results[n]["accounts"] != owned[i]:
            problems.append("%s serves %r, FNV-1a mod %d gives %r" % (
                n, results[n]["accounts"], TOTAL_SHARDS, owned[i]))
    union = sorted(a for n in shards for a in results[n]["accounts"])
    if union != accounts:
        problems.append("the shards together serve %r, the organization is %r" % (union,
                                                                                  accounts))
    if s["accounts"] != accounts:
        problems.append("the single exporter serves %r, the organization is %r"
                        % (s["accounts"], accounts))

    gcu_sh, gcu_one = tot["GetCostAndUsage"], s["fake"]["GetCostAndUsage"]
    all_sh, all_one = sum(tot.values()), sum(s["fake"].values())
    ok_gcu, ok_all = gcu_sh <= gcu_one, all_sh <= all_one
    w("target (issue 14): the first fill across %d shards costs no more Cost Explorer requests "
      "than one exporter covering all accounts" % TOTAL_SHARDS)
    w("  GetCostAndUsage              %-6s %d across the shards, %d for one exporter"
      % ("HOLDS" if ok_gcu else "FAILS", gcu_sh, gcu_one))
    w("  all Cost Explorer requests   %-6s %d across the shards, %d for one exporter"
      % ("HOLDS" if ok_all else "FAILS", all_sh, all_one))
    for p in problems:
        w("problem: " + p)
    data = {"accounts": accounts, "owned": owned, "results": results, "members": args.members,
            "regions": regions, "projects": args.projects, "page_size": page_size}
    return "\n".join(lines) + "\n", ok_gcu and ok_all and not problems, data


def main():
    import datetime
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default="./bedrock-cost-exporter")
    ap.add_argument("--members", type=int, default=12)
    ap.add_argument("--regions", default="us-east-1,eu-west-1")
    ap.add_argument("--projects", type=int, default=100, help="per member per region (0..200)")
    ap.add_argument("--page-sizes", default="5000,50",
                    help="the fakes' Cost Explorer page sizes in groups, one run each "
                    "(make bench's 5000, and the fake's default 50: many pages)")
    ap.add_argument("--max-requests", type=int, default=100000,
                    help="cost_explorer.max_requests_per_day of every exporter")
    ap.add_argument("--today", default=datetime.datetime.now(datetime.timezone.utc)
                    .date().isoformat(), help="the fakes' day (default: today, UTC)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds for a first fill")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "issue-14"),
                    help="where table.txt and org.json go ('' for nowhere)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        sys.exit("org_bench: no binary %s" % args.binary)
    texts, ok, data = [], True, []
    for ps in [int(x) for x in args.page_sizes.split(",")]:
        text, good, d = run(args, ps)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        texts.append(text)
        data.append(d)
        ok = ok and good
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "table.txt"), "w") as fh:
            fh.write("\n".join(texts))
        with open(os.path.join(args.out, "org.json"), "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        log("wrote %s/table.txt and org.json" % args.out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
