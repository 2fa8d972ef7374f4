# `make bench` - the performance benchmark of issue 7 and the Cost Explorer query plan of
# issue 12 (tests/bench/README.md). Included by the top-level Makefile, which defines PYTHON
# and the bedrock-cost-exporter target.
#
#   make bench                       full run: issue 7's benchmark (~8-9 min on 2 cores; table
#                                    on stdout, CSV + PNG in tests/bench/results/), then
#                                    make bench-plan's run (~23 min; tests/bench/results/issue-12/),
#                                    then make bench-org's (~1 min; tests/bench/results/issue-14/),
#                                    then make bench-cur's (~2 min, 45 s more the first time:
#                                    10 million CUR 2.0 lines; tests/bench/results/issue-15/)
#   make bench BENCH_ARGS="--quick"  smoke run (2 s wrk runs, 10 and 100 projects, ~1.5 min;
#                                    the plan at 1,000 projects only, ~2 min; the organization
#                                    at page size 5000 only; results in /tmp)
#   make bench BENCH_ARGS="--profile 1000"  perf stat + perf record of one --once refresh
#                                    (needs Debian's linux-perf; no plan run)
#   make bench-plan                  only the query plan (issue 12), both sizes
#   make bench-org                   only the organization's first fill (issue 14): Cost
#                                    Explorer requests of 3 shards vs one exporter covering
#                                    12 members x 2 regions x 100 projects (~1 min;
#                                    tests/bench/results/issue-14/); fails when the shards cost more
#   make bench-deps                  only install the benchmark's Debian packages
#
# Everything runs on 127.0.0.1: the fake AWS account, the exporter, a private nginx (own
# prefix and config, free port) and a Python prometheus_client reference.

BENCH_DEB_PKGS := wrk nginx gnuplot-nox python3-prometheus-client python3-botocore
BENCH_ARGS     ?=

.PHONY: bench bench-deps

# Installs only what is missing (apt-get update only then). Debian's nginx package would start
# a system nginx on port 80: a policy-rc.d that refuses service starts is put in place for the
# install (unless one already exists), and a system nginx that started anyway is stopped.
bench-deps:
	@missing=""; \
	for p in $(BENCH_DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "make bench-deps: all benchmark packages are installed"; exit 0; fi; \
	echo "make bench-deps: installing$$missing"; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	prc=/usr/sbin/policy-rc.d; own_prc=0; \
	if [ ! -e $$prc ]; then \
	  printf '#!/bin/sh\n# make bench-deps: no service starts during install\nexit 101\n' | $$sudo tee $$prc >/dev/null && \
	  $$sudo chmod 755 $$prc && own_prc=1; \
	fi; \
	$$sudo apt-get update -q -o DPkg::Lock::Timeout=600 && \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends $$missing; rc=$$?; \
	[ $$own_prc = 1 ] && $$sudo rm -f $$prc; \
	if [ -s /run/nginx.pid ] && kill -0 "$$(cat /run/nginx.pid)" 2>/dev/null; then \
	  echo "make bench-deps: stopping the system nginx the package started"; \
	  $$sudo systemctl disable --now nginx 2>/dev/null || $$sudo invoke-rc.d nginx stop 2>/dev/null || \
	    $$sudo kill "$$(cat /run/nginx.pid)"; \
	fi; \
	exit $$rc

# deps first (build packages), then the build in a sub-make that sees pkg-config's answers.
# The query plan (bench-plan, below) runs after the benchmark, unless BENCH_ARGS asks for a
# profile; with --quick, at 1,000 projects only and into a temporary directory.
bench: deps bench-deps
	@$(MAKE) --no-print-directory bedrock-cost-exporter build/bench/plan_bench
	$(PYTHON) tests/bench/bench.py --binary ./bedrock-cost-exporter $(BENCH_ARGS)
ifeq ($(findstring --profile,$(BENCH_ARGS)),)
	$(PYTHON) tests/bench/plan_bench.py --driver build/bench/plan_bench \
	  $(if $(findstring --quick,$(BENCH_ARGS)),--sizes 1000 --out "$$(mktemp -d /tmp/bce-plan-quick-XXXXXX)") \
	  $(PLAN_BENCH_ARGS)
	$(PYTHON) tests/bench/org_bench.py --binary ./bedrock-cost-exporter \
	  $(if $(findstring --quick,$(BENCH_ARGS)),--page-sizes 5000 --out "$$(mktemp -d /tmp/bce-org-quick-XXXXXX)") \
	  $(ORG_BENCH_ARGS)
	@$(MAKE) --no-print-directory build/bench/cur_parse
	$(PYTHON) tests/bench/cur_bench.py --binary build/bench/cur_parse \
	  $(if $(findstring --quick,$(BENCH_ARGS)),--lines 200000 --results "$$(mktemp -d /tmp/bce-cur-quick-XXXXXX)") \
	  $(CUR_BENCH_ARGS)
endif

# `make statefile-bench` - the state file's writer (jsonw, streamed) against a cJSON tree of
# the same document, at 1,000 projects (not part of make check): builds
# build/bench/statefile_bench from the optimised objects and runs it.
#   STATEFILE_BENCH_ARGS="DIR PROJECTS RUNS"   (default: build/bench 1000 15)
STATEFILE_BENCH_ARGS ?=

.PHONY: statefile-bench

build/bench/statefile_bench: tests/bench/statefile_bench.c $(filter-out build/obj/main.o,$(OBJS))
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(TEST_PKG_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(TEST_PKG_LIBS)

statefile-bench: build/bench/statefile_bench
	build/bench/statefile_bench $(STATEFILE_BENCH_ARGS)

# `make bench-plan` - the Cost Explorer query plan on the real engine with a simulated clock
# (issue 12): requests and dollars of a first fill, a steady day and a restart, for a full
# account (1,000 projects + default) and for 10,000 projects across 10 regions, on day 28 of
# a month, with Cost Explorer pages of one day of groups (~2 + ~20 min on 2 cores). Builds
# build/bench/plan_bench from the optimised objects (the schedule's jitter seeded:
# --wrap=rand_unit) and runs tests/bench/plan_bench.py; table on stdout, CSV, table and raw
# JSON in tests/bench/results/issue-12/. Not part of make check.
#   PLAN_BENCH_ARGS="--sizes 1000"            one size only (default: 1000,10000)
#   PLAN_BENCH_ARGS="--sizes 1000 --days 35"  35 more simulated days: requests per UTC day
#   PLAN_BENCH_ARGS="--seed 2"                another draw of the schedule's jitter
PLAN_BENCH_ARGS ?=

.PHONY: bench-plan

build/bench/plan_bench: tests/bench/plan_bench.c $(filter-out build/obj/main.o,$(OBJS))
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -Wl,--wrap=rand_unit -o $@ $^ $(LIBS)

bench-plan: deps
	@$(MAKE) --no-print-directory build/bench/plan_bench
	$(PYTHON) tests/bench/plan_bench.py --driver build/bench/plan_bench $(PLAN_BENCH_ARGS)

# `make bench-org` - an organization's first fill (issue 14): a fake organization of 12 member
# accounts x 2 regions x 100 projects (plus the management account), 3 exporter shards
# (--shard=0..2 --total-shards=3) and one exporter covering every account, each against its
# own fake_fast.py, at Cost Explorer page sizes 5000 and 50; prints the Cost Explorer requests
# by operation until /-/ready and fails when the shards together make more GetCostAndUsage
# requests, or more Cost Explorer requests in all, than the single exporter (~1 min on 2
# cores). Table and raw JSON in tests/bench/results/issue-14/. Not part of make check.
#   ORG_BENCH_ARGS="--page-sizes 5000"          one page size only
#   ORG_BENCH_ARGS="--members 24 --projects 50" another organization
ORG_BENCH_ARGS ?=

.PHONY: bench-org

bench-org: deps
	@$(MAKE) --no-print-directory bedrock-cost-exporter
	$(PYTHON) tests/bench/org_bench.py --binary ./bedrock-cost-exporter $(ORG_BENCH_ARGS)

# `make bench-cur` - AWS Data Exports (issue 15): the data_exports source's reading path
# (base/gunzip.c, sources/cur_api.c with every aggregate table) on a generated CUR 2.0 data
# file of 10 million Bedrock line items (~4.6 GB inflated; generated once into build/bench/,
# ~45 s), time, peak RSS (target under 64 MiB)
# and lines per second, next to Python's gzip + csv on the same file. Table and raw numbers
# in tests/bench/results/issue-15/. Not part of make check.
#   CUR_BENCH_ARGS="--lines 1000000"     a smaller file
CUR_BENCH_ARGS ?=

.PHONY: bench-cur

build/bench/cur_parse: tests/bench/cur_parse.c $(filter-out build/obj/main.o,$(OBJS))
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

bench-cur: deps build/bench/cur_parse
	$(PYTHON) tests/bench/cur_bench.py --binary build/bench/cur_parse $(CUR_BENCH_ARGS)
