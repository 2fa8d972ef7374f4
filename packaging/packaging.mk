# Installation and packaging targets, included by the top-level Makefile, which defines
# VERSION, PREFIX, DESTDIR, BINDIR, SYSCONFDIR and PYTHON. See packaging/README.md.
#
#   make install        binary, man page, unit, config (never overwritten), /etc/default file
#                       (never overwritten), examples, dashboards and rules
#   make uninstall      removes what install put outside SYSCONFDIR (the config is kept)
#   make man            regenerates packaging/bedrock-cost-exporter.1 from --help
#   make man-check      fails when the committed man page differs from --help (fast)
#   make packaging-check  man-check + static checks of the packaging files (fast, no apt)
#   make dist           build/bedrock-cost-exporter-$(VERSION).tar.gz from `git ls-files`
#   make distcheck      dist, unpack it under build/ and run `make check` there
#   make deb            build/deb/bedrock-cost-exporter_*.deb with dpkg-buildpackage + lintian
#   make deb-test       deb, then install/run/purge it on this machine (packaging/deb-test.sh)
#   make container-test the Dockerfile's runtime stage in a debootstrap'd chroot

DATADIR    ?= $(PREFIX)/share
MANDIR     ?= $(DATADIR)/man
# Debian bookworm keeps units in /lib (usrmerge moratorium); elsewhere under PREFIX.
ifeq ($(PREFIX),/usr)
UNITDIR    ?= /lib/systemd/system
else
UNITDIR    ?= $(PREFIX)/lib/systemd/system
endif
PKGDATADIR  = $(DATADIR)/bedrock-cost-exporter
CONFDIR     = $(SYSCONFDIR)/bedrock-cost-exporter

# Whatever exists of the examples and of dashboards/ (a missing file or directory installs
# nothing). dashboards/ is installed as a tree: Grafana JSON, provisioning and rule YAML, docs.
EXAMPLE_FILES   := $(wildcard etc/bedrock-cost-exporter.conf etc/web-config.yml etc/prometheus-scrape.yml)
DASHBOARD_FILES  = $(sort $(shell find dashboards -type f \( -name '*.json' -o -name '*.yml' \
                     -o -name '*.yaml' -o -name '*.md' \) 2>/dev/null))

# The committed unit and man page name the Debian paths; install rewrites them for PREFIX.
UNIT_SED = -e 's|/usr/bin/bedrock-cost-exporter|$(BINDIR)/bedrock-cost-exporter|g' \
           -e 's|/etc/default/|$(SYSCONFDIR)/default/|g'
man_esc  = $(subst -,\\-,$(1))
MAN_SED  = -e 's|/etc/|$(SYSCONFDIR)/|g' \
           -e 's|/lib/systemd/system/|$(call man_esc,$(UNITDIR))/|g' \
           -e 's|/usr/share/bedrock\\-cost\\-exporter/|$(call man_esc,$(PKGDATADIR))/|g'

.PHONY: install uninstall man man-check packaging-check dist distcheck deb deb-test container-test

install: bedrock-cost-exporter
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(CONFDIR) $(DESTDIR)$(SYSCONFDIR)/default \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(PKGDATADIR)/examples
	install -m 0755 bedrock-cost-exporter $(DESTDIR)$(BINDIR)/bedrock-cost-exporter
	@if [ -e $(DESTDIR)$(CONFDIR)/bedrock-cost-exporter.conf ]; then \
	  echo "keeping existing $(DESTDIR)$(CONFDIR)/bedrock-cost-exporter.conf"; \
	else \
	  echo "install -m 0644 etc/bedrock-cost-exporter.conf $(DESTDIR)$(CONFDIR)/"; \
	  install -m 0644 etc/bedrock-cost-exporter.conf $(DESTDIR)$(CONFDIR)/; \
	fi
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/default/bedrock-cost-exporter ]; then \
	  echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/default/bedrock-cost-exporter"; \
	else \
	  echo "install -m 0640 packaging/default $(DESTDIR)$(SYSCONFDIR)/default/bedrock-cost-exporter"; \
	  install -m 0640 packaging/default $(DESTDIR)$(SYSCONFDIR)/default/bedrock-cost-exporter; \
	fi
	sed $(UNIT_SED) packaging/bedrock-cost-exporter.service > $(DESTDIR)$(UNITDIR)/bedrock-cost-exporter.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/bedrock-cost-exporter.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/bedrock-cost-exporter.service.tmp $(DESTDIR)$(UNITDIR)/bedrock-cost-exporter.service
	sed $(MAN_SED) packaging/bedrock-cost-exporter.1 > $(DESTDIR)$(MANDIR)/man1/bedrock-cost-exporter.1.tmp
	chmod 0644 $(DESTDIR)$(MANDIR)/man1/bedrock-cost-exporter.1.tmp
	mv -f $(DESTDIR)$(MANDIR)/man1/bedrock-cost-exporter.1.tmp $(DESTDIR)$(MANDIR)/man1/bedrock-cost-exporter.1
	$(if $(EXAMPLE_FILES),install -m 0644 $(EXAMPLE_FILES) $(DESTDIR)$(PKGDATADIR)/examples/)
	$(foreach f,$(DASHBOARD_FILES),install -D -m 0644 $(f) $(DESTDIR)$(PKGDATADIR)/$(f) &&) true

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/bedrock-cost-exporter \
	  $(DESTDIR)$(UNITDIR)/bedrock-cost-exporter.service \
	  $(DESTDIR)$(MANDIR)/man1/bedrock-cost-exporter.1
	rm -rf $(DESTDIR)$(PKGDATADIR)
	@echo "kept $(DESTDIR)$(CONFDIR)/ and $(DESTDIR)$(SYSCONFDIR)/default/bedrock-cost-exporter (yours to remove)"

# ---- man page: generated from --help, so flags and keys cannot drift --------------------

man: bedrock-cost-exporter
	$(PYTHON) packaging/gen-man.py --binary ./bedrock-cost-exporter --output packaging/bedrock-cost-exporter.1

man-check: bedrock-cost-exporter
	$(PYTHON) packaging/gen-man.py --check --binary ./bedrock-cost-exporter --output packaging/bedrock-cost-exporter.1

# man-check + the unit, the Debian metadata and the Dockerfile agree with the Makefile
packaging-check: bedrock-cost-exporter
	$(PYTHON) packaging/gen-man.py --check --lint --binary ./bedrock-cost-exporter --output packaging/bedrock-cost-exporter.1
	$(PYTHON) tests/packaging/check_packaging.py --binary ./bedrock-cost-exporter

# ---- dist: the tracked files as they are in the work tree (uncommitted edits included) ----

DIST_NAME    := bedrock-cost-exporter-$(VERSION)
DIST_TARBALL := build/$(DIST_NAME).tar.gz

dist:
	@[ "$$(git rev-parse --show-toplevel 2>/dev/null)" = "$(CURDIR)" ] || { \
	  echo "make dist needs the top of a git work tree (it packs \`git ls-files\`)" >&2; exit 1; }
	rm -rf build/dist && mkdir -p build/dist
	git ls-files -z | xargs -0 -r sh -c 'for f; do \
	  if [ -e "$$f" ] || [ -L "$$f" ]; then printf "%s\0" "$$f"; fi; done' sh > build/dist/files
	tar --create --no-recursion --null --files-from=build/dist/files \
	  --transform 's,^,$(DIST_NAME)/,' --sort=name --owner=0 --group=0 --numeric-owner \
	  --mtime=@$$(git log -1 --format=%ct 2>/dev/null || echo 0) --format=gnu \
	  --file=build/dist/$(DIST_NAME).tar
	gzip -9nf build/dist/$(DIST_NAME).tar
	mv -f build/dist/$(DIST_NAME).tar.gz $(DIST_TARBALL)
	@echo "$(DIST_TARBALL): $$(tr -cd '\0' < build/dist/files | wc -c) files"

distcheck: dist
	rm -rf build/distcheck && mkdir -p build/distcheck
	tar -xzf $(DIST_TARBALL) -C build/distcheck
	$(MAKE) -C build/distcheck/$(DIST_NAME) check
	$(MAKE) -C build/distcheck/$(DIST_NAME) install DESTDIR=$(CURDIR)/build/distcheck/stage PREFIX=/usr
	test -x build/distcheck/stage/usr/bin/bedrock-cost-exporter
	@echo "distcheck: $(DIST_TARBALL) builds, passes make check and installs"

# ---- Debian package ---------------------------------------------------------------------

DEB_DIR   := build/deb
DEB_SRC   := $(DEB_DIR)/bedrock-cost-exporter-$(VERSION)
DEB_TOOLS := dpkg-dev debhelper lintian fakeroot

# $(call apt_ensure,PACKAGES): apt-get install what is missing (apt-get update only then)
define apt_ensure
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

deb:
	$(call apt_ensure,$(DEB_TOOLS))
	@v=$$(dpkg-parsechangelog -l packaging/debian/changelog -S Version); \
	if [ "$${v%-*}" != "$(VERSION)" ]; then \
	  echo "packaging/debian/changelog is at $$v but VERSION is $(VERSION): add a changelog entry (dch -v $(VERSION)-1)" >&2; \
	  exit 1; fi
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_SRC)
	{ if [ "$$(git rev-parse --show-toplevel 2>/dev/null)" = "$(CURDIR)" ]; then \
	    git ls-files -z --cached --others --exclude-standard; \
	  else find . \( -path ./build -o -path ./.git -o -path ./bedrock-cost-exporter \) -prune -o \
	    \( -type f -o -type l \) -printf '%P\0'; fi; } | xargs -0 -r sh -c 'for f; do \
	  case "$$f" in packaging/debian/*) continue;; esac; \
	  if [ -e "$$f" ] || [ -L "$$f" ]; then printf "%s\0" "$$f"; fi; done' sh > $(DEB_DIR)/files
	tar --create --no-recursion --null --files-from=$(DEB_DIR)/files --file=$(DEB_DIR)/src.tar
	tar -x -f $(DEB_DIR)/src.tar -C $(DEB_SRC) && rm -f $(DEB_DIR)/src.tar $(DEB_DIR)/files
	cp -r packaging/debian $(DEB_SRC)/debian
	@cd $(DEB_SRC) && if ! dpkg-checkbuilddeps; then \
	  echo "installing the build dependencies of debian/control"; sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get build-dep -y -q ./; fi
	cd $(DEB_SRC) && dpkg-buildpackage -us -uc -b
	lintian --fail-on error,warning --display-info --pedantic --info $(DEB_DIR)/bedrock-cost-exporter_*.changes
	@ls -l $(DEB_DIR)/*.deb

deb-test: deb
	packaging/deb-test.sh $$(ls $(DEB_DIR)/bedrock-cost-exporter_*_*.deb | grep -v dbgsym)

container-test: bedrock-cost-exporter
	packaging/container-test.sh
