"""Integration tests of the state file in S3 (issue 14, "shared state"): state_file =
"s3://bucket/key" against the fake's S3 surface, in both addressing styles.

What users rely on: a second replica and a restart serve what is in S3 at once and pay no
Cost Explorer request while it is newer than the refresh interval; writes are conditional, so
a replica never overwrites an object another one changed since it read it (412, then it
takes the newer parts and writes again); when one replica dies the other refreshes.

Imported by run.py, which calls register(run_module). Expectations come from the fake's own
counters and stored object, never from the exporter's output alone."""

import json
import signal
import time
import urllib.parse

import costs

R = None
check = eq = wait_for = TestFailure = None

BUCKET = "bce-state"
KEY = "prod/shard-0/state.json"
FORMAT = "bedrock-cost-exporter-state"


def s3_counters(fake):
    return costs.counters(fake, "s3")


def s3_op(fake, op):
    return s3_counters(fake)["by_operation"].get(op, 0)


def stored(fake, key=KEY, bucket=BUCKET):
    """The object as the fake holds it: (parsed JSON, ETag), or (None, None)."""
    q = urllib.parse.urlencode({"bucket": bucket, "key": key})
    status, headers, body = R.http_request(fake.port, "/_fake/s3/object?" + q)
    if status == 404:
        return None, None
    eq(status, 200, "GET /_fake/s3/object")
    return json.loads(body), headers.get("etag")


def replica(ctx, fake, name, endpoint=None, key=KEY, ce=None):
    """An exporter whose state_file is s3://BUCKET/key at the fake (path-style unless
    @endpoint says otherwise). Not started."""
    e = costs.CeExporter(ctx, fake, name, start=False, ce=ce)
    e.groups["state_file"] = "s3://%s/%s" % (BUCKET, key)
    e.groups["state_s3"] = {"endpoint": endpoint or fake.endpoint("/s3"),
                            "region": "us-east-1"}
    e.write()
    return e


def costs_of(m):
    return {s.labels["project_id"]: s.value
            for s in m.find("bedrock_cost_project_month_to_date_usd")}


def test_shared_state_replica_and_restart_pay_nothing(ctx):
    costs.guard_utc_midnight(ctx, lambda: _replicas(ctx))


def _replicas(ctx):
    fake = ctx.fake()
    a = replica(ctx, fake, "ss-a-%d" % len(ctx.fakes))
    a.start()
    ma = a.exp.wait_ready(timeout=60)
    doc, etag = stored(fake)
    check(doc is not None, "A wrote no object to s3://%s/%s" % (BUCKET, KEY))
    eq(doc.get("format"), FORMAT, "the object's format")
    check(etag, "the object has no ETag")
    c0 = s3_counters(fake)
    eq(c0["by_operation"].get("PutObject", 0), 1, "PutObjects of A's first fill")
    ce_paid = costs.ce_total(fake)
    check(ce_paid > 0, "A's fill asked Cost Explorer nothing")
    eq(ma.value("bedrock_cost_exporter_api_requests_total", api="s3", operation="PutObject"),
       1.0, "A counts its PutObject")

    # a second replica: serves A's data at once and asks Cost Explorer nothing
    b = replica(ctx, fake, "ss-b-%d" % len(ctx.fakes))
    b.start()
    mb = b.exp.wait_ready(timeout=30)
    eq(costs.ce_total(fake), ce_paid, "Cost Explorer requests after B started")
    eq(costs_of(mb), costs_of(ma), "B serves A's month-to-date per project")
    check(len(costs_of(mb)) >= 3, "B serves costs of only %d projects" % len(costs_of(mb)))
    check(b.exp.logs("state restored"), "B did not log that it restored the state")
    eq(mb.value("bedrock_cost_exporter_api_requests_total", api="s3", operation="GetObject"),
       1.0, "B read the object once at start")

    # a restart of A: the same
    a.exp.stop()
    a.start()
    a.exp.wait_ready(timeout=30)
    eq(costs.ce_total(fake), ce_paid, "Cost Explorer requests after A restarted")

    # another writer changes the object while A refreshes (after A's pull, before its
    # write): A's write must not overwrite it blindly
    _, etag = stored(fake)
    fake.fault(surface="ce", kind="slow", seconds=3, count=1, operation="GetCostAndUsage")
    gets = s3_op(fake, "GetObject")
    puts412 = s3_counters(fake)["precondition_failed"]["PutObject"]
    a.slash = not a.slash  # a CE-relevant change that changes nothing: a cost refresh
    a.groups["cost_explorer"]["endpoint"] = fake.endpoint("/ce/" if a.slash else "/ce")
    a.write()
    a.exp.send(signal.SIGHUP)
    wait_for(lambda: s3_op(fake, "GetObject") > gets, 20, "A to pull before its refresh")
    doc, _ = stored(fake)
    doc["written_at"] = time.time()
    q = urllib.parse.urlencode({"bucket": BUCKET, "key": KEY})
    foreign = fake.call("PUT", "/_fake/s3/object?" + q, doc)["etag"]
    check(foreign != etag, "the fake's control PUT did not change the ETag")
    wait_for(lambda: stored(fake)[1] not in (foreign, etag), 30,
             "A to write the object again after the other writer")
    eq(s3_counters(fake)["precondition_failed"]["PutObject"] - puts412, 1,
       "PutObjects refused with 412 (A's write over the ETag it had read)")
    check(a.exp.logs("the shared state changed under this write; merging"),
          "A did not log the lost race")
    doc2, _ = stored(fake)
    check(doc2["written_at"] > doc["written_at"], "A's merged write is not newer than the "
          "other writer's")
    m = a.exp.scrape()
    eq(costs.up(m, "cost_explorer"), 1.0, "A's cost_explorer after the merge")
    for reason in ("client", "server", "auth"):
        eq(m.value("bedrock_cost_exporter_api_request_errors_total", api="s3",
                   operation="PutObject", reason=reason), 0.0,
           "a lost race is not an error (reason %s)" % reason)


def test_shared_state_replica_takes_over(ctx):
    costs.guard_utc_midnight(ctx, lambda: _takeover(ctx))


def _takeover(ctx):
    """Two replicas with a short cost interval: one refreshes, the other takes its data;
    when the refreshing one dies, the other refreshes and writes."""
    fake = ctx.fake()
    ce = {"refresh_interval": 15}
    a = replica(ctx, fake, "ss-ta-%d" % len(ctx.fakes), ce=ce)
    a.start()
    a.exp.wait_ready(timeout=60)
    b = replica(ctx, fake, "ss-tb-%d" % len(ctx.fakes), ce=ce)
    b.start()
    b.exp.wait_ready(timeout=30)
    paid = costs.ce_total(fake)
    # both run for a little more than one interval: the cost refresh is made once
    gets0 = s3_op(fake, "GetObject")
    wait_for(lambda: s3_op(fake, "PutObject") >= 2, 40, "the second cost refresh's write")
    first_round = costs.ce_total(fake) - paid
    check(first_round > 0, "no cost refresh in the interval")
    check(s3_op(fake, "GetObject") > gets0, "the replicas did not look at the shared state")
    t_kill = time.time()
    a.exp.stop(signal.SIGKILL)
    # B refreshes after its interval and writes what it fetched
    wait_for(lambda: (stored(fake)[0] or {}).get("written_at", 0) > t_kill + 1, 60,
             "B to write the object after A died")
    mb = b.exp.scrape()
    eq(costs.up(mb, "cost_explorer"), 1.0, "B's cost_explorer is up")
    check(mb.value("bedrock_cost_exporter_api_requests_total", api="s3",
                   operation="PutObject") >= 1, "B wrote nothing")


def test_shared_state_virtual_hosted(ctx):
    costs.guard_utc_midnight(ctx, lambda: _virtual_hosted(ctx))


def _virtual_hosted(ctx):
    fake = ctx.fake()
    port = urllib.parse.urlsplit(fake.endpoint()).port
    ep = "http://{bucket}.localhost:%d/s3vh" % port
    a = replica(ctx, fake, "ss-vh-%d" % len(ctx.fakes), endpoint=ep, key="vh/state.json")
    a.start()
    a.exp.wait_ready(timeout=60)
    doc, _ = stored(fake, key="vh/state.json")
    check(doc is not None and doc.get("format") == FORMAT,
          "no state object at s3://%s/vh/state.json (virtual-hosted)" % BUCKET)
    paid = costs.ce_total(fake)
    a.exp.stop()
    a.start()
    a.exp.wait_ready(timeout=30)
    eq(costs.ce_total(fake), paid, "Cost Explorer requests after a restart (virtual-hosted)")


def test_shared_state_s3_down_keeps_serving(ctx):
    costs.guard_utc_midnight(ctx, lambda: _s3_down(ctx))


def _s3_down(ctx):
    """S3 failing costs the savings, never the data: the exporter starts afresh, serves,
    says so once, counts the errors, and writes when S3 answers again."""
    fake = ctx.fake()
    fake.fault(surface="s3", kind="server_error", count=10000)
    a = replica(ctx, fake, "ss-down-%d" % len(ctx.fakes))
    a.start()
    m = a.exp.wait_ready(timeout=60)
    eq(costs.up(m, "cost_explorer"), 1.0, "cost_explorer up while S3 fails")
    check(len(costs_of(m)) >= 3, "costs of only %d projects while S3 fails" % len(costs_of(m)))
    eq(stored(fake), (None, None), "an object written while S3 fails")
    check(m.value("bedrock_cost_exporter_api_request_errors_total", api="s3",
                  operation="GetObject", reason="server") >= 1, "GetObject errors not counted")
    eq(len(a.exp.logs("cannot read the shared state; starting afresh", level="warn")), 1,
       "warnings about the unreadable shared state at start")
    wait_for(lambda: a.exp.logs("cannot write the state file; a restart will fetch (and pay "
                                "for) its data again", level="warn"), 20,
             "the warning about the failed write")
    fake.clear_faults()
    a.hup_costs()
    wait_for(lambda: stored(fake)[0] is not None, 20, "the object after S3 recovered")
    check(a.exp.logs("state file written again"), "no log line for the recovered write")
    eq(len(a.exp.logs("cannot write the state file; a restart will fetch (and pay for) its "
                      "data again", level="warn")), 1, "warnings about the failed writes")


def register(run):
    global R, check, eq, wait_for, TestFailure
    R = run
    check, eq, wait_for, TestFailure = run.check, run.eq, run.wait_for, run.TestFailure
    for fn in (test_shared_state_replica_and_restart_pay_nothing,
               test_shared_state_replica_takes_over, test_shared_state_virtual_hosted,
               test_shared_state_s3_down_keeps_serving):
        run.test()(fn)
