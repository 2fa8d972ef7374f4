#!/usr/bin/env python3
"""Writes a synthetic AWS Data Exports (CUR 2.0) data file for `make bench-cur`: N line items
as gzip-compressed CSV, most of them Bedrock (usage, some credits and refunds, a few tax
lines), with the resource_tags and product map columns, and prints what they add up to (the
Bedrock cost per line item type, as JSON on stdout) so the readers' sums can be checked.

The column set is the one the exporter's recommended export query selects (tests/bench/
README.md, issue 15); the map columns are written as JSON objects, the form the exporter
accepts for them (an assumption until checked against a real export: README.md there).
Deterministic: the same --lines and --seed give the same file.
"""
import argparse
import decimal
import gzip
import json
import random
import sys

COLUMNS = ("identity_line_item_id", "identity_time_interval", "bill_payer_account_id",
           "line_item_usage_account_id", "line_item_line_item_type", "line_item_product_code",
           "line_item_usage_type", "line_item_operation", "line_item_usage_start_date",
           "line_item_usage_end_date", "line_item_usage_amount", "line_item_unblended_cost",
           "line_item_net_unblended_cost", "line_item_iam_principal", "product_servicecode",
           "product", "resource_tags")

MODELS = ("Claude3.5Sonnet", "Claude3Haiku", "NovaLite", "NovaPro", "Llama3-70B", "TitanEmbedV2")
APPS = ("Chatbot", "DocSummarizer", "Translator", "FraudDetection", "SearchAssist", "")
ENVS = ("Prod", "Staging", "Dev")
ACCOUNTS = ("111122223333", "444455556666", "777788889999")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=10_000_000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--level", type=int, default=1, help="gzip level (1: fast, as a bench needs)")
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    # a pool of distinct rows, reused with a changing id and hour: the file is as long as
    # asked, its content varied enough that gzip does not make it trivial
    pool = []
    for i in range(4096):
        acct = ACCOUNTS[i % len(ACCOUNTS)]
        model = MODELS[rnd.randrange(len(MODELS))]
        direction = ("input-tokens", "output-tokens", "cache-read-input-tokens")[rnd.randrange(3)]
        r = rnd.random()
        kind = "Usage" if r < 0.94 else "Credit" if r < 0.97 else "Refund" if r < 0.99 else "Tax"
        amount = rnd.randrange(1, 200000)
        cost = decimal.Decimal(amount) * decimal.Decimal("0.000003")
        if kind in ("Credit", "Refund"):
            cost = -cost
        app = APPS[rnd.randrange(len(APPS))]
        env = ENVS[rnd.randrange(len(ENVS))]
        tags = {} if not app else {"user_application": app, "user_environment": env,
                                   "user_team": "Team%d" % (i % 7)}
        product = {"product_name": "Amazon Bedrock", "region": "us-east-1",
                   "usagetype": "USE1-%s-%s" % (model, direction)}
        principal = "arn:aws:iam::%s:role/app-%d" % (acct, i % 23)
        pool.append((acct, kind, "USE1-%s-%s" % (model, direction), amount, cost, principal,
                     json.dumps(product, separators=(",", ":")),
                     json.dumps(tags, separators=(",", ":"))))
    totals = {}
    with gzip.open(args.out, "wt", compresslevel=args.level, newline="") as f:
        f.write(",".join(COLUMNS) + "\n")
        block = []
        for n in range(args.lines):
            acct, kind, ut, amount, cost, principal, product, tags = pool[n % len(pool)]
            day = 1 + (n // 400000) % 28
            hour = (n // 20000) % 24
            start = "2026-11-%02dT%02d:00:00Z" % (day, hour)
            end = "2026-11-%02dT%02d:59:59Z" % (day, hour)
            block.append('%012x,%s/%s,111122223333,%s,%s,AmazonBedrock,%s,InvokeModel,%s,%s,'
                         '%d,%s,%s,%s,AmazonBedrock,"%s","%s"\n'
                         % (n, start, end, acct, kind, ut, start, end, amount, cost, cost,
                            principal, product.replace('"', '""'), tags.replace('"', '""')))
            totals[kind] = totals.get(kind, decimal.Decimal(0)) + cost
            if len(block) == 10000:
                f.write("".join(block))
                block = []
        f.write("".join(block))
    json.dump({"lines": args.lines, "cost_by_line_item_type": {k: str(v) for k, v in
                                                              sorted(totals.items())}},
              sys.stdout)
    print()


if __name__ == "__main__":
    main()
