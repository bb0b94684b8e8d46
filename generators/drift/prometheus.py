"""Prometheus drift: the rendered rule file (prometheus/alerts.yaml: groups of rules with alert or record,
expr, for, labels) against what Prometheus has loaded (`GET /api/v1/rules`).

Rules are matched by group name and rule name (the n-th rule of that name in its group). Reported:
rules missing from Prometheus; extra rules in a group the profile renders (groups it does not render,
such as kube-prometheus-stack's own, are not perfstack's and are left alone); a different `for`; a
label added, removed or changed; and a different expression. Expressions are compared as Prometheus
prints them (`/api/v1/format_query`, so `sum(x) by (a)` equals `sum by (a) (x)` and `0.80` equals `0.8`);
when two expressions differ only in their numbers, the difference is reported as the rule's threshold.
Annotations (descriptions, runbook links) are not compared.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from .. import units
from ..bundle import Bundle
from .report import CHANGED, EXTRA, MISSING, Difference, TargetReport, failed, redact_url

TARGET = "prometheus"
RULES_FILE = "prometheus/alerts.yaml"
TIMEOUT_S = 3
MAX_RESPONSE_BYTES = 32 * 1024 * 1024  # a rule list of thousands of rules is a few MB
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_DURATION_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`|[A-Za-z_:][A-Za-z0-9_:]*'
                    r'|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?[A-Za-z]*|==|!=|>=|<=|=~|!~|\S')
_PLAIN_NUMBER = re.compile(r"^\d+(?:\.\d+)?(?:[eE][-+]?\d+)?$")


@dataclass(frozen=True)
class Rule:
    group: str
    name: str
    index: int  # the n-th rule with this name in its group (0 for the first)
    kind: str  # alert | record
    expr: str
    for_s: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.group}/{self.name}" + (f"#{self.index + 1}" if self.index else "")


def parse_duration_s(text: Any) -> float:
    """A Prometheus duration ('5m', '1h30m', '90s') in seconds; numbers are seconds already."""
    if text in (None, ""):
        return 0.0
    if isinstance(text, (int, float)):
        return float(text)
    parts = _DURATION.findall(str(text).strip())
    if not parts or "".join(n + u for n, u in parts) != str(text).strip():
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(float(n) * _DURATION_S[u] for n, u in parts)


def _numbered(items: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str, int, dict[str, Any]]]:
    seen: dict[tuple[str, str], int] = {}
    out = []
    for group, name, data in items:
        index = seen.get((group, name), 0)
        seen[(group, name)] = index + 1
        out.append((group, name, index, data))
    return out


def expected_rules(text: str) -> list[Rule]:
    """Rules from a Prometheus rule file (the format `promtool check rules` reads)."""
    from ruamel.yaml import YAML

    data = YAML(typ="safe", pure=True).load(text) or {}
    items = []
    for group in data.get("groups") or []:
        for rule in group.get("rules") or []:
            kind = "alert" if "alert" in rule else "record"
            items.append((str(group["name"]), str(rule[kind]), {"kind": kind, **rule}))
    return [Rule(group, name, index, data["kind"], str(data["expr"]).strip(), parse_duration_s(data.get("for")),
                 {str(k): str(v) for k, v in (data.get("labels") or {}).items()})
            for group, name, index, data in _numbered(items)]


def live_rules(response: dict[str, Any]) -> list[Rule]:
    """Rules from a /api/v1/rules response."""
    items = []
    for group in response.get("data", {}).get("groups", []):
        for rule in group.get("rules", []):
            kind = "alert" if rule.get("type") == "alerting" else "record"
            items.append((str(group["name"]), str(rule["name"]), {"kind": kind, **rule}))
    return [Rule(group, name, index, data["kind"], str(data.get("query", "")).strip(),
                 float(data.get("duration") or 0), {str(k): str(v) for k, v in (data.get("labels") or {}).items()})
            for group, name, index, data in _numbered(items)]


def tokens(expr: str) -> list[str]:
    return _TOKEN.findall(expr)


def threshold_change(expected: str, actual: str) -> tuple[str, str] | None:
    """When two expressions differ only in plain numbers: those numbers, (expected, actual); else None."""
    left, right = tokens(expected), tokens(actual)
    if len(left) != len(right):
        return None
    changed = [(a, b) for a, b in zip(left, right, strict=True) if a != b]
    if not changed or not all(_PLAIN_NUMBER.match(a) and _PLAIN_NUMBER.match(b) for a, b in changed):
        return None
    if all(float(a) == float(b) for a, b in changed):
        return None
    return ", ".join(f"{float(a):g}" for a, _ in changed), ", ".join(f"{float(b):g}" for _, b in changed)


def _squash(expr: str) -> str:
    return " ".join(expr.split())


class Client:
    """GETs against one Prometheus with a short timeout (and basic auth when the URL carries it)."""

    def __init__(self, url: str):
        parts = urllib.parse.urlsplit(url)
        self.headers: dict[str, str] = {}
        if parts.username is not None:
            token = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            self.headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
            parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
        self.base = urllib.parse.urlunsplit(parts).rstrip("/")
        self._formatted: dict[str, str | None] = {}

    def get(self, path: str, **query: str) -> Any:
        url = f"{self.base}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(url, headers=self.headers)
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - the user's URL
            body = response.read(MAX_RESPONSE_BYTES + 1)
        if len(body) > MAX_RESPONSE_BYTES:
            raise ValueError(f"{path} answered more than {MAX_RESPONSE_BYTES} bytes; perfstack reads no more")
        return json.loads(body)

    def format_query(self, expr: str) -> str | None:
        """Prometheus's own printing of an expression; None when this Prometheus cannot format it."""
        if expr not in self._formatted:
            try:
                body = self.get("/api/v1/format_query", query=expr)
                self._formatted[expr] = str(body["data"]) if body.get("status") == "success" else None
            except (OSError, ValueError, KeyError):
                self._formatted[expr] = None
        return self._formatted[expr]


def compare_rule(want: Rule, have: Rule, client: Client | None) -> list[Difference]:
    diffs: list[Difference] = []
    if _squash(want.expr) != _squash(have.expr):
        left = client.format_query(want.expr) if client else None
        right = client.format_query(have.expr) if client else None
        left, right = _squash(left or want.expr), _squash(right or have.expr)
        if left != right:
            threshold = threshold_change(left, right)
            if threshold:
                diffs.append(Difference(f"{want.key}.threshold", CHANGED, threshold[0], threshold[1],
                                        note=f"expr {have.expr}"))
            else:
                diffs.append(Difference(f"{want.key}.expr", CHANGED, want.expr, have.expr))
    if want.kind == "alert" and want.for_s != have.for_s:
        diffs.append(Difference(f"{want.key}.for", CHANGED, units.format_duration(round(want.for_s * 1000)), units.format_duration(round(have.for_s * 1000))))
    for label in sorted(set(want.labels) | set(have.labels)):
        if want.labels.get(label) != have.labels.get(label):
            kind = MISSING if label not in have.labels else EXTRA if label not in want.labels else CHANGED
            diffs.append(Difference(f"{want.key}.labels.{label}", kind, want.labels.get(label), have.labels.get(label)))
    return diffs


def compare(expected: list[Rule], live: list[Rule], client: Client | None = None) -> list[Difference]:
    diffs: list[Difference] = []
    have = {(r.group, r.name, r.index): r for r in live}
    want = {(r.group, r.name, r.index): r for r in expected}
    for ident, rule in want.items():
        if ident not in have:
            diffs.append(Difference(rule.key, MISSING, _squash(rule.expr), None))
        else:
            diffs.extend(compare_rule(rule, have[ident], client))
    groups = {r.group for r in expected}
    for ident, rule in have.items():
        if ident not in want and rule.group in groups:
            diffs.append(Difference(rule.key, EXTRA, None, _squash(rule.expr)))
    return diffs


def redact(url: str) -> str:
    return redact_url(url)


def check(bundle: Bundle, url: str) -> TargetReport:
    endpoint = redact(url)
    text = bundle.files.get(RULES_FILE)
    if text is None:
        return TargetReport(TARGET, endpoint, skipped=True,
                            notes=[f"the profile renders no alert rules yet ({RULES_FILE} is not in the bundle): "
                                   "nothing to compare"])
    expected = expected_rules(text)
    client = Client(url)
    try:
        response = client.get("/api/v1/rules")
        if response.get("status") != "success":
            raise ValueError(f"/api/v1/rules answered {response.get('status')}: {response.get('error')}")
        live = live_rules(response)
    except Exception as exc:  # noqa: BLE001 - reported; the other targets go on
        return failed(TARGET, endpoint, f"{type(exc).__name__}: {str(exc).strip()}")
    return TargetReport(TARGET, endpoint, checked=len(expected), differences=compare(expected, live, client))


