#!/usr/bin/env python3
"""tests/fake_aws/fake_aws.py, with GetCostAndUsage pagination memoized (benchmark only).

The fake answers each GetCostAndUsage page by scanning the whole ledger again and slicing
out the page. With 10,000 projects (about 1.6 million ledger rows, hundreds of pages) that
is hours of Python per refresh. This wrapper computes the complete answer once per distinct
request (same body without NextPageToken, same ledger, same allocation tags, same day)
and cuts the pages out of it with the fake's own paging rule and token helpers, so the
exporter sees byte-for-byte the pages the unmodified fake would send, only faster.
Faults (`loop`, `change_between_pages`) and ungrouped queries go to the original code.
GetDimensionValues, GetCostForecast and ListCostAllocationTags (pure functions of the
request, the ledger, the tag table and the day) are memoized too, so a second refresh
with the same requests (the `--once` runs after the daemon's first refresh) costs the fake
only the JSON encoding of its answers.

Usage: fake_fast.py <the options of fake_aws.py>
       fake_fast.py --equivalence-check   # pages identical to the plain fake's, exit 0/1
                                          # (also while "today" moves, PUT /_fake/config)
"""
import collections
import json
import os
import sys
import threading

sys.dont_write_bytecode = True   # no __pycache__ in the work tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fake_aws"))

import fake_aws as fa  # noqa: E402

_original = fa.ce_get_cost_and_usage
_lock = threading.Lock()
_cache = collections.OrderedDict()   # key -> (rows kept alive, full answer, group counts)
_CACHE_ENTRIES = 4   # the tag query and the model query of a refresh, and a spare pair
stats = {"full": 0, "pages": 0, "memo_hits": 0}


def _key(body, rows, allocation_tags, today, page_size, estimated_days, strict):
    return (fa.request_hash("GetCostAndUsage", body, "NextPageToken"), id(rows), len(rows),
            json.dumps(allocation_tags, sort_keys=True, default=str), str(today), page_size,
            estimated_days, bool(strict))


def ce_get_cost_and_usage(body, rows, allocation_tags, today, page_size, estimated_days,
                          strict=False, loop=False, bump_later_pages=None,
                          account_names=None):
    if loop or bump_later_pages is not None or not isinstance(body, dict) or \
            not body.get("GroupBy"):
        return _original(body, rows, allocation_tags, today, page_size, estimated_days,
                         strict=strict, loop=loop, bump_later_pages=bump_later_pages,
                         account_names=account_names)
    key = _key(body, rows, allocation_tags, today, page_size, estimated_days, strict)
    with _lock:
        hit = _cache.get(key)
        if hit is None:
            first = {k: v for k, v in body.items() if k != "NextPageToken"}
            full = _original(first, rows, allocation_tags, today, 1 << 62, estimated_days,
                             strict=strict)
            sizes = [len(r["Groups"]) for r in full["ResultsByTime"]]
            hit = _cache[key] = (rows, full, sizes)
            while len(_cache) > _CACHE_ENTRIES:
                _cache.popitem(last=False)
            stats["full"] += 1
        else:
            _cache.move_to_end(key)
        stats["pages"] += 1
    _, full, sizes = hit
    total = sum(sizes)
    req_hash = key[0]
    token = fa.token_field_value(body, "NextPageToken")
    offset = fa.read_page_token(token, req_hash, total) if token is not None else 0
    lo, hi = offset, min(offset + page_size, total)
    results = []
    pos = 0
    la_index = [k for k, d in enumerate(full["GroupDefinitions"])
                if d == {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}]
    page_accounts = set()
    for r, n in zip(full["ResultsByTime"], sizes):
        s_p = pos
        pos += n
        if n > 0:
            a, b = max(lo, s_p), min(hi, s_p + n)
            if a >= b:
                continue
            groups = r["Groups"][a - s_p:b - s_p]
            for g in groups:
                page_accounts.update(g["Keys"][k] for k in la_index)
        elif not (lo <= s_p < hi or (s_p == total and hi == total)):
            continue
        else:
            groups = []
        results.append({"TimePeriod": r["TimePeriod"], "Total": r["Total"], "Groups": groups,
                        "Estimated": r["Estimated"]})
    out = collections.OrderedDict()
    out["GroupDefinitions"] = full["GroupDefinitions"]
    out["ResultsByTime"] = results
    out["DimensionValueAttributes"] = fa.linked_account_attributes(sorted(page_accounts),
                                                                   account_names)
    if hi < total:
        out["NextPageToken"] = fa.make_page_token(hi, req_hash)
    return out


def _memo(fn, name):
    """The other Cost Explorer operations are pure functions of (request, ledger, tags,
    day): the same request gets the answer computed the first time."""
    memo = collections.OrderedDict()

    def wrapped(body, rows, allocation_tags, *a, **kw):
        if kw.get("loop") or not isinstance(body, dict):
            return fn(body, rows, allocation_tags, *a, **kw)
        key = (json.dumps(body, sort_keys=True), id(rows), len(rows),
               json.dumps(allocation_tags, sort_keys=True, default=str),
               repr([str(x) for x in a]), repr(sorted(kw.items())))
        with _lock:
            hit = memo.get(key)
            if hit is not None:
                memo.move_to_end(key)
                stats["memo_hits"] += 1
                return hit[1]
        out = fn(body, rows, allocation_tags, *a, **kw)
        with _lock:
            memo[key] = (rows, out)
            while len(memo) > 16:
                memo.popitem(last=False)
        return out
    wrapped.__name__ = name
    return wrapped


_original_forecast = fa.ce_get_cost_forecast
fa.ce_get_cost_and_usage = ce_get_cost_and_usage
fa.ce_get_dimension_values = _memo(fa.ce_get_dimension_values, "ce_get_dimension_values")
fa.ce_get_cost_forecast = _memo(fa.ce_get_cost_forecast, "ce_get_cost_forecast")
fa.ce_list_cost_allocation_tags = _memo(fa.ce_list_cost_allocation_tags,
                                        "ce_list_cost_allocation_tags")

def equivalence_check():
    """Every page of both groupings, several page sizes: the same bytes as the plain fake."""
    import datetime
    sys.path.insert(0, HERE)
    import gen_account
    today = datetime.date(2026, 11, 26)
    _, raw = gen_account.account(100, today)
    rows = fa.rows_from_json(raw)
    tags = fa.FakeAWS(fa.Config(quiet=True)).allocation_tags
    services = [fa.BEDROCK_SERVICE] + ["Claude %s (Amazon Bedrock Edition)" % m
                                       for m in ("Sonnet 4.5", "Haiku 4.5", "Opus 4.1")]
    names = {fa.ACCOUNT_ID: "management"}     # an organization's names (LINKED_ACCOUNT)
    for group_by in ([{"Type": "TAG", "Key": "Application"}, {"Type": "TAG", "Key": "Environment"}],
                     [{"Type": "DIMENSION", "Key": "SERVICE"},
                      {"Type": "DIMENSION", "Key": "USAGE_TYPE"}],
                     [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
                      {"Type": "TAG", "Key": "Application"}]):
        for page_size in (7, 37, 500, 5000, 100000):
            body = {"TimePeriod": {"Start": "2026-10-01", "End": "2026-11-27"},
                    "Granularity": "DAILY", "Metrics": ["UnblendedCost"],
                    "Filter": {"Dimensions": {"Key": "SERVICE", "Values": services}},
                    "GroupBy": group_by}
            token, pages = None, 0
            while True:
                b = dict(body, NextPageToken=token) if token else body
                plain = fa.json_bytes(_original(b, rows, tags, today, page_size, 3,
                                                account_names=names), None)
                fast = fa.json_bytes(ce_get_cost_and_usage(b, rows, tags, today, page_size, 3,
                                                           account_names=names), None)
                if plain != fast:
                    print("DIFFERENT: %s page size %d, page %d" % (group_by[0]["Key"], page_size,
                                                                   pages + 1))
                    return 1
                pages += 1
                token = json.loads(plain).get("NextPageToken")
                if not token:
                    break
            print("identical: GroupBy %s, page size %d, %d pages" % (group_by[0]["Key"],
                                                                     page_size, pages))
    # today moves while the fake runs (PUT /_fake/config, plan_bench.py): the same request
    # on another day is another answer (Estimated, the forecast), never the memo of the last
    one = datetime.timedelta(days=1)
    body = {"TimePeriod": {"Start": "2026-11-20", "End": "2026-11-27"}, "Granularity": "DAILY",
            "Metrics": ["UnblendedCost"],
            "Filter": {"Dimensions": {"Key": "SERVICE", "Values": services}},
            "GroupBy": [{"Type": "TAG", "Key": "Application"},
                        {"Type": "TAG", "Key": "Environment"}]}
    fbody = {"TimePeriod": {"Start": "2026-11-28", "End": "2026-12-01"},
             "Metric": "UNBLENDED_COST", "Granularity": "MONTHLY",
             "Filter": {"Dimensions": {"Key": "SERVICE", "Values": services}}}
    for t in (today, today + one, today, today + 2 * one, today + one):
        token, pages = None, 0
        while True:
            b = dict(body, NextPageToken=token) if token else body
            plain = fa.json_bytes(_original(b, rows, tags, t, 500, 3), None)
            fast = fa.json_bytes(ce_get_cost_and_usage(b, rows, tags, t, 500, 3), None)
            if plain != fast:
                print("DIFFERENT: today %s, page %d" % (t, pages + 1))
                return 1
            pages += 1
            token = json.loads(plain).get("NextPageToken")
            if not token:
                break
        plain = fa.json_bytes(_original_forecast(fbody, rows, tags, t), None)
        fast = fa.json_bytes(fa.ce_get_cost_forecast(fbody, rows, tags, t), None)
        if plain != fast:
            print("DIFFERENT: forecast, today %s" % t)
            return 1
        print("identical: today %s, %d pages and the forecast" % (t, pages))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--equivalence-check"]:
        sys.exit(equivalence_check())
    sys.exit(fa.main())
