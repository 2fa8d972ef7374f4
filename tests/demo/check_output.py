#!/usr/bin/env python3
"""make demo's summary reaches a pipe while the demo runs, not when it exits.

Runs tests/demo/demo.py as `make demo` does (not --smoke) with its stdout a pipe, as
`make demo | tee demo.log`, a CI log or a provisioning script give it; the lines naming the
/metrics URL and "Press Ctrl-C" must arrive while it is still running. Then SIGINT must end
it with status 0. Ends with "N passed, N failed".
"""
import argparse
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)   # as on a fresh machine: Python's own buffering
    errlog = tempfile.TemporaryFile()  # shown when a check fails
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "demo.py"), "--binary",
                             args.binary, "--listen-port", "0"],
                            stdout=subprocess.PIPE, stderr=errlog, env=env)
    seen, buf = set(), b""
    want = {"Exporter metrics:", "Press Ctrl-C"}
    deadline = time.monotonic() + args.timeout
    try:
        while want - seen and time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
                seen |= {w for w in want if w.encode() in buf}
        running = proc.poll() is None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
    checks = [("the /metrics URL line reached the pipe while the demo ran",
               "Exporter metrics:" in seen and running),
              ("'Press Ctrl-C' reached the pipe while the demo ran", "Press Ctrl-C" in seen),
              ("SIGINT ends the demo with status 0", rc == 0)]
    failed = [n for n, ok in checks if not ok]
    for n, ok in checks:
        print(("ok   - " if ok else "FAIL - ") + n)
    if failed:
        errlog.seek(0)
        print("demo exit status %s; its stderr ends:\n%s"
              % (rc, errlog.read().decode(errors="replace")[-3000:]))
    print("%d passed, %d failed" % (len(checks) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
