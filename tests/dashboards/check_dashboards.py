#!/usr/bin/env python3
"""Static checks of the Grafana dashboards in dashboards/*.json (Python standard library).

For every dashboard: valid JSON; no "__inputs" (so it can be provisioned and imported
as is); "id" null; schemaVersion 36..39; a stable uid (letters, digits, "-", "_", at
most 40) and a title, neither shared with another dashboard; a "datasource" variable of
type "datasource" for Prometheus, right after it an "account" variable
(label_values(...account_id) from bedrock_cost_account_info or bedrock_cost_project_info;
multi-valued with "All" except on the project dashboard, which shows one project of one
account), and "job"/"instance" query variables; every panel and every target using the
data source ${datasource}; unique integer panel ids; a description on every panel; a
gridPos; every target with a unique refId and an expr whose variables are all defined,
filtering on $job and $instance (only the shard families, which compare the instances of
a job, filter on $job alone); every selector of a family that carries account_id (the
project, cost, tag, model, window, budget, forecast, allocation-tag and cloudwatch
families, the account families, and the recording rules built on them) filtering on
account_id=~"$account", in panel targets and variable queries alike; every legend naming a
project (project_name or project_id) or a tag budget naming the account too, no table
hiding the account_id column, and every link to the project dashboard passing the
account; money panels (ones that plot *_usd, *_usd_total or
*_usd_per_<unit> series and are not ratios) in unit currencyUSD; ratio units only on
expressions that are ratios (a division, a :ratio recording rule or a *_ratio family);
no two panels overlapping on the grid. Panels built on the CloudWatch estimates
(*_estimated_usd*) say "(estimated)" in their title (or in the estimate's legend) and name
both CloudWatch and Cost Explorer in their description (estimate versus bill); every panel reading a family of the
cloudwatch source mentions CloudWatch.

Dashboard-specific: the overview has a tag_key variable used by its stacked daily spend
panel; the project dashboard picks the project by name from bedrock_cost_project_info
and joins the cost and token series on (account_id, project_id); each dashboard shows the families
listed for it in SHOWS; every recording rule a dashboard uses exists in
dashboards/prometheus/bedrock-cost.rules.yml. The provisioning example is checked to
point at the dashboards and at a Prometheus data source. Every alert's runbook_url
points to its own section of dashboards/RUNBOOK.md, and that section exists.

Prints one line per failure and `N passed, N failed` last; exits 1 on any failure.
"""
import glob
import json
import os
import re
import sys

from grafana import all_panels, variable_query, variables_used

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DASH_DIR = os.path.join(ROOT, "dashboards")
RULES = os.path.join(DASH_DIR, "prometheus", "bedrock-cost.rules.yml")
ALERTS = os.path.join(DASH_DIR, "prometheus", "bedrock-cost.alerts.yml")
RUNBOOK = os.path.join(DASH_DIR, "RUNBOOK.md")
RUNBOOK_URL = ("https://github.com/bedrock-cost-exporter/bedrock-cost-exporter/blob/main/"
               "dashboards/RUNBOOK.md#")
PROVISIONING = os.path.join(DASH_DIR, "provisioning")

EXPECTED = {  # file -> uid: the uids are part of the interface (links, bookmarks)
    "bedrock-cost-overview.json": "bedrock-cost-overview",
    "bedrock-project.json": "bedrock-cost-project",
    "bedrock-exporter-health.json": "bedrock-cost-exporter-health",
}
DS = {"type": "prometheus", "uid": "${datasource}"}
PANEL_TYPES = {"row", "stat", "gauge", "bargauge", "timeseries", "table", "piechart"}
BUILTIN_VARS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s",
                "__range_ms", "__from", "__to"}
RATIO_UNITS = {"percentunit", "percent", "suffix:×"}
USD_SERIES = re.compile(r"\b[a-z_:]*_usd(?:_total|_per_[a-z_]+)?(?::[a-z_]+)?\b")
# Families of the cloudwatch source: estimates (money) and what they are made of.
ESTIMATE_SERIES = re.compile(r"\bbedrock_cost_\w*estimated_usd\w*")
CLOUDWATCH_SERIES = re.compile(r"\b(?:bedrock_cost_\w*estimated_usd\w*|bedrock_usage_project_tokens_today"
                               r"|bedrock_cost_rate_usd_per_million_tokens"
                               r"|bedrock_cost_project_estimate_error_ratio"
                               r"|bedrock_cost_exporter_cloudwatch_\w+)\b")
# The families whose series carry account_id (every project and cost series, the
# cloudwatch ones, the per-account exporter series), also as the middle part of a
# level:metric:operation recording rule. Every selector of one must filter on
# account_id=~"$account".
ACCOUNT_FILTER = 'account_id=~"$account"'
SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)(\s*\{[^}]*\})?")
# Families of the shards: a panel comparing the instances of the job reads them with
# job="$job" alone.
JOB_WIDE_SERIES = {"bedrock_cost_exporter_shard_ordinal", "bedrock_cost_exporter_total_shards"}


def carries_account(name):
    """Whether series of the metric (or recording rule) @name carry account_id."""
    parts = name.split(":")
    m = parts[1] if len(parts) == 3 else name
    return (m.startswith("bedrock_usage_") or m.startswith("bedrock_cost_exporter_account_")
            or (m.startswith("bedrock_cost_") and not m.startswith("bedrock_cost_exporter_")))


def selectors(expr):
    """(metric name, selector braces or "") of every metric an expression reads."""
    out = []
    for m in SELECTOR.finditer(expr):
        name = m.group(1)
        if "bedrock_" in name or name == "up":
            out.append((name, m.group(2) or ""))
    return out


def unfiltered_accounts(expr):
    """The selectors of account families in @expr that do not filter on $account."""
    return ["%s%s" % (n, b) for n, b in selectors(expr) if carries_account(n) and ACCOUNT_FILTER not in b]


# Families each dashboard must show (somewhere in its panel queries).
SHOWS = {
    "bedrock-cost-overview.json": (
        "bedrock_cost_month_forecast_usd", "bedrock_cost_model_month_to_date_usd",
        "bedrock_cost_tag_previous_month_usd", "bedrock_cost_allocation_tag_active",
        "project_id:bedrock_cost_month_to_date_share:ratio",
        "instance:bedrock_cost_yesterday_usd:sum", "account_id:bedrock_cost_account_name:info",
        "bedrock_cost_project_today_estimated_usd", "bedrock_cost_project_estimated_usd_per_hour",
        "bedrock_cost_rate_usd_per_million_tokens", "bedrock_usage_project_tokens_today"),
    "bedrock-project.json": (
        "bedrock_cost_project_tag_info", "bedrock_cost_project_today_usd",
        "bedrock_cost_project_baseline_daily_usd",
        "bedrock_cost_project_today_estimated_usd", "bedrock_cost_project_estimated_usd_per_hour",
        "bedrock_usage_project_tokens_today", "bedrock_cost_project_estimate_error_ratio"),
    "bedrock-exporter-health.json": (
        "bedrock_cost_exporter_source_up", "source:bedrock_cost_exporter_data_age:seconds",
        "bedrock_cost_exporter_refresh_duration_seconds",
        "bedrock_cost_exporter_api_requests_total",
        "bedrock_cost_exporter_api_request_errors_total",
        "bedrock_cost_exporter_api_retries_total",
        "bedrock_cost_exporter_cost_explorer_requests_remaining_today",
        "bedrock_cost_exporter_cost_explorer_spend_usd_total",
        "bedrock_cost_exporter_cloudwatch_metrics_requested_total",
        "bedrock_cost_exporter_cloudwatch_metrics_remaining_today",
        "bedrock_cost_exporter_cloudwatch_spend_usd_total",
        "bedrock_cost_exporter_account_up", "bedrock_cost_exporter_account_last_success_timestamp_seconds",
        "bedrock_cost_account_info",
        "bedrock_cost_exporter_shard_ordinal", "bedrock_cost_exporter_total_shards"),
}
# Panel titles each dashboard must have.
TITLES = {
    "bedrock-cost-overview.json": ("Spend by account",),
    "bedrock-exporter-health.json": ("Accounts", "Shards"),
}
RECORDING_RULE = re.compile(r"\b[a-z_]+:[a-z_]+:[a-z_]+\b")


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, name, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL " + name + (": " + str(detail) if detail else ""))
        return ok


def is_money(exprs):
    """A panel plots money when its expressions name *_usd series and do not divide."""
    return any(USD_SERIES.search(e) for e in exprs) and not is_ratio(exprs)


def is_ratio(exprs):
    return all(":ratio" in e or re.search(r"_ratio\b", e)
               or re.search(r"\)\s*/|\n\s*/|[\w}]\s*/\s*[\w(]", e) for e in exprs)


def overlaps(panels):
    """Pairs of top-level panels whose grid rectangles intersect."""
    out = []
    boxes = [(p.get("id"), p.get("gridPos", {})) for p in panels]
    for i, (a, ga) in enumerate(boxes):
        for b, gb in boxes[i + 1:]:
            try:
                if (ga["x"] < gb["x"] + gb["w"] and gb["x"] < ga["x"] + ga["w"]
                        and ga["y"] < gb["y"] + gb["h"] and gb["y"] < ga["y"] + ga["h"]):
                    out.append((a, b))
            except (KeyError, TypeError):
                pass
    return out


def check_dashboard(c, path, recorded):
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        c.check(False, name + ": valid JSON", e)
        return None
    if not c.check(isinstance(dash, dict), name + ": a dashboard object"):
        return None
    c.check("__inputs" not in dash, name + ": no __inputs (provisionable as is)")
    c.check(dash.get("id") is None, name + ": id is null", dash.get("id"))
    sv = dash.get("schemaVersion")
    c.check(isinstance(sv, int) and 36 <= sv <= 39, name + ": schemaVersion 36..39", sv)
    uid = dash.get("uid")
    c.check(isinstance(uid, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid or "") is not None,
            name + ": uid is a stable identifier", uid)
    if name in EXPECTED:
        c.check(uid == EXPECTED[name], name + ": uid is " + EXPECTED[name], uid)
    c.check(bool(dash.get("title")), name + ": has a title")
    c.check(bool(dash.get("description")), name + ": has a description")

    variables = dash.get("templating", {}).get("list", [])
    by_name = {v.get("name"): v for v in variables}
    c.check(len(by_name) == len(variables), name + ": variable names are unique")
    ds = by_name.get("datasource", {})
    c.check(ds.get("type") == "datasource" and ds.get("query") == "prometheus",
            name + ": variable datasource of type datasource for Prometheus", ds)
    for v in ("job", "instance"):
        var = by_name.get(v, {})
        c.check(var.get("type") == "query" and "label_values(" in variable_query(var),
                "%s: variable %s is a label_values() query" % (name, v), var.get("query"))
    acc = by_name.get("account", {})
    c.check([v.get("name") for v in variables[:2]] == ["datasource", "account"],
            name + ": variable account comes right after datasource",
            [v.get("name") for v in variables[:2]])
    c.check(acc.get("type") == "query" and re.fullmatch(
        r"label_values\((?:bedrock_cost_account_info|bedrock_cost_project_info)(?:\{[^}]*\})?,\s*account_id\)",
        variable_query(acc)) is not None,
        name + ": variable account is label_values(bedrock_cost_account_info, account_id)",
        variable_query(acc))
    if name == "bedrock-project.json":
        c.check(not acc.get("multi") and not acc.get("includeAll"),
                name + ": variable account is single-valued (one project of one account)")
    else:
        c.check(acc.get("multi") is True and acc.get("includeAll") is True,
                name + ": variable account is multi-valued with All")
    defined = set(by_name) | BUILTIN_VARS
    for var in variables:
        if var.get("type") == "query":
            c.check(var.get("datasource") == DS, "%s: variable %s uses ${datasource}"
                    % (name, var.get("name")), var.get("datasource"))
            q = variable_query(var)
            c.check(bool(q), "%s: variable %s has a query" % (name, var.get("name")))
            c.check(variables_used(q) <= defined, "%s: variable %s refers only to defined variables"
                    % (name, var.get("name")), variables_used(q) - defined)
            if var.get("name") == "account":
                continue  # accounts are disjoint: a sum over several never double counts
            c.check(not unfiltered_accounts(q), "%s: variable %s filters on account_id=~\"$account\""
                    % (name, var.get("name")), unfiltered_accounts(q))
            c.check(not var.get("multi") and not var.get("includeAll"),
                    "%s: variable %s is single-valued (sums across exporters would double count)"
                    % (name, var.get("name")))

    ids = []
    exprs_all = []
    for p in all_panels(dash):
        pid = p.get("id")
        label = "%s: panel %s \"%s\"" % (name, pid, p.get("title"))
        ids.append(pid)
        c.check(isinstance(pid, int), label + ": integer id", pid)
        c.check(p.get("type") in PANEL_TYPES, label + ": known panel type", p.get("type"))
        c.check(bool(p.get("title")), label + ": has a title")
        c.check(bool((p.get("description") or "").strip()), label + ": has a description")
        c.check(p.get("datasource") == DS, label + ": datasource is ${datasource}", p.get("datasource"))
        gp = p.get("gridPos", {})
        c.check(all(isinstance(gp.get(k), int) for k in ("h", "w", "x", "y"))
                and gp.get("x", 0) + gp.get("w", 0) <= 24, label + ": gridPos", gp)
        if p.get("type") == "row":
            continue
        targets = p.get("targets") or []
        c.check(bool(targets), label + ": has targets")
        refids = [t.get("refId") for t in targets]
        c.check(len(set(refids)) == len(refids) and all(refids), label + ": unique refIds", refids)
        exprs = []
        for t in targets:
            c.check(t.get("datasource") == DS, label + " target %s: datasource is ${datasource}"
                    % t.get("refId"), t.get("datasource"))
            e = t.get("expr", "")
            c.check(bool(e.strip()), label + " target %s: has an expr" % t.get("refId"))
            c.check(variables_used(e) <= defined, label + " target %s: variables are defined"
                    % t.get("refId"), variables_used(e) - defined)
            names = [n for n, _ in selectors(e)]
            if names and set(names) <= JOB_WIDE_SERIES:
                c.check('job="$job"' in e, label + " target %s: filters on $job" % t.get("refId"), e)
            else:
                c.check('job="$job"' in e and 'instance="$instance"' in e,
                        label + " target %s: filters on $job and $instance" % t.get("refId"), e)
            c.check(not unfiltered_accounts(e), label + " target %s: every project/cost family filters "
                    "on account_id=~\"$account\"" % t.get("refId"), unfiltered_accounts(e))
            lf = t.get("legendFormat") or ""
            if re.search(r"\{\{\s*(?:project_name|project_id|tag_key)\s*\}\}", lf):
                c.check("{{account_id}}" in lf or "{{ account_id }}" in lf,
                        label + " target %s: a legend naming a project or tag budget names the account"
                        % t.get("refId"), lf)
            for rule in RECORDING_RULE.findall(e):
                c.check(rule in recorded, label + " target %s: recording rule %s exists"
                        % (t.get("refId"), rule))
            exprs.append(e)
        exprs_all += exprs
        for tr in p.get("transformations") or []:
            if tr.get("id") == "organize":
                c.check(not tr.get("options", {}).get("excludeByName", {}).get("account_id"),
                        label + ": a table does not hide the account_id column")
        for link in p.get("fieldConfig", {}).get("defaults", {}).get("links") or []:
            if "var-project=" in link.get("url", ""):
                c.check("var-account=" in link.get("url", ""),
                        label + ": a link to a project passes its account", link.get("url"))
        desc = p.get("description") or ""
        if any(ESTIMATE_SERIES.search(e) for e in exprs):
            for t in targets:
                if ESTIMATE_SERIES.search(t.get("expr", "")):
                    c.check("(estimated)" in p.get("title", "") + (t.get("legendFormat") or ""),
                            label + " target %s: an estimate says (estimated) in the panel title "
                            "or its legend" % t.get("refId"))
            c.check("CloudWatch" in desc and "Cost Explorer" in desc,
                    label + ": an estimate's description names CloudWatch and Cost Explorer (estimate vs bill)")
        if any(CLOUDWATCH_SERIES.search(e) for e in exprs):
            c.check("CloudWatch" in desc, label + ": a cloudwatch panel's description mentions CloudWatch")
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if is_money(exprs):
            c.check(unit == "currencyUSD", label + ": money panel in currencyUSD", unit)
        if unit in RATIO_UNITS:
            c.check(is_ratio(exprs), label + ": ratio unit on a ratio expression", exprs)
    c.check(len(ids) == len(set(ids)), name + ": unique panel ids",
            sorted(i for i in ids if ids.count(i) > 1))
    c.check(not overlaps(dash.get("panels", [])), name + ": no panels overlap on the grid",
            overlaps(dash.get("panels", [])))

    text = "\n".join(exprs_all)
    for metric in SHOWS.get(name, ()):
        c.check(metric in text, name + ": shows " + metric)
    titles = [p.get("title") for p in all_panels(dash)]
    for title in TITLES.get(name, ()):
        c.check(title in titles, name + ": has a panel " + title)
    if name == "bedrock-cost-overview.json":
        tk = by_name.get("tag_key", {})
        c.check(tk.get("type") in ("query", "custom"), name + ": has a tag_key variable")
        c.check(re.search(r'tag_key="\$tag_key"', text) is not None
                and any(p.get("type") == "timeseries"
                        and p.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
                        .get("stacking", {}).get("mode") == "normal"
                        and "$tag_key" in json.dumps(p.get("targets")) for p in all_panels(dash)),
                name + ": a stacked time series by $tag_key")
    if name == "bedrock-project.json":
        pv = by_name.get("project", {})
        c.check(re.search(r"label_values\(bedrock_cost_project_info\{.*\},\s*project_name\)",
                          variable_query(pv)) is not None,
                name + ": project variable is label_values(bedrock_cost_project_info, project_name)",
                variable_query(pv))
        cost = [e for e in exprs_all if re.search(
            r"bedrock_cost_project_\w+_usd|bedrock_usage_project_\w+|bedrock_cost_project_\w+_ratio", e)]
        join = "on (job, instance, account_id, project_id)"
        c.check(bool(cost) and all('project_name="$project"' in e and join in e for e in cost),
                name + ": cost and token series joined to the chosen project on (account_id, project_id)",
                [e for e in cost if 'project_name="$project"' not in e or join not in e])
    return dash


def check_provisioning(c):
    dash_yml = glob.glob(os.path.join(PROVISIONING, "dashboards", "*.yml"))
    ds_yml = glob.glob(os.path.join(PROVISIONING, "datasources", "*.yml"))
    c.check(len(dash_yml) == 1, "provisioning: one dashboards provider file", dash_yml)
    c.check(len(ds_yml) == 1, "provisioning: one datasource file", ds_yml)
    c.check(os.path.exists(os.path.join(PROVISIONING, "README.md")), "provisioning: README.md")
    for f in dash_yml:
        t = open(f, encoding="utf-8").read()
        c.check("apiVersion: 1" in t and "providers:" in t and re.search(r"type:\s*file", t)
                and re.search(r"path:\s*\S+", t), "provisioning: %s is a file dashboard provider"
                % os.path.basename(f))
    for f in ds_yml:
        t = open(f, encoding="utf-8").read()
        c.check("apiVersion: 1" in t and "datasources:" in t and re.search(r"type:\s*prometheus", t)
                and re.search(r"url:\s*\S+", t), "provisioning: %s is a Prometheus data source"
                % os.path.basename(f))


def check_runbook(c):
    """Every alert has a runbook_url to RUNBOOK.md#<alert name lower-cased>, and the
    heading that GitHub turns into that anchor exists."""
    try:
        alerts = open(ALERTS, encoding="utf-8").read()
        runbook = open(RUNBOOK, encoding="utf-8").read()
    except OSError as e:
        c.check(False, "alert rules and RUNBOOK.md readable", e)
        return
    anchors = set()
    for m in re.finditer(r"^#{1,6}\s+(.*\S)\s*$", runbook, re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-"))
    # split the file at each "- alert:" so every url is read with its own alert
    for block in re.split(r"^\s*- alert:", alerts, flags=re.M)[1:]:
        name = block.split()[0]
        urls = re.findall(r"runbook_url:\s*(\S+)", block)
        c.check(urls == [RUNBOOK_URL + name.lower()], "alert %s: runbook_url is RUNBOOK.md#%s"
                % (name, name.lower()), urls)
        c.check(name.lower() in anchors, "RUNBOOK.md has a section %s" % name)


def main():
    c = Checks()
    try:
        recorded = set(re.findall(r"^\s*- record:\s*(\S+)", open(RULES, encoding="utf-8").read(), re.M))
    except OSError as e:
        c.check(False, "recording rules readable", e)
        recorded = set()
    paths = sorted(glob.glob(os.path.join(DASH_DIR, "*.json")))
    c.check(sorted(map(os.path.basename, paths)) == sorted(EXPECTED), "the three dashboards exist",
            [os.path.basename(p) for p in paths])
    uids, titles = {}, {}
    for path in paths:
        dash = check_dashboard(c, path, recorded)
        if dash is None:
            continue
        for key, seen in (("uid", uids), ("title", titles)):
            v = dash.get(key)
            c.check(v not in seen, "%s: %s %r not used by %s" % (os.path.basename(path), key, v,
                                                                 seen.get(v)))
            seen[v] = os.path.basename(path)
    check_provisioning(c)
    check_runbook(c)
    print("%d passed, %d failed" % (c.passed, c.failed))
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
