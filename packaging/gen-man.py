#!/usr/bin/env python3
"""Generate bedrock-cost-exporter(1) from the binary's own --help and --version.

    packaging/gen-man.py [--binary ./bedrock-cost-exporter] [--output packaging/bedrock-cost-exporter.1]
    packaging/gen-man.py --check [--lint]     # exit 1 (with a diff) if the committed page differs

Flags, configuration keys (type, default, range, help), HTTP endpoints, signals and exit
status come from `--help`; the version from `--version`. Only prose that --help does not
carry (description, environment, files, examples) is written here. The parser is strict:
a --help line it does not understand is an error, so the page cannot silently lose anything.
Python standard library only.
"""
import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NAME = "bedrock-cost-exporter"


class HelpFormatError(Exception):
    pass


def run(binary, flag):
    p = subprocess.run([binary, flag], capture_output=True, text=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    if p.returncode != 0:
        raise HelpFormatError(f"{binary} {flag} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


FLAG_RE = re.compile(r"^  (--[a-z][a-z0-9.-]*)(=VALUE)?\s{2,}(.*?)(?: \(default: (.*)\))?$")
KEY_RE = re.compile(r"^  ([a-z_][a-z0-9_.]*)\s+(boolean|list|string|integer|number)\s+"
                    r"default (.*?)(?:, allowed (.*))?$")
KEY_HELP_RE = re.compile(r"^      (\S.*)$")


def parse_help(text):
    """Split --help into its sections; every line must be accounted for."""
    lines = text.rstrip("\n").split("\n")
    h = {"usage": None, "description": [], "flags": [], "keys": [], "endpoints": None,
         "signals": "", "exit": ""}
    i = 0

    def blank_or_end(j):
        return j >= len(lines) or lines[j].strip() == ""

    if not lines or not lines[0].startswith("usage: "):
        raise HelpFormatError("first line is not 'usage: ...'")
    h["usage"] = lines[0][len("usage: "):]
    i = 1
    while i < len(lines):
        line = lines[i]
        if line.strip() == "":
            i += 1
        elif line == "Flags:":
            i += 1
            while not blank_or_end(i):
                m = FLAG_RE.match(lines[i])
                if not m:
                    raise HelpFormatError(f"unparsed flag line {i + 1}: {lines[i]!r}")
                h["flags"].append({"name": m.group(1), "value": bool(m.group(2)),
                                   "help": m.group(3), "default": m.group(4)})
                i += 1
        elif line.startswith("Configuration file keys"):
            i += 1
            while not blank_or_end(i):
                m = KEY_RE.match(lines[i])
                if not m:
                    raise HelpFormatError(f"unparsed key line {i + 1}: {lines[i]!r}")
                key = {"name": m.group(1), "type": m.group(2), "default": m.group(3),
                       "allowed": m.group(4), "help": []}
                i += 1
                while i < len(lines) and KEY_HELP_RE.match(lines[i]):
                    key["help"].append(KEY_HELP_RE.match(lines[i]).group(1))
                    i += 1
                if not key["help"]:
                    raise HelpFormatError(f"key {key['name']} has no help line")
                h["keys"].append(key)
        elif line.startswith("HTTP endpoints: "):
            h["endpoints"] = [e.strip() for e in line[len("HTTP endpoints: "):].split(", ")]
            i += 1
        elif line.startswith("Signals: ") or line.startswith("Exit status: "):
            field = "signals" if line.startswith("Signals: ") else "exit"
            para = [line.split(": ", 1)[1]]
            i += 1
            while not blank_or_end(i):
                para.append(lines[i].strip())
                i += 1
            h[field] = " ".join(para)
        elif not h["flags"] and not h["keys"]:
            h["description"].append(line.strip())
            i += 1
        else:
            raise HelpFormatError(f"unexpected --help line {i + 1}: {line!r}")
    for field in ("flags", "keys", "endpoints", "signals", "exit"):
        if not h[field]:
            raise HelpFormatError(f"--help has no {field} section")
    return h


def esc(s):
    """Escape text for roff: backslashes, hyphens (so options copy-paste), leading dots."""
    s = s.replace("\\", "\\e").replace("-", "\\-")
    if s.startswith(".") or s.startswith("'"):
        s = "\\&" + s
    return s


def para(text):
    return [esc(text)]


def exit_items(text):
    """'0 success; 1 configuration ...; 2 invalid command line.' -> [(code, meaning)]"""
    items = []
    for part in text.rstrip(".").split("; "):
        m = re.match(r"^(\d+) (.*)$", part.strip())
        if not m:
            raise HelpFormatError(f"exit status item not 'N meaning': {part!r}")
        items.append((m.group(1), m.group(2)))
    return items


def key_default(h, name):
    for k in h["keys"]:
        if k["name"] == name:
            return k["default"].strip('"')
    raise HelpFormatError(f"--help lists no key {name}")


def flag_default(h, name):
    for f in h["flags"]:
        if f["name"] == name:
            return f["default"]
    raise HelpFormatError(f"--help lists no flag {name}")


def render(h, version):
    conf = flag_default(h, "--config.file")
    listen = flag_default(h, "--web.listen-address")
    metrics_path = flag_default(h, "--web.telemetry-path")
    state = key_default(h, "state_file")
    api_env = key_default(h, "projects.api_key_env")
    out = []
    w = out.append
    w(f'.\\" Generated by packaging/gen-man.py from `{NAME} --help`; do not edit.')
    w(f'.\\" Regenerate with `make man`; `packaging/gen-man.py --check` compares.')
    w(f'.TH BEDROCK\\-COST\\-EXPORTER 1 "" "{esc(NAME)} {esc(version)}" "User Commands"')
    w(".\\\" no hyphenation, ragged right: paths and keys stay whole")
    w(".nh")
    w(".ad l")
    w(".SH NAME")
    w(f"{esc(NAME)} \\- {esc(h['description'][0].rstrip('.')) if h['description'] else ''}")
    w(".SH SYNOPSIS")
    w(f"\\fB{esc(NAME)}\\fR [\\fIflags\\fR]")
    w(".SH DESCRIPTION")
    for d in h["description"][1:]:
        w(esc(d))
    w(esc(f"{NAME} polls the Bedrock Projects API and AWS Cost Explorer in the background, keeps "
          "the result in memory and serves it in the Prometheus text format; a scrape never calls "
          "AWS. It reports every project with its tags, Bedrock spend per project, per tag value "
          "and per model (today, yesterday, a 7-day baseline, month to date, previous month), "
          "budgets, the month-end forecast, and its own health."))
    w(".PP")
    w(esc("Every Cost Explorer request costs USD 0.01: the exporter re-reads only the days that can "
          "still change, keeps them in the state file across restarts, and never sends more than "
          "cost_explorer.max_requests_per_day requests per UTC day."))
    w(".SH OPTIONS")
    w(esc("Flags follow the Prometheus conventions: --flag=value or --flag value; booleans as "
          "--flag or --flag=false."))
    for f in h["flags"]:
        w(".TP")
        w(f"\\fB{esc(f['name'])}\\fR" + ("=\\fIVALUE\\fR" if f["value"] else ""))
        text = esc(f["help"])
        if f["default"] is not None:
            text += f" Default: \\fB{esc(f['default'])}\\fR."
        w(text)
    w(".SH CONFIGURATION")
    w(esc(f"The configuration file (default {conf}) uses the libconfig syntax: key = value; "
          "groups in { }; lists in [ ]; budgets is a list of groups in ( ). Every key is "
          "optional; unknown keys, wrong types and out-of-range values are errors, reported as "
          "file:line: message by --check-config. The keys, written group.key:"))
    for k in h["keys"]:
        w(".TP")
        w(f"\\fB{esc(k['name'])}\\fR (\\fI{esc(k['type'])}\\fR)")
        w(esc(" ".join(k["help"])))
        w(".br")
        line = f"Default: {esc(k['default'])}"
        if k["allowed"]:
            # \: after each | lets groff break a long list of alternatives
            line += f"; allowed: {esc(k['allowed']).replace('|', '|' + chr(92) + ':')}"
        w(line + ".")
    w(".SH HTTP ENDPOINTS")
    w(esc(f"Served on {listen} by default; the metrics path is {metrics_path} by default."))
    for e in h["endpoints"]:
        w(".TP")
        m = re.match(r"^(\S+)(?: \((.*)\))?$", e)
        if not m:
            raise HelpFormatError(f"endpoint not 'PATH (meaning)': {e!r}")
        w(f"\\fB{esc(m.group(1))}\\fR")
        meaning = m.group(2) or ""
        if m.group(1) == "/-/healthy":
            meaning = "200 while the process runs"
        elif m.group(1) == "/-/ready":
            meaning = ("200 once every enabled source has succeeded once or was restored "
                       "from the state file, 503 before")
        w(esc(meaning[:1].upper() + meaning[1:] + "." if meaning else ""))
    w(".SH SIGNALS")
    w(esc(h["signals"]))
    w(".SH EXIT STATUS")
    for code, meaning in exit_items(h["exit"]):
        w(".TP")
        w(f"\\fB{code}\\fR")
        w(esc(meaning[:1].upper() + meaning[1:] + "."))
    w(".SH ENVIRONMENT")
    env = [
        (api_env, "The Bedrock Projects API key (the variable named by projects.api_key_env; "
                  "projects.api_key_file wins when set)."),
        ("AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN",
         "Static or temporary AWS credentials, first in the credential chain."),
        ("AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE",
         "Profile and location of the shared credentials file (default ~/.aws/credentials)."),
        ("AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN",
         "Web identity (for example EKS): STS AssumeRoleWithWebIdentity."),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, "
         "AWS_CONTAINER_AUTHORIZATION_TOKEN", "Container credentials (for example ECS)."),
        ("AWS_EC2_METADATA_DISABLED, AWS_EC2_METADATA_SERVICE_ENDPOINT",
         "Turn off, or redirect, EC2 instance metadata (IMDSv2), tried last."),
        ("NOTIFY_SOCKET", "Set by systemd: readiness (READY=1 once listening), RELOADING=1 and "
                          "STOPPING=1 are sent there."),
    ]
    for name, meaning in env:
        w(".TP")
        w(f"\\fB{esc(name)}\\fR")
        w(esc(meaning))
    w(".PP")
    w(esc("Keys and secrets are never logged and never appear in the metrics."))
    w(".SH FILES")
    files = [
        (conf, "The configuration file (a Debian conffile; never overwritten by make install)."),
        ("/etc/default/bedrock-cost-exporter",
         "Read by the systemd unit: ARGS= (extra flags) and the credentials above. Mode 0640."),
        (state, "The state file (state_file): cached cost data, so a restart serves at once "
                "without paying again."),
        ("/lib/systemd/system/bedrock-cost-exporter.service",
         "The hardened systemd unit (Type=notify, user bedrock-cost-exporter)."),
        ("/usr/share/bedrock-cost-exporter/",
         "Examples (configuration, web-config.yml, Prometheus scrape snippet), Grafana "
         "dashboards, Prometheus alert and recording rules."),
    ]
    for path, meaning in files:
        w(".TP")
        w(f"\\fI{esc(path)}\\fR")
        w(esc(meaning))
    w(".SH EXAMPLES")
    examples = [
        ("Validate the configuration:", f"{NAME} --check-config --config.file={conf}"),
        ("Refresh once and print the metrics (spends about 20 Cost Explorer requests on a "
         "first run):", f"{api_env}=... {NAME} --once | head"),
        ("Serve on localhost only, logging JSON:",
         f"{NAME} --web.listen-address=127.0.0.1:19880 --log.format=json"),
        ("Reload the configuration of the running service (checked first):",
         f"systemctl reload {NAME}"),
        ("Scrape it from Prometheus:",
         "scrape_configs:\n  - job_name: bedrock-cost\n    scrape_interval: 60s\n"
         "    static_configs:\n      - targets: [\"localhost:19880\"]"),
    ]
    for text, cmd in examples:
        w(".PP")
        w(esc(text))
        w(".PP")
        w(".RS 4")
        w(".nf")
        out.extend(esc(line) for line in cmd.split("\n"))
        w(".fi")
        w(".RE")
    w(".SH SEE ALSO")
    w("\\fBprometheus\\fR(1), \\fBpromtool\\fR(1), \\fBsystemd.exec\\fR(5), \\fBsystemctl\\fR(1)")
    return "\n".join(out) + "\n"


def generate(binary):
    version_out = run(binary, "--version").split()
    if len(version_out) < 2 or version_out[0] != NAME:
        raise HelpFormatError(f"unexpected --version output: {' '.join(version_out)!r}")
    return render(parse_help(run(binary, "--help")), version_out[1])


def lint(path):
    """groff warnings, as lintian's manpage check sees them (needs man-db/groff)."""
    if not shutil.which("man"):
        print("gen-man: man not installed, lint skipped", file=sys.stderr)
        return 0
    env = dict(os.environ, LC_ALL="C.UTF-8", MANROFFSEQ="", MANWIDTH="80")
    p = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", path],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0 or p.stderr.strip():
        print(f"gen-man: groff warnings for {path}:\n{p.stderr}", file=sys.stderr)
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, NAME))
    ap.add_argument("--output", default=os.path.join(HERE, f"{NAME}.1"))
    ap.add_argument("--check", action="store_true",
                    help="compare with --output instead of writing it; exit 1 on a difference")
    ap.add_argument("--lint", action="store_true", help="also check the page for groff warnings")
    a = ap.parse_args()
    try:
        page = generate(a.binary)
    except (HelpFormatError, OSError, subprocess.SubprocessError) as e:
        print(f"gen-man: {e}", file=sys.stderr)
        return 1
    if a.check:
        try:
            with open(a.output, encoding="utf-8") as f:
                old = f.read()
        except OSError as e:
            print(f"gen-man: {e}", file=sys.stderr)
            return 1
        if old != page:
            sys.stdout.writelines(difflib.unified_diff(
                old.splitlines(True), page.splitlines(True), a.output, f"{a.binary} --help"))
            print(f"gen-man: {a.output} is out of date with {a.binary} --help; run: make man",
                  file=sys.stderr)
            return 1
        print(f"gen-man: {a.output} matches {a.binary} --help")
    else:
        tmp = a.output + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, a.output)
        print(f"gen-man: wrote {a.output}")
    return lint(a.output) if a.lint else 0


if __name__ == "__main__":
    sys.exit(main())
