#!/usr/bin/env python3
"""fake_aws.py - a loopback fake of the AWS surfaces bedrock-cost-exporter talks to.

Python 3 standard library only, plus botocore for SigV4 verification and the
service models (request validation).

Surfaces (each one a Surface subclass registered in SURFACE_CLASSES; the
dispatch table maps a path prefix to a surface):

  projects   GET /mantle/{region}/v1/organization/projects[?limit=L&after=ID]
             GET /mantle/{region}/v1/organization/projects/{id}
             (Bedrock "bedrock-mantle" Projects API, OpenAI style)
  ce         POST /ce/  awsJson1.1, X-Amz-Target AWSInsightsIndexService.<Op>:
             GetCostAndUsage, GetDimensionValues, GetCostForecast,
             ListCostAllocationTags, over an in-memory ledger of daily cost rows
  sts        POST /sts/ query protocol (JSON with Accept: application/json, else XML):
             AssumeRole, AssumeRoleWithWebIdentity, GetCallerIdentity
  imds       PUT /latest/api/token, GET /latest/meta-data/iam/security-credentials/[role]
             (IMDSv2 only)
  container  GET /container-credentials[/...] (ECS / EKS Pod Identity style)
  cloudwatch POST /monitoring/{region} awsJson1.0, X-Amz-Target
             GraniteServiceVersion20100801.<Op>: GetMetricData, ListMetrics of the
             AWS/BedrockMantle token metrics, derived from the ledger's Bedrock rows
  s3         GET|PUT|HEAD /s3/{bucket}/{key...} (path-style) and /s3vh/{key...} with
             Host {bucket}.localhost:PORT (virtual-hosted): GetObject, HeadObject,
             PutObject with If-Match / If-None-Match, objects in memory, S3 XML errors;
             ListObjectsV2: GET /s3/{bucket}/?list-type=2&prefix=P[&continuation-token=T]
             [&max-keys=N] (or /s3vh/?list-type=2&...), the query checked against
             botocore's model and signed in its canonical form, at most
             min(max-keys, 1000, --s3-list-page-size) keys per page, opaque tokens
  organizations  POST /organizations[/] awsJson1.1, X-Amz-Target
             AWSOrganizationsV20161128.ListAccounts (SigV4 "organizations", us-east-1):
             the management account and the members of the fake's organization,
             paginated (MaxResults 1..20); management-account credentials only

The organization (--org-accounts N, PUT /_fake/organization): ACCOUNT_ID is the
management account (the single-account seed); members 200000000001.. each have
projects in --org-regions and ledger rows with linked_account. STS AssumeRole
into arn:aws:iam::<member>:role/<--org-role-name> (signed by the management
account) issues credentials bound to that member: projects and ce then answer
that member's data, GetCallerIdentity its account. Every other credential is
the management account's, which sees every account's rows in ce (LINKED_ACCOUNT
in Filter and GroupBy). Without members everything is as in a single account.

AWS Data Exports (CUR 2.0), PUT /_fake/data_exports: the fake writes an export of its
ledger into its S3 (overwrite mode), for the previous and the current month of its today:
  <prefix>/<export>/data/BILLING_PERIOD=YYYY-MM/<export>-00001.csv.gz, -00002, ...
      gzip (mtime 0: the same lines give the same bytes and ETag) CSV, a header row and
      at most chunk_lines lines; every ledger row of the month (every account; form
      "aliased": Bedrock services only, form "map": every service) is 24 hourly lines
      whose costs sum to the row's exactly (Decimal);
  <prefix>/<export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json
      {"executionId","exportArn","exportName","billingPeriod","bucket","columns",
       "dataFiles":["s3://bucket/key",...],"additionalOutputFiles":[]}, written after the
      data files. Chunks a re-run no longer needs hold a header-only gzip CSV.
  Form "aliased" columns: bill_billing_period_start_date, line_item_usage_account_id,
  line_item_usage_start_date, line_item_usage_end_date, line_item_product_code,
  product_product_name, bill_billing_entity, line_item_usage_type,
  line_item_line_item_type, line_item_usage_amount, pricing_unit,
  line_item_unblended_cost, line_item_iam_principal, then one column per tag key (lower
  case, [^a-z0-9_] -> _). Form "map": the same minus the tag columns, plus
  identity_line_item_id, bill_payer_account_id, line_item_currency_code, product and
  resource_tags (map columns as JSON objects, keys user_<tag column>; an assumption).
  Faults (current month only): truncated_gzip, missing_chunk, parquet, bad_columns,
  huge_field, hostile_quotes. README.md, "Data Exports (CUR 2.0)", has every rule.

Temporary credentials issued by sts, imds and container are accepted by the
SigV4 surfaces (ce, cloudwatch, sts, projects, s3, organizations) until they
expire. ce, cloudwatch and organizations request bodies are checked against
botocore's service models (--no-model-validation turns that off).

Control API (no auth), shared by all surfaces:

  POST   /_fake/faults             {"surface":S,"kind":K,"count":N,"after_requests":M,...}
  GET    /_fake/faults             list the queued faults
  DELETE /_fake/faults[?surface=S] clear faults
  PUT    /_fake/projects/{region}[?account=ID]  JSON list of project objects (replaces
                                   the region of the management account, or of member ID)
  GET    /_fake/projects/{region}[?account=ID]  current data of a region
  GET|PUT /_fake/organization      the organization: members, role name, external id,
                                   regions, projects per region (PUT rebuilds the members'
                                   projects and ledger rows)
  GET    /_fake/ledger[?start=&end=&account=]  Cost Explorer ledger rows (each with its
                                   linked_account) and "today"
  PUT    /_fake/ledger             replace the ledger
  POST   /_fake/ledger/rows        append rows
  GET|PUT /_fake/allocation_tags   cost allocation tag statuses
  POST|GET|DELETE /_fake/cloudwatch/spike   multiply a project's CloudWatch tokens from now
  GET    /_fake/cloudwatch/spend?region=&date=[&until=]  CloudWatch tokens and USD per project
  GET    /_fake/cloudwatch/rates   USD per million tokens per model
  GET|PUT|DELETE /_fake/s3/object?bucket=B&key=K  an S3 object as another writer sees it
  GET    /_fake/s3/objects[?bucket=B]  the stored S3 objects (no bodies)
  PUT    /_fake/data_exports       {"bucket","prefix","export_name","form":"aliased"|"map",
                                   "chunk_lines","fault","principals"} configure the Data
                                   Exports export and run it once
  POST   /_fake/data_exports/run   run it again from the current ledger
  GET    /_fake/data_exports       the configuration and, per billing period, executionId,
                                   manifest key, data files (key, ETag, lines)
  DELETE /_fake/data_exports       remove the export's objects, turn it off
  GET    /_fake/data_exports/sums?period=YYYY-MM[&bedrock_only=1]  Decimal sums of the
                                   lines written (total, by account and tags, by line item
                                   type, by principal, by usage type, by hour)
  GET    /_fake/credentials        issued temporary credentials (no secrets)
  POST   /_fake/credentials/expire expire every issued temporary credential now
  GET    /_fake/config             today, page size, lifetimes, ...
  PUT    /_fake/config             {"today": "YYYY-MM-DD"} moves the fake's today (null: the
                                   clock); {"s3_list_page_size": N} ListObjectsV2 keys per page
  POST   /_fake/reset              default seed (and the command-line organization), no
                                   faults, zero counters, no S3 object, no export
  GET    /_fake/requests           counters per surface
  GET    /_fake/requests/log[?surface=S]  recent requests (method, path, query, auth, status, fault)
  POST   /_fake/requests/reset     zero counters and the request log
  GET    /_fake/health             {"ok": true}

Run `fake_aws.py --help` for the command line, and `fake_aws.py --self-test`
to check the SigV4 verifier and every surface end to end. README.md next to
this file documents the exact rules (Estimated, forecast, amounts, paging).
"""

import argparse
import base64
import binascii
import calendar
import collections
import copy
import csv
import datetime
import decimal
import email.utils
import hashlib
import gzip
import hmac
import http.client
import io
import json
import math
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import botocore.session
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.compat import HTTPHeaders
    from botocore.config import Config as BotocoreConfig
    from botocore.parsers import RestXMLParser
    from botocore.credentials import Credentials
    from botocore.utils import parse_to_aware_datetime
    from botocore.validate import ParamValidator
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
EXPIRED_TOKEN_MESSAGE = "The security token included in the request is expired"
INVALID_TOKEN_MESSAGE = "The security token included in the request is invalid."
REQUEST_LOG_MAX = 10000
MAX_REQUEST_BODY = 64 * 1024 * 1024


class BodyTooLarge(ValueError):
    """A request body over MAX_REQUEST_BODY (size: the announced or read-so-far bytes)."""

    def __init__(self, size, message="request body too large"):
        super().__init__(message)
        self.size = size


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


class _VerifierS3SigV4Auth(S3SigV4Auth):
    """S3's flavour of _VerifierSigV4Auth: the canonical URI is the path exactly as
    sent (S3SigV4Auth neither normalises nor encodes it again)."""

    headers_to_sign = _VerifierSigV4Auth.headers_to_sign


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

    For expected_service "s3" the canonical request is S3's (botocore's S3SigV4Auth):
    the URI path as sent, not normalised or URI-encoded a second time. Every other
    service gets the generic SigV4 canonical URI (normalised, each segment encoded again).
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

    signer_class = _VerifierS3SigV4Auth if service == "s3" else _VerifierSigV4Auth
    signer = signer_class(Credentials(akid, secret, token), service, region)
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

    def take(self, surface, raw_path, ctx=None, surface_obj=None):
        """Return the fault that applies to this request (or None).

        Every queued fault of the surface whose `match` fits sees the request:
        faults still skipping (after_requests) count it down; the first fault
        that is past its skip window applies and loses one of its count.
        Faults therefore apply in the order they were added.

        With surface_obj given, `match` is tested against surface_obj.match_text(ctx)
        (the raw path and query; POST-body surfaces add the body), an "operation"
        parameter must equal ctx.operation on surfaces that declare operations,
        and surface_obj.fault_applies(fault, ctx) can skip faults that make no
        sense for this request (e.g. change_between_pages on a first page).
        """
        chosen = None
        text = raw_path
        if surface_obj is not None and ctx is not None:
            text = surface_obj.match_text(ctx)
        for f in self.faults:
            if f.surface != surface or f.remaining == 0:
                continue
            if f.match is not None and f.match not in text:
                continue
            if surface_obj is not None and ctx is not None:
                op = f.params.get("operation")
                if surface_obj.operations and op is not None and \
                        op != getattr(ctx, "operation", None):
                    continue
                if not surface_obj.fault_applies(f, ctx):
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

def retry_after_headers(fault):
    """[("Retry-After", seconds)] when a throttle fault sets retry_after (a whole float is
    sent as an integer), else []."""
    if "retry_after" not in fault.params:
        return []
    ra = fault.params["retry_after"]
    if isinstance(ra, float) and ra.is_integer():
        ra = int(ra)
    return [("Retry-After", str(ra))]


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
    operations = ()              # names a fault's "operation" parameter may take
    json_indent = None           # indent of JSON bodies rewritten by faults
    content_type = "application/json"
    accepts_oversize = False     # True: a body over MAX_REQUEST_BODY reaches resolve()
    #                              (empty, ctx.body_too_large = its size) instead of the
    #                              generic 400

    def __init__(self, app):
        self.app = app

    # -- hooks used by the shared machinery (defaults keep old behaviour) ----
    def match_text(self, ctx):
        """Text a fault's `match` substring is looked for in."""
        return ctx.raw_path

    def fault_applies(self, fault, ctx):
        """False to let a fault skip this request (it is not counted either)."""
        return True

    def fault_response(self, ctx, fault):
        """Response for a surface-specific fault kind, or None to go on."""
        return None

    def sigv4_denied(self, ctx, result, expired):
        """Error Response for a rejected SigV4 request."""
        if expired:
            return Response.json_obj(403, {"message": EXPIRED_TOKEN_MESSAGE},
                                     headers=[("X-Fake-Auth-Error", result.reason)])
        return Response.json_obj(403, {"message": SIGV4_MISMATCH_MESSAGE},
                                 headers=[("X-Fake-Auth-Error", result.reason)])

    def count(self, ctx, resp, counters):
        """Update surface-specific counters (caller holds the app lock)."""

    def log_fields(self, ctx):
        """Extra fields for this request's /_fake/requests/log entry."""
        return {}

    def rewrap_json(self, resp, obj):
        """A Response carrying obj, rewritten by a wrong_types fault."""
        out = Response.json_obj(200, obj, headers=resp.headers, indent=self.json_indent)
        out.content_type = resp.content_type
        return out

    # -- routing / auth ------------------------------------------------------
    def resolve(self, ctx):
        """Return a callable endpoint(ctx) -> Response, or a Response (404/405)."""
        raise NotImplementedError

    def authenticate(self, ctx, endpoint):
        """Return None when authorised, else an error Response."""
        raise NotImplementedError

    # -- counters -----------------------------------------------------------
    def new_counters(self):
        c = {"total": 0, "by_status": {},
             "auth": {scheme: 0 for scheme in self.auth_schemes}}
        if "sigv4" in self.auth_schemes:
            c["by_account"] = {}      # authenticated requests per account of the credentials
        return c

    # -- faults -------------------------------------------------------------
    def validate_fault(self, kind, params):
        if self.operations and "operation" in params and \
                params["operation"] not in self.operations:
            raise FaultError("operation must be one of %s" % ", ".join(self.operations))

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
        return Response(200, body, content_type=self.content_type)

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

        return Response(200, stream=gen(), length=total, content_type=self.content_type)


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


def project_arn(region, pid, account=ACCOUNT_ID):
    return "arn:aws:bedrock-mantle:%s:%s:project/%s" % (region, account, pid)


def make_project(region, name, created_at, tags, status="active", pid=None,
                 account=ACCOUNT_ID):
    pid = pid or project_id_for(region, name)
    return {"id": pid, "object": "organization.project", "name": name,
            "arn": project_arn(region, pid, account), "status": status,
            "created_at": created_at, "tags": dict(tags)}


def _ts(*t):
    return calendar.timegm(tuple(t) + (0, 0, 0))


DEFAULT_PROJECT_CREATED_AT = _ts(2026, 1, 5, 9, 0, 0)


def default_project(region, account=ACCOUNT_ID):
    return make_project(region, "Default project", DEFAULT_PROJECT_CREATED_AT, {},
                        pid="default", account=account)


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
    json_indent = 2
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
                ctx.account = ACCOUNT_ID         # the API key is the management account's
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
    @staticmethod
    def account(ctx):
        """The account whose projects a request sees: the one its SigV4 credentials
        are bound to (a member's after AssumeRole); the API key is the management
        account's."""
        return getattr(ctx, "account", None) or ACCOUNT_ID

    def list_projects(self, ctx):
        limit_raw = ctx.param("limit")
        limit = 20
        if limit_raw is not None:
            if not re.fullmatch(r"-?\d{1,9}", limit_raw) or not 1 <= int(limit_raw) <= 100:
                return openai_error(400, "Invalid 'limit': expected an integer between 1 "
                                    "and 100, got %r." % limit_raw, param="limit")
            limit = int(limit_raw)
        items = self.app.get_projects(ctx.region, self.account(ctx))
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
        for p in self.app.get_projects(ctx.region, self.account(ctx)):
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


# --------------------------------------------------------------------------
# Cost Explorer: the ledger and its default seed
# --------------------------------------------------------------------------

BEDROCK_SERVICE = "Amazon Bedrock"
CLAUDE_SERVICE = "Claude Sonnet 4.5 (Amazon Bedrock Edition)"
EC2_SERVICE = "Amazon Elastic Compute Cloud - Compute"
LAMBDA_SERVICE = "AWS Lambda"
SEED_BEDROCK_SERVICES = (BEDROCK_SERVICE, CLAUDE_SERVICE)

# Usage-type prefix -> region (the REGION dimension). No known prefix -> us-east-1,
# as AWS writes many us-east-1 usage types without one.
USAGE_TYPE_REGIONS = {
    "USE1": "us-east-1", "USE2": "us-east-2", "USW1": "us-west-1", "USW2": "us-west-2",
    "CAN1": "ca-central-1", "SAE1": "sa-east-1",
    "EU": "eu-west-1", "EUW2": "eu-west-2", "EUW3": "eu-west-3", "EUC1": "eu-central-1",
    "EUC2": "eu-central-2", "EUN1": "eu-north-1", "EUS1": "eu-south-1",
    "APN1": "ap-northeast-1", "APN2": "ap-northeast-2", "APN3": "ap-northeast-3",
    "APS1": "ap-southeast-1", "APS2": "ap-southeast-2", "APS3": "ap-south-1",
}
_USAGE_PREFIX_RE = re.compile(r"^([A-Z]{2,4}[0-9]?)-")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ONE_DAY = datetime.timedelta(days=1)
AMOUNT_PLACES = 10                     # seed amounts have at most 10 decimals


def region_of_usage_type(usage_type):
    m = _USAGE_PREFIX_RE.match(usage_type)
    if m and m.group(1) in USAGE_TYPE_REGIONS:
        return USAGE_TYPE_REGIONS[m.group(1)]
    return "us-east-1"


class LedgerError(ValueError):
    pass


def normalize_row(r, idx=0):
    """Validate one ledger row; returns the stored form (public keys plus
    _cost = Decimal and _region)."""
    if not isinstance(r, dict):
        raise LedgerError("row %d is not an object" % idx)
    date = r.get("date")
    if not isinstance(date, str) or not _DATE_RE.match(date):
        raise LedgerError("row %d: date must be YYYY-MM-DD, got %r" % (idx, date))
    try:
        datetime.date.fromisoformat(date)
    except ValueError:
        raise LedgerError("row %d: invalid date %r" % (idx, date))
    for key in ("service", "usage_type"):
        if not isinstance(r.get(key), str) or not r.get(key):
            raise LedgerError("row %d: %s must be a non-empty string" % (idx, key))
    tags = r.get("tags")
    if tags is None:
        tags = {}
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in tags.items()):
        raise LedgerError("row %d: tags must be an object of string values" % idx)
    cost = r.get("cost")
    if isinstance(cost, bool) or not isinstance(cost, (str, int, float)):
        raise LedgerError("row %d: cost must be a decimal string" % idx)
    try:
        dec = Decimal(str(cost).strip())
    except decimal.InvalidOperation:
        raise LedgerError("row %d: cost %r is not a decimal number" % (idx, cost))
    if not dec.is_finite():
        raise LedgerError("row %d: cost must be finite" % idx)
    out = {"date": date, "service": r["service"], "usage_type": r["usage_type"],
           "tags": dict(tags), "cost": cost.strip() if isinstance(cost, str) else str(cost)}
    for opt in ("region", "record_type", "linked_account"):
        if opt in r and r[opt] is not None:
            if not isinstance(r[opt], str) or not r[opt]:
                raise LedgerError("row %d: %s must be a non-empty string" % (idx, opt))
            out[opt] = r[opt]
    out["_cost"] = dec
    out["_region"] = out.get("region") or region_of_usage_type(out["usage_type"])
    return out


def public_row(row):
    return {k: v for k, v in row.items() if not k.startswith("_")}


def rows_from_json(data):
    if isinstance(data, dict) and isinstance(data.get("rows"), list):
        data = data["rows"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise LedgerError("expected a row, a list of rows or {\"rows\": [...]}")
    return [normalize_row(r, i) for i, r in enumerate(data)]


def load_ledger_file(path):
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise LedgerError("cannot read ledger file %s: %s" % (path, exc))
    return rows_from_json(data)


def _seed_spend_plan():
    """(key, tags, months, [(service, usage_type, base_cents)]) of the default seed.
    months is "all" or "previous" (spend only in the previous month)."""
    tags = {}
    for items in default_projects_seed(0).values():
        for p in items:
            tags[p["name"]] = dict(p["tags"])
    B, C = BEDROCK_SERVICE, CLAUDE_SERVICE

    def mantle(prefix, model, kind):
        return "%s-%s-mantle-%s-tokens-standard" % (prefix, model, kind)

    def mp(prefix, kind):
        return "%s-MP:%s_%sTokens-Units" % (prefix, prefix, kind)
    return [
        ("CustomerChatbot-Prod", tags["CustomerChatbot-Prod"], "all", [
            (B, mantle("USE1", "openai.gpt-oss-120b", "input"), 1800),
            (B, mantle("USE1", "openai.gpt-oss-120b", "output"), 3200),
            (C, mp("USE1", "Input"), 1200),
            (C, mp("USE1", "Output"), 2600),
            (B, mantle("USE1", "amazon.nova-pro-v1:0", "cache-read"), 150)]),
        ("CustomerChatbot-Dev", tags["CustomerChatbot-Dev"], "all", [
            (B, mantle("USE1", "openai.gpt-oss-20b", "input"), 120),
            (B, mantle("USE1", "openai.gpt-oss-20b", "output"), 260),
            (B, mantle("USE1", "amazon.nova-pro-v1:0", "input"), 90),
            (B, mantle("USE1", "amazon.nova-pro-v1:0", "output"), 210)]),
        ("DocSummarizer-Prod", tags["DocSummarizer-Prod"], "all", [
            (C, mp("USE1", "Input"), 2200),
            (C, mp("USE1", "Output"), 1400),
            (B, mantle("USE1", "amazon.nova-pro-v1:0", "input"), 600),
            (B, mantle("USE1", "amazon.nova-pro-v1:0", "output"), 900),
            (B, mantle("USE1", "amazon.nova-pro-v1:0", "cache-write"), 110)]),
        ("FraudDetection-Staging", tags["FraudDetection-Staging"], "previous", [
            (B, mantle("USE1", "openai.gpt-oss-120b", "input"), 300),
            (B, mantle("USE1", "openai.gpt-oss-120b", "output"), 500),
            (B, mantle("USE1", "amazon.nova-lite-v1:0", "input"), 60),
            (B, mantle("USE1", "amazon.nova-lite-v1:0", "output"), 80)]),
        ("Translator-Prod", tags["Translator-Prod"], "all", [
            (B, mantle("EU", "openai.gpt-oss-20b", "input"), 400),
            (B, mantle("EU", "openai.gpt-oss-20b", "output"), 700),
            (B, mantle("EU", "amazon.nova-lite-v1:0", "input"), 70),
            (B, mantle("EU", "amazon.nova-lite-v1:0", "output"), 95)]),
        ("untagged", {}, "all", [
            (B, mantle("USE1", "openai.gpt-oss-20b", "input"), 350),
            (B, mantle("USE1", "openai.gpt-oss-20b", "output"), 520),
            (C, mp("USE1", "Input"), 180),
            (C, mp("USE1", "Output"), 240)]),
        ("LegacyBot-Production", {"Application": "LegacyBot", "Environment": "Production"},
         "all", [
            (B, mantle("USE1", "openai.gpt-oss-120b", "input"), 240),
            (B, mantle("USE1", "openai.gpt-oss-120b", "output"), 410)]),
        ("CustomerChatbot-Prod/non-bedrock", tags["CustomerChatbot-Prod"], "all", [
            (EC2_SERVICE, "USE1-BoxUsage:m5.large", 230),
            (LAMBDA_SERVICE, "USE1-Lambda-GB-Second", 85),
            (LAMBDA_SERVICE, "USE1-Request", 12)]),
    ]


SPIKE_KEY = "CustomerChatbot-Prod"
SPIKE_FACTOR = 4
TODAY_PARTIAL_NUM, TODAY_PARTIAL_DEN = 4, 10
WEEKEND_NUM, WEEKEND_DEN = 7, 10


def seed_amount(date_s, key, usage_type, base_cents, weekend=False, spike=False,
                partial=False):
    """Deterministic cost string for one seed row (see README, "Amounts")."""
    h = hashlib.sha256(("%s|%s|%s" % (date_s, key, usage_type)).encode("utf-8")).digest()
    r1 = int.from_bytes(h[0:4], "big")
    r2 = int.from_bytes(h[4:12], "big")
    units = base_cents * 10 ** 8 * (700 + r1 % 600) // 1000   # 1e-10 USD, 0.7..1.3 x base
    units += r2 % 10 ** 8                                      # sub-cent noise
    if weekend:
        units = units * WEEKEND_NUM // WEEKEND_DEN
    if spike:
        units *= SPIKE_FACTOR
    if partial:
        units = units * TODAY_PARTIAL_NUM // TODAY_PARTIAL_DEN
    digits = 2 + h[12] % 9                                     # 2..10 decimals
    q = 10 ** (AMOUNT_PLACES - digits)
    units -= units % q
    if units <= 0:
        units = q
    return "%d.%0*d" % (units // 10 ** AMOUNT_PLACES, digits, (units % 10 ** AMOUNT_PLACES) // q)


def first_of_previous_month(today):
    return (today.replace(day=1) - ONE_DAY).replace(day=1)


def default_ledger_seed(today):
    start = first_of_previous_month(today)
    month_start = today.replace(day=1)
    yesterday = today - ONE_DAY
    plan = _seed_spend_plan()
    rows = []
    d = start
    while d <= today:
        ds = d.isoformat()
        for key, tags, months, items in plan:
            if months == "previous" and d >= month_start:
                continue
            for service, usage_type, base in items:
                cost = seed_amount(ds, key, usage_type, base, weekend=d.weekday() >= 5,
                                   spike=(key == SPIKE_KEY and d == yesterday and
                                          service in SEED_BEDROCK_SERVICES),
                                   partial=(d == today))
                rows.append(normalize_row({"date": ds, "service": service,
                                           "usage_type": usage_type, "tags": tags,
                                           "cost": cost}))
        d += ONE_DAY
    return rows


DEFAULT_ALLOCATION_TAGS = (("Application", "Active"), ("Environment", "Active"),
                           ("Team", "Active"), ("CostCenter", "Inactive"),
                           ("Owner", "Active"))
ALLOCATION_TAG_UPDATED = "2026-01-13T09:00:00Z"


def default_allocation_tags():
    out = collections.OrderedDict()
    for key, status in DEFAULT_ALLOCATION_TAGS:
        out[key] = {"TagKey": key, "Type": "UserDefined", "Status": status,
                    "LastUpdatedDate": ALLOCATION_TAG_UPDATED}
    return out


def allocation_tags_from_json(data):
    """{"Key": "Active"|"Inactive"|{"Status","Type","LastUpdatedDate"}} -> table."""
    if not isinstance(data, dict):
        raise LedgerError("expected an object {\"TagKey\": \"Active\"|\"Inactive\", ...}")
    out = collections.OrderedDict()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for key, val in data.items():
        if not key:
            raise LedgerError("tag keys must be non-empty")
        spec = {"Status": val} if isinstance(val, str) else val
        if not isinstance(spec, dict):
            raise LedgerError("tag %r: expected a status string or an object" % key)
        status = spec.get("Status")
        typ = spec.get("Type", "AWSGenerated" if key.startswith("aws:") else "UserDefined")
        if status not in ("Active", "Inactive"):
            raise LedgerError("tag %r: Status must be Active or Inactive" % key)
        if typ not in ("AWSGenerated", "UserDefined"):
            raise LedgerError("tag %r: Type must be AWSGenerated or UserDefined" % key)
        entry = {"TagKey": key, "Type": typ, "Status": status,
                 "LastUpdatedDate": spec.get("LastUpdatedDate", now)}
        if "LastUsedDate" in spec:
            entry["LastUsedDate"] = spec["LastUsedDate"]
        out[key] = entry
    return out


# --------------------------------------------------------------------------
# The organization: member accounts, their projects and their ledgers
# --------------------------------------------------------------------------

ORG_ID = "o-fakeorg0001"
ORG_MANAGEMENT_NAME = "management"
ORG_EMAIL_DOMAIN = "example.com"
DEFAULT_ORG_ROLE_NAME = "BedrockCostExporterRead"
DEFAULT_ORG_REGIONS = ("us-east-1",)
DEFAULT_ORG_PROJECTS = 3
ORG_MEMBER_ID_BASE = 200000000000      # member k (1-based) is "%012d" % (base + k)
ORG_MAX_ACCOUNTS = 1000
ORG_MAX_PROJECTS = 200
ORG_STATUSES = ("ACTIVE", "SUSPENDED")
ORG_MANAGEMENT_JOINED = 1748768400.123     # 2025-06-01T09:00:00.123Z
ORG_MEMBER_JOINED = 1756717200.5           # 2025-09-01T09:00:00.5Z, + k days
_ACCOUNT_ID_RE = re.compile(r"^\d{12}$")
_ROLE_NAME_RE = re.compile(r"^[\w+=,.@-]{1,64}$")
_REGION_NAME_RE = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d+$")

# (Application, Environment, Team, CostCenter, model) of the members' projects. Member i
# (0-based) gets kinds i, i+1, ... (mod 6) for its first projects, so neighbouring members
# share Application/Environment pairs (and member-01's first project has the management
# account's CustomerChatbot/Production pair): the same tags in two accounts are two projects.
# "claude" bills as CLAUDE_SERVICE (AWS Marketplace usage types).
ORG_PROJECT_KINDS = (
    ("CustomerChatbot", "Production", "CustomerExperience", "CC-1001", "openai.gpt-oss-120b"),
    ("SearchRAG", "Production", "Platform", "CC-4004", "amazon.nova-pro-v1:0"),
    ("CodeAssistant", "Development", "Platform", "CC-4004", "claude"),
    ("VoiceAgent", "Staging", "CustomerExperience", "CC-1001", "amazon.nova-lite-v1:0"),
    ("DocSummarizer", "Production", "DataScience", "CC-2002", "claude"),
    ("Translator", "Sandbox", "Localization", "CC-3003", "openai.gpt-oss-20b"),
)
REGION_USAGE_PREFIX = {region: prefix for prefix, region in USAGE_TYPE_REGIONS.items()}


def org_member_id(k):
    return "%012d" % (ORG_MEMBER_ID_BASE + k)


def org_member_name(k):
    return "member-%02d" % k


def org_email(name):
    return "aws+%s@%s" % (name, ORG_EMAIL_DOMAIN)


def usage_prefix_of_region(region):
    """The usage-type prefix of a region (USE1, EU, ...); regions without one get their
    initials and number (me-central-1 -> MC1); their rows carry an explicit region."""
    if region in REGION_USAGE_PREFIX:
        return REGION_USAGE_PREFIX[region]
    parts = region.split("-")
    return ("".join(x[0] for x in parts[:-1]) + parts[-1]).upper()[:5]


class OrgError(ValueError):
    pass


class Organization:
    """The fake's AWS Organization: the management account (ACCOUNT_ID, whose projects and
    ledger are the single-account seed) and its member accounts, each with the projects
    and ledger that org_member_layout() and org_member_ledger() derive from this object.

    accounts   [{"Id","Name","Status","Email"}] of the members, in the order given
    role_name  the role AssumeRole accepts in a member (arn:aws:iam::<id>:role/<name>)
    external_id  the ExternalId AssumeRole into a member must carry (None: none)
    regions    the regions the members have projects (and spend) in
    projects_per_region  projects per member per region (besides "default")"""

    def __init__(self, accounts=(), role_name=DEFAULT_ORG_ROLE_NAME, external_id=None,
                 regions=DEFAULT_ORG_REGIONS, projects_per_region=DEFAULT_ORG_PROJECTS):
        self.accounts = [dict(a) for a in accounts]
        self.role_name = role_name
        self.external_id = external_id or None
        self.regions = list(regions)
        self.projects_per_region = projects_per_region
        self.by_id = {a["Id"]: a for a in self.accounts}

    @classmethod
    def generated(cls, n, **kw):
        """n members 200000000001.., named member-01.., all ACTIVE."""
        accounts = [{"Id": org_member_id(k), "Name": org_member_name(k), "Status": "ACTIVE",
                     "Email": org_email(org_member_name(k))} for k in range(1, n + 1)]
        return cls(accounts, **kw)

    @classmethod
    def from_json(cls, data, base):
        """PUT /_fake/organization: a member missing from the object takes base's value
        (base = the command-line organization). Raises OrgError."""
        if not isinstance(data, dict):
            raise OrgError("expected an object {\"accounts\":[{\"Id\",\"Name\",\"Status\"}],"
                           " \"role_name\", \"external_id\", \"regions\", "
                           "\"projects_per_region\"}")
        extra = set(data) - {"accounts", "role_name", "external_id", "regions",
                             "projects_per_region"}
        if extra:
            raise OrgError("unknown member %r" % sorted(extra)[0])
        raw = data.get("accounts", base.accounts)
        if not isinstance(raw, list) or len(raw) > ORG_MAX_ACCOUNTS:
            raise OrgError("accounts must be a list of at most %d objects" % ORG_MAX_ACCOUNTS)
        accounts, seen = [], set()
        for i, a in enumerate(raw):
            if not isinstance(a, dict) or set(a) - {"Id", "Name", "Status", "Email"}:
                raise OrgError("accounts[%d] must be an object {Id, Name, Status[, Email]}"
                               % i)
            aid = a.get("Id")
            if not isinstance(aid, str) or not _ACCOUNT_ID_RE.match(aid):
                raise OrgError("accounts[%d].Id must be 12 digits" % i)
            if aid == ACCOUNT_ID:
                raise OrgError("accounts[%d].Id %s is the management account" % (i, aid))
            if aid in seen:
                raise OrgError("accounts[%d].Id %s is repeated" % (i, aid))
            seen.add(aid)
            name = a.get("Name", org_member_name(i + 1))
            if not isinstance(name, str) or not name:
                raise OrgError("accounts[%d].Name must be a non-empty string" % i)
            status = a.get("Status", "ACTIVE")
            if status not in ORG_STATUSES:
                raise OrgError("accounts[%d].Status must be ACTIVE or SUSPENDED" % i)
            email = a.get("Email", org_email(name.replace(" ", "-").lower()))
            if not isinstance(email, str) or "@" not in email:
                raise OrgError("accounts[%d].Email must be an e-mail address" % i)
            accounts.append({"Id": aid, "Name": name, "Status": status, "Email": email})
        role = data.get("role_name", base.role_name)
        if not isinstance(role, str) or not _ROLE_NAME_RE.match(role):
            raise OrgError("role_name must be an IAM role name ([\\w+=,.@-]{1,64})")
        ext = data.get("external_id", base.external_id)
        if ext is not None and (not isinstance(ext, str) or not _EXTERNAL_ID_RE.match(ext)):
            raise OrgError("external_id must be null or 2..1224 characters of "
                           "[\\w+=,.@:/-]")
        regions = data.get("regions", base.regions)
        if not isinstance(regions, list) or not regions or \
                not all(isinstance(r, str) and _REGION_NAME_RE.match(r) for r in regions) or \
                len(set(regions)) != len(regions):
            raise OrgError("regions must be a non-empty list of distinct region names")
        ppr = data.get("projects_per_region", base.projects_per_region)
        if not _is_int(ppr) or not 0 <= ppr <= ORG_MAX_PROJECTS:
            raise OrgError("projects_per_region must be an integer 0..%d" % ORG_MAX_PROJECTS)
        return cls(accounts, role, ext, regions, ppr)

    def member(self, account_id):
        return self.by_id.get(account_id)

    def role_arn(self, account_id):
        return "arn:aws:iam::%s:role/%s" % (account_id, self.role_name)

    def names(self):
        """{account id: name} of the management account and every member."""
        out = {ACCOUNT_ID: ORG_MANAGEMENT_NAME}
        out.update((a["Id"], a["Name"]) for a in self.accounts)
        return out

    def list_accounts(self):
        """Every account as ListAccounts describes it: the management account first, then
        the members in the order given."""
        def entry(aid, name, email, status, method, joined):
            return collections.OrderedDict([
                ("Id", aid),
                ("Arn", "arn:aws:organizations::%s:account/%s/%s" % (ACCOUNT_ID, ORG_ID, aid)),
                ("Email", email), ("Name", name), ("Status", status),
                ("JoinedMethod", method), ("JoinedTimestamp", joined)])
        out = [entry(ACCOUNT_ID, ORG_MANAGEMENT_NAME, org_email(ORG_MANAGEMENT_NAME),
                     "ACTIVE", "INVITED", ORG_MANAGEMENT_JOINED)]
        for k, a in enumerate(self.accounts, 1):
            out.append(entry(a["Id"], a["Name"], a["Email"], a["Status"], "CREATED",
                             ORG_MEMBER_JOINED + 86400 * k))
        return out

    def to_json(self):
        return collections.OrderedDict([
            ("organization_id", ORG_ID),
            ("management_account", {"Id": ACCOUNT_ID, "Name": ORG_MANAGEMENT_NAME,
                                    "Email": org_email(ORG_MANAGEMENT_NAME)}),
            ("accounts", [dict(a) for a in self.accounts]),
            ("role_name", self.role_name),
            ("external_id", self.external_id),
            ("regions", list(self.regions)),
            ("projects_per_region", self.projects_per_region),
            ("role_arns", {a["Id"]: self.role_arn(a["Id"]) for a in self.accounts})])


def org_project_kind(i, n):
    """(Application, Environment, Team, CostCenter, model) of member i's (0-based) n-th
    project (n counts across its regions): ORG_PROJECT_KINDS rotated by i while they last
    (distinct within the account), then Workload<NN> kinds shared by every member."""
    if n < len(ORG_PROJECT_KINDS):
        return ORG_PROJECT_KINDS[(i + n) % len(ORG_PROJECT_KINDS)]
    w = n - len(ORG_PROJECT_KINDS) + 1
    return ("Workload%02d" % w, SYNTH_ENVS[n % len(SYNTH_ENVS)],
            SYNTH_TEAMS[n % len(SYNTH_TEAMS)], SYNTH_CCS[n % len(SYNTH_CCS)],
            "openai.gpt-oss-20b")


def org_member_layout(org):
    """[(account id, region, project, model)] of every member project (without the
    "default" projects), in account, region, project order."""
    out = []
    for i, a in enumerate(org.accounts):
        aid = a["Id"]
        for r, region in enumerate(org.regions):
            for j in range(org.projects_per_region):
                n = r * org.projects_per_region + j
                app, env, team, cc, model = org_project_kind(i, n)
                name = "%s-%s" % (app, env)
                tags = {"Application": app, "Environment": env, "Team": team,
                        "CostCenter": cc}
                p = make_project(region, name, _ts(2026, 2, 2, 9, 0, 0) + 86400 * i +
                                 3600 * n, tags, pid=project_id_for(region, aid + "/" + name),
                                 account=aid)
                out.append((aid, region, p, model))
    return out


def org_member_projects(org):
    """{account id: {region: [projects]}}: "default" plus the layout's projects."""
    out = {a["Id"]: {region: [default_project(region, a["Id"])] for region in org.regions}
           for a in org.accounts}
    for aid, region, p, _ in org_member_layout(org):
        out[aid][region].append(p)
    return {aid: {region: _sort_projects(items) for region, items in regions.items()}
            for aid, regions in out.items()}


def _org_usage_types(prefix, model):
    """[(service, usage_type)] of a member project's model: input and output tokens."""
    if model == "claude":
        return [(CLAUDE_SERVICE, "%s-MP:%s_%sTokens-Units" % (prefix, prefix, kind))
                for kind in ("Input", "Output")]
    return [(BEDROCK_SERVICE, "%s-%s-mantle-%s-tokens-standard" % (prefix, model, kind))
            for kind in ("input", "output")]


def _org_base_cents(key, usage_type):
    h = hashlib.sha256(("%s|%s" % (key, usage_type)).encode("utf-8")).digest()
    return 80 + int.from_bytes(h[0:2], "big") % 1200


def org_member_ledger(org, today):
    """The members' ledger rows (README, "Organization"), each with linked_account and
    region, for every day from the first of the previous month through today: per
    project its input and output tokens (tagged with the project's tags), per account
    untagged Bedrock spend and non-Bedrock EC2 spend (tagged like its first project), both
    in its first region. Amounts follow seed_amount() with key
    "<account>/<region>/<project name>" ("<account>/untagged", "<account>/non-bedrock"):
    weekends x0.7, today partial x0.4, no spike."""
    plan = {}                        # account -> [(key, tags, region, service, ut, base)]
    for aid, region, p, model in org_member_layout(org):
        key = "%s/%s/%s" % (aid, region, p["name"])
        for service, ut in _org_usage_types(usage_prefix_of_region(region), model):
            plan.setdefault(aid, []).append((key, p["tags"], region, service, ut,
                                             _org_base_cents(key, ut)))
    layout_first = {}
    for aid, region, p, _ in org_member_layout(org):
        layout_first.setdefault(aid, p["tags"])
    for a in org.accounts:
        aid = a["Id"]
        region = org.regions[0]
        prefix = usage_prefix_of_region(region)
        items = plan.setdefault(aid, [])
        ut = "%s-openai.gpt-oss-20b-mantle-input-tokens-standard" % prefix
        items.append(("%s/untagged" % aid, {}, region, BEDROCK_SERVICE, ut,
                      _org_base_cents(aid + "/untagged", ut)))
        ut = "%s-BoxUsage:m5.large" % prefix
        items.append(("%s/non-bedrock" % aid, layout_first.get(aid, {}), region, EC2_SERVICE,
                      ut, _org_base_cents(aid + "/non-bedrock", ut)))
    rows = []
    d = first_of_previous_month(today)
    while d <= today:
        ds = d.isoformat()
        for a in org.accounts:
            for key, tags, region, service, ut, base in plan[a["Id"]]:
                cost = seed_amount(ds, key, ut, base, weekend=d.weekday() >= 5,
                                   partial=(d == today))
                rows.append(normalize_row({"date": ds, "service": service, "usage_type": ut,
                                           "region": region, "tags": tags, "cost": cost,
                                           "linked_account": a["Id"]}))
        d += ONE_DAY
    return rows


def row_account(row):
    """The account a ledger row belongs to (LINKED_ACCOUNT): linked_account, or the
    management account."""
    return row.get("linked_account", ACCOUNT_ID)


def ledger_public_row(row):
    """A ledger row as GET /_fake/ledger shows it: with its account filled in."""
    out = public_row(row)
    out["linked_account"] = row_account(row)
    return out


# --------------------------------------------------------------------------
# Cost Explorer: query engine
# --------------------------------------------------------------------------

CE_COST_METRICS = ("AmortizedCost", "BlendedCost", "NetAmortizedCost", "NetUnblendedCost",
                   "UnblendedCost")
CE_METRICS = CE_COST_METRICS + ("UsageQuantity", "NormalizedUsageAmount")
CE_FORECAST_METRICS = ("AMORTIZED_COST", "BLENDED_COST", "NET_AMORTIZED_COST",
                       "NET_UNBLENDED_COST", "UNBLENDED_COST")
CE_DIMENSIONS = ("SERVICE", "USAGE_TYPE", "REGION", "LINKED_ACCOUNT", "RECORD_TYPE")
CE_MATCH_OPTIONS = ("EQUALS", "ABSENT", "STARTS_WITH", "ENDS_WITH", "CONTAINS",
                    "CASE_SENSITIVE", "CASE_INSENSITIVE")
CE_STRICT_OPTIONS = {"Dimensions": ("EQUALS", "CASE_SENSITIVE"),
                     "Tags": ("EQUALS", "ABSENT", "CASE_SENSITIVE")}
CE_MAX_DAYS = 3700
FORECAST_WINDOW_DAYS = 7
FORECAST_LOWER = Decimal("0.85")
FORECAST_UPPER = Decimal("1.15")
FORECAST_QUANTUM = Decimal("1E-10")


class CeError(Exception):
    def __init__(self, name, message, status=400, coral=False):
        super().__init__(message)
        self.name = name
        self.message = message
        self.status = status
        self.coral = coral


def ce_validation(message):
    return CeError("ValidationException", message)


def ce_context():
    ctx = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)
    return decimal.localcontext(ctx)


def fmt_amount(d):
    """A Decimal as AWS writes amounts: plain notation, full precision."""
    s = format(d, "f")
    return "0" if s in ("-0", "0") else s


def dim_value(row, key):
    if key == "SERVICE":
        return row["service"]
    if key == "USAGE_TYPE":
        return row["usage_type"]
    if key == "REGION":
        return row["_region"]
    if key == "LINKED_ACCOUNT":
        return row_account(row)
    if key == "RECORD_TYPE":
        return row.get("record_type", "Usage")
    raise KeyError(key)


class CeView:
    """Ledger rows as Cost Explorer sees them: tag keys whose cost allocation
    status is not Active are invisible (they read as absent)."""

    def __init__(self, rows, allocation_tags):
        self.rows = rows
        self.inactive = {k for k, v in allocation_tags.items() if v.get("Status") != "Active"}

    def tag(self, row, key):
        if key in self.inactive:
            return ""
        return row["tags"].get(key, "")


def parse_ymd(value, field):
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise ce_validation("%s: expected a date YYYY-MM-DD, got %s"
                            % (field, json.dumps(value)))
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise ce_validation("%s: invalid date %s" % (field, value))


def parse_time_period(tp):
    if not isinstance(tp, dict):
        raise ce_validation("TimePeriod is required: {\"Start\": \"YYYY-MM-DD\", "
                            "\"End\": \"YYYY-MM-DD\"}")
    start = parse_ymd(tp.get("Start"), "TimePeriod.Start")
    end = parse_ymd(tp.get("End"), "TimePeriod.End")
    if start >= end:
        raise ce_validation("Start date (and hour) should be before end date (and hour)")
    if (end - start).days > CE_MAX_DAYS:
        raise ce_validation("TimePeriod is longer than %d days" % CE_MAX_DAYS)
    return start, end


def parse_granularity(value):
    if value in ("DAILY", "MONTHLY"):
        return value
    if value == "HOURLY":
        raise ce_validation("HOURLY granularity is not supported by fake_aws (hourly data "
                            "is an opt-in feature)")
    if value is None:
        raise ce_validation("Granularity is required (DAILY or MONTHLY)")
    raise ce_validation("Granularity must be DAILY or MONTHLY, got %s" % json.dumps(value))


def parse_metrics(value):
    if not isinstance(value, list) or not value:
        raise ce_validation("Metrics is required: a non-empty list of %s"
                            % ", ".join(CE_METRICS))
    for m in value:
        if m not in CE_METRICS:
            raise ce_validation("Metrics: unknown metric %s (valid: %s)"
                                % (json.dumps(m), ", ".join(CE_METRICS)))
    out = []
    for m in value:
        if m not in out:
            out.append(m)
    return out


def value_matcher(values, options, path):
    ops = set(options)
    if "CASE_SENSITIVE" in ops and "CASE_INSENSITIVE" in ops:
        raise ce_validation("%s.MatchOptions: CASE_SENSITIVE and CASE_INSENSITIVE "
                            "exclude each other" % path)
    ci = "CASE_INSENSITIVE" in ops
    cmp_ops = ops & {"EQUALS", "CONTAINS", "STARTS_WITH", "ENDS_WITH"}
    absent = "ABSENT" in ops
    if not cmp_ops and not absent:
        cmp_ops = {"EQUALS"}
    if cmp_ops and not values:
        raise ce_validation("%s.Values must be a non-empty list" % path)

    def norm(x):
        return x.lower() if ci else x
    vals = [norm(x) for x in values]

    def match(v):
        if absent and v == "":
            return True
        nv = norm(v)
        for x in vals:
            if ("EQUALS" in cmp_ops and nv == x) or \
                    ("CONTAINS" in cmp_ops and x in nv) or \
                    ("STARTS_WITH" in cmp_ops and nv.startswith(x)) or \
                    ("ENDS_WITH" in cmp_ops and nv.endswith(x)):
                return True
        return False
    return match


_EXPR_KEYS = ("And", "Or", "Not", "Dimensions", "Tags", "CostCategories")


def compile_filter(expr, view, strict=False, path="Filter"):
    """Cost Explorer Expression -> predicate(row). Raises CeError."""
    if not isinstance(expr, dict):
        raise ce_validation("%s must be an Expression object" % path)
    unknown = [k for k in expr if k not in _EXPR_KEYS]
    if unknown:
        raise ce_validation("%s: unknown field %s" % (path, unknown[0]))
    present = [k for k in _EXPR_KEYS if expr.get(k) is not None]
    if len(present) != 1:
        raise ce_validation("%s: an Expression must have exactly one of And, Or, Not, "
                            "Dimensions, Tags, CostCategories (got %s)"
                            % (path, ", ".join(present) or "none"))
    kind = present[0]
    val = expr[kind]
    if kind in ("And", "Or"):
        if not isinstance(val, list) or len(val) < 2:
            raise ce_validation("%s.%s must be a list of at least 2 expressions"
                                % (path, kind))
        subs = [compile_filter(e, view, strict, "%s.%s[%d]" % (path, kind, i))
                for i, e in enumerate(val)]
        if kind == "And":
            return lambda row: all(f(row) for f in subs)
        return lambda row: any(f(row) for f in subs)
    if kind == "Not":
        sub = compile_filter(val, view, strict, path + ".Not")
        return lambda row: not sub(row)
    if kind == "CostCategories":
        raise ce_validation("%s.CostCategories: cost categories are not supported by "
                            "fake_aws" % path)
    p = "%s.%s" % (path, kind)
    if not isinstance(val, dict):
        raise ce_validation("%s must be an object {Key, Values, MatchOptions}" % p)
    extra = [k for k in val if k not in ("Key", "Values", "MatchOptions")]
    if extra:
        raise ce_validation("%s: unknown field %s" % (p, extra[0]))
    key = val.get("Key")
    if not isinstance(key, str) or not key:
        raise ce_validation("%s.Key is required" % p)
    if kind == "Dimensions" and key not in CE_DIMENSIONS:
        raise ce_validation("%s.Key: dimension %s is not supported by fake_aws (supported: "
                            "%s)" % (p, json.dumps(key), ", ".join(CE_DIMENSIONS)))
    values = val.get("Values")
    if values is None:
        values = []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ce_validation("%s.Values must be a list of strings" % p)
    options = val.get("MatchOptions")
    if options is None:
        options = []
    if not isinstance(options, list) or not all(o in CE_MATCH_OPTIONS for o in options):
        raise ce_validation("%s.MatchOptions must be a list of %s"
                            % (p, ", ".join(CE_MATCH_OPTIONS)))
    if strict:
        bad = [o for o in options if o not in CE_STRICT_OPTIONS[kind]]
        if bad:
            raise ce_validation("%s.MatchOptions: %s is not supported for %s in "
                                "GetCostAndUsage (valid: %s)"
                                % (p, bad[0], kind, ", ".join(CE_STRICT_OPTIONS[kind])))
    matcher = value_matcher(values, options, p)
    if kind == "Dimensions":
        return lambda row: matcher(dim_value(row, key))
    return lambda row: matcher(view.tag(row, key))


def optional_filter(body, view, strict):
    if body.get("Filter") is None:
        return lambda row: True
    return compile_filter(body["Filter"], view, strict)


def parse_group_by(value, view):
    if value is None:
        return [], []
    if not isinstance(value, list):
        raise ce_validation("GroupBy must be a list of {Type, Key}")
    if len(value) > 2:
        raise ce_validation("GroupBy: at most 2 group definitions are allowed, got %d"
                            % len(value))
    defs, fns = [], []
    for i, g in enumerate(value):
        path = "GroupBy[%d]" % i
        if not isinstance(g, dict):
            raise ce_validation("%s must be an object {Type, Key}" % path)
        typ, key = g.get("Type"), g.get("Key")
        if typ not in ("DIMENSION", "TAG", "COST_CATEGORY"):
            raise ce_validation("%s.Type must be DIMENSION, TAG or COST_CATEGORY" % path)
        if not isinstance(key, str) or not key:
            raise ce_validation("%s.Key is required" % path)
        if typ == "COST_CATEGORY":
            raise ce_validation("%s: cost categories are not supported by fake_aws" % path)
        if typ == "DIMENSION" and key not in CE_DIMENSIONS:
            raise ce_validation("%s.Key: dimension %s is not supported by fake_aws "
                                "(supported: %s)" % (path, json.dumps(key),
                                                     ", ".join(CE_DIMENSIONS)))
        d = {"Type": typ, "Key": key}
        if d in defs:
            raise ce_validation("GroupBy: duplicate group definition %s %s" % (typ, key))
        defs.append(d)
        if typ == "DIMENSION":
            fns.append(lambda row, k=key: dim_value(row, k))
        else:
            fns.append(lambda row, k=key: "%s$%s" % (k, view.tag(row, k)))
    return defs, fns


def build_periods(start, end, granularity):
    out = []
    d = start
    while d < end:
        if granularity == "DAILY":
            e = d + ONE_DAY
        else:
            e = (d.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
        e = min(e, end)
        out.append((d, e))
        d = e
    return out


def period_estimated(start, end, granularity, today, estimated_days):
    """Estimated rule (README): MONTHLY periods of the current month, and any
    period whose last day is on or after today - (estimated_days - 1)."""
    if granularity == "MONTHLY" and (start.year, start.month) == (today.year, today.month):
        return True
    if estimated_days > 0:
        cutoff = today - datetime.timedelta(days=estimated_days - 1)
        if end - ONE_DAY >= cutoff:
            return True
    return False


def request_hash(operation, body, token_field):
    rest = {k: v for k, v in body.items() if k != token_field}
    text = operation + "\n" + json.dumps(rest, sort_keys=True, separators=(",", ":"),
                                         ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def make_page_token(offset, req_hash):
    raw = json.dumps({"v": 1, "offset": offset, "request": req_hash},
                     separators=(",", ":")).encode()
    return base64.b64encode(b"fake_aws-page\x00" + raw).decode("ascii")


def read_page_token(token, req_hash, total):
    """Offset encoded in token. InvalidNextTokenException for garbage (or an
    offset past the end), RequestChangedException for another request's token."""
    if not isinstance(token, str):
        raise CeError("InvalidNextTokenException", "Invalid pagination token")
    try:
        raw = base64.b64decode(token.encode("ascii"), validate=True)
        if not raw.startswith(b"fake_aws-page\x00"):
            raise ValueError("prefix")
        data = json.loads(raw[len(b"fake_aws-page\x00"):].decode("utf-8"))
        offset, h = data["offset"], data["request"]
        if not _is_int(offset) or offset < 0 or not isinstance(h, str):
            raise ValueError("fields")
    except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error):
        raise CeError("InvalidNextTokenException", "Invalid pagination token")
    if h != req_hash:
        raise CeError("RequestChangedException",
                      "The request parameters changed between pages: this NextPageToken "
                      "belongs to a different request")
    if offset > total:
        raise CeError("InvalidNextTokenException", "Invalid pagination token")
    return offset


def token_field_value(body, field):
    tok = body.get(field)
    if tok is None or tok == "":
        return None
    if not isinstance(tok, str):
        raise ce_validation("%s must be a string" % field)
    return tok


def ce_metrics_obj(metrics, total, count, bump=None):
    out = {}
    for m in metrics:
        if m in CE_COST_METRICS:
            amount = total if bump is None else total + bump
            out[m] = {"Amount": fmt_amount(amount), "Unit": "USD"}
        elif m == "UsageQuantity":
            out[m] = {"Amount": str(count), "Unit": "N/A"}
        else:
            out[m] = {"Amount": "0", "Unit": "N/A"}
    return out


def linked_account_attributes(values, account_names):
    """DimensionValueAttributes of LINKED_ACCOUNT values: the account name as
    "description" (as AWS answers), {} for an account the fake does not know."""
    names = account_names or {}
    return [{"Value": v, "Attributes": ({"description": names[v]} if v in names else {})}
            for v in values]


def ce_get_cost_and_usage(body, rows, allocation_tags, today, page_size, estimated_days,
                          strict=False, loop=False, bump_later_pages=None,
                          account_names=None):
    """GetCostAndUsage over rows; returns the response object. Raises CeError.
    account_names ({id: name}) names the LINKED_ACCOUNT groups in
    DimensionValueAttributes."""
    view = CeView(rows, allocation_tags)
    start, end = parse_time_period(body.get("TimePeriod"))
    granularity = parse_granularity(body.get("Granularity"))
    metrics = parse_metrics(body.get("Metrics"))
    pred = optional_filter(body, view, strict)
    defs, fns = parse_group_by(body.get("GroupBy"), view)
    token = token_field_value(body, "NextPageToken")
    periods = build_periods(start, end, granularity)
    index = {}
    for i, (ps, pe) in enumerate(periods):
        d = ps
        while d < pe:
            index[d.isoformat()] = i
            d += ONE_DAY
    buckets = [{} for _ in periods]
    with ce_context():
        for row in rows:
            i = index.get(row["date"])
            if i is None or not pred(row):
                continue
            key = tuple(f(row) for f in fns)
            b = buckets[i].get(key)
            if b is None:
                buckets[i][key] = [row["_cost"], 1]
            else:
                b[0] += row["_cost"]
                b[1] += 1
    grouped = bool(defs)
    per_period = [sorted(b.items()) if grouped else [] for b in buckets]
    sizes = [len(g) for g in per_period]
    total = sum(sizes)
    req_hash = request_hash("GetCostAndUsage", body, "NextPageToken")
    offset = read_page_token(token, req_hash, total) if token is not None else 0
    if grouped:
        lo, hi = offset, min(offset + page_size, total)
    else:
        lo, hi = 0, 0
    bump = bump_later_pages if (bump_later_pages is not None and offset > 0) else None
    results = []
    pos = 0
    la_index = [k for k, d in enumerate(defs)
                if d == {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}]
    page_accounts = set()
    with ce_context():
        for i, (ps, pe) in enumerate(periods):
            n, s_p = sizes[i], pos
            pos += n
            groups = []
            if grouped:
                if n > 0:
                    a, b = max(lo, s_p), min(hi, s_p + n)
                    if a >= b:
                        continue
                    for keys, (amount, count) in per_period[i][a - s_p:b - s_p]:
                        page_accounts.update(keys[k] for k in la_index)
                        groups.append({"Keys": list(keys),
                                       "Metrics": ce_metrics_obj(metrics, amount, count,
                                                                 bump)})
                elif not (lo <= s_p < hi or (s_p == total and hi == total)):
                    continue
                period_total = {}
            else:
                amount, count = buckets[i].get((), (Decimal(0), 0))
                period_total = ce_metrics_obj(metrics, amount, count)
            results.append({"TimePeriod": {"Start": ps.isoformat(), "End": pe.isoformat()},
                            "Total": period_total, "Groups": groups,
                            "Estimated": period_estimated(ps, pe, granularity, today,
                                                          estimated_days)})
    out = collections.OrderedDict()
    if grouped:
        out["GroupDefinitions"] = defs
    out["ResultsByTime"] = results
    out["DimensionValueAttributes"] = linked_account_attributes(sorted(page_accounts),
                                                                account_names)
    if hi < total:
        out["NextPageToken"] = make_page_token(hi, req_hash)
    elif loop:
        out["NextPageToken"] = make_page_token(0, req_hash)
    return out


def ce_get_dimension_values(body, rows, allocation_tags, page_size, strict=False,
                            loop=False, account_names=None):
    view = CeView(rows, allocation_tags)
    start, end = parse_time_period(body.get("TimePeriod"))
    dim = body.get("Dimension")
    if dim not in CE_DIMENSIONS:
        raise ce_validation("Dimension: %s is not supported by fake_aws (supported: %s)"
                            % (json.dumps(dim), ", ".join(CE_DIMENSIONS)))
    context = body.get("Context", "COST_AND_USAGE")
    if context not in ("COST_AND_USAGE", "RESERVATIONS", "SAVINGS_PLANS"):
        raise ce_validation("Context must be COST_AND_USAGE, RESERVATIONS or SAVINGS_PLANS")
    search = body.get("SearchString")
    if search is not None and not isinstance(search, str):
        raise ce_validation("SearchString must be a string")
    if body.get("SortBy") is not None and not isinstance(body.get("SortBy"), list):
        raise ce_validation("SortBy must be a list")
    max_results = body.get("MaxResults")
    if max_results is not None and (not _is_int(max_results) or not 1 <= max_results <= 1000):
        raise ce_validation("MaxResults must be an integer 1..1000")
    pred = optional_filter(body, view, strict)
    token = token_field_value(body, "NextPageToken")
    s, e = start.isoformat(), end.isoformat()
    values = set()
    if context == "COST_AND_USAGE":
        for row in rows:
            if s <= row["date"] < e and pred(row):
                values.add(dim_value(row, dim))
    values = sorted(values)
    if search:
        values = [v for v in values if search.lower() in v.lower()]
    size = max_results or page_size
    req_hash = request_hash("GetDimensionValues", body, "NextPageToken")
    offset = read_page_token(token, req_hash, len(values)) if token is not None else 0
    page = values[offset:offset + size]
    out = collections.OrderedDict()
    if dim == "LINKED_ACCOUNT":
        out["DimensionValues"] = linked_account_attributes(page, account_names)
    else:
        out["DimensionValues"] = [{"Value": v, "Attributes": {}} for v in page]
    out["ReturnSize"] = len(page)
    out["TotalSize"] = len(values)
    nxt = offset + size
    if nxt < len(values):
        out["NextPageToken"] = make_page_token(nxt, req_hash)
    elif loop:
        out["NextPageToken"] = make_page_token(0, req_hash)
    return out


def forecast_amounts(window_sum, days):
    """(mean, lower, upper) for a forecast period of `days` days (README)."""
    with ce_context():
        base = window_sum * days
        mean = (base / FORECAST_WINDOW_DAYS).quantize(FORECAST_QUANTUM)
        lower = (base * FORECAST_LOWER / FORECAST_WINDOW_DAYS).quantize(FORECAST_QUANTUM)
        upper = (base * FORECAST_UPPER / FORECAST_WINDOW_DAYS).quantize(FORECAST_QUANTUM)
    return mean, lower, upper


def ce_get_cost_forecast(body, rows, allocation_tags, today, strict=False):
    view = CeView(rows, allocation_tags)
    start, end = parse_time_period(body.get("TimePeriod"))
    if start < today:
        raise ce_validation("Start date must be equal to or later than the current date "
                            "(%s): forecasts cannot start in the past" % today.isoformat())
    metric = body.get("Metric")
    if metric in ("USAGE_QUANTITY", "NORMALIZED_USAGE_AMOUNT"):
        raise ce_validation("Metric %s is not supported by fake_aws (cost metrics only)"
                            % metric)
    if metric not in CE_FORECAST_METRICS:
        raise ce_validation("Metric must be one of %s, got %s"
                            % (", ".join(CE_FORECAST_METRICS), json.dumps(metric)))
    granularity = parse_granularity(body.get("Granularity"))
    if granularity == "DAILY" and (end - today).days > 93:
        raise ce_validation("DAILY forecasts can reach at most 3 months ahead")
    if (end - today).days > 549:
        raise ce_validation("forecasts can reach at most 18 months ahead")
    level = body.get("PredictionIntervalLevel", 80)
    if not _is_int(level) or not 51 <= level <= 99:
        raise ce_validation("PredictionIntervalLevel must be an integer 51..99")
    pred = optional_filter(body, view, strict)
    w_start = (today - datetime.timedelta(days=FORECAST_WINDOW_DAYS)).isoformat()
    w_end = today.isoformat()
    window_sum, n = Decimal(0), 0
    with ce_context():
        for row in rows:
            if w_start <= row["date"] < w_end and pred(row):
                window_sum += row["_cost"]
                n += 1
    if n == 0:
        raise CeError("DataUnavailableException",
                      "Insufficient amount of historical data to generate forecast.")
    results = []
    for ps, pe in build_periods(start, end, granularity):
        mean, lower, upper = forecast_amounts(window_sum, (pe - ps).days)
        results.append({"TimePeriod": {"Start": ps.isoformat(), "End": pe.isoformat()},
                        "MeanValue": fmt_amount(mean),
                        "PredictionIntervalLowerBound": fmt_amount(lower),
                        "PredictionIntervalUpperBound": fmt_amount(upper)})
    total, _, _ = forecast_amounts(window_sum, (end - start).days)
    return collections.OrderedDict([("Total", {"Amount": fmt_amount(total), "Unit": "USD"}),
                                    ("ForecastResultsByTime", results)])


def ce_list_cost_allocation_tags(body, rows, allocation_tags, loop=False):
    status = body.get("Status")
    if status is not None and status not in ("Active", "Inactive"):
        raise ce_validation("Status must be Active or Inactive")
    keys = body.get("TagKeys")
    if keys is not None and (not isinstance(keys, list) or not 1 <= len(keys) <= 100 or
                             not all(isinstance(k, str) for k in keys)):
        raise ce_validation("TagKeys must be a list of 1..100 strings")
    typ = body.get("Type")
    if typ is not None and typ not in ("AWSGenerated", "UserDefined"):
        raise ce_validation("Type must be AWSGenerated or UserDefined")
    max_results = body.get("MaxResults", 100)
    if not _is_int(max_results) or not 1 <= max_results <= 1000:
        raise ce_validation("MaxResults must be an integer 1..1000")
    token = token_field_value(body, "NextToken")
    items = [dict(v) for v in allocation_tags.values()
             if (status is None or v["Status"] == status) and
             (keys is None or v["TagKey"] in keys) and (typ is None or v["Type"] == typ)]
    last_used = {}
    for row in rows:
        for k in row["tags"]:
            if row["date"] > last_used.get(k, ""):
                last_used[k] = row["date"]
    for it in items:
        if "LastUsedDate" not in it and it["TagKey"] in last_used:
            it["LastUsedDate"] = last_used[it["TagKey"]] + "T00:00:00Z"
    req_hash = request_hash("ListCostAllocationTags", body, "NextToken")
    try:
        offset = read_page_token(token, req_hash, len(items)) if token is not None else 0
    except CeError as exc:
        if exc.name == "RequestChangedException":  # not in this operation's error list
            raise CeError("InvalidNextTokenException", exc.message)
        raise
    page = items[offset:offset + max_results]
    out = collections.OrderedDict([("CostAllocationTags", page)])
    nxt = offset + max_results
    if nxt < len(items):
        out["NextToken"] = make_page_token(nxt, req_hash)
    elif loop:
        out["NextToken"] = make_page_token(0, req_hash)
    return out


def ledger_group_sums(rows, allocation_tags, start, end, services=None, tag_keys=(),
                      dims=()):
    """Direct sums over the ledger, for tests: {(group key...): Decimal}."""
    view = CeView(rows, allocation_tags)
    out = {}
    with ce_context():
        for row in rows:
            if not start <= row["date"] < end:
                continue
            if services is not None and row["service"] not in services:
                continue
            key = tuple(["%s$%s" % (k, view.tag(row, k)) for k in tag_keys] +
                        [dim_value(row, d) for d in dims])
            out[key] = out.get(key, Decimal(0)) + row["_cost"]
    return out


# --------------------------------------------------------------------------
# Cost Explorer surface (awsJson1.1)
# --------------------------------------------------------------------------

CE_TARGET_PREFIX = "AWSInsightsIndexService."
CE_OPERATIONS = ("GetCostAndUsage", "GetDimensionValues", "GetCostForecast",
                 "ListCostAllocationTags")
CE_PAGINATED = ("GetCostAndUsage", "GetDimensionValues", "ListCostAllocationTags")
CE_ERROR_NS = "com.amazonaws.awsinsightsindexservice#"
CORAL_ERROR_NS = "com.amazon.coral.service#"
AMZ_JSON_11 = "application/x-amz-json-1.1"
AMZ_JSON_10 = "application/x-amz-json-1.0"


def ce_error_response(status, name, message, coral=False, headers=()):
    if coral:
        body = {"__type": CORAL_ERROR_NS + name, "message": message}
    else:
        body = {"__type": CE_ERROR_NS + name, "Message": message}
    r = Response.json_obj(status, body,
                          headers=[("x-amzn-RequestId", str(uuid.uuid4())),
                                   ("x-amzn-ErrorType", name)] + list(headers))
    r.content_type = AMZ_JSON_11
    return r


def sigv4_failure_kind(result):
    reason = result.reason or ""
    if reason.startswith("unknown access key id"):
        return "unknown_key"
    if "session token" in reason or "X-Amz-Security-Token" in reason:
        return "token"
    if reason.startswith("X-Amz-Date") and "from now" in reason:
        return "skew"
    if reason.startswith("credential scope"):
        return "scope"
    if reason == "signature mismatch":
        return "signature"
    return "malformed"


def _walk(obj, fn):
    if isinstance(obj, dict):
        fn(obj)
        for v in list(obj.values()):
            _walk(v, fn)
    elif isinstance(obj, list):
        for v in obj:
            _walk(v, fn)


class JsonProtocolSurface(Surface):
    """An AWS JSON-protocol surface (awsJson1.0 / awsJson1.1): POST with
    X-Amz-Target <target_prefix><Operation> and a JSON body, signed with SigV4;
    protocol and auth errors in AWS's Coral form.

    A subclass names its dialect below and implements path_region() and
    answer(); the rest (routing, auth, counters, log, botocore model validation,
    the common fault answers) is shared."""

    auth_schemes = ("sigv4", "none", "other")
    title = None                 # "Cost Explorer": in the routing error messages
    served_at = None             # "/ce/": in the routing error messages
    target_prefix = None         # X-Amz-Target prefix of every operation
    request_content_types = ()   # accepted request Content-Types (the first is named)
    sigv4_service = None         # SigV4 service (credential scope)
    model_service = None         # botocore service model the body is checked against
    model_error = None           # error name of a request that fails that check
    throttle_error = None        # error name of a throttle fault
    unavailable_error = None     # error name of a server_error fault with status 503
    internal_error = None        # error name of any other server_error fault
    log_region = False           # True: log entries carry the region as well
    extra_counters = ()          # further counters (from 0) that count() keeps
    error = None                 # staticmethod(status, name, message, coral=False,
    #                              headers=()) -> the error Response of this dialect

    def ok(self, obj):
        r = Response.json_obj(200, obj, headers=[("x-amzn-RequestId", str(uuid.uuid4()))])
        r.content_type = self.content_type
        return r

    def path_region(self, path):
        """The region a request to path is for, or None when path is not served."""
        raise NotImplementedError

    def answer(self, ctx, body):
        """The Response of ctx.operation on a valid body (a dict)."""
        raise NotImplementedError

    def new_counters(self):
        c = super().new_counters()
        c["by_operation"] = {}
        c["by_operation_status"] = {}
        c.update((name, 0) for name in self.extra_counters)
        c["model_violations"] = 0
        return c

    # -- routing / auth -------------------------------------------------------
    def resolve(self, ctx):
        ctx.operation = None
        ctx.json_body = None
        ctx.region = self.path_region(ctx.path)
        if ctx.region is None:
            return self.error(404, "UnknownOperationException",
                              "fake_aws: %s is served at POST %s, not %s"
                              % (self.title, self.served_at, ctx.path), coral=True)
        if ctx.method != "POST":
            return self.error(404, "UnknownOperationException",
                              "fake_aws: %s only answers POST" % self.title, coral=True)
        prefix, operations = self.target_prefix, self.operations
        target = (ctx.header("X-Amz-Target") or "").strip()
        op = target[len(prefix):] if target.startswith(prefix) else None
        if op not in operations:
            return self.error(400, "UnknownOperationException",
                              "fake_aws: unknown X-Amz-Target %r (expected %s<%s>)"
                              % (target, prefix, "|".join(operations)), coral=True)
        ctx.operation = op
        ctype = (ctx.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype not in self.request_content_types:
            return self.error(400, "SerializationException",
                              "fake_aws: Content-Type must be %s, got %r"
                              % (self.request_content_types[0], ctype), coral=True)
        try:
            text = ctx.body.decode("utf-8")
            ctx.json_body = json.loads(text) if text.strip() else {}
        except (UnicodeDecodeError, ValueError) as exc:
            ctx.json_body_error = str(exc)
        return self.endpoint

    def authenticate(self, ctx, endpoint):
        auth = ctx.header("Authorization")
        if auth is None or not auth.strip():
            ctx.auth_scheme = "none"
            return self.error(403, "MissingAuthenticationTokenException",
                              "Missing Authentication Token", coral=True)
        if auth.strip().split(None, 1)[0] == "AWS4-HMAC-SHA256":
            ctx.auth_scheme = "sigv4"
            return self.app.check_sigv4(ctx, self.sigv4_service, ctx.region)
        ctx.auth_scheme = "other"
        return self.error(403, "IncompleteSignatureException",
                          "Authorization header must use AWS4-HMAC-SHA256", coral=True)

    def sigv4_denied(self, ctx, result, expired):
        hdr = [("X-Fake-Auth-Error", result.reason)]
        if expired:
            return self.error(403, "ExpiredTokenException", EXPIRED_TOKEN_MESSAGE,
                              coral=True, headers=hdr)
        kind = sigv4_failure_kind(result)
        if kind in ("unknown_key", "token"):
            return self.error(403, "UnrecognizedClientException",
                              INVALID_TOKEN_MESSAGE, coral=True, headers=hdr)
        if kind == "skew":
            msg = "Signature expired: X-Amz-Date is more than 15 minutes from the server time"
        elif kind == "scope":
            msg = ("Credential should be scoped to a valid region and to service '%s'"
                   % self.sigv4_service)
        elif kind == "signature":
            msg = (SIGV4_MISMATCH_MESSAGE + " Check your AWS Secret Access Key and signing "
                   "method. Consult the service documentation for details.")
        else:
            msg = "Incomplete or malformed signature: " + result.reason
        name = "IncompleteSignatureException" if kind == "malformed" else \
            "InvalidSignatureException"
        return self.error(403, name, msg, coral=True, headers=hdr)

    # -- counters / log -------------------------------------------------------
    def count(self, ctx, resp, counters):
        op = getattr(ctx, "operation", None)
        if not op:
            return
        counters["by_operation"][op] = counters["by_operation"].get(op, 0) + 1
        st = str(resp.status) if resp.status is not None else "aborted"
        per = counters["by_operation_status"].setdefault(op, {})
        per[st] = per.get(st, 0) + 1
        if getattr(ctx, "model_violation", None):
            counters["model_violations"] += 1

    def log_fields(self, ctx):
        op = getattr(ctx, "operation", None)
        if not op:
            return {}
        out = {"operation": op, "request": getattr(ctx, "json_body", None)}
        if self.log_region:
            out["region"] = getattr(ctx, "region", None)
        if getattr(ctx, "model_violation", None):
            out["model_violation"] = ctx.model_violation
        return out

    def match_text(self, ctx):
        return ctx.raw_path + "\n" + ctx.body.decode("utf-8", "replace")

    # -- endpoint -------------------------------------------------------------
    def endpoint(self, ctx):
        body = ctx.json_body
        if not isinstance(body, dict):
            return self.error(400, "SerializationException",
                              "fake_aws: the request body must be a JSON object (%s)"
                              % getattr(ctx, "json_body_error", "not an object"),
                              coral=True)
        if self.app.config.model_validation:
            service = self.model_service
            report = model_report(service, ctx.operation, body)
            if report:
                ctx.model_violation = report
                log("model violation (%s %s): %s" % (service, ctx.operation, report))
                return self.error(400, self.model_error,
                                  "fake_aws: the request does not match botocore's "
                                  "%s model: %s" % (service, report))
        return self.answer(ctx, body)

    # -- fault dialect --------------------------------------------------------
    def fault_response(self, ctx, fault):
        if fault.kind == "expired_token":
            return self.error(403, "ExpiredTokenException", EXPIRED_TOKEN_MESSAGE,
                              coral=True)
        return None

    def throttle_response(self, ctx, fault):
        headers = retry_after_headers(fault)
        return self.error(400, self.throttle_error, "Rate exceeded", headers=headers)

    def server_error_response(self, ctx, fault):
        status = fault.params.get("status", 500)
        if status == 503:
            return self.error(503, self.unavailable_error,
                              "Service is unavailable, please try again later")
        return self.error(status, self.internal_error,
                          "An internal error occurred. Please try again later.")

    def auth_fault_response(self, ctx, fault):
        return self.error(403, "UnrecognizedClientException", INVALID_TOKEN_MESSAGE,
                          coral=True)


class CostExplorerSurface(JsonProtocolSurface):
    """AWS Cost Explorer (awsJson1.1, X-Amz-Target AWSInsightsIndexService.*)."""

    name = "ce"
    prefixes = ("/ce",)
    operations = CE_OPERATIONS
    content_type = AMZ_JSON_11
    fault_kinds = ("throttle", "server_error", "slow", "hang", "truncated", "malformed",
                   "wrong_types", "auth", "data_unavailable", "invalid_token",
                   "request_changed", "change_between_pages", "huge", "loop",
                   "expired_token", "bill_expiration")
    wrong_types_fields = ("amount", "keys", "results", "unit")
    title = "Cost Explorer"
    served_at = "/ce/"
    target_prefix = CE_TARGET_PREFIX
    request_content_types = (AMZ_JSON_11, AMZ_JSON_10)
    sigv4_service = "ce"
    model_service = "ce"
    model_error = "ValidationException"
    throttle_error = "LimitExceededException"
    unavailable_error = "ServiceUnavailableException"
    internal_error = "InternalServerException"
    error = staticmethod(ce_error_response)

    def path_region(self, path):
        return "us-east-1" if path in ("/ce", "/ce/") else None

    # -- endpoint -------------------------------------------------------------
    def answer(self, ctx, body):
        cfg = self.app.config
        rows, tags = self.app.ledger_snapshot()
        account = getattr(ctx, "account", None) or ACCOUNT_ID
        if account != ACCOUNT_ID:            # a member sees only its own rows
            rows = self.app.account_rows(account)
        with self.app.lock:
            names = self.app.org.names()
        kind = ctx.fault.kind if ctx.fault else None
        try:
            if ctx.operation == "GetCostAndUsage":
                obj = ce_get_cost_and_usage(
                    body, rows, tags, self.app.today(), cfg.ce_page_size, cfg.estimated_days,
                    strict=cfg.ce_strict_match_options, loop=(kind == "loop"),
                    bump_later_pages=(Decimal(1) if kind == "change_between_pages" else None),
                    account_names=names)
            elif ctx.operation == "GetDimensionValues":
                obj = ce_get_dimension_values(body, rows, tags, cfg.ce_page_size,
                                              strict=cfg.ce_strict_match_options,
                                              loop=(kind == "loop"), account_names=names)
            elif ctx.operation == "GetCostForecast":
                obj = ce_get_cost_forecast(body, rows, tags, self.app.today(),
                                           strict=cfg.ce_strict_match_options)
            else:
                obj = ce_list_cost_allocation_tags(body, rows, tags, loop=(kind == "loop"))
        except CeError as exc:
            return ce_error_response(exc.status, exc.name, exc.message, coral=exc.coral)
        return self.ok(obj)

    # -- fault dialect --------------------------------------------------------
    def fault_applies(self, fault, ctx):
        body = getattr(ctx, "json_body", None)
        if fault.kind == "change_between_pages":
            return ctx.operation == "GetCostAndUsage" and isinstance(body, dict) and \
                bool(body.get("NextPageToken"))
        if fault.kind == "loop":
            return ctx.operation in CE_PAGINATED
        return True

    def fault_response(self, ctx, fault):
        k = fault.kind
        if k == "data_unavailable":
            return ce_error_response(400, "DataUnavailableException",
                                     "Data is not available. Please try to adjust the time "
                                     "period. If data is still not available, please try "
                                     "again later.")
        if k == "invalid_token":
            return ce_error_response(400, "InvalidNextTokenException",
                                     "Invalid pagination token")
        if k == "request_changed":
            return ce_error_response(400, "RequestChangedException",
                                     "The request parameters changed between pages")
        if k == "bill_expiration":
            return ce_error_response(400, "BillExpirationException",
                                     "The requested report expired. Update the date "
                                     "interval and try again.")
        return super().fault_response(ctx, fault)

    def malformed_body(self, ctx, fault):
        if ctx.operation == "GetCostAndUsage":
            return (b'{"GroupDefinitions":[{"Type":"TAG","Key":"Application"}],'
                    b'"ResultsByTime":[{"TimePeriod":{"Start":"')
        return b'{"' + (ctx.operation or "x").encode() + b'":['

    def wrong_types(self, ctx, obj, field):
        obj = copy.deepcopy(obj)
        fields = [field] if field else ["amount"]
        for f in fields:
            if f == "amount":
                def fix(d):
                    for k in ("Amount", "MeanValue", "PredictionIntervalLowerBound",
                              "PredictionIntervalUpperBound"):
                        if isinstance(d.get(k), str):
                            try:
                                d[k] = float(Decimal(d[k]))
                            except decimal.InvalidOperation:
                                pass
                _walk(obj, fix)
            elif f == "unit":
                def fix(d):
                    if d.get("Unit") == "USD":
                        d["Unit"] = "EUR"
                _walk(obj, fix)
            elif f == "keys":
                def fix(d):
                    if isinstance(d.get("Keys"), list):
                        d["Keys"] = ",".join(d["Keys"])
                _walk(obj, fix)
            elif f == "results" and isinstance(obj, dict):
                if isinstance(obj.get("ResultsByTime"), list):
                    obj["ResultsByTime"] = {r["TimePeriod"]["Start"]: r
                                            for r in obj["ResultsByTime"]}
                if isinstance(obj.get("ForecastResultsByTime"), list):
                    obj["ForecastResultsByTime"] = {r["TimePeriod"]["Start"]: r
                                                    for r in obj["ForecastResultsByTime"]}
                if isinstance(obj.get("DimensionValues"), list):
                    obj["DimensionValues"] = {v["Value"]: v for v in obj["DimensionValues"]}
                if isinstance(obj.get("CostAllocationTags"), list):
                    obj["CostAllocationTags"] = {t["TagKey"]: t
                                                 for t in obj["CostAllocationTags"]}
        return obj

    def huge_parts(self, ctx):
        today = self.app.today()
        start = (today - ONE_DAY).isoformat()
        prefix = ('{"GroupDefinitions":[{"Type":"TAG","Key":"Application"}],"ResultsByTime":'
                  '[{"TimePeriod":{"Start":"%s","End":"%s"},"Total":{},"Groups":['
                  % (start, today.isoformat())).encode()

        def item(i):
            return (b'{"Keys":["Application$Huge%09d"],"Metrics":{"UnblendedCost":'
                    b'{"Amount":"0.0100000000","Unit":"USD"}}}' % i)
        return prefix, item, b'],"Estimated":true}],"DimensionValueAttributes":[]}'


# --------------------------------------------------------------------------
# Request validation against botocore's service models (ce, cloudwatch)
# --------------------------------------------------------------------------

_SERVICE_MODELS = {}
_SERVICE_MODELS_LOCK = threading.Lock()


def botocore_operation_model(service, operation):
    """botocore's OperationModel of service/operation (models loaded once)."""
    with _SERVICE_MODELS_LOCK:
        model = _SERVICE_MODELS.get(service)
        if model is None:
            model = botocore.session.get_session().get_service_model(service)
            _SERVICE_MODELS[service] = model
    return model.operation_model(operation)


def model_report(service, operation, params, output=False):
    """The botocore ParamValidator report of params against the operation's input
    (or output) shape: "" when they conform. Epoch-number timestamps conform
    (botocore's timestamp check accepts numbers, datetimes and timestamp strings)."""
    om = botocore_operation_model(service, operation)
    shape = om.output_shape if output else om.input_shape
    if shape is None:
        return "" if not params else "the operation takes no %s" % (
            "output" if output else "input")
    return ParamValidator().validate(params, shape).generate_report()


# --------------------------------------------------------------------------
# CloudWatch (awsJson1.0, X-Amz-Target GraniteServiceVersion20100801.*):
# near-real-time token metrics of Bedrock projects, derived from the ledger
# --------------------------------------------------------------------------

CW_TARGET_PREFIX = "GraniteServiceVersion20100801."
CW_OPERATIONS = ("GetMetricData", "ListMetrics")
CW_ERROR_NS = "com.amazonaws.cloudwatch#"
CW_NAMESPACE = "AWS/BedrockMantle"
CW_MAX_QUERIES = 500
CW_DEFAULT_MAX_DATAPOINTS = 100800
CW_LIST_PAGE = 500
CW_LIST_DEFAULT_DAYS = 14
CW_RECENT_MINUTES = 180
_CW_ID_RE = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
_CW_REGION_PATH_RE = re.compile(r"^/monitoring/([a-z]{2}(?:-[a-z]+)+-\d+)/?$")
MINUTES_PER_DAY = 1440
CW_INFERENCE_TOKENS = 2500          # Inferences of a day = ceil((input+output)/2500)

# USD per million tokens, (input, output). Any other model: CW_DEFAULT_RATE.
CW_RATES = {
    "openai.gpt-oss-120b": (Decimal("0.15"), Decimal("0.60")),
    "openai.gpt-oss-20b": (Decimal("0.07"), Decimal("0.30")),
    "amazon.nova-pro-v1:0": (Decimal("0.80"), Decimal("3.20")),
    "amazon.nova-lite-v1:0": (Decimal("0.06"), Decimal("0.24")),
    "anthropic.claude-sonnet-4-5-20250929-v1:0": (Decimal("3.00"), Decimal("15.00")),
}
CW_DEFAULT_RATE = (Decimal("1.00"), Decimal("4.00"))
# Marketplace SERVICE name -> Bedrock model id (others: "marketplace." + the name
# lower-cased, spaces to "-").
CW_MARKETPLACE_MODELS = {
    "Claude Sonnet 4.5 (Amazon Bedrock Edition)": "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "Claude Haiku 4.5 (Amazon Bedrock Edition)": "anthropic.claude-haiku-4-5-20251001-v1:0",
    "Claude Opus 4.1 (Amazon Bedrock Edition)": "anthropic.claude-opus-4-1-20250805-v1:0",
}
# metric name -> (dimension-name set, series kind)
CW_METRICS = {
    "InputTokens": ((frozenset(("Project", "Model")),), "input"),
    "OutputTokens": ((frozenset(("Project", "Model")),), "output"),
    "TotalInputTokens": ((frozenset(("Project",)), frozenset(("Model",))), "input"),
    "TotalOutputTokens": ((frozenset(("Project",)), frozenset(("Model",))), "output"),
    "Inferences": ((frozenset(("Project",)), frozenset(("Model",))), "inferences"),
}


def cw_rate(model, direction):
    r = CW_RATES.get(model, CW_DEFAULT_RATE)
    return r[1] if direction == "output" else r[0]


def cw_rates_json():
    return {"unit": "USD per 1,000,000 tokens",
            "rates": {m: {"input": str(r[0]), "output": str(r[1])}
                      for m, r in sorted(CW_RATES.items())},
            "default": {"input": str(CW_DEFAULT_RATE[0]), "output": str(CW_DEFAULT_RATE[1])}}


def is_bedrock_service(service):
    return service == BEDROCK_SERVICE or "(Amazon Bedrock Edition)" in service


def cw_model_of(service, usage_type):
    """Bedrock model id of a Bedrock ledger row."""
    if service != BEDROCK_SERVICE:
        return CW_MARKETPLACE_MODELS.get(
            service, "marketplace." + service.lower().replace(" ", "-"))
    rest = usage_type
    m = _USAGE_PREFIX_RE.match(usage_type)
    if m and m.group(1) in USAGE_TYPE_REGIONS:
        rest = usage_type[m.end():]
    i = rest.find("-mantle")
    if i > 0:
        return rest[:i]
    m2 = re.search(r"-(input|output|cache)", rest)        # no "-mantle": best effort
    return rest[:m2.start()] if m2 and m2.start() > 0 else rest


def cw_direction_of(usage_type):
    return "output" if ("output-tokens" in usage_type or "OutputTokens" in usage_type) \
        else "input"


def _cw_weights():
    """Cumulative integer weights W[0..1440] of the diurnal curve
    w(m) = 1 + 0.5*sin(2*pi*(m/1440 - 0.25)) (scaled by 1e6, rounded)."""
    cum = [0]
    for m in range(MINUTES_PER_DAY):
        w = int(round(1e6 * (1 + 0.5 * math.sin(2 * math.pi * (m / MINUTES_PER_DAY - 0.25)))))
        cum.append(cum[-1] + w)
    return cum


CW_CUM_WEIGHTS = _cw_weights()
CW_WEIGHT_TOTAL = CW_CUM_WEIGHTS[-1]


def cw_day_cum(total, k):
    """Tokens of minutes 0..k-1 of a day whose total is `total`: round-half-up of
    total*W[k]/W[1440]. Minute m gets cum(m+1) - cum(m), so a day sums exactly."""
    return (2 * total * CW_CUM_WEIGHTS[k] + CW_WEIGHT_TOTAL) // (2 * CW_WEIGHT_TOTAL)


def cw_base_sum(days, ma, mb):
    """Sum of a series' minutes ma <= M < mb (absolute minutes since the epoch);
    days maps day number (epoch days) -> that day's total."""
    if mb <= ma:
        return 0
    da, ka = divmod(ma, MINUTES_PER_DAY)
    db, kb = divmod(mb, MINUTES_PER_DAY)
    if da == db:
        t = days.get(da)
        return cw_day_cum(t, kb) - cw_day_cum(t, ka) if t else 0
    total = 0
    t = days.get(da)
    if t:
        total += t - cw_day_cum(t, ka)
    if db - da > 1:
        if db - da - 1 < len(days):
            for d in range(da + 1, db):
                total += days.get(d, 0)
        else:
            for d, t in days.items():
                if da < d < db:
                    total += t
    t = days.get(db)
    if t and kb:
        total += cw_day_cum(t, kb)
    return total


def cw_series_sum(days, spikes, ma, mb):
    """cw_base_sum with the project's spikes: [(first minute, factor)] sorted."""
    if not spikes:
        return cw_base_sum(days, ma, mb)
    if mb <= ma:
        return 0
    total, cur, f = 0, ma, 1
    for ms, fac in spikes:
        if ms <= ma:
            f = f * fac
            continue
        if ms >= mb:
            break
        part = cw_base_sum(days, cur, ms)
        if part:
            total += part * f
        cur, f = ms, f * fac
    part = cw_base_sum(days, cur, mb)
    if part:
        total += part * f
    return total


def cw_number(v):
    """JSON number of a token value (int, or Decimal after a fractional spike)."""
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


class CwIndex:
    """Day totals of every series (region, project, model, kind), kind in
    input/output/inferences, built from one ledger version and project list."""

    def __init__(self, rows, projects_by_region):
        self.series = {}
        lookup = {}                   # region -> {(Application, Environment): id}
        for region, items in projects_by_region.items():
            d = {}
            for p in items:
                tags = p.get("tags") if isinstance(p.get("tags"), dict) else {}
                key = (str(tags.get("Application", "")), str(tags.get("Environment", "")))
                if key != ("", "") and key not in d:
                    d[key] = p.get("id")
            lookup[region] = d
        kind_cache = {}
        costs = {}                    # (region, project, model, direction) -> {day: Decimal}
        epoch = datetime.date(1970, 1, 1)
        day_cache = {}
        for r in rows:
            service = r["service"]
            if not is_bedrock_service(service):
                continue
            ut = r["usage_type"]
            mk = kind_cache.get((service, ut))
            if mk is None:
                mk = kind_cache[(service, ut)] = (cw_model_of(service, ut),
                                                  cw_direction_of(ut))
            region = r["_region"]
            tags = r["tags"]
            app_env = (tags.get("Application", ""), tags.get("Environment", ""))
            if app_env == ("", ""):
                project = "default"
            else:
                project = lookup.get(region, {}).get(app_env)
                if project is None:
                    project = project_id_for(region, "unlisted/%s-%s" % app_env)
            day = day_cache.get(r["date"])
            if day is None:
                day = day_cache[r["date"]] = (datetime.date.fromisoformat(r["date"]) -
                                              epoch).days
            per = costs.setdefault((region, project) + mk, {})
            per[day] = per.get(day, 0) + r["_cost"]
        million = Decimal(1000000)
        for key, per in costs.items():
            rate = cw_rate(key[2], key[3])
            days = {}
            for day, cost in per.items():
                tokens = int((cost * million / rate).to_integral_value(
                    rounding=decimal.ROUND_HALF_EVEN))
                if tokens > 0:
                    days[day] = tokens
            if days:
                self.series[key] = days
        inf = {}
        for (region, project, model, _), days in self.series.items():
            per = inf.setdefault((region, project, model, "inferences"), {})
            for day, t in days.items():
                per[day] = per.get(day, 0) + t
        for key, per in inf.items():
            self.series[key] = {d: -(-t // CW_INFERENCE_TOKENS) for d, t in per.items()}
        self.by_project = {}          # (region, project, kind) -> [series key]
        self.by_model = {}            # (region, model, kind) -> [series key]
        self.by_region = {}           # region -> [series key]
        for key in sorted(self.series):
            region, project, model, kind = key
            self.by_project.setdefault((region, project, kind), []).append(key)
            self.by_model.setdefault((region, model, kind), []).append(key)
            self.by_region.setdefault(region, []).append(key)


class CwError(Exception):
    def __init__(self, name, message, status=400):
        super().__init__(message)
        self.name = name
        self.message = message
        self.status = status


def cw_invalid(message):
    return CwError("InvalidParameterValueException", message)


def cw_error_response(status, name, message, coral=False, headers=()):
    if coral:
        body = {"__type": CORAL_ERROR_NS + name, "message": message}
        hdrs = [("x-amzn-RequestId", str(uuid.uuid4())), ("x-amzn-ErrorType", name)]
    else:
        body = {"__type": CW_ERROR_NS + name, "message": message}
        hdrs = [("x-amzn-RequestId", str(uuid.uuid4())), ("x-amzn-ErrorType", name),
                ("x-amzn-query-error", "%s;%s" % (name, "Receiver" if status >= 500
                                                  else "Sender"))]
    r = Response.json_obj(status, body, headers=hdrs + list(headers))
    r.content_type = AMZ_JSON_10
    return r


class CwView:
    """What one CloudWatch request sees: the index, the spikes and a fixed now."""

    def __init__(self, index, spikes, now):
        self.index = index
        self.now = now
        self.vis = int(now // 60)          # minutes M < vis have ended
        self.spikes = {}                   # (region, project) -> [(minute, factor)]
        for s in spikes:
            self.spikes.setdefault((s["region"], s["project"]), []).append(
                (-(-int(math.ceil(s["since"])) // 60), s["_factor"]))
        for v in self.spikes.values():
            v.sort(key=lambda x: x[0])

    def series_for(self, region, metric, dims):
        """[(days, spikes)] behind a metric (empty if it does not exist)."""
        spec = CW_METRICS.get(metric)
        if spec is None:
            return []
        names = frozenset(dims)
        if len(names) != len(dims) or names not in spec[0]:
            return []
        kind = spec[1]
        if "Model" in names and "Project" in names:
            keys = [(region, dims["Project"], dims["Model"], kind)]
        elif "Project" in names:
            keys = self.index.by_project.get((region, dims["Project"], kind), [])
        else:
            keys = self.index.by_model.get((region, dims["Model"], kind), [])
        out = []
        for k in keys:
            days = self.index.series.get(k)
            if days:
                out.append((days, self.spikes.get((k[0], k[1]))))
        return out

    def range_sum(self, series, ma, mb):
        mb = min(mb, self.vis)
        total = 0
        for days, spikes in series:
            total += cw_series_sum(days, spikes, ma, mb)
        return total

    def metrics_of(self, region):
        """Every (MetricName, ((Name, Value), ...)) a region can have."""
        out = set()
        for (_, project, model, kind) in self.index.by_region.get(region, []):
            if kind == "inferences":
                out.add(("Inferences", (("Project", project),)))
                out.add(("Inferences", (("Model", model),)))
                continue
            name = "InputTokens" if kind == "input" else "OutputTokens"
            out.add((name, (("Project", project), ("Model", model))))
            out.add(("Total" + name, (("Project", project),)))
            out.add(("Total" + name, (("Model", model),)))
        return out


def _cw_timestamp(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                return parse_to_aware_datetime(value).timestamp()
            except (TypeError, ValueError, AttributeError):
                pass
        raise cw_invalid("%s must be a timestamp (epoch seconds), got %r" % (name, value))
    if not math.isfinite(value):
        raise cw_invalid("%s must be finite" % name)
    return value


def _cw_int(v):
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


class CwPager:
    """Opaque NextTokens of one fake run: base64 of {state, request hash, now},
    MACed with a key that changes at /_fake/reset (older tokens are stale)."""

    def __init__(self):
        self.key = secrets.token_bytes(16)

    def make(self, req_hash, state):
        raw = json.dumps({"h": req_hash, "s": state}, separators=(",", ":")).encode()
        mac = hmac.new(self.key, raw, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(mac + raw).decode("ascii")

    def read(self, token, req_hash):
        if not isinstance(token, str):
            raise CwError("InvalidNextToken", "The service cannot process the NextToken")
        try:
            blob = base64.urlsafe_b64decode(token.encode("ascii"))
            mac, raw = blob[:12], blob[12:]
            if not hmac.compare_digest(mac, hmac.new(self.key, raw,
                                                     hashlib.sha256).digest()[:12]):
                raise ValueError("mac")
            data = json.loads(raw.decode("utf-8"))
            if data["h"] != req_hash:
                raise ValueError("request")
            return data["s"]
        except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error):
            raise CwError("InvalidNextToken", "The service cannot process the NextToken "
                          "(unknown, stale, or from another request)")


def cw_get_metric_data(body, view, region, pager, loop=False):
    queries = body.get("MetricDataQueries")
    if queries is None:
        raise CwError("MissingRequiredParameterException",
                      "The parameter MetricDataQueries is required.")
    if not isinstance(queries, list) or not 1 <= len(queries) <= CW_MAX_QUERIES:
        raise cw_invalid("The collection MetricDataQueries must not have a size greater "
                         "than %d and at least 1 (got %s)." % (
                             CW_MAX_QUERIES, len(queries) if isinstance(queries, list)
                             else type(queries).__name__))
    for name in ("StartTime", "EndTime"):
        if name not in body:
            raise CwError("MissingRequiredParameterException",
                          "The parameter %s is required." % name)
    start = _cw_timestamp(body["StartTime"], "StartTime")
    end = _cw_timestamp(body["EndTime"], "EndTime")
    if not start < end:
        raise cw_invalid("The parameter StartTime must be less than the parameter EndTime.")
    scan = body.get("ScanBy", "TimestampDescending")
    if scan not in ("TimestampAscending", "TimestampDescending"):
        raise cw_invalid("ScanBy must be TimestampAscending or TimestampDescending")
    maxdp = body.get("MaxDatapoints", CW_DEFAULT_MAX_DATAPOINTS)
    if not _is_int(maxdp) or maxdp < 1:
        raise cw_invalid("MaxDatapoints must be an integer >= 1")
    ids, parsed = set(), []
    for i, q in enumerate(queries):
        where = "MetricDataQueries.member.%d" % (i + 1)
        if not isinstance(q, dict):
            raise cw_invalid("%s must be an object" % where)
        qid = q.get("Id")
        if not isinstance(qid, str) or not _CW_ID_RE.match(qid) or len(qid) > 255:
            raise cw_invalid("%s.Id %r must start with a lower-case letter and contain only "
                             "letters, digits and underscores" % (where, qid))
        if qid in ids:
            raise cw_invalid("The value %s for field Id must be unique." % qid)
        ids.add(qid)
        if "Expression" in q:
            if "MetricStat" in q:
                raise CwError("InvalidParameterCombinationException",
                              "%s: exactly one of MetricStat and Expression" % where)
            raise cw_invalid("%s: fake_aws supports MetricStat queries only, not "
                             "Expression" % where)
        ms = q.get("MetricStat")
        if not isinstance(ms, dict):
            raise CwError("MissingRequiredParameterException",
                          "%s: MetricStat is required" % where)
        metric = ms.get("Metric")
        if not isinstance(metric, dict) or not isinstance(metric.get("MetricName"), str):
            raise CwError("MissingRequiredParameterException",
                          "%s.MetricStat.Metric.MetricName is required" % where)
        period = ms.get("Period")
        if not _is_int(period) or period < 60 or period % 60:
            raise cw_invalid("%s.MetricStat.Period must be a multiple of 60, got %r"
                             % (where, period))
        if ms.get("Stat") != "Sum":
            raise cw_invalid("%s.MetricStat.Stat %r: fake_aws supports only Sum"
                             % (where, ms.get("Stat")))
        if "Period" in q and q["Period"] != period:
            raise CwError("InvalidParameterCombinationException",
                          "%s: Period is for Expression queries" % where)
        dims = {}
        dlist = metric.get("Dimensions") or []
        if not isinstance(dlist, list):
            raise cw_invalid("%s.MetricStat.Metric.Dimensions must be a list" % where)
        for d in dlist:
            if not isinstance(d, dict) or not isinstance(d.get("Name"), str) or \
                    not isinstance(d.get("Value"), str):
                raise cw_invalid("%s.MetricStat.Metric.Dimensions: each needs Name and "
                                 "Value" % where)
            if d["Name"] in dims:
                raise cw_invalid("%s: duplicate dimension %s" % (where, d["Name"]))
            dims[d["Name"]] = d["Value"]
        series = []
        if metric.get("Namespace") == CW_NAMESPACE:
            series = view.series_for(region, metric["MetricName"], dims)
        ret = q.get("ReturnData", True)
        if not isinstance(ret, bool):
            raise cw_invalid("%s.ReturnData must be a boolean" % where)
        parsed.append({"id": qid, "label": q.get("Label") or metric["MetricName"],
                       "series": series, "period": period, "return": ret})

    req_hash = request_hash("GetMetricData", body, "NextToken")
    token = body.get("NextToken")
    qi, offset = 0, 0
    if token:
        state = pager.read(token, req_hash)
        try:
            qi, offset, view_now = int(state["q"]), int(state["o"]), float(state["now"])
        except (KeyError, TypeError, ValueError):
            raise CwError("InvalidNextToken", "The service cannot process the NextToken")
        view.now, view.vis = view_now, int(view_now // 60)
    if qi > len(parsed):
        raise CwError("InvalidNextToken", "The service cannot process the NextToken")
    def points(p):
        """(timestamp, value) of a query's nonempty buckets, in scan order."""
        series, period = p["series"], p["period"]
        if not series:
            return
        lo_min = min(min(days) for days, _ in series) * MINUTES_PER_DAY
        hi_ts = min(end, view.vis * 60)
        if hi_ts <= start:
            return
        lo_ts = max(start, lo_min * 60)
        i0 = max(0, int((lo_ts - start) // period))
        i1 = int(math.ceil((hi_ts - start) / period))
        rng = range(i0, i1) if scan == "TimestampAscending" else range(i1 - 1, i0 - 1, -1)
        for i in rng:
            a = start + i * period
            b = min(a + period, end)
            ma, mb = -int(-a // 60), -int(-b // 60)
            v = view.range_sum(series, ma, mb)
            if v:
                yield _cw_int(a), cw_number(v)

    results, used, next_state = [], 0, None
    for n in range(qi, len(parsed)):
        p = parsed[n]
        if not p["return"]:
            continue
        res = {"Id": p["id"], "Label": p["label"], "Timestamps": [], "Values": [],
               "StatusCode": "Complete"}
        results.append(res)
        if next_state is not None:
            res["StatusCode"] = "PartialData"
            continue
        skip = offset if n == qi else 0
        k = 0
        for ts, v in points(p):
            if k < skip:
                k += 1
                continue
            if used >= maxdp:
                next_state = {"q": n, "o": k, "now": view.now}
                res["StatusCode"] = "PartialData"
                break
            res["Timestamps"].append(ts)
            res["Values"].append(v)
            used += 1
            k += 1
    out = {"MetricDataResults": results}
    if next_state is not None:
        out["NextToken"] = pager.make(req_hash, next_state)
    elif loop:
        out["NextToken"] = pager.make(req_hash, {"q": 0, "o": 0, "now": view.now})
    out["Messages"] = []
    return out


def cw_list_metrics(body, view, region, pager, loop=False):
    ns = body.get("Namespace")
    name = body.get("MetricName")
    for field, v in (("Namespace", ns), ("MetricName", name)):
        if v is not None and (not isinstance(v, str) or not v):
            raise cw_invalid("%s must be a non-empty string" % field)
    filters = body.get("Dimensions") or []
    if not isinstance(filters, list) or len(filters) > 10:
        raise cw_invalid("Dimensions must be a list of at most 10 DimensionFilters")
    for f in filters:
        if not isinstance(f, dict) or not isinstance(f.get("Name"), str) or \
                ("Value" in f and not isinstance(f["Value"], str)):
            raise cw_invalid("each DimensionFilter needs a Name and an optional Value")
    recent = body.get("RecentlyActive")
    if recent is not None and recent != "PT3H":
        raise cw_invalid("RecentlyActive must be PT3H")
    req_hash = request_hash("ListMetrics", body, "NextToken")
    offset = 0
    if body.get("NextToken"):
        state = pager.read(body["NextToken"], req_hash)
        try:
            offset, view_now = int(state["o"]), float(state["now"])
        except (KeyError, TypeError, ValueError):
            raise CwError("InvalidNextToken", "The service cannot process the NextToken")
        view.now, view.vis = view_now, int(view_now // 60)
    window = CW_RECENT_MINUTES if recent else CW_LIST_DEFAULT_DAYS * MINUTES_PER_DAY
    ma, mb = view.vis - window, view.vis
    found = []
    if ns is None or ns == CW_NAMESPACE:
        for metric, dims in view.metrics_of(region):
            if name is not None and metric != name:
                continue
            dd = dict(dims)
            if any(f["Name"] not in dd or ("Value" in f and dd[f["Name"]] != f["Value"])
                   for f in filters):
                continue
            if view.range_sum(view.series_for(region, metric, dd), ma, mb):
                found.append((metric, dims))
    found.sort()
    if offset > len(found):
        raise CwError("InvalidNextToken", "The service cannot process the NextToken")
    page = found[offset:offset + CW_LIST_PAGE]
    out = {"Metrics": [{"Namespace": CW_NAMESPACE, "MetricName": m,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dims]}
                       for m, dims in page]}
    if offset + CW_LIST_PAGE < len(found):
        out["NextToken"] = pager.make(req_hash, {"o": offset + CW_LIST_PAGE,
                                                 "now": view.now})
    elif loop:
        out["NextToken"] = pager.make(req_hash, {"o": 0, "now": view.now})
    return out


def cw_spend(view, region, date, until):
    """Truth for tests: tokens and USD of the visible minutes of a day, per project."""
    day = (date - datetime.date(1970, 1, 1)).days
    cut = min(int(until // 60), view.vis)
    ma, mb = day * MINUTES_PER_DAY, min((day + 1) * MINUTES_PER_DAY, cut)
    projects = {}
    million = Decimal(1000000)
    for key in view.index.by_region.get(region, []):
        _, project, model, kind = key
        if kind == "inferences":
            continue
        days = view.index.series[key]
        if day not in days:
            continue
        tokens = cw_series_sum(days, view.spikes.get((region, project)), ma, mb) \
            if mb > ma else 0
        p = projects.setdefault(project, {"usd": Decimal(0), "tokens": {}})
        p["tokens"].setdefault(model, {"input": 0, "output": 0})[kind] = cw_number(tokens)
        p["usd"] += Decimal(tokens) * cw_rate(model, kind) / million
    for p in projects.values():
        p["usd"] = fmt_amount(p["usd"])
    return {"region": region, "date": date.isoformat(), "until": _cw_int(min(until, view.now)),
            "projects": projects}


class CloudWatchSurface(JsonProtocolSurface):
    """Amazon CloudWatch (awsJson1.0, X-Amz-Target GraniteServiceVersion20100801.*):
    GetMetricData and ListMetrics of the AWS/BedrockMantle token metrics."""

    name = "cloudwatch"
    prefixes = ("/monitoring",)
    operations = CW_OPERATIONS
    content_type = AMZ_JSON_10
    fault_kinds = ("throttle", "server_error", "slow", "hang", "truncated", "malformed",
                   "wrong_types", "auth", "huge", "loop", "invalid_token", "expired_token")
    wrong_types_fields = ("values", "timestamps", "results")
    title = "CloudWatch"
    served_at = "/monitoring/{region}"
    target_prefix = CW_TARGET_PREFIX
    request_content_types = (AMZ_JSON_10,)
    sigv4_service = "monitoring"
    model_service = "cloudwatch"
    model_error = "InvalidParameterValueException"
    throttle_error = "Throttling"
    unavailable_error = "ServiceUnavailable"
    internal_error = "InternalServiceFault"
    log_region = True
    extra_counters = ("metrics_requested", "list_metrics_requests")
    error = staticmethod(cw_error_response)

    def path_region(self, path):
        m = _CW_REGION_PATH_RE.match(path)
        return m.group(1) if m else None

    def count(self, ctx, resp, counters):
        super().count(ctx, resp, counters)
        op = getattr(ctx, "operation", None)
        if not op:
            return
        body = getattr(ctx, "json_body", None)
        if op == "GetMetricData":
            qs = body.get("MetricDataQueries") if isinstance(body, dict) else None
            if isinstance(qs, list):
                counters["metrics_requested"] += sum(
                    1 for q in qs if isinstance(q, dict) and "MetricStat" in q)
        else:
            counters["list_metrics_requests"] += 1

    def answer(self, ctx, body):
        loop = bool(ctx.fault and ctx.fault.kind == "loop")
        view = self.app.cw_view()
        try:
            if ctx.operation == "GetMetricData":
                obj = cw_get_metric_data(body, view, ctx.region, self.app.cw_pager, loop)
            else:
                obj = cw_list_metrics(body, view, ctx.region, self.app.cw_pager, loop)
        except CwError as exc:
            return cw_error_response(exc.status, exc.name, exc.message)
        return self.ok(obj)

    # -- fault dialect --------------------------------------------------------
    def fault_response(self, ctx, fault):
        if fault.kind == "invalid_token":
            return cw_error_response(400, "InvalidNextToken",
                                     "The service cannot process the NextToken")
        return super().fault_response(ctx, fault)

    def malformed_body(self, ctx, fault):
        if ctx.operation == "ListMetrics":
            return b'{"Metrics":[{"Namespace":"'
        return b'{"MetricDataResults":[{"Id":"'

    def wrong_types(self, ctx, obj, field):
        obj = copy.deepcopy(obj)
        field = field or "values"
        results = obj.get("MetricDataResults") if isinstance(obj, dict) else None
        if field == "values" and isinstance(results, list):
            for r in results:
                r["Values"] = [str(v) for v in r.get("Values", [])]
        elif field == "timestamps" and isinstance(results, list):
            for r in results:
                r["Timestamps"] = [iso8601(t) for t in r.get("Timestamps", [])]
        elif field == "results" and isinstance(obj, dict):
            if isinstance(results, list):
                obj["MetricDataResults"] = {r["Id"]: r for r in results}
            if isinstance(obj.get("Metrics"), list):
                obj["Metrics"] = {str(i): m for i, m in enumerate(obj["Metrics"])}
        return obj

    def huge_parts(self, ctx):
        if ctx.operation == "ListMetrics":
            return (b'{"Metrics":[',
                    lambda i: (b'{"Namespace":"AWS/BedrockMantle","MetricName":"InputTokens",'
                               b'"Dimensions":[{"Name":"Project","Value":"proj_huge%09d"},'
                               b'{"Name":"Model","Value":"huge"}]}' % i),
                    b']}')
        ts = int(self.app.cw_now()) // 60 * 60 - 60
        return (b'{"MetricDataResults":[',
                lambda i: (b'{"Id":"huge%d","Label":"InputTokens","Timestamps":[%d],'
                           b'"Values":[1],"StatusCode":"Complete"}' % (i, ts)),
                b'],"Messages":[]}')


# --------------------------------------------------------------------------
# Credential surfaces: STS, IMDSv2, container credentials
# --------------------------------------------------------------------------

DEFAULT_WEB_IDENTITY_TOKEN = "fake-web-identity-token"
DEFAULT_CONTAINER_AUTH_TOKEN = "fake-container-token"
DEFAULT_IMDS_ROLE = "fake-exporter-role"
STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
STS_VERSION = "2011-06-15"
STS_ACTIONS = ("AssumeRole", "AssumeRoleWithWebIdentity", "GetCallerIdentity")
CREDENTIAL_FAULT_KINDS = ("throttle", "server_error", "slow", "hang", "truncated",
                          "malformed", "wrong_types", "auth", "huge", "expired_credentials")
_ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)$")
_SESSION_NAME_RE = re.compile(r"^[\w+=,.@-]{2,64}$")
_EXTERNAL_ID_RE = re.compile(r"^[\w+=,.@:/-]{2,1224}$")


def iso8601(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _xml_escape(s):
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _xml_elems(d):
    out = []
    for k, v in d.items():
        if v is None:
            continue
        if isinstance(v, dict):
            out.append("<%s>%s</%s>" % (k, _xml_elems(v), k))
        else:
            out.append("<%s>%s</%s>" % (k, _xml_escape(v), k))
    return "".join(out)


class StsError(Exception):
    def __init__(self, status, code, message, etype="Sender"):
        super().__init__(message)
        self.status, self.code, self.message, self.etype = status, code, message, etype


class StsSurface(Surface):
    """AWS STS, query protocol; JSON answers when the client sends
    Accept: application/json, XML (like botocore expects) otherwise."""

    name = "sts"
    prefixes = ("/sts",)
    auth_schemes = ("sigv4", "web_identity", "none", "other")
    operations = STS_ACTIONS
    fault_kinds = CREDENTIAL_FAULT_KINDS
    wrong_types_fields = ("expiration", "expiration_float", "credentials", "access_key_id")

    def new_counters(self):
        c = super().new_counters()
        c["by_action"] = {}
        c["issued"] = 0
        c["assumed_by_account"] = {}      # successful AssumeRole per target account
        return c

    @staticmethod
    def wants_json(ctx):
        return "application/json" in (ctx.header("Accept") or "").lower()

    def error(self, ctx, status, code, message, etype="Sender", headers=()):
        rid = str(uuid.uuid4())
        hdrs = [("x-amzn-RequestId", rid)] + list(headers)
        if self.wants_json(ctx):
            return Response.json_obj(status, {"Error": {"Type": etype, "Code": code,
                                                        "Message": message},
                                              "RequestId": rid}, headers=hdrs)
        xml = ('<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code>'
               '<Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>\n'
               % (STS_XMLNS, etype, code, _xml_escape(message), rid))
        return Response(status, xml.encode("utf-8"), headers=hdrs, content_type="text/xml")

    # -- routing / auth -------------------------------------------------------
    def resolve(self, ctx):
        ctx.operation = None
        ctx.sts_params = {}
        if ctx.path not in ("/sts", "/sts/"):
            return self.error(ctx, 404, "InvalidAction", "fake_aws: STS is served at /sts/")
        if ctx.method not in ("POST", "GET"):
            return self.error(ctx, 405, "InvalidAction", "fake_aws: STS answers POST (or GET)")
        params = {k: v[0] for k, v in ctx.params.items()}
        if ctx.method == "POST" and ctx.body:
            try:
                form = urllib.parse.parse_qs(ctx.body.decode("utf-8"), keep_blank_values=True,
                                             strict_parsing=False)
            except UnicodeDecodeError:
                form = {}
            params.update({k: v[0] for k, v in form.items()})
        ctx.sts_params = params
        action = params.get("Action")
        if not action:
            return self.error(ctx, 400, "MissingAction", "Missing Action")
        if action not in STS_ACTIONS:
            return self.error(ctx, 400, "InvalidAction", "Could not find operation %s for "
                              "version %s" % (action, params.get("Version", STS_VERSION)))
        ctx.operation = action
        version = params.get("Version")
        if version is not None and version != STS_VERSION:
            return self.error(ctx, 400, "InvalidAction", "Could not find operation %s for "
                              "version %s" % (action, version))
        try:
            self.validate(action, params)
        except StsError as exc:
            return self.error(ctx, exc.status, exc.code, exc.message, exc.etype)
        return self.endpoint

    @staticmethod
    def validate(action, p):
        def missing(name):
            raise StsError(400, "ValidationError", "1 validation error detected: Value null "
                           "at '%s' failed to satisfy constraint: Member must not be null"
                           % (name[0].lower() + name[1:]))
        if action == "GetCallerIdentity":
            return
        for name in ("RoleArn", "RoleSessionName"):
            if not p.get(name):
                missing(name)
        if not _ROLE_ARN_RE.match(p["RoleArn"]):
            raise StsError(400, "ValidationError", "%s is invalid" % p["RoleArn"])
        if not _SESSION_NAME_RE.match(p["RoleSessionName"]):
            raise StsError(400, "ValidationError", "1 validation error detected: Value '%s' "
                           "at 'roleSessionName' failed to satisfy constraint: Member must "
                           "satisfy regular expression pattern: [\\w+=,.@-]*"
                           % p["RoleSessionName"])
        ds = p.get("DurationSeconds")
        if ds is not None and (not re.fullmatch(r"\d{1,6}", ds) or
                               not 900 <= int(ds) <= 43200):
            raise StsError(400, "ValidationError", "1 validation error detected: Value '%s' "
                           "at 'durationSeconds' failed to satisfy constraint: Member must "
                           "have value between 900 and 43200" % ds)
        if action == "AssumeRole":
            ext = p.get("ExternalId")
            if ext is not None and not _EXTERNAL_ID_RE.match(ext):
                raise StsError(400, "ValidationError", "1 validation error detected: "
                               "'externalId' failed to satisfy constraint")
        if action == "AssumeRoleWithWebIdentity" and not p.get("WebIdentityToken"):
            missing("WebIdentityToken")

    def authenticate(self, ctx, endpoint):
        cfg = self.app.config
        if ctx.operation == "AssumeRoleWithWebIdentity":
            ctx.auth_scheme = "web_identity"
            tok = ctx.sts_params.get("WebIdentityToken", "")
            if not hmac.compare_digest(tok.encode("utf-8", "surrogateescape"),
                                       (cfg.web_identity_token or "").encode("utf-8")):
                return self.invalid_identity_token(ctx)
            return None
        auth = ctx.header("Authorization")
        if auth is None or not auth.strip():
            ctx.auth_scheme = "none"
            return self.error(ctx, 403, "MissingAuthenticationToken",
                              "Request is missing Authentication Token")
        if auth.strip().split(None, 1)[0] != "AWS4-HMAC-SHA256":
            ctx.auth_scheme = "other"
            return self.error(ctx, 403, "IncompleteSignature",
                              "Authorization header must use AWS4-HMAC-SHA256")
        ctx.auth_scheme = "sigv4"
        region = "us-east-1"
        try:
            scope = parse_sigv4_authorization(auth)["Credential"].split("/")
            if len(scope) == 5 and scope[2]:
                region = scope[2]
        except ValueError:
            pass
        return self.app.check_sigv4(ctx, "sts", region)

    def invalid_identity_token(self, ctx):
        return self.error(ctx, 403, "InvalidIdentityToken",
                          "The web identity token that was passed could not be validated "
                          "by AWS. Get a new identity token from the identity provider and "
                          "then retry the request.")

    def sigv4_denied(self, ctx, result, expired):
        hdr = [("X-Fake-Auth-Error", result.reason)]
        if expired:
            return self.error(ctx, 403, "ExpiredToken", EXPIRED_TOKEN_MESSAGE, headers=hdr)
        kind = sigv4_failure_kind(result)
        if kind in ("unknown_key", "token"):
            return self.error(ctx, 403, "InvalidClientTokenId", INVALID_TOKEN_MESSAGE,
                              headers=hdr)
        return self.error(ctx, 403, "SignatureDoesNotMatch",
                          SIGV4_MISMATCH_MESSAGE + " Check your AWS Secret Access Key and "
                          "signing method. Consult the service documentation for details.",
                          headers=hdr)

    # -- counters / log -------------------------------------------------------
    def count(self, ctx, resp, counters):
        op = getattr(ctx, "operation", None)
        if op:
            counters["by_action"][op] = counters["by_action"].get(op, 0) + 1
        bound = getattr(ctx, "assumed_account", None)
        if op == "AssumeRole" and bound and resp.status == 200:
            per = counters["assumed_by_account"]
            per[bound] = per.get(bound, 0) + 1

    def log_fields(self, ctx):
        op = getattr(ctx, "operation", None)
        if not op:
            return {}
        params = {k: ("<masked>" if k in ("WebIdentityToken", "ExternalId") else v)
                  for k, v in getattr(ctx, "sts_params", {}).items()}
        out = {"operation": op, "params": params}
        if getattr(ctx, "assumed_account", None):
            out["assumed_account"] = ctx.assumed_account
        return out

    def match_text(self, ctx):
        return ctx.raw_path + "\n" + ctx.body.decode("utf-8", "replace")

    # -- endpoint -------------------------------------------------------------
    def identity(self, ctx):
        """(UserId, Account, Arn) of the credentials that signed ctx."""
        akid = getattr(ctx, "sigv4_akid", None)
        with self.app.lock:
            meta = self.app.credential_meta.get(akid)
        if meta is not None and meta.get("account", ACCOUNT_ID) != ACCOUNT_ID:
            return meta["user_id"], meta["account"], meta["arn"]
        if meta is not None:
            arn = "arn:aws:sts::%s:assumed-role/%s/%s" % (ACCOUNT_ID, DEFAULT_IMDS_ROLE,
                                                         meta["source"])
            return "AROAFAKEEXPORTERROLE:%s" % meta["source"], ACCOUNT_ID, arn
        return ("AIDAFAKEEXPORTERUSER", ACCOUNT_ID,
                "arn:aws:iam::%s:user/fake-exporter" % ACCOUNT_ID)

    def assume_denied(self, ctx, why):
        """403 AccessDenied as STS answers it; why goes to X-Fake-Auth-Error."""
        return self.error(ctx, 403, "AccessDenied",
                          "User: %s is not authorized to perform: sts:AssumeRole on "
                          "resource: %s" % (self.identity(ctx)[2], ctx.sts_params["RoleArn"]),
                          headers=[("X-Fake-Auth-Error", why)])

    def assume_target(self, ctx):
        """(account the new credentials are bound to, None) or (None, 403 Response).

        A role in the management account (or, when the organization has no members, in
        any account): as without an organization (--sts-external-id applies). A role in a
        member account: the caller must be the management account's credentials, the
        member ACTIVE, the role name the organization's and ExternalId the organization's
        external id when one is set. Credentials bound to a member cannot assume roles."""
        cfg = self.app.config
        p = ctx.sts_params
        m = _ROLE_ARN_RE.match(p["RoleArn"])
        target = m.group(1)
        role_path_name = p["RoleArn"].split(":role/", 1)[1]
        with self.app.lock:
            org = self.app.org
        caller = self.app.account_of(getattr(ctx, "sigv4_akid", None))
        if caller != ACCOUNT_ID:
            return None, self.assume_denied(
                ctx, "credentials of member %s cannot assume roles (only the management "
                "account's)" % caller)
        member = org.member(target)
        if target == ACCOUNT_ID or (member is None and not org.accounts):
            if cfg.sts_external_id is not None:
                ext = p.get("ExternalId") or ""
                if not hmac.compare_digest(ext.encode("utf-8", "surrogateescape"),
                                           cfg.sts_external_id.encode("utf-8")):
                    return None, self.assume_denied(ctx, "ExternalId does not match "
                                                    "--sts-external-id")
            return ACCOUNT_ID, None
        if member is None:
            return None, self.assume_denied(ctx, "account %s is not in the organization"
                                            % target)
        if member["Status"] != "ACTIVE":
            return None, self.assume_denied(ctx, "member %s is %s" % (target,
                                                                      member["Status"]))
        if role_path_name != org.role_name:
            return None, self.assume_denied(ctx, "role %r is not the organization's role "
                                            "%r" % (role_path_name, org.role_name))
        if org.external_id is not None:
            ext = p.get("ExternalId") or ""
            if not hmac.compare_digest(ext.encode("utf-8", "surrogateescape"),
                                       org.external_id.encode("utf-8")):
                return None, self.assume_denied(ctx, "ExternalId does not match the "
                                                "organization's external_id")
        return target, None

    def endpoint(self, ctx):
        cfg = self.app.config
        p = ctx.sts_params
        action = ctx.operation
        rid = str(uuid.uuid4())
        if action == "GetCallerIdentity":
            user_id, account, arn = self.identity(ctx)
            result = collections.OrderedDict([("UserId", user_id), ("Account", account),
                                              ("Arn", arn)])
            return self.render(ctx, action, result, rid)
        bound = ACCOUNT_ID
        if action == "AssumeRole":
            bound, denied = self.assume_target(ctx)
            if denied is not None:
                return denied
        duration = int(p.get("DurationSeconds") or cfg.credential_lifetime)
        lifetime = min(duration, cfg.credential_lifetime)
        expired = ctx.fault is not None and ctx.fault.kind == "expired_credentials"
        m = _ROLE_ARN_RE.match(p["RoleArn"])
        account, role_name = m.group(1), m.group(2)
        session = p["RoleSessionName"]
        role_id = "AROA" + _base36(int(hashlib.sha256(p["RoleArn"].encode()).hexdigest(), 16),
                                   17).upper()
        binding = None
        if bound != ACCOUNT_ID:
            binding = {"account": bound, "role_arn": p["RoleArn"],
                       "arn": "arn:aws:sts::%s:assumed-role/%s/%s" % (account, role_name,
                                                                      session),
                       "user_id": "%s:%s" % (role_id, session)}
        creds = self.app.issue_credentials("sts", lifetime, expired=expired, binding=binding)
        if action == "AssumeRole":
            ctx.assumed_account = bound
        result = collections.OrderedDict()
        result["Credentials"] = collections.OrderedDict([
            ("AccessKeyId", creds["AccessKeyId"]),
            ("SecretAccessKey", creds["SecretAccessKey"]),
            ("SessionToken", creds["SessionToken"]),
            ("Expiration", creds["Expiration"])])
        if action == "AssumeRoleWithWebIdentity":
            result["SubjectFromWebIdentityToken"] = \
                "system:serviceaccount:monitoring:bedrock-cost-exporter"
            result["Audience"] = "sts.amazonaws.com"
            result["Provider"] = ("arn:aws:iam::%s:oidc-provider/oidc.eks.us-east-1."
                                  "amazonaws.com/id/FAKEOIDC" % ACCOUNT_ID)
        result["AssumedRoleUser"] = collections.OrderedDict([
            ("Arn", "arn:aws:sts::%s:assumed-role/%s/%s" % (account, role_name, session)),
            ("AssumedRoleId", "%s:%s" % (role_id, session))])
        result["PackedPolicySize"] = None
        result["SourceIdentity"] = None
        return self.render(ctx, action, result, rid)

    def render(self, ctx, action, result, rid):
        if self.wants_json(ctx):
            obj = {"%sResponse" % action: collections.OrderedDict([
                ("%sResult" % action, result), ("ResponseMetadata", {"RequestId": rid})])}
            return Response.json_obj(200, obj, headers=[("x-amzn-RequestId", rid)])
        res = copy.deepcopy(result)
        if isinstance(res.get("Credentials"), dict):
            res["Credentials"]["Expiration"] = iso8601(res["Credentials"]["Expiration"])
        xml = ('<%sResponse xmlns="%s"><%sResult>%s</%sResult><ResponseMetadata><RequestId>'
               '%s</RequestId></ResponseMetadata></%sResponse>\n'
               % (action, STS_XMLNS, action, _xml_elems(res), action, rid, action))
        return Response(200, xml.encode("utf-8"), headers=[("x-amzn-RequestId", rid)],
                        content_type="text/xml")

    # -- fault dialect --------------------------------------------------------
    def fault_applies(self, fault, ctx):
        if fault.kind == "expired_credentials":
            return ctx.operation in ("AssumeRole", "AssumeRoleWithWebIdentity")
        return True

    def throttle_response(self, ctx, fault):
        headers = []
        if "retry_after" in fault.params:
            headers.append(("Retry-After", str(fault.params["retry_after"])))
        return self.error(ctx, 400, "Throttling", "Rate exceeded", headers=headers)

    def server_error_response(self, ctx, fault):
        status = fault.params.get("status", 500)
        if status == 503:
            return self.error(ctx, 503, "ServiceUnavailable", "Service is unavailable",
                              "Receiver")
        return self.error(ctx, status, "InternalFailure", "An internal error occurred",
                          "Receiver")

    def auth_fault_response(self, ctx, fault):
        if ctx.operation == "AssumeRoleWithWebIdentity":
            return self.invalid_identity_token(ctx)
        return self.error(ctx, 403, "InvalidClientTokenId", INVALID_TOKEN_MESSAGE)

    def malformed_response(self, ctx, fault):
        r = super().malformed_response(ctx, fault)
        if not self.wants_json(ctx):
            r.content_type = "text/xml"
        return r

    def malformed_body(self, ctx, fault):
        action = ctx.operation or "AssumeRole"
        if not self.wants_json(ctx):
            return ('<%sResponse xmlns="%s"><%sResult><Credentials><AccessKeyId>ASIA'
                    % (action, STS_XMLNS, action)).encode()
        return ('{"%sResponse":{"%sResult":{"Credentials":{"AccessKeyId":"ASIA'
                % (action, action)).encode()

    _FLOAT_MARK = "__fake_aws_float_expiration__"

    def wrong_types(self, ctx, obj, field):
        obj = copy.deepcopy(obj)
        field = field or "expiration"

        def fix(d):
            c = d.get("Credentials")
            if not isinstance(c, dict):
                return
            if field == "expiration":
                c["Expiration"] = iso8601(c["Expiration"])
            elif field == "expiration_float":
                c["Expiration"] = "%s%d" % (self._FLOAT_MARK, c["Expiration"])
            elif field == "access_key_id":
                c["AccessKeyId"] = 12345
            elif field == "credentials":
                d["Credentials"] = [c]
        _walk(obj, fix)
        return obj

    def rewrap_json(self, resp, obj):
        out = super().rewrap_json(resp, obj)
        if self._FLOAT_MARK.encode() in out.body:
            out.body = re.sub(('"%s(\\d+)"' % self._FLOAT_MARK).encode(),
                              lambda m: ("%.9E" % int(m.group(1))).replace("E+0", "E")
                              .replace("E+", "E").encode(), out.body)
        return out

    def huge_parts(self, ctx):
        action = ctx.operation or "AssumeRole"
        prefix = ('{"%sResponse":{"%sResult":{"Credentials":{"AccessKeyId":"ASIAHUGE",'
                  '"SecretAccessKey":"x","SessionToken":"x","Expiration":%d},"Padding":['
                  % (action, action, int(time.time()) + 3600)).encode()
        return prefix, (lambda i: b'"%08d"' % i), b']}}}'


IMDS_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                405: "Method Not Allowed", 429: "Too Many Requests",
                500: "Internal Server Error", 503: "Service Unavailable"}
IMDS_CREDS_BASE = "/latest/meta-data/iam/security-credentials"


def imds_error(status, headers=()):
    reason = IMDS_REASONS.get(status, "Error")
    body = ('<?xml version="1.0" encoding="iso-8859-1"?>\n'
            '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n'
            '\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
            '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n'
            ' <head>\n  <title>%d - %s</title>\n </head>\n'
            ' <body>\n  <h1>%d - %s</h1>\n </body>\n</html>\n'
            % (status, reason, status, reason))
    return Response(status, body.encode(), headers=headers, content_type="text/html")


def imds_json_bytes(obj):
    return json.dumps(obj, indent=2, separators=(",", " : ")).encode("utf-8")


class ImdsSurface(Surface):
    """EC2 instance metadata service, IMDSv2 only (IMDSv1 answers 401)."""

    name = "imds"
    prefixes = ("/latest/",)
    auth_schemes = ("token", "none")
    operations = ("GetToken", "ListRoles", "GetCredentials", "GetMetadata")
    fault_kinds = CREDENTIAL_FAULT_KINDS
    wrong_types_fields = ("expiration", "access_key_id", "token")
    content_type = "text/plain"

    def new_counters(self):
        c = super().new_counters()
        c["by_operation"] = {}
        c["tokens_issued"] = 0
        c["issued"] = 0
        return c

    def metadata(self):
        return {
            "/latest/meta-data/placement/region": "us-east-1",
            "/latest/meta-data/placement/availability-zone": "us-east-1a",
            "/latest/meta-data/instance-id": "i-0fa4e0000e4904e5",
            "/latest/meta-data/iam/info": imds_json_bytes(collections.OrderedDict([
                ("Code", "Success"), ("LastUpdated", iso8601(time.time())),
                ("InstanceProfileArn", "arn:aws:iam::%s:instance-profile/%s"
                 % (ACCOUNT_ID, self.app.config.imds_role)),
                ("InstanceProfileId", "AIPAFAKEEXPORTERPROFILE")])).decode(),
            "/latest/dynamic/instance-identity/document": imds_json_bytes(
                collections.OrderedDict([("accountId", ACCOUNT_ID),
                                         ("availabilityZone", "us-east-1a"),
                                         ("instanceId", "i-0fa4e0000e4904e5"),
                                         ("region", "us-east-1")])).decode(),
        }

    def resolve(self, ctx):
        ctx.operation = None
        path = ctx.path
        if path == "/latest/api/token":
            if ctx.method != "PUT":
                return imds_error(405)
            ctx.operation = "GetToken"
            return self.put_token
        if ctx.method not in ("GET", "HEAD"):
            return imds_error(405)
        if path in (IMDS_CREDS_BASE, IMDS_CREDS_BASE + "/"):
            ctx.operation = "ListRoles"
            return self.list_roles
        if path.startswith(IMDS_CREDS_BASE + "/"):
            ctx.operation = "GetCredentials"
            ctx.imds_role = urllib.parse.unquote(path[len(IMDS_CREDS_BASE) + 1:])
            return self.get_credentials
        if path in self.metadata():
            ctx.operation = "GetMetadata"
            return self.get_metadata
        return imds_error(404)

    def authenticate(self, ctx, endpoint):
        if ctx.operation == "GetToken":
            ctx.auth_scheme = "none"
            if ctx.header("X-Forwarded-For") is not None:
                return imds_error(403)
            return None
        token = ctx.header("X-aws-ec2-metadata-token")
        if token is None:
            ctx.auth_scheme = "none"              # IMDSv1 is disabled
            return imds_error(401)
        ctx.auth_scheme = "token"
        with self.app.lock:
            exp = self.app.imds_tokens.get(token.strip())
        if exp is None or time.time() >= exp:
            return imds_error(401)
        return None

    def count(self, ctx, resp, counters):
        op = getattr(ctx, "operation", None)
        if op:
            counters["by_operation"][op] = counters["by_operation"].get(op, 0) + 1
            if op == "GetToken" and resp.status == 200:
                counters["tokens_issued"] += 1

    def log_fields(self, ctx):
        op = getattr(ctx, "operation", None)
        return {"operation": op} if op else {}

    # -- endpoints ------------------------------------------------------------
    def put_token(self, ctx):
        ttl = (ctx.header("X-aws-ec2-metadata-token-ttl-seconds") or "").strip()
        if not re.fullmatch(r"\d{1,6}", ttl) or not 1 <= int(ttl) <= 21600:
            return imds_error(400)
        token = "AQAEA" + base64.urlsafe_b64encode(secrets.token_bytes(39)).decode()
        now = time.time()
        with self.app.lock:
            tokens = self.app.imds_tokens
            if len(tokens) >= 10000:
                for t in [t for t, e in tokens.items() if e <= now]:
                    del tokens[t]
                while len(tokens) >= 10000:
                    tokens.pop(next(iter(tokens)))
            tokens[token] = now + int(ttl)
        return Response(200, token.encode(), content_type="text/plain",
                        headers=[("X-aws-ec2-metadata-token-ttl-seconds", ttl)])

    def list_roles(self, ctx):
        return Response(200, self.app.config.imds_role.encode(), content_type="text/plain")

    def get_metadata(self, ctx):
        return Response(200, self.metadata()[ctx.path].encode(), content_type="text/plain")

    def get_credentials(self, ctx):
        if ctx.imds_role != self.app.config.imds_role:
            return imds_error(404)
        expired = ctx.fault is not None and ctx.fault.kind == "expired_credentials"
        creds = self.app.served_credentials("imds", expired=expired)
        obj = collections.OrderedDict([
            ("Code", "Success"), ("LastUpdated", iso8601(creds["issued"])),
            ("Type", "AWS-HMAC"), ("AccessKeyId", creds["AccessKeyId"]),
            ("SecretAccessKey", creds["SecretAccessKey"]), ("Token", creds["SessionToken"]),
            ("Expiration", iso8601(creds["Expiration"]))])
        return Response(200, imds_json_bytes(obj), content_type="text/plain", obj=obj)

    # -- fault dialect --------------------------------------------------------
    def fault_applies(self, fault, ctx):
        if fault.kind in ("expired_credentials", "wrong_types"):
            return ctx.operation == "GetCredentials"
        return True

    def rewrap_json(self, resp, obj):
        return Response(200, imds_json_bytes(obj), headers=resp.headers,
                        content_type=resp.content_type, obj=obj)

    def throttle_response(self, ctx, fault):
        headers = []
        if "retry_after" in fault.params:
            headers.append(("Retry-After", str(fault.params["retry_after"])))
        return imds_error(429, headers)

    def server_error_response(self, ctx, fault):
        return imds_error(fault.params.get("status", 500))

    def auth_fault_response(self, ctx, fault):
        return imds_error(401)

    def malformed_body(self, ctx, fault):
        return b'{\n  "Code" : "Success",\n  "LastUpdated" : "'

    def wrong_types(self, ctx, obj, field):
        obj = copy.deepcopy(obj)
        field = field or "expiration"
        if field == "expiration" and "Expiration" in obj:
            obj["Expiration"] = calendar.timegm(time.strptime(obj["Expiration"],
                                                              "%Y-%m-%dT%H:%M:%SZ"))
        elif field == "access_key_id":
            obj["AccessKeyId"] = 12345
        elif field == "token":
            obj["Token"] = None
        return obj

    def huge_parts(self, ctx):
        return (b'{\n  "Code" : "Success",\n  "Padding" : [', lambda i: b'"%08d"' % i,
                b'],\n  "Type" : "AWS-HMAC"\n}')


class ContainerSurface(Surface):
    """ECS / EKS Pod Identity container credentials endpoint
    (AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN)."""

    name = "container"
    prefixes = ("/container-credentials",)
    auth_schemes = ("token", "none")
    operations = ("GetCredentials",)
    fault_kinds = CREDENTIAL_FAULT_KINDS
    wrong_types_fields = ("expiration", "access_key_id", "token")

    def new_counters(self):
        c = super().new_counters()
        c["issued"] = 0
        return c

    @staticmethod
    def error(status, code, message, headers=()):
        return Response.json_obj(status, {"code": code, "message": message}, headers=headers)

    def resolve(self, ctx):
        ctx.operation = None
        base = self.prefixes[0]
        if ctx.path != base and not ctx.path.startswith(base + "/"):
            return self.error(404, "NotFound", "fake_aws: credentials are served under %s"
                              % base)
        if ctx.method not in ("GET", "HEAD"):
            return self.error(405, "MethodNotAllowed", "only GET")
        ctx.operation = "GetCredentials"
        return self.get_credentials

    def authenticate(self, ctx, endpoint):
        expected = self.app.config.container_auth_token
        got = ctx.header("Authorization")
        ctx.auth_scheme = "token" if got else "none"
        if expected is None:
            return None
        if got is None or not hmac.compare_digest(got.strip().encode("utf-8",
                                                                     "surrogateescape"),
                                                  expected.encode("utf-8")):
            return self.error(401, "AccessDeniedException",
                              "missing or invalid Authorization token")
        return None

    def log_fields(self, ctx):
        op = getattr(ctx, "operation", None)
        return {"operation": op} if op else {}

    def get_credentials(self, ctx):
        expired = ctx.fault is not None and ctx.fault.kind == "expired_credentials"
        creds = self.app.served_credentials("container", expired=expired)
        obj = collections.OrderedDict([
            ("RoleArn", "arn:aws:iam::%s:role/%s" % (ACCOUNT_ID, self.app.config.imds_role)),
            ("AccessKeyId", creds["AccessKeyId"]),
            ("SecretAccessKey", creds["SecretAccessKey"]),
            ("Token", creds["SessionToken"]),
            ("Expiration", iso8601(creds["Expiration"]))])
        return Response.json_obj(200, obj)

    def throttle_response(self, ctx, fault):
        headers = []
        if "retry_after" in fault.params:
            headers.append(("Retry-After", str(fault.params["retry_after"])))
        return self.error(429, "TooManyRequests", "Rate exceeded", headers)

    def server_error_response(self, ctx, fault):
        return self.error(fault.params.get("status", 500), "InternalServerError",
                          "could not retrieve credentials")

    def auth_fault_response(self, ctx, fault):
        return self.error(401, "AccessDeniedException",
                          "missing or invalid Authorization token")

    def malformed_body(self, ctx, fault):
        return b'{"RoleArn":"arn:aws:iam::123456789012:role/x","AccessKeyId":"ASIA'

    def wrong_types(self, ctx, obj, field):
        return ImdsSurface.wrong_types(self, ctx, obj, field)

    def huge_parts(self, ctx):
        return (b'{"AccessKeyId":"ASIAHUGE","Padding":[', lambda i: b'"%08d"' % i, b']}')


# --------------------------------------------------------------------------
# S3: objects in memory (the exporter's shared state file, issue 14)
# --------------------------------------------------------------------------

S3_OBJECT_OPERATIONS = ("GetObject", "HeadObject", "PutObject")
S3_OPERATIONS = S3_OBJECT_OPERATIONS + ("ListObjectsV2",)
S3_FAULT_KINDS = ("throttle", "server_error", "slow", "hang", "truncated", "malformed",
                  "auth", "huge", "expired_token", "access_denied", "loop")
S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
S3_LIST_MAX_KEYS = 1000              # S3's cap of max-keys (and the default)
S3_LIST_LAST_MODIFIED_FMT = "%Y-%m-%dT%H:%M:%S.000Z"
# A continuation token: base64 of this header, "k" (a key) or "p" (a common prefix), the
# key or prefix, and padding so the text always holds '+', '/' and '=' (as real tokens
# do), which a client must URI-encode in the query.
S3_TOKEN_HEADER = b"\xfb\xff\xbf"
S3_DEFAULT_CONTENT_TYPE = "binary/octet-stream"
S3_MAX_KEY_BYTES = 1024
S3_UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
S3_MISMATCH_MESSAGE = (SIGV4_MISMATCH_MESSAGE + " Check your key and signing method.")
S3_QUERY_ALLOWED = ("x-id",)         # botocore's operation hint; anything else is 501
_S3_BUCKET_RE = re.compile(r"^[a-z0-9.-]{3,63}$")
_S3_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_REGION_RE = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d+$")

# One stored object: body (bytes), etag ('"<md5 hex>"', quotes included),
# last_modified (epoch seconds, int), content_type (as PUT sent it).
S3Object = collections.namedtuple("S3Object", "body etag last_modified content_type")


def s3_etag(body):
    return '"%s"' % hashlib.md5(body).hexdigest()


def http_date(epoch):
    """RFC 7231 IMF-fixdate, e.g. Thu, 14 May 2026 09:00:00 GMT."""
    return email.utils.formatdate(epoch, usegmt=True)


def s3_ids():
    """x-amz-request-id / x-amz-id-2 headers of one S3 answer."""
    return [("x-amz-request-id", secrets.token_hex(8).upper()),
            ("x-amz-id-2", base64.b64encode(secrets.token_bytes(48)).decode())]


def s3_error(status, code, message, extra=(), headers=()):
    """An S3 REST error: application/xml
    <Error><Code/><Message/>[extra elements]<RequestId/><HostId/></Error>."""
    ids = s3_ids()
    parts = ['<?xml version="1.0" encoding="UTF-8"?>',
             "<Error><Code>%s</Code><Message>%s</Message>" % (code, _xml_escape(message))]
    for name, value in extra:
        parts.append("<%s>%s</%s>" % (name, _xml_escape(value), name))
    parts.append("<RequestId>%s</RequestId><HostId>%s</HostId></Error>" % (ids[0][1],
                                                                          ids[1][1]))
    return Response(status, "".join(parts).encode("utf-8"), headers=ids + list(headers),
                    content_type="application/xml")


def s3_etag_matches(value, etag):
    """True when an If-Match / If-None-Match value names etag: `*`, or a comma list of
    entity tags (quotes and a W/ prefix optional, as S3 accepts them)."""
    want = etag.strip('"')
    for part in value.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if len(tag) >= 2 and tag[0] == '"' and tag[-1] == '"':
            tag = tag[1:-1]
        if tag == "*" or (tag and tag == want):
            return True
    return False


def s3_query_pairs(query):
    """[(name, value)] of a query string as S3 reads it: %XX decoded (UTF-8), '+' is a
    space (in the query, unlike the path), a name without '=' has the value ""."""
    out = []
    for part in (query or "").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        out.append((urllib.parse.unquote_plus(name, errors="replace"),
                    urllib.parse.unquote_plus(value, errors="replace")))
    return out


def s3_canonical_query(pairs):
    """The query re-encoded as SigV4's canonical query string wants it (every byte but
    A-Z a-z 0-9 - _ . ~ as %XX), in the order given (the signer sorts)."""
    def enc(v):
        return urllib.parse.quote(v, safe="-_.~")
    return "&".join("%s=%s" % (enc(n), enc(v)) for n, v in pairs)


def s3_list_token(kind, value):
    """An opaque continuation token: resume after key (kind "k") or after every key
    under the common prefix (kind "p") `value`."""
    raw = S3_TOKEN_HEADER + kind.encode() + value.encode("utf-8")
    if len(raw) % 3 == 0:
        raw += b"\x00"             # '=' padding, always
    return base64.b64encode(raw).decode()


def s3_read_list_token(token):
    """(kind, value) of a token s3_list_token made, or None."""
    try:
        raw = base64.b64decode(token.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    if not raw.startswith(S3_TOKEN_HEADER) or len(raw) < len(S3_TOKEN_HEADER) + 1:
        return None
    raw = raw[len(S3_TOKEN_HEADER):]
    kind = raw[:1].decode("latin-1")
    body = raw[1:]
    if body.endswith(b"\x00"):
        body = body[:-1]
    if kind not in ("k", "p"):
        return None
    try:
        return kind, body.decode("utf-8")
    except UnicodeDecodeError:
        return None


_S3_LIST_MEMBERS = None


def s3_list_members():
    """{query name: (member, type)} of ListObjectsV2's querystring members in botocore's
    model (delimiter, encoding-type, max-keys, prefix, continuation-token, fetch-owner,
    start-after), and the operation's input shape."""
    global _S3_LIST_MEMBERS
    if _S3_LIST_MEMBERS is None:
        om = botocore_operation_model("s3", "ListObjectsV2")
        members = {}
        for name, shape in om.input_shape.members.items():
            ser = shape.serialization
            if ser.get("location") == "querystring":
                members[ser.get("name", name)] = (name, shape.type_name)
        _S3_LIST_MEMBERS = (members, om.input_shape)
    return _S3_LIST_MEMBERS


_XML_INVALID_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _s3_xml_text(s):
    """Text for an S3 XML element: escaped, and a control character that XML 1.0 cannot
    hold written as &#xN; (S3 does that; a client should ask for encoding-type=url)."""
    return _XML_INVALID_RE.sub(lambda m: "&#x%X;" % ord(m.group(0)), _xml_escape(s))


def s3_list_result(bucket, params, items, truncated, next_token, owner=None):
    """The ListBucketResult XML of one ListObjectsV2 page. items: [("k", key, S3Object)
    or ("p", common prefix, None)] in order."""
    url = params.get("EncodingType") == "url"

    def enc(v):
        return _s3_xml_text(urllib.parse.quote_plus(v, safe="/") if url else v)
    contents = [i for i in items if i[0] == "k"]
    prefixes = [i for i in items if i[0] == "p"]
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n',
           '<ListBucketResult xmlns="%s">' % S3_XMLNS,
           "<Name>%s</Name>" % _s3_xml_text(bucket),
           "<Prefix>%s</Prefix>" % enc(params.get("Prefix", ""))]
    if params.get("ContinuationToken") is not None:
        out.append("<ContinuationToken>%s</ContinuationToken>"
                   % _s3_xml_text(params["ContinuationToken"]))
    if next_token is not None:
        out.append("<NextContinuationToken>%s</NextContinuationToken>"
                   % _s3_xml_text(next_token))
    out.append("<KeyCount>%d</KeyCount>" % len(items))
    out.append("<MaxKeys>%d</MaxKeys>" % min(params.get("MaxKeys", S3_LIST_MAX_KEYS),
                                              S3_LIST_MAX_KEYS))
    if params.get("Delimiter"):
        out.append("<Delimiter>%s</Delimiter>" % enc(params["Delimiter"]))
    if url:
        out.append("<EncodingType>url</EncodingType>")
    out.append("<IsTruncated>%s</IsTruncated>" % ("true" if truncated else "false"))
    if params.get("StartAfter") is not None:
        out.append("<StartAfter>%s</StartAfter>" % enc(params["StartAfter"]))
    for _, key, obj in contents:
        out.append("<Contents><Key>%s</Key><LastModified>%s</LastModified>"
                   "<ETag>%s</ETag><Size>%d</Size>"
                   % (enc(key), time.strftime(S3_LIST_LAST_MODIFIED_FMT,
                                              time.gmtime(obj.last_modified)),
                      _s3_xml_text(obj.etag), len(obj.body)))
        if owner is not None:
            out.append("<Owner><ID>%s</ID></Owner>" % owner)
        out.append("<StorageClass>STANDARD</StorageClass></Contents>")
    for _, cp, _ in prefixes:
        out.append("<CommonPrefixes><Prefix>%s</Prefix></CommonPrefixes>" % enc(cp))
    out.append("</ListBucketResult>")
    return "".join(out).encode("utf-8")


def s3_list_page(objects, params, page_size, looping=False):
    """One ListObjectsV2 page over objects [(key, S3Object)] of a bucket:
    (items, truncated, next token). At most min(max-keys, page_size) keys and common
    prefixes together; keys in UTF-8 byte order. looping: the continuation token is
    ignored and the page always says it is truncated (the `loop` fault)."""
    prefix = params.get("Prefix", "")
    delim = params.get("Delimiter") or None
    limit = min(params.get("MaxKeys", S3_LIST_MAX_KEYS), S3_LIST_MAX_KEYS, page_size)
    after, after_prefix = None, False
    token = params.get("ContinuationToken")
    if token is not None and not looping:
        kind, after = s3_read_list_token(token)
        after_prefix = kind == "p"
    elif params.get("StartAfter"):
        after = params["StartAfter"]
    after_b = after.encode("utf-8") if after is not None else None
    items, truncated = [], False
    for key, obj in sorted(objects, key=lambda ko: ko[0].encode("utf-8")):
        if not key.startswith(prefix):
            continue
        if after_b is not None and (key.encode("utf-8") <= after_b or
                                    (after_prefix and key.startswith(after))):
            continue
        cp = None
        if delim:
            i = key.find(delim, len(prefix))
            if i >= 0:
                cp = key[:i + len(delim)]
                if items and items[-1][0] == "p" and items[-1][1] == cp:
                    continue
        if len(items) >= limit:
            truncated = limit > 0
            break
        items.append(("p", cp, None) if cp is not None else ("k", key, obj))
    if looping:
        truncated = True
    next_token = None
    if truncated:
        last = items[-1] if items else ("k", "", None)
        next_token = s3_list_token(last[0], last[1])
    return items, truncated, next_token


class S3Surface(Surface):
    """Amazon S3, REST (XML errors): GetObject, HeadObject and PutObject with
    If-Match / If-None-Match, and ListObjectsV2, over objects kept in memory
    (app.s3_objects).

    Path-style     GET|PUT|HEAD /s3/{bucket}/{key...}, GET /s3/{bucket}[/]?list-type=2&...
    Virtual-hosted GET|PUT|HEAD /s3vh/{key...}, GET /s3vh/?list-type=2&... with
                   Host: {bucket}.localhost:PORT

    SigV4 (service s3, any region in the credential scope; S3's canonical URI: the
    path as sent, not encoded again), x-amz-content-sha256 required and signed."""

    name = "s3"
    prefixes = ("/s3/", "/s3vh/")
    auth_schemes = ("sigv4", "none", "other")
    operations = S3_OPERATIONS
    fault_kinds = S3_FAULT_KINDS
    content_type = S3_DEFAULT_CONTENT_TYPE
    sigv4_service = "s3"
    PATH_PREFIX = "/s3/"
    VHOST_PREFIX = "/s3vh/"
    accepts_oversize = True          # a body over MAX_REQUEST_BODY: 413 EntityTooLarge

    def new_counters(self):
        c = super().new_counters()
        c["by_operation"] = {}
        c["by_operation_status"] = {}
        c["not_modified"] = {op: 0 for op in S3_OBJECT_OPERATIONS}          # 304 answers
        c["precondition_failed"] = {op: 0 for op in S3_OBJECT_OPERATIONS}   # 412 answers
        c["get_by_key"] = {}         # GetObject answers per key: {key: {status: n}}
        c["list_by_prefix"] = {}     # ListObjectsV2 requests per prefix: {prefix: n}
        return c

    # -- routing / auth -------------------------------------------------------
    def resolve(self, ctx):
        ctx.operation = None
        ctx.s3_bucket = ctx.s3_key = ctx.s3_region = ctx.s3_etag = ctx.s3_bytes = None
        if ctx.path.startswith(self.VHOST_PREFIX):
            ctx.s3_style = "virtual"
            host = ctx.header("Host") or ""
            m = re.fullmatch(r"([a-z0-9.-]{3,63})\.localhost:(\d{1,5})", host)
            if not m or int(m.group(2)) != ctx.server_port:
                return s3_error(400, "InvalidRequest",
                                "fake_aws: a virtual-hosted request (%s{key}) needs "
                                "Host: {bucket}.localhost:%d, got %r"
                                % (self.VHOST_PREFIX, ctx.server_port, host))
            bucket, raw_key = m.group(1), ctx.path[len(self.VHOST_PREFIX):]
        else:
            ctx.s3_style = "path"
            bucket, _, raw_key = ctx.path[len(self.PATH_PREFIX):].partition("/")
            if not _S3_BUCKET_RE.match(bucket):
                return s3_error(400, "InvalidBucketName", "The specified bucket is not valid.",
                                [("BucketName", bucket)])
        ctx.s3_bucket = bucket
        pairs = s3_query_pairs(ctx.query)
        # SigV4 is checked over the canonical form of the query as S3 decodes it
        canon = s3_canonical_query(pairs)
        ctx.sigv4_url = "http://127.0.0.1:%d%s%s" % (ctx.server_port, ctx.path,
                                                      "?" + canon if canon else "")
        if not raw_key:
            if ctx.method == "GET" and any(n == "list-type" for n, _ in pairs):
                return self.resolve_list(ctx, pairs)
            return s3_error(400, "InvalidRequest",
                            "fake_aws: only object requests (GET|PUT|HEAD /s3/{bucket}/{key} "
                            "or /s3vh/{key}) and ListObjectsV2 (GET /s3/{bucket}/?list-type=2 "
                            "or /s3vh/?list-type=2) are served; other bucket operations are "
                            "not")
        try:
            key = urllib.parse.unquote(raw_key, errors="strict")
        except UnicodeDecodeError:            # %XX that is not UTF-8
            key = None
        if key is None or not raw_key.isascii() or re.search(r"[\s]", raw_key):
            return s3_error(400, "InvalidURI", "Couldn't parse the specified URI.",
                            [("URI", ctx.path)])
        if len(key.encode("utf-8")) > S3_MAX_KEY_BYTES:
            return s3_error(400, "KeyTooLongError", "Your key is too long",
                            [("MaxSizeAllowed", S3_MAX_KEY_BYTES)])
        ctx.s3_key = key
        op = {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject"}.get(ctx.method)
        if op is None:
            return s3_error(405, "MethodNotAllowed",
                            "The specified method is not allowed against this resource.",
                            [("Method", ctx.method), ("ResourceType", "OBJECT")],
                            headers=[("Allow", "GET, HEAD, PUT")])
        ctx.operation = op
        for name in ctx.params:
            if name not in S3_QUERY_ALLOWED:
                return s3_error(501, "NotImplemented",
                                "fake_aws: query parameter %r is not served (only GetObject, "
                                "HeadObject, PutObject of an object)" % name)
        too_large = getattr(ctx, "body_too_large", None)
        if too_large is not None:
            return s3_error(413, "EntityTooLarge",
                            "Your proposed upload exceeds the maximum allowed size",
                            [("ProposedSize", too_large), ("MaxSizeAllowed", MAX_REQUEST_BODY)],
                            headers=[("Connection", "close")])
        return self.put_object if op == "PutObject" else self.get_object

    @staticmethod
    def invalid_argument(message, name, value):
        return s3_error(400, "InvalidArgument", message,
                        [("ArgumentName", name), ("ArgumentValue", value)])

    def resolve_list(self, ctx, pairs):
        """GET on the bucket with list-type: ListObjectsV2. The query is read as botocore's
        model maps it (querystring members of ListObjectsV2's input shape) and checked
        with its ParamValidator; ctx.s3_list = the request's members."""
        ctx.operation = "ListObjectsV2"
        ctx.s3_list = None
        seen = {}
        for name, value in pairs:
            if name in seen:
                return self.invalid_argument("fake_aws: query parameter %r is repeated" % name,
                                             name, value)
            seen[name] = value
        list_type = seen.pop("list-type")
        if list_type != "2":
            return self.invalid_argument("fake_aws: only list-type=2 (ListObjectsV2) is "
                                         "served", "list-type", list_type)
        xid = seen.pop("x-id", None)
        if xid is not None and xid != "ListObjectsV2":
            return self.invalid_argument("fake_aws: x-id %r on a ListObjectsV2 request" % xid,
                                         "x-id", xid)
        members, shape = s3_list_members()
        params = {"Bucket": ctx.s3_bucket}
        for name, value in seen.items():
            if name not in members:
                return self.invalid_argument(
                    "fake_aws: query parameter %r is not one of ListObjectsV2's (botocore's "
                    "model: list-type, %s)" % (name, ", ".join(sorted(members))), name, value)
            member, typ = members[name]
            if typ == "integer":
                if not re.fullmatch(r"-?\d{1,10}", value) or \
                        not -2 ** 31 <= int(value) < 2 ** 31:
                    return self.invalid_argument("Provided %s not an integer or within integer "
                                                 "range" % name, name, value)
                params[member] = int(value)
            elif typ == "boolean":
                if value not in ("true", "false"):
                    return self.invalid_argument("Invalid Argument", name, value)
                params[member] = value == "true"
            else:
                params[member] = value
        if self.app.config.model_validation:
            report = ParamValidator().validate(params, shape).generate_report()
            if report:
                return s3_error(400, "InvalidArgument", "fake_aws: the request does not "
                                "conform to botocore's ListObjectsV2 model: " + report)
        if params.get("MaxKeys", 0) < 0:
            return self.invalid_argument("Argument maxKeys must be an integer between 0 and "
                                         "2147483647", "maxKeys", str(params["MaxKeys"]))
        if "EncodingType" in params and params["EncodingType"] != "url":
            return self.invalid_argument("Invalid Encoding Method specified in Request",
                                         "encoding-type", params["EncodingType"])
        token = params.get("ContinuationToken")
        if token is not None and s3_read_list_token(token) is None:
            return self.invalid_argument("The continuation token provided is incorrect",
                                         "continuation-token", token)
        ctx.s3_list = params
        ctx.s3_key = None
        return self.list_objects

    def authenticate(self, ctx, endpoint):
        auth = ctx.header("Authorization")
        if auth is None or not auth.strip():
            ctx.auth_scheme = "none"
            return s3_error(403, "AccessDenied", "Access Denied")
        if auth.strip().split(None, 1)[0] != "AWS4-HMAC-SHA256":
            ctx.auth_scheme = "other"
            return s3_error(400, "InvalidRequest", "The authorization mechanism you have "
                            "provided is not supported. Please use AWS4-HMAC-SHA256.")
        ctx.auth_scheme = "sigv4"
        try:
            parts = parse_sigv4_authorization(auth)
        except ValueError as exc:
            return s3_error(400, "AuthorizationHeaderMalformed",
                            "The authorization header is malformed; %s" % exc)
        scope = parts["Credential"].split("/")
        ctx.s3_region = scope[2] if len(scope) == 5 else None
        if ctx.s3_region is None or not _REGION_RE.match(ctx.s3_region):
            return s3_error(400, "AuthorizationHeaderMalformed",
                            "The authorization header is malformed; the Credential scope "
                            "must be AKID/DATE/REGION/s3/aws4_request with a region name, "
                            "got %r" % parts["Credential"].split("/", 1)[-1])
        shas = [v for (n, v) in ctx.header_items() if n.lower() == "x-amz-content-sha256"]
        if not shas:
            return s3_error(400, "InvalidRequest",
                            "Missing required header for this request: x-amz-content-sha256")
        if "x-amz-content-sha256" not in parts["SignedHeaders"].split(";"):
            return s3_error(403, "AccessDenied", "There were headers present in the request "
                            "which were not signed",
                            [("HeadersNotSigned", "x-amz-content-sha256")])
        claimed = shas[0].strip()
        if len(shas) != 1 or (claimed != S3_UNSIGNED_PAYLOAD and
                              not _S3_SHA256_RE.match(claimed)):
            return s3_error(400, "InvalidArgument", "x-amz-content-sha256 must be "
                            "UNSIGNED-PAYLOAD or a valid sha256 value.",
                            [("ArgumentName", "x-amz-content-sha256"),
                             ("ArgumentValue", ",".join(shas))])
        if claimed != S3_UNSIGNED_PAYLOAD:
            actual = hashlib.sha256(ctx.body).hexdigest()
            if claimed != actual:             # lower-case hex only, as S3 computes it
                return s3_error(400, "XAmzContentSHA256Mismatch", "The provided "
                                "'x-amz-content-sha256' header does not match what was "
                                "computed.", [("ClientComputedContentSHA256", claimed),
                                              ("S3ComputedContentSHA256", actual)])
        return self.app.check_sigv4(ctx, self.sigv4_service, ctx.s3_region)

    def sigv4_denied(self, ctx, result, expired):
        hdr = [("X-Fake-Auth-Error", result.reason)]
        if expired:
            return s3_error(400, "ExpiredToken", "The provided token has expired.",
                            headers=hdr)
        kind = sigv4_failure_kind(result)
        if kind == "unknown_key":
            return s3_error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided "
                            "does not exist in our records.",
                            [("AWSAccessKeyId", result.akid or "")], headers=hdr)
        if kind == "token":
            return s3_error(400, "InvalidToken", "The provided token is malformed or "
                            "otherwise invalid.", headers=hdr)
        if kind == "skew":
            return s3_error(403, "RequestTimeTooSkewed", "The difference between the "
                            "request time and the current time is too large.",
                            [("MaxAllowedSkewMilliseconds", SIGV4_MAX_SKEW_SECONDS * 1000)],
                            headers=hdr)
        if kind == "signature":
            try:
                provided = parse_sigv4_authorization(ctx.header("Authorization"))["Signature"]
            except ValueError:
                provided = ""
            return s3_error(403, "SignatureDoesNotMatch", S3_MISMATCH_MESSAGE,
                            [("AWSAccessKeyId", result.akid or ""),
                             ("StringToSign", result.string_to_sign or ""),
                             ("SignatureProvided", provided),
                             ("CanonicalRequest", _mask_token(result.canonical_request
                                                              or ""))], headers=hdr)
        return s3_error(400, "AuthorizationHeaderMalformed",
                        "The authorization header is malformed; %s" % result.reason,
                        headers=hdr)

    # -- counters / log -------------------------------------------------------
    def count(self, ctx, resp, counters):
        op = getattr(ctx, "operation", None)
        if not op:
            return
        counters["by_operation"][op] = counters["by_operation"].get(op, 0) + 1
        st = str(resp.status) if resp.status is not None else "aborted"
        per = counters["by_operation_status"].setdefault(op, {})
        per[st] = per.get(st, 0) + 1
        if op == "GetObject" and ctx.s3_key is not None:
            per = counters["get_by_key"].setdefault(ctx.s3_key, {})
            per[st] = per.get(st, 0) + 1
        if op == "ListObjectsV2" and getattr(ctx, "s3_list", None) is not None:
            prefix = ctx.s3_list.get("Prefix", "")
            counters["list_by_prefix"][prefix] = counters["list_by_prefix"].get(prefix, 0) + 1
        if op not in S3_OBJECT_OPERATIONS:
            return
        if resp.status == 304:
            counters["not_modified"][op] += 1
        elif resp.status == 412:
            counters["precondition_failed"][op] += 1

    def log_fields(self, ctx):
        op = getattr(ctx, "operation", None)
        if not op:
            return {}
        if op == "ListObjectsV2":
            p = getattr(ctx, "s3_list", None) or {}
            res = getattr(ctx, "s3_list_result", None) or {}
            return {"operation": op, "bucket": ctx.s3_bucket, "prefix": p.get("Prefix"),
                    "continuation_token": p.get("ContinuationToken"),
                    "max_keys": p.get("MaxKeys"), "style": ctx.s3_style,
                    "region": ctx.s3_region, "keys": res.get("keys"),
                    "truncated": res.get("truncated"), "bytes": ctx.s3_bytes}
        return {"operation": op, "bucket": ctx.s3_bucket, "key": ctx.s3_key,
                "style": ctx.s3_style, "region": ctx.s3_region,
                "if_match": ctx.header("If-Match"), "if_none_match": ctx.header("If-None-Match"),
                "etag": ctx.s3_etag, "bytes": ctx.s3_bytes}

    # -- endpoints ------------------------------------------------------------
    @staticmethod
    def object_headers(obj):
        return s3_ids() + [("ETag", obj.etag), ("Last-Modified", http_date(obj.last_modified)),
                           ("Accept-Ranges", "bytes")]

    @staticmethod
    def no_such_key(ctx):
        return s3_error(404, "NoSuchKey", "The specified key does not exist.",
                        [("Key", ctx.s3_key)])

    @staticmethod
    def precondition_failed(condition):
        return s3_error(412, "PreconditionFailed", "At least one of the pre-conditions you "
                        "specified did not hold", [("Condition", condition)])

    def list_objects(self, ctx):
        """ListObjectsV2: a page of at most min(max-keys, 1000, the fake's
        s3_list_page_size) keys; 404 NoSuchBucket when no object is in the bucket."""
        bucket, params = ctx.s3_bucket, ctx.s3_list
        with self.app.lock:
            objects = [(k, o) for (b, k), o in self.app.s3_objects.items() if b == bucket]
            page_size = self.app.s3_list_page_size
        if not objects:
            return s3_error(404, "NoSuchBucket", "The specified bucket does not exist",
                            [("BucketName", bucket)])
        looping = ctx.fault is not None and ctx.fault.kind == "loop"
        items, truncated, next_token = s3_list_page(objects, params, page_size, looping)
        owner = None
        if params.get("FetchOwner"):
            owner = hashlib.sha256(("canonical-user/" + ACCOUNT_ID).encode()).hexdigest()
        body = s3_list_result(bucket, params, items, truncated, next_token, owner)
        ctx.s3_list_result = {"keys": len(items), "truncated": truncated}
        ctx.s3_bytes = len(body)
        return Response(200, body, headers=s3_ids(), content_type="application/xml")

    def get_object(self, ctx):
        with self.app.lock:
            obj = self.app.s3_objects.get((ctx.s3_bucket, ctx.s3_key))
        if obj is None:
            return self.no_such_key(ctx)
        ctx.s3_etag = obj.etag
        if_match, if_none = ctx.header("If-Match"), ctx.header("If-None-Match")
        if if_match is not None and not s3_etag_matches(if_match, obj.etag):
            return self.precondition_failed("If-Match")
        if if_none is not None and s3_etag_matches(if_none, obj.etag):
            return Response(304, b"", headers=self.object_headers(obj), content_type=None)
        ctx.s3_bytes = len(obj.body)
        return Response(200, obj.body, headers=self.object_headers(obj),
                        content_type=obj.content_type)

    def put_object(self, ctx):
        body = ctx.body
        md5 = ctx.header("Content-MD5")
        if md5 is not None:
            try:
                digest = base64.b64decode(md5.strip(), validate=True)
            except (binascii.Error, ValueError):
                digest = b""
            if len(digest) != 16:
                return s3_error(400, "InvalidDigest", "The Content-MD5 you specified was "
                                "invalid.", [("Content-MD5", md5)])
            if digest != hashlib.md5(body).digest():
                return s3_error(400, "BadDigest", "The Content-MD5 you specified did not "
                                "match what we received.",
                                [("ExpectedDigest", md5),
                                 ("CalculatedDigest",
                                  base64.b64encode(hashlib.md5(body).digest()).decode())])
        if_match, if_none = ctx.header("If-Match"), ctx.header("If-None-Match")
        if if_none is not None and if_none.strip() != "*":
            return s3_error(501, "NotImplemented", "A header you provided implies "
                            "functionality that is not implemented",
                            [("Header", "If-None-Match")])
        ctx.s3_bytes = len(body)
        new = S3Object(body, s3_etag(body), int(time.time()),
                       ctx.header("Content-Type") or S3_DEFAULT_CONTENT_TYPE)
        bk = (ctx.s3_bucket, ctx.s3_key)
        with self.app.lock:               # check and store in one step: one racer wins
            cur = self.app.s3_objects.get(bk)
            if if_match is not None and cur is None:
                outcome = "absent"
            elif if_match is not None and not s3_etag_matches(if_match, cur.etag):
                outcome = "If-Match"
            elif if_none is not None and cur is not None:
                outcome = "If-None-Match"
            else:
                outcome = "stored"
                self.app.s3_objects[bk] = new
        if cur is not None:
            ctx.s3_etag = cur.etag
        if outcome == "absent":
            return self.no_such_key(ctx)
        if outcome != "stored":
            return self.precondition_failed(outcome)
        ctx.s3_etag = new.etag
        return Response(200, b"", headers=s3_ids() + [("ETag", new.etag)], content_type=None)

    # -- fault dialect --------------------------------------------------------
    def fault_applies(self, fault, ctx):
        return fault.kind != "loop" or ctx.operation == "ListObjectsV2"

    def validate_fault(self, kind, params):
        super().validate_fault(kind, params)
        if kind == "loop" and params.get("operation", "ListObjectsV2") != "ListObjectsV2":
            raise FaultError("loop applies to ListObjectsV2 only")

    def huge_parts(self, ctx):
        if ctx.operation != "ListObjectsV2":
            return super().huge_parts(ctx)
        head = ('<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="%s">'
                "<Name>%s</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000"
                "</MaxKeys><IsTruncated>false</IsTruncated>" % (S3_XMLNS, ctx.s3_bucket))

        def item(i):
            return (b"<Contents><Key>huge/%012d</Key><LastModified>2026-01-01T00:00:00.000Z"
                    b"</LastModified><ETag>&quot;00000000000000000000000000000000&quot;"
                    b"</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>"
                    % i)
        return (head.encode(), item, b"</ListBucketResult>")

    def huge_response(self, ctx, fault):
        resp = super().huge_response(ctx, fault)
        if ctx.operation == "ListObjectsV2":
            resp.content_type = "application/xml"
        return resp

    def fault_response(self, ctx, fault):
        if fault.kind == "expired_token":
            return s3_error(400, "ExpiredToken", "The provided token has expired.")
        if fault.kind == "access_denied":
            return s3_error(403, "AccessDenied", "Access Denied")
        return None

    def throttle_response(self, ctx, fault):
        headers = retry_after_headers(fault)
        return s3_error(503, "SlowDown", "Please reduce your request rate.", headers=headers)

    def server_error_response(self, ctx, fault):
        status = fault.params.get("status", 500)
        if status == 503:
            return s3_error(503, "ServiceUnavailable", "Service is unable to handle request.")
        return s3_error(status, "InternalError",
                        "We encountered an internal error. Please try again.")

    def auth_fault_response(self, ctx, fault):
        return s3_error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does "
                        "not exist in our records.")

    def malformed_response(self, ctx, fault):
        """GetObject/HeadObject: 200 with the stored object's ETag and the first half of
        its body (or `body`); PutObject: 200 with a cut-off XML body and no ETag, and
        nothing is stored."""
        given = fault.params.get("body")
        given = given.encode("utf-8") if given is not None else None
        if ctx.operation == "ListObjectsV2":
            return Response(200, given if given is not None else
                            ('<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult '
                             'xmlns="%s"><Name>%s</Name><Contents><Key>'
                             % (S3_XMLNS, ctx.s3_bucket)).encode(),
                            headers=s3_ids(), content_type="application/xml")
        if ctx.operation == "PutObject":
            return Response(200, given if given is not None else
                            b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>',
                            headers=s3_ids(), content_type="application/xml")
        with self.app.lock:
            obj = self.app.s3_objects.get((ctx.s3_bucket, ctx.s3_key))
        if obj is None:
            return Response(200, given if given is not None else b'{"',
                            headers=s3_ids(), content_type=S3_DEFAULT_CONTENT_TYPE)
        return Response(200, given if given is not None else obj.body[:len(obj.body) // 2],
                        headers=self.object_headers(obj), content_type=obj.content_type)


# --------------------------------------------------------------------------
# AWS Data Exports (CUR 2.0): a gzip CSV export in the fake's S3, from the ledger
# --------------------------------------------------------------------------

DX_FORMS = ("aliased", "map")
DX_FAULTS = ("truncated_gzip", "missing_chunk", "parquet", "bad_columns", "huge_field",
             "hostile_quotes")
DX_DEFAULTS = (("bucket", "cur-bucket"), ("prefix", "cur"), ("export_name", "bedrock"),
               ("form", "aliased"), ("chunk_lines", 5000), ("fault", None),
               ("principals", True))
DX_MAX_CHUNK_LINES = 10000000
DX_MAX_PREFIX_BYTES = 512
DX_HUGE_FIELD_BYTES = 1536 * 1024     # huge_field: a 1.5 MiB line_item_iam_principal
DX_HOSTILE_VALUE = 'ab"c'             # hostile_quotes: written unquoted
DX_FAULT_LINE = 2                     # the data line (1-based, header not counted) that
#                                       bad_columns, huge_field and hostile_quotes change
DX_AMOUNT_PLACES = 10                 # hourly parts: at most 10 decimals (or the cost's own)
DX_USAGE_QUANTUM = Decimal("1E-10")   # line_item_usage_amount: rounded to 10 decimals
DX_USAGE_LINE_TYPES = ("Usage", "DiscountedUsage", "SavingsPlanCoveredUsage")
DX_CTX = decimal.Context(prec=120, rounding=decimal.ROUND_HALF_EVEN)
DX_ONE_HOUR = datetime.timedelta(hours=1)
_DX_EXPORT_NAME_RE = re.compile(r"^[0-9A-Za-z_-]{1,128}$")
# Cumulative weights of the 24 hours: CloudWatch's diurnal curve (_cw_weights) summed per
# hour, so an hour's share of a day is the share CloudWatch's minutes of that hour have.
DX_HOUR_CUM = [CW_CUM_WEIGHTS[60 * h] for h in range(25)]

DX_ALIASED_COLUMNS = (
    ("bill_billing_period_start_date", "timestamp"),
    ("line_item_usage_account_id", "string"),
    ("line_item_usage_start_date", "timestamp"),
    ("line_item_usage_end_date", "timestamp"),
    ("line_item_product_code", "string"),
    ("product_product_name", "string"),
    ("bill_billing_entity", "string"),
    ("line_item_usage_type", "string"),
    ("line_item_line_item_type", "string"),
    ("line_item_usage_amount", "double"),
    ("pricing_unit", "string"),
    ("line_item_unblended_cost", "double"),
    ("line_item_iam_principal", "string"),
)
DX_MAP_COLUMNS = (
    ("identity_line_item_id", "string"),
    ("bill_billing_entity", "string"),
    ("bill_billing_period_start_date", "timestamp"),
    ("bill_payer_account_id", "string"),
    ("line_item_currency_code", "string"),
    ("line_item_iam_principal", "string"),
    ("line_item_line_item_type", "string"),
    ("line_item_product_code", "string"),
    ("line_item_unblended_cost", "double"),
    ("line_item_usage_account_id", "string"),
    ("line_item_usage_amount", "double"),
    ("line_item_usage_end_date", "timestamp"),
    ("line_item_usage_start_date", "timestamp"),
    ("line_item_usage_type", "string"),
    ("pricing_unit", "string"),
    ("product", "map<string,string>"),
    ("product_product_name", "string"),
    ("resource_tags", "map<string,string>"),
)
# line_item_product_code of known services; a Marketplace "(Amazon Bedrock Edition)"
# service gets prod-<10 of [a-z0-9]> from its name, any other the words of its name.
DX_PRODUCT_CODES = {
    BEDROCK_SERVICE: "AmazonBedrock", EC2_SERVICE: "AmazonEC2", "EC2 - Other": "AmazonEC2",
    LAMBDA_SERVICE: "AWSLambda", "Amazon Simple Storage Service": "AmazonS3",
    "Amazon CloudWatch": "AmazonCloudWatch", "Amazon DynamoDB": "AmazonDynamoDB",
    "Amazon Relational Database Service": "AmazonRDS",
    "Amazon Virtual Private Cloud": "AmazonVPC",
}
# USD per usage unit of usage types that are not Bedrock tokens (first substring that
# matches the usage type), for a plausible line_item_usage_amount = cost / price.
DX_UNIT_PRICES = (("BoxUsage", Decimal("0.096")), ("GB-Second", Decimal("0.0000166667")),
                  ("Request", Decimal("0.0000002")))
DX_DEFAULT_UNIT_PRICE = Decimal("0.01")


class DxError(ValueError):
    pass


def dx_config_from_json(data):
    """The export's configuration from PUT /_fake/data_exports (defaults for what is
    missing). Raises DxError."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DxError("expected an object {\"bucket\",\"prefix\",\"export_name\",\"form\","
                      "\"chunk_lines\",\"fault\",\"principals\"}")
    known = [k for k, _ in DX_DEFAULTS]
    extra = sorted(set(data) - set(known))
    if extra:
        raise DxError("unknown member %r (known: %s)" % (extra[0], ", ".join(known)))
    cfg = collections.OrderedDict((k, data.get(k, v)) for k, v in DX_DEFAULTS)
    if not isinstance(cfg["bucket"], str) or not _S3_BUCKET_RE.match(cfg["bucket"]):
        raise DxError("bucket must be 3..63 characters of [a-z0-9.-]")
    prefix = cfg["prefix"]
    if not isinstance(prefix, str) or prefix.startswith("/") or \
            len(prefix.encode("utf-8")) > DX_MAX_PREFIX_BYTES or \
            any(ord(c) < 32 for c in prefix):
        raise DxError("prefix must be a string of at most %d bytes, not starting with '/'"
                      % DX_MAX_PREFIX_BYTES)
    cfg["prefix"] = prefix.rstrip("/")
    if not isinstance(cfg["export_name"], str) or \
            not _DX_EXPORT_NAME_RE.match(cfg["export_name"]):
        raise DxError("export_name must be 1..128 characters of [0-9A-Za-z_-]")
    if cfg["form"] not in DX_FORMS:
        raise DxError("form must be one of %s" % ", ".join(DX_FORMS))
    if not _is_int(cfg["chunk_lines"]) or not 1 <= cfg["chunk_lines"] <= DX_MAX_CHUNK_LINES:
        raise DxError("chunk_lines must be an integer 1..%d" % DX_MAX_CHUNK_LINES)
    if cfg["fault"] is not None and cfg["fault"] not in DX_FAULTS:
        raise DxError("fault must be null or one of %s" % ", ".join(DX_FAULTS))
    if not isinstance(cfg["principals"], bool):
        raise DxError("principals must be true or false")
    return cfg


def dx_tag_column(key):
    """The aliased column of a tag key: lower-cased, every character outside [a-z0-9_]
    made '_' (CostCenter -> costcenter, "Cost Center" -> cost_center)."""
    return re.sub(r"[^a-z0-9_]", "_", key.lower())


def dx_tag_columns(rows):
    """[(column, [tag keys])] of the rows' tag keys, in order of first appearance; keys
    that make the same column share it (a line takes the first of them it has)."""
    cols = collections.OrderedDict()
    for r in rows:
        for k in r["tags"]:
            keys = cols.setdefault(dx_tag_column(k), [])
            if k not in keys:
                keys.append(k)
    return list(cols.items())


def dx_resource_tags(tags):
    """The resource_tags map of a line: {"user_<column of the key>": value} (the first
    key wins when two make the same name)."""
    out = collections.OrderedDict()
    for k, v in tags.items():
        out.setdefault("user_" + dx_tag_column(k), v)
    return out


def dx_product_code(service):
    code = DX_PRODUCT_CODES.get(service)
    if code:
        return code
    if is_bedrock_service(service):          # a Marketplace "(Amazon Bedrock Edition)" one
        d = int.from_bytes(hashlib.sha256(service.encode("utf-8")).digest(), "big")
        return "prod-" + _base36(d, 10)
    words = re.findall(r"[A-Za-z0-9]+", service)
    return ("".join(w[:1].upper() + w[1:] for w in words) or "Unknown")[:64]


def dx_billing_entity(code):
    return "AWS Marketplace" if code.startswith("prod-") else "AWS"


def dx_unit_price(usage_type):
    for part, price in DX_UNIT_PRICES:
        if part in usage_type:
            return price
    return DX_DEFAULT_UNIT_PRICE


def dx_num(d):
    """A Decimal as the export writes it: plain notation, no trailing zeros."""
    if not d:
        return "0"
    return format(d.normalize(DX_CTX), "f")


def dx_split(cost):
    """24 hourly parts of a day's cost (Decimal) that sum to it exactly: hour h gets
    round(cost * C[h+1] / C[24]) - round(cost * C[h] / C[24]) (C = DX_HOUR_CUM) in units
    of 1e-10 (or of the cost's own last decimal when it has more), so the last hour takes
    the remainder. A negative cost splits the same way."""
    sign, digits, exp = cost.as_tuple()
    places = max(DX_AMOUNT_PLACES, -exp)
    units = int("".join(map(str, digits)) or "0") * 10 ** (exp + places)
    if sign:
        units = -units
    total = DX_HOUR_CUM[24]
    cum = [(2 * units * DX_HOUR_CUM[h] + total) // (2 * total) for h in range(25)]
    return [Decimal(cum[h + 1] - cum[h]).scaleb(-places, DX_CTX) for h in range(24)]


def dx_principals(account, tags):
    """The IAM principals of a project (account + tags): 1 to 4 roles
    arn:aws:iam::<account>:role/<Application or default>-svc-<i>."""
    h = hashlib.sha256(json.dumps([account, sorted(tags.items())],
                                  ensure_ascii=False).encode("utf-8")).digest()
    n = 1 + h[0] % 4
    app = re.sub(r"[^\w+=,.@-]", "-", tags.get("Application") or "", flags=re.ASCII)[:40]
    return ["arn:aws:iam::%s:role/%s-svc-%d" % (account, app or "default", i + 1)
            for i in range(n)]


def dx_lines(rows, period_start, form, principals):
    """The line items of one billing period: every row of the period (rows: the ledger,
    already cut to Bedrock for form "aliased") as 24 hourly lines, in ledger order."""
    ym = period_start.strftime("%Y-%m")
    out, seen = [], {}
    with decimal.localcontext(DX_CTX):
        for r in rows:
            if r["date"][:7] != ym:
                continue
            account, service, ut = row_account(r), r["service"], r["usage_type"]
            ltype = r.get("record_type") or "Usage"
            usage_like = ltype in DX_USAGE_LINE_TYPES
            bedrock = is_bedrock_service(service)
            tokens = bedrock and "tokens" in ut.lower()
            rate = cw_rate(cw_model_of(service, ut), cw_direction_of(ut)) if tokens else None
            price = None if tokens else dx_unit_price(ut)
            plist = dx_principals(account, r["tags"]) if principals and usage_like else None
            code = dx_product_code(service)
            tags_json = json.dumps(r["tags"], sort_keys=True, ensure_ascii=False)
            ident = "|".join((account, r["date"], service, ut, ltype, tags_json))
            occurrence = seen.get(ident, 0)
            seen[ident] = occurrence + 1
            day = datetime.datetime.combine(datetime.date.fromisoformat(r["date"]),
                                            datetime.time(0))
            for h, part in enumerate(dx_split(r["_cost"])):
                if not usage_like:
                    amount = Decimal(0)
                elif tokens:
                    amount = (part * 1000000 / rate).quantize(DX_USAGE_QUANTUM)
                else:
                    amount = (part / price).quantize(DX_USAGE_QUANTUM)
                out.append({"account": account, "date": r["date"], "hour": h,
                            "start": day + h * DX_ONE_HOUR,
                            "hour_key": "%sT%02d:00:00Z" % (r["date"], h),
                            "service": service, "usage_type": ut,
                            "type": ltype, "cost": part, "amount": amount,
                            "unit": "tokens" if tokens else "Units",
                            "principal": plist[h % len(plist)] if plist else "",
                            "tags": r["tags"], "tags_json": tags_json, "code": code,
                            "region": r["_region"], "bedrock": bedrock,
                            "ident": "%s|%d|%d" % (ident, occurrence, h)})
    return out


def dx_line_fields(line, form, header, tag_cols, period_start, cache):
    """The CSV fields of a line, in header order. cache: a dict kept for one file or
    run (timestamps and map cells repeat)."""
    def ts(t):
        v = cache.get(t)
        if v is None:
            v = cache[t] = t.strftime("%Y-%m-%dT%H:%M:%S.000Z" if form == "map"
                                      else "%Y-%m-%dT%H:%M:%SZ")
        return v
    start = line["start"]
    v = {"bill_billing_period_start_date": ts(period_start),
         "line_item_usage_account_id": line["account"],
         "line_item_usage_start_date": ts(start),
         "line_item_usage_end_date": ts(start + DX_ONE_HOUR),
         "line_item_product_code": line["code"],
         "product_product_name": line["service"],
         "bill_billing_entity": dx_billing_entity(line["code"]),
         "line_item_usage_type": line["usage_type"],
         "line_item_line_item_type": line["type"],
         "line_item_usage_amount": dx_num(line["amount"]),
         "pricing_unit": line["unit"],
         "line_item_unblended_cost": dx_num(line["cost"]),
         "line_item_iam_principal": line["principal"]}
    if form == "map":
        v["identity_line_item_id"] = hashlib.sha256(line["ident"].encode("utf-8")) \
            .hexdigest()[:52]
        v["bill_payer_account_id"] = ACCOUNT_ID
        v["line_item_currency_code"] = "USD"
        k = ("product", line["service"], line["region"])
        if k not in cache:
            cache[k] = json.dumps({"product_name": line["service"], "region": line["region"]},
                                  ensure_ascii=False, separators=(",", ":"))
        v["product"] = cache[k]
        k = ("resource_tags", line["tags_json"])
        if k not in cache:
            cache[k] = json.dumps(dx_resource_tags(line["tags"]), ensure_ascii=False,
                                  separators=(",", ":"))
        v["resource_tags"] = cache[k]
    for col, keys in tag_cols:
        v[col] = next((line["tags"][k] for k in keys if k in line["tags"]), "")
    return [v[c] for c in header]


def _dx_csv_cell(s):
    return '"%s"' % s.replace('"', '""') if any(c in s for c in ',"\r\n') else s


def dx_csv(header, rows, raw=None):
    """CSV bytes (UTF-8, LF line ends, quoted by the csv module as RFC 4180 wants; a row
    with a CR in a field is written with every field quoted, since the csv module quotes
    CR only when it is part of the line terminator). raw: {row index: the line's text,
    written as is} (faults)."""
    buf = io.StringIO()
    plain = csv.writer(buf, lineterminator="\n")
    quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def put(fields):
        (quoted if any("\r" in f for f in fields) else plain).writerow(fields)
    put(header)
    for i, fields in enumerate(rows):
        if raw and i in raw:
            buf.write(raw[i])
        else:
            put(fields)
    return buf.getvalue().encode("utf-8")


def dx_gzip(data):
    """Deterministic gzip (mtime 0, no name): the same bytes give the same object."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def dx_sums(lines, bedrock_only):
    """Direct Decimal sums over lines (strings in the answer)."""
    total = Decimal(0)
    n = 0
    by_at, by_type, by_prin, by_ut, by_hour = {}, {}, {}, {}, {}
    with decimal.localcontext(DX_CTX):
        for ln in lines:
            if bedrock_only and not ln["bedrock"]:
                continue
            c = ln["cost"]
            n += 1
            total += c
            a, tj = ln["account"], ln["tags_json"]
            by_at[(a, tj)] = by_at.get((a, tj), 0) + c
            by_type[ln["type"]] = by_type.get(ln["type"], 0) + c
            k = (a, tj, ln["principal"])
            by_prin[k] = by_prin.get(k, 0) + c
            k = (a, ln["service"], ln["usage_type"])
            cu = by_ut.get(k, (0, 0))
            by_ut[k] = (cu[0] + c, cu[1] + ln["amount"])
            hk = ln["hour_key"]
            hours = by_hour.setdefault(a, {})
            hours[hk] = hours.get(hk, 0) + c
    return collections.OrderedDict([
        ("lines", n), ("total", dx_num(total)),
        ("by_account_tags", [{"account": a, "tags": json.loads(tj), "cost": dx_num(v)}
                             for (a, tj), v in sorted(by_at.items())]),
        ("by_line_item_type", {t: dx_num(v) for t, v in sorted(by_type.items())}),
        ("by_principal", [{"account": a, "tags": json.loads(tj), "principal": p,
                           "cost": dx_num(v)} for (a, tj, p), v in sorted(by_prin.items())]),
        ("by_usage_type", [{"account": a, "service": s, "usage_type": u, "cost": dx_num(v[0]),
                            "usage": dx_num(v[1])} for (a, s, u), v in sorted(by_ut.items())]),
        ("by_hour", {a: {h: dx_num(v) for h, v in sorted(hs.items())}
                     for a, hs in sorted(by_hour.items())}),
    ])


def dx_parquet_bytes(seed):
    """A stand-in for a Parquet file: "PAR1", some bytes, "PAR1" (not gzip, not CSV)."""
    body = b"".join(hashlib.sha256(seed + b"%d" % i).digest() for i in range(8))
    return b"PAR1" + body + b"PAR1"


class DataExport:
    """The configured export (PUT /_fake/data_exports) and what its runs wrote."""

    def __init__(self, cfg):
        self.cfg = cfg
        place = "%s/%s/%s" % (cfg["bucket"], cfg["prefix"], cfg["export_name"])
        self.export_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "fake_aws-data-export:" + place))
        self.arn = "arn:aws:bcm-data-exports:us-east-1:%s:export/%s-%s" % (
            ACCOUNT_ID, cfg["export_name"], self.export_id)
        self.runs = 0
        self.columns = []
        self.periods = collections.OrderedDict()   # "YYYY-MM" -> what GET shows
        self.sums = {}                             # "YYYY-MM" -> {bedrock_only: sums}

    def same_place(self, cfg):
        return all(self.cfg[k] == cfg[k] for k in ("bucket", "prefix", "export_name"))

    @property
    def base(self):
        p = self.cfg["prefix"]
        return "%s/%s" % (p, self.cfg["export_name"]) if p else self.cfg["export_name"]

    def data_prefix(self, period):
        return "%s/data/BILLING_PERIOD=%s/" % (self.base, period)

    def metadata_prefix(self, period):
        return "%s/metadata/BILLING_PERIOD=%s/" % (self.base, period)

    def to_json(self):
        return collections.OrderedDict([
            ("enabled", True), ("config", dict(self.cfg)), ("export_arn", self.arn),
            ("runs", self.runs),
            ("columns", [{"name": n, "type": t} for n, t in self.columns]),
            ("data_prefix", "%s/data/" % self.base),
            ("metadata_prefix", "%s/metadata/" % self.base),
            ("periods", copy.deepcopy(self.periods))])


def dx_run(app, export):
    """Runs the export once from the current ledger: the previous and the current
    billing period of the fake's today, each its data files, then its manifest (overwrite
    mode). Caller holds app.dx_lock, not app.lock."""
    cfg = export.cfg
    with app.lock:
        ledger, today = app.ledger, app.today()
    form, name, bucket = cfg["form"], cfg["export_name"], cfg["bucket"]
    rows = [r for r in ledger if form == "map" or is_bedrock_service(r["service"])]
    tag_cols = dx_tag_columns(rows) if form == "aliased" else []
    columns = list(DX_ALIASED_COLUMNS) + [(c, "string") for c, _ in tag_cols] \
        if form == "aliased" else list(DX_MAP_COLUMNS)
    header = [c for c, _ in columns]
    empty_chunk = dx_gzip(dx_csv(header, []))
    current = today.replace(day=1)
    export.runs += 1
    export.columns = columns
    for start in (first_of_previous_month(today), current):
        period = start.strftime("%Y-%m")
        lines = dx_lines(rows, start, form, cfg["principals"])
        cache = {}
        fields = [dx_line_fields(ln, form, header, tag_cols, start, cache) for ln in lines]
        fault = cfg["fault"] if start == current else None
        n = cfg["chunk_lines"]
        chunks = [(lines[i:i + n], fields[i:i + n]) for i in range(0, len(lines), n)] or \
            [([], [])]
        dprefix = export.data_prefix(period)
        ext = "snappy.parquet" if fault == "parquet" else "csv.gz"
        fault_info = None
        if fault is not None:
            fault_info = collections.OrderedDict([("kind", fault), ("applied", True)])
        files = []
        for i, (clines, cfields) in enumerate(chunks):
            key = "%s%s-%05d.%s" % (dprefix, name, i + 1, ext)
            raw = None
            if i == 0 and fault in ("bad_columns", "huge_field", "hostile_quotes"):
                j = min(DX_FAULT_LINE, len(cfields)) - 1
                if j < 0:
                    fault_info["applied"] = False
                    fault_info["why"] = "the first data file has no line"
                else:
                    cfields = list(cfields)
                    row = list(cfields[j])
                    pi = header.index("line_item_iam_principal")
                    if fault == "bad_columns":
                        cfields[j] = row[:-1]
                    elif fault == "huge_field":
                        head = "arn:aws:iam::%s:role/" % clines[j]["account"]
                        row[pi] = head + "x" * (DX_HUGE_FIELD_BYTES - len(head))
                        cfields[j] = row
                    else:
                        raw = {j: ",".join(DX_HOSTILE_VALUE if k == pi else _dx_csv_cell(f)
                                           for k, f in enumerate(row)) + "\n"}
                    fault_info.update([("key", key), ("line", j + 1)])
            csv_bytes = dx_csv(header, cfields, raw)
            if ext == "csv.gz":
                body = dx_gzip(csv_bytes)
                ctype = "application/x-gzip"
            else:
                body = dx_parquet_bytes(csv_bytes)
                ctype = S3_DEFAULT_CONTENT_TYPE
            if i == 0 and fault == "truncated_gzip":
                body = body[:len(body) // 2]
                fault_info["key"] = key
            files.append({"key": key, "uri": "s3://%s/%s" % (bucket, key), "body": body,
                          "ctype": ctype, "lines": len(clines), "bytes": len(body)})
        manifest_uris = [f["uri"] for f in files]
        missing_key = None
        if fault == "missing_chunk":
            missing_key = "%s%s-%05d.csv.gz" % (dprefix, name, len(files) + 1)
            manifest_uris.append("s3://%s/%s" % (bucket, missing_key))
            fault_info["key"] = missing_key
        elif fault == "parquet":
            fault_info["keys"] = [f["key"] for f in files]
        execution_id = str(uuid.uuid4())
        manifest = collections.OrderedDict([
            ("executionId", execution_id), ("exportArn", export.arn), ("exportName", name),
            ("billingPeriod", period), ("bucket", bucket),
            ("columns", [{"name": c, "type": t} for c, t in columns]),
            ("dataFiles", manifest_uris), ("additionalOutputFiles", [])])
        manifest_body = json.dumps(manifest, indent=2).encode("utf-8") + b"\n"
        manifest_key = "%s%s-Manifest.json" % (export.metadata_prefix(period), name)
        own = re.compile(re.escape(dprefix + name) + r"-(\d{5})\.(csv\.gz|snappy\.parquet)$")
        new_keys = {f["key"] for f in files}
        emptied, deleted = [], []
        now = int(time.time())
        with app.lock:
            # the extra chunks of an earlier run: a .csv.gz gets a header-only file (as
            # AWS overwrites it), other leftovers (.snappy.parquet) go; the missing chunk
            # really is missing
            for bk in sorted(app.s3_objects):
                if bk[0] != bucket or bk[1] in new_keys:
                    continue
                m = own.match(bk[1])
                if not m:
                    continue
                if m.group(2) == "csv.gz" and bk[1] != missing_key:
                    obj = S3Object(empty_chunk, s3_etag(empty_chunk), now, "application/x-gzip")
                    app.s3_objects[bk] = obj
                    emptied.append({"key": bk[1], "etag": obj.etag})
                else:
                    del app.s3_objects[bk]
                    deleted.append(bk[1])
            for f in files:
                f["etag"] = s3_etag(f["body"])
                app.s3_objects[(bucket, f["key"])] = S3Object(f["body"], f["etag"], now,
                                                              f["ctype"])
            mobj = S3Object(manifest_body, s3_etag(manifest_body), now, "application/json")
            app.s3_objects[(bucket, manifest_key)] = mobj     # after the data files
            export.periods[period] = collections.OrderedDict([
                ("billing_period", period), ("run", export.runs),
                ("execution_id", execution_id), ("manifest_key", manifest_key),
                ("manifest_uri", "s3://%s/%s" % (bucket, manifest_key)),
                ("manifest_etag", mobj.etag), ("lines", len(lines)),
                ("bedrock_lines", sum(1 for ln in lines if ln["bedrock"])),
                ("data_files", [collections.OrderedDict(
                    (k, f[k]) for k in ("key", "uri", "etag", "lines", "bytes"))
                    for f in files]),
                ("manifest_data_files", manifest_uris),
                ("emptied_files", emptied), ("deleted_files", deleted),
                ("fault", fault_info)])
            export.periods.move_to_end(period)
        export.sums[period] = {False: dx_sums(lines, False), True: dx_sums(lines, True)}
    return export.to_json()


def dx_delete_objects(app, export):
    """Removes every object under the export's data/ and metadata/ prefixes. Caller holds
    app.lock."""
    heads = ("%s/data/" % export.base, "%s/metadata/" % export.base)
    gone = [bk for bk in app.s3_objects
            if bk[0] == export.cfg["bucket"] and bk[1].startswith(heads)]
    for bk in gone:
        del app.s3_objects[bk]
    return len(gone)


# Surfaces served by the fake, each a Surface subclass; the dispatch table maps
# their path prefixes to them (longest prefix wins).
# --------------------------------------------------------------------------
# AWS Organizations (awsJson1.1, X-Amz-Target AWSOrganizationsV20161128.*): ListAccounts
# --------------------------------------------------------------------------

ORG_TARGET_PREFIX = "AWSOrganizationsV20161128."
ORG_OPERATIONS = ("ListAccounts",)
ORG_MAX_RESULTS = 20
ORG_ACCESS_DENIED_MESSAGE = "You don't have permissions to access this resource."


def org_error_response(status, name, message, coral=False, headers=(), reason=None):
    """An Organizations error: {"__type": Name, "Message"} (InvalidInputException adds
    its "Reason"), or the Coral form {"__type": "com.amazon.coral.service#Name",
    "message"} of the auth and protocol errors, as ce answers them."""
    if coral:
        body = {"__type": CORAL_ERROR_NS + name, "message": message}
    else:
        body = collections.OrderedDict([("__type", name), ("Message", message)])
        if name == "InvalidInputException":
            body["Reason"] = reason or "INVALID_INPUT"
    r = Response.json_obj(status, body,
                          headers=[("x-amzn-RequestId", str(uuid.uuid4())),
                                   ("x-amzn-ErrorType", name)] + list(headers))
    r.content_type = AMZ_JSON_11
    return r


class OrganizationsSurface(JsonProtocolSurface):
    """AWS Organizations ListAccounts of the fake's organization (Organization). Only
    credentials bound to the management account may call it; a member's get 403
    AccessDeniedException."""

    name = "organizations"
    prefixes = ("/organizations",)
    operations = ORG_OPERATIONS
    content_type = AMZ_JSON_11
    fault_kinds = ("throttle", "server_error", "slow", "hang", "truncated", "malformed",
                   "wrong_types", "auth", "huge", "loop", "expired_token", "access_denied",
                   "not_in_use", "invalid_token")
    wrong_types_fields = ("timestamp", "accounts", "id")
    title = "Organizations"
    served_at = "/organizations/"
    target_prefix = ORG_TARGET_PREFIX
    request_content_types = (AMZ_JSON_11,)
    sigv4_service = "organizations"
    model_service = "organizations"
    model_error = "InvalidInputException"
    throttle_error = "TooManyRequestsException"
    unavailable_error = "ServiceException"
    internal_error = "ServiceException"
    error = staticmethod(org_error_response)

    def path_region(self, path):
        return "us-east-1" if path in ("/organizations", "/organizations/") else None

    def answer(self, ctx, body):
        account = getattr(ctx, "account", None) or ACCOUNT_ID
        if account != ACCOUNT_ID:
            return org_error_response(403, "AccessDeniedException", ORG_ACCESS_DENIED_MESSAGE,
                                      headers=[("X-Fake-Auth-Error", "ListAccounts needs the "
                                                "management account's credentials, not "
                                                "member %s's" % account)])
        max_results = body.get("MaxResults", ORG_MAX_RESULTS)
        if not _is_int(max_results) or not 1 <= max_results <= ORG_MAX_RESULTS:
            return org_error_response(
                400, "InvalidInputException", "MaxResults must be between 1 and %d"
                % ORG_MAX_RESULTS, reason=("MIN_VALUE_EXCEEDED" if _is_int(max_results) and
                                           max_results < 1 else "MAX_VALUE_EXCEEDED"))
        token = body.get("NextToken")
        if token == "":
            token = None
        with self.app.lock:
            accounts = self.app.org.list_accounts()
        req_hash = request_hash("ListAccounts", body, "NextToken")
        try:
            offset = read_page_token(token, req_hash, len(accounts)) if token is not None \
                else 0
        except CeError:
            return org_error_response(400, "InvalidInputException",
                                      "The provided NextToken is not valid.",
                                      reason="INVALID_NEXT_TOKEN")
        out = collections.OrderedDict([("Accounts", accounts[offset:offset + max_results])])
        if offset + max_results < len(accounts):
            out["NextToken"] = make_page_token(offset + max_results, req_hash)
        elif ctx.fault is not None and ctx.fault.kind == "loop":
            out["NextToken"] = make_page_token(0, req_hash)
        return self.ok(out)

    # -- fault dialect --------------------------------------------------------
    def fault_response(self, ctx, fault):
        k = fault.kind
        if k == "access_denied":
            return org_error_response(403, "AccessDeniedException", ORG_ACCESS_DENIED_MESSAGE)
        if k == "not_in_use":
            return org_error_response(400, "AWSOrganizationsNotInUseException",
                                      "Your account is not a member of an organization.")
        if k == "invalid_token":
            return org_error_response(400, "InvalidInputException",
                                      "The provided NextToken is not valid.",
                                      reason="INVALID_NEXT_TOKEN")
        return super().fault_response(ctx, fault)

    def malformed_body(self, ctx, fault):
        return b'{"Accounts":[{"Id":"'

    def wrong_types(self, ctx, obj, field):
        obj = copy.deepcopy(obj)
        field = field or "timestamp"
        if not isinstance(obj, dict) or not isinstance(obj.get("Accounts"), list):
            return obj
        if field == "timestamp":
            for a in obj["Accounts"]:
                if _is_number(a.get("JoinedTimestamp")):
                    a["JoinedTimestamp"] = iso8601(a["JoinedTimestamp"])
        elif field == "id":
            for a in obj["Accounts"]:
                if isinstance(a.get("Id"), str) and a["Id"].isdigit():
                    a["Id"] = int(a["Id"])
        elif field == "accounts":
            obj["Accounts"] = {a.get("Id"): a for a in obj["Accounts"]}
        return obj

    def huge_parts(self, ctx):
        def item(i):
            aid = "%012d" % (900000000000 + i % 100000000000)
            return ('{"Id":"%s","Arn":"arn:aws:organizations::%s:account/%s/%s","Email":'
                    '"aws+huge-%d@%s","Name":"huge-%d","Status":"ACTIVE","JoinedMethod":'
                    '"CREATED","JoinedTimestamp":%s}'
                    % (aid, ACCOUNT_ID, ORG_ID, aid, i, ORG_EMAIL_DOMAIN, i,
                       ORG_MEMBER_JOINED)).encode()
        return b'{"Accounts":[', item, b']}'


SURFACE_CLASSES = [ProjectsSurface, CostExplorerSurface, StsSurface, ImdsSurface,
                   ContainerSurface, CloudWatchSurface, S3Surface, OrganizationsSurface]


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
            account = ctx.param("account") or ACCOUNT_ID
            if account != ACCOUNT_ID:
                with app.lock:
                    known = app.org.member(account) is not None
                if not known:
                    return self.err(404, "account %r is neither the management account (%s) "
                                    "nor a member of the organization" % (account, ACCOUNT_ID))
            if method == "GET":
                return Response.json_obj(200, app.get_projects(region, account), indent=2)
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
                    items.append(self.complete_project(region, p, idx, account))
                with app.lock:
                    if account == ACCOUNT_ID:
                        app.projects[region] = items
                    else:
                        app.member_projects.setdefault(account, {})[region] = items
                    app.projects_version += 1
                out = {"region": region, "count": len(items)}
                if account != ACCOUNT_ID:
                    out["account"] = account
                return Response.json_obj(200, out)
            return self.err(405, "method not allowed")
        if path == "/_fake/reset":
            return self.only(method, "POST") or self.reset()
        if path == "/_fake/organization":
            if method == "PUT":
                data = self.body_json(ctx)
                if isinstance(data, Response):
                    return data
                try:
                    org = Organization.from_json(data, app.config.organization())
                except OrgError as exc:
                    return self.err(400, str(exc))
                app.set_organization(org)
            elif method != "GET":
                return self.err(405, "method not allowed")
            with app.lock:
                out = app.org.to_json()
                out["ledger_version"] = app.ledger_version
            return Response.json_obj(200, out, indent=2)
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
        if path == "/_fake/ledger":
            return self.ledger(ctx)
        if path == "/_fake/ledger/rows":
            if method != "POST":
                return self.err(405, "method not allowed")
            data = self.body_json(ctx)
            if isinstance(data, Response):
                return data
            try:
                rows = rows_from_json(data)
            except LedgerError as exc:
                return self.err(400, str(exc))
            with app.lock:
                app.ledger = app.ledger + rows
                app.ledger_version += 1
                count, version = len(app.ledger), app.ledger_version
            return Response.json_obj(200, {"added": len(rows), "count": count,
                                           "version": version})
        if path == "/_fake/allocation_tags":
            if method == "GET":
                with app.lock:
                    tags = list(app.allocation_tags.values())
                return Response.json_obj(200, {"CostAllocationTags": tags}, indent=2)
            if method == "PUT":
                data = self.body_json(ctx)
                if isinstance(data, Response):
                    return data
                try:
                    table = allocation_tags_from_json(data)
                except LedgerError as exc:
                    return self.err(400, str(exc))
                with app.lock:
                    app.allocation_tags = table
                return Response.json_obj(200, {"CostAllocationTags": list(table.values())})
            return self.err(405, "method not allowed")
        if path.startswith("/_fake/cloudwatch/"):
            return self.cloudwatch(ctx)
        if path.startswith("/_fake/s3/"):
            return self.s3(ctx)
        if path == "/_fake/data_exports" or path.startswith("/_fake/data_exports/"):
            return self.data_exports(ctx)
        if path == "/_fake/credentials":
            if method != "GET":
                return self.err(405, "method not allowed")
            now = time.time()
            with app.lock:
                out = [{"access_key_id": akid, "source": m["source"],
                        "issued": round(m["issued"], 3), "expiration": m["expiration"],
                        "expired": now >= m["expiration"],
                        "account": m.get("account", ACCOUNT_ID)}
                       for akid, m in app.credential_meta.items()]
            return Response.json_obj(200, {"credentials": out}, indent=2)
        if path == "/_fake/credentials/expire":
            if method != "POST":
                return self.err(405, "method not allowed")
            return Response.json_obj(200, {"expired": app.expire_credentials()})
        if path == "/_fake/config":
            if method == "PUT":
                err = self.put_config(ctx)
                if err is not None:
                    return err
            elif method != "GET":
                return self.err(405, "method not allowed")
            cfg = app.config
            return Response.json_obj(200, {
                "today": app.today().isoformat(), "today_fixed": cfg.today is not None,
                "estimated_days": cfg.estimated_days, "ce_page_size": cfg.ce_page_size,
                "ce_strict_match_options": cfg.ce_strict_match_options,
                "credential_lifetime": cfg.credential_lifetime,
                "sts_external_id_required": cfg.sts_external_id is not None,
                "container_auth_token_required": cfg.container_auth_token is not None,
                "imds_role": cfg.imds_role, "model_validation": cfg.model_validation,
                "management_account": ACCOUNT_ID,
                "organization_members": len(app.org.accounts),
                "s3_list_page_size": app.s3_list_page_size,
                "cloudwatch_now": round(app.cw_now(), 3),
                "surfaces": {name: list(sf.prefixes) for name, sf in app.surfaces.items()}},
                indent=2)
        return self.err(404, "unknown control path %s" % path)

    def put_config(self, ctx):
        """PUT /_fake/config {"today": "YYYY-MM-DD"}: moves the fake's "today" (Estimated,
        forecasts, LastUsedDate), e.g. for a run on a simulated clock; null follows the real
        UTC date again. The ledger and every other setting stay. {"s3_list_page_size": N}
        (1..1000) sets the ListObjectsV2 page size (as --s3-list-page-size; /_fake/reset
        restores the command line's). Either or both. Returns None, or the error."""
        data = self.body_json(ctx)
        if isinstance(data, Response):
            return data
        if not isinstance(data, dict) or not data or \
                set(data) - {"today", "s3_list_page_size"}:
            return self.err(400, 'expected {"today": "YYYY-MM-DD" (or null), '
                            '"s3_list_page_size": N} (either or both)')
        today = page = None
        if "today" in data:
            val = data["today"]
            if val is not None:
                try:
                    if not isinstance(val, str) or not _DATE_RE.match(val):
                        raise ValueError(val)
                    today = datetime.date.fromisoformat(val)
                except ValueError:
                    return self.err(400, "today must be YYYY-MM-DD or null")
        if "s3_list_page_size" in data:
            page = data["s3_list_page_size"]
            if not _is_int(page) or not 1 <= page <= S3_LIST_MAX_KEYS:
                return self.err(400, "s3_list_page_size must be an integer 1..%d"
                                % S3_LIST_MAX_KEYS)
        with self.app.lock:
            if "today" in data:
                self.app.config.today = today
            if page is not None:
                self.app.s3_list_page_size = page
        return None

    def cloudwatch(self, ctx):
        """/_fake/cloudwatch/{spike,spend,rates}."""
        app, path, method = self.app, ctx.path, ctx.method
        if path == "/_fake/cloudwatch/rates":
            return self.only(method, "GET") or Response.json_obj(200, cw_rates_json(),
                                                                 indent=2)
        if path == "/_fake/cloudwatch/spike":
            if method == "GET":
                with app.lock:
                    out = [public_row(s) for s in app.cw_spikes]
                return Response.json_obj(200, {"spikes": out}, indent=2)
            if method == "DELETE":
                with app.lock:
                    n, app.cw_spikes = len(app.cw_spikes), []
                return Response.json_obj(200, {"cleared": n})
            if method != "POST":
                return self.err(405, "method not allowed")
            data = self.body_json(ctx)
            if isinstance(data, Response):
                return data
            if not isinstance(data, dict) or \
                    set(data) - {"region", "project", "factor", "since"}:
                return self.err(400, 'expected {"region","project","factor"[,"since"]}')
            region = data.get("region", "us-east-1")
            project = data.get("project")
            factor = data.get("factor")
            since = data.get("since", app.cw_now())
            if not isinstance(region, str) or not re.fullmatch(r"[a-z]{2}(?:-[a-z]+)+-\d+",
                                                               region):
                return self.err(400, "region must be a region name")
            if not isinstance(project, str) or not project:
                return self.err(400, "project must be a project id or name")
            if not _is_number(factor) or factor < 0 or not math.isfinite(factor):
                return self.err(400, "factor must be a number >= 0")
            if not _is_number(since) or not math.isfinite(since):
                return self.err(400, "since must be epoch seconds")
            pid = project
            for p in app.get_projects(region):
                if p.get("id") == project:
                    break
            else:
                for p in app.get_projects(region):
                    if p.get("name") == project:
                        pid = p.get("id")
                        break
            fdec = Decimal(str(factor))
            with app.lock:
                spike = {"id": app.cw_next_spike, "region": region, "project": pid,
                         "factor": factor, "since": since,
                         "_factor": int(fdec) if fdec == fdec.to_integral_value() else fdec}
                app.cw_next_spike += 1
                app.cw_spikes.append(spike)
            return Response.json_obj(201, public_row(spike))
        if path == "/_fake/cloudwatch/spend":
            if method != "GET":
                return self.err(405, "method not allowed")
            region, date_s, until_s = ctx.param("region"), ctx.param("date"), ctx.param("until")
            if not region:
                return self.err(400, "region is required")
            try:
                if not date_s or not _DATE_RE.match(date_s):
                    raise ValueError(date_s)
                date = datetime.date.fromisoformat(date_s)
            except ValueError:
                return self.err(400, "date must be YYYY-MM-DD")
            view = app.cw_view()
            until = view.now
            if until_s is not None:
                try:
                    until = float(until_s)
                    if not math.isfinite(until):
                        raise ValueError(until_s)
                except ValueError:
                    return self.err(400, "until must be epoch seconds")
            return Response.json_obj(200, cw_spend(view, region, date, until), indent=2)
        return self.err(404, "unknown control path %s" % path)

    def s3(self, ctx):
        """/_fake/s3/object?bucket=B&key=K (GET, PUT, DELETE) and /_fake/s3/objects:
        another writer's view of the S3 surface's objects. Not counted, not logged,
        no faults; a PUT stores the body as a PutObject would (ETag = md5 of the body)."""
        app, path, method = self.app, ctx.path, ctx.method
        if path == "/_fake/s3/objects":
            if method != "GET":
                return self.err(405, "method not allowed")
            bucket = ctx.param("bucket")
            with app.lock:
                items = sorted(app.s3_objects.items())
            out = [{"bucket": b, "key": k, "etag": o.etag, "size": len(o.body),
                    "last_modified": http_date(o.last_modified),
                    "content_type": o.content_type}
                   for (b, k), o in items if bucket is None or b == bucket]
            return Response.json_obj(200, {"objects": out}, indent=2)
        if path != "/_fake/s3/object":
            return self.err(404, "unknown control path %s" % path)
        bucket, key = ctx.param("bucket"), ctx.param("key")
        if bucket is None or not _S3_BUCKET_RE.match(bucket):
            return self.err(400, "bucket must be 3..63 characters of [a-z0-9.-]")
        if not key or len(key.encode("utf-8")) > S3_MAX_KEY_BYTES:
            return self.err(400, "key must be 1..%d bytes (URL-encode it in the query: "
                            "'+' is a space there)" % S3_MAX_KEY_BYTES)
        bk = (bucket, key)
        if method == "GET":
            with app.lock:
                obj = app.s3_objects.get(bk)
            if obj is None:
                return self.err(404, "no object s3://%s/%s" % bk)
            return Response(200, obj.body, content_type=obj.content_type,
                            headers=[("ETag", obj.etag),
                                     ("Last-Modified", http_date(obj.last_modified))])
        if method == "PUT":
            obj = S3Object(ctx.body, s3_etag(ctx.body), int(time.time()),
                           ctx.header("Content-Type") or S3_DEFAULT_CONTENT_TYPE)
            with app.lock:
                app.s3_objects[bk] = obj
            return Response.json_obj(200, {"etag": obj.etag}, headers=[("ETag", obj.etag)])
        if method == "DELETE":
            with app.lock:
                gone = app.s3_objects.pop(bk, None)
            return Response.json_obj(200, {"deleted": gone is not None})
        return self.err(405, "method not allowed")

    def data_exports(self, ctx):
        """/_fake/data_exports (GET, PUT, DELETE), /_fake/data_exports/run (POST) and
        /_fake/data_exports/sums?period=YYYY-MM[&bedrock_only=1] (GET): the AWS Data
        Exports (CUR 2.0) export the fake writes into its S3 from the ledger."""
        app, path, method = self.app, ctx.path, ctx.method
        if path == "/_fake/data_exports":
            if method == "GET":
                with app.lock:
                    ex = app.data_export
                    doc = ex.to_json() if ex is not None else \
                        {"enabled": False, "config": None, "periods": {}}
                return Response.json_obj(200, doc, indent=2)
            if method == "PUT":
                data = self.body_json(ctx)
                if isinstance(data, Response):
                    return data
                try:
                    cfg = dx_config_from_json(data)
                except DxError as exc:
                    return self.err(400, str(exc))
                with app.dx_lock:
                    with app.lock:
                        ex = app.data_export
                        if ex is not None and ex.same_place(cfg):
                            ex.cfg = cfg
                        else:                 # a new place: the old one's objects stay
                            ex = app.data_export = DataExport(cfg)
                    doc = dx_run(app, ex)
                return Response.json_obj(200, doc, indent=2)
            if method == "DELETE":
                with app.dx_lock, app.lock:
                    ex = app.data_export
                    n = dx_delete_objects(app, ex) if ex is not None else 0
                    app.data_export = None
                return Response.json_obj(200, {"enabled": False, "deleted_objects": n})
            return self.err(405, "method not allowed")
        if path == "/_fake/data_exports/run":
            if method != "POST":
                return self.err(405, "method not allowed")
            with app.dx_lock:
                with app.lock:
                    ex = app.data_export
                if ex is None:
                    return self.err(409, "no export is configured (PUT /_fake/data_exports)")
                doc = dx_run(app, ex)
            return Response.json_obj(200, doc, indent=2)
        if path == "/_fake/data_exports/sums":
            if method != "GET":
                return self.err(405, "method not allowed")
            period = ctx.param("period")
            if period is None or not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period):
                return self.err(400, "period must be YYYY-MM")
            flag = ctx.param("bedrock_only") or "0"
            if flag not in ("0", "1", "true", "false"):
                return self.err(400, "bedrock_only must be 0, 1, true or false")
            bedrock_only = flag in ("1", "true")
            with app.lock:
                ex = app.data_export
                if ex is None:
                    return self.err(409, "no export is configured (PUT /_fake/data_exports)")
                sums, info = ex.sums.get(period), ex.periods.get(period)
                form = ex.cfg["form"]
            if sums is None:
                return self.err(404, "the export has not written billing period %s" % period)
            out = collections.OrderedDict([
                ("period", period), ("bedrock_only", bedrock_only), ("form", form),
                ("execution_id", info["execution_id"])])
            out.update(sums[bedrock_only])
            return Response.json_obj(200, out, indent=2)
        return self.err(404, "unknown control path %s" % path)

    def ledger(self, ctx):
        app = self.app
        if ctx.method == "GET":
            start, end = ctx.param("start"), ctx.param("end")
            account = ctx.param("account")
            for name, val in (("start", start), ("end", end)):
                if val is not None and not _DATE_RE.match(val):
                    return self.err(400, "%s must be YYYY-MM-DD" % name)
            if account is not None and not _ACCOUNT_ID_RE.match(account):
                return self.err(400, "account must be 12 digits")
            with app.lock:
                rows, version = app.ledger, app.ledger_version
            out = [ledger_public_row(r) for r in rows
                   if (start is None or r["date"] >= start) and (end is None or r["date"] < end)
                   and (account is None or row_account(r) == account)]
            return Response.json_obj(200, {"today": app.today().isoformat(),
                                           "version": version, "count": len(out),
                                           "accounts": sorted({r["linked_account"]
                                                               for r in out}),
                                           "rows": out})
        if ctx.method == "PUT":
            data = self.body_json(ctx)
            if isinstance(data, Response):
                return data
            try:
                rows = rows_from_json(data)
            except LedgerError as exc:
                return self.err(400, str(exc))
            with app.lock:
                app.ledger = rows
                app.ledger_version += 1
                version = app.ledger_version
            return Response.json_obj(200, {"count": len(rows), "version": version})
        return self.err(405, "method not allowed")

    def reset(self):
        with self.app.dx_lock, self.app.lock:
            self.app.reset_all()
        return Response.json_obj(200, {"ok": True})

    @staticmethod
    def complete_project(region, p, idx, account=ACCOUNT_ID):
        """Fill in missing fields of a PUT project; present fields are kept as given.
        A member's project gets the id of "<account>/<name>" and its account's arn."""
        out = dict(p)
        name = out.get("name", "project-%d" % idx)
        out.setdefault("name", name)
        out.setdefault("id", project_id_for(region, str(name)) if account == ACCOUNT_ID
                       else project_id_for(region, "%s/%s" % (account, name)))
        out.setdefault("object", "organization.project")
        out.setdefault("arn", project_arn(region, out["id"], account))
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
                 synthetic=0, quiet=False, today=None, estimated_days=3, ce_page_size=50,
                 ce_strict_match_options=False, ledger_file=None,
                 credential_lifetime=3600, sts_external_id=None,
                 web_identity_token=DEFAULT_WEB_IDENTITY_TOKEN,
                 container_auth_token=DEFAULT_CONTAINER_AUTH_TOKEN,
                 imds_role=DEFAULT_IMDS_ROLE, model_validation=True,
                 org_accounts=0, org_regions=DEFAULT_ORG_REGIONS,
                 org_projects=DEFAULT_ORG_PROJECTS, org_role_name=DEFAULT_ORG_ROLE_NAME,
                 org_external_id=None, s3_list_page_size=S3_LIST_MAX_KEYS):
        self.api_key = api_key
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token or None
        self.synthetic = synthetic
        self.quiet = quiet
        self.today = today                      # datetime.date, or None = real UTC date
        self.estimated_days = estimated_days
        self.ce_page_size = ce_page_size
        self.ce_strict_match_options = ce_strict_match_options
        self.ledger_file = ledger_file
        self.credential_lifetime = credential_lifetime
        self.sts_external_id = sts_external_id or None
        self.web_identity_token = web_identity_token
        self.container_auth_token = container_auth_token or None
        self.imds_role = imds_role
        self.model_validation = model_validation    # check ce/cloudwatch bodies (botocore)
        self.org_accounts = org_accounts            # members of the organization (0: none)
        self.org_regions = list(org_regions)
        self.org_projects = org_projects
        self.org_role_name = org_role_name
        self.org_external_id = org_external_id or None
        self.s3_list_page_size = s3_list_page_size  # ListObjectsV2 keys per page (at most)

    def organization(self):
        """The command-line organization (what /_fake/reset restores)."""
        return Organization.generated(self.org_accounts, role_name=self.org_role_name,
                                      external_id=self.org_external_id,
                                      regions=self.org_regions,
                                      projects_per_region=self.org_projects)


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
        # Credentials accepted for SigV4: {akid: (secret, token)}. The STS, IMDS
        # and container surfaces add temporary credentials through
        # issue_credentials(); their expiry is in self.credential_meta.
        self.credentials = {}
        self.credential_meta = {}            # akid -> {"source", "issued", "expiration"}
        self.cached_credentials = {}         # "imds"/"container" -> akid currently served
        self.imds_tokens = {}                # IMDSv2 session token -> expiry (epoch)
        self.faults = FaultRegistry()
        self.projects_version = 0
        self.cw_cache = None                 # (ledger, projects, projects_version, CwIndex)
        self.cw_build_lock = threading.Lock()
        self.dx_lock = threading.Lock()      # one Data Exports run at a time
        self.seed_ledger = None
        if self.config.ledger_file:
            self.seed_ledger = load_ledger_file(self.config.ledger_file)
        self.reset_all()

    # -- shared state (caller holds self.lock where noted) ------------------
    def reset_all(self):
        with self.lock:
            self.projects = default_projects_seed(self.config.synthetic)
            self.org = self.config.organization()
            self.member_projects = org_member_projects(self.org)
            self.faults = FaultRegistry()
            self.credentials = {self.config.access_key_id:
                                (self.config.secret_access_key, self.config.session_token)}
            self.credential_meta = {}
            self.cached_credentials = {}
            self.imds_tokens = {}
            if self.seed_ledger is not None:
                self.ledger = list(self.seed_ledger)
            else:
                self.ledger = default_ledger_seed(self.today())
            if self.org.accounts:
                self.ledger = self.ledger + org_member_ledger(self.org, self.today())
            self.account_rows_cache = None
            self.ledger_version = 1
            self.allocation_tags = default_allocation_tags()
            self.projects_version += 1
            self.cw_spikes = []
            self.cw_next_spike = 1
            self.cw_pager = CwPager()
            self.s3_objects = {}             # (bucket, key) -> S3Object
            self.s3_list_page_size = self.config.s3_list_page_size
            self.data_export = None          # DataExport, or None (off)
            self.reset_counters()

    def today(self):
        """The fake's "today" (UTC): --today, or the real UTC date."""
        if self.config.today is not None:
            return self.config.today
        return datetime.datetime.now(datetime.timezone.utc).date()

    def ledger_snapshot(self):
        with self.lock:
            return self.ledger, dict(self.allocation_tags)

    # -- the organization -----------------------------------------------------
    def account_of(self, akid):
        """The account credentials are bound to: a member for credentials AssumeRole
        issued in a member's role, else (static keys, other temporary credentials, None)
        the management account."""
        with self.lock:
            meta = self.credential_meta.get(akid) if akid is not None else None
            return meta.get("account", ACCOUNT_ID) if meta is not None else ACCOUNT_ID

    def account_rows(self, account):
        """The ledger rows of one account (LINKED_ACCOUNT), cached per ledger list."""
        with self.lock:
            ledger = self.ledger
            c = self.account_rows_cache
            if c is None or c[0] is not ledger:
                by = {}
                for r in ledger:
                    by.setdefault(row_account(r), []).append(r)
                c = self.account_rows_cache = (ledger, by)
            return c[1].get(account, [])

    def set_organization(self, org):
        """Replace the organization: the members' projects and their ledger rows are
        rebuilt (rows of the previous and the new members are dropped first; the
        management account's rows stay). Caller holds no lock."""
        with self.lock:
            drop = set(self.org.by_id) | set(org.by_id)
            kept = [r for r in self.ledger if row_account(r) not in drop]
            self.org = org
            self.member_projects = org_member_projects(org)
            self.ledger = kept + (org_member_ledger(org, self.today()) if org.accounts
                                  else [])
            self.ledger_version += 1
            self.projects_version += 1

    # -- CloudWatch ------------------------------------------------------------
    def cw_now(self):
        """CloudWatch's "now": the clock, or the overridden today plus the real time
        of day."""
        t = time.time()
        today = self.config.today
        if today is None:
            return t
        return calendar.timegm(today.timetuple()) + (t % 86400)

    def cw_index(self):
        """The CwIndex of the current ledger and projects (rebuilt when either changes)."""
        def cached():
            with self.lock:
                c = self.cw_cache
                if c is not None and c[0] is self.ledger and c[1] is self.projects and \
                        c[2] == self.projects_version:
                    return c[3], None
                return None, (self.ledger, self.projects, self.projects_version,
                              {r: list(items) for r, items in self.projects.items()})
        idx, snap = cached()
        if idx is not None:
            return idx
        with self.cw_build_lock:
            idx, snap = cached()
            if idx is not None:
                return idx
            # the management account's rows only: member accounts have no CloudWatch
            idx = CwIndex([r for r in snap[0] if row_account(r) == ACCOUNT_ID], snap[3])
            with self.lock:
                self.cw_cache = (snap[0], snap[1], snap[2], idx)
            return idx

    def cw_view(self):
        idx = self.cw_index()
        with self.lock:
            spikes = list(self.cw_spikes)
        return CwView(idx, spikes, self.cw_now())

    # -- temporary credentials -----------------------------------------------
    def issue_credentials(self, source, lifetime=None, expired=False, binding=None):
        """Create temporary credentials accepted by every SigV4 surface until
        they expire. Returns {"AccessKeyId","SecretAccessKey","SessionToken",
        "Expiration" (epoch int), "issued" (epoch float)}. They are bound to the
        management account, or with binding {"account","role_arn","arn","user_id"}
        to a member (AssumeRole into a member's role)."""
        now = time.time()
        lifetime = self.config.credential_lifetime if lifetime is None else lifetime
        expiration = int(now - 60) if expired else int(now + lifetime)
        akid = "ASIA" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
                                for _ in range(16))
        secret = base64.b64encode(secrets.token_bytes(30)).decode()
        token = ("IQoJb3JpZ2luX2VjEFAKE" +
                 base64.b64encode(secrets.token_bytes(180)).decode())
        with self.lock:
            if len(self.credential_meta) >= 10000:     # forget the oldest
                oldest = min(self.credential_meta,
                             key=lambda k: self.credential_meta[k]["issued"])
                self.credential_meta.pop(oldest)
                self.credentials.pop(oldest, None)
            self.credentials[akid] = (secret, token)
            self.credential_meta[akid] = {"source": source, "issued": now,
                                          "expiration": expiration, "account": ACCOUNT_ID}
            if binding:
                self.credential_meta[akid].update(binding)
            c = self.counters.get(source)
            if c is not None and "issued" in c:
                c["issued"] += 1
        return {"AccessKeyId": akid, "SecretAccessKey": secret, "SessionToken": token,
                "Expiration": expiration, "issued": now}

    def served_credentials(self, source, expired=False):
        """Credentials for IMDS/container: the same set until it gets close to
        its expiry (less than min(300 s, lifetime/2) left), then a new one."""
        now = time.time()
        with self.lock:
            akid = self.cached_credentials.get(source)
            if akid is not None and not expired and akid in self.credential_meta:
                meta = self.credential_meta[akid]
                life = meta["expiration"] - meta["issued"]
                margin = min(300.0, life / 2.0)
                if now < meta["expiration"] - margin:
                    secret, token = self.credentials[akid]
                    return {"AccessKeyId": akid, "SecretAccessKey": secret,
                            "SessionToken": token, "Expiration": meta["expiration"],
                            "issued": meta["issued"]}
        creds = self.issue_credentials(source, expired=expired)
        with self.lock:
            if not expired:
                self.cached_credentials[source] = creds["AccessKeyId"]
        return creds

    def expire_credentials(self):
        """Make every issued temporary credential expired now. Returns the count."""
        now = int(time.time()) - 1
        with self.lock:
            for meta in self.credential_meta.values():
                meta["expiration"] = min(meta["expiration"], now)
            self.cached_credentials = {}
            return len(self.credential_meta)

    def credential_expired(self, akid):
        with self.lock:
            meta = self.credential_meta.get(akid)
            return meta is not None and time.time() >= meta["expiration"]

    def reset_counters(self):
        with self.lock:
            self.counters = {name: s.new_counters() for name, s in self.surfaces.items()}
            self.request_log = collections.deque(maxlen=REQUEST_LOG_MAX)
            self.request_seq = 0

    def get_projects(self, region, account=ACCOUNT_ID):
        """The projects of account (default: the management account) in region; a
        region without data has only "default"."""
        with self.lock:
            if account == ACCOUNT_ID:
                items = self.projects.get(region)
            else:
                items = self.member_projects.get(account, {}).get(region)
            return list(items) if items is not None else [default_project(region, account)]

    # -- dispatch -----------------------------------------------------------
    def route(self, path):
        """The Surface or ControlAPI serving path (longest prefix), or None."""
        for prefix, target in self.routes:
            if path.startswith(prefix):
                return target
        return None

    def dispatch(self, ctx):
        target = self.route(ctx.path)
        if target is self.control:
            return self.control.handle(ctx)
        if target is not None:
            return self.serve_surface(target, ctx)
        return Response.json_obj(404, {"error": {"message": "Not found: %s" % ctx.path,
                                                 "type": "not_found"}})

    def oversize_response(self, handler, exc):
        """The answer to a request whose body is over MAX_REQUEST_BODY (left unread),
        when its surface answers that itself (accepts_oversize, e.g. S3's 413
        EntityTooLarge): served, counted and logged like any request, with an empty
        body and ctx.body_too_large set. None: the generic 400."""
        target = self.route(handler.path.partition("?")[0])
        if not getattr(target, "accepts_oversize", False):
            return None
        ctx = RequestContext(handler, b"")
        ctx.body_too_large = exc.size
        return self.serve_surface(target, ctx)

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
        extra = surface.log_fields(ctx)
        with self.lock:
            c = self.counters[surface.name]
            if resp.status is not None and not resp.abort:
                key = str(resp.status)
                c["by_status"][key] = c["by_status"].get(key, 0) + 1
            surface.count(ctx, resp, c)
            account = getattr(ctx, "account", None)
            if account is not None and "by_account" in c:
                c["by_account"][account] = c["by_account"].get(account, 0) + 1
                entry["account"] = account
            entry["auth"] = ctx.auth_scheme
            entry["status"] = resp.status
            entry["fault"] = ctx.fault.kind if ctx.fault else None
            entry.update(extra)
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
            fault = self.faults.take(surface.name, ctx.raw_path, ctx, surface)
        ctx.fault = fault
        kind = fault.kind if fault else None
        if kind:
            ctx.note = "fault=%s" % kind
            special = surface.fault_response(ctx, fault)
            if special is not None:
                return special
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
            resp = surface.rewrap_json(resp, obj)
        return resp

    def check_sigv4(self, ctx, service, region):
        """Shared SigV4 check for surfaces: None if valid, else a 403 Response
        built by the surface's sigv4_denied() hook. Temporary credentials past
        their expiry are rejected as expired (also when the signature is bad)."""
        with self.lock:
            creds = dict(self.credentials)
        url = getattr(ctx, "sigv4_url", None) or ctx.url()
        result = verify_sigv4(ctx.method, url, ctx.header_items(), ctx.body,
                              service, region, creds)
        ctx.sigv4_akid = result.akid
        expired = result.akid is not None and self.credential_expired(result.akid)
        if result.ok and not expired:
            ctx.account = self.account_of(result.akid)
            return None
        if expired:
            result.reason = "temporary credentials expired (%s)" % (
                "signature ok" if result.ok else result.reason)
        log("sigv4 rejected (%s %s %s):\n%s" % (ctx.surface, ctx.method, ctx.raw_path,
                                               result.debug_text()))
        return self.surfaces[ctx.surface].sigv4_denied(ctx, result, expired)


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
                    raise BodyTooLarge(total)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BODY:
            raise BodyTooLarge(length, "bad Content-Length")
        if length < 0:
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
                resp = None
                if isinstance(exc, BodyTooLarge):
                    resp = app.oversize_response(self, exc)
                if resp is None:
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

SELF_TEST_TODAY = datetime.date(2026, 5, 14)


def _http_call(port, method, path, headers=None, body=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
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


def _self_test_aws(check):
    """Cost Explorer, STS, IMDS and container checks (run by self_test)."""
    akid, secret = DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY
    today = SELF_TEST_TODAY
    app = FakeAWS(Config(quiet=True, today=today, ce_page_size=5, credential_lifetime=2))
    server, thread = start_server(app)
    port = server.server_address[1]
    services = [BEDROCK_SERVICE, CLAUDE_SERVICE]
    try:
        def ce(op, body, creds=(akid, secret, None), raw=None):
            data = raw if raw is not None else json.dumps(body).encode()
            req = AWSRequest(method="POST", url="http://127.0.0.1:%d/ce/" % port, data=data,
                             headers={"Host": "127.0.0.1:%d" % port,
                                      "Content-Type": AMZ_JSON_11,
                                      "X-Amz-Target": CE_TARGET_PREFIX + op})
            SigV4Auth(Credentials(*creds), "ce", "us-east-1").add_auth(req)
            st, hdrs, out = _http_call(port, "POST", "/ce/", dict(req.headers.items()), data)
            try:
                doc = json.loads(out)
            except ValueError:
                doc = None
            return st, hdrs, doc

        def ctl(method, path, obj=None):
            body = json.dumps(obj).encode() if obj is not None else None
            st, _, out = _http_call(port, method, path, body=body)
            return st, json.loads(out)

        rows = app.ledger
        start_s = first_of_previous_month(today).isoformat()
        end_s = (today + ONE_DAY).isoformat()
        grouped_req = {"TimePeriod": {"Start": start_s, "End": end_s}, "Granularity": "DAILY",
                       "Metrics": ["UnblendedCost"],
                       "Filter": {"Dimensions": {"Key": "SERVICE", "Values": services}},
                       "GroupBy": [{"Type": "TAG", "Key": "Application"},
                                   {"Type": "TAG", "Key": "Environment"}]}

        st, hdrs, doc = ce("GetCostAndUsage", grouped_req)
        check("ce: GetCostAndUsage signed by botocore SigV4Auth -> 200",
              st == 200 and hdrs.get("Content-Type") == AMZ_JSON_11, "%r %r" % (st, doc))
        first_token = doc.get("NextPageToken") if isinstance(doc, dict) else None

        # All pages, merged per (day, group), against direct ledger sums.
        merged, pages, seen_periods, token = {}, 0, collections.Counter(), None
        while pages < 500:
            body = dict(grouped_req)
            if token:
                body["NextPageToken"] = token
            st, _, doc = ce("GetCostAndUsage", body)
            if st != 200:
                break
            pages += 1
            for r in doc["ResultsByTime"]:
                seen_periods[r["TimePeriod"]["Start"]] += 1
                for g in r["Groups"]:
                    k = (r["TimePeriod"]["Start"],) + tuple(g["Keys"])
                    check_amount = Decimal(g["Metrics"]["UnblendedCost"]["Amount"])
                    merged[k] = merged.get(k, Decimal(0)) + check_amount
            token = doc.get("NextPageToken")
            if not token:
                break
        expected = {}
        d = first_of_previous_month(today)
        while d <= today:
            ds = d.isoformat()
            sums = ledger_group_sums(rows, app.allocation_tags, ds,
                                     (d + ONE_DAY).isoformat(), services=services,
                                     tag_keys=("Application", "Environment"))
            for k, v in sums.items():
                expected[(ds,) + k] = v
            d += ONE_DAY
        check("ce: grouped query over %d pages (page size 5) sums per group to the ledger"
              % pages, pages > 10 and merged == expected,
              "pages=%d groups=%d/%d" % (pages, len(merged), len(expected)))
        check("ce: some periods are split across pages",
              any(n > 1 for n in seen_periods.values()))
        n_days = (today - first_of_previous_month(today)).days + 1
        check("ce: every period appears", len(seen_periods) == n_days,
              "%d/%d" % (len(seen_periods), n_days))
        yday = (today - ONE_DAY).isoformat()
        untagged = sum((r["_cost"] for r in rows if r["date"] == yday and not r["tags"] and
                        r["service"] in services), Decimal(0))
        check("ce: untagged spend lands in Application$/Environment$",
              merged.get((yday, "Application$", "Environment$")) == untagged and untagged > 0)
        bedrock_total = sum((r["_cost"] for r in rows if r["service"] in services),
                            Decimal(0))
        all_total = sum((r["_cost"] for r in rows), Decimal(0))
        cc_prod = [r for r in rows if r["date"] == yday and
                   r["tags"].get("Application") == "CustomerChatbot" and
                   r["tags"].get("Environment") == "Production"]
        cc_bedrock = sum((r["_cost"] for r in cc_prod if r["service"] in services),
                         Decimal(0))
        check("ce: non-Bedrock rows (EC2, Lambda with the same tags) excluded",
              sum(merged.values(), Decimal(0)) == bedrock_total and
              all_total > bedrock_total and
              any(r["service"] == EC2_SERVICE for r in cc_prod) and
              merged.get((yday, "Application$CustomerChatbot", "Environment$Production")) ==
              cc_bedrock)
        check("ce: LegacyBot (unmatched tags) has its own group",
              (yday, "Application$LegacyBot", "Environment$Production") in merged)

        changed = dict(grouped_req, NextPageToken=first_token,
                       TimePeriod={"Start": start_s, "End": today.isoformat()})
        st, hdrs, doc = ce("GetCostAndUsage", changed)
        check("ce: token of another request -> 400 RequestChangedException",
              st == 400 and hdrs.get("x-amzn-ErrorType") == "RequestChangedException" and
              doc.get("__type") == CE_ERROR_NS + "RequestChangedException", "%r" % doc)
        st, hdrs, doc = ce("GetCostAndUsage", dict(grouped_req, NextPageToken="bm9wZQ=="))
        check("ce: garbage token -> 400 InvalidNextTokenException",
              st == 400 and hdrs.get("x-amzn-ErrorType") == "InvalidNextTokenException" and
              isinstance(doc.get("Message"), str), "%r" % doc)

        # Validation, ungrouped shape, Estimated.
        st, _, doc = ce("GetCostAndUsage", dict(grouped_req, GroupBy=grouped_req["GroupBy"] +
                                                [{"Type": "DIMENSION", "Key": "SERVICE"}]))
        check("ce: 3 GroupBy -> ValidationException",
              st == 400 and doc["__type"].endswith("#ValidationException"))
        st, _, doc = ce("GetCostAndUsage", dict(grouped_req, TimePeriod={
            "Start": end_s, "End": start_s}))
        check("ce: Start >= End -> ValidationException",
              st == 400 and doc["__type"].endswith("#ValidationException"))
        st, _, doc = ce("GetCostAndUsage", {"TimePeriod": {"Start": start_s, "End": end_s},
                                            "Granularity": "MONTHLY",
                                            "Metrics": ["UnblendedCost", "AmortizedCost"]})
        res = doc.get("ResultsByTime", []) if isinstance(doc, dict) else []
        month_total = sum((r["_cost"] for r in rows if r["date"] >= today.replace(
            day=1).isoformat()), Decimal(0))
        check("ce: MONTHLY ungrouped: Total, Groups [], Estimated only for this month",
              st == 200 and len(res) == 2 and res[0]["Groups"] == [] and
              [r["Estimated"] for r in res] == [False, True] and
              Decimal(res[1]["Total"]["UnblendedCost"]["Amount"]) == month_total and
              res[1]["Total"]["AmortizedCost"] == res[1]["Total"]["UnblendedCost"] and
              "GroupDefinitions" not in doc, "%r" % res)
        st, _, doc = ce("GetCostAndUsage", {"TimePeriod": {
            "Start": (today - datetime.timedelta(days=4)).isoformat(), "End": end_s},
            "Granularity": "DAILY", "Metrics": ["UnblendedCost"]})
        check("ce: DAILY Estimated = the last 3 days (today-2..today)",
              st == 200 and [r["Estimated"] for r in doc["ResultsByTime"]] ==
              [False, False, True, True, True])
        st, _, doc = ce("GetCostAndUsage", {
            "TimePeriod": {"Start": yday, "End": today.isoformat()}, "Granularity": "DAILY",
            "Metrics": ["UnblendedCost"], "Filter": {"And": [
                {"Dimensions": {"Key": "SERVICE", "Values": services}},
                {"Tags": {"Key": "Application", "Values": [""]}}]}})
        check("ce: Tags Values [\"\"] matches untagged rows",
              st == 200 and Decimal(doc["ResultsByTime"][0]["Total"]["UnblendedCost"]
                                    ["Amount"]) == untagged)
        st, _, doc = ce("GetCostAndUsage", {
            "TimePeriod": {"Start": yday, "End": today.isoformat()}, "Granularity": "DAILY",
            "Metrics": ["UnblendedCost"], "GroupBy": [{"Type": "TAG", "Key": "CostCenter"}]})
        keys = [g["Keys"] for g in doc["ResultsByTime"][0]["Groups"]] if st == 200 else None
        check("ce: inactive allocation tag (CostCenter) reads as untagged",
              keys == [["CostCenter$"]], "%r" % keys)

        # Forecast, dimension values, allocation tags.
        w = [r for r in rows if (today - datetime.timedelta(days=7)).isoformat() <=
             r["date"] < today.isoformat() and r["service"] in services]
        wsum = sum((r["_cost"] for r in w), Decimal(0))
        fend = (today.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
        st, _, doc = ce("GetCostForecast", {
            "TimePeriod": {"Start": today.isoformat(), "End": fend.isoformat()},
            "Metric": "UNBLENDED_COST", "Granularity": "MONTHLY",
            "Filter": {"Dimensions": {"Key": "SERVICE", "Values": services}}})
        days = (fend - today).days
        with ce_context():
            want = (wsum * days / 7).quantize(Decimal("1E-10"))
            lo = (wsum * days * Decimal("0.85") / 7).quantize(Decimal("1E-10"))
        fr = doc.get("ForecastResultsByTime", [{}])[0] if st == 200 else {}
        check("ce: GetCostForecast = 7-day mean x days, bounds +-15%",
              st == 200 and doc["Total"] == {"Amount": fmt_amount(want), "Unit": "USD"} and
              fr.get("MeanValue") == fmt_amount(want) and
              fr.get("PredictionIntervalLowerBound") == fmt_amount(lo), "%r" % doc)
        st, _, doc = ce("GetCostForecast", {
            "TimePeriod": {"Start": yday, "End": fend.isoformat()},
            "Metric": "UNBLENDED_COST", "Granularity": "MONTHLY"})
        check("ce: forecast starting before today -> ValidationException",
              st == 400 and doc["__type"].endswith("#ValidationException"))
        # PUT /_fake/config moves today (a run on a simulated clock): the same forecast is
        # accepted once today is yesterday, refused again when today is back
        st_put, cfg = ctl("PUT", "/_fake/config", {"today": yday})
        st, _, doc = ce("GetCostForecast", {
            "TimePeriod": {"Start": yday, "End": fend.isoformat()},
            "Metric": "UNBLENDED_COST", "Granularity": "MONTHLY"})
        st_bad, _ = ctl("PUT", "/_fake/config", {"today": "2026-5-1"})
        st_bad2, _ = ctl("PUT", "/_fake/config", {"today": yday, "ce_page_size": 1})
        _, cfg2 = ctl("GET", "/_fake/config")
        st_back, cfg3 = ctl("PUT", "/_fake/config", {"today": today.isoformat()})
        st2, _, _ = ce("GetCostForecast", {
            "TimePeriod": {"Start": yday, "End": fend.isoformat()},
            "Metric": "UNBLENDED_COST", "Granularity": "MONTHLY"})
        check("control: PUT /_fake/config moves today (forecast from the new today accepted, "
              "bad values 400, moved back)",
              st_put == 200 and cfg["today"] == yday and cfg["today_fixed"] and st == 200 and
              st_bad == 400 and st_bad2 == 400 and cfg2["today"] == yday and st_back == 200 and
              cfg3["today"] == today.isoformat() and st2 == 400,
              "%r" % ((st_put, cfg.get("today"), st, st_bad, st_bad2, cfg2.get("today"),
                       st_back, st2),))
        st, _, doc = ce("GetDimensionValues", {
            "TimePeriod": {"Start": start_s, "End": end_s}, "Dimension": "SERVICE",
            "SearchString": "bedrock"})
        check("ce: GetDimensionValues SERVICE ~ 'bedrock' finds both service names",
              st == 200 and [v["Value"] for v in doc["DimensionValues"]] ==
              sorted(services) and doc["TotalSize"] == 2, "%r" % doc)
        st, _, doc = ce("ListCostAllocationTags", {"MaxResults": 3})
        st2, _, doc2 = ce("ListCostAllocationTags", {"MaxResults": 3,
                                                     "NextToken": doc.get("NextToken")})
        tags = {t["TagKey"]: t["Status"] for t in doc.get("CostAllocationTags", []) +
                doc2.get("CostAllocationTags", [])}
        check("ce: ListCostAllocationTags paginates, CostCenter Inactive",
              st == 200 and st2 == 200 and tags == dict(DEFAULT_ALLOCATION_TAGS) and
              "NextToken" not in doc2, "%r" % tags)

        # Faults.
        ctl("POST", "/_fake/faults", {"surface": "ce", "kind": "throttle", "count": 1,
                                      "operation": "GetCostForecast"})
        st1, _, _ = ce("ListCostAllocationTags", {})
        st2, h2, d2 = ce("GetCostForecast", {
            "TimePeriod": {"Start": today.isoformat(), "End": fend.isoformat()},
            "Metric": "UNBLENDED_COST", "Granularity": "MONTHLY"})
        check("ce: throttle restricted to an operation -> 400 LimitExceededException",
              st1 == 200 and st2 == 400 and h2.get("x-amzn-ErrorType") ==
              "LimitExceededException" and d2["__type"] == CE_ERROR_NS +
              "LimitExceededException", "%r" % ((st1, st2, d2),))
        ctl("POST", "/_fake/faults", {"surface": "ce", "kind": "change_between_pages",
                                      "count": 1})
        st1, _, p1 = ce("GetCostAndUsage", grouped_req)
        st2, _, p2 = ce("GetCostAndUsage", dict(grouped_req,
                                                NextPageToken=p1["NextPageToken"]))
        g = p2["ResultsByTime"][0]["Groups"][0]
        k = (p2["ResultsByTime"][0]["TimePeriod"]["Start"],) + tuple(g["Keys"])
        part1 = sum((Decimal(x["Metrics"]["UnblendedCost"]["Amount"])
                     for r in p1["ResultsByTime"] for x in r["Groups"]
                     if (r["TimePeriod"]["Start"],) + tuple(x["Keys"]) == k), Decimal(0))
        check("ce: change_between_pages adds $1 on page 2 (not page 1)",
              Decimal(g["Metrics"]["UnblendedCost"]["Amount"]) + part1 ==
              expected[k] + 1, "%r" % g)
        _, c = ctl("GET", "/_fake/requests?surface=ce")
        check("ce: /_fake/requests counts by_operation",
              c["ce"]["by_operation"].get("GetCostForecast") == 5 and   # 2 in the today check
              c["ce"]["by_operation"].get("ListCostAllocationTags") == 3, "%r" % c)

        # STS AssumeRole -> temporary credentials -> ce, until they expire.
        form = ("Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A"
                "123456789012%3Arole%2Fcost-reader&RoleSessionName=self-test").encode()
        req = AWSRequest(method="POST", url="http://127.0.0.1:%d/sts/" % port, data=form,
                         headers={"Host": "127.0.0.1:%d" % port, "Accept": "application/json",
                                  "Content-Type": "application/x-www-form-urlencoded"})
        SigV4Auth(Credentials(akid, secret), "sts", "us-east-1").add_auth(req)
        st, _, out = _http_call(port, "POST", "/sts/", dict(req.headers.items()), form)
        doc = json.loads(out)
        creds = doc.get("AssumeRoleResponse", {}).get("AssumeRoleResult", {}).get(
            "Credentials", {})
        check("sts: AssumeRole (JSON) issues ASIA credentials with epoch Expiration",
              st == 200 and creds.get("AccessKeyId", "").startswith("ASIA") and
              _is_int(creds.get("Expiration")), "%r" % doc)
        tmp = (creds.get("AccessKeyId"), creds.get("SecretAccessKey"),
               creds.get("SessionToken"))
        lt_req = {"Status": "Active"}
        st, _, _ = ce("ListCostAllocationTags", lt_req, creds=tmp)
        check("ce: accepts the temporary credentials with their session token", st == 200)
        st, _, doc = ce("ListCostAllocationTags", lt_req, creds=tmp[:2] + (None,))
        check("ce: temporary credentials without session token -> 403",
              st == 403 and doc["__type"].endswith("#UnrecognizedClientException"))
        time.sleep(2.3)
        st, hdrs, doc = ce("ListCostAllocationTags", lt_req, creds=tmp)
        check("ce: expired temporary credentials -> 403 ExpiredTokenException",
              st == 403 and doc == {"__type": CORAL_ERROR_NS + "ExpiredTokenException",
                                    "message": EXPIRED_TOKEN_MESSAGE}, "%r" % doc)

        # botocore's own clients and credential fetchers against the fake.
        import botocore.session
        from botocore.config import Config as BotoConfig
        from botocore.exceptions import ClientError
        from botocore.utils import ContainerMetadataFetcher, InstanceMetadataFetcher
        session = botocore.session.Session()
        bcfg = BotoConfig(retries={"total_max_attempts": 1})
        cec = session.create_client("ce", region_name="us-east-1", config=bcfg,
                                    endpoint_url="http://127.0.0.1:%d/ce" % port,
                                    aws_access_key_id=akid, aws_secret_access_key=secret)
        out = cec.get_cost_and_usage(**grouped_req)
        check("botocore ce client parses GetCostAndUsage",
              len(out["ResultsByTime"]) >= 1 and "NextPageToken" in out)
        try:
            cec.get_cost_and_usage(**dict(grouped_req, NextPageToken="garbage"))
            code = None
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
        check("botocore ce client sees InvalidNextTokenException",
              code == "InvalidNextTokenException", "%r" % code)
        stsc = session.create_client("sts", region_name="us-east-1", config=bcfg,
                                     endpoint_url="http://127.0.0.1:%d/sts/" % port,
                                     aws_access_key_id=akid, aws_secret_access_key=secret)
        out = stsc.assume_role(RoleArn="arn:aws:iam::123456789012:role/cost-reader",
                               RoleSessionName="botocore", DurationSeconds=900)
        check("botocore sts client (XML) AssumeRole",
              out["Credentials"]["AccessKeyId"].startswith("ASIA"))
        out = stsc.assume_role_with_web_identity(
            RoleArn="arn:aws:iam::123456789012:role/x", RoleSessionName="wi",
            WebIdentityToken=DEFAULT_WEB_IDENTITY_TOKEN)
        check("botocore sts client AssumeRoleWithWebIdentity",
              out["Credentials"]["AccessKeyId"].startswith("ASIA"))
        try:
            stsc.assume_role_with_web_identity(RoleArn="arn:aws:iam::123456789012:role/x",
                                               RoleSessionName="wi", WebIdentityToken="bad!")
            code = None
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
        check("sts: wrong web identity token -> InvalidIdentityToken",
              code == "InvalidIdentityToken", "%r" % code)
        imds = InstanceMetadataFetcher(timeout=5, num_attempts=1,
                                       base_url="http://127.0.0.1:%d/" % port)
        ic = imds.retrieve_iam_role_credentials()
        check("imds: botocore InstanceMetadataFetcher gets credentials",
              ic.get("role_name") == DEFAULT_IMDS_ROLE and
              ic.get("access_key", "").startswith("ASIA"), "%r" % sorted(ic))
        st, _, _ = ce("ListCostAllocationTags", {},
                      creds=(ic["access_key"], ic["secret_key"], ic["token"]))
        check("ce: accepts IMDS credentials", st == 200)
        st, _, _ = _http_call(port, "GET", IMDS_CREDS_BASE + "/")
        check("imds: IMDSv1 (no token) -> 401", st == 401)
        st, _, _ = _http_call(port, "PUT", "/latest/api/token",
                              {"X-aws-ec2-metadata-token-ttl-seconds": "21601"})
        check("imds: ttl 21601 -> 400", st == 400)
        cf = ContainerMetadataFetcher()
        cc = cf.retrieve_full_uri("http://127.0.0.1:%d/container-credentials" % port,
                                  headers={"Authorization": DEFAULT_CONTAINER_AUTH_TOKEN})
        check("container: botocore ContainerMetadataFetcher gets credentials",
              cc.get("AccessKeyId", "").startswith("ASIA") and "Expiration" in cc)
        st, _, _ = _http_call(port, "GET", "/container-credentials",
                              {"Authorization": "wrong"})
        check("container: wrong Authorization -> 401", st == 401)
        st, doc = ctl("GET", "/_fake/requests")
        check("counters: sts issued / imds / container",
              doc["sts"]["issued"] == 3 and doc["imds"]["issued"] >= 1 and
              doc["container"]["issued"] == 1, "%r" % {k: doc[k] for k in
                                                     ("sts", "imds", "container")})

        # Control API: ledger append + reset.
        st, before = ctl("GET", "/_fake/ledger")
        st, _ = ctl("POST", "/_fake/ledger/rows", [{"date": yday, "service": BEDROCK_SERVICE,
                                                    "usage_type": "USE1-x-input-tokens",
                                                    "tags": {}, "cost": "1000.0000000001"}])
        st2, after = ctl("GET", "/_fake/ledger")
        st3, _ = ctl("POST", "/_fake/reset")
        st4, reset = ctl("GET", "/_fake/ledger")
        check("control: ledger rows append and reset restores the seed",
              after["count"] == before["count"] + 1 and reset["count"] == before["count"] and
              reset["rows"] == before["rows"] and before["today"] == today.isoformat())
    finally:
        stop_server(app, server, thread)


# Members the fake answers with that real AWS sends but the bundled botocore model
# (python3-botocore 1.43) does not know yet: ListCostAllocationTags' CostAllocationTag has
# LastUpdatedDate and LastUsedDate in the AWS API reference.
OUTPUT_MODEL_ALLOWED = re.compile(r'^Unknown parameter in CostAllocationTags\[\d+\]: '
                                  r'"(LastUpdatedDate|LastUsedDate)", ')


def output_report(service, operation, doc):
    """model_report() of an answer, without the OUTPUT_MODEL_ALLOWED lines."""
    lines = model_report(service, operation, doc, output=True).splitlines()
    return "\n".join(x for x in lines if not OUTPUT_MODEL_ALLOWED.match(x))


def _self_test_cloudwatch(check):
    """CloudWatch surface and botocore model validation checks (run by self_test)."""
    akid, secret = DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY
    today = SELF_TEST_TODAY
    app = FakeAWS(Config(quiet=True, today=today))
    server, thread = start_server(app)
    port = server.server_address[1]
    region = "us-east-1"
    try:
        def signed(path, service, sign_region, ctype, target, body):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            req = AWSRequest(method="POST", url="http://127.0.0.1:%d%s" % (port, path),
                             data=data, headers={"Host": "127.0.0.1:%d" % port,
                                                 "Content-Type": ctype,
                                                 "X-Amz-Target": target})
            SigV4Auth(Credentials(akid, secret), service, sign_region).add_auth(req)
            st, hdrs, out = _http_call(port, "POST", path, dict(req.headers.items()), data,
                                       timeout=30)
            try:
                doc = json.loads(out)
            except ValueError:
                doc = None
            return st, hdrs, doc

        def cw(op, body, reg=region, sign_region=None):
            return signed("/monitoring/" + reg, "monitoring", sign_region or reg,
                          AMZ_JSON_10, CW_TARGET_PREFIX + op, body)

        def ce(op, body):
            return signed("/ce/", "ce", "us-east-1", AMZ_JSON_11, CE_TARGET_PREFIX + op, body)

        def ctl(method, path, obj=None):
            body = json.dumps(obj).encode() if obj is not None else None
            st, _, out = _http_call(port, method, path, body=body)
            return st, json.loads(out)

        def out_ok(service, op, doc):
            return isinstance(doc, dict) and output_report(service, op, doc) == ""

        def counters(surface):
            return ctl("GET", "/_fake/requests?surface=" + surface)[1][surface]

        def cw_error(st, hdrs, doc, status, name):
            return (st == status and hdrs.get("x-amzn-ErrorType") == name and
                    hdrs.get("x-amzn-query-error") == name + ";Sender" and
                    isinstance(doc, dict) and doc.get("__type") == CW_ERROR_NS + name and
                    isinstance(doc.get("message"), str))

        yday = today - ONE_DAY
        d0 = calendar.timegm(yday.timetuple())
        chatbot = project_id_for(region, "CustomerChatbot-Prod")
        g120 = "openai.gpt-oss-120b"

        def query(qid, metric, dims, period=300):
            return {"Id": qid, "MetricStat": {"Metric": {
                "Namespace": CW_NAMESPACE, "MetricName": metric,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dims]},
                "Period": period, "Stat": "Sum"}}

        q_in = query("in120", "InputTokens", [("Project", chatbot), ("Model", g120)])
        req = {"MetricDataQueries": [q_in], "StartTime": d0, "EndTime": d0 + 86400,
               "ScanBy": "TimestampAscending"}
        st, hdrs, doc = cw("GetMetricData", req)
        ok = st == 200 and hdrs.get("Content-Type") == AMZ_JSON_10 and \
            bool(hdrs.get("x-amzn-RequestId"))
        check("cloudwatch: GetMetricData signed by botocore (monitoring, us-east-1) -> 200",
              ok, "%r %r" % (st, doc))
        check("cloudwatch: GetMetricData answer matches botocore's output shape",
              out_ok("cloudwatch", "GetMetricData", doc), model_report(
                  "cloudwatch", "GetMetricData", doc or {}, output=True))
        cost = sum((r["_cost"] for r in app.ledger if r["date"] == yday.isoformat() and
                    r["usage_type"] == "USE1-openai.gpt-oss-120b-mantle-input-tokens-standard"
                    and r["tags"].get("Application") == "CustomerChatbot" and
                    r["tags"].get("Environment") == "Production"), Decimal(0))
        want = int((cost * 1000000 / Decimal("0.15")).to_integral_value(
            rounding=decimal.ROUND_HALF_EVEN))
        res = doc["MetricDataResults"][0] if ok else {}
        check("cloudwatch: 5-minute buckets of a past day: 288, ascending, sum = cost/rate",
              ok and res["Timestamps"] == [d0 + 300 * i for i in range(288)] and
              sum(res["Values"]) == want and res["StatusCode"] == "Complete" and
              all(_is_int(v) and v > 0 for v in res["Values"]),
              "%d points, sum %s want %d" % (len(res.get("Values", [])),
                                            sum(res.get("Values", [])), want))
        check("cloudwatch: billed cost / tokens = the rate (0.15 USD per 1e6)",
              want > 0 and abs(cost * 1000000 / want - Decimal("0.15")) < Decimal("1E-6"))
        st, _, doc2 = cw("GetMetricData", dict(req, ScanBy="TimestampDescending"))
        r2 = doc2["MetricDataResults"][0] if st == 200 else {}
        check("cloudwatch: TimestampDescending reverses the datapoints",
              r2.get("Timestamps") == res.get("Timestamps", [])[::-1] and
              r2.get("Values") == res.get("Values", [])[::-1])

        # Visibility: today's minutes up to now only.
        t0 = calendar.timegm(today.timetuple())
        st, _, doc = cw("GetMetricData", {"MetricDataQueries": [
            query("m", "TotalInputTokens", [("Project", chatbot)], 60)],
            "StartTime": t0 - 600, "EndTime": t0 + 2 * 86400})
        now = app.cw_now()
        ts = doc["MetricDataResults"][0]["Timestamps"] if st == 200 else [None]
        check("cloudwatch: only ended minutes are visible (default ScanBy descending)",
              st == 200 and ts and ts[0] + 60 <= now + 1 and ts == sorted(ts, reverse=True)
              and ts[-1] == t0 - 600, "%r now=%r" % (ts[:2], now))

        # Spend truth, Total* = sum of per-model metrics, unlisted and default projects.
        st, spend = ctl("GET", "/_fake/cloudwatch/spend?region=%s&date=%s"
                        % (region, yday.isoformat()))
        cbt = spend["projects"].get(chatbot, {}) if st == 200 else {}
        st, _, doc = cw("GetMetricData", {"MetricDataQueries": [
            query("tin", "TotalInputTokens", [("Project", chatbot)], 86400),
            query("tout", "TotalOutputTokens", [("Project", chatbot)], 86400)],
            "StartTime": d0, "EndTime": d0 + 86400})
        vals = {r["Id"]: r["Values"] for r in doc["MetricDataResults"]} if st == 200 else {}
        tin = sum(t["input"] for t in cbt.get("tokens", {}).values())
        tout = sum(t["output"] for t in cbt.get("tokens", {}).values())
        check("cloudwatch: Total*Tokens{Project} = the spend endpoint's token sums",
              vals.get("tin") == [tin] and vals.get("tout") == [tout] and
              cbt.get("tokens", {}).get(g120, {}).get("input") == want,
              "%r vs %r/%r" % (vals, tin, tout))
        usd = sum((Decimal(t[k]) * cw_rate(m, k) / 1000000
                   for m, t in cbt.get("tokens", {}).items() for k in ("input", "output")),
                  Decimal(0))
        check("cloudwatch: spend usd = tokens x rates",
              cbt.get("usd") == fmt_amount(usd) and usd > 0, "%r %r" % (cbt.get("usd"), usd))
        legacy = project_id_for(region, "unlisted/LegacyBot-Production")
        check("cloudwatch: untagged -> default, unmatched tags -> an unlisted proj_ id",
              "default" in spend["projects"] and legacy in spend["projects"] and
              project_id_for(region, "FraudDetection-Staging") not in spend["projects"])

        # Paging across MaxDatapoints cuts.
        big_req = {"MetricDataQueries": [
            q_in, query("out120", "OutputTokens", [("Project", chatbot), ("Model", g120)]),
            query("tot", "TotalInputTokens", [("Project", chatbot)])],
            "StartTime": d0, "EndTime": d0 + 86400}
        ctl("POST", "/_fake/requests/reset")
        st, _, big = cw("GetMetricData", big_req)
        merged, pages, token, statuses, shapes_ok = {}, 0, None, [], True
        while pages < 50:
            body = dict(big_req, MaxDatapoints=100)
            if token:
                body["NextToken"] = token
            st, _, doc = cw("GetMetricData", body)
            if st != 200:
                break
            pages += 1
            shapes_ok = shapes_ok and out_ok("cloudwatch", "GetMetricData", doc)
            for r in doc["MetricDataResults"]:
                m = merged.setdefault(r["Id"], ([], []))
                m[0].extend(r["Timestamps"])
                m[1].extend(r["Values"])
                statuses.append(r["StatusCode"])
            token = doc.get("NextToken")
            if not token:
                break
        want_big = {r["Id"]: (r["Timestamps"], r["Values"]) for r in big["MetricDataResults"]}
        check("cloudwatch: MaxDatapoints=100 pages (%d) concatenated = one big answer"
              % pages, pages == 9 and merged == want_big and "PartialData" in statuses and
              shapes_ok and sum(len(v[0]) for v in want_big.values()) == 864,
              "pages=%d" % pages)
        c = counters("cloudwatch")
        check("cloudwatch: metrics_requested counts every query of every page",
              c["metrics_requested"] == 3 * (1 + pages) and
              c["by_operation"].get("GetMetricData") == 1 + pages, "%r" % c)
        st, _, first = cw("GetMetricData", dict(big_req, MaxDatapoints=100))
        tok = first.get("NextToken", "")
        st1, h1, d1 = cw("GetMetricData", dict(big_req, MaxDatapoints=100,
                                               NextToken=tok[:-4] + "AAAA"))
        st2, h2, d2 = cw("GetMetricData", dict(big_req, MaxDatapoints=100,
                                               StartTime=d0 + 60, NextToken=tok))
        check("cloudwatch: a forged token or another request's token -> 400 InvalidNextToken",
              cw_error(st1, h1, d1, 400, "InvalidNextToken") and
              cw_error(st2, h2, d2, 400, "InvalidNextToken"))

        # Request errors.
        st, h, d = cw("GetMetricData", dict(req, MetricDataQueries=[dict(q_in, Id="Q1")]))
        check("cloudwatch: bad Id -> 400 InvalidParameterValueException (JSON 1.0 form)",
              cw_error(st, h, d, 400, "InvalidParameterValueException"), "%r %r" % (st, d))
        st, h, d = cw("GetMetricData", dict(req, MetricDataQueries=[
            dict(q_in, Id="q%d" % i) for i in range(501)]))
        check("cloudwatch: 501 queries -> 400 InvalidParameterValueException",
              cw_error(st, h, d, 400, "InvalidParameterValueException"), "%r" % d)
        st, h, d = cw("GetMetricData", dict(req, MetricDataQueries=[q_in, q_in]))
        check("cloudwatch: duplicate Id -> 400", st == 400)
        bad = json.loads(json.dumps(q_in))
        bad["MetricStat"]["Stat"] = "Average"
        st, _, _ = cw("GetMetricData", dict(req, MetricDataQueries=[bad]))
        bad["MetricStat"].update(Stat="Sum", Period=90)
        st2, _, _ = cw("GetMetricData", dict(req, MetricDataQueries=[bad]))
        st3, _, _ = cw("GetMetricData", dict(req, EndTime=d0))
        check("cloudwatch: Stat Average, Period 90, StartTime >= EndTime -> 400",
              (st, st2, st3) == (400, 400, 400))
        st, h, d = cw("GetMetricDataX", req)
        check("cloudwatch: unknown operation -> 400 UnknownOperationException",
              st == 400 and h.get("x-amzn-ErrorType") == "UnknownOperationException")
        st, h, d = cw("GetMetricData", req, sign_region="eu-west-1")
        check("cloudwatch: signed for another region than the path -> 403",
              st == 403 and h.get("x-amzn-ErrorType") == "InvalidSignatureException")
        st, _, doc = cw("GetMetricData", {"MetricDataQueries": [
            query("x", "InputTokens", [("Project", "proj_nope"), ("Model", g120)])],
            "StartTime": d0, "EndTime": d0 + 86400})
        check("cloudwatch: a metric that does not exist -> empty, Complete",
              st == 200 and doc["MetricDataResults"][0]["Values"] == [] and
              doc["MetricDataResults"][0]["StatusCode"] == "Complete")

        # Model validation (botocore's cloudwatch and ce models).
        ctl("POST", "/_fake/requests/reset")
        st, h, d = cw("GetMetricData", dict(req, Foo=1))
        st2, h2, d2 = cw("GetMetricData", dict(req, MetricDataQueries=[dict(q_in, Id="")]))
        check("model: cloudwatch request with an unknown member / empty Id -> 400, counted",
              cw_error(st, h, d, 400, "InvalidParameterValueException") and
              "Unknown parameter" in d.get("message", "") and st2 == 400 and
              counters("cloudwatch")["model_violations"] == 2, "%r" % d)
        app.config.model_validation = False
        st, _, _ = cw("GetMetricData", dict(req, Foo=1))
        app.config.model_validation = True
        check("model: validation off -> the unknown member is ignored", st == 200)
        cu = {"TimePeriod": {"Start": (today - 7 * ONE_DAY).isoformat(),
                             "End": today.isoformat()},
              "Granularity": "DAILY", "Metrics": ["UnblendedCost"],
              "GroupBy": [{"Type": "TAG", "Key": "Application"}]}
        st, h, d = ce("GetCostAndUsage", dict(cu, Granularity=5))
        st2, _, d2 = ce("GetCostAndUsage", dict(cu, Filter={"Dimensions": {
            "Key": "SERVICE", "Values": "Amazon Bedrock"}}))
        c = counters("ce")
        check("model: invalid ce requests -> 400 ValidationException, model_violations 2",
              st == 400 and h.get("x-amzn-ErrorType") == "ValidationException" and
              "Invalid type for parameter Granularity" in d.get("Message", "") and
              st2 == 400 and c["model_violations"] == 2, "%r %r %r" % (d, d2, c))
        calls = [("GetCostAndUsage", cu),
                 ("GetCostAndUsage", {"TimePeriod": cu["TimePeriod"], "Granularity": "MONTHLY",
                                      "Metrics": ["UnblendedCost", "UsageQuantity"]}),
                 ("GetDimensionValues", {"TimePeriod": cu["TimePeriod"],
                                         "Dimension": "SERVICE", "SearchString": "bedrock"}),
                 ("GetCostForecast", {"TimePeriod": {"Start": today.isoformat(),
                                                     "End": (today + 10 * ONE_DAY).isoformat()},
                                      "Metric": "UNBLENDED_COST", "Granularity": "DAILY"}),
                 ("ListCostAllocationTags", {})]
        bad_out = []
        for op, body in calls:
            st, _, d = ce(op, body)
            if st != 200 or not out_ok("ce", op, d):
                bad_out.append((op, st, output_report("ce", op, d or {})))
        check("model: the fake's ce answers match botocore's output shapes", not bad_out,
              "%r" % bad_out)

        # ListMetrics.
        st, _, doc = cw("ListMetrics", {"RecentlyActive": "PT3H"})
        names = {(m["MetricName"], tuple((x["Name"], x["Value"]) for x in m["Dimensions"]))
                 for m in doc.get("Metrics", [])} if st == 200 else set()
        check("cloudwatch: ListMetrics RecentlyActive PT3H lists the active metrics",
              st == 200 and out_ok("cloudwatch", "ListMetrics", doc) and
              ("InputTokens", (("Project", chatbot), ("Model", g120))) in names and
              ("TotalOutputTokens", (("Model", g120),)) in names and
              ("Inferences", (("Project", "default"),)) in names and
              not any(p == project_id_for(region, "FraudDetection-Staging")
                      for _, dims in names for _, p in dims), "%d metrics" % len(names))
        st, _, doc = cw("ListMetrics", {"Namespace": CW_NAMESPACE, "MetricName": "InputTokens",
                                        "Dimensions": [{"Name": "Project", "Value": chatbot},
                                                       {"Name": "Model"}]})
        ms = doc.get("Metrics", []) if st == 200 else []
        check("cloudwatch: ListMetrics with MetricName and DimensionFilters",
              len(ms) == 3 and all(m["Dimensions"][0] == {"Name": "Project", "Value": chatbot}
                                   for m in ms), "%r" % ms)
        st, _, doc = cw("ListMetrics", {"Namespace": "AWS/EC2"})
        st2, _, _ = cw("ListMetrics", {"RecentlyActive": "P1D"})
        check("cloudwatch: other namespace -> no metrics; RecentlyActive P1D -> 400",
              st == 200 and doc.get("Metrics") == [] and st2 == 400)
        c = counters("cloudwatch")
        check("cloudwatch: list_metrics_requests counter",
              c["list_metrics_requests"] == 4 and c["by_operation"]["ListMetrics"] == 4,
              "%r" % c)

        # Spikes.
        version = ctl("GET", "/_fake/ledger")[1]["version"]
        st, sp = ctl("POST", "/_fake/cloudwatch/spike",
                     {"region": region, "project": "CustomerChatbot-Prod", "factor": 10,
                      "since": d0})
        st2, after = ctl("GET", "/_fake/cloudwatch/spend?region=%s&date=%s"
                         % (region, yday.isoformat()))
        cba = after["projects"].get(chatbot, {})
        check("spike: factor 10 since yesterday 00:00 multiplies that project's spend",
              st == 201 and sp["project"] == chatbot and
              Decimal(cba.get("usd", "0")) == 10 * Decimal(cbt["usd"]) and
              cba["tokens"][g120]["input"] == 10 * want and
              after["projects"]["default"] == spend["projects"]["default"],
              "%r" % cba)
        st, _, doc = cw("GetMetricData", dict(req, MetricDataQueries=[
            query("tin", "TotalInputTokens", [("Project", chatbot)], 86400)]))
        check("spike: Total* metrics see it too; the ledger is unchanged",
              st == 200 and doc["MetricDataResults"][0]["Values"] == [10 * tin] and
              ctl("GET", "/_fake/ledger")[1]["version"] == version)
        st, lst = ctl("GET", "/_fake/cloudwatch/spike")
        st2, cl = ctl("DELETE", "/_fake/cloudwatch/spike")
        st3, back = ctl("GET", "/_fake/cloudwatch/spend?region=%s&date=%s"
                        % (region, yday.isoformat()))
        check("spike: listed, cleared by DELETE, spend back to before",
              len(lst["spikes"]) == 1 and cl == {"cleared": 1} and
              back["projects"] == spend["projects"])
        st, _ = ctl("POST", "/_fake/cloudwatch/spike", {"project": chatbot, "factor": 3})
        st2, now_sp = ctl("GET", "/_fake/cloudwatch/spend?region=%s&date=%s"
                          % (region, yday.isoformat()))
        check("spike: default since = now leaves past minutes alone",
              st == 201 and now_sp["projects"] == spend["projects"])
        ctl("DELETE", "/_fake/cloudwatch/spike")

        # Faults.
        ctl("POST", "/_fake/faults", [
            {"surface": "cloudwatch", "kind": "throttle", "operation": "GetMetricData"},
            {"surface": "cloudwatch", "kind": "wrong_types", "field": "values",
             "operation": "GetMetricData"},
            {"surface": "cloudwatch", "kind": "loop", "operation": "ListMetrics"}])
        st, h, d = cw("ListMetrics", {})
        st1, h1, d1 = cw("GetMetricData", req)
        st2, _, d2 = cw("GetMetricData", req)
        st3, _, d3 = cw("ListMetrics", {"NextToken": d.get("NextToken")})
        check("faults: throttle -> 400 Throttling; wrong_types values; loop token -> page 1",
              cw_error(st1, h1, d1, 400, "Throttling") and d1["message"] == "Rate exceeded" and
              st2 == 200 and isinstance(d2["MetricDataResults"][0]["Values"][0], str) and
              st == 200 and bool(d.get("NextToken")) and st3 == 200 and
              d3.get("Metrics") == d.get("Metrics"), "%r %r" % (st1, d1))
        st, _ = ctl("POST", "/_fake/reset")
        st, lst = ctl("GET", "/_fake/cloudwatch/spike")
        c = counters("cloudwatch")
        check("control: reset clears spikes and cloudwatch counters",
              lst["spikes"] == [] and c["metrics_requested"] == 0 and c["total"] == 0)
        st, cfg = ctl("GET", "/_fake/config")
        st2, rates = ctl("GET", "/_fake/cloudwatch/rates")
        check("control: /_fake/config lists /monitoring; rates table",
              cfg["surfaces"].get("cloudwatch") == ["/monitoring"] and
              rates["rates"][g120] == {"input": "0.15", "output": "0.60"})
    finally:
        stop_server(app, server, thread)


def _s3_xml(data):
    """(Code, {child: text}) of an S3 XML error body, or (None, {})."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None, {}
    if root.tag != "Error":
        return None, {}
    fields = {child.tag: child.text or "" for child in root}
    return fields.get("Code"), fields


def _self_test_s3(check):
    """S3 surface checks (run by self_test): botocore S3SigV4Auth and curl --aws-sigv4."""
    akid, secret = DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY
    app = FakeAWS(Config(quiet=True))
    server, thread = start_server(app)
    port = server.server_address[1]
    local = "127.0.0.1:%d" % port
    bucket = "bce-state"
    vhost = "%s.localhost:%d" % (bucket, port)
    try:
        def signed(method, path, body=b"", headers=None, host=local, creds=(akid, secret, None),
                   region="us-east-1", unsigned_payload=False, signer=S3SigV4Auth):
            """Headers of a request signed by botocore (S3SigV4Auth: x-amz-content-sha256
            is the body's sha256, or UNSIGNED-PAYLOAD, and signed)."""
            h = {"Host": host}
            h.update(headers or {})
            req = AWSRequest(method=method, url="http://%s%s" % (host, path), data=body,
                             headers=h)
            if unsigned_payload:
                req.context["client_config"] = BotocoreConfig(
                    s3={"payload_signing_enabled": False})
            signer(Credentials(*creds), "s3", region).add_auth(req)
            return dict(req.headers.items())

        def s3(method, path, body=b"", headers=None, send_body=None, **kw):
            hdrs = signed(method, path, body, headers, **kw)
            out = body if send_body is None else send_body
            st, rh, data = _http_call(port, method, path, hdrs,
                                      out if (out or method == "PUT") else None)
            return st, {k.lower(): v for k, v in rh.items()}, data

        def ctl(method, path, body=None):
            st, rh, data = _http_call(port, method, path, body=body)
            return st, {k.lower(): v for k, v in rh.items()}, data

        def counters():
            return json.loads(ctl("GET", "/_fake/requests?surface=s3")[2])["s3"]

        def q(key, b=bucket):
            return urllib.parse.urlencode({"bucket": b, "key": key})

        # -- round trips, path-style and virtual-hosted ---------------------------------
        body1 = b'{"format":"bedrock-cost-exporter-state","n":1}\n'
        etag1 = '"%s"' % hashlib.md5(body1).hexdigest()
        path1 = "/s3/%s/prod/shard-0/state.json" % bucket
        st, h, data = s3("PUT", path1, body1, {"Content-Type": "application/json"})
        check("s3: path-style PutObject (botocore S3SigV4Auth) -> 200 with the md5 ETag",
              st == 200 and h.get("etag") == etag1 and data == b"" and
              h.get("x-amz-request-id"), "%r %r %r" % (st, h, data))
        st, h, data = s3("GET", path1)
        lm = h.get("last-modified", "")
        try:
            lm_ok = email.utils.parsedate_to_datetime(lm).tzinfo is not None and \
                lm.endswith(" GMT")
        except (TypeError, ValueError):
            lm_ok = False
        check("s3: GetObject -> 200 with the body, ETag, Last-Modified, Content-Length, "
              "Content-Type as stored",
              st == 200 and data == body1 and h.get("etag") == etag1 and lm_ok and
              h.get("content-length") == str(len(body1)) and
              h.get("content-type") == "application/json", "%r %r %r" % (st, h, data))
        st, h, data = s3("HEAD", path1)
        check("s3: HeadObject -> 200, no body, Content-Length of the object",
              st == 200 and data == b"" and h.get("content-length") == str(len(body1)) and
              h.get("etag") == etag1, "%r %r" % (st, h))

        body2 = b"virtual-hosted \x00\xff bytes"
        etag2 = '"%s"' % hashlib.md5(body2).hexdigest()
        st, h, _ = s3("PUT", "/s3vh/vh/state.json", body2, host=vhost)
        check("s3: virtual-hosted PutObject (Host bce-state.localhost:PORT) -> 200",
              st == 200 and h.get("etag") == etag2, "%r %r" % (st, h))
        st, h, data = s3("GET", "/s3vh/vh/state.json", host=vhost)
        check("s3: virtual-hosted GetObject -> the body, default Content-Type",
              st == 200 and data == body2 and h.get("etag") == etag2 and
              h.get("content-type") == S3_DEFAULT_CONTENT_TYPE, "%r %r" % (st, h))
        st, h, data = s3("GET", "/s3/%s/vh/state.json" % bucket)
        check("s3: the virtual-hosted object is the path-style one",
              st == 200 and data == body2, "%r" % st)
        for bad_host in (local, "localhost:%d" % port, "%s.localhost:%d" % (bucket, port + 1),
                         "Upper.localhost:%d" % port):
            st, h, data = s3("GET", "/s3vh/vh/state.json", host=bad_host)
            check("s3: /s3vh with Host %s -> 400 InvalidRequest" % bad_host,
                  st == 400 and _s3_xml(data)[0] == "InvalidRequest" and
                  h.get("content-type") == "application/xml", "%r %r" % (st, data))

        st, h, data = s3("GET", "/s3/%s/no/such.json" % bucket)
        code, f = _s3_xml(data)
        check("s3: absent key -> 404 NoSuchKey XML with Key and RequestId",
              st == 404 and code == "NoSuchKey" and f.get("Key") == "no/such.json" and
              f.get("RequestId") and h.get("content-type") == "application/xml" and
              data.startswith(b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>'),
              "%r %r" % (st, data))
        st, _, data = s3("HEAD", "/s3/%s/no/such.json" % bucket)
        check("s3: HEAD of an absent key -> 404 without a body", st == 404 and data == b"")

        # percent-encoded key: S3's canonical URI is the path as sent (not encoded twice)
        enc_path = "/s3/%s/dir/a%%20b%%2Bc%%25%%C3%%A9.json" % bucket
        st, h, _ = s3("PUT", enc_path, b"enc")
        st2, _, data = ctl("GET", "/_fake/s3/object?" + q("dir/a b+c%\u00e9.json"))
        check("s3: a %XX-encoded key is decoded ('dir/a b+c%\u00e9.json')",
              st == 200 and st2 == 200 and data == b"enc", "%r %r" % (st, st2))
        st, h, data = s3("PUT", enc_path, b"enc", signer=SigV4Auth,
                         headers={"X-Amz-Content-SHA256": hashlib.sha256(b"enc").hexdigest()})
        check("s3: a generic SigV4 signature (path encoded twice) -> 403 "
              "SignatureDoesNotMatch", st == 403 and
              _s3_xml(data)[0] == "SignatureDoesNotMatch", "%r %r" % (st, data))

        # -- conditional GET ----------------------------------------------------------
        st, h, data = s3("GET", path1, headers={"If-None-Match": etag1})
        check("s3: GetObject If-None-Match: <etag> -> 304 with ETag, no body",
              st == 304 and data == b"" and h.get("etag") == etag1, "%r %r" % (st, h))
        st, h, data = s3("GET", path1, headers={"If-None-Match": "*"})
        check("s3: GetObject If-None-Match: * on an existing object -> 304", st == 304)
        st, _, data = s3("GET", path1, headers={"If-None-Match": '"0123"'})
        check("s3: GetObject If-None-Match: <other> -> 200", st == 200 and data == body1)
        st, _, data = s3("HEAD", path1, headers={"If-None-Match": etag1})
        check("s3: HeadObject If-None-Match: <etag> -> 304", st == 304)
        st, _, data = s3("GET", path1, headers={"If-Match": '"0123"'})
        code, f = _s3_xml(data)
        check("s3: GetObject If-Match: <other> -> 412 PreconditionFailed",
              st == 412 and code == "PreconditionFailed" and f.get("Condition") == "If-Match",
              "%r %r" % (st, data))
        st, _, data = s3("GET", path1, headers={"If-Match": etag1})
        check("s3: GetObject If-Match: <etag> -> 200", st == 200 and data == body1)

        # -- conditional PUT ----------------------------------------------------------
        st, _, data = s3("PUT", path1, b"x", {"If-None-Match": "*"})
        code, f = _s3_xml(data)
        check("s3: PutObject If-None-Match: * on an existing object -> 412",
              st == 412 and code == "PreconditionFailed" and
              f.get("Condition") == "If-None-Match", "%r %r" % (st, data))
        new_path = "/s3/%s/create/once.json" % bucket
        st, h, _ = s3("PUT", new_path, b"first", {"If-None-Match": "*"})
        check("s3: PutObject If-None-Match: * on an absent key -> 200", st == 200)
        st, _, data = s3("PUT", path1, b"x", {"If-None-Match": etag1})
        code, f = _s3_xml(data)
        check("s3: PutObject If-None-Match: <etag> -> 501 NotImplemented",
              st == 501 and code == "NotImplemented" and f.get("Header") == "If-None-Match",
              "%r %r" % (st, data))
        body3 = b'{"n":3}'
        etag3 = '"%s"' % hashlib.md5(body3).hexdigest()
        st, h, data = s3("PUT", path1, body3, {"If-Match": '"00000000000000000000000000000000"'})
        check("s3: PutObject If-Match: <stale> -> 412", st == 412 and
              _s3_xml(data)[1].get("Condition") == "If-Match", "%r %r" % (st, data))
        st, h, _ = s3("PUT", path1, body3, {"If-Match": etag1})
        check("s3: PutObject If-Match: <current> -> 200, new ETag",
              st == 200 and h.get("etag") == etag3, "%r %r" % (st, h))
        st, _, data = s3("PUT", "/s3/%s/absent.json" % bucket, b"x", {"If-Match": etag1})
        check("s3: PutObject If-Match on an absent key -> 404 NoSuchKey",
              st == 404 and _s3_xml(data)[0] == "NoSuchKey", "%r %r" % (st, data))
        st, _, _ = s3("GET", path1)
        st_old, _, data_old = s3("PUT", path1, b"y", {"If-Match": etag1})
        check("s3: PutObject If-Match with the ETag before the last write -> 412",
              st_old == 412, "%r" % st_old)

        # -- payload hash, signature, credentials ---------------------------------------
        st, _, data = s3("PUT", "/s3/%s/u.json" % bucket, b"unsigned", unsigned_payload=True)
        st2, _, data2 = ctl("GET", "/_fake/s3/object?" + q("u.json"))
        check("s3: x-amz-content-sha256: UNSIGNED-PAYLOAD -> 200",
              st == 200 and data2 == b"unsigned", "%r %r" % (st, data))
        st, _, data = s3("PUT", "/s3/%s/w.json" % bucket, b"signed body",
                         send_body=b"other body!")
        code, f = _s3_xml(data)
        check("s3: x-amz-content-sha256 of another body -> 400 XAmzContentSHA256Mismatch",
              st == 400 and code == "XAmzContentSHA256Mismatch" and
              f.get("S3ComputedContentSHA256") == hashlib.sha256(b"other body!").hexdigest(),
              "%r %r" % (st, data))
        hdrs = signed("PUT", "/s3/%s/w.json" % bucket, b"abc")
        hdrs["X-Amz-Content-SHA256"] = hdrs["X-Amz-Content-SHA256"].upper()
        st, _, data = _http_call(port, "PUT", "/s3/%s/w.json" % bucket, hdrs, b"abc")
        check("s3: upper-case hex x-amz-content-sha256 -> 400 XAmzContentSHA256Mismatch",
              st == 400 and _s3_xml(data)[0] == "XAmzContentSHA256Mismatch", "%r" % st)
        st, _, data = s3("PUT", "/s3/%s/w.json" % bucket, b"abc",
                         headers={"X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"},
                         signer=SigV4Auth)
        check("s3: x-amz-content-sha256 neither a sha256 nor UNSIGNED-PAYLOAD -> 400 "
              "InvalidArgument", st == 400 and _s3_xml(data)[0] == "InvalidArgument",
              "%r %r" % (st, data))
        st, _, data = s3("GET", path1, signer=SigV4Auth)
        check("s3: no x-amz-content-sha256 -> 400 InvalidRequest",
              st == 400 and _s3_xml(data)[0] == "InvalidRequest" and
              b"x-amz-content-sha256" in data, "%r %r" % (st, data))
        hdrs = signed("GET", path1, signer=SigV4Auth)
        hdrs["x-amz-content-sha256"] = EMPTY_SHA256
        st, _, data = _http_call(port, "GET", path1, hdrs)
        code, f = _s3_xml(data)
        check("s3: x-amz-content-sha256 not signed -> 403 AccessDenied HeadersNotSigned",
              st == 403 and code == "AccessDenied" and
              f.get("HeadersNotSigned") == "x-amz-content-sha256", "%r %r" % (st, data))
        hdrs = signed("GET", path1)
        sig = hdrs["Authorization"]
        hdrs["Authorization"] = sig[:-1] + ("0" if sig[-1] != "0" else "1")
        st, h, data = _http_call(port, "GET", path1, hdrs)
        code, f = _s3_xml(data)
        check("s3: bad signature -> 403 SignatureDoesNotMatch XML with the canonical request",
              st == 403 and code == "SignatureDoesNotMatch" and
              f.get("CanonicalRequest", "").startswith("GET\n%s\n" % path1) and
              h.get("Content-Type") == "application/xml" and
              h.get("X-Fake-Auth-Error") == "signature mismatch", "%r %r" % (st, data))
        st, _, data = s3("GET", path1, creds=(akid, "wrong-secret", None))
        check("s3: wrong secret -> 403 SignatureDoesNotMatch",
              st == 403 and _s3_xml(data)[0] == "SignatureDoesNotMatch")
        st, _, data = s3("GET", path1, creds=("AKIDUNKNOWN", secret, None))
        check("s3: unknown access key -> 403 InvalidAccessKeyId",
              st == 403 and _s3_xml(data)[0] == "InvalidAccessKeyId", "%r %r" % (st, data))
        st, _, data = _http_call(port, "GET", path1, {"x-amz-content-sha256": EMPTY_SHA256})
        check("s3: no Authorization -> 403 AccessDenied",
              st == 403 and _s3_xml(data)[0] == "AccessDenied", "%r %r" % (st, data))
        hdrs = signed("GET", path1)
        hdrs["Authorization"] = hdrs["Authorization"].replace("/s3/aws4_request",
                                                              "/ce/aws4_request")
        st, _, data = _http_call(port, "GET", path1, hdrs)
        check("s3: credential scope of another service -> 400 AuthorizationHeaderMalformed",
              st == 400 and _s3_xml(data)[0] == "AuthorizationHeaderMalformed",
              "%r %r" % (st, data))
        st, _, data = s3("GET", path1, region="eu-central-1")
        check("s3: any region name in the credential scope -> 200", st == 200)
        st, _, data = s3("GET", path1, region="nowhere")
        check("s3: a scope region that is no region name -> 400 AuthorizationHeaderMalformed",
              st == 400 and _s3_xml(data)[0] == "AuthorizationHeaderMalformed")
        tmp = app.issue_credentials("sts", 3600)
        tcreds = (tmp["AccessKeyId"], tmp["SecretAccessKey"], tmp["SessionToken"])
        st, _, data = s3("GET", path1, creds=tcreds)
        check("s3: temporary credentials (session token signed) -> 200", st == 200)
        st, _, data = s3("GET", path1, creds=(tcreds[0], tcreds[1], None))
        check("s3: temporary credentials without their token -> 400 InvalidToken",
              st == 400 and _s3_xml(data)[0] == "InvalidToken", "%r %r" % (st, data))
        app.expire_credentials()
        st, h, data = s3("GET", path1, creds=tcreds)
        check("s3: expired temporary credentials -> 400 ExpiredToken",
              st == 400 and _s3_xml(data)[0] == "ExpiredToken" and
              "expired" in h.get("x-fake-auth-error", ""), "%r %r" % (st, data))

        # -- routing errors -------------------------------------------------------------
        for method, path, want in (("DELETE", path1, (405, "MethodNotAllowed")),
                                   ("GET", "/s3/Bad_Bucket/k", (400, "InvalidBucketName")),
                                   ("GET", "/s3/%s/" % bucket, (400, "InvalidRequest")),
                                   ("GET", path1 + "?acl", (501, "NotImplemented")),
                                   ("GET", "/s3/%s/bad%%ff" % bucket, (400, "InvalidURI"))):
            st, _, data = s3(method, path)
            check("s3: %s %s -> %d %s" % (method, path, want[0], want[1]),
                  (st, _s3_xml(data)[0]) == want, "%r %r" % (st, data))
        st, _, data = s3("GET", path1 + "?x-id=GetObject")
        check("s3: ?x-id=GetObject (botocore's hint) is accepted", st == 200)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(("PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n"
                          % (path1, local, MAX_REQUEST_BODY + 1)).encode())
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            data = resp.read()
        code, f = _s3_xml(data)
        check("s3: a body over 64 MiB -> 413 EntityTooLarge (body left unread)",
              resp.status == 413 and code == "EntityTooLarge" and
              f.get("ProposedSize") == str(MAX_REQUEST_BODY + 1), "%r %r" % (resp.status,
                                                                            data))

        # -- racing conditional writes: exactly one wins ----------------------------------
        race_path = "/s3/%s/race.json" % bucket
        s3("PUT", race_path, b"base")
        rounds, bad = 25, []
        for i in range(rounds):
            st, h, _ = s3("GET", race_path)
            cur = h.get("etag")
            barrier = threading.Barrier(2)
            results = [None, None]
            prepared = [signed("PUT", race_path, b"replica-%d-%d" % (i, n), {"If-Match": cur})
                        for n in (0, 1)]

            def put(n):
                barrier.wait()
                results[n] = _http_call(port, "PUT", race_path, prepared[n],
                                        b"replica-%d-%d" % (i, n))[0]
            ts = [threading.Thread(target=put, args=(n,)) for n in (0, 1)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(10)
            if sorted(results) != [200, 412]:
                bad.append(results)
        check("s3: two racing PutObjects with the same If-Match: exactly one 200, one 412 "
              "(%d rounds)" % rounds, not bad, "%r" % bad)
        bad = []
        for i in range(rounds):
            p = "/s3/%s/create-race-%d.json" % (bucket, i)
            prepared = [signed("PUT", p, b"c%d" % n, {"If-None-Match": "*"}) for n in (0, 1)]
            barrier, results = threading.Barrier(2), [None, None]

            def create(n):
                barrier.wait()
                results[n] = _http_call(port, "PUT", p, prepared[n], b"c%d" % n)[0]
            ts = [threading.Thread(target=create, args=(n,)) for n in (0, 1)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(10)
            if sorted(results) != [200, 412]:
                bad.append(results)
        check("s3: two racing If-None-Match: * creates: exactly one 200 (%d rounds)" % rounds,
              not bad, "%r" % bad)

        # -- counters and log ----------------------------------------------------------------
        ctl("POST", "/_fake/requests/reset")
        s3("GET", path1, headers={"If-None-Match": etag3})
        s3("GET", path1, headers={"If-None-Match": etag3})
        s3("HEAD", path1, headers={"If-None-Match": "*"})
        s3("GET", path1, headers={"If-Match": etag1})
        s3("PUT", path1, b"z", {"If-Match": etag1})
        s3("PUT", path1, b"z", {"If-None-Match": "*"})
        s3("GET", path1)
        c = counters()
        check("s3: counters not_modified / precondition_failed per operation",
              c["not_modified"] == {"GetObject": 2, "HeadObject": 1, "PutObject": 0} and
              c["precondition_failed"] == {"GetObject": 1, "HeadObject": 0, "PutObject": 2} and
              c["by_operation"] == {"GetObject": 4, "HeadObject": 1, "PutObject": 2} and
              c["by_operation_status"]["GetObject"] == {"304": 2, "412": 1, "200": 1} and
              c["by_status"] == {"304": 3, "412": 3, "200": 1} and
              c["total"] == 7 and c["auth"]["sigv4"] == 7, "%r" % c)
        log_entries = json.loads(ctl("GET", "/_fake/requests/log?surface=s3")[2])["requests"]
        e = log_entries[0] if log_entries else {}
        check("s3: log entries carry operation, bucket, key, style, region, conditions, etag",
              len(log_entries) == 7 and e.get("operation") == "GetObject" and
              e.get("bucket") == bucket and e.get("key") == "prod/shard-0/state.json" and
              e.get("style") == "path" and e.get("region") == "us-east-1" and
              e.get("if_none_match") == etag3 and e.get("etag") == etag3 and
              e.get("status") == 304, "%r" % e)

        # -- control endpoints ----------------------------------------------------------------
        other = b'{"written_by":"another replica"}'
        st, h, data = ctl("PUT", "/_fake/s3/object?" + q("prod/shard-0/state.json"), other)
        doc = json.loads(data)
        check("s3: PUT /_fake/s3/object stores another writer's body, answers its ETag",
              st == 200 and doc == {"etag": '"%s"' % hashlib.md5(other).hexdigest()},
              "%r %r" % (st, data))
        st, _, _ = s3("PUT", path1, b"stale write", {"If-Match": etag3})
        check("s3: a write over the ETag the other writer replaced -> 412", st == 412)
        st, h, data = s3("GET", path1, headers={"If-None-Match": etag3})
        check("s3: a GET with the old ETag sees the other writer's object",
              st == 200 and data == other and h.get("etag") == doc["etag"], "%r" % st)
        st, h, data = ctl("GET", "/_fake/s3/object?" + q("prod/shard-0/state.json"))
        check("s3: GET /_fake/s3/object -> the body with its ETag",
              st == 200 and data == other and h.get("etag") == doc["etag"], "%r" % st)
        st, _, data = ctl("DELETE", "/_fake/s3/object?" + q("prod/shard-0/state.json"))
        st2, _, _ = ctl("GET", "/_fake/s3/object?" + q("prod/shard-0/state.json"))
        st3, _, data3 = s3("GET", path1)
        check("s3: DELETE /_fake/s3/object removes it (control GET 404, GetObject NoSuchKey)",
              st == 200 and json.loads(data) == {"deleted": True} and st2 == 404 and
              st3 == 404 and _s3_xml(data3)[0] == "NoSuchKey", "%r %r %r" % (st, st2, st3))
        st, _, _ = ctl("GET", "/_fake/s3/object?bucket=x&key=k")
        check("s3: control endpoint with a bad bucket -> 400", st == 400)
        st, _, data = ctl("GET", "/_fake/s3/objects?bucket=" + bucket)
        check("s3: GET /_fake/s3/objects lists the objects",
              st == 200 and any(o["key"] == "vh/state.json" and o["size"] == len(body2)
                                for o in json.loads(data)["objects"]), "%r" % data[:300])
        c = counters()
        check("s3: control requests are not counted", c["total"] == 10, "%r" % c["total"])

        # -- faults ---------------------------------------------------------------------------
        def fault(spec):
            return ctl("POST", "/_fake/faults", json.dumps(dict(spec, surface="s3")).encode())
        fault({"kind": "throttle", "operation": "PutObject", "retry_after": 2})
        st_get, _, _ = s3("GET", "/s3/%s/vh/state.json" % bucket)
        st, h, data = s3("PUT", "/s3/%s/f.json" % bucket, b"f")
        check("s3: throttle fault (operation PutObject) -> 503 SlowDown, GET unaffected",
              st_get == 200 and st == 503 and _s3_xml(data)[0] == "SlowDown" and
              h.get("retry-after") == "2", "%r %r %r" % (st_get, st, data))
        fault({"kind": "server_error", "operation": "GetObject"})
        st, _, data = s3("GET", "/s3/%s/vh/state.json" % bucket)
        check("s3: server_error fault -> 500 InternalError",
              st == 500 and _s3_xml(data)[0] == "InternalError", "%r %r" % (st, data))
        fault({"kind": "server_error", "status": 503})
        st, _, data = s3("HEAD", "/s3/%s/vh/state.json" % bucket)
        check("s3: server_error 503 on HEAD -> 503, no body", st == 503 and data == b"")
        for kind, want in (("auth", (403, "InvalidAccessKeyId")),
                           ("expired_token", (400, "ExpiredToken")),
                           ("access_denied", (403, "AccessDenied"))):
            fault({"kind": kind})
            st, _, data = s3("GET", "/s3/%s/vh/state.json" % bucket)
            check("s3: %s fault -> %d %s" % (kind, want[0], want[1]),
                  (st, _s3_xml(data)[0]) == want, "%r %r" % (st, data))
        fault({"kind": "malformed", "operation": "GetObject"})
        st, h, data = s3("GET", "/s3/%s/vh/state.json" % bucket)
        check("s3: malformed fault on GetObject -> 200 with half the body",
              st == 200 and data == body2[:len(body2) // 2] and h.get("etag") == etag2,
              "%r %r" % (st, data))
        fault({"kind": "slow", "seconds": 0.3, "operation": "HeadObject"})
        t0 = time.time()
        st, _, _ = s3("HEAD", "/s3/%s/vh/state.json" % bucket)
        check("s3: slow fault delays HeadObject", st == 200 and time.time() - t0 >= 0.3)
        st, _, data = fault({"kind": "throttle", "operation": "ListObjects"})
        check("s3: a fault for an unknown operation -> 400", st == 400, "%r" % data)
        st, _, data = fault({"kind": "wrong_types"})
        check("s3: a fault kind S3 does not serve -> 400", st == 400, "%r" % data)
        st, _, data = fault({"kind": "loop", "operation": "GetObject"})
        check("s3: loop for an operation other than ListObjectsV2 -> 400", st == 400,
              "%r" % data)
        st, _, data = ctl("GET", "/_fake/faults?surface=s3")
        check("s3: every fault used up", st == 200 and json.loads(data)["faults"] == [],
              "%r" % data)
        c = counters()
        check("s3: faulted answers counted per operation",
              c["by_operation_status"]["PutObject"].get("503") == 1 and
              c["by_operation_status"]["GetObject"].get("500") == 1, "%r" % c)

        _self_test_s3_curl(check, port, bucket)
        st, _, data = ctl("GET", "/_fake/config")
        check("s3: /_fake/config lists the s3 prefixes",
              json.loads(data)["surfaces"].get("s3") == ["/s3/", "/s3vh/"], "%r" % data)
        ctl("POST", "/_fake/reset")
        st, _, _ = ctl("GET", "/_fake/s3/object?" + q("vh/state.json"))
        check("s3: /_fake/reset forgets the objects", st == 404)
    finally:
        stop_server(app, server, thread)


CURL = "/usr/bin/curl"


def _self_test_s3_curl(check, port, bucket):
    """libcurl's own SigV4 (curl --aws-sigv4 "aws:amz:us-east-1:s3") against the
    verifier: PUT, GET with If-None-Match -> 304, path-style and virtual-hosted."""
    if not os.access(CURL, os.X_OK):
        print("skip s3: %s not found, curl --aws-sigv4 not checked" % CURL)
        return
    import tempfile
    akid, secret = DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY
    body = b'{"format":"bedrock-cost-exporter-state","by":"curl"}\n'
    sha = hashlib.sha256(body).hexdigest()
    etag = '"%s"' % hashlib.md5(body).hexdigest()
    with tempfile.TemporaryDirectory(prefix="fake_aws_s3_") as tmp:
        src = os.path.join(tmp, "body.json")
        with open(src, "wb") as fh:
            fh.write(body)

        def curl(url, *args):
            out, hdr = os.path.join(tmp, "out"), os.path.join(tmp, "hdr")
            for name in (out, hdr):          # curl leaves -o alone when there is no body
                if os.path.exists(name):
                    os.unlink(name)
            cmd = [CURL, "-q", "--noproxy", "*", "-sS", "--max-time", "10",
                   "-o", out, "-D", hdr, "-w", "%{http_code}",
                   "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", "%s:%s" % (akid, secret)]
            cmd += list(args) + [url]
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  timeout=20)
            data = b""
            if os.path.exists(out):
                with open(out, "rb") as fh:
                    data = fh.read()
            with open(hdr, "rb") as fh:
                headers = {}
                for line in fh.read().decode("latin-1").split("\r\n")[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
            return proc.stdout.decode().strip(), headers, data, proc.stderr.decode()

        for style, base in (("path-style", "http://127.0.0.1:%d/s3/%s" % (port, bucket)),
                            ("virtual-hosted", "http://%s.localhost:%d/s3vh" % (bucket,
                                                                                port))):
            url = base + "/curl/%s/some/key.json" % style
            st, h, data, err = curl(url, "-H", "x-amz-content-sha256: " + sha, "-X", "PUT",
                                    "--data-binary", "@" + src)
            check("s3: curl --aws-sigv4 %s PUT -> 200 with the md5 ETag" % style,
                  st == "200" and h.get("etag") == etag, "%r %r %r %r" % (st, h, data, err))
            st, h, data, err = curl(url, "-H", "x-amz-content-sha256: " + EMPTY_SHA256)
            check("s3: curl --aws-sigv4 %s GET -> 200 with the body" % style,
                  st == "200" and data == body, "%r %r %r" % (st, data, err))
            st, h, data, err = curl(url, "-H", "x-amz-content-sha256: " + EMPTY_SHA256,
                                    "-H", "If-None-Match: " + etag)
            check("s3: curl --aws-sigv4 %s GET If-None-Match: <etag> -> 304" % style,
                  st == "304" and data == b"" and h.get("etag") == etag,
                  "%r %r %r" % (st, data, err))
            st, h, data, err = curl(url, "-H", "x-amz-content-sha256: " + sha, "-X", "PUT",
                                    "-H", "If-Match: " + etag, "--data-binary", "@" + src)
            check("s3: curl --aws-sigv4 %s conditional PUT If-Match: <etag> -> 200" % style,
                  st == "200", "%r %r %r" % (st, data, err))
            st, h, data, err = curl(url, "-H", "x-amz-content-sha256: " + sha, "-X", "PUT",
                                    "-H", "If-None-Match: *", "--data-binary", "@" + src)
            check("s3: curl --aws-sigv4 %s PUT If-None-Match: * on it -> 412" % style,
                  st == "412" and _s3_xml(data)[0] == "PreconditionFailed",
                  "%r %r %r" % (st, data, err))
        st, h, data, err = curl("http://127.0.0.1:%d/s3/%s/curl/unsigned.json" % (port, bucket),
                                "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-X", "PUT",
                                "--data-binary", "@" + src)
        check("s3: curl --aws-sigv4 PUT x-amz-content-sha256: UNSIGNED-PAYLOAD -> 200 (curl "
              "signs the header's value as the payload hash)", st == "200",
              "%r %r %r" % (st, data, err))
        st, h, data, err = curl("http://127.0.0.1:%d/s3/%s/curl/no-sha.json" % (port, bucket))
        check("s3: curl 7.88 --aws-sigv4 adds no x-amz-content-sha256 itself -> 400 "
              "InvalidRequest", st == "400" and _s3_xml(data)[0] == "InvalidRequest",
              "%r %r %r" % (st, data, err))


def _s3_call(port, method, path, host=None, creds=None, region="us-east-1", headers=None,
             body=b"", sign_path=None):
    """A request signed by botocore's S3SigV4Auth (sign_path: sign this path+query instead
    of the one sent). Returns (status, {lower-case header: value}, body)."""
    host = host or "127.0.0.1:%d" % port
    creds = creds or (DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY, None)
    h = {"Host": host}
    h.update(headers or {})
    req = AWSRequest(method=method, url="http://%s%s" % (host, sign_path or path), data=body,
                     headers=h)
    S3SigV4Auth(Credentials(*creds), "s3", region).add_auth(req)
    st, rh, data = _http_call(port, method, path, dict(req.headers.items()),
                              body if (body or method == "PUT") else None)
    return st, {k.lower(): v for k, v in rh.items()}, data


def _s3_list_query(prefix=None, token=None, extra=()):
    """A ListObjectsV2 query as the exporter sends it: names sorted, every byte but
    A-Z a-z 0-9 - _ . ~ percent-encoded."""
    q = [("list-type", "2")] + list(extra)
    if prefix is not None:
        q.append(("prefix", prefix))
    if token is not None:
        q.append(("continuation-token", token))
    return s3_canonical_query(sorted(q))


def _s3_list_doc(data):
    """{"Name",...,"Contents":[{Key,LastModified,ETag,Size,StorageClass}],"CommonPrefixes"}
    of a ListBucketResult (ElementTree), or None."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None
    ns = "{%s}" % S3_XMLNS
    if root.tag != ns + "ListBucketResult":
        return None
    out = {"Contents": [], "CommonPrefixes": []}
    for el in root:
        tag = el.tag[len(ns):]
        if tag == "Contents":
            out["Contents"].append({c.tag[len(ns):]: c.text or "" for c in el})
        elif tag == "CommonPrefixes":
            out["CommonPrefixes"].append(el.find(ns + "Prefix").text)
        else:
            out[tag] = el.text or ""
    return out


def _s3_list_all(port, base, prefix, host=None, extra=(), max_pages=100):
    """Follows ListObjectsV2 pages from base ("/s3/bucket" or "/s3vh"): (keys, pages
    [(status, doc)], tokens sent)."""
    keys, pages, tokens, token = [], [], [], None
    for _ in range(max_pages):
        st, _, data = _s3_call(port, "GET", base + "/?" + _s3_list_query(prefix, token, extra),
                               host=host)
        doc = _s3_list_doc(data) if st == 200 else None
        pages.append((st, doc))
        if doc is None:
            break
        keys += [c["Key"] for c in doc["Contents"]]
        if doc.get("IsTruncated") != "true":
            break
        token = doc.get("NextContinuationToken")
        tokens.append(token)
    return keys, pages, tokens


def _self_test_s3_list(check):
    """ListObjectsV2 checks (run by self_test): botocore's own client and paginator,
    signed raw requests in both addressing styles, pagination by the page size option,
    the XML against botocore's parser, errors and faults."""
    app = FakeAWS(Config(quiet=True, s3_list_page_size=3))
    server, thread = start_server(app)
    port = server.server_address[1]
    bucket = "list-bucket"
    vhost = "%s.localhost:%d" % (bucket, port)
    try:
        def ctl(method, path, body=None):
            st, _, data = _http_call(port, method, path, body=body)
            return st, data

        keys = ["a/b c+d=e/%02d.json" % i for i in range(7)] + \
            ["a/x/y.json", "a/x/z.json", "a/\u00e9t\u00e9.txt", "b/one", "top"]
        for k in keys:
            ctl("PUT", "/_fake/s3/object?" + urllib.parse.urlencode({"bucket": bucket,
                                                                       "key": k}),
                k.encode("utf-8"))
        want = sorted(keys, key=lambda k: k.encode("utf-8"))
        want_a = [k for k in want if k.startswith("a/")]

        # botocore's own client (path-style, encoding-type=url, its paginator)
        client = botocore.session.get_session().create_client(
            "s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:%d/s3" % port,
            aws_access_key_id=DEFAULT_ACCESS_KEY_ID,
            aws_secret_access_key=DEFAULT_SECRET_ACCESS_KEY,
            config=BotocoreConfig(s3={"addressing_style": "path"},
                                  retries={"max_attempts": 1}))
        got, sizes = [], []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                      Prefix="a/"):
            got += [c["Key"] for c in page.get("Contents", [])]
            sizes.append(page["KeyCount"])
        check("s3 list: botocore's client and paginator (path-style, encoding-type=url) "
              "list every key once, in order, 3 per page (--s3-list-page-size 3)",
              got == want_a and max(sizes) == 3 and len(sizes) == 4, "%r %r" % (got, sizes))
        r = client.list_objects_v2(Bucket=bucket, Delimiter="/", Prefix="a/")
        check("s3 list: botocore Delimiter -> CommonPrefixes",
              [c["Prefix"] for c in r.get("CommonPrefixes", [])] == ["a/b c+d=e/", "a/x/"] and
              [c["Key"] for c in r.get("Contents", [])] == ["a/\u00e9t\u00e9.txt"],
              "%r" % r)

        # signed raw requests, as the exporter sends them
        for style, base, host in (("path-style", "/s3/%s" % bucket, None),
                                  ("virtual-hosted", "/s3vh", vhost)):
            got, pages, tokens = _s3_list_all(port, base, "a/", host=host)
            docs = [d for _, d in pages]
            check("s3 list: %s, sorted encoded query: every key once in order, pages of 3"
                  % style, got == want_a and len(pages) == 4 and
                  all(st == 200 for st, _ in pages) and
                  [d["KeyCount"] for d in docs] == ["3", "3", "3", "1"], "%r %r" % (got, pages))
            d0, dl = docs[0], docs[-1]
            check("s3 list: %s page fields (Name, Prefix, MaxKeys 1000, IsTruncated, "
                  "NextContinuationToken only when truncated, ContinuationToken echoed)" % style,
                  d0["Name"] == bucket and d0["Prefix"] == "a/" and d0["MaxKeys"] == "1000" and
                  d0["IsTruncated"] == "true" and d0.get("NextContinuationToken") and
                  "ContinuationToken" not in d0 and dl["IsTruncated"] == "false" and
                  "NextContinuationToken" not in dl and
                  dl.get("ContinuationToken") == tokens[-1], "%r %r" % (d0, dl))
            c = d0["Contents"][0]
            obj = app.s3_objects[(bucket, c["Key"])]
            check("s3 list: %s <Contents>: Key, LastModified (…T…000Z), ETag with quotes, "
                  "Size, StorageClass" % style,
                  re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", c["LastModified"])
                  and c["ETag"] == obj.etag and c["Size"] == str(len(obj.body)) and
                  c["StorageClass"] == "STANDARD", "%r" % c)
            check("s3 list: %s tokens hold '+', '/' and '=' (sent URI-encoded)" % style,
                  all(set("+/=") <= set(t) for t in tokens), "%r" % tokens)
        st, h, data = _s3_call(port, "GET", "/s3/%s?%s" % (bucket, _s3_list_query("a/")))
        check("s3 list: /s3/{bucket}?list-type=2 (no slash) is ListObjectsV2 too",
              st == 200 and h.get("content-type") == "application/xml" and
              _s3_list_doc(data)["KeyCount"] == "3", "%r %r" % (st, data[:200]))
        parsed = RestXMLParser().parse(
            {"body": data, "headers": h, "status_code": 200},
            botocore_operation_model("s3", "ListObjectsV2").output_shape)
        check("s3 list: botocore's RestXMLParser reads the page (output shape)",
              parsed.get("Name") == bucket and parsed.get("KeyCount") == 3 and
              parsed.get("IsTruncated") is True and len(parsed.get("Contents", [])) == 3 and
              parsed["Contents"][0]["ETag"] == app.s3_objects[(bucket, want_a[0])].etag,
              "%r" % parsed)
        check("s3 list: the XML is namespaced and escapes the ETag quotes",
              data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>') and
              ('<ListBucketResult xmlns="%s">' % S3_XMLNS).encode() in data and
              b"<ETag>&quot;" in data, "%r" % data[:300])

        # the page size: PUT /_fake/config, max-keys
        st, data = ctl("PUT", "/_fake/config", b'{"s3_list_page_size": 2}')
        cfg = json.loads(data)
        got, pages, _ = _s3_list_all(port, "/s3/" + bucket, "")
        check("s3 list: PUT /_fake/config s3_list_page_size 2 -> pages of 2",
              st == 200 and cfg["s3_list_page_size"] == 2 and got == want and
              len(pages) == (len(want) + 1) // 2, "%r %r" % (st, len(pages)))
        got, pages, _ = _s3_list_all(port, "/s3/" + bucket, "a/",
                                     extra=[("max-keys", "1")])
        check("s3 list: max-keys=1 -> pages of 1, MaxKeys 1",
              got == want_a and len(pages) == len(want_a) and
              pages[0][1]["MaxKeys"] == "1", "%r" % len(pages))
        st, _, data = _s3_call(port, "GET", "/s3/%s/?%s" % (
            bucket, _s3_list_query("", extra=[("max-keys", "5000")])))
        d = _s3_list_doc(data)
        check("s3 list: max-keys=5000 -> MaxKeys 1000 (S3's cap), the page size still 2",
              st == 200 and d["MaxKeys"] == "1000" and d["KeyCount"] == "2", "%r" % d)
        st, _, data = _s3_call(port, "GET", "/s3/%s/?%s" % (
            bucket, _s3_list_query("", extra=[("max-keys", "0")])))
        d = _s3_list_doc(data)
        check("s3 list: max-keys=0 -> no key, not truncated",
              st == 200 and d["KeyCount"] == "0" and d["IsTruncated"] == "false", "%r" % d)
        ctl("PUT", "/_fake/config", b'{"s3_list_page_size": 1000}')
        st, _, data = _s3_call(port, "GET", "/s3/%s/?%s" % (
            bucket, _s3_list_query("a/", extra=[("start-after", "a/x/y.json")])))
        d = _s3_list_doc(data)
        check("s3 list: start-after", st == 200 and
              [c["Key"] for c in d["Contents"]] == ["a/x/z.json", "a/\u00e9t\u00e9.txt"],
              "%r" % d)
        st, _, data = _s3_call(port, "GET", "/s3/%s/?%s" % (
            bucket, _s3_list_query("zzz/")))
        d = _s3_list_doc(data)
        check("s3 list: a prefix with no key -> 200, KeyCount 0", st == 200 and
              d["KeyCount"] == "0" and d["Contents"] == [], "%r %r" % (st, data))
        st, _, data = _s3_call(port, "GET", "/s3/no-such-bucket/?" + _s3_list_query("a/"))
        code, f = _s3_xml(data)
        check("s3 list: a bucket with no object -> 404 NoSuchBucket with BucketName",
              st == 404 and code == "NoSuchBucket" and f.get("BucketName") == "no-such-bucket",
              "%r %r" % (st, data))

        # the query: canonical form, model, errors
        raw = "/s3/%s/?list-type=2&prefix=a/x/" % bucket
        st, _, data = _s3_call(port, "GET", raw)
        check("s3 list: a query signed with '/' unencoded -> 403 SignatureDoesNotMatch (S3 "
              "signs the canonical, encoded form)",
              st == 403 and _s3_xml(data)[0] == "SignatureDoesNotMatch", "%r %r" % (st, data))
        st, _, data = _s3_call(port, "GET", raw, sign_path="/s3/%s/?list-type=2&prefix=a%%2Fx%%2F"
                               % bucket)
        check("s3 list: the same query signed in its canonical form -> 200 (S3 decodes and "
              "re-encodes it)", st == 200 and len(_s3_list_doc(data)["Contents"]) == 2,
              "%r %r" % (st, data))
        good = "/s3/%s/?%s" % (bucket, _s3_list_query("a/"))
        st, _, data = _s3_call(port, "GET", good.replace("prefix=a", "prefix=b"),
                               sign_path=good)
        check("s3 list: the prefix changed after signing -> 403 SignatureDoesNotMatch",
              st == 403 and _s3_xml(data)[0] == "SignatureDoesNotMatch", "%r" % st)
        st, _, data = _s3_call(port, "GET", "/s3/%s/?list-type=2&prefix=a+b" % bucket,
                               sign_path="/s3/%s/?list-type=2&prefix=a%%20b" % bucket)
        check("s3 list: '+' in the query is a space (signed as %20)", st == 200, "%r" % st)
        for query, arg in (("list-type=2&marker=x", "marker"),
                           ("list-type=2&prefix=a&prefix=b", "prefix"),
                           ("list-type=2&max-keys=ten", "max-keys"),
                           ("list-type=2&max-keys=-1", "maxKeys"),
                           ("list-type=2&encoding-type=xml", "encoding-type"),
                           ("list-type=2&fetch-owner=yes", "fetch-owner"),
                           ("list-type=1", "list-type"),
                           ("continuation-token=bm90LWEtdG9rZW4%3D&list-type=2",
                            "continuation-token")):
            st, _, data = _s3_call(port, "GET", "/s3/%s/?%s" % (bucket, query))
            code, f = _s3_xml(data)
            check("s3 list: ?%s -> 400 InvalidArgument (%s)" % (query, arg),
                  st == 400 and code == "InvalidArgument" and f.get("ArgumentName") == arg,
                  "%r %r" % (st, data))
        st, _, data = _s3_call(port, "GET", "/s3/%s/" % bucket)
        check("s3 list: GET on the bucket without list-type -> 400 InvalidRequest",
              st == 400 and _s3_xml(data)[0] == "InvalidRequest", "%r" % st)
        st, _, data = _s3_call(port, "GET", "/s3/%s/?%s" % (
            bucket, _s3_list_query("a/", extra=[("fetch-owner", "true"), ("x-id",
                                                                          "ListObjectsV2")])))
        check("s3 list: fetch-owner=true adds <Owner>; x-id=ListObjectsV2 accepted",
              st == 200 and b"<Owner><ID>" in data, "%r %r" % (st, data[:200]))
        st, _, data = _http_call(port, "GET", "/s3/%s/?%s" % (bucket, _s3_list_query("a/")),
                                 {"x-amz-content-sha256": EMPTY_SHA256})
        check("s3 list: unsigned -> 403 AccessDenied", st == 403 and
              _s3_xml(data)[0] == "AccessDenied", "%r" % st)

        # faults
        def fault(spec):
            return ctl("POST", "/_fake/faults",
                       json.dumps(dict(spec, surface="s3")).encode())[0]
        path = "/s3/%s/?%s" % (bucket, _s3_list_query("a/"))
        fault({"kind": "throttle", "operation": "ListObjectsV2"})
        st_get, _, _ = _s3_call(port, "GET", "/s3/%s/top" % bucket)
        st, _, data = _s3_call(port, "GET", path)
        check("s3 list: throttle (operation ListObjectsV2) -> 503 SlowDown, GetObject not "
              "hit", st_get == 200 and st == 503 and _s3_xml(data)[0] == "SlowDown",
              "%r %r" % (st_get, st))
        ctl("PUT", "/_fake/config", b'{"s3_list_page_size": 3}')
        fault({"kind": "loop", "count": 2})
        st1, _, d1 = _s3_call(port, "GET", "/s3/%s/top" % bucket)
        st1, _, d1 = _s3_call(port, "GET", path)
        t1 = _s3_list_doc(d1).get("NextContinuationToken")
        st2, _, d2 = _s3_call(port, "GET", "/s3/%s/?%s" % (bucket, _s3_list_query("a/", t1)))
        doc2 = _s3_list_doc(d2)
        check("s3 list: loop -> the first page again, truncated, with the same "
              "NextContinuationToken (GetObject passes it by)",
              st1 == st2 == 200 and t1 and doc2.get("NextContinuationToken") == t1 and
              doc2["IsTruncated"] == "true" and doc2["Contents"][0]["Key"] == want_a[0],
              "%r %r" % (t1, doc2))
        fault({"kind": "malformed", "operation": "ListObjectsV2"})
        st, h, data = _s3_call(port, "GET", path)
        check("s3 list: malformed -> 200 with cut-off XML",
              st == 200 and _s3_list_doc(data) is None and data.startswith(b"<?xml") and
              h.get("content-type") == "application/xml", "%r %r" % (st, data))
        fault({"kind": "huge", "operation": "ListObjectsV2", "bytes": 20000})
        st, h, data = _s3_call(port, "GET", path)
        d = _s3_list_doc(data)
        check("s3 list: huge -> a valid ListBucketResult of `bytes` bytes",
              st == 200 and len(data) == 20000 and d is not None and
              len(d["Contents"]) > 50, "%r %r" % (st, len(data)))
        fault({"kind": "access_denied", "operation": "ListObjectsV2"})
        st, _, data = _s3_call(port, "GET", path)
        check("s3 list: access_denied -> 403 AccessDenied",
              st == 403 and _s3_xml(data)[0] == "AccessDenied", "%r" % st)

        ctl("POST", "/_fake/requests/reset")
        _s3_list_all(port, "/s3/" + bucket, "a/")
        _s3_call(port, "GET", "/s3/%s/top" % bucket)
        _s3_call(port, "GET", "/s3/%s/top" % bucket,
                 headers={"If-None-Match": app.s3_objects[(bucket, "top")].etag})
        c = json.loads(ctl("GET", "/_fake/requests?surface=s3")[1])["s3"]
        check("s3 list: counters: by_operation ListObjectsV2, list_by_prefix, get_by_key "
              "{key: {status: n}}",
              c["by_operation"] == {"ListObjectsV2": 4, "GetObject": 2} and
              c["list_by_prefix"] == {"a/": 4} and
              c["get_by_key"] == {"top": {"200": 1, "304": 1}} and
              c["not_modified"] == {"GetObject": 1, "HeadObject": 0, "PutObject": 0}, "%r" % c)
        log_e = json.loads(ctl("GET", "/_fake/requests/log?surface=s3")[1])["requests"]
        e = log_e[1] if len(log_e) > 1 else {}
        check("s3 list: log entries carry operation, prefix, continuation_token, keys",
              e.get("operation") == "ListObjectsV2" and e.get("prefix") == "a/" and
              e.get("continuation_token") and e.get("keys") == 3 and
              e.get("truncated") is True, "%r" % e)
    finally:
        stop_server(app, server, thread)


def _dx_read_csv(body):
    """(header, rows) of a gzip CSV data file (raises on a bad gzip)."""
    text = gzip.decompress(body).decode("utf-8")
    csv.field_size_limit(max(csv.field_size_limit(), 4 * DX_HUGE_FIELD_BYTES))
    rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    return rows[0], rows[1:]


def _self_test_data_exports(check):
    """Data Exports (CUR 2.0) checks (run by self_test): the layout, the manifest, the
    CSV of every chunk against the ledger, determinism, shrinking, the faults."""
    today = SELF_TEST_TODAY
    app = FakeAWS(Config(quiet=True, today=today, org_accounts=2, s3_list_page_size=2))
    server, thread = start_server(app)
    port = server.server_address[1]
    bucket = "cur-bucket"
    D = Decimal
    try:
        def ctl(method, path, body=None):
            raw = json.dumps(body).encode() if body is not None else None
            st, _, data = _http_call(port, method, path, body=raw, timeout=60)
            return st, (json.loads(data) if data[:1] in (b"{", b"[") else data)

        # a ledger with credits, tax, hostile tag values, 12 decimals, another Marketplace
        # model
        yday = (today - ONE_DAY).isoformat()
        prev_day = first_of_previous_month(today).replace(day=3).isoformat()
        hostile = {"Application": 'Chat, "Bot"\nv2\r', "Environment": "Prod"}
        extra = [
            {"date": yday, "service": BEDROCK_SERVICE, "cost": "-1.25",
             "usage_type": "USE1-openai.gpt-oss-120b-mantle-input-tokens-standard",
             "tags": {"Application": "CustomerChatbot", "Environment": "Production"},
             "record_type": "Credit"},
            {"date": yday, "service": BEDROCK_SERVICE, "cost": "-0.5",
             "usage_type": "USE1-openai.gpt-oss-120b-mantle-output-tokens-standard",
             "tags": {"Application": "CustomerChatbot", "Environment": "Production"},
             "record_type": "Refund"},
            {"date": yday, "service": CLAUDE_SERVICE, "usage_type": "USE1-MP:USE1_Tax",
             "cost": "0.37", "record_type": "Tax"},
            {"date": yday, "service": BEDROCK_SERVICE, "cost": "1.234567890123",
             "usage_type": "USE1-amazon.nova-pro-v1:0-mantle-output-tokens-standard",
             "tags": hostile},
            {"date": prev_day, "service": "Claude Haiku 4.5 (Amazon Bedrock Edition)",
             "usage_type": "USE1-MP:USE1_InputTokens-Units", "cost": "2.5",
             "tags": {"Application": "Haiku", "Team": "Platform"}},
        ]
        ctl("POST", "/_fake/ledger/rows", extra)
        periods = [first_of_previous_month(today), today.replace(day=1)]
        names = [p.strftime("%Y-%m") for p in periods]
        cur = names[1]

        def ledger_rows(period_start):
            end = (period_start + datetime.timedelta(days=32)).replace(day=1)
            return ctl("GET", "/_fake/ledger?start=%s&end=%s" % (period_start.isoformat(),
                                                                 end.isoformat()))[1]["rows"]

        def get(key, headers=None):
            return _s3_call(port, "GET", "/s3/%s/%s" % (bucket, urllib.parse.quote(key)),
                            headers=headers)

        def read_period(doc, period):
            """(manifest, [(key, header, rows)]) of a period, read through S3."""
            info = doc["periods"][period]
            st, _, data = get(info["manifest_key"])
            manifest = json.loads(data)
            files = []
            for uri in manifest["dataFiles"]:
                key = uri.split("/", 3)[3]
                st, _, body = get(key)
                header, rows = _dx_read_csv(body)
                files.append((key, header, rows))
            return manifest, files

        def line_sums(files, cost_col="line_item_unblended_cost"):
            total, by_row, by_type, by_hour = D(0), {}, {}, {}
            for _, header, rows in files:
                ix = {c: i for i, c in enumerate(header)}
                for r in rows:
                    c = D(r[ix[cost_col]])
                    total += c
                    t = r[ix["line_item_line_item_type"]]
                    by_type[t] = by_type.get(t, 0) + c
                    st = r[ix["line_item_usage_start_date"]]
                    k = (r[ix["line_item_usage_account_id"]], st[:10],
                         r[ix["line_item_usage_type"]], t)
                    by_row[k] = by_row.get(k, 0) + c
                    a = r[ix["line_item_usage_account_id"]]
                    hk = st[:13] + ":00:00Z"
                    by_hour.setdefault(a, {})
                    by_hour[a][hk] = by_hour[a].get(hk, 0) + c
            return total, by_row, by_type, by_hour

        def ledger_sums(rows, bedrock_only=True):
            total, by_row = D(0), {}
            for r in rows:
                if bedrock_only and not is_bedrock_service(r["service"]):
                    continue
                c = D(r["cost"])
                total += c
                k = (r["linked_account"], r["date"], r["usage_type"],
                     r.get("record_type") or "Usage")
                by_row[k] = by_row.get(k, 0) + c
            return total, by_row

        st, doc = ctl("GET", "/_fake/data_exports")
        check("dx: GET before any PUT -> enabled false",
              st == 200 and doc == {"enabled": False, "config": None, "periods": {}}, "%r" % doc)
        st, data = ctl("POST", "/_fake/data_exports/run")
        check("dx: POST run without an export -> 409", st == 409, "%r" % st)
        for bad in ({"form": "csv"}, {"chunk_lines": 0}, {"fault": "nope"}, {"bucket": "B"},
                    {"export_name": "a/b"}, {"principals": "yes"}, {"colour": 1}):
            st, data = ctl("PUT", "/_fake/data_exports", bad)
            check("dx: PUT %s -> 400" % json.dumps(bad), st == 400, "%r" % data)

        st, doc = ctl("PUT", "/_fake/data_exports", {"chunk_lines": 4000})
        check("dx: PUT (defaults, chunk_lines 4000) -> 200, both billing periods written",
              st == 200 and doc["enabled"] and sorted(doc["periods"]) == names and
              doc["config"] == {"bucket": bucket, "prefix": "cur", "export_name": "bedrock",
                                "form": "aliased", "chunk_lines": 4000, "fault": None,
                                "principals": True}, "%r" % {k: v for k, v in doc.items()
                                                            if k != "periods"})
        key_re = re.compile(r"^cur/bedrock/data/BILLING_PERIOD=(\d{4}-\d\d)/bedrock-(\d{5})"
                            r"\.csv\.gz$")
        layout_ok = True
        for period in names:
            info = doc["periods"][period]
            layout_ok &= info["manifest_key"] == \
                "cur/bedrock/metadata/BILLING_PERIOD=%s/bedrock-Manifest.json" % period
            for i, f in enumerate(info["data_files"]):
                m = key_re.match(f["key"])
                layout_ok &= bool(m) and m.group(1) == period and int(m.group(2)) == i + 1
                layout_ok &= f["etag"] == app.s3_objects[(bucket, f["key"])].etag
                layout_ok &= 0 < f["lines"] <= 4000
        check("dx: layout <prefix>/<export>/data/BILLING_PERIOD=YYYY-MM/<export>-NNNNN.csv.gz "
              "and metadata/.../<export>-Manifest.json; ETags as stored",
              layout_ok and len(doc["periods"][cur]["data_files"]) >= 2, "%r" % doc["periods"])

        # ListObjectsV2 as the exporter does it
        got, pages, _ = _s3_list_all(port, "/s3/" + bucket,
                                     "cur/bedrock/metadata/BILLING_PERIOD=%s/" % cur)
        check("dx: ListObjectsV2 of the metadata prefix finds the manifest only",
              got == [doc["periods"][cur]["manifest_key"]], "%r %r" % (got, pages))
        got, pages, _ = _s3_list_all(port, "/s3vh", "cur/bedrock/data/BILLING_PERIOD=%s/"
                                     % names[0], host="%s.localhost:%d" % (bucket, port))
        check("dx: ListObjectsV2 (virtual-hosted, pages of 2) of the data prefix lists the "
              "data files", got == [f["key"] for f in doc["periods"][names[0]]["data_files"]]
              and len(pages) > 1, "%r" % got)

        # the manifest and every chunk against the ledger
        first = {}
        for period, pstart in zip(names, periods):
            info = doc["periods"][period]
            manifest, files = read_period(doc, period)
            cols = [c["name"] for c in manifest["columns"]]
            check("dx: %s manifest fields (executionId, exportArn, exportName, billingPeriod, "
                  "bucket, columns, dataFiles, additionalOutputFiles)" % period,
                  list(manifest) == ["executionId", "exportArn", "exportName", "billingPeriod",
                                     "bucket", "columns", "dataFiles",
                                     "additionalOutputFiles"] and
                  str(uuid.UUID(manifest["executionId"])) == manifest["executionId"] ==
                  info["execution_id"] and
                  re.fullmatch(r"arn:aws:bcm-data-exports:us-east-1:%s:export/bedrock-"
                               r"[0-9a-f-]{36}" % ACCOUNT_ID, manifest["exportArn"]) and
                  manifest["exportName"] == "bedrock" and manifest["billingPeriod"] == period
                  and manifest["bucket"] == bucket and manifest["additionalOutputFiles"] == []
                  and manifest["dataFiles"] == [f["uri"] for f in info["data_files"]] and
                  all(u == "s3://%s/%s" % (bucket, f["key"])
                      for u, f in zip(manifest["dataFiles"], info["data_files"])),
                  "%r" % manifest)
            mobj = app.s3_objects[(bucket, info["manifest_key"])]
            check("dx: %s manifest written after the data files (Last-Modified, insertion "
                  "order)" % period,
                  list(app.s3_objects).index((bucket, info["manifest_key"])) >
                  max(list(app.s3_objects).index((bucket, f["key"]))
                      for f in info["data_files"]) and
                  all(mobj.last_modified >= app.s3_objects[(bucket, f["key"])].last_modified
                      for f in info["data_files"]), "")
            check("dx: %s every chunk parses (gzip + csv), its header is the manifest's "
                  "columns, at most chunk_lines lines" % period,
                  all(h == cols and 0 < len(r) <= 4000 for _, h, r in files) and
                  [len(r) for _, _, r in files] == [f["lines"] for f in info["data_files"]],
                  "%r" % [(k, len(r)) for k, _, r in files])
            lrows = ledger_rows(pstart)
            total, by_row, by_type, by_hour = line_sums(files)
            ltotal, lby_row = ledger_sums(lrows)
            check("dx: %s the lines sum to the ledger's Bedrock rows exactly (total and per "
                  "account, day, usage type, line item type)" % period,
                  total == ltotal and by_row == lby_row,
                  "%s %s %r" % (total, ltotal, set(by_row.items()) ^ set(lby_row.items())))
            sums = ctl("GET", "/_fake/data_exports/sums?period=%s&bedrock_only=1" % period)[1]
            sums0 = ctl("GET", "/_fake/data_exports/sums?period=%s" % period)[1]
            check("dx: %s GET /_fake/data_exports/sums equals the lines (total, by line item "
                  "type, by hour per account); bedrock_only changes nothing in form aliased"
                  % period,
                  D(sums["total"]) == total and
                  {k: D(v) for k, v in sums["by_line_item_type"].items()} == by_type and
                  {a: {h: D(v) for h, v in hs.items()} for a, hs in sums["by_hour"].items()}
                  == by_hour and sums["lines"] == sum(len(r) for _, _, r in files) and
                  sums0["total"] == sums["total"] and
                  sum(D(x["cost"]) for x in sums["by_account_tags"]) == total and
                  sum(D(x["cost"]) for x in sums["by_principal"]) == total and
                  sum(D(x["cost"]) for x in sums["by_usage_type"]) == total and
                  sums["execution_id"] == info["execution_id"], "%r" % sums["total"])
            first[period] = (info, files, sums)

        info, files, sums = first[cur]
        header = files[0][1]
        ix = {c: i for i, c in enumerate(header)}
        rows = [r for _, _, fr in files for r in fr]
        check("dx: aliased columns: the 13 line item columns, then one per tag key "
              "(application, environment, team, costcenter)",
              header == [c for c, _ in DX_ALIASED_COLUMNS] +
              ["application", "environment", "team", "costcenter"], "%r" % header)
        hours_ok = True
        per_row = {}
        for r in rows:
            s_, e_ = r[ix["line_item_usage_start_date"]], r[ix["line_item_usage_end_date"]]
            t0 = datetime.datetime.strptime(s_, "%Y-%m-%dT%H:%M:%SZ")
            t1 = datetime.datetime.strptime(e_, "%Y-%m-%dT%H:%M:%SZ")
            hours_ok &= t1 - t0 == datetime.timedelta(hours=1) and \
                r[ix["bill_billing_period_start_date"]] == "%s-01T00:00:00Z" % cur
            k = (r[ix["line_item_usage_account_id"]], s_[:10], r[ix["line_item_usage_type"]],
                 r[ix["line_item_line_item_type"]], r[ix["application"]],
                 r[ix["environment"]])
            per_row.setdefault(k, []).append(t0.hour)
        check("dx: each ledger row is 24 lines, hours 0..23, end = start + 1 h, timestamps "
              "2026-05-01T05:00:00Z", hours_ok and
              all(sorted(v) == sorted(list(range(24)) * (len(v) // 24)) and len(v) % 24 == 0
                  for v in per_row.values()), "")
        places_ok = all(len(r[ix["line_item_unblended_cost"]].partition(".")[2]) <= 10
                        for r in rows if r[ix["application"]] != hostile["Application"])
        hrows = [r for r in rows if r[ix["application"]] == hostile["Application"]]
        check("dx: hourly parts have at most 10 decimals; a 12-decimal cost splits into "
              "parts of up to 12 that sum to it exactly; hostile tag values round-trip",
              places_ok and len(hrows) == 24 and
              sum(D(r[ix["line_item_unblended_cost"]]) for r in hrows) == D("1.234567890123")
              and all(r[ix["environment"]] == "Prod" for r in hrows), "%r" % hrows[:1])
        tok_ok, n_tok = True, 0
        for r in rows:
            if r[ix["pricing_unit"]] != "tokens" or r[ix["line_item_line_item_type"]] != "Usage":
                continue
            service, ut = r[ix["product_product_name"]], r[ix["line_item_usage_type"]]
            rate = cw_rate(cw_model_of(service, ut), cw_direction_of(ut))
            n_tok += 1
            tok_ok &= abs(D(r[ix["line_item_usage_amount"]]) * rate / 1000000 -
                          D(r[ix["line_item_unblended_cost"]])) <= D("1e-12")
        check("dx: token lines: usage amount = cost / the CloudWatch rate * 1e6 (pricing_unit "
              "tokens)", tok_ok and n_tok > 1000, "%d" % n_tok)
        credit = [r for r in rows if r[ix["line_item_line_item_type"]] in
                  ("Credit", "Refund", "Tax")]
        check("dx: Credit, Refund and Tax lines: 24 each, negative or positive as the ledger, "
              "usage 0, no principal",
              len(credit) == 72 and all(r[ix["line_item_usage_amount"]] == "0" and
                                        r[ix["line_item_iam_principal"]] == "" for r in credit)
              and sum(D(r[ix["line_item_unblended_cost"]]) for r in credit) == D("-1.38"),
              "%r" % credit[:1])
        prin = {}
        prin_re = re.compile(r"arn:aws:iam::\d{12}:role/[\w+=,.@-]+-svc-[1-4]")
        for r in rows:
            if r[ix["line_item_line_item_type"]] == "Usage":
                prin.setdefault((r[ix["line_item_usage_account_id"]], r[ix["application"]],
                                 r[ix["environment"]]), set()).add(
                    r[ix["line_item_iam_principal"]])
        check("dx: principals: 1..4 roles per project, some project with 3 or more, "
              "arn:aws:iam::<account>:role/<Application>-svc-<i>",
              all(1 <= len(v) <= 4 and all(prin_re.fullmatch(p) for p in v)
                  for v in prin.values()) and any(len(v) >= 3 for v in prin.values()),
              "%r" % {k: len(v) for k, v in prin.items()})
        codes = {(r[ix["product_product_name"]], r[ix["line_item_product_code"]],
                  r[ix["bill_billing_entity"]]) for r in rows}
        check("dx: product codes and billing entities (AmazonBedrock / AWS, prod-… / AWS "
              "Marketplace); only Bedrock services in form aliased",
              (BEDROCK_SERVICE, "AmazonBedrock", "AWS") in codes and
              any(s == CLAUDE_SERVICE and re.fullmatch(r"prod-[a-z0-9]{10}", c) and
                  e == "AWS Marketplace" for s, c, e in codes) and
              all(is_bedrock_service(s) for s, _, _ in codes) and
              {r[ix["line_item_usage_account_id"]] for r in rows} ==
              {ACCOUNT_ID, org_member_id(1), org_member_id(2)}, "%r" % codes)

        # determinism: a new execution of the same ledger
        etags = {p: [f["etag"] for f in first[p][0]["data_files"]] for p in names}
        st, doc2 = ctl("POST", "/_fake/data_exports/run")
        check("dx: POST run: a new executionId per period, the same data file ETags, a new "
              "manifest",
              st == 200 and all(doc2["periods"][p]["execution_id"] !=
                                first[p][0]["execution_id"] and
                                [f["etag"] for f in doc2["periods"][p]["data_files"]] ==
                                etags[p] and doc2["periods"][p]["manifest_etag"] !=
                                first[p][0]["manifest_etag"] for p in names) and
              doc2["runs"] == 2, "%r" % st)
        k0 = doc2["periods"][cur]["data_files"][0]["key"]
        ctl("POST", "/_fake/requests/reset")
        st304, _, _ = get(k0, {"If-None-Match": etags[cur][0]})
        st200, _, _ = get(k0)
        c = ctl("GET", "/_fake/requests?surface=s3")[1]["s3"]
        check("dx: If-None-Match with the old ETag -> 304; get_by_key counts it",
              st304 == 304 and st200 == 200 and
              c["get_by_key"].get(k0) == {"304": 1, "200": 1}, "%r" % c.get("get_by_key"))

        # shrinking: fewer chunks
        ctl("PUT", "/_fake/data_exports", {"chunk_lines": 1000})
        many = ctl("GET", "/_fake/data_exports")[1]["periods"][cur]["data_files"]
        st, doc3 = ctl("PUT", "/_fake/data_exports", {"chunk_lines": 100000})
        info3 = doc3["periods"][cur]
        extra_keys = [f["key"] for f in many[1:]]
        emptied_ok = True
        for k in extra_keys:
            h_, r_ = _dx_read_csv(app.s3_objects[(bucket, k)].body)
            emptied_ok &= h_ == header and r_ == []
        check("dx: fewer chunks: the extra ones hold a header-only gzip CSV, are listed in "
              "emptied_files and not in dataFiles",
              len(many) >= 4 and len(info3["data_files"]) == 1 and emptied_ok and
              [e["key"] for e in info3["emptied_files"]] == extra_keys and
              info3["manifest_data_files"] == [info3["data_files"][0]["uri"]],
              "%r" % info3["emptied_files"][:2])
        got, _, _ = _s3_list_all(port, "/s3/" + bucket, "cur/bedrock/data/BILLING_PERIOD=%s/"
                                 % cur)
        check("dx: ListObjectsV2 still lists the emptied chunks (overwrite mode)",
              got == [info3["data_files"][0]["key"]] + extra_keys, "%r" % got)

        # form map
        st, docm = ctl("PUT", "/_fake/data_exports", {"form": "map", "chunk_lines": 6000,
                                                      "prefix": "cur/"})
        manifest, mfiles = read_period(docm, cur)
        mh = mfiles[0][1]
        mix = {c: i for i, c in enumerate(mh)}
        mrows = [r for _, _, fr in mfiles for r in fr]
        check("dx: form map: the CUR 2.0 columns (identity_line_item_id, bill_payer_account_id, "
              "line_item_currency_code, product, resource_tags, ...), map types in the manifest",
              mh == [c for c, _ in DX_MAP_COLUMNS] and
              {c["name"]: c["type"] for c in manifest["columns"]}["resource_tags"] ==
              "map<string,string>" and docm["config"]["prefix"] == "cur", "%r" % mh)
        tags_ok = True
        for r in mrows:
            rt = json.loads(r[mix["resource_tags"]])
            pr = json.loads(r[mix["product"]])
            tags_ok &= all(k.startswith("user_") and re.fullmatch(r"user_[a-z0-9_]+", k)
                           for k in rt) and pr["product_name"] == r[mix["product_product_name"]]
        untagged = [r for r in mrows if r[mix["resource_tags"]] == "{}"]
        hostile_m = [json.loads(r[mix["resource_tags"]]) for r in mrows
                     if "user_application" in r[mix["resource_tags"]] and
                     json.loads(r[mix["resource_tags"]])["user_application"] ==
                     hostile["Application"]]
        check("dx: form map: resource_tags is a JSON object of user_<key> (\"{}\" untagged, "
              "hostile values intact), product a JSON object with product_name and region",
              tags_ok and untagged and len(hostile_m) == 24 and
              hostile_m[0] == {"user_application": hostile["Application"],
                               "user_environment": "Prod"}, "%r" % mrows[:1])
        check("dx: form map: timestamps 2026-05-01T05:00:00.000Z, currency USD, payer the "
              "management account, 52-character line item ids (distinct)",
              all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00\.000Z",
                               r[mix["line_item_usage_start_date"]]) and
                  r[mix["line_item_currency_code"]] == "USD" and
                  r[mix["bill_payer_account_id"]] == ACCOUNT_ID for r in mrows) and
              len({r[mix["identity_line_item_id"]] for r in mrows}) == len(mrows) and
              all(len(r[mix["identity_line_item_id"]]) == 52 for r in mrows), "")
        total, by_row, _, _ = line_sums(mfiles)
        ltotal, lby_row = ledger_sums(ledger_rows(periods[1]), bedrock_only=False)
        s_all = ctl("GET", "/_fake/data_exports/sums?period=%s&bedrock_only=0" % cur)[1]
        s_b = ctl("GET", "/_fake/data_exports/sums?period=%s&bedrock_only=1" % cur)[1]
        services = {r[mix["product_product_name"]] for r in mrows}
        check("dx: form map holds every service (EC2, Lambda, ...) and sums to the whole "
              "ledger; sums bedrock_only=1 to its Bedrock rows",
              EC2_SERVICE in services and LAMBDA_SERVICE in services and total == ltotal and
              by_row == lby_row and D(s_all["total"]) == total and
              D(s_b["total"]) == ledger_sums(ledger_rows(periods[1]))[0] and
              D(s_b["total"]) < total, "%s %s" % (total, ltotal))
        product_codes = {(r[mix["product_product_name"]], r[mix["line_item_product_code"]])
                         for r in mrows}
        check("dx: form map product codes: AmazonEC2, AWSLambda",
              (EC2_SERVICE, "AmazonEC2") in product_codes and
              (LAMBDA_SERVICE, "AWSLambda") in product_codes, "%r" % product_codes)

        st, docp = ctl("PUT", "/_fake/data_exports", {"principals": False})
        _, pfiles = read_period(docp, cur)
        pix = pfiles[0][1].index("line_item_iam_principal")
        check("dx: principals false: line_item_iam_principal is empty",
              all(r[pix] == "" for _, _, fr in pfiles for r in fr), "")

        # faults (chunk_lines 1000: several files)
        base = {"chunk_lines": 1000}
        st, good = ctl("PUT", "/_fake/data_exports", base)
        good_etags = {p: [f["etag"] for f in good["periods"][p]["data_files"]] for p in names}
        prev_ok_all = True
        for fault in DX_FAULTS:
            st, fd = ctl("PUT", "/_fake/data_exports", dict(base, fault=fault))
            info = fd["periods"][cur]
            st_m, _, mdata = get(info["manifest_key"])
            manifest = json.loads(mdata)
            first_key = manifest["dataFiles"][0].split("/", 3)[3]
            body0 = app.s3_objects[(bucket, first_key)].body
            if fault == "truncated_gzip":
                try:
                    gzip.decompress(body0)
                    ok = False
                except (EOFError, OSError, zlib_error()):
                    ok = True
                ok = ok and info["fault"]["key"] == first_key and \
                    all(_dx_read_csv(app.s3_objects[(bucket, u.split("/", 3)[3])].body)
                        for u in manifest["dataFiles"][1:])
            elif fault == "missing_chunk":
                last = manifest["dataFiles"][-1].split("/", 3)[3]
                st404, _, d404 = get(last)
                ok = len(manifest["dataFiles"]) == len(info["data_files"]) + 1 >= 3 and \
                    st404 == 404 and _s3_xml(d404)[0] == "NoSuchKey" and \
                    info["fault"]["key"] == last
            elif fault == "parquet":
                ok = all(u.endswith(".snappy.parquet") for u in manifest["dataFiles"]) and \
                    body0.startswith(b"PAR1") and body0.endswith(b"PAR1") and \
                    body0[:2] != b"\x1f\x8b" and \
                    list(manifest) == ["executionId", "exportArn", "exportName",
                                       "billingPeriod", "bucket", "columns", "dataFiles",
                                       "additionalOutputFiles"]
            else:
                text = gzip.decompress(body0).decode("utf-8")
                h_, r_ = _dx_read_csv(body0)
                if fault == "bad_columns":
                    ok = sum(1 for r in r_ if len(r) == len(h_) - 1) == 1 and \
                        len(r_[DX_FAULT_LINE - 1]) == len(h_) - 1
                elif fault == "huge_field":
                    ok = max(len(f) for r in r_ for f in r) == DX_HUGE_FIELD_BYTES
                else:
                    ok = (",%s," % DX_HOSTILE_VALUE) in text
                ok = ok and info["fault"]["line"] == DX_FAULT_LINE
            check("dx: fault %s (current month): %s" % (fault, {
                "truncated_gzip": "the first data file is cut in half (gzip fails), the others "
                                  "read",
                "missing_chunk": "the manifest names one more file, GetObject 404 NoSuchKey",
                "parquet": ".snappy.parquet data files of PAR1 bytes, the same manifest fields",
                "bad_columns": "one line has one field fewer than the header",
                "huge_field": "one line has a 1.5 MiB line_item_iam_principal",
                "hostile_quotes": 'one line has ab"c unquoted'}[fault]),
                st == 200 and ok and info["fault"]["kind"] == fault, "%r" % info["fault"])
            manifest_p, files_p = read_period(fd, names[0])
            prev_ok_all &= line_sums(files_p)[0] == ledger_sums(ledger_rows(periods[0]))[0] \
                and fd["periods"][names[0]]["fault"] is None
        check("dx: every fault leaves the previous month valid (its lines sum to the ledger)",
              prev_ok_all, "")
        st, cleared = ctl("PUT", "/_fake/data_exports", base)
        manifest, files = read_period(cleared, cur)
        check("dx: PUT without fault: the current month is whole again, with the ETags it had "
              "before the faults; the parquet leftovers are deleted",
              cleared["periods"][cur]["fault"] is None and
              [f["etag"] for f in cleared["periods"][cur]["data_files"]] == good_etags[cur] and
              line_sums(files)[0] == ledger_sums(ledger_rows(periods[1]))[0] and
              not any(k.endswith(".parquet") for b, k in app.s3_objects), "")

        # sums errors, DELETE, reset
        st1, _ = ctl("GET", "/_fake/data_exports/sums")
        st2, _ = ctl("GET", "/_fake/data_exports/sums?period=2020-01")
        st3, _ = ctl("GET", "/_fake/data_exports/sums?period=%s&bedrock_only=maybe" % cur)
        check("dx: sums without a period -> 400, of a period not written -> 404, bad "
              "bedrock_only -> 400", (st1, st2, st3) == (400, 404, 400), "%r" % ((st1, st2, st3),))
        app.s3_objects[(bucket, "other/object")] = S3Object(b"x", s3_etag(b"x"), 0, "a")
        st, out = ctl("DELETE", "/_fake/data_exports")
        st_g, g = ctl("GET", "/_fake/data_exports")
        left = [k for b, k in app.s3_objects if b == bucket]
        check("dx: DELETE removes the export's objects (only) and turns it off",
              st == 200 and out["deleted_objects"] > 4 and left == ["other/object"] and
              g["enabled"] is False, "%r %r" % (out, left))
        ctl("PUT", "/_fake/data_exports", {"bucket": "other-bucket"})
        ctl("POST", "/_fake/reset")
        st, g = ctl("GET", "/_fake/data_exports")
        check("dx: /_fake/reset turns the export off (and empties S3)",
              g["enabled"] is False and not app.s3_objects, "%r" % g)
    finally:
        stop_server(app, server, thread)


def zlib_error():
    import zlib
    return zlib.error


def _self_test_org(check):
    """Organization checks (run by self_test): ListAccounts, AssumeRole into members,
    per-account projects and Cost Explorer with LINKED_ACCOUNT."""
    akid, secret = DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY
    today = SELF_TEST_TODAY
    regions = ["us-east-1", "eu-west-1"]
    app = FakeAWS(Config(quiet=True, today=today, ce_page_size=7, org_accounts=3,
                         org_regions=regions, org_projects=2, org_external_id="ext-0001"))
    server, thread = start_server(app)
    port = server.server_address[1]
    base = "http://127.0.0.1:%d" % port
    mgmt = (akid, secret, None)
    members = [org_member_id(k) for k in (1, 2, 3)]
    services = [BEDROCK_SERVICE, CLAUDE_SERVICE]
    try:
        def signed(service, region, method, path, data=b"", creds=mgmt, headers=None):
            h = {"Host": "127.0.0.1:%d" % port}
            h.update(headers or {})
            req = AWSRequest(method=method, url=base + path, data=data, headers=h)
            SigV4Auth(Credentials(*creds), service, region).add_auth(req)
            st, hdrs, out = _http_call(port, method, path, dict(req.headers.items()),
                                       data if method == "POST" else None)
            try:
                doc = json.loads(out)
            except ValueError:
                doc = None
            return st, hdrs, doc

        def org_call(body, creds=mgmt, path="/organizations"):
            return signed("organizations", "us-east-1", "POST", path,
                          json.dumps(body).encode(), creds,
                          {"Content-Type": AMZ_JSON_11,
                           "X-Amz-Target": ORG_TARGET_PREFIX + "ListAccounts"})

        def ce(op, body, creds=mgmt):
            return signed("ce", "us-east-1", "POST", "/ce/", json.dumps(body).encode(), creds,
                          {"Content-Type": AMZ_JSON_11, "X-Amz-Target": CE_TARGET_PREFIX + op})

        def ctl(method, path, obj=None):
            body = json.dumps(obj).encode() if obj is not None else None
            st, _, out = _http_call(port, method, path, body=body)
            return st, json.loads(out)

        def assume(arn, creds=mgmt, external_id=None, session="org-self-test"):
            form = {"Action": "AssumeRole", "Version": STS_VERSION, "RoleArn": arn,
                    "RoleSessionName": session}
            if external_id is not None:
                form["ExternalId"] = external_id
            data = urllib.parse.urlencode(form).encode()
            st, hdrs, doc = signed("sts", "us-east-1", "POST", "/sts/", data, creds,
                                   {"Accept": "application/json",
                                    "Content-Type": "application/x-www-form-urlencoded"})
            c = (doc or {}).get("AssumeRoleResponse", {}).get("AssumeRoleResult", {}).get(
                "Credentials", {})
            return st, hdrs, doc, (c.get("AccessKeyId"), c.get("SecretAccessKey"),
                                   c.get("SessionToken"))

        def caller(creds):
            data = b"Action=GetCallerIdentity&Version=2011-06-15"
            st, _, doc = signed("sts", "us-east-1", "POST", "/sts/", data, creds,
                                {"Accept": "application/json",
                                 "Content-Type": "application/x-www-form-urlencoded"})
            return st, (doc or {}).get("GetCallerIdentityResponse", {}).get(
                "GetCallerIdentityResult", {})

        # -- the organization and ListAccounts --------------------------------------
        st, org = ctl("GET", "/_fake/organization")
        check("org: GET /_fake/organization: 3 members 200000000001.., role, regions",
              st == 200 and [a["Id"] for a in org["accounts"]] == members and
              [a["Name"] for a in org["accounts"]] == ["member-01", "member-02", "member-03"]
              and org["role_name"] == DEFAULT_ORG_ROLE_NAME and org["regions"] == regions and
              org["external_id"] == "ext-0001" and
              all(a["Status"] == "ACTIVE" for a in org["accounts"]), "%r" % org)
        import botocore.session
        from botocore.config import Config as BotoConfig
        session = botocore.session.Session()
        bcfg = BotoConfig(retries={"total_max_attempts": 1})
        orgc = session.create_client("organizations", region_name="us-east-1", config=bcfg,
                                     endpoint_url=base + "/organizations",
                                     aws_access_key_id=akid, aws_secret_access_key=secret)
        pages = list(orgc.get_paginator("list_accounts").paginate(
            PaginationConfig={"PageSize": 2}))
        listed = [a for pg in pages for a in pg["Accounts"]]
        check("organizations: botocore client ListAccounts, MaxResults 2 -> 2 pages, the "
              "management account included",
              len(pages) == 2 and [a["Id"] for a in listed] == [ACCOUNT_ID] + members and
              listed[0]["Name"] == ORG_MANAGEMENT_NAME and
              all(a["Status"] == "ACTIVE" and a["Arn"].endswith("/" + a["Id"]) and
                  "@" in a["Email"] and a["JoinedMethod"] in ("INVITED", "CREATED") and
                  isinstance(a["JoinedTimestamp"], datetime.datetime) for a in listed),
              "%r" % [(len(pg["Accounts"]), pg.get("NextToken") is not None) for pg in pages])
        st, hdrs, doc = org_call({})
        check("organizations: SigV4Auth-signed ListAccounts (no MaxResults) -> every account "
              "on one page, conforms to botocore's output model",
              st == 200 and hdrs.get("Content-Type") == AMZ_JSON_11 and
              len(doc["Accounts"]) == 4 and "NextToken" not in doc and
              output_report("organizations", "ListAccounts", doc) == "", "%r %r" % (st, doc))
        st, _, p1 = org_call({"MaxResults": 3})
        st2, _, p2 = org_call({"MaxResults": 3, "NextToken": p1.get("NextToken")},
                              path="/organizations/")
        check("organizations: NextToken paging (POST /organizations/ too)",
              st == 200 and st2 == 200 and len(p1["Accounts"]) == 3 and
              len(p2["Accounts"]) == 1 and "NextToken" not in p2, "%r" % ((st, st2),))
        st, hdrs, doc = org_call({"MaxResults": 21})
        st2, _, doc2 = org_call({"MaxResults": 2, "NextToken": "bm9wZQ=="})
        st3, _, doc3 = org_call({"MaxResults": 2, "Bogus": 1})
        check("organizations: MaxResults 21, a garbage token, an unknown member -> 400 "
              "InvalidInputException",
              st == 400 and hdrs.get("x-amzn-ErrorType") == "InvalidInputException" and
              doc.get("Reason") == "MAX_VALUE_EXCEEDED" and st2 == 400 and
              doc2.get("Reason") == "INVALID_NEXT_TOKEN" and st3 == 400 and
              doc3.get("__type") == "InvalidInputException", "%r" % ((doc, doc2, doc3),))
        st, _, doc = org_call({}, creds=(akid, "wrong-secret", None))
        check("organizations: bad signature -> 403 InvalidSignatureException",
              st == 403 and doc["__type"] == CORAL_ERROR_NS + "InvalidSignatureException")

        # -- AssumeRole into members ------------------------------------------------
        role1 = "arn:aws:iam::%s:role/%s" % (members[0], DEFAULT_ORG_ROLE_NAME)
        st, _, doc, m1 = assume(role1, external_id="ext-0001")
        check("sts: AssumeRole into member-01's role (with the ExternalId) -> credentials",
              st == 200 and (m1[0] or "").startswith("ASIA") and
              doc["AssumeRoleResponse"]["AssumeRoleResult"]["AssumedRoleUser"]["Arn"] ==
              "arn:aws:sts::%s:assumed-role/%s/org-self-test" % (members[0],
                                                                 DEFAULT_ORG_ROLE_NAME),
              "%r" % doc)
        denials = [
            assume(role1)[:3],                                        # no ExternalId
            assume(role1, external_id="wrong")[:3],
            assume("arn:aws:iam::%s:role/Other" % members[0], external_id="ext-0001")[:3],
            assume("arn:aws:iam::999999999999:role/%s" % DEFAULT_ORG_ROLE_NAME,
                   external_id="ext-0001")[:3],                       # not in the org
            assume("arn:aws:iam::%s:role/%s" % (members[1], DEFAULT_ORG_ROLE_NAME),
                   creds=m1, external_id="ext-0001")[:3],             # signed by a member
        ]
        check("sts: no/wrong ExternalId, another role, an account outside the organization, "
              "member credentials -> 403 AccessDenied",
              all(st == 403 and doc["Error"]["Code"] == "AccessDenied" and
                  "not authorized to perform: sts:AssumeRole" in doc["Error"]["Message"]
                  for st, _, doc in denials),
              "%r" % [(st, h.get("X-Fake-Auth-Error")) for st, h, _ in denials])
        st, _, _, mg = assume("arn:aws:iam::%s:role/cost-reader" % ACCOUNT_ID)
        st_id, ident_mg = caller(mg)
        check("sts: AssumeRole into any role of the management account works as without an "
              "organization", st == 200 and st_id == 200 and
              ident_mg.get("Account") == ACCOUNT_ID, "%r" % ident_mg)
        st, ident = caller(m1)
        st_b, ident_b = caller(mgmt)
        check("sts: GetCallerIdentity answers the member for its credentials, the management "
              "account for the base keys",
              st == 200 and ident.get("Account") == members[0] and
              ident.get("Arn", "").startswith("arn:aws:sts::%s:assumed-role/%s/"
                                              % (members[0], DEFAULT_ORG_ROLE_NAME)) and
              st_b == 200 and ident_b.get("Account") == ACCOUNT_ID, "%r %r" % (ident, ident_b))
        stsc = session.create_client("sts", region_name="us-east-1", config=bcfg,
                                     endpoint_url=base + "/sts/", aws_access_key_id=akid,
                                     aws_secret_access_key=secret)
        out = stsc.assume_role(RoleArn="arn:aws:iam::%s:role/%s" % (members[1],
                                                                     DEFAULT_ORG_ROLE_NAME),
                               RoleSessionName="botocore", ExternalId="ext-0001")
        m2 = (out["Credentials"]["AccessKeyId"], out["Credentials"]["SecretAccessKey"],
              out["Credentials"]["SessionToken"])
        m2c = session.create_client("sts", region_name="us-east-1", config=bcfg,
                                    endpoint_url=base + "/sts/", aws_access_key_id=m2[0],
                                    aws_secret_access_key=m2[1], aws_session_token=m2[2])
        check("sts: botocore AssumeRole (XML) into member-02, its GetCallerIdentity",
              m2c.get_caller_identity()["Account"] == members[1])
        st, _, doc = org_call({}, creds=m1)
        check("organizations: ListAccounts with member credentials -> 403 "
              "AccessDeniedException", st == 403 and
              doc == {"__type": "AccessDeniedException", "Message": ORG_ACCESS_DENIED_MESSAGE},
              "%r %r" % (st, doc))

        # -- projects per account ---------------------------------------------------
        path = "/mantle/us-east-1/v1/organization/projects"
        st, _, doc = signed("bedrock-mantle", "us-east-1", "GET", path + "?limit=100",
                            creds=m1)
        _, want1 = ctl("GET", "/_fake/projects/us-east-1?account=" + members[0])
        st2, _, doc2 = signed("bedrock-mantle", "us-east-1", "GET", path + "?limit=100")
        st3, _, doc3 = _http_call(port, "GET", path + "?limit=100",
                                  {"Authorization": "Bearer " + DEFAULT_API_KEY})
        mg_ids = [p["id"] for p in app.get_projects("us-east-1")]
        check("projects: a listing signed with member-01's credentials answers its projects; "
              "the base keys and the API key the management account's",
              st == 200 and doc["data"] == want1 and len(want1) == 3 and
              all(p["arn"].startswith("arn:aws:bedrock-mantle:us-east-1:%s:project/"
                                      % members[0]) for p in want1) and
              st2 == 200 and [p["id"] for p in doc2["data"]] == mg_ids and
              st3 == 200 and [p["id"] for p in json.loads(doc3)["data"]] == mg_ids,
              "%r" % ((st, st2, st3),))
        st, _, one = signed("bedrock-mantle", "eu-west-1", "GET",
                            "/mantle/eu-west-1/v1/organization/projects/" +
                            app.get_projects("eu-west-1", members[0])[-1]["id"], creds=m1)
        check("projects: a member's project by id, in its second region",
              st == 200 and one["arn"].split(":")[4] == members[0], "%r" % one)
        pairs = {}
        for aid in [ACCOUNT_ID] + members:
            for region in regions:
                for p in app.get_projects(region, aid):
                    t = p["tags"]
                    if t:
                        pairs.setdefault((t["Application"], t["Environment"]),
                                         set()).add((aid, p["id"]))
        shared = {k: v for k, v in pairs.items() if len({a for a, _ in v}) > 1}
        all_ids = [(aid, p["id"]) for aid in members for r in regions
                   for p in app.get_projects(r, aid)]
        check("projects: the same Application/Environment in two accounts (distinct ids), "
              "every member project tagged Application/Environment/Team/CostCenter",
              len(shared) >= 2 and
              ("CustomerChatbot", "Production") in shared and
              len(set(p for _, p in all_ids if p != "default")) ==
              len([p for _, p in all_ids if p != "default"]) and
              all(set(p["tags"]) == {"Application", "Environment", "Team", "CostCenter"}
                  for aid in members for r in regions for p in app.get_projects(r, aid)
                  if p["id"] != "default"), "%r" % sorted(shared))

        # -- Cost Explorer ----------------------------------------------------------
        _, led = ctl("GET", "/_fake/ledger")
        rows = led["rows"]
        check("ledger: every row shows its account; members have tagged, untagged and "
              "non-Bedrock rows",
              led["accounts"] == sorted([ACCOUNT_ID] + members) and
              all(_ACCOUNT_ID_RE.match(r["linked_account"]) for r in rows) and
              all(any(r["linked_account"] == m and not r["tags"] for r in rows) and
                  any(r["linked_account"] == m and r["service"] == EC2_SERVICE for r in rows)
                  for m in members), "%r" % led["accounts"])
        _, led2 = ctl("GET", "/_fake/ledger?account=" + members[1])
        check("ledger: ?account= keeps that account's rows only",
              led2["count"] > 0 and led2["accounts"] == [members[1]] and
              led2["count"] == sum(1 for r in rows if r["linked_account"] == members[1]))
        start_s = first_of_previous_month(today).isoformat()
        end_s = (today + ONE_DAY).isoformat()
        req = {"TimePeriod": {"Start": start_s, "End": end_s}, "Granularity": "MONTHLY",
               "Metrics": ["UnblendedCost"],
               "Filter": {"Dimensions": {"Key": "SERVICE", "Values": services}},
               "GroupBy": [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
                           {"Type": "TAG", "Key": "Application"}]}

        def all_pages(body, creds=mgmt):
            merged, n, token, names = {}, 0, None, {}
            while n < 200:
                b = dict(body, NextPageToken=token) if token else body
                st, _, doc = ce("GetCostAndUsage", b, creds)
                if st != 200:
                    return None, n, names
                n += 1
                for a in doc["DimensionValueAttributes"]:
                    names[a["Value"]] = a["Attributes"].get("description")
                for r in doc["ResultsByTime"]:
                    for g in r["Groups"]:
                        k = (r["TimePeriod"]["Start"][:7],) + tuple(g["Keys"])
                        merged[k] = merged.get(k, Decimal(0)) + \
                            Decimal(g["Metrics"]["UnblendedCost"]["Amount"])
                token = doc.get("NextPageToken")
                if not token:
                    return merged, n, names
            return None, n, names

        def expected(account=None):
            out = {}
            for r in rows:
                if r["service"] not in services or not start_s <= r["date"] < end_s:
                    continue
                if account is not None and r["linked_account"] != account:
                    continue
                app_tag = r["tags"].get("Application", "")
                k = (r["date"][:7], r["linked_account"], "Application$" + app_tag)
                out[k] = out.get(k, Decimal(0)) + Decimal(r["cost"])
            return out
        got, n, names = all_pages(req)
        check("ce: GroupBy LINKED_ACCOUNT + TAG with the management account's credentials: "
              "every account, %d pages (page size 7), sums equal the ledger" % n,
              got is not None and n > 1 and got == expected() and
              {k[1] for k in got} == set([ACCOUNT_ID] + members) and
              names.get(members[0]) == "member-01" and
              names.get(ACCOUNT_ID) == ORG_MANAGEMENT_NAME,
              "pages=%d %d/%d" % (n, len(got or {}), len(expected())))
        got1, n1, _ = all_pages(req, creds=m1)
        check("ce: the same query with member-01's credentials sees only member-01's rows",
              got1 is not None and got1 == expected(members[0]) and
              {k[1] for k in got1} == {members[0]}, "%r" % (got1 and sorted(got1)[:3]))
        flt = {"TimePeriod": {"Start": start_s, "End": end_s}, "Granularity": "MONTHLY",
               "Metrics": ["UnblendedCost"], "Filter": {"And": [
                   {"Dimensions": {"Key": "SERVICE", "Values": services}},
                   {"Dimensions": {"Key": "LINKED_ACCOUNT",
                                   "Values": [members[1], members[2]]}}]}}
        st, _, doc = ce("GetCostAndUsage", flt)
        got_t = sum((Decimal(r["Total"]["UnblendedCost"]["Amount"])
                     for r in doc.get("ResultsByTime", [])), Decimal(0))
        want_t = sum((v for k, v in expected().items() if k[1] in members[1:]), Decimal(0))
        st_n, _, doc_n = ce("GetCostAndUsage", dict(flt, Filter={"And": [
            {"Dimensions": {"Key": "SERVICE", "Values": services}},
            {"Not": {"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": members}}}]}))
        got_n = sum((Decimal(r["Total"]["UnblendedCost"]["Amount"])
                     for r in doc_n.get("ResultsByTime", [])), Decimal(0))
        want_n = sum((v for k, v in expected().items() if k[1] == ACCOUNT_ID), Decimal(0))
        check("ce: Filter LINKED_ACCOUNT (in And, and under Not) matches the ledger",
              st == 200 and got_t == want_t and want_t > 0 and st_n == 200 and
              got_n == want_n, "%s/%s %s/%s" % (got_t, want_t, got_n, want_n))
        st, _, doc = ce("GetDimensionValues", {"TimePeriod": {"Start": start_s, "End": end_s},
                                               "Dimension": "LINKED_ACCOUNT"})
        st1, _, doc1 = ce("GetDimensionValues", {"TimePeriod": {"Start": start_s,
                                                                "End": end_s},
                                                 "Dimension": "LINKED_ACCOUNT"}, creds=m1)
        check("ce: GetDimensionValues LINKED_ACCOUNT: every account (named) for the "
              "management account, only its own for a member",
              st == 200 and [v["Value"] for v in doc["DimensionValues"]] ==
              sorted([ACCOUNT_ID] + members) and
              doc["DimensionValues"][-1]["Attributes"] == {"description": "member-03"} and
              st1 == 200 and [v["Value"] for v in doc1["DimensionValues"]] == [members[0]],
              "%r %r" % (doc, doc1))
        fend = (today.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
        freq = {"TimePeriod": {"Start": today.isoformat(), "End": fend.isoformat()},
                "Metric": "UNBLENDED_COST", "Granularity": "MONTHLY",
                "Filter": {"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": [members[2]]}}}
        st, _, doc = ce("GetCostForecast", freq)
        w0 = (today - datetime.timedelta(days=7)).isoformat()
        wsum = sum((Decimal(r["cost"]) for r in rows if r["linked_account"] == members[2] and
                    w0 <= r["date"] < today.isoformat()), Decimal(0))
        st1, _, doc1 = ce("GetCostForecast", freq, creds=m1)
        check("ce: GetCostForecast Filter LINKED_ACCOUNT: that account's 7 days; member-01 "
              "forecasting member-03 has no data",
              st == 200 and doc["Total"]["Amount"] ==
              fmt_amount(forecast_amounts(wsum, (fend - today).days)[0]) and
              st1 == 400 and doc1["__type"].endswith("#DataUnavailableException"),
              "%r %r" % (doc, doc1))

        # -- counters, suspension, replacement, reset --------------------------------
        _, c = ctl("GET", "/_fake/requests")
        check("counters: organizations by_operation, sts assumed_by_account, ce by_account",
              c["organizations"]["by_operation"].get("ListAccounts", 0) >= 8 and
              c["sts"]["assumed_by_account"].get(members[0]) == 1 and
              c["sts"]["assumed_by_account"].get(members[1]) == 1 and
              c["ce"]["by_account"].get(members[0], 0) >= 3 and
              c["ce"]["by_account"].get(ACCOUNT_ID, 0) >= 3,
              "%r" % {k: c[k] for k in ("organizations", "sts")})
        _, lg = ctl("GET", "/_fake/requests/log?surface=organizations")
        check("log: organizations entries carry operation, request and account",
              lg["requests"] and lg["requests"][0].get("operation") == "ListAccounts" and
              lg["requests"][0].get("account") == ACCOUNT_ID, "%r" % lg["requests"][:1])
        ctl("POST", "/_fake/faults", {"surface": "organizations", "kind": "throttle"})
        st, hdrs, doc = org_call({})
        ctl("POST", "/_fake/faults", {"surface": "organizations", "kind": "loop"})
        st2, _, doc2 = org_call({})
        check("organizations: throttle fault -> 400 TooManyRequestsException; loop keeps a "
              "NextToken",
              st == 400 and doc["__type"] == "TooManyRequestsException" and
              st2 == 200 and "NextToken" in doc2, "%r %r" % (doc, doc2))
        accts = [dict(a) for a in org["accounts"]]
        accts[2]["Status"] = "SUSPENDED"
        st, org2 = ctl("PUT", "/_fake/organization", {"accounts": accts})
        st_a, _, doc_a, _ = assume("arn:aws:iam::%s:role/%s" % (members[2],
                                                                 DEFAULT_ORG_ROLE_NAME),
                                   external_id="ext-0001")
        _, _, la = org_call({})
        check("control: PUT /_fake/organization suspends member-03: ListAccounts says "
              "SUSPENDED, AssumeRole into it -> 403",
              st == 200 and org2["accounts"][2]["Status"] == "SUSPENDED" and st_a == 403 and
              la["Accounts"][3]["Status"] == "SUSPENDED", "%r" % ((st, st_a),))
        st, org3 = ctl("PUT", "/_fake/organization", {
            "accounts": [{"Id": "210000000001", "Name": "solo", "Status": "ACTIVE"}],
            "role_name": "OtherRole", "external_id": None, "regions": ["ap-south-1"],
            "projects_per_region": 1})
        _, led3 = ctl("GET", "/_fake/ledger")
        _, pj = ctl("GET", "/_fake/projects/ap-south-1?account=210000000001")
        st_x, _, _, _ = assume("arn:aws:iam::210000000001:role/OtherRole")
        st_bad, _ = ctl("PUT", "/_fake/organization", {"accounts": [{"Id": ACCOUNT_ID}]})
        st_404, _ = ctl("GET", "/_fake/projects/us-east-1?account=" + members[0])
        check("control: PUT /_fake/organization replaces members, role, external id, regions "
              "and rebuilds their projects and ledger; bad input 400; old member 404",
              st == 200 and led3["accounts"] == sorted([ACCOUNT_ID, "210000000001"]) and
              len(pj) == 2 and pj[-1]["tags"]["Application"] == "CustomerChatbot" and
              st_x == 200 and st_bad == 400 and st_404 == 404 and
              sum(1 for r in led3["rows"] if r["linked_account"] == ACCOUNT_ID) ==
              sum(1 for r in rows if r["linked_account"] == ACCOUNT_ID),
              "%r" % ((st, led3["accounts"], len(pj), st_x, st_bad, st_404),))
        st, org4 = ctl("PUT", "/_fake/organization", {"accounts": []})
        st_u, _, _, u = assume("arn:aws:iam::999999999999:role/anything")
        st_ui, ident_u = caller(u)
        check("sts: without members, a role in any account works as before (management "
              "account credentials)", st_u == 200 and ident_u.get("Account") == ACCOUNT_ID,
              "%r" % ((st_u, ident_u),))
        ctl("POST", "/_fake/reset")
        _, org5 = ctl("GET", "/_fake/organization")
        _, led5 = ctl("GET", "/_fake/ledger")
        check("control: /_fake/reset restores the command-line organization and ledger",
              org5["accounts"] == org["accounts"] and led5["rows"] == rows)
        plain = FakeAWS(Config(quiet=True, today=today))
        check("no organization: ListAccounts-to-be lists the management account only, the "
              "ledger has no member rows, CloudWatch series equal with and without members",
              plain.org.list_accounts()[0]["Id"] == ACCOUNT_ID and
              len(plain.org.list_accounts()) == 1 and
              all("linked_account" not in r for r in plain.ledger) and
              plain.cw_index().series == app.cw_index().series)
    finally:
        stop_server(app, server, thread)


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

    try:
        _self_test_aws(check)
    except Exception:
        check("aws surfaces self-test ran without an exception", False,
              traceback.format_exc())
    try:
        _self_test_cloudwatch(check)
    except Exception:
        check("cloudwatch self-test ran without an exception", False,
              traceback.format_exc())
    try:
        _self_test_s3(check)
    except Exception:
        check("s3 self-test ran without an exception", False, traceback.format_exc())
    try:
        _self_test_s3_list(check)
    except Exception:
        check("s3 ListObjectsV2 self-test ran without an exception", False,
              traceback.format_exc())
    try:
        _self_test_data_exports(check)
    except Exception:
        check("Data Exports self-test ran without an exception", False,
              traceback.format_exc())
    try:
        _self_test_org(check)
    except Exception:
        check("organization self-test ran without an exception", False,
              traceback.format_exc())

    print("self-test: %s" % ("PASS" if not failures else "FAIL (%d)" % len(failures)))
    return 0 if not failures else 1


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description="Loopback fake of the AWS surfaces used by "
                                "bedrock-cost-exporter (Bedrock Projects API, Cost "
                                "Explorer, CloudWatch, STS, IMDSv2, container credentials, "
                                "S3, Organizations).")
    p.add_argument("--host", default="127.0.0.1", help="must be 127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--port-file", help="write the bound port here (atomically)")
    p.add_argument("--api-key", default=DEFAULT_API_KEY)
    p.add_argument("--access-key-id", default=DEFAULT_ACCESS_KEY_ID)
    p.add_argument("--secret-access-key", default=DEFAULT_SECRET_ACCESS_KEY)
    p.add_argument("--session-token", default=None)
    p.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="add N synthetic projects to us-east-1")
    p.add_argument("--today", metavar="YYYY-MM-DD", default=None,
                   help="the fake's UTC 'today' (seed, Estimated, forecast); default: the "
                   "real UTC date")
    p.add_argument("--estimated-days", type=int, default=3, metavar="N",
                   help="periods with a day in today-(N-1)..today are Estimated (default 3)")
    p.add_argument("--ce-page-size", type=int, default=50, metavar="N",
                   help="GetCostAndUsage groups per page across periods; GetDimensionValues "
                   "values per page without MaxResults (default 50)")
    p.add_argument("--ce-strict-match-options", action="store_true",
                   help="reject MatchOptions real GetCostAndUsage rejects (Dimensions: "
                   "EQUALS, CASE_SENSITIVE; Tags: EQUALS, ABSENT, CASE_SENSITIVE)")
    p.add_argument("--ledger", metavar="PATH", default=None,
                   help="JSON ledger (list of rows or {\"rows\": [...]}) instead of the seed")
    p.add_argument("--credential-lifetime", type=int, default=3600, metavar="SECONDS",
                   help="lifetime of credentials issued by sts/imds/container (default 3600)")
    p.add_argument("--sts-external-id", default=None, metavar="X",
                   help="AssumeRole must carry ExternalId=X (else 403 AccessDenied)")
    p.add_argument("--web-identity-token", default=DEFAULT_WEB_IDENTITY_TOKEN, metavar="T",
                   help="token AssumeRoleWithWebIdentity accepts (default %(default)s)")
    p.add_argument("--container-auth-token", default=DEFAULT_CONTAINER_AUTH_TOKEN,
                   metavar="T", help="Authorization value the container endpoint requires "
                   "(default %(default)s; empty = no check)")
    p.add_argument("--imds-role", default=DEFAULT_IMDS_ROLE, metavar="NAME",
                   help="IAM role name IMDS reports (default %(default)s)")
    p.add_argument("--no-model-validation", dest="model_validation", action="store_false",
                   help="do not check ce/cloudwatch/organizations request bodies against "
                   "botocore's service models")
    p.add_argument("--org-accounts", type=int, default=0, metavar="N",
                   help="member accounts of the organization (ids %s.., names member-01..; "
                   "default 0: none)" % org_member_id(1))
    p.add_argument("--org-regions", default=",".join(DEFAULT_ORG_REGIONS),
                   metavar="R1,R2", help="regions of the members' projects and spend "
                   "(default %(default)s)")
    p.add_argument("--org-projects", type=int, default=DEFAULT_ORG_PROJECTS, metavar="P",
                   help="projects per member per region, besides default (default "
                   "%(default)s)")
    p.add_argument("--org-role-name", default=DEFAULT_ORG_ROLE_NAME, metavar="NAME",
                   help="the role AssumeRole accepts in a member (default %(default)s)")
    p.add_argument("--org-external-id", default=None, metavar="X",
                   help="AssumeRole into a member must carry ExternalId=X (default: none)")
    p.add_argument("--s3-list-page-size", type=int, default=S3_LIST_MAX_KEYS, metavar="N",
                   help="at most N keys per ListObjectsV2 page, whatever max-keys asks "
                   "(default %(default)s, S3's own cap), to force pagination")
    p.add_argument("--quiet", action="store_true", help="no access log")
    p.add_argument("--self-test", action="store_true", help="run the self-test and exit")
    args = p.parse_args(argv)
    if args.host != "127.0.0.1":
        p.error("refusing to bind %r: only 127.0.0.1 is allowed" % args.host)
    if args.synthetic < 0:
        p.error("--synthetic must be >= 0")
    if args.today is not None:
        try:
            if not _DATE_RE.match(args.today):
                raise ValueError(args.today)
            args.today = datetime.date.fromisoformat(args.today)
        except ValueError:
            p.error("--today must be YYYY-MM-DD")
    if args.estimated_days < 0:
        p.error("--estimated-days must be >= 0")
    if args.ce_page_size < 1:
        p.error("--ce-page-size must be >= 1")
    if args.credential_lifetime < 1:
        p.error("--credential-lifetime must be >= 1")
    if not args.imds_role or "/" in args.imds_role:
        p.error("--imds-role must be a non-empty name without '/'")
    if not 0 <= args.org_accounts <= ORG_MAX_ACCOUNTS:
        p.error("--org-accounts must be 0..%d" % ORG_MAX_ACCOUNTS)
    args.org_regions = [r.strip() for r in args.org_regions.split(",") if r.strip()]
    if not args.org_regions or len(set(args.org_regions)) != len(args.org_regions) or \
            not all(_REGION_NAME_RE.match(r) for r in args.org_regions):
        p.error("--org-regions must be a comma-separated list of distinct region names")
    if not 0 <= args.org_projects <= ORG_MAX_PROJECTS:
        p.error("--org-projects must be 0..%d" % ORG_MAX_PROJECTS)
    if not 1 <= args.s3_list_page_size <= S3_LIST_MAX_KEYS:
        p.error("--s3-list-page-size must be 1..%d" % S3_LIST_MAX_KEYS)
    if not _ROLE_NAME_RE.match(args.org_role_name):
        p.error("--org-role-name must be an IAM role name ([\\w+=,.@-]{1,64})")
    if args.org_external_id is not None and not _EXTERNAL_ID_RE.match(args.org_external_id):
        p.error("--org-external-id must be 2..1224 characters of [\\w+=,.@:/-]")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.self_test:
        return self_test()
    try:
        app = FakeAWS(Config(api_key=args.api_key, access_key_id=args.access_key_id,
                             secret_access_key=args.secret_access_key,
                             session_token=args.session_token, synthetic=args.synthetic,
                             quiet=args.quiet, today=args.today,
                             estimated_days=args.estimated_days,
                             ce_page_size=args.ce_page_size,
                             ce_strict_match_options=args.ce_strict_match_options,
                             ledger_file=args.ledger,
                             credential_lifetime=args.credential_lifetime,
                             sts_external_id=args.sts_external_id,
                             web_identity_token=args.web_identity_token,
                             container_auth_token=args.container_auth_token,
                             imds_role=args.imds_role,
                             model_validation=args.model_validation,
                             org_accounts=args.org_accounts, org_regions=args.org_regions,
                             org_projects=args.org_projects,
                             org_role_name=args.org_role_name,
                             org_external_id=args.org_external_id,
                             s3_list_page_size=args.s3_list_page_size))
    except LedgerError as exc:
        log(str(exc))
        return 2
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
