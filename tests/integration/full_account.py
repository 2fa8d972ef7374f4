"""The account maximum on default settings (issue 12), in the integration suite.

An AWS account holds at most 1,000 Bedrock projects, plus the `default` project. This test
builds that account in the fake (tests/bench/gen_account.py: 1,000 projects with unique
Application+Environment pairs, 60 days of ledger), puts the fake and the exporter on day 28 of
a month with libfaketime (both processes, so SigV4 timestamps agree), makes every Cost Explorer
page hold one day of the account's groups, and runs the exporter with its defaults (only the
endpoints, credentials and state file are set). Done when, as the issue says: every project
listed, ready with Cost Explorer up within 3 minutes of start, at most 40 Cost Explorer requests
on the first fill, and every cost series equal to the fake's ledger.

Registered into run.py's registry by register(); uses costs.py's ledger model.
"""

import collections
import datetime
import glob
import json
import os
import sys
import time

R = costs = None
check = eq = TestFailure = None

DAY_28 = datetime.date(2026, 11, 28)
FAKETIME_AT = "@2026-11-28 12:00:00"
FAKETIME_GLOB = "/usr/lib/*/faketime/libfaketimeMT.so.1"
PROJECTS = 1000
READY_WITHIN = 180            # seconds, the "within 3 minutes"
FIRST_FILL_MAX = 40           # Cost Explorer requests, the bound


def faketime_env():
    found = sorted(glob.glob(FAKETIME_GLOB))
    check(found, "libfaketime is not installed (make deps installs Debian's libfaketime)")
    # ASan wants to come first among the preloaded libraries; libfaketime only wraps the
    # clock functions, so the order check is switched off (the ASan runtime still runs)
    return {"LD_PRELOAD": found[0], "FAKETIME": FAKETIME_AT,
            "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_DONT_RESET": "1",
            "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:print_summary=1:"
                            "verify_asan_link_order=0"}


def one_day_of_groups(rows, keys):
    """The most attribution-tag combinations one day of the ledger has (Bedrock rows)."""
    per_day = collections.defaultdict(set)
    for r in rows:
        if costs.is_bedrock(r):
            per_day[r["date"]].add(tuple(r["tags"].get(k, "") for k in keys))
    return max(len(v) for v in per_day.values())


def test_full_account_on_day_28(ctx):
    sys.path.insert(0, os.path.join(R.ROOT, "tests", "bench"))
    import gen_account  # noqa: E402  (the benchmark's account generator)
    projects, rows = gen_account.account(PROJECTS, DAY_28)
    eq(len(projects), PROJECTS + 1, "projects generated (with the default project)")
    page = one_day_of_groups(rows, costs.KEYS2)
    ledger = os.path.join(ctx.dir, "ledger.json")
    with open(ledger, "w") as fh:
        json.dump(rows, fh, separators=(",", ":"))
    ft = faketime_env()
    fake = ctx.fake("--today", DAY_28.isoformat(), "--ce-page-size", str(page),
                    "--ledger", ledger, env=ft)
    fake.put_projects("us-east-1", projects)
    fake.call("PUT", "/_fake/allocation_tags",
              {k: "Active" for k in costs.TAG_LABELS})
    eq(fake.call("GET", "/_fake/config")["today"], DAY_28.isoformat(), "the fake's today")

    # defaults everywhere but where the exporter finds the fake, its credentials and its state
    conf = ctx.write("full.conf", R.render_conf({
        "projects": {"endpoint": fake.endpoint()},
        "cost_explorer": {"endpoint": fake.endpoint("/ce")},
        "cloudwatch": {"enabled": False},   # Cost Explorer's first fill alone (issue 12)
        "aws": {"sts_endpoint": fake.endpoint("/sts"), "imds_enabled": False,
                "imds_endpoint": costs.DEAD, "container_endpoint": costs.DEAD},
        "state_file": os.path.join(ctx.dir, "state.json"),
    }))
    env = costs.ce_env(ctx, costs.STATIC_ENV)
    env.update(ft)
    t0 = time.monotonic()
    exp = R.Exporter(ctx, conf, env, (), "info")
    m = exp.wait_ready(timeout=READY_WITHIN)
    took = time.monotonic() - t0
    for s in costs.SOURCES:
        eq(costs.up(m, s), 1.0, "source_up{source=%r} when ready" % s)
    check(took <= READY_WITHIN, "ready after %.0f s" % took)

    # every project listed, once, with its fields
    R.assert_matches_fake(m, {"us-east-1": fake.projects("us-east-1")})
    eq(len(m.project_info()), PROJECTS + 1, "bedrock_cost_project_info series")

    # the first fill's price, counted by the fake and by the exporter
    c = costs.counters(fake)
    check(c["total"] <= FIRST_FILL_MAX, "first fill: %d Cost Explorer requests (at most %d): %s"
          % (c["total"], FIRST_FILL_MAX, c))
    eq(m.value("bedrock_cost_exporter_cost_explorer_billable_requests_total"),
       float(c["total"]), "billable requests the exporter counted")

    # every cost series equals the ledger
    # (the ledger is the file the fake was started with; its projects and tag table are asked)
    listed = fake.projects("us-east-1")
    alloc = {t["TagKey"]: t["Status"]
             for t in fake.call("GET", "/_fake/allocation_tags")["CostAllocationTags"]}
    want, amb = costs.expected_costs(rows, listed, alloc, costs.KEYS2, costs.TAG_LABELS, DAY_28)
    costs.assert_close(costs.cost_series(m), want, "cost series vs the ledger")
    eq(costs.ambiguous_series(m), {k: float(v) for k, v in amb.items()},
       "bedrock_cost_attribution_ambiguous")
    ctx.notes.append("%d projects + default, pages of %d groups: ready in %.0f s, first fill "
                     "%d Cost Explorer requests (%s), %d cost series equal to the ledger"
                     % (PROJECTS, page, took, c["total"],
                        ", ".join("%s %d" % kv for kv in sorted(c["by_operation"].items())),
                        len(want)))


def register(run):
    global R, costs, check, eq, TestFailure
    R = run
    costs = run.costs
    check, eq, TestFailure = run.check, run.eq, run.TestFailure
    run.test(serial=True)(test_full_account_on_day_28)   # alone: the fake's CPU is its clock
