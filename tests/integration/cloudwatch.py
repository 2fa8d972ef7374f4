"""Integration tests of the cloudwatch source (issue 13): near-real-time spend per project
from the fake's CloudWatch token metrics, priced with rates from its Cost Explorer bill.

Imported by run.py, which calls register(run_module). Every expectation comes from the fake's
own truth (/_fake/cloudwatch/spend, /_fake/cloudwatch/rates, /_fake/requests), never from the
exporter's output."""

import calendar
import math
import signal
import time

import costs

R = None
check = eq = wait_for = TestFailure = None

CW_OPS = ("ListMetrics", "GetMetricData")


def cw_group(fake, **over):
    g = {"enabled": True, "endpoint": fake.endpoint("/monitoring/{region}"),
         "refresh_interval": 60}
    g.update(over)
    return g


def cw_attempt(m):
    return m.value("bedrock_cost_exporter_last_attempt_timestamp_seconds", source="cloudwatch")


def by_label(m, family, *keys):
    if len(keys) == 1:
        return {s.labels[keys[0]]: s.value for s in m.find(family)}
    return {tuple(s.labels[k] for k in keys): s.value for s in m.find(family)}


def fake_spend(fake, region, date, until):
    return fake.call("GET", "/_fake/cloudwatch/spend?region=%s&date=%s&until=%d"
                     % (region, date, until))["projects"]


def close(got, want, rel, what, floor=0.005):
    check(abs(got - want) <= max(floor, rel * abs(want)),
          "%s: exporter %r, fake %r (allowed %.1f%%)" % (what, got, want, rel * 100))


def start(ctx, fake, name, **cw):
    ce = costs.CeExporter(ctx, fake, name, cw=cw_group(fake, **cw))
    return ce, ce.exp.wait_ready(timeout=60)


def test_cw_estimates_rates_and_error_ratio(ctx):
    costs.guard_utc_midnight(ctx, lambda: _estimates(ctx))


def _estimates(ctx):
    fake = ctx.fake()
    _, m = start(ctx, fake, "cw-est-%d" % len(ctx.fakes))
    for s in costs.SOURCES + ("cloudwatch",):
        eq(costs.up(m, s), 1.0, "source_up{source=%r}" % s)
    today = costs.utc_today().isoformat()
    # the refresh read the minutes before the one it started in
    end = int(cw_attempt(m) // 60 * 60)

    # today so far, per project: the fake's own spend of the same minutes, within 2%
    est = by_label(m, "bedrock_cost_project_today_estimated_usd", "project_id")
    tokens = by_label(m, "bedrock_usage_project_tokens_today", "region", "project_id", "model",
                      "direction")
    want_usd, want_tokens = {}, {}
    for region in ("us-east-1", "eu-west-1"):
        for pid, v in fake_spend(fake, region, today, end).items():
            want_usd[pid] = want_usd.get(pid, 0.0) + float(v["usd"])
            for model, dirs in v["tokens"].items():
                for d, n in dirs.items():
                    if n:
                        want_tokens[(region, pid, model, d)] = float(n)
    check(len(want_usd) >= 5, "the fake spends in only %d projects today" % len(want_usd))
    eq(sorted(est), sorted(want_usd), "projects with an estimate today")
    for pid, want in want_usd.items():
        close(est[pid], want, 0.02, "today_estimated_usd{project_id=%r}" % pid)
    eq({k: v for k, v in tokens.items() if v}, want_tokens, "tokens today per pair")

    # the rates in use are the account's own (billed cost / tokens), as the fake prices
    rates = by_label(m, "bedrock_cost_rate_usd_per_million_tokens", "region", "model",
                     "direction", "source")
    table = fake.call("GET", "/_fake/cloudwatch/rates")
    check(rates, "no rate series")
    for (region, model, d, source), v in rates.items():
        eq(source, "billed", "source of the rate of %s %s" % (model, d))
        want = table.get("rates", table).get(model, {}).get(d)
        check(want is not None, "the fake has no rate for %s %s: %r" % (model, d, table))
        close(v, float(want), 0.005, "rate of %s %s %s" % (region, model, d), floor=1e-9)

    # the last settled day's estimate against its bill: within 2% (the fake's tokens follow
    # its bill)
    ratios = by_label(m, "bedrock_cost_project_estimate_error_ratio", "project_id")
    check(len(ratios) >= 4, "error ratio for only %d projects: %r" % (len(ratios), ratios))
    for pid, r in ratios.items():
        check(abs(r) <= 0.02, "estimate_error_ratio{project_id=%r} = %r" % (pid, r))

    # what was asked and paid for, counted by both sides; every request valid per botocore
    c = fake.call("GET", "/_fake/requests?surface=cloudwatch")["cloudwatch"]
    for op in CW_OPS:
        eq(m.value("bedrock_cost_exporter_api_requests_total", api="cloudwatch", operation=op),
           float(c["by_operation"].get(op, 0)), "%s requests" % op)
    eq(m.value("bedrock_cost_exporter_cloudwatch_metrics_requested_total"),
       float(c["metrics_requested"]), "metrics requested")
    eq(c.get("model_violations", 0), 0, "requests that botocore's cloudwatch model rejects")
    close(m.value("bedrock_cost_exporter_cloudwatch_spend_usd_total"),
          (c["metrics_requested"] + c["by_operation"].get("ListMetrics", 0)) * 0.01 / 1000,
          0.001, "cloudwatch spend", floor=1e-9)
    ce = fake.call("GET", "/_fake/requests?surface=ce")["ce"]
    eq(ce.get("model_violations", 0), 0, "requests that botocore's ce model rejects")


def test_cw_spike_reaches_the_hourly_rate(ctx):
    costs.guard_utc_midnight(ctx, lambda: _spike(ctx))


def _spike(ctx):
    fake = ctx.fake()
    ce, m = start(ctx, fake, "cw-spike-%d" % len(ctx.fakes))
    projects = {p["name"]: p["id"] for p in fake.projects("us-east-1")}
    pid = projects["CustomerChatbot-Prod"]
    before = m.value("bedrock_cost_project_estimated_usd_per_hour", project_id=pid)
    check(before > 0, "no hourly spend before the spike")
    t0 = time.time()
    # from the minute before the last complete one: the data arrives "late", which the
    # re-read of cloudwatch.late_data_minutes must pick up
    since = int(t0 // 60 * 60) - 120
    fake.call("POST", "/_fake/cloudwatch/spike",
              {"region": "us-east-1", "project": pid, "factor": 50, "since": since})
    seen = []

    def refreshed_twice():
        e = ce.exp.quick()
        if e is None:
            return None
        a = cw_attempt(e)
        if a > t0 and a not in seen:
            seen.append(a)
        return len(seen) >= 2
    wait_for(refreshed_twice, 200, "two CloudWatch refreshes after the spike")
    m2 = ce.exp.scrape()
    after = m2.value("bedrock_cost_project_estimated_usd_per_hour", project_id=pid)
    end = int(cw_attempt(m2) // 60 * 60)
    today = costs.utc_today().isoformat()
    if end - 3600 >= math.floor(time.time() // 86400 * 86400):
        want = (float(fake_spend(fake, "us-east-1", today, end)[pid]["usd"]) -
                float(fake_spend(fake, "us-east-1", today, end - 3600)[pid]["usd"]))
        close(after, want, 0.02, "estimated_usd_per_hour after the spike")
    check(after > 3 * before, "estimated_usd_per_hour %r -> %r after a 50x spike" % (before, after))
    ctx.notes.append("spike x50: %.2f -> %.2f USD/h within two refreshes" % (before, after))


def test_cw_ceiling_holds_and_sighup_resumes(ctx):
    fake = ctx.fake()
    ce = costs.CeExporter(ctx, fake, "cw-ceiling-%d" % len(ctx.fakes),
                          cw=cw_group(fake, max_metrics_per_day=20))

    def down():
        e = ce.exp.quick()
        return e and cw_attempt(e) > 0 and costs.up(e, "cloudwatch") == 0.0 and e
    wait_for(down, 60, "the cloudwatch source stopped by its ceiling")
    m = ce.exp.scrape()
    c = fake.call("GET", "/_fake/requests?surface=cloudwatch")["cloudwatch"]
    check(c["metrics_requested"] <= 20, "%d metrics requested past a ceiling of 20"
          % c["metrics_requested"])
    eq(m.value("bedrock_cost_exporter_cloudwatch_metrics_requested_total"),
       float(c["metrics_requested"]), "metrics requested")
    eq(m.value("bedrock_cost_exporter_cloudwatch_metrics_remaining_today"),
       float(20 - c["metrics_requested"]), "metrics remaining today")
    check("max_metrics_per_day" in ce.exp.log_text(), "the log does not name the ceiling")
    # a SIGHUP that raises the ceiling resumes at once, not after midnight
    ce.groups["cloudwatch"]["max_metrics_per_day"] = 100000
    ce.write()
    ce.exp.send(signal.SIGHUP)
    wait_for(lambda: (lambda e: e and costs.up(e, "cloudwatch") == 1.0)(ce.exp.quick()), 40,
             "cloudwatch up after the ceiling was raised")


def history_calls(fake):
    """GetMetricData calls that asked for daily sums (the once-a-day history)."""
    log = fake.call("GET", "/_fake/requests/log?surface=cloudwatch")["requests"]
    return [e for e in log if e.get("operation") == "GetMetricData" and e.get("request") and
            e["request"]["MetricDataQueries"][0]["MetricStat"]["Period"] == 86400]


def test_cw_error_ratio_judges_the_settled_day(ctx):
    costs.guard_utc_midnight(ctx, lambda: _judged(ctx))


def _judged(ctx):
    """The error ratio judges the last settled day (today - settle_days), not yesterday, whose
    bill still moves: tokens tripled since yesterday 00:00 (the bill unchanged) leave it
    within 2%; judged on yesterday it would be about +200%."""
    fake = ctx.fake()
    projects = {p["name"]: p["id"] for p in fake.projects("us-east-1")}
    pid = projects["CustomerChatbot-Prod"]
    yesterday = costs.day(costs.utc_today(), -1)
    since = calendar.timegm(yesterday.timetuple())
    fake.call("POST", "/_fake/cloudwatch/spike",
              {"region": "us-east-1", "project": pid, "factor": 3, "since": since})
    _, m = start(ctx, fake, "cw-judged-%d" % len(ctx.fakes))
    ratios = by_label(m, "bedrock_cost_project_estimate_error_ratio", "project_id")
    check(pid in ratios, "no error ratio for %s: %r" % (pid, ratios))
    check(abs(ratios[pid]) <= 0.02, "estimate_error_ratio{project_id=%r} = %r: judged on a "
          "day the spike (since yesterday) reached?" % (pid, ratios[pid]))
    # the judged day's tokens were not spiked; yesterday's were, three times over
    ce = fake.call("GET", "/_fake/cloudwatch/spend?region=us-east-1&date=%s&until=%d"
                   % (yesterday.isoformat(), since + 86400))["projects"][pid]
    check(float(ce["usd"]) > 0, "the fake spent nothing yesterday for %s" % pid)


def test_cw_restart_keeps_history_and_rates(ctx):
    costs.guard_utc_midnight(ctx, lambda: _restart(ctx))


def _restart(ctx):
    fake = ctx.fake()
    ce, m1 = start(ctx, fake, "cw-restart-%d" % len(ctx.fakes))
    ratios1 = by_label(m1, "bedrock_cost_project_estimate_error_ratio", "project_id")
    check(ratios1, "no error ratio before the restart")
    n_hist = len(history_calls(fake))
    check(n_hist >= 2, "the history was read in %d calls (one per region at least)" % n_hist)
    ce.exp.stop()
    ce.start()
    m2 = ce.exp.wait_ready(timeout=60)
    eq(costs.up(m2, "cloudwatch"), 1.0, "source_up{source=\"cloudwatch\"} after the restart")
    eq(len(history_calls(fake)), n_hist, "history calls after the restart (kept in the state file)")
    ratios2 = by_label(m2, "bedrock_cost_project_estimate_error_ratio", "project_id")
    eq(sorted(ratios2), sorted(ratios1), "projects with an error ratio after the restart")
    for pid, r in ratios2.items():
        close(r, ratios1[pid], 0.0, "error ratio of %s across the restart" % pid, floor=1e-9)
    end = int(cw_attempt(m2) // 60 * 60)
    today = costs.utc_today().isoformat()
    est = by_label(m2, "bedrock_cost_project_today_estimated_usd", "project_id")
    for pid, v in fake_spend(fake, "us-east-1", today, end).items():
        close(est[pid], float(v["usd"]), 0.02, "today_estimated_usd{project_id=%r} after "
              "the restart" % pid)


def test_cw_faults_keep_the_last_good_data(ctx):
    fake = ctx.fake()
    # one throttled GetMetricData before the first read: retried, counted, up
    fake.fault(surface="cloudwatch", kind="throttle", count=1, operation="GetMetricData")
    ce, m1 = start(ctx, fake, "cw-faults-%d" % len(ctx.fakes))
    eq(costs.up(m1, "cloudwatch"), 1.0, "cloudwatch up after a throttled attempt")
    eq(m1.value("bedrock_cost_exporter_api_request_errors_total", api="cloudwatch",
                operation="GetMetricData", reason="throttled"), 1.0, "throttled errors")
    check(m1.value("bedrock_cost_exporter_api_retries_total", api="cloudwatch",
                   operation="GetMetricData") >= 1, "the throttled request was not retried")
    est1 = by_label(m1, "bedrock_cost_project_today_estimated_usd", "project_id")
    check(est1, "no estimates")
    # answers that are not GetMetricData's shape: the refresh fails, the data stays
    for kind, reason in (("malformed", "parse"),):
        fake.fault(surface="cloudwatch", kind=kind, count=-1, operation="GetMetricData")
        t0 = cw_attempt(ce.exp.scrape())
        m2 = wait_for(lambda: (lambda e: e and cw_attempt(e) > t0 and
                               costs.up(e, "cloudwatch") == 0.0 and e)(ce.exp.quick()),
                      150, "a failed CloudWatch refresh (%s)" % kind)
        check(m2.value("bedrock_cost_exporter_api_request_errors_total", api="cloudwatch",
                       operation="GetMetricData", reason=reason) >= 1,
              "%s: no error counted with reason %s" % (kind, reason))
        est2 = by_label(m2, "bedrock_cost_project_today_estimated_usd", "project_id")
        eq(sorted(est2), sorted(est1), "%s: projects still estimated" % kind)
        fake.clear_faults()
        wait_for(lambda: (lambda e: e and costs.up(e, "cloudwatch") == 1.0)(ce.exp.quick()),
                 150, "cloudwatch recovered after %s" % kind)

    # one region refused (an SCP, say): the source is down, the other region stays current
    fake.fault(surface="cloudwatch", kind="auth", count=-1, match="/monitoring/eu-west-1")
    t0 = cw_attempt(ce.exp.scrape())
    m3 = wait_for(lambda: (lambda e: e and cw_attempt(e) > t0 and
                           costs.up(e, "cloudwatch") == 0.0 and e)(ce.exp.quick()),
                  150, "a CloudWatch refresh with eu-west-1 refused")
    check(m3.value("bedrock_cost_exporter_api_request_errors_total", api="cloudwatch",
                   operation="ListMetrics", reason="auth") >= 1, "no auth error counted")
    end = int(cw_attempt(m3) // 60 * 60)
    tokens = by_label(m3, "bedrock_usage_project_tokens_today", "region", "project_id", "model",
                      "direction")
    today = costs.utc_today().isoformat()
    if end >= math.floor(time.time() // 86400 * 86400):
        for pid, v in fake_spend(fake, "us-east-1", today, end).items():
            for model, dirs in v["tokens"].items():
                for d, n in dirs.items():
                    if n:
                        eq(tokens.get(("us-east-1", pid, model, d)), float(n),
                           "us-east-1 tokens of %s %s %s while eu-west-1 fails" % (pid, model, d))
    fake.clear_faults()


def register(run):
    global R, check, eq, wait_for, TestFailure
    R = run
    check, eq, wait_for, TestFailure = run.check, run.eq, run.wait_for, run.TestFailure
    for fn in (test_cw_faults_keep_the_last_good_data, test_cw_spike_reaches_the_hourly_rate,
               test_cw_error_ratio_judges_the_settled_day,
               test_cw_estimates_rates_and_error_ratio, test_cw_restart_keeps_history_and_rates,
               test_cw_ceiling_holds_and_sighup_resumes):
        run.test()(fn)
