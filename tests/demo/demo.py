#!/usr/bin/env python3
"""make demo: the bundled fake AWS account plus the exporter against it, on loopback.

Starts tests/fake_aws/fake_aws.py on a free port, writes a demo configuration
pointing the exporter at it, starts the exporter, waits until /-/ready says 200,
prints where /metrics is and a few example series, then runs until Ctrl-C
(which stops both). --smoke exits after the check instead (make check runs it).
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FAKE = os.path.join(ROOT, "tests", "fake_aws", "fake_aws.py")
sys.path.insert(0, os.path.dirname(FAKE))
from exporter_conf import exporter_conf  # noqa: E402
DEMO_API_KEY = "demo-bedrock-api-key"  # the fake account's key, not a real secret


def free_port(preferred=None):
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + what)


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def scrape(base):
    return urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()


def sample(body, family, project_id):
    m = re.search(r'^%s\{(?:account_id="[^"]*",)?project_id="%s"\} (\S+)$'
                  % (family, re.escape(project_id)), body, re.M)
    return float(m.group(1)) if m else None


def cw_estimates(base, names):
    """One line per project with an estimate: today so far and the last hour's rate."""
    body = scrape(base)
    out = []
    for pid in sorted(set(re.findall(r'^bedrock_cost_project_today_estimated_usd\{'
                                     r'(?:account_id="[^"]*",)?project_id="([^"]*)"\}', body,
                                     re.M))):
        today = sample(body, "bedrock_cost_project_today_estimated_usd", pid)
        hour = sample(body, "bedrock_cost_project_estimated_usd_per_hour", pid)
        out.append("%-24s today %9.2f USD   now %7.2f USD/h" % (names.get(pid, pid + " (not listed)"), today,
                                                             hour or 0.0))
    return out


def cw_read_at(base):
    """When the last CloudWatch read finished, or None."""
    try:
        m = re.search(r'^bedrock_cost_exporter_last_success_timestamp_seconds\{source='
                      r'"cloudwatch"\} (\S+)$', scrape(base), re.M)
    except OSError:
        return None
    return float(m.group(1)) if m else None


def cw_line(base, pid, at):
    body = scrape(base)
    return "%s UTC  today %9.2f USD (estimated)   %7.2f USD/h" % (
        time.strftime("%H:%M:%S", time.gmtime(at)),
        sample(body, "bedrock_cost_project_today_estimated_usd", pid) or 0.0,
        sample(body, "bedrock_cost_project_estimated_usd_per_hour", pid) or 0.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--binary", default=os.path.join(ROOT, "bedrock-cost-exporter"))
    ap.add_argument("--smoke", action="store_true", help="check and exit instead of running")
    ap.add_argument("--listen-port", type=int, default=19880)
    args = ap.parse_args()
    # a line at a time even into a pipe or a file (make demo | tee, CI logs, provisioning
    # scripts): Python would otherwise hold the summary until it exits
    sys.stdout.reconfigure(line_buffering=True)

    tmp = tempfile.mkdtemp(prefix="bce-demo-")
    procs = []

    def stop(*_):
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Ctrl-C stops the demo even when it was started with SIGINT ignored (a background job
    # of a non-interactive shell inherits SIG_IGN, and Python then installs no handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        port_file = os.path.join(tmp, "fake.port")
        procs.append(subprocess.Popen(
            [sys.executable, FAKE, "--port", "0", "--port-file", port_file, "--quiet"],
            stdout=subprocess.DEVNULL))
        wait_for(lambda: os.path.exists(port_file), 30, "the fake AWS account")
        fake_port = int(open(port_file).read().strip())

        conf = os.path.join(tmp, "demo.conf")
        with open(conf, "w") as f:
            f.write(exporter_conf("http://127.0.0.1:%d" % fake_port, tmp, 3600,
                                  header="# demo configuration written by tests/demo/demo.py\n"))

        listen_port = free_port(args.listen_port)
        # the fake account's credentials; HOME and the metadata switch keep the demo from
        # finding anything real on this machine
        env = dict(os.environ, BEDROCK_API_KEY=DEMO_API_KEY, HOME=tmp,
                   AWS_ACCESS_KEY_ID="AKIDFAKEEXAMPLE",
                   AWS_SECRET_ACCESS_KEY="fake/secret/EXAMPLEKEY",
                   AWS_EC2_METADATA_DISABLED="true")
        for k in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                  "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                  "AWS_SHARED_CREDENTIALS_FILE"):
            env.pop(k, None)
        procs.append(subprocess.Popen(
            [args.binary, "--config.file=" + conf,
             f"--web.listen-address=127.0.0.1:{listen_port}"], env=env))
        base = f"http://127.0.0.1:{listen_port}"
        wait_for(lambda: procs[-1].poll() is not None or http_status(base + "/-/ready") == 200,
                 30, "the exporter to become ready")
        if procs[-1].poll() is not None:
            raise RuntimeError("the exporter exited with status %d" % procs[-1].returncode)

        body = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        info = [l for l in body.splitlines() if l.startswith("bedrock_cost_project_info{")]
        info.sort(key=lambda l: 'tag_application=""' in l)  # tagged projects first
        print()
        print(f"Fake AWS account:  http://127.0.0.1:{fake_port}/mantle/{{region}}/v1")
        print(f"Exporter metrics:  {base}/metrics")
        print(f"Status page:       {base}/")
        print(f"\n{len(info)} projects, for example:")
        for line in info[:3]:
            print("  " + line)
        costs = [l for l in body.splitlines()
                 if l.startswith("bedrock_cost_project_month_to_date_usd{")]
        names = dict(re.findall(r'project_id="([^"]*)",project_name="([^"]*)"', body))
        print(f"\nMonth-to-date Bedrock spend per project ({len(costs)} rows):")
        for line in costs:
            pid = re.search(r'project_id="([^"]*)"', line).group(1)
            print("  %-100s  # %s" % (line, names.get(pid, "reserved: see README")))
        tags = [l for l in body.splitlines()
                if l.startswith("bedrock_cost_tag_month_to_date_usd{")
                and 'tag_key="Team"' in l]
        print("\nMonth-to-date spend per Team:")
        for line in tags:
            print("  " + line)
        models = [l for l in body.splitlines() if l.startswith("bedrock_cost_model_month_to_date_usd{")]
        print(f"\nMonth-to-date spend per model and token type ({len(models)} rows), for example:")
        for line in models[:4]:
            print("  " + line)
        estimates = cw_estimates(base, names)
        print("\nToday so far, estimated within minutes from CloudWatch tokens priced by the "
              "account's own bill\n(bedrock_cost_project_today_estimated_usd, "
              "_estimated_usd_per_hour; read every 60 s):")
        for line in estimates:
            print("  " + line)
        if args.smoke:
            if not estimates:
                raise RuntimeError("expected CloudWatch estimates on /metrics")
            if len(info) < 5:
                raise RuntimeError("expected the example projects on /metrics")
            if len(costs) < 5 or not tags or not models:
                raise RuntimeError("expected per-project, per-tag and per-model cost on /metrics")
            print("\ndemo smoke check passed")
            return 0
        chatbot = next((pid for pid, n in names.items() if n == "CustomerChatbot-Prod"), None)
        print("\nTo see the estimate jump, make CustomerChatbot-Prod spend 20 times as much from "
              "now on:\n  curl -X POST http://127.0.0.1:%d/_fake/cloudwatch/spike -d "
              "'{\"region\":\"us-east-1\",\"project\":\"CustomerChatbot-Prod\",\"factor\":20}'"
              % fake_port)
        print("\nPress Ctrl-C to stop the exporter and the fake.")
        print("\nCustomerChatbot-Prod, after each CloudWatch read:")
        last = None
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
            at = cw_read_at(base)
            if chatbot and at and at != last:
                last = at
                print("  " + cw_line(base, chatbot, at))
        print("a process exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except RuntimeError as e:
        print("demo: " + str(e), file=sys.stderr)
        return 1
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
