"""What tests/dashboards/check_dashboards.py and e2e_prometheus.py both need to
read a Grafana dashboard: its panels, its template variables and their use."""

import re

# $var, ${var}, ${var:format} and [[var]]
VAR_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


def all_panels(dash):
    """Every panel, including those inside collapsed rows."""
    for p in dash.get("panels", []):
        yield p
        for q in p.get("panels", []) or []:
            yield q


def variables_used(text):
    """The names of the template variables @text refers to."""
    return set(n for t in VAR_RE.findall(text) for n in t if n)


def variable_query(var):
    """A template variable's query, whichever way the dashboard spells it."""
    q = var.get("query")
    if isinstance(q, dict):
        q = q.get("query")
    return q or var.get("definition") or ""


def substitute(text, values):
    """Grafana-style replacement of the variables named in @values."""
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return values[name] if name in values else m.group(0)
    return VAR_RE.sub(repl, text)
