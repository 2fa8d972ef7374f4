# bedrock-cost-exporter - hand-written GNU Makefile.
#
#   make            build ./bedrock-cost-exporter (run `make deps` first on a new machine)
#   make deps       install the missing Debian packages (build and test), apt-get update only if needed
#   make check      deps + build + unit tests (ASan/UBSan) + integration tests
#   make demo       deps + build + fake AWS account + exporter; prints the /metrics URL
#   make install    PREFIX, DESTDIR, BINDIR, SYSCONFDIR, UNITDIR, DATADIR, MANDIR honoured
#   make deb, make dist, make container-test: see packaging/README.md
#   make SANITIZE=address,undefined   sanitizer build of everything

VERSION    := 0.1.0
REVISION   := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
DESTDIR    ?=

CC         ?= cc
PYTHON     ?= /usr/bin/python3
PKG_CONFIG ?= pkg-config
PKGS       := libmicrohttpd libcurl libconfig zlib yaml-0.1 gnutls libxcrypt expat
# the tests only: cmocka, and cJSON as the reference parser the JSON reader and writer are
# checked against (the daemon itself reads with src/base/jsontape.c, writes with jsonw.c)
TEST_PKGS  := cmocka libcjson
TEST_PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(TEST_PKGS) 2>/dev/null)
TEST_PKG_LIBS   = $(shell $(PKG_CONFIG) --libs $(TEST_PKGS) 2>/dev/null)

PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)

WARNINGS   := -Wall -Wextra -Werror -Wshadow -Wconversion -Wstrict-prototypes \
              -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral
BASE_CFLAGS = -std=c11 -D_GNU_SOURCE -O2 -g $(WARNINGS) -MMD -MP -Isrc \
              -DBCE_VERSION='"$(VERSION)"' -DBCE_REVISION='"$(REVISION)"' \
              -DBCE_SYSCONFDIR='"$(SYSCONFDIR)"' $(PKG_CFLAGS)
ifneq ($(SANITIZE),)
SAN_FLAGS  := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
# user CFLAGS/LDFLAGS come last and are never overwritten
ALL_CFLAGS  = $(BASE_CFLAGS) $(SAN_FLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)
LIBS        = $(PKG_LIBS) -lpthread -lm

# Objects that embed the version are rebuilt when it changes (new commit).
REV_STAMP  := build/version.stamp
$(shell mkdir -p build; echo '$(VERSION) $(REVISION)' | cmp -s - $(REV_STAMP) || echo '$(VERSION) $(REVISION)' > $(REV_STAMP))
VERSIONED  := main model/metrics serve/landing aws/http_client

# src/ is one folder per layer (src/README.md); every .c below it is built
SRCS    := $(wildcard src/*.c src/*/*.c)
LIBSRCS := $(filter-out src/main.c,$(SRCS))
OBJS    := $(SRCS:src/%.c=build/obj/%.o)

# Unit tests always build with ASan+UBSan, in their own object directory.
TEST_SAN    := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TEST_CFLAGS  = $(BASE_CFLAGS) $(TEST_SAN) $(TEST_PKG_CFLAGS) \
               -Wno-missing-prototypes $(CFLAGS)
SAN_OBJS    := $(LIBSRCS:src/%.c=build/san/%.o)
UNIT_SRCS   := $(wildcard tests/unit/test_*.c)
UNIT_BINS   := $(UNIT_SRCS:tests/unit/%.c=build/unit/%)

# Debian packages for building and testing. libcurl: any of its -dev flavours will do.
DEB_BUILD_PKGS := gcc make pkg-config libc6-dev libmicrohttpd-dev libconfig-dev \
                  libyaml-dev libgnutls28-dev libcrypt-dev zlib1g-dev libexpat1-dev
# only the tests need these (the packaging checks compare the build list with debian/control
# and the Dockerfile)
DEB_TEST_PKGS  := libcmocka-dev libcjson-dev prometheus python3 python3-botocore git ca-certificates \
                  python3-yaml shellcheck curl openssl valgrind libfaketime
DEB_PKGS       := $(DEB_BUILD_PKGS) $(DEB_TEST_PKGS)

.PHONY: all deps check unit fuzz fuzz-replay integration faults soak valgrind security-check dashboards-check docs-check demo demo-smoke clean pkgcheck

all: bedrock-cost-exporter

pkgcheck:
	@$(PKG_CONFIG) --exists $(PKGS) || { \
	  echo "missing build dependencies ($(PKGS)); run: make deps" >&2; exit 1; }

bedrock-cost-exporter: $(OBJS) | pkgcheck
	$(CC) $(ALL_LDFLAGS) -o $@ $(OBJS) $(LIBS)

# `make V=1` shows the full commands
Q := $(if $(V),,@)

build/obj/%.o: src/%.c | pkgcheck
	@mkdir -p $(@D)
	@$(if $(V),,echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(VERSIONED:%=build/obj/%.o) $(VERSIONED:%=build/san/%.o): $(REV_STAMP)

# The sanitizer build of the daemon, used by the integration tests.
build/san/%.o: src/%.c | pkgcheck
	@mkdir -p $(@D)
	@$(if $(V),,echo "  CC san  $<")
	$(Q)$(CC) $(BASE_CFLAGS) $(TEST_SAN) $(CFLAGS) -c -o $@ $<

build/san/libbce.a: $(SAN_OBJS)
	rm -f $@ && ar rcs $@ $^

build/san/bedrock-cost-exporter: build/san/main.o build/san/libbce.a
	$(CC) $(TEST_SAN) $(LDFLAGS) -o $@ $^ $(LIBS)

# A unit test may #include the module it tests to reach its statics; the
# archive then supplies only the other modules.
build/unit/%: tests/unit/%.c build/san/libbce.a
	@mkdir -p $(@D)
	@$(if $(V),,echo "  CC unit $<")
	$(Q)$(CC) $(TEST_CFLAGS) -o $@ $< build/san/libbce.a $(LIBS) $(TEST_PKG_LIBS)

deps:
	@missing=""; \
	for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if ! dpkg-query -W -f='$${Status}\n' libcurl4-openssl-dev libcurl4-gnutls-dev libcurl4-nss-dev 2>/dev/null \
	     | grep -q '^install ok installed'; then missing="$$missing libcurl4-openssl-dev"; fi; \
	if [ -z "$$missing" ]; then echo "make deps: all build and test dependencies are installed"; exit 0; fi; \
	echo "make deps: installing$$missing"; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	$$sudo apt-get update -q && \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $$missing

check: deps
	@$(MAKE) --no-print-directory unit fuzz-replay integration faults security-check \
	  dashboards-check docs-check packaging-check demo-smoke

unit: $(UNIT_BINS)
	@failed=0; for t in $(UNIT_BINS); do \
	  echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $$t || failed=1; \
	done; exit $$failed

integration: bedrock-cost-exporter build/san/bedrock-cost-exporter
	$(PYTHON) tests/integration/run.py --binary build/san/bedrock-cost-exporter

# Fuzz targets (tests/fuzz/fuzz_*.c). `make check` replays every corpus under
# ASan/UBSan with gcc; `make fuzz FUZZ_SECONDS=N` fuzzes each target with clang's
# libFuzzer for N seconds, starting from the corpus (new finds stay in build/fuzz/).
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -O1 -g $(PKG_CFLAGS) -Isrc -DBCE_VERSION='"$(VERSION)"'

build/fuzz-replay/%: tests/fuzz/%.c tests/fuzz/replay.c build/san/libbce.a
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) $(TEST_PKG_CFLAGS) $(TEST_SAN) -Wno-missing-prototypes -o $@ $< \
	  tests/fuzz/replay.c build/san/libbce.a $(LIBS) $(TEST_PKG_LIBS)

fuzz-replay: $(FUZZ_TARGETS:%=build/fuzz-replay/%)
	@for t in $(FUZZ_TARGETS); do \
	  name=$${t#fuzz_}; \
	  ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=tests/fuzz/lsan.supp \
	    build/fuzz-replay/$$t tests/fuzz/corpus/$$name || exit 1; \
	done

build/fuzz/%: tests/fuzz/%.c $(LIBSRCS)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) $(TEST_PKG_CFLAGS) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -o $@ $< $(LIBSRCS) $(LIBS) $(TEST_PKG_LIBS)

fuzz: $(FUZZ_TARGETS:%=build/fuzz/%)
	@for t in $(FUZZ_TARGETS); do \
	  name=$${t#fuzz_}; mkdir -p build/fuzz/corpus-$$name build/fuzz/crashes-$$name; \
	  echo "== $$t for $(FUZZ_SECONDS) s"; \
	  LSAN_OPTIONS=suppressions=tests/fuzz/lsan.supp \
	  build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/crashes-$$name/ \
	    build/fuzz/corpus-$$name tests/fuzz/corpus/$$name > build/fuzz/$$t.log 2>&1; rc=$$?; \
	  grep -E "stat::number_of_executed_units|stat::peak_rss|Done|ERROR|SUMMARY" build/fuzz/$$t.log; \
	  [ $$rc = 0 ] || { echo "$$t found a problem: see build/fuzz/$$t.log and build/fuzz/crashes-$$name/"; exit 1; }; \
	done

# the fault matrix: every surface x every fault, last good data kept, right counter,
# logged once, automatic recovery; kill -9, reload storm, clock jump
faults: bedrock-cost-exporter build/san/bedrock-cost-exporter
	$(PYTHON) tests/faults/run.py --binary build/san/bedrock-cost-exporter \
	  --release-binary ./bedrock-cost-exporter

# not in make check: RSS and descriptors under continuous scraping and rotating faults,
# then the integration suite under valgrind
SOAK_SECONDS ?= 120
soak: bedrock-cost-exporter
	$(PYTHON) tests/soak/soak.py --seconds $(SOAK_SECONDS) --binary ./bedrock-cost-exporter
	@$(MAKE) --no-print-directory valgrind

valgrind: bedrock-cost-exporter
	sh tests/soak/valgrind.sh --binary ./bedrock-cost-exporter

# TLS (with and without client certificates), basic auth and certificate rotation,
# against curl and a real Prometheus scrape; hostile clients (connection slots, vanished
# clients, basic-auth timing and load)
security-check: bedrock-cost-exporter
	$(PYTHON) tests/security/http_abuse.py ./bedrock-cost-exporter
	$(PYTHON) tests/security/tls_e2e.py ./bedrock-cost-exporter

# rules (promtool check/test), dashboard conventions, and every panel query against a
# real Prometheus scraping the exporter and the fake account
dashboards-check: bedrock-cost-exporter
	tests/dashboards/run.sh

# the docs (man page, etc/ example, folder READMEs) match the binary and src/, and src/'s
# folders are layers whose includes only go down (src/README.md)
docs-check: bedrock-cost-exporter
	$(PYTHON) tests/docs/check_layers.py
	$(PYTHON) tests/docs/check_docs.py ./bedrock-cost-exporter

# make demo's own path, checked without waiting for Ctrl-C; and its summary reaching a pipe
# while it runs (make demo | tee)
demo-smoke: bedrock-cost-exporter
	$(PYTHON) tests/demo/demo.py --binary ./bedrock-cost-exporter --smoke --listen-port 0
	$(PYTHON) tests/demo/check_output.py --binary ./bedrock-cost-exporter

demo: deps
	@$(MAKE) --no-print-directory all
	@$(PYTHON) tests/demo/demo.py --binary ./bedrock-cost-exporter

# install, uninstall, dist, deb, man page: packaging/packaging.mk
include packaging/packaging.mk
# make bench: tests/bench/bench.mk (not part of make check)
include tests/bench/bench.mk

clean:
	rm -rf build bedrock-cost-exporter

-include $(OBJS:.o=.d) $(SAN_OBJS:.o=.d) build/san/main.d $(UNIT_BINS:=.d)
