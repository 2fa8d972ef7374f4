#!/usr/bin/env python3
"""Generate bedrock-cost-exporter(1) from the binary's own --help and --version.

    packaging/gen-man.py [--binary ./bedrock-cost-exporter] [--output packaging/bedrock-cost-exporter.1]
                         [--src src]
    packaging/gen-man.py --check [--lint]     # exit 1 (with a diff) if the committed page differs

Flags, configuration keys (type, default, range, help), HTTP endpoints, signals and exit
status come from `--help`; the version from `--version`; the metric families (name, type,
HELP) from the metric_def tables in src/**/*.c (`--src`). Only prose that neither carries
(description, notes on flags, behaviour, security, environment, files, examples) is written
here. The parsers are strict: a --help line or a metric definition they do not understand is
an error, so the page cannot silently lose anything. Python standard library only.
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


# ---- metric families from the C sources ----------------------------------------------

C_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>/\*.*?\*/|//[^\n]*)
  | (?P<pp>(?<![^\n])[ \t]*\#(?:[^\n\\]|\\.|\\\n)*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<char>'(?:[^'\\\n]|\\.)*')
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>\.?[0-9](?:[eEpP][-+]|[A-Za-z0-9_.])*)
  | (?P<punct>\.\.\.|->|<<=|>>=|[-+*/%&|^<>=!]=|&&|\|\||\+\+|--|<<|>>|\#\#|[^\s])
""", re.X | re.S)
C_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "?": "?",
             "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
METRIC_TYPES = {"METRIC_GAUGE": "gauge", "METRIC_COUNTER": "counter"}


def c_string(literal):
    """The value of one C string literal (the quotes included in @literal)."""
    def one(m):
        e = m.group(1)
        if e[0] in "01234567":
            return chr(int(e, 8))
        if e[0] == "x":
            return chr(int(e[1:], 16))
        if e in C_ESCAPES:
            return C_ESCAPES[e]
        raise HelpFormatError(f"unknown escape \\{e} in {literal}")
    return re.sub(r"\\([0-7]{1,3}|x[0-9a-fA-F]+|.)", one, literal[1:-1])


def c_tokens(text, where):
    out, pos = [], 0
    while pos < len(text):
        m = C_TOKEN_RE.match(text, pos)
        if not m:
            raise HelpFormatError(f"{where}: cannot tokenize at {text[pos:pos + 30]!r}")
        if m.lastgroup not in ("ws", "comment"):
            out.append((m.lastgroup, m.group()))
        pos = m.end()
    return out


def c_string_macros(tokens, where):
    """{NAME: value} of every `#define NAME "..." "..."` whose body is string literals
    (or such macros defined before it)."""
    macros = {}
    for kind, text in tokens:
        if kind != "pp":
            continue
        body = re.sub(r"\\\n", " ", text)
        m = re.match(r"\s*#\s*define\s+([A-Za-z_][A-Za-z0-9_]*)(?![(\w])\s*(.*)$", body, re.S)
        if not m or not m.group(2).strip():
            continue
        toks = c_tokens(m.group(2), where)
        if toks and all(k == "string" or (k == "ident" and t in macros) for k, t in toks):
            macros[m.group(1)] = "".join(c_string(t) if k == "string" else macros[t]
                                         for k, t in toks)
    return macros


def extract_metrics(src):
    """[{name, type, help, file}] of every `"bedrock_cost_...", METRIC_GAUGE|METRIC_COUNTER,`
    in src/**/*.c, sorted by name; the help is the string literals and string macros that
    follow, concatenated. Raises HelpFormatError on anything else."""
    found = {}
    paths = sorted(os.path.join(d, n) for d, _, names in os.walk(src)
                   for n in names if n.endswith(".c"))
    for path in paths:
        rel = os.path.relpath(path, ROOT)
        with open(path, encoding="utf-8") as f:
            tokens = c_tokens(f.read(), rel)
        macros = c_string_macros(tokens, rel)
        code = [t for t in tokens if t[0] != "pp"]
        for i in range(len(code) - 3):
            kind, text = code[i]
            if kind != "string" or not re.fullmatch(r'"bedrock_cost_[a-z0-9_]+"', text):
                continue
            if not (code[i + 1] == ("punct", ",") and code[i + 2][0] == "ident"
                    and code[i + 2][1] in METRIC_TYPES and code[i + 3] == ("punct", ",")):
                continue
            name, mtype = c_string(text), METRIC_TYPES[code[i + 2][1]]
            parts, j = [], i + 4
            while j < len(code) and (code[j][0] == "string"
                                     or (code[j][0] == "ident" and code[j][1] in macros)):
                parts.append(c_string(code[j][1]) if code[j][0] == "string"
                             else macros[code[j][1]])
                j += 1
            if j < len(code) and code[j][0] == "ident":
                raise HelpFormatError(f"{rel}: help of {name} uses {code[j][1]}, which is not "
                                      "a #define of string literals in that file")
            help_text = " ".join("".join(parts).split())
            if not help_text:
                raise HelpFormatError(f"{rel}: {name} has no help text")
            old = found.get(name)
            if old and (old["type"], old["help"]) != (mtype, help_text):
                raise HelpFormatError(f"{name} defined differently in {old['file']} and {rel}")
            found[name] = {"name": name, "type": mtype, "help": help_text, "file": rel}
    if len(found) < 20:
        raise HelpFormatError(f"only {len(found)} metric families found under {src}")
    return [found[n] for n in sorted(found)]


# ---- prose that --help does not carry ------------------------------------------------

# Notes appended to a flag's --help text; a flag named here must exist in --help.
FLAG_NOTES = {
    "--config.file": "The file must exist. --check-config validates it (and the file of "
                     "--web.config.file) without starting.",
    "--web.listen-address": "Every address means IPv6 and IPv4; [::1]:PORT listens on an IPv6 "
                            "address. Port 0 picks a free port, which is logged.",
    "--web.telemetry-path": "Must start with / and be neither / nor under /-/.",
    "--web.config.file": "The file used for node_exporter works here; see SECURITY.",
    "--log.format": "One line per event on stderr.",
    "--once": "It spends real money: about 20 Cost Explorer requests on a first run, fewer "
              "with the state file of an earlier run.",
}

BEHAVIOUR = [
    ("Background refresh, cached serving",
     "Each source refreshes on its own interval with up to 10% jitter: projects every "
     "projects.refresh_interval seconds, cost_explorer every cost_explorer.refresh_interval "
     "immediately followed by forecast, allocation_tags every "
     "cost_explorer.allocation_tags_interval, cloudwatch every cloudwatch.refresh_interval "
     "(spread out when cloudwatch.max_metrics_per_day cannot cover a read every interval "
     "until midnight UTC). Each round renders and compresses the "
     "exposition once and publishes it as an immutable snapshot; a scrape serves that "
     "snapshot and never calls AWS. At UTC midnight the exposition is rendered again so "
     "every window moves even without new data."),
    ("Failures keep the last good data",
     "A failed source keeps serving its last good data; bedrock_cost_exporter_source_up "
     "drops to 0 and bedrock_cost_exporter_last_success_timestamp_seconds tells its age. "
     "A failed cost refresh is tried again after 15 minutes (or the interval, if shorter). "
     "A failure is logged once at warn, repeats at debug, the recovery at info."),
    ("Near-real-time spend (cloudwatch)",
     "The cloudwatch source reads the AWS/BedrockMantle InputTokens and OutputTokens sums of "
     "every (project, model) pair active in the last 3 hours, minute by minute, in every "
     "projects.regions region, and once a day the daily sums of the 9 days before. Tokens "
     "are priced per (region, model, direction) with the account's own rate: the billed "
     "cost of the model's usage types on the settled days today-8..today-2 (Cost Explorer's "
     "per-model spend; cache tokens count as input) divided by CloudWatch's tokens of those "
     "days, token-weighted; else the last settled day's rate; else cloudwatch.prices; else "
     "the tokens are exported and the dollars are absent. Yesterday's estimate is priced "
     "with the rates in use yesterday, kept in the state file, and compared with Cost "
     "Explorer's bedrock_cost_project_yesterday_usd in "
     "bedrock_cost_project_estimate_error_ratio."),
    ("Retries",
     "429, 5xx, timeouts and network errors are retried up to http.max_retries times with "
     "exponential backoff and full jitter, never sooner than Retry-After; a Retry-After "
     "longer than http.retry_max_delay ends the refresh. 401, 403 and other 4xx answers "
     "are not retried."),
    ("Spend discipline",
     "A cost refresh asks again only from the first day Cost Explorer still marks Estimated "
     "or that lies within cost_explorer.settle_days of today; settled days are kept. Every "
     "request, retries included, is counted against cost_explorer.max_requests_per_day per "
     "UTC day before it is sent; a refresh that would not fit is skipped and tried again "
     "after UTC midnight."),
    ("State file",
     "The cost cache, discovered services, forecast, tag activation, the day's request count "
     "and the last project listings are written atomically to state_file (mode 0600) after "
     "each Cost Explorer and allocation-tag refresh, and only when they changed. A restart "
     "serves them and is ready at once, and waits for the next scheduled refresh instead of "
     "paying again. A corrupt or foreign state file is ignored with one warning."),
    ("Reload",
     "SIGHUP builds a new configuration completely; on success it replaces the old one and "
     "lists projects again at once; Cost Explorer is asked again at once only if what it is "
     "asked changed (attribution tags, metric, services, endpoint, enabled). On failure every "
     "error is logged and the old configuration stays; "
     "bedrock_cost_exporter_config_last_reload_successful says which."),
    ("Credentials",
     "Found once through the chain under ENVIRONMENT and cached; temporary credentials are "
     "replaced 5 minutes before they expire and after any authentication failure. "
     "aws.role_arn (and aws.external_id) assume a role with STS AssumeRole on top."),
]

SECURITY = [
    "TLS, basic authentication and response headers come from --web.config.file, in the "
    "exporter-toolkit web-config.yml format: tls_server_config (cert_file, key_file, "
    "client_auth_type, client_ca_file, min_version, max_version; TLS 1.2 to 1.3 by default), "
    "basic_auth_users (user: bcrypt hash) and http_server_config.headers. Every path, "
    "/-/healthy included, then needs the credentials. Unknown keys, and toolkit keys this "
    "exporter cannot honour (cipher_suites, curve_preferences, client_allowed_sans), are "
    "errors: a security setting is never silently ignored.",
    "The file is checked for changes at most once a second: users, hashes and headers follow "
    "it (a broken new file is logged and the old one kept); the certificate and key are "
    "re-read at the first handshake after they change. Turning TLS on or off, the client CA "
    "and the TLS versions need a restart.",
    "The server answers GET and HEAD only (405 otherwise) on the paths under HTTP ENDPOINTS "
    "(404 otherwise), keeps connections alive, allows 256 connections and 64 per client "
    "address, gives a client 5 s from connecting (or from its request line, on a kept-alive "
    "connection) to deliver a complete request however slowly it trickles, notices at once a "
    "client that closes, caps the request line and headers at 32 KiB and closes connections "
    "idle for 10 s. Error bodies are one fixed line.",
    "API keys, AWS secret keys, session and web-identity tokens and passwords are never "
    "logged and never appear in the metrics; they are zeroed before their memory is freed. "
    "A world-readable projects.api_key_file or --web.config.file is reported with a warning. "
    "Every string read from AWS is made valid UTF-8 when it is read: each invalid sequence, "
    "an escaped \\u0000 or a lone surrogate escape becomes U+FFFD and the rest is kept. Label "
    "values are escaped and cut at 1,024 bytes, so a hostile tag cannot break a scrape, cut a "
    "value short or fail a region's listing.",
]


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


def render(h, version, metrics):
    for name in FLAG_NOTES:
        if not any(f["name"] == name for f in h["flags"]):
            raise HelpFormatError(f"FLAG_NOTES names {name}, which --help does not list")
    conf = flag_default(h, "--config.file")
    listen = flag_default(h, "--web.listen-address")
    metrics_path = flag_default(h, "--web.telemetry-path")
    state = key_default(h, "state_file")
    api_env = key_default(h, "projects.api_key_env")
    out = []
    w = out.append
    w(f'.\\" Generated by packaging/gen-man.py from `{NAME} --help` and the metric tables '
      'in src/; do not edit.')
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
        if f["name"] in FLAG_NOTES:
            text += " " + esc(FLAG_NOTES[f["name"]])
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
    w(".SH METRICS")
    w(esc("Every metric family, with its type and HELP text, as the metric tables in the "
          "source define them. Costs are gauges in USD; no sample carries a timestamp. The "
          "labels of each family, the reserved project_id values and how spend is attributed "
          "to projects are in dashboards/README.md (installed in "
          "/usr/share/bedrock-cost-exporter/dashboards/), with the alerts and their runbook."))
    for title, exporter in (("Projects, spend, budgets", False), ("The exporter itself", True)):
        w(f".SS {esc(title)}")
        for m in metrics:
            if m["name"].startswith("bedrock_cost_exporter_") == exporter:
                w(".TP")
                w(f"\\fB{esc(m['name'])}\\fR (\\fI{m['type']}\\fR)")
                w(esc(m["help"]))
    w(".SH BEHAVIOUR")
    for title, text in BEHAVIOUR:
        w(".TP")
        w(f"\\fB{esc(title)}\\fR")
        w(esc(text))
    w(".SH SECURITY")
    for i, text in enumerate(SECURITY):
        if i:
            w(".PP")
        w(esc(text))
    w(".SH SIGNALS")
    w(esc(h["signals"]))
    w(".PP")
    w(esc("SIGHUP: see Reload under BEHAVIOUR; under systemd, systemctl reload runs "
          "--check-config first and sends SIGHUP only if it passes. SIGTERM and SIGINT abort "
          "in-flight AWS requests and exit 0, well under a second."))
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
    w(".PP")
    w(esc("The commented example configuration (every key: meaning, default, range) in "
          "/usr/share/bedrock-cost-exporter/examples/; metrics, alerts and the runbook in "
          "/usr/share/bedrock-cost-exporter/dashboards/ (README.md, RUNBOOK.md). In the source "
          "tree: README.md, packaging/README.md (install and operation), dashboards/README.md, "
          "src/README.md (architecture)."))
    return "\n".join(out) + "\n"


def generate(binary, src):
    version_out = run(binary, "--version").split()
    if len(version_out) < 2 or version_out[0] != NAME:
        raise HelpFormatError(f"unexpected --version output: {' '.join(version_out)!r}")
    return render(parse_help(run(binary, "--help")), version_out[1], extract_metrics(src))


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
    ap.add_argument("--src", default=os.path.join(ROOT, "src"),
                    help="source tree whose metric_def tables give the METRICS section")
    ap.add_argument("--check", action="store_true",
                    help="compare with --output instead of writing it; exit 1 on a difference")
    ap.add_argument("--lint", action="store_true", help="also check the page for groff warnings")
    a = ap.parse_args()
    try:
        page = generate(a.binary, a.src)
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
            print(f"gen-man: {a.output} is out of date with {a.binary} --help or {a.src}; "
                  "run: make man",
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
