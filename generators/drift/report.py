"""What a drift run found, and how it is printed (text for people, one JSON document for CI and bots).

The JSON document (schema "perfstack.drift/v1") is stable: keys are sorted, every field is always present,
values are strings or null so a consumer never has to guess a type:

    {
      "schema": "perfstack.drift/v1",
      "environment": "prod",
      "status": "ok" | "drift" | "error",        # the worst of the targets' statuses
      "exit_code": 0 | 1 | 2,
      "targets": [                                # in the order postgres, pgbouncer, redis, prometheus,
        {                                         # kubernetes, pulumi; only those given on the command line
          "target": "postgres",
          "endpoint": "host=db port=5432 user=perfstack_drift dbname=postgres",   # never a password
          "status": "ok" | "drift" | "error" | "skipped",
          "checked": 21,                          # settings / rules / objects compared
          "error": null | "why it could not be reached or read",
          "notes": ["..."],                       # facts that are not drift (e.g. unmanaged settings pending restart)
          "differences": [
            {"key": "work_mem", "kind": "changed" | "missing" | "extra" | "pending_restart",
             "expected": "5041kB" | null,         # as the rendered file writes it; null for "extra"
             "actual": "64MB" | null,             # the live value in the same units; null for "missing"
             "source": "configuration file /var/lib/postgresql/data/postgresql.auto.conf:3" | null,
             "note": null | "..."}
          ]
        }
      ]
    }

Exit codes: 0 when every target was read and nothing differs, 1 when anything differs, 2 when any target
could not be reached or read (the others are still checked and reported).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "perfstack.drift/v1"

# Kinds of difference.
CHANGED = "changed"            # the live value is not the rendered one
MISSING = "missing"            # a managed setting, rule or object the live side does not have
EXTRA = "extra"                # something live in a managed place that the profile does not render
PENDING_RESTART = "pending_restart"  # a value in the server's files that only a restart applies

# Statuses of a target.
OK, DRIFT, ERROR, SKIPPED = "ok", "drift", "error", "skipped"


@dataclass(frozen=True)
class Difference:
    key: str
    kind: str
    expected: str | None
    actual: str | None
    source: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "expected": self.expected, "actual": self.actual,
                "source": self.source, "note": self.note}


@dataclass
class TargetReport:
    target: str
    endpoint: str
    checked: int = 0
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    skipped: bool = False

    @property
    def status(self) -> str:
        if self.error is not None:
            return ERROR
        if self.differences:
            return DRIFT
        return SKIPPED if self.skipped else OK

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "endpoint": self.endpoint, "status": self.status, "checked": self.checked,
                "error": self.error, "notes": list(self.notes),
                "differences": [d.as_dict() for d in self.differences]}


def failed(target: str, endpoint: str, error: str) -> TargetReport:
    """A target that could not be reached or read."""
    return TargetReport(target=target, endpoint=endpoint, error=error)


@dataclass
class DriftReport:
    environment: str
    targets: list[TargetReport]

    @property
    def exit_code(self) -> int:
        if any(t.status == ERROR for t in self.targets):
            return 2
        if any(t.status == DRIFT for t in self.targets):
            return 1
        return 0

    @property
    def status(self) -> str:
        return {0: OK, 1: DRIFT, 2: ERROR}[self.exit_code]

    def target(self, name: str) -> TargetReport:
        for item in self.targets:
            if item.target == name:
                return item
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "environment": self.environment, "status": self.status,
                "exit_code": self.exit_code, "targets": [t.as_dict() for t in self.targets]}


def format_json(report: DriftReport) -> str:
    return json.dumps(report.as_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _describe(diff: Difference) -> str:
    if diff.kind == MISSING:
        text = f"{diff.key}: missing on the live side (expected {diff.expected})"
    elif diff.kind == EXTRA:
        text = f"{diff.key}: extra on the live side ({diff.actual}), not rendered by the profile"
    elif diff.kind == PENDING_RESTART:
        applies = diff.actual if diff.actual is not None else "a value this role cannot read"
        text = f"{diff.key}: pending restart: expected {diff.expected}, a restart applies {applies}"
    else:
        text = f"{diff.key}: expected {diff.expected}, actual {diff.actual}"
    if diff.source:
        text += f"  [{diff.source}]"
    if diff.note:
        text += f"  ({diff.note})"
    return text


def format_text(report: DriftReport) -> str:
    lines: list[str] = []
    differing = sum(1 for t in report.targets if t.status == DRIFT)
    unreadable = sum(1 for t in report.targets if t.status == ERROR)
    if report.exit_code == 0:
        lines.append(f"drift {report.environment}: no drift in {len(report.targets)} target(s)")
    else:
        parts = []
        if differing:
            parts.append(f"{differing} target(s) differ")
        if unreadable:
            parts.append(f"{unreadable} could not be read")
        lines.append(f"drift {report.environment}: " + ", ".join(parts))
    for item in report.targets:
        head = f"{item.target} ({item.endpoint})"
        if item.status == ERROR:
            lines.append(f"{head}: ERROR: {item.error}")
        elif item.status == SKIPPED:
            lines.append(f"{head}: skipped")
        elif item.status == OK:
            lines.append(f"{head}: ok, {item.checked} checked")
        else:
            lines.append(f"{head}: {len(item.differences)} difference(s) in {item.checked} checked")
        lines.extend(f"  {_describe(d)}" for d in item.differences)
        lines.extend(f"  note: {n}" for n in item.notes)
    return "\n".join(lines) + "\n"


def format_report(report: DriftReport, fmt: str) -> str:
    return format_json(report) if fmt == "json" else format_text(report)


# ---------------------------------------------------------------- credentials never reach a report
# Query parameters that carry a credential (redis://host?password=..., http://prom/?access_token=...).
SECRET_QUERY_NAMES = re.compile(r"pass|pwd|secret|token|key|auth|credential|sig", re.IGNORECASE)
SECRET_DSN_KEYS = ("password", "sslpassword", "passfile_content")
HIDDEN = "***"


def redact_url(url: str) -> str:
    """A URL without the password of its userinfo (user:***@) and without secret query values (?password=***)."""
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{HIDDEN}@{host}" if ":" in userinfo else f"{HIDDEN}@{host}" if not user else \
                f"{user}@{host}"
        query = "&".join(
            f"{name}={HIDDEN}" if SECRET_QUERY_NAMES.search(urllib.parse.unquote(name)) else
            (f"{name}={value}" if sep else name)
            for name, sep, value in (item.partition("=") for item in parts.query.split("&") if item))
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return "<unparsable URL>"


def secrets_in(endpoint: str) -> list[str]:
    """The credential strings an endpoint (URL or libpq DSN) carries, to scrub them from every message."""
    found: list[str] = []
    if "://" in endpoint:
        try:
            parts = urllib.parse.urlsplit(endpoint)
        except ValueError:
            parts = None
        if parts is not None:
            if "@" in parts.netloc:
                userinfo = parts.netloc.rsplit("@", 1)[0]
                secret = userinfo.split(":", 1)[1] if ":" in userinfo else userinfo
                found += [secret, urllib.parse.unquote(secret)]
            for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
                if SECRET_QUERY_NAMES.search(name):
                    found.append(value)
    for key in SECRET_DSN_KEYS:
        for match in re.finditer(rf"(?<![\w]){key}\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", endpoint, re.IGNORECASE):
            value = match.group(1)
            found += [value, value.strip("'").replace("\\'", "'")]
    return sorted({s for s in found if len(s) >= 2}, key=len, reverse=True)


def scrub(text: str | None, secrets: list[str]) -> str | None:
    if text is None:
        return None
    for secret in secrets:
        text = text.replace(secret, HIDDEN)
    return text


def scrubbed(report: TargetReport, secrets: list[str]) -> TargetReport:
    """The report with every credential of every endpoint replaced by ***, in every string it holds."""
    if not secrets:
        return report
    differences = [Difference(d.key, d.kind, scrub(d.expected, secrets), scrub(d.actual, secrets),
                              scrub(d.source, secrets), scrub(d.note, secrets)) for d in report.differences]
    return TargetReport(report.target, scrub(report.endpoint, secrets) or "", report.checked, differences,
                        [scrub(n, secrets) or "" for n in report.notes], scrub(report.error, secrets), report.skipped)
