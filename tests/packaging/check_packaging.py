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
  deb-test.sh uses them, report such a stage as skipped (or failed, when asked), never passed.

Ends with "N passed, N failed"; exit 1 on any failure. Python standard library only.
"""
import argparse
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, PKG))
    a = ap.parse_args()
    check_unit()
    check_metadata(os.path.abspath(a.binary))
    check_install()
    check_scripts()
    check_systemd_skip()
    check_stage_runner()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
