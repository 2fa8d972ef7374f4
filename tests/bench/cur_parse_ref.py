#!/usr/bin/env python3
"""The reference for `make bench-cur`: what tests/bench/cur_parse.c does, with Python's gzip
and csv modules (the standard library's C-accelerated reader): the Bedrock lines of a CUR 2.0
data file, their unblended cost summed by line item type. Prints the same JSON object.

Usage: cur_parse_ref.py FILE.csv.gz
"""
import csv
import gzip
import json
import sys


def main():
    path = sys.argv[1]
    lines = bedrock = 0
    sums = {}
    with gzip.open(path, "rt", newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        header = next(r)
        code_i = header.index("line_item_product_code")
        type_i = header.index("line_item_line_item_type")
        cost_i = header.index("line_item_unblended_cost")
        svc_i = header.index("product_servicecode") if "product_servicecode" in header else None
        width = len(header)
        for row in r:
            lines += 1
            if len(row) != width:
                sys.exit("record %d: %d fields, the header has %d" % (lines, len(row), width))
            code = row[code_i]
            if code != "AmazonBedrock" and "Bedrock" not in code and not (
                    svc_i is not None and "Bedrock" in row[svc_i]):
                continue
            bedrock += 1
            t = row[type_i]
            sums[t] = sums.get(t, 0.0) + float(row[cost_i])
        inflated = f.buffer.tell() if hasattr(f, "buffer") else 0
    hwm = 0
    with open("/proc/self/status") as st:
        for line in st:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    print(json.dumps({"lines": lines, "bedrock_lines": bedrock, "inflated_bytes": inflated,
                      "vm_hwm_kib": hwm,
                      "cost_by_line_item_type": {k: round(v, 6) for k, v in sums.items()}}))


if __name__ == "__main__":
    main()
