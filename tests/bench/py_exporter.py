#!/usr/bin/env python3
"""The Python reference of `make bench`: what a user might write instead of the C exporter.

Parses an exposition captured from bedrock-cost-exporter once and exposes the same families
and series with a custom prometheus_client collector, served by prometheus_client's own
start_http_server (threaded WSGI server; gzip when the client accepts it). Like a real
Python exporter serving a cache, every scrape runs the collector and renders the text.

  py_exporter.py --body FILE --port PORT [--port-file PATH]
"""
import argparse
import os
import signal
import sys
import threading

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, Metric
from prometheus_client.parser import text_string_to_metric_families


class CapturedCollector:
    def __init__(self, text):
        # keep plain data, rebuild Metric objects per scrape like a cache-serving exporter
        self.families = []
        for fam in text_string_to_metric_families(text):
            self.families.append((fam.name, fam.documentation, fam.type,
                                  [(s.name, dict(s.labels), s.value) for s in fam.samples]))

    def collect(self):
        for name, doc, typ, samples in self.families:
            m = Metric(name, doc, typ)
            for sname, labels, value in samples:
                m.add_sample(sname, labels, value)
            yield m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--body", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--port-file")
    args = ap.parse_args()
    with open(args.body, encoding="utf-8") as f:
        text = f.read()
    for c in list(REGISTRY._collector_to_names):   # only the captured families
        REGISTRY.unregister(c)
    REGISTRY.register(CapturedCollector(text))
    start_http_server(args.port, addr="127.0.0.1")
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % args.port)
        os.rename(tmp, args.port_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
