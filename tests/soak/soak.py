#!/usr/bin/python3
"""Soak test of bedrock-cost-exporter: memory and descriptors stay flat under faults.

    /usr/bin/python3 tests/soak/soak.py [--seconds 120] [--binary ./bedrock-cost-exporter] [-v]

Runs the daemon (the release build by default) against the loopback fake AWS with 10 s refresh
intervals, scrapes it continuously from 4 threads (2 plain, 2 gzip), and every few seconds
rotates a fault across the surfaces (projects, Cost Explorer, STS web identity; throttling,
5xx, refused and stalled connections, truncated/malformed/mistyped/huge bodies, endless
pagination, auth and expired credentials), with a SIGHUP at each step (re-list projects, fetch
credentials again) and a Cost Explorer re-query every other step.

After a warm-up (a quarter of the run, at most 30 s) it samples RSS (/proc/PID/status) and the
open descriptors (/proc/PID/fd) at a quiet moment (faults cleared, scrapers paused, minimum
over 1.5 s); again at the end. It fails if RSS grew by more than 10% + 2 MiB, or if any
descriptor other than a cached outgoing connection appeared (descriptors are classified with
/proc/net/tcp: files and pipes, listening sockets, inbound and outbound connections; libcurl
keeps a few idle outbound connections, which may differ between the two samples and are
reported, not counted as a leak, as long as they stay within libcurl's cache size).

Only 127.0.0.1; every loop is bounded in time. The last line is exactly "N passed, N failed".
"""

import argparse
import gzip
import importlib.util
import os
import signal
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

_spec = importlib.util.spec_from_file_location("bce_faults", os.path.join(ROOT, "tests", "faults",
                                                                          "run.py"))
F = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(F)
it = F.it                       # tests/integration/run.py

CURL_MAXCONNECTS = 4            # libcurl's default cache: 4 x the handles in the multi (1)

# (surface, fake fault spec | proxy mode, extra)
ROTATION = [
    ("projects", {"kind": "throttle", "retry_after": 1}),
    ("ce", {"kind": "server_error", "status": 503}),
    ("sts", {"kind": "throttle"}),
    ("projects", {"kind": "truncated"}),
    ("ce", {"kind": "malformed"}),
    ("sts", {"kind": "malformed"}),
    ("projects", "refuse"),
    ("ce", {"kind": "wrong_types", "field": "amount"}),
    ("sts", {"kind": "expired_credentials"}),
    ("projects", {"kind": "huge", "bytes": 100 * F.MIB}),
    ("ce", {"kind": "loop"}),
    ("sts", "stall"),
    ("projects", {"kind": "wrong_types"}),
    ("ce", {"kind": "huge", "bytes": 100 * F.MIB}),
    ("sts", {"kind": "server_error", "status": 500}),
    ("projects", {"kind": "loop"}),
    ("ce", {"kind": "expired_token"}),
    ("sts", {"kind": "auth"}),
    ("projects", "stall"),
    ("ce", "refuse"),
    ("sts", {"kind": "truncated"}),
    ("projects", {"kind": "malformed"}),
    ("ce", {"kind": "change_between_pages"}),
    ("sts", "expire_all"),
    ("projects", {"kind": "auth"}),
    ("ce", {"kind": "throttle"}),
    ("sts", {"kind": "huge", "bytes": 100 * F.MIB}),
    ("projects", {"kind": "hang", "seconds": 8}),
    ("ce", {"kind": "truncated"}),
    ("sts", "refuse"),
]


def timed_request(port, headers):
    """GET /metrics; returns (status, headers, body, (connect, first byte, body) in ms)."""
    import http.client
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(it.HOST, port, timeout=10)
    try:
        conn.connect()
        t1 = time.perf_counter()
        conn.request("GET", "/metrics", headers=headers)
        r = conn.getresponse()
        t2 = time.perf_counter()
        body = r.read()
        t3 = time.perf_counter()
        return (r.status, {k.lower(): v for k, v in r.getheaders()}, body,
                ((t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000))
    finally:
        conn.close()


def tcp_inodes():
    """inode -> (local port, remote port, state) for every IPv4/IPv6 TCP socket."""
    out = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as fh:
                lines = fh.read().split("\n")[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) < 10:
                continue
            lport = int(f[1].rsplit(":", 1)[1], 16)
            rport = int(f[2].rsplit(":", 1)[1], 16)
            out[f[9]] = (lport, rport, f[3])
    return out


def classify_fds(pid, listen_port):
    """Counts the process's descriptors by kind."""
    tcp = tcp_inodes()
    kinds = {"other": 0, "listening": 0, "inbound": 0, "outbound": 0, "socket?": 0}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if not target.startswith("socket:["):
            kinds["other"] += 1
            continue
        ino = target[len("socket:["):-1]
        t = tcp.get(ino)
        if t is None:
            kinds["socket?"] += 1           # unix/netlink/...: counted, must stay flat too
        elif t[2] == "0A":                  # TCP_LISTEN
            kinds["listening"] += 1
        elif t[0] == listen_port:
            kinds["inbound"] += 1
        else:
            kinds["outbound"] += 1
    return kinds


class Soak:
    def __init__(self, ctx, seconds, verbose):
        self.ctx = ctx
        self.seconds = seconds
        self.verbose = verbose
        self.ln = F.Lane(ctx, creds="web_identity", projects_auth="sigv4",
                         fake_args=("--ce-page-size", "100"), log_level="info")
        self.stop = threading.Event()
        self.pause = threading.Event()
        self.lock = threading.Lock()
        self.scrapes = 0
        self.scrape_errors = []
        self.max_latency = 0.0
        self.slow = 0
        self.stalled = 0                # slow during a machine stall (F.StallProbe)
        self.slow_log = []              # when and where (connect, first byte, body)
        self.steps = 0

    # scraping ---------------------------------------------------------------
    def scraper(self, use_gzip, deadline):
        port = self.ln.exp.port
        headers = {"Accept-Encoding": "gzip"} if use_gzip else {}
        n = 0
        while not self.stop.is_set() and time.monotonic() < deadline and n < 200000:
            if self.pause.is_set():
                time.sleep(0.05)
                continue
            n += 1
            t0 = time.perf_counter()
            try:
                st, hdrs, body, phases = timed_request(port, headers)
                dt = time.perf_counter() - t0
                if st != 200:
                    raise ValueError("status %d" % st)
                if use_gzip:
                    if hdrs.get("content-encoding") != "gzip":
                        raise ValueError("no gzip")
                    body = gzip.decompress(body)
                if n % 25 == 0:
                    it.parse_exposition(body.decode("utf-8"))
                with self.lock:
                    self.scrapes += 1
                    self.max_latency = max(self.max_latency, dt)
                    if dt > F.SCRAPE_LIMIT and F.probe().stalled(
                            time.monotonic() - dt, time.monotonic(),
                            (dt - F.SCRAPE_LIMIT) / 2):
                        self.stalled += 1
                    elif dt > F.SCRAPE_LIMIT:
                        self.slow += 1
                        if len(self.slow_log) < 10:
                            self.slow_log.append("%s %.0f ms (connect %.0f, first byte %.0f, "
                                                 "body %.0f)" % ((time.strftime(
                                                     "%H:%M:%S", time.gmtime()), dt * 1000)
                                                                 + phases))
            except Exception as exc:            # noqa: BLE001 - recorded, the soak goes on
                with self.lock:
                    if len(self.scrape_errors) < 10:
                        self.scrape_errors.append("%s: %s" % (type(exc).__name__, exc))
            time.sleep(0.05)

    # faults -----------------------------------------------------------------
    def clear_all(self):
        for p in self.ln.px.values():
            p.set_mode("pass")
        self.ln.fake.clear_faults()

    def step(self, i):
        surface, what = ROTATION[i % len(ROTATION)]
        self.clear_all()
        if what == "expire_all":
            self.ln.fake.call("POST", "/_fake/credentials/expire", {})
        elif isinstance(what, str):
            self.ln.px[surface].set_mode(what)
        else:
            spec = dict(what, surface=surface, count=-1)
            self.ln.fake.call("POST", "/_fake/faults", spec)
        if i % 2 == 1:                      # Cost Explorer is queried again at once
            self.ln.ce_suffix = "/ce/" if self.ln.ce_suffix == "/ce" else "/ce"
            self.ln.write_conf()
        self.ln.exp.send(signal.SIGHUP)
        self.steps += 1

    def rotate(self, deadline, period):
        i = 0
        while not self.stop.is_set() and time.monotonic() < deadline and i < 100000:
            if self.pause.is_set():
                time.sleep(0.05)
                continue
            try:
                self.step(i)
            except Exception as exc:            # noqa: BLE001
                with self.lock:
                    self.scrape_errors.append("fault rotation: %s" % exc)
            i += 1
            self.stop.wait(period)

    # sampling ---------------------------------------------------------------
    def quiet_sample(self):
        """Faults cleared, scrapers paused, the poller idle: (RSS KiB, fd kinds, total)."""
        self.pause.set()
        time.sleep(0.3)                     # let the rotation notice the pause
        self.clear_all()
        # every source up again (a refresh after the faults cleared), then quiet
        try:
            self.ln.wait_up(("projects", "cost_explorer", "forecast"), timeout=40)
        except (F.CaseFailure, it.TestFailure) as exc:
            with self.lock:
                self.scrape_errors.append("before sampling: %s" % exc)
        self.ln.lat = []
        time.sleep(1.0)
        pid = self.ln.exp.proc.pid
        rss, kinds, total = [], [], []
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            rss.append(F.rss_kib(pid))
            k = classify_fds(pid, self.ln.exp.port)
            kinds.append(k)
            total.append(F.fd_count(pid))
            time.sleep(0.1)
        self.pause.clear()
        best = min(range(len(total)), key=lambda j: total[j])
        return min(rss), kinds[best], total[best]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--binary", default=os.path.join(ROOT, "bedrock-cost-exporter"))
    ap.add_argument("--period", type=float, default=4.0, help="seconds per fault")
    ap.add_argument("-v", dest="verbose", action="store_true")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    if not os.path.exists(args.binary):
        print("missing binary %s (make bedrock-cost-exporter)" % args.binary, file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    it.BINARY = os.path.abspath(args.binary)
    it.detect_supported_keys()

    def on_term(signum, frame):
        it.ABORT.set()
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    import tempfile
    import shutil
    root = tempfile.mkdtemp(prefix="bce-soak.")
    ctx = it.Ctx("soak", root)
    results = []                      # (name, ok, detail)

    def result(name, ok, detail=""):
        results.append((name, ok, detail))
        print("%-4s %-34s %s" % ("ok" if ok else "FAIL", name, detail), flush=True)

    soak = None
    t_start = time.monotonic()
    F.probe()
    try:
        soak = Soak(ctx, args.seconds, args.verbose)
        ln = soak.ln
        ln.wait_up(F.SOURCES, timeout=60)
        warm = min(30.0, args.seconds / 4.0)
        end = time.monotonic() + args.seconds
        threads = [threading.Thread(target=soak.scraper, args=(g, end + 5), daemon=True)
                   for g in (False, False, True, True)]
        threads.append(threading.Thread(target=soak.rotate, args=(end, args.period),
                                        daemon=True))
        for t in threads:
            t.start()
        time.sleep(warm)
        rss0, k0, fd0 = soak.quiet_sample()
        print("start (after %.0fs warm-up): RSS %d KiB, fds %d %s" % (warm, rss0, fd0, k0),
              flush=True)
        trend = []                          # RSS every ~15 s (not quiet): the shape of it
        next_trend = time.monotonic()
        while time.monotonic() < end:
            if not ln.exp.alive():
                break
            if time.monotonic() >= next_trend:
                trend.append(F.rss_kib(ln.exp.proc.pid))
                next_trend += 15
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        print("RSS every 15 s (KiB, under load): %s" % " ".join(str(x) for x in trend),
              flush=True)
        alive = ln.exp.alive()
        soak.stop.set()
        for t in threads:
            t.join(20)
        result("process stayed up", alive,
               "" if alive else "exit %s" % ln.exp.proc.poll())
        if not alive:
            raise F.CaseFailure("exporter died:\n" + ln.exp.log_text()[-3000:])
        rss1, k1, fd1 = soak.quiet_sample()
        print("end:   RSS %d KiB, fds %d %s" % (rss1, fd1, k1), flush=True)
        growth = rss1 - rss0
        bound = rss0 * 0.10 + 2048
        result("RSS growth", growth <= bound,
               "%d -> %d KiB (%+d KiB, %+.1f%%; bound %d KiB)"
               % (rss0, rss1, growth, 100.0 * growth / max(1, rss0), bound))
        leaks = {k: k1[k] - k0[k] for k in k1 if k != "outbound" and k1[k] > k0[k]}
        result("descriptors", not leaks and k1["inbound"] == 0 and
               k1["outbound"] <= CURL_MAXCONNECTS,
               "%d -> %d (%+d); by kind %s -> %s%s"
               % (fd0, fd1, fd1 - fd0, k0, k1,
                  "; grew: %s" % leaks if leaks else ""))
        # every scrape answered; over 100 ms (outside machine stalls) at most 1 in 100
        result("scrapes", not soak.scrape_errors and soak.scrapes > 0 and
               soak.slow <= soak.scrapes // 100,
               "%d scrapes, max %.0f ms, %d over %d ms (+%d during machine stalls)%s"
               % (soak.scrapes, soak.max_latency * 1000, soak.slow, F.SCRAPE_LIMIT * 1000,
                  soak.stalled,
                  "; errors: %s" % soak.scrape_errors[:5] if soak.scrape_errors else ""))
        for line in soak.slow_log:
            print("slow scrape (UTC): " + line)
        result("fault rotation", soak.steps >= 3, "%d fault steps over %d surfaces"
               % (soak.steps, 3))
        try:
            body = ln.exp.metrics_body()
            it.promtool_check(body)
            result("final exposition passes promtool", True)
        except (it.TestFailure, OSError) as exc:
            result("final exposition passes promtool", False, str(exc)[:300])
        rc, took = ln.exp.stop(signal.SIGTERM, 10)
        result("clean exit on SIGTERM", rc == 0, "exit %s in %.2fs" % (rc, took))
    except KeyboardInterrupt:
        result("interrupted", False)
    except Exception as exc:                    # noqa: BLE001
        result("soak", False, "%s\n%s" % (exc, traceback.format_exc()))
    finally:
        if soak is not None:
            soak.stop.set()
            soak.ln.close()
        problems = ctx.close()
        if problems:
            result("cleanup", False, "; ".join(problems)[:500])
        failed = any(not ok for _, ok, _ in results)
        if args.keep or failed:
            print("files kept in %s" % ctx.dir)
        else:
            shutil.rmtree(root, ignore_errors=True)
    passed = sum(1 for _, ok, _ in results if ok)
    failed = sum(1 for _, ok, _ in results if not ok)
    print("soak of %ds took %.0fs" % (args.seconds, time.monotonic() - t_start))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
