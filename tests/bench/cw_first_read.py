#!/usr/bin/env python3
"""What the cloudwatch source's first read costs on a full account (issue 13).

Builds the 1,000-project account of tests/bench/gen_account.py for today (its ledger and
projects in the fake, tokens derived from the ledger by the fake's CloudWatch surface), runs
`bedrock-cost-exporter --once` against it with default settings (only endpoints, credentials
and the state file set), and prints the CloudWatch requests, metrics and dollars of that first
read (the 9 days' history plus today's minutes of every active pair), its duration, the
series it produced, and what one steady read then asks for. Only 127.0.0.1.

    /usr/bin/python3 tests/bench/cw_first_read.py [--binary ./bedrock-cost-exporter] [--projects 1000]
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import gen_account  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "bedrock-cost-exporter"))
    ap.add_argument("--projects", type=int, default=1000)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bce-cw-")
    fake = None
    try:
        today = datetime.datetime.now(datetime.timezone.utc).date()
        projects, rows = gen_account.account(args.projects, today)
        ledger = os.path.join(tmp, "ledger.json")
        with open(ledger, "w") as fh:
            json.dump(rows, fh, separators=(",", ":"))
        port_file = os.path.join(tmp, "port")
        fake = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "tests", "fake_aws",
                                                                   "fake_aws.py"),
                                 "--port", "0", "--port-file", port_file, "--quiet",
                                 "--ledger", ledger, "--ce-page-size", "2000"])
        deadline = time.monotonic() + 60
        while not os.path.exists(port_file):
            if time.monotonic() > deadline or fake.poll() is not None:
                raise RuntimeError("the fake did not start")
            time.sleep(0.1)
        base = "http://127.0.0.1:%s" % open(port_file).read().strip()

        def call(method, path, body=None):
            req = urllib.request.Request(base + path, method=method,
                                         data=None if body is None else json.dumps(body).encode())
            return json.load(urllib.request.urlopen(req, timeout=600))
        call("PUT", "/_fake/projects/us-east-1", projects)
        keys = sorted({k for r in rows for k in r.get("tags", {})})
        call("PUT", "/_fake/allocation_tags", {k: "Active" for k in keys})
        conf = os.path.join(tmp, "e.conf")
        with open(conf, "w") as fh:
            fh.write('projects: {{ endpoint = "{b}/mantle/{{region}}/v1"; }};\n'
                     'cost_explorer: {{ endpoint = "{b}/ce"; }};\n'
                     'cloudwatch: {{ endpoint = "{b}/monitoring/{{region}}"; }};\n'
                     'aws: {{ sts_endpoint = "{b}/sts"; imds_enabled = false; }};\n'
                     'http: {{ request_timeout = 300; max_response_mib = 256; }};\n'
                     'state_file = "{t}/state.json";\n'.format(b=base, t=tmp))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(BEDROCK_API_KEY="demo-bedrock-api-key", AWS_ACCESS_KEY_ID="AKIDFAKEEXAMPLE",
                   AWS_SECRET_ACCESS_KEY="fake/secret/EXAMPLEKEY",
                   AWS_EC2_METADATA_DISABLED="true", HOME=tmp)
        out = subprocess.run([args.binary, "--once", "--config.file=" + conf, "--log.level=warn"],
                             env=env, capture_output=True, text=True, timeout=900)
        if out.returncode:
            raise RuntimeError("--once failed:\n" + out.stderr[-2000:])
        fam = {}
        for line in out.stdout.splitlines():
            if line and not line.startswith("#"):
                name = line.split("{")[0].split(" ")[0]
                fam.setdefault(name, []).append(line)

        def value(prefix):
            return float(next(l for l in out.stdout.splitlines() if l.startswith(prefix)).split()[-1])
        c = call("GET", "/_fake/requests?surface=cloudwatch")["cloudwatch"]
        metrics = value("bedrock_cost_exporter_cloudwatch_metrics_requested_total")
        pairs = len(fam.get("bedrock_usage_project_tokens_today", [])) // 2
        print("bedrock-cost-exporter: the cloudwatch source's first read, %s UTC"
              % time.strftime("%Y-%m-%d %H:%M", time.gmtime()))
        print("account: %d projects + default (gen_account.py, %s), %d active (project, model) "
              "pairs" % (args.projects, today, pairs))
        print("first read: %d GetMetricData + %d ListMetrics requests, %d metrics, %.4f USD, "
              "%.2f s" % (c["by_operation"].get("GetMetricData", 0),
                          c["by_operation"].get("ListMetrics", 0), metrics,
                          value("bedrock_cost_exporter_cloudwatch_spend_usd_total"),
                          value('bedrock_cost_exporter_refresh_duration_seconds{source="cloudwatch"}')))
        print("the fake counted %d metrics; requests botocore's model rejects: %d"
              % (c["metrics_requested"], c.get("model_violations", 0)))
        print("series: %d estimates today, %d with an error ratio, %d rates, %d token series"
              % (len(fam.get("bedrock_cost_project_today_estimated_usd", [])),
                 len(fam.get("bedrock_cost_project_estimate_error_ratio", [])),
                 len(fam.get("bedrock_cost_rate_usd_per_million_tokens", [])),
                 len(fam.get("bedrock_usage_project_tokens_today", []))))
        steady = 2 * pairs
        print("a steady read: %d metrics; at the default ceiling of 190,000 a day, one read "
              "every %.0f s" % (steady, 86400.0 * steady / 190000))
        return 0
    finally:
        if fake and fake.poll() is None:
            fake.terminate()
            fake.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
