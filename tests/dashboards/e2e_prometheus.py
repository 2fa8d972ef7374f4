#!/usr/bin/env python3
"""End-to-end test of the shipped dashboards and rules against a real Prometheus.

Starts, all on free 127.0.0.1 ports and in one temporary directory:
  1. the fake AWS account (tests/fake_aws/fake_aws.py),
  2. the exporter against it (Cost Explorer refreshed every 10 s, so a ledger change
     reaches /metrics within ~11 s; CloudWatch read as tests/fake_aws/exporter_conf.py
     says, every 60 s),
  3. a real `prometheus` scraping only the exporter every second, with
     dashboards/prometheus/*.yml loaded and evaluated every second, no Alertmanager
     and no remote write (nothing leaves 127.0.0.1).

Then:
  - every recording rule returns data and every rule group is healthy in /api/v1/rules,
    and every alerting rule follows the conventions (BedrockCost prefix, severity,
    static summary, templated description, runbook_url to an existing RUNBOOK.md anchor);
  - for every dashboard in dashboards/*.json, every template variable query is run
    (label_values(...) through the label values API with match[]), and every panel
    target, with the variables substituted, through /api/v1/query (and
    /api/v1/query_range for time series panels). An error or an empty result fails;
  - the families of the cloudwatch source (near-real-time estimates) are all in
    Prometheus with their labels, the source is up, and its project_ids meet the cost
    series' (the hourly spike alert compares them with the billed baseline);
  - a spike is seeded in the fake's ledger (POST /_fake/ledger/rows) for a project that
    is not spiking, and BedrockCostProjectSpendSpike must become pending or firing for
    it in /api/v1/alerts. The shipped rule is used unchanged: its `for: 10m` only delays
    "firing", and "pending" shows at the first evaluation after the data arrives;
  - a spike of a project's CloudWatch tokens starts now (POST /_fake/cloudwatch/spike)
    and BedrockCostProjectHourlySpendSpike, the shipped rule unchanged (`for: 2m`), must
    be firing for it within 10 minutes of the spike's start (the exporter's CloudWatch
    refresh is 60 s here), with the estimate and the baseline per hour in its description.

Prints one line per check and `N passed, N failed` last; exits 1 on any failure.
Every process it started is stopped, and the temporary directory removed.
"""
import argparse
import datetime
import glob
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fake_aws"))
from exporter_conf import exporter_conf  # noqa: E402
from grafana import all_panels, substitute, variable_query, variables_used

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FAKE = os.path.join(ROOT, "tests", "fake_aws", "fake_aws.py")
RULE_FILES = sorted(glob.glob(os.path.join(ROOT, "dashboards", "prometheus", "*.yml")))
DASHBOARDS = sorted(glob.glob(os.path.join(ROOT, "dashboards", "*.json")))
RUNBOOK = os.path.join(ROOT, "dashboards", "RUNBOOK.md")
RUNBOOK_URL = ("https://github.com/bedrock-cost-exporter/bedrock-cost-exporter/blob/main/"
               "dashboards/RUNBOOK.md#")
JOB = "bedrock-cost"
SPIKE_ALERT = "BedrockCostProjectSpendSpike"
HOURLY_SPIKE_ALERT = "BedrockCostProjectHourlySpendSpike"
# The families of the cloudwatch source and the labels each of their series carries
# (besides job and instance).
CLOUDWATCH_FAMILIES = {
    "bedrock_usage_project_tokens_today": ("account_id", "region", "project_id", "model",
                                           "direction"),
    "bedrock_cost_project_today_estimated_usd": ("account_id", "project_id"),
    "bedrock_cost_project_estimated_usd_per_hour": ("account_id", "project_id"),
    "bedrock_cost_rate_usd_per_million_tokens": ("account_id", "region", "model", "direction",
                                                 "source"),
    "bedrock_cost_project_estimate_error_ratio": ("account_id", "project_id"),
    "bedrock_cost_exporter_cloudwatch_metrics_requested_total": (),
    "bedrock_cost_exporter_cloudwatch_spend_usd_total": (),
    "bedrock_cost_exporter_cloudwatch_metrics_remaining_today": (),
}

# What Grafana would put in place of its built-in variables. The data is seconds old,
# so the windows only need to hold two or more 1 s scrapes.
BUILTINS = {
    "__rate_interval": "1m", "__interval": "15s", "__interval_ms": "15000",
    "__range": "1h", "__range_s": "3600", "__range_ms": "3600000",
}
# Values to pick for a variable instead of its first value: the demo budget is on
# CustomerChatbot-Prod, so every budget panel of the project dashboard has data.
PREFERRED = {"project": "CustomerChatbot-Prod"}
# Variables whose every value is tried on the targets that use them.
ITERATE_ALL = {"tag_key"}
EXPECTED_TAG_KEYS = {"Application", "Environment", "Team", "CostCenter"}


class Checks:
    def __init__(self, verbose):
        self.passed = 0
        self.failed = 0
        self.verbose = verbose

    def check(self, ok, name, detail=""):
        if ok:
            self.passed += 1
            if self.verbose:
                print("ok   " + name)
        else:
            self.failed += 1
            print("FAIL " + name + (": " + detail if detail else ""))
        sys.stdout.flush()
        return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = pred()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise RuntimeError("timed out after %ds waiting for %s" % (timeout, what))
        time.sleep(interval)


def http(url, data=None, method=None, timeout=10):
    """(status, body bytes) or (None, b'') when nothing answers."""
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


class Prom:
    def __init__(self, base):
        self.base = base

    def api(self, path, **params):
        """The JSON answer of a Prometheus API call; params may hold lists (match[])."""
        url = self.base + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        status, body = http(url)
        try:
            return json.loads(body)
        except ValueError:
            return {"status": "error", "error": "HTTP %s: %r" % (status, body[:200])}

    def query(self, expr):
        return self.api("/api/v1/query", query=expr)

    def vector(self, expr):
        d = self.query(expr)
        if d.get("status") != "success":
            return []
        return d["data"]["result"]


def label_values(prom, query):
    """Run a Grafana label_values(...) variable query; (values, error)."""
    m = re.fullmatch(r"\s*label_values\(\s*(?:(.*\S)\s*,\s*)?(\w+)\s*\)\s*", query, re.S)
    if not m:
        return None, "not a label_values() query: " + query
    selector, label = m.group(1), m.group(2)
    params = {"match[]": [selector]} if selector else {}
    d = prom.api("/api/v1/label/%s/values" % label, **params)
    if d.get("status") != "success":
        return None, d.get("error", "error")
    if selector:  # the same selector through the series API: it must match series
        s = prom.api("/api/v1/series", **{"match[]": [selector]})
        if s.get("status") != "success" or not s["data"]:
            return None, "no series for %s: %s" % (selector, s.get("error", "empty"))
    return d["data"], None


def github_anchors(markdown):
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*\S)\s*$", line)
        if m:
            a = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            anchors.add(a)
    return anchors


class Stack:
    """The three processes and the temporary directory."""

    def __init__(self, binary, prometheus, keep):
        self.binary = binary
        self.prometheus = prometheus
        self.keep = keep
        self.tmp = tempfile.mkdtemp(prefix="bce-e2e-prom-")
        self.procs = []
        self.logs = {}

    def spawn(self, name, argv, env=None):
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        self.logs[name] = log.name
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                             stdin=subprocess.DEVNULL, cwd=self.tmp)
        log.close()
        self.procs.append((name, p))
        return p

    def alive(self, name):
        return any(n == name and p.poll() is None for n, p in self.procs)

    def tail(self, name, lines=15):
        try:
            with open(self.logs[name], "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except (OSError, KeyError):
            return ""

    def stop(self):
        for _, p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for _, p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.keep:
            print("kept " + self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self):
        port_file = os.path.join(self.tmp, "fake.port")
        self.spawn("fake_aws", ["/usr/bin/python3", FAKE, "--port", "0", "--port-file", port_file,
                                "--quiet"])
        wait_for(lambda: os.path.exists(port_file) or not self.alive("fake_aws"), 30,
                 "the fake AWS account")
        if not self.alive("fake_aws"):
            raise RuntimeError("fake_aws exited:\n" + self.tail("fake_aws"))
        self.fake = "http://127.0.0.1:%d" % int(open(port_file).read().strip())

        conf = os.path.join(self.tmp, "exporter.conf")
        with open(conf, "w") as f:
            # a 10 s refresh (the minimum) shows the seeded spike within ~11 s, and must
            # not hit the request ceiling during the test
            f.write(exporter_conf(self.fake, self.tmp, 10,
                                  ce_extra="  max_requests_per_day = 10000;\n",
                                  header="# written by tests/dashboards/e2e_prometheus.py\n"))

        env = dict(os.environ, BEDROCK_API_KEY="demo-bedrock-api-key", HOME=self.tmp,
                   AWS_ACCESS_KEY_ID="AKIDFAKEEXAMPLE",
                   AWS_SECRET_ACCESS_KEY="fake/secret/EXAMPLEKEY",
                   AWS_EC2_METADATA_DISABLED="true")
        for k in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                  "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                  "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_EC2_METADATA_SERVICE_ENDPOINT"):
            env.pop(k, None)
        self.exporter_target = "127.0.0.1:%d" % free_port()
        self.spawn("exporter", [self.binary, "--config.file=" + conf,
                                "--web.listen-address=" + self.exporter_target], env=env)
        wait_for(lambda: not self.alive("exporter")
                 or http("http://%s/-/ready" % self.exporter_target, timeout=2)[0] == 200,
                 30, "the exporter to become ready")
        if not self.alive("exporter"):
            raise RuntimeError("the exporter exited:\n" + self.tail("exporter"))

        prom_conf = os.path.join(self.tmp, "prometheus.yml")
        with open(prom_conf, "w") as f:
            f.write("# written by tests/dashboards/e2e_prometheus.py: scrapes only the exporter,\n"
                    "# no alerting (no Alertmanager), no remote write.\n"
                    "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
                    "rule_files:\n" + "".join("  - %s\n" % json.dumps(r) for r in RULE_FILES) +
                    "scrape_configs:\n  - job_name: %s\n    static_configs:\n"
                    "      - targets: [%s]\n" % (json.dumps(JOB), json.dumps(self.exporter_target)))
        prom_addr = "127.0.0.1:%d" % free_port()
        self.spawn("prometheus", [self.prometheus, "--config.file=" + prom_conf,
                                  "--storage.tsdb.path=" + os.path.join(self.tmp, "tsdb"),
                                  "--web.listen-address=" + prom_addr,
                                  "--web.console.templates=" + os.path.join(self.tmp, "consoles"),
                                  "--web.console.libraries=" + os.path.join(self.tmp, "console_libraries"),
                                  "--log.level=warn"])
        self.prom = Prom("http://" + prom_addr)
        wait_for(lambda: not self.alive("prometheus")
                 or http(self.prom.base + "/-/ready", timeout=2)[0] == 200,
                 30, "Prometheus to become ready")
        if not self.alive("prometheus"):
            raise RuntimeError("prometheus exited:\n" + self.tail("prometheus"))


def check_rules(c, prom):
    # Poll until every rule has been evaluated at least once (health "unknown" before).
    def evaluated():
        d = prom.api("/api/v1/rules")
        if d.get("status") != "success" or not d["data"]["groups"]:
            return None
        gs = d["data"]["groups"]
        return gs if all(r.get("health") != "unknown" for g in gs for r in g["rules"]) else None
    try:
        groups = wait_for(evaluated, 30, "every rule to be evaluated", interval=0.25)
    except RuntimeError as e:
        c.check(False, "rules evaluated", str(e))
        return [], []
    loaded = sorted(os.path.basename(g["file"]) for g in groups)
    c.check(loaded == sorted(os.path.basename(f) for f in RULE_FILES),
            "every shipped rule file is loaded", "loaded: %s" % loaded)
    records, alerts = [], []
    for g in groups:
        for r in g["rules"]:
            c.check(r.get("health") == "ok" and not r.get("lastError"),
                    "rule healthy: %s / %s" % (g["name"], r["name"]),
                    "health=%s lastError=%s" % (r.get("health"), r.get("lastError")))
            (records if r["type"] == "recording" else alerts).append(r)
    return records, alerts


def check_alert_conventions(c, alerts):
    try:
        anchors = github_anchors(open(RUNBOOK, encoding="utf-8").read())
    except OSError as e:
        c.check(False, "dashboards/RUNBOOK.md is readable", str(e))
        anchors = set()
    for r in alerts:
        name = r["name"]
        c.check(re.fullmatch(r"BedrockCost(?:[A-Z][a-z0-9]*)+", name) is not None,
                "alert name is CamelCase with the BedrockCost prefix: " + name)
        sev = r.get("labels", {}).get("severity")
        c.check(sev in ("warning", "critical", "info"), "alert %s has a severity" % name, repr(sev))
        ann = r.get("annotations", {})
        c.check(bool(ann.get("summary")) and "{{" not in ann.get("summary", ""),
                "alert %s has a static summary" % name, repr(ann.get("summary")))
        c.check("{{" in ann.get("description", ""), "alert %s has a templated description" % name,
                repr(ann.get("description")))
        url = ann.get("runbook_url", "")
        anchor = url[len(RUNBOOK_URL):] if url.startswith(RUNBOOK_URL) else None
        c.check(anchor == name.lower() and anchor in anchors,
                "alert %s has a runbook_url to RUNBOOK.md#%s" % (name, name.lower()), url)


def check_recording_rules_have_data(c, prom, records):
    names = sorted(set(r["name"] for r in records))
    def all_present():
        return all(prom.vector(n) for n in names)
    try:
        wait_for(all_present, 20, "every recording rule to have data", interval=0.5)
    except RuntimeError:
        pass
    for n in names:
        c.check(bool(prom.vector(n)), "recording rule has data: " + n)


def run_target(c, prom, label, expr, is_range):
    d = prom.query(expr)
    ok = d.get("status") == "success"
    if not c.check(ok, label + " [query]", "%s\n      expr: %s" % (d.get("error"), expr)):
        return
    res = d["data"]["result"]
    empty = (not res) if d["data"]["resultType"] in ("vector", "matrix") else False
    c.check(not empty, label + " [has data]", "no data for\n      " + expr.replace("\n", "\n      "))
    if is_range:
        now = time.time()
        d = prom.api("/api/v1/query_range", query=expr, start="%.3f" % (now - 60),
                     end="%.3f" % now, step="5")
        c.check(d.get("status") == "success" and d["data"]["result"], label + " [query_range]",
                "%s\n      expr: %s" % (d.get("error", "empty"), expr))


def check_dashboard(c, prom, path):
    name = os.path.basename(path)
    dash = json.load(open(path, encoding="utf-8"))
    values = dict(BUILTINS)   # variable -> chosen value
    choices = {}              # variable -> every value (for ITERATE_ALL)
    for var in dash.get("templating", {}).get("list", []):
        vname = var.get("name")
        if var.get("type") == "datasource":
            c.check(var.get("query") == "prometheus", "%s: variable $%s lists Prometheus data sources"
                    % (name, vname), repr(var.get("query")))
            values[vname] = "prometheus"
            continue
        if var.get("type") == "custom":
            opts = [o.strip() for o in var.get("query", "").split(",") if o.strip()]
        elif var.get("type") == "query":
            q = substitute(variable_query(var), values)
            unresolved = variables_used(q)
            if not c.check(not unresolved, "%s: variable $%s query has no unresolved variables"
                           % (name, vname), "%s in %s" % (unresolved, q)):
                continue
            opts, err = label_values(prom, q)
            if not c.check(err is None, "%s: variable $%s query runs" % (name, vname),
                           "%s (%s)" % (err, q)):
                continue
        else:
            c.check(False, "%s: variable $%s has a supported type" % (name, vname), var.get("type"))
            continue
        if var.get("regex"):
            opts = [o for o in opts if re.search(var["regex"], o)]
        if not c.check(bool(opts), "%s: variable $%s has values" % (name, vname)):
            continue
        if vname == "tag_key":
            c.check(EXPECTED_TAG_KEYS <= set(opts), "%s: $tag_key offers %s" %
                    (name, ", ".join(sorted(EXPECTED_TAG_KEYS))), "got %s" % opts)
        pick = PREFERRED.get(vname)
        if pick is not None:
            c.check(pick in opts, "%s: variable $%s offers %s" % (name, vname, pick), "got %s" % opts)
        values[vname] = pick if pick in opts else opts[0]
        choices[vname] = opts if vname in ITERATE_ALL else [values[vname]]

    for panel in all_panels(dash):
        for t in panel.get("targets", []) or []:
            expr = t.get("expr", "")
            label = "%s: panel %d \"%s\" target %s" % (name, panel.get("id"), panel.get("title"),
                                                        t.get("refId"))
            used = sorted(v for v in variables_used(expr) if v in choices)
            combos = itertools.product(*(choices[v] for v in used)) if used else [()]
            for combo in combos:
                vals = dict(values)
                vals.update(zip(used, combo))
                e = substitute(expr, vals)
                unresolved = variables_used(e)
                suffix = "".join(" %s=%s" % kv for kv in zip(used, combo) if kv[0] in ITERATE_ALL)
                if not c.check(not unresolved, label + suffix + " [variables resolved]",
                               "%s in %s" % (unresolved, e)):
                    continue
                run_target(c, prom, label + suffix, e,
                           is_range=bool(t.get("range")) or panel.get("type") == "timeseries")


def seed_spike(c, stack):
    prom = stack.prom
    # A project with attribution tags, not spiking now: yesterday < 3 x baseline.
    rows = prom.vector('bedrock_cost_project_info{status="active",tag_application!="",'
                       'tag_environment!=""}')
    candidates = []
    for r in rows:
        m = r["metric"]
        pid = m["project_id"]
        y = prom.vector('bedrock_cost_project_yesterday_usd{project_id="%s"}' % pid)
        b = prom.vector('bedrock_cost_project_baseline_daily_usd{project_id="%s"}' % pid)
        if y and b and float(y[0]["value"][1]) < 2 * float(b[0]["value"][1]):
            candidates.append((m["project_name"] != "DocSummarizer-Prod", m, float(b[0]["value"][1])))
    if not c.check(bool(candidates), "a project without a spike exists to seed one"):
        return
    _, proj, baseline = sorted(candidates, key=lambda x: (x[0], x[1]["project_name"]))[0]
    pid, pname = proj["project_id"], proj["project_name"]

    def spike_alerts():
        d = prom.api("/api/v1/alerts")
        return [a for a in d.get("data", {}).get("alerts", [])
                if a["labels"].get("alertname") == SPIKE_ALERT and a["labels"].get("project_id") == pid]
    c.check(not spike_alerts(), "%s is not active for %s before the spike is seeded"
            % (SPIKE_ALERT, pname))

    status, body = http(stack.fake + "/_fake/config")
    today = datetime.date.fromisoformat(json.loads(body)["today"])
    yesterday = (today - datetime.timedelta(days=1)).isoformat()
    amount = max(1000.0, 10 * baseline + 100)
    row = {"date": yesterday, "service": "Amazon Bedrock",
           "usage_type": "USE1-openai.gpt-oss-120b-mantle-input-tokens-standard",
           "tags": {"Application": proj["tag_application"], "Environment": proj["tag_environment"]},
           "cost": "%.4f" % amount}
    status, body = http(stack.fake + "/_fake/ledger/rows", data=json.dumps([row]).encode(),
                        method="POST")
    if not c.check(status in (200, 201), "spike row appended to the fake ledger",
                   "HTTP %s %r" % (status, body[:200])):
        return
    try:
        wait_for(lambda: any(float(s["value"][1]) >= amount for s in prom.vector(
            'bedrock_cost_project_yesterday_usd{project_id="%s"}' % pid)), 40,
            "the exporter to report the spike", interval=0.5)
        c.check(True, "the seeded spike reaches Prometheus (%s yesterday >= %.2f USD)" % (pname, amount))
    except RuntimeError as e:
        c.check(False, "the seeded spike reaches Prometheus", str(e))
        return
    try:
        alerts = wait_for(spike_alerts, 15, SPIKE_ALERT + " for " + pname, interval=0.5)
    except RuntimeError as e:
        c.check(False, "%s is pending or firing for %s" % (SPIKE_ALERT, pname), str(e))
        return
    a = alerts[0]
    c.check(a["state"] in ("pending", "firing"), "%s is pending or firing for %s"
            % (SPIKE_ALERT, pname), a["state"])
    c.check(a["labels"].get("project_name") == pname and a["labels"].get("severity") == "warning",
            "%s carries project_name and severity" % SPIKE_ALERT, json.dumps(a["labels"]))
    desc = a["annotations"].get("description", "")
    c.check(pname in desc and "spent %.2f USD" % float(a["value"]) in desc
            and "baseline of %.2f USD" % baseline in desc,
            "%s description names the project, yesterday's spend and the baseline" % SPIKE_ALERT,
            desc)


def check_accounts(c, prom, account):
    """Single-account mode: the caller's account (the fake's STS GetCallerIdentity) names
    every project and cost series, its health is there, and the shard families say 0 of 1."""
    info = prom.vector("bedrock_cost_account_info")
    c.check([s["metric"].get("account_id") for s in info] == [account],
            "bedrock_cost_account_info names the caller's account %s" % account, json.dumps(info))
    for family in ("bedrock_cost_project_info", "bedrock_cost_project_month_to_date_usd",
                   "bedrock_cost_tag_month_to_date_usd", "bedrock_cost_model_month_to_date_usd"):
        got = prom.vector(family)
        c.check(bool(got) and all(s["metric"].get("account_id") == account for s in got),
                "%s: every series carries account_id=%s" % (family, account),
                json.dumps([s["metric"] for s in got][:2]))
    up = prom.vector('bedrock_cost_exporter_account_up{account_id="%s"}' % account)
    c.check(bool(up) and all(s["value"][1] == "1" for s in up), "the account is up", json.dumps(up))
    last = prom.vector("bedrock_cost_exporter_account_last_success_timestamp_seconds")
    c.check(bool(last) and all(float(s["value"][1]) > 0 for s in last),
            "the account has a last success", json.dumps(last))
    for family, want in (("bedrock_cost_exporter_shard_ordinal", "0"),
                         ("bedrock_cost_exporter_total_shards", "1")):
        got = prom.vector(family)
        c.check(bool(got) and all(s["value"][1] == want for s in got), "%s is %s" % (family, want),
                json.dumps(got))


def check_cloudwatch(c, prom):
    """The cloudwatch source's families are in Prometheus, with their labels and values."""
    try:
        # two CloudWatch refreshes (60 s apart): the first read of a UTC day that began
        # during the run may be a refresh away
        wait_for(lambda: all(prom.vector(f) for f in CLOUDWATCH_FAMILIES), 150,
                 "the cloudwatch families in Prometheus", interval=0.5)
    except RuntimeError:
        pass  # each family is reported below
    for family, labels in sorted(CLOUDWATCH_FAMILIES.items()):
        got = prom.vector(family)
        if not c.check(bool(got), "cloudwatch family has data: " + family):
            continue
        c.check(all(all(s["metric"].get(l) for l in labels) for s in got),
                "%s: every series carries %s" % (family, ", ".join(labels) or "job and instance"),
                json.dumps([s["metric"] for s in got][:3]))
    for family, label, allowed in (("bedrock_usage_project_tokens_today", "direction", {"input", "output"}),
                                   ("bedrock_cost_rate_usd_per_million_tokens", "direction", {"input", "output"}),
                                   ("bedrock_cost_rate_usd_per_million_tokens", "source", {"billed", "configured"})):
        seen = set(s["metric"].get(label) for s in prom.vector(family))
        c.check(bool(seen) and seen <= allowed, "%s: %s is one of %s" % (family, label, sorted(allowed)),
                "got %s" % sorted(seen, key=str))
    up = prom.vector('bedrock_cost_exporter_source_up{source="cloudwatch"}')
    c.check(bool(up) and all(s["value"][1] == "1" for s in up), "source cloudwatch is up",
            json.dumps(up))
    last = prom.vector('bedrock_cost_exporter_last_success_timestamp_seconds{source="cloudwatch"}')
    c.check(bool(last) and all(float(s["value"][1]) > 0 for s in last),
            "source cloudwatch has a last success", json.dumps(last))
    req = prom.vector("bedrock_cost_exporter_cloudwatch_metrics_requested_total")
    c.check(bool(req) and all(float(s["value"][1]) > 0 for s in req),
            "the cloudwatch source counted the metrics it requested", json.dumps(req))
    # The alerts and the dashboards join the estimates to the billed series and to the
    # project names by project_id: the ids must be the same.
    for what, expr in (
            ("estimates meet the billed baseline on project_id (BedrockCostProjectHourlySpendSpike)",
             "bedrock_cost_project_estimated_usd_per_hour and bedrock_cost_project_baseline_daily_usd"),
            ("estimates meet the project names on project_id",
             "bedrock_cost_project_today_estimated_usd * on (job, instance, account_id, project_id) "
             "group_left (project_name) project_id:bedrock_cost_project_name:info"),
            ("error ratios meet the billed baseline on project_id (BedrockCostEstimateErrorHigh)",
             "bedrock_cost_project_estimate_error_ratio and bedrock_cost_project_baseline_daily_usd")):
        c.check(bool(prom.vector(expr)), what, expr)


def seed_hourly_spike(c, stack):
    """Multiplies a project's CloudWatch tokens from now on; the shipped
    BedrockCostProjectHourlySpendSpike must fire within 10 minutes of that moment."""
    prom = stack.prom
    candidates = []
    for r in prom.vector('bedrock_cost_project_estimated_usd_per_hour > 0'):
        pid = r["metric"]["project_id"]
        b = prom.vector('bedrock_cost_project_baseline_daily_usd{project_id="%s"} > 0' % pid)
        names = prom.vector('project_id:bedrock_cost_project_name:info{project_id="%s"}' % pid)
        info = prom.vector('bedrock_cost_project_info{project_id="%s"}' % pid)
        if not (b and names and info):
            continue
        rate, base = float(r["value"][1]), float(b[0]["value"][1]) / 24
        if rate < 2 * base:
            candidates.append((names[0]["metric"]["project_name"], pid, info[0]["metric"]["region"],
                               rate, base))
    if not c.check(bool(candidates), "a project with an estimate, a baseline and no hourly spike exists"):
        return
    # the busiest one: its spike has to beat 3 x its baseline rather than the 5 USD/h floor
    pname, pid, region, rate, base = sorted(candidates, key=lambda x: (-x[3], x[0]))[0]

    def alerts():
        d = prom.api("/api/v1/alerts")
        return [a for a in d.get("data", {}).get("alerts", [])
                if a["labels"].get("alertname") == HOURLY_SPIKE_ALERT
                and a["labels"].get("project_id") == pid]
    c.check(not alerts(), "%s is not active for %s before the spike is seeded"
            % (HOURLY_SPIKE_ALERT, pname))
    # one spiked minute crosses twice the threshold: 1 + (F - 1) / 60 >= target / rate
    target = 2 * max(3 * base, 5.0)
    factor = max(50.0, 1 + 60 * target / rate)
    t_spike = time.time()
    status, body = http(stack.fake + "/_fake/cloudwatch/spike", data=json.dumps(
        {"region": region, "project": pid, "factor": factor}).encode(), method="POST")
    if not c.check(status in (200, 201), "CloudWatch spike seeded in the fake (x%.0f for %s)"
                   % (factor, pname), "HTTP %s %r" % (status, body[:200])):
        return
    try:
        wait_for(lambda: any(float(s["value"][1]) > 3 * base and float(s["value"][1]) > 5
                             for s in prom.vector('bedrock_cost_project_estimated_usd_per_hour'
                                                  '{project_id="%s"}' % pid)),
                 300, "the exporter to report the hourly spike", interval=0.5)
        c.check(True, "the seeded CloudWatch spike reaches Prometheus (%s above 3 x %.2f USD/h)"
                % (pname, base))
    except RuntimeError as e:
        c.check(False, "the seeded CloudWatch spike reaches Prometheus", str(e))
        return
    seen = time.time() - t_spike
    try:
        got = wait_for(lambda: [a for a in alerts() if a["state"] == "firing"],
                       max(1, 600 - (time.time() - t_spike)),
                       HOURLY_SPIKE_ALERT + " firing for " + pname, interval=0.5)
    except RuntimeError as e:
        c.check(False, "%s is firing for %s within 10 minutes of the spike"
                % (HOURLY_SPIKE_ALERT, pname), str(e))
        return
    fired = time.time() - t_spike
    a = got[0]
    c.check(fired <= 600, "%s is firing for %s within 10 minutes of the spike (x%.0f: in "
            "Prometheus after %.0f s, firing after %.0f s)"
            % (HOURLY_SPIKE_ALERT, pname, factor, seen, fired), "%.0f s" % fired)
    c.check(a["labels"].get("project_name") == pname and a["labels"].get("severity") == "warning",
            "%s carries project_name and severity" % HOURLY_SPIKE_ALERT, json.dumps(a["labels"]))
    desc = a["annotations"].get("description", "")
    c.check(pname in desc and "spent at %.2f USD/h" % float(a["value"]) in desc
            and "baseline of %.2f USD/h" % base in desc,
            "%s description names the project, the hourly estimate and the baseline per hour"
            % HOURLY_SPIKE_ALERT, desc)


def check_documented_joins(c, prom):
    """Every PromQL join the docs show (an inline `bedrock_cost_... group_left ...` expression)
    returns series that carry the joined labels."""
    found = 0
    for doc in ("README.md", os.path.join("dashboards", "README.md"),
                os.path.join("dashboards", "RUNBOOK.md")):
        text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
        for expr in sorted(set(re.findall(r"`(bedrock_cost_[^`]*group_left[^`]*)`", text))):
            expr = expr.replace('="<value>"', '=~".+"')
            found += 1
            got = prom.vector(expr)
            wanted = re.search(r"group_left\s*\(([^)]*)\)", expr).group(1).split(",")
            wanted = [w.strip() for w in wanted if w.strip()]
            c.check(bool(got) and all(all(w in s["metric"] for w in wanted) for s in got),
                    "%s: the join `%s` returns series with %s" % (doc, expr, ", ".join(wanted)),
                    "got %d series" % len(got))
    c.check(found >= 2, "the docs show PromQL joins to check (%d found)" % found)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "bedrock-cost-exporter"))
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, configs)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print passing checks too")
    args = ap.parse_args()

    c = Checks(args.verbose)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    # the processes run in the temporary directory: resolve relative paths first
    stack = Stack(os.path.abspath(args.binary), os.path.abspath(args.prometheus), args.keep)
    try:
        stack.start()
        prom = stack.prom
        try:
            wait_for(lambda: any(s["value"][1] == "1" for s in prom.vector('up{job="%s"}' % JOB)),
                     30, "Prometheus to scrape the exporter", interval=0.25)
            wait_for(lambda: prom.vector("bedrock_cost_project_month_to_date_usd"), 30,
                     "cost series in Prometheus", interval=0.25)
            c.check(True, "Prometheus scrapes the exporter")
        except RuntimeError as e:
            c.check(False, "Prometheus scrapes the exporter", str(e))
            raise
        targets = prom.api("/api/v1/targets").get("data", {}).get("activeTargets", [])
        c.check([t["scrapeUrl"] for t in targets] == ["http://%s/metrics" % stack.exporter_target],
                "Prometheus scrapes the exporter and nothing else",
                json.dumps([t["scrapeUrl"] for t in targets]))
        records, alerts = check_rules(c, prom)
        check_alert_conventions(c, alerts)
        check_recording_rules_have_data(c, prom, records)
        # rate() and increase() need two samples or more in their window: wait for a few
        # scrapes before running the panel queries.
        wait_for(lambda: any(float(s["value"][1]) >= 5 for s in prom.vector(
            'count_over_time(up{job="%s"}[1m])' % JOB)), 30, "five scrapes", interval=0.25)
        check_accounts(c, prom, "123456789012")
        check_cloudwatch(c, prom)
        c.check(len(DASHBOARDS) == 3, "three dashboards in dashboards/", str(DASHBOARDS))
        for path in DASHBOARDS:
            check_dashboard(c, prom, path)
        check_documented_joins(c, prom)
        seed_spike(c, stack)
        seed_hourly_spike(c, stack)
        for name in ("fake_aws", "exporter", "prometheus"):
            c.check(stack.alive(name), name + " still running at the end", stack.tail(name))
    except Exception as e:  # report, clean up, and still print the summary line
        c.check(False, "test run", "%s: %s" % (type(e).__name__, e))
        for name in ("fake_aws", "exporter", "prometheus"):
            if name in stack.logs:
                print("--- %s log (tail)\n%s" % (name, stack.tail(name)))
    finally:
        stack.stop()
    print("e2e_prometheus: %.1f s" % (time.monotonic() - started))
    print("%d passed, %d failed" % (c.passed, c.failed))
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
