#!/usr/bin/python3
"""TLS and basic authentication end to end: curl and a real Prometheus scrape.

For each of three web configurations — TLS only; TLS with RequireAndVerifyClientCert;
basic auth over TLS with a client certificate — this starts the exporter (projects source
only, against a dead loopback port, so no AWS is involved) with --web.config.file, then:
  - curl: the right credentials get 200 and the exposition; missing or wrong ones get
    401/403 or a failed handshake; plain HTTP fails; TLS 1.1 is refused;
  - a real `prometheus` scraping it with the same credentials (tls_config, basic_auth)
    reports the target up (`up == 1` through its HTTP API), and one scraping it without
    them reports it down.
Certificates are made with openssl in a temporary directory. Only 127.0.0.1 is used.
Ends with "N passed, N failed".
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASSWORD = "scrape-secret"
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok   - " if ok else "FAIL - ") + name + ("" if ok or not detail else ": " + detail))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, **kw)


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    print("timed out waiting for " + what)
    return False


def make_certs(d):
    def ossl(*args):
        r = run(["openssl"] + list(args), cwd=d)
        if r.returncode:
            raise RuntimeError(r.stderr.decode())
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
         "-days", "2", "-subj", "/CN=test-ca")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    for name, cn in (("server", "127.0.0.1"), ("client", "prometheus"), ("rogue", "rogue")):
        ca = "ca" if name != "rogue" else "rogue-ca"
        if name == "rogue":
            ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rogue-ca.key",
                 "-out", "rogue-ca.crt", "-days", "2", "-subj", "/CN=rogue-ca")
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
             name + ".csr", "-subj", "/CN=" + cn)
        extra = ["-extfile", "san.ext"] if name == "server" else []
        ossl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
             "-CAcreateserial", "-out", name + ".crt", "-days", "2", *extra)


def served_serial(port):
    r = run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port], input=b"")
    x = run(["openssl", "x509", "-noout", "-serial"], input=r.stdout)
    return x.stdout.decode().strip()


def rotate_server_cert(d):
    for args in (["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "new.key", "-out", "new.csr",
                  "-subj", "/CN=127.0.0.1"],
                 ["x509", "-req", "-in", "new.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                  "-CAcreateserial", "-out", "new.crt", "-days", "2", "-extfile", "san.ext"]):
        run(["openssl"] + args, cwd=d)
    # key first, then certificate, each by rename: the exporter sees whole files
    os.rename(os.path.join(d, "new.key"), os.path.join(d, "server.key"))
    os.rename(os.path.join(d, "new.crt"), os.path.join(d, "server.crt"))


def bcrypt_hash(password):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import crypt  # Python 3.11 stdlib; libcrypt's bcrypt
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=2 ** 10))


def curl(port, d, cert=True, user=None, extra=()):
    cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", os.path.join(d, "ca.crt"),
           "--max-time", "5"] + list(extra)
    if cert:
        name = cert if isinstance(cert, str) else "client"
        cmd += ["--cert", os.path.join(d, name + ".crt"), "--key", os.path.join(d, name + ".key")]
    if user:
        cmd += ["-u", user]
    cmd.append("https://127.0.0.1:%d/metrics" % port)
    return run(cmd).stdout.decode() or "000"


def prometheus_up(d, port, auth):
    """Scrapes the exporter with a real Prometheus; returns the value of `up` it records."""
    pdir = tempfile.mkdtemp(dir=d)
    pport = free_port()
    tls = ["    scheme: https", "    tls_config:", "      ca_file: %s/ca.crt" % d]
    if auth:
        tls += ["      cert_file: %s/client.crt" % d, "      key_file: %s/client.key" % d]
        with open(os.path.join(pdir, "pw"), "w") as f:
            f.write(PASSWORD)
        tls += ["    basic_auth:", "      username: prometheus", "      password_file: %s/pw" % pdir]
    conf = "\n".join(["global:", "  scrape_interval: 1s", "scrape_configs:",
                      "  - job_name: bce", "    static_configs:",
                      "      - targets: ['127.0.0.1:%d']" % port] + tls) + "\n"
    with open(os.path.join(pdir, "prometheus.yml"), "w") as f:
        f.write(conf)
    p = subprocess.Popen(["prometheus", "--config.file=" + os.path.join(pdir, "prometheus.yml"),
                          "--storage.tsdb.path=" + os.path.join(pdir, "data"),
                          "--web.listen-address=127.0.0.1:%d" % pport],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    value = None
    try:
        def up():
            nonlocal value
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/query?query=up" % pport,
                                            timeout=2) as r:
                    res = json.load(r)["data"]["result"]
                if res:
                    value = res[0]["value"][1]
                    return True
            except OSError:
                pass
            return False
        wait_for(up, 30, "Prometheus to scrape")
    finally:
        p.terminate()
        p.wait(timeout=10)
    return value


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "bedrock-cost-exporter")
    d = tempfile.mkdtemp(prefix="bce-tls-")
    procs = []
    try:
        make_certs(d)
        conf = os.path.join(d, "bce.conf")
        with open(conf, "w") as f:
            f.write('projects: { endpoint = "http://127.0.0.1:9/x"; };\n'
                    'cost_explorer: { enabled = false; };\n'
                    'cloudwatch: { enabled = false; };\nstate_file = "";\n')
        h = bcrypt_hash(PASSWORD)
        cases = {
            "tls": "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
            "mtls": "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                    "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
            "mtls+basic": "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                          "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
                          "basic_auth_users:\n  prometheus: '%s'\n" % h,
        }
        env = dict(os.environ, HOME=d, AWS_EC2_METADATA_DISABLED="true", BEDROCK_API_KEY="x")
        for name, text in cases.items():
            web = os.path.join(d, "web-%s.yml" % name.replace("+", "-"))
            with open(web, "w") as f:
                f.write(text)
            r = run(["promtool", "check", "web-config", web])
            check("%s: promtool check web-config accepts it" % name, r.returncode == 0,
                  r.stdout.decode() + r.stderr.decode())
            port = free_port()
            p = subprocess.Popen([binary, "--config.file=" + conf, "--web.config.file=" + web,
                                  "--web.listen-address=127.0.0.1:%d" % port], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            basic = "prometheus:" + PASSWORD if "basic" in name else None
            wait_for(lambda: curl(port, d, cert=True, user=basic) == "200", 15, "the exporter")
            check("%s: curl with the right credentials gets 200" % name,
                  curl(port, d, cert=True, user=basic) == "200")
            plain = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                         "http://127.0.0.1:%d/metrics" % port]).stdout.decode()
            check("%s: plain HTTP gets no answer" % name, plain == "000", plain)
            check("%s: TLS 1.1 is refused" % name,
                  curl(port, d, user=basic, extra=["--tls-max", "1.1"]) == "000")
            if "mtls" in name:
                got = curl(port, d, cert=False, user=basic)
                check("%s: no client certificate is refused" % name, got in ("403", "000"), got)
                got = curl(port, d, cert="rogue", user=basic)
                check("%s: a certificate from another CA is refused" % name, got in ("403", "000"), got)
            if basic:
                got = curl(port, d, user="prometheus:wrong")
                check("%s: a wrong password gets 401" % name, got == "401", got)
                got = curl(port, d, user=None)
                check("%s: no password gets 401" % name, got == "401", got)
            up = prometheus_up(d, port, auth=True)
            check("%s: a real Prometheus with the credentials scrapes it (up 1)" % name, up == "1", str(up))
            if name == "tls":
                # rotate the certificate under the running exporter: a new one is served
                before = served_serial(port)
                rotate_server_cert(d)
                after = served_serial(port)
                check("tls: a rotated certificate is served without a restart",
                      before and after and before != after, "%s -> %s" % (before, after))
                check("tls: still 200 after the rotation", curl(port, d) == "200")
            if name != "tls":
                up = prometheus_up(d, port, auth=False)
                check("%s: a real Prometheus without them does not (up 0)" % name, up == "0", str(up))
            p.send_signal(signal.SIGTERM)
            check("%s: exporter exits 0" % name, p.wait(timeout=10) == 0)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(d, ignore_errors=True)
    failed = results.count(False)
    print("%d passed, %d failed" % (len(results) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
