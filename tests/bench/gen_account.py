#!/usr/bin/env python3
"""Synthetic Bedrock accounts for `make bench` (tests/bench/README.md).

account(n, today) -> (projects, rows)

- projects: the `default` project plus n projects for PUT /_fake/projects/us-east-1.
  Tags: the product taxonomy (Application, Environment, Team, CostCenter) plus Owner,
  BusinessUnit, Tier, DataClassification and Project. Application+Environment (the
  attribution tags) are unique per project, except about 1 project in 200 that shares its
  pair with another (so `__ambiguous__` is exercised too); about 8% lack Team or CostCenter,
  about 10% are archived (their spend stops 30 days ago).
- rows: the fake's ledger, 60 days of daily rows (today-59 .. today): per project and day
  1-3 models x input/output (sometimes cache tokens), first-party models under
  `Amazon Bedrock`, Claude under Marketplace service names; untagged spend (the default
  project), spend of applications with no project (`__unmatched__`), and a little
  non-Bedrock spend with project tags (EC2, Lambda) that the exporter must ignore.

Deterministic for a given (n, today).
"""
import datetime
import json
import random
import sys

ENVS = ["Production", "Staging", "Development", "Sandbox"]
WORDS_A = ["Customer", "Invoice", "Fraud", "Search", "Voice", "Code", "Doc", "Claims",
           "Support", "Sales", "Risk", "Legal", "Travel", "Health", "Retail", "Media",
           "Payroll", "Supply", "Market", "Insight"]
WORDS_B = ["Chatbot", "Summarizer", "Detector", "Assistant", "Agent", "Translator",
           "Classifier", "Extractor", "Copilot", "Router", "Analyzer", "Writer"]
BUSINESS_UNITS = ["Retail", "Wholesale", "Corporate", "Research", "Operations", "Finance"]
TIERS = ["gold", "silver", "bronze"]
DATA_CLASSES = ["public", "internal", "confidential", "restricted"]

BEDROCK = "Amazon Bedrock"
MP_SERVICES = ["Claude Sonnet 4.5 (Amazon Bedrock Edition)",
               "Claude Haiku 4.5 (Amazon Bedrock Edition)",
               "Claude Opus 4.1 (Amazon Bedrock Edition)"]
MANTLE_MODELS = ["openai.gpt-oss-120b", "openai.gpt-oss-20b", "amazon.nova-pro-v1:0",
                 "amazon.nova-lite-v1:0", "amazon.nova-micro-v1:0",
                 "meta.llama3-3-70b-instruct-v1:0", "mistral.mistral-large-2407-v1:0",
                 "deepseek.r1-v1:0", "qwen.qwen3-32b-v1:0"]
# one entry per "model": (service, [usage types])
MODELS = [(BEDROCK, ["USE1-%s-mantle-%s-tokens-standard" % (m, k)
                     for k in ("input", "output", "cache-read")]) for m in MANTLE_MODELS] + \
         [(s, ["USE1-MP:USE1_%s-Units" % k
               for k in ("InputTokens", "OutputTokens", "CacheReadInputTokens")])
          for s in MP_SERVICES]
NON_BEDROCK = [("Amazon Elastic Compute Cloud - Compute", "USE1-BoxUsage:m5.large"),
               ("AWS Lambda", "USE1-Lambda-GB-Second")]
DAYS = 60
BASE_CREATED = 1767225600  # 2026-01-01T00:00:00Z


def account(n, today):
    rnd = random.Random(1_000_003 * n + 7)
    napps = max(1, (n + 2) // 3)
    apps = []
    for a in range(napps):
        apps.append("%s%s-%04d" % (WORDS_A[a % len(WORDS_A)],
                                   WORDS_B[(a // len(WORDS_A)) % len(WORDS_B)], a))
    nteams = max(5, n // 25)
    ncc = max(3, n // 50)
    projects = [{"id": "default", "name": "Default project", "status": "active",
                 "created_at": BASE_CREATED, "tags": {}}]
    spenders = []   # (tags seen by billing, archived, [(service, usage_type, base $/day)])
    seen = []
    for i in range(n):
        if seen and rnd.random() < 0.005:
            app, env = rnd.choice(seen)          # shares its pair: __ambiguous__
        else:
            app, env = apps[i // 3], ENVS[(i % 3) if rnd.random() < 0.9 else 3]
            if (app, env) in seen:
                env = ENVS[3]
        seen.append((app, env))
        name = "%s-%s-%05d" % (app, env[:4].lower(), i)
        tags = {"Application": app, "Environment": env,
                "Team": "team-%03d" % rnd.randrange(nteams),
                "CostCenter": "CC-%04d" % (1000 + rnd.randrange(ncc)),
                "Owner": "owner%03d@example.com" % rnd.randrange(max(8, n // 10)),
                "BusinessUnit": rnd.choice(BUSINESS_UNITS), "Tier": rnd.choice(TIERS),
                "DataClassification": rnd.choice(DATA_CLASSES), "Project": name}
        if rnd.random() < 0.04:
            del tags["Team"]
        if rnd.random() < 0.04:
            del tags["CostCenter"]
        archived = rnd.random() < 0.10
        projects.append({"name": name, "status": "archived" if archived else "active",
                         "created_at": BASE_CREATED + i * 61, "tags": tags})
        nmodels = 1 if rnd.random() < 0.7 else (2 if rnd.random() < 0.85 else 3)
        usage = []
        for svc, uts in rnd.sample(MODELS, nmodels):
            level = rnd.uniform(0.5, 60.0) * (2.5 if env == "Production" else 1.0)
            usage.append((svc, uts[0], level))
            usage.append((svc, uts[1], level * rnd.uniform(1.5, 4.0)))
            if rnd.random() < 0.15:
                usage.append((svc, uts[2], level * 0.1))
        billing = {k: tags[k] for k in ("Application", "Environment", "Team", "CostCenter",
                                        "Owner") if k in tags}
        spenders.append((billing, archived, usage))
    # spend that belongs to no single project
    spenders.append(({}, False, [(BEDROCK, MODELS[1][1][0], 12.0), (BEDROCK, MODELS[1][1][1], 25.0),
                                 (MP_SERVICES[0], MODELS[-3][1][0], 8.0)]))
    for u in range(max(2, n // 100)):
        spenders.append(({"Application": "LegacyBot-%02d" % u, "Environment": "Production"},
                         False, [(BEDROCK, MODELS[0][1][0], 3.0), (BEDROCK, MODELS[0][1][1], 7.0)]))
    rows = []
    first = today - datetime.timedelta(days=DAYS - 1)
    dates = [(first + datetime.timedelta(days=d)) for d in range(DAYS)]
    for billing, archived, usage in spenders:
        for d in dates:
            if archived and (today - d).days < 30:
                continue
            weekend = d.weekday() >= 5
            ds = d.isoformat()
            for svc, ut, level in usage:
                amount = level * rnd.uniform(0.7, 1.3) * (0.6 if weekend else 1.0)
                if d == today:
                    amount *= 0.4
                rows.append({"date": ds, "service": svc, "usage_type": ut,
                             "tags": billing, "cost": "%.10f" % amount})
    for billing, _, _ in spenders[:max(1, n // 20)]:
        for d in dates:
            for svc, ut in NON_BEDROCK:
                rows.append({"date": d.isoformat(), "service": svc, "usage_type": ut,
                             "tags": billing, "cost": "%.10f" % rnd.uniform(1, 9)})
    return projects, rows


def main():
    n = int(sys.argv[1])
    today = datetime.date.fromisoformat(sys.argv[2]) if len(sys.argv) > 2 else \
        datetime.datetime.now(datetime.timezone.utc).date()
    projects, rows = account(n, today)
    json.dump({"projects": projects, "rows": rows}, sys.stdout)


if __name__ == "__main__":
    main()
