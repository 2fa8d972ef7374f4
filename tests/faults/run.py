#!/usr/bin/python3
"""Fault matrix of bedrock-cost-exporter against the loopback fake AWS.

    /usr/bin/python3 tests/faults/run.py [--binary build/san/bedrock-cost-exporter]
                                         [--release-binary ./bedrock-cost-exporter]
                                         [-j 6] [-k SUBSTR] [-v] [--list]

For each surface the exporter talks to (projects, Cost Explorer, STS web identity, IMDS) it
injects throttling, 5xx, connection refused, a server that never answers, a body that stalls
mid-way, truncated and malformed JSON, wrong types, a 100 MiB body, endless pagination, results
that change between pages, expired credentials and a clock jump, and asserts for each:

  - the process stays up, /-/healthy and /-/ready answer 200;
  - /metrics answers within 100 ms at every scrape during the fault (and the recovery), with
    the last good data (every non-self metric unchanged); a slow scrape during which a
    sleeping probe thread also woke up late is a stall of the machine, not of the exporter,
    and is only noted; so are up to 2 isolated slow scrapes that are fast again at once
    (Lane.poll);
  - bedrock_cost_exporter_api_request_errors_total{api,operation,reason} moves for the right
    reason, and no other reason of that operation moves;
  - the log says it once: one warn line per failing source, however many refreshes and retries;
  - recovery is automatic when the fault clears: source_up back to 1 and one info line,
    without a signal.

"Results that change between pages" cannot be seen in Cost Explorer's answers: that case
asserts that the exporter stays up and that the data is the ledger's again after the next
refresh (the days that can change are read again). A transient throttle (one 429 / one
LimitExceeded) must be absorbed by a retry with no warn line.

Plus: the state file survives kill -9 at random moments; a corrupt or foreign state file is
ignored with a warning; a storm of 100 SIGHUPs leaks neither memory nor descriptors and the
ASan build still exits 0 (LeakSanitizer) on SIGTERM; files holding secrets that every user can
read are warned about.

Faults are grouped in "lanes": one fake_aws and one exporter serve several faults in
sequence; lanes run in parallel as separate processes (-j). Between the exporter and the fake
sits a small TCP relay per surface (Proxy below), which provides "connection refused" (the
relay's listening socket is closed, then reopened on the same port) and "stall mid-body"
(the relay forwards the headers and half the body, then nothing). Everything else comes from
the fake's fault API. Every request goes to 127.0.0.1; every loop is bounded in count and time.

Triggers, to keep it fast: a SIGHUP re-lists projects at once (and, with projects.auth = sigv4,
fetches credentials again: the STS/IMDS trigger); toggling a trailing slash on
cost_explorer.endpoint + SIGHUP makes Cost Explorer be queried at once (the endpoint is part
of what "changed" means on reload). Recovery is never triggered: the scheduled refresh (10 s,
or the retry after a failure) must bring the source back by itself.

The clock-jump lane runs the RELEASE binary under libfaketime (LD_PRELOAD and ASan do not mix);
it installs Debian's libfaketime if it is missing, and prints a SKIP line if it cannot.

Standard library only; reuses tests/integration/run.py (processes, isolation, the exposition
and logfmt parsers). The last line printed is exactly "N passed, N failed".
"""

import argparse
import calendar
import glob
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import run as it  # noqa: E402  (the integration suite, used as a library)

HOST = it.HOST
PYTHON = sys.executable or "/usr/bin/python3"
SCRAPE_LIMIT = 0.100            # seconds: every /metrics answer during a fault
OUTLIER_MAX = 1.0               # an isolated slower scrape, fast again at once: machine load
MAX_OUTLIERS = 2                # ... tolerated per case (or 1 in 20 scrapes), and reported
SOURCES = ("projects", "cost_explorer", "forecast", "allocation_tags")
REASONS = it.REASONS
WARN_PROJECTS = it.WARN_FAILED                  # "projects listing failed; serving ..."
WARN_SOURCE = "refresh failed; serving the last good data"
INFO_PROJECTS = it.INFO_RECOVERED               # "projects listing recovered"
INFO_SOURCE = "source recovered"
FAKETIME_GLOB = "/usr/lib/*/faketime/libfaketimeMT.so.1"
ROLE_ARN = "arn:aws:iam::123456789012:role/bce-faults"
MIB = 1024 * 1024

OPS = {  # surface -> (api, operation) of the requests a fault there fails
    "projects": ("bedrock_mantle", "ListProjects"),
    "ce": ("cost_explorer", "GetCostAndUsage"),
    "sts": ("sts", "AssumeRoleWithWebIdentity"),
    "imds": ("imds", "GetRoleCredentials"),
}


class CaseFailure(AssertionError):
    pass


# ---------------------------------------------------------------------------
# a TCP relay with "refuse" and "stall" modes
# ---------------------------------------------------------------------------

class Proxy:
    """Relays 127.0.0.1:port to the fake. Modes: pass; refuse (nothing listens on the port:
    connect() gets RST); stall (each response: headers and half the body, then silence until
    the client gives up). Changing the mode closes every open connection, so the exporter's
    cached keep-alive connections see the new mode at once.

    The port is taken below the kernel's ephemeral range, so no outgoing connection can land
    on it while it is closed, and it can be bound again."""

    def __init__(self, target_port, name):
        self.target = target_port
        self.name = name
        self.mode = "pass"
        self.lock = threading.Lock()
        self.conns = set()
        self.listener = None
        self.closed = threading.Event()
        lo = 20000
        try:
            with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
                eph = int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            eph = 32768
        hi = max(lo + 1000, eph)
        for _ in range(300):
            port = random.randrange(lo, hi)
            try:
                self.listener = self._bind(port)
                self.port = port
                break
            except OSError:
                continue
        else:
            raise it.TestFailure("proxy %s: no free port below the ephemeral range" % name)
        self.thread = threading.Thread(target=self._accept_loop, daemon=True,
                                       name="proxy-" + name)
        self.thread.start()

    @staticmethod
    def _bind(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
            s.listen(64)
        except OSError:
            s.close()
            raise
        return s

    def url(self, suffix=""):
        return "http://%s:%d%s" % (HOST, self.port, suffix)

    def _accept_loop(self):
        while not self.closed.is_set():
            with self.lock:
                lst = self.listener
            if lst is None:
                time.sleep(0.02)
                continue
            try:
                ready, _, _ = select.select([lst], [], [], 0.1)
                if not ready:
                    continue
                c, _ = lst.accept()
            except (OSError, ValueError):
                continue
            with self.lock:
                mode = self.mode
            threading.Thread(target=self._serve, args=(c, mode), daemon=True).start()

    def _track(self, *socks):
        with self.lock:
            self.conns.update(socks)

    def _drop(self, *socks):
        with self.lock:
            for s in socks:
                self.conns.discard(s)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def _serve(self, c, mode):
        try:
            u = socket.create_connection((HOST, self.target), timeout=5)
            u.settimeout(None)
        except OSError:
            self._drop(c)
            return
        self._track(c, u)
        t = threading.Thread(target=self._pump, args=(c, u), daemon=True)
        t.start()
        try:
            if mode == "stall":
                self._stall(u, c)
            else:
                self._pump(u, c)
        finally:
            self._drop(c, u)
            t.join(5)

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        self._drop(src, dst)

    def _stall(self, u, c):
        """Forwards the response headers and half of the body, then reads and drops the rest
        until either side closes."""
        buf = b""
        try:
            while b"\r\n\r\n" not in buf and len(buf) < 65536:
                data = u.recv(65536)
                if not data:
                    return
                buf += data
            head, _, body = buf.partition(b"\r\n\r\n")
            length = None
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    try:
                        length = int(v.strip())
                    except ValueError:
                        pass
            want = max(1, length // 2) if length else 64
            while len(body) < want:
                data = u.recv(65536)
                if not data:
                    break
                body += data
            c.sendall(head + b"\r\n\r\n" + body[:want])
            while u.recv(65536):
                pass
        except OSError:
            pass

    def set_mode(self, mode):
        assert mode in ("pass", "refuse", "stall")
        with self.lock:
            self.mode = mode
            conns = list(self.conns)
            if mode == "refuse" and self.listener is not None:
                self.listener.close()
                self.listener = None
        for s in conns:
            self._drop(s)
        if mode != "refuse":
            deadline = time.monotonic() + 10
            while True:
                with self.lock:
                    if self.listener is not None:
                        break
                    try:
                        self.listener = self._bind(self.port)
                        break
                    except OSError:
                        pass
                if time.monotonic() > deadline:
                    raise it.TestFailure("proxy %s: cannot listen on port %d again"
                                         % (self.name, self.port))
                time.sleep(0.05)

    def close(self):
        self.closed.set()
        with self.lock:
            if self.listener is not None:
                self.listener.close()
                self.listener = None
            conns = list(self.conns)
        for s in conns:
            self._drop(s)


class StallProbe:
    """Sleeps 10 ms in a loop and remembers when it woke up late: a stall of the machine (or of
    this process) that would also delay a scrape's measurement, whatever the exporter does."""

    def __init__(self):
        self.events = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True, name="stall-probe").start()

    def _run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            time.sleep(0.01)
            late = time.monotonic() - t0 - 0.01
            if late > 0.04:
                with self.lock:
                    self.events.append((t0, t0 + 0.01 + late, late))
                    del self.events[:-500]

    def stalled(self, a, b, at_least):
        """Whether a stall of at least at_least seconds overlapped [a, b]."""
        with self.lock:
            return any(s < b and e > a and late >= at_least for s, e, late in self.events)


PROBE = None


def probe():
    global PROBE
    if PROBE is None:
        PROBE = StallProbe()
    return PROBE


# ---------------------------------------------------------------------------
# metrics helpers
# ---------------------------------------------------------------------------

def up(m, source):
    return m.value("bedrock_cost_exporter_source_up", source=source)


def attempt(m, source):
    return m.value("bedrock_cost_exporter_last_attempt_timestamp_seconds", source=source)


def errors(m, api, op):
    return {r: m.value("bedrock_cost_exporter_api_request_errors_total", api=api,
                       operation=op, reason=r) for r in REASONS}


def requests_total(m, api, op):
    return m.value("bedrock_cost_exporter_api_requests_total", api=api, operation=op)


def fingerprint(m):
    """Every sample that is not about the exporter itself: the data being served."""
    return frozenset((s.name, tuple(sorted(s.labels.items())), s.value) for s in m.samples
                     if not s.name.startswith("bedrock_cost_exporter_"))


def fp_diff(a, b):
    ka = {(n, lab): v for n, lab, v in a}
    kb = {(n, lab): v for n, lab, v in b}
    out = []
    for k in sorted(set(ka) | set(kb)):
        if ka.get(k) != kb.get(k):
            out.append("%s%s: %r -> %r" % (k[0], dict(k[1]), ka.get(k), kb.get(k)))
    return out


def utc_midnight(t):
    return float(int(t // 86400) * 86400)


def month_start(t):
    tm = time.gmtime(t)
    return float(calendar.timegm((tm.tm_year, tm.tm_mon, 1, 0, 0, 0)))


def prev_month_start(t):
    tm = time.gmtime(t)
    y, mo = (tm.tm_year, tm.tm_mon - 1) if tm.tm_mon > 1 else (tm.tm_year - 1, 12)
    return float(calendar.timegm((y, mo, 1, 0, 0, 0)))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


# ---------------------------------------------------------------------------
# a lane: one fake, relays, one exporter, a sequence of cases
# ---------------------------------------------------------------------------

class Row:
    def __init__(self, fault, surface):
        self.fault, self.surface = fault, surface
        self.ok, self.skipped = False, False
        self.problems, self.notes = [], []
        self.seconds = 0.0
        self.max_latency = 0.0
        self.scrapes = 0

    def to_json(self):
        return dict(self.__dict__)


class Lane:
    """One fake_aws, one relay per surface, one exporter with the fast settings."""

    def __init__(self, ctx, creds="static", projects_auth="api_key", fake_args=(),
                 ce=None, proxies=True, extra_env=None, args=(), log_level="debug",
                 start=True):
        self.ctx = ctx
        self.creds = creds
        self.projects_auth = projects_auth
        self.fake = ctx.fake(*fake_args)
        self.px = {}
        if proxies:
            for s in OPS:
                self.px[s] = Proxy(self.fake.port, s)
        self.ce = {"refresh_interval": 10, "max_pages": 8, "max_requests_per_day": 100000}
        self.ce.update(ce or {})
        self.ce_suffix = "/ce"
        self.conf_path = os.path.join(ctx.dir, "exporter.conf")
        self.state_path = os.path.join(ctx.dir, "state.json")
        self.extra_env = dict(extra_env or {})
        self.args = list(args)
        self.log_level = log_level
        self.write_conf()
        self.lat = []                   # scrape latencies of the current window
        self.outliers = []              # isolated slow scrapes (see poll)
        self.stalls = []                # slow scrapes during a machine stall (see poll)
        self.expect_fp = None           # the data every scrape must show, when set
        self.fp_errors = []
        self.exp = None
        if start:
            self.start()

    def base(self, surface):
        if surface in self.px:
            return self.px[surface].url()
        return "http://%s:%d" % (HOST, self.fake.port)

    def groups(self):
        g = {
            "projects": {"regions": ["us-east-1"],
                         "endpoint": self.base("projects") + "/mantle/{region}/v1",
                         "refresh_interval": 10, "auth": self.projects_auth,
                         "api_key_env": "BEDROCK_API_KEY"},
            "http": {"connect_timeout": 1, "request_timeout": 2, "max_retries": 1,
                     "retry_max_delay": 1, "max_response_mib": 1},
            "aws": {"region": "us-east-1", "sts_endpoint": self.base("sts") + "/sts",
                    "imds_enabled": self.creds == "imds", "imds_endpoint": self.base("imds"),
                    "container_endpoint": it.DEAD_PROXY},
            "cost_explorer": dict({"enabled": True,
                                   "endpoint": self.base("ce") + self.ce_suffix}, **self.ce),
            "cloudwatch": {"enabled": False, "endpoint": it.DEAD_PROXY},
            "state_file": self.state_path,
        }
        return g

    def write_conf(self):
        text = it.render_conf(self.groups())
        tmp = self.conf_path + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, self.conf_path)

    def env(self):
        extra = {"BEDROCK_API_KEY": it.API_KEY}
        if self.creds == "static":
            extra.update(AWS_ACCESS_KEY_ID=it.ACCESS_KEY_ID,
                         AWS_SECRET_ACCESS_KEY=it.SECRET_ACCESS_KEY)
        elif self.creds == "web_identity":
            tok = self.ctx.write("web-identity-token", "fake-web-identity-token\n")
            extra.update(AWS_WEB_IDENTITY_TOKEN_FILE=tok, AWS_ROLE_ARN=ROLE_ARN)
        extra.update(self.extra_env)
        env = it.base_env(extra)
        if self.creds == "imds":
            env.pop("AWS_EC2_METADATA_DISABLED", None)
        return env

    def start(self):
        self.exp = it.Exporter(self.ctx, self.conf_path, self.env(), self.args, self.log_level)
        # /-/healthy answers before the first snapshot is published; /metrics then says 503
        it.wait_for(lambda: self.exp.get("/metrics")[0] == 200, 20, "a first snapshot")
        return self.exp

    # scraping --------------------------------------------------------------
    def timed_get(self, headers):
        t0 = time.monotonic()
        st, hdrs, body = it.http_request(self.exp.port, "/metrics", headers=headers, timeout=5)
        t1 = time.monotonic()
        if t1 - t0 > SCRAPE_LIMIT and probe().stalled(t0, t1, (t1 - t0 - SCRAPE_LIMIT) / 2):
            # the machine stalled this process too: not the exporter's doing
            self.stalls.append(t1 - t0)
            return min(t1 - t0, SCRAPE_LIMIT), st, hdrs, body
        return t1 - t0, st, hdrs, body

    def poll(self, gzip_ok=False):
        """One timed scrape; checks the latency bound later and the data now.

        A scrape over the bound during which a StallProbe in this process also woke up late
        is put down to the machine (noted, not failed). Any other slow scrape is repeated at
        once: if the repeat is fast and the first took under OUTLIER_MAX, it is counted as
        load (the suite runs several lanes on two cores) and noted, up to MAX_OUTLIERS per
        case; a server that really stalls fails the repeat as well."""
        headers = {"Accept-Encoding": "gzip"} if gzip_ok else {}
        dt, st, hdrs, body = self.timed_get(headers)
        if dt > SCRAPE_LIMIT:
            dt2, st, hdrs, body = self.timed_get(headers)
            if dt2 <= SCRAPE_LIMIT and dt < OUTLIER_MAX:
                self.outliers.append(dt)
                dt = dt2
            else:
                self.lat.append(dt)
                dt = dt2
        self.lat.append(dt)
        if st != 200:
            raise CaseFailure("/metrics answered %d" % st)
        if hdrs.get("content-encoding") == "gzip":
            import gzip
            body = gzip.decompress(body)
        m = it.Exposition(body.decode("utf-8"))
        if self.expect_fp is not None:
            fp = fingerprint(m)
            if fp != self.expect_fp and len(self.fp_errors) < 3:
                self.fp_errors.append("served data changed: %s"
                                      % "; ".join(fp_diff(self.expect_fp, fp)[:4]))
        return m

    def wait(self, pred, timeout, what, interval=0.15):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if it.ABORT.is_set():
                raise it.Aborted("interrupted")
            if not self.exp.alive():
                raise CaseFailure("exporter died (exit %s) while waiting for %s"
                                  % (self.exp.proc.poll(), what))
            m = self.poll(gzip_ok=len(self.lat) % 2 == 1)
            last = m
            if pred(m):
                return m
            if time.monotonic() >= deadline:
                raise CaseFailure("timed out after %.0fs waiting for %s (source_up: %s)"
                                  % (timeout, what, {s: up(last, s) for s in SOURCES}))
            time.sleep(interval)

    def records(self):
        return self.exp.log_records()

    # triggers --------------------------------------------------------------
    def hup_projects(self, timeout=30):
        """SIGHUP; returns the scrape once the projects refresh after the reload is out."""
        m0 = self.poll()
        r0 = m0.reload_ts()
        self.exp.send(signal.SIGHUP)
        return self.wait(lambda m: m.reload_ts() > r0 and attempt(m, "projects") > m.reload_ts(),
                         timeout, "the projects refresh after SIGHUP")

    def hup_costs(self, timeout=40):
        """Toggles a trailing slash on the CE endpoint and reloads: Cost Explorer is queried
        at once. Returns the scrape once that refresh is out."""
        m0 = self.poll()
        r0 = m0.reload_ts()
        self.ce_suffix = "/ce/" if self.ce_suffix == "/ce" else "/ce"
        self.write_conf()
        self.exp.send(signal.SIGHUP)
        return self.wait(lambda m: m.reload_ts() > r0 and
                         attempt(m, "cost_explorer") > m.reload_ts(),
                         timeout, "the Cost Explorer refresh after SIGHUP")

    def wait_up(self, sources=("projects", "cost_explorer", "forecast"), timeout=40):
        return self.wait(lambda m: all(up(m, s) == 1 for s in sources), timeout,
                         "source_up=1 for %s" % ", ".join(sources))

    def close(self):
        for p in self.px.values():
            p.close()


def new_records(lane, n0):
    return lane.records()[n0:]


def warn_keys(records, with_error=False):
    """(msg, region|source[, error]) -> count of warn lines."""
    out = {}
    for r in records:
        if r.get("level") != "warn":
            continue
        k = (r.get("msg"), r.get("region") or r.get("source") or r.get("setting") or "")
        if with_error:
            k += (r.get("error", ""),)
        out[k] = out.get(k, 0) + 1
    return out


# ---------------------------------------------------------------------------
# the generic fault case
# ---------------------------------------------------------------------------

class Fault:
    def __init__(self, name, surface, reason, fake=None, proxy=None, counter=None,
                 repeat=True, note="", transient=False):
        self.transient = transient  # one faulty answer, which a retry gets past
        self.name = name
        self.surface = surface
        self.reason = reason
        self.fake = fake            # fault spec for /_fake/faults (count -1 added)
        self.proxy = proxy          # or a relay mode
        self.counter = counter or OPS[surface]
        self.repeat = repeat
        self.note = note


def retries(m, api, op):
    return m.value("bedrock_cost_exporter_api_retries_total", api=api, operation=op)


def run_transient(lane, f):
    """One faulty answer (count 1): the retry gets past it, the refresh succeeds, the
    counters say what happened, and nothing is logged at warn."""
    row = Row(f.name, f.surface)
    t0 = time.monotonic()
    target = "cost_explorer" if f.surface == "ce" else "projects"
    trigger = lane.hup_costs if f.surface == "ce" else lane.hup_projects
    api, op = f.counter
    try:
        lane.expect_fp = None
        m0 = lane.wait_up(("projects", "cost_explorer", "forecast"))
        lane.lat, lane.fp_errors, lane.outliers = [], [], []
        lane.expect_fp = fingerprint(m0)
        e0, r0 = errors(m0, api, op), retries(m0, api, op)
        n0 = len(lane.records())
        spec = dict(f.fake, surface=f.surface, count=1)
        if f.surface == "ce":
            spec.setdefault("operation", "GetCostAndUsage")
        lane.fake.call("POST", "/_fake/faults", spec)
        s0 = lane.poll().value("bedrock_cost_exporter_last_success_timestamp_seconds",
                               source=target)
        m1 = trigger()
        e1, r1 = errors(m1, api, op), retries(m1, api, op)
        moved = {r: e1[r] - e0[r] for r in REASONS if e1[r] != e0[r]}
        row.notes.append("errors moved: %s; retries moved: %d; refresh took %.2fs"
                         % (moved or "none", r1 - r0, m1.value(
                             "bedrock_cost_exporter_refresh_duration_seconds", source=target)))
        if up(m1, target) != 1:
            row.problems.append("source_up{source=%s} = %s: the retry did not absorb one "
                                "faulty answer" % (target, up(m1, target)))
        if moved != {f.reason: 1.0}:
            row.problems.append("errors moved %s, want {%r: 1}" % (moved, f.reason))
        if r1 - r0 != 1:
            row.problems.append("retries moved by %d, want 1" % (r1 - r0))
        if m1.value("bedrock_cost_exporter_last_success_timestamp_seconds",
                    source=target) <= s0:
            row.problems.append("last_success did not advance")
        w = [r for r in new_records(lane, n0) if r.get("level") == "warn"]
        if w:
            row.problems.append("warn lines for a failure that a retry absorbed: %s"
                                % [r.get("msg") for r in w])
    except (CaseFailure, it.TestFailure, OSError) as exc:
        row.problems.append(str(exc))
    finally:
        try:
            lane.fake.clear_faults()
        except Exception:
            pass
        lane.expect_fp = None
    finish_row(lane, row, t0)
    return row


def run_fault(lane, f):
    """Injects f, makes the exporter meet it twice, clears it, waits for recovery."""
    if f.transient:
        return run_transient(lane, f)
    row = Row(f.name, f.surface)
    t0 = time.monotonic()
    problems = row.problems
    target = "cost_explorer" if f.surface == "ce" else "projects"
    trigger = lane.hup_costs if f.surface == "ce" else lane.hup_projects
    needed = ("projects", "cost_explorer", "forecast")
    api, op = f.counter
    injected = False
    try:
        lane.expect_fp = None
        m0 = lane.wait_up(needed)
        lane.lat, lane.fp_errors, lane.outliers, lane.stalls = [], [], [], []
        lane.expect_fp = fingerprint(m0)
        e0 = errors(m0, api, op)
        n0 = len(lane.records())
        if f.proxy:
            lane.px[f.surface].set_mode(f.proxy)
        else:
            spec = dict(f.fake, surface=f.surface, count=-1)
            if f.surface == "ce":
                spec.setdefault("operation", "GetCostAndUsage")
            lane.fake.call("POST", "/_fake/faults", spec)
        injected = True
        m1 = trigger()
        if up(m1, target) != 0:
            problems.append("source_up{source=%s} = %s after the faulty refresh"
                            % (target, up(m1, target)))
        failures = 1
        if f.repeat:
            m1 = trigger()
            failures = 2
            if up(m1, target) != 0:
                problems.append("source_up{source=%s} = %s after the second faulty refresh"
                                % (target, up(m1, target)))
        for path in ("/-/healthy", "/-/ready"):
            st = lane.exp.get(path)[0]
            if st != 200:
                problems.append("%s answered %d during the fault" % (path, st))
        # a few more scrapes during the fault (the latency sample)
        for _ in range(4):
            m1 = lane.poll(gzip_ok=True)
            time.sleep(0.05)
        if not f.proxy:
            applied = sum(x.get("applied", 0) for x in lane.fake.faults())
            if applied == 0:
                problems.append("the fake never applied the fault (test problem)")
        e1 = errors(m1, api, op)
        moved = {r: e1[r] - e0[r] for r in REASONS if e1[r] != e0[r]}
        row.notes.append("errors{api=%s,operation=%s} moved: %s" % (api, op, moved or "none"))
        if f.reason and moved.get(f.reason, 0) < 1:
            problems.append("errors{reason=%s} of %s/%s did not move (moved: %s)"
                            % (f.reason, api, op, moved or "none"))
        wrong = {r: v for r, v in moved.items() if r != f.reason}
        if f.reason and wrong:
            problems.append("other reasons moved for %s/%s: %s" % (api, op, wrong))
        during = new_records(lane, n0)
        keys = warn_keys(during)
        tkey = (WARN_SOURCE, "cost_explorer") if target == "cost_explorer" \
            else (WARN_PROJECTS, "us-east-1")
        if keys.get(tkey, 0) != 1:
            problems.append("%d warn lines %r after %d failed refreshes (want 1)"
                            % (keys.get(tkey, 0), tkey, failures))
        spam = {k: v for k, v in keys.items() if v > 1}
        if spam:
            problems.append("warn lines repeated: %s" % spam)
        w = [r for r in during if r.get("level") == "warn"]
        if w:
            row.notes.append("warn: " + " | ".join("%s %s" % (r.get("msg"), r.get("error", ""))
                                                   for r in w[:3])[:300])
        # clear, and let the schedule bring it back
        if f.proxy:
            lane.px[f.surface].set_mode("pass")
        else:
            lane.fake.clear_faults()
        injected = False
        tc = time.monotonic()
        m3 = lane.wait_up(needed, timeout=35)
        row.notes.append("recovered %.1fs after the fault cleared" % (time.monotonic() - tc))
        after = new_records(lane, n0)
        # a source whose refresh failed (its warn line) says once that it recovered; one that
        # only showed a failed attempt (published at once) and whose retry got through, or
        # that was never asked during the fault, says neither
        for s in needed:
            if s == "projects":
                warned = sum(1 for r in after if r.get("msg") == WARN_PROJECTS)
                n = sum(1 for r in after if r.get("msg") == INFO_PROJECTS and
                        r.get("level") == "info")
            else:
                warned = sum(1 for r in after if r.get("msg") == WARN_SOURCE and
                             r.get("source") == s)
                n = sum(1 for r in after if r.get("msg") == INFO_SOURCE and
                        r.get("source") == s and r.get("level") == "info")
            if n != (1 if warned else 0):
                problems.append("%d info 'recovered' lines for %s after %d warn lines (want %d)"
                                % (n, s, warned, 1 if warned else 0))
        if fingerprint(m3) != lane.expect_fp:
            problems.append("data after recovery differs: %s"
                            % "; ".join(fp_diff(lane.expect_fp, fingerprint(m3))[:4]))
        if not lane.exp.alive():
            problems.append("exporter died")
    except (CaseFailure, it.TestFailure, OSError) as exc:
        problems.append(str(exc))
    finally:
        if injected:
            try:
                if f.proxy:
                    lane.px[f.surface].set_mode("pass")
                else:
                    lane.fake.clear_faults()
            except Exception:
                pass
        lane.expect_fp = None
    finish_row(lane, row, t0)
    return row


def finish_row(lane, row, t0):
    problems = row.problems
    problems.extend(lane.fp_errors)
    lane.fp_errors = []
    if lane.lat:
        row.max_latency = max(lane.lat)
        row.scrapes = len(lane.lat)
        slow = [x for x in lane.lat if x > SCRAPE_LIMIT]
        if slow:
            problems.append("%d of %d scrapes over %d ms (max %.0f ms)"
                            % (len(slow), len(lane.lat), SCRAPE_LIMIT * 1000, max(slow) * 1000))
    if lane.outliers:
        row.notes.append("%d isolated slow scrape(s) forgiven as machine load: %s ms"
                         % (len(lane.outliers), ", ".join("%.0f" % (x * 1000)
                                                          for x in lane.outliers)))
        row.max_latency = max([row.max_latency] + lane.outliers)
        if len(lane.outliers) > max(MAX_OUTLIERS, (len(lane.lat) + len(lane.outliers)) // 20):
            problems.append("%d slow scrapes (over %d ms) although each was fast again at once"
                            % (len(lane.outliers), SCRAPE_LIMIT * 1000))
    if lane.stalls:
        row.notes.append("%d slow scrape(s) during machine stalls (a sleeping probe woke up "
                         "late too): %s ms" % (len(lane.stalls), ", ".join(
                             "%.0f" % (x * 1000) for x in lane.stalls)))
    lane.lat = []
    lane.outliers = []
    lane.stalls = []
    row.ok = not problems
    row.seconds = time.monotonic() - t0


# ---------------------------------------------------------------------------
# the fault lists
# ---------------------------------------------------------------------------

HUGE = {"kind": "huge", "bytes": 100 * MIB}

PROJECTS_FAULTS = [
    Fault("throttle_once_absorbed", "projects", "throttled",
          {"kind": "throttle", "retry_after": 1}, transient=True),
    Fault("throttle_burst", "projects", "throttled", {"kind": "throttle", "retry_after": 1}),
    Fault("5xx", "projects", "server", {"kind": "server_error", "status": 503}),
    Fault("connection_refused", "projects", "network", proxy="refuse"),
    Fault("hang", "projects", "timeout", {"kind": "hang", "seconds": 15}),
    Fault("slow_headers", "projects", "timeout", {"kind": "slow", "seconds": 4}),
    Fault("stall_mid_body", "projects", "timeout", proxy="stall"),
    Fault("truncated", "projects", "network", {"kind": "truncated"}),
    Fault("malformed_json", "projects", "parse", {"kind": "malformed"}),
    Fault("wrong_types", "projects", "parse", {"kind": "wrong_types"}),
    Fault("huge_100MiB", "projects", "parse", HUGE),
    Fault("endless_pagination", "projects", "parse", {"kind": "loop"}),
    Fault("auth", "projects", "auth", {"kind": "auth"}),
]

CE_FAULTS = [
    Fault("throttle_once_absorbed", "ce", "throttled", {"kind": "throttle"}, transient=True),
    Fault("throttle_burst", "ce", "throttled", {"kind": "throttle"}),
    Fault("5xx", "ce", "server", {"kind": "server_error", "status": 500}),
    Fault("connection_refused", "ce", "network", proxy="refuse"),
    Fault("hang", "ce", "timeout", {"kind": "hang", "seconds": 15}),
    Fault("slow_headers", "ce", "timeout", {"kind": "slow", "seconds": 4}),
    Fault("stall_mid_body", "ce", "timeout", proxy="stall"),
    Fault("truncated", "ce", "network", {"kind": "truncated"}),
    Fault("malformed_json", "ce", "parse", {"kind": "malformed"}),
    Fault("wrong_types_amount", "ce", "parse", {"kind": "wrong_types", "field": "amount"}),
    Fault("wrong_types_keys", "ce", "parse", {"kind": "wrong_types", "field": "keys"}),
    Fault("wrong_types_results", "ce", "parse", {"kind": "wrong_types", "field": "results"}),
    Fault("huge_100MiB", "ce", "parse", HUGE),
    Fault("endless_pagination", "ce", "parse", {"kind": "loop"}),
    Fault("auth", "ce", "auth", {"kind": "auth"}),
    Fault("expired_token", "ce", "auth", {"kind": "expired_token"}),
    Fault("data_unavailable", "ce", "client", {"kind": "data_unavailable"}),
]


def cred_faults(surface):
    wt = {"sts": "credentials", "imds": "token"}[surface]
    # IMDS answers three requests (token, role name, credentials): the body faults go to the
    # JSON document; the others hit the first request, the token
    doc = {"operation": "GetCredentials"} if surface == "imds" else {}
    return [
        Fault("throttle_once_absorbed", surface, "throttled", {"kind": "throttle"},
              transient=True),
        Fault("throttle_burst", surface, "throttled", {"kind": "throttle"}),
        Fault("5xx", surface, "server", {"kind": "server_error", "status": 500}),
        Fault("connection_refused", surface, "network", proxy="refuse"),
        Fault("hang", surface, "timeout", {"kind": "hang", "seconds": 15}),
        Fault("slow_headers", surface, "timeout", {"kind": "slow", "seconds": 5}),
        Fault("stall_mid_body", surface, "timeout", proxy="stall"),
        Fault("truncated", surface, "network", dict(doc, kind="truncated")),
        Fault("malformed_json", surface, "parse", dict(doc, kind="malformed")),
        Fault("wrong_types", surface, "parse", dict(doc, kind="wrong_types", field=wt)),
        Fault("huge_100MiB", surface, "parse", dict(HUGE, **doc)),
        Fault("auth", surface, "auth", {"kind": "auth"}),
        Fault("expired_credentials", surface, "auth", {"kind": "expired_credentials"},
              counter=OPS["projects"]),
    ]


def split(lst, parts):
    n = len(lst)
    return [lst[i * n // parts:(i + 1) * n // parts] for i in range(parts)]


# ---------------------------------------------------------------------------
# lanes
# ---------------------------------------------------------------------------

LANES = {}                      # name -> (fn, estimated seconds)


def lane(est):
    def deco(fn):
        LANES[fn.__name__[len("lane_"):]] = (fn, est)
        return fn
    return deco


def fault_lane(creds, projects_auth, faults, fake_args=()):
    def fn(ctx, opts):
        ln = Lane(ctx, creds=creds, projects_auth=projects_auth, fake_args=fake_args)
        try:
            ln.wait_up(SOURCES)
            return [run_fault(ln, f) for f in faults]
        finally:
            ln.close()
    return fn


def _register_fault_lanes():
    for i, part in enumerate(split(PROJECTS_FAULTS, 3)):
        LANES["projects_%d" % (i + 1)] = (fault_lane("static", "api_key", part), 15 * len(part))
    for i, part in enumerate(split(CE_FAULTS, 4)):
        LANES["ce_%d" % (i + 1)] = (fault_lane("static", "api_key", part,
                                               ("--ce-page-size", "100")), 16 * len(part))
    for s, creds in (("sts", "web_identity"), ("imds", "imds")):
        for i, part in enumerate(split(cred_faults(s), 3)):
            LANES["%s_%d" % (s, i + 1)] = (fault_lane(creds, "sigv4", part), 16 * len(part))


_register_fault_lanes()


@lane(40)
def lane_ce_pages(ctx, opts):
    """results that change between pages: pages >= 2 of a query carry $1 more per group."""
    ln = Lane(ctx, fake_args=("--ce-page-size", "20"), ce={"max_pages": 40})
    row = Row("change_between_pages", "ce")
    t0 = time.monotonic()
    try:
        m0 = ln.wait_up(SOURCES)
        fp0 = fingerprint(m0)
        ln.lat = []
        n0 = len(ln.records())
        e0 = errors(m0, *OPS["ce"])
        ln.fake.call("POST", "/_fake/faults", {"surface": "ce", "kind": "change_between_pages",
                                                 "count": -1})
        m1 = ln.hup_costs()
        applied = sum(x.get("applied", 0) for x in ln.fake.faults())
        if applied == 0:
            row.problems.append("the fake never applied the fault (no page 2 was asked for)")
        changed = fp_diff(fp0, fingerprint(m1))
        e1 = errors(m1, *OPS["ce"])
        moved = {r: e1[r] - e0[r] for r in REASONS if e1[r] != e0[r]}
        row.notes.append("pages changed: %d; the refresh %s; %d series moved; errors moved: %s"
                         % (applied, "failed" if up(m1, "cost_explorer") == 0 else
                            "succeeded (the change cannot be seen in the answers)",
                            len(changed), moved or "none"))
        ln.fake.clear_faults()
        # the next scheduled refresh reads the changed (recent, estimated) days again
        a1 = attempt(m1, "cost_explorer")
        m2 = ln.wait(lambda m: attempt(m, "cost_explorer") > a1 and up(m, "cost_explorer") == 1,
                     35, "the next scheduled Cost Explorer refresh")
        if fingerprint(m2) != fp0:
            row.problems.append("after the fault cleared the data did not return to the "
                                "ledger's: %s" % "; ".join(fp_diff(fp0, fingerprint(m2))[:4]))
        spam = {k: v for k, v in warn_keys(new_records(ln, n0)).items() if v > 1}
        if spam:
            row.problems.append("warn lines repeated: %s" % spam)
        if not ln.exp.alive():
            row.problems.append("exporter died")
    except (CaseFailure, it.TestFailure, OSError) as exc:
        row.problems.append(str(exc))
    finally:
        ln.close()
    finish_row(ln, row, t0)
    return [row]


def expire_all_case(ln, surface):
    """POST /_fake/credentials/expire: the cached temporary credentials stop working; the
    next request fails with an auth error, the exporter drops them and the next refresh
    works with new ones, without a signal."""
    row = Row("expire_all_credentials", surface)
    t0 = time.monotonic()
    try:
        m0 = ln.wait_up(SOURCES)
        ln.lat = []
        ln.expect_fp = fingerprint(m0)
        n0 = len(ln.records())
        a0 = {s: attempt(m0, s) for s in ("projects", "cost_explorer")}
        auth0 = sum(errors(m0, *OPS[s])["auth"] for s in ("projects", "ce"))
        ln.fake.call("POST", "/_fake/credentials/expire", {})
        # two scheduled refreshes of each source, no signal
        m1 = ln.wait(lambda m: all(attempt(m, s) > a0[s] for s in a0), 30,
                     "a refresh of projects and cost_explorer")
        a1 = {s: attempt(m1, s) for s in a0}
        m2 = ln.wait(lambda m: all(attempt(m, s) > a1[s] for s in a0) and
                     all(up(m, s) == 1 for s in ("projects", "cost_explorer", "forecast")),
                     40, "a second refresh of both, with every source up")
        auth = sum(errors(m2, *OPS[s])["auth"] for s in ("projects", "ce")) - auth0
        recs = new_records(ln, n0)
        keys = warn_keys(recs)
        row.notes.append("auth errors: %d; warn lines: %s" % (auth, sum(keys.values())))
        if auth < 1:
            row.problems.append("no auth error counted for the expired credentials")
        spam = {k: v for k, v in keys.items() if v > 1}
        if spam:
            row.problems.append("warn lines repeated: %s" % spam)
        for k in keys:
            if k[0] in (WARN_PROJECTS, WARN_SOURCE):
                info = INFO_PROJECTS if k[0] == WARN_PROJECTS else INFO_SOURCE
                n = sum(1 for r in recs if r.get("msg") == info and
                        (r.get("region") or r.get("source")) == k[1])
                if n != 1:
                    row.problems.append("%d info 'recovered' lines for %s" % (n, k[1]))
    except (CaseFailure, it.TestFailure, OSError) as exc:
        row.problems.append(str(exc))
    ln.expect_fp = None
    finish_row(ln, row, t0)
    return row


@lane(45)
def lane_sts_expire(ctx, opts):
    ln = Lane(ctx, creds="web_identity", projects_auth="sigv4")
    try:
        return [expire_all_case(ln, "sts")]
    finally:
        ln.close()


@lane(45)
def lane_imds_expire(ctx, opts):
    ln = Lane(ctx, creds="imds", projects_auth="sigv4")
    try:
        return [expire_all_case(ln, "imds")]
    finally:
        ln.close()


def cred_fetches(ln, surface):
    c = ln.fake.call("GET", "/_fake/requests?surface=" + surface)[surface]
    if surface == "sts":
        return c.get("by_action", {}).get("AssumeRoleWithWebIdentity", 0), c.get("issued", 0)
    return c.get("by_operation", {}).get("GetCredentials", 0), c.get("issued", 0)


def short_lifetime_case(ctx, surface, lifetime, seconds=32):
    """Temporary credentials that arrive with less than twice the exporter's 5-minute refresh
    margin to live (REFRESH_MARGIN in awscreds.c) are used for half of what remains, then
    fetched again: replaced before they expire, with no error, without asking the credential
    source at every request, and with the short-lifetime warning said once."""
    creds = "web_identity" if surface == "sts" else "imds"
    ln = Lane(ctx, creds=creds, projects_auth="sigv4",
              fake_args=("--credential-lifetime", str(lifetime)))
    row = Row("short_credential_lifetime_%ds" % lifetime, surface)
    t0 = time.monotonic()
    try:
        m0 = ln.wait_up(SOURCES)
        n0 = len(ln.records())
        f0, i0 = cred_fetches(ln, surface)
        e0 = {s: errors(m0, *OPS[s]) for s in ("projects", "ce")}
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ln.poll()
            time.sleep(0.25)
        m1 = ln.poll()
        f1, i1 = cred_fetches(ln, surface)
        e1 = {s: errors(m1, *OPS[s]) for s in ("projects", "ce")}
        moved = {s: {r: e1[s][r] - e0[s][r] for r in REASONS if e1[s][r] != e0[s][r]}
                 for s in e0}
        moved = {s: v for s, v in moved.items() if v}
        keys = warn_keys(new_records(ln, n0))
        api_calls = sum(requests_total(m1, *OPS[s]) - requests_total(m0, *OPS[s])
                        for s in ("projects", "ce"))
        row.notes.append("in %ds: %d credential fetches, %d new credentials, %d API calls; "
                         "errors moved: %s; warn lines: %s"
                         % (seconds, f1 - f0, i1 - i0, api_calls, moved or "none",
                            {k[0][:50]: v for k, v in keys.items()} or "none"))
        if f1 - f0 < 1:
            row.problems.append("the credentials were never fetched again")
        if moved:
            row.problems.append("errors while renewing credentials: %s" % moved)
        # a fetch per refresh, not per request: at most one per projects refresh and one per
        # Cost Explorer call would already be a lot; more means it asks at every request
        if f1 - f0 > max(4, seconds // 5):
            row.problems.append("%d credential fetches in %ds (for %d API calls): fetched at "
                                "nearly every request" % (f1 - f0, seconds, api_calls))
        for s in ("projects", "cost_explorer", "forecast"):
            if up(m1, s) != 1:
                row.problems.append("source_up{source=%s} = %s" % (s, up(m1, s)))
        spam = {k: v for k, v in keys.items() if v > 1}
        if spam:
            row.problems.append("warn lines repeated: %s" % spam)
    except (CaseFailure, it.TestFailure, OSError) as exc:
        row.problems.append(str(exc))
    finally:
        ln.close()
    finish_row(ln, row, t0)
    return row


@lane(40)
def lane_sts_lifetime(ctx, opts):
    # STS: lifetime = min(DurationSeconds, --credential-lifetime): 320 s = 20 s of use
    return [short_lifetime_case(ctx, "sts", 40)]


@lane(40)
def lane_imds_lifetime(ctx, opts):
    # IMDS hands out the same set until less than min(300 s, lifetime/2) of it is left, as
    # the real one rotates "at least five minutes" before expiry: 320 s = 20 s of use, then
    # the same set for another 140 s
    return [short_lifetime_case(ctx, "imds", 40)]


def faketime_lib():
    found = sorted(glob.glob(FAKETIME_GLOB))
    return found[0] if found else None


@lane(75)
def lane_clock(ctx, opts):
    """The wall clock jumps forward into next month, then back before today, then returns,
    while the release binary runs under libfaketime (monotonic clock untouched)."""
    row = Row("clock_jump", "all")
    lib = faketime_lib()
    if not lib:
        row.skipped = True
        row.notes.append("SKIP: libfaketime is not installed and could not be installed")
        return [row]
    if not os.path.exists(opts.release_binary):
        row.problems.append("release binary %s missing (make bedrock-cost-exporter)"
                            % opts.release_binary)
        return [row]
    it.BINARY = os.path.abspath(opts.release_binary)
    tsfile = os.path.join(ctx.dir, "faketime")

    def set_offset(spec):
        with open(tsfile + ".tmp", "w") as fh:
            fh.write(spec + "\n")
        os.replace(tsfile + ".tmp", tsfile)
    set_offset("+0")
    env = {"LD_PRELOAD": lib, "FAKETIME_TIMESTAMP_FILE": tsfile, "FAKETIME_NO_CACHE": "1",
           "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    ln = Lane(ctx, proxies=False, extra_env=env)
    t0 = time.monotonic()

    def window(m, w):
        """The window's start, or None when it is not served."""
        found = m.find("bedrock_cost_window_start_timestamp_seconds", window=w)
        return found[0].value if found else None

    def wanted(t):
        return {"today": utc_midnight(t), "yesterday": utc_midnight(t) - 86400,
                "month_to_date": month_start(t), "previous_month": prev_month_start(t)}

    def windows_match(m, t):
        return all(window(m, w) == v for w, v in wanted(t).items())

    def windows_follow(m, t):
        """Every window served starts where the clock says; one may be missing (answers
        read days away from the clock serve none rather than a wrong 0), none is stale."""
        return all(window(m, w) in (None, v) for w, v in wanted(t).items())

    def served(m):
        return ",".join(w for w in wanted(0) if window(m, w) is not None) or "none"
    try:
        m0 = ln.wait_up(SOURCES)
        now = time.time()
        if not windows_match(m0, now):
            row.problems.append("windows before the jump do not match today")
        ln.lat = []
        n0 = len(ln.records())
        e0 = errors(m0, *OPS["ce"])
        # forward into the next month (+1 day past its first)
        days = int((month_start(month_start(now) + 32 * 86400) - utc_midnight(now)) // 86400) + 1
        set_offset("+%dd" % days)
        ln.wait(lambda m: windows_follow(m, time.time() + days * 86400), 20,
                "the windows to follow the clock %d days ahead" % days)
        m1 = ln.wait(lambda m: up(m, "cost_explorer") == 0, 25,
                     "Cost Explorer to refuse the skewed signatures")
        if up(m1, "projects") != 1:
            row.problems.append("projects (API key, no clock in it) went down")
        if not windows_follow(m1, time.time() + days * 86400):
            row.problems.append("+%dd: a window is served with a stale start" % days)
        row.notes.append("+%dd: windows served: %s" % (days, served(m1)))
        # backward, before today
        set_offset("-3d")
        m2 = ln.wait(lambda m: windows_follow(m, time.time() - 3 * 86400), 20,
                     "the windows to follow the clock 3 days back")
        a2 = attempt(m2, "cost_explorer")
        m2 = ln.wait(lambda m: attempt(m, "cost_explorer") != a2, 25,
                     "a Cost Explorer refresh with the clock 3 days back")
        if not windows_follow(m2, time.time() - 3 * 86400):
            row.problems.append("-3d: a window is served with a stale start")
        row.notes.append("-3d: windows served: %s; cost_explorer up=%s" % (
            served(m2), up(m2, "cost_explorer")))
        if not ln.exp.alive():
            row.problems.append("exporter died")
        e1 = errors(m2, *OPS["ce"])
        moved = {r: e1[r] - e0[r] for r in REASONS if e1[r] != e0[r]}
        row.notes.append("CE errors moved: %s" % (moved or "none"))
        if moved.get("auth", 0) < 1:
            row.problems.append("no auth error for signatures 15+ minutes off (moved: %s)"
                                % (moved or "none"))
        # back to the real time: automatic recovery
        set_offset("+0")
        m3 = ln.wait(lambda m: windows_match(m, time.time()) and
                     all(up(m, s) == 1 for s in ("projects", "cost_explorer", "forecast")),
                     40, "the windows back at today and Cost Explorer up")
        recs = new_records(ln, n0)
        keys = warn_keys(recs, with_error=True)
        spam = {k: v for k, v in keys.items() if v > 1}
        if spam:
            row.problems.append("the same warn line repeated: %s" % spam)
        n = sum(v for k, v in keys.items() if k[:2] == (WARN_SOURCE, "cost_explorer"))
        row.notes.append("%d warn lines for cost_explorer (one per distinct error)" % n)
        if n < 1:
            row.problems.append("no warn line for cost_explorer")
        n = sum(1 for r in recs if r.get("msg") == INFO_SOURCE and
                r.get("source") == "cost_explorer")
        if n != 1:
            row.problems.append("%d info 'recovered' lines for cost_explorer" % n)
        if up(m3, "projects") != 1:
            row.problems.append("projects down at the end")
    except (CaseFailure, it.TestFailure, OSError) as exc:
        row.problems.append(str(exc))
    finally:
        ln.close()
    finish_row(ln, row, t0)
    return [row]


STATE_FORMAT = "bedrock-cost-exporter-state"


def check_state_file(path):
    """None if absent or valid; else what is wrong."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return None
    try:
        obj = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return "not valid JSON (%d bytes): %s" % (len(data), exc)
    if not isinstance(obj, dict) or obj.get("format") != STATE_FORMAT or \
            not isinstance(obj.get("version"), int):
        return "valid JSON but not the exporter's format: %r" % (
            {k: obj.get(k) for k in ("format", "version")} if isinstance(obj, dict) else obj)
    for k in ("ce_requests", "services", "spend", "models", "projects"):
        if k not in obj:
            return "state file lacks %r" % k
    return None


@lane(60)
def lane_state(ctx, opts):
    rows = []
    ln = Lane(ctx, proxies=False, start=False)
    # (a) kill -9 at random moments, with a SIGHUP every 15 ms so writes are frequent
    row = Row("state_file_kill_9_x10", "state")
    t0 = time.monotonic()
    rng = random.Random(opts.seed)
    seen = {"absent": 0, "valid": 0}
    try:
        for i in range(10):
            existed = os.path.exists(ln.state_path)
            exp = ln.start()
            recs = exp.log_records()
            msgs = [r.get("msg") for r in recs]
            if "state file ignored; starting afresh" in msgs:
                row.problems.append("start %d: state file ignored: %r" % (i, [
                    r.get("error") for r in recs if r.get("msg", "").startswith("state file")]))
            elif existed and "state restored" not in msgs:
                row.problems.append("start %d: the state file was there but not restored" % i)
            stop = threading.Event()

            def hupper(p=exp.proc):
                for _ in range(400):
                    if stop.wait(0.015):
                        return
                    try:
                        p.send_signal(signal.SIGHUP)
                    except OSError:
                        return
            th = threading.Thread(target=hupper, daemon=True)
            th.start()
            time.sleep(rng.uniform(0.0, 0.4) if i % 2 == 0 else rng.uniform(0.4, 3.0))
            exp.stop(signal.SIGKILL, 5)
            stop.set()
            th.join(5)
            bad = check_state_file(ln.state_path)
            if bad:
                row.problems.append("after kill %d: %s" % (i + 1, bad))
                break
            seen["absent" if not os.path.exists(ln.state_path) else "valid"] += 1
        # the last start loads what the last kill left
        exp = ln.start()
        ln.wait(lambda m: True, 5, "a scrape")
        recs = exp.log_records()
        msgs = [r.get("msg") for r in recs]
        if "state file ignored; starting afresh" in msgs:
            row.problems.append("the final start ignored the state file")
        if os.path.exists(ln.state_path) and "state restored" not in msgs:
            row.problems.append("the final start did not log 'state restored'")
        tmps = glob.glob(ln.state_path + ".tmp.*")
        row.notes.append("after 10 kills: file valid %d times, absent %d times; %d stale "
                         "temporary files left beside it" % (seen["valid"], seen["absent"],
                                                             len(tmps)))
        rc, _ = exp.stop(signal.SIGTERM, 5)
        if rc != 0:
            row.problems.append("SIGTERM exit code %s" % rc)
    except (CaseFailure, it.TestFailure, OSError) as exc:
        row.problems.append(str(exc))
    finish_row(ln, row, t0)
    rows.append(row)

    # (b) corrupt and foreign state files are ignored with a warning
    for name, content in (("corrupt", '{"format": "bedrock-cost-exporter-state", "vers'),
                          ("foreign", json.dumps({"format": "something-else", "version": 1,
                                                  "data": [1, 2, 3]}))):
        row = Row("state_file_%s" % name, "state")
        t0 = time.monotonic()
        try:
            with open(ln.state_path, "w") as fh:
                fh.write(content)
            exp = ln.start()
            m = ln.wait(lambda m: up(m, "projects") == 1, 20, "projects up")
            w = [r for r in exp.log_records() if r.get("msg") == "state file ignored; starting afresh"
                 and r.get("level") == "warn"]
            if len(w) != 1:
                row.problems.append("%d 'state file ignored' warn lines (want 1)" % len(w))
            else:
                row.notes.append("warn error=%r" % w[0].get("error", "")[:120])
            if up(m, "projects") != 1:
                row.problems.append("projects not up")
            rc, _ = exp.stop(signal.SIGTERM, 5)
            if rc != 0:
                row.problems.append("SIGTERM exit code %s" % rc)
        except (CaseFailure, it.TestFailure, OSError) as exc:
            row.problems.append(str(exc))
        finish_row(ln, row, t0)
        rows.append(row)
    return rows


def quiet_sample(pid, seconds=1.5):
    """(min RSS KiB, min fd count) over a quiet moment."""
    rss, fds = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rss.append(rss_kib(pid))
        fds.append(fd_count(pid))
        time.sleep(0.1)
    return min(rss), min(fds)


def storm_case(ctx, opts, binary, label, rss_bound_kib, asan):
    row = Row("reload_storm_100_SIGHUP_%s" % label, "config")
    t0 = time.monotonic()
    it.BINARY = os.path.abspath(binary)
    ln = Lane(ctx, proxies=False, start=False)
    if asan:
        # a small quarantine: freed memory is reused, so RSS means something
        ln.extra_env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:print_summary=1:" \
                                       "quarantine_size_mb=1"
    try:
        exp = ln.start()
        ln.wait_up()
        pid = exp.proc.pid
        for _ in range(10):                         # warm-up: the same path, fewer times
            ln.hup_projects()
        time.sleep(1.0)
        rss0, fd0 = quiet_sample(pid)
        m0 = ln.poll()
        r0 = m0.reload_ts()
        n0 = len(ln.records())
        for i in range(100):
            exp.send(signal.SIGHUP)
            if i % 10 == 0:
                ln.poll()
            time.sleep(0.002)
        m1 = ln.wait(lambda m: m.reload_ts() > r0 and attempt(m, "projects") > m.reload_ts(),
                     30, "the refresh after the storm")
        time.sleep(1.0)
        m1 = ln.wait(lambda m: m.reload_ok() == 1 and up(m, "projects") == 1, 20, "settled")
        rss1, fd1 = quiet_sample(pid)
        reloads = sum(1 for r in new_records(ln, n0) if r.get("msg") == "configuration reloaded")
        row.notes.append("reloads done: %d; RSS %d -> %d KiB (%+d, bound %d); fds %d -> %d"
                         % (reloads, rss0, rss1, rss1 - rss0, rss_bound_kib, fd0, fd1))
        if m1.reload_ok() != 1:
            row.problems.append("config_last_reload_successful = %s" % m1.reload_ok())
        if rss1 - rss0 > rss_bound_kib:
            row.problems.append("RSS grew by %d KiB over the storm" % (rss1 - rss0))
        if fd1 > fd0:
            row.problems.append("open fds grew from %d to %d" % (fd0, fd1))
        rc, took = exp.stop(signal.SIGTERM, 10)
        if rc != 0:
            row.problems.append("exit code %s at SIGTERM after the storm%s: %s"
                                % (rc, " (LeakSanitizer?)" if asan else "",
                                   exp.log_text()[-1500:]))
        text = exp.log_text()
        for marker in it.SANITIZER_MARKERS:
            if marker in text:
                row.problems.append("sanitizer report: %s" % text[text.index(marker):][:800])
                break
    except (CaseFailure, it.TestFailure, OSError) as exc:
        row.problems.append(str(exc))
    finish_row(ln, row, t0)
    return row


@lane(45)
def lane_storm(ctx, opts):
    """100 SIGHUPs in quick succession: still serving, reload successful, fds flat, RSS flat
    (under ASan the allocator's caches move RSS by a MiB or so, hence a looser bound there;
    the release build is measured too, tightly), exit 0 under ASan/LSan at SIGTERM."""
    rows = [storm_case(ctx, opts, opts.binary, "asan", 4096, asan=True)]
    if os.path.exists(opts.release_binary):
        rows.append(storm_case(ctx, opts, opts.release_binary, "release", 1024, asan=False))
    return rows


@lane(20)
def lane_perms(ctx, opts):
    """A world-readable projects.api_key_file or --web.config.file is warned about."""
    rows = []
    keyfile = ctx.write("api-key", it.API_KEY + "\n")
    webcfg = ctx.write("web-config.yml",
                       "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n")
    ln = Lane(ctx, proxies=False, start=False, args=["--web.config.file=" + webcfg],
              extra_env={"BEDROCK_API_KEY": ""})
    ln.groups_orig = ln.groups

    def groups():
        g = ln.groups_orig()
        g["projects"]["api_key_file"] = keyfile
        return g
    ln.groups = groups
    ln.write_conf()
    for mode, want in ((0o644, True), (0o600, False)):
        row = Row("secret_files_mode_%o" % mode, "config")
        t0 = time.monotonic()
        try:
            os.chmod(keyfile, mode)
            os.chmod(webcfg, mode)
            exp = ln.start()
            ln.wait(lambda m: up(m, "projects") == 1, 20, "projects up (key from the file)")
            recs = exp.log_records()
            warned = {r.get("setting") for r in recs if r.get("level") == "warn" and
                      "readable" in r.get("msg", "")}
            row.notes.append("warned for: %s" % (sorted(warned) or "nothing"))
            for setting in ("projects.api_key_file", "--web.config.file"):
                if want and setting not in warned:
                    row.problems.append("no warn line mentioning 'readable' for %s (mode %o)"
                                        % (setting, mode))
                if not want and setting in warned:
                    row.problems.append("warned for %s although its mode is %o"
                                        % (setting, mode))
            rc, _ = exp.stop(signal.SIGTERM, 5)
            if rc != 0:
                row.problems.append("SIGTERM exit code %s" % rc)
        except (CaseFailure, it.TestFailure, OSError) as exc:
            row.problems.append(str(exc))
        finish_row(ln, row, t0)
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------
# lane process and orchestration
# ---------------------------------------------------------------------------

def run_lane(name, opts):
    """Runs one lane in this process; returns its rows as dicts."""
    fn, _ = LANES[name]
    it.BINARY = os.path.abspath(opts.binary)
    it.detect_supported_keys()
    probe()
    root = tempfile.mkdtemp(prefix="bce-faults-%s." % name)
    ctx = it.Ctx(name, root)
    rows = []
    try:
        rows = fn(ctx, opts)
    except (it.Aborted, KeyboardInterrupt):
        r = Row(name, "lane")
        r.problems.append("interrupted")
        rows.append(r)
    except Exception:
        r = Row(name, "lane")
        r.problems.append("error: " + traceback.format_exc())
        rows.append(r)
    finally:
        try:
            problems = ctx.close()
        except Exception:
            problems = ["cleanup error: " + traceback.format_exc()]
        if problems:
            r = Row("%s: exporter exit / sanitizers" % name, "lane")
            r.problems.extend(problems)
            rows.append(r)
        keep = opts.keep or any(not r.ok and not r.skipped for r in rows)
        if keep:
            for r in rows:
                if not r.ok and not r.skipped:
                    r.notes.append("logs kept in %s" % ctx.dir)
                    break
        else:
            shutil.rmtree(root, ignore_errors=True)
    out = []
    for i, r in enumerate(rows):
        d = r.to_json()
        d["lane"] = name
        d["index"] = i
        out.append(d)
    return out


def ensure_faketime():
    """libfaketime for the clock lane: install Debian's package if missing (as root)."""
    if faketime_lib():
        return True
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "install", "-y", "-q", "--no-install-recommends", "libfaketime"],):
        try:
            subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=env, timeout=180)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if faketime_lib():
            return True
    try:                                        # the package lists may be missing or old
        subprocess.run(["apt-get", "update", "-q"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                       timeout=180)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                        "libfaketime"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=env, timeout=180)
    except (OSError, subprocess.TimeoutExpired):
        pass
    return bool(faketime_lib())


def print_table(rows):
    w1 = max([len("fault")] + [len(r["fault"]) for r in rows])
    w2 = max([len("surface")] + [len(r["surface"]) for r in rows])
    print("%-*s  %-*s  %-6s %7s %6s  %s" % (w1, "fault", w2, "surface", "result", "max ms",
                                             "secs", "notes"))
    print("%s  %s  %s %s %s  %s" % ("-" * w1, "-" * w2, "-" * 6, "-" * 7, "-" * 6, "-" * 40))
    for r in rows:
        res = "SKIP" if r["skipped"] else ("ok" if r["ok"] else "FAIL")
        lat = "%.1f" % (r["max_latency"] * 1000) if r["scrapes"] else "-"
        print("%-*s  %-*s  %-6s %7s %6.1f  %s" % (w1, r["fault"], w2, r["surface"], res, lat,
                                                  r["seconds"], "; ".join(r["notes"])[:160]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "san",
                                                     "bedrock-cost-exporter"))
    ap.add_argument("--release-binary", default=os.path.join(ROOT, "bedrock-cost-exporter"),
                    help="for the clock jump (libfaketime cannot preload into ASan)")
    ap.add_argument("-j", dest="jobs", type=int, default=6, help="lanes run in parallel")
    ap.add_argument("-k", dest="pattern", default="", help="run lanes whose name contains this")
    ap.add_argument("-v", dest="verbose", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep every lane's files")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--lane", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    opts = ap.parse_args(argv)
    if opts.seed is None:
        opts.seed = random.randrange(1 << 30)

    if opts.lane:                                    # a child: one lane
        def on_term(signum, frame):
            it.ABORT.set()
            raise KeyboardInterrupt
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        rows = run_lane(opts.lane, opts)
        it.kill_all()
        with open(opts.out + ".tmp", "w") as fh:
            json.dump(rows, fh)
        os.replace(opts.out + ".tmp", opts.out)
        return 0

    names = sorted((n for n in LANES if opts.pattern in n), key=lambda n: -LANES[n][1])
    if opts.list:
        for n in names:
            print("%-14s ~%ds" % (n, LANES[n][1]))
        return 0
    for path, what in ((opts.binary, "--binary"), (it.FAKE_SCRIPT, "fake_aws")):
        if not os.path.exists(path):
            print("missing %s: %s (build it with: make build/san/bedrock-cost-exporter)"
                  % (what, path), file=sys.stderr)
            print("0 passed, 1 failed")
            return 1
    if "clock" in names and not ensure_faketime():
        print("SKIP clock_jump: libfaketime is not installed and `apt-get install -y "
              "libfaketime` failed", flush=True)

    tmp = tempfile.mkdtemp(prefix="bce-faults.")
    # private copies: a rebuild of the tree during the run cannot swap a binary under a lane
    for attr, name in (("binary", "exporter-under-test"), ("release_binary", "exporter-release")):
        src = getattr(opts, attr)
        if os.path.exists(src):
            dst = os.path.join(tmp, name)
            shutil.copy2(src, dst)
            setattr(opts, attr, dst)
    procs = {}
    results = []
    t0 = time.monotonic()
    lane_limit = 240
    stop = threading.Event()

    def on_term(signum, frame):
        stop.set()
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    def spawn(name):
        out = os.path.join(tmp, name + ".json")
        log = open(os.path.join(tmp, name + ".log"), "wb")
        cmd = [PYTHON, os.path.abspath(__file__), "--lane", name, "--out", out,
               "--binary", opts.binary, "--release-binary", opts.release_binary,
               "--seed", str(opts.seed)] + (["--keep"] if opts.keep else [])
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        procs[name] = (p, time.monotonic(), out)

    def collect(name, timed_out=False):
        p, started, out = procs.pop(name)
        rows = []
        try:
            with open(out) as fh:
                rows = json.load(fh)
        except (OSError, ValueError):
            r = Row(name, "lane").to_json()
            r["lane"] = name
            try:
                with open(os.path.join(tmp, name + ".log"), "rb") as fh:
                    tail = fh.read()[-3000:].decode("utf-8", "replace")
            except OSError:
                tail = ""
            r["problems"] = ["lane %s %s (exit %s): %s" % (
                name, "timed out" if timed_out else "gave no result", p.returncode, tail)]
            rows = [r]
        for r in rows:
            results.append(r)
            if opts.verbose or (not r["ok"] and not r["skipped"]):
                res = "SKIP" if r["skipped"] else ("ok" if r["ok"] else "FAIL")
                print("%-4s  %-14s %-28s %-8s %5.1fs  %s" % (
                    res, name, r["fault"], r["surface"], r["seconds"],
                    "; ".join(r["notes"])[:200]), flush=True)
                for pr in r["problems"]:
                    print("        - " + pr.replace("\n", "\n          "), flush=True)
        if opts.verbose:
            print("lane %s done in %.0fs" % (name, time.monotonic() - started), flush=True)

    queue = list(names)
    interrupted = False
    try:
        while queue or procs:
            while queue and len(procs) < max(1, opts.jobs):
                spawn(queue.pop(0))
            time.sleep(0.2)
            for name in list(procs):
                p, started, _ = procs[name]
                if p.poll() is not None:
                    collect(name)
                elif time.monotonic() - started > lane_limit:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(20)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
                    collect(name, timed_out=True)
    except KeyboardInterrupt:
        interrupted = True
        for name, (p, _, _) in list(procs.items()):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, (p, _, _) in list(procs.items()):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    finally:
        if not opts.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    prefixes = ("projects", "ce", "sts", "imds", "clock", "state", "storm", "perms")
    order = {n: (min([i for i, p in enumerate(prefixes) if n.startswith(p)] or [99]), n)
             for n in LANES}
    results.sort(key=lambda r: (order.get(r["lane"], (99, "")), r.get("index", 0)))
    print()
    print_table(results)
    passed = sum(1 for r in results if r["ok"] and not r["skipped"])
    failed = sum(1 for r in results if not r["ok"] and not r["skipped"]) + (1 if interrupted else 0)
    for r in results:
        if r["skipped"]:
            print("SKIP %s: %s" % (r["fault"], "; ".join(r["notes"])))
    print("seed %d; %d lanes in %.0fs (-j %d)" % (opts.seed, len(names),
                                                  time.monotonic() - t0, opts.jobs))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
