#!/usr/bin/python3
"""Integration tests of bedrock-cost-exporter against the loopback fake AWS.

    /usr/bin/python3 tests/integration/run.py --binary build/san/bedrock-cost-exporter [-k SUBSTR] [-v]

Every test starts its own fake_aws (tests/fake_aws/fake_aws.py) and its own exporter on
127.0.0.1, in a private temporary directory, and stops both at the end: the exporter with
SIGTERM, which must exit 0 (under ASan/LSan a leak or a sanitizer report at exit makes that
fail, and the log is scanned for sanitizer reports as well).

Synchronisation never relies on a fixed sleep: readiness is the fake's port file and the
exporter's /-/healthy; a refresh is observed in /metrics (last_attempt_timestamp advancing
past the config reload timestamp, which the exporter publishes only once the refresh is over).

Nothing leaves 127.0.0.1: the exporter's environment points every proxy variable at a dead
loopback port (only 127.0.0.1 is exempt) and, for builds that have them, the configuration
disables Cost Explorer and instance metadata and points the STS/IMDS endpoints at that port.

The Cost Explorer, credential-chain and spend-discipline tests live in costs.py, which adds
them to this registry (register()); their exporters have Cost Explorer on, and every endpoint
of their configuration is the fake or that dead port.

Tests run 3 at a time (-j); the timing-sensitive ones (shutdown latency) run alone first.
Standard library only. The last line printed is exactly "N passed, N failed".
"""

import argparse
import concurrent.futures
import gzip
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FAKE_SCRIPT = os.path.join(ROOT, "tests", "fake_aws", "fake_aws.py")
EXAMPLE_CONF = os.path.join(ROOT, "etc", "bedrock-cost-exporter.conf")
PYTHON = "/usr/bin/python3"
PROMTOOL = "/usr/bin/promtool"
HOST = "127.0.0.1"                      # the only address this suite ever talks to

API_KEY = "demo-bedrock-api-key"
ACCESS_KEY_ID = "AKIDFAKEEXAMPLE"
SECRET_ACCESS_KEY = "fake/secret/EXAMPLEKEY"

API = {"api": "bedrock_mantle", "operation": "ListProjects"}
REASONS = ("throttled", "auth", "client", "server", "timeout", "network", "parse")
WARN_FAILED = "projects listing failed; serving the last good data"
INFO_RECOVERED = "projects listing recovered"
DEBUG_STILL = "projects listing still failing"
CT_METRICS = "text/plain; version=0.0.4; charset=utf-8"

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "UndefinedBehaviorSanitizer", "SUMMARY: AddressSanitizer",
                     "AddressSanitizer:DEADLYSIGNAL", "ThreadSanitizer")

ABORT = threading.Event()               # set on Ctrl-C / SIGTERM: every wait gives up
_procs_lock = threading.Lock()
_procs = set()                          # every live child process of the suite
_ports_lock = threading.Lock()
_ports_given = set()                    # ports handed out, never handed out twice
BINARY = None
VERBOSE = False


# ---------------------------------------------------------------------------
# assertions
# ---------------------------------------------------------------------------

class TestFailure(AssertionError):
    pass


class Aborted(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def eq(actual, expected, what):
    if actual != expected:
        raise TestFailure("%s: expected %r, got %r" % (what, expected, actual))


def wait_for(fn, timeout, what, interval=0.05):
    """Polls fn() until it returns something truthy; returns it. Fails after timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        if ABORT.is_set():
            raise Aborted("interrupted")
        try:
            v = fn()
            if v:
                return v
            last_exc = None
        except (OSError, http.client.HTTPException, ParseError) as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            extra = " (last error: %s)" % last_exc if last_exc else ""
            raise TestFailure("timed out after %.0fs waiting for %s%s" % (timeout, what, extra))
        time.sleep(interval)


# ---------------------------------------------------------------------------
# an independent parser of the Prometheus text format 0.0.4
# ---------------------------------------------------------------------------

class ParseError(ValueError):
    pass


_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_VALUE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?Inf|NaN")
_TIMESTAMP = re.compile(r"-?[0-9]+")
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
_LABEL_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def _unescape_help(s):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s) and s[i + 1] in ("\\", "n"):
            out.append("\\" if s[i + 1] == "\\" else "\n")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Sample:
    __slots__ = ("name", "labels", "value", "timestamp")

    def __init__(self, name, labels, value, timestamp):
        self.name, self.labels, self.value, self.timestamp = name, labels, value, timestamp

    def __repr__(self):
        return "%s%r %r" % (self.name, self.labels, self.value)


def _family_of(name, types):
    if name in types:
        return name
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix) and types.get(name[:-len(suffix)]) in ("histogram", "summary"):
            return name[:-len(suffix)]
    return name


def parse_exposition(text):
    """Returns (helps, types, samples). Raises ParseError on anything not in the format."""
    helps, types, samples = {}, {}, []
    seen, closed = set(), set()
    current = None
    lines = text.split("\n")
    if text and not text.endswith("\n"):
        raise ParseError("exposition does not end with a newline")
    for lineno, line in enumerate(lines, 1):
        def fail(msg):
            raise ParseError("line %d: %s: %r" % (lineno, msg, line[:200]))
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[0] == "#" and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not _METRIC_NAME.fullmatch(name):
                    fail("bad metric name in %s" % parts[1])
                if parts[1] == "HELP":
                    if name in helps:
                        fail("second HELP for %s" % name)
                    helps[name] = _unescape_help(parts[3] if len(parts) == 4 else "")
                else:
                    if name in types:
                        fail("second TYPE for %s" % name)
                    if len(parts) != 4 or parts[3] not in _TYPES:
                        fail("bad TYPE")
                    if name in closed or name == current:
                        fail("TYPE after the samples of %s" % name)
                    types[name] = parts[3]
            continue
        m = _METRIC_NAME.match(line)
        if not m:
            fail("no metric name")
        name, i, n = m.group(), m.end(), len(line)
        labels = {}
        if i < n and line[i] == "{":
            i += 1
            while True:
                if i >= n:
                    fail("unterminated label set")
                if line[i] == "}":
                    i += 1
                    break
                lm = _LABEL_NAME.match(line, i)
                if not lm:
                    fail("bad label name")
                lname, i = lm.group(), lm.end()
                if line[i:i + 2] != '="':
                    fail("expected =\" after label %s" % lname)
                i += 2
                val = []
                while True:
                    if i >= n:
                        fail("unterminated label value")
                    c = line[i]
                    if c == "\\":
                        if i + 1 >= n or line[i + 1] not in _LABEL_ESCAPES:
                            fail("bad escape in label value")
                        val.append(_LABEL_ESCAPES[line[i + 1]])
                        i += 2
                    elif c == '"':
                        i += 1
                        break
                    else:
                        val.append(c)
                        i += 1
                if lname in labels:
                    fail("label %s repeated" % lname)
                labels[lname] = "".join(val)
                if i < n and line[i] == ",":
                    i += 1
                elif i < n and line[i] == "}":
                    i += 1
                    break
                else:
                    fail("expected , or } after a label")
        rest = line[i:]
        if not rest.startswith(" "):
            fail("no space before the value")
        toks = rest.split(" ")
        toks = [t for t in toks if t != ""]
        if len(toks) not in (1, 2) or not _VALUE.fullmatch(toks[0]):
            fail("bad value")
        if len(toks) == 2 and not _TIMESTAMP.fullmatch(toks[1]):
            fail("bad timestamp")
        value = float(toks[0].replace("Inf", "inf").replace("NaN", "nan"))
        ts = int(toks[1]) if len(toks) == 2 else None
        family = _family_of(name, types)
        if family != current:
            if family in closed:
                fail("samples of %s are not grouped together" % family)
            if current is not None:
                closed.add(current)
            current = family
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            fail("duplicate series")
        seen.add(key)
        samples.append(Sample(name, labels, value, ts))
    return helps, types, samples


class Exposition:
    def __init__(self, text):
        self.text = text
        self.helps, self.types, self.samples = parse_exposition(text)

    def find(self, name, **labels):
        return [s for s in self.samples if s.name == name and
                all(s.labels.get(k) == v for k, v in labels.items())]

    def value(self, name, **labels):
        found = self.find(name, **labels)
        if len(found) != 1:
            raise TestFailure("expected exactly one sample %s%r, found %d"
                              % (name, labels, len(found)))
        return found[0].value

    def has(self, name, **labels):
        return bool(self.find(name, **labels))

    # exporter self-metrics -----------------------------------------------
    def up(self):
        return self.value("bedrock_cost_exporter_source_up", source="projects")

    def last_attempt(self):
        return self.value("bedrock_cost_exporter_last_attempt_timestamp_seconds",
                          source="projects")

    def last_success(self):
        return self.value("bedrock_cost_exporter_last_success_timestamp_seconds",
                          source="projects")

    def duration(self):
        return self.value("bedrock_cost_exporter_refresh_duration_seconds", source="projects")

    def reload_ok(self):
        return self.value("bedrock_cost_exporter_config_last_reload_successful")

    def reload_ts(self):
        return self.value("bedrock_cost_exporter_config_last_reload_success_timestamp_seconds")

    def requests(self):
        return self.value("bedrock_cost_exporter_api_requests_total", **API)

    def retries(self):
        return self.value("bedrock_cost_exporter_api_retries_total", **API)

    def errors(self, reason):
        return self.value("bedrock_cost_exporter_api_request_errors_total", reason=reason, **API)

    def all_errors(self):
        return {r: self.errors(r) for r in REASONS}

    # project metrics --------------------------------------------------------
    def project_info(self):
        """{(region, project_id): labels} of bedrock_cost_project_info, each exactly once."""
        out = {}
        for s in self.find("bedrock_cost_project_info"):
            key = (s.labels.get("region"), s.labels.get("project_id"))
            check(key not in out, "project %r listed twice in bedrock_cost_project_info" % (key,))
            check(s.value == 1, "bedrock_cost_project_info%r = %r, expected 1" % (key, s.value))
            out[key] = dict(s.labels)
        return out

    def tag_info(self):
        out = set()
        for s in self.find("bedrock_cost_project_tag_info"):
            check(s.value == 1, "bedrock_cost_project_tag_info%r = %r" % (s.labels, s.value))
            out.add((s.labels["region"], s.labels["project_id"], s.labels["key"],
                     s.labels["value"]))
        return out

    def regions_seen(self):
        fams = ("bedrock_cost_project_info", "bedrock_cost_project_tag_info",
                "bedrock_cost_project_created_timestamp_seconds", "bedrock_cost_projects")
        return {s.labels.get("region") for s in self.samples if s.name in fams}


# ---------------------------------------------------------------------------
# logfmt
# ---------------------------------------------------------------------------

_LOGFMT_ESC = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}


def parse_logfmt(line):
    out, i, n = {}, 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        if i >= n:
            break
        j = line.find("=", i)
        if j < 0:
            raise ValueError("logfmt: no = in %r" % line)
        key, i = line[i:j], j + 1
        if i < n and line[i] == '"':
            i += 1
            val = []
            while i < n and line[i] != '"':
                if line[i] == "\\" and i + 1 < n:
                    e = line[i + 1]
                    if e == "u" and i + 5 < n:
                        val.append(chr(int(line[i + 2:i + 6], 16)))
                        i += 6
                        continue
                    val.append(_LOGFMT_ESC.get(e, e))
                    i += 2
                else:
                    val.append(line[i])
                    i += 1
            i += 1
            out[key] = "".join(val)
        else:
            j = line.find(" ", i)
            j = n if j < 0 else j
            out[key], i = line[i:j], j
    return out


# ---------------------------------------------------------------------------
# processes, HTTP
# ---------------------------------------------------------------------------

def _register(p):
    with _procs_lock:
        _procs.add(p)


def _unregister(p):
    with _procs_lock:
        _procs.discard(p)


def stop_process(p, sig=signal.SIGTERM, timeout=5.0):
    """Signals p (by pid) and waits; SIGKILL after timeout. Returns (returncode, seconds)."""
    t0 = time.monotonic()
    if p.poll() is None:
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            _unregister(p)
            return None, time.monotonic() - t0
    _unregister(p)
    return p.returncode, time.monotonic() - t0


def kill_all():
    with _procs_lock:
        procs = list(_procs)
    for p in procs:
        if p.poll() is None:
            try:
                p.terminate()
            except OSError:
                pass
    for p in procs:
        try:
            p.wait(3)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        _unregister(p)


def free_port():
    """A port that was free a moment ago and that this run has not handed out before."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        with _ports_lock:
            if port not in _ports_given:
                _ports_given.add(port)
                return port
    raise TestFailure("no free port")


def http_request(port, path, method="GET", headers=None, body=None, timeout=10):
    """One request to 127.0.0.1:port. Returns (status, {lower-case header: value}, body)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def promtool_check(body):
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=body, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    check(r.returncode == 0, "promtool check metrics exited %d: %s"
          % (r.returncode, r.stdout.decode("utf-8", "replace")[:2000]))


DEAD_PROXY = "http://127.0.0.1:9"        # the discard port: nothing answers there


def base_env(extra=None):
    """A clean environment: no inherited AWS or Bedrock credentials, no home directory, and
    every proxy variable pointing at a dead loopback port, with only 127.0.0.1 and *.localhost
    (which libcurl resolves to 127.0.0.1 itself) exempt: a
    request the exporter might make anywhere else fails at once instead of leaving the host."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent",
           "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:print_summary=1",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
           "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
           "AWS_CONFIG_FILE": "/nonexistent/config"}
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        env[var] = DEAD_PROXY
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"  # *.localhost: 127.0.0.1
    env.update(extra or {})
    return env


SUPPORTED_KEYS = set()                  # config keys the binary documents in --help


def detect_supported_keys():
    r = subprocess.run([BINARY, "--help"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL, env=base_env(), timeout=30)
    for line in r.stdout.decode("utf-8", "replace").split("\n"):
        m = re.match(r"^  ([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)\s+\S+\s+default\b", line)
        if m:
            SUPPORTED_KEYS.add(m.group(1))


def isolation_groups(state_dir):
    """Settings that keep every source other than projects quiet and local, for the keys
    this binary has (newer builds add Cost Explorer, STS/IMDS and a state file)."""
    out = {}
    for key in ("cost_explorer.enabled", "cloudwatch.enabled"):
        if key in SUPPORTED_KEYS:
            g, k = key.split(".")
            out.setdefault(g, {})[k] = False
    for key in ("cost_explorer.endpoint", "aws.sts_endpoint", "aws.imds_endpoint",
                "aws.container_endpoint", "cloudwatch.endpoint"):
        if key in SUPPORTED_KEYS:
            g, k = key.split(".")
            out.setdefault(g, {})[k] = DEAD_PROXY
    if "aws.imds_enabled" in SUPPORTED_KEYS:
        out.setdefault("aws", {})["imds_enabled"] = False
    if "state_file" in SUPPORTED_KEYS and state_dir:
        out["state_file"] = os.path.join(state_dir, "state.json")
    return out


def lc_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(lc_value(x) for x in v) + "]"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return '"%s"' % s


def render_conf(groups):
    out = []
    for g, d in groups.items():
        if not isinstance(d, dict):
            out.append("%s = %s;" % (g, lc_value(d)))
            continue
        out.append("%s: {" % g)
        for k, v in d.items():
            out.append("  %s = %s;" % (k, lc_value(v)))
        out.append("};")
    return "\n".join(out) + "\n"


class Fake:
    def __init__(self, ctx, args=(), env=None):
        self.ctx = ctx
        self.port_file = os.path.join(ctx.dir, "fake-%d.port" % len(ctx.fakes))
        self.log_path = os.path.join(ctx.dir, "fake-%d.log" % len(ctx.fakes))
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PYTHON, FAKE_SCRIPT, "--host", HOST, "--port", "0", "--port-file", self.port_file,
             "--quiet"] + list(args),
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            env=base_env(env), start_new_session=True)
        _register(self.proc)
        ctx.fakes.append(self)

        def ready():
            if self.proc.poll() is not None:
                raise TestFailure("fake_aws exited with %s: %s" % (self.proc.returncode,
                                                                    self.log_text()[-2000:]))
            try:
                with open(self.port_file) as fh:
                    txt = fh.read().strip()
                return int(txt) if txt else None
            except FileNotFoundError:
                return None
        self.port = wait_for(ready, 20, "the fake's port file", interval=0.02)
        with _ports_lock:
            _ports_given.add(self.port)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as fh:
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def endpoint(self, suffix="/mantle/{region}/v1"):
        return "http://%s:%d%s" % (HOST, self.port, suffix)

    def call(self, method, path, obj=None, expect=(200, 201)):
        body = json.dumps(obj).encode("utf-8") if obj is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        st, _, data = http_request(self.port, path, method, headers, body)
        check(st in expect, "fake %s %s answered %d: %s" % (method, path, st, data[:500]))
        return json.loads(data.decode("utf-8")) if data else None

    def projects(self, region):
        return self.call("GET", "/_fake/projects/" + region)

    def put_projects(self, region, items):
        return self.call("PUT", "/_fake/projects/" + region, items)

    def fault(self, **spec):
        spec.setdefault("surface", "projects")
        return self.call("POST", "/_fake/faults", spec)

    def faults(self):
        return self.call("GET", "/_fake/faults")["faults"]

    def clear_faults(self):
        return self.call("DELETE", "/_fake/faults")

    def counters(self):
        return self.call("GET", "/_fake/requests?surface=projects")["projects"]

    def request_log(self):
        return self.call("GET", "/_fake/requests/log?surface=projects")["requests"]

    def reset_requests(self):
        return self.call("POST", "/_fake/requests/reset")

    def stop(self):
        if self.proc.poll() is None:
            rc, _ = stop_process(self.proc, signal.SIGTERM, 5)
        else:
            rc = self.proc.returncode
            _unregister(self.proc)
        self.log.close()
        return rc


def default_groups(fake, state_dir=None, **over):
    projects = {"regions": ["us-east-1", "eu-west-1"],
                "endpoint": fake.endpoint() if fake else "http://127.0.0.1:9/mantle/{region}/v1",
                "page_size": 2, "refresh_interval": 3600, "auth": "api_key",
                "api_key_env": "BEDROCK_API_KEY"}
    httpg = {"connect_timeout": 1, "request_timeout": 2, "max_retries": 2,
             "retry_max_delay": 1, "max_response_mib": 1}
    projects.update(over.pop("projects", {}))
    httpg.update(over.pop("http", {}))
    check(not over, "unknown config groups %r" % over)
    groups = {"projects": projects, "http": httpg}
    groups.update(isolation_groups(state_dir))
    return groups


class Exporter:
    def __init__(self, ctx, conf_path, env, args=(), log_level="debug", listen_port=None,
                 expect_start=True):
        self.ctx = ctx
        self.conf_path = conf_path
        self.env = env
        self.log_path = os.path.join(ctx.dir, "exporter-%d.log" % len(ctx.exporters))
        self.args = list(args)
        self.log_level = log_level
        self.proc = None
        self.port = None
        self.stopped_rc = None
        ctx.exporters.append(self)
        if expect_start:
            self.start(listen_port)

    def _spawn(self, port):
        self.port = port
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [BINARY, "--config.file=" + self.conf_path,
                 "--web.listen-address=%s:%d" % (HOST, port),
                 "--log.level=" + self.log_level] + self.args,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env,
                start_new_session=True)
        finally:
            log.close()
        _register(self.proc)

    def start(self, port=None):
        for attempt in range(5):
            self._spawn(port or free_port())

            def healthy():
                if self.proc.poll() is not None:
                    return "exited"
                try:
                    st, _, _ = http_request(self.port, "/-/healthy", timeout=2)
                    return "ok" if st == 200 else None
                except OSError:
                    return None
            state = wait_for(healthy, 20, "/-/healthy of the exporter")
            if state == "ok":
                return
            _unregister(self.proc)
            if port is None and "cannot listen" in self.log_text():
                continue                        # lost a race for the port: try another
            raise TestFailure("exporter exited with %s at start: %s"
                              % (self.proc.returncode, self.log_text()[-3000:]))
        raise TestFailure("exporter could not get a port")

    # plumbing ---------------------------------------------------------------
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def get(self, path, headers=None, method="GET"):
        return http_request(self.port, path, method, headers)

    def metrics_body(self, path="/metrics", headers=None):
        st, hdrs, body = self.get(path, headers)
        check(st == 200, "GET %s answered %d" % (path, st))
        if hdrs.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        return body

    def scrape(self, check_promtool=True, path="/metrics"):
        body = self.metrics_body(path)
        if check_promtool:
            promtool_check(body)
        self.ctx.scrapes.append(body)
        return Exposition(body.decode("utf-8"))

    def quick(self):
        """A scrape for polling loops (parsed, not promtool-checked)."""
        st, _, body = self.get("/metrics")
        if st != 200:
            return None
        return Exposition(body.decode("utf-8"))

    def send(self, sig):
        check(self.alive(), "exporter is not running (exit code %s); log:\n%s"
              % (self.proc.poll(), self.log_text()[-3000:]))
        self.proc.send_signal(sig)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as fh:
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_records(self):
        out = []
        for line in self.log_text().split("\n"):
            if line.startswith("ts="):
                try:
                    out.append(parse_logfmt(line))
                except ValueError:
                    pass
        return out

    def logs(self, msg=None, level=None, **fields):
        return [r for r in self.log_records()
                if (msg is None or r.get("msg") == msg) and (level is None or r.get("level") == level)
                and all(r.get(k) == v for k, v in fields.items())]

    # synchronisation ---------------------------------------------------------
    def wait_first_refresh(self, timeout=40):
        wait_for(lambda: (lambda e: e and e.last_attempt() > 0)(self.quick()),
                 timeout, "the first refresh to finish")
        return self.scrape()

    def wait_ready(self, timeout=40):
        wait_for(lambda: self.get("/-/ready")[0] == 200, timeout, "/-/ready to answer 200")
        return self.scrape()

    def hup_and_wait(self, before=None, timeout=60):
        """SIGHUP with a good file; waits until a refresh that started after the reload is
        published. Returns the promtool-checked scrape."""
        before = before or self.quick()
        prev_reload = before.reload_ts()
        self.send(signal.SIGHUP)

        def done():
            e = self.quick()
            if e is None:
                return None
            if e.reload_ok() == 0 and before.reload_ok() == 1:
                raise TestFailure("configuration reload was rejected; log:\n"
                                  + self.log_text()[-3000:])
            return e if e.reload_ts() > prev_reload and e.last_attempt() > e.reload_ts() else None
        wait_for(done, timeout, "a refresh after SIGHUP")
        return self.scrape()

    def hup_bad_and_wait(self, timeout=30):
        before = self.quick()
        n0 = len(self.logs("configuration rejected, keeping the previous one"))
        self.send(signal.SIGHUP)
        wait_for(lambda: len(self.logs("configuration rejected, keeping the previous one"))
                 > n0, timeout, "the rejection of the configuration to be logged")
        wait_for(lambda: (lambda e: e and e.reload_ok() == 0)(self.quick()), timeout,
                 "config_last_reload_successful 0")
        return before, self.scrape()

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        if self.proc is None:
            return None, 0.0
        rc, took = stop_process(self.proc, sig, timeout)
        self.stopped_rc = rc
        return rc, took


class Ctx:
    """Per-test resources: temp dir, processes, files; cleaned up by close()."""

    def __init__(self, name, root):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=re.sub(r"[^A-Za-z0-9_]", "_", name)[:40] + ".",
                                    dir=root)
        self.fakes, self.exporters, self.scrapes = [], [], []
        self.expect_exit = {}                 # exporter -> expected exit code at close
        self.notes = []                       # printed with -v

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path

    def fake(self, *args, env=None):
        return Fake(self, args, env)

    def conf(self, fake, name="exporter.conf", **over):
        return self.write(name, render_conf(default_groups(fake, self.dir, **over)))

    def exporter(self, fake=None, conf_path=None, env=None, args=(), log_level="debug",
                 **over):
        if conf_path is None:
            conf_path = self.conf(fake, "exporter-%d.conf" % len(self.exporters), **over)
        if env is None:
            env = {"BEDROCK_API_KEY": API_KEY}
        return Exporter(self, conf_path, base_env(env), args, log_level)

    def run(self, args, env=None, timeout=60, stdin=None):
        """Runs the exporter binary to completion (e.g. --once, --check-config)."""
        p = subprocess.Popen([BINARY] + list(args), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=base_env(env), start_new_session=True)
        _register(p)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            _unregister(p)
            raise TestFailure("%s did not finish within %ds" % (" ".join(args), timeout))
        _unregister(p)
        err_s = err.decode("utf-8", "replace")
        check(not any(m in err_s for m in SANITIZER_MARKERS),
              "sanitizer report from %s:\n%s" % (" ".join(args), err_s[-4000:]))
        return p.returncode, out, err_s

    def close(self):
        """Stops everything; returns a list of problems found while doing so."""
        problems = []
        for e in self.exporters:
            if e.proc is None:
                continue
            if e.proc.poll() is None:
                rc, took = e.stop(signal.SIGTERM, 5.0)
                if rc != 0:
                    problems.append("exporter did not exit 0 on SIGTERM at cleanup (rc=%s, "
                                    "%.1fs)" % (rc, took))
            else:
                _unregister(e.proc)
                rc = e.proc.returncode
                if e.stopped_rc is None and rc != self.expect_exit.get(e, 0):
                    problems.append("exporter had exited on its own with %s" % rc)
            text = e.log_text()
            for marker in SANITIZER_MARKERS:
                if marker in text:
                    idx = text.index(marker)
                    problems.append("sanitizer report in %s:\n%s"
                                    % (e.log_path, text[max(0, idx - 200):idx + 3000]))
                    break
        for f in self.fakes:
            f.stop()
        return problems


# ---------------------------------------------------------------------------
# test registry and shared checks
# ---------------------------------------------------------------------------

TESTS = []


def test(serial=False):
    def deco(fn):
        TESTS.append((fn.__name__, fn, serial))
        return fn
    return deco


def fake_inventory(fake, regions=("us-east-1", "eu-west-1")):
    return {r: fake.projects(r) for r in regions}


def assert_matches_fake(m, inv, tag_labels=("Application", "Environment", "Team", "CostCenter")):
    """Every project of the fake appears exactly once, with the fake's fields and tags."""
    info = m.project_info()
    want = {(r, p["id"]) for r, items in inv.items() for p in items}
    got = set(info)
    check(got == want, "projects differ from the fake: missing %s, unexpected %s"
          % (sorted(want - got)[:10], sorted(got - want)[:10]))
    tags_want = set()
    for region, items in inv.items():
        counts = {}
        for p in items:
            lab = info[(region, p["id"])]
            eq(lab["project_name"], p["name"], "project_name of %s" % p["id"])
            eq(lab["project_arn"], p["arn"], "project_arn of %s" % p["id"])
            eq(lab["status"], p["status"], "status of %s" % p["id"])
            for key in tag_labels:
                ln = "tag_" + re.sub(r"[^a-z0-9_]", "_", key.lower())
                eq(lab.get(ln), p["tags"].get(key, ""), "%s of %s" % (ln, p["id"]))
            # account_id: the caller's account (STS GetCallerIdentity), as in the project's arn
            check(lab.get("account_id") in ("", p["arn"].split(":")[4] if p["arn"] else ""),
                  "account_id of %s is the account of its arn: %r" % (p["id"], lab.get("account_id")))
            extra = set(lab) - {"account_id", "region", "project_id", "project_name",
                                "project_arn", "status"}
            eq(extra, {"tag_" + re.sub(r"[^a-z0-9_]", "_", k.lower()) for k in tag_labels},
               "tag labels of bedrock_cost_project_info")
            eq(m.value("bedrock_cost_project_created_timestamp_seconds", region=region,
                       project_id=p["id"]), float(p["created_at"]),
               "created timestamp of %s" % p["id"])
            for k, v in p["tags"].items():
                tags_want.add((region, p["id"], k, v))
            counts[p["status"]] = counts.get(p["status"], 0) + 1
        counts.setdefault("active", 0)
        counts.setdefault("archived", 0)
        got_counts = {s.labels["status"]: s.value
                      for s in m.find("bedrock_cost_projects", region=region)}
        eq(got_counts, {k: float(v) for k, v in counts.items()},
           "bedrock_cost_projects by status in %s" % region)
    eq(m.tag_info(), tags_want, "bedrock_cost_project_tag_info series")


def assert_meta(m):
    """HELP and TYPE for every family the contract names."""
    want = {"bedrock_cost_project_info": "gauge", "bedrock_cost_project_tag_info": "gauge",
            "bedrock_cost_project_created_timestamp_seconds": "gauge",
            "bedrock_cost_projects": "gauge",
            "bedrock_cost_exporter_source_up": "gauge",
            "bedrock_cost_exporter_last_success_timestamp_seconds": "gauge",
            "bedrock_cost_exporter_last_attempt_timestamp_seconds": "gauge",
            "bedrock_cost_exporter_refresh_duration_seconds": "gauge",
            "bedrock_cost_exporter_api_requests_total": "counter",
            "bedrock_cost_exporter_api_request_errors_total": "counter",
            "bedrock_cost_exporter_api_retries_total": "counter",
            "bedrock_cost_exporter_config_last_reload_successful": "gauge",
            "bedrock_cost_exporter_config_last_reload_success_timestamp_seconds": "gauge",
            "bedrock_cost_exporter_build_info": "gauge"}
    for fam, typ in want.items():
        eq(m.types.get(fam), typ, "TYPE of %s" % fam)
        check(m.helps.get(fam), "no HELP for %s" % fam)
    for r in REASONS:
        m.errors(r)                                  # every reason is always exported
    b = m.find("bedrock_cost_exporter_build_info")
    eq(len(b), 1, "build_info samples")
    check({"version", "revision", "libcurl", "libmicrohttpd"} <= set(b[0].labels),
          "build_info labels: %r" % b[0].labels)
    check(all(s.timestamp is None for s in m.samples), "samples carry timestamps")


def warn_lines(exp, region):
    return exp.logs(WARN_FAILED, "warn", region=region)


# ---------------------------------------------------------------------------
# 1. pagination and data
# ---------------------------------------------------------------------------

@test()
def test_pagination_every_project_exactly_once(ctx):
    fake = ctx.fake()
    exp = ctx.exporter(fake)
    m = exp.wait_ready()
    eq(m.up(), 1, "source_up")
    assert_meta(m)
    inv = fake_inventory(fake)
    check(len(inv["us-east-1"]) == 5 and len(inv["eu-west-1"]) == 2, "seed changed: %r"
          % {r: len(v) for r, v in inv.items()})
    assert_matches_fake(m, inv)
    # The listing walked the pages with after=<last id received>, limit=2, sorted query.
    log = [e for e in fake.request_log() if "/organization/projects" in e["path"]]
    use1 = [e for e in log if "/us-east-1/" in e["path"]]
    ids = [p["id"] for p in inv["us-east-1"]]
    eq([e["query"] for e in use1],
       ["limit=2", "after=%s&limit=2" % ids[1], "after=%s&limit=2" % ids[3]],
       "queries sent for us-east-1")
    eq([e["query"] for e in log if "/eu-west-1/" in e["path"]], ["limit=2"],
       "queries sent for eu-west-1")
    eq(m.requests(), 4.0, "api_requests_total after one refresh")
    eq(m.retries(), 0.0, "api_retries_total")
    eq(m.all_errors(), {r: 0.0 for r in REASONS}, "api_request_errors_total")
    check(m.last_success() > 0 and m.last_success() >= m.last_attempt(),
          "last_success %r vs last_attempt %r" % (m.last_success(), m.last_attempt()))
    check(0 < m.duration() < 30, "refresh_duration %r" % m.duration())
    eq(m.reload_ok(), 1.0, "config_last_reload_successful")
    check(not exp.logs(level="warn") and not exp.logs(level="error"),
          "warnings or errors logged on a clean run: %r" % (exp.logs(level="warn")
                                                             + exp.logs(level="error")))


@test()
def test_pagination_synthetic_250_three_pages(ctx):
    fake = ctx.fake("--synthetic", "250")
    exp = ctx.exporter(fake, projects={"page_size": 100})
    m = exp.wait_ready()
    eq(m.up(), 1, "source_up")
    inv = fake_inventory(fake)
    eq(len(inv["us-east-1"]), 255, "projects in the fake's us-east-1")
    assert_matches_fake(m, inv)
    eq(len(m.find("bedrock_cost_project_info", region="us-east-1")), 255,
       "us-east-1 bedrock_cost_project_info series")
    statuses = {p["status"] for p in inv["us-east-1"]}
    check("archived" in statuses, "synthetic data has no archived project")
    use1 = [e for e in fake.request_log() if "/us-east-1/" in e["path"]]
    ids = [p["id"] for p in inv["us-east-1"]]
    eq([e["query"] for e in use1],
       ["limit=100", "after=%s&limit=100" % ids[99], "after=%s&limit=100" % ids[199]],
       "queries sent for us-east-1 (3 pages)")
    # Projects missing a tag_labels tag get an empty label value, never a missing label.
    no_cc = [p for p in inv["us-east-1"] if "CostCenter" not in p["tags"]]
    check(no_cc, "synthetic data has a project without CostCenter")
    eq(m.project_info()[("us-east-1", no_cc[0]["id"])]["tag_costcenter"], "",
       "tag_costcenter of a project without that tag")


@test()
def test_repeated_project_is_an_error(ctx):
    fake = ctx.fake()
    exp = ctx.exporter(fake)
    m0 = exp.wait_ready()
    base = m0.project_info()
    # page 1 = [dup, b], page 2 (after=b) = [dup again]: the same project twice. The id is
    # hostile, as it ends up in the log line and on the HTML status page.
    dup = '<b id="x">dup&amp;</b>\n"'
    fake.put_projects("us-east-1", [{"id": dup, "name": "first"}, {"name": "b"},
                                    {"id": dup, "name": "second"}])
    m1 = exp.hup_and_wait(m0)
    eq(m1.up(), 0, "source_up after a listing that repeats a project")
    eq(m1.project_info(), base, "projects served after the failed refresh (last good data)")
    w = warn_lines(exp, "us-east-1")
    eq(len(w), 1, "warn lines for us-east-1")
    check(dup in w[0].get("error", ""), "warn line does not name the repeated project "
          "(logfmt-escaped): %r" % w[0])
    eq(m1.retries() - m0.retries(), 0.0, "retries for a repeated project")
    st, _, landing = exp.get("/")
    eq(st, 200, "landing page")
    check(b"<b id=" not in landing, "raw HTML from the API on the status page: %r"
          % landing[-600:])
    check(b"&lt;b id=" in landing, "the error is not shown (escaped) on the status page")


@test()
def test_data_changes_are_reflected(ctx):
    fake = ctx.fake()
    exp = ctx.exporter(fake)
    m0 = exp.wait_ready()
    inv = fake.projects("us-east-1")
    # drop one project, rename one, retag one, archive one, add one
    new = [p for p in inv if p["name"] != "CustomerChatbot-Dev"]
    for p in new:
        if p["name"] == "CustomerChatbot-Prod":
            p["name"] = "CustomerChatbot-Production"
        if p["name"] == "DocSummarizer-Prod":
            p["tags"] = {"Application": "DocSummarizer", "Team": "Platform"}
        if p["name"] == "FraudDetection-Staging":
            p["status"] = "active"
    new.append({"name": "Brand-New", "tags": {"Application": "New", "Owner": "zed"}})
    fake.put_projects("us-east-1", new)
    m1 = exp.hup_and_wait(m0)
    eq(m1.up(), 1, "source_up")
    assert_matches_fake(m1, fake_inventory(fake))
    gone = [p["id"] for p in inv if p["name"] == "CustomerChatbot-Dev"][0]
    check(not any(s.labels.get("project_id") == gone for s in m1.samples),
          "series of the deleted project are still exported")
    eq(m1.value("bedrock_cost_projects", region="us-east-1", status="archived"), 0.0,
       "archived count after un-archiving the only archived project")


ODD_IDS = ["proj_a+b", "proj with space", "proj&x=1", "proj/slash?q#h", "proj_%41%zz",
           "proj_ünï☃", "proj~._-", "proj\"quote\\"]


def _odd_id_listing(ctx, auth):
    fake = ctx.fake()
    fake.put_projects("us-east-1", [{"id": pid, "name": "odd-%d" % i}
                                    for i, pid in enumerate(ODD_IDS)])
    env = {"BEDROCK_API_KEY": API_KEY, "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
           "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}
    conf = ctx.conf(fake, projects={"page_size": 1, "auth": auth, "regions": ["us-east-1"]})
    rc, out, err = ctx.run(["--once", "--config.file=" + conf], env)
    log = [e for e in fake.request_log() if "/us-east-1/" in e["path"]]
    eq(rc, 0, "--once exit code (%s) listing ids that need percent-encoding; fake saw %r; "
       "stderr %s" % (auth, [(e["query"], e["status"]) for e in log], err[-800:]))
    promtool_check(out)
    m = Exposition(out.decode("utf-8"))
    assert_matches_fake(m, fake_inventory(fake, ("us-east-1",)))
    afters = [urllib.parse.parse_qs(e["query"]).get("after", [None])[0] for e in log]
    eq(afters, [None] + ODD_IDS[:-1], "after= values the fake decoded (%s)" % auth)


@test()
def test_pagination_ids_needing_encoding_bearer(ctx):
    _odd_id_listing(ctx, "api_key")


@test()
def test_pagination_ids_needing_encoding_sigv4(ctx):
    _odd_id_listing(ctx, "sigv4")


@test()
def test_max_projects_exceeded_serves_what_the_cap_allows(ctx):
    fake = ctx.fake()
    conf = ctx.conf(fake, projects={"max_projects": 3})
    rc, out, err = ctx.run(["--once", "--config.file=" + conf], {"BEDROCK_API_KEY": API_KEY})
    eq(rc, 1, "--once exit code when us-east-1 has more than max_projects")
    promtool_check(out)
    m = Exposition(out.decode("utf-8"))
    eq(m.up(), 0, "source_up")
    check("max_projects" in err, "no log line naming projects.max_projects: %s" % err[-2000:])
    check(m.has("bedrock_cost_project_info", region="eu-west-1"), "eu-west-1 data missing")
    inv = fake_inventory(fake)
    check(len(inv["us-east-1"]) > 3, "the fake's us-east-1 should list more than 3 projects")
    served = [s for s in m.samples if s.name == "bedrock_cost_project_info"
              and s.labels.get("region") == "us-east-1"]
    eq(len(served), 3, "us-east-1 projects served up to projects.max_projects")
    eq(m.value("bedrock_cost_exporter_api_request_errors_total", api="bedrock_mantle",
               operation="ListProjects", reason="parse"), 1.0,
       "the cut-off listing counted in _api_request_errors_total")


@test()
def test_default_max_projects_covers_the_quota_and_default(ctx):
    rc, out, _ = ctx.run(["--help"])
    eq(rc, 0, "--help exit code")
    m = re.search(r"projects\.max_projects\s+integer\s+default (\d+)", out.decode())
    check(m and int(m.group(1)) >= 1001,
          "projects.max_projects default must cover 1,000 projects plus default: %r"
          % (m and m.group(1)))


# ---------------------------------------------------------------------------
# 2. authentication
# ---------------------------------------------------------------------------

@test()
def test_auth_bearer(ctx):
    fake = ctx.fake()
    exp = ctx.exporter(fake)
    m = exp.wait_ready()
    eq(m.up(), 1, "source_up")
    c = fake.counters()
    eq(c["auth"].get("sigv4", 0), 0, "sigv4 requests at the fake")
    eq(c["auth"].get("bearer"), 4, "bearer requests at the fake")
    eq(c["by_status"], {"200": 4}, "statuses the fake answered")


def _sigv4_once(ctx, fake_args, env, expect_rc):
    fake = ctx.fake(*fake_args)
    conf = ctx.conf(fake, projects={"auth": "sigv4"})
    rc, out, err = ctx.run(["--once", "--log.level=debug", "--config.file=" + conf], env)
    eq(rc, expect_rc, "--once exit code (stderr: %s)" % err[-1500:])
    promtool_check(out)
    return fake, Exposition(out.decode("utf-8")), err


@test()
def test_auth_sigv4_without_session_token(ctx):
    env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}
    fake, m, _ = _sigv4_once(ctx, (), env, 0)
    eq(m.up(), 1, "source_up")
    assert_matches_fake(m, fake_inventory(fake))
    c = fake.counters()
    eq(c["auth"].get("sigv4"), 4, "sigv4 requests at the fake")
    eq(c["auth"].get("bearer", 0), 0, "bearer requests at the fake")
    eq(c["by_status"], {"200": 4}, "statuses the fake answered")
    # the daemon too (it restores what --once saved, so it is ready at once; its own listing
    # is what shows that it signs)
    exp = ctx.exporter(fake, env=env, projects={"auth": "sigv4"})
    eq(exp.wait_first_refresh().up(), 1, "source_up of the daemon with sigv4")
    eq(fake.counters()["auth"].get("sigv4"), 8, "sigv4 requests at the fake")


@test()
def test_auth_sigv4_with_session_token(ctx):
    token = "FQoGZXIvYXdzE" + secrets.token_hex(16)
    env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
           "AWS_SESSION_TOKEN": token}
    fake, m, _ = _sigv4_once(ctx, ("--session-token", token), env, 0)
    eq(m.up(), 1, "source_up")
    c = fake.counters()
    eq(c["auth"].get("sigv4"), 4, "sigv4 requests at the fake")
    eq(c["by_status"], {"200": 4}, "statuses the fake answered")
    # Without the token the fake rejects the signature: auth, not retried.
    env2 = dict(env)
    del env2["AWS_SESSION_TOKEN"]
    conf = ctx.conf(fake, "nosession.conf", projects={"auth": "sigv4"})
    rc, out, err = ctx.run(["--once", "--config.file=" + conf], env2)
    eq(rc, 1, "--once exit code without the session token")
    promtool_check(out)
    m2 = Exposition(out.decode("utf-8"))
    eq(m2.errors("auth"), 2.0, "auth errors without the session token")
    eq(m2.retries(), 0.0, "retries after auth errors")


@test()
def test_auth_sigv4_wrong_secret(ctx):
    env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": "wrong/secret/KEY"}
    fake, m, err = _sigv4_once(ctx, (), env, 1)
    eq(m.up(), 0, "source_up")
    eq(m.errors("auth"), 2.0, "auth errors (one per region, not retried)")
    eq(m.retries(), 0.0, "retries")
    eq(m.requests(), 2.0, "requests")
    eq(fake.counters()["by_status"], {"403": 2}, "statuses the fake answered")
    check("wrong/secret/KEY" not in err, "the secret access key is in the log")


@test()
def test_auth_wrong_api_key_no_retry(ctx):
    fake = ctx.fake()
    exp = ctx.exporter(fake, env={"BEDROCK_API_KEY": "not-the-right-key"})
    m = exp.wait_first_refresh()
    eq(m.up(), 0, "source_up with a wrong key")
    eq(m.errors("auth"), 2.0, "auth errors: one per region")
    eq(m.retries(), 0.0, "retries after 401")
    eq(m.requests(), 2.0, "requests: one per region, no retry")
    eq({r: v for r, v in m.all_errors().items() if r != "auth"},
       {r: 0.0 for r in REASONS if r != "auth"}, "other error reasons")
    eq(fake.counters()["by_status"], {"401": 2}, "statuses the fake answered")
    eq(m.last_success(), 0.0, "last_success before any success")
    check(not m.has("bedrock_cost_project_info"), "projects listed without ever succeeding")
    eq(exp.get("/-/ready")[0], 503, "/-/ready with a wrong key")
    for region in ("us-east-1", "eu-west-1"):
        w = warn_lines(exp, region)
        eq(len(w), 1, "warn lines for %s" % region)
        check("auth" in w[0].get("error", ""), "warn line: %r" % w[0])


# ---------------------------------------------------------------------------
# 3. readiness
# ---------------------------------------------------------------------------

@test()
def test_ready_503_until_first_listing(ctx):
    fake = ctx.fake()
    # The first us-east-1 request hangs (request_timeout 2 s); the retry goes through.
    fake.fault(kind="hang", seconds=60, count=1, match="/mantle/us-east-1/")
    exp = ctx.exporter(fake)

    def hanging():
        log = fake.request_log()
        return (any("/us-east-1/" in e["path"] for e in log) and not fake.faults()) or None
    wait_for(hanging, 20, "the exporter's first request to hang at the fake")
    st, hdrs, body = exp.get("/-/ready")
    eq(st, 503, "/-/ready while the first listing is in flight")
    m = exp.scrape()
    eq(m.up(), 0, "source_up before the first refresh")
    eq(m.last_attempt(), 0.0, "last_attempt published before the first refresh ended")
    check(not m.has("bedrock_cost_project_info"), "projects before the first listing")
    eq(exp.get("/-/healthy")[0], 200, "/-/healthy while not ready")
    m = exp.wait_ready()
    eq(m.up(), 1, "source_up after the retry")
    eq(m.errors("timeout"), 1.0, "timeout errors")
    eq(m.retries(), 1.0, "retries")
    assert_matches_fake(m, fake_inventory(fake))


@test()
def test_hung_endpoint_shows_at_first_timeout(ctx):
    """A hung endpoint shows as soon as its first attempt times out (source_up 0, the error
    counted, the landing page naming it), not after every retry of the refresh."""
    fake = ctx.fake()
    exp = ctx.exporter(fake, http={"max_retries": 3})  # request_timeout 2 s: 4 attempts, >= 8 s
    eq(exp.wait_ready().up(), 1, "source_up before the endpoint hangs")
    fake.fault(kind="hang", seconds=60, count=-1, match="/mantle/us-east-1/")
    exp.send(signal.SIGHUP)  # a reload lists the projects again

    def down():
        e = exp.quick()
        return e if e is not None and e.up() == 0 else None
    m = wait_for(down, 30, "source_up 0 while the endpoint hangs")
    timeouts = m.errors("timeout")
    check(1 <= timeouts < 4, "timeouts counted when source_up first showed 0: %r (4 = only "
          "after the last retry)" % timeouts)
    check(m.retries() < 3, "retries counted when source_up first showed 0: %r" % m.retries())
    st, _, body = exp.get("/")
    check(st == 200 and b"timed out" in body.lower(),
          "the landing page names the timeout while the refresh retries:\n%s" % body[-800:])
    # the refresh is still retrying: the fake holds (or gets) another attempt
    n = sum("/us-east-1/" in e["path"] for e in fake.request_log())
    wait_for(lambda: sum("/us-east-1/" in e["path"] for e in fake.request_log()) > n or None,
             20, "another attempt after the first timeout was published")
    # and the refresh's end says the same, once
    fake.clear_faults()
    m2 = exp.hup_and_wait()
    eq(m2.up(), 1, "source_up once the endpoint answers again")


@test()
def test_ready_needs_every_region(ctx):
    fake = ctx.fake()
    fake.fault(kind="auth", count=-1, match="/mantle/eu-west-1/")
    exp = ctx.exporter(fake)
    m0 = exp.wait_first_refresh()
    eq(m0.up(), 0, "source_up with eu-west-1 failing")
    eq(exp.get("/-/ready")[0], 503, "/-/ready while eu-west-1 never listed")
    check(m0.has("bedrock_cost_project_info", region="us-east-1"),
          "us-east-1 not served although it listed fine")
    check(not m0.has("bedrock_cost_project_info", region="eu-west-1"), "eu-west-1 served")
    fake.clear_faults()
    m1 = exp.hup_and_wait(m0)
    eq(m1.up(), 1, "source_up after eu-west-1 recovered")
    eq(exp.get("/-/ready")[0], 200, "/-/ready after every region listed")
    eq(len(exp.logs(INFO_RECOVERED, "info", region="eu-west-1")), 1, "recovered lines")


# ---------------------------------------------------------------------------
# 4. faults
# ---------------------------------------------------------------------------

class FaultCase:
    def __init__(self, name, fault, reason, attempts, error_has, repeat=True, http=None,
                 us_requests=None, check_errors=True):
        self.name = name
        self.fault = fault              # fault spec (count -1 = until cleared)
        self.reason = reason            # error reason counter that must move (None: none)
        self.attempts = attempts        # HTTP attempts on the failing page per refresh
        self.error_has = error_has      # substring of the warn line's error=
        self.repeat = repeat            # fail a second time: still one warn line
        self.http = http or {}
        self.us_requests = us_requests if us_requests is not None else attempts
        self.check_errors = check_errors  # False: the contract names no reason for it


MAX_RETRIES = 2
FAULT_CASES = [
    FaultCase("server_error", {"kind": "server_error", "status": 503}, "server",
              MAX_RETRIES + 1, "HTTP 503"),
    FaultCase("slow_beyond_request_timeout", {"kind": "slow", "seconds": 4}, "timeout",
              MAX_RETRIES + 1, "(timeout)", repeat=False),
    FaultCase("truncated", {"kind": "truncated"}, "network", MAX_RETRIES + 1, "(network)"),
    FaultCase("malformed", {"kind": "malformed"}, "parse", 1, "not valid JSON"),
    FaultCase("wrong_types_created_at", {"kind": "wrong_types", "field": "created_at"},
              "parse", 1, "created_at"),
    FaultCase("wrong_types_has_more", {"kind": "wrong_types", "field": "has_more"},
              "parse", 1, "has_more"),
    FaultCase("wrong_types_data", {"kind": "wrong_types", "field": "data"}, "parse", 1,
              "data: expected an array"),
    FaultCase("wrong_types_tags", {"kind": "wrong_types", "field": "tags"}, "parse", 1,
              "tags"),
    FaultCase("wrong_types_id", {"kind": "wrong_types", "field": "id"}, "parse", 1, ".id"),
    FaultCase("loop", {"kind": "loop"}, None, 1, "pagination loop", us_requests=2,
              check_errors=False),
    FaultCase("auth", {"kind": "auth"}, "auth", 1, "HTTP 401"),
    FaultCase("huge_beyond_max_response", {"kind": "huge", "bytes": 3 * 1024 * 1024},
              "parse", 1, "larger than"),
    FaultCase("hang", {"kind": "hang"}, "timeout", MAX_RETRIES + 1, "(timeout)",
              repeat=False),
]


def run_fault_case(ctx, case):
    fake = ctx.fake()
    exp = ctx.exporter(fake, http=case.http)
    m0 = exp.wait_ready()
    eq(m0.up(), 1, "source_up before the fault")
    base = m0.project_info()
    base_tags = m0.tag_info()
    assert_matches_fake(m0, fake_inventory(fake))
    retryable = case.attempts > 1

    fake.fault(count=-1, match="/mantle/us-east-1/", **case.fault)
    m1 = exp.hup_and_wait(m0)
    check(exp.alive(), "exporter died")
    eq(exp.get("/-/healthy")[0], 200, "/-/healthy after the fault")
    eq(exp.get("/-/ready")[0], 200, "/-/ready after a failed refresh (it had data)")
    eq(m1.up(), 0, "source_up after the fault")
    eq(m1.project_info(), base, "projects served after the failed refresh (last good data)")
    eq(m1.tag_info(), base_tags, "tag_info after the failed refresh")
    eq(m1.last_success(), m0.last_success(), "last_success after a failed refresh")
    check(m1.last_attempt() > m0.last_attempt(), "last_attempt did not advance")
    d_err = {r: m1.errors(r) - m0.errors(r) for r in REASONS}
    want_err = {r: 0.0 for r in REASONS}
    if case.reason:
        want_err[case.reason] = float(case.attempts)
    if case.check_errors:
        eq(d_err, want_err, "error counters moved by")
    else:                                # no reason is named for it: parse at most, once
        eq({r: v for r, v in d_err.items() if r != "parse"},
           {r: 0.0 for r in REASONS if r != "parse"}, "error counters moved by")
        check(d_err["parse"] in (0.0, 1.0), "parse errors moved by %r" % d_err["parse"])
    eq(m1.retries() - m0.retries(), float(case.attempts - 1), "retries moved by")
    eq(m1.requests() - m0.requests(), float(case.us_requests + 1),
       "requests moved by (us-east-1 attempts + 1 eu-west-1 page)")
    w = warn_lines(exp, "us-east-1")
    eq(len(w), 1, "warn lines for the failure of us-east-1 (retries: %d)" % (case.attempts - 1))
    check(case.error_has in w[0].get("error", ""),
          "warn line error=%r does not contain %r" % (w[0].get("error"), case.error_has))
    eq(warn_lines(exp, "eu-west-1"), [], "warn lines for eu-west-1 (it did not fail)")
    if retryable:
        eq(len(exp.logs("retrying request", "debug")), case.attempts - 1,
           "debug 'retrying request' lines")
    st, _, landing = exp.get("/")
    eq(st, 200, "landing page status")
    check(b"down" in landing, "landing page does not show the source down")

    m2 = m1
    if case.repeat:
        m2 = exp.hup_and_wait(m1)
        eq(m2.up(), 0, "source_up after the second failure")
        eq(m2.project_info(), base, "projects after the second failure")
        if case.reason:
            eq(m2.errors(case.reason) - m1.errors(case.reason), float(case.attempts),
               "errors moved by on the second failure")
        eq(len(warn_lines(exp, "us-east-1")), 1, "warn lines after the same failure twice")
        check(exp.logs(DEBUG_STILL, "debug", region="us-east-1"),
              "no debug 'still failing' line for the repeated failure")

    fake.clear_faults()
    m3 = exp.hup_and_wait(m2)
    eq(m3.up(), 1, "source_up after recovery")
    eq(m3.project_info(), base, "projects after recovery")
    check(m3.last_success() > m2.last_success(), "last_success did not advance on recovery")
    eq(len(exp.logs(INFO_RECOVERED, "info", region="us-east-1")), 1,
       "info 'recovered' lines for us-east-1")
    eq(len(warn_lines(exp, "us-east-1")), 1, "warn lines after recovery")


def _make_fault_test(case):
    def fn(ctx):
        run_fault_case(ctx, case)
    fn.__name__ = "test_fault_" + case.name
    return fn


for _case in FAULT_CASES:
    test()(_make_fault_test(_case))


@test()
def test_fault_throttle_retry_after_then_success(ctx):
    fake = ctx.fake()
    exp = ctx.exporter(fake)
    m0 = exp.wait_ready()
    base = m0.project_info()
    fake.fault(kind="throttle", retry_after=1, count=1, match="/mantle/us-east-1/")
    m1 = exp.hup_and_wait(m0)
    eq(m1.up(), 1, "source_up after a throttle that a retry got past")
    eq(m1.project_info(), base, "projects")
    eq(m1.errors("throttled") - m0.errors("throttled"), 1.0, "throttled errors moved by")
    eq(m1.retries() - m0.retries(), 1.0, "retries moved by")
    eq(m1.requests() - m0.requests(), 5.0, "requests moved by (4 pages + 1 retry)")
    check(m1.last_success() > m0.last_success(), "last_success did not advance")
    check(m1.duration() >= 0.95, "refresh took %.3fs: Retry-After: 1 was not honoured"
          % m1.duration())
    eq(warn_lines(exp, "us-east-1"), [], "warn lines for a refresh that succeeded")
    log = [e for e in fake.request_log() if "/us-east-1/" in e["path"]]
    throttled = [e for e in log if e["status"] == 429]
    eq(len(throttled), 1, "429 answers")
    nxt = [e for e in log if e["seq"] > throttled[0]["seq"]][0]
    check(nxt["time"] - throttled[0]["time"] >= 0.95,
          "retry came %.3fs after the 429 with Retry-After: 1"
          % (nxt["time"] - throttled[0]["time"]))
    eq(nxt["query"], throttled[0]["query"], "the retry asks for the same page")


@test()
def test_fault_throttle_retry_after_beyond_max_delay(ctx):
    fake = ctx.fake()
    exp = ctx.exporter(fake)           # retry_max_delay = 1
    m0 = exp.wait_ready()
    base = m0.project_info()
    fake.fault(kind="throttle", retry_after=30, count=-1, match="/mantle/us-east-1/")
    t0 = time.monotonic()
    m1 = exp.hup_and_wait(m0)
    check(time.monotonic() - t0 < 20, "the exporter waited for a Retry-After beyond "
          "http.retry_max_delay")
    eq(m1.up(), 0, "source_up")
    eq(m1.project_info(), base, "projects (last good data)")
    eq(m1.errors("throttled") - m0.errors("throttled"), 1.0, "throttled errors moved by")
    eq(m1.retries() - m0.retries(), 0.0, "retries after a too long Retry-After")
    w = warn_lines(exp, "us-east-1")
    eq(len(w), 1, "warn lines")
    check("Retry-After" in w[0].get("error", ""), "warn line does not mention Retry-After: "
          "%r" % w[0])
    fake.clear_faults()
    eq(exp.hup_and_wait(m1).up(), 1, "source_up after recovery")


@test()
def test_fault_log_once_per_change(ctx):
    fake = ctx.fake()
    exp = ctx.exporter(fake)
    m = exp.wait_ready()
    fake.fault(kind="server_error", count=-1, match="/mantle/us-east-1/")
    m = exp.hup_and_wait(m)
    m = exp.hup_and_wait(m)
    eq(len(warn_lines(exp, "us-east-1")), 1, "warn lines after the same failure twice")
    fake.clear_faults()
    fake.fault(kind="auth", count=-1, match="/mantle/us-east-1/")
    m = exp.hup_and_wait(m)
    w = warn_lines(exp, "us-east-1")
    eq(len(w), 2, "warn lines after the failure changed (server -> auth)")
    check("401" in w[1].get("error", ""), "second warn line: %r" % w[1])
    fake.clear_faults()
    m = exp.hup_and_wait(m)
    eq(m.up(), 1, "source_up")
    eq(len(exp.logs(INFO_RECOVERED, "info", region="us-east-1")), 1, "recovered lines")
    m = exp.hup_and_wait(m)
    eq(len(exp.logs(INFO_RECOVERED, "info", region="us-east-1")), 1,
       "recovered lines after a further good refresh")


@test()
def test_client_error_not_retried(ctx):
    fake = ctx.fake()
    # A wrong base path: the fake answers 404 (OpenAI-style error), a client error.
    exp = ctx.exporter(fake, projects={"endpoint": fake.endpoint("/mantle/{region}/v9")})
    m = exp.wait_first_refresh()
    eq(m.up(), 0, "source_up")
    eq(m.errors("client"), 2.0, "client errors (one per region)")
    eq(m.retries(), 0.0, "retries after 404")
    eq(m.requests(), 2.0, "requests")
    w = warn_lines(exp, "us-east-1")
    eq(len(w), 1, "warn lines")
    check("404" in w[0].get("error", ""), "warn line: %r" % w[0])


@test()
def test_network_error_retried(ctx):
    port = free_port()                     # nothing listens there
    exp = ctx.exporter(None, projects={"endpoint": "http://127.0.0.1:%d/mantle/{region}/v1"
                                       % port, "regions": ["us-east-1"]})
    m = exp.wait_first_refresh()
    eq(m.up(), 0, "source_up")
    eq(m.errors("network"), float(MAX_RETRIES + 1), "network errors")
    eq(m.retries(), float(MAX_RETRIES), "retries")
    eq(m.requests(), float(MAX_RETRIES + 1), "requests")
    eq(len(warn_lines(exp, "us-east-1")), 1, "warn lines")
    eq(exp.get("/-/ready")[0], 503, "/-/ready")


# ---------------------------------------------------------------------------
# 5. hostile label values
# ---------------------------------------------------------------------------

HOSTILE_PROJECTS = [
    {"name": 'Quote "Q" Project', "tags": {
        "Application": 'say "hi"',
        "Environment": "back\\slash\\",
        "Team": "line1\nline2\n",
        "CostCenter": "Zürich ☃",
        "Billing Code": "tab\there\\n-not-a-newline",
        "weird \"key\"\\\n": "v=1, w=\"2\"}",
        "Empty": "",
    }},
    {"name": "trailing backslash \\", "tags": {
        "Application": "\\",
        "Environment": "\"",
        "Team": "\n",
        "CostCenter": "日本語 – ünïcødé 🚀",
    }},
    {"name": "plain", "status": "archived", "tags": {"Application": "ok"}},
]


@test()
def test_hostile_label_values_round_trip(ctx):
    fake = ctx.fake()
    fake.put_projects("us-east-1", HOSTILE_PROJECTS)
    labels = ["Application", "Environment", "Team", "CostCenter", "Billing Code"]
    exp = ctx.exporter(fake, projects={"tag_labels": labels})
    m = exp.wait_ready()
    eq(m.up(), 1, "source_up with hostile values")
    inv = fake_inventory(fake)
    assert_matches_fake(m, inv, tag_labels=labels)
    info = m.project_info()
    quote = [p for p in inv["us-east-1"] if p["name"] == 'Quote "Q" Project'][0]
    lab = info[("us-east-1", quote["id"])]
    eq(lab["project_name"], 'Quote "Q" Project', "project name with quotes")
    eq(lab["tag_team"], "line1\nline2\n", "tag with newlines")
    eq(lab["tag_environment"], "back\\slash\\", "tag with backslashes")
    eq(lab["tag_costcenter"], "Zürich ☃", "non-ASCII tag")
    eq(lab["tag_billing_code"], "tab\there\\n-not-a-newline", "tag with a tab and a literal \\n")
    check(("us-east-1", quote["id"], "weird \"key\"\\\n", "v=1, w=\"2\"}") in m.tag_info(),
          "hostile tag key/value missing from tag_info")
    check(("us-east-1", quote["id"], "Empty", "") in m.tag_info(), "empty tag value missing")
    # The same through gzip.
    gz = exp.metrics_body(headers={"Accept-Encoding": "gzip"})
    promtool_check(gz)
    eq(Exposition(gz.decode("utf-8")).project_info(), info, "gzip scrape project_info")
    # --once prints the same escaping.
    conf = ctx.conf(fake, "once.conf", projects={"tag_labels": labels})
    rc, out, _ = ctx.run(["--once", "--config.file=" + conf], {"BEDROCK_API_KEY": API_KEY})
    eq(rc, 0, "--once exit code")
    promtool_check(out)
    eq(Exposition(out.decode("utf-8")).project_info(), info, "--once project_info")


# ---------------------------------------------------------------------------
# 6. HTTP: gzip, HEAD, methods, paths
# ---------------------------------------------------------------------------

def raw_exchange(port, request):
    s = socket.create_connection((HOST, port), timeout=10)
    try:
        s.sendall(request)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        s.close()


@test()
def test_gzip_plain_identical_and_head(ctx):
    fake = ctx.fake("--synthetic", "40")
    exp = ctx.exporter(fake)
    m = exp.wait_ready()
    st, h_plain, plain = exp.get("/metrics")
    eq(st, 200, "plain status")
    eq(h_plain.get("content-type"), CT_METRICS, "Content-Type (plain)")
    check("content-encoding" not in h_plain, "Content-Encoding on a plain reply: %r" % h_plain)
    check("accept-encoding" in h_plain.get("vary", "").lower(), "Vary (plain): %r" % h_plain)
    st, h_gz, gz = exp.get("/metrics", {"Accept-Encoding": "gzip"})
    eq(st, 200, "gzip status")
    eq(h_gz.get("content-encoding"), "gzip", "Content-Encoding when gzip is accepted")
    eq(h_gz.get("content-type"), CT_METRICS, "Content-Type (gzip)")
    check("accept-encoding" in h_gz.get("vary", "").lower(), "Vary (gzip): %r" % h_gz)
    eq(gz[:2], b"\x1f\x8b", "gzip magic")
    unz = gzip.decompress(gz)
    m2 = exp.quick()
    eq(m2.last_attempt(), m.last_attempt(), "a refresh happened between the scrapes")
    eq(unz, plain, "gzip body after decompression vs plain body")
    check(len(gz) < len(plain), "gzip body is not smaller")
    promtool_check(plain)
    promtool_check(unz)
    eq(int(h_plain.get("content-length", -1)), len(plain), "Content-Length (plain)")
    for ae, want in (("identity", None), ("gzip;q=0", None), ("*", "gzip"),
                     ("br, gzip;q=0.5", "gzip"), ("GZIP", "gzip"), ("deflate", None),
                     ("gzip, deflate, br", "gzip")):
        st, h, body = exp.get("/metrics", {"Accept-Encoding": ae})
        eq(st, 200, "status with Accept-Encoding %r" % ae)
        eq(h.get("content-encoding"), want, "Content-Encoding for Accept-Encoding %r" % ae)
        eq(gzip.decompress(body) if want else body, plain, "body for %r" % ae)
    # HEAD: headers, no body (read the raw bytes off the socket).
    for extra, enc in ((b"", None), (b"Accept-Encoding: gzip\r\n", "gzip")):
        raw = raw_exchange(exp.port, b"HEAD /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra
                           + b"Connection: close\r\n\r\n")
        head, sep, rest = raw.partition(b"\r\n\r\n")
        check(sep, "HEAD reply without an end of headers: %r" % raw[:300])
        lines = head.decode("latin-1").split("\r\n")
        check(lines[0].startswith("HTTP/1.1 200"), "HEAD status line %r" % lines[0])
        hh = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
              for l in lines[1:] if ":" in l}
        eq(hh.get("content-type"), CT_METRICS, "HEAD Content-Type")
        eq(hh.get("content-encoding"), enc, "HEAD Content-Encoding")
        eq(rest, b"", "HEAD body")


@test()
def test_http_endpoints_and_methods(ctx):
    fake = ctx.fake()
    exp = ctx.exporter(fake)
    exp.wait_ready()
    st, h, body = exp.get("/-/healthy")
    eq(st, 200, "/-/healthy")
    st, h, body = exp.get("/-/ready")
    eq(st, 200, "/-/ready")
    st, h, body = exp.get("/")
    eq(st, 200, "/ status")
    check(h.get("content-type", "").startswith("text/html"), "/ Content-Type %r" % h)
    check(b'href="/metrics"' in body and b"projects" in body,
          "landing page lacks the metrics link or the source: %r" % body[:500])
    for path in ("/nope", "/metrics/", "/metricsx", "/-/", "/-/healthyx", "/favicon.ico"):
        eq(exp.get(path)[0], 404, "GET %s" % path)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/metrics", "/", "/-/healthy", "/-/ready"):
            st, h, _ = exp.get(path, method=method)
            eq(st, 405, "%s %s" % (method, path))
            allow = {x.strip() for x in h.get("allow", "").split(",")}
            eq(allow, {"GET", "HEAD"}, "Allow header for %s %s" % (method, path))
    st, h, body = exp.get("/metrics")
    eq(st, 200, "GET /metrics still fine")
    promtool_check(body)
    m = Exposition(body.decode("utf-8"))
    eq(m.requests(), 4.0, "scrapes must never trigger AWS calls")
    eq(fake.counters()["total"], 4, "requests at the fake after many scrapes")


@test()
def test_custom_telemetry_path(ctx):
    fake = ctx.fake()
    conf = ctx.conf(fake)
    exp = Exporter(ctx, conf, base_env({"BEDROCK_API_KEY": API_KEY}),
                   args=["--web.telemetry-path=/custom/metrics"])
    wait_for(lambda: exp.get("/-/ready")[0] == 200, 30, "ready")
    m = exp.scrape(path="/custom/metrics")
    eq(m.up(), 1, "source_up")
    eq(exp.get("/metrics")[0], 404, "/metrics with a custom telemetry path")
    check(b'href="/custom/metrics"' in exp.get("/")[2], "landing page link")


@test()
def test_stalled_clients_do_not_block_scrapes(ctx):
    fake = ctx.fake()
    exp = ctx.exporter(fake)
    exp.wait_ready()
    socks = []
    try:
        for i in range(8):                    # half-sent requests, never completed
            s = socket.create_connection((HOST, exp.port), timeout=10)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(s)
        for i in range(5):
            t0 = time.monotonic()
            st, _, body = http_request(exp.port, "/metrics", timeout=5)
            eq(st, 200, "scrape while 8 clients stall")
            check(time.monotonic() - t0 < 2.0, "scrape took %.1fs while clients stall"
                  % (time.monotonic() - t0))
    finally:
        for s in socks:
            s.close()


@test()
def test_concurrent_scrapes_during_refreshes(ctx):
    fake = ctx.fake("--synthetic", "250")
    exp = ctx.exporter(fake, projects={"page_size": 100})
    m = exp.wait_ready()
    inv = fake.projects("us-east-1")
    stop = threading.Event()
    problems, done = [], [0]
    lock = threading.Lock()

    def scraper(use_gzip):
        while not stop.is_set() and not ABORT.is_set():
            try:
                st, h, body = http_request(exp.port, "/metrics",
                                           headers={"Accept-Encoding": "gzip"} if use_gzip
                                           else None)
                if st != 200:
                    raise TestFailure("status %d" % st)
                if h.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                promtool_check(body)
                e = Exposition(body.decode("utf-8"))
                for region in ("us-east-1", "eu-west-1"):
                    n_info = len(e.find("bedrock_cost_project_info", region=region))
                    n_count = sum(x.value for x in e.find("bedrock_cost_projects", region=region))
                    n_created = len(e.find("bedrock_cost_project_created_timestamp_seconds",
                                           region=region))
                    if not n_info == n_count == n_created:
                        raise TestFailure("inconsistent snapshot in %s: %d info, %d counted, "
                                          "%d created" % (region, n_info, n_count, n_created))
                with lock:
                    done[0] += 1
            except Exception as exc:
                with lock:
                    problems.append(repr(exc))
                return
    threads = [threading.Thread(target=scraper, args=(i % 2 == 0,), daemon=True)
               for i in range(6)]
    for t in threads:
        t.start()
    try:
        for subset in (inv[:100], inv, inv[50:], inv):
            fake.put_projects("us-east-1", subset)
            m = exp.hup_and_wait(m)
            eq(len(m.find("bedrock_cost_project_info", region="us-east-1")), len(subset),
               "us-east-1 projects after the refresh")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    check(not problems, "scrapes failed during refreshes: %s" % problems[:3])
    check(done[0] >= 12, "only %d scrapes completed" % done[0])
    ctx.notes.append("%d concurrent scrapes" % done[0])


# ---------------------------------------------------------------------------
# 7. SIGHUP reloads
# ---------------------------------------------------------------------------

BASE_INFO_LABELS = {"account_id", "region", "project_id", "project_name", "project_arn",
                    "status"}


@test()
def test_sighup_good_changes_apply(ctx):
    fake = ctx.fake()
    conf = ctx.conf(fake, "live.conf")
    exp = ctx.exporter(fake, conf_path=conf)
    m0 = exp.wait_ready()
    eq(set(next(iter(m0.project_info().values()))),
       BASE_INFO_LABELS | {"tag_application", "tag_environment", "tag_team", "tag_costcenter"},
       "info labels with the default tag_labels")
    eq(m0.regions_seen(), {"us-east-1", "eu-west-1"}, "regions")
    ts0 = m0.reload_ts()

    ctx.conf(fake, "live.conf", projects={"tag_labels": ["Team"]})
    m1 = exp.hup_and_wait(m0)
    eq(m1.reload_ok(), 1.0, "reload_successful")
    check(m1.reload_ts() > ts0, "reload success timestamp did not advance")
    for lab in m1.project_info().values():
        eq(set(lab), BASE_INFO_LABELS | {"tag_team"}, "info labels with tag_labels = [Team]")
    assert_matches_fake(m1, fake_inventory(fake), tag_labels=("Team",))

    ctx.conf(fake, "live.conf", projects={"tag_labels": ["Team"], "regions": ["us-east-1"]})
    m2 = exp.hup_and_wait(m1)
    eq(m2.regions_seen(), {"us-east-1"}, "regions after dropping eu-west-1")
    assert_matches_fake(m2, fake_inventory(fake, ("us-east-1",)), tag_labels=("Team",))
    eq(exp.get("/-/ready")[0], 200, "/-/ready")
    c = fake.counters()["total"]

    # A different endpoint/page size applies too.
    ctx.conf(fake, "live.conf", projects={"regions": ["us-east-1"], "page_size": 100,
                                          "tag_labels": []})
    m3 = exp.hup_and_wait(m2)
    eq(fake.counters()["total"] - c, 1, "requests with page_size 100 (one page)")
    for lab in m3.project_info().values():
        eq(set(lab), BASE_INFO_LABELS, "info labels with tag_labels = []")
    check(m3.tag_info(), "tag_info must stay with no tag_labels")


@test()
def test_sighup_bad_file_keeps_old_config(ctx):
    fake = ctx.fake()
    good = ctx.conf(fake, "live.conf", projects={"tag_labels": ["Team"],
                                                 "regions": ["us-east-1"],
                                                 "refresh_interval": 10})
    exp = ctx.exporter(fake, conf_path=good)
    m0 = exp.wait_ready()
    eq(m0.regions_seen(), {"us-east-1"}, "regions")
    good_text = open(good, encoding="utf-8").read()

    # 1) syntax error: rejected, old configuration kept, daemon serving.
    ctx.write("live.conf", good_text + "http: { max_retries = = 3; };\n")
    before, m1 = exp.hup_bad_and_wait()
    eq(m1.reload_ok(), 0.0, "reload_successful after a syntax error")
    eq(m1.reload_ts(), before.reload_ts(), "reload success timestamp after a rejected file")
    check(exp.alive(), "exporter died on a bad file")
    eq(exp.get("/-/ready")[0], 200, "/-/ready after a bad reload")
    eq(m1.project_info(), m0.project_info(), "projects after a bad reload")
    rej = exp.logs("configuration rejected, keeping the previous one", "error")
    check(rej, "no error log line for the rejected file")
    check(re.match(re.escape(good) + r":\d+: ", rej[-1].get("error", "")),
          "rejection does not name file:line: %r" % rej[-1])
    # The old configuration keeps working: the next periodic refresh (10 s) still lists
    # us-east-1 only, with tag_team only.
    t_bad = m1.last_attempt()
    m1b = wait_for(lambda: (lambda e: e if e and e.last_attempt() > t_bad else None)(exp.quick()),
                   25, "the next periodic refresh")
    m1b = exp.scrape()
    eq(m1b.up(), 1, "source_up on the refresh after a rejected reload")
    eq(m1b.regions_seen(), {"us-east-1"}, "regions after a rejected reload")
    for lab in m1b.project_info().values():
        eq(set(lab), BASE_INFO_LABELS | {"tag_team"}, "info labels after a rejected reload")
    eq(m1b.reload_ok(), 0.0, "reload_successful stays 0 until a good reload")

    # 2) unknown key: rejected too.
    ctx.write("live.conf", good_text.replace("projects: {", "projects: {\n  colour = \"red\";"))
    exp.send(signal.SIGHUP)
    n = len(rej)
    wait_for(lambda: len(exp.logs("configuration rejected, keeping the previous one",
                                  "error")) > n, 20, "the unknown-key file to be rejected")
    m2 = exp.scrape()
    eq(m2.reload_ok(), 0.0, "reload_successful after an unknown key")
    check(exp.alive(), "exporter died on an unknown key")
    check('colour' in exp.logs("configuration rejected, keeping the previous one",
                               "error")[-1].get("error", ""), "rejection does not name the key")

    # 3) good file again: accepted, both regions, default labels.
    ctx.conf(fake, "live.conf")
    m3 = exp.hup_and_wait(m2)
    eq(m3.reload_ok(), 1.0, "reload_successful after a good file")
    check(m3.reload_ts() > m0.reload_ts(), "reload success timestamp did not advance")
    eq(m3.regions_seen(), {"us-east-1", "eu-west-1"}, "regions after the good file")
    assert_matches_fake(m3, fake_inventory(fake))


@test()
def test_sighup_missing_file(ctx):
    fake = ctx.fake()
    conf = ctx.conf(fake, "live.conf")
    exp = ctx.exporter(fake, conf_path=conf)
    m0 = exp.wait_ready()
    os.unlink(conf)
    _, m1 = exp.hup_bad_and_wait()
    eq(m1.reload_ok(), 0.0, "reload_successful with the file gone")
    eq(m1.project_info(), m0.project_info(), "projects")
    ctx.conf(fake, "live.conf")
    eq(exp.hup_and_wait(m1).reload_ok(), 1.0, "reload_successful once the file is back")


@test()
def test_sighup_storm(ctx):
    fake = ctx.fake("--synthetic", "60")
    conf = ctx.conf(fake, "live.conf")
    exp = ctx.exporter(fake, conf_path=conf)
    m0 = exp.wait_ready()
    variants = [render_conf(default_groups(fake, ctx.dir, projects={"tag_labels": ["Team"]})),
                "projects: { page_size = ; };\n",
                render_conf(default_groups(fake, ctx.dir, projects={"regions": ["eu-west-1"]})),
                render_conf(default_groups(fake, ctx.dir))]
    for i in range(40):                  # signals faster than refreshes can finish
        ctx.write("live.conf", variants[i % len(variants)])
        exp.send(signal.SIGHUP)
        st, _, body = exp.get("/metrics")
        eq(st, 200, "scrape during the SIGHUP storm")
        time.sleep(0.01)
    check(exp.alive(), "exporter died during a SIGHUP storm")
    ctx.conf(fake, "live.conf", projects={"tag_labels": ["CostCenter"]})
    exp.send(signal.SIGHUP)
    want = BASE_INFO_LABELS | {"tag_costcenter"}

    def settled():                       # the final file is loaded and listed with
        e = exp.quick()
        return (e and e.reload_ok() == 1 and e.last_attempt() > e.reload_ts() and
                e.project_info() and all(set(l) == want for l in e.project_info().values()))
    wait_for(settled, 60, "a refresh with the final configuration")
    m = exp.scrape()
    eq(m.reload_ok(), 1.0, "reload_successful after the storm")
    eq(m.up(), 1, "source_up after the storm")
    assert_matches_fake(m, fake_inventory(fake), tag_labels=("CostCenter",))


# ---------------------------------------------------------------------------
# 8. shutdown
# ---------------------------------------------------------------------------

def _stop_fast(ctx, exp, sig, what):
    rc, took = exp.stop(sig, timeout=10)
    ctx.notes.append("%s (%s) -> exit %s after %.3fs" % (sig.name, what, rc, took))
    eq(rc, 0, "exit code after %s (%s); log tail:\n%s" % (sig.name, what, exp.log_text()[-2000:]))
    check(took < 1.0, "exit after %s (%s) took %.2fs (limit 1 s)" % (sig.name, what, took))
    check(exp.logs("stopped", "info"), "no 'stopped' log line")


@test(serial=True)
def test_sigterm_exits_0_within_1s(ctx):
    fake = ctx.fake()
    exp = ctx.exporter(fake)
    exp.wait_ready()
    _stop_fast(ctx, exp, signal.SIGTERM, "idle")


@test()
def test_sigusr1_and_sigusr2_are_ignored(ctx):
    fake = ctx.fake()
    exp = ctx.exporter(fake)
    exp.wait_ready()
    for sig in (signal.SIGUSR1, signal.SIGUSR2):
        exp.send(sig)
        st, _, _ = exp.get("/metrics")
        eq(st, 200, "/metrics after %s" % sig.name)
        check(exp.alive(), "the exporter died of %s" % sig.name)
    _stop_fast(ctx, exp, signal.SIGTERM, "after SIGUSR1/2")


@test(serial=True)
def test_sigint_exits_0_within_1s(ctx):
    fake = ctx.fake()
    exp = ctx.exporter(fake)
    exp.wait_ready()
    _stop_fast(ctx, exp, signal.SIGINT, "idle")


@test(serial=True)
def test_sigterm_with_open_keepalive_connection(ctx):
    fake = ctx.fake()
    exp = ctx.exporter(fake)
    exp.wait_ready()
    conn = http.client.HTTPConnection(HOST, exp.port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        r.read()
        eq(r.status, 200, "scrape")
        _stop_fast(ctx, exp, signal.SIGTERM, "with an idle keep-alive client connection")
    finally:
        conn.close()


@test(serial=True)
def test_sigterm_during_hanging_request(ctx):
    fake = ctx.fake()
    exp = ctx.exporter(fake, http={"request_timeout": 60})
    exp.wait_ready()
    fake.fault(kind="hang", count=-1, match="/mantle/us-east-1/")
    exp.send(signal.SIGHUP)
    wait_for(lambda: any(f["applied"] > 0 for f in fake.faults()), 20,
             "the refresh to hang at the fake")
    # The request is stalled (request_timeout is 60 s). The signal goes half a second into
    # the stall: libcurl only calls the exporter's abort check about once a second while a
    # transfer is idle, so an earlier signal would put the measurement right at the 1 s
    # limit and make it flaky (see the suite's report). A daemon that waited for the
    # request timeout instead fails this clearly.
    arrived = max(e["time"] for e in fake.request_log() if "/us-east-1/" in e["path"])
    wait_for(lambda: time.time() >= arrived + 0.5, 5, "half a second into the stall",
             interval=0.01)
    _stop_fast(ctx, exp, signal.SIGTERM, "0.5 s into a stalled request")


@test(serial=True)
def test_sigterm_during_retry_backoff(ctx):
    fake = ctx.fake()
    exp = ctx.exporter(fake, http={"retry_max_delay": 60})
    exp.wait_ready()
    fake.fault(kind="throttle", retry_after=50, count=-1, match="/mantle/us-east-1/")
    exp.send(signal.SIGHUP)
    wait_for(lambda: exp.logs("retrying request", "debug"), 20, "the retry wait to start")
    _stop_fast(ctx, exp, signal.SIGTERM, "while waiting out a Retry-After")


@test(serial=True)
def test_second_instance_on_same_port_fails(ctx):
    fake = ctx.fake()
    a = ctx.exporter(fake)
    a.wait_ready()
    conf = ctx.conf(fake, "second.conf")
    b = Exporter(ctx, conf, base_env({"BEDROCK_API_KEY": API_KEY}),
                 args=["--web.telemetry-path=/second"], expect_start=False)
    b._spawn(a.port)
    wait_for(lambda: b.proc.poll() is not None or "msg=started" in b.log_text(), 20,
             "the second instance to exit or start")
    if b.proc.poll() is None:
        # Both now accept connections on the port: the kernel spreads scrapes over them.
        answers = [http_request(a.port, "/second")[0] for _ in range(40)]
        b.stop()
        raise TestFailure("a second exporter started on port %d, which the first one already "
                          "listens on (expected exit 1 with 'cannot listen'); of 40 scrapes "
                          "of a path only the second serves, %d were answered by the second "
                          "and %d by the first" % (a.port, answers.count(200),
                                                   answers.count(404)))
    ctx.expect_exit[b] = 1
    eq(b.proc.returncode, 1, "exit code of the second instance")
    check("cannot listen" in b.log_text(), "no 'cannot listen' line: %s" % b.log_text()[-500:])


# ---------------------------------------------------------------------------
# 9. --once, --check-config, command line
# ---------------------------------------------------------------------------

@test()
def test_once_exit_codes(ctx):
    fake = ctx.fake()
    conf = ctx.conf(fake)
    rc, out, err = ctx.run(["--once", "--config.file=" + conf], {"BEDROCK_API_KEY": API_KEY})
    eq(rc, 0, "--once against the healthy fake (stderr: %s)" % err[-1000:])
    promtool_check(out)
    m = Exposition(out.decode("utf-8"))
    assert_meta(m)
    eq(m.up(), 1, "source_up in --once output")
    assert_matches_fake(m, fake_inventory(fake))
    eq(m.requests(), 4.0, "requests in --once output")

    rc, out, err = ctx.run(["--once", "--config.file=" + conf], {"BEDROCK_API_KEY": "wrong"})
    eq(rc, 1, "--once with a wrong key")
    promtool_check(out)
    m = Exposition(out.decode("utf-8"))
    eq(m.up(), 0, "source_up in --once output with a wrong key")
    eq(m.errors("auth"), 2.0, "auth errors")
    check(WARN_FAILED in err, "no warn line on stderr: %s" % err[-1000:])

    rc, out, err = ctx.run(["--once", "--config.file=" + conf], {})
    eq(rc, 1, "--once with no API key at all")
    check("BEDROCK_API_KEY" in err, "error does not name the missing variable: %s" % err[-500:])

    fake.fault(kind="server_error", count=-1, match="/mantle/eu-west-1/")
    rc, out, err = ctx.run(["--once", "--config.file=" + conf], {"BEDROCK_API_KEY": API_KEY})
    eq(rc, 1, "--once when one region fails")
    promtool_check(out)

    bad = ctx.write("bad.conf", "projects: { page_size = 0; };\n")
    rc, out, err = ctx.run(["--once", "--config.file=" + bad], {"BEDROCK_API_KEY": API_KEY})
    eq(rc, 1, "--once with an invalid configuration")
    eq(out, b"", "stdout with an invalid configuration")


CHECK_FIXTURES = [
    # name, text, line, message substring
    ("unknown_key", 'projects: {\n  regions = ["us-east-1"];\n  bogus_key = 1;\n};\n', 3,
     'unknown key "projects.bogus_key"'),
    ("unknown_group", 'projects: {\n  page_size = 5;\n};\n\nmystery: { a = 1; };\n', 5,
     'unknown key "mystery"'),
    ("wrong_type_int", 'projects: {\n  regions = ["us-east-1"];\n\n  refresh_interval = "300";\n};\n',
     4, "projects.refresh_interval: wrong type"),
    ("wrong_type_bool", 'http: {\n  max_retries = 1;\n};\nprojects: {\n  enabled = 1;\n};\n',
     5, "projects.enabled: wrong type"),
    ("wrong_type_list", 'projects: {\n  tag_labels = "Team";\n};\n', 2,
     "projects.tag_labels: wrong type"),
    ("out_of_range_int", 'http: {\n  connect_timeout = 5;\n  max_retries = 99;\n};\n', 3,
     "http.max_retries: value out of range"),
    ("out_of_range_interval", 'projects: {\n  refresh_interval = 5;\n};\n', 2,
     "projects.refresh_interval: value out of range"),
    ("out_of_range_page", '# comment\n# comment\nprojects: { page_size = 101; };\n', 3,
     "projects.page_size: value out of range"),
    ("syntax_error", 'projects: {\n  regions = ["us-east-1"];\n  page_size = = 2;\n};\n', 3,
     ""),
    ("bad_enum", 'projects: {\n\n  auth = "password";\n};\n', 3,
     'projects.auth: unknown value "password"'),
    ("bad_region", 'projects: {\n  page_size = 3;\n  regions = ["us-east-1", "Not A Region"];\n};\n',
     3, "not a region name"),
    ("label_collision", 'projects: {\n  tag_labels = ["Cost-Center", "cost_center"];\n};\n', 2,
     "map to the same label name"),
    ("bad_endpoint", 'projects: {\n  page_size = 3;\n\n\n  endpoint = "ftp://example/{region}";\n};\n',
     5, "not an http(s) base URL"),
]


@test()
def test_check_config(ctx):
    rc, out, err = ctx.run(["--check-config", "--config.file=" + EXAMPLE_CONF])
    eq(rc, 0, "--check-config on %s (stderr: %s)" % (EXAMPLE_CONF, err))
    eq(err, "", "stderr for a good file")
    problems = []
    for name, text, line, msg in CHECK_FIXTURES:
        path = ctx.write(name + ".conf", text)
        rc, out, err = ctx.run(["--check-config", "--config.file=" + path])
        prefix = "%s:%d: " % (path, line)
        lines = [l for l in err.split("\n") if l]
        if rc != 1:
            problems.append("%s: exit code %d, expected 1 (stderr %r)" % (name, rc, err))
        elif not any(l.startswith(prefix) and msg in l for l in lines):
            problems.append("%s: no stderr line starting %r containing %r; got %r"
                            % (name, prefix, msg, lines))
    rc, out, err = ctx.run(["--check-config", "--config.file=" + os.path.join(ctx.dir, "nope")])
    if rc != 1 or "nope" not in err:
        problems.append("missing file: exit %d, stderr %r" % (rc, err))
    check(not problems, "\n".join(problems))


@test()
def test_check_config_errors_in_included_file(ctx):
    """libconfig's @include: an error must name the file and line where the setting is."""
    problems = []
    cases = [  # (included text, line in it, message), included inside the projects group
        ('regions = ["us-east-1"];\npage_size = 500;\n', 2,
         "projects.page_size: value out of range"),
        ('\nregions = ["Bad Region"];\n', 2, "not a region name"),
        ('refresh_interval = "often";\n', 1, "projects.refresh_interval: wrong type"),
    ]
    for i, (inc_text, line, msg) in enumerate(cases):
        inc = ctx.write("inc%d.conf" % i, inc_text)
        main = ctx.write("main%d.conf" % i, 'projects: {\n  max_projects = 50;\n'
                         '  @include "%s"\n};\n' % inc)
        rc, out, err = ctx.run(["--check-config", "--config.file=" + main])
        lines = [l for l in err.split("\n") if l]
        if rc != 1:
            problems.append("case %d: exit %d" % (i, rc))
        elif not any(l.startswith("%s:%d: " % (inc, line)) and msg in l for l in lines):
            problems.append("case %d: expected a line starting %s:%d: with %r, got %r"
                            % (i, inc, line, msg, lines))
    # a whole group in the included file
    inc = ctx.write("incg.conf", 'projects: {\n  bogus = 1;\n};\n')
    main = ctx.write("maing.conf", '# main\n\n@include "%s"\n' % inc)
    rc, out, err = ctx.run(["--check-config", "--config.file=" + main])
    if rc != 1 or not err.startswith("%s:2: " % inc):
        problems.append("group in an included file: exit %d, stderr %r" % (rc, err))
    check(not problems, "\n".join(problems))


@test()
def test_startup_failures_exit_1(ctx):
    path = ctx.write("bad.conf", 'projects: {\n  bogus = 1;\n};\n')
    rc, out, err = ctx.run(["--config.file=" + path, "--web.listen-address=127.0.0.1:%d"
                            % free_port()], timeout=20)
    eq(rc, 1, "exit code of the daemon with a bad configuration")
    check("%s:2: " % path in err, "log does not name file:line: %s" % err[-1000:])
    rc, out, err = ctx.run(["--config.file=" + os.path.join(ctx.dir, "missing.conf"),
                            "--web.listen-address=127.0.0.1:%d" % free_port()], timeout=20)
    eq(rc, 1, "exit code of the daemon with a missing configuration file")
    good = ctx.conf(None, "good.conf")
    for addr in ("127.0.0.1:notaport", "127.0.0.1:70000", "nonsense"):
        rc, out, err = ctx.run(["--config.file=" + good, "--web.listen-address=" + addr],
                               timeout=20)
        eq(rc, 1, "exit code with --web.listen-address=%s (stderr %s)" % (addr, err[-300:]))


@test()
def test_json_log_format(ctx):
    fake = ctx.fake()
    conf = ctx.conf(fake)
    rc, out, err = ctx.run(["--once", "--log.format=json", "--log.level=debug",
                            "--config.file=" + conf], {"BEDROCK_API_KEY": "wrong-key"})
    eq(rc, 1, "--once with a wrong key")
    lines = [l for l in err.split("\n") if l]
    check(lines, "no log lines")
    recs = []
    for l in lines:
        try:
            recs.append(json.loads(l))
        except ValueError as exc:
            raise TestFailure("log line is not JSON (%s): %r" % (exc, l))
    for r in recs:
        check({"ts", "level", "msg"} <= set(r), "JSON log line lacks ts/level/msg: %r" % r)
    w = [r for r in recs if r["msg"] == WARN_FAILED]
    eq(sorted(r.get("region") for r in w), ["eu-west-1", "us-east-1"], "warn lines by region")
    # numbers are JSON numbers, not strings
    h = [r for r in recs if r["msg"] == "http request"]
    check(h, "no 'http request' debug lines")
    for r in h:
        check(type(r.get("status")) is int and type(r.get("duration_ms")) in (int, float),
              "status and duration_ms are not JSON numbers: %r" % r)


@test()
def test_command_line_errors_exit_2(ctx):
    conf = ctx.conf(None, "ok.conf")
    cases = [["--no-such-flag"], ["--log.level=loud"], ["--log.format=xml"], ["positional"],
             ["--config.file"], ["--web.telemetry-path=/-/metrics"],
             ["--web.telemetry-path=metrics"], ["--once=maybe"], ["-x"]]
    problems = []
    for args in cases:
        # --check-config first: a flag wrongly accepted validates and exits, never serves
        rc, out, err = ctx.run(["--check-config", "--config.file=" + conf] + args, timeout=20)
        if rc != 2:
            problems.append("%r: exit %d (expected 2), stderr %r" % (args, rc, err[-300:]))
    rc, out, err = ctx.run(["--help"])
    if rc != 0 or b"--config.file" not in out:
        problems.append("--help: exit %d" % rc)
    rc, out, err = ctx.run(["--version"])
    if rc != 0 or b"bedrock-cost-exporter" not in out:
        problems.append("--version: exit %d, %r" % (rc, out))
    check(not problems, "\n".join(problems))


# ---------------------------------------------------------------------------
# 10. secrets
# ---------------------------------------------------------------------------

@test()
def test_no_secret_in_logs_or_metrics(ctx):
    tag = secrets.token_hex(8)
    api_key = "bce-it-api-key-" + tag
    wrong_key = "bce-it-wrong-key-" + tag
    secret = "bce/it/secret+" + tag
    token = "bce-it-session-token-" + tag
    all_secrets = [api_key, wrong_key, secret, token]
    fake = ctx.fake("--api-key", api_key, "--secret-access-key", secret,
                    "--session-token", token)
    env = {"BEDROCK_API_KEY": api_key, "ALT_KEY": wrong_key,
           "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": secret,
           "AWS_SESSION_TOKEN": token}
    conf = ctx.conf(fake, "live.conf")
    exp = ctx.exporter(fake, conf_path=conf, env=env)
    bodies = []

    def collect():
        for path, hdrs in (("/metrics", None), ("/metrics", {"Accept-Encoding": "gzip"}),
                           ("/", None), ("/-/ready", None), ("/-/healthy", None)):
            st, h, b = exp.get(path, hdrs)
            bodies.append(gzip.decompress(b) if h.get("content-encoding") == "gzip" else b)

    m = exp.wait_ready()
    eq(m.up(), 1, "source_up with the bearer key")
    collect()
    # wrong key from another variable: auth failure
    ctx.conf(fake, "live.conf", projects={"api_key_env": "ALT_KEY"})
    m = exp.hup_and_wait(m)
    eq(m.up(), 0, "source_up with the wrong key")
    check(m.errors("auth") > 0, "no auth error")
    collect()
    # wrong key from a file
    keyfile = ctx.write("key.txt", wrong_key + "\n")
    ctx.conf(fake, "live.conf", projects={"api_key_file": keyfile})
    m = exp.hup_and_wait(m)
    eq(m.up(), 0, "source_up with the wrong key file")
    collect()
    # good key from a file
    ctx.write("key.txt", api_key + "\n")
    m = exp.hup_and_wait(m)
    eq(m.up(), 1, "source_up with the good key file")
    # SigV4 with a session token, then an auth failure under SigV4
    ctx.conf(fake, "live.conf", projects={"auth": "sigv4"})
    m = exp.hup_and_wait(m)
    eq(m.up(), 1, "source_up with sigv4 + session token")
    eq(fake.counters()["by_status"].get("403", 0), 0, "sigv4 rejections")
    fake.fault(kind="auth", count=-1)
    m = exp.hup_and_wait(m)
    eq(m.up(), 0, "source_up with an auth fault")
    collect()
    fake.clear_faults()
    # a rejected file
    ctx.write("live.conf", "projects: { auth = ; };\n")
    exp.hup_bad_and_wait()
    collect()
    # --once with debug logging and a wrong key
    once_conf = ctx.conf(fake, "once.conf")
    rc, out, err = ctx.run(["--once", "--log.level=debug", "--config.file=" + once_conf],
                           {"BEDROCK_API_KEY": wrong_key, "AWS_SECRET_ACCESS_KEY": secret,
                            "AWS_SESSION_TOKEN": token})
    eq(rc, 1, "--once with a wrong key")
    rc, _ = exp.stop()
    eq(rc, 0, "exit code on SIGTERM")
    texts = [("exporter log", exp.log_text().encode("utf-8")), ("--once stdout", out),
             ("--once stderr", err.encode("utf-8"))]
    texts += [("scrape #%d" % i, b) for i, b in enumerate(bodies + ctx.scrapes)]
    leaks = []
    for what, blob in texts:
        for s in all_secrets:
            for form in (s, urllib.parse.quote(s, safe="")):
                if form.encode("utf-8") in blob:
                    leaks.append("%s contains %r" % (what, s))
    check(not leaks, "secrets leaked: %s" % "; ".join(sorted(set(leaks))))
    check(len(exp.log_records()) > 20, "suspiciously short debug log")


# ---------------------------------------------------------------------------
# 11. Cost Explorer, credentials, spend discipline: tests/integration/costs.py
#     (its tests join this registry; the ones waiting for the 10 s refresh timer go first);
#     the account maximum on default settings: tests/integration/full_account.py
#     the state file in S3: shared_state.py; organizations and shards: organization.py
# ---------------------------------------------------------------------------

sys.path.insert(0, HERE)
sys.dont_write_bytecode = True          # no __pycache__ in the source tree
import cloudwatch  # noqa: E402
import shared_state  # noqa: E402
import organization  # noqa: E402
import costs  # noqa: E402
import data_exports  # noqa: E402
import full_account  # noqa: E402

costs.register(sys.modules[__name__])
full_account.register(sys.modules[__name__])
cloudwatch.register(sys.modules[__name__])
shared_state.register(sys.modules[__name__])
organization.register(sys.modules[__name__])
data_exports.register(sys.modules[__name__])


# ---------------------------------------------------------------------------
# runner
# ---------------------------------------------------------------------------

class Result:
    def __init__(self, name):
        self.name, self.ok, self.msg, self.seconds = name, False, "", 0.0
        self.notes = []


def run_one(name, fn, root):
    res = Result(name)
    t0 = time.monotonic()
    ctx = None
    try:
        ctx = Ctx(name, root)
        fn(ctx)
        res.ok = True
    except TestFailure as exc:
        res.msg = str(exc)
    except Aborted:
        res.msg = "interrupted"
    except Exception:
        res.msg = "error: " + traceback.format_exc()
    finally:
        if ctx is not None:
            try:
                problems = ctx.close()
            except Exception:
                problems = ["cleanup error: " + traceback.format_exc()]
            res.notes = ctx.notes
            if problems:
                res.ok = False
                res.msg = (res.msg + "\n" if res.msg else "") + "\n".join(problems)
            if not res.ok and VERBOSE:
                for e in ctx.exporters:
                    res.msg += "\n--- %s (tail) ---\n%s" % (os.path.basename(e.log_path),
                                                            e.log_text()[-2500:])
            shutil.rmtree(ctx.dir, ignore_errors=True)
    res.seconds = time.monotonic() - t0
    return res


def report(res):
    if res.ok:
        if VERBOSE:
            print("ok    %-55s %5.1fs" % (res.name, res.seconds), flush=True)
            for n in res.notes:
                print("      " + n, flush=True)
    else:
        print("FAIL  %-55s %5.1fs\n      %s" % (res.name, res.seconds,
                                                res.msg.replace("\n", "\n      ")), flush=True)


def main(argv=None):
    global BINARY, VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "san",
                                                     "bedrock-cost-exporter"))
    ap.add_argument("-k", dest="pattern", default="", help="run tests whose name contains this")
    ap.add_argument("-v", dest="verbose", action="store_true")
    ap.add_argument("-j", dest="jobs", type=int, default=3,
                    help="tests run in parallel (timing-sensitive ones always run alone)")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    args = ap.parse_args(argv)
    VERBOSE = args.verbose
    BINARY = os.path.abspath(args.binary)
    selected = [(n, f, s) for n, f, s in TESTS if args.pattern in n]
    if args.list:
        for n, _, s in selected:
            print(n + (" (serial)" if s else ""))
        return 0
    for path, what in ((BINARY, "--binary"), (PROMTOOL, "promtool"), (FAKE_SCRIPT, "fake_aws")):
        if not os.path.exists(path):
            print("missing %s: %s" % (what, path), file=sys.stderr)
            print("0 passed, 1 failed")
            return 1

    detect_supported_keys()

    def on_term(signum, frame):
        print("received signal %d" % signum, file=sys.stderr, flush=True)
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)      # also when started with SIGINT ignored

    root = tempfile.mkdtemp(prefix="bce-integration.")
    results = []
    t0 = time.monotonic()
    interrupted = False
    pool = None
    try:
        for n, f, s in selected:
            if s:
                r = run_one(n, f, root)
                results.append(r)
                report(r)
        parallel = [(n, f) for n, f, s in selected if not s]
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs))
        futs = [pool.submit(run_one, n, f, root) for n, f in parallel]
        pending = set(futs)
        while pending:
            done, pending = concurrent.futures.wait(pending, timeout=0.5)
            for fu in done:
                r = fu.result()
                results.append(r)
                report(r)
        pool.shutdown(wait=True)
    except KeyboardInterrupt:
        interrupted = True
        ABORT.set()
        print("interrupted: stopping every process", file=sys.stderr, flush=True)
        kill_all()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        ABORT.set()
        kill_all()
        shutil.rmtree(root, ignore_errors=True)
    passed = sum(1 for r in results if r.ok)
    failed = sum(1 for r in results if not r.ok) + (1 if interrupted else 0)
    if VERBOSE:
        print("ran %d tests in %.1fs" % (len(results), time.monotonic() - t0))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 and not interrupted else 1


if __name__ == "__main__":
    sys.exit(main())
