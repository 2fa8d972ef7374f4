"""Cost Explorer, credentials and spend-discipline tests of the integration suite.

Imported by run.py, which calls register(run_module): the tests below are added to run.py's
registry and use its helpers (Fake, Exporter, Exposition, wait_for, base_env, ...), so there is
still one runner and one final "N passed, N failed" line.

Every expectation about money is computed here, independently of the exporter, from the fake's
own ledger (GET /_fake/ledger), its projects and its cost allocation tag table, with Python's
decimal module and the attribution rules of README "How spend is attributed to projects".

Isolation is run.py's: every exporter gets base_env() (dead proxies, no inherited AWS_*), HOME
set to the test's temporary directory, AWS_EC2_METADATA_DISABLED=true except in the IMDS
tests, and a configuration whose every endpoint is the fake or the dead port 127.0.0.1:9.
"""

import datetime
import decimal
import json
import os
import secrets
import signal
import time
import urllib.parse

R = None                      # the run.py module, set by register()
check = eq = wait_for = TestFailure = None

D = decimal.Decimal
CE_OPS = ("GetCostAndUsage", "GetCostForecast", "GetDimensionValues", "ListCostAllocationTags")
SOURCES = ("projects", "cost_explorer", "forecast", "allocation_tags")
RESERVED = ("__untagged__", "__unmatched__", "__ambiguous__")
# The fake's management account: every project and cost series of a single-account exporter
# carries it as account_id (tests/fake_aws/README.md, GetCallerIdentity).
ACCOUNT = "123456789012"
UNTAGGED = "__untagged__"
TAG_LABELS = ("Application", "Environment", "Team", "CostCenter")
KEYS2 = ("Application", "Environment")
BEDROCK_SERVICES = ["Amazon Bedrock", "Claude Sonnet 4.5 (Amazon Bedrock Edition)"]
MARKETPLACE_SUFFIX = " (Amazon Bedrock Edition)"
ROLE_ARN = "arn:aws:iam::123456789012:role/bce-integration"
DEAD = "http://127.0.0.1:9"
SETTLE_DAYS = 3
DEFAULT_MAX_REQUESTS = 40
WARN_CE = "refresh failed; serving the last good data"

WINDOWS = ("today", "yesterday", "baseline", "month_to_date", "previous_month")
PROJECT_FAMILY = {"today": "bedrock_cost_project_today_usd",
                  "yesterday": "bedrock_cost_project_yesterday_usd",
                  "baseline": "bedrock_cost_project_baseline_daily_usd",
                  "month_to_date": "bedrock_cost_project_month_to_date_usd",
                  "previous_month": "bedrock_cost_project_previous_month_usd"}
TAG_FAMILY = {"today": "bedrock_cost_tag_today_usd",
              "yesterday": "bedrock_cost_tag_yesterday_usd",
              "month_to_date": "bedrock_cost_tag_month_to_date_usd",
              "previous_month": "bedrock_cost_tag_previous_month_usd"}
MODEL_FAMILY = {"yesterday": "bedrock_cost_model_yesterday_usd",
                "month_to_date": "bedrock_cost_model_month_to_date_usd"}
COST_FAMILIES = (set(PROJECT_FAMILY.values()) | set(TAG_FAMILY.values())
                 | set(MODEL_FAMILY.values()))
CENT_HALF = 0.005


# ---------------------------------------------------------------------------
# dates (UTC)
# ---------------------------------------------------------------------------

def utc_today():
    return datetime.datetime.now(datetime.timezone.utc).date()


def day(d, n=0):
    return d + datetime.timedelta(days=n)


def month_start(d):
    return d.replace(day=1)


def prev_month_start(d):
    return month_start(day(month_start(d), -1))


def next_month_start(d):
    return month_start(day(month_start(d), 32))


def midnight(d):
    return float(datetime.datetime(d.year, d.month, d.day,
                                   tzinfo=datetime.timezone.utc).timestamp())


def windows(today):
    """[start, end) of each reporting window, per README "Metrics"."""
    ms = month_start(today)
    return {"today": (today, day(today, 1)), "yesterday": (day(today, -1), today),
            "baseline": (day(today, -8), day(today, -1)),
            "month_to_date": (ms, day(today, 1)),
            "previous_month": (prev_month_start(today), ms)}


def guard_utc_midnight(ctx, body):
    """Runs body(); if the UTC date changed meanwhile (the fake's seed and every window move
    at midnight), runs it once more, whatever the first outcome was."""
    for attempt in (1, 2):
        d0 = utc_today()
        try:
            out = body()
        except TestFailure:
            if utc_today() != d0 and attempt == 1:
                ctx.notes.append("UTC date changed during the test; ran it again")
                continue
            raise
        if utc_today() == d0:
            return out
        ctx.notes.append("UTC date changed during the test; ran it again")
    raise TestFailure("the UTC date changed during both attempts")


# ---------------------------------------------------------------------------
# the fake's other surfaces
# ---------------------------------------------------------------------------

def counters(fake, surface="ce"):
    return fake.call("GET", "/_fake/requests?surface=" + surface)[surface]


def req_log(fake, surface="ce"):
    return fake.call("GET", "/_fake/requests/log?surface=" + surface)["requests"]


def issued(fake):
    return fake.call("GET", "/_fake/credentials")["credentials"]


def ce_total(fake):
    return counters(fake)["total"]


def last_seq(fake):
    log = fake.call("GET", "/_fake/requests/log")["requests"]
    return max([e["seq"] for e in log] or [0])


def fake_today(fake):
    return datetime.date.fromisoformat(fake.call("GET", "/_fake/config")["today"])


def assert_ce_signed_by(fake, source, what):
    """Every Cost Explorer request was SigV4 and accepted; the fake's issued temporary
    credentials (it lists their source, never a secret) say which credentials that was."""
    c = counters(fake)
    check(c["total"] > 0, "%s: no Cost Explorer request reached the fake" % what)
    eq(c["by_status"], {"200": c["total"]}, "%s: statuses of Cost Explorer answers" % what)
    eq(c["auth"]["sigv4"], c["total"], "%s: SigV4-signed Cost Explorer requests" % what)
    creds = issued(fake)
    if source == "static":
        eq(creds, [], "%s: temporary credentials issued (static keys expected)" % what)
    else:
        check(creds, "%s: the fake issued no temporary credentials" % what)
        eq(sorted({x["source"] for x in creds}), [source],
           "%s: sources of the temporary credentials the fake issued" % what)
    return creds


# ---------------------------------------------------------------------------
# exporter configuration and metrics
# ---------------------------------------------------------------------------

BUDGETS = ('budgets = ( { project = "CustomerChatbot-Prod"; monthly_usd = 500.0; },\n'
           '            { tag = "Team"; value = "DataScience"; monthly_usd = 2000.0; } );\n')


def ce_env(ctx, extra=None, drop=()):
    """run.py's isolated environment, HOME in the test's directory, plus @extra."""
    env = R.base_env({"HOME": ctx.dir, "BEDROCK_API_KEY": R.API_KEY})
    env.update(extra or {})
    for k in drop:
        env.pop(k, None)
    return env


STATIC_ENV = None             # run.py's static key pair, set by register()


class CeExporter:
    """An exporter with Cost Explorer on against @fake: its configuration file (rewritable),
    environment, state file, and the exporter process (self.exp)."""

    def __init__(self, ctx, fake, name, env=None, ce=None, aws=None, projects=None, http=None,
                 budgets=True, start=True, cw=None):
        self.ctx, self.fake, self.name = ctx, fake, name
        self.env = env if env is not None else ce_env(ctx, STATIC_ENV)
        self.path = os.path.join(ctx.dir, name + ".conf")
        self.state = os.path.join(ctx.dir, name + ".state.json")
        self.budgets = budgets
        self.groups = {
            "projects": {"regions": ["us-east-1", "eu-west-1"],
                         "endpoint": fake.endpoint(), "page_size": 100,
                         "refresh_interval": 3600, "auth": "api_key",
                         "api_key_env": "BEDROCK_API_KEY"},
            "http": {"connect_timeout": 1, "request_timeout": 5, "max_retries": 2,
                     "retry_max_delay": 1, "max_response_mib": 4},
            "aws": {"region": "us-east-1", "sts_endpoint": fake.endpoint("/sts"),
                    "imds_enabled": False, "imds_endpoint": DEAD,
                    "container_endpoint": DEAD},
            "cost_explorer": {"enabled": True, "endpoint": fake.endpoint("/ce"),
                              "refresh_interval": 3600,
                              "attribution_tags": list(KEYS2),
                              "max_requests_per_day": DEFAULT_MAX_REQUESTS},
            "cloudwatch": {"enabled": False, "endpoint": DEAD},
            "state_file": self.state,
        }
        for g, over in (("projects", projects), ("http", http), ("aws", aws),
                        ("cost_explorer", ce), ("cloudwatch", cw)):
            self.groups[g].update(over or {})
        self.slash = False
        self.write()
        self.exp = self.start() if start else None

    def write(self):
        text = R.render_conf(self.groups) + (BUDGETS if self.budgets else "")
        with open(self.path, "w", encoding="utf-8") as fh:
            fh.write(text)

    def start(self, log_level="debug"):
        self.exp = R.Exporter(self.ctx, self.path, self.env, (), log_level)
        return self.exp

    def hup_costs(self, timeout=40):
        """Makes a CE-relevant change that changes nothing (the endpoint gains or loses a
        trailing slash), SIGHUPs, and waits until a cost refresh that started after the
        reload is published. Returns that (promtool-checked) scrape."""
        before = self.exp.quick()
        prev_reload = before.reload_ts()
        self.slash = not self.slash
        self.groups["cost_explorer"]["endpoint"] = self.fake.endpoint(
            "/ce/" if self.slash else "/ce")
        self.write()
        self.exp.send(signal.SIGHUP)

        def done():
            e = self.exp.quick()
            if e is None:
                return None
            if e.reload_ok() == 0:
                raise TestFailure("configuration reload was rejected; log:\n"
                                  + self.exp.log_text()[-3000:])
            return e.reload_ts() > prev_reload and \
                attempt(e, "cost_explorer") > e.reload_ts()
        wait_for(done, timeout, "a cost refresh after SIGHUP")
        return self.exp.scrape()

    def wait_cost_attempt(self, after, timeout, what):
        wait_for(lambda: (lambda e: e and attempt(e, "cost_explorer") > after)(self.exp.quick()),
                 timeout, what)
        return self.exp.scrape()


def src(m, name, source):
    return m.value("bedrock_cost_exporter_" + name, source=source)


def up(m, source):
    return src(m, "source_up", source)


def attempt(m, source):
    return src(m, "last_attempt_timestamp_seconds", source)


def success(m, source):
    return src(m, "last_success_timestamp_seconds", source)


def api_val(m, name, api, op, **labels):
    return m.value("bedrock_cost_exporter_" + name, api=api, operation=op, **labels)


def ce_errors(m, op="GetCostAndUsage"):
    return {r: api_val(m, "api_request_errors_total", "cost_explorer", op, reason=r)
            for r in R.REASONS}


def ce_retries(m, op="GetCostAndUsage"):
    return api_val(m, "api_retries_total", "cost_explorer", op)


def ce_requests(m):
    return {op: api_val(m, "api_requests_total", "cost_explorer", op) for op in CE_OPS}


def sts_actions(sts):
    """The fake's STS actions but GetCallerIdentity, which the accounts source sends (free)
    at start and every organization.refresh_interval: it must be there."""
    actions = dict(sts["by_action"])
    check(actions.pop("GetCallerIdentity", 0) >= 1,
          "STS GetCallerIdentity names the account: %r" % sts["by_action"])
    return actions


def key_of(s):
    return (s.name, tuple(sorted(s.labels.items())))


def cost_series(m):
    return {key_of(s): s.value for s in m.samples if s.name in COST_FAMILIES}


def ce_warns(exp, source="cost_explorer"):
    return exp.logs(WARN_CE, "warn", source=source)


def assert_close(got, want, what, tol=CENT_HALF):
    """got: {key: float}, want: {key: Decimal}: same keys, every value within tol."""
    gk, wk = set(got), set(want)
    check(gk == wk, "%s: series differ: missing %s; unexpected %s"
          % (what, sorted(wk - gk)[:8], sorted(gk - wk)[:8]))
    bad = [(k, got[k], str(want[k])) for k in sorted(wk)
           if abs(D(repr(got[k])) - want[k]) > D(str(tol))]
    check(not bad, "%s: %d series off by more than $%s, e.g. %s"
          % (what, len(bad), tol, bad[:5]))


def assert_same_values(got, want, what, tol=1e-9):
    gk, wk = set(got), set(want)
    check(gk == wk, "%s: series differ: missing %s; unexpected %s"
          % (what, sorted(wk - gk)[:8], sorted(gk - wk)[:8]))
    bad = [(k, got[k], want[k]) for k in sorted(wk) if abs(got[k] - want[k]) > tol]
    check(not bad, "%s: %d values changed, e.g. %s" % (what, len(bad), bad[:5]))


# ---------------------------------------------------------------------------
# the independent model of the exporter's cost metrics
# ---------------------------------------------------------------------------

def is_bedrock(row):
    return "bedrock" in row["service"].lower()


def model_labels(service, usage_type):
    """README: mantle usage types give model + token kind; Marketplace spend is named after its
    service. Only the shapes the seed ledger uses."""
    if service.endswith(MARKETPLACE_SUFFIX):
        model = service[:-len(MARKETPLACE_SUFFIX)]
    else:
        u = usage_type.split("-", 1)[1] if "-" in usage_type else usage_type
        model = u.split("-mantle-")[0]
    flat = usage_type.lower().replace("-", "").replace("_", "")
    token = ("cache_read" if "cacheread" in flat else "cache_write" if "cachewrite" in flat
             else "input" if "input" in flat else "output" if "output" in flat else "other")
    return model, token


def expected_costs(ledger, projects, alloc, keys, labels, today):
    """{(family, sorted label items): Decimal} for every cost series, and the ambiguous
    combinations {attribution_value: projects}, from the ledger and the projects."""
    visible = {k: (v if isinstance(v, str) else v.get("Status")) == "Active"
               for k, v in alloc.items()}

    def row_tag(row, k):                       # an inactive tag key reads as absent
        return row["tags"].get(k, "") if visible.get(k, True) else ""

    combos = {}
    for p in projects:
        c = tuple(p["tags"].get(k, "") for k in keys)
        if any(c):
            combos.setdefault(c, []).append(p)
    out, amb = {}, {}

    def add(family, lab, amount):
        lab = dict(lab, account_id=ACCOUNT)  # single account: the caller's (STS)
        k = (family, tuple(sorted(lab.items())))
        out[k] = out.get(k, D(0)) + amount

    for p in projects:
        if p["id"] != "default":
            for w in WINDOWS:
                add(PROJECT_FAMILY[w], {"project_id": p["id"]}, D(0))
    for pid in RESERVED:
        for w in WINDOWS:
            add(PROJECT_FAMILY[w], {"project_id": pid}, D(0))
    for k in labels:
        values = {p["tags"][k] for p in projects if p["tags"].get(k)} | {UNTAGGED}
        for v in values:
            for w in TAG_FAMILY:
                add(TAG_FAMILY[w], {"tag_key": k, "tag_value": v}, D(0))

    win = windows(today)
    first = min(s for s, _ in win.values())
    ms, yesterday = month_start(today), day(today, -1)
    for row in ledger:
        if not is_bedrock(row):
            continue
        d = datetime.date.fromisoformat(row["date"])
        amount = D(row["cost"])
        if first <= d <= today:
            c = tuple(row_tag(row, k) for k in keys)
            owner = None
            if not any(c):
                pid = "__untagged__"
            elif c not in combos:
                pid = "__unmatched__"
            elif len(combos[c]) > 1:
                pid = "__ambiguous__"
                amb[",".join("%s=%s" % kv for kv in zip(keys, c))] = len(combos[c])
            else:
                owner = combos[c][0]
                pid = owner["id"]
            for w, (s, e) in win.items():
                if not s <= d < e:
                    continue
                add(PROJECT_FAMILY[w], {"project_id": pid},
                    amount / 7 if w == "baseline" else amount)
                if w not in TAG_FAMILY:
                    continue
                for k in labels:
                    if owner is not None:
                        v = owner["tags"].get(k, "")
                    else:
                        v = c[keys.index(k)] if k in keys else ""
                    add(TAG_FAMILY[w], {"tag_key": k, "tag_value": v or UNTAGGED}, amount)
        if min(ms, yesterday) <= d <= today:
            model, token = model_labels(row["service"], row["usage_type"])
            lab = {"service": row["service"], "usage_type": row["usage_type"],
                   "model": model, "token_type": token}
            add(MODEL_FAMILY["yesterday"], lab, amount if d == yesterday else D(0))
            add(MODEL_FAMILY["month_to_date"], lab, amount if d >= ms else D(0))
    return out, amb


def fake_world(fake, regions=("us-east-1", "eu-west-1")):
    """The fake's ledger, projects of @regions and allocation tag table."""
    led = fake.call("GET", "/_fake/ledger")
    projects = [p for r in regions for p in fake.projects(r)]
    alloc = {t["TagKey"]: t["Status"]
             for t in fake.call("GET", "/_fake/allocation_tags")["CostAllocationTags"]}
    return datetime.date.fromisoformat(led["today"]), led["rows"], projects, alloc


def ambiguous_series(m):
    return {s.labels["attribution_value"]: s.value
            for s in m.find("bedrock_cost_attribution_ambiguous")}


# ---------------------------------------------------------------------------
# 1. every cost metric equals the ledger
# ---------------------------------------------------------------------------

def test_ce_costs_equal_the_ledger(ctx):
    guard_utc_midnight(ctx, lambda: _costs_equal_the_ledger(ctx))


def _costs_equal_the_ledger(ctx):
    today = utc_today()
    fake = ctx.fake()
    ce = CeExporter(ctx, fake, "ledger-%d" % len(ctx.fakes))
    m = ce.exp.wait_ready()
    for s in SOURCES:
        eq(up(m, s), 1.0, "source_up{source=%r}" % s)
    ftoday, rows, projects, alloc = fake_world(fake)
    eq(ftoday, today, "the fake's today (UTC)")
    est_days = fake.call("GET", "/_fake/config")["estimated_days"]

    # per project, per tag value, per model: every series, and nothing else
    want, amb = expected_costs(rows, projects, alloc, KEYS2, TAG_LABELS, today)
    assert_close(cost_series(m), want, "cost series vs the ledger")
    eq(amb, {}, "ambiguous combinations in the seed")
    eq(ambiguous_series(m), {}, "bedrock_cost_attribution_ambiguous series")

    # the totals: Bedrock only; EC2 and Lambda rows carry CustomerChatbot-Prod's tags
    ms = month_start(today)
    mtd = [r for r in rows if ms <= datetime.date.fromisoformat(r["date"]) <= today]
    bedrock = sum((D(r["cost"]) for r in mtd if is_bedrock(r)), D(0))
    other = [r for r in mtd if not is_bedrock(r)]
    check({r["service"] for r in other} >= {"AWS Lambda",
                                            "Amazon Elastic Compute Cloud - Compute"},
          "the seed lost its non-Bedrock rows: %r" % sorted({r["service"] for r in other}))
    other_sum = sum((D(r["cost"]) for r in other), D(0))
    check(other_sum > 1, "non-Bedrock month-to-date spend is only $%s" % other_sum)
    got_total = sum(s.value for s in m.find(PROJECT_FAMILY["month_to_date"]))
    check(abs(D(repr(got_total)) - bedrock) <= D("0.005"),
          "sum(bedrock_cost_project_month_to_date_usd) = %r, ledger's Bedrock month to date "
          "= %s (with EC2/Lambda it would be %s)" % (got_total, bedrock, bedrock + other_sum))
    for w in TAG_FAMILY:
        for k in TAG_LABELS:
            tot = sum(s.value for s in m.find(TAG_FAMILY[w], tag_key=k))
            ptot = sum(s.value for s in m.find(PROJECT_FAMILY[w]))
            check(abs(tot - ptot) <= CENT_HALF, "%s{tag_key=%r} sums to %r, projects to %r"
                  % (TAG_FAMILY[w], k, tot, ptot))
    prod = [p for p in projects if p["name"] == "CustomerChatbot-Prod"][0]
    prod_tags = prod["tags"]
    prod_bedrock = sum((D(r["cost"]) for r in mtd if is_bedrock(r) and
                        all(r["tags"].get(k) == prod_tags[k] for k in KEYS2)), D(0))
    prod_other = sum((D(r["cost"]) for r in other if
                      all(r["tags"].get(k) == prod_tags[k] for k in KEYS2)), D(0))
    check(prod_other > 1, "the seed's EC2/Lambda rows no longer carry CustomerChatbot-Prod's "
          "tags")
    got_prod = m.value(PROJECT_FAMILY["month_to_date"], project_id=prod["id"])
    check(abs(D(repr(got_prod)) - prod_bedrock) <= D("0.005"),
          "CustomerChatbot-Prod month to date %r, Bedrock-only ledger %s (its EC2/Lambda: %s)"
          % (got_prod, prod_bedrock, prod_other))
    for s in m.find(MODEL_FAMILY["month_to_date"]):
        check(s.labels["service"] in BEDROCK_SERVICES,
              "per-model series of a non-Bedrock service: %r" % s.labels)

    # forecast: spend of this month before today + the fake's GetCostForecast formula
    week = sum((D(r["cost"]) for r in rows if is_bedrock(r) and
                day(today, -7) <= datetime.date.fromisoformat(r["date"]) <= day(today, -1)),
               D(0))
    days_left = (next_month_start(today) - today).days
    before_today = sum((D(r["cost"]) for r in mtd if is_bedrock(r) and
                        datetime.date.fromisoformat(r["date"]) < today), D(0))
    for name, factor in (("bedrock_cost_month_forecast_usd", D(1)),
                         ("bedrock_cost_month_forecast_lower_usd", D("0.85")),
                         ("bedrock_cost_month_forecast_upper_usd", D("1.15"))):
        want_f = before_today + week * days_left * factor / 7
        got_f = m.value(name)
        check(abs(D(repr(got_f)) - want_f) <= D("0.01"),
              "%s = %r, expected %s (actual before today %s + forecast of %d days)"
              % (name, got_f, want_f, before_today, days_left))

    # allocation tags, budgets, windows
    eq({s.labels["tag_key"]: s.value for s in m.find("bedrock_cost_allocation_tag_active")},
       {"Application": 1.0, "Environment": 1.0, "Team": 1.0, "CostCenter": 0.0},
       "bedrock_cost_allocation_tag_active")
    eq({s.labels["project_id"]: s.value
        for s in m.find("bedrock_cost_project_budget_monthly_usd")}, {prod["id"]: 500.0},
       "bedrock_cost_project_budget_monthly_usd")
    eq({(s.labels["tag_key"], s.labels["tag_value"]): s.value
        for s in m.find("bedrock_cost_tag_budget_monthly_usd")},
       {("Team", "DataScience"): 2000.0}, "bedrock_cost_tag_budget_monthly_usd")
    win = windows(today)
    eq({s.labels["window"]: s.value
        for s in m.find("bedrock_cost_window_start_timestamp_seconds")},
       {w: midnight(s) for w, (s, _) in win.items()}, "bedrock_cost_window_start_timestamp_seconds")
    first_est = day(today, -(est_days - 1))
    want_est = {w: 1.0 if w == "today" or e > first_est else 0.0 for w, (s, e) in win.items()}
    eq({s.labels["window"]: s.value for s in m.find("bedrock_cost_window_estimated")},
       want_est, "bedrock_cost_window_estimated (the fake estimates %d days)" % est_days)
    for fam in COST_FAMILIES | {"bedrock_cost_month_forecast_usd",
                                "bedrock_cost_window_estimated",
                                "bedrock_cost_allocation_tag_active"}:
        eq(m.types.get(fam), "gauge", "TYPE of %s" % fam)
        check(m.helps.get(fam), "no HELP for %s" % fam)
    for fam in ("bedrock_cost_exporter_cost_explorer_billable_requests_total",
                "bedrock_cost_exporter_cost_explorer_spend_usd_total"):
        eq(m.types.get(fam), "counter", "TYPE of %s" % fam)
    ctx.notes.append("checked %d cost series against %d ledger rows (Bedrock month to date "
                     "$%.2f, non-Bedrock excluded $%.2f)"
                     % (len(want), len(rows), bedrock, other_sum))


# ---------------------------------------------------------------------------
# 2. ambiguous and one-key attribution
# ---------------------------------------------------------------------------

def test_ce_attribution_ambiguous_and_one_key(ctx):
    guard_utc_midnight(ctx, lambda: _attribution_ambiguous(ctx))


def _attribution_ambiguous(ctx):
    today = utc_today()
    fake = ctx.fake()
    n = len(ctx.fakes)
    # one attribution key: CustomerChatbot-Prod and -Dev share Application=CustomerChatbot
    one = CeExporter(ctx, fake, "one-key-%d" % n, ce={"attribution_tags": ["Application"]})
    m1 = one.exp.wait_ready()
    _, rows, projects, alloc = fake_world(fake)
    want1, amb1 = expected_costs(rows, projects, alloc, ("Application",), TAG_LABELS, today)
    eq(amb1, {"Application=CustomerChatbot": 2}, "ambiguous combinations (model, one key)")
    assert_close(cost_series(m1), want1, "cost series with attribution_tags = [Application]")
    eq(ambiguous_series(m1), {"Application=CustomerChatbot": 2.0},
       "bedrock_cost_attribution_ambiguous with one key")
    check(m1.value(PROJECT_FAMILY["month_to_date"], project_id="__ambiguous__") > 0,
          "no __ambiguous__ spend with one key")
    # LegacyBot spend shows under its Application value, its Environment is not a key now
    check(m1.value(TAG_FAMILY["month_to_date"], tag_key="Application", tag_value="LegacyBot")
          > 0, "LegacyBot spend not under tag_value=LegacyBot")

    # two keys, but a second project with CustomerChatbot-Prod's Application+Environment
    use1 = fake.projects("us-east-1")
    shadow = {"name": "CustomerChatbot-Prod-Shadow",
              "tags": {"Application": "CustomerChatbot", "Environment": "Production",
                       "Team": "Platform"}}
    fake.put_projects("us-east-1", use1 + [shadow])
    two = CeExporter(ctx, fake, "two-keys-%d" % n)
    m2 = two.exp.wait_ready()
    _, rows, projects, alloc = fake_world(fake)
    want2, amb2 = expected_costs(rows, projects, alloc, KEYS2, TAG_LABELS, today)
    value = "Application=CustomerChatbot,Environment=Production"
    eq(amb2, {value: 2}, "ambiguous combinations (model, two keys)")
    assert_close(cost_series(m2), want2, "cost series with a shared Application+Environment")
    eq(ambiguous_series(m2), {value: 2.0}, "bedrock_cost_attribution_ambiguous with two keys")
    prod = [p for p in projects if p["name"] == "CustomerChatbot-Prod"][0]
    shadow_id = [p for p in projects if p["name"] == shadow["name"]][0]["id"]
    for pid in (prod["id"], shadow_id):
        eq(m2.value(PROJECT_FAMILY["month_to_date"], project_id=pid), 0.0,
           "month to date of %s (its spend is ambiguous)" % pid)
    ms = month_start(today)
    prod_mtd = sum((D(r["cost"]) for r in rows if is_bedrock(r) and
                    ms <= datetime.date.fromisoformat(r["date"]) <= today and
                    all(r["tags"].get(k) == prod["tags"][k] for k in KEYS2)), D(0))
    got = m2.value(PROJECT_FAMILY["month_to_date"], project_id="__ambiguous__")
    check(abs(D(repr(got)) - prod_mtd) <= D("0.005"),
          "__ambiguous__ month to date %r, CustomerChatbot-Prod's ledger spend %s"
          % (got, prod_mtd))
    total = sum(s.value for s in m2.find(PROJECT_FAMILY["month_to_date"]))
    bedrock = sum((D(r["cost"]) for r in rows if is_bedrock(r) and
                   ms <= datetime.date.fromisoformat(r["date"]) <= today), D(0))
    check(abs(D(repr(total)) - bedrock) <= D("0.005"),
          "sum of month to date %r vs Bedrock total %s" % (total, bedrock))


# ---------------------------------------------------------------------------
# 3. what the exporter itself costs
# ---------------------------------------------------------------------------

def _ce_requests_after(fake, seq):
    return [e for e in req_log(fake) if e["seq"] > seq and e.get("operation")]


def _query_kind(req, today):
    """Which query of the plan (src/sources/cost_explorer.c) @req is."""
    types = [g.get("Type") for g in req.get("GroupBy") or []]
    if not (types and all(t == "TAG" for t in types)):
        return "models"
    start = datetime.date.fromisoformat(req["TimePeriod"]["Start"])
    if req["Granularity"] == "DAILY":
        return "daily"
    if start == day(today, -8):
        return "baseline"
    if start == month_start(today):
        return "month"
    return "previous"


def _plan(today):
    """The query plan: (Granularity, Start, End) of each query on @today."""
    return {"daily": ("DAILY", day(today, -1), day(today, 1)),
            "baseline": ("MONTHLY", day(today, -8), day(today, -1)),
            "month": ("MONTHLY", month_start(today), day(today, 1)),
            "previous": ("MONTHLY", prev_month_start(today), month_start(today)),
            "models": ("DAILY", min(month_start(today), day(today, -1)), day(today, 1))}


def test_ce_request_budget(ctx):
    guard_utc_midnight(ctx, lambda: _request_budget(ctx))


def _request_budget(ctx):
    today = utc_today()
    plan = _plan(today)
    fake = ctx.fake()
    ce = CeExporter(ctx, fake, "budget-%d" % len(ctx.fakes), ce={"refresh_interval": 10})
    m1 = ce.exp.wait_ready()
    first = dict(counters(fake)["by_operation"])
    n_first = sum(first.values())
    eq(ce_total(fake), n_first, "the fake's ce total vs by_operation")
    eq(first.get("GetDimensionValues"), 1, "GetDimensionValues in the first refresh")
    eq(first.get("ListCostAllocationTags"), 1, "ListCostAllocationTags in the first refresh")
    eq(first.get("GetCostForecast"), 1, "GetCostForecast in the first refresh")
    eq(m1.value("bedrock_cost_exporter_cost_explorer_billable_requests_total"),
       float(n_first), "billable_requests_total after the first refresh")
    log1 = _ce_requests_after(fake, 0)
    kinds = []
    for e in log1:
        if e["operation"] != "GetCostAndUsage":
            continue
        req = e["request"]
        kind = _query_kind(req, today)
        if not req.get("NextPageToken"):
            kinds.append(kind)
        gran, start, end = plan[kind]
        eq((req["Granularity"], req["TimePeriod"]["Start"], req["TimePeriod"]["End"]),
           (gran, start.isoformat(), end.isoformat()), "first refresh: the %s query" % kind)
        eq(sorted(req["Filter"]["Dimensions"]["Values"]), BEDROCK_SERVICES,
           "SERVICE filter (discovered Bedrock services)")
    # the windows that matter most first: the spike alert's today, yesterday and baseline
    eq(kinds, ["daily", "baseline", "month", "previous", "models"],
       "first refresh: the queries, in order")
    fc = [e["request"] for e in log1 if e["operation"] == "GetCostForecast"][0]
    eq((fc["TimePeriod"]["Start"], fc["TimePeriod"]["End"]),
       (today.isoformat(), next_month_start(today).isoformat()), "forecast TimePeriod")
    seq = last_seq(fake)

    # the next refresh comes by itself, refresh_interval (10 s, +-10%) later
    m2 = ce.wait_cost_attempt(attempt(m1, "cost_explorer"), 30, "the second cost refresh")
    eq(up(m2, "cost_explorer"), 1.0, "source_up after the incremental refresh")
    eq(up(m2, "forecast"), 1.0, "forecast source_up after the incremental refresh")
    gap = attempt(m2, "cost_explorer") - attempt(m1, "cost_explorer")
    check(8.0 <= gap <= 20.0, "second cost refresh came %.1fs after the first "
          "(refresh_interval 10 +-10%%)" % gap)
    log2 = _ce_requests_after(fake, seq)
    second = {}
    for e in log2:
        second[e["operation"]] = second.get(e["operation"], 0) + 1
    n_second = sum(second.values())
    check(n_second < n_first, "incremental refresh took %d requests, the first %d"
          % (n_second, n_first))
    check("GetDimensionValues" not in second and "ListCostAllocationTags" not in second,
          "discovery or allocation tags again within a day: %r" % second)
    check("GetCostForecast" not in second, "a second forecast the same UTC day: %r" % second)
    eq(m2.value("bedrock_cost_month_forecast_usd"), m1.value("bedrock_cost_month_forecast_usd"),
       "the forecast after a refresh the same day (the data did not change)")
    est_days = fake.call("GET", "/_fake/config")["estimated_days"]
    reread_from = min(day(today, -SETTLE_DAYS), day(today, -(est_days - 1)))
    kinds2 = []
    for e in log2:
        if e["operation"] != "GetCostAndUsage":
            continue
        req = e["request"]
        kind = _query_kind(req, today)
        if not req.get("NextPageToken"):
            kinds2.append(kind)
        gran, start, end = plan[kind]
        if kind == "models":       # re-read from the first day that can still change
            start = max(start, reread_from)
        eq((req["Granularity"], req["TimePeriod"]["Start"], req["TimePeriod"]["End"]),
           (gran, start.isoformat(), end.isoformat()), "incremental refresh: the %s query"
           % kind)
    # the baseline is read once a UTC day, the previous month once a day until final
    eq(kinds2, ["daily", "month", "models"], "queries of the incremental refresh")
    assert_same_values(cost_series(m2), cost_series(m1),
                       "cost series after the incremental refresh", tol=1e-6)

    total = ce_total(fake)
    eq(total, n_first + n_second, "the fake's ce total")
    eq(m2.value("bedrock_cost_exporter_cost_explorer_billable_requests_total"), float(total),
       "billable_requests_total vs the fake's ce total")
    check(abs(m2.value("bedrock_cost_exporter_cost_explorer_spend_usd_total") - 0.01 * total)
          < 1e-9, "spend_usd_total %r for %d requests"
          % (m2.value("bedrock_cost_exporter_cost_explorer_spend_usd_total"), total))
    eq(m2.value("bedrock_cost_exporter_cost_explorer_requests_remaining_today"),
       float(DEFAULT_MAX_REQUESTS - total), "requests_remaining_today")
    eq(ce_requests(m2), {op: float(first.get(op, 0) + second.get(op, 0)) for op in CE_OPS},
       "api_requests_total by operation vs the fake")

    # the default configuration: refresh_interval 21600 +-10% gives at most 5 refreshes a
    # day; discovery and allocation tags once a day
    per_day = n_first + 4 * n_second
    ctx.notes.append("first refresh: %d Cost Explorer requests %s" % (n_first, json.dumps(
        dict(sorted(first.items())))))
    ctx.notes.append("incremental refresh: %d requests %s" % (n_second, json.dumps(
        dict(sorted(second.items())))))
    ctx.notes.append("default config, worst day: first + 4 x incremental = %d + 4 x %d = %d "
                     "requests ($%.2f), ceiling %d" % (n_first, n_second, per_day,
                                                       per_day * 0.01, DEFAULT_MAX_REQUESTS))
    check(per_day <= DEFAULT_MAX_REQUESTS, "a day with the default configuration would take "
          "%d requests, more than max_requests_per_day %d" % (per_day, DEFAULT_MAX_REQUESTS))


# ---------------------------------------------------------------------------
# 4. the ceiling is hard, and nothing paid for is lost
# ---------------------------------------------------------------------------

def test_ce_ceiling_is_hard(ctx):
    guard_utc_midnight(ctx, lambda: _ceiling_is_hard(ctx))


def _ceiling_is_hard(ctx):
    fake5, fake2 = ctx.fake(), ctx.fake()
    cut = CeExporter(ctx, fake5, "ceiling5", ce={"max_requests_per_day": 5})
    short = CeExporter(ctx, fake2, "ceiling2", ce={"max_requests_per_day": 2})
    # 5: discovery, then today and yesterday, the baseline, the month, the previous month;
    #    the per-model query is refused. 2: discovery and the daily query only.
    for ce, fake, limit, served, missing in (
            (cut, fake5, 5, ("today", "yesterday", "baseline", "month_to_date",
                             "previous_month"), ()),
            (short, fake2, 2, ("today", "yesterday"),
             ("baseline", "month_to_date", "previous_month"))):
        exp = ce.exp
        m = wait_for(lambda: (lambda e: e and attempt(e, "cost_explorer") > 0 and
                                attempt(e, "allocation_tags") > 0 and e)(exp.quick()),
                       40, "the cost and allocation tag attempts (limit %d)" % limit)
        m = exp.scrape()
        what = "max_requests_per_day=%d" % limit
        eq(up(m, "cost_explorer"), 0.0, "%s: source_up{cost_explorer}" % what)
        eq(ce_total(fake), limit, "%s: the fake saw every request the ceiling allows" % what)
        eq(m.value("bedrock_cost_exporter_cost_explorer_billable_requests_total"), float(limit),
           "%s: billable_requests_total vs the fake" % what)
        eq(m.value("bedrock_cost_exporter_cost_explorer_requests_remaining_today"), 0.0,
           "%s: requests_remaining_today" % what)
        # what was paid for is served; what is missing has no series (not a wrong 0)
        for w in served:
            check(m.has(PROJECT_FAMILY[w]), "%s: no %s series although it was read" % (what, w))
        for w in missing:
            check(not m.has(PROJECT_FAMILY[w]), "%s: %s series although it was not read"
                  % (what, w))
        w = ce_warns(exp)
        eq(len(w), 1, "%s: warn lines for the cost_explorer source" % what)
        err = w[0].get("error", "")
        check("max_requests_per_day" in err and "still to read" in err and
              "the per-model spend" in err and all(x in err for x in missing),
              "%s: the warn line does not say what is still missing: %r" % (what, err))
        st, _, page = exp.get("/")
        check(st == 200 and b"still to read" in page, "%s: the landing page does not say "
              "what is still missing" % what)
        eq(exp.get("/-/healthy")[0], 200, "%s: /-/healthy" % what)
        eq(exp.get("/-/ready")[0], 503, "%s: /-/ready until the fill is complete" % what)
    check(cut.exp.alive() and short.exp.alive(), "an exporter died")

    # SIGHUP that raises the ceiling resumes at once, and asks only for what is missing
    seq = last_seq(fake2)
    m0 = short.exp.quick()
    short.groups["cost_explorer"]["max_requests_per_day"] = 40
    short.write()
    short.exp.send(signal.SIGHUP)
    m1 = wait_for(lambda: (lambda e: e and up(e, "cost_explorer") == 1.0 and e)(
        short.exp.quick()), 20, "cost_explorer up after a SIGHUP that raised the ceiling")
    check(attempt(m1, "cost_explorer") > attempt(m0, "cost_explorer"), "no attempt after SIGHUP")
    kinds = [_query_kind(e["request"], utc_today()) for e in _ce_requests_after(fake2, seq)
             if e["operation"] == "GetCostAndUsage" and not e["request"].get("NextPageToken")]
    eq(kinds, ["daily", "baseline", "month", "previous", "models"],
       "the queries after the SIGHUP: what was missing, in order (and today again)")
    eq(short.exp.get("/-/ready")[0], 200, "/-/ready once the fill is complete")


def test_ce_fill_goes_on_where_it_stopped(ctx):
    guard_utc_midnight(ctx, lambda: _fill_goes_on(ctx))


def _fill_goes_on(ctx):
    """A query cut short by the ceiling keeps its pages, in memory and in the state file: after
    a restart (and a raised ceiling) it asks for the next page, not the first one again."""
    fake = ctx.fake("--ce-page-size", "2")   # the daily query takes several pages
    ce = CeExporter(ctx, fake, "resume", ce={"max_requests_per_day": 3})
    exp = ce.exp
    wait_for(lambda: (lambda e: e and attempt(e, "cost_explorer") > 0)(exp.quick()), 40,
             "the first cost attempt")
    log = [e for e in _ce_requests_after(fake, 0) if e["operation"] == "GetCostAndUsage"]
    eq(len(log), 2, "GetCostAndUsage pages before the ceiling (discovery took 1 of 3)")
    check(not log[0]["request"].get("NextPageToken") and log[1]["request"].get("NextPageToken"),
          "pages 1 and 2 of the daily query")
    rc, _ = exp.stop()
    eq(rc, 0, "exit code on SIGTERM")
    with open(ce.state, encoding="utf-8") as fh:
        state = json.load(fh)
    partial = state["spend_queries"]["daily"].get("partial")
    check(partial and partial.get("token") and partial.get("pages") == 2,
          "the state file keeps the daily query's two pages and its next token: %r" % partial)
    seq = last_seq(fake)
    ce.groups["cost_explorer"]["max_requests_per_day"] = 200
    ce.write()
    exp = ce.start()
    m = exp.wait_ready(60)
    eq(up(m, "cost_explorer"), 1.0, "source_up once the fill is complete")
    after = [e for e in _ce_requests_after(fake, seq) if e["operation"] == "GetCostAndUsage"]
    first_daily = [e for e in after if _query_kind(e["request"], utc_today()) == "daily"][0]
    eq(first_daily["request"].get("NextPageToken"), partial["token"],
       "after the restart the daily query goes on from page 3")
    # and what the two runs read together is every series of the ledger
    ftoday, rows, projects, alloc = fake_world(fake)
    want, _ = expected_costs(rows, projects, alloc, KEYS2, TAG_LABELS, ftoday)
    assert_close(cost_series(m), want, "cost series after a fill that went on after a restart")


# ---------------------------------------------------------------------------
# 5. state file
# ---------------------------------------------------------------------------

STATE_FAMILIES = COST_FAMILIES | {"bedrock_cost_month_forecast_usd",
                                  "bedrock_cost_month_forecast_lower_usd",
                                  "bedrock_cost_month_forecast_upper_usd",
                                  "bedrock_cost_window_estimated",
                                  "bedrock_cost_window_start_timestamp_seconds",
                                  "bedrock_cost_allocation_tag_active",
                                  "bedrock_cost_project_budget_monthly_usd",
                                  "bedrock_cost_tag_budget_monthly_usd"}


def test_ce_restart_with_state_file_is_free(ctx):
    guard_utc_midnight(ctx, lambda: _restart_with_state(ctx))


def _restart_with_state(ctx):
    fake = ctx.fake()
    ce = CeExporter(ctx, fake, "state-%d" % len(ctx.fakes))
    m0 = ce.exp.wait_ready()
    used = ce_total(fake)
    before = {key_of(s): s.value for s in m0.samples if s.name in STATE_FAMILIES}
    check(len(before) > 50, "too few cost series before the restart: %d" % len(before))
    rc, _ = ce.exp.stop()
    eq(rc, 0, "exit code on SIGTERM")
    check(os.path.exists(ce.state), "no state file at %s" % ce.state)
    fake.reset_requests()

    exp = ce.start()
    wait_for(lambda: exp.get("/-/ready")[0] == 200, 10, "/-/ready after the restart")
    eq(ce_total(fake), 0, "Cost Explorer requests before the restarted exporter was ready")
    m1 = exp.scrape()
    assert_same_values({key_of(s): s.value for s in m1.samples if s.name in STATE_FAMILIES},
                       before, "cost metrics restored from the state file", tol=1e-9)
    eq(m1.value("bedrock_cost_exporter_cost_explorer_billable_requests_total"), 0.0,
       "billable_requests_total of the new process")
    eq(m1.value("bedrock_cost_exporter_cost_explorer_requests_remaining_today"),
       float(DEFAULT_MAX_REQUESTS - used), "requests_remaining_today carried over")
    check(exp.logs("state restored", "info"), "no 'state restored' log line")
    # a whole poller cycle (the projects listing) later, still nothing asked of Cost Explorer
    wait_for(lambda: (lambda e: e and attempt(e, "projects") > 0)(exp.quick()), 20,
             "the first projects listing after the restart")
    m2 = exp.scrape()
    eq(ce_total(fake), 0, "Cost Explorer requests after the first poller cycle")
    assert_same_values({key_of(s): s.value for s in m2.samples if s.name in COST_FAMILIES},
                       {k: v for k, v in before.items() if k[0] in COST_FAMILIES},
                       "cost metrics after re-listing the projects", tol=1e-9)
    # a reload that changes nothing Cost Explorer depends on lists the projects again, and
    # asks Cost Explorer nothing
    prev = m2.reload_ts()
    ce.groups["projects"]["refresh_interval"] = 3601
    ce.write()
    exp.send(signal.SIGHUP)
    wait_for(lambda: (lambda e: e and e.reload_ts() > prev and
                      attempt(e, "projects") > e.reload_ts())(exp.quick()), 20,
             "the projects listing after a reload")
    m3 = exp.scrape()
    eq(m3.reload_ok(), 1.0, "config_last_reload_successful")
    eq(ce_total(fake), 0, "Cost Explorer requests after a reload without a CE change")
    eq(attempt(m3, "cost_explorer"), attempt(m2, "cost_explorer"),
       "last_attempt{cost_explorer} after a reload without a CE change")
    for s in ("cost_explorer", "forecast", "allocation_tags"):
        # the state keeps when the data was queried: between the attempt and its success
        check(attempt(m0, s) - 1 <= success(m2, s) <= success(m0, s),
              "last_success{source=%r} restored as %r; the refresh ran from %r to %r"
              % (s, success(m2, s), attempt(m0, s), success(m0, s)))
    # The restored sources serve data from a successful refresh and are ready: they are up
    # (README: source_up is 1 if the source's last refresh succeeded). Otherwise every
    # restart shows the sources down, and alerts on source_up fire, until the next
    # scheduled refresh (6 h by default).
    down = {s: up(m2, s) for s in ("cost_explorer", "forecast", "allocation_tags")
            if up(m2, s) != 1}
    check(not down, "after a restart from the state file (ready, data served, last_success "
          "restored) source_up is still 0 for %s" % sorted(down))


def test_ce_state_from_the_future_is_queried_again(ctx):
    """Cost data dated after now (the clock was set back) is not served as fresh, and the log
    says why, not that the configuration changed."""
    fake = ctx.fake()
    ce = CeExporter(ctx, fake, "future")
    ce.exp.wait_ready()
    rc, _ = ce.exp.stop()
    eq(rc, 0, "exit code on SIGTERM")
    with open(ce.state, encoding="utf-8") as fh:
        state = json.load(fh)
    state["costs_at"] = time.time() + 10 * 86400
    with open(ce.state, "w", encoding="utf-8") as fh:
        json.dump(state, fh)
    fake.reset_requests()
    exp = ce.start()
    exp.wait_ready()
    w = exp.logs("state file's cost data is dated in the future (was the clock set back?); "
                 "querying again", "warn")
    eq(len(w), 1, "warn lines about cost data from the future")
    eq(exp.logs("state file's cost data was queried with another configuration; querying again"),
       [], "'queried with another configuration' lines (the configuration did not change)")
    check(ce_requests(exp.scrape())["GetCostAndUsage"] > 0,
          "no GetCostAndUsage after restoring cost data from the future")


def test_ce_corrupt_state_file_is_ignored(ctx):
    fake = ctx.fake()
    cases = (("garbage", "\x00not json {{{ \xff", "not valid JSON"),
             ("other-format", json.dumps({"format": "prometheus-snapshot", "version": 1,
                                          "costs_at": time.time()}),
              "not a bedrock-cost-exporter state file"),
             ("other-version", json.dumps({"format": "bedrock-cost-exporter-state",
                                           "version": 999}), "version"))
    started = []
    for name, text, err in cases:
        ce = CeExporter(ctx, fake, "corrupt-" + name, start=False)
        with open(ce.state, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(text)
        ce.start()
        started.append((ce, err))
    for ce, err in started:
        m = ce.exp.wait_ready()
        w = ce.exp.logs("state file ignored; starting afresh", "warn")
        eq(len(w), 1, "%s: warn lines about the state file" % ce.name)
        check(err in w[0].get("error", ""), "%s: warn line %r does not say %r"
              % (ce.name, w[0], err))
        eq(up(m, "cost_explorer"), 1.0, "%s: source_up{cost_explorer}" % ce.name)
        check(ce_requests(m)["GetCostAndUsage"] > 0, "%s: no GetCostAndUsage" % ce.name)
        check(m.has(PROJECT_FAMILY["month_to_date"]), "%s: no cost series" % ce.name)
        with open(ce.state, encoding="utf-8") as fh:
            eq(json.load(fh).get("format"), "bedrock-cost-exporter-state",
               "%s: state file rewritten after the refresh" % ce.name)


# ---------------------------------------------------------------------------
# 6. Cost Explorer faults keep the last good data
# ---------------------------------------------------------------------------

FAULT_HTTP = {"connect_timeout": 1, "request_timeout": 2, "max_retries": 1,
              "retry_max_delay": 1}
FAULT_MAX_PAGES = 12


class CeFault:
    def __init__(self, name, fault, reason, attempts, error_has, per_request=True,
                 timer_repeat=False):
        self.name, self.fault, self.reason = name, fault, reason
        self.attempts = attempts            # HTTP attempts of the failing query per refresh
        self.error_has = error_has          # in the warn line's error=
        self.per_request = per_request      # one error per faulted request (not for loop)
        self.timer_repeat = timer_repeat    # also wait for the timer's retry (no SIGHUP)


RETRIES = FAULT_HTTP["max_retries"] + 1
CE_FAULT_GROUPS = {
    "throttle_auth": [
        CeFault("throttle", {"kind": "throttle"}, "throttled", RETRIES,
                "LimitExceededException", timer_repeat=True),
        CeFault("auth", {"kind": "auth"}, "auth", 1, "UnrecognizedClientException")],
    "server_client": [
        CeFault("server_error", {"kind": "server_error", "status": 500}, "server", RETRIES,
                "InternalServerException"),
        CeFault("data_unavailable", {"kind": "data_unavailable"}, "client", 1,
                "DataUnavailableException")],
    "parse": [
        CeFault("malformed", {"kind": "malformed"}, "parse", 1, "not valid JSON"),
        CeFault("wrong_types_amount", {"kind": "wrong_types", "field": "amount"}, "parse", 1,
                "Amount"),
        CeFault("wrong_types_unit", {"kind": "wrong_types", "field": "unit"}, "parse", 1,
                "EUR")],
    "loop_timeouts": [
        CeFault("loop", {"kind": "loop"}, "parse", 1, "pag", per_request=False),
        CeFault("hang", {"kind": "hang", "seconds": 30}, "timeout", RETRIES, "timeout"),
        CeFault("slow", {"kind": "slow", "seconds": 4}, "timeout", RETRIES, "timeout")],
}


def _gcu_after(fake, seq):
    """GetCostAndUsage requests after @seq. The fake fills in a log entry's operation when it
    answers, so a request still hanging has none yet; only GetCostAndUsage is faulted here."""
    return [e for e in req_log(fake) if e["seq"] > seq and
            e.get("operation", "GetCostAndUsage") == "GetCostAndUsage"]


def run_ce_faults(ctx, group):
    fake = ctx.fake()
    ce = CeExporter(ctx, fake, "faults-" + group, http=FAULT_HTTP,
                    ce={"refresh_interval": 10, "max_requests_per_day": 1000,
                        "max_pages": FAULT_MAX_PAGES})
    m = ce.exp.wait_ready()
    base = cost_series(m)
    check(base, "no cost series before the faults")
    for case in CE_FAULT_GROUPS[group]:
        m = _one_ce_fault(ctx, fake, ce, case, base, m)


def _one_ce_fault(ctx, fake, ce, case, base, m0):
    exp, what = ce.exp, case.name
    warns0 = len(ce_warns(exp))
    rec0 = len(exp.logs("source recovered", "info", source="cost_explorer"))
    err0, retr0 = ce_errors(m0), ce_retries(m0)
    seq = last_seq(fake)
    fake.fault(surface="ce", operation="GetCostAndUsage", count=-1, **case.fault)
    m1 = ce.hup_costs()
    check(exp.alive(), "%s: exporter died" % what)
    eq(up(m1, "cost_explorer"), 0.0, "%s: source_up{cost_explorer}" % what)
    eq(up(m1, "forecast"), 1.0, "%s: source_up{forecast} (not faulted)" % what)
    eq(exp.get("/-/ready")[0], 200, "%s: /-/ready (it had data)" % what)
    assert_same_values(cost_series(m1), base, "%s: cost series during the fault" % what, 0)
    eq(success(m1, "cost_explorer"), success(m0, "cost_explorer"),
       "%s: last_success during the fault" % what)
    w = ce_warns(exp)
    eq(len(w) - warns0, 1, "%s: new warn lines" % what)
    check(case.error_has in w[-1].get("error", ""), "%s: warn error=%r does not contain %r"
          % (what, w[-1].get("error"), case.error_has))

    def moved():
        e = exp.quick()
        if e is None:
            return None
        faulted = len(_gcu_after(fake, seq))
        d = {r: v - err0[r] for r, v in ce_errors(e).items()}
        return e, d, faulted, ce_retries(e) - retr0
    e, d, faulted, dretr = moved()
    if case.per_request:
        # every faulted request is one failed attempt of the exporter (converges once no
        # refresh is in flight)
        e, d, faulted, dretr = wait_for(lambda: (lambda r: r if r and r[1][case.reason] ==
                                                 r[2] else None)(moved()), 20,
                                        "%s: errors{reason=%s} to equal the faulted requests"
                                        % (what, case.reason))
        check(d[case.reason] > 0 and d[case.reason] % case.attempts == 0,
              "%s: %r errors, not a multiple of %d attempts per refresh"
              % (what, d[case.reason], case.attempts))
        eq(dretr, d[case.reason] // case.attempts * (case.attempts - 1),
           "%s: retries moved by" % what)
    else:
        check(d[case.reason] >= 1, "%s: errors{reason=%s} did not move" % (what, case.reason))
        check(faulted <= FAULT_MAX_PAGES * d[case.reason],
              "%s: %d GetCostAndUsage pages for %d failed refreshes (max_pages %d)"
              % (what, faulted, d[case.reason], FAULT_MAX_PAGES))
        eq(dretr, 0.0, "%s: retries moved by" % what)
    eq({r: v for r, v in d.items() if r != case.reason},
       {r: 0.0 for r in R.REASONS if r != case.reason}, "%s: other error reasons" % what)

    if case.timer_repeat:
        # no SIGHUP: the schedule tries again min(refresh_interval, 900 s) later
        t1 = attempt(m1, "cost_explorer")
        m2 = ce.wait_cost_attempt(t1, 25, "%s: the timer's retry after a failure" % what)
        gap = attempt(m2, "cost_explorer") - t1
        check(8.0 <= gap <= 20.0, "%s: retry came %.1fs after the failed refresh "
              "(refresh_interval 10)" % (what, gap))
        eq(up(m2, "cost_explorer"), 0.0, "%s: source_up after the timer's retry" % what)
        check(ce_errors(m2)[case.reason] > ce_errors(m1)[case.reason],
              "%s: the timer's retry did not fail again" % what)
        eq(len(ce_warns(exp)) - warns0, 1, "%s: warn lines after failing twice (log once)"
           % what)
        check(exp.logs("source still failing", "debug", source="cost_explorer"),
              "%s: no debug 'still failing' line" % what)
        assert_same_values(cost_series(m2), base, "%s: cost series after failing twice"
                           % what, 0)

    fake.call("DELETE", "/_fake/faults")
    m3 = ce.hup_costs()
    eq(up(m3, "cost_explorer"), 1.0, "%s: source_up after the fault was cleared" % what)
    check(success(m3, "cost_explorer") > success(m0, "cost_explorer"),
          "%s: last_success did not advance on recovery" % what)
    assert_same_values(cost_series(m3), base, "%s: cost series after recovery" % what, 1e-6)
    eq(len(exp.logs("source recovered", "info", source="cost_explorer")) - rec0, 1,
       "%s: info 'source recovered' lines" % what)
    eq(len(ce_warns(exp)) - warns0, 1, "%s: warn lines after recovery" % what)
    ctx.notes.append("%s: reason=%s, %d faulted GetCostAndUsage request(s), last good data "
                     "kept; logged: %s" % (what, case.reason, faulted, w[-1].get("error")))
    return m3


def _max_pages_is_a_cap(ctx):
    """A query longer than cost_explorer.max_pages fails (parse) after exactly that many
    pages, each billed, instead of paging on."""
    fake = ctx.fake("--ce-page-size", "2")     # the daily query needs more than 3 pages
    ce = CeExporter(ctx, fake, "max-pages", http=FAULT_HTTP, ce={"max_pages": 3})
    m = wait_for(lambda: (lambda e: e and attempt(e, "cost_explorer") > 0 and e)(
        ce.exp.quick()), 30, "the cost attempt with max_pages = 3")
    eq(up(m, "cost_explorer"), 0.0, "source_up with more pages than max_pages")
    eq(ce_errors(m)["parse"], 1.0, "GetCostAndUsage parse errors")
    eq(counters(fake)["by_operation"].get("GetCostAndUsage"), 3,
       "GetCostAndUsage pages sent with max_pages = 3")
    w = ce_warns(ce.exp)
    eq(len(w), 1, "warn lines")
    check("cost_explorer.max_pages" in w[0].get("error", ""), "warn line: %r" % w[0])


def _make_ce_fault_test(group):
    def fn(ctx):
        run_ce_faults(ctx, group)
        if group == "loop_timeouts":
            _max_pages_is_a_cap(ctx)
    fn.__name__ = "test_ce_fault_" + group
    return fn


# ---------------------------------------------------------------------------
# 7. the credential chain, end to end
# ---------------------------------------------------------------------------

def _unknown_static_pair():
    """Static keys for the fake that no exporter is given: an accepted request was then signed
    with temporary credentials the fake issued."""
    return ["--access-key-id", "AKIDUNUSED" + secrets.token_hex(5).upper(),
            "--secret-access-key", "unused/" + secrets.token_hex(12)]


def _ce_up(ce, what, timeout=40):
    m = ce.exp.wait_ready(timeout)
    eq(up(m, "cost_explorer"), 1.0, "%s: source_up{cost_explorer}" % what)
    return m


def _cred_source_logged(exp, source, what):
    got = [r.get("source") for r in exp.logs("AWS credentials obtained", "debug")]
    check(source in got, "%s: no 'AWS credentials obtained' source=%r line (got %r)"
          % (what, source, got))


def test_ce_creds_environment(ctx):
    token = "bce-it-session-" + secrets.token_hex(12)
    plain, withtok = ctx.fake(), ctx.fake("--session-token", token)
    a = CeExporter(ctx, plain, "env-plain", env=ce_env(ctx, STATIC_ENV))
    b = CeExporter(ctx, withtok, "env-token",
                   env=ce_env(ctx, dict(STATIC_ENV, AWS_SESSION_TOKEN=token)))
    for ce, fake, what in ((a, plain, "env keys"), (b, withtok, "env keys + session token")):
        _ce_up(ce, what)
        assert_ce_signed_by(fake, "static", what)
        _cred_source_logged(ce.exp, "environment", what)
    # the session token is really sent: without it the fake refuses (auth, not retried)
    c = CeExporter(ctx, withtok, "env-no-token", env=ce_env(ctx, STATIC_ENV))
    m = wait_for(lambda: (lambda e: e and attempt(e, "cost_explorer") > 0 and e)(
        c.exp.quick()), 30, "the cost attempt without the session token")
    eq(up(m, "cost_explorer"), 0.0, "source_up without the session token")
    check(ce_errors(m, "GetDimensionValues")["auth"] >= 1,
          "no auth error without the session token: %r" % ce_errors(m, "GetDimensionValues"))
    eq(ce_retries(m, "GetDimensionValues"), 0.0, "retries after an auth error")


def test_ce_creds_shared_file_and_profile(ctx):
    akid, secret = "AKIDPROFILE" + secrets.token_hex(4).upper(), "prof/" + secrets.token_hex(12)
    fake = ctx.fake("--access-key-id", akid, "--secret-access-key", secret)
    text = ("[default]\naws_access_key_id = AKIDWRONGDEFAULT\n"
            "aws_secret_access_key = wrong/default\n\n"
            "# the one to use\n[bce-it]\naws_access_key_id = %s\n"
            "aws_secret_access_key = %s\n" % (akid, secret))
    path = ctx.write("credentials", text)
    os.makedirs(os.path.join(ctx.dir, ".aws"), exist_ok=True)
    ctx.write(os.path.join(".aws", "credentials"), text)
    # AWS_SHARED_CREDENTIALS_FILE + aws.profile
    a = CeExporter(ctx, fake, "profile-conf",
                   env=ce_env(ctx, {"AWS_SHARED_CREDENTIALS_FILE": path}),
                   aws={"profile": "bce-it"})
    # ~/.aws/credentials (HOME is the test's directory) + AWS_PROFILE
    b = CeExporter(ctx, fake, "profile-env",
                   env=ce_env(ctx, {"AWS_PROFILE": "bce-it"},
                              drop=("AWS_SHARED_CREDENTIALS_FILE",)))
    # the default profile holds wrong keys: without a profile the chain must fail
    c = CeExporter(ctx, fake, "profile-default",
                   env=ce_env(ctx, {"AWS_SHARED_CREDENTIALS_FILE": path}))
    for ce, what in ((a, "aws.profile"), (b, "AWS_PROFILE and ~/.aws/credentials")):
        _ce_up(ce, what)
        _cred_source_logged(ce.exp, "shared credentials file", what)
    m = wait_for(lambda: (lambda e: e and attempt(e, "cost_explorer") > 0 and e)(
        c.exp.quick()), 30, "the cost attempt with the default profile")
    eq(up(m, "cost_explorer"), 0.0, "source_up with the [default] profile's wrong keys")
    check(ce_errors(m, "GetDimensionValues")["auth"] >= 1, "no auth error with wrong keys")
    eq(issued(fake), [], "temporary credentials issued")
    c_ce = counters(fake)
    eq(c_ce["auth"]["sigv4"], c_ce["total"], "SigV4 Cost Explorer requests")


def test_ce_creds_web_identity_and_sigv4_projects(ctx):
    wtoken = "bce-it-web-identity-" + secrets.token_hex(12)
    fake = ctx.fake("--web-identity-token", wtoken, *_unknown_static_pair())
    tokfile = ctx.write("web-identity-token", wtoken + "\n")
    env = ce_env(ctx, {"AWS_WEB_IDENTITY_TOKEN_FILE": tokfile, "AWS_ROLE_ARN": ROLE_ARN})
    ce = CeExporter(ctx, fake, "web-identity", env=env, projects={"auth": "sigv4"})
    m = _ce_up(ce, "web identity")
    eq(up(m, "projects"), 1.0, "source_up{projects} with projects.auth = sigv4")
    creds = assert_ce_signed_by(fake, "sts", "web identity")
    eq(len(creds), 1, "credential sets issued by STS")
    sts = counters(fake, "sts")
    eq(sts_actions(sts), {"AssumeRoleWithWebIdentity": 1}, "STS actions")
    entry = [e for e in req_log(fake, "sts") if e.get("operation")][0]
    eq(entry["params"].get("RoleArn"), ROLE_ARN, "RoleArn sent to STS")
    eq(entry["params"].get("WebIdentityToken"), "<masked>", "WebIdentityToken sent")
    eq(api_val(m, "api_requests_total", "sts", "AssumeRoleWithWebIdentity"), 1.0,
       "api_requests_total{sts,AssumeRoleWithWebIdentity}")
    pc = counters(fake, "projects")
    eq(pc["auth"].get("bearer", 0), 0, "bearer requests on the projects surface")
    check(pc["auth"].get("sigv4", 0) >= 2, "SigV4 project listings: %r" % pc["auth"])
    eq(pc["by_status"], {"200": pc["total"]}, "project listing statuses")
    R.assert_matches_fake(m, R.fake_inventory(fake))
    _cred_source_logged(ce.exp, "web identity", "web identity")


def test_ce_creds_container(ctx):
    ctoken = "bce-it-container-" + secrets.token_hex(12)
    fake = ctx.fake("--container-auth-token", ctoken, *_unknown_static_pair())
    env = ce_env(ctx, {"AWS_CONTAINER_CREDENTIALS_FULL_URI":
                       fake.endpoint("/container-credentials/v2/bce"),
                       "AWS_CONTAINER_AUTHORIZATION_TOKEN": ctoken})
    ce = CeExporter(ctx, fake, "container", env=env)
    m = _ce_up(ce, "container")
    creds = assert_ce_signed_by(fake, "container", "container")
    eq(len(creds), 1, "container credential sets issued")
    cc = counters(fake, "container")
    eq(cc["by_status"], {"200": cc["total"]}, "container endpoint statuses")
    check(api_val(m, "api_requests_total", "container", "GetCredentials") >= 1,
          "api_requests_total{container,GetCredentials}")
    _cred_source_logged(ce.exp, "container", "container")

    # short-lived credentials: fetched again before they are used expired
    short = ctx.fake("--container-auth-token", ctoken, "--credential-lifetime", "12",
                     *_unknown_static_pair())
    env2 = dict(env, AWS_CONTAINER_CREDENTIALS_FULL_URI=short.endpoint(
        "/container-credentials"))
    ce2 = CeExporter(ctx, short, "container-short", env=env2, ce={"refresh_interval": 10})
    m1 = _ce_up(ce2, "short-lived container credentials")
    m2 = ce2.wait_cost_attempt(attempt(m1, "cost_explorer"), 30,
                               "the second cost refresh with short-lived credentials")
    eq(up(m2, "cost_explorer"), 1.0, "source_up after the credentials expired")
    # every request accepted (none signed with an expired set), and a new set fetched
    creds = assert_ce_signed_by(short, "container", "short-lived container credentials")
    check(len(creds) >= 2, "short-lived credentials were not replaced: %r" % creds)
    check(ce2.exp.logs("AWS credentials arrive with less than 10 minutes to live; they are "
                       "fetched again halfway through", "warn"),
          "no warning about credentials that live less than the refresh margin")


def test_ce_creds_imds(ctx):
    fake = ctx.fake(*_unknown_static_pair())
    env = ce_env(ctx, drop=("AWS_EC2_METADATA_DISABLED",))
    ce = CeExporter(ctx, fake, "imds", env=env,
                    aws={"imds_enabled": True, "imds_endpoint": fake.endpoint("")})
    m = _ce_up(ce, "IMDSv2")
    creds = assert_ce_signed_by(fake, "imds", "IMDSv2")
    eq(len(creds), 1, "IMDS credential sets issued")
    ic = counters(fake, "imds")
    for op in ("GetToken", "ListRoles", "GetCredentials"):
        check(ic["by_operation"].get(op, 0) >= 1, "IMDS %s not called: %r" % (op, ic))
    eq(ic["auth"].get("none", 0), ic["by_operation"].get("GetToken", 0),
       "IMDS requests without a session token (only PUT /latest/api/token; no IMDSv1)")
    eq(ic["by_status"], {"200": ic["total"]}, "IMDS statuses")
    _cred_source_logged(ce.exp, "instance metadata", "IMDSv2")
    # AWS_EC2_METADATA_DISABLED=true wins over aws.imds_enabled
    off = ctx.fake()
    ce2 = CeExporter(ctx, off, "imds-disabled", env=ce_env(ctx),
                     aws={"imds_enabled": True, "imds_endpoint": off.endpoint("")})
    m2 = wait_for(lambda: (lambda e: e and attempt(e, "cost_explorer") > 0 and e)(
        ce2.exp.quick()), 30, "the cost attempt with IMDS disabled")
    eq(up(m2, "cost_explorer"), 0.0, "source_up with no credentials anywhere")
    eq(counters(off, "imds")["total"], 0, "IMDS requests with AWS_EC2_METADATA_DISABLED=true")
    eq(ce_total(off), 0, "Cost Explorer requests without credentials")
    w = ce_warns(ce2.exp)
    check(w and "credentials" in w[0].get("error", ""), "warn line: %r" % w)


def test_ce_creds_assume_role_external_id_and_expiry(ctx):
    ext = "bce-it-external-" + secrets.token_hex(6)
    fake = ctx.fake("--sts-external-id", ext)
    ce = CeExporter(ctx, fake, "assume-role", env=ce_env(ctx, STATIC_ENV),
                    aws={"role_arn": ROLE_ARN, "external_id": ext},
                    ce={"refresh_interval": 10})
    m0 = _ce_up(ce, "AssumeRole")
    creds = assert_ce_signed_by(fake, "sts", "AssumeRole")
    eq(len(creds), 1, "credential sets issued by STS")
    sts = counters(fake, "sts")
    eq(sts_actions(sts), {"AssumeRole": 1}, "STS actions")
    eq(sts["auth"]["sigv4"] - sts["by_action"]["GetCallerIdentity"], 1,
       "AssumeRole signed with the environment's keys")
    entry = [e for e in req_log(fake, "sts") if e.get("operation")][0]
    eq(entry["params"].get("ExternalId"), "<masked>", "ExternalId sent")
    eq(entry["params"].get("RoleArn"), ROLE_ARN, "RoleArn sent")
    _cred_source_logged(ce.exp, "assumed role", "AssumeRole")

    # the fake expires them: the exporter must get new ones (it cannot know in advance, so
    # one refresh may fail with reason=auth; it must not go on using the old ones)
    fake.call("POST", "/_fake/credentials/expire")
    seq = last_seq(fake)
    t0 = attempt(m0, "cost_explorer")
    m1 = ce.wait_cost_attempt(t0, 30, "the first cost refresh after the expiry")
    if up(m1, "cost_explorer") == 0:
        errs = ce_errors(m1, "GetCostAndUsage")
        check(errs["auth"] >= 1, "refresh after the expiry failed, but not as auth: %r" % errs)
        ctx.notes.append("expired credentials: one refresh failed (auth), then renewed")
        m1 = ce.wait_cost_attempt(attempt(m1, "cost_explorer"), 30,
                                  "the cost refresh after the failed one")
    eq(up(m1, "cost_explorer"), 1.0, "source_up after the credentials were renewed")
    eq(counters(fake, "sts")["by_action"].get("AssumeRole"), 2,
       "AssumeRole calls (one renewal after the expiry)")
    later = [e for e in req_log(fake) if e["seq"] > seq and e.get("operation")]
    expired_use = [e for e in later if e["status"] == 403]
    check(len(expired_use) <= 1, "expired credentials used %d times: %r"
          % (len(expired_use), expired_use[:3]))
    check(len([x for x in issued(fake) if not x["expired"]]) == 1,
          "no fresh STS credentials: %r" % issued(fake))

    # a wrong ExternalId: AccessDenied, not retried, no Cost Explorer request
    other = ctx.fake("--sts-external-id", ext)
    bad = CeExporter(ctx, other, "assume-role-bad", env=ce_env(ctx, STATIC_ENV),
                     aws={"role_arn": ROLE_ARN, "external_id": "not-" + ext})
    m = wait_for(lambda: (lambda e: e and attempt(e, "cost_explorer") > 0 and
                            attempt(e, "allocation_tags") > 0 and e)(bad.exp.quick()), 30,
                   "the cost and allocation tag attempts with a wrong ExternalId")
    eq(up(m, "cost_explorer"), 0.0, "source_up with a wrong ExternalId")
    eq(api_val(m, "api_request_errors_total", "sts", "AssumeRole", reason="auth"),
       float(counters(other, "sts")["by_action"].get("AssumeRole", -1)),
       "AssumeRole auth errors vs the AssumeRole requests the fake refused")
    eq(counters(other, "sts")["by_status"], {"403": counters(other, "sts")["total"]},
       "STS statuses with a wrong ExternalId")
    eq(api_val(m, "api_retries_total", "sts", "AssumeRole"), 0.0, "AssumeRole retries")
    eq(ce_total(other), 0, "Cost Explorer requests without credentials")


# ---------------------------------------------------------------------------
# 8. no secret leaks
# ---------------------------------------------------------------------------

def _served_temp_creds(fake, ctoken):
    """The temporary credentials IMDS and the container endpoint currently hand out: the same
    set the exporter got (they are cached by the fake until close to their expiry)."""
    st, _, tok = R.http_request(fake.port, "/latest/api/token", "PUT",
                                {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    eq(st, 200, "IMDS token for the test itself")
    h = {"X-aws-ec2-metadata-token": tok.decode()}
    st, _, role = R.http_request(fake.port, "/latest/meta-data/iam/security-credentials/",
                                 "GET", h)
    st, _, body = R.http_request(fake.port, "/latest/meta-data/iam/security-credentials/"
                                 + role.decode().strip(), "GET", h)
    eq(st, 200, "IMDS credentials for the test itself")
    imds = json.loads(body)
    st, _, body = R.http_request(fake.port, "/container-credentials", "GET",
                                 {"Authorization": ctoken})
    eq(st, 200, "container credentials for the test itself")
    cont = json.loads(body)
    return [imds["SecretAccessKey"], imds["Token"], cont["SecretAccessKey"], cont["Token"]]


def test_ce_no_secret_leaks(ctx):
    tag = secrets.token_hex(8)
    secret = "bce/it/ce-secret+" + tag
    token = "bce-it-ce-session-token-" + tag
    wtoken = "bce-it-ce-web-identity-" + tag
    ctoken = "bce-it-ce-container-" + tag
    fake = ctx.fake("--secret-access-key", secret, "--session-token", token,
                    "--web-identity-token", wtoken, "--container-auth-token", ctoken)
    tokfile = ctx.write("wi-token", wtoken)
    static = dict(STATIC_ENV, AWS_SECRET_ACCESS_KEY=secret, AWS_SESSION_TOKEN=token)
    a = CeExporter(ctx, fake, "leak-assume", env=ce_env(ctx, static),
                   aws={"role_arn": ROLE_ARN})
    b = CeExporter(ctx, fake, "leak-web-identity",
                   env=ce_env(ctx, {"AWS_WEB_IDENTITY_TOKEN_FILE": tokfile,
                                    "AWS_ROLE_ARN": ROLE_ARN}), projects={"auth": "sigv4"})
    c = CeExporter(ctx, fake, "leak-imds", env=ce_env(ctx, drop=("AWS_EC2_METADATA_DISABLED",)),
                   aws={"imds_enabled": True, "imds_endpoint": fake.endpoint("")})
    d = CeExporter(ctx, fake, "leak-container",
                   env=ce_env(ctx, {"AWS_CONTAINER_CREDENTIALS_FULL_URI":
                                    fake.endpoint("/container-credentials"),
                                    "AWS_CONTAINER_AUTHORIZATION_TOKEN": ctoken}))
    everyone = (a, b, c, d)
    bodies = []

    def collect(ce):
        for path, hdrs in (("/metrics", None), ("/metrics", {"Accept-Encoding": "gzip"}),
                           ("/", None), ("/-/ready", None)):
            st, h, body = ce.exp.get(path, hdrs)
            bodies.append(R.gzip.decompress(body) if h.get("content-encoding") == "gzip"
                          else body)

    for ce in everyone:
        m = _ce_up(ce, ce.name)
        collect(ce)
    all_secrets = [secret, token, wtoken, ctoken] + _served_temp_creds(fake, ctoken)
    # auth failures, each logged with its error text: Cost Explorer refuses the keys
    # (assumed role), the token expires (IMDS), STS refuses the web identity token
    fake.fault(surface="ce", kind="auth", count=-1)
    for ce in (a, c):
        m = ce.hup_costs()
        eq(up(m, "cost_explorer"), 0.0, "%s: source_up under an auth fault" % ce.name)
        collect(ce)
    fake.call("DELETE", "/_fake/faults")
    fake.fault(surface="ce", kind="expired_token", count=-1)
    m = d.hup_costs()
    eq(up(m, "cost_explorer"), 0.0, "%s: source_up with an expired token" % d.name)
    collect(d)
    fake.call("DELETE", "/_fake/faults")
    fake.fault(surface="sts", kind="auth", count=-1, operation="AssumeRoleWithWebIdentity")
    m = b.hup_costs()
    eq(up(m, "cost_explorer"), 0.0, "%s: source_up when STS refuses the token" % b.name)
    check(api_val(m, "api_request_errors_total", "sts", "AssumeRoleWithWebIdentity",
                  reason="auth") >= 1, "no STS auth error")
    collect(b)
    fake.call("DELETE", "/_fake/faults")
    # --once with debug logging and a wrong secret
    rc, out, err = ctx.run(["--once", "--log.level=debug", "--config.file=" + a.path],
                           dict(static, AWS_SECRET_ACCESS_KEY="wrong+" + secret,
                                HOME=ctx.dir))
    eq(rc, 1, "--once with a wrong secret")
    for ce in everyone:
        rc, _ = ce.exp.stop()
        eq(rc, 0, "%s: exit code on SIGTERM" % ce.name)
    texts = [("%s log" % ce.name, ce.exp.log_text().encode("utf-8")) for ce in everyone]
    texts += [("--once stdout", out), ("--once stderr", err.encode("utf-8"))]
    texts += [("scrape #%d" % i, body) for i, body in enumerate(bodies + ctx.scrapes)]
    leaks = []
    for what, blob in texts:
        for s in all_secrets:
            for form in {s, urllib.parse.quote(s, safe=""), urllib.parse.quote(s),
                         json.dumps(s)[1:-1]}:
                if form.encode("utf-8") in blob:
                    leaks.append("%s contains %r" % (what, s[:12] + "..."))
    check(not leaks, "secrets leaked: %s" % "; ".join(sorted(set(leaks))))
    for ce in everyone:
        check(len(ce.exp.log_records()) > 20, "%s: suspiciously short debug log" % ce.name)
        check(ce.exp.logs("http request", "debug"), "%s: no debug http lines" % ce.name)


# ---------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------

def register(run):
    """Adds the tests above to run.py's registry. The slow ones (they wait for the 10 s
    refresh timer) go first, so that the pool starts them early."""
    global R, check, eq, wait_for, TestFailure, STATIC_ENV
    R = run
    check, eq, wait_for, TestFailure = run.check, run.eq, run.wait_for, run.TestFailure
    STATIC_ENV = {"AWS_ACCESS_KEY_ID": run.ACCESS_KEY_ID,
                  "AWS_SECRET_ACCESS_KEY": run.SECRET_ACCESS_KEY}
    slow = [test_ce_request_budget, test_ce_creds_assume_role_external_id_and_expiry,
            _make_ce_fault_test("throttle_auth"), test_ce_creds_container]
    rest = [test_ce_costs_equal_the_ledger, test_ce_attribution_ambiguous_and_one_key,
            test_ce_ceiling_is_hard, test_ce_fill_goes_on_where_it_stopped,
            test_ce_restart_with_state_file_is_free,
            test_ce_corrupt_state_file_is_ignored, test_ce_state_from_the_future_is_queried_again,
            _make_ce_fault_test("server_client"), _make_ce_fault_test("parse"),
            _make_ce_fault_test("loop_timeouts"),
            test_ce_creds_environment, test_ce_creds_shared_file_and_profile,
            test_ce_creds_web_identity_and_sigv4_projects, test_ce_creds_imds,
            test_ce_no_secret_leaks]
    before = len(run.TESTS)
    for fn in slow + rest:
        run.test()(fn)
    added = run.TESTS[before:]
    del run.TESTS[before:]
    first = [t for t in added if t[1] in slow]
    run.TESTS[0:0] = first
    run.TESTS.extend(t for t in added if t[1] not in slow)
