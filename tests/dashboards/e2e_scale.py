#!/usr/bin/env python3
"""Prometheus at scale, with real servers on 127.0.0.1 (issue 14): an AWS Organization
served by 3 exporter shards, each scraped by a Prometheus agent that remote-writes to a
central Prometheus, and two replicas of shard 0 that share their state in S3.

Starts, all on free 127.0.0.1 ports and in one temporary directory:
  1. the fake AWS account (tests/fake_aws/fake_aws.py) as an organization: the management
     account 123456789012 and 12 members (--org-accounts 12) with 2 projects each in
     us-east-1 and eu-west-1 (--org-projects 2), role BedrockCostExporterRead with an
     external id;
  2. a central Prometheus with --web.enable-remote-write-receiver, no scrape of its own,
     loading dashboards/prometheus/bedrock-cost.rules.yml and a test copy of
     bedrock-cost.alerts.yml in which only BedrockCostExporterShardMissing's `for: 5m`
     is shortened (to SHARD_ALERT_FOR), evaluated every second;
  3. three Prometheus agents (--enable-feature=agent, Debian's 2.42), one per shard,
     scraping every second with the labels of packaging/kubernetes (job="bedrock-cost",
     instance = the pod's name, shard, replica, external label cluster) and
     remote-writing to the central one; agent 0 scrapes both replicas of shard 0;
  4. the exporters, all with one configuration (as the ConfigMap of packaging/kubernetes):
     organization.discover = true, role_name + external_id, projects.auth = "sigv4",
     Cost Explorer at the fake (refresh 1 h, max_requests_per_day 10000), state_file =
     "s3://bce-org-state/bedrock-cost-exporter/shard-{shard}-of-{total_shards}.json" in the
     fake's S3; shards 1 and 2 and replica a of shard 0 first, then, once they have filled
     and written their state, replica b of shard 0.

Then (expected values from the fake's ledger, projects and counters, never from the
exporters' output):
  - Cost Explorer: replica b of shard 0 costs 0 requests (the fake's counters before and
    after it started, and again at the end of the run); every GetCostAndUsage filters on
    LINKED_ACCOUNT accounts of one shard, and every account is asked about;
  - the central Prometheus holds every account's projects (the fake's listing of every
    account and region) and month-to-date spend exactly once once the two replicas are
    deduplicated with `max without (instance, replica)`; every account in exactly one
    shard (the FNV-1a hash of its id, mod 3), both replicas of shard 0 with equal values;
    each account's sum over project_id (reserved ids included), each member project's
    spend, and the organization total equal the fake's ledger (month to date, Bedrock
    services only);
  - every rule is healthy, every recording rule has data;
  - every dashboard query (dashboards/*.json) runs without error in every selection of
    $account/$instance (each exporter instance; each account on the one-account project
    dashboard) and returns data in at least one; except the targets that read the families
    of the forecast and cloudwatch sources, which the exporter turns off in an organization:
    those only have to run, and the families must be absent from the central Prometheus;
  - killing replica b of shard 0 does not make BedrockCostExporterShardMissing pending
    (the other replica still reports ordinal 0), and killing shard 1 makes it fire.

Prints one line per failed check (-v: every check) and `N passed, N failed` last; exits 1
on any failure. Every process it started is stopped, and the temporary directory removed.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from decimal import Decimal

from e2e_prometheus import (BUILTINS, DASHBOARDS, FAKE, RULE_FILES, Checks, Prom, check_rules,
                            check_recording_rules_have_data, free_port, http, label_values,
                            wait_for)
from grafana import all_panels, substitute, variable_query, variables_used

TOTAL_SHARDS = 3
MEMBERS = 12
REGIONS = ["us-east-1", "eu-west-1"]
ORG_PROJECTS = 2
ROLE_NAME = "BedrockCostExporterRead"
EXTERNAL_ID = "bedrock-cost-exporter-example-org"
BUCKET = "bce-org-state"
KEY = "bedrock-cost-exporter/shard-{shard}-of-{total_shards}.json"
JOB = "bedrock-cost"
CLUSTER = "e2e-scale"
SHARD_ALERT = "BedrockCostExporterShardMissing"
SHARD_ALERT_FOR = "2s"
COUNT_ALERT = "BedrockCostExporterShardCountMismatch"
# The exporters: name (the pod's name in packaging/kubernetes, used as instance), shard, replica.
EXPORTERS = [("bedrock-cost-exporter-0", 0, "a"), ("bedrock-cost-exporter-1", 1, "a"),
             ("bedrock-cost-exporter-2", 2, "a"), ("bedrock-cost-exporter-b-0", 0, "b")]
REPLICA_B = "bedrock-cost-exporter-b-0"
KILLED_SHARD = ("bedrock-cost-exporter-1", 1)
# The Cost Explorer sources: a replica that starts from the shared state asks for none of them.
CE_SOURCES = ("cost_explorer", "forecast", "allocation_tags")
# The sources each shard runs: in an organization only shard 0 runs allocation_tags, and no
# shard runs forecast or cloudwatch (the exporter turns them off in an organization).
SOURCES = {0: ("accounts", "projects", "cost_explorer", "allocation_tags"),
           1: ("accounts", "projects", "cost_explorer"),
           2: ("accounts", "projects", "cost_explorer")}
# The families of those two sources: no exporter of an organization exports them, so the
# dashboard targets reading them are only checked to run (and the families to be absent).
OFF_IN_ORGANIZATION = ("bedrock_cost_month_forecast_usd", "bedrock_cost_month_forecast_lower_usd",
                       "bedrock_cost_month_forecast_upper_usd", "bedrock_usage_project_tokens_today",
                       "bedrock_cost_project_today_estimated_usd",
                       "bedrock_cost_project_estimated_usd_per_hour",
                       "bedrock_cost_rate_usd_per_million_tokens",
                       "bedrock_cost_project_estimate_error_ratio")
OFF_RE = re.compile(r"\b(?:%s|bedrock_cost_exporter_cloudwatch_\w+)\b" % "|".join(OFF_IN_ORGANIZATION))
# The recommended way to count every account once: the replicas of a shard differ only by
# instance and replica (packaging/README.md, "Shared S3 state and HA replicas").
DEDUPE = "max without (instance, replica) (%s)"
# Template variables whose every value is a view of its own; a multi-valued variable whose
# saved selection is "All" takes its allValue, any other the preferred or first value.
BRANCH = {"account", "instance"}
PREFERRED = {"project": "CustomerChatbot-Prod"}
CENT_HALF = Decimal("0.005")


def shard_of(account_id, total=TOTAL_SHARDS):
    """INTERFACE.md: FNV-1a-32 of the 12-digit id string, mod the number of shards."""
    h = 2166136261
    for b in account_id.encode():
        h = ((h ^ b) * 16777619) & 0xffffffff
    return h % total


def is_bedrock(row):
    return "bedrock" in row["service"].lower()


_LINE = re.compile(r'^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    out = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and not line.startswith("#"):
            try:
                out.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
            except ValueError:
                pass
    return out


def linked_accounts(node):
    """The LINKED_ACCOUNT values anywhere in a Cost Explorer Filter expression."""
    found = []
    if isinstance(node, dict):
        d = node.get("Dimensions")
        if isinstance(d, dict) and d.get("Key") == "LINKED_ACCOUNT":
            found.extend(d.get("Values") or [])
        for k, v in node.items():
            if k != "Dimensions":
                found.extend(linked_accounts(v))
    elif isinstance(node, list):
        for v in node:
            found.extend(linked_accounts(v))
    return found


def rfc3339(s):
    """Prometheus' RFC 3339 time (nanoseconds, Z) as epoch seconds."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", s)
    if not m:
        return 0.0
    t = datetime.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return t.timestamp() + float(m.group(2) or 0)


class Stack:
    """The fake, the exporters, the agents, the central Prometheus and the temporary directory."""

    def __init__(self, binary, prometheus, keep):
        self.binary = binary
        self.prometheus = prometheus
        self.keep = keep
        self.tmp = tempfile.mkdtemp(prefix="bce-e2e-scale-")
        self.procs = {}
        self.order = []
        self.logs = {}
        self.targets = {}   # exporter name -> 127.0.0.1:port
        self.ports = set()

    def port(self):
        """A free 127.0.0.1 port not handed out before (free_port() alone may repeat one)."""
        while True:
            p = free_port()
            if p not in self.ports:
                self.ports.add(p)
                return p

    def spawn(self, name, argv, env=None):
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        self.logs[name] = log.name
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                             stdin=subprocess.DEVNULL, cwd=self.tmp)
        log.close()
        self.procs[name] = p
        self.order.append(name)
        return p

    def alive(self, name):
        p = self.procs.get(name)
        return p is not None and p.poll() is None

    def kill(self, name):
        p = self.procs[name]
        p.send_signal(signal.SIGKILL)
        p.wait()

    def tail(self, name, lines=15):
        try:
            with open(self.logs[name], "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except (OSError, KeyError):
            return ""

    def stop(self):
        """In reverse order of start, each before the next: the exporters, then the agents
        (which flush their remote write to a central Prometheus still running), the central
        one, the fake."""
        for name in reversed(self.order):
            p = self.procs[name]
            if p.poll() is None:
                p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.keep:
            print("kept " + self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    # ----------------------------------------------------------------- the fake
    def start_fake(self):
        port_file = self.path("fake.port")
        self.spawn("fake_aws", ["/usr/bin/python3", FAKE, "--port", "0", "--port-file", port_file,
                                "--quiet", "--org-accounts", str(MEMBERS),
                                "--org-regions", ",".join(REGIONS),
                                "--org-projects", str(ORG_PROJECTS),
                                "--org-role-name", ROLE_NAME, "--org-external-id", EXTERNAL_ID])
        wait_for(lambda: os.path.exists(port_file) or not self.alive("fake_aws"), 30,
                 "the fake AWS account")
        if not self.alive("fake_aws"):
            raise RuntimeError("fake_aws exited:\n" + self.tail("fake_aws"))
        self.fake = "http://127.0.0.1:%d" % int(open(port_file).read().strip())

    def fake_get(self, path):
        status, body = http(self.fake + path)
        if status != 200:
            raise RuntimeError("GET %s: HTTP %s %r" % (path, status, body[:200]))
        return json.loads(body)

    def stored(self, shard):
        """The shard's state object as the fake holds it (parsed), or None."""
        q = urllib.parse.urlencode({"bucket": BUCKET, "key": KEY.format(
            shard=shard, total_shards=TOTAL_SHARDS)})
        status, body = http(self.fake + "/_fake/s3/object?" + q)
        if status != 200:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return None

    # ----------------------------------------------------------------- Prometheus
    def prom_argv(self, name, conf, port, extra):
        return [self.prometheus, "--config.file=" + conf, "--web.listen-address=127.0.0.1:%d" % port,
                "--web.console.templates=" + self.path("consoles"),
                "--web.console.libraries=" + self.path("console_libraries"),
                "--log.level=warn"] + extra

    def wait_prom(self, name, base):
        wait_for(lambda: not self.alive(name) or http(base + "/-/ready", timeout=2)[0] == 200,
                 30, name + " to become ready")
        if not self.alive(name):
            raise RuntimeError(name + " exited:\n" + self.tail(name))

    def start_central(self):
        # The shipped alerts, but BedrockCostExporterShardMissing's `for: 5m` shortened: the
        # test waits for it to fire. The copy keeps the file name (check_rules compares it).
        alerts_src = [f for f in RULE_FILES if f.endswith("bedrock-cost.alerts.yml")][0]
        text = open(alerts_src, encoding="utf-8").read()
        start = text.find("- alert: %s\n" % SHARD_ALERT)
        end = text.find("- alert:", start + 1)
        block = text[start:end if end > 0 else len(text)]
        if start < 0 or block.count("\n        for: 5m\n") != 1:
            raise RuntimeError("%s has no single `for: 5m` in %s: update e2e_scale.py"
                               % (SHARD_ALERT, alerts_src))
        copy = (text[:start] + block.replace("for: 5m", "for: " + SHARD_ALERT_FOR)
                + text[start + len(block):])
        try:   # the copy differs from the shipped file in that `for` alone
            import yaml
            a, b = yaml.safe_load(text), yaml.safe_load(copy)
            changed = [(ra.get("alert"), ra.get("for"), rb.get("for"))
                       for ga, gb in zip(a["groups"], b["groups"])
                       for ra, rb in zip(ga["rules"], gb["rules"]) if ra != rb]
            if changed != [(SHARD_ALERT, "5m", SHARD_ALERT_FOR)]:
                raise RuntimeError("the test copy of the alerts changes %r" % changed)
        except ImportError:
            pass
        os.makedirs(self.path("rules"))
        alerts = self.path("rules", os.path.basename(alerts_src))
        with open(alerts, "w", encoding="utf-8") as f:
            f.write(copy)
        rules = [f if f != alerts_src else alerts for f in RULE_FILES]
        conf = self.path("central.yml")
        with open(conf, "w") as f:
            f.write("# written by tests/dashboards/e2e_scale.py: the central Prometheus, fed only\n"
                    "# by the agents' remote write; no scrape, no Alertmanager.\n"
                    "global:\n  evaluation_interval: 1s\n"
                    "rule_files:\n" + "".join("  - %s\n" % json.dumps(r) for r in rules))
        port = self.port()
        self.spawn("central", self.prom_argv("central", conf, port, [
            "--storage.tsdb.path=" + self.path("central-tsdb"), "--web.enable-remote-write-receiver"]))
        self.central = Prom("http://127.0.0.1:%d" % port)
        self.wait_prom("central", self.central.base)

    def start_agent(self, shard):
        name = "agent-%d" % shard
        conf = self.path(name + ".yml")
        static = ""
        for exp, s, replica in EXPORTERS:
            if s == shard:
                static += ("      - targets: [%s]\n        labels: {shard: \"%d\", replica: \"%s\", "
                           "instance: \"%s\"}\n" % (json.dumps(self.targets[exp]), s, replica, exp))
        with open(conf, "w") as f:
            f.write("# written by tests/dashboards/e2e_scale.py: shard %d's agent\n"
                    "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "  external_labels: {cluster: %s}\n"
                    "scrape_configs:\n  - job_name: %s\n    static_configs:\n%s"
                    "remote_write:\n  - url: %s/api/v1/write\n"
                    "    queue_config: {batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}\n"
                    % (shard, CLUSTER, JOB, static, self.central.base))
        port = self.port()
        self.spawn(name, self.prom_argv(name, conf, port, [
            "--enable-feature=agent", "--storage.agent.path=" + self.path(name + "-wal")]))
        return name, "http://127.0.0.1:%d" % port

    # ----------------------------------------------------------------- exporters
    def write_exporter_conf(self):
        f = self.fake
        self.conf = self.path("exporter.conf")
        with open(self.conf, "w") as out:
            out.write(f"""# written by tests/dashboards/e2e_scale.py: one configuration for every shard
# and replica (packaging/kubernetes/configmap.yaml), pointed at the fake
projects: {{
  regions = {json.dumps(REGIONS)};
  endpoint = "{f}/mantle/{{region}}/v1";
  auth = "sigv4";
}};
aws: {{
  sts_endpoint = "{f}/sts";
  imds_enabled = false;
}};
cost_explorer: {{
  endpoint = "{f}/ce";
  refresh_interval = 3600;
  max_requests_per_day = 10000;
}};
cloudwatch: {{
  endpoint = "{f}/monitoring/{{region}}";   # off in an organization; at the fake all the same
}};
organization: {{
  discover = true;
  endpoint = "{f}/organizations";
  role_name = "{ROLE_NAME}";
  external_id = "{EXTERNAL_ID}";
}};
budgets = (
  {{ project = "CustomerChatbot-Prod"; monthly_usd = 500.0; }},
  {{ tag = "Team"; value = "DataScience"; monthly_usd = 2000.0; }}
);
state_file = "s3://{BUCKET}/{KEY}";
state_s3: {{
  endpoint = "{f}/s3";
  region = "us-east-1";
}};
""")
        for name, _, _ in EXPORTERS:
            self.targets[name] = "127.0.0.1:%d" % self.port()

    def start_exporter(self, name):
        shard = [s for n, s, _ in EXPORTERS if n == name][0]
        env = dict(os.environ, HOME=self.tmp, AWS_ACCESS_KEY_ID="AKIDFAKEEXAMPLE",
                   AWS_SECRET_ACCESS_KEY="fake/secret/EXAMPLEKEY", AWS_EC2_METADATA_DISABLED="true")
        for k in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                  "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                  "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                  "BEDROCK_API_KEY"):
            env.pop(k, None)
        self.spawn(name, [self.binary, "--config.file=" + self.conf,
                          "--web.listen-address=" + self.targets[name],
                          "--shard=%d" % shard, "--total-shards=%d" % TOTAL_SHARDS], env=env)

    def scrape(self, name):
        status, body = http("http://%s/metrics" % self.targets[name], timeout=5)
        return parse_metrics(body.decode(errors="replace")) if status == 200 else []

    def fill_state(self, name, shard):
        """(done, detail): ready, its sources up, and its Cost Explorer data written to S3
        (the object's written_at not older than the last Cost Explorer success)."""
        if not self.alive(name):
            raise RuntimeError("%s exited:\n%s" % (name, self.tail(name)))
        if http("http://%s/-/ready" % self.targets[name], timeout=2)[0] != 200:
            return False, "not ready"
        m = self.scrape(name)
        up = {l.get("source"): v for n, l, v in m if n == "bedrock_cost_exporter_source_up"}
        if any(up.get(s) != 1.0 for s in SOURCES[shard]):
            return False, "source_up %s" % json.dumps(up, sort_keys=True)
        last = [v for n, l, v in m if n == "bedrock_cost_exporter_last_success_timestamp_seconds"
                and l.get("source") in CE_SOURCES and v > 0]
        doc = self.stored(shard)
        if not doc or not last or doc.get("written_at", 0) + 1 <= max(last):
            return False, "state object %s, last Cost Explorer success %s" % (
                "written at %s" % doc.get("written_at") if doc else "absent", max(last or [0]))
        return True, ""


def wait_filled(stack, names, timeout):
    state = {}

    def all_done():
        for n in names:
            shard = [s for e, s, _ in EXPORTERS if e == n][0]
            state[n] = stack.fill_state(n, shard)
        return all(v[0] for v in state.values())
    try:
        wait_for(all_done, timeout, "the first fill of " + ", ".join(names), interval=0.25)
    except RuntimeError as e:
        raise RuntimeError("%s: %s" % (e, json.dumps({n: v[1] for n, v in state.items() if not v[0]})))


def ce_snapshot(stack):
    c = stack.fake_get("/_fake/requests?surface=ce")["ce"]
    return c["total"], dict(c.get("by_operation", {}))


def ce_log(stack):
    return [e for e in stack.fake_get("/_fake/requests/log?surface=ce")["requests"]]


def describe_ce(entries):
    out = []
    for e in entries[:10]:
        r = e.get("request") or {}
        out.append("%s %s %s accounts=%s" % (e.get("operation"), r.get("Granularity", ""),
                                            json.dumps(r.get("TimePeriod", "")),
                                            sorted(set(linked_accounts(r.get("Filter"))))))
    return "; ".join(out) + (" (+%d more)" % (len(entries) - 10) if len(entries) > 10 else "")


# --------------------------------------------------------------------------- checks
def check_cost_explorer_requests(c, stack, accounts, before, log_before):
    """Replica b started from the shared state: the fake counted no request since."""
    after = ce_snapshot(stack)
    new = [e for e in ce_log(stack) if e["seq"] > log_before]
    c.check(before[0] > 0, "the first fill of the shards asked Cost Explorer (%d requests: %s)"
            % (before[0], json.dumps(before[1], sort_keys=True)))
    c.check(after == before, "replica b of shard 0 made no Cost Explorer request: the two "
            "replicas together paid what replica a paid alone (%d requests in all)" % before[0],
            "before %s, after %s: %s" % (json.dumps(before), json.dumps(after), describe_ce(new)))
    # The Bedrock service names: discovered once for every shard (by shard 0; the other
    # shards read them from shard 0's object, as state_file names {shard})
    c.check(before[1].get("GetDimensionValues", 0) == 1, "the 3 shards discovered the Bedrock "
            "service names once (GetDimensionValues, shard 0's)", json.dumps(before[1]))
    # What the shards asked for: every GetCostAndUsage names the accounts of one shard.
    gcu = [e for e in ce_log(stack) if e.get("operation") == "GetCostAndUsage"]
    asked = {}
    mixed = []
    unfiltered = 0
    for e in gcu:
        accts = set(linked_accounts((e.get("request") or {}).get("Filter")))
        if not accts:
            unfiltered += 1
            continue
        shards = set(shard_of(a) for a in accts)
        if len(shards) > 1:
            mixed.append(sorted(accts))
        for a in accts:
            asked[a] = asked.get(a, 0) + 1
    c.check(gcu and unfiltered == 0, "every GetCostAndUsage filters on LINKED_ACCOUNT (%d requests)"
            % len(gcu), "%d without a LINKED_ACCOUNT filter" % unfiltered)
    c.check(not mixed, "every GetCostAndUsage asks for the accounts of one shard only",
            json.dumps(mixed[:5]))
    c.check(set(asked) == set(accounts), "Cost Explorer was asked about every account of the "
            "organization, and no other", "asked %s, accounts %s" % (sorted(asked), sorted(accounts)))


def wait_central_complete(stack):
    """Every exporter's last scrape is in the central Prometheus: per instance, as many
    bedrock_* series as the agent's scrape_samples_scraped says the exporter exposed
    (remote write delivers a scrape in several batches)."""
    prom = stack.central
    state = {}

    def complete():
        scraped = {s["metric"]["instance"]: float(s["value"][1]) for s in prom.vector(
            'scrape_samples_scraped{job="%s"}' % JOB)}
        have = {s["metric"]["instance"]: float(s["value"][1]) for s in prom.vector(
            'count by (instance) ({job="%s",__name__!~"up|scrape_.*|ALERTS.*|.*:.*"})' % JOB)}
        state["scraped"], state["have"] = scraped, have
        return (set(scraped) == set(n for n, _, _ in EXPORTERS)
                and all(have.get(i) == v for i, v in scraped.items()))
    try:
        wait_for(complete, 60, "every exporter's series in the central Prometheus", interval=0.5)
        return True, ""
    except RuntimeError as e:
        return False, "%s: %s" % (e, json.dumps(state, sort_keys=True))


def check_exactly_once(c, stack, accounts, names):
    prom = stack.central
    ok, detail = wait_central_complete(stack)
    c.check(ok, "the central Prometheus holds the series of all 4 exporters (3 shards, 2 "
            "replicas of shard 0) through the agents", detail)

    # the exporters' own ordinals match the agents' shard labels
    ords = {s["metric"]["instance"]: (s["metric"].get("shard"), s["value"][1]) for s in prom.vector(
        'bedrock_cost_exporter_shard_ordinal{job="%s"}' % JOB)}
    c.check(ords == {n: (str(s), str(s)) for n, s, _ in EXPORTERS},
            "bedrock_cost_exporter_shard_ordinal of every instance is its --shard (and the agent's "
            "shard label)", json.dumps(ords, sort_keys=True))
    tot = set(s["value"][1] for s in prom.vector('bedrock_cost_exporter_total_shards{job="%s"}' % JOB))
    c.check(tot == {str(TOTAL_SHARDS)}, "bedrock_cost_exporter_total_shards is %d on every instance"
            % TOTAL_SHARDS, str(tot))

    mtd = 'bedrock_cost_project_month_to_date_usd{job="%s"}' % JOB
    # every account's series come from one shard: the one its id hashes to
    where = {}
    for s in prom.vector("count by (account_id, shard) (%s)" % mtd):
        where.setdefault(s["metric"].get("account_id"), []).append(s["metric"].get("shard"))
    c.check(sorted(where) == sorted(accounts), "the central Prometheus has month-to-date spend of "
            "every account of the organization (%d)" % len(accounts),
            "got %s, want %s" % (sorted(where), sorted(accounts)))
    wrong = {a: v for a, v in where.items() if v != [str(shard_of(a))]}
    c.check(not wrong, "every account's spend comes from exactly one shard, the one its id "
            "hashes to (FNV-1a mod %d)" % TOTAL_SHARDS, json.dumps(wrong, sort_keys=True))

    # the two replicas of shard 0 export the same series with the same values
    per = {}
    for s in prom.vector(mtd):
        m = s["metric"]
        per.setdefault((m.get("account_id"), m.get("project_id")), []).append(
            (m.get("instance"), float(s["value"][1])))
    bad = {}
    for (a, p), rows in per.items():
        want = sorted(n for n, s, _ in EXPORTERS if s == shard_of(a))
        if sorted(i for i, _ in rows) != want or len(set(v for _, v in rows)) != 1:
            bad["%s/%s" % (a, p)] = rows
    c.check(per and not bad, "each (account_id, project_id) is exported once per replica of its "
            "shard, the replicas of shard 0 with equal values", json.dumps(dict(list(bad.items())[:5])))

    # deduplicated, as packaging/README.md recommends: once each
    dup = [s for s in prom.vector("count by (account_id, project_id) (%s) > 1" % (DEDUPE % mtd))]
    n = len(prom.vector(DEDUPE % mtd))
    c.check(n > 0 and not dup, "after `%s` every (account_id, project_id) has one month-to-date "
            "series (%d)" % (DEDUPE % "...", n), json.dumps([s["metric"] for s in dup[:5]]))

    # projects: the fake's listing of every account and region, once each
    want = set()
    for a in accounts:
        for r in REGIONS:
            data = stack.fake_get("/_fake/projects/%s?account=%s" % (r, a))
            for p in (data.get("data", []) if isinstance(data, dict) else data):
                want.add((a, r, p["id"]))
    info = 'bedrock_cost_project_info{job="%s"}' % JOB
    got = [(s["metric"].get("account_id"), s["metric"].get("region"), s["metric"].get("project_id"))
           for s in prom.vector(DEDUPE % info)]
    c.check(len(got) == len(set(got)) and set(got) == want,
            "bedrock_cost_project_info, deduplicated, lists every project of every account and "
            "region once (%d projects in the fake)" % len(want),
            "missing %s, unexpected %s, repeated %s" % (
                sorted(want - set(got))[:5], sorted(set(got) - want)[:5],
                sorted(set(x for x in got if got.count(x) > 1))[:5]))
    names_got = {s["metric"].get("account_id"): s["metric"].get("account_name") for s in prom.vector(
        DEDUPE % ('bedrock_cost_account_info{job="%s"}' % JOB))}
    c.check(names_got == names, "bedrock_cost_account_info names every account once, as "
            "ListAccounts does", "got %s" % json.dumps(names_got, sort_keys=True))


def check_ledger(c, stack, accounts):
    prom = stack.central
    led = stack.fake_get("/_fake/ledger")
    today = datetime.date.fromisoformat(led["today"])
    ms = today.replace(day=1)
    rows = [r for r in led["rows"] if is_bedrock(r)
            and ms <= datetime.date.fromisoformat(r["date"]) <= today]
    want = {a: sum((Decimal(r["cost"]) for r in rows if r["linked_account"] == a), Decimal(0))
            for a in accounts}
    mtd = DEDUPE % ('bedrock_cost_project_month_to_date_usd{job="%s"}' % JOB)
    got = {s["metric"].get("account_id"): float(s["value"][1])
           for s in prom.vector("sum by (account_id) (%s)" % mtd)}
    for a in sorted(accounts):
        g = got.get(a)
        c.check(g is not None and abs(Decimal(repr(g)) - want[a]) <= CENT_HALF,
                "account %s (shard %d): month-to-date spend over its projects = the fake's ledger "
                "(Bedrock services, %s..%s: %s USD)" % (a, shard_of(a), ms, today, want[a]),
                "central Prometheus %r" % g)
    total = prom.vector("sum(%s)" % mtd)
    want_total = sum(want.values(), Decimal(0))
    c.check(bool(total) and abs(Decimal(total[0]["value"][1]) - want_total) <= CENT_HALF * len(accounts),
            "the organization's month-to-date Bedrock spend, summed once over the shards = the "
            "ledger (%s USD)" % want_total, json.dumps(total))

    # each member project: the ledger rows of its account with its Application/Environment
    per = {(s["metric"].get("account_id"), s["metric"].get("project_id")): float(s["value"][1])
           for s in prom.vector(mtd)}
    bad = []
    n = 0
    for a in accounts:
        if a == stack.management:
            continue   # the management account's seed has ambiguous tags: its total is above
        for r in REGIONS:
            data = stack.fake_get("/_fake/projects/%s?account=%s" % (r, a))
            for p in (data.get("data", []) if isinstance(data, dict) else data):
                t = p.get("tags") or {}
                if not (t.get("Application") and t.get("Environment")):
                    continue
                w = sum((Decimal(x["cost"]) for x in rows if x["linked_account"] == a
                         and x["tags"].get("Application") == t["Application"]
                         and x["tags"].get("Environment") == t["Environment"]), Decimal(0))
                g = per.get((a, p["id"]))
                n += 1
                if g is None or abs(Decimal(repr(g)) - w) > CENT_HALF:
                    bad.append("%s/%s %s: got %r, ledger %s" % (a, p["id"], p["name"], g, w))
    c.check(n >= MEMBERS * len(REGIONS) * ORG_PROJECTS and not bad,
            "every member project's month-to-date spend = its account's ledger rows with its "
            "Application and Environment (%d projects)" % n, "; ".join(bad[:6]))
    return today


def dashboard_views(c, prom, name, dash):
    """Every selection of the dashboard's variables to try (see BRANCH)."""
    views = [dict(BUILTINS)]
    for var in dash.get("templating", {}).get("list", []):
        vname = var.get("name")
        new, errors = [], []
        for vals in views:
            if var.get("type") == "datasource":
                new.append(dict(vals, **{vname: "prometheus"}))
                continue
            cur = (var.get("current") or {}).get("value")
            if var.get("includeAll") and var.get("multi") and cur in ("$__all", ["$__all"]):
                new.append(dict(vals, **{vname: var.get("allValue") or ".*"}))
                continue
            if var.get("type") == "custom":
                opts = [o.strip() for o in var.get("query", "").split(",") if o.strip()]
            else:
                q = substitute(variable_query(var), vals)
                if variables_used(q):
                    errors.append("unresolved %s in %s" % (sorted(variables_used(q)), q))
                    continue
                opts, err = label_values(prom, q)
                if err:
                    errors.append("%s (%s)" % (err, q))
                    continue
            if var.get("regex"):
                opts = [o for o in opts if re.search(var["regex"], o)]
            if not opts:
                errors.append("no values with %s" % json.dumps({k: v for k, v in vals.items()
                                                                if k not in BUILTINS}))
                continue
            if vname in BRANCH:
                new.extend(dict(vals, **{vname: o}) for o in opts)
            else:
                pick = PREFERRED.get(vname)
                new.append(dict(vals, **{vname: pick if pick in opts else opts[0]}))
        c.check(not errors, "%s: variable $%s runs and has values in every selection (%d)"
                % (name, vname, len(views)), "; ".join(errors[:3]))
        views = new
    return views


def check_dashboards(c, prom):
    c.check(len(DASHBOARDS) == 3, "three dashboards in dashboards/", str(DASHBOARDS))
    present = [f for f in OFF_IN_ORGANIZATION if prom.vector(f)]
    c.check(not present, "the forecast and cloudwatch families are absent in an organization",
            str(present))
    for path in DASHBOARDS:
        name = os.path.basename(path)
        dash = json.load(open(path, encoding="utf-8"))
        views = dashboard_views(c, prom, name, dash)
        if not c.check(bool(views), "%s: selections of its variables to try" % name):
            continue
        first_view_empty, exempt = [], []
        for panel in all_panels(dash):
            for t in panel.get("targets", []) or []:
                expr = t.get("expr", "")
                label = '%s: panel %d "%s" target %s' % (name, panel.get("id"), panel.get("title"),
                                                         t.get("refId"))
                off = OFF_RE.search(expr)
                errors, with_data = [], []
                for i, vals in enumerate(views):
                    e = substitute(expr, vals)
                    if variables_used(e):
                        errors.append("unresolved %s" % sorted(variables_used(e)))
                        continue
                    d = prom.query(e)
                    if d.get("status") != "success":
                        errors.append("%s\n      expr: %s" % (d.get("error"), e))
                        continue
                    res = d["data"]["result"]
                    if res or d["data"]["resultType"] not in ("vector", "matrix"):
                        with_data.append(e)
                    elif i == 0:
                        first_view_empty.append(label)
                c.check(not errors, label + " [query runs in every selection: %d]" % len(views),
                        "; ".join(errors[:2]))
                if off:
                    exempt.append(label)
                    continue
                c.check(bool(with_data), label + " [has data in at least one selection]",
                        "no data in any of %d selections, e.g.\n      %s"
                        % (len(views), substitute(expr, views[0]).replace("\n", "\n      ")))
                if with_data and (t.get("range") or panel.get("type") == "timeseries"):
                    now = time.time()
                    d = prom.api("/api/v1/query_range", query=with_data[0], start="%.3f" % (now - 60),
                                 end="%.3f" % now, step="5")
                    c.check(d.get("status") == "success" and d["data"]["result"],
                            label + " [query_range]", "%s\n      expr: %s"
                            % (d.get("error", "empty"), with_data[0]))
        if exempt:
            print("note %s: %d targets read families of forecast or cloudwatch (off in an "
                  "organization), not required to have data: %s" % (name, len(exempt), "; ".join(exempt)))
        if first_view_empty:
            print("note %s: %d targets are empty in the first selection (%s): %s"
                  % (name, len(first_view_empty), json.dumps({k: v for k, v in views[0].items()
                                                              if k not in BUILTINS}),
                     "; ".join(first_view_empty[:8])))


def rules_evaluated_after(prom, t):
    """The alert group's last evaluation is later than @t (epoch seconds)."""
    d = prom.api("/api/v1/rules")
    for g in d.get("data", {}).get("groups", []):
        if any(r["name"] == SHARD_ALERT for r in g["rules"]):
            return rfc3339(g.get("lastEvaluation", "")) > t
    return False


def shard_alerts(prom, name=SHARD_ALERT):
    d = prom.api("/api/v1/alerts")
    return [a for a in d.get("data", {}).get("alerts", []) if a["labels"].get("alertname") == name]


def check_shard_alert(c, stack):
    prom = stack.central
    ords = ('count by (job) (count_values by (job) ("ordinal", '
            'bedrock_cost_exporter_shard_ordinal{job="%s"}))' % JOB)
    got = prom.vector(ords)
    c.check([s["value"][1] for s in got] == [str(TOTAL_SHARDS)],
            "%d distinct shard ordinals report before any exporter is killed" % TOTAL_SHARDS,
            json.dumps(got))
    c.check(not shard_alerts(prom), "%s is inactive while every shard reports" % SHARD_ALERT,
            json.dumps(shard_alerts(prom)))

    # one replica of shard 0 dies: the other still reports ordinal 0, no alert
    stack.kill(REPLICA_B)
    try:
        wait_for(lambda: not prom.vector('bedrock_cost_exporter_shard_ordinal{instance="%s"}' % REPLICA_B)
                 and any(s["value"][1] == "0" for s in prom.vector('up{instance="%s"}' % REPLICA_B)),
                 30, "replica b's series to go stale in the central Prometheus", interval=0.25)
        c.check(True, "killing replica b of shard 0: up is 0 and its series are stale in the "
                "central Prometheus")
    except RuntimeError as e:
        c.check(False, "killing replica b of shard 0: up is 0 and its series are stale in the "
                "central Prometheus", str(e))
    seen = time.time()
    hold = float(SHARD_ALERT_FOR.rstrip("s")) + 1.5
    try:
        # pending would show at the first evaluation, firing SHARD_ALERT_FOR later
        wait_for(lambda: rules_evaluated_after(prom, seen + hold), 30,
                 "the alerts to be evaluated %.1f s after replica b's series went stale" % hold,
                 interval=0.25)
        active = shard_alerts(prom) + shard_alerts(prom, COUNT_ALERT)
        c.check(not active, "%s and %s stay inactive with one replica of shard 0 dead"
                % (SHARD_ALERT, COUNT_ALERT), json.dumps(active))
    except RuntimeError as e:
        c.check(False, "%s stays inactive with one replica of shard 0 dead" % SHARD_ALERT, str(e))

    # a whole shard dies: the alert fires
    name, shard = KILLED_SHARD
    t_kill = time.time()
    stack.kill(name)
    try:
        got = wait_for(lambda: [a for a in shard_alerts(prom) if a["state"] == "firing"], 60,
                       SHARD_ALERT + " firing", interval=0.25)
    except RuntimeError as e:
        c.check(False, "killing shard %d fires %s (`for` shortened to %s)"
                % (shard, SHARD_ALERT, SHARD_ALERT_FOR),
                "%s; alerts %s" % (e, json.dumps(shard_alerts(prom))))
        return
    a = got[0]
    c.check(True, "killing shard %d fires %s after %.1f s (`for` shortened to %s)"
            % (shard, SHARD_ALERT, time.time() - t_kill, SHARD_ALERT_FOR))
    c.check(a["labels"].get("job") == JOB and a["labels"].get("severity") == "critical",
            "%s carries job=%s and severity critical" % (SHARD_ALERT, JOB), json.dumps(a["labels"]))
    c.check(float(a["value"]) == TOTAL_SHARDS - 1, "%s's value is the %d shards still reporting"
            % (SHARD_ALERT, TOTAL_SHARDS - 1), a["value"])
    desc = a["annotations"].get("description", "")
    c.check("Only %d of the %d" % (TOTAL_SHARDS - 1, TOTAL_SHARDS) in desc and JOB in desc,
            "%s's description says %d of %d shards of job %s report"
            % (SHARD_ALERT, TOTAL_SHARDS - 1, TOTAL_SHARDS, JOB), desc)
    c.check(not shard_alerts(prom, COUNT_ALERT), "%s stays inactive (every shard said %d)"
            % (COUNT_ALERT, TOTAL_SHARDS), json.dumps(shard_alerts(prom, COUNT_ALERT)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--binary", default=os.path.join(root, "bedrock-cost-exporter"))
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, configs)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print passing checks too")
    args = ap.parse_args()

    c = Checks(args.verbose)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    stack = Stack(os.path.abspath(args.binary), os.path.abspath(args.prometheus), args.keep)
    day0 = datetime.datetime.now(datetime.timezone.utc).date()
    try:
        stack.start_fake()
        org = stack.fake_get("/_fake/organization")
        stack.management = org["management_account"]["Id"]
        names = {stack.management: org["management_account"]["Name"]}
        names.update({a["Id"]: a["Name"] for a in org["accounts"] if a["Status"] == "ACTIVE"})
        accounts = sorted(names)
        c.check(len(accounts) == MEMBERS + 1
                and set(shard_of(a) for a in accounts) == set(range(TOTAL_SHARDS)),
                "the fake's organization: the management account and %d members, in all %d shards"
                % (MEMBERS, TOTAL_SHARDS), json.dumps({a: shard_of(a) for a in accounts}))

        stack.write_exporter_conf()
        stack.start_central()
        for name, base in [stack.start_agent(shard) for shard in range(TOTAL_SHARDS)]:
            stack.wait_prom(name, base)
        first = [n for n, _, _ in EXPORTERS if n != REPLICA_B]
        for n in first:
            stack.start_exporter(n)
        wait_filled(stack, first, 120)
        c.check(True, "shards 0 (replica a), 1 and 2 filled and wrote their state to S3 (%.1f s)"
                % (time.monotonic() - started))
        before = ce_snapshot(stack)
        log_before = max([e["seq"] for e in ce_log(stack)] or [0])
        s3_before = stack.fake_get("/_fake/requests?surface=s3")["s3"]["by_operation"].get("GetObject", 0)

        stack.start_exporter(REPLICA_B)
        wait_filled(stack, [REPLICA_B], 60)
        wait_for(lambda: any(s["value"][1] == "1" for s in stack.central.vector(
            'up{instance="%s"}' % REPLICA_B)), 30, "agent 0 to scrape replica b", interval=0.25)
        c.check(stack.fake_get("/_fake/requests?surface=s3")["s3"]["by_operation"].get("GetObject", 0)
                > s3_before, "replica b read the shared state (S3 GetObject)")
        check_cost_explorer_requests(c, stack, accounts, before, log_before)

        check_exactly_once(c, stack, accounts, names)
        today = check_ledger(c, stack, accounts)
        c.check(today == day0, "the fake's today is the UTC date the run started on "
                "(a run across 00:00 UTC moves every window: run it again)", "%s vs %s" % (today, day0))

        records, _ = check_rules(c, stack.central)
        check_recording_rules_have_data(c, stack.central, records)
        # rate() and increase() need two samples or more in their window
        wait_for(lambda: all(float(s["value"][1]) >= 5 for s in stack.central.vector(
            'count_over_time(up{job="%s"}[1m])' % JOB)), 30, "five scrapes", interval=0.25)
        check_dashboards(c, stack.central)

        final = ce_snapshot(stack)
        c.check(final == before, "no Cost Explorer request after the first fill of the shards, "
                "for the whole run (%.0f s; cost_explorer.refresh_interval is 1 h)"
                % (time.monotonic() - started), "before %s, at the end %s: %s" % (
                    json.dumps(before), json.dumps(final),
                    describe_ce([e for e in ce_log(stack) if e["seq"] > log_before])))

        check_shard_alert(c, stack)
        for name in ["fake_aws", "central", "agent-0", "agent-1", "agent-2"] + \
                [n for n, _, _ in EXPORTERS if n not in (REPLICA_B, KILLED_SHARD[0])]:
            c.check(stack.alive(name), name + " still running at the end", stack.tail(name))
    except Exception as e:  # report, clean up, and still print the summary line
        c.check(False, "test run", "%s: %s" % (type(e).__name__, e))
        for name in stack.order:
            print("--- %s log (tail)\n%s" % (name, stack.tail(name)))
    finally:
        stack.stop()
    print("e2e_scale: %.1f s" % (time.monotonic() - started))
    print("%d passed, %d failed" % (c.passed, c.failed))
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
