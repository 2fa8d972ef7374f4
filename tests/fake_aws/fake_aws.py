#!/usr/bin/env python3
"""fake_aws.py - a loopback fake of the AWS surfaces bedrock-cost-exporter talks to.

Python 3 standard library only, plus botocore for SigV4 verification.

Surfaces (each one a Surface subclass registered in SURFACE_CLASSES; the
dispatch table maps a path prefix to a surface):

  projects   GET /mantle/{region}/v1/organization/projects[?limit=L&after=ID]
             GET /mantle/{region}/v1/organization/projects/{id}
             (Bedrock "bedrock-mantle" Projects API, OpenAI style)

Control API (no auth), shared by all surfaces:

  POST   /_fake/faults             {"surface":S,"kind":K,"count":N,"after_requests":M,...}
  GET    /_fake/faults             list the queued faults
  DELETE /_fake/faults[?surface=S] clear faults
  PUT    /_fake/projects/{region}  JSON list of project objects (replaces the region)
  GET    /_fake/projects/{region}  current data of a region
  POST   /_fake/reset              default seed, no faults, zero counters
  GET    /_fake/requests           counters per surface
  GET    /_fake/requests/log[?surface=S]  recent requests (method, path, query, auth, status, fault)
  POST   /_fake/requests/reset     zero counters and the request log
  GET    /_fake/health             {"ok": true}

Adding a surface later (Cost Explorer, STS, IMDS): write a Surface subclass
(name, prefixes, resolve(), authenticate(), fault response hooks) and append
it to SURFACE_CLASSES. Faults, counters, the request log and the control API
pick it up automatically.

Run `fake_aws.py --help` for the command line and `fake_aws.py --self-test`
to check the SigV4 verifier and the HTTP surface end to end.
"""

import argparse
import calendar
import collections
import copy
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.compat import HTTPHeaders
    from botocore.credentials import Credentials
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write("fake_aws: botocore is required (%s)\n" % exc)
    sys.exit(2)


ACCOUNT_ID = "123456789012"
DEFAULT_API_KEY = "demo-bedrock-api-key"
DEFAULT_ACCESS_KEY_ID = "AKIDFAKEEXAMPLE"
DEFAULT_SECRET_ACCESS_KEY = "fake/secret/EXAMPLEKEY"
SIGV4_MAX_SKEW_SECONDS = 15 * 60
SIGV4_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
SIGV4_MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided."
)
REQUEST_LOG_MAX = 10000
MAX_REQUEST_BODY = 64 * 1024 * 1024
CONNECTION_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
                     socket.timeout, TimeoutError)


def log(msg):
    try:
        sys.stderr.write("fake_aws: %s\n" % msg)
        sys.stderr.flush()
    except Exception:
        pass


def json_bytes(obj, indent=None):
    if indent is None:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(obj, ensure_ascii=False, indent=indent)
    return text.encode("utf-8")


# --------------------------------------------------------------------------
# Responses and request context
# --------------------------------------------------------------------------

class Response:
    """What a surface or the control API answers.

    body      bytes (ignored when stream is set)
    stream    iterable of bytes chunks, sent with Content-Length = length
    truncate  send the full Content-Length but only half the body, then close
    abort     close the connection without answering anything
    json      the object behind body, kept so faults can rewrite it
    """

    def __init__(self, status=200, body=b"", headers=None,
                 content_type="application/json", stream=None, length=None,
                 obj=None):
        self.status = status
        self.body = body
        self.headers = list(headers or [])
        self.content_type = content_type
        self.stream = stream
        self.length = length
        self.truncate = False
        self.abort = False
        self.json = obj

    @classmethod
    def json_obj(cls, status, obj, headers=None, indent=None):
        return cls(status, json_bytes(obj, indent), headers=headers, obj=obj)

    @classmethod
    def aborted(cls):
        r = cls(status=None)
        r.abort = True
        return r


class RequestContext:
    def __init__(self, handler, body):
        self.handler = handler
        self.method = handler.command
        self.raw_path = handler.path            # path + query, exactly as received
        path, _, query = handler.path.partition("?")
        self.path = path
        self.query = query
        self.params = urllib.parse.parse_qs(query, keep_blank_values=True)
        self.headers = handler.headers         # email.message.Message, case-insensitive
        self.body = body
        self.server_port = handler.server.server_address[1]
        self.auth_scheme = None                # "bearer" | "sigv4" | "none" | "other"
        self.fault = None
        self.surface = None
        self.note = ""                         # extra text for the access log

    def param(self, name):
        vals = self.params.get(name)
        return vals[0] if vals else None

    def header(self, name):
        return self.headers.get(name)

    def header_items(self):
        return list(self.headers.items())

    def url(self):
        return "http://127.0.0.1:%d%s" % (self.server_port, self.raw_path)


# --------------------------------------------------------------------------
# SigV4 verification (botocore does the canonicalisation)
# --------------------------------------------------------------------------

class _VerifierSigV4Auth(SigV4Auth):
    """SigV4Auth that signs exactly the headers present on the request.

    botocore's own headers_to_sign() drops a blacklist (user-agent, expect,
    ...) and invents a Host header from the URL when none is given. A verifier
    must use exactly the headers the client listed in SignedHeaders, so the
    request we rebuild holds only those and this override takes them all.
    """

    def headers_to_sign(self, request):
        header_map = HTTPHeaders()
        for name, value in request.headers.items():
            header_map[name.lower()] = value
        return header_map


class SigV4Result:
    def __init__(self, ok, reason="", akid=None, canonical_request=None,
                 string_to_sign=None):
        self.ok = ok
        self.reason = reason
        self.akid = akid
        self.canonical_request = canonical_request
        self.string_to_sign = string_to_sign

    def __bool__(self):
        return self.ok

    def debug_text(self):
        out = ["reason: %s" % self.reason]
        if self.canonical_request is not None:
            out.append("canonical request:\n" + _mask_token(self.canonical_request))
        if self.string_to_sign is not None:
            out.append("string to sign:\n" + self.string_to_sign)
        return "\n".join(out)


def _mask_token(canonical_request):
    return re.sub(r"(?im)^(x-amz-security-token:).*$", r"\1<masked>", canonical_request)


_AUTH_RE = re.compile(r"^\s*AWS4-HMAC-SHA256\s+(.*)$", re.S)


def parse_sigv4_authorization(value):
    """Return dict with Credential, SignedHeaders, Signature or raise ValueError."""
    m = _AUTH_RE.match(value or "")
    if not m:
        raise ValueError("Authorization is not AWS4-HMAC-SHA256")
    parts = {}
    for comp in m.group(1).split(","):
        comp = comp.strip()
        if not comp:
            continue
        key, sep, val = comp.partition("=")
        if not sep:
            raise ValueError("malformed Authorization component %r" % comp[:40])
        parts[key.strip()] = val.strip()
    for key in ("Credential", "SignedHeaders", "Signature"):
        if not parts.get(key):
            raise ValueError("Authorization lacks %s" % key)
    return parts


def verify_sigv4(method, url, header_items, body, expected_service, expected_region,
                 credentials, now=None, max_skew=SIGV4_MAX_SKEW_SECONDS):
    """Verify an AWS SigV4 Authorization header.

    method, url    as received (url = http://127.0.0.1:PORT + raw path?query)
    header_items   list of (name, value) as received
    body           request body bytes
    credentials    {access_key_id: (secret_access_key, session_token_or_None)}
    Returns a SigV4Result (truthy when valid).
    """
    now = time.time() if now is None else now
    auth_values = [v for (n, v) in header_items if n.lower() == "authorization"]
    if len(auth_values) != 1:
        return SigV4Result(False, "expected exactly one Authorization header, got %d"
                           % len(auth_values))
    try:
        parts = parse_sigv4_authorization(auth_values[0])
    except ValueError as exc:
        return SigV4Result(False, str(exc))

    scope = parts["Credential"].split("/")
    if len(scope) != 5:
        return SigV4Result(False, "Credential must be AKID/DATE/REGION/SERVICE/aws4_request")
    akid, scope_date, region, service, terminator = scope
    if terminator != "aws4_request":
        return SigV4Result(False, "credential scope must end in aws4_request", akid)
    if service != expected_service:
        return SigV4Result(False, "credential scope service %r, expected %r"
                           % (service, expected_service), akid)
    if region != expected_region:
        return SigV4Result(False, "credential scope region %r, expected %r"
                           % (region, expected_region), akid)
    known = None
    for cand_akid, cand in credentials.items():
        if hmac.compare_digest(cand_akid.encode(), akid.encode()):
            known = cand
    if known is None:
        return SigV4Result(False, "unknown access key id", akid)
    secret, token = known

    amz_dates = [v for (n, v) in header_items if n.lower() == "x-amz-date"]
    if len(amz_dates) != 1:
        return SigV4Result(False, "expected exactly one X-Amz-Date header", akid)
    amz_date = amz_dates[0].strip()
    try:
        ts = calendar.timegm(time.strptime(amz_date, SIGV4_DATE_FORMAT))
    except ValueError:
        return SigV4Result(False, "X-Amz-Date %r is not YYYYMMDDTHHMMSSZ" % amz_date, akid)
    if abs(now - ts) > max_skew:
        return SigV4Result(False, "X-Amz-Date %s is %+d s from now (max %d)"
                           % (amz_date, int(ts - now), max_skew), akid)
    if scope_date != amz_date[:8]:
        return SigV4Result(False, "credential scope date %s != X-Amz-Date day %s"
                           % (scope_date, amz_date[:8]), akid)

    tokens = [v for (n, v) in header_items if n.lower() == "x-amz-security-token"]
    if token:
        if len(tokens) != 1:
            return SigV4Result(False, "session token configured but X-Amz-Security-Token "
                               "missing (or repeated)", akid)
        if not hmac.compare_digest(tokens[0].strip().encode(), token.encode()):
            return SigV4Result(False, "X-Amz-Security-Token does not match", akid)
    elif tokens:
        return SigV4Result(False, "X-Amz-Security-Token sent but these credentials "
                           "have no session token", akid)

    signed_names = parts["SignedHeaders"].split(";")
    if any(n != n.strip().lower() or not n for n in signed_names):
        return SigV4Result(False, "SignedHeaders must be lower-case names", akid)
    if signed_names != sorted(signed_names):
        return SigV4Result(False, "SignedHeaders must be sorted", akid)
    if "host" not in signed_names:
        return SigV4Result(False, "host must be a signed header", akid)
    if "x-amz-date" not in signed_names:
        return SigV4Result(False, "x-amz-date must be a signed header", akid)

    request = AWSRequest(method=method, url=url, data=body or b"")
    for name in signed_names:
        values = [v for (n, v) in header_items if n.lower() == name]
        if not values:
            return SigV4Result(False, "signed header %r not present" % name, akid)
        for v in values:
            request.headers[name] = v
    request.context["timestamp"] = amz_date

    content_sha = [v for (n, v) in header_items if n.lower() == "x-amz-content-sha256"]
    if content_sha:
        claimed = content_sha[0].strip()
        if claimed != "UNSIGNED-PAYLOAD" and \
                claimed.lower() != hashlib.sha256(body or b"").hexdigest():
            return SigV4Result(False, "X-Amz-Content-SHA256 does not match the body", akid)

    signer = _VerifierSigV4Auth(Credentials(akid, secret, token), service, region)
    canonical_request = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical_request)
    expected = signer.signature(string_to_sign, request)
    if not hmac.compare_digest(expected.encode(), parts["Signature"].encode()):
        return SigV4Result(False, "signature mismatch", akid, canonical_request,
                           string_to_sign)
    return SigV4Result(True, "ok", akid, canonical_request, string_to_sign)


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------

FAULT_KINDS = ("throttle", "server_error", "slow", "truncated", "malformed",
               "wrong_types", "loop", "auth", "huge", "hang")


class FaultError(ValueError):
    pass


class Fault:
    def __init__(self, fid, surface, kind, count, after_requests, match, params):
        self.id = fid
        self.surface = surface
        self.kind = kind
        self.count = count                 # as requested (-1 = until cleared)
        self.remaining = count
        self.after_requests = after_requests
        self.skip = after_requests
        self.match = match
        self.params = params
        self.applied = 0

    def to_json(self):
        d = {"id": self.id, "surface": self.surface, "kind": self.kind,
             "count": self.count, "remaining": self.remaining,
             "after_requests": self.after_requests, "skip_remaining": self.skip,
             "applied": self.applied}
        if self.match is not None:
            d["match"] = self.match
        d.update(self.params)
        return d


class FaultRegistry:
    """Queued faults, keyed by surface. Caller holds the app lock."""

    RESERVED = ("surface", "kind", "count", "after_requests", "match")

    def __init__(self):
        self.faults = []
        self.next_id = 1

    def add(self, spec, surfaces):
        if not isinstance(spec, dict):
            raise FaultError("fault must be a JSON object")
        surface = spec.get("surface")
        if surface not in surfaces:
            raise FaultError("unknown surface %r (known: %s)"
                             % (surface, ", ".join(sorted(surfaces))))
        kind = spec.get("kind")
        if kind not in surfaces[surface].fault_kinds:
            raise FaultError("unknown fault kind %r for surface %s (known: %s)"
                             % (kind, surface, ", ".join(surfaces[surface].fault_kinds)))
        count = spec.get("count", 1)
        if not _is_int(count) or (count < 1 and count != -1):
            raise FaultError("count must be a positive integer or -1")
        after = spec.get("after_requests", 0)
        if not _is_int(after) or after < 0:
            raise FaultError("after_requests must be an integer >= 0")
        match = spec.get("match")
        if match is not None and not isinstance(match, str):
            raise FaultError("match must be a string")
        params = {k: v for k, v in spec.items() if k not in self.RESERVED}
        surfaces[surface].validate_fault(kind, params)
        fault = Fault(self.next_id, surface, kind, count, after, match, params)
        self.next_id += 1
        self.faults.append(fault)
        return fault

    def clear(self, surface=None):
        before = len(self.faults)
        self.faults = [f for f in self.faults if surface is not None and f.surface != surface]
        return before - len(self.faults)

    def take(self, surface, raw_path):
        """Return the fault that applies to this request (or None).

        Every queued fault of the surface whose `match` fits sees the request:
        faults still skipping (after_requests) count it down; the first fault
        that is past its skip window applies and loses one of its count.
        Faults therefore apply in the order they were added.
        """
        chosen = None
        for f in self.faults:
            if f.surface != surface or f.remaining == 0:
                continue
            if f.match is not None and f.match not in raw_path:
                continue
            if f.skip > 0:
                f.skip -= 1
                continue
            if chosen is None:
                chosen = f
                f.applied += 1
                if f.remaining > 0:
                    f.remaining -= 1
        self.faults = [f for f in self.faults if f.remaining != 0]
        return chosen

    def to_json(self, surface=None):
        return [f.to_json() for f in self.faults if surface is None or f.surface == surface]


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# --------------------------------------------------------------------------
# Surfaces
# --------------------------------------------------------------------------

class Surface:
    """Base class of an emulated AWS surface.

    Subclasses set name, prefixes and implement resolve() and authenticate();
    they may override the fault hooks to answer in the surface's own error
    dialect (e.g. Cost Explorer's LimitExceededException instead of 429).
    """

    name = None
    prefixes = ()
    fault_kinds = FAULT_KINDS
    wrong_types_fields = ()
    auth_schemes = ("sigv4",)

    def __init__(self, app):
        self.app = app

    # -- routing / auth ------------------------------------------------------
    def resolve(self, ctx):
        """Return a callable endpoint(ctx) -> Response, or a Response (404/405)."""
        raise NotImplementedError

    def authenticate(self, ctx, endpoint):
        """Return None when authorised, else an error Response."""
        raise NotImplementedError

    # -- counters -----------------------------------------------------------
    def new_counters(self):
        return {"total": 0, "by_status": {},
                "auth": {scheme: 0 for scheme in self.auth_schemes}}

    # -- faults -------------------------------------------------------------
    def validate_fault(self, kind, params):
        def number(name, minimum=0):
            if name in params and (not _is_number(params[name]) or params[name] < minimum):
                raise FaultError("%s must be a number >= %s" % (name, minimum))
        if kind == "server_error":
            st = params.get("status", 500)
            if not _is_int(st) or not 500 <= st <= 599:
                raise FaultError("status must be an integer 500..599")
        elif kind in ("slow", "hang"):
            number("seconds")
        elif kind == "huge":
            if "bytes" in params and (not _is_int(params["bytes"]) or params["bytes"] < 2):
                raise FaultError("bytes must be an integer >= 2")
        elif kind == "throttle":
            ra = params.get("retry_after", 1)
            if not isinstance(ra, (int, float, str)) or isinstance(ra, bool):
                raise FaultError("retry_after must be a number or a string")
        elif kind == "wrong_types":
            field = params.get("field")
            if field is not None and field not in self.wrong_types_fields:
                raise FaultError("field must be one of %s" % ", ".join(self.wrong_types_fields))
        elif kind == "malformed":
            if "body" in params and not isinstance(params["body"], str):
                raise FaultError("body must be a string")

    def throttle_response(self, ctx, fault):
        ra = fault.params.get("retry_after", 1)
        if isinstance(ra, float) and ra.is_integer():
            ra = int(ra)
        return Response.json_obj(429, {"message": "Rate exceeded"},
                                 headers=[("Retry-After", str(ra))])

    def server_error_response(self, ctx, fault):
        status = fault.params.get("status", 500)
        return Response.json_obj(status, {"message": "Internal server error"})

    def auth_fault_response(self, ctx, fault):
        return Response.json_obj(403, {"message": SIGV4_MISMATCH_MESSAGE})

    def malformed_body(self, ctx, fault):
        return b'{"message":'

    def malformed_response(self, ctx, fault):
        body = fault.params.get("body")
        body = body.encode("utf-8") if body is not None else self.malformed_body(ctx, fault)
        return Response(200, body)

    def wrong_types(self, ctx, obj, field):
        return obj

    def huge_parts(self, ctx):
        """(prefix, item(i) -> bytes, suffix) of a valid-looking huge JSON body."""
        return (b'{"items":[', lambda i: b'{"n":%d}' % i, b']}')

    def huge_response(self, ctx, fault):
        total = fault.params.get("bytes", 64 * 1024 * 1024)
        prefix, item, suffix = self.huge_parts(ctx)
        shutdown = self.app.shutdown_event

        def gen():
            if total < len(prefix) + len(suffix):
                yield (b"{}" + b" " * total)[:total]
                return
            budget = total - len(prefix) - len(suffix)
            yield prefix
            buf, buflen, i = [], 0, 0
            while True:
                piece = item(i) if i == 0 else b"," + item(i)
                if len(piece) > budget:
                    break
                buf.append(piece)
                buflen += len(piece)
                budget -= len(piece)
                i += 1
                if buflen >= 65536:
                    yield b"".join(buf)
                    buf, buflen = [], 0
                    if shutdown.is_set():
                        return
            if buf:
                yield b"".join(buf)
            while budget > 0:                 # whitespace padding: still valid JSON
                n = min(budget, 65536)
                yield b" " * n
                budget -= n
            yield suffix

        return Response(200, stream=gen(), length=total)


def _base36(n, width):
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    while n and len(out) < width:
        n, r = divmod(n, 36)
        out.append(alphabet[r])
    return "".join(out).ljust(width, "0")


def project_id_for(region, name):
    digest = hashlib.sha256(("%s/%s" % (region, name)).encode("utf-8")).digest()
    return "proj_" + _base36(int.from_bytes(digest, "big"), 24)


def project_arn(region, pid):
    return "arn:aws:bedrock-mantle:%s:%s:project/%s" % (region, ACCOUNT_ID, pid)


def make_project(region, name, created_at, tags, status="active", pid=None):
    pid = pid or project_id_for(region, name)
    return {"id": pid, "object": "organization.project", "name": name,
            "arn": project_arn(region, pid), "status": status,
            "created_at": created_at, "tags": dict(tags)}


def _ts(*t):
    return calendar.timegm(tuple(t) + (0, 0, 0))


DEFAULT_PROJECT_CREATED_AT = _ts(2026, 1, 5, 9, 0, 0)


def default_project(region):
    return make_project(region, "Default project", DEFAULT_PROJECT_CREATED_AT, {},
                        pid="default")


def _sort_projects(items):
    return sorted(items, key=lambda p: (p["created_at"], p["id"]))


SYNTH_APPS = ["CustomerChatbot", "DocSummarizer", "FraudDetection", "Translator",
              "CodeAssistant", "SearchRAG", "VoiceAgent"]
SYNTH_ENVS = ["Production", "Staging", "Development", "Sandbox"]
SYNTH_TEAMS = ["CustomerExperience", "DataScience", "Localization", "Platform", "Security"]
SYNTH_CCS = ["CC-1001", "CC-2002", "CC-3003", "CC-4004", "CC-5005"]
SYNTH_OWNERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]


def synthetic_projects(region, n):
    out = []
    for i in range(1, n + 1):
        name = "synthetic-%05d" % i
        d = hashlib.sha256(name.encode()).digest()
        tags = {"Application": SYNTH_APPS[d[0] % len(SYNTH_APPS)],
                "Environment": SYNTH_ENVS[d[1] % len(SYNTH_ENVS)],
                "Team": SYNTH_TEAMS[d[2] % len(SYNTH_TEAMS)],
                "CostCenter": SYNTH_CCS[d[3] % len(SYNTH_CCS)],
                "Owner": SYNTH_OWNERS[d[4] % len(SYNTH_OWNERS)]}
        if d[5] % 9 == 0:
            del tags["CostCenter"]
        if d[6] % 11 == 0:
            del tags["Team"]
        status = "archived" if d[7] % 10 == 0 else "active"
        out.append(make_project(region, name, _ts(2026, 3, 1, 0, 0, 0) + i * 3607,
                                tags, status))
    return out


def default_projects_seed(synthetic=0):
    use1 = "us-east-1"
    euw1 = "eu-west-1"
    seed = {
        use1: [
            default_project(use1),
            make_project(use1, "CustomerChatbot-Prod", _ts(2026, 1, 12, 14, 3, 21),
                         {"Application": "CustomerChatbot", "Environment": "Production",
                          "Team": "CustomerExperience", "CostCenter": "CC-1001"}),
            make_project(use1, "CustomerChatbot-Dev", _ts(2026, 1, 12, 14, 10, 2),
                         {"Application": "CustomerChatbot", "Environment": "Development",
                          "Team": "CustomerExperience", "CostCenter": "CC-1001"}),
            make_project(use1, "DocSummarizer-Prod", _ts(2026, 2, 3, 10, 45, 0),
                         {"Application": "DocSummarizer", "Environment": "Production",
                          "Team": "DataScience", "CostCenter": "CC-2002"}),
            make_project(use1, "FraudDetection-Staging", _ts(2026, 2, 20, 16, 30, 0),
                         {"Application": "FraudDetection", "Environment": "Staging",
                          "Team": "DataScience", "CostCenter": "CC-2002"},
                         status="archived"),
        ] + synthetic_projects(use1, synthetic),
        euw1: [
            default_project(euw1),
            make_project(euw1, "Translator-Prod", _ts(2026, 1, 20, 8, 15, 0),
                         {"Application": "Translator", "Environment": "Production",
                          "Team": "Localization", "CostCenter": "CC-3003"}),
        ],
    }
    return {region: _sort_projects(items) for region, items in seed.items()}


def openai_error(status, message, param=None, code=None, etype="invalid_request_error",
                 headers=None):
    return Response.json_obj(status, {"error": {"message": message, "type": etype,
                                                "param": param, "code": code}},
                             headers=headers)


class ProjectsSurface(Surface):
    """bedrock-mantle Projects API (OpenAI compatible)."""

    name = "projects"
    prefixes = ("/mantle/",)
    signing_name = "bedrock-mantle"
    auth_schemes = ("bearer", "sigv4")
    wrong_types_fields = ("created_at", "has_more", "data", "tags", "id")
    ROUTE = re.compile(r"^/mantle/(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)/v1/organization/"
                       r"projects(?:/(?P<pid>[^/]+))?$")

    def resolve(self, ctx):
        m = self.ROUTE.match(ctx.path)
        if not m:
            return openai_error(404, "Unknown request URL: %s %s" % (ctx.method, ctx.path),
                                code="unknown_url")
        if ctx.method not in ("GET", "HEAD"):
            return openai_error(405, "Method %s not allowed on %s" % (ctx.method, ctx.path),
                                code="method_not_allowed")
        ctx.region = m.group("region")
        pid = m.group("pid")
        if pid is None:
            return self.list_projects
        ctx.project_id = urllib.parse.unquote(pid)
        return self.get_project

    def authenticate(self, ctx, endpoint):
        auth = ctx.header("Authorization")
        if auth is None or not auth.strip():
            ctx.auth_scheme = "none"
            return openai_error(401, "Missing Authorization header: expected "
                                "'Bearer <API key>' or AWS SigV4", code=None)
        scheme = auth.strip().split(None, 1)[0].lower()
        if scheme == "bearer":
            ctx.auth_scheme = "bearer"
            key = auth.strip()[len("bearer"):].strip()
            if hmac.compare_digest(key.encode("utf-8", "surrogateescape"),
                                   self.app.config.api_key.encode("utf-8")):
                return None
            return self.invalid_key_response()
        if scheme == "aws4-hmac-sha256":
            ctx.auth_scheme = "sigv4"
            return self.app.check_sigv4(ctx, self.signing_name, ctx.region)
        ctx.auth_scheme = "other"
        return self.invalid_key_response()

    def invalid_key_response(self):
        return Response.json_obj(401, {"error": {"message": "Invalid API key",
                                                 "type": "invalid_request_error",
                                                 "code": "invalid_api_key"}})

    # -- endpoints ----------------------------------------------------------
    def list_projects(self, ctx):
        limit_raw = ctx.param("limit")
        limit = 20
        if limit_raw is not None:
            if not re.fullmatch(r"-?\d{1,9}", limit_raw) or not 1 <= int(limit_raw) <= 100:
                return openai_error(400, "Invalid 'limit': expected an integer between 1 "
                                    "and 100, got %r." % limit_raw, param="limit")
            limit = int(limit_raw)
        items = self.app.get_projects(ctx.region)
        after = ctx.param("after")
        looping = ctx.fault is not None and ctx.fault.kind == "loop"
        start = 0
        if after is not None and not looping:
            for idx, p in enumerate(items):
                if isinstance(p, dict) and p.get("id") == after:
                    start = idx + 1
                    break
            else:
                return openai_error(400, "Invalid 'after': no project with id %r in %s."
                                    % (after, ctx.region), param="after")
        page = items[start:start + limit]
        has_more = True if looping else start + limit < len(items)

        def pid(p):
            return p.get("id") if isinstance(p, dict) else None
        body = {"object": "list", "data": page,
                "first_id": pid(page[0]) if page else None,
                "last_id": pid(page[-1]) if page else None,
                "has_more": has_more}
        return Response.json_obj(200, body, indent=2)

    def get_project(self, ctx):
        for p in self.app.get_projects(ctx.region):
            if isinstance(p, dict) and p.get("id") == ctx.project_id:
                return Response.json_obj(200, p, indent=2)
        return openai_error(404, "No project found with id %r." % ctx.project_id,
                            code="not_found")

    # -- fault dialect ------------------------------------------------------
    def throttle_response(self, ctx, fault):
        resp = super().throttle_response(ctx, fault)
        return Response.json_obj(429, {"error": {"message": "Rate limit exceeded",
                                                 "type": "rate_limit_error"}},
                                 headers=resp.headers)

    def server_error_response(self, ctx, fault):
        status = fault.params.get("status", 500)
        return Response.json_obj(status, {"error": {"message": "The server had an error "
                                                    "while processing your request.",
                                                    "type": "server_error"}})

    def auth_fault_response(self, ctx, fault):
        return self.invalid_key_response()

    def malformed_body(self, ctx, fault):
        return b'{"object":"list","data":[{"id":'

    def wrong_types(self, ctx, obj, field):
        obj = copy.deepcopy(obj)
        fields = [field] if field else ["created_at", "has_more"]
        is_list = isinstance(obj, dict) and obj.get("object") == "list"
        projects = obj.get("data", []) if is_list else [obj]
        projects = [p for p in projects if isinstance(p, dict)]
        for f in fields:
            if f == "created_at":
                for p in projects:
                    if "created_at" in p:
                        p["created_at"] = str(p["created_at"])
            elif f == "has_more" and is_list:
                obj["has_more"] = "false"
            elif f == "data" and is_list:
                obj["data"] = {str(p.get("id")): p for p in projects}
            elif f == "tags":
                for p in projects:
                    if isinstance(p.get("tags"), dict):
                        p["tags"] = [{"Key": k, "Value": v} for k, v in p["tags"].items()]
            elif f == "id":
                for idx, p in enumerate(projects):
                    p["id"] = 100000 + idx
        return obj

    def huge_parts(self, ctx):
        region = getattr(ctx, "region", "us-east-1")
        tmpl = ('{"id":"proj_huge%020d","object":"organization.project","name":"huge-%d",'
                '"arn":"arn:aws:bedrock-mantle:' + region + ':' + ACCOUNT_ID +
                ':project/proj_huge%020d","status":"active","created_at":1772323200,'
                '"tags":{"Application":"HugeResponse","Environment":"Production",'
                '"Team":"Platform","CostCenter":"CC-9999"}}')

        def item(i):
            return (tmpl % (i, i, i)).encode()
        return (b'{"object":"list","data":[', item,
                b'],"first_id":null,"last_id":null,"has_more":false}')


# Surfaces served by the fake; later issues append CostExplorerSurface
# ("/ce/"), StsSurface ("/sts/") and ImdsSurface ("/latest/") here.
SURFACE_CLASSES = [ProjectsSurface]


# --------------------------------------------------------------------------
# Control API
# --------------------------------------------------------------------------

class ControlAPI:
    prefix = "/_fake/"

    def __init__(self, app):
        self.app = app

    def handle(self, ctx):
        app = self.app
        path, method = ctx.path, ctx.method
        surface_q = ctx.param("surface")
        if surface_q is not None and surface_q not in app.surfaces:
            return self.err(400, "unknown surface %r" % surface_q)

        if path == "/_fake/health":
            return self.only(method, "GET") or Response.json_obj(200, {"ok": True})
        if path == "/_fake/faults":
            if method == "GET":
                with app.lock:
                    return Response.json_obj(200, {"faults": app.faults.to_json(surface_q)})
            if method == "DELETE":
                with app.lock:
                    n = app.faults.clear(surface_q)
                return Response.json_obj(200, {"cleared": n})
            if method == "POST":
                spec = self.body_json(ctx)
                if isinstance(spec, Response):
                    return spec
                specs = spec if isinstance(spec, list) else [spec]
                added = []
                with app.lock:
                    try:
                        for s in specs:
                            added.append(app.faults.add(s, app.surfaces))
                    except FaultError as exc:
                        for f in added:   # all or nothing
                            app.faults.faults.remove(f)
                        return self.err(400, str(exc))
                    out = [f.to_json() for f in added]
                return Response.json_obj(201, out if isinstance(spec, list) else out[0])
            return self.err(405, "method not allowed")
        m = re.fullmatch(r"/_fake/projects/([a-z]{2}(?:-[a-z]+)+-\d+)", path)
        if m:
            region = m.group(1)
            if method == "GET":
                return Response.json_obj(200, app.get_projects(region), indent=2)
            if method == "PUT":
                data = self.body_json(ctx)
                if isinstance(data, Response):
                    return data
                if isinstance(data, dict) and isinstance(data.get("data"), list):
                    data = data["data"]
                if not isinstance(data, list):
                    return self.err(400, "expected a JSON list of project objects")
                items = []
                for idx, p in enumerate(data):
                    if not isinstance(p, dict):
                        return self.err(400, "item %d is not an object" % idx)
                    items.append(self.complete_project(region, p, idx))
                with app.lock:
                    app.projects[region] = items
                return Response.json_obj(200, {"region": region, "count": len(items)})
            return self.err(405, "method not allowed")
        if path == "/_fake/reset":
            return self.only(method, "POST") or self.reset()
        if path == "/_fake/requests":
            if method != "GET":
                return self.err(405, "method not allowed")
            with app.lock:
                counters = copy.deepcopy(app.counters)
            if surface_q is not None:
                counters = {surface_q: counters[surface_q]}
            return Response.json_obj(200, counters, indent=2)
        if path == "/_fake/requests/log":
            if method != "GET":
                return self.err(405, "method not allowed")
            with app.lock:
                entries = [e for e in app.request_log
                           if surface_q is None or e["surface"] == surface_q]
            return Response.json_obj(200, {"requests": entries}, indent=2)
        if path == "/_fake/requests/reset":
            if method != "POST":
                return self.err(405, "method not allowed")
            with app.lock:
                app.reset_counters()
            return Response.json_obj(200, {"ok": True})
        return self.err(404, "unknown control path %s" % path)

    def reset(self):
        with self.app.lock:
            self.app.reset_all()
        return Response.json_obj(200, {"ok": True})

    @staticmethod
    def complete_project(region, p, idx):
        """Fill in missing fields of a PUT project; present fields are kept as given."""
        out = dict(p)
        name = out.get("name", "project-%d" % idx)
        out.setdefault("name", name)
        out.setdefault("id", project_id_for(region, str(name)))
        out.setdefault("object", "organization.project")
        out.setdefault("arn", project_arn(region, out["id"]))
        out.setdefault("status", "active")
        out.setdefault("created_at", _ts(2026, 4, 1, 0, 0, 0) + idx)
        out.setdefault("tags", {})
        # key order as the real API
        order = ["id", "object", "name", "arn", "status", "created_at", "tags"]
        return {k: out[k] for k in order + [k for k in out if k not in order]}

    @staticmethod
    def only(method, allowed):
        if method != allowed:
            return ControlAPI.err(405, "method not allowed")
        return None

    @staticmethod
    def err(status, message):
        return Response.json_obj(status, {"error": {"message": message, "type": "fake_aws"}})

    @staticmethod
    def body_json(ctx):
        try:
            return json.loads(ctx.body.decode("utf-8") or "null")
        except (UnicodeDecodeError, ValueError) as exc:
            return ControlAPI.err(400, "invalid JSON body: %s" % exc)


# --------------------------------------------------------------------------
# The application: shared state, dispatch, fault application
# --------------------------------------------------------------------------

class Config:
    def __init__(self, api_key=DEFAULT_API_KEY, access_key_id=DEFAULT_ACCESS_KEY_ID,
                 secret_access_key=DEFAULT_SECRET_ACCESS_KEY, session_token=None,
                 synthetic=0, quiet=False):
        self.api_key = api_key
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token or None
        self.synthetic = synthetic
        self.quiet = quiet


class FakeAWS:
    def __init__(self, config):
        self.config = config
        self.lock = threading.RLock()
        self.shutdown_event = threading.Event()
        self.surfaces = {}
        self.routes = []                     # (prefix, Surface | ControlAPI)
        self.control = ControlAPI(self)
        self.routes.append((ControlAPI.prefix, self.control))
        for cls in SURFACE_CLASSES:
            surface = cls(self)
            self.surfaces[surface.name] = surface
            for prefix in surface.prefixes:
                self.routes.append((prefix, surface))
        self.routes.sort(key=lambda r: len(r[0]), reverse=True)   # longest prefix wins
        # Credentials accepted for SigV4: {akid: (secret, token)}. STS/IMDS
        # surfaces may add temporary credentials here later.
        self.credentials = {}
        self.faults = FaultRegistry()
        self.reset_all()

    # -- shared state (caller holds self.lock where noted) ------------------
    def reset_all(self):
        with self.lock:
            self.projects = default_projects_seed(self.config.synthetic)
            self.faults = FaultRegistry()
            self.credentials = {self.config.access_key_id:
                                (self.config.secret_access_key, self.config.session_token)}
            self.reset_counters()

    def reset_counters(self):
        with self.lock:
            self.counters = {name: s.new_counters() for name, s in self.surfaces.items()}
            self.request_log = collections.deque(maxlen=REQUEST_LOG_MAX)
            self.request_seq = 0

    def get_projects(self, region):
        with self.lock:
            items = self.projects.get(region)
            return list(items) if items is not None else [default_project(region)]

    # -- dispatch -----------------------------------------------------------
    def dispatch(self, ctx):
        for prefix, target in self.routes:
            if ctx.path.startswith(prefix):
                if target is self.control:
                    return self.control.handle(ctx)
                return self.serve_surface(target, ctx)
        return Response.json_obj(404, {"error": {"message": "Not found: %s" % ctx.path,
                                                 "type": "not_found"}})

    def serve_surface(self, surface, ctx):
        ctx.surface = surface.name
        with self.lock:
            self.counters[surface.name]["total"] += 1
            self.request_seq += 1
            entry = {"seq": self.request_seq, "time": round(time.time(), 3),
                     "surface": surface.name, "method": ctx.method, "path": ctx.path,
                     "query": ctx.query, "auth": None, "status": None, "fault": None}
            self.request_log.append(entry)
        resp = self._serve_surface(surface, ctx)
        with self.lock:
            c = self.counters[surface.name]
            if resp.status is not None and not resp.abort:
                key = str(resp.status)
                c["by_status"][key] = c["by_status"].get(key, 0) + 1
            entry["auth"] = ctx.auth_scheme
            entry["status"] = resp.status
            entry["fault"] = ctx.fault.kind if ctx.fault else None
        return resp

    def _serve_surface(self, surface, ctx):
        endpoint = surface.resolve(ctx)
        if isinstance(endpoint, Response):
            return endpoint
        denied = surface.authenticate(ctx, endpoint)
        with self.lock:
            auth_counts = self.counters[surface.name]["auth"]
            if ctx.auth_scheme in auth_counts:
                auth_counts[ctx.auth_scheme] += 1
        if denied is not None:
            return denied
        with self.lock:
            fault = self.faults.take(surface.name, ctx.raw_path)
        ctx.fault = fault
        kind = fault.kind if fault else None
        if kind:
            ctx.note = "fault=%s" % kind
        if kind == "throttle":
            return surface.throttle_response(ctx, fault)
        if kind == "server_error":
            return surface.server_error_response(ctx, fault)
        if kind == "auth":
            return surface.auth_fault_response(ctx, fault)
        if kind == "malformed":
            return surface.malformed_response(ctx, fault)
        if kind == "huge":
            return surface.huge_response(ctx, fault)
        if kind in ("slow", "hang"):
            seconds = fault.params.get("seconds", 5 if kind == "slow" else 3600)
            if self.shutdown_event.wait(seconds):
                return Response.aborted()
        resp = endpoint(ctx)                      # "loop" is read by the endpoint
        if kind == "truncated":
            resp.truncate = True
        elif kind == "wrong_types" and resp.status == 200 and resp.json is not None:
            obj = surface.wrong_types(ctx, resp.json, fault.params.get("field"))
            resp = Response.json_obj(200, obj, headers=resp.headers, indent=2)
        return resp

    def check_sigv4(self, ctx, service, region):
        """Shared SigV4 check for surfaces: None if valid, else a 403 Response."""
        with self.lock:
            creds = dict(self.credentials)
        result = verify_sigv4(ctx.method, ctx.url(), ctx.header_items(), ctx.body,
                              service, region, creds)
        if result.ok:
            return None
        log("sigv4 rejected (%s %s %s):\n%s" % (ctx.surface, ctx.method, ctx.raw_path,
                                               result.debug_text()))
        return Response.json_obj(403, {"message": SIGV4_MISMATCH_MESSAGE},
                                 headers=[("X-Fake-Auth-Error", result.reason)])


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------

class FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, addr, app):
        self.app = app
        super().__init__(addr, FakeHandler)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, CONNECTION_ERRORS) or isinstance(exc, OSError):
            return
        log("error handling request from %s:\n%s" % (client_address, traceback.format_exc()))


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake_aws/1.0"
    sys_version = ""
    timeout = 300

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def version_string(self):
        return self.server_version

    def log_request(self, code="-", size="-"):
        pass                                    # access log is written by _dispatch

    def log_message(self, fmt, *args):
        if not self.server.app.config.quiet:
            log("%s - %s" % (self.client_address[0], fmt % args))

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_REQUEST_BODY:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_REQUEST_BODY:
            raise ValueError("bad Content-Length")
        return self.rfile.read(length) if length else b""

    def _dispatch(self):
        app = self.server.app
        started = time.time()
        status, sent, note = None, 0, ""
        try:
            try:
                body = self._read_body()
            except ValueError as exc:
                self.close_connection = True
                resp = Response.json_obj(400, {"error": {"message": str(exc),
                                                         "type": "fake_aws"}})
                status, sent = self._send(resp)
                return
            ctx = RequestContext(self, body)
            try:
                resp = app.dispatch(ctx)
            except Exception:
                log("internal error:\n%s" % traceback.format_exc())
                resp = Response.json_obj(500, {"error": {"message": "fake_aws internal error",
                                                         "type": "fake_aws"}})
            note = ctx.note
            status, sent = self._send(resp)
        except CONNECTION_ERRORS:
            self.close_connection = True
            note = (note + " client-disconnected").strip()
        finally:
            if not app.config.quiet:
                log('%s "%s" %s %s %.3fs %s' % (self.client_address[0], self.requestline,
                                                status if status is not None else "-",
                                                sent, time.time() - started, note))

    def _send(self, resp):
        """Send resp; returns (status, body bytes sent)."""
        if resp.abort:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return None, 0
        self.send_response(resp.status)
        if resp.content_type:
            self.send_header("Content-Type", resp.content_type)
        for k, v in resp.headers:
            self.send_header(k, v)
        head = self.command == "HEAD"
        sent = 0
        if resp.stream is not None:
            self.send_header("Content-Length", str(resp.length))
            self.end_headers()
            if not head:
                for chunk in resp.stream:
                    self.wfile.write(chunk)
                    sent += len(chunk)
            if sent != resp.length and not head:
                self.close_connection = True
            return resp.status, sent
        body = resp.body or b""
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head:
            return resp.status, 0
        if resp.truncate:
            part = body[:len(body) // 2]
            self.wfile.write(part)
            self.wfile.flush()
            self.close_connection = True
            return resp.status, len(part)
        self.wfile.write(body)
        return resp.status, len(body)


def start_server(app, host="127.0.0.1", port=0):
    server = FakeHTTPServer((host, port), app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="fake_aws-serve", daemon=True)
    thread.start()
    return server, thread


def stop_server(app, server, thread):
    app.shutdown_event.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as fh:
        fh.write("%d\n" % port)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# Self-test
# --------------------------------------------------------------------------

def self_test():
    failures = []

    def check(name, cond, detail=""):
        print("%s %s%s" % ("ok  " if cond else "FAIL", name,
                           (" -- " + detail) if (detail and not cond) else ""))
        if not cond:
            failures.append(name)

    akid, secret = DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY
    host = "127.0.0.1:18080"
    list_path = "/mantle/us-east-1/v1/organization/projects"

    def sign(method="GET", path=list_path + "?after=proj_abc&limit=2", body=b"",
             region="us-east-1", service="bedrock-mantle", key_id=akid, key=secret,
             token=None, headers=None):
        h = {"Host": host}
        h.update(headers or {})
        req = AWSRequest(method=method, url="http://%s%s" % (host, path), data=body,
                         headers=h)
        SigV4Auth(Credentials(key_id, key, token), service, region).add_auth(req)
        return list(req.headers.items())

    def verify(items, method="GET", path=list_path + "?after=proj_abc&limit=2", body=b"",
               region="us-east-1", creds=None, now=None):
        return verify_sigv4(method, "http://%s%s" % (host, path), items, body,
                            "bedrock-mantle", region, creds or {akid: (secret, None)}, now)

    def replace(items, name, value):
        return [(n, value if n.lower() == name else v) for n, v in items]

    good = sign()
    r = verify(good)
    check("sigv4: botocore-signed GET accepted", r.ok, r.debug_text())
    check("sigv4: tampered query rejected",
          not verify(good, path=list_path + "?after=proj_abc&limit=3"))
    check("sigv4: tampered path region rejected",
          not verify(good, path="/mantle/eu-west-1/v1/organization/projects"
                                "?after=proj_abc&limit=2", region="eu-west-1"))
    check("sigv4: wrong service rejected", not verify(sign(service="bedrock")))
    check("sigv4: wrong secret rejected", not verify(sign(key="nope")))
    check("sigv4: unknown access key rejected", not verify(sign(key_id="AKIDOTHER")))
    auth = dict((n.lower(), v) for n, v in good)["authorization"]
    flipped = auth[:-1] + ("0" if auth[-1] != "0" else "1")
    check("sigv4: tampered signature rejected",
          not verify(replace(good, "authorization", flipped)))
    check("sigv4: tampered host rejected",
          not verify(replace(good, "host", "127.0.0.1:18081")))
    check("sigv4: stale X-Amz-Date rejected", not verify(good, now=time.time() + 3600))
    check("sigv4: unsigned extra header ignored",
          verify(good + [("User-Agent", "curl/7.88.1"), ("Accept", "*/*")]).ok)
    body = b'{"hello":"world"}'
    post = sign(method="POST", path="/x", body=body,
                headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest(),
                         "Content-Type": "application/json"})
    check("sigv4: POST with body + x-amz-content-sha256 accepted",
          verify(post, method="POST", path="/x", body=body).ok)
    check("sigv4: POST with tampered body rejected",
          not verify(post, method="POST", path="/x", body=b'{"hello":"World"}'))
    post2 = sign(method="POST", path="/x", body=body)
    check("sigv4: POST body hashed without x-amz-content-sha256 accepted",
          verify(post2, method="POST", path="/x", body=body).ok)
    check("sigv4: POST without content-sha, tampered body rejected",
          not verify(post2, method="POST", path="/x", body=body + b" "))
    tcreds = {akid: (secret, "tok")}
    with_tok = sign(token="tok")
    check("sigv4: session token signed and present accepted",
          verify(with_tok, creds=tcreds).ok)
    check("sigv4: token configured but missing rejected", not verify(good, creds=tcreds))
    check("sigv4: wrong token rejected",
          not verify(sign(token="other"), creds=tcreds))
    check("sigv4: token sent but none configured rejected", not verify(with_tok))
    unsigned_tok = good + [("X-Amz-Security-Token", "tok")]
    check("sigv4: unsigned but correct token accepted", verify(unsigned_tok, creds=tcreds).ok)

    # End to end over loopback.
    app = FakeAWS(Config(quiet=True, synthetic=7))
    server, thread = start_server(app)
    port = server.server_address[1]
    try:
        def call(method, path, headers=None, body=None):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            hdrs = {"Host": "127.0.0.1:%d" % port}
            hdrs.update(headers or {})
            if body is not None:
                hdrs["Content-Length"] = str(len(body))
            for k, v in hdrs.items():
                conn.putheader(k, v)
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
            return resp.status, dict(resp.getheaders()), data

        bearer = {"Authorization": "Bearer " + DEFAULT_API_KEY}
        seen, after, pages = [], None, 0
        while pages < 50:
            q = "?limit=2" if after is None else "?after=%s&limit=2" % after
            st, _, data = call("GET", list_path + q, bearer)
            if st != 200:
                break
            doc = json.loads(data)
            seen += [p["id"] for p in doc["data"]]
            pages += 1
            if not doc["has_more"]:
                break
            after = doc["data"][-1]["id"]
        expected = [p["id"] for p in app.get_projects("us-east-1")]
        check("http: bearer pagination limit=2 returns every project once",
              seen == expected and len(expected) == 12, "%r" % seen)
        st, _, _ = call("GET", list_path, {"Authorization": "Bearer wrong"})
        check("http: wrong bearer -> 401", st == 401)
        st, _, _ = call("GET", list_path)
        check("http: missing Authorization -> 401", st == 401)
        st, _, _ = call("GET", list_path + "?limit=101", bearer)
        check("http: limit=101 -> 400", st == 400)
        st, _, _ = call("GET", list_path + "?after=proj_nope", bearer)
        check("http: unknown after -> 400", st == 400)

        def signed_call(path, region="us-east-1", token=None):
            req = AWSRequest(method="GET", url="http://127.0.0.1:%d%s" % (port, path),
                             headers={"Host": "127.0.0.1:%d" % port})
            SigV4Auth(Credentials(akid, secret, token), "bedrock-mantle",
                      region).add_auth(req)
            return call("GET", path, dict(req.headers.items()))
        st, _, _ = signed_call(list_path + "?after=default&limit=2")
        check("http: botocore-signed request -> 200", st == 200)
        st, _, _ = signed_call("/mantle/eu-west-1/v1/organization/projects",
                               region="us-east-1")
        check("http: SigV4 region != path region -> 403", st == 403)

        st, _, _ = call("POST", "/_fake/faults", body=json.dumps(
            {"surface": "projects", "kind": "throttle", "count": 1,
             "after_requests": 1, "retry_after": 2}).encode())
        check("http: add fault -> 201", st == 201)
        st1, _, _ = call("GET", list_path, bearer)
        st2, h2, _ = call("GET", list_path, bearer)
        st3, _, _ = call("GET", list_path, bearer)
        check("http: throttle after 1 request, once",
              (st1, st2, st3) == (200, 429, 200) and h2.get("Retry-After") == "2",
              "%r" % ((st1, st2, st3),))
        st, _, data = call("GET", "/_fake/requests")
        c = json.loads(data)["projects"]
        check("http: counters", c["by_status"].get("429") == 1 and c["auth"]["sigv4"] == 2,
              "%r" % c)
        st, _, _ = call("GET", "/nope")
        check("http: unknown path -> 404", st == 404)
    finally:
        stop_server(app, server, thread)

    print("self-test: %s" % ("PASS" if not failures else "FAIL (%d)" % len(failures)))
    return 0 if not failures else 1


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description="Loopback fake of the AWS surfaces used by "
                                "bedrock-cost-exporter (Bedrock Projects API, ...).")
    p.add_argument("--host", default="127.0.0.1", help="must be 127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--port-file", help="write the bound port here (atomically)")
    p.add_argument("--api-key", default=DEFAULT_API_KEY)
    p.add_argument("--access-key-id", default=DEFAULT_ACCESS_KEY_ID)
    p.add_argument("--secret-access-key", default=DEFAULT_SECRET_ACCESS_KEY)
    p.add_argument("--session-token", default=None)
    p.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="add N synthetic projects to us-east-1")
    p.add_argument("--quiet", action="store_true", help="no access log")
    p.add_argument("--self-test", action="store_true", help="run the self-test and exit")
    args = p.parse_args(argv)
    if args.host != "127.0.0.1":
        p.error("refusing to bind %r: only 127.0.0.1 is allowed" % args.host)
    if args.synthetic < 0:
        p.error("--synthetic must be >= 0")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.self_test:
        return self_test()
    app = FakeAWS(Config(api_key=args.api_key, access_key_id=args.access_key_id,
                         secret_access_key=args.secret_access_key,
                         session_token=args.session_token, synthetic=args.synthetic,
                         quiet=args.quiet))
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        server, thread = start_server(app, args.host, args.port)
    except OSError as exc:
        log("cannot bind %s:%d: %s" % (args.host, args.port, exc))
        return 1
    port = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    sys.stdout.write("fake_aws listening on http://127.0.0.1:%d\n" % port)
    sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    stop_server(app, server, thread)
    if args.port_file:
        try:
            with open(args.port_file) as fh:
                if fh.read().strip() == str(port):
                    os.unlink(args.port_file)
        except OSError:
            pass
    if not args.quiet:
        log("shut down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
