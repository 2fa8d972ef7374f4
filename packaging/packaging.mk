# Installation and packaging targets, included by the top-level Makefile.
# PREFIX, DESTDIR, BINDIR, SYSCONFDIR are defined there.

.PHONY: install uninstall

install: bedrock-cost-exporter
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/bedrock-cost-exporter
	install -m 0755 bedrock-cost-exporter $(DESTDIR)$(BINDIR)/bedrock-cost-exporter
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/bedrock-cost-exporter/bedrock-cost-exporter.conf ]; then \
	  echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/bedrock-cost-exporter/bedrock-cost-exporter.conf"; \
	else \
	  install -m 0644 etc/bedrock-cost-exporter.conf $(DESTDIR)$(SYSCONFDIR)/bedrock-cost-exporter/; \
	fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/bedrock-cost-exporter
