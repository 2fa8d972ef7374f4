"""Integration tests of the data_exports source (issue 15): Bedrock spend read from an AWS
Data Exports (CUR 2.0) export in the fake's S3, gzip CSV chunks and a manifest generated
from the fake's ledger (tests/fake_aws/README.md, "Data Exports").

What users rely on: every per-project, per-tag and per-model series equals the ledger to the
cent with no GetCostAndUsage request; what only line items give (line item types, principals,
hours, effective rates) equals the export's own sums; an unchanged manifest costs no download
and a restart with a current state file downloads nothing; a rewrite of the previous month is
read again, its unchanged chunks are not; a truncated gzip, a missing chunk, a Parquet export
and hostile CSV each fail the refresh with a clear message and a counted error, and the last
good data stays.

Imported by run.py, which calls register(run_module). Expectations come from the fake's
ledger and the export's sums (GET /_fake/data_exports/sums), never from the exporter's output."""

import datetime
import signal
import urllib.parse

import costs

R = None
check = eq = wait_for = TestFailure = None
D = costs.D

BUCKET = "cur-bucket"
PREFIX = "exports/cur"
EXPORT = "bedrock"


def export(fake, **over):
    """Configures and runs the fake's export; returns GET /_fake/data_exports."""
    body = {"bucket": BUCKET, "prefix": PREFIX, "export_name": EXPORT, "form": "aliased",
            "chunk_lines": 1500}
    body.update(over)
    fake.call("PUT", "/_fake/data_exports", body)
    return fake.call("GET", "/_fake/data_exports")


def sums(fake, period, bedrock_only=True):
    q = urllib.parse.urlencode({"period": period, "bedrock_only": 1 if bedrock_only else 0})
    return fake.call("GET", "/_fake/data_exports/sums?" + q)


def s3(fake):
    return costs.counters(fake, "s3")


def data_gets(fake):
    """200 answers to GetObject of the export's data files (downloads), per key."""
    out = {}
    for key, st in s3(fake).get("get_by_key", {}).items():
        if "/data/" in key:
            out[key] = st.get("200", 0)
    return out


def gcu(fake):
    return costs.counters(fake)["by_operation"].get("GetCostAndUsage", 0)


def dx_exporter(ctx, fake, name, ce=None, dx=None, start=True, endpoint=None):
    e = costs.CeExporter(ctx, fake, name, start=False, ce=ce)
    e.groups["data_exports"] = {"enabled": True, "bucket": BUCKET, "prefix": PREFIX,
                                "export_name": EXPORT,
                                "endpoint": endpoint or fake.endpoint("/s3"),
                                "region": "us-east-1", "refresh_interval": 3600,
                                "top_principals": 2}
    e.groups["data_exports"].update(dx or {})
    e.write()
    if start:
        e.start()
    return e


def hup_dx(e, timeout=40):
    """Changes data_exports.refresh_interval (a change that keeps what was read), SIGHUPs,
    and waits until a data_exports refresh that started after the reload is published."""
    before = e.exp.quick()
    prev = before.reload_ts()
    g = e.groups["data_exports"]
    g["refresh_interval"] = 3601 if g["refresh_interval"] == 3600 else 3600
    e.write()
    e.exp.send(signal.SIGHUP)

    def done():
        m = e.exp.quick()
        return m and m.reload_ts() > prev and costs.attempt(m, "data_exports") > m.reload_ts()
    wait_for(done, timeout, "a data_exports refresh after SIGHUP")
    return e.exp.scrape()


def credit_rows(fake, today):
    """A credit and a refund on Bedrock (CustomerChatbot-Prod's tags), in the ledger, so Cost
    Explorer's UnblendedCost and the export both carry them."""
    d = costs.day(today, -1) if today.day > 1 else today
    tags = prod_tags(fake)
    rows = [{"date": d.isoformat(), "service": "Amazon Bedrock",
             "usage_type": "USE1-openai.gpt-oss-120b-mantle-input-tokens-standard",
             "tags": tags, "cost": "-1.25", "record_type": "Credit"},
            {"date": d.isoformat(), "service": "Amazon Bedrock",
             "usage_type": "USE1-openai.gpt-oss-120b-mantle-output-tokens-standard",
             "tags": tags, "cost": "-0.5", "record_type": "Refund"}]
    fake.call("POST", "/_fake/ledger/rows", rows)


def prod_tags(fake):
    """The attribution tags of the seed's CustomerChatbot-Prod project."""
    p = [p for p in fake.projects("us-east-1") if p["name"] == "CustomerChatbot-Prod"][0]
    return {k: p["tags"][k] for k in costs.KEYS2}


def period_of(d):
    return "%04d-%02d" % (d.year, d.month)


def by_project(m, family, label):
    out = {}
    for s in m.find(family):
        out.setdefault(s.labels["project_id"], {})[s.labels[label]] = s.value
    return out


# ---------------------------------------------------------------------------

def test_dx_costs_equal_the_ledger(ctx):
    costs.guard_utc_midnight(ctx, lambda: _costs_equal_the_ledger(ctx))


def _costs_equal_the_ledger(ctx):
    today = costs.utc_today()
    fake = ctx.fake()
    credit_rows(fake, today)
    info = export(fake)
    e = dx_exporter(ctx, fake, "dx-ledger-%d" % len(ctx.fakes))
    m = e.exp.wait_ready(timeout=60)
    eq(costs.up(m, "data_exports"), 1.0, "source_up{source=\"data_exports\"}")
    eq(m.value("bedrock_cost_exporter_cost_source_info", source="data_exports"), 1.0,
       "bedrock_cost_exporter_cost_source_info")
    eq(gcu(fake), 0, "GetCostAndUsage requests with data_exports serving costs")

    # every per-project, per-tag and per-model series equals the ledger
    ftoday, rows, projects, alloc = costs.fake_world(fake)
    eq(ftoday, today, "the fake's today (UTC)")
    want, _ = costs.expected_costs(rows, projects, alloc, costs.KEYS2, costs.TAG_LABELS, today)
    costs.assert_close(costs.cost_series(m), want, "cost series from the export vs the ledger")
    cur = sums(fake, period_of(today))
    got_total = sum(s.value for s in m.find("bedrock_cost_project_month_to_date_usd"))
    check(abs(D(repr(got_total)) - D(cur["total"])) <= D("0.005"),
          "sum of project month to date %r, the export's Bedrock total %s"
          % (got_total, cur["total"]))

    # line item types: per project they sum to its month to date; credits are visible
    mtd = {s.labels["project_id"]: s.value
           for s in m.find("bedrock_cost_project_month_to_date_usd")}
    types = by_project(m, "bedrock_cost_project_line_item_type_month_to_date_usd",
                       "line_item_type")
    for pid, t in types.items():
        costs.assert_close({pid: sum(t.values())}, {pid: D(repr(mtd.get(pid, 0.0)))},
                           "line item types of %s vs its month to date" % pid)
    want_types = {k: D(v) for k, v in cur["by_line_item_type"].items()}
    got_types = {}
    for t in types.values():
        for k, v in t.items():
            got_types[k] = got_types.get(k, 0.0) + v
    costs.assert_close(got_types, want_types, "spend by line item type vs the export")
    if today.day > 1:
        check(got_types.get("Credit", 0) < 0 and got_types.get("Refund", 0) < 0,
              "no credit or refund line seen: %r" % got_types)

    # principals: top 2 per project, the rest as __other__, summing to the month to date
    prin = by_project(m, "bedrock_cost_project_principal_month_to_date_usd", "principal")
    check(any("__other__" in p for p in prin.values()),
          "no project has more than 2 principals (the fake gives up to 4): %r" % prin)
    for pid, p in prin.items():
        named = [k for k in p if k not in ("__other__", "__none__")]
        check(len(named) <= 2, "%s lists %d principals, top_principals is 2" % (pid, len(named)))
        costs.assert_close({pid: sum(p.values())}, {pid: D(repr(mtd.get(pid, 0.0)))},
                           "principals of %s vs its month to date" % pid)
        if "__other__" in p:
            check(all(p[k] >= p["__other__"] / 10 for k in named), "ordering of %s" % pid)

    # hours: the export's sums by hour
    last = m.value("bedrock_cost_hourly_last_complete_hour_timestamp_seconds")
    hours = {}
    for period in {period_of(today), period_of(costs.prev_month_start(today))}:
        for acct, hs in sums(fake, period)["by_hour"].items():
            for h, v in hs.items():
                t = datetime.datetime.fromisoformat(h.replace("Z", "+00:00")).timestamp()
                hours[t] = hours.get(t, D(0)) + D(v)
    check(last == max(hours) - 3600, "last complete hour %r, the export's latest hour %r"
          % (last, max(hours)))
    got_h = {s.labels["hours_ago"]: s.value for s in m.find("bedrock_cost_hourly_usd")}
    eq(len(got_h), 24, "bedrock_cost_hourly_usd series (data_exports.hours)")
    want_h = {str(k): hours.get(last - 3600 * (k - 1), D(0)) for k in range(1, 25)}
    costs.assert_close(got_h, want_h, "bedrock_cost_hourly_usd vs the export's hours")

    # effective rates: what the fake priced the tokens at
    rates = fake.call("GET", "/_fake/cloudwatch/rates")
    got_r = {(s.labels["model"], s.labels["direction"]): s.value
             for s in m.find("bedrock_cost_model_effective_usd_per_million_tokens")}
    check(got_r, "no bedrock_cost_model_effective_usd_per_million_tokens series")
    # the fake bought each Usage line's tokens at its CloudWatch rate (model names differ
    # between the bill and CloudWatch, so each rate must be one of that direction's)
    table = list(rates["rates"].values()) + [rates["default"]]
    for (model, direction), v in got_r.items():
        check(any(abs(v - float(r[direction])) <= 1e-9 * float(r[direction]) for r in table),
              "effective rate of %s %s is %r, none of the fake's %s rates"
              % (model, direction, v, direction))
    ctx.notes.append("effective rates %r; the fake's %r" % (sorted(got_r.items())[:4], rates))

    # an unchanged manifest costs no download; a new execution of the same data downloads
    # no data file (each answers 304 to If-None-Match)
    downloads = m.value("bedrock_cost_exporter_data_exports_downloads_total")
    before = data_gets(fake)
    check(sum(before.values()) >= 2, "the export was read from fewer than 2 data files: %r"
          % before)
    m2 = hup_dx(e)
    eq(m2.value("bedrock_cost_exporter_data_exports_downloads_total"), downloads,
       "downloads after a refresh with the manifests unchanged")
    eq(data_gets(fake), before, "data file downloads after a refresh, manifests unchanged")
    fake.call("POST", "/_fake/data_exports/run")
    m3 = hup_dx(e)
    eq(data_gets(fake), before, "data file downloads after a new execution of the same data")
    eq(m3.value("bedrock_cost_exporter_data_exports_downloads_total"), downloads + 2,
       "downloads after a new execution of the same data (the 2 manifests)")
    costs.assert_close(costs.cost_series(m3), want, "cost series after the new execution")
    eq(gcu(fake), 0, "GetCostAndUsage requests at the end")
    ctx.notes.append("export: %d data files; checked %d cost series to the cent"
                     % (sum(len(p.get("data_files", [])) for p in info.get("periods", {}).values())
                        if isinstance(info.get("periods"), dict) else -1, len(want)))


def test_dx_restart_and_previous_month_rewrite(ctx):
    costs.guard_utc_midnight(ctx, lambda: _restart_and_rewrite(ctx))


def _restart_and_rewrite(ctx):
    today = costs.utc_today()
    fake = ctx.fake()
    export(fake, form="map", chunk_lines=4000)
    port = urllib.parse.urlsplit(fake.endpoint()).port
    e = dx_exporter(ctx, fake, "dx-restart-%d" % len(ctx.fakes),
                    endpoint="http://{bucket}.localhost:%d/s3vh" % port)
    m = e.exp.wait_ready(timeout=60)
    ftoday, rows, projects, alloc = costs.fake_world(fake)
    want, _ = costs.expected_costs(rows, projects, alloc, costs.KEYS2, costs.TAG_LABELS, today)
    costs.assert_close(costs.cost_series(m), want,
                       "cost series from the full (map) export, virtual-hosted")

    # a restart with a current state file: no S3 request at all, the same series
    total = s3(fake)["requests"] if "requests" in s3(fake) else sum(
        s3(fake)["by_operation"].values())
    e.exp.stop()
    e.start()
    m2 = e.exp.wait_ready(timeout=30)
    total2 = s3(fake)["requests"] if "requests" in s3(fake) else sum(
        s3(fake)["by_operation"].values())
    eq(total2, total, "S3 requests after a restart within the refresh interval")
    costs.assert_close(costs.cost_series(m2), want, "cost series after the restart")

    # the previous month is rewritten: only its changed chunks are downloaded again
    prev = costs.prev_month_start(today)
    before = data_gets(fake)
    fake.call("POST", "/_fake/ledger/rows", [{
        "date": costs.day(prev, 3).isoformat(), "service": "Amazon Bedrock",
        "usage_type": "USE1-openai.gpt-oss-120b-mantle-input-tokens-standard",
        "tags": prod_tags(fake), "cost": "100"}])
    fake.call("POST", "/_fake/data_exports/run")
    m3 = hup_dx(e)
    after = data_gets(fake)
    grown = {k for k in after if after[k] > before.get(k, 0)}
    check(grown, "no data file was downloaded again after the previous month's rewrite")
    check(all("BILLING_PERIOD=%s" % period_of(prev) in k for k in grown),
          "files of the current month were downloaded again: %r" % sorted(grown))
    ftoday, rows, projects, alloc = costs.fake_world(fake)
    want, _ = costs.expected_costs(rows, projects, alloc, costs.KEYS2, costs.TAG_LABELS, today)
    costs.assert_close(costs.cost_series(m3), want, "cost series after the rewrite")
    eq(gcu(fake), 0, "GetCostAndUsage requests")


def test_dx_organization_every_account(ctx):
    costs.guard_utc_midnight(ctx, lambda: _organization(ctx))


def _organization(ctx):
    """The management account's export holds every member's lines: each account's series
    equal its own ledger, with no GetCostAndUsage."""
    import organization as org
    fake = org.org_fake(ctx)
    truth = org.Truth(fake)
    export(fake)
    e = org.OrgExporter(ctx, fake, "dx-org-%d" % len(ctx.fakes), org=org.discover(fake))
    e.groups["data_exports"] = {"enabled": True, "bucket": BUCKET, "prefix": PREFIX,
                                "export_name": EXPORT, "endpoint": fake.endpoint("/s3"),
                                "region": "us-east-1"}
    e.write()
    e.start()
    m = org.wait_org_ready(e)
    eq(costs.up(m, "data_exports"), 1.0, "source_up{source=\"data_exports\"}")
    for a in truth.active:
        org.assert_account_costs(m, truth, a)
    prin = {s.labels["account_id"]
            for s in m.find("bedrock_cost_project_principal_month_to_date_usd")}
    check(prin >= set(truth.members), "principal series only for accounts %r" % sorted(prin))
    eq(gcu(fake), 0, "GetCostAndUsage requests in an organization with data_exports")


FAULTS = {
    # fault: (reason counted, words the error says)
    "truncated_gzip": ("gzip", "truncated"),
    "missing_chunk": ("missing_file", "no such object"),
    "parquet": ("format", "Parquet"),
    "bad_columns": ("csv", "fields"),
    "huge_field": ("csv", "field"),
    "hostile_quotes": ("csv", "quote"),
}


def test_dx_faults_keep_the_last_good_data(ctx):
    costs.guard_utc_midnight(ctx, lambda: _faults(ctx))


def _faults(ctx):
    fake = ctx.fake()
    export(fake, chunk_lines=1000)
    e = dx_exporter(ctx, fake, "dx-faults-%d" % len(ctx.fakes))
    m = e.exp.wait_ready(timeout=60)
    good = costs.cost_series(m)
    for fault, (reason, words) in FAULTS.items():
        n0 = m.value("bedrock_cost_exporter_data_exports_errors_total", reason=reason)
        export(fake, chunk_lines=1000, fault=fault)
        m = hup_dx(e)
        eq(costs.up(m, "data_exports"), 0.0, "data_exports up after fault %s" % fault)
        eq(m.value("bedrock_cost_exporter_data_exports_errors_total", reason=reason), n0 + 1,
           "errors_total{reason=%r} after fault %s" % (reason, fault))
        eq(costs.cost_series(m), good, "cost series after fault %s (the last good data)" % fault)
        warns = costs.ce_warns(e.exp, "data_exports")
        check(warns, "fault %s: no warning logged" % fault)
        text = str(warns[-1].get("error", ""))
        check(words.lower() in text.lower(), "fault %s: the warning does not say %r: %s"
              % (fault, words, text[-400:]))
        export(fake, chunk_lines=1000)
        m = hup_dx(e)
        eq(costs.up(m, "data_exports"), 1.0, "data_exports up after fault %s cleared" % fault)
        eq(costs.cost_series(m), good, "cost series after fault %s cleared" % fault)
    eq(gcu(fake), 0, "GetCostAndUsage requests")


def register(run):
    global R, check, eq, wait_for, TestFailure
    R = run
    check, eq, wait_for, TestFailure = run.check, run.eq, run.wait_for, run.TestFailure
    for fn in (test_dx_costs_equal_the_ledger, test_dx_restart_and_previous_month_rewrite,
               test_dx_faults_keep_the_last_good_data, test_dx_organization_every_account):
        run.test()(fn)
