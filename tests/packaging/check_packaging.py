#!/usr/bin/env python3
"""Fast checks of packaging/ for `make check` (no apt, no root, no network; a few seconds).

    tests/packaging/check_packaging.py [--binary ./bedrock-cost-exporter]

- the systemd unit has every directive the issue asks for, and `systemd-analyze security
  --offline=yes` rates it at most MAX_EXPOSURE (skipped if systemd-analyze is missing);
- packaging/debian/control's Build-Depends and the Dockerfile's BUILD_PACKAGES cover the
  Makefile's build packages; the changelog's version is the Makefile's VERSION; the
  Dockerfile's RUNTIME_PACKAGES are the packages of the binary's NEEDED libraries (dpkg -S);
- `make install` into a temporary DESTDIR (PREFIX=/usr and PREFIX=/usr/local) lays out the
  documented files, rewrites the unit for BINDIR, keeps a changed config on a second install,
  and `make uninstall` removes everything but the configuration;
- the shell scripts parse (bash -n) and pass shellcheck when it is installed;
- deb-test-systemd.sh, where systemd cannot be booted (stubs on PATH: not root, or an nspawn
  that fails), exits 77 and says "SKIPPED", never "passed"; testlib.sh's run_stage/summary, as
  deb-test.sh uses them, report such a stage as skipped (or failed, when asked), never passed;
- packaging/kubernetes/: every manifest parses (PyYAML) and holds what users rely on (the
  StatefulSets' serviceName, selectors, replicas = --total-shards, --shard from the pod
  index, port 19880 "metrics", probes, securityContext; the monitors' selectors and port
  names; the HA StatefulSet = the first one but its name and replica label), kustomization.yaml
  lists every file, the ConfigMap's configuration passes the binary's --check-config for
  every shard, prometheus-agent.yml passes promtool check config.

    --only kubernetes   runs just that group (names: unit metadata install scripts
                        systemd-skip stage-runner kubernetes; repeatable)

Ends with "N passed, N failed"; exit 1 on any failure. Python standard library, plus PyYAML
(python3-yaml) for packaging/kubernetes/ (those checks are skipped, saying so, without it).
"""
import argparse
import copy
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PKG = "bedrock-cost-exporter"
PACKAGING = os.path.join(ROOT, "packaging")
UNIT = os.path.join(PACKAGING, f"{PKG}.service")
MAX_EXPOSURE = 2.0

passed = failed = 0


def check(what, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   - {what}")
    else:
        failed += 1
        print(f"FAIL - {what}" + (f"\n       {detail}" if detail else ""))


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def make_var(name):
    """A variable of the top-level Makefile, as make sees it."""
    p = subprocess.run(["make", "-s", "-C", ROOT, "-pn", "pkgcheck"], capture_output=True, text=True)
    m = re.search(rf"^{name} :?= ?(.*)$", p.stdout, re.M)
    return m.group(1).strip() if m else None


def unit_directives(text):
    d = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        k, v = line.split("=", 1)
        d.setdefault(k, []).append(v)
    return d


def check_unit():
    d = unit_directives(read(UNIT))
    want = {
        "Type": "notify", "NotifyAccess": "main", "User": PKG,
        "EnvironmentFile": f"-/etc/default/{PKG}",
        "ExecStart": f"/usr/bin/{PKG} $ARGS",
        "Restart": "on-failure", "StateDirectory": PKG,
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet": "", "MemoryDenyWriteExecute": "yes",
    }
    for k, v in want.items():
        check(f"unit {k}={v}", d.get(k, [None])[-1] == v, f"found {d.get(k)}")
    check("unit SystemCallFilter=@system-service", "@system-service" in d.get("SystemCallFilter", []))
    rpes = " ".join(d.get("RestartPreventExitStatus", [])).split()
    check("unit RestartPreventExitStatus has 1 (config) and 2 (command line)",
          "1" in rpes and "2" in rpes, f"found {rpes}")
    reload = d.get("ExecReload", [])
    check("unit ExecReload: --check-config first, then kill -HUP $MAINPID",
          len(reload) == 2 and f"/usr/bin/{PKG} --check-config $ARGS" == reload[0]
          and reload[1] == "/bin/kill -HUP $MAINPID", f"found {reload}")
    check("unit has no ReadWritePaths (StateDirectory is enough)", "ReadWritePaths" not in d)
    check("unit WantedBy=multi-user.target", d.get("WantedBy") == ["multi-user.target"])
    sa = shutil.which("systemd-analyze")
    if not sa:
        print("# systemd-analyze not installed: exposure not measured")
        return
    p = subprocess.run([sa, "security", "--offline=yes", "--no-pager", UNIT],
                       capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout + p.stderr)
    score = float(m.group(1)) if m else None
    print(f"# systemd-analyze security --offline=yes packaging/{PKG}.service: {score}")
    check(f"exposure level {score} <= {MAX_EXPOSURE}", score is not None and score <= MAX_EXPOSURE,
          (p.stdout + p.stderr)[-500:])


def control_build_depends():
    text = read(os.path.join(PACKAGING, "debian", "control"))
    m = re.search(r"^Build-Depends:(.*?)(?=^\S)", text, re.M | re.S)
    names = set()
    for item in m.group(1).split(","):
        for alt in item.split("|"):
            alt = re.sub(r"\(.*?\)|<.*?>|\[.*?\]", "", alt).strip()
            if alt:
                names.add(alt)
    return names


def dockerfile_arg(name):
    text = read(os.path.join(PACKAGING, "Dockerfile"))
    m = re.search(rf'^ARG {name}="([^"]*)"', text, re.M)
    return set(m.group(1).split()) if m else set()


def needed_packages(binary):
    """Debian packages owning the libraries the binary links (NEEDED), via ldd + dpkg -S."""
    if not shutil.which("dpkg") or not shutil.which("ldd"):
        return None
    p = subprocess.run(["ldd", binary], capture_output=True, text=True)
    needed = set(re.findall(r"\(NEEDED\).*\[(.*)\]",
                            subprocess.run(["readelf", "-d", binary], capture_output=True,
                                           text=True).stdout))
    pkgs = set()
    for line in p.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", line)
        if not m or m.group(1) not in needed:
            continue
        path = m.group(2)
        real = os.path.join(os.path.dirname(path), os.path.basename(os.path.realpath(path)))
        for cand in (path, real, "/usr" + path, "/usr" + real,
                     path.removeprefix("/usr"), real.removeprefix("/usr")):
            q = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
            if q.returncode == 0:
                pkgs.add(q.stdout.split(":")[0])
                break
        else:
            pkgs.add(f"?{m.group(1)}")
    return pkgs


def check_metadata(binary):
    deb_pkgs = (make_var("DEB_BUILD_PKGS") or "").split()
    check("the Makefile's DEB_BUILD_PKGS is readable", bool(deb_pkgs))
    build = set(deb_pkgs) | {"libcurl4-openssl-dev"}
    # gcc, make, libc6-dev are build-essential: implied for Debian builds
    bd = control_build_depends()
    missing = sorted(build - bd - {"gcc", "make", "libc6-dev"})
    check("debian/control Build-Depends cover the Makefile's build packages", not missing,
          f"missing: {missing}")
    check("debian/control Build-Depends on debhelper-compat (= 13)",
          "debhelper-compat (= 13)" in read(os.path.join(PACKAGING, "debian", "control")))
    version = make_var("VERSION")
    cl = read(os.path.join(PACKAGING, "debian", "changelog")).split("\n", 1)[0]
    m = re.match(rf"^{PKG} \(([^)]*)\)", cl)
    upstream = m.group(1).rsplit("-", 1)[0] if m else None
    check(f"debian/changelog's version {upstream} is the Makefile's VERSION {version}",
          upstream == version)
    df_build = dockerfile_arg("BUILD_PACKAGES")
    check("Dockerfile BUILD_PACKAGES = the Makefile's build packages", df_build == build,
          f"missing {sorted(build - df_build)}, extra {sorted(df_build - build)}")
    want_rt = needed_packages(binary)
    if want_rt is None:
        print("# dpkg/ldd missing: runtime packages not compared")
    else:
        want_rt |= {"ca-certificates"}
        have = dockerfile_arg("RUNTIME_PACKAGES")
        check("Dockerfile RUNTIME_PACKAGES = the binary's libraries' packages + ca-certificates",
              have == want_rt, f"missing {sorted(want_rt - have)}, extra {sorted(have - want_rt)}")
    deps = re.search(r"^Depends:(.*)$", read(os.path.join(PACKAGING, "debian", "control")), re.M)
    check("debian/control Depends has ${shlibs:Depends}, ${misc:Depends}, procps (for /bin/kill)",
          deps and all(x in deps.group(1) for x in ("${shlibs:Depends}", "${misc:Depends}", "procps")))
    default = read(os.path.join(PACKAGING, "default"))
    check("packaging/default sets ARGS=\"\"", re.search(r'^ARGS=""$', default, re.M) is not None)
    check("packaging/default mentions BEDROCK_API_KEY and AWS_ACCESS_KEY_ID",
          "BEDROCK_API_KEY" in default and "AWS_ACCESS_KEY_ID" in default)


def make_install(destdir, *args):
    return subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={destdir}", *args],
                          capture_output=True, text=True)


def check_install():
    with tempfile.TemporaryDirectory(prefix="bce-install-") as d:
        for prefix, unitdir in (("/usr", "/lib/systemd/system"),
                                ("/usr/local", "/usr/local/lib/systemd/system")):
            dest = os.path.join(d, prefix.strip("/").replace("/", "_"))
            p = make_install(dest, f"PREFIX={prefix}")
            check(f"make install PREFIX={prefix} DESTDIR=...", p.returncode == 0, p.stderr[-800:])
            f = lambda path: os.path.join(dest, path.lstrip("/"))  # noqa: E731
            files = {
                f"{prefix}/bin/{PKG}": 0o755,
                f"/etc/{PKG}/{PKG}.conf": 0o644,
                f"/etc/default/{PKG}": 0o640,
                f"{unitdir}/{PKG}.service": 0o644,
                f"{prefix}/share/man/man1/{PKG}.1": 0o644,
                f"{prefix}/share/{PKG}/examples/{PKG}.conf": 0o644,
            }
            for ex in ("web-config.yml", "prometheus-scrape.yml"):
                if os.path.exists(os.path.join(ROOT, "etc", ex)):
                    files[f"{prefix}/share/{PKG}/examples/{ex}"] = 0o644
            for top, _, names in os.walk(os.path.join(ROOT, "dashboards")):
                for n in names:
                    if n.endswith((".json", ".yml", ".yaml", ".md")):
                        rel = os.path.relpath(os.path.join(top, n), ROOT)
                        files[f"{prefix}/share/{PKG}/{rel}"] = 0o644
            for path, mode in files.items():
                st = os.stat(f(path)) if os.path.exists(f(path)) else None
                check(f"  {path} mode {mode:o}", st and stat.S_IMODE(st.st_mode) == mode,
                      f"found {oct(stat.S_IMODE(st.st_mode)) if st else 'nothing'}")
            unit = read(f(f"{unitdir}/{PKG}.service"))
            check(f"  unit ExecStart={prefix}/bin/{PKG} $ARGS",
                  f"\nExecStart={prefix}/bin/{PKG} $ARGS\n" in unit)
            man = read(f(f"{prefix}/share/man/man1/{PKG}.1"))
            esc = lambda s: s.replace("-", "\\-")  # noqa: E731
            check("  man page names the installed share directory",
                  esc(f"{prefix}/share/{PKG}/") in man)
            # a changed config survives a second install
            with open(f(f"/etc/{PKG}/{PKG}.conf"), "a", encoding="utf-8") as fh:
                fh.write("# local change\n")
            p = make_install(dest, f"PREFIX={prefix}")
            check("  second install keeps the changed config",
                  p.returncode == 0 and "# local change" in read(f(f"/etc/{PKG}/{PKG}.conf")))
            p = subprocess.run(["make", "-s", "-C", ROOT, "uninstall", f"DESTDIR={dest}",
                                f"PREFIX={prefix}"], capture_output=True, text=True)
            left = sorted(os.path.relpath(os.path.join(t, n), dest)
                          for t, _, ns in os.walk(dest) for n in ns)
            check("  make uninstall leaves only the configuration",
                  p.returncode == 0 and left == sorted([f"etc/default/{PKG}", f"etc/{PKG}/{PKG}.conf"]),
                  f"left: {left}")


def check_scripts():
    scripts = [os.path.join(PACKAGING, n) for n in sorted(os.listdir(PACKAGING)) if n.endswith(".sh")]
    scripts += [os.path.join(PACKAGING, "debian", n) for n in ("postinst", "postrm")]
    for s in scripts:
        p = subprocess.run(["bash", "-n", s], capture_output=True, text=True)
        check(f"bash -n {os.path.relpath(s, ROOT)}", p.returncode == 0, p.stderr)
    sc = shutil.which("shellcheck")
    if sc:
        p = subprocess.run([sc, "-S", "warning", *scripts], capture_output=True, text=True)
        check("shellcheck -S warning packaging scripts", p.returncode == 0, p.stdout[-1500:])
    else:
        print("# shellcheck not installed: skipped")


SKIP_STATUS = 77  # packaging/testlib.sh


def write_exec(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o755)


def check_systemd_skip():
    """deb-test-systemd.sh where systemd cannot be booted. Stubs first on PATH stand in for
    id, dpkg-query (everything installed), apt-get and apt-cache (must not run), debootstrap
    and systemd-nspawn (fails as it does without privileges): nothing is installed, booted,
    downloaded or written outside a temporary directory, as root or not."""
    script = os.path.join(PACKAGING, "deb-test-systemd.sh")
    with tempfile.TemporaryDirectory(prefix="bce-systemd-skip-") as d:
        stubs = os.path.join(d, "bin")
        os.mkdir(stubs)
        write_exec(os.path.join(stubs, "dpkg-query"), "#!/bin/sh\necho 'install ok installed'\n")
        for tool in ("apt-get", "apt-cache"):
            write_exec(os.path.join(stubs, tool),
                       f"#!/bin/sh\necho '{tool} called by the skip check' >&2\nexit 100\n")
        # debootstrap --variant=... --include=... SUITE TARGET MIRROR
        write_exec(os.path.join(stubs, "debootstrap"), '#!/bin/sh\nmkdir -p "$4/etc"\n')
        write_exec(os.path.join(stubs, "systemd-nspawn"),
                   "#!/bin/sh\necho 'Failed to create /init.scope control group: "
                   "Operation not permitted (stub)' >&2\nexit 1\n")
        deb = os.path.join(d, f"{PKG}_0.0.0-1_amd64.deb")
        with open(deb, "wb") as f:
            f.write(b"not a package\n")
        env = dict(os.environ, PATH=stubs + os.pathsep + os.environ.get("PATH", ""),
                   BCE_DEB_TEST_SYSTEMD_MODE="nspawn", BCE_DEB_TEST_WORK=os.path.join(d, "work"))
        for uid, why, reason in (("1000", "not root", "needs root"),
                                 ("0", "nspawn cannot boot", "systemd-nspawn exited with status 1")):
            write_exec(os.path.join(stubs, "id"),
                       f'#!/bin/sh\n[ "$1" = -u ] && {{ echo {uid}; exit 0; }}\nexec /usr/bin/id "$@"\n')
            try:
                p = subprocess.run(["bash", script, deb], env=env, capture_output=True, text=True,
                                   timeout=60)
                out, rc = p.stdout + p.stderr, p.returncode
            except subprocess.TimeoutExpired as e:
                out, rc = f"timed out: {e.stdout}", None
            check(f"deb-test-systemd.sh, {why}: exit {SKIP_STATUS} (skipped), got {rc}",
                  rc == SKIP_STATUS, out[-800:])
            check(f"deb-test-systemd.sh, {why}: says SKIPPED: ...{reason}...",
                  re.search(rf"^SKIPPED: .*{re.escape(reason)}", out, re.M) is not None, out[-800:])
            check(f"deb-test-systemd.sh, {why}: ends with a summary that says skipped",
                  out.rstrip().splitlines()[-1:] == ["skipped: systemd stage not run"], out[-800:])
            check(f"deb-test-systemd.sh, {why}: no \"passed\", no ok line",
                  "passed" not in out and not re.search(r"^ok ", out, re.M), out[-800:])
            check(f"deb-test-systemd.sh, {why}: apt-get and apt-cache not called",
                  "called by the skip check" not in out, out[-800:])


def check_stage_runner():
    """testlib.sh's run_stage + summary, as deb-test.sh runs the systemd stage."""
    lib = os.path.join(PACKAGING, "testlib.sh")
    with tempfile.TemporaryDirectory(prefix="bce-stage-") as d:
        stages = {
            "skips": f'echo "SKIPPED: no systemd here"; echo "skipped: systemd stage not run"; exit {SKIP_STATUS}',
            "passes": 'echo "ok   - one"; echo "ok   - two"; echo "2 passed, 0 failed"',
            "fails": 'echo "ok   - one"; echo "FAIL - two"; echo "1 passed, 1 failed"; exit 1',
            "silent": "exit 0",
            "crashes": "exit 3",
            "skips-late": f'echo "ok   - one"; echo "SKIPPED: too late"; exit {SKIP_STATUS}',
        }
        for name, body in stages.items():
            write_exec(os.path.join(d, name), f"#!/bin/sh\n{body}\n")

        def run(stage, skip_is_failure=False):
            code = (f'. "{lib}"; ok "part one"; '
                    f'{"SKIP_IS_FAILURE=1; " if skip_is_failure else ""}'
                    f'run_stage "systemd stage" "{os.path.join(d, stage)}"; summary; [ "$failed" = 0 ]')
            p = subprocess.run(["bash", "-c", code], capture_output=True, text=True, timeout=30)
            return p.returncode, p.stdout + p.stderr

        rc, out = run("skips")
        last = out.rstrip().splitlines()[-1]
        check("run_stage: a skipped stage is shown (SKIPPED: ...) and counted as skipped",
              rc == 0 and "SKIPPED: no systemd here" in out
              and last == "1 passed, 0 failed, 1 skipped (systemd stage: no systemd here)", out)
        rc, out = run("skips", skip_is_failure=True)
        check("run_stage: with SKIP_IS_FAILURE=1 a skipped stage fails",
              rc == 1 and out.rstrip().endswith("1 passed, 1 failed"), out)
        rc, out = run("passes")
        check("run_stage: a passing stage's checks are added, its own summary hidden",
              rc == 0 and out.rstrip().splitlines()[-1] == "3 passed, 0 failed"
              and "2 passed, 0 failed" not in out, out)
        for stage, what, want in (
                ("fails", "a stage with a FAIL line", "2 passed, 1 failed"),
                ("silent", "a stage that checks nothing", "1 passed, 1 failed"),
                ("crashes", "a stage that exits 3 without a FAIL line", "1 passed, 1 failed"),
                ("skips-late", "a stage that exits 77 after a check", "2 passed, 1 failed")):
            rc, out = run(stage)
            check(f"run_stage: {what} fails the run ({want})",
                  rc == 1 and out.rstrip().splitlines()[-1] == want, out)


# ---- packaging/kubernetes/ ---------------------------------------------------------------

K8S = os.path.join(PACKAGING, "kubernetes")
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"  # set by the StatefulSet controller, >= 1.28
METRICS_PORT = 19880
# file -> kind; kustomization.yaml and prometheus-agent.yml are not Kubernetes objects
K8S_KINDS = {
    "namespace.yaml": "Namespace", "serviceaccount.yaml": "ServiceAccount",
    "configmap.yaml": "ConfigMap", "service.yaml": "Service",
    "statefulset.yaml": "StatefulSet", "statefulset-ha.yaml": "StatefulSet",
    "podmonitor.yaml": "PodMonitor", "servicemonitor.yaml": "ServiceMonitor",
}


def meta_label(key):
    """The name Prometheus' Kubernetes discovery gives pod label @key."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


def matches(selector, labels):
    """A non-empty matchLabels selector selects @labels."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def dockerfile_ids():
    text = read(os.path.join(PACKAGING, "Dockerfile"))
    uid = re.search(r"useradd\b.*--uid (\d+)", text)
    gid = re.search(r"groupadd\b.*--gid (\d+)", text)
    return int(uid.group(1)) if uid else None, int(gid.group(1)) if gid else None


def flag_values(args):
    """["--a=1", "--b"] -> {"--a": "1", "--b": ""}"""
    return dict((a.partition("=")[0], a.partition("=")[2]) for a in args)


def check_statefulset(f, sts, svc, sa, cm, ids):
    """The fields of one StatefulSet that users rely on. Returns (pod labels, flags)."""
    spec = sts.get("spec") or {}
    tpl = spec.get("template") or {}
    labels = (tpl.get("metadata") or {}).get("labels") or {}
    pod = tpl.get("spec") or {}
    check(f"{f}: apps/v1 StatefulSet", sts.get("apiVersion") == "apps/v1")
    check(f"{f}: serviceName is the headless Service {svc['metadata']['name']}",
          spec.get("serviceName") == svc["metadata"]["name"], f"found {spec.get('serviceName')}")
    sel = (spec.get("selector") or {}).get("matchLabels") or {}
    check(f"{f}: selector.matchLabels {sel} match the template's labels",
          matches(sel, labels) and not spec["selector"].get("matchExpressions"), f"labels {labels}")
    check(f"{f}: the Service's selector matches the template's labels",
          matches((svc.get("spec") or {}).get("selector"), labels), f"labels {labels}")
    check(f"{f}: podManagementPolicy Parallel", spec.get("podManagementPolicy") == "Parallel")
    check(f"{f}: serviceAccountName is the ServiceAccount {sa['metadata']['name']}",
          pod.get("serviceAccountName") == sa["metadata"]["name"])
    c = next((c for c in pod.get("containers") or [] if c.get("name") == PKG), None)
    check(f"{f}: a container named {PKG}", c is not None)
    if c is None:
        return labels, {}
    flags = flag_values(c.get("args") or [])
    total = flags.get("--total-shards", "")
    check(f"{f}: replicas {spec.get('replicas')} = --total-shards={total}",
          total.isdigit() and int(total) == spec.get("replicas"), f"args {c.get('args')}")
    env = {e.get("name"): e for e in c.get("env") or []}
    m = re.fullmatch(r"\$\((\w+)\)", flags.get("--shard", ""))
    field = ((env.get(m.group(1)) or {}).get("valueFrom") or {}).get("fieldRef", {}).get(
        "fieldPath") if m else None
    check(f"{f}: --shard=$(VAR), VAR from the downward API metadata.labels['{POD_INDEX_LABEL}']",
          field == f"metadata.labels['{POD_INDEX_LABEL}']", f"args {c.get('args')}, env {c.get('env')}")
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    check(f"{f}: container port {METRICS_PORT} named metrics", ports.get("metrics") == METRICS_PORT,
          f"found {c.get('ports')}")
    for probe, path in (("readinessProbe", "/-/ready"), ("livenessProbe", "/-/healthy")):
        get = (c.get(probe) or {}).get("httpGet") or {}
        port = ports.get(get.get("port"), get.get("port"))
        check(f"{f}: {probe} GET {path} on port {METRICS_PORT}",
              get.get("path") == path and port == METRICS_PORT, f"found {c.get(probe)}")
    psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
    eff = lambda k: csc.get(k, psc.get(k))  # noqa: E731
    uid, gid = ids
    check(f"{f}: runAsNonRoot, runAsUser {uid} and runAsGroup {gid} (the Dockerfile's user)",
          eff("runAsNonRoot") is True and eff("runAsUser") == uid and eff("runAsGroup") == gid,
          f"pod {psc}, container {csc}")
    check(f"{f}: readOnlyRootFilesystem, no privilege escalation, capabilities drop ALL",
          csc.get("readOnlyRootFilesystem") is True and csc.get("allowPrivilegeEscalation") is False
          and "ALL" in ((csc.get("capabilities") or {}).get("drop") or []), f"found {csc}")
    res = c.get("resources") or {}
    check(f"{f}: resources: cpu and memory requests, a memory limit",
          {"cpu", "memory"} <= set(res.get("requests") or {}) and "memory" in (res.get("limits") or {}),
          f"found {res}")
    cfg = flags.get("--config.file", f"/etc/{PKG}/{PKG}.conf")
    vols = {v.get("name"): v for v in pod.get("volumes") or []}
    mount = next((m for m in c.get("volumeMounts") or []
                  if m.get("mountPath") == os.path.dirname(cfg)), None)
    ref = ((vols.get(mount.get("name")) or {}).get("configMap") or {}) if mount else {}
    check(f"{f}: --config.file={cfg} is a key of the ConfigMap mounted at {os.path.dirname(cfg)}",
          ref.get("name") == cm["metadata"]["name"]
          and os.path.basename(cfg) in (cm.get("data") or {}), f"mount {mount}, volume {ref}")
    return labels, flags


def check_kubernetes(binary):
    try:
        import yaml
    except ImportError:
        print("# PyYAML (python3-yaml) not installed: packaging/kubernetes/ not checked (skipped)")
        return
    files = sorted(n for n in os.listdir(K8S) if n.endswith((".yaml", ".yml")))
    want = sorted(list(K8S_KINDS) + ["kustomization.yaml", "prometheus-agent.yml"])
    check("packaging/kubernetes/ has the documented files", files == want,
          f"missing {sorted(set(want) - set(files))}, extra {sorted(set(files) - set(want))}")
    docs = {}
    for n in files:
        err = ""
        try:
            with open(os.path.join(K8S, n), encoding="utf-8") as fh:
                d = [x for x in yaml.safe_load_all(fh) if x is not None]
        except yaml.YAMLError as e:
            d, err = [], str(e)
        check(f"kubernetes/{n} parses as one YAML mapping", len(d) == 1 and isinstance(d[0], dict), err)
        docs[n] = d[0] if len(d) == 1 and isinstance(d[0], dict) else {}
    for n, kind in K8S_KINDS.items():
        md = docs.get(n, {}).get("metadata") or {}
        check(f"kubernetes/{n}: kind {kind}, a metadata.name, no namespace (kustomization.yaml sets it)",
              docs.get(n, {}).get("kind") == kind and bool(md.get("name")) and "namespace" not in md,
              f"found kind {docs.get(n, {}).get('kind')}, metadata {md}")
    if any(not docs.get(n, {}).get("metadata", {}).get("name") for n in K8S_KINDS):
        return
    ns, sa, cm, svc = (docs[n] for n in ("namespace.yaml", "serviceaccount.yaml",
                                           "configmap.yaml", "service.yaml"))
    sts_a, sts_b = docs["statefulset.yaml"], docs["statefulset-ha.yaml"]

    # Service: headless, port "metrics"
    sports = {p.get("name"): p for p in (svc.get("spec") or {}).get("ports") or []}
    check("kubernetes/service.yaml: headless (clusterIP None)", svc["spec"].get("clusterIP") == "None")
    check(f"kubernetes/service.yaml: port {METRICS_PORT} named metrics",
          (sports.get("metrics") or {}).get("port") == METRICS_PORT, f"found {list(sports.values())}")

    # the StatefulSets, and the HA one being the first but for its name and replica label
    ids = dockerfile_ids()
    labels_a, flags_a = check_statefulset("kubernetes/statefulset.yaml", sts_a, svc, sa, cm, ids)
    labels_b, _ = check_statefulset("kubernetes/statefulset-ha.yaml", sts_b, svc, sa, cm, ids)
    target = sports.get("metrics", {}).get("targetPort")
    cports = {p.get("name"): p.get("containerPort") for c in
              sts_a["spec"]["template"]["spec"].get("containers") or [] for p in c.get("ports") or []}
    check("kubernetes/service.yaml: port metrics targets the container's port 19880",
          cports.get(target, target) == METRICS_PORT, f"targetPort {target}")
    sel_a = sts_a["spec"].get("selector", {}).get("matchLabels") or {}
    sel_b = sts_b["spec"].get("selector", {}).get("matchLabels") or {}
    differ = [k for k in sel_a if sel_b.get(k) != sel_a[k]]
    check("kubernetes/statefulset-ha.yaml: its selector is statefulset.yaml's but for one replica label "
          "(the controllers do not share pods)", set(sel_a) == set(sel_b) and len(differ) == 1,
          f"{sel_a} vs {sel_b}")
    replica_key = differ[0] if len(differ) == 1 else None
    norm = copy.deepcopy(sts_b)
    norm["metadata"]["name"] = sts_a["metadata"]["name"]
    for lab in (norm["metadata"].get("labels"), norm["spec"].get("selector", {}).get("matchLabels"),
                norm["spec"]["template"]["metadata"].get("labels")):
        if lab is not None and replica_key in lab:
            lab[replica_key] = sel_a[replica_key]
    check("kubernetes/statefulset-ha.yaml is statefulset.yaml but for its name and replica label",
          norm == sts_a and sts_b["metadata"]["name"] != sts_a["metadata"]["name"])

    # the monitors: selectors, port names, interval, the shard label
    pod_meta = {meta_label(k) for lab in (labels_a, labels_b) for k in lab}
    pod_meta.add(meta_label(POD_INDEX_LABEL))
    for n, eps_key, selected, port_names in (
            ("podmonitor.yaml", "podMetricsEndpoints", [labels_a, labels_b], set(cports)),
            ("servicemonitor.yaml", "endpoints", [(svc.get("metadata") or {}).get("labels") or {}],
             set(sports))):
        mon = docs[n]
        spec = mon.get("spec") or {}
        check(f"kubernetes/{n}: apiVersion monitoring.coreos.com/v1",
              mon.get("apiVersion") == "monitoring.coreos.com/v1")
        sel = (spec.get("selector") or {}).get("matchLabels") or {}
        what = "both StatefulSets' pod labels" if n == "podmonitor.yaml" else "the Service's labels"
        check(f"kubernetes/{n}: selector {sel} matches {what}",
              all(matches(sel, lab) for lab in selected))
        eps = spec.get(eps_key) or []
        check(f"kubernetes/{n}: every endpoint's port is a port name ({sorted(port_names)}), "
              "interval 60s",
              bool(eps) and all(e.get("port") in port_names and e.get("interval") == "60s"
                                for e in eps), f"found {eps}")
        rl = [r for e in eps for r in e.get("relabelings") or []]
        check(f"kubernetes/{n}: relabeling {meta_label(POD_INDEX_LABEL)} -> shard",
              any(r.get("sourceLabels") == [meta_label(POD_INDEX_LABEL)]
                  and r.get("targetLabel") == "shard" for r in rl), f"found {rl}")
        if replica_key:
            check(f"kubernetes/{n}: relabeling {meta_label(replica_key)} -> replica",
                  any(r.get("sourceLabels") == [meta_label(replica_key)]
                      and r.get("targetLabel") == "replica" for r in rl), f"found {rl}")
        unknown = sorted({s for r in rl for s in r.get("sourceLabels") or []
                          if s.startswith("__meta_kubernetes_pod_label_")} - pod_meta)
        check(f"kubernetes/{n}: every pod label it reads is a label of the pods", not unknown,
              f"not a pod label: {unknown}")

    # ServiceAccount: IRSA example
    role = ((sa.get("metadata") or {}).get("annotations") or {}).get("eks.amazonaws.com/role-arn", "")
    check("kubernetes/serviceaccount.yaml: an IRSA annotation eks.amazonaws.com/role-arn "
          "with a role ARN",
          re.fullmatch(r"arn:aws:iam::\d{12}:role/\S+", role) is not None, f"found {role!r}")

    # kustomization.yaml lists every manifest; one monitor; the image's tag is VERSION
    kz_text = read(os.path.join(K8S, "kustomization.yaml"))
    kz = docs["kustomization.yaml"]
    active = kz.get("resources") or []
    commented = re.findall(r"^\s*#\s*-\s*(\S+\.ya?ml)\s*$", kz_text, re.M)
    check("kubernetes/kustomization.yaml lists every manifest (a resource, or an alternative "
          "commented out)",
          sorted(set(active) | set(commented)) == sorted(K8S_KINDS) and len(active) == len(set(active)),
          f"resources {active}, commented {commented}")
    core = {"namespace.yaml", "serviceaccount.yaml", "configmap.yaml", "service.yaml",
            "statefulset.yaml"}
    check("kubernetes/kustomization.yaml: namespace, serviceaccount, configmap, service, "
          "statefulset are resources", core <= set(active), f"resources {active}")
    check("kubernetes/kustomization.yaml: exactly one of podmonitor.yaml and servicemonitor.yaml "
          "is a resource",
          len({"podmonitor.yaml", "servicemonitor.yaml"} & set(active)) == 1, f"resources {active}")
    check(f"kubernetes/kustomization.yaml: namespace is the Namespace {ns['metadata']['name']}",
          kz.get("namespace") == ns["metadata"]["name"])
    image = next((c.get("image", "") for c in sts_a["spec"]["template"]["spec"]["containers"]
                  if c.get("name") == PKG), "")
    img = next((i for i in kz.get("images") or [] if i.get("name") == image.split(":")[0]), {})
    version = make_var("VERSION")
    check(f"kubernetes/kustomization.yaml: images sets the StatefulSets' image {image.split(':')[0]} "
          f"to newTag {version} (VERSION)", bool(img.get("newName")) and img.get("newTag") == version
          and image == f"{image.split(':')[0]}:{version}", f"found {img}, image {image}")
    kubectl = shutil.which("kubectl")
    if kubectl:
        p = subprocess.run([kubectl, "kustomize", K8S], capture_output=True, text=True, timeout=60)
        check("kubectl kustomize packaging/kubernetes builds, with the image renamed",
              p.returncode == 0 and f"image: {img.get('newName')}:{img.get('newTag')}" in p.stdout,
              p.stderr[-800:])
    else:
        print("# kubectl not installed: kustomize build not tried (skipped)")

    # the ConfigMap's configuration: S3 state per shard, and the binary's --check-config
    conf_name = os.path.basename(flags_a.get("--config.file", f"/etc/{PKG}/{PKG}.conf"))
    conf = (cm.get("data") or {}).get(conf_name, "")
    m = re.search(r'^\s*state_file\s*=\s*"([^"]*)"', conf, re.M)
    check("kubernetes/configmap.yaml: state_file is s3:// with {shard} and {total_shards}",
          m is not None and m.group(1).startswith("s3://")
          and "{shard}" in m.group(1) and "{total_shards}" in m.group(1), f"found {m and m.group(1)}")
    total = int(flags_a["--total-shards"]) if flags_a.get("--total-shards", "").isdigit() else 1
    if not os.access(binary, os.X_OK):
        print(f"# {binary} not built: the ConfigMap's configuration not checked (skipped)")
    else:
        with tempfile.TemporaryDirectory(prefix="bce-k8s-") as d:
            path = os.path.join(d, conf_name)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(conf)
            for shard in range(total):
                p = subprocess.run([binary, "--check-config", f"--config.file={path}",
                                    f"--shard={shard}", f"--total-shards={total}"],
                                   capture_output=True, text=True, timeout=60)
                out = p.stdout + p.stderr
                new = re.search(r'unknown key "organization"|unknown flag --(shard|total-shards)\b', out)
                if new:
                    shown = os.path.relpath(binary, ROOT) if binary.startswith(ROOT + os.sep) else binary
                    print(f"# {shown} --check-config answers '{new.group(0)}': "
                          "this build has no organization support yet; the ConfigMap's "
                          "configuration not checked (skipped)")
                    break
                check(f"kubernetes/configmap.yaml's configuration passes --check-config --shard={shard} "
                      f"--total-shards={total}", p.returncode == 0, out[-800:])

    # prometheus-agent.yml: one shard's replicas, remote write, promtool
    ag = docs["prometheus-agent.yml"]
    check("kubernetes/prometheus-agent.yml: scrape_interval 60s, remote_write to /api/v1/write, "
          "no rules (agent mode has none)", (ag.get("global") or {}).get("scrape_interval") == "60s"
          and bool(ag.get("remote_write")) and "rule_files" not in ag and "alerting" not in ag
          and all(str(r.get("url", "")).endswith("/api/v1/write") for r in ag["remote_write"]))
    sts_of = {lab.get(replica_key): s["metadata"]["name"]
              for lab, s in ((labels_a, sts_a), (labels_b, sts_b))}
    statics = [sc for job in ag.get("scrape_configs") or [] for sc in job.get("static_configs") or []]
    bad = []
    for sc in statics:
        lab = sc.get("labels") or {}
        want_host = (f"{sts_of.get(lab.get('replica'))}-{lab.get('shard')}.{svc['metadata']['name']}."
                     f"{ns['metadata']['name']}.svc:{METRICS_PORT}")
        if not str(lab.get("shard", "")).isdigit() or sc.get("targets") != [want_host]:
            bad.append((sc.get("targets"), lab, want_host))
    check("kubernetes/prometheus-agent.yml: each target is a StatefulSet pod's DNS name, "
          "labelled with its shard and replica", bool(statics) and not bad, f"{bad}")
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "config", os.path.join(K8S, "prometheus-agent.yml")],
                           capture_output=True, text=True, timeout=60)
        check("promtool check config kubernetes/prometheus-agent.yml", p.returncode == 0,
              (p.stdout + p.stderr)[-800:])
    else:
        print("# promtool not installed: prometheus-agent.yml not checked by it (skipped)")

    readme = read(os.path.join(PACKAGING, "README.md"))
    missing = [n for n in files if n not in readme]
    check("packaging/README.md names every file of packaging/kubernetes/", not missing,
          f"missing: {missing}")


def main():
    groups = {
        "unit": lambda b: check_unit(),
        "metadata": check_metadata,
        "install": lambda b: check_install(),
        "scripts": lambda b: check_scripts(),
        "systemd-skip": lambda b: check_systemd_skip(),
        "stage-runner": lambda b: check_stage_runner(),
        "kubernetes": check_kubernetes,
    }
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, PKG))
    ap.add_argument("--only", action="append", choices=sorted(groups),
                    help="run only this group of checks (repeatable)")
    a = ap.parse_args()
    for name, run in groups.items():
        if not a.only or name in a.only:
            run(os.path.abspath(a.binary))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
