#!/usr/bin/env python3
"""`make bench`: the performance benchmark of bedrock-cost-exporter (tests/bench/README.md).

For each account size (10, 100, 1,000, 10,000 projects) it generates an account
(gen_account.py), starts the fake AWS on loopback with that ledger (fake_fast.py), runs the
exporter against it, and measures:

  - scrape throughput and p50/p99 latency with wrk at 1 and 64 connections, plain and gzip,
    for the exporter, a private nginx serving the identical captured body (gzip_static), and
    a Python prometheus_client exporter exposing the same families and series;
  - one full refresh: CPU and wall time of `--once` (the fake answering from memory), and
    CPU of the daemon's first refresh (the fake computing);
  - VmHWM / VmRSS of the daemon, bytes per series;
  - exposition size plain and gzip, series, Cost Explorer requests per refresh.

Prints one table, writes tests/bench/results/{bench.csv,scrape.csv,table.txt,bench.png}.
Only 127.0.0.1 traffic; every load run and every wait is bounded in time.
"""
import argparse
import csv
import datetime
import gzip
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time
import zlib

sys.dont_write_bytecode = True   # no __pycache__ in the work tree
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import gen_account  # noqa: E402

PYTHON = "/usr/bin/python3"       # Debian's: botocore and prometheus_client come from apt
API_KEY = "demo-bedrock-api-key"  # the fake account's key, not a real secret
AKID, SECRET = "AKIDFAKEEXAMPLE", "fake/secret/EXAMPLEKEY"
CE_PAGE_SIZE = 5000
TAG_LABELS = ["Application", "Environment", "Team", "CostCenter", "Owner", "BusinessUnit",
              "Tier", "DataClassification"]
CLK_TCK = os.sysconf("SC_CLK_TCK")

WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests":%d,"duration_us":%.0f,"bytes":%.0f,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%.1f,"p99_us":%.1f,"mean_us":%.1f,"max_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.mean,
    latency.max))
end
"""


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what, proc=None, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s: process exited with %s" % (what, proc.returncode))
        try:
            v = pred()
        except OSError:
            v = None
        if v:
            return v
        time.sleep(interval)
    raise RuntimeError("timed out after %.0f s waiting for %s" % (timeout, what))


def req(port, path, method="GET", headers=None, body=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


class Procs:
    """Every process this run starts; stopped by pid (never by name) at the end."""

    def __init__(self):
        self.procs = []

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=15):
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in reversed(list(self.procs)):
            self.stop(p, timeout=5)


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) * 1024
    return out


def memfd_bytes(pid):
    """Bytes in the exporter's memfds (the published bodies; see src/snapshot.c). Their pages
    are shared memory that VmRSS counts only where the exporter's own mapping was read, and a
    body sent with sendfile() never is: add them, so memory is never understated."""
    total = 0
    fddir = "/proc/%d/fd" % pid
    for fd in os.listdir(fddir):
        try:
            if os.readlink(os.path.join(fddir, fd)).startswith("/memfd:"):
                total += os.stat(os.path.join(fddir, fd)).st_size
        except OSError:
            pass
    return total


def proc_cpu(pid):
    """utime+stime of the whole process (all threads, dead ones included), seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_runtimes_ns(pid):
    """{tid: on-CPU ns} of the live threads, from schedstat (ns resolution)."""
    out = {}
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                out[t] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out


def busiest_delta_ns(before, after):
    """CPU of the thread that worked most between two samples: the poller thread, which
    does all of a refresh (the HTTP threads only answer the benchmark's polling)."""
    return max((v - before.get(t, 0) for t, v in after.items()), default=0)


SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)$')


def samples(text, name):
    """{labels-string: value} of one metric name in an exposition."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name):
            m = SAMPLE_RE.match(line)
            if m and m.group(1) == name:
                out[m.group(2) or ""] = float(m.group(3))
    return out


def series_count(text):
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


# --------------------------------------------------------------------------- wrk

def wrk(lua, port, path, conns, duration, gz, timeout_s):
    threads = 1 if conns == 1 else 2
    argv = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration, "--latency",
            "--timeout", "%ds" % timeout_s, "-s", lua]
    if gz:
        argv += ["-H", "Accept-Encoding: gzip"]
    argv.append("http://127.0.0.1:%d%s" % (port, path))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=duration + timeout_s + 30)
    m = re.search(r"^BENCHJSON (\{.*\})$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        raise RuntimeError("wrk failed (%s): %s %s" % (r.returncode, r.stdout[-800:], r.stderr[-800:]))
    d = json.loads(m.group(1))
    secs = d["duration_us"] / 1e6
    d["rps"] = d["requests"] / secs if secs > 0 else 0.0
    d["errors"] = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]
    d["bytes_per_resp"] = d["bytes"] / d["requests"] if d["requests"] else 0
    if d["requests"] == 0:
        d["p50_us"] = d["p99_us"] = float("nan")
    return d


# --------------------------------------------------------------------------- one size

def write_conf(path, fake_port, state_file, n):
    tag_labels = ", ".join('"%s"' % t for t in TAG_LABELS)
    with open(path, "w") as f:
        f.write("""# written by tests/bench/bench.py ({n} projects)
projects: {{
  regions = ["us-east-1"];
  endpoint = "http://127.0.0.1:{port}/mantle/{{region}}/v1";
  auth = "api_key";
  api_key_env = "BEDROCK_API_KEY";
  refresh_interval = 86400;        # no scheduled listing during the load runs (SIGHUP lists)
  tag_labels = [{tag_labels}];
  max_projects = 20000;
}};
aws: {{
  sts_endpoint = "http://127.0.0.1:{port}/sts";
  imds_enabled = false;
}};
cost_explorer: {{
  endpoint = "http://127.0.0.1:{port}/ce";
  refresh_interval = 604800;       # one cost refresh per run: no fake work during load runs
  max_requests_per_day = 100000;
  max_pages = 1000;
}};
cloudwatch: {{ enabled = false; }};   # this benchmark measures the listing, Cost Explorer and scrapes
http: {{
  request_timeout = 600;           # the Python fake needs seconds per page at 10,000 projects
  max_response_mib = 256;
}};
budgets = (
  {{ tag = "Team"; value = "team-000"; monthly_usd = 2000.0; }},
  {{ tag = "Team"; value = "team-001"; monthly_usd = 1500.0; }},
  {{ tag = "CostCenter"; value = "CC-1000"; monthly_usd = 5000.0; }}
);
state_file = "{state}";
""".format(n=n, port=fake_port, tag_labels=tag_labels, state=state_file))


def exporter_env(tmp):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(BEDROCK_API_KEY=API_KEY, HOME=tmp, AWS_ACCESS_KEY_ID=AKID,
               AWS_SECRET_ACCESS_KEY=SECRET, AWS_EC2_METADATA_DISABLED="true")
    return env


SOURCES = ("projects", "cost_explorer", "forecast", "allocation_tags")


def metrics_text(port, timeout=30):
    """/metrics, fetched gzip-compressed: polling costs the exporter little CPU."""
    st, h, body = req(port, "/metrics", headers={"Accept-Encoding": "gzip"}, timeout=timeout)
    if st != 200:
        return None
    if h.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    return body.decode()


def all_sources_done(port):
    text = metrics_text(port)
    if text is None:
        return None
    up = samples(text, "bedrock_cost_exporter_last_success_timestamp_seconds")
    if len(up) >= len(SOURCES) and all(v > 0 for v in up.values()):
        return text
    return None


PY_BIG = 10000        # from this size the Python reference needs > 1 s per scrape
PY_BIG_CONNS = 2      # so it gets at most this many connections there ...
PY_BIG_SECONDS = 10   # ... and at least this many seconds per run


def run_servers(args, lua, servers, path, results, n, timeout_s, restart=None):
    """wrk at each (encoding, connections). @servers: [(label, port)], measured back to back
    for each configuration, so a disturbance from outside hits them alike. restart(), if
    given, returns the port of a fresh server before each run (one server only)."""
    for gz in (False, True):
        for conns in args.conns:
            for label, port in servers:
                used, duration = conns, args.duration
                if label == "python" and n >= PY_BIG:
                    used, duration = min(conns, PY_BIG_CONNS), max(args.duration, PY_BIG_SECONDS)
                if restart:
                    port = restart()
                else:
                    wrk(lua, port, path, min(conns, 4), 1, gz, timeout_s)   # warm-up, 1 s
                d = wrk(lua, port, path, used, duration, gz, timeout_s)
                d.update(size=n, server=label, encoding="gzip" if gz else "plain", conns=conns,
                         conns_used=used, seconds=duration)
                results.append(d)
                log("  %-8s %-5s c=%-3d %9.1f req/s  p50 %8.3f ms  p99 %8.3f ms  %8.0f B/resp  "
                    "errors %d" % (label, d["encoding"], used, d["rps"], d["p50_us"] / 1e3,
                                   d["p99_us"] / 1e3, d["bytes_per_resp"], d["errors"]))
                time.sleep(0.3)


def start_fake(n, sdir, procs):
    """Generates the account, starts the fake with its ledger, PUTs its projects.
    Returns (process, port, ledger rows)."""
    t0 = time.monotonic()
    today = datetime.datetime.now(datetime.timezone.utc).date()
    projects, rows = gen_account.account(n, today)
    ledger = os.path.join(sdir, "ledger.json")
    with open(ledger, "w") as f:
        f.write(json.dumps(rows, separators=(",", ":")))
    nrows = len(rows)
    del rows
    log("%d projects: %d ledger rows generated in %.1f s" % (n, nrows, time.monotonic() - t0))
    # the fake's own --synthetic projects share Application+Environment (7 x 4 values), so
    # the generated projects, whose pairs are unique, are PUT instead (see README)
    port_file = os.path.join(sdir, "fake.port")
    fake = procs.start([PYTHON, os.path.join(HERE, "fake_fast.py"), "--port", "0",
                        "--port-file", port_file, "--quiet", "--today", today.isoformat(),
                        "--ce-page-size", str(CE_PAGE_SIZE), "--ledger", ledger],
                       stdout=subprocess.DEVNULL)
    wait_until(lambda: os.path.exists(port_file), 900, "the fake", fake, 0.2)
    fport = int(open(port_file).read())
    st, _, b = req(fport, "/_fake/projects/us-east-1", "PUT",
                   {"Content-Type": "application/json"}, json.dumps(projects), 120)
    assert st == 200, b
    st, _, b = req(fport, "/_fake/allocation_tags", "PUT", {"Content-Type": "application/json"},
                   json.dumps({k: "Active" for k in TAG_LABELS}), 30)
    assert st == 200, b
    return fake, fport, nrows


def bench_size(args, n, tmp, binary, lua, scrape_rows):
    procs = Procs()
    row = {"projects": n}
    sdir = os.path.join(tmp, "n%d" % n)
    os.makedirs(sdir)
    os.chmod(sdir, 0o755)
    try:
        t0 = time.monotonic()
        fake, fport, row["ledger_rows"] = start_fake(n, sdir, procs)
        log("%d projects: fake ready in %.1f s" % (n, time.monotonic() - t0))

        # --once: one refresh of every source, rendered, printed (no gzip, no publish). The
        # first run is cold (the Python fake computes its answers); the others are warm (the
        # fake answers from memory), and so is the daemon's first refresh below.
        env = exporter_env(sdir)
        conf2 = os.path.join(sdir, "once.conf")
        write_conf(conf2, fport, os.path.join(sdir, "state-once.json"), n)
        runs = []
        for _ in range(1 + args.once_runs):
            try:
                os.unlink(os.path.join(sdir, "state-once.json"))
            except FileNotFoundError:
                pass
            t3 = time.monotonic()
            with open(os.path.join(sdir, "once.log"), "w") as olog:
                p = subprocess.Popen([binary, "--once", "--config.file=" + conf2], env=env,
                                     stdout=subprocess.DEVNULL, stderr=olog)
                _, status, ru = os.wait4(p.pid, 0)
                p.returncode = os.waitstatus_to_exitcode(status)
            wall = time.monotonic() - t3
            if p.returncode != 0:
                raise RuntimeError("--once exited %d (see %s)" % (p.returncode, olog.name))
            runs.append((ru.ru_utime + ru.ru_stime, wall, ru.ru_maxrss * 1024))
        row["once_cold_wall_s"] = runs[0][1]
        warm = sorted(runs[1:])
        cpu, wall, maxrss = warm[len(warm) // 2]          # the median warm run
        row["once_cpu_ms"] = cpu * 1e3
        row["once_wall_ms"] = wall * 1e3
        row["once_maxrss"] = maxrss
        log("%d projects: --once %.1f ms CPU, %.1f ms wall (median of %d warm runs; cold run "
            "%.1f s wall)" % (n, row["once_cpu_ms"], row["once_wall_ms"], len(warm),
                              row["once_cold_wall_s"]))

        # the daemon: its first full refresh (projects, cost_explorer, forecast,
        # allocation_tags, each followed by render + gzip + publish), measured on the poller
        # thread, which does all of it
        conf = os.path.join(sdir, "exporter.conf")
        state = os.path.join(sdir, "state.json")
        write_conf(conf, fport, state, n)
        elog = open(os.path.join(sdir, "exporter.log"), "w")

        def start_daemon():
            """Starts a daemon without a state file; returns it, its port, the text at the
            moment every source has succeeded, and the refresh's wall and CPU ms."""
            try:
                os.unlink(state)
            except FileNotFoundError:
                pass
            port = free_port()
            t1 = time.monotonic()
            p = procs.start([binary, "--config.file=" + conf,
                             "--web.listen-address=127.0.0.1:%d" % port], env=env,
                            stdout=elog, stderr=elog)
            wait_until(lambda: os.path.exists("/proc/%d/task" % p.pid), 10, "exporter", p)
            th0 = thread_runtimes_ns(p.pid)
            txt = wait_until(lambda: all_sources_done(port), 1800,
                             "the exporter's first refresh", p, 0.25)
            return (p, port, txt, (time.monotonic() - t1) * 1e3,
                    busiest_delta_ns(th0, thread_runtimes_ns(p.pid)) / 1e6)

        # the first full refresh is measured on --refresh-runs daemon starts (median); the
        # last daemon stays up for the scrapes
        walls, cpus = [], []
        for i in range(args.refresh_runs):
            exp, eport, text, wall_ms, cpu_ms = start_daemon()
            walls.append(wall_ms)
            cpus.append(cpu_ms)
            if i + 1 < args.refresh_runs:
                procs.stop(exp)
        row["refresh_wall_ms"] = statistics.median(walls)
        row["refresh_cpu_ms"] = statistics.median(cpus)
        row["refresh_cpu_ms_runs"] = " ".join("%.1f" % v for v in cpus)
        row["process_cpu_ms_at_ready"] = proc_cpu(exp.pid) * 1e3
        mem = proc_status(exp.pid)
        row["rss_after_refresh"] = mem["VmRSS"]
        dur = samples(text, "bedrock_cost_exporter_refresh_duration_seconds")
        row["refresh_sources_wall_s"] = sum(dur.values())
        billable = samples(text, "bedrock_cost_exporter_cost_explorer_billable_requests_total")
        row["ce_requests"] = int(sum(billable.values()))
        reqs = samples(text, "bedrock_cost_exporter_api_requests_total")
        row["ce_get_cost_and_usage"] = int(sum(v for k, v in reqs.items()
                                               if 'operation="GetCostAndUsage"' in k))
        row["projects_requests"] = int(sum(v for k, v in reqs.items()
                                           if 'operation="ListProjects"' in k))
        log("%d projects: daemon's first full refresh %.0f ms wall, %.1f ms CPU (poller "
            "thread; median of %d starts: %s ms), %d CE requests"
            % (n, row["refresh_wall_ms"], row["refresh_cpu_ms"], args.refresh_runs,
               row["refresh_cpu_ms_runs"], row["ce_requests"]))

        # the body every server serves
        st, h, plain = req(eport, "/metrics", timeout=60)
        st2, h2, gzbody = req(eport, "/metrics", headers={"Accept-Encoding": "gzip"}, timeout=60)
        assert st == 200 and st2 == 200 and h2.get("content-encoding") == "gzip", (st, st2, h2)
        assert gzip.decompress(gzbody) == plain
        text = plain.decode()
        row["series"] = series_count(text)
        row["families"] = sum(1 for line in text.splitlines() if line.startswith("# TYPE "))
        row["body_plain"] = len(plain)
        row["body_gzip"] = len(gzbody)
        for reserved in ("__untagged__", "__unmatched__", "__ambiguous__"):
            assert 'project_id="%s"' % reserved in text, "no %s spend" % reserved
        # what one compression of this body costs (the exporter gzips at level 1 per publish; 6 for comparison)
        for level in (1, 6):
            t4 = time.perf_counter()
            z = zlib.compressobj(level, zlib.DEFLATED, 31)
            out = z.compress(plain) + z.flush()
            row["gzip%d_ms" % level] = (time.perf_counter() - t4) * 1e3
            row["gzip%d_bytes" % level] = len(out)
        row["keepalive"] = "no" if h.get("connection", "").lower() == "close" else "yes"
        docroot = os.path.join(sdir, "www")
        os.makedirs(docroot)
        for name, data in (("metrics", plain), ("metrics.gz", gzbody)):
            with open(os.path.join(docroot, name), "wb") as f:
                f.write(data)
        os.chmod(docroot, 0o755)
        now = time.time()
        for name in ("metrics", "metrics.gz"):
            os.chmod(os.path.join(docroot, name), 0o644)
            os.utime(os.path.join(docroot, name), (now, now))

        timeout_s = 30
        # nginx: the same bytes as static files
        nport = free_port()
        ndir = os.path.join(sdir, "nginx")
        os.makedirs(ndir)
        with open(os.path.join(ndir, "nginx.conf"), "w") as f:
            f.write("""daemon off;
master_process on;
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush off;      # on: ~40 ms delayed-ACK stalls for 1 in 50 responses of < 1 MB
  tcp_nodelay on;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  types {{ }}
  default_type "text/plain; version=0.0.4; charset=utf-8";
  server {{
    listen 127.0.0.1:{port};
    root {root};
    location = /metrics {{ gzip_static on; gzip_vary on; }}
  }}
}}
""".format(workers=os.cpu_count() or 2, d=ndir, port=nport, root=docroot))
        ng = procs.start(["nginx", "-p", ndir, "-e", os.path.join(ndir, "error.log"),
                          "-c", os.path.join(ndir, "nginx.conf")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: req(nport, "/metrics", timeout=5)[0] == 200, 30, "nginx", ng)
        st, h, b = req(nport, "/metrics", headers={"Accept-Encoding": "gzip"})
        assert st == 200 and h.get("content-encoding") == "gzip" and b == gzbody, h
        assert req(nport, "/metrics")[2] == plain
        run_servers(args, lua, [("exporter", eport), ("nginx", nport)], "/metrics", scrape_rows,
                    n, timeout_s)
        procs.stop(ng, signal.SIGQUIT)

        # a projects refresh on SIGHUP: list again, render, compress, publish
        key = '{source="projects"}'
        text1 = metrics_text(eport)
        att0 = samples(text1, "bedrock_cost_exporter_last_attempt_timestamp_seconds")[key]
        th1 = thread_runtimes_ns(exp.pid)
        exp.send_signal(signal.SIGHUP)

        def reloaded():
            t = metrics_text(eport)
            att = samples(t, "bedrock_cost_exporter_last_attempt_timestamp_seconds")[key]
            suc = samples(t, "bedrock_cost_exporter_last_success_timestamp_seconds")[key]
            return att > att0 and suc >= att and t
        text2 = wait_until(reloaded, 900, "the projects refresh after SIGHUP", exp, 0.25)
        row["hup_refresh_cpu_ms"] = busiest_delta_ns(th1, thread_runtimes_ns(exp.pid)) / 1e6
        row["hup_refresh_wall_s"] = samples(
            text2, "bedrock_cost_exporter_refresh_duration_seconds")[key]
        time.sleep(0.5)
        mem = proc_status(exp.pid)
        row["rss_peak"] = mem["VmHWM"]
        row["rss_only"] = mem["VmRSS"]
        row["memfd_bytes"] = memfd_bytes(exp.pid)
        # steady memory: VmRSS plus the memfd bodies (a page of the gzip body read through
        # the mapping is counted twice: an overstatement, never an understatement)
        row["rss_steady"] = mem["VmRSS"] + row["memfd_bytes"]
        row["bytes_per_series"] = row["rss_steady"] / row["series"]
        procs.stop(exp)
        elog.close()
        procs.stop(fake)
        log("%d projects: SIGHUP projects refresh %.0f ms CPU; RSS peak %.1f MiB, steady %.1f MiB"
            % (n, row["hup_refresh_cpu_ms"], row["rss_peak"] / 2**20, row["rss_steady"] / 2**20))

        # Python prometheus_client, same families and series; a fresh process per run so a
        # backlog left by one run never loads the next
        body_file = os.path.join(sdir, "captured.prom")
        with open(body_file, "wb") as f:
            f.write(plain)
        state = {"p": None}

        def restart_py():
            if state["p"] is not None:
                procs.stop(state["p"], signal.SIGKILL)
            pport = free_port()
            pf = os.path.join(sdir, "py.port")
            if os.path.exists(pf):
                os.unlink(pf)
            state["p"] = procs.start([PYTHON, os.path.join(HERE, "py_exporter.py"), "--body",
                                      body_file, "--port", str(pport), "--port-file", pf],
                                     stdout=subprocess.DEVNULL)
            wait_until(lambda: os.path.exists(pf), 300, "the Python exporter", state["p"], 0.1)
            if "py_series" not in row:
                st, _, b = req(pport, "/metrics", timeout=120)
                row["py_series"] = series_count(b.decode())
                row["py_body_plain"] = len(b)
                if row["py_series"] != row["series"]:
                    raise RuntimeError("Python reference has %d series, exporter %d"
                                       % (row["py_series"], row["series"]))
            wrk(lua, pport, "/metrics", 1, 1, False, timeout_s)      # warm-up, 1 s
            return pport
        run_servers(args, lua, [("python", None)], "/metrics", scrape_rows, n, timeout_s,
                    restart=restart_py)
        procs.stop(state["p"], signal.SIGKILL)
        row["size_seconds"] = time.monotonic() - t0
        log("%d projects: done in %.0f s" % (n, row["size_seconds"]))
        if not args.keep:
            shutil.rmtree(sdir, ignore_errors=True)
        return row
    finally:
        procs.stop_all()


# --------------------------------------------------------------------------- report

def fmt_num(v, digits=0):
    if v is None or v != v:
        return "n/a"
    if digits == 0:
        return "{:,.0f}".format(v)
    return "{:,.{d}f}".format(v, d=digits)


def ratio(a, b):
    if a is None or b is None or b != b or a != a or b == 0:
        return None
    return a / b


def fmt_ratio(r, digits=2):
    return "n/a" if r is None else ("%.*fx" % (digits, r))


def build_table(rows, scrape, meta, args):
    sizes = [r["projects"] for r in rows]
    S = {(d["size"], d["server"], d["encoding"], d["conns"]): d for d in scrape}
    lines = []
    w0, w = 34, 20
    lines.append("bedrock-cost-exporter benchmark  %s" % meta["when"])
    lines.append("machine: %s, %d CPUs; load before run %s; %s" % (
        meta["cpu"], meta["ncpu"], meta["load"], meta["busy"]))
    lines.append("wrk %d s per run (1 thread at 1 connection, 2 threads at 64), timeout 30 s; "
                 "fake Cost Explorer page size %d" % (args.duration, CE_PAGE_SIZE))
    lines.append("")
    head = "%-*s" % (w0, "projects") + "".join("%*s" % (w, fmt_num(s)) for s in sizes)
    lines.append(head)
    lines.append("-" * len(head))

    def add(label, vals):
        lines.append("%-*s" % (w0, label) + "".join("%*s" % (w, v) for v in vals))

    def col(key, f):
        return [f(r.get(key)) for r in rows]

    def growth(key):
        out, prev = [], None
        for r in rows:
            v = r.get(key)
            out.append("-" if prev is None else fmt_ratio(ratio(v, prev), 1))
            prev = v
        return out

    add("series", col("series", fmt_num))
    add("exposition plain (bytes)", col("body_plain", fmt_num))
    add("exposition gzip (bytes)", col("body_gzip", fmt_num))
    add("exporter keeps connections alive", col("keepalive", lambda v: v or "?"))
    add("CE requests per full refresh", col("ce_requests", fmt_num))
    add("  of which GetCostAndUsage pages", col("ce_get_cost_and_usage", fmt_num))
    add("full refresh CPU ms (daemon, median)", col("refresh_cpu_ms", lambda v: fmt_num(v, 1)))
    add("  each daemon start", col("refresh_cpu_ms_runs", lambda v: " ".join(
        fmt_num(float(x), 0) for x in v.split())))
    add("  growth vs previous size", growth("refresh_cpu_ms"))
    add("full refresh wall ms (daemon)", col("refresh_wall_ms", lambda v: fmt_num(v, 0)))
    add("  growth vs previous size", growth("refresh_wall_ms"))
    add("--once CPU ms (no gzip, 1 render)", col("once_cpu_ms", lambda v: fmt_num(v, 1)))
    add("--once wall ms", col("once_wall_ms", lambda v: fmt_num(v, 0)))
    add("zlib level 1 of the body, ms (exporter)", col("gzip1_ms", lambda v: fmt_num(v, 1)))
    add("zlib level 6 of the body, ms", col("gzip6_ms", lambda v: fmt_num(v, 1)))
    add("projects refresh CPU ms (SIGHUP)", col("hup_refresh_cpu_ms", lambda v: fmt_num(v, 1)))
    add("RSS peak MiB (VmHWM)", col("rss_peak", lambda v: fmt_num(v / 2**20, 1)))
    add("RSS steady MiB (VmRSS)", col("rss_only", lambda v: fmt_num(v / 2**20, 1)))
    add("  + bodies in memfds MiB", col("memfd_bytes", lambda v: fmt_num(v / 2**20, 1)))
    add("steady memory MiB (VmRSS + memfds)", col("rss_steady", lambda v: fmt_num(v / 2**20, 1)))
    add("  growth vs previous size", growth("rss_steady"))
    add("bytes per series (steady memory)", col("bytes_per_series", fmt_num))
    marg = ["-"]
    for a, b in zip(rows, rows[1:]):
        marg.append(fmt_num(ratio(b["rss_steady"] - a["rss_steady"], b["series"] - a["series"])))
    add("  marginal bytes per added series", marg)
    for enc in ("plain", "gzip"):
        for c in args.conns:
            lines.append("")
            lines.append("scrape %s, %d connection%s" % (enc, c, "" if c == 1 else "s"))
            get = lambda s, srv, k: S.get((s, srv, enc, c), {}).get(k)  # noqa: E731
            def mark(s, srv):
                d = S.get((s, srv, enc, c), {})
                return "*" if d and d.get("conns_used", c) != c else ""
            add("  exporter req/s", [fmt_num(get(s, "exporter", "rps")) for s in sizes])
            add("  nginx req/s", [fmt_num(get(s, "nginx", "rps")) for s in sizes])
            add("  python req/s", [mark(s, "python") + fmt_num(get(s, "python", "rps"), 1)
                                   for s in sizes])
            add("  exporter / nginx", [fmt_ratio(ratio(get(s, "exporter", "rps"),
                                                       get(s, "nginx", "rps"))) for s in sizes])
            add("  exporter / python", [mark(s, "python") + fmt_ratio(
                ratio(get(s, "exporter", "rps"), get(s, "python", "rps")), 0) for s in sizes])
            for srv in ("exporter", "nginx", "python"):
                add("  p50 / p99 ms %s" % srv,
                    ["%s%s/%s" % (mark(s, srv),
                                  fmt_num((get(s, srv, "p50_us") or float("nan")) / 1e3, 2),
                                  fmt_num((get(s, srv, "p99_us") or float("nan")) / 1e3, 2))
                     for s in sizes])
            add("  errors exporter/nginx/python",
                ["/".join(fmt_num(get(s, srv, "errors") or 0) for srv in ("exporter", "nginx", "python"))
                 for s in sizes])
    if any(d.get("conns_used", d["conns"]) != d["conns"] for d in scrape):
        lines.append("")
        lines.append("* the Python reference at %s projects: %d connection(s), %d s runs (it needs "
                     "over a second per scrape; %d concurrent scrapes would all time out)"
                     % (fmt_num(PY_BIG), PY_BIG_CONNS, PY_BIG_SECONDS, max(args.conns)))
    lines.append("errors: wrk socket errors (connect/read/write/timeout) and non-2xx answers; a "
                 "read error is a connection the server closed")
    lines.append("")
    lines.extend(targets(rows, S, args))
    return "\n".join(lines)


def targets(rows, S, args):
    out = ["targets (issue 7, at 1,000 projects unless said):"]
    by = {r["projects"]: r for r in rows}
    r = by.get(1000)
    if r is None:
        return out + ["  (no 1,000-project run)"]

    def verdict(ok):
        return "HOLDS" if ok else "FAILS"
    cmax = max(args.conns)
    W = 50

    def line(label, ok, detail):
        out.append("  %-*s %s  %s" % (W, label, verdict(ok), detail))

    def get(n, srv, enc, c, k="rps"):
        return S.get((n, srv, enc, c), {}).get(k)
    for enc in ("plain", "gzip"):
        rn = {c: ratio(get(1000, "exporter", enc, c), get(1000, "nginx", enc, c)) for c in args.conns}
        rp = {c: ratio(get(1000, "exporter", enc, c), get(1000, "python", enc, c)) for c in args.conns}
        line("throughput >= 0.8x nginx, %s" % enc,
             all(v is not None and v >= 0.8 for v in rn.values()),
             ", ".join("c=%d %s" % (c, fmt_ratio(v, 3)) for c, v in rn.items()))
        line("throughput >= 10x Python, %s" % enc,
             all(v is not None and v >= 10 for v in rp.values()),
             ", ".join("c=%d %s" % (c, fmt_ratio(v, 0)) for c, v in rp.items()))
    p99 = {enc: (get(1000, "exporter", enc, cmax, "p99_us") or float("nan")) / 1e3
           for enc in ("plain", "gzip")}
    ng99 = {enc: (get(1000, "nginx", enc, cmax, "p99_us") or float("nan")) / 1e3
            for enc in ("plain", "gzip")}
    line("p99 < 5 ms at %d connections" % cmax, all(v < 5 for v in p99.values()),
         "plain %.1f ms, gzip %.1f ms (nginx: %.1f, %.1f ms)" % (p99["plain"], p99["gzip"],
                                                              ng99["plain"], ng99["gzip"]))
    line("full refresh < 100 ms CPU", r["refresh_cpu_ms"] < 100,
         "%.1f ms (poller thread, daemon; median of starts: %s ms)"
         % (r["refresh_cpu_ms"], r["refresh_cpu_ms_runs"]))
    if 100 in by and 10000 in by:
        a, b = by[100], by[10000]
        k = 10000 / 100
        for key, label in (("refresh_cpu_ms", "refresh CPU"), ("refresh_wall_ms", "refresh wall"),
                           ("rss_steady", "steady memory")):
            g = b[key] / a[key]
            steps = [by[m2][key] / by[m1][key] for m1, m2 in ((100, 1000), (1000, 10000))
                     if m1 in by and m2 in by]
            line("%s near-linear, 100 -> 10,000 projects" % label, g <= k * 1.25,
                 "x%.0f for x%.0f projects (steps %s; within 25%% of linear holds)"
                 % (g, k, ", ".join("x%.1f" % v for v in steps)))
    line("steady RSS < 32 MiB", r["rss_steady"] < 32 * 2**20,
         "%.1f MiB (VmRSS %.1f + memfd bodies %.1f, after scrapes and a reload)"
         % (r["rss_steady"] / 2**20, r["rss_only"] / 2**20, r["memfd_bytes"] / 2**20))
    return out


def write_csv(path, rows):
    keys = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})


def plot(outdir, rows, scrape, conns):
    dat = os.path.join(outdir, "plot.dat")
    cmax = max(conns)
    S = {(d["size"], d["server"], d["encoding"], d["conns"]): d for d in scrape}
    with open(dat, "w") as f:
        f.write("# projects exp_plain_p99 exp_gzip_p99 nginx_plain_p99 nginx_gzip_p99 "
                "py_plain_p99 py_gzip_p99 (ms, %d connections) refresh_cpu_ms refresh_wall_ms "
                "once_cpu_ms exp_plain_p50_c1\n" % cmax)
        for r in rows:
            n = r["projects"]
            vals = []
            for srv in ("exporter", "nginx", "python"):
                for enc in ("plain", "gzip"):
                    v = S.get((n, srv, enc, cmax), {}).get("p99_us")
                    vals.append("NaN" if v is None or v != v else "%.4f" % (v / 1e3))
            c1 = S.get((n, "exporter", "plain", min(conns)), {}).get("p50_us")
            f.write("%d %s %.3f %.3f %.3f %s\n" % (n, " ".join(vals), r["refresh_cpu_ms"],
                                                 r["refresh_wall_ms"], r["once_cpu_ms"],
                                                 "NaN" if c1 is None else "%.4f" % (c1 / 1e3)))
    png = os.path.join(outdir, "bench.png")
    script = """
set terminal pngcairo size 1400,560 font ",10"
set output '{png}'
set multiplot layout 1,2 title "bedrock-cost-exporter benchmark (tests/bench)"
set logscale xy
set grid
set key below maxrows 3
set xlabel "projects"
set ylabel "p99 latency, ms ({c} connections)"
set title "scrape latency vs account size"
plot '{dat}' u 1:2 w lp lw 2 t 'exporter plain', '' u 1:3 w lp lw 2 t 'exporter gzip', \\
     '' u 1:4 w lp dt 2 t 'nginx plain', '' u 1:5 w lp dt 2 t 'nginx gzip', \\
     '' u 1:6 w lp dt 3 t 'python plain', '' u 1:7 w lp dt 3 t 'python gzip', \\
     '' u 1:11 w lp dt 4 t 'exporter plain p50, 1 connection'
set ylabel "ms"
set title "one full refresh vs account size"
plot '{dat}' u 1:8 w lp lw 2 t 'full refresh CPU (daemon)', '' u 1:9 w lp lw 2 t 'full refresh wall (daemon)', \\
     '' u 1:10 w lp dt 2 t 'CPU of --once (no gzip)', \\
     '' u 1:($1*{k}) w l dt 3 lc rgb 'gray' t 'linear (through 1,000)'
unset multiplot
""".format(png=png, dat=dat, c=cmax,
           k=next((r["refresh_cpu_ms"] / r["projects"] for r in rows if r["projects"] == 1000),
                  rows[-1]["refresh_cpu_ms"] / rows[-1]["projects"]))
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True, timeout=60)
    if r.returncode != 0:
        log("gnuplot failed: " + r.stderr)
    return png


def machine_meta():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    busy = subprocess.run(["pgrep", "-f", "build/fuzz/"], capture_output=True, text=True).stdout.split()
    return {"when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu, "ncpu": os.cpu_count() or 0,
            "load": " ".join("%.2f" % x for x in os.getloadavg()),
            "busy": ("a fuzzing run was active (%d processes)" % len(busy)) if busy
            else "no fuzzing run active"}


def profile(args, n, tmp, binary):
    """--profile N: one --once refresh of an N-project account under `perf stat` and
    `perf record -g`; prints the counters and the hottest symbols (tests/bench/README.md)."""
    procs = Procs()
    sdir = os.path.join(tmp, "profile-%d" % n)
    os.makedirs(sdir)
    try:
        fake, fport, _ = start_fake(n, sdir, procs)
        conf = os.path.join(sdir, "once.conf")
        state = os.path.join(sdir, "state.json")
        write_conf(conf, fport, state, n)
        env = exporter_env(sdir)
        argv = [binary, "--once", "--config.file=" + conf]
        # warm the fake's memo, so the profile sees the exporter, not the Python fake
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=1800, check=True)
        os.unlink(state)
        perf = shutil.which("perf")
        if not perf:
            sys.exit("bench: perf not found (Debian package linux-perf)")
        r = subprocess.run([perf, "stat", "-e", "task-clock,context-switches,page-faults,"
                            "cycles,instructions", "--"] + argv, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           timeout=1800)
        print(r.stderr)
        os.unlink(state)
        data = os.path.join(sdir, "perf.data")
        rec = [perf, "record", "-q", "-F", "4000", "--call-graph", "dwarf,32768", "-o", data, "--"]
        if args.profile_daemon:
            # the daemon's first full refresh: record until every source has succeeded
            port = free_port()
            p = procs.start(rec + [binary, "--config.file=" + conf,
                                   "--web.listen-address=127.0.0.1:%d" % port],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_until(lambda: all_sources_done(port), 600, "the first full refresh", p)
            procs.stop(p, sig=signal.SIGINT, timeout=120)
        else:
            subprocess.run(rec + argv, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=1800, check=True)
        for sort in ("dso,symbol", "symbol"):
            r = subprocess.run([perf, "report", "-i", data, "--no-children", "--stdio",
                                "--sort", sort, "-g", "none", "--percent-limit", "0.7"],
                               capture_output=True, text=True, timeout=600)
            print("\n".join(l for l in r.stdout.splitlines() if l and not l.startswith("#")))
        r = subprocess.run([perf, "report", "-i", data, "--children", "--stdio", "--sort",
                            "symbol", "-g", "none", "--percent-limit", "1.5"],
                           capture_output=True, text=True, timeout=600)
        print("inclusive (children):")
        print("\n".join(l for l in r.stdout.splitlines() if l and not l.startswith("#")))
        if args.keep:
            log("perf data: " + data)
        return 0
    finally:
        procs.stop_all()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "bedrock-cost-exporter"))
    ap.add_argument("--sizes", default="10,100,1000,10000")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--conns", default="1,64")
    ap.add_argument("--once-runs", type=int, default=3, help="--once runs per size (median)")
    ap.add_argument("--refresh-runs", type=int, default=3,
                    help="daemon starts per size whose first full refresh is measured (median)")
    ap.add_argument("--out", default=None,
                    help="results directory (default tests/bench/results; --quick: a new /tmp dir)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 10 and 100 projects, 2 s runs")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--profile", type=int, metavar="N",
                    help="only profile one --once refresh of N projects with perf")
    ap.add_argument("--profile-daemon", action="store_true",
                    help="with --profile: record the daemon's first full refresh instead of --once")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.duration, args.once_runs, args.refresh_runs = "10,100", 2, 1, 1
        if args.out is None:     # a smoke run never replaces the real results
            args.out = tempfile.mkdtemp(prefix="bce-bench-quick-")
    if args.out is None:
        args.out = os.path.join(HERE, "results")
    args.sizes = [int(x) for x in args.sizes.split(",")]
    args.conns = [int(x) for x in args.conns.split(",")]
    for tool in ("wrk", "nginx", "gnuplot"):
        if not shutil.which(tool):
            sys.exit("bench: %s not found (make bench installs it)" % tool)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # run the clean-ups
    meta = machine_meta()
    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="bce-bench-")
    os.chmod(tmp, 0o755)     # nginx workers (nobody) read the captured body under it
    try:
        binary = os.path.join(tmp, "bedrock-cost-exporter")   # immune to rebuilds mid-run
        shutil.copy2(args.binary, binary)
        lua = os.path.join(tmp, "report.lua")
        with open(lua, "w") as f:
            f.write(WRK_LUA)
        if args.profile:
            return profile(args, args.profile, tmp, binary)
        rows, scrape = [], []
        for n in args.sizes:
            rows.append(bench_size(args, n, tmp, binary, lua, scrape))
        os.makedirs(args.out, exist_ok=True)
        table = build_table(rows, scrape, meta, args)
        total = time.monotonic() - started
        table += "\n\nwhole run: %.0f s (%s)\n" % (total, " ".join(
            "%d: %.0f s" % (r["projects"], r["size_seconds"]) for r in rows))
        write_csv(os.path.join(args.out, "bench.csv"), rows)
        write_csv(os.path.join(args.out, "scrape.csv"), scrape)
        with open(os.path.join(args.out, "table.txt"), "w") as f:
            f.write(table)
        png = plot(args.out, rows, scrape, args.conns)
        print(table)
        print("raw numbers: %s/{bench,scrape}.csv, plot: %s" % (args.out, png))
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log("kept " + tmp)


if __name__ == "__main__":
    sys.exit(main())
