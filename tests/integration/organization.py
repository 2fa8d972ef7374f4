"""Integration tests of the organization mode (issue 14): member accounts reached through an
assumed role, account_id on every project and cost series, health per account, and shards
(--shard / --total-shards) that split the accounts and the Cost Explorer bill.

Imported by run.py, which calls register(run_module). Every expectation comes from the fake
(tests/fake_aws/README.md, "Organization"): its organization (GET /_fake/organization), each
account's projects (GET /_fake/projects/{region}?account=ID), each account's ledger rows
(GET /_fake/ledger?account=ID, costs.expected_costs() per account) and its request counters
and log (GET /_fake/requests, /_fake/requests/log); never from the exporter's output.
"""

import datetime
import decimal
import os
import time

import costs

R = None                      # the run.py module, set by register()
check = eq = wait_for = TestFailure = None

D = decimal.Decimal
ROLE = "BedrockCostExporterRead"         # the fake's default --org-role-name
REGIONS = ("us-east-1", "eu-west-1")
MEMBERS = 4
KEYS2 = costs.KEYS2
TAG_LABELS = costs.TAG_LABELS
MTD = costs.PROJECT_FAMILY["month_to_date"]
PROJECT_FAMILIES = {"bedrock_cost_project_info", "bedrock_cost_project_tag_info",
                    "bedrock_cost_project_created_timestamp_seconds", "bedrock_cost_projects"}
LABELLED = PROJECT_FAMILIES | costs.COST_FAMILIES | {"bedrock_cost_attribution_ambiguous"}
MAX_REQUESTS = 5000                      # no ceiling in the way of a first fill of 5 accounts
BEDROCK_EDITION = " (Amazon Bedrock Edition)"


def shard_of(account_id, total):
    """INTERFACE: FNV-1a-32 of the 12-digit id, mod the number of shards."""
    h = 2166136261
    for b in account_id.encode("ascii"):
        h = ((h ^ b) * 16777619) & 0xffffffff
    return h % total


def is_bedrock(service):
    return service == "Amazon Bedrock" or service.endswith(BEDROCK_EDITION)


# ---------------------------------------------------------------------------
# the fake and the exporter
# ---------------------------------------------------------------------------

def org_fake(ctx, members=MEMBERS, regions=REGIONS, *extra):
    return ctx.fake("--org-accounts", str(members), "--org-regions", ",".join(regions),
                    *extra)


def lc_org(org, accounts):
    """The organization group in libconfig syntax (run.render_conf has no list of groups)."""
    lines = ["organization: {"]
    for k, v in org.items():
        lines.append("  %s = %s;" % (k, R.lc_value(v)))
    if accounts:
        items = ["{ " + " ".join("%s = %s;" % (k, R.lc_value(v)) for k, v in a.items()) + " }"
                 for a in accounts]
        lines.append("  accounts = ( " + ",\n               ".join(items) + " );")
    lines.append("};")
    return "\n".join(lines) + "\n"


def discover(fake, **over):
    g = {"discover": True, "endpoint": fake.endpoint("/organizations"), "role_name": ROLE}
    g.update(over)
    return g


class OrgExporter(costs.CeExporter):
    """costs.CeExporter (Cost Explorer on, static keys of the management account, own state
    file), no budgets, Cost Explorer's daily ceiling out of the way, plus an organization
    group (@org, None for single-account mode; then projects keep the API key) and
    command-line @args (--shard=N --total-shards=M)."""

    def __init__(self, ctx, fake, name, org=None, accounts=(), args=(), ce=None, **kw):
        self.org, self.accounts, self.args = org, list(accounts), list(args)
        ce_over = {"max_requests_per_day": MAX_REQUESTS}
        ce_over.update(ce or {})
        projects = {"auth": "sigv4"} if org is not None else None
        super().__init__(ctx, fake, name, ce=ce_over, projects=projects, budgets=False,
                         start=False, **kw)

    def write(self):
        text = R.render_conf(self.groups)
        if self.org is not None:
            text += lc_org(self.org, self.accounts)
        with open(self.path, "w", encoding="utf-8") as fh:
            fh.write(text)

    def start(self, log_level="debug"):
        self.exp = R.Exporter(self.ctx, self.path, self.env, self.args, log_level)
        return self.exp


# ---------------------------------------------------------------------------
# what the fake says is true
# ---------------------------------------------------------------------------

class Truth:
    """The fake's organization: every account's name, status, projects by region and ledger
    rows, and the cost allocation tag table."""

    def __init__(self, fake, regions=REGIONS):
        org = fake.call("GET", "/_fake/organization")
        self.org = org
        self.management = org["management_account"]["Id"]
        self.names = {self.management: org["management_account"]["Name"]}
        self.status = {self.management: "ACTIVE"}
        for a in org["accounts"]:
            self.names[a["Id"]] = a["Name"]
            self.status[a["Id"]] = a["Status"]
        self.members = [a["Id"] for a in org["accounts"]]
        self.role_arns = org.get("role_arns", {})
        self.active = sorted(a for a, s in self.status.items() if s == "ACTIVE")
        self.regions = tuple(regions)
        self.alloc = {t["TagKey"]: t["Status"] for t in
                      fake.call("GET", "/_fake/allocation_tags")["CostAllocationTags"]}
        self.projects, self.rows, self.today = {}, {}, None
        for a in sorted(self.names):
            self.projects[a] = {r: fake.call("GET", "/_fake/projects/%s?account=%s" % (r, a))
                                for r in self.regions}
            led = fake.call("GET", "/_fake/ledger?account=" + a)
            bad = [r for r in led["rows"] if r.get("linked_account") != a]
            check(not bad, "GET /_fake/ledger?account=%s answered rows of other accounts: %r"
                  % (a, bad[:2]))
            self.rows[a] = led["rows"]
            today = datetime.date.fromisoformat(led["today"])
            check(self.today in (None, today), "the fake's today moved while it was read")
            self.today = today

    def flat_projects(self, a):
        return [p for r in self.regions for p in self.projects[a][r]]

    def expected(self, a):
        """costs.expected_costs() over account @a's own rows and projects, keyed without
        account_id (whether or not that model adds the single-account one)."""
        want, amb = costs.expected_costs(self.rows[a], self.flat_projects(a), self.alloc,
                                         KEYS2, TAG_LABELS, self.today)
        out = {}
        for (family, lab), v in want.items():
            key = (family, tuple((k, x) for k, x in lab if k != "account_id"))
            check(key not in out, "costs.expected_costs gave %r twice" % (key,))
            out[key] = v
        return out, amb

    def month_to_date(self, a, bedrock=True):
        ms = costs.month_start(self.today)
        return sum((D(r["cost"]) for r in self.rows[a]
                    if is_bedrock(r["service"]) == bedrock
                    and ms <= datetime.date.fromisoformat(r["date"]) <= self.today), D(0))


def same_organization(fakes):
    """The fakes (started with the same options) hold the same organization and ledgers."""
    first = fakes[0].call("GET", "/_fake/organization")
    led0 = fakes[0].call("GET", "/_fake/ledger")
    for f in fakes[1:]:
        o = f.call("GET", "/_fake/organization")
        eq(o["accounts"], first["accounts"], "members of the fakes on port %d and %d"
           % (fakes[0].port, f.port))
        led = f.call("GET", "/_fake/ledger")
        check(led["today"] == led0["today"] and led["rows"] == led0["rows"],
              "the ledgers of the fakes on port %d and %d differ" % (fakes[0].port, f.port))


# ---------------------------------------------------------------------------
# reading the exposition
# ---------------------------------------------------------------------------

def labelled_accounts(m, families=LABELLED):
    """The account_id values of @families' samples; fails on a sample without one."""
    bare = [s for s in m.samples if s.name in families and "account_id" not in s.labels]
    check(not bare, "%d series without account_id, e.g. %r" % (len(bare), bare[:3]))
    return {s.labels["account_id"] for s in m.samples if s.name in families}


def account_series(m, account, families=costs.COST_FAMILIES):
    """{(family, label items without account_id): value} of one account."""
    out = {}
    for s in m.samples:
        if s.name in families and s.labels.get("account_id") == account:
            lab = tuple(sorted((k, v) for k, v in s.labels.items() if k != "account_id"))
            out[(s.name, lab)] = s.value
    return out


def account_info(m):
    out = {}
    for s in m.find("bedrock_cost_account_info"):
        a = s.labels.get("account_id")
        check(a not in out, "bedrock_cost_account_info lists %s twice: %r and %r"
              % (a, out.get(a), s.labels))
        eq(s.value, 1.0, "bedrock_cost_account_info{account_id=%r}" % a)
        out[a] = (s.labels.get("account_name"), s.labels.get("status"))
    return out


def per_account(m, family):
    out = {}
    for s in m.find(family):
        a = s.labels.get("account_id")
        check(a is not None, "%s without account_id: %r" % (family, s.labels))
        out[a] = s.value
    return out


def account_up(m):
    return per_account(m, "bedrock_cost_exporter_account_up")


def account_failures(m):
    return per_account(m, "bedrock_cost_exporter_account_refresh_failures_total")


def linked_accounts_asked(fake):
    """{account: GetCostAndUsage requests that named it} from the fake's request log: each
    request's LINKED_ACCOUNT filter values. Fails on a request without one."""

    def collect(node, out):
        if isinstance(node, dict):
            dim = node.get("Dimensions")
            if isinstance(dim, dict) and dim.get("Key") == "LINKED_ACCOUNT":
                out.update(dim.get("Values") or [])
            for v in node.values():
                collect(v, out)
        elif isinstance(node, list):
            for v in node:
                collect(v, out)

    asked, bare = {}, []
    for e in costs.req_log(fake, "ce"):
        if e.get("operation") != "GetCostAndUsage":
            continue
        ids = set()
        collect((e.get("request") or {}).get("Filter"), ids)
        if not ids:
            bare.append(e.get("request"))
        for a in ids:
            asked[a] = asked.get(a, 0) + 1
    check(not bare, "%d GetCostAndUsage requests without a LINKED_ACCOUNT filter, e.g. %r"
          % (len(bare), bare[:1]))
    return asked


CE_OPS = ("GetCostAndUsage", "GetDimensionValues", "GetCostForecast", "ListCostAllocationTags")


def gcu(fake):
    c = costs.counters(fake)
    n = c["by_operation"].get("GetCostAndUsage", 0)
    eq(c["by_operation_status"].get("GetCostAndUsage", {}), {"200": n} if n else {},
       "statuses of the GetCostAndUsage answers (fake on port %d)" % fake.port)
    return n


# ---------------------------------------------------------------------------
# shared checks
# ---------------------------------------------------------------------------

def assert_projects(m, truth, accounts):
    """Every project of @accounts (and nothing else) exactly once, under its account."""
    info = {}
    for s in m.find("bedrock_cost_project_info"):
        key = (s.labels.get("account_id"), s.labels.get("region"), s.labels.get("project_id"))
        check(key not in info, "project %r listed twice in bedrock_cost_project_info" % (key,))
        eq(s.value, 1.0, "bedrock_cost_project_info%r" % (key,))
        info[key] = s.labels
    want = {(a, r, p["id"]): p for a in accounts for r in truth.regions
            for p in truth.projects[a][r]}
    got = set(info)
    check(got == set(want), "projects differ from the fake's: missing %s; unexpected %s"
          % (sorted(set(want) - got)[:8], sorted(got - set(want))[:8]))
    for (a, r, pid), p in want.items():
        lab = info[(a, r, pid)]
        what = "project %s of %s in %s" % (pid, a, r)
        eq(lab.get("project_name"), p["name"], "project_name of " + what)
        eq(lab.get("project_arn"), p["arn"], "project_arn of " + what)
        eq(lab.get("status"), p["status"], "status of " + what)
        for k in TAG_LABELS:
            eq(lab.get("tag_" + k.lower()), p["tags"].get(k, ""), "tag_%s of %s"
               % (k.lower(), what))
        eq(m.value("bedrock_cost_project_created_timestamp_seconds", account_id=a, region=r,
                   project_id=pid), float(p["created_at"]), "created timestamp of " + what)
    for a in accounts:
        for r in truth.regions:
            counts = {"active": 0, "archived": 0}
            for p in truth.projects[a][r]:
                counts[p["status"]] = counts.get(p["status"], 0) + 1
            got_counts = {s.labels["status"]: s.value
                          for s in m.find("bedrock_cost_projects", account_id=a, region=r)}
            eq(got_counts, {k: float(v) for k, v in counts.items()},
               "bedrock_cost_projects{account_id=%r,region=%r}" % (a, r))


def assert_account_costs(m, truth, a):
    """Every cost series of account @a equals its own ledger; the month to date over its
    project_id rows is its Bedrock spend (EC2 excluded). Returns that month to date."""
    want, amb = truth.expected(a)
    eq(amb, {}, "Application/Environment pairs shared within account %s (the fake's)" % a)
    costs.assert_close(account_series(m, a), want, "cost series of account %s vs its ledger"
                       % a)
    bedrock = truth.month_to_date(a)
    check(bedrock > 1, "account %s has only $%s of Bedrock spend this month" % (a, bedrock))
    got = sum(s.value for s in m.find(MTD, account_id=a))
    check(abs(D(repr(got)) - bedrock) <= D("0.005"),
          "sum over project_id of %s{account_id=%r} = %r, the ledger's Bedrock month to date "
          "= %s (its non-Bedrock spend: %s)" % (MTD, a, got, bedrock,
                                                truth.month_to_date(a, bedrock=False)))
    return bedrock


def shared_pairs(truth, accounts):
    """{(Application, Environment): {account: [project ids]}} for pairs in 2+ accounts."""
    pairs = {}
    for a in accounts:
        for p in truth.flat_projects(a):
            pair = tuple(p["tags"].get(k, "") for k in KEYS2)
            if any(pair):
                pairs.setdefault(pair, {}).setdefault(a, []).append(p["id"])
    return {k: v for k, v in pairs.items() if len(v) > 1}


def wait_org_ready(e, timeout=90):
    m = e.exp.wait_ready(timeout)
    for s in ("accounts", "projects", "cost_explorer"):
        eq(costs.up(m, s), 1.0, "source_up{source=%r}" % s)
    return m


# ---------------------------------------------------------------------------
# (a) discovery: every account, once, with its own projects and spend
# ---------------------------------------------------------------------------

def test_org_discover_every_account(ctx):
    costs.guard_utc_midnight(ctx, lambda: _discover_every_account(ctx))


def _discover_every_account(ctx):
    fake = org_fake(ctx)
    e = OrgExporter(ctx, fake, "org-%d" % len(ctx.fakes), org=discover(fake))
    e.start()
    m = wait_org_ready(e)
    truth = Truth(fake)
    eq(len(truth.members), MEMBERS, "members of the fake")
    eq(costs.utc_today(), truth.today, "the fake's today (UTC)")
    accounts = truth.active
    eq(len(accounts), MEMBERS + 1, "ACTIVE accounts (members and the management account)")

    # the accounts: every ACTIVE one, named as ListAccounts names it, each up
    eq(account_info(m), {a: (truth.names[a], "ACTIVE") for a in accounts},
       "bedrock_cost_account_info")
    eq(account_up(m), {a: 1.0 for a in accounts}, "bedrock_cost_exporter_account_up")
    eq(account_failures(m), {a: 0.0 for a in accounts},
       "bedrock_cost_exporter_account_refresh_failures_total")
    for a in accounts:
        check(m.value("bedrock_cost_exporter_account_last_success_timestamp_seconds",
                      account_id=a) > 0, "no last success for account %s" % a)
    eq(m.value("bedrock_cost_exporter_shard_ordinal"), 0.0, "shard_ordinal")
    eq(m.value("bedrock_cost_exporter_total_shards"), 1.0, "total_shards")

    # how it got there, from the fake's counters
    orgc = costs.counters(fake, "organizations")
    check(orgc["by_operation"].get("ListAccounts", 0) >= 1, "no ListAccounts: %r" % orgc)
    sts = costs.counters(fake, "sts")
    eq(sorted(sts["assumed_by_account"]), sorted(truth.members),
       "accounts AssumeRole entered (the management account is read with its own keys)")
    pc = costs.counters(fake, "projects")
    for a in accounts:
        check(pc["by_account"].get(a, 0) >= len(REGIONS),
              "projects of account %s listed %d times with its credentials (regions: %d)"
              % (a, pc["by_account"].get(a, 0), len(REGIONS)))
    eq(sorted(costs.counters(fake)["by_account"]), [truth.management],
       "accounts whose credentials asked Cost Explorer (the payer only)")
    eq(sorted(linked_accounts_asked(fake)), accounts,
       "accounts named by the LINKED_ACCOUNT filters of GetCostAndUsage")

    # every account's projects exactly once, under its own account_id
    eq(labelled_accounts(m), set(accounts), "account_id values of project and cost series")
    assert_projects(m, truth, accounts)

    # every account's spend is its own ledger's
    total = D(0)
    for a in accounts:
        total += assert_account_costs(m, truth, a)

    # neighbours share Application/Environment pairs: separate projects, no __ambiguous__
    shared = shared_pairs(truth, accounts)
    check(len(shared) >= 3, "the fake's accounts share only %d Application/Environment pairs"
          % len(shared))
    eq(m.find("bedrock_cost_attribution_ambiguous"), [],
       "bedrock_cost_attribution_ambiguous series (no pair repeats within an account)")
    for a in accounts:
        eq(m.value(MTD, account_id=a, project_id="__ambiguous__"), 0.0,
           "__ambiguous__ month to date of account %s" % a)
    for pair, owners in sorted(shared.items()):
        for a, pids in owners.items():
            for pid in pids:
                check(m.value(MTD, account_id=a, project_id=pid) > 0,
                      "project %s of %s (%s) has no month to date of its own" % (pid, a, pair))
    ctx.notes.append("%d accounts, %d projects, %d shared pairs, Bedrock month to date $%.2f"
                     % (len(accounts), sum(len(truth.flat_projects(a)) for a in accounts),
                        len(shared), total))


# ---------------------------------------------------------------------------
# (b) one member's role failing
# ---------------------------------------------------------------------------

def test_org_one_member_failing(ctx):
    costs.guard_utc_midnight(ctx, lambda: _one_member_failing(ctx))


def _one_member_failing(ctx):
    fake = org_fake(ctx, 3)
    org = fake.call("GET", "/_fake/organization")
    m1, m2, m3 = [a["Id"] for a in org["accounts"]]
    # member 2 SUSPENDED: AssumeRole into it answers 403 AccessDenied (README "STS AssumeRole
    # into a member"); the exporter is told about it explicitly (discovery would drop it)
    accts = [dict(a, Status="SUSPENDED") if a["Id"] == m2 else a for a in org["accounts"]]
    fake.call("PUT", "/_fake/organization", {"accounts": accts})
    truth = Truth(fake)
    eq(truth.status[m2], "SUSPENDED", "member 2's status in the fake")
    e = OrgExporter(ctx, fake, "org-fail-%d" % len(ctx.fakes),
                    org={"endpoint": fake.endpoint("/organizations"), "role_name": ROLE},
                    accounts=[{"id": m1, "role_arn": truth.role_arns[m1]}, {"id": m2},
                              {"id": m3}])
    e.start()

    def settled():
        x = e.exp.quick()
        if x is None or costs.success(x, "cost_explorer") <= 0:
            return None
        up = account_up(x)
        if m2 not in up or m1 not in up or m3 not in up:
            return None
        return x if account_failures(x).get(m2, 0) > 0 else None
    wait_for(settled, 90, "cost data and member 2's failed refresh")
    m = e.exp.scrape()

    # the fake: AssumeRole into member 2 was refused, into 1 and 3 answered
    sts = costs.counters(fake, "sts")
    eq(sorted(sts["assumed_by_account"]), sorted([m1, m3]), "accounts AssumeRole entered")
    into2 = [x["status"] for x in costs.req_log(fake, "sts")
             if x.get("operation") == "AssumeRole" and m2 in (x.get("params") or {}).get(
                 "RoleArn", "")]
    check(into2 and set(into2) == {403}, "AssumeRole into member 2 answered %r, expected 403"
          % into2)
    eq(costs.counters(fake, "projects")["by_account"].get(m2, 0), 0,
       "project listings with member 2's credentials")

    # member 2: down, failures counted, no projects; the others: up, with all their data
    up = account_up(m)
    eq(up[m2], 0.0, "account_up of the failing member")
    check(account_failures(m)[m2] > 0, "account_refresh_failures_total of the failing member")
    served = set(up)
    check({m1, m2, m3} <= served and served <= {m1, m2, m3, truth.management},
          "accounts with account_up: %r" % sorted(served))
    ok = sorted(served - {m2})
    eq({a: up[a] for a in ok}, {a: 1.0 for a in ok}, "account_up of the healthy accounts")
    eq({a: account_failures(m).get(a) for a in ok}, {a: 0.0 for a in ok},
       "account_refresh_failures_total of the healthy accounts")
    eq(m.find("bedrock_cost_project_info", account_id=m2), [],
       "project_info series of the failing member")
    assert_projects(m, truth, ok)
    for a in ok:
        assert_account_costs(m, truth, a)
    ctx.notes.append("healthy accounts %s; member 2 AssumeRole answers %r"
                     % (", ".join(ok), into2))


# ---------------------------------------------------------------------------
# (c) shards: every account once, Cost Explorer split, not multiplied
# ---------------------------------------------------------------------------

def test_org_shards_split_accounts_and_cost_explorer(ctx):
    costs.guard_utc_midnight(ctx, lambda: _shards(ctx))


def _shards(ctx):
    total = 3
    # one fake per exporter (the same organization each): each shard's requests are its own
    fakes = [org_fake(ctx) for _ in range(total + 1)]
    same_organization(fakes)
    truth = Truth(fakes[0])
    accounts = truth.active
    owned = {i: sorted(a for a in accounts if shard_of(a, total) == i) for i in range(total)}
    for i in range(total):
        check(owned[i], "shard %d owns none of %r: the test needs other ids" % (i, accounts))
    n = len(ctx.fakes)
    shards = [OrgExporter(ctx, fakes[i], "org-shard%d-%d" % (i, n), org=discover(fakes[i]),
                          args=["--shard=%d" % i, "--total-shards=%d" % total])
              for i in range(total)]
    # one state_file naming {shard}, as packaging/README.md advises: shard 0 discovers the
    # Bedrock service names and the other shards take them from its state
    template = os.path.join(ctx.dir, "org-shard{shard}-%d.state.json" % n)
    for e in shards:
        e.groups["state_file"] = template
        e.write()
    single = OrgExporter(ctx, fakes[total], "org-all-%d" % n, org=discover(fakes[total]))
    # shards 1 and 2 first: with no state of shard 0 yet they wait for it (cost_explorer
    # down, no GetCostAndUsage, no GetDimensionValues), then go on once shard 0 has written
    for e in shards[1:] + [single]:
        e.start()
    for i in range(1, total):
        wait_for(lambda: (lambda q: q is not None and costs.attempt(q, "cost_explorer") > 0)(
            shards[i].exp.quick()), 60, "shard %d's first Cost Explorer attempt" % i)
        q = shards[i].exp.quick()
        eq(costs.up(q, "cost_explorer"), 0.0,
           "source_up{source=\"cost_explorer\"} of shard %d before shard 0 has run" % i)
        ops = costs.counters(fakes[i])["by_operation"]
        eq((ops.get("GetCostAndUsage", 0), ops.get("GetDimensionValues", 0)), (0, 0),
           "(GetCostAndUsage, GetDimensionValues) of shard %d while it waits for shard 0" % i)
        check(any("waiting for shard 0" in r.get("error", "")
                  for r in shards[i].exp.logs(level="warn", source="cost_explorer")),
            "shard %d does not say that it waits for shard 0" % i)
    shards[0].start()
    ms = [wait_org_ready(e) for e in shards]
    m_all = wait_org_ready(single)

    # which accounts each serves: its hash class, every account exactly once
    seen = {}
    for i, (e, m) in enumerate(zip(shards, ms)):
        eq(m.value("bedrock_cost_exporter_shard_ordinal"), float(i), "shard %d ordinal" % i)
        eq(m.value("bedrock_cost_exporter_total_shards"), float(total), "shard %d total" % i)
        got = sorted(account_info(m))
        eq(got, owned[i], "accounts of shard %d (FNV-1a mod %d)" % (i, total))
        for a in got:
            seen.setdefault(a, []).append(i)
        eq(account_up(m), {a: 1.0 for a in owned[i]}, "account_up of shard %d" % i)
        eq(labelled_accounts(m), set(owned[i]), "account_id values of shard %d's series" % i)
        assert_projects(m, truth, owned[i])
        for a in owned[i]:
            assert_account_costs(m, truth, a)
        eq(sorted(linked_accounts_asked(fakes[i])), owned[i],
           "accounts shard %d asked Cost Explorer about (LINKED_ACCOUNT)" % i)
        pc = costs.counters(fakes[i], "projects")["by_account"]
        eq(sorted(pc), owned[i], "accounts whose projects shard %d listed" % i)
    eq(seen, {a: [shard_of(a, total)] for a in accounts}, "shards serving each account")
    eq(m_all.value("bedrock_cost_exporter_shard_ordinal"), 0.0, "single exporter's ordinal")
    eq(m_all.value("bedrock_cost_exporter_total_shards"), 1.0, "single exporter's total")
    eq(sorted(account_info(m_all)), accounts, "accounts of the single exporter")
    eq(sorted(linked_accounts_asked(fakes[total])), accounts,
       "accounts the single exporter asked Cost Explorer about")
    assert_projects(m_all, truth, accounts)

    # the bill: split across the shards, not multiplied
    per_shard = [gcu(f) for f in fakes[:total]]
    all_in_one = gcu(fakes[total])
    for i, n_i in enumerate(per_shard):
        check(n_i > 0, "shard %d asked GetCostAndUsage nothing" % i)
    eq(sum(per_shard), all_in_one, "GetCostAndUsage requests of the 3 shards (%r) vs one "
       "exporter covering every account" % per_shard)
    # forecast, allocation_tags and the service names: shard 0 only, as often as one
    # exporter; in all the shards ask Cost Explorer no more than one exporter does
    ops_all = costs.counters(fakes[total])["by_operation"]
    check(ops_all.get("GetDimensionValues", 0) > 0,
          "the single exporter made no GetDimensionValues request")
    eq(sum(sum(costs.counters(f)["by_operation"].get(op, 0) for op in CE_OPS)
           for f in fakes[:total]),
       sum(ops_all.get(op, 0) for op in CE_OPS),
       "Cost Explorer requests of the 3 shards vs one exporter covering every account")
    check(ops_all.get("ListCostAllocationTags", 0) > 0,
          "the single exporter made no ListCostAllocationTags request")
    for i, f in enumerate(fakes[:total]):
        ops = costs.counters(f)["by_operation"]
        for op in ("GetCostForecast", "ListCostAllocationTags", "GetDimensionValues"):
            eq(ops.get(op, 0), ops_all.get(op, 0) if i == 0 else 0,
               "%s requests of shard %d (one exporter: %d)" % (op, i, ops_all.get(op, 0)))
    ctx.notes.append("GetCostAndUsage: shards %r (sum %d), one exporter %d; accounts per "
                     "shard %r" % (per_shard, sum(per_shard), all_in_one,
                                   [len(owned[i]) for i in range(total)]))


# ---------------------------------------------------------------------------
# (d) single-account mode: account_id is the caller's
# ---------------------------------------------------------------------------

def test_org_single_account_labels(ctx):
    costs.guard_utc_midnight(ctx, lambda: _single_account(ctx))


def _single_account(ctx):
    fake = ctx.fake()
    e = OrgExporter(ctx, fake, "single-%d" % len(ctx.fakes))
    e.start()
    m = e.exp.wait_ready(60)
    for s in ("projects", "cost_explorer"):
        eq(costs.up(m, s), 1.0, "source_up{source=%r}" % s)
    caller = fake.call("GET", "/_fake/config")["management_account"]
    eq(caller, "123456789012", "the fake's caller account")
    truth = Truth(fake)
    eq(truth.members, [], "members of a fake without --org-accounts")
    eq(labelled_accounts(m), {caller}, "account_id on project and cost series")
    check(len(m.find(MTD, account_id=caller)) >= 5, "month to date series of only %d projects"
          % len(m.find(MTD, account_id=caller)))
    assert_projects(m, truth, [caller])
    assert_account_costs(m, truth, caller)
    sts = costs.counters(fake, "sts")
    check(sts["by_action"].get("GetCallerIdentity", 0) >= 1,
          "no STS GetCallerIdentity: %r" % sts["by_action"])
    eq(m.value("bedrock_cost_exporter_shard_ordinal"), 0.0, "shard_ordinal")
    eq(m.value("bedrock_cost_exporter_total_shards"), 1.0, "total_shards")
    eq(sorted(costs.counters(fake, "organizations")["by_operation"].items()), [],
       "Organizations requests in single-account mode")
    eq(costs.counters(fake, "sts").get("assumed_by_account", {}), {},
       "AssumeRole into accounts in single-account mode")
    # shards need an organization
    rc, out, err = ctx.run(["--check-config", "--config.file=" + e.path, "--shard=1",
                            "--total-shards=3"])
    eq(rc, 1, "exit code of --check-config with --total-shards=3 and no organization "
       "(stderr %r)" % err[-500:])
    check("--total-shards" in err, "the error does not name --total-shards: %r" % err[-500:])


# ---------------------------------------------------------------------------
# (e) a restart in an organization: every account's data from the state file, 0 requests
# ---------------------------------------------------------------------------

def test_org_restart_is_free(ctx):
    costs.guard_utc_midnight(ctx, lambda: _org_restart(ctx))


def _org_restart(ctx):
    fake = org_fake(ctx)
    truth = Truth(fake)
    e = OrgExporter(ctx, fake, "org-restart-%d" % len(ctx.fakes), org=discover(fake))
    e.start()
    m0 = wait_org_ready(e)
    before = {costs.key_of(x): x.value for x in m0.samples
              if x.name in costs.COST_FAMILIES}
    eq(set(labelled_accounts(m0)), set(truth.active), "accounts served before the restart")
    rc, _ = e.exp.stop()
    eq(rc, 0, "exit code on SIGTERM")
    fake.reset_requests()
    e.start()
    # ready from the state file, before any AWS answer: the fake asked nothing yet
    wait_for(lambda: e.exp.get("/-/ready")[0] == 200, 10, "/-/ready after the restart")
    eq(costs.ce_total(fake), 0, "Cost Explorer requests before the restarted exporter was ready")
    m1 = e.exp.scrape()
    costs.assert_same_values({costs.key_of(x): x.value for x in m1.samples
                              if x.name in costs.COST_FAMILIES}, before,
                             "every account's cost series restored from the state file")
    eq(account_up(m1), {a: 1.0 for a in truth.active}, "account_up after the restart")
    # a whole round later (the accounts and every account's projects listed again), still
    # nothing asked of Cost Explorer
    wait_for(lambda: (lambda q: q is not None and costs.attempt(q, "projects") > 0)(
        e.exp.quick()), 60, "the first projects listing after the restart")
    eq(costs.ce_total(fake), 0, "Cost Explorer requests after the first round")
    eq(e.exp.scrape().value("bedrock_cost_exporter_cost_explorer_billable_requests_total"),
       0.0, "billable_requests_total of the restarted exporter")


# ---------------------------------------------------------------------------
# (f) member credentials: renewed before they expire
# ---------------------------------------------------------------------------

def test_org_member_credentials_renewed(ctx):
    # temporary credentials of 4 s (the fake rejects them after that as ExpiredToken): the
    # exporter renews credentials issued with less than 10 minutes left after half their life
    fake = org_fake(ctx, 2, REGIONS, "--credential-lifetime", "4")
    truth = Truth(fake)
    members = sorted(a for a in truth.active if a != truth.management)
    e = OrgExporter(ctx, fake, "org-renew-%d" % len(ctx.fakes), org=discover(fake))
    e.start()
    m0 = wait_org_ready(e)
    first = dict(costs.counters(fake, "sts").get("assumed_by_account", {}))
    eq(sorted(first), members, "accounts assumed into during the first fill")
    # every credential issued so far has expired (4 s of life), then a reload lists again
    t_ready = time.time()
    wait_for(lambda: time.time() > t_ready + 5, 10, "the members' credentials to expire")
    e.groups["projects"]["refresh_interval"] = 3601
    e.write()
    m1 = e.exp.hup_and_wait(before=e.exp.quick())
    wait_for(lambda: (lambda q: q is not None and costs.attempt(q, "projects") > q.reload_ts())(
        e.exp.quick()), 60, "the projects listing after the reload")
    m1 = e.exp.scrape()
    eq(costs.up(m1, "projects"), 1.0, "source_up{source=\"projects\"} with renewed credentials")
    eq(account_up(m1), account_up(m0), "account_up after the members' credentials expired")
    auth = [x for x in m1.find("bedrock_cost_exporter_api_request_errors_total")
            if x.labels.get("reason") == "auth" and x.value > 0]
    eq(auth, [], "auth errors (an expired credential was used)")
    later = costs.counters(fake, "sts").get("assumed_by_account", {})
    renewed = {a: later.get(a, 0) - first[a] for a in members}
    check(all(n >= 1 for n in renewed.values()),
          "AssumeRole per member account since the first fill: %r (each must be renewed)"
          % renewed)


def register(run):
    global R, check, eq, wait_for, TestFailure
    R = run
    check, eq, wait_for, TestFailure = run.check, run.eq, run.wait_for, run.TestFailure
    for fn in (test_org_shards_split_accounts_and_cost_explorer,
               test_org_discover_every_account, test_org_one_member_failing,
               test_org_single_account_labels, test_org_restart_is_free,
               test_org_member_credentials_renewed):
        run.test()(fn)
